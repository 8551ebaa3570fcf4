"""Online serving: the request-time scoring endpoint (POST /score) and the process `stack up` runs it in.

- :mod:`~pipelines.serving.app`: the FastAPI app (``create_app(settings)``);
- :mod:`~pipelines.serving.request_features`: the stream's features rebuilt for a request from online values;
- :mod:`~pipelines.serving.validation`: the expectation suite's rules applied per request;
- :mod:`~pipelines.serving.model`: the production model, through the stream's own model source and scorer;
- :mod:`~pipelines.serving.server`: `featurestream serve` (uvicorn) and its managed process for the stack.
"""
