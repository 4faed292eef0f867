//! What the chain knows and holds: the universe (tokens, pools, DEXes, fixed at start) and the
//! state (balances, allowances, nonces, reserves) that transactions change.

#[allow(unused_imports)]
use super::*;

/// A token's reference price in the numeraire.
#[derive(Debug, Clone, Copy)]
pub(crate) enum RefPrice {
    /// The mid of a board symbol.
    Board(usize),
    /// A fixed price.
    Fixed(f64),
    /// No reference (the token is in no simulated pool, or its instrument is not served).
    None,
}

/// A token the chain knows.
#[derive(Debug, Clone)]
pub(crate) struct TokenInfo {
    pub(crate) symbol: String,
    pub(crate) address: Address,
    pub(crate) decimals: u8,
    pub(crate) price: RefPrice,
}

/// A simulated V2 pool.
#[derive(Debug, Clone)]
pub(crate) struct PoolInfo {
    pub(crate) name: String,
    pub(crate) address: Address,
    pub(crate) dex: usize,
    pub(crate) token0: usize,
    pub(crate) token1: usize,
    pub(crate) fee_bps: u32,
}

/// A simulated V2 DEX (its Router02 address).
#[derive(Debug, Clone)]
pub(crate) struct DexInfo {
    pub(crate) name: String,
    pub(crate) router: Address,
}

/// Everything fixed at start: tokens, DEXes, pools and their indexes.
#[derive(Debug)]
pub(crate) struct Universe {
    pub(crate) chain_id: u64,
    pub(crate) gas_limit: u64,
    /// Smallest priority fee per gas the builder includes (0: any).
    pub(crate) builder_min_tip_wei: u64,
    pub(crate) arbitrage: bool,
    pub(crate) tokens: Vec<TokenInfo>,
    pub(crate) token_by_addr: HashMap<Address, usize>,
    pub(crate) dexes: Vec<DexInfo>,
    pub(crate) dex_by_router: HashMap<Address, usize>,
    pub(crate) pools: Vec<PoolInfo>,
    pub(crate) pool_by_addr: HashMap<Address, usize>,
    /// (dex, lower token address, higher token address) → pool.
    pub(crate) pool_by_pair: HashMap<(usize, Address, Address), usize>,
    /// Client flows between accounts.
    pub(crate) flows: Vec<Flow>,
}

/// A client flow (see [`crate::SimFlowConfig`]).
#[derive(Debug, Clone)]
pub(crate) struct Flow {
    pub(crate) token: usize,
    pub(crate) amount: U256,
    pub(crate) between: [Address; 2],
    pub(crate) every_blocks: u64,
}

impl Universe {
    pub(super) fn pool_for(&self, dex: usize, a: Address, b: Address) -> Option<usize> {
        let (lo, hi) = if a < b { (a, b) } else { (b, a) };
        self.pool_by_pair.get(&(dex, lo, hi)).copied()
    }
}

/// Mutable chain state; cloned to execute a bundle atomically.
#[derive(Debug, Clone, Default)]
pub(crate) struct State {
    /// (reserve0, reserve1) per pool index.
    pub(crate) reserves: Vec<(U256, U256)>,
    /// `blockTimestampLast` per pool index.
    pub(crate) reserve_ts: Vec<u32>,
    /// ERC-20 balances: (token index, owner) → amount. A pool's own tokens are its reserves instead.
    pub(crate) erc20: HashMap<(usize, Address), U256>,
    /// Allowances: (token index, owner, spender) → amount.
    pub(crate) allowances: HashMap<(usize, Address, Address), U256>,
    /// Native balances.
    pub(crate) eth: HashMap<Address, U256>,
    /// Account nonces.
    pub(crate) nonces: HashMap<Address, u64>,
}

impl State {
    /// ERC-20 balance, counting a pool's reserves as its balance of its own tokens.
    pub(crate) fn balance_of(&self, u: &Universe, token: usize, owner: Address) -> U256 {
        let held = self.erc20.get(&(token, owner)).copied().unwrap_or_default();
        if let Some(&p) = u.pool_by_addr.get(&owner) {
            let pool = &u.pools[p];
            if pool.token0 == token {
                return held + self.reserves[p].0;
            }
            if pool.token1 == token {
                return held + self.reserves[p].1;
            }
        }
        held
    }

    pub(crate) fn eth_of(&self, who: Address) -> U256 {
        self.eth.get(&who).copied().unwrap_or_default()
    }

    pub(crate) fn nonce_of(&self, who: Address) -> u64 {
        self.nonces.get(&who).copied().unwrap_or_default()
    }

    pub(super) fn allowance(&self, token: usize, owner: Address, spender: Address) -> U256 {
        self.allowances.get(&(token, owner, spender)).copied().unwrap_or_default()
    }

    pub(super) fn credit(&mut self, token: usize, who: Address, amount: U256) {
        *self.erc20.entry((token, who)).or_default() += amount;
    }

    /// Moves `amount` of `token` from `from` to `to` (an account's own balance, never a pool's
    /// reserve); `false`, nothing moved, when `from` holds less.
    pub(super) fn move_funds(&mut self, token: usize, from: Address, to: Address, amount: U256) -> bool {
        let held = self.erc20.get(&(token, from)).copied().unwrap_or_default();
        if held < amount {
            return false;
        }
        self.erc20.insert((token, from), held - amount);
        self.credit(token, to, amount);
        true
    }
}
