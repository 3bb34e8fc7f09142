"""Grade a class's exercise notebooks: a gradebook (CSV) and one feedback page per student.

    .venv/bin/python tools/grade.py SUBMISSIONS_DIR --out OUT_DIR [--jobs N] [--timeout SECONDS]
                                   [--shard K/N] [--train-steps STEPS]
    .venv/bin/python tools/grade.py --merge OUT_DIR_1 OUT_DIR_2 ... --out OUT_DIR

Every `*.ipynb` under SUBMISSIONS_DIR (recursively; `.ipynb_checkpoints` folders are skipped) is one
submission, named by its path relative to SUBMISSIONS_DIR. Which exercise it is comes from its cell ids
(the exercise notebooks keep the solution cells' ids), with the cells' content as a fallback.

How a submission is graded (tamper resistance): nothing the student's kernel computed is used. The
grader builds the graded notebook from the SOLUTION notebook, with the student's code in place of each
solution region (the lines where the `# TODO` placeholders were, found by cell id wherever the student
moved the cell). An answer that reads `.grad`, calls `backward`, `torch.autograd`, `torch.func`, touches
`cmp`, imports, uses exec/eval or `_`-names ... is not run: it scores 0 and its feedback says why. The
graded notebook runs in a fresh Python process (an IPython shell) in a temporary folder holding only
cmp.py, data/ and names.txt; the reference gradients are autograd's, computed by the solution's own
forward pass and `loss.backward()` there. After each top-level answer the solution's values are
restored, so one wrong gradient costs one item, not every item after it; answer functions (exercise 4)
are checked one at a time, the others being the solution's. An answer still running at the time limit
scores 0 and the notebook is graded again without it. Each item's result is cmp's CheckResult (status,
hint, diagnosis). The items of an exercise are the checks its solution passes and its unfilled exercise
does not: the grader runs both first, the same way.

Writes OUT_DIR/gradebook.csv (one row per submission, sorted; columns submission, exercise, score,
max_score, status, message, then one column per item "NN:name" holding the points), OUT_DIR/items.csv
(one row per submission and item: status and cmp's diagnosis) and OUT_DIR/feedback/<id>.html.
Exit status: 0 when it graded what it could, 2 for the instructor's mistakes (no such folder, bad
arguments, a solution notebook that fails under the grader).

NOT a security sandbox: the static checks stop copying, not an attacker. Grade untrusted code inside a
container (see README, "Grading a class").
"""
import argparse
import csv
import html
import io
import json
import os
import select
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
from concurrent.futures import ThreadPoolExecutor, as_completed
from pathlib import Path

from tqdm import tqdm

sys.path.insert(0, str(Path(__file__).resolve().parent))
import grade_course as gc  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
WORKER = Path(__file__).resolve().parent / "grade_worker.py"
HELPERS = ["cmp.py", "data/__init__.py", "data/names.py", "data/names.txt"]
FIXED_COLUMNS = ["submission", "exercise", "score", "max_score", "status", "message"]
ITEM_COLUMNS = ["submission", "exercise", "item", "points", "status", "diagnosis"]
TRAINING = "training"
TRAINING_TOLERANCE = 0.05  # the validation loss may exceed the solution's by this much at the same step count
DEFAULT_TIMEOUT = 60  # exercise 4 at 1,000 steps takes about 3 s on a quiet 2-core machine
DEFAULT_TRAIN_STEPS = 1000
RETRIES = 2  # times a notebook is graded again without an answer that ran out of time


class UsageError(Exception):
    """The instructor's invocation or setup is wrong: exit 2."""


# ---------------------------------------------------------------------------
# Running one graded notebook


