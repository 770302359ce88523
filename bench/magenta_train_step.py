"""Seconds per training step of magenta's own ``groovae_4bar`` on this machine: the yardstick for
``bench/train_step.py``.

This script does not run in the project's environment. It needs magenta 2.1.4 and the versions
the reference fixtures were made with (Python 3.11; ``../shared/reference/magenta/README.md``):

    python3.11 -m venv .magenta-venv
    .magenta-venv/bin/pip install tensorflow-cpu==2.12.1 tensorflow-probability==0.20.1 \
        tf-slim==1.1.0 numpy==1.23.5 protobuf==3.20.3
    .magenta-venv/bin/pip install --no-deps magenta==2.1.4 note-seq==0.0.5
    .magenta-venv/bin/pip install pretty_midi librosa==0.10.1 "numba<0.59" "scipy<1.12" \
        pydub bokeh ipython pandas tensorflow-datasets numpy==1.23.5 protobuf==3.20.3
    .magenta-venv/bin/python bench/magenta_train_step.py --batch-size 512

It builds the model with magenta's code (``configs.CONFIG_MAP['groovae_4bar']``,
``MusicVAE.build`` and ``MusicVAE.train``: its loss, learning-rate schedule and Adam) and adds
the clip-or-zero gradient step that ``music_vae_train`` applies, then times ``session.run`` of
that op. As in our bench, the batch is fixed and held in memory, so the figure is the step
alone: magenta's input pipeline (its converter runs in Python inside ``tf.data``) is left out,
which only flatters magenta. Prints ``name=value`` lines, the median seconds per step last.
"""

from __future__ import annotations

import argparse
import os
import statistics
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np  # noqa: E402
import tensorflow.compat.v1 as tf  # noqa: E402
from magenta.models.music_vae import configs  # noqa: E402


def groove_batch(batch: int, steps: int, seed: int) -> np.ndarray:
    """A random [batch, steps, 27] groove: hits with GMD's density (~10 % of cells), velocities in
    0–1 and offsets in −1–1 where there is a hit, zeros elsewhere. An LSTM step costs the same
    whatever the values are."""
    rng = np.random.default_rng(seed)
    hits = (rng.random((batch, steps, 9)) < 0.1).astype(np.float32)
    velocities = hits * rng.random((batch, steps, 9), dtype=np.float32)
    offsets = hits * rng.uniform(-1, 1, (batch, steps, 9)).astype(np.float32)
    return np.concatenate([hits, velocities, offsets], axis=-1)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batch-size", type=int, default=512)
    parser.add_argument("--steps", type=int, default=8, help="timed steps, after 2 warm-up steps")
    args = parser.parse_args()
    tf.disable_v2_behavior()

    config = configs.CONFIG_MAP["groovae_4bar"]
    config.hparams.batch_size = args.batch_size
    hparams = config.hparams
    window = groove_batch(args.batch_size, 64, seed=0)
    with tf.Graph().as_default():
        model = config.model
        model.build(hparams, config.data_converter.output_depth, is_training=True)
        sequence = tf.constant(window)
        optimizer = model.train(sequence, sequence, tf.fill([args.batch_size], 64))
        grads, variables = zip(*optimizer.compute_gradients(model.loss))
        norm = tf.global_norm(grads)
        clipped = tf.cond(
            norm < hparams.grad_norm_clip_to_zero,
            lambda: tf.clip_by_global_norm(grads, hparams.grad_clip, use_norm=norm)[0],
            lambda: [tf.zeros(tf.shape(g)) for g in grads],
        )
        train_op = optimizer.apply_gradients(zip(clipped, variables), global_step=model.global_step)
        with tf.Session() as session:
            session.run(tf.global_variables_initializer())
            times = []
            for step in range(args.steps + 2):
                start = time.perf_counter()
                session.run(train_op)
                if step >= 2:
                    times.append(time.perf_counter() - start)
    seconds = statistics.median(times)
    print(f"tensorflow={tf.__version__}")
    print(f"batch_size={args.batch_size}")
    print("step_seconds_all=" + ",".join(f"{t:.3f}" for t in times))
    print(f"examples_per_second={args.batch_size / seconds:.1f}")
    print(f"magenta_seconds_per_step={seconds:.3f}")


if __name__ == "__main__":
    main()
