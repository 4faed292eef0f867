//! `keel journal`: read the journal — recent rebalances, or one in full — and prune it.

use std::path::{Path, PathBuf};

use eyre::{WrapErr, eyre};
use keel_journal::{RebalanceRow, Store, SyncPolicy};

use crate::config::KeelConfig;

/// Where the journal is: `--path`, else the config's `[journal] path`.
pub(crate) fn resolve_path(path: Option<PathBuf>, config: Option<&Path>) -> eyre::Result<PathBuf> {
    if let Some(p) = path {
        return Ok(p);
    }
    let config =
        config.ok_or_else(|| eyre!("give --path JOURNAL or --config FILE (with a [journal] section)"))?;
    let cfg = KeelConfig::load(config)?;
    cfg.journal.map(|j| j.path).ok_or_else(|| eyre!("{} has no [journal] section", config.display()))
}

fn time(ms: i64) -> String {
    let secs = ms.div_euclid(1000);
    let (days, rem) = (secs.div_euclid(86_400), secs.rem_euclid(86_400));
    let (y, m, d) = civil_from_days(days);
    format!("{y:04}-{m:02}-{d:02} {:02}:{:02}:{:02}", rem / 3600, rem % 3600 / 60, rem % 60)
}

/// Days since 1970-01-01 to (year, month, day), proleptic Gregorian (H. Hinnant's algorithm).
fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    (yoe + era * 400 + i64::from(m <= 2), m, d)
}

fn line(r: &RebalanceRow) -> String {
    let outcome = match (r.state.as_str(), r.block) {
        ("landed", Some(b)) => format!("landed in {b}"),
        (s, _) => s.to_string(),
    };
    // A multi-chain run's rebalances say which chain: `portfolio@chain`.
    let portfolio = match &r.chain {
        Some(c) => format!("{}@{c}", r.portfolio_name),
        None => r.portfolio_name.clone(),
    };
    format!(
        "{:>6}  {}  {:<12} {:>4} {:>14.2}  {:<18} {}",
        r.intent,
        time(r.decided_ms),
        portfolio,
        r.legs,
        r.notional,
        outcome,
        r.reason
    )
}

/// Lists the newest `limit` rebalances.
pub(crate) fn list(path: &Path, limit: usize, json: bool) -> eyre::Result<()> {
    let store = Store::open_read_only(path)?;
    let rows = store.recent(limit).wrap_err("reading the journal")?;
    if json {
        println!("{}", serde_json::to_string_pretty(&rows)?);
        return Ok(());
    }
    if rows.is_empty() {
        println!("{}: no rebalances yet", path.display());
        return Ok(());
    }
    println!(
        "{:>6}  {:<19}  {:<12} {:>4} {:>14}  {:<18} trigger",
        "intent", "decided (UTC)", "portfolio", "legs", "notional", "outcome"
    );
    for r in rows.iter().rev() {
        println!("{}", line(r));
    }
    Ok(())
}

/// Shows one rebalance: its row and every record, in order.
pub(crate) fn show(path: &Path, intent: u64, json: bool) -> eyre::Result<()> {
    let store = Store::open_read_only(path)?;
    let row =
        store.rebalance(intent)?.ok_or_else(|| eyre!("intent {intent} is not in {}", path.display()))?;
    let records = store.records(intent)?;
    if json {
        let v = serde_json::json!({ "rebalance": row, "records": records });
        println!("{}", serde_json::to_string_pretty(&v)?);
        return Ok(());
    }
    match &row.chain {
        Some(c) => println!(
            "rebalance {intent} of portfolio {} on chain {c} (account {})",
            row.portfolio_name, row.account
        ),
        None => println!("rebalance {intent} of portfolio {} (account {})", row.portfolio_name, row.account),
    }
    println!("  trigger:  {}", row.reason);
    println!(
        "  state:    {}{}",
        row.state,
        row.detail.as_deref().map(|d| format!(" — {d}")).unwrap_or_default()
    );
    if let (Some(b), Some(g)) = (row.block, row.gas_used) {
        println!("  landed:   block {b}, gas used {g}");
    }
    for r in &records {
        println!("  {}  {:<10} {}", time(r.at_ms), r.kind, serde_json::to_string(&r.body)?);
    }
    Ok(())
}

