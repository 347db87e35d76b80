"""Teacher inputs without TensorFlow: VGMIDI timing from MIDI, annotation averaging, clip grouping."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np
import pytest

from conftest import need_or_skip

try:
    import mido
except ImportError:  # pragma: no cover - the test extra installs mido
    mido = None

TEACHERS = Path(__file__).resolve().parent.parent / "scripts" / "teachers"
sys.path.insert(0, str(TEACHERS))


@pytest.fixture(scope="module")
def vgmidi():
    need_or_skip(mido is not None, "mido is not installed (pip install -e '.[test]')")
    import vgmidi

    return vgmidi


TPB = 480


def _two_track_midi(path: Path | None = None):
    """3/4 for two bars, then 4/4; 120 bpm, 60 bpm from the middle of bar 3; notes to the end of bar 5.

    Conductor events sit in track 0, notes (and a duplicate of the 4/4 change, as some VGMIDI files
    have) in track 1. Bar starts in ticks: 0, 1440, 2880, 4800, 6720; the tempo halves at tick 3840.
    """
    mid = mido.MidiFile(type=1, ticks_per_beat=TPB)
    conductor = mido.MidiTrack([
        mido.MetaMessage("time_signature", numerator=3, denominator=4, time=0),
        mido.MetaMessage("set_tempo", tempo=500_000, time=0),
        mido.MetaMessage("time_signature", numerator=4, denominator=4, time=2880),
        mido.MetaMessage("set_tempo", tempo=1_000_000, time=3840 - 2880),
        mido.MetaMessage("end_of_track", time=0),
    ])
    notes = mido.MidiTrack([
        mido.Message("program_change", channel=0, program=0, time=0),
        mido.Message("note_on", channel=0, note=60, velocity=80, time=0),
        mido.MetaMessage("time_signature", numerator=4, denominator=4, time=2880),
        mido.Message("note_off", channel=0, note=60, velocity=0, time=8640 - 2880),
        mido.Message("note_on", channel=9, note=36, velocity=80, time=0),
        mido.Message("note_off", channel=9, note=36, velocity=0, time=0),
        mido.MetaMessage("end_of_track", time=0),
    ])
    mid.tracks += [conductor, notes]
    if path is not None:
        mid.save(path)
    return mid


def test_bar_boundaries_follow_time_signature_and_tempo_changes(vgmidi):
    mid = _two_track_midi()
    assert vgmidi.time_signatures(mid) == [(0, 3, 4), (2880, 4, 4)]
    assert vgmidi.tempo_changes(mid) == [(0, 500_000), (3840, 1_000_000)]
    np.testing.assert_allclose(vgmidi.bar_start_ticks(mid), [0, 1440, 2880, 4800, 6720])
    # 8 quarters at 0.5 s to the tempo change (4 s), then 1 s per quarter.
    expected = [[0.0, 1.5], [1.5, 3.0], [3.0, 6.0], [6.0, 10.0], [10.0, 14.0]]
    np.testing.assert_allclose(vgmidi.bar_boundaries(mid), expected)


def test_ticks_to_seconds_matches_mido(vgmidi, tmp_path):
    _two_track_midi(tmp_path / "a.mid")
    mid = mido.MidiFile(tmp_path / "a.mid")
    assert vgmidi.midi_length(mid) == pytest.approx(mid.length)
    # The tool's four-quarter blocks (any time signature): 2 s, 2 s, then 4 s after the tempo change.
    np.testing.assert_allclose(vgmidi.block_boundaries(mid, 3), [[0, 2], [2, 4], [4, 8]])


def test_time_signature_inside_a_bar_starts_a_new_bar(vgmidi):
    mid = mido.MidiFile(type=0, ticks_per_beat=TPB)
    mid.tracks.append(mido.MidiTrack([
        mido.Message("note_on", note=60, velocity=80, time=0),
        mido.MetaMessage("time_signature", numerator=2, denominator=4, time=TPB * 6),  # mid-bar of 4/4
        mido.Message("note_off", note=60, velocity=0, time=TPB * 4),
    ]))
    np.testing.assert_allclose(vgmidi.bar_start_ticks(mid), [0, 4 * TPB, 6 * TPB, 8 * TPB])
    assert vgmidi.quarter_measures(mid) == 3  # ceil(10 quarters / 4)


def _fake_dump() -> dict:
    """Two pieces in the dumps' real structure, one without a ``pieces`` entry (as piece85 in dump 1)."""
    extra = {"age": "21-25", "country": "US", "gender": "Male", "isKnown": False, "musicianship": 1}
    return {
        "pieces": {"piece0": {"audio": "audio/A.wav", "duration": 8.0, "measures": 4,
                              "midi": "S_C_G_Title.mid", "name": "Title"}},
        "annotations": {
            "piece0_1": {**extra, "valence": [0.5, 0.5, -0.5, 0.2], "arousal": [0.1, 0.2, 0.3, 0.4]},
            # One value too many (the tool wrote index n at currentTime == duration): dropped.
            "piece0_2": {**extra, "valence": [0.1, 0.3, -0.1, 0.4, 0.9], "arousal": [0.3, 0.2, 0.1, 0.0, 0.9]},
            # A last measure left at the initial (0, 0): missing, not neutral.
            "piece0_3": {**extra, "valence": [0.0, 0.1, -0.3, 0.0], "arousal": [0.2, 0.2, 0.2, 0.0]},
            "piece7_1": {**extra, "valence": [0.1, 0.2, 0.3], "arousal": [0.0, 0.1, 0.2]},
            "piece7_2": {**extra, "valence": [0.3, 0.2, 0.1], "arousal": [0.2, 0.1, 0.0]},
        },
    }


