# Two commands on a fresh machine: `make demo` (the operator against an emulated API server;
# installs only the emulator extra) and `make test` (everything; suites that need podman or a
# control plane say why they skip). `make test-quick` leaves the slow suites out.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin

.PHONY: demo test test-quick lint bench render clean control-plane e2e node e2e-local

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

lint: $(VENV)/.installed
	$(BIN)/ruff check operator tests bench

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

# End to end on this machine alone: control plane + node, the httpd image (hack/httpd-image
# build) imported into the node, then stopped (both) unless E2E_KEEP=1.
e2e-local: $(VENV)/.installed
	bash hack/control-plane build
	bash hack/node build
	bash hack/control-plane start >/dev/null
	bash hack/node start
	image=$$(bash hack/httpd-image build) && bash hack/node import-image "$$image" \
	  && eval "$$(bash hack/node env)" && HTTPD_OPERATOR_E2E_IMAGE="$$image" \
	  $(BIN)/python -m pytest tests/e2e -v -p no:cacheprovider; rc=$$?; \
	  if [ -z "$(E2E_KEEP)" ]; then bash hack/node stop; bash hack/control-plane stop; fi; exit $$rc

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache
