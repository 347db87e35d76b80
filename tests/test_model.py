import json
import re
import shutil

import numpy as np
import pytest

from live_mer.export import build_pooled_student, write_model
from live_mer.features import FeatureSpec
from live_mer.model import ModelError, load_model, sha256_of
from tiny_model import OUTPUTS, tiny_weights


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
    # a field left out was filled in with this runtime's default: a model trained with another hop ran on
    # features it never saw, without a word
    for i, field in enumerate(("hop_length", "sample_rate", "chord_key_prior")):
        onnx, card = copy_model(tiny_model_path, tmp_path, f"m6{i}")
        edit_card(card, lambda c: c["feature_spec"].pop(field))
        with pytest.raises(ModelError, match=rf"feature_spec: missing field\(s\) \['{field}'\]"):
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


@pytest.mark.parametrize("damage, message", [
    (lambda w: w.heads["va"][1].__setitem__(0, np.nan), "'va' gives values that are not finite"),
    (lambda w: w.mean.__setitem__(0, np.inf), "'va' gives values that are not finite"),
    (lambda w: w.heads.update(quadrant=(*w.heads["quadrant"][:2], "tanh")), "'quadrant' gives values from -"),
    (lambda w: w.heads.update(quadrant=(*w.heads["quadrant"][:2], "sigmoid")), "'quadrant' gives probabilities that sum to"),
    (lambda w: w.heads.update(gems=(w.heads["gems"][0] * 1e30, *w.heads["gems"][1:2], "tanh")), "'gems' gives values from -"),
])
def test_a_model_that_computes_garbage_is_refused_at_load(tmp_path, damage, message):
    """A training run that diverged writes NaN (or huge) weights and a card that matches them: the model
    loaded, and the analysis turned the NaN into zeros (quadrant Q1 at 0 %, every mood 0) without a word.
    Probabilities that are not probabilities (a softmax head with no softmax) read as confident nonsense."""
    spec = FeatureSpec()
    weights = tiny_weights(spec)
    damage(weights)
    window = int(round(2.0 * spec.frame_rate))
    onnx, _ = write_model(tmp_path, "broken", build_pooled_student(weights, window, spec.n_features), spec, window,
                          window // 8, OUTPUTS)
    with pytest.raises(ModelError, match=re.escape(str(onnx)) + ".*" + re.escape(message)):
        load_model(onnx)
    # the same, undamaged, loads
    onnx, _ = write_model(tmp_path, "sound", build_pooled_student(tiny_weights(spec), window, spec.n_features), spec,
                          window, window // 8, OUTPUTS)
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
])
def test_a_card_field_of_the_wrong_type_names_the_card(tmp_path, tiny_model_path, edit):
    onnx, card = copy_model(tiny_model_path, tmp_path)
    edit_card(card, edit)
    with pytest.raises(ModelError, match=f"{card}: malformed card"):
        load_model(onnx)


# (section, field, bad value, what the error says the value must be)
BAD_CARD_VALUES = [
    # were a ZeroDivisionError / ValueError / TypeError at listen start, and "analysis crashed" for every file
    ("feature_spec", "sample_rate", 0, "a positive integer"),
    ("feature_spec", "sample_rate", -22050, "a positive integer"),
    ("feature_spec", "n_fft", "2048", "an integer in [24, 65536]"),
    ("feature_spec", "hop_length", 4096, "a positive integer, at most n_fft"),
    ("feature_spec", "chord_stay_seconds", 0, "a number > 0"),
    ("feature_spec", "key_profile", "major", "one of 'edma', 'krumhansl', 'temperley'"),
    ("feature_spec", "chroma_fmax", 1.0, "a number above chroma_fmin"),
    # loaded, and silently changed the results
    ("feature_spec", "fmax", float("nan"), "a number above fmin, at most sample_rate / 2"),
    ("feature_spec", "fmax", 20.0, "a number above fmin"),
    ("feature_spec", "fmin", -1.0, "a number >= 0"),
    ("feature_spec", "chroma_tuning_seconds", 10 ** 400, "a number > 0"),  # beyond float range
    ("feature_spec", "n_mels", True, "a positive integer"),
    ("feature_spec", "chroma_tonality_gate", 1.5, "a number in [0, 1]"),
    ("feature_spec", "key_chord_weight", -1.0, "a number >= 0"),
    ("window", "hop_frames", 22.7, "a positive integer, at most window.frames"),  # was truncated to 22
    ("window", "hop_frames", 10_000, "a positive integer, at most window.frames"),
    ("window", "frames", "258 frames", "a positive integer"),
    ("window", "frames", None, "a positive integer"),
    ("outputs.quadrant", "names", "abcd", "a list of names"),  # was quadrant 'd'
    ("outputs.quadrant", "names", 4, "a list of names"),
    ("outputs.tags", "names", ["Calm", 3, "Sad"], "a list of names"),
    ("outputs.va", "range", [1.0, -1.0], "[low, high]"),
    ("", "name", 5, "a non-empty string"),
]


@pytest.mark.parametrize("section, field, value, what", BAD_CARD_VALUES)
def test_a_card_value_of_the_wrong_type_or_range_is_refused_by_name(tmp_path, tiny_model_path, section, field, value,
                                                                     what):
    """The card is checked for every value's type and range at load, so a corrupt or edited card says which value
    is wrong instead of crashing (or silently misleading) once the audio runs."""
    onnx, card = copy_model(tiny_model_path, tmp_path)

    def edit(c):
        obj = c
        for key in filter(None, section.split(".")):
            obj = obj[key]
        obj[field] = value

    edit_card(card, edit)
    where = f"{section}.{field}" if section else field
    with pytest.raises(ModelError, match=re.escape(f"{card}: {where}: {value!r} is not allowed ({what}")):
        load_model(onnx)


def test_a_card_value_out_of_range_is_a_clear_cli_error(tmp_path, tiny_model_path, capsys):
    """listen and analyze refuse such a card at start with its path and the field, not a traceback (analyze said
    "analysis crashed: ZeroDivisionError" for every file)."""
    import soundfile as sf

    from live_mer import cli

    onnx, card = copy_model(tiny_model_path, tmp_path)
    edit_card(card, lambda c: c["feature_spec"].update(sample_rate=0))
    song = tmp_path / "song.wav"
    sf.write(song, np.zeros(22050, np.float32), 22050)
    message = f"error: {card}: feature_spec.sample_rate: 0 is not allowed (a positive integer"
    for argv in (["listen", "--demo", "--duration", "3", "--quiet"], ["analyze", str(song)]):
        assert cli.main([*argv, "--model", str(onnx), "--provider", "cpu"]) == 2
        err = capsys.readouterr().err
        assert message in err and "Traceback" not in err and "crashed" not in err


def test_cuda_request_without_cuda_is_a_clear_error(tiny_model_path):
    import onnxruntime as ort

    if "CUDAExecutionProvider" in ort.get_available_providers():
        pytest.skip("this onnxruntime has CUDA")
    with pytest.raises(ModelError, match="onnxruntime-gpu"):
        load_model(tiny_model_path, provider="cuda")


def test_card_spec_round_trip(tiny_model):
    assert tiny_model.card.spec == FeatureSpec.from_dict(tiny_model.card.raw["feature_spec"])
    assert tiny_model.card.raw["feature_names"] == FeatureSpec().feature_names()
