//! The daily write-off report (`spec/terminal-interfaces.md`, "Daily write-offs"): one
//! business day in the rule set's zone, totals, per campaign, per hour, and every
//! redemption with its forwarding state, as JSON, CSV or a table for the store manager.
//!
//! It reads rows the store hands it and shapes them; it must not query SQL itself.

use crate::clock::rfc3339;
use crate::money::Money;
use crate::store::{RedemptionRow, Store, StoreError};
use jiff::civil::Date;
use jiff::tz::TimeZone;
use serde::Serialize;
use std::collections::BTreeMap;
use std::fmt::Write as _;

#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct DailyReport {
    pub date: String,
    pub timezone: String,
    pub currency: String,
    pub totals: Totals,
    pub campaigns: Vec<CampaignLine>,
    pub hours: Vec<HourLine>,
    pub redemptions: Vec<RedemptionLine>,
    #[serde(skip)]
    digits: u32,
}

/// Written off = accepted and not voided. `voids` counts the day's redemptions voided since.
#[derive(Debug, Clone, Default, Serialize, PartialEq)]
pub struct Totals {
    pub redemptions: u64,
    pub voids: u64,
    pub discount: i64,
    pub basket_total: i64,
    /// Basket totals ÷ face value written off; null when nothing was written off.
    pub leverage: Option<f64>,
}

#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct CampaignLine {
    pub campaign_id: String,
    pub name: String,
    #[serde(flatten)]
    pub totals: Totals,
}

#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct HourLine {
    /// Local hour of day, 0..=23.
    pub hour: i8,
    #[serde(flatten)]
    pub totals: Totals,
}

#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct RedemptionLine {
    pub redemption_id: String,
    pub coupon_id: String,
    pub campaign_id: String,
    pub discount: i64,
    pub basket_total: i64,
    pub eligible_total: i64,
    pub at: String,
    pub voided: bool,
    pub state: String,
    /// `static` (a CP1 code) or `dynamic` (a CP2 presentation).
    pub presentation: String,
}

impl Totals {
    fn add(&mut self, row: &RedemptionRow) {
        if row.voided_at.is_some() {
            self.voids += 1;
            return;
        }
        self.redemptions += 1;
        // Saturating: 10^11 per row keeps real days far below i64, and a corrupt row
        // must not wrap a total negative.
        self.discount = self.discount.saturating_add(row.discount.0);
        self.basket_total = self.basket_total.saturating_add(row.basket_total.0);
        self.leverage =
            (self.discount > 0).then(|| (self.basket_total as f64 / self.discount as f64 * 100.0).round() / 100.0);
    }
}

pub struct ReportContext<'a> {
    pub timezone_name: &'a str,
    pub timezone: &'a TimeZone,
    pub currency: &'a str,
    pub digits: u32,
    /// Campaign id → display name.
    pub names: BTreeMap<String, String>,
}

/// The report of `date`, a business day in `ctx.timezone`.
pub fn daily(store: &Store, date: Date, ctx: &ReportContext<'_>) -> Result<DailyReport, StoreError> {
    let start = date.to_zoned_datetime(ctx.timezone.clone()).map(|z| z.timestamp());
    let end = date.tomorrow().and_then(|d| d.to_zoned_datetime(ctx.timezone.clone())).map(|z| z.timestamp());
    let (Ok(start), Ok(end)) = (start, end) else {
        return Err(StoreError::Corrupt(format!("date {date} has no start in {}", ctx.timezone_name)));
    };
    let rows = store.redemptions_between(start, end)?;
    let mut totals = Totals::default();
    let mut campaigns: BTreeMap<&str, Totals> = BTreeMap::new();
    let mut hours: BTreeMap<i8, Totals> = BTreeMap::new();
    let mut redemptions = Vec::with_capacity(rows.len());
    for row in &rows {
        totals.add(row);
        campaigns.entry(&row.campaign_id).or_default().add(row);
        hours.entry(row.at.to_zoned_datetime(ctx.timezone.clone()).hour()).or_default().add(row);
        redemptions.push(RedemptionLine {
            redemption_id: row.redemption_id.clone(),
            coupon_id: row.coupon_id.clone(),
            campaign_id: row.campaign_id.clone(),
            discount: row.discount.0,
            basket_total: row.basket_total.0,
            eligible_total: row.eligible_total.0,
            at: rfc3339(row.at, ctx.timezone),
            voided: row.voided_at.is_some(),
            state: row.state.clone(),
            presentation: row.presentation.clone(),
        });
    }
    Ok(DailyReport {
        date: date.to_string(),
        timezone: ctx.timezone_name.to_owned(),
        currency: ctx.currency.to_owned(),
        totals,
        campaigns: campaigns
            .into_iter()
            .map(|(id, totals)| CampaignLine {
                campaign_id: id.to_owned(),
                name: ctx.names.get(id).cloned().unwrap_or_else(|| id.to_owned()),
                totals,
            })
            .collect(),
        hours: hours.into_iter().map(|(hour, totals)| HourLine { hour, totals }).collect(),
        redemptions,
        digits: ctx.digits,
    })
}

