"""MSD_musicnn embeddings and tag probabilities per 3-s patch, for the teachers (run with .venv-teacher).

    bash scripts/teachers/setup_env.sh                                  # once: makes .venv-teacher
    .venv-teacher/bin/python scripts/teachers/embed_musicnn.py --bench 3  # speed on a few clips, no output
    nohup .venv-teacher/bin/python scripts/teachers/embed_musicnn.py > .cache/teacher/musicnn.log 2>&1 &

Clips: 4Q (``4q/labels.csv``), Emotify (``emotify/tracks.csv``) and the rendered VGMIDI audio
(``.cache/vgmidi_audio/manifest.json``, from ``render_vgmidi.py``), with the clip ids of ``mer_data`` /
``teachers/vgmidi.py``. Output per clip: ``.cache/teacher/musicnn/<dataset>/<clip_id>.npz`` with

- ``start_s``, ``end_s`` (n,) float32: the audio span of each patch (3 s, one every ``--hop`` s; a tail
  shorter than a hop is not covered; a clip shorter than 3 s is repeat-padded, as musicnn trained);
- ``penultimate`` (n, 200) float32: the back end's 200-unit dense layer after batch norm (musicnn's
  ``features['penultimate']``);
- ``tags`` (n, 50) float32: sigmoid probabilities of the 50 MSD tags (``meta.json`` lists them);
- ``mean_pool``, ``max_pool`` (n, 753) float16: the temporal pools of the front+mid end feature map
  (musicnn's ``features['mean_pool'|'max_pool']``), kept for richer teachers; float16 only to save disk.

Existing outputs are skipped (resumable; files are written to a temporary name and renamed). One process;
TensorFlow threads default to 1 (``--threads``).

This does not call ``musicnn.extractor.extractor``: that casts the mel spectrogram to float16 before the
log, which overflows to inf on loud audio (float16 max 65504; a full-scale tone gives ~65536 here) and
rebuilds the graph and session for every file. The front end below is musicnn's, in float32: librosa
load at 16 kHz mono, power mel (n_fft 512, hop 256, 96 bands), ``log10(10000 x + 1)``, patches of 187
frames. The model graph is ``musicnn.models.define_model`` restored from the checkpoint in the wheel.
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import sys
import time
import warnings
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
warnings.filterwarnings("ignore", category=UserWarning)  # tf.compat.v1.layers deprecation notices

import numpy as np  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # scripts/, for paths (standard library only)

from paths import CACHE, DATA, require_data  # noqa: E402

OUT = CACHE / "teacher" / "musicnn"
VGMIDI_AUDIO = CACHE / "vgmidi_audio"
MODEL = "MSD_musicnn"
SR, FFT_HOP, FFT_SIZE, N_MELS = 16000, 256, 512, 96  # musicnn.configuration
N_FRAMES = 187  # librosa.time_to_frames(3, sr=16000, n_fft=512, hop_length=256) + 1, as musicnn computes it


# --------------------------------------------------------------------------------------------------- clips


def clips(data: Path = DATA, vgmidi_audio: Path = VGMIDI_AUDIO) -> list[tuple[str, str, Path]]:
    """(dataset, clip_id, path) of every clip: 4Q, Emotify, rendered VGMIDI (ids as in mer_data / vgmidi.py)."""
    out = []
    with open(data / "4q" / "labels.csv", newline="") as fh:
        out += [("4q", r["song"], data / r["path"]) for r in csv.DictReader(fh)]
    with open(data / "emotify" / "tracks.csv", newline="") as fh:
        out += [("emotify", r["track_id"].strip(), data / r["path"]) for r in csv.DictReader(fh)]
    manifest = vgmidi_audio / "manifest.json"
    if manifest.exists():
        with open(manifest) as fh:
            renders = json.load(fh)["renders"]
        out += [("vgmidi", key, vgmidi_audio / r["path"]) for key, r in sorted(renders.items())]
    else:
        print(f"embed_musicnn: no {manifest}; VGMIDI skipped (run render_vgmidi.py first)", file=sys.stderr)
    return out


def out_path(dataset: str, clip_id: str, out: Path = OUT) -> Path:
    return out / dataset / f"{clip_id}.npz"


# --------------------------------------------------------------------------------------------------- front end


def log_mel(path: Path) -> np.ndarray:
    """musicnn's input representation in float32: (frames, 96)."""
    import librosa

    audio, _ = librosa.load(str(path), sr=SR, mono=True)
    mel = librosa.feature.melspectrogram(y=audio, sr=SR, hop_length=FFT_HOP, n_fft=FFT_SIZE, n_mels=N_MELS)
    return np.log10(10000.0 * mel.T.astype(np.float32) + 1.0)


