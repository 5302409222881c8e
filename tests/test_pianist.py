"""Pianistic pieces, sustain pedalling and piano re-voicing (diffroll.corpus.pianist)."""
import dataclasses
import json

import numpy as np
import pretty_midi
import pytest

from diffroll.core.harmony import harmony_changes
from diffroll.corpus.pedal import PedalSettings, add_pedal, pedal_events, pedal_spans
from diffroll.corpus.pianist import MAX_BPM, MIN_BPM, pianistic_piece, pianistic_score, revoice_for_piano
from diffroll.corpus.textures import TEXTURES

SEEDS = range(6)


@pytest.fixture(scope="module")
def scores():
    return [pianistic_score(np.random.default_rng(seed), 45.0) for seed in SEEDS]


def _rng(seed=0):
    return np.random.default_rng(seed)


def _notes(pm):
    return [(n.pitch, n.velocity, n.start, n.end) for n in pm.instruments[0].notes]


def _ccs(pm):
    return [(c.number, c.value, c.time) for c in pm.instruments[0].control_changes]


def _polyphony(notes):
    """Most notes sounding at once (a note ending as another starts does not overlap it)."""
    edges = sorted([(n.start, 1) for n in notes] + [(n.end, -1) for n in notes], key=lambda e: (e[0], e[1]))
    return max(np.cumsum([d for _, d in edges]))


def _block(chords, seconds=1.0, spread=0.0):
    """Block chords, one every ``seconds``; notes of a chord struck up to ``spread`` s apart."""
    return [pretty_midi.Note(80, p, i * seconds + k * spread, (i + 1) * seconds)
            for i, chord in enumerate(chords) for k, p in enumerate(chord)]


I, IV, V = (48, 52, 55, 60), (53, 57, 60, 65), (55, 59, 62, 67)


def _assert_well_formed(ccs, end):
    assert ccs, "no pedal at all"
    assert all(c.number == 64 for c in ccs)
    times = [c.time for c in ccs]
    downs = [c.value == 127 for c in ccs]
    assert all(c.value in (0, 127) for c in ccs)
    assert times == sorted(times) and len(set(times)) == len(times)
    assert downs == [k % 2 == 0 for k in range(len(ccs))], "must alternate, starting down"
    assert not downs[-1], "must end up"
    assert 0 <= times[0] and times[-1] <= end + 1e-9


# --- pieces ------------------------------------------------------------------------------------

def test_same_seed_same_midi_and_other_seeds_differ():
    a, b, c = (pianistic_piece(_rng(seed), 20.0) for seed in (3, 3, 4))
    assert _notes(a) == _notes(b) and _ccs(a) == _ccs(b)
    assert _notes(a) != _notes(c)
    assert len(a.instruments) == 1 and a.instruments[0].program == 0 and _ccs(a)


def test_pedal_does_not_change_the_notes():
    assert _notes(pianistic_piece(_rng(5), 20.0, pedal=False)) == _notes(pianistic_piece(_rng(5), 20.0))
    assert not _ccs(pianistic_piece(_rng(5), 20.0, pedal=False))


def test_pieces_stay_on_the_keyboard_with_shaped_dynamics(scores):
    for score in scores:
        pitches = [n.pitch for n in score.notes]
        velocities = [n.velocity for n in score.notes]
        assert 21 <= min(pitches) and max(pitches) <= 108
        assert 15 <= min(velocities) and max(velocities) <= 120
        assert np.std(velocities) > 5
        assert 44 <= max(n.end for n in score.notes) <= 60
        assert min(n.start for n in score.notes) < 45


def test_pieces_reach_ten_voices_and_five_octaves(scores):
    notes = [n for score in scores for n in score.notes]
    assert max(_polyphony(score.notes) for score in scores) >= 10
    assert max(n.pitch for n in notes) - min(n.pitch for n in notes) >= 60
    assert min(n.pitch for n in notes) <= 24 and max(n.pitch for n in notes) >= 100  # near A0 and C8


def test_sections_use_the_whole_tempo_range_with_rubato(scores):
    sections = [s for score in scores for s in score.sections]
    assert {s.texture for s in sections} <= set(TEXTURES) and len({s.texture for s in sections}) >= 8
    bpms = [s.bpm for s in sections]
    assert all(MIN_BPM <= b <= MAX_BPM for b in bpms)
    assert min(bpms) < 60 and max(bpms) > 150
    for s in sections:  # the section's length is its beats at its tempo, slowed by rubato and ritardando
        assert 0.95 < (s.end - s.start) / (s.beats * 60 / s.bpm) < 1.5
    slow, fast = min(sections, key=lambda s: s.bpm), max(sections, key=lambda s: s.bpm)
    assert fast.end - fast.start < fast.beats * 60 / slow.bpm


