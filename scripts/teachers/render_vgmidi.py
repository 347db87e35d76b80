"""Render the labelled VGMIDI MIDI files to audio in several instrument versions, and tabulate the labels.

    python scripts/teachers/render_vgmidi.py            # all pieces, resumable
    python scripts/teachers/render_vgmidi.py --limit 3  # a quick look
    python scripts/teachers/render_vgmidi.py --table    # only the per-measure label table

Every piece is rendered as ``original`` (the file as is: piano, bar a few files) and in three program-changed
versions picked deterministically from its name (:func:`vgmidi.variants_for`), so that a model cannot learn
"piano = VGMIDI's emotions". Output: ``.cache/vgmidi_audio/<variant>/<piece_slug>.flac`` (22050 Hz mono,
16-bit FLAC), ``manifest.json`` (per render: program, seconds, gain, peak) and ``measures.csv`` (per
annotated measure: times on the annotation and four-quarter-block timelines, annotators' mean/std/count).

Rendering: ``fluidsynth -ni -F out.wav -r 22050 -g 0.6 -O float FluidR3_GM.sf2 in.mid`` (float output, so
nothing clips inside fluidsynth), then a stereo-to-mono mean. The level is left as rendered (one fixed
gain: the pieces' velocities and dynamics are part of what annotators heard); a render whose peak would
clip is scaled down as a whole, and the manifest records it. Every render ends with the pedal up and all
notes off at the last MIDI tick (some files leave notes hanging; see :func:`with_program`); fluidsynth then
appends ~3 s of release tail, capped at ``MAX_TAIL``. The start is never trimmed, so audio time 0 is MIDI
time 0.

Needs ``mido`` (the ``train`` extra) and the ``fluidsynth`` and ``fluid-soundfont-gm`` apt packages.
One process: rendering is ~70x real time on one core.
"""

from __future__ import annotations

import argparse
import csv
import json
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # scripts/, for paths (standard library only)

from paths import require_data  # noqa: E402
from vgmidi import (AUDIO, DRUM_CHANNEL, PROGRAMS, SAMPLE_RATE, SOUNDFONT, VGMIDI, audio_path,  # noqa: E402
                    block_boundaries, label_timeline, load_annotations, piece_slug, variants_for)

GAIN = 0.6
PEAK_LIMIT = 0.99
MAX_TAIL = 5.0  # seconds kept after the last MIDI event (fluidsynth's release + reverb tail is ~3 s)
RENDER_VERSION = 2  # bump to re-render everything rendered by an older version of this script


def with_program(src: Path, dst: Path, program: int | None) -> None:
    """Write a copy of ``src`` ready to render, every melodic channel on GM ``program`` (None: as is).

    Program changes and bank selects (CC 0/32) of melodic channels are dropped, and each track starts with
    a program change for every melodic channel it plays. The drum channel is left alone. Whatever the
    program, the file's last tick releases everything (sustain pedal up, all notes off on every channel
    used): 44 of the 204 files end with the pedal down or notes never released, and fluidsynth's fast
    render goes on while any voice sounds, i.e. forever with a sustaining instrument such as the organ.
    """
    import mido

    mid = mido.MidiFile(src)
    used: set[int] = set()
    end_tick = 0
    for track in mid.tracks:
        kept, carry, channels, tick = [], 0, set(), 0
        for msg in track:
            tick += msg.time
            if hasattr(msg, "channel"):
                used.add(msg.channel)
            melodic = hasattr(msg, "channel") and msg.channel != DRUM_CHANNEL
            if program is not None and melodic and (
                    msg.type == "program_change" or (msg.type == "control_change" and msg.control in (0, 32))):
                carry += msg.time  # keep the timing of what follows
                continue
            if melodic and msg.type == "note_on":
                channels.add(msg.channel)
            kept.append(msg.copy(time=msg.time + carry))
            carry = 0
        end_tick = max(end_tick, tick)
        if program is not None:
            kept = [mido.Message("program_change", channel=c, program=program, time=0)
                    for c in sorted(channels)] + kept
        track[:] = kept
    # Releases at the end of the last track that reaches end_tick, before its end_of_track.
    for track in mid.tracks:
        if sum(m.time for m in track) == end_tick:
            eot = track.pop() if track and track[-1].type == "end_of_track" else None
            gap = end_tick - sum(m.time for m in track)
            for i, c in enumerate(sorted(used)):
                track.append(mido.Message("control_change", channel=c, control=64, value=0, time=gap if i == 0 else 0))
                track.append(mido.Message("control_change", channel=c, control=123, value=0, time=0))
            if eot is not None:
                track.append(eot.copy(time=0 if used else gap))
            break
    mid.save(dst)


