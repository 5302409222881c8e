"""Training data: (c_mel, x_roll) segments and roll-only segments, cached on disk.

The paper trains on segments of 327,680 samples (§4): c_mel in [0, 1] of shape (229, F) and
x_roll in {0, 1} of shape (88, F), F = 640 frames (R × F for a roll of several channels,
R = 88 per channel: :attr:`RollConfig.roll_channels`). Pretraining (§4.2) uses rolls alone, with
c_mel = -1 filled in by the trainer. This module cuts pieces into such segments once and keeps
them in a memory-mapped Hugging Face ``datasets`` Arrow file, keyed by a hash of the audio
settings and the pieces (their paths, sizes and modification times), so changing e.g. the hop
or the segment length builds a new cache. It never touches the network (Arrow files are written
and opened by explicit paths: no Hugging Face hub, no HF_* settings needed).

The pieces come from :func:`list_pieces` (offline corpus, MAESTRO, MAPS; see
:mod:`diffroll.corpus.loaders`) and the offline corpus from :func:`build_offline_corpus`
(:mod:`diffroll.corpus.offline`).
"""
from __future__ import annotations

import functools
import hashlib
import json
import logging
import os
import shutil
from pathlib import Path
from typing import NamedTuple, Sequence

import datasets
import numpy as np
import pretty_midi
import soundfile as sf
import torch
from datasets.arrow_writer import ArrowWriter
from tqdm.auto import tqdm

from ..core import paths
from ..core.audio import AudioError, Frontend, load_audio, make_frontend
from ..core.config import HCQT_SETTINGS, LOWEST_MIDI, N_KEYS, AudioConfig, Config, RollConfig
from .offline import build_offline_corpus
from .loaders import DataError, Piece, list_pieces, read_manifest, split_of
from ..core.roll import MidiError, Note, clip_notes, load_midi, merged_sustain_spans, midi_notes, notes_to_roll

__all__ = ["DataError", "LoadedPiece", "Piece", "build_offline_corpus", "list_pieces", "load_piece", "load_pieces",
           "roll_dataset", "segment_dataset", "split_of", "summarize", "pitch_counts", "training_data",
           "manifest_hours", "corpus_midis", "pedal_spans", "pedal_share", "pedal_statistics", "note_statistics",
           "MAX_LENGTH_MISMATCH_S"]

log = logging.getLogger("diffroll.corpus.segments")

CACHE_VERSION = 2  # 2: rolls of several channels, stored as float16
MAX_LENGTH_MISMATCH_S = 5.0  # audio and MIDI lengths may differ by this much (silence, releases)
MEL_BATCH = 16  # segments per mel computation


def default_cache_dir() -> Path:
    return paths.cache_dir() / "segments"


# --- one piece ----------------------------------------------------------------------------------

def _checked_notes(piece: Piece, audio_seconds: float, max_mismatch: float, sustain: bool = True) -> list[Note]:
    notes = midi_notes(piece.midi, sustain=sustain)
    if not notes:
        raise MidiError(f"{piece.midi}: MIDI has no notes between A0 and C8")
    midi_end = max(n.offset for n in notes)
    if abs(audio_seconds - midi_end) > max_mismatch:
        raise DataError(f"{piece.name}: audio {piece.audio} lasts {audio_seconds:.1f} s but its MIDI "
                        f"{piece.midi} ends at {midi_end:.1f} s (more than {max_mismatch:g} s apart: "
                        "wrong pairing or truncated file?)")
    return notes


def load_piece(piece: Piece, cfg: Config, max_length_mismatch_s: float = MAX_LENGTH_MISMATCH_S
               ) -> tuple[np.ndarray, list[Note]]:
    """Whole-piece evaluation input: (audio float32 at cfg's rate, reference notes (on, off, pitch)
    with the sustain pedal applied when :attr:`RollConfig.sustain`). Raises AudioError / MidiError /
    DataError for bad input."""
    audio = load_audio(piece.audio, cfg.audio.sample_rate)
    return audio, _checked_notes(piece, len(audio) / cfg.audio.sample_rate, max_length_mismatch_s,
                                 cfg.roll.sustain)