class Slot:
    """One job slot: a worker server (tools/grade_worker.py --serve) that forks a fresh process per notebook."""

    def __init__(self, scratch, train_steps):
        self.scratch, self.train_steps, self.process = Path(scratch), train_steps, None

    def start(self):
        env = dict(os.environ)  # the machine's settings (library paths ...), then the grader's
        env.update({
            "HOME": str(self.scratch), "CMP_STRICT": "0", "NINJA_TRAIN_STEPS": str(self.train_steps),
            "MPLBACKEND": "Agg", "MPLCONFIGDIR": str(self.scratch / "matplotlib"),
            "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1",  # one core per job: --jobs N uses N cores
        })
        self.process = subprocess.Popen([sys.executable, "-I", str(WORKER), "--serve"], cwd=self.scratch, env=env,
                                        stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
                                        text=True, start_new_session=True)
        if not self._readline(600):
            self.close()
            raise UsageError(f"the grader's worker did not start with {sys.executable}: run the grader with the "
                             "course's Python, .venv/bin/python (it needs torch and IPython)")

    def run(self, job, timeout):
        """{"returncode", "timed_out"} of running one job folder."""
        for attempt in range(2):
            if self.process is None or self.process.poll() is not None:
                self.start()
            try:
                self.process.stdin.write(json.dumps({"job": str(job), "timeout": timeout}) + "\n")
                self.process.stdin.flush()
                answer = self._readline(timeout + 60)  # the server enforces the limit; this is a backstop
            except (BrokenPipeError, OSError):
                answer = ""
            if answer:
                return json.loads(answer)
            self.close()  # the server itself died: start a new one and try once more
        return {"returncode": None, "timed_out": False}

    def _readline(self, seconds):
        """One line from the server, or "" if none comes within `seconds` (or it closed its end)."""
        ready, _, _ = select.select([self.process.stdout], [], [], seconds)
        return self.process.stdout.readline() if ready else ""

    def close(self):
        if self.process is None:
            return
        try:
            self.process.stdin.close()
            self.process.wait(timeout=10)
        except (OSError, subprocess.TimeoutExpired):
            pass
        try:
            os.killpg(self.process.pid, signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            pass
        self.process.wait()
        self.process = None


def run_cells(cells, *, timeout, scratch, slot, watch=(), capture=()):
    """Run code cells in a fresh process (forked by `slot`) in a temporary folder; returns what it recorded.

    {"progress": the worker's progress.json (cells, results, running, watch, done),
     "returncode": int or None, "timed_out": bool}
    """
    job = Path(tempfile.mkdtemp(prefix="job-", dir=scratch))
    try:
        for helper in HELPERS:
            (job / helper).parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(ROOT / helper, job / helper)
        (job / "notebook").mkdir()
        (job / "job.json").write_text(json.dumps({"cells": list(cells), "watch": list(watch),
                                                  "capture": sorted(capture)}))
        outcome = slot.run(job, timeout)
        try:
            progress = json.loads((job / "progress.json").read_text())
        except (OSError, ValueError):
            progress = {"cells": [], "results": [], "running": 0, "watch": {}, "done": False}
        return {"progress": progress, "returncode": outcome["returncode"], "timed_out": outcome["timed_out"]}
    finally:
        shutil.rmtree(job, ignore_errors=True)


# ---------------------------------------------------------------------------
# References: each exercise's solution, run the same way


class Reference:
    """What the solution of one exercise records when graded: the items and where each is checked.

    The items are the checks the solution passes and the unfilled exercise (every blank None) does not:
    a check that fails in the solution itself is a demonstration (e.g. check_numerically at a kink),
    and one that passes without any answer does not depend on the student.
    """

    def __init__(self, exercise, plan, run, blank_run):
        self.exercise, self.plan, self.run = exercise, plan, run
        progress = run["progress"]
        passed_blank = {r["name"] for r in blank_run["progress"]["results"] if r["passed"]}
        self.items = [r["name"] for r in progress["results"] if r["passed"] and r["name"] not in passed_blank]
        self.demonstrations = [r["name"] for r in progress["results"] if not r["passed"] or r["name"] in passed_blank]
        self.item_cell = {}
        for index, cell in enumerate(progress["cells"]):
            for name in cell.get("recorded", []):
                self.item_cell[name] = index
        self.val_loss = progress.get("watch", {}).get("val_loss")
        if exercise.training:
            self.items.append(TRAINING)

    def problems(self):
        """Why this solution cannot serve as the reference ([] when it can)."""
        progress, out = self.run["progress"], []
        if self.run["timed_out"]:
            out.append("it did not finish within --timeout")
        elif not progress.get("done"):
            out.append(f"its process stopped (exit code {self.run['returncode']})")
        for index, cell in enumerate(progress["cells"]):
            if cell.get("error"):
                out.append(f"{describe_cell(self.exercise, self.plan, index)} raised "
                           f"{cell['error']['type']}: {cell['error']['message']}")
        if self.exercise.training and self.val_loss is None:
            out.append("it sets no val_loss")
        return out


def describe_cell(exercise, plan, index):
    """A student-readable name for graded cell `index`."""
    groups = [key for key, cell in plan.cell_of_group.items() if cell == index]
    if groups:
        names = [n for g in exercise.groups if g.key in groups for n in g.names]
        return "the cell of " + ", ".join(f"`{n}`" for n in names)
    if 0 <= index < len(plan.cells):
        source = plan.cells[index]
        if source.startswith("# grader:"):
            return "the grader's step after " + describe_cell(exercise, plan, index - 1)
        lines = [l.strip() for l in source.splitlines() if l.strip() and not l.strip().startswith("#")]
        first = lines[0] if lines else ""
        first = first if len(first) <= 50 else first[:47] + "..."
        return f"the cell starting `{first}`"
    return "the end of the notebook"


# ---------------------------------------------------------------------------
# Grading one submission


def prepare(path, course):
    """(status, exercise number or None, message, plan or None) of one submitted file, before running it."""
    try:
        cells = gc.read_submission(path)
    except gc.NotANotebook as problem:
        return problem.status, None, str(problem), None
    except OSError as error:
        return "error", None, f"could not read the file: {error.strerror}", None
    number = gc.identify(cells, course)
    if number is None:
        return "not an exercise", None, "none of the course's exercise notebooks (no matching cells)", None
    exercise = course[number]
    answers = {}
    for cell_id, source in gc.find_answer_cells(cells, exercise).items():
        if source is None:
            continue
        answers.update(gc.extract(exercise.answers[cell_id], source))
    return "graded", number, "", gc.assemble(exercise, answers)


def score(exercise, reference, plan, run, timeout, train_steps, slow=()):
    """(status, message, [item dicts]) for a submission's run."""
    progress = run["progress"]
    final = {r["name"]: r for r in progress["results"]}
    cells = progress["cells"]
    stopped_at = None if progress.get("done") else len(cells)
    notes = plan.notes
    rejected = {}
    for group in exercise.groups:
        kind, sentence = notes.get(group.key, ("ok", None))
        if kind == "ok":
            continue
        if group.key in plan.skip:
            kind = "timeout"
        names = {n[1:] for n in group.names if n.startswith("d")}
        for item in reference.items:
            if item in names or reference.item_cell.get(item) == plan.cell_of_group.get(group.key):
                rejected.setdefault(item, (kind, sentence))
    alone, alone_cell = {}, {}  # item -> results of the check run with only its function the student's
    for group in exercise.groups:
        cell = plan.captures.get(group.function)
        if cell is not None:
            for name in group.names:
                alone[name[1:]] = cells[cell].get("results", []) if cell < len(cells) else None
                alone_cell[name[1:]] = cell
    items = []
    for item in reference.items:
        entry = {"item": item, "points": 0, "status": "", "hint": "", "diagnosis": ""}
        results = final
        if item in alone:
            results = {r["name"]: r for r in alone[item] or []}
        if item == TRAINING:
            val, ref = progress.get("watch", {}).get("val_loss"), reference.val_loss
            need = ref + TRAINING_TOLERANCE
            if val is not None and val <= need:
                entry.update(points=1, status="reached")
            else:
                entry["status"] = "not reached"
            got = "no loss (the training cell did not finish)" if val is None else f"{val:.3f}"
            entry["hint"] = (f"validation loss after {train_steps:,} training steps: {got}; the solution reaches "
                             f"{ref:.3f}, and at most {need:.3f} counts. Training runs only once every gradient "
                             "of the check is right.")
        elif item in rejected and rejected[item][0] in ("rejected", "timeout"):
            entry.update(status=rejected[item][0], hint=rejected[item][1], diagnosis=rejected[item][0])
        elif item in results:
            r = results[item]
            entry.update(points=1 if r["passed"] else 0, status=r["status"], hint=r["hint"] or "",
                         diagnosis=r["diagnosis"] or "")
            if item in rejected:  # missing code: cmp says "not done"; say where it went
                entry["hint"] = rejected[item][1]
        else:
            cell = alone_cell.get(item, reference.item_cell.get(item))
            error = cells[cell].get("error") if cell is not None and cell < len(cells) else None
            entry["status"] = "not checked"
            if error:
                entry["hint"] = f"not checked: {describe_cell(exercise, plan, cell)} raised {error['type']}: {error['message']}"
            elif stopped_at is not None and (cell is None or cell >= stopped_at):
                entry["hint"] = "not checked: the notebook stopped before this check (see the status above)"
            else:
                entry["hint"] = ("not checked: the notebook's check did not reach it (a check that stops at the "
                                 "first gradient that is not right, or an earlier error)")
        items.append(entry)

    where = describe_cell(exercise, plan, progress.get("running") if progress.get("running") is not None else len(cells))
    if run["timed_out"]:
        status = "timeout"
        message = f"stopped at the time limit ({timeout:g} s) in {where} (an endless loop?); items before it are graded"
    elif not progress.get("done"):
        code = run["returncode"]
        how = f"killed by signal {-code}" if code is not None and code < 0 else f"exit code {code}"
        status, message = "error", f"the kernel died ({how}) in {where}; items before it are graded"
    else:
        status, parts = "graded", []
        if slow:
            status = "timeout"
            parts.append(f"{_some([f'`{n}`' for n in slow])} did not finish within the time limit ({timeout:g} s; "
                         "an endless loop?) and scored 0; the rest was graded in another run without it")
        bad = [f"`{n}`" for g in exercise.groups if notes.get(g.key, ("ok",))[0] == "rejected"
               and g.key not in plan.skip for n in g.names]
        if bad:
            parts.append(f"{len(bad)} answer(s) not run, see feedback: " + _some(bad))
        missing = [f"`{n}`" for g in exercise.groups if notes.get(g.key, ("ok",))[0] == "missing" for n in g.names]
        if missing:
            parts.append("no code found for " + _some(missing))
        not_done = [it["item"] for it in items if it["status"] == "not done"]
        if not_done:
            parts.append(f"{len(not_done)} not done yet")
        raised = [describe_cell(exercise, plan, i) for i, c in enumerate(cells) if c.get("error")]
        if raised:
            parts.append(f"{len(raised)} cell(s) raised an error: " + _some(raised, "; "))
        message = "; ".join(parts)
    return status, message, items


def _some(things, sep=", ", at_most=4):
    return sep.join(things[:at_most]) + (f"{sep}and {len(things) - at_most} more" if len(things) > at_most else "")


# ---------------------------------------------------------------------------
# Reports


def item_column(number, item):
    return f"{number}:{item}"


def feedback_html(row, items, exercise, notes_html):
    esc = html.escape
    title = f"Feedback: {row['submission']}"
    head = [f"<h1>{esc(title)}</h1>"]
    if row["exercise"]:
        head.append(f"<p>Exercise {esc(row['exercise'])} ({esc(exercise.name)}): "
                    f"<b>{esc(str(row['score']))} of {esc(str(row['max_score']))}</b> points.</p>")
    head.append(f"<p>Status: <b>{esc(row['status'])}</b>{(': ' + esc(row['message'])) if row['message'] else ''}</p>")
    body = []
    if items:
        cell = 'style="text-align:left; vertical-align:top; padding:2px 8px"'
        rows = []
        for it in items:
            mark, colour = ("ok", "#1e7e34") if it["points"] else ("X", "#b00020")
            rows.append(f'<tr><td {cell}><span style="color:{colour}">{mark}</span></td>'
                        f"<td {cell}><code>{esc(it['item'])}</code></td><td {cell}>{esc(it['status'])}</td>"
                        f'<td {cell}><span style="white-space:pre-wrap">{esc(it["hint"])}</span></td></tr>')
        header = "".join(f"<th {cell}>{t}</th>" for t in ("", "item", "result", "what the checker said"))
        body.append(f"<table><tr>{header}</tr>{''.join(rows)}</table>")
    body += notes_html
    body.append("<p><small>How this was graded: your answers (the code where the TODO lines were) were run in "
                "the course's own notebook, in a fresh kernel, and compared with the gradients autograd computes "
                "there. Answers that read <code>.grad</code>, call <code>backward</code>, import modules or call "
                "the checker are not run." + (" After each answer the grader continues with the right values, so "
                "one wrong gradient costs one point, not every point after it." if exercise and any(
                    g.indent == "" for g in exercise.groups) else "") + (" Each of your functions is checked on its "
                "own, with the solution's versions of the others; training uses all of yours." if exercise and any(
                    g.function for g in exercise.groups) else "") + "</small></p>")
    return ("<!DOCTYPE html>\n<html><head><meta charset=\"utf-8\"><title>" + esc(title) + "</title></head>"
            "<body style=\"font-family:sans-serif; max-width:60em\">" + "".join(head + body) + "</body></html>\n")


def notes_for(exercise, plan, run):
    """HTML paragraphs about answers not run and cells that raised."""
    if exercise is None or plan is None:
        return []
    out = []
    for group in exercise.groups:
        kind, sentence = plan.notes.get(group.key, ("ok", None))
        if kind != "ok":
            names = ", ".join(f"<code>{html.escape(n)}</code>" for n in group.names)
            out.append(f"<p>{names}: {html.escape(sentence)}</p>")
    if run:
        for index, cell in enumerate(run["progress"]["cells"]):
            error = cell.get("error")
            if error and not plan.cells[index].startswith("# grader:"):
                out.append(f"<p>{html.escape(describe_cell(exercise, plan, index))} raised "
                           f"<code>{html.escape(error['type'])}: {html.escape(error['message'])}</code></p>")
    return out


def write_csv(path, columns, rows):
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=columns, lineterminator="\n")
    writer.writeheader()
    for row in rows:
        writer.writerow({c: row.get(c, "") for c in columns})
    tmp = path.with_suffix(".part")
    tmp.write_text(buffer.getvalue())
    os.replace(tmp, path)


