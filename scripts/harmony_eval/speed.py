"""The chroma stage alone, for timing (same kernel as the Frontend, without mel/loudness/onset)."""

from __future__ import annotations

import numpy as np

from live_mer._numba import njit
from live_mer.harmony import fresh_tuning_state, peak_chroma, peak_buffers


@njit(cache=True, nogil=True)
def _chroma_loop(spectra, bins, bin_hz, tuning_decay, compression, gate, prev_power, tuning_state, out_chroma, out_bass):
    n_frames, n_bins = spectra.shape
    power = np.empty(n_bins, dtype=np.float32)
    smooth = np.empty(n_bins, dtype=np.float32)
    buffers = peak_buffers(bins[0], bins[1], bin_hz)
    for f in range(n_frames):
        for b in range(bins[0] - 6, bins[1] + 6):
            re = spectra[f, b].real
            im = spectra[f, b].imag
            power[b] = re * re + im * im
        peak_chroma(power, prev_power, smooth, bin_hz, bins[0], bins[1], bins[2], bins[3], tuning_state,
                    tuning_decay, compression, gate, True, out_chroma[f], out_bass[f], buffers)
        peak = 0.0
        for c in range(12):
            peak = max(peak, out_chroma[f, c])
        for c in range(12):
            out_chroma[f, c] = out_chroma[f, c] / peak if peak > 1e-9 else 0.0
            out_bass[f, c] = out_bass[f, c] / peak if peak > 1e-9 else 0.0


def chroma_only(spectra, bins, spec):
    n = spectra.shape[0]
    chroma = np.empty((n, 12), np.float32)
    bass = np.empty((n, 12), np.float32)
    decay = float(np.exp(-1.0 / (spec.chroma_tuning_seconds * spec.frame_rate)))
    _chroma_loop(spectra, bins, spec.sample_rate / spec.n_fft, decay, spec.chroma_compression,
                 spec.chroma_tonality_gate, np.zeros(spectra.shape[1], np.float32),
                 fresh_tuning_state(), chroma, bass)
    return chroma, bass
