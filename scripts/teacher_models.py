"""Per-dataset teachers (Music2Emo's knowledge-distillation sources), non-causal and richer than the student.

Every clip of every dataset is described on a grid of *segments* (one every ``GRID_S`` seconds, each
seeing ``CONTEXT_S`` seconds centred on its time, i.e. past and future): the MSD musicnn embedding
(penultimate layer mean and std over the 3-s patches in the segment, ISC-licensed weights from the
``musicnn`` PyPI package, computed by ``scripts/teachers/embed_musicnn.py``) and the mean and std of
live_mer's own frame features (log-mel, key-relative chroma, chord and key statistics) over the segment.

Three teachers, one per dataset and label type, all on these descriptors:
  * 4Q: quadrant (multinomial logistic regression), segments labelled with their clip's quadrant;
  * Emotify: the nine GEMS shares (ridge regression), segments labelled with their clip's shares;
  * VGMIDI: valence and arousal (ridge regression), segments labelled with the measure at their centre
    (trained on the piano renders; the other instrument renders of a piece share its timeline and labels).
Each teacher then labels every *other* dataset's segments (cross pseudo-labels: quadrants for VGMIDI and
Emotify, GEMS for 4Q and VGMIDI, valence/arousal for 4Q and Emotify; see :func:`valence_arousal_target`). On its own dataset a teacher's
labels are out-of-fold, so no student ever learns from a teacher that saw the student's own clip.
"""

from __future__ import annotations

import numpy as np

from live_mer.features import FeatureSpec
from mer_data import GEMS, Clip
from paths import CACHE

MUSICNN = CACHE / "teacher" / "musicnn"
# Embeddings with a 2 s patch hop (Emotify, VGMIDI: long clips, embedded faster); same model and patches.
MUSICNN_HOP2 = CACHE / "teacher" / "musicnn_hop2"
GRID_S, CONTEXT_S = 2.0, 8.0
FRAME_RATE = FeatureSpec().frame_rate  # the feature cache's frame rate (22050 / 512)


def musicnn_path(clip: Clip):
    """The clip's embedding file (1 s patch hop if present, else 2 s)."""
    first = MUSICNN / clip.dataset / f"{clip.clip_id}.npz"
    return first if first.exists() else MUSICNN_HOP2 / clip.dataset / f"{clip.clip_id}.npz"


