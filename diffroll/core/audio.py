"""Audio in, log-mel out: the conditioning c_mel of §3–4 (or, beyond the paper, a harmonic CQT).

16 kHz mono audio -> nnAudio mel spectrogram (229 bins, 0–8 kHz, window 2048, hop 512) -> log ->
[0, 1], by one of two scalings (:attr:`AudioConfig.mel_scaling`):

- ``minmax`` (the paper's): ln(mel) min–max scaled per example. Quiet noise alone in a window is
  stretched to full scale (a −60 dBFS room tail looks like music).
- ``fixed``: the level in dB between a fixed floor and ceiling, clipped to [0, 1]: a given level
  maps to the same value in every window.

-1 is reserved for "no audio" (the classifier-free dropout value), which is why c_mel never goes
below 0.

``AudioConfig.frontend = "hcqt"`` selects :class:`HarmonicCQTFrontend` instead: a CQT aligned to
the 88 keys with several harmonics stacked per key (as basic-pitch's HCQT), for the key-shared
network. :func:`make_frontend` builds the one a config asks for; its output takes c_mel's place
everywhere (training segments, windows, the -1 of classifier-free guidance).
"""
from __future__ import annotations

import dataclasses
from math import gcd
from pathlib import Path

import numpy as np
import soundfile as sf
import torch
from nnAudio.features import CQT2010v2, MelSpectrogram
from nnAudio.features.cqt import get_cqt_complex
from nnAudio.utils import broadcast_dim
from scipy.signal import resample_poly

from .config import LOWEST_MIDI, N_KEYS, AudioConfig

LOG_EPS = 1e-5
AUDIO_EXTENSIONS = (".wav", ".flac", ".ogg", ".mp3", ".aiff", ".aif")


class AudioError(ValueError):
    """An audio file that cannot be used (missing, unreadable, or empty)."""


def load_audio(path: str | Path, sr: int = 16000) -> np.ndarray:
    """Read any file libsndfile reads as float32 mono at ``sr`` (channels averaged, resampled)."""
    path = Path(path)
    if not path.is_file():
        raise AudioError(f"{path}: no such audio file")
    try:
        wave, file_sr = sf.read(str(path), dtype="float32", always_2d=True)
    except Exception as err:  # soundfile raises LibsndfileError, RuntimeError, TypeError...
        raise AudioError(f"{path}: not a readable audio file ({err})") from err
    if wave.size == 0:
        raise AudioError(f"{path}: the audio file is empty (0 samples)")
    return resample(wave.mean(axis=1), file_sr, sr)


