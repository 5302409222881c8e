"""The DiffRoll network (§3, Fig. 1): a DiffWave-style 1-D conv net f_θ(x_t, t, c_mel) -> x̂0.

x_t (B, R, τ) -> 1×1 conv to C channels -> N residual layers -> skip sum -> 1×1, ReLU, 1×1 ->
x̂0 (B, R, τ), with R = 88 rows per roll channel (88 for the paper's frame roll, 264 for the
note-state roll of frame, onset and velocity; see :mod:`diffroll.core.roll`). Each residual layer (as in DiffWave) adds the step embedding, applies a k-wide
dilated conv to 2C channels, adds a per-layer 1×1 projection of c_mel (229 -> 2C), gates with
tanh·σ and splits a 1×1 conv into residual and skip. The same class is the discriminative
baseline of §4.1 when it is always fed x_t = 0 and t = 1.

Beyond the paper, ``ModelConfig.velocity_head`` > 0 adds :class:`VelocityHead`: a small per-key
path from c_mel to the velocity rows, beside the shared C-channel state of the residual stack.
With a ``pedal`` roll channel the network predicts the pedal rows of x̂0 but does not read those of
x_t (see :class:`DiffRoll`); ``ModelConfig.pedal_head`` > 0 adds :class:`PedalHead`, a path from
c_mel to them that can be trained alone.
"""
from __future__ import annotations

import math
from collections.abc import Sequence

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
    """Per-layer mel projections (each (B, 2C, τ)): step-independent, computed once per sampling run;
    ``key_levels``: the velocity head's per-key mel levels (None without a head); ``mel``: c_mel itself
    (kept for a pedal head)."""

    key_levels: torch.Tensor | None = None
    mel: torch.Tensor | None = None


class VelocityHead(nn.Module):
    """A per-key path from c_mel to the velocity rows of x̂0 (beyond the paper).

    Why: the residual stack carries every key's frame, onset and velocity through one C-channel
    state per frame; a note's velocity is mostly its loudness at its own pitch just after the
    onset (see ``benchmarks/velocity_diagnosis.py``). Here a learned 1×1 map turns the 229 mel bins
    into ``levels`` values per key, each also taken relative to its loudest frame in the window
    (a rendering's overall gain is random, so only relative loudness says much); with the stack's
    x̂0 frame (and onset) rows, detached, a 2-D conv over (key, time), shared by all keys, gives
    a correction added to the velocity rows. Its output layer starts at zero, so adding the head
    to a trained network changes nothing until the head is trained (``TrainConfig.train_only``).

    In training the head corrects x̂0 at every t; in eval mode only at t = 1, the step whose x̂0
    is the samplers' output (Algorithm 1's last step), so it reads the velocities without steering
    the trajectory: fed back into x_t at every step, its velocity rows changed where the stack
    ended notes (validation note-with-offset F1 0.43 -> 0.36 on the first run that tried it).
    """

    def __init__(self, n_mels: int, n_keys: int, channels: int, roll_inputs: int, levels: int = 2):
        super().__init__()
        self.n_keys, self.levels = n_keys, levels
        self.to_keys = nn.Conv1d(n_mels, n_keys * levels, 1)
        self.conv1 = nn.Conv2d(2 * levels + roll_inputs, channels, (3, 5), padding=(1, 2))
        self.conv2 = nn.Conv2d(channels, channels, (3, 5), padding=(1, 4), dilation=(1, 2))
        self.out = nn.Conv2d(channels, 1, 1)
        nn.init.zeros_(self.out.weight)
        nn.init.zeros_(self.out.bias)

    def key_levels(self, mel: torch.Tensor) -> torch.Tensor:
        """c_mel (B, 229, τ) -> (B, 2·levels, K, τ): each key's levels, raw and minus the window's maximum."""
        B, _, frames = mel.shape
        levels = self.to_keys(mel).view(B, self.levels, self.n_keys, frames)
        return torch.cat([levels, levels - levels.amax(dim=(2, 3), keepdim=True)], dim=1)

    def forward(self, key_levels: torch.Tensor, rolls: list[torch.Tensor]) -> torch.Tensor:
        """key_levels (B, 2·levels, K, τ), rolls: the stack's (B, K, τ) frame/onset rows -> (B, K, τ)."""
        x = torch.cat([key_levels.to(rolls[0].dtype), *(r[:, None] for r in rolls)], dim=1)
        x = x.contiguous(memory_format=torch.channels_last)  # (B, K, τ, C) in memory: ~1.5-2x faster convs on a CPU
        x = F.relu(self.conv2(F.relu(self.conv1(x))))
        return self.out(x)[:, 0]


class PedalHead(nn.Module):
    """A path from c_mel (and the stack's x̂0 frame rows, detached) to the pedal rows of x̂0 (beyond
    the paper): 1×1 convs to ``channels``, then residual dilated convs over time (dilations 1 … 32,
    kernel 3: a receptive field of 127 frames, 4 s), then one value a frame, added to all 88 pedal rows.

    Why: trained with the notes, the pedal error pulled the shared stack away from them (validation
    note F1 0.80 -> 0.72 after 2,000 steps), and a linear read-out of the stack's features did not
    learn it (pedal error 0.20 against 0.25 for a constant). Its output layer starts at zero, so adding
    it to a trained network changes nothing until it is trained (``TrainConfig.train_only``).
    Measured: 32 channels trained alone for 5,000 steps on the bundled net agree with the true pedal
    on 72 % of validation frames, less than a constant guess (74 %): not yet a pedal detector
    (``benchmarks/pedal_diagnosis.py``).
    """

    DILATIONS = (1, 2, 4, 8, 16, 32)

    def __init__(self, n_mels: int, n_keys: int, channels: int):
        super().__init__()
        self.from_mel = nn.Conv1d(n_mels, channels, 1)
        self.from_frame = nn.Conv1d(n_keys, channels, 1)
        self.convs = nn.ModuleList(nn.Conv1d(channels, channels, 3, dilation=d, padding=d) for d in self.DILATIONS)
        self.out = nn.Conv1d(channels, 1, 1)
        nn.init.zeros_(self.out.weight)
        nn.init.zeros_(self.out.bias)

    def forward(self, mel: torch.Tensor, frame: torch.Tensor) -> torch.Tensor:
        """mel (B, 229, τ), the stack's x̂0 frame rows (B, 88, τ) -> (B, 1, τ), added to every pedal row."""
        x = F.relu(self.from_mel(mel) + self.from_frame(frame.to(mel.dtype)))
        for conv in self.convs:
            x = x + F.relu(conv(x))
        return self.out(x)


