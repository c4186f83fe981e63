#!/usr/bin/env bash
# Regenerates tools/*/go.mod and go.sum from hack/versions.env.
# k8s.io/kubernetes points its staging modules at local paths; we replace each of
# them with the published v0.X.Y of the same release, generated from its own go.mod.
set -euo pipefail
cd "$(dirname "$0")/.."
source hack/versions.env
export GOFLAGS=-mod=mod GOTOOLCHAIN=local

staging_version="v0.${K8S_VERSION#v1.}"
kmod=$(go mod download -json "k8s.io/kubernetes@${K8S_VERSION}" | python3 -c 'import json,sys; print(json.load(sys.stdin)["GoMod"])')

gen() { # dir module-path tools...
  local dir=$1 mod=$2; shift 2
  rm -f "$dir/go.mod" "$dir/go.sum"
  (cd "$dir" && go mod init "$mod" >/dev/null 2>&1)
}

# k8s: kube-apiserver, kube-controller-manager, kube-scheduler, kubectl, and the real node's kubelet, kube-proxy
gen tools/k8s paramedic.dev/tools/k8s
{
  echo
  echo "replace ("
  sed -n 's#^\s*\(k8s.io/[a-z0-9-]*\) => ./staging/src/.*#\t\1 => \1 '"${staging_version}"'#p' "$kmod"
  echo ")"
} >> tools/k8s/go.mod
(cd tools/k8s && go get -tool \
   "k8s.io/kubernetes/cmd/kube-apiserver@${K8S_VERSION}" \
   "k8s.io/kubernetes/cmd/kube-controller-manager@${K8S_VERSION}" \
   "k8s.io/kubernetes/cmd/kube-scheduler@${K8S_VERSION}" \
   "k8s.io/kubernetes/cmd/kubectl@${K8S_VERSION}" \
   "k8s.io/kubernetes/cmd/kubelet@${K8S_VERSION}" \
   "k8s.io/kubernetes/cmd/kube-proxy@${K8S_VERSION}" && go mod tidy)

gen tools/etcd paramedic.dev/tools/etcd
(cd tools/etcd && go get -tool "go.etcd.io/etcd/server/v3@${ETCD_VERSION}" && go mod tidy)

gen tools/kwok paramedic.dev/tools/kwok
(cd tools/kwok && go get -tool "sigs.k8s.io/kwok/cmd/kwok@${KWOK_VERSION}" && go mod tidy)

gen tools/helm paramedic.dev/tools/helm
(cd tools/helm && go get -tool "helm.sh/helm/v3/cmd/helm@${HELM_VERSION}" && go mod tidy)
# containerd 2.x for the real node: the daemon, ctr and the runc shim
gen tools/containerd paramedic.dev/tools/containerd
(cd tools/containerd && go get -tool \
   "github.com/containerd/containerd/v2/cmd/containerd@${CONTAINERD_VERSION}" \
   "github.com/containerd/containerd/v2/cmd/ctr@${CONTAINERD_VERSION}" \
   "github.com/containerd/containerd/v2/cmd/containerd-shim-runc-v2@${CONTAINERD_VERSION}" && go mod tidy)

echo "tools go.mod files regenerated"