def item_columns_in_order(columns):
    """Item columns grouped by exercise number, each exercise's in the given order."""
    seen = []
    for c in columns:
        if c not in seen and c not in FIXED_COLUMNS:
            seen.append(c)
    return sorted(seen, key=lambda c: (c.split(":", 1)[0], seen.index(c)))


# ---------------------------------------------------------------------------
# Commands


def discover(folder):
    paths = [p for p in Path(folder).rglob("*.ipynb")
             if p.is_file() and ".ipynb_checkpoints" not in p.relative_to(folder).parts]
    return sorted(paths, key=lambda p: p.relative_to(folder).as_posix())


def select_shard(ids, k, n):
    """The K-th of N parts of the sorted submission ids (every N-th, starting at the K-th): deterministic."""
    return sorted(ids)[k - 1::n]


def parse_shard(text):
    try:
        k, n = (int(x) for x in text.split("/"))
    except ValueError:
        raise UsageError(f"--shard must look like K/N (e.g. 2/8), not {text!r}") from None
    if not 1 <= k <= n:
        raise UsageError(f"--shard {text}: need 1 <= K <= N")
    return k, n


def grade(folder, out, *, jobs=1, timeout=DEFAULT_TIMEOUT, shard=None, train_steps=DEFAULT_TRAIN_STEPS,
          solutions=gc.SOLUTIONS, progress_bar=True):
    folder, out = Path(folder), Path(out)
    if not folder.is_dir():
        raise UsageError(f"no such folder: {folder}")
    for helper in HELPERS:
        if not (ROOT / helper).is_file():
            raise UsageError(f"{helper} is missing: run `bash tools/run test` or `.venv/bin/python -m data` first")
    out.mkdir(parents=True, exist_ok=True)  # fails now, not after grading, when OUT_DIR cannot be made
    course = gc.load_course(solutions)
    paths = discover(folder)
    ids = [p.relative_to(folder).as_posix() for p in paths]
    if shard:
        ids = select_shard(ids, *shard)
    prepared = {sid: prepare(folder / sid, course) for sid in ids}
    needed = sorted({number for _, number, _, plan in prepared.values() if plan is not None})

    scratch = tempfile.mkdtemp(prefix="backprop-ninja-grade-")
    runs, references, slots, local, timed_out = {}, {}, [], threading.local(), {}

    def run(plan, ex):
        if not hasattr(local, "slot"):
            local.slot = Slot(scratch, train_steps)
            slots.append(local.slot)
        return run_cells(plan.cells, timeout=timeout, scratch=scratch, slot=local.slot,
                         watch=["val_loss"] if ex.training else [], capture=plan.captures.values())

    try:
        tasks = {(kind, n): (gc.assemble(course[n], answers), course[n])
                 for n in needed for kind, answers in [("reference", "solution"), ("blank", {})]}
        reference_plans = {n: tasks[("reference", n)][0] for n in needed}
        tasks.update({("submission", sid): (plan, course[number])
                      for sid, (_, number, _, plan) in prepared.items() if plan is not None})
        with ThreadPoolExecutor(max_workers=max(1, jobs)) as pool, \
                tqdm(total=len(tasks), desc="grading", unit="notebook", disable=not progress_bar) as bar:
            for attempt in range(1 + RETRIES):
                futures = {pool.submit(run, plan, ex): key for key, (plan, ex) in tasks.items()}
                for future in as_completed(futures):
                    runs[futures[future]] = future.result()
                    bar.update()
                # an answer that did not finish in time is skipped, and the notebook graded again without it
                tasks = {}
                for sid, (status, number, message, plan) in list(prepared.items()):
                    run_ = runs.get(("submission", sid))
                    if plan is None or not run_["timed_out"]:
                        continue
                    slow = plan.groups_in_cell(course[number], run_["progress"].get("running"))
                    if slow:
                        why = (f"not run: it did not finish within the time limit ({timeout:g} s) in an earlier run "
                               "(an endless loop?), so the notebook was graded again without it")
                        plan = gc.assemble(course[number], plan.answers, {**plan.skip, **{g.key: why for g in slow}})
                        prepared[sid] = (status, number, message, plan)
                        timed_out.setdefault(sid, []).extend(n for g in slow for n in g.names)
                        tasks[("submission", sid)] = (plan, course[number])
                bar.total += len(tasks)
                if not tasks:
                    break
    finally:
        for slot in slots:
            slot.close()
        shutil.rmtree(scratch, ignore_errors=True)
    for n in needed:
        references[n] = Reference(course[n], reference_plans[n], runs[("reference", n)], runs[("blank", n)])
        problems = references[n].problems()
        if references[n].demonstrations and not problems:
            print(f"note: solutions/{course[n].name}: checks not graded (the solution fails them, or they pass "
                  "with every blank None): " + ", ".join(repr(d) for d in references[n].demonstrations),
                  file=sys.stderr)
        if problems:
            raise UsageError(f"solutions/{course[n].name} does not pass under the grader, so it cannot be the "
                             "reference: " + "; ".join(problems))

    rows, item_rows, pages = [], [], {}
    columns = list(FIXED_COLUMNS) + [item_column(n, i) for n in needed for i in references[n].items]
    for sid, (status, number, message, plan) in sorted(prepared.items()):
        exercise = course.get(number) if number else None
        row = {"submission": sid, "exercise": number or "", "score": "", "max_score": "", "status": status,
               "message": message}
        items, run = [], None
        if plan is not None:
            run = runs[("submission", sid)]
            status, message, items = score(exercise, references[number], plan, run, timeout, train_steps,
                                           timed_out.get(sid, []))
            if not items:
                message = "; ".join(filter(None, [message, "nothing to grade: none of this notebook's checks "
                                                           "depends on the answers"]))
            row.update(status=status, message=message, score=sum(i["points"] for i in items), max_score=len(items))
            for it in items:
                row[item_column(number, it["item"])] = it["points"]
                item_rows.append({"submission": sid, "exercise": number, "item": it["item"], "points": it["points"],
                                  "status": it["status"], "diagnosis": it["diagnosis"]})
        rows.append(row)
        pages[sid] = feedback_html(row, items, exercise, notes_for(exercise, plan, run))
    write_outputs(out, columns, rows, item_rows, pages)
    return rows


