//! `keel devnet`: a local chain to try Keel against real contracts. Starts anvil with the real
//! Uniswap V2 and V3 contracts (from the pinned npm packages), Keel's parameter registry
//! (`sim/contracts/KeelParams.sol`, compiled with the pinned solc-js, owned by `dev:0`), the
//! loopback Flashbots relay (which mines a block every `--block-ms`), and a Binance-format quote
//! server; funds a portfolio account; writes the config for `keel run` (with `[registry]`); then
//! keeps a market moving: another account trades TKA on the V2 pool every few seconds, the V3 pool
//! is swapped to the same price, the same trade goes through a Uniswap V4 pool of the same depth (a
//! full-range position, so the same curve as the V2 pair), and the exchange price follows the
//! pools. Keel reaches the V4 pool through the real Universal Router and Permit2.
//!
//! `--chains 2` starts a second anvil beside the first (chain id 1337, its own block interval,
//! `--block-ms-2`), deploys the same V2/V3 contracts there (at the same addresses; the registry and
//! the V4 pool stay on the first chain), funds a second portfolio account on it, moves both markets alike, and writes a `[[chains]]` config: chain
//! `l1` submits bundles through the loopback relay, chain `l2` sends raw transactions to its node
//! (`private_rpc`, as on a rollup without Flashbots); one exchange feed prices both.

use std::fmt::Write as _;
use std::path::Path;
use std::time::{Duration, Instant};

use alloy::network::TransactionBuilder as _;
use alloy::primitives::{Address, U256, aliases::U24, aliases::U160};
use alloy::providers::Provider as _;
use eyre::{Context, eyre};
use keel_amm::v4::PoolKey;
use keel_router::signer::Signer;
use keel_sim::anvil::contracts::IBalancerVault;
use keel_sim::anvil::contracts::rpc::{IERC20, ISwapRouter, IUniswapV2Router02};
use keel_sim::anvil::curve::ICurveStableSwapNG;
use keel_sim::anvil::{
    AnvilChain, AnvilRelay, CurveNgParams, RelayOptions, V4Position, WeightedToken, deploy_balancer_weighted,
    deploy_curve_ng, deploy_v4, dx_to_price, read_ng_pool, seed_curve_ng,
};
use keel_sim::quotes::QuoteServer;

/// Dev key of the portfolio account the devnet funds.
pub(crate) const PORTFOLIO_KEY: usize = 6;
/// Dev key of the parameter registry's owner.
pub(crate) const REGISTRY_OWNER_KEY: usize = 0;
/// Dev key of the portfolio account on the second chain (an account holds one portfolio).
pub(crate) const PORTFOLIO_KEY_2: usize = 7;
/// Dev key of the account that moves the market.
const TRADER_KEY: usize = 3;
/// Tokens funded to the portfolio, each of TKA and TKB.
const FUNDED: u64 = 1_000;

/// Ports of the devnet's three services.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Ports {
    pub(crate) anvil: u16,
    pub(crate) relay: u16,
    pub(crate) quotes: u16,
}

/// The second chain of `keel devnet --chains 2`.
#[derive(Debug, Clone, Copy)]
pub(crate) struct SecondChain {
    /// Its anvil's port.
    pub(crate) port: u16,
    /// Its block interval, ms.
    pub(crate) block_ms: u64,
}

/// Chain id of the second devnet chain (a local chain id on which `dev:` keys are accepted).
pub(crate) const SECOND_CHAIN_ID: u64 = 1337;

fn e18(n: u64) -> U256 {
    U256::from(n) * U256::from(10u64).pow(U256::from(18u64))
}

/// Runs the devnet until Ctrl-C or `duration`.
pub(crate) fn run(
    ports: Ports,
    block_ms: u64,
    move_every_s: u64,
    write: &Path,
    duration: Option<u64>,
    second: Option<SecondChain>,
) -> eyre::Result<()> {
    let rt = crate::io_runtime()?;
    rt.block_on(run_async(ports, block_ms, move_every_s, write, duration, second))
}

