//! The store's day (`spec/store-hub.md`, "The store's day"): every lane's outbox events,
//! as the store's stream carries them, folded into the terminal report's shape plus
//! `lanes` and `store_conflicts`. Events count once per `event_id`, whatever order or
//! how often they arrive.
//!
//! Pure: it reads no stream, no ledger and no clock (`hub` reads the stream, the daemon
//! and the command line hand the events in); it decides nothing about a lane's claims.

use crate::money::Money;
use crate::report::{DailyReport, ReportContext};
use crate::store::{ForwardState, RedemptionRow};
use jiff::civil::Date;
use jiff::Timestamp;
use serde::Serialize;
use serde_json::Value;
use std::collections::{BTreeMap, HashSet};

/// One redemption as the stream tells it.
#[derive(Debug, Clone, PartialEq)]
struct Redeemed {
    lane: String,
    coupon_id: String,
    campaign_id: String,
    holder: String,
    discount: i64,
    basket_total: i64,
    eligible_total: i64,
    at: Timestamp,
    presentation: String,
    voided: Option<(Timestamp, Option<String>)>,
}

/// The store's events folded so far.
#[derive(Debug, Clone, Default)]
pub struct StoreFold {
    seen: HashSet<String>,
    /// (terminal_id, redemption_id) → the redemption.
    redemptions: BTreeMap<(String, String), Redeemed>,
    /// Voids that arrived before their redeem event (a lane publishes in order, but a
    /// reader may start anywhere).
    early_voids: BTreeMap<(String, String), (Timestamp, Option<String>)>,
    /// terminal_id → (lane, its latest event's time).
    lanes: BTreeMap<String, (String, Timestamp)>,
    /// The stream sequence to read from next.
    pub next_sequence: u64,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct LaneLine {
    pub terminal_id: String,
    pub lane: String,
    pub redemptions: u64,
    pub discount: i64,
    pub basket_total: i64,
    pub last_event_at: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, PartialOrd, Ord)]
pub struct ConflictMember {
    pub terminal_id: String,
    pub lane: String,
    pub redemption_id: String,
    pub at: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct StoreConflict {
    /// `coupon` or `holder_daily_limit`.
    pub kind: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub coupon_id: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub campaign_id: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub holder: Option<String>,
    pub redemptions: Vec<ConflictMember>,
}

/// The store's report: the terminal report's shape, with `lanes` and `store_conflicts`.
#[derive(Debug, Clone, Serialize)]
pub struct StoreReport {
    #[serde(flatten)]
    pub day: DailyReport,
    pub lanes: Vec<LaneLine>,
    pub store_conflicts: Vec<StoreConflict>,
}

impl StoreReport {
    pub fn to_json(&self) -> String {
        serde_json::to_string(self).unwrap_or_default()
    }

    /// For people: the day's table (every lane's redemptions), then one line per lane and
    /// one per store conflict.
    pub fn to_table(&self, language: crate::messages::Language) -> String {
        use crate::messages::fill;
        use std::fmt::Write as _;
        let mut out = self.day.to_table(language);
        let money = |minor: i64| Money(minor).display(self.day.digits());
        let _ = writeln!(out);
        for lane in &self.lanes {
            let _ = writeln!(
                out,
                "{}",
                fill(
                    language,
                    "report.lane_line",
                    &[
                        ("lane", &lane.lane),
                        ("terminal", &lane.terminal_id),
                        ("redemptions", &lane.redemptions.to_string()),
                        ("discount", &money(lane.discount)),
                        ("baskets", &money(lane.basket_total)),
                        ("last", &lane.last_event_at),
                    ],
                )
            );
        }
        for conflict in &self.store_conflicts {
            let what = conflict.coupon_id.clone().or_else(|| conflict.campaign_id.clone()).unwrap_or_default();
            let lanes: Vec<String> = conflict.redemptions.iter().map(|m| format!("{} {}", m.lane, m.at)).collect();
            let _ = writeln!(
                out,
                "{}",
                fill(language, "report.store_conflict", &[("what", &what), ("lanes", &lanes.join(", "))])
            );
        }
        out
    }

