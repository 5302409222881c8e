"""Which pieces a dataset holds: the offline corpus, MAESTRO and MAPS, each in its own layout.

- MAESTRO v3.0.0 / v2.0.0 (§4): ``maestro-v*.csv`` (or ``.json``) at the root, year folders
  with ``.wav`` + ``.midi``; the split is the metadata's ``split`` column; group = year.
- MAPS (§4.2): ``<group>/MUS/MAPS_MUS-<piece>_<group>.wav/.mid/.txt``; train on the seven
  synthesised pianos, test on the two Disklavier groups ENSTDkCl and ENSTDkAm. As in the paper
  (following [37]), ``remove_overlap`` drops every training file whose piece is also in the test
  groups, which leaves 139 of the 210 training files. MAPS has no validation split: ours is the
  training files whose piece name falls in a fixed 10 % hash bucket (they stay in train too,
  so the validation loss measures fit, not generalisation).
- offline: ``manifest.csv`` written by :func:`diffroll.corpus.offline.build_offline_corpus`;
  group = soundfont.
"""
from __future__ import annotations

import csv
import hashlib
import json
import logging
import re
from dataclasses import dataclass
from pathlib import Path

log = logging.getLogger("diffroll.corpus.segments")

SPLITS = ("train", "validation", "test", "piano_test")  # piano_test: the offline corpus's piano test split
MANIFEST = "manifest.csv"  # of the offline corpus (see diffroll.corpus.offline)
MANIFEST_COLUMNS = ("piece", "split", "soundfont", "audio", "midi", "seconds", "source", "base",
                    "copy", "program", "detune", "timbre")
DATASETS = ("offline", "maestro", "maps")
MAESTRO_VERSIONS = ("v3.0.0", "v2.0.0")
MAPS_TRAIN_GROUPS = ("AkPnBcht", "AkPnBsdf", "AkPnCGdD", "AkPnStgb", "SptkBGAm", "SptkBGCl", "StbgTGd2")
MAPS_TEST_GROUPS = ("ENSTDkCl", "ENSTDkAm")
_MAPS_NAME = re.compile(r"^MAPS_MUS-(?P<piece>.+)_(?P<group>[A-Za-z0-9]+)$")


class DataError(ValueError):
    """A dataset that cannot be used as asked: wrong layout, or nothing left to load."""


@dataclass(frozen=True)
class Piece:
    """One audio recording and its MIDI. ``group``: the soundfont (offline), year (MAESTRO) or
    piano (MAPS). Offline names repeat across soundfonts; (name, group) is unique."""

    name: str
    audio: Path
    midi: Path
    split: str
    group: str

    @property
    def key(self) -> str:
        """``name@group``: unique within a dataset."""
        return f"{self.name}@{self.group}"


def stable_hash(text: str) -> int:
    """A hash that is the same in every process and on every machine (unlike ``hash``)."""
    return int.from_bytes(hashlib.sha256(text.encode()).digest()[:8], "big")


def split_of(name: str) -> str:
    """train / validation / test (80/10/10) from a stable hash of a score's (or MAPS piece's) name."""
    bucket = stable_hash(name) % 100
    return "train" if bucket < 80 else "validation" if bucket < 90 else "test"


def _check_split(split: str) -> None:
    if split not in SPLITS:
        raise ValueError(f"unknown split {split!r}; choose one of {SPLITS}")


# --- offline ------------------------------------------------------------------------------------

def read_manifest(root) -> list[dict]:
    with open(Path(root) / MANIFEST, newline="") as f:
        return list(csv.DictReader(f))


def offline_pieces(root, split: str, soundfonts=None) -> list[Piece]:
    """Renders of the offline corpus. ``soundfonts=None``: the training soundfonts ("seen"
    timbres) for train/validation, every soundfont (seen + unseen) for test."""
    root = Path(root)
    if not (root / MANIFEST).is_file():
        raise DataError(f"{root} has no {MANIFEST}: build the offline corpus first "
                        "(diffroll.corpus.segments.build_offline_corpus, data_scripts/build_offline_corpus.py "
                        "or notebooks/01_data_prep.ipynb)")
    rows = read_manifest(root)
    available = sorted({r["soundfont"] for r in rows})
    if soundfonts is None:
        wanted = (set(available) if split in ("test", "piano_test")
                  else {r["soundfont"] for r in rows if r["timbre"] == "seen"})
    else:
        wanted = {soundfonts} if isinstance(soundfonts, str) else set(soundfonts)
        missing = wanted - set(available)
        if missing:
            raise DataError(f"{root} has no renders with soundfont(s) {sorted(missing)}; it has {available}")
    return [Piece(r["piece"], root / r["audio"], root / r["midi"], r["split"], r["soundfont"])
            for r in rows if r["split"] == split and r["soundfont"] in wanted]


# --- MAESTRO ------------------------------------------------------------------------------------

