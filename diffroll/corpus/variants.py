"""Training-audio variants for per-effect comparisons: the corpus's own training renders, rendered
again with one effect turned off (issue 27, item 2; issue 28).

Corpus version 5 added a room and microphone (:mod:`diffroll.corpus.room`) and four real-piano
effects to the procedural piano (:mod:`diffroll.corpus.pianosynth`); version 6 the soundboard's weak
bass (:mod:`diffroll.corpus.soundboard`). To tell which of them helps,
:func:`build_variant_corpus` writes a small corpus root beside the source corpus:

1. the training performances that the source corpus rendered in the procedural piano, with every
   render of them (:func:`variant_rows`; the same rows for every variant);
2. per render, the file of the source corpus when the variant does not change it (a symbolic link),
   or a new render with the variant's settings (:func:`variant_job`, the source's job seed,
   program, detune and soundboard: only the switched-off effect differs);
3. a ``manifest.csv`` of those training rows (no validation: the comparison scores every variant on
   the source corpus's validation split and the real notes).

A variant is a setting (:data:`VARIANTS`), so a comparison names what it turned off.
"""
from __future__ import annotations

import csv
import dataclasses
import json
import os
from dataclasses import dataclass, field
from pathlib import Path

from .jobs import run_jobs
from .loaders import MANIFEST, MANIFEST_COLUMNS, DataError, read_manifest, stable_hash
from .offline import PROCEDURAL, read_corpus_info, render_job
from .soundboard import SoundboardSettings
from .synthparams import SynthParams


@dataclass(frozen=True)
class Variant:
    """One way to render the training audio.

    - ``synth``: :class:`SynthParams` values that replace the procedural piano's per-piece draw.
    - ``room_probability``: replaces :attr:`RoomSettings.probability` (None: the corpus's 0.5).
    - ``soundboard``: :class:`SoundboardSettings` values that replace the corpus's (None: the
      source corpus's own, from its ``corpus.json``; none for a corpus before version 6).
    """

    name: str
    about: str
    synth: dict = field(default_factory=dict)
    room_probability: float | None = None
    soundboard: dict | None = None

    def __post_init__(self):
        unknown = sorted(set(self.synth) - {f.name for f in dataclasses.fields(SynthParams)})
        if unknown:
            raise ValueError(f"variant {self.name!r}: {unknown} are not SynthParams fields")
        if self.room_probability is not None and not 0 <= self.room_probability <= 1:
            raise ValueError(f"variant {self.name!r}: room_probability must be in [0, 1]")
        if self.soundboard is not None:
            SoundboardSettings(**self.soundboard)  # raises on unknown names and bad values

    def changes(self, soundfont: str) -> bool:
        """Whether this variant renders ``soundfont``'s training audio differently from the corpus."""
        return (self.room_probability is not None or (bool(self.synth) and soundfont == PROCEDURAL)
                or (self.soundboard is not None and soundfont in SoundboardSettings(**self.soundboard).timbres))


VARIANTS: dict[str, Variant] = {v.name: v for v in (
    Variant("all", "the corpus as built (version 6): room and microphone, every piano effect, the soundboard's weak bass"),
    Variant("no_room", "no room and microphone: every augmented render takes the older chain "
                       "(EQ, synthetic reverb, compressor)", room_probability=0.0),
    Variant("no_stretch", "procedural piano in equal temperament (no Railsback stretch)",
            synth={"stretch_bass_cents": 0.0, "stretch_treble_cents": 0.0}),
    Variant("low_treble_b", "procedural piano's treble inharmonicity as before version 5 (B = 2e-3 at C8)",
            synth={"treble_inharmonicity": 2e-3}),
    Variant("no_sympathetic", "procedural piano without sympathetic resonance under the pedal",
            synth={"sympathetic_level": 0.0}),
    Variant("no_noises", "procedural piano without key, damper and pedal noises",
            synth={"key_noise_level": 0.0, "damper_noise_level": 0.0, "pedal_noise_level": 0.0}),
    Variant("no_soundboard", "bass fundamentals of TimGM6mb, csound and the procedural piano at full strength "
                             "(no soundboard high-pass, as before version 6)", soundboard={"probability": 0.0}),
)}


