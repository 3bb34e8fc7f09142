"""Unit tests of cmp.py: the printed line, hints, strict mode, the registry and summary,
finite differences, robustness to odd inputs, and output that is stable for nbval."""
import contextlib
from fractions import Fraction
import dataclasses
import io
import math
import re
import warnings

import numpy as np
import pytest
import torch
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

import cmp as cmp_module
from cmp import (RULE_IDS, CheckResult, GradientError, Status, Summary, check_numerically, cmp, numerical_vjp,
                 hints, rel_error, reset, summary)

SANITIZE = [(re.compile(r"maxdiff: \S+"), "maxdiff: MAXDIFF"), (re.compile(r"rel err: \S+"), "rel err: RELERR"),
            (re.compile(r"[-+.0-9e]+ (of|times) (the|its) largest entry"), "RELERR of the largest entry")]
MAIN_LINE = re.compile(r"^(.{15,}) \| exact: (True |False) \| approximate: (True |False) \| maxdiff: \S+$")


def sanitize(text):
    for regex, replacement in SANITIZE:
        text = regex.sub(replacement, text)
    return text


def with_grad(grad, requires_grad=True):
    """A leaf tensor whose .grad is `grad` (as if loss.backward() had run)."""
    t = torch.zeros_like(grad, dtype=torch.float32 if not grad.is_floating_point() else grad.dtype)
    t.requires_grad_(requires_grad)
    if requires_grad:
        t.grad = grad.clone()
    return t


@pytest.fixture
def t():
    g = torch.Generator().manual_seed(0)
    return with_grad(torch.randn(8, 5, generator=g))


# ---------------------------------------------------------------------------
# The printed line


def test_exact_match_prints_one_lecture_style_line(t, capsys):
    result = cmp("logits", t.grad.clone(), t)
    out = capsys.readouterr().out
    assert out == "logits          | exact: True  | approximate: True  | maxdiff: 0.0e+00\n"
    assert result and result.exact and result.approx and result.status == "exact" and result.hint is None
    assert result.maxdiff == 0.0 and result.relerr == 0.0


def test_rounding_is_true_and_says_it_is_not_a_mistake(t, capsys):
    result = cmp("x", t.grad * (1 + 1e-7), t)
    lines = capsys.readouterr().out.splitlines()
    assert MAIN_LINE.match(lines[0]) and "exact: False | approximate: True " in lines[0]
    assert lines[1].startswith("  -> ") and "rounding, not a mistake" in lines[1] and "of the largest entry" in lines[1]
    assert result and not result.exact and result.status == "rounding"


def test_tiny_reference_passes_by_allclose_and_says_why(capsys):
    t = with_grad(torch.tensor([1e-10, -2e-10, 3e-10]))
    result = cmp("logit_maxes", torch.tensor([-1e-10, 2e-10, 1e-10]), t)
    assert result and result.status == "rounding"
    assert "tiny" in result.hint and "logit_maxes" in result.hint


def test_wrong_result_is_false_with_hint_lines(t, capsys):
    result = cmp("x", t.grad * 2, t, explain=True)
    lines = capsys.readouterr().out.splitlines()
    assert MAIN_LINE.match(lines[0]) and "exact: False | approximate: False" in lines[0]
    assert len(lines) == 2 and lines[1].startswith("  -> ")
    assert not result and result.status == "wrong" and "2 times" in result.hint
    assert str(result) == "\n".join(lines)


def test_by_default_a_wrong_answer_gets_what_was_measured_and_why_gives_the_rest(t, capsys):
    import cmp as cmp_module
    result = cmp("x", t.grad * 2, t)
    assert capsys.readouterr().out.splitlines()[1:] == ["  -> dx is 2 times the right answer",
                                                         "  -> (why it may be so: run why())"]
    cmp_module.why()
    assert capsys.readouterr().out == "\n".join(["why (x):"] + str(result).splitlines()[1:]) + "\n"  # the whole diagnosis
    shape = cmp("x", t.grad.sum(0, keepdim=True), t)  # a shape: up to the two shapes
    short = capsys.readouterr().out.splitlines()[1]
    assert "has shape (1, 5) but x has shape (8, 5)" in short and "sum" not in short.split("shape (8, 5)")[1]
    cmp("x", t.grad, t)
    cmp_module.why()
    assert capsys.readouterr().out.splitlines()[-1].startswith("nothing held back")  # x was checked again: right
    cmp("x", t.grad * 2, t)
    cmp("y", torch.zeros(1), with_grad(torch.zeros(1)), record=False)  # another check after it, right
    cmp_module.why()
    assert "why (x):" in capsys.readouterr().out.splitlines()  # a newcomer's 00: the cell checks another after
    cmp_module.hints(explain=True)
    try:
        cmp("x", t.grad * 2, t)
        assert "(why it may be so" not in capsys.readouterr().out
    finally:
        cmp_module.hints()


def test_long_names_are_not_cut(t, capsys):
    cmp("a_rather_long_gradient_name", t.grad, t)
    assert capsys.readouterr().out.startswith("a_rather_long_gradient_name | exact: True ")


def test_check_result_fields_and_truthiness():
    fields = set(CheckResult.__dataclass_fields__)
    assert {"name", "exact", "approx", "maxdiff", "relerr", "hint", "status"} <= fields
    assert not CheckResult("x", False, False, 1.0, 1.0, "h", "wrong")
    assert CheckResult("x", False, True, 1e-9, 1e-8, None, "rounding")


# ---------------------------------------------------------------------------
# Diagnoses on small hand-made cases


def test_not_done_for_ellipsis_and_none(t, capsys):
    for dt in (..., None):
        result = cmp("dx", dt, t)
        assert not result and result.status == "not done" and "not done yet" in result.hint
        assert math.isnan(result.maxdiff)
    lines = capsys.readouterr().out.splitlines()
    assert lines[0] == "dx              | exact: False | approximate: False | maxdiff: -"  # nothing compared
    assert lines[1] == "  -> not done yet: the gradient is still `...`; write your formula for it"


def test_no_reference_for_intermediate_without_retain_grad(capsys):
    w = torch.randn(3, requires_grad=True)
    y = w * 2
    (y.sum()).backward()
    result = cmp("y", torch.ones(3), y)
    assert not result and result.status == "no reference" and "retain_grad()" in result.hint


def test_no_reference_before_backward_and_without_requires_grad(capsys):
    leaf = torch.randn(3, requires_grad=True)
    result = cmp("w", torch.ones(3), leaf)
    assert result.status == "no reference" and "backward()" in result.hint
    result = cmp("w", torch.ones(3), torch.randn(3))
    assert result.status == "no reference" and "requires_grad" in result.hint
    result = cmp("w", torch.ones(3), "logits")
    assert result.status == "no reference" and "str" in result.hint


