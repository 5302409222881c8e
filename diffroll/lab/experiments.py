"""Notebook glue: the corpus and test pieces of a scale, short training runs that are reused when
a notebook runs again, per-piece scores tagged for tables, and the CSV + Markdown table writer.

Nothing in the package imports this module, and it holds no logic of its own: pieces come from
:mod:`diffroll.corpus.segments` (the offline corpus, built when missing), models are
:class:`~diffroll.transcription.pipeline.Pipeline` objects, training is :class:`diffroll.training.trainer.Trainer` on
:mod:`diffroll.corpus.segments`'s segment datasets, and scores and averages are :mod:`diffroll.evaluation.metrics`'s.
"""
from __future__ import annotations

import csv
import dataclasses
import hashlib
import json
from pathlib import Path
from typing import NamedTuple, Sequence

import numpy as np
import torch

from ..corpus import segments as data
from ..corpus.loaders import SPLITS
from ..core.audio import make_frontend
from ..core.config import KEYSHARED, Config, get_config
from ..core.paths import data_dir
from ..evaluation.runners import evaluate_pieces, sweep_thresholds
from ..training.trainer import Trainer
from ..transcription.pipeline import Pipeline
from ..transcription.settings import SamplingSettings
from ..transcription.windows import window_mels


def setup(seed: int = 0, threads: int = 1) -> None:
    """Seeds and the number of torch threads."""
    torch.manual_seed(seed)
    np.random.seed(seed)
    torch.set_num_threads(threads)


# --- pieces -------------------------------------------------------------------------------------

def corpus(scale: str, root: str | Path | None = None, seed: int = 0, splits: Sequence[str] = SPLITS) -> Path:
    """The offline corpus of ``scale`` at ``root`` (default ``data/offline-<scale>``), the renders
    of ``splits`` (default: every split) built (or finished) first: seconds at smoke scale, a no-op
    when they are there."""
    root = Path(root) if root is not None else data_dir(f"offline-{scale}")
    data.build_offline_corpus(root, get_config(scale), seed=seed, splits=splits)
    return root


def corpus_pieces(scale: str, cfg: Config, n: int | None = None, max_seconds: float | None = None,
                soundfonts: Sequence[str] | None = None, split: str = "test",
                root: str | Path | None = None) -> list[data.LoadedPiece]:
    """The first ``n`` pieces of each soundfont (``soundfonts``; default: every one the split
    has) of a split of ``scale``'s offline corpus, loaded for a model of config ``cfg``."""
    root = corpus(scale, root)
    fonts = soundfonts or sorted({p.group for p in data.list_pieces(root, split=split)})
    return [piece for font in fonts for piece in data.load_pieces(root, split, [font], n, max_seconds, cfg=cfg)]


def first_window_mels(cfg: Config, waves: Sequence[np.ndarray], frames: int | None = None) -> torch.Tensor:
    """c_mel (B, n_mels, frames) of the first window of each wave, computed as inference computes
    a window's (:func:`diffroll.transcription.windows.window_mels`, ``cfg``'s audio settings: a model's own),
    then cut to its first ``frames`` frames (a shorter clip with the whole window's scaling)."""
    frontend = make_frontend(cfg.audio)
    mels = torch.cat([window_mels(wave, [0], cfg, frontend) for wave in waves])
    return mels[:, :, :frames]


# --- training runs ------------------------------------------------------------------------------

class Run(NamedTuple):
    """A training run: its weights (EMA when kept) as an eval-mode pipeline, its history, its checkpoint."""

    pipeline: Pipeline
    history: list[dict]
    checkpoint: Path


def config_key(cfg: Config) -> str:
    """A short hash of the settings that differ from their defaults (``Config()``): runs of different
    configs never share a folder, and a setting added later at its default keeps every earlier run's
    key (and folder). Changing an existing setting's default would let a run made with the old one
    answer for the new one: change the preset instead, or rename the notebook's run folder. A whole
    number given to a float setting (``max_minutes=95``) hashes as the float (95.0), so a notebook
    parameter and a command-line flag name the same run."""
    defaults = Config().to_dict()
    floats = {(part.name, f.name) for part in dataclasses.fields(Config) if isinstance(defaults.get(part.name), dict)
              for f in dataclasses.fields(getattr(cfg, part.name)) if "float" in str(f.type)}
    changed = {f"{section}.{name}": float(value) if (section, name) in floats and type(value) is int else value
               for section, values in cfg.to_dict().items() if isinstance(values, dict)
               for name, value in values.items() if defaults[section].get(name) != value}
    changed["scale"] = cfg.scale
    return hashlib.sha256(json.dumps(changed, sort_keys=True).encode()).hexdigest()[:8]


