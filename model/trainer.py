"""The trainer: batches sliced from pre-built tensors, lazy sparse Adam, resumable, data-parallel.

* Data lives in three tensors on the device (x [N, F] int64, click, conversion); each epoch draws
  one permutation from a seeded generator and a step is ``x[perm[i:i + B]]``: no Dataset, no collate.
* Embeddings get sparse gradients and :class:`model.optim.LazyAdam`; the rest dense Adam (L2 1e-6).
* CUDA with bf16 autocast when a GPU is present, CPU otherwise (``TrainConfig.device`` overrides).
* Losses are read back to the host every ``log_every`` steps only (a read is a device sync).
* Checkpoints every ``checkpoint_every`` steps hold everything needed to continue bit-identically
  on CPU: weights, optimizer moments, the shuffling generator's state at the start of the epoch,
  the torch RNG state and the position in the epoch.
* Under ``torchrun`` each rank takes a disjoint shard of every global batch (see model.distributed).
"""

from __future__ import annotations

import contextlib
import hashlib
import math
import time
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

import numpy as np
import torch
from tqdm.auto import tqdm

from model import distributed
from model.base import MultiTaskModel
from model.checkpoint import load_checkpoint, save_checkpoint
from model.errors import TrainingError
from model.optim import make_optimizers, split_parameters
from model.spec import TrainConfig


@dataclass
class TrainResult:
    steps: int
    samples: int
    seconds: float
    samples_per_s: float
    history: list[dict[str, float]] = field(default_factory=list)
    resumed_from_step: int | None = None
    device: str = "cpu"
    #: {"dense": ..., "sparse": ...} optimizer state dicts at the end (CPU tensors), saved with the
    #: version so the next warm start continues Adam's moments instead of restarting them
    optimizer_state: dict[str, Any] | None = field(default=None, repr=False)

    def summary(self) -> dict[str, Any]:
        # not asdict(): it would deep-copy every optimizer tensor only to drop them
        return {f.name: getattr(self, f.name) for f in fields(self) if f.name != "optimizer_state"}


def resolve_device(name: str, info: distributed.DistInfo | None = None) -> torch.device:
    """``auto``: CUDA when present (this rank's GPU under torchrun), else CPU."""
    if name == "auto":
        if torch.cuda.is_available():
            return torch.device(
                "cuda", info.local_rank if info and info.active else torch.cuda.current_device()
            )
        return torch.device("cpu")
    device = torch.device(name)
    if device.type == "cuda" and not torch.cuda.is_available():
        raise TrainingError(f"device {name!r} requested but CUDA is not available")
    return device


def _as_tensor(a: Any, dtype: torch.dtype, device: torch.device) -> torch.Tensor:
    t = a if isinstance(a, torch.Tensor) else torch.from_numpy(np.ascontiguousarray(a))
    return t.to(device=device, dtype=dtype)


def _fingerprint(model: MultiTaskModel, n: int, cfg: TrainConfig, world: int) -> str:
    """What must match for a checkpoint to continue this run (not another one)."""
    key = [model.architecture, model.sizes, n, cfg.batch_size, cfg.seed, cfg.shuffle, cfg.epochs, world]
    key += [cfg.ctr_epochs, cfg.embedding_epochs]
    key.append(sorted((k, tuple(v.shape)) for k, v in model.state_dict().items()))
    return hashlib.sha256(repr(key).encode()).hexdigest()[:16]


