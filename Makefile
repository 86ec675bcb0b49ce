PY ?= python3.11
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: install demo test bench app clean

install: $(STAMP)

$(STAMP): requirements.txt pyproject.toml
	test -x $(BIN)/python || $(PY) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	# lws 1.2.8's pre-generated C++ does not compile on Python 3.11: build it from its .pyx.
	$(BIN)/pip install --quiet numpy Cython setuptools wheel
	LWS_USE_CYTHON=1 $(BIN)/pip install --quiet --no-build-isolation lws==1.2.8
	$(BIN)/pip install --quiet -r requirements.txt
	# tinysoundfont renders the General MIDI soundfont offline; its pyaudio dependency is only
	# for live playback and does not build here.
	$(BIN)/pip install --quiet --no-deps tinysoundfont
	$(BIN)/pip install --quiet --no-deps -e .
	touch $(STAMP)

demo: install
	$(BIN)/python -m specsynth.demo

test: install
	$(BIN)/python -m pytest -q tests

bench: install
	$(BIN)/python benchmarks/phase.py

clean:
	rm -rf $(VENV) out .pytest_cache
