"""A procedural piano: MIDI -> audio from a physically inspired additive model, without samples.

The offline corpus renders with two General-MIDI soundfonts only (:mod:`diffroll.render`), so a
model can learn one sample set instead of pitch. This synthesiser's timbre is drawn at random per
piece (:meth:`SynthParams.random`), and held-out parameter ranges give an unseen test timbre.

The model of one key (pitch ``p``, fundamental f0 = 440 · 2^((p − 69) / 12)):

- **Partials** of a stiff string, f_n = n · f0 · sqrt(1 + B n²) / sqrt(1 + B), so the first is
  exactly f0; the inharmonicity B is largest in the treble and the extreme bass
  (:data:`INHARMONICITY_CURVE`). Partials above 0.95 · Nyquist are left out.
- **Amplitudes**: 1/n times the comb of the hammer's strike point, sin(π n x), times the
  low-pass of the hammer felt. A harder (louder) blow has a higher felt cut-off, so velocity sets
  loudness *and* brightness: each key is synthesised soft and hard, and a note mixes the two.
- **Decays**: every partial decays in two stages, a prompt sound and a slower aftersound
  (T60 ratio :data:`PROMPT_RATIO`); the rates grow with pitch (bass rings for many seconds, the top
  octave for about half a second) and with the partial's frequency.
- **Unison strings**: 1 (low bass), 2 or 3 strings per key, detuned a few cents symmetrically
  around f0, so partials beat; above :data:`DETUNE_FULL_BELOW_HZ` the detuning in cents shrinks
  so that the beat rate stays that of 500 Hz (tuners tune treble unisons by their beats).
- **Hammer**: a short band-passed noise burst at the onset, relatively louder when hard.
- **Dampers**: after the key is released the sound dies within ``damper_t60`` seconds, unless the
  sustain pedal (CC 64 >= 64, read as :func:`diffroll.roll.sustain_spans` does) is down: then it
  rings on until the pedal is released. A key struck again while sounding restarts (the old
  vibration is damped in :data:`RESTRIKE_T60`). Keys from ``undamped_from`` up have no dampers.
- **Soundboard**: a fixed random EQ per piece (smooth bumps in log frequency) on the partials.

Speed: each key is synthesised once per piece (both hardnesses, as long as its longest note needs),
as a sum of damped complex exponentials evaluated by blocks with one matrix product; notes are
then mixed from these cached tones with their velocity gain and damper envelope.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import NamedTuple

import numpy as np
import pretty_midi

from .roll import load_midi, sustain_spans

SUSTAIN_CC = 64
TAIL_SECONDS = 1.0  # rendered after the last note-off or pedal-up, as in diffroll.render
T60_DB = 60.0 / (20 * np.log10(np.e))  # ln(1000): exp(-T60_DB · t / T60) falls by 60 dB at T60
INHARMONICITY_CURVE = ((21, 3e-4), (45, 1e-4), (108, 2e-3))  # (MIDI pitch, B), log-interpolated
AFTERSOUND_T60_A0 = 25.0  # seconds, at decay_scale 1; halves every AFTERSOUND_HALVING semitones
AFTERSOUND_HALVING = 15.0
PROMPT_RATIO = 4.0  # the prompt sound decays 4x faster than the aftersound
PARTIAL_DECAY_EXPONENT = 0.7  # decay rate of partial n ∝ (f_n / f0) ** 0.7
MAX_TONE_SECONDS = 8.0  # a key rings at most this long (faded out over its last quarter)
NYQUIST_MARGIN = 0.95  # partials above 0.95 · sample_rate / 2 are left out
MIN_RELATIVE_AMPLITUDE = 1e-4  # partials weaker than this (relative to the strongest) are left out
FELT_CUTOFF = {"soft": (200.0, 0.5), "hard": (3000.0, 5.0)}  # cut-off = brightness · (Hz + k · f0)
ONE_STRING_BELOW, THREE_STRINGS_FROM = 31, 48  # MIDI pitches of the bichord and trichord ranges
DETUNE_FULL_BELOW_HZ = 500.0  # above, the unison detuning in cents falls as 1 / f0
ATTACK_SECONDS = (0.002, 0.0005)  # attack time constant at A0 and at C8
HAMMER_NOISE_SECONDS, HAMMER_NOISE_DECAY = 0.04, 0.008
RESTRIKE_T60 = 0.04  # a re-struck key's old vibration dies this fast
SOUNDBOARD_BUMPS = 4
BLOCK = 512  # samples per block of the tone synthesis (see _damped_sinusoids)

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
    undamped_from: int = 89
    tuning_cents: float = 0.0
    seed: int = 0

    def __post_init__(self):
        positive = ("inharmonicity_scale", "decay_scale", "brightness", "damper_t60", "n_partials")
        problems = [f"{name} must be > 0" for name in positive if not getattr(self, name) > 0]
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


class _Partials(NamedTuple):
    number: np.ndarray  # (K,) n, from 1
    freq: np.ndarray  # (K,) Hz
    soft: np.ndarray  # (K,) amplitudes of a soft blow, unit energy
    hard: np.ndarray  # (K,) amplitudes of a hard blow, unit energy
    prompt_rate: np.ndarray  # (K,) 1/s, amplitude ∝ exp(-rate · t)
    after_rate: np.ndarray  # (K,)


class Strike(NamedTuple):
    """One struck note as the strings see it (:func:`note_strikes`)."""

    onset: float
    release: float  # when the damper falls (key up, pedal up or re-strike); inf: never
    pitch: int
    velocity: int
    damping_t60: float  # how fast it dies after ``release``


def note_strikes(midi: pretty_midi.PrettyMIDI, damper_t60: float,
                 undamped_from: int = 128) -> tuple[list[Strike], float]:
    """The notes of all non-drum instruments as strikes sorted by onset, and the time of the
    last note-off or pedal event (shared by the procedural and the sampled piano).

    A note's damper falls at its key's release, postponed to the pedal's release if the pedal
    (CC 64, read as :func:`diffroll.roll.sustain_spans` does) is down then; a pedal never released
    is released at the last event; keys from ``undamped_from`` up have no damper; a key struck
    again while sounding is damped at the new strike in :data:`RESTRIKE_T60`.
    """
    instruments = [inst for inst in midi.instruments if not inst.is_drum]
    notes = [n for inst in instruments for n in inst.notes]
    if not notes:
        raise ValueError("nothing to render: the MIDI has no notes (drum tracks are ignored)")
    pedal_times = [c.time for inst in instruments for c in inst.control_changes if c.number == SUSTAIN_CC]
    last_event = max([n.end for n in notes] + pedal_times)
    strikes = []
    for inst in instruments:
        spans = sustain_spans(inst)
        for n in inst.notes:
            release = max(n.end, n.start)
            for down, up in spans:
                if down <= n.end < up:
                    release = max(release, min(up, last_event))
                    break
            if n.pitch >= undamped_from:
                release = np.inf
            strikes.append(Strike(max(n.start, 0.0), release, int(n.pitch), int(np.clip(n.velocity, 1, 127)),
                                  damper_t60))
    strikes.sort()
    next_onset: dict[int, float] = {}
    for i in range(len(strikes) - 1, -1, -1):  # a re-struck key restarts: the old note is damped
        s = strikes[i]
        later = next_onset.get(s.pitch)
        if later is not None and later < s.release:
            strikes[i] = s._replace(release=later, damping_t60=RESTRIKE_T60)
        next_onset[s.pitch] = s.onset
    return strikes, float(last_event)


def damper_curves(strikes: list[Strike], sample_rate: int) -> dict[float, np.ndarray]:
    """For each damping time among ``strikes``: the envelope after the damper falls, from 1 down
    to -60 dB at ``damping_t60`` seconds (float32, ``damping_t60`` seconds long)."""
    return {t60: np.exp(-T60_DB * np.arange(int(np.ceil(t60 * sample_rate))) / (t60 * sample_rate)).astype(np.float32)
            for t60 in {s.damping_t60 for s in strikes}}


class ProceduralPiano:
    """One procedural piano (one :class:`SynthParams`), reusable for many pieces."""

    def __init__(self, params: SynthParams, sample_rate: int = 16000):
        if sample_rate <= 0:
            raise ValueError(f"sample_rate must be positive, got {sample_rate}")
        self.params = params
        self.sample_rate = sample_rate
        rng = np.random.default_rng([params.seed, 0])
        self._bump_centres = np.exp(rng.uniform(np.log(100.0), np.log(4000.0), SOUNDBOARD_BUMPS))
        self._bump_octaves = rng.uniform(0.3, 1.0, SOUNDBOARD_BUMPS)
        self._bump_gains_db = rng.uniform(-1.0, 1.0, SOUNDBOARD_BUMPS) * params.soundboard_depth_db
        self._detune_jitter = rng.uniform(0.5, 1.5, 128)  # per key, on unison_detune_cents

    def render(self, midi: pretty_midi.PrettyMIDI, tail: float = TAIL_SECONDS) -> np.ndarray:
        """All non-drum notes (and sustain pedal) of ``midi`` -> float32 mono audio, not normalised.

        1. Each note's damper time: the key's release, postponed to the pedal's release if the
           pedal is down then, and cut short by the next strike of the same key.
        2. Each key used is synthesised once (soft and hard), as long as its longest note needs.
        3. Each note adds its key's tone: velocity gain, soft/hard mix, then the damper envelope.

        The audio lasts until the last note-off or pedal event plus ``tail`` seconds (like
        :meth:`diffroll.render.PianoSynth.render`), or until the last sound has died if later.
        """
        sr = self.sample_rate
        strikes, last_event = note_strikes(midi, self.params.damper_t60, self.params.undamped_from)
        damp_curves = damper_curves(strikes, sr)
        lengths = [self._sounding_samples(s, len(damp_curves[s.damping_t60])) for s in strikes]
        needed: dict[int, int] = {}
        for s, n in zip(strikes, lengths):
            needed[s.pitch] = max(needed.get(s.pitch, 0), n)
        tones = {pitch: self._tone(pitch, n) for pitch, n in needed.items()}
        starts = [int(round(s.onset * sr)) for s in strikes]
        n_out = max(int(round(last_event * sr)) + int(tail * sr),
                    max(start + min(n, tones[s.pitch].shape[1]) for s, start, n in zip(strikes, starts, lengths)))
        out = np.zeros(n_out, dtype=np.float32)
        for s, start, n in zip(strikes, starts, lengths):
            soft, hard = tones[s.pitch]
            n = min(n, soft.size)
            loudness = (s.velocity / 127) ** self.params.velocity_exponent
            hardness = s.velocity / 127
            sound = soft[:n] * np.float32(loudness * (1 - hardness)) + hard[:n] * np.float32(loudness * hardness)
            released = max(0, int(round((s.release - s.onset) * sr))) if np.isfinite(s.release) else n
            if released < n:
                sound[released:] *= damp_curves[s.damping_t60][: n - released]
            out[start:start + n] += sound
        return out

    def _sounding_samples(self, strike: Strike, damp_samples: int) -> int:
        """How many samples of its key's tone a strike needs (at most the tone's natural length)."""
        natural = self._natural_samples(strike.pitch)
        if not np.isfinite(strike.release):
            return natural
        return min(natural, int(round((strike.release - strike.onset) * self.sample_rate)) + damp_samples)

    # --- one key -------------------------------------------------------------------------------

    def _aftersound_t60(self, pitch: int) -> float:
        return self.params.decay_scale * AFTERSOUND_T60_A0 * 2.0 ** (-(pitch - 21) / AFTERSOUND_HALVING)

    def _natural_samples(self, pitch: int) -> int:
        seconds = max(min(MAX_TONE_SECONDS, self._aftersound_t60(pitch)), HAMMER_NOISE_SECONDS)
        return int(round(seconds * self.sample_rate))

    def _partials(self, pitch: int) -> _Partials:
        """Frequencies, soft and hard amplitudes and decay rates of one key's partials.

        1. Inharmonic frequencies, the first exactly f0; those above 0.95 · Nyquist dropped.
        2. Amplitude 1/n · |sin(π n x)| (strike point x) · soundboard EQ · felt low-pass, for a
           soft and a hard felt cut-off, each normalised to unit energy; negligible ones dropped.
        3. Two-stage decay rates, growing with pitch and with f_n / f0.
        """
        p, sr = self.params, self.sample_rate
        f0 = 440.0 * 2.0 ** ((pitch - 69) / 12 + p.tuning_cents / 1200)
        curve_pitch, curve_b = zip(*INHARMONICITY_CURVE)
        b = p.inharmonicity_scale * np.exp(np.interp(pitch, curve_pitch, np.log(curve_b)))
        n = np.arange(1, p.n_partials + 1)
        freq = n * f0 * np.sqrt(1 + b * n**2) / np.sqrt(1 + b)
        keep = freq < NYQUIST_MARGIN * sr / 2
        n, freq = n[keep], freq[keep]
        octaves = np.log2(freq[:, None] / self._bump_centres[None, :]) / self._bump_octaves[None, :]
        soundboard_db = (self._bump_gains_db[None, :] * np.exp(-0.5 * octaves**2)).sum(axis=1)
        shape = np.abs(np.sin(np.pi * n * p.hammer_position)) / n * 10 ** (soundboard_db / 20)
        amps = []
        for hz, per_f0 in (FELT_CUTOFF["soft"], FELT_CUTOFF["hard"]):
            a = shape / (1 + (freq / (p.brightness * (hz + per_f0 * f0))) ** 2)
            amps.append(a / max(np.sqrt(np.sum(a**2)), 1e-30))
        soft, hard = amps
        strong = np.maximum(soft, hard) >= MIN_RELATIVE_AMPLITUDE * max(soft.max(initial=0), hard.max(initial=0))
        after_rate = T60_DB / self._aftersound_t60(pitch) * (freq / f0) ** PARTIAL_DECAY_EXPONENT
        return _Partials(n[strong], freq[strong], soft[strong], hard[strong], PROMPT_RATIO * after_rate[strong],
                         after_rate[strong])

    def _string_detune_cents(self, pitch: int) -> np.ndarray:
        """Symmetric detuning of the key's unison strings, so their mean stays at f0."""
        f0 = 440.0 * 2.0 ** ((pitch - 69) / 12)
        pattern = (np.array([0.0]) if pitch < ONE_STRING_BELOW else
                   np.array([-0.5, 0.5]) if pitch < THREE_STRINGS_FROM else np.array([-1.0, 0.0, 1.0]))
        treble = min(1.0, DETUNE_FULL_BELOW_HZ / f0)
        return pattern * self.params.unison_detune_cents * self._detune_jitter[pitch % 128] * treble

    def _tone(self, pitch: int, n_samples: int) -> np.ndarray:
        """(2, n) float32: the key's sound after a soft (row 0) and a hard (row 1) blow.

        1. Components = partials × unison strings × (prompt, aftersound), summed as damped sinusoids.
        2. Attack ramp 1 - exp(-t / τ) (τ 2 ms in the bass to 0.5 ms at C8).
        3. Hammer noise: noise band-passed around a centre (an octave-wide Gaussian in log frequency),
           decaying in 8 ms; brighter and 4x louder when hard.
        4. A key that rings longer than MAX_TONE_SECONDS fades out over the last quarter of that time.
        """
        p, sr = self.params, self.sample_rate
        n_samples = max(n_samples, int(HAMMER_NOISE_SECONDS * sr))
        partials = self._partials(pitch)
        detune = 2.0 ** (self._string_detune_cents(pitch) / 1200)
        n_strings = detune.size
        freq = partials.freq[:, None, None] * detune[None, :, None] * np.ones((1, 1, 2))
        rate = np.stack([partials.prompt_rate, partials.after_rate], axis=-1)[:, None, :] * np.ones((1, n_strings, 1))
        stage_weight = np.array([1 - p.aftersound_level, p.aftersound_level]) / n_strings
        amps = np.stack([partials.soft, partials.hard])[:, :, None, None] * stage_weight[None, None, None, :]
        amps = np.broadcast_to(amps, (2,) + freq.shape)
        tone = _damped_sinusoids(freq.ravel(), rate.ravel(), amps.reshape(2, -1), n_samples, sr)

        f0 = 440.0 * 2.0 ** ((pitch - 69) / 12)
        tau = float(np.exp(np.interp(pitch, (21, 108), np.log(ATTACK_SECONDS))))
        n_attack = min(n_samples, int(10 * tau * sr))
        tone[:, :n_attack] *= (1 - np.exp(-np.arange(n_attack) / (tau * sr))).astype(np.float32)

        n_noise = int(HAMMER_NOISE_SECONDS * sr)
        noise = np.fft.rfft(np.random.default_rng([p.seed, 1, pitch]).standard_normal(n_noise))
        noise_freq = np.fft.rfftfreq(n_noise, 1 / sr)
        decay = np.exp(-np.arange(n_noise) / (HAMMER_NOISE_DECAY * sr))
        centre = min(0.3 * sr, p.brightness * (1000.0 + 2 * f0))
        for row, (scale, level) in enumerate(((0.5, 0.25), (1.0, 1.0))):
            octaves = np.log2(np.maximum(noise_freq, 1.0) / (scale * centre))
            burst = np.fft.irfft(noise * np.exp(-0.5 * octaves**2) * (noise_freq < 0.45 * sr), n_noise) * decay
            tone[row, :n_noise] += (level * p.hammer_noise_level / np.max(np.abs(burst)) * burst).astype(np.float32)

        if self._aftersound_t60(pitch) > MAX_TONE_SECONDS:
            n_full = self._natural_samples(pitch)
            fade_start = n_full - n_full // 4
            if n_samples > fade_start:
                fade = 0.5 + 0.5 * np.cos(np.pi * np.arange(n_samples - fade_start) / (n_full - fade_start))
                tone[:, fade_start:] *= fade.astype(np.float32)
        return tone


