#!/usr/bin/env bash
# Render every docs/*.dot to the PNG beside it with Graphviz (Debian's graphviz, which
# scripts/test installs). tests/test_diagrams.py renders them the same way and fails when
# a committed picture differs from its source's. Usage: tools/render-diagrams.sh
set -euo pipefail
cd "$(dirname "$0")/.."
for source in docs/*.dot; do
  dot -Tpng -Gdpi=110 "$source" -o "${source%.dot}.png"
  echo "rendered ${source%.dot}.png"
done
