"""tools/make_exercises.py on small made-up notebooks, and the cells it stamps from tools/course.py."""
from pathlib import Path

import nbformat
import pytest
import torch

import course
import lecture
import make_exercises
from make_exercises import MarkerError, strip_solutions

ROOT = Path(__file__).resolve().parent.parent
NAMES = sorted(p.name for p in (ROOT / "solutions").glob("*.ipynb"))
TODO_GRAD = "None  # TODO: the gradient of the loss with respect to"
TODO_OTHER = "None  # TODO: your code here"


def region(*lines, indent=""):
    return "\n".join(indent + line for line in ["### BEGIN SOLUTION", *lines, "### END SOLUTION"])


def test_a_tuple_target_gives_one_placeholder_per_name():
    assert strip_solutions(region("dW2, db2 = h.T @ dlogits, dlogits.sum(0)")).splitlines() == [
        f"dW2 = {TODO_GRAD} W2", f"db2 = {TODO_GRAD} b2"]
    assert strip_solutions(region("(da, [db, *dc]) = 1, [2, 3, 4]")).splitlines() == [
        f"da = {TODO_GRAD} a", f"db = {TODO_GRAD} b", f"dc = {TODO_GRAD} c"]


def test_augmented_and_annotated_assignments_count_but_subscripts_do_not():
    source = region("dlogprobs = torch.zeros_like(logprobs)", "dlogprobs[range(n), Yb] = -1.0 / n",
                    "dcounts += 1", "dx: float = 0.0")
    assert strip_solutions(source).splitlines() == [
        f"dlogprobs = {TODO_GRAD} logprobs", f"dcounts = {TODO_GRAD} counts", f"dx = {TODO_GRAD} x"]


def test_a_loop_variable_is_not_a_blank():
    source = region("dC = torch.zeros_like(C)", "for k in range(n):", "    for j in range(3):",
                    "        tmp = demb[k, j]", "        dC[Xb[k, j]] += tmp")
    assert strip_solutions(source).splitlines() == [f"dC = {TODO_GRAD} C"]


def test_names_bound_only_inside_a_block_are_not_blanks():
    source = region("if True:", "    dx = 1", "with torch.no_grad():", "    dy = 2", "dz = 3")
    assert strip_solutions(source).splitlines() == [f"dz = {TODO_GRAD} z"]


def test_gradient_text_only_for_tensors_the_notebook_assigns():
    tensors = {"W2", "h", "logits"}
    lines = strip_solutions(region("dim = 1", "dW2 = h.T @ dlogits", "dlogits = 2", "d = 3", "total = 4"),
                            tensors).splitlines()
    assert lines == [f"dim = {TODO_OTHER}", f"dW2 = {TODO_GRAD} W2", f"dlogits = {TODO_GRAD} logits",
                     f"d = {TODO_OTHER}", f"total = {TODO_OTHER}"]


def test_the_notebook_s_names_include_loops_arguments_and_tuples():
    nb = nbformat.v4.new_notebook(cells=[
        nbformat.v4.new_code_cell("%matplotlib inline\nW1, b1 = 1, 2\nfor k in range(3):\n    pass"),
        nbformat.v4.new_code_cell("def forward(Xb, Yb):\n    emb = C[Xb]\n    return emb"),
        nbformat.v4.new_markdown_cell("im = 3"),
        nbformat.v4.new_code_cell(region("dW1 = 1")),
    ])
    names = make_exercises.notebook_names(nb)
    assert {"W1", "b1", "k", "forward", "Xb", "Yb", "emb", "dW1"} <= names
    assert "im" not in names and "C" not in names  # markdown is not code; C is only read


@pytest.mark.parametrize("source, message", [
    (region("### BEGIN SOLUTION", "dx = 1"), "nested"),
    ("### BEGIN SOLUTION\ndx = 1\n### BEGIN SOLUTION\ndy = 2\n### END SOLUTION", "nested"),
    ("### BEGIN SOLUTON\ndx = 1\n### END SOLUTION", "misspelt"),
    ("### BEGIN SOLUTION\ndx = 1\n### END SOLUTON", "misspelt"),
    ("## BEGIN SOLUTION\ndx = 1\n### END SOLUTION", "misspelt"),
    ("### begin solution\ndx = 1\n### end solution", "misspelt"),
    ("###BEGIN SOLUTION\ndx = 1\n### END SOLUTION", "misspelt"),
    ("### BEGIN SOLUTIONS\ndx = 1\n### END SOLUTION", "misspelt"),
    ("### BEGIN SOLUTION\ndx = 1  ### END SOLUTION", "misspelt"),
    ("dx = 1\n### END SOLUTION", "without"),
    ("### BEGIN SOLUTION\ndx = 1", "without"),
    (region("print(1)"), "assign at least one name"),
    (region("for k in range(3):", "    dx = k"), "assign at least one name"),
])
def test_bad_markers_are_errors(source, message):
    with pytest.raises(MarkerError, match=message):
        strip_solutions(source)


