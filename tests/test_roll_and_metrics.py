"""Piano rolls and MIDI (roll.py) and the mir_eval metrics (evaluate.py)."""
import numpy as np
import pretty_midi
import pytest

from diffroll.evaluate import frame_scores, note_scores
from diffroll.roll import MidiError, midi_notes, midi_to_roll, notes_to_midi, roll_to_notes


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
    with caplog.at_level("WARNING", logger="diffroll.roll"):
        midi_notes(pm)
    assert "dropped 2 notes" in caplog.text


def test_sustain_pedal_extends_and_restrike_cuts():
    pm = pretty_midi.PrettyMIDI()
    inst = pretty_midi.Instrument(0)
    inst.notes = [pretty_midi.Note(100, 60, 0.0, 0.2), pretty_midi.Note(100, 64, 0.0, 0.2),
                  pretty_midi.Note(100, 60, 1.0, 1.1)]
    inst.control_changes = [pretty_midi.ControlChange(64, 127, 0.1), pretty_midi.ControlChange(64, 0, 2.0)]
    pm.instruments.append(inst)
    notes = midi_notes(pm)
    assert (0.0, 1.0, 60) in notes  # sustained until the key is struck again
    assert (0.0, 2.0, 64) in notes  # sustained until the pedal goes up
    assert (1.0, 2.0, 60) in notes
    dry = midi_notes(pm, sustain=False)
    assert (0.0, 0.2, 60) in dry
    # the re-struck key stays two notes in the roll
    assert len([n for n in roll_to_notes(midi_to_roll(pm)) if n[2] == 60]) == 2


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
    assert notes == [(0.0, 1.0, 61), (0.2, 0.5, 60)]
    assert roll_to_notes(roll, fps=10, threshold=0.3)[1] == (0.2, 0.7, 60)
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
