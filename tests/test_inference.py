"""Any-length transcription: window planning, exact stitching, odd lengths, file input, samplers.

Most tests use a fake model whose x̂0 is known: key k is on in frame f exactly when mel bin
B[k] is the loudest bin of column f. That is invariant to the per-window min-max scaling of
c_mel, so transcribing in overlapping windows must give the same roll as one pass over the
whole audio, frame for frame.
"""
import numpy as np
import pytest
import soundfile as sf
import torch
from scipy.signal import resample_poly

from diffroll.core.audio import MelFrontend, load_audio
from diffroll.transcription.audio_stream import read_audio, resample_chunked
from diffroll.transcription.confidence import consensus, support
from diffroll.core.config import get_config
from diffroll.core.diffusion import Diffusion
from diffroll.evaluation.metrics import note_scores
from diffroll.evaluation.runners import evaluate_pieces
from diffroll.transcription.settings import DecodeSettings, SamplingSettings
from diffroll.transcription.windows import frames_mask, plan_windows
from diffroll.transcription.sampling import native_bf16, sample_seed, sampling_precision
from diffroll.core.model import DiffRoll
from diffroll.transcription.pipeline import Pipeline, transcribe
from diffroll.core.roll import Note

SR = 16000
PITCHES = (69, 72, 76)


def smoke(**kw):
    """128-frame windows (4.1 s), T = 20; the frame-only roll that the fake models below write."""
    return get_config("smoke", roll_channels=["frame"], **kw)


def sine(pitch: int, seconds: float, amp: float = 0.3) -> np.ndarray:
    t = np.arange(int(round(seconds * SR))) / SR
    return (amp * np.sin(2 * np.pi * 440 * 2 ** ((pitch - 69) / 12) * t)).astype(np.float32)


def melody(total_s: float, notes) -> np.ndarray:
    """Sines at (onset, offset, pitch) in seconds, one at a time."""
    wave = np.zeros(int(round(total_s * SR)), dtype=np.float32)
    for on, off, p in notes:
        a, b = int(round(on * SR)), int(round(off * SR))
        wave[a:b] += sine(p, (b - a) / SR)
    return wave


_BINS: dict[int, int] = {}


def loudest_bin(pitch: int) -> int:
    if pitch not in _BINS:
        mel = MelFrontend(smoke().audio)(torch.from_numpy(sine(pitch, 1.0)))[0]
        _BINS[pitch] = int(mel[:, 10].argmax())
    return _BINS[pitch]


class ArgmaxNet(torch.nn.Module):
    """x̂0[k, f] = 1 where bin B[k] is the strict maximum of the mel column (any x_t, any t);
    a constant column (silence, or the -1 of "no audio") gives no note. Records batch sizes."""

    def __init__(self, pitches=PITCHES):
        super().__init__()
        self.anchor = torch.nn.Parameter(torch.zeros(()))
        self.table = {p - 21: loudest_bin(p) for p in pitches}
        self.batches: list[int] = []

    def forward(self, x_t, t, mel):
        self.batches.append(mel.shape[0])
        top = mel.amax(1, keepdim=True)
        loudest = (mel == top) & (top > mel.amin(1, keepdim=True))
        out = torch.zeros(mel.shape[0], 88, mel.shape[2])
        for key, b in self.table.items():
            out[:, key] = loudest[:, b].float()
        return out


def transcribe_wave(pipe, wave, *, mask=None, progress=False, **changes) -> np.ndarray:
    """x̂0 (R, frames) of one sample: :meth:`Pipeline.transcribe` with the pipeline's sampling
    settings so changed."""
    return pipe.transcribe(wave, pipe.sampling.replace(**changes), mask=mask, keep_samples=False,
                           progress=progress).roll


def transcribe_notes(pipe, wave, **kw) -> tuple[list[Note], np.ndarray]:
    """(notes, x̂0) of one sample, as :func:`transcribe_wave`."""
    x0 = transcribe_wave(pipe, wave, **kw)
    return pipe.decode(x0), x0


def ArgmaxModel(cfg, net=ArgmaxNet) -> Pipeline:
    """The fake network with a config: what the transcription functions take."""
    return Pipeline(net(), cfg)


def one_pass(wave: np.ndarray, cfg) -> np.ndarray:
    """The reference: the fake model on a single window that is exactly the whole audio."""
    frames = len(wave) // cfg.audio.hop_length
    whole = cfg.override(segment_samples=frames * cfg.audio.hop_length)
    return transcribe_wave(ArgmaxModel(whole), wave, sampler="ddim", steps=2, progress=False)


# --- window planning ----------------------------------------------------------------------------

