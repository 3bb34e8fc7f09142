"""Check a hand-written gradient against PyTorch's: `from cmp import cmp, summary`.

    cmp("logprobs", dlogprobs, logprobs)

compares your `dlogprobs` with `logprobs.grad` (filled in by `loss.backward()`)
and prints one line, with the same columns as in the lecture:

    logprobs        | exact: True  | approximate: True  | maxdiff: 0.0e+00

exact        every number is bit-identical (and the shape and dtype are those of t.grad)
approximate  torch.allclose(dt, t.grad) with its default tolerances (cmp's atol= can widen the
             absolute one), and the same shape and dtype; also True for an all-zero answer where the
             right gradient is zero up to float rounding
maxdiff      the largest absolute difference ("-" when the shapes differ, or nothing was compared)

When there is something to say, lines starting with "  -> " follow. For a wrong
answer, what cmp measured (a factor of 32, a missing branch, two shapes that differ,
a transposed matrix ...); its explanation of what may have caused it waits until you
call why(), so that you look for the cause first (hints(explain=True) shows it at
once). For a right answer that is not exact, why that is only rounding.

How the advice is found: each diagnosis is one small rule that looks at your answer,
the right answer and the tensor itself, and speaks only when the numbers fit its
explanation. All of them are in one table, RULES (near the end of this file): each
rule's id, when it speaks, what it says and why it stands where it does. The first
rule that fits gives the hint, and its id is kept in `result.diagnosis`. When a
gradient you checked earlier is wrong, was computed from this tensor (autograd's
graph says so) and your answer is consistent with having used it, cmp says "fix it first":
when the graph was kept (loss.backward(retain_graph=True)), it applies the right backward
step to your own earlier gradient, to say whether your step from it is right or wrong as
well; without the graph it can only compare the two errors (the rule table says how).
When a gradient you checked earlier in a wrong shape is still one of your variables,
and would broadcast silently into this one, cmp names it.
When your batch or forward pass changed after loss.backward() ran, cmp says so
instead of judging your answer against gradients of old tensors.

Every call returns a `CheckResult`; `bool(result)` is the "approximate" column,
so a gradient with the right values but the wrong shape or dtype counts as wrong
(the lecture's cmp accepted a (64,) gradient for a (1, 64) tensor: we don't).
Its `status` is a `Status`:
    exact          bit-identical to t.grad
    rounding       not bit-identical, but allclose: float rounding, not a mistake
    wrong          wrong values, shape or dtype (the hint says which)
    not done       the gradient is still None or `...`
    no reference   t.grad is missing (retain_grad() or loss.backward() forgotten), or it belongs to
                   old tensors (the batch or the forward pass changed after loss.backward() ran)
Every result is remembered by name: `summary()` shows them all in one table.

Nothing said at all: `hints(False)` (ninja mode) leaves the lecture's three columns (and two shapes that
differ). For a class: `hints(why=False)` keeps only facts about the numbers (a factor, a sign, the shapes,
which entries are wrong) and turns why() off.

Strict mode (for solutions and tests): `cmp(..., strict=True)` or the
environment variable CMP_STRICT=1 make every result that is not right
(including "not done") raise a `GradientError`.

Without autograd: `numerical_vjp` estimates a gradient with finite
differences and `check_numerically` compares yours with it (a wrong dx: what it
measured, and why() the rest, as for cmp).

Spoilers: to recognise slips, cmp computes some answers itself (exercise 3's fused formula among
them); read its code after the exercises.

A map of this file, for the curious. Using cmp needs only this docstring. Most of the file is the
catalogue of slips it recognises, one small function each; the table RULES lists them all with a
sentence each, so read it first. In order: the registry of checks; cmp itself and the pipeline a
check goes through; the rules for a wrong shape; the rules for wrong values (the long part); the
table RULES; summary(); checking without autograd (finite differences).

Only the numbers after "maxdiff: " and "rel err: ", and before "of (or times) the largest entry",
depend on the machine; everything else this module prints is the same on every run.
"""
import enum
import html
import inspect
import math
import os
import re
import warnings
from dataclasses import dataclass, replace
from fractions import Fraction

import torch

__all__ = [
    "cmp", "summary", "reset", "CheckResult", "Status", "Summary", "GradientError",
    "numerical_vjp", "rel_error", "check_numerically", "RULES", "RULE_IDS", "hints", "hints_shown", "why",
]


class Status(enum.StrEnum):
    """What a check found. A Status is a str, so `result.status == "wrong"` works."""
    EXACT = "exact"                # bit-identical to t.grad
    ROUNDING = "rounding"          # not bit-identical, but allclose: float rounding, not a mistake
    WRONG = "wrong"                # wrong values, shape or dtype (the hint says which)
    NOT_DONE = "not done"          # the gradient is still None or `...`
    NO_REFERENCE = "no reference"  # t.grad is missing, so there is nothing to compare with
    # check_numerically's verdicts (it also uses WRONG and NOT_DONE):
    CORRECT = "correct"
    PROBABLY_CORRECT = "probably correct"
    SUSPICIOUS = "suspicious"


PASSING = (Status.EXACT, Status.ROUNDING, Status.CORRECT, Status.PROBABLY_CORRECT)

# Thresholds, named once. Relative sizes are measured against the largest |value| involved.
FLOAT32_RESOLUTION = 1e-7   # float32 rounding gives relative errors of about this size
ALMOST_RIGHT = 1e-5         # a wrong answer this close (rel err) is "almost right", not a formula slip
FIT = 1e-4                  # how closely an explanation must reproduce your answer to be named
LOOSE_FIT = 1e-3            # ... when the explanation is itself estimated (a mean along a dim, a projection)
EXPLAINED = 0.01            # an explanation must leave less than 1% of the difference from the right answer
FRACTION_FIT = 1e-5         # a factor is named as a fraction when it is this close (relative) to it
NUMBER_EXACT = 1e-6         # a number is printed as a fraction when it is this close (relative) to one
ZERO_ANSWER = 1e-3          # a right answer whose largest value is this small relative to yours is "zero"
NOISE = 1e-4                # ... and this small relative to the gradients flowing into it: rounding noise
NOISE_WITHOUT_NEIGHBOURS = 1e-6  # ... or, when no neighbour was checked, this small (the lecture's gradients: 1e-3 and up)
BLAME_SIZE = 1e-6           # an earlier wrong gradient is blamed only when its error is at least this share of
                            # this one's (the chain rule multiplies errors by local derivatives, rarely by 1e6)
SHARE_FIT = 0.02            # the variance part of a fused BatchNorm gradient is measured to within 2%
MAX_DENOMINATOR = 256       # constant factors are named as fractions with denominators up to this
BN_EPS = 1e-5               # the epsilon the lecture's BatchNorm adds to the variance
NUMERICAL_CORRECT = 1e-7    # check_numerically (cs231n's thresholds on rel_error): below this "correct",
NUMERICAL_PASS = 1e-4       # ... below this "probably correct" (right answers pass),
NUMERICAL_WRONG = 1e-2      # ... below this "suspicious", above it "wrong"
MAX_LISTED = 32             # cmp looks at the tensors in your notebook's lists up to this length (Ws[9])
MAX_CONDITION = 1e4         # a square matrix is inverted to test a transpose only when it is this well-conditioned
_TINY = 1e-30               # keeps relative errors finite when the reference is all zeros


class GradientError(AssertionError):
    """Raised in strict mode when a gradient is wrong or not done yet."""


@dataclass(frozen=True)
class CheckResult:
    """The outcome of one check. `bool(result)` is True when the gradient is right.

    name       the name you passed to cmp
    exact      bit-identical to t.grad (same shape and dtype)
    approx     torch.allclose(dt, t.grad) with the same shape and dtype as t.grad
    maxdiff    largest |dt - t.grad| (nan when it cannot be computed)
    relerr     maxdiff / largest |t.grad| (for check_numerically: cs231n's rel_error)
    hint       what to fix, or why the differences are only rounding; None when there is nothing
               to say. Several sentences are separated by newlines.
    status     a Status
    kind       "cmp" or "numerical" (made by check_numerically; then exact is always False)
    diagnosis  the id of the rule that gave the hint (see RULES), e.g. "constant_factor"
    values_right  the numbers are right and only the shape or dtype is not (an error that does not
               spread to the gradients computed from this one)
    """
    name: str
    exact: bool
    approx: bool
    maxdiff: float
    relerr: float
    hint: str = None
    status: Status = Status.WRONG
    kind: str = "cmp"
    diagnosis: str = None
    values_right: bool = False

    def __bool__(self):
        return bool(self.approx)

    def __str__(self):
        """The main line and every hint line, the explanation included."""
        return _report(self)

    def report(self, explain=None):
        """The text cmp prints for this result: with explain=False, of a wrong answer only what was measured (then
        why() explains it); None follows hints(explain=...)."""
        return _report(self, explain)

    def _ipython_display_(self):
        """In Jupyter, cmp has already printed the result: don't show it a second time."""


# ---------------------------------------------------------------------------
# The registry: every check is remembered, so summary() can list them all,
# and the tensor it was made on, so that cmp can follow autograd's graph.

_results = {}
_tensors = {}
_answers = {}  # {name: your gradient as it was checked (a detached copy)}
_your_names = {}  # {name: your gradient's variable name when it was checked, e.g. "grad_lse" for l_lse}


def reset():
    """Forget all checks made so far."""
    _results.clear()
    _tensors.clear()
    _answers.clear()
    _your_names.clear()
    _seen_grads.clear()
    _seen_batch.clear()
    _seen_as_variable.clear()
    global _held_back
    _held_back = None


def _record(result, t, dt=None):
    """Remember a result under its name, with its tensor and your gradient; a new check of the same name
    replaces the old one."""
    _results[result.name] = result
    if isinstance(t, torch.Tensor):
        _tensors[result.name] = t
    else:
        _tensors.pop(result.name, None)
    _answers.pop(result.name, None)
    if isinstance(dt, torch.Tensor) and result.diagnosis != "internal_error":
        _answers[result.name] = dt.detach().clone()


def _steps_back(u, t, limit=200):
    """How many autograd nodes lie between u and t when u was computed from t; else None."""
    if not (isinstance(u, torch.Tensor) and isinstance(t, torch.Tensor)) or u is t or u.grad_fn is None:
        return None
    frontier, seen, steps = [u.grad_fn], set(), 0
    while frontier and len(seen) < limit:
        steps += 1
        following = []
        for node in frontier:
            if node is None or node in seen:
                continue
            seen.add(node)
            if node is t.grad_fn or getattr(node, "variable", None) is t:
                return steps
            following += [parent for parent, _ in node.next_functions]
        frontier = following
    return None


def _count_paths(u, t, limit=10_000):
    """How many paths lead from u back to t in autograd's graph (hprebn reaches bnraw by several)."""
    counts = {}

    def paths_from(node):
        if node is None:
            return 0
        if node is t.grad_fn or getattr(node, "variable", None) is t:
            return 1
        if node not in counts:
            counts[node] = 0  # a guard while this node is being counted
            counts[node] = min(limit, sum(paths_from(child) for child, _ in node.next_functions))
        return counts[node]

    if not isinstance(u, torch.Tensor) or u is t:
        return 0
    try:
        return paths_from(u.grad_fn)
    except RecursionError:  # a graph deeper than Python's recursion limit: no count
        return 0


def _wrong_upstream(name, t, this):
    """The first recorded check with wrong values whose tensor was computed from t: its error can flow into
    t's gradient (a wrong shape or dtype with the right numbers does not count, nor an error far too small
    to explain this one's)."""
    for other, result in _results.items():
        if (other != name and result.status == Status.WRONG and not result.values_right
                and _stage(result) != "shape"  # not measured: not blamed
                and not result.maxdiff < BLAME_SIZE * this.maxdiff and _steps_back(_tensors.get(other), t)):
            return other
    return None


def _consumers(name, t):
    """[(name, tensor, its reference gradient)] of the recorded tensors computed from t, nearest first."""
    found = []
    for other, u in _tensors.items():
        steps = None if other == name else _steps_back(u, t)
        grad = _grad_of(u) if steps else None
        if grad is not None and grad.is_floating_point() and torch.isfinite(grad).all():
            found.append((steps, other, u, grad.to(torch.float64)))
    return [(other, u, grad) for _, other, u, grad in sorted(found, key=lambda f: f[0])]


def _grad_of(t):
    with warnings.catch_warnings():  # reading .grad of a non-leaf tensor warns
        warnings.simplefilter("ignore")
        grad = t.grad
    return grad.detach() if isinstance(grad, torch.Tensor) else None


# ---------------------------------------------------------------------------
# cmp


def cmp(name, dt, t, *, strict=None, record=True, atol=1e-8, explain=None):
    """Compare your gradient `dt` with `t.grad`, print the verdict and return a CheckResult.

    strict: True raises GradientError when the gradient is wrong or not done yet;
    None (the default) reads the environment variable CMP_STRICT at each call.
    record: False keeps this check out of summary() (for a side experiment).
    atol: the absolute tolerance of torch.allclose (its default, 1e-8). Raise it only for a
          gradient that is zero up to rounding, like b1's before BatchNorm, whose rounding
          noise can exceed 1e-8.
    explain: of a wrong answer, cmp prints what it measured (the start of its diagnosis) and keeps
          the explanation until you call why(); explain=True prints it at once. None (the default)
          follows hints(explain=...), itself False unless the environment sets CMP_EXPLAIN=1.
    """
    name = str(name)
    try:
        namespace = _caller_namespace()
        stale = _stale_state(name, t, namespace)
        result = _check(name, dt, t, atol, namespace)
        if stale and result.status in (Status.WRONG, Status.NO_REFERENCE):
            result = _fail(name, Status.NO_REFERENCE, stale, "stale_state")
        elif result.status == Status.WRONG:
            unfixed = _unfixed_shape(name, t, namespace, result)
            if unfixed:
                result = replace(result, hint=result.hint + "\n" + unfixed, diagnosis="unfixed_shape")
            upstream = None if result.values_right else _wrong_upstream(name, t, result)  # right numbers: no blame
            if upstream:
                about_values = _stage(result) == "value"
                step = _your_step(name, dt, t, namespace) if about_values else None
                result = _blame_upstream(result, upstream, step, dt, t)
    except Exception as err:  # a safety net: a bug in cmp must not look like a bug in your answer
        if _is_strict(strict):
            raise
        result = _fail(name, Status.WRONG, f"internal error in cmp ({type(err).__name__}: {err}): this is a bug "
                       "in cmp, not necessarily in your gradient; please report it", "internal_error")
    _forget_held_back(name)
    print(_report(result, explain))
    if record:
        _record(result, t, dt)
    _raise_if_strict(result, strict)
    return result


def _caller_namespace():
    """The variables of the code that called cmp (your notebook): to call your gradient by its name. Inside a
    function, its local variables come first (a message names its `cache["Xb"]` before a global's)."""
    frame = inspect.currentframe()
    while frame is not None and frame.f_globals.get("__name__") == __name__:
        frame = frame.f_back
    if frame is None:
        return {}
    return {**frame.f_locals, **{key: value for key, value in frame.f_globals.items() if key not in frame.f_locals}}


# What cmp saw at its last check, to notice a notebook that changed after loss.backward() ran.
_seen_grads = {}  # {name: a copy of its reference gradient}
_seen_batch = {}  # {name: a copy} of your integer tensors (Xb, Yb, ...) when the gradients last changed
_seen_as_variable = set()  # names checked on the notebook's variable of that name (cmp("h", dh, h))


def _stale_state(name, t, namespace):
    """Why the reference gradients no longer belong to your notebook's tensors (a message), or None.

    After loss.backward(), re-running the batch cell changes Xb and Yb, and re-running the forward
    cell makes new tensors: the gradients cmp compares with then belong to the old ones."""
    recomputed = [other for other, u in _tensors.items()
                  if other in _seen_as_variable and isinstance(namespace.get(other), torch.Tensor)
                  and namespace[other] is not u and namespace[other].grad_fn is not None
                  and _grad_of(namespace[other]) is None]
    batch = {key: value.clone() for key, value in namespace.items()
             if isinstance(value, torch.Tensor) and not key.startswith("_") and _is_index_tensor(value)}
    backward_ran = not _seen_grads or any(
        _grad_of(_tensors[other]) is None or not torch.equal(_grad_of(_tensors[other]), grad)
        for other, grad in _seen_grads.items() if other in _tensors)
    if backward_ran:
        _seen_batch.clear()
        _seen_batch.update(batch)
    changed = [key for key, value in batch.items() if key in _seen_batch
               and not (value.shape == _seen_batch[key].shape and torch.equal(value, _seen_batch[key]))]
    for other, u in list(_tensors.items()) + [(name, t)]:
        grad = _grad_of(u) if isinstance(u, torch.Tensor) else None
        if grad is not None:
            _seen_grads[other] = grad.clone()
    if namespace.get(name) is t:
        _seen_as_variable.add(name)
    if recomputed:
        return (f"{_listing(recomputed)} {'was' if len(recomputed) == 1 else 'were'} computed again after "
                "loss.backward() last ran, so the gradients cmp compares with belong to the old tensors: re-run "
                "the cell that calls loss.backward() (and retain_grad()), then check again")
    if changed:
        return (f"{_listing(changed)} changed after loss.backward() last ran (did the batch cell run again?), so "
                "the gradients cmp compares with belong to the old batch: re-run the forward pass and the cell "
                "that calls loss.backward(), then check again")
    return None


def _is_index_tensor(x):
    """A small tensor of integers, like Xb or Yb."""
    return 0 < x.numel() <= 100_000 and x.dtype in (torch.int64, torch.int32, torch.int16, torch.int8, torch.uint8)


def _listing(names):
    """'`Xb` and `Yb`'."""
    quoted = [f"`{n}`" for n in names]
    return quoted[0] if len(quoted) == 1 else ", ".join(quoted[:-1]) + " and " + quoted[-1]


def _blame_upstream(result, upstream, step=None, dt=None, t=None):
    """A wrong gradient below a wrong earlier one it may be computed from: say so, as far as the numbers allow.

    When cmp could apply the right backward step to your own gradient of the earlier tensor (`step`, see
    _your_step), it says whether your step is right (then the error is all inherited) or what is wrong with
    it. Without the graph, the only evidence is your earlier gradient itself: when it is k times the right one,
    a right step from it gives k times the right answer here (if all of this gradient flows through it), so
    "fix it first" is said when yours is that, and "another path, or your step is wrong as well" when it is
    not. Otherwise the earlier error is only large enough to explain this one: it is said with "may". (Both
    only replace a loose diagnosis, which may describe the inherited error.) A rule that rebuilt your whole
    answer from right gradients (Rule.whole_answer) needs no note; a local one (Rule.local: a precise wrong
    formula for this step) and a shape or dtype one are kept, with "if your formula uses its gradient, fix
    it first": the inherited error can look like the local slip (a dbndiff2 twice too large makes dbndiff's
    variance part twice its size), so neither is ruled out."""
    rule = _RULES_BY_ID.get(result.diagnosis)
    if rule is not None and rule.whole_answer:
        return result
    if rule is not None and rule.stage == "value" and step is not None:
        return _judge_your_step(result, rule, step)
    loose = rule is not None and rule.stage == "value" and not rule.local
    factor = _upstream_factor(upstream) if loose else None
    d, problem = _as_tensor(dt) if dt is not None else (None, True)
    ref = _grad_of(t) if isinstance(t, torch.Tensor) else None
    if factor is not None and not problem and ref is not None and d.shape == ref.shape:
        d, ref = d.detach().to(torch.float64), ref.to(torch.float64)
        yours = "all zeros" if factor == 0 else f"{_number(factor)} times the right one"
        if _fits(factor * ref, d):
            return replace(result, diagnosis="wrong_upstream", hint=(
                f"`{upstream}`, checked before this one, is wrong too: your d{upstream} is {yours}, and so is this "
                f"answer, as a right step from it gives when all of this gradient flows through {upstream}: fix it "
                "first, then check this one again (fixed it already? run its check again)"))
        return replace(result, diagnosis="wrong_upstream", hint=(
            f"`{upstream}`, checked before this one, is wrong too: your d{upstream} is {yours}, and a right step "
            f"from it would make this answer {yours} too if all of this gradient flows "
            f"through {upstream}; yours is not, so either some of it takes another path or your step from it is "
            "wrong as well: fix it first, then check this one again"))
    if loose:
        return replace(result, diagnosis="wrong_upstream", hint=(
            f"`{upstream}`, checked before this one, is wrong too, and {upstream} is computed from this tensor: "
            "if you used its gradient, its error may be all or part of this one's; fix it first, then check this "
            "one again (fixed it already? run its check again)"))
    return replace(result, hint=result.hint + (
        f"\n`{upstream}`, checked before this one, is wrong too: if your formula uses its gradient, fix it first "
        "(fixed it already? run its check again)"))


def _upstream_factor(upstream):
    """k when your gradient of `upstream`, checked before, is k times the right one (0: all zeros), else None."""
    yours, u = _answers.get(upstream), _tensors.get(upstream)
    right = _grad_of(u) if u is not None else None
    if yours is None or right is None or yours.shape != right.shape or not torch.isfinite(yours).all():
        return None
    yours, right = yours.to(torch.float64), right.to(torch.float64)
    return 0.0 if not yours.any() else _multiple(yours, right)


def _unfixed_shape(name, t, namespace, result):
    """A note when a gradient checked before in a wrong shape is still one of your variables in that shape, and
    it broadcasts to t's shape with other numbers than the right one: a formula that uses it gets no error, only
    wrong values. Only below a loose value diagnosis: a local one (Rule.local) fits your answer without it."""
    rule = _RULES_BY_ID.get(result.diagnosis)
    if rule is None or rule.stage != "value" or rule.local:
        return None
    for other, checked in _results.items():
        answer, tensor = _answers.get(other), _tensors.get(other)
        if other == name or checked.status != Status.WRONG or tensor is None or not isinstance(answer, torch.Tensor):
            continue
        right = _grad_of(tensor)
        if right is None or answer.shape == right.shape or not _broadcasts_to(answer.shape, t.shape):
            continue
        if _broadcasts_to(right.shape, t.shape) and _close(answer.expand(t.shape), right.expand(t.shape)):
            continue  # e.g. (64,) for (1, 64): broadcast, the same numbers
        variables = [key for key, value in namespace.items()
                     if not key.startswith("_") and isinstance(value, torch.Tensor) and value.shape == answer.shape
                     and torch.equal(value.detach().to(answer.dtype), answer)]
        if variables:
            return (f"`{variables[0]}`, checked before as {other}'s gradient, still has shape {tuple(answer.shape)} "
                    f"where {other} has {tuple(right.shape)}: if your formula uses it, broadcasting spreads it over "
                    f"{tuple(t.shape)} without an error, with the wrong numbers; fix its shape first")
    return None


