"""cmp's two tiers: a wrong answer's first line is what cmp measured; why() adds the cause, named as a concept
(a calculus rule, a forward-pass operation, a kind of mistake) or asked as a question, never the fix as code
or as an expression to type. Run over every case of the catalogue (tests/test_cmp_catalog.py)."""
import contextlib
import io
import re

import pytest
import torch

import cmp as cmp_module
from cmp import check_numerically, hints, why
import test_cmp_catalog as catalogue

# What a fix looks like when it is given away: code, or an instruction that can be typed as it stands.
GIVEAWAYS = [
    r"\.sum\(", r"\bkeepdim\b", r"\.T\b", r"\btorch\.", r"@", r"\bdim=", r"\.view\(", r"\.to\(", r"_like\b",
    r"\bsum (it )?over (the )?dims? \d", r"\bkeep(ing)? (it|them|its shape)\b", r"\bdropping it\b",
    r"\bput it back\b", r"\bbroadcast it\b", r"\bmultiply (it |them )?by\b", r"\bdivide (it |them )?by\b",
    r"\bstays? inside\b", r"\bdoes not belong\b", r"\bn/\(n-1\)", r"\buse the (tensor|constant|sum)\b",
    r"\bflatten both\b", r"\bsum it\b",
]


def _cases():
    """(label, run(net, grads) -> CheckResult) for every case of the catalogue."""
    cases = []
    for label, tensor, mistake, *_ in catalogue.MISTAKES:
        def run(net, grads, tensor=tensor, mistake=mistake):
            catalogue._check_everything_before(net, grads, tensor)
            return catalogue.cmp_in_notebook(net, grads, tensor, mistake(net, grads))
        cases.append((label, run))
    cases += [(label, run) for label, _, _, run in catalogue.OTHER_CASES]
    for label, tensor, formula, *_ in catalogue.EXERCISE_3_MISTAKES:
        cases.append((label, lambda net, grads, t=tensor, f=formula: catalogue._exercise_3_check(net, grads, t, f)))
    for label, tensor, formula, wrong, *_ in catalogue.EXERCISE_3_AFTER_WRONG_CHECKS:
        cases.append((label, lambda net, grads, t=tensor, f=formula, w=wrong:
                      catalogue._exercise_3_check(net, grads, t, f, w(net, grads))))
    cases += [(label, run) for label, _, _, run in getattr(catalogue, "TIER_CASES", [])]
    return cases


CASES = _cases()


@pytest.fixture(scope="module")
def net():
    return catalogue.forward_keeping_the_graph()


@pytest.fixture(scope="module")
def grads(net):
    return catalogue.manual_backward(net)


def _tiers(result):
    """(first tier, what why() adds) as a student sees them, or None when nothing is held back."""
    short = cmp_module._report(result, explain=False).split("\n")[1:]
    if not any("run why()" in line for line in short):
        return None
    full = "\n".join(line[5:] for line in cmp_module._report(result).split("\n")[1:])
    first = short[0][5:]
    shared = len(first) if full.startswith(first) else 0  # normalisation_slip: the first tier is a summary
    return first, full[shared:]


@pytest.mark.parametrize("label, run", CASES, ids=[case[0] for case in CASES])
def test_why_names_the_cause_without_giving_the_fix_away(net, grads, label, run):
    with contextlib.redirect_stdout(io.StringIO()):
        result = run(net, grads)
    tiers = _tiers(result)
    if tiers is None:
        return
    first, added = tiers
    assert added.strip(), "why() adds nothing to the first line"
    found = [pattern for pattern in GIVEAWAYS if re.search(pattern, added)]
    assert not found, f"why() gives the fix away ({found}): {added}"


def test_check_numerically_keeps_its_explanation_for_why(capsys):
    """check_numerically has cmp's two tiers: what it measured, then why() for the rest (or all at once)."""
    x = torch.linspace(-2, 2, 12, dtype=torch.float64).view(3, 4)
    dout = torch.linspace(1, 2, 12, dtype=torch.float64).view(3, 4)
    local_only = 1 - torch.tanh(x)**2  # dout left out
    result = check_numerically("tanh", torch.tanh, x, dout, local_only)
    shown = capsys.readouterr().out.splitlines()
    assert result.diagnosis == "local_derivative_only"
    assert shown[1] == "  -> dx looks like the local derivative alone" and "run why()" in shown[2]
    assert "dout" not in "\n".join(shown)
    why()
    assert "the gradient arriving from above, dout" in capsys.readouterr().out
    check_numerically("tanh", torch.tanh, x, dout, local_only, explain=True)
    assert "run why()" not in capsys.readouterr().out
    hints(explain=True)
    try:
        check_numerically("tanh", torch.tanh, x, dout, local_only)
        assert "dout" in capsys.readouterr().out
    finally:
        hints()


def test_what_check_numerically_says_about_its_estimate_comes_at_once(capsys):
    """00's lesson: a kink within h of an input blurs the estimate; that is said on the first line, not held back."""
    xk = torch.tensor([-1.0, 0.5, 3e-6, 2.0], dtype=torch.float64)
    ones = torch.ones(4, dtype=torch.float64)
    result = check_numerically("relu", torch.relu, xk, ones, (xk > 0).double())
    out = capsys.readouterr().out
    assert result.diagnosis == "blurred_estimate" and "probably right" in out and "run why()" not in out
