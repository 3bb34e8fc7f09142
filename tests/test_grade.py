"""The autograder (tools/grade.py, the package tools/grader/) on a class made from the course's notebooks.

One grading run (two submissions at a time, the hidden batch's seed fixed) grades a class of
exercise-1 submissions (full marks, blank, one wrong gradient, every answer copied from `.grad`, an
endless loop, `os._exit`, honest answers in unusual forms), exercises 2, 3 and 5, files that are not
notebooks, and an exercise-4 trio (full marks, one wrong layer, honest variants) at 60 training steps;
every row of its gradebook is checked. Cells reordered, added or deleted and cell ids lost are
checked without running anything; so are the allow-list, the answer extraction, shards and merge.
Attacks by a student who has read this code: tests/test_grade_attacks.py.
"""
import csv
import html
import json
import random
import shutil

import nbformat
import pytest

import grade
import grade_class
from grader import cli, policy, reference, report, sandbox, submissions
from grader import course as gc

TIMEOUT = 2  # per answer and batch (the worker's start not included); answers take milliseconds
SEED = 12345
COURSE = gc.load_course()
N01 = len(COURSE["01"].groups)  # 26 blanks, one name each
ITEMS01 = [g.names[0] for g in COURSE["01"].groups]
ITEMS04 = ["cross_entropy_backward", "linear2_backward", "tanh_backward", "batchnorm_backward", "linear1_backward",
           "embedding_backward", "backward"]


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
    answer = lambda number, answers=None, **kw: grade_class.answer_notebook(number, answers, course=COURSE, **kw)
    full = answer("01")
    grade_class.save(full, cls / "full.ipynb")
    grade_class.save(answer("01", blank=True), cls / "blank.ipynb")
    huge_output = 'print("x" * 30_000_000)  # a huge output\n'
    grade_class.save(answer("01", {"dprobs": huge_output + "dprobs = 2 * dlogprobs / probs"}), cls / "wrong" / "one.ipynb")
    copied = {g.names[0]: f"{g.names[0]} = {g.names[0][1:]}.grad" for g in COURSE["01"].groups}
    grade_class.save(answer("01", copied), cls / "copied.ipynb")
    grade_class.save(answer("01", {"dcounts": "while True:\n    pass"}), cls / "endless_loop.ipynb")
    grade_class.save(answer("01", {"dcounts": "import os\nos._exit(1)",
                                   "dh": "dh = dlogits @ W2.T @ undefined_name"}), cls / "exit.ipynb")
    honest = answer("01", {
        "dlogprobs": "_rows = range(n)  # an underscore name of my own\ndlogprobs = torch.zeros_like(logprobs)\n"
                     "dlogprobs[_rows, Yb] = -1.0 / n",
        "dprobs": "dprobs = reciprocal_of(probs) * dlogprobs",  # a helper from a cell of my own
        "dh": "dh = torch.einsum('bj,ij->bi', dlogits, W2)",
        "dC": "dC = torch.zeros_like(C)\nfor k in range(Xb.shape[0]):\n    for j in range(Xb.shape[1]):\n"
              "        dC[Xb[k, j]] += demb[k, j]",
        "dbnvar": "with torch.no_grad():\n    dbnvar = (-0.5 * (bnvar + 1e-5)**-1.5) * dbnvar_inv",
    })
    honest.cells.insert(3, nbformat.v4.new_code_cell("def reciprocal_of(x):\n    return 1.0 / x"))
    grade_class.save(honest, cls / "honest.ipynb")
    labels = reference.run(COURSE["01"]).entries[group("dlogprobs").key][0].inputs["Yb"].tolist()
    hard_coded = f"dlogprobs = torch.zeros(32, 27)\ndlogprobs[range(32), {labels}] = -1.0 / 32"
    grade_class.save(answer("01", {"dlogprobs": hard_coded}), cls / "hard_coded.ipynb")
    grade_class.save(answer("00", {"dA_product": "dA_product = dA"}), cls / "ex0_copy.ipynb")
    grade_class.save(answer("03", {"dhprebn": "dhprebn = dhprebn_paths"}), cls / "ex3_copy.ipynb")
    grade_class.save(answer("02"), cls / "ex2.ipynb")
    smoothed = {"dlogits_ls": "q = torch.full((n, vocab_size), eps / vocab_size)\nq[range(n), Yb] += 1 - eps\n"
                              "dlogits_ls = (F.softmax(logits, 1) - q) / n",  # the target built as a tensor
                "gap": "gap = math.log(vocab_size * (1 - eps) / eps)"}  # 243, not 244: the + 1 left out
    grade_class.save(answer("02", smoothed), cls / "ex2_transfer.ipynb")
    grade_class.save(answer("03", {"dbnbias": "dbnbias = dhpreact.sum(0)"}), cls / "ex3.ipynb")
    grade_class.save(answer("04"), cls / "ex4" / "full.ipynb")
    wrong_layer = {"dlogits": "dlogits = F.softmax(logits, 1) - F.one_hot(Yb, vocab_size)"}  # the 1/n left out
    grade_class.save(answer("04", wrong_layer), cls / "ex4" / "wrong.ipynb")
    honest4 = {"dlogits": "with torch.no_grad():\n    dlogits = F.softmax(logits, 1)\n"
                          "    dlogits[range(n), Yb] -= 1\n    dlogits = dlogits / n",
               "dhpreact": "dhpreact = (1 - h**2) * dh",
               "dembcat": "dembcat = dhprebn @ W1.T\ndW1 = embcat.T @ dhprebn\ndb1 = dhprebn.sum(0)",
               "dC": "while True:\n    pass"}  # one endless function costs its own item
    grade_class.save(answer("04", honest4), cls / "ex4" / "honest.ipynb")
    grade_class.save(answer("05"), cls / "ex5" / "full.ipynb")
    grade_class.save(answer("05", blank=True), cls / "ex5" / "blank.ipynb")
    (cls / "corrupt.ipynb").write_text(nbformat.writes(full)[:3000])
    (cls / "notes.ipynb").write_text("backprop is the chain rule, applied tensor by tensor\n")
    grade_class.save(nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell("print(1)")]), cls / "mine.ipynb")
    (cls / ".ipynb_checkpoints").mkdir()
    shutil.copy(cls / "blank.ipynb", cls / ".ipynb_checkpoints" / "blank-checkpoint.ipynb")
    code = grade.main([str(cls), "--out", str(out), "--jobs", "2", "--timeout", str(TIMEOUT), "--seed", str(SEED),
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
        "blank.ipynb", "copied.ipynb", "corrupt.ipynb", "ex0_copy.ipynb", "ex3_copy.ipynb", "hard_coded.ipynb",
        "ex2.ipynb", "ex2_transfer.ipynb", "ex3.ipynb", "ex4/full.ipynb",
        "ex4/honest.ipynb", "ex4/wrong.ipynb", "ex5/blank.ipynb", "ex5/full.ipynb", "exit.ipynb", "full.ipynb",
        "endless_loop.ipynb", "honest.ipynb", "mine.ipynb", "notes.ipynb", "wrong/one.ipynb"])  # checkpoints skipped
    for submission in graded["rows"]:
        assert (graded["out"] / "feedback" / f"{submission}.html").is_file()
    run = json.loads((graded["out"] / "run.json").read_text())
    assert run["hidden_batch_seed"] == SEED and run["sandbox"].startswith("bubblewrap sandbox"), run


