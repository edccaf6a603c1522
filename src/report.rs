//! The daily write-off report (`spec/terminal-interfaces.md`, "Daily write-offs"): one
//! business day in the rule set's zone, totals, per campaign, per hour, and every
//! redemption with its forwarding state, as JSON, CSV or a table for the store manager.
//!
//! It reads rows the store hands it and shapes them; it must not query SQL itself.

use crate::clock::rfc3339;
use crate::messages::{self, Language};
use crate::money::Money;
use crate::store::{ForwardState, RedemptionRow, Store, StoreError};
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
    pub state: ForwardState,
    /// `static` (a CP1 code) or `dynamic` (a CP2 presentation).
    pub presentation: String,
    /// The reason given at the void; null when not voided or none was given.
    pub void_reason: Option<String>,
    /// Who voided: `checkout`, `till`, `cashier`, `manager`, `command_line`; null when
    /// not voided (or voided before the ledger recorded it).
    pub voided_by: Option<String>,
    /// Upstream's answer to the redeem event (its JSON as stored), for the manager's page;
    /// not part of the report's JSON.
    #[serde(skip)]
    pub upstream_answer: Option<String>,
    /// With a store hub (`spec/store-hub.md`): `confirmed`, `unconfirmed` or `conflict`;
    /// null on a terminal without one. A voided redemption keeps its last value.
    pub store: Option<String>,
    /// The lane that redeemed it: in the store's report only.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub terminal_id: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub lane: Option<String>,
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

/// What a report needs from the rule set in force, owned (to cross threads).
#[derive(Debug, Clone)]
pub struct ReportParts {
    pub timezone_name: String,
    pub timezone: TimeZone,
    pub currency: String,
    pub digits: u32,
    pub names: BTreeMap<String, String>,
    /// Campaign id → `max_per_holder_per_day`, for the store's conflicts.
    pub holder_limits: BTreeMap<String, u64>,
}

impl ReportParts {
    pub fn ctx(&self) -> ReportContext<'_> {
        ReportContext {
            timezone_name: &self.timezone_name,
            timezone: &self.timezone,
            currency: &self.currency,
            digits: self.digits,
            names: self.names.clone(),
        }
    }
}

/// The report of `date`, a business day in `ctx.timezone`.
pub fn daily(store: &Store, date: Date, ctx: &ReportContext<'_>) -> Result<DailyReport, StoreError> {
    let start = date.to_zoned_datetime(ctx.timezone.clone()).map(|z| z.timestamp());
    let end = date.tomorrow().and_then(|d| d.to_zoned_datetime(ctx.timezone.clone())).map(|z| z.timestamp());
    let (Ok(start), Ok(end)) = (start, end) else {
        return Err(StoreError::Corrupt(format!("date {date} has no start in {}", ctx.timezone_name)));
    };
    let rows = store.redemptions_between(start, end)?;
    Ok(from_rows(&rows, date, ctx))
}

/// The report of `date` from its rows (the terminal's, or the store's from its stream).
pub fn from_rows(rows: &[RedemptionRow], date: Date, ctx: &ReportContext<'_>) -> DailyReport {
    let mut totals = Totals::default();
    let mut campaigns: BTreeMap<&str, Totals> = BTreeMap::new();
    let mut hours: BTreeMap<i8, Totals> = BTreeMap::new();
    let mut redemptions = Vec::with_capacity(rows.len());
    for row in rows {
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
            state: row.state,
            presentation: row.presentation.clone(),
            void_reason: row.void_reason.clone(),
            voided_by: row.voided_by.clone(),
            upstream_answer: row.upstream_answer.clone(),
            store: row.store_state.clone(),
            terminal_id: None,
            lane: None,
        });
    }
    DailyReport {
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
    }
}

fn leverage(totals: &Totals) -> String {
    totals.leverage.map_or_else(|| "-".into(), |l| format!("{l:.2}×"))
}

impl DailyReport {
    /// The currency's minor digits.
    pub fn digits(&self) -> u32 {
        self.digits
    }

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

