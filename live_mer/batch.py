"""Batch analysis of a music library: files and folders, in parallel, resumable, with a summary CSV.

For every audio file: ``<out>/<relative path>.json`` (see :func:`find_audio`) (the analyze JSON contract of
:mod:`live_mer.fileanalysis`) and, with plots, ``<out>/<relative path>.png``; for the whole run:
a summary CSV with one row per track. A file that fails is reported and skipped; the rest completes.
"""

from __future__ import annotations

import csv
import json
import os
import sys
import time
from concurrent.futures import ProcessPoolExecutor, as_completed
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

AUDIO_EXTENSIONS = (".wav", ".flac", ".ogg", ".oga", ".opus", ".mp3", ".aif", ".aiff", ".w64", ".caf")

_model = None


def find_audio(paths: list[str | Path]) -> list[tuple[Path, Path]]:
    """(file, output name) for files given directly and audio files inside folders, each file once.

    Output names are paths relative to the folder all the inputs share (a single folder: that folder;
    a single file: its folder), so ``crateA/track01.wav`` and ``crateB/track01.wav`` never write the
    same ``<out>/<name>.json``.
    """
    files: list[Path] = []
    roots: list[Path] = []
    for p in map(Path, paths):
        if p.is_dir():
            roots.append(p)
            files.extend(f for f in sorted(p.rglob("*")) if f.is_file() and f.suffix.lower() in AUDIO_EXTENSIONS)
        else:
            roots.append(p.parent)
            files.append(p)
    try:
        common = Path(os.path.commonpath([os.path.abspath(r) for r in roots])) if roots else None
    except ValueError:  # roots on different drives (Windows)
        common = None
    found: list[tuple[Path, Path]] = []
    seen: set[str] = set()
    for f in files:
        full = os.path.abspath(f)
        if full in seen:  # a file listed twice, or also inside a listed folder
            continue
        seen.add(full)
        if common is not None:
            name = Path(os.path.relpath(full, common))
        else:  # the whole path, its drive letter as the first folder: unique
            name = Path(Path(full).drive.rstrip(":")) / Path(full).relative_to(Path(full).anchor)
        found.append((f, name))
    return found


def _finished(path: Path) -> dict | None:
    """A result an earlier run left in ``path``, or None when there is none or it is not one of ours
    (missing, unreadable, cut short, someone else's JSON): that track is analysed again."""
    try:
        result = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):  # ValueError: invalid JSON or not UTF-8
        return None
    if isinstance(result, dict) and isinstance(result.get("summary"), dict) and "path" in result:
        return result
    return None


TOP_TAGS = 3


def summary_row(result: dict) -> dict:
    """One CSV row for a track: valence/arousal statistics, dominant quadrant and category, top tags, key."""
    tl = result.get("timeline", [])
    row = {"path": result["path"], "duration": result.get("duration", "")}
    if "error" in result:
        row["error"] = result["error"]
        return row
    s = result["summary"]
    for dim in ("valence", "arousal"):
        values = np.array([e[dim] for e in tl]) if tl else np.zeros(1)
        row[f"{dim}_mean"] = round(float(values.mean()), 4)
        for q in (10, 50, 90):
            row[f"{dim}_p{q}"] = round(float(np.percentile(values, q)), 4)
    row["quadrant"] = s.get("quadrant", "")
    for q, p in s.get("quadrant_probs", {}).items():
        row[f"p_{q}"] = round(p, 4)
    gems = s.get("gems", {})
    if gems:
        row["top_category"] = max(gems, key=gems.get)
        for name, value in gems.items():
            row[name] = round(value, 4)
    tags = s.get("tags", {})
    if tags:  # the three most probable mood tags (the per-tag values stay in the JSON)
        row["top_tags"] = "; ".join(sorted(tags, key=tags.get, reverse=True)[:TOP_TAGS])
    row.update(key=s.get("key", ""), camelot=s.get("key_camelot", ""), open_key=s.get("key_open", ""),
               key_confidence=round(s.get("key_confidence", 0.0), 4), error="", warning=result.get("warning", ""))
    return row


def _init_worker(model_arg: str, provider: str) -> None:
    global _model
    from .model import load_model

    _model = load_model(model_arg, provider=provider)


