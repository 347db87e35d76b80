"""Configuration: one TOML file, validated strictly; command-line flags override it.

An unknown section or key, or a value of the wrong type or range, is a :class:`ConfigError` that names
the key and what is allowed. ``live-mer config --example`` prints :data:`EXAMPLE`, which documents every
key; the tests load it back.
"""

from __future__ import annotations

import ipaddress
import tomllib
from dataclasses import dataclass, field, fields, replace
from pathlib import Path
from types import MappingProxyType
from typing import Mapping

from .analyzer import MAX_SMOOTHING_S
from .model import DEFAULT_MODEL, PROVIDER_CHOICES
from .osc import DEFAULT_PREFIX, DestinationConfig, DestinationError, check_prefix, parse_destination, repeated
from .outputs import DEFAULT_SHAPES, LABEL_OUTPUTS, OUTPUTS, OutputSettings, OutputShape, shape_keys


class ConfigError(ValueError):
    """A configuration file or value that is not valid; the message names the key."""


# the keys that command-line flags set (listen's and the monitor's), for errors about a flag's value
FLAG_OF_KEY = {"source.samplerate": "--samplerate", "source.channels": "--channels", "analysis.smoothing_s":
               "--smoothing", "osc.prefix": "--prefix", "record.path": "--record", "control.port": "--control",
               "preset": "--preset"}


def named_as_flag(exc: ConfigError) -> ConfigError:
    """An error about a value a flag set, named as the flag: ``record.path = 'x.txt' is not allowed: ...``
    -> ``--record 'x.txt' is not allowed: ...``."""
    text = str(exc)
    for key, flag in FLAG_OF_KEY.items():
        if text.startswith(key + " = "):
            return ConfigError(f"{flag} {text[len(key) + 3:]}")
        if text.startswith(key + ":") or text.startswith(key + " "):
            return ConfigError(flag + text[len(key):])
    return exc


def check_destination(text: str, key: str) -> None:
    """A quick-form destination ``HOST:PORT``; ``key`` names where it came from (``--osc`` or the file's)."""
    try:
        parse_destination(text)
    except DestinationError as exc:
        raise ConfigError(f"{key}: {exc}") from None


def _is_loopback(host: str) -> bool:
    """This machine by a loopback name or address (or 0.0.0.0 / ::, which bind or reach it too)."""
    if host == "localhost":
        return True
    try:
        ip = ipaddress.ip_address(host)
    except ValueError:
        return False
    return ip.is_loopback or ip.is_unspecified


@dataclass(frozen=True)
class SourceConfig:
    device: str = ""  # name substring or index; "" = the system default input
    file: str = ""  # play this file in real time instead of a device
    loop: bool = False  # with file: start again at the end
    demo: bool = False  # play the built-in demo piece
    samplerate: int = 0  # 0 = the device's default rate
    channels: int = 0  # 0 = min(2, the device's input channels); mixed to mono
    blocksize: int = 0  # PortAudio block size in frames; 0 = let PortAudio choose (at most MAX_BLOCKSIZE)


@dataclass(frozen=True)
class ModelConfig:
    name: str = DEFAULT_MODEL  # a name in models/ or a path to an .onnx file with its .json card
    provider: str = "auto"  # auto | cpu | cuda
    threads: int = 1  # onnxruntime intra-op threads


MAX_BLOCKSIZE = 65536  # frames: 1.4 s at 48 kHz, longer than any sound card needs; every estimate waits for a block
HOP_ALLOWED = ("0 (the model's own hop) or seconds from one feature frame to the model's window (0.0233..5.99 s "
               "for the shipped model)")


def hop_plausible(hop_s: float) -> bool:
    """A hop worth trying before the model is known (``analyzer.hop_frames`` checks it against the model:
    one feature frame .. its window)."""
    return hop_s == 0 or 0.02 <= hop_s <= 30  # NaN fails


@dataclass(frozen=True)
class AnalysisConfig:
    smoothing_s: float = 0.0  # one-pole smoothing of the estimates themselves (every sink); OSC shaping comes on top
    max_backlog_s: float = 1.0  # drop older audio when the analyzer falls this far behind
    hop_s: float = 0.0  # seconds between estimates; 0 = the model's own hop (0.51 s for the shipped one)


