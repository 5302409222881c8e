"""MIDI -> piano audio with FluidSynth, and the audio augmentation of the offline corpus.

The paper trains on MAESTRO recordings (§4), which this machine cannot download; the offline
corpus (:mod:`diffroll.corpus.offline`) renders scores instead. Timbre diversity is what lets a model
trained on synthesised audio generalise, so the training renders vary the soundfont, the GM piano
program (0–7: grands, electric and honky-tonk pianos, electric pianos, harpsichord, clavinet), the
tuning (a global pitch bend of a few cents; labels unchanged) and pass the audio through a random
EQ, a synthetic room reverb, compression, noise at a random SNR and a random gain
(:func:`augment_audio`, ranges in :class:`AugmentSettings`); half of them instead go through a
simulated room, microphone and recorder (:mod:`diffroll.corpus.room`: pyroomacoustics and pedalboard).
The procedural piano of :mod:`diffroll.corpus.pianosynth` is a third training timbre.

Soundfonts are looked up by name in :data:`SOUNDFONTS`; a missing one, or a missing FluidSynth
library, raises :class:`RenderError` naming the Debian package that provides it.
"""
from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pretty_midi
from scipy import signal

from .room import RoomSettings, recording_chain, room_and_mic

SUSTAIN_CC = 64
TAIL_SECONDS = 1.0  # rendered after the last note-off, so releases are not cut
PITCH_BEND_RANGE_CENTS = 200.0  # General MIDI's default bend range: ±2 semitones over ±8192


class RenderError(RuntimeError):
    """FluidSynth or a soundfont is missing or unusable."""


@dataclass(frozen=True)
class Soundfont:
    name: str
    candidates: tuple[str, ...]  # absolute paths, tried in order
    install: str  # how to get it


def _pretty_midi_sf2() -> str:
    return str(Path(pretty_midi.__file__).parent / "TimGM6mb.sf2")


SOUNDFONTS: dict[str, Soundfont] = {
    "TimGM6mb": Soundfont("TimGM6mb", (_pretty_midi_sf2(),), "pip install pretty_midi (ships TimGM6mb.sf2)"),
    "csound": Soundfont("csound", ("/usr/share/sounds/sf2/sf_GMbank.sf2",),
                        "sudo apt-get install csound-soundfont"),
    "FluidR3_GM": Soundfont("FluidR3_GM", ("/usr/share/sounds/sf2/FluidR3_GM.sf2",),
                            "sudo apt-get install fluid-soundfont-gm"),
    "MuseScore_General": Soundfont("MuseScore_General", ("/usr/share/sounds/sf3/MuseScore_General.sf3",
                                                         "/usr/share/sounds/sf3/MuseScore_General_Full.sf3",
                                                         "/usr/share/sounds/sf2/MuseScore_General.sf2"),
                                   "sudo apt-get install musescore-general-soundfont"),
}


def soundfont_path(name: str) -> Path:
    """The file of a named soundfont (or ``name`` itself when it is a path to a .sf2/.sf3 file).

    ``$DIFFROLL_SOUNDFONT_DIR`` is searched first, for soundfonts kept outside /usr/share.
    """
    if Path(name).suffix.lower() in (".sf2", ".sf3"):
        if Path(name).is_file():
            return Path(name)
        raise RenderError(f"soundfont file {name} does not exist")
    if name not in SOUNDFONTS:
        raise RenderError(f"unknown soundfont {name!r}; known: {sorted(SOUNDFONTS)} (or give a .sf2 path)")
    sf = SOUNDFONTS[name]
    extra = os.environ.get("DIFFROLL_SOUNDFONT_DIR")
    candidates = [str(Path(extra) / Path(c).name) for c in sf.candidates] if extra else []
    for candidate in candidates + list(sf.candidates):
        if Path(candidate).is_file():
            return Path(candidate)
    raise RenderError(f"soundfont {name!r} not found (looked for {', '.join(candidates + list(sf.candidates))}); "
                      f"install it with: {sf.install}")


def _fluidsynth():
    """The pyfluidsynth module, or a RenderError that says what to install (never a ctypes crash)."""
    try:
        import fluidsynth  # here: a missing libfluidsynth becomes a RenderError saying what to install
    except ImportError as err:
        if "fluidsynth" in str(err).lower() and "no module named" not in str(err).lower():
            raise RenderError("the FluidSynth library (libfluidsynth) was not found: install it with "
                              "`sudo apt-get install libfluidsynth3` (Debian/Ubuntu) or "
                              "`brew install fluid-synth` (macOS)") from err
        raise RenderError("the Python package pyfluidsynth is missing: `pip install pyfluidsynth`, "
                          "and the library with `sudo apt-get install libfluidsynth3`") from err
    except OSError as err:  # a broken libfluidsynth found by ctypes
        raise RenderError(f"the FluidSynth library could not be loaded ({err}); reinstall it with "
                          "`sudo apt-get install --reinstall libfluidsynth3`") from err
    return fluidsynth


