#!/usr/bin/env bash
# Builds the browser client into frontend/dist: the wasm32 target and the wasm-bindgen CLI matching
# Cargo.lock are installed when missing (the CLI under ~/.cache/gatekeeper/tools).
set -euo pipefail
source "$(dirname "$0")/lib.sh"
cd "$ROOT"

ensure_rust
if ! rustup target list --installed 2>/dev/null | grep -qx wasm32-unknown-unknown; then
  log "installing the wasm32-unknown-unknown target"
  rustup target add wasm32-unknown-unknown
fi
version=$(awk '/^name = "wasm-bindgen"$/ { getline; gsub(/"/, "", $3); print $3; exit }' Cargo.lock)
[ -n "$version" ] || die "no wasm-bindgen in Cargo.lock"
tools="${GATEKEEPER_TOOLS:-$HOME/.cache/gatekeeper/tools}"
if ! "$tools/bin/wasm-bindgen" --version 2>/dev/null | grep -q " $version\$"; then
  log "installing wasm-bindgen-cli $version (a few minutes, once)"
  # Without --locked: the CLI's own lockfile pins a crate version the registry no longer serves.
  cargo install -q wasm-bindgen-cli --version "$version" --root "$tools"
fi

log "building the browser client"
cargo build -q -p gatekeeper-frontend --target wasm32-unknown-unknown --release --locked
target="${CARGO_TARGET_DIR:-$ROOT/target}"
out="$ROOT/frontend/dist"
rm -rf "$out"
mkdir -p "$out"
"$tools/bin/wasm-bindgen" --target web --no-typescript --out-dir "$out" --out-name gatekeeper_frontend \
  "$target/wasm32-unknown-unknown/release/gatekeeper-frontend.wasm"
cp "$ROOT"/frontend/static/* "$out/"
log "browser client in $out ($(du -sh "$out" | cut -f1))"
