"""Headless Chromium drives JupyterLab through notebooks/07_trajectory.ipynb: dragging the step
slider and pressing Play must change the status line and the picture (``check`` raises when they
do not; see check_widget.py). The test asserts what ``check`` does not: that the steps the widget
shows move the right way and that it shows the bundled model's transcription."""
import json
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

    from diffroll.lab import trajectory as tr
    from diffroll.lab import widget

    roll = np.zeros((88, 8), np.float32)
    traj = tr.Trajectory(t=[2, 1], alpha_bar=[0.5, 0.9], x_t=[roll, roll], x0_hat=[roll, roll], x0=roll,
                          f1=[0.25, 0.75], f1_xt=[0.0, 0.5])
    scrub = widget.TrajectoryScrubber(traj)
    scrub.slider.value = 1
    text = html.unescape(re.sub(r"<[^>]+>", "", scrub.label.value))
    assert check_widget.parse_status(text) == {"step": 2, "steps": 2, "t": 1, "alpha_bar": 0.9, "f1_x0": 0.75,
                                               "f1_xt": 0.5}


class _Socket:
    """A DevTools websocket that answers every command at once and records what was sent."""

    def __init__(self, value=None):
        self.sent, self.value = [], value

    def send(self, text):
        self.sent.append(json.loads(text))

    def recv(self):
        return json.dumps({"id": self.sent[-1]["id"], "result": {"result": {"value": self.value}}})


def _cdp(value=None) -> "check_widget.CDP":
    cdp = check_widget.CDP.__new__(check_widget.CDP)
    cdp.ws, cdp.next_id = _Socket(value), 0
    return cdp


def test_running_the_cells_does_not_wait_for_the_whole_notebook():
    """notebook:run-all-cells settles when every cell has run (over a minute for 07 on a slow
    machine, past one DevTools reply's timeout): it is started, not awaited."""
    cdp = _cdp(True)
    check_widget.run_all_cells(cdp)
    (msg,) = cdp.ws.sent
    assert msg["method"] == "Runtime.evaluate" and msg["params"]["awaitPromise"] is False
    assert "notebook:run-all-cells" in msg["params"]["expression"]


def test_waiting_for_the_widget_is_bounded_and_names_what_it_waited_for(monkeypatch):
    monkeypatch.setattr(check_widget.time, "sleep", lambda s: None)
    cdp = _cdp("")  # never ready; the progress expression answers "" too
    cdp.js = lambda expression, await_promise=True: "3 of 9 code cells run" if expression == "progress" else None
    with pytest.raises(check_widget.WidgetCheckError,
                       match=r"timed out after 0 s waiting for the scrubber widget \(3 of 9 code cells run\)"):
        check_widget.CDP.wait_js(cdp, "ready", 0.05, "the scrubber widget", progress="progress")
