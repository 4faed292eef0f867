//! Shared helpers for the chain tests.

use std::time::Duration;

use keel_bench::anvil::AnvilChain;

/// Starts a chain or panics with the harness's message (which names the install command).
pub(crate) async fn chain() -> AnvilChain {
    match AnvilChain::start().await {
        Ok(c) => {
            eprintln!("anvil up and Uniswap deployed in {:?}", c.deploy_time());
            c
        }
        Err(e) => panic!("chain tests need anvil and the Uniswap artifacts: {e}"),
    }
}

/// `n` whole tokens (18 decimals).
pub(crate) fn e18(n: u64) -> alloy::primitives::U256 {
    alloy::primitives::U256::from(n)
        * alloy::primitives::U256::from(10u64).pow(alloy::primitives::U256::from(18u64))
}

/// Upper bound on any single wait in these tests.
pub(crate) const WAIT: Duration = Duration::from_secs(20);
