//! The router entry points the mempool decoder reads, as `sol!` bindings (calldata only).
//!
//! Written from the contracts' published interfaces: SwapRouter02 (`@uniswap/swap-router-contracts`
//! `IV2SwapRouter`, `IV3SwapRouter`, `IMulticallExtended`), the V3 SwapRouter's multi-hop calls
//! (`@uniswap/v3-periphery` `ISwapRouter`) and the Universal Router (`@uniswap/universal-router`
//! `IUniversalRouter.execute` and the inputs of its swap commands, `Dispatcher.sol`) and v4-periphery's
//! `V4Router` (`IV4Router` parameter structs, `PathKey`, `Actions.sol`), as `MockV4Router.executeActions`
//! and the Universal Router's `V4_SWAP` command carry them.
#![allow(missing_docs)]

alloy::sol! {
    /// SwapRouter02: V2 entry points (no deadline; `amountIn == 0` swaps the router's balance).
    interface IV2SwapRouter {
        function swapExactTokensForTokens(uint256 amountIn, uint256 amountOutMin, address[] calldata path, address to)
            external payable returns (uint256 amountOut);
        function swapTokensForExactTokens(uint256 amountOut, uint256 amountInMax, address[] calldata path, address to)
            external payable returns (uint256 amountIn);
    }

    /// SwapRouter02: V3 entry points (no deadline in the structs; `amountIn == 0` swaps the
    /// router's balance).
    interface IV3SwapRouter {
        struct ExactInputSingleParams {
            address tokenIn;
            address tokenOut;
            uint24 fee;
            address recipient;
            uint256 amountIn;
            uint256 amountOutMinimum;
            uint160 sqrtPriceLimitX96;
        }
        struct ExactInputParams {
            bytes path;
            address recipient;
            uint256 amountIn;
            uint256 amountOutMinimum;
        }
        struct ExactOutputSingleParams {
            address tokenIn;
            address tokenOut;
            uint24 fee;
            address recipient;
            uint256 amountOut;
            uint256 amountInMaximum;
            uint160 sqrtPriceLimitX96;
        }
        struct ExactOutputParams {
            bytes path;
            address recipient;
            uint256 amountOut;
            uint256 amountInMaximum;
        }
        function exactInputSingle(ExactInputSingleParams calldata params) external payable returns (uint256 amountOut);
        function exactInput(ExactInputParams calldata params) external payable returns (uint256 amountOut);
        function exactOutputSingle(ExactOutputSingleParams calldata params) external payable returns (uint256 amountIn);
        function exactOutput(ExactOutputParams calldata params) external payable returns (uint256 amountIn);
    }

    /// SwapRouter02's multicall wrappers (`IMulticall`, `IMulticallExtended`).
    interface IMulticallExtended {
        function multicall(bytes[] calldata data) external payable returns (bytes[] memory results);
        function multicall(uint256 deadline, bytes[] calldata data) external payable returns (bytes[] memory results);
        function multicall(bytes32 previousBlockhash, bytes[] calldata data) external payable returns (bytes[] memory results);
    }

    /// The V3 SwapRouter's multi-hop entry points (the single-hop ones are in `keel_amm::abi`).
    interface ISwapRouterMultiHop {
        struct ExactInputParams {
            bytes path;
            address recipient;
            uint256 deadline;
            uint256 amountIn;
            uint256 amountOutMinimum;
        }
        struct ExactOutputParams {
            bytes path;
            address recipient;
            uint256 deadline;
            uint256 amountOut;
            uint256 amountInMaximum;
        }
        function exactInput(ExactInputParams calldata params) external payable returns (uint256 amountOut);
        function exactOutput(ExactOutputParams calldata params) external payable returns (uint256 amountIn);
    }

    /// The Universal Router: a command string, one byte per command, and one input per command.
    interface IUniversalRouter {
        function execute(bytes calldata commands, bytes[] calldata inputs, uint256 deadline) external payable;
        function execute(bytes calldata commands, bytes[] calldata inputs) external payable;
    }

    /// Universal Router `V2_SWAP_EXACT_IN` (0x08) input.
    struct UrV2ExactIn { address recipient; uint256 amountIn; uint256 amountOutMin; address[] path; bool payerIsUser; }
    /// Universal Router `V2_SWAP_EXACT_OUT` (0x09) input.
    struct UrV2ExactOut { address recipient; uint256 amountOut; uint256 amountInMax; address[] path; bool payerIsUser; }
    /// Universal Router `V3_SWAP_EXACT_IN` (0x00) input; `path` is packed `token fee token …`.
    struct UrV3ExactIn { address recipient; uint256 amountIn; uint256 amountOutMin; bytes path; bool payerIsUser; }
    /// Universal Router `V3_SWAP_EXACT_OUT` (0x01) input; `path` is packed from the output token back.
    struct UrV3ExactOut { address recipient; uint256 amountOut; uint256 amountInMax; bytes path; bool payerIsUser; }
    /// Universal Router `EXECUTE_SUB_PLAN` (0x21) input.
    struct UrSubPlan { bytes commands; bytes[] inputs; }

    /// A v4-periphery `V4Router` entry point (`MockV4Router`): `params` is a [`V4Plan`].
    interface IV4Router {
        function executeActions(bytes calldata params) external payable;
    }
    /// `abi.encode(bytes actions, bytes[] params)`: what `executeActions` and the Universal Router's
    /// `V4_SWAP` (0x10) input carry, one action byte per parameter.
    struct V4Plan { bytes actions; bytes[] params; }
    /// v4-core `PoolKey`.
    struct V4PoolKey { address currency0; address currency1; uint24 fee; int24 tickSpacing; address hooks; }
    /// `IV4Router.ExactInputSingleParams` (action `SWAP_EXACT_IN_SINGLE`, 0x06).
    struct V4ExactInSingle { V4PoolKey poolKey; bool zeroForOne; uint128 amountIn; uint128 amountOutMinimum; bytes hookData; }
    /// `IV4Router.ExactOutputSingleParams` (action `SWAP_EXACT_OUT_SINGLE`, 0x08).
    struct V4ExactOutSingle { V4PoolKey poolKey; bool zeroForOne; uint128 amountOut; uint128 amountInMaximum; bytes hookData; }
    /// v4-periphery `PathKey`: one hop of a multi-hop path.
    struct V4PathKey { address intermediateCurrency; uint24 fee; int24 tickSpacing; address hooks; bytes hookData; }
    /// `IV4Router.ExactInputParams` (action `SWAP_EXACT_IN`, 0x07).
    struct V4ExactIn { address currencyIn; V4PathKey[] path; uint128 amountIn; uint128 amountOutMinimum; }
    /// `IV4Router.ExactOutputParams` (action `SWAP_EXACT_OUT`, 0x09).
    struct V4ExactOut { address currencyOut; V4PathKey[] path; uint128 amountOut; uint128 amountInMaximum; }
    /// [`V4ExactIn`] with later v4-periphery's per-hop price bounds after the path, as the
    /// Universal Router 2.1 reads it.
    struct V4ExactInPerHop { address currencyIn; V4PathKey[] path; uint256[] maxHopSlippage; uint128 amountIn; uint128 amountOutMinimum; }
    /// [`V4ExactOut`] with the per-hop bounds, as the Universal Router 2.1 reads it.
    struct V4ExactOutPerHop { address currencyOut; V4PathKey[] path; uint256[] maxHopSlippage; uint128 amountOut; uint128 amountInMaximum; }
}
