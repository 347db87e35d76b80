"""A tiny end-to-end training run: synthetic clips -> live features -> (distilled) student -> ONNX -> Analyzer."""

import json
import sys
from types import SimpleNamespace
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from conftest import ROOT, chord_tones

torch = pytest.importorskip("torch", reason="the train extra (torch) is not installed")
sys.path.insert(0, str(ROOT / "scripts"))
sys.path.insert(0, str(ROOT / "scripts" / "teachers"))

import mer_data  # noqa: E402
import train  # noqa: E402
from live_mer.analyzer import Analyzer  # noqa: E402
from live_mer.features import FeatureSpec  # noqa: E402
from live_mer.fileanalysis import analyze_stream, iter_blocks, open_audio  # noqa: E402
from live_mer.model import load_model  # noqa: E402


def synthetic_clips(folder: Path) -> list:
    """Loud bright major chords labelled Q1, quiet dark minor chords labelled Q3 (and GEMS shares, and
    AllMusic-style mood tags on the 4Q ones)."""
    sr, clips = 22050, []
    rng = np.random.default_rng(0)
    for i in range(8):
        happy = i % 2 == 0
        root = 60 + int(rng.integers(0, 5))
        notes = [root, root + (4 if happy else 3), root + 7]
        x = chord_tones(notes + [n + 12 for n in notes], 8.0, sr, amp=0.5 if happy else 0.03)
        if happy:
            x = x + 0.05 * rng.standard_normal(len(x)).astype(np.float32) * (np.arange(len(x)) % 5512 < 400)
        path = folder / f"clip{i}.wav"
        sf.write(path, x, sr)
        gems = np.zeros(len(mer_data.GEMS), np.float32)
        gems[mer_data.GEMS.index("joyful_activation" if happy else "sadness")] = 0.8
        clips.append(mer_data.Clip("4q" if i < 6 else "emotify", f"c{i}", path, f"g{i}",
                                   quadrant=(0 if happy else 2) if i < 6 else None, gems=None if i < 6 else gems,
                                   extra={"moods": "Cheerful; Lively" if happy else "Gloomy ;Lively"} if i < 6 else {}))
    return clips