async fn run_async(
    ports: Ports,
    block_ms: u64,
    move_every_s: u64,
    write: &Path,
    duration: Option<u64>,
    second: Option<SecondChain>,
) -> eyre::Result<()> {
    eprintln!("starting anvil on 127.0.0.1:{} and deploying Uniswap V2 + V3 (+ V4 after) …", ports.anvil);
    let chain = AnvilChain::start_on(ports.anvil).await.map_err(|e| eyre!("{e}"))?;
    eprintln!("deployed in {:.2} s", chain.deploy_time().as_secs_f64());
    // Before the relay takes over block production: deployed by dev:0 at a fixed nonce, so its
    // address is the same on every fresh devnet.
    let registry = keel_sim::anvil::registry::deploy_keel_params(&chain, REGISTRY_OWNER_KEY)
        .await
        .map_err(|e| eyre!("deploying the parameter registry: {e}"))?;
    eprintln!("parameter registry (KeelParams) at {registry}, owned by dev:{REGISTRY_OWNER_KEY}");
    let relay = AnvilRelay::start_on(
        chain.http_url(),
        RelayOptions { block_interval: Some(Duration::from_millis(block_ms)), ..Default::default() },
        ports.relay,
    )
    .await
    .map_err(|e| eyre!("{e}"))?;
    let a = chain.addresses().clone();
    let tka = a.token("TKA").ok_or_else(|| eyre!("no TKA"))?;
    let tkb = a.token("TKB").ok_or_else(|| eyre!("no TKB"))?;
    let pair = a
        .v2_pairs
        .iter()
        .find(|p| p.name == "TKA/TKB" || p.name == "TKB/TKA")
        .ok_or_else(|| eyre!("no pair"))?
        .clone();
    let pool = a.v3_pools.iter().find(|p| p.name == pair.name).ok_or_else(|| eyre!("no V3 pool"))?.clone();
    let weth_pair =
        a.v2_pairs.iter().find(|p| p.name.contains("WETH")).ok_or_else(|| eyre!("no WETH pair"))?.clone();

    let me = Signer::dev(PORTFOLIO_KEY)?.address();
    let funder = chain.wallet_provider(1);
    for t in [tka, tkb] {
        IERC20::new(t, &funder).transfer(me, e18(FUNDED)).send().await?.get_receipt().await?;
    }
    // The second chain: same deployer, same nonces, so the same addresses; its own chain id and
    // block interval. Its relay only mines blocks (public transactions included): Keel sends to
    // its node directly.
    let l2 = match second {
        Some(sc) => {
            eprintln!("starting a second anvil (chain id {SECOND_CHAIN_ID}) on 127.0.0.1:{} …", sc.port);
            let c2 = AnvilChain::start_with(sc.port, SECOND_CHAIN_ID).await.map_err(|e| eyre!("{e}"))?;
            if c2.addresses().v2_router != a.v2_router || c2.addresses().token("TKA") != Some(tka) {
                return Err(eyre!("the second chain's contracts are not at the first chain's addresses"));
            }
            let miner = AnvilRelay::start_on(
                c2.http_url(),
                RelayOptions {
                    block_interval: Some(Duration::from_millis(sc.block_ms)),
                    ..Default::default()
                },
                0,
            )
            .await
            .map_err(|e| eyre!("{e}"))?;
            let funder2 = c2.wallet_provider(1);
            let me2 = Signer::dev(PORTFOLIO_KEY_2)?.address();
            for t in [tka, tkb] {
                IERC20::new(t, &funder2).transfer(me2, e18(FUNDED)).send().await?.get_receipt().await?;
            }
            Some((c2, miner))
        }
        None => None,
    };
    let (v2, v3) = chain.mids(tka, pair.address, pool.address).await.map_err(|e| eyre!("{e}"))?;
    let quotes =
        QuoteServer::start_on(&[("TKAUSDT", (v2 + v3) / 2.0)], Duration::from_millis(100), ports.quotes)
            .await?;
    // A V4 TKA/TKB pool at the V2 pair's price with a full-range position as deep as the pair.
    let v4 = deploy_v4(&chain).await.map_err(|e| eyre!("{e}"))?;
    let key = PoolKey::hookless(tka, tkb, 3000, 60);
    let p01 = if key.currency0 == tka { v2 } else { 1.0 / v2 };
    let sqrt = U256::from((p01.sqrt() * 2f64.powi(96)) as u128);
    v4.initialize(&chain, &key, sqrt).await.map_err(|e| eyre!("{e}"))?;
    v4.approve_liquidity(&chain, &key, 1).await.map_err(|e| eyre!("{e}"))?;
    let full = (keel_amm::v3::MAX_TICK / 60) * 60;
    let pos = V4Position { tick_lower: -full, tick_upper: full, liquidity: 10i128.pow(22), salt: 0 };
    v4.modify(&chain, &key, 1, pos).await.map_err(|e| eyre!("{e}"))?;
    // Keel swaps on it through the real Universal Router, its approvals on Permit2 (installed
    // from the pinned v4-periphery source); the market moves it through the V4Router.
    let universal_router = v4.deploy_universal_router(&chain).await.map_err(|e| eyre!("{e}"))?;
    // A Balancer V2 weighted 50/50 TKA/TKB pool (0.3% fee) as deep as the pair and at its price:
    // with equal weights its curve is the pair's, so the market's equal trades keep them level.
    let half = U256::from(500_000_000_000_000_000u64);
    let balancer = deploy_balancer_weighted(
        &chain,
        &[
            WeightedToken { token: tka, weight: half, amount: e18(10_000) },
            WeightedToken { token: tkb, weight: half, amount: U256::from((10_000.0 * v2 * 1e18) as u128) },
        ],
        U256::from(3_000_000_000_000_000u64),
        1,
    )
    .await
    .map_err(|e| eyre!("{e}"))?;
    // A Curve StableSwap-NG TKA/TKB pool (A 100, fee 0.04%) pegged at the pair's price (TKA's rate
    // multiplier is the price) and as deep: the market keeps it at the pair's price by trading it
    // there after each move, as an arbitrageur would.
    let one = e18(1);
    let curve_params = CurveNgParams {
        coins: vec![tka, tkb],
        rate_multipliers: vec![U256::from((v2 * 1e18) as u128), one],
        a: 100,
        fee: 4_000_000,
        offpeg_fee_multiplier: 20_000_000_000,
    };
    let curve = deploy_curve_ng(&chain, &curve_params).await.map_err(|e| eyre!("{e}"))?;
    seed_curve_ng(&chain, curve, &[tka, tkb], &[e18(10_000), U256::from((10_000.0 * v2 * 1e18) as u128)], 1)
        .await
        .map_err(|e| eyre!("{e}"))?;

    let sym = |x: Address| {
        if x == tka {
            "TKA"
        } else if x == tkb {
            "TKB"
        } else {
            "WETH"
        }
    };
    let mut cfg = String::new();
    let _ = writeln!(
        cfg,
        "# Keel against a local devnet: `keel devnet` (anvil with the real Uniswap V2/V3/V4, Balancer and"
    );
    let _ = writeln!(
        cfg,
        "# Curve contracts, a loopback Flashbots relay and a quote server), then `keel run --config configs/anvil.toml`."
    );
    let _ = writeln!(
        cfg,
        "# Addresses are deterministic on a fresh devnet; `dev:N` keys are the public anvil test keys.\n"
    );
    let _ = writeln!(cfg, "[engine]\nstale_after_ms = 5000\n");
    let _ = writeln!(cfg, "[feeds.binance]\nurl = \"{}\"\nsymbols = [\"TKAUSDT\"]\n", quotes.url());
    let _ = writeln!(
        cfg,
        "[chain]\nrpc_url = \"{}\"\nws_url = \"{}\"\npoll_ms = 50\n",
        chain.http_url(),
        chain.ws_url()
    );
    let _ = writeln!(
        cfg,
        "[router]\nchain_id = {}\nslippage_bps = 100\nswap_deadline_secs = 300\nbundle_blocks = 10\nmax_pool_deviation = 0.15\n",
        chain.chain_id()
    );
    let _ = writeln!(cfg, "[signers]\nreputation_key = \"dev:9\"\naccounts = [\"dev:{PORTFOLIO_KEY}\"]\n");
    let _ = writeln!(cfg, "[[relays]]\nname = \"anvil-relay\"\nurl = \"{}\"\n", relay.url());
    let _ = writeln!(
        cfg,
        "# Keel's on-chain parameter registry (KeelParams, owner dev:{REGISTRY_OWNER_KEY}): targets, bands and pause per\n# portfolio (id = keccak256 of its name) and a global pause, read every block.\n[registry]\naddress = \"{registry}\"\n"
    );
    let _ = writeln!(
        cfg,
        "[[tokens]]\nsymbol = \"TKA\"\naddress = \"{tka}\"\ndecimals = 18\nprice = {{ symbol = \"TKAUSDT\" }}\n"
    );
    let _ = writeln!(
        cfg,
        "[[tokens]]\nsymbol = \"TKB\"\naddress = \"{tkb}\"\ndecimals = 18\nprice = {{ fixed = 1.0 }}\n"
    );
    let _ = writeln!(
        cfg,
        "[[tokens]]\nsymbol = \"WETH\"\naddress = \"{}\"\ndecimals = 18\nprice = {{ fixed = 2000.0 }}\n",
        a.weth
    );
    let _ = writeln!(
        cfg,
        "[[dexes]]\nname = \"uniswap-v2\"\nkind = \"uniswap_v2\"\nrouter = \"{}\"\nfactory = \"{}\"\n",
        a.v2_router, a.v2_factory
    );
    let _ = writeln!(
        cfg,
        "[[dexes]]\nname = \"uniswap-v3\"\nkind = \"uniswap_v3\"\nrouter = \"{}\"\nfactory = \"{}\"\n",
        a.v3_swap_router, a.v3_factory
    );
    let _ = writeln!(
        cfg,
        "[[dexes]]\nname = \"uniswap-v4\"\nkind = \"uniswap_v4\"\nrouter = \"{}\"   # the Universal Router\nvia = \"universal_router\"   # approvals on Permit2, execute(V4_SWAP)\nfactory = \"{}\"   # the PoolManager\n",
        universal_router, v4.manager
    );
    let _ = writeln!(
        cfg,
        "[[dexes]]\nname = \"balancer\"\nkind = \"balancer_weighted\"\nrouter = \"{}\"   # the Vault\n",
        balancer.vault
    );
    let _ = writeln!(
        cfg,
        "[[dexes]]\nname = \"curve\"\nkind = \"curve_stableswap\"   # no router: each pool is its own swap contract\n"
    );
    for (name, dex, addr, t0, t1, fee) in [
        ("v2-tka-tkb", "uniswap-v2", pair.address, pair.token0, pair.token1, 30),
        ("v3-tka-tkb", "uniswap-v3", pool.address, pool.token0, pool.token1, pool.fee),
        ("v2-weth-tka", "uniswap-v2", weth_pair.address, weth_pair.token0, weth_pair.token1, 30),
    ] {
        let _ = writeln!(
            cfg,
            "[[pools]]\nname = \"{name}\"\ndex = \"{dex}\"\naddress = \"{addr}\"\ntoken0 = \"{}\"\ntoken1 = \"{}\"\nfee = {fee}\n",
            sym(t0),
            sym(t1)
        );
    }
    let _ = writeln!(
        cfg,
        "[[pools]]\nname = \"v4-tka-tkb\"\ndex = \"uniswap-v4\"\naddress = \"{}\"   # the PoolManager\ntoken0 = \"{}\"\ntoken1 = \"{}\"\nfee = 3000\ntick_spacing = 60\n",
        v4.manager,
        sym(key.currency0),
        sym(key.currency1)
    );
    let _ = writeln!(
        cfg,
        "[[pools]]\nname = \"bal-tka-tkb\"\ndex = \"balancer\"\naddress = \"{}\"\ntoken0 = \"{}\"\ntoken1 = \"{}\"\npool_id = \"{}\"\nflavour = \"v1\"   # the April 2021 WeightedPool\n",
        balancer.pool,
        sym(tka.min(tkb)),
        sym(tka.max(tkb)),
        balancer.pool_id
    );
    let _ = writeln!(
        cfg,
        "[[pools]]\nname = \"curve-tka-tkb\"\ndex = \"curve\"\naddress = \"{curve}\"   # StableSwap-NG, coins TKA, TKB\ntoken0 = \"{}\"\ntoken1 = \"{}\"\ncurve_indices = \"uint128\"   # the Vyper 0.4 port's exchange(uint128,uint128,…)\n",
        sym(tka.min(tkb)),
        sym(tka.max(tkb)),
    );
    let _ = writeln!(
        cfg,
        "[[portfolios]]\nname = \"devnet\"\naccount = \"{me}\"   # dev:{PORTFOLIO_KEY}\ntargets = {{ TKA = 0.5, TKB = 0.5 }}\ncooldown_secs = 2.0\nmin_trade_notional = 1.0\ntriggers = [{{ type = \"drift\", abs_band = 0.01 }}]"
    );
    if let Some((c2, _)) = &l2 {
        cfg = two_chain_config(&cfg, &chain, c2);
    }
    std::fs::write(write, &cfg).wrap_err_with(|| format!("writing {}", write.display()))?;
    eprintln!("devnet ready: node {}  relay {}  quotes {}", chain.http_url(), relay.url(), quotes.url());
    eprintln!("portfolio account {me} funded with {FUNDED} TKA + {FUNDED} TKB");
    if let Some((c2, _)) = &l2 {
        eprintln!(
            "second chain (chain id {SECOND_CHAIN_ID}): node {}, account dev:{PORTFOLIO_KEY_2} funded with {FUNDED} TKA + {FUNDED} TKB",
            c2.http_url()
        );
    }
    eprintln!("config written to {} — run: keel run --config {}", write.display(), write.display());

    // Move the market: alternate sells and buys of TKA on both pools (of every chain, alike); the
    // quote follows the first chain's pools.
    let start = Instant::now();
    let mut round: u64 = 0;
    // How long a market transaction may go without a receipt before the next round moves on:
    // five blocks, at least 5 s. The provider reads the pending nonce for every transaction, so
    // one lost (a landing block the relay took back, or a node restart) is replaced by the next round's.
    let receipt_wait = Duration::from_millis(block_ms.saturating_mul(5).max(5_000));
    {
        let trader = chain.wallet_provider(TRADER_KEY);
        for t in [tka, tkb] {
            for spender in [v4.router, balancer.vault, curve] {
                IERC20::new(t, &trader).approve(spender, U256::MAX).send().await?.get_receipt().await?;
            }
        }
    }
    // Listening from here on, so a signal that arrives while a swap is awaited is not lost.
    let shutdown = crate::shutdown_signal();
    tokio::pin!(shutdown);
    loop {
        let wait = tokio::time::sleep(Duration::from_secs(move_every_s.max(1)));
        tokio::select! {
            _ = wait => {}
            _ = &mut shutdown => break,
        }
        if duration.is_some_and(|d| start.elapsed() >= Duration::from_secs(d)) {
            break;
        }
        round += 1;
        let sell_tka = !round.is_multiple_of(4); // drift down three times, then once back up
        let amount = e18(150 + 50 * (round % 3));
        let m = Market { a: &a, tka, tkb, pair: pair.address, pool: &pool, receipt_wait };
        let l1_only = L1Only { v4: (v4.router, &key), balancer: (balancer.vault, balancer.pool_id), curve };
        // A failed read or swap is reported and the market moves again next round: the devnet
        // (and the anvil under it) outlives a slow or refused request.
        let moved: eyre::Result<()> = async {
            move_market(&chain, &m, Some(&l1_only), sell_tka, amount).await?;
            if let Some((c2, _)) = &l2 {
                move_market(c2, &m, None, sell_tka, amount).await?;
            }
            let (v2, v3) = chain.mids(tka, pair.address, pool.address).await.map_err(|e| eyre!("{e}"))?;
            quotes.set_price("TKAUSDT", (v2 + v3) / 2.0);
            let ha = chain.balance_of(tka, me).await.map_err(|e| eyre!("{e}"))?;
            let hb = chain.balance_of(tkb, me).await.map_err(|e| eyre!("{e}"))?;
            let curve_mid = curve_mid(&chain, curve).await?;
            eprintln!(
                "[{:>5.1}s] market {} TKA: pools {v2:.4} / {v3:.4} / {curve_mid:.4} (V2 / V3 / Curve) TKB per TKA | portfolio TKA {:.2} TKB {:.2}",
                start.elapsed().as_secs_f64(),
                if sell_tka { "sold" } else { "bought" },
                f64::from(ha) / 1e18,
                f64::from(hb) / 1e18,
            );
            Ok(())
        }
        .await;
        if let Err(e) = moved {
            eprintln!("market round {round} failed: {e}");
        }
    }
    relay.shutdown().await.map_err(|e| eyre!("{e}"))?;
    if let Some((_, miner)) = l2 {
        miner.shutdown().await.map_err(|e| eyre!("{e}"))?;
    }
    Ok(())
}

