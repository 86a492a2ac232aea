"""Steps 4-6 on planted-signal feature tables: cold start, warm start, the gate, the alias."""

import datetime as dt
import hashlib
import json
import shutil
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from planted_data import make_synthetic

from components.deploy import run_deploy
from components.deploy.run import DeployError
from components.evaluate import run_evaluate
from components.train import run_train
from components.train.run import version_id
from components.validate import ValidationResult, validation_dir
from components.validate.report import write_artifacts
from model import load_model_version
from model.artifacts import WEIGHTS_FILE, weights_sha256
from taml.core import layout, registry
from taml.core.config import load_config

D1 = dt.date(2026, 11, 1)
DAYS = [D1 + dt.timedelta(days=i) for i in range(4)]


@pytest.fixture
def roots(tmp_path: Path):
    data, artifacts = tmp_path / "data", tmp_path / "artifacts"
    for i, day in enumerate(DAYS):
        frame, spec, _ = make_synthetic(6000, n_fields=6, cardinality=40, seed=100 + i, world_seed=7)
        out = Path(layout.training_table_dir(str(data), day))
        out.mkdir(parents=True)
        pq.write_table(pa.Table.from_pandas(frame), out / "part-0.parquet")
        record_validation(str(artifacts), day, passed=True)
    return str(data), str(artifacts), spec


def record_validation(artifacts: str, day: dt.date, passed: bool) -> None:
    """The verdict the validate step leaves for the day (train reads it, not just the table)."""
    write_artifacts(ValidationResult(day.isoformat(), passed, [], []), validation_dir(artifacts, day))


def _config(spec, *extra):
    cfg = load_config(
        env={},
        overrides=[
            "train.progress=false",
            # The schedule the validation search chose (docs/MODEL.md, "Defaults"). A harder one
            # (4 epochs at lr 5e-3, ~23 steps an epoch per day of these tables) leaves the validated
            # TAML's pCTCVR ~25% low even on its own training rows, cold start or warm: the gate then
            # rightly refuses the day-2 update for its calibration and the digest checks never run.
            "train.epochs=3",
            "train.batch_size=256",
            "train.lr=0.002",
            "pipeline.cold_start_days=1",
            "evaluate.rules.require_resolution=false",
            "evaluate.rules.calibration_min=0.5",
            "evaluate.rules.calibration_max=2.0",
            *extra,
        ],
    )
    cfg.feature_spec = spec
    return cfg


def _day(cfg, day, data, artifacts, tmp: Path):
    cand = tmp / f"candidate-{day}"
    trained = run_train(cfg, day, data, artifacts, cand)
    if not trained.trained:
        return trained, None, None
    ev = run_evaluate(cfg, day, data, artifacts, cand)
    dep = run_deploy(cfg, day, data, artifacts, cand, ev.blessing_uri) if ev.blessed else None
    return trained, ev, dep


def test_first_day_cannot_train_then_cold_start_then_warm_start(roots, tmp_path):
    data, artifacts, spec = roots
    cfg = _config(spec)
    t0, _, _ = _day(cfg, D1, data, artifacts, tmp_path)
    assert not t0.trained and "found 0" in t0.reason

    t1, ev1, dep1 = _day(cfg, DAYS[1], data, artifacts, tmp_path)
    assert t1.mode == "cold" and t1.days == [D1.isoformat()]
    assert ev1.blessed, ev1.reason
    assert ev1.production is None and ev1.candidate.metrics["ctr_auc"] > 0.6
    assert dep1.promoted and registry.production_version(artifacts, "taml") == t1.version

    t2, ev2, _ = _day(cfg, DAYS[2], data, artifacts, tmp_path)
    assert t2.mode == "warm" and t2.parent_version == t1.version
    assert t2.days == [D1.isoformat(), DAYS[1].isoformat()]  # the sliding window, not only D2
    assert ev2.production.model_id == t1.version
    blessing = json.loads(Path(ev2.blessing_uri).read_text())
    assert (
        blessing["candidate"]["model_id"] == t2.version and blessing["production"]["model_id"] == t1.version
    )
    # The predictions of the model that served D (production) are there for the monitor.
    preds = pq.read_table(layout.predictions_dir(artifacts, DAYS[2])).to_pandas()
    assert len(preds) == 6000 and set(preds.model_version) == {t1.version}
    assert (preds.p_ctcvr <= preds.p_ctr).all()