    /// The store manager's view in `language`: totals first, then per campaign, per hour,
    /// and the list. Columns are padded by display width (a CJK character takes two
    /// columns) and long ids are shortened in the middle; csv and json keep them whole.
    pub fn to_table(&self, language: Language) -> String {
        let m = |key: &str| messages::text(language, &format!("report.{key}"));
        let mut out = String::new();
        let t = &self.totals;
        let _ = writeln!(
            out,
            "{}",
            messages::fill(
                language,
                "report.title",
                &[("date", &self.date), ("timezone", &self.timezone), ("currency", &self.currency)]
            )
        );
        let _ = writeln!(
            out,
            "  {}\n  {}\n",
            messages::fill(
                language,
                "report.summary",
                &[
                    ("redemptions", &t.redemptions.to_string()),
                    ("voids", &t.voids.to_string()),
                    ("discount", &self.money(t.discount)),
                    ("baskets", &self.money(t.basket_total)),
                    ("leverage", &leverage(t)),
                ]
            ),
            m("leverage_explained")
        );
        if self.redemptions.is_empty() {
            let _ = writeln!(out, "  {}", m("empty"));
            return out;
        }
        let row = |out: &mut String, label: &str, cells: [String; 5]| {
            let [coupons, voids, discount, baskets, leverage] = cells;
            let _ = writeln!(
                out,
                "{} {} {} {} {} {}",
                pad(&shorten(label, 28), 28, false),
                pad(&coupons, 8, true),
                pad(&voids, 6, true),
                pad(&discount, 12, true),
                pad(&baskets, 12, true),
                pad(&leverage, 9, true)
            );
        };
        let header = |out: &mut String, label: &str| {
            row(out, label, ["coupons", "voids", "discount", "baskets", "leverage"].map(|k| m(k).to_owned()));
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
        let name_of = |id: &str| -> String {
            self.campaigns
                .iter()
                .find(|c| c.campaign_id == id)
                .map(|c| c.name.clone())
                .filter(|n| !n.is_empty())
                .unwrap_or_else(|| id.to_owned())
        };
        header(&mut out, m("campaign"));
        for c in &self.campaigns {
            line(&mut out, &name_of(&c.campaign_id), &c.totals);
        }
        line(&mut out, m("total"), t);
        out.push('\n');
        header(&mut out, m("hour"));
        for h in &self.hours {
            line(&mut out, &format!("{:02}:00-{:02}:00", h.hour, h.hour + 1), &h.totals);
        }
        out.push('\n');
        let _ = writeln!(
            out,
            "{} {} {} {} {}  {} {} {}",
            pad(m("time"), 9, false),
            pad(m("coupon"), 20, false),
            pad(m("campaign"), 20, false),
            pad(m("discount"), 10, true),
            pad(m("basket"), 10, true),
            pad(m("shown"), 8, false),
            pad(m("state"), 14, false),
            m("redemption")
        );
        // How the coupon was shown: a printed CP1 code or a live CP2 presentation.
        let shown = |p: &str| {
            let text = messages::text(language, &format!("report.shown_{p}"));
            if text.is_empty() {
                p.to_owned()
            } else {
                text.to_owned()
            }
        };
        for r in &self.redemptions {
            let time = r.at.get(11..19).unwrap_or(&r.at);
            let state_text = messages::text(language, &format!("report.state_{}", r.state));
            let state_text = if state_text.is_empty() { r.state.as_str() } else { state_text };
            let state = if r.voided { format!("{state_text} ({})", m("voided")) } else { state_text.to_owned() };
            let flag = if r.voided {
                // Who voided and why (the words the manager's page uses).
                let by = r
                    .voided_by
                    .as_deref()
                    .map(|b| messages::text(language, &format!("manager.by_{b}")))
                    .filter(|w| !w.is_empty())
                    .unwrap_or_else(|| messages::text(language, "manager.by_unknown"));
                let reason = r
                    .void_reason
                    .as_deref()
                    .filter(|w| !w.trim().is_empty())
                    .unwrap_or_else(|| messages::text(language, "manager.no_reason"));
                format!("  <- {by}: {reason}")
            } else if matches!(r.state, ForwardState::Conflict | ForwardState::Rejected) {
                format!("  <- {}", m("check_this"))
            } else {
                String::new()
            };
            let _ = writeln!(
                out,
                "{} {} {} {} {}  {} {} {}{flag}",
                pad(time, 9, false),
                pad(&shorten(&r.coupon_id, 20), 20, false),
                pad(&shorten(&name_of(&r.campaign_id), 20), 20, false),
                pad(&self.money(r.discount), 10, true),
                pad(&self.money(r.basket_total), 10, true),
                pad(&shown(&r.presentation), 8, false),
                pad(&state, 14, false),
                shorten(&r.redemption_id, 13)
            );
        }
        out
    }
}

/// One CSV cell: quoted when it holds a comma, quote or line break; text a spreadsheet
/// would take for a formula (`=`, `+`, `-`, `@` first) gets a leading apostrophe.
fn csv_cell(text: &str) -> String {
    let text = if text.starts_with(['=', '+', '-', '@', '\t', '\r']) { format!("'{text}") } else { text.to_owned() };
    if text.contains([',', '"', '\n', '\r']) {
        format!("\"{}\"", text.replace('"', "\"\""))
    } else {
        text
    }
}

/// The days' redemptions as one CSV for a spreadsheet, in `language`: UTF-8 with a BOM
/// (so a Chinese spreadsheet opens it right), headers in words, date and time in
/// separate columns (the rule set's zone), the campaign's name, the forwarding state,
/// void reason and who in words, and a totals row (voided rows are not in it). The
/// machine CSV (`to_csv`) stays as it is.
pub fn spreadsheet_csv(days: &[DailyReport], language: Language) -> String {
    let w = |key: &str| messages::text(language, &format!("manager.{key}"));
    let mut out = String::from("\u{feff}");
    let header = [
        "csv_date",
        "csv_time",
        "csv_coupon",
        "csv_campaign",
        "csv_campaign_id",
        "csv_discount",
        "csv_basket",
        "csv_eligible",
        "csv_shown",
        "csv_state",
        "csv_voided",
        "csv_void_reason",
        "csv_voided_by",
        "csv_redemption",
    ]
    .map(|k| csv_cell(w(k)));
    out.push_str(&header.join(","));
    out.push_str("\r\n");
    let (mut count, mut discount, mut basket, mut eligible, mut voids) = (0u64, 0i64, 0i64, 0i64, 0u64);
    let mut digits = 2;
    let mut currency = String::new();
    for day in days {
        digits = day.digits;
        currency.clone_from(&day.currency);
        for r in &day.redemptions {
            let name = day
                .campaigns
                .iter()
                .find(|c| c.campaign_id == r.campaign_id)
                .map(|c| c.name.clone())
                .filter(|n| !n.is_empty())
                .unwrap_or_else(|| r.campaign_id.clone());
            let state = messages::text(language, &format!("report.state_{}", r.state));
            let shown = messages::text(language, &format!("report.shown_{}", r.presentation));
            let by = if r.voided {
                let words = r.voided_by.as_deref().map_or("", |b| w(&format!("by_{b}")));
                if words.is_empty() {
                    w("by_unknown")
                } else {
                    words
                }
            } else {
                ""
            };
            let cells = [
                r.at.get(0..10).unwrap_or(&r.at).to_owned(),
                r.at.get(11..19).unwrap_or("").to_owned(),
                r.coupon_id.clone(),
                name,
                r.campaign_id.clone(),
                day.money(r.discount),
                day.money(r.basket_total),
                day.money(r.eligible_total),
                if shown.is_empty() { r.presentation.clone() } else { shown.to_owned() },
                if state.is_empty() { r.state.to_string() } else { state.to_owned() },
                w(if r.voided { "yes" } else { "no" }).to_owned(),
                r.void_reason.clone().unwrap_or_default(),
                by.to_owned(),
                r.redemption_id.clone(),
            ];
            out.push_str(&cells.iter().map(|c| csv_cell(c)).collect::<Vec<_>>().join(","));
            out.push_str("\r\n");
            if r.voided {
                voids += 1;
            } else {
                count += 1;
                discount = discount.saturating_add(r.discount);
                basket = basket.saturating_add(r.basket_total);
                eligible = eligible.saturating_add(r.eligible_total);
            }
        }
    }
    let money = |minor: i64| Money(minor).display(digits);
    let total = messages::fill(
        language,
        "manager.csv_total",
        &[("count", &count.to_string()), ("voids", &voids.to_string()), ("currency", &currency)],
    );
    let cells = [
        total,
        String::new(),
        String::new(),
        String::new(),
        String::new(),
        money(discount),
        money(basket),
        money(eligible),
        String::new(),
        String::new(),
        String::new(),
        String::new(),
        String::new(),
        String::new(),
    ];
    out.push_str(&cells.iter().map(|c| csv_cell(c)).collect::<Vec<_>>().join(","));
    out.push_str("\r\n");
    out
}

/// Display columns of `text`: East Asian wide characters take two.
pub fn width(text: &str) -> usize {
    unicode_width::UnicodeWidthStr::width(text)
}

/// `text` padded with spaces to `columns` display columns (right-aligned when `right`);
/// text already wider is returned whole.
pub fn pad(text: &str, columns: usize, right: bool) -> String {
    let fill = " ".repeat(columns.saturating_sub(width(text)));
    if right {
        format!("{fill}{text}")
    } else {
        format!("{text}{fill}")
    }
}

/// `text` shortened in the middle to at most `columns` display columns (`0198f3…9a2c`),
/// so both ends of an id stay recognisable; short text is returned as is.
pub fn shorten(text: &str, columns: usize) -> String {
    if width(text) <= columns || columns < 3 {
        return text.to_owned();
    }
    let budget = columns - 1; // the ellipsis takes one column
    let (mut head, mut tail) = (String::new(), Vec::new());
    let (mut head_w, mut tail_w) = (0, 0);
    let chars: Vec<char> = text.chars().collect();
    let (mut i, mut j) = (0, chars.len());
    loop {
        let mut progressed = false;
        if i < j {
            let w = unicode_width::UnicodeWidthChar::width(chars[i]).unwrap_or(0);
            if head_w + tail_w + w <= budget && head_w <= tail_w {
                head.push(chars[i]);
                head_w += w;
                i += 1;
                progressed = true;
            }
        }
        if i < j {
            let w = unicode_width::UnicodeWidthChar::width(chars[j - 1]).unwrap_or(0);
            if head_w + tail_w + w <= budget && tail_w < head_w {
                tail.push(chars[j - 1]);
                tail_w += w;
                j -= 1;
                progressed = true;
            }
        }
        if !progressed {
            break;
        }
    }
    tail.reverse();
    format!("{head}…{}", tail.into_iter().collect::<String>())
}

#[cfg(test)]
mod table_tests {
    use super::*;

    #[test]
    fn pad_counts_wide_characters_twice() {
        assert_eq!(width("消费券"), 6);
        assert_eq!(pad("消费券", 8, false), "消费券  ");
        assert_eq!(pad("10.00", 8, true), "   10.00");
        assert_eq!(pad("longer than", 4, false), "longer than");
    }

    #[test]
    fn shorten_keeps_both_ends_within_the_columns() {
        let id = "0198f3c2-7a1b-7c3d-9e4f-0123456789ab";
        let short = shorten(id, 13);
        assert_eq!(width(&short), 13);
        assert!(short.starts_with("0198f3") && short.ends_with("789ab") && short.contains('…'), "{short}");
        assert_eq!(shorten("CP-0001", 13), "CP-0001");
        let cjk = shorten("社区生鲜超市周末满减活动（限本市门店使用）", 20);
        assert!(width(&cjk) <= 20 && cjk.starts_with("社区") && cjk.ends_with("使用）"), "{cjk}");
    }
}
