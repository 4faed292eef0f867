//! `sol!` interfaces the harness and the chain tests call beyond [`keel_amm::abi`]: deployment,
//! liquidity and quoting entry points that Keel itself never uses.
#![allow(missing_docs)]
// `sol!` generates one constructor-like builder per function; `addLiquidity` takes eight arguments.
#![allow(clippy::too_many_arguments)]

alloy::sol! {
    /// WETH9.
    #[sol(rpc)]
    interface IWETH9 {
        function deposit() external payable;
        function withdraw(uint256 wad) external;
    }

    /// OpenZeppelin `ERC20PresetMinterPauser`.
    #[sol(rpc)]
    interface IERC20Mintable {
        function mint(address to, uint256 amount) external;
    }

    /// Uniswap V2 factory.
    #[sol(rpc)]
    interface IUniswapV2Factory {
        function getPair(address tokenA, address tokenB) external view returns (address pair);
        function createPair(address tokenA, address tokenB) external returns (address pair);
    }

    /// Uniswap V2 Router02 liquidity entry point.
    #[sol(rpc)]
    interface IUniswapV2Router02Liquidity {
        function addLiquidity(
            address tokenA,
            address tokenB,
            uint256 amountADesired,
            uint256 amountBDesired,
            uint256 amountAMin,
            uint256 amountBMin,
            address to,
            uint256 deadline
        ) external returns (uint256 amountA, uint256 amountB, uint256 liquidity);
    }

    /// Uniswap V3 factory.
    #[sol(rpc)]
    interface IUniswapV3Factory {
        function getPool(address tokenA, address tokenB, uint24 fee) external view returns (address pool);
    }

    /// Uniswap V3 NonfungiblePositionManager (pool creation, minting and burning positions).
    #[sol(rpc)]
    interface INonfungiblePositionManager {
        struct MintParams {
            address token0;
            address token1;
            uint24 fee;
            int24 tickLower;
            int24 tickUpper;
            uint256 amount0Desired;
            uint256 amount1Desired;
            uint256 amount0Min;
            uint256 amount1Min;
            address recipient;
            uint256 deadline;
        }
        struct DecreaseLiquidityParams {
            uint256 tokenId;
            uint128 liquidity;
            uint256 amount0Min;
            uint256 amount1Min;
            uint256 deadline;
        }
        function createAndInitializePoolIfNecessary(address token0, address token1, uint24 fee, uint160 sqrtPriceX96)
            external payable returns (address pool);
        function mint(MintParams calldata params)
            external payable returns (uint256 tokenId, uint128 liquidity, uint256 amount0, uint256 amount1);
        function decreaseLiquidity(DecreaseLiquidityParams calldata params)
            external payable returns (uint256 amount0, uint256 amount1);
        function positions(uint256 tokenId) external view returns (
            uint96 nonce, address operator, address token0, address token1, uint24 fee,
            int24 tickLower, int24 tickUpper, uint128 liquidity,
            uint256 feeGrowthInside0LastX128, uint256 feeGrowthInside1LastX128,
            uint128 tokensOwed0, uint128 tokensOwed1);
    }

    /// Uniswap V3 QuoterV2 (simulates a swap against the pool and reverts with the result).
    #[sol(rpc)]
    interface IQuoterV2 {
        struct QuoteExactInputSingleParams {
            address tokenIn;
            address tokenOut;
            uint256 amountIn;
            uint24 fee;
            uint160 sqrtPriceLimitX96;
        }
        struct QuoteExactOutputSingleParams {
            address tokenIn;
            address tokenOut;
            uint256 amount;
            uint24 fee;
            uint160 sqrtPriceLimitX96;
        }
        function quoteExactInputSingle(QuoteExactInputSingleParams memory params) external returns (
            uint256 amountOut, uint160 sqrtPriceX96After, uint32 initializedTicksCrossed, uint256 gasEstimate);
        function quoteExactOutputSingle(QuoteExactOutputSingleParams memory params) external returns (
            uint256 amountIn, uint160 sqrtPriceX96After, uint32 initializedTicksCrossed, uint256 gasEstimate);
    }
}

