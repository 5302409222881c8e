"""Trajectories of Algorithm 1, step by step: what the sampler's callback sees at every reverse
step (t, ᾱ_t, x_t and x̂0), recorded once with a Pipeline, scored, and drawn as a GIF, a strip of
steps and curves (the interactive scrubber is :mod:`diffroll.lab.widget`)."""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Sequence

import matplotlib.pyplot as plt
import numpy as np
import torch
from matplotlib.animation import FuncAnimation, PillowWriter

from ..core.roll import roll_to_notes
from ..evaluation.metrics import note_scores
from ..transcription.pipeline import Pipeline
from ..transcription.settings import SamplingSettings
from .viz import _np, _save, channel, onset_points, plot_rolls, show_roll

@dataclass
class Trajectory:
    """What the sampler's callback saw at every step: t, ᾱ_t, x_t and x̂0 (each (R, τ), R = 88
    per roll channel of ``channels``), and, once :meth:`score` ran, the note F1 of x̂0 and of x_t."""

    t: list[int] = field(default_factory=list)
    alpha_bar: list[float] = field(default_factory=list)
    x_t: list[np.ndarray] = field(default_factory=list)
    x0_hat: list[np.ndarray] = field(default_factory=list)
    x0: np.ndarray | None = None  # the sampler's final output
    fps: float = 31.25
    label: str = ""
    channels: tuple[str, ...] = ("frame",)
    decode: Callable[[np.ndarray], list] | None = field(default=None, repr=False)  # roll -> notes
    f1: list[float] | None = None  # note F1 of x̂0 at each step
    f1_xt: list[float] | None = None  # note F1 of x_t itself (noise at t = T, the roll at t = 1)

    def __len__(self) -> int:
        return len(self.t)

    def callback(self, info: dict) -> None:
        self.t.append(int(info["t"]))
        self.alpha_bar.append(float(info["alpha_bar"]))
        self.x_t.append(_np(info["x_t"])[0].astype(np.float16))
        self.x0_hat.append(_np(info["x0_hat"])[0].astype(np.float16))

    def notes(self, roll) -> list:
        """Notes of a roll of this trajectory (the pipeline's decoding when recorded with one)."""
        roll = np.asarray(roll, dtype=np.float32)
        return self.decode(roll) if self.decode is not None else roll_to_notes(roll, self.fps, channels=self.channels)

    def score(self, ref_notes) -> list[float]:
        """Note F1 (onset, 50 ms) against ``ref_notes`` of x̂0 (``f1``) and of x_t read as a roll
        (``f1_xt``) at every step; returns ``f1``."""
        self.f1 = [note_scores(ref_notes, self.notes(x))["f1"] for x in self.x0_hat]
        self.f1_xt = [note_scores(ref_notes, self.notes(x))["f1"] for x in self.x_t]
        return self.f1

    def x0_change(self) -> np.ndarray:
        """Mean |x̂0 − x0| at every step: how far x̂0 still is from the sampler's output."""
        return np.array([float(np.abs(x.astype(np.float32) - self.x0).mean()) for x in self.x0_hat])


def record_trajectory(pipe: Pipeline, mel, sampling: SamplingSettings | None = None, seed: int = 0,
                      label: str = "") -> Trajectory:
    """Run Algorithm 1 once with a :class:`~diffroll.transcription.pipeline.Pipeline` on one c_mel (n_mels, τ)
    (or (1, n_mels, τ)) and keep every step; notes are read with ``pipe.decode``.

    ``sampling``: its w, sampler and steps (None: the pipeline's own); ``w = -1`` is generation
    (§4.3): c_mel is then ignored. x_T and DDPM's noise are drawn from ``seed``.
    """
    sampling = pipe.sampling if sampling is None else sampling
    cfg = pipe.config
    mel = torch.as_tensor(_np(mel), dtype=torch.float32)
    if mel.dim() == 2:
        mel = mel[None]
    mel = mel.to(pipe.device)
    traj = Trajectory(fps=cfg.audio.fps, label=label, channels=tuple(cfg.roll.roll_channels), decode=pipe.decode)
    g = torch.Generator().manual_seed(seed)
    x0 = pipe.diffusion.sample(pipe.model, mel, w=sampling.w, sampler=sampling.sampler, steps=sampling.steps, generator=g,
                               callback=traj.callback)
    traj.x0 = _np(x0)[0]
    return traj


def _frame_title(traj: Trajectory, i: int) -> str:
    s = f"{traj.label}  step {i + 1}/{len(traj)}   t = {traj.t[i]}   ᾱ_t = {traj.alpha_bar[i]:.4f}"
    if traj.f1 is not None:
        s += f"   note F1: x̂0 {traj.f1[i]:.3f}, x_t {traj.f1_xt[i]:.3f}"
    return s


