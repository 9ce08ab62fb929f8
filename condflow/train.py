"""The one training loop: config-driven, resumable to the exact step, DDP-ready."""

from __future__ import annotations

import csv
import json
import math
import time
from collections.abc import Callable, Iterator, Sized
from pathlib import Path
from typing import Any, cast

import torch
from torch import nn
from torch.nn.parallel import DistributedDataParallel
from torch.utils.data import DataLoader, Dataset, Sampler

from condflow._io import atomic_write
from condflow._progress import progress as progress_bar
from condflow.checkpoint import load_checkpoint, save_checkpoint
from condflow.config import Config, config_to_dict, validate
from condflow.distributed import DistInfo, init_distributed, resolve_device, shutdown
from condflow.losses.objective import Objective
from condflow.saving import check_state_dict, load_with_config
from condflow.tasks import Task, describe, load_config, task_for
from condflow.tasks.base import to_device
from condflow.viz.calibration import plot_reliability
from condflow.viz.curves import plot_training_log

__all__ = [
    "FAST_DEV_RUN",
    "GlobalBatchSampler",
    "build",
    "checkpoint_path",
    "evaluate",
    "fast_dev_run_config",
    "lr_lambda",
    "train",
]


class GlobalBatchSampler(Sampler[list[int]]):
    """Yields this process's share of each global batch, from ``start_step`` on.

    The order depends only on ``(seed, epoch)``: every process draws the same permutation
    and takes its contiguous slice, so N processes see exactly the examples that one
    process would see with the same global batch, and a resumed run continues the order.
    """

    def __init__(
        self, size: int, batch_size: int, seed: int, info: DistInfo, start_step: int, steps: int
    ) -> None:
        if batch_size % info.world_size:
            raise ValueError(
                f"train.batch_size: {batch_size} is not divisible by {info.world_size} processes"
            )
        if size < batch_size:
            raise ValueError(f"train.batch_size: {batch_size} exceeds the dataset size {size}")
        self.size, self.batch_size, self.seed, self.info = size, batch_size, seed, info
        self.start_step, self.steps = start_step, steps
        self.per_epoch = size // batch_size

    def __len__(self) -> int:
        return self.steps - self.start_step

    def __iter__(self) -> Iterator[list[int]]:
        local = self.batch_size // self.info.world_size
        lo = self.info.rank * local
        epoch, offset = divmod(self.start_step, self.per_epoch)
        step = self.start_step
        while step < self.steps:
            gen = torch.Generator().manual_seed(self.seed * 1_000_003 + epoch)
            order = torch.randperm(self.size, generator=gen)
            for b in range(offset, self.per_epoch):
                if step >= self.steps:
                    return
                batch = order[b * self.batch_size : (b + 1) * self.batch_size]
                yield batch[lo : lo + local].tolist()
                step += 1
            epoch, offset = epoch + 1, 0


def lr_lambda(cfg: Config) -> Callable[[int], float]:
    """The learning-rate factor of each step for ``LambdaLR`` (warm-up, then cosine)."""
    t = cfg.train

    def factor(step: int) -> float:
        if t.schedule == "constant":
            return 1.0
        warm = min(1.0, (step + 1) / max(1, t.warmup_steps))
        progress = min(1.0, step / max(1, t.steps))
        return warm * 0.5 * (1 + math.cos(math.pi * progress))

    if t.schedule not in ("cosine", "constant"):
        raise ValueError(f"train.schedule: expected 'cosine' or 'constant', got {t.schedule!r}")
    return factor


def _rng_state() -> dict[str, Any]:
    state = {"torch": torch.get_rng_state()}
    if torch.cuda.is_available():
        state["cuda"] = torch.stack(torch.cuda.get_rng_state_all())
    return state


def _set_rng_state(state: dict[str, Any]) -> None:
    # RNG states are CPU byte tensors, wherever the checkpoint was mapped to.
    torch.set_rng_state(state["torch"].cpu())
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(list(state["cuda"].cpu()))


def build(cfg: Config, train_data: Dataset | None = None) -> tuple[Task, nn.Module]:
    task = task_for(cfg)
    return task, task.build_model(train_data)


#: The loop's part of ``--fast-dev-run``: a few steps of small batches, logged and saved.
FAST_DEV_RUN = ("train.steps=3", "train.batch_size=8", "train.log_every=1", "train.warmup_steps=1")


def fast_dev_run_config(source: str | Path | dict[str, Any], overrides: list[str]) -> Config:
    """``source`` (with ``overrides``) as a smoke test that runs in seconds: the data
    source's small data and the family's few evaluation samples
    (:attr:`condflow.tasks.Task.fast_dev_run`) and :data:`FAST_DEV_RUN`, then ``overrides``
    again on top, written under ``<output_dir>/fast_dev_run`` so that a real run's
    checkpoint is never touched."""
    task = task_for(load_config(source, overrides))
    small = [*task.source.fast_dev_run, *task.fast_dev_run]
    cfg = load_config(source, [*small, *FAST_DEV_RUN, *overrides])
    out = Path(cfg.output_dir)
    cfg.output_dir = str(out if out.name == "fast_dev_run" else out / "fast_dev_run")
    return cfg


def checkpoint_path(cfg: Config) -> Path:
    return Path(cfg.output_dir) / "checkpoints" / "last.pt"


def train(cfg: Config, resume: str | Path | bool = False, progress: bool = True) -> Path:
    """Train ``cfg`` to ``cfg.train.steps``; returns the path of the final checkpoint.

    ``resume=True`` continues from ``<output_dir>/checkpoints/last.pt`` (a path selects
    another file) at the exact step, with optimizer, schedule and RNG state.
    """
    t = validate(cfg).train
    device = resolve_device(t.device)
    info = init_distributed(device)
    if t.threads:
        torch.set_num_threads(t.threads)
    torch.manual_seed(cfg.seed + info.rank)
    task = task_for(cfg)
    train_data, _ = task.datasets()
    model = task.build_model(train_data).to(device)
    params = [p for p in model.parameters() if p.requires_grad]
    optimizer = torch.optim.AdamW(params, lr=t.lr, weight_decay=t.weight_decay)
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lr_lambda(cfg))
    objective = task.objective(model)
    start = 0
    if resume:
        path = checkpoint_path(cfg) if resume is True else Path(resume)
        start = _restore(path, cfg, info, device, model, optimizer, scheduler, objective)
    runner: nn.Module = objective
    if info.enabled:
        runner = DistributedDataParallel(
            objective, device_ids=[device.index] if device.type == "cuda" else None
        )
    loader = _loader(train_data, cfg, info, start, device)
    logger = _TrainingLog(cfg, info, start, progress)
    last = checkpoint_path(cfg)
    step = start
    model.train()
    for batch in loader:
        losses = runner(to_device(batch, device))
        _optimizer_step(losses, step, last, params, optimizer, scheduler, t.grad_clip)
        objective.after_step(step)
        step += 1
        logger.write(step, losses, float(scheduler.get_last_lr()[0]))
        if info.is_main and (step % t.checkpoint_every == 0 or step == t.steps):
            _save(last, step, cfg, model, optimizer, scheduler, objective)
    logger.close()
    shutdown(info)
    return last


