"""Deterministic, realistic card traffic with injected fraud, labels and bad records (pure: no Kafka here)."""

from pipelines.generator.bad_records import BAD_KINDS, INVALID_KINDS, UNDECODABLE_KINDS
from pipelines.generator.columns import FRAUD_PATTERNS, LabelColumns, TransactionColumns
from pipelines.generator.fraud import FraudMix
from pipelines.generator.generator import (
    GeneratedChunk,
    GeneratorOptions,
    GeneratorOptionsError,
    TransactionGenerator,
    plan_event_times,
)
from pipelines.generator.timing import parse_duration, parse_start_time

__all__ = [
    "BAD_KINDS",
    "FRAUD_PATTERNS",
    "INVALID_KINDS",
    "UNDECODABLE_KINDS",
    "FraudMix",
    "GeneratedChunk",
    "GeneratorOptions",
    "GeneratorOptionsError",
    "LabelColumns",
    "TransactionColumns",
    "TransactionGenerator",
    "parse_duration",
    "parse_start_time",
    "plan_event_times",
]
