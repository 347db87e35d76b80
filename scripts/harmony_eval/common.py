"""Run audio through the live front end and score chord/key output with mir_eval."""

from __future__ import annotations

from dataclasses import dataclass, replace

import mir_eval
import numpy as np

from live_mer.features import FeatureSpec, Frontend
from live_mer.harmony import (EXT_NO_CHORD, HarmonyParams, chord_ext_label, chord_ext_to_majmin, chord_label,
                              key_label, viterbi_chords)


@dataclass
class Run:
    times: np.ndarray  # frame end times (s)
    hop: float
    lag: int  # frames between a chord's frame and the frame that reports it
    chord: np.ndarray
    chord_conf: np.ndarray
    chord_ext: np.ndarray
    key: np.ndarray
    key_change: np.ndarray
    chroma: np.ndarray
    bass: np.ndarray
    tuning: np.ndarray
    seconds_compute: float


def run_frontend(audio: np.ndarray, sr: int, spec: FeatureSpec | None = None) -> Run:
    """Push ``audio`` through :class:`Frontend` in live-sized blocks (causal), collect the harmony arrays."""
    import time

    spec = spec or FeatureSpec()
    fe = Frontend(spec, sr)
    t0 = time.perf_counter()
    b = fe.run(audio)
    dt = time.perf_counter() - t0
    lag = int(round(fe.harmony_lag_seconds * spec.frame_rate))
    return Run(b.times, spec.hop_length / spec.sample_rate, lag, b.chord, b.chord_confidence, b.chord_ext, b.key,
               b.key_change, b.chroma, b.bass_chroma, b.tuning, dt)


def frames_to_intervals(times: np.ndarray, hop: float, labels: list[str]):
    """Per-frame labels (frame i covers its newest hop, ending at times[i]) to merged mir_eval intervals."""
    starts, out = [], []
    for i, lab in enumerate(labels):
        if not out or lab != out[-1]:
            starts.append(times[i] - hop)
            out.append(lab)
    ends = starts[1:] + [times[-1]]
    return np.array([starts, ends]).T, out


def chord_intervals(run: Run, extended: bool = False, offline: np.ndarray | None = None):
    """The causal labels, moved back by the decoder lag to the frames they describe (or an offline path)."""
    if offline is not None:
        idx = offline
        labels = [chord_ext_label(int(i)) if extended else chord_label(chord_ext_to_majmin(int(i))) for i in idx]
        return frames_to_intervals(run.times, run.hop, labels)
    idx = run.chord_ext if extended else run.chord
    idx = idx[run.lag:]
    labels = [chord_ext_label(int(i)) if extended else chord_label(int(i)) for i in idx]
    return frames_to_intervals(run.times[: len(labels)], run.hop, labels)


def offline_path(run: Run, spec: FeatureSpec | None = None) -> np.ndarray:
    spec = spec or FeatureSpec()
    return viterbi_chords(run.chroma, run.bass, spec.frame_rate, spec.harmony_params(), keys=run.key)


def chord_scores(ref_int, ref_lab, est_int, est_lab) -> dict:
    """mir_eval chord scores of one piece: {metric: (score, weight)}."""
    est_int, est_lab = mir_eval.util.adjust_intervals(est_int, est_lab, ref_int.min(), ref_int.max(),
                                                      mir_eval.chord.NO_CHORD, mir_eval.chord.NO_CHORD)
    intervals, ref, est = mir_eval.util.merge_labeled_intervals(ref_int, ref_lab, est_int, est_lab)
    durations = mir_eval.util.intervals_to_durations(intervals)
    out = {}
    for metric in ("root", "majmin", "sevenths", "thirds"):
        comp = getattr(mir_eval.chord, metric)(ref, est)
        valid = comp >= 0
        w = float(durations[valid].sum())
        out[metric] = (float(np.sum(durations[valid] * comp[valid]) / w) if w > 0 else float("nan"), w)
    return out


def key_scores(times: np.ndarray, hop: float, est_keys: np.ndarray, ref_keys: list) -> dict:
    """Frame-wise exact and MIREX-weighted key scores; ``ref_keys`` = [[start, end, "C major"], ...].

    Frames before the first reference segment or with no estimate yet count as wrong (score 0).
    """
    ref = np.array(["N"] * len(times), dtype=object)
    for a, b, k in ref_keys:
        ref[(times > a) & (times <= b)] = k
    est = np.array([key_label(int(k)) for k in est_keys], dtype=object)
    valid = ref != "N"
    cache: dict = {}
    scores = np.zeros(len(times))
    for i in np.flatnonzero(valid):
        pair = (ref[i], est[i])
        if pair not in cache:
            cache[pair] = 0.0 if est[i] == "N" else float(mir_eval.key.weighted_score(ref[i], est[i]))
        scores[i] = cache[pair]
    n = max(int(valid.sum()), 1)
    return {"exact": float(np.sum(scores[valid] == 1.0) / n), "mirex": float(np.sum(scores[valid]) / n),
            "frames": int(valid.sum()), "per_frame": scores, "valid": valid}


def spec_with(**kw) -> FeatureSpec:
    return replace(FeatureSpec(), **kw)


__all__ = ["Run", "run_frontend", "chord_intervals", "chord_scores", "key_scores", "offline_path", "spec_with",
           "HarmonyParams", "EXT_NO_CHORD"]
