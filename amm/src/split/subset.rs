//! Which paths a split uses: the best subset of the live paths after gas, by branch and bound
//! with a bound that proves every pruned subset no better than the best one found.
//!
//! # Objective
//! Exact input (order `X`), for a set of paths `T`:
//! `Net(T) = max{Σ_T f_i(x_i) : Σ_T x_i = X, x ≥ 0} − Σ_T g_i`, with `f_i` path `i`'s output (concave,
//! see the parent module) and `g_i` its gas cost in the bought token. Exact output (order `Y`) is
//! the same with `Σ_T y_i = Y`, the objective `−Σ_T x_i(y_i)` and the gas converted into the sold
//! token. The search reads only the paths' [`Curves`] (their no-gas water-filling) and gas: all in
//! floats; the parent module then allocates the chosen set in integers and evaluates it exactly.
//!
//! # The bound
//! Let `h_i(λ) = max_{0 ≤ x ≤ X} (f_i(x) − λ·x) ≥ 0`, path `i`'s *surplus* over paying the marginal
//! rate λ for all it carries (no path carries more than `X`). For any `λ ≥ 0` and any allocation of
//! `T`: `Σ_T f_i(x_i) = λX + Σ_T (f_i(x_i) − λx_i) ≤ λX + Σ_T h_i(λ)` (weak Lagrangian duality). A
//! *node* of the search is the family of subsets `T` with `I ⊆ T ⊆ U` (`U` its set, `I` the paths
//! it may no longer drop). For every `T` of the node:
//!
//! `Net(T) ≤ λX + Σ_I (h_i(λ) − g_i) + Σ_{U∖I} max(0, h_i(λ) − g_i)`,
//!
//! taking each undecided path only where it pays. At `λ = λ_U` (the water-filling level of `U`
//! without gas) every path of `U` sits at the maximiser of `f_i(x) − λ_U·x` (concavity: a path that
//! carries is at marginal rate `λ_U`, one whose spot rate is below `λ_U` carries nothing and has
//! `h_i = 0`, one that ran dry carries its capacity, past which `f_i` is flat) and `Σ_U x_i = X`,
//! so `λ_U·X + Σ_U h_i(λ_U) = V(U)`, `U`'s best output without gas, and the bound reads
//!
//! `Net(T) ≤ V(U) − Σ_I g_i − Σ_{U∖I} min(g_i, h_i(λ_U))`.     (B)
//!
//! It equals `Net(U)` when `I = U`. One solve of `U` (its level and each path's surplus there)
//! therefore bounds the whole node, and also each child before the child is solved: the child that
//! drops `j ∈ U∖I` and fixes the undecided paths before `j` in the search order (`I'`, leaving `F'`
//! undecided) holds subsets of `U` only, so (B) at `λ_U` with `j` left out gives
//! `V(U) − h_j(λ_U) − Σ_{I'} g_i − Σ_{F'} min(g_i, h_i(λ_U))`. A set that cannot fill the order has
//! no subset that can, so an infeasible node is dropped whole. Exact output is the same with
//! `h_i(λ) = max_{0 ≤ y ≤ Y} (y/λ − x_i(y))`, so that `−Y/λ_U + Σ_U h_i(λ_U) = −Σ_U x_i`.
//!
//! # Why the search is exact
//! The children of a node partition its subsets other than `U` itself (the child at position `p`
//! holds those whose first dropped path, in the search order, is the one at `p`), so every
//! non-empty subset of the live paths is the set `U` of exactly one node of the tree. A node and
//! its descendants (all subsets of it) are skipped only when a bound (B) on them, at its parent's
//! level before its solve or at its own level after it, is at most the value of the best subset
//! found so far (the incumbent, seeded with the best single path), so no skipped subset can beat
//! the result; ties keep the earlier subset. A subset's value charges gas only for the paths that
//! carry at least one unit: that is the full-gas net of a smaller subset, so it is attainable. With
//! at most [`EXHAUSTIVE_PATHS`](super::EXHAUSTIVE_PATHS) live paths there are at most
//! `2⁸ − 1 = 255` subsets, fewer than [`MAX_SUBSET_SOLVES`], so the search always completes and
//! proves its answer; above that it stops after [`MAX_SUBSET_SOLVES`] solves with the best subset
//! seen. The only slack is the float model's resolution (one ulp of the level is about 1e-16 of
//! the paths' virtual reserves; a V3 ladder adds about 1e-12 relative); the integer allocation and
//! polish that follow lose only rounding (the tests in `tests/it/subsets.rs` compare against an
//! exhaustive integer reference).
//!
//! # Order and cost
//! The search order puts first the paths that pay least for their gas at the all-paths level
//! (`h_i(λ_all) − g_i`, lowest first), so the first dive drops them and meets a good incumbent
//! early, and dropping a path that pays well is refuted by its parent's bound without a solve. On
//! random V2 sets with gas worth 1e-6–1e-2 of the order, 8 paths take about 5 subset solves (at
//! most ~25 of 255), 64 paths about 45 (`subset_search_matches_brute_force_with_few_solves` prints
//! these).
//!
//! # Memory
//! The search is a depth-first recursion that keeps each node's state (its level and its paths'
//! surpluses, which bound its children) in the node's stack frame: a child has one path fewer than
//! its parent, so at most [`MAX_PATHS`] + 1 levels of about 0.6 KiB (6 KiB with 8 live paths, 40
//! KiB with 64). It allocates nothing (`subset_search_allocates_nothing` counts).