/// Removes settled rebalances last changed more than `days` days ago.
pub(crate) fn prune(path: &Path, days: u64, json: bool) -> eyre::Result<()> {
    if !path.exists() {
        return Err(eyre!("{}: no such journal", path.display()));
    }
    let now_ms = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64);
    let before_ms = now_ms.saturating_sub((days as i64).saturating_mul(86_400_000));
    let mut store = Store::open(path, SyncPolicy::Full)?;
    let pruned = store.prune(before_ms).wrap_err("pruning the journal")?;
    if json {
        let v = serde_json::json!({ "before_ms": before_ms, "pruned": pruned });
        println!("{}", serde_json::to_string_pretty(&v)?);
    } else {
        println!(
            "{}: removed {} settled rebalances ({} records) last changed before {} UTC; {} kept",
            path.display(),
            pruned.rebalances,
            pruned.records,
            time(before_ms),
            pruned.kept
        );
    }
    Ok(())
}

/// `--since`: a duration such as `30m`, `24h` or `7d`, in seconds.
pub(crate) fn parse_since(text: &str) -> Result<u64, String> {
    let (number, unit) = text.split_at(text.find(|c: char| !c.is_ascii_digit()).unwrap_or(text.len()));
    let n: u64 = number.parse().map_err(|_| format!("`{text}` is not a duration like 30m, 24h or 7d"))?;
    let secs = match unit {
        "s" => 1,
        "m" => 60,
        "h" => 3_600,
        "d" => 86_400,
        _ => return Err(format!("`{text}`: the unit must be s, m, h or d")),
    };
    n.checked_mul(secs).filter(|s| *s > 0).ok_or_else(|| format!("`{text}` is out of range"))
}

/// `keel journal stats`: inclusion analytics of the records of the last `since` seconds (all
/// without it).
pub(crate) fn stats(path: &Path, since: Option<u64>, json: bool) -> eyre::Result<()> {
    if !path.exists() {
        return Err(eyre!("{}: no such journal", path.display()));
    }
    let now_ms = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64);
    let since_ms = since.map_or(0, |s| now_ms.saturating_sub((s as i64).saturating_mul(1_000)));
    let store = Store::open_read_only(path)?;
    let records = store.records_since(since_ms).wrap_err("reading the journal")?;
    let s = keel_journal::stats::journal_stats(&records, since_ms);
    if json {
        println!("{}", serde_json::to_string_pretty(&s)?);
        return Ok(());
    }
    let o = &s.outcomes;
    let from = if since_ms > 0 { format!("since {} UTC", time(since_ms)) } else { "all records".into() };
    println!(
        "{} ({from}): {} decided, {} refused, {} landed, {} expired",
        path.display(),
        o.decided,
        o.refused,
        o.landed,
        o.expired
    );
    for (reason, n) in &o.expired_by_reason {
        println!("  expired ({reason}): {n}");
    }
    let opt = |v: Option<f64>| v.map_or("-".to_string(), |x| format!("{x:.1}"));
    let blocks = |v: Option<u64>| v.map_or("-".to_string(), |x| x.to_string());
    let i = &s.inclusion;
    println!(
        "inclusion: {} with a record; blocks p50 {} p90 {}; seconds p50 {} p90 {}; versions mean {}; fees {:.6} ETH",
        i.count,
        blocks(i.blocks_p50),
        blocks(i.blocks_p90),
        opt(i.seconds_p50),
        opt(i.seconds_p90),
        opt(i.versions_mean),
        i.fees_eth
    );
    println!(
        "\n{:<20} {:>11} {:>9} {:>7} {:>10} {:>7} {:>8} {:>14} {:>10}",
        "relay",
        "submissions",
        "accepted",
        "failed",
        "rebalances",
        "landed",
        "rate",
        "blocks won",
        "incl. rate"
    );
    let pct = |x: Option<f64>| x.map_or("-".to_string(), |x| format!("{:.1}%", x * 100.0));
    for r in &s.relays {
        println!(
            "{:<20} {:>11} {:>9} {:>7} {:>10} {:>7} {:>8} {:>14} {:>10}",
            r.relay,
            r.submissions,
            r.accepted,
            r.failed,
            r.rebalances,
            r.landed,
            pct(r.landing_rate),
            format!("{}/{}", r.block_landed, r.block_chances),
            pct(r.inclusion_rate)
        );
    }
    println!(
        "\n{:<28} {:>7} {:>7} {:>10} {:>10} {:>12}",
        "builder", "landed", "share", "blocks p50", "secs p90", "fees ETH"
    );
    for b in &s.builders {
        let i = &b.inclusion;
        println!(
            "{:<28} {:>7} {:>6.1}% {:>10} {:>10} {:>12.6}",
            b.builder,
            b.landed,
            b.share * 100.0,
            blocks(i.blocks_p50),
            opt(i.seconds_p90),
            i.fees_eth
        );
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dates_are_civil() {
        assert_eq!(time(0), "1970-01-01 00:00:00");
        assert_eq!(time(951_782_400_000), "2000-02-29 00:00:00");
        assert_eq!(time(1_795_568_523_000), "2026-11-25 01:02:03");
    }
}
