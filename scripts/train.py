"""Train, cross-validate and export the live_mer student from ../shared/data.

    python scripts/train.py all        # features -> 5-fold CV through the streaming Analyzer -> final fit -> models/
    python scripts/train.py features   # only fill the feature cache (.cache/features/...)
    python scripts/train.py cv         # only the cross-validation table
    python scripts/train.py fit        # only the final model (uses the last CV table if present)

Needs the ``train`` extra (``pip install -e ".[train]"``: torch 2.13.0 CPU, scikit-learn, tqdm).
The student here is the *pooled student* of :mod:`live_mer.export` trained directly on the labels
(4Q quadrants and their valence/arousal signs, Emotify GEMS shares): no teachers, no distillation.
Seeds are fixed; features are cached, so a second run only retrains.
"""

from __future__ import annotations

import argparse
import json
import platform
import sys
import tempfile
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))

from mer_data import (CACHE, DATA, GEMS, QUADRANT_VA, QUADRANTS, ROOT, feature_cache, folds,  # noqa: E402
                      load_4q, load_emotify, windows_of)

from live_mer.analyzer import Analyzer  # noqa: E402
from live_mer.export import PooledStudentWeights, build_pooled_student, pooled_statistics, write_model  # noqa: E402
from live_mer.features import FeatureSpec, Frontend  # noqa: E402
from live_mer.fileanalysis import analyze_stream, iter_blocks, open_audio  # noqa: E402
from live_mer.model import DEFAULT_MODEL, load_model  # noqa: E402

SEED = 20261121
WINDOW_S, HOP_S, RECENT_S = 6.0, 0.5, 1.5
OUTPUTS = {
    "va": {"kind": "regression", "names": ["valence", "arousal"], "range": [-1.0, 1.0]},
    "quadrant": {"kind": "softmax", "names": list(QUADRANTS)},
    "gems": {"kind": "shares", "names": list(GEMS)},
}
CV_TABLE = CACHE / "cv_table.json"


def geometry(spec: FeatureSpec) -> tuple[int, int, int]:
    fr = spec.frame_rate
    return int(round(WINDOW_S * fr)), int(round(HOP_S * fr)), int(round(RECENT_S * fr))


def pooled_dataset(clips, paths, spec: FeatureSpec):
    """Pooled statistics of every Analyzer window of every clip, with per-window labels."""
    from tqdm import tqdm

    window, hop, recent = geometry(spec)
    silence = Frontend(spec, spec.sample_rate).silence_row()
    xs, clip_of = [], []
    for i, p in enumerate(tqdm(paths, desc="windows")):
        w = windows_of(np.load(p), silence, window, hop)
        xs.append(pooled_statistics(w, recent))
        clip_of.append(np.full(len(w), i))
    return np.concatenate(xs), np.concatenate(clip_of)


def labels(clips, clip_of):
    n = len(clip_of)
    quad = np.full(n, -1, np.int64)
    va = np.full((n, 2), np.nan, np.float32)
    gems = np.full((n, len(GEMS)), np.nan, np.float32)
    for j, i in enumerate(clip_of):
        c = clips[i]
        if c.quadrant is not None:
            quad[j] = c.quadrant
            va[j] = 0.5 * np.array(QUADRANT_VA[QUADRANTS[c.quadrant]])  # sign targets, magnitude unknown
        if c.gems is not None:
            gems[j] = c.gems
    return quad, va, gems


def fit(x, quad, va, gems, epochs: int = 40, seed: int = SEED) -> PooledStudentWeights:
    """Train the pooled student on window statistics; returns numpy weights for export."""
    import torch
    from torch import nn

    torch.manual_seed(seed)
    rng = np.random.default_rng(seed)
    mean, scale = x.mean(axis=0), x.std(axis=0) + 1e-3
    z = torch.from_numpy(((x - mean) / scale).astype(np.float32))
    q_t, va_t, g_t = torch.from_numpy(quad), torch.from_numpy(va), torch.from_numpy(gems)
    trunk = nn.Sequential(nn.Linear(x.shape[1], 128), nn.ReLU(), nn.Dropout(0.3), nn.Linear(128, 64), nn.ReLU(),
                          nn.Dropout(0.2))
    heads = nn.ModuleDict({"va": nn.Linear(64, 2), "quadrant": nn.Linear(64, 4), "gems": nn.Linear(64, len(GEMS))})
    params = list(trunk.parameters()) + list(heads.parameters())
    opt = torch.optim.AdamW(params, lr=1e-3, weight_decay=1e-3)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, epochs)
    n, batch = len(z), 256
    for _ in range(epochs):
        trunk.train()
        heads.train()
        order = torch.from_numpy(rng.permutation(n))
        for start in range(0, n, batch):
            idx = order[start:start + batch]
            h = trunk(z[idx])
            loss = torch.zeros(())
            qm = q_t[idx] >= 0
            if qm.any():
                loss = loss + nn.functional.cross_entropy(heads["quadrant"](h[qm]), q_t[idx][qm])
                loss = loss + nn.functional.mse_loss(torch.tanh(heads["va"](h[qm])), va_t[idx][qm])
            gm = ~torch.isnan(g_t[idx][:, 0])
            if gm.any():
                loss = loss + 2.0 * nn.functional.binary_cross_entropy_with_logits(heads["gems"](h[gm]), g_t[idx][gm])
            opt.zero_grad()
            loss.backward()
            opt.step()
        sched.step()
    trunk.eval()
    lin = [m for m in trunk if isinstance(m, nn.Linear)]
    as_np = lambda t: t.detach().numpy().astype(np.float32)  # noqa: E731
    return PooledStudentWeights(
        mean=mean.astype(np.float32), scale=scale.astype(np.float32),
        trunk=[(as_np(m.weight.T), as_np(m.bias)) for m in lin],
        heads={"va": (as_np(heads["va"].weight.T), as_np(heads["va"].bias), "tanh"),
               "quadrant": (as_np(heads["quadrant"].weight.T), as_np(heads["quadrant"].bias), "softmax"),
               "gems": (as_np(heads["gems"].weight.T), as_np(heads["gems"].bias), "sigmoid")},
        recent_frames=0)


