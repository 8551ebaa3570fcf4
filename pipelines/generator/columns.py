"""Generated rows, column by column (numpy arrays), and their conversion to Avro-ready dicts.

Columns keep generation vectorised; records are built only at the end, in one comprehension, for the
encoder. Fields beyond the Avro record (``fraud``, ``bad_kind``, ...) are the ground truth tests and the
producer's summary use; they never reach Kafka as record fields.
"""

from __future__ import annotations

from dataclasses import dataclass, fields, replace
from typing import Any

import numpy as np

from pipelines.generator.population import CHANNELS, Population

NOT_FRAUD = 0
FRAUD_PATTERNS = ("card_testing", "account_takeover", "compromised_merchant")
"""Fraud pattern names; a row's ``fraud`` code is 1 + the index here (0: legitimate)."""

NOT_BAD = -1


@dataclass(frozen=True)
class TransactionColumns:
    event_id: np.ndarray  # object (str)
    card: np.ndarray  # int64 card index
    merchant: np.ndarray  # int64 merchant index
    amount: np.ndarray  # float64
    currency: np.ndarray  # object (str)
    mcc: np.ndarray  # object (str)
    country: np.ndarray  # object (str)
    channel: np.ndarray  # int8 index into CHANNELS
    event_time: np.ndarray  # int64 epoch ms
    device_id: np.ndarray  # object (str | None)
    fraud: np.ndarray  # int8: 0 legitimate, else 1 + index into FRAUD_PATTERNS
    out_of_order: np.ndarray  # bool: event_time moved back a little (arrives out of order)
    late: np.ndarray  # bool: event_time moved back by --late-by (arrives late)
    bad_kind: np.ndarray  # int8: NOT_BAD, else index into the run's bad kinds

    def __len__(self) -> int:
        return len(self.event_id)

    def take(self, order: np.ndarray) -> TransactionColumns:
        """The rows in ``order`` (a permutation or a selection)."""
        return replace(self, **{f.name: getattr(self, f.name)[order] for f in fields(self)})

    def records(self, population: Population) -> list[dict[str, Any]]:
        """Avro-ready dicts (current transactions schema), in row order."""
        card_ids = population.card_ids[self.card].tolist()
        merchant_ids = population.merchant_ids[self.merchant].tolist()
        channels = np.array(CHANNELS, dtype=object)[self.channel].tolist()
        return [
            {
                "event_id": event_id,
                "card_id": card_id,
                "merchant_id": merchant_id,
                "amount": amount,
                "currency": currency,
                "mcc": mcc,
                "country": country,
                "channel": channel,
                "event_time": event_time,
                "device_id": device_id,
            }
            for event_id, card_id, merchant_id, amount, currency, mcc, country, channel, event_time, device_id in zip(
                self.event_id.tolist(),
                card_ids,
                merchant_ids,
                self.amount.tolist(),
                self.currency.tolist(),
                self.mcc.tolist(),
                self.country.tolist(),
                channels,
                self.event_time.tolist(),
                self.device_id.tolist(),
                strict=True,
            )
        ]


@dataclass(frozen=True)
class LabelColumns:
    event_id: np.ndarray  # object (str)
    card_id: np.ndarray  # object (str)
    is_fraud: np.ndarray  # bool
    label_time: np.ndarray  # int64 epoch ms

    def __len__(self) -> int:
        return len(self.event_id)

    @classmethod
    def empty(cls) -> LabelColumns:
        return cls(
            event_id=np.array([], dtype=object),
            card_id=np.array([], dtype=object),
            is_fraud=np.array([], dtype=bool),
            label_time=np.array([], dtype=np.int64),
        )

    @classmethod
    def concat(cls, parts: list[LabelColumns]) -> LabelColumns:
        if not parts:
            return cls.empty()
        return cls(**{f.name: np.concatenate([getattr(p, f.name) for p in parts]) for f in fields(cls)})

    def take(self, order: np.ndarray) -> LabelColumns:
        return replace(self, **{f.name: getattr(self, f.name)[order] for f in fields(self)})

    def records(self) -> list[dict[str, Any]]:
        return [
            {"event_id": event_id, "card_id": card_id, "is_fraud": is_fraud, "label_time": label_time}
            for event_id, card_id, is_fraud, label_time in zip(
                self.event_id.tolist(),
                self.card_id.tolist(),
                self.is_fraud.tolist(),
                self.label_time.tolist(),
                strict=True,
            )
        ]
