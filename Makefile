# kexport: every install step lives here, so a fresh machine needs only `make demo` or `make test`.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: install demo test test-fast bench stress lint clean

install: $(STAMP)

# Reinstall when the project's dependency list changes.
$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[tf,dev]'
	touch $(STAMP)

demo: install
	$(BIN)/python -m exporter.demo demo-out

test: install
	$(BIN)/python -m pytest -q

# The edit-test loop (under a minute on 2 cores: 44 s on a quiet machine): the tests not marked
# `slow`, without the format-compatibility sweeps and the load test; make test still runs all of them.
FAST_SKIP := test_wild test_wild_layouts test_convert_roundtrip test_old_keras test_real_fixtures \
	test_recipes test_server_load
test-fast: install
	$(BIN)/python -m pytest -q -m "not slow" $(foreach f,$(FAST_SKIP),--ignore tests/$(f).py)

bench: install
	$(BIN)/python -m bench.run
	$(BIN)/python -m bench.wild

# Long reliability runs: 2,000+ hostile artifacts, 54 SIGKILLs, 16 clients x 2,000 requests.
stress: install
	$(BIN)/python -m bench.stress

lint: install
	$(BIN)/ruff check exporter serving tests bench

# Regenerate serving/protos/*_pb2.py from their .proto files with grpcio-tools (a dev dependency);
# tests/test_serving_protos.py fails when a .proto changed without this.
.PHONY: proto
proto: install
	$(BIN)/python serving/protos/generate.py

clean:
	rm -rf $(VENV) demo-out bench-out .pytest_cache *.egg-info
	find . -name __pycache__ -type d -prune -exec rm -rf {} +

# TensorFlow Serving bundle of the sample model (what `make demo` builds, then bundles).
BUNDLE ?= demo-out/bundle
.PHONY: bundle-demo docker-build docker-run
bundle-demo: install
	$(BIN)/python -m exporter.demo demo-out --bundle-only

# These two need a container engine; without one they stop with a clear message.
docker-build:
	@docker info >/dev/null 2>&1 || { echo "docker-build: no container engine is running (docker info failed); build the image where Docker runs, or use 'kexport serve $(BUNDLE)' locally." >&2; exit 1; }
	docker build -t kexport-bundle $(BUNDLE)

docker-run:
	@docker info >/dev/null 2>&1 || { echo "docker-run: no container engine is running (docker info failed); use 'kexport serve $(BUNDLE)' to serve the bundle locally." >&2; exit 1; }
	docker run --rm -p 8500:8500 -p 8501:8501 kexport-bundle

# Models from the wild: convert --to keras over a folder of old and new artifacts, one table.
.PHONY: bench-wild
bench-wild: install
	$(BIN)/python -m bench.wild

# Build the wheel, install it with [tf] into a fresh venv in a temp folder (outside the
# checkout) and run inspect, convert, slice, verify, bundle, serve and predict from there.
.PHONY: wheel-check runtime-env runtime-check
wheel-check: install
	$(BIN)/python tests/wheel_check.py

# tensorflow-cpu of the serving image's TensorFlow, in its own venv cached in ~/.cache/kexport
# (installed once, ~250 MB). Empty SERVING_VERSION: the release kexport targets by default.
SERVING_VERSION ?=
runtime-env: install
	$(BIN)/python -c 'from serving.runtime_check import DEFAULT_SERVING_VERSION as D, runtime_python as r; print(r("$(SERVING_VERSION)" or D, print))'

# The demo bundle loaded, and its warm-up requests replayed, under the image's TensorFlow.
runtime-check: bundle-demo runtime-env
	$(BIN)/kexport bundle $(BUNDLE) --check-runtime $(if $(SERVING_VERSION),--serving-version $(SERVING_VERSION))
