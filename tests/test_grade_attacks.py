"""Attacks on the autograder (tools/grader/) by a student who has read its source.

One grading run (module fixture `graded`) grades a class of attacking submissions next to an honest
full-marks submission of each exercise 00 to 05. Every attack fills one blank of an otherwise honest
notebook (several attacks share a notebook when they fill different blanks) or is a whole file. For
every attack: the item it fills scores 0, every other item of its notebook keeps its point, the honest
notebooks get full marks, and the run ends normally with one row per file.

The attacks: autograd reached in disguise (getattr, torch.sys.modules, match/case, format strings,
vars, __class__ chains, lambdas, grad_fn, torch.autograd, torch.func, requires_grad_, enable_grad),
patching (torch.allclose, cmp), reading the solutions or the hidden seed, writing files, killing the
parent, forking, an endless loop, 50 MB printed, 20 GB allocated, an answer over the frame cap, numbers
copied from the notebook's batch (and exercise 0's, which has none), values that are not gradients
(functions, meta, complex, NaN, huge ints, deep nesting), input poisoning, exceptions carrying HTML or
a lone surrogate, `return` in a function's blank, numerical differentiation and the warm-up's fixed numbers (KNOWN_LIMITS:
they still score, as tools/README.md says), and files
built to break the grader's own reading (deep JSON, a 5000-digit number, nbformat-3 junk, code too
deep for `ast`, a NUL byte, a symlink to a solution, a spreadsheet formula or bytes that are not UTF-8
as the file name).

Apart from the run: a worker's start-up grace is not time for an endless first answer, and
(test_sandbox_*) what the sandbox promises is checked at the OS level with programs that
bypass the allow-list: our own script started with sandbox._bwrap_command's bubblewrap options, and
the real worker sent code the grader's policy would refuse.
"""
import contextlib
import csv
import io
import json
import os
import select
import signal
import socket
import sys
import textwrap
import threading
import time
import uuid
from dataclasses import dataclass

import nbformat
import pytest

import grade_class
from grader import cli, policy, run, sandbox
from grader import plan as planning
from grader import course as gc

COURSE = gc.load_course()
SEED = 12345  # tests/test_grade.py's: cli._RECORDINGS then shares the references when both run
TIMEOUT = 2  # per answer and batch; answers take milliseconds, and the worker's start is not counted
TRAIN_STEPS = 60
SOLUTION_01 = gc.SOLUTIONS / "01_atomic_backward.ipynb"
HONEST = {number: f"honest_{number}.ipynb" for number in ["00", "01", "02", "03", "04", "05"]}
@pytest.fixture
def bubblewrap():
    """The sandbox tests need bubblewrap: without it they fail and say how to get it (never skip)."""
    usable, why = sandbox.bubblewrap_status()
    assert usable, f"{why}: install Debian's bubblewrap (apt-get install bubblewrap), as .ci/run does"


BWRAP = pytest.mark.usefixtures("bubblewrap")


@dataclass
class Attack:
    name: str            # the test id
    file: str            # the submission it is in
    key: str             # the blank it fills: its function (04, 05) or the first name it assigns; None: a file
    code: str = ""
    items: tuple = ()    # the items that must score 0 (a file attack: every item of the file)
    exercise: str = "01"
    cells: tuple = ()    # code cells of the student's own added to the notebook (a file attack: to one
                         # without answer cells, so that no worker starts for it)
    alone: bool = False  # the notebook has no other answer cells (the grader may refuse it whole)


def notebook(number, answers=(), *, cells=()):
    """The exercise notebook as a student hands it in: `answers` {blank: code} (a blank is named by its
    function or the first name it assigns, see Attack.key), the solution's code in the other blanks."""
    return grade_class.answer_notebook(number, dict(answers), course=COURSE, cells=cells)


def notebook_namespace(number, last_cell_id):
    """The namespace of the solution notebook run (in this process) up to and including a cell."""
    namespace, cwd = {"__name__": "__main__"}, os.getcwd()
    os.chdir(gc.SOLUTIONS)
    try:
        with contextlib.redirect_stdout(io.StringIO()):
            for cell in COURSE[number].cells:
                exec(compile(cell["source"], cell["id"], "exec"), namespace)
                if cell["id"] == last_cell_id:
                    return namespace
    finally:
        os.chdir(cwd)
    raise KeyError(last_cell_id)


def hard_coded():
    """Answers with numbers copied from the notebook's own batch (right there, wrong on the hidden one)."""
    labels = notebook_namespace("01", "a5e7e72d")["Yb"].tolist()  # exercise 1's batch
    dbngain = notebook_namespace("03", "12c57ec0")["bngain"].grad.tolist()  # autograd's, exercise 3's batch
    return {"01": f"dlogprobs = torch.zeros(32, 27)\ndlogprobs[range(32), {labels}] = -1.0 / 32",
            "03": f"dbngain = torch.tensor({dbngain})"}


# Finite differences of the loss in float64: no derivation, only the forward pass the notebook shows.
NUMERICAL_DLOGITS = """
x = logits.double()
k, e = x.numel(), 1e-6
bumps = torch.eye(k, dtype=torch.float64).view(k, x.shape[0], x.shape[1]) * e
def batch_losses(z):
    per_example = F.cross_entropy(z.reshape(-1, z.shape[2]), Yb.repeat(z.shape[0]), reduction="none")
    return per_example.view(z.shape[0], -1).mean(1)
dlogits = ((batch_losses(x + bumps) - batch_losses(x - bumps)) / (2 * e)).view(x.shape).float()
"""
DEEP_SUM = "dl = " + "+".join(["l"] * 100_000)       # ast.parse: RecursionError
DEEP_UNARY = "y = " + "-" * 100_000 + "1"             # ast.parse: MemoryError
P01, R01 = "policy_01.ipynb", "runtime_01.ipynb"
FORMULA = '=HYPERLINK("evil.example","grade").ipynb'  # a name a student may choose when uploading
NOT_UTF8 = "\udcff.ipynb"  # the byte 0xff: a name from a zip file, as Python decodes it

ATTACKS = [
    # --- exercise 1, answers the allow-list must refuse (autograd, the file system, processes) ---
    Attack("getattr", P01, "dprobs", 'dprobs = getattr(probs, "gr" + "ad")'),
    Attack("torch_sys_modules", P01, "dcounts_sum_inv",
           'dcounts_sum_inv = torch.sys.modules["torch"].autograd.grad(loss, counts_sum_inv)[0]'),
    Attack("match_case_object", P01, "dcounts_sum",
           "match counts_sum:\n    case object(grad=g):\n        dcounts_sum = g"),
    Attack("format_string", P01, "dcounts", 'dcounts = "{0.grad}".format(counts)  # then float() of its parts'),
    Attack("vars", P01, "dnorm_logits", 'dnorm_logits = vars(norm_logits)["grad"]'),
    Attack("class_chain", P01, "dlogit_maxes",
           "dlogit_maxes = logit_maxes.__class__.grad.__get__(logit_maxes)"),
    Attack("lambda", P01, "dlogits", "dlogits = (lambda t: t.grad)(logits)"),
    Attack("grad_fn", P01, "dh", "dh = logits.grad_fn(dlogits)[1]"),
    Attack("autograd_grad", P01, "dW2", "dW2, = torch.autograd.grad(loss, [W2])"),
    Attack("torch_func", P01, "db2", "db2 = torch.func.grad(lambda b: F.cross_entropy(h @ W2 + b, Yb))(b2)"),
    Attack("requires_grad", P01, "dhpreact",
           "hp = hpreact.clone().requires_grad_()\nF.cross_entropy(torch.tanh(hp) @ W2 + b2, Yb).backward()\n"
           "dhpreact = hp.grad"),
    Attack("enable_grad", P01, "dbngain",
           "with torch.enable_grad():\n    gain = torch.tensor(bngain.tolist(), requires_grad=True)\n"
           "    F.cross_entropy(torch.tanh(gain * bnraw + bnbias) @ W2 + b2, Yb).backward()\n"
           "dbngain = gain.grad"),
    Attack("patch_allclose", P01, "dbnbias",
           "torch.allclose = lambda *args, **kwargs: True\ndbnbias = torch.zeros_like(bnbias)"),
    Attack("traceback_frames", P01, "dbnraw",
           "try:\n    1 / 0\nexcept ZeroDivisionError as error:\n"
           "    dbnraw = error.__traceback__.tb_frame.f_back.f_globals['bnraw']"),
    Attack("open_solution", P01, "dbnvar_inv", f'dbnvar_inv = open("{SOLUTION_01}").read()'),
    Attack("torch_load", P01, "dbnvar", 'dbnvar = torch.load("/work/answers.pt")["dbnvar"]'),
    Attack("numpy_load", P01, "dbndiff2", 'dbndiff2 = torch.as_tensor(numpy.load("/work/answers.npy"))'),
    Attack("pathlib", P01, "dbndiff", f'dbndiff = pathlib.Path("{SOLUTION_01}").read_text()'),
    Attack("write_file", P01, "dbnmeani",
           'torch.save({"bnmeani": bnmeani}, "/tmp/stolen.pt")\ndbnmeani = torch.zeros_like(bnmeani)'),
    Attack("kill_parent", P01, "dhprebn", "os.kill(os.getppid(), 9)\ndhprebn = dbndiff"),
    Attack("fork", P01, "dembcat", "while os.fork() == 0:\n    pass\ndembcat = dhprebn @ W1.T"),
    Attack("builtins_via_print", P01, "dW1", f'dW1 = print.__self__.open("{SOLUTION_01}").read()'),
    Attack("torch_builtins", P01, "db1", 'db1 = torch.__builtins__["__import__"]("os").system("id")'),
    Attack("generator_frame", P01, "demb", "demb = (x for x in [1]).gi_frame.f_back.f_globals['emb']"),
    Attack("read_hidden_seed", P01, "dC", "dC = torch.initial_seed() + torch.random.get_rng_state().sum()"),
    Attack("type_builtin", P01, "dlogprobs", "dlogprobs = type(logprobs).grad.__get__(logprobs)"),
    # --- exercise 1, answers that run in the worker and misbehave there (an honest answer follows each one
    # that stops the worker: the next worker's start must not cost it its point) ---
    Attack("hard_coded_batch", R01, "dlogprobs"),  # code: hard_coded()
    Attack("print_50MB", R01, "dprobs", 'print("x" * 50_000_000)\ndprobs = probs * 0'),
    Attack("allocate_20GB", R01, "dcounts_sum_inv",
           "big = torch.ones(5 * 2**30)\ndcounts_sum_inv = big[:32].view(32, 1)"),
    Attack("huge_error_message", R01, "dcounts_sum", 'raise ValueError("x" * 10_000_000)'),
    Attack("function_object", R01, "dcounts", "dcounts = F.softmax"),
    Attack("named_tuple", R01, "dnorm_logits", "dnorm_logits = norm_logits.max(1)"),
    Attack("rebind_cmp", R01, "dlogits",
           "cmp = lambda *args, **kwargs: True\nsummary = cmp\ndlogits = torch.zeros_like(logits)"),
    Attack("poison_inputs", R01, "dh", "W2.zero_()\ndlogits.zero_()\nh.zero_()\ndh = dlogits @ W2.T"),
    Attack("meta_tensor_checked", R01, "db2", 'db2 = torch.empty(27, device="meta")'),
    Attack("complex", R01, "dhpreact", "dhpreact = torch.addcmul(torch.ones_like(h), h, h, value=-1) * dh + 0j"),
    Attack("nan", R01, "dbngain", 'dbngain = torch.full_like(bngain, float("nan"))'),
    Attack("endless_loop", R01, "dbnbias", "while True:\n    pass"),
    Attack("infinite_recursion", R01, "dbnvar_inv",
           "def deeper(x):\n    return deeper(x)\ndbnvar_inv = deeper(bnvar)"),
    Attack("html_in_error", R01, "dbnvar",
           "raise ValueError(\"<script>alert('pwned')</script>\\n=HYPERLINK(\\\"http://evil\\\")\")"),
    Attack("list_over_cap", R01, "dbndiff2", "dbndiff2 = [0.0] * 10_001"),
    Attack("deep_nesting", R01, "dbndiff", "dbndiff = [[[[[[[[bndiff]]]]]]]]"),
    Attack("huge_int_checked", R01, "dbnmeani", "dbnmeani = 10**400"),
    Attack("answer_over_frame_cap", R01, "dhprebn", "dhprebn = [torch.zeros(9_000_000)] * 8  # 288 MB"),
    Attack("string_50MB", R01, "dW1", 'dW1 = "x" * 50_000_000'),
    Attack("lone_surrogate_in_error", R01, "demb", 'raise ValueError("\\ud800")  # not encodable in UTF-8'),
    # --- exercise 0: its blanks have no batch, so the grader's hidden batch changes nothing ---
    Attack("hard_coded_warm_up", "hard_coded_00.ipynb", "dh", "dh = torch.tensor(1.25, dtype=torch.float64)  # a * dL",
           exercise="00"),
    # --- exercise 2 ---
    Attack("builtin_as_value", "runtime_02.ipynb", "grad_lse", "grad_lse = print", exercise="02"),
    Attack("expression_too_deep_for_ast", "deep_expression_02.ipynb", "dl", DEEP_SUM, exercise="02", alone=True),
    Attack("numerical_gradient", "runtime_02.ipynb", "dlogits", NUMERICAL_DLOGITS, exercise="02"),
    # --- exercise 3 ---
    Attack("hard_coded_gradient", "runtime_03.ipynb", "dbngain", exercise="03"),  # code: hard_coded()
    Attack("copy_earlier_answer", "runtime_03.ipynb", "dhprebn", "dhprebn = dhprebn_paths.clone()", exercise="03"),
    # --- exercise 4 (training needs every function right: it scores 0 next to any attack) ---
    Attack("return_in_function_body", "runtime_04.ipynb", "cross_entropy_backward",
           "return F.softmax(logits, 1) - F.one_hot(Yb, vocab_size)  # no 1/n", exercise="04"),
    Attack("meta_tensor_in_tuple", "runtime_04.ipynb", "linear2_backward",
           'dh = torch.empty(dlogits.shape[0], W2.shape[0], device="meta")\ndW2 = h.T @ dlogits\n'
           "db2 = dlogits.sum(0)", exercise="04"),
    Attack("endless_function", "runtime_04.ipynb", "embedding_backward", "while True:\n    pass", exercise="04"),
    # --- exercise 5 ---
    Attack("numerical_gradient_function", "runtime_05.ipynb", "fixed_1", NUMERICAL_DLOGITS, exercise="05"),
    Attack("complex_function", "runtime_05.ipynb", "fixed_2",
           "dlogits = (counts / counts.sum(1, keepdim=True) - F.one_hot(Yb, vocab_size)) / n + 0j", exercise="05"),
    Attack("nan_function", "runtime_05.ipynb", "fixed_3", 'dW1 = torch.full_like(P["W1"], float("nan"))',
           exercise="05"),
    Attack("meta_tensor_unchecked", "runtime_05.ipynb", "clip_gradients", 'scale = torch.empty((), device="meta")',
           exercise="05"),
    Attack("huge_int_unchecked", "runtime_05.ipynb", "dead",
           "dead = (h.abs() > 0.99).all(0)\ndead_fraction = 10**400", items=("dead_fraction",), exercise="05"),
    # --- whole files ---
    Attack("deep_json", "deep_json.ipynb", None),  # files: RAW_FILES
    Attack("long_integer_in_json", "long_integer.ipynb", None),
    Attack("nbformat3_worksheet_not_a_dict", "worksheets.ipynb", None),
    Attack("helper_cell_too_deep_for_ast", "deep_helper_01.ipynb", None, cells=(DEEP_UNARY,)),
    Attack("nul_byte_cell", "nul_byte_01.ipynb", None, cells=("x = 1\0",)),
    Attack("symlink_to_solution", "symlink_02.ipynb", None, exercise="02"),
    Attack("spreadsheet_formula_as_file_name", FORMULA, None),
    Attack("file_name_not_utf8", NOT_UTF8, None, exercise="02"),
]
RAW_FILES = {
    "deep_json.ipynb": '{"cells": ' + "[" * 100_000 + "]" * 100_000 + "}",  # json: RecursionError
    "long_integer.ipynb": '{"cells": [], "metadata": {"n": ' + "1" * 5000 + "}}",  # json: ValueError (int digits)
    "worksheets.ipynb": '{"nbformat": 3, "worksheets": [1]}',  # 1.get: AttributeError
}
# What tools/README.md's "Not promised" says still scores: finite differences are tensor code like any other,
# and the warm-up's inputs are fixed numbers (no batch for the grader to change).
KNOWN_LIMITS = {"numerical_gradient": "finite differences of the forward pass need only allowed tensor code",
                "numerical_gradient_function": "finite differences of the forward pass need only allowed tensor code",
                "hard_coded_warm_up": "the warm-up's inputs are fixed numbers: the hidden run changes nothing"}


