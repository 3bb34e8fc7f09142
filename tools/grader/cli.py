"""Grade a class: `tools/grade.py SUBMISSIONS_DIR --out OUT_DIR` (tools/README.md, "Grading a class").

The stages, one module each: submissions (read a file, identify its exercise, extract its answers),
policy (the allow-list), reference (the grader's own runs of the solutions: inputs, outputs, checks,
on the notebook's batch and on a hidden one), plan (what each answer is sent), sandbox and worker (the
only place student code runs), run (asking the worker), score (judging, in this process), report.
"""
import argparse
import json
import secrets
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from tqdm import tqdm

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
import course as settings  # noqa: E402  (tools/course.py: the course's one list of helper files)

from . import plan as planning
from . import reference, report, run, sandbox, score, submissions
from .course import ROOT, SOLUTIONS, TRAINING, load_course
from .report import UsageError

HELPERS = settings.HELPER_FILES + ["data/names.txt"]  # what the solutions import, and the data
DEFAULT_TIMEOUT = 10      # seconds per answer and batch
DEFAULT_TRAIN_STEPS = 1000
DEFAULT_MEMORY_GB = 4.0
TRAINING_LIMIT = 20       # training may take this many times --timeout


def prepare(path, course):
    """(status, exercise number or None, message, answers, helpers) of one file, before anything runs."""
    try:
        return _prepare(path, course)
    except Exception as error:  # noqa: BLE001 - a file built to break the reader gets its row, like any other
        return "error", None, f"the grader could not read this file ({type(error).__name__})", None, None


def _prepare(path, course):
    if Path(path).is_symlink():
        return "error", None, "a symbolic link, not a file: hand in the notebook itself", None, None
    try:
        cells = submissions.read_submission(path)
    except submissions.NotANotebook as problem:
        return problem.status, None, str(problem), None, None
    except OSError as error:
        return "error", None, f"could not read the file: {error.strerror}", None, None
    number = submissions.identify(cells, course)
    if number is None:
        return "not an exercise", None, "none of the course's exercise notebooks (no matching cells)", None, None
    exercise = course[number]
    answers, sources = {}, set()
    for cell_id, source in submissions.find_answer_cells(cells, exercise).items():
        if source is not None:
            sources.add(source)
            answers.update(submissions.extract(exercise.answers[cell_id], source))
    return "graded", number, "", answers, submissions.helper_functions(cells, sources)


_RECORDINGS = {}  # the runs of a solution, kept for grading runs in the same process (tests) with the same settings


def references(course, numbers, *, seed, train_steps, solutions=SOLUTIONS):
    """{number: [recording on the notebook's batch, recording on the hidden batch]}; UsageError if a solution fails."""
    out = {}
    for number in numbers:
        exercise = course[number]
        path = Path(solutions) / exercise.name
        key = (str(path), path.stat().st_mtime_ns, seed, train_steps)
        if key not in _RECORDINGS:
            recordings = [reference.run(exercise, train_steps=train_steps),
                          reference.run(exercise, hidden_seed=seed, train_steps=train_steps)]
            for variant, recording in enumerate(recordings):
                if recording.errors:
                    index, error = recording.errors[0]
                    where = "" if variant == 0 else " on the grader's hidden batch"
                    raise UsageError(f"solutions/{exercise.name} does not run under the grader{where}: its cell "
                                     f"{index + 1} (counting graded code cells) raised {error}")
            if exercise.training and recordings[0].namespace.get("val_loss") is None:
                raise UsageError(f"solutions/{exercise.name} sets no val_loss")
            _drop_failing_checks(exercise, recordings)
            _RECORDINGS[key] = recordings
        out[number] = _RECORDINGS[key]
    return out


def _drop_failing_checks(exercise, recordings):
    """A check the solution's own value fails is a demonstration, not a reference: judge by value there."""
    for recording in recordings:
        for entries in recording.entries.values():
            for entry in entries:
                for name, checks in list(entry.checks.items()):
                    kept = [c for c in checks if score.replay(c, entry.outputs[name])]
                    if kept:
                        entry.checks[name] = kept
                    else:
                        del entry.checks[name]


def grade_one(sid, prepared, course, recordings, options):
    """(gradebook row, item rows, feedback page) of one submission; whatever happens, its row."""
    try:
        return _grade_one(sid, prepared, course, recordings, options)
    except Exception as error:  # noqa: BLE001 - a bug of the grader's, or an answer built to trip it
        row = {"submission": sid, "exercise": prepared[1] or "", "score": "", "max_score": "", "status": "error",
               "message": f"the grader failed on this submission ({type(error).__name__}); grade it by hand"}
        return row, [], report.feedback_html(row, [], None, [])


