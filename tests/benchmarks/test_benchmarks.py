"""The PyTorch yardstick: the twin nets of benchmarks/torch_models.py are tinyresnet's nets, and the
Fig. 6 schedule search (benchmarks/fig6_search.py) trains and records what it says. Skipped
without PyTorch, which tinyresnet itself never needs."""
import json
import sys
from pathlib import Path

import pytest

from cifar_fixture import write_fake_cifar
from tinyresnet import models

torch = pytest.importorskip("torch")
sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "benchmarks"))
import fig6_search  # noqa: E402
import torch_models  # noqa: E402


@pytest.mark.parametrize("depth, residual", [(20, True), (20, False), (56, True)])
def test_the_twin_has_tinyresnets_parameter_count(depth, residual):
    ours = models.cifar_resnet(depth, residual).num_parameters()
    twin = sum(p.numel() for p in torch_models.CifarResNet(depth, residual).parameters())
    assert twin == ours, (f"{'ResNet' if residual else 'plain'}-{depth}: the PyTorch twin has {twin} "
                          f"parameters, tinyresnet {ours}; the comparison would not be of the same net")


def test_the_search_writes_one_row_per_length_at_the_scaled_lr(tmp_path, monkeypatch):
    data = write_fake_cifar(tmp_path / "data", per_file=16)
    out = tmp_path / "search.jsonl"
    lrs = []
    real_sgd = torch.optim.SGD

    def recording_sgd(params, lr, **kw):
        lrs.append(lr)
        return real_sgd(params, lr=lr, **kw)
    monkeypatch.setattr(torch.optim, "SGD", recording_sgd)
    spec = {"net": "resnet20", "subset": 40, "seed": 0, "lengths": [4, 6], "warmup": False, "batch": 8,
            "data_dir": str(data), "out": str(out)}
    rows = fig6_search.job(spec)
    assert lrs == [pytest.approx(0.1 * 8 / 128)], f"batch 8 should train at LR 0.1 x 8/128, got {lrs}"
    written = [json.loads(line) for line in out.read_text().splitlines()]
    assert [r["iterations"] for r in written] == [4, 6] == [r["iterations"] for r in rows]
    assert all(r["batch"] == 8 and 0 <= r["train_error"] <= 100 and 0 <= r["test_error"] <= 100 for r in written)
    assert all(r["device"] == "cpu" for r in written), "a row must say where the twin trained (no --device: the CPU)"
    assert fig6_search.done_keys(out) == {("resnet20", 40, 0, False, 8, 4), ("resnet20", 40, 0, False, 8, 6)}
    assert "| 40 | 8 | no | 4 |" in fig6_search.table(out)
    import experiments  # lesson 06 reads the search back with this
    assert [r["iterations"] for r in experiments.twin_runs(out, net="resnet20", batch=8)] == [4, 6]
    assert experiments.twin_runs(out, iterations=6) == [written[1]]
    assert experiments.twin_runs(tmp_path / "missing.jsonl") == []


def test_a_gpu_twin_without_a_gpu_stops_with_a_message(tmp_path, monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    spec = {"net": "resnet20", "subset": 40, "seed": 0, "lengths": [4], "warmup": False, "batch": 8,
            "data_dir": str(write_fake_cifar(tmp_path / "data", per_file=16)), "out": str(tmp_path / "o.jsonl"),
            "device": "cuda"}
    with pytest.raises(SystemExit, match="no CUDA device"):
        fig6_search.job(spec)
