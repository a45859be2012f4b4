#!/usr/bin/env bash
# Runs Gatekeeper locally: the AWS emulator with a seeded fleet, the API with embedded SQLite (and the
# SPA once built), and prints tokens with a copy-paste walk through the whole journey. Ctrl-C stops it.
set -euo pipefail
source "$(dirname "$0")/lib.sh"
cd "$ROOT"

PORT="${GATEKEEPER_PORT:-8080}"
EMULATOR_PORT="${GATEKEEPER_EMULATOR_PORT:-4566}"
STATE="$ROOT/.demo"
mkdir -p "$STATE"

ensure_rust
ensure_debs curl libpq-dev pkg-config
ensure_venv

bash "$ROOT/scripts/build-frontend.sh"
log "building gatekeeper"
cargo build -q -p gatekeeper --locked
BIN="${CARGO_TARGET_DIR:-$ROOT/target}/debug/gatekeeper"

cleanup() {
  [ -n "${API_PID:-}" ] && kill "$API_PID" 2>/dev/null || true
  [ -n "${EMULATOR_PID:-}" ] && kill "$EMULATOR_PID" 2>/dev/null || true
}
trap cleanup EXIT INT TERM

log "starting the AWS emulator on 127.0.0.1:$EMULATOR_PORT"
start_emulator "$EMULATOR_PORT" "$STATE/emulator.log"
log "seeding a fleet"
"$VENV/bin/python" scripts/seed_demo.py --endpoint "http://127.0.0.1:$EMULATOR_PORT" >"$STATE/fleet.jsonl"

# Secrets for this demo only, made once and kept in .demo/ (git ignores it).
if [ ! -f "$STATE/secrets.env" ]; then
  export_throwaway_secrets
  printf 'GATEKEEPER_AUTH__JWT_SECRET=%s\nGATEKEEPER_ENCRYPTION_KEY=%s\n' \
    "$GATEKEEPER_AUTH__JWT_SECRET" "$GATEKEEPER_ENCRYPTION_KEY" >"$STATE/secrets.env"
  chmod 600 "$STATE/secrets.env"
fi
set -a; source "$STATE/secrets.env"; set +a

write_config "$STATE/gatekeeper.toml" "$PORT" "$EMULATOR_PORT" "sqlite://$STATE/gatekeeper.db"
rm -f "$STATE/gatekeeper.db" "$STATE"/gatekeeper.db-*

log "starting gatekeeper on http://127.0.0.1:$PORT"
start_api "$BIN" "$STATE/gatekeeper.toml" "$PORT" "$STATE/gatekeeper.log"

ALICE=$("$BIN" --config "$STATE/gatekeeper.toml" token --sub alice --name "Alice Requester" --groups engineers --ttl 12h)
BOB=$("$BIN" --config "$STATE/gatekeeper.toml" token --sub bob --name "Bob Approver" --groups prod-approvers,qa-approvers --ttl 12h)
DEV_ID=$(grep '"environment": "dev"' "$STATE/fleet.jsonl" | grep '"platform": "linux"' | head -n1 | sed 's/.*"id": "\([^"]*\)".*/\1/')
PROD_ID=$(grep '"name": "prod-ledger-db"' "$STATE/fleet.jsonl" | head -n1 | sed 's/.*"id": "\([^"]*\)".*/\1/')

cat <<TXT

Gatekeeper is running at http://127.0.0.1:$PORT  (API: /api/v1, contract: /api/openapi.json)
Open it in a browser and pick a demo identity (Alice asks, Bob approves prod, Carol approves dev).
Logs: $STATE/gatekeeper.log. Stop: Ctrl-C.

Or with the API, in another shell (copy the whole block; python3 only pretty-prints and picks fields):

export GK=http://127.0.0.1:$PORT
export ALICE='$ALICE'   # requester (groups: engineers)
export BOB='$BOB'   # approver (groups: prod-approvers, qa-approvers)
json() { python3 -c 'import json,sys; d=json.load(sys.stdin); print(json.dumps(d, indent=2) if len(sys.argv)<2 else d[sys.argv[1]])' "\$@"; }

# 1. Search the inventory
curl -s -H "Authorization: Bearer \$ALICE" "\$GK/api/v1/instances?environment=prod&q=ledger" | json

# 2. Ask for 5 minutes on a dev instance for yourself: dev approves at once
DEV=\$(curl -s -H "Authorization: Bearer \$ALICE" -H 'Content-Type: application/json' "\$GK/api/v1/requests" \\
  -d '{"environment":"dev","instance_ids":["$DEV_ID"],"duration_minutes":5,"reason":"look at the checkout logs"}' | json id)
sleep 2; curl -s -H "Authorization: Bearer \$ALICE" "\$GK/api/v1/requests/\$DEV" | json   # "active", with expires_at

# 3. Collect the private key: it is handed out ONCE, so save it
curl -s -H "Authorization: Bearer \$ALICE" "\$GK/api/v1/requests/\$DEV/credentials" > creds.json
json private_key < creds.json > gatekeeper-demo-key && chmod 600 gatekeeper-demo-key
json instances < creds.json   # ssh_command per instance (the emulator's addresses are not reachable)

# 4. Prod needs approval: Alice asks, Bob sees it in his queue and approves (Alice cannot)
PROD=\$(curl -s -H "Authorization: Bearer \$ALICE" -H 'Content-Type: application/json' "\$GK/api/v1/requests" \\
  -d '{"environment":"prod","instance_ids":["$PROD_ID"],"duration_minutes":30,"reason":"replica lag","ticket":"OPS-42"}' | json id)
curl -s -H "Authorization: Bearer \$BOB" "\$GK/api/v1/requests?awaiting_my_decision=true" | json
curl -s -X POST -H "Authorization: Bearer \$BOB" -H 'Content-Type: application/json' "\$GK/api/v1/requests/\$PROD/approve" -d '{"comment":"ok"}' | json

# 5. End the prod access early, or wait for the dev one: the worker removes the user and the request
#    becomes "expired" (the audit trail lists every step and SSM command)
sleep 2; curl -s -X POST -H "Authorization: Bearer \$ALICE" "\$GK/api/v1/requests/\$PROD/revoke" | json
curl -s -H "Authorization: Bearer \$ALICE" "\$GK/api/v1/requests/\$DEV" | json

# More identities: set -a; source $STATE/secrets.env; set +a
#   $BIN --config $STATE/gatekeeper.toml token --sub carol --groups dev-approvers

TXT
wait "$API_PID"
