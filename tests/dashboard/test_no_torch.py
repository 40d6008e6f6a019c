"""The dashboard reads files only: rendering every page (the Ask page too: its worker is a separate process)
imports neither torch nor the engine.

The precompute modules it may import are the torch-free layer: precompute.analysis (tables, statistics and the
answer-matching rule), precompute.rundir and precompute.rundir.errors."""
import subprocess
import sys

from tests.dashboard.conftest import APP, ROOT

SCRIPT = """
import sys
sys.argv = ["app.py", "--run", {run!r}]
from streamlit.testing.v1 import AppTest
for page in ["overview", "queries", "correlations", "magnitude", "sources", "answers", "documents", "compare", "ask"]:
    at = AppTest.from_file({app!r}, default_timeout=120)
    at.run()
    if page != "overview":
        at.switch_page("views/" + page + ".py").run()
    assert not at.exception, (page, [e.value for e in at.exception])
allowed = ("precompute.analysis", "precompute.rundir", "precompute.rundir.errors")
banned = sorted(m for m in sys.modules if m.split(".")[0] in ("torch", "engine", "precompute", "transformers")
                and m != "precompute" and not m.startswith(allowed))
print("BANNED", banned)
"""


def test_pages_render_without_torch_or_engine(run_dir, tmp_path):
    result = subprocess.run([sys.executable, "-c", SCRIPT.format(run=str(run_dir), app=APP)], cwd=tmp_path,
                            capture_output=True, text=True, timeout=300, env={"PYTHONPATH": str(ROOT), "PATH": ""})
    assert result.returncode == 0, result.stderr[-3000:]
    assert "BANNED []" in result.stdout, result.stdout
