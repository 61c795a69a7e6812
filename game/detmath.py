"""Deterministic sin, cos, tan, atan, atan2, exp, log and pow: the same bits in CPython and Pyodide.

`math.sin` and friends call the platform's C library, and the two runtimes coplay runs
game code in use different ones: server bots, load testers and replays run CPython on
glibc, browsers run Pyodide on musl. Measured on 20,000 random inputs, `math.sin`
differs in the last bit for ~3 % of arguments, `cos` ~3 %, `atan2` ~5 %, `exp` and `pow`
rarely. One differing bit in a game's state is a desync: rollback sessions fail their
checksum comparison and a replay diverges from the recorded match.

**When to use them.** Whenever a value that ends up in game state (positions,
velocities, angles, scores, anything `get_state()` returns or anything derived from it)
goes through a transcendental function, and the game may be played by a browser
together with a server bot, or replayed/checked in CPython. Use `detmath.sin(a)` instead
of `math.sin(a)`. `math.sqrt`, `math.hypot`, `math.fabs`, `math.floor`, `+ - * /` are
already exact or correctly rounded everywhere and need no replacement. Pure rendering
code (values that never feed back into the state) may keep using `math`.

**How.** Only IEEE-754 basic operations (+, -, *, / on doubles, which every
conforming platform rounds identically), exact operations (`frexp`, `ldexp` of a
power of two, `copysign`) and Python int arithmetic (bit-exact everywhere) are used,
in a fixed evaluation order:

- sin/cos/tan: exact argument reduction modulo pi/2 for *every* finite argument, done
  with Python ints against 1250 bits of 2/pi (Payne-Hanek style, so accuracy does not
  degrade for huge arguments), then the fdlibm minimax kernels (tan = sin/cos of the
  reduced argument).
- atan, atan2, exp, log: ports of fdlibm's (Sun, public domain) algorithms, including
  their argument reductions and minimax polynomials in Horner form.
- pow: computed in ~130-bit fixed point with Python ints (log by the atanh series,
  exp by Taylor series after reduction by ln 2) and rounded once to a double, so
  it is correctly rounded except in astronomically rare near-halfway cases.

**Accuracy** (vs CPython's `math.*` on glibc, measured by tests/test_detmath.py over
20,000 seeded inputs each): sin, cos, atan, atan2, exp, log, pow within 1 ulp; tan
within 2 ulp. Constants (pi, 2/pi, ln 2) are computed with ints at import.

**Special values** follow C99 Annex F and never raise: sin(inf) is nan, log(0) is -inf,
log(-1) is nan, exp(1000) is inf, pow(0, -1) is inf, pow(-8, 1/3) is nan,
pow(x, 0) == pow(1, y) == 1 even for nan. (`math` raises ValueError/OverflowError in
these cases instead.) A nan argument is returned as is; a nan produced from non-nan
arguments is always the module's `NAN` object, so not even nan bits can differ.

**Cost.** Pure Python, measured on a desktop CPython 3.12 (math.* is ~0.05 us there):
atan 0.3 us, exp 0.5 us, log 0.7 us, atan2 0.9 us, sin/cos/tan 0.3-0.5 us for
|x| < pi/4 and ~1.8 us beyond, pow ~7.5 us; so 10-150x slower than `math.*`, and ~3x
slower again in Pyodide (under Node: sin ~6 us, pow ~23 us, math.sin 0.3 us). Fine for a
handful of calls per frame; avoid calling them for thousands of objects per frame.
"""
from __future__ import annotations

from collections.abc import Callable
from math import copysign, frexp, isinf, isnan, ldexp

__all__ = ["NAN", "INF", "sin", "cos", "tan", "atan", "atan2", "exp", "log", "pow"]

NAN = float("nan")
INF = float("inf")

_TWO53 = 1 << 53


# ---------------------------------------------------------------------------
# High-precision constants, computed with ints at import (no typed-in digits to get wrong)

