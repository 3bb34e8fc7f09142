"""The lecture's network (makemore part 4) for tests: forward pass, autograd and a manual backward.

    from lecture import forward, manual_backward, GRAD_NAMES
    net = forward()              # SimpleNamespace: every tensor of the forward pass, .grad filled in
    grads = manual_backward(net) # {"dlogprobs": ..., ..., "dC": ...}: all 26 gradients by hand

Every call builds fresh tensors (same seed, same numbers), so tests may change them freely.
"""
import functools
from types import SimpleNamespace

import torch
import torch.nn.functional as F

import data

SEED = 2147483647
BN_SEED = 42  # bngain/bnbias: their own generator (the lecture leaves them unseeded)
N_EMBD = 10
N_HIDDEN = 64
BATCH = 32
VOCAB = 27
BLOCK_SIZE = 3

# The 26 gradients of exercise 1, in backward order.
GRAD_NAMES = [
    "dlogprobs", "dprobs", "dcounts_sum_inv", "dcounts_sum", "dcounts", "dnorm_logits", "dlogit_maxes",
    "dlogits", "dh", "dW2", "db2", "dhpreact", "dbngain", "dbnbias", "dbnraw", "dbnvar_inv", "dbnvar",
    "dbndiff2", "dbndiff", "dbnmeani", "dhprebn", "dembcat", "dW1", "db1", "demb", "dC",
]
PARAMETERS = ["C", "W1", "b1", "W2", "b2", "bngain", "bnbias"]


@functools.lru_cache(maxsize=1)
def training_set():
    """(Xtr, Ytr) of the lecture's split (built once per test session)."""
    return data.load_split()["train"]


def parameters(n_hidden=N_HIDDEN):
    """The lecture's parameters and the generator they were drawn from (it then draws the batch)."""
    g = torch.Generator().manual_seed(SEED)
    C = torch.randn((VOCAB, N_EMBD), generator=g)
    W1 = torch.randn((N_EMBD * BLOCK_SIZE, n_hidden), generator=g) * (5 / 3) / (N_EMBD * BLOCK_SIZE) ** 0.5
    b1 = torch.randn(n_hidden, generator=g) * 0.1
    W2 = torch.randn((n_hidden, VOCAB), generator=g) * 0.1
    b2 = torch.randn(VOCAB, generator=g) * 0.1
    g_bn = torch.Generator().manual_seed(BN_SEED)  # not g: the lecture's g draws only C..b2, then the batch
    bngain = torch.randn((1, n_hidden), generator=g_bn) * 0.1 + 1.0
    bnbias = torch.randn((1, n_hidden), generator=g_bn) * 0.1
    params = dict(C=C, W1=W1, b1=b1, W2=W2, b2=b2, bngain=bngain, bnbias=bnbias)
    for p in params.values():
        p.requires_grad = True
    return params, g


def forward():
    """The lecture's forward pass on one batch of 32, with loss.backward() run and every .grad kept."""
    params, g = parameters()
    Xtr, Ytr = training_set()
    ix = torch.randint(0, Xtr.shape[0], (BATCH,), generator=g)
    Xb, Yb = Xtr[ix], Ytr[ix]
    C, W1, b1, W2, b2, bngain, bnbias = (params[k] for k in PARAMETERS)
    n = BATCH

    emb = C[Xb]
    embcat = emb.view(emb.shape[0], -1)
    hprebn = embcat @ W1 + b1
    bnmeani = 1 / n * hprebn.sum(0, keepdim=True)
    bndiff = hprebn - bnmeani
    bndiff2 = bndiff**2
    bnvar = 1 / (n - 1) * (bndiff2).sum(0, keepdim=True)
    bnvar_inv = (bnvar + 1e-5)**-0.5
    bnraw = bndiff * bnvar_inv
    hpreact = bngain * bnraw + bnbias
    h = torch.tanh(hpreact)
    logits = h @ W2 + b2
    logit_maxes = logits.max(1, keepdim=True).values
    norm_logits = logits - logit_maxes
    counts = norm_logits.exp()
    counts_sum = counts.sum(1, keepdims=True)
    counts_sum_inv = counts_sum**-1
    probs = counts * counts_sum_inv
    logprobs = probs.log()
    loss = -logprobs[range(n), Yb].mean()

    tensors = dict(logprobs=logprobs, probs=probs, counts=counts, counts_sum=counts_sum,
                   counts_sum_inv=counts_sum_inv, norm_logits=norm_logits, logit_maxes=logit_maxes,
                   logits=logits, h=h, hpreact=hpreact, bnraw=bnraw, bnvar_inv=bnvar_inv, bnvar=bnvar,
                   bndiff2=bndiff2, bndiff=bndiff, bnmeani=bnmeani, hprebn=hprebn, embcat=embcat, emb=emb)
    for t in tensors.values():
        t.retain_grad()
    loss.backward()
    return SimpleNamespace(**tensors, **params, Xb=Xb, Yb=Yb, n=n, loss=loss)