def export(weights: PooledStudentWeights, spec: FeatureSpec, directory: Path, name: str, extra: dict) -> Path:
    window, hop, recent = geometry(spec)
    weights.recent_frames = recent
    onnx_path, _ = write_model(directory, name, build_pooled_student(weights, window, spec.n_features), spec,
                               window, hop, OUTPUTS, extra)
    return onnx_path


_MODELS: dict = {}


def stream_clip(args) -> dict:
    """Run the streaming Analyzer (no smoothing) over one clip; per-window head outputs."""
    onnx_path, audio_path = args
    model = _MODELS.get(onnx_path) or _MODELS.setdefault(onnx_path, load_model(onnx_path, provider="cpu"))
    with open_audio(audio_path) as f:
        ests = analyze_stream(Analyzer(model, f.samplerate, smoothing_s=0.0), iter_blocks(f))
    return {"va": np.array([[e.valence, e.arousal] for e in ests]),
            "quadrant": np.array([[e.heads["quadrant"][q] for q in QUADRANTS] for e in ests]),
            "gems": np.array([[e.heads["gems"][g] for g in GEMS] for e in ests])}


def metrics(clips, preds) -> dict:
    """The evaluation table's columns from streamed per-window predictions."""
    from sklearn.metrics import f1_score

    out = {}
    q_idx = [i for i, c in enumerate(clips) if c.quadrant is not None]
    if q_idx:
        y_clip = np.array([clips[i].quadrant for i in q_idx])
        p_clip = np.array([preds[i]["quadrant"].mean(axis=0).argmax() for i in q_idx])
        y_win = np.concatenate([np.full(len(preds[i]["quadrant"]), clips[i].quadrant) for i in q_idx])
        p_win = np.concatenate([preds[i]["quadrant"].argmax(axis=1) for i in q_idx])
        va_clip = np.array([preds[i]["va"].mean(axis=0) for i in q_idx])
        va_true = np.array([QUADRANT_VA[QUADRANTS[q]] for q in y_clip])
        out.update({
            "4q_clip_macro_f1": float(f1_score(y_clip, p_clip, average="macro")),
            "4q_window_macro_f1": float(f1_score(y_win, p_win, average="macro")),
            "4q_arousal_sign_acc": float(np.mean(np.sign(va_clip[:, 1]) == va_true[:, 1])),
            "4q_valence_sign_acc": float(np.mean(np.sign(va_clip[:, 0]) == va_true[:, 0])),
            "4q_clips": len(q_idx),
        })
    g_idx = [i for i, c in enumerate(clips) if c.gems is not None]
    if g_idx:
        y = np.array([clips[i].gems for i in g_idx])
        p = np.array([preds[i]["gems"].mean(axis=0) for i in g_idx])
        rs = [float(np.corrcoef(y[:, k], p[:, k])[0, 1]) for k in range(len(GEMS))]
        out.update({"emotify_mean_pearson_r": float(np.mean(rs)),
                    "emotify_pearson_r": dict(zip(GEMS, rs)), "emotify_clips": len(g_idx)})
    return out


def load_all(spec: FeatureSpec, limit: int | None = None):
    clips = load_4q() + load_emotify()
    if limit:
        rng = np.random.default_rng(SEED)
        clips = [clips[i] for i in sorted(rng.choice(len(clips), size=min(limit, len(clips)), replace=False))]
    return clips, feature_cache(clips, spec)


