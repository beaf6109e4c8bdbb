#!/usr/bin/env bash
# Set up (scripts/setup.sh), then run the demo: two throwaway brokers, the agent on
# emulated hardware, and a live view of what the city platform receives.
# Extra arguments go to `edge-agent demo` (e.g. --duration 30).
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
exec .venv/bin/edge-agent demo "$@"
