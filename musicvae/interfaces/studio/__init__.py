"""Groove Studio: a local web page (``musicvae studio``) that generates, plays, edits and exports
grooves; the server is in :mod:`musicvae.interfaces.studio.server`, the page in ``static/``."""
