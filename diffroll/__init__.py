"""DiffRoll: diffusion-based generative music transcription (Cheuk et al., ICASSP 2023)."""
from .config import Config, get_config
from .diffusion import Diffusion
from .model import DiffRoll

__version__ = "0.2.0"
__all__ = ["Config", "Diffusion", "DiffRoll", "Pipeline", "get_config", "load_model", "transcribe"]


def __getattr__(name):
    if name == "Pipeline":  # imported on first use: `import diffroll` stays light
        from .pipeline import Pipeline
        return Pipeline
    raise AttributeError(f"module 'diffroll' has no attribute {name!r}")


def load_model(path=None, device="cpu"):
    """The :class:`~diffroll.pipeline.Pipeline` of a checkpoint (the bundled model when ``path``
    is None): ``.transcribe``, ``.generate``, ``.inpaint``; ``.model`` and ``.config``."""
    from .checkpoint import load_pipeline
    return load_pipeline(path, device=device)


def transcribe(audio, **kwargs):
    """Audio (path or 16 kHz array) -> pretty_midi.PrettyMIDI; see :func:`diffroll.pipeline.transcribe`."""
    from .pipeline import transcribe as _transcribe
    return _transcribe(audio, **kwargs)
