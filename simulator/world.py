"""The simulated ad platform's population: users, the item catalogue, and how both change by day.

Everything is a pure function of (seed, configuration, scenario, date): day D looks the same
whichever call or range produced it. Items born on day b come from a generator seeded by b, so
the catalogue of any day is rebuilt from the ``item_lifetime_days`` blocks that are alive then.
"""

from __future__ import annotations

import datetime as dt
import math
from dataclasses import dataclass
from functools import cached_property

import numpy as np

from simulator.scenarios import Scenario
from taml.core.config import SimulatorConfig

# Stream ids keep the generators of different purposes independent for one seed.
STREAM_USERS = 1
STREAM_CATEGORIES = 2
STREAM_BASE_ITEMS = 3
STREAM_ITEM_BLOCK = 4
STREAM_CALIBRATION = 5  # simulator.impressions.calibrate
STREAM_CHUNK = 6
STREAM_PROFILE = 7
STREAM_CORRUPT = 8

DEVICES = np.array(["ios", "android", "web"])
DEVICE_SHARE = np.array([0.45, 0.40, 0.15])
# Effects on the click and on the post-click conversion logits, per device.
DEVICE_CLICK = np.array([0.10, 0.0, -0.25])
DEVICE_CONV = np.array([0.20, 0.0, -0.15])
# Traffic by hour of day (UTC): quiet nights, an evening peak.
HOURLY_TRAFFIC = np.array(
    [2, 1, 1, 1, 1, 2, 3, 4, 5, 5, 5, 5, 6, 5, 5, 5, 5, 6, 7, 8, 9, 9, 6, 4], dtype=float
)


def rng_for(seed: int, stream: int, *keys: int) -> np.random.Generator:
    return np.random.default_rng([seed, stream, *keys])


