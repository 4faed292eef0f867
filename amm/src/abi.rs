//! Solidity interfaces Keel calls, as alloy `sol!` bindings. The simulated relay decodes calldata
//! with these same bindings, so both sides agree on the wire format by construction.
//!
//! The interfaces are written once, in [`keel_sol_interfaces!`]: this module expands them with
//! plain `sol!` (calldata, returns and events only: no provider code), and a crate that wants
//! provider-bound contract instances expands the same text with `#[sol(rpc)]`, e.g.
//! `keel_amm::keel_sol_interfaces!(alloy::sol, #[sol(rpc)]);`.
#![allow(missing_docs)]
// `sol!` generates one constructor per event; the PoolManager's `Swap` has eight fields.
#![allow(clippy::too_many_arguments)]

/// Expands Keel's Solidity interfaces with the `sol!` macro named first and the attributes that
/// follow it on every interface (see the module documentation).
#[macro_export]
macro_rules! keel_sol_interfaces {
    ($($sol:ident)::+ $(, #[$attr:meta])* $(,)?) => {
        $($sol)::+! {
        /// Uniswap V2 Router02 (the swap entry points Keel uses).
        $(#[$attr])*
        interface IUniswapV2Router02 {
            function swapExactTokensForTokens(
                uint256 amountIn,
                uint256 amountOutMin,
                address[] calldata path,
                address to,
                uint256 deadline
            ) external returns (uint256[] memory amounts);

            function swapTokensForExactTokens(
                uint256 amountOut,
                uint256 amountInMax,
                address[] calldata path,
                address to,
                uint256 deadline
            ) external returns (uint256[] memory amounts);

            function getAmountsOut(uint256 amountIn, address[] calldata path)
                external view returns (uint256[] memory amounts);
        }

        /// Uniswap V2 pair (state reads and events).
        $(#[$attr])*
        interface IUniswapV2Pair {
            function getReserves() external view returns (uint112 reserve0, uint112 reserve1, uint32 blockTimestampLast);
            function token0() external view returns (address);
            function token1() external view returns (address);
            function swap(uint256 amount0Out, uint256 amount1Out, address to, bytes calldata data) external;
            event Sync(uint112 reserve0, uint112 reserve1);
            event Swap(address indexed sender, uint256 amount0In, uint256 amount1In, uint256 amount0Out, uint256 amount1Out, address indexed to);
        }

        /// Uniswap V3 SwapRouter (periphery).
        $(#[$attr])*
        interface ISwapRouter {
            struct ExactInputSingleParams {
                address tokenIn;
                address tokenOut;
                uint24 fee;
                address recipient;
                uint256 deadline;
                uint256 amountIn;
                uint256 amountOutMinimum;
                uint160 sqrtPriceLimitX96;
            }
            struct ExactOutputSingleParams {
                address tokenIn;
                address tokenOut;
                uint24 fee;
                address recipient;
                uint256 deadline;
                uint256 amountOut;
                uint256 amountInMaximum;
                uint160 sqrtPriceLimitX96;
            }
            struct ExactInputParams {
                bytes path;
                address recipient;
                uint256 deadline;
                uint256 amountIn;
                uint256 amountOutMinimum;
            }
            function exactInputSingle(ExactInputSingleParams calldata params) external payable returns (uint256 amountOut);
            function exactOutputSingle(ExactOutputSingleParams calldata params) external payable returns (uint256 amountIn);
            function exactInput(ExactInputParams calldata params) external payable returns (uint256 amountOut);
        }

        /// Uniswap V3 pool (state reads and events).
        $(#[$attr])*
        interface IUniswapV3Pool {
            function slot0() external view returns (uint160 sqrtPriceX96, int24 tick, uint16 observationIndex, uint16 observationCardinality, uint16 observationCardinalityNext, uint8 feeProtocol, bool unlocked);
            function liquidity() external view returns (uint128);
            function fee() external view returns (uint24);
            function tickSpacing() external view returns (int24);
            function token0() external view returns (address);
            function token1() external view returns (address);
            function tickBitmap(int16 wordPosition) external view returns (uint256);
            function ticks(int24 tick) external view returns (uint128 liquidityGross, int128 liquidityNet, uint256 feeGrowthOutside0X128, uint256 feeGrowthOutside1X128, int56 tickCumulativeOutside, uint160 secondsPerLiquidityOutsideX128, uint32 secondsOutside, bool initialized);
            function swap(address recipient, bool zeroForOne, int256 amountSpecified, uint160 sqrtPriceLimitX96, bytes calldata data) external returns (int256 amount0, int256 amount1);
            event Swap(address indexed sender, address indexed recipient, int256 amount0, int256 amount1, uint160 sqrtPriceX96, uint128 liquidity, int24 tick);
            event Mint(address sender, address indexed owner, int24 indexed tickLower, int24 indexed tickUpper, uint128 amount, uint256 amount0, uint256 amount1);
            event Burn(address indexed owner, int24 indexed tickLower, int24 indexed tickUpper, uint128 amount, uint256 amount0, uint256 amount1);
        }

        /// ERC-20.
        $(#[$attr])*
        interface IERC20 {
            function balanceOf(address owner) external view returns (uint256);
            function allowance(address owner, address spender) external view returns (uint256);
            function approve(address spender, uint256 amount) external returns (bool);
            function transfer(address to, uint256 amount) external returns (bool);
            function decimals() external view returns (uint8);
            event Transfer(address indexed from, address indexed to, uint256 value);
        }

        /// Balancer V2 Vault: single swaps and pool balances.
        $(#[$attr])*
        interface IBalancerVault {
            enum SwapKind { GIVEN_IN, GIVEN_OUT }
            struct SingleSwap {
                bytes32 poolId;
                SwapKind kind;
                address assetIn;
                address assetOut;
                uint256 amount;
                bytes userData;
            }
            struct FundManagement {
                address sender;
                bool fromInternalBalance;
                address recipient;
                bool toInternalBalance;
            }
            function swap(SingleSwap memory singleSwap, FundManagement memory funds, uint256 limit, uint256 deadline)
                external payable returns (uint256 amountCalculated);
            function getPoolTokens(bytes32 poolId)
                external view returns (address[] memory tokens, uint256[] memory balances, uint256 lastChangeBlock);
            event Swap(bytes32 indexed poolId, address indexed tokenIn, address indexed tokenOut, uint256 amountIn, uint256 amountOut);
        }

        /// Uniswap V4 `PoolManager`: raw storage reads (`extsload`, the pool state of
        /// `StateLibrary`) and the pool events Keel follows.
        $(#[$attr])*
        interface IPoolManager {
            function extsload(bytes32[] calldata slots) external view returns (bytes32[] memory values);
            event ModifyLiquidity(bytes32 indexed id, address indexed sender, int24 tickLower, int24 tickUpper, int256 liquidityDelta, bytes32 salt);
            event Swap(bytes32 indexed id, address indexed sender, int128 amount0, int128 amount1, uint160 sqrtPriceX96, uint128 liquidity, int24 tick, uint24 fee);
            event ProtocolFeeUpdated(bytes32 indexed id, uint24 protocolFee);
        }

        /// v4-periphery's `V4Router` actions (`Actions.sol`) as a router contract exposes them:
        /// `executeActions(abi.encode(bytes actions, bytes[] params))` (v4-periphery's
        /// `MockV4Router`); the Universal Router wraps the same payload in its `V4_SWAP` command.
        $(#[$attr])*
        interface IV4Router {
            struct PoolKey {
                address currency0;
                address currency1;
                uint24 fee;
                int24 tickSpacing;
                address hooks;
            }
            struct ExactInputSingleParams {
                PoolKey poolKey;
                bool zeroForOne;
                uint128 amountIn;
                uint128 amountOutMinimum;
                bytes hookData;
            }
            /// One hop of a multi-hop path: the currency it pays out and its pool's key fields.
            struct PathKey {
                address intermediateCurrency;
                uint24 fee;
                int24 tickSpacing;
                address hooks;
                bytes hookData;
            }
            /// Action `SWAP_EXACT_IN` (0x07): exact input along `path`, as v4-periphery 1.0's
            /// `V4Router` (and `MockV4Router`) reads it.
            struct ExactInputParams {
                address currencyIn;
                PathKey[] path;
                uint128 amountIn;
                uint128 amountOutMinimum;
            }
            /// The same with later v4-periphery's per-hop price bounds (`maxHopSlippage`, empty for
            /// none), as the Universal Router 2.1 reads it (it knows `InvalidHopSlippageLength`).
            struct ExactInputParamsPerHop {
                address currencyIn;
                PathKey[] path;
                uint256[] maxHopSlippage;
                uint128 amountIn;
                uint128 amountOutMinimum;
            }
            function executeActions(bytes calldata params) external payable;
        }

        /// The Universal Router's entry point.
        $(#[$attr])*
        interface IUniversalRouter {
            function execute(bytes calldata commands, bytes[] calldata inputs, uint256 deadline) external payable;
        }

        /// Uniswap's Permit2, allowance-transfer half: the owner lets `spender` (a Universal
        /// Router) move up to `amount` of `token` until `expiration` (the owner must also have
        /// approved Permit2 itself as an ERC-20 spender).
        $(#[$attr])*
        interface IPermit2 {
            function approve(address token, address spender, uint160 amount, uint48 expiration) external;
            function allowance(address user, address token, address spender)
                external view returns (uint160 amount, uint48 expiration, uint48 nonce);
        }

        /// Balancer V2 weighted pool (state reads).
        $(#[$attr])*
        interface IBalancerWeightedPool {
            function getPoolId() external view returns (bytes32);
            function getNormalizedWeights() external view returns (uint256[] memory);
            function getSwapFeePercentage() external view returns (uint256);
        }

        /// Curve StableSwap-NG plain pool: swaps and the state reads that quote it (mainnet's
        /// `exchange` takes `int128` coin indices).
        $(#[$attr])*
        interface ICurveStableSwap {
            function exchange(int128 i, int128 j, uint256 dx, uint256 min_dy) external returns (uint256);
            function N_COINS() external view returns (uint256);
            function coins(uint256 i) external view returns (address);
            function get_balances() external view returns (uint256[] memory);
            function stored_rates() external view returns (uint256[] memory);
            function initial_A() external view returns (uint256);
            function future_A() external view returns (uint256);
            function initial_A_time() external view returns (uint256);
            function future_A_time() external view returns (uint256);
            function fee() external view returns (uint256);
            function offpeg_fee_multiplier() external view returns (uint256);
            function admin_fee() external view returns (uint256);
        }

        /// The Vyper 0.4 port of StableSwap-NG, whose `exchange` takes `uint128` coin indices.
        $(#[$attr])*
        interface ICurveStableSwapU128 {
            function exchange(uint128 i, uint128 j, uint256 dx, uint256 min_dy) external returns (uint256);
        }

        /// Keel's parameter registry (`sim/contracts/KeelParams.sol`): per portfolio (id =
        /// keccak256 of its name) target weights in basis points per token, an absolute band in
        /// basis points and a pause flag; a global pause; owner-only setters.
        $(#[$attr])*
        interface IKeelParams {
            struct Entry {
                bytes32 id;
                address[] tokens;
                uint16[] weightsBps;
                uint16 bandBps;
                bool paused;
                uint64 changedAt;
            }
            function owner() external view returns (address);
            function params() external view returns (bool paused, uint64 changedAt, Entry[] memory all);
            function setTargets(bytes32 id, address[] calldata tokens, uint16[] calldata weightsBps) external;
            function setBand(bytes32 id, uint16 bandBps) external;
            function setPaused(bytes32 id, bool paused) external;
            function setGlobalPaused(bool paused) external;
            function transferOwnership(address newOwner) external;
            event TargetsSet(bytes32 indexed id, address[] tokens, uint16[] weightsBps);
            event BandSet(bytes32 indexed id, uint16 bandBps);
            event PortfolioPaused(bytes32 indexed id, bool paused);
            event GlobalPaused(bool paused);
        }
    }
    };
}

keel_sol_interfaces!(alloy_sol_types::sol);

/// Permit2's canonical address (the same on every chain: deployed with CREATE2 from a fixed
/// deployer and salt). Universal Router swaps pay through it.
pub const PERMIT2_ADDRESS: alloy_primitives::Address =
    alloy_primitives::address!("000000000022D473030F116dDEE9F6B43aC78BA3");
