"""Plots and widgets: rolls, mels, the schedule, trajectories (GIF + ipywidgets scrubber),
inpainting (masked spans outlined in red, Fig. 5) and training histories.

Every ``plot_*`` returns a matplotlib Figure and writes it to ``path`` when one is given
(PNG, 120 dpi). Nothing here trains or samples a model except :func:`record_trajectory`, which
runs the sampler of Algorithm 1 once and keeps what its callback sees.
"""
from __future__ import annotations

import io
from dataclasses import dataclass, field
from pathlib import Path
from typing import Sequence

import matplotlib.pyplot as plt
import numpy as np
from matplotlib.patches import Rectangle

from .config import LOWEST_MIDI, N_KEYS

DPI = 120
ROLL_CMAP = "magma"


def _save(fig, path) -> None:
    if path is not None:
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        fig.savefig(path, dpi=DPI, bbox_inches="tight")


# --- training history ---------------------------------------------------------------------------

def plot_history(history: list[dict], path=None):
    """Loss vs step and, when present, validation loss and validation note F1 vs step.

    ``history`` is :meth:`diffroll.train.Trainer.fit`'s list: rows with ``loss`` (training) and
    rows with ``val_loss`` / ``val_note_f1`` (validation), each with its ``step``.
    """
    def series(key):
        rows = [(r["step"], r[key]) for r in history if key in r and r[key] is not None]
        return (np.array([s for s, _ in rows]), np.array([v for _, v in rows])) if rows else None

    loss, val_loss, f1 = series("loss"), series("val_loss"), series("val_note_f1")
    n = 1 + (f1 is not None)
    fig, axes = plt.subplots(1, n, figsize=(6 * n, 3.6), squeeze=False)
    ax = axes[0, 0]
    if loss is not None:
        ax.plot(*loss, lw=1, alpha=0.8, label="train loss (Eq. 3)")
    if val_loss is not None:
        ax.plot(*val_loss, "o-", ms=3, label="validation loss")
    ax.set_xlabel("step")
    ax.set_ylabel("L2 loss")
    if loss is not None and (loss[1] > 0).all():
        ax.set_yscale("log")
    ax.grid(alpha=0.3)
    ax.legend()
    if f1 is not None:
        ax = axes[0, 1]
        ax.plot(*f1, "o-", ms=3, color="C2", label="validation note F1")
        f1o = series("val_note_f1_offset")
        if f1o is not None:
            ax.plot(*f1o, "s--", ms=3, color="C3", label="note-with-offset F1")
        ax.set_xlabel("step")
        ax.set_ylabel("F1")
        ax.set_ylim(0, 1)
        ax.grid(alpha=0.3)
        ax.legend()
    fig.tight_layout()
    _save(fig, path)
    return fig


# --- rolls and mels -----------------------------------------------------------------------------

def _np(x) -> np.ndarray:
    if hasattr(x, "detach"):
        x = x.detach().float().cpu().numpy()
    return np.asarray(x)


def show_roll(roll, ax=None, fps: float = 31.25, title: str | None = None, vmin=0.0, vmax=1.0,
              cmap=ROLL_CMAP, colorbar: bool = False):
    """A roll or posteriorgram (88, frames) on a time (s) × MIDI pitch axis."""
    roll = _np(roll)
    if ax is None:
        _, ax = plt.subplots(figsize=(8, 3))
    extent = (0, roll.shape[1] / fps, LOWEST_MIDI - 0.5, LOWEST_MIDI + N_KEYS - 0.5)
    im = ax.imshow(roll, origin="lower", aspect="auto", extent=extent, vmin=vmin, vmax=vmax, cmap=cmap,
                   interpolation="nearest")
    ax.set_xlabel("time (s)")
    ax.set_ylabel("MIDI pitch")
    if title:
        ax.set_title(title)
    if colorbar:
        ax.figure.colorbar(im, ax=ax, fraction=0.03)
    return im


