"""The autograder (tools/grade.py) on a small class made from the course's own notebooks.

One grading run (two notebooks at a time) grades a class of exercise-1 submissions (full marks, blank,
one wrong gradient, every answer copied from `.grad`, an endless loop, `os._exit`), an exercise-2
and an exercise-3 submission, files that are not notebooks, and an exercise-4 pair (full marks, one
wrong layer) at 60 training steps; every row of its gradebook is checked. Cells reordered, added or
deleted and cell ids lost are checked without a kernel: such a notebook must give exactly the graded
notebook of the full-marks one. So are the static checks, the answer extraction, shards and merge;
a kernel that dies is tested on the worker directly.
"""
import csv
import json
import random
import shutil

import nbformat
import pytest

import grade
import grade_class
import grade_course as gc

TIMEOUT = 15  # per notebook; an exercise-1 notebook takes 2-4 s here, exercise 4 at 60 steps about 6
COURSE = gc.load_course()
N01 = len(COURSE["01"].groups)  # 26 blanks, one check each
ITEMS01 = ["logprobs", "probs", "counts_sum_inv", "counts_sum", "counts", "norm_logits", "logit_maxes", "logits",
           "h", "W2", "b2", "hpreact", "bngain", "bnbias", "bnraw", "bnvar_inv", "bnvar", "bndiff2", "bndiff",
           "bnmeani", "hprebn", "embcat", "W1", "b1", "emb", "C"]
ITEMS04 = ["logits", "h", "hpreact", "hprebn", "embcat", "W2", "b2", "bngain", "bnbias", "W1", "b1", "C"]


def without_ids(nb):
    """The notebook as an editor that drops cell ids would save it (nbformat 4.4)."""
    data = json.loads(nbformat.writes(nb))
    data["nbformat_minor"] = 4
    for cell in data["cells"]:
        cell.pop("id", None)
    return json.dumps(data)


@pytest.fixture(scope="module")
def graded(tmp_path_factory):
    root = tmp_path_factory.mktemp("grade")
    cls, out = root / "class", root / "out"
    full = grade_class.answer_notebook("01", course=COURSE)
    grade_class.save(full, cls / "full.ipynb")
    grade_class.save(grade_class.answer_notebook("01", blank=True, course=COURSE), cls / "blank.ipynb")
    huge_output = 'print("x" * 30_000_000)  # a huge output\n'
    grade_class.save(grade_class.answer_notebook("01", {"dprobs": huge_output + "dprobs = 2 * dlogprobs / probs"},
                                                 course=COURSE), cls / "wrong" / "one.ipynb")
    copied = {g.names[0]: f"{g.names[0]} = {g.names[0][1:]}.grad" for g in COURSE["01"].groups}
    grade_class.save(grade_class.answer_notebook("01", copied, course=COURSE), cls / "copied.ipynb")
    grade_class.save(grade_class.answer_notebook("01", {"dcounts": "while True:\n    pass"}, course=COURSE),
                     cls / "endless_loop.ipynb")
    grade_class.save(grade_class.answer_notebook("01", {"dcounts": "import os\nos._exit(1)",
                                                        "dh": "dh = dlogits @ W2.T @ undefined_name"}, course=COURSE),
                     cls / "exit.ipynb")
    grade_class.save(grade_class.answer_notebook("02", course=COURSE), cls / "ex2.ipynb")
    grade_class.save(grade_class.answer_notebook("03", {"dbnbias": "dbnbias = dhpreact.sum(0)"}, course=COURSE),
                     cls / "ex3.ipynb")
    grade_class.save(grade_class.answer_notebook("04", course=COURSE), cls / "ex4" / "full.ipynb")
    wrong_layer = {"dlogits": "dlogits = F.softmax(logits, 1) - F.one_hot(Yb, vocab_size)"}  # the 1/n left out
    grade_class.save(grade_class.answer_notebook("04", wrong_layer, course=COURSE), cls / "ex4" / "wrong.ipynb")
    (cls / "corrupt.ipynb").write_text(nbformat.writes(full)[:3000])
    (cls / "notes.ipynb").write_text("backprop is the chain rule, applied tensor by tensor\n")
    grade_class.save(nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell("print(1)")]), cls / "mine.ipynb")
    (cls / ".ipynb_checkpoints").mkdir()
    shutil.copy(cls / "blank.ipynb", cls / ".ipynb_checkpoints" / "blank-checkpoint.ipynb")
    code = grade.main([str(cls), "--out", str(out), "--jobs", "2", "--timeout", str(TIMEOUT),
                       "--train-steps", "60", "--no-progress"])
    with open(out / "gradebook.csv", newline="") as f:
        rows = {row["submission"]: row for row in csv.DictReader(f)}
    with open(out / "items.csv", newline="") as f:
        items = {(r["submission"], r["item"]): r for r in csv.DictReader(f)}
    return {"code": code, "rows": rows, "items": items, "out": out, "class": cls}


