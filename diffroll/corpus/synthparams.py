"""The timbre of the procedural piano (:mod:`diffroll.corpus.pianosynth`): every random choice in
one frozen :class:`SynthParams`, drawn per piece from the training ranges or from held-out ranges
that give a timbre never seen in training."""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

# Parameter ranges of SynthParams.random: uniform draws (n_partials rounded). The held-out ranges
# of brightness, decay_scale, inharmonicity_scale and unison_detune_cents lie outside the training
# ranges (brighter, longer ringing, more stretched partials, wider beating), so held-out renders
# use a timbre never seen in training; the other parameters share their ranges.
TRAIN_RANGES: dict[str, tuple[float, float]] = {
    "inharmonicity_scale": (0.5, 1.5),
    "decay_scale": (0.6, 1.2),
    "aftersound_level": (0.15, 0.45),
    "brightness": (0.6, 1.2),
    "unison_detune_cents": (0.2, 1.5),
    "hammer_noise_level": (0.02, 0.1),
    "hammer_position": (0.1, 0.16),
    "damper_t60": (0.08, 0.3),
    "n_partials": (24, 64),
    "velocity_exponent": (1.5, 2.5),
    "soundboard_depth_db": (0.0, 6.0),
    "stretch_bass_cents": (10.0, 30.0),
    "stretch_treble_cents": (20.0, 40.0),
    "sympathetic_level": (0.005, 0.03),
    "key_noise_level": (0.01, 0.05),
    "damper_noise_level": (0.003, 0.02),
    "pedal_noise_level": (0.005, 0.04),
}


HELD_OUT_RANGES: dict[str, tuple[float, float]] = {
    **TRAIN_RANGES,
    "inharmonicity_scale": (1.8, 3.0),
    "decay_scale": (1.4, 2.0),
    "brightness": (1.4, 2.0),
    "unison_detune_cents": (2.0, 3.5),
}


@dataclass(frozen=True)
class SynthParams:
    """Every random choice of the procedural piano (defaults: a plain, mid-range piano).

    - ``inharmonicity_scale``: factor on the pitch curve of B (:data:`INHARMONICITY_CURVE`).
    - ``decay_scale``: factor on all ring times (T60s).
    - ``aftersound_level``: share of each partial's amplitude in the slow decay stage.
    - ``brightness``: factor on the hammer-felt cut-off frequency.
    - ``unison_detune_cents``: detuning between neighbouring unison strings of a key.
    - ``hammer_noise_level``: peak of the hammer noise of a hard blow, relative to the tone.
    - ``hammer_position``: strike point as a fraction of the string (partials 1/x are weak).
    - ``damper_t60``: seconds for a released note to fall by 60 dB.
    - ``n_partials``: most partials per key (fewer where they would pass Nyquist).
    - ``velocity_exponent``: gain = (velocity / 127) ** velocity_exponent.
    - ``soundboard_depth_db``: largest gain of the random soundboard EQ bumps.
    - ``stretch_bass_cents``, ``stretch_treble_cents``: the Railsback stretch, cents flat at A0 and
      sharp at C8 (:func:`railsback_cents`; 0 and 0: equal temperament).
    - ``treble_inharmonicity``: B at C8 before ``inharmonicity_scale`` (the top of
      :data:`INHARMONICITY_CURVE`; 2e-3 was the curve's top before corpus v5).
    - ``sympathetic_level``: amplitude of the strings resonating under the pedal, relative to the
      driving note's partials (0: none).
    - ``key_noise_level``, ``damper_noise_level``, ``pedal_noise_level``: peaks of the keybed thump
      of a full-velocity strike, of a damper falling and of the pedal mechanism (0: none).
    - ``undamped_from``: lowest key without a damper (89 = F6 on a grand; 128 = damp all).
    - ``tuning_cents``: the whole piano tuned this far from A = 440 Hz (the corpus's detune
      augmentation; not drawn by :meth:`random`).
    - ``seed``: the per-piece details (soundboard EQ, per-key detuning, hammer noise samples).
    """

    inharmonicity_scale: float = 1.0
    decay_scale: float = 1.0
    aftersound_level: float = 0.3
    brightness: float = 1.0
    unison_detune_cents: float = 1.0
    hammer_noise_level: float = 0.05
    hammer_position: float = 0.125
    damper_t60: float = 0.15
    n_partials: int = 48
    velocity_exponent: float = 2.0
    soundboard_depth_db: float = 3.0
    stretch_bass_cents: float = 20.0
    stretch_treble_cents: float = 30.0
    treble_inharmonicity: float = 1e-2
    sympathetic_level: float = 0.015
    key_noise_level: float = 0.03
    damper_noise_level: float = 0.01
    pedal_noise_level: float = 0.02
    undamped_from: int = 89
    tuning_cents: float = 0.0
    seed: int = 0

    def __post_init__(self):
        positive = ("inharmonicity_scale", "decay_scale", "brightness", "damper_t60", "n_partials",
                    "treble_inharmonicity")
        problems = [f"{name} must be > 0" for name in positive if not getattr(self, name) > 0]
        levels = ("sympathetic_level", "key_noise_level", "damper_noise_level", "pedal_noise_level")
        problems += [f"{name} must be >= 0" for name in levels if not getattr(self, name) >= 0]
        if not 0 < self.hammer_position < 0.5:
            problems.append("hammer_position must be in (0, 0.5)")
        if not 0 <= self.aftersound_level <= 1:
            problems.append("aftersound_level must be in [0, 1]")
        if problems:
            raise ValueError(f"invalid SynthParams: {'; '.join(problems)}")

    @classmethod
    def random(cls, rng: np.random.Generator, held_out: bool = False) -> SynthParams:
        """Uniform draws from :data:`TRAIN_RANGES`, or :data:`HELD_OUT_RANGES` with ``held_out``."""
        ranges = HELD_OUT_RANGES if held_out else TRAIN_RANGES
        values = {name: float(rng.uniform(lo, hi)) for name, (lo, hi) in ranges.items()}
        values["n_partials"] = int(round(values["n_partials"]))
        return cls(**values, seed=int(rng.integers(2**31)))