class AttackScored(AssertionError):
    """An attack got points."""


def items_of(number):
    return COURSE[number].items


def expected_zero(attack):
    if attack.key is None:
        return set(items_of(attack.exercise))
    if attack.items:
        return set(attack.items)
    group = next(g for g in COURSE[attack.exercise].groups if (g.function or g.names[0]) == attack.key)
    return set(group.items)


def with_callers(number, attacked):
    """The attacked items and the answer functions that call one of them (04's backward chains the layers)."""
    out = set(attacked)
    for group in COURSE[number].groups:
        if group.function and policy.loaded_names("\n".join(group.solution)) & out - {group.function}:
            out |= set(group.items)
    return out


def files():
    """{file: (exercise, [attacks])}"""
    out = {}
    for attack in ATTACKS:
        out.setdefault(attack.file, (attack.exercise, []))[1].append(attack)
    return out


@pytest.fixture(scope="module")
def graded(tmp_path_factory):
    root = tmp_path_factory.mktemp("attacks")
    cls, out = root / "class", root / "out"
    cls.mkdir()
    for number, name in HONEST.items():
        grade_class.save(notebook(number), cls / name)
    copied = hard_coded()
    for name, (number, attacks) in files().items():
        if attacks[0].key is None:
            continue
        answers = {a.key: a.code or copied[number] for a in attacks}
        nb = notebook(number, answers, cells=[c for a in attacks for c in a.cells])
        if attacks[0].alone:
            keep = {g.cell_id for g in COURSE[number].groups if (g.function or g.names[0]) in answers}
            nb.cells = [c for c in nb.cells if c.get("id") not in COURSE[number].answers or c.get("id") in keep]
        grade_class.save(nb, cls / name)
    for name, text in RAW_FILES.items():
        (cls / name).write_text(text)
    for attack in ATTACKS:
        if (attack.cells or attack.file in (FORMULA, NOT_UTF8)) and attack.key is None:
            nb = notebook(attack.exercise, cells=attack.cells)
            nb.cells = [c for c in nb.cells if c.get("id") not in COURSE[attack.exercise].answers]
            (cls / attack.file).write_text(nbformat.writes(nb))
    (cls / "symlink_02.ipynb").symlink_to(gc.SOLUTIONS / COURSE["02"].name)
    started, crash = time.monotonic(), None
    try:
        rows = cli.grade(cls, out, jobs=2, timeout=TIMEOUT, seed=SEED, train_steps=TRAIN_STEPS, progress_bar=False)
    except Exception as error:  # noqa: BLE001 - a crash is what test_the_run_ends_normally reports
        rows, crash = [], f"{type(error).__name__}: {str(error)[:500]}"
    return {"rows": {r["submission"]: r for r in rows}, "crash": crash, "out": out, "class": cls,
            "seconds": time.monotonic() - started}


