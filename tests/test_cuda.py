"""CUDA paths agree with the CPU (skipped where no GPU exists, as in CI)."""

import copy

import pytest
import torch
import yaml

from condflow import ConditionalGlow, CouplingNet
from condflow.checkpoint import load_checkpoint
from condflow.cli import main as cli_main

pytestmark = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
CUDA = torch.device("cuda")


def _flow() -> ConditionalGlow:
    torch.manual_seed(0)
    net = CouplingNet(hidden_features=64, num_residual_blocks=2)
    flow = ConditionalGlow(24, 16, num_blocks=3, coupling_net=net)
    flow.log_prob(torch.randn(512, 24), torch.randn(512, 16))  # data-dependent ActNorm init
    return flow.eval()


def test_flow_on_cuda_matches_cpu():
    cpu = _flow()
    gpu = copy.deepcopy(cpu).to(CUDA)
    torch.backends.cuda.matmul.allow_tf32 = False
    x, c = torch.randn(32, 24), torch.randn(32, 16)
    z = torch.randn(32, 5, 24)
    with torch.no_grad():
        torch.testing.assert_close(gpu.log_prob(x.to(CUDA), c.to(CUDA)).cpu(), cpu.log_prob(x, c),
                                   rtol=1e-4, atol=1e-4)
        for a, b in zip(gpu.generate(z.to(CUDA), c.to(CUDA)), cpu.generate(z, c), strict=True):
            torch.testing.assert_close(a.cpu(), b, rtol=1e-4, atol=1e-4)
        torch.testing.assert_close(gpu.mode(c.to(CUDA)).cpu(), cpu.mode(c), rtol=1e-4, atol=1e-4)
        # bf16 autocast keeps the log-dets and the base density in fp32.
        with torch.autocast("cuda", dtype=torch.bfloat16):
            samples, log_prob = gpu.sample_and_log_prob(7, c.to(CUDA))
        assert samples.dtype == log_prob.dtype == torch.float32
        exact = gpu.log_prob(samples, c.to(CUDA))
        assert (log_prob - exact).abs().max() < 0.05 * exact.abs().max()


def test_training_selects_cuda_and_the_checkpoint_loads_on_cpu(tmp_path):
    raw = {
        "task": "lifting", "output_dir": str(tmp_path / "run"),
        "data": {"train_size": 256, "test_size": 64},
        "model": {"lifter_hidden": 32, "lifter_blocks": 1, "flow_blocks": 2, "flow_hidden": 16},
        "train": {"steps": 20, "batch_size": 32, "checkpoint_every": 20, "lr": 3e-3},
        "eval": {"num_samples": [1, 5], "batch_size": 64, "picture_examples": 2},
    }
    cfg_path = tmp_path / "cfg.yaml"
    cfg_path.write_text(yaml.safe_dump(raw))
    torch.cuda.reset_peak_memory_stats()
    assert cli_main(["train", str(cfg_path), "--no-progress"]) == 0
    assert torch.cuda.max_memory_allocated() > 0  # the default device was the GPU
    ckpt = load_checkpoint(tmp_path / "run" / "checkpoints" / "last.pt")
    assert ckpt["step"] == 20
    assert all(t.device.type == "cpu" for t in ckpt["model"].values())
    assert all(torch.isfinite(t).all() for t in ckpt["model"].values() if t.is_floating_point())
    assert cli_main(["eval", str(cfg_path), str(tmp_path / "run" / "checkpoints" / "last.pt")]
                    ) == 0
