"""What one training step reads and weighs: the batches of step n (a pure function of n, so a
resumed run continues the same run), random crops, the loss weights of the roll's rows and cells
(Eq. 3's L2, weighted), the trained parameters and the learning-rate schedule."""
from __future__ import annotations

import math
from typing import Any

import torch
import torch.distributed as dist

from ..core.config import Config

CROP_SEED = 500_009  # the crops of step n are drawn from seed·1,000,003 + n + CROP_SEED


def row_weights(cfg: Config) -> torch.Tensor | None:
    """(R,) loss weights of the roll's rows from :attr:`RollConfig.channel_weights` (None: equal)."""
    weights = cfg.roll.channel_weights
    if weights is None:
        return None
    if len(weights) != len(cfg.roll.roll_channels) or min(weights) < 0 or max(weights) <= 0:
        raise ValueError(f"channel_weights {weights}: one non-negative weight per roll channel "
                         f"{cfg.roll.roll_channels}, not all zero")
    return torch.tensor(weights, dtype=torch.float32).repeat_interleave(cfg.model.n_keys)


def velocity_note_weight(cfg: Config) -> float:
    """:attr:`RollConfig.velocity_note_weight`, checked (> 0)."""
    k = cfg.roll.velocity_note_weight
    if not k > 0:
        raise ValueError(f"velocity_note_weight must be > 0, got {k!r}")
    return k


def cell_weights(cfg: Config, roll: torch.Tensor) -> torch.Tensor | None:
    """(B, R, F) extra loss weights of a batch of rolls: ``velocity_note_weight`` on the velocity
    rows where the frame channel says a note sounds, 1 elsewhere (None when it is 1).

    Why: off a note the velocity target is 0, so most of the velocity channel's error is about
    *where* notes are (already the frame channel's job); weighing the error on the notes' own
    frames makes the loss about *how loud* they are.
    """
    k, channels = velocity_note_weight(cfg), cfg.roll.roll_channels
    if k == 1 or "velocity" not in channels:
        return None
    if "frame" not in channels:
        raise ValueError("velocity_note_weight needs a frame channel to know where notes sound")
    keys = cfg.model.n_keys
    weights = torch.ones_like(roll, dtype=torch.float32)
    v, f = channels.index("velocity"), channels.index("frame")
    weights[:, v * keys:(v + 1) * keys] += (k - 1) * (roll[:, f * keys:(f + 1) * keys].float() > 0.5)
    return weights


def world() -> tuple[int, int]:
    """(rank, number of processes) of a data-parallel run; (0, 1) otherwise."""
    if dist.is_available() and dist.is_initialized():
        return dist.get_rank(), dist.get_world_size()
    return 0, 1


class Stream:
    """An endless, reshuffled-every-epoch walk over a dataset: sample j of the walk is
    ``perm(epoch = j // N)[j % N]``, so batch b holds samples b·B .. b·B + B − 1 and any batch can
    be drawn again from its number alone (resuming; a background thread reading ahead)."""

    def __init__(self, dataset, seed: int, name: str):
        if len(dataset) == 0:
            raise ValueError(f"the {name} dataset is empty")
        self.dataset, self.seed, self.name = dataset, seed, name
        self._perms: dict[int, torch.Tensor] = {}

    def _order(self, epoch: int) -> torch.Tensor:
        if epoch not in self._perms:
            g = torch.Generator().manual_seed(self.seed * 7919 + epoch)
            self._perms = {epoch: torch.randperm(len(self.dataset), generator=g)}  # keep one epoch
        return self._perms[epoch]

    def indices(self, batch: int, batch_size: int) -> list[int]:
        n = len(self.dataset)
        return [int(self._order(j // n)[j % n]) for j in range(batch * batch_size, (batch + 1) * batch_size)]


def _stack(batch: Any, key: str) -> torch.Tensor:
    """A column of a batch as one float32 tensor (Arrow datasets give tensors or lists of them)."""
    value = batch[key]
    if isinstance(value, torch.Tensor):
        return value.float()
    return torch.stack([torch.as_tensor(v) for v in value]).float()


def random_crop(tensors: list[torch.Tensor], frames: int | None, g: torch.Generator,
                part: tuple[int, int] = (0, 1)) -> list[torch.Tensor]:
    """The same random crop of ``frames`` frames (per example) from each (B, C, F) tensor; with
    ``part = (k, n)`` the starts are part k of those drawn for n·B examples."""
    full = tensors[0].shape[-1]
    if frames is None or frames >= full:
        return tensors
    B, (k, n) = tensors[0].shape[0], part
    starts = torch.randint(0, full - frames + 1, (n * B,), generator=g)[k * B:(k + 1) * B]
    idx = (starts[:, None] + torch.arange(frames)[None]).to(tensors[0].device)
    return [torch.gather(t, 2, idx[:, None, :].expand(-1, t.shape[1], -1)) for t in tensors]


def trained_parameters(model: torch.nn.Module, train_only: list[str] | None) -> list[torch.nn.Parameter]:
    """The parameters Adam updates: all, or those under the modules named in ``train_only`` (e.g.
    ``["velocity_head"]`` to train a head added to a trained network); the others are frozen
    (``requires_grad`` off, so the backward pass skips them)."""
    if train_only is None:
        return list(model.parameters())
    modules = dict(model.named_modules())
    unknown = [name for name in train_only if name not in modules or not name]
    if unknown:
        tops = sorted(name for name, _ in model.named_children())
        raise ValueError(f"train_only names {unknown}, not modules of this model (its top modules: {tops})")
    chosen = {id(p) for name in train_only for p in modules[name].parameters()}
    if not chosen:
        raise ValueError(f"train_only {train_only}: these modules have no parameters")
    for p in model.parameters():
        p.requires_grad_(id(p) in chosen)
    return [p for p in model.parameters() if id(p) in chosen]


LR_SCHEDULES = ("constant", "cosine")


def learning_rate(train_cfg, step: int) -> float:
    """Adam's learning rate at ``step`` (a function of the step only, so a resumed run continues it):
    ``constant``: ``lr``; ``cosine``: ``lr`` until ``lr_decay_start``, then half a cosine down to
    ``lr_final`` at ``max_steps`` (then ``lr_final``). Resuming a constant-lr run with
    ``lr_decay_start`` at its step anneals it with its own Adam state."""
    if train_cfg.lr_schedule == "constant":
        return train_cfg.lr
    if train_cfg.lr_schedule != "cosine":
        raise ValueError(f"unknown lr_schedule {train_cfg.lr_schedule!r}; choose one of {LR_SCHEDULES}")
    start = train_cfg.lr_decay_start
    if not 0 <= start < train_cfg.max_steps:
        raise ValueError(f"lr_decay_start {start} must be in [0, max_steps = {train_cfg.max_steps})")
    progress = min(max(step - start, 0) / (train_cfg.max_steps - start), 1.0)
    return train_cfg.lr_final + (train_cfg.lr - train_cfg.lr_final) * 0.5 * (1 + math.cos(math.pi * progress))