def test_a_worse_candidate_is_not_deployed_and_the_alias_stays(roots, tmp_path):
    data, artifacts, spec = roots
    good = _config(spec)
    t1, ev1, _ = _day(good, DAYS[1], data, artifacts, tmp_path)
    assert ev1.blessed
    # Inject bad training data: day 2's labels shuffled, so the warm-started candidate unlearns.
    table_dir = Path(layout.training_table_dir(data, DAYS[1]))
    frame = pq.read_table(table_dir).to_pandas()
    frame[["click", "conversion"]] = frame[["click", "conversion"]].sample(frac=1, random_state=0).to_numpy()
    pq.write_table(pa.Table.from_pandas(frame), table_dir / "part-0.parquet")
    t2, ev2, dep2 = _day(
        _config(spec, "train.epochs=8", "pipeline.window_days=1"), DAYS[2], data, artifacts, tmp_path
    )
    assert t2.trained and not ev2.blessed and dep2 is None
    assert any(r.rule == "no_regression" for r in ev2_failed(ev2))
    assert registry.production_version(artifacts, "taml") == t1.version
    # Deploying the rejected candidate by hand is refused too.
    with pytest.raises(DeployError, match="not blessed"):
        run_deploy(good, DAYS[2], data, artifacts, tmp_path / f"candidate-{DAYS[2]}", ev2.blessing_uri)


def ev2_failed(ev):
    return ev.blessing.failed


def test_re_running_a_finished_day_changes_nothing(roots, tmp_path):
    data, artifacts, spec = roots
    cfg = _config(spec)
    t1, _, dep1 = _day(cfg, DAYS[1], data, artifacts, tmp_path / "a")
    alias1 = registry.read_alias(artifacts, "taml")
    again, _, _ = _day(cfg, DAYS[1], data, artifacts, tmp_path / "b")
    assert not again.trained and "already trained through" in again.reason
    alias2 = registry.read_alias(artifacts, "taml")
    assert (alias2.version, alias2.history, alias2.time) == (alias1.version, alias1.history, alias1.time)
    assert registry.list_versions(artifacts, "taml") == [t1.version]


def test_a_run_killed_between_publish_and_promote_reruns_to_the_same_state(roots, tmp_path):
    data, artifacts, spec = roots
    cfg = _config(spec)
    # The killed run: trained, evaluated, published, then died before moving the alias.
    cand = tmp_path / "killed"
    t1 = run_train(cfg, DAYS[1], data, artifacts, cand)
    registry.publish_version(artifacts, "taml", t1.version, cand)
    assert registry.read_alias(artifacts, "taml") is None
    # The re-run trains the same version (deterministic on CPU), publishes nothing new, promotes it.
    t1b, _, dep = _day(cfg, DAYS[1], data, artifacts, tmp_path)
    assert t1b.version == t1.version and dep.promoted
    assert registry.list_versions(artifacts, "taml") == [t1.version]
    assert registry.production_version(artifacts, "taml") == t1.version


def test_deploy_refuses_a_verdict_against_a_production_model_that_has_since_moved(roots, tmp_path):
    data, artifacts, spec = roots
    cfg = _config(spec)
    t1, _, _ = _day(cfg, DAYS[1], data, artifacts, tmp_path)
    cand = tmp_path / "c2"
    t2 = run_train(cfg, DAYS[2], data, artifacts, cand)
    ev2 = run_evaluate(cfg, DAYS[2], data, artifacts, cand)
    # Meanwhile an operator publishes and promotes another version.
    registry.publish_version(artifacts, "taml", "manual", tmp_path / f"candidate-{DAYS[1]}")
    registry.promote(artifacts, "taml", "manual")
    if ev2.blessed:
        with pytest.raises(DeployError, match="stale verdict"):
            run_deploy(cfg, DAYS[2], data, artifacts, cand, ev2.blessing_uri)
    assert registry.production_version(artifacts, "taml") == "manual"
    assert t2.parent_version == t1.version


def test_a_day_re_ingested_and_now_failing_validation_is_not_trained_on(roots, tmp_path):
    data, artifacts, spec = roots
    cfg = _config(spec, "pipeline.cold_start_days=2")
    record_validation(artifacts, DAYS[1], passed=False)  # its table is still there
    t, _, _ = _day(cfg, DAYS[3], data, artifacts, tmp_path)
    assert t.trained and t.mode == "cold"
    assert t.days == [DAYS[0].isoformat(), DAYS[2].isoformat()]
    assert t.excluded[DAYS[1].isoformat()] == "validation failed"


def test_warm_updates_slide_over_the_window_and_carry_vocabulary_counts_and_lineage(roots, tmp_path):
    from model import load_model_version

    data, artifacts, spec = roots
    cfg = _config(spec, "pipeline.window_days=3")
    t1, ev1, _ = _day(cfg, DAYS[1], data, artifacts, tmp_path)
    assert t1.mode == "cold" and ev1.blessed
    t2, ev2, dep2 = _day(cfg, DAYS[2], data, artifacts, tmp_path)
    # The warm update trains on the whole window (D1 again and D2), not only the day since its parent.
    assert t2.mode == "warm" and t2.days == [DAYS[0].isoformat(), DAYS[1].isoformat()]
    child = load_model_version(tmp_path / f"candidate-{DAYS[2]}", with_optimizer=True)
    meta = child.metadata
    assert meta.parent_version == t1.version
    assert [d.isoformat() for d in meta.training_window.days] == t2.days
    # D1 was counted by the parent: its counts are not added a second time.
    assert child.vocab.counted_days == t2.days
    parent = load_model_version(registry.download_version(artifacts, "taml", t1.version, tmp_path / "p"))
    f = spec.fields[0].name
    d1 = pq.read_table(layout.training_table_dir(data, DAYS[0])).to_pandas()
    d2 = pq.read_table(layout.training_table_dir(data, DAYS[1])).to_pandas()
    some = int(d1[f].iloc[0])
    assert parent.vocab.fields[f].counts[some] == int((d1[f] == some).sum())
    assert child.vocab.fields[f].counts[some] == int((d1[f] == some).sum() + (d2[f] == some).sum())
    assert child.optimizer_state is not None


