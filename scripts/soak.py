"""Soak test: hours of audio through the whole pipeline, accelerated; checks it stays healthy.

    python scripts/soak.py --hours 1          # the long run (10-15 s per hour of audio on a 2-core VM)
    python scripts/soak.py --minutes 5        # the short version (also run by the test suite)

Plays the generated demo piece, looped, as fast as the analyzer takes it (DemoSource realtime=False)
through Engine -> Analyzer -> OscSender (per-hop bundles) -> a real UDP receiver on 127.0.0.1, and checks:
  * memory: RSS growth between 10 % and 100 % of the run < 5 %;
  * speed: wall time per second of audio in the last fifth <= 2.5x the second and third tenths (a slowdown
    over time; a busy machine moves the ratio by up to about 2x over such short stretches);
  * continuity: estimate times advance by exactly one hop, no gaps, no duplicates;
  * delivery: the receiver got exactly one bundle per estimate.
Prints the numbers and exits 1 if any check fails.
"""

from __future__ import annotations

import argparse
import socket
import sys
import threading
import time
from pathlib import Path

import numpy as np

from live_mer.analyzer import Analyzer
from live_mer.engine import Engine
from live_mer.model import DEFAULT_MODEL, load_model
from live_mer.osc import OscSender
from live_mer.sources import DemoSource


def rss_mb() -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


class CountingReceiver:
    """Counts OSC bundles of estimates arriving on a loopback UDP port (4 MiB socket buffer: no burst
    losses), and the end-of-stream notices apart."""

    def __init__(self):
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4 << 20)
        self.sock.bind(("127.0.0.1", 0))
        self.sock.settimeout(0.1)
        self.port = self.sock.getsockname()[1]
        self.bundles = 0
        self.ends = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self):
        while not self._stop.is_set():
            try:
                data = self.sock.recv(65536)
            except socket.timeout:
                continue
            if b"/status/stopped\x00" in data:
                self.ends += 1
            elif data.startswith(b"#bundle"):
                self.bundles += 1

    def close(self):
        self._stop.set()
        self._thread.join(1)
        self.sock.close()


def soak(seconds: float, model=DEFAULT_MODEL) -> dict:
    """Run ``seconds`` of audio through the pipeline; returns measurements and check results."""
    model = load_model(model, provider="cpu") if isinstance(model, str) else model
    rx = CountingReceiver()
    source = DemoSource(realtime=False, seconds=seconds)
    osc = OscSender([f"127.0.0.1:{rx.port}"], model_name=model.card.name)
    samples: list[tuple[float, float]] = []  # (stream time, RSS MB)
    times: list[float] = []
    walls: list[float] = []
    latency: list[float] = []

    def watch(est):
        times.append(est.t)
        walls.append(time.perf_counter())
        latency.append(est.latency_ms)
        if len(times) % 200 == 0:
            samples.append((est.t, rss_mb()))

    engine = Engine(source, Analyzer(model, source.samplerate), [osc, watch])
    t0 = time.perf_counter()
    engine.start()
    engine.wait()
    engine.stop()
    wall = time.perf_counter() - t0
    osc.close()
    deadline = time.monotonic() + 10
    while (rx.bundles < len(times) or not rx.ends) and time.monotonic() < deadline:
        time.sleep(0.05)
    rx.close()
    hop = model.card.hop_seconds
    steps = np.diff(times)
    n = len(latency)
    early, late = np.median(latency[n // 10: n // 5]), np.median(latency[-n // 10:])

    def cost(a: int, b: int) -> float:
        """Wall seconds per second of audio between estimates a and b - 1. (Per-estimate latency is the time
        of the analyzer call that produced it; run flat out, one call covers a varying number of hops, so
        its median jumps between runs by 2-3x and cannot show a slowdown. Throughput can.)"""
        return (walls[b - 1] - walls[a]) / max(times[b - 1] - times[a], 1e-9)

    speed_early, speed_late = (cost(n // 10, 3 * n // 10), cost(n - n // 5, n)) if n >= 20 else (0.0, 0.0)
    ref = [m for t, m in samples if t >= 0.1 * seconds]
    growth = (max(ref) - ref[0]) / ref[0] if len(ref) > 1 else 0.0
    result = {
        "audio_s": seconds, "wall_s": wall, "estimates": n, "bundles_received": rx.bundles,
        "rss_start_mb": ref[0] if ref else float("nan"), "rss_max_mb": max(ref) if ref else float("nan"),
        "rss_growth": growth, "latency_early_ms": float(early), "latency_late_ms": float(late),
        "wall_per_audio_s_early": speed_early, "wall_per_audio_s_late": speed_late,
        "max_step_error_s": float(np.max(np.abs(steps - hop))) if n > 1 else 0.0,
        "engine_error": repr(engine.error) if engine.error else "",
    }
    result["checks"] = {
        "memory_flat": growth < 0.05,
        "speed_flat": speed_late <= 2.5 * speed_early,  # generous: a loaded CI machine is noisy
        "continuous": n > 1 and result["max_step_error_s"] < 1e-6,
        "delivered": rx.bundles == n and rx.ends == 1,  # every estimate, then one end-of-stream notice
        "no_error": not engine.error,
    }
    return result


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    g = p.add_mutually_exclusive_group()
    g.add_argument("--hours", type=float)
    g.add_argument("--minutes", type=float, default=5.0)
    p.add_argument("--model", default=DEFAULT_MODEL)
    args = p.parse_args()
    seconds = args.hours * 3600 if args.hours else args.minutes * 60
    r = soak(seconds, args.model)
    print(f"{r['audio_s'] / 60:.0f} min of audio in {r['wall_s']:.1f} s ({r['audio_s'] / r['wall_s']:.0f}x real time)")
    print(f"estimates {r['estimates']}, bundles received {r['bundles_received']}")
    print(f"RSS {r['rss_start_mb']:.0f} -> max {r['rss_max_mb']:.0f} MB ({100 * r['rss_growth']:+.1f} %)")
    print(f"wall time per second of audio: early {1000 * r['wall_per_audio_s_early']:.2f} ms, "
          f"late {1000 * r['wall_per_audio_s_late']:.2f} ms")
    print(f"analyzer call behind each estimate, median: early {r['latency_early_ms']:.2f} ms, "
          f"late {r['latency_late_ms']:.2f} ms (flat out, one call covers several hops)")
    print(f"largest deviation of a time step from the hop: {r['max_step_error_s']:.2e} s")
    for name, ok in r["checks"].items():
        print(f"  {'PASS' if ok else 'FAIL'}  {name}")
    return 0 if all(r["checks"].values()) else 1


if __name__ == "__main__":
    sys.exit(main())
