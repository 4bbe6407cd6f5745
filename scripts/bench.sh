#!/usr/bin/env bash
# `make bench-log`: build the release binaries, install what the benchmark drives (oha from
# crates.io, matplotlib from PyPI into .tools/bench-venv) when missing, and run
# scripts/bench.py, which writes docs/benchmarks.md's `bench:log` block and docs/bench/*.png.
# Idempotent. Env: see scripts/bench.py (BENCH_SECS, BENCH_SCENARIOS, MONGO_URL, ...).
log_tag=bench
source "$(dirname "$0")/tools-env.sh"

bench_venv="$tools/bench-venv"
if ! command -v oha >/dev/null && [ ! -x "$HOME/.cargo/bin/oha" ]; then
  log "installing oha (cargo install oha --locked, once)"
  cargo install --locked oha
fi
if [ ! -x "$bench_venv/bin/python" ] || ! "$bench_venv/bin/python" -c 'import matplotlib' 2>/dev/null; then
  log "installing matplotlib into $bench_venv"
  python3 -m venv --clear "$bench_venv"
  "$bench_venv/bin/pip" install --quiet --disable-pip-version-check 'matplotlib>=3.8,<4'
fi
log "building the release binaries (troupe, bench_ceiling)"
cargo build --release -q -p troupe-http --bin troupe -p troupe-examples --bin bench_ceiling
exec "$bench_venv/bin/python" scripts/bench.py "$@"
