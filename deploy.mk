# Packaging and deploying the function, included by the root
# Makefile. docs/deploy.md says what each step needs and costs.
#
#   make package                                   the arm64 zip with the pinned tools, checked
#   ALARM_EMAIL=oncall@example.com make deploy-trial   the trial stack (samconfig.toml [trial])
#   ALARM_EMAIL=oncall@example.com make deploy         the default stack (samconfig.toml [default])
#   make test-arm64                                the end-to-end runs against that zip's bootstrap (qemu-user)
#
# Only pinned tools: cargo-lambda and zig from tools/requirements-cargo-lambda.txt
# (hashed) in .venv/cargo-lambda, the SAM CLI from tools/requirements-sam.txt
# in .venv/sam, the Rust toolchain of rust-toolchain.toml with its arm64 target.

SAM_VENV := .venv/sam
SAM_STAMP := $(SAM_VENV)/.installed-requirements
LAMBDA_DIR := target/lambda
# The template's two functions, each built from its binary into
# $(LAMBDA_DIR)/BINARY/bootstrap.zip.
FUNCTIONS := kinesis-firehose-bridge kinesis-firehose-replay
PACKAGE := $(LAMBDA_DIR)/kinesis-firehose-bridge/bootstrap.zip
# The largest bootstrap make package accepts. Measured: 12,836,424 bytes for
# the bridge, 13,258,392 for the replay function (cargo lambda 1.9.2, zig
# 0.14.1, Rust 1.95.0); the bound leaves room for growth and stops a
# dependency that doubles either.
BOOTSTRAP_MAX_BYTES := 16000000

.PHONY: package arm64-target sam deploy deploy-trial alarm-email test-arm64

## arm64-target: the Rust standard library for aarch64-unknown-linux-gnu, for the pinned toolchain
arm64-target:
	rustup target add aarch64-unknown-linux-gnu

## package: the functions' arm64 bootstrap.zip files (cargo lambda, zig, pinned), each checked to be an aarch64 ELF under BOOTSTRAP_MAX_BYTES
package: cargo-lambda arm64-target
	PATH="$(CURDIR)/$(CARGO_LAMBDA_VENV)/bin:$$PATH" $(CARGO_LAMBDA) lambda build --release --arm64 \
		--output-format zip $(addprefix --bin ,$(FUNCTIONS)) --lambda-dir $(LAMBDA_DIR)
	$(foreach f,$(FUNCTIONS),tools/check-package $(LAMBDA_DIR)/$(f)/bootstrap.zip $(BOOTSTRAP_MAX_BYTES) &&) true

# The bootstrap of the package, as Lambda unpacks it (zipfile keeps no mode).
UNPACKED := $(LAMBDA_DIR)/kinesis-firehose-bridge/unpacked

## test-arm64: the end-to-end runs (poison, throttling, gzip) against the packaged arm64 bootstrap, under qemu-user on x86_64
# The end-to-end runs need the bridge's bootstrap only: the package step
# builds it as `make package` does (same command, same profile), without
# the replay function's second fat-LTO link.
test-arm64: moto kinesalite cargo-lambda
	$(MAKE) --no-print-directory package FUNCTIONS=kinesis-firehose-bridge
	tools/install-qemu
	rm -rf $(UNPACKED)
	$(PYTHON) -m zipfile -e $(PACKAGE) $(UNPACKED)
	chmod 755 $(UNPACKED)/bootstrap
	BRIDGE_BOOTSTRAP="$(CURDIR)/$(UNPACKED)/bootstrap" cargo test --workspace --test pipeline -- \
		a_poison_stretch throttled_and_one_stream_down gzip_delivers

## sam: the AWS SAM CLI, pinned, in its own virtualenv (.venv/sam, shared with tools/check-deploy)
sam: $(SAM_STAMP)
$(SAM_STAMP): tools/requirements-sam.txt
	$(PYTHON) -m venv $(SAM_VENV)
	$(SAM_VENV)/bin/pip install --quiet --disable-pip-version-check --no-input -r tools/requirements-sam.txt
	cp tools/requirements-sam.txt $@

## deploy: package, then sam deploy the default stack (ALARM_EMAIL required, REGION optional)
deploy: alarm-email package sam
	tools/deploy default

## deploy-trial: package, then sam deploy the trial stack: 1 shard, 1 delivery stream, short retention
deploy-trial: alarm-email package sam
	tools/deploy trial

# Before minutes of building: without ALARM_EMAIL, tools/deploy can only ask
# for it on a terminal.
alarm-email:
	@[ -n "$${ALARM_EMAIL:-}" ] || [ -t 0 ] || { echo "deploy: AlarmEmail is required and was not given: ALARM_EMAIL=oncall@example.com make $(MAKECMDGOALS)" >&2; exit 1; }
