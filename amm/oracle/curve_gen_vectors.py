#!/usr/bin/env python3
"""Generate oracle vectors for Keel's Curve StableSwap math (`keel_amm::curve`).

The oracle is curvesim 0.5.0's integer-exact `curvesim.pool.stableswap.CurvePool`
(`pip install curvesim==0.5.0`). It is used as a test oracle only; nothing of it is copied
into the Rust crate.

What curvesim reproduces, and how each Keel flavour is matched against it
-------------------------------------------------------------------------
curvesim's `CurvePool` has *no* A_PRECISION: `Ann = A * n`, and `get_D` uses `Ann - 1`,
`get_y` uses `c * D // (n * Ann)` and `b = S + D // Ann`. That is exactly the classic
`StableSwap3Pool.vy` convention. Its `exchange` converts `dy - fee` to coin units after
taking the fee in 18-decimal units, as every contract's `exchange` does.

* `3pool` flavour (StableSwap3Pool.vy, Vyper 0.2.4): curvesim with `A = A(t)` (the contract's
  storage A; a ramp gives integer A(t), which curvesim takes as is). `D`, `exchange` dy, the
  admin-fee split and the new balances all come from curvesim. The contract's *view*
  `get_dy` differs from its `exchange`: it converts `xp[j] - y - 1` to coin units first and
  then subtracts `fee * dy // 1e10` in coin units. curvesim has no such view, so that one
  number is derived here from curvesim's own `get_y` plus that one-line formula.
* `factory` flavour (curve-factory plain templates, SwapTemplateBase; A_PRECISION = 100):
  the contract stores `A_p = 100 * A`. When `A_p % 100 == 0` its `get_D`/`get_y` reduce
  exactly (floor(100x / 100y) = floor(x / y)) to curvesim's with `A = A_p // 100`, so those
  states are pure curvesim (tag `cs`). During an A ramp `A_p(t)` need not be a multiple of
  100; curvesim cannot express that, so those states use `APrecisionPool` below, a subclass
  that overrides only `get_D` / `get_y` with the contract's A_PRECISION expressions (tag
  `ext`). Before writing anything the script checks, on `--self-check` (300) separate random
  factory states with `A_p % 100 == 0`, that `APrecisionPool` and plain curvesim give the same
  D and the same trade results. The view `get_dy` of these pools equals `exchange`'s dy (fee
  taken before the conversion), which is curvesim's.

Iteration cap: curvesim loops `while abs(new - prev) > 1` without a cap; the contracts stop
after 255 iterations (the 3pool keeps the 255th iterate, the factory pools revert).
`IterationCap` applies that cap to curvesim's own loops (see its docstring).

Reverts: a trade whose `xp[j] - y - 1` is negative reverts on chain (uint256 underflow);
curvesim raises AssertionError there. Such trades are written with `R` and the Rust side must
return that underflow. Magnitudes are kept where no uint256 intermediate overflows (xp up to
about 3e29, imbalance up to about 1e9 between coins), so curvesim's unbounded ints equal the
EVM's; overflow reverts are covered by the Rust unit tests instead.

Output format (text, one record per line, space separated, integers in decimal):
    # comment
    P <flavour> <src> <n> <dec_0..dec_n-1> <bal_0..bal_n-1> <A0> <A1> <t0> <t1> <t> <fee> <admin_fee> <A_t> <D>
    T <i> <j> <dx> <dy_view> <dy> <new_bal_j>
    T <i> <j> <dx> R
    T <i> <j> <dx> N
`D` is `N` when the contract's get_D would not converge in 255 iterations (factory pools
revert there); a trade ends in `R` for a revert (uint256 underflow of `xp[j] - y - 1`) and in
`N` when `get_D`/`get_y` would not converge (factory pools only: StableSwap3Pool.vy returns the
255th iterate, reproduced through `IterationCap`). `T` lines belong to the `P` line above them.
`A0`/`A1` are the contract's storage values (`initial_A`/`future_A`, i.e. already times
A_PRECISION for `factory`), `A_t` is `_A()` at `t`, `t0`/`t1` are
`initial_A_time`/`future_A_time`, `t` is the block timestamp. `new_bal_j` is the contract's
`balances[j]` after `exchange` (coin j less dy and the admin fee); `balances[i]` becomes
`bal_i + dx`.

Usage:
    python oracle/curve_gen_vectors.py [--states 1200] [--trades 3] [--seed 20261205] [--out oracle/curve_vectors.txt]
"""