def test_columns(graded):
    header = (graded["out"] / "gradebook.csv").read_text().splitlines()[0].split(",")
    assert header[:6] == ["submission", "exercise", "score", "max_score", "status", "message"]
    assert [c for c in header if c.startswith("01:")] == [f"01:{n}" for n in ITEMS01]
    assert "02:dlogits" in header and {"03:dbngain", "03:dbnbias", "03:dhprebn"} <= set(header)
    assert [c for c in header if c.startswith("04:")] == [f"04:{n}" for n in ITEMS04] + ["04:training"]
    assert {"05:dead", "05:dead_fraction", "05:clip_gradients", "05:fixed_1"} <= set(header)


def test_full_marks(graded):
    row = graded["rows"]["full.ipynb"]
    assert (row["exercise"], row["status"], row["score"], row["max_score"]) == ("01", "graded", "26", "26")
    assert points(row, "01", ITEMS01) == [1] * N01
    assert row["message"] == ""


def test_honest_answers_in_unusual_forms_get_full_marks(graded):
    row = graded["rows"]["honest.ipynb"]
    assert (row["status"], row["score"], row["message"]) == ("graded", "26", "")


def test_numbers_copied_from_the_notebooks_batch_score_nothing(graded):
    row = graded["rows"]["hard_coded.ipynb"]
    assert points(row, "01", ITEMS01) == [0] + [1] * 25
    item = graded["items"][("hard_coded.ipynb", "dlogprobs")]
    assert item["status"] == "wrong"
    page = html.unescape(feedback(graded, "hard_coded.ipynb"))
    assert "right on the notebook's batch but not on a batch the grader chose" in page