def _grade_one(sid, prepared, course, recordings, options):
    status, number, message, answers, helpers = prepared
    row = {"submission": sid, "exercise": number or "", "score": "", "max_score": "", "status": status,
           "message": message}
    if answers is None:
        return row, [], report.feedback_html(row, [], None, [])
    exercise = course[number]
    plan = planning.make(exercise, answers, helpers, recordings[number])
    results = run.execute(plan, timeout=options["timeout"], memory=options["memory"],
                          isolation=options["isolation"])
    items = [score.judge_item(item, plan, results, recordings[number]) for item in exercise.items
             if item != TRAINING]
    _explain_dependent_items(exercise, plan, items)
    if exercise.training:
        right = all(it["points"] for it in items)
        val_loss, why = (run.train(plan, timeout=options["timeout"], memory=options["memory"],
                                   isolation=options["isolation"], train_steps=options["train_steps"],
                                   limit=options["timeout"] * TRAINING_LIMIT) if right else (None, None))
        items.append(score.judge_training(val_loss, why, float(recordings[number][0].namespace["val_loss"]),
                                          options["train_steps"], right))
    failures = [it for it in items if it["status"] in ("timeout", "error")]
    kinds = {it["status"] for it in failures}
    status = "timeout" if "timeout" in kinds else "error" if any(
        "stopped the worker" in it["hint"] for it in failures) else "graded"
    parts = []
    rejected = [f"`{i}`" for i in exercise.items if any(plan.notes.get(g.key, ("",))[0] == "rejected"
                                                         for g in exercise.groups_of(i))]
    if rejected:
        parts.append(f"{len(rejected)} answer(s) not run, see feedback: " + _some(rejected))
    missing = [f"`{i}`" for i in exercise.items if any(plan.notes.get(g.key, ("",))[0] == "missing"
                                                        for g in exercise.groups_of(i))]
    if missing:
        parts.append("no code found for " + _some(missing))
    for kind, what in (("timeout", "ran out of time"), ("error", "raised an error or stopped the worker")):
        some = [f"`{it['item']}`" for it in items if it["status"] == kind]
        if some:
            parts.append(f"{len(some)} answer(s) {what}: " + _some(some))
    not_done = [it for it in items if it["status"] == "not done"]
    if not_done:
        parts.append(f"{len(not_done)} not done yet")
    row.update(status=status, message="; ".join(parts), score=sum(it["points"] for it in items),
               max_score=len(items))
    notes = [f"<p><code>{report.html.escape(it['item'])}</code>: {report.html.escape(it['hint'])}</p>"
             for it in items if it["status"] in ("not run", "timeout", "error")]
    return row, items, report.feedback_html(row, items, exercise, notes)


def _explain_dependent_items(exercise, plan, items):
    """An answer that calls other answer functions (04's backward chains the six layers) runs with the
    student's own: when one of those is wrong, say that, not what the chain computed."""
    wrong = {it["item"] for it in items if not it["points"]}
    for it in items:
        calls = set().union(*(plan.calls(group.key) for group in exercise.groups_of(it["item"])))
        if it["item"] in wrong and calls & wrong and it["status"] not in ("not run", "not done", "timeout"):
            names = ", ".join(f"`{name}`" for name in sorted(calls & wrong))
            it.update(status="not checked", diagnosis="depends",
                      hint=f"it calls {names}, which is not right yet; it is checked once that is right")


def _some(things, sep=", ", at_most=4):
    return sep.join(things[:at_most]) + (f"{sep}and {len(things) - at_most} more" if len(things) > at_most else "")


