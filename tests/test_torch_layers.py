"""nncompress.torch: every format as a trainable module (round trips, forward against the format's numpy
`dot`, gradients by gradcheck), the conv layers against F.conv2d, shared-weight training, SparseLinear."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Callable

import numpy as np
import pytest

torch = pytest.importorskip("torch")
import torch.nn.functional as F  # noqa: E402
from torch import nn  # noqa: E402
from torch.func import functional_call  # noqa: E402

from nncompress.formats import FORMATS, Format  # noqa: E402
from nncompress.formats._lowparam import pack_csr  # noqa: E402
from nncompress.formats.dct import DCT, coefficient_grid  # noqa: E402
from nncompress.formats.lowrank import LowRank  # noqa: E402
from nncompress.formats.psm import PSM, factor_shapes  # noqa: E402
from nncompress.formats.shaped import Shaped  # noqa: E402
from nncompress.formats.sss import SSS, block_sizes  # noqa: E402
from nncompress.torch import (  # noqa: E402
    CompressedConv2d,
    CompressedLinear,
    SharedLinear,
    SparseLinear,
    convert,
    convert_model,
    from_format,
)

# torch's one-time note that CSR tensors are "beta" (the package filters it; pytest resets filters)
pytestmark = pytest.mark.filterwarnings("ignore:Sparse CSR tensor support is in beta state")

OUT, IN = 6, 10


def _quantized(rng: np.random.Generator, shape: tuple[int, int], levels: int, density: float) -> np.ndarray:
    """A pruned matrix on a few levels (multiples of 1/64: exact in float32 whatever they are summed with)."""
    q = rng.integers(-levels, levels + 1, size=shape).astype(np.float32) / 64
    return q * (rng.random(shape) < density)


def _stored_cases() -> dict[str, Callable[[], Format]]:
    """Every registered format at a small size: storage formats encoded, structured ones with random
    factors of the shapes their passes fit. Each case is the same on every call (its own seed)."""
    rng = np.random.default_rng(7)
    dense = rng.normal(size=(OUT, IN)).astype(np.float32)
    pruned = dense * (rng.random((OUT, IN)) < 0.4)
    q = _quantized(rng, (OUT, IN), 3, 0.6)
    implicit = np.where(rng.random((OUT, IN)) < 0.6, np.float32(0.5), q)  # cser with omega[0] = 0.5
    centroids = np.array([-0.71, -0.2, 0.0, 0.33, 1.4], np.float32)  # off any grid: cabac's codebook mode
    on_centroids = centroids[rng.integers(0, 5, size=(OUT, IN))]
    factors = [rng.normal(size=s).astype(np.float32) for s in ((OUT, 2), (2, IN))]

    def dct(kernel: str, n_in: int = IN) -> Format:
        rng = np.random.default_rng(n_in + len(kernel) + ord(kernel[1]))
        grid = coefficient_grid((OUT, n_in), kernel)
        mask = rng.random(grid) < 0.4
        _, _, col_idx, row_ptr = pack_csr(mask)
        n = int(mask.sum())
        vals = rng.normal(size=(n, 2) if kernel == "dft" else n).astype(np.float32)
        return DCT((OUT, n_in), kernel, vals, col_idx, row_ptr)

    def psm(q_factors: int) -> Format:
        rng = np.random.default_rng(100 + q_factors)
        factors = []
        for sh in factor_shapes((OUT, IN), q_factors):
            mask = rng.random(sh) < 0.5
            _, _, col_idx, row_ptr = pack_csr(mask)
            factors.append((rng.normal(size=int(mask.sum())).astype(np.float32), col_idx, row_ptr))
        return PSM((OUT, IN), min(OUT, IN), factors)

    def sss(blocks: int, state: int) -> Format:
        rng = np.random.default_rng(200 + blocks)
        rs, cs = block_sizes(OUT, blocks), block_sizes(IN, blocks)
        shapes = {
            "al": (max(blocks - 2, 0), state, state),
            "au": (max(blocks - 2, 0), state, state),
            "cl": (OUT - int(rs[0]), state),
            "cu": (OUT - int(rs[-1]), state),
            "bl": (state, IN - int(cs[-1])),
            "bu": (state, IN - int(cs[0])),
            "d": (int(np.sum(rs * cs)),),
        }
        return SSS(
            (OUT, IN), blocks, state, {k: rng.normal(size=s).astype(np.float32) for k, s in shapes.items()}
        )

    return {
        "dense": lambda: FORMATS["dense"].encode(dense),
        "csr": lambda: FORMATS["csr"].encode(pruned),
        "csc": lambda: FORMATS["csc"].encode(pruned),
        "coo": lambda: FORMATS["coo"].encode(pruned),
        "im": lambda: FORMATS["im"].encode(q),
        "im-nozero": lambda: FORMATS["im"].encode(np.where(q == 0, np.float32(0.25), q)),
        "cser": lambda: FORMATS["cser"].encode(q),
        "cser-implicit": lambda: FORMATS["cser"].encode(implicit),
        "ham": lambda: FORMATS["ham"].encode(q),
        "sham-huffman": lambda: FORMATS["sham"].encode(q, gap_coder="huffman"),
        "sham-expgolomb": lambda: FORMATS["sham"].encode(q, gap_coder="expgolomb"),
        "cabac-grid": lambda: FORMATS["cabac"].encode(q),
        "cabac-codebook": lambda: FORMATS["cabac"].encode(on_centroids),
        "lowrank": lambda: LowRank((OUT, IN), *factors),
        "sss-1": lambda: sss(1, 0),
        "sss-2": lambda: sss(2, 2),
        "sss-3": lambda: sss(3, 2),
        "dct": lambda: dct("dct"),
        "dst": lambda: dct("dst"),
        "dft-even": lambda: dct("dft"),
        "dft-odd": lambda: dct("dft", IN - 1),
        "psm-1": lambda: psm(1),
        "psm-3": lambda: psm(3),
    }


CASES = _stored_cases()


@pytest.fixture(params=sorted(CASES))
def fmt(request: pytest.FixtureRequest) -> Format:
    return CASES[request.param]()


def test_every_registered_format_has_a_case() -> None:
    assert {type(f()).name for f in CASES.values()} == set(FORMATS)


def test_cabac_cases_cover_both_modes() -> None:
    assert CASES["cabac-grid"]().meta()["mode"] == "grid"
    assert CASES["cabac-codebook"]().meta()["mode"] == "codebook"


def _same_arrays(a: Format, b: Format) -> None:
    assert type(a) is type(b) and a.meta() == b.meta()
    aa, ba = a.arrays(), b.arrays()
    assert aa.keys() == ba.keys()
    for k in aa:
        assert aa[k].dtype == ba[k].dtype and aa[k].shape == ba[k].shape, k
        assert aa[k].tobytes() == ba[k].tobytes(), k


def test_round_trip_is_bit_identical(fmt: Format) -> None:
    back = from_format(fmt).to_format()
    assert isinstance(back, Format)
    _same_arrays(fmt, back)
    _same_arrays(fmt, type(fmt).from_arrays(back.arrays(), back.meta()))  # and it validates


def test_round_trip_keeps_a_shaped_slot() -> None:
    f = CASES["im"]()
    slot = Shaped(f, (OUT, 2, 5), dtype=np.dtype(np.float32))
    w = from_format(slot)
    assert w.shape == (OUT, 2, 5) and tuple(w.dense().shape) == (OUT, 2, 5)
    back = w.to_format()
    assert isinstance(back, Shaped) and back.shape == (OUT, 2, 5)
    _same_arrays(f, back.fmt)


def _float64_dot(fmt: Format, x: np.ndarray, monkeypatch: pytest.MonkeyPatch) -> np.ndarray:
    """The format's own numpy `dot`, before its float32 cast (the references accumulate in float64)."""
    module = sys.modules[type(fmt).__module__]
    monkeypatch.setattr(module, "as_output", lambda y, single: y[0] if single else y)
    y = fmt.dot(x)
    monkeypatch.undo()
    assert y.dtype == np.float64
    return y


