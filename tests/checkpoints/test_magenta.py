"""Reading TF checkpoints without TensorFlow, and the magenta -> PyTorch weight mapping.

The fixtures are magenta's own (``shared/reference/magenta``): a 200-step groovae_4bar
checkpoint and the encoder/decoder outputs TF computed from it. Two independent forward passes
reproduce them: one in numpy on the raw TF variables (written from the LSTMBlockCell equations),
one with torch.nn.LSTM/Linear modules loaded from :func:`magenta_to_state_dict`.
"""

from __future__ import annotations

import io
import json
import os
import shutil
import struct
import tarfile
from pathlib import Path

import numpy as np
import pytest
import torch
from conftest import REFERENCE_DIR

from musicvae.checkpoints.magenta import (
    CheckpointError,
    crc32c,
    expected_magenta_shapes,
    import_magenta_checkpoint,
    list_checkpoint,
    load_magenta_variables,
    magenta_to_state_dict,
    mask_crc,
    read_checkpoint,
    resolve_checkpoint,
)

ROOT = Path(__file__).resolve().parents[1]
REF = REFERENCE_DIR
CKPT_DIR = REF / "checkpoint_groovae_4bar"
PREFIX = CKPT_DIR / "model.ckpt-200"
DATA_NAME = "model.ckpt-200.data-00000-of-00001"
INDEX_NAME = "model.ckpt-200.index"

# Under CI a missing fixture is a failure, not a skip.
needs_fixture = pytest.mark.skipif(
    not (CKPT_DIR / INDEX_NAME).is_file() and os.environ.get("CI") != "true", reason=f"magenta reference fixtures not found at {REF}"
)

ENC_FW = "encoder/cell_0/bidirectional_rnn/fw/multi_rnn_cell/cell_0/lstm_cell"
ENC_BW = "encoder/cell_0/bidirectional_rnn/bw/multi_rnn_cell/cell_0/lstm_cell"

# The state-dict contract with musicvae's GrooVAE model (groovae_4bar, no controls).
EXPECTED_STATE_SHAPES = {
    **{
        f"encoder.layers.0.{d}.{n}": s
        for d in ("fw", "bw")
        for n, s in [
            ("weight_ih_l0", (2048, 27)),
            ("weight_hh_l0", (2048, 512)),
            ("bias_ih_l0", (2048,)),
            ("bias_hh_l0", (2048,)),
        ]
    },
    "encoder.mu.weight": (256, 1024),
    "encoder.mu.bias": (256,),
    "encoder.sigma.weight": (256, 1024),
    "encoder.sigma.bias": (256,),
    "decoder.z_to_initial_state.weight": (1024, 256),
    "decoder.z_to_initial_state.bias": (1024,),
    "decoder.lstm.weight_ih_l0": (1024, 283),
    "decoder.lstm.weight_hh_l0": (1024, 256),
    "decoder.lstm.bias_ih_l0": (1024,),
    "decoder.lstm.bias_hh_l0": (1024,),
    "decoder.lstm.weight_ih_l1": (1024, 256),
    "decoder.lstm.weight_hh_l1": (1024, 256),
    "decoder.lstm.bias_ih_l1": (1024,),
    "decoder.lstm.bias_hh_l1": (1024,),
    "decoder.output_projection.weight": (27, 256),
    "decoder.output_projection.bias": (27,),
}


@pytest.fixture(scope="module")
def variables() -> dict[str, np.ndarray]:
    if not (CKPT_DIR / INDEX_NAME).is_file() and os.environ.get("CI") != "true":
        pytest.skip(f"magenta reference fixtures not found at {REF}")
    return read_checkpoint(PREFIX)


@pytest.fixture(scope="module")
def reference() -> dict[str, np.ndarray]:
    with np.load(REF / "model_reference.npz") as npz:
        return {k: npz[k] for k in npz.files}


