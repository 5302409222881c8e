"""The sampled piano, on a small synthetic sample bank in the Salamander layout: fetching, the bank
cache, pitch shifting, velocity layers, dampers and pedal, and its place in the corpus."""
import io
import os
import tarfile
import time

import numpy as np
import pretty_midi
import pytest
import soundfile as sf

from diffroll.corpus import offline as corpus

from diffroll.corpus import sampledpiano
from diffroll.core.config import get_config
from diffroll.corpus.render import RenderError
from diffroll.corpus.sampledpiano import SampleBank, SampledParams, SampledPiano, check_samples, fetch_samples, layer_velocity
from test_pianosynth import make_midi as midi
from test_pianosynth import rms

SR = 16000
RECORDED = ("A3", "C4", "D#4", "C5")  # every minor third, as in the real bank (a few keys only)


def tone(pitch: int, layer: int, seconds: float = 3.0, rate: int = 48000) -> np.ndarray:
    """A decaying harmonic tone, louder and brighter in higher layers (stereo, like the recordings)."""
    t = np.arange(int(seconds * rate)) / rate
    f0 = 440.0 * 2 ** ((pitch - 69) / 12)
    brightness = layer / 16
    x = sum((brightness ** (k - 1)) / k * np.sin(2 * np.pi * k * f0 * t) for k in range(1, 6))
    x = 0.05 * layer / 16 * x * np.exp(-t / 1.5)
    return np.stack([x, 0.9 * x], axis=1).astype(np.float32)


def write_bank(root, layers=(4, 12)) -> None:
    for layer in layers:
        (root / f"v{layer}").mkdir(parents=True, exist_ok=True)
        for name in RECORDED:
            sf.write(str(root / f"v{layer}" / f"{name}v{layer}.ogg"), tone(pretty_midi.note_name_to_number(name), layer),
                     48000, format="OGG", subtype="VORBIS")


@pytest.fixture(scope="module")
def bank(tmp_path_factory):
    root = tmp_path_factory.mktemp("salamander")
    write_bank(root)
    return SampleBank.load(root, SR)


def f0_of(audio, expected) -> float:
    """Strongest frequency within ±80 cents of ``expected`` (0.1 s to 1.1 s, 16x zero padding)."""
    x = audio[int(0.1 * SR):int(1.1 * SR)]
    spec = np.abs(np.fft.rfft(x * np.hanning(x.size), 16 * x.size))
    freqs = np.fft.rfftfreq(16 * x.size, 1 / SR)
    band = (freqs > expected * 2 ** (-80 / 1200)) & (freqs < expected * 2 ** (80 / 1200))
    return float(freqs[band][np.argmax(spec[band])])


def cents(f, g) -> float:
    return 1200 * np.log2(f / g)


@pytest.mark.parametrize("pitch, tuning", [(60, 0.0), (61, 0.0), (59, 0.0), (62, 0.0), (64, 25.0), (72, -30.0)])
def test_every_key_sounds_at_its_pitch_from_the_nearest_recording(bank, pitch, tuning):
    audio = SampledPiano(bank, SampledParams(tuning_cents=tuning)).render(midi([(pitch, 60, 0.0, 1.5)]))
    expected = 440.0 * 2 ** ((pitch - 69) / 12) * 2 ** (tuning / 1200)
    assert abs(cents(f0_of(audio, expected), expected)) < 3


def test_velocity_picks_the_nearest_layer_and_scales_within_it(bank):
    assert bank.layers == [4, 12]
    assert bank.nearest(61, 20) == (4, 60) and bank.nearest(61, 100) == (12, 60) and bank.nearest(66, 100) == (12, 63)
    piano = SampledPiano(bank, SampledParams(velocity_exponent=1.0))
    soft, mid, loud = (piano.render(midi([(60, v, 0.0, 1.0)])) for v in (layer_velocity(4), 40, layer_velocity(12)))
    np.testing.assert_allclose(rms(mid, 0, 1), rms(soft, 0, 1) * 40 / layer_velocity(4), rtol=1e-3)  # same layer
    assert rms(loud, 0, 1) > 2 * rms(mid, 0, 1)
    # the loud layer is brighter, not only louder: more energy in the upper partials
    def upper_share(a):
        power = np.abs(np.fft.rfft(a[:SR])) ** 2
        return power[np.fft.rfftfreq(SR, 1 / SR) > 600].sum() / power.sum()
    assert upper_share(loud) > 2 * upper_share(soft)


