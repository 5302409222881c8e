"""DiffRoll: diffusion-based generative music transcription (Cheuk et al., ICASSP 2023)."""
from .config import Config, get_config
from .diffusion import Diffusion
from .model import DiffRoll

__version__ = "0.1.0"
__all__ = ["Config", "Diffusion", "DiffRoll", "get_config", "load_model", "transcribe"]


def load_model(path=None, device="cpu"):
    """A ready model from a checkpoint (the bundled model when ``path`` is None); see :mod:`diffroll.checkpoint`."""
    from .checkpoint import load_model as _load_model
    return _load_model(path, device=device)


def transcribe(audio, **kwargs):
    """Audio (path or 16 kHz array) -> pretty_midi.PrettyMIDI; see :func:`diffroll.inference.transcribe`."""
    from .inference import transcribe as _transcribe
    return _transcribe(audio, **kwargs)
