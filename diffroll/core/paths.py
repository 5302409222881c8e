"""Where things live: the repository root, the data/run/figure folders of each scale.

Real runs (``cpu``, ``paper``) write their figures to ``figures/`` (committed); ``smoke`` runs
(tests, CI) write to ``runs/smoke/figures`` so that they never overwrite a real run's figures.
"""
from __future__ import annotations

import os
from pathlib import Path

_PACKAGE = Path(__file__).resolve().parent.parent


def repo_root() -> Path:
    """$DIFFROLL_ROOT, else the checkout this package lives in, else the working directory."""
    if os.environ.get("DIFFROLL_ROOT"):
        return Path(os.environ["DIFFROLL_ROOT"]).resolve()
    if (_PACKAGE.parent / "pyproject.toml").is_file():
        return _PACKAGE.parent
    return Path.cwd()


def figures_dir(scale: str) -> Path:
    root = repo_root()
    path = root / "runs" / "smoke" / "figures" if scale == "smoke" else root / "figures"
    path.mkdir(parents=True, exist_ok=True)
    return path


def runs_dir(name: str = "") -> Path:
    path = repo_root() / "runs" / name
    path.mkdir(parents=True, exist_ok=True)
    return path


def data_dir(name: str = "") -> Path:
    return repo_root() / "data" / name


def cache_dir() -> Path:
    return repo_root() / ".cache"


def bundled_checkpoint() -> Path:
    """The bundled model: the note-state piano transcriber (``diffroll transcribe``, ``load_model()``)."""
    return repo_root() / "checkpoints" / "diffroll-cpu.pt"


def generative_checkpoint() -> Path:
    """The bundled model of generation and inpainting (``diffroll generate / inpaint``, notebooks 08
    and 09): the earlier frame-roll model (v1). The piano transcriber's unconditional branch
    writes almost no notes (0.6 notes/s against 8.5 in real music), so it does not generate."""
    return repo_root() / "checkpoints" / "diffroll-generative-cpu.pt"