def test_tiny_training_run_exports_a_model_the_analyzer_runs(tmp_path, monkeypatch):
    monkeypatch.setattr(mer_data, "CACHE", tmp_path / "cache")
    spec = FeatureSpec()
    clips = synthetic_clips(tmp_path)
    paths = mer_data.feature_cache(clips, spec, workers=1, progress=False)
    x, frames, t_end = train.window_table(clips, paths, spec)
    clip_of = frames.clip_of
    quad, va, gems = train.ground_truth(clips, clip_of, t_end)
    # Stand-in teacher outputs exercise the distillation losses (the real teachers need musicnn).
    soft = {"quadrant": np.where(quad[:, None] >= 0, np.eye(4, dtype=np.float32)[np.maximum(quad, 0)] * 0.9 + 0.025,
                                 np.nan).astype(np.float32),
            "va": np.nan_to_num(va, nan=0.0).astype(np.float32),
            "gems": np.full((len(x), len(mer_data.GEMS)), 0.2, np.float32)}
    neutral = train.nonmusic_table(spec, count=8)  # generated non-music windows, neutral targets
    vocabulary = train.tag_vocabulary(clips, min_clips=2)
    assert vocabulary == ["Lively", "Cheerful", "Gloomy"]  # most frequent first
    tags = train.tag_truth(clips, clip_of, vocabulary)
    assert np.isnan(tags[clip_of >= 6]).all() and set(np.unique(tags[clip_of < 6])) == {0.0, 1.0}
    w = train.fit(x, frames, quad, va, gems, soft, epochs=30, neutral=neutral, tags=tags, branch=8, runs=True)
    assert w.branch is not None and w.branch.w.shape == (spec.n_features, 8)
    assert w.trunk[0][0].shape[0] == x.shape[1] + 16  # the statistics, then the branch's window mean and max
    # the model ships the tags whose cross-validated AUC is high enough (here: a made-up CV row)
    kept, note = train.keep_supported_tags([w], vocabulary, {"4q_tags_auc": {"Lively": 0.5, "Cheerful": 0.9,
                                                                            "Gloomy": 0.8}})
    assert kept == ["Cheerful", "Gloomy"] and w.heads["tags"][0].shape[1] == 2 and "2 of the 3" in note
    onnx_path = train.export(w, spec, tmp_path / "models", "tiny_student", {"training": {"note": "test"}}, kept)
    model = load_model(onnx_path, provider="cpu")
    # the exported graph computes what the training weights compute, on the same windows
    window, hop, recent = train.geometry(spec)
    silence = train.Frontend(spec, spec.sample_rate).silence_row()
    windows = np.ascontiguousarray(mer_data.windows_of(np.load(paths[0]), silence, window, hop))
    onnx_out = model.run(windows)
    ref = train.forward(w, train.pooled_statistics(windows, recent), windows)
    for head in ("va", "quadrant", "gems", "tags"):
        np.testing.assert_allclose(onnx_out[head], ref[head], atol=1e-4)
    assert model.card.raw["outputs"]["tags"] == {"kind": "tags", "names": ["Cheerful", "Gloomy"]}
    # and the live Analyzer over the audio gives the training-time windows' answers
    with open_audio(clips[0].path) as f:
        ests = analyze_stream(Analyzer(model, f.samplerate, smoothing_s=0.0), iter_blocks(f))
    live = np.array([[e.valence, e.arousal] for e in ests])
    np.testing.assert_allclose(live[: len(ref["va"])], ref["va"][: len(live)], atol=1e-4)
    # it learned the toy task: loud major -> Q1 and positive arousal, quiet minor -> Q3
    assert ests[-1].quadrant == "Q1" and ests[-1].arousal > 0
    with open_audio(clips[1].path) as f:
        sad = analyze_stream(Analyzer(model, f.samplerate, smoothing_s=0.0), iter_blocks(f))
    assert sad[-1].quadrant == "Q3" and sad[-1].arousal < ests[-1].arousal
    # the tag head read the tags: "Cheerful" on the bright clip, "Gloomy" on the dark one
    assert ests[-1].heads["tags"]["Cheerful"] > 0.7 > sad[-1].heads["tags"]["Cheerful"]
    assert sad[-1].heads["tags"]["Gloomy"] > 0.7 > ests[-1].heads["tags"]["Gloomy"]
    # and it learned that noise is no emotion at all
    on_noise = train.predict(w, *neutral)
    assert on_noise["quadrant"].max(axis=1).mean() < 0.5 and np.abs(on_noise["va"]).mean() < 0.2


@pytest.mark.parametrize("branch, runs", [(0, False), (0, True), (4, True)])
def test_the_tag_head_leaves_the_other_heads_as_they_were(tmp_path, monkeypatch, branch, runs):
    """The tag head is a probe fitted after the trunk with its own random numbers: adding it changes no
    other output (so its cross-validation leaves the rest of the evaluation table as it was)."""
    monkeypatch.setattr(mer_data, "CACHE", tmp_path / "cache")
    spec = FeatureSpec()
    clips = synthetic_clips(tmp_path)
    x, frames, t_end = train.window_table(clips, mer_data.feature_cache(clips, spec, workers=1, progress=False), spec)
    quad, va, gems = train.ground_truth(clips, frames.clip_of, t_end)
    tags = train.tag_truth(clips, frames.clip_of, ["Cheerful", "Gloomy"])
    plain = train.fit(x, frames, quad, va, gems, epochs=3, level_db=12.0, branch=branch, runs=runs)
    tagged = train.fit(x, frames, quad, va, gems, epochs=3, level_db=12.0, tags=tags, branch=branch, runs=runs)
    assert set(tagged.heads) == set(plain.heads) | {"tags"}
    for head in plain.heads:
        for a, b in zip(plain.heads[head][:2], tagged.heads[head][:2]):
            np.testing.assert_array_equal(a, b)
    for (a, b), (c, d) in zip(plain.trunk, tagged.trunk):
        np.testing.assert_array_equal(a, c)
        np.testing.assert_array_equal(b, d)
    if branch:
        np.testing.assert_array_equal(plain.branch.w, tagged.branch.w)
    else:
        assert plain.branch is None and tagged.branch is None


