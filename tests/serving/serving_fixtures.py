"""Helpers of the serving tests and benchmark: a tiny model version, a real Feast store, a live server."""

from __future__ import annotations

import contextlib
import datetime as dt
import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pandas as pd

from taml.core import registry
from taml.core.config import Config, load_config

START = dt.date(2026, 11, 1)
DAY = dt.date(2026, 11, 3)
USERS, ITEMS = 200, 80


def serving_config(tmp: Path, *overrides: str) -> Config:
    return load_config(
        env={},
        overrides=[
            f"paths.data_root={tmp / 'data'}",
            f"paths.artifact_root={tmp / 'art'}",
            "features.require_validation=false",
            "serving.poll_interval_s=0.2",
            "serving.store_check_interval_s=0.2",
            "serving.log_flush_interval_s=0.1",
            *overrides,
        ],
    )


def build_store(config: Config, data_root: str, users: int = USERS, items: int = ITEMS) -> None:
    """A real Feast store (DuckDB offline, SQLite online) with the features step's data and repo.

    Materialized through Feast's own ``FeatureStore.materialize`` over the whole history (the
    features step's windowed, checked materialization is its own business and tested there).
    """
    from simulator.curated import SyntheticSpec, write_history

    write_history(data_root, START, 3, SyntheticSpec(samples_per_day=1500, users=users, items=items, seed=5))
    rematerialize(config, data_root)


def rematerialize(config: Config, data_root: str) -> None:
    from components.features import apply

    start = dt.datetime.combine(START - dt.timedelta(days=1), dt.time(), dt.UTC)
    end = dt.datetime.combine(DAY + dt.timedelta(days=2), dt.time(), dt.UTC)
    apply(config, data_root).materialize(start, end)


def training_table(n: int = 4000, seed: int = 0, users: int = USERS, items: int = ITEMS) -> pd.DataFrame:
    """Synthetic rows with every column of the default feature spec, ids in the store's ranges."""
    rng = np.random.default_rng(seed)
    df = pd.DataFrame(
        {
            "user_id": rng.integers(0, users, n),
            "item_id": rng.integers(0, items, n),
            "position": rng.integers(1, 20, n),
            "device": rng.choice(["ios", "android", "web"], n),
            "hour": rng.integers(0, 24, n),
            "gender": rng.integers(0, 3, n),
            "age_level": rng.integers(0, 7, n),
            "city_level": rng.integers(0, 5, n),
            "occupation": rng.integers(0, 20, n),
            "category_id": rng.integers(0, 50, n),
            "shop_id": rng.integers(0, 300, n),
            "brand_id": rng.integers(0, 200, n),
            "price_level": rng.integers(0, 10, n),
        }
    )
    for e in ("user", "item"):
        for s in ("impressions", "clicks", "conversions"):
            df[f"{e}_{s}_7d"] = rng.integers(0, 100, n)
        for s in ("ctr", "cvr"):
            df[f"{e}_{s}_7d"] = rng.random(n) * 0.2
    logit = -3 + 0.8 * (df["device"] == "ios") - 0.05 * df["position"]
    df["click"] = (rng.random(n) < 1 / (1 + np.exp(-logit))).astype(int)
    df["conversion"] = (df["click"] & (rng.random(n) < 0.2)).astype(int)
    return df


def make_version(config: Config, out: Path, version: str, seed: int = 0) -> Path:
    """Train a tiny model on the default feature spec (min_count 1) and save it as ``version``."""
    from model import VersionMetadata, fit, save_model_version

    spec = config.feature_spec.model_copy(update={"min_count": 1})
    mc = config.model.model_copy(update={"embedding_dim": 4})
    tc = config.train.model_copy(update={"progress": False, "batch_size": 1000, "max_steps": 4, "seed": seed})
    fr = fit(training_table(seed=seed), spec, mc, tc)
    return save_model_version(out / version, fr.model, fr.spec, fr.vocab, VersionMetadata(version=version))


def publish(artifact_root: str, name: str, version_dir: Path, promote: bool = True) -> None:
    registry.publish_version(artifact_root, name, version_dir.name, version_dir)
    if promote:
        registry.promote(artifact_root, name, version_dir.name)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_until(pred, timeout: float = 20.0, every: float = 0.02) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if pred():
            return True
        time.sleep(every)
    return bool(pred())


@contextlib.contextmanager
def running_server(app, port: int | None = None, config: Config | None = None) -> Iterator[str]:
    """A real uvicorn server on 127.0.0.1 in a thread; yields its base URL.

    With ``config``, uvicorn gets the limits ``taml serve`` gives it (``serving.*``).
    """
    import httpx
    import uvicorn

    from serving.runtime import uvicorn_options

    port = port or free_port()
    options = (
        uvicorn_options(config, "127.0.0.1", port)
        if config is not None
        else {"host": "127.0.0.1", "port": port, "log_level": "warning", "access_log": False}
    )
    server = uvicorn.Server(uvicorn.Config(app, **options))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    url = f"http://127.0.0.1:{port}"

    def up() -> bool:
        try:
            return httpx.get(f"{url}/healthz", timeout=1.0).status_code == 200
        except httpx.HTTPError:
            return False

    try:
        if not wait_until(up, 30):
            raise RuntimeError("server did not start")
        yield url
    finally:
        server.should_exit = True
        thread.join(15)
