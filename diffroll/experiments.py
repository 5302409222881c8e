"""Helpers the notebooks share: a model and test pieces for a scale, small in-memory segment
sets, short training runs that reuse their checkpoints, and statistics of rolls.

The notebooks orchestrate; this module holds what would otherwise be copied between them.
Pieces come from the offline corpus (``data/offline-<scale>``, built by notebook 01) when it
exists, else from generated pieces (:func:`diffroll.performance.generated_piece`) rendered on
the fly by FluidSynth, so every notebook also runs on a fresh checkout.
"""
from __future__ import annotations

import logging
import os
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import numpy as np
import torch

from .config import Config, get_config
from .paths import bundled_checkpoint, data_dir, runs_dir
from .roll import Note, midi_notes, notes_to_roll

log = logging.getLogger("diffroll.experiments")

Piece = tuple[str, str, np.ndarray, list[Note]]  # (name, group, 16 kHz wave, reference notes)


def setup(seed: int = 0, threads: int = 1) -> None:
    """Seeds, torch threads and a writable matplotlib cache (papermill kernels may lack one)."""
    os.environ.setdefault("MPLCONFIGDIR", tempfile.mkdtemp(prefix="mpl-"))
    torch.manual_seed(seed)
    np.random.seed(seed)
    torch.set_num_threads(threads)


# --- data ---------------------------------------------------------------------------------------

def corpus_root(scale: str, path=None) -> Path | None:
    """The offline corpus of ``scale`` (``path`` wins) when it has a manifest, else None."""
    root = Path(path) if path else data_dir(f"offline-{scale}")
    return root if (root / "manifest.csv").is_file() else None


def generated_pieces(n: int, seconds: float, soundfont: str = "FluidR3_GM", seed: int = 0,
                     sample_rate: int = 16000, prefix: str = "generated") -> list[Piece]:
    """``n`` generated studies (all 88 keys) rendered by FluidSynth: a corpus-free fallback."""
    from .performance import generated_piece
    from .render import render_midi

    out = []
    for i in range(n):
        pm = generated_piece(np.random.default_rng([seed, 1000 + i]), seconds)
        wave = render_midi(pm, soundfont, sample_rate)
        out.append((f"{prefix}-{seed}-{i}", soundfont, wave, midi_notes(pm)))
    return out


def load_pieces(root, split: str = "test", soundfonts=None, n: int | None = None,
                max_seconds: float | None = None, dataset: str = "offline", sample_rate: int = 16000) -> list[Piece]:
    """(name, group, wave, notes) of the first ``n`` pieces of a split (see :mod:`diffroll.loaders`)."""
    from .audio import load_audio
    from .loaders import list_pieces

    pieces = list_pieces(root, dataset=dataset, split=split, soundfonts=soundfonts)
    out = []
    for p in pieces[:n]:
        wave = load_audio(p.audio, sr=sample_rate)
        notes = midi_notes(p.midi)
        if max_seconds is not None:
            wave = wave[: int(max_seconds * sample_rate)]
            notes = [(on, min(off, max_seconds), k) for on, off, k in notes if on < max_seconds]
        out.append((p.name, p.group, wave, notes))
    return out


def eval_pieces(cfg: Config, n: int = 2, seconds: float | None = None, corpus=None,
                soundfonts=None, seed: int = 0) -> list[Piece]:
    """Test pieces for a notebook: the corpus' test split if there is one, else generated ones."""
    root = corpus_root(cfg.scale, corpus)
    if root is not None:
        try:
            return load_pieces(root, "test", soundfonts, n, seconds, sample_rate=cfg.audio.sample_rate)
        except Exception as err:  # a corpus being built, or without those soundfonts
            log.warning("corpus %s unusable (%s); using generated pieces", root, err)
    font = (soundfonts if isinstance(soundfonts, str) else (soundfonts or cfg.data.test_soundfonts)[0])
    return generated_pieces(n, seconds or 20.0, font, seed=seed + 7, sample_rate=cfg.audio.sample_rate,
                            prefix="generated-test")


