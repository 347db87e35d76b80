"""Model runtime: load an ONNX student and its JSON card, verify them, run windows.

A card that does not match the runtime's own feature code, a card value of the wrong type or out of range
(a sample rate of 0, a NaN frequency, a window of 22.7 frames), a file whose sha256 differs from the card, or
an ONNX graph whose inputs/outputs differ from what the card promises is a load-time :class:`ModelError` that
names what differs, never a crash or a silent mismatch at run time.
"""

from __future__ import annotations

import hashlib
import json
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .features import FeatureSpec, SpecValueError, is_finite_number, is_integer

DEFAULT_MODEL = "live_mer_student"
HEAD_KINDS = ("regression", "softmax", "shares", "tags")
PROVIDERS = {"cpu": "CPUExecutionProvider", "cuda": "CUDAExecutionProvider"}
PROBE_TOLERANCE = 1e-3  # how far a probability may stray from [0, 1] (or a softmax's sum from 1) in float32
PROVIDER_CHOICES = ("auto", *PROVIDERS)  # what users may ask for: auto picks CUDA when it is usable


class ModelError(RuntimeError):
    """A model or its card is missing, corrupt, or does not match this runtime."""


@dataclass(frozen=True)
class HeadSpec:
    """One output of the model: ``kind`` is regression (values in ``range``), softmax, shares (GEMS: the share
    of listeners ticking each category) or tags (independent probabilities that each tag applies)."""

    name: str
    kind: str
    names: tuple[str, ...]
    range: tuple[float, float] = (0.0, 1.0)


@dataclass(frozen=True)
class ModelCard:
    """The validated, typed part of a model card; ``raw`` keeps the whole JSON document."""

    name: str
    spec: FeatureSpec
    window_frames: int
    hop_frames: int
    input_name: str
    heads: tuple[HeadSpec, ...]
    sha256: str
    raw: dict

    @property
    def window_seconds(self) -> float:
        return self.window_frames / self.spec.frame_rate

    @property
    def hop_seconds(self) -> float:
        return self.hop_frames / self.spec.frame_rate

    def head(self, name: str) -> HeadSpec:
        for h in self.heads:
            if h.name == name:
                return h
        raise KeyError(name)


def sha256_of(path: str | os.PathLike) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def models_dir() -> Path:
    """Where named models live: ``$LIVE_MER_MODELS``; else the copy of ``models/`` installed inside the
    package (a wheel or a plain ``pip install .``: ``live_mer/shipped_models``, see pyproject.toml); else the
    repository's ``models/`` folder (a checkout or an editable install)."""
    env = os.environ.get("LIVE_MER_MODELS")
    if env:
        return Path(env)
    here = Path(__file__).resolve().parent
    installed = here / "shipped_models"
    return installed if installed.is_dir() else here.parent / "models"


def resolve(model: str | os.PathLike) -> tuple[Path, Path]:
    """Map a model name, ``.onnx`` path or ``.json`` card path to (onnx path, card path)."""
    p = Path(model)
    base = p.with_suffix("") if p.suffix in (".onnx", ".json") else p  # "student_v1.2" keeps its ".2"
    if p.suffix not in (".onnx", ".json") and p.parent == Path("."):
        base = models_dir() / str(model)
    onnx_path, card_path = base.with_name(base.name + ".onnx"), base.with_name(base.name + ".json")
    missing = [str(x) for x in (onnx_path, card_path) if not x.is_file()]
    if missing:
        where = models_dir()
        available = sorted(x.stem for x in where.glob("*.onnx")) if where.is_dir() else []
        raise ModelError(f"model {str(model)!r}: missing {', '.join(missing)}; models in {where}: "
                         f"{available or 'none'}")
    return onnx_path, card_path


def _twice(items):
    """The first item that appears a second time in ``items``, or None."""
    seen = set()
    for item in items:
        if item in seen:
            return item
        seen.add(item)
    return None


# The card's values outside feature_spec (FeatureSpec checks those): rule -> (test of a value on the whole card,
# what the value must be); parse_card names the field and the value it refuses.
_CARD_RULES = {
    "text": (lambda v, card: isinstance(v, str) and v != "", "a non-empty string"),
    "frames": (lambda v, card: is_integer(v) and v > 0, "a positive integer"),
    "hop_frames": (lambda v, card: is_integer(v) and 0 < v <= card["window"]["frames"],
                   "a positive integer, at most window.frames"),
    "names": (lambda v, card: isinstance(v, list) and len(v) > 0 and all(isinstance(n, str) and n for n in v),
              "a list of names, each a non-empty string"),
    "range": (lambda v, card: isinstance(v, list) and len(v) == 2 and all(map(is_finite_number, v)) and v[0] < v[1],
              "[low, high], two finite numbers, low below high"),
}


