"""Property-based fuzzing of a checkpoint's config.json (issue 19): whatever the file holds — a
mutated valid config, any JSON value, deep nesting, arbitrary bytes — the real loader either
returns a model or raises the one-line CheckpointError the CLI prints, and every case is quick."""

from __future__ import annotations

import json
import math
import os
import time

import pytest
import torch

from musicvae.checkpoints.native import CheckpointError, load_model, save_model
from musicvae.configs import get_config
from musicvae.model import MusicVAE

hypothesis = pytest.importorskip("hypothesis")
from hypothesis import HealthCheck, given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

TINY = ["model.z_size=8", "model.enc_rnn_size=16", "model.dec_rnn_size=16,16", "data.split_bars=1"]
# A case takes milliseconds (a 20k-parameter model); the bound is loose because the test machine may
# be shared — it catches a config that makes the loader allocate gigabytes, not a slow core.
SECONDS_PER_CASE = 15.0

scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(2**70), max_value=2**70),
    st.floats(allow_nan=True, allow_infinity=True),
    st.text(max_size=12),
)
json_values = st.recursive(
    scalars,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4),
    max_leaves=12,
)


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    torch.manual_seed(0)
    model = MusicVAE(get_config("groovae_4bar").with_overrides(TINY))
    return save_model(tmp_path_factory.mktemp("fuzz") / "run", model)


@st.composite
def mutated_configs(draw, base: dict) -> dict:
    """A valid config with a few leaves replaced, keys dropped or added, sections swapped out."""
    config = json.loads(json.dumps(base))
    for _ in range(draw(st.integers(1, 3))):
        section = draw(st.sampled_from(sorted(k for k in config if isinstance(config[k], dict)) or ["model"]))
        action = draw(st.sampled_from(["replace", "drop", "add", "section", "near"]))
        values = config.get(section)
        if not isinstance(values, dict) or not values:
            config[section] = draw(json_values)
            continue
        key = draw(st.sampled_from(sorted(values)))
        if action == "replace":
            values[key] = draw(json_values)
        elif action == "near" and isinstance(values[key], (int, float)) and not isinstance(values[key], bool):
            values[key] = values[key] + draw(st.sampled_from([-1, 1, -values[key], 10**6, 0.5]))
        elif action == "drop":
            del values[key]
        elif action == "add":
            values[draw(st.text(max_size=8))] = draw(json_values)
        else:
            config[section] = draw(json_values)
    return config


def config_files(base: dict):
    depth = st.integers(min_value=1, max_value=50_000)
    return st.one_of(
        mutated_configs(base).map(lambda c: json.dumps(c, allow_nan=True).encode()),
        json_values.map(lambda v: json.dumps(v, allow_nan=True).encode()),
        depth.map(lambda n: (("[" * n) + ("]" * n)).encode()),
        depth.map(lambda n: ('{"a":' * n + "1" + "}" * n).encode()),
        st.binary(max_size=64),
    )


def test_any_config_json_loads_or_fails_with_a_user_error(run):
    base = json.loads((run / "config.json").read_text())
    original = (run / "config.json").read_bytes()
    outcomes = {"loaded": 0, "refused": 0}

    # CI runs 150 fixed (derandomized) cases in a few seconds; FUZZ_EXAMPLES=5000 explores afresh.
    examples = os.environ.get("FUZZ_EXAMPLES")
    @settings(max_examples=int(examples or 150), deadline=None, derandomize=examples is None,
              suppress_health_check=list(HealthCheck))  # fmt: skip
    @given(config_files(base))
    def check(content: bytes) -> None:
        (run / "config.json").write_bytes(content)
        start = time.perf_counter()
        try:
            model = load_model(run)
        except CheckpointError as err:
            message = str(err)
            assert message and "\n" not in message and len(message) < 600, message
            outcomes["refused"] += 1
        else:
            assert all(math.isfinite(float(p.detach().abs().sum())) for p in model.parameters())
            outcomes["loaded"] += 1
        assert time.perf_counter() - start < SECONDS_PER_CASE

    try:
        check()
    finally:
        (run / "config.json").write_bytes(original)
    assert outcomes["refused"] > 50 and outcomes["loaded"] > 0, outcomes  # both paths were exercised