def test_students_trained_side_by_side_are_those_trained_one_after_another(tmp_path, monkeypatch):
    """train.py --jobs forks workers that fit the same seeded tasks: the weights do not depend on it."""
    monkeypatch.setattr(mer_data, "CACHE", tmp_path / "cache")
    spec = FeatureSpec()
    clips = synthetic_clips(tmp_path)
    x, frames, t_end = train.window_table(clips, mer_data.feature_cache(clips, spec, workers=1, progress=False), spec)
    quad, va, gems = train.ground_truth(clips, frames.clip_of, t_end)
    tasks = train.ensemble_tasks(members=2, x=x, frames=frames, quad=quad, va=va, gems=gems, epochs=2, level_db=6.0,
                                 branch=4, runs=True)
    assert [t["seed"] for t in tasks] == [train.SEED, train.SEED + 1]
    one, two = train.fit_many(tasks, jobs=1), train.fit_many(tasks, jobs=2)
    assert not np.array_equal(one[0].trunk[0][0], one[1].trunk[0][0])  # two seeds, two students
    for a, b in zip(one, two):
        for (wa, ba), (wb, bb) in zip(a.trunk, b.trunk):
            np.testing.assert_array_equal(wa, wb)
            np.testing.assert_array_equal(ba, bb)
        np.testing.assert_array_equal(a.branch.w, b.branch.w)
        np.testing.assert_array_equal(a.heads["quadrant"][0], b.heads["quadrant"][0])


def test_a_statistics_student_needs_no_frames_kept(tmp_path, monkeypatch):
    """window_table(keep_frames=False) (what train.py does without --frame-branch) keeps no frames, and the
    students trained and run on it are those of the table that keeps them; a frame branch refuses it."""
    monkeypatch.setattr(mer_data, "CACHE", tmp_path / "cache")
    spec = FeatureSpec()
    clips = synthetic_clips(tmp_path)
    paths = mer_data.feature_cache(clips, spec, workers=1, progress=False)
    x, frames, t_end = train.window_table(clips, paths, spec)
    x2, bare, t_end2 = train.window_table(clips, paths, spec, keep_frames=False)
    assert bare.padded == [None] * len(clips) and all(p is not None for p in frames.padded)
    np.testing.assert_array_equal(x, x2)
    np.testing.assert_array_equal(frames.clip_of, bare.clip_of)
    np.testing.assert_array_equal(t_end, t_end2)
    quad, va, gems = train.ground_truth(clips, frames.clip_of, t_end)
    neutral = train.nonmusic_table(spec, count=4)
    for runs in (False, True):
        kept, dropped = (train.fit(x, f, quad, va, gems, epochs=2, level_db=6.0, neutral=neutral, runs=runs)
                         for f in (frames, bare))
        for (a, b), (c, d) in zip(kept.trunk, dropped.trunk):
            np.testing.assert_array_equal(a, c)
            np.testing.assert_array_equal(b, d)
        np.testing.assert_array_equal(train.predict(kept, x, frames)["quadrant"],
                                      train.predict(dropped, x, bare)["quadrant"])
    with pytest.raises(ValueError, match="keep_frames"):
        train.fit(x, bare, quad, va, gems, epochs=1, branch=4, runs=True)


def test_windows_match_the_analyzer_definition():
    frames = np.arange(50 * 2, dtype=np.float32).reshape(50, 2)
    w = mer_data.windows_of(frames, np.array([-1.0, -1.0], np.float32), window=8, hop=5)
    assert w.shape == (10, 8, 2)
    np.testing.assert_array_equal(w[0, -1], frames[4])  # window k ends at frame (k + 1) * hop - 1
    np.testing.assert_array_equal(w[0, :3], -1.0)  # the start is padded with silence, as live
    np.testing.assert_array_equal(w[-1, -1], frames[49])


