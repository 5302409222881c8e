"""The procedural piano: pitch of every key, decays, pedal, re-strikes, velocity, parameters."""
import dataclasses
import json

import numpy as np
import pretty_midi
import pytest

from diffroll.corpus.pianosynth import ProceduralPiano, railsback_cents, render_procedural
from diffroll.corpus.synthparams import HELD_OUT_RANGES, TRAIN_RANGES, SynthParams

SR = 16000
PARAMS = {
    "default": SynthParams(),
    "train": SynthParams.random(np.random.default_rng(1)),
    "held_out": SynthParams.random(np.random.default_rng(2), held_out=True),
}


def make_midi(notes, pedal=(), drum=False) -> pretty_midi.PrettyMIDI:
    """notes: (pitch, velocity, start, end); pedal: (time, CC 64 value)."""
    pm = pretty_midi.PrettyMIDI()
    inst = pretty_midi.Instrument(0, is_drum=drum)
    inst.notes = [pretty_midi.Note(v, p, s, e) for p, v, s, e in notes]
    inst.control_changes = [pretty_midi.ControlChange(64, value, t) for t, value in pedal]
    pm.instruments.append(inst)
    return pm


def rms(audio, t0, t1) -> float:
    return float(np.sqrt(np.mean(np.square(audio[int(t0 * SR):int(t1 * SR)], dtype=np.float64))))


def measured_f0(audio, f0) -> float:
    """Peak of a 16x zero-padded Hann spectrum within ±50 cents of f0, refined by a parabola through
    the log magnitudes. Window: from 50 ms (after the hammer noise), min(0.8 s, 60 periods) long."""
    start, n = int(0.05 * SR), int(min(0.8, 60 / f0) * SR)
    nfft = 1 << int(np.ceil(np.log2(16 * n)))
    log_mag = np.log(np.abs(np.fft.rfft(audio[start:start + n] * np.hanning(n), nfft)) + 1e-30)
    lo, hi = (int(f0 * 2 ** (c / 1200) * nfft / SR) for c in (-50, 50))
    k = lo + int(np.argmax(log_mag[lo:hi + 1]))
    assert lo < k < hi, f"no spectral peak within ±50 cents of {f0:.2f} Hz"
    a, b, c = log_mag[k - 1:k + 2]
    return (k + 0.5 * (a - c) / (a - 2 * b + c)) * SR / nfft


def centroid(audio, seconds=0.5) -> float:
    power = np.abs(np.fft.rfft(audio[:int(seconds * SR)])) ** 2
    return float((power * np.fft.rfftfreq(int(seconds * SR), 1 / SR)).sum() / power.sum())


def stretched_f0(pitch, params) -> float:
    """Equal temperament moved by the piano's Railsback stretch."""
    cents = railsback_cents(pitch, params.stretch_bass_cents, params.stretch_treble_cents)
    return 440.0 * 2 ** ((pitch - 69) / 12 + cents / 1200)


@pytest.mark.parametrize("name", PARAMS)
def test_fundamental_within_5_cents_on_all_88_keys(name):
    synth = ProceduralPiano(PARAMS[name], SR)
    errors = {}
    for pitch in range(21, 109):
        f0 = stretched_f0(pitch, PARAMS[name])
        audio = synth.render(make_midi([(pitch, 80, 0.0, 1.0)]))
        errors[pitch] = 1200 * np.log2(measured_f0(audio, f0) / f0)
    worst = max(errors, key=lambda p: abs(errors[p]))
    assert abs(errors[worst]) < 5.0, f"MIDI {worst} is {errors[worst]:+.2f} cents off"


def test_partials_are_stretched_and_below_nyquist():
    params = PARAMS["held_out"]
    synth = ProceduralPiano(params, SR)
    bass = synth._partials(21)
    a0 = stretched_f0(21, params)
    assert bass.freq[0] == pytest.approx(a0, rel=1e-12) and bass.number[0] == 1
    stretch = bass.freq / (bass.number * a0)  # sqrt(1 + B n²) / sqrt(1 + B)
    assert bass.freq.size > 10 and np.all(np.diff(stretch) > 0) and stretch[-1] > 1.01
    assert np.all(bass.number <= params.n_partials)
    c8 = stretched_f0(108, params)
    assert synth._partials(108).freq.tolist() == [pytest.approx(c8, rel=1e-12)]  # partial 2 > 0.95 · Nyquist
    g6 = synth._partials(91)  # G6, 1568 Hz: partials 1..4 fit under 7600 Hz, 5 does not
    assert g6.number.tolist() == [1, 2, 3, 4] and g6.freq[-1] < 0.95 * SR / 2


def test_bass_rings_longer_than_treble():
    synth = ProceduralPiano(SynthParams(), SR)
    decay = {}
    for pitch in (33, 60, 96):
        audio = synth.render(make_midi([(pitch, 90, 0.0, 3.0)]))
        decay[pitch] = rms(audio, 2.0, 2.2) / rms(audio, 0.05, 0.25)
    assert decay[33] > 0.05 and decay[96] < 1e-3
    assert decay[33] > decay[60] > decay[96]


@pytest.mark.parametrize("pedal_value, held", [(64, True), (127, True), (63, False)])
def test_sustain_pedal_holds_a_released_note_until_pedal_up(pedal_value, held):
    synth = ProceduralPiano(SynthParams(), SR)
    note = [(48, 90, 0.0, 0.3)]
    dry = synth.render(make_midi(note))
    pedalled = synth.render(make_midi(note, pedal=[(0.1, pedal_value), (1.5, 0)]))
    assert pedalled.size == int(round(1.5 * SR)) + SR  # last event (pedal up) + 1 s tail
    between = rms(pedalled, 0.7, 1.4)
    if held:
        assert between > 100 * rms(dry, 0.7, 1.4)  # the dry note was damped at 0.3 s
        assert between > 0.05 * rms(pedalled, 0.0, 0.3)
        assert rms(pedalled, 1.8, 2.2) < 1e-3 * between  # damped after the pedal went up
    else:  # CC 64 < 64 is no pedal: the same audio as without
        np.testing.assert_array_equal(pedalled[:dry.size], dry)