def show_mel(mel, ax=None, fps: float = 31.25, title: str | None = None):
    """c_mel (n_mels, frames) in [0, 1]; frames masked with -1 show as white."""
    mel = _np(mel)
    if ax is None:
        _, ax = plt.subplots(figsize=(8, 3))
    shown = np.ma.masked_less(mel, 0)
    cmap = plt.get_cmap("viridis").copy()
    cmap.set_bad("white")
    im = ax.imshow(shown, origin="lower", aspect="auto", extent=(0, mel.shape[1] / fps, 0, mel.shape[0]),
                   vmin=0, vmax=1, cmap=cmap, interpolation="nearest")
    ax.set_xlabel("time (s)")
    ax.set_ylabel("mel bin")
    if title:
        ax.set_title(title)
    return im


def compare_rolls(ref, est, threshold: float = 0.5) -> np.ndarray:
    """RGB picture of a binary comparison: white = both on, blue = missed, red = extra."""
    ref = _np(ref) > threshold
    est = _np(est) > threshold
    n = max(ref.shape[1], est.shape[1])
    ref = np.pad(ref, ((0, 0), (0, n - ref.shape[1])))
    est = np.pad(est, ((0, 0), (0, n - est.shape[1])))
    rgb = np.zeros(ref.shape + (3,), dtype=np.float32)
    rgb[ref & est] = (1, 1, 1)
    rgb[ref & ~est] = (0.2, 0.5, 1.0)
    rgb[~ref & est] = (1.0, 0.25, 0.2)
    return rgb


def plot_transcription(mel, ref_roll, est_roll, fps: float = 31.25, title: str = "", path=None):
    """Mel, reference, posteriorgram x0 and the binary comparison, one above the other."""
    fig, axes = plt.subplots(4, 1, figsize=(10, 9), sharex=True)
    show_mel(mel, axes[0], fps, "c_mel")
    show_roll(ref_roll, axes[1], fps, "reference roll")
    show_roll(np.clip(_np(est_roll), 0, 1), axes[2], fps, "posteriorgram x0 (clipped to [0, 1])")
    rgb = compare_rolls(ref_roll, est_roll)
    axes[3].imshow(rgb, origin="lower", aspect="auto", interpolation="nearest",
                   extent=(0, rgb.shape[1] / fps, LOWEST_MIDI - 0.5, LOWEST_MIDI + N_KEYS - 0.5))
    axes[3].set_title("x0 > 0.5 vs reference: white hit, blue missed, red extra")
    axes[3].set_xlabel("time (s)")
    axes[3].set_ylabel("MIDI pitch")
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    _save(fig, path)
    return fig


def plot_rolls(rolls: Sequence, titles: Sequence[str], fps: float = 31.25, path=None, ncols: int = 1,
               vmin=0.0, vmax=1.0, suptitle: str | None = None):
    """Several rolls in a grid."""
    n = len(rolls)
    nrows = int(np.ceil(n / ncols))
    fig, axes = plt.subplots(nrows, ncols, figsize=(7 * ncols, 2.4 * nrows), squeeze=False)
    for ax, roll, title in zip(axes.flat, rolls, titles):
        show_roll(roll, ax, fps, title, vmin=vmin, vmax=vmax)
    for ax in list(axes.flat)[n:]:
        ax.axis("off")
    if suptitle:
        fig.suptitle(suptitle)
    fig.tight_layout()
    _save(fig, path)
    return fig


# --- the schedule and the forward process (Eq. 1) ------------------------------------------------

def plot_schedule(diffusion, path=None):
    """α_t, ᾱ_t and the two weights of Eq. 1 (√ᾱ_t on x_roll, √(1−ᾱ_t) on ε) against t."""
    t = np.arange(1, diffusion.T + 1)
    alphas = _np(diffusion.alphas)
    abar = _np(diffusion.alphas_cumprod)
    fig, axes = plt.subplots(1, 2, figsize=(11, 3.6))
    axes[0].plot(t, alphas, label="α_t = 1 − β_t")
    axes[0].set_title(f"α_t: {alphas[0]:.4f} → {alphas[-1]:.4f}")
    axes[1].plot(t, abar, label="ᾱ_t = ∏ α_s")
    axes[1].plot(t, np.sqrt(abar), "--", label="√ᾱ_t (signal)")
    axes[1].plot(t, np.sqrt(1 - abar), ":", label="√(1 − ᾱ_t) (noise)")
    axes[1].set_title(f"ᾱ_T = {abar[-1]:.4f}")
    for ax in axes:
        ax.set_xlabel("diffusion step t")
        ax.grid(alpha=0.3)
        ax.legend()
    fig.tight_layout()
    _save(fig, path)
    return fig


