"""Our dequantize_row vs gguf-py's reference dequantizers, bit for bit, for every dtype.

Formats gguf-py can quantize are made from random floats; K-quants (dequantize-only in
gguf-py) are random block bytes with finite f16 scale fields. Expected values always
come from gguf.quants.dequantize, never from our own output.
Runs `$BALLAST_BIN quant-dequant TYPE IN OUT` (or $BALLAST_QUANT_TOOL TYPE IN OUT).
"""
import os
import subprocess
from pathlib import Path

import numpy as np
import pytest

gguf = pytest.importorskip("gguf")
from gguf import GGMLQuantizationType as T  # noqa: E402
from gguf.quants import dequantize, quantize  # noqa: E402

ROOT = Path(__file__).resolve().parents[2]

QUANTIZABLE = ["F32", "F16", "BF16", "Q4_0", "Q4_1", "Q5_0", "Q5_1", "Q8_0"]
# K-quant block sizes and the byte offsets of their f16 scale fields.
KQUANTS = {
    "Q2_K": (84, [80, 82]),
    "Q3_K": (110, [108]),
    "Q4_K": (144, [0, 2]),
    "Q5_K": (176, [0, 2]),
    "Q6_K": (210, [208]),
}


def tool_cmd():
    if os.environ.get("BALLAST_QUANT_TOOL"):
        return [os.environ["BALLAST_QUANT_TOOL"]]
    b = os.environ.get("BALLAST_BIN", str(ROOT / "build" / "bin" / "ballast"))
    return [b, "quant-dequant"]


def run_ours(tmp_path, type_name, raw: bytes, n_floats: int) -> np.ndarray:
    src, dst = tmp_path / f"{type_name}.bin", tmp_path / f"{type_name}.f32"
    src.write_bytes(raw)
    if dst.exists():
        dst.unlink()
    cmd = tool_cmd()
    if not Path(cmd[0]).exists():
        pytest.skip(f"{cmd[0]} not built")
    r = subprocess.run(cmd + [type_name, str(src), str(dst)], capture_output=True, text=True)
    if r.returncode == 0 and not dst.exists():
        pytest.skip("`ballast quant-dequant` is not wired into this binary yet")
    assert r.returncode == 0, r.stderr
    out = np.fromfile(dst, dtype=np.float32)
    assert out.size == n_floats
    return out


def assert_bit_equal(ours: np.ndarray, ref: np.ndarray):
    ref = np.ascontiguousarray(ref, dtype=np.float32).reshape(-1)
    assert ours.shape == ref.shape
    both_nan = np.isnan(ours) & np.isnan(ref)
    diff = (ours.view(np.uint32) != ref.view(np.uint32)) & ~both_nan
    if diff.any():
        i = int(np.flatnonzero(diff)[0])
        pytest.fail(f"{int(diff.sum())} mismatches; first at {i}: ours={ours[i]!r} ref={ref[i]!r}")


def sample_floats(rng, n):
    x = rng.standard_normal(n).astype(np.float32)
    x[: n // 8] *= 100.0          # wide dynamic range in the first blocks
    x[n // 8 : n // 8 + 32] = 0   # an all-zero block (d == 0)
    x[-32:] = np.float32(1.5)     # a constant block (max == min)
    return x


@pytest.mark.parametrize("type_name", QUANTIZABLE)
def test_quantized_from_floats(tmp_path, type_name):
    rng = np.random.default_rng(1234)
    qt = T[type_name]
    data = sample_floats(rng, 32 * 64).reshape(4, -1)
    q = quantize(data, qt)
    ref = dequantize(q, qt)
    ours = run_ours(tmp_path, type_name, q.tobytes(), data.size)
    assert_bit_equal(ours, ref)


@pytest.mark.parametrize("type_name", sorted(KQUANTS))
def test_kquant_random_blocks(tmp_path, type_name):
    rng = np.random.default_rng(99)
    block_bytes, f16_offsets = KQUANTS[type_name]
    n_blocks = 64
    blocks = rng.integers(0, 256, size=(n_blocks, block_bytes), dtype=np.uint8)
    for off in f16_offsets:
        vals = (rng.standard_normal(n_blocks) * 0.05).astype(np.float16)
        vals[0] = 0
        blocks[:, off : off + 2] = vals.view(np.uint8).reshape(n_blocks, 2)
    qt = T[type_name]
    ref = dequantize(blocks.reshape(1, -1), qt)
    ours = run_ours(tmp_path, type_name, blocks.tobytes(), n_blocks * 256)
    assert_bit_equal(ours, ref)


def test_bf16_specials(tmp_path):
    vals = np.array([0.0, -0.0, np.inf, -np.inf, np.nan, 1e-40, 3.0e38, -1.0], dtype=np.float32)
    q = quantize(vals, T.BF16)
    ours = run_ours(tmp_path, "BF16", q.tobytes(), vals.size)
    assert_bit_equal(ours, dequantize(q, T.BF16))


def model_files():
    base = Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "ballast" / "models"
    return sorted(base.glob("*.gguf")) if base.is_dir() else []


@pytest.mark.parametrize("path", model_files() or [None], ids=lambda p: p.name if p else "no-models")
def test_real_model_tensors(tmp_path, path):
    """First rows of one tensor per quantized type of the default models (when fetched)."""
    if path is None:
        pytest.skip("no GGUF models in the ballast cache (make models)")
    reader = gguf.GGUFReader(str(path))
    seen = set()
    for t in reader.tensors:
        name = t.tensor_type.name
        if name in seen or name not in QUANTIZABLE + list(KQUANTS):
            continue
        seen.add(name)
        rows = np.asarray(t.data)
        if rows.ndim < 2:
            continue
        rows = rows.reshape(rows.shape[0], -1)[:64]
        ref = dequantize(rows, t.tensor_type)
        ours = run_ours(tmp_path, name, rows.tobytes(), ref.size)
        assert_bit_equal(ours, ref)
    assert seen
