"""Avro schemas kept in the repository (``schemas/<subject>/v<N>.avsc``): loading, fingerprints, compatibility."""

from pipelines.schemas.store import SchemaError, SchemaStore, SchemaVersion, load_store

__all__ = ["SchemaError", "SchemaStore", "SchemaVersion", "load_store"]
