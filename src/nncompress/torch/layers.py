"""Drop-in ``nn.Linear`` / ``nn.Conv2d`` layers whose weight is a `CompressedWeight`.

`CompressedLinear` and `CompressedConv2d` take any format; the named subclasses accept only their
family, so a model says what it holds: `SharedLinear` / `SharedConv2d` (codebook + indices: im, ham,
sham, cser, cabac), `PSMLinear` / `PSMConv2d`, `SSSLinear`, `DCTLinear` / `DCTConv2d` (DCT, DST or
DFT coefficients), `LowRankLinear` / `LowRankConv2d`. Build one from a stored format
(`from_format`), or from a trained ``nn.Linear`` / ``nn.Conv2d`` with a method word and its options
(`from_linear`, `from_conv2d`: a structured pass fits the format, a storage format encodes the
weight exactly, e.g. ``SharedLinear.from_linear(layer, "im")`` on an already quantized layer).

>>> layer = LowRankLinear.from_linear(nn.Linear(64, 32), budget=0.25)
>>> layer(torch.randn(8, 64)).shape
torch.Size([8, 32])
"""

from __future__ import annotations

from typing import Any, ClassVar

import numpy as np
import torch  # noqa: TID253 (this package is the torch one; nothing outside it imports it eagerly)
import torch.nn.functional as F  # noqa: TID253
from torch import Tensor, nn  # noqa: TID253

from nncompress.errors import UsageError
from nncompress.formats import FORMATS
from nncompress.formats.base import Format
from nncompress.formats.shaped import Shaped, as_matrix2d
from nncompress.torch._base import CompressedWeight, from_format, to_numpy32

SHARED = ("im", "ham", "sham", "cser", "cabac")
Pair = int | tuple[int, int]


def fit_format(w: np.ndarray, method: str, **options: Any) -> Format:
    """The format of a weight's matrix by ``method``: a structured pass's fit (lowrank, sss, dct, psm;
    ``budget=`` and the pass's other options) or a storage format's exact encoding (its options)."""
    from nncompress.passes import PASSES, Structured

    m = np.ascontiguousarray(as_matrix2d(w), dtype=np.float32)
    p = PASSES.get(method)
    if p is not None and issubclass(p, Structured):
        return p.fit(m, p.Options(**options))
    cls = FORMATS.get(method)
    if cls is None:
        raise UsageError(
            f"unknown method {method!r}: a structured pass or a storage format ({', '.join(FORMATS)})"
        )
    return cls.encode(m, **options)


class _Compressed(nn.Module):
    """What the linear and conv layers share: the weight module, its family check, the bias."""

    kinds: ClassVar[tuple[str, ...] | None] = None  # the format names a subclass takes (None: any)
    default_method: ClassVar[str | None] = None

    def __init__(self, weight: CompressedWeight, bias: Tensor | None) -> None:
        super().__init__()
        if self.kinds is not None and weight.name not in self.kinds:
            raise UsageError(
                f"{type(self).__name__} holds {' / '.join(self.kinds)} weights, got {weight.name}"
            )
        self.compressed = weight
        self.bias = None if bias is None else nn.Parameter(bias.detach().clone())

    @property
    def weight(self) -> Tensor:
        """The dense weight (differentiable), for code that reads ``layer.weight``."""
        return self.compressed.dense()

    def to_format(self) -> Format | Shaped:
        return self.compressed.to_format()

    @classmethod
    def _method(cls, method: str | None) -> str:
        m = method or cls.default_method
        if m is None:
            raise UsageError(f"{cls.__name__} needs a method (a structured pass or a storage format)")
        return m


def _bias(bias: np.ndarray | Tensor | None) -> Tensor | None:
    if bias is None:
        return None
    return bias if isinstance(bias, Tensor) else torch.tensor(np.asarray(bias, dtype=np.float32))


class CompressedLinear(_Compressed):
    """``y = x @ W.T + b`` with W compressed: the product runs on the compressed representation."""

    def __init__(self, weight: CompressedWeight, bias: Tensor | None = None) -> None:
        if len(weight.shape) != 2:
            raise UsageError(f"a linear layer's weight is (out, in), got shape {weight.shape}")
        super().__init__(weight, bias)
        self.out_features, self.in_features = weight.shape

    def forward(self, x: Tensor) -> Tensor:
        y = self.compressed.matmul(x)
        return y if self.bias is None else y + self.bias.to(y.dtype)

    @classmethod
    def from_format(cls, fmt: Format | Shaped, bias: np.ndarray | Tensor | None = None) -> CompressedLinear:
        return cls(from_format(fmt), _bias(bias))

    @classmethod
    def from_linear(cls, layer: nn.Linear, method: str | None = None, **options: Any) -> CompressedLinear:
        """The layer's weight compressed by ``method`` (see `fit_format`), its bias kept."""
        fmt = fit_format(to_numpy32(layer.weight), cls._method(method), **options)
        return cls.from_format(fmt, layer.bias)

    def extra_repr(self) -> str:
        return (
            f"in_features={self.in_features}, out_features={self.out_features}, bias={self.bias is not None}"
        )


def _pair(v: Pair) -> tuple[int, int]:
    return (int(v), int(v)) if isinstance(v, int) else (int(v[0]), int(v[1]))