def row_of(graded, name):
    assert graded["crash"] is None, f"the grading run crashed: {graded['crash']}"
    assert name in graded["rows"], f"{name} has no row in the gradebook"
    return graded["rows"][name]


def points(row, number):
    return {item: row.get(f"{number}:{item}") for item in items_of(number)}


def test_the_run_ends_normally_with_one_row_per_file(graded):
    assert graded["crash"] is None, f"the grading run crashed: {graded['crash']}"
    expected = set(HONEST.values()) | set(files())
    assert set(graded["rows"]) == expected, sorted(set(graded["rows"]) ^ expected)  # every file has its row
    assert (graded["out"] / "gradebook.csv").is_file() and (graded["out"] / "run.json").is_file()
    assert not os.path.exists("/tmp/stolen.pt")


@pytest.mark.parametrize("number", sorted(HONEST))
def test_honest_submissions_get_full_marks(graded, number):
    row = row_of(graded, HONEST[number])
    assert (row["status"], row["message"]) == ("graded", ""), row
    assert row["score"] == row["max_score"] == len(items_of(number)), points(row, number)


@pytest.mark.parametrize("attack", [a for a in ATTACKS if a.name not in KNOWN_LIMITS],
                         ids=[a.name for a in ATTACKS if a.name not in KNOWN_LIMITS])
