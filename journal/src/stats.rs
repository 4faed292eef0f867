//! Inclusion analytics over the journal (`keel journal stats`): how rebalances ended, how long the
//! landed ones took to be included and at what fee, why the others expired, and per relay and per
//! builder the landing rate and the time to inclusion. A pure function of the records, so it is
//! tested without a database.

use std::collections::{BTreeMap, BTreeSet};

use serde::Serialize;

use crate::store::RecordRow;

/// Rebalances by how they ended.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct Outcomes {
    /// Decided by the engine.
    pub decided: u64,
    /// Refused by the router before signing.
    pub refused: u64,
    /// Landed.
    pub landed: u64,
    /// Expired unlanded.
    pub expired: u64,
    /// Expired, by reason class (`deadline`, `nonces used`, `cancelled`, `reverted in simulation`,
    /// `other`).
    pub expired_by_reason: BTreeMap<String, u64>,
}

/// Time to inclusion and fees of a set of landed rebalances.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct InclusionSummary {
    /// Landed rebalances with an inclusion record.
    pub count: u64,
    /// Median blocks from the first target to the landing block (1: the first).
    pub blocks_p50: Option<u64>,
    /// 90th percentile of the same.
    pub blocks_p90: Option<u64>,
    /// Median seconds from the first send to the landing.
    pub seconds_p50: Option<f64>,
    /// 90th percentile of the same.
    pub seconds_p90: Option<f64>,
    /// Mean signed versions sent.
    pub versions_mean: Option<f64>,
    /// Fees paid, ETH.
    pub fees_eth: f64,
}

/// One relay.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct RelayStats {
    /// Relay name.
    pub relay: String,
    /// Submissions (every version, every block).
    pub submissions: u64,
    /// Of those, accepted.
    pub accepted: u64,
    /// Of those, refused or failed.
    pub failed: u64,
    /// Rebalances it accepted at least once.
    pub rebalances: u64,
    /// Of those, landed.
    pub landed: u64,
    /// `landed / rebalances`.
    pub landing_rate: Option<f64>,
    /// Chances it was given: distinct (rebalance, target block) pairs it accepted, up to and
    /// including the block each rebalance landed in (bundles for later blocks could not land).
    pub block_chances: u64,
    /// Of those, the ones that landed through it: in that very block, built by its builder (the
    /// block's coinbase is the relay's `coinbase`; with none configured, any builder).
    pub block_landed: u64,
    /// `block_landed / block_chances`: how often a bundle it accepted for a block was included in
    /// that block by its builder.
    pub inclusion_rate: Option<f64>,
}

/// One builder (a block's fee recipient).
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct BuilderStats {
    /// Its name from the blocks' extra data, or its address.
    pub builder: String,
    /// Its address.
    pub coinbase: String,
    /// Rebalances it included.
    pub landed: u64,
    /// Its share of the landed rebalances with an inclusion record.
    pub share: f64,
    /// Time to inclusion and fees of the ones it included.
    pub inclusion: InclusionSummary,
}

/// Everything `keel journal stats` shows.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct JournalStats {
    /// Records from this time on (ms since the Unix epoch).
    pub since_ms: i64,
    /// How rebalances ended.
    pub outcomes: Outcomes,
    /// All landed rebalances.
    pub inclusion: InclusionSummary,
    /// Per relay, by name.
    pub relays: Vec<RelayStats>,
    /// Per builder, most landed first.
    pub builders: Vec<BuilderStats>,
}

/// The reason class of an `expired` record's reason.
pub fn expiry_class(reason: &str) -> &'static str {
    let r = reason.to_ascii_lowercase();
    if r.contains("simulation") {
        "reverted in simulation"
    } else if r.contains("cancel") {
        "cancelled"
    } else if r.contains("nonce") {
        "nonces used"
    } else if r.contains("deadline") {
        "deadline"
    } else {
        "other"
    }
}

