#!/usr/bin/env bash
# Reproduce the shipped student from ../shared/data with one command, on CPU, from nothing:
#   bash scripts/reproduce.sh                 # -> models/live_mer_student.{onnx,json}
#   bash scripts/reproduce.sh --name trial    # extra arguments go to `train.py all` (e.g. another model name;
#                                             # all of them: .venv/bin/python scripts/train.py --help)
#   bash scripts/reproduce.sh --help          # this text
# Needs the training data ($LIVE_MER_DATA, else ../shared/data: 4q/, emotify/, vgmidi/), checked before anything
# is installed. About an hour on 2 cores from an empty cache.
# Steps (each resumable: outputs are cached in .cache/ and work already done is skipped):
#   1. .venv with the train extra (scripts/setup.sh train) and the separate TensorFlow env for musicnn
#      (scripts/teachers/setup_env.sh);
#   2. two jobs side by side, one per core: render VGMIDI (fluidsynth) then embed it with musicnn; embed 4Q
#      then Emotify with musicnn. Logs: .cache/teacher/reproduce_*.log;
#   3. scripts/train.py all: our features, the teachers, the 5-fold CV table, the final fit and export.
set -euo pipefail
for arg in "$@"; do
  if [ "$arg" = "--help" ] || [ "$arg" = "-h" ]; then
    sed -n '2,/^set /{/^#/s/^# \{0,1\}//p}' "${BASH_SOURCE[0]}"  # the comment above
    exit 0
  fi
done
cd "$(dirname "${BASH_SOURCE[0]}")/.."
# the data first (scripts/paths.py is standard library only, so any Python 3 runs it): one line and exit 2
"${PYTHON:-python3}" -c 'import sys; sys.argv[0] = "reproduce.sh"; sys.path.insert(0, "scripts")
from paths import require_data; require_data(*sys.argv[1:])' \
  4q/labels.csv emotify/tracks.csv emotify/votes.csv vgmidi/midi vgmidi/annotations
log() { echo "reproduce: $(date +%H:%M:%S) $*"; }
start=$(date +%s)

log "setting up .venv (train extra) and .venv-teacher (musicnn)"
bash scripts/setup.sh train
bash scripts/teachers/setup_env.sh
cache="${LIVE_MER_CACHE:-.cache}"  # as scripts/paths.py decides
mkdir -p "$cache/teacher"

embed() { .venv-teacher/bin/python scripts/teachers/embed_musicnn.py "$@"; }
log "rendering VGMIDI and computing musicnn embeddings (two jobs; logs in $cache/teacher/reproduce_*.log)"
( .venv/bin/python scripts/teachers/render_vgmidi.py &&
  embed --datasets vgmidi --variants original --hop 2 --out "$cache/teacher/musicnn_hop2"
) > "$cache/teacher/reproduce_vgmidi.log" 2>&1 &
vgmidi=$!
( embed --datasets 4q &&
  embed --datasets emotify --hop 2 --out "$cache/teacher/musicnn_hop2"
) > "$cache/teacher/reproduce_4q_emotify.log" 2>&1 &
audio=$!
status=0
wait "$vgmidi" || { status=$?; echo "reproduce: VGMIDI render/embedding failed; see $cache/teacher/reproduce_vgmidi.log" >&2; }
wait "$audio" || { status=$?; echo "reproduce: 4Q/Emotify embedding failed; see $cache/teacher/reproduce_4q_emotify.log" >&2; }
[ "$status" -eq 0 ] || exit "$status"
log "teacher inputs ready after $(( ($(date +%s) - start) / 60 )) min; training"

.venv/bin/python scripts/train.py all "$@"
log "done in $(( ($(date +%s) - start) / 60 )) min"