@pytest.mark.parametrize("got, want", [((32, 64), (1, 64)), ((32, 64), (64,)), ((32, 27), (32, 1)),
                                       ((4, 32, 64), (1, 64))])
def test_a_gradient_of_the_broadcast_shape_is_told_why_it_is_summed_not_how(got, want):
    dt = torch.randn(got, generator=torch.Generator().manual_seed(1))
    ref = dt.sum(tuple(range(len(got) - len(want)))) if len(got) > len(want) else dt
    keep = tuple(i for i, size in enumerate(want) if size == 1 and ref.shape[i] != 1)
    ref = ref.sum(keep, keepdim=True) if keep else ref
    result = cmp("x", dt, with_grad(ref))
    assert not result and result.diagnosis == "sum_broadcast_dims"
    assert "broadcast" in result.hint and "add up" in result.hint
    assert "dim 0" not in result.hint and "dim 1" not in result.hint and "keepdim" not in result.hint  # the fix is yours


def test_sum_that_would_still_be_wrong_says_so():
    result = cmp("x", torch.ones(32, 64), with_grad(torch.zeros(1, 64)))
    assert not result and "collects the gradients of every use" in result.hint and "still be wrong" in result.hint


def test_keepdim_lecture_bnmeani_case_is_false_although_values_broadcast_equal(capsys):
    ref = torch.randn(1, 64)
    result = cmp("bnmeani", ref.view(64).clone(), with_grad(ref))
    assert torch.all(ref.view(64) == ref).item()  # the lecture's cmp said True here
    assert not result and not result.exact and not result.approx
    assert "the size-1 dim 0 is missing" in result.hint and "drops the dim it runs over" in result.hint
    assert "right values" in result.hint
    assert math.isnan(result.maxdiff)  # printed "-": a difference across two shapes would mislead


def test_transpose_of_a_square_matrix():
    ref = torch.randn(6, 6, generator=torch.Generator().manual_seed(2))
    result = cmp("W", ref.T.clone(), with_grad(ref))
    assert not result and "transpose" in result.hint


def test_transposed_shape_that_is_not_the_answer_mentions_matmul_order():
    result = cmp("W", torch.ones(5, 3), with_grad(torch.randn(3, 5)))
    assert not result and "wrong order" in result.hint


@pytest.mark.parametrize("factor, name, meaning", [
    (32.0, "32", "1/n of a mean"),
    (1 / 32, "1/32", "too many"),
    (32 / 31, "32/31", "n and n-1 are mixed up"),
    (31 / 32, "31/32", "n and n-1 are mixed up"),
    (-1.0, "-1", "sign"),
    (2.0, "2", "power rule"),
    (0.5, "1/2", "power rule"),
    (-2.0, "-2", "sign is flipped, and a power rule"),
    (-32.0, "-32", "sign is flipped, and a factor 1/32 is missing"),
    (10.0, "10", "1/10"),
])
def test_constant_factor_is_named(factor, name, meaning):
    ref = torch.randn(32, 64, generator=torch.Generator().manual_seed(3))
    result = cmp("x", ref * factor, with_grad(ref))
    assert not result and result.diagnosis == "constant_factor"
    assert f"dx is {name} times the right answer" in result.hint
    assert meaning in result.hint


@pytest.mark.parametrize("factor, name", [(101 / 100, "101/100"), (100 / 101, "100/101"), (7 / 6, "7/6"),
                                          (33 / 32, "33/32")])
def test_bessel_is_named_only_for_a_size_of_the_problem(factor, name):
    """The tensor is (32, 27): n/(n-1) with n = 101, 7 or 33 is no Bessel slip; 32/31 is one."""
    ref = torch.randn(32, 27, generator=torch.Generator().manual_seed(3))
    result = cmp("probs", ref * factor, with_grad(ref))
    assert result.diagnosis == "constant_factor" and f"dprobs is {name} times" in result.hint
    assert "Bessel" not in result.hint and "n-1" not in result.hint
    assert "n and n-1 are mixed up" in cmp("probs", ref * 32 / 31, with_grad(ref)).hint


def test_a_mean_is_named_only_for_a_size_of_the_problem():
    ref = torch.randn(32, 27, generator=torch.Generator().manual_seed(3))
    assert "mean over n = 32" in cmp("probs", ref * 32, with_grad(ref)).hint
    result = cmp("probs", ref * 10, with_grad(ref))
    assert "a factor 1/10 is missing" in result.hint and "mean" not in result.hint


def test_factor_that_is_not_a_simple_fraction():
    ref = torch.randn(10, 10, generator=torch.Generator().manual_seed(4))
    result = cmp("x", ref * math.pi, with_grad(ref))
    assert "one factor common to all entries, about 3.142, not a simple fraction" in result.hint


def test_bessel_slip_is_wrong_although_maxdiff_is_small():
    ref = torch.randn(32, 64, generator=torch.Generator().manual_seed(5)) * 1e-3
    result = cmp("bndiff2", ref * (31 / 32), with_grad(ref))
    assert result.maxdiff < 2e-4 and 0.02 < result.relerr < 0.04
    assert not result and "31/32" in result.hint


def test_almost_right_but_not_allclose_is_wrong_and_says_almost():
    ref = torch.zeros(4, 4)
    ref[0, 0] = 1.0
    dt = ref.clone()
    dt[1, 1] = 5e-8  # near zero, above allclose's atol; tiny relative to the gradient's size
    result = cmp("x", dt, with_grad(ref))
    assert not result and "almost right" in result.hint


def test_all_zeros_nan_and_inf_are_named():
    ref = torch.randn(3, 4)
    assert "all zeros" in cmp("x", torch.zeros(3, 4), with_grad(ref)).hint
    with_nan = ref.clone()
    with_nan[0, 0] = float("nan")
    with_nan[1, 1] = float("nan")
    assert "2 NaN" in cmp("x", with_nan, with_grad(ref)).hint
    with_inf = ref.clone()
    with_inf[2, 3] = -float("inf")
    result = cmp("x", with_inf, with_grad(ref))
    assert "1 inf" in result.hint and "NaN" not in result.hint


def test_nan_in_the_reference_is_blamed_on_the_forward_pass():
    ref = torch.tensor([1.0, float("nan")])
    result = cmp("x", torch.tensor([1.0, 2.0]), with_grad(ref))
    assert not result and "x.grad itself" in result.hint and result.diagnosis == "reference_nonfinite"


