"""Headless Chromium drives JupyterLab through notebooks/07_trajectory.ipynb: dragging the step
slider and pressing Play must change the status line and the picture (``check`` raises when they
do not; see check_widget.py). The test asserts what ``check`` does not: that the steps the widget
shows move the right way and that it shows the bundled model's transcription."""
import shutil
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))
import check_widget  # noqa: E402


@pytest.mark.browser
def test_trajectory_scrubber_in_jupyterlab():
    if not any(shutil.which(n) for n in ("chromium", "chromium-browser", "google-chrome")):
        pytest.skip("no Chromium: apt-get install chromium")
    before, dragged, played = check_widget.check(timeout=300)["status"]
    assert before["step"] == 1 and before["t"] == before["steps"]  # opens at x_T
    assert 1 < dragged["step"] < played["step"] <= played["steps"]  # dragged forward, then Play advanced
    assert before["t"] > dragged["t"] > played["t"] and before["alpha_bar"] < dragged["alpha_bar"]
    assert min(s["f1_x0"] for s in (before, dragged, played)) > 0.5  # a real transcription, not an untrained model


def test_status_line_parser_reads_the_scrubber():
    """What the browser test reads: the scrubber's own status line (innerText: tags dropped,
    &nbsp; as U+00A0)."""
    import html
    import re

    import numpy as np

    from diffroll import viz

    roll = np.zeros((88, 8), np.float32)
    traj = viz.Trajectory(t=[2, 1], alpha_bar=[0.5, 0.9], x_t=[roll, roll], x0_hat=[roll, roll], x0=roll,
                          f1=[0.25, 0.75], f1_xt=[0.0, 0.5])
    scrub = viz.TrajectoryScrubber(traj)
    scrub.slider.value = 1
    text = html.unescape(re.sub(r"<[^>]+>", "", scrub.label.value))
    assert check_widget.parse_status(text) == {"step": 2, "steps": 2, "t": 1, "alpha_bar": 0.9, "f1_x0": 0.75,
                                               "f1_xt": 0.5}
