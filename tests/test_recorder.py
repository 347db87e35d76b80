"""The recorder: input health in every row, older recordings, and a disk that fills up and frees again."""

import builtins
import csv
import errno
import json
import os
import time

import pytest

from live_mer.estimate import Estimate
from live_mer.recorder import Recorder, csv_line, flat_row


def est(t=0.0, **kw):
    return Estimate(t=t, valence=0.1, arousal=-0.2, quadrant="Q4", chord="A:min", chord_confidence=0.8, **kw)


def rows_of(path):
    """The rows of a recording; fails on any row that is not complete."""
    text = path.read_text()
    assert text.endswith("\n"), "the file ends mid-row"
    if ".jsonl" in path.suffixes:  # also show.jsonl.1, rotated
        return [json.loads(line) for line in text.splitlines()]  # a cut-off row is not valid JSON
    header, *rows = csv.reader(text.splitlines())
    assert all(len(row) == len(header) for row in rows), "a row with missing fields"
    return [dict(zip(header, row)) for row in rows]


def until(condition, timeout=5.0):
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.01)


@pytest.mark.parametrize("suffix", [".csv", ".jsonl"])
def test_rows_tell_a_lost_input_from_a_silent_room(tmp_path, suffix):
    """While the device is lost the analyzer hears silence: only ``input_ok`` tells it from a quiet room."""
    path = tmp_path / f"rec{suffix}"
    rec = Recorder(path)
    rec(est(0.0, peak=0.9, clipped=5, nonfinite=2, overflows=1))
    rec(est(0.5, input_ok=False))
    rec.close()
    ok, lost = ([row[k] for k in ("input_ok", "peak", "clipped", "nonfinite", "overflows", "loudness_db")]
                for row in rows_of(path))
    if suffix == ".csv":
        assert ok[:5] == ["True", "0.9", "5", "2", "1"] and lost == ["False", "0.0", "0", "0", "0", "-120.0"]
    else:
        assert ok[:5] == [True, 0.9, 5, 2, 1] and lost == [False, 0.0, 0, 0, 0, -120.0]


def test_a_recording_by_the_previous_version_is_kept_and_continued_beside_it(tmp_path, caplog):
    """Its header lacks ``input_ok``: rows of the new columns under it would shift, so they go to ``-2.csv``."""
    path = tmp_path / "room.csv"
    old_columns = [name for name in flat_row(est(), 0.0) if name != "input_ok"]
    old = (csv_line(old_columns) + csv_line(["1.0"] * len(old_columns))).encode()
    path.write_bytes(old)
    rec = Recorder(path)
    rec(est())
    rec.close()
    assert path.read_bytes() == old
    assert rec.path == tmp_path / "room-2.csv" and rows_of(rec.path)[0]["input_ok"] == "True"
    assert "older version" in caplog.text and "room-2.csv" in caplog.text


class SmallDisk:
    """Stands in for ``open`` in the recorder: a file opened for appending holds at most ``size`` bytes.

    A write beyond writes what still fits and the next one fails with ENOSPC, as a full file system does
    (the audit's 256 KiB tmpfs cut the row at a page boundary). Raising ``size`` frees space.
    """

    def __init__(self, size):
        self.size = size
        self.opens = 0

    def open(self, path, mode="r", *args, **kw):
        fh = builtins.open(path, mode, *args, **kw)
        if "a" not in mode:
            return fh
        self.opens += 1
        return LimitedFile(fh, self)


class LimitedFile:
    def __init__(self, fh, disk):
        self.fh, self.disk = fh, disk

    def write(self, data):
        room = self.disk.size - os.fstat(self.fh.fileno()).st_size
        if room <= 0:
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        return self.fh.write(data[:room])

    def fileno(self):
        return self.fh.fileno()

    def close(self):
        self.fh.close()


