# speechtok — two commands: `make test` (set up everything, then run the suite) and `make serve`.
SHELL := /bin/bash
PYTHON ?= python3.11
VENV := .venv
PY := $(VENV)/bin/python
EXTRAS ?= dev,probe,train,cpu,serve
STAMPS := $(VENV)/.stamps

# Debian packages: free TTS voices (no MBROLA), WordNet sentences, sox, Boost/cmake for KenLM,
# chromium (headless: the tests render the probe's report.html), and fluidsynth with a free General
# MIDI soundfont (music noise for R-Spin and the robustness probe).
APT_PACKAGES := espeak-ng libespeak-ng1 flite festival festvox-kallpc16k festvox-kdlpc16k \
	festvox-us-slt-hts wordnet-base sox cmake build-essential zlib1g-dev libbz2-dev liblzma-dev \
	libboost-program-options-dev libboost-system-dev libboost-thread-dev libboost-test-dev \
	chromium fluidsynth fluid-soundfont-gm

.PHONY: setup apt venv kenlm lint typecheck test test-fast serve proto clean

setup: apt venv kenlm

apt: $(STAMPS)/apt
$(STAMPS)/apt: Makefile  # checked again when the list changes; installs only what is missing
	@missing=$$(for p in $(APT_PACKAGES); do dpkg-query -W -f='$${Status}\n' $$p 2>/dev/null \
		| grep -q "ok installed" || echo $$p; done); \
	if [ -n "$$missing" ]; then \
		echo "installing Debian packages: $$missing"; \
		SUDO=$$([ "$$(id -u)" = 0 ] || echo sudo); \
		$$SUDO apt-get update -q && DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -q \
			--no-install-recommends $$missing; \
	fi
	@mkdir -p $(STAMPS) && touch $@

venv: $(STAMPS)/venv-$(EXTRAS)
$(STAMPS)/venv-$(EXTRAS): pyproject.toml
	@[ -x $(PY) ] || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -e '.[$(EXTRAS)]'
	@mkdir -p $(STAMPS) && touch $@

# KenLM's lmplz/build_binary, built once from the kenlm sdist against Debian's Boost.
kenlm: $(VENV)/bin/lmplz
$(VENV)/bin/lmplz: | $(STAMPS)/apt $(STAMPS)/venv-$(EXTRAS)
	scripts/build_kenlm.sh $(VENV)

lint: venv
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .

typecheck: venv
	$(VENV)/bin/mypy

test: setup lint typecheck
	$(VENV)/bin/pytest

test-fast: setup
	$(VENV)/bin/pytest -m "not slow"

# Main job: the gRPC service (Ray Serve) on the shipped default model, on 127.0.0.1:50051
# until Ctrl-C. Try it from another shell: speechtok client tokenize some.wav
# (HOST=0.0.0.0 to open it beyond loopback; then set SPEECHTOK_API_KEYS.)
HOST ?= 127.0.0.1
PORT ?= 50051
serve: setup
	$(VENV)/bin/speechtok serve --host $(HOST) --port $(PORT)

# Proto stubs are checked in; regenerate after editing proto/ (tests compare them).
proto: venv
	scripts/gen_proto.sh

clean:
	rm -rf $(VENV) build *.egg-info .pytest_cache .mypy_cache .ruff_cache
