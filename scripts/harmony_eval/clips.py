"""The deterministic real-music clip subset used by eval_harmony.py (paths under shared/data)."""

from __future__ import annotations

import csv
import os
from pathlib import Path

DATA = Path(os.environ.get("LIVE_MER_DATA", Path(__file__).resolve().parents[3] / "shared" / "data"))
CC_MUSIC = ("147793__setuniman__sweet-waltz-0i-22mi.ogg",
            "442789__lena-orsa__happy-music-pistachio-ice-cream-ragtime.ogg",
            "Hungarian_Dance_number_5_-_Allegro_in_F_sharp_minor_(string_orchestra).ogg",
            "Karissa_Hobbs_-_Lets_Go_Fishin.ogg", "Kevin_MacLeod_-_P_I_Tchaikovsky_Dance_of_the_Sugar_Plum_Fairy.ogg",
            "Kevin_MacLeod_-_Vibe_Ace.ogg")


def clip_list(n_4q: int = 28, n_emotify: int = 26) -> list[Path]:
    """Every 4Q clip at an even stride (all quadrants), every Emotify genre at an even stride, the CC music.

    The drum-and-bass stem, solo trumpet and the non-music excerpts are left out: they have no chords.
    """
    out: list[Path] = []
    with open(DATA / "4q" / "labels.csv", newline="") as f:
        rows = sorted(csv.DictReader(f), key=lambda r: r["song"])
    out += [DATA / r["path"] for r in rows[:: max(1, len(rows) // n_4q)][:n_4q]]
    with open(DATA / "emotify" / "tracks.csv", newline="") as f:
        rows = sorted(csv.DictReader(f), key=lambda r: int(r["track_id"]))
    out += [DATA / r["path"] for r in rows[:: max(1, len(rows) // n_emotify)][:n_emotify]]
    out += [DATA / "cc-excerpts" / name for name in CC_MUSIC]
    return [p for p in out if p.exists()]
