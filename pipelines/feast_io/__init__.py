"""The Feast side of the pipeline: the feature store built from settings, and the writers the streaming job calls.

- :mod:`~pipelines.feast_io.store`: ``feature_store(settings)``, ``apply_repo(settings)`` (`featurestream features
  apply`), ``repo_config(settings)``.
- :mod:`~pipelines.feast_io.writers`: ``online_writer(settings)``, built on the driver, shipped to executors;
  :class:`~pipelines.feast_io.online.OnlineWriter` ``.write(view, rows)`` / ``.write_batches(view, batches)``.
- :mod:`~pipelines.feast_io.offline`: ``write_offline_part(table, settings, view, batch_id, partition)``, one
  Parquet file per (micro-batch, Spark partition), replay-safe.

Nothing is imported here, so importing a submodule does not pull in Feast where it is not needed (executors).
"""
