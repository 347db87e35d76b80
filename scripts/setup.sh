#!/usr/bin/env bash
# Set up live_mer on a Debian/Ubuntu machine: system packages (apt, as root or through sudo), then a
# virtual environment in .venv with the package installed in editable mode.
#   bash scripts/setup.sh            # to run live-mer
#   bash scripts/setup.sh test       # ... plus the test rig (PulseAudio, soundfonts), test, train and eval extras
#   bash scripts/setup.sh train      # ... plus the training and evaluation extras (torch CPU, scikit-learn, tqdm, mido,
#                                    #     mir_eval, fluidsynth, flite, espeak-ng)
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
what=${1:-run}

packages=(libportaudio2 libsndfile1 python3-venv)
extra="."
case "$what" in
  run) ;;
  test) packages+=(pulseaudio pulseaudio-utils libasound2-plugins fluidsynth fluid-soundfont-gm flite espeak-ng
                   libegl1 libgl1 libxkbcommon0 libfontconfig1 libdbus-1-3); extra=".[test,train,eval]" ;;
  train) packages+=(fluidsynth fluid-soundfont-gm flite espeak-ng); extra=".[train,eval]" ;;  # VGMIDI audio, speech
  *) echo "setup.sh: unknown target '$what' (run | test | train)" >&2; exit 2 ;;
esac

missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  apt_install() {
    local opts=(-qq -o=Dpkg::Use-Pty=0 -o DPkg::Lock::Timeout=300)
    "$@" env DEBIAN_FRONTEND=noninteractive apt-get "${opts[@]}" update
    "$@" env DEBIAN_FRONTEND=noninteractive apt-get "${opts[@]}" install -y --no-install-recommends \
      "${missing[@]}" >/dev/null
  }
  echo "setup.sh: installing system packages: ${missing[*]}" >&2
  if [ "$(id -u)" -eq 0 ]; then
    apt_install
  elif command -v sudo >/dev/null 2>&1 && command -v apt-get >/dev/null 2>&1; then
    apt_install sudo || echo "setup.sh: WARNING: could not install ${missing[*]}" >&2
  else
    echo "setup.sh: WARNING: not root and no sudo: please install ${missing[*]}" >&2
  fi
fi

export PIP_DISABLE_PIP_VERSION_CHECK=1
PYTHON=${PYTHON:-python3}
if ! "$PYTHON" -c 'import sys; sys.exit(sys.version_info < (3, 11))' 2>/dev/null; then
  echo "setup.sh: live_mer needs Python 3.11 or newer; $PYTHON is $("$PYTHON" -V 2>&1)." \
       "Install one (e.g. apt-get install python3.11 python3.11-venv) and run: PYTHON=python3.11 bash $0 $what" >&2
  exit 1
fi
# A venv made without ensurepip (Debian without python3-venv) has a python but no pip: (re)make it then.
if [ ! -x .venv/bin/python ] || ! .venv/bin/python -m pip --version >/dev/null 2>&1; then
  "$PYTHON" -m venv .venv || {
    echo "setup.sh: could not create .venv with $PYTHON (on Debian/Ubuntu: apt-get install python3-venv)" >&2
    exit 1
  }
fi
# pip only when something changed: a set-up venv starts without the network (a gig, an installation), and a
# runtime swapped for onnxruntime-gpu (README, GPU) is not put back. The stamp holds pyproject.toml's hash.
stamp_of() { echo ".venv/.setup-$1"; }
want="$(sha256sum pyproject.toml | cut -d' ' -f1)"
installed() {  # the package and its runtime dependencies are installed in .venv (-P: not this folder's copy)
  .venv/bin/python -P -c 'import importlib.util as u, sys
sys.exit(any(u.find_spec(m) is None for m in ("live_mer", "numpy", "numba", "librosa", "soxr", "soundfile",
                                              "sounddevice", "onnxruntime", "pythonosc")))' 2>/dev/null
}
if [ -f "$(stamp_of "$what")" ] && [ "$(cat "$(stamp_of "$what")")" = "$want" ] && [ -x .venv/bin/live-mer ] && installed; then
  exit 0
fi
gpu=$(.venv/bin/python -m pip list --format=freeze 2>/dev/null | grep -i '^onnxruntime-gpu==' || true)
.venv/bin/python -m pip install -q -e "$extra"
if [ -n "$gpu" ]; then  # pip put the CPU onnxruntime beside the GPU one (both write one module): take it out again
  .venv/bin/python -m pip uninstall -q -y onnxruntime
  .venv/bin/python -m pip install -q --force-reinstall --no-deps "$gpu"
fi
echo "$want" > "$(stamp_of "$what")"
[ "$what" = run ] || echo "$want" > "$(stamp_of run)"  # test and train install everything run needs