@pytest.mark.parametrize("dt, words", [
    (torch.ones(3, dtype=torch.float64), ["float64", "right values, wrong dtype"]),
    (torch.ones(3, dtype=torch.float16), ["float16", "right values"]),
    (torch.ones(3, dtype=torch.int64), ["int64", "integers"]),
    (torch.ones(3, dtype=torch.bool), ["bool", "booleans"]),
])
def test_wrong_dtype_is_a_mistake(dt, words):
    result = cmp("x", dt, with_grad(torch.ones(3)))
    assert not result and result.status == "wrong" and not result.approx
    assert "wrong dtype" in result.hint
    for word in words:
        assert word in result.hint


def test_numpy_and_python_inputs_are_converted():
    ref = torch.tensor([[1.0, 2.0], [3.0, 4.0]])
    assert cmp("x", np.array([[1.0, 2.0], [3.0, 4.0]], dtype=np.float32), with_grad(ref)).status == "exact"
    assert cmp("x", [[1.0, 2.0], [3.0, 4.0]], with_grad(ref)).status == "exact"
    assert "float64" in cmp("x", np.array([[1.0, 2.0], [3.0, 4.0]]), with_grad(ref)).hint
    assert cmp("s", 2.5, with_grad(torch.tensor(2.5))).status == "exact"
    result = cmp("x", "dlogits", with_grad(ref))
    assert not result and "str" in result.hint
    result = cmp("x", [[1.0], [2.0, 3.0]], with_grad(ref))
    assert not result and "cannot be turned into a tensor" in result.hint


def test_dt_that_requires_grad_is_detached():
    w = torch.randn(3, requires_grad=True)
    result = cmp("w", w * 1.0, with_grad(w.detach().clone()))
    assert result.status == "exact"


def test_empty_and_zero_dim_tensors():
    assert cmp("e", torch.zeros(0, 3), with_grad(torch.zeros(0, 3))).status == "exact"
    assert cmp("s", torch.tensor(1.0), with_grad(torch.tensor(1.0))).status == "exact"
    result = cmp("s", torch.tensor(1.0), with_grad(torch.ones(2, 2)))
    assert not result and "()" in result.hint


# ---------------------------------------------------------------------------
# Strict mode


def test_strict_argument_raises_gradient_error_with_name_and_hint(t, capsys):
    with pytest.raises(GradientError) as info:
        cmp("dlogits", t.grad * 32, t, strict=True)
    assert isinstance(info.value, AssertionError)
    assert "dlogits" in str(info.value) and "32 times" in str(info.value)
    assert "dlogits" in capsys.readouterr().out  # the line is printed before raising


def test_strict_raises_for_not_done_too(t):
    with pytest.raises(GradientError, match="not done yet"):
        cmp("dx", ..., t, strict=True)


def test_strict_passes_right_answers(t):
    assert cmp("x", t.grad.clone(), t, strict=True)
    assert cmp("x", t.grad * (1 + 1e-7), t, strict=True)


def test_strict_via_environment_variable_is_read_at_call_time(t, monkeypatch):
    assert not cmp("x", t.grad * 2, t)  # not strict: no exception
    monkeypatch.setenv("CMP_STRICT", "1")
    with pytest.raises(GradientError):
        cmp("x", t.grad * 2, t)
    assert not cmp("x", t.grad * 2, t, strict=False)  # the argument wins
    monkeypatch.setenv("CMP_STRICT", "0")
    assert not cmp("x", t.grad * 2, t)


def test_strict_check_numerically(monkeypatch):
    x = torch.randn(4, dtype=torch.float64)
    monkeypatch.setenv("CMP_STRICT", "true")
    with pytest.raises(GradientError):
        check_numerically("tanh", torch.tanh, x, torch.ones(4), torch.ones(4))


# ---------------------------------------------------------------------------
# The registry and summary


def test_registry_keeps_first_order_and_latest_result(t, capsys):
    cmp("a", t.grad, t)
    cmp("b", t.grad * 2, t)
    cmp("c", ..., t)
    cmp("a", t.grad * 3, t)  # a re-run replaces the old result but keeps its place
    s = summary()
    assert [r.name for r in s.results] == ["a", "b", "c"]
    assert [r.status for r in s.results] == ["wrong", "wrong", "not done"]
    cmp("b", t.grad, t)
    assert summary().correct == 1 and summary().total == 3
    reset()
    assert summary().total == 0 and str(summary()).endswith("0 of 0 correct")


def chain():
    """w -> y = 3 * w -> z = y.exp(), and a second leaf v -> u = v * 2; loss = z.sum() + u.sum()."""
    w, v = torch.randn(4, requires_grad=True), torch.randn(4, requires_grad=True)
    y = 3 * w
    z = y.exp()
    u = v * 2
    for tensor in (y, z, u):
        tensor.retain_grad()
    (z.sum() + u.sum()).backward()
    return w, y, z, v, u


def test_a_wrong_gradient_is_blamed_only_on_a_wrong_one_it_is_computed_from(capsys):
    w, y, z, v, u = chain()
    cmp("z", z.grad * 2, z)             # wrong
    cmp("u", u.grad * 2, u)             # wrong, and independent of z
    blamed = cmp("y", y.grad * 2, y)    # z is computed from y: z's error flows into dy
    assert "`z`, checked before this one, is wrong too" in blamed.hint and "fix it first" in blamed.hint
    assert "fix it first" in capsys.readouterr().out.splitlines()[-1]
    hint_v = cmp("v", v.grad * 2, v).hint  # u is computed from v, z is not
    assert "`u`, checked before this one" in hint_v and "`z`" not in hint_v
    cmp("z", z.grad, z)                 # z fixed: nothing upstream of y is wrong any more
    assert "fix it first" not in cmp("y", y.grad * 2, y).hint


def test_independent_parameters_never_blame_each_other(capsys):
    w, y, z, v, u = chain()
    cmp("v", v.grad * 2, v)
    cmp("w", w.grad * 2, w)
    assert "fix it first" not in summary().results[1].hint
    assert summary().count_line() == "0 of 2 correct; wrong: v, w"


def test_summary_names_the_wrong_gradient_all_other_wrong_ones_come_from(capsys):
    w, y, z, v, u = chain()
    cmp("z", z.grad * 2, z)
    cmp("y", y.grad * 2, y)
    cmp("w", w.grad * 2, w)
    assert summary().count_line() == "0 of 3 correct; fix z first: the other wrong gradients are computed from its gradient"
    cmp("z", z.grad, z)
    assert summary().count_line() == "1 of 3 correct; fix y first: the other wrong gradients are computed from its gradient"
    cmp("y", y.grad, y)
    assert summary().count_line() == "2 of 3 correct; fix w"