def test_an_earlier_answer_cannot_be_copied_into_its_rewrite(graded):
    row = graded["rows"]["ex3_copy.ipynb"]
    assert row["03:dhprebn"] == "0" and row["03:dhprebn_paths"] == "1"
    assert "NameError" in feedback(graded, "ex3_copy.ipynb")
    row = graded["rows"]["ex0_copy.ipynb"]
    assert row["00:dA_product"] == "0" and row["00:dA"] == "1" and int(row["score"]) == int(row["max_score"]) - 1


def test_reordered_added_deleted_cells_and_lost_ids_grade_the_same(tmp_path):
    full = grade_class.answer_notebook("01", course=COURSE)
    grade_class.save(full, tmp_path / "full.ipynb")
    shuffled = grade_class.answer_notebook("01", course=COURSE)
    random.Random(1).shuffle(shuffled.cells)
    shuffled.cells.insert(2, nbformat.v4.new_code_cell("print('my own cell')"))
    shuffled.cells = [c for c in shuffled.cells if c.cell_type == "code"]  # every markdown cell deleted
    grade_class.save(shuffled, tmp_path / "reordered.ipynb")
    (tmp_path / "no_ids.ipynb").write_text(without_ids(shuffled))
    expected = cli.prepare(tmp_path / "full.ipynb", COURSE)
    assert expected[:3] == ("graded", "01", "") and all(v is not None for v in expected[3].values())
    for name in ["reordered.ipynb", "no_ids.ipynb"]:
        assert cli.prepare(tmp_path / name, COURSE)[:4] == expected[:4]
    del shuffled.cells[[c.get("id") for c in shuffled.cells].index(group("dprobs").cell_id)]
    grade_class.save(shuffled, tmp_path / "deleted.ipynb")
    answers = cli.prepare(tmp_path / "deleted.ipynb", COURSE)[3]
    assert set(expected[3]) - set(answers) == {group("dprobs").key}  # graded as "missing"


def test_blank(graded):
    row = graded["rows"]["blank.ipynb"]
    assert (row["status"], row["score"], row["max_score"]) == ("graded", "0", "26")
    assert "26 not done yet" in row["message"]
    assert all(graded["items"][("blank.ipynb", n)]["status"] == "not done" for n in ITEMS01)


def test_one_wrong_gradient_costs_one_point(graded):
    row = graded["rows"]["wrong/one.ipynb"]
    assert (row["status"], row["score"]) == ("graded", "25")
    assert points(row, "01", ITEMS01) == [1, 0] + [1] * 24
    item = graded["items"][("wrong/one.ipynb", "dprobs")]
    assert (item["status"], item["diagnosis"]) == ("wrong", "constant_factor")  # cmp's rule, run by the grader
    assert "2 times" in feedback(graded, "wrong/one.ipynb")


def test_answers_copied_from_autograd_score_nothing(graded):
    row = graded["rows"]["copied.ipynb"]
    assert (row["status"], row["score"]) == ("graded", "0")
    assert "26 answer(s) not run" in row["message"]
    assert all(graded["items"][("copied.ipynb", n)]["status"] == "not run" for n in ITEMS01)
    assert "not on the list of tensor methods" in feedback(graded, "copied.ipynb")


def test_an_endless_loop_costs_its_item(graded):
    row = graded["rows"]["endless_loop.ipynb"]
    assert row["status"] == "timeout"
    assert row["message"] == "1 answer(s) ran out of time: `dcounts`"
    assert points(row, "01", ITEMS01) == [1, 1, 1, 1, 0] + [1] * 21
    assert graded["items"][("endless_loop.ipynb", "dcounts")]["status"] == "timeout"


