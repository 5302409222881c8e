"""The ipywidgets scrubber of a :class:`~diffroll.lab.trajectory.Trajectory`: a slider and a Play
button over the reverse steps of Algorithm 1."""
from __future__ import annotations

import io

import ipywidgets as widgets
import matplotlib.pyplot as plt

from .trajectory import Trajectory, _trajectory_figure

class TrajectoryScrubber:
    """An ipywidgets slider + Play button that scrub through a :class:`Trajectory`.

    Each move redraws x_t and x̂0 as a PNG in an ``ipywidgets.Image`` and shows t, ᾱ_t and the
    note F1 of the current x̂0 and x_t. ``widget`` is the box to display; :meth:`show` renders step i.
    """

    def __init__(self, traj: Trajectory, ref_roll=None, interval_ms: int = 150):
        self.traj, self.ref_roll = traj, ref_roll
        self._figure = _trajectory_figure(traj, ref_roll, figsize=(8, 4))
        plt.close(self._figure.fig)  # drawn into PNGs only; never shown by the inline backend
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
            self._figure.draw(self.traj, i)
            buf = io.BytesIO()
            self._figure.fig.savefig(buf, format="png", dpi=72)
            self._cache[i] = buf.getvalue()
        return self._cache[i]

    def show(self, i: int) -> None:
        i = int(i)
        traj = self.traj
        f1 = (f" &nbsp; note F1: x̂0 <b>{traj.f1[i]:.3f}</b>, x_t <b>{traj.f1_xt[i]:.3f}</b>"
              if traj.f1 is not None else "")
        self.label.value = (f"<span class='diffroll-status'>step {i + 1}/{len(traj)} &nbsp; t = <b>{traj.t[i]}</b>"
                            f" &nbsp; ᾱ_t = <b>{traj.alpha_bar[i]:.4f}</b>{f1}</span>")
        self.image.value = self.render(i)


def trajectory_widget(traj: Trajectory, ref_roll=None, interval_ms: int = 150):
    """The scrubber's widget box (see :class:`TrajectoryScrubber`)."""
    return TrajectoryScrubber(traj, ref_roll, interval_ms).widget
