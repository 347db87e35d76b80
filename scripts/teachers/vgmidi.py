"""VGMIDI (Ferreira & Whitehead, ISMIR 2019): MIDI timing, per-measure annotations and the clip loader.

The labelled part of VGMIDI is 204 piano MIDI files plus two JSON dumps of the annotation web tool
(``annotations/vgmidi_raw_{1,2}.json``). Each dump is ``{"pieces": {pid: {...}}, "annotations":
{f"{pid}_{n}": {...}}}``: ``pieces[pid]`` names the MIDI file (``midi``), its number of "measures" and the
duration in seconds of the audio the annotators heard; ``annotations[f"{pid}_{n}"]`` is annotator ``n``'s
``valence`` and ``arousal`` lists (one value per measure, in [-1, 1]) plus a questionnaire. Piece ids are
local to each dump (``piece0`` of dump 1 and of dump 2 are different pieces).

How the tool defined a "measure" (github.com/lucasnfe/adl-music-annotation): ``measures =
ceil(quarterLength / 4)`` of the music21 stream, i.e. a block of four quarter notes whatever the time
signature, and while the audio played it wrote the current value at index ``floor(currentTime / duration *
measures)``: measure ``k`` is the time slice ``[k, k + 1) * duration / measures`` of the rendered audio.
That uniform slicing is how the values were recorded, so it is the default label timeline here
(:func:`annotation_grid`). The musical bar grid (tempo map + time signatures, :func:`bar_boundaries`) and
the tempo-mapped four-quarter grid (:func:`block_boundaries`) are computed too; they coincide with the
recording grid for constant-tempo pieces and are kept in each clip's ``extra`` for comparison.

Pieces are named by the MIDI file stem (``<series>_<console>_<game>_<title>``); clip ids and cache file
names use :func:`piece_slug` of it.
"""

from __future__ import annotations

import hashlib
import json
import re
import sys
import warnings
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from mer_data import Clip  # noqa: E402
from paths import CACHE, DATA  # noqa: E402

VGMIDI = DATA / "vgmidi"
AUDIO = CACHE / "vgmidi_audio"
SOUNDFONT = Path("/usr/share/sounds/sf2/FluidR3_GM.sf2")
SAMPLE_RATE = 22050
DEFAULT_TEMPO = 500_000  # µs per quarter note, the MIDI default (120 bpm)
DRUM_CHANNEL = 9

# General MIDI programs (0-based) for the re-orchestrated versions. "original" renders the file as is
# (mostly acoustic grand piano, program 0; a few files use other programs).
PROGRAMS = {
    "strings": 48,  # String Ensemble 1
    "epiano": 4,  # Electric Piano 1 (Rhodes)
    "guitar": 24,  # Acoustic Guitar (nylon)
    "vibraphone": 11,
    "organ": 19,  # Church Organ
}
N_VARIANTS = 3  # program-changed versions per piece, besides "original"
VARIANT_SEED = 20261121


# --------------------------------------------------------------------------------------------------- names


def piece_slug(name: str) -> str:
    """File-system and shell friendly id of a piece: ``[A-Za-z0-9._-]`` only."""
    return re.sub(r"[^A-Za-z0-9._-]+", "_", name).strip("_")


def game_of(piece: str) -> str:
    """The game of a piece named ``<series>_<console>_<game>_<title>`` (the whole name if it has no game):
    VGMIDI's folds group by game, since one game's pieces share a composer and often a tune (Ocarina of
    Time's "Medley of Time" holds its "Song of Storms"; "One Winged Angel" and its "Reborn Arrangement")."""
    parts = piece.split("_", 3)
    return parts[2] if len(parts) == 4 else piece


def variants_for(piece: str, seed: int = VARIANT_SEED, k: int = N_VARIANTS) -> list[str]:
    """``["original", ...k program variants]`` for ``piece``, chosen deterministically from its name."""
    digest = hashlib.sha256(f"{seed}:{piece}".encode()).digest()
    rng = np.random.default_rng(int.from_bytes(digest[:8], "little"))
    names = sorted(PROGRAMS)
    picked = rng.choice(len(names), size=k, replace=False)
    return ["original"] + [names[i] for i in sorted(picked)]


