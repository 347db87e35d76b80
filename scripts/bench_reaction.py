"""How quickly the outputs follow the music: step responses at the built-in demo's section changes.

    python scripts/bench_reaction.py [--model live_mer_student] [--loops 2] [--hop S]

The demo piece (live_mer.demo) changes mood, tempo, loudness and key at known moments: serene (Q4,
C major) -> exuberant (Q1, D major) -> tense (Q2, E minor) -> sad (Q3, A minor) -> serene again. It is
streamed through the live Analyzer at 44.1 kHz in 512-sample blocks (defaults: no smoothing, as
`live-mer listen`) and each estimate through the OSC output shaping with its defaults (one frame per
hop, what a receiver gets). For every section change this prints, in seconds of audio after the change:

- level, arousal, valence: when the shaped output has moved 50 % and 90 % of the way from where it was
  (mean of the 5 s before the change) to where it settles (mean of 12-20 s after);
- quadrant and key: when the sent label becomes the one it settles on (quadrant) or the section's key,
  and stays for at least 2 s;
- chords, over every chord change of the piece: when the sent chord becomes the new chord;
- arousal and valence once more from the estimates themselves, before the shaping: the model's share.

The baseline in the same run is the level, the fastest possible reaction (one hop of the analysis).
These are delays in the audio's own time; live, add the sound card's input latency and the analysis of
one hop (`bench.py`: about a millisecond). Numbers go in the README (*How quickly it reacts*).
"""

from __future__ import annotations

import argparse
import sys

import numpy as np

from live_mer.analyzer import Analyzer
from live_mer.demo import DURATION, SECTIONS, chord_labels, render_demo
from live_mer.model import DEFAULT_MODEL, load_model
from live_mer.outputs import OutputSettings, Shaper

SR = 44100
BLOCK = 512
BEFORE = (-5.0, 0.0)  # where an output was: mean over these seconds around the change
AFTER = (12.0, 20.0)  # where it settles (every section lasts longer than 20 s)
STAY_S = 2.0  # a label counts as arrived when it stays this long
MIN_MOVE = {"level_db": 3.0, "arousal": 0.15, "valence": 0.15}  # smaller moves are not timed


def shaped_frames(model, loops: int, hop_s: float = 0.0):
    """(times, frames) of the shaped outputs, one per analysis hop, over ``loops`` plays of the demo."""
    audio = np.tile(render_demo(SR), loops)
    analyzer = Analyzer(model, SR, smoothing_s=0.0, hop_s=hop_s)
    shaper = Shaper(OutputSettings())
    times, frames = [], []
    for i in range(0, len(audio), BLOCK):
        for est in analyzer.process(audio[i:i + BLOCK]):
            times.append(est.t)
            frames.append(shaper.step(est, est.t))
    return np.array(times), frames


def half_way(t: np.ndarray, v: np.ndarray, changes, name: str) -> list[float]:
    """Seconds after each change until ``v`` is half way to where it settles (changes too small: left out)."""
    out = []
    for t0, _, _ in changes:
        before = float(v[(t >= t0 + BEFORE[0]) & (t < t0 + BEFORE[1])].mean())
        end = float(v[(t >= t0 + AFTER[0]) & (t < t0 + AFTER[1])].mean())
        if abs(end - before) >= MIN_MOVE[name]:
            out.append(crossing(t, v, t0, before, end, 0.5))
    return out


def crossing(t: np.ndarray, v: np.ndarray, t0: float, start: float, end: float, share: float) -> float:
    """Seconds after ``t0`` until ``v`` first passes ``start + share * (end - start)``."""
    level = start + share * (end - start)
    after = t >= t0
    passed = (v >= level) if end > start else (v <= level)
    hits = np.flatnonzero(after & passed)
    return float(t[hits[0]] - t0) if hits.size else float("nan")


