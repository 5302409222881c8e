"""Piano rolls and MIDI (roll.py) and the mir_eval metrics (evaluate.py)."""
import dataclasses

import numpy as np
import pretty_midi
import pytest

from diffroll.evaluation.metrics import frame_scores, note_scores
from diffroll.core.roll import MidiError, Note, midi_notes, midi_to_roll, notes_to_midi, notes_to_roll, roll_to_notes


def bach_chorale_midi(tmp_path):
    """Real music: a Bach chorale from music21's bundled corpus, written as MIDI."""
    from music21 import corpus
    path = tmp_path / "bwv66.6.mid"
    corpus.parse("bach/bwv66.6").write("midi", fp=str(path))
    return path


def test_roundtrip_of_real_music_scores_f1_one(tmp_path):
    path = bach_chorale_midi(tmp_path)
    ref = midi_notes(path)
    assert len(ref) > 100
    notes = roll_to_notes(midi_to_roll(path))
    assert note_scores(ref, notes)["f1"] == 1.0
    # and through a written MIDI file, whose times must stay in seconds
    out = tmp_path / "out.mid"
    notes_to_midi(notes, out)
    again = midi_notes(out)
    assert note_scores(ref, again)["f1"] == 1.0
    assert pretty_midi.PrettyMIDI(str(out)).get_end_time() == pytest.approx(max(n[1] for n in ref), abs=0.05)


def test_roll_shape_keys_and_timing():
    pm = pretty_midi.PrettyMIDI()
    inst = pretty_midi.Instrument(0)
    inst.notes = [pretty_midi.Note(100, 21, 0.0, 0.5), pretty_midi.Note(100, 108, 1.0, 1.032),
                  pretty_midi.Note(100, 20, 0.0, 1.0), pretty_midi.Note(100, 109, 0.0, 1.0)]
    pm.instruments.append(inst)
    roll = midi_to_roll(pm, fps=31.25)
    assert roll.shape[0] == 88
    assert roll[0, 0] == 1 and roll[0, 15] == 1 and roll[0, 16] == 0  # 0.5 s = frame 15.6 -> 16
    assert roll[87, 31] == 1 and roll[87].sum() == 1  # the C8 note, one frame
    assert roll.sum() == 16 + 1  # the notes outside A0..C8 are dropped


def test_dropped_notes_are_counted(caplog):
    pm = pretty_midi.PrettyMIDI()
    inst = pretty_midi.Instrument(0)
    inst.notes = [pretty_midi.Note(100, 60, 0, 1), pretty_midi.Note(100, 10, 0, 1), pretty_midi.Note(100, 120, 0, 1)]
    pm.instruments.append(inst)
    with caplog.at_level("WARNING", logger="diffroll.core.roll"):
        midi_notes(pm)
    assert "dropped 2 notes" in caplog.text


def test_sustain_pedal_extends_and_restrike_cuts():
    pm = pretty_midi.PrettyMIDI()
    inst = pretty_midi.Instrument(0)
    inst.notes = [pretty_midi.Note(100, 60, 0.0, 0.2), pretty_midi.Note(100, 64, 0.0, 0.2),
                  pretty_midi.Note(100, 60, 1.0, 1.1)]
    inst.control_changes = [pretty_midi.ControlChange(64, 127, 0.1), pretty_midi.ControlChange(64, 0, 2.0)]
    pm.instruments.append(inst)
    notes = [n[:3] for n in midi_notes(pm)]
    assert (0.0, 1.0, 60) in notes  # sustained until the key is struck again
    assert (0.0, 2.0, 64) in notes  # sustained until the pedal goes up
    assert (1.0, 2.0, 60) in notes
    dry = [n[:3] for n in midi_notes(pm, sustain=False)]
    assert (0.0, 0.2, 60) in dry
    # the re-struck key stays two notes in the roll
    assert len([n for n in roll_to_notes(midi_to_roll(pm)) if n[2] == 60]) == 2