def audio_path(piece: str, variant: str, audio_dir: Path = AUDIO) -> Path:
    return audio_dir / variant / f"{piece_slug(piece)}.flac"


# --------------------------------------------------------------------------------------------------- MIDI timing


def _absolute_events(mid) -> list[tuple[int, int, object]]:
    """(absolute tick, track index, message) of every message of every track."""
    out = []
    for ti, track in enumerate(mid.tracks):
        tick = 0
        for msg in track:
            tick += msg.time
            out.append((tick, ti, msg))
    return out


def tempo_changes(mid) -> list[tuple[int, int]]:
    """Sorted ``(tick, µs per quarter)``, starting at tick 0 (the default tempo until the first change).

    Tempo events of all tracks count (type-1 files keep them in any track); several at one tick: the
    last one in file order wins.
    """
    by_tick: dict[int, int] = {0: DEFAULT_TEMPO}
    for tick, _, msg in sorted(_absolute_events(mid), key=lambda e: (e[0], e[1])):
        if msg.type == "set_tempo":
            by_tick[tick] = msg.tempo
    return sorted(by_tick.items())


def ticks_to_seconds(ticks, tempi: list[tuple[int, int]], ticks_per_beat: int) -> np.ndarray:
    """Seconds at ``ticks`` under the piecewise-constant tempo map ``tempi`` (from :func:`tempo_changes`)."""
    ticks = np.asarray(ticks, dtype=np.float64)
    starts = np.array([t for t, _ in tempi], dtype=np.float64)
    us = np.array([u for _, u in tempi], dtype=np.float64)
    sec_per_tick = us / 1e6 / ticks_per_beat
    seg_start_s = np.concatenate([[0.0], np.cumsum(np.diff(starts) * sec_per_tick[:-1])])
    i = np.searchsorted(starts, ticks, side="right") - 1
    i = np.clip(i, 0, len(starts) - 1)
    return seg_start_s[i] + (ticks - starts[i]) * sec_per_tick[i]


def time_signatures(mid) -> list[tuple[int, int, int]]:
    """Sorted, de-duplicated ``(tick, numerator, denominator)``; 4/4 from tick 0 unless one is given there."""
    by_tick: dict[int, tuple[int, int]] = {0: (4, 4)}
    for tick, _, msg in sorted(_absolute_events(mid), key=lambda e: (e[0], e[1])):
        if msg.type == "time_signature":
            by_tick[tick] = (msg.numerator, msg.denominator)
    out: list[tuple[int, int, int]] = []
    for tick, (num, den) in sorted(by_tick.items()):
        if not out or (out[-1][1], out[-1][2]) != (num, den):
            out.append((tick, num, den))
    return out


def last_note_tick(mid) -> int:
    """Tick of the last note event (note-off or note-on), 0 for a file without notes."""
    return max((t for t, _, m in _absolute_events(mid) if m.type in ("note_on", "note_off")), default=0)


def bar_start_ticks(mid, end_tick: int | None = None) -> np.ndarray:
    """Ticks at which bars start, up to (excluding) ``end_tick`` (default: the last note event).

    A bar lasts ``numerator * 4 / denominator`` quarter notes under the time signature in force at its
    start. A time signature event inside a bar (badly formed files) starts a new bar there.
    """
    tpb = mid.ticks_per_beat
    end = last_note_tick(mid) if end_tick is None else end_tick
    sigs = time_signatures(mid)
    starts = []
    for j, (tick, num, den) in enumerate(sigs):
        stop = sigs[j + 1][0] if j + 1 < len(sigs) else max(end, tick + 1)
        bar = num * tpb * 4 / den
        t = float(tick)
        while t < stop and t < end:
            starts.append(t)
            t += bar
        if j + 1 == len(sigs):
            break
    return np.asarray(starts if starts else [0.0])


