"""The trainer: Adam on the L2 loss of Eq. 3 with classifier-free dropout, EMA, checkpoints, and
data-parallel training under torchrun.

Data are "segments" datasets (anything indexable by a list of indices that returns ``mel``
(B, n_mels, F) and ``roll`` (B, R, F), e.g. :func:`diffroll.corpus.segments.segment_dataset`), optionally
with a roll-only dataset (``roll`` only; c_mel = -1). Training on:
- paired only: dropout p from the config (p = 0.1 in the paper);
- roll-only only: unpaired pretraining, p = 1 (§4.2);
- both: the paper's "p = 0 + 1" — paired batches with p = 0 alternate with roll-only batches.

All randomness of step n (crops, t, ε, dropout) comes from generators seeded by (seed, n), and
the batches of step n are a pure function of n (:class:`~diffroll.training.steps.Stream`), so a resumed run continues the
same run. The next batch is read and cropped in a background thread while the current step runs.
With ``precision="bf16"`` the forward pass runs under bf16 autocast (CPU or CUDA).

Runs that cannot work stop early: :func:`~diffroll.training.checks.check_config` refuses a bad setting (a wrong type, a learning
rate that is not a positive number, a batch of 0...) before any work, and training stops at the first
non-finite loss with a :class:`~diffroll.training.checks.TrainingError`, without saving over the last good checkpoint (nor
is a checkpoint with non-finite weights ever written).

Data parallel (``torchrun --nproc_per_node N -m diffroll train ...``): each of the N processes
takes its 1/N of every global batch of N × ``batch_size`` examples and draws that part's share of
the global batch's random numbers, and DistributedDataParallel averages the gradients, so N
processes follow the run that one process would make with the N-times larger batch. Rank 0 logs,
validates and writes the (atomic) checkpoints; every rank resumes from them.
"""
from __future__ import annotations

import copy
import csv
import dataclasses
import json
import logging
import math
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.distributed as dist
from tqdm.auto import tqdm

from ..core.checkpoint import CheckpointError, config_of, load_checkpoint, save_checkpoint
from ..core.config import Config
from ..core.diffusion import Diffusion
from ..evaluation.runners import evaluate_pieces
from ..transcription.pipeline import Pipeline, new_model
from .checks import TrainingError, check_config, pick_device, precision_of
from .steps import (CROP_SEED, Stream, _stack, cell_weights, learning_rate, random_crop, row_weights,
                    trained_parameters, velocity_note_weight, world)

log = logging.getLogger("diffroll.training.trainer")

VAL_LOSS_SEGMENTS = 32  # validation loss: the first segments of the validation set, fixed t and ε
VAL_LOSS_SEED = 12_345


