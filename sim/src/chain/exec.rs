//! Executing one signed transaction on a [`State`]: decoding and recovery, the fee checks, gas,
//! and the effects of the operation ([`super::ops`]).

#[allow(unused_imports)]
use super::*;

/// Gas of a Router02 swap with one hop (measured on anvil: about 98k).
pub const GAS_ROUTER_SWAP: u64 = 98_000;
/// Extra gas per additional hop of a Router02 swap.
pub const GAS_EXTRA_HOP: u64 = 20_000;
/// Gas of an ERC-20 `approve`.
pub const GAS_APPROVE: u64 = 46_000;
/// Gas of an ERC-20 `transfer`.
pub const GAS_TRANSFER: u64 = 51_000;
/// Gas of a plain ETH transfer (or a call to an address without code).
pub const GAS_ETH_TRANSFER: u64 = 21_000;
/// Gas charged for a call to a simulated contract that reverts before doing anything (unknown
/// selector, value sent to a non-payable function).
pub const GAS_BAD_CALL: u64 = 30_000;
/// The block's fee recipient (priority fees are credited to it).
pub const COINBASE: Address = Address::new([0xc0; 20]);

/// Largest reserve a V2 pair can hold (`uint112`).
pub(super) fn max_reserve() -> U256 {
    (U256::from(1u8) << 112) - U256::from(1u8)
}

/// The block a transaction executes in.
#[derive(Debug, Clone, Copy)]
pub(crate) struct ExecEnv {
    pub(crate) timestamp: u64,
    pub(crate) base_fee: u64,
}

/// A transaction that was valid and executed (successfully or reverted).
#[derive(Debug, Clone)]
pub(crate) struct Executed {
    pub(crate) tx: Recovered<TxEnvelope>,
    pub(crate) success: bool,
    pub(crate) gas_used: u64,
    pub(crate) effective_gas_price: u128,
    /// Return data on success, the ABI-encoded `Error(string)` on revert.
    pub(crate) output: Bytes,
    /// The revert reason.
    pub(crate) revert: Option<String>,
}

impl Executed {
    pub(crate) fn hash(&self) -> B256 {
        *self.tx.inner().tx_hash()
    }
    /// Gas fees paid (gas used × effective price), wei.
    pub(crate) fn fees(&self) -> U256 {
        U256::from(self.gas_used) * U256::from(self.effective_gas_price)
    }
}

/// Decodes a raw EIP-2718 transaction (legacy, EIP-2930 or EIP-1559), checks its chain id and recovers
/// its sender.
pub(crate) fn decode_signed_tx(raw: &[u8], chain_id: u64) -> Result<Recovered<TxEnvelope>, String> {
    let env = TxEnvelope::decode_2718_exact(raw).map_err(|e| format!("undecodable transaction: {e}"))?;
    match env.tx_type() {
        TxType::Legacy | TxType::Eip2930 | TxType::Eip1559 => {}
        other => return Err(format!("unsupported transaction type {other}")),
    }
    match env.chain_id() {
        Some(id) if id == chain_id => {}
        Some(id) => return Err(format!("transaction chain id {id}, expected {chain_id}")),
        None => return Err("pre-EIP-155 transaction without chain id".to_owned()),
    }
    let signer = env.recover_signer().map_err(|e| format!("cannot recover the sender: {e}"))?;
    Ok(Recovered::new_unchecked(env, signer))
}

/// Executes a transaction on `st`. `Err` = invalid (not includable; `st` untouched); `Ok` = included,
/// successful or reverted (nonce bumped and gas paid either way).
pub(crate) fn execute(
    u: &Universe,
    st: &mut State,
    env: &ExecEnv,
    tx: &Recovered<TxEnvelope>,
) -> Result<Executed, String> {
    let from = tx.signer();
    let t = tx.inner();
    if t.chain_id() != Some(u.chain_id) {
        return Err(format!("wrong chain id {:?}, expected {}", t.chain_id(), u.chain_id));
    }
    let nonce = st.nonce_of(from);
    if t.nonce() != nonce {
        let rel = if t.nonce() < nonce { "too low" } else { "too high" };
        return Err(format!("nonce {rel}: transaction has {}, account {from} has {nonce}", t.nonce()));
    }
    let max_fee = t.max_fee_per_gas();
    if max_fee < env.base_fee as u128 {
        return Err(format!("max fee per gas {max_fee} is below the block's base fee {}", env.base_fee));
    }
    if let Some(prio) = t.max_priority_fee_per_gas()
        && prio > max_fee
    {
        return Err(format!("max priority fee per gas {prio} is above max fee per gas {max_fee}"));
    }
    let effective = t.effective_gas_price(Some(env.base_fee));
    let upfront = U256::from(t.gas_limit()).saturating_mul(U256::from(max_fee)).saturating_add(t.value());
    let funds = st.eth_of(from);
    if funds < upfront {
        return Err(format!("insufficient funds for gas * price + value: have {funds}, want {upfront}"));
    }
    if t.gas_limit() < GAS_ETH_TRANSFER {
        return Err(format!("intrinsic gas too low: gas limit {} < {GAS_ETH_TRANSFER}", t.gas_limit()));
    }
    if t.gas_limit() > u.gas_limit {
        return Err(format!("gas limit {} exceeds the block gas limit {}", t.gas_limit(), u.gas_limit));
    }
    let (gas_used, result) = match t.kind() {
        TxKind::Create => {
            (GAS_BAD_CALL.min(t.gas_limit()), Err("contract creation is not supported".to_owned()))
        }
        TxKind::Call(to) => {
            let op = Op::decode(u, to, t.value(), t.input());
            let gas = op.gas();
            if t.gas_limit() < gas {
                (t.gas_limit(), Err("out of gas".to_owned()))
            } else {
                (gas, apply_op(u, st, env, from, to, t.value(), &op))
            }
        }
    };
    let fees = U256::from(gas_used) * U256::from(effective);
    *st.eth.entry(from).or_default() -= fees;
    let tip = U256::from(gas_used) * U256::from(effective - env.base_fee as u128);
    *st.eth.entry(COINBASE).or_default() += tip;
    st.nonces.insert(from, nonce + 1);
    let (success, output, revert) = match result {
        Ok(out) => (true, out, None),
        Err(reason) => (false, Revert::from(reason.clone()).abi_encode().into(), Some(reason)),
    };
    Ok(Executed { tx: tx.clone(), success, gas_used, effective_gas_price: effective, output, revert })
}

/// Estimates the gas of a call from `from` (`eth_estimateGas`): the operation's fixed gas, or the
/// revert reason if it would revert on the current state.
pub(crate) fn estimate_gas(
    u: &Universe,
    st: &State,
    env: &ExecEnv,
    from: Address,
    to: Option<Address>,
    value: U256,
    input: &[u8],
) -> Result<u64, String> {
    let Some(to) = to else {
        return Err("contract creation is not supported".to_owned());
    };
    if st.eth_of(from) < value {
        return Err("insufficient funds for transfer".to_owned());
    }
    let op = Op::decode(u, to, value, input);
    let mut scratch = st.clone();
    apply_op(u, &mut scratch, env, from, to, value, &op)?;
    Ok(op.gas())
}
