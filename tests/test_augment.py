"""The training augmentation (room, microphone, recorder) and the procedural piano's real-piano physics."""
from __future__ import annotations

import dataclasses

import numpy as np
import pretty_midi
import pytest
from scipy import signal

from diffroll.render import AugmentSettings, augment_audio, compress, normalize_peak, room_impulse_response
from diffroll.room import RoomSettings, recording_chain, room_and_mic

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
