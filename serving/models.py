"""The model side of serving: a loaded, warmed version; a holder swapped atomically; the alias follower.

Requests read :attr:`ModelHolder.current` once and use that object to the end, so a swap never
changes the model under a request in flight, and the old model is freed when its last request
returns. The follower loads a new production version aside (download, checksum, load, warm with
one forward pass) and only then swaps it in; a version that fails stays out, and the old model
keeps serving.
"""

from __future__ import annotations

import logging
import re
import shutil
import tempfile
import threading
import time
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from serving.encoding import RowEncoder

if TYPE_CHECKING:
    from model import LoadedModel

log = logging.getLogger(__name__)

WARM_ROWS = 8
SCORE_KEYS = ("p_ctr", "p_cvr", "p_ctcvr")
# DESIGN's registry names. A version name becomes a folder of the cache (and a registry path), so
# nothing else, and no "..", is ever used as one.
VERSION_NAME = re.compile(r"[A-Za-z0-9._-]+")
VERSION_MAX_CHARS = 200


class AliasError(ValueError):
    """The production alias document is not one the server can follow (left as it is, reported)."""


def check_version_name(version: object) -> str:
    """``version`` if it is a safe registry version name, else :class:`AliasError`."""
    if not isinstance(version, str):
        raise AliasError(f"version must be a string, got {type(version).__name__}")
    if not version or len(version) > VERSION_MAX_CHARS:
        raise AliasError(f"version must have 1..{VERSION_MAX_CHARS} characters")
    if not VERSION_NAME.fullmatch(version) or ".." in version or version == ".":
        raise AliasError(
            f"version {version[:VERSION_MAX_CHARS]!r} is not a name matching [A-Za-z0-9._-]+ without '..'"
        )
    return version


def inside(root: Path, name: str) -> Path:
    """``root / name``, refused unless it resolves to a path strictly inside ``root``."""
    base = root.resolve()
    path = (base / name).resolve()
    if path == base or not path.is_relative_to(base):
        raise AliasError(f"{name!r} resolves outside {base}")
    return path


class ModelLoadError(RuntimeError):
    """A model version could not be loaded or answered its warm-up request wrongly."""


@dataclass(frozen=True)
class ServingModel:
    """A model version ready to answer: its own feature spec's columns, encoder and network."""

    loaded: LoadedModel
    encoder: RowEncoder

    @property
    def version(self) -> str:
        return self.loaded.version

    @property
    def columns(self) -> list[str]:
        """The input columns the version's own feature spec reads (absent ones are null)."""
        return self.encoder.columns

    def score_rows(self, rows: Sequence[Mapping[str, Any]]) -> dict[str, np.ndarray]:
        """{p_ctr, p_cvr, p_ctcvr} float64 arrays, one value per row, in one forward pass."""
        return self._scores(self.encoder.encode(rows))

    def score_items(
        self, shared: Mapping[str, Any], item_ids: Sequence[int], items: Sequence[Mapping[str, Any] | None]
    ) -> dict[str, np.ndarray]:
        """``score_rows`` of ``{"item_id": i, **shared, **item}`` per item (``RowEncoder.encode_items``)."""
        return self._scores(self.encoder.encode_items(shared, item_ids, items))

    def _scores(self, x: np.ndarray) -> dict[str, np.ndarray]:
        import torch

        # model.predict_encoded's forward without its per-call eval()/train() walk over the modules
        # (a served model is in eval mode from load to end) and in inference mode (no autograd
        # bookkeeping at all): ~0.6 ms of a 100-row request. Requests are at most
        # serving.max_instances rows, far below model.scoring's batch, so one pass.
        model = self.loaded.model
        device = next(model.parameters()).device
        with torch.inference_mode():
            out = model(torch.from_numpy(x).to(device))
            pred = {k: out[k].float().cpu().numpy().astype(np.float64) for k in SCORE_KEYS}
        pred["p_ctcvr"] = np.minimum(pred["p_ctcvr"], pred["p_ctr"])  # as model.score guarantees
        if not all(np.isfinite(v).all() for v in pred.values()):
            raise ModelLoadError(f"model {self.version} produced non-finite scores")
        return pred

    def score_frame(self, table: pd.DataFrame) -> pd.DataFrame:
        """DataFrame[p_ctr, p_cvr, p_ctcvr] for a table, through the serving path (same index)."""
        return pd.DataFrame(self.score_rows(table.to_dict("records")), index=table.index)


def load_serving_model(version_dir: str | Path, device: str = "cpu") -> ServingModel:
    """Load a model version directory exactly as the server does, and warm it with one forward pass.

    Raises :class:`ModelLoadError`.
    """
    from model import ModelError, load_model_version

    try:
        loaded = load_model_version(version_dir, device=device)
    except (ModelError, OSError, ValueError) as e:
        raise ModelLoadError(f"cannot load model version {version_dir}: {e}") from e
    loaded.model.eval()
    served = ServingModel(loaded, RowEncoder(loaded.spec, loaded.vocab))
    # All-null rows exercise every embedding table and tower; allocations happen now, not on the
    # first user request.
    try:
        pred = served.score_rows([{}] * WARM_ROWS)
    except Exception as e:  # a broken version must never reach the holder, whatever broke
        raise ModelLoadError(f"model version {loaded.version} failed its warm-up pass: {e}") from e
    if not all(((v >= 0) & (v <= 1)).all() for v in pred.values()):
        raise ModelLoadError(
            f"model version {loaded.version} answered a probability outside [0, 1] on warm-up"
        )
    return served