def render(midi: Path, out: Path, program: int | None, tmp: Path) -> dict:
    """Render ``midi`` (re-orchestrated to ``program`` unless None) to a mono FLAC at ``out``."""
    import mido
    import soundfile as sf

    src = tmp / "in.mid"
    with_program(midi, src, program)
    length = mido.MidiFile(src).length
    wav = tmp / "out.wav"
    cmd = ["fluidsynth", "-ni", "-q", "-F", str(wav), "-r", str(SAMPLE_RATE), "-g", str(GAIN), "-O", "float",
           str(SOUNDFONT), str(src)]
    for attempt in range(3):  # under heavy machine load fluidsynth has failed transiently (no message)
        try:
            res = subprocess.run(cmd, capture_output=True, text=True, check=False, timeout=120 + 2 * length)
        except subprocess.TimeoutExpired:
            raise RuntimeError(f"fluidsynth did not finish {midi.name} in {120 + 2 * length:.0f} s") from None
        if res.returncode == 0 and wav.exists():
            break
        time.sleep(2.0 * (attempt + 1))
    else:
        raise RuntimeError(f"fluidsynth failed on {midi.name} (exit code {res.returncode}, wav written: "
                           f"{wav.exists()}): {(res.stderr + res.stdout).strip()[-500:]}")
    x, sr = sf.read(str(wav), dtype="float32", always_2d=True)
    wav.unlink()
    assert sr == SAMPLE_RATE, sr
    y = x.mean(axis=1)
    cut = int((length + MAX_TAIL) * SAMPLE_RATE)
    truncated = len(y) > cut
    if truncated:  # belt and braces: a release tail longer than MAX_TAIL is faded out
        y = y[:cut]
        fade = int(0.05 * SAMPLE_RATE)
        y[-fade:] *= np.linspace(1, 0, fade, dtype=np.float32)
    peak = float(np.abs(y).max()) if y.size else 0.0
    scale = PEAK_LIMIT / peak if peak > PEAK_LIMIT else 1.0
    y *= scale
    out.parent.mkdir(parents=True, exist_ok=True)
    part = out.with_name(out.stem + ".part.flac")
    sf.write(str(part), y, SAMPLE_RATE, subtype="PCM_16", format="FLAC")
    part.replace(out)
    return {"seconds": len(y) / SAMPLE_RATE, "midi_seconds": length, "truncated": truncated,
            "peak": peak * scale, "scale": scale,
            "rms_dbfs": float(10 * np.log10(np.mean(y.astype(np.float64) ** 2) + 1e-12))}


def fluidsynth_version() -> str:
    """The first line of ``fluidsynth --version`` (for the manifest); exits naming the failure if it has none."""
    res = subprocess.run(["fluidsynth", "--version"], capture_output=True, text=True, check=False)
    lines = res.stdout.strip().splitlines()
    if res.returncode != 0 or not lines:
        sys.exit(f"render_vgmidi: `fluidsynth --version` failed (exit code {res.returncode}: "
                 f"{(res.stderr + res.stdout).strip()[-300:] or 'no output'}); rendering needs a fluidsynth that runs")
    return lines[0]