def test_pedal_channel_holds_the_pedal_and_decoding_sustains_notes_by_it():
    """The pedal rows are 1 while CC 64 is down; notes read with a faded frame (a key released under
    the pedal) last until the pedal comes up, as the reference notes do, or until a re-strike."""
    from diffroll.core.config import get_config
    from diffroll.transcription.decoding import decode_roll
    from diffroll.transcription.settings import DecodeSettings

    pm = pretty_midi.PrettyMIDI()
    inst = pretty_midi.Instrument(0)
    inst.notes = [pretty_midi.Note(100, 60, 0.0, 0.2), pretty_midi.Note(100, 64, 0.0, 0.2),
                  pretty_midi.Note(100, 60, 1.0, 1.1), pretty_midi.Note(90, 67, 2.5, 3.0)]
    inst.control_changes = [pretty_midi.ControlChange(64, 127, 0.1), pretty_midi.ControlChange(64, 0, 2.0)]
    pm.instruments.append(inst)
    channels = ("frame", "onset", "velocity", "pedal")
    roll = midi_to_roll(pm, channels=channels, n_frames=100)
    pedal = roll[3 * 88:]
    assert (pedal == pedal[0]).all() and np.flatnonzero(pedal[0]).tolist() == list(range(3, 62))  # 0.1 s .. 2.0 s
    with pytest.raises(ValueError, match="pedal"):
        notes_to_roll(midi_notes(pm), channels=channels)
    # x̂0 whose frame rows end at the key releases (no sustain) but whose pedal rows hold the pedal
    faded = notes_to_roll(midi_notes(pm, sustain=False), n_frames=100, channels=channels, pedal=[(0.1, 2.0)])
    cfg = get_config("smoke", roll_channels=list(channels))
    held = decode_roll(faded, 31.25, DecodeSettings.of(cfg))
    assert note_scores(midi_notes(pm), held)["f1_offset"] == 1.0
    assert [n[:3] for n in held] == [(0.0, 0.992, 60), (0.0, 1.984, 64), (0.992, 1.984, 60), (2.496, 3.008, 67)]
    dry = decode_roll(faded, 31.25, dataclasses.replace(DecodeSettings.of(cfg), pedal_threshold=None))  # pedal ignored
    assert dry == decode_roll(faded[:3 * 88], 31.25, DecodeSettings.of(get_config("smoke")))
    assert note_scores(midi_notes(pm), dry)["f1_offset"] == 0.25  # only the unpedalled note keeps its offset


def test_bad_midi_inputs(tmp_path):
    with pytest.raises(MidiError, match="no such MIDI file"):
        midi_to_roll(tmp_path / "missing.mid")
    bad = tmp_path / "bad.mid"
    bad.write_bytes(b"not a midi file at all")
    with pytest.raises(MidiError, match="bad.mid: not a readable MIDI"):
        midi_to_roll(bad)
    empty = tmp_path / "empty.mid"
    pretty_midi.PrettyMIDI().write(str(empty))
    with pytest.raises(MidiError, match="no notes"):
        midi_to_roll(empty)


def test_roll_to_notes_edges_and_threshold():
    roll = np.zeros((88, 10), dtype=np.float32)
    roll[39, 2:5] = 0.9
    roll[39, 5:7] = 0.4  # below threshold
    roll[40, 0:10] = 1.0  # touches both ends
    notes = roll_to_notes(roll, fps=10)
    assert notes == [(0.0, 1.0, 61, 80), (0.2, 0.5, 60, 80)]
    assert roll_to_notes(roll, fps=10, threshold=0.3)[1][:3] == (0.2, 0.7, 60)
    with pytest.raises(ValueError, match="88"):
        roll_to_notes(np.zeros((87, 4)))


def test_semitone_shift_scores_zero():
    """mir_eval gets Hz: a transcription one key off must not match (50-cent tolerance)."""
    ref = [(0.5 * i, 0.5 * i + 0.4, 60 + i % 12) for i in range(20)]
    shifted = [(on, off, p + 1) for on, off, p in ref]
    assert note_scores(ref, ref)["f1"] == 1.0
    assert note_scores(ref, shifted)["f1"] == 0.0


def test_onset_tolerance_is_50_ms_and_offsets_count_separately():
    ref = [(1.0, 2.0, 60)]
    assert note_scores(ref, [(1.04, 2.0, 60)])["f1"] == 1.0
    assert note_scores(ref, [(1.06, 2.0, 60)])["f1"] == 0.0
    s = note_scores(ref, [(1.0, 1.3, 60)])
    assert s["f1"] == 1.0 and s["f1_offset"] == 0.0
    assert note_scores([], [])["f1"] == 1.0 and note_scores(ref, [])["f1"] == 0.0


def test_frame_scores():
    ref = np.zeros((88, 20))
    ref[39, 0:10] = 1
    est = np.zeros((88, 20))
    est[39, 5:15] = 1
    s = frame_scores(ref, est)
    assert s["frame_precision"] == pytest.approx(0.5) and s["frame_recall"] == pytest.approx(0.5)
    assert s["frame_f1"] == pytest.approx(0.5)
    assert frame_scores(ref, ref)["frame_f1"] == pytest.approx(1.0)


