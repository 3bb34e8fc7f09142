"""A catalog of realistic student mistakes on the lecture's network: cmp must reject each one and
say what is wrong; and valid alternative formulations that cmp must accept."""
import pytest
import torch
import torch.nn.functional as F

from cmp import cmp
from lecture import GRAD_NAMES, forward, manual_backward


@pytest.fixture(scope="module")
def net():
    return forward()


@pytest.fixture(scope="module")
def grads(net):
    return manual_backward(net)


def _dC_advanced_index(v, g):
    dC = torch.zeros_like(v.C)
    dC[v.Xb] += g["demb"]  # one write per repeated index: frequent characters come out wrong
    return dC


def _dlogits_softmax_without_minus_one(v, g):
    return F.softmax(v.logits, 1).detach() / v.n  # forgot dlogits[range(n), Yb] -= 1


def _dlogits_fused_without_mean(v, g):
    dlogits = F.softmax(v.logits, 1).detach()
    dlogits[range(v.n), v.Yb] -= 1
    return dlogits  # forgot the 1/n of the mean


def _dlogprobs_without(scale):
    def mistake(v, g):
        dlogprobs = torch.zeros_like(v.logprobs)
        dlogprobs[range(v.n), v.Yb] = scale
        return dlogprobs
    return mistake


def _dhprebn_fused(v, g, with_1_over_n=True, bessel=True):
    dhpreact = g["dhpreact"]
    n = v.n
    c = n / (n - 1) if bessel else 1.0
    inner = n * dhpreact - dhpreact.sum(0) - c * v.bnraw * (dhpreact * v.bnraw).sum(0)
    scale = v.bngain * v.bnvar_inv / n if with_1_over_n else v.bngain * v.bnvar_inv
    return (scale * inner).detach()


def _dhprebn_mean_branch_without_1_over_n(v, g):
    dhprebn = g["dbndiff"].clone()
    dhprebn += torch.ones_like(v.hprebn) * g["dbnmeani"]  # 1.0 instead of 1/n
    return dhprebn


def _dcounts(branch):
    def mistake(v, g):
        dcounts_sum = g["dcounts_sum"]
        first = v.counts_sum_inv * g["dprobs"]
        second = torch.ones_like(v.counts) * dcounts_sum
        return (first if branch == "first only" else second).detach()
    return mistake