def points(row, exercise, names):
    return [int(row[f"{exercise}:{n}"]) for n in names]


def feedback(graded, submission):
    return (graded["out"] / "feedback" / f"{submission}.html").read_text()


def test_exit_status_and_one_row_per_submission(graded):
    assert graded["code"] == 0
    assert sorted(graded["rows"]) == sorted([
        "blank.ipynb", "copied.ipynb", "corrupt.ipynb", "ex2.ipynb", "ex3.ipynb", "ex4/full.ipynb",
        "ex4/wrong.ipynb", "exit.ipynb", "full.ipynb", "endless_loop.ipynb", "mine.ipynb", "notes.ipynb",
        "wrong/one.ipynb"])  # checkpoints skipped
    for submission in graded["rows"]:
        assert (graded["out"] / "feedback" / f"{submission}.html").is_file()


def test_columns(graded):
    header = (graded["out"] / "gradebook.csv").read_text().splitlines()[0].split(",")
    assert header[:6] == ["submission", "exercise", "score", "max_score", "status", "message"]
    assert [c for c in header if c.startswith("01:")] == [f"01:{n}" for n in ITEMS01]
    assert "02:logits" in header  # exercise 2's other checks come from its solution notebook, as do 3's
    assert {"03:bngain", "03:bnbias", "03:hprebn"} <= set(header)
    assert [c for c in header if c.startswith("04:")] == [f"04:{n}" for n in ITEMS04] + ["04:training"]


def test_full_marks(graded):
    row = graded["rows"]["full.ipynb"]
    assert (row["exercise"], row["status"], row["score"], row["max_score"]) == ("01", "graded", "26", "26")
    assert points(row, "01", ITEMS01) == [1] * N01
    assert row["message"] == ""


def test_reordered_added_deleted_cells_and_lost_ids_grade_the_same(tmp_path):
    full = grade_class.answer_notebook("01", course=COURSE)
    grade_class.save(full, tmp_path / "full.ipynb")
    shuffled = grade_class.answer_notebook("01", course=COURSE)
    random.Random(1).shuffle(shuffled.cells)
    shuffled.cells.insert(2, nbformat.v4.new_code_cell("print('my own cell')"))
    shuffled.cells = [c for c in shuffled.cells if c.cell_type == "code"]  # every markdown cell deleted
    grade_class.save(shuffled, tmp_path / "reordered.ipynb")
    (tmp_path / "no_ids.ipynb").write_text(without_ids(shuffled))
    expected = grade.prepare(tmp_path / "full.ipynb", COURSE)
    assert expected[:3] == ("graded", "01", "") and all(k == "ok" for k, _ in expected[3].notes.values())
    for name in ["reordered.ipynb", "no_ids.ipynb"]:
        status, number, message, plan = grade.prepare(tmp_path / name, COURSE)
        assert (status, number, plan.cells, plan.notes) == ("graded", "01", expected[3].cells, expected[3].notes)
    del shuffled.cells[[c.get("id") for c in shuffled.cells].index(group("dprobs").cell_id)]
    grade_class.save(shuffled, tmp_path / "deleted.ipynb")
    plan = grade.prepare(tmp_path / "deleted.ipynb", COURSE)[3]
    assert plan.notes[group("dprobs").key][0] == "missing"
    assert [k for k, (kind, _) in plan.notes.items() if kind != "ok"] == [group("dprobs").key]


