//! The four fuzz targets, each with its seed corpus and what it runs on one input.
//!
//! | target | runs | seeds |
//! |---|---|---|
//! | `fastpost` | the relay answer parser of the fast path, up to 8 pipelined answers, then the `eth_sendBundle` reply parser on each body | valid answers: `Content-Length`, chunked with extensions and trailers, 100-continue, 204, 5xx, JSON-RPC errors, `Connection: close` |
//! | `binance` | the Binance frame decoder, then the mapping to engine events | every frame of the captured sessions (`feeds/tests/data`, `--corpus`) |
//! | `logs` | up to 8 pool logs through the node feed's `PoolBook` (decode, apply, reorg roll-back), then a quote both ways on each changed pool | `Sync`, V3 `Swap`/`Mint`/`Burn` logs as the contracts emit them |
//! | `calldata` | the mempool decoder on calldata to a router or pool, then the pool after the pending swap and its impact | the six swap calls it decodes, encoded with the real ABI |
//!
//! Structured inputs (logs, calldata) are bytes with a small header, so a crash file replays alone.

use std::path::Path;

use alloy::primitives::aliases::{I24, U24, U112, U160};
use alloy::primitives::{Address, B256, Bytes, I256, LogData, U256};
use alloy::rpc::types::Log;
use alloy::sol_types::{SolCall, SolEvent};
use keel_amm::abi::{ISwapRouter, IUniswapV2Pair, IUniswapV2Router02, IUniswapV3Pool};
use keel_amm::pool::{Pool, SwapAmount};
use keel_amm::v3::{TickInfo, V3Pool};
use keel_feeds::binance::{InstrumentTable, decode, map_decoded};
use keel_feeds::node::{
    Applied, MempoolDecoder, MempoolPool, PendingView, PoolBook, PoolKind, RouterKind, TrackedPool, TxMeta,
    ViewLimits,
};
use keel_router::fastpost::MAX_RESPONSE_BYTES;
use keel_router::fastpost::answer::parse_answer;
use keel_router::relay::parse_send_bundle_response;

use super::mutate::Shape;

/// What a fuzz run exercises.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Target {
    /// The relay answer parser (`router/src/fastpost/answer.rs`) and the reply parser.
    Fastpost,
    /// The Binance frame decoder (`feeds/src/binance`).
    Binance,
    /// The node feed's pool-log decoders and `PoolBook` (`feeds/src/node/book.rs`).
    Logs,
    /// The mempool calldata decoder (`feeds/src/node/mempool.rs`).
    Calldata,
}

impl Target {
    /// Every target.
    pub const ALL: [Target; 4] = [Target::Fastpost, Target::Binance, Target::Logs, Target::Calldata];

    /// The name on the command line.
    pub fn name(self) -> &'static str {
        match self {
            Target::Fastpost => "fastpost",
            Target::Binance => "binance",
            Target::Logs => "logs",
            Target::Calldata => "calldata",
        }
    }

    /// How its inputs are mutated.
    pub fn shape(self) -> Shape {
        match self {
            Target::Fastpost | Target::Binance => Shape::Text,
            Target::Logs => Shape::Abi { header: LOG_HEADER },
            Target::Calldata => Shape::Abi { header: 5 },
        }
    }

    /// Largest input it is given.
    pub fn max_len(self) -> usize {
        match self {
            Target::Fastpost => 16 * 1024,
            Target::Binance => 8 * 1024,
            Target::Logs => 4 * 1024,
            Target::Calldata => 2 * 1024,
        }
    }
}

/// The state a target runs inputs against (built once; each input starts from the same state).
#[derive(Debug)]
pub enum Harness {
    /// Nothing to keep.
    Fastpost,
    /// The symbol table of the captured sessions.
    Binance(InstrumentTable),
    /// A book with one loaded V2 and one loaded V3 pool.
    Logs(PoolBook),
    /// A decoder that knows both routers and both pools, and the same book.
    Calldata(Box<MempoolDecoder>, PoolBook),
}