def test_generated_nonmusic_is_deterministic_finite_and_covers_every_kind():
    import nonmusic

    clips = [nonmusic.nonmusic_audio(i, seconds=2.0, seed=3) for i in range(len(nonmusic.KINDS))]
    assert [kind for kind, _ in clips] == list(nonmusic.KINDS)
    for i, (_, x) in enumerate(clips):
        assert x.dtype == np.float32 and np.isfinite(x).all() and np.abs(x).max() <= 1.0
        np.testing.assert_array_equal(x, nonmusic.nonmusic_audio(i, seconds=2.0, seed=3)[1])
    with pytest.raises(ValueError, match="unknown non-music kind"):
        nonmusic.synthesise("applause", 1.0, 22050, np.random.default_rng(0))


def test_an_ensemble_exports_as_the_mean_of_its_members(tmp_path):
    from tiny_model import tiny_weights

    from live_mer.export import pooled_statistics

    spec = FeatureSpec()
    members = [tiny_weights(spec, seed=s) for s in (0, 1, 2)]
    with pytest.raises(ValueError, match="tags head has 3 outputs but 0 tag names"):
        train.export(members, spec, tmp_path, "ensemble", {"training": {"note": "test"}})
    onnx_path = train.export(members, spec, tmp_path, "ensemble", {"training": {"note": "test"}}, ["a", "b", "c"])
    model = load_model(onnx_path, provider="cpu")
    windows = np.random.default_rng(0).standard_normal((5, model.card.window_frames, spec.n_features)).astype(np.float32)
    got = model.run(windows)
    pooled = pooled_statistics(windows, members[0].recent_frames)
    want = train.forward(members, pooled)
    for head in ("va", "quadrant", "gems", "tags"):
        np.testing.assert_allclose(got[head], want[head], atol=2e-6)
        np.testing.assert_allclose(want[head], np.mean([train.forward(m, pooled)[head] for m in members], axis=0))
    assert not np.allclose(train.forward(members[0], pooled)["va"], want["va"])  # the members do differ


def test_the_frame_branch_trained_run_by_run_is_the_exported_branch_window_by_window():
    """fit() embeds each frame once per run of windows (run_pools); the graph and its numpy twin pool every
    window on its own: the same numbers, for runs starting anywhere in a clip and of any length."""
    from live_mer.export import FrameBranch, frame_branch_pools

    window, hop = 30, 7
    rng = np.random.default_rng(4)
    branch = FrameBranch(rng.standard_normal(5).astype(np.float32), rng.uniform(0.5, 2, 5).astype(np.float32),
                         rng.standard_normal((5, 6)).astype(np.float32), rng.standard_normal(6).astype(np.float32))
    padded = mer_data.padded_frames(rng.standard_normal((100, 5)).astype(np.float32), np.zeros(5, np.float32), window)
    windows = mer_data.padded_windows(padded, window, hop)
    assert len(windows) == 100 // hop
    embed = torch.nn.Linear(5, 6)
    with torch.no_grad():
        embed.weight.copy_(torch.from_numpy(branch.w.T))
        embed.bias.copy_(torch.from_numpy(branch.b))
    z = torch.from_numpy((padded - branch.mean) / branch.scale)
    runs = [(0, 5), (5, 1), (6, 8)]  # (first window, windows): as training_units cuts a clip, and shorter
    got = train.run_pools(embed, [z[(k0 + 1) * hop:(k0 + n) * hop + window] for k0, n in runs], window, hop)
    want = np.concatenate([frame_branch_pools(branch, windows[k0:k0 + n]) for k0, n in runs])
    np.testing.assert_allclose(got.detach().numpy(), want, atol=1e-5)
    # a level change per run (the level augmentation) is the branch on the shifted frames
    shift = rng.standard_normal(5).astype(np.float32)
    got = train.run_pools(embed, [z[(k0 + 1) * hop:(k0 + n) * hop + window] for k0, n in runs], window, hop,
                          [torch.from_numpy(g * shift / branch.scale) for g in (-1.0, 0.0, 2.0)])
    want = np.concatenate([frame_branch_pools(branch, windows[k0:k0 + n] + g * shift)
                           for (k0, n), g in zip(runs, (-1.0, 0.0, 2.0))])
    np.testing.assert_allclose(got.detach().numpy(), want, atol=1e-4)
    # a window of whole hops (no partial block)
    windows = mer_data.padded_windows(padded, 28, hop)
    got = train.run_pools(embed, [z[(k0 + 1) * hop:(k0 + n) * hop + 28] for k0, n in runs], 28, hop)
    want = np.concatenate([frame_branch_pools(branch, windows[k0:k0 + n]) for k0, n in runs])
    np.testing.assert_allclose(got.detach().numpy(), want, atol=1e-5)
    units = train.training_units(np.repeat([3, 1], [150, 2]))
    assert [(j, k0, len(r)) for j, k0, r in units] == [(1, 0, 2), (3, 0, 64), (3, 64, 64), (3, 128, 22)]
    with pytest.raises(ValueError, match="needs runs=True"):  # the branch only trains on runs
        train.fit(np.zeros((2, 3), np.float32), train.Frames([], np.zeros(2, int)), np.zeros(2, int),
                  np.zeros((2, 2), np.float32), np.zeros((2, 9), np.float32), branch=4)


