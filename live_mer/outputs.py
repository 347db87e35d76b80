"""The performer-facing outputs: names, shaping settings, presets, and the per-destination shaper.

Output names (used in configuration, control messages and destination ``outputs`` lists):

========== ======= ==============================================================
name       shaping what
========== ======= ==============================================================
va         values  valence and arousal together (shaped as ``valence`` and ``arousal``)
valence    values  valence
arousal    values  arousal
quadrant   label   quadrant label + the four probabilities (values)
moods      values  the GEMS category shares
tags       values  the AllMusic mood tags the model supports (probability that each applies)
chord      label   chord label + confidence
key        label   key name + Camelot + confidence
level      values  loudness in dBFS
onset      values  onset strength
status     none    overflows, clipping, input peak, processing latency, model, provider
========== ======= ==============================================================

"values" outputs follow their targets with attack/release smoothing (``attack_ms``/``release_ms``);
"label" outputs hold a label until a challenger wins for ``hold_ms`` by ``hysteresis`` (over the held
quadrant's probability; a chord or key estimate carries only the winner's confidence, so there the
challenger's confidence must reach ``hysteresis``); a held chord or key
goes out with what the estimates last said about it (its confidence, extended chord, Open Key), and the
key-change event follows the held key. ``quadrant`` takes both: its probabilities are smoothed (and then
scaled to sum to 1), its label held. :func:`shape_keys` says which keys an output takes; the configuration
and the control port refuse the others.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field, replace
from types import MappingProxyType
from typing import Mapping

from .estimate import Estimate
from .shaping import AttackRelease, LabelHold, Smoothing

LABEL_OUTPUTS = ("quadrant", "chord", "key")  # held: hold_ms, hysteresis
SMOOTHED_OUTPUTS = ("valence", "arousal", "quadrant", "moods", "tags", "level", "onset")  # attack_ms, release_ms
OUTPUTS = ("va", "valence", "arousal", "quadrant", "moods", "tags", "chord", "key", "level", "onset", "status")
LEVEL_FLOOR_DB = -60.0  # "unipolar" level maps [-60, 0] dBFS to [0, 1]; the monitor's meter and the plot start here


@dataclass(frozen=True)
class OutputShape:
    """Shaping of one output; only the fields :func:`shape_keys` names for it are used."""

    attack_ms: float = 0.0
    release_ms: float = 0.0
    hold_ms: float = 0.0
    hysteresis: float = 0.0

    def __post_init__(self):
        Smoothing(self.attack_ms, self.release_ms)  # validates
        LabelHold(self.hold_ms, self.hysteresis)
        for name in ("attack_ms", "release_ms", "hold_ms", "hysteresis"):
            object.__setattr__(self, name, float(getattr(self, name)))


def shape_keys(name: str) -> tuple[str, ...]:
    """The shaping keys output ``name`` honours: attack/release if smoothed, hold/hysteresis if held."""
    return (("attack_ms", "release_ms") if name in SMOOTHED_OUTPUTS else ()) + \
        (("hold_ms", "hysteresis") if name in LABEL_OUTPUTS else ())


NO_SHAPING = OutputShape()  # an output without settings: followed instantly, never held
DEFAULT_SHAPES: Mapping[str, OutputShape] = MappingProxyType({
    "valence": OutputShape(attack_ms=300, release_ms=600),
    "arousal": OutputShape(attack_ms=200, release_ms=600),
    "quadrant": OutputShape(attack_ms=300, release_ms=600, hold_ms=1500, hysteresis=0.1),
    "moods": OutputShape(attack_ms=300, release_ms=800),
    "tags": OutputShape(attack_ms=300, release_ms=800),
    "chord": OutputShape(hold_ms=150, hysteresis=0.05),
    "key": OutputShape(hold_ms=2000, hysteresis=0.05),
    "level": OutputShape(attack_ms=10, release_ms=300),
    "onset": OutputShape(attack_ms=0, release_ms=150),
})


@dataclass(frozen=True)
class OutputSettings:
    """Shaping of every output plus the muted set: swapped atomically by presets and the control port."""

    shapes: Mapping[str, OutputShape] = field(default_factory=lambda: DEFAULT_SHAPES)
    muted: frozenset[str] = frozenset()
    preset: str = ""

    def shape(self, name: str) -> OutputShape:
        return self.shapes.get(name, NO_SHAPING)

    def with_shape(self, name: str, **changes) -> "OutputSettings":
        shapes = dict(self.shapes)
        shapes[name] = replace(self.shape(name), **changes)
        return replace(self, shapes=MappingProxyType(shapes))

    def with_mute(self, name: str, muted: bool) -> "OutputSettings":
        names = set(OUTPUTS) if name == "all" else {name}
        return replace(self, muted=frozenset(self.muted - names if not muted else self.muted | names))


def check_output(name: str, allowed=OUTPUTS) -> str:
    if name not in allowed:
        raise ValueError(f"unknown output {name!r}; outputs: {', '.join(allowed)}")
    return name


@dataclass(frozen=True)
class Frame:
    """Shaped output values at one moment, ready to be encoded by a sink."""

    valence: float
    arousal: float
    quadrant: str
    quadrant_probs: tuple[float, ...]
    moods: tuple[tuple[str, float], ...]
    tags: tuple[tuple[str, float], ...]
    chord: str  # held (see Shaper); its confidence and extended label are those of the held chord
    chord_confidence: float
    chord_ext: str
    chord_ext_confidence: float
    key: str  # held; "" until a key is established
    key_camelot: str
    key_open: str
    key_confidence: float
    key_changed: bool  # the held key differs from the one last sent unmuted (or was first established)
    level_db: float
    onset: float
    estimate: Estimate  # the newest estimate behind this frame (status fields come from it)


class Shaper:
    """Turns a stream of estimates into shaped frames at any rate (one per destination)."""

    def __init__(self, settings: OutputSettings):
        self.settings = settings
        self._followers: dict[str, AttackRelease] = {}
        self._holds: dict[str, LabelHold] = {}
        self._last_t: float | None = None
        # What the estimates last said about each chord and key label while naming it, so a held label
        # goes out with its own confidence (and extended chord, Open Key), not the challenger's.
        self._chords: dict[str, tuple[float, str, float]] = {}
        self._keys: dict[str, tuple[str, float]] = {}
        self._key = ""  # the held key last sent (not muted)

    def _follow(self, key: str, output: str, target: float, dt: float) -> float:
        f = self._followers.get(key)
        shape = self.settings.shape(output)
        if f is None:
            f = self._followers[key] = AttackRelease(Smoothing(shape.attack_ms, shape.release_ms))
        elif (f.smoothing.attack_ms, f.smoothing.release_ms) != (shape.attack_ms, shape.release_ms):
            f.smoothing = Smoothing(shape.attack_ms, shape.release_ms)
        return f.update(target if math.isfinite(target) else 0.0, dt)

    def _hold(self, output: str, candidate: str, score: float, held_score: float, now: float) -> str:
        h = self._holds.get(output)
        shape = self.settings.shape(output)
        if h is None:
            h = self._holds[output] = LabelHold(shape.hold_ms, shape.hysteresis)
        h.hold_ms, h.hysteresis = shape.hold_ms, shape.hysteresis
        return h.update(candidate, score, held_score, now)

    def step(self, est: Estimate, now: float) -> Frame:
        """Shape ``est`` (the newest target) at time ``now`` (seconds, monotonic)."""
        dt = 0.0 if self._last_t is None else max(0.0, now - self._last_t)
        self._last_t = now
        valence = self._follow("valence", "valence", est.valence, dt)
        arousal = self._follow("arousal", "arousal", est.arousal, dt)
        probs_raw = est.heads.get("quadrant", {})
        probs = tuple(self._follow(f"q.{q}", "quadrant", p, dt) for q, p in probs_raw.items())
        # Attack and release differ, so the smoothed probabilities drift off a sum of 1: scale them back.
        total = sum(probs)
        if total > 0:
            probs = tuple(p / total for p in probs)
        names = list(probs_raw)
        quadrant = est.quadrant
        if names:
            best = max(range(len(probs)), key=probs.__getitem__)
            held = self._holds["quadrant"].label if "quadrant" in self._holds else None
            held_p = probs[names.index(held)] if held in names else 0.0
            quadrant = self._hold("quadrant", names[best], probs[best], held_p, now)
        moods = tuple((n, self._follow(f"m.{n}", "moods", v, dt)) for n, v in est.heads.get("gems", {}).items())
        tags = tuple((n, self._follow(f"t.{n}", "tags", v, dt)) for n, v in est.heads.get("tags", {}).items())
        held_chord = self._holds["chord"].label if "chord" in self._holds else None
        self._chords[est.chord] = (est.chord_confidence, est.chord_ext, est.chord_ext_confidence)
        chord = self._hold("chord", est.chord, est.chord_confidence,
                           est.chord_confidence if held_chord == est.chord else 0.0, now)
        chord_confidence, chord_ext, chord_ext_confidence = self._chords[chord]
        # The key name and its Camelot code are held together as one label.
        label = f"{est.key}|{est.key_camelot}"
        if est.key:
            self._keys[label] = (est.key_open, est.key_confidence)
        held_key = self._hold("key", label, est.key_confidence, 0.0, now) if est.key else "|"
        key, camelot = held_key.split("|")
        key_open, key_confidence = self._keys.get(held_key, ("", 0.0))
        key_changed = bool(key) and key != self._key
        if "key" not in self.settings.muted:  # a key that changed while muted is announced when it is unmuted
            self._key = key
        return Frame(valence=valence, arousal=arousal, quadrant=quadrant, quadrant_probs=probs, moods=moods, tags=tags,
                     chord=chord, chord_confidence=chord_confidence, chord_ext=chord_ext,
                     chord_ext_confidence=chord_ext_confidence, key=key, key_camelot=camelot, key_open=key_open,
                     key_confidence=key_confidence, key_changed=key_changed,
                     level_db=self._follow("level", "level", est.loudness_db, dt),
                     onset=self._follow("onset", "onset", est.onset, dt), estimate=est)
