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
    format!(
        "{:>6}  {}  {:<12} {:>4} {:>14.2}  {:<18} {}",
        r.intent,
        time(r.decided_ms),
        r.portfolio_name,
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
    println!("rebalance {intent} of portfolio {} (account {})", row.portfolio_name, row.account);
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
