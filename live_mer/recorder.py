"""Record every estimate to CSV or JSONL while streaming, from a writer thread.

The analyzer thread only puts the estimate on a bounded queue (dropped and counted when full), so the
analysis never waits for the disk. Each row goes to the file at once and whole: a write error (disk
full, I/O error) cuts the unfinished row back off, logs one error, drops the estimates and tries again
every ``retry_s`` seconds; once the file can be written again the recording continues where it was and
logs how many estimates were lost. An existing recording is never lost: new rows are appended (an
installation restarted by its service continues its log); a CSV whose columns differ (another model,
or a recording by an older version without the ``input_ok`` column) is left alone and the rows go to
the first free ``<name>-2.csv``, ``<name>-3.csv``...

Log rotation is followed by the writer thread, before it writes a row: about every ``check_s`` seconds it
compares the open file with what ``path`` names now (device and inode), and when the path names another
file or none (logrotate's rename-and-create, or the file was removed) it logs one line and reopens the
path, creating it, with a CSV header when the file is new or empty; a file emptied under it (logrotate's
``copytruncate``, checked at every row) gets its header again before the next row. Rows are written
whole, so each is in one file or the other, never split or lost.
"""

from __future__ import annotations

import contextlib
import csv
import errno
import io
import json
import logging
import os
import queue
import stat
import threading
import time
from pathlib import Path

from .estimate import Estimate

log = logging.getLogger("live_mer")

RETRY_S = 5.0  # seconds between attempts to write again after a write error
CHECK_S = 2.0  # seconds between checks that the path still names the open file (log rotation)


def flat_row(est: Estimate, wall: float) -> dict:
    """One flat record: scalar fields, every head value as ``<head>.<name>``, and the input's health.

    ``input_ok`` tells a lost input device (fed silence: loudness -120, peak 0) from a silent room.
    """
    row = {"wall_time": round(wall, 3)}
    for k, v in est.to_dict().items():
        if isinstance(v, dict):
            row.update({f"{k}.{name}": value for name, value in v.items()})
        else:
            row[k] = v
    row.update(input_ok=est.input_ok, peak=est.peak, clipped=est.clipped, nonfinite=est.nonfinite,
               overflows=est.overflows, latency_ms=round(est.latency_ms, 3))
    return row


def csv_line(values) -> str:
    """One CSV row as text, so that it can be written (and cut back) as a whole."""
    buf = io.StringIO()
    csv.writer(buf).writerow(values)
    return buf.getvalue()


