"""Who sees what, when, and what they do: the candidate generator and the event outcomes.

Impressions are not random: the candidate generator mixes items from the user's favourite
categories (affinity), popular items and today's new items, so the logged data carries the
selection bias of a real ranking system.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from simulator.world import DEVICE_SHARE, DEVICES, STREAM_CALIBRATION, Items, World, rng_for

SECONDS_PER_DAY = 86_400
MS_PER_DAY = SECONDS_PER_DAY * 1000
# Impressions drawn to calibrate a world: enough that the solved offsets move the realised CTR
# and CVR by far less than a day's sampling noise.
CALIBRATION_IMPRESSIONS = 50_000


@dataclass
class Draw:
    users: np.ndarray
    item_rows: np.ndarray  # rows of the day's Items table
    position: np.ndarray
    device: np.ndarray  # index into DEVICES
    ts_ms: np.ndarray  # milliseconds since the start of the day
    hour: np.ndarray


@dataclass
class Outcome:
    p_click: np.ndarray
    p_conv: np.ndarray  # true post-click conversion probability
    click: np.ndarray  # bool
    conversion: np.ndarray  # bool, genuine (before any postback loss)
    reported: np.ndarray  # bool, conversion postback that reaches the logs
    click_ms: np.ndarray  # ms since the start of the impression's day (may exceed a day)
    conv_ms: np.ndarray
    value: np.ndarray


def draw_impressions(
    world: World,
    items: Items,
    day_index: int,
    n: int,
    rng: np.random.Generator,
    include_scenario: bool = True,
) -> Draw:
    cfg = world.cfg
    users = np.minimum(np.searchsorted(world.users.activity_cdf, rng.random(n)), cfg.users - 1)

    pop = np.exp(world.log_popularity(items, day_index))
    item_rows = _by_weight(pop, rng.random(n))

    # Affinity candidates: one of the user's favourite categories, then an item of it by popularity.
    order = np.argsort(items.category, kind="stable")
    cum = np.cumsum(pop[order])
    bounds = np.searchsorted(items.category[order], np.arange(cfg.categories + 1))
    fav = world.users.favourites[users, rng.integers(0, world.users.favourites.shape[1], n)]
    lo, hi = bounds[fav], bounds[fav + 1]
    has_items = hi > lo
    base = np.where(lo > 0, cum[np.maximum(lo - 1, 0)], 0.0)
    mass = np.where(has_items, cum[np.maximum(hi - 1, 0)] - base, 0.0)
    picked = np.searchsorted(cum, base + rng.random(n) * mass, side="right")
    picked = np.clip(picked, lo, np.maximum(hi - 1, lo))
    affinity = (rng.random(n) < cfg.affinity_share) & has_items
    item_rows = np.where(affinity, order[np.minimum(picked, len(order) - 1)], item_rows)

    # Today's new items get a slot share of their own (cold start traffic).
    new_rows = np.flatnonzero(items.born == day_index)
    share = world.scenario.new_item_share(cfg, day_index) if include_scenario else cfg.new_item_share
    if len(new_rows):
        is_new = rng.random(n) < share
        item_rows = np.where(is_new, new_rows[rng.integers(0, len(new_rows), n)], item_rows)

    position = np.minimum(rng.geometric(cfg.position_decay, n), 100)
    own = rng.random(n) < 0.8
    device = np.where(own, world.users.device[users], rng.choice(len(DEVICES), n, p=DEVICE_SHARE))
    hour = np.minimum(np.searchsorted(world.hour_cdf, rng.random(n)), 23)
    # At least one second into the day, so profile rows stamped at midnight precede every impression.
    ts_ms = hour * 3_600_000 + rng.integers(0, 3_600_000, n)
    ts_ms = np.maximum(ts_ms, 1_000)
    return Draw(users, item_rows, position, device, ts_ms, hour)


def _by_weight(weights: np.ndarray, u: np.ndarray) -> np.ndarray:
    cdf = np.cumsum(weights)
    return np.minimum(np.searchsorted(cdf, u * cdf[-1], side="right"), len(weights) - 1)


def calibrate(world: World) -> World:
    """``world`` with its global offsets solved so that it meets the target CTR and post-click CVR
    on traffic drawn like day 0's (without the scenario); returns the same object."""
    rng = rng_for(world.seed, STREAM_CALIBRATION)
    day_index = 0
    items = world.items_alive(day_index)
    draw = draw_impressions(world, items, day_index, CALIBRATION_IMPRESSIONS, rng, include_scenario=False)
    click, conv = world.logits(
        draw.users, items, draw.item_rows, draw.position, draw.device, draw.hour, day_index
    )
    world.set_offsets(click, conv)
    return world


def outcomes(world: World, items: Items, draw: Draw, day_index: int, rng: np.random.Generator) -> Outcome:
    cfg = world.cfg
    click_logit, conv_logit = world.logits(
        draw.users, items, draw.item_rows, draw.position, draw.device, draw.hour, day_index
    )
    p_click, p_conv = world.probabilities(click_logit, conv_logit)
    n = len(p_click)
    click = rng.random(n) < p_click
    conversion = click & (rng.random(n) < p_conv)
    reported = conversion & (rng.random(n) >= world.scenario.postback_loss(cfg, day_index))

    window_ms = cfg.click_window_minutes * 60_000
    click_delay = _truncated_exponential(rng, cfg.click_delay_minutes * 60_000, window_ms - 1_000, n)
    click_delay = np.maximum(click_delay, 1_000)
    attribution_ms = cfg.attribution_window_hours * 3_600_000
    conv_delay = _truncated_exponential(
        rng, cfg.conversion_delay_hours * 3_600_000, attribution_ms - click_delay - 1_000, n
    )
    conv_delay = np.maximum(conv_delay, 1_000)
    price = items.price_level[draw.item_rows]
    value = rng.lognormal(0.0, 0.6, n) * cfg.conversion_value_mean * (0.5 + price / 10)
    return Outcome(
        p_click=p_click,
        p_conv=p_conv,
        click=click,
        conversion=conversion,
        reported=reported,
        click_ms=draw.ts_ms + click_delay,
        conv_ms=draw.ts_ms + click_delay + conv_delay,
        value=np.round(value, 2),
    )


def _truncated_exponential(
    rng: np.random.Generator, mean: float, cap: np.ndarray | float, n: int
) -> np.ndarray:
    """Exponential delays conditioned on being below ``cap`` (inverse CDF, no rejection loop)."""
    cap = np.broadcast_to(np.asarray(cap, dtype=float), (n,))
    u = rng.random(n) * (1.0 - np.exp(-cap / mean))
    return np.floor(-mean * np.log1p(-u)).astype(np.int64)
