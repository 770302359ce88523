"""musicvae: MusicVAE / GrooVAE drum models in PyTorch.

The public API — everything a script needs, on numpy arrays::

    import musicvae

    vae = musicvae.load("groovae_4bar")                 # bundled name, run folder or magenta checkpoint
    grooves = musicvae.sample(vae, 4, seed=0)           # float32 [4, 64, 27]
    mu = musicvae.encode(vae, grooves)                  # float32 [4, 256]
    again = musicvae.decode(vae, mu, seed=0)            # float32 [4, 64, 27]
    strip = musicvae.interpolate(vae, grooves[0], grooves[1], 5)
    beat = musicvae.read_midi("my_beat.mid")            # .groove [steps, 27], .qpm, .skipped_pitches
    played = musicvae.humanize(beat.groove)             # bundled groovae_2bar_humanize, notes kept
    musicvae.write_midi("played.mid", played, beat.qpm, kept=beat.notes)  # the input's notes on their own pitches
    musicvae.render_groove(played, wav="played.wav", png="played.png", bpm=beat.qpm)

A groove is float32 [steps, 27]: hits 0/1, velocities 0–1 (MIDI velocity / 127) and offsets
−1…1 (positive = early, ±1 = half a 16th-note step) for 9 drum classes; see
``musicvae.data.groove``. ``regroove`` is the general encode-and-decode behind humanize, drumify,
hi-hat infill and groove transfer; ``render_midi`` renders a MIDI file to WAV. The functions take
and return numpy arrays; the model's own methods (``vae.encode``, ``vae.sample``) take torch
tensors, and each refuses the other kind with a TypeError that says what to pass.

Names are imported on first use, so ``import musicvae`` does not import torch.
"""

import importlib

__version__ = "0.1.0"

# public name -> (module, attribute there)
_API = {
    "load": ("musicvae.checkpoints.native", "load"),
    "sample": ("musicvae.generate", "sample"),
    "encode": ("musicvae.generate", "encode"),
    "decode": ("musicvae.generate", "decode"),
    "interpolate": ("musicvae.generate", "interpolate"),
    "regroove": ("musicvae.generate", "regroove"),
    "humanize": ("musicvae.generate", "humanize"),
    "drumify": ("musicvae.generate", "drumify"),
    "infill_hihat": ("musicvae.generate", "infill_hihat"),
    "groove_transfer": ("musicvae.generate", "groove_transfer"),
    "read_midi": ("musicvae.generate", "read_groove"),
    "write_midi": ("musicvae.generate", "write_midi"),
    "render_groove": ("musicvae.render", "render_groove"),
    "render_midi": ("musicvae.render", "render_midi_to_wav"),
}
__all__ = [*_API, "__version__"]


def __getattr__(name: str):
    if name in _API:
        module, attribute = _API[name]
        return getattr(importlib.import_module(module), attribute)
    raise AttributeError(f"module 'musicvae' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted([*globals(), *_API])