def test_the_attack_scores_nothing(graded, attack):
    row = row_of(graded, attack.file)
    got = points(row, attack.exercise)
    scored = {item for item in expected_zero(attack) if got.get(item) not in (0, None, "")}
    if scored:
        raise AttackScored(f"{attack.name} scored {sorted(scored)}: {row}")


@pytest.mark.parametrize("attack", [a for a in ATTACKS if a.name in KNOWN_LIMITS],
                         ids=[a.name for a in ATTACKS if a.name in KNOWN_LIMITS])
def test_what_the_readme_does_not_promise_still_scores(graded, attack):
    """If one of these stops scoring, tools/README.md's "Not promised" can say less."""
    with pytest.raises(AttackScored):
        test_the_attack_scores_nothing(graded, attack)


@pytest.mark.parametrize("name", sorted(n for n, (_, a) in files().items() if a[0].key is not None and not a[0].alone))
def test_the_other_items_of_an_attacking_notebook_keep_their_points(graded, name):
    number, attacks = files()[name]
    row = row_of(graded, name)
    attacked = with_callers(number, set().union(*(expected_zero(a) for a in attacks))) | {gc.TRAINING}
    lost = {item: p for item, p in points(row, number).items() if item not in attacked and p != 1}
    assert not lost, f"{name}: right answers next to the attacks lost their point: {lost}; {row['message']}"


def test_a_file_name_is_not_a_spreadsheet_formula(graded):
    row_of(graded, FORMULA)
    for table in ["gradebook.csv", "items.csv"]:
        with open(graded["out"] / table, newline="") as f:
            cells = [c for row in csv.reader(f) for c in row]
        assert not [c for c in cells if c.startswith(("=", "+", "-", "@"))], table


def test_an_error_message_with_html_is_escaped(graded):
    row_of(graded, R01)
    page = (graded["out"] / "feedback" / f"{R01}.html").read_text()
    assert "<script>" not in page and "&lt;script&gt;" in page