def train_run(cfg: Config, run_root: str | Path, name: str, paired=None, unpaired=None, init_from=None,
              device: str = "cpu", progress: bool = False) -> Run:
    """Train ``cfg`` for ``cfg.train.max_steps`` steps under ``run_root/<name>-<config hash>`` on
    :mod:`diffroll.corpus.segments` datasets, or reuse that run when it already got there."""
    run_dir = Path(run_root) / f"{name}-{config_key(cfg)}"
    trainer = Trainer(cfg, paired=paired, unpaired=unpaired, run_dir=run_dir, init_from=init_from,
                      device=device, progress=progress)
    history = trainer.fit() if trainer.step < cfg.train.max_steps else trainer.history
    pipe = trainer.pipeline
    pipe.model.eval()
    return Run(pipe, history, trainer.checkpoint_path)


def train_for_minutes(cfg: Config, run_root: str | Path, name: str, minutes: float, paired=None,
                      device: str = "cpu", progress: bool = False) -> Run:
    """Train ``cfg`` for ``minutes`` of training wall-clock time (an equal budget: the trainer's
    ``wall_seconds``, which leave out validation but count writing checkpoints and snapshots) under ``run_root/<name>-<config hash>``, resuming a run that
    stopped short and reusing one that already had its budget. ``cfg.train.max_steps`` still caps it."""
    run_dir = Path(run_root) / f"{name}-{config_key(cfg)}"
    trainer = Trainer(cfg, paired=paired, run_dir=run_dir, device=device, progress=progress)
    left = 60 * minutes - trainer.wall_seconds
    if left > 1 and trainer.step < cfg.train.max_steps:
        trainer.fit(max_minutes=left / 60)
    pipe = trainer.pipeline
    pipe.model.eval()
    history = list(trainer.history)
    if not history or history[-1].get("step") != trainer.step:  # where the budget ended (between log rows)
        history.append({"step": trainer.step, "wall_seconds": round(trainer.wall_seconds, 2)})
    return Run(pipe, history, trainer.checkpoint_path)


def architecture_candidates(scale: str) -> dict[str, dict]:
    """Notebook 12's default candidates, {label: config overrides}: the bundled layout (the DiffWave
    net on the mel), the key-shared net on the HCQT at 16 and 32 channels (tiny at smoke scale), and
    the DiffWave net on the HCQT (the front-end without the sharing across keys: which of the two
    the key-shared net's gains come from)."""
    smoke = scale == "smoke"
    tiny = {"channels": 4, "layers": 2, "dilation": [1, 2]} if smoke else {}
    return {
        "DiffWave on the mel (the bundled layout)": {},
        "key-shared 16 ch on the HCQT": {**KEYSHARED, **tiny},
        "key-shared 32 ch on the HCQT": {**KEYSHARED, **tiny, "channels": 8 if smoke else 32},
        "DiffWave on the HCQT": {"frontend": "hcqt", "model.n_mels": KEYSHARED["model.n_mels"]},
    }


def budget_configs(scale: str, candidates: dict[str, dict], minutes: float, max_steps: int | None = None,
                   snapshot_every: int | None = None, seed: int = 0) -> dict[str, Config]:
    """Notebook 12's configs: each candidate's overrides on ``scale``'s preset for an equal training
    budget (``minutes``, capped at ``max_steps``; None: smoke 30, else none), with a snapshot (and log
    row) every ``snapshot_every`` steps for the learning curves (None: smoke 10, else 250) and no
    in-training validation. One function, defaults included, so candidates trained apart
    (``benchmarks/architecture_budget.py``, one process each) land in the run folders the notebook reuses."""
    smoke = scale == "smoke"
    max_steps = max_steps or (30 if smoke else 10**7)
    snapshot_every = snapshot_every or (10 if smoke else 250)
    return {label: get_config(scale, seed=seed, max_steps=max_steps, max_minutes=float(minutes), validate_every=0,
                              log_every=snapshot_every, checkpoint_every=snapshot_every,
                              snapshot_every=snapshot_every, **overrides)
            for label, overrides in candidates.items()}


def run_name(label: str) -> str:
    """A candidate's run folder name (before its config hash): its label up to any parenthesis."""
    return label.split(" (")[0].replace(" ", "-")


CURVE_ONSETS, CURVE_FRAMES = (0.05, 0.1, 0.2, 0.3, 0.4, 0.5), (0.2, 0.3, 0.4, 0.5)
"""Notebook 12's threshold grid: each point of a learning curve is its weights' best note F1 over it."""


def curve_validation(root: str | Path, cfg: Config, n: int, seconds: float) -> list:
    """Notebook 12's validation pieces for its curves and thresholds: the first ``n`` pianistic pieces of
    the validation split (any pieces where it has none), each cut to its first ``seconds``."""
    validation = data.load_pieces(root, "validation", None, None, seconds, cfg=cfg)
    return ([p for p in validation if p.name.startswith("pianistic")] or validation)[:n]


def best_thresholds(pipe: Pipeline, pieces: Sequence, sampling: SamplingSettings) -> dict:
    """The row of the onset × frame threshold sweep (:data:`CURVE_ONSETS` × :data:`CURVE_FRAMES`; its
    validation scores) with the best note F1: a point of notebook 12's curves."""
    return max(sweep_thresholds(pipe, pieces, CURVE_ONSETS, CURVE_FRAMES, sampling=sampling), key=lambda r: r["f1"])