def _broadcasts_to(shape, target):
    """True when a tensor of `shape` broadcasts to `target` (without changing target)."""
    try:
        return torch.broadcast_shapes(shape, target) == target
    except RuntimeError:
        return False


_DESCRIPTIONS = ("wrong_values", "partly_right", "almost_right")  # rules that say what differs, not why


def _judge_your_step(result, rule, step):
    """The verdict on a wrong gradient below a wrong one, from the right step applied to your gradient above."""
    above, yours, mine = f"`{step.upstream}`", _names(step.upstream)[0], _names(result.name)[0]
    if step.through:
        return _judge_your_steps(result, rule, step, mine)
    if step.right:
        return replace(result, diagnosis="upstream_only", hint=(
            f"{above}, checked before this one, is wrong too, and all of this gradient flows through it; your "
            f"way from {yours} to {mine} is right (the right backward step applied to your {yours} gives your "
            f"answer), so the error comes from {above}: fix it first, then check this one again"))
    if step.rule not in _DESCRIPTIONS or rule.id in _DESCRIPTIONS:
        return replace(result, diagnosis=f"step_wrong_too+{step.rule}", hint=(
            f"{above}, checked before this one, is wrong too: fix it first. But your way from {yours} to {mine} "
            f"is wrong as well; compared with the right backward step applied to your {yours}:\n{step.hint}"))
    return replace(result, hint=result.hint + (
        f"\n{above}, checked before this one, is wrong too, and your step from it is wrong as well: the right "
        f"backward step applied to your {yours} does not give your answer either"))


def _judge_your_steps(result, rule, step, mine):
    """As _judge_your_step, when t's gradient flows through several checked tensors, some of them wrong."""
    wrong = step.upstream.split(", ")
    above = _listing(wrong)
    yours = " and ".join(_names(other)[0] for other in step.through)
    is_are = "is" if len(wrong) == 1 else "are"
    if step.right:
        return replace(result, diagnosis="upstream_only", hint=(
            f"all of this gradient flows through {_listing(step.through)}, checked before; {above} {is_are} wrong, "
            f"and your way from {yours} to {mine} is right (the right backward steps applied to your {yours} "
            f"give your answer), so the error comes from {above}: fix it first, then check this one again"))
    if step.rule not in _DESCRIPTIONS or rule.id in _DESCRIPTIONS:
        return replace(result, diagnosis=f"step_wrong_too+{step.rule}", hint=(
            f"{above}, checked before this one, {is_are} wrong too: fix it first. But your way from {yours} to "
            f"{mine} is wrong as well; compared with the right backward steps applied to your {yours}:\n"
            f"{step.hint}"))
    return replace(result, hint=result.hint + (
        f"\n{above}, checked before this one, {is_are} wrong too, and your steps from {yours} are wrong as well: "
        f"the right backward steps applied to your {yours} do not give your answer either"))


@dataclass(frozen=True)
class YourStep:
    """The right backward step applied to your own gradient of `upstream`, a wrong checked tensor through
    which all of t's gradient flows: what your answer would be if only `upstream` were wrong."""
    upstream: str
    right: bool       # your answer is what that step gives
    rule: str = None  # else the value rule that says how your answer differs from it, and what it says
    hint: str = None
    through: tuple = ()  # when t's gradient flows through several checked tensors: all their names


def _your_step(name, dt, t, namespace):
    """A YourStep for your answer dt, or None when it cannot be made (no wrong checked tensor that all of
    t's gradient flows through, or autograd's graph was freed: loss.backward() without retain_graph=True)."""
    ref = _grad_of(t)
    d, problem = _as_tensor(dt)
    if problem or ref is None or d.shape != ref.shape:
        return None
    d = d.detach().to(torch.float64)
    for other in _wrong_checks_above(name, t):
        u, your_du = _tensors[other], _answers.get(other)
        if your_du is None or your_du.shape != u.shape or _grad_of(u) is None:
            continue
        through_u = _backward_from(u, _grad_of(u), [t])
        expected = _backward_from(u, your_du, [t])
        if through_u is None or expected is None or through_u[0] is None or expected[0] is None:
            continue  # the graph was freed
        if not _close(through_u[0], ref):
            continue  # some of t's gradient takes another path than through u
        expected = expected[0].detach().to(torch.float64)
        if not torch.isfinite(expected).all():
            return None  # your earlier gradient has NaN or inf: the rules would blame the reference for them
        if _step_says_nothing(ref, [_grad_of(u)], expected):
            return None
        if _step_agrees(d, expected):
            return YourStep(other, True)
        case = _case_below_your_gradient(name, d, t, expected, other, your_du, namespace)
        if case is None:
            return None
        rule, hint = _diagnose("value", case)
        return YourStep(other, False, rule, hint)
    return _your_step_through_a_cut(name, d, t, ref, namespace)


def _step_says_nothing(ref, flowing_in, expected):
    """True when the right step from your earlier gradients cannot judge yours: the right gradient is rounding
    noise next to the gradients flowing in (dlogit_maxes: agreeing with noise proves nothing), or the step
    from yours gives (almost) nothing, e.g. from all zeros (the rules would take that for a tensor the loss
    does not depend on)."""
    return (_max_abs(ref) <= NOISE * max(_max_abs(grad) for grad in flowing_in)
            or _max_abs(expected) <= NOISE * _max_abs(ref.to(torch.float64)))


def _step_agrees(d, expected):
    """Your gradient is the right step from your earlier one, up to rounding: allclose, or off by no more than
    rounding relative to its largest entry (a huge wrong upstream gradient makes rounding large in absolute terms)."""
    return torch.allclose(d, expected) or _max_abs(d - expected) <= ALMOST_RIGHT * _max_abs(expected)


def _your_step_through_a_cut(name, d, t, ref, namespace):
    """A YourStep from the checked tensors that t enters directly (bndiff2 and bnraw for bndiff), at least one
    of them wrong: the right backward steps from your gradients of them, each stopped at the other checked
    tensors. None when they do not carry all of t's gradient."""
    checked = {other: _tensors[other] for other in _results
               if other != name and other in _tensors and _steps_back(_tensors[other], t)}
    nodes = {u.grad_fn for u in checked.values()}
    parts = []
    for other, u in checked.items():
        blocked = frozenset(nodes - {u.grad_fn})
        your_du, right_du = _answers.get(other), _grad_of(u)
        if your_du is None or right_du is None or your_du.shape != u.shape:
            continue
        through_right = _backward_from(u, right_du, [t], blocked)
        if through_right is None:
            return None  # the graph was freed
        if through_right[0] is not None:  # t reached without passing another checked tensor
            through_yours = _backward_from(u, your_du, [t], blocked)
            if not through_yours or through_yours[0] is None:
                return None
            parts.append((other, u, through_right[0].detach().to(torch.float64),
                          through_yours[0].detach().to(torch.float64)))
    wrong = [other for other, *_ in parts if _results[other].status == Status.WRONG]
    if len(parts) < 2 or not wrong:
        return None
    right_sum, your_sum = sum(part[2] for part in parts), sum(part[3] for part in parts)
    if not _close(right_sum, ref) or not torch.isfinite(your_sum).all():
        return None  # some of t's gradient takes another path
    if _step_says_nothing(ref, [_grad_of(u) for _, u, *_ in parts], your_sum):
        return None
    names = tuple(other for other, *_ in parts)
    if _step_agrees(d, your_sum):
        return YourStep(", ".join(wrong), True, through=names)
    dname, tname = _names(name, None, namespace)
    case = _value_case(name, d, your_sum, t, _differences(d, your_sum)[1], dname, tname, namespace)
    consumers = [(other, u, _answers[other].to(torch.float64)) for other, u, *_ in parts]
    rule, hint = _diagnose("value", _with_your_consumers(case, consumers, t))
    return YourStep(", ".join(wrong), False, rule, hint, through=names)


def _backward_from(u, du, targets, blocked=frozenset()):
    """The gradients that arrive at each of `targets` when autograd's backward functions are applied from u
    down to du ([None for a target it does not reach]), or None when the graph was freed.

    torch.autograd.grad would compute this too, but it adds to the .grad of every tensor that called
    retain_grad() on the way, changing the references of your next checks: here each operation's backward
    function is called directly, which touches no .grad. No gradient enters the nodes in `blocked`."""
    if u.grad_fn is None:
        return None
    order, seen = [], set()

    def visit(node):  # depth first: each node after all the nodes it passes gradients to
        if node is None or node in seen or node in blocked:
            return
        seen.add(node)
        for child, _ in node.next_functions:
            visit(child)
        order.append(node)

    try:
        visit(u.grad_fn)
    except RecursionError:
        return None
    arriving = {(u.grad_fn, u.output_nr): du.detach().to(u.dtype)}
    try:
        with torch.no_grad():
            for node in reversed(order):  # from u down: a node's gradients are complete when it comes
                if type(node).__name__ == "AccumulateGrad":
                    continue
                inputs = [arriving.get((node, i)) for i in range(len(node._input_metadata))]
                if all(grad is None for grad in inputs):
                    continue
                outputs = node(*inputs)
                outputs = outputs if isinstance(outputs, tuple) else (outputs,)
                for (child, index), grad in zip(node.next_functions, outputs):
                    if child is not None and grad is not None and child not in blocked:
                        grad = _as_the_engine_passes_it(grad, child._input_metadata[index])
                        key = (child, index)
                        arriving[key] = grad if key not in arriving else arriving[key] + grad
    except Exception:  # the graph was freed by loss.backward() without retain_graph=True, or an operation's
        return None       # backward cannot be called on its own (then cmp says what it said before)

    def key_of(target):
        if target.grad_fn is not None:
            return target.grad_fn, target.output_nr
        return next(((node, 0) for node in order if getattr(node, "variable", None) is target), None)

    return [arriving.get(key_of(target)) for target in targets]


def _as_the_engine_passes_it(grad, metadata):
    """A backward function's output as autograd's engine hands it on: summed over the dims along which the
    input was broadcast, in the input's dtype."""
    shape = tuple(metadata.shape)
    if tuple(grad.shape) != shape:
        grad = grad.sum_to_size(shape)
    return grad.to(metadata.dtype)


def _wrong_checks_above(name, t):
    """The names of the recorded checks with wrong values whose tensor was computed from t, nearest first."""
    found = []
    for other, result in _results.items():
        steps = None if other == name else _steps_back(_tensors.get(other), t)
        if steps and result.status == Status.WRONG and not result.values_right:
            found.append((steps, other))
    return [other for _, other in sorted(found, key=lambda f: f[0])]


def _case_below_your_gradient(name, d, t, expected, upstream, your_du, namespace):
    """A ValueCase in which your gradient of `upstream` is the truth: the right answer is the right step applied
    to it, and so are the gradients of the tensors between (found among the checked ones and your notebook's)."""
    u = _tensors[upstream]
    between = {id(u): (upstream, u)}
    for key, v in list(_tensors.items()) + _tensors_in(namespace or {}):
        if id(v) not in between and v.grad_fn is not None and _steps_back(v, t) and _steps_back(u, v):
            between[id(v)] = (key, v)
    names, tensors = zip(*between.values())
    grads = _backward_from(u, your_du, tensors)
    if grads is None:
        return None
    consumers = [(key, v, grad.detach().to(torch.float64)) for key, v, grad in zip(names, tensors, grads)
                 if grad is not None and torch.isfinite(grad).all()]
    consumers.sort(key=lambda c: _steps_back(c[1], t))
    maxdiff, relerr = _differences(d, expected)
    dname, tname = _names(name, None, namespace)
    return _with_your_consumers(_value_case(name, d, expected, t, relerr, dname, tname, namespace), consumers, t)


def _with_your_consumers(case, consumers, t):
    """The ValueCase with your gradients of the tensors computed from t as its consumers (and their steps)."""
    steps = tuple(step for key, v, grad in consumers for step in [_local_step(key, v, grad, t)] if step)
    return replace(case, consumers=tuple(consumers), steps=steps, bn_gain=None,
                   paths={key: _count_paths(v, t) for key, v, _ in consumers})


_hints_shown = os.environ.get("CMP_HINTS", "1").strip().lower() not in ("0", "false", "no", "off")
_why_on = os.environ.get("CMP_WHY", "1").strip().lower() not in ("0", "false", "no", "off")
_explained = _why_on and os.environ.get("CMP_EXPLAIN", "0").strip().lower() in ("1", "true", "yes", "on")


def hints(show=True, explain=False, why=True):
    """How much cmp says under its columns. hints(): what it measured about a wrong answer; why() then
    gives its explanation (the default). hints(explain=True): the explanation at once, every time.
    hints(why=False), for a class that should find every cause itself: of what it measured, only facts about
    the numbers (a factor, a sign, the shapes, which entries are wrong; see _FACT_RULES), and why() is off.
    Ninja mode, hints(False): only the lecture's columns (and "not done yet", the warning on an accepted
    answer the numbers cannot confirm, and two shapes that differ); each result still holds its diagnosis in
    result.hint. The environment variables CMP_HINTS=0, CMP_EXPLAIN=1 and CMP_WHY=0 set
    the start."""
    global _hints_shown, _explained, _why_on
    _hints_shown, _explained, _why_on = bool(show), bool(explain) and bool(why), bool(why)


def hints_shown():
    """False in ninja mode (hints(False) or CMP_HINTS=0): for a checker of your own that should say as little as cmp."""
    return _hints_shown


def _report(result, explain=True):
    """The main line in the lecture's layout, then one '  -> ' line per hint sentence (in ninja mode, none).
    explain=False: of a diagnosis about the values or the shape, only what was measured (see _measured_part);
    None: as hints(explain=...) says."""
    global _held_back
    if explain is None:
        explain = _explained
    if result.kind == "numerical":
        lines = [f"{result.name:15s} | rel err: {_measured(result.relerr)} | {result.status}"]
    else:
        lines = [f"{result.name:15s} | exact: {str(result.exact):5s} | "
                 f"approximate: {str(result.approx):5s} | maxdiff: {_measured(result.maxdiff)}"]
    if not result.hint or not (_hints_shown or result.status == Status.NOT_DONE or _unconfirmed(result)):
        shapes = _shapes_part(result) if result.hint else None
        return "\n".join(lines + (["  -> " + shapes] if shapes else []))  # ninja mode: the columns, "not done
        # yet", what the numbers cannot confirm, and two shapes that differ (maxdiff alone would not say why)
    if not explain and _holds_back(result):
        _held_back = result
        measured = ["  -> " + line for line in (_measured_part(result) if _why_on else _fact_part(result)).split("\n")]
        return "\n".join(lines + measured + (["  -> (why it may be so: run why())"] if _why_on else []))
    return "\n".join(lines + ["  -> " + line for line in result.hint.split("\n")])


def _holds_back(result):
    """True when a diagnosis of the values or the shape says more than what was measured: that part waits for why()."""
    return (result.status in (Status.WRONG, Status.SUSPICIOUS) and _stage(result) in ("value", "shape")
            and _measured_part(result) != result.hint)


def _hint_line(result):
    """The hint's first line as summary() shows it: only what was measured, unless hints(explain=True)."""
    if _holds_back(result) and not _explained:
        return (_measured_part(result) if _why_on else _fact_part(result)).split("\n")[0]
    return (result.hint or "").split("\n")[0]


def _your_step_part(result):
    """(its first line, a result for the rest) when the hint judges your step below a wrong earlier gradient
    ("... fix it first. But your way from ... is wrong as well; ...:" then that step's own diagnosis), else None."""
    if not result.diagnosis or not result.diagnosis.startswith("step_wrong_too+") or "\n" not in result.hint:
        return None
    first, rest = result.hint.split("\n", 1)
    return first, replace(result, diagnosis=result.diagnosis.split("+", 1)[1], hint=rest)


def _stage(result):
    """The stage of the rule that gave a result its hint (value, shape ...: see Rule), or None."""
    step = _your_step_part(result)
    if step is not None:
        return _stage(step[1])
    return getattr(_RULES_BY_ID.get(result.diagnosis), "stage", None)


def _measured_part(result):
    """What a diagnosis measured, without its explanation: the hint's first line up to its first colon
    (a shape message: up to the two shapes; below a wrong earlier gradient, that line, then your step's)."""
    step = _your_step_part(result)
    if step is not None:
        return step[0] + "\n" + _measured_part(step[1])
    clauses = result.hint.split("\n")[0].split(": ")
    if clauses[0].startswith("right values") and len(clauses) > 1:  # "right values, wrong shape: d has shape ..."
        return ": ".join(clauses[:2])
    return clauses[0]


# hints(why=False), for a class that finds every cause itself: of a wrong value, cmp prints only a fact about the
# numbers. These rules' first clauses are such facts (a factor, a sign, a transpose, which entries or rows are
# wrong); the others read a pattern that points to a branch or a tensor, and say just "wrong values" there.
_FACT_RULES = {"nonfinite", "reference_nonfinite", "all_zeros", "right_answer_is_zero", "noise_around_zero",
               "transposed", "constant_factor", "almost_right", "wrong_order", "constant_offset",
               "label_term_missing", "whole_label_columns", "label_and_rest_offsets", "one_entry_right_per_row",
               "rows_overwritten", "partly_right", "wrong_values"}


def _fact_part(result):
    """What hints(why=False) prints of a wrong answer: a fact about its numbers (see _FACT_RULES), or its shapes."""
    step = _your_step_part(result)
    if step is not None:
        return step[0] + "\n" + _fact_part(step[1])
    if _stage(result) == "shape":
        return _shapes_part(result) or _measured_part(result)
    if result.diagnosis in _FACT_RULES or result.kind == "numerical":
        return _measured_part(result)
    return f"wrong values (off by up to {_of_the_largest_entry(result.relerr)})"


def _shapes_part(result):
    """'dx has shape (64,) but x has shape (1, 64)' from a wrong shape's hint; None for any other result."""
    if result.status != Status.WRONG or _stage(result) != "shape":
        return None
    found = re.search(r"\S+ has shape \([^)]*\) but \S+ has shape \([^)]*\)", result.hint)
    return found.group(0) if found else None


_held_back = None  # the last result whose explanation cmp(..., explain=False) kept back


def _forget_held_back(name):
    """A new check of `name`: why() no longer explains its older check. A check of another tensor keeps it, so
    that why() still explains the answer whose line said "run why()" when a cell checks another one after it."""
    global _held_back
    if _held_back is not None and _held_back.name == name:
        _held_back = None


def why():
    """Print the whole diagnosis of the last check that kept part of it back (explain=False), until that tensor
    is checked again."""
    if not _why_on:
        print("why() is off here (hints(why=False) or CMP_WHY=0): what cmp measured is all it says; the cause "
              "is yours to find")
    elif _held_back is None:
        print("nothing held back: why() explains the last check whose line said \"run why()\", until that "
              "tensor is checked again; there is none")
    else:  # the check's own line is just above: only its name, then the whole diagnosis
        print("\n".join([f"why ({_held_back.name}):"] + _report(_held_back).split("\n")[1:]))


def _measured(x):
    """A difference as the lecture prints it (1.2e-03), or "-" when there is none to measure (the shapes cannot
    be lined up, or nothing was compared): the hint says why."""
    return "-" if math.isnan(x) else f"{x:.1e}"


def _is_strict(strict):
    """strict=True/False wins; strict=None reads CMP_STRICT (1, true, yes or on)."""
    if strict is None:
        return os.environ.get("CMP_STRICT", "").strip().lower() in ("1", "true", "yes", "on")
    return bool(strict)


def _raise_if_strict(result, strict):
    if _is_strict(strict) and not result:
        raise GradientError(f"{result.name}: {result.status}: {result.hint}")


def _names(name, dt=None, namespace=None):
    """How messages call your gradient and the tensor: `dlogits` and `logits` for cmp("logits", dlogits, logits),
    `grad_lse` and `l_lse` for cmp("l_lse", grad_lse, l_lse): your variable's name when it is a gradient's."""
    first = name.split(" (")[0]  # e.g. "hprebn (paths)": a variant of hprebn's gradient
    if not first.isidentifier():
        return "dt", "t"
    dname = _your_names.get(first, "d" + first) if dt is None else "d" + first
    if namespace and isinstance(dt, torch.Tensor) and namespace.get(dname) is not dt:
        yours = [key for key, value in namespace.items() if value is dt and _is_gradient_name(key, first)]
        if len(yours) == 1:
            dname = yours[0]
    return dname, first


def _is_gradient_name(variable, tname):
    """True for names like dlogits, grad_lse or dl for the tensor logits, l_lse or l_one, and for a variant such
    as dhprebn_paths (03 checks it as "hprebn (paths)")."""
    for prefix in ("grad_", "d_", "d"):
        if variable.startswith(prefix):
            rest = variable[len(prefix):]
            return rest == tname or rest.startswith(tname + "_") or rest in tname.split("_")
    return False