def write_outputs(out, columns, rows, item_rows, pages, feedback_dirs=()):
    out.mkdir(parents=True, exist_ok=True)
    feedback = out / "feedback"
    if feedback.exists():
        shutil.rmtree(feedback)
    feedback.mkdir()
    for source in feedback_dirs:
        shutil.copytree(source, feedback, dirs_exist_ok=True)
    for sid, page in pages.items():
        target = feedback / (sid + ".html")
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(page)
    write_csv(out / "gradebook.csv", columns, rows)
    write_csv(out / "items.csv", ITEM_COLUMNS, item_rows)


def merge(folders, out):
    """Join the outputs of several shards into one OUT_DIR."""
    rows, item_rows, columns, feedback = {}, [], [], []
    for folder in map(Path, folders):
        book = folder / "gradebook.csv"
        if not book.is_file():
            raise UsageError(f"no gradebook.csv in {folder}")
        with open(book, newline="") as f:
            reader = csv.DictReader(f)
            columns += reader.fieldnames or []
            for row in reader:
                if row["submission"] in rows and rows[row["submission"]] != row:
                    raise UsageError(f"{row['submission']} is graded differently in two of the folders")
                rows[row["submission"]] = row
        if (folder / "items.csv").is_file():
            with open(folder / "items.csv", newline="") as f:
                item_rows += list(csv.DictReader(f))
        if (folder / "feedback").is_dir():
            feedback.append(folder / "feedback")
    columns = FIXED_COLUMNS + item_columns_in_order(columns)
    unique_items = {(r["submission"], r["item"]): r for r in item_rows}
    item_rows = [unique_items[k] for k in sorted(unique_items, key=lambda k: (k[0], item_rows.index(unique_items[k])))]
    out = Path(out)
    if any(out.resolve() == Path(f).resolve() for f in folders):
        raise UsageError("--out must be a new folder, not one of the folders merged")
    write_outputs(out, columns, [rows[k] for k in sorted(rows)], item_rows, {}, feedback)
    return [rows[k] for k in sorted(rows)]