@pytest.mark.parametrize("suffix", [".csv", ".jsonl"])
def test_a_disk_that_fills_up_and_frees_again(tmp_path, monkeypatch, caplog, suffix):
    """No cut-off row stays in the file, the recording resumes in it, the counts add up, the log says it twice."""
    path = tmp_path / f"show{suffix}"
    sample = flat_row(est(), time.time())  # the rows' length varies by a character or two
    if suffix == ".csv":
        header, row = len(csv_line(sample)), len(csv_line(sample.values()))
    else:
        header, row = 0, len(json.dumps(sample)) + 1
    disk = SmallDisk(header + 3 * row + row // 2)  # full in the middle of the fourth row
    monkeypatch.setattr("live_mer.recorder.open", disk.open, raising=False)
    rec = Recorder(path, retry_s=0.3)
    for i in range(10):
        rec(est(i))
    until(lambda: rec.written + rec.dropped == 10)
    assert rec.written == 3 and len(rows_of(path)) == 3  # the fourth row was cut back off
    full_since = time.monotonic()
    for i in range(10, 30):  # still full for a second: retried about every 0.3 s, not at every estimate
        rec(est(i))
        time.sleep(0.05)
    until(lambda: rec.written + rec.dropped == 30)
    assert disk.opens <= 2 + (time.monotonic() - full_since) / 0.3
    assert rec.written == 3 and rec.dropped == 27 and len(rows_of(path)) == 3

    disk.size = 1 << 30  # space is freed
    time.sleep(0.35)
    for i in range(30, 40):
        rec(est(i))
    rec.close()
    rows = rows_of(path)
    assert [float(r["t"]) for r in rows] == [0, 1, 2] + list(range(30, 40))
    assert rec.written == 13 and rec.dropped == 27
    assert rec.error == "27 estimates not recorded: No space left on device"
    logged = [(r.levelname, r.getMessage()) for r in caplog.records if r.name == "live_mer"]
    assert len(logged) == 2, logged
    assert logged[0][0] == "ERROR" and f"record.path {path}: cannot write (No space left on device)" in logged[0][1]
    assert logged[1] == ("WARNING",
                         f"recording to {path} resumed; 27 estimates were lost while it could not be written")


# Log rotation: logrotate's rename-and-create (the default) and copytruncate, for weeks-long installations.

def feed(rec, ts):
    """Record an estimate at each of ``ts`` and wait until the writer has them."""
    done = rec.written + rec.dropped + len(ts)
    for t in ts:
        rec(est(t))
    until(lambda: rec.written + rec.dropped == done)


@pytest.mark.parametrize("create", [True, False], ids=["create", "removed"])
@pytest.mark.parametrize("suffix", [".csv", ".jsonl"])
def test_a_rotation_by_rename_is_followed_into_the_new_file(tmp_path, caplog, suffix, create):
    """Rows after the rename go to the file the path names (a CSV with its header), none is lost or split."""
    path = tmp_path / f"rec{suffix}"
    rotated = tmp_path / f"rec{suffix}.1"
    rec = Recorder(path, check_s=0.2)
    feed(rec, range(5))
    path.rename(rotated)
    if create:  # logrotate's `create`: a new empty file where the old one was
        path.touch()
    feed(rec, [5])  # to either file (the path is checked every check_s), whole
    time.sleep(0.3)
    feed(rec, range(6, 10))  # noticed by now: to the new file
    rec.close()
    old, new = ([float(r["t"]) for r in rows_of(p)] for p in (rotated, path))  # complete rows only
    assert old + new == list(range(10)) and old[:5] == list(range(5)) and new[-4:] == list(range(6, 10))
    if suffix == ".csv":
        assert path.read_bytes().startswith(csv_line(flat_row(est(), 0.0)).encode())
    assert rec.written == 10 and rec.dropped == 0 and rec.path == path
    logged = [r.getMessage() for r in caplog.records if r.name == "live_mer"]
    assert len(logged) == 1 and f"recording to {path}: the file was moved" in logged[0], logged


def test_a_rotation_by_copytruncate_gets_a_header_and_a_restart_continues_it(tmp_path, caplog):
    """The emptied CSV starts with its header again, so a restarted service appends to it (not rec-2.csv)."""
    path = tmp_path / "rec.csv"
    header = csv_line(flat_row(est(), 0.0))
    rec = Recorder(path)
    feed(rec, range(5))
    (tmp_path / "rec.csv.1").write_bytes(path.read_bytes())  # logrotate copytruncate: copy, then empty it
    os.truncate(path, 0)
    feed(rec, range(5, 8))
    rec.close()
    assert path.read_bytes().startswith(header.encode())
    assert [float(r["t"]) for r in rows_of(path)] == [5, 6, 7]
    assert [float(r["t"]) for r in rows_of(tmp_path / "rec.csv.1")] == list(range(5))
    logged = [r.getMessage() for r in caplog.records if r.name == "live_mer"]
    assert len(logged) == 1 and "truncated" in logged[0], logged

    again = Recorder(path)  # the service restarts
    feed(again, [8])
    again.close()
    assert again.path == path and not (tmp_path / "rec-2.csv").exists()
    assert [float(r["t"]) for r in rows_of(path)] == [5, 6, 7, 8]


class TruncatedBeforeWrite:
    """Stands in for ``open`` in the recorder: when ``cut`` is set, the next write first copies and empties
    the file, as a copytruncate that comes between the recorder's check and its write."""

    def __init__(self, copy):
        self.copy, self.cut = copy, False

    def open(self, path, mode="r", *args, **kw):
        fh = builtins.open(path, mode, *args, **kw)
        return self.File(fh, self) if "a" in mode else fh

    class File(LimitedFile):
        def write(self, data):
            if self.disk.cut:
                self.disk.cut = False
                with builtins.open(self.fh.name, "rb") as fh:
                    self.disk.copy.write_bytes(fh.read())
                os.ftruncate(self.fh.fileno(), 0)
            return self.fh.write(data)


def test_a_row_written_just_after_a_copytruncate_follows_the_header(tmp_path, monkeypatch):
    path = tmp_path / "rec.csv"
    rotation = TruncatedBeforeWrite(tmp_path / "rec.csv.1")
    monkeypatch.setattr("live_mer.recorder.open", rotation.open, raising=False)
    rec = Recorder(path)
    feed(rec, range(3))
    rotation.cut = True
    feed(rec, range(3, 6))  # row 3 lands first in the emptied file
    rec.close()
    assert path.read_bytes().startswith(csv_line(flat_row(est(), 0.0)).encode())
    assert [float(r["t"]) for r in rows_of(path)] == [3, 4, 5]
    assert [float(r["t"]) for r in rows_of(rotation.copy)] == [0, 1, 2]