def plot_forward(roll, diffusion, ts: Sequence[int], seed: int = 0, fps: float = 31.25, path=None):
    """x_t = √ᾱ_t·x_roll + √(1−ᾱ_t)·ε (Eq. 1) of one roll at several t, one shared ε."""
    import torch

    x0 = torch.as_tensor(_np(roll), dtype=torch.float32)[None]
    eps = torch.randn(x0.shape, generator=torch.Generator().manual_seed(seed))
    rolls, titles = [], []
    for t in ts:
        if t == 0:
            xt = x0
        else:
            xt = diffusion.q_sample(x0, torch.tensor([t]), eps)
        ab = float(diffusion.alpha_bar(t))
        rolls.append(xt[0].numpy())
        titles.append(f"t = {t}   ᾱ_t = {ab:.3f}")
    ncols = 2 if len(ts) > 3 else 1
    return plot_rolls(rolls, titles, fps, path, ncols=ncols, vmin=-1.5, vmax=1.5,
                      suptitle="forward process q(x_t | x_0), Eq. 1")


# --- trajectories (Algorithm 1, step by step) ------------------------------------------------------

@dataclass
class Trajectory:
    """What the sampler's callback saw at every step: t, ᾱ_t, x_t and x̂0 (each (R, τ), R = 88
    per roll channel of ``channels``)."""

    t: list[int] = field(default_factory=list)
    alpha_bar: list[float] = field(default_factory=list)
    x_t: list[np.ndarray] = field(default_factory=list)
    x0_hat: list[np.ndarray] = field(default_factory=list)
    x0: np.ndarray | None = None  # the sampler's final output
    fps: float = 31.25
    label: str = ""
    f1: list[float] | None = None  # note F1 of x̂0 at each step, when a reference is known
    channels: tuple[str, ...] = ("frame",)

    def __len__(self) -> int:
        return len(self.t)

    def callback(self, info: dict) -> None:
        self.t.append(int(info["t"]))
        self.alpha_bar.append(float(info["alpha_bar"]))
        self.x_t.append(_np(info["x_t"])[0].astype(np.float16))
        self.x0_hat.append(_np(info["x0_hat"])[0].astype(np.float16))

    def score(self, ref_notes, threshold: float = 0.5) -> list[float]:
        """Note F1 (onset, 50 ms) of thresholded x̂0 at every step against ``ref_notes``."""
        from .evaluate import note_scores
        from .roll import roll_to_notes

        self.f1 = [note_scores(ref_notes, roll_to_notes(x.astype(np.float32), self.fps, threshold,
                                                        channels=self.channels))["f1"]
                   for x in self.x0_hat]
        return self.f1


def record_trajectory(pipe, mel, w: float = 0.5, sampler: str = "ddpm", steps: int | None = None,
                      seed: int = 0, label: str = "") -> Trajectory:
    """Run Algorithm 1 once with a :class:`~diffroll.pipeline.Pipeline` on one c_mel (n_mels, τ)
    (or (1, n_mels, τ)) and keep every step.

    ``w = -1`` is generation (§4.3): c_mel is then ignored.
    """
    import torch

    cfg = pipe.config
    mel = torch.as_tensor(_np(mel), dtype=torch.float32)
    if mel.dim() == 2:
        mel = mel[None]
    mel = mel.to(pipe.device)
    traj = Trajectory(fps=cfg.audio.fps, label=label, channels=tuple(cfg.roll.roll_channels))
    g = torch.Generator().manual_seed(seed)
    x0 = pipe.diffusion.sample(pipe.model, mel, w=w, sampler=sampler, steps=steps, generator=g,
                               callback=traj.callback)
    traj.x0 = _np(x0)[0]
    return traj