def _rel(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.linalg.norm(a - b) / max(np.linalg.norm(b), 1e-30))


def test_forward_matches_the_numpy_dot(fmt: Format, monkeypatch: pytest.MonkeyPatch) -> None:
    x = np.random.default_rng(1).normal(size=(5, fmt.shape[1]))
    w = from_format(fmt)
    with torch.no_grad():
        y32 = w.matmul(torch.tensor(x, dtype=torch.float32)).numpy()
        y64 = w.double().matmul(torch.tensor(x)).numpy()
        dense64 = w.dense().numpy()
    assert _rel(y32, fmt.dot(x.astype(np.float32))) < 1e-5
    assert _rel(y64, _float64_dot(fmt, x, monkeypatch)) < 1e-10
    assert _rel(dense64.astype(np.float32), fmt.to_dense()) < 1e-6
    # leading axes are the batch
    with torch.no_grad():
        y3 = w.matmul(torch.tensor(x).reshape(5, 1, -1)).numpy()
    assert np.array_equal(y3.reshape(5, -1), y64)


def test_gradients_pass_gradcheck(fmt: Format) -> None:
    w = from_format(fmt).double()
    named = {n: p.detach().clone().requires_grad_(True) for n, p in w.named_parameters()}
    trained = [n for n, p in named.items() if p.numel()]  # sss with few blocks has empty stages
    x = torch.randn(3, fmt.shape[1], dtype=torch.float64, requires_grad=True)

    def f(x: torch.Tensor, *ps: torch.Tensor) -> torch.Tensor:
        return functional_call(w, {**named, **dict(zip(trained, ps, strict=True))}, (x,))

    params = [named[n] for n in trained]
    assert torch.autograd.gradcheck(f, (x, *params), fast_mode=True)
    # dense() is differentiable in the same parameters and gives the product's gradient
    gy = torch.randn(3, fmt.shape[0], dtype=torch.float64)
    (f(x, *params) * gy).sum().backward()
    wd = from_format(fmt).double()
    (x.detach() @ wd.dense().reshape(fmt.shape).T * gy).sum().backward()
    for n, q in wd.named_parameters():
        if n in trained:
            assert named[n].grad is not None and q.grad is not None, n
            assert torch.allclose(named[n].grad, q.grad, atol=1e-9), n


