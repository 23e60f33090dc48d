#!/usr/bin/env bash
# Build (or find cached) the Go and Rust client drivers of tests/clients/: the shared
# client scenario run by github.com/tursodatabase/libsql-client-go and by the libsql
# crate (remote), each pinned by its lock file (go.sum, Cargo.lock).
#
#   tools/ensure-clients.sh   -> last stdout line: the directory holding go-client and rust-client
#
# Binaries land in ${EDGE_POP_CACHE:-$HOME/.cache/edge-pop}/clients-<stamp>/, the stamp
# being a hash of the drivers' sources and lock files and of this script, so a second run
# only hashes a few files. Cargo's build folder is kept beside it (clients-cargo-target)
# so a changed driver rebuilds only itself. Needs go and cargo; their modules and crates
# come from the Go module proxy and crates.io. Everything but the last line goes to stderr.
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
clients="$root/tests/clients"
cache_root="${EDGE_POP_CACHE:-$HOME/.cache/edge-pop}"

log() { printf 'ensure-clients.sh: %s\n' "$*" >&2; }

stamp="$(cat "${BASH_SOURCE[0]}" \
    "$clients/go/go.mod" "$clients/go/go.sum" "$clients/go/main.go" \
    "$clients/rust/Cargo.toml" "$clients/rust/Cargo.lock" "$clients/rust/src/main.rs" \
    | sha256sum | cut -c1-16)"
out="$cache_root/clients-$stamp"
if [[ -x "$out/go-client" && -x "$out/rust-client" ]]; then
    echo "$out"
    exit 0
fi

command -v go >/dev/null || { log "ERROR: go is required (the Go client driver)"; exit 1; }
command -v cargo >/dev/null || { log "ERROR: cargo is required (the Rust client driver)"; exit 1; }
building="$(mktemp -d "$cache_root/clients-building.XXXXXX")"
trap 'rm -rf "$building"' EXIT

log "building the Go client driver (libsql-client-go)"
(cd "$clients/go" && go build -trimpath -o "$building/go-client" .) >&2

log "building the Rust client driver (libsql crate, remote)"
target="$cache_root/clients-cargo-target"
(cd "$clients/rust" && CARGO_TARGET_DIR="$target" cargo build --locked --quiet) >&2
cp "$target/debug/rust-client" "$building/rust-client"

rm -rf "$out"
mv "$building" "$out"
trap - EXIT
# Drivers of older sources are never used again.
find "$cache_root" -maxdepth 1 -name 'clients-????????????????' ! -path "$out" -exec rm -rf {} +
log "drivers in $out"
echo "$out"
