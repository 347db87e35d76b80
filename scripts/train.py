"""Train, cross-validate and export the live_mer student from ../shared/data (Music2Emo-style distillation).

    python scripts/train.py all          # features -> teachers -> 5-fold CV table -> final fit -> models/
    python scripts/train.py features     # only fill the feature cache (.cache/features/...)
    python scripts/train.py cv           # only the cross-validation table (.cache/cv_table.json)
    python scripts/train.py fit          # only the final model (uses the last CV table if present)

Needs the ``train`` extra (``pip install -e ".[train]"``: torch 2.13.0 CPU, scikit-learn, tqdm, mido) and,
for the teachers, the musicnn embeddings (``scripts/teachers/setup_env.sh`` then
``scripts/teachers/embed_musicnn.py``) and the rendered VGMIDI audio (``scripts/teachers/render_vgmidi.py``).

Data: 4Q (quadrants; valence/arousal signs), Emotify (GEMS-9 listener shares) and VGMIDI (valence/arousal
per measure, rendered with several instruments). Every clip of all three is cut into the windows the live
Analyzer runs the model on (6 s, one every 0.5 s, causal); the student is the pooled student of
:mod:`live_mer.export` (``--frame-branch`` adds a learned per-frame embedding pooled beside the window
statistics). It learns from the ground truth where a dataset has it and, with distillation, from the per-dataset teachers of :mod:`teacher_models` everywhere: regression heads by MSE to the
teachers' values, categorical heads by KL (quadrants, temperature-softened) or BCE (GEMS shares) to the
teachers' outputs. Every training window is heard at a random input level down to -36 dB (level augmentation,
``--level-augmentation-db``), so a quiet line-in reads like a mastered record. A fourth head reads 4Q's
AllMusic mood tags (a probe on the trained trunk; only the tags cross-validation supports are shipped).
Seeds are fixed (students train single-threaded, ``--jobs`` of them side by side, with the same result for
any ``--jobs``); features and embeddings are cached.
"""

from __future__ import annotations

import argparse
import json
import platform
import shutil
import sys
import tempfile
import time
from functools import lru_cache
from pathlib import Path
from typing import NamedTuple

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parent / "teachers"))

from mer_data import (GEMS, QUADRANT_VA, QUADRANTS, feature_cache, folds, load_4q, load_emotify,  # noqa: E402
                      padded_frames, padded_windows, spec_key, windows_of)
from paths import CACHE, ROOT, require_data  # noqa: E402

from live_mer.analyzer import Analyzer  # noqa: E402
from live_mer.export import (FrameBranch, PooledStudentWeights, build_pooled_student, frame_branch_pools,  # noqa: E402
                             pooled_statistics, write_model)
from live_mer.features import FeatureSpec, Frontend  # noqa: E402
from live_mer.fileanalysis import analyze_stream, iter_blocks, open_audio  # noqa: E402
from live_mer.model import DEFAULT_MODEL, load_model  # noqa: E402

SEED = 20261121
WINDOW_S, HOP_S, RECENT_S = 6.0, 0.5, 1.5
KD_WEIGHT, KD_TEMPERATURE = 1.0, 2.0
OUTPUTS = {
    "va": {"kind": "regression", "names": ["valence", "arousal"], "range": [-1.0, 1.0]},
    "quadrant": {"kind": "softmax", "names": list(QUADRANTS)},
    "gems": {"kind": "shares", "names": list(GEMS)},
}
CV_TABLE = CACHE / "cv_table.json"
NEUTRAL = -2  # quadrant "label" of a non-music window
NONMUSIC_CLIPS = 400  # generated non-music clips (20 s each) with neutral targets, see scripts/nonmusic.py
ENSEMBLE = 3  # students trained with seeds SEED, SEED + 1, ... and averaged: less run-to-run noise
LEVEL_AUGMENTATION_DB = 36.0  # the shipped student hears every training window at a random level down to -36 dB
FRAME_BRANCH = 0  # units of a learned per-frame embedding whose window mean and max join the statistics (0: none)
UNIT_WINDOWS, BATCH_UNITS = 64, 8  # a batch: 8 runs of up to 64 consecutive windows of a clip (each frame embedded once)
# AllMusic mood tags (4Q's `moods` column): candidates are the tags of at least TAG_MIN_CLIPS 4Q clips; the model
# ships those whose cross-validated clip-level ROC-AUC reaches TAG_MIN_AUC (the vocabulary we can support).
TAG_MIN_CLIPS = 30
TAG_MIN_AUC = 0.75


def geometry(spec: FeatureSpec) -> tuple[int, int, int]:
    fr = spec.frame_rate
    return int(round(WINDOW_S * fr)), int(round(HOP_S * fr)), int(round(RECENT_S * fr))


def load_clips(limit: int | None = None, vgmidi: bool = True):
    clips = load_4q() + load_emotify()
    if vgmidi:  # renders missing were left out without a word: the student trained without VGMIDI
        from vgmidi import AUDIO, load_vgmidi

        every = load_vgmidi(only_rendered=False)
        rendered = [c for c in every if c.path.exists()]
        if len(rendered) < len(every):
            where = f"{len(every) - len(rendered)} of the {len(every)} VGMIDI renders are missing from {AUDIO}"
            if not rendered:
                raise SystemExit(f"{where}: render them (scripts/teachers/render_vgmidi.py; docs/model.md) or pass "
                                 "--no-vgmidi")
            print(f"warning: {where}; training on the {len(rendered)} there (render the rest with "
                  "scripts/teachers/render_vgmidi.py)", file=sys.stderr)
        clips += rendered
    if limit:
        rng = np.random.default_rng(SEED)
        clips = [clips[i] for i in sorted(rng.choice(len(clips), size=min(limit, len(clips)), replace=False))]
    return clips


class Frames(NamedTuple):
    """The frames behind the rows of a window table, for the frame branch: every clip's
    :func:`mer_data.padded_frames` (None where they were not kept: a statistics-only student needs only the
    clip of each row) and the clip of each row (a clip's rows are its windows, in order, from its first)."""

    padded: list[np.ndarray | None]
    clip_of: np.ndarray


def window_table(clips, paths, spec: FeatureSpec, keep_frames: bool = True):
    """Pooled statistics of every Analyzer window of every clip: (x, Frames of its rows, window end time).
    ``keep_frames=False`` drops each clip's frames once pooled (peak memory 2.99 -> 2.25 GB on 4Q + Emotify,
    more with VGMIDI's renders): enough for any student without a frame branch."""
    from tqdm import tqdm

    window, hop, recent = geometry(spec)
    silence = Frontend(spec, spec.sample_rate).silence_row()
    xs, padded, clip_of, ends = [], [], [], []
    for i, p in enumerate(tqdm(paths, desc="windows")):
        clip_frames = padded_frames(np.load(p), silence, window)
        padded.append(clip_frames if keep_frames else None)
        w = padded_windows(clip_frames, window, hop)
        for a in range(0, len(w), 256):  # bounded memory on long VGMIDI renders
            xs.append(pooled_statistics(w[a:a + 256], recent))
        clip_of.append(np.full(len(w), i))
        ends.append((np.arange(len(w)) + 1) * hop / spec.frame_rate)
    return np.concatenate(xs), Frames(padded, np.concatenate(clip_of)), np.concatenate(ends)


