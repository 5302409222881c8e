"""The diffusion of §3: schedule, forward process (Eq. 1), loss (Eq. 3) and samplers (Algorithm 1).

Samplers know no network class: ``model`` is any callable ``model(x_t, t, mel) -> x̂0`` (Eq. 2),
with ``t`` a (B,) tensor of integer steps in 1..T and ``mel`` in [0, 1], or -1 where there is no
audio. A model may also offer ``prepare_condition(mel)``; its result is then passed as ``mel``, so
step-independent work (DiffRoll's per-layer mel projections) runs once per sampling run.

Index convention: ``alphas_cumprod[i]`` holds ᾱ_t for t = i + 1; ᾱ_0 = 1 (α_0 = 1, §3).
"""
from __future__ import annotations

from typing import Callable, Sequence

import numpy as np
import torch

from .config import SAMPLERS, DiffusionConfig

Denoiser = Callable[[torch.Tensor, int], torch.Tensor]


def sampling_timesteps(T: int, steps: int | None = None) -> list[int]:
    """Descending steps T = τ_S > … > τ_1 = 1, evenly strided; all T steps when ``steps`` is None."""
    if steps is None or steps >= T:
        return list(range(T, 0, -1))
    if steps < 1:
        raise ValueError(f"steps must be >= 1, got {steps}")
    return sorted({int(s) for s in np.round(np.linspace(T, 1, steps))}, reverse=True)


