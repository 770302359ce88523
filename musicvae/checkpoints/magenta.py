"""Reading TensorFlow checkpoints without TensorFlow, and mapping magenta GrooVAE weights.

A TF checkpoint ``PREFIX`` (TF1 ``tf.train.Saver`` V2 and TF2 alike) is a "tensor bundle":

* ``PREFIX.index`` is an SSTable in LevelDB's table format. Its keys are tensor names (the empty
  key holds a ``BundleHeaderProto``) and its values are serialized ``BundleEntryProto`` messages
  that say where each tensor's bytes live.
* ``PREFIX.data-SSSSS-of-NNNNN`` are the shards: raw little-endian tensor bytes, back to back.

Everything is parsed here by hand (a few dozen lines of protobuf wire format and SSTable layout)
so that importing magenta's published checkpoints needs neither TensorFlow nor protobuf. Every
block and every tensor is checked against its stored CRC-32C, and any problem raises
:class:`CheckpointError` with a one-line message naming the file or the variable.

The second half maps magenta's GrooVAE variable names and layouts onto the state-dict names of
our PyTorch model (:func:`magenta_to_state_dict`). The layout facts it relies on are verified
against magenta's own outputs in ``shared/reference/magenta/README.md`` §3 and by
``tests/checkpoints/test_magenta.py``.
"""

from __future__ import annotations

import functools
import itertools
import math
import os
import re
import struct
import tarfile
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import numpy as np
import torch

from musicvae.errors import UserError


class CheckpointError(UserError, ValueError):
    """A checkpoint that cannot be read or does not fit the model; the message is one line."""


# ----------------------------------------------------------------------------------------------
# CRC-32C (Castagnoli), vectorized with numpy
# ----------------------------------------------------------------------------------------------
# A byte-at-a-time table CRC is ~16 M Python iterations for a 16 MB shard: far too slow. Instead
# we use that the CRC *register update* is linear over GF(2):
#
#     reg' = T[(reg ^ byte) & 0xFF] ^ (reg >> 8)
#
# so the register after a message is  Z^len(msg)(reg0)  XOR  R(msg), where R(msg) is the register
# obtained from reg0 = 0 and Z^n is the linear map "feed n zero bytes". That gives:
#   1. Cut the message into equal chunks and compute R(chunk) for all chunks at once, one byte
#      column per numpy step (the message is left-padded with zero bytes to a whole number of
#      chunks; leading zeros leave a zero register unchanged, so R is unaffected).
#   2. Fold neighbouring chunks pairwise, R(a||b) = Z^len(b)(R(a)) ^ R(b), doubling the chunk
#      length each round (log2(#chunks) vectorized rounds).
#   3. Add the standard init/xor-out: crc = Z^n(0xFFFFFFFF) ^ R(msg) ^ 0xFFFFFFFF.
# A linear map on 32-bit words is stored as four 256-entry tables (one per input byte), so
# applying it to an array of registers is four lookups.

_CRC32C_POLY = 0x82F63B78  # reflected Castagnoli polynomial
_CRC_CHUNK = 512  # bytes per chunk in step 1; measured fastest for 1-50 MB on CPU


def _byte_table() -> np.ndarray:
    t = np.arange(256, dtype=np.uint32)
    for _ in range(8):
        t = np.where(t & 1, (t >> 1) ^ np.uint32(_CRC32C_POLY), t >> 1).astype(np.uint32)
    return t


_CRC_TABLE = _byte_table()


def _apply(op: np.ndarray, regs: np.ndarray) -> np.ndarray:
    """Apply a GF(2)-linear map (four byte tables, shape [4, 256]) to uint32 registers."""
    return (
        op[0][regs & 0xFF]
        ^ op[1][(regs >> 8) & 0xFF]
        ^ op[2][(regs >> 16) & 0xFF]
        ^ op[3][regs >> 24]
    )


def _op_from_columns(columns: np.ndarray) -> np.ndarray:
    """Byte tables of the linear map whose image of bit k is ``columns[k]`` (32 uint32)."""
    values = np.arange(256, dtype=np.uint32)
    tables = np.zeros((4, 256), dtype=np.uint32)
    for k in range(32):
        byte, bit = divmod(k, 8)
        tables[byte] ^= np.where((values >> bit) & 1, columns[k], 0).astype(np.uint32)
    return tables


_BITS = np.uint32(1) << np.arange(32, dtype=np.uint32)  # the 32 basis vectors


def _columns(op: np.ndarray) -> np.ndarray:
    return _apply(op, _BITS)


# Z^1, feeding one zero byte: the register update with byte = 0, applied to each basis vector.
_ZERO_BYTE = _op_from_columns(_CRC_TABLE[_BITS & 0xFF] ^ (_BITS >> 8))