# --- the note-state roll (frame, onset, velocity) -----------------------------------------------

NOTE_STATE = ("frame", "onset", "velocity")


def pedalled_performance(tmp_path) -> pretty_midi.PrettyMIDI:
    """The Bach chorale with varied velocities, a pedal held over whole bars (so notes are extended
    and re-struck under it) and a run of fast repeated notes."""
    pm = pretty_midi.PrettyMIDI(str(bach_chorale_midi(tmp_path)))
    rng = np.random.default_rng(0)
    piano = pm.instruments[0]
    for inst in pm.instruments:
        for n in inst.notes:
            n.velocity = int(rng.integers(20, 127))
    end = pm.get_end_time()
    for t in np.arange(0.0, end, 4.0):
        piano.control_changes += [pretty_midi.ControlChange(64, 127, t + 0.05), pretty_midi.ControlChange(64, 0, t + 3.0)]
    for i in range(8):  # 6.7 strikes per second on one key
        piano.notes.append(pretty_midi.Note(int(rng.integers(20, 127)), 90, end + 1 + 0.15 * i, end + 1 + 0.15 * i + 0.1))
    return pm


def test_note_state_roundtrip_keeps_onsets_offsets_and_velocities(tmp_path):
    ref = midi_notes(pedalled_performance(tmp_path))
    pitches = [n.pitch for n in ref]
    # re-strikes under the pedal: the same key sounding up to its next onset
    touching = sum(1 for i, a in enumerate(ref) for b in ref[i + 1:i + 40] if b.pitch == a.pitch and abs(b.onset - a.offset) < 1e-9)
    assert touching > 20 and len(ref) > 100 and pitches.count(90) >= 8
    roll = notes_to_roll(ref, channels=NOTE_STATE)
    assert roll.shape[0] == 3 * 88
    est = roll_to_notes(roll, channels=NOTE_STATE)
    s = note_scores(ref, est)
    assert s["f1"] == 1.0 and s["f1_offset"] == 1.0 and s["f1_velocity"] == 1.0
    assert len(est) == len(ref)
    for r, e in zip(sorted(ref, key=lambda n: (n.pitch, n.onset)), sorted(est, key=lambda n: (n.pitch, n.onset))):
        assert abs(r.velocity - e.velocity) <= 1


def test_frame_only_roll_splits_restrikes_with_a_gap_note_state_does_not():
    notes = [Note(0.0, 1.0, 60, 100), Note(1.0, 2.0, 60, 50)]  # re-struck under the pedal
    frame = notes_to_roll(notes, fps=10)
    assert frame[60 - 21, 9] == 0 and frame[60 - 21, 10] == 1  # the paper's one-frame gap
    state = notes_to_roll(notes, fps=10, channels=NOTE_STATE).reshape(3, 88, -1)
    assert state[0, 60 - 21, :20].all()  # no gap in the frame channel
    assert list(np.flatnonzero(state[1, 60 - 21])) == [0, 10]  # two onsets
    np.testing.assert_allclose(state[2, 60 - 21, [0, 9, 10, 19]], [100 / 127, 100 / 127, 50 / 127, 50 / 127])


def test_decoding_splits_at_onsets_and_never_at_a_dip_without_one():
    roll = np.zeros((3, 88, 40), dtype=np.float32)
    key = 40
    roll[0, key, 2:30] = 0.9
    roll[0, key, 12:14] = 0.1  # a dip in the frame channel, no onset there
    roll[1, key, 2] = 0.8
    roll[1, key, 20:22] = [0.7, 0.6]  # a re-strike (two frames above threshold: one onset)
    roll[2, key, 2:20] = 0.5
    roll[2, key, 20:30] = 0.25
    notes = roll_to_notes(roll.reshape(264, 40), fps=10, channels=NOTE_STATE)
    # the dip ends the first note; the frames after it start nothing; the onset starts the second
    assert [n[:3] for n in notes] == [(0.2, 1.2, key + 21), (2.0, 3.0, key + 21)]
    assert [n.velocity for n in notes] == [round(0.5 * 127), round(0.25 * 127)]
    roll[0, key, 12:14] = 0.9  # no dip: one note up to the re-strike, split exactly there
    notes = roll_to_notes(roll.reshape(264, 40), fps=10, channels=NOTE_STATE)
    assert [n[:3] for n in notes] == [(0.2, 2.0, key + 21), (2.0, 3.0, key + 21)]


