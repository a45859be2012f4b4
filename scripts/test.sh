#!/usr/bin/env bash
# Runs every test: formatting, unit tests, the integration suite on SQLite and on PostgreSQL against
# the AWS emulator, the SSM documents in a sandbox, and the browser client in Chromium. Installs what a
# fresh machine lacks.
set -euo pipefail
source "$(dirname "$0")/lib.sh"
cd "$ROOT"

ensure_rust
ensure_debs curl libpq-dev pkg-config util-linux procps passwd openssh-server openssh-client sudo
ensure_venv
ensure_postgres

export GATEKEEPER_TEST_PYTHON="$VENV/bin/python"
export RUST_LOG="${RUST_LOG:-warn,gatekeeper::alert=off}"

log "cargo fmt --check"
cargo fmt --all -- --check

# The server and the browser client are built and tested separately: one `--workspace` build would
# unify their dependencies' features and rebuild the AWS SDK whenever the two alternate.
log "building the tests"
cargo test -p gatekeeper --no-run --locked

# Leftover databases of interrupted earlier runs.
psql -h 127.0.0.1 -U postgres -d test -Atc "SELECT datname FROM pg_database WHERE datname LIKE 'gk_t_%'" |
  while read -r db; do psql -h 127.0.0.1 -U postgres -d test -qc "DROP DATABASE IF EXISTS \"$db\"" >/dev/null; done

log "unit, integration and SSM document sandbox tests on SQLite"
GATEKEEPER_TEST_DB=sqlite cargo test -p gatekeeper --locked

log "integration tests on PostgreSQL"
GATEKEEPER_TEST_DB=postgres cargo test -p gatekeeper --test api --locked

psql -h 127.0.0.1 -U postgres -d test -Atc "SELECT datname FROM pg_database WHERE datname LIKE 'gk_t_%'" |
  while read -r db; do psql -h 127.0.0.1 -U postgres -d test -qc "DROP DATABASE IF EXISTS \"$db\"" >/dev/null; done

log "unit tests of the browser client"
cargo test -p gatekeeper-frontend --locked

log "browser tests (the SPA in Chromium against the API and the emulator)"
bash "$ROOT/scripts/browser-tests.sh"
log "all tests passed"
