# pullguard: `make run` serves the webhook on its embedded defaults, `make test` runs everything.
# Every tool the tests need is installed here, idempotently: a stamp per step, redone when its inputs change.

SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMPS := .stamps
PYTEST_ARGS ?=

.PHONY: run test lint unit integration e2e bench certs deps k8s-bins helm chart debs clean image push install release

# Serving needs only the runtime dependencies (no test or lint tools).
run: $(STAMPS)/runtime
	$(BIN)/pullguard serve --host 127.0.0.1 --port 8443 --cert-dir certs --dns localhost --ip 127.0.0.1 --ip ::1

# The whole suite: unit, integration (real registries) and e2e (real kube-apiserver); e2e may not skip here.
test: deps lint
	PULLGUARD_K8S_BIN="$$(bash scripts/k8s-bin-dir.sh)" PULLGUARD_REQUIRE_E2E=1 $(BIN)/pytest -q $(PYTEST_ARGS)

lint: $(STAMPS)/venv
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy
	$(BIN)/lint-imports

unit: $(STAMPS)/venv
	$(BIN)/pytest -q tests/unit $(PYTEST_ARGS)

integration: deps
	$(BIN)/pytest -q tests/integration $(PYTEST_ARGS)

e2e: deps
	PULLGUARD_K8S_BIN="$$(bash scripts/k8s-bin-dir.sh)" PULLGUARD_REQUIRE_E2E=1 $(BIN)/pytest -q tests/e2e $(PYTEST_ARGS)

bench: deps
	$(BIN)/python -m bench.run
	$(BIN)/python -m bench.registry
	$(BIN)/python -m bench.apiserver

certs: $(STAMPS)/runtime
	$(BIN)/pullguard certs --out certs --dns localhost --ip 127.0.0.1 --ip ::1

deps: $(STAMPS)/venv debs k8s-bins helm

debs:
	bash scripts/install-debs.sh

# Slow the first time (module download and compile); cached by version under ~/.cache/pullguard afterwards.
k8s-bins:
	bash scripts/build-k8s-bins.sh

# helm, built from the helm.sh/helm/v4 version in tests/e2e/helmbin/go.mod; cached like the Kubernetes binaries.
helm:
	bash scripts/build-helm.sh

# charts/pullguard/templates/ from manifests/ (a unit test fails while they are stale).
chart: $(STAMPS)/runtime
	$(BIN)/python scripts/gen_chart.py

# The container image from ./Containerfile, built with mmdebstrap + buildah (no Docker, no public registry); cached
# by its inputs under ~/.cache/pullguard/image-<hash>. Prints the OCI layout; IMAGE_REGISTRY=host:port also pushes.
image: $(STAMPS)/venv debs
	IMAGE_REGISTRY="$(IMAGE_REGISTRY)" bash scripts/build-image.sh

# Where the install runs from: IMAGE=host/repo:tag (or @sha256:...) names the image for push, install and release.
IMAGE ?=
KUBECTL ?= kubectl
KUBECONFIG ?=
INSTALL_FROM ?= manifests

# Build (cached) and push the image with skopeo, no Docker: make push IMAGE=host/repo:tag
# (PUSH_TLS_VERIFY=false for a registry this machine does not trust; PUSH_CREDS=user:password).
push: $(STAMPS)/venv debs
	bash scripts/push-image.sh "$(IMAGE)"

# The install with that image, applied in one command (and the default policy, only if the cluster has none);
# INSTALL_FROM=certs/cert-manager for the cert-manager variant.
install: $(STAMPS)/runtime
	$(BIN)/python scripts/render_install.py --apply --image "$(IMAGE)" --kubectl "$(KUBECTL)" --from "$(INSTALL_FROM)" \
		$(if $(KUBECONFIG),--kubeconfig "$(KUBECONFIG)")

# The release manifests for kubectl apply -f: dist/install.yaml with that image, dist/policy.yaml.
release: $(STAMPS)/runtime
	$(BIN)/python scripts/render_install.py --out dist --image "$(IMAGE)" --kubectl "$(KUBECTL)" --from "$(INSTALL_FROM)"

# Two stamps: the runtime (what `make run` needs) and the dev tools on top (tests, linters). setuptools' notice
# "Editable installation. Please be careful with folders..." (an InformationOnly warning) is not shown.
QUIET_EDITABLE := PYTHONWARNINGS="ignore:Editable installation"
$(STAMPS)/runtime: pyproject.toml
	@mkdir -p $(STAMPS)
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(QUIET_EDITABLE) $(BIN)/pip install -q -e .
	touch $@

$(STAMPS)/venv: $(STAMPS)/runtime pyproject.toml
	$(QUIET_EDITABLE) $(BIN)/pip install -q -e '.[dev]'
	touch $@

clean:
	rm -rf $(VENV) $(STAMPS) .mypy_cache .ruff_cache .pytest_cache