def _restore(
    path: Path,
    cfg: Config,
    info: DistInfo,
    device: torch.device,
    model: nn.Module,
    optimizer: torch.optim.Optimizer,
    scheduler: torch.optim.lr_scheduler.LRScheduler,
    objective: Objective,
) -> int:
    """Load a training checkpoint into the run's objects; returns its step. The main
    process restores the RNG state; the others reseed from (seed, rank, step)."""
    ckpt = load_checkpoint(path, map_location=device)
    _check_resumable(ckpt, path)
    check_state_dict(model, ckpt["model"], f"--resume {path}", ckpt["config"], cfg)
    model.load_state_dict(ckpt["model"])
    optimizer.load_state_dict(ckpt["optimizer"])
    scheduler.load_state_dict(ckpt["scheduler"])
    if "extra" in ckpt:
        objective.load_extra_state(ckpt["extra"])
    start = int(ckpt["step"])
    if info.is_main:
        _set_rng_state(ckpt["rng"])
    else:
        torch.manual_seed(cfg.seed + info.rank + 7919 * start)
    return start


def _loader(
    data: Dataset, cfg: Config, info: DistInfo, start: int, device: torch.device
) -> DataLoader:
    """This process's batches of steps ``start`` … ``train.steps - 1``."""
    t = cfg.train
    size = len(cast(Sized, data))  # the task's training set is map-style, sized
    sampler = GlobalBatchSampler(size, t.batch_size, cfg.seed, info, start, t.steps)
    # The loader has its own generator so that it never draws from the global RNG, whose
    # state (dropout, sampling inside losses) is what a checkpoint restores.
    return DataLoader(
        data,
        batch_sampler=sampler,
        num_workers=t.num_workers,
        pin_memory=device.type == "cuda",
        generator=torch.Generator().manual_seed(cfg.seed),
    )


def _optimizer_step(
    losses: dict[str, torch.Tensor],
    step: int,
    last: Path,
    params: list[nn.Parameter],
    optimizer: torch.optim.Optimizer,
    scheduler: torch.optim.lr_scheduler.LRScheduler,
    grad_clip: float,
) -> None:
    """Back-propagate ``losses["loss"]`` and step; ``FloatingPointError`` (naming the last
    good checkpoint) before touching the weights if it is not finite."""
    loss = losses["loss"]
    if not torch.isfinite(loss):
        raise FloatingPointError(
            f"step {step}: non-finite loss "
            f"{ {k: v.item() for k, v in losses.items()} }; last good checkpoint: {last}"
        )
    optimizer.zero_grad(set_to_none=True)
    loss.backward()
    if grad_clip > 0:
        torch.nn.utils.clip_grad_norm_(params, grad_clip)
    optimizer.step()
    scheduler.step()


def _save(
    path: Path,
    step: int,
    cfg: Config,
    model: nn.Module,
    optimizer: torch.optim.Optimizer,
    scheduler: torch.optim.lr_scheduler.LRScheduler,
    objective: Objective,
) -> None:
    """The training checkpoint of ``step``: everything :func:`_restore` reads back."""
    state = {
        "step": step,
        "model": model.state_dict(),
        "optimizer": optimizer.state_dict(),
        "scheduler": scheduler.state_dict(),
        "rng": _rng_state(),
        "config": config_to_dict(cfg),
    }
    extra = objective.extra_state()
    if extra:
        state["extra"] = extra
    save_checkpoint(state, path)


class _TrainingLog:
    """What the main process reports while training: the progress bar, the CSV log every
    ``train.log_every`` steps (and the last), TensorBoard if asked, and ``loss.png`` at the
    end. Other processes report nothing."""

    def __init__(self, cfg: Config, info: DistInfo, start: int, progress: bool) -> None:
        t = cfg.train
        self.out, self.task = Path(cfg.output_dir), describe(cfg)
        self.log_every, self.steps = t.log_every, t.steps
        self.csv = _CsvLog(self.out / "log.csv", keep_until=start) if info.is_main else None
        self.board = None
        if t.tensorboard and info.is_main:
            from torch.utils.tensorboard import SummaryWriter

            self.board = SummaryWriter(str(self.out / "tensorboard"), purge_step=start or None)
        self.bar = progress_bar(total=t.steps, initial=start, desc=f"train {cfg.model.space.kind}",
                                unit="step", enabled=progress and info.is_main)
        self.tic = time.perf_counter()

    def write(self, step: int, losses: dict[str, torch.Tensor], lr: float) -> None:
        """After step ``step`` (1-based: steps done) with its ``losses`` and learning rate."""
        if not self.bar.disable:
            self.bar.update(1)
            self.bar.set_postfix(loss=f"{losses['loss'].item():.3f}")
        if self.csv is None or not (step % self.log_every == 0 or step == self.steps):
            return
        row = {k: v.detach().item() for k, v in losses.items()}
        self.csv.write(step=step, lr=lr, seconds=round(time.perf_counter() - self.tic, 2), **row)
        if self.board is not None:
            for key, value in {"lr": lr, **row}.items():
                self.board.add_scalar(f"train/{key}", value, step)

    def close(self) -> None:
        self.bar.close()
        if self.board is not None:
            self.board.close()
        log = self.csv
        if log is not None and log.path.exists() and log.path.stat().st_size > 0:
            plot_training_log(log.path, self.out / "loss.png", title=f"{self.task}: {self.out}")


