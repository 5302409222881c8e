"""Each equation of §3 / Algorithm 1 against an independent float64 computation."""
import math

import numpy as np
import pytest
import torch

from diffroll.core.config import get_config
from diffroll.core.diffusion import Diffusion, guided_denoiser, mask_mel, sampling_timesteps
from diffroll.core.model import DiffRoll


def reference_alpha_bar(T=200, b0=1e-4, b1=0.02):
    betas = [b0 + (b1 - b0) * i / (T - 1) for i in range(T)]
    out, prod = [], 1.0
    for b in betas:
        prod *= 1 - b
        out.append(prod)
    return np.array(out)


def test_schedule_ends_match_the_paper():
    d = Diffusion()
    assert d.T == 200
    assert d.alphas[0].item() == pytest.approx(0.9999, abs=1e-7)
    assert d.alphas[-1].item() == pytest.approx(0.98, abs=1e-7)
    np.testing.assert_allclose(d.alphas_cumprod.numpy(), reference_alpha_bar(), rtol=1e-6)
    assert d.alpha_bar(0).item() == 1.0
    assert d.alpha_bar(1).item() == pytest.approx(0.9999)


@pytest.mark.parametrize("rows", [88, 264])  # the paper's frame roll; the note-state roll
def test_q_sample_is_equation_1(rows):
    d = Diffusion()
    g = torch.Generator().manual_seed(0)
    x0 = (torch.rand(3, rows, 10, generator=g) > 0.9).float()
    noise = torch.randn(3, rows, 10, generator=g)
    t = torch.tensor([1, 100, 200])
    ab = reference_alpha_bar()[t.numpy() - 1]
    expect = np.sqrt(ab)[:, None, None] * x0.double().numpy() + np.sqrt(1 - ab)[:, None, None] * noise.double().numpy()
    np.testing.assert_allclose(d.q_sample(x0, t, noise).numpy(), expect, rtol=1e-5, atol=1e-5)


class ConstModel:
    """A fake network: returns A where c_mel is real audio, B where c_mel = -1 (Eq. 2)."""

    def __init__(self, A, B):
        self.A, self.B = A, B
        self.calls = []

    def __call__(self, x_t, t, mel):
        self.calls.append(x_t.shape[0])
        uncond = (mel == -1).flatten(1).all(1).view(-1, 1, 1)
        return torch.where(uncond, self.B.expand_as(x_t), self.A.expand_as(x_t))


@pytest.mark.parametrize("w", [0.0, 0.5, 1.0, -1.0])
def test_guidance_sign_is_algorithm_1_line_4(w):
    A, B = torch.full((1, 88, 5), 0.8), torch.full((1, 88, 5), 0.3)
    model = ConstModel(A, B)
    mel = torch.rand(2, 229, 5)
    x0 = guided_denoiser(model, mel, w)(torch.zeros(2, 88, 5), 10)
    assert torch.allclose(x0, torch.full_like(x0, (1 + w) * 0.8 - w * 0.3))
    # one batched call; w = 0 and w = -1 run a single pass of batch 2
    assert model.calls == ([4] if w not in (0, -1) else [2])


@pytest.mark.parametrize("rows", [88, 264])
def test_epsilon_and_one_ddpm_step_match_float64(rows):
    d = Diffusion()
    g = torch.Generator().manual_seed(1)
    x_t = torch.randn(1, rows, 6, generator=g, dtype=torch.float64).float()
    x0_hat = torch.rand(1, rows, 6, generator=g)
    model = lambda x, t, mel: x0_hat.expand_as(x)  # noqa: E731
    seen = []
    noise_gen = torch.Generator().manual_seed(7)
    d.sample(model, torch.rand(1, 229, 6), w=0.0, sampler="ddpm", steps=None, generator=noise_gen, x_T=x_t,
             callback=lambda s: seen.append(s) if s["i"] < 2 else None)
    # recompute step T -> T-1 by hand in float64
    ab = np.concatenate([[1.0], reference_alpha_bar()])
    T = 200
    a_t, a_s = ab[T], ab[T - 1]
    xt = x_t.double().numpy(); x0 = x0_hat.double().numpy()
    eps = (xt - math.sqrt(a_t) * x0) / math.sqrt(1 - a_t)  # line 5
    alpha_t = a_t / a_s
    sigma = math.sqrt((1 - a_s) / (1 - a_t)) * math.sqrt(1 - alpha_t)  # DDPM σ_t (§3)
    z = torch.randn(1, rows, 6, generator=torch.Generator().manual_seed(7)).double().numpy()
    x_next = math.sqrt(a_s) * x0 + math.sqrt(1 - a_s - sigma ** 2) * eps + sigma * z  # line 6
    np.testing.assert_allclose(seen[1]["x_t"].double().numpy(), x_next, rtol=1e-4, atol=1e-5)
    assert seen[0]["t"] == 200 and seen[1]["t"] == 199