def discover(folder):
    """Every *.ipynb below folder (a symbolic link too: it gets a row saying it is not graded)."""
    paths = [p for p in Path(folder).rglob("*.ipynb")
             if (p.is_file() or p.is_symlink()) and ".ipynb_checkpoints" not in p.relative_to(folder).parts]
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
          memory_gb=DEFAULT_MEMORY_GB, seed=None, solutions=SOLUTIONS, progress_bar=True, isolation=None):
    folder, out = Path(folder), Path(out)
    if not folder.is_dir():
        raise UsageError(f"no such folder: {folder}")
    for helper in HELPERS:
        if not (ROOT / helper).is_file():
            raise UsageError(f"{helper} is missing: run `bash tools/run test` or `.venv/bin/python -m data` first")
    out.mkdir(parents=True, exist_ok=True)  # fails now, not after grading, when OUT_DIR cannot be made
    if isolation is None:
        usable, why = sandbox.bubblewrap_status()
        isolation = "bubblewrap" if usable else "process"
        if not usable:
            print(f"warning: {sandbox.describe(isolation)}", file=sys.stderr)
    seed = secrets.randbits(62) if seed is None else seed
    course = load_course(solutions)
    ids = [p.relative_to(folder).as_posix() for p in discover(folder)]
    if shard:
        ids = select_shard(ids, *shard)
    prepared = {sid: prepare(folder / sid, course) for sid in ids}
    needed = sorted({p[1] for p in prepared.values() if p[3] is not None})
    recordings = references(course, needed, seed=seed, train_steps=train_steps, solutions=solutions)
    options = {"timeout": timeout, "memory": int(memory_gb * 2**30), "isolation": isolation,
               "train_steps": train_steps}
    graded = {}
    with ThreadPoolExecutor(max_workers=max(1, jobs)) as pool, \
            tqdm(total=len(ids), desc="grading", unit="notebook", disable=not progress_bar) as bar:
        futures = {sid: pool.submit(grade_one, sid, prepared[sid], course, recordings, options) for sid in ids}
        for sid, future in futures.items():
            graded[sid] = future.result()
            bar.update()
    rows, item_rows, pages = [], [], {}
    columns = list(report.FIXED_COLUMNS) + [report.item_column(n, i) for n in needed for i in course[n].items]
    for sid in sorted(graded):
        row, items, page = graded[sid]
        for it in items:
            row[report.item_column(row["exercise"], it["item"])] = it["points"]
            item_rows.append({"submission": sid, "exercise": row["exercise"], "item": it["item"],
                              "points": it["points"], "status": it["status"], "diagnosis": it["diagnosis"]})
        rows.append(row)
        pages[sid] = page
    report.write_outputs(out, columns, rows, item_rows, pages)
    (out / "run.json").write_text(json.dumps({
        "sandbox": sandbox.describe(isolation), "hidden_batch_seed": seed, "timeout": timeout,
        "memory_gb": memory_gb, "train_steps": train_steps}, indent=1) + "\n")
    return rows


def main(argv=None):
    parser = argparse.ArgumentParser(
        prog="tools/grade.py", description="Grade every exercise notebook under SUBMISSIONS_DIR.",
        epilog="Outputs: OUT_DIR/gradebook.csv, OUT_DIR/items.csv, OUT_DIR/feedback/<submission>.html, "
               "OUT_DIR/run.json (the sandbox used and the hidden batch's seed).")
    parser.add_argument("submissions", nargs="?", metavar="SUBMISSIONS_DIR")
    parser.add_argument("--out", required=True, metavar="OUT_DIR")
    parser.add_argument("--jobs", type=int, default=1, metavar="N", help="submissions graded at once (default 1)")
    parser.add_argument("--timeout", type=float, default=DEFAULT_TIMEOUT, metavar="SECONDS",
                        help=f"time limit per answer and batch (default {DEFAULT_TIMEOUT}; training gets "
                             f"{TRAINING_LIMIT} times as long)")
    parser.add_argument("--memory", type=float, default=DEFAULT_MEMORY_GB, metavar="GB",
                        help=f"memory limit of a worker (default {DEFAULT_MEMORY_GB:g})")
    parser.add_argument("--seed", type=int, metavar="N", help="seed of the hidden batch (default: a new random one, "
                                                               "written to OUT_DIR/run.json)")
    parser.add_argument("--shard", metavar="K/N", help="grade only the K-th of N equal parts (1 <= K <= N)")
    parser.add_argument("--train-steps", type=int, default=DEFAULT_TRAIN_STEPS, metavar="STEPS",
                        help=f"training steps for exercises that train (default {DEFAULT_TRAIN_STEPS})")
    parser.add_argument("--merge", nargs="+", metavar="DIR", help="join the OUT_DIRs of several shards into --out")
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")
    args = parser.parse_args(argv)
    try:
        if args.merge:
            if args.submissions:
                raise UsageError("give either SUBMISSIONS_DIR or --merge, not both")
            rows = report.merge(args.merge, args.out)
        else:
            if not args.submissions:
                raise UsageError("SUBMISSIONS_DIR is required (or --merge DIR ...)")
            if args.jobs < 1 or args.timeout <= 0 or args.train_steps < 1 or args.memory <= 0:
                raise UsageError("--jobs, --timeout, --memory and --train-steps must be positive")
            rows = grade(args.submissions, args.out, jobs=args.jobs, timeout=args.timeout,
                         shard=parse_shard(args.shard) if args.shard else None, train_steps=args.train_steps,
                         memory_gb=args.memory, seed=args.seed, progress_bar=not args.no_progress)
    except (UsageError, OSError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    counts = {}
    for row in rows:
        counts[row["status"]] = counts.get(row["status"], 0) + 1
    summary = ", ".join(f"{n} {status}" for status, n in sorted(counts.items())) or "no submissions"
    print(f"{len(rows)} submission(s): {summary}. Wrote {Path(args.out) / 'gradebook.csv'}")
    return 0