def test_valence_arousal_pseudo_labels_come_from_the_teacher_that_knows_the_audio():
    """4Q and Emotify audio: the valence/arousal the 4Q teacher's quadrants imply (the VGMIDI teacher's
    piano-game values are off-scale on recordings); VGMIDI: its own teacher's values."""
    import teacher_models

    pred = {"quadrant": np.array([[1.0, 0, 0, 0], [0, 0, 0.5, 0.5]], np.float32),  # Q1; half Q3, half Q4
            "va": np.array([[-0.9, -0.9], [0.7, 0.7]], np.float32)}
    implied = np.array([[0.5, 0.5], [0.0, -0.5]], np.float32)
    for dataset in ("4q", "emotify"):
        np.testing.assert_allclose(teacher_models.valence_arousal_target(dataset, pred), implied, atol=1e-7)
    np.testing.assert_array_equal(teacher_models.valence_arousal_target("vgmidi", pred), pred["va"])


def test_level_shift_is_how_the_pooled_features_move_with_input_gain():
    """The level augmentation shifts pooled statistics by ``level_shift``: check it against the real front end."""
    from live_mer.export import pooled_statistics
    from live_mer.features import Frontend

    spec = FeatureSpec()
    sr = spec.sample_rate
    rng = np.random.default_rng(1)
    x = chord_tones([45, 57, 60, 64, 69], 8.0, sr, amp=0.3)
    x = x + 0.02 * rng.standard_normal(len(x)).astype(np.float32)  # every mel band well above the floor
    window, _, recent = train.geometry(spec)

    def pooled(audio):
        frames = Frontend(spec, sr).push(audio, flush=True).features
        return pooled_statistics(frames[None, -window:], recent)[0]

    shift = train.level_shift(spec)
    assert shift.shape == pooled(x).shape and shift.any()
    for gain_db in (-12.0, -24.0, -40.0):  # -40: below the old absolute chroma gate (-55 dBFS)
        moved = pooled(x * np.float32(10 ** (gain_db / 20))) - pooled(x)
        np.testing.assert_allclose(moved, gain_db * shift, atol=1e-4)


def test_level_augmentation_makes_the_student_read_quiet_input_like_loud(tmp_path, monkeypatch):
    """The toy clips differ in level (loud major vs quiet minor): without augmentation the student leans on
    the level; trained with --level-augmentation-db it moves far less when the input is 12 dB quieter."""
    monkeypatch.setattr(mer_data, "CACHE", tmp_path / "cache")
    spec = FeatureSpec()
    clips = synthetic_clips(tmp_path)
    x, frames, t_end = train.window_table(clips, mer_data.feature_cache(clips, spec, workers=1, progress=False), spec)
    quad, va, gems = train.ground_truth(clips, frames.clip_of, t_end)
    loud = np.isin(frames.clip_of, [0, 2, 4, 6])  # the loud clips, 12 dB quieter: inside the augmented range
    at_level = train.Frames(frames.padded, frames.clip_of[loud])
    quieter = train.Frames([p - 12.0 * train.frame_level_shift(spec) for p in frames.padded], at_level.clip_of)

    def moved(level_db):
        w = train.fit(x, frames, quad, va, gems, epochs=30, level_db=level_db)
        return float(np.abs(train.predict(w, x[loud] - 12.0 * train.level_shift(spec), quieter)["va"]
                            - train.predict(w, x[loud], at_level)["va"]).mean())

    plain, augmented = moved(0.0), moved(24.0)
    assert augmented < 0.5 * plain, (plain, augmented)


