"""Whole-file analysis through the streaming Analyzer, and the ``analyze`` JSON contract.

Contract (stable; other tools read it), one object per file::

    {"path": str, "duration": float seconds, "sample_rate": int, "model": str,
     "summary": {"valence", "arousal", "quadrant", "quadrant_probs": {Q1..Q4}, "<head>": {name: mean},
                 "key", "key_camelot", "key_open", "key_confidence"},
     "timeline": [Estimate.to_dict(), ...],
     "warning": str}  # only when something was analysed but looks wrong (a truncated file, bad samples)

valence/arousal are in [-1, 1]; the summary's ``key`` is the file's key, judged on the whole file
(:class:`~live_mer.harmony.StreamKey`), while each timeline entry carries the live, causal key of that
moment. The timeline has one entry per model hop, ``t`` in seconds from the
start of the file at the end of the analysed (causal) window; ``duration`` is the audio decoded.
"""

from __future__ import annotations

import contextlib
import os
import re
from pathlib import Path
from typing import Iterator

import numpy as np
import soundfile as sf

from .analyzer import MAX_SAMPLE, MIX_LOSS_DB, Analyzer, mix_loss_db, mix_loss_text
from .estimate import Estimate
from .harmony import camelot, key_name, open_key
from .model import StudentModel

BLOCK_FRAMES = 1 << 16
SALVAGE_FRAMES = 1024  # read size after a damaged block: a failed read yields nothing of itself
# A WAV written to a pipe cannot know its length: it states a placeholder (0, 0x7FFFFFFF, 0xFFFFFFFF bytes)
PLACEHOLDER_BYTES = 0x7FFFFFFF - 4096
# Share of a file's samples (every channel) that, invalid (NaN, Inf, beyond analyzer.MAX_SAMPLE: analysed as
# silence) or clipped (at or beyond full scale), earn its result a warning: real music clips a few in 10 000
# (at most 0.18 % in 180 clips of the 4Q set), a corrupt file or a float file at the wrong scale most of them.
BAD_INPUT_SHARE = 0.01


class AudioFileError(RuntimeError):
    """A file cannot be read or decoded (missing, a folder, unreadable, unsupported, empty or truncated)."""


def is_device(path: str | Path) -> bool:
    """Whether ``path`` is there and is neither a regular file nor a folder: a device or a pipe (/dev/stdout)."""
    return os.path.exists(path) and not os.path.isfile(path) and not os.path.isdir(path)


def _check_readable(path: Path) -> None:
    """Raise :class:`AudioFileError` saying why ``path`` cannot be read as a file: libsndfile says "System
    error." of a file it may not read, and "no such file" of a folder was no help either."""
    try:
        if path.is_dir():
            raise AudioFileError(f"{path}: is a folder, not an audio file (`live-mer analyze` takes folders)")
        if not path.is_file():
            if path.is_symlink() and not path.exists():
                raise AudioFileError(f"{path}: a link to {os.readlink(path)}, which does not exist")
            raise AudioFileError(f"{path}: " + ("not a regular file (a pipe or a device)" if is_device(path)
                                                else "no such file"))
        with open(path, "rb"):
            pass
    except OSError as exc:  # (is_dir too, inside a folder we may not enter)
        raise AudioFileError(f"{path}: cannot read it ({exc.strerror})") from None


def _libsndfile_name(path: Path) -> str | bytes:
    """The name to open ``path`` by: on POSIX its bytes, as the folder holds them. soundfile encodes a str
    strictly, so a name that is not valid UTF-8 (which Python holds with surrogates) raised
    UnicodeEncodeError; Windows names are always valid text, and soundfile opens a str there as UTF-16."""
    return str(path) if os.name == "nt" else os.fsencode(path)


