# Paramedic: one image, two commands.
#   operator: paramedic-operator --all-namespaces
#   webhook:  paramedic-webhook
# Build: docker build -t paramedic:dev .   (or `make image`)
ARG PYTHON_IMAGE=python:3.11-slim

# --- stage 1: build the wheel -------------------------------------------------
FROM ${PYTHON_IMAGE} AS build
ENV PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1
WORKDIR /src
COPY pyproject.toml README.md ./
COPY paramedic/ paramedic/
COPY operator/ operator/
COPY webhook/ webhook/
# Only Paramedic's own wheel: its dependencies are resolved in the runtime stage.
RUN pip wheel --no-deps --wheel-dir /wheels .

# --- stage 2: runtime ---------------------------------------------------------
FROM ${PYTHON_IMAGE}
ARG VERSION=0.1.0
LABEL org.opencontainers.image.title="paramedic" \
      org.opencontainers.image.description="Kubernetes operator for incident management with self-healing" \
      org.opencontainers.image.version="${VERSION}" \
      org.opencontainers.image.licenses="Apache-2.0"

# tini as PID 1 reaps the processes ansible-runner leaves behind and forwards signals.
# (Unpinned: the slim base already fixes the Debian release.)
# hadolint ignore=DL3008
RUN apt-get update \
 && apt-get install -y --no-install-recommends tini \
 && rm -rf /var/lib/apt/lists/*

RUN groupadd --system --gid 10001 paramedic \
 && useradd --system --uid 10001 --gid 10001 --home-dir /tmp --no-create-home \
            --shell /usr/sbin/nologin paramedic

COPY --from=build /wheels/ /tmp/wheels/
ENV PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1
RUN pip install "$(ls /tmp/wheels/paramedic-*.whl)[ansible]" \
 && rm -rf /tmp/wheels

COPY playbooks/ /opt/paramedic/playbooks/

# The root filesystem is read-only in the cluster: everything that writes
# (Python, Ansible, ansible-runner) is pointed at /tmp, an emptyDir there.
ENV PYTHONDONTWRITEBYTECODE=1 \
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