def patches(rep: np.ndarray, hop_frames: int) -> tuple[np.ndarray, np.ndarray]:
    """(n, 187, 96) patches one every ``hop_frames`` and their first frame index; short input repeat-padded."""
    if rep.shape[0] < N_FRAMES:
        rep = np.tile(rep, (int(np.ceil(N_FRAMES / max(rep.shape[0], 1))), 1))[:N_FRAMES]
    starts = np.arange(0, rep.shape[0] - N_FRAMES + 1, hop_frames)
    view = np.lib.stride_tricks.sliding_window_view(rep, N_FRAMES, axis=0)  # (frames-186, 96, 187)
    return np.ascontiguousarray(view[starts].transpose(0, 2, 1)), starts


# --------------------------------------------------------------------------------------------------- model


class Musicnn:
    """The MSD_musicnn graph restored once; :meth:`run` maps patches to its outputs."""

    def __init__(self, model: str = MODEL, threads: int = 1):
        import musicnn
        import tensorflow as tf
        from musicnn import models

        tf.compat.v1.disable_eager_execution()
        self.graph = tf.Graph()
        with self.graph.as_default():
            # Same scope and names as musicnn.extractor, so the checkpoint's variable names match.
            with tf.name_scope("model"):
                self.x = tf.compat.v1.placeholder(tf.float32, [None, N_FRAMES, N_MELS])
                self.is_training = tf.compat.v1.placeholder(tf.bool)
                (y, _timbral, _temporal, _c1, _c2, _c3, mean_pool, max_pool,
                 penultimate) = models.define_model(self.x, self.is_training, model, 50)
                self.outputs = {"tags": tf.nn.sigmoid(y), "penultimate": penultimate, "mean_pool": mean_pool,
                                "max_pool": max_pool}
            cfg = tf.compat.v1.ConfigProto(intra_op_parallelism_threads=threads,
                                           inter_op_parallelism_threads=threads)
            self.sess = tf.compat.v1.Session(graph=self.graph, config=cfg)
            tf.compat.v1.train.Saver().restore(self.sess, os.path.join(os.path.dirname(musicnn.__file__), model, ""))
        from musicnn import configuration

        self.labels = list(configuration.MSD_LABELS if "MSD" in model else configuration.MTT_LABELS)

    def run(self, batch: np.ndarray, batch_size: int = 64) -> dict[str, np.ndarray]:
        parts: dict[str, list] = {k: [] for k in self.outputs}
        for i in range(0, len(batch), batch_size):
            res = self.sess.run(self.outputs, feed_dict={self.x: batch[i:i + batch_size], self.is_training: False})
            for k, v in res.items():
                parts[k].append(np.asarray(v, np.float32).reshape(len(batch[i:i + batch_size]), -1))
        return {k: np.concatenate(v) for k, v in parts.items()}


def embed(net: Musicnn, path: Path, hop_frames: int) -> dict[str, np.ndarray]:
    rep = log_mel(path)
    batch, starts = patches(rep, hop_frames)
    out = net.run(batch)
    if not all(np.isfinite(v).all() for v in out.values()):
        raise FloatingPointError(f"{path}: non-finite musicnn output")
    t = starts * FFT_HOP / SR
    return {"start_s": t.astype(np.float32), "end_s": (t + N_FRAMES * FFT_HOP / SR).astype(np.float32),
            "penultimate": out["penultimate"], "tags": out["tags"],
            "mean_pool": out["mean_pool"].astype(np.float16), "max_pool": out["max_pool"].astype(np.float16)}


def save(result: dict[str, np.ndarray], dest: Path) -> None:
    dest.parent.mkdir(parents=True, exist_ok=True)
    tmp = dest.with_name(dest.name + ".part.npz")
    np.savez_compressed(tmp, **result)
    tmp.replace(dest)