/// One inclusion record's figures.
#[derive(Debug, Clone)]
struct Included {
    builder: String,
    coinbase: String,
    blocks: Option<u64>,
    seconds: Option<f64>,
    versions: Option<f64>,
    fee_wei: f64,
}

/// Nearest-rank percentile `p` (0..=1) of `sorted`.
fn percentile<T: Copy>(sorted: &[T], p: f64) -> Option<T> {
    if sorted.is_empty() {
        return None;
    }
    let rank = ((p * sorted.len() as f64).ceil() as usize).clamp(1, sorted.len());
    Some(sorted[rank - 1])
}

fn summarize<'a>(rows: impl Iterator<Item = &'a Included>) -> InclusionSummary {
    let rows: Vec<&Included> = rows.collect();
    let mut blocks: Vec<u64> = rows.iter().filter_map(|r| r.blocks).collect();
    blocks.sort_unstable();
    let mut seconds: Vec<f64> = rows.iter().filter_map(|r| r.seconds).collect();
    seconds.sort_by(f64::total_cmp);
    let versions: Vec<f64> = rows.iter().filter_map(|r| r.versions).collect();
    InclusionSummary {
        count: rows.len() as u64,
        blocks_p50: percentile(&blocks, 0.5),
        blocks_p90: percentile(&blocks, 0.9),
        seconds_p50: percentile(&seconds, 0.5),
        seconds_p90: percentile(&seconds, 0.9),
        versions_mean: (!versions.is_empty()).then(|| versions.iter().sum::<f64>() / versions.len() as f64),
        fees_eth: rows.iter().map(|r| r.fee_wei).sum::<f64>() / 1e18,
    }
}