class LoadedPiece(NamedTuple):
    """A piece in memory, as evaluation and the notebooks use it: its name, its group (soundfont,
    year or piano), the mono wave at the config's rate and the reference notes."""

    name: str
    group: str
    wave: np.ndarray
    notes: list[Note]


def cut_piece(wave: np.ndarray, ref: list[Note], max_seconds: float | None, sr: int) -> tuple[np.ndarray, list[Note]]:
    """A piece's first ``max_seconds`` (None: all of it): its audio and its reference notes
    (:func:`~diffroll.core.roll.clip_notes`). The one way a piece is cut short for evaluation."""
    if max_seconds is None:
        return wave, ref
    return wave[: int(max_seconds * sr)], clip_notes(ref, max_seconds)


def load_pieces(root: str | Path, split: str = "test", soundfonts=None, n: int | None = None,
                max_seconds: float | None = None, *, cfg: Config, dataset: str = "offline",
                spread: bool = False) -> list[LoadedPiece]:
    """The first ``n`` pieces of a split (:func:`list_pieces`; ``soundfonts`` picks offline
    renders), or with ``spread`` ``n`` pieces spread evenly over the split, loaded with
    :func:`load_piece` (``cfg``'s sample rate and sustain setting), each cut to its first
    ``max_seconds`` (:func:`cut_piece`). The one way evaluation selects pieces."""
    pieces = list_pieces(root, dataset=dataset, split=split, soundfonts=soundfonts)
    if spread and n is not None:
        step = max(len(pieces) / max(n, 1), 1.0)
        pieces = [pieces[int(i * step)] for i in range(min(n, len(pieces)))]
    out = []
    for piece in pieces[:n]:
        wave, notes = cut_piece(*load_piece(piece, cfg), max_seconds, cfg.audio.sample_rate)
        out.append(LoadedPiece(piece.name, piece.group, wave, notes))
    return out


def _n_segments(length: int, size: int) -> int:
    """Whole segments, plus the tail padded with zeros if it is at least half a segment."""
    full, rest = divmod(length, size)
    return full + (1 if rest >= size / 2 else 0)


def _check_audio_cfg(audio_cfg: AudioConfig) -> None:
    if audio_cfg.segment_samples % audio_cfg.hop_length:
        raise ValueError(f"segment_samples ({audio_cfg.segment_samples}) must be a multiple of hop_length "
                         f"({audio_cfg.hop_length}) so that segment frames line up with roll frames")


def piece_segments(piece: Piece, cfg: Config, frontend: Frontend,
                   max_length_mismatch_s: float = MAX_LENGTH_MISMATCH_S, device: str = "cpu"
                   ) -> tuple[np.ndarray, np.ndarray]:
    """A piece cut into (n, 229, F) float16 mels (the front-end's rows) and (n, R, F) float16 rolls.

    Segment i holds samples [i·S, (i+1)·S) and roll frames [i·F, (i+1)·F); frame j of a mel is
    centred on sample j·hop, the time at which roll frame j starts (:mod:`diffroll.core.roll`).
    """
    a = cfg.audio
    audio, notes = load_piece(piece, cfg, max_length_mismatch_s)
    n = _n_segments(len(audio), a.segment_samples)
    if n == 0:
        raise DataError(f"{piece.name}: {len(audio) / a.sample_rate:.1f} s of audio is shorter than half "
                        f"a segment ({a.segment_samples / a.sample_rate / 2:.1f} s)")
    frames = a.segment_frames
    audio = np.pad(audio, (0, max(0, n * a.segment_samples - len(audio))))[: n * a.segment_samples]
    roll = piece_roll(notes, cfg.roll, a.fps, n * frames, piece.midi)
    rolls = roll.reshape(len(roll), n, frames).transpose(1, 0, 2)
    waves = torch.from_numpy(audio.reshape(n, a.segment_samples))
    with torch.no_grad():
        mels = torch.cat([frontend(waves[i:i + MEL_BATCH].to(device)).cpu() for i in range(0, n, MEL_BATCH)])
    return mels.numpy().astype(np.float16), np.ascontiguousarray(rolls, dtype=np.float16)