def _compose(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """The map x -> a(b(x))."""
    return _op_from_columns(_apply(a, _columns(b)))


@functools.lru_cache(maxsize=None)
def _zeros_pow2(k: int) -> np.ndarray:
    """Z^(2^k): feeding 2^k zero bytes (cached; k < 64 covers any file)."""
    if k == 0:
        return _ZERO_BYTE
    half = _zeros_pow2(k - 1)
    return _compose(half, half)


def _feed_zeros(regs: np.ndarray, n: int) -> np.ndarray:
    """Z^n applied to ``regs``, as a product of the cached Z^(2^k) for the bits of n."""
    for k in range(n.bit_length()):
        if (n >> k) & 1:
            regs = _apply(_zeros_pow2(k), regs)
    return regs


def crc32c(data: bytes | bytearray | memoryview | np.ndarray) -> int:
    """CRC-32C of ``data`` (as used by LevelDB tables and TF tensor bundles)."""
    msg = np.frombuffer(memoryview(data).cast("B"), dtype=np.uint8)
    n = msg.size
    if n == 0:
        return 0
    # Chunk length: a power of two (so the folding shifts are cached Z^(2^k)), ~sqrt(n) for
    # small inputs, at most _CRC_CHUNK.
    log_chunk = min(_CRC_CHUNK.bit_length() - 1, math.isqrt(n).bit_length() - 1)
    chunk = 1 << log_chunk
    num_chunks = -(-n // chunk)
    # Step 1: left-pad with zeros, lay byte i of chunk j at cols[i, j] (contiguous rows).
    padded = np.zeros(num_chunks * chunk, dtype=np.uint8)
    padded[padded.size - n :] = msg
    cols = np.ascontiguousarray(padded.reshape(num_chunks, chunk).T)
    regs = np.zeros(num_chunks, dtype=np.uint32)
    for byte_column in cols:
        regs = _CRC_TABLE[(regs ^ byte_column) & 0xFF] ^ (regs >> 8)
    # Step 2: pairwise folding; an odd count gets a leading all-zero chunk (register 0).
    level = log_chunk
    while regs.size > 1:
        if regs.size % 2:
            regs = np.concatenate([np.zeros(1, dtype=np.uint32), regs])
        regs = _apply(_zeros_pow2(level), regs[0::2]) ^ regs[1::2]
        level += 1
    # Step 3: init 0xFFFFFFFF pushed through all n bytes, then the final xor.
    init = _feed_zeros(np.array([0xFFFFFFFF], dtype=np.uint32), n)
    return int(init[0] ^ regs[0] ^ np.uint32(0xFFFFFFFF))


def mask_crc(crc: int) -> int:
    """LevelDB's CRC masking (rotate right 15, add a constant), also used by TF bundles."""
    return (((crc >> 15) | (crc << 17)) + 0xA282EAD8) & 0xFFFFFFFF


# ----------------------------------------------------------------------------------------------
# Protobuf wire format (only what BundleHeaderProto / BundleEntryProto need)
# ----------------------------------------------------------------------------------------------


class _Truncated(Exception):
    """Internal: a varint or field ran past the end of its buffer."""


def _varint(buf: bytes, pos: int) -> tuple[int, int]:
    result = shift = 0
    while True:
        if pos >= len(buf) or shift > 63:
            raise _Truncated
        b = buf[pos]
        pos += 1
        result |= (b & 0x7F) << shift
        if not b & 0x80:
            return result, pos
        shift += 7


def _fields(buf: bytes) -> list[tuple[int, int | bytes]]:
    """Decode one message into (field number, value) pairs; value is an int or the raw bytes.

    Varints stay unsigned; fixed32/fixed64 are returned as unsigned ints.
    """
    out: list[tuple[int, int | bytes]] = []
    pos = 0
    while pos < len(buf):
        tag, pos = _varint(buf, pos)
        field, wire = tag >> 3, tag & 7
        if wire == 0:
            value, pos = _varint(buf, pos)
        elif wire == 1:
            if pos + 8 > len(buf):
                raise _Truncated
            (value,) = struct.unpack_from("<Q", buf, pos)
            pos += 8
        elif wire == 5:
            if pos + 4 > len(buf):
                raise _Truncated
            (value,) = struct.unpack_from("<I", buf, pos)
            pos += 4
        elif wire == 2:
            length, pos = _varint(buf, pos)
            if pos + length > len(buf):
                raise _Truncated
            value = bytes(buf[pos : pos + length])
            pos += length
        else:  # groups (3/4) are not used by these messages
            raise _Truncated
        out.append((field, value))
    return out


def _int64(value: int) -> int:
    """Reinterpret an unsigned varint as the int64 it encodes (negatives use 10 bytes)."""
    return value - (1 << 64) if value >= 1 << 63 else value


# ----------------------------------------------------------------------------------------------
# Tensor bundle entries
# ----------------------------------------------------------------------------------------------

# TF DataType enum (tensorflow/core/framework/types.proto) -> numpy dtype (little-endian).
_DTYPES: dict[int, tuple[str, np.dtype]] = {
    1: ("float32", np.dtype("<f4")),
    2: ("float64", np.dtype("<f8")),
    3: ("int32", np.dtype("<i4")),
    4: ("uint8", np.dtype("u1")),
    5: ("int16", np.dtype("<i2")),
    6: ("int8", np.dtype("i1")),
    9: ("int64", np.dtype("<i8")),
    10: ("bool", np.dtype("?")),
    14: ("bfloat16", np.dtype("<u2")),  # widened to float32 after reading
    17: ("uint16", np.dtype("<u2")),
    19: ("float16", np.dtype("<f2")),
    22: ("uint32", np.dtype("<u4")),
    23: ("uint64", np.dtype("<u8")),
}
_DT_BFLOAT16 = 14
_UNSUPPORTED = {7: "string", 8: "complex64", 18: "complex128", 20: "resource", 21: "variant"}


@dataclass(frozen=True)
class TensorInfo:
    """Where one tensor lives in the bundle (decoded ``BundleEntryProto``)."""

    name: str
    dtype: int  # TF DataType enum value
    shape: tuple[int, ...]
    shard_id: int
    offset: int
    size: int
    crc32c: int  # as stored (masked)
    sliced: bool  # a partitioned variable: its data lives in separate slice entries

    @property
    def dtype_name(self) -> str:
        if self.dtype in _DTYPES:
            return _DTYPES[self.dtype][0]
        return _UNSUPPORTED.get(self.dtype, f"DataType {self.dtype}")


def _parse_shape(buf: bytes) -> tuple[int, ...]:
    # TensorShapeProto: repeated Dim dim = 2 {int64 size = 1; string name = 2};
    #                   bool unknown_rank = 3
    dims = []
    for field, value in _fields(buf):
        if field == 2:
            size = 0
            for f, v in _fields(value):
                if f == 1:
                    size = _int64(v)
            dims.append(size)
        elif field == 3 and value:
            raise _Truncated
    return tuple(dims)


def _parse_entry(name: str, buf: bytes) -> TensorInfo:
    # BundleEntryProto: dtype=1, shape=2, shard_id=3, offset=4, size=5, crc32c=6 (fixed32), slices=7
    values: dict[str, object] = {"dtype": 0, "shape": (), "shard_id": 0, "offset": 0, "size": 0}
    crc, sliced = 0, False
    for field, value in _fields(buf):
        if field == 1:
            values["dtype"] = value
        elif field == 2:
            values["shape"] = _parse_shape(value)
        elif field == 3:
            values["shard_id"] = value
        elif field == 4:
            values["offset"] = _int64(value)
        elif field == 5:
            values["size"] = _int64(value)
        elif field == 6:
            crc = value
        elif field == 7:
            sliced = True
    return TensorInfo(name=name, crc32c=crc, sliced=sliced, **values)  # type: ignore[arg-type]


# ----------------------------------------------------------------------------------------------
# SSTable (LevelDB table format)
# ----------------------------------------------------------------------------------------------

_TABLE_MAGIC = 0xDB4775248B80FB57
_FOOTER_SIZE = 48  # two BlockHandles (varints) padded to 40 bytes + 8-byte magic
_TRAILER_SIZE = 5  # compression type byte + masked crc32c of (contents + type byte)


def _read_block(index: bytes, offset: int, size: int, path: Path) -> bytes:
    end = offset + size + _TRAILER_SIZE
    if offset < 0 or size < 0 or end > len(index):
        raise CheckpointError(
            f"{path}: block at offset {offset} (size {size}) runs past the end of the file"
        )
    contents = index[offset : offset + size]
    kind = index[offset + size]
    (stored,) = struct.unpack_from("<I", index, offset + size + 1)
    if mask_crc(crc32c(index[offset : offset + size + 1])) != stored:
        raise CheckpointError(
            f"{path}: checksum mismatch in the block at offset {offset}: the index file is corrupt"
        )
    if kind != 0:
        # TF's bundle writer never compresses the index; type 1 (snappy) would need a decoder.
        raise CheckpointError(
            f"{path}: block at offset {offset} uses compression type {kind}; "
            "only uncompressed tables are supported"
        )
    return contents


def _block_entries(block: bytes, path: Path) -> list[tuple[bytes, bytes]]:
    """The (key, value) pairs of one block. Keys are prefix-compressed against the previous key;
    the trailing restart-point array only speeds up seeks, so a full scan can ignore it."""
    if len(block) < 4:
        raise CheckpointError(f"{path}: block too short")
    (num_restarts,) = struct.unpack_from("<I", block, len(block) - 4)
    limit = len(block) - 4 - 4 * num_restarts
    if limit < 0:
        raise CheckpointError(f"{path}: bad restart count {num_restarts} in a block")
    entries: list[tuple[bytes, bytes]] = []
    key, pos = b"", 0
    try:
        while pos < limit:
            shared, pos = _varint(block, pos)
            unshared, pos = _varint(block, pos)
            value_len, pos = _varint(block, pos)
            if shared > len(key) or pos + unshared + value_len > limit:
                raise _Truncated
            key = key[:shared] + block[pos : pos + unshared]
            pos += unshared
            entries.append((key, block[pos : pos + value_len]))
            pos += value_len
    except _Truncated:
        raise CheckpointError(f"{path}: malformed block entry at byte {pos}") from None
    return entries


def _read_table(path: Path) -> list[tuple[bytes, bytes]]:
    """All (key, value) pairs of an SSTable, in key order, with every block's CRC checked."""
    try:
        index = path.read_bytes()
    except FileNotFoundError:
        raise CheckpointError(f"checkpoint index not found: {path}") from None
    except OSError as exc:
        raise CheckpointError(f"cannot read checkpoint index {path}: {exc.strerror}") from None
    if len(index) < _FOOTER_SIZE:
        raise CheckpointError(
            f"{path}: file too short ({len(index)} bytes) to be a checkpoint index"
        )
    footer = index[-_FOOTER_SIZE:]
    (magic,) = struct.unpack_from("<Q", footer, 40)
    if magic != _TABLE_MAGIC:
        raise CheckpointError(
            f"{path}: bad magic number {magic:#018x}: "
            "not a TF checkpoint index (or it is truncated)"
        )
    try:
        meta_offset, pos = _varint(footer, 0)
        meta_size, pos = _varint(footer, pos)
        index_offset, pos = _varint(footer, pos)
        index_size, pos = _varint(footer, pos)
    except _Truncated:
        raise CheckpointError(f"{path}: malformed footer") from None
    # The metaindex block (filter policies) is unused by bundles, but its checksum is still checked.
    _read_block(index, meta_offset, meta_size, path)
    entries: list[tuple[bytes, bytes]] = []
    for _, handle in _block_entries(_read_block(index, index_offset, index_size, path), path):
        try:
            offset, hpos = _varint(handle, 0)
            size, _ = _varint(handle, hpos)
        except _Truncated:
            raise CheckpointError(f"{path}: malformed block handle in the index block") from None
        entries.extend(_block_entries(_read_block(index, offset, size, path), path))
    keys = [k for k, _ in entries]
    if any(a >= b for a, b in itertools.pairwise(keys)):
        raise CheckpointError(f"{path}: keys are not in sorted order: the index file is corrupt")
    return entries


# ----------------------------------------------------------------------------------------------
# Public reader
# ----------------------------------------------------------------------------------------------


def _read_header_and_entries(prefix: str | Path) -> tuple[int, dict[str, TensorInfo]]:
    path = Path(f"{prefix}.index")
    num_shards, endianness, entries = 1, 0, {}
    header_seen = False
    for key, value in _read_table(path):
        try:
            if key == b"":
                # BundleHeaderProto: num_shards=1, endianness=2 (0 little, 1 big), version=3
                header_seen = True
                for field, v in _fields(value):
                    if field == 1:
                        num_shards = v
                    elif field == 2:
                        endianness = v
                continue
            if key[:1] == b"\x00":
                # Slices of partitioned variables are stored under binary keys (a leading 0
                # byte); they are reachable only via their parent entry, which is refused.
                continue
            name = key.decode("utf-8")
            entries[name] = _parse_entry(name, value)
        except (_Truncated, UnicodeDecodeError):
            raise CheckpointError(f"{path}: malformed entry for key {key[:80]!r}") from None
    if not header_seen:
        raise CheckpointError(f"{path}: no bundle header: not a TF V2 checkpoint index")
    if endianness != 0:
        raise CheckpointError(f"{path}: big-endian checkpoints are not supported")
    if num_shards < 1:
        raise CheckpointError(f"{path}: bad shard count {num_shards}")
    return num_shards, entries


def list_checkpoint(prefix: str | Path) -> dict[str, TensorInfo]:
    """Every tensor in the checkpoint with its dtype and shape, without reading the data."""
    return _read_header_and_entries(prefix)[1]


def _not_object_graph(name: str) -> bool:
    return name != "_CHECKPOINTABLE_OBJECT_GRAPH"


def read_checkpoint(
    prefix: str | Path, include: Callable[[str], bool] | None = None
) -> dict[str, np.ndarray]:
    """Read a TF V2 checkpoint ("tensor bundle") into numpy arrays, sorted by name.

    ``prefix`` is the path without ``.index``/``.data-…`` (e.g. ``run/train/model.ckpt-200``).
    ``include`` optionally selects names to read (the others are not even loaded, e.g. optimizer
    slots that would triple the I/O). bfloat16 is returned as float32; other supported dtypes
    keep their numpy equivalent. Raises :class:`CheckpointError` for anything unreadable.
    Without ``include``, every tensor is read except TF2's serialized object graph (a string
    tensor that describes Python objects, not weights).
    """
    num_shards, entries = _read_header_and_entries(prefix)
    if include is None:
        include = _not_object_graph
    wanted = [info for name, info in sorted(entries.items()) if include(name)]
    dtypes = {info.name: _check_entry(info) for info in wanted}  # refuse bad entries before any I/O
    out: dict[str, np.ndarray] = {}
    for shard in sorted({info.shard_id for info in wanted}):
        shard_path = Path(f"{prefix}.data-{shard:05d}-of-{num_shards:05d}")
        if shard >= num_shards:
            raise CheckpointError(
                f"{shard_path}: shard {shard} is beyond the header's {num_shards} shards"
            )
        try:
            with open(shard_path, "rb") as f:
                file_size = os.fstat(f.fileno()).st_size
                # Only the wanted byte ranges are read, so skipped optimizer slots cost no I/O.
                for info in (i for i in wanted if i.shard_id == shard):
                    end = info.offset + info.size
                    if end > file_size:
                        raise CheckpointError(
                            f"variable {info.name!r}: bytes {info.offset}..{end} lie outside "
                            f"{shard_path.name} ({file_size} bytes): truncated data file?"
                        )
                    f.seek(info.offset)
                    raw = f.read(info.size)
                    out[info.name] = _decode_tensor(info, raw, dtypes[info.name], shard_path.name)
        except FileNotFoundError:
            raise CheckpointError(f"checkpoint data file not found: {shard_path}") from None
        except OSError as exc:
            raise CheckpointError(
                f"cannot read checkpoint data file {shard_path}: {exc.strerror}"
            ) from None
    return {name: out[name] for name in sorted(out)}


def _check_entry(info: TensorInfo) -> np.dtype:
    """The numpy dtype of a readable entry, or CheckpointError naming the variable."""
    where = f"variable {info.name!r}"
    if info.sliced:
        raise CheckpointError(f"{where} is a partitioned (sliced) variable, which is not supported")
    if info.dtype not in _DTYPES:
        raise CheckpointError(f"{where} has dtype {info.dtype_name}, which is not supported")
    if any(d < 0 for d in info.shape):
        raise CheckpointError(f"{where} has an undefined shape {list(info.shape)}")
    np_dtype = _DTYPES[info.dtype][1]
    expected = math.prod(info.shape) * np_dtype.itemsize
    if info.size != expected or info.offset < 0:
        raise CheckpointError(
            f"{where}: stored size {info.size} bytes at offset {info.offset} does not fit "
            f"{info.dtype_name} {list(info.shape)} ({expected} bytes)"
        )
    return np_dtype


def _decode_tensor(info: TensorInfo, raw: bytes, np_dtype: np.dtype, shard_name: str) -> np.ndarray:
    # The bundle stores the *masked* CRC-32C of the tensor bytes (checked against real files).
    if mask_crc(crc32c(raw)) != info.crc32c:
        raise CheckpointError(
            f"variable {info.name!r}: checksum mismatch in {shard_name}: the data file is corrupt"
        )
    array = np.frombuffer(raw, dtype=np_dtype).reshape(info.shape)
    if info.dtype == _DT_BFLOAT16:
        # bfloat16 is the top half of a float32.
        return (array.astype(np.uint32) << 16).view(np.float32)
    return array.astype(np_dtype.newbyteorder("="), copy=True)


# ----------------------------------------------------------------------------------------------
# Locating a checkpoint: prefix, directory with a `checkpoint` state file, or a .tar
# ----------------------------------------------------------------------------------------------

_STATE_LINE = re.compile(r'^\s*model_checkpoint_path\s*:\s*"((?:[^"\\]|\\.)*)"\s*$', re.M)


_ESCAPE = re.compile(rb"\\(?:([0-7]{1,3})|x([0-9a-fA-F]{1,2})|(.))", re.S)
_SIMPLE_ESCAPES = {b"n": b"\n", b"r": b"\r", b"t": b"\t"}


def _unescape_text_proto(value: str) -> str:
    """Undo protobuf text-format string escaping (TF writes non-ASCII path bytes as \\ooo)."""

    def replace(m: re.Match[bytes]) -> bytes:
        if m.group(1):
            return bytes([int(m.group(1), 8) & 0xFF])
        if m.group(2):
            return bytes([int(m.group(2), 16)])
        return _SIMPLE_ESCAPES.get(m.group(3), m.group(3))

    return _ESCAPE.sub(replace, value.encode("utf-8")).decode("utf-8", "surrogateescape")


def _prefix_from_state_file(directory: Path) -> Path | None:
    state = directory / "checkpoint"
    if not state.is_file():
        return None
    match = _STATE_LINE.search(state.read_text(encoding="utf-8", errors="replace"))
    if not match:
        raise CheckpointError(f"{state}: no model_checkpoint_path line")
    raw = _unescape_text_proto(match.group(1))
    named = Path(raw)
    prefix = named if named.is_absolute() else directory / named
    if not Path(f"{prefix}.index").is_file() and named.is_absolute():
        # A checkpoint folder copied from another machine keeps its old absolute path; TF's
        # own tools fail there, but the files usually sit right beside the state file.
        prefix = directory / named.name
    if not Path(f"{prefix}.index").is_file():
        raise CheckpointError(f"{state} names {raw!r}, but {prefix}.index does not exist")
    return prefix


def _find_prefix_in_dir(directory: Path, recursive: bool) -> Path:
    from_state = _prefix_from_state_file(directory)
    if from_state is not None:
        return from_state
    found = sorted(directory.rglob("*.index") if recursive else directory.glob("*.index"))
    if recursive and not found:
        return _fail_dir(directory)
    if recursive:
        # A tar may nest the checkpoint in a folder that has its own state file.
        states = sorted({p.parent for p in found if (p.parent / "checkpoint").is_file()})
        if len(states) == 1:
            return _find_prefix_in_dir(states[0], recursive=False)
    if len(found) == 1:
        return found[0].with_suffix("")
    if not found:
        return _fail_dir(directory)
    names = ", ".join(str(p.relative_to(directory)) for p in found)
    raise CheckpointError(f"{directory}: several checkpoints ({names}); pass one prefix explicitly")


def _fail_dir(directory: Path) -> Path:
    raise CheckpointError(
        f"{directory}: no checkpoint found (no 'checkpoint' state file and no *.index file)"
    )


def _safe_extract(tar_path: Path, dest: Path) -> None:
    """Extract a tar, refusing members that would land outside ``dest``."""
    root = dest.resolve()

    def inside(target: Path) -> bool:
        return target == root or root in target.parents

    try:
        with tarfile.open(tar_path) as tar:
            members = tar.getmembers()
            for m in members:
                name = Path(m.name)
                if name.is_absolute() or ".." in name.parts or not inside((root / name).resolve()):
                    raise CheckpointError(f"{tar_path}: refusing unsafe member path {m.name!r}")
                if m.issym() or m.islnk():
                    base = root if m.islnk() else (root / name).parent
                    if Path(m.linkname).is_absolute() or not inside((base / m.linkname).resolve()):
                        raise CheckpointError(
                            f"{tar_path}: refusing link {m.name!r} pointing outside the archive "
                            f"({m.linkname!r})"
                        )
                elif not (m.isfile() or m.isdir()):
                    raise CheckpointError(f"{tar_path}: refusing special member {m.name!r}")
            if hasattr(tarfile, "data_filter"):  # Python >= 3.12 and recent 3.10/3.11 patches
                tar.extractall(root, members=members, filter="data")
            else:
                tar.extractall(root, members=members)
    except (tarfile.TarError, OSError) as exc:
        raise CheckpointError(f"{tar_path}: cannot extract: {exc}".replace("\n", " ")) from None


def resolve_checkpoint(src: str | Path, workdir: Path) -> Path:
    """Turn a user-given checkpoint location into a bundle prefix.

    ``src`` may be a prefix (``…/model.ckpt-200``; a path to its ``.index`` file also works), a
    directory holding a TF ``checkpoint`` state file (or exactly one ``*.index``), or a ``.tar``
    archive as magenta publishes them (``groovae_4bar.tar``), which is extracted safely into a
    new folder under ``workdir``.
    """
    path = Path(src)
    if path.is_dir():
        return _find_prefix_in_dir(path, recursive=False)
    if path.is_file() and path.name.endswith(".index"):
        return path.with_suffix("")
    if Path(f"{path}.index").is_file():
        return path
    if path.is_file() and tarfile.is_tarfile(path):
        workdir = Path(workdir)
        workdir.mkdir(parents=True, exist_ok=True)
        dest = Path(tempfile.mkdtemp(prefix=path.name.split(".")[0] + "-", dir=workdir))
        _safe_extract(path, dest)
        return _find_prefix_in_dir(dest, recursive=True)
    if path.exists():
        raise CheckpointError(f"{path}: not a checkpoint prefix, directory or .tar archive")
    raise CheckpointError(
        f"checkpoint not found: {path} (no such file, directory or {path.name}.index)"
    )


# ----------------------------------------------------------------------------------------------
# Optimizer slots and bookkeeping
# ----------------------------------------------------------------------------------------------

_BOOKKEEPING = ("beta1_power", "beta2_power", "global_step")


def is_model_variable(name: str) -> bool:
    """False for Adam slots and training bookkeeping (magenta's trainer saves both)."""
    if name.endswith(("/Adam", "/Adam_1")):
        return False
    return name.rsplit("/", 1)[-1] not in _BOOKKEEPING


def split_model_variables(
    variables: dict[str, np.ndarray],
) -> tuple[dict[str, np.ndarray], int | None]:
    """(model variables, global_step or None) from a full checkpoint dict."""
    step = variables.get("global_step")
    model = {k: v for k, v in variables.items() if is_model_variable(k)}
    return model, (int(step) if step is not None else None)


def load_magenta_variables(
    src: str | Path, workdir: Path | None = None
) -> tuple[dict[str, np.ndarray], int | None]:
    """Resolve ``src`` (see :func:`resolve_checkpoint`) and read only the model variables.

    Returns (variables, global_step). Adam slots are never read from disk. Without ``workdir``
    a .tar is extracted into a temporary folder that is removed afterwards.
    """

    def wanted(name: str) -> bool:
        return is_model_variable(name) or name == "global_step"

    if workdir is None:
        with tempfile.TemporaryDirectory(prefix="musicvae-ckpt-") as tmp:
            variables = read_checkpoint(resolve_checkpoint(src, Path(tmp)), include=wanted)
    else:
        variables = read_checkpoint(resolve_checkpoint(src, workdir), include=wanted)
    return split_model_variables(variables)


# ----------------------------------------------------------------------------------------------
# magenta GrooVAE -> PyTorch state dict
# ----------------------------------------------------------------------------------------------

# TF's LSTMBlockCell adds this to the forget gate at run time; it is not stored in the bias.
FORGET_BIAS = 1.0
# TF gate blocks are [i, c~, f, o]; torch.nn.LSTM wants [i, f, g(=c~), o].
_TF_TO_TORCH_GATES = [0, 2, 1, 3]


def _lstm_names(prefix: str) -> tuple[str, str]:
    return f"{prefix}/lstm_cell/kernel", f"{prefix}/lstm_cell/bias"


def _layout(
    input_depth: int,
    control_depth: int,
    z_size: int,
    enc_rnn_size: tuple[int, ...],
    dec_rnn_size: tuple[int, ...],
    output_depth: int,
) -> tuple[
    list[tuple[str, str, str, int, int]],
    list[tuple[str, str, int, int]],
    dict[str, tuple[int, ...]],
]:
    """The model's layers and the TF shape of every variable.

    Returns (LSTMs as (tf prefix, torch prefix, torch layer suffix, input size, hidden size),
    dense layers as (tf prefix, torch prefix, in, out), {tf name: shape}). Encoder and decoder
    inputs include the controls, as in magenta."""
    lstms: list[tuple[str, str, str, int, int]] = []
    enc_in = input_depth + control_depth
    for k, size in enumerate(enc_rnn_size):
        for direction in ("fw", "bw"):
            lstms.append(
                (
                    f"encoder/cell_{k}/bidirectional_rnn/{direction}/multi_rnn_cell/cell_0",
                    f"encoder.layers.{k}.{direction}",
                    "l0",
                    enc_in,
                    size,
                )
            )
        enc_in = 2 * size
    dec_in = input_depth + z_size + control_depth
    for j, size in enumerate(dec_rnn_size):
        lstms.append((f"decoder/multi_rnn_cell/cell_{j}", "decoder.lstm", f"l{j}", dec_in, size))
        dec_in = size
    dense = [
        ("encoder/mu", "encoder.mu", 2 * enc_rnn_size[-1], z_size),
        ("encoder/sigma", "encoder.sigma", 2 * enc_rnn_size[-1], z_size),
        ("decoder/z_to_initial_state", "decoder.z_to_initial_state", z_size, 2 * sum(dec_rnn_size)),
        ("decoder/output_projection", "decoder.output_projection", dec_rnn_size[-1], output_depth),
    ]
    shapes: dict[str, tuple[int, ...]] = {}
    for tf_prefix, _, _, n_in, hidden in lstms:
        kernel, bias = _lstm_names(tf_prefix)
        shapes[kernel] = (n_in + hidden, 4 * hidden)
        shapes[bias] = (4 * hidden,)
    for tf_prefix, _, n_in, n_out in dense:
        shapes[f"{tf_prefix}/kernel"] = (n_in, n_out)
        shapes[f"{tf_prefix}/bias"] = (n_out,)
    return lstms, dense, shapes


def expected_magenta_shapes(
    *,
    input_depth: int = 27,
    control_depth: int = 0,
    z_size: int = 256,
    enc_rnn_size: tuple[int, ...] = (512,),
    dec_rnn_size: tuple[int, ...] = (256, 256),
    output_depth: int | None = None,
) -> dict[str, tuple[int, ...]]:
    """The magenta variable names and TF shapes a GrooVAE of these sizes has."""
    out = input_depth if output_depth is None else output_depth
    return _layout(
        input_depth, control_depth, z_size, tuple(enc_rnn_size), tuple(dec_rnn_size), out
    )[2]


def _tensor(array: np.ndarray) -> torch.Tensor:
    return torch.from_numpy(np.array(array, dtype=np.float32, order="C", copy=True))


def describe_mismatches(expected: dict[str, tuple[int, ...]], actual: dict) -> str:
    """One line naming every tensor of ``actual`` (numpy arrays or torch tensors) that is missing
    from, extra to, misshapen against or not floating point in ``expected`` (name → shape);
    empty when everything fits."""

    def is_float(value) -> bool:
        if hasattr(value, "is_floating_point"):
            return bool(value.is_floating_point())
        return bool(np.issubdtype(np.asarray(value).dtype, np.floating))

    common = sorted(set(expected) & set(actual))
    groups = (
        ("wrong shape", "; ", [
            f"{k} is {list(np.shape(actual[k]))}, expected {list(expected[k])}"
            for k in common
            if tuple(np.shape(actual[k])) != tuple(expected[k])
        ]),
        ("missing", ", ", sorted(set(expected) - set(actual))),
        ("unexpected", ", ", sorted(set(actual) - set(expected))),
        ("not floating point", "; ", [f"{k} has dtype {actual[k].dtype}" for k in common if not is_float(actual[k])]),
    )  # fmt: skip
    return " | ".join(f"{label}: {sep.join(items)}" for label, sep, items in groups if items)


def magenta_to_state_dict(
    variables: dict[str, np.ndarray],
    *,
    input_depth: int = 27,
    control_depth: int = 0,
    z_size: int = 256,
    enc_rnn_size: tuple[int, ...] = (512,),
    dec_rnn_size: tuple[int, ...] = (256, 256),
    output_depth: int | None = None,
) -> dict[str, torch.Tensor]:
    """Convert magenta GrooVAE variables (as read by :func:`read_checkpoint`) to our state dict.

    The variable set must match the requested sizes exactly (optimizer slots and bookkeeping
    such as ``global_step`` are ignored); otherwise :class:`CheckpointError` lists every missing,
    unexpected and wrongly shaped variable, so nothing is ever loaded partially.

    LSTM kernels [in + hidden, 4·hidden] become ``weight_ih``/``weight_hh`` (transposed, gate
    blocks reordered [i, c~, f, o] -> [i, f, c~, o]); the bias gets TF's run-time forget bias
    folded into ``bias_ih`` and ``bias_hh`` is zero. The column order of ``weight_ih`` is
    magenta's input order, unchanged. Dense kernels [in, out] become ``Linear.weight`` [out, in].
    """
    out_depth = input_depth if output_depth is None else output_depth
    lstms, dense, shapes = _layout(
        input_depth, control_depth, z_size, tuple(enc_rnn_size), tuple(dec_rnn_size), out_depth
    )
    model_vars = {k: v for k, v in variables.items() if is_model_variable(k)}
    problems = describe_mismatches(shapes, model_vars)
    if problems:
        sizes = (
            f"input_depth={input_depth}, control_depth={control_depth}, z_size={z_size}, "
            f"enc_rnn_size={tuple(enc_rnn_size)}, dec_rnn_size={tuple(dec_rnn_size)}, "
            f"output_depth={out_depth}"
        )
        raise CheckpointError(
            f"checkpoint does not match a GrooVAE with {sizes}: {problems}"
        )

    state: dict[str, torch.Tensor] = {}
    for tf_prefix, torch_prefix, layer, n_in, hidden in lstms:
        kernel_name, bias_name = _lstm_names(tf_prefix)
        kernel = np.asarray(model_vars[kernel_name], dtype=np.float32)
        bias = np.asarray(model_vars[bias_name], dtype=np.float32)
        kernel = kernel.reshape(n_in + hidden, 4, hidden)[:, _TF_TO_TORCH_GATES].reshape(
            n_in + hidden, 4 * hidden
        )
        bias = bias.reshape(4, hidden)[_TF_TO_TORCH_GATES].copy()
        bias[1] += np.float32(FORGET_BIAS)  # block 1 is now f; float32 add, as TF does at run time
        state[f"{torch_prefix}.weight_ih_{layer}"] = _tensor(kernel[:n_in].T)
        state[f"{torch_prefix}.weight_hh_{layer}"] = _tensor(kernel[n_in:].T)
        state[f"{torch_prefix}.bias_ih_{layer}"] = _tensor(bias.reshape(-1))
        state[f"{torch_prefix}.bias_hh_{layer}"] = torch.zeros(4 * hidden, dtype=torch.float32)
    for tf_prefix, torch_prefix, _, _ in dense:
        state[f"{torch_prefix}.weight"] = _tensor(np.asarray(model_vars[f"{tf_prefix}/kernel"]).T)
        state[f"{torch_prefix}.bias"] = _tensor(model_vars[f"{tf_prefix}/bias"])
    return state


def import_magenta_checkpoint(
    src: str | Path, *, workdir: Path | None = None, **sizes
) -> tuple[dict[str, torch.Tensor], int | None]:
    """Read a magenta GrooVAE checkpoint (prefix, directory or .tar) into our state dict.

    ``sizes`` are the keyword arguments of :func:`magenta_to_state_dict`. Returns
    (state dict, global_step or None).
    """
    variables, step = load_magenta_variables(src, workdir)
    return magenta_to_state_dict(variables, **sizes), step