# (id, tensor, mistake(net, grads) -> dt, expected status, words the hint must contain)
MISTAKES = [
    ("dlogprobs without 1/n", "logprobs", _dlogprobs_without(-1.0), "wrong", ["32 times", "1/32", "mean"]),
    ("dlogprobs without minus", "logprobs", _dlogprobs_without(1.0 / 32), "wrong", ["-1 times", "sign"]),
    ("dlogprobs -1/n everywhere", "logprobs", lambda v, g: torch.full_like(v.logprobs, -1.0 / v.n), "wrong",
     ["right in 32 of 864 entries", "non-zero in 832", "exactly 0"]),
    ("dprobs = 1/probs without chain rule", "probs", lambda v, g: (1.0 / v.probs).detach(), "wrong",
     ["non-zero", "chain rule"]),
    ("dcounts_sum_inv missing the sum", "counts_sum_inv", lambda v, g: (v.counts * g["dprobs"]).detach(), "wrong",
     ["(32, 27)", "(32, 1)", "sum over dim 1 with keepdim=True", ".sum(1, keepdim=True)"]),
    ("dcounts_sum_inv missing keepdim", "counts_sum_inv", lambda v, g: (v.counts * g["dprobs"]).sum(1).detach(),
     "wrong", ["right values", "(32,)", ".sum(1, keepdim=True)"]),
    ("dcounts_sum power rule sign", "counts_sum", lambda v, g: (v.counts_sum**-2 * g["dcounts_sum_inv"]).detach(),
     "wrong", ["-1 times", "sign"]),
    ("dcounts missing the sum branch", "counts", _dcounts("first only"), "wrong",
     ["same along dim 1", "+="]),
    ("dcounts missing the direct branch", "counts", _dcounts("second only"), "wrong",
     ["right in 832 of 864 entries", "+="]),
    ("dlogits softmax without -1", "logits", _dlogits_softmax_without_minus_one, "wrong",
     ["right in 832 of 864 entries", "+="]),
    ("dlogits fused without 1/n", "logits", _dlogits_fused_without_mean, "wrong", ["32 times", "1/32"]),
    ("dh transposed answer", "h", lambda v, g: (v.W2 @ g["dlogits"].T).detach(), "wrong",
     ["transpose", "(64, 32)"]),
    ("dW2 with operands swapped", "W2", lambda v, g: (g["dlogits"].T @ v.h).detach(), "wrong",
     ["transpose", "(27, 64)"]),
    ("db2 summed over dim 1", "b2", lambda v, g: g["dlogits"].sum(1), "wrong", ["(32,)", "(27,)", "dim"]),
    ("db2 not summed", "b2", lambda v, g: g["dlogits"], "wrong", [".sum(0)", "broadcast"]),
    ("db2 summed with keepdim", "b2", lambda v, g: g["dlogits"].sum(0, keepdim=True), "wrong",
     ["right values", "drop the size-1 dim"]),
    ("dhpreact wrong sign", "hpreact", lambda v, g: ((v.h**2 - 1.0) * g["dh"]).detach(), "wrong",
     ["-1 times", "sign"]),
    ("dhpreact uses hpreact instead of h", "hpreact", lambda v, g: ((1.0 - v.hpreact**2) * g["dh"]).detach(),
     "wrong", ["wrong values", "rel err: "]),
    ("dbngain without sum", "bngain", lambda v, g: (v.bnraw * g["dhpreact"]).detach(), "wrong",
     ["sum over dim 0 with keepdim=True", ".sum(0, keepdim=True)"]),
    ("dbngain without keepdim", "bngain", lambda v, g: (v.bnraw * g["dhpreact"]).sum(0).detach(), "wrong",
     ["right values", "(64,)", "(1, 64)", "keepdim=True"]),
    ("dbnbias without sum", "bnbias", lambda v, g: g["dhpreact"], "wrong", [".sum(0, keepdim=True)"]),
    ("dbnvar_inv missing the sum", "bnvar_inv", lambda v, g: (v.bndiff * g["dbnraw"]).detach(), "wrong",
     [".sum(0, keepdim=True)"]),
    ("dbnvar missing the -0.5", "bnvar", lambda v, g: ((v.bnvar + 1e-5)**-1.5 * g["dbnvar_inv"]).detach(), "wrong",
     ["-2 times", "power rule"]),
    ("dbndiff2 with 1/n instead of 1/(n-1)", "bndiff2",
     lambda v, g: (1.0 / v.n * torch.ones_like(v.bndiff2) * g["dbnvar"]).detach(), "wrong",
     ["31/32 times", "Bessel", "n-1 = 31"]),
    ("dbndiff missing the bndiff2 branch", "bndiff", lambda v, g: (v.bnvar_inv * g["dbnraw"]).detach(), "wrong",
     ["wrong values", "+="]),
    ("dbnmeani (64,) as in the lecture", "bnmeani", lambda v, g: (-g["dbndiff"]).sum(0), "wrong",
     ["right values", "(64,)", "(1, 64)", "keepdim=True"]),
    ("dhprebn mean branch without 1/n", "hprebn", _dhprebn_mean_branch_without_1_over_n, "wrong",
     ["same along dim 0", "+="]),
    ("dhprebn fused without 1/n", "hprebn", lambda v, g: _dhprebn_fused(v, g, with_1_over_n=False), "wrong",
     ["32 times", "1/32"]),
    ("dW1 with operands swapped", "W1", lambda v, g: (g["dhprebn"].T @ v.embcat).detach(), "wrong",
     ["transpose", "(64, 30)"]),
    ("dembcat transposed answer", "embcat", lambda v, g: (v.W1 @ g["dhprebn"].T).detach(), "wrong",
     ["transpose"]),
    ("db1 summed over dim 1", "b1", lambda v, g: g["dhprebn"].sum(1), "wrong", ["(32,)", "(64,)", "dim"]),
    ("demb without view", "emb", lambda v, g: g["dembcat"], "wrong", ["(32, 30)", "(32, 3, 10)", ".view"]),
    ("demb viewed as (32, 10, 3)", "emb", lambda v, g: g["dembcat"].view(32, 10, 3), "wrong",
     ["numbers are right", ".view(32, 3, 10)"]),
    ("dC with dC[Xb] += demb", "C", _dC_advanced_index, "wrong", ["rows", "dC[Xb] += demb", "index_add_"]),
    ("dW1 all zeros", "W1", lambda v, g: torch.zeros_like(v.W1), "wrong", ["all zeros"]),
    ("dh with a NaN", "h", lambda v, g: _with(g["dh"], 3, 7, float("nan")), "wrong", ["1 NaN"]),
    ("dlogits with an inf", "logits", lambda v, g: _with(g["dlogits"], 0, 0, float("inf")), "wrong", ["1 inf"]),
    ("dW2 in float64, right values", "W2", lambda v, g: g["dW2"].double(), "wrong",
     ["wrong dtype", "float64", "float32", "right values"]),
    ("dh in float64, wrong values", "h", lambda v, g: 2 * g["dh"].double(), "wrong",
     ["wrong dtype", "float64", "2 times"]),
    ("dlogprobs as an int tensor", "logprobs", lambda v, g: torch.zeros_like(v.logprobs, dtype=torch.long),
     "wrong", ["wrong dtype", "int64", "integers"]),
    ("dh is the tensor h itself", "h", lambda v, g: v.h.detach(), "wrong", ["wrong values"]),
    ("dbnvar_inv wrong sign", "bnvar_inv", lambda v, g: -g["dbnvar_inv"], "wrong", ["-1 times"]),
    ("dhprebn fused without Bessel", "hprebn", lambda v, g: _dhprebn_fused(v, g, bessel=False), "wrong",
     ["rel err: "]),
    ("dlogprobs not done", "logprobs", lambda v, g: ..., "not done", ["not done yet", "`...`"]),
    ("dprobs still None", "probs", lambda v, g: None, "not done", ["not done yet", "None"]),
]