def _check(name, dt, t, atol, namespace=None):
    """Work out the CheckResult for cmp (prints nothing)."""
    if dt is None or dt is Ellipsis:
        what = "still None" if dt is None else "still `...`"
        return _fail(name, Status.NOT_DONE, f"not done yet: the gradient is {what}; write your formula for it",
                     "not_done")

    ref, problem = _reference(t)
    if problem:
        return _fail(name, Status.NO_REFERENCE, problem, "no_reference")

    d, problem = _as_tensor(dt)
    if problem:
        return _fail(name, Status.WRONG, problem, "not_a_tensor")
    d = d.detach().to(ref.device)

    maxdiff, relerr = _differences(d, ref)
    dname, tname = _names(name, dt, namespace)
    _your_names[tname] = dname
    if d.shape != ref.shape:
        case = ShapeCase(d, ref, dname, tname, _earlier_shapes(name, t, namespace),
                         _other_grads(t, _tensors_in(namespace or {})))
        rule, hint = _diagnose("shape", case)  # maxdiff "-": a difference across two shapes would mislead
        return CheckResult(name, False, False, math.nan, math.nan, hint, Status.WRONG, diagnosis=rule,
                           values_right=case.right_values)

    if d.dtype != ref.dtype:
        right_values = torch.allclose(d.to(ref.dtype), ref, atol=atol) or (
            d.is_floating_point() and torch.allclose(d, ref.to(d.dtype), atol=atol))  # e.g. float16: compare in float16
        hints = [_dtype_hint(d, ref, right_values, dname, tname)]
        rule = "dtype"
        if not right_values:
            value_rule, value_hint = _diagnose("value", _value_case(name, d, ref, t, relerr, dname, tname, namespace))
            rule, hints = f"dtype+{value_rule}", hints + [value_hint]
        return CheckResult(name, False, False, maxdiff, relerr, "\n".join(hints), Status.WRONG, diagnosis=rule,
                           values_right=right_values)

    if torch.equal(d, ref):
        return CheckResult(name, True, True, maxdiff, relerr, None, Status.EXACT)
    if torch.allclose(d, ref, atol=atol):
        if relerr > ZERO_ANSWER:
            return CheckResult(name, False, True, maxdiff, relerr, _rounding_hint(relerr, tname), Status.ROUNDING,
                               diagnosis="zero_up_to_rounding")
        unseen = _invisible_branch(name, t)
        if unseen:
            return CheckResult(name, False, True, maxdiff, relerr, (
                f"only float rounding away from the right answer ({relerr:.1e} of the largest entry); but `{unseen}`, checked "
                f"before, is computed from {tname} too and its gradient is zero up to rounding, so the numbers "
                f"cannot tell whether your formula has the branch through `{unseen}`: make sure it does"),
                Status.ROUNDING, diagnosis="branch_invisible")
        if relerr > ALMOST_RIGHT and ref.dtype == torch.float32:  # allclose, but far more than float32 rounds
            above = _wrong_checks_above(name, t)
            blame = (f"; `{above[0]}`, checked before this one, is wrong: if your formula uses its gradient, fix it "
                     "first" if above else "; a small slip, here or in a gradient you used, can do that")
            return CheckResult(name, False, True, maxdiff, relerr, (
                f"close enough for allclose, but not only rounding: {relerr:.1e} of the largest entry, where float32 "
                f"rounding stays near {FLOAT32_RESOLUTION:.0e}{blame}"), Status.ROUNDING, diagnosis="close_not_rounding")
        return CheckResult(name, False, True, maxdiff, relerr, _rounding_hint(relerr, tname), Status.ROUNDING,
                           diagnosis="rounding")
    case = _value_case(name, d, ref, t, relerr, dname, tname, namespace)
    if not d.any() and _zero_up_to_rounding(case):
        return CheckResult(name, False, True, maxdiff, relerr, (
            f"{dname} is all zeros, and that is right: the right gradient of {tname} is zero up to float rounding "
            f"(the loss does not depend on {tname}); autograd's rounding noise is just above torch.allclose's "
            "absolute tolerance"), Status.ROUNDING, diagnosis="zero_answer_is_right")
    rule, hint = _diagnose("value", case)
    return CheckResult(name, False, False, maxdiff, relerr, hint, Status.WRONG, diagnosis=rule)


def _invisible_branch(name, t):
    """The name of a checked tensor computed directly from t (by one operation) whose gradient is zero up to
    rounding (like logit_maxes for logits): whether an answer has the branch through it, the numbers cannot
    tell. Else None. Tensors further up (h, hpreact ...) reach logit_maxes only through logits, whose
    check already asked."""
    found = _consumers(name, t)
    flowing = max((_max_abs(grad) for _, _, grad in found), default=0.0)
    for other, u, grad in found:
        one_operation = _steps_back(u, t) == 2  # u's own operation reads t: a branch this formula must have
        if one_operation and grad.shape != t.shape and _max_abs(grad) <= NOISE * flowing:
            return other
    return None


def _fail(name, status, hint, rule):
    return CheckResult(name, False, False, math.nan, math.nan, hint, status, diagnosis=rule)


def _reference(t):
    """(t.grad, None), or (None, an explanation of why there is no reference)."""
    if not isinstance(t, torch.Tensor):
        return None, (f"no reference: the third argument should be the tensor from the forward pass "
                      f"(its .grad is the reference), not a {type(t).__name__}")
    grad = _grad_of(t)
    if grad is not None:
        return grad, None
    if not t.requires_grad:
        return None, ("no reference: this tensor does not require grad, so PyTorch computes no gradient "
                      "for it; build it from parameters created with requires_grad=True")
    if t.grad_fn is not None:
        return None, ("no reference: t.grad is None; call t.retain_grad() on this intermediate tensor "
                      "before loss.backward() (PyTorch keeps .grad only for leaf tensors)")
    return None, "no reference: t.grad is None; run the forward pass and loss.backward() first"


def _as_tensor(dt):
    """(a tensor, None), or (None, why dt can't be compared). Accepts numpy arrays, numbers, lists."""
    if isinstance(dt, torch.Tensor):
        tensor = dt
    elif isinstance(dt, (str, bytes)):
        return None, f"the gradient is a {type(dt).__name__}, not a tensor: assign the tensor itself"
    else:
        try:
            with warnings.catch_warnings():  # e.g. "the given NumPy array is not writable"
                warnings.simplefilter("ignore")
                tensor = torch.as_tensor(dt)
        except Exception:
            return None, (f"the gradient is a {type(dt).__name__} that cannot be turned into a tensor: "
                          "compute it with torch operations")
    if tensor.layout != torch.strided:
        return None, "the gradient is a sparse tensor: use an ordinary (dense) float tensor"
    if tensor.is_complex():
        return None, f"the gradient is a {_dtype_name(tensor)} tensor: use an ordinary float tensor"
    return tensor, None


def _differences(d, ref):
    """(maxdiff, relerr) of d against ref, d broadcast to ref's shape; nan when it cannot be."""
    try:
        if torch.broadcast_shapes(d.shape, ref.shape) != ref.shape:
            return math.nan, math.nan
    except RuntimeError:
        return math.nan, math.nan
    diff = _max_abs(d.to(torch.float64) - ref.to(torch.float64))
    return diff, diff / max(_max_abs(ref.to(torch.float64)), _TINY)


def _max_abs(x):
    """Largest absolute value (nan if any is nan), 0.0 for an empty tensor."""
    if x.numel() == 0:
        return 0.0
    return x.abs().max().item()


def _fits(candidate, d, within=FIT):
    """True when `candidate` reproduces d to within `within` of d's size (both float64, same shape)."""
    if candidate.shape != d.shape or not torch.isfinite(candidate).all():
        return False
    return _max_abs(candidate - d) <= within * max(_max_abs(d), _TINY)


def _is_constant(x, within=FIT):
    """True when every value of x is its mean, to within `within` of x's size."""
    return _fits(torch.full_like(x, x.mean().item()), x, within)


def _multiple(x, basis):
    """k when x = k * basis for a constant k other than 0 (to within FIT), else None."""
    norm2 = (basis * basis).sum().item()
    if norm2 == 0.0:
        return None
    k = (x * basis).sum().item() / norm2
    return k if k != 0.0 and _fits(k * basis, x) else None


def _explains(candidate, d, ref):
    """True when a candidate wrong answer reproduces d, and explains at least 99% of how d differs from ref."""
    return _fits(candidate, d) and _max_abs(candidate - d) <= EXPLAINED * _max_abs(ref - d)


# ---------------------------------------------------------------------------
# Rules for a gradient of the wrong shape. Each takes a ShapeCase and returns a message or None.


@dataclass(frozen=True)
class ShapeCase:
    d: torch.Tensor      # your gradient (any dtype)
    ref: torch.Tensor    # the right one
    dname: str           # what to call them in messages
    tname: str
    earlier: tuple = ()  # (name, its shape, your gradient's shape) for tensors computed from this one whose
                         # gradient, checked or in your notebook, has the wrong shape; nearest first
    other_grads: tuple = ()  # (name, its .grad) of your notebook's other tensors whose .grad is known

    @property
    def start(self):
        return f"{self.dname} has shape {tuple(self.d.shape)} but {self.tname} has shape {tuple(self.ref.shape)}"

    @property
    def right_values(self):
        return self.d.numel() == self.ref.numel() and _close(self.d.reshape(self.ref.shape), self.ref)


def _shape_another_tensors_gradient(c):
    """Your gradient, of another shape, is exactly the right gradient of another tensor of your notebook."""
    other = _another_tensors_gradient(c)
    if other is None:
        return None
    return (f"{c.start}, and it is the right gradient of {other}, another tensor of your notebook: a gradient "
            "passed for the wrong tensor, or gradients returned or unpacked in another order?")


def _shape_from_an_earlier_gradient(c):
    """Your gradient has the shape that an earlier gradient of the wrong shape, broadcast with this tensor's
    shape, gives: the shape went wrong there."""
    for name, shape, yours in c.earlier:
        try:
            combined = torch.broadcast_shapes(tuple(c.ref.shape), yours)
        except RuntimeError:
            continue
        if tuple(combined) == tuple(c.d.shape):
            return (f"{c.start}: the shape went wrong earlier: d{name} has shape {yours} but {name} has shape "
                    f"{shape}, and a {yours} tensor combined entry by entry with a {tuple(c.ref.shape)} one "
                    f"broadcasts to {tuple(combined)}\nfix the shape of d{name} first, then compute {c.dname} again")
    return None


def _earlier_shapes(name, t, namespace):
    """ShapeCase.earlier: for the tensors computed from t, nearest first, the gradients of the wrong shape:
    your notebook's d<name> for its tensor <name> (as it is now), or else the answer you checked."""
    namespace = namespace or {}
    yours = {key: (u, namespace["d" + key]) for key, u in _tensors_in(namespace)
             if isinstance(namespace.get("d" + key), torch.Tensor)}
    for other, u in _tensors.items():
        if other not in yours and "d" + other not in namespace and _answers.get(other) is not None:
            yours[other] = (u, _answers[other])
    found = {other: (u, tuple(answer.shape)) for other, (u, answer) in yours.items()
             if other != name and answer.shape != u.shape}
    near = [(_steps_back(u, t), other, tuple(u.shape), yours) for other, (u, yours) in found.items()]
    return tuple((other, shape, yours) for steps, other, shape, yours in sorted(
        (entry for entry in near if entry[0]), key=lambda entry: entry[0]))


def _shape_keepdim(c):
    got, want = tuple(c.d.shape), tuple(c.ref.shape)
    if c.d.numel() != c.ref.numel() or _squeeze(got) != _squeeze(want) or len(got) == len(want):
        return None
    values = "right values, wrong shape: " if c.right_values else ""
    if len(got) < len(want):
        return f"{values}{c.start}: {_missing_size_1_dim(got, want)}"
    extra = [i for i, size in enumerate(got) if size == 1 and got[:i] + got[i + 1:] == want]
    where = f" (dim {extra[0]})" if extra else ""
    return (f"{values}{c.start}: it has a size-1 dim{where} that {c.tname} does not have, as when a sum that "
            "collects a broadcast's gradients leaves the summed dim in place; a gradient has its tensor's shape")


def _shape_size_1_dim_moved(c):
    got, want = tuple(c.d.shape), tuple(c.ref.shape)
    if len(got) != len(want) or _squeeze(got) != _squeeze(want) or c.right_values:
        return None
    return (f"{c.start}: the size-1 dim is in the wrong place, as when a sum runs over the wrong dim; along "
            f"which dim did the forward pass broadcast {c.tname}?")


def _shape_transposed(c):
    if c.d.dim() == 2 and tuple(c.d.T.shape) == tuple(c.ref.shape) and _close(c.d.T, c.ref):
        return f"{c.start}: this is the transpose of the right answer; {_TRANSPOSE_FIX}"
    return None


def _shape_reshaped(c):
    if c.right_values:
        return (f"the numbers are right but in the wrong shape: {c.start}; they are in the right order: the "
                "forward pass changed only the shape, so its backward pass only changes it back")
    return None


def _shape_sum_broadcast_dims(c):
    dims = _broadcast_dims(tuple(c.d.shape), tuple(c.ref.shape))
    if dims is None:
        return None
    lead, keep = dims
    if _close(_sum_to(c.d, lead, keep), c.ref):
        return (f"{c.start}: {c.tname} has fewer entries than what it meets in the forward pass (it, or a tensor "
                "computed from it, was broadcast), so each of its entries was used several times, and the "
                f"gradients of a number used several times add up; along which dims was {c.tname} broadcast, and "
                "which of them does its shape keep as size 1?")
    return (f"{c.start}: {c.tname} was broadcast in the forward pass, so its gradient collects the gradients of "
            "every use; but collected that way, your numbers would still be wrong: check the formula too")


def _shape_needs_broadcast(c):
    """Your gradient has a size-1 (or missing) dim where the tensor has many entries."""
    try:
        if torch.broadcast_shapes(c.d.shape, c.ref.shape) != c.ref.shape:
            return None
    except RuntimeError:
        return None
    values = "right values once broadcast: " if _close(c.d.expand(c.ref.shape), c.ref) else ""
    return (f"{values}{c.start}: every entry of {c.tname} needs its own gradient, even where a whole row or "
            f"column gets the same value; only the dims along which {c.tname} itself was broadcast are summed")


def _shape_matmul_order(c):
    if c.d.dim() == 2 and tuple(c.d.T.shape) == tuple(c.ref.shape):
        return f"{c.start}: you may have the matmul in the wrong order ({_TRANSPOSE_FIX})"
    return None


def _shape_other(c):
    return (f"{c.start}: a gradient always has the shape of its tensor; if you summed, along which dim did the "
            f"forward pass broadcast {c.tname}?")




def _missing_size_1_dim(got, want):
    """What a shape without want's size-1 dim means, in words (no code: the fix is the answer line)."""
    for i, size in enumerate(want):
        if size == 1 and want[:i] + want[i + 1:] == got:
            return (f"the size-1 dim {i} is missing, as when a sum that collects a broadcast's gradients drops "
                    "the dim it runs over; a gradient has its tensor's shape, size-1 dims included")
    return "a size-1 dim is missing, as when a sum drops the dim it runs over"


_TRANSPOSE_FIX = ("check which operand you transposed and in which order you multiplied: "
                  "the shapes allow only one arrangement")


def _squeeze(shape):
    return tuple(size for size in shape if size != 1)


def _broadcast_dims(got, want):
    """If `want` broadcasts to `got`, the dims to sum: (leading dims, dims to sum with keepdim)."""
    lead = len(got) - len(want)
    if lead < 0:
        return None
    keep = []
    for i, size in enumerate(want):
        if size == got[lead + i]:
            continue
        if size != 1:
            return None
        keep.append(i)
    if lead == 0 and not keep:
        return None
    return list(range(lead)), keep


def _sum_to(d, lead, keep):
    if lead:
        d = d.sum(tuple(lead))
    if keep:
        d = d.sum(tuple(keep), keepdim=True)
    return d


def _dtype_hint(d, ref, right_values, dname, tname):
    """Say that the dtype is wrong (and whether the values are right anyway)."""
    if d.dtype == torch.bool:
        kind = " (booleans)"
    elif not d.is_floating_point():
        kind = " (integers)"
    else:
        kind = ""
    start = "right values, wrong dtype" if right_values else "wrong dtype"
    return (f"{start}: {dname} is {_dtype_name(d)}{kind} but {tname}.grad is {_dtype_name(ref)}; a gradient has "
            f"the dtype of its tensor (start from torch.zeros_like({tname}), or convert with .to({tname}.dtype))")


def _dtype_name(x):
    return str(x.dtype).replace("torch.", "")


def _rounding_hint(relerr, tname):
    if relerr > ZERO_ANSWER:
        return ("every value is tiny (zero up to float rounding), so torch.allclose accepts it: right if "
                f"the loss does not depend on {tname}, whose true gradient is then 0")
    return f"not bit-identical, only float rounding, not a mistake ({relerr:.1e} of the largest entry)"


def _close(a, b):
    """allclose after casting both to float64 (used to test candidate fixes)."""
    return a.shape == b.shape and torch.allclose(a.to(torch.float64), b.to(torch.float64))


# ---------------------------------------------------------------------------
# Rules for wrong values of the right shape. Each takes a ValueCase and returns a message or None;
# a rule speaks only when the numbers fit the explanation it gives.


@dataclass(frozen=True)
class ValueCase:
    d: torch.Tensor        # your gradient, float64
    ref: torch.Tensor      # the right one, float64
    x: torch.Tensor        # the values of the tensor itself, float64 (None for check_numerically)
    relerr: float
    dname: str             # what to call your gradient and the tensor in messages
    tname: str
    sizes: dict            # {size: e.g. "logits.shape[1]"}: the sizes in the problem (this tensor, those checked)
    consumers: tuple = ()  # (name, tensor, reference gradient) of checked tensors computed from this one
    bn_gain: tuple = None  # (values, reference gradient) of a checked tensor named bngain, float64
    leaf: bool = False     # the tensor is a leaf (a parameter such as an embedding table)
    rounding: tuple = None # (dtype name, its relative rounding error) of the gradient; None for check_numerically
    steps: tuple = ()      # LocalSteps: how t enters each checked tensor computed from it, read from autograd's graph
    in_scope: tuple = ()   # (name, values in float64) of the floating-point tensors in your notebook
    index_tensors: tuple = ()  # (name, tensor) of the integer tensors in your notebook (like Xb)
    paths: dict = None     # {name: how many paths lead from that checked tensor back to t in autograd's graph}
    input_grads: tuple = ()  # (name, reference gradient in float64) of your notebook's tensors of t's shape that
                             # t is computed from, whose .grad is known (retain_grad)
    other_grads: tuple = ()  # (name, its .grad) of your notebook's other tensors whose .grad is known

    @property
    def error(self):
        return self.d - self.ref


def _value_case(name, d, ref, t, relerr, dname, tname, namespace=None):
    """A ValueCase for cmp, with what the registry knows about the tensor's neighbours in the graph."""
    consumers = tuple(_consumers(name, t))
    sizes = _sizes_of({tname: ref, **{other: u for other, u, _ in consumers}, **_tensors})  # neighbours first
    x = t.detach().to(torch.float64) if t.is_floating_point() else None
    gain = _tensors.get("bngain")
    gain_grad = _grad_of(gain) if isinstance(gain, torch.Tensor) else None
    bn_gain = None if gain_grad is None else (gain.detach().to(torch.float64), gain_grad.to(torch.float64))
    visible = _tensors_in(namespace or {})
    names_of_nodes = {value.grad_fn: key for key, value in visible if value.grad_fn is not None}
    steps = tuple(step for other, u, grad in consumers
                  for step in _local_steps(other, u, grad, t, names_of_nodes))
    in_scope = tuple((key, value.detach().to(torch.float64)) for key, value in visible
                     if value.is_floating_point() and 0 < value.numel() <= 100_000)
    index_tensors = tuple((key, value.long()) for key, value in visible if _is_index_tensor(value))
    paths = {other: _count_paths(u, t) for other, u, grad in consumers}
    return ValueCase(d.to(torch.float64), ref.to(torch.float64), x, relerr, dname, tname,
                     sizes, consumers, bn_gain, t.grad_fn is None,
                     _rounding_of(ref.dtype), steps, in_scope, index_tensors, paths, _input_grads(t, visible),
                     _other_grads(t, visible))


def _known_grads(t, visible):
    """[(name, tensor, its .grad)] of the floating-point tensors among `visible` (from _tensors_in) other than t
    whose .grad is known and not all zero; cache["h"] is called h."""
    found = []
    for key, value in visible:
        grad = _grad_of(value) if value is not t and value.is_floating_point() else None
        if grad is not None and grad.is_floating_point() and grad.any():
            found.append((_plain_name(key), value, grad))
    return found


def _input_grads(t, visible):
    """(name, its .grad in float64) of the tensors of t's shape that t is computed from (a few steps back at most)."""
    return tuple((name, grad.to(torch.float64)) for name, value, grad in _known_grads(t, visible)
                 if value.shape == grad.shape == t.shape and _steps_back(t, value, limit=20))


def _other_grads(t, visible):
    """(name, its .grad) of the tensors on no path to or from t (W2 and b2 for each other; not h and hpreact:
    a gradient from along the path has rules of its own)."""
    return tuple((name, grad) for name, value, grad in _known_grads(t, visible)
                 if _steps_back(value, t) is None and _steps_back(t, value) is None)


def _another_tensors_gradient(c):
    """The name of another tensor of your notebook whose right gradient your answer is (t's is not), or None."""
    for name, grad in c.other_grads:
        if grad.shape != c.d.shape or (grad.shape == c.ref.shape and _close(grad, c.ref)):
            continue
        d = c.d.to(torch.float64)
        if _max_abs(d) > 0 and _fits(grad.to(torch.float64), d):
            return name
    return None


def _rule_another_tensors_gradient(c):
    """Your answer is exactly the right gradient of another tensor of your notebook."""
    other = _another_tensors_gradient(c)
    if other is None:
        return None
    return (f"{c.dname} is the right gradient of {other}, another tensor of your notebook: a gradient passed "
            f"for the wrong tensor, or gradients returned or unpacked in another order?")


@dataclass(frozen=True)
class LocalStep:
    """How t enters a checked tensor u, read from autograd's graph: the operation (its backward node's
    name, e.g. "MmBackward0"), what it saved (float64), which of its inputs is t (or t plus a constant),
    and the gradient arriving at it (u's).

    power: when the input is not t itself but a power of it that was not checked (bnraw = bndiff * bnvar_inv
    with bnvar_inv = (bnvar + 1e-5)**-0.5, for t = bnvar), (its name, its local derivative p * base**(p-1)):
    the step's contribution is multiplied by it on the way to t."""
    consumer: str
    op: str
    saved: dict
    input_index: int
    incoming: torch.Tensor
    t_values: torch.Tensor
    power: tuple = None


