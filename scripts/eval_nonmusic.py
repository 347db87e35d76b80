"""What a student says about noise, silence and the CC excerpts (speech, animals, music), streamed as live.

    .venv/bin/python scripts/eval_nonmusic.py [--model NAME_OR_PATH] [--data ../shared/data]

Per input it prints the mean over the clip of the top quadrant probability (0.25 = "no idea"), the
quadrant with the highest mean probability, the mean |valence| and |arousal|, and the mood tag with the
highest mean probability (with that probability; models with a tag head). The noise signals are
the ones `tests/test_shipped_model.py` checks (seed 7; training used other seeds).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

from live_mer.analyzer import Analyzer
from live_mer.fileanalysis import AudioFileError, analyze_stream, iter_blocks, open_audio
from live_mer.model import DEFAULT_MODEL, load_model
from nonmusic import coloured_noise
from paths import DATA

SR = 22050


def noise(exponent: float, level_db: float, seconds: float = 20.0, seed: int = 7) -> np.ndarray:
    """1/f**exponent noise (0 white, 1 pink, 2 brown) at an RMS level in dBFS."""
    x = coloured_noise(np.random.default_rng(seed), int(SR * seconds), exponent)
    return (x * 10 ** (level_db / 20)).astype(np.float32)


def summary(estimates) -> tuple[float, str, float, float, str]:
    names = list(estimates[0].heads["quadrant"])
    q = np.array([list(e.heads["quadrant"].values()) for e in estimates])
    va = np.abs(np.array([[e.valence, e.arousal] for e in estimates])).mean(axis=0)
    tag = ""
    if estimates[0].heads.get("tags"):
        tags = list(estimates[0].heads["tags"])
        p = np.array([list(e.heads["tags"].values()) for e in estimates]).mean(axis=0)
        tag = f"{tags[int(p.argmax())]} {p.max():.2f}"
    return float(q.max(axis=1).mean()), names[int(q.mean(axis=0).argmax())], float(va[0]), float(va[1]), tag


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", default=DEFAULT_MODEL)
    ap.add_argument("--data", type=Path, default=DATA)
    args = ap.parse_args()
    excerpts = sorted((args.data / "cc-excerpts").glob("*.ogg"))
    if not excerpts:
        print(f"eval_nonmusic.py: no CC excerpts (*.ogg) in {args.data / 'cc-excerpts'} (pass --data or set "
              "LIVE_MER_DATA to the data folder)", file=sys.stderr)
        return 2
    model = load_model(args.model, provider="cpu")
    rows = []
    for exponent, colour in ((0.0, "white"), (1.0, "pink"), (2.0, "brown")):
        for level in (-12.0, -35.0):
            x = noise(exponent, level)
            rows.append((f"{colour} noise {level:.0f} dBFS", summary(analyze_stream(Analyzer(model, SR, 0.0), [x]))))
    rows.append(("digital silence", summary(analyze_stream(Analyzer(model, SR, 0.0), [np.zeros(SR * 20, np.float32)]))))
    for path in excerpts:
        try:
            with open_audio(path) as f:
                rows.append((path.stem[:48], summary(analyze_stream(Analyzer(model, f.samplerate, 0.0), iter_blocks(f)))))
        except AudioFileError as exc:
            print(f"skipped: {exc}")
    print(f"{'input':50s} {'top p':>6s} {'argmax':>6s} {'|val|':>6s} {'|aro|':>6s}  top tag")
    for name, (top, quadrant, v, a, tag) in rows:
        print(f"{name:50s} {top:6.2f} {quadrant:>6s} {v:6.2f} {a:6.2f}  {tag}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