@dataclass(frozen=True)
class OscConfig:
    prefix: str = DEFAULT_PREFIX
    destinations: tuple[str, ...] = ("127.0.0.1:9000",)  # simple form: per-hop bundles of everything
    destination: tuple[DestinationConfig, ...] = ()  # detailed form: [[osc.destination]] tables

    def all_destinations(self) -> tuple[DestinationConfig, ...]:
        return tuple(DestinationConfig.parse(d) for d in self.destinations) + self.destination


@dataclass(frozen=True)
class ControlConfig:
    enabled: bool = False
    host: str = "127.0.0.1"  # loopback only unless you mean it
    port: int = 9001


@dataclass(frozen=True)
class RecordConfig:
    path: str = ""  # .csv or .jsonl; "" = no recording


@dataclass(frozen=True)
class Config:
    source: SourceConfig = field(default_factory=SourceConfig)
    model: ModelConfig = field(default_factory=ModelConfig)
    analysis: AnalysisConfig = field(default_factory=AnalysisConfig)
    osc: OscConfig = field(default_factory=OscConfig)
    outputs: OutputSettings = field(default_factory=OutputSettings)
    presets: Mapping[str, OutputSettings] = field(default_factory=lambda: MappingProxyType({}))
    preset: str = ""  # the preset active at start
    control: ControlConfig = field(default_factory=ControlConfig)
    record: RecordConfig = field(default_factory=RecordConfig)

    def validate(self) -> "Config":
        def bad(key: str, value, allowed: str):
            raise ConfigError(f"{key} = {value!r} is not allowed: {allowed}")

        s, m, a, o = self.source, self.model, self.analysis, self.osc
        if s.samplerate and not 8000 <= s.samplerate <= 192000:
            bad("source.samplerate", s.samplerate, "0 (device default) or 8000..192000")
        if not 0 <= s.channels <= 64:
            bad("source.channels", s.channels, "0 (automatic) or 1..64")
        if not 0 <= s.blocksize <= MAX_BLOCKSIZE:
            bad("source.blocksize", s.blocksize, f"0 (automatic) or 1..{MAX_BLOCKSIZE} frames")
        if sum(bool(x) for x in (s.device, s.file, s.demo)) > 1:
            raise ConfigError("source: choose at most one of source.device, source.file, source.demo")
        if m.provider not in PROVIDER_CHOICES:
            bad("model.provider", m.provider, f"one of {', '.join(PROVIDER_CHOICES)}")
        if not 1 <= m.threads <= 64:
            bad("model.threads", m.threads, "1..64")
        if not 0 <= a.smoothing_s <= MAX_SMOOTHING_S:
            bad("analysis.smoothing_s", a.smoothing_s, f"0..{MAX_SMOOTHING_S:g} seconds")
        if not 0.1 <= a.max_backlog_s <= 30:
            bad("analysis.max_backlog_s", a.max_backlog_s, "0.1..30 seconds")
        if not hop_plausible(a.hop_s):
            bad("analysis.hop_s", a.hop_s, HOP_ALLOWED + "; `config --check` checks it against the model")
        try:
            check_prefix(o.prefix)
        except ValueError as exc:
            raise ConfigError(f"osc.prefix: {exc}") from None
        for d in o.destinations:
            check_destination(d, "osc.destinations")
        if self.preset and self.preset not in self.presets:
            bad("preset", self.preset, f"one of the [presets.*] names: {', '.join(self.presets) or 'none defined'}")
        c = self.control
        if not 0 < c.port < 65536:
            bad("control.port", c.port, "1..65535")
        named = [("osc.destinations", DestinationConfig.parse(d)) for d in o.destinations]
        named += [(f"osc.destination[{i}]", d) for i, d in enumerate(o.destination)]
        if twice := repeated([d for _, d in named]):
            (first, _), (key, d) = named[twice[0]], named[twice[1]]
            which = (f"{key} lists {d.label} twice" if first == key else
                     f"{first} and {key} are the same destination, {d.label} with the same settings")
            raise ConfigError(f"{which} (--osc on the command line sets osc.destinations): every bundle would "
                              "arrive there twice; remove one")
        if c.enabled:
            for key, d in named:
                if d.port == c.port and (d.host == c.host or (_is_loopback(d.host) and _is_loopback(c.host))):
                    raise ConfigError(f"{key} {d.label} is the control port (control.host {c.host!r}, control.port "
                                      f"{c.port}; --osc, --control on the command line): what is sent there would "
                                      "arrive as control messages; give one of them another port")
        if self.record.path and Path(self.record.path).suffix.lower() not in (".csv", ".jsonl"):
            bad("record.path", self.record.path, "a file name ending in .csv or .jsonl")
        return self

    def active_outputs(self) -> OutputSettings:
        """The output settings in force at start: the chosen preset, or the [outputs] section."""
        return self.presets[self.preset] if self.preset else self.outputs