def manual_backward(net):
    """All 26 gradients by hand, as in the lecture (with keepdim=True for dbnmeani)."""
    v = net
    n = v.n
    with torch.no_grad():
        dlogprobs = torch.zeros_like(v.logprobs)
        dlogprobs[range(n), v.Yb] = -1.0 / n
        dprobs = (1.0 / v.probs) * dlogprobs
        dcounts_sum_inv = (v.counts * dprobs).sum(1, keepdim=True)
        dcounts = v.counts_sum_inv * dprobs
        dcounts_sum = (-v.counts_sum**-2) * dcounts_sum_inv
        dcounts += torch.ones_like(v.counts) * dcounts_sum
        dnorm_logits = v.counts * dcounts
        dlogits = dnorm_logits.clone()
        dlogit_maxes = (-dnorm_logits).sum(1, keepdim=True)
        dlogits += F.one_hot(v.logits.max(1).indices, num_classes=v.logits.shape[1]) * dlogit_maxes
        dh = dlogits @ v.W2.T
        dW2 = v.h.T @ dlogits
        db2 = dlogits.sum(0)
        dhpreact = (1.0 - v.h**2) * dh
        dbngain = (v.bnraw * dhpreact).sum(0, keepdim=True)
        dbnraw = v.bngain * dhpreact
        dbnbias = dhpreact.sum(0, keepdim=True)
        dbndiff = v.bnvar_inv * dbnraw
        dbnvar_inv = (v.bndiff * dbnraw).sum(0, keepdim=True)
        dbnvar = (-0.5 * (v.bnvar + 1e-5)**-1.5) * dbnvar_inv
        dbndiff2 = (1.0 / (n - 1)) * torch.ones_like(v.bndiff2) * dbnvar
        dbndiff += (2 * v.bndiff) * dbndiff2
        dhprebn = dbndiff.clone()
        dbnmeani = (-dbndiff).sum(0, keepdim=True)
        dhprebn += 1.0 / n * (torch.ones_like(v.hprebn) * dbnmeani)
        dembcat = dhprebn @ v.W1.T
        dW1 = v.embcat.T @ dhprebn
        db1 = dhprebn.sum(0)
        demb = dembcat.view(v.emb.shape)
        dC = torch.zeros_like(v.C)
        for k in range(v.Xb.shape[0]):
            for j in range(v.Xb.shape[1]):
                dC[v.Xb[k, j]] += demb[k, j]
    grads = dict(dlogprobs=dlogprobs, dprobs=dprobs, dcounts_sum_inv=dcounts_sum_inv, dcounts_sum=dcounts_sum,
                 dcounts=dcounts, dnorm_logits=dnorm_logits, dlogit_maxes=dlogit_maxes, dlogits=dlogits, dh=dh,
                 dW2=dW2, db2=db2, dhpreact=dhpreact, dbngain=dbngain, dbnbias=dbnbias, dbnraw=dbnraw,
                 dbnvar_inv=dbnvar_inv, dbnvar=dbnvar, dbndiff2=dbndiff2, dbndiff=dbndiff, dbnmeani=dbnmeani,
                 dhprebn=dhprebn, dembcat=dembcat, dW1=dW1, db1=db1, demb=demb, dC=dC)
    assert list(grads) == GRAD_NAMES
    return grads