def parse_card(data: dict, source: str = "card") -> ModelCard:
    """Validate a card document against this runtime; raises :class:`ModelError` naming the problem."""
    def need(obj: dict, key: str, where: str, rule: str | None = None):
        if key not in obj:
            raise ModelError(f"{source}: missing key '{where}{key}'")
        if rule is not None:
            test, what = _CARD_RULES[rule]
            if not test(obj[key], data):
                raise ModelError(f"{source}: {where}{key}: {obj[key]!r} is not allowed ({what})")
        return obj[key]

    spec_data = need(data, "feature_spec", "")
    version = spec_data.get("version") if isinstance(spec_data, dict) else None
    if isinstance(version, bool) or not isinstance(version, int):  # "8" would read "version 8 != runtime 8"
        raise ModelError(f"{source}: feature_spec.version must be an integer, got {version!r} (this runtime's "
                         f"features are version {FeatureSpec.version})")
    if version != FeatureSpec.version:  # checked first: another version may have other fields
        raise ModelError(f"{source}: feature_spec.version {version} != runtime {FeatureSpec.version}: the model was "
                         f"trained on another version of the features; retrain it (scripts/train.py) or use the "
                         f"live_mer release it was made for")
    try:
        spec = FeatureSpec.from_dict(spec_data)
    except SpecValueError as exc:  # a value of the wrong type or out of range: the message starts with its field
        raise ModelError(f"{source}: feature_spec.{exc}") from None
    except (TypeError, ValueError) as exc:
        raise ModelError(f"{source}: feature_spec: {exc}") from None
    try:
        runtime = spec.feature_names()  # what this runtime's feature code computes for that spec
        names = need(data, "feature_names", "")
        if list(names) != runtime:
            diff = [f"column {i}: card {a!r} != runtime {b!r}"
                    for i, (a, b) in enumerate(zip(names, runtime)) if a != b]
            if len(names) != len(runtime):
                diff.insert(0, f"card has {len(names)} feature columns, runtime computes {len(runtime)}")
            raise ModelError(f"{source}: feature layout differs from this runtime's feature code: {diff[:5]}")
        window = need(data, "window", "")
        frames, hop = need(window, "frames", "window.", "frames"), need(window, "hop_frames", "window.", "hop_frames")
        heads = []
        for hname, h in need(data, "outputs", "").items():
            kind = need(h, "kind", f"outputs.{hname}.")
            if kind not in HEAD_KINDS:
                raise ModelError(f"{source}: outputs.{hname}.kind {kind!r} is not one of {HEAD_KINDS}")
            names = tuple(need(h, "names", f"outputs.{hname}.", "names"))
            if (twice := _twice(names)) is not None:  # the results are keyed by name: one value would be lost
                raise ModelError(f"{source}: outputs.{hname}.names lists {twice!r} twice")
            value_range = need(h, "range", f"outputs.{hname}.", "range") if "range" in h else (0.0, 1.0)
            heads.append(HeadSpec(hname, kind, names, tuple(map(float, value_range))))
        va = next((h for h in heads if h.name == "va"), None)
        if va is None or va.kind != "regression" or va.names != ("valence", "arousal"):
            raise ModelError(f"{source}: outputs must include 'va', a regression head with names [valence, arousal]")
        return ModelCard(name=need(data, "name", "", "text"), spec=spec, window_frames=frames, hop_frames=hop,
                         input_name=need(data, "input_name", "", "text") if "input_name" in data else "features",
                         heads=tuple(heads), sha256=need(data, "onnx_sha256", "", "text"), raw=data)
    except (TypeError, ValueError, AttributeError, KeyError) as exc:  # a field of the wrong type or shape
        raise ModelError(f"{source}: malformed card: {type(exc).__name__}: {exc}") from None


def _providers(provider: str) -> list[str]:
    import onnxruntime as ort

    available = ort.get_available_providers()
    if provider == "auto":
        return [p for p in ("CUDAExecutionProvider", "CPUExecutionProvider") if p in available]
    if provider not in PROVIDERS:
        raise ModelError(f"provider {provider!r} is not one of auto, {', '.join(PROVIDERS)}")
    wanted = PROVIDERS[provider]
    if wanted not in available:
        raise ModelError(f"provider {provider!r} needs {wanted}, which this onnxruntime lacks "
                         f"(available: {available}); for CUDA replace onnxruntime by onnxruntime-gpu")
    return [wanted] + (["CPUExecutionProvider"] if wanted != "CPUExecutionProvider" else [])


