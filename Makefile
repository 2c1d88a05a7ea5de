# ballast: `make serve` (install, build, fetch the default model, serve it) and `make test`.
SHELL := /bin/bash
BUILD ?= build
JOBS ?= $(shell nproc)
VENV := .venv
PY := $(VENV)/bin/python
MODEL_DIR ?= $(or $(XDG_CACHE_HOME),$(HOME)/.cache)/ballast/models
DEFAULT_MODEL := $(MODEL_DIR)/SmolLM2-135M-Instruct.Q4_1.gguf
APT_PACKAGES := build-essential cmake ninja-build pkg-config nlohmann-json3-dev \
  libspdlog-dev libfmt-dev libcli11-dev libpcre2-dev libutf8proc-dev libsentencepiece-dev libopenblas-dev libgtest-dev \
  zstd python3-venv unzip curl
PORT ?= 8080
HOST ?= 127.0.0.1

.PHONY: all deps venv build test test-gpu serve models bench clean

all: build

# Debian packages: installed only when one is missing (apt-get needs root, as on CI).
deps:
	@missing=$$(for p in $(APT_PACKAGES); do dpkg-query -W -f='$${Status}\n' $$p 2>/dev/null | grep -q "install ok installed" || echo $$p; done); \
	if [ -n "$$missing" ]; then \
	  echo "installing Debian packages: $$missing"; \
	  SUDO=$$([ $$(id -u) -eq 0 ] || echo sudo); \
	  $$SUDO apt-get update -qq && DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -qq $$missing; \
	fi

venv: $(VENV)/.stamp
$(VENV)/.stamp: requirements-test.txt
	python3 -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -r requirements-test.txt
	touch $@

$(BUILD)/build.ninja: CMakeLists.txt | deps
	cmake -S . -B $(BUILD) -G Ninja -DCMAKE_BUILD_TYPE=Release -DBALLAST_PYTHON=$(abspath $(PY))

build: deps $(BUILD)/build.ninja
	cmake --build $(BUILD) -j $(JOBS)

models: venv
	$(PY) tools/fetch_models.py --dir "$(MODEL_DIR)" --all

$(DEFAULT_MODEL): | venv
	$(PY) tools/fetch_models.py --dir "$(MODEL_DIR)"

test: deps venv build
	$(PY) tools/fetch_models.py --dir "$(MODEL_DIR)" --all
	cd $(BUILD) && BALLAST_MODEL_DIR="$(MODEL_DIR)" ctest --output-on-failure -j 2

serve: deps venv build $(DEFAULT_MODEL)
	$(BUILD)/bin/ballast serve --model "$(DEFAULT_MODEL)" --host $(HOST) --port $(PORT)

bench: build $(DEFAULT_MODEL)
	$(BUILD)/bin/ballast bench --model "$(DEFAULT_MODEL)"

test-gpu:
	bash tools/test_gpu.sh

clean:
	rm -rf $(BUILD)
