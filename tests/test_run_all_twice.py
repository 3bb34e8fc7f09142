"""Every notebook survives Run All twice in one kernel: exercises unfilled (as generated), and solutions.

A student presses Run All, then again (or re-runs from the top) without restarting the kernel: no cell
may fail on the second pass because of state the first pass left behind (e.g. a kernel-wide
`torch.set_grad_enabled(False)`). Each notebook's code cells run, then all of them again, in one
kernel, stopping at the first error as Jupyter does; any error output fails the test. Notebook 04
trains for NINJA_TRAIN_STEPS=50; solutions run with CMP_STRICT=1 (a wrong gradient raises).
An unfilled exercise must also say, on both passes, that its blanks are not done.

The notebooks run in parallel, one kernel per CPU core (two at a time on 2 cores), each in its own process.
"""
import copy
import multiprocessing
import os
import re
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import nbformat
import pytest
from nbclient import NotebookClient
from nbclient.exceptions import CellExecutionError

ROOT = Path(__file__).resolve().parent.parent
NAMES = sorted(p.name for p in (ROOT / "solutions").glob("*.ipynb"))
CASES = [(folder, name) for folder in ["notebooks", "solutions"] for name in NAMES]
PLACEHOLDER = re.compile(r"^\s*\w+ = None  # TODO", re.MULTILINE)
ENV = {
    "notebooks": {"NINJA_TRAIN_STEPS": "50", "CMP_STRICT": "0"},
    "solutions": {"NINJA_TRAIN_STEPS": "50", "CMP_STRICT": "1"},
}


def printed(cells):
    """What the cells printed to stdout, and their text results."""
    parts = []
    for cell in cells:
        for out in cell.outputs:
            if out.output_type == "stream" and out.name == "stdout":
                parts.append(out.text)
            elif "data" in out and "text/plain" in out.data:
                parts.append(out.data["text/plain"])
    return "\n".join(parts)


def run_all_twice(path, env):
    """Run the notebook's code cells twice over in one kernel (in its folder, with `env` added).

    Returns {"error": None or a description of the first error, "printed": [first run, second run]}.
    """
    path = Path(path)
    nb = nbformat.read(path, as_version=4)
    cells = [c for c in nb.cells if c.cell_type == "code"]
    for cell in cells:  # Run All stops at any error, even one a tag says is expected
        cell.metadata["tags"] = [t for t in cell.metadata.get("tags", []) if t != "raises-exception"]
    n = len(cells)
    nb.cells = cells + copy.deepcopy(cells)
    error = None
    try:
        NotebookClient(nb, timeout=600, kernel_name="python3",
                       resources={"metadata": {"path": str(path.parent)}}).execute(env={**os.environ, **env})
    except CellExecutionError:
        pass
    failed = [i for i, c in enumerate(nb.cells) if any(o.output_type == "error" for o in c.outputs)]
    if failed:
        cell = nb.cells[failed[0]]
        out = next(o for o in cell.outputs if o.output_type == "error")
        run, number = (1, failed[0]) if failed[0] < n else (2, failed[0] - n)
        error = (f"{path.parent.name}/{path.name}, Run All #{run}: code cell {number} fails with {out.ename}: {out.evalue}"
                 f"\n--- the cell ---\n{cell.source}")
    return {"error": error, "printed": [printed(nb.cells[:n]), printed(nb.cells[n:])]}


class Results(dict):
    def __repr__(self):  # pytest shows the fixture's value on failure: keep it short
        return f"<Run All twice: {len(self)} notebooks>"


@pytest.fixture(scope="module")
def results(request):
    """{(folder, name): result} for the cases this session selected, run in parallel."""
    wanted = [tuple(item.callspec.params[k] for k in ("folder", "name")) for item in request.session.items
              if getattr(item, "module", None) is request.module and hasattr(item, "callspec")]
    workers = max(1, min(os.cpu_count() or 1, len(wanted)))
    with ProcessPoolExecutor(workers, mp_context=multiprocessing.get_context("spawn")) as pool:
        futures = {(folder, name): pool.submit(run_all_twice, ROOT / folder / name, ENV[folder])
                   for folder, name in wanted}
        return Results({case: future.result() for case, future in futures.items()})


@pytest.mark.parametrize("folder, name", CASES)
def test_run_all_twice_in_one_kernel(results, folder, name):
    result = results[folder, name]
    if result["error"]:
        pytest.fail(result["error"], pytrace=False)
    blanks = folder == "notebooks" and any(
        PLACEHOLDER.search(c.source) for c in nbformat.read(ROOT / folder / name, as_version=4).cells)
    for run, out in enumerate(result["printed"], 1):
        assert out.strip(), f"Run All #{run} printed nothing"
        if blanks:
            assert "not done" in out, f"Run All #{run}: the blanks are unfilled, yet no check says 'not done'"


def test_an_error_on_the_second_run_only_is_caught(tmp_path):
    nb = nbformat.v4.new_notebook(cells=[
        nbformat.v4.new_code_cell("print('hello')"),
        nbformat.v4.new_code_cell("assert 'seen' not in globals(), 'restart the kernel'\nseen = True"),
    ])
    nb.cells[1].metadata["tags"] = ["raises-exception"]  # does not excuse it
    nbformat.write(nb, tmp_path / "x.ipynb")
    result = run_all_twice(tmp_path / "x.ipynb", {})
    assert result["error"].startswith(f"{tmp_path.name}/x.ipynb, Run All #2: code cell 1 fails with "
                                      "AssertionError: restart the kernel")
    assert result["printed"] == ["hello\n", "hello\n"]
