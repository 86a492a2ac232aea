"""Evaluation-day predictions built from what the simulator wrote, for the monitoring tests.

The "model" is the simulator's own truth as the world was before any scenario started: its
pCTR is the true click probability with the ctr_shift logit taken back out, its pCVR the true
post-click probability (a lost conversion postback does not change it), plus a little fixed
noise so AUCs are not oracle. Labels come from the raw click and conversion logs, so
calibration_break shows up exactly as it would in production: fewer conversions than predicted.
Features follow the pipeline's contract: profile attributes as of the day, and trailing stats
of the days before (nulls for entities without history).
"""

from __future__ import annotations

import datetime as dt
import gzip
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.json as paj

from simulator import simulate
from taml.core import layout as L
from taml.core.config import SimulatorConfig

START = dt.date(2026, 10, 1)
# Trailing window of the fixture's stats features: shorter than the production 7 days so the
# history reaches a steady state after a few simulated days (the tests stay small).
STATS_DAYS = 3
NOISE_LOGIT = 0.2
MODEL_VERSION = "v-fixture"


def world_config() -> SimulatorConfig:
    # A small world with denser clicks and conversions than production, so that a 25k-impression
    # day has ~300 conversions: enough for CVR calibration to be measured to about ±6%.
    return SimulatorConfig(
        users=5_000,
        base_items=2_000,
        # Lighter tails than production's defaults: in a world this small a handful of heavy
        # users or items would otherwise hold a third of all impressions, and their day-to-day
        # noise would read as drift of the stats features (a 25k-row day is not a 100M-row one).
        user_activity_alpha=2.5,
        item_popularity_alpha=2.0,
        new_items_per_day=50,
        categories=40,
        target_ctr=0.08,
        target_cvr=0.15,
        shops=3_000,
        brands=1_500,
        chunk_size=10_000,
    )


def _read_jsonl(folder: str) -> pd.DataFrame:
    frames = []
    for f in sorted(Path(folder).glob("*.jsonl*")):
        data = gzip.decompress(f.read_bytes()) if f.suffix == ".gz" else f.read_bytes()
        if data.strip():
            frames.append(paj.read_json(pa.BufferReader(data)).to_pandas())
    return pd.concat(frames, ignore_index=True) if frames else pd.DataFrame()


def labeled_day(root: str, day: dt.date) -> pd.DataFrame:
    """Impressions of ``day`` with click/conversion labels from the logs of day and day + 1."""
    imp = _read_jsonl(L.raw_dir(root, L.IMPRESSIONS, day))
    nxt = day + dt.timedelta(days=1)
    clicks = pd.concat([_read_jsonl(L.raw_dir(root, L.CLICKS, d)) for d in (day, nxt)], ignore_index=True)
    convs = pd.concat([_read_jsonl(L.raw_dir(root, L.CONVERSIONS, d)) for d in (day, nxt)], ignore_index=True)
    imp["click"] = imp["impression_id"].isin(set(clicks.get("impression_id", []))).astype("int64")
    imp["conversion"] = imp["impression_id"].isin(set(convs.get("impression_id", []))).astype("int64")
    imp["event_timestamp"] = pd.to_datetime(imp["ts"], utc=True)
    imp["hour"] = imp["event_timestamp"].dt.hour.astype("int64")
    truth = pd.read_parquet(L.truth_dir(root, day))
    return imp.drop(columns=["ts"]).merge(truth, on="impression_id", how="left")


def _profiles(roots_by_day: dict[dt.date, str], day: dt.date, source: str, key: str) -> pd.DataFrame:
    frames = [_read_jsonl(L.raw_dir(root, source, d)) for d, root in sorted(roots_by_day.items()) if d <= day]
    frames = [f for f in frames if len(f)]
    return pd.concat(frames, ignore_index=True).drop_duplicates(key, keep="last").drop(columns=["ts"])


def _stats(history: pd.DataFrame, key: str, prefix: str) -> pd.DataFrame:
    g = history.groupby(key).agg(imp=("click", "size"), clk=("click", "sum"), cnv=("conversion", "sum"))
    ctr = history["click"].mean()
    cvr = history["conversion"].sum() / max(history["click"].sum(), 1)
    return pd.DataFrame(
        {
            f"{prefix}_impressions_7d": g["imp"].astype("float64"),
            f"{prefix}_clicks_7d": g["clk"].astype("float64"),
            f"{prefix}_conversions_7d": g["cnv"].astype("float64"),
            f"{prefix}_ctr_7d": (g["clk"] + 100 * ctr) / (g["imp"] + 100),
            f"{prefix}_cvr_7d": (g["cnv"] + 50 * cvr) / (g["clk"] + 50),
        }
    ).reset_index()