from __future__ import annotations

import argparse
import random
import sys

from gmpy2 import mpz

import curvesim.pool.stableswap.pool as cs_pool_module
from curvesim.pool.stableswap import CurvePool

PRECISION = 10**18
FEE_DENOMINATOR = 10**10
A_PRECISION = 100


class NoConvergence(Exception):
    """The contract's 255-iteration loop ends without convergence (the factory pools `raise`)."""


class IterationCap:
    """The contracts' 255-iteration cap, applied to curvesim's own loops.

    curvesim's `get_D` / `get_y` loop `while abs(new - prev) > 1` with no cap. The contracts run
    `for _i in range(255)` and check after each iteration. curvesim's check #1 compares the
    start value with 0 and check #k+1 follows iteration k, so check #256 follows iteration 255.
    This object replaces the name `abs` in curvesim's pool module (module globals shadow the
    builtin), counts the checks of each loop invocation (keyed by the caller's frame) and, if
    check #256 still sees a difference above 1, either raises `NoConvergence` (factory pools)
    or returns 0 so that curvesim's loop stops with the 255th iterate, which is what
    StableSwap3Pool.vy returns (`break` never taken; the value after the loop is used).
    """

    def __init__(self):
        self.mode = "raise"
        self.counts = {}
        self.capped = False

    def reset(self, mode: str):
        self.mode = mode
        self.counts.clear()
        self.capped = False

    def __call__(self, value):
        frame = sys._getframe(1)
        k = self.counts.get(frame, 0) + 1
        self.counts[frame] = k
        diff = abs(value)
        if k >= 256 and diff > 1:
            if self.mode == "raise":
                raise NoConvergence()
            self.capped = True
            return 0
        return diff


CAP = IterationCap()
cs_pool_module.abs = CAP