@pytest.fixture()
def ckpt_copy(tmp_path: Path) -> Path:
    """A writable copy of the fixture checkpoint; returns its prefix."""
    for name in (INDEX_NAME, DATA_NAME, "checkpoint"):
        shutil.copyfile(CKPT_DIR / name, tmp_path / name)
    return tmp_path / "model.ckpt-200"


# ---------------------------------------------------------------------------------------------
# CRC-32C


def _crc32c_reference(data: bytes) -> int:
    """Bit-at-a-time CRC-32C, the definition."""
    crc = 0xFFFFFFFF
    for byte in data:
        crc ^= byte
        for _ in range(8):
            crc = (crc >> 1) ^ (0x82F63B78 if crc & 1 else 0)
    return crc ^ 0xFFFFFFFF


def test_crc32c_known_vectors():
    # RFC 3720 (iSCSI) B.4 test vectors and the classic check value.
    assert crc32c(b"123456789") == 0xE3069283
    assert crc32c(bytes(32)) == 0x8A9136AA
    assert crc32c(b"\xff" * 32) == 0x62A8AB43
    assert crc32c(bytes(range(32))) == 0x46DD794E
    assert crc32c(bytes(range(31, -1, -1))) == 0x113FDB5C
    assert crc32c(b"") == 0


def test_crc32c_matches_bitwise_definition():
    rng = np.random.default_rng(0)
    for n in [*range(1, 70), 255, 256, 257, 511, 512, 513, 4095, 4097, 20_011]:
        data = rng.integers(0, 256, n, dtype=np.uint8).tobytes()
        assert crc32c(data) == _crc32c_reference(data), n


# ---------------------------------------------------------------------------------------------
# Reading the fixture


@needs_fixture
def test_read_fixture_matches_variables_json(variables):
    listing = json.loads((CKPT_DIR / "variables.json").read_text())
    assert sorted(variables) == sorted(v["name"] for v in listing["variables"])
    for v in listing["variables"]:
        array = variables[v["name"]]
        assert list(array.shape) == v["shape"], v["name"]
        assert array.dtype == np.dtype(v["dtype"]), v["name"]
    assert variables["global_step"].dtype == np.int64
    assert int(variables["global_step"]) == 200
    model = {k: a for k, a in variables.items() if k != "global_step"}
    assert len(model) == 16
    assert all(a.dtype == np.float32 for a in model.values())
    assert sum(a.size for a in model.values()) == 4_085_019 == listing["num_model_parameters"]
    assert all(np.isfinite(a).all() for a in model.values())


@needs_fixture
def test_entry_checksums_are_stored_masked():
    # The bundle stores mask(crc32c(bytes)), like LevelDB's block trailers; not the raw CRC.
    data = (CKPT_DIR / DATA_NAME).read_bytes()
    for info in list_checkpoint(PREFIX).values():
        raw = data[info.offset : info.offset + info.size]
        assert info.crc32c == mask_crc(crc32c(raw)) != crc32c(raw), info.name


@needs_fixture
def test_load_magenta_variables_splits_global_step():
    model, step = load_magenta_variables(CKPT_DIR)
    assert step == 200
    assert len(model) == 16 and "global_step" not in model


# ---------------------------------------------------------------------------------------------
# Forward passes that prove the layout facts and the mapping


def _sigmoid(x):
    return 1.0 / (1.0 + np.exp(-x))


def _tf_lstm_final_h(x: np.ndarray, kernel: np.ndarray, bias: np.ndarray) -> np.ndarray:
    """LSTMBlockCell over x [B, T, D] from zero state; returns the final h [B, H]."""
    hidden = bias.shape[0] // 4
    h = np.zeros((x.shape[0], hidden))
    c = np.zeros((x.shape[0], hidden))
    for t in range(x.shape[1]):
        gates = np.concatenate([x[:, t], h], axis=1) @ kernel + bias
        i, c_tilde, f, o = np.split(gates, 4, axis=1)  # TF gate order
        c = _sigmoid(f + 1.0) * c + _sigmoid(i) * np.tanh(c_tilde)
        h = _sigmoid(o) * np.tanh(c)
    return h


