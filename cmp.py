"""Check a hand-written gradient against PyTorch's: `from cmp import cmp, summary`.

    cmp("logprobs", dlogprobs, logprobs)

compares your `dlogprobs` with `logprobs.grad` (filled in by `loss.backward()`)
and prints one line, with the same columns as in the lecture:

    logprobs        | exact: True  | approximate: True  | maxdiff: 0.0e+00

exact        every number is bit-identical (and the shape and dtype are those of t.grad)
approximate  torch.allclose(dt, t.grad) with its default tolerances (cmp's atol= can widen the
             absolute one), and the same shape and dtype
maxdiff      the largest absolute difference (nan when the shapes can't be compared)

When there is something to say, lines starting with "  -> " follow: what looks
wrong and how to fix it (a sum over the wrong dim, a missing 1/n, a transposed
matrix, a missing branch ...), or why an answer that is not exact is still fine.

Every call returns a `CheckResult`; `bool(result)` is the "approximate" column,
so a gradient with the right values but the wrong shape or dtype counts as wrong
(the lecture's cmp accepted a (64,) gradient for a (1, 64) tensor: we don't).
The `status` of a result is one of
    "exact"         bit-identical to t.grad
    "rounding"      not bit-identical, but allclose: float rounding, not a mistake
    "wrong"         wrong values, shape or dtype (the hint says which)
    "not done"      the gradient is still None or `...`
    "no reference"  t.grad is missing (retain_grad() or loss.backward() forgotten)
Every result is remembered by name: `summary()` shows them all in one table.

Strict mode (for solutions and tests): `cmp(..., strict=True)` or the
environment variable CMP_STRICT=1 make every result that is not right
(including "not done") raise a `GradientError`.

Without autograd: `numerical_vjp` estimates a gradient with finite
differences and `check_numerically` compares yours with it.

Only the numbers after "maxdiff: " and "rel err: " depend on the machine;
everything else this module prints is the same on every run.
"""
import html
import math
import os
import re
import warnings
from dataclasses import dataclass
from fractions import Fraction

import torch

__all__ = [
    "cmp", "summary", "reset", "CheckResult", "Summary", "GradientError",
    "numerical_vjp", "rel_error", "check_numerically",
]

# The statuses of a CheckResult.
EXACT = "exact"                # bit-identical to t.grad
ROUNDING = "rounding"          # not bit-identical, but allclose: float rounding, not a mistake
WRONG = "wrong"                # wrong values, shape or dtype (the hint says which)
NOT_DONE = "not done"          # the gradient is still None or `...`
NO_REFERENCE = "no reference"  # t.grad is missing, so there is nothing to compare with
# check_numerically's verdicts (it also uses "wrong" and "not done"; see its docstring):
CORRECT = "correct"
PROBABLY_CORRECT = "probably correct"
SUSPICIOUS = "suspicious"

PASSING = (EXACT, ROUNDING, CORRECT, PROBABLY_CORRECT)

_TINY = 1e-30  # keeps relative errors finite when the reference is all zeros


class GradientError(AssertionError):
    """Raised in strict mode when a gradient is wrong or not done yet."""


@dataclass
class CheckResult:
    """The outcome of one check. `bool(result)` is True when the gradient is right.

    name     the name you passed to cmp
    exact    bit-identical to t.grad (same shape and dtype)
    approx   torch.allclose(dt, t.grad) with the same shape and dtype as t.grad
    maxdiff  largest |dt - t.grad| (nan when it cannot be computed)
    relerr   maxdiff / largest |t.grad| (for check_numerically: cs231n's rel_error)
    hint     what to fix ("wrong", "not done", "no reference"), or why the differences are only
             rounding ("rounding"); None for "exact" and a correct numerical check.
             Several sentences are separated by newlines.
    status   one of "exact", "rounding", "wrong", "not done", "no reference"
             (check_numerically: "correct", "probably correct", "suspicious", "wrong", "not done")
    kind     "cmp" or "numerical" (made by check_numerically; then exact is always False)
    """
    name: str
    exact: bool
    approx: bool
    maxdiff: float
    relerr: float
    hint: str = None
    status: str = WRONG
    kind: str = "cmp"

    def __bool__(self):
        return bool(self.approx)

    def __str__(self):
        """The text cmp prints: the main line and the hint lines."""
        return _report(self)

    def _ipython_display_(self):
        """In Jupyter, cmp has already printed the result: don't show it a second time."""


# ---------------------------------------------------------------------------
# The registry: every check is remembered, so summary() can list them all.