class Trainer:
    """One training run (see the module docstring); ``fit`` is the loop."""

    def __init__(self, cfg: Config, paired=None, unpaired=None, run_dir: str | Path | None = None,
                 val_segments=None, val_pieces: list | None = None, device: str | None = None,
                 init_from: str | Path | None = None, resume: bool = True, compile: bool | None = None,
                 progress: bool = True):
        if paired is None and unpaired is None:
            raise ValueError("give a paired dataset, a roll-only dataset, or both")
        check_config(cfg)
        self.cfg = cfg
        self.rank, self.world = world()
        self.device = pick_device(device)
        self.run_dir = Path(run_dir) if run_dir is not None else None
        self.progress = progress and self.rank == 0
        torch.manual_seed(cfg.train.seed)
        self.model = new_model(cfg).to(self.device)
        self.lineage: list[dict] = []  # the runs whose weights this one started from: [{checkpoint, step}, ...]
        if init_from is not None:
            self._init_weights(init_from)
        self.trained = trained_parameters(self.model, cfg.train.train_only)
        self.ema = copy.deepcopy(self.model).requires_grad_(False) if cfg.train.ema_decay else None
        self.optimizer = torch.optim.Adam(self.trained, lr=learning_rate(cfg.train, 0))
        self.diffusion = Diffusion.from_config(cfg.diffusion)
        self.row_weights = row_weights(cfg)
        velocity_note_weight(cfg)  # a bad value is refused now, not at step 1
        self.streams = {}
        if paired is not None:
            self.streams["paired"] = Stream(paired, cfg.train.seed, "paired")
        if unpaired is not None:
            self.streams["unpaired"] = Stream(unpaired, cfg.train.seed + 1, "roll-only")
        self.val_segments, self.val_pieces = val_segments, val_pieces or []
        self.step, self.wall_seconds, self.history = 0, 0.0, []
        forward = self.model
        if self.world > 1:
            forward = torch.nn.parallel.DistributedDataParallel(
                self.model, device_ids=[self.device.index] if self.device.type == "cuda" else None)
        compile = cfg.train.compile if compile is None else compile
        use_compile = self.device.type == "cuda" if compile is None else compile
        self._forward = torch.compile(forward) if use_compile else forward
        self.autocast = precision_of(cfg.train.precision, self.device) == "bf16"
        self._reader = ThreadPoolExecutor(max_workers=1, thread_name_prefix="batches")
        self._ahead: dict[int, Any] = {}  # step -> future of its batch
        if resume and self.checkpoint_path is not None and self.checkpoint_path.exists():
            self.load(self.checkpoint_path)

    # -- state -------------------------------------------------------------------------------
    @property
    def checkpoint_path(self) -> Path | None:
        return self.run_dir / "checkpoint.pt" if self.run_dir is not None else None

    def _init_weights(self, path) -> None:
        """Start from a checkpoint's weights (EMA if kept). The run may add a velocity head, or roll
        channels after the source's (e.g. ``pedal``): their input and output rows start at zero, so
        the network starts as the source's and learns the new rows."""
        state = load_checkpoint(path)
        src = config_of(state, path)
        heads = [h for h in ("velocity_head", "pedal_head")  # heads added to a trained net
                 if not getattr(src.model, h) and getattr(self.cfg.model, h)]
        same = dataclasses.replace(src.model, **{h: getattr(self.cfg.model, h) for h in heads})
        src_channels, channels = list(src.roll.roll_channels), list(self.cfg.roll.roll_channels)
        if same != self.cfg.model or channels[:len(src_channels)] != src_channels:
            raise CheckpointError(f"{path}: init_from model {src.model} (roll {src.roll.roll_channels}) differs "
                                  f"from this run's {self.cfg.model} (roll {self.cfg.roll.roll_channels}; "
                                  "a run may only add roll channels after the source's)")
        self.lineage = list(state.get("lineage", [])) + [{"checkpoint": Path(path).name, "step": int(state.get("step", 0))}]
        weights = {k: v.float() for k, v in (state["ema"] if state.get("ema") is not None else state["model"]).items()}
        if len(channels) > len(src_channels):
            log.info("init_from %s: new roll channels %s start at zero", path, channels[len(src_channels):])
            own = self.model.state_dict()
            for name, dim in (("input_proj.weight", 1), ("output_proj.weight", 0), ("output_proj.bias", 0)):
                grown = torch.zeros_like(own[name])
                grown.narrow(dim, 0, weights[name].shape[dim]).copy_(weights[name])
                weights[name] = grown
        missing, unexpected = self.model.load_state_dict(weights, strict=False)
        if unexpected or any(not any(k.startswith(h + ".") for h in heads) for k in missing):
            raise CheckpointError(f"{path}: weights do not fit this run's model (missing {missing}, "
                                  f"unexpected {unexpected})")

    def state_dict(self) -> dict[str, Any]:
        return {
            "config": self.cfg.to_dict(),
            "model": self.model.state_dict(),
            "ema": self.ema.state_dict() if self.ema is not None else None,
            "optimizer": self.optimizer.state_dict(),
            "step": self.step,
            "lineage": self.lineage,
            "history": self.history,
            "wall_seconds": self.wall_seconds,
        }

    def save(self, path: str | Path | None = None) -> Path:
        path = Path(path) if path is not None else self.checkpoint_path
        if path is None:
            raise ValueError("no run_dir and no path: where should the checkpoint go?")
        self._check_finite()
        return save_checkpoint(path, self.state_dict())

    def _check_finite(self) -> None:
        """TrainingError when a weight is NaN or infinite: such a run is never saved."""
        for name, p in (self.model.named_parameters() if self.ema is None else
                        [*self.model.named_parameters(), *self.ema.named_parameters()]):
            if not torch.isfinite(p).all():
                raise TrainingError(f"step {self.step}: weight {name} is NaN or infinite: not saved (the last "
                                    f"checkpoint is kept); lower the learning rate (lr {self.cfg.train.lr:g})")

    def save_weights(self, path: str | Path, half: bool = False) -> Path:
        """Inference-only weights (EMA when kept) + config + history: what ``load_pipeline`` needs;
        ``half``: float16 weights (the bundled model)."""
        self._check_finite()
        weights = (self.ema if self.ema is not None else self.model).state_dict()
        if half:
            weights = {k: v.half() if v.is_floating_point() else v for k, v in weights.items()}
        return save_checkpoint(path, {"config": self.cfg.to_dict(), "model": weights, "step": self.step,
                                      "lineage": self.lineage, "history": self.history,
                                      "wall_seconds": self.wall_seconds})

    def load(self, path: str | Path) -> None:
        """Resume from a training checkpoint (weights, EMA, optimizer, step, history)."""
        state = load_checkpoint(path, map_location=self.device)
        saved = config_of(state, path)
        if (saved.model, saved.diffusion, saved.roll) != (self.cfg.model, self.cfg.diffusion, self.cfg.roll):
            raise CheckpointError(f"{path}: checkpoint was trained with a different model/diffusion/roll config; "
                                  f"use another run_dir or init_from= to fine-tune")
        if state.get("optimizer") is None:
            raise CheckpointError(f"{path}: a weights-only checkpoint (no optimizer state) cannot be resumed; "
                                  "start a new run from its weights with init_from=")
        self.model.load_state_dict(state["model"])
        if self.ema is not None and state.get("ema") is not None:
            self.ema.load_state_dict(state["ema"])
        self.optimizer.load_state_dict(state["optimizer"])
        self.step = int(state["step"])
        self.lineage = list(state.get("lineage", []))
        self.wall_seconds = float(state.get("wall_seconds", 0.0))
        self.history = list(state.get("history", []))

    @property
    def pipeline(self) -> Pipeline:
        """The weights to evaluate (the EMA when kept) with this run's config."""
        return Pipeline(self.ema if self.ema is not None else self.model, self.cfg)

    # -- one step ------------------------------------------------------------------------------
    def _source(self, step: int) -> tuple[str, float, int]:
        """Which stream feeds ``step``, its dropout p, and the number of that stream's batch."""
        if len(self.streams) == 2:  # p = 0 + 1: alternate paired (p = 0) and roll-only (p = 1)
            return ("paired", 0.0, step // 2) if step % 2 == 0 else ("unpaired", 1.0, step // 2)
        if "paired" in self.streams:
            return "paired", self.cfg.diffusion.p, step
        return "unpaired", 1.0, step

    def _read_batch(self, step: int) -> tuple[torch.Tensor, torch.Tensor]:
        """This process's part of the (mel, roll) batch of ``step``, cropped (in the reader thread)."""
        name, _, number = self._source(step)
        stream, B = self.streams[name], self.cfg.train.batch_size
        indices = stream.indices(number, B * self.world)[self.rank * B:(self.rank + 1) * B]
        batch = stream.dataset[indices]
        roll = _stack(batch, "roll")
        if "mel" in batch:
            mel = _stack(batch, "mel")
        else:
            mel = torch.full((roll.shape[0], self.cfg.model.n_mels, roll.shape[-1]), -1.0, device=roll.device)
        g = torch.Generator().manual_seed(self.cfg.train.seed * 1_000_003 + step + CROP_SEED)
        return tuple(random_crop([mel, roll], self.cfg.train.crop_frames, g, part=(self.rank, self.world)))

    def _batch(self, step: int) -> tuple[torch.Tensor, torch.Tensor]:
        """This step's batch (read ahead if it was), and start reading the next one."""
        ahead = self._ahead.pop(step, None)
        mel, roll = ahead.result() if ahead is not None else self._read_batch(step)
        self._ahead = {step + 1: self._reader.submit(self._read_batch, step + 1)}
        return mel.to(self.device, non_blocking=True), roll.to(self.device, non_blocking=True)

    def train_step(self) -> float:
        """One optimizer step; returns the loss of the (global) batch."""
        # t, ε and dropout of this step, drawn where the model runs (a CPU generator would make
        # ε for a GPU batch on the CPU and copy it over: slower than the step itself)
        g = torch.Generator(device=self.device).manual_seed(self.cfg.train.seed * 1_000_003 + self.step)
        _, p, _ = self._source(self.step)
        mel, roll = self._batch(self.step)
        self.model.train()
        with torch.autocast(self.device.type, dtype=torch.bfloat16, enabled=self.autocast):
            loss = self.diffusion.training_loss(self._forward, roll, mel, p=p, mode=self.cfg.train.mode,
                                                generator=g, part=(self.rank, self.world),
                                                row_weights=self.row_weights, cell_weights=cell_weights(self.cfg, roll))
        self.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        for group in self.optimizer.param_groups:
            group["lr"] = learning_rate(self.cfg.train, self.step)
        if self.cfg.train.grad_clip:
            torch.nn.utils.clip_grad_norm_(self.trained, self.cfg.train.grad_clip)
        self.optimizer.step()
        if self.ema is not None:
            self._update_ema()
        self.step += 1
        return float(loss.detach())

    @torch.no_grad()
    def _update_ema(self) -> None:
        """EMA of the weights with the usual warm-up, decay = min(d, (1 + n) / (10 + n)), so that
        a short run's EMA is not dominated by the initial (zero-output) weights."""
        decay = min(self.cfg.train.ema_decay, (1 + self.step) / (10 + self.step))
        for ema_p, p in zip(self.ema.parameters(), self.model.parameters()):
            ema_p.lerp_(p, 1 - decay)
        for ema_b, b in zip(self.ema.buffers(), self.model.buffers()):
            ema_b.copy_(b)

    # -- validation ----------------------------------------------------------------------------
    @torch.no_grad()
    def validate(self, n_pieces: int | None = None, seconds: float = 20.0) -> dict[str, float]:
        """Validation loss (fixed t, ε) and the note scores (:mod:`diffroll.evaluation.metrics`) of the first
        ``seconds`` of the validation pieces ((name, group, wave, notes) tuples), sampled with the
        config's ``train.val_sampler`` x ``train.val_steps`` (fast; not the paper's DDPM over all T)."""
        pipe = self.pipeline
        pipe.model.eval()
        out: dict[str, float] = {"step": self.step}
        if self.val_segments is not None and len(self.val_segments):
            batch = self.val_segments[list(range(min(len(self.val_segments), VAL_LOSS_SEGMENTS)))]
            mel, roll = _stack(batch, "mel").to(self.device), _stack(batch, "roll").to(self.device)
            out["val_loss"] = float(self.diffusion.training_loss(pipe.model, roll, mel, p=0.0, mode=self.cfg.train.mode,
                                                                 generator=torch.Generator().manual_seed(VAL_LOSS_SEED),
                                                                 row_weights=self.row_weights))
        rows = evaluate_pieces(pipe, self.val_pieces[:n_pieces], pipe.sampling.replace(sampler=self.cfg.train.val_sampler, steps=self.cfg.train.val_steps),
                               max_seconds=seconds, progress=False)
        for key in ("f1", "f1_offset", "f1_velocity") if rows else ():
            out[f"val_note_{key}"] = float(np.mean([r[key] for r in rows]))
        return out

    # -- the loop ------------------------------------------------------------------------------
    def fit(self, max_steps: int | None = None, max_minutes: float | None = None) -> list[dict]:
        """Train until ``max_steps`` (total, counting resumed steps) or ``max_minutes`` of this call."""
        t = self.cfg.train
        max_steps = t.max_steps if max_steps is None else max_steps
        max_minutes = t.max_minutes if max_minutes is None else max_minutes
        deadline = time.monotonic() + 60 * max_minutes if max_minutes else math.inf
        bar = tqdm(total=max_steps, initial=self.step, desc=f"train {t.mode}", unit="step",
                   disable=not self.progress, dynamic_ncols=True)
        recent: list[float] = []
        last = time.monotonic()
        while self.step < max_steps and not self._out_of_time(deadline):
            loss = self._mean_over_processes(self.train_step())
            if not math.isfinite(loss):
                bar.close()
                raise TrainingError(self._diverged(loss))
            recent.append(loss)
            now = time.monotonic()
            self.wall_seconds += now - last
            last = now
            bar.update(1)
            if self.step % t.log_every == 0 or self.step == max_steps:
                row = {"step": self.step, "loss": float(np.mean(recent)), "wall_seconds": round(self.wall_seconds, 2)}
                self.history.append(row)
                bar.set_postfix(loss=f"{row['loss']:.4f}")
                recent = []
            if t.validate_every and self.step % t.validate_every == 0 and self.rank == 0:
                self.history.append(self.validate())
                last = time.monotonic()  # validation time is not training time
            if self.run_dir is not None and self.step % t.checkpoint_every == 0:
                self._checkpoint()
            if self.run_dir is not None and t.snapshot_every and self.step % t.snapshot_every == 0 and self.rank == 0:
                self.save_weights(self.run_dir / f"weights-step{self.step}.pt")
        bar.close()
        if self.run_dir is not None:
            self._checkpoint()
        return self.history

    def _diverged(self, loss: float) -> str:
        kept = self.checkpoint_path if self.checkpoint_path is not None and self.checkpoint_path.exists() else None
        return (f"step {self.step}: the training loss is {loss} (lr {learning_rate(self.cfg.train, self.step - 1):g}): "
                f"stopped, nothing saved{f' (the last good checkpoint {kept} is kept)' if kept else ''}; lower the "
                "learning rate (--lr), or resume from an earlier checkpoint")

    def _checkpoint(self) -> None:
        if self.rank == 0:
            self.save()
            self.write_logs()

    def _mean_over_processes(self, value: float) -> float:
        if self.world == 1:
            return value
        v = torch.tensor([value], dtype=torch.float64, device=self.device if self.device.type == "cuda" else "cpu")
        dist.all_reduce(v)
        return float(v) / self.world

    def _out_of_time(self, deadline: float) -> bool:
        """Past the deadline, as rank 0 sees it (all processes stop at the same step)."""
        late = time.monotonic() > deadline
        if self.world == 1:
            return late
        flag = torch.tensor([float(late and self.rank == 0)], device=self.device if self.device.type == "cuda" else "cpu")
        dist.all_reduce(flag)
        return bool(flag.item() > 0)

    def write_logs(self) -> None:
        """history.json and log.csv under the run folder."""
        self.run_dir.mkdir(parents=True, exist_ok=True)
        (self.run_dir / "history.json").write_text(json.dumps(self.history, indent=1))
        keys = sorted({k for row in self.history for k in row}, key=lambda k: (k != "step", k))
        with open(self.run_dir / "log.csv", "w", newline="") as f:
            writer = csv.DictWriter(f, fieldnames=keys)
            writer.writeheader()
            writer.writerows(self.history)


def throughput(cfg: Config, steps: int = 10, device: str | None = None, compile: bool = False) -> dict[str, float]:
    """Measured training steps/s and samples/s of ``cfg`` on random data, forward + backward +
    Adam at the config's precision, the network eager or through ``torch.compile`` (timed after
    the warm-up steps that compile it; ``benchmarks/train_throughput.py``)."""
    dev = pick_device(device)
    model = new_model(cfg).to(dev)
    net = torch.compile(model) if compile else model
    opt = torch.optim.Adam(model.parameters(), lr=cfg.train.lr)
    diffusion = Diffusion.from_config(cfg.diffusion)
    frames = cfg.train.crop_frames or cfg.audio.segment_frames
    B = cfg.train.batch_size
    roll = (torch.rand(B, model.rows, frames, device=dev) > 0.95).float()
    mel = torch.rand(B, cfg.model.n_mels, frames, device=dev)
    bf16 = precision_of(cfg.train.precision, dev) == "bf16"
    for i in range(steps + 2):
        if i == 2:
            if dev.type == "cuda":
                torch.cuda.synchronize()
            start = time.perf_counter()
        with torch.autocast(dev.type, dtype=torch.bfloat16, enabled=bf16):
            loss = diffusion.training_loss(net, roll, mel, p=cfg.diffusion.p)
        opt.zero_grad()
        loss.backward()
        opt.step()
    if dev.type == "cuda":
        torch.cuda.synchronize()
    sec = (time.perf_counter() - start) / steps
    return {"steps_per_s": 1 / sec, "samples_per_s": B / sec, "frames": frames, "batch_size": B,
            "precision": "bf16" if bf16 else "fp32", "compiled": compile}
