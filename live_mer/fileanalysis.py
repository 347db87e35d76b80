"""Whole-file analysis through the streaming Analyzer, and the ``analyze`` JSON contract.

Contract (stable; other tools read it), one object per file::

    {"path": str, "duration": float seconds, "sample_rate": int, "model": str,
     "summary": {"valence", "arousal", "quadrant", "quadrant_probs": {Q1..Q4}, "<head>": {name: mean},
                 "key", "key_camelot", "key_open", "key_confidence"},
     "timeline": [Estimate.to_dict(), ...],
     "warning": str}  # only when something was analysed but looks wrong (a truncated file)

valence/arousal are in [-1, 1]; the summary's ``key`` is the file's key, judged on the whole file
(:class:`~live_mer.harmony.StreamKey`), while each timeline entry carries the live, causal key of that
moment. The timeline has one entry per model hop, ``t`` in seconds from the
start of the file at the end of the analysed (causal) window; ``duration`` is the audio decoded.
"""

from __future__ import annotations

from pathlib import Path
from typing import Iterator

import numpy as np
import soundfile as sf

from .analyzer import Analyzer
from .estimate import Estimate
from .harmony import camelot, key_name, open_key
from .model import StudentModel

BLOCK_FRAMES = 1 << 16


class AudioFileError(RuntimeError):
    """A file cannot be decoded (missing, unsupported, empty or truncated)."""


def open_audio(path: str | Path) -> sf.SoundFile:
    """Open ``path`` with soundfile, turning its errors into :class:`AudioFileError`."""
    path = Path(path)
    if not path.is_file():
        raise AudioFileError(f"{path}: no such file")
    try:
        f = sf.SoundFile(str(path))
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


def iter_blocks(f: sf.SoundFile, block_frames: int = BLOCK_FRAMES) -> Iterator[np.ndarray]:
    """Yield float32 (frames x channels) blocks; a decoding failure mid-file is an AudioFileError."""
    done = 0
    while True:
        try:
            block = f.read(block_frames, dtype="float32", always_2d=True)
        except (sf.LibsndfileError, RuntimeError) as exc:
            raise AudioFileError(f"{f.name}: decoding failed after {done / f.samplerate:.2f} s ({exc})") from None
        if block.shape[0] == 0:
            return
        done += block.shape[0]
        yield block


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
    (index and confidence from :meth:`Analyzer.stream_key`; left empty if the live key tracker never
    established a key, as for speech, noise or drums)."""
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
    if index >= 0 and any(e.key for e in estimates):
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
        estimates = analyze_stream(analyzer, iter_blocks(f))
        rate = f.samplerate
        stated = f.frames / rate
        duration = f.tell() / rate  # what was decoded: a cut-off MP3's header still states the whole length
    if not estimates:  # not an empty "result" with quadrant "" that a library scan would take as analysed
        raise AudioFileError(f"{path}: too short to analyse ({duration:.2f} s; the first estimate needs "
                             f"{model.card.hop_seconds:.2f} s of audio)")
    result = {"path": str(path), "duration": round(duration, 4), "sample_rate": rate, "model": model.card.name,
              "summary": summarize(estimates, analyzer.stream_key()), "timeline": [e.to_dict() for e in estimates]}
    if stated - duration > max(1.0, 0.05 * stated):  # (an MP3 header without a length estimates one: some slack)
        result["warning"] = (f"decoded {duration:.2f} s of the {stated:.2f} s its header states (a truncated file?); "
                             "analysed as far as it goes")
    return result