use super::{Curves, MAX_PATHS, MAX_SUBSET_SOLVES, bits};

/// A set of paths, its water level and float objective after gas.
#[derive(Debug, Clone, Copy)]
pub(super) struct Choice {
    /// Bit `i` set: path `i` is used.
    pub(super) mask: u64,
    /// The set's water level (`u = 1/√λ`).
    pub(super) u: f64,
    /// Float objective after gas.
    pub(super) value: f64,
}

/// A node to visit: the subsets `T` with `fixed ⊆ T ⊆ mask`, where `fixed` is `mask` restricted to
/// the paths before position `k` of the search order.
#[derive(Debug, Clone, Copy)]
struct Node {
    mask: u64,
    k: usize,
    /// Upper bound of the objective of every subset of the node (from its parent's level).
    bound: f64,
    /// The parent's water level, to seed the solve.
    warm: f64,
}

/// The search's state: the problem, the incumbent and the solves made.
#[derive(Debug)]
struct Search<'a> {
    curves: &'a Curves,
    /// Path indices in search order.
    order: &'a [usize],
    gas: &'a [f64],
    best: Option<Choice>,
    solves: usize,
}

/// The best subset of the `live` paths by float objective after gas (`gas[i]`, in the objective's
/// unit), starting from the incumbent `best` (e.g. the best single path). Proves optimality (see
/// the module docs) unless it runs out of [`MAX_SUBSET_SOLVES`], which cannot happen with at most
/// [`EXHAUSTIVE_PATHS`](super::EXHAUSTIVE_PATHS) live paths; then it returns the best subset
/// seen. Also returns the number of subset solves made. Allocates nothing.
pub(super) fn select(
    curves: &Curves,
    live: u64,
    gas: &[f64],
    best: Option<Choice>,
) -> (Option<Choice>, usize) {
    let gas_of = |i: usize| gas.get(i).copied().unwrap_or(0.0);
    let root_u = curves.solve(live, f64::NAN).unwrap_or(f64::NAN);
    let mut key = [0.0f64; MAX_PATHS];
    let mut order_buf = [0usize; MAX_PATHS];
    let mut n = 0usize;
    for i in bits(live) {
        if let (Some(slot), Some(k)) = (order_buf.get_mut(n), key.get_mut(i)) {
            *slot = i;
            if root_u.is_finite() {
                *k = curves.contribution(i, root_u).surplus - gas_of(i);
            }
            n += 1;
        }
    }
    let order = order_buf.get_mut(..n).unwrap_or_default();
    let key_of = |i: usize| key.get(i).copied().unwrap_or(0.0);
    // unstable sort: never allocates; ties by index keep it deterministic
    order.sort_unstable_by(|&a, &b| key_of(a).total_cmp(&key_of(b)).then(a.cmp(&b)));
    let mut search = Search { curves, order, gas, best, solves: 0 };
    search.visit(Node { mask: live, k: 0, bound: f64::INFINITY, warm: root_u });
    (search.best, search.solves)
}

