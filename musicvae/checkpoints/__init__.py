"""Checkpoint I/O, in one place: this project's format (:mod:`.native`: ``config.json`` +
``model.safetensors``, never unpickled) and magenta's TensorFlow checkpoints (:mod:`.magenta`:
read without TensorFlow and mapped onto :class:`musicvae.model.MusicVAE`)."""