def _value(key: str, value, default):
    """Check ``value`` against the type of ``default``; returns the converted value."""
    if isinstance(default, tuple):
        if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
            raise ConfigError(f"{key} must be a list of strings, got {value!r}")
        return tuple(value)
    if isinstance(default, bool):
        if not isinstance(value, bool):
            raise ConfigError(f"{key} must be true or false, got {value!r}")
        return value
    if isinstance(default, float):
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise ConfigError(f"{key} must be a number, got {value!r}")
        return float(value)
    if isinstance(default, int):
        if isinstance(value, bool) or not isinstance(value, int):
            raise ConfigError(f"{key} must be an integer, got {value!r}")
        return value
    if isinstance(default, str):
        if key.endswith("device") and isinstance(value, int) and not isinstance(value, bool):
            return str(value)  # a device index may be written as a number
        if not isinstance(value, str):
            raise ConfigError(f"{key} must be a string, got {value!r}")
        return value
    raise ConfigError(f"{key}: unsupported value {value!r}")


def _table(cls, data, name: str, skip: tuple[str, ...] = (), **defaults):
    if not isinstance(data, dict):
        raise ConfigError(f"[{name}] must be a table")
    known = [f.name for f in fields(cls) if f.name not in skip]
    proto = cls(**defaults)
    values = {}
    for key, value in data.items():
        if key not in known:
            raise ConfigError(f"unknown key '{name}.{key}'; allowed in [{name}]: {', '.join(known)}")
        values[key] = _value(f"{name}.{key}", value, getattr(proto, key))
    try:
        return cls(**{**defaults, **values})
    except (ValueError, DestinationError) as exc:
        raise ConfigError(f"[{name}]: {exc}") from None


def _output_settings(data, name: str, base: OutputSettings, preset: str = "") -> OutputSettings:
    if not isinstance(data, dict):
        raise ConfigError(f"[{name}] must be a table")
    settings = replace(base, preset=preset)
    for key, value in data.items():
        if key == "muted":
            muted = _value(f"{name}.muted", value, ())
            for m in muted:
                if m not in OUTPUTS and m != "all":
                    raise ConfigError(f"{name}.muted: unknown output {m!r}; outputs: {', '.join(OUTPUTS)}, all")
            settings = replace(settings, muted=frozenset(OUTPUTS if "all" in muted else muted))
        elif key in DEFAULT_SHAPES:
            takes = shape_keys(key)
            other = tuple(f.name for f in fields(OutputShape) if f.name not in takes)
            for k in other:
                if isinstance(value, dict) and k in value:
                    kind = "a label" if key in LABEL_OUTPUTS else "a value"
                    raise ConfigError(f"{name}.{key}.{k}: {key} is {kind}; it takes {'/'.join(takes)} only")
            shape = _table(OutputShape, value, f"{name}.{key}", skip=other, **settings.shape(key).__dict__)
            settings = settings.with_shape(key, **shape.__dict__)
        else:
            raise ConfigError(f"unknown key '{name}.{key}'; allowed in [{name}]: muted, "
                              f"{', '.join(DEFAULT_SHAPES)}")
    return settings