_registry = {}


def _record(result):
    """Remember a result under its name; a new check of the same name replaces the old one."""
    _registry[result.name] = result


def _first_wrong_before(name):
    """The first recorded check, before `name` in the registry's order, whose gradient is wrong."""
    for earlier in _registry.values():
        if earlier.name == name:
            return None
        if earlier.status == WRONG:
            return earlier.name
    return None


def reset():
    """Forget all checks made so far."""
    _registry.clear()


# ---------------------------------------------------------------------------
# cmp


def cmp(name, dt, t, *, strict=None, record=True, atol=1e-8):
    """Compare your gradient `dt` with `t.grad`, print the verdict and return a CheckResult.

    strict: True raises GradientError when the gradient is wrong or not done yet;
    None (the default) reads the environment variable CMP_STRICT at each call.
    record: False keeps this check out of summary() (for a side experiment).
    atol: the absolute tolerance of torch.allclose (its default, 1e-8). Raise it only for a
          gradient that is zero up to rounding, like b1's before BatchNorm, whose rounding
          noise can exceed 1e-8.
    """
    name = str(name)
    try:
        result = _check(name, dt, t, atol)
    except Exception as err:  # a safety net: cmp reports, it never crashes
        result = CheckResult(name, False, False, math.nan, math.nan,
                             f"cmp could not compare these ({type(err).__name__}): "
                             "dt should be a torch tensor shaped like t", WRONG)
    if result.status == WRONG:
        earlier = _first_wrong_before(name)
        if earlier:
            result.hint += (f"\n`{earlier}`, checked before this one, is wrong too: fix it first, "
                            "its error flows into every gradient computed from it")
    print(_report(result))
    if record:
        _record(result)
    _raise_if_strict(result, strict)
    return result


def _report(result):
    """The main line in the lecture's layout, then one '  -> ' line per hint sentence."""
    if result.kind == "numerical":
        lines = [f"{result.name:15s} | rel err: {result.relerr:.1e} | {result.status}"]
    else:
        lines = [f"{result.name:15s} | exact: {str(result.exact):5s} | "
                 f"approximate: {str(result.approx):5s} | maxdiff: {result.maxdiff:.1e}"]
    if result.hint:
        lines += ["  -> " + line for line in result.hint.split("\n")]
    return "\n".join(lines)


def _is_strict(strict):
    """strict=True/False wins; strict=None reads CMP_STRICT (1, true, yes or on)."""
    if strict is None:
        return os.environ.get("CMP_STRICT", "").strip().lower() in ("1", "true", "yes", "on")
    return bool(strict)


def _raise_if_strict(result, strict):
    if _is_strict(strict) and not result:
        raise GradientError(f"{result.name}: {result.status}: {result.hint}")


def _check(name, dt, t, atol):
    """Work out the CheckResult for cmp (prints nothing)."""
    if dt is None or dt is Ellipsis:
        what = "still None" if dt is None else "still `...`"
        return _fail(name, NOT_DONE, f"not done yet: the gradient is {what}; write your formula for it")

    ref, problem = _reference(t)
    if problem:
        return _fail(name, NO_REFERENCE, problem)

    d, problem = _as_tensor(dt)
    if problem:
        return _fail(name, WRONG, problem)
    d = d.detach().to(ref.device)

    maxdiff, relerr = _differences(d, ref)
    if d.shape != ref.shape:
        return CheckResult(name, False, False, maxdiff, relerr, _shape_hint(d, ref), WRONG)

    hints = []
    if d.dtype != ref.dtype:
        right_values = torch.allclose(d.to(ref.dtype), ref, atol=atol) or (
            d.is_floating_point() and torch.allclose(d, ref.to(d.dtype), atol=atol))  # e.g. float16: compare in float16
        hints.append(_dtype_hint(d, ref, right_values))
        if not right_values:
            hints += _value_hints(d.to(torch.float64), ref.to(torch.float64), relerr)
        return CheckResult(name, False, False, maxdiff, relerr, "\n".join(hints), WRONG)

    exact = torch.equal(d, ref)
    approx = torch.allclose(d, ref, atol=atol)
    if exact:
        return CheckResult(name, True, True, maxdiff, relerr, None, EXACT)
    if approx:
        return CheckResult(name, False, True, maxdiff, relerr, _rounding_hint(relerr), ROUNDING)
    hint = "\n".join(_value_hints(d.to(torch.float64), ref.to(torch.float64), relerr))
    return CheckResult(name, False, False, maxdiff, relerr, hint, WRONG)