@needs_fixture
def test_numpy_forward_on_raw_tf_variables(variables, reference):
    v = {k: a.astype(np.float64) for k, a in variables.items()}
    x = reference["encoder_inputs"].astype(np.float64)
    h_fw = _tf_lstm_final_h(x, v[f"{ENC_FW}/kernel"], v[f"{ENC_FW}/bias"])
    h_bw = _tf_lstm_final_h(x[:, ::-1], v[f"{ENC_BW}/kernel"], v[f"{ENC_BW}/bias"])
    e = np.concatenate([h_fw, h_bw], axis=1)
    mu = e @ v["encoder/mu/kernel"] + v["encoder/mu/bias"]
    sigma = np.logaddexp(0.0, e @ v["encoder/sigma/kernel"] + v["encoder/sigma/bias"])  # softplus
    assert np.abs(e - reference["encoder_output"]).max() <= 1e-4
    assert np.abs(mu - reference["mu"]).max() <= 1e-4
    assert np.abs(sigma - reference["sigma"]).max() <= 1e-4


def _linear(state, prefix: str) -> torch.nn.Linear:
    weight = state[f"{prefix}.weight"]
    module = torch.nn.Linear(weight.shape[1], weight.shape[0])
    module.load_state_dict({"weight": weight, "bias": state[f"{prefix}.bias"]})
    return module