def piece_roll(notes: list[Note], roll_cfg: RollConfig, fps: float, n_frames: int, midi=None) -> np.ndarray:
    """The training target x_roll of a piece: (R, n_frames) with the config's channels (a ``pedal``
    channel reads the sustain pedal of ``midi``, the piece's MIDI file or PrettyMIDI)."""
    pedal = None
    if "pedal" in roll_cfg.roll_channels:
        if midi is None:
            raise ValueError("a roll with a 'pedal' channel needs the piece's MIDI (midi=) for its pedal")
        pedal = pedal_spans(midi)
    return notes_to_roll(notes, fps=fps, n_frames=n_frames, channels=roll_cfg.roll_channels,
                         onset_frames=roll_cfg.onset_frames, pedal=pedal)


def audio_settings(audio_cfg: AudioConfig) -> dict:
    """The audio settings that shape a cached segment: all of them, less the HCQT's when the front-end
    is the mel (so the mel caches kept their keys when the HCQT settings came)."""
    return {k: v for k, v in vars(audio_cfg).items()
            if audio_cfg.frontend == "hcqt" or k not in ("frontend", *HCQT_SETTINGS)}


def roll_settings(roll_cfg: RollConfig) -> dict:
    """The roll settings that shape a cached segment (decoding and loss settings do not)."""
    return {k: getattr(roll_cfg, k) for k in ("roll_channels", "sustain", "onset_frames")}


def roll_rows(cfg: Config) -> int:
    """R: rows of x_roll (88 per roll channel)."""
    return N_KEYS * len(cfg.roll.roll_channels)


def roll_segments(midi, cfg: Config) -> np.ndarray:
    """A MIDI file cut into (n, R, F) float16 roll segments (the same tail rule as audio)."""
    notes = midi_notes(midi, sustain=cfg.roll.sustain)
    if not notes:
        raise MidiError(f"{midi}: MIDI has no notes between A0 and C8")
    frames = cfg.audio.segment_frames
    total = int(np.ceil(max(n.offset for n in notes) * cfg.audio.fps))
    n = _n_segments(total, frames)
    if n == 0:
        raise DataError(f"{midi}: {total} frames of notes is shorter than half a segment ({frames} frames)")
    roll = piece_roll(notes, cfg.roll, cfg.audio.fps, n * frames, midi)
    return np.ascontiguousarray(roll.reshape(len(roll), n, frames).transpose(1, 0, 2), dtype=np.float16)


# --- the cache ----------------------------------------------------------------------------------

def _stamp(path: Path) -> list:
    st = Path(path).stat()
    return [str(path), st.st_size, st.st_mtime_ns]


def cache_key(kind: str, settings: dict, items: list) -> str:
    """Hash of the cache format, the settings that shape a segment and the inputs (paths, sizes,
    modification times)."""
    blob = json.dumps([CACHE_VERSION, kind, settings, items], sort_keys=True, default=str)
    return hashlib.sha256(blob.encode()).hexdigest()[:16]


def _open(directory: Path) -> datasets.Dataset:
    return datasets.Dataset.from_file(str(directory / "data.arrow")).with_format("torch")


def _cached(kind: str, key: str, cache_dir, build) -> datasets.Dataset:
    """Open ``<cache_dir>/<kind>-<key>`` or build it with ``build(writer) -> (n, skipped)``."""
    directory = Path(cache_dir if cache_dir is not None else default_cache_dir()) / f"{kind}-{key}"
    if (directory / "info.json").is_file():
        log.info("reusing cached %s at %s", kind, directory)
        return _open(directory)
    log.info("building %s cache at %s", kind, directory)
    tmp = directory.with_name(directory.name + f".tmp{os.getpid()}")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    try:
        n, skipped, features = build(tmp / "data.arrow")
        if n == 0:
            reasons = "; ".join(f"{k}: {v}" for k, v in list(skipped.items())[:5])
            raise DataError(f"no {kind} could be made from {len(skipped)} inputs: {reasons}")
        (tmp / "info.json").write_text(json.dumps({"kind": kind, "key": key, "segments": n,
                                                   "skipped": skipped, "features": str(features)}, indent=1))
        try:
            tmp.rename(directory)
        except OSError:  # another process (a second trainer) finished the same cache first
            if not (directory / "info.json").is_file():
                raise
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return _open(directory)


def _report_skips(kind: str, skipped: dict, total: int) -> None:
    if skipped:
        log.warning("%s: skipped %d of %d inputs (reasons in the cache's info.json)", kind, len(skipped), total)


