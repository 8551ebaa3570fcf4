"""Every injected bad-record kind fails the way it claims: a typed DecodeError, or a rule violation."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import numpy as np
import pytest
from confluent_kafka.schema_registry import SchemaRegistryClient
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from pipelines.generator import BAD_KINDS, INVALID_KINDS, UNDECODABLE_KINDS, GeneratorOptions, TransactionGenerator
from pipelines.generator.bad_records import UNKNOWN_COUNTRIES, UNKNOWN_CURRENCIES, undecodable_payload
from pipelines.generator.timing import DAY_MS
from pipelines.schemas.reference import countries, currencies
from pipelines.schemas.store import load_store
from pipelines.serde import ConfluentEncoder, DecodeError, RecordDecoder, SingleObjectEncoder
from pipelines.serde.confluent import ConfluentRegistry

NOW = 1_780_000_000_000


def rule_violations(record: dict[str, Any], now_ms: int) -> list[str]:
    """The transactions expectation suite's rules as the issue states them (the suite is the authority)."""
    problems = []
    if not 0 < record["amount"] <= 50_000:
        problems.append("amount")
    if record["currency"] not in currencies():
        problems.append("currency")
    if record["country"] not in countries():
        problems.append("country")
    if record["event_time"] > now_ms + DAY_MS:
        problems.append("event_time")
    return problems


EXPECTED_VIOLATION = {
    "negative_amount": ["amount"],
    "absurd_amount": ["amount"],
    "unknown_currency": ["currency"],
    "unknown_country": ["country"],
    "future_event_time": ["event_time"],
}


@pytest.fixture(scope="module")
def generated() -> tuple[TransactionGenerator, list[dict[str, Any]], np.ndarray]:
    options = GeneratorOptions(count=20_000, now_ms=NOW, seed=5, duration_ms=DAY_MS, bad_fraction=0.05)
    generator = TransactionGenerator(options)
    records: list[dict[str, Any]] = []
    kinds: list[int] = []
    for chunk in generator.chunks():
        records += chunk.transactions.records(generator.population)
        kinds += chunk.transactions.bad_kind.tolist()
    return generator, records, np.array(kinds)


def test_bad_rows_at_the_configured_fraction_all_kinds(generated: tuple) -> None:
    generator, _, kinds = generated
    assert (kinds >= 0).mean() == pytest.approx(0.05 * 0.99, rel=0.1)
    assert set(np.unique(kinds[kinds >= 0]).tolist()) == set(range(len(BAD_KINDS)))
    assert generator.bad_kinds == BAD_KINDS


def _encoders() -> list[Any]:
    schema = load_store().latest("transactions")
    registry = ConfluentRegistry("mock://bad", client=SchemaRegistryClient.new_client({"url": "mock://bad"}))
    return [SingleObjectEncoder(schema), ConfluentEncoder(schema, "transactions", registry)]


@pytest.mark.parametrize("encoder_index", [0, 1], ids=["single-object", "confluent"])
def test_undecodable_kinds_give_decode_errors(generated: tuple, encoder_index: int) -> None:
    generator, records, kinds = generated
    encoder = _encoders()[encoder_index]
    registry = getattr(encoder, "_registry", None)
    decoder = RecordDecoder("transactions", registry=registry)
    rng = np.random.default_rng(1)
    seen: dict[str, set[str]] = {}
    for row in np.flatnonzero(kinds >= 0):
        kind = generator.bad_kinds[kinds[row]]
        if kind not in UNDECODABLE_KINDS:
            continue
        value = undecodable_payload(kind, records[row], encoder, rng)
        with pytest.raises(DecodeError) as error:
            decoder.decode(value)
        seen.setdefault(kind, set()).add(error.value.kind)
    assert set(seen) == set(UNDECODABLE_KINDS)
    assert seen["garbage_bytes"] == {"garbage"}
    assert seen["unknown_schema_fingerprint"] == {"unknown_schema"}
    assert seen["truncated_avro"] == {"truncated"}
    assert seen["wrong_field_types"] == {"schema_mismatch"}
    assert seen["null_required_fields"] <= {"schema_mismatch", "truncated"}