def test_shared_weight_gradient_is_the_sum_of_its_members() -> None:
    f = CASES["im"]()
    w = from_format(f).double()
    x, gy = torch.randn(4, IN, dtype=torch.float64), torch.randn(4, OUT, dtype=torch.float64)
    (w.matmul(x) * gy).sum().backward()
    g_cells = (gy.T @ x).numpy()  # dL/dW
    members = np.searchsorted(f.codebook, f.to_dense())
    want = np.bincount(members.ravel(), weights=g_cells.ravel(), minlength=f.codebook.size)
    want[f.codebook == 0] = 0  # the pruned cells' value stays 0
    assert np.allclose(w.table.grad.numpy(), want, atol=1e-12)


def _train_step(w: nn.Module, lr: float, fmt: Format) -> None:
    x = torch.randn(8, fmt.shape[1])
    loss = (w(x) ** 2).sum()
    loss.backward()
    with torch.no_grad():
        for p in w.parameters():
            if p.grad is not None:  # an empty sss stage gets none
                p -= lr * p.grad


@pytest.mark.parametrize("name", sorted(CASES))
def test_trained_to_format_validates_and_holds_the_trained_matrix(name: str) -> None:
    fmt = CASES[name]()
    torch.manual_seed(0)
    w = from_format(fmt)
    _train_step(w, 1e-3, fmt)
    back = w.to_format()
    assert isinstance(back, Format) and type(back) is type(fmt)
    back = type(back).from_arrays(back.arrays(), back.meta())
    with torch.no_grad():
        want = w.dense().numpy().reshape(fmt.shape)
    assert np.allclose(back.to_dense(), want, atol=1e-6)
    if name.startswith(("csr", "coo", "csc", "psm", "dct", "dst", "dft")):  # the fixed supports stay
        for k, a in fmt.arrays().items():
            if a.dtype.kind == "u":
                assert np.array_equal(a, back.arrays()[k]), k