@dataclass
class SegmentSet:
    """Segments in memory: ``ds[indices]`` -> {"mel": (B, n_mels, F), "roll": (B, 88, F)}; a roll-only
    set has ``mel=None``. The interface :class:`diffroll.train.Trainer` reads."""

    roll: torch.Tensor
    mel: torch.Tensor | None = None

    def __len__(self) -> int:
        return self.roll.shape[0]

    def __getitem__(self, idx):
        out = {"roll": self.roll[idx].float()}
        if self.mel is not None:
            out["mel"] = self.mel[idx].float()
        return out

    def subset(self, n: int, seed: int = 0) -> "SegmentSet":
        idx = torch.randperm(len(self), generator=torch.Generator().manual_seed(seed))[:n]
        return SegmentSet(self.roll[idx], None if self.mel is None else self.mel[idx])


def segment_set(pieces: Sequence[Piece], cfg: Config, hop_frames: int | None = None,
                with_mel: bool = True) -> SegmentSet:
    """Cut pieces into segments of ``cfg.audio.segment_frames`` frames (every ``hop_frames``),
    with c_mel computed per segment exactly as at inference (:func:`diffroll.inference.window_mels`)."""
    from .audio import MelFrontend
    from .inference import window_mels

    size = cfg.audio.segment_frames
    hop_frames = hop_frames or size
    frontend = MelFrontend(cfg.audio)
    mels, rolls = [], []
    for _, _, wave, notes in pieces:
        total = len(wave) // cfg.audio.hop_length
        starts = list(range(0, max(total - size, 0) + 1, hop_frames))
        roll = notes_to_roll(notes, cfg.audio.fps, n_frames=max(total, size))
        rolls += [torch.from_numpy(roll[:, s:s + size].copy()) for s in starts]
        if with_mel:
            mels.append(window_mels(wave, starts, cfg, frontend).half())
    roll_t = torch.stack(rolls).to(torch.uint8)
    return SegmentSet(roll_t, torch.cat(mels) if with_mel else None)


def roll_only_set(notes_lists: Sequence[list[Note]], cfg: Config, hop_frames: int | None = None) -> SegmentSet:
    """Roll-only segments (c_mel = -1 in training, §4.2) from lists of notes."""
    size = cfg.audio.segment_frames
    hop_frames = hop_frames or size
    rolls = []
    for notes in notes_lists:
        roll = notes_to_roll(notes, cfg.audio.fps)
        if roll.shape[1] < size:
            roll = np.pad(roll, ((0, 0), (0, size - roll.shape[1])))
        rolls += [torch.from_numpy(roll[:, s:s + size].copy())
                  for s in range(0, roll.shape[1] - size + 1, hop_frames)]
    return SegmentSet(torch.stack(rolls).to(torch.uint8))


# --- models -------------------------------------------------------------------------------------

def train_run(cfg: Config, run_dir, paired=None, unpaired=None, steps: int | None = None,
              init_from=None, val_pieces=None, progress: bool = False):
    """Train (or resume, or reuse) a run under ``run_dir``; returns (eval model, history).

    A run whose checkpoint already reached ``steps`` is loaded, not retrained.
    """
    from .train import Trainer

    trainer = Trainer(cfg, paired=paired, unpaired=unpaired, run_dir=run_dir, init_from=init_from,
                      val_pieces=val_pieces, device="cpu", progress=progress)
    history = trainer.fit(max_steps=steps)
    model = trainer.eval_model.eval()
    return model, history


def smoke_model(steps: int = 60, seed: int = 0):
    """A tiny model trained for a few seconds on generated pieces (cached under runs/smoke)."""
    cfg = get_config("smoke", seed=seed, validate_every=0, checkpoint_every=steps)
    run = runs_dir("smoke") / f"notebook-model-{seed}"
    ckpt = run / "checkpoint.pt"
    if ckpt.is_file():
        from .checkpoint import load_checkpoint, load_model
        if int(load_checkpoint(ckpt).get("step", 0)) >= steps:
            return load_model(ckpt)
    paired = segment_set(generated_pieces(3, 12.0, "TimGM6mb", seed=seed), cfg, hop_frames=32)
    model, _ = train_run(cfg, run, paired=paired, steps=steps)
    return model