class PianoSynth:
    """One FluidSynth instance with one soundfont loaded, reused for many pieces."""

    BLOCK = 64  # FluidSynth renders in blocks of 64 samples (FLUID_BUFSIZE) and applies events between them

    def __init__(self, soundfont: str, sample_rate: int = 16000):
        fluidsynth = _fluidsynth()
        self.path = soundfont_path(soundfont)
        self.sample_rate = sample_rate
        self.synth = fluidsynth.Synth(samplerate=float(sample_rate))
        self._written = 0  # samples taken from the synth so far
        self.sfid = self.synth.sfload(str(self.path))
        if self.sfid < 0:
            raise RenderError(f"FluidSynth could not load the soundfont {self.path} (corrupt file?)")

    def render(self, midi: pretty_midi.PrettyMIDI, program: int = 0, tail: float = TAIL_SECONDS,
               detune_cents: float = 0.0) -> np.ndarray:
        """All non-drum notes (and sustain pedal) of ``midi`` on one piano -> float32 mono audio.

        The audio lasts until the last note-off plus ``tail`` seconds. At equal times note-offs
        are sent before note-ons, so a re-struck key sounds again. ``detune_cents`` tunes the whole
        piece by a pitch bend (within ±200 cents).
        """
        if not abs(detune_cents) < PITCH_BEND_RANGE_CENTS:
            raise RenderError(f"detune_cents must be within ±{PITCH_BEND_RANGE_CENTS:g}, got {detune_cents}")
        events = []  # (sample, order, kind, a, b): order 0 = off/cc, 1 = on
        for inst in midi.instruments:
            if inst.is_drum:
                continue
            for n in inst.notes:
                events.append((round(n.start * self.sample_rate), 1, "on", n.pitch, n.velocity))
                events.append((round(n.end * self.sample_rate), 0, "off", n.pitch, 0))
            for c in inst.control_changes:
                if c.number == SUSTAIN_CC:
                    events.append((round(c.time * self.sample_rate), 0, "cc", c.number, c.value))
        if not any(kind == "on" for _, _, kind, _, _ in events):
            raise RenderError("nothing to render: the MIDI has no notes")
        events.sort()
        s = self.synth
        s.system_reset()
        # Start on a block boundary, as a new synth does: events fall between blocks, so a piece begun
        # mid-block (after another piece) had every note moved by up to 63 samples, and the same
        # piece rendered differently depending on what the synth rendered before.
        self._samples((-self._written) % self.BLOCK)
        if s.program_select(0, self.sfid, 0, program) != 0 and s.program_select(0, self.sfid, 0, 0) != 0:
            raise RenderError(f"{self.path} has no piano preset (bank 0, program {program} or 0)")
        s.pitch_bend(0, int(round(8192 * detune_cents / PITCH_BEND_RANGE_CENTS)))
        chunks, now = [], 0
        for sample, _, kind, a, b in events:
            if sample > now:
                chunks.append(self._samples(sample - now))
                now = sample
            if kind == "on":
                s.noteon(0, int(a), int(max(1, min(127, b))))
            elif kind == "off":
                s.noteoff(0, int(a))
            else:
                s.cc(0, int(a), int(b))
        for a in range(128):  # a pedal left down must not hold the tail forever
            s.noteoff(0, a)
        s.cc(0, SUSTAIN_CC, 0)
        chunks.append(self._samples(int(tail * self.sample_rate)))
        stereo = np.concatenate(chunks).astype(np.float32).reshape(-1, 2) / 32768.0
        return stereo.mean(axis=1)

    def _samples(self, n: int) -> np.ndarray:
        """The next ``n`` samples of the synth (interleaved stereo int16)."""
        self._written += n
        return self.synth.get_samples(n) if n else np.zeros(0, dtype=np.int16)

    def close(self) -> None:
        self.synth.delete()


