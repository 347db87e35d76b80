"""Write students as ONNX + model card.

Used by the training scripts (to ship a model) and by the tests (to build tiny models so the runtime
is tested without the shipped one). Only ``onnx`` is needed, no training framework: the graph is
assembled from numpy weights with ``onnx.helper``.

The architecture written here is the *pooled student*: per-window statistics of the frame features
(mean and standard deviation over the whole window, mean over its most recent part, mean absolute
frame-to-frame change, maximum) -> standardise ->
MLP trunk -> one head per output (tanh regression for valence/arousal, softmax for quadrants,
sigmoid shares for GEMS), optionally several such MLPs (an ensemble of seeds) whose outputs are
averaged. A member may also carry a *frame branch*: a learned embedding of each standardised frame
(one linear layer + ReLU) whose mean and maximum over the window join the statistics before the trunk,
so the trunk sees combinations of features within a frame, not only each feature's statistics.
The window only ever covers past audio, so the student is causal.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Sequence

import numpy as np

from .features import FeatureSpec
from .model import sha256_of

OPSET = 17
ACTIVATIONS = {"tanh": "Tanh", "softmax": "Softmax", "sigmoid": "Sigmoid"}


@dataclass
class FrameBranch:
    """Frames standardised by (``mean``, ``scale``) -> ReLU(frames @ ``w`` + ``b``) -> mean and max over the
    window: ``2 * units`` inputs appended to the standardised statistics. float32 numpy arrays."""

    mean: np.ndarray  # (n_features,)
    scale: np.ndarray  # (n_features,)
    w: np.ndarray  # (n_features, units)
    b: np.ndarray  # (units,)


@dataclass
class PooledStudentWeights:
    """Weights of the pooled student, all float32 numpy arrays.

    ``trunk`` is a list of (W (in, out), b (out,)) layers with ReLU; ``heads`` maps an output name to
    (W, b, activation) with activation one of ``tanh``, ``softmax``, ``sigmoid``.
    """

    mean: np.ndarray  # standardisation of the pooled statistics, shape (len(POOLS) * n_features,)
    scale: np.ndarray
    trunk: list[tuple[np.ndarray, np.ndarray]]
    heads: dict[str, tuple[np.ndarray, np.ndarray, str]]
    recent_frames: int
    branch: FrameBranch | None = None  # the trunk's first layer then takes len(mean) + 2 * units inputs
    extra: dict = field(default_factory=dict)


POOLS = ("mean", "std", "recent_mean", "mean_abs_change", "max")


def pooled_statistics(windows: np.ndarray, recent_frames: int) -> np.ndarray:
    """Numpy twin of the graph's pooling (batch, frames, features) -> (batch, len(POOLS) * features)."""
    w = windows.astype(np.float32)
    return np.concatenate([w.mean(axis=1), np.sqrt(w.var(axis=1) + 1e-6), w[:, -recent_frames:].mean(axis=1),
                           np.abs(np.diff(w, axis=1)).mean(axis=1), w.max(axis=1)], axis=1)


def frame_branch_pools(branch: FrameBranch, windows: np.ndarray) -> np.ndarray:
    """Numpy twin of the graph's frame branch (batch, frames, features) -> (batch, 2 * units): mean, max."""
    e = np.maximum(((windows.astype(np.float32) - branch.mean) / branch.scale) @ branch.w + branch.b, 0.0)
    return np.concatenate([e.mean(axis=1), e.max(axis=1)], axis=1)