def get_model(scale: str, checkpoint=None, device: str = "cpu", seed: int = 0):
    """The model a notebook uses: ``checkpoint`` if given; at smoke scale a tiny cached model;
    else the bundled checkpoint (checkpoints/diffroll-cpu.pt) or, while that is being trained,
    ``runs/bundled/checkpoint.pt``."""
    from .checkpoint import load_model

    if checkpoint is not None:
        return load_model(checkpoint, device=device)
    if scale == "smoke":
        return smoke_model(seed=seed).to(device)
    for path in (bundled_checkpoint(), runs_dir("bundled") / "checkpoint.pt"):
        if Path(path).is_file():
            log.info("using %s", path)
            return load_model(path, device=device)
    raise FileNotFoundError("no bundled model yet: run notebooks/03_train.ipynb or pass checkpoint=...")


def model_label(model) -> str:
    cfg = model.config
    return (f"{cfg.scale}: {cfg.model.layers}×{cfg.model.channels} ch, k={cfg.model.kernel_size}, "
            f"dilation {cfg.model.dilation}, T={cfg.diffusion.T}")


# --- statistics ---------------------------------------------------------------------------------

def roll_statistics(rolls: Sequence[np.ndarray], fps: float = 31.25, threshold: float = 0.5) -> dict:
    """Polyphony of every frame, pitch of every note, length (s) of every note, notes per second."""
    from .roll import roll_to_notes

    poly, pitches, lengths, seconds = [], [], [], 0.0
    for roll in rolls:
        on = np.asarray(roll) > threshold
        poly.append(on.sum(axis=0))
        notes = roll_to_notes(np.asarray(roll, dtype=np.float32), fps, threshold)
        pitches += [n.pitch for n in notes]
        lengths += [n.offset - n.onset for n in notes]
        seconds += on.shape[1] / fps
    poly = np.concatenate(poly) if poly else np.zeros(0)
    return {"polyphony": poly, "pitches": np.asarray(pitches), "lengths": np.asarray(lengths),
            "notes_per_second": len(pitches) / max(seconds, 1e-9),
            "mean_polyphony": float(poly.mean()) if poly.size else 0.0,
            "mean_pitch": float(np.mean(pitches)) if pitches else float("nan"),
            "median_length": float(np.median(lengths)) if lengths else float("nan")}


def summary_row(label: str, stats: dict) -> dict:
    return {"rolls": label, "notes/s": round(stats["notes_per_second"], 2),
            "mean polyphony": round(stats["mean_polyphony"], 2), "mean pitch": round(stats["mean_pitch"], 1),
            "median length (s)": round(stats["median_length"], 3)}


def notes_in_spans(notes: list[Note], spans_s: Sequence[tuple[float, float]], inside: bool = True) -> list[Note]:
    """Notes whose onset lies inside (or, ``inside=False``, outside) any of the spans (seconds)."""
    def hit(t):
        return any(a <= t < b for a, b in spans_s)
    return [n for n in notes if hit(n[0]) == inside]


def to_markdown(rows: list[dict]) -> str:
    """A list of dicts as a Markdown table (no pandas/tabulate needed)."""
    if not rows:
        return ""
    keys = list(dict.fromkeys(k for r in rows for k in r))
    fmt = lambda v: f"{v:.3f}" if isinstance(v, float) else str(v)  # noqa: E731
    lines = ["| " + " | ".join(keys) + " |", "|" + "---|" * len(keys)]
    lines += ["| " + " | ".join(fmt(r.get(k, "")) for k in keys) + " |" for r in rows]
    return "\n".join(lines)


