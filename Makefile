# featurestream — `make help` lists the targets.
# Everything a target needs is installed by the target itself: a virtualenv (.venv), the Python packages
# (pyproject.toml) and the pinned JVM jars (infra/jvm/*/pom.xml -> infra/jars/). Both are cached: a second
# run costs seconds.

SHELL := /bin/bash
.DEFAULT_GOAL := help

PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV ?= .venv
BIN := $(VENV)/bin
VENV_STAMP := $(VENV)/.installed
JARS_STAMP := infra/jars/.fetched
MVN ?= mvn
MVN_FLAGS ?= -q -B
PYTEST_FLAGS ?=

export PYSPARK_PYTHON := $(abspath $(BIN)/python)
export PYSPARK_DRIVER_PYTHON := $(abspath $(BIN)/python)

.PHONY: help setup venv jars system-check lint format test test-unit test-component test-integration demo stack-up stack-down stack-status clean distclean

help: ## list the targets
	@grep -E '^[a-zA-Z_-]+:.*?## ' $(MAKEFILE_LIST) | awk 'BEGIN {FS = ":.*?## "}; {printf "  \033[36m%-18s\033[0m %s\n", $$1, $$2}'

setup: venv jars ## install everything: virtualenv + Python packages + pinned jars

venv: $(VENV_STAMP) ## create .venv and install the project with dev extras

$(VENV_STAMP): pyproject.toml
	@$(PYTHON) -c 'import sys; sys.exit(0 if sys.version_info[:2] == (3, 11) else "featurestream needs Python 3.11, found " + sys.version.split()[0])'
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet --progress-bar off -e '.[dev]'
	@touch $@

jars: $(JARS_STAMP) ## fetch the pinned Kafka broker and Spark connector jars from Maven Central

$(JARS_STAMP): infra/jvm/kafka-broker/pom.xml infra/jvm/spark-connectors/pom.xml
	@command -v java >/dev/null || { echo "Java 17 is required (apt-get install openjdk-17-jdk-headless)"; exit 1; }
	@command -v $(MVN) >/dev/null || { echo "Maven is required (apt-get install maven)"; exit 1; }
	rm -rf infra/jars/kafka-broker infra/jars/spark-connectors
	$(MVN) $(MVN_FLAGS) -f infra/jvm/kafka-broker/pom.xml package
	$(MVN) $(MVN_FLAGS) -f infra/jvm/spark-connectors/pom.xml package
	@touch $@

lint: venv ## ruff (lint + format check) and mypy
	$(BIN)/ruff check pipelines jobs tests benchmarks
	$(BIN)/ruff format --check pipelines jobs tests benchmarks
	$(BIN)/mypy

format: venv ## apply ruff's fixes and formatting
	$(BIN)/ruff check --fix pipelines jobs tests benchmarks
	$(BIN)/ruff format pipelines jobs tests benchmarks

system-check: ## check the system packages the integration tier needs (redis-server for the Redis online store)
	@command -v java >/dev/null || { echo "Java 17 is required (apt-get install openjdk-17-jdk-headless)"; exit 1; }
	@command -v redis-server >/dev/null || { echo "redis-server is required by the Redis online store tests (apt-get install redis-server)"; exit 1; }

test: setup system-check ## all three tiers: unit, component (local Spark), integration (real broker + Spark)
	$(BIN)/pytest -m "unit or component or integration" $(PYTEST_FLAGS)

test-unit: venv ## unit tier only (no JVM, no broker)
	$(BIN)/pytest -m unit $(PYTEST_FLAGS)

test-component: setup ## component tier only (local Spark session)
	$(BIN)/pytest -m component $(PYTEST_FLAGS)

test-integration: setup system-check ## integration tier only (starts its own broker on free ports)
	$(BIN)/pytest -m integration $(PYTEST_FLAGS)

demo: setup ## set everything up, start the stack and run the main job on the embedded default
	$(BIN)/featurestream stack up
	$(BIN)/featurestream demo

stack-up: setup ## start the embedded stack
	$(BIN)/featurestream stack up

stack-down: ## stop the embedded stack
	@test -x $(BIN)/featurestream && $(BIN)/featurestream stack down || true

stack-status: venv ## show what runs
	$(BIN)/featurestream stack status

clean: stack-down ## stop the stack and remove its state (.featurestream/)
	rm -rf .featurestream spark-warehouse

distclean: clean ## also remove the virtualenv and the fetched jars
	rm -rf $(VENV) infra/jars
