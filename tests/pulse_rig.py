"""Helpers for tests that play audio into the PulseAudio test rig and capture it back.

The rig (``bash scripts/pulse_rig.sh start``, done by ``scripts/test.sh``) runs a PulseAudio server with
a null sink ``SINK``; its monitor ``MONITOR`` is the default source, so PortAudio's ALSA device "pulse"
(or "default") records whatever is played into ``SINK``. No environment variables are needed.

PortAudio lists devices once, when it is initialised (``import sounddevice``): a process that imported
sounddevice while the server was down sees no devices until ``sd._terminate(); sd._initialize()``.
"""

from __future__ import annotations

import atexit
import os
import shutil
import subprocess
import tempfile
from pathlib import Path

SINK = "live_mer_test"
MONITOR = SINK + ".monitor"
RIG_SCRIPT = Path(__file__).resolve().parent.parent / "scripts" / "pulse_rig.sh"

_tmpdir: str | None = None


def _pactl(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["pactl", *args], capture_output=True, text=True, timeout=10, check=False)


def pulse_available() -> bool:
    """True when a PulseAudio server answers and the test sink exists."""
    if shutil.which("pactl") is None:
        return False
    try:
        if _pactl("info").returncode != 0:
            return False
        sinks = _pactl("list", "short", "sinks")
    except (OSError, subprocess.TimeoutExpired):
        return False
    return sinks.returncode == 0 and any(
        line.split("\t")[1:2] == [SINK] for line in sinks.stdout.splitlines()
    )


def _temp_wav(data, samplerate: int) -> str:
    import numpy as np
    import soundfile as sf

    global _tmpdir
    if _tmpdir is None:
        _tmpdir = tempfile.mkdtemp(prefix="live_mer_play_")
        atexit.register(shutil.rmtree, _tmpdir, True)
    fd, path = tempfile.mkstemp(suffix=".wav", dir=_tmpdir)
    os.close(fd)
    sf.write(path, np.asarray(data, dtype=np.float32), samplerate, subtype="FLOAT")
    return path


def play(path_or_array, samplerate: int | None = None) -> subprocess.Popen:
    """Play a sound file, or a float32 array (frames or frames x channels), into the test sink.

    Returns the running ``paplay`` process; ``.wait()`` on it to block until the sound has been played.
    ``samplerate`` is required for arrays and must be left out for files.
    """
    if isinstance(path_or_array, (str, os.PathLike)):
        if samplerate is not None:
            raise ValueError("samplerate is only for arrays; a file carries its own rate")
        path = os.fspath(path_or_array)
    else:
        if samplerate is None:
            raise ValueError("samplerate is required when playing an array")
        path = _temp_wav(path_or_array, int(samplerate))
    return subprocess.Popen(
        ["paplay", f"--device={SINK}", "--client-name=live_mer_tests", path],
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
    )


def _rig(command: str) -> None:
    res = subprocess.run(
        ["bash", str(RIG_SCRIPT), command], capture_output=True, text=True, timeout=60, check=False
    )
    if res.returncode != 0:
        raise RuntimeError(f"pulse_rig.sh {command} failed ({res.returncode}): {res.stderr.strip()}")


def unload_sink() -> None:
    """Remove the test sink (and with it the capture source): simulates unplugging the device.

    Capture streams on "pulse" lose their source; the server itself keeps running.
    """
    _rig("unload-sink")


def load_sink() -> None:
    """Bring the test sink back, make its monitor the default source again and restart the keeper."""
    _rig("load-sink")