# --------------------------------------------------------------------------------------------------- main


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--hop", type=float, default=1.0, help="seconds between patch starts (default 1.0)")
    ap.add_argument("--threads", type=int, default=1, help="TensorFlow intra/inter-op threads")
    ap.add_argument("--datasets", default="4q,emotify,vgmidi")
    ap.add_argument("--variants", default="", help="VGMIDI instrument versions to embed, e.g. 'original' "
                    "(default: all); the teachers label the other versions from the same piece's timeline")
    ap.add_argument("--out", type=Path, default=OUT)
    ap.add_argument("--bench", type=int, default=0, help="time N clips per dataset, write nothing")
    ap.add_argument("--selftest", action="store_true", help="restore the model and run it on noise")
    args = ap.parse_args(argv)
    hop_frames = max(1, int(round(args.hop * SR / FFT_HOP)))
    try:
        import tensorflow as tf
    except ImportError as exc:
        sys.exit(f"embed_musicnn: no {exc.name} here: run it with .venv-teacher/bin/python (made by "
                 "`bash scripts/teachers/setup_env.sh`)")
    if not args.selftest:
        require_data("4q/labels.csv", "emotify/tracks.csv")

    t0 = time.perf_counter()
    net = Musicnn(MODEL, args.threads)
    print(f"{MODEL} restored in {time.perf_counter() - t0:.1f} s (tensorflow {tf.__version__}, "
          f"{args.threads} thread(s)); hop {hop_frames} frames = {hop_frames * FFT_HOP / SR:.3f} s", flush=True)
    if args.selftest:
        rng = np.random.default_rng(0)
        rep = np.log10(10000.0 * rng.random((400, N_MELS), dtype=np.float32) * 1e5 + 1.0)  # loud: >float16 max
        out = net.run(patches(rep, hop_frames)[0])
        assert out["tags"].shape[1] == 50 and out["penultimate"].shape[1] == 200, {k: v.shape for k, v in out.items()}
        assert all(np.isfinite(v).all() for v in out.values())
        print("selftest ok:", {k: v.shape for k, v in out.items()})
        return

    wanted = set(args.datasets.split(","))
    variants = set(args.variants.split(",")) if args.variants else None

    def selected() -> list[tuple[str, str, Path]]:
        return [c for c in clips() if c[0] in wanted
                and (c[0] != "vgmidi" or variants is None or c[1].rsplit("@", 1)[-1] in variants)]

    todo = selected()
    if args.bench:
        by: dict[str, list] = {}
        for c in todo:
            if len(by.setdefault(c[0], [])) < args.bench:
                by[c[0]].append(c)
        for ds, cs in by.items():
            audio_s = wall = 0.0
            for _, cid, path in cs:
                import soundfile as sf

                t = time.perf_counter()
                r = embed(net, path, hop_frames)
                wall += time.perf_counter() - t
                audio_s += sf.info(str(path)).duration
                print(f"  {ds}/{cid}: {len(r['start_s'])} patches, tags max {r['tags'].max():.2f}", flush=True)
            print(f"{ds}: {len(cs)} clips, {audio_s:.0f} s audio in {wall:.1f} s = {audio_s / wall:.1f}x real time",
                  flush=True)
        return

    meta = {"model": MODEL, "sr": SR, "fft_hop": FFT_HOP, "fft_size": FFT_SIZE, "n_mels": N_MELS,
            "patch_frames": N_FRAMES, "hop_frames": hop_frames, "hop_s": hop_frames * FFT_HOP / SR,
            "tags": net.labels, "tensorflow": tf.__version__, "front_end": "float32 log10(10000*mel+1)"}
    args.out.mkdir(parents=True, exist_ok=True)
    if (args.out / "meta.json").exists():
        with open(args.out / "meta.json") as fh:
            old = json.load(fh)
        if old.get("hop_frames") != hop_frames:
            sys.exit(f"embed_musicnn: {args.out} holds hop {old.get('hop_frames')} frames, asked {hop_frames}: "
                     "use another --out")
    with open(args.out / "meta.json", "w") as fh:
        json.dump(meta, fh, indent=1)

    from tqdm import tqdm

    # Rescan after each pass: clips that appear meanwhile (render_vgmidi.py still writing) are picked up.
    failed: dict[str, str] = {}
    for n_pass in range(1, 11):
        todo = selected()
        pending = [c for c in todo if not out_path(c[0], c[1], args.out).exists() and f"{c[0]}/{c[1]}" not in failed]
        print(f"pass {n_pass}: {len(todo)} clips, {len(todo) - len(pending)} done or failed, {len(pending)} to do",
              flush=True)
        if not pending:
            break
        for ds, cid, path in tqdm(pending, desc="musicnn", unit="clip", mininterval=10, file=sys.stdout):
            try:
                save(embed(net, path, hop_frames), out_path(ds, cid, args.out))
            except Exception as exc:  # noqa: BLE001 - one bad file must not stop a multi-hour run
                failed[f"{ds}/{cid}"] = str(exc)
                print(f"FAILED {ds}/{cid}: {exc}", flush=True)
    print(f"done; {len(failed)} failed", flush=True)
    if failed:
        with open(args.out / "failed.txt", "w") as fh:
            fh.write("".join(f"{k}: {v}\n" for k, v in failed.items()))


if __name__ == "__main__":
    main()