def test_blank(graded):
    row = graded["rows"]["blank.ipynb"]
    assert (row["status"], row["score"], row["max_score"]) == ("graded", "0", "26")
    assert "26 not done yet" in row["message"]
    assert all(graded["items"][("blank.ipynb", n)]["status"] == "not done" for n in ITEMS01)


def test_one_wrong_gradient_costs_one_point(graded):
    row = graded["rows"]["wrong/one.ipynb"]
    assert (row["status"], row["score"]) == ("graded", "25")
    assert points(row, "01", ITEMS01) == [1, 0] + [1] * 24
    assert graded["items"][("wrong/one.ipynb", "probs")]["status"] == "wrong"
    assert "dprobs" in feedback(graded, "wrong/one.ipynb")


def test_answers_copied_from_autograd_score_nothing(graded):
    row = graded["rows"]["copied.ipynb"]
    assert (row["status"], row["score"]) == ("graded", "0")
    assert "26 answer(s) not run" in row["message"]
    assert all(graded["items"][("copied.ipynb", n)]["status"] == "rejected" for n in ITEMS01)
    assert "autograd&#x27;s gradients" in feedback(graded, "copied.ipynb") or ".grad" in feedback(graded, "copied.ipynb")


def test_an_endless_loop_costs_its_item(graded):
    row = graded["rows"]["endless_loop.ipynb"]
    assert row["status"] == "timeout"
    assert row["message"].startswith(f"`dcounts` did not finish within the time limit ({TIMEOUT:g} s;")
    assert points(row, "01", ITEMS01) == [1, 1, 1, 1, 0] + [1] * 21  # graded again without it
    assert graded["items"][("endless_loop.ipynb", "counts")]["status"] == "timeout"


def test_os_exit_is_not_run_and_a_cell_that_raises_costs_its_item(graded):
    row = graded["rows"]["exit.ipynb"]
    assert (row["status"], row["score"]) == ("graded", "24")
    assert graded["items"][("exit.ipynb", "counts")]["status"] == "rejected"
    assert graded["items"][("exit.ipynb", "h")]["status"] == "not checked"
    assert "1 answer(s) not run" in row["message"] and "1 cell(s) raised an error: the cell of `dh`" in row["message"]
    page = feedback(graded, "exit.ipynb")
    assert "imports a module" in page and "NameError: name &#x27;undefined_name&#x27; is not defined" in page


def test_files_that_cannot_be_graded(graded):
    rows = graded["rows"]
    assert (rows["corrupt.ipynb"]["status"], rows["corrupt.ipynb"]["exercise"]) == ("error", "")
    assert "JSON is invalid" in rows["corrupt.ipynb"]["message"]
    assert rows["notes.ipynb"]["status"] == "not a notebook"
    assert rows["mine.ipynb"]["status"] == "not an exercise"
    for name in ["corrupt.ipynb", "notes.ipynb", "mine.ipynb"]:
        assert rows[name]["score"] == "" and rows[name]["01:logprobs"] == ""


def test_exercises_2_and_3(graded):
    row = graded["rows"]["ex2.ipynb"]
    assert (row["exercise"], row["status"]) == ("02", "graded") and row["score"] == row["max_score"]
    assert row["02:logits"] == "1"
    row = graded["rows"]["ex3.ipynb"]
    assert (row["exercise"], row["status"]) == ("03", "graded")
    assert int(row["score"]) == int(row["max_score"]) - 1 and row["03:bnbias"] == "0"  # (64,) for a (1, 64)
    assert row["03:bngain"] == row["03:hprebn"] == "1"


def test_exercise_4_grades_each_layer_alone_and_training(graded):
    row = graded["rows"]["ex4/full.ipynb"]
    assert (row["exercise"], row["status"], row["score"], row["max_score"]) == ("04", "graded", "13", "13")
    row = graded["rows"]["ex4/wrong.ipynb"]
    assert points(row, "04", ITEMS04 + ["training"]) == [0] + [1] * 11 + [0]
    assert graded["items"][("ex4/wrong.ipynb", "training")]["status"] == "not reached"


