"""A DiffRoll network whose weights are shared by the 88 keys (beyond the paper).

The paper's network (:class:`diffroll.core.model.DiffRoll`) projects the 229 mel bins and the R roll
rows into one C-channel state per frame: every key is learned on its own. Here the state is
(C, 88, τ), C channels per key, and every layer is a 2-D convolution over (key, time), so one
set of weights serves every key, as in basic-pitch. The conditioning is the key-aligned harmonic
CQT of :class:`diffroll.core.audio.HarmonicCQTFrontend` (``AudioConfig.frontend = "hcqt"``): its rows
(channel, key) viewed as (H, 88, τ).

f_θ(x_t, t, c) -> x̂0 (Eq. 2), the same contract as :class:`~diffroll.core.model.DiffRoll`:

- x_t (B, R, τ), R = 88 per roll channel, viewed as (B, channels, 88, τ); the note channels
  (frame, onset, velocity) are read, a pedal channel is not (see :class:`~diffroll.core.model.DiffRoll`).
- 1×1 conv to C channels (+ an optional learned bias per key, ``key_embedding``, the one thing
  that is not shared: it starts at 0) -> N residual layers -> skip sum -> 1×1, ReLU, 1×1 ->
  one x̂0 row per key and note channel. A pedal channel's rows come from the skip features averaged
  over the keys (one value a frame, written to all 88 pedal rows).
- Each residual layer (DiffWave's, in 2-D) adds the step embedding, applies a
  ``key_kernel`` × ``kernel_size`` conv (dilated over time) to 2C channels, adds a 1×1 projection
  of the encoded c, gates with tanh·σ and splits a 1×1 conv into residual and skip (each 2C
  conv as two C-channel ones, :class:`KeyResidualLayer`).
- c = -1 everywhere (classifier-free dropout, Algorithm 1 line 4) is the unconditional model,
  as before; Eq. 1, Eq. 3 and Algorithm 1 do not change (:mod:`diffroll.core.diffusion`).

Without ``key_embedding`` the network commutes with shifting keys: moving c and x_t by k keys
moves x̂0 by k keys, except within the receptive field of the key edges (zero padding there).
"""
from __future__ import annotations

import math
from collections.abc import Sequence

import torch
from torch import nn
import torch.nn.functional as F

from .config import ModelConfig
from .model import StepMLP

CHANNELS_LAST = torch.channels_last  # (B, 88, τ, C) in memory: 2-3x faster small-channel convs on CPU