impl Search<'_> {
    fn gas_of(&self, i: usize) -> f64 {
        self.gas.get(i).copied().unwrap_or(0.0)
    }

    /// Visits `node` unless its bound is no better than the incumbent: solves its set, updates the
    /// incumbent, and unless bound (B) at its own level refutes its subsets, visits its children
    /// in search order (depth first). Returns `false` once [`MAX_SUBSET_SOLVES`] are spent.
    ///
    /// Recursion depth: a child has one path fewer than its parent, so at most [`MAX_PATHS`] + 1
    /// levels of about 0.6 KiB of stack each (the surplus of each path of the node), about 40 KiB
    /// at 64 live paths and 6 KiB at 8.
    fn visit(&mut self, node: Node) -> bool {
        if self.best.is_some_and(|b| node.bound <= b.value) {
            return true;
        }
        if self.solves >= MAX_SUBSET_SOLVES {
            return false;
        }
        self.solves += 1;
        // no subset of an infeasible set is feasible
        let Some(u) = self.curves.solve(node.mask, node.warm) else { return true };
        // surplus h_i(λ_U) by search position
        let mut surplus = [0.0f64; MAX_PATHS];
        let (mut total, mut value, mut used) = (0.0, 0.0, 0u64);
        let (mut fixed_gas, mut free_min) = (0.0, 0.0);
        for ((p, &i), h) in self.order.iter().enumerate().zip(surplus.iter_mut()) {
            if node.mask & (1 << i) == 0 {
                continue;
            }
            let c = self.curves.contribution(i, u);
            let g = self.gas_of(i);
            *h = c.surplus;
            total += c.value;
            value += c.value;
            if c.amount >= 1.0 {
                value -= g;
                used |= 1 << i;
            }
            if p < node.k {
                fixed_gas += g;
            } else {
                free_min += g.min(c.surplus);
            }
        }
        if used != 0 && self.best.is_none_or(|b| value > b.value) {
            self.best = Some(Choice { mask: used, u, value });
        }
        // bound (B) of every subset of the node
        if self.best.is_some_and(|b| total - fixed_gas - free_min <= b.value) {
            return true;
        }
        // children: drop the free path at position p; the free paths before it become fixed
        let (mut before_gas, mut after_min) = (0.0, free_min);
        for p in node.k..self.order.len() {
            let Some(&i) = self.order.get(p) else { break };
            if node.mask & (1 << i) == 0 {
                continue;
            }
            let (g, h) = (self.gas_of(i), surplus.get(p).copied().unwrap_or(0.0));
            after_min -= g.min(h);
            let bound = total - h - fixed_gas - before_gas - after_min;
            before_gas += g;
            let child = node.mask & !(1 << i);
            if child != 0 && !self.visit(Node { mask: child, k: p + 1, bound, warm: u }) {
                return false;
            }
        }
        true
    }
}

#[cfg(test)]
mod tests {
    use crate::alloc_count::{CountingAllocator, allocations as counted};

    use alloy_primitives::Address;

    use super::super::tests::random_v2_set;
    use super::super::{Curves, EXHAUSTIVE_PATHS, candidate_paths};
    use super::*;

    /// Best subset by brute force over the float model: every subset solved.
    fn brute_force(curves: &Curves, live: u64, gas: &[f64]) -> f64 {
        let mut best = f64::NEG_INFINITY;
        let mut mask = live;
        while mask != 0 {
            if let Some(u) = curves.solve(mask, f64::NAN) {
                let mut v = 0.0;
                for i in bits(mask) {
                    let c = curves.contribution(i, u);
                    v += c.value - if c.amount >= 1.0 { gas[i] } else { 0.0 };
                }
                best = best.max(v);
            }
            mask = (mask - 1) & live;
        }
        best
    }