def segment_dataset(pieces: list[Piece], cfg: Config, cache_dir=None,
                    max_length_mismatch_s: float = MAX_LENGTH_MISMATCH_S, device: str = "cpu") -> datasets.Dataset:
    """Paired segments: columns ``mel`` (229, F), ``roll`` (R, F), ``piece`` (the
    :attr:`Piece.key` ``name@group``), as torch tensors from a memory-mapped Arrow file (both
    stored as float16; the trainer reads them as float32).

    Pieces that cannot be used (unreadable audio or MIDI, MIDI without notes, lengths more than
    ``max_length_mismatch_s`` apart) are skipped with a warning; if none is left, DataError.
    ``device`` only says where mels are computed when the cache is built. ``cache_dir``
    defaults to ``<repo>/.cache/segments``.
    """
    if not pieces:
        raise DataError("segment_dataset got no pieces")
    _check_audio_cfg(cfg.audio)
    a = cfg.audio
    features = datasets.Features({
        "mel": datasets.Array2D((a.condition_rows, a.segment_frames), "float16"),  # the front-end's c
        "roll": datasets.Array2D((roll_rows(cfg), a.segment_frames), "float16"),
        "piece": datasets.Value("string"),
    })
    items = [[p.name, p.group, p.split] + _stamp(p.audio) + _stamp(p.midi) if p.audio.exists() and p.midi.exists()
             else [p.name, p.group, str(p.audio), str(p.midi)] for p in pieces]

    def build(path: Path):
        frontend = make_frontend(a).to(device)
        skipped, n = {}, 0
        with ArrowWriter(features=features, path=str(path)) as writer:
            for p in tqdm(pieces, desc="segments"):
                try:
                    mels, rolls = piece_segments(p, cfg, frontend, max_length_mismatch_s, device)
                except (AudioError, MidiError, DataError) as err:
                    skipped[p.key] = str(err)
                    log.warning("skipping %s: %s", p.name, err)
                    continue
                writer.write_batch({"mel": list(mels), "roll": list(rolls), "piece": [p.key] * len(mels)})
                n += len(mels)
            writer.finalize()
        _report_skips("segments", skipped, len(pieces))
        return n, skipped, features

    settings = {**audio_settings(a), **roll_settings(cfg.roll)}
    return _cached("segments", cache_key("segments", settings, items), cache_dir, build)


def roll_dataset(midi_paths, cfg: Config, cache_dir=None) -> datasets.Dataset:
    """Unpaired rolls for pretraining (§4.2): column ``roll`` (R, F) float16 only."""
    midi_paths = [Path(m) for m in midi_paths]
    if not midi_paths:
        raise DataError("roll_dataset got no MIDI files")
    _check_audio_cfg(cfg.audio)
    frames = cfg.audio.segment_frames
    features = datasets.Features({"roll": datasets.Array2D((roll_rows(cfg), frames), "float16")})
    items = [_stamp(m) if m.exists() else [str(m)] for m in midi_paths]

    def build(path: Path):
        skipped, n = {}, 0
        with ArrowWriter(features=features, path=str(path)) as writer:
            for m in tqdm(midi_paths, desc="rolls"):
                try:
                    rolls = roll_segments(m, cfg)
                except (MidiError, DataError) as err:
                    skipped[str(m)] = str(err)
                    log.warning("skipping %s: %s", m, err)
                    continue
                writer.write_batch({"roll": list(rolls)})
                n += len(rolls)
            writer.finalize()
        _report_skips("rolls", skipped, len(midi_paths))
        return n, skipped, features

    settings = {"fps": cfg.audio.fps, "segment_frames": frames, **roll_settings(cfg.roll)}
    return _cached("rolls", cache_key("rolls", settings, items), cache_dir, build)