def test_atol_widens_only_the_absolute_tolerance(capsys):
    noise = with_grad(torch.full((200,), 3e-9))
    dt = torch.full((200,), -2e-8)  # rounding noise of the other sign: zero up to rounding too
    assert not cmp("b1", dt, noise)
    assert cmp("b1", dt, noise, atol=1e-7)
    big = with_grad(torch.ones(3))
    assert not cmp("x", torch.ones(3) * 32 / 31, big, atol=1e-7)  # real mistakes are still caught


def test_a_check_with_record_false_stays_out_of_the_summary(t, capsys):
    cmp("a", t.grad, t)
    result = cmp("a (on purpose)", t.grad * 2, t, record=False)
    assert not result and "a (on purpose)" in capsys.readouterr().out
    assert [r.name for r in summary().results] == ["a"]


def test_summary_text_table(t, capsys):
    cmp("logprobs", t.grad, t)
    cmp("probs", t.grad * (1 + 1e-7), t)
    cmp("counts", t.grad * 32, t)
    cmp("dC_not_yet", None, t)
    cmp("dW_not_yet", ..., t)
    text = str(summary())
    lines = text.splitlines()
    assert lines[-1] == "2 of 5 correct; fix counts"
    assert lines[-2] == "not done yet (2): dC_not_yet, dW_not_yet"  # one line, not a row each
    assert len(lines) == 1 + 1 + 3 + 2  # header, rule, checked rows, not-done line, count
    assert len({line.index("| maxdiff") for line in lines[2:5]}) == 1  # aligned
    assert lines[4].startswith("X <- first") and "counts" in lines[4] and "32 times" in lines[4]
    assert lines[2].startswith("ok ") and "rounding" in lines[3] and "largest entry" not in lines[3]
    assert {line.split()[0] for line in lines[2:5]} == {"ok", "X"}  # plain marks that any font can show
    assert repr(summary()) == text


def test_summary_html(t, capsys):
    cmp("ok<1>", t.grad, t)
    cmp("bad", t.grad * -1, t)
    cmp("later", None, t)
    page = summary()._repr_html_()
    assert page.count("<tr") == 3 and "1 of 3 correct; fix bad" in page
    assert "not done yet (1): later" in page
    assert ">ok<" in page and ">X <- first<" in page and "font-weight:bold" in page
    assert "text-align:left" in page and not set(page) & set("✅❌⬜✓✗")
    assert "ok&lt;1&gt;" in page and "-1 times the right answer" in page
    assert "sign is flipped" not in page and "sign is flipped" not in str(summary())  # the cause waits for why()
    hints(explain=True)
    try:
        assert "sign is flipped" in summary()._repr_html_() and "sign is flipped" in str(summary())
    finally:
        hints(explain=False)


def test_summary_of_an_explicit_list(t, capsys):
    results = [cmp("a", t.grad, t), cmp("b", t.grad * 2, t), cmp("c", t.grad, t)]
    s = summary(results[1:])
    assert isinstance(s, Summary) and s.total == 2 and s.correct == 1 and s.results == results[1:]


def test_safety_net_reports_an_internal_error_and_raises_it_in_strict_mode(t, capsys, monkeypatch):
    def broken(*args):
        raise ValueError("boom")
    monkeypatch.setattr(cmp_module, "_check", broken)
    result = cmp("x", t.grad, t)
    assert not result and result.diagnosis == "internal_error"
    assert "internal error in cmp (ValueError: boom)" in result.hint and "bug in cmp" in result.hint
    with pytest.raises(ValueError, match="boom"):
        cmp("x", t.grad, t, strict=True)


def test_a_result_cannot_be_changed():
    result = CheckResult("x", True, True, 0.0, 0.0, None, Status.EXACT)
    with pytest.raises(dataclasses.FrozenInstanceError):
        result.approx = False


# ---------------------------------------------------------------------------
# Finite differences


def test_numerical_vjp_of_tanh_square_and_matmul():
    g = torch.Generator().manual_seed(6)
    x = torch.randn(3, 4, generator=g, dtype=torch.float64)
    dout = torch.randn(3, 4, generator=g, dtype=torch.float64)
    assert torch.allclose(numerical_vjp(torch.tanh, x, dout), (1 - torch.tanh(x)**2) * dout, atol=1e-9)
    assert torch.allclose(numerical_vjp(lambda a: a**2, x, dout), 2 * x * dout, atol=1e-8)
    W = torch.randn(4, 5, generator=g, dtype=torch.float64)
    dy = torch.randn(3, 5, generator=g, dtype=torch.float64)
    assert torch.allclose(numerical_vjp(lambda a: a @ W, x, dy), dy @ W.T, atol=1e-8)
    assert torch.allclose(numerical_vjp(lambda w: x @ w, W, dy), x.T @ dy, atol=1e-8)


def test_numerical_vjp_is_float64_and_leaves_x_alone():
    x = torch.randn(5, requires_grad=True)
    before = x.detach().clone()
    grad = numerical_vjp(lambda a: a * 3, x, torch.ones(5))
    assert grad.dtype == torch.float64 and grad.shape == x.shape
    assert torch.equal(x.detach(), before) and x.dtype == torch.float32
    assert torch.allclose(grad, torch.full((5,), 3.0, dtype=torch.float64))
    assert numerical_vjp(lambda a: a, x, torch.ones(5)).sum().item() == pytest.approx(5.0)


def test_rel_error_is_cs231n():
    assert rel_error(torch.tensor([1.0, 2.0]), torch.tensor([1.0, 2.0])) == 0.0
    assert rel_error(torch.tensor([1.0, 0.0]), torch.tensor([3.0, 0.0])) == pytest.approx(0.5)
    assert rel_error(torch.tensor([0.0]), torch.tensor([1e-9])) == pytest.approx(0.1)  # denominator 1e-8


def test_check_numerically_verdicts(capsys):
    g = torch.Generator().manual_seed(7)
    x = torch.randn(4, 3, generator=g, dtype=torch.float64)
    dout = torch.randn(4, 3, generator=g, dtype=torch.float64)
    right = (1 - torch.tanh(x)**2) * dout
    result = check_numerically("tanh", torch.tanh, x, dout, right)
    line = capsys.readouterr().out.splitlines()[0]
    assert re.fullmatch(r"tanh            \| rel err: \S+ \| correct", line)
    assert result and result.status == "correct" and result.relerr < 1e-7 and result.kind == "numerical"

    result = check_numerically("tanh32", torch.tanh, x, dout, right.float())
    assert result.status in ("correct", "probably correct") and result

    result = check_numerically("tanh", torch.tanh, x, dout, right * (1 + 1e-3))
    assert not result and result.status == "suspicious" and "1e-4" in result.hint

    result = check_numerically("tanh", torch.tanh, x, dout, -right)
    assert not result and result.status == "wrong" and "-1 times" in result.hint

    result = check_numerically("tanh", torch.tanh, x, dout, (1 - x**2) * dout)
    assert not result and result.status == "wrong"

    result = check_numerically("tanh", torch.tanh, x, dout, right.T)
    assert not result and "x has shape (4, 3)" in result.hint and "transpose" in result.hint

    result = check_numerically("tanh", torch.tanh, x, dout, ...)
    assert not result and result.status == "not done"
    assert [r.name for r in summary().results] == ["tanh", "tanh32"]


