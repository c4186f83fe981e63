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

$(VENV)/.installed: pyproject.toml
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -e '.[test,ansible]'
	@touch $@

venv: $(VENV)/.installed ## Python deps in .venv (editable install)

apt: ## Debian packages: Prometheus, Alertmanager, blackbox_exporter
	@hack/apt-deps.sh

tools: ## build etcd, kube-*, kubectl, kwok and helm from their Go modules (cached)
	@hack/build-tools.sh >/dev/null

deps: venv apt tools ## everything the tests and the demo need

cluster-up: deps ## start the local control plane, write .paramedic/kubeconfig
	$(PY) -m paramedic.devcluster up

cluster-down: ## stop the local control plane and remove its state
	@test -x $(PY) && $(PY) -m paramedic.devcluster down || true

crds: ## copy the CRDs into the chart (manifests/crds is the one source)
	@mkdir -p charts/paramedic/crds && cp manifests/crds/*.yaml charts/paramedic/crds/

test: deps ## run the whole suite against a real local control plane
	$(PY) -m pytest -q tests

unit: venv ## fast tests of pure logic only
	$(PY) -m pytest -q tests/unit

demo: deps ## the whole self-healing story on one machine
	$(PY) -m paramedic.demo

demo-down: ## stop what `make demo` left running
	@test -x $(PY) && $(PY) -m paramedic.demo down || true

bench: deps ## benchmarks; figures go to stdout (record them in bench/RESULTS.md)
	$(PY) -m bench.run_all

clean: cluster-down ## remove local state (not the tool cache)
	rm -rf $(STATE) .pytest_cache

.PHONY: help venv apt tools deps cluster-up cluster-down crds test unit demo demo-down bench clean
