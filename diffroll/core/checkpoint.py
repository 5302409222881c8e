"""Checkpoints: one file with the config, weights (and EMA), optimizer state, step and data position.

Written atomically (temp file in the same folder, then ``os.replace``), so a process killed at any
moment leaves the previous checkpoint intact. :func:`load_pipeline` turns any checkpoint (a training
one or the bundled weights-only one) into a ready pipeline.

Integrity: every checkpoint written stores the SHA-256 of its weights (``weights_sha256``: the
``model`` and ``ema`` entries, names, dtypes, shapes and bytes), verified on load, so a corrupt file
(a flipped byte) is refused naming the file instead of transcribing nonsense; files written before
this (the bundled ones) load without it. Weights that are NaN or infinite are refused too, and any
unreadable file gives one line naming it.
"""
from __future__ import annotations

import hashlib
import pickle
import os
from pathlib import Path
from typing import Any

import torch

from .config import Config
from .paths import bundled_checkpoint

FORMAT = "diffroll-checkpoint-v1"
WEIGHTS = ("model", "ema")  # the entries the checksum covers


class CheckpointError(ValueError):
    """A checkpoint that cannot be used: missing, corrupt, or not matching its config."""


def weights_digest(weights: dict[str, torch.Tensor]) -> str:
    """SHA-256 of a state dict: each tensor's name, dtype, shape and bytes, in name order."""
    h = hashlib.sha256()
    for name in sorted(weights):
        t = weights[name].detach().cpu().contiguous()
        h.update(f"{name}|{t.dtype}|{tuple(t.shape)}|".encode())
        h.update(t.reshape(-1).view(torch.uint8).numpy().tobytes())
    return h.hexdigest()


def save_checkpoint(path: str | Path, state: dict[str, Any]) -> Path:
    """Write ``state`` (which must hold ``config`` as a dict and ``model`` weights) atomically,
    with the checksum of its weights."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    digests = {k: weights_digest(state[k]) for k in WEIGHTS if state.get(k) is not None}
    torch.save({"format": FORMAT, **state, "weights_sha256": digests}, tmp)
    os.replace(tmp, path)
    return path


def _unreadable(path: Path, err: Exception) -> CheckpointError:
    first = (str(err).strip().splitlines() or [""])[0]
    if isinstance(err, pickle.UnpicklingError) and "weights_only" in str(err):
        return CheckpointError(f"{path}: not a readable checkpoint (corrupt, or not written by diffroll: it asks for "
                               "Python objects beyond weights and settings, which are not loaded); give another file "
                               "or restore this one")
    return CheckpointError(f"{path}: not a readable checkpoint (truncated or corrupt: {type(err).__name__}"
                           f"{': ' + first if first else ''}); give another file or restore this one")


def _check_weights(path: Path, state: dict[str, Any]) -> None:
    """CheckpointError unless the weights are tensors matching the stored checksum and finite."""
    digests = state.get("weights_sha256") or {}
    for key in WEIGHTS:
        weights = state.get(key)
        if weights is None:
            continue
        if not isinstance(weights, dict) or not all(isinstance(v, torch.Tensor) for v in weights.values()):
            raise CheckpointError(f"{path}: its {key!r} entry is not a set of weights; give a file diffroll wrote")
        if key in digests and weights_digest(weights) != digests[key]:
            raise CheckpointError(f"{path}: corrupt: its {key} weights do not match the checksum stored with them "
                                  "(a changed byte); restore the file from a good copy")
        bad = [name for name, v in weights.items() if v.is_floating_point() and not torch.isfinite(v).all()]
        if bad:
            raise CheckpointError(f"{path}: {len(bad)} {key} weight tensor(s) hold NaN or infinite values (first: "
                                  f"{bad[0]}): the run that wrote it diverged; use an earlier checkpoint")


def load_checkpoint(path: str | Path, map_location: str | torch.device = "cpu") -> dict[str, Any]:
    """A checkpoint's contents, checked: a DiffRoll checkpoint with a config and weights that
    match their checksum (when stored) and are finite. CheckpointError naming the file otherwise."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"{path}: no such checkpoint file")
    try:
        state = torch.load(path, map_location=map_location, weights_only=True)
    except Exception as err:
        raise _unreadable(path, err) from err
    if not isinstance(state, dict) or state.get("format") != FORMAT:
        raise CheckpointError(f"{path}: not a DiffRoll checkpoint (expected format {FORMAT!r})")
    for key in ("config", "model"):
        if key not in state:
            raise CheckpointError(f"{path}: checkpoint has no {key!r} entry")
    _check_weights(path, state)
    return state


def config_of(state: dict[str, Any], path: str | Path = "<checkpoint>") -> Config:
    try:
        return Config.from_dict(state["config"])
    except (TypeError, ValueError, AttributeError, KeyError) as err:
        raise CheckpointError(f"{path}: checkpoint config is invalid: {err}") from err


def trained_steps(state: dict[str, Any]) -> str:
    """A checkpoint's training steps, with those of the runs it started from (``init_from``):
    e.g. ``"38000 + 4000"``; the plain step count for a run trained from scratch."""
    steps = [int(entry["step"]) for entry in state.get("lineage", [])] + [int(state.get("step", 0))]
    return " + ".join(str(n) for n in steps)


def export_weights(src: str | Path, dst: str | Path, use_ema: bool = True, half: bool = False,
                   settings: dict[str, dict[str, Any]] | None = None) -> Path:
    """A small inference-only copy of a training checkpoint: config + (EMA) weights + summary;
    ``half`` stores the weights in float16 (the bundled model: half the size, loaded as float32).
    ``settings`` replaces config values per section, e.g. decoding thresholds tuned on the
    validation split: ``{"roll": {"onset_threshold": 0.4}, "diffusion": {"w": 0.5}}``."""
    state = load_checkpoint(src)
    weights = state["ema"] if use_ema and state.get("ema") is not None else state["model"]
    if half:
        weights = {k: v.half() if v.is_floating_point() else v for k, v in weights.items()}
    config = config_of(state, src).to_dict()  # every setting, also those newer than the checkpoint
    for section, values in (settings or {}).items():
        if not isinstance(config.get(section), dict):
            raise CheckpointError(f"{src}: config has no section {section!r} to set {sorted(values)} in")
        unknown = sorted(set(values) - set(config[section]))
        if unknown:
            raise CheckpointError(f"{src}: config section {section!r} has no setting(s) {unknown}")
        config[section].update(values)
    config_of({"config": config}, dst)  # the new values must make a valid config
    keep = {k: state[k] for k in ("step", "lineage", "history", "summary", "wall_seconds") if k in state}
    return save_checkpoint(dst, {"config": config, "model": weights, **keep})