def test_restrike_threshold_keeps_weak_onsets_inside_a_held_note():
    """A weak onset inside a sounding note splits it by default (every onset is a re-strike); with
    a re-strike threshold above its peak it is part of the note, a strong one still splits."""
    roll = np.zeros((3, 88, 60), dtype=np.float32)
    key = 30
    roll[0, key, 2:50] = 0.9
    roll[1, key, 2] = 0.9
    roll[1, key, 15:17] = [0.2, 0.35]  # weak: peaks at 0.35
    roll[1, key, 30] = 0.8  # strong
    roll[2, key, 2:50] = 0.5
    flat = roll.reshape(264, 60)
    starts = [n.onset for n in roll_to_notes(flat, fps=10, channels=NOTE_STATE, onset_threshold=0.15)]
    assert starts == [0.2, 1.5, 3.0]
    kw = dict(fps=10, channels=NOTE_STATE, onset_threshold=0.15, restrike_threshold=0.5)
    assert [n[:2] for n in roll_to_notes(flat, **kw)] == [(0.2, 3.0), (3.0, 5.0)]
    assert [n[:2] for n in roll_to_notes(flat, **dict(kw, restrike_threshold=0.9))] == [(0.2, 5.0)]
    # a weak onset after a silent frame starts a note: it re-strikes nothing
    roll[0, key, 10:15] = 0.0
    assert [n[:2] for n in roll_to_notes(roll.reshape(264, 60), **kw)] == [(0.2, 1.0), (1.5, 3.0), (3.0, 5.0)]


def test_offset_threshold_ends_started_notes_and_leaves_frame_runs_alone():
    """The offset threshold sets where a note started by an onset ends; frame runs without an onset
    are still read with the frame threshold."""
    roll = np.zeros((2, 88, 60), dtype=np.float32)
    roll[0, 10, 0:40] = np.linspace(0.9, 0.05, 40)  # a decaying note
    roll[1, 10, 0] = 0.9
    roll[0, 20, 5:25] = 0.2  # a frame run with no onset
    flat = roll.reshape(176, 60)
    kw = dict(fps=10, channels=("frame", "onset"), threshold=0.1, min_frames_without_onset=10)
    default = roll_to_notes(flat, **kw)
    assert [n[:3] for n in default] == [(0.0, 3.7, 31), (0.5, 2.5, 41)]
    held = roll_to_notes(flat, offset_threshold=0.5, **kw)
    assert [n[:3] for n in held] == [(0.0, 1.9, 31), (0.5, 2.5, 41)]
    from diffroll.core.config import get_config
    from diffroll.transcription.settings import DecodeSettings
    with pytest.raises(ValueError, match="offset_threshold"):
        DecodeSettings.of(get_config("smoke", offset_threshold=1.5))
    cfg = get_config("smoke", offset_threshold=0.4, restrike_threshold=0.6)  # saved in the config ...
    assert _offset_restrike(DecodeSettings.of(cfg)) == (0.4, 0.6)
    assert _offset_restrike(DecodeSettings.of(cfg, offset_threshold=0.2)) == (0.2, 0.6)  # ... and overridable
    assert _offset_restrike(DecodeSettings.of(get_config("smoke"))) == (None, None)  # None: frame / onset threshold


def _offset_restrike(settings) -> tuple:
    return settings.offset_threshold, settings.restrike_threshold


def test_frame_run_without_onset_is_a_note_only_past_the_minimum_length():
    roll = np.zeros((2, 88, 50), dtype=np.float32)
    roll[0, 10, 5:9] = 0.9  # 4 frames, no onset
    roll[0, 20, 5:25] = 0.9  # 20 frames, no onset
    flat = roll.reshape(176, 50)
    assert roll_to_notes(flat, fps=10, channels=("frame", "onset")) == []
    notes = roll_to_notes(flat, fps=10, channels=("frame", "onset"), min_frames_without_onset=10)
    assert [n[:3] for n in notes] == [(0.5, 2.5, 20 + 21)]


