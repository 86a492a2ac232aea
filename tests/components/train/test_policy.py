import datetime as dt

from components.train import plan_training

D = dt.date(2026, 11, 10)


def days(*offsets: int) -> set[dt.date]:
    return {D - dt.timedelta(days=o) for o in offsets}


def test_cold_start_uses_the_last_days_before_d_that_have_tables():
    plan = plan_training(D, None, None, days(1, 2, 3, 4), cold_start_days=3, max_warm_days=7)
    assert plan.mode == "cold" and plan.parent_version is None
    assert plan.days == sorted(days(1, 2, 3))
    assert D not in plan.days


def test_cold_start_with_too_little_history_skips():
    plan = plan_training(D, None, None, set(), cold_start_days=3, max_warm_days=7)
    assert plan.mode == "skip" and "found 0" in plan.reason
    plan = plan_training(D, None, None, days(2), cold_start_days=3, max_warm_days=7, min_train_days=2)
    assert plan.mode == "skip"


def test_warm_start_trains_on_the_days_after_trained_through():
    plan = plan_training(
        D, "v5", D - dt.timedelta(days=4), days(1, 2, 3, 4, 5), cold_start_days=3, max_warm_days=7
    )
    assert plan.mode == "warm" and plan.parent_version == "v5"
    assert plan.days == sorted(days(1, 2, 3))


def test_warm_start_is_capped_and_never_trains_on_d():
    plan = plan_training(
        D, "v1", D - dt.timedelta(days=30), days(*range(1, 30)), cold_start_days=3, max_warm_days=7
    )
    assert plan.days == sorted(days(*range(1, 8)))


def test_nothing_new_to_train_on():
    plan = plan_training(D, "v9", D - dt.timedelta(days=1), days(1, 2), cold_start_days=3, max_warm_days=7)
    assert plan.mode == "skip" and "already trained through" in plan.reason


def test_a_missing_day_in_the_warm_window_stops_instead_of_skipping_it_silently():
    plan = plan_training(D, "v5", D - dt.timedelta(days=4), days(1, 3), cold_start_days=3, max_warm_days=7)
    assert plan.mode == "skip" and str(D - dt.timedelta(days=2)) in plan.reason
