"""cabac: the C coder bit-exact with the Python reference, strict decoding, both modes, validation, the CLI."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from nncompress.errors import InputError, UsageError
from nncompress.formats import FORMATS, _cabac_ref
from nncompress.formats import cabac as cabac_mod
from nncompress.formats.cabac import Cabac
from nncompress.native import available

from .conftest import MODELS, quantized, run_cli

native = pytest.mark.skipif(not available(), reason="the native extension is not built")
TOP = 2**30 - 1  # the largest magnitude a level may have


def c_encode(levels: np.ndarray) -> bytes:
    from nncompress.native import cabac

    return cabac.encode(np.asarray(levels, np.int32)).tobytes()


def c_status(stream: bytes, n: int) -> tuple[int, np.ndarray]:
    """The C decoder's raw status and levels (no wrapper in between)."""
    from nncompress.native._call import ffi, lib

    buf = np.frombuffer(stream, np.uint8).copy()
    out = np.zeros(n, np.int32)
    src = ffi.from_buffer(buf) if buf.size else ffi.NULL
    dst = ffi.from_buffer(out) if n else ffi.NULL
    return lib.nnc_cabac_decode(ffi.cast("uint8_t *", src), buf.size, ffi.cast("int32_t *", dst), n), out


def ref_decode(stream: bytes, n: int) -> np.ndarray | None:
    try:
        return _cabac_ref.decode(stream, n)
    except InputError:
        return None


def level_arrays() -> dict[str, np.ndarray]:
    rng = np.random.default_rng(5)
    lap = [np.rint(rng.laplace(0, b, 700)).astype(np.int32) for b in (0.05, 0.4, 1.5, 6.0, 60.0)]
    geo = (rng.geometric(0.35, 700) - 1) * rng.choice([-1, 1], 700)
    sparse = np.where(rng.random(700) < 0.9, 0, rng.integers(-3, 4, 700))
    runs = np.repeat(rng.integers(-9, 10, 40), rng.integers(1, 40, 40))  # contexts change slowly
    return {
        **{f"laplace{i}": a for i, a in enumerate(lap)},
        "geometric": geo.astype(np.int32),
        "sparse": sparse.astype(np.int32),
        "runs": runs.astype(np.int32),
        "empty": np.zeros(0, np.int32),
        "one": np.array([3], np.int32),
        "one_zero": np.array([0], np.int32),
        "zeros": np.zeros(500, np.int32),
        "huge": rng.integers(-TOP, TOP + 1, 60).astype(np.int32),
        "extremes": np.array([TOP, -TOP, TOP, 0, -TOP, 4, 5, -5, 6, 2**29, -(2**29) - 1, 1], np.int32),
        "eg_boundaries": np.array(
            [v for u in range(30) for v in (4 + 2**u - 1, 4 + 2**u) if v <= TOP], np.int32
        ),
    }


LEVELS = level_arrays()


# ---- the coder ---------------------------------------------------------------------------------


@pytest.mark.parametrize("case", sorted(LEVELS))
def test_reference_round_trips(case: str) -> None:
    lv = LEVELS[case]
    s = _cabac_ref.encode(lv)
    assert s[0] == 0 and len(s) >= 5
    np.testing.assert_array_equal(_cabac_ref.decode(s, lv.size), lv)


@native
@pytest.mark.parametrize("case", sorted(LEVELS))
def test_c_is_bit_exact_with_the_reference(case: str) -> None:
    lv = LEVELS[case]
    s = c_encode(lv)
    assert s == _cabac_ref.encode(lv)
    st_, got = c_status(s, lv.size)
    assert st_ == 0
    np.testing.assert_array_equal(got, lv)


@native
@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    st.lists(
        st.one_of(
            st.integers(-3, 3), st.integers(-TOP, TOP), st.sampled_from([0, 0, 0, 1, -1, 5, -5, TOP, -TOP])
        ),
        max_size=120,
    )
)
def test_any_levels_round_trip_bit_exact(levels: list[int]) -> None:
    lv = np.array(levels, np.int32)
    s = c_encode(lv)
    assert s == _cabac_ref.encode(lv)
    np.testing.assert_array_equal(_cabac_ref.decode(s, lv.size), lv)
    np.testing.assert_array_equal(c_status(s, lv.size)[1], lv)


