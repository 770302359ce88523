"""The ways people reach the engine: the ``musicvae`` command line (:mod:`.cli`) and Groove Studio,
the local web page it starts (:mod:`.studio`)."""