def _fail(name, status, hint):
    return CheckResult(name, False, False, math.nan, math.nan, hint, status)


def _reference(t):
    """(t.grad, None), or (None, an explanation of why there is no reference)."""
    if not isinstance(t, torch.Tensor):
        return None, (f"no reference: the third argument should be the tensor from the forward pass "
                      f"(its .grad is the reference), not a {type(t).__name__}")
    with warnings.catch_warnings():  # reading .grad of a non-leaf tensor warns
        warnings.simplefilter("ignore")
        grad = t.grad
    if isinstance(grad, torch.Tensor):
        return grad.detach(), None
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
    """(maxdiff, relerr) of d against ref; nan when the shapes can't be lined up."""
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


# ---------------------------------------------------------------------------
# Diagnoses: each returns one plain sentence (or a few).


def _shape_hint(d, ref):
    """Explain a shape mismatch, and the fix when there is an obvious one."""
    got, want = tuple(d.shape), tuple(ref.shape)
    start = f"dt has shape {got} but t has shape {want}"
    if d.numel() == ref.numel():
        right_values = _close(d.reshape(want), ref)
        values = "right values, wrong shape: " if right_values else ""
        if _squeeze(got) == _squeeze(want):
            if len(got) < len(want):
                return f"{values}{start}: keep the summed dim with keepdim=True ({_keepdim_code(got, want)})"
            return f"{values}{start}: drop the size-1 dim (sum without keepdim=True, or {_view_code(want)})"
        if d.dim() == 2 and tuple(d.T.shape) == want and _close(d.T, ref):
            return f"{start}: this is the transpose of the right answer; {_TRANSPOSE_FIX}"
        if right_values:
            return f"the numbers are right but in the wrong shape: {start}; use {_view_code(want)}"
    dims = _broadcast_dims(got, want)
    if dims is not None:
        lead, keep = dims
        how = _sum_code(lead, keep)
        if _close(_sum_to(d, lead, keep), ref):
            return (f"{start}: t was broadcast in the forward pass, so its gradient is summed over the "
                    f"broadcast dims: {how}")
        return (f"{start}; summing would fix the shape ({how}), but the values would still be wrong, "
                "so check the formula too")
    if d.dim() == 2 and tuple(d.T.shape) == want:
        return f"{start}: you may have the matmul in the wrong order ({_TRANSPOSE_FIX})"
    return (f"{start}: a gradient always has the shape of its tensor; if you summed, check the dim "
            "(sum over the dims along which t was broadcast)")


def _keepdim_code(got, want):
    """e.g. '.sum(1, keepdim=True)' when want is got with a size-1 dim inserted at 1."""
    for i, size in enumerate(want):
        if size == 1 and want[:i] + want[i + 1:] == got:
            return f"e.g. .sum({i}, keepdim=True), or {_view_code(want)}"
    return f"or {_view_code(want)}"


def _view_code(shape):
    """'.view(32, 3, 10)' for shape (32, 3, 10); a 0-d shape needs .reshape(())."""
    return f".view({', '.join(map(str, shape))})" if shape else ".reshape(())"


_TRANSPOSE_FIX = ("swap the matmul operands and transpose: for y = a @ b, da = dy @ b.T and db = a.T @ dy "
                  "(check which operand you transposed)")


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


def _sum_code(lead, keep):
    """Words and code for summing over dims, e.g. 'sum over dim 0 with keepdim=True: .sum(0, keepdim=True)'."""
    parts = []
    if lead:
        dims = ", ".join(map(str, lead))
        which = f"dim {dims}" if len(lead) == 1 else f"dims {dims}"
        code = f".sum({dims})" if len(lead) == 1 else f".sum(({dims}))"
        parts.append(f"sum over {which}: {code}")
    if keep:
        dims = ", ".join(map(str, keep))
        which = f"dim {dims}" if len(keep) == 1 else f"dims {dims}"
        code = f".sum({dims}, keepdim=True)" if len(keep) == 1 else f".sum(({dims}), keepdim=True)"
        parts.append(f"sum over {which} with keepdim=True: {code}")
    return ", then ".join(parts)


def _dtype_hint(d, ref, right_values):
    """Say that the dtype is wrong (and whether the values are right anyway)."""
    if d.dtype == torch.bool:
        kind = " (booleans)"
    elif not d.is_floating_point():
        kind = " (integers)"
    else:
        kind = ""
    start = "right values, wrong dtype" if right_values else "wrong dtype"
    return (f"{start}: dt is {_dtype_name(d)}{kind} but t.grad is {_dtype_name(ref)}; a gradient has "
            f"the dtype of its tensor (start from torch.zeros_like(t), or convert with .to(t.dtype))")


