import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from scipy.spatial.transform import Rotation

from condflow.losses.adversarial import (
    AdversarialPrior,
    PoseShapeDiscriminator,
    adversarial_discriminator_loss,
    adversarial_generator_loss,
    discriminator_step,
)
from condflow.spaces.rotations import axis_angle_to_matrix


def _gen(seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def _plausible_poses(b: int, seed: int) -> torch.Tensor:
    """Small-angle rotations around the rest pose: [b, 23, 3, 3]."""
    return axis_angle_to_matrix(0.3 * torch.randn(b, 23, 3, generator=_gen(seed)))


def _uniform_poses(b: int, seed: int) -> torch.Tensor:
    mats = Rotation.random(b * 23, random_state=seed).as_matrix()
    return torch.tensor(mats, dtype=torch.float32).reshape(b, 23, 3, 3)


def test_output_shape_and_leading_dims():
    disc = PoseShapeDiscriminator()
    out = disc(_plausible_poses(5, 0), torch.randn(5, 10, generator=_gen(1)))
    assert out.shape == (5, 25)
    rot = _plausible_poses(6, 2).reshape(2, 3, 23, 3, 3)
    out2 = disc(rot, torch.zeros(2, 3, 10))
    assert out2.shape == (2, 3, 25)
    torch.testing.assert_close(out2.reshape(6, 25), disc(rot.reshape(6, 23, 3, 3),
                                                         torch.zeros(6, 10)))


def test_lsgan_losses_hand_worked():
    ones, zeros = torch.ones(3, 25), torch.zeros(3, 25)
    assert adversarial_generator_loss(ones) == 0
    assert adversarial_generator_loss(zeros) == 1
    torch.testing.assert_close(adversarial_generator_loss(torch.full((2, 25), 0.5)),
                               torch.tensor(0.25))
    assert adversarial_discriminator_loss(ones, zeros) == 0
    assert adversarial_discriminator_loss(zeros, ones) == 2
    torch.testing.assert_close(adversarial_discriminator_loss(torch.full((2, 25), 0.5),
                                                              torch.full((2, 25), 0.5)),
                               torch.tensor(0.5))


def test_discriminator_step_detaches_generated_inputs():
    disc = PoseShapeDiscriminator()
    opt = torch.optim.SGD(disc.parameters(), lr=0.01)
    fake = _uniform_poses(4, 3).requires_grad_(True)
    fake_betas = torch.randn(4, 10, generator=_gen(4), requires_grad=True)
    before = disc.pose_out[0].weight.detach().clone()
    loss = discriminator_step(disc, opt, _plausible_poses(4, 5), torch.zeros(4, 10), fake,
                              fake_betas, weight=0.5)
    assert isinstance(loss, float) and loss > 0
    assert fake.grad is None and fake_betas.grad is None
    assert not torch.equal(before, disc.pose_out[0].weight)


def test_discriminator_separates_plausible_from_uniform_rotations():
    torch.manual_seed(0)
    disc = PoseShapeDiscriminator()
    opt = torch.optim.Adam(disc.parameters(), lr=1e-3)
    start = time.perf_counter()
    for step in range(200):
        betas = torch.randn(2, 32, 10, generator=_gen(1000 + step))
        discriminator_step(disc, opt, _plausible_poses(32, step), betas[0],
                           _uniform_poses(32, 10_000 + step), betas[1])
    assert time.perf_counter() - start < 30
    with torch.no_grad():
        betas = torch.randn(256, 10, generator=_gen(7))
        real = disc(_plausible_poses(256, 99_999), betas)
        fake = disc(_uniform_poses(256, 99_999), betas)
    # Joint and whole-pose scores (not the shape score, whose inputs are alike).
    pose_cols = [*range(23), 24]
    real_score, fake_score = real[:, pose_cols].mean(), fake[:, pose_cols].mean()
    assert real_score > 0.8 and fake_score < 0.2, (real_score, fake_score)
    assert (real[:, 24] > fake[:, 24]).float().mean() > 0.95


def test_bad_inputs_raise():
    disc = PoseShapeDiscriminator()
    with pytest.raises(ValueError, match="body_rotmat: expected shape"):
        disc(torch.zeros(2, 24, 3, 3), torch.zeros(2, 10))
    with pytest.raises(ValueError, match="betas: expected shape"):
        disc(torch.zeros(2, 23, 3, 3), torch.zeros(2, 11))
    with pytest.raises(ValueError, match="leading dimensions"):
        disc(torch.zeros(2, 23, 3, 3), torch.zeros(3, 10))


_TWO_PROCESS_STEP = """
import os, sys
import torch
import torch.distributed as dist
from condflow.losses.adversarial import AdversarialPrior

def run(rank, out, port):
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=port)
    dist.init_process_group("gloo", rank=rank, world_size=2)
    corpus = torch.load(os.path.join(out, "corpus.pt"))
    prior = AdversarialPrior(corpus["real_rotmat"], corpus["real_betas"], weight=0.5, lr=1e-3,
                             seed=3)
    prior.score(corpus["fake_rotmat"][rank], corpus["fake_betas"][rank])
    prior.step(0)
    torch.save(prior.state_dict()["discriminator"], os.path.join(out, f"rank{rank}.pt"))
    dist.destroy_process_group()

if __name__ == "__main__":
    torch.multiprocessing.spawn(run, args=(sys.argv[1], sys.argv[2]), nprocs=2)
"""


def test_adversarial_prior_under_two_processes_averages_the_discriminator_gradients(tmp_path):
    corpus = {"real_rotmat": _plausible_poses(64, 1), "real_betas": torch.randn(64, 10),
              "fake_rotmat": torch.stack([_uniform_poses(6, 2), _uniform_poses(6, 3)]),
              "fake_betas": torch.randn(2, 6, 10, generator=_gen(4))}
    torch.save(corpus, tmp_path / "corpus.pt")
    (tmp_path / "step.py").write_text(_TWO_PROCESS_STEP)
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = str(s.getsockname()[1])
    root = str(Path(__file__).resolve().parents[2])
    env = {**os.environ, "OMP_NUM_THREADS": "1",
           "PYTHONPATH": os.pathsep.join([root, os.environ.get("PYTHONPATH", "")])}
    subprocess.run([sys.executable, str(tmp_path / "step.py"), str(tmp_path), port],
                   check=True, capture_output=True, timeout=120, env=env)
    ranks = [torch.load(tmp_path / f"rank{r}.pt") for r in (0, 1)]
    # Reference in one process: the two processes' discriminator-loss gradients, averaged.
    prior = AdversarialPrior(corpus["real_rotmat"], corpus["real_betas"], weight=0.5, lr=1e-3,
                             seed=3)
    params = list(prior.discriminator.parameters())
    grads = []
    for r in (0, 1):
        idx = torch.randint(64, (6,), generator=torch.Generator().manual_seed(3 * 1_000_003 + r))
        real = prior.discriminator(corpus["real_rotmat"][idx], corpus["real_betas"][idx])
        fake = prior.discriminator(corpus["fake_rotmat"][r], corpus["fake_betas"][r])
        grads.append(torch.autograd.grad(0.5 * adversarial_discriminator_loss(real, fake), params))
    for p, g0, g1 in zip(params, *grads, strict=True):
        p.grad = (g0 + g1) / 2
    prior.optimizer.step()
    expected = prior.state_dict()["discriminator"]
    for k, v in expected.items():
        assert torch.equal(ranks[0][k], ranks[1][k]), k  # the replicas stay identical
        assert torch.allclose(ranks[0][k], v, atol=1e-6), k
