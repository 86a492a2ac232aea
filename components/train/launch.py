"""Data-parallel training of the train step: ``torchrun`` over N processes of this node when configured.

:func:`fit_table` is what the step calls in place of ``model.fit``. With one process it *is*
``model.fit``. With N > 1 it writes a job folder (the training table, the parent version, the
resolved configuration) and runs ``torchrun --standalone --nproc_per_node=N -m
components.train.launch JOB``. Every rank runs the same ``model.fit`` on the same table: the
vocabulary, the encoding and the initial weights are deterministic (same seed), and the trainer
gives each rank a disjoint shard of every global batch (model/distributed.py), gloo on CPU, NCCL
on GPU. Rank 0 alone writes the trained model back into the job folder, which this process loads:
the step still saves ONE model version, the same one (within float tolerance) as one process.

The worker entry (``python -m components.train.launch JOB``) runs under any torchrun, also one
spanning several nodes (a PyTorchJob, Vertex worker pools: docs/PIPELINE.md), given the job
folder on storage every node mounts.
"""

from __future__ import annotations

import json
import logging
import os
import subprocess
import sys
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from taml.core.config import Config, validate
from taml.core.errors import TamlError

if TYPE_CHECKING:
    import pandas as pd

    from model import LoadedModel
    from model.fitting import FitResult

log = logging.getLogger(__name__)

JOB_FILE = "job.json"
TABLE_FILE = "table.parquet"
ROW_DAYS_FILE = "row_days.npy"
PARENT_DIR = "parent"
OUT_DIR = "trained"
RESULT_FILE = "result.json"
LOG_FILE = "torchrun.log"
#: The version name of the model rank 0 hands back; the step names the real version itself.
HANDOFF_VERSION = "torchrun-handoff"


class LaunchError(TamlError):
    """Data-parallel training cannot start or did not finish."""


def processes(config: Config, visible_gpus: int | None = None) -> int:
    """How many processes train: ``pipeline.train_processes``, 0 meaning one per visible GPU (1 on CPU)."""
    import torch

    wanted = config.pipeline.train_processes
    gpus = torch.cuda.device_count() if visible_gpus is None else visible_gpus
    on_gpu = config.train.device != "cpu" and gpus > 0
    if wanted == 0:
        return gpus if on_gpu else 1
    if on_gpu and wanted > gpus:
        # NCCL wants a GPU of its own per rank; sharing one would only serialise the ranks.
        raise LaunchError(
            f"pipeline.train_processes={wanted} but {gpus} GPU(s) are visible to the train task "
            "(ask for more with pipeline.train_accelerator_count, or set train.device=cpu)"
        )
    return wanted


def fit_table(
    table: pd.DataFrame,
    config: Config,
    parent: LoadedModel | None,
    row_days: Sequence[str] | None = None,
) -> FitResult:
    """``model.fit`` of ``table`` with the configured model, in one process or under torchrun.

    ``parent`` (warm start) and ``row_days`` (the day of each row) mean what they mean to ``fit``.
    """
    from model import fit

    n = processes(config)
    if n == 1:
        return fit(table, config.feature_spec, config.model, config.train, parent=parent, row_days=row_days)
    with tempfile.TemporaryDirectory(prefix="taml-torchrun-") as tmp:
        job = Path(tmp)
        write_job(job, table, config, parent, row_days)
        run_torchrun(job, n, config)
        return read_result(job, parent)


def write_job(
    job: Path,
    table: pd.DataFrame,
    config: Config,
    parent: LoadedModel | None,
    row_days: Sequence[str] | None = None,
) -> None:
    """The job folder every rank reads: table, row days, parent version (with its optimizer), config."""
    import numpy as np

    from model import save_model_version

    table.to_parquet(job / TABLE_FILE, index=False)
    if row_days is not None:
        np.save(job / ROW_DAYS_FILE, np.asarray(row_days, dtype=str), allow_pickle=False)
    if parent is not None:
        save_model_version(
            job / PARENT_DIR,
            parent.model,
            parent.spec,
            parent.vocab,
            parent.metadata,
            optimizer_state=parent.optimizer_state,
        )
    body = {"config": config.model_dump(mode="json"), "parent": parent is not None}
    (job / JOB_FILE).write_text(json.dumps(body))


