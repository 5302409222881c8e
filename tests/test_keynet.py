"""The key-shared network and its harmonic CQT front-end (beyond the paper; config.KEYSHARED)."""
import dataclasses

import datasets
import numpy as np
import pytest
import torch

from diffroll.core.audio import HarmonicCQTFrontend, cached_frontend, make_frontend, midi_hz
from diffroll.core.checkpoint import export_weights, load_checkpoint
from diffroll.transcription.pipeline import load_model
from diffroll.core.config import HCQT_SETTINGS, KEYSHARED, N_KEYS, NOTE_STATE, AudioConfig, Config, get_config
from diffroll.corpus import segments as data
from diffroll.corpus.segments import audio_settings
from diffroll.core.keynet import KeySharedDiffRoll
from diffroll.core.model import DiffRoll, count_parameters
from diffroll.transcription.pipeline import Pipeline, new_model
from diffroll.training.trainer import Trainer
from fixtures_data import maestro_fixture
from toy_data import toy_rolls

SMALL = {**KEYSHARED, "channels": 8, "layers": 3, "dilation": [1, 2]}  # smoke-sized key-shared net
HARMONIC_KEYS = [-12, 0, 12, 19, 24, 28]  # KEYSHARED's harmonics 0.5, 1, 2, 3, 4, 5 in keys (rounded)


def keyshared(scale="smoke", **kw):
    return get_config(scale, **{**SMALL, "checkpoint_every": 10, "validate_every": 0, "log_every": 1, **kw})


def sine(midi: float, seconds: float = 2.0, sr: int = 16000) -> torch.Tensor:
    t = np.arange(int(seconds * sr)) / sr
    return torch.tensor(0.5 * np.sin(2 * np.pi * midi_hz(midi) * t), dtype=torch.float32)


# --- the front-end ------------------------------------------------------------------------------

@pytest.mark.parametrize("midi", [21, 33, 60, 96, 108])  # A0, A1, C4, C7, C8 (4186 Hz < 8 kHz)
def test_hcqt_bins_are_aligned_to_the_keys(midi):
    """A sine at key m peaks at key row m - 21 in the fundamental channel, and at the key whose
    h-th harmonic it is in channel h, where that key exists."""
    cfg = get_config("cpu", **KEYSHARED).audio
    front = make_frontend(cfg)
    c = front(sine(midi))[0].view(len(cfg.harmonics), N_KEYS, -1)[:, :, 15:45].mean(-1)  # (H, 88), steady part
    assert int(c[1].argmax()) == midi - 21 and float(c[1].max()) > 0.9  # 0.5 FS: 36 dB of the [-50, 40] range
    for h, shift in enumerate(HARMONIC_KEYS):
        key = midi - 21 - shift
        if 0 <= key < N_KEYS:
            assert int(c[h].argmax()) == key, (h, shift)


@pytest.mark.parametrize("cents", [-30, 30])
def test_a_detuned_key_stays_on_its_row(cents):
    """The training renders are detuned by up to ±30 cents: pooling the key's 3 bins keeps such a
    note on its own key, as loud as in tune (within 1.5 dB of the 90 dB range: 0.017)."""
    cfg = get_config("cpu", **KEYSHARED).audio
    front = make_frontend(cfg)
    level = {}
    for detune in (0, cents):
        c = front(sine(60 + detune / 100))[0].view(len(cfg.harmonics), N_KEYS, -1)[1, :, 15:45].mean(-1)
        assert int(c.argmax()) == 60 - 21
        level[detune] = float(c.max())
    assert abs(level[cents] - level[0]) < 0.017


def test_hcqt_bins_beyond_nyquist_and_below_a0_are_silent():
    """C8's 5th harmonic (20.9 kHz) is past 8 kHz and A0's subharmonic below the CQT: both read 0."""
    cfg = get_config("cpu", **KEYSHARED).audio
    front = make_frontend(cfg)
    assert front.frequencies.max() < cfg.sample_rate / 2
    c = front(torch.randn(16000))[0].view(len(cfg.harmonics), N_KEYS, -1)
    assert torch.all(c[5, 87] == 0) and torch.all(c[0, :12] == 0)  # h = 5 of C8; h = 0.5 of A0 … G#1
    assert c.min() >= 0 and c.max() <= 1  # -1 stays free for the classifier-free dropout


