#!/usr/bin/env bash
# Builds Paramedic's image, or the pod sandbox ("pause") image of the local real node, with
# whatever this machine has: Docker if `docker info` works, else podman, else buildah. The result
# is cached outside the repo as a docker-archive tar (what `ctr -n k8s.io images import`,
# `docker load` and `podman load` take), keyed by the build's inputs: a warm call only checks
# that the image is still in the builder's store.
#
#   hack/build-image.sh [--tag NAME] [paramedic|pause]
#     paramedic (default)  localhost/paramedic:dev from ./Dockerfile
#     pause                localhost/pause:3.10 from hack/pause/pause.c (static, FROM scratch)
#     --tag NAME           also tag the image NAME in the builder's store (make image: $(IMAGE))
#   The last line on stdout is the tar's path; everything else goes to stderr.
#
# Environment:
#   PARAMEDIC_BUILD_CA      CA bundle pip inside the build trusts (TLS-intercepting proxies),
#                           passed as a build secret, never stored in a layer. Default: pip's
#                           PIP_CERT, else its configured global.cert. Set it empty for none.
#   PARAMEDIC_BUILDER       docker, podman or buildah, instead of the first that works
#   PARAMEDIC_PYTHON_IMAGE  base image instead of python:3.11-slim (pulled if it can be) or,
#                           when that cannot be pulled, a Debian-built stand-in (hack/python-base.sh)
#   PARAMEDIC_PULL_TIMEOUT  seconds to try pulling python:3.11-slim (default 60)
#   PARAMEDIC_CACHE         cache root (default ~/.cache/paramedic); tars go to $PARAMEDIC_CACHE/images
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
log() { echo "build-image: $*" >&2; }
die() { log "$*"; exit 1; }

target=paramedic extra_tag=""
while [ $# -gt 0 ]; do
  case $1 in
    --tag) extra_tag=${2:?--tag needs a name}; shift 2 ;;
    --tag=*) extra_tag=${1#--tag=}; shift ;;
    paramedic|pause) target=$1; shift ;;
    -h|--help) sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//' >&2; exit 0 ;;
    *) die "unknown argument '$1' (usage: hack/build-image.sh [--tag NAME] [paramedic|pause])" ;;
  esac
done

cache="${PARAMEDIC_CACHE:-$HOME/.cache/paramedic}/images"
mkdir -p "$cache"
# One build at a time on this machine (make, tests and the real node share the cache).
exec 9>"$cache/.lock"
flock 9

# --- the builder --------------------------------------------------------------
# Runs need capped rlimits: the defaults raise them, and without CAP_SYS_RESOURCE runc fails
# with "error setting rlimit". chroot isolation needs no systemd and works on cgroup v1.
ulimits=(--ulimit nofile=1024:1024 --ulimit nproc=4096:4096)
builder=${PARAMEDIC_BUILDER:-}
if [ -z "$builder" ]; then
  if command -v docker >/dev/null && docker info >/dev/null 2>&1; then builder=docker
  elif command -v podman >/dev/null; then builder=podman
  elif command -v buildah >/dev/null; then builder=buildah
  else die "no image builder: install Docker, podman or buildah (hack/apt-deps.sh installs buildah)"; fi
fi
case $builder in
  docker) build=(docker build) ;;  # BuildKit: RUN --mount and --secret
  podman) build=(podman build --layers --isolation chroot "${ulimits[@]}") ;;
  buildah) build=(buildah bud --layers --isolation chroot "${ulimits[@]}") ;;
  *) die "PARAMEDIC_BUILDER must be docker, podman or buildah, not '$builder'" ;;
esac
export DOCKER_BUILDKIT=1

