# Keel's test command: `make test` (what CI runs, after clippy).
# It installs the pinned chain-test dependencies (anvil + Uniswap and Balancer artifacts, from npm; Curve's
# StableSwap-NG pool, compiled by vyper from PyPI: tests/chain/curve.sh) when missing.

CHAIN_DIR := tests/chain
ANVIL := $(CHAIN_DIR)/node_modules/@foundry-rs/anvil-linux-amd64/bin/anvil

.PHONY: test chain-deps lint demo bench

test: chain-deps
	cargo test --workspace

# Every package pinned in tests/chain/package.json must be installed; one missing (e.g. after a
# pull that added a package) triggers `npm ci`.
CHAIN_PKGS := $(shell sed -n '/"dependencies"/,/}/p' $(CHAIN_DIR)/package.json | grep -o '"[^"]*":' | tr -d '":' | grep -v '^dependencies$$')

chain-deps:
	@missing=""; for p in $(CHAIN_PKGS); do [ -d "$(CHAIN_DIR)/node_modules/$$p" ] || missing="$$missing $$p"; done; \
	if [ ! -x "$(ANVIL)" ] || [ -n "$$missing" ]; then \
		echo "installing pinned chain-test packages into $(CHAIN_DIR)/node_modules (missing:$$missing)"; \
		npm ci --prefix $(CHAIN_DIR) --no-audit --no-fund; \
	fi
	@test -x "$(ANVIL)" || { echo "anvil missing at $(ANVIL) after npm ci"; exit 1; }
	@$(CHAIN_DIR)/curve.sh

lint:
	cargo fmt --all -- --check
	cargo clippy --workspace --all-targets -- -D warnings

demo:
	cargo run --release -- demo

bench:
	cargo bench --workspace
