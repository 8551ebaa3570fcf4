"""Declared domains. A domain names its entities, their windowed features and its topics' subjects;
the engine (transforms, streaming, Feast writers) reads only these declarations, so a second domain is a new
module here plus its schemas and Feast definitions, with no engine change."""

from __future__ import annotations

from pipelines.domains.base import Domain
from pipelines.domains.card_fraud import CARD_FRAUD

DOMAINS: dict[str, Domain] = {CARD_FRAUD.name: CARD_FRAUD}


def get_domain(name: str) -> Domain:
    from pipelines.errors import ConfigurationError

    try:
        return DOMAINS[name]
    except KeyError:
        raise ConfigurationError(f"unknown domain {name!r}; known: {', '.join(sorted(DOMAINS))}") from None
