//! Helpers the benches share (a bench cannot import `tests/common`).
#![allow(dead_code)]

use std::time::Duration;

/// A size from the environment (`REDEEMD_BENCH_…`), else `default`.
pub fn env(name: &str, default: usize) -> usize {
    std::env::var(name).ok().and_then(|v| v.parse().ok()).unwrap_or(default)
}

/// The `p` quantile (0..=1) of sorted samples.
pub fn percentile(sorted: &[Duration], p: f64) -> Duration {
    sorted[((sorted.len() as f64 - 1.0) * p).round() as usize]
}

pub fn ms(d: Duration) -> String {
    format!("{:.3} ms", d.as_secs_f64() * 1e3)
}

/// A UUIDv7-shaped id for a row made at `at_ms` (the ledger refuses a redemption whose id
/// is not the UUIDv7 of its time); `tag` and `n` make it unique.
pub fn uuid_at(at_ms: i64, tag: u16, n: usize) -> String {
    format!("{:08x}-{:04x}-7{:03x}-8000-{n:012x}", at_ms >> 16, at_ms & 0xffff, tag & 0xfff)
}

/// Bulk rows straight into the tables, in one transaction: paid checkouts, their
/// redemptions marked forwarded, and answered (accepted) redeem events with a
/// placeholder body, so the ledger is big but nothing is left to forward and the
/// unsynced set stays small (answered events never entered it: running totals 0).
/// Redemptions are 2 s apart, the last at `end_ms`, so the ones a bench then makes come
/// after them (in every tree keyed by time) as a terminal's next redemptions do.
pub fn prefill(conn: &rusqlite::Connection, rows: usize, campaigns: usize, end_ms: i64) {
    conn.execute_batch("BEGIN IMMEDIATE").unwrap();
    {
        let mut checkout = conn
            .prepare(
                "INSERT INTO checkout (id, basket_total, eligible_total, opened_ms, status, closed_ms)
                 VALUES (?1, 5800, 5800, ?2, 'paid', ?2)",
            )
            .unwrap();
        let mut redemption = conn
            .prepare(
                "INSERT INTO redemption (id, checkout_id, coupon_id, campaign_id, holder, code, discount, basket_total,
                     eligible_total, currency, ruleset_version, at_ms, forward_state)
                 VALUES (?1, ?1, ?2, ?3, ?4, 'CP1:', 1000, 5800, 5800, 'CNY', 1, ?5, 'forwarded')",
            )
            .unwrap();
        let mut outbox = conn
            .prepare(
                "INSERT INTO outbox (seq, event_id, type, redemption_id, body, created_ms, state, answer, answered_ms,
                     in_count, in_value)
                 VALUES (?1, ?2, 'redeem', ?3, '{}', ?4, 'accepted', '{\"status\":\"accepted\"}', ?4, 0, 0)",
            )
            .unwrap();
        let base = end_ms - (rows as i64) * 2000;
        for i in 0..rows {
            let at = base + (i as i64) * 2000;
            let id = uuid_at(at, 0, i);
            checkout.execute(rusqlite::params![id, at]).unwrap();
            redemption
                .execute(rusqlite::params![
                    id,
                    format!("OLD-{i:09}"),
                    format!("CAMP-{:05}", i % campaigns.max(1)),
                    format!("holder-{:06}", i % 50_000).into_bytes(),
                    at
                ])
                .unwrap();
            outbox
                .execute(rusqlite::params![i as i64 + 1, format!("00000000-0000-7000-9000-{i:012}"), id, at])
                .unwrap();
        }
    }
    // Every event answered: the outbox cursor (migration 6) goes past them all.
    conn.execute("UPDATE outbox_cursor SET low = (SELECT MAX(seq) + 1 FROM outbox) WHERE id = 1", []).unwrap();
    conn.execute_batch("COMMIT").unwrap();
}