@pytest.mark.parametrize("total", [1, 100, 127, 128, 129, 300, 1121, 5000])
@pytest.mark.parametrize("overlap", [0, 32, 100])
def test_windows_cover_everything_once_and_keep_away_from_edges(total, overlap):
    size = 128
    plan = plan_windows(total, size, overlap)
    assert plan.keep[0][0] == 0 and plan.keep[-1][1] == total
    for (lo, hi), (lo2, _) in zip(plan.keep, plan.keep[1:]):
        assert hi == lo2 and lo < hi  # a partition of [0, total)
    if total >= size:
        assert plan.starts[-1] + size == total  # the last window ends at the end: no padding
    for i, (s, (lo, hi)) in enumerate(zip(plan.starts, plan.keep)):
        assert s <= lo and hi <= s + size
        if i > 0:
            assert lo - s >= overlap // 2 and plan.starts[i - 1] + size - plan.starts[i] >= overlap
        if i < len(plan.starts) - 1:
            assert s + size - hi >= overlap // 2
    hop = size - overlap
    assert len(plan.starts) == max(1, -(-(total - size) // hop) + 1)  # no more windows than needed


def test_plan_rejects_nonsense():
    with pytest.raises(ValueError, match="0 frames"):
        plan_windows(0, 128, 32)
    with pytest.raises(ValueError, match="overlap"):
        plan_windows(500, 128, 128)


# --- stitching ----------------------------------------------------------------------------------

def test_note_held_across_window_edges_is_one_note_and_stitching_is_exact():
    cfg = smoke()
    # 10 s = 312 frames -> windows at 0, 92, 184, owning frames cut at 110 (3.52 s) and 202 (6.46 s)
    truth = [(0.0, 1.0, 69), (1.5, 7.0, 72), (8.5, 312 * 512 / SR, 76)]  # first frame .. last frame
    wave = melody(312 * 512 / SR, truth)
    model = ArgmaxModel(cfg)
    plan = plan_windows(312, 128, 32)
    assert [k for k in plan.keep] == [(0, 110), (110, 202), (202, 312)]
    notes, x0 = transcribe_notes(model, wave, sampler="ddim", steps=2, progress=False)
    np.testing.assert_array_equal(x0, one_pass(wave, cfg))
    assert [n.pitch for n in notes] == [69, 72, 76]
    for (on, off, p, _), (ton, toff, tp) in zip(notes, truth):
        assert abs(on - ton) <= 0.1 and abs(off - toff) <= 0.1, (on, off, p)
    assert notes[0][0] == 0.0 and notes[-1][1] == pytest.approx(312 / cfg.audio.fps)


@pytest.mark.parametrize("overlap", [0, 32, 64])
def test_stitching_with_other_overlaps_and_batch_sizes(overlap):
    cfg = smoke()
    wave = melody(9.0, [(0.3, 2.0, 69), (2.5, 6.1, 76), (6.5, 8.7, 72)])
    ref = one_pass(wave[: len(wave) // 512 * 512], cfg)
    for batch_size in (1, 3):
        model = ArgmaxModel(cfg)
        x0 = transcribe_wave(model, wave, sampler="ddpm", steps=3, overlap=overlap, batch_size=batch_size,
                             progress=False)
        np.testing.assert_array_equal(x0, ref)
        assert max(model.model.batches) <= 2 * batch_size  # bounded: never more than a batch of windows (x2 for w)


def test_long_audio_is_processed_a_batch_at_a_time():
    cfg = smoke()
    wave = melody(60.0, [(t, t + 0.5, PITCHES[i % 3]) for i, t in enumerate(np.arange(0.2, 59, 1.0))])
    model = ArgmaxModel(cfg)
    notes, x0 = transcribe_notes(model, wave, w=0.0, sampler="ddim", steps=1, batch_size=2, progress=False)
    assert x0.shape == (88, len(wave) // 512)
    assert max(model.model.batches) == 2 and len(model.model.batches) == -(-len(plan_windows(1875, 128, 32).starts) // 2)
    assert len(notes) == 59


# --- odd lengths and file input -----------------------------------------------------------------

@pytest.mark.parametrize("samples", [0, 1, 511, 512, 600, 65_536, 65_536 + 512, 70_001])
def test_odd_lengths(samples):
    cfg = smoke()
    wave = np.zeros(samples, dtype=np.float32)
    wave[: min(samples, 40_000)] = sine(72, 2.5)[: min(samples, 40_000)]
    x0 = transcribe_wave(ArgmaxModel(cfg), wave, sampler="ddim", steps=2, progress=False)
    assert x0.shape == (88, samples // 512)
    if samples >= 65_536:
        np.testing.assert_array_equal(x0, one_pass(wave[: samples // 512 * 512], cfg))
    pm = transcribe(wave, sampling=ArgmaxModel(cfg).sampling.replace(sampler="ddim", steps=2), pipeline=ArgmaxModel(cfg), progress=False)
    pitches = {n.pitch for n in pm.instruments[0].notes}
    assert pitches == ({72} if samples >= 4096 else set())


def test_stereo_44k_file_gives_the_same_notes_as_16k_mono(tmp_path):
    cfg = smoke()
    truth = [(0.5, 2.0, 69), (2.5, 5.5, 72), (6.0, 7.5, 76)]
    mono16 = melody(8.0, truth)
    t = np.arange(8 * 44100) / 44100
    left = np.zeros_like(t)
    for on, off, p in truth:
        left += np.where((t >= on) & (t < off), 0.3 * np.sin(2 * np.pi * 440 * 2 ** ((p - 69) / 12) * t), 0)
    sf.write(tmp_path / "stereo.flac", np.stack([left, 0.5 * left], axis=1), 44100)
    pm_file = transcribe(tmp_path / "stereo.flac", sampling=ArgmaxModel(cfg).sampling.replace(sampler="ddim", steps=2), pipeline=ArgmaxModel(cfg), progress=False)
    pm_mono = transcribe(mono16, sampling=ArgmaxModel(cfg).sampling.replace(sampler="ddim", steps=2), pipeline=ArgmaxModel(cfg), progress=False)
    a = [(n.pitch, n.start, n.end) for n in pm_file.instruments[0].notes]
    b = [(n.pitch, n.start, n.end) for n in pm_mono.instruments[0].notes]
    assert [x[0] for x in a] == [x[0] for x in b] == [69, 72, 76]
    np.testing.assert_allclose([x[1:] for x in a], [x[1:] for x in b], atol=2 / 31.25)


def test_read_audio_streams_the_same_samples_as_load_audio(tmp_path, monkeypatch):
    import diffroll.transcription.audio_stream as audio_stream

    rng = np.random.default_rng(0)
    stereo = rng.uniform(-0.5, 0.5, (44100 * 3 + 17, 2)).astype(np.float32)
    sf.write(tmp_path / "x.wav", stereo, 44100, subtype="FLOAT")
    monkeypatch.setattr(audio_stream, "READ_BLOCK", 10_000)  # many blocks
    streamed = read_audio(tmp_path / "x.wav")
    np.testing.assert_allclose(streamed, load_audio(tmp_path / "x.wav"), atol=1e-6)
    x = rng.standard_normal(48000 * 5 + 3)
    np.testing.assert_allclose(resample_chunked(x, 48000, 16000, chunk_seconds=0.5),
                               resample_poly(x, 1, 3).astype(np.float32), atol=1e-6)


# --- silence, masks, generation -----------------------------------------------------------------

def test_silent_windows_are_not_sampled_but_generation_and_masks_are():
    cfg = smoke()
    model = ArgmaxModel(cfg)
    wave = np.concatenate([np.zeros(SR * 8, np.float32), sine(72, 4.0)])  # 12 s: silent, then a tone
    plan = plan_windows(len(wave) // 512, 128, 32)
    assert plan.starts == [0, 82, 165, 247]  # the tone starts at frame 250: windows 2 and 3 hear it
    transcribe_wave(model, wave, w=0.0, sampler="ddim", steps=1, batch_size=1, progress=False)
    assert len(model.model.batches) == 2
    model.model.batches.clear()
    transcribe_wave(model, np.zeros(SR * 12, np.float32), w=-1, sampler="ddim", steps=1, batch_size=1,
                    progress=False)
    assert len(model.model.batches) == 4


def test_masked_frames_lose_their_audio():
    cfg = smoke()
    wave = melody(6.0, [(0.2, 2.0, 69), (3.0, 5.0, 76)])
    frames = len(wave) // 512
    mask = frames_mask([(2.9, 5.2)], frames, cfg.audio.fps)
    assert mask.sum() == int(np.ceil(5.2 * 31.25)) - int(np.floor(2.9 * 31.25))
    notes, _ = transcribe_notes(ArgmaxModel(cfg), wave, sampler="ddim", steps=2, mask=mask, progress=False)
    assert [n.pitch for n in notes] == [69]  # the fake model sees -1 there: no note
    with pytest.raises(ValueError, match="empty"):
        frames_mask([(3.0, 3.0)], frames, cfg.audio.fps)


# --- determinism --------------------------------------------------------------------------------

def random_model(cfg, seed=0):
    torch.manual_seed(seed)
    model = DiffRoll(cfg.model)
    torch.nn.init.normal_(model.output_proj.weight, std=0.5)  # zero-initialised: make x̂0 depend on x_t
    return Pipeline(model.eval(), cfg)


def test_same_seed_same_roll_other_seed_other_roll():
    cfg = smoke()
    model = random_model(cfg)
    wave = melody(6.0, [(0.5, 5.0, 72)])  # two windows
    run = lambda **kw: transcribe_wave(model, wave, sampler=kw.pop("sampler", "ddpm"), steps=4, progress=False, **kw)
    np.testing.assert_array_equal(run(seed=3), run(seed=3))
    assert not np.allclose(run(seed=3), run(seed=4))
    # x_T is drawn window by window and DDPM's step noise per window, so the batch size does not matter
    for sampler in ("ddim", "ddpm"):
        np.testing.assert_allclose(run(seed=5, sampler=sampler, batch_size=1),
                                   run(seed=5, sampler=sampler, batch_size=3), atol=1e-5)
    assert not np.allclose(run(seed=5, sampler="ddpm"), run(seed=5, sampler="ddim"))  # DDPM's steps do add noise


# --- samplers against 200-step DDPM on a model whose x̂0 is exact --------------------------------

S = 0.2  # data: x0 ~ N(μ, S²) per element, μ from the mel (0/1 pattern); -1 (no audio): μ = 0.3


class GaussianModel(torch.nn.Module):
    """The exact denoiser of that data: x̂0 = E[x0 | x_t] = μ + S²√ᾱ/(ᾱS² + 1 − ᾱ)·(x_t − √ᾱ·μ)."""

    def __init__(self, diffusion):
        super().__init__()
        self.d = diffusion

    def forward(self, x_t, t, mel):
        ab = self.d.alpha_bar(t).float().view(-1, 1, 1)
        mu = torch.where(mel[:, :88] < 0, torch.full_like(mel[:, :88], 0.3), mel[:, :88])
        return mu + S ** 2 * ab.sqrt() / (ab * S ** 2 + 1 - ab) * (x_t - ab.sqrt() * mu)


@pytest.mark.parametrize("w", [0.0, 0.5])
def test_samplers_agree_with_200_step_ddpm(w):
    d = Diffusion.from_config(get_config("paper").diffusion)  # T = 200, the paper's schedule
    model = GaussianModel(d)
    mel = (torch.rand(1, 229, 320, generator=torch.Generator().manual_seed(0)) > 0.7).float()
    mu = mel[:, :88]
    x_T = torch.randn(1, 88, 320, generator=torch.Generator().manual_seed(1))
    ref = d.sample(model, mel, w=w, sampler="ddpm", generator=torch.Generator().manual_seed(2), x_T=x_T)
    # DDPM with all 200 steps samples the data: mean (1 + w)·μ − w·0.3, and spread S when w = 0
    resid = ref - ((1 + w) * mu - w * 0.3)
    assert abs(float(resid.mean())) < 0.01
    if w == 0:
        assert float(resid.std()) == pytest.approx(S, rel=0.1)
    ode = d.sample(model, mel, w=w, sampler="ddim", steps=200, x_T=x_T)
    for sampler in ("ddpm", "ddim", "dpmpp"):
        for steps in (200, 50, 20, 10, 5, 2, 1):
            x = d.sample(model, mel, w=w, sampler=sampler, steps=steps, generator=torch.Generator().manual_seed(3),
                         x_T=x_T)
            agree = float(((x > 0.5) == (ref > 0.5)).float().mean())
            assert agree > 0.95, (sampler, steps, agree)
            assert abs(float((x - ref).mean())) < 0.03, (sampler, steps)
            if sampler != "ddpm" and steps >= 50:  # both solve the same probability-flow ODE
                assert float((x - ode).abs().mean()) < 0.01, (sampler, steps)


class NoteStateNet(ArgmaxNet):
    """ArgmaxModel's frames, onsets at their rising edges inside the window (a note already sounding
    at the window's first frame gets a spurious onset there, which stitching must drop) and a
    velocity of 0.5: the note-state roll (frame, onset, velocity)."""

    rows = 3 * 88

    def forward(self, x_t, t, mel):
        frame = super().forward(x_t, t, mel)
        onset = frame - torch.nn.functional.pad(frame, (1, 0))[..., :-1]
        return torch.cat([frame, onset.clamp(min=0), 0.5 * frame], dim=1)


def test_note_state_notes_across_window_edges_are_one_note_each():
    cfg = get_config("smoke")  # frame, onset, velocity
    truth = [(0.0, 1.0, 69), (1.5, 7.0, 72), (8.5, 312 * 512 / SR, 76)]  # 72 spans two window edges
    wave = melody(312 * 512 / SR, truth)
    notes, x0 = transcribe_notes(ArgmaxModel(cfg, NoteStateNet), wave, w=0.0, sampler="ddim", steps=2, progress=False)
    assert x0.shape == (264, 312)
    assert [n.pitch for n in notes] == [69, 72, 76]
    for (on, off, p, vel), (ton, toff, tp) in zip(notes, truth):
        assert abs(on - ton) <= 0.1 and abs(off - toff) <= 0.1 and vel == round(0.5 * 127)


class PedalNet(NoteStateNet):
    """NoteStateNet's roll, and the sustain pedal down from 2 s to 5 s of the window (every pedal row)."""

    rows = 4 * 88

    def forward(self, x_t, t, mel):
        roll = super().forward(x_t, t, mel)
        pedal = torch.zeros_like(roll[:, :88])
        pedal[..., int(2 * 31.25):int(5 * 31.25)] = 0.9
        return torch.cat([roll, pedal], dim=1)


def test_transcription_holds_notes_by_the_pedal_channel_unless_told_not_to():
    """A pedal model: the note released under the pedal lasts until the pedal comes up (5 s), up to a
    re-strike of its key; --no-pedal (use_pedal=False) reads the frames alone."""
    truth = [(0.5, 1.0, 69), (2.5, 3.0, 72), (3.5, 4.0, 76), (4.3, 4.6, 76), (6.0, 6.5, 69)]
    wave = melody(7.0, truth)
    cfg = get_config("smoke", roll_channels=["frame", "onset", "velocity", "pedal"],  # one window: the whole audio
                     segment_samples=len(wave) // 512 * 512)
    pipe = ArgmaxModel(cfg, PedalNet)
    held = pipe.transcribe(wave, pipe.sampling.replace(sampler="ddim", steps=2), progress=False).notes
    dry = pipe.transcribe(wave, pipe.sampling.replace(sampler="ddim", steps=2), DecodeSettings.of(pipe.config, use_pedal=False), progress=False).notes
    assert [n.pitch for n in held] == [n.pitch for n in dry] == [69, 72, 76, 76, 69]
    ends = [round(n.offset, 1) for n in held]
    assert ends[0] == round(dry[0].offset, 1) and ends[4] == round(dry[4].offset, 1)  # no pedal then
    assert ends[1] == 5.0 and ends[2] == round(held[3].onset, 1) and ends[3] == 5.0  # held, re-struck, held
    assert all(abs(n.offset - t[1]) < 0.1 for n, t in zip(dry, truth))
    assert pipe.transcribe(wave, pipe.sampling.replace(sampler="ddim", steps=2), DecodeSettings.of(pipe.config, pedal_threshold=0.95), progress=False).notes == dry


# --- streaming: notes read window by window ---------------------------------------------------

@pytest.mark.parametrize("channels", [["frame"], ["frame", "onset", "velocity"], ["frame", "onset"],
                                      ["frame", "onset", "velocity", "pedal"]])
@pytest.mark.parametrize("min_note_ms", [None, 0.0, 100.0])
@pytest.mark.parametrize("min_velocity", [0, 40])
@pytest.mark.parametrize("held", [(None, None), (0.3, 0.7), (0.6, 0.2)])
def test_note_stream_reads_the_notes_of_the_whole_roll(channels, min_note_ms, min_velocity, held):
    """Fed in random blocks, the stream finds exactly the notes of decoding the whole roll (also
    with an offset threshold above or below the frame threshold and a re-strike threshold)."""
    from diffroll.transcription.decoding import NoteStream, decode_roll
    from diffroll.transcription.settings import DecodeSettings, SamplingSettings

    rng = np.random.default_rng(len(channels))
    settings = DecodeSettings.of(get_config("smoke", roll_channels=channels, min_velocity=min_velocity,
                                          offset_threshold=held[0], restrike_threshold=held[1]),
                               min_note_ms=min_note_ms)
    for trial in range(8):
        n = int(rng.integers(1, 500))
        density = rng.uniform(0.05, 0.9)
        roll = ((rng.random((88 * len(channels), n)) < density) * rng.random((88 * len(channels), n)) * 1.2)
        roll = roll.astype(np.float32)
        if "pedal" in channels:  # the pedal down over random spans (decoding reads the mean of its rows)
            roll[3 * 88:] = (np.sin(np.arange(n) / rng.uniform(2, 30)) > 0) * rng.uniform(0.3, 1.0, (88, 1))
        stream = NoteStream(31.25, settings)
        i = 0
        while i < n:
            k = int(rng.integers(1, 60))
            stream.feed(roll[:, i:i + k])
            i += k
        assert stream.close() == decode_roll(roll, 31.25, settings), trial


def test_note_stream_holds_only_unfinished_frames_and_cuts_a_stuck_key(caplog):
    from diffroll.transcription.decoding import NoteStream
    from diffroll.transcription.settings import DecodeSettings

    settings = DecodeSettings.of(smoke())
    stream = NoteStream(31.25, settings, max_pending=100)
    block = np.zeros((88, 40), np.float32)
    block[10, 5:20] = 1.0  # a note that ends inside the block
    for _ in range(5):
        stream.feed(block)
        assert stream.pending.shape[1] < 40  # the finished notes' frames are gone
    stuck = np.zeros((88, 40), np.float32)
    stuck[30] = 1.0  # a key that never stops
    with caplog.at_level("WARNING", logger="diffroll"):
        for _ in range(5):
            stream.feed(stuck)
    assert "without a break" in caplog.text and stream.pending.shape[1] <= 100 + 40
    notes = stream.close()
    assert sum(n.pitch == 51 for n in notes) == 2  # cut once, at the limit
    assert sum(n.pitch == 31 for n in notes) == 5


def test_file_is_streamed_block_by_block_with_the_same_notes(tmp_path, monkeypatch):
    """A long stereo 44.1 kHz file read in many small blocks and resampling chunks gives the notes
    (and roll) of the whole array at 16 kHz."""
    import diffroll.transcription.audio_stream as audio_stream

    cfg = smoke()
    truth = [(0.3, 2.0, 69), (2.5, 6.1, 76), (6.5, 14.0, 72), (15.0, 19.5, 69)]
    t = np.arange(20 * 44100) / 44100
    left = np.zeros_like(t)
    for on, off, p in truth:
        left += np.where((t >= on) & (t < off), 0.3 * np.sin(2 * np.pi * 440 * 2 ** ((p - 69) / 12) * t), 0)
    sf.write(tmp_path / "x.flac", np.stack([left, left], axis=1), 44100)
    monkeypatch.setattr(audio_stream, "READ_BLOCK", 30_000)
    monkeypatch.setattr(audio_stream, "RESAMPLE_CHUNK_SECONDS", 2.0)
    pipe = ArgmaxModel(cfg)
    streamed = pipe.transcribe(tmp_path / "x.flac", pipe.sampling.replace(sampler="ddim", steps=2, batch_size=3), progress=False)
    whole = read_audio(tmp_path / "x.flac")
    np.testing.assert_allclose(whole, load_audio(tmp_path / "x.flac"), atol=1e-6)
    direct = pipe.transcribe(whole, pipe.sampling.replace(sampler="ddim", steps=2), progress=False)
    assert streamed.notes == direct.notes and [n.pitch for n in streamed.notes] == [69, 76, 72, 69]
    np.testing.assert_array_equal(streamed.roll, direct.roll)
    assert streamed.audio.samples == len(whole) and streamed.audio.peak == pytest.approx(0.3, abs=0.01)


# --- several samples ------------------------------------------------------------------------------

def test_samples_are_batched_with_windows_and_voted():
    cfg = smoke()
    wave = melody(9.0, [(0.3, 2.0, 69), (2.5, 6.1, 76), (6.5, 8.7, 72)])
    pipe = ArgmaxModel(cfg)
    one = pipe.transcribe(wave, pipe.sampling.replace(sampler="ddim", steps=2), progress=False)
    assert one.confidence == [1.0] * len(one.notes) and one.sample_notes is None
    pipe.model.batches.clear()
    three = pipe.transcribe(wave, pipe.sampling.replace(samples=3, w=0.0, sampler="ddim", steps=1, batch_size=5), progress=False)
    assert three.notes == one.notes and three.confidence == [1.0] * len(one.notes)  # x_T is ignored: all agree
    assert len(three.sample_notes) == 3 and max(pipe.model.batches) == 5
    windows = len(plan_windows(len(wave) // 512, 128, 32).starts)
    assert sum(pipe.model.batches) == windows * 3  # every (window, sample) pair once, 5 to a batch


@pytest.mark.parametrize("sampler", ["ddim", "ddpm"])
def test_samples_differ_and_do_not_depend_on_the_batch_size(sampler):
    cfg = smoke()
    pipe = random_model(cfg)
    wave = melody(6.0, [(0.5, 5.0, 72)])
    runs = [pipe.transcribe(wave, pipe.sampling.replace(samples=3, sampler=sampler, steps=3, batch_size=b, combine="vote"), progress=False)
            for b in (1, 4)]
    assert runs[0].sample_notes == runs[1].sample_notes and runs[0].notes == runs[1].notes
    assert runs[0].sample_notes[0] != runs[0].sample_notes[1]  # different x_T, different transcriptions
    assert all(0.5 < c <= 1 for c in runs[0].confidence)
    single = pipe.transcribe(wave, pipe.sampling.replace(sampler=sampler, steps=3), progress=False)
    assert single.notes == runs[0].sample_notes[0]  # sample 0 draws the noise a single run draws
    if sampler == "ddpm":
        return
    calibrated = Pipeline(pipe.model, cfg.override(confidence_calibration=[2.0, -1.0]))
    voted = calibrated.transcribe(wave, calibrated.sampling.replace(samples=3, sampler="ddim", steps=3, combine="vote"), progress=False)
    assert voted.notes == runs[0].notes  # a checkpoint's calibration maps each vote share to a probability
    smoothed = (3 * np.array(runs[0].confidence) + 0.5) / 4
    np.testing.assert_allclose(voted.confidence, 1 / (1 + np.exp(-(2.0 * np.log(smoothed / (1 - smoothed)) - 1.0))))


def test_transcriptions_share_one_mel_frontend(frontends_made):
    pipe = ArgmaxModel(smoke())
    wave = melody(4.0, [(0.5, 3.0, 72)])
    first = pipe.transcribe(wave, pipe.sampling.replace(sampler="ddim", steps=1), progress=False)
    assert pipe.transcribe(wave, pipe.sampling.replace(sampler="ddim", steps=1), progress=False).notes == first.notes and first.notes
    assert len(frontends_made) == 1  # made for the first transcription, reused by the second


def test_mean_of_samples_reads_the_notes_from_the_mean_roll():
    """combine="mean" (the default): the notes are read from the mean of the K samples' x̂0, each
    with the share of samples holding it; the roll is that mean. DDIM is deterministic given x_T,
    so sample j's roll is a single run seeded with sample_seed(seed, j)."""
    cfg = smoke()
    pipe = random_model(cfg)
    wave = melody(6.0, [(0.5, 5.0, 72), (1.0, 2.0, 76)])
    kw = dict(progress=False)
    meaned = pipe.transcribe(wave, pipe.sampling.replace(sampler="ddim", steps=3, samples=3, seed=5), **kw)
    assert cfg.roll.combine_samples == "mean" and meaned.notes
    rolls = [pipe.transcribe(wave, pipe.sampling.replace(sampler="ddim", steps=3, seed=sample_seed(5, j)), **kw).roll for j in range(3)]
    np.testing.assert_allclose(meaned.roll, np.mean(rolls, axis=0), atol=1e-6)
    assert meaned.notes == pipe.decode(meaned.roll)  # streamed reading = reading the whole mean roll
    assert meaned.confidence == support(meaned.notes, meaned.sample_notes)
    assert meaned.sample_notes == pipe.transcribe(wave, pipe.sampling.replace(sampler="ddim", steps=3, samples=3, seed=5, combine="vote"), **kw).sample_notes
    one = pipe.transcribe(wave, pipe.sampling.replace(sampler="ddim", steps=3, seed=5, combine="mean"), **kw)  # K = 1: the sample itself
    assert one.notes == meaned.sample_notes[0] and one.confidence == [1.0] * len(one.notes)
    voting = Pipeline(pipe.model, cfg.override(combine_samples="vote"))  # a checkpoint's choice
    assert voting.transcribe(wave, voting.sampling.replace(sampler="ddim", steps=3, samples=3, seed=5), **kw).notes == consensus(meaned.sample_notes)[0]
    with pytest.raises(ValueError, match="combine must be one of mean, vote"):
        pipe.transcribe(wave, pipe.sampling.replace(sampler="ddim", steps=3, samples=3, combine="median"), **kw)
    with pytest.raises(ValueError, match="combine must be one of mean, vote"):
        Pipeline(pipe.model, cfg.override(combine_samples="avg")).transcribe(wave, **kw)
    ref = [Note(0.5, 5.0, 72, 80), Note(1.0, 2.0, 76, 80)]
    (row,) = evaluate_pieces(pipe, [("m", "g", wave, ref)], pipe.sampling.replace(samples=3, seed=5, sampler="ddim",
                                                                           steps=3), progress=False)
    assert row["n_est"] == len(meaned.notes) and row["f1"] == note_scores(ref, meaned.notes)["f1"]


# --- no silent wrong results ----------------------------------------------------------------------

def test_nonfinite_samples_are_refused_or_repaired(tmp_path, caplog):
    from diffroll.transcription.audio_stream import NonFiniteAudioError

    cfg = smoke()
    pipe = ArgmaxModel(cfg)
    wave = melody(6.0, [(0.3, 5.5, 72)])
    bad = wave.copy()
    bad[[16000, 16001, 48000]] = [np.nan, np.inf, -np.inf]
    says = r"<array>: 3 samples are NaN or infinite, from 1.000 s \(sample 16000\) to 3.000 s \(sample 48000\)"
    with pytest.raises(NonFiniteAudioError, match=says):
        pipe.transcribe(bad, progress=False)
    with caplog.at_level("WARNING", logger="diffroll"):
        fixed = pipe.transcribe(bad, pipe.sampling.replace(sampler="ddim", steps=2), nonfinite="zero", progress=False)
    assert "replaced them by 0" in caplog.text and fixed.audio.nonfinite == 3
    zeroed = np.where(np.isfinite(bad), bad, 0).astype(np.float32)
    assert fixed.notes == pipe.transcribe(zeroed, pipe.sampling.replace(sampler="ddim", steps=2), progress=False).notes
    stereo = np.stack([wave, wave], axis=1)
    stereo[32000 + np.arange(5), 1] = np.nan
    sf.write(tmp_path / "nan.wav", stereo, SR, subtype="FLOAT")
    says = r"nan.wav: 5 samples are NaN or infinite, from 2.000 s \(sample 32000\) to 2.000 s \(sample 32004\)"
    with pytest.raises(NonFiniteAudioError, match=says):
        pipe.transcribe(tmp_path / "nan.wav", progress=False)
    with pytest.raises(NonFiniteAudioError, match="nan.wav"):
        read_audio(tmp_path / "nan.wav")


@pytest.mark.parametrize("kwargs, says", [
    (dict(batch_size=0), "batch_size"), (dict(batch_size=2.5), "batch_size"), (dict(samples=0), "samples"),
    (dict(w=float("nan")), "w"), (dict(w=float("inf")), "w"), (dict(steps=0), "steps"),
    (dict(threshold=float("nan")), "frame_threshold"), (dict(frame_threshold=1.0), "frame_threshold"),
    (dict(onset_threshold=float("nan")), "onset_threshold"), (dict(min_note_ms=-1.0), "min_note_ms"),
    (dict(min_note_ms=float("inf")), "min_note_ms"), (dict(nonfinite="ignore"), "nonfinite"),
    (dict(overlap=128), "overlap"),
    (dict(pedal_threshold=1.5), "pedal_threshold"), (dict(precision="fp16"), "precision"),
])
def test_bad_settings_are_value_errors_naming_them(kwargs, says):
    """Sampling settings are checked when made, decoding settings when resolved, the rest when used."""
    pipe = ArgmaxModel(smoke())
    sampling = {k: v for k, v in kwargs.items() if k in SamplingSettings.__dataclass_fields__}
    decoding = {("frame_threshold" if k == "threshold" else k): v for k, v in kwargs.items()
                if k not in sampling and k != "nonfinite"}
    with pytest.raises(ValueError, match=says):
        pipe.transcribe(melody(2.0, [(0.1, 1.0, 72)]), pipe.sampling.replace(**sampling),
                        DecodeSettings.of(pipe.config, **decoding), progress=False,
                        **{k: v for k, v in kwargs.items() if k == "nonfinite"})


def test_bad_generate_lengths_and_mask_spans_are_value_errors():
    pipe = ArgmaxModel(smoke())
    for seconds in (float("nan"), float("inf"), 0.0, -1.0):
        with pytest.raises(ValueError, match="seconds"):
            pipe.generate(seconds)
    for span in ((1.0, float("inf")), (float("nan"), 2.0)):
        with pytest.raises(ValueError, match="not finite"):
            frames_mask([span], 100, 31.25)


def test_min_note_ms_for_frame_and_note_state_rolls():
    from diffroll.transcription.settings import DecodeSettings, min_note_frames

    assert min_note_frames(64, 31.25) == 2 and min_note_frames(65, 31.25) == 3 and min_note_frames(0, 31.25) == 0
    frame_only = DecodeSettings.of(smoke(), min_note_ms=100)
    assert (frame_only.min_frames, frame_only.min_frames_without_onset) == (4, None)
    note_state = DecodeSettings.of(get_config("smoke"), min_note_ms=100)
    assert (note_state.min_frames, note_state.min_frames_without_onset) == (0, 4)
    roll = np.zeros((88, 40), np.float32)
    roll[0, 2:4] = 1  # 2 frames: 64 ms
    roll[1, 10:20] = 1  # 10 frames
    pipe = ArgmaxModel(smoke())
    assert [n.pitch for n in pipe.decode(roll)] == [21, 22]
    assert [n.pitch for n in pipe.decode(roll, DecodeSettings.of(pipe.config, min_note_ms=100))] == [22]
    ns_roll = np.concatenate([roll, np.zeros((176, 40), np.float32)])  # frames without any onset
    ns_pipe = ArgmaxModel(get_config("smoke"), NoteStateNet)
    assert ns_pipe.decode(ns_roll) == []  # the config: onset-less runs are never notes
    assert [n.pitch for n in ns_pipe.decode(ns_roll, DecodeSettings.of(ns_pipe.config, min_note_ms=100))] == [22]
    assert [n.pitch for n in ns_pipe.decode(ns_roll, DecodeSettings.of(ns_pipe.config, min_note_ms=0))] == [21, 22]


# --- memory: a long file ----------------------------------------------------------------------------

MEMORY_SCRIPT = r"""
import json, resource, sys
import numpy as np, soundfile as sf, torch
torch.set_num_threads(1)
from diffroll.transcription.pipeline import Pipeline
from diffroll.core.config import get_config
from diffroll.core.model import DiffRoll

def peak_mib():
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024

path, minutes = sys.argv[1], int(sys.argv[2])
sr = 16000
rng = np.random.default_rng(0)


def write(path, seconds):  # quiet noise, and a tone every few minutes, written a minute at a time
    with sf.SoundFile(path, "w", sr, 1, "PCM_16") as f:
        for i in range(0, seconds, 60):
            x = 0.002 * rng.standard_normal(sr * min(60, seconds - i))
            if i % 420 == 0:
                x[: sr * 5] += 0.3 * np.sin(2 * np.pi * 440 * np.arange(sr * 5) / sr)
            f.write(x.astype(np.float32))


write(path, 60 * minutes)
write(path + ".short.wav", 90)  # more than one read block (READ_BLOCK samples)
cfg = get_config("smoke")
torch.manual_seed(0)
model = DiffRoll(cfg.model, len(cfg.roll.roll_channels))
torch.nn.init.normal_(model.output_proj.weight, std=0.05)  # a few notes a second on noise
pipe = Pipeline(model.eval(), cfg)
kw = dict(progress=False, keep_roll=False, keep_samples=False)
sampling = pipe.sampling.replace(steps=1, samples=2)
pipe.transcribe(path + ".short.wav", sampling, **kw)  # warm-up: the buffers of reading, sampling and decoding
before = peak_mib()
result = pipe.transcribe(path, sampling, **kw)
print(json.dumps({"growth_mib": peak_mib() - before, "notes": len(result.notes),
                  "seconds": result.audio.seconds}))
"""


def test_a_long_file_is_transcribed_in_bounded_memory(tmp_path):
    """Half an hour of audio, two samples read from their mean (held whole: 115 MB as a 16 kHz
    float32 array, 59 MB a note-state roll): streamed, the peak memory of the process grows by less
    than either beyond what a minute and a half of the same audio needed. The growth is reached in
    the first minutes and stays flat (measured: 15-32 MiB from run to run, the same over an hour;
    the allocator's, not the audio's)."""
    import json
    import subprocess
    import sys

    env = dict(__import__("os").environ, OMP_NUM_THREADS="1")
    proc = subprocess.run([sys.executable, "-c", MEMORY_SCRIPT, str(tmp_path / "long.wav"), "30"],
                          capture_output=True, text=True, env=env, timeout=300)
    assert proc.returncode == 0, proc.stderr[-2000:]
    out = json.loads(proc.stdout.strip().splitlines()[-1])
    assert out["seconds"] == 1800.0 and out["notes"] > 1000
    assert out["growth_mib"] < 40, out


@pytest.mark.parametrize("precision", ["fp32", "bf16", "auto"])
def test_precision_sets_the_networks_arithmetic_and_bf16_stays_close(precision):
    """bf16 runs the network's layers under autocast (their outputs are bf16), fp32 does not; auto
    follows the device (bf16 on a CPU with native bf16). x0 is fp32 either way, and near fp32's."""
    pipe = random_model(smoke())
    seen = set()
    hook = pipe.model.output_proj.register_forward_hook(lambda m, i, out: seen.add(out.dtype))
    wave = melody(3.0, [(0.2, 1.0, 69), (1.2, 2.5, 76)])
    x0 = transcribe_wave(pipe, wave, sampler="ddim", steps=3, progress=False, precision=precision)
    hook.remove()
    want = sampling_precision(precision, torch.device("cpu"))
    assert want == precision or want == ("bf16" if native_bf16(torch.device("cpu")) else "fp32")
    assert seen == {torch.bfloat16 if want == "bf16" else torch.float32}
    assert x0.dtype == np.float32
    reference = transcribe_wave(pipe, wave, sampler="ddim", steps=3, progress=False, precision="fp32")
    if want == "fp32":
        np.testing.assert_array_equal(x0, reference)
    else:
        assert not np.array_equal(x0, reference)
        assert np.abs(x0 - reference).mean() < 0.05 * np.abs(reference).mean()  # bf16: 8 significant bits
