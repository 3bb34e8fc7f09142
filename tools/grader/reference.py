"""The grader's trusted runs of the solution notebooks, in its own process: the references.

run() executes a solution's graded cells with two hooks. Around each answer region it records, for
the first ENTRIES times the region runs, a copy of every plain-data value it can read (`inputs`:
tensors detached and cloned, numbers, lists and dicts of them) and of the names it assigns
(`outputs`). And it records each call of `cmp` or `check_numerically` whose answer argument is one
of those outputs (the very object), with its other arguments and the reference gradient at that
moment: replaying that check with a student's value in place of the solution's is how an item is
judged, with cmp's own verdict and diagnosis (score.py). With `hidden_seed`, every `torch.randint`
draws from a generator seeded with it: another batch, the same parameters.

train() runs an exercise that trains (04) for one student: the solution's cells, with each answer
region replaced by a call that sends its inputs to the student's sandboxed worker and takes back
the names it assigns; it returns the validation loss the notebook computes from what was trained.
"""
import contextlib
import io
import os
import sys
import threading
import warnings
from dataclasses import dataclass, field

import torch

from .course import ROOT, SOLUTIONS

ENTRIES = 2  # times a region's inputs and outputs are recorded (a function called in training: its first calls)
LIST_CAP = 10_000  # a longer list or dict is not sent to workers as data
HOOK = "__grader_hook__"
REMOTE = "__grader_remote__"
NOT_DATA = object()
LOCK = threading.Lock()  # the trusted runs share this process's cmp module, stdout and working folder


class ReferenceError_(Exception):
    """A solution cell raised: the solution cannot be the reference."""


@dataclass
class Check:
    kind: str                 # "cmp" or "check_numerically"
    args: list
    kwargs: dict
    slot: object              # where the answer goes: a position in args, or a keyword
    tensor: object = None     # cmp's t, and t.grad as it was at the call
    grad: object = None


@dataclass
class Entry:
    inputs: dict
    outputs: dict = field(default_factory=dict)
    checks: dict = field(default_factory=dict)   # name -> [Check]


@dataclass
class Recording:
    entries: dict             # group key -> [Entry]
    namespace: dict
    errors: list              # (cell index, "Type: message") of cells that raised


class Snapshots:
    """Copies of plain data; a tensor is copied again only when it changed (its _version)."""

    def __init__(self):
        self.cache = {}

    def data(self, value, depth=0):
        if isinstance(value, torch.Tensor):
            if value.layout != torch.strided:
                return NOT_DATA
            hit = self.cache.get(id(value))
            if hit is not None and hit[0] is value and hit[1] == value._version:
                return hit[2]
            copy = value.detach().clone()
            self.cache[id(value)] = (value, value._version, copy)
            return copy
        if value is None or isinstance(value, (bool, int, float, str)):
            return value
        if depth >= 4:
            return NOT_DATA
        if isinstance(value, (list, tuple)) and len(value) <= LIST_CAP:
            items = [self.data(v, depth + 1) for v in value]
            if any(i is NOT_DATA for i in items):
                return NOT_DATA
            return items if isinstance(value, list) else tuple(items)
        if isinstance(value, dict) and len(value) <= LIST_CAP and all(isinstance(k, (str, int)) for k in value):
            items = {k: self.data(v, depth + 1) for k, v in value.items()}
            return NOT_DATA if any(v is NOT_DATA for v in items.values()) else items
        return NOT_DATA

    def namespace(self, frame):
        out = {}
        for name, value in {**frame.f_globals, **frame.f_locals}.items():
            if name.startswith("__"):
                continue
            copy = self.data(value)
            if copy is not NOT_DATA:
                out[name] = copy
        return out


def instrumented(exercise, cell, fill):
    """A cell's source with fill(group) -> lines in place of each answer region."""
    answer = exercise.answers.get(cell["id"])
    return cell["source"] if answer is None else answer.source(fill)


