"""DiffRoll: diffusion-based generative music transcription (Cheuk et al., ICASSP 2023).

    pipe = diffroll.load_model()             # the bundled model: a transcription Pipeline
    midi = diffroll.transcribe("song.wav")   # audio -> pretty_midi.PrettyMIDI

Layers (each imports only those below it): ``core`` (config, diffusion, networks, rolls, audio
features, checkpoint files) · ``corpus`` (synthetic and real piano data) · ``transcription``
(settings, windows and sampling, decoding, the Pipeline) · ``training`` · ``evaluation`` ·
``lab`` (notebook plots) · ``cli``.
"""
import importlib

from .core.config import Config, get_config

__version__ = "0.2.0"
__all__ = ["Config", "Diffusion", "DiffRoll", "Pipeline", "get_config", "load_model", "transcribe"]

_LAZY = {  # name -> (module, attribute): these need torch, which `import diffroll` (and `diffroll --help`) does not load
    "Pipeline": ("diffroll.transcription.pipeline", "Pipeline"),
    "load_model": ("diffroll.transcription.pipeline", "load_model"),
    "transcribe": ("diffroll.transcription.pipeline", "transcribe"),
    "Diffusion": ("diffroll.core.diffusion", "Diffusion"),
    "DiffRoll": ("diffroll.core.model", "DiffRoll"),
}


def __getattr__(name):
    if name not in _LAZY:
        raise AttributeError(f"module 'diffroll' has no attribute {name!r}")
    module, attr = _LAZY[name]
    return getattr(importlib.import_module(module), attr)
