"""Helpers for tests/test_data.py: small datasets written in the real MAESTRO / MAPS layouts,
with real MIDI (pretty_midi) and real audio (FluidSynth renders of that MIDI)."""
from __future__ import annotations

import csv
import json
import shutil
from pathlib import Path

import numpy as np
import pretty_midi
import soundfile as sf

from diffroll.corpus.render import PianoSynth


def make_midi(notes, pedal=()) -> pretty_midi.PrettyMIDI:
    """notes: (onset, offset, pitch) in seconds; pedal: (time, value) sustain events."""
    pm = pretty_midi.PrettyMIDI()
    piano = pretty_midi.Instrument(program=0)
    piano.notes = [pretty_midi.Note(90, p, on, off) for on, off, p in notes]
    piano.control_changes = [pretty_midi.ControlChange(64, v, t) for t, v in pedal]
    pm.instruments.append(piano)
    return pm


def melody(offset: int = 0, seconds: float = 2.5) -> pretty_midi.PrettyMIDI:
    """A short line and a chord, so every piece has a different roll."""
    pitches = [60 + offset, 64 + offset, 67 + offset, 72 + offset]
    step = seconds / (len(pitches) + 1)
    notes = [(i * step, (i + 1) * step, p) for i, p in enumerate(pitches)]
    notes += [(len(pitches) * step, seconds, p) for p in (48 + offset, 55 + offset)]
    return make_midi(notes)


_SYNTHS: dict[int, PianoSynth] = {}


def render(pm: pretty_midi.PrettyMIDI, sample_rate: int = 16000) -> np.ndarray:
    if sample_rate not in _SYNTHS:
        _SYNTHS[sample_rate] = PianoSynth("TimGM6mb", sample_rate)
    return _SYNTHS[sample_rate].render(pm)


def write_pair(audio_path: Path, midi_path: Path, pm: pretty_midi.PrettyMIDI, sample_rate: int = 44100) -> None:
    """Write ``pm`` as MIDI and its FluidSynth render as audio (44.1 kHz stereo, like MAESTRO/MAPS)."""
    audio_path.parent.mkdir(parents=True, exist_ok=True)
    midi_path.parent.mkdir(parents=True, exist_ok=True)
    pm.write(str(midi_path))
    mono = render(pm, sample_rate)
    sf.write(str(audio_path), np.stack([mono, mono], axis=1), sample_rate, subtype="PCM_16")


MAESTRO_ROWS = [  # (split, year, name)
    ("train", 2004, "MIDI-Unprocessed_01_R1_2004_01-02_ORIG_MID--AUDIO_01_R1_2004_01_Track01_wav"),
    ("train", 2006, "MIDI-Unprocessed_02_R1_2006_01-04_ORIG_MID--AUDIO_02_R1_2006_01_Track01_wav"),
    ("validation", 2008, "MIDI-Unprocessed_03_R1_2008_01-04_ORIG_MID--AUDIO_03_R1_2008_wav--1"),
    ("test", 2009, "MIDI-Unprocessed_04_R1_2009_01-04_ORIG_MID--AUDIO_04_R1_2009_04_R1_2009_01_WAV"),
]


def maestro_fixture(root: Path, version: str = "v3.0.0", metadata: str = "csv") -> Path:
    """The official MAESTRO layout: metadata at the root, year folders with .wav + .midi."""
    rows = []
    for i, (split, year, name) in enumerate(MAESTRO_ROWS):
        midi, audio = f"{year}/{name}.midi", f"{year}/{name}.wav"
        write_pair(root / audio, root / midi, melody(offset=i))
        rows.append({"canonical_composer": "Test", "canonical_title": f"Piece {i}", "split": split,
                     "year": year, "midi_filename": midi, "audio_filename": audio, "duration": 3.5})
    if metadata == "csv":
        with open(root / f"maestro-{version}.csv", "w", newline="") as f:
            writer = csv.DictWriter(f, fieldnames=list(rows[0]))
            writer.writeheader()
            writer.writerows(rows)
    elif version == "v3.0.0":  # v3 json: {column: {row: value}}
        columns = {c: {str(i): r[c] for i, r in enumerate(rows)} for c in rows[0]}
        (root / f"maestro-{version}.json").write_text(json.dumps(columns))
    else:  # v2 json: a list of records
        (root / f"maestro-{version}.json").write_text(json.dumps(rows))
    return root


MAPS_FILES = {  # group -> pieces
    "AkPnBcht": ["alb_se3", "bach_847", "chpn_op25_e4"],
    "SptkBGCl": ["alb_se3", "mz_331_3"],
    "ENSTDkCl": ["bach_847"],
    "ENSTDkAm": ["mz_331_3"],
}


def maps_fixture(root: Path) -> Path:
    """The MAPS layout: <group>/MUS/MAPS_MUS-<piece>_<group>.wav/.mid/.txt."""
    made: dict[str, Path] = {}
    for group, pieces in MAPS_FILES.items():
        for i, piece in enumerate(pieces):
            stem = root / group / "MUS" / f"MAPS_MUS-{piece}_{group}"
            if piece in made:  # same piece, another piano: reuse the render
                (stem.parent).mkdir(parents=True, exist_ok=True)
                shutil.copy(made[piece].with_suffix(".wav"), stem.with_suffix(".wav"))
                shutil.copy(made[piece].with_suffix(".mid"), stem.with_suffix(".mid"))
            else:
                pm = melody(offset=len(made))
                write_pair(stem.with_suffix(".wav"), stem.with_suffix(".mid"), pm)
                made[piece] = stem
            lines = ["OnsetTime\tOffsetTime\tMidiPitch"]
            lines += [f"{n.start:.6f}\t{n.end:.6f}\t{n.pitch}" for n in
                      pretty_midi.PrettyMIDI(str(stem.with_suffix(".mid"))).instruments[0].notes]
            stem.with_suffix(".txt").write_text("\n".join(lines) + "\n")
    return root