def test_pedal_never_released_lets_go_at_the_last_event():
    synth = ProceduralPiano(SynthParams(), SR)
    audio = synth.render(make_midi([(48, 90, 0.0, 0.3), (60, 90, 1.0, 2.0)], pedal=[(0.1, 127)]))
    assert audio.size == 2 * SR + SR
    assert rms(audio, 1.5, 1.9) > 0.01 * rms(audio, 0.0, 0.3)
    assert rms(audio, 2.5, 3.0) < 1e-4 * rms(audio, 1.5, 1.9)


def test_top_keys_have_no_dampers():
    note = make_midi([(96, 90, 0.0, 0.1)])
    free = ProceduralPiano(SynthParams(), SR).render(note)  # undamped_from=89: C7 rings on
    damped = ProceduralPiano(SynthParams(undamped_from=128), SR).render(note)
    assert rms(free, 0.3, 0.4) > 0.01 * rms(free, 0.0, 0.1)
    assert rms(damped, 0.3, 0.4) < 1e-3 * rms(free, 0.3, 0.4)


@pytest.mark.parametrize("pedal", [(), ((0.0, 127), (3.0, 0))])
def test_restrike_restarts_the_note(pedal):
    synth = ProceduralPiano(SynthParams(sympathetic_level=0.0), SR)  # the first note's resonance rings on
    first_end = 0.2 if pedal else 2.0
    both = synth.render(make_midi([(60, 100, 0.0, first_end), (60, 100, 1.0, 2.0)], pedal=pedal))
    second = synth.render(make_midi([(60, 100, 1.0, 2.0)], pedal=pedal))
    assert rms(both, 1.0, 1.05) > 3 * rms(both, 0.9, 0.95)  # energy rises again at the new onset
    assert rms(both, 0.9, 0.95) > 0.01 * rms(both, 1.0, 1.05)  # and the old note was still sounding
    # 50 ms after the re-strike the old vibration is gone: only the new note remains
    after = int(1.05 * SR)
    np.testing.assert_allclose(both[after:], second[after:], atol=1e-6 * np.abs(second).max())


@pytest.mark.parametrize("pitch", [36, 60, 84])
def test_louder_velocity_is_louder_and_brighter(pitch):
    synth = ProceduralPiano(PARAMS["train"], SR)
    soft = synth.render(make_midi([(pitch, 40, 0.0, 1.0)]))
    loud = synth.render(make_midi([(pitch, 110, 0.0, 1.0)]))
    assert rms(loud, 0.0, 0.5) > 3 * rms(soft, 0.0, 0.5)
    assert centroid(loud) > 1.1 * centroid(soft)


def test_same_inputs_same_audio_and_params():
    midi = make_midi([(40, 70, 0.0, 0.5), (64, 100, 0.25, 1.0), (64, 50, 0.8, 1.2), (100, 90, 0.3, 0.6)],
                     pedal=[(0.4, 100), (1.0, 0)])
    a = ProceduralPiano(PARAMS["train"], SR).render(midi)
    b = ProceduralPiano(PARAMS["train"], SR).render(midi)
    assert a.dtype == np.float32 and np.all(np.isfinite(a))
    np.testing.assert_array_equal(a, b)
    other = ProceduralPiano(dataclasses.replace(PARAMS["train"], seed=PARAMS["train"].seed + 1), SR).render(midi)
    assert not np.array_equal(a, other)
    assert SynthParams.random(np.random.default_rng(7)) == SynthParams.random(np.random.default_rng(7))
    assert SynthParams.random(np.random.default_rng(7)) != SynthParams.random(np.random.default_rng(8))
    np.testing.assert_array_equal(render_procedural(midi, seed=3),
                                  ProceduralPiano(SynthParams.random(np.random.default_rng(3))).render(midi))


def test_training_and_held_out_ranges_are_disjoint_and_params_serialise():
    assert TRAIN_RANGES.keys() == HELD_OUT_RANGES.keys()
    disjoint = [name for name in TRAIN_RANGES
                if TRAIN_RANGES[name][1] < HELD_OUT_RANGES[name][0] or HELD_OUT_RANGES[name][1] < TRAIN_RANGES[name][0]]
    assert {"brightness", "decay_scale"} <= set(disjoint)
    rng = np.random.default_rng(0)
    for held_out, ranges in ((False, TRAIN_RANGES), (True, HELD_OUT_RANGES)):
        for _ in range(50):
            params = SynthParams.random(rng, held_out=held_out)
            for name, (lo, hi) in ranges.items():
                assert lo <= getattr(params, name) <= hi, (held_out, name)
            text = json.dumps(dataclasses.asdict(params))
            assert SynthParams(**json.loads(text)) == params


def test_no_notes_is_a_clear_error():
    synth = ProceduralPiano(SynthParams(), SR)
    with pytest.raises(ValueError, match="no notes"):
        synth.render(pretty_midi.PrettyMIDI())
    with pytest.raises(ValueError, match="no notes"):
        synth.render(make_midi([(36, 100, 0.0, 1.0)], drum=True))
    with pytest.raises(ValueError, match="damper_t60"):
        SynthParams(damper_t60=0.0)
