"""Test-wide setup: caches inside a temp dir, so runs leave nothing behind in $HOME."""
import os
import tempfile

_tmp = tempfile.mkdtemp(prefix="diffroll-tests-")
for var, sub in [("MPLCONFIGDIR", "mpl"), ("HF_HOME", "hf"), ("HF_DATASETS_CACHE", "hf/datasets"),
                 ("JUPYTER_RUNTIME_DIR", "jupyter")]:
    os.environ.setdefault(var, os.path.join(_tmp, sub))
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("MPLBACKEND", "Agg")

import torch  # noqa: E402

torch.set_num_threads(1)  # deterministic, and no oversubscription of the 2 cores

import sys  # noqa: E402

sys.path.insert(0, os.path.dirname(__file__))  # tests share small helpers (toy_data.py)

import pytest  # noqa: E402


@pytest.fixture
def frontends_made(monkeypatch):
    """The configs of every MelFrontend built while the test runs (from an empty front-end cache)."""
    from diffroll.core import audio

    made = []

    class Counted(audio.MelFrontend):
        def __init__(self, cfg=None):
            made.append(cfg)
            super().__init__(cfg)

    monkeypatch.setattr(audio, "MelFrontend", Counted)
    monkeypatch.setattr(audio, "_frontends", {})
    return made
