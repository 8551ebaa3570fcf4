"""Who transacts where: cards and merchants with heavy-tailed activity, home countries and spending profiles.

The reference data below is the domain's: merchant categories (ISO 18245 MCCs) with a typical amount in
US dollars, how often they are paid online, and how common they are; and the countries the simulated
issuers and merchants are in, with their currency and a rough US-dollar exchange factor. Currencies worth
far less than a dollar (JPY, KRW, INR, ...) are left out on purpose: the transactions suite caps amounts at
50,000 whatever the currency, and a hotel night in won would break that cap.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

CHANNELS = ("POS", "ECOM", "ATM")
POS, ECOM, ATM = 0, 1, 2


@dataclass(frozen=True)
class Category:
    mcc: str
    name: str
    median_usd: float
    sigma: float
    ecom_share: float
    weight: float


CATEGORIES: tuple[Category, ...] = (
    Category("5411", "grocery stores", 45, 0.7, 0.05, 18),
    Category("5812", "restaurants", 38, 0.6, 0.02, 12),
    Category("5814", "fast food", 12, 0.5, 0.05, 10),
    Category("5541", "fuel", 48, 0.4, 0.0, 8),
    Category("5912", "pharmacies", 22, 0.7, 0.1, 5),
    Category("5311", "department stores", 70, 0.9, 0.3, 5),
    Category("5732", "electronics", 180, 1.0, 0.6, 3),
    Category("5944", "jewelry", 350, 1.0, 0.3, 1),
    Category("4111", "transit", 4, 0.6, 0.3, 6),
    Category("4121", "taxis and rideshare", 22, 0.5, 0.8, 5),
    Category("4511", "airlines", 420, 0.7, 0.9, 1.5),
    Category("7011", "hotels", 260, 0.7, 0.6, 2),
    Category("5999", "miscellaneous retail", 35, 0.9, 0.4, 6),
    Category("5968", "subscriptions", 14, 0.5, 1.0, 4),
    Category("5816", "digital goods", 9, 0.8, 1.0, 3),
    Category("7995", "gambling", 50, 1.0, 0.8, 0.5),
    Category("6011", "cash withdrawal (ATM)", 100, 0.6, 0.0, 4),
)
ATM_MCC = "6011"
CARD_TESTING_MCCS = ("5816", "5968", "5999")
HIGH_VALUE_MCCS = ("5732", "5944", "4511", "5311", "7011")


@dataclass(frozen=True)
class Country:
    code: str
    currency: str
    usd_factor: float
    weight: float


COUNTRIES: tuple[Country, ...] = (
    Country("US", "USD", 1.0, 30),
    Country("GB", "GBP", 0.8, 8),
    Country("DE", "EUR", 0.92, 8),
    Country("FR", "EUR", 0.92, 6),
    Country("ES", "EUR", 0.92, 4),
    Country("IT", "EUR", 0.92, 4),
    Country("NL", "EUR", 0.92, 3),
    Country("BE", "EUR", 0.92, 1.5),
    Country("IE", "EUR", 0.92, 1),
    Country("PT", "EUR", 0.92, 1),
    Country("AT", "EUR", 0.92, 1),
    Country("SE", "SEK", 10.5, 1.5),
    Country("NO", "NOK", 10.6, 1),
    Country("DK", "DKK", 6.9, 1),
    Country("PL", "PLN", 4.0, 2),
    Country("CH", "CHF", 0.88, 1.5),
    Country("CA", "CAD", 1.36, 4),
    Country("MX", "MXN", 17.0, 2),
    Country("BR", "BRL", 5.0, 3),
    Country("AU", "AUD", 1.5, 2),
    Country("NZ", "NZD", 1.6, 0.5),
    Country("SG", "SGD", 1.35, 1),
    Country("HK", "HKD", 7.8, 1),
    Country("AE", "AED", 3.67, 1),
    Country("ZA", "ZAR", 18.5, 1),
    Country("CN", "CNY", 7.2, 2),
)


def _normalised_cumsum(weights: np.ndarray) -> np.ndarray:
    cumulative = np.cumsum(weights, dtype=np.float64)
    return cumulative / cumulative[-1]


@dataclass(frozen=True)
class Population:
    """Cards and merchants as parallel arrays (index = id number); built once per run from the seed."""

    card_ids: np.ndarray  # object: "card-0000042"
    card_home: np.ndarray  # int16 country index
    card_scale: np.ndarray  # float64 spending multiplier (lognormal)
    card_activity_cdf: np.ndarray  # float64, for activity-weighted draws
    card_devices: np.ndarray  # object: the card holder's usual device
    merchant_ids: np.ndarray  # object: "mrc-000042"
    merchant_category: np.ndarray  # int16 index into CATEGORIES
    merchant_country: np.ndarray  # int16 index into COUNTRIES
    merchant_channel: np.ndarray  # int8 POS/ECOM/ATM
    merchant_popularity_cdf: np.ndarray  # float64, for popularity-weighted draws
    merchants_by_country: np.ndarray  # merchant indices sorted by country
    country_cdf_start: np.ndarray  # per country: cumulative popularity before its group (in sorted order)
    country_cdf_total: np.ndarray  # per country: its group's popularity
    sorted_popularity_cdf: np.ndarray  # cumulative popularity in merchants_by_country order
    compromised: np.ndarray  # bool per merchant: breached, its cards see fraud later

    # per-category and per-country lookups as arrays, for vectorised indexing
    category_mcc: np.ndarray
    category_log_median: np.ndarray
    category_sigma: np.ndarray
    country_codes: np.ndarray
    country_currency: np.ndarray
    country_factor: np.ndarray

    @property
    def n_cards(self) -> int:
        return len(self.card_ids)

    @property
    def n_merchants(self) -> int:
        return len(self.merchant_ids)

    def draw_cards(self, rng: np.random.Generator, n: int) -> np.ndarray:
        """Cards weighted by activity: a few cards make many payments, most make few."""
        return np.searchsorted(self.card_activity_cdf, rng.random(n), side="right").clip(0, self.n_cards - 1)

    def draw_merchants(self, rng: np.random.Generator, n: int) -> np.ndarray:
        """Merchants anywhere, weighted by popularity."""
        return np.searchsorted(self.merchant_popularity_cdf, rng.random(n), side="right").clip(0, self.n_merchants - 1)

    def draw_domestic_merchants(self, rng: np.random.Generator, countries: np.ndarray) -> np.ndarray:
        """For each country index, a merchant in that country, weighted by popularity within the country."""
        target = self.country_cdf_start[countries] + rng.random(len(countries)) * self.country_cdf_total[countries]
        position = np.searchsorted(self.sorted_popularity_cdf, target, side="right")
        return self.merchants_by_country[position.clip(0, self.n_merchants - 1)]


def build_population(rng: np.random.Generator, n_cards: int, n_merchants: int, compromised_share: float) -> Population:
    n_countries = len(COUNTRIES)
    if n_merchants < n_countries:
        raise ValueError(f"need at least {n_countries} merchants (one per simulated country), got {n_merchants}")
    country_weights = np.array([c.weight for c in COUNTRIES])
    country_p = country_weights / country_weights.sum()
    category_weights = np.array([c.weight for c in CATEGORIES])

    card_home = rng.choice(n_countries, size=n_cards, p=country_p).astype(np.int16)
    card_scale = rng.lognormal(0.0, 0.45, n_cards)
    card_activity = rng.lognormal(0.0, 1.2, n_cards)  # heavy tail: the top 1% of cards pay ~10x the median

    # Every country gets merchants of its own, so domestic spending always has somewhere to go.
    merchant_country = np.concatenate(
        (np.arange(n_countries), rng.choice(n_countries, size=n_merchants - n_countries, p=country_p))
    ).astype(np.int16)
    merchant_category = rng.choice(len(CATEGORIES), size=n_merchants, p=category_weights / category_weights.sum())
    ecom_share = np.array([c.ecom_share for c in CATEGORIES])[merchant_category]
    is_atm = np.array([c.mcc == ATM_MCC for c in CATEGORIES])[merchant_category]
    merchant_channel = np.where(is_atm, ATM, np.where(rng.random(n_merchants) < ecom_share, ECOM, POS)).astype(np.int8)
    popularity = rng.pareto(1.16, n_merchants) + 1.0  # the 80/20 rule: a few merchants take most payments

    by_country = np.argsort(merchant_country, kind="stable")
    sorted_cdf = np.cumsum(popularity[by_country])
    sorted_countries = merchant_country[by_country]
    group_start = np.searchsorted(sorted_countries, np.arange(n_countries), side="left")
    before = np.concatenate(([0.0], sorted_cdf))[group_start]
    totals = np.bincount(merchant_country, weights=popularity, minlength=n_countries)
    total = sorted_cdf[-1]

    n_compromised = max(1, round(n_merchants * compromised_share))
    compromised = np.zeros(n_merchants, dtype=bool)
    physical = np.flatnonzero(merchant_channel == POS)
    pool = physical if len(physical) >= n_compromised else np.arange(n_merchants)
    weights = popularity[pool] / popularity[pool].sum()
    compromised[rng.choice(pool, size=n_compromised, replace=False, p=weights)] = True

    return Population(
        card_ids=np.array([f"card-{i:07d}" for i in range(n_cards)], dtype=object),
        card_home=card_home,
        card_scale=card_scale,
        card_activity_cdf=_normalised_cumsum(card_activity),
        card_devices=np.array([f"dev-{i:07d}" for i in range(n_cards)], dtype=object),
        merchant_ids=np.array([f"mrc-{i:06d}" for i in range(n_merchants)], dtype=object),
        merchant_category=merchant_category.astype(np.int16),
        merchant_country=merchant_country,
        merchant_channel=merchant_channel,
        merchant_popularity_cdf=_normalised_cumsum(popularity),
        merchants_by_country=by_country,
        country_cdf_start=before / total,
        country_cdf_total=totals / total,
        sorted_popularity_cdf=sorted_cdf / total,
        compromised=compromised,
        category_mcc=np.array([c.mcc for c in CATEGORIES], dtype=object),
        category_log_median=np.log([c.median_usd for c in CATEGORIES]),
        category_sigma=np.array([c.sigma for c in CATEGORIES]),
        country_codes=np.array([c.code for c in COUNTRIES], dtype=object),
        country_currency=np.array([c.currency for c in COUNTRIES], dtype=object),
        country_factor=np.array([c.usd_factor for c in COUNTRIES]),
    )
