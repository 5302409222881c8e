"""Configuration: small dataclasses with named presets (``smoke``, ``cpu``, ``paper``).

One config system for the package, the notebooks (papermill parameters) and the CLI: every
setting has a name, a preset gives all of them a value, and overrides use the same names.
A :class:`Config` round-trips through a plain dict and is saved inside every checkpoint.

The ``paper`` preset is the paper exactly (§3, §4): 16 kHz audio, 229 mel bins from 0 to
8 kHz, window 2048, segments of 327,680 samples, 15 residual layers of 512 channels, kernel 9,
no dilation, T = 200, α_t linear from 0.9999 to 0.98 (β from 1e-4 to 0.02), p = 0.1, w = 0.5.
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any

N_KEYS = 88
LOWEST_MIDI = 21  # A0; the highest key, C8, is MIDI 108
SAMPLERS = ("ddpm", "ddim", "dpmpp")  # Diffusion.sample: the paper's DDPM, DDIM, DPM-Solver++(2M)

SCALES = ("smoke", "cpu", "paper")
NOTE_STATE = ("frame", "onset", "velocity")  # the roll channels of the smoke and cpu presets


@dataclass
class AudioConfig:
    """The mel front-end of §4: 16 kHz, n_fft 2048, hop 512, 229 mel bins 0–8 kHz."""

    sample_rate: int = 16000
    n_fft: int = 2048
    hop_length: int = 512
    n_mels: int = 229
    f_min: float = 0.0
    f_max: float = 8000.0
    segment_samples: int = 327_680
    mel_scaling: str = "minmax"  # "minmax": the paper's per-window min-max of ln(mel); "fixed": dB range
    db_floor: float = -50.0  # "fixed": this level (10·log10 of nnAudio's mel power) maps to 0 ...
    db_ceiling: float = 40.0  # ... and this to 1 (a full-scale sine peaks near +41 dB); clipped to [0, 1]
    # Beyond the paper: the conditioning front-end (see diffroll.core.audio). "mel": the log-mel above (§4);
    # "hcqt": a harmonic CQT aligned to the 88 keys, rows (harmonic [, bin of the key], key), for
    # the key-shared network (ModelConfig.architecture = "keyshared"). The settings below are the HCQT's.
    frontend: str = "mel"
    harmonics: list[float] = field(default_factory=lambda: [0.5, 1.0, 2.0, 3.0, 4.0, 5.0])
    cqt_bins_per_key: int = 3  # CQT bins per semitone (bins per octave: 12 times this); odd, centred on the key
    cqt_key_pool: str = "max"  # "max": a key's loudest bin per harmonic; "none": all its bins, as channels
    cqt_filter_scale: float = 1.0  # nnAudio's filter_scale: < 1 shortens the CQT windows (coarser in pitch)

    @property
    def fps(self) -> float:
        """Frames per second of mels and rolls (31.25 for the paper's settings)."""
        return self.sample_rate / self.hop_length

    @property
    def condition_rows(self) -> int:
        """Rows of the front-end's output c (229 mel bins for the paper; for the HCQT, 88 keys
        times its channels per key, :attr:`key_channels`)."""
        return self.n_mels if self.frontend == "mel" else N_KEYS * self.key_channels

    @property
    def key_channels(self) -> int:
        """The HCQT's channels per key: one per harmonic (times the key's bins unpooled)."""
        return len(self.harmonics) * (1 if self.cqt_key_pool == "max" else self.cqt_bins_per_key)

    @property
    def segment_frames(self) -> int:
        """Frames per training segment (640 for the paper's 327,680 samples)."""
        return self.segment_samples // self.hop_length


@dataclass
class ModelConfig:
    """The DiffWave-style network of §3.

    ``dilation`` is a pattern that repeats over the layers: ``[1]`` is no dilation,
    ``[1, 2]`` is the paper's ``[1, 2, 1, 2, ...]`` (Table 1).

    ``architecture = "keyshared"`` (beyond the paper, :mod:`diffroll.core.keynet`) is a network whose
    weights are shared by the 88 keys; it reads the HCQT front-end (``AudioConfig.frontend =
    "hcqt"``, ``n_mels`` = its rows). There ``channels`` are per key, ``kernel_size`` and
    ``dilation`` act over time, ``key_kernel`` over keys.
    """

    channels: int = 512
    layers: int = 15
    kernel_size: int = 9
    dilation: list[int] = field(default_factory=lambda: [1])
    n_keys: int = N_KEYS
    n_mels: int = 229
    step_embedding: int = 128  # width of the sinusoidal embedding of t (DiffWave)
    velocity_head: int = 0  # channels of the per-key path from c_mel to the velocity rows (0: none; beyond the paper)
    pedal_head: int = 0  # channels of the path from c_mel to the pedal rows (0: none; needs a pedal roll channel)
    architecture: str = "diffwave"  # "diffwave": the paper's network (§3); "keyshared": weights shared by the keys
    key_kernel: int = 3  # keyshared: width, in keys, of the convolutions over (key, time)
    key_embedding: bool = False  # keyshared: a learned bias per key and channel (breaks the sharing; starts at 0)

    def dilation_of(self, layer: int) -> int:
        return self.dilation[layer % len(self.dilation)]


@dataclass
class RollConfig:
    """What x_roll holds (see :mod:`diffroll.core.roll`) and how notes are read back from x̂0.

    ``roll_channels``: ``["frame"]`` is the paper's roll; ``["frame", "onset", "velocity"]`` the
    note-state roll; ``"pedal"`` after them adds the sustain pedal (:mod:`diffroll.core.roll`). ``sustain``: notes last while the sustain pedal holds them (MAESTRO's
    convention). The frame threshold is :attr:`DiffusionConfig.threshold` (§4).
    """

    roll_channels: list[str] = field(default_factory=lambda: ["frame"])
    sustain: bool = True
    onset_frames: int = 1  # onset marks 1 frame (> 1: a linear ramp down over that many frames)
    onset_threshold: float = 0.5
    min_frames_without_onset: int | None = None  # a frame run with no onset is a note from this length (None: never)
    min_velocity: int = 0  # with a velocity channel: notes read below this velocity (1-127) are dropped (0: none)
    offset_threshold: float | None = None  # a started note lasts while frame > this (None: the frame threshold)
    restrike_threshold: float | None = None  # an onset inside a sounding note re-strikes it above this (None: onset_threshold)
    pedal_threshold: float | None = 0.5  # pedal channel: notes ending while above it last until it falls (None: unused)
    held_notes: dict | None = None  # a held_notes.HeldNoteModel: guess the notes a pedal held (None: off)
    confidence_calibration: list[float] | None = None  # [slope, intercept] of confidence.Calibration (None: votes/K)
    combine_samples: str = "mean"  # K > 1 samples: notes of the mean of their x̂0 ("mean") or of a majority ("vote")
    channel_weights: list[float] | None = None  # weight of each channel's squared error in Eq. 3 (None: equal)
    velocity_note_weight: float = 1.0  # the velocity error weighs this many times more where the reference note sounds


@dataclass
class DiffusionConfig:
    """Eq. 1's schedule and Algorithm 1's sampling settings."""

    T: int = 200
    beta_start: float = 1e-4  # α_1 = 0.9999
    beta_end: float = 0.02  # α_T = 0.98
    p: float = 0.1  # classifier-free dropout: probability that a mel is replaced by -1
    w: float = 0.5  # guidance weight of Algorithm 1 line 4
    threshold: float = 0.5  # x0 -> binary roll
    # Beyond the paper: at T = 200, ᾱ_T = 0.13, so x_T keeps 36 % of the roll and the reverse process
    # started from pure noise (generation) reads "silence". extend_T > 0 continues the linear β
    # schedule for that many steps past T (ᾱ ≈ 3e-4 at T + 200); only examples whose c_mel is
    # dropped train on them, and generation (w = -1) starts at T + extend_T. Transcription and
    # inpainting (t ≤ T) are untouched.
    extend_T: int = 0


@dataclass
class TrainConfig:
    """Trainer settings. ``mode`` is ``diffusion`` (DiffRoll) or ``discriminative`` (§4.1)."""

    mode: str = "diffusion"
    batch_size: int = 8
    lr: float = 1e-3
    lr_schedule: str = "constant"  # constant | cosine: from lr_decay_start, lr decays to lr_final at max_steps (half a cosine)
    lr_final: float = 0.0  # the cosine schedule's learning rate at max_steps
    lr_decay_start: int = 0  # the cosine schedule keeps lr until this step (e.g. to anneal a resumed constant-lr run)
    max_steps: int = 10_000
    max_minutes: float | None = None
    crop_frames: int | None = None  # random crops of the segments (None: whole segments)
    grad_clip: float = 1.0
    ema_decay: float | None = 0.999
    checkpoint_every: int = 500
    snapshot_every: int | None = None  # also keep inference-only weights every N steps (for equal-budget comparisons)
    validate_every: int = 500
    # Validation samples with its own sampler and steps, not SamplingSettings' (DDPM over all T, the
    # paper's): validating every few hundred steps must be fast, so DPM-Solver++(2M) x 10.
    val_sampler: str = "dpmpp"
    val_steps: int = 10
    log_every: int = 25
    seed: int = 0
    precision: str = "auto"  # fp32 | bf16 (autocast) | auto: bf16 on CUDA, fp32 on CPU
    in_memory: bool = False  # read the training segments into memory once (data.SegmentTensors)
    compile: bool | None = None  # torch.compile the network (None: on CUDA)
    train_only: list[str] | None = None  # train only the parameters under these module names (None: all)


@dataclass
class DataConfig:
    """Which corpus, and how much of it (see :mod:`diffroll.corpus.segments` and :mod:`diffroll.corpus.offline`).

    The offline corpus's sources: music21 scores (``n_pieces`` per split, or the scale's plan),
    music21 keyboard pieces (``keyboard_copies`` renditions each; 0 leaves them out), generated
    studies (``n_generated``), generated pianistic pieces (``n_pianistic``) and the pianistic
    pieces of the piano test split (``n_piano_test``). Training renders draw ``renders_per_piece``
    timbres of ``soundfonts`` (``procedural`` is the procedural piano, ``salamander`` the sampled
    grand of :mod:`diffroll.corpus.sampledpiano`), a GM program of
    ``programs`` and a detune within ±``detune_cents``.
    """

    dataset: str = "offline"  # offline | maestro | maps
    path: str | None = None  # root of MAESTRO / MAPS
    n_pieces: int | None = None  # cap on pieces per split (None: all)
    n_generated: int = 0  # synthetic studies covering all 88 keys
    augment_copies: int = 1  # transposed / tempo-scaled renditions of each score
    soundfonts: list[str] = field(default_factory=lambda: ["TimGM6mb", "csound"])
    test_soundfonts: list[str] = field(default_factory=lambda: ["FluidR3_GM", "MuseScore_General"])
    n_pianistic: int = 0  # generated two-hand piano pieces with pedalling (train / validation)
    n_piano_test: int = 0  # generated pianistic pieces of the piano test split (their own seed)
    keyboard_copies: int = 0  # renditions of each music21 keyboard piece (0: none)
    renders_per_piece: int = 2  # training timbres per train / validation performance
    programs: list[int] = field(default_factory=lambda: [0, 1, 2])  # GM piano programs of training renders
    detune_cents: float = 0.0  # training renders are tuned within ± this (labels unchanged)
    pedal_probability: float = 0.0  # share of score / study training copies played with pedal
    revoice_probability: float = 0.0  # share of score training copies re-voiced for two hands
    gap_probability: float = 0.0  # share of training performances with silent (noise-only) gaps


FRONTENDS = ("mel", "hcqt")
HCQT_SETTINGS = ("harmonics", "cqt_bins_per_key", "cqt_key_pool", "cqt_filter_scale")  # AudioConfig's, for "hcqt"
ARCHITECTURES = ("diffwave", "keyshared")


@dataclass
class Config:
    scale: str = "paper"
    audio: AudioConfig = field(default_factory=AudioConfig)
    model: ModelConfig = field(default_factory=ModelConfig)
    roll: RollConfig = field(default_factory=RollConfig)
    diffusion: DiffusionConfig = field(default_factory=DiffusionConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    data: DataConfig = field(default_factory=DataConfig)

    def __post_init__(self):
        """The front-end and the network must fit: names known, the HCQT's rows read by the network."""
        a, m = self.audio, self.model
        if a.frontend not in FRONTENDS:
            raise ValueError(f"unknown frontend {a.frontend!r}; choose one of {FRONTENDS}")
        if m.architecture not in ARCHITECTURES:
            raise ValueError(f"unknown architecture {m.architecture!r}; choose one of {ARCHITECTURES}")
        if m.architecture == "keyshared" and a.frontend != "hcqt":
            raise ValueError("architecture keyshared reads a key-aligned spectrum: set frontend=hcqt")
        if a.frontend == "hcqt" and m.n_mels != a.condition_rows:
            raise ValueError(f"the hcqt front-end gives {a.condition_rows} rows ({a.key_channels} per key): "
                             f"set model.n_mels={a.condition_rows}")

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "Config":
        parts = {f.name: f.type for f in dataclasses.fields(cls)}
        kwargs: dict[str, Any] = {}
        for key, value in d.items():
            if key not in parts:
                raise ValueError(f"unknown config section {key!r}; known: {sorted(parts)}")
            if key == "scale":
                kwargs[key] = value
            else:
                sub = _SECTIONS[key]
                known = {f.name for f in dataclasses.fields(sub)}
                unknown = set(value) - known
                if unknown:
                    raise ValueError(f"unknown {key} settings {sorted(unknown)}; known: {sorted(known)}")
                kwargs[key] = sub(**value)
        return cls(**kwargs)

    def override(self, **settings: Any) -> "Config":
        """A copy with settings replaced by name, e.g. ``override(channels=64, p=0.25)``.

        A name is looked up in every section; ``"model.channels"`` picks a section explicitly.
        ``None`` values are ignored, so papermill/CLI defaults of ``None`` mean "keep the preset".
        """
        d = self.to_dict()
        for name, value in settings.items():
            if value is None:
                continue
            if "." in name:
                section, key = name.split(".", 1)
                if section not in _SECTIONS or key not in d[section]:
                    raise ValueError(f"unknown setting {name!r}")
                d[section][key] = value
                continue
            homes = [s for s in _SECTIONS if name in d[s]]
            if name == "scale":
                d["scale"] = value
            elif not homes:
                raise ValueError(f"unknown setting {name!r}")
            elif len(homes) > 1:
                raise ValueError(f"setting {name!r} is ambiguous ({homes}); write e.g. {homes[0]}.{name}")
            else:
                d[homes[0]][name] = value
        return Config.from_dict(d)


_SECTIONS = {
    "audio": AudioConfig,
    "model": ModelConfig,
    "roll": RollConfig,
    "diffusion": DiffusionConfig,
    "train": TrainConfig,
    "data": DataConfig,
}


KEYSHARED = {"frontend": "hcqt", "architecture": "keyshared", "model.n_mels": 6 * N_KEYS, "channels": 16,
             "layers": 8, "kernel_size": 3, "dilation": [1, 2, 4, 8], "key_kernel": 3, "key_embedding": True}
"""Overrides for the key-shared network on the HCQT (any scale), e.g. ``get_config("cpu", **KEYSHARED)``:
16 channels per key, 8 layers of 3 keys × 3 frames, time dilations 1, 2, 4, 8 (beyond the paper)."""


def get_config(scale: str = "cpu", **overrides: Any) -> Config:
    """The named preset, with overrides applied by setting name (see :meth:`Config.override`).

    - ``smoke``: seconds; a tiny network and a few pieces, for tests and CI.
    - ``cpu``: minutes to hours on 2 CPU cores; a 4.8 M-parameter network (96 channels, 16 layers,
      k = 9) trained on random 256-frame crops of the offline corpus, with bf16 autocast; the sparse
      onset channel's error weighs 8 times a frame's (Eq. 3 with channel weights).
      Beyond the paper (both presets but ``paper``): the note-state roll (frame, onset, velocity)
      and the fixed-range log-mel scaling.
    - ``paper``: the paper's sizes (needs a GPU and MAESTRO for the paper's numbers).

    Any scale with ``**KEYSHARED``: the key-shared network on the harmonic CQT (beyond the paper).
    """
    if scale == "paper":
        cfg = Config(scale="paper")
    elif scale == "cpu":
        cfg = Config(
            scale="cpu",
            audio=AudioConfig(mel_scaling="fixed"),
            model=ModelConfig(channels=96, layers=16, kernel_size=9),
            roll=RollConfig(roll_channels=list(NOTE_STATE), channel_weights=[1.0, 8.0, 1.0]),
            train=TrainConfig(batch_size=12, lr=5e-4, max_steps=100_000, max_minutes=30, crop_frames=256,
                              checkpoint_every=250, validate_every=2000, snapshot_every=2000, precision="bf16",
                              in_memory=True),
            data=DataConfig(n_generated=60, augment_copies=2, n_pianistic=420, n_piano_test=16, keyboard_copies=4,
                            soundfonts=["TimGM6mb", "csound", "procedural", "salamander"],
                            programs=list(range(8)),
                            detune_cents=30.0, pedal_probability=0.6, revoice_probability=0.5, gap_probability=0.25),
        )
    elif scale == "smoke":
        cfg = Config(
            scale="smoke",
            audio=AudioConfig(segment_samples=65_536, mel_scaling="fixed"),  # 128 frames
            model=ModelConfig(channels=16, layers=2, kernel_size=3),
            roll=RollConfig(roll_channels=list(NOTE_STATE)),
            diffusion=DiffusionConfig(T=20, beta_start=1e-3, beta_end=0.2),
            train=TrainConfig(batch_size=4, lr=2e-3, max_steps=100, crop_frames=64,
                              checkpoint_every=20, validate_every=30, log_every=5, ema_decay=None, in_memory=True),
            data=DataConfig(n_pieces=4, n_generated=2, augment_copies=1, soundfonts=["TimGM6mb", "procedural"],
                            test_soundfonts=["FluidR3_GM"], n_pianistic=2, n_piano_test=1, keyboard_copies=0,
                            renders_per_piece=1, programs=list(range(8)), detune_cents=30.0, pedal_probability=0.5,
                            revoice_probability=0.5, gap_probability=0.5),
        )
    else:
        raise ValueError(f"unknown scale {scale!r}; choose one of {SCALES}")
    return cfg.override(**overrides) if overrides else cfg