const V2_POOL: Address = Address::repeat_byte(0x22);
const V3_POOL: Address = Address::repeat_byte(0x33);
const V2_ROUTER: Address = Address::repeat_byte(0x02);
const V3_ROUTER: Address = Address::repeat_byte(0x03);
const SWAP_ROUTER02: Address = Address::repeat_byte(0x06);
const UNIVERSAL_ROUTER: Address = Address::repeat_byte(0x07);
/// A V4 router (`executeActions`) and the `PoolManager` of the one V4 pool.
const V4_ROUTER: Address = Address::repeat_byte(0x08);
const V4_MANAGER: Address = Address::repeat_byte(0x09);
const TOKEN0: Address = Address::repeat_byte(0x10);
const TOKEN1: Address = Address::repeat_byte(0x11);
const V3_FEE: u32 = 3000;
/// Block the book's pools are loaded at; seeds' logs follow it.
const LOADED_AT: u64 = 100;

fn book() -> PoolBook {
    let mut book = PoolBook::new(&[
        TrackedPool { address: V2_POOL, kind: PoolKind::V2, fee: 30, tick_spacing: None, pool_key: None },
        TrackedPool {
            address: V3_POOL,
            kind: PoolKind::V3,
            fee: V3_FEE,
            tick_spacing: Some(60),
            pool_key: None,
        },
    ]);
    let e18 = U256::from(10u64).pow(U256::from(18u64));
    let v2 =
        Pool::V2 { reserve0: e18 * U256::from(1000u64), reserve1: e18 * U256::from(3000u64), fee_bps: 30 };
    let liquidity = 10u128.pow(21);
    let ticks = [
        TickInfo { index: -600, liquidity_net: liquidity as i128 },
        TickInfo { index: 600, liquidity_net: -(liquidity as i128) },
    ];
    // Price 1 (tick 0): sqrtPriceX96 = 2^96.
    let v3 = V3Pool::new(V3_FEE, 60, U256::from(1u8) << 96, 0, liquidity, &ticks).expect("a valid V3 pool");
    book.set_state(0, v2, LOADED_AT, 0);
    book.set_state(1, Pool::V3(v3), LOADED_AT, 0);
    book
}

impl Harness {
    /// The state for `target` (`symbols`: the Binance symbols seen in the corpus).
    pub fn new(target: Target, symbols: &[String]) -> Self {
        match target {
            Target::Fastpost => Harness::Fastpost,
            Target::Binance => {
                let table = InstrumentTable::new(symbols.iter().map(String::as_str))
                    .or_else(|_| InstrumentTable::new(["BTCUSDT", "ETHUSDT"]))
                    .expect("a symbol table");
                Harness::Binance(table)
            }
            Target::Logs => Harness::Logs(book()),
            Target::Calldata => {
                let pools = [
                    MempoolPool {
                        id: 0,
                        address: V2_POOL,
                        kind: PoolKind::V2,
                        token0: TOKEN0,
                        token1: TOKEN1,
                        fee: 30,
                        pool_key: None,
                    },
                    MempoolPool {
                        id: 1,
                        address: V3_POOL,
                        kind: PoolKind::V3,
                        token0: TOKEN0,
                        token1: TOKEN1,
                        fee: V3_FEE,
                        pool_key: None,
                    },
                    MempoolPool {
                        id: 2,
                        address: V4_MANAGER,
                        kind: PoolKind::V4,
                        token0: TOKEN0,
                        token1: TOKEN1,
                        fee: V3_FEE,
                        pool_key: Some(keel_amm::v4::PoolKey {
                            currency0: TOKEN0,
                            currency1: TOKEN1,
                            fee: V3_FEE,
                            tick_spacing: 60,
                            hooks: Address::ZERO,
                        }),
                    },
                ];
                let routers = [
                    (V2_ROUTER, RouterKind::V2Router02),
                    (V3_ROUTER, RouterKind::SwapRouter),
                    (SWAP_ROUTER02, RouterKind::SwapRouter02),
                    (UNIVERSAL_ROUTER, RouterKind::UniversalRouter),
                    (V4_ROUTER, RouterKind::V4Router),
                ];
                Harness::Calldata(Box::new(MempoolDecoder::new(&pools, &routers)), book())
            }
        }
    }

