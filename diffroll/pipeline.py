"""The pipeline: a network, its config and its diffusion, as one object that transcribes,
generates and inpaints (the CLI, the notebooks and the benchmarks all use it).

    pipe = Pipeline.from_checkpoint()              # the bundled model
    result = pipe.transcribe("song.wav")           # notes (with velocities), the posteriorgram
    result.midi().write("song.mid")
    dream = pipe.generate(seconds=20.0)            # w = -1: no audio (§4.3)
    fixed = pipe.inpaint("take.flac", [(12, 15)])  # c_mel = -1 in the masked seconds (§4.4)

A model's config travels with it here, never as an attribute attached to the network. The
window machinery (any-length audio, stitching, silence) is :mod:`diffroll.inference`; the
maths is :mod:`diffroll.diffusion`.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Sequence

import numpy as np
import pretty_midi
import torch

from .config import Config
from .diffusion import Diffusion
from .inference import DEFAULT_SAMPLER, DEFAULT_STEPS, frames_mask, read_audio, transcribe_wave
from .model import DiffRoll
from .roll import Note, decode, notes_to_midi


@dataclass
class Transcription:
    """Notes read from a posteriorgram (and, with ``samples`` > 1, their confidence)."""

    notes: list[Note]
    roll: np.ndarray  # x̂0 (R, frames), R = 88 per roll channel (the first sample's, with samples > 1)
    fps: float
    confidence: list[float] | None = None  # per note: the share of samples holding it

    def midi(self) -> pretty_midi.PrettyMIDI:
        return notes_to_midi(self.notes)


@dataclass
class Pipeline:
    """``model`` (any callable ``model(x_t, t, mel) -> x̂0`` with ``rows``; a :class:`DiffRoll`
    normally) with the :class:`Config` it was trained with, and the diffusion of that config."""

    model: torch.nn.Module
    config: Config
    diffusion: Diffusion = field(init=False)

    def __post_init__(self):
        self.diffusion = Diffusion.from_config(self.config.diffusion)

    # -- making one --------------------------------------------------------------------------
    @classmethod
    def from_config(cls, cfg: Config, device: str | torch.device = "cpu") -> "Pipeline":
        """An untrained network of ``cfg``'s size (rows: 88 per roll channel)."""
        return cls(new_model(cfg).to(device), cfg)

    @classmethod
    def from_checkpoint(cls, path: str | Path | None = None, device: str | torch.device = "cpu",
                        use_ema: bool = True) -> "Pipeline":
        """A ready (eval-mode) pipeline from a checkpoint; ``path=None``: the bundled model."""
        from .checkpoint import load_pipeline

        return load_pipeline(path, device=device, use_ema=use_ema)

    @property
    def device(self) -> torch.device:
        return next(self.model.parameters()).device

    # -- using it ----------------------------------------------------------------------------
    def decode(self, roll: np.ndarray, threshold: float | None = None, onset_threshold: float | None = None,
               min_frames_without_onset: int | None = None) -> list[Note]:
        """Notes of a posteriorgram with the config's roll settings (thresholds overridable)."""
        roll_cfg = self.config.roll
        if onset_threshold is not None or min_frames_without_onset is not None:
            from dataclasses import replace
            roll_cfg = replace(roll_cfg, onset_threshold=roll_cfg.onset_threshold if onset_threshold is None
                               else onset_threshold,
                               min_frames_without_onset=min_frames_without_onset if min_frames_without_onset
                               is not None else roll_cfg.min_frames_without_onset)
        th = self.config.diffusion.threshold if threshold is None else threshold
        return decode(roll, self.config.audio.fps, roll_cfg, th)

    def transcribe(self, audio: str | Path | np.ndarray, *, threshold: float | None = None,
                   onset_threshold: float | None = None, min_frames_without_onset: int | None = None,
                   **kwargs) -> Transcription:
        """Audio (a file: any rate, mono or stereo; or a mono array at the config's rate) ->
        :class:`Transcription`. Other keyword arguments go to
        :func:`diffroll.inference.transcribe_wave` (w, sampler, steps, seed, batch_size, overlap,
        mask, progress); the sampler defaults to :data:`DEFAULT_SAMPLER`, :data:`DEFAULT_STEPS`."""
        from .inference import transcribe_wave

        kwargs.setdefault("sampler", DEFAULT_SAMPLER)
        kwargs.setdefault("steps", DEFAULT_STEPS)
        roll = transcribe_wave(self, self.load_audio(audio), **kwargs)
        notes = self.decode(roll, threshold, onset_threshold, min_frames_without_onset)
        return Transcription(notes, roll, self.config.audio.fps)

    def generate(self, seconds: float = 20.48, **kwargs) -> Transcription:
        """Unconditional generation (w = -1, §4.3): a roll sampled with c_mel = -1 everywhere."""
        silence = np.zeros(int(round(seconds * self.config.audio.sample_rate)), dtype=np.float32)
        return self.transcribe(silence, w=-1.0, **kwargs)

    def inpaint(self, audio: str | Path | np.ndarray, spans: Sequence[tuple[float, float]],
                **kwargs) -> Transcription:
        """Transcription with c_mel = -1 in the ``spans`` (seconds) of the audio (§4.4)."""
        wave = self.load_audio(audio)
        frames = len(wave) // self.config.audio.hop_length
        return self.transcribe(wave, mask=frames_mask(spans, frames, self.config.audio.fps), **kwargs)

    def load_audio(self, audio: str | Path | np.ndarray) -> np.ndarray:
        """A file (read and resampled, streamed) or a mono array at the config's rate."""
        sr = self.config.audio.sample_rate
        if isinstance(audio, (str, Path)):
            return read_audio(audio, sr=sr)
        wave = np.asarray(audio, dtype=np.float32)
        if wave.ndim != 1:
            raise ValueError(f"expected a mono 1-D array at {sr} Hz, got shape {wave.shape}")
        return wave

    def label(self) -> str:
        cfg = self.config
        return (f"{cfg.scale}: {cfg.model.layers}×{cfg.model.channels} ch, k={cfg.model.kernel_size}, "
                f"dilation {cfg.model.dilation}, T={cfg.diffusion.T}, roll {'+'.join(cfg.roll.roll_channels)}")


def transcribe(audio: str | Path | np.ndarray, checkpoint: str | Path | None = None,
               pipeline: Pipeline | None = None, device: str | None = None, **kwargs) -> pretty_midi.PrettyMIDI:
    """Audio file (any rate, mono/stereo) or a mono array -> PrettyMIDI with velocities.

    ``pipeline`` wins over ``checkpoint``; neither: the bundled model. Keyword arguments go to
    :meth:`Pipeline.transcribe`. Times in the MIDI are seconds of the audio.
    """
    if pipeline is None:
        pipeline = Pipeline.from_checkpoint(checkpoint, device=device or ("cuda" if torch.cuda.is_available() else "cpu"))
    return pipeline.transcribe(audio, **kwargs).midi()


def new_model(cfg: Config) -> DiffRoll:
    """The network of ``cfg``: its model settings, 88 rows per roll channel."""
    return DiffRoll(cfg.model, len(cfg.roll.roll_channels))