def test_notes_read_below_min_velocity_are_dropped():
    """A spurious onset whose velocity channel stays near 0 is dropped with min_velocity; the
    loud notes stay, and without a velocity channel nothing is dropped."""
    notes = [Note(0.5, 1.0, 60, 90), Note(1.5, 2.0, 64, 3), Note(2.5, 3.0, 67, 50)]
    roll = notes_to_roll(notes, n_frames=128, channels=NOTE_STATE)
    assert roll_to_notes(roll, channels=NOTE_STATE) == roll_to_notes(roll, channels=NOTE_STATE, min_velocity=0)
    kept = roll_to_notes(roll, channels=NOTE_STATE, min_velocity=10)
    assert [n.pitch for n in kept] == [60, 67]
    assert [n.pitch for n in roll_to_notes(roll, channels=NOTE_STATE, min_velocity=60)] == [60]
    no_velocity = roll[:176]
    assert len(roll_to_notes(no_velocity, channels=("frame", "onset"), min_velocity=60)) == 3
    from diffroll.core.config import get_config
    from diffroll.transcription.settings import DecodeSettings
    with pytest.raises(ValueError, match="min_velocity"):
        DecodeSettings.of(get_config("smoke", min_velocity=200))


def test_roll_channels_are_checked():
    with pytest.raises(ValueError, match="'frame' first"):
        notes_to_roll([], channels=("onset", "frame"))
    with pytest.raises(ValueError, match="264"):
        roll_to_notes(np.zeros((88, 5)), channels=NOTE_STATE)