@pytest.mark.parametrize("sampler", ["ddpm", "ddim", "dpmpp"])
def test_last_step_returns_x0_hat(sampler):
    """With a perfect model (x̂0 = constant roll) every sampler ends exactly on that roll."""
    d = Diffusion(T=50)
    target = (torch.rand(2, 88, 7, generator=torch.Generator().manual_seed(3)) > 0.8).float()
    out = d.sample(lambda x, t, m: target.repeat(x.shape[0] // 2, 1, 1), torch.rand(2, 229, 7), w=0.5, sampler=sampler, steps=10,
                   generator=torch.Generator().manual_seed(0))
    assert torch.allclose(out, target, atol=1e-5)


def test_ddpm_with_one_generator_per_example_draws_each_examples_own_noise():
    """A sequence of generators: example b's trajectory depends on generator b only, not on the batch."""
    d = Diffusion(T=50)
    model = lambda x, t, m: torch.tanh(x)  # x̂0 depends on x_t: the step noise shows in the result
    mel, x_T = torch.rand(3, 229, 6), torch.randn(3, 88, 6, generator=torch.Generator().manual_seed(1))
    gens = lambda seeds: [torch.Generator().manual_seed(s) for s in seeds]
    three = d.sample(model, mel, w=0.0, sampler="ddpm", steps=8, x_T=x_T, generator=gens([10, 11, 12]))
    alone = d.sample(model, mel[1:2], w=0.0, sampler="ddpm", steps=8, x_T=x_T[1:2], generator=gens([11]))
    torch.testing.assert_close(three[1:2], alone)
    other = d.sample(model, mel[1:2], w=0.0, sampler="ddpm", steps=8, x_T=x_T[1:2], generator=gens([99]))
    assert not torch.allclose(other, alone)
    with pytest.raises(ValueError, match="2 generators for a batch of 3"):
        d.sample(model, mel, w=0.0, sampler="ddpm", steps=8, x_T=x_T, generator=gens([1, 2]))


def test_samplers_agree_with_200_step_ddpm_on_known_x0():
    """Fake model whose x̂0 is a fixed function of x_t: few-step samplers approach full DDIM/DDPM."""
    d = Diffusion()
    target = (torch.rand(1, 88, 16, generator=torch.Generator().manual_seed(5)) > 0.85).float()

    def model(x, t, mel):  # an x̂0 that depends weakly on x_t, like a trained model near convergence
        return target + 0.05 * torch.tanh(x)

    x_T = torch.randn(1, 88, 16, generator=torch.Generator().manual_seed(9))
    ref = d.sample(model, torch.rand(1, 229, 16), w=0.0, sampler="ddim", x_T=x_T)
    for sampler, steps in [("ddim", 20), ("dpmpp", 10), ("dpmpp", 20)]:
        out = d.sample(model, torch.rand(1, 229, 16), w=0.0, sampler=sampler, steps=steps, x_T=x_T)
        assert ((out > 0.5) == (ref > 0.5)).all(), (sampler, steps)
        assert (out - ref).abs().max() < 0.05, (sampler, steps)


def test_sampling_timesteps():
    assert sampling_timesteps(200) == list(range(200, 0, -1))
    ts = sampling_timesteps(200, 10)
    assert ts[0] == 200 and ts[-1] == 1 and len(ts) == 10 and ts == sorted(ts, reverse=True)
    assert sampling_timesteps(200, 1) == [200]
    with pytest.raises(ValueError):
        sampling_timesteps(200, 0)


def test_same_seed_same_roll_and_different_seed_differs():
    cfg = get_config("smoke")
    torch.manual_seed(0)
    model = DiffRoll(cfg.model).eval()
    torch.nn.init.normal_(model.output_proj.weight, std=0.1)
    d = Diffusion.from_config(cfg.diffusion)
    mel = torch.rand(1, 229, 32)
    run = lambda seed: d.sample(model, mel, w=0.5, sampler="ddpm", generator=torch.Generator().manual_seed(seed))  # noqa: E731
    assert torch.equal(run(4), run(4))
    assert not torch.equal(run(4), run(5))


def test_inpainting_mask_sets_minus_one_only_in_masked_frames():
    mel = torch.rand(2, 229, 10)
    mask = torch.zeros(10, dtype=torch.bool)
    mask[3:6] = True
    out = mask_mel(mel, mask)
    assert (out[:, :, 3:6] == -1).all()
    assert torch.equal(out[:, :, :3], mel[:, :, :3]) and torch.equal(out[:, :, 6:], mel[:, :, 6:])


def test_training_loss_dropout_and_modes():
    d = Diffusion(T=20)
    roll = (torch.rand(64, 88, 8) > 0.9).float()
    mel = torch.rand(64, 229, 8)
    seen = {}

    def model(x, t, m):
        seen["dropped"] = (m == -1).flatten(1).all(1).float().mean().item()
        seen["t"], seen["x"] = t, x
        return torch.zeros_like(x)

    loss = d.training_loss(model, roll, mel, p=1.0)
    assert seen["dropped"] == 1.0  # p = 1: roll-only pretraining
    assert loss.item() == pytest.approx(roll.pow(2).mean().item())
    d.training_loss(model, roll, mel, p=0.0)
    assert seen["dropped"] == 0.0
    assert seen["t"].min() >= 1 and seen["t"].max() <= 20
    d.training_loss(model, roll, mel, p=0.5, generator=torch.Generator().manual_seed(0))
    assert 0.2 < seen["dropped"] < 0.8
    d.training_loss(model, roll, mel, p=0.0, mode="discriminative")
    assert (seen["t"] == 1).all() and (seen["x"] == 0).all()
    with pytest.raises(ValueError, match="mode"):
        d.training_loss(model, roll, mel, mode="gan")
    with pytest.raises(ValueError, match="sampler"):
        d.sample(model, mel[:1], w=0.0, sampler="euler")


def test_extend_T_continues_the_schedule_for_the_unconditional_model_only():
    """extend_T: β goes on along the paper's line past T (ᾱ ≈ 3e-4 at T + 200 instead of 0.13 at T);
    only examples with c_mel dropped draw t > T in training; generation (w = -1) starts at T + extend_T,
    transcription (w >= 0) at T; extend_T = 0 is the paper's schedule and draws, bit for bit."""
    paper, ext = Diffusion(), Diffusion(extend_T=200)
    assert ext.T == 200 and ext.T_max == 400
    np.testing.assert_allclose(ext.alphas_cumprod[:200].numpy(), paper.alphas_cumprod.numpy(), rtol=0)
    assert paper.alpha_bar(200).item() == pytest.approx(0.132, abs=1e-3)
    assert ext.alpha_bar(400).item() < 1e-3
    slope = (0.02 - 1e-4) / 199
    assert ext.betas[200].item() == pytest.approx(0.02 + slope, rel=1e-6)

    roll, mel = (torch.rand(512, 88, 4) > 0.9).float(), torch.rand(512, 229, 4)
    seen = {}

    def model(x, t, m):
        seen["t"], seen["dropped"] = t, (m == -1).flatten(1).all(1)
        return torch.zeros_like(x)

    ext.training_loss(model, roll, mel, p=0.5, generator=torch.Generator().manual_seed(0))
    t, dropped = seen["t"], seen["dropped"]
    assert t[~dropped].max() <= 200 and t[dropped].max() > 300 and t.min() >= 1 and t.max() <= 400
    for d in (paper, Diffusion(extend_T=0)):  # the paper's draws are unchanged
        loss = d.training_loss(model, roll, mel, p=0.1, generator=torch.Generator().manual_seed(1))
        seen_t = seen["t"].clone()
        assert loss.item() == pytest.approx(roll.pow(2).mean().item())
    assert torch.equal(seen_t, seen["t"])

    starts = {}

    def record(x, t, m):
        starts.setdefault(float(m.flatten()[0]) == -1.0, int(t[0]))
        return torch.zeros_like(x)

    ext.sample(record, torch.full((1, 229, 4), -1.0), w=-1.0, sampler="ddim", steps=5)
    ext.sample(record, torch.rand(1, 229, 4), w=0.0, sampler="ddim", steps=5)
    assert starts == {True: 400, False: 200}
    with pytest.raises(ValueError, match="extend_T"):
        Diffusion(T=20, beta_start=1e-3, beta_end=0.2, extend_T=200)


def test_row_weights_weigh_each_rows_squared_error():
    """Eq. 3 with per-row weights (a sparse onset channel weighted up): Σ w (x − x̂0)² / Σ w."""
    d = Diffusion(T=20)
    roll = (torch.rand(4, 264, 8, generator=torch.Generator().manual_seed(0)) > 0.9).float()
    mel = torch.rand(4, 229, 8)
    zero = lambda x, t, m: torch.zeros_like(x)  # noqa: E731 - x̂0 = 0: the error is the roll itself
    w = torch.tensor([1.0, 8.0, 1.0]).repeat_interleave(88)
    expect = (roll.pow(2) * w.view(1, -1, 1)).mean() / w.mean()
    assert d.training_loss(zero, roll, mel, row_weights=w).item() == pytest.approx(expect.item())
    assert d.training_loss(zero, roll, mel, row_weights=torch.ones(264)).item() == \
        pytest.approx(roll.pow(2).mean().item())
