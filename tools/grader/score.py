"""Judging a submission's answers, in the grader's process, against the references it computed.

An item (a name an answer assigns, or an answer function) is right only if it is right on every
judged entry of every variant: the notebook's batch and the one the grader chose. On an entry whose
output the solution checked with cmp or check_numerically, the check is replayed with the student's
value in place of the solution's: cmp's own verdict, status and diagnosis. Otherwise the value is
compared with the solution's (same shape and dtype, torch.allclose; exact for integers and booleans).
"""
import contextlib
import io
import math
import warnings

import torch

from .course import TRAINING
from .plan import judged_entries
from .reference import LOCK, Check, _checker
from .run import Failure

TRAINING_TOLERANCE = 0.05  # the validation loss may exceed the solution's by this much
VARIANTS = ["the notebook's batch", "a batch the grader chose"]


@contextlib.contextmanager
def _grad_as_recorded(check):
    t = check.tensor
    if not isinstance(t, torch.Tensor) or check.grad is None:
        yield
        return
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        saved = t.grad
        t.grad = check.grad
        try:
            yield
        finally:
            t.grad = saved


def replay(check, value):
    """cmp's (or check_numerically's) CheckResult for `value` in the answer's place, or None if it failed."""
    checker = _checker()
    args, kwargs = list(check.args), dict(check.kwargs)
    if isinstance(check.slot, int):
        args[check.slot] = value
    else:
        kwargs[check.slot] = value
    kwargs.update(strict=False, record=False)
    function = checker.cmp if check.kind == "cmp" else checker.check_numerically
    with LOCK, _grad_as_recorded(check), contextlib.redirect_stdout(io.StringIO()):
        try:
            return function(*args, **kwargs)
        except Exception:  # noqa: BLE001 - a value cmp cannot take at all
            return None


def same_value(value, reference):
    """The student's value equals the solution's (a value no check compares)."""
    if isinstance(reference, torch.Tensor):
        if not isinstance(value, torch.Tensor) or value.shape != reference.shape or value.dtype != reference.dtype:
            return False
        if reference.dtype.is_floating_point:
            return bool(torch.allclose(value, reference))
        return bool(torch.equal(value, reference))
    if isinstance(reference, bool) or reference is None:
        return value == reference and type(value) is type(reference)
    if isinstance(reference, (int, float)):
        if isinstance(value, torch.Tensor) and value.numel() == 1 and value.dtype.is_floating_point:
            value = value.item()
        return (isinstance(value, (int, float)) and not isinstance(value, bool)
                and math.isclose(value, reference, rel_tol=1e-5, abs_tol=1e-8))
    if isinstance(reference, (list, tuple)):
        return (isinstance(value, (list, tuple)) and len(value) == len(reference)
                and all(same_value(v, r) for v, r in zip(value, reference)))
    if isinstance(reference, dict):
        return (isinstance(value, dict) and value.keys() == reference.keys()
                and all(same_value(value[k], reference[k]) for k in reference))
    return value == reference


def _verdict(name, value, entry):
    """(right, status, hint, diagnosis) of one name on one entry."""
    if name not in entry.checks:
        try:
            right = same_value(value, entry.outputs.get(name))
        except (ArithmeticError, ValueError, TypeError, RuntimeError):  # e.g. an int too large for a float
            right = False
        return right, ("right" if right else "wrong"), ("" if right else "not the right value"), ""
    for check in entry.checks[name]:
        result = replay(check, value)
        if result is None:
            return False, "wrong", f"`{name}` is not something the checker can compare (a {type(value).__name__})", ""
        if not result:
            return False, str(result.status), result.hint or "", str(getattr(result, "diagnosis", "") or "")
    return True, str(result.status), "", ""


def judge_item(item, plan, results, recordings):
    """{"item", "points", "status", "hint", "diagnosis"} of one item."""
    exercise = plan.exercise
    groups = exercise.groups_of(item)
    entry_out = {"item": item, "points": 0, "status": "", "hint": "", "diagnosis": ""}
    for group in groups:
        kind, sentence = plan.notes[group.key]
        if kind != "ok":
            entry_out.update(status="not run" if kind == "rejected" else "not done", hint=sentence, diagnosis=kind)
            return entry_out
    statuses = set()
    for group in groups:
        names = group.names if group.function else [item]
        for variant, recording in enumerate(recordings):
            entries = recording.entries.get(group.key, [])
            for index in judged_entries(entries):
                answer = results.get((group.key, variant, index))
                if isinstance(answer, Failure):
                    entry_out.update(status=answer.kind, hint=f"not graded: {answer.reason}", diagnosis=answer.kind)
                    return entry_out
                if answer is None:
                    entry_out.update(status="not checked", hint="not checked: the grader recorded no answer")
                    return entry_out
                for name in names:
                    value = answer["outputs"].get(name)
                    if answer["error"] or name in answer["missing"]:
                        why = f"raised {answer['error']}" if answer["error"] else f"does not assign `{name}`"
                        entry_out.update(status="error", hint=f"the answer {why}", diagnosis="error")
                        return entry_out
                    if value is None:
                        entry_out.update(status="not done", hint=f"`{name}` is still None", diagnosis="not done")
                        return entry_out
                    right, status, hint, diagnosis = _verdict(name, answer["outputs"][name], entries[index])
                    statuses.add(status)
                    if not right:
                        if variant:
                            hint = (f"right on the notebook's batch but not on {VARIANTS[variant]}: does the "
                                    f"answer depend on numbers of one batch? ({hint})")
                        elif group.function:
                            hint = f"`{name}`: {hint}"
                        entry_out.update(status=status, hint=hint, diagnosis=diagnosis)
                        return entry_out
    entry_out.update(points=1, status="exact" if statuses == {"exact"} else "right")  # bit-identical, or close
    return entry_out


def judge_training(val_loss, why, reference_loss, train_steps, functions_right):
    need = reference_loss + TRAINING_TOLERANCE
    entry = {"item": TRAINING, "points": 0, "status": "not reached", "diagnosis": ""}
    if not functions_right:
        entry.update(status="not run", hint="training runs only once every answer function is right")
        return entry
    if val_loss is not None and val_loss <= need:
        entry.update(points=1, status="reached")
    got = f"{val_loss:.3f}" if val_loss is not None else f"none ({why})"
    entry["hint"] = (f"validation loss after {train_steps:,} training steps with your functions: {got}; the "
                     f"solution reaches {reference_loss:.3f}, and at most {need:.3f} counts")
    return entry
