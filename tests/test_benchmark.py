"""The benchmark runs the solution's own code and writes the figures it promises (no timing asserted)."""
import json

import torch

import benchmark


def test_it_writes_every_figure(tmp_path, capsys):
    out = tmp_path / "results.json"
    benchmark.main(["--out", str(out), "--steps", "30", "--blocks", "1", "--block-steps", "10", "--warmup", "2"])
    results = json.loads(out.read_text())
    for key in ["manual_ms_per_step", "autograd_ms_per_step", "ratio", "train_loss_manual", "val_loss_manual",
                "train_loss_autograd", "val_loss_autograd", "steps"]:
        assert key in results
    assert results["steps"] == 30
    assert results["manual_ms_per_step"] > 0 and results["autograd_ms_per_step"] > 0
    assert abs(results["ratio"] - results["manual_ms_per_step"] / results["autograd_ms_per_step"]) < 0.01
    assert 2.0 < results["val_loss_manual"] < 3.5 and abs(results["val_loss_manual"] - results["val_loss_autograd"]) < 0.01
    assert "manual / autograd time per step" in capsys.readouterr().out


def test_the_manual_step_is_the_notebooks_backward_and_matches_autograd():
    ns = benchmark.load_solution()
    assert ns["backward"].__code__.co_filename == str(benchmark.NOTEBOOK)  # the notebook's code, not a copy
    params = {}
    for name in benchmark.STEPS:
        benchmark.reset_parameters(ns)
        g = torch.Generator().manual_seed(0)
        for _ in range(5):
            ix = torch.randint(0, ns["Xtr"].shape[0], (32,), generator=g)
            benchmark.STEPS[name](ns, ns["Xtr"][ix], ns["Ytr"][ix], 0.1)
        params[name] = [p.detach().clone() for p in ns["parameters"]]
    for manual, auto in zip(params["manual"], params["autograd"]):
        assert torch.allclose(manual, auto, atol=1e-6)
    assert not torch.equal(params["manual"][1], benchmark.load_solution()["W1"])  # training moved the weights