    /// Runs one input. Panics on a broken invariant (that is a finding, like any other panic).
    pub fn run(&self, input: &[u8]) {
        match self {
            Harness::Fastpost => run_fastpost(input),
            Harness::Binance(table) => {
                if let Ok(d) = decode(input) {
                    std::hint::black_box(map_decoded(&d, table, 1));
                }
            }
            Harness::Logs(book) => run_logs(book, input),
            Harness::Calldata(decoder, book) => run_calldata(decoder, book, input),
        }
    }
}

fn run_fastpost(input: &[u8]) {
    let mut at = 0;
    for _ in 0..8 {
        match parse_answer(&input[at..]) {
            Ok(Some(a)) => {
                assert!(
                    a.consumed > 0 && a.consumed <= input.len() - at,
                    "consumed {} of {}",
                    a.consumed,
                    input.len() - at
                );
                assert!(
                    a.body.len() <= MAX_RESPONSE_BYTES,
                    "a body of {} bytes passed the cap",
                    a.body.len()
                );
                std::hint::black_box(parse_send_bundle_response(a.status, &a.body).is_ok());
                at += a.consumed;
            }
            Ok(None) | Err(_) => return,
        }
    }
}

/// Bytes before a log record's topics: flags, block, index, topic count.
const LOG_HEADER: usize = 18;

/// One log record of a `logs` input: `flags` (bits 0-1: pool V2, V3, unknown, V2; bit 2: removed;
/// bit 3: no position), block (u64 LE), index (u64 LE), topic count (mod 5), topics, data length
/// (u16 LE), data.
fn encode_log(flags: u8, block: u64, index: u64, topics: &[B256], data: &[u8]) -> Vec<u8> {
    let mut out = vec![flags];
    out.extend_from_slice(&block.to_le_bytes());
    out.extend_from_slice(&index.to_le_bytes());
    out.push(topics.len() as u8);
    for t in topics {
        out.extend_from_slice(t.as_slice());
    }
    out.extend_from_slice(&(data.len() as u16).to_le_bytes());
    out.extend_from_slice(data);
    out
}

/// Reads one record from the start of `input`: the log and the bytes it took.
fn decode_log(input: &[u8]) -> Option<(Log, usize)> {
    let (&flags, rest) = input.split_first()?;
    let block = u64::from_le_bytes(rest.get(..8)?.try_into().ok()?);
    let index = u64::from_le_bytes(rest.get(8..16)?.try_into().ok()?);
    let n = usize::from(*rest.get(16)?) % 5;
    let mut at = 17;
    let mut topics = Vec::with_capacity(n);
    for _ in 0..n {
        topics.push(B256::from_slice(rest.get(at..at + 32)?));
        at += 32;
    }
    let len = usize::from(u16::from_le_bytes(rest.get(at..at + 2)?.try_into().ok()?));
    at += 2;
    let data = &rest[at..(at + len).min(rest.len())];
    at += data.len();
    let address = match flags & 3 {
        1 => V3_POOL,
        2 => Address::repeat_byte(0x99),
        _ => V2_POOL,
    };
    let positioned = flags & 8 == 0;
    let log = Log {
        inner: alloy::primitives::Log {
            address,
            data: LogData::new_unchecked(topics, Bytes::copy_from_slice(data)),
        },
        block_hash: None,
        block_number: positioned.then_some(block),
        block_timestamp: None,
        transaction_hash: None,
        transaction_index: None,
        log_index: positioned.then_some(index),
        removed: flags & 4 != 0,
    };
    Some((log, 1 + at))
}

fn run_logs(book: &PoolBook, input: &[u8]) {
    let mut book = book.clone();
    let mut at = 0;
    for _ in 0..8 {
        let Some((log, used)) = decode_log(&input[at..]) else { return };
        at += used;
        let block = log.block_number.unwrap_or(0);
        if let Ok(Applied::Updated(u)) = book.apply_log(&log, 0) {
            // The state the router would now quote on.
            if let Some(state) = book.get(u.pool).and_then(|e| e.state.as_ref()) {
                std::hint::black_box(state.mid_price());
                for zero_for_one in [true, false] {
                    let amount = SwapAmount::ExactIn(U256::from(10u64).pow(U256::from(15u64)));
                    std::hint::black_box(state.swap(zero_for_one, amount, None).is_ok());
                }
            }
        }
        book.advance_to(block);
    }
}