@lru_cache(maxsize=2)
def nonmusic_table(spec: FeatureSpec, count: int = NONMUSIC_CLIPS) -> tuple[np.ndarray, Frames]:
    """Pooled statistics of every Analyzer window of the generated non-music clips (:mod:`nonmusic`) and
    their Frames; computed once per process (`all` needs it for the CV and again for the final fit)."""
    from nonmusic import nonmusic_features

    window, hop, recent = geometry(spec)
    silence = Frontend(spec, spec.sample_rate).silence_row()
    padded = [padded_frames(f, silence, window) for f in nonmusic_features(count, spec, seed=SEED)]
    wins = [padded_windows(p, window, hop) for p in padded]
    table = np.concatenate([pooled_statistics(w, recent) for w in wins])
    table.setflags(write=False)  # shared by every caller
    return table, Frames(padded, np.concatenate([np.full(len(w), i) for i, w in enumerate(wins)]))


def frame_level_shift(spec: FeatureSpec) -> np.ndarray:
    """How each frame feature moves per dB of input gain: the log-mel bands (log10 power) by 0.1, the
    loudness (dB) by 1; chroma, chords, mode and the onset flux do not move."""
    names = spec.feature_names()
    per_db = np.zeros(spec.n_features, np.float32)
    per_db[: spec.n_mels] = 0.1
    per_db[names.index("loudness_db")] = 1.0
    return per_db


def level_shift(spec: FeatureSpec) -> np.ndarray:
    """How the pooled statistics move per dB of input gain: the level-dependent frame features
    (:func:`frame_level_shift`) shift by a constant, so their window mean, recent mean and maximum shift
    with them; spreads and changes do not move."""
    from live_mer.export import POOLS

    per_db = frame_level_shift(spec)
    moves = [pool in ("mean", "recent_mean", "max") for pool in POOLS]
    return np.concatenate([per_db if m else np.zeros_like(per_db) for m in moves])


def clip_tags(clip) -> list[str]:
    """The AllMusic mood tags of a 4Q clip ("Calm; Peaceful" -> ["Calm", "Peaceful"])."""
    return [t.strip() for t in clip.extra.get("moods", "").split(";") if t.strip()]


def tag_vocabulary(clips, min_clips: int | None = None) -> list[str]:
    """Candidate tags: those of at least ``min_clips`` (default TAG_MIN_CLIPS) 4Q clips, most frequent first."""
    from collections import Counter

    min_clips = TAG_MIN_CLIPS if min_clips is None else min_clips
    counts = Counter(t for c in clips if c.dataset == "4q" for t in set(clip_tags(c)))
    return sorted((t for t, k in counts.items() if k >= min_clips), key=lambda t: (-counts[t], t))


def tag_truth(clips, clip_of, vocabulary: list[str]) -> np.ndarray:
    """Per window: 1/0 for each tag of ``vocabulary`` (4Q windows), NaN elsewhere (no tags known)."""
    y = np.full((len(clip_of), len(vocabulary)), np.nan, np.float32)
    for i, c in enumerate(clips):
        if c.dataset == "4q":
            tags = set(clip_tags(c))
            y[clip_of == i] = [t in tags for t in vocabulary]
    return y


def ground_truth(clips, clip_of, t_end):
    from teacher_models import measure_at

    n = len(clip_of)
    quad = np.full(n, -1, np.int64)
    va = np.full((n, 2), np.nan, np.float32)
    gems = np.full((n, len(GEMS)), np.nan, np.float32)
    for i, c in enumerate(clips):
        sel = clip_of == i
        if c.quadrant is not None:
            quad[sel] = c.quadrant
            va[sel] = 0.5 * np.array(QUADRANT_VA[QUADRANTS[c.quadrant]])  # signs; magnitude unknown
        if c.gems is not None:
            gems[sel] = c.gems
        if c.dataset == "vgmidi":
            va[sel] = measure_at(c, t_end[sel])  # the measure being heard at the window's end
    return quad, va, gems


def soft_targets(labels: dict, clip_of, t_end):
    """Teacher outputs at each window's end (nearest segment); NaN where no teacher label exists."""
    n = len(clip_of)
    soft = {"quadrant": np.full((n, 4), np.nan, np.float32), "gems": np.full((n, len(GEMS)), np.nan, np.float32),
            "va": np.full((n, 2), np.nan, np.float32)}
    for i, (times, pred) in labels.items():
        sel = np.flatnonzero(clip_of == i)
        if not len(sel):
            continue
        nearest = np.clip(np.searchsorted(times, t_end[sel]), 0, len(times) - 1)
        for head, values in pred.items():
            soft[head][sel] = values[nearest]
    return soft


def training_units(clip_of: np.ndarray) -> list[tuple[int, int, np.ndarray]]:
    """The table's rows as runs of at most UNIT_WINDOWS consecutive windows of one clip:
    (clip, index of the run's first window in the clip, rows)."""
    order = np.argsort(clip_of, kind="stable")
    clips, starts = np.unique(clip_of[order], return_index=True)
    units = []
    for j, rows in zip(clips, np.split(order, starts[1:])):
        units += [(int(j), k0, rows[k0:k0 + UNIT_WINDOWS]) for k0 in range(0, len(rows), UNIT_WINDOWS)]
    return units


