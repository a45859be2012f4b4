#!/usr/bin/env bash
# Runs Gatekeeper locally: the AWS emulator with a seeded fleet, the API with embedded SQLite and the
# browser client, and prints tokens with a copy-paste walk through the whole journey. Ctrl-C (or a
# TERM to this script) stops it. Each start begins with an empty database.
set -euo pipefail
source "$(dirname "$0")/lib.sh"
cd "$ROOT"

PORT="${GATEKEEPER_PORT:-8080}"
EMULATOR_PORT="${GATEKEEPER_EMULATOR_PORT:-4566}"
STATE="$ROOT/.demo"
mkdir -p "$STATE"

# Another demo (or anything else) on these ports would answer the health checks below and lose its
# database to this one: refuse before touching anything.
for p in "$PORT" "$EMULATOR_PORT"; do
  if ! port_is_free "$p"; then
    die "port $p is in use (another demo?). Stop it, or choose others: GATEKEEPER_PORT=… GATEKEEPER_EMULATOR_PORT=… $0"
  fi
done

ensure_rust
ensure_debs curl libpq-dev pkg-config
ensure_venv

bash "$ROOT/scripts/build-frontend.sh"
log "building gatekeeper (the first build takes about 10 minutes: the AWS SDK is large)"
# Built as the test suite builds it (same features), so running the tests afterwards rebuilds nothing.
cargo test -q -p gatekeeper --no-run --locked
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
Open it in a browser and pick a demo identity (Alice asks; Bob approves prod and qa; Carol approves dev).
Logs: $STATE/gatekeeper.log. Stop: Ctrl-C here. The database starts empty at every start.

Or with the API, in another shell (copy the whole block; python3 only pretty-prints and picks fields):

export GK=http://127.0.0.1:$PORT
export ALICE='$ALICE'   # requester (groups: engineers)
export BOB='$BOB'   # approver (groups: prod-approvers, qa-approvers)
json() { python3 -c 'import json,sys; d=json.load(sys.stdin); v=d if len(sys.argv)<2 else d[sys.argv[1]]; print(v if isinstance(v,str) else json.dumps(v, indent=2))' "\$@"; }
# Waits until request \$1 (as \$2) reaches one of the statuses \$3 (space-separated), then prints it.
wait_for() { for _ in \$(seq 60); do s=\$(curl -s -H "Authorization: Bearer \$2" "\$GK/api/v1/requests/\$1" | json status); case " \$3 " in *" \$s "*) echo "\$1: \$s"; return 0;; esac; sleep 0.5; done; echo "\$1: still \$s" >&2; return 1; }

# 1. Search the inventory
curl -s -H "Authorization: Bearer \$ALICE" "\$GK/api/v1/instances?environment=prod&q=ledger" | json

# 2. Ask for 5 minutes on a dev instance for yourself: dev approves at once
DEV=\$(curl -s -H "Authorization: Bearer \$ALICE" -H 'Content-Type: application/json' "\$GK/api/v1/requests" \\
  -d '{"environment":"dev","instance_ids":["$DEV_ID"],"duration_minutes":5,"reason":"look at the checkout logs"}' | json id)
wait_for "\$DEV" "\$ALICE" "active failed"
curl -s -H "Authorization: Bearer \$ALICE" "\$GK/api/v1/requests/\$DEV" | json   # with expires_at and the audit trail

# 3. Collect the private key: it is handed out ONCE. It goes where the API suggests (key_file), mode 600,
#    and nothing else keeps it.
umask 077; mkdir -p ~/.ssh
curl -s -H "Authorization: Bearer \$ALICE" "\$GK/api/v1/requests/\$DEV/credentials" | python3 -c '
import json, os, sys
c = json.load(sys.stdin)
path = os.path.expanduser(c["key_file"])
with open(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600), "w") as f:
    f.write(c["private_key"])
print("key saved to", path)
print(json.dumps(c["instances"], indent=2))   # the ssh command per instance (emulated addresses: not reachable)'

# 4. Prod needs approval: Alice asks, Bob sees it in his queue and approves (Alice cannot)
PROD=\$(curl -s -H "Authorization: Bearer \$ALICE" -H 'Content-Type: application/json' "\$GK/api/v1/requests" \\
  -d '{"environment":"prod","instance_ids":["$PROD_ID"],"duration_minutes":30,"reason":"replica lag","ticket":"OPS-42"}' | json id)
curl -s -H "Authorization: Bearer \$BOB" "\$GK/api/v1/requests?awaiting_my_decision=true" | json
curl -s -X POST -H "Authorization: Bearer \$BOB" -H 'Content-Type: application/json' "\$GK/api/v1/requests/\$PROD/approve" -d '{"comment":"ok"}' | json status
wait_for "\$PROD" "\$ALICE" "active failed"

# 5. End the prod access early: the worker removes the user and the request becomes "revoked" (the audit
#    trail lists every step and SSM command). The dev access ends by itself after its 5 minutes: "expired".
curl -s -X POST -H "Authorization: Bearer \$ALICE" "\$GK/api/v1/requests/\$PROD/revoke" | json status
wait_for "\$PROD" "\$ALICE" "revoked"
curl -s -H "Authorization: Bearer \$ALICE" "\$GK/api/v1/requests/\$PROD" | json events

# More identities (the binary is $BIN):
#   set -a; source $STATE/secrets.env; set +a
#   $BIN --config $STATE/gatekeeper.toml token --sub carol --groups dev-approvers,engineers

TXT
wait "$API_PID"