def _atan_inv(n: int, one: int) -> int:
    """atan(1/n) * one, via the alternating Gregory series (error a few units)."""
    power = one // n
    total = power
    n2 = n * n
    k = 1
    sign = -1
    while power:
        power //= n2
        total += sign * (power // (2 * k + 1))
        sign = -sign
        k += 1
    return total


def _pi_fixed(bits: int) -> int:
    """floor(pi * 2**bits) up to a unit or so (Machin's formula with 32 guard bits)."""
    one = 1 << (bits + 32)
    return (16 * _atan_inv(5, one) - 4 * _atan_inv(239, one)) >> 32


def _ln2_fixed(bits: int) -> int:
    """ln 2 * 2**bits up to a unit or so: 2 atanh(1/3)."""
    one = 1 << (bits + 32)
    power = one // 3
    total = power
    k = 3
    while power:
        power //= 9
        total += power // k
        k += 2
    return (2 * total) >> 32


_RED_N = 1250                      # bits of 2/pi: enough for the largest double (exponent 1024)
_RED_K = 140                       # fraction bits of x*2/pi kept after reduction
_RED_L = 130                       # bits of pi/2 used to turn the fraction back into radians
_PI_W = _pi_fixed(_RED_N + 64)
_TWO_OVER_PI = (1 << (2 * _RED_N + 65)) // _PI_W          # floor(2/pi * 2**_RED_N)
_PIO2_L = _PI_W >> (_RED_N + 64 - _RED_L + 1)             # pi/2 * 2**_RED_L
_RED_S = _RED_K + _RED_L
_RED_DEN = 1 << _RED_S
_RED_HALF = 1 << (_RED_K - 1)

_LN2_BITS = 400
_LN2_FIX = _ln2_fixed(_LN2_BITS)


def _pow2(k: int) -> float:
    return ldexp(1.0, k)          # exact: 2**k is representable for -1074 <= k <= 1023


def _scale(y: float, k: int) -> float:
    """y * 2**k with a single rounding (y in [0.5, 2])."""
    if -1021 <= k <= 1023:
        return y * _pow2(k)
    if k > 1023:
        return (y * 2.0) * _pow2(k - 1) if k <= 1024 else y * _pow2(1023) * 2.0 * _pow2(k - 1024)
    return (y * _pow2(k + 60)) * _pow2(-60)   # first product exact (normal), second rounds once


# ---------------------------------------------------------------------------
# sin, cos, tan

_PIO4 = 0.7853981633974483         # largest double below pi/4 rounding: |x| < this needs no reduction
_TINY = 7.450580596923828e-09      # 2**-27: below it sin x and tan x round to x

_S1 = -1.66666666666666324348e-01
_S2 = 8.33333333332248946124e-03
_S3 = -1.98412698298579493134e-04
_S4 = 2.75573137070700676789e-06
_S5 = -2.50507602534068634195e-08
_S6 = 1.58969099521155010221e-10

_C1 = 4.16666666666666019037e-02
_C2 = -1.38888888888741095749e-03
_C3 = 2.48015872894767294178e-05
_C4 = -2.75573143513906633035e-07
_C5 = 2.08757232129817482790e-09
_C6 = -1.13596475577881948265e-11


def _ksin(x: float, y: float) -> float:
    """sin(x + y) for |x| <= pi/4, y the tail of the reduced argument (fdlibm __kernel_sin)."""
    z = x * x
    v = z * x
    r = _S2 + z * (_S3 + z * (_S4 + z * (_S5 + z * _S6)))
    if y == 0.0:
        return x + v * (_S1 + z * r)
    return x - ((z * (0.5 * y - v * r) - y) - v * _S1)


def _kcos(x: float, y: float) -> float:
    """cos(x + y) for |x| <= pi/4 (FreeBSD __kernel_cos)."""
    z = x * x
    w = z * z
    r = z * (_C1 + z * (_C2 + z * _C3)) + w * w * (_C4 + z * (_C5 + z * _C6))
    hz = 0.5 * z
    w = 1.0 - hz
    return w + (((1.0 - w) - hz) + (z * r - x * y))


def _reduce(ax: float) -> tuple[int, float, float]:
    """ax = n*pi/2 + (hi + lo) exactly enough, |hi + lo| <= pi/4; ax positive and finite."""
    m, e = frexp(ax)
    mant = int(m * 9007199254740992.0)        # ax = mant * 2**(e - 53), exact
    shift = _RED_N - (e - 53) - _RED_K
    v = (mant * _TWO_OVER_PI) >> shift        # ax * 2/pi with _RED_K fraction bits
    q = (v + _RED_HALF) >> _RED_K
    r = v - (q << _RED_K)                     # signed fraction in [-1/2, 1/2)
    big = r * _PIO2_L                         # radians, _RED_S fraction bits
    hi = big / _RED_DEN                       # int true division: correctly rounded
    num, den = hi.as_integer_ratio()
    lo = (big - (num << _RED_S) // den) / _RED_DEN
    return q & 3, hi, lo


def _sin_quadrant(n: int, hi: float, lo: float) -> float:
    """sin(n*pi/2 + hi + lo): the quadrant picks the kernel and the sign."""
    s = _kcos(hi, lo) if n & 1 else _ksin(hi, lo)
    return -s if n & 2 else s


def _cos_quadrant(n: int, hi: float, lo: float) -> float:
    """cos(n*pi/2 + hi + lo), as sin one quadrant further on."""
    return _sin_quadrant(n + 1, hi, lo)


def _tan_quadrant(n: int, hi: float, lo: float) -> float:
    """tan(n*pi/2 + hi + lo)."""
    if n & 1:
        return -_kcos(hi, lo) / _ksin(hi, lo)
    return _ksin(hi, lo) / _kcos(hi, lo)


def _reduced(x: float, quadrant: Callable[[int, float, float], float], odd: bool) -> float:
    """f(x) for |x| >= pi/4 through exact reduction of |x|; nan for nan and ±inf.

    `quadrant(n, hi, lo)` is f(n*pi/2 + hi + lo); `odd` says f(-x) == -f(x), else f is even.
    """
    if isnan(x):
        return x
    if isinf(x):
        return NAN
    if x < 0:
        y = quadrant(*_reduce(-x))
        return -y if odd else y
    return quadrant(*_reduce(x))


def sin(x: float) -> float:
    """Deterministic sin(x); nan for ±inf."""
    x = float(x)
    if -_PIO4 < x < _PIO4:
        if -_TINY < x < _TINY:        # sin x == x (keeps -0.0)
            return x
        return _ksin(x, 0.0)
    return _reduced(x, _sin_quadrant, odd=True)


def cos(x: float) -> float:
    """Deterministic cos(x); nan for ±inf."""
    x = float(x)
    if -_PIO4 < x < _PIO4:
        return _kcos(x, 0.0)
    return _reduced(x, _cos_quadrant, odd=False)


def tan(x: float) -> float:
    """Deterministic tan(x) (sin/cos of the reduced argument); nan for ±inf."""
    x = float(x)
    if -_PIO4 < x < _PIO4:
        if -_TINY < x < _TINY:        # tan x == x
            return x
        return _ksin(x, 0.0) / _kcos(x, 0.0)
    return _reduced(x, _tan_quadrant, odd=True)


# ---------------------------------------------------------------------------
# atan, atan2 (fdlibm s_atan.c, e_atan2.c)

_ATANHI = (4.63647609000806093515e-01, 7.85398163397448278999e-01,
           9.82793723247329054082e-01, 1.57079632679489655800e+00)
_ATANLO = (2.26987774529616870924e-17, 3.06161699786838301793e-17,
           1.39033110312309984516e-17, 6.12323399573676603587e-17)
_AT0 = 3.33333333333329318027e-01
_AT1 = -1.99999999998764832476e-01
_AT2 = 1.42857142725034663711e-01
_AT3 = -1.11111104054623557880e-01
_AT4 = 9.09088713343650656196e-02
_AT5 = -7.69187620504482999495e-02
_AT6 = 6.66107313738753120669e-02
_AT7 = -5.83357013379057348645e-02
_AT8 = 4.97687799461593236017e-02
_AT9 = -3.65315727442169155270e-02
_AT10 = 1.62858201153657823623e-02


def atan(x: float) -> float:
    """Deterministic atan(x); ±pi/2 for ±inf."""
    x = float(x)
    negative = x < 0
    ax = -x if negative else x
    if not ax < 7.378697629483821e19:          # |x| >= 2**66 (or nan)
        if isnan(x):
            return x
        z = _ATANHI[3] + _ATANLO[3]
        return -z if x < 0 else z
    if ax < 0.4375:
        if ax < 3.725290298461914e-09:         # |x| < 2**-28
            return x
        ident = -1
    elif ax < 1.1875:
        if ax < 0.6875:
            ident = 0
            x = (2.0 * ax - 1.0) / (2.0 + ax)
        else:
            ident = 1
            x = (ax - 1.0) / (ax + 1.0)
    elif ax < 2.4375:
        ident = 2
        x = (ax - 1.5) / (1.0 + 1.5 * ax)
    else:
        ident = 3
        x = -1.0 / ax
    z = x * x
    w = z * z
    s1 = z * (_AT0 + w * (_AT2 + w * (_AT4 + w * (_AT6 + w * (_AT8 + w * _AT10)))))
    s2 = w * (_AT1 + w * (_AT3 + w * (_AT5 + w * (_AT7 + w * _AT9))))
    if ident < 0:
        return x - x * (s1 + s2)
    z = _ATANHI[ident] - ((x * (s1 + s2) - _ATANLO[ident]) - x)
    return -z if negative else z


_PI = 3.1415926535897931160e+00
_PI_LO = 1.2246467991473531772e-16
_PI_O_2 = 1.5707963267948965580e+00
_PI_O_4 = 7.8539816339744827900e-01
_3PI_O_4 = 3.0 * _PI_O_4


def atan2(y: float, x: float) -> float:
    """Deterministic atan2(y, x), with C99's signed zeros and infinities."""
    y = float(y)
    x = float(x)
    if isnan(x):
        return x
    if isnan(y):
        return y
    if x == 1.0:
        return atan(y)
    m = (1 if copysign(1.0, y) < 0 else 0) | (2 if copysign(1.0, x) < 0 else 0)
    if y == 0.0:
        if m < 2:
            return y
        return _PI if m == 2 else -_PI
    if x == 0.0:
        return -_PI_O_2 if y < 0 else _PI_O_2
    if isinf(x):
        if isinf(y):
            return (_PI_O_4, -_PI_O_4, _3PI_O_4, -_3PI_O_4)[m]
        return (0.0, -0.0, _PI, -_PI)[m]
    if isinf(y):
        return -_PI_O_2 if y < 0 else _PI_O_2
    k = frexp(y)[1] - frexp(x)[1]
    if k > 60:
        z = _PI_O_2 + 0.5 * _PI_LO
        m &= 1
    elif x < 0 and k < -60:
        z = 0.0
    else:
        q = y / x
        z = atan(-q if q < 0 else q)
    if m == 0:
        return z
    if m == 1:
        return -z
    if m == 2:
        return _PI - (z - _PI_LO)
    return (z - _PI_LO) - _PI


# ---------------------------------------------------------------------------
# exp (fdlibm e_exp.c)

_LN2_HI = 6.93147180369123816490e-01
_LN2_LO = 1.90821492927058770002e-10
_INVLN2 = 1.44269504088896338700e+00
_P1 = 1.66666666666666019037e-01
_P2 = -2.77777777770155933842e-03
_P3 = 6.61375632143793436117e-05
_P4 = -1.65339022054652515390e-06
_P5 = 4.13813679705723846039e-08
_O_THRESHOLD = 7.09782712893383973096e+02
_U_THRESHOLD = -7.45133219101941108420e+02
_HALF_LN2_T = float.fromhex("0x1.62e43p-2")     # fdlibm's high-word thresholds, as doubles
_THREE_HALF_LN2_T = float.fromhex("0x1.0a2b2p0")
_TWOM28 = float.fromhex("0x1p-28")


def exp(x: float) -> float:
    """Deterministic e**x; inf on overflow, 0 on underflow."""
    x = float(x)
    if not -_O_THRESHOLD <= x <= _O_THRESHOLD:
        if isnan(x):
            return x
        if x > _O_THRESHOLD:
            return INF
        if x < _U_THRESHOLD:
            return 0.0
    ax = -x if x < 0 else x
    if ax >= _HALF_LN2_T:
        if ax < _THREE_HALF_LN2_T:
            if x < 0:
                hi = x + _LN2_HI
                lo = -_LN2_LO
                k = -1
            else:
                hi = x - _LN2_HI
                lo = _LN2_LO
                k = 1
        else:
            k = int(_INVLN2 * x + (-0.5 if x < 0 else 0.5))   # truncation toward zero, as in C
            t = float(k)
            hi = x - t * _LN2_HI                                # exact: t*_LN2_HI has spare bits
            lo = t * _LN2_LO
        x = hi - lo
    elif ax < _TWOM28:
        return 1.0 + x
    else:
        k = 0
        hi = lo = 0.0
    t = x * x
    c = x - t * (_P1 + t * (_P2 + t * (_P3 + t * (_P4 + t * _P5))))
    if k == 0:
        return 1.0 - ((x * c) / (c - 2.0) - x)
    y = 1.0 - ((lo - (x * c) / (2.0 - c)) - hi)
    return _scale(y, k)


# ---------------------------------------------------------------------------
# log (fdlibm e_log.c)

_LG1 = 6.666666666666735130e-01
_LG2 = 3.999999999940941908e-01
_LG3 = 2.857142874366239149e-01
_LG4 = 2.222219843214978396e-01
_LG5 = 1.818357216161805012e-01
_LG6 = 1.531383769920937332e-01
_LG7 = 1.479819860511658591e-01


def log(x: float) -> float:
    """Deterministic natural log; -inf for ±0, nan for negatives, inf for inf."""
    x = float(x)
    if not 0.0 < x < INF:
        if isnan(x):
            return x
        if x == 0.0:
            return -INF
        if x < 0.0:
            return NAN
        return x                                   # +inf
    m, e = frexp(x)                                # x = m * 2**e, m in [0.5, 1)
    mant = int(m * 9007199254740992.0) - (1 << 52)  # the 52 fraction bits of x normalised
    hx = mant >> 32                                # fdlibm's high-word fraction (20 bits)
    k = e - 1
    if (hx + 0x95F64) & 0x100000:                  # fraction >= sqrt(2)-1: use x/2^(k+1)
        xn = m
        k += 1
    else:
        xn = m * 2.0
    f = xn - 1.0
    if (0x000FFFFF & (2 + hx)) < 3:                # -2**-20 <= f < 2**-20
        if f == 0.0:
            if k == 0:
                return 0.0
            dk = float(k)
            return dk * _LN2_HI + dk * _LN2_LO
        r = f * f * (0.5 - 0.33333333333333333 * f)
        if k == 0:
            return f - r
        dk = float(k)
        return dk * _LN2_HI - ((r - dk * _LN2_LO) - f)
    s = f / (2.0 + f)
    dk = float(k)
    z = s * s
    i = hx - 0x6147A
    w = z * z
    j = 0x6B851 - hx
    t1 = w * (_LG2 + w * (_LG4 + w * _LG6))
    t2 = z * (_LG1 + w * (_LG3 + w * (_LG5 + w * _LG7)))
    i |= j
    r = t2 + t1
    if i > 0:
        hfsq = 0.5 * f * f
        if k == 0:
            return f - (hfsq - s * (hfsq + r))
        return dk * _LN2_HI - ((hfsq - (s * (hfsq + r) + dk * _LN2_LO)) - f)
    if k == 0:
        return f - s * (f - r)
    return dk * _LN2_HI - ((s * (f - r) - dk * _LN2_LO) - f)


# ---------------------------------------------------------------------------
# pow: fixed-point ints, one final rounding

_SQRT_HALF = 0.7071067811865476


def _pow_positive(x: float, y: float) -> float:
    """x**y for finite x > 0, x != 1, finite y != 0 with |y| < 2**64."""
    ey = frexp(y)[1]
    fb = 130 + (ey if ey > 0 else 0)               # fraction bits: keep y*log(x) good to ~2**-120
    one = 1 << fb
    m, e = frexp(x)
    mant = int(m * 9007199254740992.0)
    if m < _SQRT_HALF:                             # mantissa in [sqrt(1/2), sqrt(2))
        mant <<= 1
        e -= 1
    # log(mant/2**53) = 2 atanh(s), s = (mant - 2**53)/(mant + 2**53), |s| < 0.172
    num = mant - _TWO53
    neg = num < 0
    s = ((-num if neg else num) << fb) // (mant + _TWO53)
    s2 = (s * s) >> fb
    acc = s
    term = s
    k = 3
    while term:
        term = (term * s2) >> fb
        acc += term // k
        k += 2
    lnm = -2 * acc if neg else 2 * acc
    ln2 = _LN2_FIX >> (_LN2_BITS - fb)
    ln_x = e * ln2 + lnm
    my, ey2 = frexp(y)
    t = ln_x * int(my * 9007199254740992.0)        # y = int(my*2**53) * 2**(ey2-53), exact
    sh = ey2 - 53
    t = t << sh if sh >= 0 else t >> -sh           # t = y*log(x), fb fraction bits
    q = (t + (ln2 >> 1)) // ln2                    # x**y = 2**q * exp(r), |r| <= ln2/2
    if q > 1100:
        return INF
    if q < -1100:
        return 0.0
    r = t - q * ln2
    acc = one
    term = one
    n = 1
    while term and n < 64:
        term = ((term * r) >> fb) // n
        acc += term
        n += 1
    sh = fb - q
    if sh > 0:
        return acc / (1 << sh)                     # int true division rounds once, subnormals too
    try:
        return float(acc << -sh)
    except OverflowError:
        return INF


def _int_kind(y: float) -> int:
    """0: not an integer, 1: odd integer, 2: even integer (y finite)."""
    if y >= 9007199254740992.0 or y <= -9007199254740992.0:
        return 2
    i = int(y)
    if float(i) != y:
        return 0
    return 1 if i & 1 else 2


def pow(x: float, y: float) -> float:
    """Deterministic x**y with C99 Annex F special cases (never raises)."""
    x = float(x)
    y = float(y)
    if y == 0.0 or x == 1.0:
        return 1.0
    if isnan(x):
        return x
    if isnan(y):
        return y
    if isinf(y):
        ax = -x if x < 0 else x
        if ax == 1.0:
            return 1.0
        if (ax < 1.0) == (y < 0):
            return INF
        return 0.0
    kind = _int_kind(y)
    if x == 0.0:
        odd_neg_zero = kind == 1 and copysign(1.0, x) < 0
        if y < 0:
            return -INF if odd_neg_zero else INF
        return -0.0 if odd_neg_zero else 0.0
    if isinf(x):
        negate = x < 0 and kind == 1
        if y < 0:
            return -0.0 if negate else 0.0
        return -INF if negate else INF
    negate = False
    if x < 0:
        if kind == 0:
            return NAN
        negate = kind == 1
        x = -x
        if x == 1.0:
            return -1.0 if negate else 1.0
    if y >= 18446744073709551616.0 or y <= -18446744073709551616.0:
        # |y| >= 2**64 and x != 1: |y*log(x)| > 2**64 * 2**-54, far past over/underflow
        r = INF if (x > 1.0) == (y > 0) else 0.0
    else:
        r = _pow_positive(x, y)
    return -r if negate else r