def variant_rows(source_root: str | Path) -> list[dict]:
    """The training rows of every performance the source corpus rendered in the procedural piano
    (all timbres of each), in manifest order: the audio every variant is built from."""
    rows = [r for r in read_manifest(source_root) if r["split"] == "train"]
    chosen = {r["piece"] for r in rows if r["soundfont"] == PROCEDURAL}
    if not chosen:
        raise DataError(f"{source_root} has no training render in the procedural piano; a variant corpus "
                        "compares the procedural piano's effects, so build the corpus with it")
    return [r for r in rows if r["piece"] in chosen]


def variant_job(row: dict, source_root: Path, variant_root: Path, variant: Variant, seed: int,
                sample_rate: int, soundboard: dict | None = None) -> dict:
    """The render job of one manifest row under ``variant``: the source corpus's job (seed from the
    corpus seed and ``piece@soundfont``, its program, detune, ``soundboard`` and augmentation) plus the
    variant's settings, writing into ``variant_root``."""
    job = {"piece": row["piece"], "soundfont": row["soundfont"], "midi": str(source_root / row["midi"]),
           "audio": str(variant_root / row["audio"]), "program": int(row["program"]),
           "detune": float(row["detune"]), "augment": True,
           "seed": [seed, stable_hash(f"{row['piece']}@{row['soundfont']}")], "sample_rate": sample_rate}
    if variant.synth and row["soundfont"] == PROCEDURAL:
        job["synth"] = dict(variant.synth)
    if variant.room_probability is not None:
        job["room_probability"] = variant.room_probability
    soundboard = soundboard if variant.soundboard is None else {**(soundboard or {}), **variant.soundboard}
    if soundboard is not None:
        job["soundboard"] = dict(soundboard)
    return job


def build_variant_corpus(source_root: str | Path, variant_root: str | Path, variant: Variant | str,
                         workers: int = 2) -> Path:
    """Write ``variant_root`` (renders, ``midi`` linked to the source's, ``manifest.csv``, ``variant.json``)
    and return its manifest path. Rerunning keeps the renders already there; a root made for
    another variant or source is refused."""
    variant = VARIANTS[variant] if isinstance(variant, str) else variant
    source_root, variant_root = Path(source_root).resolve(), Path(variant_root)
    info = read_corpus_info(source_root)
    settings, soundboard = info.get("settings"), info.get("recipes", {}).get("soundboard")
    if not settings:
        raise DataError(f"{source_root} has no corpus.json with its settings; build the corpus first")
    about = {"variant": dataclasses.asdict(variant), "source": str(source_root), "source_settings": settings}
    stamp = variant_root / "variant.json"
    if stamp.exists() and json.loads(stamp.read_text()) != about:
        raise DataError(f"{variant_root} holds another variant or source ({stamp}); choose another root or delete it")
    variant_root.mkdir(parents=True, exist_ok=True)
    stamp.write_text(json.dumps(about, indent=1))
    midi = variant_root / "midi"
    if not midi.exists():
        midi.symlink_to(source_root / "midi", target_is_directory=True)

    rows = variant_rows(source_root)
    jobs = []
    for row in rows:
        out = variant_root / row["audio"]
        if variant.changes(row["soundfont"]):
            jobs.append(variant_job(row, source_root, variant_root, variant, settings["seed"], settings["sample_rate"],
                                    soundboard))
        elif not out.exists():
            out.parent.mkdir(parents=True, exist_ok=True)
            os.symlink(source_root / row["audio"], out)
    failed = [f"{piece}@{font}: {reason}" for piece, font, _, reason in
              run_jobs(render_job, jobs, workers, f"render {variant.name}") if reason]
    if failed:
        raise DataError(f"{len(failed)} renders of variant {variant.name!r} failed, e.g. {failed[0]}")
    manifest = variant_root / MANIFEST
    with open(manifest, "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=MANIFEST_COLUMNS)
        writer.writeheader()
        writer.writerows(rows)
    return manifest
