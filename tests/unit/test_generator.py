"""The traffic generator: determinism, event time, realism, fraud patterns, labels (no Kafka)."""

from __future__ import annotations

import numpy as np
import pytest

from pipelines.generator import (
    FRAUD_PATTERNS,
    GeneratorOptions,
    GeneratorOptionsError,
    LabelColumns,
    TransactionColumns,
    TransactionGenerator,
    parse_duration,
    parse_start_time,
    plan_event_times,
)
from pipelines.generator.fraud import CASH_OUT_MIN_DELAY_MS
from pipelines.generator.population import COUNTRIES
from pipelines.generator.timing import DAY_MS, HOUR_MS, SpanPlan, TimeArgumentError, WallClockPlan
from pipelines.schemas.reference import countries, currencies
from pipelines.schemas.store import load_store

NOW = 1_780_000_000_000  # 2026-05-28T20:26:40Z


def _run(**overrides: object) -> tuple[TransactionGenerator, TransactionColumns, LabelColumns]:
    options = GeneratorOptions(**{"count": 60_000, "now_ms": NOW, "seed": 11, "duration_ms": 3 * DAY_MS, **overrides})  # type: ignore[arg-type]
    generator = TransactionGenerator(options)
    chunks = list(generator.chunks())
    transactions = [c.transactions for c in chunks]
    merged = TransactionColumns(
        **{
            name: np.concatenate([getattr(t, name) for t in transactions])
            for name in TransactionColumns.__dataclass_fields__
        }
    )
    return generator, merged, LabelColumns.concat([c.labels for c in chunks])


@pytest.fixture(scope="module")
def run() -> tuple[TransactionGenerator, TransactionColumns, LabelColumns]:
    return _run()


def test_same_seed_same_traffic_different_seed_different() -> None:
    _, first, first_labels = _run(count=5_000)
    _, again, again_labels = _run(count=5_000)
    _, other, _ = _run(count=5_000, seed=12)
    for name in TransactionColumns.__dataclass_fields__:
        assert np.array_equal(getattr(first, name), getattr(again, name)), name
    assert np.array_equal(first_labels.event_id, again_labels.event_id)
    assert np.array_equal(first_labels.label_time, again_labels.label_time)
    assert not np.array_equal(first.event_id, other.event_id)


def test_a_population_seed_keeps_the_cards_and_draws_new_traffic() -> None:
    """Live traffic after a history: the same cards and merchants (the history's seed), new transactions."""
    history, history_tx, _ = _run(count=5_000)
    live, live_tx, _ = _run(count=5_000, seed=12, population_seed=11)
    for name in ("card_home", "card_scale", "compromised"):
        assert np.array_equal(getattr(history.population, name), getattr(live.population, name)), name
    assert not set(history_tx.event_id) & set(live_tx.event_id)
    other, _, _ = _run(count=10, seed=12)
    assert not np.array_equal(other.population.card_home, history.population.card_home)


def test_count_and_unique_event_ids(run: tuple) -> None:
    _, tx, _ = run
    assert len(tx) == 60_000
    assert len(set(tx.event_id.tolist())) == len(tx)


def test_events_fill_the_span_in_event_time_order(run: tuple) -> None:
    _, tx, _ = run
    assert (np.diff(tx.event_time) >= 0).all()
    assert tx.event_time.min() >= NOW - 3 * DAY_MS and tx.event_time.max() <= NOW
    assert tx.event_time.max() - tx.event_time.min() > 2.9 * DAY_MS


