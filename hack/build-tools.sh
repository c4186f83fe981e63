#!/usr/bin/env bash
# Builds the local control plane's and the real node's binaries from their Go modules (tools/*) and
# caches them outside the repo, keyed by the tools' go.mod/go.sum, so a fresh clone
# on the same machine reuses them. Links them into .paramedic/bin.
#   hack/build-tools.sh            build what is missing, print the bin dir
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
source "$root/hack/versions.env"
export GOTOOLCHAIN=local GOFLAGS=-mod=mod CGO_ENABLED=0

key=$(cat "$root/hack/versions.env" "$root"/tools/*/go.mod "$root"/tools/*/go.sum "$root/hack/build-tools.sh" | sha256sum | cut -c1-12)
cache="${PARAMEDIC_CACHE:-$HOME/.cache/paramedic}/tools-${K8S_VERSION}-${key}"
bin="$cache/bin"
mkdir -p "$bin" "$root/.paramedic/bin"

k8s_minor=${K8S_VERSION#v1.}; k8s_minor=${k8s_minor%%.*}
build() { # module-dir ldflags tags packages binaries...
  local dir=$1 ldflags=$2 tags=$3 pkgs=$4; shift 4
  local missing=0
  for b in "$@"; do [ -x "$bin/$b" ] || missing=1; done
  [ $missing = 0 ] && return 0
  echo "building $* (cold builds take several minutes)..." >&2
  local tmp; tmp=$(mktemp -d "$cache/build.XXXX")
  # shellcheck disable=SC2086 # pkgs is a word list
  (cd "$root/tools/$dir" && go build -trimpath -tags "$tags" -ldflags "-s -w $ldflags" -o "$tmp/" $pkgs)
  # a module path ending in /vN builds a binary named after the element before it
  [ "$dir" = etcd ] && mv "$tmp/server" "$tmp/etcd"
  for b in "$@"; do mv "$tmp/$b" "$bin/$b"; done
  rm -rf "$tmp"
}

kv="-X k8s.io/component-base/version.gitVersion=${K8S_VERSION} -X k8s.io/component-base/version.gitMajor=1 -X k8s.io/component-base/version.gitMinor=${k8s_minor} -X k8s.io/component-base/version.gitTreeState=clean -X k8s.io/client-go/pkg/version.gitVersion=${K8S_VERSION} -X k8s.io/client-go/pkg/version.gitMajor=1 -X k8s.io/client-go/pkg/version.gitMinor=${k8s_minor}"
build etcd "" "" tool etcd
build kwok "-X sigs.k8s.io/kwok/pkg/consts.Version=${KWOK_VERSION}" "" tool kwok
build helm "-X helm.sh/helm/v3/internal/version.version=${HELM_VERSION} -X helm.sh/helm/v3/pkg/chartutil.k8sVersionMajor=1 -X helm.sh/helm/v3/pkg/chartutil.k8sVersionMinor=${k8s_minor}" "" tool helm
build k8s "$kv" "" tool kube-apiserver kube-controller-manager kube-scheduler kubectl kubelet kube-proxy
# The real node's runtime: static containerd 2 (no btrfs, no docs), and its shim without gRPC.
cm=github.com/containerd/containerd/v2
cv="-X $cm/version.Version=${CONTAINERD_VERSION} -X $cm/version.Revision=gomod -X $cm/version.Package=$cm"
build containerd "$cv" "urfave_cli_no_docs no_btrfs osusergo netgo" "$cm/cmd/containerd $cm/cmd/ctr" containerd ctr
build containerd "$cv" "urfave_cli_no_docs no_grpc osusergo netgo" "$cm/cmd/containerd-shim-runc-v2" containerd-shim-runc-v2

for b in etcd kwok helm kube-apiserver kube-controller-manager kube-scheduler kubectl kubelet kube-proxy \
         containerd ctr containerd-shim-runc-v2; do
  ln -sfn "$bin/$b" "$root/.paramedic/bin/$b"
done
echo "$bin"
