"""How much a student's reading moves when the same music comes in quieter, streamed as live.

    .venv/bin/python scripts/eval_level.py [--model NAME_OR_PATH] [--clips 20] [--gains -12 -24 -36]

Live input arrives at any level (a mixer's line out, a laptop line-in, a room microphone). This plays
every k-th 4Q clip from ../shared/data (evenly spread, ``--clips`` of them) through the live Analyzer
(no smoothing) at full level and at each gain, and prints per gain: how many clips keep the quadrant of
their full-level reading (clip = mean of its windows' probabilities), and the mean absolute change of
the clip's mean valence and arousal; and for the harmony, the share of estimates (one every 0.5 s) whose
chord and live key equal those at full level, and how many clips keep their whole-file key.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))

from mer_data import load_4q  # noqa: E402
from paths import require_data  # noqa: E402

from live_mer.analyzer import Analyzer  # noqa: E402
from live_mer.fileanalysis import analyze_stream, open_audio  # noqa: E402
from live_mer.model import DEFAULT_MODEL, load_model  # noqa: E402

def clip_reading(model, audio: np.ndarray, sr: int) -> dict:
    """One clip streamed through the Analyzer: mean quadrant probabilities, mean [valence, arousal], the
    chord and key of every estimate, the whole-file key."""
    analyzer = Analyzer(model, sr, smoothing_s=0.0)
    ests = analyze_stream(analyzer, [audio])
    return {"quadrant": np.array([list(e.heads["quadrant"].values()) for e in ests]).mean(axis=0),
            "va": np.array([[e.valence, e.arousal] for e in ests]).mean(axis=0),
            "chords": np.array([e.chord for e in ests]), "keys": np.array([e.key for e in ests]),
            "file_key": analyzer.stream_key()[0]}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", default=DEFAULT_MODEL)
    ap.add_argument("--clips", type=int, default=20)
    ap.add_argument("--gains", type=float, nargs="+", default=[-12.0, -24.0, -36.0], help="dB relative to the file")
    args = ap.parse_args()
    require_data("4q/labels.csv")
    model = load_model(args.model, provider="cpu")
    clips = load_4q()
    clips = clips[:: max(1, len(clips) // args.clips)][: args.clips]
    kept = {g: 0 for g in args.gains}
    moved = {g: [] for g in args.gains}
    chords, keys, file_keys = ({g: [] for g in args.gains} for _ in range(3))
    for clip in clips:
        with open_audio(clip.path) as f:
            audio, sr = f.read(dtype="float32", always_2d=True).mean(axis=1), f.samplerate
        full = clip_reading(model, audio, sr)
        for g in args.gains:
            r = clip_reading(model, audio * np.float32(10 ** (g / 20)), sr)
            kept[g] += int(r["quadrant"].argmax() == full["quadrant"].argmax())
            moved[g].append(np.abs(r["va"] - full["va"]))
            chords[g].append(r["chords"] == full["chords"])
            keys[g].append(r["keys"] == full["keys"])
            file_keys[g].append(r["file_key"] == full["file_key"])
    print(f"{len(clips)} 4Q clips, model {args.model}")
    print(f"{'gain':>8s} {'same quadrant':>14s} {'mean |d valence|':>17s} {'mean |d arousal|':>17s} "
          f"{'same chord':>11s} {'same key':>9s} {'same file key':>14s}")
    for g in args.gains:
        d = np.mean(moved[g], axis=0)
        print(f"{g:6.0f} dB {kept[g]:>9d}/{len(clips):<4d} {d[0]:17.3f} {d[1]:17.3f} "
              f"{100 * np.concatenate(chords[g]).mean():10.1f}% {100 * np.concatenate(keys[g]).mean():8.1f}% "
              f"{sum(file_keys[g]):>9d}/{len(clips)}")


if __name__ == "__main__":
    main()