def train(
    model: MultiTaskModel,
    x: np.ndarray | torch.Tensor,
    click: np.ndarray | torch.Tensor,
    conversion: np.ndarray | torch.Tensor,
    cfg: TrainConfig,
    *,
    checkpoint_dir: str | Path | None = None,
    stop_after_steps: int | None = None,
    optimizer_state: dict[str, Any] | None = None,
) -> TrainResult:
    """Train ``model`` in place on encoded samples; resumes from ``checkpoint_dir`` when it holds one.

    ``optimizer_state`` (a warm start's parent's, laid out for this model's vocabulary) seeds the
    optimizers' moments; the hyperparameters stay this run's. A checkpoint of this run wins over it.

    ``stop_after_steps`` ends this call early (after writing a checkpoint when a folder is given):
    it simulates a killed run in tests; unlike ``cfg.max_steps`` it is not part of the run's plan.
    """
    info = distributed.current()
    if cfg.num_threads:
        torch.set_num_threads(cfg.num_threads)
    if info.active and cfg.ctr_epochs is not None:
        # DDP expects a gradient for every parameter in every step; the held CTR tower gets none.
        raise TrainingError(
            "train.ctr_epochs needs single-process training (it leaves the CTR tower without gradients)"
        )
    device = resolve_device(cfg.device, info)
    n = int(x.shape[0])
    if n == 0:
        raise TrainingError("no training samples")
    if x.ndim != 2 or x.shape[1] != len(model.sizes):
        raise TrainingError(f"x must be [N, {len(model.sizes)}] (one column per field), got {tuple(x.shape)}")
    model.to(device)
    xs = _as_tensor(x, torch.int64, device)
    ys_click = _as_tensor(click, torch.float32, device)
    ys_conv = _as_tensor(conversion, torch.float32, device)
    _check_indices(xs, model.sizes)

    sparse_params, _ = split_parameters(model)
    sparse_names = [name for name, p in model.named_parameters() if any(p is s for s in sparse_params)]
    net = distributed.wrap(model, info, device, sparse_names)
    dense_opt, sparse_opt = make_optimizers(model, cfg)
    if optimizer_state is not None:
        load_optimizer_state(dense_opt, sparse_opt, optimizer_state, cfg)
    autocast = (
        torch.autocast("cuda", dtype=torch.bfloat16)
        if device.type == "cuda" and cfg.bf16
        else contextlib.nullcontext()
    )

    steps_per_epoch = math.ceil(n / cfg.batch_size)
    planned = steps_per_epoch * cfg.epochs
    if cfg.max_steps is not None:
        planned = min(planned, cfg.max_steps)
    gen = torch.Generator().manual_seed(cfg.seed)
    fingerprint = _fingerprint(model, n, cfg, info.world_size)

    step, epoch, start_in_epoch, history = 0, 0, 0, []
    running_state: dict[str, Any] = {"sums": None, "steps": 0}
    epoch_gen_state = gen.get_state()
    resumed_from = None
    state = load_checkpoint(checkpoint_dir) if checkpoint_dir else None
    if state is not None:
        if state.get("fingerprint") != fingerprint:
            raise TrainingError(
                f"checkpoint in {checkpoint_dir} belongs to another run (data size, batch, seed or model differ)"
            )
        model.load_state_dict(state["model"])
        dense_opt.load_state_dict(state["dense_opt"])
        sparse_opt.load_state_dict(state["sparse_opt"])
        torch.set_rng_state(state["torch_rng"])
        step, epoch, start_in_epoch = int(state["step"]), int(state["epoch"]), int(state["step_in_epoch"])
        epoch_gen_state = state["epoch_gen_state"]
        history = list(state["history"])
        running_state = state["running"]
        resumed_from = step

    def write_checkpoint(step_in_epoch: int) -> None:
        if checkpoint_dir is None:
            return
        if info.is_main:
            save_checkpoint(
                checkpoint_dir,
                {
                    "fingerprint": fingerprint,
                    "step": step,
                    "epoch": epoch,
                    "step_in_epoch": step_in_epoch,
                    "epoch_gen_state": epoch_gen_state,
                    "torch_rng": torch.get_rng_state(),
                    "model": {k: v.detach().cpu() for k, v in model.state_dict().items()},
                    "dense_opt": dense_opt.state_dict(),
                    "sparse_opt": sparse_opt.state_dict(),
                    "history": history,
                    # the partial loss window, so the resumed history equals an uninterrupted one
                    "running": {"sums": None if running is None else running.cpu(), "steps": running_steps},
                },
            )
        distributed.barrier(info)

    bar = tqdm(
        total=planned * cfg.batch_size,
        initial=min(step * cfg.batch_size, planned * cfg.batch_size),
        unit="samples",
        unit_scale=True,
        disable=not (cfg.progress and info.is_main),
        desc=f"train {model.architecture}",
    )
    net.train()
    running: torch.Tensor | None = running_state["sums"]
    running = None if running is None else running.to(device)
    running_names: list[str] = []
    running_steps = int(running_state["steps"])
    samples = 0
    t0 = time.perf_counter()
    stopped = False
    while epoch < cfg.epochs and step < planned and not stopped:
        hold_ctr = cfg.ctr_epochs is not None and epoch >= cfg.ctr_epochs
        train_embeddings = cfg.embedding_epochs is None or epoch < cfg.embedding_epochs
        gen.set_state(epoch_gen_state)
        perm = torch.randperm(n, generator=gen) if cfg.shuffle else torch.arange(n)
        perm = perm.to(device)
        for i in range(start_in_epoch, steps_per_epoch):
            batch = perm[i * cfg.batch_size : (i + 1) * cfg.batch_size]
            local = distributed.shard(batch, info)
            xb, cb, vb = xs[local], ys_click[local], ys_conv[local]
            with autocast:
                out = net(xb)
            if hold_ctr:
                out = model.hold_ctr(out)
            loss, parts = model.loss(out, cb, vb)
            if info.active:
                loss = loss * (info.world_size * local.numel() / batch.numel())
            dense_opt.zero_grad(set_to_none=True)
            sparse_opt.zero_grad(set_to_none=True)
            loss.backward()
            distributed.sync_sparse_grads(sparse_params, info)
            dense_opt.step()
            if train_embeddings:
                sparse_opt.step()
            step += 1
            samples += batch.numel()
            bar.update(batch.numel())
            vec = torch.stack([loss.detach(), *(p.detach() for p in parts.values())])
            running = vec if running is None else running + vec
            running_names = ["loss", *parts]
            running_steps += 1
            last_in_epoch = i + 1 == steps_per_epoch
            if step % cfg.log_every == 0 or step >= planned or last_in_epoch:
                means = (running / running_steps).tolist()  # the only host sync in the loop
                record = {"step": step, "epoch": epoch, **dict(zip(running_names, means, strict=True))}
                if not all(math.isfinite(v) for v in means):
                    bar.close()
                    raise TrainingError(f"non-finite loss at step {step}: {record}")
                history.append(record)
                bar.set_postfix(loss=f"{means[0]:.4f}")
                running, running_steps = None, 0
            if last_in_epoch:
                epoch += 1
                epoch_gen_state = gen.get_state()
                start_in_epoch = 0
            done = step >= planned
            stopped = stop_after_steps is not None and step >= stop_after_steps and not done
            periodic = cfg.checkpoint_every is not None and (step % cfg.checkpoint_every == 0 or done)
            if checkpoint_dir is not None and (periodic or stopped):
                write_checkpoint(0 if last_in_epoch else i + 1)
            if stopped:
                break
            if done:
                break
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    seconds = time.perf_counter() - t0
    bar.close()
    return TrainResult(
        steps=step,
        samples=samples,
        seconds=seconds,
        samples_per_s=samples / seconds if seconds > 0 else 0.0,
        history=history,
        resumed_from_step=resumed_from,
        device=str(device),
        optimizer_state={
            "dense": _cpu(dense_opt.state_dict()),
            "sparse": _cpu(sparse_opt.state_dict()),
        },
    )