def test_harmony_changes_are_recorded_at_section_starts(scores):
    for score in scores:
        assert score.change_times == sorted(score.change_times)
        assert all(any(abs(c - s.start) < 1e-9 for c in score.change_times) for s in score.sections)
        assert len(score.change_times) >= 2 * len(score.sections)


def test_piece_pedal_is_well_formed_and_dry_where_staccato():
    for seed in SEEDS:
        score = pianistic_score(_rng(seed), 45.0)
        pm = pianistic_piece(_rng(seed), 45.0)
        end = max(n.end for n in pm.instruments[0].notes)
        _assert_well_formed(pm.instruments[0].control_changes, end)
        for down, up in pedal_spans(pm.instruments[0].control_changes):
            for start, stop in score.dry_spans:  # a dry section may only catch the release at its start
                assert up <= start + PedalSettings().release_delay[1] + 1e-9 or down >= stop


def test_no_pedal_when_every_phrase_is_dry():
    pm = pianistic_piece(_rng(2), 30.0, pedal_settings=PedalSettings(dry_probability=1.0))
    assert not _ccs(pm)


# --- pedalling -----------------------------------------------------------------------------------

def test_legato_pedalling_releases_after_each_change_and_presses_again():
    notes = _block([I, IV, V, I, IV, V, V, I])
    changes = [float(k) for k in range(8)]
    s = PedalSettings(dry_probability=0.0, long_pedal_probability=0.0)
    ccs = pedal_events(notes, changes, _rng(1), s)
    _assert_well_formed(ccs, 8.0)
    spans = pedal_spans(ccs)
    assert len(spans) == len(changes)
    assert s.first_press_delay[0] <= spans[0][0] - changes[0] <= s.first_press_delay[1]
    for change, (_, up), (down, _) in zip(changes[1:], spans, spans[1:]):
        assert up > change, "the pedal comes up after the new chord is struck"
        assert s.release_delay[0] <= up - change <= s.release_delay[1]
        assert s.repress_delay[0] <= down - up <= s.repress_delay[1]
    assert 8.0 - s.final_release[1] <= spans[-1][1] <= 8.0


def test_dry_probability_one_and_zero():
    notes = _block([I, IV, V, I] * 4)
    changes = [float(k) for k in range(16)]
    assert pedal_events(notes, changes, _rng(0), PedalSettings(dry_probability=1.0)) == []
    for seed in range(5):
        spans = pedal_spans(pedal_events(notes, changes, _rng(seed), PedalSettings(dry_probability=0.0)))
        for change in changes:  # pedal down somewhere in every harmony
            assert any(change < down < change + 1 or down < change < up for down, up in spans)
    some = [pedal_events(notes, changes, _rng(seed)) for seed in range(20)]
    assert any(len(pedal_spans(ccs)) < len(changes) for ccs in some)


def test_dry_spans_are_never_pedalled():
    notes = _block([I, IV, V, I] * 3)
    s = PedalSettings(dry_probability=0.0, long_pedal_probability=0.0)
    spans = pedal_spans(pedal_events(notes, range(12), _rng(0), s, dry=[(4.0, 8.0)]))
    assert spans and all(up <= 4.0 + s.release_delay[1] or down >= 8.0 for down, up in spans)
    assert any(down >= 8.0 for down, _ in spans) and any(up <= 4.2 for _, up in spans)


def test_long_pedals_hold_through_several_changes():
    notes = _block([I, IV, V, I] * 3)
    s = PedalSettings(dry_probability=0.0, long_pedal_probability=1.0, long_pedal_changes=(3, 3),
                      phrase_changes=(12, 12))
    spans = pedal_spans(pedal_events(notes, range(12), _rng(0), s))
    assert len(spans) == 4  # changed at 3, 6 and 9 only
    for change, (_, up) in zip((3, 6, 9), spans):
        assert s.release_delay[0] <= up - change <= s.release_delay[1]


def test_close_changes_never_give_simultaneous_events():
    notes = _block([I, IV, V, I] * 10, seconds=0.12)
    for seed in range(5):
        _assert_well_formed(pedal_events(notes, [k * 0.12 for k in range(40)], _rng(seed)), 4.8)


