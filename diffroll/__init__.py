"""DiffRoll: diffusion-based generative music transcription (Cheuk et al., ICASSP 2023)."""
from .core.config import Config, get_config

__version__ = "0.2.0"
__all__ = ["Config", "Diffusion", "DiffRoll", "Pipeline", "get_config", "load_model", "transcribe"]


def __getattr__(name):
    """The classes that need torch, imported on first use: `import diffroll` (and `diffroll --help`)
    does not import torch."""
    if name == "Pipeline":
        from .transcription.pipeline import Pipeline
        return Pipeline
    if name == "Diffusion":
        from .core.diffusion import Diffusion
        return Diffusion
    if name == "DiffRoll":
        from .core.model import DiffRoll
        return DiffRoll
    raise AttributeError(f"module 'diffroll' has no attribute {name!r}")


def load_model(path=None, device="cpu"):
    """The :class:`~diffroll.transcription.pipeline.Pipeline` of a checkpoint (the bundled model when ``path``
    is None): ``.transcribe``, ``.generate``, ``.inpaint``; ``.model`` and ``.config``."""
    from .core.checkpoint import load_pipeline
    return load_pipeline(path, device=device)


def transcribe(audio, **kwargs):
    """Audio (path or 16 kHz array) -> pretty_midi.PrettyMIDI; see :func:`diffroll.transcription.pipeline.transcribe`."""
    from .transcription.pipeline import transcribe as _transcribe
    return _transcribe(audio, **kwargs)
