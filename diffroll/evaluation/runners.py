"""Runners over a :class:`~diffroll.transcription.pipeline.Pipeline`: transcribe pieces with its
settings and score them (:mod:`diffroll.evaluation.metrics`); sweep the decoding thresholds of one
sampling of each piece. Every score and average of the notebooks and benchmarks comes from here.
"""
from __future__ import annotations

import time
from dataclasses import replace
from itertools import product

import numpy as np
from tqdm.auto import tqdm

from ..core.roll import Note, notes_to_roll
from ..corpus.realpiano import real_note_scores
from ..corpus.segments import cut_piece
from ..transcription.decoding import decode_roll
from ..transcription.pipeline import Pipeline
from ..transcription.sampling import piece_seed
from ..transcription.settings import DecodeSettings, SamplingSettings
from .metrics import frame_scores, missed_restrikes, note_scores, restrike_notes, split_notes


def transcribe_piece(pipe: Pipeline, wave: np.ndarray, sampling: SamplingSettings | None = None,
                     decoding: DecodeSettings | None = None) -> tuple[list[Note], np.ndarray, float]:
    """(notes, the roll they come from, wall seconds) of one piece, as :meth:`Pipeline.transcribe`
    transcribes it (``sampling``/``decoding``: None, the pipeline's own)."""
    start = time.perf_counter()
    result = pipe.transcribe(wave, sampling, decoding, keep_samples=False, progress=False)
    return result.notes, result.roll, time.perf_counter() - start


def evaluate_pieces(pipe: Pipeline, pieces, sampling: SamplingSettings | None = None,
                    decoding: DecodeSettings | None = None, max_seconds: float | None = None,
                    progress: bool = True) -> list[dict]:
    """Transcribe whole pieces with a :class:`~diffroll.transcription.pipeline.Pipeline` and score each:
    ``pieces`` yields (name, group, wave, ref_notes).

    Returns one row per piece (name, group, seconds, wall_seconds, rtf, note, note-with-offset,
    velocity and frame scores); ``max_seconds`` cuts each piece (and its reference) to its beginning.
    ``sampling``/``decoding``: None, the pipeline's own; with ``samples`` = K > 1 the frame scores
    are those of the roll the notes come from.
    """
    cfg = pipe.config
    sr, fps = cfg.audio.sample_rate, cfg.audio.fps
    rows = []
    for name, group, wave, ref in tqdm(list(pieces), desc="evaluate", unit="piece", disable=not progress):
        wave, ref = cut_piece(wave, ref, max_seconds, sr)
        est, x0, wall = transcribe_piece(pipe, wave, sampling, decoding)
        seconds = len(wave) / sr
        ref_roll = notes_to_roll(ref, fps, n_frames=x0.shape[1])
        rows.append(dict(name=name, group=group, seconds=seconds, wall_seconds=wall,
                         rtf=wall / max(seconds, 1e-9), n_ref=len(ref), n_est=len(est),
                         split_notes=split_notes(ref, est), missed_restrikes=missed_restrikes(ref, est),
                         restrikes=len(restrike_notes(ref)), **note_scores(ref, est),
                         **frame_scores(ref_roll, x0, fps=fps, threshold=cfg.diffusion.threshold)))
    return rows


def transcribe_real_notes(pipe: Pipeline, notes, sampling: SamplingSettings | None = None,
                          decoding: DecodeSettings | None = None) -> list[dict]:
    """Each real note (:func:`diffroll.corpus.realpiano.load_real_notes`: (name, group, wave, [its
    reference Note])) transcribed alone, note i with the seed :func:`~diffroll.transcription.sampling.piece_seed`
    (``sampling.seed``, i): one row (name, group, seconds, wall_seconds, rtf, est, n_est) each. With one
    seed for all, every 3.5-s note starts from the same x_T and the set's score rides on that one draw
    (the bundled model, seeds 0-4: 75-76 keys found, 1.47-1.91 extra notes per note)."""
    sr, rows = pipe.config.audio.sample_rate, []
    sampling = sampling if sampling is not None else pipe.sampling
    for i, (name, group, wave, _) in enumerate(notes):
        est, _, wall = transcribe_piece(pipe, wave, sampling.replace(seed=piece_seed(sampling.seed, i)), decoding)
        seconds = len(wave) / sr
        rows.append(dict(name=name, group=group, seconds=seconds, wall_seconds=wall, rtf=wall / seconds,
                         est=est, n_est=len(est)))
    return rows


