PY ?= python3.11
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: install demo test bench app packs pretrained clean

install: $(STAMP)

$(STAMP): requirements.txt pyproject.toml scripts/install_browser.sh
	test -x $(BIN)/python || $(PY) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	# lws 1.2.8's pre-generated C++ does not compile on Python 3.11: build it from its .pyx.
	$(BIN)/pip install --quiet numpy Cython setuptools wheel
	LWS_USE_CYTHON=1 $(BIN)/pip install --quiet --no-build-isolation lws==1.2.8
	$(BIN)/pip install --quiet -r requirements.txt
	# The optional Ray executor (specsynth[ray]), so its tests run.
	$(BIN)/pip install --quiet "ray>=2.9"
	# tinysoundfont renders the General MIDI soundfont offline; its pyaudio dependency is only
	# for live playback and does not build here.
	$(BIN)/pip install --quiet --no-deps tinysoundfont
	$(BIN)/pip install --quiet --no-deps -e .
	# Debian's Chromium and its driver, for the app's real-browser test.
	bash scripts/install_browser.sh
	touch $(STAMP)

demo: install
	$(BIN)/specsynth render demo/demo.toml -o out

test: install
	$(BIN)/python -m pytest -q tests

bench: install
	$(BIN)/python benchmarks/phase.py --write
	$(BIN)/python benchmarks/model.py --write
	$(BIN)/python benchmarks/render.py --full --write
	$(BIN)/python benchmarks/app.py --write

app: install
	$(BIN)/specsynth app

# Real recordings for the pretrained model's training data (specsynth/model/packs.py); only
# `make pretrained` installs them. apt runs only when a package is missing, with sudo unless root.
PACKS := sonic-pi-samples lmms-common hydrogen-drumkits
SUDO := $(shell [ "$$(id -u)" = 0 ] || echo sudo)

packs:
	@missing=; for p in $(PACKS); do dpkg -s $$p 2>/dev/null | grep -q '^Status: install ok installed' || missing="$$missing $$p"; done; \
	if [ -z "$$missing" ]; then echo "Sample packs already installed: $(PACKS)"; \
	else echo "Installing sample packs:$$missing"; \
	  $(SUDO) apt-get update && $(SUDO) env DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends $(PACKS); fi

pretrained: install packs
	$(BIN)/python -m specsynth.model.recipe pretrained

clean:
	rm -rf $(VENV) out .pytest_cache
