"""The two settings of a transcription, frozen and typed, each resolved once from a checkpoint's
config (and the caller's changes): how x̂0 is sampled (:class:`SamplingSettings`, Algorithm 1) and
how notes are read from it (:class:`DecodeSettings`).

Every default lives here. :class:`~diffroll.transcription.pipeline.Pipeline` holds one of each
(``pipe.sampling``, ``pipe.decoding``); the CLI, the notebooks, the benchmarks and
:func:`diffroll.transcribe` change them with ``.replace(...)`` or :meth:`DecodeSettings.of`, and
nothing below the pipeline keeps a default of its own.

No torch here: ``diffroll --help`` reads these defaults without loading it.
"""
from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass

import numpy as np

from ..core.config import N_KEYS, SAMPLERS, Config, RollConfig
from .held_notes import HeldNoteModel

PRECISIONS = ("auto", "fp32", "bf16")
COMBINES = ("mean", "vote")  # how K samples become one transcription (RollConfig.combine_samples)


@dataclass(frozen=True)
class SamplingSettings:
    """How each window's x̂0 is sampled (Algorithm 1), checked when made (ValueError naming a bad one).

    ``sampler``/``steps``: :meth:`diffroll.core.diffusion.Diffusion.sample` (None: all T steps).
    Three DDPM steps: on the validation split (96 excerpts × 60 s, ``benchmarks/sampler_validation.py``)
    the bundled model's note, note-with-offset and velocity F1 are each a little higher than with 5
    steps (77.98 / 47.18 / 15.69 against 77.62 / 46.60 / 15.44) at 0.7 of the time; 2 steps lose 1.3
    offset points, and w = 0 (one pass a step) 0.2-3 note points. The paper's stochastic steps beat
    DDIM's on offsets at few steps. Re-run ``sampler_validation.py`` after retraining. ``w``: the guidance weight of Algorithm 1 (-1: generation, §4.3).
    ``samples`` = K transcriptions from different x_T, made one by ``combine`` ("mean": notes of
    the mean x̂0; "vote": notes a majority holds). ``seed``: x_T and DDPM's noise (per window and
    sample: the result does not depend on ``batch_size``, the (window, sample) pairs per network
    call). ``precision``: the network's arithmetic (auto: bf16 where the device has it natively).
    ``overlap``: frames shared by neighbouring windows (None: a quarter window).
    """

    w: float
    combine: str
    sampler: str = "ddpm"
    steps: int | None = 3
    samples: int = 1
    seed: int = 0
    batch_size: int = 4
    precision: str = "auto"
    overlap: int | None = None

    @classmethod
    def of(cls, cfg: Config) -> "SamplingSettings":
        """The defaults with the checkpoint's w and way of combining samples."""
        return cls(w=cfg.diffusion.w, combine=cfg.roll.combine_samples)

    def replace(self, **changes) -> "SamplingSettings":
        """A copy with ``changes`` (field names), checked."""
        return dataclasses.replace(self, **changes)

    def __post_init__(self):
        if self.sampler not in SAMPLERS:
            raise ValueError(f"unknown sampler {self.sampler!r}; choose one of {SAMPLERS}")
        if self.precision not in PRECISIONS:
            raise ValueError(f"unknown precision {self.precision!r}; choose one of {PRECISIONS}")
        if self.combine not in COMBINES:
            raise ValueError(f"combine must be one of {', '.join(COMBINES)} (how K samples become one "
                             f"transcription), got {self.combine!r}")
        for name in ("batch_size", "samples"):
            _check_count(name, getattr(self, name), 1)
        if self.steps is not None:
            _check_count("steps", self.steps, 1, " (or None: all T)")
        if self.overlap is not None:
            _check_count("overlap", self.overlap, 0)
        if isinstance(self.w, bool) or not isinstance(self.w, (int, float, np.floating)) or not math.isfinite(self.w):
            raise ValueError(f"w (the guidance weight) must be a finite number, got {self.w}")


def _check_count(name: str, value, least: int, note: str = "") -> None:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < least:
        raise ValueError(f"{name} must be a whole number >= {least}{note}, got {value!r}")


