"""Every numbered notebook executes top to bottom (papermill); new ones are picked up."""

from __future__ import annotations

from pathlib import Path

import pytest

from securepipe.lessons.notebooks import NOTEBOOK_DIR, discover, output_problems, run_notebook

NOTEBOOKS = discover(NOTEBOOK_DIR)


@pytest.mark.parametrize("notebook", NOTEBOOKS, ids=[p.stem for p in NOTEBOOKS])
def test_notebook_executes(notebook: Path, tmp_path: Path) -> None:
    run = run_notebook(notebook, tmp_path, html=False)
    if run.error:
        pytest.fail(run.error, pytrace=False)
    assert run.output.exists()
    assert output_problems(run.output) == [], "a lesson's output floods the page or shows stderr"


def test_notebooks_are_stored_without_outputs() -> None:
    import nbformat

    for path in NOTEBOOKS:
        nb = nbformat.read(path, as_version=4)
        for cell in nb.cells:
            if cell.cell_type == "code":
                assert not cell.outputs and cell.execution_count is None, path.name


def test_failing_notebook_names_the_cell(tmp_path: Path) -> None:
    import nbformat

    nb = nbformat.v4.new_notebook()
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3"}
    nb.cells = [
        nbformat.v4.new_code_cell("x = 1"),
        nbformat.v4.new_code_cell("assert x == 2, 'the lesson broke'"),
    ]
    path = tmp_path / "src" / "99_broken.ipynb"
    path.parent.mkdir()
    nbformat.write(nb, path)
    run = run_notebook(path, tmp_path / "out", html=False)
    assert run.status == "failed"
    assert run.error is not None
    assert "cell 1" in run.error and "assert x == 2" in run.error
    assert "the lesson broke" in run.error
    # The executed copy is written once at the end (not after every cell), failures included:
    # it holds the failing cell's traceback for the reader.
    code = [c for c in nbformat.read(run.output, as_version=4).cells if c.cell_type == "code"]
    assert code[0].execution_count == 1
    assert any(o.get("ename") == "AssertionError" for o in code[1].outputs)


DATED = [p for p in NOTEBOOKS if p.stem.startswith(("05_", "06_"))]


@pytest.mark.parametrize("day", ["2030-01-01", "2099-06-30"])
@pytest.mark.parametrize("notebook", DATED, ids=[p.stem for p in DATED])
def test_retention_lessons_run_on_any_date(notebook: Path, day: str, tmp_path: Path,
                                           monkeypatch: pytest.MonkeyPatch) -> None:
    """The lessons whose data carries dates rebase them onto the day they run: the kernel's
    kit clock is set through SECUREPIPE_CLOCK (securepipe.clock reads it at import)."""
    monkeypatch.setenv("SECUREPIPE_CLOCK", day)
    run = run_notebook(notebook, tmp_path, html=False)
    if run.error:
        pytest.fail(run.error, pytrace=False)
    assert run.output.exists()