def mask_mel(mel: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Inpainting (§4.4): set c_mel to -1 in the frames where ``mask`` (τ,) or (B, τ) is True."""
    mask = torch.as_tensor(mask, dtype=torch.bool, device=mel.device)
    mask = mask.view(1, 1, -1) if mask.dim() == 1 else mask[:, None, :]
    return mel.masked_fill(mask, -1.0)


def guided_denoiser(model, mel: torch.Tensor, w: float) -> Denoiser:
    """x̂0 = (1 + w)·x̂0(c_mel) − w·x̂0(−1), Algorithm 1 line 4, as a function of (x_t, t).

    Both passes run as one batched call; w = 0 runs only the conditional pass and w = -1
    (generation, §4.3) only the unconditional one. The condition is prepared once.
    """
    if w == 0:
        cond = mel
    elif w == -1:
        cond = torch.full_like(mel, -1.0)
    else:
        cond = torch.cat([mel, torch.full_like(mel, -1.0)])
    prepare = getattr(model, "prepare_condition", None)
    if prepare is not None:
        cond = prepare(cond)
    two_pass = w not in (0, -1)

    def denoise(x_t: torch.Tensor, t: int) -> torch.Tensor:
        steps = torch.full((x_t.shape[0],), t, dtype=torch.long, device=x_t.device)
        if not two_pass:
            return model(x_t, steps, cond).float()
        x0_cond, x0_uncond = model(torch.cat([x_t, x_t]), torch.cat([steps, steps]), cond).float().chunk(2)
        return (1 + w) * x0_cond - w * x0_uncond

    return denoise


Generators = torch.Generator | Sequence[torch.Generator] | None


def _randn(shape, generator: Generators, like: torch.Tensor) -> torch.Tensor:
    """N(0, I) noise of ``shape``; with a sequence of generators, row b from generator b (so a
    row's noise does not depend on the rows batched with it)."""
    if generator is not None and not isinstance(generator, torch.Generator):
        if len(generator) != shape[0]:
            raise ValueError(f"{len(generator)} generators for a batch of {shape[0]}")
        return torch.stack([_randn(tuple(shape[1:]), g, like) for g in generator])
    device = generator.device if generator is not None else like.device
    return torch.randn(shape, generator=generator, device=device).to(like.device)


class Diffusion:
    """Linear β schedule of §3 (α_t from 0.9999 down to 0.98 for the paper's T = 200)."""

    def __init__(self, T: int = 200, beta_start: float = 1e-4, beta_end: float = 0.02, extend_T: int = 0):
        self.T, self.extend_T = T, extend_T
        self.T_max = T + extend_T  # generation starts here (DiffusionConfig.extend_T)
        betas = torch.linspace(beta_start, beta_end, T, dtype=torch.float64)
        if extend_T:  # the same line past T: β_{T+k} = β_T + k·(β_T − β_1)/(T − 1)
            slope = (beta_end - beta_start) / max(T - 1, 1)
            betas = torch.cat([betas, beta_end + slope * torch.arange(1, extend_T + 1, dtype=torch.float64)])
            if float(betas[-1]) >= 1:
                raise ValueError(f"extend_T = {extend_T} takes β past 1 (β = {float(betas[-1]):.3f} at step "
                                 f"{T + extend_T}); use fewer extra steps")
        self.betas = betas.float()
        self.alphas = (1 - betas).float()
        self._alpha_bar = torch.cat([torch.ones(1, dtype=torch.float64), torch.cumprod(1 - betas, 0)])
        self.alphas_cumprod = self._alpha_bar[1:].float()

    @classmethod
    def from_config(cls, cfg: DiffusionConfig) -> "Diffusion":
        return cls(cfg.T, cfg.beta_start, cfg.beta_end, cfg.extend_T)

    def alpha_bar(self, t) -> torch.Tensor:
        """ᾱ_t for integer t in 0..T_max (ᾱ_0 = 1), float64."""
        return self._alpha_bar[torch.as_tensor(t, dtype=torch.long, device="cpu")]

    def q_sample(self, x0: torch.Tensor, t: torch.Tensor, noise: torch.Tensor) -> torch.Tensor:
        """Eq. 1: x_t = √ᾱ_t·x_roll + √(1 − ᾱ_t)·ε, for a batch of steps t (B,)."""
        ab = self.alpha_bar(t.cpu()).to(x0.device, x0.dtype).view(-1, *([1] * (x0.dim() - 1)))
        return ab.sqrt() * x0 + (1 - ab).sqrt() * noise

    def training_loss(self, model, roll: torch.Tensor, mel: torch.Tensor, p: float = 0.1,
                      mode: str = "diffusion", generator: torch.Generator | None = None,
                      part: tuple[int, int] = (0, 1), row_weights: torch.Tensor | None = None,
                      cell_weights: torch.Tensor | None = None) -> torch.Tensor:
        """Eq. 3, L = ‖x_roll − x̂0‖², with classifier-free dropout (Fig. 1).

        Each example's whole c_mel is replaced by -1 with probability ``p`` (p = 1: roll-only
        pretraining, §4.2). ``mode="discriminative"`` is the baseline of §4.1: x_t = 0, t = 1.
        ``part = (k, n)``: this batch is part k of n equal parts of a larger batch (data-parallel
        training); the random draws (dropout, t, ε) are those of the whole batch, so n processes
        draw exactly what one process would for the n-times larger batch. ``row_weights`` (R,)
        weighs the squared error of each row (e.g. a sparse onset channel more than the frames);
        the mean is then over the weights: L = Σ w_r (x − x̂0)² / Σ w_r. ``cell_weights`` (B, R, F)
        further multiply each cell's error (e.g. a velocity error where a note sounds); the
        normaliser stays that of the rows, a constant, so data-parallel parts still add up.
        """
        B = roll.shape[0]
        k, n = part
        mine = slice(k * B, (k + 1) * B)
        dropped = _rand(n * B, generator, roll) < p  # the whole (global) batch's
        drop = dropped[mine]
        mel = torch.where(drop.view(B, 1, 1), torch.full_like(mel, -1.0), mel)
        if mode == "diffusion" and not self.extend_T:
            t = (_rand(n * B, generator, roll) * self.T).long().clamp_(0, self.T - 1)[mine] + 1  # uniform in 1..T
        elif mode == "diffusion":  # dropped examples: uniform in 1..T + extend_T (generation starts there)
            span = torch.where(dropped, self.T_max, self.T)
            t = torch.minimum((_rand(n * B, generator, roll) * span).long(), span - 1)[mine] + 1
        if mode == "diffusion":
            x_t = self.q_sample(roll, t, _randn((n * B,) + tuple(roll.shape[1:]), generator, roll)[mine])
        elif mode == "discriminative":
            t = torch.ones(B, dtype=torch.long, device=roll.device)
            x_t = torch.zeros_like(roll)
        else:
            raise ValueError(f"mode must be 'diffusion' or 'discriminative', got {mode!r}")
        error = (model(x_t, t, mel).float() - roll.float()) ** 2
        if cell_weights is not None:
            error = error * cell_weights.to(error.device, error.dtype)
        if row_weights is None:
            return error.mean()
        w = row_weights.to(error.device, error.dtype).view(1, -1, 1)
        return (error * w).mean() / w.mean()

    @torch.no_grad()
    def sample(self, model, mel: torch.Tensor, w: float, sampler: str,
               steps: int | None = None, generator: Generators = None,
               callback: Callable[[dict], None] | None = None,
               x_T: torch.Tensor | None = None) -> torch.Tensor:
        """Algorithm 1: x_T ~ N(0, I), then reverse steps to x_0, the posteriorgram (B, R, τ).

        ``w``: the guidance weight of Eq. 3 (−1: unconditional). ``sampler``: ``ddpm`` (the
        paper's σ_t), ``ddim`` (σ = 0) or ``dpmpp``
        (DPM-Solver++(2M), beyond the paper); ``steps`` strides the T steps (None: all).
        ``callback`` receives a dict (i, t, alpha_bar, x_t, x0_hat) at every step. ``generator``
        draws x_T (when not given) and DDPM's per-step noise; a sequence of B generators draws
        each example's own.
        """
        if sampler not in SAMPLERS:
            raise ValueError(f"unknown sampler {sampler!r}; choose one of {SAMPLERS}")
        B, _, frames = mel.shape
        x = x_T if x_T is not None else _randn((B, model_rows(model), frames), generator, mel)
        denoise = guided_denoiser(model, mel, w)
        timesteps = sampling_timesteps(self.T_max if w == -1 else self.T, steps)  # generation: from T + extend_T
        if sampler == "dpmpp":
            return sample_dpmpp_2m(denoise, x, self, timesteps, callback)
        eta = 1.0 if sampler == "ddpm" else 0.0
        return sample_ddpm(denoise, x, self, timesteps, generator, callback, eta=eta)


def model_rows(model) -> int:
    """Rows R of the rolls a model denoises (88 per roll channel); 88 for a plain callable."""
    return getattr(model, "rows", 88)


def _rand(n: int, generator: torch.Generator | None, like: torch.Tensor) -> torch.Tensor:
    device = generator.device if generator is not None else like.device
    return torch.rand(n, generator=generator, device=device).to(like.device)


def sample_ddpm(denoise: Denoiser, x: torch.Tensor, diffusion: Diffusion, timesteps: list[int],
                generator: Generators = None, callback=None, eta: float = 1.0) -> torch.Tensor:
    """Algorithm 1 over descending ``timesteps`` (consecutive: the paper's; strided: DDIM's
    generalisation). η = 1 gives DDPM's σ_t = √((1−ᾱ_{t−1})/(1−ᾱ_t))·√(1−α_t); η = 0 is DDIM."""
    for i, t in enumerate(timesteps):
        s = timesteps[i + 1] if i + 1 < len(timesteps) else 0
        ab_t, ab_s = diffusion.alpha_bar(t).item(), diffusion.alpha_bar(s).item()
        x0 = denoise(x, t)  # line 4
        eps = (x - ab_t ** 0.5 * x0) / (1 - ab_t) ** 0.5  # line 5
        sigma = eta * ((1 - ab_s) / (1 - ab_t)) ** 0.5 * (1 - ab_t / ab_s) ** 0.5
        x_next = ab_s ** 0.5 * x0 + max(1 - ab_s - sigma ** 2, 0.0) ** 0.5 * eps  # line 6
        if s > 0 and sigma > 0:  # line 3: no noise on the last step
            x_next = x_next + sigma * _randn(x.shape, generator, x)
        if callback is not None:
            callback({"i": i, "t": t, "alpha_bar": ab_t, "x_t": x, "x0_hat": x0})
        x = x_next
    return x


def sample_dpmpp_2m(denoise: Denoiser, x: torch.Tensor, diffusion: Diffusion, timesteps: list[int],
                    callback=None) -> torch.Tensor:
    """DPM-Solver++(2M) in data-prediction form (Lu et al., 2022, Alg. 2) on the same x̂0 model.

    With α_t = √ᾱ_t, σ_t = √(1−ᾱ_t), λ_t = log(α_t/σ_t), h = λ_s − λ_t:
    x_s = (σ_s/σ_t)·x_t − α_s·(e^{−h} − 1)·D, D = x̂0 (first step) or the 2nd-order multistep
    combination (1 + 1/2r)·x̂0 − (1/2r)·x̂0_prev. The last step returns x̂0 (σ_0 = 0).
    """
    old_x0, h_last = None, None
    for i, t in enumerate(timesteps):
        s = timesteps[i + 1] if i + 1 < len(timesteps) else 0
        ab_t = diffusion.alpha_bar(t).item()
        x0 = denoise(x, t)
        if callback is not None:
            callback({"i": i, "t": t, "alpha_bar": ab_t, "x_t": x, "x0_hat": x0})
        if s == 0:
            x = x0
            break
        ab_s = diffusion.alpha_bar(s).item()
        lam_t = 0.5 * np.log(ab_t / (1 - ab_t))
        lam_s = 0.5 * np.log(ab_s / (1 - ab_s))
        h = lam_s - lam_t
        if old_x0 is None:
            d = x0
        else:
            r = h_last / h
            d = (1 + 1 / (2 * r)) * x0 - (1 / (2 * r)) * old_x0
        x = ((1 - ab_s) / (1 - ab_t)) ** 0.5 * x - ab_s ** 0.5 * np.expm1(-h) * d
        old_x0, h_last = x0, h
    return x
