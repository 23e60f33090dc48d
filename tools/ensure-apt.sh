#!/usr/bin/env bash
# Install Debian packages whose commands are missing. Usage: tools/ensure-apt.sh CMD=PKG...
# e.g. tools/ensure-apt.sh redis-server=redis-server wrk=wrk
set -euo pipefail
missing=()
for pair in "$@"; do
  command -v "${pair%%=*}" >/dev/null 2>&1 || missing+=("${pair#*=}")
done
if ((${#missing[@]})); then
  echo "ensure-apt: installing ${missing[*]}" >&2
  SUDO=""; [[ $(id -u) -ne 0 ]] && SUDO="sudo"
  $SUDO apt-get update -qq >&2
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq "${missing[@]}" >&2
fi
