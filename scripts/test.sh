#!/usr/bin/env bash
# Set up (scripts/setup.sh --test), then lint, type-check, check the import layers and run the
# whole test suite, then the rig suite (hil/tests) on its sim rig (JUnit in build/).
# Tests start their own mosquitto brokers on free loopback ports.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh --test
echo "== ruff" && .venv/bin/ruff check edge_agent tests hil
echo "== mypy (strict: edge_agent and hil)" && .venv/bin/mypy
echo "== asyncapi (docs/asyncapi.yaml)" && scripts/asyncapi.sh
echo "== lint-imports (layers, see ARCHITECTURE.md)" && .venv/bin/lint-imports
echo "== pytest" && .venv/bin/python -m pytest -q -p no:cacheprovider "$@"
echo "== hil sim (hil/tests on the sim rig, docs/hil.md)" \
    && scripts/hil.sh sim -q --junitxml=build/hil-sim.xml