def from_dict(data: dict) -> Config:
    simple = {"source": SourceConfig, "model": ModelConfig, "analysis": AnalysisConfig,
              "control": ControlConfig, "record": RecordConfig}
    allowed = [*simple, "osc", "outputs", "presets", "preset"]
    parts: dict = {}
    for name, value in data.items():
        if name not in allowed:
            raise ConfigError(f"unknown section or key [{name}]; allowed: {', '.join(allowed)}")
        if name in simple:
            parts[name] = _table(simple[name], value, name)
        elif name == "preset":
            parts["preset"] = _value("preset", value, "")
    if "osc" in data:
        osc = dict(data["osc"]) if isinstance(data["osc"], dict) else None
        if osc is None:
            raise ConfigError("[osc] must be a table")
        tables = osc.pop("destination", [])
        if not isinstance(tables, list):
            raise ConfigError("osc.destination must be an array of tables: [[osc.destination]]")
        if tables and "destinations" not in osc:  # the tables replace the default quick-form destination
            osc["destinations"] = []
        parts["osc"] = replace(_table(OscConfig, osc, "osc", skip=("destination",)),
                               destination=tuple(_table(DestinationConfig, t, f"osc.destination[{i}]",
                                                        host="127.0.0.1", port=9000)
                                                 for i, t in enumerate(tables)))
    outputs = _output_settings(data.get("outputs", {}), "outputs", OutputSettings())
    parts["outputs"] = outputs
    presets = data.get("presets", {})
    if not isinstance(presets, dict):
        raise ConfigError("[presets] must be a table of [presets.<name>] tables")
    parts["presets"] = MappingProxyType({p: _output_settings(v, f"presets.{p}", outputs, preset=p)
                                         for p, v in presets.items()})
    return Config(**parts).validate()


def _read_text(path: Path) -> str:
    """The file as text: UTF-8, with or without the byte-order mark Windows editors write."""
    try:
        raw = path.read_bytes()
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read ({exc.strerror})") from None
    if raw.startswith((b"\xff\xfe", b"\xfe\xff")):
        raise ConfigError(f"{path}: saved as UTF-16; TOML files are UTF-8 (in Notepad: Save as, Encoding UTF-8)")
    try:
        return raw.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        line = raw[:exc.start].count(b"\n") + 1
        raise ConfigError(f"{path}: not UTF-8 text (byte 0x{raw[exc.start]:02x} on line {line}); save it as "
                          "UTF-8") from None


def load(path: str | Path) -> Config:
    """Read and validate a TOML configuration file. Relative paths in it (``source.file``,
    ``record.path``, a ``model.name`` that is a path) are relative to the file's folder, so the same
    file works from any working directory (a systemd service, a start-up script)."""
    path = Path(path)
    try:
        data = tomllib.loads(_read_text(path))
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{path}: not valid TOML ({exc})") from None
    try:
        cfg = from_dict(data)
    except ConfigError as exc:
        raise ConfigError(f"{path}: {exc}") from None
    here = path.absolute().parent

    def beside(value: str) -> str:
        if not value:
            return value
        given = Path(value).expanduser()
        return str(given if given.is_absolute() else here / given)

    model = cfg.model.name
    if "/" in model or "\\" in model or model.endswith((".onnx", ".json")):
        cfg = replace(cfg, model=replace(cfg.model, name=beside(model)))
    return replace(cfg, source=replace(cfg.source, file=beside(cfg.source.file)),
                   record=replace(cfg.record, path=beside(cfg.record.path)))


def override(cfg: Config, section: str, **values) -> Config:
    """A copy of ``cfg`` with the non-None ``values`` set in ``section`` (used for command-line flags)."""
    values = {k: v for k, v in values.items() if v is not None}
    return replace(cfg, **{section: replace(getattr(cfg, section), **values)}).validate() if values else cfg