def test_feedback_is_escaped_html(graded):
    page = feedback(graded, "wrong/one.ipynb")
    assert page.startswith("<!DOCTYPE html>") and "25 of 26" in page
    assert "<script" not in page


def test_merge_joins_shards(graded, tmp_path):
    rows = list(graded["rows"].values())
    header = (graded["out"] / "gradebook.csv").read_text().splitlines()[0].split(",")
    for k, part in enumerate([rows[0::2], rows[1::2]]):
        folder = tmp_path / f"shard{k}"
        (folder / "feedback").mkdir(parents=True)
        grade.write_csv(folder / "gradebook.csv", header, part)
        for row in part:
            target = folder / "feedback" / (row["submission"] + ".html")
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_text(row["submission"])
    assert grade.main(["--merge", str(tmp_path / "shard0"), str(tmp_path / "shard1"), "--out", str(tmp_path / "all")]) == 0
    assert (tmp_path / "all" / "gradebook.csv").read_text() == (graded["out"] / "gradebook.csv").read_text()
    assert len(list((tmp_path / "all" / "feedback").rglob("*.html"))) == len(rows)


def test_shards_partition_the_class(graded):
    everything = [p.relative_to(graded["class"]).as_posix() for p in grade.discover(graded["class"])]
    parts = [grade.select_shard(everything, k, 3) for k in (1, 2, 3)]
    assert sorted(sum(parts, [])) == sorted(everything) and all(parts)
    assert grade.select_shard(everything, 2, 3) == parts[1]  # the same every time


def test_instructor_mistakes_exit_2(tmp_path, capsys):
    assert grade.main([str(tmp_path / "missing"), "--out", str(tmp_path / "out")]) == 2
    assert "no such folder" in capsys.readouterr().err
    assert grade.main([str(tmp_path), "--out", str(tmp_path / "out"), "--shard", "3/2"]) == 2
    with pytest.raises(SystemExit):
        grade.main([str(tmp_path)])  # --out is required


def test_a_kernel_that_dies_keeps_what_was_checked(tmp_path):
    slot = grade.Slot(tmp_path, 10)
    try:
        run = grade.run_cells([
            "import sys, os\nsys.path.insert(0, os.path.abspath('..'))\nimport torch\nfrom cmp import cmp",
            "x = torch.ones(3, requires_grad=True)\n(2 * x).sum().backward()\ncmp('x', torch.full((3,), 2.0), x)",
            "os._exit(3)",
            "cmp('y', None, x)",
        ], timeout=TIMEOUT, scratch=tmp_path, slot=slot)
    finally:
        slot.close()
    assert run["returncode"] == 3 and not run["timed_out"] and not run["progress"]["done"]
    assert [(r["name"], r["passed"]) for r in run["progress"]["results"]] == [("x", True)]
    assert run["progress"]["running"] == 2


# ---------------------------------------------------------------------------
# Without a kernel


def group(name, number="01"):
    return next(g for g in COURSE[number].groups if g.names[0] == name)


@pytest.mark.parametrize("code, why", [
    ("dprobs = probs.grad", "autograd"),
    ("dprobs = getattr(probs, 'gr' + 'ad')", "getattr"),
    ("loss.backward()\ndprobs = None", "backward"),
    ("dprobs = torch.autograd.grad(loss, probs)[0]", "autograd"),
    ("dprobs = torch.func.vjp(lambda p: p, probs)[1]", "torch.func"),
    ("from torch.autograd import grad", "imports"),
    ("dprobs = eval('probs' + '.grad')", "eval"),
    ("dprobs = probs.__class__", "underscore"),
    ("cmp = lambda *args: True\ndprobs = 0", "checker"),
    ("probs = dlogprobs\ndprobs = dlogprobs", "compare against"),
    ("dprobs = torch.ops.aten.mul(probs, 1)", "torch.ops"),
    ("dprobs = Out[3]", "history"),
    ("torch.allclose = lambda *args, **kwargs: True\ndprobs = 0", "changes an attribute"),
    ("dprobs = np.loadtxt('../job.json')", "files"),
    ("%time dprobs = 1", "magic"),
    ("dprobs = (", "not valid Python"),
])
def test_static_check_rejects(code, why):
    reason = gc.static_check(code.splitlines(), COURSE["01"], group("dprobs"))
    assert reason and why in reason, reason


