"""A world sized to its traffic: population, catalogue and rates from a density preset.

A world of 50,000 users seen by 60,000 impressions a day shows each user about once a day, far
sparser than any data set a joint CTR/CVR model is studied on, so a week of it teaches a model
little. Here the population and catalogue follow from the traffic instead: over
``density_days`` days, a user is seen ``impressions_per_user`` times and an item
``impressions_per_item`` times, as in the preset's data set, at any volume. Explicit sizes and
rates in the configuration win over the preset.
"""

from __future__ import annotations

from taml.core.config import SimulatorConfig


def size_world(config: SimulatorConfig, impressions_per_day: int) -> SimulatorConfig:
    """``config`` with every size and rate left null filled in from its density preset."""
    preset = config.density_presets[config.density]
    traffic = impressions_per_day * config.density_days
    users = config.users or max(1, round(traffic / preset.impressions_per_user))
    base_items = config.base_items or max(1, round(traffic / preset.impressions_per_item))
    new_items = config.new_items_per_day
    if new_items is None:
        new_items = round(config.new_items_rate * base_items)
    return config.model_copy(
        update={
            "users": users,
            "base_items": base_items,
            "new_items_per_day": new_items,
            "shops": config.shops or max(1, round(base_items / config.items_per_shop)),
            "brands": config.brands or max(1, round(base_items / config.items_per_brand)),
            "target_ctr": config.target_ctr or preset.click_rate,
            "target_cvr": config.target_cvr or preset.conversion_rate,
        }
    )
