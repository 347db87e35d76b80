"""Labelled synthetic harmony test pieces: random progressions written as MIDI (mido), rendered with fluidsynth.

Each piece: a key (24), optionally one modulation, a diatonic chord progression with triads and some
sevenths, random inversions, a GM program for the chords (block, arpeggiated or stabbed), a bass line on
the chord's bass note, a drum kit, tempo 60-180 BPM. Ground truth: chord intervals (mir_eval labels, with
the inversion) and key intervals. Audio and MIDI are cached under ``.cache/harmony_eval/synth``.
"""

from __future__ import annotations

import json
import subprocess
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from live_mer.harmony import PITCH_CLASSES as PITCH, QUALITIES, QUALITY_INTERVALS
from paths import CACHE

SOUNDFONT = "/usr/share/sounds/sf2/FluidR3_GM.sf2"
# GM programs (0-based) for the chord part: pianos, e-pianos, organs, guitars, strings, brass, pads, synth lead
CHORD_PROGRAMS = (0, 1, 4, 5, 16, 19, 24, 25, 26, 48, 49, 61, 81, 88, 89, 90)
BASS_PROGRAMS = (32, 33, 34, 38, 39)
INTERVALS = dict(zip(QUALITIES, QUALITY_INTERVALS))  # quality -> semitones above the root
# Chords outside the diatonic progressions, sprinkled in when ``colour_rate`` > 0 (training data).
COLOUR_QUALITIES = ("dim", "aug", "sus2", "sus4", "7", "maj", "min")
# Diatonic chords as (degree semitones above tonic, triad quality, seventh quality), per mode.
MAJOR_DEGREES = [(0, "maj", "maj7"), (2, "min", "min7"), (4, "min", "min7"), (5, "maj", "maj7"), (7, "maj", "7"),
                 (9, "min", "min7")]
MINOR_DEGREES = [(0, "min", "min7"), (3, "maj", "maj7"), (5, "min", "min7"), (7, "maj", "7"), (8, "maj", "maj7"),
                 (10, "maj", "7")]
# Common progressions (indices into the degree lists above).
MAJOR_PROGS = [(0, 4, 5, 3), (0, 3, 4, 0), (0, 5, 3, 4), (1, 4, 0, 0), (0, 3, 0, 4), (5, 3, 0, 4), (0, 2, 3, 4)]
MINOR_PROGS = [(0, 4, 1, 5), (0, 2, 3, 0), (0, 5, 4, 3), (0, 1, 2, 3), (0, 4, 5, 3), (0, 2, 0, 3)]
MODULATIONS = (2, 5, 7, -1, 1, 3, -3, 9)  # semitones; the mode may change too


@dataclass
class Piece:
    name: str
    wav: Path
    duration: float
    chords: list  # [start, end, label]
    keys: list  # [start, end, "C major"]
    tempo: float
    program: int


def _plan(rng: np.random.Generator, seconds: float, colour_rate: float = 0.0):
    """Chord events (start_beat, beats, root_pc, quality, bass_pc) and key segments, in beats."""
    tempo = float(rng.uniform(60, 180))
    beats_total = int(seconds * tempo / 60.0)
    tonic, minor = int(rng.integers(12)), bool(rng.random() < 0.5)
    modulate_at = int(rng.uniform(0.4, 0.6) * beats_total) // 4 * 4 if rng.random() < 0.6 else None
    # Chords last 2 or 4 beats at slow tempi, 4 or 8 at fast ones (a chord lasts ~1-4 s).
    lengths = (2, 4) if tempo < 100 else (4, 8) if tempo > 140 else (4, 4, 8)
    events, keys, beat, key_start = [], [], 0, 0
    seventh_rate = float(rng.choice([0.0, 0.2, 0.5]))
    while beat < beats_total:
        if modulate_at is not None and beat >= modulate_at and key_start == 0:
            keys.append((0, beat, tonic, minor))
            tonic = (tonic + int(rng.choice(MODULATIONS))) % 12
            minor = bool(rng.random() < 0.5)
            key_start = beat
        degrees = MINOR_DEGREES if minor else MAJOR_DEGREES
        prog = (MINOR_PROGS if minor else MAJOR_PROGS)[int(rng.integers(len(MINOR_PROGS if minor else MAJOR_PROGS)))]
        # After a modulation, establish the new key with its tonic first.
        for d in prog:
            if beat >= beats_total:
                break
            deg, triad, seventh = degrees[d]
            quality = seventh if rng.random() < seventh_rate else triad
            root = (tonic + deg) % 12
            if colour_rate > 0.0 and rng.random() < colour_rate:  # any quality on any root, root position
                quality, root = str(rng.choice(COLOUR_QUALITIES)), int(rng.integers(12))
            inv = int(rng.choice([0, 0, 0, 1, 2])) if quality in _INVERSION_DEGREES[0] else 0
            bass = (root + INTERVALS[quality][min(inv, len(INTERVALS[quality]) - 1)]) % 12
            n = int(rng.choice(lengths))
            n = min(n, beats_total - beat)
            events.append((beat, n, root, quality, bass, inv))
            beat += n
    keys.append((key_start, beat, tonic, minor))
    return tempo, events, keys, beat