def bar_boundaries(mid, end_tick: int | None = None) -> np.ndarray:
    """``(n_bars, 2)`` start/end seconds of the musical bars (time signatures + tempo map).

    The last bar runs to its full length even past the last note.
    """
    tpb = mid.ticks_per_beat
    starts = bar_start_ticks(mid, end_tick)
    sigs = time_signatures(mid)
    sig_ticks = np.array([s[0] for s in sigs])
    last = starts[-1]
    num, den = sigs[int(np.searchsorted(sig_ticks, last, side="right")) - 1][1:]
    ends = np.append(starts[1:], last + num * tpb * 4 / den)
    tempi = tempo_changes(mid)
    return np.stack([ticks_to_seconds(starts, tempi, tpb), ticks_to_seconds(ends, tempi, tpb)], axis=1)


def block_boundaries(mid, n_blocks: int, quarters: float = 4.0) -> np.ndarray:
    """``(n_blocks, 2)`` seconds of consecutive ``quarters``-quarter-note blocks through the tempo map.

    The annotation tool's "measure" unit (four quarters, any time signature), placed musically.
    """
    edges = np.arange(n_blocks + 1) * quarters * mid.ticks_per_beat
    sec = ticks_to_seconds(edges, tempo_changes(mid), mid.ticks_per_beat)
    return np.stack([sec[:-1], sec[1:]], axis=1)


def annotation_grid(duration: float, n_measures: int) -> np.ndarray:
    """``(n, 2)`` seconds of the annotation tool's measure ``k``: ``[k, k + 1) * duration / n``."""
    edges = np.arange(n_measures + 1) * (duration / n_measures)
    return np.stack([edges[:-1], edges[1:]], axis=1)


def midi_length(mid) -> float:
    """Seconds to the last event of the file (what ``mido.MidiFile.length`` gives, via our tempo map)."""
    end = max((t for t, _, _ in _absolute_events(mid)), default=0)
    return float(ticks_to_seconds([end], tempo_changes(mid), mid.ticks_per_beat)[0])


# --------------------------------------------------------------------------------------------------- annotations


@dataclass
class PieceAnnotation:
    """All annotators' per-measure ratings of one piece."""

    source: str  # "vgmidi_raw_1:piece12"
    midi: str  # MIDI file name in vgmidi/midi
    name: str
    n_measures: int
    duration: float | None  # seconds of the audio the annotators heard (None: not in the dump)
    valence: np.ndarray  # (n_annotators, n_measures), NaN where an annotator has no value
    arousal: np.ndarray
    matched_by: str = "json"  # "json": the dump names the file; "measure_count": inferred, see match_orphans
    notes: list[str] = field(default_factory=list)

    def table(self) -> np.ndarray:
        """``(n_measures, 6)``: valence mean, arousal mean, valence std, arousal std, n valence, n arousal."""
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)  # all-NaN columns stay NaN
            cols = [np.nanmean(self.valence, 0), np.nanmean(self.arousal, 0),
                    np.nanstd(self.valence, 0), np.nanstd(self.arousal, 0),
                    np.sum(~np.isnan(self.valence), 0), np.sum(~np.isnan(self.arousal), 0)]
        return np.stack(cols, axis=1).astype(np.float64)


def _fit_ratings(valence: list[float], arousal: list[float], n: int) -> tuple[np.ndarray, np.ndarray]:
    """One annotator's lists fitted to ``n`` measures, NaN where there is no rating.

    The tool starts every annotator at ``[0] * n`` and overwrites the current measure while the audio
    plays. A list one longer than ``n`` happens when playback reached ``currentTime == duration`` (the tool
    then writes index ``n``): that value is dropped. Short lists are padded with NaN. A last measure still
    at exactly (0, 0) was never written (playback ended before the tool sampled it; ~17 % of annotators),
    so it is missing, not neutral. Interior (0, 0) pairs (~0.2 %) are kept: the point starts at the centre.
    """
    rows = []
    for values in (valence, arousal):
        row = np.full(n, np.nan)
        v = np.asarray(values[:n], dtype=np.float64)
        row[: len(v)] = v
        rows.append(row)
    if n and rows[0][n - 1] == 0 and rows[1][n - 1] == 0:
        rows[0][n - 1] = rows[1][n - 1] = np.nan
    return rows[0], rows[1]


def _stack(r: dict[str, list], n: int) -> tuple[np.ndarray, np.ndarray]:
    fitted = [_fit_ratings(v, a, n) for v, a in zip(r["valence"], r["arousal"])]
    val = np.array([f[0] for f in fitted]).reshape(-1, n)
    aro = np.array([f[1] for f in fitted]).reshape(-1, n)
    return val, aro


