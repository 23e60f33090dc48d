#!/usr/bin/env bash
# Build (or find cached) kube-apiserver, kube-controller-manager, kube-proxy, kube-scheduler,
# kubelet, kubectl, etcd, etcdctl and CoreDNS for tests.
#
#   tools/kube/ensure.sh            -> last stdout line: the binary directory
#   KUBE_BIN=$(tools/kube/ensure.sh | tail -n1)
#
# Versions come from the build modules beside this script:
#   apiserver/go.mod  requires k8s.io/kubernetes vX (staging modules replaced
#                     with the published v0.X.Y modules)
#   etcd/go.mod       requires go.etcd.io/etcd/{server,etcdctl}/v3
#   coredns/go.mod    requires github.com/coredns/coredns (main.go: the plugins built in)
# Binaries land in ${EDGE_POP_CACHE:-$HOME/.cache/edge-pop}/kube-<k8s version>/.
# A stamp (hash of both go.mod/go.sum pairs and of build_rev below) decides
# whether the cache is current, so a second run only hashes four files.
#
# Environment:
#   EDGE_POP_CACHE    cache root (default $HOME/.cache/edge-pop)
#   KUBE_ENSURE_FORCE=1  rebuild even if the cache looks current
# Everything but the final directory line goes to stderr.
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
cache_root="${EDGE_POP_CACHE:-$HOME/.cache/edge-pop}"

log() { printf 'ensure.sh: %s\n' "$*" >&2; }
die() { log "ERROR: $*"; exit 1; }

k8s_version="$(awk '$1 == "require" && $2 == "k8s.io/kubernetes" {print $3; exit}
                     $1 == "k8s.io/kubernetes" && $2 ~ /^v/ {print $2; exit}' "$here/apiserver/go.mod")"
etcd_version="$(awk '$1 == "require" && $2 == "go.etcd.io/etcd/server/v3" {print $3; exit}
                      $1 == "go.etcd.io/etcd/server/v3" && $2 ~ /^v/ {print $2; exit}' "$here/etcd/go.mod")"
[[ -n "$k8s_version" ]] || die "cannot read k8s.io/kubernetes version from apiserver/go.mod"
[[ -n "$etcd_version" ]] || die "cannot read go.etcd.io/etcd/server/v3 version from etcd/go.mod"

out="$cache_root/kube-${k8s_version#v}"
binaries=(kube-apiserver kube-controller-manager kube-proxy kube-scheduler kubelet kubectl etcd etcdctl)
# Bump when the build commands or flags below change, to invalidate caches.
build_rev=2

stamp_of() {
    {
        echo "build_rev=$build_rev"
        cat "$here/apiserver/go.mod" "$here/apiserver/go.sum" "$here/etcd/go.mod" "$here/etcd/go.sum"
    } | sha256sum | cut -d' ' -f1
}
want_stamp="$(stamp_of)"

is_current() {
    [[ "${KUBE_ENSURE_FORCE:-0}" != 1 ]] || return 1
    [[ -f "$out/.stamp" && "$(cat "$out/.stamp")" == "$want_stamp" ]] || return 1
    local b
    for b in "${binaries[@]}"; do [[ -x "$out/$b" ]] || return 1; done
}

# CoreDNS (the cluster's DNS) has a stamp of its own: changing it rebuilds only it.
coredns_rev=1
coredns_stamp_of() {
    {
        echo "coredns_rev=$coredns_rev"
        cat "$here/coredns/go.mod" "$here/coredns/go.sum" "$here/coredns/main.go"
    } | sha256sum | cut -d' ' -f1
}
want_coredns_stamp="$(coredns_stamp_of)"

coredns_is_current() {
    [[ "${KUBE_ENSURE_FORCE:-0}" != 1 ]] || return 1
    [[ -f "$out/.stamp-coredns" && "$(cat "$out/.stamp-coredns")" == "$want_coredns_stamp" ]] || return 1
    [[ -x "$out/coredns" ]]
}

if is_current && coredns_is_current; then
    echo "$out"
    exit 0