class ModelHolder:
    """The model currently served. Reading :attr:`current` is one atomic reference read."""

    def __init__(self) -> None:
        self._current: ServingModel | None = None
        self._lock = threading.Lock()
        self.swaps = 0

    @property
    def current(self) -> ServingModel | None:
        return self._current

    def swap(self, new: ServingModel) -> ServingModel | None:
        with self._lock:
            old, self._current = self._current, new
            self.swaps += 1
        return old


class AliasFollower:
    """Follows ``{artifact_root}/registry/{model}/production.json`` and swaps new versions in.

    :meth:`check` does one round (tests call it directly); :meth:`start` runs it every
    ``poll_interval_s`` on a daemon thread. A version that failed to load is retried with a
    growing back-off (up to 10 polls), so a broken version costs neither a download every poll
    nor a restart once it is fixed or the alias moves.
    """

    def __init__(
        self,
        holder: ModelHolder,
        artifact_root: str,
        model_name: str,
        poll_interval_s: float,
        cache_dir: str | None = None,
    ):
        self.holder = holder
        self.artifact_root = artifact_root
        self.model_name = model_name
        self.poll_interval_s = poll_interval_s
        self._own_cache = not cache_dir
        self.cache_dir = Path(cache_dir or tempfile.mkdtemp(prefix="taml-serving-"))
        self._failed: dict[str, tuple[int, float]] = {}  # version -> (failures, next attempt)
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.last_error: str | None = None
        self.alias_version: str | None = None
        self.last_result: str | None = None
        self.last_check: float | None = None  # time.time() of the last finished round
        self.rounds = 0
        self.crashes = 0  # rounds that raised outside the expected failures (logged, survived)

    def status(self) -> dict[str, Any]:
        """What readiness shows: the alias's version, the served one, the last round and error."""
        current = self.holder.current
        return {
            "alias_version": self.alias_version,
            "serving_version": current.version if current else None,
            "last_result": self.last_result,
            "last_error": self.last_error,
            "last_check": self.last_check,
            "rounds": self.rounds,
            "crashes": self.crashes,
            "following": self._thread is not None and self._thread.is_alive(),
        }

    def check(self) -> str:
        """One round: 'no-alias', 'unchanged', 'swapped', 'failed', 'invalid' or 'backoff'."""
        try:
            result = self._check()
        except Exception as e:  # whatever broke this round, the next one must still run
            self.crashes += 1
            self.last_error = f"alias follower round failed: {type(e).__name__}: {e}"
            log.exception("alias follower round failed; following goes on")
            result = "failed"
        self.rounds += 1
        self.last_result = result
        self.last_check = time.time()
        return result

    def _check(self) -> str:
        from taml.core import registry

        try:
            alias = registry.read_alias(self.artifact_root, self.model_name)
            version = None if alias is None else check_version_name(alias.version)
        except (registry.RegistryError, AliasError) as e:  # the document itself is refused
            self.alias_version = None
            message = f"production alias of {self.model_name} refused: {e}"
            if message != self.last_error:
                log.error("%s; still serving what was served", message)
            self.last_error = message
            return "invalid"
        except Exception as e:  # storage hiccups must not stop following
            self.last_error = f"cannot read the production alias: {e}"
            log.warning("%s", self.last_error)
            return "failed"
        if version is None:
            return "no-alias"
        self.alias_version = version
        current = self.holder.current
        if current is not None and current.version == version:
            self.last_error = None
            return "unchanged"
        failures, next_try = self._failed.get(version, (0, 0.0))
        if time.monotonic() < next_try:
            return "backoff"
        try:
            served = self._load(version)
        except Exception as e:
            failures += 1
            delay = self.poll_interval_s * min(2 ** (failures - 1), 10)
            self._failed[version] = (failures, time.monotonic() + delay)
            self.last_error = f"production version {version} failed to load: {e}"
            log.error(
                "%s; still serving %s (retry in %.0f s)",
                self.last_error,
                current.version if current else "nothing",
                delay,
            )
            return "failed"
        self._failed.pop(version, None)
        old = self.holder.swap(served)
        self.last_error = None
        log.info("now serving %s %s (was %s)", self.model_name, served.version, old.version if old else None)
        self._prune(keep={served.loaded.path})
        return "swapped"

    def _load(self, version: str) -> ServingModel:
        from taml.core import registry

        dest = inside(self.cache_dir, f"{check_version_name(version)}-{uuid.uuid4().hex[:8]}")
        try:
            registry.download_version(self.artifact_root, self.model_name, version, dest)
            served = load_serving_model(dest)
        except BaseException:
            shutil.rmtree(dest, ignore_errors=True)
            raise
        if served.version != version:
            shutil.rmtree(dest, ignore_errors=True)
            raise ModelLoadError(
                f"registry version {version} holds a model that calls itself {served.version}"
            )
        return served

    def _prune(self, keep: set[Path | None]) -> None:
        # Weights are in memory once loaded; older downloads are only disk.
        for d in self.cache_dir.iterdir():
            if d.is_dir() and d.resolve() not in keep:
                shutil.rmtree(d, ignore_errors=True)

    def start(self) -> None:
        if self._thread is not None:
            return
        self._thread = threading.Thread(target=self._run, name="taml-alias-follower", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.is_set():
            self.check()  # never raises: a round's failure is recorded, the loop goes on
            self._stop.wait(self.poll_interval_s)

    def stop(self, timeout: float = 10.0) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout)
            self._thread = None
        if self._own_cache:
            shutil.rmtree(self.cache_dir, ignore_errors=True)
