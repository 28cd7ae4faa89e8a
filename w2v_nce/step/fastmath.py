"""e^x and log x in float32 for the CPU kernels (update.py), without a call to libm: around a call the compiler spills
the vector registers."""

from __future__ import annotations

import math

import numpy as np

from .native import float32_bits, int32_bits


def exp32(x):
    """e^x in float32 without a call (the CPU kernels'): within 1.2e-7 (2 ulp) of e^x for x in [-87, 88], NaN for
    NaN; below -87.3 it gives 1.2e-38 and above 88 e^88, where the kernels only add e^x to 1 (σ) or to a sum of at
    least 1 (a softmax). Why: libm's expf is a call, around which the compiler spills the vector registers. Cephes's expf: e^x = 2^n e^r, n = round(x / ln 2), r = x - n ln 2 (ln 2 in two parts), e^r by its
    polynomial, 2^n made from its bits. The comparisons keep NaN (NaN < lo is false), as the divergence probe
    needs. (libm's log once an example was 2.5% of sg-neg's time: log32.)"""
    lo, hi = np.float32(-87.33654), np.float32(88.0)
    x = lo if x < lo else x
    x = hi if x > hi else x
    n = np.floor(x * np.float32(1.4426950408889634) + np.float32(0.5))  # float32 (math.floor gives an int)
    r = x - n * np.float32(0.693359375) + n * np.float32(2.12194440e-4)
    p = np.float32(1.9875691500e-4)
    p = p * r + np.float32(1.3981999507e-3)
    p = p * r + np.float32(8.3334519073e-3)
    p = p * r + np.float32(4.1665795894e-2)
    p = p * r + np.float32(1.6666665459e-1)
    p = p * r + np.float32(5.0000001201e-1)
    return (p * r * r + r + np.float32(1.0)) * float32_bits((np.int32(n) + np.int32(127)) << np.int32(23))


def log32(x):
    """log x in float32 without a call (the CPU kernels' loss, once an example): within 1 ulp of log x (0.82 at most)
    for x a positive normal float32; libm's log elsewhere (NaN, 0 and below, the subnormals, inf: a branch the
    kernels never take but for the divergence probe's NaN). Why: libm's log is a call, around which the compiler
    spills the vector registers: 2.5% of sg-neg's time (docs/benchmarks-log.md section 21). Cephes's logf: x = m 2^e
    with m in [sqrt(1/2), sqrt(2)), log x = e ln 2 + log m, log(1 + f) by its polynomial, ln 2 in two parts."""
    if not (x >= np.float32(1.1754944e-38) and x <= np.float32(3.4028235e38)):  # NaN, <= 0, subnormal, inf
        return np.float32(math.log(x))
    bits = int32_bits(x)
    e = ((bits >> np.int32(23)) & np.int32(0xFF)) - np.int32(126)  # x = m 2^e, m in [1/2, 1)
    m = float32_bits((bits & np.int32(0x007FFFFF)) | np.int32(0x3F000000))
    if m < np.float32(0.707106781186547524):
        e -= np.int32(1)
        f = m + m - np.float32(1.0)
    else:
        f = m - np.float32(1.0)
    z = f * f
    y = np.float32(7.0376836292e-2)
    y = y * f - np.float32(1.1514610310e-1)
    y = y * f + np.float32(1.1676998740e-1)
    y = y * f - np.float32(1.2420140846e-1)
    y = y * f + np.float32(1.4249322787e-1)
    y = y * f - np.float32(1.6668057665e-1)
    y = y * f + np.float32(2.0000714765e-1)
    y = y * f - np.float32(2.4999993993e-1)
    y = y * f + np.float32(3.3333331174e-1)
    n = np.float32(e)
    y = y * f * z - n * np.float32(2.12194440e-4) - np.float32(0.5) * z
    return f + y + n * np.float32(0.693359375)