def _frame_title(traj: Trajectory, i: int) -> str:
    s = f"{traj.label}  step {i + 1}/{len(traj)}   t = {traj.t[i]}   ᾱ_t = {traj.alpha_bar[i]:.4f}"
    if traj.f1 is not None:
        s += f"   note F1(x̂0) = {traj.f1[i]:.3f}"
    return s


def _trajectory_figure(traj: Trajectory, ref_roll=None, figsize=(9, 5)):
    n = 3 if ref_roll is not None else 2
    fig, axes = plt.subplots(n, 1, figsize=(figsize[0], figsize[1] * n / 2), sharex=True)
    im_xt = show_roll(traj.x_t[0].astype(np.float32), axes[0], traj.fps, "x_t", vmin=-1.5, vmax=1.5)
    im_x0 = show_roll(traj.x0_hat[0].astype(np.float32), axes[1], traj.fps, "x̂0 (Alg. 1 line 4)")
    if ref_roll is not None:
        show_roll(ref_roll, axes[2], traj.fps, "reference")
    for ax in axes[:-1]:
        ax.set_xlabel("")
    title = fig.suptitle(_frame_title(traj, 0), fontsize=10)
    fig.tight_layout()
    return fig, im_xt, im_x0, title


def trajectory_frames(traj: Trajectory, max_frames: int = 60) -> list[int]:
    """Indices of at most ``max_frames`` steps, always including the first and the last."""
    n = len(traj)
    if n <= max_frames:
        return list(range(n))
    return sorted({int(round(i)) for i in np.linspace(0, n - 1, max_frames)})


def animate_trajectory(traj: Trajectory, path, ref_roll=None, max_frames: int = 60, fps: int = 8):
    """A GIF (matplotlib.animation + Pillow) of x_t and x̂0 over the reverse steps."""
    from matplotlib.animation import FuncAnimation, PillowWriter

    fig, im_xt, im_x0, title = _trajectory_figure(traj, ref_roll)
    frames = trajectory_frames(traj, max_frames)

    def update(i):
        im_xt.set_data(traj.x_t[i].astype(np.float32))
        im_x0.set_data(traj.x0_hat[i].astype(np.float32))
        title.set_text(_frame_title(traj, i))
        return im_xt, im_x0, title

    anim = FuncAnimation(fig, update, frames=frames, blit=False)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    anim.save(str(path), writer=PillowWriter(fps=fps), dpi=72)
    plt.close(fig)
    return path


def plot_trajectory_steps(traj: Trajectory, n: int = 6, path=None):
    """x̂0 at ``n`` evenly spaced steps (a static summary of the animation)."""
    idx = trajectory_frames(traj, n)
    rolls = [np.clip(traj.x0_hat[i].astype(np.float32), 0, 1) for i in idx]
    titles = [f"t = {traj.t[i]}  ᾱ = {traj.alpha_bar[i]:.3f}"
              + (f"  F1 = {traj.f1[i]:.2f}" if traj.f1 is not None else "") for i in idx]
    return plot_rolls(rolls, titles, traj.fps, path, ncols=2, suptitle=f"{traj.label}: x̂0 over the reverse steps")


def plot_trajectory_curves(trajs: Sequence[Trajectory], path=None):
    """Note F1 of x̂0 (when scored) and the range of x_t against t, for each trajectory."""
    fig, axes = plt.subplots(1, 2, figsize=(11, 3.5))
    for traj in trajs:
        if traj.f1 is not None:
            axes[0].plot(traj.t, traj.f1, label=traj.label)
        lo = [float(np.percentile(x.astype(np.float32), 1)) for x in traj.x_t]
        hi = [float(np.percentile(x.astype(np.float32), 99)) for x in traj.x_t]
        axes[1].fill_between(traj.t, lo, hi, alpha=0.3, label=traj.label)
    axes[0].set_title("note F1 of x̂0 vs t")
    axes[0].set_ylim(0, 1)
    axes[1].set_title("1st–99th percentile of x_t vs t (§4.3: narrows to ~[0, 1])")
    for ax in axes:
        ax.set_xlabel("t")
        ax.invert_xaxis()
        ax.grid(alpha=0.3)
        ax.legend()
    fig.tight_layout()
    _save(fig, path)
    return fig


