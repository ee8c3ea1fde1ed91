"""nncodec side of ``benchmarks/bench_smallest.py``: code a set of tensors at each qp, decode them back.

Runs under the separate environment that holds nncodec (it needs numpy < 2; nncompress never
imports it), made with:

    python3 -m venv .venv-nncodec
    .venv-nncodec/bin/pip install nncodec==2.1.3 "numpy<2"

    .venv-nncodec/bin/python benchmarks/_nncodec_worker.py IN.npz OUT_DIR --qps=-40,-38,...,-8

IN.npz holds float32 arrays under the keys t0, t1, ... and ``names`` (a 1-D str array, the tensors'
names in that order). nncodec gets them as its docs show for a model without a framework: a dict
of name -> float32 ndarray, to ``nnc.compress(params, qp=..., use_dq=True, return_bitstream=True)``
and back through ``nnc.decompress(bitstream)``. Arrays of 2+ dimensions are coded at ``qp``, the
others at nncodec's ``nonweight_qp`` (-75, nearly lossless); that is nncodec's own rule.

For each qp it writes OUT_DIR/qp<qp>.npz (the decoded arrays under the same keys) and prints one
JSON list on stdout: qp, bitstream bytes, encode and decode seconds, the file, and each tensor's
max abs error. Times are of the two calls alone, in this process, after one small warm-up round
trip (no Python start-up, no imports, no file I/O).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np


def parse_qps(text: str) -> list[int]:
    return [int(q) for q in text.split(",") if q.strip()]


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("npz", type=Path)
    ap.add_argument("out", type=Path)
    ap.add_argument("--qps", type=parse_qps, required=True, help="comma-separated, e.g. -40,-30,-20")
    ap.add_argument(
        "--no-dq", action="store_true", help="plain uniform quantization (no dependent quantization)"
    )
    args = ap.parse_args(argv)

    from nncodec import nnc  # the separate environment's package, imported only here

    with np.load(args.npz, allow_pickle=False) as d:
        names = [str(n) for n in d["names"]]
        params = {n: np.ascontiguousarray(d[f"t{i}"], dtype=np.float32) for i, n in enumerate(names)}
    args.out.mkdir(parents=True, exist_ok=True)
    # one small round trip first, so that the first qp's times hold no imports or first-call set-up
    warm = {"w": np.linspace(-1, 1, 64, dtype=np.float32).reshape(8, 8)}
    nnc.decompress(bytearray(nnc.compress(warm, bitstream_path=None, qp=args.qps[0], return_bitstream=True)))
    points: list[dict[str, Any]] = []
    for qp in args.qps:
        t0 = time.perf_counter()
        # bitstream_path=None: keep it in memory, time the coder and not the disk
        bs = nnc.compress(
            params,
            bitstream_path=None,
            qp=qp,
            use_dq=not args.no_dq,
            row_skipping=True,  # nncodec.nn.encode's default (skips all-zero rows)
            return_bitstream=True,
        )
        t1 = time.perf_counter()
        dec = nnc.decompress(bytearray(bs))
        t2 = time.perf_counter()
        missing = set(names) - set(dec)
        if missing:
            raise SystemExit(f"nncodec qp {qp}: tensors missing after decoding: {sorted(missing)}")
        out: dict[str, Any] = {}  # Any: numpy's stubs read savez(**kw) as its allow_pickle flag
        errors: dict[str, float] = {}
        for i, n in enumerate(names):
            a = np.asarray(dec[n], dtype=np.float32).reshape(params[n].shape)
            out[f"t{i}"] = a
            errors[n] = float(np.abs(a - params[n]).max()) if a.size else 0.0
        path = args.out / f"qp{qp}.npz"
        np.savez(path, **out)
        points.append(
            {
                "qp": qp,
                "use_dq": not args.no_dq,
                "bitstream_bytes": len(bs),
                "encode_s": t1 - t0,
                "decode_s": t2 - t1,
                "file": str(path),
                "max_abs_error": errors,
            }
        )
        print(
            f"[nncodec] qp {qp}: {len(bs)} bytes, {t1 - t0:.2f} s + {t2 - t1:.2f} s",
            file=sys.stderr,
            flush=True,
        )
    print(json.dumps(points))
    return 0


if __name__ == "__main__":
    sys.exit(main())
