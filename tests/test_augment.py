"""The training augmentation (room, microphone, recorder) and the procedural piano's real-piano physics."""
from __future__ import annotations

import dataclasses

import numpy as np
import pretty_midi
import pytest
from scipy import signal

from diffroll.corpus.render import AugmentSettings, augment_audio, compress, normalize_peak, room_impulse_response
from diffroll.corpus.room import RoomSettings, recording_chain, room_and_mic

SR = 16000


def _music(seconds: float = 4.0, seed: int = 0) -> np.ndarray:
    """A few decaying tones, peak 0.9: enough structure for filters, reverb and a compressor."""
    rng = np.random.default_rng(seed)
    t = np.arange(int(seconds * SR)) / SR
    x = np.zeros_like(t)
    for onset in np.arange(0.1, seconds - 0.5, 0.4):
        f0 = 110 * 2 ** (rng.integers(0, 36) / 12)
        env = np.where(t >= onset, np.exp(-(t - onset) * 3), 0.0)
        x += env * sum(np.sin(2 * np.pi * k * f0 * (t - onset)) / k for k in range(1, 6))
    return normalize_peak(x)


ROOM_ALWAYS = AugmentSettings(room=RoomSettings(probability=1.0, compressor_probability=1.0, mp3_probability=1.0))


@pytest.mark.parametrize("settings", [AugmentSettings(), ROOM_ALWAYS, AugmentSettings(room=None)],
                         ids=["default", "room-always", "room-off"])
def test_chain_is_deterministic_under_a_seed(settings):
    x = _music()
    a = augment_audio(x, SR, np.random.default_rng([7, 1]), settings)
    b = augment_audio(x, SR, np.random.default_rng([7, 1]), settings)
    c = augment_audio(x, SR, np.random.default_rng([8, 1]), settings)
    assert a.dtype == np.float32 and a.shape == x.shape
    assert np.array_equal(a, b)
    assert not np.array_equal(a, c)
    assert np.isfinite(a).all()
    peak_db = 20 * np.log10(np.abs(a).max())
    assert -30.5 <= peak_db <= -0.9  # AugmentSettings.peak_dbfs


def test_room_chain_pieces_are_deterministic_and_keep_length():
    x = _music(3.0)
    for seed in range(4):
        one = room_and_mic(x, SR, np.random.default_rng(seed))
        assert np.array_equal(one, room_and_mic(x, SR, np.random.default_rng(seed)))
        assert one.shape == x.shape and np.isfinite(one).all() and np.abs(one).max() > 1e-3
        rec = recording_chain(one, SR, np.random.default_rng(seed), RoomSettings(compressor_probability=1.0,
                                                                                  mp3_probability=1.0))
        assert rec.shape == x.shape and np.isfinite(rec).all()


def test_room_keeps_the_direct_sound_in_place():
    """The direct sound's travel time is removed: a click stays where it was (labels stay aligned)."""
    x = np.zeros(2 * SR)
    x[SR] = 1.0
    for seed in range(5):
        y = room_and_mic(x, SR, np.random.default_rng(seed), RoomSettings(mic_distance_m=(0.5, 1.0)))
        assert abs(int(np.argmax(np.abs(y))) - SR) <= 2