def test_os_exit_is_not_run_and_an_answer_that_raises_costs_its_item(graded):
    row = graded["rows"]["exit.ipynb"]
    assert (row["status"], row["score"]) == ("graded", "24")
    assert graded["items"][("exit.ipynb", "dcounts")]["status"] == "not run"
    assert graded["items"][("exit.ipynb", "dh")]["status"] == "error"
    assert "1 answer(s) not run" in row["message"] and "1 answer(s) raised an error" in row["message"]
    page = feedback(graded, "exit.ipynb")
    assert "imports a module" in page and "NameError: name &#x27;undefined_name&#x27; is not defined" in page


def test_files_that_cannot_be_graded(graded):
    rows = graded["rows"]
    assert (rows["corrupt.ipynb"]["status"], rows["corrupt.ipynb"]["exercise"]) == ("error", "")
    assert "JSON is invalid" in rows["corrupt.ipynb"]["message"]
    assert rows["notes.ipynb"]["status"] == "not a notebook"
    assert rows["mine.ipynb"]["status"] == "not an exercise"
    for name in ["corrupt.ipynb", "notes.ipynb", "mine.ipynb"]:
        assert rows[name]["score"] == "" and rows[name]["01:dlogprobs"] == ""


def test_exercises_2_and_3(graded):
    row = graded["rows"]["ex2.ipynb"]
    assert (row["exercise"], row["status"]) == ("02", "graded") and row["score"] == row["max_score"]
    assert row["02:dlogits"] == row["02:dlogits_ls"] == row["02:gap"] == "1" and row["max_score"] == "6"
    row = graded["rows"]["ex2_transfer.ipynb"]
    assert row["02:dlogits_ls"] == "1" and row["02:gap"] == "0" and int(row["score"]) == 5
    item = graded["items"][("ex2_transfer.ipynb", "gap")]
    assert (item["status"], item["points"]) == ("wrong", "0"), item  # compared with the solution's value, not crashed
    row = graded["rows"]["ex3.ipynb"]
    assert (row["exercise"], row["status"]) == ("03", "graded")
    assert int(row["score"]) == int(row["max_score"]) - 1 and row["03:dbnbias"] == "0"  # (64,) for a (1, 64)
    assert row["03:dbngain"] == row["03:dhprebn"] == "1"


def test_exercise_4_grades_each_function_alone_and_training(graded):
    row = graded["rows"]["ex4/full.ipynb"]
    assert (row["exercise"], row["status"], row["score"], row["max_score"]) == ("04", "graded", "8", "8")
    assert graded["items"][("ex4/full.ipynb", "training")]["status"] == "reached"
    row = graded["rows"]["ex4/wrong.ipynb"]  # backward calls the student's own layers: the wrong one too
    assert points(row, "04", ITEMS04 + ["training"]) == [0] + [1] * 5 + [0, 0]
    assert graded["items"][("ex4/wrong.ipynb", "backward")]["status"] == "not checked"  # it calls the wrong layer
    assert graded["items"][("ex4/wrong.ipynb", "training")]["status"] == "not run"


def test_exercise_4_honest_variants_and_one_endless_function(graded):
    row = graded["rows"]["ex4/honest.ipynb"]
    assert points(row, "04", ITEMS04) == [1, 1, 1, 1, 1, 0, 0], row  # torch.no_grad() is fine
    assert graded["items"][("ex4/honest.ipynb", "embedding_backward")]["status"] == "timeout"
    assert row["status"] == "timeout"


def test_exercise_5_is_graded(graded):
    full, blank = graded["rows"]["ex5/full.ipynb"], graded["rows"]["ex5/blank.ipynb"]
    assert int(full["max_score"]) == len(COURSE["05"].items) >= 9
    assert (full["score"], blank["score"]) == (full["max_score"], "0")


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
        report.write_csv(folder / "gradebook.csv", header, part)
        for row in part:
            target = folder / "feedback" / (row["submission"] + ".html")
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_text(row["submission"])
    assert grade.main(["--merge", str(tmp_path / "shard0"), str(tmp_path / "shard1"), "--out", str(tmp_path / "all")]) == 0
    assert (tmp_path / "all" / "gradebook.csv").read_text() == (graded["out"] / "gradebook.csv").read_text()
    assert len(list((tmp_path / "all" / "feedback").rglob("*.html"))) == len(rows)