def test_the_time_limit_is_the_answers_not_the_workers_start():
    """Starting a worker (importing torch in a sandbox: seconds on a busy machine) must not count against
    the first answer's time limit, nor against the first answer after an endless loop stopped a worker:
    else one slow start costs an honest notebook every answer, one after the other."""
    code = {"first": "x = 1", "endless": "while True:\n    pass", "after": "x = 2"}
    plan = planning.Plan(COURSE["02"], {}, {}, code=code,
                         requests=[planning.Request(key, 0, 0, {}, ["x"]) for key in code])
    isolation = "bubblewrap" if sandbox.bubblewrap_status()[0] else "process"
    results = run.execute(plan, timeout=0.5, memory=4 * 2**30, isolation=isolation)
    assert results[("first", 0, 0)]["outputs"] == {"x": 1}, results[("first", 0, 0)]
    assert results[("endless", 0, 0)].kind == "timeout"
    assert results[("after", 0, 0)]["outputs"] == {"x": 2}, results[("after", 0, 0)]


def test_an_endless_first_answer_gets_no_start_up_grace(monkeypatch):
    """The time a new worker may take to start is not time its first answer may run: else every answer
    `while True: pass` (each one the first of a new worker) holds the grader for the whole grace."""
    started = []

    class Recorded(sandbox.Worker):
        def __init__(self, *args, **kwargs):
            super().__init__(*args, **kwargs)
            started.append(self)
    monkeypatch.setattr(run, "Worker", Recorded)
    code = {"endless": "while True:\n    pass", "after": "x = 2"}
    plan = planning.Plan(COURSE["02"], {}, {}, code=code,
                         requests=[planning.Request(key, 0, 0, {}, ["x"]) for key in code])
    isolation = "bubblewrap" if sandbox.bubblewrap_status()[0] else "process"
    box, begin = {}, time.monotonic()
    thread = threading.Thread(target=lambda: box.update(results=run.execute(
        plan, timeout=0.5, memory=4 * 2**30, isolation=isolation)), daemon=True)
    thread.start()
    thread.join(30)
    seconds = time.monotonic() - begin
    for worker in started:  # end the endless answer now if the grader did not (its thread then reads EOF)
        if worker.process.poll() is None:
            os.killpg(worker.process.pid, signal.SIGKILL)
    thread.join(60)
    assert seconds < 30, f"an endless first answer held the grader for {seconds:.0f} s with a 0.5 s limit"
    assert box["results"][("endless", 0, 0)].kind == "timeout"


# ---------------------------------------------------------------------------------------------------
# The sandbox at the OS level: programs that bypass the allow-list.


def sandboxed_script(monkeypatch, script, memory=2**31):
    """A sandbox.Worker whose process is `python -I -c script` with the worker's bubblewrap options."""
    command = sandbox._bwrap_command(memory)
    assert command[-3:] == ["-I", "/grader/worker.py", str(memory)], command[-4:]
    monkeypatch.setattr(sandbox, "_bwrap_command", lambda m: command[:-2] + ["-c", textwrap.dedent(script)])
    return sandbox.Worker(memory, "bubblewrap")


def first_line(worker, timeout=60):
    """The JSON line the script prints first."""
    fd, data, deadline = worker.process.stdout.fileno(), b"", time.monotonic() + timeout
    while not data.endswith(b"\n"):
        left = deadline - time.monotonic()
        assert left > 0, f"no answer from the sandboxed script: {data!r}"
        if select.select([fd], [], [], left)[0]:
            chunk = os.read(fd, 65536)
            assert chunk, f"the sandboxed script ended without answering: {data!r}"
            data += chunk
    return json.loads(data)


def processes_with(marker):
    found = []
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            with open(f"/proc/{pid}/cmdline", "rb") as f:
                if marker.encode() in f.read():
                    found.append(int(pid))
        except OSError:
            pass
    return found


@BWRAP
def test_sandbox_hides_the_course_and_the_machine(monkeypatch, tmp_path):
    secret = tmp_path / "secret.txt"
    secret.write_text("the grader's temporary files")
    paths = [gc.SOLUTIONS / COURSE["01"].name, gc.ROOT / "cmp.py", gc.ROOT / "tools" / "grader" / "reference.py",
             gc.ROOT / "data" / "names.txt", secret, "/etc/passwd", "/etc/hostname", "/root/.bash_history"]
    worker = sandboxed_script(monkeypatch, f"""
        import json, os, sys
        found = {{}}
        for path in {[str(p) for p in paths]}:
            try:
                with open(path, "rb") as f:
                    found[path] = f"read {{len(f.read())}} bytes"
            except OSError as error:
                found[path] = type(error).__name__
        for path in [sys.prefix + "/pwned", "/usr/pwned", "/grader/worker.py", sys.executable]:
            try:
                with open(path, "a") as f:
                    f.write("x")
                found["write " + path] = "written"
            except OSError as error:
                found["write " + path] = type(error).__name__
        found["listing"] = sorted(os.listdir({str(gc.ROOT)!r}))
        print(json.dumps(found), flush=True)
    """)
    try:
        found = first_line(worker)
    finally:
        worker.stop()
    listing = found.pop("listing")
    assert not [k for k, v in found.items() if v.startswith(("read", "written"))], found
    assert set(listing) <= {".venv"}, listing  # only the venv of the course's folder is mounted