def test_settings_are_frozen_and_json_serialisable():
    s = PedalSettings()
    assert json.loads(json.dumps(dataclasses.asdict(s)))["release_delay"] == list(s.release_delay)
    with pytest.raises(dataclasses.FrozenInstanceError):
        s.dry_probability = 0.5


# --- harmony changes and pedalling scores --------------------------------------------------------------

def test_harmony_changes_of_a_block_progression():
    changes = harmony_changes(_block([I, IV, V, I], spread=0.01))
    assert len(changes) == 4
    assert np.allclose(changes, [0.0, 1.0, 2.0, 3.0], atol=0.05)
    assert harmony_changes(_block([I, I, I, I])) == [0.0]


def test_harmony_changes_find_chords_under_an_alberti_figure():
    def alberti(chord, bar):  # C-G-E-G in eighths for two seconds, under a melody with passing notes
        low, mid, high = chord[0], chord[1], chord[2]
        figure = [pretty_midi.Note(60, p, bar + k * 0.25, bar + (k + 1) * 0.25)
                  for k, p in enumerate([low, high, mid, high] * 2)]
        tune = [pretty_midi.Note(80, chord[3] + 12 + d, bar + k * 0.5, bar + (k + 1) * 0.5)
                for k, d in enumerate([0, 2, 0, -1])]
        return figure + tune
    notes = alberti(I, 0.0) + alberti(IV, 2.0) + alberti(V, 4.0) + alberti(I, 6.0)
    changes = harmony_changes(notes)
    assert all(min(abs(c - t) for c in changes) < 0.05 for t in (0.0, 2.0, 4.0, 6.0))
    assert len(changes) <= 16  # of 32 onsets: the figure itself is not a change at every note


def test_add_pedal_finds_changes_in_a_score():
    pm = pretty_midi.PrettyMIDI()
    piano = pretty_midi.Instrument(0)
    piano.notes = _block([I, IV, V, I])
    piano.control_changes = [pretty_midi.ControlChange(7, 100, 0.0), pretty_midi.ControlChange(64, 127, 0.5)]
    pm.instruments.append(piano)
    assert add_pedal(pm, _rng(0), settings=PedalSettings(dry_probability=0.0, long_pedal_probability=0.0)) is pm
    pedal = [c for c in piano.control_changes if c.number == 64]
    _assert_well_formed(pedal, 4.0)
    assert len(pedal_spans(pedal)) == 4
    assert [c.number for c in piano.control_changes].count(7) == 1


# --- re-voicing -------------------------------------------------------------------------------

def _chorale():
    """A four-voice chorale-like score: 16 chords, narrow range (bass 43–55, soprano 64–74)."""
    voicings = [(48, 55, 64, 72), (53, 57, 65, 69), (55, 59, 62, 67), (48, 55, 64, 72),
                (45, 57, 64, 69), (50, 57, 65, 69), (43, 59, 62, 67), (48, 55, 64, 72)] * 2
    notes = []
    for i, chord in enumerate(voicings):
        length = 1.0 if i % 4 == 3 else 0.5
        start = sum(1.0 if k % 4 == 3 else 0.5 for k in range(i))
        notes += [pretty_midi.Note(70, p, start, start + length) for p in chord]
    notes.append(pretty_midi.Note(70, 66, 0.25, 0.5))  # a passing note
    return notes


def test_revoice_keeps_onsets_widens_the_range_and_cleans_up():
    score = _chorale()
    onsets = {n.start for n in score}
    lo, hi = min(n.pitch for n in score), max(n.pitch for n in score)
    for seed in range(8):
        piano = revoice_for_piano(score, _rng(seed))
        assert onsets <= {n.start for n in piano}
        pitches = [n.pitch for n in piano]
        assert 21 <= min(pitches) and max(pitches) <= 108
        assert max(pitches) - min(pitches) > hi - lo
        assert len(piano) > len(score)
        by_pitch = {}
        for n in sorted(piano, key=lambda n: n.start):
            assert by_pitch.get(n.pitch, -1.0) <= n.start + 1e-9, "same key overlapping itself"
            by_pitch[n.pitch] = n.end
    same = [(n.pitch, n.start, n.end) for n in revoice_for_piano(score, _rng(1))]
    assert same == [(n.pitch, n.start, n.end) for n in revoice_for_piano(score, _rng(1))]


def test_revoice_sometimes_breaks_the_bass_into_a_figure():
    score = _chorale()
    onsets = {n.start for n in score}
    assert any({n.start for n in revoice_for_piano(score, _rng(seed))} - onsets for seed in range(20))
    assert revoice_for_piano([], _rng(0)) == []
