"""Record every estimate to CSV or JSONL while streaming, from a writer thread.

The analyzer thread only puts the estimate on a bounded queue (dropped and counted when full); a
write error (disk full, file removed) stops the recorder with a logged error and never the analysis.
An existing recording is never lost: new rows are appended (an installation restarted by its service
continues its log); a CSV whose columns differ (another model) is left alone and the rows go to the
first free ``<name>-2.csv``, ``<name>-3.csv``...
"""

from __future__ import annotations

import csv
import json
import logging
import queue
import threading
import time
from pathlib import Path

from .estimate import Estimate

log = logging.getLogger("live_mer")


def flat_row(est: Estimate, wall: float) -> dict:
    """One flat record: scalar fields, every head value as ``<head>.<name>``."""
    row = {"wall_time": round(wall, 3)}
    for k, v in est.to_dict().items():
        if isinstance(v, dict):
            row.update({f"{k}.{name}": value for name, value in v.items()})
        else:
            row[k] = v
    row.update(peak=est.peak, clipped=est.clipped, nonfinite=est.nonfinite, overflows=est.overflows,
               latency_ms=round(est.latency_ms, 3))
    return row


class Recorder:
    """A sink writing estimates to ``path`` (``.csv`` or ``.jsonl``, or ``fmt``); call :meth:`close` at the end."""

    def __init__(self, path: str | Path, fmt: str | None = None, max_queue: int = 10_000):
        self.path = Path(path)
        self.format = fmt or self.path.suffix.lower().lstrip(".")
        if self.format not in ("csv", "jsonl"):
            raise ValueError(f"record file {self.path} must end in .csv or .jsonl")
        self.path.parent.mkdir(parents=True, exist_ok=True)  # "logs/show.csv": the folder is made
        self._fh = self._open(self.path)
        self._queue: queue.Queue = queue.Queue(max_queue)
        self.written = 0
        self.dropped = 0
        self.error: str = ""
        self._writer = None
        self._thread = threading.Thread(target=self._run, name="live_mer-recorder", daemon=True)
        self._thread.start()

    def __call__(self, est: Estimate) -> None:
        if self.error:
            return
        try:
            self._queue.put_nowait((est, time.time()))
        except queue.Full:
            self.dropped += 1

    @staticmethod
    def _open(path: Path):
        fh = open(path, "a", newline="", buffering=1 << 16)
        if path.is_file() and path.stat().st_size:
            with open(path, "rb") as old:
                old.seek(-1, 2)
                if old.read(1) != b"\n":  # a run killed mid-row: the new rows start on a line of their own
                    fh.write("\n")
        return fh

    def _start_csv(self, names: list[str]) -> None:
        """Continue an existing CSV with the same columns, else start one (a new name if taken)."""
        first, k = self.path, 1
        while True:
            header = None
            if self.path.is_file():  # not a pipe or device (/dev/stdout): those are only written
                with open(self.path, newline="", errors="replace") as fh:
                    header = next(csv.reader([fh.readline(1 << 16)]), None) or None  # empty file: None
            if header is None or header == names:
                break
            self._fh.close()
            k += 1
            new = first.with_name(f"{first.stem}-{k}{first.suffix}")
            log.warning("%s has other columns (another model?); recording to %s instead", self.path, new)
            self.path = new
            self._fh = self._open(new)
        self._writer = csv.DictWriter(self._fh, fieldnames=names, extrasaction="ignore")
        if header is None:
            self._writer.writeheader()

    def _write(self, est: Estimate, wall: float) -> None:
        row = flat_row(est, wall)
        if self.format == "jsonl":
            self._fh.write(json.dumps(row) + "\n")
        else:
            if self._writer is None:
                self._start_csv(list(row))
            self._writer.writerow(row)
        self.written += 1

    def _run(self) -> None:
        last_flush = time.monotonic()
        while True:
            item = self._queue.get()
            if item is None:
                break
            try:
                self._write(*item)
                if time.monotonic() - last_flush > 1.0:
                    self._fh.flush()
                    last_flush = time.monotonic()
            except (OSError, ValueError) as exc:
                self.error = f"recording to {self.path} stopped: {exc}"
                log.error(self.error)
                break
        try:
            self._fh.close()
        except OSError as exc:
            self.error = self.error or f"recording to {self.path}: closing failed: {exc}"

    def close(self) -> None:
        if self._thread.is_alive():
            self._queue.put(None)
            self._thread.join(5.0)

