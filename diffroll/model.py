"""The DiffRoll network (§3, Fig. 1): a DiffWave-style 1-D conv net f_θ(x_t, t, c_mel) -> x̂0.

x_t (B, R, τ) -> 1×1 conv to C channels -> N residual layers -> skip sum -> 1×1, ReLU, 1×1 ->
x̂0 (B, R, τ), with R = 88 rows per roll channel (88 for the paper's frame roll, 264 for the
note-state roll of frame, onset and velocity; see :mod:`diffroll.roll`). Each residual layer (as in DiffWave) adds the step embedding, applies a k-wide
dilated conv to 2C channels, adds a per-layer 1×1 projection of c_mel (229 -> 2C), gates with
tanh·σ and splits a 1×1 conv into residual and skip. The same class is the discriminative
baseline of §4.1 when it is always fed x_t = 0 and t = 1.
"""
from __future__ import annotations

import math

import torch
from torch import nn
import torch.nn.functional as F

from .config import ModelConfig


def step_embedding(t: torch.Tensor, dim: int) -> torch.Tensor:
    """Sinusoidal embedding of the diffusion step t (B,) -> (B, dim), as in DiffWave."""
    half = dim // 2
    freqs = torch.exp(-math.log(10_000.0) * torch.arange(half, device=t.device) / max(half - 1, 1))
    angles = t.float()[:, None] * freqs[None]
    return torch.cat([torch.sin(angles), torch.cos(angles)], dim=1)


class StepMLP(nn.Module):
    """t -> sinusoidal embedding -> 2-layer MLP (SiLU) -> (B, 512) shared by every layer."""

    def __init__(self, embed_dim: int, hidden: int = 512):
        super().__init__()
        self.embed_dim = embed_dim
        self.fc1 = nn.Linear(embed_dim, hidden)
        self.fc2 = nn.Linear(hidden, hidden)

    def forward(self, t: torch.Tensor) -> torch.Tensor:
        x = F.silu(self.fc1(step_embedding(t, self.embed_dim)))
        return F.silu(self.fc2(x))


class ResidualLayer(nn.Module):
    def __init__(self, channels: int, kernel_size: int, dilation: int, n_mels: int, step_hidden: int):
        super().__init__()
        self.step_proj = nn.Linear(step_hidden, channels)
        self.conv = nn.Conv1d(channels, 2 * channels, kernel_size, dilation=dilation,
                              padding=dilation * (kernel_size - 1) // 2)
        self.mel_proj = nn.Conv1d(n_mels, 2 * channels, 1)
        self.out_proj = nn.Conv1d(channels, 2 * channels, 1)
        nn.init.kaiming_normal_(self.conv.weight)
        nn.init.kaiming_normal_(self.mel_proj.weight)
        nn.init.kaiming_normal_(self.out_proj.weight)

    def forward(self, x, step, mel_term):
        y = self.conv(x + self.step_proj(step)[:, :, None]) + mel_term
        gate, filt = y.chunk(2, dim=1)
        residual, skip = self.out_proj(torch.sigmoid(gate) * torch.tanh(filt)).chunk(2, dim=1)
        return (x + residual) / math.sqrt(2.0), skip


class PreparedMel(tuple):
    """Per-layer mel projections (each (B, 2C, τ)): step-independent, computed once per sampling run."""


class DiffRoll(nn.Module):
    """f_θ(x_t, t, c_mel) -> x̂0 of Eq. 2; c_mel = -1 everywhere is the unconditional model."""

    def __init__(self, cfg: ModelConfig | None = None, roll_channels: int = 1):
        super().__init__()
        self.cfg = cfg = cfg or ModelConfig()
        self.rows = cfg.n_keys * roll_channels  # R: rows of x_t and x̂0
        step_hidden = 512
        self.input_proj = nn.Conv1d(self.rows, cfg.channels, 1)
        self.step_mlp = StepMLP(cfg.step_embedding, step_hidden)
        self.layers = nn.ModuleList(
            ResidualLayer(cfg.channels, cfg.kernel_size, cfg.dilation_of(i), cfg.n_mels, step_hidden)
            for i in range(cfg.layers))
        self.skip_proj = nn.Conv1d(cfg.channels, cfg.channels, 1)
        self.output_proj = nn.Conv1d(cfg.channels, self.rows, 1)
        nn.init.kaiming_normal_(self.input_proj.weight)
        nn.init.kaiming_normal_(self.skip_proj.weight)
        nn.init.zeros_(self.output_proj.weight)  # x̂0 starts at 0 (zero-initialised output, as DiffWave)
        nn.init.zeros_(self.output_proj.bias)

    def prepare_condition(self, mel: torch.Tensor) -> PreparedMel:
        """The per-layer 1×1 projections of c_mel: they do not depend on x_t or t, so samplers
        compute them once per run (see :meth:`diffroll.diffusion.Diffusion.sample`)."""
        return PreparedMel(layer.mel_proj(mel) for layer in self.layers)

    def forward(self, x_t: torch.Tensor, t: torch.Tensor, mel: torch.Tensor | PreparedMel) -> torch.Tensor:
        """x_t (B, R, τ), t (B,) integers in 1..T, mel (B, 229, τ) or :meth:`prepare_condition`'s
        result -> x̂0 (B, R, τ)."""
        if t.dim() == 0:
            t = t.expand(x_t.shape[0])
        mel_terms = mel if isinstance(mel, PreparedMel) else self.prepare_condition(mel)
        x = F.relu(self.input_proj(x_t))
        step = self.step_mlp(t)
        skips = 0.0
        for layer, mel_term in zip(self.layers, mel_terms):
            x, skip = layer(x, step, mel_term)
            skips = skips + skip
        x = F.relu(self.skip_proj(skips / math.sqrt(len(self.layers))))
        return self.output_proj(x)


def count_parameters(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())
