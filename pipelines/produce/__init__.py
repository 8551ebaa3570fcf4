"""Producing events to Kafka: generated transactions (and their labels), or records replayed from files."""

from pipelines.produce.files import FileSchemaMismatchError, produce_file
from pipelines.produce.summary import BAD_KIND_HEADER, ProduceSummary, ProgressUpdate, TopicSummary
from pipelines.produce.transactions import produce_transactions

__all__ = [
    "BAD_KIND_HEADER",
    "FileSchemaMismatchError",
    "ProduceSummary",
    "ProgressUpdate",
    "TopicSummary",
    "produce_file",
    "produce_transactions",
]
