"""The stateless stage on one chunk (no Spark): every row comes out once, with a verdict, whatever its content."""

from __future__ import annotations

from datetime import UTC, datetime

import numpy as np
import pandas as pd
import pyarrow as pa

from pipelines.config import Settings
from pipelines.domains import get_domain
from pipelines.serde.decoder import RecordDecoder
from pipelines.serde.encoder import make_encoder
from pipelines.spark.arrow_batches import arrow_schema
from pipelines.streaming import columns as C
from pipelines.streaming.decode_validate import DecodeValidate
from pipelines.validation.suite import read_suite_json

NOW_MS = int(datetime(2026, 11, 1, tzinfo=UTC).timestamp() * 1000)


def _transaction(event_id: str, event_time_ms: int) -> dict[str, object]:
    return {
        "event_id": event_id,
        "card_id": "card-1",
        "merchant_id": "m-1",
        "amount": 12.5,
        "currency": "EUR",
        "mcc": "5411",
        "country": "DE",
        "channel": "POS",
        "event_time": event_time_ms,
    }


def test_an_event_time_beyond_pandas_range_next_to_an_undecodable_record_is_a_dead_letter() -> None:
    """pandas cannot hold an event time past year 2262; with a null in the same chunk (an undecodable row) its
    conversion used to raise FloatingPointError and fail the whole batch."""
    domain = get_domain("card_fraud")
    settings = Settings()
    encoder = make_encoder(domain.event_subject, settings, "transactions")
    values = [
        encoder.encode(_transaction("ok", NOW_MS - 60_000)),
        b"\x00garbage",
        encoder.encode(_transaction("absurd", 2**62)),
    ]
    source = pa.table(
        {
            "src_topic": ["transactions"] * len(values),
            "src_partition": [0] * len(values),
            "src_offset": range(len(values)),
            "src_timestamp": [datetime.fromtimestamp(NOW_MS / 1000, UTC)] * len(values),
            "src_key": [b"card-1"] * len(values),
            "src_value": values,
        },
        schema=arrow_schema(C.SOURCE_SCHEMA),
    )
    stage = DecodeValidate(domain, RecordDecoder.from_settings(domain.event_subject, settings), read_suite_json())
    with np.errstate(all="raise"):  # as found on Spark's Python workers: any overflow raises
        judged = stage.judge(source)
    assert judged.schema == arrow_schema(C.decoded_schema(domain))  # exactly what Spark expects back
    out = judged.to_pandas()
    assert out[C.VERDICT].tolist() == [C.OK, C.DEAD_LETTER, C.DEAD_LETTER]
    assert out[C.REASON].tolist()[1].startswith("undecodable")
    assert out[C.REASON].tolist()[2] == "invalid" and "event_time" in out[C.ERROR].tolist()[2]
    assert out["src_value"].tolist() == values  # the original bytes travel on to the dead-letter topic
    assert out["event_time"].iloc[0] == pd.Timestamp(NOW_MS - 60_000, unit="ms", tz="UTC")
    assert pd.isna(out["event_time"].iloc[2])
