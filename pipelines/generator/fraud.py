"""Fraud patterns, written over legitimate rows of a chunk at a configured rate.

- Card testing: a stolen card number is tried with many tiny online payments across different merchants
  within minutes, from one attacker device.
- Account takeover: a real (active) card suddenly makes a few large online payments abroad, from a new
  device, within an hour or so.
- Compromised merchant: some physical merchants are breached (skimmers); cards that paid there see
  cash-out fraud hours to days later, elsewhere. The breached merchant is the common point of purchase.

The rate is exact up to rounding: each pattern has a budget of ``rate x share x rows`` per chunk, and what a
chunk cannot use (a compromised-merchant cash-out needs an exposure at least two hours old) carries over.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from pipelines.generator.columns import FRAUD_PATTERNS, TransactionColumns
from pipelines.generator.population import ATM, CARD_TESTING_MCCS, ECOM, HIGH_VALUE_MCCS, Population
from pipelines.generator.traffic import MAX_VALID_AMOUNT, describe_merchants

CARD_TESTING, ACCOUNT_TAKEOVER, COMPROMISED_MERCHANT = 1, 2, 3
MINUTE_MS = 60_000
CASH_OUT_MIN_DELAY_MS = 2 * 3_600_000
MAX_EXPOSURES = 2_000_000


@dataclass(frozen=True)
class FraudMix:
    """Shares of the fraud rate per pattern (normalised)."""

    card_testing: float = 0.4
    account_takeover: float = 0.4
    compromised_merchant: float = 0.2

    def shares(self) -> np.ndarray:
        raw = np.array([self.card_testing, self.account_takeover, self.compromised_merchant], dtype=np.float64)
        if (raw < 0).any() or raw.sum() <= 0:
            raise ValueError("fraud mix shares must be non-negative and not all zero")
        return raw / raw.sum()


def _merchants_with(population: Population, mccs: tuple[str, ...], channel: int) -> np.ndarray:
    mcc = population.category_mcc[population.merchant_category]
    chosen = np.flatnonzero(np.isin(mcc, mccs) & (population.merchant_channel == channel))
    if len(chosen) == 0:
        chosen = np.flatnonzero(population.merchant_channel == channel)
    return chosen if len(chosen) else np.arange(population.n_merchants)


def _attacker_device(rng: np.random.Generator) -> str:
    return f"dev-x{int(rng.integers(0, 2**40)):010x}"


class FraudInjector:
    """Stateful across a run's chunks (budgets carried over, exposures at breached merchants remembered)."""

    def __init__(self, population: Population, rate: float, mix: FraudMix) -> None:
        if not 0.0 <= rate <= 0.5:
            raise ValueError(f"fraud rate must be between 0 and 0.5, got {rate}")
        self.population = population
        self.rate = rate
        self.shares = mix.shares()
        self._carry = np.zeros(len(FRAUD_PATTERNS))
        self._exposure_times = np.empty(0, dtype=np.int64)
        self._exposure_cards = np.empty(0, dtype=np.int64)
        self._testing_merchants = _merchants_with(population, CARD_TESTING_MCCS, ECOM)
        self._high_value_merchants = _merchants_with(population, HIGH_VALUE_MCCS, ECOM)
        self._cash_out_merchants = np.flatnonzero(population.merchant_channel != 0)  # online shops and ATMs
        if len(self._cash_out_merchants) == 0:
            self._cash_out_merchants = np.arange(population.n_merchants)

    def inject(self, rng: np.random.Generator, chunk: TransactionColumns) -> TransactionColumns:
        """Overwrite some rows with fraud (arrays changed in place) and return the chunk in event-time order."""
        n = len(chunk)
        if n == 0:
            return chunk
        budgets = self._carry + n * self.rate * self.shares
        want = np.floor(budgets).astype(np.int64)
        free = rng.permutation(n)
        cursor = 0
        lo, hi = int(chunk.event_time.min()), int(chunk.event_time.max())
        used = np.zeros(len(FRAUD_PATTERNS), dtype=np.int64)

        while used[0] < want[0] and cursor < n:
            size = int(min(rng.integers(5, 31), want[0] - used[0], n - cursor))
            self._card_testing(rng, chunk, free[cursor : cursor + size], lo, hi)
            cursor += size
            used[0] += size
        while used[1] < want[1] and cursor < n:
            size = int(min(rng.integers(2, 9), want[1] - used[1], n - cursor))
            self._account_takeover(rng, chunk, free[cursor : cursor + size], lo, hi)
            cursor += size
            used[1] += size

        self._remember_exposures(chunk)
        size = int(min(want[2], n - cursor))
        used[2] = self._cash_out(rng, chunk, free[cursor : cursor + size])

        self._carry = budgets - used
        return chunk.take(np.argsort(chunk.event_time, kind="stable"))

    def _burst_times(self, rng: np.random.Generator, size: int, mean_gap_ms: float, lo: int, hi: int) -> np.ndarray:
        start = int(rng.integers(lo, hi + 1))
        return np.minimum(start + np.cumsum(rng.exponential(mean_gap_ms, size)).astype(np.int64), hi)

    def _write(
        self,
        chunk: TransactionColumns,
        rows: np.ndarray,
        pattern: int,
        cards: np.ndarray | int,
        merchants: np.ndarray,
        amounts: np.ndarray,
        devices: np.ndarray | str | None,
        times: np.ndarray | None = None,
    ) -> None:
        described = describe_merchants(self.population, merchants)
        chunk.card[rows] = cards
        chunk.merchant[rows] = merchants
        chunk.amount[rows] = amounts
        chunk.currency[rows] = described["currency"]
        chunk.mcc[rows] = described["mcc"]
        chunk.country[rows] = described["country"]
        chunk.channel[rows] = described["channel"]
        chunk.device_id[rows] = devices
        chunk.fraud[rows] = pattern
        if times is not None:
            chunk.event_time[rows] = times

    def _card_testing(
        self, rng: np.random.Generator, chunk: TransactionColumns, rows: np.ndarray, lo: int, hi: int
    ) -> None:
        size = len(rows)
        card = int(rng.integers(0, self.population.n_cards))  # testers work through lists of stolen numbers
        pool = self._testing_merchants
        merchants = rng.choice(pool, size=size, replace=len(pool) < size)
        amounts = np.round(rng.uniform(0.5, 5.0, size), 2)
        times = self._burst_times(rng, size, 20_000, lo, hi)
        self._write(chunk, rows, CARD_TESTING, card, merchants, amounts, _attacker_device(rng), times)

    def _account_takeover(
        self, rng: np.random.Generator, chunk: TransactionColumns, rows: np.ndarray, lo: int, hi: int
    ) -> None:
        size = len(rows)
        population = self.population
        card = int(population.draw_cards(rng, 1)[0])  # a real, active account
        pool = self._high_value_merchants
        abroad = pool[population.merchant_country[pool] != population.card_home[card]]
        pool = abroad if len(abroad) else pool
        merchants = rng.choice(pool, size=size)
        factor = population.country_factor[population.merchant_country[merchants]]
        amounts = np.clip(np.round(rng.lognormal(np.log(900.0), 0.6, size) * factor, 2), 50.0, MAX_VALID_AMOUNT)
        times = self._burst_times(rng, size, 8 * MINUTE_MS, lo, hi)
        self._write(chunk, rows, ACCOUNT_TAKEOVER, card, merchants, amounts, _attacker_device(rng), times)

    def _remember_exposures(self, chunk: TransactionColumns) -> None:
        exposed = (chunk.fraud == 0) & self.population.compromised[chunk.merchant]
        if not exposed.any():
            return
        order = np.argsort(chunk.event_time[exposed], kind="stable")
        times = np.concatenate((self._exposure_times, chunk.event_time[exposed][order]))
        cards = np.concatenate((self._exposure_cards, chunk.card[exposed][order]))
        self._exposure_times, self._exposure_cards = times[-MAX_EXPOSURES:], cards[-MAX_EXPOSURES:]

    def _cash_out(self, rng: np.random.Generator, chunk: TransactionColumns, rows: np.ndarray) -> int:
        if len(rows) == 0 or len(self._exposure_times) == 0:
            return 0
        times = chunk.event_time[rows]
        eligible = np.searchsorted(self._exposure_times, times - CASH_OUT_MIN_DELAY_MS, side="right")
        rows, eligible = rows[eligible > 0], eligible[eligible > 0]
        if len(rows) == 0:
            return 0
        cards = self._exposure_cards[(rng.random(len(rows)) * eligible).astype(np.int64)]
        merchants = rng.choice(self._cash_out_merchants, size=len(rows))
        population = self.population
        factor = population.country_factor[population.merchant_country[merchants]]
        local = rng.lognormal(np.log(300.0), 0.8, len(rows)) * factor
        atm = population.merchant_channel[merchants] == ATM
        amounts = np.clip(
            np.where(atm, np.maximum(20.0, np.round(local / 20) * 20), np.round(local, 2)), 1.0, MAX_VALID_AMOUNT
        )
        devices = np.array([_attacker_device(rng) if not is_atm else None for is_atm in atm], dtype=object)
        self._write(chunk, rows, COMPROMISED_MERCHANT, cards, merchants, amounts, devices)
        return len(rows)
