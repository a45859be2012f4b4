#!/usr/bin/env bash
# The browser tests: builds the browser client and the API, starts the AWS emulator with a seeded fleet
# and the API with a fresh SQLite database on free loopback ports, then drives Debian's Chromium
# through the whole journey with playwright-core (which never downloads a browser of its own).
# Screenshots of every page land in tests/artifacts/browser/.
set -euo pipefail
source "$(dirname "$0")/lib.sh"
cd "$ROOT"

ensure_rust
ensure_debs curl chromium openssh-client fonts-dejavu-core
# Node.js with npm: Debian's packages unless the machine already has a Node.js that bundles npm
# (Debian's npm conflicts with such builds).
command -v npm >/dev/null && command -v node >/dev/null || ensure_debs nodejs npm
ensure_venv

bash "$ROOT/scripts/build-frontend.sh"
log "building gatekeeper"
# The binary as the test suite builds it (same features, so nothing is rebuilt after scripts/test.sh).
cargo test -q -p gatekeeper --no-run --locked
BIN="${CARGO_TARGET_DIR:-$ROOT/target}/debug/gatekeeper"

work=$(mktemp -d)
cleanup() {
  [ -n "${API_PID:-}" ] && kill "$API_PID" 2>/dev/null || true
  [ -n "${EMULATOR_PID:-}" ] && kill "$EMULATOR_PID" 2>/dev/null || true
  wait 2>/dev/null || true
  rm -rf "$work"
}
trap cleanup EXIT INT TERM

port=$(free_port)
emulator_port=$(free_port)
start_emulator "$emulator_port" "$work/emulator.log"
"$VENV/bin/python" scripts/seed_demo.py --endpoint "http://127.0.0.1:$emulator_port" >"$work/fleet.jsonl"
export_throwaway_secrets
write_config "$work/gatekeeper.toml" "$port" "$emulator_port" "sqlite://$work/gatekeeper.db"
# The worker looks for work every second here, so that grants follow approvals quickly.
printf '\n[worker]\npoll_interval_seconds = 1\n' >>"$work/gatekeeper.toml"
start_api "$BIN" "$work/gatekeeper.toml" "$port" "$work/gatekeeper.log"

cd "$ROOT/tests/browser"
if [ ! -d node_modules/playwright-core ] || ! cmp -s package-lock.json node_modules/.package-lock.json 2>/dev/null; then
  log "installing playwright-core"
  npm ci --no-audit --no-fund --loglevel=error
fi
mkdir -p "$ROOT/tests/artifacts/browser"
log "browser tests against http://127.0.0.1:$port"
status=0
GK_URL="http://127.0.0.1:$port" GK_EMULATOR="http://127.0.0.1:$emulator_port" GK_ARTIFACTS="$ROOT/tests/artifacts/browser" npm test || status=$?
if [ "$status" -ne 0 ]; then
  echo "--- gatekeeper log (tail) ---" >&2
  tail -n 40 "$work/gatekeeper.log" >&2
fi
exit "$status"
