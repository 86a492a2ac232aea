import datetime as dt

from components.train import plan_training
from components.train.policy import DayStatus, WindowPolicy

D = dt.date(2026, 11, 10)
POLICY = WindowPolicy(window_days=7, min_conversions=0, max_window_days=28, cold_start_days=3)


def ago(*offsets: int) -> list[dt.date]:
    return sorted(D - dt.timedelta(days=o) for o in offsets)


def ok(*offsets: int, conversions: int = 10) -> dict[dt.date, DayStatus]:
    return {d: DayStatus(True, conversions) for d in ago(*offsets)}


def test_cold_start_needs_cold_start_days_validated_days():
    plan = plan_training(D, None, None, ok(1, 2), POLICY)
    assert plan.mode == "skip" and "needs 3 validated day(s)" in plan.reason and "found 2" in plan.reason
    plan = plan_training(D, None, None, ok(1, 2, 5), POLICY)
    assert plan.mode == "cold" and plan.days == ago(1, 2, 5) and plan.parent_version is None
    assert plan.conversions == 30


def test_window_slides_and_never_trains_on_d_or_later():
    status = ok(*range(0, 20))
    status[D + dt.timedelta(days=1)] = DayStatus(True, 10)
    plan = plan_training(D, None, None, status, POLICY)
    assert plan.days == ago(*range(1, 8))


def test_warm_update_trains_over_the_whole_window_not_only_the_days_since_the_parent():
    # Production moves daily: it was trained through D-2, yet the update sees the last 7 days.
    plan = plan_training(D, "v5", D - dt.timedelta(days=2), ok(*range(1, 12)), POLICY)
    assert plan.mode == "warm" and plan.parent_version == "v5"
    assert plan.days == ago(*range(1, 8))


def test_days_whose_validation_failed_are_left_out_and_named():
    status = ok(1, 2, 3, 4)
    status[D - dt.timedelta(days=2)] = DayStatus(False, why_not="validation failed")
    plan = plan_training(D, "v5", D - dt.timedelta(days=3), status, POLICY)
    assert plan.mode == "warm" and D - dt.timedelta(days=2) not in plan.days
    assert plan.excluded[str(D - dt.timedelta(days=2))] == "validation failed"
    assert "validation failed" in plan.reason


def test_a_warm_update_with_no_new_validated_day_skips():
    status = ok(2, 3)
    status[D - dt.timedelta(days=1)] = DayStatus(False, why_not="validation failed")
    plan = plan_training(D, "v5", D - dt.timedelta(days=2), status, POLICY)
    assert plan.mode == "skip" and "no validated day after" in plan.reason
    assert "validation failed" in plan.reason


def test_nothing_new_to_train_on():
    plan = plan_training(D, "v9", D - dt.timedelta(days=1), ok(1, 2), POLICY)
    assert plan.mode == "skip" and "already trained through" in plan.reason


def test_min_conversions_extends_the_window_back_up_to_its_limit():
    policy = WindowPolicy(window_days=3, min_conversions=50, max_window_days=10, cold_start_days=3)
    plan = plan_training(D, None, None, ok(*range(1, 30), conversions=10), policy)
    assert plan.days == ago(1, 2, 3, 4, 5) and plan.conversions == 50
    plan = plan_training(D, None, None, ok(*range(1, 30), conversions=1), policy)
    assert plan.days == ago(*range(1, 11)) and plan.conversions == 10  # capped at max_window_days
    # Enough conversions already: the window stays at window_days.
    plan = plan_training(D, None, None, ok(*range(1, 30), conversions=100), policy)
    assert plan.days == ago(1, 2, 3)