def _with(tensor, i, j, value):
    tensor = tensor.clone()
    tensor[i, j] = value
    return tensor


@pytest.mark.parametrize("label, tensor, mistake, status, words", MISTAKES, ids=[m[0] for m in MISTAKES])
def test_mistake_is_diagnosed(net, grads, label, tensor, mistake, status, words, capsys):
    result = cmp(tensor, mistake(net, grads), getattr(net, tensor), strict=False)
    printed = capsys.readouterr().out
    assert not result
    assert result.status == status
    assert result.hint is not None
    for word in words:
        assert word in result.hint, f"{word!r} not in hint: {result.hint}"
    assert printed.splitlines()[1].startswith("  -> ")


def test_catalog_is_large_and_varied():
    wrong = [m for m in MISTAKES if m[3] == "wrong"]
    assert len(wrong) >= 25
    assert len({m[1] for m in wrong}) >= 15


# ---------------------------------------------------------------------------
# Valid alternative formulations: cmp must accept them all.


def _dlogits_max_branch_where(v, g):
    dlogits = g["dnorm_logits"].clone()
    is_max = v.logits == v.logit_maxes
    return dlogits + torch.where(is_max, g["dlogit_maxes"], torch.zeros_like(dlogits))


def _dlogits_max_branch_scatter(v, g):
    dlogits = g["dnorm_logits"].clone()
    index = v.logits.max(1, keepdim=True).indices
    return dlogits.scatter_add(1, index, g["dlogit_maxes"])


def _dlogits_fused(v, g):
    dlogits = F.softmax(v.logits, 1).detach()
    dlogits[range(v.n), v.Yb] -= 1
    return dlogits / v.n


def _dC_one_hot(v, g):
    one_hot = F.one_hot(v.Xb, num_classes=27).float()  # (32, 3, 27)
    return one_hot.view(-1, 27).T @ g["demb"].view(-1, 10)


def _dC_index_add(v, g):
    return torch.zeros_like(v.C).index_add_(0, v.Xb.view(-1), g["demb"].view(-1, 10))