def test_shards_partition_the_class(graded):
    everything = [p.relative_to(graded["class"]).as_posix() for p in cli.discover(graded["class"])]
    parts = [cli.select_shard(everything, k, 3) for k in (1, 2, 3)]
    assert sorted(sum(parts, [])) == sorted(everything) and all(parts)
    assert cli.select_shard(everything, 2, 3) == parts[1]  # the same every time


def test_instructor_mistakes_exit_2(tmp_path, capsys):
    assert grade.main([str(tmp_path / "missing"), "--out", str(tmp_path / "out")]) == 2
    assert "no such folder" in capsys.readouterr().err
    assert grade.main([str(tmp_path), "--out", str(tmp_path / "out"), "--shard", "3/2"]) == 2
    with pytest.raises(SystemExit):
        grade.main([str(tmp_path)])  # --out is required


# ---------------------------------------------------------------------------
# Without running anything


def group(name, number="01"):
    return next(g for g in COURSE[number].groups if g.names[0] == name)


@pytest.mark.parametrize("code, why", [
    ("dprobs = probs.grad", "`.grad`"),
    ("dprobs = getattr(probs, 'gr' + 'ad')", "builtin `getattr`"),
    ("loss.backward()\ndprobs = None", "`.backward`"),
    ("dprobs = torch.autograd.grad(loss, probs)[0]", "`.grad`"),
    ("dprobs = torch.func.vjp(lambda p: p, probs)[1]", "`.vjp`"),
    ("dprobs = torch.builtins.getattr(probs, 'grad')", "`.getattr`"),
    ("dprobs = torch.sys.modules", "`.modules`"),
    ("from torch.autograd import grad", "imports"),
    ("dprobs = eval('probs' + '.grad')", "builtin `eval`"),
    ("dprobs = '{0.grad}'.format(probs)", "`.format`"),
    ("match probs:\n    case object(grad=g):\n        dprobs = g", "match"),
    ("dprobs = probs.__class__", "underscore"),
    ("dprobs = probs._version", "underscore"),
    ("dprobs = __builtins__", "two underscores"),
    ("dprobs = vars()", "builtin `vars`"),
    ("torch.allclose = lambda *args, **kwargs: True\ndprobs = 0", "changes an attribute"),
    ("dprobs = np.loadtxt('../job.json')", "`.loadtxt`"),
    ("dprobs = open('/etc/passwd')", "builtin `open`"),
    ("with torch.enable_grad():\n    dprobs = 0", "`.enable_grad`"),
    ("dprobs = probs.requires_grad_()", "`.requires_grad_`"),
    ("class A:\n    pass", "class"),
    ("global probs\ndprobs = 0", "global"),
    ("%time dprobs = 1", "magic"),
    ("dprobs = (", "not valid Python"),
])
def test_policy_rejects(code, why):
    reason = policy.check(code)
    assert reason and why in reason, reason


@pytest.mark.parametrize("code", [
    "dprobs = (1.0 / probs) * dlogprobs",
    "dprobs = torch.zeros_like(probs)\nfor i in range(n):\n    dprobs[i] = dlogprobs[i] / probs[i]",
    "dprobs = dlogprobs / probs  # probs.grad would be cheating",
    "_inv = 1 / probs\ndprobs = _inv * dlogprobs",
    "def helper(x):\n    return 1 / x\ndprobs = helper(probs) * dlogprobs",
    "with torch.no_grad():\n    dprobs = torch.einsum('ij,ij->ij', dlogprobs, probs.reciprocal())",
    "dprobs = F.one_hot(Yb, vocab_size).float() * dlogprobs / probs.detach()",
    "rows = []\nfor i in range(n):\n    rows.append(dlogprobs[i] / probs[i])\ndprobs = torch.stack(rows)",
    "dprobs = dlogprobs * torch.exp(-torch.log(probs)) * math.e ** 0",
])
def test_policy_allows(code):
    assert policy.check(code) is None


def test_every_solution_answer_passes_the_policy():
    for exercise in COURSE.values():
        for g in exercise.groups:
            assert policy.check("\n".join(g.solution)) is None, (exercise.name, g.names)