def write_table(rows: list[dict], path_stem) -> tuple[Path, Path]:
    """Write ``rows`` as CSV and Markdown next to each other (``<stem>.csv``, ``<stem>.md``)."""
    import csv

    stem = Path(path_stem)
    stem.parent.mkdir(parents=True, exist_ok=True)
    keys = list(dict.fromkeys(k for r in rows for k in r))
    csv_path, md_path = stem.with_suffix(".csv"), stem.with_suffix(".md")
    with open(csv_path, "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=keys)
        writer.writeheader()
        writer.writerows(rows)
    md_path.write_text(to_markdown(rows) + "\n")
    return csv_path, md_path


# --- scoring ------------------------------------------------------------------------------------

def timbre_of(group: str, cfg: Config) -> str:
    """"seen" for the training soundfonts, "unseen" for the held-out ones, else the group itself."""
    if group in cfg.data.soundfonts:
        return "seen"
    if group in cfg.data.test_soundfonts:
        return "unseen"
    return group


def score_pieces(model, pieces: Sequence[Piece], label: str = "", **transcribe_kwargs) -> list[dict]:
    """:func:`diffroll.evaluate.evaluate_pieces` rows (note, note-with-offset and frame F1), tagged
    with the model's ``label``, the piece name as ``piece`` and its ``timbre`` (seen/unseen)."""
    from .evaluate import evaluate_pieces

    rows = evaluate_pieces(model, pieces, progress=False, **transcribe_kwargs)
    return [{"model": label, "piece": r.pop("name"), "timbre": timbre_of(r["group"], model.config), **r}
            for r in rows]


def mean_scores(rows: list[dict], by: Sequence[str], keys=("f1", "f1_offset", "frame_f1")) -> list[dict]:
    """Mean of ``keys`` over rows grouped by the columns ``by``."""
    groups: dict[tuple, list[dict]] = {}
    for r in rows:
        groups.setdefault(tuple(r[b] for b in by), []).append(r)
    return [{**dict(zip(by, g)), **{k: float(np.mean([r[k] for r in rs])) for k in keys}, "pieces": len(rs)}
            for g, rs in groups.items()]


def training_pieces(cfg: Config, split: str = "train", n: int | None = None, corpus=None,
                    dataset: str = "offline", path=None, max_seconds: float | None = None, seed: int = 0) -> list[Piece]:
    """Pieces to train on: a MAESTRO/MAPS split (``dataset``, ``path``), else the offline corpus,
    else generated pieces rendered with the training soundfonts."""
    if dataset != "offline":
        return load_pieces(path, split, n=n, max_seconds=max_seconds, dataset=dataset,
                           sample_rate=cfg.audio.sample_rate)
    root = corpus_root(cfg.scale, corpus)
    if root is not None:
        return load_pieces(root, split, n=n, max_seconds=max_seconds, sample_rate=cfg.audio.sample_rate)
    return generated_pieces(n or 4, max_seconds or 20.0, cfg.data.soundfonts[0], seed=seed + (split == "validation"),
                            sample_rate=cfg.audio.sample_rate, prefix=f"generated-{split}")


def training_scores(cfg: Config, corpus=None, dataset: str = "offline", path=None, n: int | None = None,
                    n_generated: int = 0, seed: int = 0) -> list[list[Note]]:
    """Notes of many training scores without audio (the roll-only set of §4.2): the MIDI of the
    corpus' (or MAESTRO's) train split, plus ``n_generated`` generated pieces."""
    from .loaders import list_pieces
    from .performance import generated_piece

    out: list[list[Note]] = []
    root = Path(path) if dataset != "offline" else corpus_root(cfg.scale, corpus)
    if root is not None:
        seen = set()
        for p in list_pieces(root, dataset=dataset, split="train"):
            if p.midi not in seen:
                seen.add(p.midi)
                out.append(midi_notes(p.midi))
    out = out[:n]
    for i in range(n_generated):
        out.append(midi_notes(generated_piece(np.random.default_rng([seed, 5000 + i]), 45.0)))
    return out