def arrival(t: np.ndarray, labels: list[str], t0: float, target: str, until: float) -> float:
    """Seconds after ``t0`` until ``labels`` equals ``target`` and stays so for STAY_S (before ``until``)."""
    for i in np.flatnonzero((t >= t0) & (t < until)):
        if labels[i] != target:
            continue
        stay = (t >= t[i]) & (t < t[i] + STAY_S)
        if all(labels[j] == target for j in np.flatnonzero(stay)):
            return float(t[i] - t0)
    return float("nan")


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--model", default=DEFAULT_MODEL)
    p.add_argument("--loops", type=int, default=2, help="plays of the demo (>= 2: the change back to the "
                                                        "first section is measured too)")
    p.add_argument("--hop", type=float, default=0.0, help="seconds between estimates (as `listen --hop`; "
                                                          "default: the model's)")
    args = p.parse_args()
    if args.loops < 2:
        p.error("--loops must be at least 2")
    model = load_model(args.model, provider="cpu")
    t, frames = shaped_frames(model, args.loops, args.hop)
    hop = float(np.median(np.diff(t)))
    series = {"level_db": np.array([f.level_db for f in frames]),
              "arousal": np.array([f.arousal for f in frames]),
              "valence": np.array([f.valence for f in frames])}
    quadrant = [f.quadrant for f in frames]
    key = [f.key for f in frames]
    chord = [f.chord for f in frames]

    print(f"model {model.card.name}, one estimate every {hop:.3f} s; seconds after each section change "
          f"(50 % / 90 % of the way; labels: when they arrive and stay {STAY_S:g} s)")
    print(f"{'change':<22} {'level':>11} {'arousal':>11} {'valence':>11} {'quadrant':>13} {'key':>14}")
    rows: dict[str, list[float]] = {k: [] for k in ("level_db", "arousal", "valence", "quadrant", "key")}
    changes = [(loop * DURATION + s.start, prev, s) for loop in range(args.loops)
               for prev, s in zip((SECTIONS[-1], *SECTIONS[:-1]), SECTIONS, strict=True)][1:]  # not the very start
    for t0, prev, sec in changes:
        cells = []
        for name, v in series.items():
            before = float(v[(t >= t0 + BEFORE[0]) & (t < t0 + BEFORE[1])].mean())
            end = float(v[(t >= t0 + AFTER[0]) & (t < t0 + AFTER[1])].mean())
            if abs(end - before) < MIN_MOVE[name]:
                cells.append(f"{'(same)':>11}")
                continue
            half, most = (crossing(t, v, t0, before, end, s) for s in (0.5, 0.9))
            rows[name].append(half)
            cells.append(f"{half:5.1f}/{most:5.1f}")
        settled = [quadrant[i] for i in np.flatnonzero((t >= t0 + AFTER[0]) & (t < t0 + AFTER[1]))]
        q_end = max(set(settled), key=settled.count)
        q = arrival(t, quadrant, t0, q_end, t0 + AFTER[1])
        k = arrival(t, key, t0, sec.key, t0 + sec.duration)
        rows["quadrant"].append(q)
        rows["key"].append(k)
        cells += [f"{q:6.1f} ({q_end})", f"{k:5.1f} ({sec.key.split()[0]}{'m' if 'minor' in sec.key else ''})"]
        print(f"{prev.name + ' -> ' + sec.name:<22} " + " ".join(cells))

    # Chords: every chord change of the piece (after the first loop's first chord), as sent.
    truth = [(loop * DURATION + s, loop * DURATION + e, lab) for loop in range(args.loops)
             for s, e, lab in chord_labels()][1:]

    def chord_delays(sent: list[str]) -> np.ndarray:
        delays = []
        for start, end, lab in truth:
            hits = [i for i in np.flatnonzero((t >= start) & (t < end)) if _same_chord(sent[i], lab)]
            delays.append(float(t[hits[0]] - start) if hits else float("nan"))
        return np.array(delays)

    delays_arr = chord_delays(chord)
    found = delays_arr[np.isfinite(delays_arr)]
    raw_chords = chord_delays([f.estimate.chord for f in frames])
    raw_found = raw_chords[np.isfinite(raw_chords)]

    def summary(values: list[float]) -> str:
        v = np.array(values, dtype=float)
        ok = v[np.isfinite(v)]
        if not ok.size:
            return "never"
        missed = f", {np.count_nonzero(~np.isfinite(v))} never" if ok.size < v.size else ""
        return f"median {np.median(ok):.1f} s, max {ok.max():.1f} s over {v.size}{missed}"

    raw = {name: half_way(t, np.array([getattr(f.estimate, name) for f in frames]), changes, name)
           for name in ("arousal", "valence")}

    print()
    level_median = float(np.nanmedian(rows["level_db"])) if rows["level_db"] else float("nan")
    for name, values in rows.items():
        ratio = np.nanmedian(values) / level_median if values and level_median > 0 else float("nan")
        print(f"{name:<9} {summary(values)}  ({ratio:.1f}x the level's)" if name != "level_db"
              else f"{'level':<9} {summary(values)}  (baseline)")
    for name, values in raw.items():
        print(f"{name:<9} {summary(values)}  (the estimates before the output shaping)")
    print(f"chords    sent within its duration for {found.size} of {delays_arr.size} chord changes; delay median "
          f"{np.median(found):.2f} s, 90th percentile {np.percentile(found, 90):.2f} s "
          f"(look-ahead {model.card.spec.harmony_params().chord_lookahead_seconds:g} s + the wait for the next hop)")
    print(f"chords    before the output shaping: {raw_found.size} of {raw_chords.size}, median "
          f"{np.median(raw_found):.2f} s, 90th percentile {np.percentile(raw_found, 90):.2f} s")
    return 0


def _same_chord(sent: str, truth: str) -> bool:
    """The sent major/minor chord names the true triad (``dim`` counts as its minor reduction)."""
    return sent == truth.replace(":dim", ":min")


if __name__ == "__main__":
    sys.exit(main())
