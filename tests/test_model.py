import json
import re
import shutil

import numpy as np
import pytest

from live_mer.features import FeatureSpec
from live_mer.model import ModelError, load_model, sha256_of


def copy_model(src_onnx, dst_dir, name="m"):
    onnx = dst_dir / f"{name}.onnx"
    shutil.copy(src_onnx, onnx)
    shutil.copy(src_onnx.with_suffix(".json"), dst_dir / f"{name}.json")
    return onnx, dst_dir / f"{name}.json"


def edit_card(card_path, fn):
    card = json.loads(card_path.read_text())
    fn(card)
    card_path.write_text(json.dumps(card))


def test_loads_and_reports_provider(tiny_model):
    assert tiny_model.provider == "CPUExecutionProvider"
    card = tiny_model.card
    out = tiny_model.run(np.zeros((3, card.window_frames, card.spec.n_features), np.float32))
    assert out["va"].shape == (3, 2) and out["quadrant"].shape == (3, 4) and out["gems"].shape == (3, 9)
    np.testing.assert_allclose(out["quadrant"].sum(axis=1), 1.0, rtol=1e-5)


def test_sha_mismatch_is_named(tiny_model_path, tmp_path):
    onnx, card = copy_model(tiny_model_path, tmp_path)
    edit_card(card, lambda c: c.update(onnx_sha256="0" * 64))
    with pytest.raises(ModelError, match="sha256"):
        load_model(onnx)


def test_corrupt_onnx_is_named(tiny_model_path, tmp_path):
    onnx, card = copy_model(tiny_model_path, tmp_path)
    onnx.write_bytes(onnx.read_bytes()[:200])
    with pytest.raises(ModelError, match="sha256"):
        load_model(onnx)
    # even with a card that matches the broken file, onnxruntime's refusal is reported with the path
    edit_card(card, lambda c: c.update(onnx_sha256=sha256_of(onnx)))
    with pytest.raises(ModelError, match="cannot load"):
        load_model(onnx)


def test_feature_spec_mismatch_is_named(tiny_model_path, tmp_path):
    onnx, card = copy_model(tiny_model_path, tmp_path)
    edit_card(card, lambda c: c["feature_names"].__setitem__(3, "something_else"))
    with pytest.raises(ModelError, match="column 3"):
        load_model(onnx)
    onnx, card = copy_model(tiny_model_path, tmp_path, "m2")
    edit_card(card, lambda c: c["feature_spec"].update(n_mels=40))
    with pytest.raises(ModelError, match="feature columns"):
        load_model(onnx)
    onnx, card = copy_model(tiny_model_path, tmp_path, "m3")
    edit_card(card, lambda c: c["feature_spec"].update(version=99))
    with pytest.raises(ModelError, match="version 99 != runtime"):
        load_model(onnx)
    # a version written as a string used to read "version 8 != runtime 8"
    onnx, card = copy_model(tiny_model_path, tmp_path, "m5")
    edit_card(card, lambda c: c["feature_spec"].update(version=str(FeatureSpec.version)))
    with pytest.raises(ModelError, match=f"feature_spec.version must be an integer, got '{FeatureSpec.version}'"):
        load_model(onnx)
    # a card of an older feature version, whose spec has a field this runtime no longer knows: the version is named
    onnx, card = copy_model(tiny_model_path, tmp_path, "m4")
    edit_card(card, lambda c: c["feature_spec"].update(version=4, chroma_gate_db=-55.0))
    with pytest.raises(ModelError, match=rf"version 4 != runtime {FeatureSpec.version}.*retrain"):
        load_model(onnx)


def test_graph_card_mismatch_is_named(tiny_model_path, tmp_path):
    onnx, card = copy_model(tiny_model_path, tmp_path)
    edit_card(card, lambda c: c["window"].update(frames=c["window"]["frames"] + 1))
    with pytest.raises(ModelError, match="input shape"):
        load_model(onnx)
    onnx, card = copy_model(tiny_model_path, tmp_path, "m2")
    edit_card(card, lambda c: c["outputs"]["gems"].update(names=["a", "b"]))
    with pytest.raises(ModelError, match="'gems' has 9 values"):
        load_model(onnx)
    onnx, card = copy_model(tiny_model_path, tmp_path, "m3")
    edit_card(card, lambda c: c["outputs"].pop("va"))
    with pytest.raises(ModelError, match="'va'"):
        load_model(onnx)


def test_a_name_listed_twice_is_refused(tiny_model_path, tmp_path):
    """Results are keyed by name: a tag listed twice lost one value (one tag fewer, a wrong value) silently."""
    onnx, card = copy_model(tiny_model_path, tmp_path)
    edit_card(card, lambda c: c["outputs"]["tags"].update(names=["Calm", "Angry", "Calm"]))
    with pytest.raises(ModelError, match=re.escape(f"{card}: outputs.tags.names lists 'Calm' twice")):
        load_model(onnx)
    # a second output of the same name: JSON keeps only the last one, so the card text itself is refused
    onnx, card = copy_model(tiny_model_path, tmp_path, "m2")
    outputs = json.loads(card.read_text())["outputs"]
    card.write_text(card.read_text().replace('"outputs": {', '"outputs": {"tags": ' + json.dumps(outputs["va"]) + ", ",
                                             1))
    with pytest.raises(ModelError, match=re.escape(f"{card}: the key 'tags' appears twice in one object")):
        load_model(onnx)


def test_missing_model_lists_available(tmp_path, tiny_model_path, monkeypatch):
    copy_model(tiny_model_path, tmp_path, "present")
    monkeypatch.setenv("LIVE_MER_MODELS", str(tmp_path))
    with pytest.raises(ModelError, match=r"missing .*absent\.onnx.*\['present'\]"):
        load_model("absent")
    assert load_model("present").card.name == "tiny"


def test_a_model_name_with_dots_loads(tmp_path, tiny_model_path, monkeypatch):
    onnx, _ = copy_model(tiny_model_path, tmp_path, "student_v1.2")
    monkeypatch.setenv("LIVE_MER_MODELS", str(tmp_path))
    assert load_model("student_v1.2").path == onnx and load_model(onnx).path == onnx


@pytest.mark.parametrize("edit", [
    lambda c: c.update(feature_names=5),
    lambda c: c.update(outputs=[]),
    lambda c: c["window"].update(frames="258 frames"),
    lambda c: c["window"].update(frames=None),
    lambda c: c["outputs"]["quadrant"].update(names=4),
])
def test_a_card_field_of_the_wrong_type_names_the_card(tmp_path, tiny_model_path, edit):
    onnx, card = copy_model(tiny_model_path, tmp_path)
    edit_card(card, edit)
    with pytest.raises(ModelError, match=f"{card}: malformed card"):
        load_model(onnx)


def test_cuda_request_without_cuda_is_a_clear_error(tiny_model_path):
    import onnxruntime as ort

    if "CUDAExecutionProvider" in ort.get_available_providers():
        pytest.skip("this onnxruntime has CUDA")
    with pytest.raises(ModelError, match="onnxruntime-gpu"):
        load_model(tiny_model_path, provider="cuda")


def test_card_spec_round_trip(tiny_model):
    assert tiny_model.card.spec == FeatureSpec.from_dict(tiny_model.card.raw["feature_spec"])
    assert tiny_model.card.raw["feature_names"] == FeatureSpec().feature_names()