def write_table(path: Path) -> int:
    """Per-measure label table of every annotated piece (CSV); returns the number of rows."""
    import mido

    anns, report = load_annotations()
    rows = 0
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(["piece", "annotation", "matched_by", "measure", "start_s", "end_s", "block_start_s",
                    "block_end_s", "valence_mean", "arousal_mean", "valence_std", "arousal_std", "valence_n",
                    "arousal_n"])
        for f in sorted(anns):
            a = anns[f]
            mid = mido.MidiFile(VGMIDI / "midi" / f)
            grid = label_timeline(a, mid, "annotation")
            blocks = block_boundaries(mid, a.n_measures)
            for k, (g, b, t) in enumerate(zip(grid, blocks, a.table())):
                w.writerow([piece_slug(Path(f).stem), a.source, a.matched_by, k, f"{g[0]:.4f}", f"{g[1]:.4f}",
                            f"{b[0]:.4f}", f"{b[1]:.4f}", *(f"{v:.4f}" for v in t[:4]), int(t[4]), int(t[5])])
                rows += 1
    with open(path.with_name("annotation_report.json"), "w") as fh:
        json.dump(report | {"notes": {a.source: a.notes for a in anns.values() if a.notes}}, fh, indent=1)
    return rows


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--out", type=Path, default=AUDIO)
    ap.add_argument("--limit", type=int, default=0, help="only the first N pieces (0: all)")
    ap.add_argument("--force", action="store_true", help="re-render existing files")
    ap.add_argument("--table", action="store_true", help="only write measures.csv")
    args = ap.parse_args(argv)

    require_data("vgmidi/midi", "vgmidi/annotations")
    if shutil.which("fluidsynth") is None or not SOUNDFONT.exists():
        sys.exit("render_vgmidi: needs fluidsynth and the FluidR3 GM soundfont "
                 "(apt-get install fluidsynth fluid-soundfont-gm)")
    n_rows = write_table(args.out / "measures.csv")
    if not n_rows:
        sys.exit(f"render_vgmidi: no annotated measures: no annotation in {VGMIDI / 'annotations'} matches a MIDI "
                 f"file of {VGMIDI / 'midi'}")
    print(f"measures.csv: {n_rows} measures")
    if args.table:
        return

    from tqdm import tqdm

    manifest_path = args.out / "manifest.json"
    manifest = {"renders": {}}
    if manifest_path.exists():
        with open(manifest_path) as fh:
            manifest = json.load(fh)
    manifest.update({"soundfont": str(SOUNDFONT), "sample_rate": SAMPLE_RATE, "gain": GAIN,
                     "fluidsynth": fluidsynth_version()})
    midis = sorted((VGMIDI / "midi").glob("*.mid"))
    if args.limit:
        midis = midis[: args.limit]
    jobs = [(m, v) for m in midis for v in variants_for(m.stem)]
    t0, done, audio_s, failed = time.perf_counter(), 0, 0.0, {}
    with tempfile.TemporaryDirectory(prefix="vgmidi_render_") as tmp:
        for i, (midi, variant) in enumerate(tqdm(jobs, desc="render", unit="file")):
            key = f"{piece_slug(midi.stem)}@{variant}"
            out = audio_path(midi.stem, variant, args.out)
            old = manifest["renders"].get(key, {})
            if out.exists() and old.get("version") == RENDER_VERSION and not args.force:
                continue
            try:
                info = render(midi, out, PROGRAMS.get(variant), Path(tmp))
            except Exception as exc:  # noqa: BLE001 - log, go on with the other files
                failed[key] = str(exc)
                print(f"FAILED {key}: {exc}", file=sys.stderr, flush=True)
                continue
            manifest["renders"][key] = {"midi": midi.name, "variant": variant, "program": PROGRAMS.get(variant),
                                        "path": str(out.relative_to(args.out)), "version": RENDER_VERSION,
                                        **info}
            done += 1
            audio_s += info["seconds"]
            if done % 20 == 0 or i == len(jobs) - 1:
                _save(manifest, manifest_path)
    manifest["failed"] = failed
    _save(manifest, manifest_path)
    wall = time.perf_counter() - t0
    total = sum(r["seconds"] for r in manifest["renders"].values())
    print(f"rendered {done} files ({audio_s / 3600:.2f} h of audio) in {wall:.0f} s "
          f"({audio_s / max(wall, 1e-9):.0f}x real time); manifest: {len(manifest['renders'])} renders, "
          f"{total / 3600:.2f} h")


def _save(manifest: dict, path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    with open(tmp, "w") as fh:
        json.dump(manifest, fh, indent=1, sort_keys=True)
    tmp.replace(path)


if __name__ == "__main__":
    main()
