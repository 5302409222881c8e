"""The guess of pedal-held notes (diffroll.transcription.held_notes): candidates at harmony changes, the
logistic model, labels for fitting, and decoding with it (whole roll, streamed, switched off)."""
import dataclasses

import numpy as np
import pytest

from diffroll.core.checkpoint import save_checkpoint

from diffroll.transcription.pipeline import load_model
from diffroll.transcription.confidence import note_array
from diffroll.core.config import get_config
from diffroll.transcription.held_notes import (FEATURES, LIFT, PRESS, HeldNoteModel, candidate_labels, fit_held_note_model,
                                 frame_tracks, held_note_features, hold_notes, note_shapes)
from diffroll.transcription.decoding import NoteStream, decode_roll
from diffroll.transcription.settings import DecodeSettings
from diffroll.transcription.pipeline import new_model
from diffroll.core.roll import Note

FPS = 31.25
N = len(FEATURES)
C_MAJOR, F_MAJOR, G_MAJOR = (48, 64, 67), (53, 65, 69), (55, 62, 71)


def always(hold: bool, threshold: float = 0.5) -> HeldNoteModel:
    """A model whose probability is 1 (hold) or 0 for every note."""
    return HeldNoteModel((0.0,) * N, (1.0,) * N, (0.0,) * (2 * N), 50.0 if hold else -50.0, threshold)


def chords(length: float = 0.4):
    """C, F, G, C major chords struck every 2 s, each released ``length`` s after its onset."""
    return note_array([Note(2.0 * i, 2.0 * i + length, p, 80)
                       for i, chord in enumerate((C_MAJOR, F_MAJOR, G_MAJOR, C_MAJOR)) for p in chord])


def roll_of(arr, frames: int) -> np.ndarray:
    roll = np.zeros((88, frames), np.float32)
    for on, off, p, _ in arr:
        roll[int(p) - 21, int(round(on * FPS)):int(round(off * FPS))] = np.linspace(1.0, 0.3, int(round(off * FPS))
                                                                                     - int(round(on * FPS)))
    return roll


def test_candidates_are_the_next_harmony_change_plus_the_lift():
    arr = chords()
    roll = roll_of(arr, 8 * 32)
    features, candidate = held_note_features(arr, note_shapes(roll, arr, FPS), frame_tracks(roll), FPS)
    assert features.shape == (len(arr), N) and np.isfinite(features).all()
    for (on, _, _, _), c in zip(arr[:-3], candidate[:-3]):
        assert c == pytest.approx(on + 2.0 + LIFT)  # the next chord's onset + LIFT
    assert np.allclose(candidate[-3:], len(roll[0]) / FPS)  # the last chord: to the end of the roll
    early = arr.copy()
    early[:3, 1] = LIFT + PRESS / 2  # released before the pedal could be down again
    _, candidate = held_note_features(early, note_shapes(roll, early, FPS), frame_tracks(roll), FPS)
    assert np.isnan(candidate[:3]).all() and not np.isnan(candidate[3:]).any()


def test_held_notes_last_to_their_candidate_and_a_restrike_still_ends_them():
    arr = chords()
    arr = np.vstack([arr, [[1.0, 1.2, 48, 80]]])  # C3 struck again before the F chord
    roll = roll_of(arr, 8 * 32)
    shapes, tracks = note_shapes(roll, arr, FPS), frame_tracks(roll)
    held = hold_notes(arr, shapes, tracks, FPS, always(True))
    dry = hold_notes(arr, shapes, tracks, FPS, always(False))
    assert dry == sorted(Note(a, b, int(p), int(v)) for a, b, p, v in arr)
    lift = round(2.0 + LIFT, 3)
    assert {(n.onset, n.pitch): round(n.offset, 3) for n in held if n.onset < 2} == {
        (0.0, 48): 1.0, (0.0, 64): lift, (0.0, 67): lift, (1.0, 48): lift}  # re-struck, held, held, held
    assert [n.pitch for n in held] == [n.pitch for n in dry] and [n.onset for n in held] == [n.onset for n in dry]