    /// One line per redemption with its lane, for spreadsheets (English, like the
    /// terminal's csv).
    pub fn to_csv(&self) -> String {
        let lanes: Vec<String> = self
            .day
            .redemptions
            .iter()
            .map(|r| format!("{},{}", r.terminal_id.as_deref().unwrap_or(""), r.lane.as_deref().unwrap_or("")))
            .collect();
        let mut out = String::new();
        for (n, line) in self.day.to_csv().lines().enumerate() {
            let prefix = if n == 0 { "terminal_id,lane" } else { lanes.get(n - 1).map_or(",", String::as_str) };
            out.push_str(prefix);
            out.push(',');
            out.push_str(line);
            out.push('\n');
        }
        out
    }
}

fn text(event: &Value, key: &str) -> Option<String> {
    event.get(key).and_then(Value::as_str).map(str::to_owned)
}

impl StoreFold {
    /// Takes one event of the stream (the outbox JSON plus `terminal_id` and `lane`);
    /// false when it was seen before or is not an event this fold knows.
    pub fn ingest(&mut self, event: &Value) -> bool {
        let (Some(event_id), Some(terminal_id), Some(kind)) =
            (text(event, "event_id"), text(event, "terminal_id"), text(event, "type"))
        else {
            return false;
        };
        let Some(at) = text(event, "at").and_then(|a| a.parse::<Timestamp>().ok()) else {
            return false;
        };
        let Some(redemption_id) = text(event, "redemption_id") else {
            return false;
        };
        if !self.seen.insert(event_id) {
            return false;
        }
        let lane = text(event, "lane").unwrap_or_else(|| terminal_id.clone());
        let latest = self.lanes.entry(terminal_id.clone()).or_insert((lane.clone(), at));
        if at >= latest.1 {
            *latest = (lane.clone(), at);
        }
        let key = (terminal_id, redemption_id);
        match kind.as_str() {
            "redeem" => {
                let number = |k: &str| event.get(k).and_then(Value::as_i64).unwrap_or(0);
                let voided = self.early_voids.remove(&key);
                self.redemptions.insert(
                    key,
                    Redeemed {
                        lane,
                        coupon_id: text(event, "coupon_id").unwrap_or_default(),
                        campaign_id: text(event, "campaign_id").unwrap_or_default(),
                        holder: text(event, "holder").unwrap_or_default(),
                        discount: number("discount"),
                        basket_total: number("basket_total"),
                        eligible_total: number("eligible_total"),
                        at,
                        presentation: text(event, "presentation").unwrap_or_else(|| "static".into()),
                        voided,
                    },
                );
            }
            "void" => {
                let void = (at, text(event, "reason"));
                match self.redemptions.get_mut(&key) {
                    Some(r) => r.voided = Some(void),
                    None => {
                        self.early_voids.insert(key, void);
                    }
                }
            }
            _ => return false,
        }
        true
    }