def test_the_kernel_sees_the_clock(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The variable really reaches a notebook's kernel (this test can fail: a wrong year)."""
    import nbformat

    nb = nbformat.v4.new_notebook()
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3"}
    nb.cells = [nbformat.v4.new_code_cell(
        "from securepipe import clock\nassert clock.now().year == 2099, clock.now()")]
    path = tmp_path / "src" / "98_clock.ipynb"
    path.parent.mkdir()
    nbformat.write(nb, path)
    monkeypatch.setenv("SECUREPIPE_CLOCK", "2099-06-30")
    assert run_notebook(path, tmp_path / "out", html=False).error is None
    monkeypatch.setenv("SECUREPIPE_CLOCK", "2030-01-01")
    assert run_notebook(path, tmp_path / "out2", html=False).error is not None


def test_output_limits_are_enforced(tmp_path: Path) -> None:
    import nbformat

    nb = nbformat.v4.new_notebook()
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3"}
    nb.cells = [
        nbformat.v4.new_code_cell("print('x' * 9000)"),
        nbformat.v4.new_code_cell("import sys; sys.stderr.write('careful')"),
        nbformat.v4.new_code_cell("'short'"),
    ]
    path = tmp_path / "99_limits.ipynb"
    nbformat.write(nb, path)
    run = run_notebook(path, tmp_path / "out", html=False)
    assert run.error is None
    found = output_problems(run.output)
    assert len(found) == 2
    assert found[0].startswith("cell 0: 9,001 characters") and "stderr" in found[1]


def test_glossary_links_resolve() -> None:
    """Every link a lesson makes into the glossary lands on an entry."""
    import re

    glossary = (NOTEBOOK_DIR / "GLOSSARY.md").read_text()
    anchors = set(re.findall(r'<a id="([a-z0-9-]+)"></a>', glossary))
    linked = {m for p in NOTEBOOKS for m in re.findall(r"GLOSSARY\.md#([a-z0-9-]+)", p.read_text())}
    assert linked, "the lessons link no glossary entry"
    assert linked <= anchors, sorted(linked - anchors)


@pytest.mark.parametrize("jobs", [1, 2])
def test_make_run_prints_each_lesson_and_the_suite_time(
        tmp_path: Path, capsys: pytest.CaptureFixture[str], jobs: int) -> None:
    """`make run` is `securepipe notebooks`: one row per notebook, in order, with its seconds,
    the lessons' total (the sum of the rows), and the suite's wall-clock line, the lessons run
    one after the other or ``--jobs`` at a time; a failure is counted and exits 1."""
    import re

    import nbformat

    from securepipe.cli import main

    src = tmp_path / "src"
    src.mkdir()
    # With two at a time, lesson 00 finishes only once lesson 01 has started: they overlapped.
    wait_for_01 = (f"import pathlib, time\nd = pathlib.Path({str(tmp_path)!r})\n"
                   "(d / '00.started').touch()\ndeadline = time.time() + 120\n"
                   "while not (d / '01.started').exists():\n"
                   "    assert time.time() < deadline, 'lesson 01 never started'\n"
                   "    time.sleep(0.05)\n")
    fine = wait_for_01 if jobs > 1 else "x = 1"
    broken = (f"import pathlib\n(pathlib.Path({str(tmp_path)!r}) / '01.started').touch()\n"
              "raise ValueError('no')")
    for name, code in (("00_fine.ipynb", fine), ("01_broken.ipynb", broken)):
        nb = nbformat.v4.new_notebook()
        nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3"}
        nb.cells = [nbformat.v4.new_code_cell(code)]
        nbformat.write(nb, src / name)
    assert main(["notebooks", "--dir", str(src), "--out", str(tmp_path / "out"), "--no-html",
                 "--jobs", str(jobs)]) == 1
    out = capsys.readouterr().out
    found = re.findall(r"^(\S+(?: total)?)\s+(ok|failed|\d+ failed)\s+([\d.]+)$", out, re.M)
    assert [m[0] for m in found] == ["00_fine.ipynb", "01_broken.ipynb", "suite total"]
    rows = {m[0]: (m[1], float(m[2])) for m in found}
    assert rows["00_fine.ipynb"][0] == "ok" and rows["01_broken.ipynb"][0] == "failed"
    assert rows["suite total"][0] == "1 failed"
    total = rows["suite total"][1]
    assert total == pytest.approx(rows["00_fine.ipynb"][1] + rows["01_broken.ipynb"][1], abs=0.02)
    at_once = "one after the other" if jobs == 1 else f"{jobs} at a time"
    suite_line = re.search(r"^suite time: ([\d.]+) s wall clock for 2 notebook\(s\), "
                           rf"{at_once}; the lessons' own times add up to ([\d.]+) s$", out, re.M)
    assert suite_line is not None, out
    wall, own = float(suite_line[1]), float(suite_line[2])
    assert own == pytest.approx(total, abs=0.06)
    if jobs == 1:
        assert wall >= own - 0.06
    assert "FAILED 01_broken.ipynb: cell 0" in out
    assert (tmp_path / "out" / "00_fine.ipynb").exists()


def test_the_number_of_lessons_at_once_is_checked(tmp_path: Path) -> None:
    from securepipe.cli import main
    from securepipe.errors import InvalidParameterError
    from securepipe.lessons.notebooks import default_jobs, run_all
    for bad in (0, -1, True, 1.5):
        with pytest.raises(InvalidParameterError):
            run_all(tmp_path / "out", jobs=bad)  # type: ignore[arg-type]  # refused at run time
    with pytest.raises(SystemExit) as exc:                       # a usage error, before any run
        main(["notebooks", "--out", str(tmp_path / "out"), "--jobs", "0"])
    assert exc.value.code == 2 and not (tmp_path / "out").exists()
    assert 1 <= default_jobs() <= 4


def test_lesson04_plays_the_reconstruction_the_warm_up_caches() -> None:
    from securepipe.lessons.warmup import LESSON04_RECONSTRUCTION

    source = (NOTEBOOK_DIR / "04_features_not_raw.ipynb").read_text(encoding="utf-8")
    assert f'reconstruction_pair(manifest, \\"{LESSON04_RECONSTRUCTION}\\", MEL_SPEC' in source
    assert "cache=DEFAULT_CACHE" in source