@dataclass(frozen=True)
class DecodeSettings:
    """How notes are read from x̂0 (see :func:`diffroll.core.roll.roll_to_notes`); make one with :meth:`of`.

    ``min_frames_without_onset``: with an onset channel, a frame run that no onset starts becomes
    a note from this many frames (None: never). ``min_frames``: without an onset channel (frame
    rolls), notes shorter than this many frames are dropped (0: none). Both come from one
    user setting, the minimum length of a note read without an onset (``min_note_ms``).
    ``offset_threshold`` / ``restrike_threshold`` (note-state rolls; None: the frame / onset
    threshold): how long a started note lasts, and how strong an onset inside it must be to
    re-strike it (:attr:`RollConfig.offset_threshold`, :attr:`RollConfig.restrike_threshold`).
    """

    channels: tuple[str, ...]
    frame_threshold: float
    onset_threshold: float
    min_frames_without_onset: int | None
    min_frames: int = 0
    min_velocity: int = 0  # RollConfig.min_velocity
    offset_threshold: float | None = None
    restrike_threshold: float | None = None
    pedal_threshold: float | None = None  # RollConfig.pedal_threshold (used only with a pedal channel)
    held_notes: HeldNoteModel | None = None  # RollConfig.held_notes (used only without the pedal channel's pedal)

    @classmethod
    def of(cls, cfg: Config, frame_threshold: float | None = None, onset_threshold: float | None = None,
           min_note_ms: float | None = None, min_frames_without_onset: int | None = None,
           offset_threshold: float | None = None, restrike_threshold: float | None = None,
           pedal_threshold: float | None = None, use_pedal: bool = True) -> "DecodeSettings":
        """The config's decoding settings with overrides, checked (ValueError naming a bad one).
        ``offset_threshold`` / ``restrike_threshold`` / ``pedal_threshold``: None keeps the config's
        (whose None means the frame / onset threshold, and for the pedal: do not use it);
        ``use_pedal=False`` reads the notes without a pedal channel's help, and without the guess of
        pedal-held notes (:attr:`RollConfig.held_notes`, :mod:`diffroll.transcription.held_notes`):
        each note's end from its own frame values only.

        ``min_note_ms``: the minimum length of a note read without an onset. With an onset channel
        (note-state rolls) a frame run that no onset starts becomes a note when it lasts at least
        this long (default: the config's ``min_frames_without_onset``, None = never); without one
        (frame rolls, where no note has an onset) it is the minimum note length (default 0).
        """
        roll_cfg: RollConfig = cfg.roll
        channels = tuple(roll_cfg.roll_channels)
        frame = _check_threshold("frame_threshold", cfg.diffusion.threshold if frame_threshold is None
                                 else frame_threshold)
        onset = _check_threshold("onset_threshold", roll_cfg.onset_threshold if onset_threshold is None
                                 else onset_threshold)
        if min_note_ms is not None and min_frames_without_onset is not None:
            raise ValueError("give min_note_ms or min_frames_without_onset, not both")
        without = roll_cfg.min_frames_without_onset if min_frames_without_onset is None else min_frames_without_onset
        min_frames = 0
        if min_note_ms is not None:
            frames = min_note_frames(min_note_ms, cfg.audio.fps)
            without, min_frames = (frames, 0) if "onset" in channels else (without, frames)
        if without is not None and (isinstance(without, bool) or not isinstance(without, (int, np.integer))
                                    or without < 0):
            raise ValueError(f"min_frames_without_onset must be a whole number >= 0 or None, got {without!r}")
        loud = roll_cfg.min_velocity
        if isinstance(loud, bool) or not isinstance(loud, (int, np.integer)) or not 0 <= loud <= 127:
            raise ValueError(f"min_velocity must be a whole number in 0..127, got {loud!r}")
        held, restrike, pedal = (None if v is None else _check_threshold(name, v) for name, v in
                                 (("offset_threshold", roll_cfg.offset_threshold if offset_threshold is None
                                   else offset_threshold),
                                  ("restrike_threshold", roll_cfg.restrike_threshold if restrike_threshold is None
                                   else restrike_threshold),
                                  ("pedal_threshold", None if not use_pedal else roll_cfg.pedal_threshold
                                   if pedal_threshold is None else pedal_threshold)))
        pedal = pedal if "pedal" in channels else None  # a roll without pedal rows has no use for it
        guess = HeldNoteModel.from_dict(roll_cfg.held_notes) if use_pedal and roll_cfg.held_notes else None
        return cls(channels, frame, onset, without, min_frames, int(loud), held, restrike, pedal, guess)

    def replace(self, **changes) -> "DecodeSettings":
        """A copy with ``changes`` (field names)."""
        return dataclasses.replace(self, **changes)

    @property
    def rows(self) -> int:
        """Rows of a roll decoded with these settings: 88 per channel."""
        return N_KEYS * len(self.channels)

    @property
    def uses_pedal(self) -> bool:
        """Whether decoding holds notes with the roll's pedal channel (:func:`diffroll.core.roll.sustain_notes`)."""
        return "pedal" in self.channels and self.pedal_threshold is not None

    @property
    def uses_held_notes(self) -> bool:
        """Whether decoding guesses the notes a pedal held (:mod:`diffroll.transcription.held_notes`)."""
        return self.held_notes is not None and not self.uses_pedal

    @property
    def silent_below(self) -> float:
        """Frame value at or below which a key's frame keeps no note sounding."""
        return min(self.frame_threshold, self.offset_threshold or self.frame_threshold)


def _check_threshold(name: str, value: float) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float, np.floating)) or not 0 < value < 1:
        raise ValueError(f"{name} must be a number strictly between 0 and 1 (x̂0 rolls are 0 or 1), got {value!r}")
    return float(value)


def min_note_frames(ms: float, fps: float) -> int:
    """Frames a note needs to last at least ``ms`` milliseconds (0 ms: 0 frames)."""
    if isinstance(ms, bool) or not isinstance(ms, (int, float, np.floating)) or not (math.isfinite(ms) and ms >= 0):
        raise ValueError(f"min_note_ms must be a finite number >= 0, got {ms!r}")
    return int(math.ceil(ms * fps / 1000.0 - 1e-9))


def check_precision(precision: str) -> None:
    """ValueError for a precision not in :data:`PRECISIONS` (sampling's and training's)."""
    if precision not in PRECISIONS:
        raise ValueError(f"unknown precision {precision!r}; choose one of {PRECISIONS}")
