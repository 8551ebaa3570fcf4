"""Reading features back: the Python API over Feast's FeatureStore used by the CLI (and later HTTP)."""
