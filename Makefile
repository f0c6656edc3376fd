# Two commands on a fresh machine: `make demo` (the operator against an emulated API server;
# installs only the emulator extra) and `make test` (everything; suites that need podman or a
# control plane say why they skip). `make test-quick` leaves the slow suites out.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin

.PHONY: demo test test-quick lint bench render clean control-plane e2e node e2e-local images push

# The demo needs only the emulator (.[emulator]); tests, lint and benchmarks add the test extra
# (helm's engine, the official client, the schemas: most of the venv's size).
$(VENV)/.emulator: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q -e '.[emulator]'
	touch $@

$(VENV)/.installed: $(VENV)/.emulator
	$(BIN)/pip install -q -e '.[test]'
	touch $@

demo: $(VENV)/.emulator
	$(BIN)/httpd-operator demo

# shellcheck is Debian's (apt-get install shellcheck; .ci/run installs it); skipped if absent.
SHELL_SCRIPTS := $(filter-out %.py,$(wildcard hack/* hack/lib/*.sh)) .ci/run
lint: $(VENV)/.installed
	$(BIN)/ruff check operator tests bench hack
	@if command -v shellcheck >/dev/null; then shellcheck -x $(filter-out hack/lib,$(SHELL_SCRIPTS)); \
	  else echo "lint: shellcheck not installed (apt-get install shellcheck): shell scripts not checked"; fi

test: lint
	$(BIN)/python -m pytest

test-quick: $(VENV)/.installed
	$(BIN)/python -m pytest -m "not image and not podman and not controlplane"

bench: $(VENV)/.installed
	$(BIN)/python bench/operator_bench.py --sites 100

render: $(VENV)/.emulator
	$(BIN)/httpd-operator render -f examples/site.yaml

control-plane:
	bash hack/control-plane build && bash hack/control-plane start

# End to end on a cluster with nodes (kind, k3d, minikube): make e2e KUBECONFIG=~/.kube/config
e2e: $(VENV)/.installed
	HTTPD_OPERATOR_E2E_KUBECONFIG=$${KUBECONFIG:-$$HOME/.kube/config} $(BIN)/python -m pytest tests/e2e -v

# A node (kubelet + containerd) on the control plane above; needs root and
# apt-get install containerd runc containernetworking-plugins
node: control-plane
	bash hack/node build && bash hack/node start

# Every image the project ships, built offline with podman (hack/images); prints NAME:TAG lines.
images:
	bash hack/images build

# The images and the chart (an OCI artifact, by Helm's engine) to a registry of yours:
#   make push REGISTRY=registry.example.com/httpd-operator
push: $(VENV)/.installed
	@test -n "$(REGISTRY)" || { echo "make push REGISTRY=host/path" >&2; exit 2; }
	bash hack/images push $(REGISTRY)
	$(BIN)/python hack/chart.py push $(REGISTRY)

# End to end on this machine alone (root): a control plane and two nodes, the images built and
# imported, tests/e2e; then a control plane with PodSecurityPolicy admission for the restricted
# profile's suite. Stopped afterwards unless E2E_KEEP=1 (see hack/e2e-local).
e2e-local: $(VENV)/.installed
	PYTHON=$(BIN)/python bash hack/e2e-local

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache
