"""Execute the kit's notebooks headless (papermill) and render them to HTML (nbconvert).

Shared by ``make run`` (every notebook into ``build/`` plus a table) and by the notebook test,
so what the test checks is exactly what a newcomer runs.
"""

from __future__ import annotations

import os
import re
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from securepipe.errors import InvalidParameterError
from securepipe.report import format_table

PROJECT_ROOT = Path(__file__).resolve().parents[2]
NOTEBOOK_DIR = PROJECT_ROOT / "notebooks"
_NAME = re.compile(r"^\d{2}[a-z]?_[a-z0-9_]+\.ipynb$")  # 03b_: a lesson inserted after 03
CELL_TIMEOUT_S = 600


@dataclass(frozen=True)
class NotebookRun:
    """The outcome of executing one notebook."""

    notebook: str
    status: Literal["ok", "failed"]
    seconds: float
    output: Path
    html: Path | None = None
    error: str | None = None


def discover(notebook_dir: Path = NOTEBOOK_DIR) -> list[Path]:
    """The numbered notebooks (``00_name.ipynb``, ``01_name.ipynb``, ...) in lesson order."""
    notebooks = sorted(p for p in Path(notebook_dir).glob("*.ipynb") if _NAME.match(p.name))
    if not notebooks:
        raise InvalidParameterError(f"no numbered notebooks in {notebook_dir}")
    return notebooks


def run_notebook(path: Path, out_dir: Path, *, html: bool = True) -> NotebookRun:
    """Execute ``path`` top to bottom into ``out_dir``; never raises for a failing cell.

    A failure is reported in :attr:`NotebookRun.error`, naming the cell index, its first line
    and the exception, so a reader can find the cell without opening the executed copy.
    """
    import papermill
    from jupyter_client.manager import KernelManager
    from papermill.exceptions import PapermillExecutionError

    path = Path(path).resolve()
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    output = out_dir / path.name
    start = time.perf_counter()
    error: str | None = None
    # The kernel talks to us over Unix sockets in a private temporary folder, not loopback TCP
    # in plain text (a kit about protecting data should not stream it over an open port).
    with tempfile.TemporaryDirectory(prefix="securepipe-kernel-") as sockets:
        km = KernelManager(kernel_name="python3", transport="ipc", ip=str(Path(sockets) / "k"))
        try:
            papermill.execute_notebook(
                str(path),
                str(output),
                kernel_name="python3",
                cwd=str(path.parent),
                progress_bar=False,
                # papermill rewrites the whole output notebook after every cell by default:
                # 1.6-2 s a lesson with figures and audio (measured on lesson 04). The executed
                # copy is written once at the end, failures included.
                request_save_on_cell_execute=False,
                # Every output has arrived once the last cell replies; a graceful shutdown then
                # waits about 0.3 s a lesson for the kernel to exit on its own.
                shutdown_kernel="immediate",
                execution_timeout=CELL_TIMEOUT_S,
                km=km,
            )
        except PapermillExecutionError as exc:
            first_line = next((ln for ln in exc.source.splitlines() if ln.strip()), "")
            error = (
                f"{path.name}: cell {exc.cell_index} (In [{exc.exec_count}]) `{first_line}` "
                f"raised {exc.ename}: {exc.evalue}"
            )
        finally:
            if km.has_kernel:
                km.shutdown_kernel(now=True)
    seconds = time.perf_counter() - start
    html_path = _to_html(output) if html and output.exists() else None
    return NotebookRun(
        notebook=path.name,
        status="failed" if error else "ok",
        seconds=seconds,
        output=output,
        html=html_path,
        error=error,
    )


_TAG = re.compile(r"<[^>]*>")
_DATA_URI = re.compile(r"data:[\w/+.-]+;base64,[A-Za-z0-9+/=\s]+")
#: A cell's output longer than this floods a workshop screen (about two screenfuls of text: the
#: 27-row scorecard table is the longest output a lesson needs).
MAX_OUTPUT_CHARS = 8_000