def run_pools(embed, runs: list, window: int, hop: int, shifts=None):
    """The frame branch (torch) on runs of consecutive windows, each frame embedded once: ``runs`` holds per
    run the (standardised) frames its windows cover, ``(n - 1) * hop + window`` rows for n windows;
    ``shifts`` (optional, per run) is added to every frame of its run first (a level change).
    Returns (all runs' windows, 2 * units): the window mean, then the window max, of ReLU(embed(frame)).

    Every run is padded to whole hops, so a window is ``q`` whole hop-blocks and the first ``r`` frames
    of the next (``window = q * hop + r``): its sum and max come from per-block sums and maxima, linear in
    the frames rather than in frames x window."""
    import torch
    from torch.nn import functional as F

    q, r = divmod(window, hop)
    segments, columns, lengths, blocks = [], [], [], 0
    for run in runs:
        pad = -len(run) % hop
        segments += [run, run.new_zeros((pad, run.shape[1]))]
        columns.append(blocks + np.arange((len(run) - window) // hop + 1))
        lengths.append(len(run) + pad)
        blocks += lengths[-1] // hop
    e = embed(torch.cat(segments))
    if shifts is not None:  # embed(frame + shift) = embed(frame) + shift @ W.T: shift the embeddings, not the frames
        e = e + torch.repeat_interleave(torch.stack(list(shifts)) @ embed.weight.T, torch.tensor(lengths), dim=0)
    e = F.relu(e).reshape(blocks, hop, -1)  # (blocks, hop, units)
    first = torch.from_numpy(np.concatenate(columns))  # each window's first block
    before = torch.cumsum(F.pad(e.sum(dim=1), (0, 0, 1, 0)), dim=0)  # before[b]: sum of the blocks < b
    total = before[first + q] - before[first]
    peak = F.max_pool1d(e.amax(dim=1).T[None], q, 1)[0].T[first]
    if r:
        tail = e[first + q, :r]
        total, peak = total + tail.sum(dim=1), torch.maximum(peak, tail.amax(dim=1))
    return torch.cat([total / window, peak], dim=1)


def fit(x, frames: Frames, quad, va, gems, soft=None, epochs: int = 30, seed: int = SEED,
        neutral: tuple[np.ndarray, Frames] | None = None, level_db: float = 0.0,
        tags: np.ndarray | None = None, branch: int = FRAME_BRANCH, runs: bool = False) -> PooledStudentWeights:
    """Train the pooled student; with ``soft`` (teacher outputs) it is distilled, else labels only.

    ``x`` holds the windows' pooled statistics, ``frames`` the frames behind them. A batch is 512 random
    windows, or with ``runs`` BATCH_UNITS random runs of up to UNIT_WINDOWS consecutive windows of a clip
    (``train.py --run-batches``). With ``branch`` > 0 units (which needs ``runs``), a learned per-frame
    embedding (linear + ReLU on standardised frames) is pooled over each window (mean and max) beside the
    statistics (:class:`live_mer.export.FrameBranch`); every frame of a run is embedded once, however many
    windows hold it.

    With ``level_db`` > 0 every window (with ``runs``: every run) is heard at a random input level,
    uniform in [-level_db, 0] dB (applied to its pooled statistics through :func:`level_shift` and to its
    frames through :func:`frame_level_shift`), so a quiet line-in or a microphone reads like the mastered
    recordings it learned from (the shipped student: ``LEVEL_AUGMENTATION_DB``, the default of
    ``train.py --level-augmentation-db``). 0 draws no gains at all.

    ``neutral`` (pooled non-music windows and their Frames) is trained towards "no confident emotion":
    uniform quadrant probabilities, valence = arousal = 0 and the training clips' mean GEMS shares.

    ``tags`` (per window, 1/0 per AllMusic mood tag, NaN where unknown) adds a ``tags`` head: a sigmoid
    probe on the trained trunk (:func:`fit_tag_head`), fitted afterwards with its own random numbers, so
    the other heads are exactly those of a run without it.
    """
    import torch
    from torch import nn
    from torch.nn import functional as F

    if branch and not runs:
        raise ValueError("a frame branch trains on runs of windows: fit(..., branch=N) needs runs=True")
    if branch and any(p is None for p in frames.padded):
        raise ValueError("a frame branch needs the clips' frames: window_table(..., keep_frames=True)")
    spec = FeatureSpec()
    window, hop, _ = geometry(spec)
    if neutral is not None and len(neutral[0]):
        nx, nf = neutral
        m = len(nx)
        mean_gems = np.nanmean(gems, axis=0) if (~np.isnan(gems[:, 0])).any() else np.full(gems.shape[1], 1 / 9)
        x = np.concatenate([x, nx])
        frames = Frames(frames.padded + nf.padded, np.concatenate([frames.clip_of, nf.clip_of + len(frames.padded)]))
        quad = np.concatenate([quad, np.full(m, NEUTRAL, quad.dtype)])
        va = np.concatenate([va, np.zeros((m, 2), va.dtype)])
        gems = np.concatenate([gems, np.tile(mean_gems.astype(gems.dtype), (m, 1))])
        if tags is not None:  # non-music: every tag at its base rate
            tags = np.concatenate([tags, np.tile(np.nanmean(tags, axis=0).astype(tags.dtype), (m, 1))])
        if soft is not None:
            soft = {h: np.concatenate([v, np.full((m, v.shape[1]), np.nan, v.dtype)]) for h, v in soft.items()}
    torch.manual_seed(seed)
    torch.set_num_threads(1)  # a 64-unit MLP: more threads only contend (2 threads were 25x slower here)
    rng = np.random.default_rng(seed)
    mean, scale = x.mean(axis=0), x.std(axis=0) + 1e-3
    z = torch.from_numpy(((x - mean) / scale).astype(np.float32))
    gain_z = torch.from_numpy((level_shift(spec) / scale).astype(np.float32))
    units = training_units(frames.clip_of) if runs else None
    if branch:
        used = sorted({u[0] for u in units})
        real = [frames.padded[j][window:] for j in used]  # standardised on the clips' own frames
        count = sum(len(r) for r in real)
        f_mean = sum(r.sum(axis=0, dtype=np.float64) for r in real) / count
        f_scale = np.sqrt(sum(((r - f_mean) ** 2).sum(axis=0) for r in real) / count) + 1e-3
        f_mean, f_scale = f_mean.astype(np.float32), f_scale.astype(np.float32)
        zf = {j: torch.from_numpy((frames.padded[j] - f_mean) / f_scale) for j in used}
        gain_f = torch.from_numpy(frame_level_shift(spec) / f_scale)
        embed = nn.Linear(spec.n_features, branch)
    trunk = nn.Sequential(nn.Linear(x.shape[1] + 2 * branch, 128), nn.ReLU(), nn.Dropout(0.3), nn.Linear(128, 64),
                          nn.ReLU(), nn.Dropout(0.2))

    def draw_gains(generator, n):
        return generator.uniform(-level_db, 0.0, n).astype(np.float32) if level_db > 0 else None

    def hidden(batch, gains=None):
        """The trunk's output and the table rows for ``batch`` (rows, or with ``runs`` runs), each row or run
        at its input level (dB) if ``gains`` are given."""
        rows = np.concatenate([r for _, _, r in batch]) if runs else batch
        zb = z[rows]
        if gains is not None:
            per_row = np.repeat(gains, [len(r) for _, _, r in batch]) if runs else gains
            zb = zb + torch.from_numpy(per_row)[:, None] * gain_z
        if branch:
            covered = [zf[j][(k0 + 1) * hop:(k0 + len(r)) * hop + window] for j, k0, r in batch]  # windows k0, ..
            shifts = None if gains is None else [float(g) * gain_f for g in gains]
            zb = torch.cat([zb, run_pools(embed, covered, window, hop, shifts)], dim=1)
        return trunk(zb), rows

    def batches():
        """One epoch: 512 random windows at a time, or (``runs``) BATCH_UNITS random runs."""
        if runs:
            order = rng.permutation(len(units))
            for start in range(0, len(units), BATCH_UNITS):
                batch = [units[i] for i in order[start:start + BATCH_UNITS]]
                yield batch, draw_gains(rng, len(batch))
        else:
            order = torch.from_numpy(rng.permutation(len(z)))
            for start in range(0, len(z), 512):
                idx = order[start:start + 512]
                yield idx, draw_gains(rng, len(idx))

    q_t, va_t, g_t = torch.from_numpy(quad), torch.from_numpy(va), torch.from_numpy(gems)
    if soft is not None:
        sq = torch.from_numpy(soft["quadrant"])
        sva, sg = torch.from_numpy(soft["va"]), torch.from_numpy(soft["gems"])
    heads = nn.ModuleDict({"va": nn.Linear(64, 2), "quadrant": nn.Linear(64, 4), "gems": nn.Linear(64, len(GEMS))})
    params = list(trunk.parameters()) + list(heads.parameters()) + (list(embed.parameters()) if branch else [])
    opt = torch.optim.AdamW(params, lr=1e-3, weight_decay=1e-3)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, epochs)
    T = KD_TEMPERATURE
    for _ in range(epochs):
        trunk.train()
        heads.train()
        for batch, gains in batches():
            h, idx = hidden(batch, gains)
            q_logits, va_out, g_logits = heads["quadrant"](h), torch.tanh(heads["va"](h)), heads["gems"](h)
            loss = torch.zeros(())
            m = q_t[idx] >= 0
            if m.any():
                loss = loss + F.cross_entropy(q_logits[m], q_t[idx][m])
            m = q_t[idx] == NEUTRAL
            if m.any():  # cross-entropy to the uniform distribution
                loss = loss - F.log_softmax(q_logits[m], dim=1).mean()
            m = ~torch.isnan(va_t[idx][:, 0])
            if m.any():
                loss = loss + F.mse_loss(va_out[m], va_t[idx][m])
            m = ~torch.isnan(g_t[idx][:, 0])
            if m.any():
                loss = loss + 2.0 * F.binary_cross_entropy_with_logits(g_logits[m], g_t[idx][m])
            if soft is not None:
                m = ~torch.isnan(sq[idx][:, 0])
                if m.any():  # KL to temperature-softened teacher probabilities (Hinton et al.), scaled by T^2
                    target = F.softmax(torch.log(sq[idx][m].clamp_min(1e-6)) / T, dim=1)
                    loss = loss + KD_WEIGHT * T * T * F.kl_div(F.log_softmax(q_logits[m] / T, dim=1), target,
                                                                reduction="batchmean")
                m = ~torch.isnan(sva[idx][:, 0])
                if m.any():  # regression heads match the teacher's values
                    loss = loss + KD_WEIGHT * F.mse_loss(va_out[m], sva[idx][m])
                m = ~torch.isnan(sg[idx][:, 0])
                if m.any():
                    loss = loss + KD_WEIGHT * 2.0 * F.binary_cross_entropy_with_logits(g_logits[m], sg[idx][m])
            opt.zero_grad()
            loss.backward()
            opt.step()
        sched.step()
    trunk.eval()
    lin = [m for m in trunk if isinstance(m, nn.Linear)]
    as_np = lambda t: t.detach().numpy().astype(np.float32)  # noqa: E731
    out = {"va": (as_np(heads["va"].weight.T), as_np(heads["va"].bias), "tanh"),
           "quadrant": (as_np(heads["quadrant"].weight.T), as_np(heads["quadrant"].bias), "softmax"),
           "gems": (as_np(heads["gems"].weight.T), as_np(heads["gems"].bias), "sigmoid")}
    if tags is not None:
        if runs:
            tagged = [u for u in units if not np.isnan(tags[u[2], 0]).any()]
            rows = np.concatenate([r for _, _, r in tagged])
            chunks = [tagged[a:a + BATCH_UNITS] for a in range(0, len(tagged), BATCH_UNITS)]

            def tag_hidden(generator):
                return torch.cat([hidden(c, draw_gains(generator, len(c)))[0] for c in chunks])
        else:
            rows = np.flatnonzero(~np.isnan(tags[:, 0]))

            def tag_hidden(generator):
                return hidden(rows, draw_gains(generator, len(rows)))[0]
        out["tags"] = fit_tag_head(tag_hidden, rows, tags, epochs, seed)
    return PooledStudentWeights(
        mean=mean.astype(np.float32), scale=scale.astype(np.float32),
        trunk=[(as_np(m.weight.T), as_np(m.bias)) for m in lin], heads=out, recent_frames=0,
        branch=FrameBranch(f_mean, f_scale, as_np(embed.weight.T), as_np(embed.bias)) if branch else None)


def fit_tag_head(hidden, rows: np.ndarray, tags: np.ndarray, epochs: int, seed: int):
    """A sigmoid layer on the frozen trunk for the AllMusic mood tags (BCE on the table ``rows`` that have tags).

    Deterministic and separate from the main fit: zero weights with the tags' base rates as biases, its
    own generator for batches and input levels (the same level augmentation as the trunk saw):
    ``hidden(generator)`` is the trained trunk's output on ``rows``, each epoch at fresh levels.
    """
    import torch
    from torch.nn import functional as F

    rate = np.clip(np.nanmean(tags, axis=0), 1e-3, 1 - 1e-3)
    b = torch.tensor(np.log(rate / (1 - rate)).astype(np.float32), requires_grad=True)
    y = torch.from_numpy(tags[rows])
    rng = np.random.default_rng(seed + 7919)
    w = opt = None
    for _ in range(epochs):
        with torch.no_grad():
            h = hidden(rng)
        if w is None:
            w = torch.zeros((h.shape[1], tags.shape[1]), requires_grad=True)
            opt = torch.optim.AdamW([w, b], lr=3e-3, weight_decay=1e-3)
        for idx in np.array_split(rng.permutation(len(rows)), max(1, len(rows) // 512)):
            loss = F.binary_cross_entropy_with_logits(h[idx] @ w + b, y[idx])
            opt.zero_grad()
            loss.backward()
            opt.step()
    return w.detach().numpy().astype(np.float32), b.detach().numpy().astype(np.float32), "sigmoid"


def ensemble_tasks(members: int = ENSEMBLE, **kwargs) -> list[dict]:
    """The :func:`fit` arguments of an ensemble's members: seeds SEED, SEED + 1, ... (the exported graph
    averages them); train them with :func:`fit_many`."""
    return [dict(kwargs, seed=SEED + i) for i in range(members)]


_TASKS: list[dict] = []  # fit_many's tasks, read by its forked workers (shared memory, never pickled)


def _fit_task(i: int) -> PooledStudentWeights:
    return fit(**_TASKS[i])


def fit_many(tasks: list[dict], jobs: int = 1, desc: str = "students") -> list[PooledStudentWeights]:
    """``fit(**task)`` for every task, in ``jobs`` processes side by side (forked, so the frames and tables
    are shared rather than copied; each fit is single-threaded and seeded, so the result does not depend
    on ``jobs``)."""
    from tqdm import tqdm

    global _TASKS
    if jobs <= 1 or len(tasks) == 1:
        return [fit(**t) for t in tqdm(tasks, desc=desc)]
    import multiprocessing

    _TASKS = tasks
    try:
        with multiprocessing.get_context("fork").Pool(min(jobs, len(tasks))) as pool:
            return list(tqdm(pool.imap(_fit_task, range(len(tasks))), total=len(tasks), desc=desc))
    finally:
        _TASKS = []


def forward(w: PooledStudentWeights | list[PooledStudentWeights], x: np.ndarray,
            windows: np.ndarray | None = None) -> dict[str, np.ndarray]:
    """Numpy twin of the exported graph on pooled statistics ``x`` (and, for a student with a frame
    branch, the ``windows`` they were pooled from), checked against ONNX at export; a list of members gives
    the mean of their outputs, as the graph does."""
    if isinstance(w, list):
        outs = [forward(m, x, windows) for m in w]
        return {head: np.mean([o[head] for o in outs], axis=0) for head in outs[0]}
    h = (x - w.mean) / w.scale
    if w.branch is not None:
        if windows is None:
            raise ValueError("this student has a frame branch: forward() needs the windows too")
        h = np.concatenate([h, frame_branch_pools(w.branch, windows)], axis=1)
    for wt, b in w.trunk:
        h = np.maximum(h @ wt + b, 0)
    out = {}
    for name, (wt, b, act) in w.heads.items():
        y = h @ wt + b
        if act == "tanh":
            y = np.tanh(y)
        elif act == "sigmoid":
            y = 1 / (1 + np.exp(-y))
        else:
            y = np.exp(y - y.max(axis=1, keepdims=True))
            y /= y.sum(axis=1, keepdims=True)
        out[name] = y
    return out


def predict(w: PooledStudentWeights | list[PooledStudentWeights], x: np.ndarray, frames: Frames) -> dict[str, np.ndarray]:
    """:func:`forward` over the rows of a window table; with a frame branch run by run (each row's window cut
    from its clip), without one in a single call on the statistics."""
    if all(m.branch is None for m in (w if isinstance(w, list) else [w])):
        return forward(w, x)
    window, hop, _ = geometry(FeatureSpec())
    out: dict[str, np.ndarray] = {}
    for j, k0, rows in training_units(frames.clip_of):
        wins = padded_windows(frames.padded[j], window, hop)[k0:k0 + len(rows)]
        for head, values in forward(w, x[rows], wins).items():
            out.setdefault(head, np.zeros((len(x), values.shape[1]), np.float32))[rows] = values
    return out


def formula_cues(x: np.ndarray, spec: FeatureSpec) -> np.ndarray:
    """Per window: loudness (dB), onset strength and spectral centroid (mel band): the cues LED tools use."""
    names = spec.feature_names()
    mel = x[:, : spec.n_mels]  # window mean of log10 mel power per band
    power = 10.0 ** (mel - mel.max(axis=1, keepdims=True))
    centroid = (power * np.arange(spec.n_mels)).sum(axis=1) / power.sum(axis=1)
    return np.stack([x[:, names.index("loudness_db")], x[:, names.index("onset")], centroid], axis=1)


def formula_baseline(cues: np.ndarray, centre: np.ndarray) -> dict[str, np.ndarray]:
    """What LED/visual tools do today: arousal from loudness and onsets, valence from spectral balance
    (bright = positive), each centred on the training windows' median; quadrant from the signs."""
    z = (cues - centre[0]) / centre[1]
    arousal = np.tanh(z[:, 0] + z[:, 1])
    valence = np.tanh(z[:, 2])
    q = np.where(valence >= 0, np.where(arousal >= 0, 0, 3), np.where(arousal >= 0, 1, 2))
    return {"va": np.stack([valence, arousal], axis=1), "quadrant": np.eye(4, dtype=np.float32)[q]}


def metrics(clips, idx: np.ndarray, clip_of, t_end, pred: dict, vocabulary: list[str] | None = None) -> dict:
    """The evaluation table's columns from per-window predictions of the clips in ``idx``."""
    from sklearn.metrics import f1_score, roc_auc_score
    from teacher_models import measure_at

    out = {}
    q = [i for i in idx if clips[i].dataset == "4q"]
    for head in ("tags", "tags_from_quadrant"):
        if q and vocabulary and head in pred:  # clip level: the mean of a clip's windows, ROC-AUC per tag
            y = np.array([np.isin(vocabulary, clip_tags(clips[i])) for i in q])
            p = np.array([pred[head][clip_of == i].mean(0) for i in q])
            auc = {t: float(roc_auc_score(y[:, k], p[:, k])) for k, t in enumerate(vocabulary)}
            out[f"4q_{head}_auc"] = auc
            out[f"4q_{head}_macro_auc"] = float(np.mean(list(auc.values())))
    if q and "quadrant" in pred:
        rows = [np.flatnonzero(clip_of == i) for i in q]
        y_clip = np.array([clips[i].quadrant for i in q])
        p_clip = np.array([pred["quadrant"][r].mean(0).argmax() for r in rows])
        y_win = np.concatenate([np.full(len(r), clips[i].quadrant) for i, r in zip(q, rows)])
        p_win = np.concatenate([pred["quadrant"][r].argmax(1) for r in rows])
        va = np.array([pred["va"][r].mean(0) for r in rows])
        true = np.array([QUADRANT_VA[QUADRANTS[k]] for k in y_clip])
        out.update({"4q_clip_macro_f1": float(f1_score(y_clip, p_clip, average="macro")),
                    "4q_window_macro_f1": float(f1_score(y_win, p_win, average="macro")),
                    "4q_arousal_sign_acc": float(np.mean(np.sign(va[:, 1]) == true[:, 1])),
                    "4q_valence_sign_acc": float(np.mean(np.sign(va[:, 0]) == true[:, 0]))})
    g = [i for i in idx if clips[i].dataset == "emotify"]
    if g and "gems" in pred:
        y = np.array([clips[i].gems for i in g])
        p = np.array([pred["gems"][clip_of == i].mean(0) for i in g])
        out["emotify_mean_pearson_r"] = float(np.mean([np.corrcoef(y[:, k], p[:, k])[0, 1]
                                                       for k in range(len(GEMS))]))
    v = [i for i in idx if clips[i].dataset == "vgmidi"]
    if v:
        ys, ps = [], []
        for i in v:
            rows = np.flatnonzero(clip_of == i)
            m = clips[i].extra["measures"]
            # causal: the estimate at the end of each measure (first window ending at or after it)
            at = np.clip(np.searchsorted(t_end[rows], m[:, 1] - 1e-6), 0, len(rows) - 1)
            truth = measure_at(clips[i], np.maximum(m[:, 1] - 1e-3, 0))
            ok = ~np.isnan(truth[:, 0])
            ys.append(truth[ok])
            ps.append(pred["va"][rows[at]][ok])
        y, p = np.concatenate(ys), np.concatenate(ps)
        for k, name in enumerate(("valence", "arousal")):
            out[f"vgmidi_{name}_rmse"] = float(np.sqrt(np.mean((y[:, k] - p[:, k]) ** 2)))
            out[f"vgmidi_{name}_r"] = float(np.corrcoef(y[:, k], p[:, k])[0, 1])
    return out


def export(weights: PooledStudentWeights | list[PooledStudentWeights], spec: FeatureSpec, directory: Path, name: str,
           extra: dict, tag_names: list[str] | None = None) -> Path:
    window, hop, recent = geometry(spec)
    members = weights if isinstance(weights, list) else [weights]
    for member in members:
        member.recent_frames = recent
    outputs = dict(OUTPUTS)
    if "tags" in members[0].heads:
        width = members[0].heads["tags"][0].shape[1]
        if len(tag_names or ()) != width:
            raise ValueError(f"the tags head has {width} outputs but {len(tag_names or ())} tag names were given")
        outputs["tags"] = {"kind": "tags", "names": list(tag_names)}
    onnx_path, _ = write_model(directory, name, build_pooled_student(weights, window, spec.n_features), spec,
                               window, hop, outputs, extra)
    return onnx_path


def prepare(spec: FeatureSpec, args):
    """Clips, folds, window table (pooled statistics, Frames), window end times and segment descriptors
    (features and embeddings cached on disk)."""
    from teacher_models import segment_descriptors
    from tqdm import tqdm

    from teacher_models import musicnn_path

    clips = load_clips(args.limit, vgmidi=not args.no_vgmidi)
    if args.no_distill:
        paths = feature_cache(clips, spec, workers=args.workers)
        x, frames, t_end = window_table(clips, paths, spec, keep_frames=args.frame_branch > 0)
        return clips, folds(clips, args.folds, SEED), x, frames, t_end, None
    # Teachers need musicnn embeddings; VGMIDI is embedded for its piano render only, and every other
    # instrument version of a piece shares that render's timeline, so it shares its teacher descriptors.
    embedded = np.array([musicnn_path(c).exists() for c in clips])
    source = list(range(len(clips)))
    by_piece = {c.extra["piece"]: i for i, c in enumerate(clips) if c.dataset == "vgmidi" and embedded[i]}
    for i, c in enumerate(clips):
        if not embedded[i] and c.dataset == "vgmidi" and c.extra["piece"] in by_piece:
            source[i] = by_piece[c.extra["piece"]]
    missing = [c for i, c in enumerate(clips) if not embedded[source[i]]]
    if missing:
        raise SystemExit(f"{len(missing)} of {len(clips)} clips have no musicnn embeddings yet (e.g. "
                         f"{missing[0].dataset}/{missing[0].clip_id}): run scripts/teachers/embed_musicnn.py")
    paths = feature_cache(clips, spec, workers=args.workers)
    fold = folds(clips, args.folds, SEED)
    x, frames, t_end = window_table(clips, paths, spec, keep_frames=args.frame_branch > 0)
    segs: list = [None] * len(clips)
    for i in tqdm(np.flatnonzero(embedded), desc="segments"):
        segs[i] = segment_descriptors(clips[i], np.load(paths[i]))
    for i, j in enumerate(source):
        if segs[i] is None:
            segs[i] = segs[j]
    for c, e in zip(clips, embedded):
        c.extra["embedded"] = bool(e)  # teachers train only on clips with their own embeddings
    return clips, fold, x, frames, t_end, segs


def cmd_cv(spec: FeatureSpec, args, data=None) -> dict:
    from teacher_models import teacher_labels, teacher_oof_table

    clips, fold, x, frames, t_end, segs = data or prepare(spec, args)
    clip_of = frames.clip_of
    quad, va, gems = ground_truth(clips, clip_of, t_end)
    vocabulary = tag_vocabulary(clips)
    tags = tag_truth(clips, clip_of, vocabulary) if vocabulary else None
    variants = (("student", True), ("student_no_distillation", False))
    if segs is None:  # --no-distill: no teachers
        variants = variants[1:]
    preds: dict = {name: {} for name, _ in variants}
    preds["formula_baseline"] = {}
    cues = formula_cues(x, spec)
    neutral = nonmusic_table(spec)
    tasks, task_of = [], {}  # every student of every fold, so --jobs can train them side by side
    for k in range(args.folds):
        train = fold[clip_of] != k
        soft = soft_targets(teacher_labels(segs, clips, fold, k, SEED), clip_of, t_end) if segs else None
        common = dict(x=x[train], frames=Frames(frames.padded, clip_of[train]), quad=quad[train], va=va[train],
                      gems=gems[train], epochs=args.epochs, neutral=neutral, level_db=args.level_augmentation_db,
                      tags=tags[train] if tags is not None else None, branch=args.frame_branch, runs=args.run_batches)
        for name, kd in variants:
            members = ensemble_tasks(soft={h: s[train] for h, s in soft.items()} if kd else None, **common)
            task_of[k, name] = slice(len(tasks), len(tasks) + len(members))
            tasks += members
    fitted = fit_many(tasks, args.jobs, desc=f"{len(tasks)} fold students")
    for k in range(args.folds):
        train = fold[clip_of] != k
        test_rows = ~train
        centre = np.stack([np.median(cues[train], axis=0), cues[train].std(axis=0) + 1e-9])
        for head, values in formula_baseline(cues[test_rows], centre).items():
            preds["formula_baseline"].setdefault(head, np.zeros((len(x), values.shape[1]), np.float32))[test_rows] = values
        if tags is not None:  # reference for the tag head: P(tag | quadrant) on the training clips x P(quadrant)
            known = train & ~np.isnan(tags[:, 0])
            given_quadrant = np.stack([np.nanmean(tags[known & (quad == j)], axis=0) for j in range(4)])
        for name, _ in variants:
            w = fitted[task_of[k, name]]
            out = predict(w, x[test_rows], Frames(frames.padded, clip_of[test_rows]))
            if tags is not None:
                out["tags_from_quadrant"] = out["quadrant"] @ given_quadrant
            for head, values in out.items():
                preds[name].setdefault(head, np.zeros((len(x), values.shape[1]), np.float32))[test_rows] = values
    everything = np.arange(len(clips))
    table = {name: metrics(clips, everything, clip_of, t_end, p, vocabulary) for name, p in preds.items()}
    if segs is not None:
        table["teachers"] = teacher_oof_table(segs, clips, fold)
    table["protocol"] = (
        f"{args.folds}-fold cross-validation, folds grouped by artist (4Q, stratified by quadrant; an act with or without "
        f"its band or orchestra is one artist), track (Emotify) and game (VGMIDI: every render of a piece and every "
        f"piece of a game in one fold); the same recording under two ids (2 pairs in 4Q, 3 in Emotify) in one fold; "
        f"seed {SEED}. Students (each the average of "
        f"{ENSEMBLE} MLPs trained with seeds {SEED}..{SEED + ENSEMBLE - 1}): every window "
        f"the live Analyzer runs ({WINDOW_S:g} s, every {HOP_S:g} s, causal, no smoothing) of every test clip, "
        "from the same frame features; clip metrics on the mean of a clip's windows; VGMIDI per measure with the "
        "estimate at the measure's end. Teachers: non-causal 8 s segments, out-of-fold, clip = segment mean. "
        "Teachers used to train a fold's student never saw that fold.")
    table["counts"] = {d: sum(c.dataset == d for c in clips) for d in ("4q", "emotify", "vgmidi")}
    table["options"] = cv_options(args)
    CV_TABLE.parent.mkdir(parents=True, exist_ok=True)
    CV_TABLE.write_text(json.dumps(table, indent=2))
    print(json.dumps(table, indent=2))
    return table


STREAM_TOLERANCE = 1e-4  # the live Analyzer and the training windows may differ by float32 rounding only


def cv_options(args) -> dict:
    """The options that decide what ``cv`` evaluates and ``fit`` trains: a CV table is the fit's evaluation
    only if they are the same."""
    return {"limit": args.limit, "folds": args.folds, "epochs": args.epochs, "distill": not args.no_distill,
            "vgmidi": not args.no_vgmidi,
            "level_augmentation_db": args.level_augmentation_db, "frame_branch": args.frame_branch,
            "run_batches": args.run_batches, "features": spec_key(FeatureSpec())}


def stream_check(model, clips, frames: Frames, x, w, n: int = 6) -> float:
    """Largest difference between the live Analyzer and the training-time windows on a few clips."""
    worst = 0.0
    for i in range(0, len(clips), max(1, len(clips) // n))[:n]:
        with open_audio(clips[i].path) as f:
            ests = analyze_stream(Analyzer(model, f.samplerate, smoothing_s=0.0), iter_blocks(f))
        live = np.array([[e.valence, e.arousal] for e in ests])
        rows = frames.clip_of == i
        offline = predict(w, x[rows], Frames(frames.padded, frames.clip_of[rows]))["va"]
        m = min(len(live), len(offline))
        worst = max(worst, float(np.abs(live[:m] - offline[:m]).max()))
    return worst


def keep_supported_tags(w: list[PooledStudentWeights], vocabulary: list[str], cv: dict) -> tuple[list[str], str]:
    """Cut the members' ``tags`` heads down to the tags whose cross-validated AUC (``cv``, this recipe's row of
    the CV table) reaches TAG_MIN_AUC; all candidates if there is no CV figure. Returns (kept tags, card note)."""
    if not vocabulary:
        return [], f"none (no mood tag on >= {TAG_MIN_CLIPS} 4Q clips)"
    auc = cv.get("4q_tags_auc", {})
    kept = [t for t in vocabulary if auc.get(t, 0.0) >= TAG_MIN_AUC] if auc else list(vocabulary)
    cols = [vocabulary.index(t) for t in kept]
    for member in w:
        wt, b, act = member.heads.pop("tags")
        if kept:
            member.heads["tags"] = (wt[:, cols], b[cols], act)
    what = (f"AllMusic mood tags of >= {TAG_MIN_CLIPS} 4Q clips, a sigmoid layer fitted by BCE on the 4Q windows "
            "after the trunk (which it leaves unchanged); non-music windows towards the tags' base rates")
    if not auc:
        return kept, f"all {len(vocabulary)} {what} (no CV table: not cross-validated)"
    return kept, (f"{len(kept)} of the {len(vocabulary)} {what}: those whose clip-level ROC-AUC (clip = mean of its "
                  f"windows) in the cross-validation above is >= {TAG_MIN_AUC:g} (evaluation: 4q_tags_auc; reference "
                  "4q_tags_from_quadrant_auc = P(tag | quadrant) on the training folds x the student's quadrant "
                  "probabilities)")


def cmd_fit(spec: FeatureSpec, args, data=None, seconds_so_far: float = 0.0) -> Path:
    from teacher_models import teacher_labels

    t0 = time.time()
    clips, fold, x, frames, t_end, segs = data or prepare(spec, args)
    clip_of = frames.clip_of
    quad, va, gems = ground_truth(clips, clip_of, t_end)
    soft = soft_targets(teacher_labels(segs, clips, fold, None, SEED), clip_of, t_end) if segs else None
    vocabulary = tag_vocabulary(clips)
    w = fit_many(ensemble_tasks(x=x, frames=frames, quad=quad, va=va, gems=gems, soft=soft, epochs=args.epochs,
                                neutral=nonmusic_table(spec), level_db=args.level_augmentation_db,
                                branch=args.frame_branch, runs=args.run_batches,
                                tags=tag_truth(clips, clip_of, vocabulary) if vocabulary else None),
                 args.jobs, desc="final students")
    evaluation = json.loads(CV_TABLE.read_text()) if CV_TABLE.exists() else {}
    if evaluation and evaluation.get("options") != cv_options(args):  # a smoke test's table must not become the card's
        print(f"warning: {CV_TABLE} evaluates other options ({evaluation.get('options')}, this fit: {cv_options(args)}): "
              "the card gets no evaluation and every tag is kept; run `train.py cv` with the same options (or "
              "`train.py all`)", file=sys.stderr)
        evaluation = {}
    recipe = "student" if soft is not None else "student_no_distillation"
    tag_names, tag_note = keep_supported_tags(w, vocabulary, evaluation.get(recipe, {}))
    counts = {d: sum(c.dataset == d for c in clips) for d in ("4q", "emotify", "vgmidi")}
    extra = {
        "description": "Causal pooled student: mean, std, mean absolute frame-to-frame change and maximum over a "
                       f"{WINDOW_S:g} s window and mean over its last {RECENT_S:g} s of the live_mer frame features "
                       "(log-mel, key-relative chroma, loudness, onset, key-relative chord, mode)"
                       + (f", beside the window mean and max of a learned per-frame embedding (ReLU of a linear "
                          f"{spec.n_features} -> {args.frame_branch} map of the standardised frame)" if args.frame_branch else "")
                       + " -> MLP "
                       f"{'-'.join(str(n) for n in [w[0].trunk[0][0].shape[0]] + [b.shape[0] for _, b in w[0].trunk])}"
                       " -> heads va (tanh), quadrant (softmax), gems (sigmoid)"
                       + (", tags (sigmoid, a probe on the trained trunk for AllMusic mood tags)" if tag_names else "")
                       + f", {len(w)} such MLPs (seeds "
                       f"{SEED}..{SEED + len(w) - 1}) averaged; distilled from per-dataset "
                       "teachers; trained to be unconfident (uniform quadrants, neutral valence/arousal) on "
                       f"{NONMUSIC_CLIPS} generated non-music clips (scripts/nonmusic.py)"
                       + (f"; every training window heard at a random input level down to -{args.level_augmentation_db:g} "
                          "dB (level augmentation), so quiet inputs read like loud ones."
                          if args.level_augmentation_db else "."),
        "training": {
            "command": f"python scripts/train.py {args.command}" + (" --no-distill" if soft is None else "")
                       + (" --no-vgmidi" if not counts["vgmidi"] else "")
                       + (f" --level-augmentation-db {args.level_augmentation_db:g}"
                          if args.level_augmentation_db != LEVEL_AUGMENTATION_DB else "")
                       + (f" --frame-branch {args.frame_branch}" if args.frame_branch != FRAME_BRANCH else "")
                       + (" --run-batches" if args.run_batches and not args.frame_branch else ""),
            "scripts": "scripts/train.py, scripts/teacher_models.py, scripts/mer_data.py, scripts/teachers/",
            "data": {"4q": f"{counts['4q']} clips of the 4Q audio emotion dataset (Panda et al. 2018): quadrants",
                     "emotify": f"{counts['emotify']} clips of Emotify (Aljanaki et al. 2016): GEMS-9 shares",
                     "vgmidi": f"{counts['vgmidi']} renders (FluidR3 GM, piano + 3 re-orchestrations per piece) of "
                               "the labelled VGMIDI pieces (Ferreira & Whitehead 2019): valence/arousal per measure"},
            "licences": "4Q, Emotify (Magnatune audio, CC BY-NC-SA) and VGMIDI are research datasets: the weights "
                        "derived from them are for research / non-commercial use. Teacher inputs: musicnn MSD "
                        "embeddings (musicnn, ISC licence, weights from its PyPI package), never shipped. "
                        "Non-music training speech: the flite and espeak-ng synthesisers.",
            "teachers": "none" if soft is None else "per dataset, non-causal 8 s segments of musicnn MSD embeddings (mean/std of the penultimate "
                        "layer, mean tag probabilities) + live_mer feature statistics: 4Q logistic regression "
                        "(quadrant), Emotify ridge (GEMS shares), VGMIDI ridge (valence/arousal); each labels the "
                        "other datasets (cross pseudo-labels), out-of-fold on its own",
            "distillation": (f"GT losses where labels exist + KD weight {KD_WEIGHT}: MSE to teacher VA (VGMIDI: its "
                             "own teacher; 4Q and Emotify: the valence/arousal implied by the 4Q teacher's quadrant "
                             f"probabilities), KL at T={KD_TEMPERATURE} to teacher quadrant probabilities, BCE to "
                             "teacher GEMS shares"
                             if soft is not None else "none (--no-distill): ground-truth labels only"),
            "tags": tag_note,
            "seed": SEED, "ensemble": len(w), "epochs": args.epochs,
            "seconds": round(seconds_so_far + time.time() - t0, 1),  # of that command (`fit` alone: the final fit)
            "machine": f"{platform.machine()}, Python {platform.python_version()}, CPU only",
        },
        "evaluation": evaluation,
    }
    # Exported beside models/ and checked first: the live Analyzer must compute what the student was trained
    # on (a stale feature cache, a front end changed since, would ship a model that runs on other features).
    staging = Path(tempfile.mkdtemp(prefix=".train-", dir=ROOT / "models"))
    try:
        onnx_path = export(w, spec, staging, args.name, extra, tag_names)
        model = load_model(onnx_path, provider="cpu")
        window, hop, recent = geometry(spec)
        silence = Frontend(spec, spec.sample_rate).silence_row()
        sample = windows_of(np.load(feature_cache(clips[:1], spec)[0]), silence, window, hop)[:8]
        onnx_diff = float(np.abs(model.run(sample)["quadrant"]
                                 - forward(w, pooled_statistics(sample, recent), sample)["quadrant"]).max())
        live_diff = stream_check(model, clips, frames, x, w)
        if not max(onnx_diff, live_diff) <= STREAM_TOLERANCE:
            raise SystemExit(f"not written: the exported model differs from the trained weights by {onnx_diff:.2e} "
                             f"and the live Analyzer from the training windows by {live_diff:.2e} (at most "
                             f"{STREAM_TOLERANCE:g} allowed): are the cached features ({CACHE / 'features'}) from "
                             "another version of the front end?")
        target = ROOT / "models" / onnx_path.name
        onnx_path.with_suffix(".json").replace(target.with_suffix(".json"))
        onnx_path.replace(target)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    print(f"wrote {target} ({target.stat().st_size / 1024:.0f} KiB); ONNX vs weights max |diff| {onnx_diff:.2e}; "
          f"live Analyzer vs training windows max |diff| {live_diff:.2e}")
    return target


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("command", choices=["all", "features", "cv", "fit"])
    p.add_argument("--folds", type=int, default=5)
    p.add_argument("--epochs", type=int, default=20, help="training epochs (the shipped student: 20)")
    p.add_argument("--workers", type=int, default=2, help="processes for the feature cache")
    p.add_argument("--jobs", type=int, default=2, help="students trained side by side (one process each; default 2, "
                                                        "one per core of the 2-core reference machine)")
    p.add_argument("--limit", type=int, help="use only this many clips (smoke tests)")
    p.add_argument("--name", default=DEFAULT_MODEL, help="model name written to models/")
    p.add_argument("--no-distill", action="store_true", help="labels only: no teachers, no musicnn needed")
    p.add_argument("--no-vgmidi", action="store_true", help="4Q and Emotify only (no rendered VGMIDI needed)")
    p.add_argument("--level-augmentation-db", type=float, default=LEVEL_AUGMENTATION_DB, metavar="DB",
                   help=f"hear each training window at a random level down to -DB dB, so quiet inputs read like "
                        f"loud ones (default and shipped: {LEVEL_AUGMENTATION_DB:g}; 0 = off; see docs/model.md 'Input level')")
    p.add_argument("--run-batches", action="store_true",
                   help="train on batches of runs of consecutive windows of a clip, one input level per run, instead "
                        "of 512 random windows (see docs/model.md 'Run batches and a learned per-frame branch')")
    p.add_argument("--frame-branch", type=int, default=FRAME_BRANCH, metavar="UNITS",
                   help=f"units of a learned per-frame embedding pooled beside the window statistics; implies "
                        f"--run-batches (default and shipped: {FRAME_BRANCH} = statistics only; see docs/model.md 'Run batches and a learned per-frame branch')")
    args = p.parse_args()
    args.run_batches = args.run_batches or args.frame_branch > 0
    require_data("4q/labels.csv", "emotify/tracks.csv", "emotify/votes.csv",
                 *(() if args.no_vgmidi else ("vgmidi/midi", "vgmidi/annotations")))
    spec = FeatureSpec()
    t0 = time.time()
    if args.command == "features":
        feature_cache(load_clips(args.limit, vgmidi=not args.no_vgmidi), spec, workers=args.workers)
    else:
        data = prepare(spec, args)
        if args.command in ("all", "cv"):
            cmd_cv(spec, args, data)
        if args.command in ("all", "fit"):
            cmd_fit(spec, args, data, seconds_so_far=time.time() - t0)
    print(f"done in {time.time() - t0:.0f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
