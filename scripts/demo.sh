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

log "building gatekeeper"
cargo build -p gatekeeper --locked
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
  {
    echo "GATEKEEPER_AUTH__JWT_SECRET=$(head -c 48 /dev/urandom | base64 | tr -d '\n/+=' | head -c 48)"
    echo "GATEKEEPER_ENCRYPTION_KEY=$(head -c 32 /dev/urandom | base64 | tr -d '\n')"
  } >"$STATE/secrets.env"
  chmod 600 "$STATE/secrets.env"
fi
set -a; source "$STATE/secrets.env"; set +a

cat >"$STATE/gatekeeper.toml" <<TOML
listen = "127.0.0.1:$PORT"
database_url = "sqlite://$STATE/gatekeeper.db"
static_dir = "$ROOT/frontend/dist"

[aws]
regions = ["us-east-1"]
endpoint_url = "http://127.0.0.1:$EMULATOR_PORT"
max_attempts = 1

[inventory]
sync_interval_seconds = 60

[environments.dev]
auto_approve_max_minutes = 240
max_minutes = 480
approver_group = "dev-approvers"

[environments.qa]
auto_approve_max_minutes = 120
max_minutes = 480
approver_group = "qa-approvers"

[environments.prod]
auto_approve_max_minutes = 0
max_minutes = 240
approver_group = "prod-approvers"
TOML
rm -f "$STATE/gatekeeper.db" "$STATE"/gatekeeper.db-*

log "starting gatekeeper on http://127.0.0.1:$PORT"
"$BIN" --config "$STATE/gatekeeper.toml" serve >"$STATE/gatekeeper.log" 2>&1 &
API_PID=$!
for _ in $(seq 1 100); do
  if curl -fsS "http://127.0.0.1:$PORT/api/v1/health" 2>/dev/null | grep -q '"instances":[1-9]'; then break; fi
  kill -0 "$API_PID" 2>/dev/null || { cat "$STATE/gatekeeper.log" >&2; die "gatekeeper exited"; }
  sleep 0.3
done

ALICE=$("$BIN" --config "$STATE/gatekeeper.toml" token --sub alice --name "Alice Requester" --groups engineers --ttl 12h)
BOB=$("$BIN" --config "$STATE/gatekeeper.toml" token --sub bob --name "Bob Approver" --groups prod-approvers,qa-approvers --ttl 12h)
DEV_ID=$(grep '"environment": "dev"' "$STATE/fleet.jsonl" | grep '"platform": "linux"' | head -n1 | sed 's/.*"id": "\([^"]*\)".*/\1/')
PROD_ID=$(grep '"name": "prod-ledger-db"' "$STATE/fleet.jsonl" | head -n1 | sed 's/.*"id": "\([^"]*\)".*/\1/')

cat <<TXT

Gatekeeper is running at http://127.0.0.1:$PORT  (API: /api/v1, contract: /api/openapi.json)
There is no browser UI yet: use the API. Logs: $STATE/gatekeeper.log. Stop: Ctrl-C.

In another shell (copy the whole block; python3 only pretty-prints and picks fields):

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