image_label() { # IMAGE -> the image's io.paramedic.inputs label, empty when absent
  case $builder in
    docker) docker image inspect -f '{{index .Config.Labels "io.paramedic.inputs"}}' "$1" 2>/dev/null ;;
    podman) podman image inspect -f '{{index .Labels "io.paramedic.inputs"}}' "$1" 2>/dev/null ;;
    buildah) buildah inspect --type image -f '{{index .OCIv1.Config.Labels "io.paramedic.inputs"}}' "$1" 2>/dev/null ;;
  esac || true
}
image_id() {
  case $builder in
    docker) docker image inspect -f '{{.Id}}' "$1" 2>/dev/null ;;
    podman) podman image inspect -f '{{.Id}}' "$1" 2>/dev/null ;;
    buildah) buildah inspect --type image -f '{{.FromImageID}}' "$1" 2>/dev/null ;;
  esac || true
}
image_exists() {
  case $builder in
    docker) docker image inspect "$1" >/dev/null 2>&1 ;;
    podman) podman image exists "$1" ;;
    buildah) buildah inspect --type image "$1" >/dev/null 2>&1 ;;
  esac
}
save() { # IMAGE TAR
  case $builder in
    docker) docker save -o "$2" "$1" ;;
    podman) podman save --format docker-archive -o "$2" "$1" ;;
    buildah) buildah push --quiet "$1" "docker-archive:$2:$1" ;;
  esac
}
load() { # TAR
  case $builder in
    docker) docker load -i "$1" ;;
    podman) podman load -i "$1" ;;
    buildah) buildah pull --quiet "docker-archive:$1" ;;
  esac >&2
}
tag() { $builder tag "$1" "$2" >&2; }

hash_files() { # paths relative to the repo -> one hash over their names and contents
  (cd "$root" && find "$@" -type f ! -name '*.pyc' ! -path '*/__pycache__/*' -print0 | LC_ALL=C sort -z \
     | xargs -0 sha256sum | sha256sum | cut -c1-16)
}

# --- the CA for the package index, as a build secret -----------------------------
ca=${PARAMEDIC_BUILD_CA-${PIP_CERT-}}
if [ -z "${PARAMEDIC_BUILD_CA+set}" ] && [ -z "$ca" ]; then
  ca=$(python3 -m pip config list 2>/dev/null | sed -n "s/^global\.cert='\(.*\)'\$/\1/p" | tail -1)
fi
secret=()
if [ -n "$ca" ]; then
  [ -r "$ca" ] || die "CA bundle '$ca' (PARAMEDIC_BUILD_CA or pip's cert) is not readable"
  secret=(--secret "id=pipca,src=$ca")
fi

# --- a Python 3.11 base ---------------------------------------------------------
python_base() { # prints the image to build on
  if [ -n "${PARAMEDIC_PYTHON_IMAGE:-}" ]; then echo "$PARAMEDIC_PYTHON_IMAGE"; return; fi
  local slim=docker.io/library/python:3.11-slim
  if image_exists "$slim" || timeout "${PARAMEDIC_PULL_TIMEOUT:-60}" "$builder" pull -q "$slim" >/dev/null 2>&1; then
    echo "$slim"; return
  fi
  log "cannot pull $slim: using a stand-in built from Debian packages (hack/python-base.sh)"
  local containerfile
  containerfile=$'FROM scratch\nADD rootfs.tar /\nENV LANG=C.UTF-8 PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin\nCMD ["python3"]\n'
  local key; key=$( (cat "$root/hack/python-base.sh"; printf %s "$containerfile") | sha256sum | cut -c1-16)
  local base=localhost/paramedic-python-base:3.11-bookworm
  if [ "$(image_label "$base")" != "$key" ]; then
    local rootfs="$cache/python-base-3.11-bookworm-$key.rootfs.tar"
    if [ ! -s "$rootfs" ]; then
      log "building its root filesystem with mmdebstrap (about 2 minutes)"
      # (mmdebstrap picks its output format from the name: keep .tar at the end)
      "$root/hack/python-base.sh" "${rootfs%.tar}.tmp.tar" >&2
      mv "${rootfs%.tar}.tmp.tar" "$rootfs"
      find "$cache" -maxdepth 1 -name 'python-base-3.11-bookworm-*.rootfs.tar' ! -name "${rootfs##*/}" -delete
    fi
    local ctx; ctx=$(mktemp -d)
    ln "$rootfs" "$ctx/rootfs.tar" 2>/dev/null || cp "$rootfs" "$ctx/rootfs.tar"
    printf %s "$containerfile" >"$ctx/Containerfile"
    "${build[@]}" --label "io.paramedic.inputs=$key" -t "$base" -f "$ctx/Containerfile" "$ctx" >&2
    rm -rf "$ctx"
  fi
  echo "$base"
}