def _weights(directory) -> str:
    return hashlib.sha256((Path(directory) / WEIGHTS_FILE).read_bytes()).hexdigest()


def test_a_re_run_after_rollback_and_a_data_fix_deploys_the_weights_it_evaluated(roots, tmp_path):
    data, artifacts, spec = roots
    cfg = _config(spec)
    t1, _, _ = _day(cfg, DAYS[1], data, artifacts, tmp_path / "a")
    t2, _, dep2 = _day(cfg, DAYS[2], data, artifacts, tmp_path / "b")
    assert dep2.promoted and t2.parent_version == t1.version
    assert registry.rollback(artifacts, "taml").version == t1.version
    # Day 1's data is fixed (re-ingested without its 5% duplicated rows, say); day 2 is run again.
    table_dir = Path(layout.training_table_dir(data, DAYS[1]))
    fixed = pq.read_table(table_dir).to_pandas().sample(frac=0.95, random_state=0).sort_index()
    pq.write_table(pa.Table.from_pandas(fixed, preserve_index=False), table_dir / "part-0.parquet")
    t2b, ev2b, dep2b = _day(cfg, DAYS[2], data, artifacts, tmp_path / "c")
    assert t2b.trained and t2b.parent_version == t1.version and ev2b.blessed, ev2b.reason
    candidate = tmp_path / "c" / f"candidate-{DAYS[2]}"
    # Other weights, so another id: the registry never holds two models under one name.
    assert t2b.version != t2.version and _weights(candidate) != _weights(
        tmp_path / "b" / f"candidate-{DAYS[2]}"
    )
    live = registry.production_version(artifacts, "taml")
    assert dep2b.promoted and live == t2b.version
    evaluated = json.loads(Path(ev2b.blessing_uri).read_text())["candidate"]["weights_sha256"]
    assert registry.verify_version(artifacts, "taml", live)[WEIGHTS_FILE] == evaluated == _weights(candidate)
    # The digest the id is built from is the one of the file written (known before saving).
    loaded = load_model_version(candidate)
    assert weights_sha256(loaded.model) == loaded.metadata.files[WEIGHTS_FILE] == evaluated


def test_deploy_refuses_weights_that_were_not_the_ones_evaluated(roots, tmp_path):
    data, artifacts, spec = roots
    cfg = _config(spec)
    cand = tmp_path / "cand"
    t1 = run_train(cfg, DAYS[1], data, artifacts, cand)
    ev1 = run_evaluate(cfg, DAYS[1], data, artifacts, cand)
    assert ev1.blessed
    blessing = json.loads(Path(ev1.blessing_uri).read_text())
    # 1. The blessing names other weights than the candidate folder holds (a swapped folder).
    forged = tmp_path / "forged.json"
    forged.write_text(
        json.dumps({**blessing, "candidate": {**blessing["candidate"], "weights_sha256": "0" * 64}})
    )
    with pytest.raises(DeployError, match="not the ones evaluated"):
        run_deploy(cfg, DAYS[1], data, artifacts, cand, str(forged))
    unrecorded = tmp_path / "unrecorded.json"
    unrecorded.write_text(json.dumps({**blessing, "candidate": {"model_id": t1.version, "metrics": {}}}))
    with pytest.raises(DeployError, match="records no weights digest"):
        run_deploy(cfg, DAYS[1], data, artifacts, cand, str(unrecorded))
    # 2. The registry already holds a version of that id with other weights.
    other = tmp_path / "other"
    shutil.copytree(cand, other)
    (other / WEIGHTS_FILE).write_bytes(b"not these weights")
    registry.publish_version(artifacts, "taml", t1.version, other)
    with pytest.raises(DeployError, match=rf"differs from the evaluated candidate in {WEIGHTS_FILE}"):
        run_deploy(cfg, DAYS[1], data, artifacts, cand, ev1.blessing_uri)
    assert registry.read_alias(artifacts, "taml") is None


def test_version_id_changes_with_the_weights():
    from components.train.policy import TrainingPlan

    cfg = load_config(env={})
    plan = TrainingPlan(mode="cold", days=[D1], parent_version=None, reason="")
    assert version_id(plan, cfg, "a" * 64) == version_id(plan, cfg, "a" * 64)
    assert version_id(plan, cfg, "a" * 64) != version_id(plan, cfg, "b" * 64)
    assert version_id(plan, cfg, "a" * 64).startswith(f"{D1:%Y%m%d}-")