/// The pools of the first chain only: the V4 router and pool, the Balancer Vault and pool id, the
/// Curve pool (coins TKA, TKB).
struct L1Only<'a> {
    v4: (Address, &'a PoolKey),
    balancer: (Address, alloy::primitives::B256),
    curve: Address,
}

/// What a market move trades on one chain (the same addresses on every devnet chain).
struct Market<'a> {
    a: &'a keel_sim::anvil::ChainAddresses,
    tka: Address,
    tkb: Address,
    pair: Address,
    pool: &'a keel_sim::anvil::V3PoolInfo,
    /// How long a market transaction may wait for its receipt.
    receipt_wait: Duration,
}

/// One market move on `chain`: `amount` of TKA sold (or TKB, to buy TKA back) on the V2 pool and,
/// on the first chain, on the V4 and Balancer pools too; then the V3 pool (and on the first chain
/// the Curve pool) swapped to the V2 pool's new price.
async fn move_market(
    chain: &AnvilChain,
    m: &Market<'_>,
    l1_only: Option<&L1Only<'_>>,
    sell_tka: bool,
    amount: U256,
) -> eyre::Result<()> {
    let trader = chain.wallet_provider(TRADER_KEY);
    let trader_addr = chain.address(TRADER_KEY);
    let deadline = U256::from(4_000_000_000u64);
    let (tin, tout) = if sell_tka { (m.tka, m.tkb) } else { (m.tkb, m.tka) };
    let v2_swap = IUniswapV2Router02::new(m.a.v2_router, &trader)
        .swapExactTokensForTokens(amount, U256::ZERO, vec![tin, tout], trader_addr, deadline)
        .send()
        .await;
    match v2_swap {
        Ok(p) => await_move(p, "market move", m.receipt_wait).await,
        Err(e) => eprintln!("market move failed: {e}"),
    }
    if let Some(&L1Only { v4: (router, key), balancer: (vault, pool_id), .. }) = l1_only {
        // The V4 pool takes the same trade (same depth and curve, so it keeps the same price).
        let input = keel_router::exec::v4_exact_in_single(key, tin == key.currency0, amount.to::<u128>(), 0);
        let tx = alloy::rpc::types::TransactionRequest::default()
            .with_to(router)
            .with_input(alloy::primitives::Bytes::from(input))
            .with_gas_limit(1_000_000);
        match trader.send_transaction(tx).await {
            Ok(p) => await_move(p, "market move on the V4 pool", m.receipt_wait).await,
            Err(e) => eprintln!("market move on the V4 pool failed: {e}"),
        }
        // The Balancer pool too (equal weights, the pair's depth: the same trade, the same price).
        let single = IBalancerVault::SingleSwap {
            poolId: pool_id,
            kind: IBalancerVault::SwapKind::GIVEN_IN,
            assetIn: tin,
            assetOut: tout,
            amount,
            userData: alloy::primitives::Bytes::new(),
        };
        let funds = IBalancerVault::FundManagement {
            sender: trader_addr,
            fromInternalBalance: false,
            recipient: trader_addr,
            toInternalBalance: false,
        };
        match IBalancerVault::new(vault, &trader).swap(single, funds, U256::ZERO, deadline).send().await {
            Ok(p) => await_move(p, "market move on the Balancer pool", m.receipt_wait).await,
            Err(e) => eprintln!("market move on the Balancer pool failed: {e}"),
        }
    }
    // The V3 pool follows: swap on it up to the V2 pool's new price (a price-limited swap), so
    // the two pools never drift apart as they would with no arbitrageur between them.
    let (v2, v3) = chain.mids(m.tka, m.pair, m.pool.address).await.map_err(|e| eyre!("{e}"))?;
    if (v3 / v2 - 1.0).abs() > 1e-4 {
        let (tin, tout) = if v3 > v2 { (m.tka, m.tkb) } else { (m.tkb, m.tka) };
        // V3 prices are token1 per token0.
        let p = if m.pool.token0 == m.tka { v2 } else { 1.0 / v2 };
        let limit = U160::from((p.sqrt() * 2f64.powi(96)) as u128);
        let params = ISwapRouter::ExactInputSingleParams {
            tokenIn: tin,
            tokenOut: tout,
            fee: U24::from(m.pool.fee),
            recipient: trader_addr,
            deadline,
            amountIn: amount * U256::from(4u8),
            amountOutMinimum: U256::ZERO,
            sqrtPriceLimitX96: limit,
        };
        match ISwapRouter::new(m.a.v3_swap_router, &trader).exactInputSingle(params).send().await {
            Ok(p) => await_move(p, "aligning the V3 pool", m.receipt_wait).await,
            Err(e) => eprintln!("aligning the V3 pool failed: {e}"),
        }
    }
    if let Some(l1) = l1_only {
        align_curve(chain, l1.curve, v2, m.receipt_wait).await?;
    }
    Ok(())
}