def _dtype_name(x):
    return str(x.dtype).replace("torch.", "")


def _rounding_hint(relerr):
    if relerr > 1e-3:
        return (f"every value is tiny (zero up to float rounding), so torch.allclose accepts it "
                f"(rel err: {relerr:.1e}); right if the true gradient is 0, as for logit_maxes or for b1 "
                "before BatchNorm")
    return f"not bit-identical, only float rounding, not a mistake (rel err: {relerr:.1e})"


def _close(a, b):
    """allclose after casting both to float64 (used to test candidate fixes)."""
    return a.shape == b.shape and torch.allclose(a.to(torch.float64), b.to(torch.float64))


def _value_hints(d, ref, relerr):
    """Sentences about wrong values of the right shape; d and ref are float64."""
    if not torch.isfinite(d).all() and torch.isfinite(ref).all():
        counts = [(int(torch.isnan(d).sum()), "NaN"), (int(torch.isinf(d).sum()), "inf")]
        found = " and ".join(f"{k:,} {what}" for k, what in counts if k)
        return [f"dt contains {found} (of {d.numel():,} entries); look for a division by zero, log(0) "
                "or a huge exponent"]
    if not torch.isfinite(ref).all():
        return ["t.grad itself contains NaN or inf: the forward or backward pass blew up; "
                "rerun the forward pass with fresh parameters"]
    if not d.any():
        return ["dt is all zeros, but the right gradient is not: did you forget to fill it in?"]
    if d.dim() == 2 and d.shape[0] == d.shape[1] and _close(d.T, ref):
        return [f"this is the transpose of the right answer; {_TRANSPOSE_FIX}"]
    factor = _factor_hint(d, ref)
    if factor:
        return [factor]
    if relerr < 1e-5:
        return [f"almost right: the differences are tiny compared to the gradient (rel err: {relerr:.1e}), "
                "but some entries near zero differ by more than torch.allclose allows; is part of "
                "your computation done in another dtype or in a very different order?"]
    broadcast = _broadcast_error_hint(d, ref)
    if broadcast:
        return [broadcast]
    hints = _partial_hints(d, ref)
    if hints:
        return hints
    return [f"wrong values (rel err: {relerr:.1e}, far above float32 rounding, which stays near 1e-7): "
            "check the local derivative, and if this tensor is used "
            "in more than one place, add (+=) the gradient from every use"]


def _factor_hint(d, ref):
    """If d is a constant times ref, name the constant and what it usually means."""
    ref_norm2 = (ref * ref).sum().item()
    if ref_norm2 == 0.0:
        return None
    c = (d * ref).sum().item() / ref_norm2
    if c == 0.0 or abs(c - 1.0) < 1e-4:
        return None
    if _max_abs(d - c * ref) > 1e-4 * _max_abs(c * ref):
        return None
    fraction = Fraction(c).limit_denominator(256)
    if abs(float(fraction) - c) > 1e-5 * abs(c) or not _is_simple(fraction):
        sign = " and a sign is flipped" if c < 0 else ""
        return ("dt is the right answer times a constant factor that is not a simple fraction"
                f"{sign}: look for a wrong constant in the formula")
    return f"dt is {fraction} times the right answer: {_factor_meaning(fraction)}"


def _is_simple(f):
    """k, 1/k, k/(k-1), (k-1)/k, or a fraction of numbers up to 4 (sign ignored)."""
    num, den = abs(f.numerator), f.denominator
    return num == 1 or den == 1 or abs(num - den) == 1 or (num <= 4 and den <= 4)


def _factor_meaning(f):
    """What a factor between your answer and the right one usually means."""
    if f == -1:
        return "the sign is flipped (check each minus, e.g. of a subtraction or of -x**-2)"
    sign = "the sign is flipped, and " if f < 0 else ""
    num, den = abs(f).numerator, abs(f).denominator
    if num >= 3 and den >= 3 and abs(num - den) == 1:
        n = max(num, den)
        return (f"{sign}n and n-1 are mixed up (n = {n}), as in Bessel's correction: the variance here "
                f"divides by n-1 = {n - 1}, not by n = {n}")
    if num <= 4 and den <= 4:
        return (f"{sign}a power rule factor may be missing or extra (d/dx x**p = p * x**(p-1): 2*x for x**2, "
                "-0.5*x**-1.5 for x**-0.5), or a factor like 2 or 1/2")
    if den == 1:
        return f"{sign}a factor 1/{num} is missing, e.g. the 1/n of a mean over n = {num} items"
    if num == 1:
        return f"{sign}there is a factor 1/{den} too many, e.g. the 1/n of a mean applied twice (n = {den})"
    return f"{sign}a constant in the formula is wrong"