def test_check_numerically_float32_note():
    x = torch.linspace(-2, 2, 50, dtype=torch.float64)
    dx = ((1 - torch.tanh(x)**2) * (1 + 3e-6)).float()
    result = check_numerically("tanh", torch.tanh, x, torch.ones(50), dx)
    assert result and result.status == "probably correct"
    assert "kinks" in result.hint and "float32" in result.hint


# ---------------------------------------------------------------------------
# Output stable for nbval


def test_output_is_identical_after_sanitizing(capsys):
    def run_once():
        g = torch.Generator().manual_seed(8)
        ref = torch.randn(32, 27, generator=g)
        t = with_grad(ref)
        noisy = ref + torch.randn(32, 27) * 1e-9  # unseeded: differs between the two runs
        cmp("a", ref.clone(), t)
        cmp("b", noisy, t)
        cmp("c", ref * (31 / 32) + torch.randn(32, 27) * 1e-9, t)
        cmp("d", ref.sum(0), t)
        cmp("e", ..., t)
        cmp("f", ref * torch.rand(32, 27, generator=g), t)
        cmp("g", ref * (torch.rand(32, 1, generator=g) > 0.5), t)
        x = torch.randn(3, dtype=torch.float64)
        check_numerically("h", torch.tanh, x, torch.ones(3), 1 - torch.tanh(x)**2)
        # off by a relative 1e-6 to 1e-5: "probably correct" for any x (+ 1e-6 made a large x's "suspicious", 1 run in 200)
        check_numerically("i", torch.tanh, x, torch.ones(3), (1 - torch.tanh(x)**2) * (1 + 1e-6 * (1 + x.abs())))
        print(summary())
        return capsys.readouterr().out

    first, second = run_once(), run_once()
    assert first != second  # the raw numbers do differ...
    assert sanitize(first) == sanitize(second)  # ...but only where the sanitizer looks
    for line in sanitize(first).splitlines():
        assert not re.search(r"\d\.\d+e[+-]\d\d", line), line  # no unlabelled machine numbers


# ---------------------------------------------------------------------------
# Odd inputs never crash


def tensors():
    shapes = st.lists(st.integers(0, 4), max_size=3).map(tuple)
    dtypes = st.sampled_from([torch.float32, torch.float64, torch.float16, torch.int64, torch.bool])
    values = st.sampled_from([0.0, 1.0, -2.5, float("nan"), float("inf"), 1e-30, 1e30])
    return st.builds(_make, shapes, dtypes, values, st.booleans())


def _make(shape, dtype, value, requires_grad):
    """A tensor of `shape` filled with value, value+1, value+2, ... (or a bool pattern)."""
    x = torch.arange(math.prod(shape), dtype=torch.float64).view(shape) + value
    x = x > 1 if dtype == torch.bool else x.to(dtype)
    if requires_grad and x.is_floating_point():
        x.requires_grad_(True)
    return x


def odd_things():
    return st.one_of(
        st.none(), st.just(...), st.integers(-3, 3), st.floats(allow_nan=True, allow_infinity=True),
        st.text(max_size=5), st.lists(st.floats(-1, 1), max_size=4),
        st.lists(st.lists(st.integers(0, 2), max_size=3), max_size=3),
        st.builds(lambda n: np.arange(n, dtype=np.float64), st.integers(0, 5)),
        st.builds(lambda n: np.ones((n, 2), dtype=np.float32), st.integers(0, 3)),
        st.builds(lambda: np.array(["a", "b"])), st.builds(lambda: {"a": 1}), st.builds(object),
        st.builds(lambda: torch.ones(2, dtype=torch.complex64)), st.builds(lambda: torch.eye(2).to_sparse()),
        tensors(),
    )


def references():
    grad_dtypes = st.sampled_from([torch.float32, torch.float64, torch.float16])
    with_a_grad = st.builds(lambda x, dtype: with_grad(x.detach().to(dtype)), tensors(), grad_dtypes)
    no_retain_grad = st.builds(lambda: torch.ones(2, requires_grad=True) * 2)
    return st.one_of(with_a_grad, tensors(), no_retain_grad, odd_things())


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(dt=odd_things(), t=references())
def test_odd_inputs_never_crash_nor_warn(dt, t):
    out = io.StringIO()
    with warnings.catch_warnings(), contextlib.redirect_stdout(out):
        warnings.simplefilter("error")  # a warning inside cmp would become an error and be caught below
        result = cmp("odd", dt, t, strict=False)
    assert isinstance(result, CheckResult)
    assert result.diagnosis != "internal_error", result.hint  # handled on purpose, not by the safety net
    assert result.diagnosis is None or set(result.diagnosis.split("+")) <= set(RULE_IDS)
    assert result.status in ("exact", "rounding", "wrong", "not done", "no reference")
    assert isinstance(result.exact, bool) and isinstance(result.approx, bool)
    assert bool(result) == result.approx
    assert result.hint is None if result.status == "exact" else isinstance(result.hint, str)
    assert MAIN_LINE.match(out.getvalue().splitlines()[0])


