"""The ways people reach the engine: the ``musicvae`` command line (:mod:`.cli`)."""