fn run_calldata(decoder: &MempoolDecoder, book: &PoolBook, input: &[u8]) {
    let Some((&which, calldata)) = input.split_first() else { return };
    // The seeds' first byte picks 0..=3 (routers and pools); 4 and 5 reach the newer routers.
    let targets =
        [V2_ROUTER, V3_ROUTER, V2_POOL, V3_POOL, SWAP_ROUTER02, UNIVERSAL_ROUTER, Address::repeat_byte(0x99)];
    let to = targets[usize::from(which) % targets.len()];
    let meta = TxMeta { hash: B256::repeat_byte(1), sender: Address::repeat_byte(7), nonce: 0, seen_ns: 1 };
    // A typed error is the decoder refusing malformed calldata: fine. Only a panic is a finding.
    let Ok(Some(tx)) = decoder.decode(to, calldata, meta) else { return };
    let pools: Vec<_> = tx.routes.iter().flat_map(|r| r.hops.iter().filter_map(|h| h.pool)).collect();
    let mut view = PendingView::new(ViewLimits::default());
    view.add(tx);
    for pool in pools {
        std::hint::black_box(view.pending_volume(pool));
        std::hint::black_box(view.impact(book, pool));
    }
}

/// The built-in seeds of `target` (valid inputs), plus `extra` (files or capture lines).
pub fn seeds(target: Target, extra: &[Vec<u8>]) -> Vec<Vec<u8>> {
    let mut out = match target {
        Target::Fastpost => fastpost_seeds(),
        Target::Binance => Vec::new(),
        Target::Logs => log_seeds(),
        Target::Calldata => calldata_seeds(),
    };
    out.extend(extra.iter().cloned());
    out
}