def predictions_for_day(
    day_frames: dict[dt.date, pd.DataFrame],
    roots_by_day: dict[dt.date, str],
    day: dt.date,
    ctr_shift_logit: float = 0.0,
    seed: int = 0,
) -> pd.DataFrame:
    """The contract frame of ``predictions/dt=day`` (see module docstring)."""
    df = day_frames[day].copy()
    df = df.merge(_profiles(roots_by_day, day, L.USERS, "user_id"), on="user_id", how="left")
    df = df.merge(_profiles(roots_by_day, day, L.ITEMS, "item_id"), on="item_id", how="left")
    past = [day_frames.get(day - dt.timedelta(days=k)) for k in range(1, STATS_DAYS + 1)]
    past = [p for p in past if p is not None]
    if past:
        history = pd.concat(past, ignore_index=True)
        df = df.merge(_stats(history, "user_id", "user"), on="user_id", how="left")
        df = df.merge(_stats(history, "item_id", "item"), on="item_id", how="left")
    rng = np.random.default_rng([seed, day.toordinal()])

    def model(p: np.ndarray, shift: float) -> np.ndarray:
        logit = np.log(p) - np.log1p(-p) - shift + rng.normal(0.0, NOISE_LOGIT, len(p))
        return 1.0 / (1.0 + np.exp(-logit))

    df["p_ctr"] = model(df.pop("p_click").to_numpy(), ctr_shift_logit)
    df["p_cvr"] = model(df.pop("p_conv").to_numpy(), 0.0)
    df["p_ctcvr"] = df["p_ctr"] * df["p_cvr"]
    df["model_version"] = MODEL_VERSION
    return df


def write_predictions(artifact_root: str, day: dt.date, df: pd.DataFrame) -> str:
    folder = Path(L.predictions_dir(artifact_root, day))
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / "part-00000.parquet"
    df.to_parquet(path, index=False)
    return str(path)


class SimHistory:
    """A clean simulated history, plus single scenario days simulated on the same world."""

    def __init__(self, base: Path, days: int, impressions: int, seed: int = 5):
        self.base = base
        self.impressions = impressions
        self.seed = seed
        self.days = L.day_range(START, days)
        self.clean_root = str(base / "clean")
        # One more day than asked, so the last day's late clicks and conversions exist.
        simulate(self.clean_root, START, days + 1, impressions, seed, config=world_config())
        self.frames: dict[dt.date, pd.DataFrame] = {d: labeled_day(self.clean_root, d) for d in self.days}
        self.roots: dict[dt.date, str] = {d: self.clean_root for d in self.days}

    def clean_predictions(self, day: dt.date) -> pd.DataFrame:
        return predictions_for_day(self.frames, self.roots, day, seed=self.seed)

    def scenario_predictions(self, scenario: str, day: dt.date) -> pd.DataFrame:
        """Day ``day`` replayed with ``scenario`` starting that day; earlier days stay clean."""
        cfg = world_config()
        root = str(self.base / scenario)
        simulate(root, day, 1, self.impressions, self.seed, scenario=scenario, scenario_day=day, config=cfg)
        frames = dict(self.frames)
        frames[day] = labeled_day(root, day)
        roots = {d: r for d, r in self.roots.items() if d < day}
        roots[day] = root
        shift = cfg.scenarios.ctr_shift_logit if scenario == "ctr_shift" else 0.0
        return predictions_for_day(frames, roots, day, ctr_shift_logit=shift, seed=self.seed)


def synthetic_predictions(n: int, seed: int = 0, with_features: bool = True) -> pd.DataFrame:
    """A calibrated contract frame without the simulator (for input-handling tests)."""
    rng = np.random.default_rng(seed)
    p_ctr = 1 / (1 + np.exp(-rng.normal(-2.5, 0.8, n)))
    p_cvr = 1 / (1 + np.exp(-rng.normal(-1.8, 0.8, n)))
    click = (rng.random(n) < p_ctr).astype("int64")
    conversion = (click & (rng.random(n) < p_cvr)).astype("int64")
    df = pd.DataFrame(
        {
            "impression_id": np.arange(n).astype(str),
            "click": click,
            "conversion": conversion,
            "p_ctr": p_ctr,
            "p_cvr": p_cvr,
            "p_ctcvr": p_ctr * p_cvr,
            "model_version": "v-synthetic",
        }
    )
    if with_features:
        df["device"] = rng.choice(["ios", "android", "web"], n)
        df["position"] = rng.geometric(0.1, n).clip(1, 100)
        df["item_id"] = rng.integers(0, 500, n)
        df["user_ctr_7d"] = np.where(rng.random(n) < 0.1, np.nan, rng.beta(2, 40, n))
    return df
