"""Batch analysis of a music library: files and folders, in parallel, resumable, with a summary CSV.

For every audio file: ``<out>/<relative path>.json`` (see :func:`scan`) (the analyze JSON contract of
:mod:`live_mer.fileanalysis`) and, with plots, ``<out>/<relative path>.png``; for the whole run:
a summary CSV with one row per track. A file that fails is reported and skipped; the rest completes.
"""

from __future__ import annotations

import contextlib
import csv
import io
import json
import os
import signal
import sys
import threading
import time
from concurrent.futures import ProcessPoolExecutor, as_completed
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

STOP_SIGNALS = {signal.SIGINT, signal.SIGTERM}  # what stops a batch (see _ctrl_c and run_batch)
PARENT_POLL_S = 1.0  # how often a worker checks that the process that started it is still there
AUDIO_EXTENSIONS = (".wav", ".flac", ".ogg", ".oga", ".opus", ".mp3", ".aif", ".aiff", ".w64", ".caf")

_model = None
_analysing = False  # in a worker: a track is being analysed (see _ctrl_c)
_stopping = False  # in a worker: Ctrl-C came, the tracks still handed to it are not analysed


def _file_or_locked(path: Path) -> bool:
    """A file (or a link to one), or one we may not even look at (in a folder we may list but not enter):
    its analysis then says it cannot be read, rather than the scan crashing or passing over it."""
    try:
        return path.is_file()
    except PermissionError:
        return True


def _audio_in(folder: Path, unreadable: list[tuple[Path, str]]) -> list[Path]:
    """The audio files in ``folder`` and its subfolders (not through links to folders, as rglob did), sorted;
    each folder that cannot be listed goes to ``unreadable`` with the reason (rglob passed over them
    without a word, and a library with a locked folder looked completely analysed)."""
    def skipped(exc: OSError) -> None:
        unreadable.append((Path(exc.filename), exc.strerror))

    files = []
    for top, _, names in os.walk(folder, onerror=skipped):
        files.extend(f for f in map(Path(top).joinpath, names)
                     if f.suffix.lower() in AUDIO_EXTENSIONS and _file_or_locked(f))
    return sorted(files)


def scan(paths: list[str | Path]) -> tuple[list[tuple[Path, Path]], list[tuple[Path, str]]]:
    """(file, output name) for files given directly and audio files inside folders, each file once; and
    (folder, reason) for every folder that could not be read.

    Output names are paths relative to the folder all the inputs share (a single folder: that folder;
    a single file: its folder), so ``crateA/track01.wav`` and ``crateB/track01.wav`` never write the
    same ``<out>/<name>.json``.
    """
    files: list[Path] = []
    roots: list[Path] = []
    unreadable: list[tuple[Path, str]] = []
    for p in map(Path, paths):
        if os.path.isdir(p):  # (False, not an exception, for a path in a folder we may not enter: a file's error)
            roots.append(p)
            files.extend(_audio_in(p, unreadable))
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
    return found, unreadable


def _finished(path: Path) -> dict | None:
    """A result an earlier run left in ``path``, or None when there is none or it is not one of ours
    (missing, unreadable, cut short, someone else's JSON, one that lacks a value the rest reads, such as
    ``{"path": "a.wav", "summary": {}}``): that track is analysed again."""
    try:
        result = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):  # ValueError: invalid JSON or not UTF-8
        return None
    try:  # complete: nothing the summary CSV or the terminal line reads is missing or of the wrong type
        summary_row(result)
        track_line(result)
    except (LookupError, TypeError, ValueError, AttributeError):
        return None
    return result


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


def track_line(result: dict) -> str:
    """The terminal's line for an analysed track."""
    s = result["summary"]
    return (f"{result['path']}: {result['duration']:.1f} s  valence {s['valence']:+.2f}  arousal {s['arousal']:+.2f}  "
            f"{s.get('quadrant', '')}  key {s['key'] or '?'} {s['key_camelot']}")


def _ctrl_c(signum, frame) -> None:
    """A worker's Ctrl-C (from the terminal, or passed on by :func:`run_batch`): the track being analysed is
    ended, never a result on its way back (cut off, it would hang the pool), and no other track is begun."""
    global _analysing, _stopping
    _stopping = True
    if _analysing:
        _analysing = False  # once: a second Ctrl-C may come while the first one's exception goes back
        raise KeyboardInterrupt


def _exit_with_parent(parent: int) -> None:
    """End this worker once the process that started it is gone without a word (SIGKILL, the OOM killer): the
    pool could not tell it to stop, and it hung for ever on a result no one would read (it is then adopted by
    another process, so its parent id changes)."""
    while os.getppid() == parent:
        time.sleep(PARENT_POLL_S)
    os._exit(1)