/// The statistics of `records` (each with its intent), which start at `since_ms`.
pub fn journal_stats(records: &[(u64, RecordRow)], since_ms: i64) -> JournalStats {
    let mut out = JournalStats { since_ms, ..Default::default() };
    let mut landed: BTreeSet<u64> = BTreeSet::new();
    let mut included: Vec<Included> = Vec::new();
    // relay → (submissions, accepted, failed, intents accepted)
    let mut relays: BTreeMap<String, (u64, u64, u64, BTreeSet<u64>)> = BTreeMap::new();
    // relay → (intent, target block) pairs accepted
    let mut chances: BTreeMap<String, BTreeSet<(u64, u64)>> = BTreeMap::new();
    // intent → landing block, and the relays its block's builder is (None: not attributed)
    let mut landed_in: BTreeMap<u64, u64> = BTreeMap::new();
    let mut landed_via: BTreeMap<u64, Option<Vec<String>>> = BTreeMap::new();
    for (intent, r) in records {
        let b = &r.body;
        match r.kind.as_str() {
            "decided" => out.outcomes.decided += 1,
            "refused" => out.outcomes.refused += 1,
            "landed" => {
                landed.insert(*intent);
                if let Some(block) = b["block"].as_u64() {
                    landed_in.insert(*intent, block);
                }
            }
            "recovered" if b["resolution"].as_str() == Some("landed") => {
                landed.insert(*intent);
            }
            "expired" => {
                out.outcomes.expired += 1;
                let class = expiry_class(b["reason"].as_str().unwrap_or(""));
                *out.outcomes.expired_by_reason.entry(class.to_string()).or_default() += 1;
            }
            "submitted" => {
                let name = b["relay"].as_str().unwrap_or("?").to_string();
                let e = relays.entry(name.clone()).or_default();
                e.0 += 1;
                if b["accepted"].as_bool() == Some(true) {
                    e.1 += 1;
                    e.3.insert(*intent);
                    if let Some(block) = b["block"].as_u64() {
                        chances.entry(name).or_default().insert((*intent, block));
                    }
                } else {
                    e.2 += 1;
                }
            }
            "included" => {
                let via = b["relays"]
                    .as_array()
                    .filter(|a| !a.is_empty())
                    .map(|a| a.iter().filter_map(|r| r.as_str().map(str::to_owned)).collect::<Vec<_>>());
                landed_via.insert(*intent, via);
                let coinbase = b["coinbase"].as_str().unwrap_or("").to_string();
                let name = b["builder"].as_str().unwrap_or("");
                included.push(Included {
                    builder: if name.is_empty() { coinbase.clone() } else { name.to_string() },
                    coinbase,
                    blocks: b["blocks"].as_u64().filter(|n| *n > 0),
                    seconds: b["seconds"].as_f64(),
                    versions: b["versions"].as_f64(),
                    fee_wei: b["fee_wei"].as_str().and_then(|s| s.parse::<f64>().ok()).unwrap_or(0.0),
                });
            }
            _ => {}
        }
    }
    out.outcomes.landed = landed.len() as u64;
    out.inclusion = summarize(included.iter());
    out.relays = relays
        .into_iter()
        .map(|(relay, (submissions, accepted, failed, intents))| {
            let landed_of = intents.iter().filter(|i| landed.contains(i)).count() as u64;
            let rebalances = intents.len() as u64;
            let (mut block_chances, mut block_landed) = (0u64, 0u64);
            for &(intent, block) in chances.get(&relay).into_iter().flatten() {
                match landed_in.get(&intent) {
                    Some(&at) if block > at => {} // after it landed: no chance
                    Some(&at) if block == at => {
                        block_chances += 1;
                        // Attributed by coinbase when the inclusion record names relays.
                        let via = landed_via.get(&intent).cloned().flatten();
                        if via.is_none_or(|v| v.contains(&relay)) {
                            block_landed += 1;
                        }
                    }
                    _ => block_chances += 1,
                }
            }
            RelayStats {
                block_chances,
                block_landed,
                inclusion_rate: (block_chances > 0).then(|| block_landed as f64 / block_chances as f64),
                relay,
                submissions,
                accepted,
                failed,
                rebalances,
                landed: landed_of,
                landing_rate: (rebalances > 0).then(|| landed_of as f64 / rebalances as f64),
            }
        })
        .collect();
    let mut by_builder: BTreeMap<(String, String), Vec<&Included>> = BTreeMap::new();
    for i in &included {
        by_builder.entry((i.builder.clone(), i.coinbase.clone())).or_default().push(i);
    }
    let total = included.len().max(1) as f64;
    out.builders = by_builder
        .into_iter()
        .map(|((builder, coinbase), rows)| BuilderStats {
            builder,
            coinbase,
            landed: rows.len() as u64,
            share: rows.len() as f64 / total,
            inclusion: summarize(rows.into_iter()),
        })
        .collect();
    out.builders.sort_by(|a, b| b.landed.cmp(&a.landed).then_with(|| a.builder.cmp(&b.builder)));
    out
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn row(kind: &str, body: serde_json::Value) -> RecordRow {
        RecordRow { seq: 0, at_ms: 0, kind: kind.into(), body }
    }

    #[test]
    fn relays_builders_and_expiries_are_counted_from_the_records() {
        let submitted =
            |relay: &str, accepted: bool| row("submitted", json!({ "relay": relay, "accepted": accepted }));
        let included = |builder: &str, blocks: u64, seconds: f64, versions: u32, fee: &str| {
            row(
                "included",
                json!({ "builder": builder, "coinbase": "0xc0", "blocks": blocks, "seconds": seconds, "versions": versions, "fee_wei": fee }),
            )
        };
        let records = vec![
            (1, row("decided", json!({}))),
            (1, submitted("a", true)),
            (1, submitted("b", true)),
            (1, row("landed", json!({}))),
            (1, included("titan", 1, 12.0, 1, "1000000000000000")),
            (2, row("decided", json!({}))),
            (2, submitted("a", true)),
            (2, submitted("a", true)),
            (2, submitted("b", false)),
            (2, row("landed", json!({}))),
            (2, included("titan", 2, 24.0, 2, "3000000000000000")),
            (3, row("decided", json!({}))),
            (3, submitted("a", true)),
            (3, row("expired", json!({ "reason": "deadline block 9 reached unlanded" }))),
            (4, row("decided", json!({}))),
            (
                4,
                row(
                    "expired",
                    json!({ "reason": "nonces used by other transactions; none of the bundle's landed" }),
                ),
            ),
            (5, row("decided", json!({}))),
            (5, row("landed", json!({}))),
            (5, included("", 3, 36.0, 4, "0")),
        ];
        let s = journal_stats(&records, 0);
        assert_eq!((s.outcomes.decided, s.outcomes.landed, s.outcomes.expired), (5, 3, 2));
        assert_eq!(s.outcomes.expired_by_reason.get("deadline"), Some(&1));
        assert_eq!(s.outcomes.expired_by_reason.get("nonces used"), Some(&1));
        let a = &s.relays[0];
        assert_eq!((a.relay.as_str(), a.submissions, a.accepted, a.rebalances, a.landed), ("a", 4, 4, 3, 2));
        assert_eq!(a.landing_rate, Some(2.0 / 3.0));
        let b = &s.relays[1];
        assert_eq!((b.submissions, b.accepted, b.failed, b.rebalances, b.landed), (2, 1, 1, 1, 1));
        // Builders: titan with two, the unnamed one by its address.
        assert_eq!(s.builders[0].builder, "titan");
        assert_eq!((s.builders[0].landed, s.builders[0].inclusion.blocks_p50), (2, Some(1)));
        assert_eq!(s.builders[0].inclusion.blocks_p90, Some(2));
        assert!((s.builders[0].inclusion.fees_eth - 0.004).abs() < 1e-12);
        assert_eq!(s.builders[1].builder, "0xc0");
        assert_eq!(s.inclusion.count, 3);
        assert_eq!((s.inclusion.seconds_p50, s.inclusion.seconds_p90), (Some(24.0), Some(36.0)));
        assert_eq!(s.inclusion.versions_mean, Some(7.0 / 3.0));
    }

    #[test]
    fn inclusion_rate_counts_each_block_a_relay_had_and_the_ones_its_builder_won() {
        let sub = |relay: &str, block: u64| {
            row("submitted", json!({ "relay": relay, "block": block, "accepted": true }))
        };
        let records = vec![
            // Rebalance 1: both relays had blocks 100 and 101; it landed in 101, built by a's
            // builder. The bundle for 102 (sent before the landing was seen) had no chance.
            (1, sub("a", 100)),
            (1, sub("b", 100)),
            (1, sub("a", 101)),
            (1, sub("a", 101)), // a re-signed version for the same block: one chance
            (1, sub("b", 101)),
            (1, sub("a", 102)),
            (1, row("landed", json!({ "block": 101 }))),
            (1, row("included", json!({ "block": 101, "coinbase": "0xa1", "relays": ["a"] }))),
            // Rebalance 2: a had block 200 and it expired.
            (2, sub("a", 200)),
            (2, row("expired", json!({ "reason": "deadline block 200 reached unlanded" }))),
            // Rebalance 3: landed in 300 with no relay named for the builder: every relay that
            // had block 300 counts it.
            (3, sub("a", 300)),
            (3, sub("b", 300)),
            (3, row("landed", json!({ "block": 300 }))),
            (3, row("included", json!({ "block": 300, "coinbase": "0xff", "relays": [] }))),
        ];
        let s = journal_stats(&records, 0);
        let (a, b) = (&s.relays[0], &s.relays[1]);
        assert_eq!((a.block_chances, a.block_landed), (4, 2));
        assert_eq!(a.inclusion_rate, Some(0.5));
        assert_eq!((b.block_chances, b.block_landed), (3, 1));
        assert_eq!(b.inclusion_rate, Some(1.0 / 3.0));
    }

    #[test]
    fn percentiles_are_nearest_rank() {
        let v: Vec<u64> = (1..=10).collect();
        assert_eq!(
            (percentile(&v, 0.5), percentile(&v, 0.9), percentile(&v, 1.0)),
            (Some(5), Some(9), Some(10))
        );
        assert_eq!(percentile::<u64>(&[], 0.5), None);
    }
}