/// The Curve pool's (coins TKA, TKB) mid price, TKB per TKA.
async fn curve_mid(chain: &AnvilChain, curve: Address) -> eyre::Result<f64> {
    let pool = read_ng_pool(chain.provider(), curve).await.map_err(|e| eyre!("{e}"))?;
    let pair = keel_amm::pool::CurvePair::new(pool, 0, 1, 0).map_err(|e| eyre!("{e}"))?;
    Ok(keel_amm::pool::Pool::Curve(Box::new(pair)).mid_price())
}

/// Trades the Curve pool (coins TKA, TKB) to `price` TKB per TKA, as an arbitrageur would: the
/// amount that moves its mid there, by Keel's exact math on the pool's state.
async fn align_curve(
    chain: &AnvilChain,
    curve: Address,
    price: f64,
    receipt_wait: Duration,
) -> eyre::Result<()> {
    let pool = read_ng_pool(chain.provider(), curve).await.map_err(|e| eyre!("{e}"))?;
    // TKA (coin 0) too dear: sell TKA; too cheap: sell TKB (coin 1) down to the inverse price.
    let (i, j, dx) = match dx_to_price(&pool, 0, 1, price) {
        dx if !dx.is_zero() => (0u128, 1u128, dx),
        _ => (1, 0, dx_to_price(&pool, 1, 0, 1.0 / price)),
    };
    if dx.is_zero() {
        return Ok(());
    }
    let trader = chain.wallet_provider(TRADER_KEY);
    match ICurveStableSwapNG::new(curve, &trader).exchange(i, j, dx, U256::ZERO).send().await {
        Ok(p) => await_move(p, "aligning the Curve pool", receipt_wait).await,
        Err(e) => eprintln!("aligning the Curve pool failed: {e}"),
    }
    Ok(())
}