alloy::sol! {
    /// Balancer V2 Vault: the entry points the chain tests call (pool registration is done by the
    /// pool's constructor).
    #[sol(rpc)]
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
        struct BatchSwapStep {
            bytes32 poolId;
            uint256 assetInIndex;
            uint256 assetOutIndex;
            uint256 amount;
            bytes userData;
        }
        struct FundManagement {
            address sender;
            bool fromInternalBalance;
            address recipient;
            bool toInternalBalance;
        }
        struct JoinPoolRequest {
            address[] assets;
            uint256[] maxAmountsIn;
            bytes userData;
            bool fromInternalBalance;
        }
        function swap(SingleSwap memory singleSwap, FundManagement memory funds, uint256 limit, uint256 deadline)
            external payable returns (uint256 amountCalculated);
        function queryBatchSwap(SwapKind kind, BatchSwapStep[] memory swaps, address[] memory assets,
            FundManagement memory funds) external returns (int256[] memory assetDeltas);
        function joinPool(bytes32 poolId, address sender, address recipient, JoinPoolRequest memory request)
            external payable;
        function getPoolTokens(bytes32 poolId) external view returns (
            address[] memory tokens, uint256[] memory balances, uint256 lastChangeBlock);
    }

    /// Balancer V2 weighted pool views.
    #[sol(rpc)]
    interface IBalancerWeightedPool {
        function getPoolId() external view returns (bytes32);
        function getNormalizedWeights() external view returns (uint256[] memory);
        function getSwapFeePercentage() external view returns (uint256);
    }

    /// ERC-20 metadata.
    #[sol(rpc)]
    interface IERC20Decimals {
        function decimals() external view returns (uint8);
    }
}

alloy::sol! {
    /// A Uniswap V4 pool key (`PoolKey`).
    struct V4PoolKey {
        address currency0;
        address currency1;
        uint24 fee;
        int24 tickSpacing;
        address hooks;
    }

    /// Uniswap V4 `PoolManager`: pool creation, raw storage reads and its events.
    #[sol(rpc)]
    interface IV4PoolManager {
        event Initialize(bytes32 indexed id, address indexed currency0, address indexed currency1,
            uint24 fee, int24 tickSpacing, address hooks, uint160 sqrtPriceX96, int24 tick);
        event ModifyLiquidity(bytes32 indexed id, address indexed sender, int24 tickLower, int24 tickUpper,
            int256 liquidityDelta, bytes32 salt);
        event Swap(bytes32 indexed id, address indexed sender, int128 amount0, int128 amount1,
            uint160 sqrtPriceX96, uint128 liquidity, int24 tick, uint24 fee);
        function initialize(V4PoolKey memory key, uint160 sqrtPriceX96) external returns (int24 tick);
        function extsload(bytes32 slot) external view returns (bytes32 value);
    }

    /// v4-core's `PoolSwapTest` router.
    #[sol(rpc)]
    interface IV4PoolSwapTest {
        struct SwapParams {
            bool zeroForOne;
            int256 amountSpecified;
            uint160 sqrtPriceLimitX96;
        }
        struct TestSettings {
            bool takeClaims;
            bool settleUsingBurn;
        }
        function swap(V4PoolKey memory key, SwapParams memory params, TestSettings memory testSettings,
            bytes memory hookData) external payable returns (int256 delta);
    }

    /// v4-core's `PoolModifyLiquidityTest` router.
    #[sol(rpc)]
    interface IV4PoolModifyLiquidityTest {
        struct ModifyLiquidityParams {
            int24 tickLower;
            int24 tickUpper;
            int256 liquidityDelta;
            bytes32 salt;
        }
        function modifyLiquidity(V4PoolKey memory key, ModifyLiquidityParams memory params, bytes memory hookData)
            external payable returns (int256 delta);
    }
}

/// Keel's own interfaces ([`keel_amm::abi`]) with provider-bound contract instances
/// (`IERC20::new(address, provider)`), for the devnet and the chain tests.
pub mod rpc {
    #![allow(missing_docs)]
    keel_amm::keel_sol_interfaces!(alloy::sol, #[sol(rpc)]);
}
