# Shared helpers for the scripts. Source it; do not run it.
# Everything a fresh machine lacks is installed here, so the scripts work on a new machine.

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
VENV="${GATEKEEPER_VENV:-$ROOT/.venv}"

if [ -t 2 ]; then
  log() { printf '\033[1m==> %s\033[0m\n' "$*" >&2; }
else
  log() { printf '==> %s\n' "$*" >&2; }
fi
die() { printf 'error: %s\n' "$*" >&2; exit 1; }

# Debian packages, installed only when missing (needs root or sudo).
ensure_debs() {
  local missing=()
  for pkg in "$@"; do
    dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed" || missing+=("$pkg")
  done
  [ ${#missing[@]} -eq 0 ] && return 0
  log "installing Debian packages: ${missing[*]}"
  local sudo=""
  [ "$(id -u)" -eq 0 ] || sudo="sudo"
  $sudo apt-get update -qq >/dev/null
  # Never let a package start its service on this machine (openssh-server would start an sshd on
  # port 22): the tests start their own, inside a sandbox.
  local policy=/usr/sbin/policy-rc.d added=""
  if [ ! -e "$policy" ]; then
    printf '#!/bin/sh\nexit 101\n' | $sudo tee "$policy" >/dev/null && $sudo chmod +x "$policy" && added=1
  fi
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
  [ -z "$added" ] || $sudo rm -f "$policy"
}

ensure_rust() {
  command -v cargo >/dev/null || die "cargo is not installed (Rust $(grep rust-version "$ROOT/Cargo.toml" | cut -d'"' -f2) or newer is needed)"
}

# The AWS emulator's virtualenv (moto server, pinned in tests/emulator/requirements.txt).
ensure_venv() {
  local stamp="$VENV/.requirements"
  if [ -x "$VENV/bin/python" ] && cmp -s "$ROOT/tests/emulator/requirements.txt" "$stamp"; then
    return 0
  fi
  command -v python3 >/dev/null || ensure_debs python3 python3-venv
  log "creating the emulator's virtualenv in $VENV"
  python3 -m venv "$VENV" 2>/dev/null || { ensure_debs python3-venv; python3 -m venv "$VENV"; }
  "$VENV/bin/pip" install -q --disable-pip-version-check -r "$ROOT/tests/emulator/requirements.txt"
  cp "$ROOT/tests/emulator/requirements.txt" "$stamp"
}

# Starts the emulator on $1 (port) in the background; sets EMULATOR_PID.
start_emulator() {
  local port="$1" logfile="$2"
  "$VENV/bin/python" "$ROOT/tests/emulator/server.py" --port "$port" >"$logfile" 2>&1 &
  EMULATOR_PID=$!
  for _ in $(seq 1 100); do
    if curl -fsS "http://127.0.0.1:$port/_gatekeeper/health" >/dev/null 2>&1; then return 0; fi
    kill -0 "$EMULATOR_PID" 2>/dev/null || die "the AWS emulator exited; see $logfile"
    sleep 0.2
  done
  die "the AWS emulator did not answer on port $port; see $logfile"
}

# PostgreSQL at 127.0.0.1:5432 (user postgres, trust auth). Started if installed but stopped.
ensure_postgres() {
  ensure_debs postgresql-client
  if pg_isready -q -h 127.0.0.1 -p 5432; then return 0; fi
  if command -v pg_ctlcluster >/dev/null && [ -d /etc/postgresql ]; then
    log "starting PostgreSQL"
    pg_ctlcluster --skip-systemctl-redirect "$(ls /etc/postgresql | head -n1)" main start || true
    for _ in $(seq 1 30); do pg_isready -q -h 127.0.0.1 -p 5432 && return 0; sleep 1; done
  fi
  die "PostgreSQL is not reachable at 127.0.0.1:5432 (user postgres, trust auth); the suite runs on both databases"
}

# Whether nothing listens on 127.0.0.1:$1.
port_is_free() {
  python3 -c 'import socket,sys; s=socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1); s.bind(("127.0.0.1", int(sys.argv[1]))); s.close()' "$1" 2>/dev/null
}

free_port() {
  python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1]); s.close()'
}

# Writes the configuration of a local stack (emulator regions, demo identities, dev/qa/prod policies)
# to $1: API port $2, emulator port $3, database URL $4. The browser client is served from
# frontend/dist. Secrets come from the environment (GATEKEEPER_AUTH__JWT_SECRET, ..._ENCRYPTION_KEY).
write_config() {
  local file="$1" port="$2" emulator_port="$3" database_url="$4"
  cat >"$file" <<TOML
listen = "127.0.0.1:$port"
database_url = "$database_url"
static_dir = "$ROOT/frontend/dist"

[aws]
regions = ["us-east-1"]
endpoint_url = "http://127.0.0.1:$emulator_port"
max_attempts = 1

[inventory]
sync_interval_seconds = 60

# Local use only: the sign-in page offers these identities with ready tokens.
[[auth.demo_identities]]
sub = "alice"
name = "Alice Requester"
groups = ["engineers"]

[[auth.demo_identities]]
sub = "bob"
name = "Bob Approver"
groups = ["prod-approvers", "qa-approvers"]

[[auth.demo_identities]]
sub = "carol"
name = "Carol Dev Lead"
groups = ["dev-approvers", "engineers"]

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
}

# Starts `$1 --config $2 serve` in the background (log $4) and waits until the API on port $3 has
# synced the inventory; sets API_PID.
start_api() {
  local bin="$1" config="$2" port="$3" logfile="$4"
  "$bin" --config "$config" serve >"$logfile" 2>&1 &
  API_PID=$!
  for _ in $(seq 1 100); do
    if curl -fsS "http://127.0.0.1:$port/api/v1/health" 2>/dev/null | grep -q '"instances":[1-9]'; then return 0; fi
    kill -0 "$API_PID" 2>/dev/null || { cat "$logfile" >&2; die "gatekeeper exited"; }
    sleep 0.3
  done
  die "gatekeeper did not become ready on port $port; see $logfile"
}

# Random secrets for a throwaway local stack, exported for the API and the token subcommand.
export_throwaway_secrets() {
  export GATEKEEPER_AUTH__JWT_SECRET GATEKEEPER_ENCRYPTION_KEY
  GATEKEEPER_AUTH__JWT_SECRET=$(head -c 48 /dev/urandom | base64 | tr -d '\n/+=' | head -c 48)
  GATEKEEPER_ENCRYPTION_KEY=$(head -c 32 /dev/urandom | base64 | tr -d '\n')
}
