"""The exercise notebooks: generated from the solutions, leak-free, and runnable unfilled and in Colab."""
import os
import subprocess
import sys
import textwrap
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


def test_there_are_four_notebooks_in_both_folders():
    assert len(NAMES) == 4 and [n[:3] for n in NAMES] == ["01_", "02_", "03_", "04_"]
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


@pytest.mark.parametrize("name", NAMES)
def test_every_exercise_runs_unfilled_without_error(name):
    nb = run(read("notebooks", name), "notebooks", {"NINJA_TRAIN_STEPS": "50"})
    out = printed(nb)
    assert "exact: True" not in out  # nothing is filled in, so nothing can be right
    assert "not done" in out
    if name.startswith("04"):
        assert "Finish `backward` first" in out
        assert out.count("step ") == 1 and "Fix these gradients in `backward` first" in out


def test_filling_one_gradient_counts_as_one_correct():
    nb = read("notebooks", NAMES[0])
    filled = [c for c in nb.cells if c.cell_type == "code" and c.source.startswith("dlogprobs = None")]
    assert len(filled) == 1
    filled[0].source = filled[0].source.replace(
        "dlogprobs = None  # TODO: the gradient of the loss with respect to logprobs",
        "dlogprobs = torch.zeros_like(logprobs); dlogprobs[range(n), Yb] = -1.0 / n")
    out = printed(run(nb, "notebooks"))
    assert out.count("exact: True") == 1
    assert "1 of 26 correct" in out


COLAB_DRIVER = """
import shutil, sys, types, urllib.request
sys.modules["google.colab"] = types.ModuleType("google.colab")  # what Colab has, and Jupyter has not
ROOT, RAW_URL, NAMES_URL = sys.argv[1], sys.argv[2], sys.argv[3]
fetched = []
def urlretrieve(url, filename):
    fetched.append(url)
    if url == NAMES_URL:
        shutil.copy(ROOT + "/data/names.txt", filename)
    elif url.startswith(RAW_URL):
        shutil.copy(ROOT + "/" + url[len(RAW_URL):], filename)
    else:
        raise OSError("unexpected download: " + url)
urllib.request.urlretrieve = urlretrieve
exec(open("setup_cell.py").read())
from cmp import cmp
import data
print(len(data.load_words()), "words")
print("\\n".join(fetched))
"""


def test_the_setup_cell_works_in_colab_with_the_network_faked(tmp_path):
    (tmp_path / "setup_cell.py").write_text(course.setup_source())
    (tmp_path / "driver.py").write_text(COLAB_DRIVER)
    from data import NAMES_URL
    result = subprocess.run([sys.executable, "driver.py", str(ROOT), course.RAW_URL, NAMES_URL],
                            cwd=tmp_path, capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    assert "32033 words" in result.stdout
    assert result.stdout.split("words\n")[1].split() == [course.RAW_URL + f for f in course.HELPER_FILES] + [NAMES_URL]
    for f in course.HELPER_FILES:
        assert (tmp_path / f).read_bytes() == (ROOT / f).read_bytes()


def test_the_setup_cell_does_nothing_surprising_locally(tmp_path):
    driver = textwrap.dedent(f"""
        import os, sys
        before = set(os.listdir("."))
        exec({course.setup_source()!r})
        assert set(os.listdir(".")) == before, "nothing downloaded or written"
        assert sys.path[0] == os.path.abspath("..")
        print("ok")
    """)
    work = tmp_path / "notebooks"
    work.mkdir()
    result = subprocess.run([sys.executable, "-c", driver], cwd=work, capture_output=True, text=True)
    assert result.stdout.strip() == "ok", result.stderr


@pytest.mark.parametrize("name", NAMES)
def test_solutions_are_committed_after_restart_and_run_all(name):
    codes = [c for c in read("solutions", name).cells if c.cell_type == "code"]
    assert [c.execution_count for c in codes] == list(range(1, len(codes) + 1))
    assert not [o for c in codes for o in c.outputs if o.output_type == "error"]
    assert printed(read("solutions", name)).strip()


def test_the_committed_training_run_is_the_full_one():
    out = printed(read("solutions", NAMES[3]))
    assert "190000/ 200000" in out
    train = float(out.split("train ")[1].split()[0])
    val = float(out.split("val ")[1].split()[0])
    assert train < 2.09 and val < 2.12, (train, val)
