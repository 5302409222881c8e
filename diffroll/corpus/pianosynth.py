"""A procedural piano: MIDI -> audio from a physically inspired additive model, without samples.

The offline corpus renders with two General-MIDI soundfonts only (:mod:`diffroll.corpus.render`), so a
model can learn one sample set instead of pitch. This synthesiser's timbre is drawn at random per
piece (:meth:`diffroll.corpus.synthparams.SynthParams.random`), and held-out parameter ranges give an unseen test timbre.

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
  sustain pedal (CC 64 >= 64, read as :func:`diffroll.core.roll.sustain_spans` does) is down: then it
  rings on until the pedal is released. A key struck again while sounding restarts (the old
  vibration is damped in :data:`diffroll.corpus.strikes.RESTRIKE_T60`). Keys from ``undamped_from`` up have no dampers.
- **Soundboard**: a fixed random EQ per piece (smooth bumps in log frequency) on the partials.
- **Stretched tuning**: pianos are tuned to the Railsback curve (Railsback 1938; Martin & Ward,
  JASA 33, 1961): the bass flat and the treble sharp of equal temperament, because tuners match
  the inharmonic partials of octaves. Approximated here by two parabolas meeting at A4 (0 cents):
  −``stretch_bass_cents`` · ((69 − p) / 48)² below, +``stretch_treble_cents`` · ((p − 69) / 39)²
  above (:func:`railsback_cents`; about −20 cents at A0 and +30 at C8 for a grand).
- **Sympathetic resonance**: with the sustain pedal down every damper is off, so the strings whose
  partials coincide with a sounding note's partials (the keys an octave, a twelfth and two octaves
  above and below) are driven through the bridge and ring faintly at *their own* partials
  (``sympathetic_level``), building up in ~20 ms and dying at their own rate or when the pedal
  comes up. A resonating partial responds less the more it is mistuned from the driving partial.
- **Mechanical noise**: a key's thump on the keybed at its onset (low, louder when harder),
  the damper's felt falling back on the strings at its release, and the pedal mechanism at each
  pedal press and release (``key_noise_level``, ``damper_noise_level``, ``pedal_noise_level``).

Speed: each key is synthesised once per piece (both hardnesses, as long as its longest note needs),
as a sum of damped complex exponentials evaluated by blocks with one matrix product; notes are
then mixed from these cached tones with their velocity gain and damper envelope.
"""
from __future__ import annotations

from pathlib import Path
from typing import NamedTuple

import numpy as np
import pretty_midi

from ..core.roll import load_midi
from .strikes import RESTRIKE_T60, T60_DB, Strike, damper_curves, note_strikes, pedal_spans
from .synthparams import SynthParams

TAIL_SECONDS = 1.0  # rendered after the last note-off or pedal-up, as in diffroll.corpus.render
# (MIDI pitch, B), log-interpolated; B at C8 is SynthParams.treble_inharmonicity. B is smallest in the
# low tenor and rises to ~1e-2 in the top octave (Rigaud, David & Daudet, JASA 133, 2013, fig. 5).
INHARMONICITY_CURVE = ((21, 3e-4), (45, 1e-4))
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
SOUNDBOARD_BUMPS = 4
SYMPATHETIC_INTERVALS = (-24, -19, -12, 12, 19, 24)  # keys whose partials coincide with a note's
SYMPATHETIC_WIDTH_CENTS = 10.0  # a resonating partial mistuned by this answers at half amplitude
SYMPATHETIC_BUILDUP = 0.02  # seconds: time constant of the resonance's growth
# mechanical noises: (seconds long, centre Hz range, octaves wide, decay seconds)
KEY_NOISE = (0.06, (80.0, 250.0), 1.5, 0.012)
DAMPER_NOISE = (0.05, (250.0, 700.0), 2.0, 0.012)
PEDAL_NOISE = (0.2, (100.0, 300.0), 2.5, 0.04)
BLOCK = 512  # samples per block of the tone synthesis (see _damped_sinusoids)


class _Partials(NamedTuple):
    number: np.ndarray  # (K,) n, from 1
    freq: np.ndarray  # (K,) Hz
    soft: np.ndarray  # (K,) amplitudes of a soft blow, unit energy
    hard: np.ndarray  # (K,) amplitudes of a hard blow, unit energy
    prompt_rate: np.ndarray  # (K,) 1/s, amplitude ∝ exp(-rate · t)
    after_rate: np.ndarray  # (K,)