def open_audio(path: str | Path) -> sf.SoundFile:
    """Open ``path`` with soundfile, turning its errors into :class:`AudioFileError`."""
    path = Path(path)
    _check_readable(path)
    try:
        f = sf.SoundFile(_libsndfile_name(path))
    except (sf.LibsndfileError, RuntimeError, TypeError) as exc:
        reason = str(exc)
        if "not a regular file" in reason or "not recognised" in reason:
            # libsndfile says "File does not exist or is not a regular file (possibly a pipe?)" of an existing
            # file it cannot make sense of (random bytes named .mp3): say what it means
            reason = "not a wav, flac, ogg/opus, mp3, aiff or other format it reads, or a damaged file"
        raise AudioFileError(f"{path}: cannot decode audio ({reason})") from None
    if f.frames == 0:
        f.close()
        raise AudioFileError(f"{path}: contains no audio frames")
    return f


class FileBlocks:
    """The float32 (frames x channels) blocks of an open file, for one pass.

    A file that stops decoding part-way (cut off, damaged) ends there: ``damage`` then says where and why,
    and what came before is analysed, or played, as far as it goes; one that decodes nothing at all is an
    :class:`AudioFileError`. ``frames`` counts the frames decoded.
    """

    def __init__(self, f: sf.SoundFile, block_frames: int = BLOCK_FRAMES):
        self.file, self.block_frames = f, block_frames
        self.frames = 0
        self.damage = ""

    def __iter__(self) -> Iterator[np.ndarray]:
        f, step = self.file, self.block_frames
        salvage = None  # the file opened again, read on in small steps from where a large read failed
        try:
            while True:
                try:
                    block = (salvage or f).read(step, dtype="float32", always_2d=True)
                except (sf.LibsndfileError, RuntimeError) as exc:
                    if salvage is None and step > SALVAGE_FRAMES:
                        # libsndfile drops all of a read that fails part-way, and its handle cannot seek after
                        # that: open the file again and read up to the damage a little at a time
                        with contextlib.suppress(sf.LibsndfileError, RuntimeError):
                            salvage = sf.SoundFile(f.name)
                            salvage.seek(self.frames)
                            step = SALVAGE_FRAMES
                            continue
                    failure = f"decoding failed after {self.frames / f.samplerate:.2f} s ({exc})"
                    if not self.frames:  # (opened by its name's bytes)
                        raise AudioFileError(f"{os.fsdecode(f.name)}: {failure}") from None
                    self.damage = failure
                    return
                if block.shape[0] == 0:
                    return
                self.frames += block.shape[0]
                yield block
        finally:
            if salvage is not None:
                salvage.close()


def iter_blocks(f: sf.SoundFile, block_frames: int = BLOCK_FRAMES) -> Iterator[np.ndarray]:
    """:class:`FileBlocks` for code that needs the whole file (training, evaluation): a decoding failure
    anywhere is an AudioFileError."""
    blocks = FileBlocks(f, block_frames)
    yield from blocks
    if blocks.damage:
        raise AudioFileError(f"{os.fsdecode(f.name)}: {blocks.damage}")


def stated_seconds(f: sf.SoundFile) -> float:
    """The length ``f``'s header states. libsndfile shortens a WAV's or AIFF's length to the data actually
    there, and says so in its log ("data : 5292000 (should be 999956)"): scaled back up from that, unless
    the size is a streamed file's placeholder (then the file states no length beyond what it holds)."""
    seconds = f.frames / f.samplerate
    found = re.search(r"^(?:data|SSND)\s*:\s*(\d+)\s*\(should be (\d+)\)", f.extra_info, re.MULTILINE)
    if not found:
        return seconds
    stated, there = int(found[1]), int(found[2])
    return seconds * stated / there if 0 < there < stated < PLACEHOLDER_BYTES else seconds


def analyze_stream(analyzer: Analyzer, blocks) -> list[Estimate]:
    """Run ``analyzer`` over an iterable of audio blocks and flush it; returns all estimates."""
    analyzer.reset()
    estimates: list[Estimate] = []
    for block in blocks:
        estimates.extend(analyzer.process(block))
    estimates.extend(analyzer.finish())
    return estimates