def build_pooled_student(weights: PooledStudentWeights | Sequence[PooledStudentWeights], window_frames: int,
                         n_features: int) -> bytes:
    """Serialise the pooled student as an ONNX model (dynamic batch, fixed window and features).

    Several members (the same architecture trained with different seeds) share the pooling; each head's
    output is then the mean of the members' outputs (probabilities, shares and tanh values alike).
    """
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    members = [weights] if isinstance(weights, PooledStudentWeights) else list(weights)
    if not members or len({m.recent_frames for m in members}) != 1:
        raise ValueError("an ensemble needs at least one member, all with the same recent_frames")
    nodes, inits = [], []

    def const(name: str, value) -> str:
        inits.append(numpy_helper.from_array(np.asarray(value), name))
        return name

    def node(op: str, inputs: list[str], output: str, **attrs) -> str:
        nodes.append(helper.make_node(op, inputs, [output], **attrs))
        return output

    x = "features"  # the card's input_name (write_model)
    mean_k = node("ReduceMean", [x], "mean_k", axes=[1], keepdims=1)
    mean = node("ReduceMean", [x], "mean", axes=[1], keepdims=0)
    dev = node("Sub", [x, mean_k], "dev")
    var = node("ReduceMean", [node("Mul", [dev, dev], "dev2")], "var", axes=[1], keepdims=0)
    std = node("Sqrt", [node("Add", [var, const("eps", np.float32(1e-6))], "var_eps")], "std")
    recent = node("Slice", [x, const("r_start", np.array([-members[0].recent_frames], np.int64)),
                            const("r_end", np.array([window_frames], np.int64)),
                            const("r_axes", np.array([1], np.int64))], "recent_frames")
    recent_mean = node("ReduceMean", [recent], "recent_mean", axes=[1], keepdims=0)
    later = node("Slice", [x, const("d_start", np.array([1], np.int64)), const("d_end", np.array([window_frames], np.int64)),
                           const("d_axes", np.array([1], np.int64))], "later_frames")
    earlier = node("Slice", [x, const("e_start", np.array([0], np.int64)),
                             const("e_end", np.array([window_frames - 1], np.int64)),
                             const("e_axes", np.array([1], np.int64))], "earlier_frames")
    change = node("ReduceMean", [node("Abs", [node("Sub", [later, earlier], "diff")], "abs_diff")], "mean_abs_change",
                  axes=[1], keepdims=0)
    peak = node("ReduceMax", [x], "max", axes=[1], keepdims=0)
    pooled = node("Concat", [mean, std, recent_mean, change, peak], "pooled", axis=1)
    member_outputs: dict[str, list[str]] = {name: [] for name in members[0].heads}
    for j, member in enumerate(members):
        p = f"m{j}_" if len(members) > 1 else ""
        h = node("Div", [node("Sub", [pooled, const(f"{p}pool_mean", member.mean.astype(np.float32))], f"{p}centred"),
                         const(f"{p}pool_scale", member.scale.astype(np.float32))], f"{p}h0")
        if member.branch is not None:
            fb = member.branch
            z = node("Div", [node("Sub", [x, const(f"{p}frame_mean", fb.mean.astype(np.float32))], f"{p}frames_c"),
                             const(f"{p}frame_scale", fb.scale.astype(np.float32))], f"{p}frames_z")
            e = node("Relu", [node("Add", [node("MatMul", [z, const(f"{p}branch_w", fb.w.astype(np.float32))],
                                                f"{p}branch_mm"), const(f"{p}branch_b", fb.b.astype(np.float32))],
                                   f"{p}branch_lin")], f"{p}branch")
            e_mean = node("ReduceMean", [e], f"{p}branch_mean", axes=[1], keepdims=0)
            e_max = node("ReduceMax", [e], f"{p}branch_max", axes=[1], keepdims=0)
            h = node("Concat", [h, e_mean, e_max], f"{p}h0_branch", axis=1)
        for i, (w, b) in enumerate(member.trunk):
            h = node("Gemm", [h, const(f"{p}trunk{i}_w", w.astype(np.float32)),
                              const(f"{p}trunk{i}_b", b.astype(np.float32))], f"{p}trunk{i}_lin")
            h = node("Relu", [h], f"{p}trunk{i}")
        for name, (w, b, act) in member.heads.items():
            logits = node("Gemm", [h, const(f"{p}{name}_w", w.astype(np.float32)),
                                   const(f"{p}{name}_b", b.astype(np.float32))], f"{p}{name}_logits")
            attrs = {"axis": 1} if act == "softmax" else {}
            member_outputs[name].append(node(ACTIVATIONS[act], [logits], f"{p}{name}", **attrs))
    outputs = []
    for name, (w, _, _) in members[0].heads.items():
        if len(members) > 1:
            node("Mean", member_outputs[name], name)
        outputs.append(helper.make_tensor_value_info(name, TensorProto.FLOAT, ["batch", int(w.shape[1])]))
    graph = helper.make_graph(
        nodes, "live_mer_pooled_student",
        [helper.make_tensor_value_info(x, TensorProto.FLOAT, ["batch", window_frames, n_features])],
        outputs, initializer=inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", OPSET)], producer_name="live_mer")
    model.ir_version = 8
    onnx.checker.check_model(model)
    return model.SerializeToString()


def write_model(directory: str | Path, name: str, onnx_bytes: bytes, spec: FeatureSpec, window_frames: int,
                hop_frames: int, outputs: dict[str, dict], card_extra: dict | None = None) -> tuple[Path, Path]:
    """Write ``<name>.onnx`` and its card ``<name>.json`` (with the file's sha256) into ``directory``."""
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    onnx_path, card_path = directory / f"{name}.onnx", directory / f"{name}.json"
    onnx_path.write_bytes(onnx_bytes)
    card = {
        "name": name,
        "onnx_sha256": sha256_of(onnx_path),
        "input_name": "features",
        "feature_spec": spec.to_dict(),
        "feature_names": spec.feature_names(),
        "window": {"frames": window_frames, "hop_frames": hop_frames,
                   "seconds": round(window_frames / spec.frame_rate, 4),
                   "hop_seconds": round(hop_frames / spec.frame_rate, 4)},
        "outputs": outputs,
    }
    card.update(card_extra or {})
    card_path.write_text(json.dumps(card, indent=2) + "\n")
    return onnx_path, card_path