    /// The branch and bound finds the brute-force best subset of the float model (both sides of
    /// the order), with far fewer solves than subsets.
    #[test]
    fn subset_search_matches_brute_force_with_few_solves() {
        for n in [3usize, 5, 8, 10, 12, 16, 32, 64] {
            let (mut total_solves, mut max_solves, mut cases) = (0usize, 0usize, 0usize);
            let count = match n {
                0..=8 => 300,
                9..=12 => 40,
                _ => 20,
            };
            for seed in 0..count {
                let (pools, order, per_gas) = random_v2_set(0x9e37_79b9 ^ (seed * 7919 + n as u64), n);
                let paths = candidate_paths(&pools, Address::repeat_byte(1), Address::repeat_byte(2), false);
                for exact_in in [true, false] {
                    let target = if exact_in { order } else { order * 0.99 };
                    let curves = Curves::build(&pools, &paths, target, exact_in);
                    let live = if n == 64 { u64::MAX } else { (1u64 << n) - 1 };
                    let gas: Vec<f64> = paths.iter().map(|p| p.gas(&pools) as f64 * per_gas).collect();
                    let (best, solves) = select(&curves, live, &gas, None);
                    assert!(best.is_some());
                    if n <= 12 {
                        let want = brute_force(&curves, live, &gas);
                        let got = best.map_or(f64::NEG_INFINITY, |b| b.value);
                        // float resolution: one ulp of the level moves a path by ~1e-16 of its
                        // virtual reserves
                        let scale: f64 = (0..n)
                            .filter_map(|i| curves.arcs(i).first())
                            .map(|a| a.piece.cx.abs() + a.piece.cy.abs())
                            .sum();
                        assert!(
                            got >= want - scale * 1e-14,
                            "n {n} seed {seed} in {exact_in}: {got} < {want}"
                        );
                        assert!(solves < 1 << n);
                    }
                    if n <= EXHAUSTIVE_PATHS {
                        assert!(solves < MAX_SUBSET_SOLVES);
                    }
                    total_solves += solves;
                    max_solves = max_solves.max(solves);
                    cases += 1;
                }
            }
            eprintln!(
                "{n} paths: {:.1} solves on average, {max_solves} at most",
                total_solves as f64 / cases as f64
            );
        }
    }

    #[global_allocator]
    static ALLOCATOR: CountingAllocator = CountingAllocator;

    /// Allocations made by `f` on this thread.
    fn allocations<T>(f: impl FnOnce() -> T) -> (T, u64) {
        let (r, a) = counted(f);
        (r, a.calls)
    }

    /// The subset search allocates nothing, at every size up to [`MAX_PATHS`] and on both sides
    /// of the order, including searches that solve many subsets.
    #[test]
    fn subset_search_allocates_nothing() {
        // the counter itself works
        let (_, n) = allocations(|| std::hint::black_box(vec![1u8; 16]));
        assert_eq!(n, 1);
        let mut most = 0;
        for n in [2usize, 4, 8, 16, 64] {
            for seed in 0..20u64 {
                let (pools, order, per_gas) = random_v2_set(0x51ab ^ (seed * 31 + n as u64), n);
                let paths = candidate_paths(&pools, Address::repeat_byte(1), Address::repeat_byte(2), false);
                let gas: Vec<f64> = paths.iter().map(|p| p.gas(&pools) as f64 * per_gas).collect();
                let live = if n == 64 { u64::MAX } else { (1u64 << n) - 1 };
                for exact_in in [true, false] {
                    let curves = Curves::build(&pools, &paths, order, exact_in);
                    let ((best, solves), calls) = allocations(|| select(&curves, live, &gas, None));
                    assert!(best.is_some());
                    assert_eq!(calls, 0, "{n} paths, seed {seed}: {calls} allocations in {solves} solves");
                    most = most.max(solves);
                }
            }
        }
        assert!(most > 10, "some searches solve many subsets: at most {most}");
    }
}
