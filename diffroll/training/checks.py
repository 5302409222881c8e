"""Checks before and during a run: the device, the config (types and ranges, before any work)
and the precision; :class:`TrainingError` for a run that cannot go on."""
from __future__ import annotations

import dataclasses
import math
import numbers

import torch

from ..core.config import SAMPLERS, Config
from ..core.diffusion import Diffusion
from ..transcription.settings import check_precision
from .steps import learning_rate

MODES = ("diffusion", "discriminative")


class TrainingError(RuntimeError):
    """A run that cannot go on (a non-finite loss or weights); the last good checkpoint is kept."""


def pick_device(device: str | None = None) -> torch.device:
    """CUDA when present, else CPU (or what ``device`` says; ValueError for a CUDA device that is
    not there)."""
    dev = torch.device(device or ("cuda" if torch.cuda.is_available() else "cpu"))
    if dev.type == "cuda" and (not torch.cuda.is_available() or (dev.index or 0) >= torch.cuda.device_count()):
        raise ValueError(f"no such CUDA device here ({torch.cuda.device_count()} found): use --device cpu")
    return dev


_TYPES = {"int": (numbers.Integral,), "float": (numbers.Real,), "str": (str,), "bool": (bool,), "None": (type(None),),
          "list": (list, tuple), "dict": (dict,)}


def _check_types(part) -> None:
    """TypeError naming the first field of a config section whose value is not of its annotated
    type (``lr = "abc"`` from ``--set lr='"abc"'``); a bool is not a number."""
    for f in dataclasses.fields(part):
        value, alts = getattr(part, f.name), [alt.strip().split("[")[0] for alt in str(f.type).split("|")]
        if not all(alt in _TYPES for alt in alts):
            continue  # an annotation this check does not know
        types = tuple(t for alt in alts for t in _TYPES[alt])
        if not isinstance(value, types) or (isinstance(value, bool) and bool not in types):
            raise TypeError(f"{f.name} must be {f.type}, got {value!r}")


def check_config(cfg: Config) -> None:
    """ValueError / TypeError naming the first setting of ``cfg`` that cannot train: a value of the
    wrong type in any section, or a training setting out of its range. ``Trainer`` checks it;
    ``diffroll train`` before any work."""
    for section in dataclasses.fields(cfg):
        if section.name != "scale":
            _check_types(getattr(cfg, section.name))
    t, finite = cfg.train, math.isfinite
    rules = [("mode", t.mode in MODES, f"one of {MODES}"),
             ("batch_size", t.batch_size >= 1, "a whole number >= 1"),
             ("lr", finite(t.lr) and t.lr > 0, "a finite number > 0"),
             ("lr_final", finite(t.lr_final) and t.lr_final >= 0, "a finite number >= 0"),
             ("lr_decay_start", t.lr_decay_start >= 0, "a whole number >= 0"),
             ("max_steps", t.max_steps >= 1, "a whole number >= 1"),
             ("max_minutes", t.max_minutes is None or (finite(t.max_minutes) and t.max_minutes >= 0),
              "a finite number of minutes >= 0 (0: no limit)"),
             ("crop_frames", t.crop_frames is None or t.crop_frames >= 1, "a whole number >= 1 (or null)"),
             ("grad_clip", finite(t.grad_clip) and t.grad_clip >= 0, "a finite number >= 0 (0: none)"),
             ("ema_decay", t.ema_decay is None or 0 <= t.ema_decay < 1, "in [0, 1) (or null: no EMA)"),
             ("checkpoint_every", t.checkpoint_every >= 1, "a whole number >= 1"),
             ("snapshot_every", t.snapshot_every is None or t.snapshot_every >= 0, "a whole number >= 0 (or null)"),
             ("validate_every", t.validate_every >= 0, "a whole number >= 0 (0: never)"),
             ("val_sampler", t.val_sampler in SAMPLERS, f"one of {SAMPLERS}"),
             ("val_steps", t.val_steps >= 1, "a whole number >= 1"),
             ("log_every", t.log_every >= 1, "a whole number >= 1"),
             ("seed", 0 <= t.seed < 2 ** 63, "a whole number from 0 to 2**63 - 1")]
    for name, ok, what in rules:
        if not ok:
            raise ValueError(f"{name} must be {what}, got {getattr(t, name)!r}")
    if not (finite(cfg.diffusion.p) and 0 <= cfg.diffusion.p <= 1):
        raise ValueError(f"p (the dropout probability) must be in [0, 1], got {cfg.diffusion.p!r}")
    if cfg.diffusion.extend_T < 0:
        raise ValueError(f"extend_T (steps past T for generation) must be a whole number >= 0, got {cfg.diffusion.extend_T!r}")
    Diffusion.from_config(cfg.diffusion)  # the schedule's own checks (β below 1)
    check_precision(t.precision)
    learning_rate(t, 0)  # the schedule's own checks


def precision_of(precision: str, device: torch.device) -> str:
    """``fp32`` or ``bf16`` (autocast) for a :attr:`TrainConfig.precision` on ``device``:
    ``auto`` is bf16 on CUDA and fp32 on CPU."""
    check_precision(precision)
    if precision == "auto":
        return "bf16" if device.type == "cuda" else "fp32"
    return precision