def _damped_sinusoids(freq: np.ndarray, rate: np.ndarray, amps: np.ndarray, n_samples: int,
                      sample_rate: int) -> np.ndarray:
    """(V, n) float32: row v = Σ_j amps[v, j] · exp(-rate_j · t) · sin(2π freq_j · t).

    With z_j = exp((-rate_j + 2πi freq_j) / sample_rate) and t = q · BLOCK + r, each row is
    Im Σ_j amps[v, j] · z_j^(q·BLOCK) · z_j^r: one real matrix product of the block starts
    (Q × 2J) with the in-block powers (2J × BLOCK). Every power comes from exp of its exact
    exponent, so no error accumulates over long tones.
    """
    n_versions = amps.shape[0]
    n_blocks = -(-n_samples // BLOCK)
    exponent = (-rate + 2j * np.pi * freq) / sample_rate
    block_starts = np.exp(np.outer(np.arange(n_blocks) * BLOCK, exponent))  # (Q, J)
    in_block = np.exp(np.outer(exponent, np.arange(BLOCK)))  # (J, BLOCK)
    left = (amps[:, None, :] * block_starts[None, :, :]).reshape(n_versions * n_blocks, -1)
    left = np.concatenate([left.real, left.imag], axis=1).astype(np.float32)
    right = np.concatenate([in_block.imag, in_block.real], axis=0).astype(np.float32)
    return (left @ right).reshape(n_versions, n_blocks * BLOCK)[:, :n_samples]


def render_procedural(midi: str | Path | pretty_midi.PrettyMIDI, params: SynthParams | None = None,
                      sample_rate: int = 16000, seed: int = 0) -> np.ndarray:
    """One-off convenience: MIDI (path or PrettyMIDI) -> float32 mono audio, not normalised.

    Without ``params`` a training-range piano is drawn with ``SynthParams.random(default_rng(seed))``.
    """
    if params is None:
        params = SynthParams.random(np.random.default_rng(seed))
    return ProceduralPiano(params, sample_rate).render(load_midi(midi))
