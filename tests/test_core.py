"""Config presets, the audio front-end and the network."""
import math

import numpy as np
import pytest
import soundfile as sf
import torch

from diffroll.core.audio import AudioError, MelFrontend, cached_frontend, load_audio, mel_spectrogram
from diffroll.core.config import SCALES, Config, get_config
from diffroll.core.model import DiffRoll, count_parameters
from diffroll.transcription.pipeline import new_model


def test_paper_preset_is_the_paper():
    c = get_config("paper")
    assert (c.audio.sample_rate, c.audio.n_fft, c.audio.n_mels, c.audio.f_min, c.audio.f_max) == (16000, 2048, 229, 0, 8000)
    assert c.audio.segment_samples == 327_680 and c.audio.segment_frames == 640 and c.audio.fps == 31.25
    assert (c.model.channels, c.model.layers, c.model.kernel_size, c.model.dilation) == (512, 15, 9, [1])
    assert (c.diffusion.T, c.diffusion.beta_start, c.diffusion.beta_end) == (200, 1e-4, 0.02)
    assert (c.diffusion.p, c.diffusion.w, c.diffusion.threshold) == (0.1, 0.5, 0.5)


@pytest.mark.parametrize("scale", SCALES)
def test_config_roundtrips_and_overrides(scale):
    c = get_config(scale)
    assert Config.from_dict(c.to_dict()) == c
    o = c.override(channels=32, p=0.25, dilation=[1, 2], lr=None)
    assert (o.model.channels, o.diffusion.p, o.model.dilation, o.train.lr) == (32, 0.25, [1, 2], c.train.lr)
    assert [o.model.dilation_of(i) for i in range(4)] == [1, 2, 1, 2]
    with pytest.raises(ValueError, match="unknown setting"):
        c.override(chanels=3)
    with pytest.raises(ValueError, match="unknown scale"):
        get_config("huge")


@pytest.mark.parametrize("scale", SCALES)
def test_model_shapes_for_every_preset(scale):
    cfg = get_config(scale)
    model = DiffRoll(cfg.model)
    frames = 16
    x = torch.randn(2, 88, frames)
    mel = torch.rand(2, cfg.model.n_mels, frames)
    with torch.no_grad():
        out = model(x, torch.tensor([1, cfg.diffusion.T]), mel)
    assert out.shape == (2, 88, frames)
    assert torch.count_nonzero(out) == 0  # zero-initialised output layer


def test_paper_model_size():
    """15 layers × 512 channels, k = 9: ~87 M parameters, ~110 GFLOP per 640-frame segment."""
    n = count_parameters(DiffRoll(get_config("paper").model))
    assert 80e6 < n < 95e6


def test_prepared_condition_matches_plain_forward():
    torch.manual_seed(0)
    model = DiffRoll(get_config("smoke").model)
    torch.nn.init.normal_(model.output_proj.weight)
    x, mel, t = torch.randn(2, 88, 12), torch.rand(2, 229, 12), torch.tensor([3, 7])
    with torch.no_grad():
        assert torch.allclose(model(x, t, mel), model(x, t, model.prepare_condition(mel)), atol=1e-6)


def test_model_is_causal_free_but_local():
    """Receptive field: a kernel-3, 2-layer net sees ±2 frames; far frames are untouched."""
    torch.manual_seed(0)
    model = DiffRoll(get_config("smoke").model)
    torch.nn.init.normal_(model.output_proj.weight)
    x, mel = torch.randn(1, 88, 30), torch.rand(1, 229, 30)
    x2 = x.clone()
    x2[..., 15] += 1
    with torch.no_grad():
        d = (model(x, torch.tensor([5]), mel) - model(x2, torch.tensor([5]), mel)).abs().sum(1)[0]
    assert d[13:18].sum() > 0 and d[:12].sum() == 0 and d[19:].sum() == 0


def test_load_audio_resamples_and_mixes_down(tmp_path):
    sr = 44100
    t = np.arange(sr) / sr
    stereo = np.stack([np.sin(2 * np.pi * 440 * t), np.sin(2 * np.pi * 440 * t)], 1) * 0.5
    sf.write(tmp_path / "a.wav", stereo, sr)
    wave = load_audio(tmp_path / "a.wav")
    assert wave.dtype == np.float32 and wave.ndim == 1 and len(wave) == 16000
    spec = np.abs(np.fft.rfft(wave))
    assert abs(np.argmax(spec) - 440) <= 1  # 1 s at 16 kHz: bin = Hz