class TrajectoryScrubber:
    """An ipywidgets slider + Play button that scrub through a :class:`Trajectory`.

    Each move redraws x_t and x̂0 as a PNG in an ``ipywidgets.Image`` and shows t, ᾱ_t and the
    note F1 of the current x̂0. ``widget`` is the box to display; :meth:`show` renders step i.
    """

    def __init__(self, traj: Trajectory, ref_roll=None, interval_ms: int = 150):
        import ipywidgets as widgets

        self.traj, self.ref_roll = traj, ref_roll
        self._fig, self._im_xt, self._im_x0, self._title = _trajectory_figure(traj, ref_roll, figsize=(8, 4))
        plt.close(self._fig)  # drawn into PNGs only; never shown by the inline backend
        last = len(traj) - 1
        self.slider = widgets.IntSlider(value=0, min=0, max=last, step=1, description="step",
                                        continuous_update=True, layout=widgets.Layout(width="60%"))
        self.play = widgets.Play(value=0, min=0, max=last, step=1, interval=interval_ms, description="play")
        widgets.jslink((self.play, "value"), (self.slider, "value"))
        self.label = widgets.HTML()
        self.image = widgets.Image(format="png")
        self.slider.add_class("diffroll-step-slider")
        self.image.add_class("diffroll-trajectory-image")
        self.label.add_class("diffroll-trajectory-label")
        self.slider.observe(lambda change: self.show(change["new"]), names="value")
        self.widget = widgets.VBox([widgets.HBox([self.play, self.slider]), self.label, self.image])
        self._cache: dict[int, bytes] = {}
        self.show(0)

    def render(self, i: int) -> bytes:
        if i not in self._cache:
            self._im_xt.set_data(self.traj.x_t[i].astype(np.float32))
            self._im_x0.set_data(self.traj.x0_hat[i].astype(np.float32))
            self._title.set_text(_frame_title(self.traj, i))
            buf = io.BytesIO()
            self._fig.savefig(buf, format="png", dpi=72)
            self._cache[i] = buf.getvalue()
        return self._cache[i]

    def show(self, i: int) -> None:
        i = int(i)
        traj = self.traj
        f1 = f" &nbsp; note F1(x̂0) = <b>{traj.f1[i]:.3f}</b>" if traj.f1 is not None else ""
        self.label.value = (f"<span class='diffroll-status'>step {i + 1}/{len(traj)} &nbsp; t = <b>{traj.t[i]}</b>"
                            f" &nbsp; ᾱ_t = <b>{traj.alpha_bar[i]:.4f}</b>{f1}</span>")
        self.image.value = self.render(i)


def trajectory_widget(traj: Trajectory, ref_roll=None, interval_ms: int = 150):
    """The scrubber's widget box (see :class:`TrajectoryScrubber`)."""
    return TrajectoryScrubber(traj, ref_roll, interval_ms).widget


# --- inpainting (§4.4, Fig. 5) -------------------------------------------------------------------

def mask_spans(mask) -> list[tuple[int, int]]:
    """[start, end) frame spans where ``mask`` (frames,) is True."""
    m = np.pad(np.asarray(mask, dtype=np.int8), 1)
    d = np.diff(m)
    return list(zip(np.flatnonzero(d == 1).tolist(), np.flatnonzero(d == -1).tolist()))


def outline_spans(ax, spans, fps: float, ymin: float, ymax: float, color: str = "red"):
    for s, e in spans:
        ax.add_patch(Rectangle((s / fps, ymin), (e - s) / fps, ymax - ymin, fill=False, edgecolor=color, lw=2.5))


