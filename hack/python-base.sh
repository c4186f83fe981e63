#!/usr/bin/env bash
# The recipe for a stand-in for python:3.11-slim when that cannot be pulled: a Debian bookworm
# root filesystem (Python 3.11, the same minor as the slim image) made by mmdebstrap from the
# Debian sources this machine's apt already uses, written as a tarball. hack/build-image.sh
# imports it as localhost/paramedic-python-base:3.11-bookworm and caches it keyed by this file.
#   hack/python-base.sh OUT.tar
set -euo pipefail
out=${1:?usage: hack/python-base.sh OUT.tar}
# mmdebstrap picks its output format from the name.
case $out in *.tar) ;; *) echo "python-base: OUT must end in .tar, not '$out'" >&2; exit 2 ;; esac
suite=bookworm

# The host's Debian entries for this suite (deb822 .sources and one-line .list files), so the
# rootfs comes through whatever mirror or proxy this machine is set up with. Third-party
# repositories (other suites) are left out. Empty: mmdebstrap's default mirror.
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
sources=$tmp/debian.sources
python3 - "$suite" >"$sources" <<'EOF'
import glob, re, sys
suite = sys.argv[1]
ok = re.compile(rf"^{suite}(-updates|-security)?$")
files = glob.glob("/etc/apt/sources.list") + sorted(glob.glob("/etc/apt/sources.list.d/*.list")) \
    + sorted(glob.glob("/etc/apt/sources.list.d/*.sources"))
for path in files:
    text = open(path, encoding="utf-8", errors="replace").read()
    if path.endswith(".list"):
        for line in text.splitlines():
            words = re.sub(r"\[[^]]*\]", "", line.split("#", 1)[0]).split()
            if len(words) >= 3 and words[0] == "deb" and ok.match(words[2]):
                print(f"Types: deb\nURIs: {words[1]}\nSuites: {words[2]}\nComponents: {' '.join(words[3:]) or 'main'}\n")
        continue
    for stanza in re.split(r"\n\s*\n", text):
        fields = {}
        for line in stanza.splitlines():
            if line.startswith("#") or ":" not in line or line[:1].isspace():
                continue
            key, value = line.split(":", 1)
            fields[key.strip().lower()] = value.strip()
        if fields.get("enabled", "yes").lower() == "no" or "deb" not in fields.get("types", "").split():
            continue
        suites = [s for s in fields.get("suites", "").split() if ok.match(s)]
        if suites and fields.get("uris"):
            signed = f"Signed-By: {fields['signed-by']}\n" if fields.get("signed-by", "").startswith("/") else ""
            print(f"Types: deb\nURIs: {fields['uris']}\nSuites: {' '.join(suites)}\n"
                  f"Components: {fields.get('components', 'main')}\n{signed}")
EOF
mirror=()
if [ -s "$sources" ]; then mirror=("$sources"); else echo "python-base: no host apt source for $suite; mmdebstrap's default mirror" >&2; fi

# The host's own answer to stale Release files (some mirrors serve snapshots).
aptopts=(--aptopt='APT::Install-Recommends "false"')
for opt in Acquire::Check-Valid-Until Acquire::Check-Date; do
  v=$(apt-config dump "$opt" 2>/dev/null | sed -n "s/^$opt \"\(.*\)\";$/\1/p")
  [ -n "$v" ] && aptopts+=(--aptopt="$opt \"$v\"")
done

echo "python-base: mmdebstrap $suite (about 2 minutes)..." >&2
# merged-usr by the hook (as debootstrap does), not the usrmerge package, which pulls in perl.
mmdebstrap --quiet --variant=minbase --hook-dir=/usr/share/mmdebstrap/hooks/merged-usr \
  --include=python3,python3-pip,python3-venv,tini,ca-certificates \
  "${aptopts[@]}" \
  --dpkgopt='path-exclude=/usr/share/man/*' --dpkgopt='path-exclude=/usr/share/info/*' \
  --dpkgopt='path-exclude=/usr/share/locale/*' --dpkgopt='path-exclude=/usr/share/doc/*' \
  --dpkgopt='path-include=/usr/share/doc/*/copyright' \
  --customize-hook='rm -f "$1/usr/lib/python3.11/EXTERNALLY-MANAGED"' \
  --customize-hook='ln -sfn python3 "$1/usr/bin/python"' \
  --customize-hook='chroot "$1" python -c "import sys, ensurepip, venv; assert sys.version_info[:2] == (3, 11), sys.version"' \
  --customize-hook='rm -rf "$1"/var/cache/apt/* "$1"/var/lib/apt/lists/* "$1"/var/log/*.log "$1"/var/log/apt/*' \
  "$suite" "$out" "${mirror[@]}"
