"""Configuration: one TOML file, validated strictly; command-line flags override it.

An unknown section or key, or a value of the wrong type or range, is a :class:`ConfigError` that names
the key and what is allowed. ``live-mer config --example`` prints :data:`EXAMPLE`.
"""

from __future__ import annotations

import tomllib
from dataclasses import dataclass, field, fields, replace
from pathlib import Path

from .model import DEFAULT_MODEL, PROVIDERS
from .osc import DEFAULT_PREFIX, DestinationError, check_prefix, parse_destination


class ConfigError(ValueError):
    """A configuration file or value that is not valid; the message names the key."""


@dataclass(frozen=True)
class SourceConfig:
    device: str = ""  # name substring or index; "" = the system default input
    file: str = ""  # play this file in real time instead of a device
    demo: bool = False  # play the built-in demo piece
    samplerate: int = 0  # 0 = the device's default rate
    channels: int = 0  # 0 = min(2, the device's input channels); mixed to mono
    blocksize: int = 0  # PortAudio block size in frames; 0 = let PortAudio choose


@dataclass(frozen=True)
class ModelConfig:
    name: str = DEFAULT_MODEL  # a name in models/ or a path to an .onnx file with its .json card
    provider: str = "auto"  # auto | cpu | cuda
    threads: int = 1  # onnxruntime intra-op threads


@dataclass(frozen=True)
class AnalysisConfig:
    smoothing_s: float = 1.0  # time constant of the output smoothing; 0 = off
    max_backlog_s: float = 1.0  # drop older audio when the analyzer falls this far behind


@dataclass(frozen=True)
class OscConfig:
    prefix: str = DEFAULT_PREFIX
    destinations: tuple[str, ...] = ("127.0.0.1:9000",)


@dataclass(frozen=True)
class Config:
    source: SourceConfig = field(default_factory=SourceConfig)
    model: ModelConfig = field(default_factory=ModelConfig)
    analysis: AnalysisConfig = field(default_factory=AnalysisConfig)
    osc: OscConfig = field(default_factory=OscConfig)

    def validate(self) -> "Config":
        def bad(key: str, value, allowed: str):
            raise ConfigError(f"{key} = {value!r} is not allowed: {allowed}")

        s, m, a, o = self.source, self.model, self.analysis, self.osc
        if s.samplerate and not 8000 <= s.samplerate <= 192000:
            bad("source.samplerate", s.samplerate, "0 (device default) or 8000..192000")
        if not 0 <= s.channels <= 64:
            bad("source.channels", s.channels, "0 (automatic) or 1..64")
        if s.blocksize < 0:
            bad("source.blocksize", s.blocksize, ">= 0")
        if sum(bool(x) for x in (s.device, s.file, s.demo)) > 1:
            raise ConfigError("source: choose at most one of source.device, source.file, source.demo")
        if m.provider not in ("auto", *PROVIDERS):
            bad("model.provider", m.provider, f"one of auto, {', '.join(PROVIDERS)}")
        if not 1 <= m.threads <= 64:
            bad("model.threads", m.threads, "1..64")
        if not 0 <= a.smoothing_s <= 60:
            bad("analysis.smoothing_s", a.smoothing_s, "0..60 seconds")
        if not 0.1 <= a.max_backlog_s <= 30:
            bad("analysis.max_backlog_s", a.max_backlog_s, "0.1..30 seconds")
        try:
            check_prefix(o.prefix)
        except ValueError as exc:
            raise ConfigError(f"osc.prefix: {exc}") from None
        for d in o.destinations:
            try:
                parse_destination(d)
            except DestinationError as exc:
                raise ConfigError(f"osc.destinations: {exc}") from None
        return self


_TYPES = {int: "an integer", float: "a number", str: "a string", bool: "true or false"}


def _section(cls, data: dict, name: str):
    if not isinstance(data, dict):
        raise ConfigError(f"[{name}] must be a table")
    known = {f.name: f for f in fields(cls)}
    values = {}
    for key, value in data.items():
        if key not in known:
            raise ConfigError(f"unknown key '{name}.{key}'; allowed in [{name}]: {', '.join(known)}")
        default = getattr(cls(), key)
        if isinstance(default, tuple):
            if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
                raise ConfigError(f"{name}.{key} must be a list of strings, got {value!r}")
            value = tuple(value)
        elif isinstance(default, bool):
            if not isinstance(value, bool):
                raise ConfigError(f"{name}.{key} must be true or false, got {value!r}")
        elif isinstance(default, float):
            if isinstance(value, bool) or not isinstance(value, (int, float)):
                raise ConfigError(f"{name}.{key} must be {_TYPES[float]}, got {value!r}")
            value = float(value)
        elif isinstance(default, int) and (isinstance(value, bool) or not isinstance(value, int)):
            raise ConfigError(f"{name}.{key} must be {_TYPES[int]}, got {value!r}")
        elif isinstance(default, str):
            if key == "device" and isinstance(value, int) and not isinstance(value, bool):
                value = str(value)  # a device index may be written as a number
            elif not isinstance(value, str):
                raise ConfigError(f"{name}.{key} must be {_TYPES[str]}, got {value!r}")
        values[key] = value
    return cls(**values)


def from_dict(data: dict) -> Config:
    classes = {"source": SourceConfig, "model": ModelConfig, "analysis": AnalysisConfig, "osc": OscConfig}
    parts = {}
    for name, value in data.items():
        if name not in classes:
            raise ConfigError(f"unknown section [{name}]; allowed: {', '.join('[' + s + ']' for s in classes)}")
        parts[name] = _section(classes[name], value, name)
    return Config(**parts).validate()


def load(path: str | Path) -> Config:
    """Read and validate a TOML configuration file."""
    path = Path(path)
    try:
        data = tomllib.loads(path.read_text())
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read ({exc.strerror})") from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{path}: not valid TOML ({exc})") from None
    try:
        return from_dict(data)
    except ConfigError as exc:
        raise ConfigError(f"{path}: {exc}") from None


def override(cfg: Config, section: str, **values) -> Config:
    """A copy of ``cfg`` with the non-None ``values`` set in ``section`` (used for command-line flags)."""
    values = {k: v for k, v in values.items() if v is not None}
    return replace(cfg, **{section: replace(getattr(cfg, section), **values)}).validate() if values else cfg


EXAMPLE = f"""\
# live_mer configuration. Every key is optional; command-line flags override this file.

[source]
device = ""          # input device: part of its name (see `live-mer devices`) or its index; "" = default
file = ""            # or: play this audio file in real time
demo = false         # or: play the built-in demo piece
samplerate = 0       # 0 = the device's default; 8000..192000
channels = 0         # 0 = up to 2 of the device's channels; all channels are mixed to mono
blocksize = 0        # PortAudio block size in frames; 0 = automatic (lowest latency)

[model]
name = "{DEFAULT_MODEL}"   # a model in models/, or a path to an .onnx file beside its .json card
provider = "auto"    # auto | cpu | cuda (cuda needs onnxruntime-gpu, see README)
threads = 1          # onnxruntime threads; 1 leaves the other cores to your visuals

[analysis]
smoothing_s = 1.0    # output smoothing time constant in seconds; 0 = raw model output
max_backlog_s = 1.0  # if the computer falls this far behind, skip old audio to stay live

[osc]
prefix = "{DEFAULT_PREFIX}"
destinations = ["127.0.0.1:9000"]   # one or more HOST:PORT; broadcast and multicast addresses work
"""