def render_midi(midi, soundfont: str = "TimGM6mb", sample_rate: int = 16000, program: int = 0) -> np.ndarray:
    """One-off convenience: MIDI (path or PrettyMIDI) -> float32 mono audio at ``sample_rate``."""
    pm = midi if isinstance(midi, pretty_midi.PrettyMIDI) else pretty_midi.PrettyMIDI(str(midi))
    synth = PianoSynth(soundfont, sample_rate)
    try:
        return synth.render(pm, program=program)
    finally:
        synth.close()


def normalize_peak(audio: np.ndarray, peak: float = 0.9) -> np.ndarray:
    top = float(np.max(np.abs(audio))) if audio.size else 0.0
    return (audio * (peak / top)).astype(np.float32) if top > 0 else audio.astype(np.float32)


@dataclass(frozen=True)
class AugmentSettings:
    """Ranges of :func:`augment_audio` (saved in every corpus's ``corpus.json``).

    ``room``: the room, microphone and recorder of :mod:`diffroll.corpus.room`, taken by a share
    ``room.probability`` of the renders instead of the EQ, synthetic reverb and compressor; with
    ``room=None`` the chain draws and returns exactly what it did before the room existed.
    """

    eq_bands: tuple[int, int] = (1, 3)
    eq_gain_db: float = 9.0
    tilt_probability: float = 0.5
    reverb_probability: float = 0.6
    rt60_s: tuple[float, float] = (0.2, 1.5)
    reverb_wet: tuple[float, float] = (0.05, 0.4)
    compression_probability: float = 0.3
    compression_ratio: tuple[float, float] = (2.0, 6.0)
    noise_probability: float = 0.7
    snr_db: tuple[float, float] = (10.0, 50.0)
    peak_dbfs: tuple[float, float] = (-30.0, -1.0)
    room: RoomSettings | None = RoomSettings()  # None: never the room and microphone (the chain before it)


def augment_audio(audio: np.ndarray, sample_rate: int, rng: np.random.Generator,
                  settings: AugmentSettings = AugmentSettings(), force_noise: bool = False) -> np.ndarray:
    """Random EQ, room reverb, compression, noise at a random SNR and a random gain (training renders
    only; every probability and range in :class:`AugmentSettings`).

    With probability ``settings.room.probability`` the render instead goes through a simulated room
    and microphone (:func:`diffroll.corpus.room.room_and_mic`), then the noise below, then the recorder
    (:func:`diffroll.corpus.room.recording_chain`: compressor, MP3), then the gain. Otherwise:

    - EQ: 1–3 bands, each ``x + (g - 1) · bandpass(x)`` (a parallel peaking filter of ±9 dB,
      scipy Butterworth biquads), plus with probability 0.5 a low- or high-frequency tilt.
    - Reverb: a synthetic room: sparse early reflections, then exponentially decaying noise whose
      high frequencies die faster; RT60 0.2–1.5 s, 5–40 % wet.
    - Compression: a feed-forward compressor (5 ms attack, 50–300 ms release) of ratio 2–6 whose
      threshold sits 6–20 dB under the peak.
    - Noise (or always, with ``force_noise``: the noise-only stretches of a performance with gaps):
      white, low-passed or pink-ish noise at an SNR of 10–50 dB against the music's RMS.
    - Gain: peak level between -30 and -1 dBFS (the fixed-range mel sees many levels).
    """
    st = settings
    x = audio.astype(np.float64)
    if st.room is not None and st.room.probability > 0 and rng.random() < st.room.probability:
        x = room_and_mic(x, sample_rate, rng, st.room)
        if force_noise or rng.random() < st.noise_probability:
            x = add_noise(x, sample_rate, rng, st.snr_db)
        x = recording_chain(x, sample_rate, rng, st.room)
        return normalize_peak(x, peak=10 ** (rng.uniform(*st.peak_dbfs) / 20))
    nyquist = sample_rate / 2
    for _ in range(int(rng.integers(st.eq_bands[0], st.eq_bands[1] + 1))):
        centre = float(np.exp(rng.uniform(np.log(80.0), np.log(0.7 * nyquist))))
        octaves = rng.uniform(0.5, 2.0)
        lo, hi = centre * 2 ** (-octaves / 2), min(centre * 2 ** (octaves / 2), 0.95 * nyquist)
        band = signal.butter(1, [lo, hi], btype="bandpass", fs=sample_rate, output="sos")
        x = x + (10 ** (rng.uniform(-st.eq_gain_db, st.eq_gain_db) / 20) - 1) * signal.sosfilt(band, x)
    if rng.random() < st.tilt_probability:
        kind, corner = ("lowpass", rng.uniform(150, 600)) if rng.random() < 0.5 else ("highpass", rng.uniform(2000, 5000))
        shelf = signal.butter(2, corner, btype=kind, fs=sample_rate, output="sos")
        x = x + (10 ** (rng.uniform(-8, 8) / 20) - 1) * signal.sosfilt(shelf, x)
    if rng.random() < st.reverb_probability:
        wet = signal.fftconvolve(x, room_impulse_response(rng, sample_rate, rng.uniform(*st.rt60_s)))[: x.size]
        x = x + rng.uniform(*st.reverb_wet) * wet * (_rms(x) / max(_rms(wet), 1e-12))
    if rng.random() < st.compression_probability:
        x = compress(x, sample_rate, threshold_db=20 * np.log10(max(np.abs(x).max(), 1e-9)) - rng.uniform(6, 20),
                     ratio=rng.uniform(*st.compression_ratio), release_s=rng.uniform(0.05, 0.3))
    if force_noise or rng.random() < st.noise_probability:
        x = add_noise(x, sample_rate, rng, st.snr_db)
    return normalize_peak(x, peak=10 ** (rng.uniform(*st.peak_dbfs) / 20))


