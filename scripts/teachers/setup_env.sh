#!/usr/bin/env bash
# Teacher environment: a separate venv, .venv-teacher, with TensorFlow (CPU) and musicnn, for
# scripts/teachers/embed_musicnn.py. Kept apart from .venv because musicnn is a TF1-style graph model
# whose pins clash with the main environment (numpy 2, torch); live_mer never imports any of it.
#   bash scripts/teachers/setup_env.sh         # create or update .venv-teacher
#   PYTHON=python3.11 bash scripts/teachers/setup_env.sh
#
# Versions and why:
# - Python 3.11 (the project's interpreter).
# - tensorflow-cpu 2.15.1: the last TensorFlow whose tf.compat.v1.layers (conv2d, dense,
#   batch_normalization, ...) work out of the box. From 2.16 on, Keras 3 is the default and those layers
#   need tf-keras plus TF_USE_LEGACY_KERAS=1. 2.15 ships cp311 wheels and is CPU-only here.
# - numpy 1.26.4: tensorflow 2.15 requires numpy < 2.
# - librosa 0.10.2.post1 (+ soxr, soundfile): reads FLAC/Ogg-Opus via soundfile and works with numpy 1.26;
#   musicnn's own pin (librosa >= 0.7) is satisfied. Used only for resampling and the mel filterbank.
# - musicnn 0.1.0 (ISC) installed with --no-deps: its metadata pins numpy < 1.17 (no wheels for
#   Python 3.11), which is stale, not a real constraint: the code only uses tf.compat.v1 APIs. The
#   MSD_musicnn / MTT_musicnn checkpoints ship inside the wheel (musicnn/<model>/.data-00000-of-00001,
#   .index, .meta), so nothing is downloaded at run time.
# - tqdm for progress bars.
# embed_musicnn.py does not call musicnn.extractor: that casts the mel spectrogram to float16, which
# overflows (inf) on loud audio, and rebuilds the TF graph for every file. It reuses musicnn.models and
# the shipped checkpoint with its own float32 front end and one session.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/../.."
VENV=.venv-teacher
PYTHON=${PYTHON:-python3.11}
command -v "$PYTHON" >/dev/null 2>&1 || PYTHON=python3
export PIP_DISABLE_PIP_VERSION_CHECK=1

if [ ! -x "$VENV/bin/python" ] || ! "$VENV/bin/python" -m pip --version >/dev/null 2>&1; then
  "$PYTHON" -m venv "$VENV"
fi
# .gitignore ignores .venv/ but not .venv-teacher/: make the venv ignore itself (as virtualenv does).
echo '*' > "$VENV/.gitignore"

"$VENV/bin/python" -m pip install -q \
  "tensorflow-cpu==2.15.1" "numpy==1.26.4" "librosa==0.10.2.post1" "soundfile>=0.12" "soxr>=0.3" "tqdm>=4.60"
"$VENV/bin/python" -m pip install -q --no-deps "musicnn==0.1.0"

# Smoke test: the checkpoint restores and a second of noise gives 50 finite tag probabilities.
TF_CPP_MIN_LOG_LEVEL=2 "$VENV/bin/python" "$(dirname "${BASH_SOURCE[0]}")/embed_musicnn.py" --selftest
