"""The pipeline: a network, its config, its diffusion and its two settings, as one object that
transcribes, generates and inpaints (the CLI, the notebooks and the benchmarks all use it).

    pipe = Pipeline.from_checkpoint()              # the bundled model
    result = pipe.transcribe("song.wav")           # notes (with velocities), the posteriorgram
    result.write_midi("song.mid")
    voted = pipe.transcribe("song.wav", pipe.sampling.replace(samples=4), keep_roll=False)
    voted.write_csv("song.csv")                    # onset_s,offset_s,pitch,velocity,confidence
    dream = pipe.generate(seconds=20.0)            # w = -1: no audio (§4.3)
    fixed = pipe.inpaint("take.flac", [(12, 15)])  # c_mel = -1 in the masked seconds (§4.4)

``pipe.sampling`` and ``pipe.decoding`` (:mod:`diffroll.transcription.settings`) are resolved once
from the checkpoint's config; a caller changes them by passing other settings objects, made with
``pipe.sampling.replace(...)`` and ``DecodeSettings.of(pipe.config, ...)``. A model's config
travels with it here, never as an attribute attached to the network. The window machinery is
:mod:`diffroll.transcription.sampling`, the notes :mod:`diffroll.transcription.decoding`, the maths
:mod:`diffroll.core.diffusion`.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Sequence

import numpy as np
import pretty_midi
import torch

from ..core.checkpoint import CheckpointError, config_of, load_checkpoint
from ..core.config import Config
from ..core.diffusion import Diffusion
from ..core.keynet import KeySharedDiffRoll
from ..core.model import DiffRoll
from ..core.paths import bundled_checkpoint
from ..core.roll import Note, array_notes
from .audio_stream import AudioStream, array_audio, open_audio, read_audio, silence_audio
from .confidence import Calibration, consensus, support
from .decoding import decode_roll
from .outputs import Transcription
from .sampling import StreamResult, transcribe_stream
from .settings import DecodeSettings, SamplingSettings
from .windows import frames_mask


@dataclass
class Pipeline:
    """``model`` (any callable ``model(x_t, t, mel) -> x̂0`` with ``rows``; a :class:`DiffRoll`
    normally) with the :class:`Config` it was trained with, and the diffusion of that config."""

    model: torch.nn.Module
    config: Config
    diffusion: Diffusion = field(init=False)
    sampling: SamplingSettings = field(init=False)
    decoding: DecodeSettings = field(init=False)

    def __post_init__(self):
        self.diffusion = Diffusion.from_config(self.config.diffusion)
        self.sampling = SamplingSettings.of(self.config)
        self.decoding = DecodeSettings.of(self.config)

    # -- making one --------------------------------------------------------------------------
    @classmethod
    def from_config(cls, cfg: Config, device: str | torch.device = "cpu") -> "Pipeline":
        """An untrained network of ``cfg``'s size (rows: 88 per roll channel)."""
        return cls(new_model(cfg).to(device), cfg)

    @classmethod
    def from_checkpoint(cls, path: str | Path | None = None, device: str | torch.device = "cpu",
                        use_ema: bool = True) -> "Pipeline":
        """A ready (eval-mode) pipeline from a checkpoint: the network with the config it was trained
        with. ``path=None`` loads the bundled model (checkpoints/diffroll-cpu.pt). EMA weights are
        used when the checkpoint has them and ``use_ema``; half-precision weights (the bundled file)
        are loaded as float32. Checkpoints written before the roll and mel-scaling settings existed
        load as the paper's frame roll and min-max scaling, which is what they were trained with."""
        path = Path(path) if path is not None else bundled_checkpoint()
        if not path.is_file() and path == bundled_checkpoint():
            raise CheckpointError(f"{path}: the bundled model is missing; train one with `diffroll train` or "
                                  "notebooks/03_train.ipynb, or pass a checkpoint path")
        state = load_checkpoint(path)
        cfg = config_of(state, path)
        model = new_model(cfg)
        weights = state["ema"] if use_ema and state.get("ema") is not None else state["model"]
        try:
            model.load_state_dict({k: v.float() for k, v in weights.items()})
        except RuntimeError as err:
            raise CheckpointError(f"{path}: weights do not match the checkpoint's model config "
                                  f"({cfg.model}, roll {cfg.roll.roll_channels}): {str(err).splitlines()[0]}") from err
        return cls(model.to(device).eval(), cfg)

    @property
    def device(self) -> torch.device:
        return next(self.model.parameters()).device

    # -- using it ----------------------------------------------------------------------------
    def decode(self, roll: np.ndarray, decoding: DecodeSettings | None = None) -> list[Note]:
        """Notes of a whole posteriorgram (``decoding``: None, the pipeline's own)."""
        return decode_roll(roll, self.config.audio.fps, self.decoding if decoding is None else decoding)

    def transcribe(self, audio: str | Path | np.ndarray | AudioStream, sampling: SamplingSettings | None = None,
                   decoding: DecodeSettings | None = None, *, mask: np.ndarray | None = None,
                   keep_roll: bool = True, keep_samples: bool = True, nonfinite: str = "error",
                   progress: bool = True, callback=None, desc: str = "windows") -> Transcription:
        """Audio (a file: any rate, mono or stereo, streamed; a mono array at the config's rate; or
        an :class:`~diffroll.transcription.audio_stream.AudioStream`) -> :class:`Transcription`.

        ``sampling``/``decoding``: None, the pipeline's own (:attr:`sampling`, :attr:`decoding`).
        ``sampling.samples`` = K: K transcriptions from different x_T, batched together;
        ``sampling.combine``: "mean" reads the notes from the mean of their x̂0, "vote" keeps the
        notes a majority holds; each note's confidence is the share of the K samples holding it.
        ``mask`` (frames,) bool: frames whose c_mel is -1 (inpainting, §4.4). ``keep_roll=False``
        and ``keep_samples=False`` keep only the notes (memory independent of the audio's length
        but for the notes themselves). ``nonfinite``: "error" (refuse NaN / inf samples) or "zero"
        (replace them by 0, warn). ``callback`` receives each sampler step (see
        :meth:`diffroll.core.diffusion.Diffusion.sample`).
        """
        sampling = self.sampling if sampling is None else sampling
        decoding = self.decoding if decoding is None else decoding
        result = transcribe_stream(self, self.open(audio, nonfinite), sampling, decoding, keep_roll=keep_roll,
                                   mask=mask, progress=progress, callback=callback, desc=desc)
        calibration = Calibration.of(self.config.roll.confidence_calibration)
        return _combine(result, self.config.audio.fps, keep_samples, calibration)

    def generate(self, seconds: float = 20.48, sampling: SamplingSettings | None = None,
                 decoding: DecodeSettings | None = None, *, keep_roll: bool = True, keep_samples: bool = True,
                 progress: bool = True, desc: str = "generate") -> Transcription:
        """Unconditional generation (w = -1, §4.3): a roll sampled with c_mel = -1 everywhere. With
        ``samples`` = K, ``sample_notes`` are K independent generations; ``notes`` combines them as
        a transcription's samples are combined (mean or vote), which for unrelated pieces of music
        means little: use ``sample_notes``."""
        if isinstance(seconds, bool) or not isinstance(seconds, (int, float)) or not (0 < seconds < math.inf):
            raise ValueError(f"seconds must be a finite number > 0, got {seconds!r}")
        sr = self.config.audio.sample_rate
        sampling = (self.sampling if sampling is None else sampling).replace(w=-1.0)
        return self.transcribe(silence_audio(int(round(seconds * sr)), sr), sampling, decoding, keep_roll=keep_roll,
                               keep_samples=keep_samples, progress=progress, desc=desc)

    def inpaint(self, audio: str | Path | np.ndarray | AudioStream, spans: Sequence[tuple[float, float]],
                sampling: SamplingSettings | None = None, decoding: DecodeSettings | None = None, *,
                nonfinite: str = "error", keep_roll: bool = True, keep_samples: bool = True,
                progress: bool = True, desc: str = "windows") -> Transcription:
        """Transcription with c_mel = -1 in the ``spans`` (seconds) of the audio (§4.4); a
        ValueError when no frame of the audio lies in them."""
        stream = self.open(audio, nonfinite)
        mask = frames_mask(spans, stream.info.samples // self.config.audio.hop_length, self.config.audio.fps)
        if not mask.any():
            raise ValueError(f"the mask lies outside the audio ({stream.info.seconds:.2f} s)")
        return self.transcribe(stream, sampling, decoding, mask=mask, keep_roll=keep_roll, keep_samples=keep_samples,
                               progress=progress, desc=desc)

    def open(self, audio: str | Path | np.ndarray | AudioStream, nonfinite: str = "error") -> AudioStream:
        """A stream of the audio at the config's rate: a file (read and resampled block by block),
        a mono array at the config's rate, or a stream (returned as it is)."""
        if isinstance(audio, AudioStream):
            return audio
        sr = self.config.audio.sample_rate
        if isinstance(audio, (str, Path)):
            return open_audio(audio, sr=sr, nonfinite=nonfinite)
        return array_audio(audio, sr, nonfinite)

    def load_audio(self, audio: str | Path | np.ndarray) -> np.ndarray:
        """The whole audio in memory: a file (read and resampled, streamed) or a mono array at the
        config's rate."""
        sr = self.config.audio.sample_rate
        if isinstance(audio, (str, Path)):
            return read_audio(audio, sr=sr)
        wave = np.asarray(audio, dtype=np.float32)
        if wave.ndim != 1:
            raise ValueError(f"expected a mono 1-D array at {sr} Hz, got shape {wave.shape}")
        return wave

    def label(self) -> str:
        cfg = self.config
        shared = ", keyshared" if cfg.model.architecture == "keyshared" else ""
        return (f"{cfg.scale}{shared}: {cfg.model.layers}×{cfg.model.channels} ch, k={cfg.model.kernel_size}, "
                f"dilation {cfg.model.dilation}, T={cfg.diffusion.T}, roll {'+'.join(cfg.roll.roll_channels)}")


def transcribe(audio: str | Path | np.ndarray, checkpoint: str | Path | None = None,
               pipeline: Pipeline | None = None, device: str | None = None,
               sampling: SamplingSettings | None = None, decoding: DecodeSettings | None = None,
               progress: bool = True) -> pretty_midi.PrettyMIDI:
    """Audio file (any rate, mono/stereo) or a mono array -> PrettyMIDI with velocities.

    ``pipeline`` wins over ``checkpoint``; neither: the bundled model. ``sampling``/``decoding``:
    None, the pipeline's own (:meth:`Pipeline.transcribe`). Times in the MIDI are seconds of the audio.
    """
    if pipeline is None:
        pipeline = Pipeline.from_checkpoint(checkpoint, device=device or ("cuda" if torch.cuda.is_available() else "cpu"))
    return pipeline.transcribe(audio, sampling, decoding, keep_roll=False, progress=progress).midi()


def _combine(result: StreamResult, fps: float, keep_samples: bool, calibration: Calibration | None = None
          ) -> Transcription:
    """One :class:`Transcription` of K sampled transcriptions: the sample itself when K = 1, else
    the notes of the samples' mean x̂0 (``result.combined``) or of their majority
    (:func:`diffroll.transcription.confidence.consensus`), with their confidence (the share of samples holding
    the note, through ``calibration`` when given)."""
    if len(result.samples) == 1:
        return Transcription(array_notes(result.samples[0]), result.roll, fps, audio=result.audio)
    if result.combined is not None:
        notes = array_notes(result.combined)
        confidence = support(notes, result.samples)
    else:
        notes, confidence = consensus(result.samples)
    if calibration is not None:
        confidence = [float(c) for c in calibration(confidence, len(result.samples))]
    sample_notes = [array_notes(a) for a in result.samples] if keep_samples else None
    return Transcription(notes, result.roll, fps, confidence, sample_notes, result.audio)


def new_model(cfg: Config) -> DiffRoll | KeySharedDiffRoll:
    """The network of ``cfg``: its model settings (``architecture``), 88 rows per roll channel."""
    if cfg.model.architecture == "keyshared":
        return KeySharedDiffRoll(cfg.model, cfg.roll.roll_channels)
    return DiffRoll(cfg.model, cfg.roll.roll_channels)


def load_model(path: str | Path | None = None, device: str | torch.device = "cpu") -> Pipeline:
    """The :class:`Pipeline` of a checkpoint (the bundled model when ``path`` is None):
    ``.transcribe``, ``.generate``, ``.inpaint``; ``.model``, ``.config``, ``.sampling``, ``.decoding``."""
    return Pipeline.from_checkpoint(path, device=device)
