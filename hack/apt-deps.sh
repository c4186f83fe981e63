#!/usr/bin/env bash
# Installs the Debian packages Paramedic's tests, demo, image builds and local real node use,
# when missing.
set -euo pipefail
need=()
has_pkg() { dpkg-query -W -f '${Status}' "$1" 2>/dev/null | grep -q '^install ok installed$'; }
# Tests and demo.
command -v prometheus >/dev/null || need+=(prometheus)
command -v prometheus-alertmanager >/dev/null || need+=(prometheus-alertmanager)
command -v prometheus-blackbox-exporter >/dev/null || need+=(prometheus-blackbox-exporter)
# The web console's browser tests (Selenium drives Debian's build: browsers cannot be downloaded).
command -v chromium >/dev/null || need+=(chromium)
command -v chromedriver >/dev/null || need+=(chromium-driver)
# Images without Docker (hack/build-image.sh): buildah builds, mmdebstrap makes the Python base
# when python:3.11-slim cannot be pulled, gcc and the static libc build the pause image.
command -v buildah >/dev/null || need+=(buildah)
command -v mmdebstrap >/dev/null || need+=(mmdebstrap)
command -v gcc >/dev/null || need+=(gcc)
has_pkg libc6-dev || need+=(libc6-dev)
# The real node: the OCI runtime, the CNI plugins (bridge, host-local, loopback, portmap in
# /usr/lib/cni), and what kube-proxy in iptables mode drives.
command -v runc >/dev/null || need+=(runc)
[ -x /usr/lib/cni/bridge ] || need+=(containernetworking-plugins)
command -v iptables >/dev/null || need+=(iptables)
command -v conntrack >/dev/null || need+=(conntrack)
# nft: the real node's tear-down removes the empty tables iptables-nft leaves behind.
command -v nft >/dev/null || need+=(nftables)
[ ${#need[@]} -eq 0 ] && exit 0
SUDO=""; [ "$(id -u)" = 0 ] || SUDO=sudo
echo "installing ${need[*]} from Debian..." >&2
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -qq >/dev/null
# --no-install-recommends keeps it small; policy-rc.d stops the packages' services auto-starting.
if [ ! -e /usr/sbin/policy-rc.d ]; then printf '#!/bin/sh\nexit 101\n' | $SUDO tee /usr/sbin/policy-rc.d >/dev/null; $SUDO chmod +x /usr/sbin/policy-rc.d; trap '$SUDO rm -f /usr/sbin/policy-rc.d' EXIT; fi
$SUDO apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