def test_hcqt_shapes_pooling_and_frames_follow_the_mel():
    cfg = get_config("smoke", **SMALL).audio
    wave = torch.randn(2, 5120)
    c = make_frontend(cfg)(wave)
    assert c.shape == (2, cfg.condition_rows, 10) == (2, 6 * 88, 10)
    assert make_frontend(dataclasses.replace(cfg, frontend="mel"))(wave).shape[-1] == 10  # same frames as the mel
    bins = dataclasses.replace(cfg, cqt_key_pool="none")
    assert make_frontend(bins)(wave).shape == (2, bins.condition_rows, 10) == (2, 18 * 88, 10)
    assert isinstance(cached_frontend(cfg), HarmonicCQTFrontend)
    with pytest.raises(ValueError, match="odd"):
        make_frontend(dataclasses.replace(cfg, cqt_bins_per_key=2))


@pytest.mark.parametrize("samples", [16000, 16001, 12345])
def test_the_fft_lowpass_gives_nnaudios_cqt(samples):
    """FastCQT2010v2 (the per-octave lowpass by FFT) gives CQT2010v2's magnitudes to float rounding,
    at any length, on noise and on a loud A0 (whose energy passes every lowpass)."""
    from nnAudio.features import CQT2010v2

    fast = make_frontend(get_config("cpu", **KEYSHARED).audio).cqt
    wave = torch.stack([0.1 * torch.randn(samples, generator=torch.Generator().manual_seed(0)), sine(21, samples / 16000)])
    ours = fast(wave, normalization_type="convolutional")
    theirs = CQT2010v2.forward(fast, wave, normalization_type="convolutional", output_format="Magnitude")
    assert ours.shape == theirs.shape
    assert float((ours - theirs).abs().max()) < 1e-5 * float(theirs.abs().max())


def test_mel_configs_and_their_cache_keys_are_as_before():
    """Old checkpoints (configs without the new fields) load as the mel DiffWave net, and the mel
    segment caches keep their keys (the HCQT settings are not part of a mel cache's key)."""
    cfg = get_config("cpu")
    old = cfg.to_dict()
    for name in ("frontend", *HCQT_SETTINGS):
        del old["audio"][name]
    for name in ("architecture", "key_kernel", "key_embedding"):
        del old["model"][name]
    assert Config.from_dict(old) == cfg and isinstance(new_model(Config.from_dict(old)), DiffRoll)
    assert set(audio_settings(AudioConfig())) == set(old["audio"])
    assert set(audio_settings(get_config("cpu", **KEYSHARED).audio)) == set(cfg.to_dict()["audio"])


def test_the_segment_cache_stores_the_front_end_a_config_asks_for(tmp_path):
    """The trainer's data path is unchanged: an hcqt config's segments hold the HCQT in the ``mel``
    column, in a cache of their own; the mel config's segments are the mel."""
    pieces = data.list_pieces(maestro_fixture(tmp_path / "maestro"), "maestro", "test")
    hcqt_cfg = keyshared()
    mel = data.segment_dataset(pieces, get_config("smoke"), tmp_path / "cache")
    hcqt = data.segment_dataset(pieces, hcqt_cfg, tmp_path / "cache")
    assert mel[0]["mel"].shape == (229, 128) and hcqt[0]["mel"].shape == (hcqt_cfg.model.n_mels, 128)
    assert torch.equal(mel[0]["roll"], hcqt[0]["roll"])
    assert len(list((tmp_path / "cache").glob("segments-*/data.arrow"))) == 2