def main(argv=None):
    parser = argparse.ArgumentParser(
        prog="tools/grade.py", description="Grade every exercise notebook under SUBMISSIONS_DIR.",
        epilog="Outputs: OUT_DIR/gradebook.csv, OUT_DIR/items.csv, OUT_DIR/feedback/<submission>.html. "
               "Not a security sandbox: grade untrusted code inside a container.")
    parser.add_argument("submissions", nargs="?", metavar="SUBMISSIONS_DIR")
    parser.add_argument("--out", required=True, metavar="OUT_DIR")
    parser.add_argument("--jobs", type=int, default=1, metavar="N", help="notebooks run at once (default 1)")
    parser.add_argument("--timeout", type=float, default=DEFAULT_TIMEOUT, metavar="SECONDS",
                        help=f"time limit per notebook (default {DEFAULT_TIMEOUT})")
    parser.add_argument("--shard", metavar="K/N", help="grade only the K-th of N equal parts (1 <= K <= N)")
    parser.add_argument("--train-steps", type=int, default=DEFAULT_TRAIN_STEPS, metavar="STEPS",
                        help=f"NINJA_TRAIN_STEPS for exercises that train (default {DEFAULT_TRAIN_STEPS})")
    parser.add_argument("--merge", nargs="+", metavar="DIR", help="join the OUT_DIRs of several shards into --out")
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")
    args = parser.parse_args(argv)
    try:
        if args.merge:
            if args.submissions:
                raise UsageError("give either SUBMISSIONS_DIR or --merge, not both")
            rows = merge(args.merge, args.out)
        else:
            if not args.submissions:
                raise UsageError("SUBMISSIONS_DIR is required (or --merge DIR ...)")
            if args.jobs < 1 or args.timeout <= 0 or args.train_steps < 1:
                raise UsageError("--jobs, --timeout and --train-steps must be positive")
            rows = grade(args.submissions, args.out, jobs=args.jobs, timeout=args.timeout,
                         shard=parse_shard(args.shard) if args.shard else None, train_steps=args.train_steps,
                         progress_bar=not args.no_progress)
    except UsageError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    except OSError as error:  # e.g. OUT_DIR cannot be written
        print(f"error: {error}", file=sys.stderr)
        return 2
    counts = {}
    for row in rows:
        counts[row["status"]] = counts.get(row["status"], 0) + 1
    summary = ", ".join(f"{n} {status}" for status, n in sorted(counts.items())) or "no submissions"
    print(f"{len(rows)} submission(s): {summary}. Wrote {Path(args.out) / 'gradebook.csv'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