_SAVED = {"MulBackward0": ("self", "other"), "MmBackward0": ("self", "mat2"), "ExpBackward0": ("result",),
          "TanhBackward0": ("result",), "PowBackward0": ("self", "exponent"), "SumBackward1": ()}


def _local_steps(name, u, grad, t, names_of_nodes):
    """[the LocalStep by which t enters u], or [] when there is none; when t enters u's product through a
    power that was not checked (bnvar through bnvar_inv into bnraw), that power is a step too, with the
    product's contribution as the gradient arriving at it."""
    step = _local_step(name, u, grad, t, names_of_nodes)
    if step is None:
        return []
    if step.power is None or step.power[0] is None or _other_operand(step) is None:
        return [step]  # no unchecked power, or one without a name that a message could use
    power_name, _, node = step.power
    arriving = _step_contribution(replace(step, power=None), _other_operand(step), step.t_values.shape)
    saved = _saved_values(node)
    if arriving is None or saved is None or arriving.shape != step.t_values.shape:
        return [step]
    return [step, LocalStep(power_name, "PowBackward0", saved, 0, arriving, step.t_values)]


def _saved_values(node):
    """What autograd's node saved for its backward pass, in float64, or None when it is not there."""
    try:
        saved = {key: getattr(node, "_saved_" + key) for key in _SAVED[type(node).__name__]}
    except RuntimeError:  # the graph was freed by loss.backward() without retain_graph=True
        return None
    if any(value is None for value in saved.values()):
        return None  # e.g. a product with a Python number, which autograd keeps elsewhere
    return {key: torch.as_tensor(value).detach().to(torch.float64) for key, value in saved.items()}


def _local_step(name, u, grad, t, names_of_nodes=None):
    """The LocalStep by which t enters u, when u's gradient arrives at it unchanged; else None.

    u's own operation, or one below additions (hprebn = embcat @ W1 + b1: the matmul); its input may be
    t itself, t plus a constant (bnvar + 1e-5), or a power of those of t's shape (bnvar_inv for bnvar).
    Needs the graph kept: loss.backward(retain_graph=True)."""
    node = u.grad_fn
    for _ in range(3):
        if node is None:
            return None
        children = [child for child, _ in node.next_functions]
        for index, child in enumerate(children):
            power = None if _is_t_or_t_plus_constant(child, t) else _power_of_t(child, t, names_of_nodes or {})
            if (power or _is_t_or_t_plus_constant(child, t)) and type(node).__name__ in _SAVED:
                saved = _saved_values(node)
                if saved is None:
                    return None
                return LocalStep(name, type(node).__name__, saved, index, grad, t.detach().to(torch.float64), power)
        if type(node).__name__ != "AddBackward0":
            return None
        following = [child for child in children if child is not None and type(child).__name__ != "AccumulateGrad"]
        if len(following) != 1:
            return None
        node = following[0]
    return None


def _power_of_t(node, t, names_of_nodes):
    """(its name in your notebook or None, its local derivative, the node) when node is a power of t (or of t
    plus a constant) with a number as exponent and t's shape, like bnvar_inv = (bnvar + 1e-5)**-0.5; else None."""
    if type(node).__name__ != "PowBackward0" or not _is_t_or_t_plus_constant(node.next_functions[0][0], t):
        return None
    saved = _saved_values(node)
    if saved is None or saved["self"].shape != t.shape or saved["exponent"].numel() != 1:
        return None
    base, p = saved["self"], saved["exponent"].item()
    return names_of_nodes.get(node), p * base ** (p - 1), node


def _is_t_or_t_plus_constant(node, t):
    if node is None:
        return False
    if node is t.grad_fn or getattr(node, "variable", None) is t:
        return True
    return (type(node).__name__ == "AddBackward0" and len(node.next_functions) == 2
            and node.next_functions[1][0] is None and _is_t_or_t_plus_constant(node.next_functions[0][0], t))


def _tensors_in(namespace):
    """[(name, tensor)] of the tensors among your variables, in the dicts among them (cache["Xb"]) and in
    short lists (Ws[9]); a tensor found under several names keeps the first."""
    found, seen = [], set()

    def add(name, value):
        if isinstance(value, torch.Tensor) and id(value) not in seen:
            seen.add(id(value))
            found.append((name, value))

    for key, value in namespace.items():
        if key.startswith("_"):
            continue
        if isinstance(value, dict):
            for inner, tensor in value.items():
                if isinstance(inner, str):
                    add(f'{key}["{inner}"]', tensor)
        elif isinstance(value, (list, tuple)) and len(value) <= MAX_LISTED:
            for index, tensor in enumerate(value):
                add(f"{key}[{index}]", tensor)
        else:
            add(key, value)
    return found


def _plain_name(key):
    """A tensor's name as the code around it calls it: cache["Xb"] -> Xb (a key of _tensors_in)."""
    return key.split('["')[-1].rstrip('"]')


def _sizes_of(named):
    """{size: where it comes from, e.g. 'logits.shape[1]'} for the sizes above 1 of the named tensors."""
    sizes = {}
    for name, u in named.items():
        for dim, size in enumerate(u.shape):
            if size > 1:
                sizes.setdefault(size, f"{name}.shape[{dim}]")
    return sizes


def _rounding_of(dtype):
    """('float32', 1e-07): how a dtype is called and the size of its relative rounding errors."""
    if not dtype.is_floating_point:
        return None
    return str(dtype).replace("torch.", ""), FLOAT32_RESOLUTION if dtype == torch.float32 else torch.finfo(dtype).eps


def _rule_nonfinite(c):
    if torch.isfinite(c.d).all() or not torch.isfinite(c.ref).all():
        return None
    counts = [(int(torch.isnan(c.d).sum()), "NaN"), (int(torch.isinf(c.d).sum()), "inf")]
    found = " and ".join(f"{k:,} {what}" for k, what in counts if k)
    return (f"{c.dname} contains {found} (of {c.d.numel():,} entries); look for a division by zero, log(0) "
            "or a huge exponent")


def _rule_reference_nonfinite(c):
    if torch.isfinite(c.ref).all():
        return None
    return (f"{c.tname}.grad itself contains NaN or inf: the forward or backward pass blew up; "
            "rerun the forward pass with fresh parameters")


def _rule_all_zeros(c):
    if c.d.any():
        return None
    return f"{c.dname} is all zeros, but the right gradient is not: did you forget to fill it in?"


def _zero_up_to_rounding(c):
    """True when the right gradient is rounding noise: tiny next to the gradients flowing into the tensor."""
    flowing_in = [_max_abs(grad) for _, _, grad in c.consumers]
    noise = NOISE * max(flowing_in) if flowing_in else NOISE_WITHOUT_NEIGHBOURS
    return _max_abs(c.ref) <= noise


def _rule_right_answer_is_zero(c):
    """The right gradient is rounding noise (the loss does not depend on t); yours is not."""
    if _max_abs(c.ref) > ZERO_ANSWER * _max_abs(c.d) or not _zero_up_to_rounding(c):
        return None
    return (f"the right gradient of {c.tname} is zero up to float rounding (the loss does not depend on "
            f"{c.tname}), but {c.dname} is not: the contributions in your formula should cancel")


def _rule_noise_around_zero(c):
    """The right gradient is rounding noise, and so is yours, only larger: the numbers cannot judge the formula."""
    if not _zero_up_to_rounding(c) or not _zero_up_to_rounding(replace(c, ref=c.d)) or not c.ref.any():
        return None
    yours, right = _max_abs(c.d), _max_abs(c.ref)
    if torch.equal(c.d, -c.ref):
        return (f"{c.dname} is exactly -1 times the right gradient of {c.tname}, which is rounding noise (the loss does "
                f"not depend on {c.tname}, so its true gradient is 0): the same noise to the last bit with its sign "
                "flipped, which only the same computation with a flipped sign gives; is a minus sign missing or "
                "in twice?")
    size = (f"{yours / right:.0f} times larger noise" if yours >= 1.5 * right else
            "noise of about the same size" if yours > right / 1.5 else f"{right / yours:.0f} times smaller noise")
    return (f"{c.dname} and the right gradient of {c.tname} are both zero up to float rounding, yours with "
            f"{size} (largest entry {yours:.1e}), too large for allclose's absolute tolerance: the loss does not depend on "
            f"{c.tname}, so its true gradient is 0, and noise this small cannot show whether your formula has a "
            "wrong factor or sign: judge it by its structure, not by these numbers")


def _rule_transposed(c):
    if c.d.dim() == 2 and c.d.shape[0] == c.d.shape[1] and _close(c.d.T, c.ref):
        return ("this is the transpose of the right answer; check which operand you transposed and in which "
                f"order you multiplied: {c.tname} is square, so its shape cannot tell the arrangements apart")
    return None


def _rule_constant_factor(c):
    """d = k * ref for a constant k: name k, and what it means when a size of the problem explains it."""
    k = _multiple(c.d, c.ref)
    if k is None or abs(k - 1.0) < FIT:
        return None
    if c.d.numel() == 1 and abs(k + 1.0) >= FIT:
        return None  # a single number is always some multiple of the right one: that says nothing
    fraction = Fraction(k).limit_denominator(MAX_DENOMINATOR)
    sizes_ratio = abs(fraction.numerator) in c.sizes and fraction.denominator in c.sizes
    if abs(float(fraction) - k) > FRACTION_FIT * abs(k) or not (_is_simple(fraction) or sizes_ratio):
        root = _root_of_a_divisor_ratio(k * k, c.sizes)
        if root:
            return (f"{c.dname} is {root} times the right answer: as when a standard deviation, or 1/std, is "
                    "computed with another divisor than the forward pass uses (n-1 where it divides by n, or the "
                    "other way round), e.g. a tensor reused from another layer")
        sign = " and a sign is flipped" if k < 0 else ""
        return (f"{c.dname} is the right answer times one factor common to all entries, about {abs(k):.4g}, "
                f"not a simple fraction{sign}: look for a factor missing or too many, which may be a sum or "
                "a normaliser rather than a constant")
    return f"{c.dname} is {fraction} times the right answer: {_factor_meaning(fraction, c.sizes, _may_hold_a_power(c))}"


def _may_hold_a_power(c):
    """False when autograd's graph shows how t enters every checked tensor computed from it, and none of
    those steps raises something to a power (a matmul, a sum, a tanh); True otherwise."""
    return not c.steps or any("Pow" in step.op or step.power is not None or step.op == "MulBackward0"
                              for step in c.steps)


def _root_of_a_divisor_ratio(k2, sizes):
    """'√(31/32)' when k2 is (m-1)/m or m/(m-1) for a size m of the problem (m >= 3), else None."""
    for m in sizes:
        for num, den in ((m - 1, m), (m, m - 1)):
            if m >= 3 and abs(k2 - num / den) < FRACTION_FIT * k2:
                return f"√({num}/{den})"
    return None


def _is_simple(f):
    """k, 1/k, k/(k-1), (k-1)/k, or a fraction of numbers up to 4 (sign ignored)."""
    num, den = abs(f.numerator), f.denominator
    return num == 1 or den == 1 or abs(num - den) == 1 or (num <= 4 and den <= 4)


def _factor_meaning(f, sizes, power=True):
    """What a factor between your answer and the right one means; sizes are those of the problem; power:
    whether a power rule may be involved (False when the graph shows the step holds no power)."""
    if f == -1:
        return "the sign is flipped: which minus sign, in your formula or in a local derivative, went missing or in twice?"
    sign = "the sign is flipped, and " if f < 0 else ""
    num, den = abs(f).numerator, abs(f).denominator
    if num >= 3 and den >= 3 and abs(num - den) == 1:
        n = max(num, den)
        if n in sizes:
            return (f"{sign}n and n-1 are mixed up (n = {n}): which of the two is this step's forward pass "
                    "dividing by?")
        return f"{sign}a constant in the formula is slightly off"
    if num >= 3 and den >= 3 and num in sizes and den in sizes:
        return (f"{sign}as if divided by {den} ({sizes[den]}) where the right formula divides by {num} "
                f"({sizes[num]})")
    k = den if num == 1 else num if den == 1 else None
    if k is not None and k >= 3 and k in sizes:
        if den == 1:
            return f"{sign}a factor 1/{k} is missing, e.g. the 1/n of a mean over n = {k} items ({sizes[k]})"
        return (f"{sign}there is a factor 1/{k} too many, e.g. a division by {k} ({sizes[k]}): a mean where a sum "
                "belongs, or a 1/n applied twice")
    if num <= 4 and den <= 4 and not power:
        return (f"{sign}a constant factor like {abs(f)} is missing or extra: which "
                "constant in your formula is not this step's?")
    if num <= 4 and den <= 4:
        return (f"{sign}a power rule factor may be missing or extra (the p that d/dx x**p = p * x**(p-1) brings "
                "down), or a factor like 2 or 1/2")
    if den == 1:
        return f"{sign}a factor 1/{num} is missing"
    if num == 1:
        return f"{sign}there is a factor 1/{den} too many"
    return f"{sign}a constant in the formula is wrong"


def _rule_factor_per_slice(c):
    """d = ref times a factor that is the same along one dim but changes along another."""
    if c.d.dim() < 2:
        return None
    used = c.ref.abs() > FIT * _max_abs(c.ref)
    ratio = torch.where(used, c.d / torch.where(used, c.ref, torch.ones_like(c.ref)), torch.nan)
    for dim in range(c.d.dim()):
        if c.d.shape[dim] < 2:
            continue
        factor = ratio.nanmean(dim, keepdim=True)
        if (used.sum(dim) < 2).any():
            continue  # a slice with one entry (or none) says nothing about a factor shared along it
        if not torch.isfinite(factor).all() or not _fits(factor * c.ref, c.d):
            continue
        if _is_constant(factor):
            return None  # one constant: the constant-factor rule's case
        if (factor.abs() <= FIT * _max_abs(factor)).any():
            return None  # a slice that is all zero: left out, not scaled (the partly-right rule says where)
        examples = "a per-column gain or 1/std" if dim == 0 else "a per-row sum or normaliser"
        within = {0: " (one number per column)", 1: " (one number per row)"}.get(dim, "") if c.d.dim() == 2 else ""
        others = f"dim {1 - dim}" if c.d.dim() == 2 else "the other dims"
        return (f"{c.dname} is the right answer times a factor that is the same along dim {dim}{within} but changes "
                f"along {others}: a quantity broadcast along dim {dim} (e.g. {examples}) is missing, extra "
                "or the wrong one")
    return None


def _rule_almost_right(c):
    if c.relerr >= ALMOST_RIGHT:
        return None
    return (f"almost right: the differences are tiny compared to the gradient ({c.relerr:.1e} of its largest entry), "
            "but some entries near zero differ by more than allclose allows; is part of "
            "your computation done in another dtype or in a very different order, or is a gradient it is "
            "computed from right only up to a tolerance (a branch left out where its gradient is tiny)?")


def _elementwise_consumer(c):
    """(name, incoming gradient, where it is non-zero) of the nearest checked tensor made from this one
    entry by entry, or None."""
    for name, u, grad in c.consumers[:1]:
        if grad.shape == c.d.shape:
            return name, grad, grad.abs() > FIT * _max_abs(grad)
    return None