def plot_inpainting(mel, mask, x0, ref_roll=None, fps: float = 31.25, title: str = "", path=None):
    """Fig. 5: the masked c_mel and the inpainted roll, masked spans outlined in red."""
    mel, x0 = _np(mel), _np(x0)
    spans = mask_spans(mask)
    n = 3 if ref_roll is not None else 2
    fig, axes = plt.subplots(n, 1, figsize=(10, 2.6 * n), sharex=True)
    show_mel(mel, axes[0], fps, "c_mel with masked spans set to −1")
    outline_spans(axes[0], spans, fps, 0, mel.shape[0])
    show_roll(np.clip(x0, 0, 1), axes[1], fps, "DiffRoll output x0: transcribed outside, generated inside red")
    outline_spans(axes[1], spans, fps, LOWEST_MIDI - 0.5, LOWEST_MIDI + N_KEYS - 0.5)
    if ref_roll is not None:
        show_roll(ref_roll, axes[2], fps, "reference roll")
        outline_spans(axes[2], spans, fps, LOWEST_MIDI - 0.5, LOWEST_MIDI + N_KEYS - 0.5)
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    _save(fig, path)
    return fig


# --- generation statistics (§4.3) ----------------------------------------------------------------

def plot_roll_statistics(stats: dict[str, dict], path=None):
    """Polyphony, pitch and note-length histograms of several sets of rolls.

    ``stats`` maps a label to :func:`diffroll.experiments.roll_statistics`' dict.
    """
    fig, axes = plt.subplots(1, 3, figsize=(14, 3.6))
    for k, (label, s) in enumerate(stats.items()):
        poly = np.asarray(s["polyphony"])
        axes[0].hist(poly, bins=np.arange(0, max(12, poly.max(initial=0) + 2)) - 0.5, density=True, alpha=0.5,
                     label=f"{label} (mean {poly.mean() if poly.size else 0:.2f})", color=f"C{k}")
        axes[1].hist(s["pitches"], bins=np.arange(LOWEST_MIDI, LOWEST_MIDI + N_KEYS + 1, 2), density=True,
                     alpha=0.5, label=label, color=f"C{k}")
        lengths = np.asarray(s["lengths"])
        axes[2].hist(lengths, bins=np.linspace(0, 2.0, 41), density=True, alpha=0.5,
                     label=f"{label} (median {np.median(lengths) if lengths.size else 0:.2f} s)", color=f"C{k}")
    axes[0].set_xlabel("notes sounding per frame (polyphony)")
    axes[1].set_xlabel("MIDI pitch")
    axes[2].set_xlabel("note length (s)")
    for ax in axes:
        ax.legend(fontsize=8)
        ax.grid(alpha=0.3)
    fig.tight_layout()
    _save(fig, path)
    return fig


# --- tables of scores ---------------------------------------------------------------------------

def plot_f1_vs_w(table: dict[str, dict[float, float]], path=None, title: str = "note F1 vs w",
                 baselines: dict[str, float] | None = None, ylabel: str = "note F1"):
    """One line per model: F1 against the guidance weight w (Fig. 4); baselines as flat lines."""
    fig, ax = plt.subplots(figsize=(6.5, 4))
    for k, (label, by_w) in enumerate(table.items()):
        ws = sorted(by_w)
        ax.plot(ws, [by_w[w] for w in ws], "o-", color=f"C{k}", label=label)
    for k, (label, value) in enumerate((baselines or {}).items()):
        ax.axhline(value, ls="--", color=f"C{k + len(table)}", label=label)
    ax.set_xlabel("w (Algorithm 1 line 4)")
    ax.set_ylabel(ylabel)
    ax.set_title(title)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    _save(fig, path)
    return fig


def plot_bars(values: dict[str, float], path=None, title: str = "", ylabel: str = "note F1",
              reference: dict[str, float] | None = None):
    """A bar per label; ``reference`` values (e.g. the paper's) as hollow bars beside them."""
    labels = list(values)
    x = np.arange(len(labels))
    fig, ax = plt.subplots(figsize=(max(5, 1.2 * len(labels)), 3.8))
    width = 0.4 if reference else 0.7
    ax.bar(x - (width / 2 if reference else 0), [values[k] for k in labels], width, label="this run")
    if reference:
        ax.bar(x + width / 2, [reference.get(k, np.nan) for k in labels], width, fill=False, hatch="//",
               label="paper")
    ax.set_xticks(x, labels, rotation=20, ha="right")
    ax.set_ylabel(ylabel)
    ax.set_title(title)
    ax.grid(axis="y", alpha=0.3)
    ax.legend()
    fig.tight_layout()
    _save(fig, path)
    return fig
