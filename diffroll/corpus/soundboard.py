"""A soundboard's weak bass: a high-pass for training renders whose timbre plays the lowest keys'
fundamentals at full strength (issue 28).

A piano's strings drive a soundboard, and the soundboard radiates poorly below its lowest modes: the
real Steinway of the Iowa notes sounds A0–B0 with the fundamental about 47 dB under the strongest of
its first eight partials and C1–B1 about 35 dB under, and the sampled Salamander grand (a training
timbre) about 44 and 38 dB under; TimGM6mb, csound and the procedural piano play those fundamentals at
full strength (``benchmarks/bass_partials.py``, docs/data.md). A network trained mostly on the latter
learns "a bass key is a strong fundamental", which a real piano does not play.

:func:`radiate` passes a render of such a timbre, with probability :attr:`SoundboardSettings.probability`,
through a Butterworth high-pass of random corner (scipy), before the room and microphone. The corner
range is fitted to the *Salamander* renders (training data), never to the Iowa notes (evaluation only):
``benchmarks/bass_partials.py --soundboard HZ`` prints both.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import signal


@dataclass(frozen=True)
class SoundboardSettings:
    """Which renders lose their bass fundamentals, and how.

    - ``probability``: share of the renders of ``timbres`` that are filtered (0: none).
    - ``corner_hz``: the high-pass's -3 dB corner, drawn log-uniformly per render.
    - ``order``: the Butterworth order (6 dB per octave each).
    - ``timbres``: the timbres whose bass fundamentals are as loud as their partials.

    The defaults are corpus version 6's (the training and validation renders): order 4 at 80–140 Hz
    puts those timbres' A0–B0 / C1–B1 fundamentals 26–52 / 14–38 dB under the strongest partial, about
    where the Salamander renders sit (−44 / −38); 3 of 4 renders, so a strong bass fundamental (a
    close microphone, an electric piano) is still heard. Adopted after 800-step fine-tunes with and
    without it, two seeds each (docs/data.md, *The bass*).
    """

    probability: float = 0.75
    corner_hz: tuple[float, float] = (80.0, 140.0)
    order: int = 4
    timbres: tuple[str, ...] = ("TimGM6mb", "csound", "procedural")

    def __post_init__(self):
        lo, hi = self.corner_hz
        if not 0 <= self.probability <= 1:
            raise ValueError(f"SoundboardSettings.probability must be in [0, 1], not {self.probability}")
        if not 0 < lo <= hi:
            raise ValueError(f"SoundboardSettings.corner_hz must be 0 < low <= high, not {self.corner_hz}")
        if not 1 <= self.order <= 8:
            raise ValueError(f"SoundboardSettings.order must be 1..8, not {self.order}")


def soundboard_highpass(audio: np.ndarray, sample_rate: int, corner_hz: float, order: int) -> np.ndarray:
    """``audio`` through a causal Butterworth high-pass (second-order sections), float64, same length."""
    if not 0 < corner_hz < sample_rate / 2:
        raise ValueError(f"corner {corner_hz} Hz is not between 0 and Nyquist ({sample_rate / 2} Hz)")
    sos = signal.butter(order, corner_hz, btype="highpass", fs=sample_rate, output="sos")
    return signal.sosfilt(sos, np.asarray(audio, dtype=np.float64))


def radiate(audio: np.ndarray, sample_rate: int, timbre: str, rng: np.random.Generator,
            settings: SoundboardSettings) -> np.ndarray:
    """A render of ``timbre`` as its soundboard would radiate it: high-passed with the settings'
    probability when ``timbre`` is one of theirs, else unchanged (the draws are made either way, so a
    seed gives the same audio whatever the other renders do)."""
    filtered = rng.random() < settings.probability
    corner = float(np.exp(rng.uniform(*np.log(settings.corner_hz))))
    if not filtered or timbre not in settings.timbres:
        return audio
    return soundboard_highpass(audio, sample_rate, corner, settings.order)