def test_stream_length_is_five_bytes_plus_renormalizations() -> None:
    assert _cabac_ref.encode(np.zeros(0, np.int32)) == bytes(5)
    # 4096 zeros: each sig bin quickly costs ~1/1000 bit, a handful of bytes in all
    assert len(_cabac_ref.encode(np.zeros(4096, np.int32))) < 16


def test_predictable_levels_cost_under_a_bit_each() -> None:
    lv = np.where(np.random.default_rng(0).random(20000) < 0.97, 0, 1).astype(np.int32)
    bits = 8 * len(_cabac_ref.encode(lv)) / lv.size
    p = 0.03
    entropy = -(p * np.log2(p) + (1 - p) * np.log2(1 - p))
    assert bits < 0.3 and bits < 1.15 * entropy  # ham's floor is 1 bit


def test_the_probability_clamp_never_binds() -> None:
    # The C coder drops the spec's clamp of the mean to [PROB_MIN, PROB_MAX] (native/cabac.c): every
    # state either estimate can reach from 1/2 keeps the mean inside it, and the two renormalization
    # shifts the decoder unrolls suffice. Enumerated, not sampled: each estimate has < 2**15 states.
    def reachable(shift: int) -> tuple[int, int]:
        one = _cabac_ref.PROB_ONE
        seen, todo = {one // 2}, [one // 2]
        while todo:
            p = todo.pop()
            for q in (p + ((one - p) >> shift), p - (p >> shift)):
                if q not in seen:
                    seen.add(q)
                    todo.append(q)
        return min(seen), max(seen)

    (f_lo, f_hi), (s_lo, s_hi) = reachable(4), reachable(7)
    lo, hi = (f_lo + s_lo) >> 1, (f_hi + s_hi) >> 1
    assert _cabac_ref.PROB_MIN <= lo and hi <= _cabac_ref.PROB_MAX, (lo, hi)
    # from range >= 2**24, both sides of a split keep >= 2**15: two shifts of 8 bits reach 2**24 again
    r = 1 << 24
    assert (r >> 15) * lo >= 1 << 15 and r - (r >> 15) * hi >= 1 << 15


@native
def test_encode_rejects_levels_out_of_range_and_grows_its_buffer() -> None:
    for bad in (2**30, -(2**30), -(2**31), 2**31 - 1):
        with pytest.raises(UsageError, match="2\\*\\*30"):
            c_encode(np.array([0, bad], np.int32))
        with pytest.raises(ValueError):
            _cabac_ref.encode(np.array([bad]))
    # uniform huge levels take ~4 bytes each, past the first guess of n + 64: the retry path
    lv = np.random.default_rng(1).integers(-TOP, TOP + 1, 3000).astype(np.int32)
    s = c_encode(lv)
    assert len(s) > lv.size + 64
    assert s == _cabac_ref.encode(lv)


@native
def test_decoder_reads_exactly_its_bytes() -> None:
    lv = LEVELS["laplace2"][:200]
    s = c_encode(lv)
    for cut in range(len(s)):  # every truncation: an error, never a crash or a silent short decode
        assert c_status(s[:cut], lv.size)[0] == -3, cut
        assert ref_decode(s[:cut], lv.size) is None
    for extra in (b"\0", b"\x55", bytes(4)):  # bytes after the last level
        assert c_status(s + extra, lv.size)[0] == -3
        assert ref_decode(s + extra, lv.size) is None
    assert c_status(b"\1" + s[1:], lv.size)[0] == -3  # the first byte is always 0
    assert c_status(s, lv.size + 1)[0] == -3 and ref_decode(s, lv.size + 1) is None
    assert c_status(bytes(5), 0)[0] == 0 and c_status(b"", 0)[0] == -3


@native
@pytest.mark.parametrize("case", ["laplace1", "extremes", "sparse"])
def test_every_bit_flip_decodes_the_same_in_c_and_python(case: str) -> None:
    lv = LEVELS[case][:60]
    s = bytearray(c_encode(lv))
    for bit in range(8 * len(s)):
        t = bytearray(s)
        t[bit // 8] ^= 1 << (bit % 8)
        status, got = c_status(bytes(t), lv.size)
        want = ref_decode(bytes(t), lv.size)
        assert (status == 0) == (want is not None), bit
        if want is not None:
            np.testing.assert_array_equal(got, want)
            assert np.all(np.abs(got.astype(np.int64)) <= TOP)


@native
def test_prefix_and_magnitude_limits() -> None:
    # 30 ones of Exp-Golomb prefix or a magnitude of 2**30: streams the encoder cannot write, made by
    # the reference coder's own bins, are refused by both decoders
    for prefix, suffix in ((30, 0), (29, 2**29 - 4)):
        e = _cabac_ref.Encoder()
        e.bin(_cabac_ref.sig_ctx(0, 0), 1)
        e.bin(_cabac_ref.sign_ctx(0), 0)
        for k in range(1, 5):
            e.bin(_cabac_ref.gt_ctx(k, 0), 1)
        for i in range(prefix):
            e.bin(_cabac_ref.eg_ctx(i), 1)
        e.bin(_cabac_ref.eg_ctx(prefix), 0)
        for j in range(prefix - 1, -1, -1):
            e.bypass((suffix >> j) & 1)
        s = e.finish()
        assert c_status(s, 1)[0] == -3
        with pytest.raises(InputError, match=r"prefix|2\*\*30"):
            _cabac_ref.decode(s, 1)


# ---- the format --------------------------------------------------------------------------------


def roundtrip(w: np.ndarray) -> Cabac:
    f = Cabac.encode(w)
    assert f.to_dense().dtype == np.float32
    np.testing.assert_array_equal(f.to_dense(), w)
    again = Cabac.from_arrays(f.arrays(), json.loads(json.dumps(f.meta())))
    np.testing.assert_array_equal(again.to_dense(), w)
    assert f.nbytes == sum(a.nbytes for a in f.arrays().values())
    return f


def test_uniform_quantizer_output_is_a_grid() -> None:
    rng = np.random.default_rng(2)
    w = rng.standard_normal((70, 90)).astype(np.float32)
    step = np.float32(np.sqrt(np.mean(w**2)) / 8)
    q = (np.rint(w / step).astype(np.float32) * step).astype(np.float32)
    f = roundtrip(q)
    assert f.meta() == {"shape": [70, 90], "mode": "grid"}
    assert f.arrays()["step"].dtype == np.float32 and f.arrays()["step"].shape == (1,)
    assert f.nbytes < FORMATS["ham"].encode(q).nbytes


@pytest.mark.parametrize("j", [1, 2, 3, 4])
def test_grid_steps_below_the_smallest_value(j: int) -> None:
    # the smallest magnitude is j steps, and levels prime to j are present: only min |v| / j fits
    step = np.float32(0.375)
    lv = np.array([[j, j + 1, -(j + 1), 0, j + 2, -(j + 2), 2 * j + 1]], np.float32)
    w = lv * step
    f = roundtrip(w)
    assert f.mode == "grid"


def test_codebook_mode_for_kmeans_values_and_sparse_grids() -> None:
    assert roundtrip(quantized((40, 50), 16, 0.3, 1)).mode == "grid"  # conftest's values are a linspace
    rng = np.random.default_rng(1)
    centroids = np.append(rng.standard_normal(16), 0).astype(np.float32)  # as kmeans leaves them
    f = roundtrip(centroids[rng.integers(0, 17, (40, 50))])
    assert f.mode == "codebook" and f.meta()["k"] == 17
    cb = f.arrays()["codebook"]
    assert cb[f.meta()["zero"]] == 0
    sparse_grid = np.array([[0, 1, 1000, -1000, 1, 0]], np.float32) * np.float32(0.5)
    f = roundtrip(sparse_grid)  # levels 0, +-1, +-2000 on the grid: 0, +-1, +-2 as indices
    assert f.mode == "codebook" and f.meta()["zero"] == 1
    no_zero = np.array([[-3.0, 5.0, 7.0, 7.0]], np.float32) * np.float32(np.e)
    f = roundtrip(no_zero)
    assert f.mode == "codebook" and f.arrays()["codebook"][f.meta()["zero"]] == np.float32(-3.0 * np.e)


@pytest.mark.parametrize(
    "w",
    [
        np.zeros((0, 0), np.float32),
        np.zeros((0, 7), np.float32),
        np.zeros((5, 0), np.float32),
        np.zeros((9, 11), np.float32),
        np.array([[0.0]], np.float32),
        np.array([[-2.5]], np.float32),
        np.array([[np.finfo(np.float32).max, -np.finfo(np.float32).max, 0]], np.float32),
        np.array([[np.finfo(np.float32).tiny, 0, -np.finfo(np.float32).tiny]], np.float32),
        np.array([[1e-45, 3e-45, 0, -1e-45]], np.float32),  # subnormal steps
        np.array([[TOP * 0.25, -TOP * 0.25, 0.25, 0]], np.float32),  # levels near 2**30 (float32-rounded)
        np.array([[-0.0, 0.0, 1.0, -0.0]], np.float32),
        np.arange(300, dtype=np.float32).reshape(3, 100) ** 2,
    ],
    ids=[
        "0x0",
        "0x7",
        "5x0",
        "zeros",
        "zero",
        "one",
        "max",
        "tiny",
        "subnormal",
        "huge-levels",
        "neg-zero",
        "squares",
    ],
)
def test_extreme_matrices_round_trip(w: np.ndarray) -> None:
    roundtrip(w)


def test_more_than_2_16_values_want_quantizing_first() -> None:
    with pytest.raises(UsageError, match="quantize first"):
        Cabac.encode(np.arange(2**16 + 1, dtype=np.float32).reshape(1, -1) * np.float32(0.37) + 1)
    with pytest.raises(UsageError, match="quantize first"):  # on a grid, but too many levels
        Cabac.encode(np.arange(2**16 + 1, dtype=np.float32).reshape(1, -1))
    f = roundtrip(np.arange(2**16, dtype=np.float32).reshape(16, -1) - 2**15)
    assert f.mode == "grid"


def test_dot_is_x_times_w_transposed() -> None:
    w = quantized((20, 33), 9, 0.5, 4)
    f = Cabac.encode(w)
    x = np.random.default_rng(3).standard_normal((4, 33)).astype(np.float32)
    want = (x.astype(np.float64) @ w.astype(np.float64).T).astype(np.float32)
    np.testing.assert_allclose(f.dot(x), want, rtol=1e-6)
    np.testing.assert_allclose(f.dot(x[0]), want[0], rtol=1e-6)


@native
def test_native_product_and_python_fallback(monkeypatch: pytest.MonkeyPatch) -> None:
    from nncompress.native.cabac import cabac_bind

    w = quantized((30, 40), 5, 0.4, 6)
    f = Cabac.encode(w)
    x = np.random.default_rng(1).standard_normal((3, 40)).astype(np.float32)
    np.testing.assert_allclose(cabac_bind(f)(x), f.dot(x), rtol=1e-5, atol=1e-6)
    monkeypatch.setattr(cabac_mod, "_native", lambda: None)  # as without the extension
    g = Cabac.encode(w)
    np.testing.assert_array_equal(g.arrays()["stream"], f.arrays()["stream"])
    np.testing.assert_array_equal(Cabac.from_arrays(f.arrays(), f.meta()).to_dense(), w)
    bad = {**f.arrays(), "stream": f.arrays()["stream"][:-1]}
    with pytest.raises(InputError, match="cabac tensor"):
        Cabac.from_arrays(bad, f.meta())


# ---- validation ----------------------------------------------------------------------------------

GRID = Cabac.encode(np.array([[0, 1, -2, 3]], np.float32) * np.float32(0.5))
BOOK = Cabac.encode(np.array([[0, 0.3, -0.7, 0.3]], np.float32))


def bad(fmt: Cabac, arrays: dict[str, Any] | None = None, **meta: Any) -> str:
    a = {**fmt.arrays(), **(arrays or {})}
    m = {k: v for k, v in {**fmt.meta(), **meta}.items() if v is not ...}
    with pytest.raises(InputError) as e:
        Cabac.from_arrays(a, m)
    msg = str(e.value)
    assert "unexpected" not in msg and "\n" not in msg and msg.startswith("cabac tensor:")
    return msg


def test_validation_errors() -> None:
    assert GRID.mode == "grid" and BOOK.mode == "codebook"
    assert "mode" in bad(GRID, mode="rle")
    assert "mode" in bad(GRID, mode=None)
    assert "meta keys" in bad(GRID, k=3)
    assert "arrays" in bad(GRID, {"codebook": np.zeros(1, np.float32)})
    assert "stream" in bad(GRID, {"stream": GRID.stream.astype(np.int8)})
    assert "stream" in bad(GRID, {"stream": GRID.stream.reshape(1, -1)})
    for step in (0.0, -0.5, np.nan, np.inf):
        assert "step" in bad(GRID, {"step": np.array([step], np.float32)})
    assert "step" in bad(GRID, {"step": np.array([0.5], np.float64)})
    assert "step" in bad(GRID, {"step": np.array([0.5, 1], np.float32)})
    assert "overflows" in bad(GRID, {"step": np.array([2e38], np.float32)})
    assert "levels" in bad(GRID, shape=[1, 5])  # the stream holds 4 levels
    assert "shape" in bad(GRID, shape=[1, -4])
    assert "zero" in bad(BOOK, zero=3)
    assert "zero" in bad(BOOK, zero=-1)
    assert "k" in bad(BOOK, k=0)
    assert "codebook" in bad(BOOK, {"codebook": BOOK.codebook[::-1].copy()})  # type: ignore[index]
    assert "codebook" in bad(BOOK, {"codebook": np.array([0, np.nan, 1], np.float32)})
    # levels -1..1 decoded with the zero moved: outside the codebook
    assert "outside the codebook" in bad(BOOK, zero=0)
    assert "outside the codebook" in bad(BOOK, zero=2)


def test_every_truncation_and_byte_flip_is_an_input_error_or_a_valid_decode() -> None:
    w = quantized((9, 13), 6, 0.5, 8)
    for f in (Cabac.encode(w), Cabac.encode(w * np.float32(np.pi))):
        s = f.arrays()["stream"]
        for cut in range(s.size):
            bad(f, {"stream": s[:cut]})
        for i in range(s.size):
            for flip in (0x01, 0x80, 0xFF):
                t = s.copy()
                t[i] ^= flip
                try:
                    g = Cabac.from_arrays({**f.arrays(), "stream": t}, f.meta())
                except InputError as e:
                    assert "unexpected" not in str(e)
                    continue
                d = g.to_dense()
                assert d.shape == w.shape and np.all(np.isfinite(d))


# ---- end to end ----------------------------------------------------------------------------------


def test_compress_and_decompress_through_the_cli(tmp_path: Path) -> None:
    art, out = tmp_path / "x.nnc", tmp_path / "x.onnx"
    res = run_cli(
        "compress", str(MODELS / "lenet300.onnx"), "--pipeline", "quantize:method=kmeans:k=16,cabac",
        "-o", str(art), "--json",
    )  # fmt: skip
    assert res.returncode == 0, res.stderr
    report = json.loads(res.stdout)
    assert {row["format"] for row in report["layers"]} == {"cabac"}
    assert report["totals"]["ratio"] > 8
    res = run_cli("decompress", str(art), "-o", str(out))
    assert res.returncode == 0, res.stderr
    assert out.stat().st_size > 0
