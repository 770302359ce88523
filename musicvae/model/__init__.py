"""The GrooVAE model: :class:`MusicVAE` (encoder + decoder) and its losses."""

from musicvae.model.decoder import GrooveLstmDecoder, activate_outputs
from musicvae.model.encoder import BidirectionalLstmEncoder
from musicvae.model.hierarchical import HierarchicalDecoder
from musicvae.model.losses import (
    clip_gradients,
    configure_cpu_allocator,
    elbo,
    kl_beta,
    kl_divergence,
    learning_rate,
    make_optimizer,
    reconstruction_loss,
)
from musicvae.model.vae import MusicVAE

__all__ = [
    "MusicVAE",
    "BidirectionalLstmEncoder",
    "GrooveLstmDecoder",
    "HierarchicalDecoder",
    "activate_outputs",
    "reconstruction_loss",
    "kl_divergence",
    "kl_beta",
    "elbo",
    "learning_rate",
    "clip_gradients",
    "make_optimizer",
    "configure_cpu_allocator",
]
