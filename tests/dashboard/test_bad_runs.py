"""Missing, partial and corrupt run directories give a clear message on the page, never a stack trace."""
import json
import shutil

import numpy as np
import pytest
from streamlit.testing.v1 import AppTest

from tests.dashboard.conftest import APP


def page_messages(page: str = "overview") -> AppTest:
    at = AppTest.from_file(APP, default_timeout=60)
    at.run()
    if page != "overview":
        at.switch_page(f"views/{page}.py").run()
    assert not at.exception, [e.value for e in at.exception]
    return at


@pytest.fixture
def broken(tmp_path, run_dir):
    copy = tmp_path / "broken"
    shutil.copytree(run_dir, copy)
    return copy


def set_status(run, status):
    manifest = json.loads((run / "manifest.json").read_text())
    manifest["status"] = status
    (run / "manifest.json").write_text(json.dumps(manifest))


def test_missing_run_directory(app_args, tmp_path):
    app_args(tmp_path / "nowhere")
    at = page_messages()
    assert "does not exist" in at.error[0].value


@pytest.mark.parametrize("page", ["overview", "queries", "documents"])
def test_run_still_scoring(app_args, broken, page):
    set_status(broken, "scoring")
    app_args(broken)
    at = page_messages(page)
    assert "not complete (status: `scoring`)" in at.error[0].value


def test_corrupt_scores(app_args, broken):
    (broken / "scores.npy").write_bytes(b"this is not a numpy file at all")
    app_args(broken)
    at = page_messages("queries")
    assert "`scores.npy` is not a readable .npy file" in at.error[0].value


def test_truncated_scores(app_args, broken):
    data = (broken / "scores.npy").read_bytes()
    (broken / "scores.npy").write_bytes(data[: len(data) // 2])
    app_args(broken)
    assert "`scores.npy`" in page_messages().error[0].value


def test_pickled_array_is_refused(app_args, broken):
    np.save(broken / "doc_grad_norms.npy", np.array([{"a": 1}], dtype=object), allow_pickle=True)
    app_args(broken)
    assert "`doc_grad_norms.npy` is not a readable .npy file" in page_messages().error[0].value


def test_wrong_shape(app_args, broken):
    np.save(broken / "normalized_scores.npy", np.zeros((3, 3), dtype=np.float32))
    app_args(broken)
    assert "has shape (3, 3)" in page_messages().error[0].value


def test_missing_documents_and_bad_manifest(app_args, broken):
    (broken / "documents.parquet").unlink()
    app_args(broken)
    assert "`documents.parquet` is missing" in page_messages().error[0].value
    (broken / "manifest.json").write_text("{ not json")
    assert "not valid JSON" in page_messages().error[0].value


def test_missing_analysis_table_is_an_info_not_an_error(app_args, broken):
    (broken / "analysis" / "correlations.parquet").unlink()
    app_args(broken)
    at = page_messages("correlations")
    assert not at.error and "analysis/correlations.parquet" in at.info[0].value


def test_run_not_offered_in_the_url_is_not_opened(app_args, run_dir, tmp_path):
    app_args(run_dir)
    at = AppTest.from_file(APP, default_timeout=60)
    at.query_params["run"] = str(tmp_path)
    at.run()
    assert "is not offered here" in at.warning[0].value
    assert at.query_params.get("run") is None      # the default (first offered) run: no ?run= in the URL
    assert at.session_state["run_dir"] == str(run_dir)
