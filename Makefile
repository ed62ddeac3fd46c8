# Two commands do everything (see README.md):
#   make all   - create .venv, install, train the default CNN, build the book: English in
#                _build/html, Chinese (zh_CN) in _build/html/zh_CN
#   make test  - the whole test suite: ruff, book build (warnings are errors), unit tests, nbval
#   make lab   - open the chapters in JupyterLab, with .venv's Python as the notebooks' kernel
#   make i18n  - after an English edit: update the translation catalogues in locales/
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
JOBS ?= 2
export PYTHONHASHSEED := 0

.PHONY: all install train book i18n lint test lab clean

all: train book

install: $(VENV)/.installed

# uv installs the same pinned requirements from PyPI as pip would, in parallel: about 30 s
# on 2 cores instead of pip's 80 (bytecode compiled ahead, as pip does, so that every
# kernel and subprocess of the tests starts without compiling the libraries it imports).
UV := $(VENV)/bin/uv
UV_VERSION := 0.13.9

$(VENV)/.installed: requirements.txt pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet uv==$(UV_VERSION)
	$(UV) pip install --python $(PY) --quiet --compile-bytecode -r requirements.txt
	$(UV) pip install --python $(PY) --quiet --no-deps -e .
	touch $@

train: install
	$(PY) -m mnist_cnn train --out _build/model.npz

# The "draw a digit" page runs the book's trained model in JavaScript: export it before each
# build (generated, never committed). pretrained() trains once and caches the model.
WEB_MODEL := chapters/_static/mnist_cnn_model.js

$(WEB_MODEL): $(VENV)/.installed $(wildcard mnist_cnn/*.py)
	mkdir -p _build
	$(PY) -c "import mnist_cnn; mnist_cnn.save(mnist_cnn.pretrained(), '_build/pretrained.npz')"
	$(PY) -m mnist_cnn export-web _build/pretrained.npz $@

# Two editions from the same sources: English, and Chinese with the catalogues of
# locales/zh_CN (tools/i18n.py build-zh runs jupyter-book with the same flags and a
# zh_CN config generated from _config.yml; Sphinx compiles the .po files to .mo).
# The two builds run side by side (each keeps one core busy; they write to different
# folders), English's log printed after both have finished; either one failing fails.
book: install $(WEB_MODEL)
	mkdir -p _build; \
	$(VENV)/bin/jupyter-book build --all -W -n --keep-going . > _build/book-en.log 2>&1 & \
	en=$$!; $(PY) tools/i18n.py build-zh; zh=$$?; wait $$en; en_rc=$$?; \
	cat _build/book-en.log; test $$en_rc -eq 0 && test $$zh -eq 0

# New or changed English paragraphs become empty msgstrs in locales/zh_CN/LC_MESSAGES;
# translate them, then `$(PY) tools/i18n.py check` (README.md, "Translating").
i18n: install
	$(PY) tools/i18n.py update

lint: install
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .

# The notebooks first: each runs whole on one worker (--dist loadscope) and the longest
# take minutes, so starting them early and ending on the short unit-test files keeps
# both workers busy until the end.
test: lint book
	$(PY) -m pytest -n $(JOBS) --dist loadscope --durations=25 --nbval --nbval-current-env \
		--nbval-sanitize-with nbval_sanitize.cfg chapters tests

# jupyter_client runs the default "python3" kernel with the Python that runs JupyterLab, so the
# notebooks import this .venv's mnist_cnn; jupyterlab-myst renders their MyST markup.
lab: install
	$(VENV)/bin/jupyter lab chapters/

clean:
	rm -rf _build $(WEB_MODEL)
	find locales -name '*.mo' -delete