def test_config_says_what_does_not_fit():
    with pytest.raises(ValueError, match="set frontend=hcqt"):
        get_config("smoke", architecture="keyshared")
    with pytest.raises(ValueError, match="set model.n_mels=1584"):
        get_config("smoke", **{**KEYSHARED, "cqt_key_pool": "none"})
    with pytest.raises(ValueError, match="unknown architecture"):
        get_config("smoke", architecture="transformer")
    with pytest.raises(ValueError, match="velocity_head"):
        new_model(get_config("smoke", **SMALL, velocity_head=8))


# --- the network --------------------------------------------------------------------------------

def random_net(cfg, seed=0):
    """The network of ``cfg`` with every weight random (the output layers start at 0 otherwise)."""
    torch.manual_seed(seed)
    net = new_model(cfg).eval()
    with torch.no_grad():
        for p in net.parameters():
            p.normal_(0, 0.3)
    return net


def test_keyshared_shapes_and_zero_start():
    cfg = keyshared()
    net = new_model(cfg)
    assert isinstance(net, KeySharedDiffRoll) and net.rows == 3 * 88
    x, c = torch.randn(2, 264, 16), torch.rand(2, cfg.model.n_mels, 16)
    with torch.no_grad():
        assert torch.count_nonzero(net(x, torch.tensor([1, 7]), c)) == 0  # zero-initialised output
        net = random_net(cfg)
        out = net(x, torch.tensor([1, 7]), c)
        assert out.shape == (2, 264, 16)
        assert torch.allclose(out, net(x, torch.tensor([1, 7]), net.prepare_condition(c)), atol=1e-6)
        assert torch.isfinite(net(x, torch.tensor([3, 3]), torch.full_like(c, -1.0))).all()  # unconditional