def test_the_chord_emission_kernel_computes_what_was_trained(tmp_path):
    """The Numba emission of live_mer.harmony (what runs live) against the torch module train_chords.py
    trains, on the same frames: same logits (up to float32 rounding), same layout, same context."""
    import train_chords
    from live_mer.harmony import chord_emissions, context_means, load_emission

    torch.manual_seed(3)
    model = train_chords.emission_model()
    rng = np.random.default_rng(3)
    chroma = (rng.random((80, 12)) * (rng.random((80, 12)) < 0.6)).astype(np.float32)
    bass = (chroma * (rng.random((80, 12)) < 0.3)).astype(np.float32)
    chroma[10] = 0.0  # a gated frame: N by rule
    bass[10] = 0.0
    log_prior = np.log(np.full(10, 0.1, np.float32))
    np.savez(tmp_path / "emission.npz", **train_chords.emission_weights(model), log_prior=log_prior)
    emission = load_emission(tmp_path / "emission.npz")
    assert emission[1] == train_chords.CONTEXT_FRAMES
    live = chord_emissions(chroma, bass, emission)

    inputs = train_chords.emission_inputs(chroma, bass, context_means(chroma, bass, train_chords.CONTEXT_FRAMES))
    with torch.no_grad():
        logits = model(*(torch.as_tensor(np.asarray(inputs[k], np.float32)) for k in train_chords.INPUTS)).numpy()
    logits = logits.astype(np.float64) + emission[0][-1]  # the per-state prior offset the kernel adds
    expected = np.exp(logits - logits.max(axis=1, keepdims=True))
    pitched = chroma.max(axis=1) > 0
    np.testing.assert_allclose(live[pitched], expected[pitched], rtol=2e-3, atol=1e-5)
    assert live[10].argmax() == len(live[10]) - 1 and live[10, :-1].max() < 1e-9


def test_a_chord_emission_from_another_version_is_refused(tmp_path):
    import train_chords
    from live_mer.harmony import load_emission

    weights = train_chords.emission_weights(train_chords.emission_model())
    weights["chord_w1"] = weights["chord_w1"][:, :24]  # the layout before the context inputs
    np.savez(tmp_path / "old.npz", **weights, log_prior=np.zeros(10, np.float32))
    with pytest.raises(ValueError, match="old.npz.*chord_w1 should have 48 inputs"):
        load_emission(tmp_path / "old.npz")


def test_folds_keep_an_act_and_a_recording_in_one_fold():
    """An act with or without its band is one group; a recording under two ids joins its two acts' groups;
    no group straddles folds."""
    assert mer_data.artist_group("Charlie Poole & the North Carolina Ramblers") == mer_data.artist_group("Charlie Poole")
    assert mer_data.artist_group("Eddie Heywood and His Orchestra") == mer_data.artist_group(" eddie  HEYWOOD")
    assert mer_data.artist_group("The Sir Douglas Quintet + 2") == mer_data.artist_group("The Sir Douglas Quintet")
    assert mer_data.artist_group("Alvin & the Chipmunks") == mer_data.artist_group("The Chipmunks")
    assert mer_data.artist_group("Simon & Garfunkel") != mer_data.artist_group("Simon")
    a, b = mer_data.SAME_RECORDING[1][1:]  # credited to two different acts
    clips = [mer_data.Clip("4q", a, Path("x"), "4q:elmer bernstein", quadrant=0),
             mer_data.Clip("4q", b, Path("x"), "4q:sam butera", quadrant=0),
             mer_data.Clip("4q", "other", Path("x"), "4q:sam butera", quadrant=1)]
    clips += [mer_data.Clip("4q", f"c{i}", Path("x"), f"4q:act{i}", quadrant=i % 4) for i in range(40)]
    groups = mer_data.fold_groups(clips)
    assert groups[0] == groups[1] == groups[2] and len(set(groups)) == 41
    fold = mer_data.folds(clips, 5, 1)
    assert fold[0] == fold[1] == fold[2] and set(fold) == set(range(5))


