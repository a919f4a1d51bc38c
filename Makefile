# Two commands a new user needs: `make study` and `make test` (see README.md).
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STUDY  ?= runs/study

.PHONY: study test data browser bench-keras clean constraints

# The venv is rebuilt when pyproject.toml or constraints.txt changes; the stamp files record what was installed.
# constraints.txt holds the versions the tests last passed with, so a fresh machine installs those, not whatever
# was released since (pyproject.toml keeps ranges for installing convlens as a library).
$(VENV)/.installed: pyproject.toml constraints.txt
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -c constraints.txt -e '.[serve,onnx,notebook]'
	touch $@

$(VENV)/.installed-test: $(VENV)/.installed
	$(BIN)/pip install --quiet -c constraints.txt -e '.[test]'
	touch $@

# After changing a dependency: install it, run the tests, then record what they passed with.
constraints:
	{ sed -n '1,3p' constraints.txt; $(BIN)/pip freeze --exclude-editable | grep -v -E '^(ruff|pip|setuptools|wheel)=='; } \
	  > constraints.txt.new && mv constraints.txt.new constraints.txt

# Offline Debian machines (CI, this project's machines) get the data from the Debian package when we are
# root; everywhere else `convlens data fetch` downloads it from the official URLs into the user cache.
data: $(VENV)/.installed
	@if [ ! -d /usr/share/datasets/fashion-mnist ] && [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
	  echo "installing the Debian package dataset-fashion-mnist"; \
	  { apt-get install -y -qq dataset-fashion-mnist || { apt-get update -qq && apt-get install -y -qq dataset-fashion-mnist; }; } >/dev/null 2>&1 \
	    || echo "note: apt could not install dataset-fashion-mnist; convlens will download the data"; \
	fi
	$(BIN)/convlens data fetch

# The whole assignment: EDA, baseline, CNN design, experiments, probes, export -> $(STUDY)/report.html.
# STUDY_ARGS=--quick for a first look; re-running reuses finished runs.
study: data
	$(BIN)/convlens study --out $(STUDY) $(STUDY_ARGS)

# The web page test drives Debian's Chromium; install it the same way as the data when we are root.
browser:
	@if ! command -v chromium >/dev/null && [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
	  echo "installing the Debian package chromium (for the web page test)"; \
	  { apt-get install -y -qq chromium || { apt-get update -qq && apt-get install -y -qq chromium; }; } >/dev/null 2>&1 \
	    || echo "note: apt could not install chromium; the browser test will say what to do"; \
	fi

test: $(VENV)/.installed-test data browser
	$(BIN)/python -m pytest

# The benchmark's reference: the write-ups' Keras code on TensorFlow CPU, in its own venv (never a dependency of
# convlens). bench/time_to_accuracy.py runs it in the same invocation as convlens.
KERAS_VENV := bench/.venv-keras
$(KERAS_VENV)/.installed: bench/requirements-keras.txt
	$(PYTHON) -m venv $(KERAS_VENV)
	$(KERAS_VENV)/bin/pip install --quiet -r bench/requirements-keras.txt
	touch $@

bench-keras: $(KERAS_VENV)/.installed

clean:
	rm -rf $(VENV) $(KERAS_VENV) runs .pytest_cache
