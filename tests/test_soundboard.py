"""The soundboard's weak bass (diffroll.corpus.soundboard): the filter, its draws, and the render job."""
from __future__ import annotations

import numpy as np
import pretty_midi
import pytest

from diffroll.corpus.offline import render_audio
from diffroll.corpus.soundboard import SoundboardSettings, radiate, soundboard_highpass

SR = 16000


def level_db(x: np.ndarray, hz: float) -> float:
    """dB of the spectrum's peak within ±3 % of ``hz`` (Hann window, the whole signal)."""
    spectrum = np.abs(np.fft.rfft(x * np.hanning(x.size)))
    freqs = np.fft.rfftfreq(x.size, 1 / SR)
    return 20 * np.log10(spectrum[(freqs > 0.97 * hz) & (freqs < 1.03 * hz)].max() + 1e-12)


def test_the_highpass_takes_the_lowest_fundamentals_away_and_keeps_the_partials():
    t = np.arange(2 * SR) / SR
    a0, partial = 27.5, 6 * 27.5  # A0 and its 6th partial, about where a real A0 is strongest
    x = np.sin(2 * np.pi * a0 * t) + np.sin(2 * np.pi * partial * t)
    y = soundboard_highpass(x, SR, corner_hz=110.0, order=4)
    assert y.shape == x.shape and y.dtype == np.float64
    # two octaves under a 4th-order corner: about 48 dB down; 1.3 octaves above it: within 0.5 dB
    assert level_db(x, a0) - level_db(y, a0) > 40
    assert abs(level_db(x, partial) - level_db(y, partial)) < 0.5
    with pytest.raises(ValueError, match="Nyquist"):
        soundboard_highpass(x, SR, corner_hz=9000.0, order=4)


def test_radiate_filters_only_its_timbres_at_its_rate_and_draws_the_same_either_way():
    x = np.random.default_rng(0).standard_normal(SR)
    on = SoundboardSettings(probability=1.0, corner_hz=(80.0, 140.0))
    assert radiate(x, SR, "salamander", np.random.default_rng(1), on) is x  # its bass is already weak
    off = SoundboardSettings(probability=0.0)
    assert radiate(x, SR, "procedural", np.random.default_rng(1), off) is x
    y = radiate(x, SR, "TimGM6mb", np.random.default_rng(1), on)
    assert y is not x and level_db(y, 30.0) < level_db(x, 30.0) - 20
    # the draws do not depend on the timbre: what follows in a seed's stream is the same
    g1, g2 = np.random.default_rng(5), np.random.default_rng(5)
    radiate(x, SR, "salamander", g1, on), radiate(x, SR, "csound", g2, on)
    assert g1.random() == g2.random()
    short = x[:64]
    share = np.mean([radiate(short, SR, "csound", np.random.default_rng(s), SoundboardSettings(probability=0.75))
                     is not short for s in range(400)])
    assert 0.68 < share < 0.82
    for bad in ({"probability": 1.5}, {"corner_hz": (140.0, 80.0)}, {"order": 0}):
        with pytest.raises(ValueError, match="SoundboardSettings"):
            SoundboardSettings(**bad)


def test_a_render_job_with_a_soundboard_loses_the_bass_fundamental():
    pm = pretty_midi.PrettyMIDI()
    piano = pretty_midi.Instrument(program=0)
    piano.notes.append(pretty_midi.Note(110, 24, 0.1, 1.6))  # C1, 32.7 Hz
    pm.instruments.append(piano)
    job = {"soundfont": "procedural", "seed": [0, 1], "detune": 0.0, "sample_rate": SR, "program": 0}
    dry = render_audio(job, pm)
    soft = render_audio({**job, "soundboard": {"probability": 1.0, "corner_hz": [100.0, 100.0]}}, pm)
    c1 = pretty_midi.note_number_to_hz(24)
    # relative to the 5th partial (a real C1's strongest), the fundamental falls by over 20 dB
    drop = (level_db(dry, c1) - level_db(dry, 5 * c1)) - (level_db(soft, c1) - level_db(soft, 5 * c1))
    assert drop > 20