def test_extract_takes_the_lines_where_the_placeholder_was():
    exercise = COURSE["01"]
    g = group("dprobs")
    answer = exercise.answers[g.cell_id]
    cmp_line = next(l for p in answer.parts if isinstance(p, gc.Code) for l in p.lines if l.startswith("cmp("))
    student = f"# my try\nx = 1.0 / probs\ndprobs = x * dlogprobs\n\n{cmp_line}\nprint(dprobs.shape)"
    assert submissions.extract(answer, student) == {g.key: ["# my try", "x = 1.0 / probs", "dprobs = x * dlogprobs"]}
    edited = f"x = 1.0 / probs\ndprobs = x * dlogprobs\nresult = {cmp_line}\n{cmp_line[:-1]}, atol=1)"  # check edited
    assert submissions.extract(answer, edited) == {g.key: ["x = 1.0 / probs", "dprobs = x * dlogprobs"]}
    split = f"dprobs = x * dlogprobs\n{cmp_line[:-1]},\n    strict=False)"  # a check line split over two lines
    assert submissions.extract(answer, split) == {g.key: ["dprobs = x * dlogprobs"]}
    assert submissions.extract(answer, cmp_line) == {g.key: None}  # the TODO line deleted


def test_extract_reindents_a_function_body():
    exercise = COURSE["04"]
    g = group("dhpreact", "04")
    answer = exercise.answers[g.cell_id]
    student = "\n".join(answer.exercise_lines).replace(g.placeholders[0], "dhpreact = (1 - h**2) * dh")  # not indented
    assert submissions.extract(answer, student) == {g.key: [g.indent + "dhpreact = (1 - h**2) * dh"]}


def test_identify_by_ids_and_by_content():
    for number, exercise in COURSE.items():
        nb = nbformat.read(grade_class.ROOT / "notebooks" / exercise.name, as_version=4)
        cells = [{"id": c.get("id"), "cell_type": c.cell_type, "source": c.source} for c in nb.cells]
        assert submissions.identify(cells, COURSE) == number
        assert submissions.identify([dict(c, id=None) for c in cells], COURSE) == number
    assert submissions.identify([{"id": "abc", "cell_type": "code", "source": "print(1)"}], COURSE) is None


def test_the_same_inputs_give_the_same_outputs(tmp_path):
    cls = tmp_path / "class"
    grade_class.save(grade_class.answer_notebook("02", {"dlogits": "dlogits = F.softmax(logits, 1) / n"},
                                                 course=COURSE), cls / "b" / "ex2.ipynb")
    (cls / "a.ipynb").write_text("{")
    outputs = []
    for k in range(2):
        out = tmp_path / f"out{k}"
        assert grade.main([str(cls), "--out", str(out), "--timeout", str(TIMEOUT), "--seed", str(SEED),
                           "--train-steps", "60", "--no-progress"]) == 0
        outputs.append({p.relative_to(out).as_posix(): p.read_text() for p in sorted(out.rglob("*")) if p.is_file()})
    assert outputs[0] == outputs[1]
    assert sorted(outputs[0]) == ["feedback/a.ipynb.html", "feedback/b/ex2.ipynb.html", "gradebook.csv", "items.csv",
                                  "run.json"]
    rows = list(csv.DictReader(outputs[0]["gradebook.csv"].splitlines()))
    assert [(r["submission"], r["status"], r["02:dlogits"]) for r in rows] == [("a.ipynb", "error", ""),
                                                                               ("b/ex2.ipynb", "graded", "0")]


def test_without_bubblewrap_the_grader_says_so_and_isolates_processes(tmp_path, monkeypatch, capsys):
    monkeypatch.setattr(sandbox, "_BWRAP", (False, "bubblewrap cannot start a sandbox here: (as on macOS)"))
    cls = tmp_path / "class"
    grade_class.save(grade_class.answer_notebook("02", course=COURSE), cls / "ex2.ipynb")
    rows = cli.grade(cls, tmp_path / "out", timeout=TIMEOUT, seed=SEED, train_steps=60, progress_bar=False)
    assert [(r["status"], r["score"] == r["max_score"]) for r in rows] == [("graded", True)]
    assert capsys.readouterr().err.count("warning: process isolation only") == 1
    run = json.loads((tmp_path / "out" / "run.json").read_text())
    assert run["sandbox"].startswith("process isolation only"), run
