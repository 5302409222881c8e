"""Headless Chromium drives JupyterLab through notebooks/07_trajectory.ipynb: dragging the step
slider and pressing Play must change the status line and the picture (see check_widget.py)."""
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
    seen = check_widget.check(timeout=300)
    assert seen["before"] != seen["after_drag"] != seen["after_play"]
    assert len(set(seen["pictures"])) == 3
