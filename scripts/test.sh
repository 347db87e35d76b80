#!/usr/bin/env bash
# The test command: bash scripts/test.sh [pytest args...]
# Sets up (scripts/setup.sh test: apt packages, .venv with the test extras), starts the PulseAudio test rig
# (scripts/pulse_rig.sh), runs pytest with Qt offscreen, stops the rig, and exits with pytest's status.
# Without PulseAudio (no root, no apt) the rig does not start; tests that need audio skip themselves.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

bash scripts/setup.sh test

cleanup() { bash scripts/pulse_rig.sh stop >/dev/null || true; }
trap cleanup EXIT
if ! bash scripts/pulse_rig.sh start; then
  echo "test.sh: WARNING: the PulseAudio test rig did not start; tests that need audio will be skipped." >&2
fi

export QT_QPA_PLATFORM=${QT_QPA_PLATFORM:-offscreen}
status=0
.venv/bin/python -m pytest -q "$@" || status=$?
if [ "$status" -eq 5 ]; then
  echo "test.sh: FAILED: pytest collected no tests (exit code 5)" >&2
fi
exit "$status"