def test_annotation_averaging_per_measure(vgmidi):
    found, orphans = vgmidi.parse_dump(_fake_dump(), "vgmidi_raw_1")
    a = found["S_C_G_Title.mid"]
    assert (a.source, a.n_measures, a.duration, a.valence.shape) == ("vgmidi_raw_1:piece0", 4, 8.0, (3, 4))
    tab = a.table()
    np.testing.assert_allclose(tab[:, 0], [0.2, 0.3, -0.3, 0.3])  # valence mean; last over 2 annotators
    np.testing.assert_allclose(tab[:, 1], [0.2, 0.2, 0.2, 0.2])
    np.testing.assert_allclose(tab[:, 2], np.std([[0.5, 0.5, -0.5, 0.2], [0.1, 0.3, -0.1, 0.4],
                                                  [0.0, 0.1, -0.3, 0.2]], axis=0)[:3].tolist() + [0.1])
    np.testing.assert_array_equal(tab[:, 4], [3, 3, 3, 2])
    np.testing.assert_array_equal(tab[:, 5], [3, 3, 3, 2])
    assert a.notes  # the over-long list is reported
    # The tool's timeline: measure k is [k, k + 1) * duration / measures of the annotated audio.
    np.testing.assert_allclose(vgmidi.annotation_grid(a.duration, a.n_measures), [[0, 2], [2, 4], [4, 6], [6, 8]])
    assert set(orphans) == {"piece7"}


def test_orphan_ratings_match_by_unique_measure_count(vgmidi):
    _, orphans = vgmidi.parse_dump(_fake_dump(), "vgmidi_raw_1")
    matched, left_ids, left_files = vgmidi.match_orphans(orphans, {"X.mid": 3, "Y.mid": 5}, "vgmidi_raw_1")
    assert list(matched) == ["X.mid"] and matched["X.mid"].matched_by == "measure_count"
    np.testing.assert_allclose(matched["X.mid"].table()[:, 0], [0.2, 0.2, 0.2])
    assert left_ids == [] and left_files == ["Y.mid"]
    # Two files with the same count: ambiguous, left unmatched.
    matched, left_ids, _ = vgmidi.match_orphans(orphans, {"X.mid": 3, "Z.mid": 3}, "vgmidi_raw_1")
    assert matched == {} and left_ids == ["piece7"]


def test_variants_are_deterministic_and_distinct(vgmidi):
    v = vgmidi.variants_for("Some_Piece")
    assert v == vgmidi.variants_for("Some_Piece") and v[0] == "original"
    assert len(set(v)) == 1 + vgmidi.N_VARIANTS and set(v[1:]) <= set(vgmidi.PROGRAMS)
    assert len({tuple(vgmidi.variants_for(f"p{i}")) for i in range(40)}) > 1  # not one fixed choice


def test_variants_of_a_piece_share_a_game_group(vgmidi, tmp_path):
    import soundfile as sf

    piece = "S_C_G_Title"
    data, audio = tmp_path / "data", tmp_path / "audio"
    (data / "vgmidi" / "midi").mkdir(parents=True)
    (data / "vgmidi" / "annotations").mkdir()
    _two_track_midi(data / "vgmidi" / "midi" / f"{piece}.mid")
    with open(data / "vgmidi" / "annotations" / "vgmidi_raw_1.json", "w") as fh:
        json.dump(_fake_dump(), fh)
    variants = vgmidi.variants_for(piece)
    for v in variants:
        p = vgmidi.audio_path(piece, v, audio)
        p.parent.mkdir(parents=True, exist_ok=True)
        sf.write(str(p), np.zeros(int(7.0 * 8000), np.float32), 8000, format="FLAC")  # 7 s: measure 4 clipped
    clips = vgmidi.load_vgmidi(data=data, audio_dir=audio)
    assert [c.clip_id for c in clips] == [f"{piece}@{v}" for v in variants]
    assert {c.group for c in clips} == {"vgmidi:G"}  # the game: all renders, and the game's other pieces
    assert vgmidi.game_of("Final Fantasy_PS1_Final Fantasy VII_One Winged Angel") == "Final Fantasy VII"
    assert all(c.dataset == "vgmidi" and c.path.exists() for c in clips)
    m = clips[0].extra["measures"]
    np.testing.assert_allclose(m[:, :2], [[0, 2], [2, 4], [4, 6], [6, 7]])
    np.testing.assert_allclose(m[:, 2], [0.2, 0.3, -0.3, 0.3])
    assert clips[0].extra["bars"].shape == (5, 2)


def test_program_variant_rewrites_melodic_channels_only(vgmidi, tmp_path):
    import render_vgmidi

    src, dst = tmp_path / "in.mid", tmp_path / "out.mid"
    _two_track_midi(src)
    render_vgmidi.with_program(src, dst, 48)
    out = mido.MidiFile(dst)
    progs = [(m.channel, m.program) for t in out.tracks for m in t if m.type == "program_change"]
    assert progs == [(0, 48)]  # channel 0 re-orchestrated; the drum channel keeps no program change

    def notes(mid):
        return [(m.type, m.channel, m.note, m.time) for m in mido.merge_tracks(mid.tracks) if m.type.startswith("note")]

    assert notes(out) == notes(mido.MidiFile(src))
    assert out.length == pytest.approx(mido.MidiFile(src).length)