fn fastpost_seeds() -> Vec<Vec<u8>> {
    let hash = format!("{}", B256::repeat_byte(0xab));
    let ok = format!(r#"{{"jsonrpc":"2.0","id":1,"result":{{"bundleHash":"{hash}"}}}}"#);
    let rpc_err = r#"{"jsonrpc":"2.0","id":1,"error":{"code":-32000,"message":"bundle rejected"}}"#;
    let cl = |status: &str, body: &str| {
        format!(
            "HTTP/1.1 {status}\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
            body.len()
        )
    };
    let (a, b) = ok.split_at(17);
    let chunked = format!(
        "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n{:x}\r\n{a}\r\n{:x};ext=1\r\n{b}\r\n0\r\nX-Trailer: t\r\n\r\n",
        a.len(),
        b.len()
    );
    let seeds = [
        cl("200 OK", &ok),
        chunked.clone(),
        format!("HTTP/1.1 100 Continue\r\n\r\n{}", cl("200 OK", &ok)),
        cl("400 Bad Request", rpc_err),
        cl("503 Service Unavailable", "<html>overloaded</html>"),
        cl("429 Too Many Requests", r#"{"error":{"code":-1,"message":"slow down"}}"#),
        format!("{}{}", cl("200 OK", &ok), chunked),
        "HTTP/1.1 204 No Content\r\n\r\n".to_string(),
        format!("HTTP/1.0 200 OK\r\nContent-Length: {}\r\n\r\n{ok}", ok.len()),
        format!("HTTP/1.1 200 OK\r\nConnection: close\r\nContent-Length: {}\r\n\r\n{ok}", ok.len()),
        cl("200 OK", r#"{"jsonrpc":"2.0","id":1,"result":null}"#),
    ];
    seeds.into_iter().map(String::into_bytes).collect()
}

fn log_seeds() -> Vec<Vec<u8>> {
    let sync = |r0: u64, r1: u64| {
        IUniswapV2Pair::Sync { reserve0: U112::from(r0), reserve1: U112::from(r1) }.encode_log_data()
    };
    let swap = |tick: i32, price: U256| {
        IUniswapV3Pool::Swap {
            sender: Address::repeat_byte(5),
            recipient: Address::repeat_byte(6),
            amount0: I256::try_from(1_000_000i64).expect("fits"),
            amount1: I256::try_from(-990_000i64).expect("fits"),
            sqrtPriceX96: U160::from(price),
            liquidity: 10u128.pow(21),
            tick: I24::try_from(tick).expect("fits"),
        }
        .encode_log_data()
    };
    let mint = |lo: i32, hi: i32, amount: u128| {
        IUniswapV3Pool::Mint {
            sender: Address::repeat_byte(5),
            owner: Address::repeat_byte(6),
            tickLower: I24::try_from(lo).expect("fits"),
            tickUpper: I24::try_from(hi).expect("fits"),
            amount,
            amount0: U256::from(1u8),
            amount1: U256::from(1u8),
        }
        .encode_log_data()
    };
    let burn = |lo: i32, hi: i32, amount: u128| {
        IUniswapV3Pool::Burn {
            owner: Address::repeat_byte(6),
            tickLower: I24::try_from(lo).expect("fits"),
            tickUpper: I24::try_from(hi).expect("fits"),
            amount,
            amount0: U256::from(1u8),
            amount1: U256::from(1u8),
        }
        .encode_log_data()
    };
    let rec =
        |flags: u8, block: u64, index: u64, d: &LogData| encode_log(flags, block, index, d.topics(), &d.data);
    let price = (U256::from(1u8) << 96) - U256::from(1_000_000u64);
    let b = LOADED_AT;
    vec![
        rec(0, b + 1, 0, &sync(1_000_000, 3_000_000)),
        [rec(0, b + 1, 0, &sync(10, 20)), rec(0, b + 2, 1, &sync(11, 19)), rec(4, b + 2, 1, &sync(11, 19))]
            .concat(),
        rec(1, b + 1, 3, &swap(-1, price)),
        rec(1, b + 1, 0, &mint(-120, 120, 10u128.pow(18))),
        rec(1, b + 1, 0, &burn(-600, 600, 10u128.pow(18))),
        [
            rec(1, b + 1, 0, &mint(-60, 60, 5)),
            rec(1, b + 2, 0, &swap(-1, price)),
            rec(5, b + 2, 0, &swap(-1, price)),
        ]
        .concat(),
        rec(2, b + 1, 0, &sync(1, 1)),
        rec(8, 0, 0, &sync(1, 1)),
    ]
}

fn calldata_seeds() -> Vec<Vec<u8>> {
    let e18 = U256::from(10u64).pow(U256::from(18u64));
    let with = |to: u8, data: Vec<u8>| [vec![to], data].concat();
    let path = vec![TOKEN0, TOKEN1];
    vec![
        with(
            0,
            IUniswapV2Router02::swapExactTokensForTokensCall {
                amountIn: e18,
                amountOutMin: U256::ZERO,
                path: path.clone(),
                to: Address::repeat_byte(7),
                deadline: U256::from(1u8) << 40,
            }
            .abi_encode(),
        ),
        with(
            0,
            IUniswapV2Router02::swapTokensForExactTokensCall {
                amountOut: e18,
                amountInMax: U256::MAX,
                path: vec![TOKEN1, TOKEN0],
                to: Address::repeat_byte(7),
                deadline: U256::from(1u8) << 40,
            }
            .abi_encode(),
        ),
        with(
            1,
            ISwapRouter::exactInputSingleCall {
                params: ISwapRouter::ExactInputSingleParams {
                    tokenIn: TOKEN0,
                    tokenOut: TOKEN1,
                    fee: U24::from(V3_FEE),
                    recipient: Address::repeat_byte(7),
                    deadline: U256::from(1u8) << 40,
                    amountIn: e18,
                    amountOutMinimum: U256::ZERO,
                    sqrtPriceLimitX96: U160::ZERO,
                },
            }
            .abi_encode(),
        ),
        with(
            1,
            ISwapRouter::exactOutputSingleCall {
                params: ISwapRouter::ExactOutputSingleParams {
                    tokenIn: TOKEN1,
                    tokenOut: TOKEN0,
                    fee: U24::from(V3_FEE),
                    recipient: Address::repeat_byte(7),
                    deadline: U256::from(1u8) << 40,
                    amountOut: e18,
                    amountInMaximum: U256::MAX,
                    sqrtPriceLimitX96: U160::ZERO,
                },
            }
            .abi_encode(),
        ),
        with(
            2,
            IUniswapV2Pair::swapCall {
                amount0Out: U256::ZERO,
                amount1Out: e18,
                to: Address::repeat_byte(7),
                data: Bytes::new(),
            }
            .abi_encode(),
        ),
        with(
            3,
            IUniswapV3Pool::swapCall {
                recipient: Address::repeat_byte(7),
                zeroForOne: true,
                amountSpecified: I256::try_from(10i64.pow(18)).expect("fits"),
                sqrtPriceLimitX96: U160::from(4295128740u64),
                data: Bytes::from_static(b"\x01\x02"),
            }
            .abi_encode(),
        ),
    ]
}

/// Extra seeds from `dir`: each line of a capture (`<time>: <frame>`, as in `feeds/tests/data`) is a
/// frame; any other file is one input. Returns the seeds and the symbols seen in the frames.
pub fn load_corpus(dir: &Path) -> std::io::Result<(Vec<Vec<u8>>, Vec<String>)> {
    let mut seeds = Vec::new();
    let mut symbols: Vec<String> = Vec::new();
    let mut entries: Vec<_> = std::fs::read_dir(dir)?.collect::<Result<_, _>>()?;
    entries.sort_by_key(|e| e.file_name());
    for entry in entries {
        let path = entry.path();
        if !path.is_file() || path.extension().is_some_and(|e| e == "md") {
            continue;
        }
        let bytes = std::fs::read(&path)?;
        let name = path.file_name().and_then(|n| n.to_str()).unwrap_or_default();
        if name.contains(".ws.") {
            let text = String::from_utf8_lossy(&bytes);
            for line in text.lines().skip(1).filter(|l| !l.contains(" <- ")) {
                let Some((_, frame)) = line.split_once(": ") else { continue };
                if let Some(i) = frame.find(r#""stream":""#) {
                    let rest = &frame[i + 10..];
                    if let Some(sym) = rest.split('@').next().filter(|s| s.len() <= 20) {
                        let sym = sym.to_ascii_uppercase();
                        if !symbols.contains(&sym) {
                            symbols.push(sym);
                        }
                    }
                }
                seeds.push(frame.as_bytes().to_vec());
            }
        } else if !name.contains(".http.") {
            seeds.push(bytes);
        }
    }
    Ok((seeds, symbols))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_seed_runs_and_the_structured_ones_decode() {
        for target in Target::ALL {
            let h = Harness::new(target, &[]);
            for s in seeds(target, &[]) {
                h.run(&s);
            }
        }
        // The log seeds are real logs the book applies.
        let mut book = book();
        let (log, used) = decode_log(&log_seeds()[0]).expect("a record");
        assert_eq!(used, log_seeds()[0].len());
        assert!(matches!(book.apply_log(&log, 0), Ok(Applied::Updated(_))));
        // The calldata seeds decode to pending swaps.
        let Harness::Calldata(decoder, _) = Harness::new(Target::Calldata, &[]) else { unreachable!() };
        let to = [V2_ROUTER, V3_ROUTER, V2_POOL, V3_POOL];
        for s in calldata_seeds() {
            let meta = TxMeta { hash: B256::ZERO, sender: Address::ZERO, nonce: 0, seen_ns: 0 };
            assert!(matches!(decoder.decode(to[usize::from(s[0])], &s[1..], meta), Ok(Some(_))));
        }
        // The answer seeds parse.
        for s in fastpost_seeds() {
            assert!(matches!(parse_answer(&s), Ok(Some(_))), "{}", String::from_utf8_lossy(&s));
        }
    }
}