/// The `[[chains]]` form of the single-chain `cfg` (as the devnet writes it): chain `l1` (the first
/// anvil, bundles through the relay) and chain `l2` (the second, raw transactions to its node),
/// each with its own copy of the pools and one portfolio.
fn two_chain_config(cfg: &str, l1: &AnvilChain, l2: &AnvilChain) -> String {
    let mut out = String::new();
    let mut pools = String::new();
    let mut l1_only = String::new();
    let mut portfolio = String::new();
    let mut section = "";
    // Split the single-chain text into its sections; the [chain] section becomes [[chains]].
    for block in cfg.split("\n\n") {
        let head = block.lines().find(|l| !l.starts_with('#')).unwrap_or("");
        section = match head {
            "[chain]" => "chain",
            "[[pools]]" => "pools",
            "[[portfolios]]" => "portfolios",
            _ if head.starts_with('[') => "other",
            _ => section,
        };
        match section {
            "chain" => {}
            // The V4, Balancer and Curve pools are on the first chain only.
            "pools"
                if block.contains("dex = \"uniswap-v4\"")
                    || block.contains("dex = \"balancer\"")
                    || block.contains("dex = \"curve\"") =>
            {
                l1_only.push_str(&format!("{block}\n\n"))
            }
            "pools" => {
                pools.push_str(block);
                pools.push_str("\n\n");
            }
            "portfolios" => portfolio.push_str(block),
            _ => {
                out.push_str(block);
                out.push_str("\n\n");
            }
        }
    }
    let out = out
        .replacen(
            "# Keel against a local devnet: `keel devnet`",
            "# Keel against a two-chain devnet: `keel devnet --chains 2`",
            1,
        )
        .replacen("configs/anvil.toml", "configs/anvil-2chains.toml", 1);
    let names = |prefix: &str| -> Vec<String> {
        pools
            .lines()
            .filter_map(|l| l.strip_prefix("name = \""))
            .map(|n| format!("\"{prefix}{}", n))
            .collect()
    };
    let mut out = out;
    let _ = writeln!(
        out,
        "[[chains]]\nname = \"l1\"\nchain_id = {}\nrpc_url = \"{}\"\nws_url = \"{}\"\npoll_ms = 50\nrelays = [\"anvil-relay\"]\npools = [{}]\n",
        l1.chain_id(),
        l1.http_url(),
        l1.ws_url(),
        names("")
            .into_iter()
            .chain(l1_only.lines().filter_map(|l| l.strip_prefix("name = \"")).map(|n| format!("\"{n}")))
            .collect::<Vec<_>>()
            .join(", ")
    );
    let _ = writeln!(
        out,
        "[[chains]]\nname = \"l2\"\nchain_id = {}\nrpc_url = \"{}\"\nws_url = \"{}\"\npoll_ms = 50\nprivate_rpc = \"{}\"\naccounts = [\"dev:{PORTFOLIO_KEY_2}\"]\npools = [{}]\n",
        l2.chain_id(),
        l2.http_url(),
        l2.ws_url(),
        l2.http_url(),
        names("l2-").join(", ")
    );
    out.push_str(&pools);
    out.push_str(&l1_only);
    out.push_str(&pools.replace("name = \"", "name = \"l2-"));
    let _ = writeln!(out, "{}\nchain = \"l1\"\n", portfolio.trim_end());
    let me = Signer::dev(PORTFOLIO_KEY).map(|s| s.address().to_string()).unwrap_or_default();
    let me2 = Signer::dev(PORTFOLIO_KEY_2).map(|s| s.address().to_string()).unwrap_or_default();
    let _ = writeln!(
        out,
        "{}\nchain = \"l2\"",
        portfolio.trim_end().replacen("name = \"devnet\"", "name = \"devnet-l2\"", 1).replacen(
            &format!("\"{me}\"   # dev:{PORTFOLIO_KEY}"),
            &format!("\"{me2}\"   # dev:{PORTFOLIO_KEY_2}"),
            1
        )
    );
    out
}

/// Waits at most `wait` for a market-moving transaction's receipt; a timeout or an error is
/// reported, not fatal, so one lost transaction never stops the market.
async fn await_move<N: alloy::network::Network>(
    pending: alloy::providers::PendingTransactionBuilder<N>,
    what: &str,
    wait: Duration,
) {
    match tokio::time::timeout(wait, pending.get_receipt()).await {
        Ok(Ok(_)) => {}
        Ok(Err(e)) => eprintln!("{what}: no receipt: {e}"),
        Err(_) => eprintln!("{what}: not mined within {wait:?}; moving on"),
    }
}
