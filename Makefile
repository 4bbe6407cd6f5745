# The commands people type. `make help` lists them.
SHELL := /bin/bash
CARGO ?= cargo
NEXTEST := $(shell $(CARGO) nextest --version >/dev/null 2>&1 && echo yes)

.PHONY: help run test services lint fmt build release bench-events bench-logger-fds

help: ## list targets
	@grep -E '^[a-z_]+:.*## ' $(MAKEFILE_LIST) | sed 's/:.*## /\t/' | sort

run: ## run every service in one process on embedded defaults (no servers needed)
	$(CARGO) run --bin troupe -- up

test: services ## start the servers the tests need, then run the whole test suite
ifeq ($(NEXTEST),yes)
	$(CARGO) nextest run --workspace --no-fail-fast
else
	$(CARGO) test --workspace --no-fail-fast
endif

services: ## install/start PostgreSQL (and the other test servers) when missing
	scripts/services.sh

lint: ## formatting and clippy, warnings are errors
	$(CARGO) fmt --all -- --check
	$(CARGO) clippy --workspace --all-targets -- -D warnings

fmt: ## format the code
	$(CARGO) fmt --all

build: ## debug build of the troupe binary
	$(CARGO) build --bin troupe

release: ## optimised build of the troupe binary
	$(CARGO) build --release --bin troupe

bench-logger-fds: ## 100,000 broker `log` actions in split mode; open fds of broker and logger
	scripts/bench-logger-fds.sh

bench-events: services ## events/s publish->stored vs raw lapin publish+consume on the same RabbitMQ (optimised build)
	$(CARGO) run --release -p troupe-examples --bin bench_events