    /// The redemptions of `date` in the terminal report's shape, each with its lane, plus
    /// the lanes and the store conflicts that touch the day. `limit` gives a campaign's
    /// `max_per_holder_per_day`.
    pub fn report(&self, date: Date, ctx: &ReportContext<'_>, limit: &dyn Fn(&str) -> Option<u64>) -> StoreReport {
        let start = date.to_zoned_datetime(ctx.timezone.clone()).map(|z| z.timestamp()).ok();
        let end =
            date.tomorrow().ok().and_then(|d| d.to_zoned_datetime(ctx.timezone.clone()).ok()).map(|z| z.timestamp());
        let in_day = |at: Timestamp| start.is_some_and(|s| at >= s) && end.is_some_and(|e| at < e);
        let mut day: Vec<(&(String, String), &Redeemed)> =
            self.redemptions.iter().filter(|(_, r)| in_day(r.at)).collect();
        day.sort_by(|a, b| (a.1.at, &a.0 .1).cmp(&(b.1.at, &b.0 .1)));
        let rows: Vec<RedemptionRow> = day
            .iter()
            .map(|((_, id), r)| RedemptionRow {
                redemption_id: id.clone(),
                checkout_id: String::new(),
                coupon_id: r.coupon_id.clone(),
                campaign_id: r.campaign_id.clone(),
                discount: Money(r.discount),
                basket_total: Money(r.basket_total),
                eligible_total: Money(r.eligible_total),
                at: r.at,
                voided_at: r.voided.as_ref().map(|v| v.0),
                // Upstream's answers stay on each lane; the stream has what was sent.
                state: ForwardState::Pending,
                presentation: r.presentation.clone(),
                void_reason: r.voided.as_ref().and_then(|v| v.1.clone()),
                voided_by: None,
                upstream_answer: None,
                store_state: None,
            })
            .collect();
        let mut report = crate::report::from_rows(&rows, date, ctx);
        for (line, ((terminal_id, _), r)) in report.redemptions.iter_mut().zip(&day) {
            line.terminal_id = Some(terminal_id.clone());
            line.lane = Some(r.lane.clone());
        }
        let lanes = self
            .lanes
            .iter()
            .map(|(terminal_id, (lane, last))| {
                let mine = day.iter().filter(|((t, _), r)| t == terminal_id && r.voided.is_none());
                let (mut count, mut discount, mut basket) = (0u64, 0i64, 0i64);
                for (_, r) in mine {
                    count += 1;
                    discount = discount.saturating_add(r.discount);
                    basket = basket.saturating_add(r.basket_total);
                }
                LaneLine {
                    terminal_id: terminal_id.clone(),
                    lane: lane.clone(),
                    redemptions: count,
                    discount,
                    basket_total: basket,
                    last_event_at: crate::clock::rfc3339(*last, ctx.timezone),
                }
            })
            .collect();
        let store_conflicts = self
            .conflicts(ctx, limit)
            .into_iter()
            .filter(|c| {
                c.redemptions.iter().any(|m| {
                    self.redemptions
                        .get(&(m.terminal_id.clone(), m.redemption_id.clone()))
                        .is_some_and(|r| in_day(r.at))
                })
            })
            .collect();
        StoreReport { day: report, lanes, store_conflicts }
    }