def test_well_formed_markers_at_any_indent_are_fine():
    source = "def backward(cache):\n" + region("dx = cache * 2", indent="    ") + "\n    return dx"
    assert strip_solutions(source).splitlines() == [
        "def backward(cache):", f"    dx = {TODO_GRAD} x", "    return dx"]


def notebook(*cells, **metadata):
    nb = nbformat.v4.new_notebook(cells=list(cells))
    nb.metadata.update(metadata)
    return nb


def test_an_error_names_the_notebook_and_cell():
    nb = notebook(nbformat.v4.new_code_cell("x = 1"), nbformat.v4.new_code_cell("### BEGIN SOLUTON\ndx = 1"))
    with pytest.raises(MarkerError, match=r"solutions/99_x.ipynb, cell 1 .*misspelt"):
        make_exercises.make_exercise(nb, "99_x.ipynb")


def test_markers_in_a_markdown_cell_are_an_error():
    nb = notebook(nbformat.v4.new_markdown_cell("text\n### BEGIN SOLUTION\nx = 1\n### END SOLUTION"))
    with pytest.raises(MarkerError, match="only work in code cells"):
        make_exercises.make_exercise(nb, "99_x.ipynb")


def test_the_generator_stops_with_the_error_and_writes_nothing(tmp_path, monkeypatch, capsys):
    solutions, exercises = tmp_path / "solutions", tmp_path / "notebooks"
    solutions.mkdir()
    nbformat.write(notebook(nbformat.v4.new_code_cell("### BEGIN SOLUTION\n### BEGIN SOLUTION\ndx = 1")),
                   solutions / "01_x.ipynb")
    monkeypatch.setattr(make_exercises, "SOLUTIONS", solutions)
    monkeypatch.setattr(make_exercises, "EXERCISES", exercises)
    assert make_exercises.main([]) == 2
    assert "solutions/01_x.ipynb, cell 0" in capsys.readouterr().err
    assert not exercises.exists()


def test_only_tags_reach_the_exercise_of_all_metadata():
    code = nbformat.v4.new_code_cell(region("dx = 1"), execution_count=3)
    code.metadata.update({"tags": ["keep"], "collapsed": True, "scrolled": "auto",
                          "execution": {"iopub.execute_input": "2026-11-23T11:00:00.000Z"},
                          "jupyter": {"outputs_hidden": True}})
    text = nbformat.v4.new_markdown_cell("# Title")
    text.metadata.update({"editable": False})
    nb = notebook(code, text, kernelspec={"name": "python3", "display_name": "Python 3", "language": "python"},
                  widgets={"application/vnd.jupyter.widget-state+json": {"state": {}}}, toc={"x": 1})
    ex = make_exercises.make_exercise(nb, "99_x.ipynb")
    assert [c.metadata for c in ex.cells] == [{"tags": ["keep"]}, {}]
    assert sorted(ex.metadata) == ["kernelspec"]
    assert ex.cells[0].execution_count is None and ex.cells[0].outputs == []
    assert "collapsed" in nb.cells[0].metadata, "the solution is left alone"


def test_a_cell_whose_source_is_hidden_stays_hidden_in_the_exercise():
    hidden = nbformat.v4.new_code_cell("x = 1")
    hidden.metadata.update({"jupyter": {"source_hidden": True, "outputs_hidden": True}, "collapsed": True})
    shown = nbformat.v4.new_code_cell("y = 2")
    shown.metadata.update({"tags": ["keep"], "jupyter": {"source_hidden": False}})
    ex = make_exercises.make_exercise(notebook(hidden, shown), "99_x.ipynb")
    assert [c.metadata for c in ex.cells] == [{"jupyter": {"source_hidden": True}}, {"tags": ["keep"]}]


