# The local pipeline, included by the root Makefile.
#
#   make demo                                  5,000 events/s for 60 s, 2 streams, 1% invalid, no faults
#   make demo RATE=1000 DURATION=20 FAULTS=throttle=0.3,down=analytics-events-1
#   make demo FAULTS=throttle=0.7 DEMO_FLAGS="--replay --bridge-env MAX_PUT_ATTEMPTS=2"
#   make demo INVOKE=cargo-lambda              the real function under `cargo lambda watch`
#   make demo COMPRESSION=none                 records sent uncompressed (the template deploys gzip)
#
# Everything runs on 127.0.0.1 against kinesalite (Kinesis) and moto
# (Firehose, S3); the demo starts them (and cargo lambda) itself and ends
# them by their pid, also on Ctrl-C. The bridge and the event source
# mapping run with the settings template.yaml deploys. Its logs, ledger,
# report and lake/ (the delivered objects as the Glue tables' partitions,
# read back with DuckDB) go to a folder under $TMPDIR, printed at the start.

RATE ?= 5000
DURATION ?= 60
STREAMS ?= 2
FAULTS ?=
INVOKE ?= library
# Empty: the template's default (Parameters.Compression), like every other
# bridge setting the template sets from a parameter.
COMPRESSION ?=
DEMO_FLAGS ?=

CARGO_LAMBDA_VENV := .venv/cargo-lambda
CARGO_LAMBDA := $(CARGO_LAMBDA_VENV)/bin/cargo-lambda

DEMO_NEEDS := prerequisites moto kinesalite duckdb
ifeq ($(INVOKE),cargo-lambda)
DEMO_NEEDS += cargo-lambda
endif

.PHONY: demo cargo-lambda invoke invoke-stop

EVENT ?=
KEEP ?=

# Optimised, but without the Lambda's fat LTO: the load generator and event
# source mapping share two cores with moto, and a fresh clone builds in minutes.
DEMO_CARGO := CARGO_PROFILE_RELEASE_LTO=off CARGO_PROFILE_RELEASE_CODEGEN_UNITS=16 cargo

## demo: the zero-loss experiment on this machine (RATE, DURATION, STREAMS, FAULTS, INVOKE, DEMO_FLAGS)
demo: $(DEMO_NEEDS)
	$(DEMO_CARGO) run --quiet --release -p bridge-local --bin demo -- \
		--rate $(RATE) --duration $(DURATION) --streams $(STREAMS) \
		--faults '$(FAULTS)' --invoke $(INVOKE) $(if $(COMPRESSION),--bridge-env COMPRESSION=$(COMPRESSION)) $(DEMO_FLAGS)

## invoke: the function under cargo lambda watch, invoked with each file of events/ (or EVENT=file), S3 checked; KEEP=1 leaves it running
invoke: moto cargo-lambda
	cargo run --quiet -p bridge-local --bin invoke -- $(if $(KEEP),--keep) $(EVENT)

## invoke-stop: stops what `make invoke KEEP=1` left running
invoke-stop:
	@pids="$$(cat "$${TMPDIR:-/tmp}/bridge-local-invoke.pids" 2>/dev/null)"; \
	if [ -n "$$pids" ]; then kill -- $$pids 2>/dev/null; rm -f "$${TMPDIR:-/tmp}/bridge-local-invoke.pids"; echo "stopped $$pids"; \
	else echo "nothing kept running by make invoke"; fi

## cargo-lambda: cargo lambda and zig, pinned with their hashes (tools/requirements-cargo-lambda.txt), in their own virtualenv
cargo-lambda: $(CARGO_LAMBDA)
$(CARGO_LAMBDA): tools/requirements-cargo-lambda.txt
	$(PYTHON) -m venv $(CARGO_LAMBDA_VENV)
	$(CARGO_LAMBDA_VENV)/bin/pip install --quiet --disable-pip-version-check --no-input \
		--require-hashes -r tools/requirements-cargo-lambda.txt
	touch $@

# ---------------------------------------------------------------- scale --
# Firehose quotas enforced per stream by the fault proxy, a sweep over
# delivery streams and load, and the capacity plan (docs/scale.md).

SCALE_FLAGS ?=
EVENT_BYTES ?=
REGION ?= us-east-1
SAMPLE ?=

.PHONY: scale plan

## scale: the streams sweep (1-4 streams) and the load sweep (x1, x2, x4), one JSON line per point (docs/scale.md); SCALE_FLAGS=--short for CI's two points
scale: moto kinesalite
	$(DEMO_CARGO) run --quiet --release -p bridge-local --bin scale -- $(SCALE_FLAGS)

## plan: shards, delivery streams, Lambda concurrency and monthly cost (RATE, EVENT_BYTES, REGION, SAMPLE, COMPRESSION); its last line pastes into sam deploy
plan:
	$(DEMO_CARGO) run --quiet --release -p bridge-local --bin plan -- --rate='$(RATE)' --event-bytes='$(EVENT_BYTES)' \
		--region='$(REGION)' $(if $(SAMPLE),--sample='$(SAMPLE)') $(if $(COMPRESSION),--compression='$(COMPRESSION)')
