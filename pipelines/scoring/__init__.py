"""Scoring in the stream: the production model picked per micro-batch, batched XGBoost predictions on the
executors, scores published exactly once to the scores topic."""