fi

# ---- build path -------------------------------------------------------------

apt_updated=0
apt_install() {
    [[ "$(id -u)" == 0 ]] || die "need root to apt-get install $*; install them by hand"
    if [[ $apt_updated == 0 ]]; then
        log "apt-get update"
        DEBIAN_FRONTEND=noninteractive apt-get update -qq >&2
        apt_updated=1
    fi
    log "apt-get install $*"
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "$@" >&2
}

# Runtime helpers control_plane.py uses; cheap to check every build.
command -v openssl >/dev/null || apt_install openssl ca-certificates
command -v flock >/dev/null || apt_install util-linux
if ! command -v go >/dev/null; then
    # Debian's Go is older than the modules need; with GOTOOLCHAIN=auto the go
    # command then fetches the toolchain go.mod asks for from the module proxy.
    apt_install golang-go ca-certificates git
fi

mkdir -p "$cache_root"
exec 9>"$cache_root/.kube-build.lock"
log "waiting for build lock $cache_root/.kube-build.lock"
flock 9
if is_current && coredns_is_current; then # another process built it while we waited
    echo "$out"
    exit 0
fi

log "$(go version)"

tmp="$(mktemp -d "$cache_root/.kube-build.XXXXXX")"
trap 'rm -rf "$tmp"' EXIT

# Keep a 2-core / 24 GiB machine usable: default parallelism (= cores), no cgo,
# stripped binaries, no VCS stamping.
export CGO_ENABLED=0
export GOFLAGS="-trimpath -buildvcs=false -mod=readonly"
export GOTOOLCHAIN="${GOTOOLCHAIN:-auto}"

minor="${k8s_version#v1.}"
minor="${minor%%.*}"
build_date="$(date -u +%Y-%m-%dT%H:%M:%SZ)"
vpkg_flags=""
for pkg in k8s.io/component-base/version k8s.io/client-go/pkg/version; do
    vpkg_flags+=" -X $pkg.gitVersion=$k8s_version"
    vpkg_flags+=" -X $pkg.gitMajor=1 -X $pkg.gitMinor=$minor"
    vpkg_flags+=" -X $pkg.gitTreeState=clean -X $pkg.buildDate=$build_date"
done

if ! is_current; then
    log "building Kubernetes $k8s_version and etcd/etcdctl $etcd_version into $out"
    start=$SECONDS
    (
        cd "$here/apiserver"
        for cmd in kube-apiserver kube-controller-manager kube-proxy kube-scheduler kubelet kubectl; do
            log "go build k8s.io/kubernetes/cmd/$cmd"
            go build -ldflags="-s -w$vpkg_flags" -o "$tmp/$cmd" "k8s.io/kubernetes/cmd/$cmd"
        done
    )
    (
        cd "$here/etcd"
        log "go build go.etcd.io/etcd/server/v3 (etcd)"
        go build -ldflags="-s -w" -o "$tmp/etcd" go.etcd.io/etcd/server/v3
        log "go build go.etcd.io/etcd/etcdctl/v3"
        go build -ldflags="-s -w" -o "$tmp/etcdctl" go.etcd.io/etcd/etcdctl/v3
    )
    log "built in $((SECONDS - start))s"

    "$tmp/kube-apiserver" --version >&2
    "$tmp/etcd" --version >&2

    mkdir -p "$out"
    for b in "${binaries[@]}"; do
        mv -f "$tmp/$b" "$out/$b"
    done
    echo "$want_stamp" >"$out/.stamp"
fi

if ! coredns_is_current; then
    start=$SECONDS
    log "go build CoreDNS (tools/kube/coredns) into $out"
    (cd "$here/coredns" && go build -ldflags="-s -w" -o "$tmp/coredns" .)
    log "CoreDNS built in $((SECONDS - start))s"
    "$tmp/coredns" -version >&2
    mkdir -p "$out"
    mv -f "$tmp/coredns" "$out/coredns"
    echo "$want_coredns_stamp" >"$out/.stamp-coredns"
fi
echo "$out"
