# kinesis-firehose-bridge: every command a developer or CI runs.
# `make demo` runs the local pipeline; `make test` is what CI runs.

SHELL := bash
.SHELLFLAGS := -eu -o pipefail -c
PYTHON ?= python3
MOTO_VENV := .venv/moto
MOTO := $(MOTO_VENV)/bin/moto_server
DUCKDB_VENV := .venv/duckdb
DUCKDB := $(DUCKDB_VENV)/.installed-requirements
KINESALITE_DIR := .venv/kinesalite
KINESALITE := $(KINESALITE_DIR)/node_modules/kinesalite/package.json

.PHONY: test prerequisites lint unit check-deploy bench bench-runtime bench-build moto duckdb kinesalite clean-venv

## test: formatting and clippy (which checks the benchmarks too) while the pinned tools install and the deployment checks run, then unit + behaviour + end-to-end tests (last, so their results close the output)
# The tools install and the deployment checks run beside clippy's build
# (they wait on the network more than on the cores); each one's output is
# printed whole when it ends. The tests run alone: the end-to-end runs
# measure rates.
test: prerequisites
	$(MAKE) --no-print-directory -j8 --output-sync=target lint moto kinesalite cargo-lambda duckdb check-deploy
	$(MAKE) --no-print-directory unit

## prerequisites: stops early, naming what is missing and how to get it (docs/getting-started.md)
prerequisites:
	@tools/check-prerequisites

lint:
	cargo fmt --all -- --check
	cargo clippy --workspace --all-targets -- -D warnings

unit: moto kinesalite cargo-lambda duckdb
	cargo test --workspace

check-deploy:
	tools/check-deploy

## bench: criterion benchmarks (figures in docs/performance.md)
bench:
	cargo bench -p kinesis-firehose-bridge --bench invocation
	cargo bench -p kinesis-firehose-bridge --bench cost
	cargo bench -p kinesis-firehose-bridge --bench compression
	cargo bench -p kinesis-firehose-bridge --bench patterns

## bench-runtime: cold start, peak memory and size of the release binary, through a local Runtime API
bench-runtime:
	cargo build --release -p kinesis-firehose-bridge --bin kinesis-firehose-bridge
	$(PYTHON) tools/runtime-harness.py target/release/kinesis-firehose-bridge

# The benchmarks built and linked, in the dev profile (reusing the test
# build); `make test` relies on clippy's check of every target instead.
bench-build:
	cargo bench --workspace --no-run --profile dev

## moto: the local AWS API (Kinesis, Firehose, S3), pinned, in its own virtualenv
moto: $(MOTO)
$(MOTO): tools/requirements-moto.txt
	$(PYTHON) -m venv $(MOTO_VENV)
	$(MOTO_VENV)/bin/pip install --quiet --disable-pip-version-check -r tools/requirements-moto.txt
	touch $@

## duckdb: DuckDB (Python), pinned, in its own virtualenv: make demo reads the lake back with it
duckdb: $(DUCKDB)
$(DUCKDB): tools/requirements-duckdb.txt
	$(PYTHON) -m venv $(DUCKDB_VENV)
	$(DUCKDB_VENV)/bin/pip install --quiet --disable-pip-version-check -r tools/requirements-duckdb.txt
	cp tools/requirements-duckdb.txt $@

## kinesalite: the local Kinesis, pinned by tools/kinesalite/package-lock.json, installed with npm into .venv/kinesalite
kinesalite: $(KINESALITE)
$(KINESALITE): tools/kinesalite/package.json tools/kinesalite/package-lock.json
	mkdir -p $(KINESALITE_DIR)
	cp tools/kinesalite/package.json tools/kinesalite/package-lock.json $(KINESALITE_DIR)/
	cd $(KINESALITE_DIR) && npm ci --no-audit --no-fund --loglevel=error
	touch $@

clean-venv:
	rm -rf .venv

-include local/local.mk
-include deploy.mk