def test_daily_cycle(run: tuple) -> None:
    _, tx, _ = run
    by_hour = np.bincount((tx.event_time // HOUR_MS) % 24, minlength=24)
    assert by_hour[12:20].mean() > 5 * by_hour[2:5].mean()


def test_heavy_tailed_activity(run: tuple) -> None:
    _, tx, _ = run
    per_card = np.bincount(tx.card)
    per_card = per_card[per_card > 0]
    per_merchant = np.bincount(tx.merchant)
    assert np.quantile(per_card, 0.99) > 5 * np.median(per_card)
    top_merchants = np.sort(per_merchant)[::-1][: len(per_merchant) // 10]
    assert top_merchants.sum() > 0.4 * per_merchant.sum()  # the top 10% of merchants take a large share


def test_cards_mostly_spend_at_home(run: tuple) -> None:
    generator, tx, _ = run
    legit = tx.fraud == 0
    home = generator.population.country_codes[generator.population.card_home[tx.card[legit]]]
    assert (home == tx.country[legit]).mean() > 0.95


def test_valid_records_satisfy_the_expectation_rules(run: tuple) -> None:
    generator, tx, _ = run
    assert ((tx.amount > 0) & (tx.amount <= 50_000)).all()
    assert set(tx.currency.tolist()) <= currencies()
    assert set(tx.country.tolist()) <= countries()
    assert (tx.event_time <= NOW + DAY_MS).all()
    assert {c.currency for c in COUNTRIES} <= currencies() and {c.code for c in COUNTRIES} <= countries()
    records = tx.take(np.arange(100)).records(generator.population)
    assert list(records[0]) == [f["name"] for f in load_store().latest("transactions").definition["fields"]]
    assert all(r["channel"] in ("POS", "ECOM", "ATM") for r in records)
    assert all((r["device_id"] is not None) == (r["channel"] == "ECOM") for r in records)


def test_fraud_at_the_configured_rate_with_every_pattern(run: tuple) -> None:
    _, tx, _ = run
    rate = (tx.fraud > 0).mean()
    assert rate == pytest.approx(0.01, rel=0.05)
    per_pattern = np.bincount(tx.fraud, minlength=4)[1:] / len(tx)
    expected = [0.004, 0.004, 0.002]  # 1% split 40/40/20
    assert per_pattern == pytest.approx(expected, rel=0.1), dict(zip(FRAUD_PATTERNS, per_pattern, strict=True))


@pytest.mark.parametrize("fraud_rate", [0.002, 0.05])
def test_fraud_rate_is_configurable(fraud_rate: float) -> None:
    _, tx, _ = _run(count=40_000, fraud_rate=fraud_rate)
    assert (tx.fraud > 0).mean() == pytest.approx(fraud_rate, rel=0.1)


def test_card_testing_is_bursts_of_tiny_payments_across_merchants(run: tuple) -> None:
    _, tx, _ = run
    testing = tx.fraud == 1
    assert (tx.amount[testing] <= 5.0).all()
    assert (tx.channel[testing] == 1).all()
    for card in np.unique(tx.card[testing])[:20]:
        burst = testing & (tx.card == card)
        if burst.sum() < 5:
            continue  # the last burst of a chunk may be cut short by the budget
        assert len(np.unique(tx.merchant[burst])) >= 0.7 * burst.sum()
        times = np.sort(tx.event_time[burst])
        assert np.median(np.diff(times)) < 5 * 60_000


def test_account_takeover_is_large_foreign_online_spending(run: tuple) -> None:
    generator, tx, _ = run
    takeover = tx.fraud == 2
    home = generator.population.country_codes[generator.population.card_home[tx.card[takeover]]]
    assert (tx.country[takeover] != home).mean() > 0.9
    assert (tx.channel[takeover] == 1).all()
    assert np.median(tx.amount[takeover]) > 5 * np.median(tx.amount[tx.fraud == 0])
    devices = set(tx.device_id[takeover].tolist())
    assert not devices & set(generator.population.card_devices.tolist())  # a device the card never used


def test_compromised_merchant_cards_see_fraud_later(run: tuple) -> None:
    generator, tx, _ = run
    compromised = generator.population.compromised
    cash_out = np.flatnonzero(tx.fraud == 3)
    assert len(cash_out) > 0
    for row in cash_out[:50]:
        earlier = (tx.card == tx.card[row]) & (tx.fraud == 0) & compromised[tx.merchant]
        assert (tx.event_time[earlier] <= tx.event_time[row] - CASH_OUT_MIN_DELAY_MS).any()


def test_labels_for_every_fraud_and_a_sample_of_genuine(run: tuple) -> None:
    _, tx, labels = run
    fraud_ids = set(tx.event_id[tx.fraud > 0].tolist())
    labelled_fraud = set(labels.event_id[labels.is_fraud].tolist())
    assert labelled_fraud == fraud_ids
    genuine = (~labels.is_fraud).sum()
    assert genuine / (tx.fraud == 0).sum() == pytest.approx(0.02, rel=0.15)
    event_time = dict(zip(tx.event_id.tolist(), tx.event_time.tolist(), strict=True))
    delays = labels.label_time - np.array([event_time[e] for e in labels.event_id.tolist()])
    assert (delays >= HOUR_MS).all()
    assert HOUR_MS * 6 < np.median(delays) < 10 * DAY_MS
    assert (np.diff(labels.label_time) >= 0).all()  # released in label-time order


def test_out_of_order_and_late_events() -> None:
    _, tx, _ = _run(count=20_000, out_of_order_fraction=0.05, late_fraction=0.02, late_by_ms=2 * HOUR_MS)
    assert tx.out_of_order.mean() == pytest.approx(0.05, rel=0.2)
    assert tx.late.mean() == pytest.approx(0.02, rel=0.25)
    on_time = ~(tx.out_of_order | tx.late)
    assert (np.diff(tx.event_time[on_time]) >= 0).all()
    running_max = np.maximum.accumulate(tx.event_time)
    # A late event sits ~2 h behind the stream (minus the gap to the event before it, seconds here).
    assert (running_max[tx.late] - tx.event_time[tx.late] >= 2 * HOUR_MS - 30 * 60_000).all()
    assert (tx.event_time[tx.out_of_order] < running_max[tx.out_of_order]).mean() > 0.9


def test_time_plans() -> None:
    base = {"count": 10, "now_ms": NOW}
    assert isinstance(plan_event_times(GeneratorOptions(**base)), WallClockPlan)  # type: ignore[arg-type]
    paced = plan_event_times(GeneratorOptions(**base, rate=5.0))  # type: ignore[arg-type]
    assert paced == SpanPlan(NOW, 2_000, 10, daily_cycle=False)
    history = plan_event_times(GeneratorOptions(**base, duration_ms=HOUR_MS))  # type: ignore[arg-type]
    assert history == SpanPlan(NOW - HOUR_MS, HOUR_MS, 10)
    with pytest.raises(TimeArgumentError, match="more than a day after now"):
        plan_event_times(GeneratorOptions(**base, start_ms=NOW, duration_ms=3 * DAY_MS))  # type: ignore[arg-type]
    wall = WallClockPlan(lambda: 42).times(np.random.default_rng(0), 0, 3)
    assert wall.tolist() == [42, 42, 42]


def test_parsing_durations_and_start_times() -> None:
    assert parse_duration("90m") == 90 * 60_000
    assert parse_duration("12h") == 12 * HOUR_MS
    assert parse_duration("3d") == 3 * DAY_MS
    assert parse_duration("1.5s") == 1_500
    assert parse_start_time("2024-05-01T08:00:00Z") == 1_714_550_400_000
    assert parse_start_time("2024-05-01T10:00:00+02:00") == 1_714_550_400_000
    assert parse_start_time("2024-05-01") == 1_714_521_600_000
    with pytest.raises(TimeArgumentError):
        parse_duration("three days")
    with pytest.raises(TimeArgumentError):
        parse_start_time("yesterday")


def test_options_are_checked() -> None:
    with pytest.raises(GeneratorOptionsError, match="bad_fraction"):
        GeneratorOptions(count=1, now_ms=NOW, bad_fraction=2.0)
    with pytest.raises(GeneratorOptionsError, match="unknown bad-record kinds"):
        GeneratorOptions(count=1, now_ms=NOW, bad_kinds=("cosmic_rays",))
