#!/usr/bin/env python3
"""Band-only against cost-aware rebalancing on the demo's simulated market.

For each band width and mode, runs `keel demo` (same config, same seed) with every portfolio's drift
band set to that width and `[portfolios.cost] mode` set, then prints one table row from the run's
report.json: total cost (gas + pool fees + impact, USD), notional traded and crossed, rebalances
landed, and the mean over portfolios of the time-weighted tracking error.

    cargo build --release && scripts/compare-cost-modes.py --duration 60 --bands 0.005,0.01,0.02

The demo runs in wall-clock time: two runs of one config differ by the timing of their decisions, so
read differences smaller than the spread of repeated runs (--repeat) as noise.
"""
import argparse
import json
import os
import re
import statistics
import subprocess
import sys
import tempfile

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def config_for(base: str, band: float, mode: str, kappa: float) -> str:
    """The demo config with every absolute drift band set to `band` and a cost section per portfolio."""
    text = re.sub(r"abs_band = [0-9.]+", f"abs_band = {band}", base)
    # Volatility triggers keep their own bands; pin them to the same width for a like-for-like sweep.
    text = re.sub(r"base_band = [0-9.]+", f"base_band = {band}", text)
    text = re.sub(r"min_band = [0-9.]+", f"min_band = {band}", text)
    text = re.sub(r"max_band = [0-9.]+", f"max_band = {band}", text)
    section = f'\n[portfolios.cost]\nmode = "{mode}"\nkappa = {kappa}\n'
    # A `[portfolios.cost]` table right after each portfolio's fields.
    out, in_portfolio = [], False
    for line in text.splitlines():
        if line.startswith("[") and in_portfolio:
            out.append(section)
            in_portfolio = False
        out.append(line)
        if line.strip() == "[[portfolios]]":
            in_portfolio = True
    return "\n".join(out) + "\n"


def run(keel: str, config: str, duration: int) -> dict:
    with tempfile.TemporaryDirectory() as d:
        path = os.path.join(d, "keel.toml")
        with open(path, "w") as f:
            f.write(config)
        out = os.path.join(d, "out")
        subprocess.run([keel, "demo", "--quiet", "--duration", str(duration), "--config", path, "--out", out],
                       check=True, stdout=subprocess.DEVNULL)
        with open(os.path.join(out, "report.json")) as f:
            return json.load(f)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--duration", type=int, default=60, help="seconds per run (default 60)")
    ap.add_argument("--bands", default="0.005,0.01,0.02", help="absolute band widths, comma separated")
    ap.add_argument("--kappa", type=float, default=1.0, help="cost-aware penalty κ (default 1)")
    ap.add_argument("--repeat", type=int, default=1, help="runs per configuration (default 1)")
    ap.add_argument("--keel", default=os.path.join(ROOT, "target", "release", "keel"))
    args = ap.parse_args()
    with open(os.path.join(ROOT, "configs", "demo.toml")) as f:
        base = f.read()
    print("| band | mode | total cost (USD) | traded | crossed | landed | mean time-weighted TE |")
    print("|---|---|---|---|---|---|---|")
    for band in [float(b) for b in args.bands.split(",")]:
        for mode in ["band", "cost_aware"]:
            rows = []
            for i in range(args.repeat):
                print(f"running band {band} {mode} ({i + 1}/{args.repeat})", file=sys.stderr)
                r = run(args.keel, config_for(base, band, mode, args.kappa), args.duration)
                c = r["total_cost"]
                total = c["gas"] + c["pool_fees"] + c["impact"]
                tes = [p["tracking_error"] for p in r["portfolios"] if p["tracking_error"] is not None]
                rows.append((total, c["notional"], c["crossed"], r["rebalances_landed"], statistics.mean(tes)))
            cols = list(zip(*rows))
            fmt = lambda xs, f: f.format(statistics.mean(xs)) + (f" ± {statistics.stdev(xs):.2g}" if len(xs) > 1 else "")
            print(f"| {band} | {mode} | {fmt(cols[0], '{:.2f}')} | {fmt(cols[1], '{:.0f}')} | {fmt(cols[2], '{:.0f}')} "
                  f"| {fmt(cols[3], '{:.1f}')} | {fmt([x * 100 for x in cols[4]], '{:.3f}')}% |", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