def test_invalid_kinds_decode_but_break_exactly_their_rule(generated: tuple) -> None:
    generator, records, kinds = generated
    encoder = SingleObjectEncoder(load_store().latest("transactions"))
    decoder = RecordDecoder("transactions")
    checked = set()
    for row, record in enumerate(records):
        decoded = decoder.decode(encoder.encode(record))
        if kinds[row] < 0:
            assert rule_violations(decoded, NOW) == [], decoded
            continue
        kind = generator.bad_kinds[kinds[row]]
        if kind in INVALID_KINDS:
            assert rule_violations(decoded, NOW) == EXPECTED_VIOLATION[kind], (kind, decoded)
            checked.add(kind)
    assert checked == set(INVALID_KINDS)


def test_unknown_codes_are_not_in_the_reference_lists() -> None:
    assert not set(UNKNOWN_CURRENCIES) & currencies()
    assert not set(UNKNOWN_COUNTRIES) & countries()
    assert {"EUR", "USD", "JPY"} <= currencies() and {"DE", "US", "JP"} <= countries()


_SINGLE = SingleObjectEncoder(load_store().latest("transactions"))
_DECODER = RecordDecoder("transactions")
_text = st.text(min_size=0, max_size=60)
valid_transactions = st.fixed_dictionaries(
    {
        "event_id": _text,
        "card_id": _text,
        "merchant_id": _text,
        "amount": st.floats(min_value=0.01, max_value=50_000, allow_nan=False),
        "currency": st.sampled_from(sorted(currencies())),
        "mcc": st.from_regex(r"\A[0-9]{4}\Z"),
        "country": st.sampled_from(sorted(countries())),
        "channel": st.sampled_from(["POS", "ECOM", "ATM"]),
        "event_time": st.integers(min_value=0, max_value=NOW + DAY_MS),
        "device_id": st.none() | _text,
    }
)


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    record=valid_transactions,
    kind=st.sampled_from(["wrong_field_types", "null_required_fields"]),
    seed=st.integers(0, 99),
)
def test_lying_header_kinds_never_decode_whatever_the_record(record: dict[str, Any], kind: str, seed: int) -> None:
    assert _DECODER.decode(_SINGLE.encode(record))["event_id"] == record["event_id"]
    with pytest.raises(DecodeError):
        _DECODER.decode(undecodable_payload(kind, record, _SINGLE, np.random.default_rng(seed)))


def test_an_unknown_kind_is_refused() -> None:
    with pytest.raises(ValueError, match="not an undecodable"):
        undecodable_payload("negative_amount", {}, _SINGLE, np.random.default_rng(0))


def test_the_expectation_suite_agrees(generated: tuple) -> None:
    """The real GX suite (schemas/transactions.expectations.json): good rows pass, each invalid kind fails its rule."""
    import pandas as pd

    from pipelines.validation.engine import validate_rows

    generator, records, kinds = generated
    encoder, decoder = SingleObjectEncoder(load_store().latest("transactions")), RecordDecoder("transactions")
    rows = [row for row in range(len(records)) if kinds[row] < 0][:500]
    rows += [row for row in range(len(records)) if kinds[row] >= 0 and generator.bad_kinds[kinds[row]] in INVALID_KINDS]
    frame = pd.DataFrame([decoder.decode(encoder.encode(records[row])) for row in rows])
    failures = validate_rows(frame, now=datetime.fromtimestamp(NOW / 1000, UTC)).failed_expectations
    for position, row in enumerate(rows):
        kind = generator.bad_kinds[kinds[row]] if kinds[row] >= 0 else None
        failed = failures[position]
        if kind is None:
            assert failed == [], records[row]
        else:
            assert len(failed) == 1 and EXPECTED_VIOLATION[kind][0] in failed[0], (kind, failed)
