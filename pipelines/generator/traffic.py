"""Legitimate card traffic for one chunk of events, vectorised.

Each payment: a card drawn by activity; mostly a merchant in the card's home country (weighted by the
merchant's popularity), sometimes (travel, cross-border online shopping) a merchant anywhere; an amount from
the merchant category's log-normal scaled by the card holder's spending level and the local currency;
online payments carry the card holder's usual device.
"""

from __future__ import annotations

import numpy as np

from pipelines.generator.columns import NOT_BAD, NOT_FRAUD, TransactionColumns
from pipelines.generator.population import ATM, ECOM, Population

MAX_VALID_AMOUNT = 50_000.0
MIN_VALID_AMOUNT = 0.01
CROSS_BORDER_SHARE = 0.03


def event_ids(rng: np.random.Generator, n: int) -> np.ndarray:
    """n random 32-hex-digit ids (128 bits, so unique in practice), deterministic for the generator's state."""
    digits = rng.bytes(16 * n).hex()
    return np.array([digits[i : i + 32] for i in range(0, 32 * n, 32)], dtype=object)


def local_amounts(
    rng: np.random.Generator, population: Population, merchants: np.ndarray, scale: np.ndarray
) -> np.ndarray:
    """Amounts in each merchant's currency: category log-normal x card scale x exchange factor, valid and rounded.

    ATM withdrawals come in multiples of 20 (local units); everything else in cents.
    """
    category = population.merchant_category[merchants]
    log_amount = population.category_log_median[category]
    usd = np.exp(log_amount + population.category_sigma[category] * rng.standard_normal(len(merchants))) * scale
    local = usd * population.country_factor[population.merchant_country[merchants]]
    atm = population.merchant_channel[merchants] == ATM
    rounded = np.where(atm, np.maximum(20.0, np.round(local / 20.0) * 20.0), np.round(local, 2))
    return np.clip(rounded, MIN_VALID_AMOUNT, MAX_VALID_AMOUNT)


def describe_merchants(population: Population, merchants: np.ndarray) -> dict[str, np.ndarray]:
    """The merchant-derived columns of payments at ``merchants``."""
    country = population.merchant_country[merchants]
    return {
        "currency": population.country_currency[country],
        "mcc": population.category_mcc[population.merchant_category[merchants]],
        "country": population.country_codes[country],
        "channel": population.merchant_channel[merchants],
    }


def legitimate_chunk(rng: np.random.Generator, population: Population, times: np.ndarray) -> TransactionColumns:
    """Legitimate payments at the given (sorted) event times."""
    n = len(times)
    cards = population.draw_cards(rng, n)
    domestic = population.draw_domestic_merchants(rng, population.card_home[cards])
    anywhere = population.draw_merchants(rng, n)
    merchants = np.where(rng.random(n) < CROSS_BORDER_SHARE, anywhere, domestic)
    described = describe_merchants(population, merchants)
    online = described["channel"] == ECOM
    devices = np.full(n, None, dtype=object)
    devices[online] = population.card_devices[cards[online]]
    return TransactionColumns(
        event_id=event_ids(rng, n),
        card=cards,
        merchant=merchants,
        amount=local_amounts(rng, population, merchants, population.card_scale[cards]),
        currency=described["currency"],
        mcc=described["mcc"],
        country=described["country"],
        channel=described["channel"],
        event_time=times.astype(np.int64),
        device_id=devices,
        fraud=np.full(n, NOT_FRAUD, dtype=np.int8),
        out_of_order=np.zeros(n, dtype=bool),
        late=np.zeros(n, dtype=bool),
        bad_kind=np.full(n, NOT_BAD, dtype=np.int8),
    )