@pytest.mark.parametrize("name", NAMES)
def test_the_exercises_carry_no_metadata_but_tags_and_hidden_source(name):
    nb = nbformat.read(ROOT / "notebooks" / name, as_version=4)
    assert set(nb.metadata) <= set(make_exercises.NOTEBOOK_METADATA)
    assert [c.metadata for c in nb.cells if set(c.metadata) - {"tags", "jupyter", "cellView"}] == []
    assert [c.metadata for c in nb.cells if c.metadata.get("cellView", "form") != "form"] == []
    setup = [c for c in nb.cells if "setup" in c.metadata.get("tags", [])]
    assert [(c.metadata["jupyter"], c.metadata["cellView"]) for c in setup] == [({"source_hidden": True}, "form")]
    assert setup[0].source.startswith("# @title ")  # what Colab shows in place of the code
    assert [c.metadata for c in nb.cells if c.metadata.get("jupyter", {"source_hidden": True}) != {"source_hidden": True}] == []


@pytest.mark.parametrize("folder", ["solutions", "notebooks"])
@pytest.mark.parametrize("name", NAMES)
def test_the_parameter_cell_is_stamped_from_the_course_config(folder, name):
    """Notebooks 01-04 build the lecture's network in one stamped cell; no notebook has a hand-made copy."""
    nb = nbformat.read(ROOT / folder / name, as_version=4)
    cells = [c for c in nb.cells if "parameters" in c.metadata.get("tags", [])]
    assert len(cells) == (1 if name[:2] in course.N_HIDDEN else 0)
    for cell in cells:
        assert cell.source == course.parameters_source(course.n_hidden(name))
    copies = [c for c in nb.cells if c.cell_type == "code" and "manual_seed(2147483647)" in c.source
              and "n_hidden =" in c.source]
    assert copies == cells, "no other hand-made copy of it"


def test_n_hidden_is_the_one_difference():
    assert [course.n_hidden(name) for name in NAMES if name[:2] in course.N_HIDDEN] == [64, 64, 64, 200]
    small, large = course.parameters_source(64).splitlines(), course.parameters_source(200).splitlines()
    assert [(a, b) for a, b in zip(small, large) if a != b] == [
        ("n_hidden = 64      # neurons in the hidden layer", "n_hidden = 200     # neurons in the hidden layer")]
    comment_columns = {line.index("#") for line in small[:4]} | {line.index("#") for line in large[:4]}
    assert len(comment_columns) == 1, "the comments of the first four lines line up"
    with pytest.raises(KeyError, match="N_HIDDEN"):
        course.n_hidden("07_new.ipynb")


@pytest.mark.parametrize("n_hidden", [64, 200])
def test_the_tests_network_is_the_notebooks(n_hidden):
    """tests/lecture.py builds the same parameters as the stamped cell, and leaves the generator in the same state."""
    ns = {"torch": torch}
    exec(course.parameters_source(n_hidden), ns)
    params, g = lecture.parameters(n_hidden)
    for name, p in zip(lecture.PARAMETERS, ns["parameters"]):
        assert torch.equal(params[name], p), name
        assert params[name].requires_grad and p.requires_grad
    assert torch.equal(torch.randint(0, 1000, (8,), generator=g), torch.randint(0, 1000, (8,), generator=ns["g"]))
    assert lecture.N_HIDDEN == course.N_HIDDEN["01"]


@pytest.mark.parametrize("n_hidden", [64, 200])
def test_g_draws_what_the_lectures_g_draws(n_hidden):
    """The lecture draws only C, W1, b1, W2, b2 from g, then the batch: bngain/bnbias must not use g."""
    ns = {"torch": torch}
    exec(course.parameters_source(n_hidden), ns)
    g = torch.Generator().manual_seed(2147483647)
    for shape in [(27, 10), (30, n_hidden), (n_hidden,), (n_hidden, 27), (27,)]:
        torch.randn(shape, generator=g)
    assert torch.equal(torch.randint(0, 182625, (32,), generator=g),
                       torch.randint(0, 182625, (32,), generator=ns["g"]))
    assert ns["g"] is not ns["g_bn"] and ns["g_bn"].initial_seed() == course.BN_SEED


def test_a_tuple_that_unpacks_one_call_is_one_placeholder_line():
    source = region("dlogits = cross_entropy_backward(logits, Yb)",
                    "dh, dW2, db2 = linear2_backward(dlogits, h)", "a, b = f(x)")
    assert strip_solutions(source).splitlines() == [
        f"dlogits = {TODO_GRAD} logits",
        "dh, dW2, db2 = None, None, None  # TODO: one call",
        "a, b = None, None  # TODO: one call"]
