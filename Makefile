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
# Only for `make fuzz` / `make test-asan` (clang + libFuzzer runtime); not needed by build/test/serve.
FUZZ_APT_PACKAGES := clang libclang-rt-dev
FUZZ_BUILD ?= build-fuzz
ASAN_BUILD ?= build-asan
FUZZ_SECONDS ?= 60
# Targets `make fuzz` runs (default: every fuzz/*.cpp) and their -max_len.
FUZZ_TARGETS ?= $(basename $(notdir $(wildcard fuzz/*.cpp)))
FUZZ_MAX_LEN_json_body := 8192
FUZZ_MAX_LEN_http := 8192
FUZZ_MAX_LEN_gguf := 65536
FUZZ_MAX_LEN_safetensors := 16384
FUZZ_MAX_LEN_torch_bin := 65536
FUZZ_MAX_LEN_pickle := 8192
FUZZ_MAX_LEN_tokenizer := 16384
FUZZ_MAX_LEN_jinja := 4096
PORT ?= 8080
HOST ?= 127.0.0.1

.PHONY: all deps fuzz-deps venv build test test-gpu test-asan test-asan-build fuzz serve models bench soak clean

all: build

# Debian packages: installed only when one is missing (apt-get needs root, as on CI).
deps:
	@missing=$$(for p in $(APT_PACKAGES); do dpkg-query -W -f='$${Status}\n' $$p 2>/dev/null | grep -q "install ok installed" || echo $$p; done); \
	if [ -n "$$missing" ]; then \
	  echo "installing Debian packages: $$missing"; \
	  SUDO=$$([ $$(id -u) -eq 0 ] || echo sudo); \
	  $$SUDO apt-get update -qq && DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -qq $$missing; \
	fi

fuzz-deps:
	@missing=$$(for p in $(APT_PACKAGES) $(FUZZ_APT_PACKAGES); do dpkg-query -W -f='$${Status}\n' $$p 2>/dev/null | grep -q "install ok installed" || echo $$p; done); \
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

# libFuzzer + ASan/UBSan targets (fuzz/, docs/fuzzing.md): each runs FUZZ_SECONDS on its
# seeds (fuzz/corpus/<t>) plus a working corpus in $(FUZZ_BUILD)/corpus/<t>. A crash fails
# the target and leaves its reproducer in $(FUZZ_BUILD)/artifacts/<t>/.
fuzz: fuzz-deps
	CC=clang CXX=clang++ cmake -S fuzz -B $(FUZZ_BUILD) -G Ninja
	cmake --build $(FUZZ_BUILD) -j $(JOBS) --target $(addprefix fuzz_,$(FUZZ_TARGETS))
	@set -o pipefail; for spec in $(foreach t,$(FUZZ_TARGETS),$(t):$(or $(FUZZ_MAX_LEN_$(t)),4096)); do \
	  t=$${spec%%:*}; len=$${spec##*:}; \
	  mkdir -p $(FUZZ_BUILD)/corpus/$$t $(FUZZ_BUILD)/artifacts/$$t; \
	  echo "== fuzz_$$t: $(FUZZ_SECONDS)s, max_len $$len"; \
	  if ! $(FUZZ_BUILD)/bin/fuzz_$$t -max_total_time=$(FUZZ_SECONDS) -max_len=$$len \
	    -timeout=25 -rss_limit_mb=2560 -print_final_stats=1 $$([ -f fuzz/$$t.dict ] && echo -dict=fuzz/$$t.dict) \
	    -artifact_prefix=$(FUZZ_BUILD)/artifacts/$$t/ $(FUZZ_BUILD)/corpus/$$t fuzz/corpus/$$t \
	    2>&1 | tee $(FUZZ_BUILD)/fuzz_$$t.log | { grep -E '^(==[0-9]+==|stat::number_of_executed_units|SUMMARY|Done)' || true; }; then \
	    echo "fuzz_$$t FAILED: see $(FUZZ_BUILD)/fuzz_$$t.log and $(FUZZ_BUILD)/artifacts/$$t/"; exit 1; \
	  fi; \
	done

# ASan+UBSan (gcc, separate build dir): the unit tests, then the end-to-end server tests
# (ASAN_PY_TESTS) against the sanitized `ballast` (BALLAST_BIN). A sanitizer report in a
# server process is written under $(ASAN_BUILD)/asan-logs/ and fails the target even when
# the test that caused it passed. ASAN_TIMEOUT bounds each half (seconds).
ASAN_PY_TESTS ?= tests/server/test_hardening.py tests/server/test_openai.py tests/server/test_decode_cleanup.py
ASAN_TIMEOUT ?= 2400
ASAN_ENV = ASAN_OPTIONS=detect_leaks=1:halt_on_error=1:abort_on_error=0:log_path=$(abspath $(ASAN_BUILD))/asan-logs/asan \
  UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1:log_path=$(abspath $(ASAN_BUILD))/asan-logs/ubsan
test-asan-build: deps
	cmake -S . -B $(ASAN_BUILD) -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo -DCMAKE_CXX_FLAGS_RELWITHDEBINFO="-O1 -g1 -DNDEBUG" -DBALLAST_CUDA=OFF \
	  -DBALLAST_PYTHON=$(abspath $(PY)) \
	  -DCMAKE_CXX_FLAGS="-fsanitize=address,undefined -fno-sanitize-recover=undefined -fno-omit-frame-pointer" \
	  -DCMAKE_EXE_LINKER_FLAGS="-fsanitize=address,undefined"
	cmake --build $(ASAN_BUILD) -j $(JOBS) --target ballast_tests ballast

test-asan: venv test-asan-build
	rm -rf $(ASAN_BUILD)/asan-logs && mkdir -p $(ASAN_BUILD)/asan-logs
	cd $(ASAN_BUILD) && BALLAST_MODEL_DIR="$(MODEL_DIR)" $(ASAN_ENV) timeout $(ASAN_TIMEOUT) ./bin/ballast_tests
	BALLAST_SANITIZER=1 BALLAST_BIN=$(abspath $(ASAN_BUILD))/bin/ballast BALLAST_MODEL_DIR="$(MODEL_DIR)" $(ASAN_ENV) \
	  timeout $(ASAN_TIMEOUT) $(PY) -m pytest -q -p no:cacheprovider $(ASAN_PY_TESTS)
	@if ls $(ASAN_BUILD)/asan-logs/* >/dev/null 2>&1; then \
	  echo "sanitizer reports:"; cat $(ASAN_BUILD)/asan-logs/*; exit 1; fi
	@echo "test-asan: clean"

# Long-running soak of `ballast serve` (bench/soak.py): SOAK_SECONDS (600) and at least
# SOAK_REQUESTS (10000) mixed requests over loopback on the default model, then the checks.
soak: venv build $(DEFAULT_MODEL)
	BALLAST_MODEL_DIR="$(MODEL_DIR)" $(PY) bench/soak.py --bin $(BUILD)/bin/ballast --model "$(DEFAULT_MODEL)" --progress

test-gpu:
	bash tools/test_gpu.sh

clean:
	rm -rf $(BUILD) $(FUZZ_BUILD) $(ASAN_BUILD)
