"""The run report page: built from real step outputs, rendered by headless Chromium."""

import datetime as dt
import re
import shutil
import subprocess
import tempfile
from pathlib import Path

import numpy as np
import pytest
from tiny_history import run_history

from model.metrics import auc
from monitoring.run_report import auc_estimate, calibration_estimate, write_run_report

D1 = dt.date(2026, 11, 1)
DAYS = [D1 + dt.timedelta(days=i) for i in range(4)]
CHROMIUM = shutil.which("chromium")


@pytest.fixture(scope="module")
def history(tmp_path_factory):
    """Four days through the real train, evaluate and deploy steps (day 1 has nothing to train on)."""
    root = tmp_path_factory.mktemp("run-report")
    _, _, artifacts = run_history(root, DAYS, rows=4000, cardinality=30, seed=200, world_seed=3)
    return artifacts


def test_the_page_renders_its_table_and_images_in_chromium(history, tmp_path):
    if CHROMIUM is None:
        pytest.fail("chromium is missing: run tools/system-deps.sh")
    uri = write_run_report(history, DAYS, confidence=0.95)
    page = Path(uri)
    text = page.read_text()
    assert "http://" not in text and "https://" not in text  # opens offline: nothing to fetch
    flags = [
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-quic",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        f"--user-data-dir={tempfile.mkdtemp(dir=tmp_path)}",
        "--window-size=1400,2000",
    ]
    dom = subprocess.run(
        [CHROMIUM, *flags, "--dump-dom", page.as_uri()], capture_output=True, text=True, timeout=120
    ).stdout
    days_table = re.search(r'<table id="days">(.*?)</table>', dom, re.S).group(1)
    assert days_table.count("<tr") == 1 + len(DAYS)
    for day in DAYS:
        assert day.isoformat() in days_table
    assert "blessed" in days_table and "not trained" in days_table
    images = re.findall(r'<img id="(\w+)"[^>]*src="data:image/png;base64,', dom)
    assert images == ["auc", "calibration"]
    assert re.search(r'<table id="links">.*href="evaluation/dt=2026-11-02/blessing.json"', dom, re.S)
    gate = re.search(r'<table id="gate">(.*?)</table>', dom, re.S).group(1)
    assert re.search(r"\[-?\d+\.\d{4}, -?\d+\.\d{4}\] vs", gate)  # the deciding rule with its interval

    shot = tmp_path / "page.png"
    subprocess.run(
        [CHROMIUM, *flags, f"--screenshot={shot}", page.as_uri()], capture_output=True, timeout=120
    )
    from PIL import Image

    pixels = np.asarray(Image.open(shot).convert("L"), dtype=np.float64)
    # Text, table rules and plotted curves: far from a blank (uniform) page.
    assert pixels.std() > 10 and (pixels < 128).mean() > 0.01


def test_intervals_cover_their_estimates():
    rng = np.random.default_rng(0)
    p = rng.uniform(0.01, 0.3, 20_000)
    y = (rng.uniform(size=p.size) < p).astype(float)
    a = auc_estimate(y, p, 0.95)
    assert a.value == pytest.approx(auc(y, p), abs=1e-9)
    assert a.low < a.value < a.high and a.high - a.low < 0.03
    c = calibration_estimate(y, p, 0.95)
    assert c.low < 1.0 < c.high  # a calibrated model's interval holds 1
    c2 = calibration_estimate(y, 2 * p, 0.95)
    assert c2.low > 1.5  # and an over-predicting one's does not
    assert auc_estimate(np.zeros(5), p[:5], 0.95) is None
    assert calibration_estimate(np.zeros(5), p[:5], 0.95) is None