@pytest.mark.parametrize("shift", [1, 5, -7])
def test_shifting_keys_shifts_x0_when_the_key_embedding_is_zero(shift):
    """The sharing across keys: with the per-key bias at 0, moving c and x_t by k keys moves x̂0
    by k keys, away from the edges (each layer sees one more key on either side)."""
    cfg = keyshared(layers=4)
    net = random_net(cfg)
    with torch.no_grad():
        net.key_bias.zero_()
    B, H, frames = 2, cfg.model.n_mels // N_KEYS, 24
    x = torch.randn(B, 3, N_KEYS, frames)
    c = torch.rand(B, H, N_KEYS, frames)
    t = torch.tensor([2, 15])

    def x0(x, c):
        with torch.no_grad():
            return net(x.reshape(B, -1, frames), t, c.reshape(B, -1, frames)).view(B, 3, N_KEYS, frames)

    out = x0(x, c)
    moved = x0(torch.roll(x, shift, dims=2), torch.roll(c, shift, dims=2))
    reach = (cfg.model.layers + 1) * (cfg.model.key_kernel // 2)  # keys an edge (or the wrap) can affect
    keys = slice(reach + max(shift, 0), N_KEYS - reach + min(shift, 0))
    torch.testing.assert_close(moved[:, :, keys], torch.roll(out, shift, dims=2)[:, :, keys], rtol=1e-5, atol=1e-5)
    assert out.abs().mean() > 1e-2  # not trivially equal
    with torch.no_grad():
        net.key_bias.normal_()  # the per-key bias is what breaks the sharing
    assert not torch.allclose(x0(torch.roll(x, shift, dims=2), torch.roll(c, shift, dims=2))[:, :, keys],
                              torch.roll(x0(x, c), shift, dims=2)[:, :, keys], atol=1e-3)


def test_a_pedal_channel_gets_one_value_a_frame_and_x_t_pedal_is_not_read():
    cfg = keyshared(roll_channels=[*NOTE_STATE, "pedal"])
    net = random_net(cfg)
    x, c, t = torch.randn(1, 4 * 88, 12), torch.rand(1, cfg.model.n_mels, 12), torch.tensor([4])
    with torch.no_grad():
        out = net(x, t, c)
        pedal = out[0, 3 * 88:]
        assert torch.equal(pedal, pedal[:1].expand(88, -1))
        x2 = x.clone()
        x2[:, 3 * 88:] = torch.randn(1, 88, 12)
        assert torch.equal(net(x2, t, c), out)


def test_cpu_size_is_small():
    net = new_model(get_config("cpu", **KEYSHARED))
    assert count_parameters(net) < 300_000  # float16: under 1 MB


# --- training, checkpoints, transcription -------------------------------------------------------

def toy_key_segments(n=16, frames=64, seed=0) -> datasets.Dataset:
    """Paired toy segments for the key-shared net: key k's velocity lights key k in the
    fundamental channel and the key h-th harmonic lands on in the others (a crude HCQT)."""
    rolls = toy_rolls(n, frames, seed)
    velocity = rolls[:, 2 * 88:3 * 88]
    c = np.zeros((n, len(HARMONIC_KEYS), 88, frames), dtype=np.float32)
    for h, shift in enumerate(HARMONIC_KEYS):
        src = slice(max(0, shift), 88 + min(0, shift))
        dst = slice(max(0, -shift), 88 - max(0, shift))
        c[:, h, dst] = velocity[:, src] * (1.0 if shift == 0 else 0.5)
    return datasets.Dataset.from_dict({"mel": c.reshape(n, -1, frames).astype(np.float16), "roll": rolls,
                                       "piece": [f"toy{i}" for i in range(n)]}).with_format("torch")


def test_keyshared_loss_falls(tmp_path):
    hist = Trainer(keyshared(max_steps=80), paired=toy_key_segments(), run_dir=tmp_path, progress=False).fit()
    losses = [r["loss"] for r in hist if "loss" in r]
    assert np.mean(losses[-10:]) < 0.6 * np.mean(losses[:10])


def test_keyshared_trains_saves_loads_and_resumes_like_the_paper_net(tmp_path):
    cfg = keyshared(max_steps=20, ema_decay=0.9)
    straight = Trainer(cfg, paired=toy_key_segments(), run_dir=tmp_path / "a", progress=False).fit()
    first = Trainer(cfg, paired=toy_key_segments(), run_dir=tmp_path / "b", progress=False)
    first.fit(max_steps=10)
    del first  # "killed" after its step-10 checkpoint
    resumed = Trainer(cfg, paired=toy_key_segments(), run_dir=tmp_path / "b", progress=False)
    assert resumed.step == 10
    hist = resumed.fit()
    a = [r["loss"] for r in straight if "loss" in r]
    b = [r["loss"] for r in hist if "loss" in r]
    np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-6)

    state = load_checkpoint(tmp_path / "b" / "checkpoint.pt")
    assert state["config"]["model"]["architecture"] == "keyshared" and state["config"]["audio"]["frontend"] == "hcqt"
    pipe = load_model(tmp_path / "b" / "checkpoint.pt")
    assert isinstance(pipe.model, KeySharedDiffRoll) and pipe.config == cfg
    for p, q in zip(pipe.model.state_dict().values(), resumed.ema.state_dict().values()):
        assert torch.equal(p, q)
    half = load_model(export_weights(tmp_path / "b" / "checkpoint.pt", tmp_path / "half.pt", half=True))
    for p, q in zip(half.model.state_dict().values(), pipe.model.state_dict().values()):
        assert torch.allclose(p, q, rtol=1e-3, atol=1e-4)


def test_keyshared_pipeline_transcribes_audio_end_to_end():
    cfg = keyshared()
    pipe = Pipeline(random_net(cfg), cfg)
    seconds = 5.0
    wave = (sine(60, seconds) + sine(72, seconds)).numpy()
    result = pipe.transcribe(wave, pipe.sampling.replace(steps=2, seed=0))
    frames = int(seconds * cfg.audio.fps)
    assert result.roll.shape == (3 * 88, frames) and np.isfinite(result.roll).all()
    assert all(21 <= n.pitch <= 108 for n in result.notes)
    assert pipe.generate(2.0, pipe.sampling.replace(steps=2, seed=0)).roll.shape[0] == 3 * 88  # unconditional (c = -1)