def add_noise(x: np.ndarray, sample_rate: int, rng: np.random.Generator, snr_db: tuple[float, float]) -> np.ndarray:
    """``x`` plus white, low-passed or pink-ish noise (a third each) at an SNR drawn from ``snr_db``
    against its RMS: hiss, hum-free room and preamp noise (no library generates it)."""
    noise = rng.standard_normal(x.size)
    colour = rng.random()
    if colour < 1 / 3:
        noise = signal.sosfilt(signal.butter(1, rng.uniform(300, 3000), fs=sample_rate, output="sos"), noise)
    elif colour < 2 / 3:  # roughly pink: a 1/f tilt from a cascade of one-pole low-passes
        noise = sum(signal.sosfilt(signal.butter(1, f, fs=sample_rate, output="sos"), noise) * (f / 100) ** 0.5
                    for f in (100, 400, 1600, 6400))
    snr = rng.uniform(*snr_db)
    return x + noise * (_rms(x) / max(_rms(noise), 1e-12)) * 10 ** (-snr / 20)


def room_impulse_response(rng: np.random.Generator, sample_rate: int, rt60: float) -> np.ndarray:
    """A synthetic room: 4–10 early reflections in the first 5–40 ms, then a late tail of noise
    decaying by 60 dB in ``rt60`` seconds, its high frequencies twice as fast (a one-pole
    low-pass sweep). The direct sound is not included (the caller mixes it dry)."""
    n = int(rt60 * sample_rate)
    t = np.arange(n) / sample_rate
    ir = np.zeros(n)
    for _ in range(int(rng.integers(4, 11))):
        i = int(rng.uniform(0.005, 0.04) * sample_rate)
        if i < n:
            ir[i] += rng.choice([-1, 1]) * rng.uniform(0.2, 0.7)
    late = rng.standard_normal(n) * np.exp(-6.9 * t / rt60)
    dark = signal.sosfilt(signal.butter(1, rng.uniform(1500, 5000), fs=sample_rate, output="sos"), late)
    mix = np.exp(-6.9 * t / rt60)  # early: bright; later: dark
    ir += (mix * late + (1 - mix) * dark) * np.clip((t - 0.01) / 0.02, 0, 1)
    return ir


def compress(x: np.ndarray, sample_rate: int, threshold_db: float, ratio: float, release_s: float = 0.1,
             attack_s: float = 0.005) -> np.ndarray:
    """A feed-forward compressor: the level (a peak follower with ``attack_s`` / ``release_s``)
    above ``threshold_db`` is reduced by ``ratio``; make-up gain is left to the caller."""
    level = np.abs(x)
    a_att, a_rel = np.exp(-1 / (attack_s * sample_rate)), np.exp(-1 / (release_s * sample_rate))
    # a one-pole follower of the peak envelope: release smoothing of a fast-attack maximum
    fast = signal.lfilter([1 - a_att], [1, -a_att], level)
    env = signal.lfilter([1 - a_rel], [1, -a_rel], np.maximum(fast, level * (1 - a_att)))
    env = np.maximum(env, fast)
    over_db = 20 * np.log10(np.maximum(env, 1e-9)) - threshold_db
    gain_db = -np.maximum(over_db, 0) * (1 - 1 / ratio)
    return x * 10 ** (gain_db / 20)


def _rms(x: np.ndarray) -> float:
    return float(np.sqrt(np.mean(np.square(x)))) if x.size else 0.0