class CompressedConv2d(_Compressed):
    """``nn.Conv2d`` (zero padding) with a compressed (out, in/groups, kh, kw) kernel.

    With one group the convolution is the kernel's matrix times the unfolded input patches
    (``F.unfold``), so the product runs on the compressed representation; grouped convolutions
    decode the kernel and call ``F.conv2d``.
    """

    def __init__(
        self,
        weight: CompressedWeight,
        bias: Tensor | None = None,
        stride: Pair = 1,
        padding: Pair = 0,
        dilation: Pair = 1,
        groups: int = 1,
    ) -> None:
        if len(weight.shape) != 4:
            raise UsageError(f"a conv2d kernel is (out, in/groups, kh, kw), got shape {weight.shape}")
        super().__init__(weight, bias)
        self.out_channels, per_group, kh, kw = weight.shape
        self.in_channels = per_group * groups
        self.kernel_size = (kh, kw)
        self.stride, self.padding, self.dilation = _pair(stride), _pair(padding), _pair(dilation)
        self.groups = int(groups)
        if self.out_channels % self.groups:
            raise UsageError(f"{self.out_channels} output channels do not split into {groups} groups")

    def forward(self, x: Tensor) -> Tensor:
        if self.groups != 1:
            b = None if self.bias is None else self.bias.to(x.dtype)
            w = self.compressed.dense().to(x.dtype)
            return F.conv2d(x, w, b, self.stride, self.padding, self.dilation, self.groups)
        n, _, h, w_in = x.shape
        (kh, kw), (sh, sw), (ph, pw), (dh, dw) = self.kernel_size, self.stride, self.padding, self.dilation
        h_out = (h + 2 * ph - dh * (kh - 1) - 1) // sh + 1
        w_out = (w_in + 2 * pw - dw * (kw - 1) - 1) // sw + 1
        # Patches (N, C*kh*kw, L), channel-major like the kernel's matrix (out, in*kh*kw).
        cols = F.unfold(x, self.kernel_size, self.dilation, self.padding, self.stride)
        y = self.compressed.matmul(cols.transpose(1, 2))  # (N, L, out)
        if self.bias is not None:
            y = y + self.bias.to(y.dtype)
        return y.transpose(1, 2).reshape(n, self.out_channels, h_out, w_out)

    @classmethod
    def from_format(
        cls,
        fmt: Format | Shaped,
        bias: np.ndarray | Tensor | None = None,
        stride: Pair = 1,
        padding: Pair = 0,
        dilation: Pair = 1,
        groups: int = 1,
    ) -> CompressedConv2d:
        """``fmt`` must be a Shaped slot of the 4-D kernel (a bare format only knows its matrix)."""
        return cls(from_format(fmt), _bias(bias), stride, padding, dilation, groups)

    @classmethod
    def from_conv2d(cls, conv: nn.Conv2d, method: str | None = None, **options: Any) -> CompressedConv2d:
        """The conv's kernel compressed by ``method`` (see `fit_format`), its bias and geometry kept."""
        if conv.padding_mode != "zeros" or isinstance(conv.padding, str):
            raise UsageError("CompressedConv2d takes convolutions with numeric zero padding")
        w = to_numpy32(conv.weight)
        fmt = Shaped(fit_format(w, cls._method(method), **options), w.shape)
        stride, padding, dilation = (
            _pair((int(v[0]), int(v[1]))) for v in (conv.stride, conv.padding, conv.dilation)
        )
        return cls.from_format(fmt, conv.bias, stride, padding, dilation, conv.groups)

    def extra_repr(self) -> str:
        return (
            f"{self.in_channels}, {self.out_channels}, kernel_size={self.kernel_size}, stride={self.stride}, "
            f"padding={self.padding}, dilation={self.dilation}, groups={self.groups}, bias={self.bias is not None}"
        )


class SharedLinear(CompressedLinear):
    """Shared weights (codebook + indices; the codebook trains, indices and zero mask stay)."""

    kinds = SHARED


class SharedConv2d(CompressedConv2d):
    """A conv with shared weights (codebook + indices; the codebook trains, indices and zero mask stay)."""

    kinds = SHARED


class PSMLinear(CompressedLinear):
    """A product of sparse factors with fixed supports (PSM-nets, Giffon et al. 2021)."""

    kinds, default_method = ("psm",), "psm"


class PSMConv2d(CompressedConv2d):
    """A conv whose kernel matrix is a product of sparse factors with fixed supports."""

    kinds, default_method = ("psm",), "psm"


class SSSLinear(CompressedLinear):
    """A sequentially semiseparable weight: stage matrices, the product by the state recursion."""

    kinds, default_method = ("sss",), "sss"


class DCTLinear(CompressedLinear):
    """Learnable kept coefficients of a 2-D DCT, DST or DFT (``kernel=`` of the dct pass)."""

    kinds, default_method = ("dct",), "dct"


class DCTConv2d(CompressedConv2d):
    """A conv whose kernel matrix is kept DCT, DST or DFT coefficients (learnable)."""

    kinds, default_method = ("dct",), "dct"


class LowRankLinear(CompressedLinear):
    """W = A @ B, both factors trainable."""

    kinds, default_method = ("lowrank",), "lowrank"


class LowRankConv2d(CompressedConv2d):
    """A conv whose kernel matrix is A @ B (a (rank, in*kh*kw) conv then a 1x1 one, in effect)."""

    kinds, default_method = ("lowrank",), "lowrank"