@contextlib.contextmanager
def _notebook_process(hidden_seed, train_steps):
    """This process set up as a kernel running a solution: cwd, settings, quiet output, hidden batch."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    saved_env = {k: os.environ.get(k) for k in ("CMP_STRICT", "NINJA_TRAIN_STEPS", "TQDM_DISABLE")}
    os.environ.update(CMP_STRICT="0", NINJA_TRAIN_STEPS=str(train_steps), TQDM_DISABLE="1")
    cwd, real_randint = os.getcwd(), torch.randint
    if hidden_seed is not None:
        secret = torch.Generator().manual_seed(hidden_seed)

        def hidden_randint(*args, **kwargs):
            kwargs["generator"] = secret
            return real_randint(*args, **kwargs)
        torch.randint = hidden_randint
    os.chdir(SOLUTIONS)
    sink = io.StringIO()
    try:
        with contextlib.redirect_stdout(sink), contextlib.redirect_stderr(sink), warnings.catch_warnings():
            warnings.simplefilter("ignore")
            yield plt
    finally:
        torch.randint = real_randint
        os.chdir(cwd)
        for k, v in saved_env.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v
        plt.close("all")


def _run_cells(sources, namespace, plt, stop=None):
    """exec each source as a cell; [(index, error)] of those that raised. stop(namespace) ends early."""
    errors = []
    for index, source in enumerate(sources):
        try:
            exec(compile(source, f"<cell {index}>", "exec"), namespace)
        except Exception as error:  # noqa: BLE001 - recorded; like Run All with errors allowed
            errors.append((index, f"{type(error).__name__}: {str(error)[:300]}"))
        plt.close("all")
        if stop and stop(namespace):
            break
    return errors


def _checker():
    """The course's cmp module (the same one the solutions import)."""
    if str(ROOT) not in sys.path:
        sys.path.insert(0, str(ROOT))
    import cmp
    return cmp


def run(exercise, *, hidden_seed=None, train_steps=1000):
    """Run a solution with its regions recorded: a Recording."""
    checker = _checker()
    snapshots, entries, outputs_by_id = Snapshots(), {}, {}
    open_entries = {}

    def hook(key, event):
        frame = sys._getframe(1)
        if event == "enter":
            open_entries[key] = None
            if len(entries.setdefault(key, [])) < ENTRIES:
                open_entries[key] = Entry(inputs=snapshots.namespace(frame))
                entries[key].append(open_entries[key])
            return
        entry = open_entries.pop(key, None)
        if entry is None:
            return
        scope = {**frame.f_globals, **frame.f_locals}
        group = next(g for g in exercise.groups if g.key == key)
        for name in group.names:
            value = scope.get(name)
            entry.outputs[name] = snapshots.data(value)
            if value is not None and not isinstance(value, (bool, int, float, str)):
                outputs_by_id.setdefault(id(value), []).append((entry, name, value))

    def recorder(kind, real, slot_position, slot_keyword):
        def wrapped(*args, **kwargs):
            result = real(*args, **kwargs)
            if slot_keyword in kwargs:
                slot, answer = slot_keyword, kwargs[slot_keyword]
            elif len(args) > slot_position:
                slot, answer = slot_position, args[slot_position]
            else:
                return result
            for entry, name, value in outputs_by_id.get(id(answer), []):
                if value is not answer:
                    continue
                check = Check(kind, list(args), dict(kwargs), slot)
                if kind == "cmp":
                    t = args[2] if len(args) > 2 else kwargs.get("t")
                    check.tensor, check.grad = t, _grad_of(t)
                entry.checks.setdefault(name, []).append(check)
            return result
        return wrapped

    def fill(group):
        hook_line = f"{group.indent}{HOOK}({group.key!r}, {{}})"
        return [hook_line.format('"enter"')] + group.solution + [hook_line.format('"exit"')]

    real = checker.cmp, checker.check_numerically
    namespace = {"__name__": "__main__", HOOK: hook}
    with LOCK, _notebook_process(hidden_seed, train_steps) as plt:
        checker.cmp = recorder("cmp", real[0], 1, "dt")
        checker.check_numerically = recorder("check_numerically", real[1], 4, "dx")
        checker.reset()
        try:
            errors = _run_cells([instrumented(exercise, c, fill) for c in exercise.cells], namespace, plt)
        finally:
            checker.cmp, checker.check_numerically = real
            checker.reset()
    return Recording(entries, namespace, errors)


def _grad_of(t):
    if not isinstance(t, torch.Tensor):
        return None
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        grad = t.grad
    return None if grad is None else grad.detach().clone()


def train(exercise, remote, *, train_steps):
    """The validation loss `val_loss` the notebook reaches with the student's regions (run by remote(key, scope)
    -> {name: value}), or raises what remote raised. Runs the cells up to the one that sets val_loss."""
    checker = _checker()

    def fill(group):
        lines = [f"{group.indent}__grader_outputs__ = {REMOTE}({group.key!r}, {{**globals(), **locals()}})"]
        lines += [f"{group.indent}{name} = __grader_outputs__[{name!r}]" for name in group.names]
        return lines

    namespace = {"__name__": "__main__", REMOTE: remote}
    with LOCK, _notebook_process(None, train_steps) as plt:
        checker.reset()
        sources = [instrumented(exercise, c, fill) for c in exercise.cells]
        errors = _run_cells(sources, namespace, plt, stop=lambda ns: "val_loss" in ns)
        checker.reset()
    if errors:  # e.g. an answer's value the notebook could not use: no loss from a run that broke
        return None, errors
    return namespace.get("val_loss"), errors