@settings(max_examples=80, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(dt=odd_things(), t=references())
def test_strict_mode_only_raises_gradient_error(dt, t):
    try:
        with contextlib.redirect_stdout(io.StringIO()):
            result = cmp("odd", dt, t, strict=True)
    except GradientError as err:
        assert str(err).startswith("odd: ")
        return
    assert result


def test_a_small_real_bug_is_not_mistaken_for_rounding(capsys):
    """A slip in one term only (31/32 instead of 1 on a fifth of it): 0.6% off that term, far from
    rounding but small enough to look like noise to a student. It must be called wrong."""
    g = torch.Generator().manual_seed(0)
    x, y = torch.randn(32, 64, generator=g), torch.randn(32, 64, generator=g)
    t = with_grad(x + y)
    result = cmp("hprebn", x + y * 31 / 32 * 0.2 + y * 0.8, t)
    assert not result and result.status == "wrong"
    assert "far above float32 rounding" in result.hint and "rounding, not a mistake" not in result.hint


# ---------------------------------------------------------------------------
# Properties, each with an oracle


float_tensors = st.builds(
    lambda shape, dtype, seed: torch.randn(shape, generator=torch.Generator().manual_seed(seed)).to(dtype),
    st.lists(st.integers(1, 5), min_size=0, max_size=3).map(tuple),
    st.sampled_from([torch.float32, torch.float64]), st.integers(0, 2**31))


@settings(max_examples=100, deadline=None)
@given(ref=float_tensors)
def test_the_reference_itself_is_always_exact(ref):
    with contextlib.redirect_stdout(io.StringIO()):
        result = cmp("x", ref.clone(), with_grad(ref))
    assert result.status == "exact" and result.exact and result and result.hint is None


@settings(max_examples=100, deadline=None)
@given(ref=float_tensors, noise=st.sampled_from([0.0, 1e-9, 1e-6, 1e-3, 1.0]), seed=st.integers(0, 99),
       dtype=st.sampled_from([torch.float32, torch.float64]))
def test_truthiness_is_allclose_with_the_same_shape_and_dtype(ref, noise, seed, dtype):
    dt = (ref + noise * torch.randn(ref.shape, generator=torch.Generator().manual_seed(seed))).to(dtype)
    with contextlib.redirect_stdout(io.StringIO()):
        result = cmp("x", dt, with_grad(ref))
    assert bool(result) == (dt.dtype == ref.dtype and torch.allclose(dt, ref))


@settings(max_examples=60, deadline=None)
@given(num=st.integers(1, 40), den=st.integers(1, 40), negative=st.booleans(), seed=st.integers(0, 99))
def test_a_constant_factor_is_named_exactly(num, den, negative, seed):
    factor = Fraction(num, den) * (-1 if negative else 1)
    n, d = factor.numerator * (-1 if negative else 1), factor.denominator  # the fraction in lowest terms
    assume(factor != 1 and (n == 1 or d == 1 or abs(n - d) == 1 or (n <= 4 and d <= 4)))  # those cmp names
    ref = torch.randn(8, 6, generator=torch.Generator().manual_seed(seed), dtype=torch.float64)
    with contextlib.redirect_stdout(io.StringIO()):
        result = cmp("x", ref * float(factor), with_grad(ref))
    assert result.diagnosis == "constant_factor" and f"dx is {factor} times the right answer" in result.hint


def test_a_size_1_dim_in_the_wrong_place_is_a_sum_over_the_wrong_dim():
    X, dY = torch.randn(3, 3, dtype=torch.float64), torch.randn(3, 3, dtype=torch.float64)
    result = cmp("col", (X * dY).sum(0, keepdim=True), with_grad((X * dY).sum(1, keepdim=True)))
    assert result.diagnosis == "size_1_dim_moved" and "wrong dim" in result.hint
    assert "drop the size-1 dim" not in result.hint


def test_a_missing_size_1_dim_does_not_claim_a_sum():
    result = cmp("x", torch.ones(4), with_grad(torch.ones(4, 1)))
    assert result.diagnosis == "keepdim" and "as when a sum" in result.hint and "the size-1 dim 1 is missing" in result.hint


def test_a_single_number_is_not_explained_by_a_constant_factor():
    x = torch.tensor(0.7, dtype=torch.float64, requires_grad=True)
    h = torch.tanh(x)
    h.backward()
    result = cmp("x", 1 - x.detach()**2, x)  # tanh's derivative at its input: a single wrong number
    assert result.diagnosis == "tanh_from_its_input"
    assert cmp("x", -x.grad, x).diagnosis == "constant_factor"  # a sign flip still is one
    result = cmp("x", x.grad * 0.8, x)
    assert result.diagnosis == "wrong_values" and "times the right answer" not in result.hint


def test_the_label_term_of_a_single_example():
    logits = torch.randn(27, dtype=torch.float64, requires_grad=True)
    torch.nn.functional.cross_entropy(logits.view(1, -1), torch.tensor([5])).backward()
    result = cmp("l", torch.softmax(logits.detach(), 0), logits)
    assert result.diagnosis == "label_term_missing" and "one entry, too high by 1" in result.hint


def test_counts_are_spelled_out():
    ref = torch.randn(4, 4, generator=torch.Generator().manual_seed(9))
    dt = ref.clone()
    dt[0] = 3 * ref[0] + 1  # larger, so not "too small" like an overwritten row
    hint = cmp("x", dt, with_grad(ref)).hint
    assert "right in 3 of 4 rows; the other row, dx[0], is wrong" in hint
    dt = ref.clone()
    dt[0, 0] = 0
    assert "0 in 1 entry where" in cmp("x", dt, with_grad(ref)).hint


def test_a_label_entry_too_low_is_said_without_a_double_negative():
    logits = torch.randn(27, dtype=torch.float64, requires_grad=True)
    torch.nn.functional.cross_entropy(logits.view(1, -1), torch.tensor([5])).backward()
    dt = logits.grad.clone()
    dt[5] -= 1
    hint = cmp("l", dt, logits).hint
    assert "one entry, too low by 1" in hint and "by -1" not in hint


def test_a_variant_name_keeps_the_tensor_name_in_messages():
    result = cmp("hprebn (paths)", torch.ones(3), with_grad(torch.ones(3, 1)))
    assert "dhprebn has shape (3,) but hprebn has shape (3, 1)" in result.hint


def test_an_empty_summary_has_no_empty_table(t, capsys):
    cmp("a", None, t)
    assert str(summary()) == "not done yet (1): a\n0 of 1 correct"


def test_a_numerical_check_with_record_false_stays_out_of_the_summary(capsys):
    x = torch.randn(3, dtype=torch.float64)
    check_numerically("demo", torch.tanh, x, torch.ones(3), -x, record=False)
    assert summary().total == 0


def test_below_a_wrong_gradient_only_the_blame_is_given_for_values(capsys):
    """dy = 2 * the right one here, but so is dz above it: "2 times" could be only z's error."""
    w, y, z, v, u = chain()
    cmp("z", z.grad * 2, z)
    result = cmp("y", y.grad * 2, y)
    assert result.diagnosis == "wrong_upstream" and "dy is 2 times" not in result.hint  # not its own diagnosis
    assert "your dz is 2 times the right one, and so is this answer" in result.hint
    assert "fix it first, then check this one again" in result.hint
    shape = cmp("w", w.grad.view(4, 1), w)  # right numbers in a wrong shape: the slip is the student's own
    assert shape.diagnosis == "keepdim" and "fix it first" not in shape.hint
    shape = cmp("w", w.grad.view(4, 1) * 2, w)  # wrong numbers too: the shape, and the blame for the numbers
    assert "fix it first" in shape.hint


def test_the_generic_hint_names_the_rounding_of_the_gradients_dtype(capsys):
    g = torch.Generator().manual_seed(11)
    ref = torch.randn(6, 5, generator=g, dtype=torch.float64)
    result = cmp("x", ref + torch.randn(6, 5, generator=g, dtype=torch.float64), with_grad(ref))
    assert result.diagnosis == "wrong_values" and "float64 rounding, which stays near 2e-16" in result.hint
    x = torch.randn(5, dtype=torch.float64)
    result = check_numerically("x", torch.tanh, x, torch.ones(5), torch.randn(5, dtype=torch.float64))
    assert result.hint.splitlines()[-1].startswith("wrong values: check")  # no second, different rel err


def test_a_gradient_that_still_needs_broadcasting_says_so():
    ref = torch.full((32, 64), 0.5)
    result = cmp("bndiff2", torch.full((1, 64), 0.5), with_grad(ref))
    assert result.diagnosis == "needs_broadcast" and result.hint.startswith("right values once broadcast")
    assert "if you summed" not in result.hint


def test_messages_call_your_gradient_by_the_name_you_gave_it():
    """Exercise 2's blank is grad_lse, for the tensor l_lse."""
    l_lse = with_grad(torch.randn(4, 3, generator=torch.Generator().manual_seed(12)))
    grad_lse = l_lse.grad * 2
    assert "grad_lse is 2 times the right answer" in cmp("l_lse", grad_lse, l_lse).hint
    grad = l_lse.grad * 2  # a loop variable that is no gradient's name: the usual name is kept
    assert "dl_lse is 2 times" in cmp("l_lse", grad, l_lse).hint


def test_a_right_answer_is_never_called_stale():
    t = with_grad(torch.randn(3, 4, generator=torch.Generator().manual_seed(13)))
    Yb = torch.tensor([0, 1, 2])
    assert cmp("t", t.grad.clone(), t)
    Yb = torch.tensor([2, 1, 0])  # the batch changes, the answer is still the reference's
    assert cmp("t", t.grad.clone(), t).status == "exact" and Yb is not None


def test_a_new_backward_pass_makes_a_changed_batch_fine_again():
    w = torch.randn(3, 4, requires_grad=True)
    Yb = torch.tensor([0, 1, 2])
    (w * 2).sum().backward()
    assert cmp("w", torch.full((3, 4), 2.0), w)
    Yb = torch.tensor([2, 1, 0])
    assert cmp("w", torch.full((3, 4), 3.0), w).diagnosis == "stale_state"
    w.grad = None
    (w * 3).sum().backward()  # forward and backward again, on the new batch
    result = cmp("w", torch.full((3, 4), 4.0), w)
    assert result.diagnosis == "constant_factor" and Yb is not None


def test_summary_html_escapes_hints():
    result = CheckResult("x", False, False, 1.0, 1.0, "use a < b & c > d <script>", Status.WRONG)
    page = summary([result])._repr_html_()
    assert "use a &lt; b &amp; c &gt; d &lt;script&gt;" in page and "<script>" not in page


def test_a_product_with_a_python_number_in_the_graph_is_no_trouble():
    x = torch.randn(3, 4, dtype=torch.float64, requires_grad=True)
    y = 0.25 * x  # MulBackward0 keeps no tensor for the number 0.25
    y.retain_grad()
    (y * torch.arange(12.0, dtype=torch.float64).view(3, 4)).sum().backward(retain_graph=True)
    cmp("y", y.grad, y)
    result = cmp("x", y.grad * 0.5 + 1e-3 * torch.randn(3, 4, dtype=torch.float64), x)
    assert not result and result.diagnosis != "internal_error"


def test_the_right_step_below_a_wrong_gradient_is_autograds_and_changes_no_grad(capsys):
    """cmp applies autograd's backward functions to your gradient above (torch.autograd.grad would add to the
    .grad of every tensor that retains it, and so change the references of the next checks)."""
    g = torch.Generator().manual_seed(21)
    x = torch.randn(5, 3, generator=g, requires_grad=True)
    w = torch.randn(3, 3, generator=g)
    s = torch.randn(1, 3, generator=g)
    a = (x @ w) * s          # a broadcast product: the engine sums s's gradient to (1, 3)
    b = torch.tanh(a)
    c = b.max(1, keepdim=True).values + b.sum(1, keepdim=True)
    for tensor in (a, b, c):
        tensor.retain_grad()
    (c * torch.randn(5, 1, generator=g)).sum().backward(retain_graph=True)
    before = {name: tensor.grad.clone() for name, tensor in dict(x=x, a=a, b=b, c=c).items()}
    your_dc = c.grad * 3
    expected = torch.autograd.grad(c, [x, a], your_dc, retain_graph=True)
    for name, tensor in dict(a=a, b=b, c=c).items():  # undo what autograd.grad added
        tensor.grad = before[name].clone()
    assert all(torch.equal(found, right) for found, right in
               zip(cmp_module._backward_from(c, your_dc, [x, a]), expected))
    cmp("c", your_dc, c)
    result = cmp("x", expected[0], x)
    assert result.diagnosis == "upstream_only" and "your way from dc to dx is right" in result.hint
    assert all(torch.equal(tensor.grad, before[name]) for name, tensor in dict(x=x, a=a, b=b, c=c).items())


def test_ninja_mode_prints_only_the_lectures_columns(capsys):
    ref = torch.randn(32, 27, generator=torch.Generator().manual_seed(5))
    try:
        cmp_module.hints(False)
        result = cmp("logits", ref * 32, with_grad(ref))
        hidden = capsys.readouterr().out
        assert "->" not in hidden and "exact: False" in hidden and "32 times" in result.hint  # kept in the result
        cmp("logits", None, with_grad(ref))
        assert "not done yet" in capsys.readouterr().out  # still says what is missing
    finally:
        cmp_module.hints(True)
    cmp("logits", ref * 32, with_grad(ref))
    assert "-> dlogits is 32 times the right answer" in capsys.readouterr().out


@pytest.mark.parametrize("got, want", [((32, 64), (1, 64)), ((64,), (1, 64)), ((32, 30), (32, 3, 10)),
                                       ((1, 64), (64,)), ((4, 32, 64), (1, 64))])
def test_shape_hints_name_the_problem_not_the_call_that_fixes_it(got, want):
    """The fix of a shape slip is often the whole answer line (db2 = dlogits.sum(0)): the hint says it in words."""
    ref = torch.randn(want, dtype=torch.float64)
    dt = ref.reshape(got) if ref.numel() == math.prod(got) else torch.randn(got, dtype=torch.float64)
    with contextlib.redirect_stdout(io.StringIO()) as printed:
        result = cmp("x", dt, with_grad(ref))
    assert not result and ".sum(" not in result.hint and ".view(" not in result.hint
    assert "nan" not in printed.getvalue()


def test_a_gradient_checked_in_a_wrong_shape_is_not_blamed(capsys):
    """03's step 3: dbnvar checked in a wrong shape, then a dbnmeani that does not use it: cmp judges dbnmeani
    on its own (a shape error above says nothing about the numbers below)."""
    w, y, z, v, u = chain()
    cmp("z", torch.stack([z.grad, z.grad]), z)  # (2, 4) for (4,): its numbers cannot be lined up
    result = cmp("y", y.grad * 2, y)
    assert result.diagnosis == "constant_factor" and "fix it first" not in result.hint


def test_a_square_product_summed_over_the_other_dim_is_named(capsys):
    """The warm-up's 3a: Y = X * col with col (3, 1); summing over dim 0 fits the shape once transposed."""
    reset()
    g = torch.Generator().manual_seed(3)
    X = torch.randn(3, 3, generator=g, dtype=torch.float64, requires_grad=True)
    col = torch.randn(3, 1, generator=g, dtype=torch.float64, requires_grad=True)
    Y = X * col
    Y.retain_grad()
    (Y * torch.randn(3, 3, generator=g, dtype=torch.float64)).sum().backward(retain_graph=True)
    cmp("Y", Y.grad, Y)
    result = cmp("col", (X.detach() * Y.grad).sum(0, keepdim=True).T, col)
    assert result.diagnosis == "summed_over_another_dim", result.hint
    assert "summed over dim 0" in result.hint and "copied along dim 1" in result.hint
    assert "sum(1" not in result.hint  # a question, not the line
    assert cmp("col", (X.detach() * Y.grad).sum(1, keepdim=True), col)  # the right sum is accepted


def test_a_class_can_turn_why_off(t, capsys):
    import cmp as cmp_module
    cmp_module.hints(why=False)
    try:
        cmp("x", t.grad * 2, t)
        assert capsys.readouterr().out.splitlines()[1:] == ["  -> dx is 2 times the right answer"]
        cmp_module.why()
        assert capsys.readouterr().out.startswith("why() is off here")
        cmp_module.hints(explain=True, why=False)  # no back door through explain
        cmp("x", t.grad * 2, t)
        assert capsys.readouterr().out.splitlines()[1:] == ["  -> dx is 2 times the right answer"]
    finally:
        cmp_module.hints()
    cmp("x", t.grad * 2, t)
    assert "run why()" in capsys.readouterr().out



def test_a_class_gets_facts_only_in_the_first_line(t, capsys):
    """hints(why=False): a factor or a shape is a fact and stays; a pattern that points to a branch or a tensor
    (here: the incoming gradient unchanged) becomes 'wrong values', in cmp's line and in summary()."""
    import cmp as cmp_module
    reset()
    x = torch.randn(4, 3, dtype=torch.float64, requires_grad=True)
    y = torch.tanh(x)
    y.retain_grad()
    (y * torch.randn(4, 3, dtype=torch.float64, generator=torch.Generator().manual_seed(1))).sum().backward(
        retain_graph=True)
    cmp("y", y.grad, y)
    capsys.readouterr()
    cmp_module.hints(why=False)
    try:
        result = cmp("x", y.grad, x)  # the local derivative left out
        assert result.diagnosis == "incoming_only"
        shown = capsys.readouterr().out.splitlines()[1:]
        assert len(shown) == 1 and shown[0].startswith("  -> wrong values (off by up to ") and "dy" not in shown[0]
        assert "dy" not in str(cmp_module.summary())
        cmp("x", x.grad * 2, x)
        assert capsys.readouterr().out.splitlines()[1:] == ["  -> dx is 2 times the right answer"]
        cmp("x", x.grad.sum(0), x)
        assert capsys.readouterr().out.splitlines()[1:] == ["  -> dx has shape (3,) but x has shape (4, 3)"]
    finally:
        cmp_module.hints()
    cmp("x", y.grad, x)
    assert "dy, unchanged" in capsys.readouterr().out  # the default: what was measured


def test_ninja_mode_still_gives_two_shapes_that_differ(t, capsys):
    """maxdiff is "-" when the shapes cannot be lined up: without the shapes a ninja would not know why."""
    import cmp as cmp_module
    cmp_module.hints(False)
    try:
        cmp("x", t.grad.reshape(1, -1).repeat(2, 1), t)
        shown = capsys.readouterr().out.splitlines()
        assert len(shown) == 2 and shown[1].startswith("  -> dx has shape (2, ") and ":" not in shown[1]
    finally:
        cmp_module.hints()


def _batchnorm_column(x):
    mu = x.mean(0, keepdim=True)
    var = ((x - mu) ** 2).sum(0, keepdim=True) / (x.shape[0] - 1)
    return (x - mu) * var ** -0.5


@pytest.mark.parametrize("dx", [
    [[0.0], [-0.2], [0.2], [0.4]],          # the direct path only, s * g (a teacher's crash, round F)
    [[0.0], [-0.25], [0.25], [0.5]],        # 0.25 * g
    [[0.12], [-0.24], [0.08], [0.05]],      # one entry off
    [[-0.12], [0.24], [-0.08], [-0.04]],    # the sign
    [[0.124], [-0.248], [0.083], [0.041]],  # n/(n-1) on all of it
    [[0.12, 0.0], [-0.24, 0.0], [0.08, 0.0], [0.04, 0.0]],  # a wrong shape
    [[0.0], [0.0], [0.0], [0.0]],           # zeros
])
def test_check_numerically_never_crashes_on_03s_column_worked_by_hand(dx, capsys):
    """03's column of four, worked by hand and checked by finite differences: every slip gets a verdict."""
    x = torch.tensor([[0.0], [4.0], [6.0], [12.0]], dtype=torch.float64)
    g = torch.tensor([[0.0], [-1.0], [1.0], [2.0]], dtype=torch.float64)
    result = check_numerically("x_col", _batchnorm_column, x, g, torch.tensor(dx, dtype=torch.float64), strict=False)
    assert not result and result.diagnosis != "internal_error", result.hint


def test_check_numerically_calls_dx_and_x_by_your_names(capsys):
    """03's column by hand: a newcomer read 'dx is right except ...' for the variable dx_col."""
    import cmp as cmp_module
    x_col = torch.tensor([[0.0], [4.0], [6.0], [12.0]], dtype=torch.float64)
    g_col = torch.tensor([[0.0], [-1.0], [1.0], [2.0]], dtype=torch.float64)
    dx_col = 2 * g_col * torch.cos(x_col)  # the right one is g_col * cos(x_col)
    result = cmp_module.check_numerically("x_col", torch.sin, x_col, g_col, dx_col)
    assert not result and result.hint.startswith("dx_col is 2 times the estimate"), result.hint
    cmp_module.check_numerically("x_col", torch.sin, x_col, g_col, None)
    assert "not done yet: the dx you passed is still None" in capsys.readouterr().out