def load_optimizer_state(
    dense_opt: torch.optim.Optimizer,
    sparse_opt: torch.optim.Optimizer,
    state: dict[str, Any],
    cfg: TrainConfig,
) -> None:
    """Restore saved moments; learning rate, betas, eps and L2 are this run's configuration."""
    try:
        dense_opt.load_state_dict(state["dense"])
        sparse_opt.load_state_dict(state["sparse"])
    except (KeyError, ValueError, RuntimeError) as e:
        raise TrainingError(f"the saved optimizer state does not fit this model ({e})") from None
    for opt in (dense_opt, sparse_opt):
        for group in opt.param_groups:
            group.update(lr=cfg.lr, betas=cfg.adam_betas, eps=cfg.adam_eps, weight_decay=cfg.l2)


def _cpu(obj: Any) -> Any:
    if isinstance(obj, torch.Tensor):
        return obj.detach().to("cpu").clone()
    if isinstance(obj, dict):
        return {k: _cpu(v) for k, v in obj.items()}
    if isinstance(obj, list | tuple):
        return type(obj)(_cpu(v) for v in obj)
    return obj


def _check_indices(xs: torch.Tensor, sizes: list[int]) -> None:
    """Every column j must hold indices in [0, sizes[j]): an encoded matrix of another vocabulary fails here."""
    if xs.numel() == 0:
        return
    lo = xs.min(dim=0).values
    hi = xs.max(dim=0).values
    limit = torch.tensor(sizes, device=xs.device)
    bad = torch.nonzero((lo < 0) | (hi >= limit)).flatten().tolist()
    if bad:
        j = bad[0]
        raise TrainingError(
            f"column {j} holds indices outside [0, {sizes[j]}) (min {int(lo[j])}, max {int(hi[j])}): "
            "the matrix was encoded with another vocabulary"
        )