def test_load_audio_errors_name_the_file(tmp_path):
    with pytest.raises(AudioError, match="missing.wav: no such audio file"):
        load_audio(tmp_path / "missing.wav")
    (tmp_path / "junk.wav").write_bytes(b"RIFF1234junk")
    with pytest.raises(AudioError, match="junk.wav: not a readable audio file"):
        load_audio(tmp_path / "junk.wav")
    sf.write(tmp_path / "empty.wav", np.zeros((0, 1)), 16000)
    with pytest.raises(AudioError, match="empty.wav: the audio file is empty"):
        load_audio(tmp_path / "empty.wav")


def test_mel_in_unit_range_silence_is_zero_and_shape():
    cfg = get_config("paper").audio
    wave = np.random.default_rng(0).standard_normal(cfg.segment_samples).astype(np.float32) * 0.1
    mel = mel_spectrogram(wave, cfg)
    assert mel.shape == (229, 640) and mel.min() == 0.0 and mel.max() == 1.0
    silent = mel_spectrogram(np.zeros(16000, np.float32), cfg)
    assert np.isfinite(silent).all() and (silent == 0).all()
    batch = MelFrontend(cfg)(torch.randn(3, 5120))
    assert batch.shape == (3, 229, 10)
    with pytest.raises(AudioError, match="shorter than one hop"):
        MelFrontend(cfg)(torch.zeros(100))