class StudentModel:
    """A verified ONNX student; :meth:`run` maps feature windows to per-head outputs."""

    def __init__(self, onnx_path: Path, card: ModelCard, provider: str = "auto", threads: int = 1):
        import onnxruntime as ort

        self.path = onnx_path
        self.card = card
        opts = ort.SessionOptions()
        opts.intra_op_num_threads = threads
        opts.inter_op_num_threads = 1
        opts.log_severity_level = 3
        try:
            self._session = ort.InferenceSession(str(onnx_path), sess_options=opts, providers=_providers(provider))
        except ModelError:
            raise
        except Exception as exc:  # onnxruntime raises several private exception types for bad files
            raise ModelError(f"{onnx_path}: onnxruntime cannot load it: {exc}") from None
        self.provider = self._session.get_providers()[0]
        if provider == "cuda" and self.provider != "CUDAExecutionProvider":
            raise ModelError(f"provider 'cuda' was requested but onnxruntime runs on {self.provider}")
        self._check_graph()
        self._outputs = [h.name for h in card.heads]
        self._check_values()

    def _check_graph(self) -> None:
        card, where = self.card, str(self.path)
        inputs = self._session.get_inputs()
        if len(inputs) != 1 or inputs[0].name != card.input_name:
            raise ModelError(f"{where}: inputs {[i.name for i in inputs]} != card input [{card.input_name!r}]")
        shape = inputs[0].shape
        expected = [None, card.window_frames, card.spec.n_features]
        if len(shape) != 3 or any(isinstance(s, int) and s != e for s, e in zip(shape[1:], expected[1:])):
            raise ModelError(f"{where}: input shape {shape} does not match card [batch, {card.window_frames}, "
                             f"{card.spec.n_features}]")
        outputs = {o.name: o.shape for o in self._session.get_outputs()}
        for h in card.heads:
            if h.name not in outputs:
                raise ModelError(f"{where}: card output {h.name!r} is not in the graph (has {sorted(outputs)})")
            last = outputs[h.name][-1]
            if isinstance(last, int) and last != len(h.names):
                raise ModelError(f"{where}: output {h.name!r} has {last} values, card names {len(h.names)}")

    def _check_values(self) -> None:
        """Run the model once on two windows (all zeros, and seeded noise) and refuse it if a head's values
        are not what its kind promises: finite, and for probabilities in [0, 1] (a softmax's summing to 1).
        A training run that diverged writes NaN or huge weights with a card that matches them; such a model
        loaded, and the analysis turned its NaN into zeros: quadrant Q1 at 0 %, every mood 0, no warning."""
        card = self.card
        shape = (card.window_frames, card.spec.n_features)
        probe = np.stack([np.zeros(shape, np.float32),
                          np.random.default_rng(0).standard_normal(shape).astype(np.float32)])
        try:
            values = self.run(probe)
        except Exception as exc:  # onnxruntime's own exception types
            raise ModelError(f"{self.path}: onnxruntime cannot run it: {exc}") from None
        for h in card.heads:
            v = np.asarray(values[h.name], dtype=np.float64)
            if not np.isfinite(v).all():
                problem = "values that are not finite (NaN or Inf)"
            elif h.kind != "regression" and (v.min() < -PROBE_TOLERANCE or v.max() > 1.0 + PROBE_TOLERANCE):
                problem = f"values from {v.min():.4g} to {v.max():.4g} (a {h.kind} head's are probabilities, 0 to 1)"
            elif h.kind == "softmax" and np.abs(v.sum(axis=-1) - 1.0).max() > PROBE_TOLERANCE:
                sums = " and ".join(f"{x:.4g}" for x in v.sum(axis=-1))
                problem = f"probabilities that sum to {sums} (a softmax head's sum to 1)"
            else:
                continue
            raise ModelError(f"{self.path}: output {h.name!r} gives {problem} on a probe window: the model is "
                             "broken (e.g. a training run that diverged)")

    def run(self, windows: np.ndarray) -> dict[str, np.ndarray]:
        """Run a batch of windows (batch, window_frames, n_features); returns {head name: (batch, k)}."""
        values = self._session.run(self._outputs, {self.card.input_name: windows})
        return dict(zip(self._outputs, values))


def load_model(model: str | os.PathLike = DEFAULT_MODEL, provider: str = "auto", threads: int = 1) -> StudentModel:
    """Load and verify ``model`` (a name in :func:`models_dir`, or a path to its .onnx or .json).

    Raises
    ------
    ModelError
        If a file is missing or corrupt, the sha256 differs from the card, the card's feature spec
        differs from this runtime's feature code or leaves a field out, a card value has the wrong type or
        is out of range, the graph does not match the card, or the model's outputs on a probe window are
        not what its heads promise (NaN, probabilities outside 0..1).
    """
    onnx_path, card_path = resolve(model)

    def unique_keys(pairs: list) -> dict:  # json keeps the last of two equal keys: a second "tags" head hid the first
        if (twice := _twice(key for key, _ in pairs)) is not None:
            raise ModelError(f"{card_path}: the key {twice!r} appears twice in one object")
        return dict(pairs)

    try:
        data = json.loads(card_path.read_text(), object_pairs_hook=unique_keys)
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ModelError(f"{card_path}: not a readable JSON model card: {exc}") from None
    if not isinstance(data, dict):
        raise ModelError(f"{card_path}: a model card must be a JSON object")
    card = parse_card(data, str(card_path))
    actual = sha256_of(onnx_path)
    if actual != card.sha256:
        raise ModelError(f"{onnx_path}: sha256 {actual} does not match its card {card_path} "
                         f"({card.sha256}): the file is corrupt or the card belongs to another model")
    return StudentModel(onnx_path, card, provider=provider, threads=threads)
