"""Reading features back from Feast's online store: the Python API behind the CLI, HTTP scoring and benchmarks.

``get_features("card", ["card-000123"], feature_service="fraud_model_v1")`` -> one
:class:`~pipelines.lookups.online.EntityFeatures` per id (values, event time, age, status); a long-lived
:class:`~pipelines.lookups.online.FeatureLookup` for servers. Names are checked against Feast's registry by
:mod:`~pipelines.lookups.catalog`.
"""
