# Paramedic — the two commands a newcomer needs are `make demo` and `make test`.
SHELL := /bin/bash
.DEFAULT_GOAL := help
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STATE := .paramedic
export PATH := $(CURDIR)/$(STATE)/bin:$(CURDIR)/$(VENV)/bin:$(PATH)

help: ## list the targets
	@grep -hE '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  %-18s %s\n", $$1, $$2}'

# Every package pinned with its hashes (requirements-dev.lock, `make lock`), the build
# backend included; then Paramedic itself, editable, from those alone. pip installs the
# lock's uv (its hashes checked), and uv the rest: ten times faster than pip from cold.
LOCK := requirements-dev.lock
UV := $(VENV)/bin/uv pip install -q --python $(PY)
$(VENV)/.installed: pyproject.toml $(LOCK)
	@test -x $(PY) || (cd / && $(PYTHON) -m venv $(CURDIR)/$(VENV))
	@sed -n '/^uv==/,/^ *# via/p' $(LOCK) > $(VENV)/uv-requirement.txt
	$(VENV)/bin/pip install -q --require-hashes --no-deps -r $(VENV)/uv-requirement.txt
	$(UV) --require-hashes --no-deps -r $(LOCK)
	$(UV) --no-deps --no-build-isolation -e .
	@touch $@

venv: $(VENV)/.installed ## Python deps in .venv (pinned and hashed: requirements-dev.lock; editable install)

# requirements.lock: what the image installs (hack/image/build_helper.py splits it into the
# runtime's packages, the `ansible` bundle the collections come from, and the build backend).
lock: venv ## regenerate requirements-dev.lock and the image's requirements.lock (uv; pinned versions with their hashes)
	$(VENV)/bin/uv pip compile pyproject.toml requirements-build.in --extra test --extra ansible --extra lint \
	  --generate-hashes --python-version 3.11 --custom-compile-command 'make lock' -o $(LOCK)
	$(VENV)/bin/uv pip compile pyproject.toml requirements-build.in requirements-image.in --extra ansible \
	  --generate-hashes --python-version 3.11 --python-platform x86_64-unknown-linux-gnu \
	  --custom-compile-command 'make lock' -o requirements.lock

apt: ## Debian packages: Prometheus, Alertmanager, blackbox_exporter, image builders, real-node runtime
	@hack/apt-deps.sh

tools: ## build etcd, kube-*, kubelet, kube-proxy, kubectl, kwok, helm and containerd from their Go modules (cached)
	@hack/build-tools.sh >/dev/null

deps: venv apt tools ## everything the tests and the demo need

cluster-up: deps ## start the local control plane and (as root) the real node; write .paramedic/kubeconfig
	$(PY) -m devtools.cluster up

cluster-down: ## stop the local control plane and the real node; restore the host
	@test -x $(PY) && $(PY) -m devtools.cluster down || true