def with_thresholds(pipe: Pipeline, best: dict) -> Pipeline:
    """``pipe`` reading its notes at the onset and frame thresholds of a :func:`best_thresholds` row."""
    return Pipeline(pipe.model, pipe.config.override(threshold=best["frame_threshold"],
                                                     onset_threshold=best["onset_threshold"]))


def snapshots(run: Run) -> list[tuple[int, float, Path]]:
    """(step, training wall seconds at that step, weights file) of a run's snapshots
    (``train.snapshot_every``), in step order: the points of a learning curve."""
    seconds = {row["step"]: row["wall_seconds"] for row in run.history if "wall_seconds" in row}
    found = []
    for path in run.checkpoint.parent.glob("weights-step*.pt"):
        step = int(path.stem.removeprefix("weights-step"))
        if step in seconds:
            found.append((step, seconds[step], path))
    return sorted(found)


def _column(batch: dict, key: str) -> torch.Tensor:
    value = batch[key]
    return (value if isinstance(value, torch.Tensor) else torch.stack([torch.as_tensor(v) for v in value])).float()


@torch.no_grad()
def fixed_loss(pipe: Pipeline, dataset, p: float = 0.0, n: int = 32, seed: int = 12_345) -> float:
    """Eq. 3 of a pipeline's model on the first ``n`` segments of a dataset with fixed draws of
    t, ε and dropout (``p``; roll-only datasets get c_mel = -1): the same batch and noise for
    every model, so a model before and after training compare without batch-to-batch noise."""
    batch = dataset[list(range(min(n, len(dataset))))]
    roll = _column(batch, "roll")
    mel = (_column(batch, "mel") if "mel" in batch
           else torch.full((len(roll), pipe.config.model.n_mels, roll.shape[-1]), -1.0))
    g = torch.Generator().manual_seed(seed)
    return float(pipe.diffusion.training_loss(pipe.model, roll.to(pipe.device), mel.to(pipe.device), p=p,
                                              mode=pipe.config.train.mode, generator=g))


def loss_before_after(run: Run, dataset, p: float = 0.0) -> tuple[float, float]:
    """:func:`fixed_loss` of the run's untrained network (zero output: x̂0 = 0) and of the trained one."""
    untrained = Pipeline.from_config(run.pipeline.config)
    untrained.model.eval()
    return fixed_loss(untrained, dataset, p), fixed_loss(run.pipeline, dataset, p)


# --- scores -------------------------------------------------------------------------------------

def timbre_of(group: str, cfg: Config) -> str:
    """"seen" for the model's training soundfonts, "unseen" for any other render of the offline
    corpus (held-out soundfonts, timbres the model never trained on), else the group itself."""
    if group in cfg.data.soundfonts:
        return "seen"
    return "unseen" if cfg.data.dataset == "offline" else group


def score(pipe: Pipeline, pieces: Sequence[data.LoadedPiece], label: str = "",
          sampling: SamplingSettings | None = None, max_seconds: float | None = None) -> list[dict]:
    """:func:`diffroll.evaluation.runners.evaluate_pieces` rows (note, note-with-offset, velocity and
    frame F1), tagged with the model's ``label``, the piece as ``piece``, its ``timbre`` and ``w``
    (``sampling``: None, the pipeline's own; ``max_seconds``: each piece's beginning only)."""
    sampling = pipe.sampling if sampling is None else sampling
    rows = evaluate_pieces(pipe, pieces, sampling, max_seconds=max_seconds, progress=False)
    w = sampling.w
    return [{"model": label, "w": w, "piece": r.pop("name"), "timbre": timbre_of(r["group"], pipe.config), **r}
            for r in rows]


def notes_in_spans(notes: list, spans_s: Sequence[tuple[float, float]], inside: bool = True) -> list:
    """Notes whose onset lies inside (or, ``inside=False``, outside) any of the spans (seconds)."""
    return [n for n in notes if any(a <= n[0] < b for a, b in spans_s) == inside]


# --- tables -------------------------------------------------------------------------------------

def to_markdown(rows: list[dict]) -> str:
    """A list of dicts as a Markdown table (floats with 3 decimals, None as an empty cell)."""
    if not rows:
        return ""
    keys = list(dict.fromkeys(k for r in rows for k in r))

    def fmt(v) -> str:
        return f"{v:.3f}" if isinstance(v, float) else "" if v is None else str(v)

    lines = ["| " + " | ".join(keys) + " |", "|" + "---|" * len(keys)]
    lines += ["| " + " | ".join(fmt(r.get(k, "")) for k in keys) + " |" for r in rows]
    return "\n".join(lines)


def write_table(rows: list[dict], path_stem: str | Path) -> tuple[Path, Path]:
    """Write ``rows`` as ``<stem>.csv`` and ``<stem>.md`` side by side; returns both paths."""
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