def _lstm(state, prefix: str, num_layers: int) -> torch.nn.LSTM:
    sub = {k[len(prefix) + 1 :]: t for k, t in state.items() if k.startswith(prefix + ".")}
    w = sub["weight_ih_l0"]
    module = torch.nn.LSTM(w.shape[1], w.shape[0] // 4, num_layers=num_layers, batch_first=True)
    module.load_state_dict(sub)  # strict: names and shapes must be exactly nn.LSTM's
    return module


@needs_fixture
def test_torch_forward_with_mapped_state_dict(variables, reference):
    state = magenta_to_state_dict(variables)
    assert {k: tuple(t.shape) for k, t in state.items()} == EXPECTED_STATE_SHAPES
    assert all(t.dtype == torch.float32 and t.is_contiguous() for t in state.values())
    for d in ("fw", "bw"):
        assert not state[f"encoder.layers.0.{d}.bias_hh_l0"].any()
    assert not state["decoder.lstm.bias_hh_l1"].any()

    x = torch.from_numpy(reference["encoder_inputs"])
    targets = torch.from_numpy(reference["targets"])
    with torch.no_grad():
        _, (h_fw, _) = _lstm(state, "encoder.layers.0.fw", 1)(x)
        _, (h_bw, _) = _lstm(state, "encoder.layers.0.bw", 1)(x.flip(1))
        e = torch.cat([h_fw[-1], h_bw[-1]], dim=1)
        mu = _linear(state, "encoder.mu")(e)
        sigma = torch.nn.functional.softplus(_linear(state, "encoder.sigma")(e))

        z = mu
        initial = torch.tanh(_linear(state, "decoder.z_to_initial_state")(z))
        c0, h0, c1, h1 = initial.split(256, dim=1)
        prev = torch.cat([torch.zeros_like(targets[:, :1]), targets[:, :-1]], dim=1)
        assert torch.equal(prev, torch.from_numpy(reference["decoder_inputs"]))
        dec_in = torch.cat([prev, z[:, None].expand(-1, prev.shape[1], -1)], dim=2)
        out, _ = _lstm(state, "decoder.lstm", 2)(
            dec_in, (torch.stack([h0, h1]), torch.stack([c0, c1]))
        )
        logits = _linear(state, "decoder.output_projection")(out)

    for name, got in [
        ("encoder_output", e),
        ("mu", mu),
        ("sigma", sigma),
        ("initial_state", initial),
        ("decoder_logits", logits),
    ]:
        diff = np.abs(got.numpy() - reference[name]).max()
        assert diff <= 1e-4, f"{name}: max abs diff {diff}"


@needs_fixture
def test_import_magenta_checkpoint(variables):
    state, step = import_magenta_checkpoint(CKPT_DIR)
    assert step == 200
    reference_state = magenta_to_state_dict(variables)
    assert state.keys() == reference_state.keys()
    assert all(torch.equal(state[k], reference_state[k]) for k in state)


def test_expected_shapes_parameter_counts():
    # magenta-groovae-spec.md: 4,085,019 parameters without controls, 4,131,099 with hits controls.
    for control_depth, total in [(0, 4_085_019), (9, 4_131_099)]:
        shapes = expected_magenta_shapes(control_depth=control_depth)
        assert len(shapes) == 16
        assert sum(int(np.prod(s)) for s in shapes.values()) == total


def test_mapping_multilayer_encoder_and_controls():
    sizes = dict(
        input_depth=5, control_depth=2, z_size=3, enc_rnn_size=(4, 6), dec_rnn_size=(7, 8, 9)
    )
    shapes = expected_magenta_shapes(**sizes)
    rng = np.random.default_rng(1)
    tf_vars = {k: rng.standard_normal(s).astype(np.float32) for k, s in shapes.items()}
    tf_vars["global_step"] = np.int64(5)
    tf_vars["encoder/mu/kernel/Adam"] = np.zeros(shapes["encoder/mu/kernel"], np.float32)
    state = magenta_to_state_dict(tf_vars, **sizes)
    got = {k: tuple(t.shape) for k, t in state.items()}
    assert got["encoder.layers.0.fw.weight_ih_l0"] == (16, 7)
    assert got["encoder.layers.1.bw.weight_ih_l0"] == (24, 8)
    assert got["encoder.layers.1.bw.weight_hh_l0"] == (24, 6)
    assert got["encoder.mu.weight"] == (3, 12)
    assert got["decoder.z_to_initial_state.weight"] == (48, 3)
    assert got["decoder.lstm.weight_ih_l0"] == (28, 10)
    assert got["decoder.lstm.weight_ih_l2"] == (36, 8)
    assert got["decoder.output_projection.weight"] == (5, 9)
    # Gate reordering [i, c~, f, o] -> [i, f, c~, o] and the folded forget bias, on one layer.
    kernel = tf_vars["encoder/cell_1/bidirectional_rnn/fw/multi_rnn_cell/cell_0/lstm_cell/kernel"]
    bias = tf_vars["encoder/cell_1/bidirectional_rnn/fw/multi_rnn_cell/cell_0/lstm_cell/bias"]
    i, g, f, o = np.split(kernel, 4, axis=1)
    expect_ih = np.concatenate([i, f, g, o], axis=1)[:8].T
    np.testing.assert_array_equal(state["encoder.layers.1.fw.weight_ih_l0"].numpy(), expect_ih)
    bi, bg, bf, bo = np.split(bias, 4)
    np.testing.assert_array_equal(
        state["encoder.layers.1.fw.bias_ih_l0"].numpy(),
        np.concatenate([bi, bf + np.float32(1), bg, bo]),
    )


# ---------------------------------------------------------------------------------------------
# Mapping refusals


@needs_fixture
def test_mapping_refuses_missing_variable(variables):
    partial = dict(variables)
    del partial["encoder/mu/bias"]
    with pytest.raises(CheckpointError, match=r"missing: encoder/mu/bias") as err:
        magenta_to_state_dict(partial)
    assert "\n" not in str(err.value)


@needs_fixture
def test_mapping_refuses_extra_variable(variables):
    more = {**variables, "encoder/extra/kernel": np.zeros((2, 2), np.float32)}
    with pytest.raises(CheckpointError, match=r"unexpected: encoder/extra/kernel"):
        magenta_to_state_dict(more)


@needs_fixture
def test_mapping_refuses_wrong_shape(variables):
    wrong = {**variables, "decoder/output_projection/bias": np.zeros(26, np.float32)}
    with pytest.raises(
        CheckpointError, match=r"decoder/output_projection/bias is \[26\], expected \[27\]"
    ):
        magenta_to_state_dict(wrong)


@needs_fixture
def test_mapping_refuses_control_depth_mismatch(variables):
    with pytest.raises(CheckpointError) as err:
        magenta_to_state_dict(variables, control_depth=9)
    message = str(err.value)
    assert "wrong shape" in message and "\n" not in message
    assert f"{ENC_FW}/kernel is [539, 2048], expected [548, 2048]" in message
    assert f"{ENC_BW}/kernel is [539, 2048], expected [548, 2048]" in message
    assert (
        "decoder/multi_rnn_cell/cell_0/lstm_cell/kernel is [539, 1024], expected [548, 1024]"
        in message
    )


# ---------------------------------------------------------------------------------------------
# Locating checkpoints


@needs_fixture
def test_resolve_prefix_directory_and_index_path(tmp_path):
    assert resolve_checkpoint(PREFIX, tmp_path) == PREFIX
    assert resolve_checkpoint(str(PREFIX), tmp_path) == PREFIX
    assert resolve_checkpoint(CKPT_DIR, tmp_path) == PREFIX
    assert resolve_checkpoint(CKPT_DIR / INDEX_NAME, tmp_path) == PREFIX
    with pytest.raises(CheckpointError, match="not found"):
        resolve_checkpoint(tmp_path / "nope" / "model.ckpt-1", tmp_path)
    with pytest.raises(CheckpointError, match="no checkpoint found"):
        resolve_checkpoint(tmp_path, tmp_path)


@needs_fixture
def test_resolve_directory_with_absolute_and_relative_state(ckpt_copy):
    directory = ckpt_copy.parent
    (directory / "checkpoint").write_text(f'model_checkpoint_path: "{ckpt_copy}"\n')
    assert resolve_checkpoint(directory, directory) == ckpt_copy
    # An absolute path from another machine falls back to the file beside the state file.
    (directory / "checkpoint").write_text(
        'model_checkpoint_path: "/elsewhere/run/train/model.ckpt-200"\n'
    )
    assert resolve_checkpoint(directory, directory) == ckpt_copy
    # Text-format escapes: TF may write non-ASCII path bytes as octal escapes.
    moved = directory / "café"
    moved.mkdir()
    for name in (INDEX_NAME, DATA_NAME):
        (directory / name).rename(moved / name)
    (directory / "checkpoint").write_text('model_checkpoint_path: "caf\\303\\251/model.ckpt-200"\n')
    assert resolve_checkpoint(directory, directory) == moved / "model.ckpt-200"
    (directory / "checkpoint").write_text('model_checkpoint_path: "model.ckpt-999"\n')
    with pytest.raises(CheckpointError, match="model.ckpt-999"):
        resolve_checkpoint(directory, directory)


@needs_fixture
def test_resolve_tar(tmp_path):
    archive = tmp_path / "groovae_4bar.tar"
    with tarfile.open(archive, "w") as tar:
        # magenta's tars hold the files in a folder, without a state file.
        for name in (INDEX_NAME, DATA_NAME):
            tar.add(CKPT_DIR / name, arcname=f"groovae_4bar/{name}")
    work = tmp_path / "work"
    prefix = resolve_checkpoint(archive, work)
    assert prefix.name == "model.ckpt-200" and work in prefix.parents
    assert (prefix.parent / DATA_NAME).stat().st_size == (CKPT_DIR / DATA_NAME).stat().st_size
    state, step = import_magenta_checkpoint(archive, workdir=tmp_path / "work2")
    assert step == 200 and len(state) == len(EXPECTED_STATE_SHAPES)
    # Without a workdir the archive is extracted into a temporary folder.
    assert load_magenta_variables(archive)[1] == 200


def _tar_with(tmp_path: Path, member: tarfile.TarInfo, payload: bytes = b"x") -> Path:
    archive = tmp_path / "evil.tar"
    with tarfile.open(archive, "w") as tar:
        if member.isfile():
            member.size = len(payload)
            tar.addfile(member, io.BytesIO(payload))
        else:
            tar.addfile(member)
    return archive


@pytest.mark.parametrize(
    "name, kind, link",
    [
        ("../evil", tarfile.REGTYPE, ""),
        ("a/../../evil", tarfile.REGTYPE, ""),
        ("/tmp/evil", tarfile.REGTYPE, ""),
        ("link", tarfile.SYMTYPE, "/etc/passwd"),
        ("a/link", tarfile.SYMTYPE, "../../outside"),
        ("hard", tarfile.LNKTYPE, "../outside"),
    ],
)
def test_resolve_tar_refuses_escaping_members(tmp_path, name, kind, link):
    member = tarfile.TarInfo(name)
    member.type = kind
    member.linkname = link
    archive = _tar_with(tmp_path, member)
    work = tmp_path / "work"
    with pytest.raises(CheckpointError, match="refusing") as err:
        resolve_checkpoint(archive, work)
    assert "\n" not in str(err.value)
    assert not (tmp_path / "evil").exists() and not (tmp_path / "outside").exists()


# ---------------------------------------------------------------------------------------------
# Corruption


@needs_fixture
def test_flipped_data_byte_is_a_checksum_error(ckpt_copy):
    data_path = ckpt_copy.parent / DATA_NAME
    data = bytearray(data_path.read_bytes())
    data[10_000_000] ^= 0x01  # inside the forward encoder kernel
    data_path.write_bytes(data)
    with pytest.raises(CheckpointError, match="checksum") as err:
        read_checkpoint(ckpt_copy)
    assert f"{ENC_FW}/kernel" in str(err.value) and "\n" not in str(err.value)
    # Reading only the untouched variables still works.
    assert read_checkpoint(ckpt_copy, include=lambda n: n.startswith("decoder/")).keys()


@needs_fixture
def test_truncated_data_file(ckpt_copy):
    data_path = ckpt_copy.parent / DATA_NAME
    with open(data_path, "r+b") as f:
        f.truncate(data_path.stat().st_size - 100)
    with pytest.raises(CheckpointError, match="truncated") as err:
        read_checkpoint(ckpt_copy)
    assert "global_step" in str(err.value) or "encoder/sigma/kernel" in str(err.value)


@needs_fixture
def test_missing_files(ckpt_copy):
    (ckpt_copy.parent / DATA_NAME).unlink()
    with pytest.raises(CheckpointError, match=f"data file not found: .*{DATA_NAME}"):
        read_checkpoint(ckpt_copy)
    (ckpt_copy.parent / INDEX_NAME).unlink()
    with pytest.raises(CheckpointError, match=f"index not found: .*{INDEX_NAME}"):
        read_checkpoint(ckpt_copy)


@needs_fixture
def test_every_flipped_index_byte_is_detected(tmp_path):
    original = (CKPT_DIR / INDEX_NAME).read_bytes()
    # The footer's zero padding between the block handles and the magic is not checksummed
    # (in LevelDB either), so it is the one place a flip can go unnoticed.
    handles_end = len(original) - 48
    pos = handles_end
    for _ in range(4):  # four varints: metaindex offset/size, index offset/size
        while original[pos] & 0x80:
            pos += 1
        pos += 1
    padding = range(pos, len(original) - 8)
    index_path = tmp_path / INDEX_NAME
    for i in range(len(original)):
        if i in padding:
            continue
        corrupt = bytearray(original)
        corrupt[i] ^= 0x10
        index_path.write_bytes(corrupt)
        with pytest.raises(CheckpointError) as err:
            list_checkpoint(tmp_path / "model.ckpt-200")
        assert INDEX_NAME in str(err.value) and "\n" not in str(err.value), i


@needs_fixture
def test_bad_magic_and_short_index(tmp_path):
    original = (CKPT_DIR / INDEX_NAME).read_bytes()
    (tmp_path / INDEX_NAME).write_bytes(original[:-1] + b"\x00")
    with pytest.raises(CheckpointError, match="bad magic"):
        list_checkpoint(tmp_path / "model.ckpt-200")
    (tmp_path / INDEX_NAME).write_bytes(original[:20])
    with pytest.raises(CheckpointError, match="too short"):
        list_checkpoint(tmp_path / "model.ckpt-200")


# ---------------------------------------------------------------------------------------------
# dtypes and unsupported entries, on bundles written here from the format description


def _varint(n: int) -> bytes:
    out = bytearray()
    n &= (1 << 64) - 1
    while True:
        out.append((n & 0x7F) | (0x80 if n > 0x7F else 0))
        n >>= 7
        if not n:
            return bytes(out)


def _field(number: int, value: int | bytes) -> bytes:
    if isinstance(value, bytes):
        return _varint(number << 3 | 2) + _varint(len(value)) + value
    return _varint(number << 3) + _varint(value)


def _block(entries: list[tuple[bytes, bytes]]) -> bytes:
    """A table block with a single restart point and prefix-compressed keys, plus its trailer."""
    body, prev = bytearray(), b""
    for key, value in entries:
        shared = 0
        while shared < min(len(key), len(prev)) and key[shared] == prev[shared]:
            shared += 1
        body += _varint(shared) + _varint(len(key) - shared) + _varint(len(value))
        body += key[shared:] + value
        prev = key
    body += struct.pack("<II", 0, 1)
    return bytes(body) + b"\x00" + struct.pack("<I", mask_crc(crc32c(bytes(body) + b"\x00")))


def _write_bundle(
    prefix: Path, tensors: list[tuple[str, int, tuple[int, ...], bytes, bytes]]
) -> None:
    """tensors: (name, TF dtype enum, shape, raw bytes, extra BundleEntryProto fields)."""
    data, entries = bytearray(), [(b"", _field(1, 1) + _field(3, _field(1, 1)))]
    for name, dtype, shape, raw, extra in sorted(tensors):
        shape_proto = b"".join(_field(2, _field(1, d)) for d in shape)
        entry = (
            _field(1, dtype) + _field(2, shape_proto) + _field(4, len(data)) + _field(5, len(raw))
        )
        entry += _varint(6 << 3 | 5) + struct.pack("<I", mask_crc(crc32c(raw))) + extra
        entries.append((name.encode(), entry))
        data += raw
    data_block = _block(entries)
    meta_block = _block([])
    index_block = _block([(b"\xff", _varint(0) + _varint(len(data_block) - 5))])
    meta_at, index_at = len(data_block), len(data_block) + len(meta_block)
    handles = (
        _varint(meta_at)
        + _varint(len(meta_block) - 5)
        + _varint(index_at)
        + _varint(len(index_block) - 5)
    )
    footer = handles.ljust(40, b"\x00") + struct.pack("<Q", 0xDB4775248B80FB57)
    Path(f"{prefix}.index").write_bytes(data_block + meta_block + index_block + footer)
    Path(f"{prefix}.data-00000-of-00001").write_bytes(bytes(data))


def test_dtypes(tmp_path):
    values = {
        "f32": (1, np.arange(6, dtype="<f4").reshape(2, 3)),
        "f64": (2, np.array([1.5, -2.25], dtype="<f8")),
        "i32": (3, np.array([[-7], [8]], dtype="<i4")),
        "i64": (9, np.array(2**40, dtype="<i8")),
        "half": (19, np.array([0.5, -1.0, 65504.0], dtype="<f2")),
        "bool": (10, np.array([True, False, True])),
        "empty": (1, np.zeros((0, 4), dtype="<f4")),
    }
    bf16_as_f32 = np.array([1.0, -2.5, 3.140625], dtype=np.float32)
    bf16_raw = (bf16_as_f32.view(np.uint32) >> 16).astype("<u2").tobytes()
    tensors = [(n, dt, a.shape, a.tobytes(), b"") for n, (dt, a) in values.items()]
    tensors.append(("bf16", 14, (3,), bf16_raw, b""))
    _write_bundle(tmp_path / "t", tensors)
    got = read_checkpoint(tmp_path / "t")
    for name, (_, array) in values.items():
        assert got[name].dtype == array.dtype.newbyteorder("=") and got[name].shape == array.shape
        np.testing.assert_array_equal(got[name], array)
    assert got["bf16"].dtype == np.float32
    np.testing.assert_array_equal(got["bf16"], bf16_as_f32)
    info = list_checkpoint(tmp_path / "t")
    assert info["bf16"].dtype_name == "bfloat16" and info["i32"].shape == (2, 1)


def test_unsupported_entries_are_refused_by_name(tmp_path):
    slices = _field(7, _field(1, _field(1, 0) + _field(2, 2)))  # TensorSliceProto extent
    _write_bundle(
        tmp_path / "t",
        [
            ("ok", 1, (1,), np.ones(1, "<f4").tobytes(), b""),
            ("text", 7, (1,), b"\x03abc", b""),
            ("part", 1, (2,), b"", slices),
        ],
    )
    with pytest.raises(CheckpointError, match="'part' is a partitioned"):
        read_checkpoint(tmp_path / "t", include=lambda n: n == "part")
    with pytest.raises(CheckpointError, match="'text' has dtype string"):
        read_checkpoint(tmp_path / "t", include=lambda n: n == "text")
    assert read_checkpoint(tmp_path / "t", include=lambda n: n == "ok")["ok"].tolist() == [1.0]


def test_tf2_object_graph_is_skipped_by_default(tmp_path):
    graph = b"\x0a\x00"  # a string tensor's bytes; never decoded
    _write_bundle(
        tmp_path / "t",
        [
            ("_CHECKPOINTABLE_OBJECT_GRAPH", 7, (), graph, b""),
            ("v/.ATTRIBUTES/VARIABLE_VALUE", 1, (2,), np.ones(2, "<f4").tobytes(), b""),
        ],
    )
    assert list(read_checkpoint(tmp_path / "t")) == ["v/.ATTRIBUTES/VARIABLE_VALUE"]
    assert "_CHECKPOINTABLE_OBJECT_GRAPH" in list_checkpoint(tmp_path / "t")


def test_size_mismatch_is_refused(tmp_path):
    _write_bundle(tmp_path / "t", [("w", 1, (3,), np.ones(2, "<f4").tobytes(), b"")])
    with pytest.raises(
        CheckpointError, match="'w': stored size 8 bytes at offset 0 does not fit float32 \\[3\\]"
    ):
        read_checkpoint(tmp_path / "t")


def test_optimizer_slots_are_skipped(tmp_path):
    one = np.ones(2, "<f4").tobytes()
    _write_bundle(
        tmp_path / "t",
        [
            ("w", 1, (2,), one, b""),
            ("w/Adam", 1, (2,), one, b""),
            ("w/Adam_1", 1, (2,), one, b""),
            ("beta1_power", 1, (), one[:4], b""),
            ("beta2_power", 1, (), one[:4], b""),
            ("global_step", 9, (), np.array(7, "<i8").tobytes(), b""),
        ],
    )
    model, step = load_magenta_variables(tmp_path / "t")
    assert list(model) == ["w"] and step == 7