def test_the_model_checks_its_shape_and_round_trips_through_the_config():
    with pytest.raises(ValueError, match="features"):
        HeldNoteModel((0.0,) * (N - 1), (1.0,) * N, (0.0,) * (2 * N), 0.0, 0.5)
    with pytest.raises(ValueError, match="threshold"):
        dataclasses.replace(always(True), threshold=1.0)
    model = always(True, threshold=0.3)
    assert HeldNoteModel.from_dict(model.to_dict()) == model
    cfg = get_config("smoke", held_notes=model.to_dict())
    assert DecodeSettings.of(cfg).held_notes == model and DecodeSettings.of(cfg).uses_held_notes
    assert DecodeSettings.of(cfg, use_pedal=False).held_notes is None  # --no-pedal: no pedal of any kind
    pedal = get_config("smoke", roll_channels=["frame", "onset", "velocity", "pedal"], held_notes=model.to_dict())
    assert not DecodeSettings.of(pedal).uses_held_notes  # the model's own pedal wins


def test_labels_say_which_offset_matches_the_reference():
    arr = note_array([Note(float(i), i + 0.5, p) for i, p in enumerate((60, 62, 64, 65, 67))])
    candidate = np.array([2.0, 2.0, 3.0, np.nan, 6.0])
    ref = [Note(0.01, 2.05, 60), Note(1.0, 1.52, 62), Note(2.0, 4.0, 64), Note(3.0, 5.0, 65), Note(4.2, 6.0, 67)]
    assert candidate_labels(ref, arr, candidate).tolist() == [1, 0, -1, -1, -1]  # held; not; neither; none; no match


def test_fit_orders_notes_by_a_feature_that_separates_them(tmp_path):
    rng = np.random.default_rng(0)
    x = rng.normal(size=(400, N))
    labels = (x[:, 3] + 0.3 * rng.normal(size=400) > 0.5).astype(int)
    labels[:20] = -1  # not used
    model = fit_held_note_model(x, labels, threshold=0.5)
    p = model.probability(x[20:])
    assert ((p > 0.5) == (labels[20:] == 1)).mean() > 0.9
    with pytest.raises(ValueError, match="both classes"):
        fit_held_note_model(x, np.zeros(400, int))
    cfg = get_config("smoke", held_notes=model.to_dict())  # a fitted model goes into a checkpoint and back
    save_checkpoint(tmp_path / "m.pt", {"config": cfg.to_dict(), "model": new_model(cfg).state_dict()})
    assert DecodeSettings.of(load_model(tmp_path / "m.pt").config).held_notes == model


@pytest.mark.parametrize("channels", [["frame"], ["frame", "onset", "velocity"]])
def test_streamed_decoding_guesses_as_the_whole_roll_does(channels):
    """Fed in random blocks, the stream's notes with the guess are the whole roll's, and the guess
    changes some of them (a random model)."""
    rng = np.random.default_rng(1)

    def random_roll() -> np.ndarray:
        n = int(rng.integers(200, 600))
        roll = ((rng.random((88 * len(channels), n)) < 0.08) * rng.random((88 * len(channels), n)) * 1.2)
        roll[:88] = np.maximum(roll[:88], np.repeat(rng.random((88, n // 8 + 1)) < 0.05, 8, axis=1)[:, :n])
        return roll.astype(np.float32)

    dry = DecodeSettings.of(get_config("smoke", roll_channels=channels))
    roll = random_roll()
    arr = note_array(decode_roll(roll, FPS, dry))
    features, candidate = held_note_features(arr, note_shapes(roll[:88], arr, FPS, dry.silent_below),
                                             frame_tracks(roll[:88]), FPS)
    features = features[~np.isnan(candidate)]  # a model whose probabilities spread around 0.5 on such rolls
    model = HeldNoteModel(tuple(features.mean(0)), tuple(features.std(0) + 1e-3), tuple(0.3 * rng.normal(size=2 * N)),
                          0.0, 0.5)
    settings = dataclasses.replace(dry, held_notes=model)
    assert settings == DecodeSettings.of(get_config("smoke", roll_channels=channels, held_notes=model.to_dict()))
    changed = 0
    for trial in range(6):
        roll = random_roll()
        n = roll.shape[1]
        stream = NoteStream(FPS, settings)
        i = 0
        while i < n:
            k = int(rng.integers(1, 60))
            stream.feed(roll[:, i:i + k])
            i += k
        whole = decode_roll(roll, FPS, settings)
        assert stream.close() == whole, trial
        changed += whole != decode_roll(roll, FPS, dry)
    assert changed > 0