class Recorder:
    """A sink writing estimates to ``path`` (``.csv`` or ``.jsonl``, or ``fmt``); call :meth:`close` at the end.

    ``written`` counts the rows complete in the file, ``dropped`` the estimates that are not there.
    """

    def __init__(self, path: str | Path, fmt: str | None = None, max_queue: int = 10_000,
                 retry_s: float = RETRY_S, check_s: float = CHECK_S):
        self.path = Path(path)
        self.format = fmt or self.path.suffix.lower().lstrip(".")
        if self.format not in ("csv", "jsonl"):
            raise ValueError(f"record file {self.path} must end in .csv or .jsonl")
        self.path.parent.mkdir(parents=True, exist_ok=True)  # "logs/show.csv": the folder is made
        open(self.path, "ab").close()  # a place that cannot be written at all fails now, at the start
        self.retry_s = retry_s
        self.check_s = check_s
        self.written = 0
        self._queue_full = 0  # counted by the analyzer thread, everything else by the writer thread
        self._unwritable = 0
        self._lost_now = 0  # estimates lost since the current write error began: logged when it ends
        self._last_error = ""
        self._columns: list[str] = []
        self._fh = None  # raw (unbuffered) file; None before the first row and after a write error
        self._end = 0  # size of the file after its last complete row: where a failed row is cut back to
        self._retry_at = 0.0
        self._check_at = 0.0  # when to compare the open file with what the path names (log rotation)
        self._last = b""  # the last row written: put back after the header if a truncation raced with it
        self._queue: queue.Queue = queue.Queue(max_queue)
        self._thread = threading.Thread(target=self._run, name="live_mer-recorder", daemon=True)
        self._thread.start()

    @property
    def dropped(self) -> int:
        """Estimates not recorded: the queue was full, or the file could not be written."""
        return self._queue_full + self._unwritable

    @property
    def error(self) -> str:
        """For the summary at the end: how many estimates are missing and why ("" when none is)."""
        if not self.dropped:
            return ""
        return f"{self.dropped} estimates not recorded: {self._last_error or 'the writer fell behind'}"

    def __call__(self, est: Estimate) -> None:
        try:
            self._queue.put_nowait((est, time.time()))
        except queue.Full:
            self._queue_full += 1

    def _run(self) -> None:
        while (item := self._queue.get()) is not None:
            if self._fh is None and time.monotonic() < self._retry_at:  # after a write error: wait
                self._drop()
                continue
            try:
                self._record(*item)
            except OSError as exc:
                self._fail(exc)
        self._close_file()

    def _record(self, est: Estimate, wall: float) -> None:
        row = flat_row(est, wall)
        if self._fh is None:
            self._open(list(row))
        else:
            self._follow_rotation(list(row))
        if self.format == "jsonl":
            self._append(json.dumps(row) + "\n")
        else:
            self._append(csv_line(row.get(name, "") for name in self._columns))
        self.written += 1
        if self._lost_now:
            log.warning("recording to %s resumed; %d estimates were lost while it could not be written",
                        self.path, self._lost_now)
            self._lost_now = 0

    def _open(self, names: list[str]) -> bool:
        """Open the recording for appending: at the first row, after a write error and after a log rotation.

        New rows start on a line of their own after a row cut off (a run killed mid-row, or a failed row
        the file system could not cut back); a CSV gets its header unless it has it already. Returns
        whether the header was written.
        """
        self.path.parent.mkdir(parents=True, exist_ok=True)  # a rotation may have removed the folder too
        needs_header = self.format == "csv" and self._choose_csv(names)
        self._fh = open(self.path, "ab", buffering=0)
        self._end = os.fstat(self._fh.fileno()).st_size
        if self._ends_mid_row():
            self._append("\n")
        if needs_header:
            self._append(csv_line(names))
        self._check_at = time.monotonic() + self.check_s
        return needs_header

    def _follow_rotation(self, names: list[str]) -> None:
        """Before a row: reopen the path if it names another file or none now; a header again if emptied.

        The path is stat-ed at most every ``check_s`` seconds, the open file (one ``fstat``) before every
        row, so that a file truncated under us gets its header before any row does.
        """
        st = os.fstat(self._fh.fileno())
        regular = stat.S_ISREG(st.st_mode)  # not a pipe or device (/dev/stdout): those are only written
        why = ""
        if regular and time.monotonic() >= self._check_at:
            self._check_at = time.monotonic() + self.check_s
            try:
                now = os.stat(self.path)
            except FileNotFoundError:
                why = "the file was moved or removed (log rotation?)"
            except OSError:  # cannot tell (a folder not searchable now): keep writing the open file
                pass
            else:
                if (now.st_dev, now.st_ino) != (st.st_dev, st.st_ino):
                    why = "the file was moved and the path names another one (log rotation?)"
        if why:
            self._close_file()
            header = self._open(names)
            log.warning("recording to %s: %s; continuing in the file the path names now%s", self.path, why,
                        ", with a header" if header else "")
        elif regular and st.st_size < self._end:  # copytruncate, or `: > show.csv`
            self._truncated(st.st_size)

    def _truncated(self, size: int) -> None:
        """The open file was emptied under us: a CSV continues from its header again, JSONL just continues."""
        self._end = size
        header = ""
        if self.format == "csv" and size == 0:
            self._append(header := csv_line(self._columns))
        elif self.format == "csv" and size == len(self._last):
            # our last row landed just after the truncation (it raced with our fstat): the header goes before it
            os.ftruncate(self._fh.fileno(), 0)
            self._end = 0
            self._append((header := csv_line(self._columns)) + self._last.decode())
        log.warning("recording to %s: the file was truncated under it (log rotation with copytruncate?); "
                    "continuing it%s", self.path, ", from a header" if header else "")

    def _choose_csv(self, names: list[str]) -> bool:
        """Continue an existing CSV with the same columns, else start one (a new name if taken).

        Returns whether the file needs the header.
        """
        first, k = self.path, 1
        while True:
            header = None
            if self.path.is_file():  # not a pipe or device (/dev/stdout): those are only written
                with open(self.path, newline="", encoding="utf-8", errors="replace") as fh:
                    header = next(csv.reader([fh.readline(1 << 16)]), None) or None  # empty file: None
            if header is None or header == names:
                self._columns = names
                return header is None
            k += 1
            new = first.with_name(f"{first.stem}-{k}{first.suffix}")
            log.warning("%s has other columns (another model, or recorded by an older version?); "
                        "recording to %s instead", self.path, new)
            self.path = new

    def _ends_mid_row(self) -> bool:
        if not (self._end and self.path.is_file()):
            return False
        with open(self.path, "rb") as fh:
            fh.seek(-1, 2)
            return fh.read(1) != b"\n"

    def _append(self, text: str) -> None:
        """Write one whole line now: a failure is noticed at its row, and ``_end`` stays the file's end."""
        data = text.encode()
        rest = memoryview(data)
        while rest:  # a raw write may write only part
            n = self._fh.write(rest)
            if not n:
                raise OSError(errno.EIO, "the file took no bytes")
            rest = rest[n:]
        self._end += len(data)
        self._last = data

    def _fail(self, exc: OSError) -> None:
        """Drop this estimate, cut its unfinished row back off, and wait ``retry_s`` before writing again."""
        if not self._lost_now:
            log.error("record.path %s: cannot write (%s); estimates are dropped until it can be written again "
                      "(retrying every %g s)", self.path, exc.strerror or exc, self.retry_s)
        self._last_error = str(exc.strerror or exc)
        self._drop()
        if self._fh is not None:  # else opening failed: nothing was written
            with contextlib.suppress(OSError):  # a device or pipe: the next row starts on a fresh line instead
                # never beyond the file's size: a log rotation may have emptied it under us (copytruncate)
                os.ftruncate(self._fh.fileno(), min(self._end, os.fstat(self._fh.fileno()).st_size))
            self._close_file()
        self._retry_at = time.monotonic() + self.retry_s

    def _drop(self) -> None:
        self._unwritable += 1
        self._lost_now += 1

    def _close_file(self) -> None:
        if self._fh is not None:
            with contextlib.suppress(OSError):
                self._fh.close()
            self._fh = None

    def close(self) -> None:
        if self._thread.is_alive():
            with contextlib.suppress(queue.Full):  # a writer stuck in a write (a hung network disk): do not wait
                self._queue.put(None, timeout=5.0)
            self._thread.join(5.0)
