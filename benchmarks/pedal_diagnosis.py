"""How much note-with-offset F1 the sustain pedal can give: validation excerpts transcribed once, their
notes read without the pedal, with the model's pedal rows (a model with a ``pedal`` roll channel) and
with the true pedal of the MIDI (the oracle: :func:`diffroll.core.roll.sustain_notes` on the performance's
CC 64), and how often the model's pedal rows say the right thing frame by frame.

    .venv/bin/python benchmarks/pedal_diagnosis.py [--checkpoint checkpoints/diffroll-cpu.pt]
        [--pieces 24] [--max-seconds 60] [--threads 2]

A diagnosis, not a test: it prints one table (the CLI's sampler and the checkpoint's decoding settings).
"""
from __future__ import annotations

import dataclasses
import sys

import numpy as np
from tqdm.auto import tqdm

from diffroll.evaluation.diagnosis import diagnosis_setup
from diffroll.corpus.segments import list_pieces, load_piece, pedal_spans
from diffroll.evaluation.metrics import note_scores
from diffroll.transcription.settings import DecodeSettings
from diffroll.transcription.decoding import decode_roll
from diffroll.core.roll import clip_notes, pedal_track, sustain_notes


def pedal_frames(spans: list[tuple[float, float]], n_frames: int, fps: float) -> np.ndarray:
    """(n_frames,) True where the pedal is down."""
    down = np.zeros(n_frames, dtype=bool)
    for d, u in spans:
        down[int(round(d * fps)):int(round(u * fps))] = True
    return down


def main(argv: list[str] | None = None) -> int:
    args, pipe = diagnosis_setup(__doc__, argv)
    cfg, fps = pipe.config, pipe.config.audio.fps
    pieces = list_pieces(args.data, split="validation")
    step = max(len(pieces) / args.pieces, 1.0)
    pieces = [pieces[int(i * step)] for i in range(min(args.pieces, len(pieces)))]
    settings = DecodeSettings.of(cfg)
    dry = dataclasses.replace(settings, pedal_threshold=None)
    scores: dict[str, list[float]] = {"without the pedal": [], "the model's pedal": [], "the true pedal (oracle)": []}
    agree, down_share = [], []
    for piece in tqdm(pieces, desc="pieces"):
        wave, notes = load_piece(piece, cfg)
        wave, ref = wave[:int(args.max_seconds * cfg.audio.sample_rate)], clip_notes(notes, args.max_seconds)
        x0 = pipe.transcribe(wave, keep_samples=False, progress=False).roll  # the CLI's sampling
        spans = [(d, min(u, args.max_seconds)) for d, u in pedal_spans(piece.midi) if d < args.max_seconds]
        notes_dry = decode_roll(x0, fps, dry)
        scores["without the pedal"].append(note_scores(ref, notes_dry)["f1_offset"])
        scores["the true pedal (oracle)"].append(note_scores(ref, sustain_notes(notes_dry, spans))["f1_offset"])
        truth = pedal_frames(spans, x0.shape[1], fps)
        down_share.append(truth.mean())
        if settings.uses_pedal:
            scores["the model's pedal"].append(note_scores(ref, decode_roll(x0, fps, settings))["f1_offset"])
            agree.append(((pedal_track(x0, cfg.roll.roll_channels) > settings.pedal_threshold) == truth).mean())
    print(f"{len(pieces)} validation excerpts of {args.max_seconds:g} s; pedal down {np.mean(down_share):.0%} of "
          f"the frames; sampler {pipe.sampling.sampler} x {pipe.sampling.steps}, w {cfg.diffusion.w}")
    print("| notes read with | note-with-offset F1 |\n| --- | ---: |")
    for name, values in scores.items():
        if values:
            print(f"| {name} | {np.mean(values):.4f} |")
    if agree:
        print(f"\nthe model's pedal rows (threshold {settings.pedal_threshold}) agree with the true pedal on "
              f"{np.mean(agree):.1%} of the frames (the better constant guess per excerpt: "
              f"{np.mean([max(d, 1 - d) for d in down_share]):.1%})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