@BWRAP
def test_sandbox_has_no_uncapped_writable_place(monkeypatch):
    """Files in a tmpfs take the machine's memory, outside the worker's address-space limit: every
    writable place must be capped (only /tmp, at sandbox.TMP_SIZE), also one the code mounts itself
    in a user namespace of its own (which the sandbox must not allow)."""
    worker = sandboxed_script(monkeypatch, f"""
        import ctypes, json, os
        def fill(folder):
            path, written = os.path.join(folder, "fill"), 0
            try:
                with open(path, "wb") as f:
                    while written < {sandbox.TMP_SIZE} + 16 * 2**20:
                        f.write(b"x" * 2**20)
                        f.flush()
                        written += 2**20
            except OSError:
                pass
            try:
                os.unlink(path)
            except OSError:
                pass
            return written
        found = {{folder: fill(folder) for folder in ["/", "/tmp", "/dev", "/dev/shm", "/grader", "/proc", "/work"]}}
        libc = ctypes.CDLL(None, use_errno=True)
        uid, gid = os.getuid(), os.getgid()
        if libc.unshare(0x10000000 | 0x00020000) == 0:  # CLONE_NEWUSER | CLONE_NEWNS
            found["nested user namespace"] = "created"
            try:
                for name, text in [("setgroups", "deny"), ("uid_map", f"0 {{uid}} 1"), ("gid_map", f"0 {{gid}} 1")]:
                    with open(f"/proc/self/{{name}}", "w") as f:
                        f.write(text)
            except OSError:
                pass
            if libc.mount(b"none", b"/grader", b"tmpfs", 0, b"size=50%") == 0:
                found["a tmpfs of its own"] = fill("/grader")
        print(json.dumps(found), flush=True)
    """)
    try:
        found = first_line(worker)
    finally:
        worker.stop()
    assert {k: v for k, v in found.items() if v == "created" or v > sandbox.TMP_SIZE} == {}, found


@BWRAP
def test_sandbox_cannot_see_or_signal_the_grader(monkeypatch):
    worker = sandboxed_script(monkeypatch, f"""
        import json, os
        try:
            os.kill({os.getpid()}, 0)
            grader = "visible"
        except ProcessLookupError:
            grader = "invisible"
        except PermissionError:
            grader = "visible but not signalable"
        pids = sorted(int(p) for p in os.listdir("/proc") if p.isdigit())
        print(json.dumps({{"grader": grader, "pids": pids, "uid": os.getuid()}}), flush=True)
    """)
    try:
        found = first_line(worker)
    finally:
        worker.stop()
    assert found["grader"] == "invisible" and len(found["pids"]) <= 3 and found["uid"] != 0, found


@BWRAP
def test_sandbox_has_no_network(monkeypatch):
    listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    listener.bind(("127.0.0.1", 0))
    listener.listen()
    abstract = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    abstract_name = f"grader-attack-{uuid.uuid4().hex}"
    abstract.bind("\0" + abstract_name)
    abstract.listen()
    worker = sandboxed_script(monkeypatch, f"""
        import json, socket
        found = {{}}
        def attempt(name, family, address):
            s = socket.socket(family, socket.SOCK_STREAM)
            s.settimeout(3)
            try:
                s.connect(address)
                found[name] = "connected"
            except OSError as error:
                found[name] = f"{{type(error).__name__}} {{error.errno}}"
            finally:
                s.close()
        attempt("the grader's machine, loopback", socket.AF_INET, ("127.0.0.1", {listener.getsockname()[1]}))
        attempt("an abstract unix socket of the machine", socket.AF_UNIX, "\\0{abstract_name}")
        attempt("the internet", socket.AF_INET, ("1.1.1.1", 53))
        found["interfaces"] = [name for _, name in socket.if_nameindex()]
        print(json.dumps(found), flush=True)
    """)
    try:
        found = first_line(worker)
    finally:
        worker.stop()
        listener.close()
        abstract.close()
    assert found.pop("interfaces") == ["lo"]
    assert not [k for k, v in found.items() if v == "connected"], found