def segment_descriptors(clip: Clip, frames: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(times, descriptors) on the clip's segment grid; descriptors are float32 (n, 2*200 + 50 + 2*F)."""
    z = np.load(musicnn_path(clip))
    centres = (z["start_s"] + z["end_s"]) / 2
    pen, tags = z["penultimate"].astype(np.float32), z["tags"].astype(np.float32)
    duration = frames.shape[0] / FRAME_RATE
    times = np.arange(GRID_S / 2, max(duration, GRID_S), GRID_S)
    out = []
    for t in times:
        sel = np.abs(centres - t) <= CONTEXT_S / 2
        if not sel.any():
            sel = np.abs(centres - t) == np.abs(centres - t).min()
        lo, hi = int(max(0, (t - CONTEXT_S / 2) * FRAME_RATE)), int(min(frames.shape[0], (t + CONTEXT_S / 2) * FRAME_RATE))
        f = frames[lo:max(hi, lo + 1)]
        out.append(np.concatenate([pen[sel].mean(0), pen[sel].std(0), tags[sel].mean(0), f.mean(0), f.std(0)]))
    return times, np.asarray(out, np.float32)


def measure_at(clip: Clip, t: np.ndarray) -> np.ndarray:
    """VGMIDI (valence, arousal) of the measure containing each time (NaN outside the annotation)."""
    m = clip.extra["measures"]
    idx = np.searchsorted(m[:, 1], t, side="right")
    ok = (idx < len(m)) & (t >= m[np.minimum(idx, len(m) - 1), 0])
    va = np.full((len(t), 2), np.nan, np.float32)
    va[ok] = m[idx[ok]][:, 2:4]
    return va


class Teachers:
    """The three teachers fitted on the segments of a set of training clips."""

    def __init__(self, seed: int = 0):
        self.seed = seed

    def fit(self, segs: list[tuple[np.ndarray, np.ndarray]], clips: list[Clip], train: np.ndarray) -> "Teachers":
        from sklearn.linear_model import LogisticRegression, Ridge
        from sklearn.pipeline import make_pipeline
        from sklearn.preprocessing import StandardScaler

        def stack(dataset, label):
            xs, ys = [], []
            for i in np.flatnonzero(train):
                if clips[i].dataset != dataset or not clips[i].extra.get("embedded", True):
                    continue
                times, d = segs[i]
                y = label(clips[i], times)
                keep = ~np.isnan(np.asarray(y, np.float32).reshape(len(times), -1)).any(axis=1)
                xs.append(d[keep])
                ys.append(np.asarray(y)[keep])
            return (np.concatenate(xs), np.concatenate(ys)) if xs else (None, None)

        x, y = stack("4q", lambda c, t: np.full(len(t), c.quadrant))
        self.quadrant = (make_pipeline(StandardScaler(), LogisticRegression(C=0.01, max_iter=2000)).fit(x, y)
                         if x is not None else None)
        x, y = stack("emotify", lambda c, t: np.repeat(c.gems[None], len(t), axis=0))
        self.gems = make_pipeline(StandardScaler(), Ridge(alpha=3000.0)).fit(x, y) if x is not None else None
        x, y = stack("vgmidi", measure_at)
        self.va = make_pipeline(StandardScaler(), Ridge(alpha=3000.0)).fit(x, y) if x is not None else None
        return self

    def predict(self, descriptors: np.ndarray) -> dict[str, np.ndarray]:
        out = {}
        if self.quadrant is not None:
            out["quadrant"] = self.quadrant.predict_proba(descriptors).astype(np.float32)
        if self.gems is not None:
            out["gems"] = np.clip(self.gems.predict(descriptors), 0.0, 1.0).astype(np.float32)
        if self.va is not None:
            out["va"] = np.clip(self.va.predict(descriptors), -1.0, 1.0).astype(np.float32)
        return out


def teacher_labels(segs, clips, folds: np.ndarray, test_fold: int | None, seed: int = 0):
    """Per clip: segment times and teacher outputs for training a student that is tested on ``test_fold``.

    Teachers never see ``test_fold``. A clip's own-dataset labels come from teachers that also did not see
    that clip's fold (out-of-fold); cross-dataset labels from the teachers of all training folds.
    Returns {clip index: (times, {"quadrant", "gems", "va"})} for every clip not in ``test_fold``.
    """
    n_folds = int(folds.max()) + 1
    not_test = folds != test_fold if test_fold is not None else np.ones(len(clips), bool)
    cross = Teachers(seed).fit(segs, clips, not_test)
    own = {j: Teachers(seed).fit(segs, clips, not_test & (folds != j))
           for j in range(n_folds) if j != test_fold}
    own_head = {"4q": "quadrant", "emotify": "gems", "vgmidi": "va"}
    labels = {}
    for i in np.flatnonzero(not_test):
        times, d = segs[i]
        pred = cross.predict(d)
        dataset = clips[i].dataset
        pred[own_head[dataset]] = own[folds[i]].predict(d)[own_head[dataset]]
        pred["va"] = valence_arousal_target(dataset, pred)
        labels[int(i)] = (times, pred)
    return labels


def valence_arousal_target(dataset: str, pred: dict[str, np.ndarray]) -> np.ndarray:
    """The valence/arousal a student should learn on ``dataset``'s audio.

    The VGMIDI teacher knows piano game music; on 4Q's and Emotify's recordings its values are off-scale
    (arousal of a rock band vs a solo piano). The 4Q teacher's quadrant probabilities imply a valence
    and arousal on the same +-0.5 sign scale the 4Q ground truth uses: 4Q and Emotify clips use that,
    VGMIDI its own (out-of-fold) teacher. (Emotify used to take the mean of both teachers: in 5-fold CV
    that cost the student 0.023 of 4Q valence sign accuracy, see docs/model.md, Earlier models.)
    """
    if dataset == "vgmidi":
        return pred["va"]
    q = pred["quadrant"]
    return (0.5 * np.stack([q[:, 0] + q[:, 3] - q[:, 1] - q[:, 2],
                            q[:, 0] + q[:, 1] - q[:, 2] - q[:, 3]], 1)).astype(np.float32)


def teacher_oof_table(segs, clips, folds) -> dict:
    """Cross-validated quality of the teachers themselves (clip level = mean over a clip's segments)."""
    from sklearn.metrics import f1_score

    n_folds = int(folds.max()) + 1
    preds: dict[int, dict] = {}
    for k in range(n_folds):
        t = Teachers().fit(segs, clips, folds != k)
        for i in np.flatnonzero(folds == k):
            preds[int(i)] = t.predict(segs[i][1])
    out = {}
    clips_idx = [i for i, c in enumerate(clips) if c.extra.get("embedded", True)]  # each render once
    q = [i for i in clips_idx if clips[i].dataset == "4q"]
    if q:
        y = np.array([clips[i].quadrant for i in q])
        p = np.array([preds[i]["quadrant"].mean(0).argmax() for i in q])
        out["4q_clip_macro_f1"] = float(f1_score(y, p, average="macro"))
    g = [i for i in clips_idx if clips[i].dataset == "emotify"]
    if g:
        y = np.array([clips[i].gems for i in g])
        p = np.array([preds[i]["gems"].mean(0) for i in g])
        out["emotify_mean_pearson_r"] = float(np.mean([np.corrcoef(y[:, k], p[:, k])[0, 1] for k in range(len(GEMS))]))
    v = [i for i in clips_idx if clips[i].dataset == "vgmidi"]
    if v:
        ys, ps = [], []
        for i in v:
            va = measure_at(clips[i], segs[i][0])
            ok = ~np.isnan(va[:, 0])
            ys.append(va[ok])
            ps.append(preds[i]["va"][ok])
        y, p = np.concatenate(ys), np.concatenate(ps)
        out["vgmidi_valence_rmse"] = float(np.sqrt(np.mean((y[:, 0] - p[:, 0]) ** 2)))
        out["vgmidi_arousal_rmse"] = float(np.sqrt(np.mean((y[:, 1] - p[:, 1]) ** 2)))
        out["vgmidi_valence_r"] = float(np.corrcoef(y[:, 0], p[:, 0])[0, 1])
        out["vgmidi_arousal_r"] = float(np.corrcoef(y[:, 1], p[:, 1])[0, 1])
    return out