def _partial_hints(d, ref):
    """Sentences for answers that are right in some entries only (or wrong in a telling pattern)."""
    close = torch.isclose(d, ref)
    n_right, total = int(close.sum()), close.numel()
    zero_where_not = int(((d == 0) & (ref != 0)).sum())
    nonzero_where_zero = int(((d != 0) & (ref == 0)).sum())
    pattern = None
    if zero_where_not and not nonzero_where_zero:
        pattern = (f"dt is 0 in {zero_where_not:,} entries where the right gradient is not: a contribution "
                   "is missing (a tensor used in several places needs += from every use)")
    elif nonzero_where_zero and not zero_where_not:
        pattern = (f"dt is non-zero in {nonzero_where_zero:,} entries where the right gradient is exactly 0: "
                   "did you forget to multiply by the incoming gradient (chain rule), or give gradient to "
                   "entries the loss does not use?")
    hints = []
    if 0 < n_right < total and d.dim() >= 2 and _row_structured(close):
        rows_right = int(close.reshape(close.shape[0], -1).all(1).sum())
        hints.append(f"right in {rows_right:,} of {close.shape[0]:,} rows; the other rows are wrong")
        if d.dim() == 2 and _rows_too_small(d, ref, close):
            hints.append(
                "the wrong rows look like repeated indices that were not added up: `dC[Xb] += demb` "
                "keeps only one write per repeated index; accumulate with dC.index_add_(0, "
                "Xb.view(-1), demb.view(-1, 10)), a Python loop, or a one_hot matmul")
            return hints
    elif 0 < n_right < total and (pattern or n_right >= total / 4):
        hints.append(f"right in {n_right:,} of {total:,} entries ({100 * n_right / total:.0f}%)")
    if pattern:
        hints.append(pattern)
    elif hints:
        hints.append("a branch may be missing: a tensor used in several places needs += from every use")
    return hints


def _row_structured(close):
    """True when every row (first dim) is either entirely right or entirely wrong, with some of each."""
    rows = close.reshape(close.shape[0], -1)
    all_right, all_wrong = rows.all(1), ~rows.any(1)
    return bool((all_right | all_wrong).all()) and bool(all_right.any()) and bool(all_wrong.any())


def _rows_too_small(d, ref, close):
    """True when most wrong rows of d are smaller in size than the right rows (missing accumulation)."""
    wrong = ~close.all(1)
    smaller = d[wrong].norm(dim=1) < ref[wrong].norm(dim=1)
    return bool(smaller.float().mean() > 0.5)


def _broadcast_error_hint(d, ref):
    """If the error ref - d is the same along a dim, a broadcast contribution is missing or wrong."""
    error = ref - d
    scale = _max_abs(error)
    for dim in range(error.dim()):
        if error.shape[dim] < 2:
            continue
        spread = _max_abs(error - error.mean(dim, keepdim=True))
        if spread <= 1e-3 * scale:
            return (f"the error is the same along dim {dim}: a contribution that was broadcast along dim "
                    f"{dim} is missing or wrong (e.g. the branch through a sum or mean over dim {dim}); "
                    "add it with +=")
    return None


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
        """'17 of 26 correct', and which gradient to fix first when one is wrong."""
        line = f"{self.correct} of {self.total} correct"
        wrong = [r.name for r in self.results if r.status == WRONG]
        return line + (f"; fix {wrong[0]} first" if wrong else "")

    def __str__(self):
        rows = [("", "name", "status", "maxdiff", "hint")]
        for r in self.results:
            hint = "" if r else _short(r.hint)
            rows.append((_mark(r)[0], r.name, r.status, f"maxdiff: {r.maxdiff:.1e}", hint))
        widths = [max(len(row[i]) for row in rows) for i in range(4)]
        lines = [" | ".join(cell.ljust(w) for cell, w in zip(row[:4], widths)) + " | " + row[4]
                 for row in rows]
        lines.insert(1, "-" * len(lines[0]))
        lines.append(self.count_line())
        return "\n".join(line.rstrip() for line in lines)

    __repr__ = __str__

    def _repr_html_(self):
        rows = []
        for r in self.results:
            mark, color = _mark(r)[1:]
            rows.append(
                f'<tr style="background:{color}"><td>{mark}</td><td><code>{html.escape(r.name)}</code></td>'
                f"<td>{html.escape(r.status)}</td><td>maxdiff: {r.maxdiff:.1e}</td>"
                f"<td>{html.escape('' if r else r.hint or '')}</td></tr>")
        header = "<tr><th></th><th>name</th><th>status</th><th>maxdiff</th><th>hint</th></tr>"
        return (f'<table style="text-align:left"><caption style="text-align:left"><b>'
                f"{self.count_line()}</b></caption>{header}{''.join(rows)}</table>")


