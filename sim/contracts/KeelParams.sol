// SPDX-License-Identifier: MIT
pragma solidity 0.8.37;

/// @title KeelParams: Keel's on-chain parameter registry.
/// @notice Per portfolio (id = keccak256 of the portfolio's name in Keel's config): target weights
/// in basis points per token address, an absolute drift band in basis points, and a pause flag;
/// plus one global pause flag. Only the owner changes them; every change emits an event and
/// stamps the block that made it. Keel reads everything in one call (`params()`) every block.
/// @dev The contract checks shape (lengths, at most 16 tokens, no duplicate token, weights summing
/// to 10000 unless the list is empty, band at most 10000); Keel checks meaning (the tokens are the
/// portfolio's assets, the portfolio exists) and refuses, logs and counts what does not fit.
contract KeelParams {
    /// Weights and bands are in basis points: 10000 = 1.
    uint16 public constant BPS = 10_000;
    /// Most tokens per portfolio.
    uint256 public constant MAX_TOKENS = 16;

    /// One portfolio's parameters.
    struct Entry {
        /// keccak256 of the portfolio's name.
        bytes32 id;
        /// Tokens with a target (empty: Keel uses its configured targets).
        address[] tokens;
        /// Target weight of each token, basis points, summing to 10000.
        uint16[] weightsBps;
        /// Absolute drift band, basis points (0: Keel uses its configured band).
        uint16 bandBps;
        /// New rebalances of this portfolio stop while set.
        bool paused;
        /// Block of the last change to this entry.
        uint64 changedAt;
    }

    /// Who may change the parameters.
    address public owner;
    /// Every rebalance stops while set.
    bool public globalPaused;
    /// Block of the last change to `globalPaused`.
    uint64 public globalChangedAt;

    Entry[] private entries;
    /// Index + 1 of each id's entry (0: none yet).
    mapping(bytes32 => uint256) private slot;

    event OwnershipTransferred(address indexed previousOwner, address indexed newOwner);
    event TargetsSet(bytes32 indexed id, address[] tokens, uint16[] weightsBps);
    event BandSet(bytes32 indexed id, uint16 bandBps);
    event PortfolioPaused(bytes32 indexed id, bool paused);
    event GlobalPaused(bool paused);

    modifier onlyOwner() {
        require(msg.sender == owner, "KeelParams: not the owner");
        _;
    }

    constructor() {
        owner = msg.sender;
        emit OwnershipTransferred(address(0), msg.sender);
    }

    /// Hands the registry to `newOwner`.
    function transferOwnership(address newOwner) external onlyOwner {
        require(newOwner != address(0), "KeelParams: zero owner");
        emit OwnershipTransferred(owner, newOwner);
        owner = newOwner;
    }

    /// Sets portfolio `id`'s target weights (an empty list hands the targets back to Keel's config).
    function setTargets(bytes32 id, address[] calldata tokens, uint16[] calldata weightsBps)
        external
        onlyOwner
    {
        require(tokens.length == weightsBps.length, "KeelParams: lengths differ");
        require(tokens.length <= MAX_TOKENS, "KeelParams: too many tokens");
        uint256 sum;
        for (uint256 i = 0; i < tokens.length; i++) {
            for (uint256 j = 0; j < i; j++) {
                require(tokens[j] != tokens[i], "KeelParams: duplicate token");
            }
            sum += weightsBps[i];
        }
        require(tokens.length == 0 || sum == BPS, "KeelParams: weights must sum to 10000");
        Entry storage e = entryOf(id);
        e.tokens = tokens;
        e.weightsBps = weightsBps;
        e.changedAt = uint64(block.number);
        emit TargetsSet(id, tokens, weightsBps);
    }

    /// Sets portfolio `id`'s absolute drift band (0 hands it back to Keel's config).
    function setBand(bytes32 id, uint16 bandBps) external onlyOwner {
        require(bandBps <= BPS, "KeelParams: band above 10000");
        Entry storage e = entryOf(id);
        e.bandBps = bandBps;
        e.changedAt = uint64(block.number);
        emit BandSet(id, bandBps);
    }

    /// Pauses or unpauses portfolio `id`.
    function setPaused(bytes32 id, bool paused) external onlyOwner {
        Entry storage e = entryOf(id);
        e.paused = paused;
        e.changedAt = uint64(block.number);
        emit PortfolioPaused(id, paused);
    }

    /// Pauses or unpauses every portfolio.
    function setGlobalPaused(bool paused) external onlyOwner {
        globalPaused = paused;
        globalChangedAt = uint64(block.number);
        emit GlobalPaused(paused);
    }

    /// Everything, in one call: the global pause, the block that last changed it, and every entry.
    function params() external view returns (bool paused, uint64 changedAt, Entry[] memory all) {
        return (globalPaused, globalChangedAt, entries);
    }

    function entryOf(bytes32 id) private returns (Entry storage) {
        uint256 i = slot[id];
        if (i == 0) {
            entries.push();
            i = entries.length;
            slot[id] = i;
            entries[i - 1].id = id;
        }
        return entries[i - 1];
    }
}
