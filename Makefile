# The two commands a new user needs: `make demo` and `make test`.
SHELL := /bin/bash
.SHELLFLAGS := -eu -o pipefail -c
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
INSTALLED := $(VENV)/.installed
BROKER_SETUP = broker="$$(bash deploy/ensure-broker.sh)"; export STREAM_APP_BROKER="$$broker"

.PHONY: help install test lint unit integration demo worker bench drill kafka-up kafka-down kafka-status clean

help:
	@echo "make test      lint, type-check and run unit + integration tests on a real broker"
	@echo "make demo      run a worker on a generated stream and print a summary"
	@echo "make bench     throughput/latency/memory/restore benchmark (writes bench-results/)"
	@echo "make drill     failure drills: two-worker chaos, kill -9, state wipe, failover, poison, broker restart"
	@echo "make kafka-up | kafka-down | kafka-status   the local broker alone"

$(INSTALLED): pyproject.toml
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev,bench]'
	@touch $@

install: $(INSTALLED)

lint: $(INSTALLED)
	$(BIN)/ruff check stream_app dev tests
	$(BIN)/ruff format --check stream_app dev tests
	$(BIN)/mypy

unit: $(INSTALLED)
	$(BIN)/pytest tests/unit -q

test: lint
	$(BROKER_SETUP); \
	$(BIN)/pytest tests -v

demo: $(INSTALLED)
	$(BROKER_SETUP); \
	$(BIN)/python -m dev.demo

worker: $(INSTALLED)
	$(BROKER_SETUP); \
	$(BIN)/stream-app worker -l info

bench: $(INSTALLED)
	$(BROKER_SETUP); \
	$(BIN)/python -m dev.bench

drill: $(INSTALLED)
	$(BROKER_SETUP); \
	$(BIN)/python -m dev.drills

kafka-up:
	bash deploy/kafka/kafka.sh start

kafka-down:
	bash deploy/kafka/kafka.sh stop

kafka-status:
	bash deploy/kafka/kafka.sh status

clean:
	rm -rf data .local/demo .local/worker-* bench-results drill-results .pytest_cache .mypy_cache .ruff_cache