def _mark(result):
    """(text mark, HTML mark, HTML row colour) for a result: right, not done yet, or wrong."""
    if result:
        return "✓", "✅", "#e6f4ea"
    if result.status == NOT_DONE:
        return "·", "⬜", "#f1f3f4"
    return "✗", "❌", "#fce8e6"


def _short(hint, width=70):
    if not hint:
        return ""
    first = hint.split("\n")[0]
    return first if len(first) <= width else first[:width - 3] + "..."


def summary(results=None):
    """A Summary of the given CheckResults, or of every check made so far (one per name)."""
    if results is None:
        results = _registry.values()
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


def check_numerically(name, f, x, dout, dx, *, h=1e-5, strict=None):
    """Compare your dx (the gradient of sum(f(x) * dout) w.r.t. x) with finite differences.

    Prints `name | rel err: ... | verdict`, with cs231n's thresholds on rel_error:
        below 1e-7          "correct"
        1e-7 to 1e-4        "probably correct" (fine for kinks like relu or max; for a smooth
                            function in float64 expect below 1e-7)
        1e-4 to 1e-2        "suspicious"
        above 1e-2          "wrong"
    The returned CheckResult is truthy when rel err < 1e-4 (correct or probably correct).
    Strict mode works as for cmp. Errors raised by f itself are not caught (f must accept float64).
    """
    name = str(name)
    result = _check_numerically(name, f, x, dout, dx, h)
    print(_report(result))
    _record(result)
    _raise_if_strict(result, strict)
    return result


def _numerical_result(name, maxdiff, relerr, hint, status):
    return CheckResult(name, False, status in PASSING, maxdiff, relerr, hint, status, kind="numerical")


def _check_numerically(name, f, x, dout, dx, h):
    if dx is None or dx is Ellipsis:
        what = "still None" if dx is None else "still `...`"
        return _numerical_result(name, math.nan, math.nan,
                                 f"not done yet: dx is {what}; write your formula for it", NOT_DONE)
    d, problem = _as_tensor(dx)
    if problem:
        return _numerical_result(name, math.nan, math.nan, problem, WRONG)
    d = d.detach()
    numerical = numerical_vjp(f, x, dout, h)
    if d.shape != numerical.shape:
        hint = _shape_hint(d, numerical).replace("t has shape", "x has shape").replace(
            "t was broadcast", "x was broadcast")
        return _numerical_result(name, math.nan, math.nan, hint, WRONG)
    d64 = d.to(torch.float64)
    err = rel_error(d64, numerical)
    maxdiff = _max_abs(d64 - numerical)
    if not math.isfinite(err) or err >= 1e-2:
        status = WRONG
    elif err >= 1e-4:
        status = SUSPICIOUS
    elif err >= 1e-7:
        status = PROBABLY_CORRECT
    else:
        status = CORRECT
    hints = []
    if status == PROBABLY_CORRECT:
        hints.append("fine if the function has kinks (relu, max, abs); for a smooth function like tanh "
                     "expect below 1e-7")
        if d.dtype != torch.float64:
            hints.append(f"dx is {_dtype_name(d)}, whose rounding alone gives errors of this size; "
                         "compute it in float64 for a sharper check")
    elif status in (SUSPICIOUS, WRONG):
        if status == SUSPICIOUS:
            hints.append("probably a mistake: a correct gradient agrees to better than 1e-4")
        relerr_max = maxdiff / max(_max_abs(numerical), _TINY)
        hints += _value_hints(d64, numerical, relerr_max)
    hint = re.sub(r"\bdt\b", "dx", "\n".join(hints)) or None  # the messages are written for cmp's dt
    return _numerical_result(name, maxdiff, err, hint, status)