@pytest.mark.parametrize("samples", [1025, 16000, 16001, 52345])
def test_the_fft_mel_gives_nnaudios_mel(samples):
    """FastMelSpectrogram (the STFT by FFT) gives nnAudio's conv1d MelSpectrogram to float rounding,
    at any length, on noise and on a loud sine, in a batch; the scaled c_mel too."""
    from nnAudio.features import MelSpectrogram

    cfg = get_config("cpu").audio
    frontend = MelFrontend(cfg)
    t = torch.arange(samples) / cfg.sample_rate
    wave = torch.stack([0.1 * torch.randn(samples, generator=torch.Generator().manual_seed(0)),
                        0.9 * torch.sin(2 * math.pi * 440.0 * t)])
    ours = frontend.mel(wave)
    theirs = MelSpectrogram.forward(frontend.mel, wave)
    assert ours.shape == theirs.shape == (2, cfg.n_mels, samples // cfg.hop_length + 1)
    assert float((ours - theirs).abs().max()) < 1e-4 * float(theirs.abs().max())
    log_ours, log_theirs = torch.log(ours + 1e-5), torch.log(theirs + 1e-5)
    assert float((log_ours - log_theirs).abs().max()) < 1e-2  # the quiet bins too, where rounding weighs most
    with pytest.raises(AssertionError, match="shorter than reflect padding"):
        frontend.mel(torch.zeros(1, 1000))


def test_the_mel_frontend_is_made_once_per_config(frontends_made):
    """Transcriptions share one front-end per audio config and device (nnAudio's kernels take ~0.1 s
    to build); another config, or the same config changed afterwards, gets its own."""
    import dataclasses

    cfg = dataclasses.replace(get_config("smoke").audio, n_mels=57)
    made = frontends_made
    first = cached_frontend(cfg)
    assert cached_frontend(dataclasses.replace(cfg)) is first and len(made) == 1
    wave = torch.randn(2, 4096)
    torch.testing.assert_close(first(wave), MelFrontend(cfg)(wave))
    made.clear()
    cfg.n_mels = 58
    other = cached_frontend(cfg)
    assert other is not first and other.cfg.n_mels == 58 and first.cfg.n_mels == 57 and len(made) == 1
    assert other.cfg is not cfg  # a copy: changing cfg again cannot change the cached front-end


def test_mel_puts_a_tone_in_the_right_bin():
    cfg = get_config("paper").audio
    t = np.arange(32000) / 16000
    front = MelFrontend(cfg)
    mel = front(torch.as_tensor(0.5 * np.sin(2 * np.pi * 1000 * t), dtype=torch.float32))[0]
    fft_bin = round(1000 * cfg.n_fft / cfg.sample_rate)
    expected = int(front.mel.mel_basis[:, fft_bin].argmax())
    assert abs(int(mel.mean(1).argmax()) - expected) <= 1


def test_fixed_range_scaling_maps_a_level_to_the_same_value_in_any_window():
    """The same tone gives the same c_mel values whatever else is in the window (min-max does not)."""
    fixed = get_config("cpu").audio
    assert fixed.mel_scaling == "fixed" and get_config("paper").audio.mel_scaling == "minmax"
    rng = np.random.default_rng(0)
    n = fixed.segment_samples // 8
    t = np.arange(n) / 16000
    tone = (0.05 * np.sin(2 * np.pi * 440 * t)).astype(np.float32)
    loud = np.concatenate([tone, (0.9 * rng.standard_normal(n)).astype(np.float32)])
    quiet = np.concatenate([tone, (1e-3 * rng.standard_normal(n)).astype(np.float32)])
    frames = slice(4, n // fixed.hop_length - 4)  # the tone's frames, away from the boundary
    a = mel_spectrogram(loud, fixed)[:, frames]
    b = mel_spectrogram(quiet, fixed)[:, frames]
    np.testing.assert_allclose(a, b, atol=1e-4)
    paper = get_config("paper").audio
    assert np.abs(mel_spectrogram(loud, paper)[:, frames] - mel_spectrogram(quiet, paper)[:, frames]).max() > 0.1
    # a known level: white noise at -60 dBFS sits near the floor, a full-scale sine near the top
    noise = mel_spectrogram((1e-3 * rng.standard_normal(2 * n)).astype(np.float32), fixed)
    sine = mel_spectrogram(np.sin(2 * np.pi * 440 * np.arange(2 * n) / 16000).astype(np.float32), fixed)
    assert np.median(noise) < 0.15 and sine.max() == 1.0
    with pytest.raises(ValueError, match="mel_scaling"):
        MelFrontend(get_config("paper", mel_scaling="loud").audio)


def test_note_state_model_has_three_rows_per_key():
    cfg = get_config("smoke")
    assert cfg.roll.roll_channels == ["frame", "onset", "velocity"]
    assert get_config("paper").roll.roll_channels == ["frame"]
    model = DiffRoll(cfg.model, len(cfg.roll.roll_channels))
    out = model(torch.randn(2, 264, 16), torch.tensor([1, 5]), torch.rand(2, 229, 16))
    assert model.rows == 264 and out.shape == (2, 264, 16)


def test_configs_saved_before_the_roll_settings_load_as_the_paper_roll():
    """A checkpoint's config from before the note-state roll (no ``roll`` section, no mel scaling)
    loads with the paper's frame roll and min-max scaling, i.e. as it was trained."""
    old = get_config("cpu").to_dict()
    del old["roll"]
    for key in ("mel_scaling", "db_floor", "db_ceiling"):
        del old["audio"][key]
    del old["train"]["precision"]
    cfg = Config.from_dict(old)
    assert cfg.roll.roll_channels == ["frame"] and cfg.audio.mel_scaling == "minmax"


def test_velocity_head_changes_only_the_velocity_rows_and_starts_at_zero():
    cfg = get_config("smoke", velocity_head=8)
    with_head = new_model(cfg)
    plain = new_model(get_config("smoke"))
    plain.load_state_dict({k: v for k, v in with_head.state_dict().items() if not k.startswith("velocity_head.")})
    x, t, mel = torch.randn(2, 264, 32), torch.tensor([1, 7]), torch.rand(2, 229, 32)
    assert torch.equal(with_head(x, t, mel), plain(x, t, mel))  # zero-initialised output layer
    torch.nn.init.normal_(with_head.velocity_head.out.weight)
    out, ref = with_head(x, t, mel), plain(x, t, mel)
    assert torch.equal(out[:, :176], ref[:, :176])  # frame and onset rows untouched
    assert not torch.allclose(out[:, 176:], ref[:, 176:])
    # the velocity rows follow the mel through the head: louder audio, another correction
    louder = with_head(x, t, (mel + 0.2).clamp(max=1))
    assert not torch.allclose(louder[:, 176:], out[:, 176:])
    # the prepared condition carries the head's key levels
    assert torch.allclose(with_head(x, t, with_head.prepare_condition(mel)), out, atol=1e-6)
    # when sampling (eval mode) the head corrects only the last step's x̂0 (t = 1), not the trajectory
    with_head.eval(), plain.eval()
    out, ref = with_head(x, t, mel), plain(x, t, mel)
    assert not torch.allclose(out[0, 176:], ref[0, 176:]) and torch.equal(out[1], ref[1])
    assert torch.equal(with_head(x, torch.tensor([3, 7]), mel), plain(x, torch.tensor([3, 7]), mel))


def test_velocity_head_needs_a_velocity_channel():
    with pytest.raises(ValueError, match="velocity roll channel"):
        new_model(get_config("smoke", velocity_head=8, roll_channels=["frame", "onset"]))
