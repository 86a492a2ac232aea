"""A world sized to its traffic: population, catalogue and rates follow the density preset."""

import pandas as pd
import pytest
from simdata import START

from simulator import simulate
from simulator.density import size_world
from taml.core.config import ConfigError, SimulatorConfig, load_config


def test_aliccp_ratios_at_any_volume():
    cfg = SimulatorConfig()
    preset = cfg.density_presets["aliccp"]
    for per_day in (6_000, 60_000, 600_000):
        w = size_world(cfg, per_day)
        week = per_day * cfg.density_days
        assert w.users == round(week / 210) and w.base_items == round(week / 19.5)
        assert week / w.users == pytest.approx(preset.impressions_per_user, rel=0.01)
        assert week / w.base_items == pytest.approx(preset.impressions_per_item, rel=0.01)
        assert (w.target_ctr, w.target_cvr) == (0.0405, 0.0053)
        assert w.new_items_per_day == round(0.03 * w.base_items)
        assert w.shops == round(w.base_items / 3.3) and w.brands == round(w.base_items / 6.7)
    # The old fixed world: 50,000 users for 60,000 impressions a day. Now 2,000 users, each seen
    # 210 times over a week.
    assert size_world(cfg, 60_000).users == 2_000


def test_explicit_sizes_and_rates_win_over_the_preset():
    w = size_world(SimulatorConfig(users=123, target_cvr=0.1, new_items_per_day=0, density="demo"), 60_000)
    assert (w.users, w.target_cvr, w.new_items_per_day) == (123, 0.1, 0)
    assert w.target_ctr == 0.08 and w.base_items == round(420_000 / 19.5)


def test_an_unknown_density_is_a_configuration_error():
    with pytest.raises(ConfigError, match="simulator.density 'nope' is not one of"):
        load_config(env={}, overrides=["simulator.density=nope"])


def test_a_simulated_demo_day_meets_the_preset(tmp_path):
    summary = simulate(
        str(tmp_path), START, 1, 40_000, seed=9, config=SimulatorConfig(density="demo", chunk_size=40_000)
    )
    w = summary.world
    assert w.users == round(40_000 * 7 / 210)
    day = summary.days[0]
    assert day.ctr == pytest.approx(0.08, rel=0.15)
    assert day.cvr == pytest.approx(0.07, rel=0.25)
    imps = pd.read_json(
        next((tmp_path / "raw" / "impressions" / f"dt={START}").glob("*.jsonl.gz")), lines=True
    )
    # Users and items are drawn from the sized population and catalogue.
    assert imps.user_id.max() < w.users
    assert imps.user_id.nunique() > 0.5 * w.users