# Bass degree of the first and second inversion, per quality (mir_eval slash notation).
_INVERSION_DEGREES = ({"maj": "3", "min": "b3", "7": "3", "maj7": "3", "min7": "b3", "dim": "b3"},
                      {"maj": "5", "min": "5", "7": "5", "maj7": "5", "min7": "5", "dim": "b5"})


def _label(root: int, quality: str, inv: int) -> str:
    if inv == 0:
        return f"{PITCH[root]}:{quality}"
    return f"{PITCH[root]}:{quality}/{_INVERSION_DEGREES[inv - 1][quality]}"


def write_midi(path: Path, rng: np.random.Generator, seconds: float, programs=CHORD_PROGRAMS,
               bass_programs=BASS_PROGRAMS, colour_rate: float = 0.0, melody: bool = False):
    import mido

    tempo, events, keys, beats = _plan(rng, seconds, colour_rate)
    tpb = 480
    mid = mido.MidiFile(ticks_per_beat=tpb)
    program = int(rng.choice(programs))
    style = str(rng.choice(["block", "arpeggio", "stabs"]))
    bass_program = int(rng.choice(bass_programs))
    drums = bool(rng.random() < 0.75)
    bass_on, melody_program = True, None
    if melody:  # a busier texture: mostly a lead line with passing tones over the chords, sometimes no bass
        bass_on = bool(rng.random() > 0.25)
        melody_program = int(rng.choice(programs)) if rng.random() < 0.75 else None
    notes: list[tuple[int, int, int, int, int]] = []  # (tick_on, tick_off, channel, note, velocity)
    for beat, n, root, quality, bass_pc, inv in events:
        t0, t1 = beat * tpb, (beat + n) * tpb
        base = 60 + ((root - 60) % 12)  # root in C4..B4
        if base > 66:
            base -= 12
        pitches = [base + i for i in INTERVALS[quality]]
        for _ in range(inv):  # invert: lowest note up an octave
            pitches = pitches[1:] + [pitches[0] + 12]
        if style == "block":
            for p in pitches:
                notes.append((t0, t1 - 10, 0, p, int(rng.integers(60, 90))))
        elif style == "arpeggio":
            step = tpb // 2
            seq = pitches + pitches[-2:0:-1]
            for k, t in enumerate(range(t0, t1, step)):
                notes.append((t, min(t + step * 2, t1) - 10, 0, seq[k % len(seq)], int(rng.integers(60, 95))))
        else:
            for t in range(t0, t1, tpb):
                for p in pitches:
                    notes.append((t, t + int(tpb * 0.6), 0, p, int(rng.integers(65, 100))))
        bass_note = 36 + (bass_pc - 36) % 12  # C2..B2
        for t in range(t0, t1, 2 * tpb if tempo < 110 else tpb):
            if bass_on:
                notes.append((t, min(t + 2 * tpb, t1) - 20, 1, bass_note, int(rng.integers(70, 100))))
        if melody_program is not None:  # eighth/quarter notes: chord tones and tones of the key's scale
            tonic, minor = next((k[2], k[3]) for k in keys if k[0] <= beat < k[1])
            scale = [(tonic + i) % 12 for i in ((0, 2, 3, 5, 7, 8, 10) if minor else (0, 2, 4, 5, 7, 9, 11))]
            tones = [(root + i) % 12 for i in INTERVALS[quality]]
            for t in range(t0, t1, tpb // 2):
                if rng.random() < 0.6:
                    pc = int(rng.choice(tones if rng.random() < 0.6 else scale))
                    end = min(t + int(tpb * float(rng.choice([0.45, 0.9]))), t1 - 10)
                    notes.append((t, end, 2, 72 + (pc - 72) % 12, int(rng.integers(60, 100))))
    if drums:
        for beat in range(beats):
            t = beat * tpb
            notes.append((t, t + 60, 9, 36 if beat % 2 == 0 else 38, 100))  # kick / snare
            for h in (0, tpb // 2):
                notes.append((t + h, t + h + 30, 9, 42, 70))  # closed hi-hat
    track = mido.MidiTrack()
    mid.tracks.append(track)
    track.append(mido.MetaMessage("set_tempo", tempo=mido.bpm2tempo(tempo), time=0))
    track.append(mido.Message("program_change", channel=0, program=program, time=0))
    track.append(mido.Message("program_change", channel=1, program=bass_program, time=0))
    if melody_program is not None:
        track.append(mido.Message("program_change", channel=2, program=melody_program, time=0))
    msgs = []
    for on, off, ch, p, v in notes:
        msgs.append((on, 1, mido.Message("note_on", channel=ch, note=p, velocity=v)))
        msgs.append((off, 0, mido.Message("note_off", channel=ch, note=p, velocity=0)))
    msgs.sort(key=lambda m: (m[0], m[1]))
    now = 0
    for tick, _, msg in msgs:
        track.append(msg.copy(time=tick - now))
        now = tick
    mid.save(str(path))
    spb = 60.0 / tempo
    chords = [[b * spb, (b + n) * spb, _label(r, q, inv)] for b, n, r, q, _, inv in events]
    key_list = [[a * spb, b * spb, f"{PITCH[t]} {'minor' if m else 'major'}"] for a, b, t, m in keys]
    return chords, key_list, tempo, program


def make_pieces(n: int, seconds: float = 60.0, seed: int = 0, cache: Path | None = None,
                sample_rate: int = 22050, programs=CHORD_PROGRAMS, bass_programs=BASS_PROGRAMS,
                colour_rate: float = 0.0, melody: bool = False) -> list[Piece]:
    """Render (or load from the cache) ``n`` labelled pieces.

    The defaults make the evaluation pieces (seed 0); training uses other seeds, other GM programs and
    ``colour_rate`` > 0 (a share of chords of any quality on any root, aug and sus included) and
    ``melody`` (a lead line with passing tones; sometimes no bass).
    """
    cache = cache or CACHE / "harmony_eval" / "synth"
    cache.mkdir(parents=True, exist_ok=True)
    pieces = []
    for i in range(n):
        name = f"synth_{seed}_{i:03d}"
        wav, meta = cache / f"{name}.wav", cache / f"{name}.json"
        if not (wav.exists() and meta.exists()):
            rng = np.random.default_rng([seed, i])
            mid = cache / f"{name}.mid"
            chords, keys, tempo, program = write_midi(mid, rng, seconds, programs, bass_programs, colour_rate, melody)
            subprocess.run(["fluidsynth", "-ni", "-q", "-g", "0.6", "-r", str(sample_rate), "-F", str(wav),
                            SOUNDFONT, str(mid)], check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            meta.write_text(json.dumps({"chords": chords, "keys": keys, "tempo": tempo, "program": program}))
        m = json.loads(meta.read_text())
        duration = m["chords"][-1][1]
        pieces.append(Piece(name, wav, duration, m["chords"], m["keys"], m["tempo"], m["program"]))
    return pieces
