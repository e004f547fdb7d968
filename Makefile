# The README's commands. Every target installs what it needs first.
.PHONY: demo test lint setup sandbox-start sandbox-stop clean

VENV := .venv/bin

setup:
	@bash scripts/setup.sh

demo: setup
	@$(VENV)/tthc demo

test: setup
	@bash scripts/test.sh

lint: setup
	@$(VENV)/ruff check .

sandbox-start: setup
	@$(VENV)/tthc sandbox start

sandbox-stop: setup
	@$(VENV)/tthc sandbox stop

clean:
	rm -rf var .pytest_cache .ruff_cache