@contextlib.contextmanager
def _stop_signals_held():
    """Hold Ctrl-C and SIGTERM while the workers are forked, then let them come (see :func:`run_batch`).

    A Python handler records them meanwhile: a process's signal goes to any of its threads that does not block it
    (OpenBLAS's, onnxruntime's), so blocking it in the main thread alone did not keep Python from raising it there,
    inside a fork's hooks too. They are blocked as well where that exists (not on Windows): a forked worker is
    born with them blocked, and takes them once its own handlers are set (:func:`_init_worker`)."""
    if threading.current_thread() is not threading.main_thread():  # only the main thread gets Python's signals
        yield
        return
    caught: list[int] = []
    previous = {sig: signal.signal(sig, lambda signum, frame: caught.append(signum)) for sig in STOP_SIGNALS}
    mask = hasattr(signal, "pthread_sigmask")
    if mask:
        signal.pthread_sigmask(signal.SIG_BLOCK, STOP_SIGNALS)
    try:
        yield
    finally:
        if mask:
            signal.pthread_sigmask(signal.SIG_UNBLOCK, STOP_SIGNALS)  # one pending comes to the recorder now
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    if caught:
        signal.raise_signal(caught[0])  # to the handler it was meant for (KeyboardInterrupt in analyze)


def _init_worker(model_arg: str, provider: str) -> None:
    global _model
    from .model import load_model

    for sig in STOP_SIGNALS:  # SIGTERM: a service stopped, sent to every process of its group
        signal.signal(sig, _ctrl_c)
    if hasattr(signal, "pthread_sigmask"):  # (not on Windows)
        signal.pthread_sigmask(signal.SIG_UNBLOCK, STOP_SIGNALS)  # held while it was forked: now it may stop
    threading.Thread(target=_exit_with_parent, args=(os.getppid(),), name="live_mer-parent-watch", daemon=True).start()
    _model = load_model(model_arg, provider=provider)


RESULT_ENDINGS = (".json", ".json.tmp", ".png")


def result_files(out: Path, rel: Path) -> tuple[Path, Path, Path]:
    """What a track writes in ``out`` under its output name ``rel`` (from :func:`scan`): its JSON, that
    JSON while it is being written, and its plot (with ``--plot``)."""
    base = out / rel
    return tuple(base.with_name(base.name + ext) for ext in RESULT_ENDINGS)


def _analyze_one(job: tuple[str, tuple[Path, Path, Path] | None, float, bool]) -> dict:
    """A worker's task: one track, unless Ctrl-C came (see :func:`_ctrl_c`)."""
    global _analysing
    _analysing = True
    try:
        if _stopping:
            raise KeyboardInterrupt
        return _analyze_track(job)
    finally:
        _analysing = False


def _analyze_track(job: tuple[str, tuple[Path, Path, Path] | None, float, bool]) -> dict:
    from .fileanalysis import AudioFileError, analyze_file

    path, outputs, smoothing, plot = job
    try:
        result = analyze_file(path, _model, smoothing_s=smoothing)
    except (AudioFileError, ValueError) as exc:
        return {"path": path, "error": str(exc)}
    if outputs is not None:
        done, _, png = outputs
        try:
            done.parent.mkdir(parents=True, exist_ok=True)
            if plot:  # before the JSON counts as done: --resume skips done tracks, so it would never plot this one
                from .plot import plot_png

                try:
                    image = plot_png(result)
                except Exception as exc:
                    return {"path": path, "error": f"the plot failed ({type(exc).__name__}: {exc})"}
                write_whole(png, image)  # a PNG cut short by Ctrl-C or a full disk would stay behind
            write_whole(done, json.dumps(result, indent=1) + "\n")  # complete files only: --resume trusts them
        except OSError as exc:  # analysed, but not written (a name too long, a full disk): not a crash
            return {"path": path, "error": f"its result cannot be written to {done} ({exc.strerror or exc})"}
    return result