def parse_dump(dump: dict, source: str) -> tuple[dict[str, PieceAnnotation], dict[str, dict]]:
    """Parse one JSON dump.

    Returns the annotations of pieces the dump describes, keyed by MIDI file name, and the raw ratings of
    piece ids it does not describe (``{pid: {"valence": [...], "arousal": [...]}}`` lists per annotator).
    """
    pieces = dump.get("pieces", {})
    ratings: dict[str, dict[str, list]] = {}
    for key, ann in dump.get("annotations", {}).items():
        pid, _, _annotator = key.rpartition("_")
        r = ratings.setdefault(pid, {"valence": [], "arousal": [], "keys": []})
        r["valence"].append(ann["valence"])
        r["arousal"].append(ann["arousal"])
        r["keys"].append(key)
    out: dict[str, PieceAnnotation] = {}
    for pid, info in pieces.items():
        r = ratings.pop(pid, {"valence": [], "arousal": []})
        n = int(info["measures"])
        notes = []
        lens = {len(x) for x in r["valence"] + r["arousal"]}
        if lens - {n}:
            notes.append(f"annotation lengths {sorted(lens)} vs {n} measures: fitted to {n}")
        val, aro = _stack(r, n)
        out[info["midi"]] = PieceAnnotation(f"{source}:{pid}", info["midi"], info.get("name", ""), n,
                                            float(info["duration"]), val, aro, "json", notes)
    return out, ratings


def quarter_measures(mid) -> int:
    """The annotation tool's measure count: ceil(quarter notes to the last note / 4)."""
    return int(np.ceil(last_note_tick(mid) / mid.ticks_per_beat / 4 - 1e-9))


def match_orphans(orphans: dict[str, dict], unmatched_midis: dict[str, int], source: str
                  ) -> tuple[dict[str, PieceAnnotation], list[str], list[str]]:
    """Pair annotated piece ids the dump does not describe with MIDI files no dump names.

    The only evidence is the measure count: the ratings' modal length must equal the tool's measure
    count of exactly one unmatched file (``unmatched_midis``: file -> :func:`quarter_measures`), and that
    file must fit no other orphan. Returns matches, orphan ids left over, files left over.
    """
    lengths = {}
    for pid, r in orphans.items():
        ls = [len(x) for x in r["valence"]]
        lengths[pid] = max(set(ls), key=ls.count) if ls else -1
    out: dict[str, PieceAnnotation] = {}
    used: set[str] = set()
    for pid, n in sorted(lengths.items()):
        files = [f for f, m in unmatched_midis.items() if m == n]
        rivals = [p for p, m in lengths.items() if m == n]
        if len(files) == 1 and len(rivals) == 1:
            f = files[0]
            r = orphans[pid]
            val, aro = _stack(r, n)
            out[f] = PieceAnnotation(f"{source}:{pid}", f, Path(f).stem.rsplit("_", 1)[-1], n, None, val, aro,
                                     "measure_count",
                                     [f"{source} has ratings for {pid} but no piece entry; matched to {f} by its "
                                      f"unique measure count {n}; duration taken from the MIDI file"])
            used.add(f)
    left_ids = sorted(set(orphans) - {a.source.split(":")[1] for a in out.values()})
    left_files = sorted(set(unmatched_midis) - used)
    return out, left_ids, left_files