def railsback_cents(pitch: float, bass_cents: float, treble_cents: float) -> float:
    """The stretch of a key from equal temperament in cents: a parabolic approximation of the
    Railsback curve, 0 at A4, −``bass_cents`` at A0 and +``treble_cents`` at C8 (see the module)."""
    if pitch >= 69:
        return treble_cents * ((pitch - 69) / 39) ** 2
    return -bass_cents * ((69 - pitch) / 48) ** 2


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
        self._noise_centres = {name: float(np.exp(rng.uniform(*np.log(spec[1]))))
                               for name, spec in (("key", KEY_NOISE), ("damper", DAMPER_NOISE), ("pedal", PEDAL_NOISE))}

    def render(self, midi: pretty_midi.PrettyMIDI, tail: float = TAIL_SECONDS) -> np.ndarray:
        """All non-drum notes (and sustain pedal) of ``midi`` -> float32 mono audio, not normalised.

        1. Each note's damper time: the key's release, postponed to the pedal's release if the
           pedal is down then, and cut short by the next strike of the same key.
        2. Each key used is synthesised once (soft and hard), as long as its longest note needs.
        3. Each note adds its key's tone: velocity gain, soft/hard mix, then the damper envelope.

        The audio lasts until the last note-off or pedal event plus ``tail`` seconds (like
        :meth:`diffroll.corpus.render.PianoSynth.render`), or until the last sound has died if later.
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
        spans = pedal_spans(midi, last_event)
        if self.params.sympathetic_level > 0 and spans:
            self._add_sympathetic(out, strikes, lengths, spans)
        self._add_mechanical_noise(out, strikes, spans)
        return out

    def _add_sympathetic(self, out: np.ndarray, strikes: list[Strike], lengths: list[int],
                         spans: list[tuple[float, float]]) -> None:
        """For every pedal span during which a note sounds: from the later of its onset and the
        pedal press, its sympathetic strings (:meth:`_sympathetic_tone`) ring, scaled by the note's
        loudness and by how far it has decayed, until the pedal comes up (then damped)."""
        sr, p = self.sample_rate, self.params
        damp = np.exp(-T60_DB * np.arange(int(np.ceil(p.damper_t60 * sr))) / (p.damper_t60 * sr)).astype(np.float32)
        uses = []  # (pitch, start sample, samples until pedal up, gain)
        for s, n in zip(strikes, lengths):
            sound_end = s.onset + n / sr
            for down, up in spans:
                begin = max(s.onset, down)
                if begin < min(up, sound_end):
                    decayed = np.exp(-T60_DB * (begin - s.onset) / self._aftersound_t60(s.pitch))
                    gain = p.sympathetic_level * (s.velocity / 127) ** p.velocity_exponent * decayed
                    uses.append((s.pitch, int(round(begin * sr)), int(round((up - begin) * sr)), gain))
        needed: dict[int, int] = {}
        for pitch, _, held, _ in uses:
            needed[pitch] = max(needed.get(pitch, 0), held + damp.size)
        tones = {pitch: self._sympathetic_tone(pitch, n) for pitch, n in needed.items()}
        for pitch, start, held, gain in uses:
            tone = tones[pitch]
            n = min(tone.size, held + damp.size, out.size - start)
            sound = tone[:n] * np.float32(gain)
            if held < n:
                sound[held:] *= damp[: n - held]
            out[start:start + n] += sound

    def _sympathetic_tone(self, pitch: int, n_samples: int) -> np.ndarray:
        """(n,) float32: the strings of :data:`SYMPATHETIC_INTERVALS` around ``pitch`` driven by its
        partials: each partial of a resonating key that lies within 50 cents of a driving partial
        rings at its own frequency, with the driving partial's amplitude (mean of soft and hard)
        times 1 / (1 + (mistuning / SYMPATHETIC_WIDTH_CENTS)²), at the resonating key's aftersound
        rate, growing in with time constant SYMPATHETIC_BUILDUP."""
        sr = self.sample_rate
        n_samples = min(n_samples, max(self._natural_samples(pitch + d) for d in SYMPATHETIC_INTERVALS))
        source = self._partials(pitch)
        drive = 0.5 * (source.soft + source.hard)
        freqs, rates, amps = [], [], []
        for key in (pitch + d for d in SYMPATHETIC_INTERVALS):
            if not 21 <= key <= 108 or source.freq.size == 0:
                continue
            strings = self._partials(key)
            nearest = np.abs(np.log2(strings.freq[:, None] / source.freq[None, :])).argmin(axis=1)
            cents = 1200 * np.log2(strings.freq / source.freq[nearest])
            close = np.abs(cents) < 50
            freqs.append(strings.freq[close])
            rates.append(strings.after_rate[close])
            amps.append(drive[nearest[close]] / (1 + (cents[close] / SYMPATHETIC_WIDTH_CENTS) ** 2))
        if not freqs or not sum(f.size for f in freqs):
            return np.zeros(n_samples, dtype=np.float32)
        tone = _damped_sinusoids(np.concatenate(freqs), np.concatenate(rates), np.concatenate(amps)[None, :],
                                 n_samples, sr)[0]
        return tone * (1 - np.exp(-np.arange(n_samples) / (SYMPATHETIC_BUILDUP * sr))).astype(np.float32)

    def _add_mechanical_noise(self, out: np.ndarray, strikes: list[Strike], spans: list[tuple[float, float]]) -> None:
        """Keybed thumps at onsets (∝ velocity / 127), damper noise where a damper falls (not at a
        re-strike: the damper stays up), pedal noise at each press and release."""
        p, sr = self.params, self.sample_rate
        events = []  # (kind, time, level, variant)
        if p.key_noise_level > 0:
            events += [("key", s.onset, p.key_noise_level * s.velocity / 127, s.pitch) for s in strikes]
        if p.damper_noise_level > 0:
            events += [("damper", s.release, p.damper_noise_level, s.pitch) for s in strikes
                       if np.isfinite(s.release) and s.damping_t60 != RESTRIKE_T60]
        if p.pedal_noise_level > 0:
            events += [("pedal", t, p.pedal_noise_level, i) for i, span in enumerate(spans) for t in span]
        specs = {"key": KEY_NOISE, "damper": DAMPER_NOISE, "pedal": PEDAL_NOISE}
        for kind, time, level, variant in events:
            start = int(round(time * sr))
            if start >= out.size:
                continue
            burst = self._noise_burst(kind, variant % 16, specs[kind])
            n = min(burst.size, out.size - start)
            out[start:start + n] += np.float32(level) * burst[:n]

    def _noise_burst(self, kind: str, variant: int, spec: tuple) -> np.ndarray:
        """(n,) float32, peak 1: one of 16 noise bursts per kind and piece, band-passed around the
        piece's centre for the kind (an octaves-wide Gaussian in log frequency), decaying."""
        key = (kind, variant)
        cache = self.__dict__.setdefault("_bursts", {})
        if key not in cache:
            seconds, _, octaves_wide, decay_s = spec
            sr = self.sample_rate
            n = int(seconds * sr)
            index = ("key", "damper", "pedal").index(kind)
            spectrum = np.fft.rfft(np.random.default_rng([self.params.seed, 2, index, variant]).standard_normal(n))
            freq = np.fft.rfftfreq(n, 1 / sr)
            octaves = np.log2(np.maximum(freq, 1.0) / self._noise_centres[kind]) / (octaves_wide / 2)
            burst = np.fft.irfft(spectrum * np.exp(-0.5 * octaves**2), n) * np.exp(-np.arange(n) / (decay_s * sr))
            burst *= np.minimum(1.0, (n - np.arange(n)) / max(1, n // 8))  # faded out over its last eighth
            cache[key] = (burst / max(np.abs(burst).max(), 1e-30)).astype(np.float32)
        return cache[key]

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
        stretch = railsback_cents(pitch, p.stretch_bass_cents, p.stretch_treble_cents)
        f0 = 440.0 * 2.0 ** ((pitch - 69) / 12 + (p.tuning_cents + stretch) / 1200)
        curve_pitch, curve_b = zip(*INHARMONICITY_CURVE, (108, p.treble_inharmonicity))
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
