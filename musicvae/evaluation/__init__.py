"""Evaluation: metrics apart from the report that shows them.

* :mod:`.hits` — hit precision/recall/F1, velocity and timing errors (units in their docstrings);
* :mod:`.features` — per-groove features (density, swing, velocity, timing …) and the
  Yang & Lerch relative comparison (OA, KL);
* :mod:`.latent` — posterior-collapse diagnostics (active units, KL per dimension, latent usage);
* :mod:`.realism` — the classifier two-sample test and the copy fraction of samples;
* :mod:`.targets` — issue 17's five feature targets, and how precisely a split of performances pins them;
* :mod:`.evaluate` — the whole suite for one model (``musicvae evaluate``);
* :mod:`.selection` — which checkpoint and prior fit of a run to keep (``musicvae choose-checkpoint``);
* :mod:`.report` and :mod:`.figure` — ``evaluation.json``, ``report.md`` and ``figure.png``.
"""