def load_annotations(vgmidi: Path = VGMIDI) -> tuple[dict[str, PieceAnnotation], dict]:
    """Every annotated piece keyed by MIDI file name, and a report of what could not be matched."""
    import mido

    midi_files = sorted(p.name for p in (vgmidi / "midi").glob("*.mid"))
    found: dict[str, PieceAnnotation] = {}
    orphans: dict[str, dict[str, dict]] = {}
    report: dict = {"missing_midi": [], "duplicate_midi": [], "matched_by_measure_count": {}}
    for path in sorted((vgmidi / "annotations").glob("vgmidi_raw_*.json")):
        with open(path) as fh:
            parsed, orph = parse_dump(json.load(fh), path.stem)
        for f, a in parsed.items():
            if f not in midi_files:
                report["missing_midi"].append(f"{a.source} -> {f}")
            elif f in found:
                report["duplicate_midi"].append(f"{a.source} and {found[f].source} -> {f}")
            else:
                found[f] = a
        if orph:
            orphans[path.stem] = orph
    unmatched = {f: quarter_measures(mido.MidiFile(vgmidi / "midi" / f)) for f in midi_files if f not in found}
    report["orphan_ids"], report["unannotated_midi"] = [], []
    for source, orph in orphans.items():
        matched, left_ids, left_files = match_orphans(orph, unmatched, source)
        for f, a in matched.items():
            found[f] = a
            report["matched_by_measure_count"][a.source] = f
            unmatched.pop(f)
        report["orphan_ids"] += [f"{source}:{p} ({len(orph[p]['valence'])} annotators, "
                                 f"{len(orph[p]['valence'][0])} measures)" for p in left_ids]
    report["unannotated_midi"] = sorted(unmatched)
    return found, report


# --------------------------------------------------------------------------------------------------- loader


def label_timeline(ann: PieceAnnotation, mid, timeline: str = "annotation") -> np.ndarray:
    """``(n_measures, 2)`` seconds for ``ann``'s measures on the chosen timeline.

    ``"annotation"``: the tool's uniform slices of the annotated duration (the MIDI length where the dump
    has none); ``"blocks"``: four-quarter blocks through the tempo map.
    """
    if timeline == "annotation":
        return annotation_grid(ann.duration if ann.duration else midi_length(mid), ann.n_measures)
    if timeline == "blocks":
        return block_boundaries(mid, ann.n_measures)
    raise ValueError(f"unknown timeline {timeline!r} (annotation | blocks)")


def load_vgmidi(data: Path = DATA, audio_dir: Path = AUDIO, timeline: str = "annotation",
                only_rendered: bool = True) -> list[Clip]:
    """VGMIDI clips: one per rendered (piece, instrument variant), grouped by game (:func:`game_of`), so
    every render of a piece and every arrangement of its tune share a fold.

    ``extra["measures"]`` is ``(n, 4)`` float64: start s, end s, mean valence, mean arousal (annotators'
    mean per measure, on ``timeline``, see :func:`label_timeline`; measures starting past the end of the
    audio are dropped, the last one is clipped to it; so are measures nobody rated). ``extra["measure_stats"]`` is ``(n, 4)``: valence
    std, arousal std, valence count, arousal count. ``extra["bars"]`` holds the musical bar boundaries.
    """
    import mido
    import soundfile as sf

    anns, _ = load_annotations(data / "vgmidi")
    manifest = {}
    if (audio_dir / "manifest.json").exists():
        with open(audio_dir / "manifest.json") as fh:
            manifest = json.load(fh).get("renders", {})
    clips = []
    for f in sorted(anns):
        a = anns[f]
        piece = Path(f).stem
        mid = mido.MidiFile(data / "vgmidi" / "midi" / f)
        grid = label_timeline(a, mid, timeline)
        tab = a.table()
        for variant in variants_for(piece):
            path = audio_path(piece, variant, audio_dir)
            info = manifest.get(f"{piece_slug(piece)}@{variant}")
            if info is not None:
                seconds = info["seconds"]
            elif path.exists():
                seconds = sf.info(str(path)).duration
            elif only_rendered:
                continue
            else:
                seconds = float("inf")
            keep = (grid[:, 0] < seconds) & (tab[:, 4] > 0) & (tab[:, 5] > 0)  # on the audio, rated
            g = grid[keep].copy()
            g[:, 1] = np.minimum(g[:, 1], seconds)
            measures = np.concatenate([g, tab[keep, :2]], axis=1)
            clips.append(Clip("vgmidi", f"{piece_slug(piece)}@{variant}", path, f"vgmidi:{piece_slug(game_of(piece))}",
                              extra={"measures": measures, "measure_stats": tab[keep, 2:],
                                     "bars": bar_boundaries(mid), "variant": variant,
                                     "program": PROGRAMS.get(variant), "piece": piece, "midi": f,
                                     "annotation": a.source, "matched_by": a.matched_by,
                                     "timeline": timeline, "n_annotators": len(a.valence)}))
    return clips
