"""Benchmark the live pipeline; prints numbers and ratios against baselines measured in the same run.

    python scripts/bench.py [--minutes 10] [--model live_mer_student] [--skip-startup]

Measures, pinned to one CPU core (numba, BLAS and onnxruntime single-threaded):
  1. full pipeline (Analyzer + OSC bundle to a loopback socket) over the generated demo piece looped to
     --minutes at 44.1 kHz in 512-frame blocks: real-time factor, per-hop processing latency p50/p99;
  2. the feature path (resample-free Frontend: STFT, mel, chroma, loudness, onset, chords, key) against
     librosa.feature.melspectrogram + librosa.feature.chroma_stft on the same audio at 22.05 kHz;
  3. the ONNX student alone, one window at a time (median and p99 per window);
  4. one 60 Hz OSC destination's work per frame over the demo's estimates (shaping every output, then
     encoding the bundle) with live_mer's OSC writer against python-osc's builder;
  5. time from `live-mer listen --demo` process start to the first OSC bundle, with a cold and a warm numba
     cache, and that headless process's peak RSS after 20 s of streaming.
"""

from __future__ import annotations

import argparse
import os

for _var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS", "NUMBA_NUM_THREADS"):
    os.environ[_var] = "1"
if hasattr(os, "sched_setaffinity"):
    os.sched_setaffinity(0, {sorted(os.sched_getaffinity(0))[0]})

import socket  # noqa: E402
import subprocess  # noqa: E402
import sys  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402
from pathlib import Path  # noqa: E402

import numpy as np  # noqa: E402

from live_mer.analyzer import Analyzer  # noqa: E402
from live_mer.demo import render_demo  # noqa: E402
from live_mer.features import Frontend  # noqa: E402
from live_mer.model import DEFAULT_MODEL, load_model  # noqa: E402
from live_mer.osc import DEFAULT_PREFIX, DestinationConfig, OscSender, datagrams, encode  # noqa: E402
from live_mer.outputs import OutputSettings, Shaper  # noqa: E402
from pythonosc.osc_bundle_builder import OscBundleBuilder  # noqa: E402
from pythonosc.osc_message_builder import OscMessageBuilder  # noqa: E402


def looped(audio: np.ndarray, n_samples: int) -> np.ndarray:
    """``audio`` repeated to exactly ``n_samples``."""
    return np.tile(audio, int(np.ceil(n_samples / len(audio))))[:n_samples]


def bench_pipeline(model, minutes: float) -> dict:
    sr = 44100
    x = looped(render_demo(sr), int(minutes * 60 * sr))
    sink = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sink.bind(("127.0.0.1", 0))
    osc = OscSender([f"127.0.0.1:{sink.getsockname()[1]}"], model_name=model.card.name)
    analyzer = Analyzer(model, sr)
    analyzer.warm_up()  # compile / load the kernels before timing, as Engine.start does
    hop_ms = []
    t0 = time.perf_counter()
    for i in range(0, len(x), 512):
        c0 = time.perf_counter()
        ests = analyzer.process(x[i:i + 512])
        for e in ests:
            osc(e)
        if ests:
            hop_ms.append((time.perf_counter() - c0) * 1000)
    wall = time.perf_counter() - t0
    osc.close()
    sink.close()
    audio_s = len(x) / sr
    return {"audio_s": audio_s, "wall_s": wall, "rtf": wall / audio_s, "hops": len(hop_ms),
            "p50_ms": float(np.percentile(hop_ms, 50)), "p99_ms": float(np.percentile(hop_ms, 99)),
            "max_ms": float(np.max(hop_ms))}


def bench_features(spec, minutes: float, repeats: int = 3) -> dict:
    """Best of ``repeats`` for both paths, each warmed up first (numba kernels, librosa's caches)."""
    import librosa

    sr = spec.sample_rate
    x = looped(render_demo(sr), int(minutes * 60 * sr)).astype(np.float32)
    fe = Frontend(spec, sr)

    def ours(audio):
        fe.reset()
        for i in range(0, len(audio), 8192):
            fe.push(audio[i:i + 8192])

    def theirs(audio):
        librosa.feature.melspectrogram(y=audio, sr=sr, n_fft=spec.n_fft, hop_length=spec.hop_length,
                                       n_mels=spec.n_mels, fmin=spec.fmin, fmax=spec.fmax)
        librosa.feature.chroma_stft(y=audio, sr=sr, n_fft=spec.n_fft, hop_length=spec.hop_length)

    times = {}
    for name, run in (("ours_s", ours), ("librosa_s", theirs)):
        run(x[: sr * 5])
        best = float("inf")
        for _ in range(repeats):
            t0 = time.perf_counter()
            run(x)
            best = min(best, time.perf_counter() - t0)
        times[name] = best
    return {"audio_s": len(x) / sr, **times, "speedup": times["librosa_s"] / times["ours_s"]}