class APrecisionPool(CurvePool):
    """curvesim's pool with the A_PRECISION = 100 expressions of the factory plain pools.

    `self.A` holds the contract's A_p (A * 100). Only `get_D` and `get_y` change: the
    fee handling, xp conversion and balance updates are curvesim's.
    """

    def get_D(self, xp, A):
        n = self.n
        S = sum(xp)
        if S == 0:
            return 0
        D = mpz(S)
        Ann = mpz(A * n)
        for _ in range(255):
            D_P = D
            for x in xp:
                D_P = D_P * D // (x * n)
            Dprev = D
            D = (Ann * S // A_PRECISION + D_P * n) * D // ((Ann - A_PRECISION) * D // A_PRECISION + (n + 1) * D_P)
            if abs(D - Dprev) <= 1:
                return int(D)
        if CAP.mode == "raise":
            raise NoConvergence()
        return int(D)

    def get_y(self, i, j, x, xp):
        n = self.n
        A = self.A
        D = mpz(self.get_D(xp, A))
        Ann = A * n
        c = D
        S = 0
        for k in range(n):
            if k == i:
                xk = x
            elif k != j:
                xk = xp[k]
            else:
                continue
            S += xk
            c = c * D // (xk * n)
        c = c * D * A_PRECISION // (Ann * n)
        b = S + D * A_PRECISION // Ann
        y = D
        for _ in range(255):
            y_prev = y
            y = (y * y + c) // (2 * y + b - D)
            if abs(y - y_prev) <= 1:
                return int(y)
        if CAP.mode == "raise":
            raise NoConvergence()
        return int(y)


def amp_at(a0: int, a1: int, t0: int, t1: int, t: int) -> int:
    """The contracts' `_A()` (identical in both flavours)."""
    if t < t1:
        if a1 > a0:
            return a0 + (a1 - a0) * (t - t0) // (t1 - t0)
        return a0 - (a0 - a1) * (t - t0) // (t1 - t0)
    return a1


def log_uniform_int(rng: random.Random, lo: int, hi: int) -> int:
    return max(lo, min(hi, int(round(10 ** rng.uniform(len(str(lo)) - 1, len(str(hi)) - 1 + 0.999)))))


def random_amount(rng: random.Random, exp_lo: float, exp_hi: float) -> int:
    """An integer with a random mantissa spread over [10^exp_lo, 10^exp_hi)."""
    e = rng.uniform(exp_lo, exp_hi)
    whole = int(e)
    mant = 10 ** (e - whole)
    return max(1, int(mant * 10**15) * 10**whole // 10**15)


def random_state(rng: random.Random, flavour: str):
    n = rng.choice((2, 3))
    decimals = [rng.choice((6, 18)) for _ in range(n)]
    # Pool size in whole tokens: 1e-4 .. 3e11 (xp up to ~3e29), then per-coin imbalance.
    size_exp = rng.uniform(-4, 11.5)
    imbalance = rng.choice((0.0, 0.3, 1.0, 3.0, 6.0, 9.0))
    balances = []
    for dec in decimals:
        e = size_exp - rng.uniform(0, imbalance) + rng.uniform(-0.05, 0.05)
        e = max(e, -dec + 0.5)  # at least a few of the coin's smallest units
        balances.append(random_amount(rng, e + dec, e + dec + 1e-9))
    a = rng.choice((1, 2, 5000, log_uniform_int(rng, 1, 5000), log_uniform_int(rng, 1, 5000)))
    fee = rng.choice((0, 1_000_000, 4_000_000, 30_000_000, 100_000_000, rng.randint(0, 100_000_000)))
    admin_fee = rng.choice((0, 5 * 10**9, 10**10, rng.randint(0, 10**10)))
    scale = A_PRECISION if flavour == "factory" else 1
    a0 = a1 = a * scale
    t0 = t1 = t = 0
    if rng.random() < 0.3:
        # A ramp (at most x10 either way, as ramp_A allows), observed at some time in or after it.
        target = max(1, min(5000, int(a * 10 ** rng.uniform(-1, 1))))
        a1 = target * scale
        t0 = rng.randint(1_600_000_000, 1_700_000_000)
        t1 = t0 + rng.randint(86_400, 30 * 86_400)
        t = rng.choice((t0, t1, t1 + 5, rng.randint(t0, t1 - 1), rng.randint(t0, t1 - 1)))
    return n, decimals, balances, a0, a1, t0, t1, t, fee, admin_fee


def make_pool(flavour: str, n, decimals, balances, a_t, fee, admin_fee):
    rates = [10 ** (36 - d) for d in decimals]
    if flavour == "factory" and a_t % A_PRECISION != 0:
        return APrecisionPool(A=a_t, D=list(balances), n=n, rates=rates, fee=fee, admin_fee=admin_fee), "ext"
    a = a_t // A_PRECISION if flavour == "factory" else a_t
    return CurvePool(A=a, D=list(balances), n=n, rates=rates, fee=fee, admin_fee=admin_fee), "cs"


def trade(flavour: str, pool: CurvePool, i: int, j: int, dx: int):
    """(dy_view, dy, new_bal_j) or None for a revert; `pool` is left unchanged."""
    rates = pool.rates
    xp = pool._xp()
    x = xp[i] + dx * rates[i] // PRECISION
    y = pool.get_y(i, j, x, xp)
    dy_xp = xp[j] - y - 1
    if dy_xp < 0:
        return None
    if flavour == "3pool":
        dy_tok = dy_xp * PRECISION // rates[j]
        dy_view = dy_tok - pool.fee * dy_tok // FEE_DENOMINATOR
    else:
        dy_view = None  # equals exchange's dy for the A_PRECISION pools
    saved = list(pool.balances), list(pool.admin_balances)
    try:
        dy, _fee = pool.exchange(i, j, dx)
    except AssertionError:
        return None
    new_bal_j = pool.balances[j]
    pool.balances, pool.admin_balances = saved
    if dy_view is None:
        dy_view = dy
    return int(dy_view), int(dy), int(new_bal_j)


def random_dx(rng: random.Random, bal_i: int) -> int:
    r = rng.random()
    if r < 0.04:
        return 0
    if r < 0.10:
        return rng.randint(1, 1000)
    frac_exp = rng.uniform(-12, 1)  # 1e-12 .. 10x of the input coin's balance
    return max(1, int(bal_i * 10**frac_exp))


def self_check(rng: random.Random, count: int) -> int:
    """APrecisionPool must equal plain curvesim (with the cap) whenever A_p is a multiple of 100."""

    def outcome(pool_of, i, j, dx):
        CAP.reset("stop")
        pool = pool_of()
        CAP.reset("raise")
        try:
            return pool.D(), trade("factory", pool, i, j, dx)
        except NoConvergence:
            return "N"

    checked = 0
    while checked < count:
        n, decimals, balances, a0, _a1, _t0, _t1, _t, fee, admin_fee = random_state(rng, "factory")
        rates = [10 ** (36 - d) for d in decimals]
        kw = dict(D=list(balances), n=n, rates=rates, fee=fee, admin_fee=admin_fee)
        i, j = rng.sample(range(n), 2)
        dx = random_dx(rng, balances[i])
        plain = outcome(lambda: CurvePool(A=a0 // 100, **kw), i, j, dx)
        ext = outcome(lambda: APrecisionPool(A=a0, **kw), i, j, dx)
        assert plain == ext, (balances, a0, i, j, dx, plain, ext)
        checked += 1
    return checked


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--states", type=int, default=1200, help="pool states per flavour")
    ap.add_argument("--trades", type=int, default=3, help="trades per pool state")
    ap.add_argument("--seed", type=int, default=20261205)
    ap.add_argument("--self-check", type=int, default=300, help="APrecisionPool vs curvesim checks")
    ap.add_argument("--out", default="oracle/curve_vectors.txt")
    args = ap.parse_args()

    rng = random.Random(args.seed)
    checked = self_check(random.Random(args.seed + 1), args.self_check)
    counts = {}
    lines = [
        "# Curve StableSwap oracle vectors, generated by oracle/curve_gen_vectors.py with curvesim 0.5.0",
        f"# seed={args.seed} states={args.states} trades={args.trades}; format: see gen_vectors.py",
    ]
    for flavour in ("3pool", "factory"):
        mode = "stop" if flavour == "3pool" else "raise"
        for _ in range(args.states):
            n, decimals, balances, a0, a1, t0, t1, t, fee, admin_fee = random_state(rng, flavour)
            a_t = amp_at(a0, a1, t0, t1, t)
            CAP.reset("stop")  # curvesim's constructor computes D; the real check follows
            pool, src = make_pool(flavour, n, decimals, balances, a_t, fee, admin_fee)
            CAP.reset(mode)
            try:
                d = str(pool.D())
            except NoConvergence:
                d = "N"
            capped = CAP.capped
            head = ["P", flavour, src, str(n), *map(str, decimals), *map(str, balances)]
            head += [str(v) for v in (a0, a1, t0, t1, t, fee, admin_fee, a_t)] + [d]
            lines.append(" ".join(head))
            for _ in range(args.trades):
                i, j = rng.sample(range(n), 2)
                dx = random_dx(rng, balances[i])
                CAP.reset(mode)
                try:
                    out = trade(flavour, pool, i, j, dx)
                    outcome = "revert" if out is None else "ok"
                except NoConvergence:
                    out, outcome = "N", "no-convergence"
                if CAP.capped or capped:
                    outcome += " (255-iteration cap hit)"
                key = (flavour, src, outcome)
                counts[key] = counts.get(key, 0) + 1
                if out is None:
                    lines.append(f"T {i} {j} {dx} R")
                elif out == "N":
                    lines.append(f"T {i} {j} {dx} N")
                else:
                    lines.append(f"T {i} {j} {dx} {out[0]} {out[1]} {out[2]}")
    with open(args.out, "w", encoding="ascii") as f:
        f.write("\n".join(lines) + "\n")
    print(f"self-check: APrecisionPool == curvesim on {checked} factory states", file=sys.stderr)
    for key in sorted(counts):
        print(f"{'/'.join(key)}: {counts[key]} trades", file=sys.stderr)
    print(f"wrote {args.out}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
