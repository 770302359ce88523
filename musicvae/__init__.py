"""musicvae: MusicVAE / GrooVAE drum models in PyTorch.

Quick start::

    import musicvae
    vae = musicvae.load("runs/my_run")          # or a bundled model name, or a magenta checkpoint
    grooves = musicvae.sample(vae, n=4, seed=0)  # float32 [4, 64, 27]
"""

import importlib

__version__ = "0.1.0"

# Loaded on first use, so `import musicvae` (and CLI commands that need no model) skip torch.
_API = {
    "load": "musicvae.checkpoints.native",
    "sample": "musicvae.generate",
    "encode": "musicvae.generate",
    "decode": "musicvae.generate",
    "interpolate": "musicvae.generate",
    "regroove": "musicvae.generate",
}
__all__ = [*_API, "__version__"]


def __getattr__(name: str):
    if name in _API:
        return getattr(importlib.import_module(_API[name]), name)
    raise AttributeError(f"module 'musicvae' has no attribute {name!r}")
