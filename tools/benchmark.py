"""Time exercise 4's manual backward pass against loss.backward(), and train both models.

    .venv/bin/python tools/benchmark.py --out results.json              # full: 200,000 steps each
    .venv/bin/python tools/benchmark.py --out results.json --steps 2000 # quick look

The model, forward pass, backward pass and evaluation are not copies: they are the code cells of
solutions/04_training_without_autograd.ipynb tagged `benchmark` (set-up), `parameters` (the
initialisation, re-run before each variant) and `evaluate`, run here.
Both variants use the same forward pass, data, seed and SGD schedule; they differ only in how the
gradients are computed. Everything runs on one CPU thread.
"""
import argparse
import json
import statistics
import sys
import time
from pathlib import Path

import nbformat
import torch

ROOT = Path(__file__).resolve().parent.parent
NOTEBOOK = ROOT / "solutions" / "04_training_without_autograd.ipynb"
SEED = 2147483647


def cells_tagged(tag):
    nb = nbformat.read(NOTEBOOK, as_version=4)
    return [c.source for c in nb.cells if c.cell_type == "code" and tag in c.metadata.get("tags", [])]


def load_solution():
    """Run the notebook's set-up cells; returns their namespace (forward, backward, parameters, data)."""
    import matplotlib
    matplotlib.use("Agg")  # this process only: an environment variable would reach every kernel started later
    sys.path.insert(0, str(ROOT))
    ns = {}
    for source in cells_tagged("benchmark"):
        exec(compile(source, str(NOTEBOOK), "exec"), ns)
    return ns


def reset_parameters(ns):
    """Re-run the notebook's initialisation cell, so each variant starts from the same parameters."""
    for source in cells_tagged("parameters"):
        exec(compile(source, str(NOTEBOOK), "exec"), ns)


def manual_step(ns, Xb, Yb, lr):
    with torch.no_grad():
        loss, cache = ns["forward"](Xb, Yb)
        for p, grad in zip(ns["parameters"], ns["backward"](cache)):
            p.add_(grad, alpha=-lr)  # the notebook's update
    return loss


def autograd_step(ns, Xb, Yb, lr):
    loss, _ = ns["forward"](Xb, Yb)
    for p in ns["parameters"]:
        p.grad = None
    loss.backward()
    with torch.no_grad():
        for p in ns["parameters"]:
            p.add_(p.grad, alpha=-lr)
    return loss


STEPS = {"manual": manual_step, "autograd": autograd_step}


def time_steps(ns, steps_per_block, blocks, warmup):
    """Median milliseconds per training step of each variant, blocks interleaved to share any drift."""
    g = torch.Generator().manual_seed(SEED)
    Xtr, Ytr = ns["Xtr"], ns["Ytr"]
    batches = [torch.randint(0, Xtr.shape[0], (32,), generator=g) for _ in range(steps_per_block)]
    per_step = {name: [] for name in STEPS}
    for name, step in STEPS.items():
        reset_parameters(ns)
        for ix in batches[:warmup]:
            step(ns, Xtr[ix], Ytr[ix], 0.01)
    for _ in range(blocks):
        for name, step in STEPS.items():
            start = time.perf_counter()
            for ix in batches:
                step(ns, Xtr[ix], Ytr[ix], 0.01)
            per_step[name].append((time.perf_counter() - start) * 1000 / steps_per_block)
    return {name: statistics.median(times) for name, times in per_step.items()}


def train(ns, name, steps):
    """Train from the initial parameters with the lecture's schedule; returns (train loss, val loss)."""
    reset_parameters(ns)
    g = torch.Generator().manual_seed(SEED)
    Xtr, Ytr = ns["Xtr"], ns["Ytr"]
    for i in range(steps):
        ix = torch.randint(0, Xtr.shape[0], (32,), generator=g)
        STEPS[name](ns, Xtr[ix], Ytr[ix], 0.1 if i < steps // 2 else 0.01)
    for source in cells_tagged("evaluate"):
        exec(compile(source, str(NOTEBOOK), "exec"), ns)
    return ns["train_loss"], ns["val_loss"]


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", required=True, help="where to write the figures as JSON")
    parser.add_argument("--steps", type=int, default=200_000, help="training steps of each variant (default 200,000)")
    parser.add_argument("--blocks", type=int, default=7, help="timed repetitions of each variant (default 7)")
    parser.add_argument("--block-steps", type=int, default=500, help="training steps in one timed repetition")
    parser.add_argument("--warmup", type=int, default=100, help="untimed steps before timing")
    args = parser.parse_args(argv)

    torch.set_num_threads(1)
    ns = load_solution()
    ms = time_steps(ns, args.block_steps, args.blocks, args.warmup)
    results = {
        "manual_ms_per_step": round(ms["manual"], 4),
        "autograd_ms_per_step": round(ms["autograd"], 4),
        "ratio": round(ms["manual"] / ms["autograd"], 3),
        "steps": args.steps,
    }
    for name in STEPS:
        start = time.perf_counter()
        train_loss, val_loss = train(ns, name, args.steps)
        results[f"train_loss_{name}"] = round(train_loss, 4)
        results[f"val_loss_{name}"] = round(val_loss, 4)
        results[f"train_seconds_{name}"] = round(time.perf_counter() - start, 1)

    Path(args.out).write_text(json.dumps(results, indent=2) + "\n")
    print(f"{'':10s} {'ms/step':>8s} {'train':>7s} {'val':>7s}   ({args.steps:,} steps, 1 thread)")
    for name in STEPS:
        print(f"{name:10s} {results[f'{name}_ms_per_step']:8.3f} "
              f"{results[f'train_loss_{name}']:7.4f} {results[f'val_loss_{name}']:7.4f}")
    print(f"manual / autograd time per step: {results['ratio']:.2f}")
    print(f"wrote {args.out}")
    return results


if __name__ == "__main__":
    main()