# --- the targets ----------------------------------------------------------------
case $target in
  paramedic)
    image=localhost/paramedic:dev
    inputs=(Dockerfile .dockerignore pyproject.toml requirements.lock README.md paramedic operator webhook playbooks
            hack/image hack/build-image.sh hack/python-base.sh)
    key=$( (hash_files "${inputs[@]}"; echo "base=${PARAMEDIC_PYTHON_IMAGE:-auto}") | sha256sum | cut -c1-16)
    tar="$cache/paramedic-dev-$key.tar"
    ;;
  pause)
    image=localhost/pause:3.10
    cflags="-static -Os -s -Wall -Wextra -Werror"
    key=$( (hash_files hack/pause; echo "$cflags"; gcc --version | head -1) | sha256sum | cut -c1-16)
    tar="$cache/pause-3.10-$key.tar"
    ;;
esac

if [ -s "$tar" ]; then
  if [ "$(image_label "$image")" != "$key" ]; then
    log "$image: loading the cached $tar into $builder's store"
    load "$tar"
  fi
else
  start=$SECONDS
  ctx=$(mktemp -d)
  trap 'rm -rf "$ctx"' EXIT
  case $target in
    paramedic)
      base=$(python_base)
      log "building $image with $builder on $base${ca:+ (package index CA: $ca, as a build secret)}"
      previous=$(image_id "$image")
      "${build[@]}" "${secret[@]}" --build-arg "PYTHON_IMAGE=$base" --label "io.paramedic.inputs=$key" \
        -t "$image" -f "$root/Dockerfile" "$root" >&2
      ;;
    pause)
      command -v gcc >/dev/null || die "gcc is needed for the pause image (hack/apt-deps.sh installs it)"
      log "building $image with $builder"
      # shellcheck disable=SC2086 # cflags is a word list
      gcc $cflags -o "$ctx/pause" "$root/hack/pause/pause.c"
      cp "$root/hack/pause/Containerfile" "$ctx/"
      "${build[@]}" --label "io.paramedic.inputs=$key" -t "$image" -f "$ctx/Containerfile" "$ctx" >&2
      ;;
  esac
  # The image this build replaced, now untagged, goes (if nothing else uses it).
  if [ "$target" = paramedic ] && [ -n "$previous" ] && [ "$previous" != "$(image_id "$image")" ]; then
    $builder rmi "$previous" >/dev/null 2>&1 || true
  fi
  save "$image" "$ctx/image.tar"
  if [ -n "$ca" ]; then
    python3 "$root/hack/image/check_no_secret.py" "$ctx/image.tar" "$ca" \
      || die "$image carries the build's CA bundle: not cached"
  fi
  # Complete or absent: the temporary dir may be on another filesystem.
  mv "$ctx/image.tar" "$tar.part" && mv "$tar.part" "$tar"
  # The three newest archives of each image are kept (worktrees and branches share the cache).
  name=${tar##*/}
  # shellcheck disable=SC2012 # names are ours: no odd characters
  ls -t "$cache/${name%-*}-"*.tar | tail -n +4 | xargs -r rm -f
  log "$image built in $((SECONDS - start)) s, $(du -m "$tar" | cut -f1) MB archive"
fi
[ -n "$extra_tag" ] && tag "$image" "$extra_tag"
echo "$tar"
