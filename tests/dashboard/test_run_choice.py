"""Which runs the app offers: --run arguments first, then run directories under runs/ (runs/demo first)."""
from dashboard import run_choice


def make_run(path):
    path.mkdir(parents=True)
    (path / "manifest.json").write_text("{}")


def test_choices(monkeypatch, tmp_path):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr("sys.argv", ["app.py"])
    assert run_choice.run_choices() == ["runs/demo"]  # nothing there: the default, which explains itself
    make_run(tmp_path / "runs" / "alpha")
    make_run(tmp_path / "runs" / "demo")
    (tmp_path / "runs" / "not_a_run").mkdir()
    assert run_choice.run_choices() == ["runs/demo", "runs/alpha"]
    monkeypatch.setattr("sys.argv", ["app.py", "--run", "/x/a", "--run", "/x/b", "--unrelated"])
    assert run_choice.run_choices() == ["/x/a", "/x/b", "runs/demo", "runs/alpha"]