@dataclass
class _StepFigure:
    """The figure the animation and the scrubber redraw: x_t, x̂0 (with its onsets) and the reference."""

    fig: plt.Figure
    im_xt: object
    im_x0: object
    onsets: object | None
    title: object

    def draw(self, traj: Trajectory, i: int) -> None:
        self.im_xt.set_data(channel(traj.x_t[i], "frame", traj.channels))
        self.im_x0.set_data(channel(traj.x0_hat[i], "frame", traj.channels))
        if self.onsets is not None:
            self.onsets.set_offsets(onset_points(traj.x0_hat[i], traj.fps, traj.channels))
        self.title.set_text(_frame_title(traj, i))


def _trajectory_figure(traj: Trajectory, ref_roll=None, figsize=(9, 5)) -> _StepFigure:
    n = 3 if ref_roll is not None else 2
    fig, axes = plt.subplots(n, 1, figsize=(figsize[0], figsize[1] * n / 2), sharex=True)
    ch = traj.channels
    im_xt = show_roll(traj.x_t[0], axes[0], traj.fps, "x_t (frame channel)", vmin=-1.5, vmax=1.5, channels=ch,
                      onsets=False)
    im_x0 = show_roll(traj.x0_hat[0], axes[1], traj.fps, "x̂0 (Alg. 1 line 4)" + (", onsets ticked" if "onset" in ch
                                                                                 else ""), channels=ch)
    if ref_roll is not None:
        show_roll(ref_roll, axes[2], traj.fps, "reference", channels=ch)
    for ax in axes[:-1]:
        ax.set_xlabel("")
    title = fig.suptitle(_frame_title(traj, 0), fontsize=10)
    fig.tight_layout()
    return _StepFigure(fig, im_xt, im_x0, getattr(axes[1], "onset_marks", None), title)


def trajectory_frames(traj: Trajectory, max_frames: int = 60) -> list[int]:
    """Indices of at most ``max_frames`` steps, always including the first and the last."""
    n = len(traj)
    if n <= max_frames:
        return list(range(n))
    return sorted({int(round(i)) for i in np.linspace(0, n - 1, max_frames)})


def animate_trajectory(traj: Trajectory, path, ref_roll=None, max_frames: int = 60, fps: int = 8) -> Path:
    """A GIF (matplotlib.animation + Pillow) of x_t and x̂0 over the reverse steps."""
    figure = _trajectory_figure(traj, ref_roll)
    anim = FuncAnimation(figure.fig, lambda i: figure.draw(traj, i), frames=trajectory_frames(traj, max_frames),
                         blit=False)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    anim.save(str(path), writer=PillowWriter(fps=fps), dpi=72)
    plt.close(figure.fig)
    return path


def plot_trajectory_steps(traj: Trajectory, n: int = 6, path=None):
    """x̂0 at ``n`` evenly spaced steps (a static summary of the animation)."""
    idx = trajectory_frames(traj, n)
    rolls = [np.clip(traj.x0_hat[i].astype(np.float32), 0, 1) for i in idx]
    titles = [f"t = {traj.t[i]}  ᾱ = {traj.alpha_bar[i]:.3f}"
              + (f"  F1 = {traj.f1[i]:.2f}" if traj.f1 is not None else "") for i in idx]
    return plot_rolls(rolls, titles, traj.fps, path, ncols=2, suptitle=f"{traj.label}: x̂0 over the reverse steps",
                      channels=traj.channels)


def plot_trajectory_curves(trajs: Sequence[Trajectory], path=None):
    """Against t, for each trajectory: note F1 of x̂0 (solid) and of x_t (dashed) when scored,
    mean |x̂0 − x0| (x̂0 converging), and the 1st–99th percentile range of x_t."""
    fig, axes = plt.subplots(1, 3, figsize=(15, 3.5))
    for k, traj in enumerate(trajs):
        if traj.f1 is not None:
            axes[0].plot(traj.t, traj.f1, color=f"C{k}", label=f"{traj.label}: x̂0")
            axes[0].plot(traj.t, traj.f1_xt, "--", color=f"C{k}", label=f"{traj.label}: x_t")
        axes[1].plot(traj.t, traj.x0_change(), color=f"C{k}", label=traj.label)
        lo = [float(np.percentile(x.astype(np.float32), 1)) for x in traj.x_t]
        hi = [float(np.percentile(x.astype(np.float32), 99)) for x in traj.x_t]
        axes[2].fill_between(traj.t, lo, hi, color=f"C{k}", alpha=0.3, label=traj.label)
    axes[0].set_title("note F1 vs t")
    axes[0].set_ylim(0, 1)
    axes[1].set_title("mean |x̂0 − x0| vs t (x̂0 converging)")
    axes[2].set_title("1st–99th percentile of x_t vs t (§4.3: narrows to ~[0, 1])")
    for ax in axes:
        ax.set_xlabel("t")
        ax.invert_xaxis()
        ax.grid(alpha=0.3)
        if ax.get_legend_handles_labels()[0]:
            ax.legend(fontsize=8)
    fig.tight_layout()
    _save(fig, path)
    return fig
