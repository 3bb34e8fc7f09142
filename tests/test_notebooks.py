"""The exercise notebooks: generated from the solutions, leak-free, and runnable unfilled.

Colab: tests/test_colab_setup.py. Run All twice: tests/test_run_all_twice.py. Hints: tests/test_hints.py.
"""
import os
import re
import sys
from pathlib import Path

import nbformat
import pytest
from nbclient import NotebookClient

import course
import make_exercises

ROOT = Path(__file__).resolve().parent.parent
NAMES = sorted(p.name for p in (ROOT / "solutions").glob("*.ipynb"))


def read(folder, name):
    return nbformat.read(ROOT / folder / name, as_version=4)


def run(nb, folder, env=None):
    """Execute a notebook as Jupyter would (kernel in the notebook's folder); returns it with outputs."""
    old = dict(os.environ)
    os.environ.update(env or {})
    try:
        NotebookClient(nb, timeout=600, kernel_name="python3",
                       resources={"metadata": {"path": str(ROOT / folder)}}).execute()
    finally:
        os.environ.clear()
        os.environ.update(old)
    return nb


def printed(nb):
    """Everything the notebook's code cells printed to stdout, and their text results."""
    parts = []
    for cell in nb.cells:
        for out in cell.get("outputs", []):
            if out.output_type == "stream" and out.name == "stdout":
                parts.append(out.text)
            elif "data" in out and "text/plain" in out.data:
                parts.append(out.data["text/plain"])
    return "\n".join(parts)


def test_the_same_numbered_notebooks_are_in_both_folders():
    numbers = [n[:3] for n in NAMES]
    assert {"00_", "01_", "02_", "03_", "04_", "05_"} <= set(numbers)
    assert all(re.fullmatch(r"\d\d_", number) for number in numbers) and len(set(numbers)) == len(numbers)
    assert sorted(p.name for p in (ROOT / "notebooks").glob("*.ipynb")) == NAMES


def test_exercises_are_exactly_what_the_generator_makes():
    stale = make_exercises.out_of_date()
    assert stale == [], f"run `python tools/make_exercises.py`: {stale}"


@pytest.mark.parametrize("name", NAMES)
def test_no_solution_code_leaks_into_the_exercise(name):
    solution, exercise = read("solutions", name), read("notebooks", name)
    exercise_code = "\n".join(c.source for c in exercise.cells if c.cell_type == "code")
    regions = [line.strip() for c in solution.cells if c.cell_type == "code"
               for line in make_exercises.solution_regions(c.source)]
    answer_lines = [line for line in regions if line and not line.startswith("#")]
    assert answer_lines, "every solution notebook has marked solution code"
    leaked = [line for line in answer_lines if line in exercise_code]
    assert leaked == []
    assert "### BEGIN SOLUTION" not in exercise_code
    assert not [c for c in exercise.cells if "solution" in c.metadata.get("tags", [])]
    assert all(c.outputs == [] and c.execution_count is None for c in exercise.cells if c.cell_type == "code")


def test_a_solution_region_becomes_placeholders():
    source = "x = 1\n    ### BEGIN SOLUTION\n    dW = h.T @ d\n    db = d.sum(0)\n    ### END SOLUTION\nreturn"
    assert make_exercises.strip_solutions(source).splitlines() == [
        "x = 1",
        "    dW = None  # TODO: the gradient of the loss with respect to W",
        "    db = None  # TODO: the gradient of the loss with respect to b",
        "return",
    ]
    with pytest.raises(ValueError):
        make_exercises.strip_solutions("### BEGIN SOLUTION\ndx = 1\n")


@pytest.mark.parametrize("folder", ["notebooks", "solutions"])
@pytest.mark.parametrize("name", NAMES)
def test_badge_and_setup_come_from_the_course_config(folder, name):
    nb = read(folder, name)
    assert nb.cells[0].source == course.badge_markdown(f"{folder}/{name}")
    assert f"{course.COLAB_URL}{folder}/{name}" in nb.cells[0].source
    first_code = next(c for c in nb.cells if c.cell_type == "code")
    assert first_code.source == course.setup_source()


def test_filling_one_gradient_counts_as_one_correct():
    nb = read("notebooks", "01_atomic_backward.ipynb")
    filled = [c for c in nb.cells if c.cell_type == "code" and c.source.startswith("dlogprobs = None")]
    assert len(filled) == 1
    filled[0].source = filled[0].source.replace(
        "dlogprobs = None  # TODO: the gradient of the loss with respect to logprobs",
        "dlogprobs = torch.zeros_like(logprobs); dlogprobs[range(n), Yb] = -1.0 / n")
    out = printed(run(nb, "notebooks"))
    assert out.count("exact: True") == 1
    assert "1 of 26 correct" in out


