"""Milliseconds for magenta 2.1.4 to sample 16 four-bar grooves from ``groovae_4bar`` and write
each as MIDI bytes on this machine: the yardstick for ``bench/sample.py``.

Runs only in magenta's environment (its install steps are in ``bench/magenta_train_step.py``):

    python bench/sample.py --save-grooves grooves.npy
    .magenta-venv/bin/python bench/magenta_sample.py --grooves grooves.npy

The decoder is magenta's ``TrainedModel`` sampling graph for ``configs.CONFIG_MAP['groovae_4bar']``
at batch 16 (16 × 64 steps, z fixed), restored from a checkpoint of freshly initialised weights:
its cost does not depend on the values. What follows it does: a random-weight decoder hits about
half the cells (289 notes per groove, four times the bundled model's 67), and magenta's converter
and pretty_midi spend per note. So ``--grooves`` takes 16 grooves from a trained model (``python
bench/sample.py --save-grooves FILE.npy`` writes the bundled model's), and the timed call is what
``TrainedModel.sample(16, length=64)`` and writing its MIDI do, with those grooves converted in
place of the random model's output: ``session.run`` of the decoder, the converter's
``from_tensors`` (tensors → NoteSequences), then each NoteSequence → pretty_midi → MIDI bytes.
Prints ``name=value`` lines, the median ms per call last.
"""

from __future__ import annotations

import argparse
import copy
import io
import os
import statistics
import tempfile
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import note_seq  # noqa: E402
import numpy as np  # noqa: E402
import tensorflow.compat.v1 as tf  # noqa: E402
from magenta.models.music_vae import TrainedModel, configs  # noqa: E402


def random_checkpoint(config, folder: str) -> str:
    """Save groovae_4bar's variables at their initial values; returns the checkpoint path."""
    config = copy.deepcopy(config)  # building attaches graph state that TrainedModel cannot copy
    with tf.Graph().as_default():
        model, depth = config.model, config.data_converter.output_depth
        model.build(config.hparams, depth, is_training=False)
        # the variables are created with the ops that use them: build both that TrainedModel builds
        batch = config.hparams.batch_size
        model.sample(batch, max_length=64, z=tf.zeros([batch, config.hparams.z_size]))
        model.encode(tf.zeros([batch, 64, depth]), tf.fill([batch], 64), tf.zeros([batch, 64, 0]))
        with tf.Session() as session:
            session.run(tf.global_variables_initializer())
            return tf.train.Saver().save(session, os.path.join(folder, "model.ckpt"))


def median_ms(call, repeats: int, warmup: int = 3) -> tuple[float, object]:
    """Median wall-clock ms of ``call()`` over ``repeats`` runs after ``warmup``; and its last result."""
    times = []
    for k in range(warmup + repeats):
        start = time.perf_counter()
        result = call()
        if k >= warmup:
            times.append((time.perf_counter() - start) * 1000)
    return statistics.median(times), result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=20)
    parser.add_argument("--grooves", help="[16, 64, 27] .npy of trained-model grooves to convert")
    args = parser.parse_args()
    tf.disable_v2_behavior()
    np.random.seed(0)
    tf.set_random_seed(0)

    config = configs.CONFIG_MAP["groovae_4bar"]
    grooves = np.load(args.grooves) if args.grooves else None
    n = 16 if grooves is None else len(grooves)
    with tempfile.TemporaryDirectory() as folder:
        model = TrainedModel(config, batch_size=n, checkpoint_dir_or_path=random_checkpoint(config, folder))
    z = np.random.randn(n, config.hparams.z_size).astype(np.float32)
    feed = {model._z_input: z, model._temperature: 1.0, model._max_length: 64}

    def decode() -> np.ndarray:
        return model._sess.run(model._outputs, feed)

    def to_sequences(tensors: np.ndarray) -> list:
        # what TrainedModel.sample does with the decoder's output
        return model._config.data_converter.from_tensors(tensors if grooves is None else grooves)

    def to_midi(sequences: list) -> list[bytes]:
        files = []
        for sequence in sequences:
            buffer = io.BytesIO()
            note_seq.sequence_proto_to_pretty_midi(sequence).write(buffer)
            files.append(buffer.getvalue())
        return files

    decoder_ms, tensors = median_ms(decode, args.repeats)
    convert_ms, sequences = median_ms(lambda: to_sequences(tensors), args.repeats)
    midi_ms, _ = median_ms(lambda: to_midi(sequences), args.repeats)
    total_ms, files = median_ms(lambda: to_midi(to_sequences(decode())), args.repeats)
    assert tensors.shape == (n, 64, 27) and len(files) == n
    print(f"tensorflow={tf.__version__}")
    print(f"grooves={args.grooves or 'this random-weight model (dense: about half the cells hit)'}")
    print(f"notes_per_groove={np.mean([len(s.notes) for s in sequences]):.1f}")
    print(f"decoder_ms={decoder_ms:.2f}")
    print(f"tensors_to_notesequences_ms={convert_ms:.2f}")
    print(f"notesequences_to_midi_ms={midi_ms:.2f}")
    print(f"magenta_sample_16x4bar_midi_ms={total_ms:.2f}")


if __name__ == "__main__":
    main()
