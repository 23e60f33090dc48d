#!/usr/bin/env bash
# Fetch the tursodb binary from the npm package that ships it, into the tool cache.
# Prints the binary's path on the last line. Idempotent; a second run is instant.
set -euo pipefail
VERSION="${TURSODB_VERSION:-0.8.0-pre.4}"
CACHE="${EDGE_POP_CACHE:-$HOME/.cache/edge-pop}"
DEST="$CACHE/tursodb-$VERSION"
if [[ ! -x "$DEST/tursodb" ]]; then
  tmp="$(mktemp -d)"
  trap 'rm -rf "$tmp"' EXIT
  "$(dirname "$0")/npm-unpack.sh" "@tursodatabase/cli-linux-x64-gnu@$VERSION" "$tmp"
  mkdir -p "$DEST"
  install -m 0755 "$tmp/package/tursodb" "$DEST/tursodb.partial"
  mv "$DEST/tursodb.partial" "$DEST/tursodb"
  echo "ensure-tursodb: installed tursodb $VERSION into $DEST" >&2
fi
echo "$DEST/tursodb"