def _rule_added_instead_of_multiplied(c):
    """d = local + incoming, where the chain rule says local * incoming."""
    found = _elementwise_consumer(c)
    if not found:
        return None
    name, incoming, used = found
    enough = 1 if used.numel() == 1 else max(2, used.numel() // 2)  # one number is enough for a single one
    if used.sum() < enough:
        return None
    local = c.ref[used] / incoming[used]
    if not _explains(local + incoming[used], c.d[used], c.ref[used]):
        return None
    return (f"{c.dname} looks like the local derivative PLUS the incoming gradient d{name}: the chain rule "
            "multiplies them (gradient = local derivative × gradient arriving from above)")


def _rule_incoming_only(c):
    """d = the incoming gradient, unchanged: the local derivative left out (taken as 1)."""
    found = _elementwise_consumer(c)
    if not found or len(c.steps) != 1 or not _fits(found[1], c.d) or _fits(found[1], c.ref):
        return None  # one use only, read from the graph: with two, a missing branch looks the same (dhprebn = dbndiff)
    return (f"{c.dname} is the gradient arriving from above, d{found[0]}, unchanged: the chain rule has two factors, "
            f"and the local derivative of the step from {c.tname} to {found[0]} is not in yours")


def _rule_local_derivative_only(c):
    """d = local, without the incoming gradient."""
    found = _elementwise_consumer(c)
    if not found:
        return None
    name, incoming, used = found
    if used.sum() < 1 or not _explains(c.ref[used] / incoming[used], c.d[used], c.ref[used]):
        return None
    return (f"{c.dname} looks like the local derivative alone: the chain rule has two factors, and the "
            f"gradient arriving from above, d{name}, is not in yours")


def _tanh_local_is(c, wrong_local):
    """Your gradient is the right one for h = tanh(x) with tanh's local derivative 1 - h**2 replaced by
    wrong_local(x) (x is the tensor, tanh's input)."""
    if c.x is None or c.x.shape != c.d.shape:
        return False
    right_local = 1 - torch.tanh(c.x) ** 2
    if (right_local == 0).any():
        return False
    return _explains(c.ref * wrong_local(c.x) / right_local, c.d, c.ref)


def _local_factor_of(c):
    """What the tanh rules measured, before they name the slip: the error is a local factor per entry."""
    return (f"{c.dname} is the right answer times a factor per entry that depends only on {c.tname} there: the "
            "local derivative of tanh is evaluated wrong")


def _rule_tanh_from_its_input(c):
    """For h = tanh(x): 1 - x**2 instead of 1 - h**2."""
    if _tanh_local_is(c, lambda x: 1 - x ** 2):
        return (f"{_local_factor_of(c)}: it matches 1 - {c.tname}**2, the formula 1 - y**2 evaluated at tanh's "
                "input: is the y of that formula what goes into the tanh, or what comes OUT of it?")
    return None


def _rule_tanh_slope_misread(c):
    """For h = tanh(x): 1 - tanh(h)**2 (tanh applied twice) or (1 - h)**2 instead of 1 - h**2."""
    if _tanh_local_is(c, lambda x: 1 - torch.tanh(torch.tanh(x)) ** 2):
        return (f"{_local_factor_of(c)}: it matches 1 - tanh(y)**2 with y = tanh({c.tname}), tanh applied twice; "
                "the output y = tanh(x) is already there: which way of writing tanh's derivative uses it?")
    if _tanh_local_is(c, lambda x: (1 - torch.tanh(x)) ** 2):
        return (f"{_local_factor_of(c)}: it matches (1 - y)**2 with y = tanh({c.tname}); look at what is squared "
                "in tanh's derivative, entry by entry")
    return None


def _rule_epsilon_left_out(c):
    """For (x + eps)**p: the local derivative written without the eps."""
    if c.x is None or c.x.shape != c.d.shape or not (c.x > 0).all():
        return None
    ratio = (c.x + BN_EPS) / c.x
    for power in (1.5, 0.5, 1.0, 2.0):
        if _explains(c.ref * ratio ** power, c.d, c.ref):
            return (f"{c.dname} is right except near small values of {c.tname}: the local derivative leaves out "
                    f"the {BN_EPS:g} that the forward pass adds to {c.tname} before raising it to a power")
    return None


def _rule_power_rule_added(c):
    """For (x + eps)**p: p + (x + eps)**(p - 1) instead of p * (x + eps)**(p - 1)."""
    if c.x is None or c.x.shape != c.d.shape:
        return None
    for eps in (BN_EPS, 0.0):
        base = c.x + eps
        if not (base > 0).all():
            continue
        for p in (-0.5, -1.0, 0.5, 2.0, -2.0, 3.0):
            right_local = p * base ** (p - 1)
            if _explains(c.ref * (p + base ** (p - 1)) / right_local, c.d, c.ref):
                return (f"{c.dname} is the incoming gradient times a wrong local factor: it looks like "
                        f"({p:g} + x**{p - 1:g}), a sum where the power rule multiplies")
    return None


def _entries_off_by_rows(c):
    """(the error, one row per row of your gradient (a vector: one row), and where it is more than rounding)."""
    error = c.error.reshape(-1, c.d.shape[-1])
    return error, error.abs() > FIT * max(_max_abs(c.ref), _TINY)


def _rule_label_term_missing(c):
    """Wrong in exactly one entry per row, by the same amount, where the right gradient is negative."""
    if c.d.dim() not in (1, 2) or c.d.shape[-1] < 2:
        return None
    error, wrong = _entries_off_by_rows(c)
    ref = c.ref.reshape(error.shape)
    if not (wrong.sum(1) == 1).all():
        return None
    values = error[wrong]
    if not _is_constant(values) or not (ref[wrong] < 0).all():
        return None
    if not ((ref < 0).sum(1) == 1).all() or (c.d.dim() == 2 and c.d.shape[0] < 2):
        return None  # a cross-entropy gradient is negative at the label only
    amount = _number(abs(values.mean().item()))
    direction = "high" if values.mean().item() > 0 else "low"
    where = "one entry per row, each" if c.d.dim() == 2 else "one entry,"
    return (f"{c.dname} is right except in {where} too {direction} by {amount}; "
            "that is where the right gradient is negative: the label. The term of the loss that depends on "
            "the label's own logit directly is missing, has the wrong size or the wrong sign")


def _rule_one_entry_right_per_row(c):
    """Right at exactly one entry per row, every other entry off by one common amount: a term applied to every
    entry that belongs to one (e.g. the label's -1 subtracted everywhere), or the other way round."""
    if c.d.dim() not in (1, 2) or c.d.shape[-1] < 3:
        return None
    error, wrong = _entries_off_by_rows(c)
    right = ~wrong
    if not (right.sum(1) == 1).all() or not _is_constant(error[~right]):
        return None
    where = "one entry per row" if error.shape[0] > 1 else "one entry"
    return (f"{c.dname} is right in {where}; every other entry is off by {_number(error[~right].mean().item())}: "
            "a term that belongs to that one entry (the label's, in a cross-entropy) was given to every entry, or "
            "one that belongs to every entry was left out everywhere else")


def _labels(c):
    """(name, labels, where they are) of an integer tensor in your notebook with one label per row of your
    gradient (Yb): `where` is true at each row's label entry."""
    for name, index in c.index_tensors:
        if (c.d.dim() == 2 and index.dim() == 1 and len(index) == c.d.shape[0] and len(index) > 1
                and index.min() >= 0 and index.max() < c.d.shape[1]):
            at_label = torch.zeros_like(c.d, dtype=torch.bool)
            at_label[torch.arange(len(index)), index] = True
            return name, index, at_label
    return None


def _rule_whole_label_columns(c):
    """Wrong in whole columns, those the labels name, by one amount: [:, Yb] where one entry per row was meant."""
    found = _labels(c)
    if not found:
        return None
    name, labels, at_label = found
    label_columns = torch.zeros_like(at_label)
    label_columns[:, labels] = True
    wrong = c.error.abs() > FIT * max(_max_abs(c.ref), _TINY)
    for where, rows in ((label_columns, "whole columns"),
                        (label_columns & ~at_label, "whole columns except at each row's own label")):
        if torch.equal(wrong, where) and _is_constant(c.error[where]):
            return (f"{c.dname} is wrong in {rows}, all by {_number(c.error[where].mean().item())}: the "
                    f"columns whose index is in `{name}` (the labels of the batch), as when an index picks whole columns "
                    "where it should pick one entry per row: what index picks one entry in each row?")
    return None


def _rule_label_and_rest_offsets(c):
    """Off by one amount at every label entry and by another at every other entry: a wrong target."""
    found = _labels(c)
    if not found:
        return None
    name, _, at_label = found
    on, off = c.error[at_label], c.error[~at_label]
    scale = max(_max_abs(c.ref), _TINY)
    for part in (on, off):  # each one amount, up to rounding: the spread is tiny next to the gradient and the amount
        spread = _max_abs(part - part.mean())
        if spread > FIT * scale or spread > EXPLAINED * abs(part.mean().item()):
            if _max_abs(part) > FIT * scale:
                return None
    if _max_abs(on) <= FIT * scale:
        if _max_abs(off) <= FIT * scale or _max_abs(c.ref[~at_label]) <= FIT * scale:
            return None  # right, or only the labels count (dlogprobs): partly_right says where
        return (f"{c.dname} is right at the label entries (`{name}`) and off by {_number(off.mean().item())} at "
                "every other entry, the same amount everywhere: a term that belongs to the label's entry alone (such as "
                "the label's -1) was given to every entry, or one that every class gets alike (a smoothed target's "
                "share, say) is missing or has the wrong size")
    if _max_abs(off) <= FIT * scale:
        return (f"{c.dname} is right except at the label entries (`{name}`), each off by "
                f"{_number(on.mean().item())}: the term of the loss that depends on the label's own logit (or "
                "the target's value at the label) is missing or has the wrong size")
    return (f"{c.dname} is off by {_number(on.mean().item())} at every label entry (`{name}`) and by "
            f"{_number(off.mean().item())} at every other entry: what your formula puts at the label and at the "
            "other classes (a target, say) has the wrong values; check both against the loss's definition")


def _rule_softmax_over_the_wrong_dim(c):
    """Probabilities normalised along the other dim: yours, read off the data, are exp(t) times a factor per row
    and one per column (any shift, such as each row's max) and sum to 1 along dim 0 where the right ones sum to
    1 along dim 1 (or the other way round)."""
    if c.x is None or c.d.dim() != 2 or c.x.shape != c.d.shape or min(c.d.shape) < 2:
        return None
    for right_dim in (1, 0):
        right = torch.softmax(c.x, right_dim)
        for scale in (1 / c.d.shape[0], 1.0):
            for sign in (1, -1):  # your probabilities, if the rest of your formula is the right one
                yours = right + sign * c.error / scale
                if (yours < -FIT).any() or not _fits(yours.sum(1 - right_dim), torch.ones_like(yours.sum(1 - right_dim))):
                    continue
                # exp(t) times a factor per row and one per column: log(yours) - t is a row part plus a column part,
                # measured where the probabilities are not lost in rounding (below FIT they hardly count)
                weight = (yours > FIT).to(yours.dtype)
                log_ratio = yours.clamp(min=FIT).log() - c.x
                rows = (weight * log_ratio).sum(1, keepdim=True) / weight.sum(1, keepdim=True).clamp(min=1)
                columns = (weight * (log_ratio - rows)).sum(0, keepdim=True) / weight.sum(0, keepdim=True).clamp(min=1)
                if not _fits((c.x + rows + columns).exp(), yours, within=LOOSE_FIT):
                    continue
                along, across = ("rows", "columns") if right_dim == 1 else ("columns", "rows")
                return (f"the probabilities in {c.dname} are normalised otherwise than the right answer's: yours sum "
                        f"to 1 along dim {1 - right_dim} (each of the {across}), the right ones along dim {right_dim} "
                        f"(each of the {along}): the sum that normalises the softmax of {c.tname} runs over the "
                        "other dim")
    return None


def _rule_row_sums_along_columns(c):
    """A square tensor's softmax with the row sums as a (n,) vector: broadcasting lines them up with the columns,
    so entry (i, j) is divided by row j's sum (counts / counts.sum(1) without keepdim=True)."""
    if c.x is None or c.d.dim() != 2 or c.x.shape != c.d.shape or c.d.shape[0] != c.d.shape[1]:
        return None
    right = torch.softmax(c.x, 1)
    for shift in (c.x.max(1, keepdim=True).values, torch.zeros_like(c.x[:, :1])):  # with or without the max
        counts = (c.x - shift).exp()
        wrong = counts / counts.sum(1)
        for scale in (1 / c.d.shape[0], 1.0):
            if _explains(c.ref + scale * (wrong - right), c.d, c.ref):
                return (f"{c.dname} matches the right formula with entry (i, j) of the softmax of {c.tname} divided "
                        f"by the sum of row j instead of row i, as happens when the row sums are a ({c.d.shape[0]},) "
                        "vector: broadcasting lines it up with the last dim, and since "
                        f"{c.tname} is square ({c.d.shape[0]} × {c.d.shape[1]}), nothing complains; each row must be "
                        "divided by its own sum")
    return None


def _number(x):
    """x as a simple fraction when it is one (1/32), else with 3 significant digits."""
    fraction = Fraction(x).limit_denominator(MAX_DENOMINATOR)
    return str(fraction) if fraction and abs(float(fraction) - x) <= NUMBER_EXACT * abs(x) else f"{x:.3g}"


def _standardised(x, dim=0, correction=1):
    """(x̂, s): x standardised along dim (dim 0: column by column, as BatchNorm; dim 1: row by row, as
    LayerNorm), and s = 1/std (with the lecture's eps; the variance divides by n - correction: n-1 is
    Bessel's correction, the lecture's choice)."""
    centred = x - x.mean(dim, keepdim=True)
    s = ((centred ** 2).sum(dim, keepdim=True) / (x.shape[dim] - correction) + BN_EPS) ** -0.5
    return centred * s, s


def _notebook_name_of(c, values):
    """The name of a tensor of your notebook (not a gradient) that holds `values`, as `bnraw` holds x̂; or None."""
    named = sorted(c.in_scope, key=lambda item: not item[0].isidentifier())  # bnraw before retained[10]
    return next((f"`{key}`" for key, x in named
                 if not key.startswith("d") and x.shape == values.shape and _fits(x, values)), None)


def _per_column_quantity(c, xhat, s):
    """'as if a per-column quantity ... were missing or extra in it', in your notebook's names where it has them."""
    s_words, xhat_words = _notebook_name_of(c, s) or "1/std", _notebook_name_of(c, xhat) or "x̂"
    return (f"as if a per-column quantity (such as {s_words}, or x - mean in place of {xhat_words}) were missing "
            "or extra in it")


def _rule_variance_term(c):
    """Fused BatchNorm: the error is a multiple of the standardised input, column by column."""
    if c.x is None or c.d.dim() != 2 or c.d.shape != c.x.shape or c.d.shape[0] < 3:
        return None
    xhat, s = _standardised(c.x, 0)
    error = c.error
    coefficient = (error * xhat).sum(0, keepdim=True) / (xhat * xhat).sum(0, keepdim=True).clamp(min=_TINY)
    if not _fits(coefficient * xhat, error, within=LOOSE_FIT) or _max_abs(coefficient) == 0:
        return None
    n = c.d.shape[0]
    centred = _max_abs(c.x.mean(0)) <= 1e-6 * _max_abs(c.x)  # like bndiff: the mean is already taken out
    norm = _normalisation(c)
    xhat_words = (_notebook_name_of(c, norm.xhat if norm is not None and norm.dim == 0 else xhat)
                  or (f"x̂ = {c.tname} / std" if centred else f"x̂ = ({c.tname} - mean) / std"))
    start = (f"{c.dname} is right except for a multiple of {xhat_words} in each column: the part "
             "of the gradient that flows through the batch variance")
    if norm is not None and norm.dim == 0 and norm.correction == 0:
        return _variance_term_dividing_by_n(c, norm, start)
    share = _variance_part_share(c, coefficient, xhat, s)
    if share is None and norm is not None and norm.dim == 0 and norm.correction == 1:
        share = _variance_part_share_from(c, norm)  # nothing checked before (exercise 3's route to step 5)
    if share is not None and abs(share * n - 1) < SHARE_FIT:
        return (f"{start} has the wrong size, as when its coefficient is not the one the forward pass's variance "
                "gives: what does the forward pass divide the variance by, and where does that number go in your "
                "derivation?")
    size = None if share is None else 1 - share  # the variance part's size, relative to the right one
    if size is not None and abs(size - n / (n - 1)) < SHARE_FIT * size:
        return (f"{start} is {n}/{n - 1} of its right size: a factor {n}/{n - 1} too many. The forward pass "
                f"divides the variance by n-1 = {n - 1} (Bessel's correction), and that factor goes into this part "
                "once: has it gone in twice?")
    if share is not None and abs(share - 1) < SHARE_FIT:
        return f"{start} is missing"
    if share is not None and abs(share - 2) < SHARE_FIT:
        return f"{start} has the wrong sign"
    if share is not None:
        return f"{start} has about {1 - share:.2f} times its right size"
    if c.bn_gain is not None and c.bn_gain[0].shape == coefficient.shape:
        return f"{start} is off by a different factor in each column, {_per_column_quantity(c, xhat, s)}"
    return f"{start} is missing or has the wrong size"


def _variance_part_share_from(c, norm):
    """As _variance_part_share, from the gradient g at x̂ that _normalisation found (a normalisation along dim 0):
    the share of the right variance part, -s * x̂ * sum(g * x̂) / (n - correction) per column, that your answer
    lacks; None if your error is not one constant multiple of it."""
    n = c.d.shape[0]
    part = -norm.s / (n - norm.correction) * norm.xhat * (norm.incoming * norm.xhat).sum(0, keepdim=True)
    per_column = (c.error * norm.xhat).sum(0, keepdim=True) / (part * norm.xhat).sum(0, keepdim=True)
    if not torch.isfinite(per_column).all():
        return None  # a column whose variance part is zero says nothing about its share
    if not _fits(per_column * part, c.error, within=LOOSE_FIT) or not _is_constant(per_column, within=LOOSE_FIT):
        return None
    return -per_column.mean().item()


def _variance_term_dividing_by_n(c, norm, start):
    """The variance part's size when the forward pass divides the variance by n (exercise 3's x_bn)."""
    n = c.d.shape[0]
    share = _variance_part_share_from(c, norm)
    if share is None:
        return f"{start} is off by a different factor in each column, {_per_column_quantity(c, norm.xhat, norm.s)}"
    size = 1 - share
    xhat = _notebook_name_of(c, norm.xhat) or "x̂"
    reused = (f"from a variance divided by another number than this forward pass's n = {n}: which divisor did "
              "each tensor in your formula use?")
    known = ((n / (n - 1), None, "what does this forward pass divide the variance by, and what coefficient does "
              "the last term get then?"),
             ((n - 1) / n, f"{n - 1}/{n}",
              f"as when both {xhat} and the sum of it come {reused}"),
             (((n - 1) / n) ** 0.5, f"√({n - 1}/{n})", f"as when {xhat}, or the sum of it, "
              f"comes {reused}"))
    for ratio, words, why in known:
        if abs(size - ratio) < LOOSE_FIT:
            return f"{start} {'has the wrong size' if words is None else f'is {words} of its right size'}: {why}"
    if abs(size) < SHARE_FIT:
        return f"{start} is missing"
    return f"{start} has about {size:.3f} times its right size"


def _norm_backward(g, xhat, s, n, sum_g, sum_gx, coefficient=None):
    """The fused backward pass of a normalisation without the gain (exercise 3's answer: a spoiler), with the two
    sums given, and another coefficient for the variance part if given."""
    if coefficient is None:
        coefficient = n / (n - 1)
    return s / n * (n * g - sum_g - coefficient * xhat * sum_gx)


@dataclass(frozen=True)
class Normalisation:
    """t normalised along a dim, as the right answer shows: x̂ and s there (the variance divided by n - correction),
    and the gradient arriving at x̂, `incoming` (called `incoming_name` in your notebook); when the gain is known,
    also the gradient arriving at the output, `outgoing` = incoming / gain (`outgoing_name`)."""
    dim: int
    correction: int
    xhat: torch.Tensor
    xhat_name: str
    s: torch.Tensor
    incoming: torch.Tensor
    incoming_name: str
    gain: torch.Tensor = None
    outgoing: torch.Tensor = None
    outgoing_name: str = None


def _normalisation(c):
    """The Normalisation whose fused backward pass is the right answer, found from the tensors of your notebook
    and the checked gradients; or None (t is not normalised, or no tensor there is the gradient at x̂)."""
    if c.x is None or c.d.dim() != 2 or c.d.shape != c.x.shape or min(c.d.shape) < 3:
        return None
    named = [(f"d{name}", grad) for name, u, grad in c.consumers if grad.shape == c.d.shape]
    named = list(reversed(named + [(key, values) for key, values in c.in_scope if values.shape == c.d.shape]))
    # the last assigned first: after dxhat_ln = bngain * dhpreact, the same numbers as dbnraw are dxhat_ln
    gain = c.bn_gain[0] if c.bn_gain is not None and c.bn_gain[0].shape == (1, c.d.shape[1]) else None
    # without a checked gradient at x̂ (exercise 3's route straight to step 5), a gain of your notebook times a
    # gradient of its shape may be it: bngain * dhpreact
    gains = [(key, values) for key, values in c.in_scope
             if not key.startswith("d") and values.shape == (1, c.d.shape[1])]
    products = [(f"{gain_key} * {key}", g * values, (g, values, key))
                for gain_key, g in gains for key, values in named if not key.startswith(("d" + gain_key, gain_key))]
    for dim, correction in ((0, 1), (1, 1), (0, 0), (1, 0)):
        xhat, s = _standardised(c.x, dim, correction)
        n = c.d.shape[dim]
        coefficient = n / (n - 1) if correction else 1.0
        for key, values, parts in [(key, values, None) for key, values in named] + products:
            if _fits(_norm_backward(values, xhat, s, n, values.sum(dim, keepdim=True),
                                    (values * xhat).sum(dim, keepdim=True), coefficient), c.ref):
                xhat_name = ([key for key, x in reversed(c.in_scope) if x.shape == xhat.shape and _fits(x, xhat)]
                             or ["x̂"])[0]
                found = Normalisation(dim, correction, xhat, xhat_name, s, values, key)
                if parts is not None:  # the gradient at x̂ is a gain times one of your tensors
                    return replace(found, gain=parts[0], outgoing=parts[1], outgoing_name=parts[2])
                outgoing = [(key, x) for key, x in named if gain is not None and _fits(gain * x, values)]
                if outgoing:
                    found = replace(found, gain=gain, outgoing=outgoing[0][1], outgoing_name=outgoing[0][0])
                return found
    return None


def _rule_normalisation_slip(c):
    """A fused BatchNorm or LayerNorm gradient with known slips: a sum over the other dim, a tensor that was not
    summed in place of a sum, the count n of the other dim (in some places or all), n/(n-1) left out, or the gain
    taken out of sums along which it changes."""
    norm = _normalisation(c)
    if norm is None:
        return None
    dim = norm.dim
    n, wrong_n = c.d.shape[dim], c.d.shape[1 - dim]
    group = "column" if dim == 0 else "row"
    forms = [(False, norm.incoming, norm.incoming_name)]  # (the gain outside the bracket, g, g's name)
    if norm.gain is not None:
        forms.append((True, norm.outgoing, norm.outgoing_name))
    for gain_outside, g, g_name in forms:
        for sum_g in _sum_choices(c, g, dim):
            for sum_gx in _sum_choices(c, g * norm.xhat, dim):
                for count, coefficient, count_slip in _count_choices(n, wrong_n, group, norm.correction):
                    candidate = _norm_backward(g, norm.xhat, norm.s, count, sum_g.values, sum_gx.values, coefficient)
                    if gain_outside:
                        candidate = norm.gain * candidate
                    slips = _sum_slips(sum_g, sum_gx, g_name, norm.xhat_name, dim)
                    if count_slip:
                        slips.append(count_slip)
                    if gain_outside and norm.gain.shape[dim] > 1:
                        slips.append(f"the gain taken out of the sums as a factor, though it changes along dim {dim}, "
                                     "the dim the sums run over: can a factor that changes along a sum leave it?")
                    if slips and _explains(candidate, c.d, c.ref):
                        parts = _changed_parts([sum_g.kind, sum_gx.kind].count("right"), count_slip,
                                               gain_outside and norm.gain.shape[dim] > 1)
                        return (f"{c.dname} matches the fused formula of this normalisation with {parts} changed: the "
                                f"formula of a normalisation along dim {dim} (each {group} on its own, as the right "
                                "answer shows) with " + "; and ".join(slips))
    return None


def _changed_parts(right_sums, count_slip, gain):
    """Which parts of the fused formula a slip changed, in words that name no fix: 'a sum and the count n'
    (right_sums: how many of its two sums are right)."""
    parts = {2: [], 1: ["a sum"], 0: ["both sums"]}[right_sums]
    if count_slip.startswith("n = "):
        parts.append("the count n")
    elif count_slip:
        parts.append("a coefficient")
    if gain:
        parts.append("a factor")
    return " and ".join(parts)


def _count_choices(n, wrong_n, group, correction):
    """[(n in s/n and n*g, the variance part's coefficient, what it says when it is not the right one)]: the right
    n and coefficient (n/(n-1) after a variance with Bessel's correction, else 1), and the slips of n (the other
    dim's count, in some places or all) and of the coefficient."""
    counted = f"the number of entries normalised together (those of each {group})"
    if not correction:
        return [(n, 1.0, ""),
                (wrong_n, 1.0, f"n = {wrong_n}, where n is {counted}"),
                (n, n / (n - 1), f"a coefficient {n}/{n - 1} on the variance part, as Bessel's correction gives: this "
                                 f"forward pass divides its variance by n = {n}, not n-1")]
    return [(n, n / (n - 1), ""),
            (wrong_n, wrong_n / (wrong_n - 1), f"n = {wrong_n}, where n is {counted}"),
            (wrong_n, n / (n - 1), f"n = {wrong_n} in s/n and n*g but {n} in the variance part's coefficient: n is "
                                   f"one number throughout, {counted}"),
            (n, wrong_n / (wrong_n - 1), f"n = {wrong_n} in the variance part's coefficient but {n} elsewhere: n is "
                                         f"one number throughout, {counted}"),
            (n, 1.0, f"the variance part without the coefficient that the forward pass's division by n-1 = {n - 1} "
                     "(Bessel's correction) leaves there")]


@dataclass(frozen=True)
class SumChoice:
    """A tensor used where a formula sums over a dim: the sum itself ("right"), the sum over the other dim
    ("other dim"), or a tensor of your notebook that holds the numbers without the sum ("not summed", `name`)."""
    values: torch.Tensor
    kind: str
    name: str = None


def _sum_choices(c, values, dim):
    """The SumChoices for the sum of `values` over dim."""
    right = values.sum(dim, keepdim=True)
    choices = [SumChoice(right, "right"), SumChoice(values.sum(1 - dim, keepdim=True), "other dim")]
    for key, tensor in c.in_scope:
        if tensor.shape == values.shape and _fits(tensor, values):
            choices.append(SumChoice(tensor, "not summed", key))
    return choices


def _sum_slips(sum_g, sum_gx, g_name, xhat_name, dim):
    """What is wrong with the two sums of the fused formula, in words: [] when both are right."""
    sums = [(sum_g, g_name), (sum_gx, f"{g_name} * {xhat_name}")]
    other_dim = [what for choice, what in sums if choice.kind == "other dim"]
    slips = []
    if len(other_dim) == 1:
        slips.append(f"the sum of {other_dim[0]} taken over dim {1 - dim} where the right formula sums over dim {dim}")
    if len(other_dim) == 2:
        slips.append(f"both sums (of {other_dim[0]} and of {other_dim[1]}) taken over dim {1 - dim} where the right "
                     f"formula sums over dim {dim}")
    if other_dim:
        slips[-1] += " (a sum that keeps its dim as size 1 broadcasts over either dim, so only the values show it)"
    for choice, what in sums:
        if choice.kind == "not summed":
            slips.append(f"`{choice.name}` {tuple(choice.values.shape)} in place of the sum of {what} over dim {dim}: "
                         f"`{choice.name}` was not summed, and broadcasting spread it without an error")
    return slips


def _variance_part_share(c, coefficient, xhat, s):
    """How much of the variance part is missing (1 = all of it), when it can be measured; else None.

    The right variance part is -s * x̂ * sum(g * x̂) / (n-1) per column, with s = 1/std and g the gradient
    arriving at x̂. sum(g * x̂) is bngain times bngain's gradient when bngain was checked, or, from any checked
    tensor u = a * x̂ + b (a and b per column, like bnraw or hpreact), a * sum(du * x̂). `coefficient` is the
    error's multiple of x̂.
    """
    sums = None
    if c.bn_gain is not None and c.bn_gain[0].shape == coefficient.shape:
        gain, gain_grad = c.bn_gain
        sums = gain * gain_grad
    for name, u, grad in c.consumers:
        if sums is None and grad.shape == xhat.shape:
            values = u.detach().to(torch.float64)
            centred = values - values.mean(0, keepdim=True)
            a = (centred * xhat).sum(0, keepdim=True) / (xhat * xhat).sum(0, keepdim=True)
            if _fits(a * xhat + values.mean(0, keepdim=True), values, within=LOOSE_FIT):
                sums = a * (grad * xhat).sum(0, keepdim=True)
    if sums is None:
        return None
    part = s * sums / (c.x.shape[0] - 1)
    used = part.abs() > FIT * _max_abs(part)
    if not used.any():
        return None
    share = coefficient[used] / part[used]
    if not _is_constant(share, within=SHARE_FIT):
        return None  # the share differs from column to column
    return share.mean().item()


def _batchnorm_terms(c):
    """(D, M, V): the three terms of t's gradient when t is normalised column by column (BatchNorm) and a checked
    tensor u = a * x̂ + b (a and b per column, like hpreact) carries all of it: D = a/std * du, the direct term;
    M = -mean(D) per column, the term through the batch mean; V = -x̂ * sum(D * x̂) / (n - correction), the term
    through the batch variance. Their sum is the right answer (else None)."""
    if c.x is None or c.d.dim() != 2 or c.d.shape != c.x.shape or c.d.shape[0] < 3:
        return None
    n, centred = c.d.shape[0], c.x - c.x.mean(0, keepdim=True)
    for name, u, grad in c.consumers:
        if grad.shape != c.x.shape:
            continue
        values = u.detach().to(torch.float64)
        slope = ((values - values.mean(0, keepdim=True)) * centred).sum(0, keepdim=True) / (
            (centred * centred).sum(0, keepdim=True).clamp(min=_TINY))  # a/std: u - mean(u) = slope * (t - mean(t))
        if not _fits(slope * centred + values.mean(0, keepdim=True), values, within=LOOSE_FIT):
            continue
        direct = slope * grad
        mean_term = -direct.mean(0, keepdim=True).expand_as(direct)
        for correction in (1, 0):
            xhat, _ = _standardised(c.x, 0, correction)
            variance_term = -xhat * (direct * xhat).sum(0, keepdim=True) / (n - correction)
            if _max_abs(variance_term) > FIT * _max_abs(c.ref) and _fits(direct + mean_term + variance_term, c.ref):
                return direct, mean_term, variance_term
    return None


def _rule_term_sizes(c):
    """Fused BatchNorm: your answer is the sum of the three terms, each times a constant, and they are not all 1 (nor
    all the same: constant_factor's; nor only the variance term off: variance_term's; nor only the mean term left
    out: broadcast_error's, whose id notebook 05 maps to a missing term)."""
    terms = _batchnorm_terms(c)
    if terms is None or c.d.numel() < 10 * len(terms):  # with few entries, three free sizes fit almost anything
        return None
    basis = torch.stack([term.flatten() for term in terms], 1)
    sizes = torch.linalg.lstsq(basis, c.d.flatten().unsqueeze(1)).solution.flatten().tolist()
    if not _explains(sum(k * term for k, term in zip(sizes, terms)), c.d, c.ref):
        return None
    off = [abs(k - 1) > LOOSE_FIT for k in sizes]
    same = max(sizes) - min(sizes) <= LOOSE_FIT * max(abs(k) for k in sizes)
    if not any(off) or same or off == [False, False, True] or (off == [False, True, False] and abs(sizes[1]) < LOOSE_FIT):
        return None
    n = c.d.shape[0]
    xhat, s = _standardised(c.x, 0) if c.x is not None else (None, None)
    xhat_words = (xhat is not None and _notebook_name_of(c, xhat)) or "x̂"
    s_words = (s is not None and _notebook_name_of(c, s)) or "1/std"
    names = (f"the direct term (the gradient arriving at {xhat_words} times {s_words}, entry by entry)",
             "the term through the batch mean (one value per column, the same in every row)",
             f"the term through the batch variance (a multiple of {xhat_words} in each column)")
    said = [f"{names[i]} {_term_size(sizes[i], n)}" for i in range(3) if off[i]]
    right = [names[i].split(" (")[0] for i in range(3) if not off[i]]
    return (f"{c.dname} has the three terms of the fused BatchNorm gradient, not all of the right size: "
            + "; and ".join(said)
            + (f"; {_listing(right).replace('`', '')} {'is' if len(right) == 1 else 'are'} right" if right else ""))


def _term_size(k, n):
    """How one term of a formula compares with its right size k = 32/31, in words."""
    if abs(k) < LOOSE_FIT:
        return "is missing"
    if abs(k + 1) < LOOSE_FIT:
        return "has the wrong sign"
    for ratio, words in ((Fraction(n, n - 1), f"as if divided by n-1 = {n - 1} where it divides by n = {n}"),
                         (Fraction(n - 1, n), f"as if divided by n = {n} where it divides by n-1 = {n - 1}")):
        if abs(k - ratio) < LOOSE_FIT * ratio:
            return f"is there, but {ratio} of its right size: {words}"
        if abs(k - ratio**2) < LOOSE_FIT * ratio**2:
            return f"is there, but ({ratio})² of its right size: as if a factor {1 / ratio} were written upside down"
    fraction = Fraction(k).limit_denominator(MAX_DENOMINATOR)
    size = str(fraction) if abs(float(fraction) - k) < LOOSE_FIT * abs(k) else f"about {k:.3g}"
    return f"is there, but {size} times its right size"


def _broadcast_words(small, shape):
    """How a tensor of shape `small`, broadcast to `shape`, looks there: 'one number per row, the same in
    every column' for (32, 1) in (32, 27)."""
    small = (1,) * (len(shape) - len(small)) + tuple(small)
    spread = [dim for dim, (a, b) in enumerate(zip(small, shape)) if a == 1 and b > 1]
    if len(shape) == 2 and spread == [1]:
        return "one number per row, the same in every column"
    if len(shape) == 2 and spread == [0]:
        return "one number per column, the same in every row"
    return f"the same along dim {', '.join(map(str, spread))}"


def _rule_branch_off(c):
    """The error is a checked tensor's gradient, broadcast: the branch through that tensor is off."""
    error = -c.error  # what is missing from d
    for name, u, grad in c.consumers:
        if grad.shape == error.shape or grad.dim() > error.dim():
            continue
        try:
            spread = grad.expand_as(error)
        except RuntimeError:
            continue
        k = _multiple(error, spread)
        if k is None:
            continue
        if k > 0:
            return (f"what {c.dname} lacks is {_broadcast_words(grad.shape, error.shape)}: it is a multiple of "
                    f"d{name}, broadcast: the branch through `{name}` is missing, too small or of the wrong sign")
        n = 1 / (1 + k) if k > -1 else 0  # the right factor is 1/n and yours 1, when k = 1/n - 1
        mean_missing = round(n) in c.sizes and abs(n - round(n)) < LOOSE_FIT * n
        amount = f"{_number(-k)} = 1 - 1/{round(n)}" if mean_missing else _number(-k)
        text = (f"the branch through `{name}` is there, but too large: {c.dname} has d{name} × {amount} too much "
                "of it, broadcast to this shape")
        if mean_missing:
            text += (f": as if a mean's share were left out of this branch: how much of a mean's gradient does each "
                     f"of its {round(n)} items get?")
        return text
    return None


def _rule_same_local_derivative_for_a_sum(c):
    """t enters a sum (times a constant): every entry's local derivative is that constant."""
    tensors = ([(c.tname, c.x)] if c.x is not None else []) + list(c.in_scope)
    for step in c.steps:  # a plain sum read from the graph: its local derivative is 1, also beside other branches
        incoming = _contribution(step, torch.ones_like(step.t_values), c.d.shape) if step.op == "SumBackward1" else None
        if incoming is None or incoming.shape != c.d.shape or not (incoming != 0).all():
            continue
        for key, values in tensors:  # does error = incoming * (k * values - 1), i.e. k * values where 1 belongs?
            if values.shape != c.d.shape or _is_constant(values):
                continue
            k = _multiple(c.error + incoming, incoming * values)  # the other branches' rounding stays in error
            if k is not None:
                return (f"`{step.consumer}` sums the entries of {c.tname}, so every entry has the same local "
                        f"derivative, 1; in the branch through it yours is {_number(k)} × `{key}`, a tensor")
    for name, u, grad in c.consumers[:1]:
        if grad.dim() != c.d.dim() or grad.shape == c.d.shape:
            return None
        try:
            incoming = grad.expand_as(c.d)
        except RuntimeError:
            return None
        if not (incoming != 0).all():
            return None
        if not _is_constant(c.ref / incoming):
            return None  # the right local derivative is not a constant: not a plain sum
        yours = c.d / incoming
        if _is_constant(yours):
            return None
        for key, values in tensors:
            if values.shape == yours.shape and _multiple(yours, values) is not None:
                return (f"`{name}` sums the entries of {c.tname} (times a constant), so every entry has the same "
                        f"local derivative; yours ({c.dname} / d{name}) is a multiple of `{key}`, a tensor: a sum "
                        "treats all its terms alike, so its local derivative holds no tensor")
        return None  # a local derivative that changes, but no tensor explains it
    return None


def _rule_rows_overwritten(c):
    """Some rows right, the others too small: repeated indices kept one write instead of adding up."""
    close = torch.isclose(c.d, c.ref)
    if not c.leaf or c.d.dim() != 2 or not _row_structured(close) or _column_sums_right(c):
        return None  # every contribution is there when the column sums are right
    uses = _embedding_uses(c)
    if uses is None:
        return None
    index, parts, index_name, parts_name = uses
    index_name = _plain_name(index_name)  # as the code that wrote dC calls it
    wrong = ~close.all(1)
    for row in wrong.nonzero().flatten().tolist():
        if not any(_fits(part, c.d[row]) for part in parts[index == row]):
            return None  # a wrong row that is not one of its own contributions
    right = int((~wrong & c.ref.any(1)).sum())
    which = "the wrong row holds" if int(wrong.sum()) == 1 else "each wrong row holds"
    used_rows = int(c.ref.any(1).sum())
    return (f"right in {right:,} of the {_plural(used_rows, 'row')} that get a gradient: {which} just one of its "
            "contributions, as when a row that is used several times keeps only one: a write such as "
            f"`{c.dname}[{index_name}] += {parts_name}` or `{c.dname}[i] = ...` replaces instead of adding: every "
            "use must be added")


def _embedding_uses(c):
    """(index, parts, their names) when the right answer is `parts` added into the rows given by `index`
    (flattened), both found among your notebook's tensors and the checked gradients (Xb and demb for dC);
    else None."""
    if c.d.dim() != 2:
        return None
    grads = [(f"d{name}", grad) for name, _, grad in c.consumers] + list(c.in_scope)
    for index_name, index in c.index_tensors:
        if index.min() < 0 or index.max() >= c.d.shape[0]:
            continue
        for parts_name, parts in grads:  # demb (32, 3, 10), or dembcat (32, 30), the same numbers in order
            if parts.numel() != index.numel() * c.d.shape[1] or parts.shape[0] != index.shape[0]:
                continue
            if tuple(parts.shape[:-1]) != tuple(index.shape):
                parts_name = "..."  # dembcat (32, 30) for Xb (32, 3): `dC[Xb] += dembcat` would not run
            parts = parts.reshape(-1, c.d.shape[1])
            total = torch.zeros_like(c.ref).index_add_(0, index.flatten(), parts)
            if _fits(total, c.ref):
                return index.flatten(), parts, index_name, parts_name
    return None


def _rule_wrong_order(c):
    """The right numbers, rearranged."""
    if c.d.numel() < 2:
        return None
    sorted_d, sorted_ref = c.d.flatten().sort().values, c.ref.flatten().sort().values
    if not _fits(sorted_d, sorted_ref) or _max_abs(sorted_d - sorted_ref) > EXPLAINED * _max_abs(c.error):
        return None  # sorted, the numbers must agree, and far more closely than in place
    return (f"{c.dname} has the right numbers in the wrong places (every value is there, rearranged): check the "
            "order of the dims (a view or reshape keeps the order in memory; a transpose or permute does not) "
            "and of any indices")


def _rule_contributions_in_wrong_rows(c):
    """An embedding table's gradient whose column sums are right: every use was added, some to the wrong row."""
    if not c.leaf or c.d.dim() != 2 or not _column_sums_right(c) or _embedding_uses(c) is None:
        return None  # the right answer must be made of rows added by index (found in your notebook)
    return (f"every contribution is in {c.dname} (each column sums to the right total), but some went to the "
            "wrong rows: the indices and the gradients are paired wrongly, as when the two are listed in "
            "different orders")


def _column_sums_right(c):
    """True when every column of d sums to the right total (to within FIT of the gradient's size), and that says
    something: not when the right totals are all zero (after BatchNorm, every position's contributions to dC sum
    to zero in each column, so dropping some keeps the totals)."""
    informative = _max_abs(c.ref.sum(0)) > NOISE * _max_abs(c.ref)
    return informative and _max_abs(c.d.sum(0) - c.ref.sum(0)) <= FIT * _max_abs(c.ref)


def _rule_constant_offset(c):
    """Every entry off by the same amount."""
    error = c.error
    if c.d.numel() < 2 or not _is_constant(error) or _max_abs(error) == 0:
        return None
    amount = error.mean().item()
    start = f"every entry of {c.dname} is too {'high' if amount > 0 else 'low'} by {_number(abs(amount))}"
    if abs(amount - 1.0) <= FIT:
        return f"{start}: did it start from ones instead of zeros?"
    return f"{start}: a constant is added or left out"


def _rule_gradient_one_step_back(c):
    """Your gradient of t holds the right gradient of a tensor that t is computed from: the next step back."""
    for name, grad in c.input_grads:
        if _fits(grad, c.d) and not _fits(grad, c.ref):
            return (f"{c.dname} holds the right gradient of {name}, a tensor that {c.tname} is computed from: the "
                    f"gradient one step further back. Is it another variable's, or was {c.dname} written over after "
                    f"it was used? An in-place operation such as `*=` in the step back to {name} (`d{name} = "
                    f"{c.dname}` then `d{name} *= ...`, or `{c.dname} *= ...`) writes into the memory of "
                    f"{c.dname}, under every name that refers to it")
    return None


def _slice_factor(x, basis):
    """(dim, f) when x = f * basis with f the same along dim (one value per slice, broadcast), else None."""
    if x.dim() < 2 or x.shape != basis.shape:
        return None
    used = basis.abs() > FIT * _max_abs(basis)
    ratio = torch.where(used, x / torch.where(used, basis, torch.ones_like(basis)), torch.nan)
    for dim in range(x.dim()):
        if x.shape[dim] < 2 or (used.sum(dim) < 2).any():
            continue
        factor = ratio.nanmean(dim, keepdim=True)
        if torch.isfinite(factor).all() and _max_abs(factor) > 0 and _fits(factor * basis, x):
            return dim, factor
    return None


def _rule_one_path_only(c):
    """Your gradient is what comes through one use of t only (read from the graph), or a checked gradient
    times a factor per slice, which the right answer is not: one path of several."""
    for step in c.steps:
        operand = _other_operand(step)
        part = None if operand is None else _step_contribution(step, operand, c.d.shape)
        if part is not None and _explains(part, c.d, c.ref):
            return (f"{c.dname} is exactly the part that comes through `{step.consumer}`{_by_way_of(step)}: but "
                    f"{c.tname} is used elsewhere too, and the gradients from all its uses add up")
    if c.d.dim() < 2:
        return None
    for name, u, grad in c.consumers:
        found = _slice_factor(c.d, grad)
        if found is None or _slice_factor(c.ref, grad) is not None:
            continue  # the right answer has that form too: then only the factor is wrong, not the paths
        if (c.paths or {}).get(name, 0) < 2:
            continue  # one path from t to u: the local derivative is wrong, no path is missing
        dim = found[0]
        return (f"{c.dname} is d{name} times a factor that is the same along dim {dim}: it has only the path "
                f"through `{name}`, but {c.tname} reaches the loss by other paths too (e.g. through a sum or "
                f"mean over dim {dim}), whose terms are missing")
    return None


def _rule_branch_per_slice(c):
    """d - ref = (a factor per slice) * a checked gradient of the same shape: that branch is missing or off."""
    for name, u, grad in c.consumers:
        found = _slice_factor(-c.error, grad)
        if found is not None:
            return (f"what {c.dname} lacks is d{name} times a factor that is the same along dim {found[0]}: the "
                    f"branch through `{name}` is missing, or its local derivative is the wrong one")
    return None


def _contribution(step, local, t_shape):
    """local * incoming, summed to t's shape where t was broadcast (and on through the power between them, if
    any); None when the shapes don't allow it."""
    try:
        product = local * step.incoming
        dims = _broadcast_dims(tuple(product.shape), tuple(t_shape))
        return _through_power(step, product if dims is None else _sum_to(product, *dims))
    except RuntimeError:
        return None


def _through_power(step, part):
    """A step's contribution carried on to t through the unchecked power between them (see LocalStep)."""
    return part if step.power is None or part is None else part * step.power[1]


def _names_in_scope(c, values):
    """The names of your notebook's tensors equal to `values`."""
    return [key for key, tensor in c.in_scope if tensor.shape == values.shape and torch.equal(tensor, values)]


def _rule_swapped_operand(c):
    """A multiplication or matmul step with another tensor of your notebook where the forward pass saved one."""
    for step in c.steps:
        right_operand = _other_operand(step)
        if right_operand is None:
            continue
        right = _step_contribution(step, right_operand, c.d.shape)
        if right is None:
            continue
        for key, candidate in c.in_scope:
            if candidate.shape != right_operand.shape or torch.equal(candidate, right_operand):
                continue
            wrong = _step_contribution(step, candidate, c.d.shape)
            if wrong is None or _max_abs(wrong) <= FIT * _max_abs(right):
                continue  # a tensor of (almost) zeros: that branch is missing, not swapped
            if not _explains(c.ref + wrong - right, c.d, c.ref):
                continue
            saved_names = _names_in_scope(c, right_operand) or ["the tensor it saved"]
            what = "matmul" if step.op == "MmBackward0" else "multiplication"
            return (f"{c.dname} is right except in the step through `{step.consumer}`{_by_way_of(step)}, whose "
                    f"{what} fits with another tensor of your notebook in place of the one the forward pass used: "
                    f"it matches that step with `{key}` where the forward pass used `{saved_names[0]}`; in a "
                    "product, the local derivative with respect to one factor is the other factor, as the forward "
                    "pass had it")
        swapped = _swapped_incoming(c, step, right_operand, right)
        if swapped:
            return swapped
    return None


def _rule_summed_over_another_dim(c):
    """A gradient of a (k, 1) or (1, k) tensor broadcast in a product, summed over the dim it was not
    broadcast along: the shapes allow it when the product is square (k by k)."""
    if c.d.dim() != 2 or 1 not in c.d.shape:
        return None
    for step in c.steps:
        operand = _other_operand(step)
        if step.op != "MulBackward0" or operand is None or step.power is not None:
            continue
        try:
            products = operand * step.incoming
        except RuntimeError:
            continue
        dims = _broadcast_dims(tuple(products.shape), tuple(c.d.shape))
        if products.dim() != 2 or dims is None or dims[0] or len(dims[1]) != 1:
            continue
        other = 1 - dims[1][0]  # the dim t was not broadcast along
        summed = products.sum(other)
        if summed.numel() == c.d.numel() and _fits(summed.reshape(c.d.shape), c.d):
            return (f"{c.dname} matches this step's products summed over dim {other}, laid out in {c.tname}'s "
                    f"shape: {c.tname} was copied along dim {dims[1][0]} in the forward pass; along which dim do "
                    "the gradients of its copies add up?")
    return None


def _swapped_incoming(c, step, operand, right):
    """The step into a product with another gradient of your notebook where d<consumer> belongs (dh for dhpreact)."""
    for key, candidate in c.in_scope:
        if (not key.startswith("d") or candidate.shape != step.incoming.shape
                or _fits(candidate, step.incoming) or _max_abs(candidate) == 0):
            continue
        wrong = _step_contribution(replace(step, incoming=candidate), operand, c.d.shape)
        if wrong is not None and _explains(c.ref + wrong - right, c.d, c.ref):
            return (f"{c.dname} matches the step through `{step.consumer}`{_by_way_of(step)} with `{key}` as the "
                    f"gradient arriving at `{step.consumer}`: the chain rule takes the gradient that arrives at "
                    "this product's own output, not one from another step")
    return None


def _by_way_of(step):
    """' (by way of `bnvar_inv`)' when the step reaches t through a power that was not checked; else ''."""
    if step.power is None:
        return ""
    name = step.power[0]
    return f" (by way of `{name}`)" if name else " (by way of a power of it)"


def _other_operand(step):
    """For a multiplication or matmul step, the saved operand that is not t; else None."""
    if step.op not in ("MulBackward0", "MmBackward0"):
        return None
    return step.saved[list(step.saved)[1 - step.input_index]]


def _step_contribution(step, operand, t_shape):
    """The contribution through a multiplication or matmul step, with `operand` as the other factor."""
    if step.op == "MulBackward0":
        return _contribution(step, operand, t_shape)
    try:
        if step.input_index == 0:      # t @ operand: the gradient is incoming @ operand.T
            return _through_power(step, step.incoming @ operand.T)
        return _through_power(step, operand.T @ step.incoming)  # operand @ t: operand.T @ incoming
    except RuntimeError:
        return None


def _rule_square_transpose(c):
    """A product of two of your matrices, one of them square, in another arrangement than the right answer's
    (dD @ B for dD @ B.T, B.T @ dD for dD @ B.T): the shapes allow several."""
    if c.d.dim() != 2:
        return None
    tensors = [(key, x) for key, x in c.in_scope if x.dim() == 2]
    for left, p in tensors:
        for right, q in tensors:
            if q.shape[0] != q.shape[1] or p.shape[0] == p.shape[1] == 1 or p is q:
                continue
            arrangements = [(f"{a_name} @ {b_name}", a, b) for a_name, a in ((left, p), (f"{left}.T", p.T))
                            for b_name, b in ((right, q), (f"{right}.T", q.T))]
            arrangements += [(f"{b_name} @ {a_name}", b, a) for a_name, a in ((left, p), (f"{left}.T", p.T))
                             for b_name, b in ((right, q), (f"{right}.T", q.T))]
            products = []
            for words, a, b in arrangements:
                try:
                    products.append((words, a @ b))
                except RuntimeError:
                    continue
            yours = [words for words, product in products if _fits(product, c.d)]
            if yours and not _fits(c.d, c.ref) and any(_fits(product, c.ref) for _, product in products):
                square = [name for name, x in ((left, p), (right, q)) if x.shape[0] == x.shape[1]]
                return (f"{c.dname} matches {yours[0]}, which is not the right answer: the right answer is "
                        f"a product of the same two matrices, and {_listing(square)} "
                        f"{'is' if len(square) == 1 else 'are'} square, so the shapes cannot tell the arrangements "
                        "apart. Rebuild the rule from one entry: which row or column of each matrix does it use?")
    for right, q in tensors:  # the other operand need not be a variable: A = dx @ W⁻¹ (dx = (dh - ...) @ W)
        if q.shape[0] != q.shape[1] or q.shape[0] < 2 or not _well_conditioned(q):
            continue
        if c.d.shape[1] == q.shape[0] and _fits(torch.linalg.solve(q, c.d, left=False) @ q.T, c.ref, LOOSE_FIT):
            return (f"{c.dname} is some matrix A times `{right}` (A @ {right}), and the right answer is A times "
                    f"another arrangement of `{right}`: it is A times `{right}` transposed; `{right}` is square, so "
                    "the shapes allow both; check which operand the rule transposes")
        if c.d.shape[0] == q.shape[0] and _fits(q.T @ torch.linalg.solve(q, c.d), c.ref, LOOSE_FIT):
            return (f"{c.dname} is `{right}` times some matrix A ({right} @ A), and the right answer is another "
                    f"arrangement of `{right}` times A: it is `{right}` transposed times A; the shapes allow both; "
                    "check which operand the rule transposes")
    return None


def _well_conditioned(q):
    """True when q can be inverted without losing more than about 4 of float64's 16 digits."""
    if not torch.isfinite(q).all():
        return False
    try:
        return bool(torch.linalg.cond(q) <= MAX_CONDITION)
    except RuntimeError:
        return False


def _rule_wrong_elementary_derivative(c):
    """exp, tanh or a power differentiated as another function: the local derivative is a known wrong one."""
    for step in c.steps:
        x, xname = step.t_values, c.tname
        candidates = []
        if step.op in ("ExpBackward0", "TanhBackward0"):
            y = step.saved["result"]
            yname = (_names_in_scope(c, y) or [step.consumer])[0]
        if step.op == "ExpBackward0":
            right, what = y, "exp's derivative is exp itself, and the forward pass has computed it already"
            candidates = [(x, xname), (-x, f"-{xname}"), (-y, f"-{yname}"), (torch.ones_like(x), "1")]
        elif step.op == "TanhBackward0":
            right, what = 1 - y**2, "tanh's derivative is 1 - y**2, written with its output y"
            candidates = [(1 + y**2, f"1 + {yname}**2"), (1 - y, f"1 - {yname}"), (y, yname), (1 - x, f"1 - {xname}")]
        elif step.op == "PowBackward0":
            base, p = step.saved["self"], step.saved["exponent"].item()
            eps = float(f"{(base - x).median().item():.1g}")  # the constant added to t, as float rounding blurs it
            small = eps != 0 and abs(eps) <= LOOSE_FIT * _max_abs(x)  # a small constant like 1e-5: the fit decides
            base_name = f"({xname} + {eps:g})" if small else xname
            right, what = p * base**(p - 1), ("the power rule brings the exponent down as a factor and lowers it: "
                                              "what does it do to yours?")
            candidates = [(base**p, f"{base_name}**{p:g}: the exponent not lowered"),
                          (p * base**p, f"{p:g} * {base_name}**{p:g}: the exponent not lowered"),
                          (p * base**(p + 1), f"{p:g} * {base_name}**{p + 1:g}: the exponent raised, not lowered")]
            if small:
                candidates.append((p * (x - eps)**(p - 1),
                                   f"{p:g} * ({xname} - {eps:g})**{p - 1:g}: the {eps:g} subtracted, not added"))
        right_part = _contribution(step, right, c.d.shape) if candidates else None
        for local, name in candidates:
            wrong = _contribution(step, local, c.d.shape)
            if right_part is None or wrong is None or not torch.isfinite(wrong).all():
                continue
            if _explains(c.ref + wrong - right_part, c.d, c.ref):
                return (f"{c.dname} is wrong only in the step through `{step.consumer}`, where the local "
                        f"derivative is wrong: it matches that local derivative taken as {name}; {what}")
    return None


def _rule_product_with_a_tensor(c):
    """Your gradient is one of your notebook's tensors times the gradient arriving from the checked tensor just
    above (summed over the dims where this tensor was broadcast), and the right answer is not. Without the
    graph (a plain loss.backward()) cmp cannot read which factor the forward pass used: it names yours."""
    for name, u, grad in c.consumers[:1]:
        for key, values in c.in_scope:
            if values.shape != grad.shape or _is_constant(values):
                continue
            product = values * grad
            dims = _broadcast_dims(tuple(product.shape), tuple(c.d.shape))
            part = product if dims is None else _sum_to(product, *dims)
            if part.shape == c.d.shape and _max_abs(part) > 0 and _explains(part, c.d, c.ref):
                summed = "" if dims is None else ", summed to its shape"
                return (f"{c.dname} is `{key}` * d{name}{summed}, and that is not the right answer: the local "
                        f"derivative of `{name}` with respect to {c.tname} is not `{key}`; which tensor does the "
                        "forward pass use there?")
    return None


_POWERS = {1: "{}", -1: "1 / {}", 2: "{}**2", -2: "1 / {}**2", 0.5: "sqrt({})", -0.5: "1 / sqrt({})"}


def _rule_times_a_tensor(c):
    """Your gradient is the right one times a tensor of your notebook (not a gradient), or a power of one,
    broadcast entry by entry: a factor of a local derivative missing or extra, or a power off by one."""
    if c.d.numel() < 2:
        return None
    for key, values in c.in_scope:
        if key.startswith("d") or _is_constant(values):
            continue
        try:
            if torch.broadcast_shapes(tuple(values.shape), tuple(c.d.shape)) != tuple(c.d.shape):
                continue
        except RuntimeError:
            continue
        for power, written in _POWERS.items():
            factor = values ** power
            candidate = c.ref * factor
            if torch.isfinite(factor).all() and _max_abs(candidate) > 0 and _explains(candidate, c.d, c.ref):
                times = written.format(f"`{key}`")
                return (f"{c.dname} is the right answer times {times}, entry by entry: a factor that the chain "
                        "of local derivatives should not have, or one it lacks, or a power off by one (the "
                        "power rule lowers the power by one: d(x**p)/dx = p * x**(p-1))")
    return None


def _rule_broadcast_error(c):
    """The error is the same along a dim: a contribution broadcast along it is missing or wrong."""
    error = -c.error
    scale = _max_abs(error)
    for dim in range(error.dim()):
        if error.shape[dim] < 2:
            continue
        if _max_abs(error - error.mean(dim, keepdim=True)) <= LOOSE_FIT * scale:
            return (f"the error is the same along dim {dim}: a contribution that was broadcast along dim "
                    f"{dim} is missing or wrong (e.g. the branch through a sum or mean over dim {dim})")
    return None


def _rule_partly_right(c):
    """Right in some entries only, or non-zero / zero in a telling pattern."""
    close = torch.isclose(c.d, c.ref)
    counted = c.ref != 0  # an entry whose right gradient is 0 says little when it is right
    n_right, total = int((close & counted).sum()), int(counted.sum())
    zero_where_not = int(((c.d == 0) & (c.ref != 0)).sum())
    nonzero_where_zero = int(((c.d != 0) & (c.ref == 0)).sum())
    pattern = None
    if zero_where_not and not nonzero_where_zero:
        pattern = (f"{c.dname} is 0 in {_plural(zero_where_not, 'entry')} where the right gradient is not: a contribution "
                   "is missing there (a branch, or a factor of the local derivative that is 0 where it should not be)")
    elif nonzero_where_zero and not zero_where_not:
        pattern = (f"{c.dname} is non-zero in {_plural(nonzero_where_zero, 'entry')} where the right gradient is exactly "
                   "0: is the incoming gradient of the chain rule missing, or does gradient go to entries the "
                   "loss does not use?")
    if pattern is None and 0 < n_right < total:
        for name, u, grad in c.consumers:
            if grad.shape == c.d.shape and torch.equal(grad != 0, ~close):
                pattern = (f"the wrong entries are exactly those where d{name} is non-zero: the branch through "
                           f"`{name}` is missing or wrong")
                break
    hints = []
    if c.d.dim() >= 2 and _row_structured(close):
        rows = close.reshape(close.shape[0], -1).all(1)
        used = c.ref.reshape(close.shape[0], -1).any(1)  # rows that get a gradient
        others = int((~rows).sum())
        how = "all zero" if not c.d[~rows].any() else "wrong"
        pattern = None if how == "all zero" else pattern  # "0 where the right gradient is not" says it again
        among = (_plural(close.shape[0], "row") if used.all()
                 else f"the {_plural(int(used.sum()), 'row')} that get a gradient")
        wrong_rows = [f"{c.dname}[{i}]" for i in (~rows).nonzero().flatten().tolist()]
        if others == 1:
            tail = f"the other row, {wrong_rows[0]}, is {how}"
        elif others <= 3:
            tail = f"the other rows, {', '.join(wrong_rows[:-1])} and {wrong_rows[-1]}, are {how}"
        else:
            tail = f"the other rows are {how}"
        right_rows = int((rows & used).sum())
        hints.append(f"right in {right_rows:,} of {among}; {tail}" if right_rows else
                     f"wrong in every one of {among}" + ("" if how == "wrong" else f": they are {how}"))
    elif 0 < n_right < total and (pattern or n_right >= total / 4):
        among = "" if total == c.d.numel() else " where the right gradient is not 0"
        hints.append(f"right in {n_right:,} of {_plural(total, 'entry')}{among} ({100 * n_right / total:.0f}%)")
    if pattern:
        hints.append(pattern)
    return "\n".join(hints) or None


def _rule_wrong_values(c):
    check = ("check the local derivative and the gradient arriving from above" if c.consumers else
             "check your derivation one step at a time (a small case worked by hand helps)")
    if c.rounding is None:
        return f"wrong values: {check}"
    return (f"wrong values (off by up to {_of_the_largest_entry(c.relerr)}, far above {c.rounding[0]} rounding, "
            f"which stays near {c.rounding[1]:.0e}): {check}")


def _of_the_largest_entry(relerr):
    """'8.2e-01 of the largest entry of the right answer' ('times' from 1 up)."""
    return f"{relerr:.1e} {'of' if relerr < 1 else 'times'} the largest entry of the right answer"


def _plural(count, noun):
    """'1 entry', '32 entries', '2 rows'."""
    if count == 1:
        return f"1 {noun}"
    return f"{count:,} " + (noun[:-1] + "ies" if noun.endswith("y") else noun + "s")


def _row_structured(close):
    """True when every row (first dim) is either entirely right or entirely wrong, with some of each."""
    rows = close.reshape(close.shape[0], -1)
    all_right, all_wrong = rows.all(1), ~rows.any(1)
    return bool((all_right | all_wrong).all()) and bool(all_right.any()) and bool(all_wrong.any())


# ---------------------------------------------------------------------------
# The rule table: every diagnosis cmp or check_numerically can give, in the order they are tried.
# A check goes through the stages in this order; within "shape" and "value", the first rule that
# speaks gives the hint (its id is kept in result.diagnosis; a dtype slip with wrong values gets
# "dtype+" and the value rule's id). The other stages are steps of the pipeline itself (_check).


@dataclass(frozen=True)
class Rule:
    """One diagnosis: its id, when it speaks, what it says and why it stands where it does."""
    id: str
    stage: str          # input, shape, dtype, right, value or after: when in the pipeline it is tried
    when: str           # when it speaks
    says: str           # what it says, in short
    why_here: str       # why it stands where it does in the order
    check: object = None  # shape and value rules: a function(case) -> message, or None to stay silent
    local: bool = False   # it recognises a precise wrong formula for this very step: an error inherited from
                          # a wrong earlier gradient cannot mimic it, so it is kept below one (with a note)
    whole_answer: bool = False  # it rebuilds your whole answer from the forward pass, gradients that are right
                                # and the tensors it names: no other wrong gradient checked before is in it


RULES = [
    # input: before anything is compared
    Rule("not_done", "input", "the gradient is None or `...`", "not done yet: write your formula",
         "nothing to compare"),
    Rule("no_reference", "input", "t.grad is missing", "why (retain_grad, backward, requires_grad) and what to run",
         "without a reference there is nothing to compare with"),
    Rule("stale_state", "input", "the batch (Xb, Yb ...) or a checked tensor changed after loss.backward() last "
         "ran, and your answer is not the right one", "re-run the forward pass and loss.backward()",
         "the reference belongs to old tensors: judging the answer against it would mislead"),
    Rule("not_a_tensor", "input", "the gradient cannot be turned into a dense real tensor", "what it is instead",
         "nothing can be compared"),
    # shape: your gradient has another shape than the tensor
    Rule("another_tensors_gradient_shape", "shape", "your gradient is exactly the right gradient (.grad) of another "
         "tensor of your notebook", "which one: the wrong variable, or an order of gradients mixed up",
         "an exact fact that names the cause, before every guess from shapes", check=_shape_another_tensors_gradient),
    Rule("shape_from_an_earlier_gradient", "shape", "a gradient of a tensor computed from this one has the wrong "
         "shape, and broadcast with this tensor's shape it gives yours", "where the shape went wrong",
         "the cause, before the slips it makes this shape look like", check=_shape_from_an_earlier_gradient),
    Rule("keepdim", "shape", "the shapes differ by a size-1 dim only", "which size-1 dim is missing or extra, and which kind of sum leaves that shape",
         "the most common shape slip, and the cheapest to test", check=_shape_keepdim),
    Rule("transposed_shape", "shape", "your gradient, transposed, is the right answer",
         "it is the transpose: check the operand order", "a fact about the values, before guesses from shapes",
         check=_shape_transposed),
    Rule("size_1_dim_moved", "shape", "same dims apart from where the size-1 dim is, wrong values",
         "as when a sum runs over the wrong dim: along which dim was the tensor broadcast?", "after keepdim, which covers the right values in a wrong shape",
         check=_shape_size_1_dim_moved),
    Rule("reshaped", "shape", "the same numbers in another shape", "their order is right; only the shape is not",
         "after the more specific shape slips above", check=_shape_reshaped),
    Rule("sum_broadcast_dims", "shape", "the tensor broadcasts to your gradient's shape",
         "the tensor was broadcast, so the gradients of its uses add up; along which dims? (or: the values are "
         "wrong as well)",
         "a gradient of the forward pass's broadcast shape", check=_shape_sum_broadcast_dims),
    Rule("needs_broadcast", "shape", "your gradient broadcasts to the tensor's shape",
         "every entry needs its own gradient",
         "the opposite of the rule above", check=_shape_needs_broadcast),
    Rule("matmul_order", "shape", "2-d, and transposed it would have the right shape",
         "the matmul may be in the wrong order", "a guess from shapes only: after every fact",
         check=_shape_matmul_order),
    Rule("shape", "shape", "any other shape", "a gradient has the shape of its tensor; along which dim was it "
         "broadcast?", "the last resort",
         check=_shape_other),
    # dtype: right shape, other dtype
    Rule("dtype", "dtype", "the dtype differs from t.grad's", "which dtype to use, and whether the values are right",
         "after the shape (a shape slip is more telling); wrong values add a value rule's hint"),
    # right: accepted answers that are not bit-identical
    Rule("rounding", "right", "allclose but not bit-identical", "only float rounding, not a mistake",
         "an accepted answer needs no diagnosis"),
    Rule("close_not_rounding", "right", "allclose, but more than 1e-5 of the largest entry off in float32",
         "close enough for allclose, but not only rounding; an earlier wrong gradient it is computed from, if any",
         "as rounding: allclose decides the verdict, the hint says what it hides (an inherited error or a small slip)"),
    Rule("zero_up_to_rounding", "right", "allclose, and the differences are large relative to the tiny right answer",
         "every value is tiny: right if the loss does not depend on the tensor", "as rounding"),
    Rule("branch_invisible", "right", "allclose, and a checked tensor computed from this one has a gradient "
         "that is zero up to rounding", "the numbers cannot tell whether that branch is in your formula",
         "an accepted answer, but one whose branch check is blind"),
    Rule("zero_answer_is_right", "right", "your gradient is all zeros, the right one is zero up to rounding (but "
         "above allclose's atol)", "that is right", "before all_zeros, which would call it unfinished"),
    Rule("probably_correct", "right", "check_numerically: rel err between 1e-7 and 1e-4",
         "fine for kinks; for a smooth function expect below 1e-7", "as rounding"),
    Rule("blurred_estimate", "right", "check_numerically: f computes in float32 (or lower), or an estimate with "
         "a step h/100 agrees with your dx", "the estimate, not your dx, is what is off: why",
         "with the other verdicts on a right-looking answer: the value rules would read the estimate as "
         "the right answer"),
    # value: right shape and dtype, wrong values
    Rule("nonfinite", "value", "your gradient has NaN or inf, the right one has none",
         "how many, and where they come from",
         "nothing else can be measured on such numbers", check=_rule_nonfinite),
    Rule("reference_nonfinite", "value", "t.grad itself has NaN or inf",
         "the forward or backward pass blew up",
         "as above, for the reference", check=_rule_reference_nonfinite),
    Rule("all_zeros", "value", "your gradient is all zeros",
         "did you forget to fill it in?",
         "no factor or pattern can be read from zeros", check=_rule_all_zeros),
    Rule("right_answer_is_zero", "value", "the right gradient is rounding noise, yours is not",
         "the contributions should cancel",
         "before factors: a factor of noise means nothing", check=_rule_right_answer_is_zero),
    Rule("noise_around_zero", "value", "the right gradient is rounding noise, and yours is too (tiny next to the "
         "gradients flowing in), only larger", "both are zero up to rounding: the numbers cannot judge a factor or "
         "sign, the formula's structure can", "after right_answer_is_zero, before factors and 'right in 94%': "
         "entries of noise say nothing", check=_rule_noise_around_zero),
    Rule("transposed", "value", "square, and its transpose is the right answer",
         "it is the transpose",
         "an exact fact about the values", check=_rule_transposed),
    Rule("constant_factor", "value", "your gradient is k times the right one",
         "k, and what it means (a mean, n-1, a sign, a power rule)",
         "the commonest slip; exact", check=_rule_constant_factor),
    Rule("almost_right", "value", "rel err below 1e-5",
         "almost right: another dtype or order?",
         "after exact factors (a factor like 1.000001 is rounding-like too)", check=_rule_almost_right),
    Rule("wrong_order", "value", "your numbers are the right ones, rearranged", "the right numbers in the wrong "
         "places: the order of dims or indices", "exact; before patterns that a rearrangement also shows",
         check=_rule_wrong_order),
    Rule("constant_offset", "value", "every entry is off by the same amount", "how much (ones instead of zeros?)",
         "exact; before the broadcast pattern, of which it is the simplest case", check=_rule_constant_offset),
    Rule("gradient_one_step_back", "value", "your gradient is the right gradient of a tensor of your notebook that "
         "this one is computed from (its .grad known)", "the next step back's gradient: another variable's, or one "
         "written over in place after it was used", "exact, read from autograd's graph; before the local formulas, "
         "which would read the extra step as a wrong factor", check=_rule_gradient_one_step_back, local=True),
    Rule("another_tensors_gradient", "value", "your gradient is exactly the right gradient (.grad) of another "
         "tensor of your notebook", "which one: the wrong variable, or an order of gradients mixed up",
         "exact; after gradient_one_step_back, which names the in-place write that also gives this",
         check=_rule_another_tensors_gradient),
    Rule("summed_over_another_dim", "value", "a broadcast tensor's gradient summed over the other dim of a "
         "square product", "the copies' gradients add up along the dim the broadcast copied it over",
         "needs the graph; before swapped_operand, which can fit the same numbers with a transposed tensor",
         check=_rule_summed_over_another_dim, local=True),
    Rule("swapped_operand", "value", "the step into a checked product (a * b, a @ b) fits exactly with another "
         "tensor of your notebook in place of the one the forward pass saved, or another gradient of your notebook "
         "in place of the product's own", "which tensor was used, which belongs there, and the rule it breaks",
         "exact, read from autograd's graph; before the patterns it also shows", check=_rule_swapped_operand,
         local=True),
    Rule("square_transpose", "value", "your gradient is a product of two of your notebook's matrices, and the "
         "same product with the square one transposed is the right answer", "which product, and which transposed",
         "exact; the shape rules cannot see a transpose of a square matrix", check=_rule_square_transpose,
         local=True),
    Rule("wrong_elementary_derivative", "value", "the step into a checked exp, tanh or power fits exactly with a "
         "known wrong local derivative", "which one, and the right rule", "exact, read from autograd's graph",
         check=_rule_wrong_elementary_derivative, local=True),
    Rule("product_with_a_tensor", "value", "your gradient is one of your notebook's tensors times the gradient of "
         "the checked tensor just above (summed to this shape), and the right answer is not",
         "which tensor you multiplied by, and that it is not the local derivative",
         "exact, for when the graph was freed (swapped_operand reads the right factor from it)",
         check=_rule_product_with_a_tensor, local=True),
    Rule("factor_per_slice", "value", "a factor that is the same along one dim and changes along another",
         "a per-row or per-column quantity is missing or extra",
         "a constant factor is a special case, tried first", check=_rule_factor_per_slice),
    Rule("added_instead_of_multiplied", "value", "your gradient is local derivative + incoming gradient",
         "the chain rule multiplies",
         "a precise formula for this step", check=_rule_added_instead_of_multiplied, local=True),
    Rule("incoming_only", "value", "your gradient is the incoming gradient, unchanged",
         "the chain rule's other factor, the local derivative, is missing",
         "a precise formula for this step", check=_rule_incoming_only, local=True),
    Rule("local_derivative_only", "value", "your gradient is the local derivative alone",
         "the chain rule's other factor, the gradient arriving from above, is missing",
         "a precise formula for this step", check=_rule_local_derivative_only, local=True),
    Rule("tanh_from_its_input", "value", "tanh's derivative taken at its input, 1 - x**2",
         "1 - y**2 uses tanh's output",
         "a precise formula for this step", check=_rule_tanh_from_its_input, local=True),
    Rule("tanh_slope_misread", "value", "tanh's derivative as 1 - tanh(y)**2 (tanh applied twice) or (1 - y)**2",
         "the slope is evaluated wrong (without the formula)",
         "a precise formula for this step", check=_rule_tanh_slope_misread, local=True),
    Rule("epsilon_left_out", "value", "(x + eps)**p differentiated without the eps",
         "the eps the forward pass adds is left out",
         "a precise formula for this step", check=_rule_epsilon_left_out, local=True),
    Rule("power_rule_added", "value", "p + x**(p-1) instead of p * x**(p-1)",
         "the power rule multiplies",
         "a precise formula for this step", check=_rule_power_rule_added, local=True),
    Rule("label_term_missing", "value", "wrong at one entry per row (the label) by the same amount",
         "the -l_y part of the loss",
         "a precise formula for cross-entropy", check=_rule_label_term_missing, local=True),
    Rule("whole_label_columns", "value", "wrong in whole columns, the ones the labels name (perhaps except at "
         "each row's label), by one amount",
         "an index such as [:, Yb] picks whole columns", "a precise pattern of an indexing slip",
         check=_rule_whole_label_columns, local=True),
    Rule("label_and_rest_offsets", "value", "off by one amount at every label entry and another at every other "
         "entry", "the values put at the label and elsewhere (a target) are wrong", "after the label term alone",
         check=_rule_label_and_rest_offsets, local=True),
    Rule("softmax_over_the_wrong_dim", "value", "your probabilities (read off your answer as the right formula "
         "would hold them) are exp(t) times a factor per row and per column, and sum to 1 along the other dim",
         "the probabilities are normalised along the other dim",
         "a precise formula for cross-entropy", check=_rule_softmax_over_the_wrong_dim, local=True),
    Rule("row_sums_along_columns", "value", "a square tensor: off by a softmax whose row sums divide the columns",
         "each row is divided by another row's sum, as with the sums as a (n,) vector",
         "a precise formula for cross-entropy", check=_rule_row_sums_along_columns, local=True),
    Rule("variance_term", "value", "fused BatchNorm: wrong by a multiple of x̂ per column",
         "the variance part: missing, n-1, a sign or a size",
         "a precise formula for BatchNorm", check=_rule_variance_term, local=True),
    Rule("normalisation_slip", "value", "a fused BatchNorm or LayerNorm gradient (the right answer is the fused "
         "formula of a tensor of your notebook): yours is that formula with a sum over the other dim, a tensor not "
         "summed in place of a sum, the other dim's n (in some places or all), n/(n-1) left out, or the gain outside "
         "sums along which it changes", "which of these slips, as a concept or a question (no fix)",
         "exact; after variance_term, whose Bessel message is the more telling one for BatchNorm's columns",
         check=_rule_normalisation_slip, local=True, whole_answer=True),
    Rule("branch_off", "value", "what is missing is a checked gradient, broadcast",
         "the branch through that tensor is missing or off",
         "needs checked neighbours; after the formulas for this step", check=_rule_branch_off),
    Rule("one_path_only", "value", "your gradient is a checked gradient of its shape times a factor per slice, "
         "and the right one is not", "only the path through that tensor is there; the others are missing",
         "needs checked neighbours; after branch_off, which names the missing branch", check=_rule_one_path_only),
    Rule("branch_per_slice", "value", "what is missing is a checked gradient of the same shape times a factor per "
         "slice", "the branch through that tensor is missing or has the wrong local derivative",
         "as above, for the error", check=_rule_branch_per_slice),
    Rule("same_local_derivative_for_a_sum", "value", "a sum's local derivative taken as a multiple of a tensor",
         "a sum's local derivative holds no tensor",
         "a precise formula for this step", check=_rule_same_local_derivative_for_a_sum, local=True),
    Rule("contributions_in_wrong_rows", "value", "an embedding table (its indices and gradients found in your "
         "notebook) whose column sums are right",
         "every use was added, some to the wrong rows (indices and gradients paired wrongly)", "before rows_overwritten, which needs lost contributions",
         check=_rule_contributions_in_wrong_rows),
    Rule("rows_overwritten", "value", "an embedding table: some rows right, each other row exactly one of its "
         "contributions (the indices and gradients found in your notebook)",
         "repeated indices kept one write",
         "after the exact rules: rows too small can have other causes", check=_rule_rows_overwritten),
    Rule("term_sizes", "value", "fused BatchNorm: your gradient is its three terms (direct, through the mean, "
         "through the variance, built from a checked tensor a * x̂ + b) each times a constant, not all 1",
         "which terms have which size (32/31: n-1 where it divides by n)",
         "a precise formula for BatchNorm; after the rules that read a missing branch from checked neighbours, "
         "before broadcast_error, which says only where", check=_rule_term_sizes, local=True),
    Rule("times_a_tensor", "value", "your gradient is the right one times a tensor of your notebook (not a "
         "gradient) or a power of one (1, -1, 2, -2, 1/2, -1/2), broadcast", "which one: a factor extra or missing, or "
         "a power off by one", "exact; after the precise formulas and the branch rules, which name the cause when "
         "they fit", check=_rule_times_a_tensor),
    Rule("broadcast_error", "value", "the error is the same along a dim",
         "a broadcast contribution is missing or wrong",
         "a pattern, not a formula: after them", check=_rule_broadcast_error),
    Rule("one_entry_right_per_row", "value", "right at one entry per row, every other entry off by one amount",
         "a term of one entry given to all, or one of all kept at one",
         "a precise pattern, after every rule that names a cause for it (the label rules, a broadcast)", check=_rule_one_entry_right_per_row),
    Rule("partly_right", "value", "right in some entries, or zero / non-zero in a telling pattern",
         "where it is right, and what the pattern says",
         "a description, not a cause: near the end", check=_rule_partly_right),
    Rule("wrong_values", "value", "nothing above fits",
         "check the local derivative and the gradient arriving from above",
         "the last resort", check=_rule_wrong_values),
    # after: added to a result
    Rule("unfixed_shape", "after", "a gradient checked before in a wrong shape is still one of your variables, and "
         "broadcast to this tensor's shape its numbers are wrong", "its name and shapes: fix its shape first",
         "added to a loose value diagnosis (a local one fits without it); before wrong_upstream, which then keeps "
         "it and adds a note"),
    Rule("upstream_only", "after", "a wrong gradient checked before is computed from this tensor, all of this "
         "gradient flows through it, and the right backward step applied to your gradient of it gives your answer",
         "your step is right: fix the earlier one first",
         "read from autograd's graph (needs retain_graph=True); before the rules below"),
    Rule("step_wrong_too", "after", "as above, but the right step applied to your earlier gradient does not give "
         "your answer", "fix the earlier one, and what is wrong with your step (a value rule, measured against "
         "that step)", "replaces the diagnosis against the right answer, which may describe only the inherited "
         "error; kept when only that one explains your answer and the step's says just what differs"),
    Rule("wrong_upstream", "after", "a wrong gradient checked before is computed from this tensor, and its error is "
         "large enough to explain this one (and the rules above cannot be used: no graph)",
         "your earlier gradient is k times the right one: 'fix it first' when yours is k times the right one too "
         "(what a right step gives when all of the gradient flows through it), else 'another path, or your step is "
         "wrong as well'; when it is no such multiple: its error 'may' be all or part of this one's",
         "replaces a loose value diagnosis, which may describe only the inherited error; a local one is kept, "
         "with 'if your formula uses its gradient, fix it first' (the inherited error can look like the slip)"),
    Rule("internal_error", "after", "cmp itself failed", "a bug in cmp, not necessarily in your gradient",
         "a safety net around everything"),
]
RULE_IDS = [rule.id for rule in RULES]
_RULES_BY_ID = {rule.id: rule for rule in RULES}


def _diagnose(stage, case):
    """(rule id, message) of the first rule of a stage that has something to say."""
    for rule in RULES:
        if rule.stage == stage and rule.check is not None:
            message = rule.check(case)
            if message:
                return rule.id, message
    raise AssertionError("the last rule of a stage always speaks")


# ---------------------------------------------------------------------------
# summary


@dataclass
class Summary:
    """A table of check results: print it, or show it in Jupyter (HTML)."""
    results: list

    @property
    def correct(self):
        return sum(1 for result in self.results if result)

    @property
    def total(self):
        return len(self.results)

    def count_line(self):
        """'17 of 26 correct', and which wrong gradient to fix first when that is clear."""
        line = f"{self.correct} of {self.total} correct"
        wrong_values = [r.name for r in self.results if r.status == Status.WRONG and not r.values_right]
        wrong_form = [r.name for r in self.results if r.status == Status.WRONG and r.values_right]
        parts = []
        first = self._first_to_fix()
        if first and len(wrong_values) > 1:
            parts.append(f"fix {first} first: the other wrong gradients are computed from its gradient")
        elif len(wrong_values) == 1:
            parts.append(f"fix {wrong_values[0]}")
        elif wrong_values:
            parts.append("wrong: " + ", ".join(wrong_values))
        if wrong_form:
            parts.append("right numbers in the wrong shape or dtype: " + ", ".join(wrong_form))
        unconfirmed = [r.name for r in self.results if _unconfirmed(r)]
        if unconfirmed:
            parts.append("accepted, but the numbers cannot confirm the formula (ok?): " + ", ".join(unconfirmed))
        return "; ".join([line] + parts)

    def _checked(self):
        return [r for r in self.results if r.status != Status.NOT_DONE]

    def _not_done_line(self):
        """One line for every gradient not written yet, or '' when there is none."""
        names = [r.name for r in self.results if r.status == Status.NOT_DONE]
        return f"not done yet ({len(names)}): {', '.join(names)}" if names else ""

    def _first_to_fix(self):
        """The one wrong gradient (with wrong numbers) that all others with wrong numbers come from, or None."""
        wrong = [r.name for r in self.results if r.status == Status.WRONG and not r.values_right]
        return _root_of_all(wrong) if len(wrong) > 1 else (wrong[0] if wrong else None)

    def __str__(self):
        first = self._first_to_fix()
        checked = self._checked()
        if not checked:
            return "\n".join(line for line in (self._not_done_line(), self.count_line()) if line)
        rows = [("", "name", "status", "maxdiff", "hint")]
        for r in checked:
            hint = _short(_summary_hint(r))
            rows.append((_mark(r, r.name == first), r.name, str(r.status), f"maxdiff: {_measured(r.maxdiff)}", hint))
        widths = [max(len(row[i]) for row in rows) for i in range(4)]
        lines = [" | ".join(cell.ljust(w) for cell, w in zip(row[:4], widths)) + " | " + row[4]
                 for row in rows]
        lines.insert(1, "-" * len(lines[0]))
        lines += [self._not_done_line(), self.count_line()]
        return "\n".join(line.rstrip() for line in lines if line)

    __repr__ = __str__

    def _repr_html_(self):
        first = self._first_to_fix()
        cell = 'style="text-align:left; padding:2px 8px"'
        rows = []
        for r in self._checked():
            weight = "font-weight:bold; " if r.name == first else ""
            colour = "#1e7e34" if r else "#b00020"
            rows.append(
                f'<tr style="{weight}"><td {cell}><span style="color:{colour}">{_mark(r, r.name == first)}</span></td>'
                f"<td {cell}><code>{html.escape(r.name)}</code></td><td {cell}>{html.escape(r.status)}</td>"
                f"<td {cell}>maxdiff: {_measured(r.maxdiff)}</td>"
                f"<td {cell}>{html.escape(_summary_hint(r))}</td></tr>")
        header = "".join(f"<th {cell}>{title}</th>" for title in ("", "name", "status", "maxdiff", "hint"))
        not_done = self._not_done_line()
        footer = f'<p style="text-align:left">{html.escape(not_done)}</p>' if not_done else ""
        table = f"<table><tr>{header}</tr>{''.join(rows)}</table>" if rows else ""
        return (f'<div style="text-align:left"><p><b>{html.escape(self.count_line())}</b></p>'
                f"{table}{footer}</div>")


def _root_of_all(wrong):
    """The wrong check whose tensor every other wrong check's tensor was computed from, or None."""
    for name in wrong:
        t = _tensors.get(name)
        if all(other == name or _steps_back(t, _tensors.get(other)) for other in wrong):
            return name
    return None


# Accepted answers whose numbers cannot confirm the formula: summary() marks them "ok?" and shows why.
# (Not a gradient that is rounding noise, like db1's: "zero up to rounding" is its right answer.)
_UNCONFIRMED = ("branch_invisible", "close_not_rounding")


def _unconfirmed(result):
    return bool(result) and result.diagnosis in _UNCONFIRMED


def _summary_hint(result):
    """The hint column of summary(): nothing for a right answer; what was measured for a wrong one; for one
    the numbers cannot confirm, the warning ("the numbers cannot tell whether ...")."""
    if result and not _unconfirmed(result):
        return ""
    if result.diagnosis == "branch_invisible":  # its first clause only says "rounding": the warning comes after
        return result.hint.split(", so ", 1)[-1]
    return _hint_line(result)


def _mark(result, first_to_fix=False):
    """A mark that any font can show: ok for a right gradient (ok? when its numbers cannot confirm the formula),
    X for a wrong one (X <- first for the one to fix first)."""
    if result:
        return "ok?" if _unconfirmed(result) else "ok"
    return "X <- first" if first_to_fix else "X"


def _short(hint, width=70):
    if not hint:
        return ""
    first = hint.split("\n")[0]
    return first if len(first) <= width else first[:width - 3] + "..."


def summary(results=None):
    """A Summary of the given CheckResults, or of every check made so far (one per name)."""
    if results is None:
        results = _results.values()
    return Summary(list(results))


# ---------------------------------------------------------------------------
# Checking without autograd: finite differences (as in cs231n)


def numerical_vjp(f, x, dout, h=1e-5):
    """Estimate the gradient of sum(f(x) * dout) with respect to x by centred finite differences.

    Everything is computed in float64 on a copy of x (your tensor is not changed);
    f must accept a float64 tensor. Returns a float64 tensor shaped like x.
    """
    x = torch.as_tensor(x).detach().to(torch.float64, copy=True).contiguous()
    dout = torch.as_tensor(dout).detach().to(torch.float64)
    grad = torch.zeros_like(x)
    with torch.no_grad():
        for i in range(x.numel()):
            x_plus, x_minus = x.clone(), x.clone()
            x_plus.view(-1)[i] += h
            x_minus.view(-1)[i] -= h
            f_plus = torch.as_tensor(f(x_plus)).to(torch.float64)
            f_minus = torch.as_tensor(f(x_minus)).to(torch.float64)
            grad.view(-1)[i] = ((f_plus - f_minus) * dout).sum() / (2 * h)
    return grad


def rel_error(a, b):
    """cs231n's relative error: max over entries of |a - b| / max(1e-8, |a| + |b|)."""
    a = torch.as_tensor(a).detach().to(torch.float64)
    b = torch.as_tensor(b).detach().to(torch.float64)
    if a.numel() == 0 and b.numel() == 0:
        return 0.0
    return ((a - b).abs() / (a.abs() + b.abs()).clamp(min=1e-8)).max().item()


def check_numerically(name, f, x, dout, dx, *, h=1e-5, strict=None, record=True, explain=None):
    """Compare your dx (the gradient of sum(f(x) * dout) w.r.t. x) with finite differences.

    Prints `name | rel err: ... | verdict`, with cs231n's thresholds on rel_error:
        below 1e-7          "correct"
        1e-7 to 1e-4        "probably correct" (fine for kinks like relu or max; for a smooth
                            function in float64 expect below 1e-7)
        1e-4 to 1e-2        "suspicious"
        above 1e-2          "wrong"
    The returned CheckResult is truthy when rel err < 1e-4 (correct or probably correct).
    Of a suspicious or wrong dx it prints what it measured, and why() the rest, as cmp does (explain=
    as for cmp). What it says about the estimate itself (blurred by float32 or by a kink) comes at once.
    Strict mode and record= work as for cmp. Errors raised by f itself are not caught (f must accept float64).
    """
    name = str(name)
    result = _check_numerically(name, f, x, dout, dx, h)
    _forget_held_back(name)
    print(_report(result, explain))
    if record:
        _record(result, None)
    _raise_if_strict(result, strict)
    return result


def _diagnose_safely(stage, case):
    """_diagnose, with cmp's safety net: a bug in a rule must not look like a bug in your answer."""
    try:
        return _diagnose(stage, case)
    except Exception as err:
        return "internal_error", (f"internal error in cmp ({type(err).__name__}: {err}): this is a bug in cmp, "
                                  "not necessarily in your gradient; please report it")


def _power_of_ten(x):
    """'1e-4' for 0.0001."""
    return f"1e{round(math.log10(x))}"


def _numerical_result(name, maxdiff, relerr, hint, status, rule=None):
    return CheckResult(name, False, status in PASSING, maxdiff, relerr, hint, status, kind="numerical",
                       diagnosis=rule)


def _check_numerically(name, f, x, dout, dx, h):
    if dx is None or dx is Ellipsis:
        what = "still None" if dx is None else "still `...`"
        return _numerical_result(name, math.nan, math.nan,
                                 f"not done yet: the dx you passed is {what}; fill it in", Status.NOT_DONE,
                                 "not_done")
    d, problem = _as_tensor(dx)
    if problem:
        return _numerical_result(name, math.nan, math.nan, problem, Status.WRONG, "not_a_tensor")
    d = d.detach()
    numerical = numerical_vjp(f, x, dout, h)
    namespace = _caller_namespace()
    dname, tname = _numerical_names(x, dx, namespace)
    if d.shape != numerical.shape:
        rule, hint = _diagnose_safely("shape", ShapeCase(d, numerical, dname, tname))
        return _numerical_result(name, math.nan, math.nan, hint, Status.WRONG, rule)
    d64 = d.to(torch.float64)
    err = rel_error(d64, numerical)
    maxdiff = _max_abs(d64 - numerical)
    if not math.isfinite(err) or err >= NUMERICAL_WRONG:
        status = Status.WRONG
    elif err >= NUMERICAL_PASS:
        status = Status.SUSPICIOUS
    elif err >= NUMERICAL_CORRECT:
        status = Status.PROBABLY_CORRECT
    else:
        status = Status.CORRECT
    hints, rule = [], None
    if status == Status.PROBABLY_CORRECT:
        rule = "probably_correct"
        hints.append("fine if the function has kinks (relu, max, abs); for a smooth function like tanh "
                     f"expect below {_power_of_ten(NUMERICAL_CORRECT)}")
        if d.dtype != torch.float64:
            hints.append(f"dx is {_dtype_name(d)}, whose rounding alone gives errors of this size; "
                         "compute it in float64 for a sharper check")
    elif status in (Status.SUSPICIOUS, Status.WRONG):
        x64 = torch.as_tensor(x).detach().to(torch.float64)
        with torch.no_grad():
            out = torch.as_tensor(f(x64.clone())).detach()
        blurred = _blurred_estimate(f, x, dout, d64, h, out)
        if blurred:
            return _numerical_result(name, maxdiff, err, blurred, status, "blurred_estimate")
        relerr_max = maxdiff / max(_max_abs(numerical), _TINY)
        dout64 = torch.as_tensor(dout).detach().to(torch.float64)
        out = out.to(torch.float64)
        incoming = ((_incoming_name(dout, namespace), out, dout64),) if dout64.shape == d64.shape == out.shape else ()
        case = ValueCase(d64, numerical, x64, relerr_max, dname, tname, _sizes_of({"x": x64}), incoming)
        rule, hint = _diagnose_safely("value", case)
        # here the reference is a finite-difference estimate, not autograd's gradient: call it that
        hints.append(hint.replace("the right gradient", "the estimate").replace("the right answer", "the estimate"))
        if status == Status.SUSPICIOUS:
            hints.append(f"probably a mistake: a correct gradient agrees to better than {_power_of_ten(NUMERICAL_PASS)}")
    return _numerical_result(name, maxdiff, err, "\n".join(hints) or None, status, rule)


def _variables_holding(value, namespace):
    """The names of your variables that hold `value` itself (not a copy)."""
    return [key for key, held in namespace.items() if held is value and key.isidentifier()]


def _numerical_names(x, dx, namespace):
    """How check_numerically's messages call dx and x: your variables' names for them (dx_col and x_col), when
    there is one each (a gradient's starting with d); else dx and x."""
    dxs = [key for key in _variables_holding(dx, namespace) if key.startswith("d")]
    xs = [key for key in _variables_holding(x, namespace) if not key.startswith("_")]
    return (dxs[0] if len(dxs) == 1 else "dx"), (xs[0] if len(xs) == 1 else "x")


def _incoming_name(dout, namespace):
    """What messages call f(x)'s gradient `dout` ("d" + this): your variable's name for it (dy -> "y"), else "out"."""
    yours = [key for key in _variables_holding(dout, namespace) if key.startswith("d") and key[1:].isidentifier()]
    return yours[0][1:] if yours else "out"


def _blurred_estimate(f, x, dout, d64, h, out):
    """Why the estimate, not your dx, may be what is off: f computes in low precision, or a smaller
    step h makes the estimate agree with dx (a kink within h of an input). None if neither."""
    if out.is_floating_point() and out.dtype != torch.float64:
        return (f"f returns {_dtype_name(out)}, not float64: its rounding alone blurs the finite-difference "
                "estimate by about this much, so this check cannot tell a right dx from a wrong one; "
                "make f compute in float64 first")
    smaller = h / 100
    if rel_error(d64, numerical_vjp(f, x, dout, smaller)) < NUMERICAL_CORRECT:
        return (f"with a step 100 times smaller (h = {smaller:.0e}) the estimate agrees with your dx "
                "(rel err below 1e-7): the first estimate was blurred, e.g. by a kink (relu, max, abs) "
                "within h of an input, and your dx is probably right")
    return None