def summarize(estimates: list[Estimate], key: tuple[int, float] = (-1, 0.0)) -> dict:
    """Clip-level summary: mean valence/arousal and head values, dominant quadrant, and the file's ``key``
    (index and confidence from :meth:`Analyzer.stream_key`; empty where it has none: the live key tracker
    never established a key, as for speech, noise or drums)."""
    summary: dict = {"valence": 0.0, "arousal": 0.0, "quadrant": ""}
    if estimates:
        summary.update(valence=float(np.mean([e.valence for e in estimates])),
                       arousal=float(np.mean([e.arousal for e in estimates])))
        for name in estimates[0].heads:
            names = list(estimates[0].heads[name])
            means = np.mean([[e.heads[name][n] for n in names] for e in estimates], axis=0)
            values = {n: float(v) for n, v in zip(names, means)}
            if name == "quadrant":
                summary["quadrant"] = names[int(np.argmax(means))]
                summary["quadrant_probs"] = values
            else:
                summary[name] = values
    index, confidence = key
    if index >= 0:
        summary.update(key=key_name(index), key_camelot=camelot(index), key_open=open_key(index),
                       key_confidence=float(confidence))
    else:
        summary.update(key="", key_camelot="", key_open="", key_confidence=0.0)
    return summary


def analyze_file(path: str | Path, model: StudentModel, smoothing_s: float = 1.0) -> dict:
    """Analyse one file causally, as live, and return its JSON-contract dict.

    Raises
    ------
    AudioFileError
        If the file cannot be read or decoded, or is too short for one estimate.
    """
    with open_audio(path) as f:
        analyzer = Analyzer(model, f.samplerate, smoothing_s=smoothing_s)
        blocks = FileBlocks(f)
        estimates = analyze_stream(analyzer, blocks)
        rate = f.samplerate
        stated = stated_seconds(f)
        duration = blocks.frames / rate  # what was decoded: a cut-off MP3's header still states the whole length
        samples = blocks.frames * f.channels  # every channel's, as the analyzer counts the bad ones
    if not estimates:  # not an empty "result" with quadrant "" that a library scan would take as analysed
        raise AudioFileError(f"{path}: too short to analyse ({duration:.2f} s; the first estimate needs "
                             f"{model.card.hop_seconds:.2f} s of audio)")
    result = {"path": str(path), "duration": round(duration, 4), "sample_rate": rate, "model": model.card.name,
              "summary": summarize(estimates, analyzer.stream_key()), "timeline": [e.to_dict() for e in estimates]}
    cut = f"{blocks.damage}: a damaged or truncated file?; analysed as far as it goes" if blocks.damage else \
        _truncation_warning(stated, duration)
    loss = mix_loss_db(analyzer.channel_power, analyzer.mix_power, analyzer.frames_heard)
    mixed = mix_loss_text(loss) if loss >= MIX_LOSS_DB else ""
    warnings = [w for w in (_input_warning(estimates, samples), mixed, cut) if w]
    if warnings:
        result["warning"] = "; ".join(warnings)
    return result


def _truncation_warning(stated: float, duration: float) -> str:
    """Why a file that decoded ``duration`` seconds of the ``stated`` looks cut off, or ""."""
    if stated - duration > max(1.0, 0.05 * stated):  # (an MP3 header without a length estimates one: some slack)
        return (f"decoded {duration:.2f} s of the {stated:.2f} s its header states (a truncated file?); "
                "analysed as far as it goes")
    return ""


def _input_warning(estimates: list[Estimate], samples: int) -> str:
    """Why the input of ``estimates`` looks broken, or "": more than ``BAD_INPUT_SHARE`` of its ``samples``
    (frames x channels) were invalid or clipped. The estimates count them up to the last one (the tail
    after it is not counted, so a share is never overstated)."""
    invalid = sum(e.nonfinite for e in estimates)
    clipped = sum(e.clipped for e in estimates)
    if invalid + clipped <= BAD_INPUT_SHARE * samples:
        return ""
    def share(count: int) -> str:  # a few samples of millions read "0.0%" beside the other part
        return f"{count / samples:.1%}" if count >= 0.0005 * samples else "under 0.1%"

    parts = []
    if invalid:
        parts.append(f"{share(invalid)} of the samples are not audio (NaN, infinite or beyond "
                     f"+-{MAX_SAMPLE:g}) and were analysed as silence")
    if clipped:
        parts.append(f"{share(clipped)} of the samples are clipped (at or beyond full scale)")
    return "; ".join(parts) + " (a damaged file, or float samples on the wrong scale?)"