def resample(wave: np.ndarray, from_sr: int, to_sr: int) -> np.ndarray:
    """Polyphase resampling (scipy), float32 out."""
    if from_sr == to_sr:
        return np.ascontiguousarray(wave, dtype=np.float32)
    g = gcd(int(from_sr), int(to_sr))
    return resample_poly(wave, to_sr // g, from_sr // g).astype(np.float32)


def scale_log_mel(mel: torch.Tensor) -> torch.Tensor:
    """ln(mel + eps), then min–max per example to [0, 1]; a constant (silent) input gives zeros."""
    logmel = torch.log(mel + LOG_EPS)
    lo = logmel.amin(dim=(-2, -1), keepdim=True)
    hi = logmel.amax(dim=(-2, -1), keepdim=True)
    span = hi - lo
    return torch.where(span > 1e-6, (logmel - lo) / span.clamp_min(1e-6), torch.zeros_like(logmel))


def scale_fixed_db(mel: torch.Tensor, db_floor: float, db_ceiling: float) -> torch.Tensor:
    """10·log10(mel power) mapped linearly from [db_floor, db_ceiling] to [0, 1], clipped."""
    db = 10.0 * torch.log10(mel.clamp_min(1e-20))
    return ((db - db_floor) / (db_ceiling - db_floor)).clamp_(0.0, 1.0)


MEL_SCALINGS = ("minmax", "fixed")


def _batch_and_frames(wave: torch.Tensor, hop_length: int) -> tuple[torch.Tensor, int]:
    """``wave`` as a batch (B, samples) and its whole frames (a front-end's frame j starts at
    sample j·hop); an AudioError when it is shorter than one hop."""
    if wave.dim() == 1:
        wave = wave[None]
    frames = wave.shape[-1] // hop_length
    if frames == 0:
        raise AudioError(f"audio of {wave.shape[-1]} samples is shorter than one hop ({hop_length} samples)")
    return wave, frames


class FastMelSpectrogram(MelSpectrogram):
    """nnAudio's MelSpectrogram with its STFT done by FFT (``torch.stft``) instead of a conv1d with
    2 × 1,025 windowed Fourier kernels of 2,048 taps: the same window (nnAudio's own), centring and
    power, so the same numbers to float rounding (``tests/test_core.py``), ~7× faster on a CPU
    (60 s of audio: 0.023 s instead of 0.167 s on one thread; the conv1d was a fifth of the CLI's
    transcription time)."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        stft = self.stft
        x = broadcast_dim(x)  # (B, 1, samples)
        if stft.center:
            if stft.pad_mode == "reflect" and x.shape[-1] < stft.pad_amount:  # nnAudio's own check
                raise AssertionError("Signal length shorter than reflect padding length (n_fft // 2).")
            x = torch.nn.functional.pad(x, (stft.pad_amount, stft.pad_amount), mode=stft.pad_mode)
        window = stft.window_mask[0, :, 0].to(x.dtype)  # the window nnAudio multiplies into its kernels
        spectrum = torch.stft(x[:, 0], stft.n_fft, stft.stride, window=window, center=False, return_complex=True)
        magnitude = torch.sqrt(spectrum.real.pow(2) + spectrum.imag.pow(2))  # nnAudio's "Magnitude"
        return torch.matmul(self.mel_basis, magnitude ** self.power)


class MelFrontend(torch.nn.Module):
    """Waveform (B, samples) -> c_mel (B, n_mels, samples // hop) in [0, 1] (§4)."""

    def __init__(self, cfg: AudioConfig | None = None):
        super().__init__()
        self.cfg = cfg = cfg or AudioConfig()
        if cfg.mel_scaling not in MEL_SCALINGS:
            raise ValueError(f"unknown mel_scaling {cfg.mel_scaling!r}; choose one of {MEL_SCALINGS}")
        if cfg.mel_scaling == "fixed" and not cfg.db_ceiling > cfg.db_floor:
            raise ValueError(f"db_ceiling ({cfg.db_ceiling}) must be above db_floor ({cfg.db_floor})")
        self.mel = FastMelSpectrogram(sr=cfg.sample_rate, n_fft=cfg.n_fft, n_mels=cfg.n_mels,
                                      hop_length=cfg.hop_length, fmin=cfg.f_min, fmax=cfg.f_max,
                                      trainable_mel=False, trainable_STFT=False, verbose=False)

    def forward(self, wave: torch.Tensor) -> torch.Tensor:
        wave, frames = _batch_and_frames(wave, self.cfg.hop_length)
        mel = self.mel(wave.float())[..., :frames]  # centred STFT gives frames + 1; drop the last
        if self.cfg.mel_scaling == "fixed":
            return scale_fixed_db(mel, self.cfg.db_floor, self.cfg.db_ceiling)
        return scale_log_mel(mel)


def scale_power(power: torch.Tensor, cfg: AudioConfig) -> torch.Tensor:
    """A power spectrogram to [0, 1] by ``cfg.mel_scaling`` (see the module docstring)."""
    if cfg.mel_scaling == "fixed":
        return scale_fixed_db(power, cfg.db_floor, cfg.db_ceiling)
    return scale_log_mel(power)


def midi_hz(midi: float) -> float:
    """Equal temperament, A4 (MIDI 69) = 440 Hz."""
    return 440.0 * 2.0 ** ((midi - 69) / 12)


def fft_downsample_by_2(x: torch.Tensor, kernel: torch.Tensor) -> torch.Tensor:
    """nnAudio's ``downsampling_by_2`` (``conv1d(x, kernel, stride=2, padding=(L - 1) // 2)``, its
    anti-aliasing lowpass before each lower octave of CQT2010v2) computed by FFT convolution:
    the same numbers to float rounding, ~8x faster on a CPU than a one-channel 256-tap conv1d."""
    taps, pad = kernel.shape[-1], (kernel.shape[-1] - 1) // 2
    n_out = (x.shape[-1] + 2 * pad - taps) // 2 + 1
    n_fft = x.shape[-1] + taps
    spectrum = torch.fft.rfft(x, n=n_fft) * torch.fft.rfft(kernel.flip(-1), n=n_fft)  # conv1d is correlation
    full = torch.fft.irfft(spectrum, n=n_fft)  # full[j] = sum_k kernel[k]·x[j - (taps - 1) + k]
    start = taps - 1 - pad  # conv1d's output i reads x from 2i - pad
    return full[..., start:start + 2 * n_out:2]


class FastCQT2010v2(CQT2010v2):
    """nnAudio's CQT2010v2 with its per-octave lowpass done by FFT (:func:`fft_downsample_by_2`):
    CQT2010v2's forward (top octave, then halve the rate and reuse the same kernels, octave by
    octave), magnitude only. On 2 CPU threads nearly all of CQT2010v2's time is that lowpass."""

    def forward(self, x: torch.Tensor, normalization_type: str = "convolutional") -> torch.Tensor:
        if normalization_type != "convolutional" or self.earlydownsample:
            return super().forward(x, normalization_type=normalization_type)
        x = broadcast_dim(x)
        hop = self.hop_length
        octaves = [get_cqt_complex(x, self.cqt_kernels_real, self.cqt_kernels_imag, hop, self.padding)]
        for _ in range(self.n_octaves - 1):
            hop //= 2
            x = fft_downsample_by_2(x, self.lowpass_filter)
            octaves.append(get_cqt_complex(x, self.cqt_kernels_real, self.cqt_kernels_imag, hop, self.padding))
        cqt = torch.cat(octaves[::-1], 1)[:, -self.n_bins:, :] * self.downsample_factor
        return torch.sqrt(cqt.pow(2).sum(-1))


class HarmonicCQTFrontend(torch.nn.Module):
    """Waveform (B, samples) -> key-aligned harmonic CQT (B, channels·88, samples // hop) in [0, 1].

    Beyond the paper (the HCQT of basic-pitch, Bittner et al. 2022). nnAudio's CQT2010v2 with
    ``cqt_bins_per_key`` bins a semitone, its bins placed so that key k (MIDI 21 + k) has bins
    [k·b, (k+1)·b), the middle one on the key's frequency. Harmonic h of key k is read at bin
    i + round(12·b·log2 h) of the same CQT: the channels of key k hold the energy at h·f_k for
    every h of ``harmonics``. Bins that would lie below A0's lowest bin (h < 1) or at or above
    Nyquist (h·f_k > sr/2, e.g. the 5th harmonic of keys above ~E6 at 16 kHz) read 0, silence.
    ``cqt_key_pool = "max"`` keeps each key's loudest bin per harmonic (robust to a detuned piano);
    ``"none"`` keeps the b bins as channels.

    Levels: the magnitude (normalised so that a sine of amplitude A reads A/2 in its bin) is put on
    the mel's power scale, a full-scale sine at :data:`SINE_DB` dB, then scaled like the mel
    (``mel_scaling``, ``db_floor``, ``db_ceiling`` mean the same levels). Rows are ordered
    (channel, key): ``c.view(B, channels, 88, frames)`` is the key-major picture. Frame j is centred
    on sample j·hop like the mel's.
    """

    SINE_DB = 42.0  # the mel's peak for a full-scale sine (10·log10 of nnAudio's mel power: 42.2)

    def __init__(self, cfg: AudioConfig):
        super().__init__()
        self.cfg = cfg
        b = cfg.cqt_bins_per_key
        if b < 1 or b % 2 == 0:
            raise ValueError(f"cqt_bins_per_key must be odd (a middle bin on the key), got {b}")
        if cfg.cqt_key_pool not in ("max", "none"):
            raise ValueError(f"unknown cqt_key_pool {cfg.cqt_key_pool!r}; choose max or none")
        if not cfg.harmonics or min(cfg.harmonics) <= 0:
            raise ValueError(f"harmonics must be positive, got {cfg.harmonics}")
        if cfg.mel_scaling not in MEL_SCALINGS:
            raise ValueError(f"unknown mel_scaling {cfg.mel_scaling!r}; choose one of {MEL_SCALINGS}")
        bins_per_octave = 12 * b
        f_min = midi_hz(LOWEST_MIDI) * 2.0 ** (-(b // 2) / bins_per_octave)  # the lowest bin of A0
        shifts = [round(bins_per_octave * np.log2(h)) for h in cfg.harmonics]
        below_nyquist = int(np.ceil(bins_per_octave * np.log2(cfg.sample_rate / 2 / f_min)))  # bins < sr/2
        self.n_bins = min(N_KEYS * b + max(shifts), below_nyquist)
        self.shifts = shifts
        self.cqt = FastCQT2010v2(sr=cfg.sample_rate, hop_length=cfg.hop_length, fmin=f_min, n_bins=self.n_bins,
                             filter_scale=cfg.cqt_filter_scale, bins_per_octave=bins_per_octave,
                             pad_mode="constant", verbose=False)
        self.register_buffer("frequencies", torch.as_tensor(self.cqt.frequencies, dtype=torch.float32),
                             persistent=False)

    def harmonic_stack(self, cqt: torch.Tensor) -> torch.Tensor:
        """CQT magnitudes (B, n_bins, τ) -> (B, harmonics, 88·b, τ): channel h at bin i is the CQT
        at bin i + shift_h, 0 where that bin is below the lowest or not computed (Nyquist)."""
        B, n, frames = cqt.shape
        rows = N_KEYS * self.cfg.cqt_bins_per_key
        stacked = cqt.new_zeros(B, len(self.shifts), rows, frames)
        for c, s in enumerate(self.shifts):
            lo, hi = max(0, -s), min(rows, n - s)  # the rows i with 0 <= i + s < n
            if hi > lo:
                stacked[:, c, lo:hi] = cqt[:, lo + s:hi + s]
        return stacked

    def forward(self, wave: torch.Tensor) -> torch.Tensor:
        wave, frames = _batch_and_frames(wave, self.cfg.hop_length)
        magnitude = self.cqt(wave.float(), normalization_type="convolutional")[..., :frames]
        stacked = self.harmonic_stack(magnitude)  # (B, H, 88·b, τ)
        B, H, _, _ = stacked.shape
        b = self.cfg.cqt_bins_per_key
        per_key = stacked.view(B, H, N_KEYS, b, frames)
        if self.cfg.cqt_key_pool == "max":
            per_key = per_key.amax(dim=3, keepdim=True)
        keys = per_key.permute(0, 1, 3, 2, 4).reshape(B, -1, frames)  # rows (channel, key)
        power = (keys * 10.0 ** (self.SINE_DB / 20) / 0.5) ** 2  # a full-scale sine: SINE_DB dB
        return scale_power(power, self.cfg)


Frontend = MelFrontend | HarmonicCQTFrontend


def make_frontend(cfg: AudioConfig | None = None) -> Frontend:
    """The front-end ``cfg.frontend`` names: :class:`MelFrontend` (§4) or :class:`HarmonicCQTFrontend`."""
    cfg = cfg or AudioConfig()
    if cfg.frontend == "mel":
        return MelFrontend(cfg)
    if cfg.frontend == "hcqt":
        return HarmonicCQTFrontend(cfg)
    raise ValueError(f"unknown frontend {cfg.frontend!r}; choose mel or hcqt")


_frontends: dict[tuple, Frontend] = {}


def cached_frontend(cfg: AudioConfig | None = None, device: torch.device | str = "cpu") -> Frontend:
    """The front-end of ``cfg`` (:func:`make_frontend`) on ``device``, made once per process and then shared
    (nnAudio builds its STFT and mel kernels in 0.06-0.18 s, a tenth or more of transcribing a
    30-second file: `diffroll transcribe` on the 22 FluidR3_GM files of the piano test split, 1,000 s,
    took 18.2 s instead of 19.1, means of 4 runs). It holds a copy of ``cfg``, so changing ``cfg``
    later gives another front-end."""
    cfg = cfg or AudioConfig()
    key = (repr(sorted(vars(cfg).items())), str(torch.device(device)))  # repr: harmonics is a list
    if key not in _frontends:
        _frontends[key] = make_frontend(dataclasses.replace(cfg)).to(device)
    return _frontends[key]


def mel_spectrogram(wave: np.ndarray, cfg: AudioConfig | None = None) -> np.ndarray:
    """Convenience: one waveform (numpy) -> c_mel (n_mels, frames) as float32 numpy."""
    with torch.no_grad():
        return cached_frontend(cfg)(torch.as_tensor(wave, dtype=torch.float32))[0].numpy()
