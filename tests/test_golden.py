"""Bit-for-bit guard: the bundled model at the CLI's defaults (``--precision fp32``) on a fixed
12 s fixture (a hand-written score played by a numpy additive piano: FluidSynth's rendering
differs from process to process) gives exactly the notes recorded in
tests/golden/bundled_fixture.json, through the three faces: the ``diffroll transcribe`` command
(the MIDI file read back), :func:`diffroll.transcribe` and :func:`evaluate_pieces` (its scores).

Refresh (only for an intended change of behaviour): ``DIFFROLL_GOLDEN_WRITE=1 pytest tests/test_golden.py``.
"""
import json
import os
from pathlib import Path

import numpy as np
import pretty_midi
import pytest
import soundfile as sf

import diffroll
from diffroll import cli
from diffroll.core.paths import bundled_checkpoint

GOLDEN = Path(__file__).parent / "golden" / "bundled_fixture.json"
SR = 16000
SECONDS = 12.0
WRITE = os.environ.get("DIFFROLL_GOLDEN_WRITE") == "1"

pytestmark = pytest.mark.skipif(not bundled_checkpoint().is_file(), reason="no bundled checkpoint")


def fixture_midi() -> pretty_midi.PrettyMIDI:
    """A scale, broken chords, a re-struck key and a sustained chord under the pedal, 12 s."""
    pm = pretty_midi.PrettyMIDI()
    piano = pretty_midi.Instrument(program=0)
    t = 0.25
    for i, pitch in enumerate((60, 62, 64, 65, 67, 69, 71, 72)):
        piano.notes.append(pretty_midi.Note(50 + 8 * i, pitch, t, t + 0.3))
        t += 0.35
    for chord, vel in (((48, 55, 60, 64), 90), ((53, 57, 60, 65), 70), ((43, 50, 55, 59, 62), 100)):
        for k, pitch in enumerate(chord):
            piano.notes.append(pretty_midi.Note(vel, pitch, t + 0.08 * k, t + 1.1))
        t += 1.3
    for _ in range(3):  # the same key struck again
        piano.notes.append(pretty_midi.Note(80, 76, t, t + 0.25))
        t += 0.3
    piano.control_changes.append(pretty_midi.ControlChange(64, 127, t - 0.05))
    for k, pitch in enumerate((36, 48, 52, 55, 60, 64, 67, 72)):
        piano.notes.append(pretty_midi.Note(75, pitch, t + 0.12 * k, t + 0.12 * k + 0.2))
    piano.control_changes.append(pretty_midi.ControlChange(64, 0, t + 2.5))
    pm.instruments.append(piano)
    return pm


def play(pm: pretty_midi.PrettyMIDI, sr: int = SR, seconds: float = SECONDS) -> np.ndarray:
    """A plain additive piano: eight decaying partials a note, louder with velocity, held by the
    sustain pedal as the score says (pretty_midi's sustain-extended notes), a 30 ms release."""
    from diffroll.core.roll import midi_notes

    out = np.zeros(int(seconds * sr), dtype=np.float64)
    for onset, offset, pitch, velocity in midi_notes(pm, sustain=True):
        f0 = 440.0 * 2 ** ((pitch - 69) / 12)
        n = min(int((offset + 0.03) * sr), len(out)) - int(onset * sr)
        t = np.arange(n) / sr
        tone = sum(np.sin(2 * np.pi * k * f0 * t) * np.exp(-t * (0.8 + 0.6 * k)) / k ** 1.5
                   for k in range(1, 9) if k * f0 < sr / 2)
        env = np.clip((offset + 0.03 - onset - t) / 0.03, 0.0, 1.0) * np.minimum(t / 0.002, 1.0)
        out[int(onset * sr):int(onset * sr) + n] += (velocity / 127) ** 2 * 0.25 * tone * env
    return (out / max(1.0, np.abs(out).max() / 0.9)).astype(np.float32)


@pytest.fixture(scope="module")
def wave() -> np.ndarray:
    return play(fixture_midi())


def rows(notes) -> list[list]:
    return [[float(n[0]), float(n[1]), int(n[2]), int(n[3])] for n in notes]


def midi_rows(pm: pretty_midi.PrettyMIDI) -> list[list]:
    notes = sorted((n.start, n.end, n.pitch, n.velocity) for i in pm.instruments for n in i.notes)
    return rows(notes)


def dumps(data: dict) -> str:
    """JSON with one note (or one score) a line; floats as repr writes them (exact)."""
    parts = []
    for key in sorted(data):
        value = data[key]
        if isinstance(value, list):
            body = ",\n  ".join(json.dumps(v) for v in value)
            parts.append(f"{json.dumps(key)}: [\n  {body}\n ]")
        else:
            body = ",\n  ".join(f"{json.dumps(k)}: {json.dumps(v)}" for k, v in sorted(value.items()))
            parts.append(f"{json.dumps(key)}: {{\n  {body}\n }}")
    return "{\n " + ",\n ".join(parts) + "\n}\n"


def compare(key: str, value):
    if WRITE:
        data = json.loads(GOLDEN.read_text()) if GOLDEN.is_file() else {}
        data[key] = value
        GOLDEN.write_text(dumps(data))
        return
    expected = json.loads(GOLDEN.read_text())[key]
    assert value == expected, f"{key}: the transcription changed"


def test_cli_transcribe_matches_golden(tmp_path, wave):
    sf.write(tmp_path / "fixture.wav", wave, SR, subtype="FLOAT")
    out = tmp_path / "out"
    assert cli.main(["transcribe", str(tmp_path / "fixture.wav"), "-o", str(out), "--precision", "fp32",
                     "--quiet", "--device", "cpu"]) == 0
    compare("cli_midi", midi_rows(pretty_midi.PrettyMIDI(str(out / "fixture.mid"))))


def test_diffroll_transcribe_matches_golden(wave):
    pipe = diffroll.load_model(device="cpu")
    pm = diffroll.transcribe(wave, pipeline=pipe, sampling=pipe.sampling.replace(precision="fp32"), progress=False)
    compare("transcribe", midi_rows(pm))


def test_evaluate_pieces_matches_golden(wave):
    from diffroll.evaluation.runners import evaluate_pieces
    from diffroll.core.roll import midi_notes

    pipe = diffroll.load_model(device="cpu")
    ref = midi_notes(fixture_midi(), sustain=True)
    [row] = evaluate_pieces(pipe, [("fixture", "golden", wave, ref)], pipe.sampling.replace(precision="fp32"),
                            progress=False)
    compare("evaluate_pieces", {k: v for k, v in row.items() if k not in ("wall_seconds", "rtf")})