def peak_rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def headless_run(model_arg: str, cache_dir: str, run_s: float = 0.0) -> tuple[float, float]:
    """Start `live-mer listen --demo`; seconds to the first OSC bundle, and peak RSS (MB) after ``run_s``."""
    rx = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    rx.bind(("127.0.0.1", 0))
    rx.settimeout(60)
    env = {**os.environ, "NUMBA_CACHE_DIR": cache_dir}
    t0 = time.perf_counter()
    proc = subprocess.Popen([sys.executable, "-m", "live_mer", "listen", "--demo", "--quiet", "--duration", "30",
                             "--model", model_arg, "--osc", f"127.0.0.1:{rx.getsockname()[1]}"], env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        rx.recvfrom(65536)
        first = time.perf_counter() - t0
        time.sleep(run_s)
        return first, peak_rss_mb(proc.pid)
    finally:
        proc.terminate()
        proc.wait(10)
        rx.close()


def bench_model(model, n: int = 2000) -> dict:
    """The ONNX student alone: batch-1 windows of random features through onnxruntime (one thread)."""
    rng = np.random.default_rng(0)
    windows = rng.standard_normal((n, model.card.window_frames, model.card.spec.n_features)).astype(np.float32)
    for w in windows[:50]:
        model.run(w[None])
    times = []
    for w in windows:
        t0 = time.perf_counter()
        model.run(w[None])
        times.append(time.perf_counter() - t0)
    ms = 1000 * np.array(times)
    return {"p50_ms": float(np.median(ms)), "p99_ms": float(np.percentile(ms, 99)), "windows": n,
            "kib": model.path.stat().st_size / 1024}


def python_osc_bundle(messages: list[tuple[str, list]], timestamp: float) -> bytes:
    """The baseline: the same bundle written with python-osc's builders (which parse what they build)."""
    b = OscBundleBuilder(timestamp)
    for address, args in messages:
        m = OscMessageBuilder(address)
        for x in args:
            m.add_arg(x)
        b.add_content(m.build())
    return b.build().dgram


def bench_osc(model, frames: int = 3000, repeats: int = 3) -> dict:
    """One ``rate_hz = 60`` destination sending every output: CPU time per frame to shape the newest estimate
    and write the bundle, ours against python-osc's builder (best of ``repeats``), over the estimates of 30 s
    of the demo."""
    sr = 44100
    x = render_demo(sr)[: 30 * sr]
    analyzer = Analyzer(model, sr)
    estimates = [e for i in range(0, len(x), 512) for e in analyzer.process(x[i:i + 512])]
    cfg = DestinationConfig("127.0.0.1", 9, rate_hz=60.0)

    def per_frame_ms(write) -> float:
        shaper, previous = Shaper(OutputSettings()), -1
        t0 = time.process_time()
        for i in range(frames):
            k = i * len(estimates) // frames
            frame = shaper.step(estimates[k], i / 60.0)
            write(encode(frame, cfg, DEFAULT_PREFIX, model.card.name, "CPUExecutionProvider", fresh=k != previous),
                  time.time())
            previous = k
        return (time.process_time() - t0) * 1000 / frames

    ours = min(per_frame_ms(lambda m, t: datagrams(m, True, t)) for _ in range(repeats))
    theirs = min(per_frame_ms(python_osc_bundle) for _ in range(repeats))
    sample = encode(Shaper(OutputSettings()).step(estimates[-1], 0.0), cfg, DEFAULT_PREFIX, "m", "p", True)
    assert datagrams(sample, True, 1e9) == [python_osc_bundle(sample, 1e9)]  # both write the same bytes
    return {"ours_ms": ours, "theirs_ms": theirs, "speedup": theirs / ours, "frames": frames}


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--minutes", type=float, default=10.0)
    p.add_argument("--model", default=DEFAULT_MODEL)
    p.add_argument("--skip-startup", action="store_true", help="skip the start-to-first-bundle measurement")
    args = p.parse_args()
    model = load_model(args.model, provider="cpu", threads=1)
    print(f"model {model.card.name}: window {model.card.window_seconds:.2f} s, hop {model.card.hop_seconds:.3f} s; "
          f"one core; {args.minutes:g} min of audio")

    r = bench_pipeline(model, args.minutes)
    print(f"pipeline   : {r['audio_s']:.0f} s audio in {r['wall_s']:.2f} s -> RTF {r['rtf']:.4f} "
          f"({1 / r['rtf']:.0f}x faster than real time; target RTF <= 0.01)")
    print(f"per hop    : p50 {r['p50_ms']:.2f} ms, p99 {r['p99_ms']:.2f} ms, max {r['max_ms']:.2f} ms over "
          f"{r['hops']} hops (target p99 <= 5 ms)")

    f = bench_features(model.card.spec, args.minutes)
    print(f"features   : best of 3, warm: ours {f['ours_s']:.2f} s vs librosa mel+chroma_stft {f['librosa_s']:.2f} s on "
          f"{f['audio_s']:.0f} s -> {f['speedup']:.1f}x (target >= 10x; ours also tracks chords and key)")

    m = bench_model(model)
    print(f"model      : {m['kib']:.0f} KiB, median {m['p50_ms']:.3f} ms, p99 {m['p99_ms']:.3f} ms per window "
          f"(batch 1, {m['windows']} windows; target <= 5 MB, <= 1 ms)")

    o = bench_osc(model)
    print(f"OSC 60 Hz  : shaping + bundle of every output, ours {o['ours_ms']:.3f} ms vs python-osc's builder "
          f"{o['theirs_ms']:.3f} ms per frame -> {o['speedup']:.1f}x; {o['ours_ms'] * 6:.1f} % vs "
          f"{o['theirs_ms'] * 6:.1f} % of one core at 60 frames/s")

    if not args.skip_startup:
        model_arg = str(model.path)
        with tempfile.TemporaryDirectory() as cache:
            cold, _ = headless_run(model_arg, cache)
            warm, rss = headless_run(model_arg, cache, run_s=20.0)
        print(f"first OSC  : cold numba cache {cold:.2f} s, warm {warm:.2f} s from process start "
              f"(includes one {model.card.hop_seconds:.2f} s hop of real-time audio; target warm <= 2 s)")
        print(f"peak RSS   : {rss:.0f} MB of `live-mer listen --demo` after 20 s (target <= 250 MB headless)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