@pytest.mark.parametrize("pedal_value, held", [(127, True), (30, False)])
def test_dampers_and_the_sustain_pedal(bank, pedal_value, held):
    piano = SampledPiano(bank, SampledParams(damper_t60=0.1))
    audio = piano.render(midi([(60, 90, 0.0, 0.3)], pedal=[(0.1, pedal_value), (1.5, 0)]))
    assert audio.size == int(round(1.5 * SR)) + SR  # last event (pedal up) + 1 s tail
    if held:
        assert rms(audio, 0.7, 1.4) > 0.3 * rms(audio, 0.0, 0.3)
        assert rms(audio, 1.7, 2.0) < 1e-3 * rms(audio, 0.7, 1.4)
    else:
        assert rms(audio, 0.5, 1.4) < 1e-3 * rms(audio, 0.0, 0.3)


def test_restrike_damps_the_old_note(bank):
    piano = SampledPiano(bank)
    both = piano.render(midi([(60, 90, 0.0, 2.0), (60, 90, 1.0, 2.0)]))
    second = piano.render(midi([(60, 90, 1.0, 2.0)]))
    after = int(1.1 * SR)  # RESTRIKE_T60 = 40 ms: the old vibration is gone
    np.testing.assert_allclose(both[after:], second[after:], atol=1e-5 * np.abs(second).max())


def test_the_bank_cache_is_reused_and_refreshed(tmp_path):
    write_bank(tmp_path, layers=(8,))
    first = SampleBank.load(tmp_path, SR)
    cache = tmp_path / f"bank-{SR}.npz"
    assert cache.is_file() and first.layers == [8] and sorted(first.pitches[8]) == [57, 60, 63, 72]
    again = SampleBank.load(tmp_path, SR)
    for key, value in first.tones.items():
        np.testing.assert_array_equal(again.tones[key], value)
    assert max(v.size for v in first.tones.values()) <= sampledpiano.MAX_TONE_SECONDS * SR
    # a newer recording makes the cache stale
    newer = tmp_path / "v8" / "C4v8.ogg"
    sf.write(str(newer), 0.5 * tone(60, 8), 48000, format="OGG", subtype="VORBIS")
    os.utime(newer, (time.time() + 5, time.time() + 5))
    refreshed = SampleBank.load(tmp_path, SR)
    assert abs(refreshed.tones[(8, 60)]).max() < 0.7 * abs(first.tones[(8, 60)]).max()


def test_missing_samples_name_the_fetch_command(tmp_path):
    with pytest.raises(RenderError, match="fetch_salamander.py"):
        check_samples(tmp_path)
    with pytest.raises(RenderError, match="fetch_salamander.py"):
        SampleBank.load(tmp_path / "nowhere", SR)


def npm_package(path, files: dict[str, bytes]) -> None:
    with tarfile.open(path, "w:gz") as tar:
        for name, payload in files.items():
            info = tarfile.TarInfo(name)
            info.size = len(payload)
            tar.addfile(info, io.BytesIO(payload))


