#!/usr/bin/env bash
# Builds Curve's StableSwap-NG plain pool for the chain tests (idempotent): the Vyper source of
# curvefi/stableswap-ng at fd54b9a (`CurveStableSwapNG.vy`, as the vyper 0.4.3 source distribution
# on PyPI ships it among its tests, checked by its sha256), compiled by vyper 0.4.3 from PyPI into
# tests/chain/artifacts/curve/CurveStableSwapNG.json ({"bytecode", "abi", ...}). Curve's licence
# reserves its rights: the source and the bytecode are fetched and built here, never committed.
# Usage: tests/chain/curve.sh        (from anywhere; needs python3 with venv and pip)
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
out="$here/artifacts/curve/CurveStableSwapNG.json"
[ -s "$out" ] && exit 0
vyper_version=0.4.3
sdist_sha256=22a7573657401d8a3bc690d65d6b7741680007180978c3a05f9892db31d5dcf5
member="vyper-$vyper_version/tests/functional/examples/thirdparty/curvefi/CurveStableSwapNG.vy"
command -v python3 >/dev/null || { echo "curve.sh: python3 is required" >&2; exit 1; }
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
echo "building Curve StableSwap-NG with vyper $vyper_version (PyPI) into $out" >&2
python3 -m venv "$work/venv"
"$work/venv/bin/pip" install --quiet --disable-pip-version-check "vyper==$vyper_version"
"$work/venv/bin/pip" download --quiet --disable-pip-version-check --no-deps --no-binary :all: \
  "vyper==$vyper_version" -d "$work"
echo "$sdist_sha256  $work/vyper-$vyper_version.tar.gz" | sha256sum -c --quiet -
tar -xzf "$work/vyper-$vyper_version.tar.gz" -C "$work" "$member"
"$work/venv/bin/vyper" -f bytecode,abi "$work/$member" > "$work/compiled.txt"
mkdir -p "$(dirname "$out")"
python3 - "$work/compiled.txt" "$out.tmp" "$vyper_version" <<'PY'
import json, sys
lines = open(sys.argv[1]).read().splitlines()
code, abi = lines[0].strip(), json.loads(lines[1])
assert code.startswith("0x") and len(code) > 1000, "no bytecode"
json.dump({"contract": "CurveStableSwapNG", "source": "curvefi/stableswap-ng@fd54b9a via the vyper sdist",
           "compiler": "vyper " + sys.argv[3], "bytecode": code, "abi": abi}, open(sys.argv[2], "w"))
PY
mv "$out.tmp" "$out"