class KeyResidualLayer(nn.Module):
    """One DiffWave residual layer over (key, time): (B, C, 88, τ) -> (residual out, skip).

    The 2C-channel convolutions of DiffWave are kept as pairs of C-channel ones (gate and filter;
    residual and skip): in channels-last memory each half is then contiguous, which makes the
    gate's tanh and σ several times faster on CPU than on the strided halves of one tensor. The
    filter's tanh is written 2σ(f) − 1 (= tanh(f/2): the same gate with the filter's weights halved),
    as PyTorch's CPU σ is several times faster than its tanh (0.36 against 2.2 ms on (2, 16, 88, 312)).
    """

    def __init__(self, channels: int, key_kernel: int, time_kernel: int, dilation: int, step_hidden: int):
        super().__init__()
        self.step_proj = nn.Linear(step_hidden, channels)
        kernel, padding = (key_kernel, time_kernel), (key_kernel // 2, dilation * (time_kernel - 1) // 2)
        self.gate_conv, self.filter_conv = (nn.Conv2d(channels, channels, kernel, dilation=(1, dilation),
                                                      padding=padding) for _ in range(2))
        self.gate_cond, self.filter_cond = (nn.Conv2d(channels, channels, 1) for _ in range(2))
        self.residual_out, self.skip_out = (nn.Conv2d(channels, channels, 1) for _ in range(2))
        for conv in (self.gate_conv, self.filter_conv, self.gate_cond, self.filter_cond, self.residual_out,
                     self.skip_out):
            nn.init.kaiming_normal_(conv.weight)

    def condition(self, encoded: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """The encoded c's terms of the gate and the filter (step-independent)."""
        return self.gate_cond(encoded), self.filter_cond(encoded)

    def forward(self, x, step, cond_terms):
        gate_term, filter_term = cond_terms
        y = x + self.step_proj(step)[:, :, None, None]
        filt = torch.sigmoid(self.filter_conv(y) + filter_term) * 2 - 1  # tanh(f / 2), see the class docstring
        h = torch.sigmoid(self.gate_conv(y) + gate_term) * filt
        return (x + self.residual_out(h)).mul_(1 / math.sqrt(2.0)), self.skip_out(h)


class PreparedKeys(tuple):
    """The per-layer projections of the encoded c (pairs of (B, C, 88, τ)): step-independent,
    computed once per sampling run (:meth:`KeySharedDiffRoll.prepare_condition`)."""


class KeySharedDiffRoll(nn.Module):
    """f_θ(x_t, t, c) -> x̂0 with weights shared by the keys; c = -1 everywhere is the unconditional model."""

    def __init__(self, cfg: ModelConfig, roll_channels: int | Sequence[str] = 1):
        """``roll_channels``: how many roll channels (all note channels), or their names; a
        ``pedal`` channel gets a head pooled over the keys. ``cfg.n_mels`` must be a multiple of
        ``cfg.n_keys`` (the HCQT's channels per key times 88)."""
        super().__init__()
        self.cfg = cfg
        names = [f"note{i}" for i in range(roll_channels)] if isinstance(roll_channels, int) else list(roll_channels)
        K, C = cfg.n_keys, cfg.channels
        if cfg.velocity_head or cfg.pedal_head:
            raise ValueError("the keyshared network has no velocity_head or pedal_head: set both to 0 "
                             "(its velocity rows are per key already; a pedal channel has its own pooled head)")
        if cfg.n_mels % K:
            raise ValueError(f"keyshared reads a key-aligned c: n_mels ({cfg.n_mels}) must be a multiple "
                             f"of n_keys ({K}); use frontend=hcqt and its rows")
        if cfg.key_kernel % 2 == 0 or cfg.kernel_size % 2 == 0:
            raise ValueError(f"key_kernel ({cfg.key_kernel}) and kernel_size ({cfg.kernel_size}) must be odd")
        self.names = names
        self.rows = K * len(names)  # R: rows of x_t and x̂0
        self.notes = [i for i, n in enumerate(names) if n != "pedal"]
        self.pedal = names.index("pedal") if "pedal" in names else None
        self.cond_channels = cfg.n_mels // K
        step_hidden = 4 * C
        self.input_proj = nn.Conv2d(len(self.notes), C, 1)
        self.key_bias = nn.Parameter(torch.zeros(1, C, K, 1)) if cfg.key_embedding else None
        self.step_mlp = StepMLP(cfg.step_embedding, step_hidden)
        self.cond_encoder = nn.Conv2d(self.cond_channels, C, (cfg.key_kernel, cfg.kernel_size),
                                      padding=(cfg.key_kernel // 2, (cfg.kernel_size - 1) // 2))
        self.layers = nn.ModuleList(
            KeyResidualLayer(C, cfg.key_kernel, cfg.kernel_size, cfg.dilation_of(i), step_hidden)
            for i in range(cfg.layers))
        self.skip_proj = nn.Conv2d(C, C, 1)
        self.output_proj = nn.Conv2d(C, len(self.notes), 1)
        self.pedal_proj = nn.Conv1d(C, 1, 1) if self.pedal is not None else None
        for conv in (self.input_proj, self.cond_encoder, self.skip_proj):
            nn.init.kaiming_normal_(conv.weight)
        for out in (self.output_proj, self.pedal_proj):  # x̂0 starts at 0 (zero-initialised output, as DiffWave)
            if out is not None:
                nn.init.zeros_(out.weight)
                nn.init.zeros_(out.bias)

    def prepare_condition(self, cond: torch.Tensor) -> PreparedKeys:
        """c (B, H·88, τ), rows (channel, key) -> each layer's projection of the encoded c; they do not
        depend on x_t or t, so samplers compute them once per run (:func:`diffroll.core.diffusion.guided_denoiser`)."""
        B, _, frames = cond.shape
        cond = cond.reshape(B, self.cond_channels, self.cfg.n_keys, frames).contiguous(memory_format=CHANNELS_LAST)
        encoded = F.relu(self.cond_encoder(cond))
        return PreparedKeys(layer.condition(encoded) for layer in self.layers)

    def forward(self, x_t: torch.Tensor, t: torch.Tensor, cond: torch.Tensor | PreparedKeys) -> torch.Tensor:
        """x_t (B, R, τ), t (B,) integers in 1..T, c (B, H·88, τ) or :meth:`prepare_condition`'s
        result -> x̂0 (B, R, τ)."""
        if t.dim() == 0:
            t = t.expand(x_t.shape[0])
        terms = cond if isinstance(cond, PreparedKeys) else self.prepare_condition(cond)
        B, _, frames = x_t.shape
        K = self.cfg.n_keys
        notes_in = x_t.reshape(B, len(self.names), K, frames)[:, self.notes]
        x = self.input_proj(notes_in.contiguous(memory_format=CHANNELS_LAST))
        if self.key_bias is not None:
            x = x + self.key_bias
        x = F.relu(x)
        step = self.step_mlp(t)
        skips = 0.0
        for layer, term in zip(self.layers, terms):
            x, skip = layer(x, step, term)
            skips = skips + skip
        features = F.relu(self.skip_proj(skips / math.sqrt(len(self.layers))))
        notes_out = self.output_proj(features)  # (B, note channels, 88, τ)
        channels = list(notes_out.unbind(1))
        if self.pedal is not None:
            pedal = self.pedal_proj(features.mean(dim=2))  # (B, 1, τ): one value a frame
            channels.insert(self.pedal, pedal.expand(B, K, frames))
        return torch.stack(channels, dim=1).reshape(B, self.rows, frames)