def test_room_reverberates():
    x = np.zeros(2 * SR)
    x[SR // 2] = 1.0
    y = room_and_mic(x, SR, np.random.default_rng(3), RoomSettings(absorption=(0.1, 0.15), lowcut_hz=(20, 21)))
    tail = y[SR // 2 + SR // 10: SR]  # 100-500 ms after the click
    assert np.sqrt(np.mean(tail**2)) > 1e-4


def _old_augment_audio(audio, sample_rate, rng, settings, force_noise=False):
    """augment_audio as it was before the room (diffroll 0.2.0, corpus v4), verbatim but for names."""
    st = settings
    x = audio.astype(np.float64)
    nyquist = sample_rate / 2
    for _ in range(int(rng.integers(st.eq_bands[0], st.eq_bands[1] + 1))):
        centre = float(np.exp(rng.uniform(np.log(80.0), np.log(0.7 * nyquist))))
        octaves = rng.uniform(0.5, 2.0)
        lo, hi = centre * 2 ** (-octaves / 2), min(centre * 2 ** (octaves / 2), 0.95 * nyquist)
        band = signal.butter(1, [lo, hi], btype="bandpass", fs=sample_rate, output="sos")
        x = x + (10 ** (rng.uniform(-st.eq_gain_db, st.eq_gain_db) / 20) - 1) * signal.sosfilt(band, x)
    if rng.random() < st.tilt_probability:
        kind, corner = ("lowpass", rng.uniform(150, 600)) if rng.random() < 0.5 else ("highpass", rng.uniform(2000, 5000))
        shelf = signal.butter(2, corner, btype=kind, fs=sample_rate, output="sos")
        x = x + (10 ** (rng.uniform(-8, 8) / 20) - 1) * signal.sosfilt(shelf, x)
    if rng.random() < st.reverb_probability:
        wet = signal.fftconvolve(x, room_impulse_response(rng, sample_rate, rng.uniform(*st.rt60_s)))[: x.size]
        x = x + rng.uniform(*st.reverb_wet) * wet * (_rms(x) / max(_rms(wet), 1e-12))
    if rng.random() < st.compression_probability:
        x = compress(x, sample_rate, threshold_db=20 * np.log10(max(np.abs(x).max(), 1e-9)) - rng.uniform(6, 20),
                     ratio=rng.uniform(*st.compression_ratio), release_s=rng.uniform(0.05, 0.3))
    if force_noise or rng.random() < st.noise_probability:
        noise = rng.standard_normal(x.size)
        colour = rng.random()
        if colour < 1 / 3:
            noise = signal.sosfilt(signal.butter(1, rng.uniform(300, 3000), fs=sample_rate, output="sos"), noise)
        elif colour < 2 / 3:
            noise = sum(signal.sosfilt(signal.butter(1, f, fs=sample_rate, output="sos"), noise) * (f / 100) ** 0.5
                        for f in (100, 400, 1600, 6400))
        snr_db = rng.uniform(*st.snr_db)
        x = x + noise * (_rms(x) / max(_rms(noise), 1e-12)) * 10 ** (-snr_db / 20)
    return normalize_peak(x, peak=10 ** (rng.uniform(*st.peak_dbfs) / 20))


def _rms(x):
    return float(np.sqrt(np.mean(np.square(x)))) if x.size else 0.0


@pytest.mark.parametrize("room", [None, RoomSettings(probability=0.0)], ids=["None", "probability-0"])
def test_room_off_is_the_old_chain_bit_for_bit(room):
    x = _music()
    settings = AugmentSettings(room=room)
    for seed in range(6):
        for force_noise in (False, True):
            new = augment_audio(x, SR, np.random.default_rng([seed, 1]), settings, force_noise=force_noise)
            old = _old_augment_audio(x, SR, np.random.default_rng([seed, 1]), settings, force_noise=force_noise)
            assert np.array_equal(new, old)


def test_force_noise_fills_silence_in_the_room_chain():
    x = _music(3.0)
    x[SR:2 * SR] = 0.0
    settings = AugmentSettings(noise_probability=0.0, room=RoomSettings(probability=1.0, absorption=(0.9, 0.95)))
    quiet = augment_audio(x, SR, np.random.default_rng(0), settings)
    noisy = augment_audio(x, SR, np.random.default_rng(0), settings, force_noise=True)
    gap = slice(int(1.6 * SR), int(1.9 * SR))  # past the room's decay, before the music resumes

    def level(y):  # the gap's RMS against the peak (the two draws differ in gain)
        return np.sqrt(np.mean(y[gap].astype(np.float64) ** 2)) / np.abs(y).max()
    assert level(noisy) > 10 * level(quiet)


# --- the procedural piano's real-piano physics ------------------------------------------------

from diffroll.corpus.pianosynth import ProceduralPiano, railsback_cents  # noqa: E402
from diffroll.corpus.synthparams import SynthParams  # noqa: E402

QUIET = dict(sympathetic_level=0.0, key_noise_level=0.0, damper_noise_level=0.0, pedal_noise_level=0.0)


def _midi(notes, pedal=()) -> pretty_midi.PrettyMIDI:
    """notes: (pitch, velocity, start, end); pedal: (time, CC 64 value)."""
    pm = pretty_midi.PrettyMIDI()
    inst = pretty_midi.Instrument(0)
    inst.notes = [pretty_midi.Note(v, p, s, e) for p, v, s, e in notes]
    inst.control_changes = [pretty_midi.ControlChange(64, value, t) for t, value in pedal]
    pm.instruments.append(inst)
    return pm


def _peak_hz(audio, near_hz, cents=60, start_s=0.05, seconds=1.0) -> float:
    """The strongest spectral peak within ±``cents`` of ``near_hz`` (Hann window, 16x zero padding,
    parabolic refinement of the log magnitude)."""
    n = int(seconds * SR)
    nfft = 1 << int(np.ceil(np.log2(16 * n)))
    seg = audio[int(start_s * SR):int(start_s * SR) + n]
    log_mag = np.log(np.abs(np.fft.rfft(seg * np.hanning(seg.size), nfft)) + 1e-30)
    lo, hi = (int(near_hz * 2 ** (c / 1200) * nfft / SR) for c in (-cents, cents))
    k = lo + int(np.argmax(log_mag[lo:hi + 1]))
    a, b, c = log_mag[k - 1:k + 2]
    return (k + 0.5 * (a - c) / (a - 2 * b + c)) * SR / nfft


def _cents(f, ref):
    return 1200 * np.log2(f / ref)


def test_railsback_curve_shape():
    assert railsback_cents(69, 20, 30) == 0.0
    assert railsback_cents(21, 20, 30) == pytest.approx(-20.0) and railsback_cents(108, 20, 30) == pytest.approx(30.0)
    curve = [railsback_cents(p, 20, 30) for p in range(21, 109)]
    assert np.all(np.diff(curve) >= 0)


@pytest.mark.parametrize("pitch, sign", [(96, +1), (24, -1)], ids=["C7-sharp", "C1-flat"])
def test_stretched_tuning_is_heard(pitch, sign):
    """The measured fundamental of a lone note sits where the Railsback curve puts it."""
    params = SynthParams(stretch_bass_cents=30.0, stretch_treble_cents=40.0, **QUIET)
    nominal = 440.0 * 2 ** ((pitch - 69) / 12)
    expected = railsback_cents(pitch, 30.0, 40.0)
    assert sign * expected > 15
    measured = _cents(_peak_hz(ProceduralPiano(params, SR).render(_midi([(pitch, 80, 0.0, 1.5)])), nominal), nominal)
    assert measured == pytest.approx(expected, abs=3.0)
    flat = dataclasses.replace(params, stretch_bass_cents=0.0, stretch_treble_cents=0.0)
    untuned = _cents(_peak_hz(ProceduralPiano(flat, SR).render(_midi([(pitch, 80, 0.0, 1.5)])), nominal), nominal)
    assert abs(untuned) < 3.0


def test_bass_partials_are_inharmonic():
    """The 10th partial of A1 lies measurably above 10 · f0 (B ≈ 1.7e-4 there: ~+15 cents); with
    almost no stiffness it sits at 10 · f0."""
    def tenth_over_ten_f0(scale):
        params = SynthParams(inharmonicity_scale=scale, **QUIET)
        audio = ProceduralPiano(params, SR).render(_midi([(33, 100, 0.0, 2.0)]))
        f0 = _peak_hz(audio, 55.0, seconds=1.5)
        return _cents(_peak_hz(audio, 10 * f0, cents=60, seconds=1.5), 10 * f0)
    assert tenth_over_ten_f0(1.0) > 8.0
    assert abs(tenth_over_ten_f0(1e-6)) < 2.0


def _band_rms(audio, hz, cents=15, start_s=0.5, seconds=1.0) -> float:
    seg = audio[int(start_s * SR):int((start_s + seconds) * SR)].astype(np.float64)
    spec = np.abs(np.fft.rfft(seg * np.hanning(seg.size)))
    freq = np.fft.rfftfreq(seg.size, 1 / SR)
    band = (freq > hz * 2 ** (-cents / 1200)) & (freq < hz * 2 ** (cents / 1200))
    return float(np.sqrt(np.mean(spec[band] ** 2)))


def test_sympathetic_resonance_only_under_the_pedal():
    """A3 played with the pedal down makes E5 (a twelfth up) ring at E5's own partials; without the
    pedal the resonance adds nothing at all."""
    on, off = SynthParams(**{**QUIET, "sympathetic_level": 0.02}), SynthParams(**QUIET)
    note = [(57, 100, 0.0, 0.4)]
    for pedal in ((), ((0.0, 127), (2.0, 0))):
        with_res = ProceduralPiano(on, SR).render(_midi(note, pedal))
        without = ProceduralPiano(off, SR).render(_midi(note, pedal))
        if not pedal:
            assert np.array_equal(with_res, without)
            continue
        added = with_res - without
        e5 = ProceduralPiano(on, SR)._partials(76).freq[0]  # stretched E5, ~3 x A3
        assert _band_rms(added, e5) > 30 * _band_rms(added, 1.25 * 220.0)  # no key there
        assert np.sqrt(np.mean(added**2)) < 0.3 * np.sqrt(np.mean(without**2))  # faint
        assert np.abs(added[int(2.4 * SR):]).max() < 1e-3 * np.abs(added).max()  # damped at pedal up


@pytest.mark.parametrize("kind, when", [("key_noise_level", 0.5), ("damper_noise_level", 1.0),
                                        ("pedal_noise_level", 1.5)])
def test_mechanical_noises_where_and_only_when_on(kind, when):
    """Keybed thump at the onset (0.5 s), damper noise at the key's release (1.0 s), pedal noise at
    the press (1.5 s); nothing elsewhere, nothing when the level is 0."""
    midi = _midi([(60, 100, 0.5, 1.0)], pedal=[(1.5, 127), (2.5, 0)])
    quiet = ProceduralPiano(SynthParams(**QUIET), SR).render(midi)
    noisy = ProceduralPiano(SynthParams(**{**QUIET, kind: 0.05}), SR).render(midi)
    added = (noisy - quiet).astype(np.float64)
    at = added[int(when * SR):int((when + 0.05) * SR)]
    assert np.abs(at).max() > 0.005
    assert np.abs(added[int((when - 0.2) * SR):int(when * SR)]).max() == 0.0  # nothing before
    assert np.abs(added[int((when + 0.3) * SR):int(2.5 * SR)]).max() == 0.0  # short
