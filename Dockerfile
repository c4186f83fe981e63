# Paramedic: one image, two commands.
#   operator: paramedic-operator --all-namespaces
#   webhook:  paramedic-webhook
# Build: `make image` (hack/build-image.sh: Docker, podman or buildah, cached), or
#   docker build -t paramedic:dev .
# Behind a TLS-intercepting proxy, give pip the proxy's CA as a build secret; it is
# mounted for the RUN steps that need it and never stored in a layer:
#   docker build --secret id=pipca,src=/path/to/ca-bundle.crt -t paramedic:dev .
ARG PYTHON_IMAGE=python:3.11-slim

# --- stage 1: Paramedic's dependencies in a virtualenv --------------------------
FROM ${PYTHON_IMAGE} AS deps
ENV PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PIP_ROOT_USER_ACTION=ignore
WORKDIR /src
RUN python -m venv /opt/paramedic/venv
COPY hack/image/build_helper.py /usr/local/lib/paramedic-build/
COPY pyproject.toml requirements.lock ./
# Every package from requirements.lock (`make lock`: pinned, with hashes that pip checks), and of
# the `ansible` bundle (pyproject's `ansible` extra; its wheel is hash-checked too) only the
# collections the playbooks use (ANSIBLE_COLLECTIONS). The lock holds the ansible-core that
# bundle was released with and the Python packages those collections need: checked below,
# offline. Galaxy need not be reachable.
ARG ANSIBLE_COLLECTIONS="kubernetes.core"
RUN --mount=type=secret,id=pipca,target=/run/secrets/pipca \
    set -eu; \
    if [ -s /run/secrets/pipca ]; then export PIP_CERT=/run/secrets/pipca; fi; \
    b=/usr/local/lib/paramedic-build; \
    bundle=$(python "$b/build_helper.py" bundle pyproject.toml); \
    python "$b/build_helper.py" pick requirements.lock $bundle > /tmp/bundle.txt; \
    python "$b/build_helper.py" pick requirements.lock setuptools wheel > "$b/build.txt"; \
    python "$b/build_helper.py" omit requirements.lock $bundle setuptools wheel > /tmp/runtime.txt; \
    pip download --no-deps --require-hashes --dest /tmp/bundle -r /tmp/bundle.txt; \
    python "$b/build_helper.py" unpack /tmp/bundle/ansible-*.whl /tmp/collections $ANSIBLE_COLLECTIONS; \
    /opt/paramedic/venv/bin/pip install --require-hashes --no-deps -r /tmp/runtime.txt; \
    /opt/paramedic/venv/bin/pip install --no-index -r /tmp/collections/requirements.txt \
        -r /tmp/collections/constraints.txt; \
    /opt/paramedic/venv/bin/pip check; \
    site=$(/opt/paramedic/venv/bin/python -c 'import sysconfig; print(sysconfig.get_path("purelib"))'); \
    cp -a /tmp/collections/ansible_collections "$site/"; \
    rm -rf /tmp/bundle /tmp/collections /tmp/bundle.txt /tmp/runtime.txt

# The runtime's copy: pip is not needed at run time.
FROM deps AS venv
RUN /opt/paramedic/venv/bin/pip uninstall -y -q pip

# --- stage 2: Paramedic itself, its installed files alone in /out ---------------
# (a small layer of its own in the runtime: a change to the source leaves the big one alone;
# built with the lock's setuptools and wheel, not whatever the index has that day)
FROM deps AS app
COPY README.md ./
COPY paramedic/ paramedic/
COPY operator/ operator/
COPY webhook/ webhook/
RUN --mount=type=secret,id=pipca,target=/run/secrets/pipca \
    set -eu; \
    if [ -s /run/secrets/pipca ]; then export PIP_CERT=/run/secrets/pipca; fi; \
    /opt/paramedic/venv/bin/pip install --require-hashes --no-deps -r /usr/local/lib/paramedic-build/build.txt; \
    /opt/paramedic/venv/bin/pip install --no-deps --no-build-isolation . ; \
    site=$(/opt/paramedic/venv/bin/python -c 'import sysconfig; print(sysconfig.get_path("purelib"))'); \
    python /usr/local/lib/paramedic-build/build_helper.py installed paramedic "$site" /out

# --- stage 3: runtime ---------------------------------------------------------
FROM ${PYTHON_IMAGE}
ARG VERSION=0.1.0
LABEL org.opencontainers.image.title="paramedic" \
      org.opencontainers.image.description="Kubernetes operator for incident management with self-healing" \
      org.opencontainers.image.version="${VERSION}" \
      org.opencontainers.image.licenses="Apache-2.0"

# tini as PID 1 reaps the processes ansible-runner leaves behind and forwards signals.
# A base built from Debian packages (hack/python-base.sh) has it already.
# (Unpinned: the base already fixes the Debian release.)
# hadolint ignore=DL3008
RUN command -v tini >/dev/null \
 || { apt-get update \
      && apt-get install -y --no-install-recommends tini \
      && rm -rf /var/lib/apt/lists/*; }

RUN groupadd --system --gid 10001 paramedic \
 && useradd --system --uid 10001 --gid 10001 --home-dir /tmp --no-create-home \
            --shell /usr/sbin/nologin paramedic

COPY --from=venv /opt/paramedic/venv/ /opt/paramedic/venv/
COPY --from=app /out/ /
COPY playbooks/ /opt/paramedic/playbooks/

# The root filesystem is read-only in the cluster: everything that writes
# (Python, Ansible, ansible-runner) is pointed at /tmp, an emptyDir there.
ENV PATH=/opt/paramedic/venv/bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    HOME=/tmp \
    PARAMEDIC_PLAYBOOKS_DIR=/opt/paramedic/playbooks \
    ANSIBLE_HOME=/tmp/.ansible \
    ANSIBLE_LOCAL_TEMP=/tmp/.ansible/tmp \
    ANSIBLE_REMOTE_TEMP=/tmp/.ansible/tmp \
    ANSIBLE_RETRY_FILES_ENABLED=false

USER 10001:10001
WORKDIR /tmp
# 8080: webhook (gunicorn) or operator /healthz; 9090: operator /metrics.
EXPOSE 8080 9090
ENTRYPOINT ["/usr/bin/tini", "--"]
CMD ["paramedic-operator", "--all-namespaces"]