def output_problems(executed: Path, limit: int = MAX_OUTPUT_CHARS) -> list[str]:
    """Cells of an executed notebook whose output is longer than ``limit`` characters, or that
    wrote to stderr (a red box that reads as an error in a lesson)."""
    import nbformat

    problems = []
    nb = nbformat.read(executed, as_version=4)
    for index, cell in enumerate(nb.cells):
        if cell.cell_type != "code":
            continue
        size = 0
        for out in cell.get("outputs", []):
            if out.get("output_type") == "stream":
                if out.get("name") == "stderr":
                    problems.append(f"cell {index}: writes to stderr: {out.get('text', '')[:80]!r}")
                size += len(out.get("text", ""))
            else:
                data = out.get("data", {})
                html = data.get("text/html")
                if html is not None:
                    # What a reader sees: the text, not the markup or an audio player's data: URI.
                    html = html if isinstance(html, str) else "".join(html)
                    size += len(_TAG.sub("", _DATA_URI.sub("", html)))
                else:
                    plain = data.get("text/plain", "")
                    size += len(plain if isinstance(plain, str) else "".join(plain))
        if size > limit:
            problems.append(f"cell {index}: {size:,} characters of output (limit {limit:,})")
    return problems


def _to_html(executed: Path) -> Path:
    import nbformat
    from nbconvert import HTMLExporter

    body, _ = HTMLExporter().from_notebook_node(nbformat.read(executed, as_version=4))
    target = executed.with_suffix(".html")
    target.write_text(body, encoding="utf-8")
    return target


def compile_package() -> None:
    """Write the package's bytecode once, so each lesson's kernel loads it instead of compiling
    every module from source (about 0.15 s a lesson). Python writes bytecode on import by
    itself, except where ``PYTHONDONTWRITEBYTECODE`` is set, as on the kit's build machine; an
    explicit compile writes it there too, and a stale file is simply recompiled in memory."""
    import compileall

    compileall.compile_dir(str(PROJECT_ROOT / "securepipe"), quiet=1)


def default_jobs() -> int:
    """Lessons run at once by default: one per core, at most four (each is one kernel)."""
    return max(1, min(4, os.cpu_count() or 1))


def run_all(
    out_dir: Path, notebook_dir: Path = NOTEBOOK_DIR, *, html: bool = True, jobs: int = 1
) -> list[NotebookRun]:
    """Execute every numbered notebook, ``jobs`` at a time (each in a kernel of its own, as
    every lesson runs standalone); the runs come back in the notebooks' order."""
    if isinstance(jobs, bool) or not isinstance(jobs, int) or jobs < 1:
        raise InvalidParameterError(f"jobs must be an integer >= 1, got {jobs!r}")
    notebooks = discover(notebook_dir)
    compile_package()
    if jobs == 1:
        return [run_notebook(nb, out_dir, html=html) for nb in notebooks]
    import multiprocessing
    from concurrent.futures import ProcessPoolExecutor

    # spawned, not forked: a fork of a process with threads (a kernel client's, papermill's)
    # can inherit a lock held by one of them and hang
    with ProcessPoolExecutor(max_workers=min(jobs, len(notebooks)),
                             mp_context=multiprocessing.get_context("spawn")) as pool:
        futures = [pool.submit(run_notebook, nb, out_dir, html=html) for nb in notebooks]
        return [f.result() for f in futures]


def suite_seconds(runs: list[NotebookRun]) -> float:
    """The lessons' own times added up (HTML rendering excluded): what running them one after
    the other costs, and how the facilitator guide's agenda is timed."""
    return sum(r.seconds for r in runs)


def summary(runs: list[NotebookRun]) -> str:
    """The table ``make run`` prints: notebook, status, seconds, then the suite total."""
    rows: list[dict[str, object]] = [
        {"notebook": r.notebook, "status": r.status, "seconds": r.seconds} for r in runs
    ]
    failed = sum(r.status == "failed" for r in runs)
    rows.append({"notebook": "suite total",
                 "status": f"{failed} failed" if failed else "ok",
                 "seconds": suite_seconds(runs)})
    return format_table(rows, ["notebook", "status", "seconds"])


def main(out: str = "build", notebook_dir: str | None = None, html: bool = True,
         jobs: int | None = None) -> int:
    jobs = default_jobs() if jobs is None else jobs
    start = time.perf_counter()
    runs = run_all(Path(out), Path(notebook_dir) if notebook_dir else NOTEBOOK_DIR, html=html,
                   jobs=jobs)
    wall = time.perf_counter() - start
    print(summary(runs))
    failures = [r for r in runs if r.error]
    for run in failures:
        print(f"\nFAILED {run.error}")
    together = min(jobs, len(runs))
    at_once = f"{together} at a time" if together > 1 else "one after the other"
    print(f"\nsuite time: {wall:.1f} s wall clock for {len(runs)} notebook(s), {at_once}"
          f"{', HTML included' if html else ''}; the lessons' own times add up to "
          f"{suite_seconds(runs):.1f} s")
    print(f"executed notebooks{' and HTML' if html else ''} are in {Path(out).resolve()}")
    return 1 if failures else 0