def maestro_metadata(root) -> list[dict]:
    """Rows of ``maestro-v3.0.0.csv`` / ``.json`` (or v2.0.0) at ``root``."""
    root = Path(root)
    if not root.is_dir():
        raise DataError(f"MAESTRO root {root} is not a directory")
    for version in MAESTRO_VERSIONS:
        csv_path, json_path = root / f"maestro-{version}.csv", root / f"maestro-{version}.json"
        if csv_path.is_file():
            with open(csv_path, newline="", encoding="utf-8") as f:
                return list(csv.DictReader(f))
        if json_path.is_file():
            data = json.loads(json_path.read_text(encoding="utf-8"))
            if isinstance(data, list):  # v2: a list of records
                return data
            columns = list(data)  # v3: {column: {row index: value}}
            return [{c: data[c][i] for c in columns} for i in data[columns[0]]]
    nested = sorted(p.name for p in root.glob("maestro-v*") if p.is_dir())
    hint = f" (it contains {nested}: point the path there)" if nested else ""
    raise DataError(f"{root} is not a MAESTRO root: no maestro-v3.0.0.csv/.json or maestro-v2.0.0.csv/.json "
                    f"in it{hint}. Expected the official layout: the metadata file next to year folders "
                    "(2004/, 2006/, ...) holding .wav and .midi files.")


def maestro_pieces(root, split: str) -> list[Piece]:
    root = Path(root)
    rows = maestro_metadata(root)
    required = {"split", "year", "midi_filename", "audio_filename"}
    if rows and not required <= set(rows[0]):
        raise DataError(f"{root}: the MAESTRO metadata lacks columns {sorted(required - set(rows[0]))}")
    pieces, missing = [], 0
    for r in rows:
        if r["split"] != split:
            continue
        audio, midi = root / r["audio_filename"], root / r["midi_filename"]
        if not (audio.is_file() and midi.is_file()):
            missing += 1
            log.warning("MAESTRO: skipping %s: %s missing", r["midi_filename"],
                        "audio" if not audio.is_file() else "MIDI")
            continue
        pieces.append(Piece(Path(r["midi_filename"]).stem, audio, midi, split, str(r["year"])))
    if missing:
        log.warning("MAESTRO %s: skipped %d of %d pieces whose files are missing", split, missing,
                    missing + len(pieces))
    return pieces


# --- MAPS ---------------------------------------------------------------------------------------

def maps_pieces(root, split: str, remove_overlap: bool = True) -> list[Piece]:
    root = Path(root)
    if not root.is_dir():
        raise DataError(f"MAPS root {root} is not a directory")
    found: list[tuple[str, str, Path]] = []  # (piece, group, wav)
    for wav in sorted(root.rglob("MAPS_MUS-*.wav")):
        m = _MAPS_NAME.match(wav.stem)
        if m and m["group"] in MAPS_TRAIN_GROUPS + MAPS_TEST_GROUPS:
            found.append((m["piece"], m["group"], wav))
    if not found:
        raise DataError(f"{root} is not a MAPS root: no <group>/MUS/MAPS_MUS-<piece>_<group>.wav files "
                        f"under it for the groups {MAPS_TRAIN_GROUPS + MAPS_TEST_GROUPS}")
    test_pieces = {piece for piece, group, _ in found if group in MAPS_TEST_GROUPS}
    pieces, missing, overlap = [], 0, 0
    for piece, group, wav in found:
        in_test = group in MAPS_TEST_GROUPS
        if split == "test" and not in_test or split != "test" and in_test:
            continue
        if split != "test" and remove_overlap and piece in test_pieces:
            overlap += 1
            continue
        if split == "validation" and split_of(piece) != "validation":
            continue
        midi = wav.with_suffix(".mid")
        if not midi.is_file():
            missing += 1
            log.warning("MAPS: skipping %s: no %s next to it", wav.name, midi.name)
            continue
        pieces.append(Piece(wav.stem, wav, midi, split, group))
    if overlap:
        log.info("MAPS %s: removed %d files whose piece is also in the test groups", split, overlap)
    if missing:
        log.warning("MAPS %s: skipped %d files without MIDI", split, missing)
    return pieces


def list_pieces(root, dataset: str = "offline", split: str = "train", soundfonts=None,
                remove_overlap: bool = True) -> list[Piece]:
    """The pieces of one split of a dataset; raises :class:`DataError` (with the reason) rather
    than return an empty list."""
    _check_split(split)
    if dataset == "offline":
        pieces = offline_pieces(root, split, soundfonts)
    elif dataset == "maestro":
        pieces = maestro_pieces(root, split)
    elif dataset == "maps":
        pieces = maps_pieces(root, split, remove_overlap)
    else:
        raise ValueError(f"unknown dataset {dataset!r}; choose one of {DATASETS}")
    if not pieces:
        raise DataError(f"no {split} pieces in the {dataset} dataset at {root} "
                        "(see the warnings above for files that were skipped)")
    return pieces
