#!/usr/bin/env bash
# Run uv, installing it from PyPI first if this machine has none (a fresh clone needs
# nothing but Python 3.11+). Usage: tools/uv.sh ARGS...
set -euo pipefail
UV_VERSION="0.13.9"
if command -v uv >/dev/null 2>&1; then
  exec uv "$@"
fi
if ! python3 -m uv --version >/dev/null 2>&1; then
  echo "tools/uv.sh: installing uv $UV_VERSION from PyPI" >&2
  python3 -m pip install --quiet --disable-pip-version-check --root-user-action=ignore "uv==$UV_VERSION" >&2
fi
exec python3 -m uv "$@"