class DiffRoll(nn.Module):
    """f_θ(x_t, t, c_mel) -> x̂0 of Eq. 2; c_mel = -1 everywhere is the unconditional model."""

    def __init__(self, cfg: ModelConfig | None = None, roll_channels: int | Sequence[str] = 1):
        """``roll_channels``: how many roll channels, or their names (needed by a velocity head and
        a pedal channel).

        The pedal rows of x_t are not an input (they are multiplied by 0): the 88 rows all hold the
        same pedal, so their mean tells it through the noise of Eq. 1 even at t = T (ᾱ_T ≈ 0.14),
        and a network that reads them learns to denoise the pedal rather than hear it — while the
        samplers' x_T holds no pedal at all (measured: x̂0's pedal rows near 0 on every validation
        piece). Masked, the pedal rows of x̂0 come from c_mel and the notes' rows of x_t.
        """
        super().__init__()
        self.cfg = cfg = cfg or ModelConfig()
        names = None if isinstance(roll_channels, int) else list(roll_channels)
        self.rows = cfg.n_keys * (len(names) if names is not None else roll_channels)  # R: rows of x_t and x̂0
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
        mask = None
        if names is not None and "pedal" in names:
            mask = torch.ones(self.rows, 1)
            mask[names.index("pedal") * cfg.n_keys:(names.index("pedal") + 1) * cfg.n_keys] = 0
        self.register_buffer("x_t_mask", mask, persistent=False)
        self.pedal_head, self._pedal_rows = None, None
        if cfg.pedal_head:
            if names is None or "pedal" not in names:
                raise ValueError(f"pedal_head needs a pedal roll channel; the roll is {names or roll_channels}")
            self._pedal_rows = names.index("pedal") * cfg.n_keys
            self.pedal_head = PedalHead(cfg.n_mels, cfg.n_keys, cfg.pedal_head)
        self.velocity_head, self._head_rows = None, None
        if cfg.velocity_head:
            if names is None or "velocity" not in names:
                raise ValueError(f"velocity_head needs a velocity roll channel; the roll is {names or roll_channels}")
            K = cfg.n_keys
            inputs = [c for c in ("frame", "onset") if c in names]
            self._head_rows = ([slice(names.index(c) * K, (names.index(c) + 1) * K) for c in inputs],
                               names.index("velocity") * K)
            self.velocity_head = VelocityHead(cfg.n_mels, K, cfg.velocity_head, len(inputs))

    def prepare_condition(self, mel: torch.Tensor) -> PreparedMel:
        """The per-layer 1×1 projections of c_mel: they do not depend on x_t or t, so samplers
        compute them once per run (see :meth:`diffroll.core.diffusion.Diffusion.sample`)."""
        prepared = PreparedMel(layer.mel_proj(mel) for layer in self.layers)
        prepared.mel = mel
        if self.velocity_head is not None:
            prepared.key_levels = self.velocity_head.key_levels(mel)
        return prepared

    def forward(self, x_t: torch.Tensor, t: torch.Tensor, mel: torch.Tensor | PreparedMel) -> torch.Tensor:
        """x_t (B, R, τ), t (B,) integers in 1..T, mel (B, 229, τ) or :meth:`prepare_condition`'s
        result -> x̂0 (B, R, τ)."""
        if t.dim() == 0:
            t = t.expand(x_t.shape[0])
        mel_terms = mel if isinstance(mel, PreparedMel) else self.prepare_condition(mel)
        x = F.relu(self.input_proj(x_t if self.x_t_mask is None else x_t * self.x_t_mask))
        step = self.step_mlp(t)
        skips = 0.0
        for layer, mel_term in zip(self.layers, mel_terms):
            x, skip = layer(x, step, mel_term)
            skips = skips + skip
        x = F.relu(self.skip_proj(skips / math.sqrt(len(self.layers))))
        x0 = self.output_proj(x)
        if self.pedal_head is not None:  # the pedal rows of x_t are not read: this steers nothing
            p, K = self._pedal_rows, self.cfg.n_keys
            pedal = self.pedal_head(mel_terms.mel, x0[:, :K].detach())
            x0 = torch.cat([x0[:, :p], x0[:, p:p + K] + pedal, x0[:, p + K:]], dim=1)
        if self.velocity_head is None:
            return x0
        last = None if self.training else t == 1  # see VelocityHead: only the sampler's last x̂0 in eval
        if last is not None and not bool(last.any()):
            return x0
        inputs, v = self._head_rows
        K = self.cfg.n_keys
        correction = self.velocity_head(mel_terms.key_levels, [x0[:, rows].detach() for rows in inputs])
        if last is not None:
            correction = correction * last.view(-1, 1, 1).to(correction.dtype)
        return torch.cat([x0[:, :v], x0[:, v:v + K] + correction, x0[:, v + K:]], dim=1)


def count_parameters(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())