class SegmentTensors:
    """A segment dataset (:func:`segment_dataset` / :func:`roll_dataset`) read into memory once as
    float16 tensors (on ``device``, e.g. a GPU), indexed like the dataset: ``ds[indices]`` ->
    {"mel": (B, n_mels, F), "roll": (B, R, F)} float32. Reading a batch from the memory-mapped
    Arrow file costs ~5 ms per segment; from here, nothing (cpu scale: 1.8 GB for 22 h)."""

    def __init__(self, dataset, device: str = "cpu"):
        table = dataset.data.table if hasattr(dataset.data, "table") else dataset.data
        self.columns: dict[str, torch.Tensor] = {}
        for name in ("mel", "roll"):
            if name not in table.column_names:
                continue
            column = table.column(name).combine_chunks()
            values = column.storage.flatten().flatten().to_numpy(zero_copy_only=False)  # Array2D -> flat
            shape = (len(column),) + tuple(dataset.features[name].shape)
            self.columns[name] = torch.from_numpy(np.array(values, dtype=np.float16).reshape(shape)).to(device)

    def __len__(self) -> int:
        return len(self.columns["roll"])

    def __getitem__(self, indices) -> dict[str, torch.Tensor]:
        idx = torch.as_tensor(indices, device=self.columns["roll"].device)
        return {name: column[idx].float() for name, column in self.columns.items()}


# --- what a training run reads ------------------------------------------------------------------