    /// Every store conflict the stream shows: two or more unvoided redemptions of one
    /// coupon; more than the limit for one holder, campaign and business day.
    pub fn conflicts(&self, ctx: &ReportContext<'_>, limit: &dyn Fn(&str) -> Option<u64>) -> Vec<StoreConflict> {
        let member = |(terminal_id, id): &(String, String), r: &Redeemed| ConflictMember {
            terminal_id: terminal_id.clone(),
            lane: r.lane.clone(),
            redemption_id: id.clone(),
            at: crate::clock::rfc3339(r.at, ctx.timezone),
        };
        let mut by_coupon: BTreeMap<&str, Vec<ConflictMember>> = BTreeMap::new();
        let mut by_holder: BTreeMap<(&str, &str, Date), Vec<ConflictMember>> = BTreeMap::new();
        for (key, r) in self.redemptions.iter().filter(|(_, r)| r.voided.is_none()) {
            by_coupon.entry(&r.coupon_id).or_default().push(member(key, r));
            if limit(&r.campaign_id).is_some() {
                let day = r.at.to_zoned_datetime(ctx.timezone.clone()).date();
                by_holder.entry((&r.holder, &r.campaign_id, day)).or_default().push(member(key, r));
            }
        }
        let mut out = Vec::new();
        for (coupon_id, mut members) in by_coupon {
            if members.len() > 1 {
                members.sort();
                out.push(StoreConflict {
                    kind: "coupon",
                    coupon_id: Some(coupon_id.to_owned()),
                    campaign_id: None,
                    holder: None,
                    redemptions: members,
                });
            }
        }
        for ((holder, campaign_id, _), mut members) in by_holder {
            if limit(campaign_id).is_some_and(|max| members.len() as u64 > max) {
                members.sort();
                out.push(StoreConflict {
                    kind: "holder_daily_limit",
                    coupon_id: None,
                    campaign_id: Some(campaign_id.to_owned()),
                    holder: Some(holder.to_owned()),
                    redemptions: members,
                });
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use serde_json::json;

    fn ctx(tz: &jiff::tz::TimeZone) -> ReportContext<'_> {
        ReportContext {
            timezone_name: "Asia/Shanghai",
            timezone: tz,
            currency: "CNY",
            digits: 2,
            names: BTreeMap::new(),
        }
    }

    fn redeem(event: &str, terminal: &str, id: &str, coupon: &str, at: &str, discount: i64) -> Value {
        json!({"event_id": event, "type": "redeem", "terminal_id": terminal, "lane": terminal.trim_start_matches("T-"),
               "redemption_id": id, "coupon_id": coupon, "campaign_id": "DINING", "holder": "aG9sZGVy",
               "discount": discount, "basket_total": 5000, "eligible_total": 5000, "at": at, "presentation": "static"})
    }

    fn void(event: &str, terminal: &str, id: &str, at: &str) -> Value {
        json!({"event_id": event, "type": "void", "terminal_id": terminal, "lane": "x", "redemption_id": id, "at": at,
               "reason": "wrong"})
    }

    #[test]
    fn events_count_once_and_voids_leave_the_totals() {
        let tz = jiff::tz::TimeZone::get("Asia/Shanghai").unwrap();
        let mut fold = StoreFold::default();
        let a = redeem("e1", "T-1", "r1", "C1", "2026-12-08T10:00:00+08:00", 1000);
        assert!(fold.ingest(&a));
        assert!(!fold.ingest(&a), "the same event_id twice counts once");
        fold.ingest(&redeem("e2", "T-2", "r2", "C2", "2026-12-08T11:00:00+08:00", 500));
        fold.ingest(&redeem("e3", "T-2", "r3", "C3", "2026-12-07T11:00:00+08:00", 700));
        fold.ingest(&void("e4", "T-2", "r2", "2026-12-08T11:05:00+08:00"));
        let report = fold.report(jiff::civil::date(2026, 12, 8), &ctx(&tz), &|_| None);
        assert_eq!(report.day.totals.redemptions, 1);
        assert_eq!(report.day.totals.voids, 1);
        assert_eq!(report.day.totals.discount, 1000);
        assert_eq!(report.day.redemptions.len(), 2);
        assert_eq!(report.day.redemptions[0].lane.as_deref(), Some("1"));
        assert_eq!(report.lanes.len(), 2);
        assert_eq!(report.lanes[1].redemptions, 0);
        assert!(report.store_conflicts.is_empty());
        let json: Value = serde_json::from_str(&report.to_json()).unwrap();
        assert!(json["lanes"].is_array() && json["store_conflicts"].is_array() && json["totals"].is_object());
        assert_eq!(json["redemptions"][0]["terminal_id"], "T-1");
    }

    #[test]
    fn a_void_read_before_its_redeem_still_voids_it() {
        let tz = jiff::tz::TimeZone::get("Asia/Shanghai").unwrap();
        let mut fold = StoreFold::default();
        fold.ingest(&void("e2", "T-1", "r1", "2026-12-08T10:05:00+08:00"));
        fold.ingest(&redeem("e1", "T-1", "r1", "C1", "2026-12-08T10:00:00+08:00", 1000));
        let report = fold.report(jiff::civil::date(2026, 12, 8), &ctx(&tz), &|_| None);
        assert_eq!(report.day.totals.redemptions, 0);
    }

    #[test]
    fn store_conflicts_of_both_kinds() {
        let tz = jiff::tz::TimeZone::get("Asia/Shanghai").unwrap();
        let mut fold = StoreFold::default();
        fold.ingest(&redeem("e1", "T-1", "r1", "C1", "2026-12-08T10:00:00+08:00", 1000));
        fold.ingest(&redeem("e2", "T-2", "r2", "C1", "2026-12-08T10:01:00+08:00", 1000));
        fold.ingest(&redeem("e3", "T-2", "r3", "C2", "2026-12-08T10:02:00+08:00", 1000));
        let report = fold.report(jiff::civil::date(2026, 12, 8), &ctx(&tz), &|_| Some(2));
        let kinds: Vec<&str> = report.store_conflicts.iter().map(|c| c.kind).collect();
        assert_eq!(kinds, ["coupon", "holder_daily_limit"], "{:?}", report.store_conflicts);
        assert_eq!(report.store_conflicts[0].redemptions.len(), 2);
        assert_eq!(report.store_conflicts[1].redemptions.len(), 3);
        // Voiding one of the coupon's two ends that conflict.
        fold.ingest(&void("e4", "T-2", "r2", "2026-12-08T10:03:00+08:00"));
        let report = fold.report(jiff::civil::date(2026, 12, 8), &ctx(&tz), &|_| None);
        assert!(report.store_conflicts.is_empty(), "{:?}", report.store_conflicts);
    }

    proptest! {
        /// The store's report equals the sum of the lanes' own reports, for random
        /// histories of redeems and voids at three lanes, delivered in any order, some twice.
        #[test]
        fn the_store_report_is_the_sum_of_the_lanes(
            ops in proptest::collection::vec((0usize..3, 0u32..20, 1i64..5000, any::<bool>(), 0u32..86_000), 1..40),
            duplicate in any::<bool>(),
        ) {
            let tz = jiff::tz::TimeZone::get("Asia/Shanghai").unwrap();
            let day_start: Timestamp = "2026-12-07T16:00:00Z".parse().unwrap();
            let mut events = Vec::new();
            let mut per_lane: Vec<Vec<RedemptionRow>> = vec![Vec::new(), Vec::new(), Vec::new()];
            for (n, (lane, coupon, discount, voided, second)) in ops.iter().enumerate() {
                let terminal = format!("T-{lane}");
                let id = format!("r{n}");
                let at = day_start + jiff::SignedDuration::from_secs(i64::from(*second));
                let at_text = crate::clock::rfc3339(at, &tz);
                events.push(redeem(&format!("e{n}"), &terminal, &id, &format!("C{coupon}"), &at_text, *discount));
                if *voided {
                    events.push(void(&format!("v{n}"), &terminal, &id, &at_text));
                }
                per_lane[*lane].push(RedemptionRow {
                    redemption_id: id, checkout_id: String::new(), coupon_id: format!("C{coupon}"),
                    campaign_id: "DINING".into(), discount: Money(*discount), basket_total: Money(5000),
                    eligible_total: Money(5000), at, voided_at: voided.then_some(at), state: ForwardState::Pending,
                    presentation: "static".into(), void_reason: None, voided_by: None, upstream_answer: None,
                    store_state: None,
                });
            }
            if duplicate {
                let again = events.clone();
                events.extend(again);
            }
            events.reverse();
            let mut fold = StoreFold::default();
            for e in &events {
                fold.ingest(e);
            }
            let date = jiff::civil::date(2026, 12, 8);
            let store = fold.report(date, &ctx(&tz), &|_| None);
            let (mut count, mut voids, mut discount, mut basket) = (0, 0, 0i64, 0i64);
            for rows in &per_lane {
                let lane = crate::report::from_rows(rows, date, &ctx(&tz));
                count += lane.totals.redemptions;
                voids += lane.totals.voids;
                discount += lane.totals.discount;
                basket += lane.totals.basket_total;
            }
            prop_assert_eq!(store.day.totals.redemptions, count);
            prop_assert_eq!(store.day.totals.voids, voids);
            prop_assert_eq!(store.day.totals.discount, discount);
            prop_assert_eq!(store.day.totals.basket_total, basket);
            let lanes_discount: i64 = store.lanes.iter().map(|l| l.discount).sum();
            prop_assert_eq!(lanes_discount, discount);
        }
    }
}