def _analyze_one(job: tuple[str, str | None, float, bool]) -> dict:
    from .fileanalysis import AudioFileError, analyze_file

    path, out_base, smoothing, plot = job
    try:
        result = analyze_file(path, _model, smoothing_s=smoothing)
    except (AudioFileError, ValueError) as exc:
        return {"path": path, "error": str(exc)}
    if out_base is not None:
        base = Path(out_base)
        base.parent.mkdir(parents=True, exist_ok=True)
        tmp = base.with_name(base.name + ".json.tmp")
        tmp.write_text(json.dumps(result, indent=1) + "\n")
        tmp.replace(base.with_name(base.name + ".json"))  # complete files only, so --resume can trust them
        if plot:
            from .plot import plot_result

            plot_result(result, base.with_name(base.name + ".png"))
    return result


@dataclass
class BatchReport:
    results: list[dict] = field(default_factory=list)  # in input order
    skipped: int = 0  # already done (--resume)
    failed: int = 0
    seconds: float = 0.0


class Progress:
    """A one-line progress bar on stderr (no dependency), quiet when stderr is not a terminal."""

    def __init__(self, total: int, enabled: bool | None = None):
        self.total, self.done, self.t0 = total, 0, time.monotonic()
        self.enabled = sys.stderr.isatty() if enabled is None else enabled

    def step(self, name: str) -> None:
        self.done += 1
        if not self.enabled:
            return
        rate = self.done / max(time.monotonic() - self.t0, 1e-6)
        eta = (self.total - self.done) / rate if rate else 0
        width = 30
        fill = int(width * self.done / max(self.total, 1))
        print(f"\r[{'#' * fill}{'.' * (width - fill)}] {self.done}/{self.total}  {rate:.1f} files/s  "
              f"eta {int(eta) // 60}:{int(eta) % 60:02d}  {name[-40:]:<40}", end="", file=sys.stderr, flush=True)
        if self.done == self.total:
            print(file=sys.stderr)


def run_batch(paths: list[str | Path], model_arg: str, out_dir: str | Path | None = None, jobs: int = 0,
              smoothing_s: float = 1.0, plot: bool = False, resume: bool = False, provider: str = "cpu",
              progress: bool | None = None) -> BatchReport:
    """Analyse ``paths`` (files and folders) with ``jobs`` worker processes (0 = one per core)."""
    t0 = time.monotonic()
    files = find_audio(paths)
    out = Path(out_dir) if out_dir is not None else None
    report = BatchReport(results=[{}] * len(files))
    todo = []
    for i, (f, rel) in enumerate(files):
        base = out / rel if out is not None else None
        done = base.with_name(base.name + ".json") if base is not None else None
        if resume and done is not None and (earlier := _finished(done)) is not None:
            report.results[i] = earlier
            report.skipped += 1
            continue
        todo.append((i, (str(f), str(base) if base is not None else None, smoothing_s, plot)))
    bar = Progress(len(todo), progress)
    workers = max(1, min(jobs or os.cpu_count() or 1, len(todo) or 1))
    with ProcessPoolExecutor(workers, initializer=_init_worker, initargs=(model_arg, provider)) as pool:
        futures = {pool.submit(_analyze_one, job): i for i, job in todo}
        for fut in as_completed(futures):
            i = futures[fut]
            try:
                result = fut.result()
            except Exception as exc:  # a crash in one worker's file must not sink the batch
                result = {"path": str(files[i][0]), "error": f"analysis crashed: {exc!r}"}
            report.results[i] = result
            if "error" in result:
                report.failed += 1
                where = "" if result["path"] in result["error"] else f"{result['path']}: "
                print(f"\nerror: {where}{result['error']}", file=sys.stderr)
            elif "warning" in result:
                print(f"\nwarning: {result['path']}: {result['warning']}", file=sys.stderr)
            bar.step(Path(result["path"]).name)
    report.seconds = time.monotonic() - t0
    return report


def write_summary_csv(results: list[dict], path: str | Path) -> None:
    rows = [summary_row(r) for r in results]
    names: list[str] = []
    for row in rows:
        names.extend(k for k in row if k not in names)
    with open(path, "w", newline="") as fh:
        w = csv.DictWriter(fh, fieldnames=names)
        w.writeheader()
        w.writerows(rows)