def test_codebook_keeps_its_stream_or_is_encoded_again() -> None:
    f = CASES["ham"]()
    w = from_format(f)
    with torch.no_grad():
        w.table.mul_(1.5)  # order kept: the same stream, the new codebook
    back = w.to_format()
    assert np.array_equal(back.arrays()["stream"], f.arrays()["stream"])
    assert np.array_equal(back.arrays()["codebook"], (f.codebook * np.float32(1.5)).astype(np.float32))
    with torch.no_grad():
        w.table.fill_(0.125)  # every nonzero entry merged into one value: encoded again
    back = w.to_format()
    assert np.array_equal(back.to_dense(), np.where(f.to_dense() != 0, np.float32(0.125), np.float32(0)))
    assert back.meta()["k"] == 2


def test_pruned_cells_stay_zero_while_training() -> None:
    f = CASES["cser"]()
    w = from_format(f)
    zero = f.to_dense() == 0
    for _ in range(3):
        _train_step(w, 1e-2, f)
    with torch.no_grad():
        assert np.all(w.dense().numpy()[zero] == 0)
    assert not np.allclose(w.to_format().to_dense(), f.to_dense())


# ---- layers ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "name",
    ["dense", "csr", "im", "cser-implicit", "cabac-grid", "lowrank", "sss-3", "dct", "dft-even", "psm-3"],
)
@pytest.mark.parametrize("geometry", [dict(stride=1, padding=0), dict(stride=2, padding=1, dilation=2)])
def test_conv2d_matches_f_conv2d(name: str, geometry: dict[str, int]) -> None:
    f = CASES[name]()
    if f.shape[1] != IN:
        pytest.skip("a kernel of 10 = 2 * 5 * 1 columns")
    kernel = (OUT, 2, 5, 1)
    bias = np.linspace(-1, 1, OUT).astype(np.float32)
    conv = CompressedConv2d.from_format(Shaped(f, kernel), bias, **geometry).double()
    x = torch.randn(2, 2, 9, 7, dtype=torch.float64)
    w = torch.tensor(f.to_dense().reshape(kernel), dtype=torch.float64)
    want = F.conv2d(x, w, torch.tensor(bias, dtype=torch.float64), **geometry)
    got = conv(x)
    assert got.shape == want.shape
    assert torch.allclose(
        got, want, rtol=1e-6, atol=1e-6
    )  # the kernel's values are float32, decoded by each format


def test_grouped_conv2d_and_gradcheck() -> None:
    f = CASES["psm-3"]()
    conv = CompressedConv2d.from_format(Shaped(f, (OUT, 5, 2, 1)), groups=2, padding=1).double()
    x = torch.randn(1, 10, 4, 3, dtype=torch.float64, requires_grad=True)
    w = torch.tensor(f.to_dense().reshape(OUT, 5, 2, 1), dtype=torch.float64)
    assert torch.allclose(conv(x), F.conv2d(x, w, groups=2, padding=1), atol=1e-6)
    one = CompressedConv2d.from_format(Shaped(CASES["im"](), (OUT, 2, 5, 1))).double()
    assert torch.autograd.gradcheck(
        one, (torch.randn(1, 2, 6, 2, dtype=torch.float64, requires_grad=True),), fast_mode=True
    )


def test_linear_layers_from_nn_modules() -> None:
    torch.manual_seed(0)
    lin = nn.Linear(24, 20)
    from nncompress.torch import DCTLinear, LowRankLinear, PSMLinear, SSSLinear

    x = torch.randn(3, 24)
    for cls, opts in (
        (LowRankLinear, {"rank": 20}),
        (DCTLinear, {"budget": 1.0}),
        (SSSLinear, {"budget": 1.0}),
    ):
        layer = cls.from_linear(lin, **opts)
        assert torch.allclose(layer(x), lin(x), atol=1e-4), cls.__name__  # a full budget is (nearly) exact
        assert layer.to_format().name == cls.default_method
    small = PSMLinear.from_linear(lin, budget=0.3)
    assert small(x).shape == (3, 20)
    with pytest.raises(Exception, match="holds im"):
        SharedLinear.from_format(CASES["dense"]())
    q = nn.Linear(IN, OUT)
    with torch.no_grad():
        q.weight.copy_(torch.tensor(CASES["im"]().to_dense()))
    shared = SharedLinear.from_linear(q, "im")
    assert torch.allclose(shared(torch.ones(2, IN)), q(torch.ones(2, IN)), atol=1e-6)
    conv = nn.Conv2d(3, 16, 3, padding=1)
    from nncompress.torch import LowRankConv2d

    lc = LowRankConv2d.from_conv2d(conv, rank=16)
    xi = torch.randn(1, 3, 6, 6)
    assert torch.allclose(lc(xi), conv(xi), atol=1e-4)