@BWRAP
def test_sandbox_tmp_is_capped(monkeypatch):  # and full: ENOSPC
    worker = sandboxed_script(monkeypatch, """
        import json, os
        written, error = 0, None
        try:
            with open("/tmp/fill", "wb") as f:
                while written < 200 * 2**20:
                    f.write(b"x" * 2**20)
                    f.flush()
                    written += 2**20
        except OSError as e:
            error = e.errno
        print(json.dumps({"written": written, "errno": error}), flush=True)
    """)
    try:
        found = first_line(worker)
    finally:
        worker.stop()
    assert found["errno"] == 28 and found["written"] <= sandbox.TMP_SIZE, found  # ENOSPC at 64 MB


@BWRAP
def test_sandbox_leaves_no_process_after_stop(monkeypatch):
    marker = f"grader-attack-{uuid.uuid4().hex}"
    worker = sandboxed_script(monkeypatch, f"""
        import json, os, signal, sys, time
        def spawn(detach):
            pid = os.fork()
            if pid == 0:
                if detach:  # a daemon: own session, parent gone
                    os.setsid()
                    if os.fork():
                        os._exit(0)
                os.execv(sys.executable, [sys.executable, "-c", "import time; time.sleep(120)", {marker!r}])
            return pid
        spawn(False)
        os.waitpid(spawn(True), 0)
        sent = {{}}
        for target in [os.getppid(), 1]:
            try:
                os.kill(target, signal.SIGKILL)
                sent[target] = "sent"
            except OSError as error:
                sent[target] = type(error).__name__
        time.sleep(0.5)
        print(json.dumps(sent), flush=True)
        time.sleep(120)
    """)
    try:
        first_line(worker)
        assert len(processes_with(marker)) >= 2  # the children run, outside the grader's process group
    finally:
        worker.stop()
    deadline = time.monotonic() + 10
    while processes_with(marker) and time.monotonic() < deadline:
        time.sleep(0.1)
    left = processes_with(marker)
    for pid in left:
        os.kill(pid, signal.SIGKILL)
    assert not left, "processes the sandboxed code started outlived Worker.stop()"


@BWRAP
def test_sandbox_worker_without_the_allow_list():
    """The real worker, sent code the policy refuses: memory limit, autograd off, no imports but torch."""
    memory = 4 * 2**30
    worker = sandbox.Worker(memory, "bubblewrap")
    code = {"over": "x = torch.ones(6 * 2**30 // 4)\nok = 1",        # 6 GB: above the limit
            "under": "x = torch.ones(2**26)\nok = x.numel()",        # 256 MB
            "grad": "t = torch.ones(3, requires_grad=True)\n"
                    "ok = [(t * t).sum().requires_grad, torch.is_grad_enabled()]",
            "import": "import os\nok = os.getpid()",
            "builtins": "ok = open('/etc/hostname').read()"}
    try:
        worker.send({"code": code, "definitions": ""})
        answers = {key: worker.ask({"key": key, "inputs": {}, "outputs": ["ok"]}, 120) for key in code}
    finally:
        worker.stop()
    assert answers["over"]["error"] and "ok" not in answers["over"]["outputs"], answers["over"]
    assert answers["under"]["outputs"] == {"ok": 2**26}, answers["under"]
    assert answers["grad"]["outputs"] == {"ok": [False, False]}, answers["grad"]
    assert answers["import"]["error"].startswith("ImportError"), answers["import"]
    assert answers["builtins"]["error"].startswith("NameError"), answers["builtins"]


@BWRAP
def test_a_worker_that_kills_its_parent_costs_one_answer_and_every_row_is_written(monkeypatch, tmp_path):
    """What no allow-list lets an answer do, done by the worker process itself: the first worker of the
    run kills its parent (bubblewrap's process in its sandbox). The grader sees the worker gone, scores
    that answer 0, starts a new worker for the rest, and writes a row for every submission."""
    real, calls = sandbox._bwrap_command, []

    def command(memory):
        calls.append(memory)
        normal = real(memory)
        if len(calls) > 1:
            return normal
        return normal[:-2] + ["-c", "import os, signal; os.kill(os.getppid(), signal.SIGKILL)"]
    monkeypatch.setattr(sandbox, "_bwrap_command", command)
    cls = tmp_path / "class"
    for name in ["a.ipynb", "b.ipynb"]:
        grade_class.save(notebook("02"), cls / name)
    rows = cli.grade(cls, tmp_path / "out", jobs=1, timeout=TIMEOUT, seed=SEED, train_steps=TRAIN_STEPS,
                     progress_bar=False, isolation="bubblewrap")
    assert [r["submission"] for r in rows] == ["a.ipynb", "b.ipynb"]
    first, second = rows
    assert first["status"] == "error" and first["score"] == first["max_score"] - 1, first
    assert second["status"] == "graded" and second["score"] == second["max_score"], second