fn leverage(totals: &Totals) -> String {
    totals.leverage.map_or_else(|| "-".into(), |l| format!("{l:.2}×"))
}

impl DailyReport {
    fn money(&self, minor: i64) -> String {
        Money(minor).display(self.digits)
    }

    pub fn to_json(&self) -> String {
        serde_json::to_string(self).unwrap_or_default()
    }

    /// One line per redemption, for spreadsheets.
    pub fn to_csv(&self) -> String {
        let mut out = String::from(
            "redemption_id,at,coupon_id,campaign_id,discount,basket_total,eligible_total,voided,state,presentation\n",
        );
        for r in &self.redemptions {
            let _ = writeln!(
                out,
                "{},{},{},{},{},{},{},{},{},{}",
                r.redemption_id,
                r.at,
                r.coupon_id,
                r.campaign_id,
                self.money(r.discount),
                self.money(r.basket_total),
                self.money(r.eligible_total),
                r.voided,
                r.state,
                r.presentation
            );
        }
        out
    }

    /// The store manager's view: totals first, then per campaign, per hour, and the list.
    pub fn to_table(&self) -> String {
        let mut out = String::new();
        let t = &self.totals;
        let _ = writeln!(out, "Write-offs for {} ({}, amounts in {})", self.date, self.timezone, self.currency);
        let _ = writeln!(
            out,
            "  {} coupons written off, {} voided; discount {}; baskets {}; leverage {}\n",
            t.redemptions,
            t.voids,
            self.money(t.discount),
            self.money(t.basket_total),
            leverage(t)
        );
        if self.redemptions.is_empty() {
            out.push_str("  No redemptions on this day.\n");
            return out;
        }
        let row = |out: &mut String, label: &str, cells: [String; 5]| {
            let [coupons, voids, discount, baskets, leverage] = cells;
            let _ = writeln!(out, "{label:<28} {coupons:>7} {voids:>5} {discount:>12} {baskets:>12} {leverage:>9}");
        };
        let header = |out: &mut String, label: &str| {
            row(out, label, ["coupons", "voids", "discount", "baskets", "leverage"].map(String::from));
        };
        let line = |out: &mut String, label: &str, t: &Totals| {
            let cells = [
                t.redemptions.to_string(),
                t.voids.to_string(),
                self.money(t.discount),
                self.money(t.basket_total),
                leverage(t),
            ];
            row(out, label, cells);
        };
        header(&mut out, "campaign");
        for c in &self.campaigns {
            line(&mut out, &format!("{} {}", c.campaign_id, c.name), &c.totals);
        }
        line(&mut out, "total", t);
        out.push('\n');
        header(&mut out, "hour");
        for h in &self.hours {
            line(&mut out, &format!("{:02}:00-{:02}:00", h.hour, h.hour + 1), &h.totals);
        }
        out.push('\n');
        let _ = writeln!(
            out,
            "{:<9} {:<24} {:<16} {:>10} {:>10}  {:<7} {:<9} redemption",
            "time", "coupon", "campaign", "discount", "basket", "shown", "state"
        );
        for r in &self.redemptions {
            let time = r.at.get(11..19).unwrap_or(&r.at);
            let state = if r.voided { format!("{} (void)", r.state) } else { r.state.clone() };
            let flag = if matches!(r.state.as_str(), "conflict" | "rejected") { "  <- check" } else { "" };
            let _ = writeln!(
                out,
                "{time:<9} {:<24} {:<16} {:>10} {:>10}  {:<7} {state:<9} {}{flag}",
                r.coupon_id,
                r.campaign_id,
                self.money(r.discount),
                self.money(r.basket_total),
                r.presentation,
                r.redemption_id
            );
        }
        out
    }
}
