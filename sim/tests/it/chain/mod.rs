//! Chain tests: real anvil running the real Uniswap V2/V3 contracts (npm packages pinned in
//! `tests/chain/`; install with `tests/chain/setup.sh`). Every test starts its own anvil on 127.0.0.1
//! and fails loudly when anvil is not installed.

pub(crate) mod balancer;
pub(crate) mod curve_ng;
pub(crate) mod curve_poll;
pub(crate) mod deploy;
pub(crate) mod mempool;
pub(crate) mod mempool_routers;
pub(crate) mod mempool_v4;
pub(crate) mod node_feed;
pub(crate) mod registry;
pub(crate) mod relay;
pub(crate) mod uniswap_v4;
pub(crate) mod universal_router;
pub(crate) mod util;
pub(crate) mod v3_gas;
pub(crate) mod v4_feed;
pub(crate) mod v4_path;