def test_velocity_f1_needs_the_right_velocities():
    rng = np.random.default_rng(1)
    ref = [Note(0.5 * i, 0.5 * i + 0.4, 60 + i % 12, int(rng.integers(20, 120))) for i in range(30)]
    assert note_scores(ref, ref)["f1_velocity"] == 1.0
    flat = [n._replace(velocity=80) for n in ref]  # onsets and offsets right, velocities not
    s = note_scores(ref, flat)
    assert s["f1_offset"] == 1.0 and s["f1_velocity"] < 0.5
    scaled = [n._replace(velocity=max(1, n.velocity // 2)) for n in ref]  # mir_eval rescales globally
    assert note_scores(ref, scaled)["f1_velocity"] > 0.9


def test_split_notes_counts_spurious_restrikes_inside_held_notes():
    from diffroll.evaluation.metrics import split_notes

    ref = [Note(0.0, 2.0, 60), Note(2.0, 3.0, 60), Note(0.5, 1.0, 64)]
    assert split_notes(ref, ref) == 0
    est = [Note(0.0, 0.8, 60), Note(0.8, 2.0, 60),  # a held C4 cut in two: one split
           Note(2.02, 3.0, 60),  # the real re-strike (within 50 ms): not a split
           Note(0.5, 1.0, 65)]  # another key: not a split
    assert split_notes(ref, est) == 1


def test_offset_errors_pairs_onset_matched_notes_with_their_offset_error_and_tolerance():
    from diffroll.evaluation.metrics import offset_errors

    ref = [Note(0.0, 2.0, 60), Note(1.0, 1.1, 64), Note(3.0, 4.0, 67)]
    est = [Note(0.02, 1.2, 60),  # held by the pedal to 2.0, ended 0.8 s early (tolerance 0.4)
           Note(1.01, 1.13, 64),  # 30 ms late, within the 50 ms floor
           Note(3.0, 4.0, 68),  # a neighbouring key: no match
           Note(5.0, 6.0, 60)]  # no reference onset near: no match
    rows = offset_errors(ref, est)
    assert rows.shape == (2, 3)
    by_duration = {round(d, 6): (err, tol) for d, err, tol in rows}
    assert by_duration.keys() == {2.0, 0.1}
    np.testing.assert_allclose(by_duration[2.0], (-0.8, 0.4))
    np.testing.assert_allclose(by_duration[0.1], (0.03, 0.05), atol=1e-9)
    assert offset_errors(ref, []).shape == (0, 3)
    assert offset_errors(ref, [Note(9.0, 9.5, 60)]).shape == (0, 3)
    # consistent with note-with-offset F1: here one of the two onset matches keeps its offset
    within = np.abs(rows[:, 1]) <= rows[:, 2]
    assert within.sum() == 1
    assert note_scores(ref, est[:2])["recall_offset"] == pytest.approx(1 / 3)


def _sweep_oracle(roll: np.ndarray, **sweep_kwargs) -> list[dict]:
    """sweep_thresholds on a fake model whose x̂0 is always ``roll`` (128 frames), with its notes."""
    import torch

    from diffroll.core.config import get_config
    from diffroll.evaluation.runners import sweep_thresholds
    from diffroll.transcription.pipeline import Pipeline

    class Oracle(torch.nn.Module):
        rows = roll.shape[0]

        def __init__(self):
            super().__init__()
            self.anchor = torch.nn.Parameter(torch.zeros(()))

        def forward(self, x_t, t, mel):
            return torch.from_numpy(roll).expand(x_t.shape[0], -1, -1).clone()

    wave = np.random.default_rng(0).standard_normal(128 * 512).astype(np.float32) * 0.1
    pipe = Pipeline(Oracle(), get_config("smoke", w=0.0))
    return sweep_thresholds(pipe, [("x", "g", wave, SWEEP_NOTES)], frame_thresholds=(0.5,),
                            sampling=pipe.sampling.replace(sampler="ddim", steps=1), **sweep_kwargs)


SWEEP_NOTES = [Note(0.5, 1.5, 60, 80), Note(2.0, 3.0, 64, 80)]


def test_threshold_sweep_finds_the_threshold_that_reads_the_notes():
    """A fake note-state model whose onsets peak at 0.3: onset threshold 0.5 finds nothing, 0.2 all."""
    roll = notes_to_roll(SWEEP_NOTES, n_frames=128, channels=NOTE_STATE)
    roll[88:176] *= 0.3  # weak onsets
    rows = _sweep_oracle(roll, onset_thresholds=(0.2, 0.5))
    by = {r["onset_threshold"]: r["f1"] for r in rows}
    assert by == {0.2: 1.0, 0.5: 0.0}


def test_threshold_sweep_over_min_frames_without_onset():
    """A fake model that marks no onset for one of two notes: without a minimum length the frame
    run without onset is dropped (F1 2/3), from 3 frames it is read as a note (F1 1)."""
    roll = notes_to_roll(SWEEP_NOTES, n_frames=128, channels=NOTE_STATE)
    roll[88 + 64 - 21] = 0.0  # key 64 (row 43 of the 88 onset rows): no onset
    rows = _sweep_oracle(roll, onset_thresholds=(0.5,), min_frames_without_onset=(None, 3))
    by = {r["min_frames_without_onset"]: round(r["f1"], 3) for r in rows}
    assert by == {None: round(2 / 3, 3), 3: 1.0}


def test_threshold_sweep_over_restrike_and_offset_thresholds():
    """A fake model with a weak spurious onset inside a held note: every onset a re-strike splits it
    (one false note, a cut offset); a re-strike threshold above it reads the notes exactly. An offset
    threshold above the frame values ends every note one frame after its onset."""
    roll = notes_to_roll(SWEEP_NOTES, n_frames=128, channels=NOTE_STATE)
    roll[:88] *= 0.9  # frames at 0.9
    roll[88 + 60 - 21, int(1.0 * 31.25)] = 0.3  # a weak onset half-way through the held C4
    rows = _sweep_oracle(roll, onset_thresholds=(0.2,), restrike_thresholds=(None, 0.5),
                         offset_thresholds=(None, 0.95))
    by = {(r["restrike_threshold"], r["offset_threshold"]): (round(r["f1"], 3), round(r["f1_offset"], 3))
          for r in rows}
    assert by[(None, None)] == (round(2 * 2 / 3 / (2 / 3 + 1), 3), round(2 * 1 / 3 * 1 / 2 / (1 / 3 + 1 / 2), 3))
    assert by[(0.5, None)] == (1.0, 1.0)
    assert by[(0.5, 0.95)] == (0.8, 0.0)  # no note held past its onset; the weak onset now starts one


def test_missed_restrikes_counts_keys_struck_again_while_sounding_that_no_note_matches():
    from diffroll.evaluation.metrics import missed_restrikes, restrike_notes

    ref = [Note(0.0, 1.0, 60, 80), Note(1.0, 2.0, 60, 80),  # re-struck at its own offset (held by the pedal)
           Note(2.5, 3.0, 60, 80),  # struck again after a silence: not a re-strike
           Note(0.0, 2.0, 64, 80), Note(1.5, 2.5, 64, 80)]  # re-struck while still sounding
    assert restrike_notes(ref) == [1, 4]
    est = [Note(0.0, 2.0, 60, 80), Note(2.5, 3.0, 60, 80), Note(0.0, 2.5, 64, 80)]  # both re-strikes missed
    assert missed_restrikes(ref, est) == 2
    assert missed_restrikes(ref, est + [Note(1.52, 2.5, 64, 80)]) == 1
    assert missed_restrikes(ref, est + [Note(1.52, 2.5, 64, 80), Note(1.0, 2.0, 60, 80)]) == 0
    assert missed_restrikes(ref, []) == 2 and missed_restrikes([], est) == 0