def cmd_cv(spec: FeatureSpec, args) -> dict:
    from tqdm import tqdm

    clips, paths = load_all(spec, args.limit)
    fold = folds(clips, args.folds, SEED)
    x, clip_of = pooled_dataset(clips, paths, spec)
    quad, va, gems = labels(clips, clip_of)
    preds: list = [None] * len(clips)
    with tempfile.TemporaryDirectory() as tmp:
        for k in range(args.folds):
            train = fold[clip_of] != k
            w = fit(x[train], quad[train], va[train], gems[train], epochs=args.epochs)
            onnx_path = export(w, spec, Path(tmp), f"fold{k}", {})
            test = [i for i in range(len(clips)) if fold[i] == k]
            with ProcessPoolExecutor(args.workers) as pool:
                jobs = [(str(onnx_path), str(clips[i].path)) for i in test]
                for i, p in zip(test, tqdm(pool.map(stream_clip, jobs), total=len(test), desc=f"fold {k} stream")):
                    preds[i] = p
    table = metrics(clips, preds)
    table["protocol"] = (f"{args.folds}-fold cross-validation, folds grouped by artist (4Q, stratified by quadrant) "
                         f"and by track (Emotify), seed {SEED}; every test clip streamed through live_mer.Analyzer "
                         f"(causal, {WINDOW_S:g} s window, {HOP_S:g} s hop, no smoothing); window metrics per "
                         "estimate, clip metrics on the mean of a clip's estimates")
    CV_TABLE.parent.mkdir(parents=True, exist_ok=True)
    CV_TABLE.write_text(json.dumps(table, indent=2))
    print(json.dumps(table, indent=2))
    return table


def cmd_fit(spec: FeatureSpec, args, seconds_so_far: float = 0.0) -> Path:
    t0 = time.time()
    clips, paths = load_all(spec, args.limit)
    x, clip_of = pooled_dataset(clips, paths, spec)
    quad, va, gems = labels(clips, clip_of)
    w = fit(x, quad, va, gems, epochs=args.epochs)
    evaluation = json.loads(CV_TABLE.read_text()) if CV_TABLE.exists() else {}
    n4q = sum(c.dataset == "4q" for c in clips)
    nemo = sum(c.dataset == "emotify" for c in clips)
    extra = {
        "description": "Causal pooled student: mean/std over a 6 s window and mean over its last 1.5 s of the "
                       "live_mer frame features (log-mel, key-relative chroma, loudness, onset, key-relative "
                       "chord, mode) -> MLP 288-128-64 -> heads va (tanh), quadrant (softmax), gems (sigmoid).",
        "training": {
            "command": "python scripts/train.py all",
            "script": "scripts/train.py (features from live_mer.features.Frontend via scripts/mer_data.py)",
            "data": {"4q": f"{n4q} clips of the 4Q audio emotion dataset (Panda et al. 2018), quadrant labels; "
                           "valence/arousal trained as the quadrant's signs (+-0.5)",
                     "emotify": f"{nemo} clips of Emotify (Aljanaki et al. 2016), GEMS-9 listener shares"},
            "licences": "4Q and Emotify are research datasets (research use only; Emotify audio is Magnatune, "
                        "CC BY-NC-SA). The model weights are derived from them: research/non-commercial use.",
            "distillation": "none: this student learns from ground-truth labels only (no teachers yet)",
            "seed": SEED, "epochs": args.epochs,
            "seconds": round(seconds_so_far + time.time() - t0, 1),
            "machine": f"{platform.machine()}, {platform.python_version()}, CPU only",
        },
        "evaluation": evaluation,
    }
    onnx_path = export(w, spec, ROOT / "models", args.name, extra)
    # Parity: the exported graph against the numpy/torch weights on real windows.
    model = load_model(onnx_path, provider="cpu")
    window, hop, recent = geometry(spec)
    silence = Frontend(spec, spec.sample_rate).silence_row()
    sample = windows_of(np.load(paths[0]), silence, window, hop)[:8]
    onnx_q = model.run(sample)["quadrant"]
    z = (pooled_statistics(sample, recent) - w.mean) / w.scale
    for wt, b in w.trunk:
        z = np.maximum(z @ wt + b, 0)
    logits = z @ w.heads["quadrant"][0] + w.heads["quadrant"][1]
    ref = np.exp(logits - logits.max(axis=1, keepdims=True))
    ref /= ref.sum(axis=1, keepdims=True)
    print(f"wrote {onnx_path} ({onnx_path.stat().st_size / 1024:.0f} KiB); ONNX vs weights max |diff| "
          f"{np.abs(onnx_q - ref).max():.2e}")
    return onnx_path


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("command", choices=["all", "features", "cv", "fit"])
    p.add_argument("--folds", type=int, default=5)
    p.add_argument("--epochs", type=int, default=40)
    p.add_argument("--workers", type=int, default=2)
    p.add_argument("--limit", type=int, help="use only this many clips (smoke tests)")
    p.add_argument("--name", default=DEFAULT_MODEL, help="model name written to models/")
    args = p.parse_args()
    if not (DATA / "4q" / "labels.csv").exists():
        print(f"training data not found at {DATA} (set LIVE_MER_DATA)", file=sys.stderr)
        return 2
    spec = FeatureSpec()
    t0 = time.time()
    if args.command in ("all", "features"):
        load_all(spec, args.limit)
    if args.command in ("all", "cv"):
        cmd_cv(spec, args)
    if args.command in ("all", "fit"):
        cmd_fit(spec, args, seconds_so_far=time.time() - t0)
    print(f"done in {time.time() - t0:.0f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