def _dC_scatter_add(v, g):
    index = v.Xb.view(-1, 1).expand(-1, 10)
    return torch.zeros_like(v.C).scatter_add_(0, index, g["demb"].view(-1, 10))


def _dC_loop_over_flat(v, g):
    dC = torch.zeros_like(v.C)
    flat_demb = g["demb"].view(-1, 10)
    for i, ix in enumerate(v.Xb.view(-1).tolist()):
        dC[ix] += flat_demb[i]
    return dC


def _dlogprobs_one_hot(v, g):
    return -F.one_hot(v.Yb, num_classes=27).float() / v.n


def _dbnvar_division(v, g):
    return (-0.5 * g["dbnvar_inv"] / (v.bnvar + 1e-5)**1.5).detach()


def _dhprebn_fused_alt(v, g):
    return _dhprebn_fused(v, g)


def _with_requires_grad(v, g):
    return v.h.T @ g["dlogits"]  # built from h, which requires grad: cmp detaches it


ALTERNATIVES = [
    ("dW2 with einsum", "W2", lambda v, g: torch.einsum("ni,nj->ij", v.h.detach(), g["dlogits"])),
    ("dh with einsum", "h", lambda v, g: torch.einsum("nj,ij->ni", g["dlogits"], v.W2.detach())),
    ("dW1 with einsum", "W1", lambda v, g: torch.einsum("ni,nj->ij", v.embcat.detach(), g["dhprebn"])),
    ("dlogits max branch with torch.where", "logits", _dlogits_max_branch_where),
    ("dlogits max branch with scatter_add", "logits", _dlogits_max_branch_scatter),
    ("dlogits fused with softmax", "logits", _dlogits_fused),
    ("dC with one_hot matmul", "C", _dC_one_hot),
    ("dC with index_add_", "C", _dC_index_add),
    ("dC with scatter_add_", "C", _dC_scatter_add),
    ("dC with a loop over flat indices", "C", _dC_loop_over_flat),
    ("dhpreact with 1 - h*h", "hpreact", lambda v, g: ((1 - v.h * v.h) * g["dh"]).detach()),
    ("dprobs by division", "probs", lambda v, g: (g["dlogprobs"] / v.probs).detach()),
    ("dlogprobs with one_hot", "logprobs", _dlogprobs_one_hot),
    ("dbnvar by division", "bnvar", _dbnvar_division),
    ("dhprebn fused formula", "hprebn", _dhprebn_fused_alt),
    ("db2 as ones @ dlogits", "b2", lambda v, g: torch.ones(v.n) @ g["dlogits"]),
    ("dbnmeani with keepdim", "bnmeani", lambda v, g: -g["dbndiff"].sum(0, keepdim=True)),
    ("dW2 that requires grad", "W2", _with_requires_grad),
    ("dcounts_sum by division", "counts_sum", lambda v, g: (-g["dcounts_sum_inv"] / v.counts_sum**2).detach()),
    ("dembcat with W1.t()", "embcat", lambda v, g: g["dhprebn"] @ v.W1.t().detach()),
]


@pytest.mark.parametrize("label, tensor, formula", ALTERNATIVES, ids=[a[0] for a in ALTERNATIVES])
def test_alternative_is_accepted(net, grads, label, tensor, formula, capsys):
    result = cmp(tensor, formula(net, grads), getattr(net, tensor), strict=True)
    assert result
    assert result.status in ("exact", "rounding")


def test_manual_backward_passes_everything_in_strict_mode(net, grads, capsys):
    results = [cmp(name[1:], grads[name], getattr(net, name[1:]), strict=True) for name in GRAD_NAMES]
    assert len(results) == 26 and all(results)


def test_missing_max_branch_is_invisible_by_design(net, grads, capsys):
    # dlogit_maxes is zero up to rounding (the max does not change the loss), so leaving its branch
    # out of dlogits changes the answer only by rounding: cmp can't and shouldn't call that wrong.
    without_max_branch = grads["dnorm_logits"].clone()
    assert not torch.equal(without_max_branch, grads["dlogits"])
    result = cmp("logits", without_max_branch, net.logits)
    assert result and result.status == "rounding"
    assert "rounding" in result.hint
