"""Users and items rows as a slowly changing dimension.

A day's file holds new or changed rows only; the first day of a ``simulate`` call also holds a
full snapshot, so any range starts with complete profiles. A user's city and an item's price
level flip once per ``profile_change_period_days`` on a per-row schedule: a pure function of
the date, so no day depends on the days simulated before it.
"""

from __future__ import annotations

import numpy as np

from simulator.world import Items, World


def _changed_today(offset: np.ndarray, day_index: int, period: int) -> np.ndarray:
    return (day_index + offset) % period == 0


def user_rows(world: World, day_index: int, snapshot: bool, ts: str) -> dict[str, list]:
    u, period = world.users, world.cfg.profile_change_period_days
    rows = (
        np.arange(len(u.gender))
        if snapshot
        else np.flatnonzero(_changed_today(u.change_offset, day_index, period))
    )
    city = u.city_on(day_index, period)[rows]
    return {
        "user_id": rows.tolist(),
        "ts": [ts] * len(rows),
        "gender": u.gender[rows].tolist(),
        "age_level": u.age_level[rows].tolist(),
        "city_level": city.tolist(),
        "occupation": u.occupation[rows].tolist(),
    }


def item_rows(world: World, items: Items, day_index: int, snapshot: bool, ts: str) -> dict[str, list]:
    period = world.cfg.profile_change_period_days
    if snapshot:
        rows = np.arange(len(items))
    else:
        rows = np.flatnonzero(
            (items.born == day_index) | _changed_today(items.change_offset, day_index, period)
        )
    return {
        "item_id": items.item_id[rows].tolist(),
        "ts": [ts] * len(rows),
        "category_id": items.category[rows].tolist(),
        "shop_id": items.shop[rows].tolist(),
        "brand_id": items.brand[rows].tolist(),
        "price_level": items.price_on(day_index, period)[rows].tolist(),
    }