@dataclass(frozen=True)
class Users:
    activity_cdf: np.ndarray  # cumulative sampling weights (power law)
    gender: np.ndarray
    age_level: np.ndarray
    city_level: np.ndarray
    city_alt: np.ndarray  # the city a user moves to every other change period
    occupation: np.ndarray
    change_offset: np.ndarray  # day offset of the user's profile change cycle
    device: np.ndarray  # index into DEVICES of the user's usual device
    shared: np.ndarray  # [U, latent_shared]
    ctr: np.ndarray  # [U, latent_ctr]
    cvr: np.ndarray  # [U, latent_cvr]
    bias_click: np.ndarray
    bias_conv: np.ndarray
    favourites: np.ndarray  # [U, favourite_categories] category ids

    def city_on(self, day_index: int, period: int) -> np.ndarray:
        flipped = ((day_index + self.change_offset) // period) % 2 == 1
        return np.where(flipped, self.city_alt, self.city_level)


@dataclass(frozen=True)
class Items:
    """The catalogue alive on one day, as parallel arrays."""

    item_id: np.ndarray
    born: np.ndarray  # day index of birth; -1 for the base catalogue
    category: np.ndarray
    shop: np.ndarray
    brand: np.ndarray
    price_level: np.ndarray
    price_alt: np.ndarray
    change_offset: np.ndarray
    shared: np.ndarray
    ctr: np.ndarray
    cvr: np.ndarray
    bias_click: np.ndarray
    bias_conv: np.ndarray
    popularity: np.ndarray  # base log popularity
    drift_period: np.ndarray
    drift_phase: np.ndarray

    def __len__(self) -> int:
        return len(self.item_id)

    def price_on(self, day_index: int, period: int) -> np.ndarray:
        flipped = ((day_index + self.change_offset) // period) % 2 == 1
        return np.where(flipped, self.price_alt, self.price_level)

    @staticmethod
    def concat(parts: list[Items]) -> Items:
        fields = Items.__dataclass_fields__
        return Items(**{f: np.concatenate([getattr(p, f) for p in parts]) for f in fields})


class World:
    """Users, categories and items for one (seed, config, scenario)."""

    def __init__(self, config: SimulatorConfig, seed: int, scenario: Scenario):
        self.cfg = config
        self.seed = seed
        self.scenario = scenario
        self._categories()
        self.users = self._make_users()
        self.base_items = self._make_items(
            rng_for(seed, STREAM_BASE_ITEMS), config.base_items, first_id=0, born=-1
        )
        self.block_size = math.ceil(config.new_items_per_day * scenario.max_new_item_multiplier(config))
        # Offsets 0 until ``simulator.impressions.calibrate`` solves them on drawn traffic (the
        # draw lives there, and it needs a world: so the world does not calibrate itself).
        self.bias_click, self.bias_conv = 0.0, 0.0

    # --- time -------------------------------------------------------------------------------

    def day_index(self, day: dt.date) -> int:
        return (day - self.cfg.epoch).days

    # --- population -------------------------------------------------------------------------

    def _categories(self) -> None:
        cfg, rng = self.cfg, rng_for(self.seed, STREAM_CATEGORIES)
        # Items cluster by category, so a category id alone carries part of an item's appeal.
        self.cat_shared = rng.normal(0, 0.5, (cfg.categories, cfg.latent_shared))
        self.cat_ctr = rng.normal(0, 0.5, (cfg.categories, cfg.latent_ctr))
        self.cat_cvr = rng.normal(0, 0.5, (cfg.categories, cfg.latent_cvr))
        weights = 1.0 / np.arange(1, cfg.categories + 1) ** 0.8
        self.category_p = weights / weights.sum()
        self.category_price = rng.integers(2, 9, cfg.categories)
        # Profile attributes shift the user's shared taste: demographics are informative.
        self.age_taste = rng.normal(0, 0.35, (7, cfg.latent_shared))
        self.gender_taste = rng.normal(0, 0.35, (3, cfg.latent_shared))
        self.age_conv = rng.normal(0, 0.25, 7)

    def _make_users(self) -> Users:
        cfg, rng = self.cfg, rng_for(self.seed, STREAM_USERS)
        n = cfg.users
        activity = rng.pareto(cfg.user_activity_alpha, n) + 1.0
        gender = rng.integers(1, 3, n)
        age = rng.integers(1, 7, n)
        shared = self.age_taste[age] + self.gender_taste[gender] + rng.normal(0, 0.45, (n, cfg.latent_shared))
        affinity = shared @ self.cat_shared.T + rng.gumbel(0, 0.5, (n, cfg.categories))
        k = min(cfg.favourite_categories, cfg.categories)
        favourites = np.argpartition(-affinity, k - 1, axis=1)[:, :k]
        return Users(
            activity_cdf=np.cumsum(activity / activity.sum()),
            gender=gender,
            age_level=age,
            city_level=rng.integers(1, 5, n),
            city_alt=rng.integers(1, 5, n),
            occupation=rng.integers(0, cfg.occupations, n),
            change_offset=rng.integers(0, cfg.profile_change_period_days, n),
            device=rng.choice(len(DEVICES), n, p=DEVICE_SHARE),
            shared=shared,
            ctr=rng.normal(0, 0.45, (n, cfg.latent_ctr)),
            cvr=rng.normal(0, 0.45, (n, cfg.latent_cvr)),
            bias_click=rng.normal(0, 0.3, n),
            bias_conv=rng.normal(0, 0.3, n) + self.age_conv[age],
            favourites=favourites,
        )

    def _make_items(self, rng: np.random.Generator, n: int, first_id: int, born: int) -> Items:
        cfg = self.cfg
        category = rng.choice(cfg.categories, n, p=self.category_p)
        shop = rng.integers(0, cfg.shops, n)
        # Brands follow shops loosely: most of a shop's items share a few brands.
        brand = np.where(rng.random(n) < 0.7, (shop * 7919) % cfg.brands, rng.integers(0, cfg.brands, n))
        price = np.clip(self.category_price[category] + rng.integers(-2, 3, n), 1, 10)
        # Click-bait: appeal that earns clicks and costs conversions (the tasks disagree here).
        bait = np.maximum(rng.normal(0, 1, n), 0)
        return Items(
            item_id=np.arange(first_id, first_id + n, dtype=np.int64),
            born=np.full(n, born, dtype=np.int64),
            category=category,
            shop=shop,
            brand=brand,
            price_level=price,
            price_alt=np.clip(price + rng.choice([-1, 1], n), 1, 10),
            change_offset=rng.integers(0, cfg.profile_change_period_days, n),
            shared=self.cat_shared[category] + rng.normal(0, 0.45, (n, cfg.latent_shared)),
            ctr=self.cat_ctr[category] + rng.normal(0, 0.5, (n, cfg.latent_ctr)),
            cvr=self.cat_cvr[category] + rng.normal(0, 0.5, (n, cfg.latent_cvr)),
            bias_click=rng.normal(0, 0.4, n) + 0.6 * bait,
            bias_conv=rng.normal(0, 0.4, n) - cfg.clickbait_weight * bait - 0.08 * (price - 5),
            popularity=np.log(rng.pareto(cfg.item_popularity_alpha, n) + 1.0),
            drift_period=rng.uniform(7, 60, n),
            drift_phase=rng.uniform(0, 2 * np.pi, n),
        )

    def items_born(self, day_index: int) -> Items:
        """The block of items born on ``day_index`` (seeded by that day alone)."""
        n = round(self.cfg.new_items_per_day * self.scenario.new_item_multiplier(self.cfg, day_index))
        first_id = self.cfg.base_items + day_index * self.block_size
        return self._make_items(rng_for(self.seed, STREAM_ITEM_BLOCK, day_index), n, first_id, day_index)

    def items_alive(self, day_index: int) -> Items:
        if day_index < 0:
            raise ValueError(f"day before the simulator epoch {self.cfg.epoch}")
        first = max(0, day_index - self.cfg.item_lifetime_days + 1)
        blocks = [self.items_born(b) for b in range(first, day_index + 1)]
        return Items.concat([self.base_items, *blocks])

    def log_popularity(self, items: Items, day_index: int) -> np.ndarray:
        drift = self.cfg.popularity_drift * np.sin(
            2 * np.pi * day_index / items.drift_period + items.drift_phase
        )
        age = np.where(items.born >= 0, day_index - items.born, 10_000)
        freshness = 1.5 * np.exp(-age / 3.0)
        return items.popularity + drift + freshness

    # --- behaviour --------------------------------------------------------------------------

    def logits(
        self,
        users: np.ndarray,
        items: Items,
        item_rows: np.ndarray,
        position: np.ndarray,
        device: np.ndarray,
        hour: np.ndarray,
        day_index: int,
    ) -> tuple[np.ndarray, np.ndarray]:
        """Click logit and post-click conversion logit, before the calibration offsets."""
        u, cfg = self.users, self.cfg
        shared = cfg.taste_weight * np.einsum("ij,ij->i", u.shared[users], items.shared[item_rows])
        click = (
            shared
            + np.einsum("ij,ij->i", u.ctr[users], items.ctr[item_rows])
            + u.bias_click[users]
            + items.bias_click[item_rows]
            - cfg.position_bias * np.log(position)
            + DEVICE_CLICK[device]
            + 0.15 * np.sin(2 * np.pi * (hour - 15) / 24)
            + self.scenario.click_shift(self.cfg, day_index)
        )
        conv = (
            0.8 * shared
            + np.einsum("ij,ij->i", u.cvr[users], items.cvr[item_rows])
            + u.bias_conv[users]
            + items.bias_conv[item_rows]
            + DEVICE_CONV[device]
        )
        return click, conv

    def set_offsets(self, click: np.ndarray, conv: np.ndarray) -> None:
        """Solve the two global offsets so that these logits (of a sample of traffic, drawn by
        ``simulator.impressions.calibrate``) meet the target CTR and post-click CVR."""
        self.bias_click = _solve_offset(click, self.cfg.target_ctr)
        p_click = _sigmoid(click + self.bias_click)
        self.bias_conv = _solve_offset(conv, self.cfg.target_cvr, weights=p_click)

    def probabilities(self, click_logit: np.ndarray, conv_logit: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        return _sigmoid(click_logit + self.bias_click), _sigmoid(conv_logit + self.bias_conv)

    @cached_property
    def hour_cdf(self) -> np.ndarray:
        return np.cumsum(HOURLY_TRAFFIC / HOURLY_TRAFFIC.sum())


def _sigmoid(x: np.ndarray) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-x))


def _solve_offset(logits: np.ndarray, target: float, weights: np.ndarray | None = None) -> float:
    """The b with weighted-mean sigmoid(logits + b) = target (bisection: the mean is monotone in b)."""
    lo, hi = -30.0, 30.0
    for _ in range(60):
        mid = (lo + hi) / 2
        mean = float(np.average(_sigmoid(logits + mid), weights=weights))
        lo, hi = (mid, hi) if mean < target else (lo, mid)
    return (lo + hi) / 2
