//! `GET /metrics`: the daemon's figures in Prometheus text (prometheus-client, no global
//! registry). Counters move as things happen; the gauges that describe the ledger
//! (unsynced, sync and rule-set age) are set from a status read just before each scrape.
//!
//! No personal data: no holder ids, codes, coupon or redemption ids — labels are reason
//! codes, scanner states and discard reasons only.

use prometheus_client::encoding::text::encode;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{exponential_buckets, Histogram};
use prometheus_client::registry::Registry;
use std::sync::atomic::AtomicU64;
use std::time::Duration;

type Labels = Vec<(String, String)>;

pub struct Metrics {
    registry: Registry,
    decisions: Family<Labels, Counter>,
    latency: Histogram,
    discarded: Family<Labels, Counter>,
    scanner: Family<Labels, Gauge>,
    pub unsynced_count: Gauge,
    pub unsynced_value: Gauge,
    pub last_sync_age: Gauge<f64, AtomicU64>,
    pub ruleset_age: Gauge<f64, AtomicU64>,
    hub_claims: Family<Labels, Counter>,
    hub_claim_seconds: Histogram,
    hub_unconfirmed: Gauge,
    hub_unpublished: Gauge,
}

impl std::fmt::Debug for Metrics {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Metrics").finish_non_exhaustive()
    }
}

/// Scanner states a gauge reports (1 for the current one).
pub const SCANNER_STATES: [&str; 3] = ["connected", "disconnected", "none"];

impl Default for Metrics {
    fn default() -> Self {
        let mut registry = Registry::with_prefix("redeemd");
        let decisions = Family::<Labels, Counter>::default();
        registry.register("decisions", "Decisions made, by outcome (accepted or the reason code)", decisions.clone());
        // 50 µs to ~3 s.
        let latency = Histogram::new(exponential_buckets(0.000_05, 2.0, 16));
        registry.register("decision_seconds", "Time to decide and commit one code", latency.clone());
        let discarded = Family::<Labels, Counter>::default();
        registry.register("scanner_frames_discarded", "Scanner frames discarded, by reason", discarded.clone());
        let scanner = Family::<Labels, Gauge>::default();
        registry.register("scanner_state", "1 for the scanner's current state", scanner.clone());
        let unsynced_count = Gauge::default();
        registry.register(
            "unsynced_redemptions",
            "Accepted redemptions not yet answered upstream",
            unsynced_count.clone(),
        );
        let unsynced_value = Gauge::default();
        registry.register(
            "unsynced_discount_minor_units",
            "Discount of the unsynced redemptions, in minor units",
            unsynced_value.clone(),
        );
        let last_sync_age = Gauge::<f64, AtomicU64>::default();
        registry.register(
            "last_sync_age_seconds",
            "Seconds since the last successful contact with upstream (NaN: never)",
            last_sync_age.clone(),
        );
        let ruleset_age = Gauge::<f64, AtomicU64>::default();
        registry.register(
            "ruleset_age_seconds",
            "Seconds since the rule set in force was issued (NaN: none)",
            ruleset_age.clone(),
        );
        let hub_claims = Family::<Labels, Counter>::default();
        registry.register(
            "hub_claims",
            "Claim steps at the store hub, by outcome (won, lost, timeout, skipped_down), settling included",
            hub_claims.clone(),
        );
        // 20 µs to ~1.3 s.
        let hub_claim_seconds = Histogram::new(exponential_buckets(0.000_02, 2.0, 17));
        registry.register(
            "hub_claim_seconds",
            "One claim step at the store hub, end to end",
            hub_claim_seconds.clone(),
        );
        let hub_unconfirmed = Gauge::default();
        registry.register(
            "hub_unconfirmed",
            "Redemptions accepted without the store hub's answer, not yet settled",
            hub_unconfirmed.clone(),
        );
        let hub_unpublished = Gauge::default();
        registry.register("hub_unpublished", "Outbox events not yet on the store's stream", hub_unpublished.clone());
        let metrics = Metrics {
            registry,
            decisions,
            latency,
            discarded,
            scanner,
            unsynced_count,
            unsynced_value,
            last_sync_age,
            ruleset_age,
            hub_claims,
            hub_claim_seconds,
            hub_unconfirmed,
            hub_unpublished,
        };
        metrics.scanner_state("none");
        metrics
    }
}

fn label(key: &str, value: &str) -> Labels {
    vec![(key.to_owned(), value.to_owned())]
}

impl Metrics {
    /// One decision: `outcome` is "accepted" or a reason code.
    pub fn decision(&self, outcome: &str, took: Duration) {
        self.decisions.get_or_create(&label("outcome", outcome)).inc();
        self.latency.observe(took.as_secs_f64());
    }

    pub fn discarded(&self, reason: &str) {
        self.discarded.get_or_create(&label("reason", reason)).inc();
    }

    pub fn scanner_state(&self, state: &str) {
        for s in SCANNER_STATES {
            self.scanner.get_or_create(&label("state", s)).set(i64::from(s == state));
        }
    }

    /// One claim step at the store hub; `took` when the hub was asked.
    pub fn hub_claim(&self, outcome: &str, took: Option<Duration>) {
        self.hub_claims.get_or_create(&label("outcome", outcome)).inc();
        if let Some(took) = took {
            self.hub_claim_seconds.observe(took.as_secs_f64());
        }
    }

    /// (unconfirmed redemptions, unpublished events).
    pub fn hub_counts(&self, (unconfirmed, unpublished): (u64, u64)) {
        self.hub_unconfirmed.set(i64::try_from(unconfirmed).unwrap_or(i64::MAX));
        self.hub_unpublished.set(i64::try_from(unpublished).unwrap_or(i64::MAX));
    }

    pub fn render(&self) -> String {
        let mut out = String::new();
        let _ = encode(&mut out, &self.registry);
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_prometheus_text() {
        let m = Metrics::default();
        m.decision("accepted", Duration::from_micros(300));
        m.decision("already_redeemed", Duration::from_micros(200));
        m.discarded("checksum");
        m.scanner_state("connected");
        let text = m.render();
        assert!(text.contains("redeemd_decisions_total{outcome=\"accepted\"} 1"), "{text}");
        assert!(text.contains("redeemd_scanner_state{state=\"connected\"} 1"), "{text}");
        assert!(text.contains("redeemd_decision_seconds_count 2"), "{text}");
        assert!(text.ends_with("# EOF\n"), "{text}");
    }
}