@pytest.mark.parametrize("name", NAMES)
def test_solutions_are_committed_after_restart_and_run_all(name):
    codes = [c for c in read("solutions", name).cells if c.cell_type == "code"]
    assert [c.execution_count for c in codes] == list(range(1, len(codes) + 1))
    assert not [o for c in codes for o in c.outputs if o.output_type == "error"]
    assert printed(read("solutions", name)).strip()


def test_the_committed_training_run_is_the_full_one():
    out = printed(read("solutions", "04_training_without_autograd.ipynb"))
    assert "190000/ 200000" in out
    train = float(out.split("train ")[1].split()[0])
    val = float(out.split("val ")[1].split()[0])
    assert train < 2.09 and val < 2.12, (train, val)


def cells_up_to(nb, last_id):
    """A copy of the notebook's first cells, up to and including the cell with id `last_id`."""
    ids = [c.get("id") for c in nb.cells]
    nb = nbformat.from_dict(dict(nb))
    nb.cells = nb.cells[: ids.index(last_id) + 1]
    return nb


def output_of(nb, cell_id):
    return "".join(out.get("text", "") for c in nb.cells if c.get("id") == cell_id for out in c.outputs)


def test_the_debugging_lab_shows_cmp_only_after_a_hypothesis():
    nb = cells_up_to(read("notebooks", "05_debugging_lab.ipynb"), "s1-reveal")
    status = output_of(run(nb, "notebooks"), "s1-localise").splitlines()
    assert len(status) == 12 and all(re.fullmatch(r"\w+ +(ok|X)", line) for line in status), status
    assert "Write your hypothesis" in output_of(nb, "s1-reveal") and "->" not in output_of(nb, "s1-reveal")
    tries = {  # a hypothesis: what explain() says first; whether it is judged; whether cmp's report follows
        "the network [sign]: a sign": ("names none of the six layers", False, False),     # names no layer
        "I think embedding is fine, batchnorm drops a term": ("names embedding and batchnorm", False, False),
        "Cross-entropy layer": ("Add the cause too", False, False),                        # a layer, no cause
        "cross_entropy layer: a flipped sign": ("Add the kind of mistake", False, False),  # no [kind]
        "batchnorm [term], not tanh: a term is missing": ("comes from a layer above batchnorm", True, False),
        "the loss layer [factor]: a wrong size": ("The kind: not [factor]. To test a kind before you name it: "
                                                   "a wrong constant factor makes", True, False),  # try 2: still hidden
        "linear layer 2 [tensor]: a transposed W2": ("comes from a layer above linear2", True, True),  # try 3
        "the loss layer [sign]: a flipped sign": ("The kind: right, a flipped sign", True, True),
        "cross_entropy [sign]: probs[i] flipped": ("The kind: right, a flipped sign", True, True),  # other [ ]
        "cross_entropy [sign] or [factor]": ("names 2 kinds: pick one", False, False),
    }
    for cell in nb.cells:
        if cell.get("id") == "s1-hypothesis":
            cell.source = 'hypothesis_1 = "cross_entropy layer [sign]: a flipped sign"'
        if cell.get("id") == "s1-reveal":
            cell.source = "\n".join(f"print('---')\nexplain({h!r}, checked_1)" for h in tries)
    revealed = output_of(run(nb, "notebooks"), "s1-reveal").split("---\n")[1:]
    assert len(revealed) == len(tries)
    for output, (hypothesis, (first, judged, report)) in zip(revealed, tries.items()):
        assert first in output and ("-> dlogits is -1 times the right answer" in output) == report, (hypothesis, output)
        assert (f"Your hypothesis: {hypothesis}" in output) == judged, (hypothesis, output)
        assert ("stay hidden until the layer and the kind are right" in output) == (judged and not report), output


def test_exercise_4_check_catches_a_wrong_chain_in_backward():
    solution = read("solutions", "04_training_without_autograd.ipynb")
    nb = cells_up_to(solution, "41a5ac61")
    for cell in nb.cells:
        if cell.get("id") == "8ff8ad13":
            assert "batchnorm_backward(dhpreact," in cell.source
            cell.source = cell.source.replace("batchnorm_backward(dhpreact,", "batchnorm_backward(dh,")
    out = output_of(run(nb, "solutions", {"CMP_STRICT": "0"}), "41a5ac61")
    assert "Stopped at `dbngain`" in out and "the chain of `backward`" in out
    assert "the `dhpreact` it passes to batchnorm_backward is not the tensor that batchnorm_backward needs" in out
    assert "belongs" not in out and "passes dh" not in out  # which tensor, and the right one, are the student's
