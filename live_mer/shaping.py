"""Shaping values for performers: asymmetric attack/release smoothing and label hold with hysteresis.

Both work in wall-clock/stream time (seconds), not in "per update" factors, so the same settings
behave the same at 2 Hz model hops and at a 60 Hz output rate.
"""

from __future__ import annotations

import math
from dataclasses import dataclass


@dataclass(frozen=True)
class Smoothing:
    """Attack (rising) and release (falling) time constants in milliseconds; 0 = follow instantly."""

    attack_ms: float = 0.0
    release_ms: float = 0.0

    def __post_init__(self):
        for name in ("attack_ms", "release_ms"):
            v = getattr(self, name)
            if not (isinstance(v, (int, float)) and math.isfinite(v) and 0 <= v <= 600_000):
                raise ValueError(f"{name} must be 0..600000 ms, got {v!r}")


class AttackRelease:
    """One-pole follower with separate rise and fall time constants.

    After a step of the target, the output covers 63 % of the step in ``attack_ms`` (rising) or
    ``release_ms`` (falling), like an envelope follower on a lighting desk.
    """

    def __init__(self, smoothing: Smoothing = Smoothing()):
        self.smoothing = smoothing
        self.value: float | None = None

    def update(self, target: float, dt: float) -> float:
        """Move towards ``target`` over ``dt`` seconds; returns the new value."""
        if self.value is None or not math.isfinite(self.value):
            self.value = float(target)
            return self.value
        tau_ms = self.smoothing.attack_ms if target > self.value else self.smoothing.release_ms
        if tau_ms <= 0 or dt <= 0:
            alpha = 1.0 if tau_ms <= 0 else 0.0
        else:
            alpha = 1.0 - math.exp(-dt * 1000.0 / tau_ms)
        self.value += alpha * (float(target) - self.value)
        return self.value


class LabelHold:
    """Keeps a label until a challenger has won for ``hold_ms`` by at least ``hysteresis`` in score.

    Feed the current candidate label with its score (a probability or confidence in [0, 1]) and the
    score the *held* label has now (0 if it is no longer offered). Flicker between two close labels
    is suppressed; a clear change goes through after ``hold_ms``.
    """

    def __init__(self, hold_ms: float = 0.0, hysteresis: float = 0.0):
        if not (0 <= hold_ms <= 600_000) or not (0 <= hysteresis <= 1):
            raise ValueError(f"hold_ms must be 0..600000 and hysteresis 0..1, got {hold_ms}, {hysteresis}")
        self.hold_ms = hold_ms
        self.hysteresis = hysteresis
        self.label: str | None = None
        self._challenger: str | None = None
        self._since = 0.0

    def update(self, candidate: str, score: float, held_score: float, now: float) -> str:
        """Offer ``candidate`` (with ``score``) at time ``now`` (seconds); returns the label to show."""
        if self.label is None:
            self.label = candidate
            return candidate
        if candidate == self.label or score < held_score + self.hysteresis:
            self._challenger = None
            return self.label
        if candidate != self._challenger:
            self._challenger, self._since = candidate, now
        if (now - self._since) * 1000.0 >= self.hold_ms:
            self.label, self._challenger = candidate, None
        return self.label