crds: ## copy the CRDs into the chart (manifests/crds is the one source)
	@mkdir -p charts/paramedic/crds && cp manifests/crds/*.yaml charts/paramedic/crds/

# mypy and import-linter check the source where it lives: hack/lint.py hands them pyproject's
# package-dir (operator/ is paramedic.operator, webhook/ is paramedic.webhook), which neither
# reads by itself. devtools/ is checked too (never installed).
lint: venv ## ruff, mypy (strict on paramedic/domain and the adapters) and the layers' import contracts (.importlinter)
	$(VENV)/bin/ruff check .
	$(PY) hack/lint.py mypy --cache-dir $(STATE)/mypy-cache --config-file pyproject.toml paramedic operator webhook devtools
	$(PY) hack/lint.py imports .importlinter

test: deps lint ## lint, then the whole suite against a real local control plane
	$(PY) -m pytest -q tests

unit: venv ## fast tests of pure logic only
	$(PY) -m pytest -q tests/unit

demo: deps ## the whole self-healing story on one machine
	$(PY) -m devtools.demo

demo-down: ## stop what `make demo` left running
	@test -x $(PY) && $(PY) -m devtools.demo down || true

bench: deps ## benchmarks; figures go to stdout (record them in bench/RESULTS.md)
	$(PY) -m bench.run_all

clean: cluster-down ## remove local state (not the tool cache)
	rm -rf $(STATE) .pytest_cache

.PHONY: help venv lock apt tools deps cluster-up cluster-down crds lint test unit demo demo-down bench clean

# --- Packaging: image and chart on kind or Minikube (need Docker, kind/minikube, helm) ---
IMAGE_REPO ?= localhost/paramedic
IMAGE_TAG ?= dev
IMAGE := $(IMAGE_REPO):$(IMAGE_TAG)
KIND_CLUSTER ?= paramedic
RELEASE ?= paramedic
RELEASE_NAMESPACE ?= paramedic
HELM_IMAGE_ARGS = --set image.repository=$(IMAGE_REPO) --set image.tag=$(IMAGE_TAG) --set image.pullPolicy=IfNotPresent

# Docker, else podman, else buildah; cached under ~/.cache/paramedic/images, keyed by the inputs.
# Tags $(IMAGE) in the builder's store (Docker's for kind) and prints the docker-archive tar's path.
image: ## build the image localhost/paramedic:dev (IMAGE), cached
	@hack/build-image.sh --tag $(IMAGE)

image-pause: ## build the real node's sandbox image localhost/pause:3.10 (cached)
	@hack/build-image.sh pause

chart-crds: crds ## the CRDs into the chart (as `make crds`; the deploy targets use it)

lint-chart: chart-crds ## helm lint and render the chart (values.schema.json applies)
	helm lint charts/paramedic
	helm lint charts/paramedic --set allNamespaces=false --set 'watchNamespaces={default}'
	helm template $(RELEASE) charts/paramedic --namespace $(RELEASE_NAMESPACE) >/dev/null
	helm template $(RELEASE) charts/paramedic --namespace $(RELEASE_NAMESPACE) \
	  --set serviceMonitor.enabled=true --set prometheusRule.enabled=true \
	  --set grafanaDashboard.enabled=true --set allNamespaces=false --set 'watchNamespaces={default}' >/dev/null
	helm template $(RELEASE) charts/paramedic --namespace $(RELEASE_NAMESPACE) --set kubePrometheusStack.enabled=true >/dev/null
	helm template $(RELEASE) charts/paramedic --namespace $(RELEASE_NAMESPACE) --set 'webhook.tokenNamespaces={*}' \
	  --set webhook.tokensSecret=paramedic-webhook-tokens >/dev/null
	helm template $(RELEASE) charts/paramedic --namespace $(RELEASE_NAMESPACE) --set kubePrometheusStack.enabled=true \
	  --set allNamespaces=false --set 'watchNamespaces={default}' --set webhook.existingSecret=am-token >/dev/null
	@! helm template $(RELEASE) charts/paramedic --set 'kubePrometheusStack.alertmanagerConfig.matchers[0].name=a' \
	  --set 'kubePrometheusStack.alertmanagerConfig.matchers[0].value=b' \
	  --set 'kubePrometheusStack.alertmanagerConfig.matchers[0].matchType=~' >/dev/null 2>&1 \
	  || { echo "values.schema.json accepted matchType ~" >&2; exit 1; }
	@! helm template $(RELEASE) charts/paramedic --set webhook.replicas=x >/dev/null 2>&1 \
	  || { echo "values.schema.json accepted webhook.replicas=x" >&2; exit 1; }
	helm template $(RELEASE) charts/paramedic --namespace $(RELEASE_NAMESPACE) --set console.ingress.enabled=true \
	  --set console.ingress.host=paramedic.example.com --set console.ingress.tlsSecretName=console-tls \
	  --set console.url=https://paramedic.example.com --set console.existingSecret=console-key >/dev/null
	helm template $(RELEASE) charts/paramedic --namespace $(RELEASE_NAMESPACE) --set console.enabled=false >/dev/null
	@! helm template $(RELEASE) charts/paramedic --set console.url=javascript:x >/dev/null 2>&1 \
	  || { echo "values.schema.json accepted console.url=javascript:x" >&2; exit 1; }

# The local cluster's real node (make cluster-up): the image goes straight into its containerd.
cluster-deploy: venv chart-crds ## build the image, load it into the real node, helm upgrade --install (2 operator replicas)
	$(PY) -m devtools.deploy --release $(RELEASE) --namespace $(RELEASE_NAMESPACE)

kind-up: ## create the kind cluster `paramedic`
	kind create cluster --name $(KIND_CLUSTER)

# kind and Minikube take the image archive `make image` caches, whichever builder made it
# (Docker, podman or buildah): no registry, no builder inside the cluster.
kind-deploy: chart-crds ## build the image, load it into kind, helm upgrade --install
	@tar=$$(hack/build-image.sh --tag $(IMAGE) | tail -n 1) && kind load image-archive "$$tar" --name $(KIND_CLUSTER)
	helm upgrade --install $(RELEASE) charts/paramedic --kube-context kind-$(KIND_CLUSTER) \
	  --namespace $(RELEASE_NAMESPACE) --create-namespace $(HELM_IMAGE_ARGS) --wait --timeout 5m
	@# Same tag, new image: restart so the pods run what was just built.
	kubectl --context kind-$(KIND_CLUSTER) -n $(RELEASE_NAMESPACE) rollout restart deployment \
	  -l app.kubernetes.io/instance=$(RELEASE)

minikube-deploy: chart-crds ## build the image, load it into Minikube, helm upgrade --install
	@tar=$$(hack/build-image.sh --tag $(IMAGE) | tail -n 1) && minikube image load "$$tar"
	helm upgrade --install $(RELEASE) charts/paramedic --kube-context minikube \
	  --namespace $(RELEASE_NAMESPACE) --create-namespace $(HELM_IMAGE_ARGS) --wait --timeout 5m
	kubectl --context minikube -n $(RELEASE_NAMESPACE) rollout restart deployment \
	  -l app.kubernetes.io/instance=$(RELEASE)

.PHONY: image image-pause chart-crds lint-chart cluster-deploy kind-up kind-deploy minikube-deploy

# --- Reliability: faults and abuse (docs/RELIABILITY.md) ---
chaos: deps ## fault injection and abuse suite (operator kills, API server/etcd down, fuzzing); ~6 min
	$(PY) -m pytest -q -m chaos tests/chaos

.PHONY: chaos