class _CsvLog:
    """Appends rows to a CSV file; rows logged after step ``keep_until`` (by a run that then
    crashed) and a torn last row are dropped, so a resumed run's log has each step once."""

    def __init__(self, path: Path, keep_until: int) -> None:
        self.path = path
        path.parent.mkdir(parents=True, exist_ok=True)
        if path.exists():
            lines = path.read_text().splitlines(keepends=True)
            width = len(lines[0].split(",")) if lines else 0
            kept = lines[:1] + [ln for ln in lines[1:] if self._complete(ln, width, keep_until)]
            path.write_text("".join(kept) if keep_until > 0 else "")
        self.fields: list[str] | None = None

    @staticmethod
    def _complete(line: str, width: int, keep_until: int) -> bool:
        """A whole row (a crash mid-write leaves a torn last line) of a step <= keep_until."""
        fields = line.rstrip("\r\n").split(",")
        return (line.endswith("\n") and len(fields) == width and fields[0].isdigit()
                and int(fields[0]) <= keep_until)

    def write(self, **row: Any) -> None:
        new = not self.path.exists() or self.path.stat().st_size == 0
        if self.fields is None:
            self.fields = list(row)
        with self.path.open("a", newline="") as f:
            writer = csv.DictWriter(f, fieldnames=self.fields, extrasaction="ignore")
            if new:
                writer.writeheader()
            writer.writerow(row)


def _check_resumable(ckpt: dict[str, Any], path: Path) -> None:
    missing = [k for k in ("step", "optimizer", "scheduler", "rng") if k not in ckpt]
    if missing:
        kind = "a model file (condflow.save)" if "format" in ckpt else "not a training checkpoint"
        raise ValueError(
            f"--resume: {path} is {kind}: it has no {', '.join(missing)} state to continue "
            "from; resume from <output_dir>/checkpoints/last.pt"
        )


def evaluate(
    cfg: Config, checkpoint: str | Path, out: str | Path | None = None, picture: bool = True
) -> dict[str, Any]:
    """Evaluate a checkpoint on the task's test set; writes JSON (and PNGs: predictions and,
    for probabilistic models, the reliability diagram ``<out stem>_calibration.png``)."""
    device = resolve_device(cfg.train.device)
    _, model = load_with_config(checkpoint, device, cfg)
    task = task_for(cfg)
    _, test_data = task.datasets()
    metrics = task.evaluate(model, test_data, device)
    out = Path(out) if out else Path(cfg.output_dir) / "eval.json"
    atomic_write(out, lambda f: f.write(json.dumps(metrics, indent=2).encode()))
    if picture:
        task.picture(model, test_data, str(out.with_suffix(".png")), device)
        if "calibration/coverage" in metrics:
            curve = (metrics["calibration/levels"], metrics["calibration/coverage"])
            plot_reliability({describe(cfg): curve}, out.with_name(out.stem + "_calibration.png"))
    return metrics