def training_data(cfg: Config, root: str | Path | None = None, val_pieces: int = 4, cache_dir=None,
                  workers: int = 2, device: str = "cpu", build: bool = True) -> dict:
    """Datasets for a run of ``cfg.data.dataset``: paired train/validation segments (cached) and a
    few whole validation pieces (:class:`LoadedPiece`) for note F1 during training.

    The offline corpus's train and validation renders are built at ``root`` (default
    ``data/offline-<scale>``) when missing (``build=False``: only read). ``device`` computes the
    mels of a new cache (a GPU makes hours of audio a matter of seconds) and, with
    :attr:`TrainConfig.in_memory`, holds the training segments (:class:`SegmentTensors`).
    """
    dataset = cfg.data.dataset
    if dataset == "offline":
        root = Path(root) if root is not None else paths.data_dir(f"offline-{cfg.scale}")
        if build:
            build_offline_corpus(root, cfg, workers=workers, splits=("train", "validation"))
    elif root is None and cfg.data.path is None:
        raise ValueError(f"dataset {dataset!r} needs a path (data_path / DataConfig.path)")
    root = Path(root if root is not None else cfg.data.path)
    train = list_pieces(root, dataset=dataset, split="train")
    val = list_pieces(root, dataset=dataset, split="validation")
    paired = segment_dataset(train, cfg, cache_dir, device=device)
    out = {"root": root, "train_pieces": train, "val_pieces": val,
           "paired": SegmentTensors(paired, device) if cfg.train.in_memory else paired,
           "val_segments": segment_dataset(val, cfg, cache_dir, device=device) if val else None}
    step = max(1, len(val) // max(val_pieces, 1))
    out["val_waves"] = [LoadedPiece(p.name, p.group, *load_piece(p, cfg)) for p in val[::step][:val_pieces]]
    return out


# --- statistics (for the data notebook) ---------------------------------------------------------

def summarize(pieces: list[Piece]) -> list[dict]:
    """One row per (split, group): pieces, hours of audio, notes (each MIDI counted per render)."""
    rows: dict[tuple, dict] = {}
    for p in pieces:
        row = rows.setdefault((p.split, p.group), {"split": p.split, "group": p.group, "pieces": 0,
                                                   "hours": 0.0, "notes": 0})
        row["pieces"] += 1
        row["hours"] += sf.info(str(p.audio)).duration / 3600
        row["notes"] += len(_notes_of(p.midi))
    return [rows[k] for k in sorted(rows)]


def pitch_counts(pieces: list[Piece]) -> np.ndarray:
    """Notes per key (88,), each distinct MIDI file counted once."""
    counts = np.zeros(N_KEYS, dtype=np.int64)
    for midi in sorted({p.midi for p in pieces}):
        for note in _notes_of(midi):
            counts[note.pitch - LOWEST_MIDI] += 1
    return counts


@functools.lru_cache(maxsize=4096)
def _notes_of(midi: Path) -> list[Note]:
    return midi_notes(midi)


def manifest_hours(root: str | Path, by: Sequence[str] = ("split", "source")) -> list[dict]:
    """Renders and hours of audio of the offline corpus per group of ``manifest.csv`` columns
    ``by`` (split, source, soundfont, timbre, ...), sorted by group."""
    rows: dict[tuple, dict] = {}
    for r in read_manifest(root):
        key = tuple(r[b] for b in by)
        row = rows.setdefault(key, {**dict(zip(by, key)), "renders": 0, "hours": 0.0})
        row["renders"] += 1
        row["hours"] += float(r["seconds"]) / 3600
    return [rows[k] for k in sorted(rows)]


def corpus_midis(root: str | Path, by: str = "source", splits: Sequence[str] | None = None) -> dict[str, list[Path]]:
    """The distinct performance MIDI files of the offline corpus per value of the manifest
    column ``by`` (a performance rendered in several timbres counts once), optionally of some
    ``splits`` only."""
    out: dict[str, set[Path]] = {}
    for r in read_manifest(root):
        if splits is None or r["split"] in splits:
            out.setdefault(r[by], set()).add(Path(root) / r["midi"])
    return {k: sorted(v) for k, v in sorted(out.items())}


def pedal_spans(midi) -> list[tuple[float, float]]:
    """(down, up) seconds of the sustain pedal (CC 64 >= 64) over all instruments of a MIDI file
    (or PrettyMIDI), overlapping spans merged; a pedal still down at the end is released at the
    end of the MIDI."""
    return list(_pedal_of(midi)[1])


def pedal_share(midi) -> float:
    """Share of a MIDI file's duration with the sustain pedal down."""
    end, spans = _pedal_of(midi)
    return sum(up - down for down, up in spans) / max(end, 1e-9)


def pedal_statistics(midis_by_group: dict[str, Sequence[Path]]) -> list[dict]:
    """Sustain pedal use per group of MIDI files (e.g. :func:`corpus_midis` per source): the
    share of performances with any pedal, the share of time the pedal is down, and pedal
    presses (each down-up cycle is one change) per minute of music."""
    out = []
    for group, midis in midis_by_group.items():
        seconds = down = presses = pedalled = 0.0
        for midi in midis:
            end, spans = _pedal_of(midi)
            seconds += end
            down += sum(up - dn for dn, up in spans)
            presses += len(spans)
            pedalled += bool(spans)
        out.append({"group": group, "performances": len(midis), "minutes": seconds / 60,
                    "pedalled share": pedalled / max(len(midis), 1), "pedal-down share": down / max(seconds, 1e-9),
                    "presses per minute": presses / max(seconds / 60, 1e-9)})
    return out


def _pedal_of(midi) -> tuple[float, tuple[tuple[float, float], ...]]:
    """(end time, merged pedal spans) of a PrettyMIDI, or of a file (kept: files are read often)."""
    if not isinstance(midi, pretty_midi.PrettyMIDI):
        return _file_pedal(Path(midi))
    return merged_sustain_spans(midi)


@functools.lru_cache(maxsize=8192)
def _file_pedal(midi: Path) -> tuple[float, tuple[tuple[float, float], ...]]:
    return _pedal_of(load_midi(midi))


def note_statistics(notes_lists: Sequence[Sequence[Note]], fps: float = 31.25,
                    seconds: Sequence[float] | None = None) -> dict:
    """Statistics of several lists of notes (pieces, or rolls read back with
    :func:`diffroll.transcription.decoding.decode_roll`): the polyphony of every frame (keys sounding), the pitch and
    length (s) of every note, notes per second, and their means. ``seconds``: each list's
    duration (default: up to its last offset)."""
    poly, pitches, lengths, total = [], [], [], 0.0
    for i, notes in enumerate(notes_lists):
        length = seconds[i] if seconds is not None else max((n[1] for n in notes), default=0.0)
        frames = max(int(round(length * fps)), 1)
        poly.append(notes_to_roll(notes, fps, n_frames=frames).sum(axis=0))
        pitches += [int(n[2]) for n in notes]
        lengths += [float(n[1] - n[0]) for n in notes]
        total += length
    polyphony = np.concatenate(poly) if poly else np.zeros(0)
    return {"polyphony": polyphony, "pitches": np.asarray(pitches, dtype=int), "lengths": np.asarray(lengths),
            "notes_per_second": len(pitches) / max(total, 1e-9),
            "mean_polyphony": float(polyphony.mean()) if polyphony.size else 0.0,
            "mean_pitch": float(np.mean(pitches)) if pitches else float("nan"),
            "median_length": float(np.median(lengths)) if lengths else float("nan")}