def test_cv_then_fit_write_a_checked_model_whose_card_carries_only_its_own_evaluation(tmp_path, monkeypatch, capsys):
    """`train.py cv` and `fit` as the command runs them (its data step aside: synthetic clips). The card took
    whatever CV table was on disk, a smoke test's too; the live Analyzer's agreement with the training
    windows was only printed, so a stale feature cache shipped a model that runs on other features."""
    monkeypatch.setattr(mer_data, "CACHE", tmp_path / "cache")
    monkeypatch.setattr(train, "CV_TABLE", tmp_path / "cache" / "cv_table.json")
    monkeypatch.setattr(train, "ROOT", tmp_path)
    (tmp_path / "models").mkdir()
    real_nonmusic = train.nonmusic_table
    monkeypatch.setattr(train, "nonmusic_table", lambda spec: real_nonmusic(spec, count=4))
    spec = FeatureSpec()
    clips = synthetic_clips(tmp_path)
    x, frames, t_end = train.window_table(clips, mer_data.feature_cache(clips, spec, workers=1, progress=False), spec)
    data = (clips, mer_data.folds(clips, 2, train.SEED), x, frames, t_end, None)
    args = SimpleNamespace(command="all", folds=2, epochs=2, limit=None, no_distill=True, no_vgmidi=True,
                           level_augmentation_db=36.0, frame_branch=0, run_batches=False, jobs=1, name="tiny_cli")

    table = train.cmd_cv(spec, args, data)
    assert table["options"] == train.cv_options(args) and "student_no_distillation" in table
    onnx = train.cmd_fit(spec, args, data)
    assert onnx == tmp_path / "models" / "tiny_cli.onnx" and sorted(p.name for p in (tmp_path / "models").iterdir()) \
        == ["tiny_cli.json", "tiny_cli.onnx"]  # nothing of the staging folder left
    model = load_model(onnx)
    assert json.dumps(model.card.raw["evaluation"], sort_keys=True) == json.dumps(table, sort_keys=True)  # (NaN)
    assert "live Analyzer vs training windows max |diff|" in capsys.readouterr().out

    # a fit with other options gets no evaluation from that table
    other = SimpleNamespace(**{**vars(args), "epochs": 3, "name": "other"})
    assert load_model(train.cmd_fit(spec, other, data)).card.raw["evaluation"] == {}
    assert "evaluates other options" in capsys.readouterr().err
    assert train.cv_options(SimpleNamespace(**{**vars(args), "folds": 5})) != train.cv_options(args)

    # training windows that are not what the live Analyzer computes (a stale cache): nothing is written
    shipped = onnx.read_bytes()
    stale = (clips, data[1], x * np.float32(1.5) + np.float32(1.0), frames, t_end, None)
    with pytest.raises(SystemExit, match="not written: .* the live Analyzer from the training windows by"):
        train.cmd_fit(spec, args, stale)
    assert onnx.read_bytes() == shipped
    assert sorted(p.name for p in (tmp_path / "models").iterdir()) == ["other.json", "other.onnx", "tiny_cli.json",
                                                                       "tiny_cli.onnx"]


def test_the_feature_cache_key_follows_the_chord_emission_and_the_front_end_code(tmp_path, monkeypatch):
    """A retrained chord emission (scripts/train_chords.py) changes every frame's chord features; the cache,
    keyed by the spec alone, kept serving the old ones."""
    spec = FeatureSpec()
    before = mer_data.spec_key(spec)
    emission = tmp_path / "chord_emission.npz"
    emission.write_bytes(mer_data.FEATURE_SOURCES[2].read_bytes() + b"retrained")
    monkeypatch.setattr(mer_data, "FEATURE_SOURCES", (*mer_data.FEATURE_SOURCES[:2], emission))
    assert mer_data.spec_key(spec) != before