def evaluate_real_notes(pipe: Pipeline, notes, sampling: SamplingSettings | None = None,
                        decoding: DecodeSettings | None = None) -> dict:
    """:func:`transcribe_real_notes`, then keys found and extra notes per note, overall and by octave
    (:func:`~diffroll.corpus.realpiano.real_note_scores`), with the real-time factor of the whole set."""
    rows = transcribe_real_notes(pipe, notes, sampling, decoding)
    scores = real_note_scores([(ref[0], row["est"]) for (_, _, _, ref), row in zip(notes, rows)])
    return {**scores, "rtf": sum(r["wall_seconds"] for r in rows) / max(sum(r["seconds"] for r in rows), 1e-9)}


def sweep_thresholds(pipe, pieces, onset_thresholds=(0.1, 0.2, 0.3, 0.4, 0.5),
                     frame_thresholds=(0.3, 0.4, 0.5), min_frames_without_onset=None, min_velocity=None,
                     offset_thresholds=None, restrike_thresholds=None, pedal_thresholds=None,
                     progress: bool = False, sampling: SamplingSettings | None = None) -> list[dict]:
    """Mean note F1 (and offset, velocity F1) of every (onset, frame) threshold pair -- and every
    ``min_frames_without_onset``, ``min_velocity``, ``offset_threshold``, ``restrike_threshold`` and
    ``pedal_threshold`` when sequences of them are given (None in them: the frame / onset threshold;
    for the pedal: notes read without it) -- each piece
    sampled once and decoded with each setting. Tune on a validation split, never on a test split.
    Frame-only models have no onset threshold: their rows carry ``onset_threshold=None``."""
    roll_cfg = pipe.config.roll
    settings = DecodeSettings.of(pipe.config)
    onset_model = "onset" in roll_cfg.roll_channels

    def grid(values, default, applies=True):
        return (default,) if values is None or not applies else tuple(values)

    onsets = onset_thresholds if onset_model else (None,)
    mins = grid(min_frames_without_onset, settings.min_frames_without_onset, onset_model)
    velocities = grid(min_velocity, settings.min_velocity, "velocity" in roll_cfg.roll_channels)
    offsets = grid(offset_thresholds, settings.offset_threshold, onset_model)
    restrikes = grid(restrike_thresholds, settings.restrike_threshold, onset_model)
    pedals = grid(pedal_thresholds, settings.pedal_threshold, "pedal" in roll_cfg.roll_channels)
    scores: dict[tuple, list[dict]] = {}
    for _, _, wave, ref in tqdm(list(pieces), desc="thresholds", disable=not progress):
        x0 = pipe.transcribe(wave, sampling, keep_samples=False, progress=False).roll
        for on, m, v, off, re, pd, fr in product(onsets, mins, velocities, offsets, restrikes, pedals,
                                                 frame_thresholds):
            if re is not None and on is not None and re < on:
                continue  # a re-strike threshold below the onset threshold is the onset threshold
            decode = replace(settings, onset_threshold=settings.onset_threshold if on is None else on,
                             min_frames_without_onset=m, min_velocity=v, offset_threshold=off,
                             restrike_threshold=re, pedal_threshold=pd, frame_threshold=fr)
            est = decode_roll(x0, pipe.config.audio.fps, decode)
            scores.setdefault((on, m, v, off, re, pd, fr), []).append(note_scores(ref, est))
    return [{"onset_threshold": on, "min_frames_without_onset": m, "min_velocity": v, "offset_threshold": off,
             "restrike_threshold": re, "pedal_threshold": pd, "frame_threshold": fr,
             **{k: float(np.mean([s[k] for s in rs])) for k in ("f1", "f1_offset", "f1_velocity")}}
            for (on, m, v, off, re, pd, fr), rs in scores.items()]