@dataclass
class BatchReport:
    results: list[dict] = field(default_factory=list)  # in input order, then the folders that could not be read
    skipped: int = 0  # already done (--resume)
    failed: int = 0
    unfinished: int = 0  # not analysed: Ctrl-C stopped the batch (their places are not in results)
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
    files, unreadable = scan(paths)
    out = Path(out_dir) if out_dir is not None else None
    report = BatchReport(results=[{}] * len(files))
    for folder, reason in unreadable:  # said before the analysis, which may take hours
        report.results.append({"path": str(folder), "error": f"cannot read this folder ({reason}); the audio "
                               "files in it were not analysed"})
        _tell(report, report.results[-1])
    todo = []
    for i, (f, rel) in enumerate(files):
        outputs = result_files(out, rel) if out is not None else None
        if resume and outputs is not None and (earlier := _finished(outputs[0])) is not None:
            report.results[i] = earlier
            report.skipped += 1
            continue
        todo.append((i, (str(f), outputs, smoothing_s, plot)))
    bar = Progress(len(todo), progress)
    workers = max(1, min(jobs or os.cpu_count() or 1, len(todo) or 1))
    with ProcessPoolExecutor(workers, initializer=_init_worker, initargs=(model_arg, provider)) as pool:
        futures: dict = {}  # (Ctrl-C may come while they are being submitted)
        try:
            # The workers are forked in the first submit: a Ctrl-C landing inside a fork's hooks was swallowed
            # there (the batch then ran to its end, 1 try in 16). Held until the tracks are handed over, it
            # comes after (unheld, Python checks for it at once), and a worker takes its own once set up.
            with _stop_signals_held():
                for i, job in todo:
                    futures[pool.submit(_analyze_one, job)] = i
            for fut in as_completed(futures):
                i = futures[fut]
                try:
                    result = fut.result()
                except Exception as exc:  # a crash in one worker's file must not sink the batch
                    result = {"path": str(files[i][0]), "error": f"analysis crashed: {exc!r}"}
                report.results[i] = result
                _tell(report, result)
                bar.step(Path(result["path"]).name)
        except KeyboardInterrupt:  # stop now: the tracks not started are cancelled, those being analysed ended
            pids = list(pool._processes)  # (the pool has no public way to reach its workers)
            pool.shutdown(wait=False, cancel_futures=True)
            for pid in pids:  # passed on to each worker (from a terminal, theirs came too): see _ctrl_c
                with contextlib.suppress(OSError):
                    os.kill(pid, signal.SIGINT)
            for fut, i in futures.items():  # finished before the interrupt was seen: its files are kept, so is it
                if not report.results[i] and fut.done() and not fut.cancelled() and fut.exception() is None:
                    report.results[i] = fut.result()
                    _tell(report, report.results[i])
            report.unfinished = report.results.count({})
            if bar.enabled:  # the summary goes on a line of its own
                print(file=sys.stderr)
            report.results = [r for r in report.results if r]
    report.seconds = time.monotonic() - t0
    return report


def _tell(report: BatchReport, result: dict) -> None:
    """Report a failed (counted) or suspect result on stderr as it comes."""
    if "error" in result:
        report.failed += 1
        where = "" if result["path"] in result["error"] else f"{result['path']}: "
        print(f"\nerror: {where}{result['error']}", file=sys.stderr)
    elif "warning" in result:
        print(f"\nwarning: {result['path']}: {result['warning']}", file=sys.stderr)


def summary_csv(results: list[dict]) -> str:
    """The summary CSV's text: one row per result."""
    rows = [summary_row(r) for r in results]
    names: list[str] = []
    for row in rows:
        names.extend(k for k in row if k not in names)
    text = io.StringIO()
    w = csv.DictWriter(text, fieldnames=names)
    w.writeheader()
    w.writerows(rows)
    return text.getvalue()


def write_whole(path: str | Path, data: str | bytes) -> None:
    """Write ``data`` (text, or bytes: a PNG) to ``path`` (through a link, to its target) by way of
    ``<path>.tmp``, renamed over it once complete: a write that fails (a full disk, Ctrl-C) leaves what was
    there, never a file cut short. A device or a pipe (/dev/stdout) is written to directly, and so is a file
    whose folder may not hold a temporary file (a link into a folder that is not writable)."""
    from .fileanalysis import is_device

    direct = is_device(path)
    real = os.path.realpath(path)
    target = path if direct else real + ".tmp"
    # A file name that is not valid UTF-8 (held with surrogates) is written as its escape, "caf\udce9.wav", as
    # the JSON spells it: the original bytes (surrogateescape) would make the whole CSV unreadable as UTF-8.
    how = {"mode": "wb"} if isinstance(data, bytes) else {"mode": "w", "newline": "", "errors": "backslashreplace"}
    try:
        fh = open(target, **how)
    except PermissionError:
        if direct:
            raise
        direct, target = True, path
        fh = open(target, **how)
    try:
        with fh:
            fh.write(data)
        if not direct:
            os.replace(target, real)
    except BaseException:  # a full disk, or Ctrl-C while writing
        if not direct:
            with contextlib.suppress(OSError):
                os.remove(target)
        raise