def torchrun_command(job: Path, n: int) -> list[str]:
    return [
        sys.executable,
        "-m",
        "torch.distributed.run",
        "--standalone",
        f"--nproc_per_node={n}",
        "-m",
        "components.train.launch",
        str(job),
    ]


def run_torchrun(job: Path, n: int, config: Config) -> None:
    env = dict(os.environ)
    # Share the task's cores between the ranks instead of letting each take them all.
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1
    threads = config.train.num_threads or max(1, cores // n)
    env.setdefault("OMP_NUM_THREADS", str(threads))
    cmd = torchrun_command(job, n)
    log.info("training on %d processes: %s", n, " ".join(cmd))
    with open(job / LOG_FILE, "w") as out:
        code = subprocess.call(cmd, stdout=out, stderr=subprocess.STDOUT, env=env)
    text = (job / LOG_FILE).read_text(errors="replace")
    if code != 0 or not (job / RESULT_FILE).exists():
        tail = "\n".join(text.splitlines()[-30:])
        raise LaunchError(f"torchrun over {n} processes failed (exit {code}):\n{tail}")
    log.debug("torchrun output:\n%s", text)


def read_result(job: Path, parent: LoadedModel | None) -> FitResult:
    from model import load_model_version
    from model.fitting import FitResult
    from model.trainer import TrainResult

    loaded = load_model_version(job / OUT_DIR, with_optimizer=True)
    summary = json.loads((job / RESULT_FILE).read_text())
    world = summary.pop("world_size")
    rows = summary.pop("rows")
    log.info("trained on %d processes: %s samples/s", world, summary.get("samples_per_s"))
    return FitResult(
        loaded.model,
        loaded.config,
        loaded.spec,
        loaded.vocab,
        TrainResult(**summary, optimizer_state=loaded.optimizer_state),
        parent.version if parent is not None else None,
        rows,
    )


def worker(job: Path) -> None:
    """One rank: the same ``model.fit`` as one process would run; rank 0 hands the model back."""
    import numpy as np
    import pandas as pd
    import torch.distributed as dist

    from model import VersionMetadata, distributed, fit, save_model_version
    from model.trainer import resolve_device

    body = json.loads((job / JOB_FILE).read_text())
    config = validate(body["config"])
    backend = "nccl" if resolve_device(config.train.device).type == "cuda" else "gloo"
    info = distributed.init_from_env(backend)
    table = pd.read_parquet(job / TABLE_FILE)
    parent = job / PARENT_DIR if body["parent"] else None
    days_file = job / ROW_DAYS_FILE
    row_days = np.load(days_file, allow_pickle=False).tolist() if days_file.exists() else None
    result = fit(table, config.feature_spec, config.model, config.train, parent=parent, row_days=row_days)
    history = merged_history(result.result.history, info)
    if info.is_main:
        save_model_version(
            job / OUT_DIR,
            result.model,
            result.spec,
            result.vocab,
            VersionMetadata(version=HANDOFF_VERSION),
            overwrite=True,
            # Every rank holds the same optimizer state (same averaged gradients): rank 0's is it.
            optimizer_state=result.optimizer_state,
        )
        # Written last: its presence tells the launcher the hand-off is complete.
        summary = {
            **result.result.summary(),
            "history": history,
            "world_size": info.world_size,
            "rows": result.rows,
        }
        (job / RESULT_FILE).write_text(json.dumps(summary))
    distributed.barrier(info)
    if info.active:
        dist.destroy_process_group()


def merged_history(history: list[dict[str, float]], info) -> list[dict[str, float]]:
    """The loss history of the whole global batch, not of rank 0's shard.

    Each rank logs its shard's loss scaled by ``world · n_local / n_global`` (model/trainer.py),
    so the mean over ranks is the global batch mean: the number one process would have logged.
    """
    if not info.active:
        return history
    import torch.distributed as dist

    every: list = [None] * info.world_size
    dist.all_gather_object(every, history)
    return [
        {
            k: (v if k in ("step", "epoch") else sum(h[i][k] for h in every) / info.world_size)
            for k, v in rec.items()
        }
        for i, rec in enumerate(history)
    ]


if __name__ == "__main__":
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    worker(Path(sys.argv[1]))
