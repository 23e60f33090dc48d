#!/usr/bin/env bash
# Build the edge-pop image (the Dockerfile at the root) with buildah, FROM a Debian base
# made here by mmdebstrap: this machine can pull no image, not even python:3.11-slim.
#
#   tools/image/build.sh         -> last stdout line: the image, e.g. localhost/edge-pop:0.1.0
#
# The base (Debian bookworm minbase + python3, python3-venv, ca-certificates) is built once
# into ${EDGE_POP_CACHE:-$HOME/.cache/edge-pop}/image-base-<suite>-<rev>/base.tar (about
# 5 minutes) and imported into containers-storage as localhost/edge-pop-base:<suite>-<rev>.
# Everything but the final line goes to stderr.
#
# Environment:
#   EDGE_POP_CACHE         cache root (default $HOME/.cache/edge-pop)
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
root="$(cd "$here/../.." && pwd)"
cache_root="${EDGE_POP_CACHE:-$HOME/.cache/edge-pop}"

log() { printf 'image/build.sh: %s\n' "$*" >&2; }

"$root/tools/ensure-apt.sh" mmdebstrap=mmdebstrap buildah=buildah podman=podman runc=runc

suite=bookworm
packages=python3,python3-venv,ca-certificates
# Bump when the package list or the mmdebstrap command changes.
base_rev=1
base_ref="localhost/edge-pop-base:${suite}-${base_rev}"

if ! buildah inspect --type image "$base_ref" >/dev/null 2>&1; then
    base_tar="$cache_root/image-base-${suite}-${base_rev}/base.tar"
    if [[ ! -s "$base_tar" ]]; then
        mkdir -p "$(dirname "$base_tar")"
        log "building the Debian $suite base with mmdebstrap (about 5 minutes, once)"
        mmdebstrap --quiet --format=tar --variant=minbase --include="$packages" "$suite" "$base_tar.part" >&2
        mv "$base_tar.part" "$base_tar"
    fi
    log "importing $base_tar as $base_ref"
    podman import --quiet "$base_tar" "$base_ref" >&2
fi

version="$(sed -n 's/^__version__ = "\(.*\)"/\1/p' "$root/pop/__init__.py")"
image="localhost/edge-pop:${version}"
# --layers: a step whose inputs did not change is taken from the cache, so an unchanged
# tree builds in seconds and a change to pop/ rebuilds only from its COPY on.
log "building $image FROM $base_ref"
# The host's CA bundle is lent to the build: this machine reaches PyPI through a proxy
# whose CA only the host trusts.
host_ca=/etc/ssl/certs/ca-certificates.crt
buildah bud --quiet --isolation chroot --layers \
    --volume "$host_ca:/run/host-ca.crt:ro" \
    --build-arg PIP_CERT=/run/host-ca.crt --build-arg SSL_CERT_FILE=/run/host-ca.crt \
    --build-arg "BASE_IMAGE=$base_ref" --tag "$image" --file "$root/Dockerfile" "$root" >&2
echo "$image"