def test_compressed_linear_bias_and_state_dict() -> None:
    layer = CompressedLinear.from_format(CASES["sham-huffman"](), np.arange(OUT, dtype=np.float32))
    keys = set(layer.state_dict())
    assert {"bias", "compressed.table", "compressed.member", "compressed.pattern.rows"} <= keys
    with torch.no_grad():
        y = layer(torch.zeros(1, IN))
    assert np.array_equal(y.numpy()[0], np.arange(OUT, dtype=np.float32))
    # a trained state_dict loads into a fresh layer of the same stored format
    _train_step(layer, 1e-2, CASES["sham-huffman"]())
    fresh = CompressedLinear.from_format(CASES["sham-huffman"](), np.zeros(OUT, dtype=np.float32))
    fresh.load_state_dict(layer.state_dict())
    x = torch.randn(3, IN)
    with torch.no_grad():
        assert torch.equal(fresh(x), layer(x))


# ---- SparseLinear (ActuallySparse's API) ---------------------------------------------------------


def test_sparse_linear_converts_and_trains_on_its_pattern() -> None:
    torch.manual_seed(0)
    lin = nn.Linear(12, 5)
    x = torch.randn(4, 12)
    coo = convert(lin, "coo")
    csr = convert(lin, "csr")
    assert isinstance(coo, SparseLinear) and coo.mode == "coo" and coo.nnz == 60
    with torch.no_grad():
        assert torch.allclose(coo(x), lin(x), atol=1e-6) and torch.allclose(csr(x), lin(x), atol=1e-6)
    assert csr.weight.layout == torch.sparse_csr and coo.weight.layout == torch.sparse_coo
    coo.prune_smallest_values(0.5)
    assert coo.nnz == 30
    pattern = coo.dense_weight().detach() != 0
    for _ in range(3):  # plain SGD (torch.optim's first import alone takes seconds)
        coo.zero_grad()
        (coo(x) ** 2).sum().backward()
        with torch.no_grad():
            coo.values -= 0.1 * coo.values.grad
    assert torch.equal(coo.dense_weight().detach() != 0, pattern)  # pruned cells stay pruned
    back = convert(coo, "dense")
    assert isinstance(back, nn.Linear)
    with torch.no_grad():
        assert torch.allclose(back(x), coo(x), atol=1e-6)
    fmt = coo.to_format("csr")
    assert fmt.meta()["nnz"] == 30
    again = SparseLinear.from_format(fmt, coo.bias.detach().numpy(), mode="csr")
    with torch.no_grad():
        assert torch.allclose(again(x), coo(x), atol=1e-6)
    csr.train()
    (csr(x) ** 2).sum().backward()  # a csr layer asked for gradients still gets them
    assert csr.values.grad is not None and csr.values.grad.shape == (60,)


def test_convert_model_replaces_every_linear() -> None:
    model = nn.Sequential(nn.Linear(4, 8), nn.ReLU(), nn.Sequential(nn.Linear(8, 3)))
    x = torch.randn(2, 4)
    sparse = convert_model(model, nn.Linear, "csr")
    assert [type(m).__name__ for m in sparse.modules()].count("SparseLinear") == 2
    assert not any(isinstance(m, SparseLinear) for m in model.modules())  # the model itself unchanged
    with torch.no_grad():
        assert torch.allclose(sparse(x), model(x), atol=1e-6)
    with pytest.raises(Exception, match="dense, coo or csr"):
        convert(model[0], "bsr")  # type: ignore[arg-type]


def test_importing_nncompress_does_not_import_torch() -> None:
    code = "import sys, nncompress, nncompress.formats; assert 'torch' not in sys.modules"
    assert subprocess.run([sys.executable, "-c", code], timeout=120).returncode == 0