def test_fetch_writes_only_the_audio_files_of_each_layer(tmp_path, monkeypatch):
    monkeypatch.setattr(sampledpiano, "SAMPLES_PER_LAYER", 2)
    for layer in (4, 8):
        npm_package(tmp_path / f"piano-velocity{layer}.tgz", {
            f"package/audio/C4v{layer}.ogg": b"ogg-1", f"package/audio/A3v{layer}.ogg": b"ogg-2",
            "package/index.js": b"module.exports = []", "package/audio/../../escape.ogg": b"no"})
    npm_package(tmp_path / "piano-velocity12.tgz", {"package/audio/C4v12.ogg": b"ogg"})
    url = (tmp_path / "piano-velocity{layer}.tgz").as_uri().replace("%7B", "{").replace("%7D", "}")
    dest = tmp_path / "bank"
    assert fetch_samples(dest, layers=(4, 8), url=url) == dest
    assert sorted(p.relative_to(dest).as_posix() for p in dest.rglob("*")) == [
        "v4", "v4/A3v4.ogg", "v4/C4v4.ogg", "v8", "v8/A3v8.ogg", "v8/C4v8.ogg"]
    (tmp_path / "piano-velocity4.tgz").unlink()  # a layer already present is not downloaded again
    fetch_samples(dest, layers=(4,), url=url)
    with pytest.raises(RenderError, match="fewer than 2 samples"):
        fetch_samples(dest, layers=(12,), url=url)


def test_the_corpus_trains_on_it_and_keeps_it_out_of_the_test_splits(bank, tmp_path, monkeypatch):
    corpus.check_training_timbres(["TimGM6mb", "procedural", "salamander"])  # a training timbre
    write_bank(tmp_path)
    monkeypatch.setenv("DIFFROLL_SALAMANDER_DIR", str(tmp_path))
    job = {"soundfont": "salamander", "seed": [0, 1], "detune": 20.0, "sample_rate": SR, "program": 3}
    audio = corpus.render_audio(job, midi([(60, 80, 0.0, 1.0), (64, 80, 0.5, 1.0)]))
    assert audio.dtype == np.float32 and np.isclose(np.abs(audio).max(), 0.9, atol=1e-3)
    np.testing.assert_array_equal(audio, corpus.render_audio(job, midi([(60, 80, 0.0, 1.0), (64, 80, 0.5, 1.0)])))
    expected = 440.0 * 2 ** ((60 - 69) / 12) * 2 ** (20 / 1200)  # the job's detune reaches the sampled piano
    assert abs(cents(f0_of(audio, expected), expected)) < 3
    # training renders draw it (program 0: it has no GM programs); the test splits never do
    cfg = get_config("smoke")
    cfg.data.soundfonts, cfg.data.renders_per_piece = ["TimGM6mb", "procedural", "salamander"], 3
    performances = [{"piece": f"p{i}", "split": split, "midi": "p.mid"}
                    for i, split in enumerate(["train", "validation", "test", "piano_test"])]
    jobs = corpus._render_jobs(tmp_path, performances, cfg, seed=0)
    sampled = [j for j in jobs if j["soundfont"] == "salamander"]
    assert {j["row"]["split"] for j in sampled} == {"train", "validation"}
    assert all(j["program"] == 0 and j["augment"] for j in sampled)


def test_undamped_treble_keys_ring_until_the_last_event_then_stop(bank):
    piano = SampledPiano(bank, SampledParams(damper_t60=0.1, undamped_from=89))
    alone = piano.render(midi([(96, 90, 0.0, 0.1)]))  # C7 has no damper, its recording rings for seconds
    assert alone.size == int(round(0.1 * SR)) + SR  # yet the audio ends one tail after the last event
    assert rms(alone, 0.5, 1.1) < 1e-3 * rms(alone, 0.0, 0.1)
    held = piano.render(midi([(96, 90, 0.0, 0.1), (60, 90, 0.0, 1.0)]))
    treble = SampledPiano(bank, SampledParams(damper_t60=0.1, undamped_from=128)).render(
        midi([(96, 90, 0.0, 0.1), (60, 90, 0.0, 1.0)]))
    assert rms(held - treble, 0.5, 0.9) > 0.1 * rms(held, 0.5, 0.9)  # C7 still sounds under the later note