EXAMPLE = f"""\
# live_mer configuration. Every key is optional; command-line flags override this file.

preset = ""          # the preset active at start (one of the [presets.*] below); "" = [outputs] as written

[source]
device = ""          # input device: part of its name (see `live-mer devices`) or its index; "" = default
file = ""            # or: play this audio file in real time
loop = false         # with file: start again at the end (an installation playing a recording)
demo = false         # or: play the built-in demo piece
samplerate = 0       # 0 = the device's default; 8000..192000
channels = 0         # 0 = up to 2 of the device's channels; all channels are mixed to mono
blocksize = 0        # PortAudio block size in frames; 0 = automatic (lowest latency); at most {MAX_BLOCKSIZE}

[model]
name = "{DEFAULT_MODEL}"   # a model in models/, or a path to an .onnx file beside its .json card
provider = "auto"    # auto | cpu | cuda (cuda needs onnxruntime-gpu, see README)
threads = 1          # onnxruntime threads; 1 leaves the other cores to your visuals

[analysis]
smoothing_s = 0.0    # smoothing of the estimates (terminal, recording, OSC), 0..60 s; [outputs] shapes OSC further
max_backlog_s = 1.0  # if the computer falls this far behind, skip old audio to stay live
hop_s = 0.0          # seconds between estimates: 0 = the model's (0.51 s); 0.1: level ~4x, chords ~2x sooner

[osc]
prefix = "/mer"
destinations = ["127.0.0.1:9000"]   # quick form: HOST:PORT, one bundle per analysis hop, every output

# Detailed form: as many [[osc.destination]] tables as you like. With tables and no `destinations` line,
# only the tables are sent to (the default 127.0.0.1:9000 is dropped); --osc on the command line
# replaces both.
# [[osc.destination]]
# host = "192.168.1.255"   # unicast, broadcast (the subnet's: x.x.x.255 on a /24) or multicast (224-239.x.x.x)
# port = 7000
# rate_hz = 60.0           # 0 = one bundle per hop; 1..60 = this rate, values smoothed between hops
# bundle = true            # false = plain messages (one datagram each), for receivers without bundles
# layout = "separate"      # "separate" messages, or "array": one /mer/frame message with every value
# unipolar = ["valence", "arousal", "level"]   # map these to 0..1 (level: -60..0 dBFS)
# offset_ms = 80.0         # > 0 delays this destination (match a lagging video chain)
# outputs = ["va", "quadrant", "chord", "key", "level", "onset"]   # default: all

# Per-output shaping: attack/release in ms for values; hold (ms) + hysteresis for labels (chord, key); quadrant
# takes both. A key an output does not take is an error.
[outputs]
muted = []           # outputs not sent: va valence arousal quadrant moods tags chord key level onset status

[outputs.valence]
attack_ms = 300.0
release_ms = 600.0

[outputs.arousal]
attack_ms = 200.0
release_ms = 600.0

[outputs.quadrant]
attack_ms = 300.0    # the four probabilities
release_ms = 600.0
hold_ms = 1500.0     # the label changes only after a challenger has led this long...
hysteresis = 0.1     # ...by at least this much probability

[outputs.moods]
attack_ms = 300.0
release_ms = 800.0

[outputs.tags]
attack_ms = 300.0
release_ms = 800.0

[outputs.chord]
hold_ms = 150.0
hysteresis = 0.05

[outputs.key]
hold_ms = 2000.0
hysteresis = 0.05

[outputs.level]
attack_ms = 10.0
release_ms = 300.0

[outputs.onset]
attack_ms = 0.0
release_ms = 150.0

# Presets: named changes to [outputs], switched with `preset = "name"`, --preset or the control port.
[presets.club.valence]
attack_ms = 100.0
release_ms = 200.0

[presets.club.arousal]
attack_ms = 50.0
release_ms = 200.0

[presets.ambient.valence]
attack_ms = 2000.0
release_ms = 4000.0

[presets.ambient.arousal]
attack_ms = 2000.0
release_ms = 4000.0

[presets.ambient]
muted = ["onset"]

[control]
enabled = false      # an OSC control port: presets, smoothing, mute, query (see README)
host = "127.0.0.1"   # loopback only; use "0.0.0.0" to accept control from the network
port = 9001

[record]
path = ""            # write every estimate to this .csv or .jsonl file while streaming
"""
