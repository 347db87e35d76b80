#!/usr/bin/env bash
# Set up (first time only does real work) and run live_mer: bash scripts/run.sh [listen options...]
# With no sound card it plays the built-in demo piece; OSC goes to 127.0.0.1:9000 unless --osc is given.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
bash scripts/setup.sh run
exec .venv/bin/live-mer listen "$@"
