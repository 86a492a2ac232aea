"""The simulator's days pass the labels and files checks; a D+1 holding only D's spill-over does not."""

from __future__ import annotations

import datetime as dt
import shutil

from ingest_helpers import DAYS

from components.ingest import run_ingest
from components.validate import run_validation
from taml.core import layout as L

ONE = dt.timedelta(days=1)


def _outcomes(config, day, root, tmp_path):
    cfg = config.model_copy(deep=True)
    cfg.paths.artifact_root = str(tmp_path / "art")
    return {o.name: o for o in run_validation(cfg, day, root).critical}


def test_simulated_days_have_landed_labels_and_no_skipped_file(simulated, ingest_config, tmp_path):
    root, _, results = simulated
    for day in DAYS:  # each with its D+1 simulated whole
        files = results[day].manifest["inputs"]["files"]
        assert all(not e["skipped"] for parts in files.values() for e in parts.values())
        out = _outcomes(ingest_config, day, root, tmp_path)
        assert out["labels.complete"].success, out["labels.complete"].message()
        assert out["files.none_skipped"].success


def test_a_next_day_with_only_the_spill_over_is_not_landed(simulated, ingest_config, tmp_path):
    src, _, _ = simulated
    root = str(tmp_path / "copy")
    shutil.copytree(src, root)
    last = DAYS[-1] + ONE  # simulated, but its D+1 holds only the late events of its own impressions
    run_ingest(ingest_config, last, root)
    o = _outcomes(ingest_config, last, root, tmp_path)["labels.complete"]
    assert not o.success
    assert o.observed["examples"][0].startswith(f"clicks {L.partition(last + ONE)}: ")
    assert "no _SUCCESS marker" in o.observed["examples"][0]
