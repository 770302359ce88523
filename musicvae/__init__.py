"""musicvae: MusicVAE / GrooVAE drum models in PyTorch."""
__version__ = "0.1.0"