@pytest.mark.parametrize("code", [
    "dprobs = (1.0 / probs) * dlogprobs",
    "dprobs = torch.zeros_like(probs)\nfor i in range(n):\n    dprobs[i] = dlogprobs[i] / probs[i]",
    "dprobs = dlogprobs / probs  # probs.grad would be cheating",
    "dprobs = F.one_hot(Yb, vocab_size).float() * dlogprobs / probs.detach()",
])
def test_static_check_allows(code):
    assert gc.static_check(code.splitlines(), COURSE["01"], group("dprobs")) is None


def test_every_solution_answer_passes_the_static_check():
    for exercise in COURSE.values():
        for g in exercise.groups:
            assert gc.static_check(g.solution, exercise, g) is None, (exercise.name, g.names)


def test_extract_takes_the_lines_where_the_placeholder_was():
    exercise = COURSE["01"]
    g = group("dprobs")
    answer = exercise.answers[g.cell_id]
    cmp_line = next(l for p in answer.parts if p[0] == "code" for l in p[1] if l.startswith("cmp("))
    student = f"# my try\nx = 1.0 / probs\ndprobs = x * dlogprobs\n\n{cmp_line}\nprint(dprobs.shape)"
    assert gc.extract(answer, student) == {g.key: ["# my try", "x = 1.0 / probs", "dprobs = x * dlogprobs"]}
    edited = f"x = 1.0 / probs\ndprobs = x * dlogprobs\nresult = {cmp_line}\n{cmp_line[:-1]}, atol=1)"  # check edited
    assert gc.extract(answer, edited) == {g.key: ["x = 1.0 / probs", "dprobs = x * dlogprobs"]}
    assert gc.extract(answer, cmp_line) == {g.key: None}  # the TODO line deleted


def test_extract_reindents_a_function_body():
    exercise = COURSE["04"]
    g = group("dhpreact", "04")
    answer = exercise.answers[g.cell_id]
    lines = answer.exercise_lines
    student = "\n".join(lines).replace(g.placeholders[0], "dhpreact = (1 - h**2) * dh")  # not indented
    assert gc.extract(answer, student) == {g.key: [g.indent + "dhpreact = (1 - h**2) * dh"]}


def test_identify_by_ids_and_by_content():
    for number, exercise in COURSE.items():
        nb = nbformat.read(grade_class.ROOT / "notebooks" / exercise.name, as_version=4)
        cells = [{"id": c.get("id"), "cell_type": c.cell_type, "source": c.source} for c in nb.cells]
        assert gc.identify(cells, COURSE) == number
        assert gc.identify([dict(c, id=None) for c in cells], COURSE) == number
    assert gc.identify([{"id": "abc", "cell_type": "code", "source": "print(1)"}], COURSE) is None


def test_the_same_inputs_give_the_same_outputs(tmp_path):
    cls = tmp_path / "class"
    grade_class.save(grade_class.answer_notebook("02", {"dlogits": "dlogits = F.softmax(logits, 1) / n"},
                                                 course=COURSE), cls / "b" / "ex2.ipynb")
    (cls / "a.ipynb").write_text("{")
    outputs = []
    for k in range(2):
        out = tmp_path / f"out{k}"
        assert grade.main([str(cls), "--out", str(out), "--timeout", str(TIMEOUT), "--no-progress"]) == 0
        outputs.append({p.relative_to(out).as_posix(): p.read_text() for p in sorted(out.rglob("*")) if p.is_file()})
    assert outputs[0] == outputs[1]
    assert sorted(outputs[0]) == ["feedback/a.ipynb.html", "feedback/b/ex2.ipynb.html", "gradebook.csv", "items.csv"]
    rows = list(csv.DictReader(outputs[0]["gradebook.csv"].splitlines()))
    assert [(r["submission"], r["status"], r["02:logits"]) for r in rows] == [("a.ipynb", "error", ""),
                                                                               ("b/ex2.ipynb", "graded", "0")]
