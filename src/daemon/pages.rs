//! The pages the daemon serves (`spec/terminal-interfaces.md`, "Pages"): the cashier
//! screen at `/`, the manager's pages at `/manager`, and their assets, all embedded in
//! the binary. HTML is rendered here from askama templates (`templates/`, checked at
//! compile time, escaped); the pages' JavaScript (`assets/`) talks to the same local API
//! as the till, with the page's session cookie, and follows `/v1/events`.
//!
//! Every text comes from the message tables (`messages/*.toml`), in the page's language:
//! `?lang=` (kept in a cookie), else the configured one. Pages load nothing from
//! elsewhere (a Content-Security-Policy of `'self'` says so to the browser too). This
//! module reads through ledger jobs; it must not open the database or decide anything.

use super::api::{page_role, status_json, AppState, Role};
use super::ledger::ManagerView;
use crate::messages::{self, Language};
use crate::money::Money;
use crate::store::ForwardState;
use askama::Template;
use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::{Path, Query, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{Html, IntoResponse, Response};
use axum::routing::{get, post};
use axum::Router;
use std::collections::HashMap;
use std::sync::Arc;

const LANG_COOKIE: &str = "redeemd_lang";
const CSP: &str = "default-src 'self'; img-src 'self' data:; style-src 'self'; script-src 'self'; \
                   connect-src 'self'; object-src 'none'; base-uri 'none'; frame-ancestors 'none'; form-action 'self'";

pub fn router() -> Router<Arc<AppState>> {
    Router::new()
        .route("/", get(cashier))
        .route("/manager", get(manager))
        .route("/manager/login", post(manager_login))
        .route("/manager/logout", post(logout))
        .route("/manager/doctor", get(doctor))
        .route("/manager/export.csv", get(export_csv))
        .route("/manager/sheet", get(sheet))
        .route("/assets/{name}", get(asset))
        .layer(axum::middleware::map_response(page_headers))
}

async fn page_headers(mut response: Response) -> Response {
    let headers = response.headers_mut();
    headers.insert(header::CONTENT_SECURITY_POLICY, HeaderValue::from_static(CSP));
    headers.insert(header::X_CONTENT_TYPE_OPTIONS, HeaderValue::from_static("nosniff"));
    // Not `no-referrer`: under it a browser sends `Origin: null` with the pages' own form
    // posts, and the origin check (`super::guard`) could not tell them from another site's.
    // `same-origin` still tells other sites nothing.
    headers.insert(header::REFERRER_POLICY, HeaderValue::from_static("same-origin"));
    headers.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    response
}

/// The embedded assets: (name, content type, body).
const ASSETS: &[(&str, &str, &str)] = &[
    ("style.css", "text/css; charset=utf-8", include_str!("../../assets/style.css")),
    ("cashier.js", "text/javascript; charset=utf-8", include_str!("../../assets/cashier.js")),
    ("manager.js", "text/javascript; charset=utf-8", include_str!("../../assets/manager.js")),
    ("demo.js", "text/javascript; charset=utf-8", include_str!("../../assets/demo.js")),
    ("sheet.css", "text/css; charset=utf-8", include_str!("../../assets/sheet.css")),
    ("sheet.js", "text/javascript; charset=utf-8", include_str!("../../assets/sheet.js")),
];

async fn asset(Path(name): Path<String>) -> Response {
    match ASSETS.iter().find(|(n, _, _)| *n == name) {
        Some((_, kind, body)) => {
            ([(header::CONTENT_TYPE, *kind), (header::CACHE_CONTROL, "no-cache")], *body).into_response()
        }
        None => (StatusCode::NOT_FOUND, "no such asset").into_response(),
    }
}

/// The page's language: `?lang=`, else the cookie, else the configured one; and the
/// cookie to set when the query chose.
pub fn page_language(
    s: &AppState,
    headers: &HeaderMap,
    query: &HashMap<String, String>,
) -> (Language, Option<HeaderValue>) {
    let parse = |v: &str| match v.to_ascii_lowercase().as_str() {
        "zh-cn" | "zh" => Some(Language::ZhCn),
        "en" => Some(Language::En),
        _ => None,
    };
    if let Some(language) = query.get("lang").and_then(|v| parse(v)) {
        let cookie = format!("{LANG_COOKIE}={}; Path=/; SameSite=Strict; Max-Age=31536000", language.tag());
        return (language, HeaderValue::from_str(&cookie).ok());
    }
    let from_cookie = super::api::cookie(headers, LANG_COOKIE).and_then(|v| parse(&v));
    (from_cookie.unwrap_or(s.language), None)
}

/// What every page template shares.
struct Common {
    lang: &'static str,
    messages: String,
    other_lang: &'static str,
    other_lang_name: &'static str,
    terminal_lang: &'static str,
    language: Language,
}

impl Common {
    fn new(language: Language, terminal: Language) -> Common {
        let (other, name) = match language {
            Language::ZhCn => (Language::En, "English"),
            Language::En => (Language::ZhCn, "中文"),
        };
        Common {
            lang: language.tag(),
            // JSON inside <script>: a "</" would end the element early.
            messages: messages::table_json(language).replace("</", "<\\/"),
            other_lang: other.tag(),
            other_lang_name: name,
            terminal_lang: terminal.tag(),
            language,
        }
    }

    fn t(&self, key: &str) -> &'static str {
        messages::text(self.language, key)
    }
}

fn html(page: Result<String, askama::Error>, status: StatusCode, cookie: Option<HeaderValue>) -> Response {
    let mut response = match page {
        Ok(body) => (status, Html(body)).into_response(),
        Err(e) => (StatusCode::INTERNAL_SERVER_ERROR, format!("page failed to render: {e}")).into_response(),
    };
    response.headers_mut().insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    if let Some(cookie) = cookie {
        response.headers_mut().append(header::SET_COOKIE, cookie);
    }
    response
}

#[derive(Template)]
#[template(path = "cashier.html")]
struct CashierPage {
    lang: &'static str,
    messages: String,
    other_lang: &'static str,
    other_lang_name: &'static str,
    terminal_lang: &'static str,
    common: Common,
    signed_in: bool,
}

impl CashierPage {
    fn t(&self, key: &str) -> &'static str {
        self.common.t(key)
    }
}

async fn cashier(
    State(s): State<Arc<AppState>>,
    Query(query): Query<HashMap<String, String>>,
    headers: HeaderMap,
) -> Response {
    let (language, cookie) = page_language(&s, &headers, &query);
    let signed_in = page_role(&s, &headers).await.is_some();
    let common = Common::new(language, s.language);
    let page = CashierPage {
        lang: common.lang,
        messages: common.messages.clone(),
        other_lang: common.other_lang,
        other_lang_name: common.other_lang_name,
        terminal_lang: common.terminal_lang,
        common,
        signed_in,
    };
    html(page.render(), if signed_in { StatusCode::OK } else { StatusCode::UNAUTHORIZED }, cookie)
}

#[derive(Template)]
#[template(path = "login.html")]
struct LoginPage {
    lang: &'static str,
    messages: String,
    other_lang: &'static str,
    other_lang_name: &'static str,
    terminal_lang: &'static str,
    common: Common,
    error: Option<&'static str>,
}

impl LoginPage {
    fn t(&self, key: &str) -> &'static str {
        self.common.t(key)
    }
}

/// The manager's login form, with the error of a failed attempt (`code` from the API).
pub fn login_page(language: Language, terminal: Language, status: StatusCode, error_code: Option<&str>) -> Response {
    let common = Common::new(language, terminal);
    let error = error_code.map(|code| match code {
        "login_locked" => common.t("manager.locked"),
        "no_pin" => common.t("manager.no_pin"),
        _ => common.t("manager.wrong_pin"),
    });
    let page = LoginPage {
        lang: common.lang,
        messages: common.messages.clone(),
        other_lang: common.other_lang,
        other_lang_name: common.other_lang_name,
        terminal_lang: common.terminal_lang,
        common,
        error,
    };
    let mut response = html(page.render(), status, None);
    response.headers_mut().insert(header::CONTENT_SECURITY_POLICY, HeaderValue::from_static(CSP));
    response
}

/// One bar of the hourly chart (SVG user units; the chart is 500×190, bars from y=160 up).
struct Bar {
    hour: i8,
    count: u64,
    discount: String,
    x: i64,
    y: i64,
    height: i64,
}

#[derive(Template)]
#[template(path = "manager.html")]
struct ManagerPage {
    lang: &'static str,
    messages: String,
    other_lang: &'static str,
    other_lang_name: &'static str,
    terminal_lang: &'static str,
    common: Common,
    date: String,
    report: crate::report::DailyReport,
    digits: u32,
    leverage_words: String,
    bars: Vec<Bar>,
    reprovision: bool,
    terminal_id: String,
    merchant_id: String,
    ruleset_version: String,
    ruleset_issued: String,
    ruleset_expires: String,
    campaigns: String,
    backlog: String,
    last_sync: String,
    scanner: String,
    profile: String,
    open_old: Vec<(String, String, Money)>,
    /// Redemptions in `conflict`, `rejected` or `parked` (not voided), each with
    /// upstream's words; and "to check: n · amount" for next to the totals.
    flags: Vec<Flag>,
    flag_summary: String,
    /// The first and last day of the shown day's month (the month's export).
    month_from: String,
    month_to: String,
    /// The page shows today: it follows the event stream.
    live: bool,
    /// A past day without a single redemption: the page says so.
    empty_past: bool,
    /// The terminal has a store hub: the page offers the whole store's view.
    hub: bool,
    /// This is the lane's own view (the switch marks which one is shown).
    store_scope: bool,
}

/// A redemption the manager should check: upstream flagged it.
struct Flag {
    id: String,
    time: String,
    coupon: String,
    discount: String,
    message: String,
}

fn needs_check(state: ForwardState) -> bool {
    matches!(state, ForwardState::Conflict | ForwardState::Rejected | ForwardState::Parked)
}

/// What upstream said about a flagged redemption, in words (from its stored answer).
fn upstream_words(language: Language, state: ForwardState, answer: Option<&str>) -> String {
    let answer: serde_json::Value = answer.and_then(|a| serde_json::from_str(a).ok()).unwrap_or_default();
    let field = |name: &str| answer[name].as_str().filter(|v| !v.is_empty()).map(str::to_owned);
    let silent = || messages::text(language, "manager.upstream_silent").to_owned();
    match state {
        ForwardState::Conflict => messages::fill(
            language,
            "manager.upstream_conflict",
            &[
                ("terminal", &field("redeemed_by").unwrap_or_else(|| "?".into())),
                ("at", &field("redeemed_at").unwrap_or_else(|| "?".into())),
            ],
        ),
        ForwardState::Rejected => messages::fill(
            language,
            "manager.upstream_rejected",
            &[("reason", &field("reason").unwrap_or_else(silent))],
        ),
        ForwardState::Parked => {
            messages::fill(language, "manager.upstream_parked", &[("reason", &field("reason").unwrap_or_else(silent))])
        }
        _ => String::new(),
    }
}

impl ManagerPage {
    fn t(&self, key: &str) -> &'static str {
        self.common.t(key)
    }

    fn money(&self, minor: &i64) -> String {
        Money(*minor).display(self.digits)
    }

    fn ratio(&self, leverage: &Option<f64>) -> String {
        leverage.map_or_else(|| "–".into(), |l| format!("{l:.2}"))
    }

    /// `2026-11-28T12:03:04+08:00` → `12:03:04`.
    fn time_of(&self, at: &str) -> String {
        at.get(11..19).unwrap_or(at).to_owned()
    }

    fn state_words(&self, state: &ForwardState) -> &'static str {
        self.t(&format!("manager.state_{state}"))
    }

    /// Who voided, in words (`voided_by` of the report; unknown for voids older than
    /// the ledger's record of it).
    fn by_words(&self, by: &Option<String>) -> &'static str {
        let words = by.as_deref().map_or("", |b| self.t(&format!("manager.by_{b}")));
        if words.is_empty() {
            self.t("manager.by_unknown")
        } else {
            words
        }
    }

    /// Upstream's words for a flagged row; empty for the others.
    fn upstream_words(&self, line: &crate::report::RedemptionLine) -> String {
        if line.voided || !needs_check(line.state) {
            return String::new();
        }
        upstream_words(self.common.language, line.state, line.upstream_answer.as_deref())
    }

    fn reason_words(&self, reason: &Option<String>) -> String {
        reason.clone().filter(|r| !r.trim().is_empty()).unwrap_or_else(|| self.t("manager.no_reason").to_owned())
    }
}

fn bars(report: &crate::report::DailyReport, digits: u32) -> Vec<Bar> {
    let max = report.hours.iter().map(|h| h.totals.redemptions).max().unwrap_or(0).max(1);
    (0..24i8)
        .map(|hour| {
            let line = report.hours.iter().find(|h| h.hour == hour);
            let count = line.map_or(0, |h| h.totals.redemptions);
            let height = (count * 140 / max) as i64;
            Bar {
                hour,
                count,
                discount: Money(line.map_or(0, |h| h.totals.discount)).display(digits),
                x: 20 + i64::from(hour) * 20,
                y: 160 - height,
                height,
            }
        })
        .collect()
}

/// A date the manager's pages cannot show: a page in the reader's language for a browser
/// (with what to do), the spec's error shape for a script.
fn bad_page_date(language: Language, headers: &HeaderMap, code: &str, message: impl Into<String>) -> Response {
    if super::api::wants_html(headers) {
        return super::api::notice_page(
            language,
            StatusCode::BAD_REQUEST,
            "manager.bad_date_title",
            "manager.bad_date",
            code,
        );
    }
    super::api::error(400, code, message)
}

/// What the day's pages share: the page's language (and the cookie that keeps it), the
/// manager's session (else the PIN login), and the asked-for day's view (else why not).
async fn manager_day(
    s: &AppState,
    headers: &HeaderMap,
    query: &HashMap<String, String>,
) -> Result<(Language, Option<HeaderValue>, ManagerView), Response> {
    let (language, cookie) = page_language(s, headers, query);
    match page_role(s, headers).await {
        Some(Role::Manager | Role::Pos) => {}
        _ => {
            let mut response = login_page(language, s.language, StatusCode::OK, None);
            if let Some(cookie) = cookie {
                response.headers_mut().append(header::SET_COOKIE, cookie);
            }
            return Err(response);
        }
    }
    let date = match query.get("date").filter(|d| !d.is_empty()) {
        None => None,
        Some(d) => match d.parse::<jiff::civil::Date>() {
            Ok(date) => Some(date),
            Err(_) => {
                let why = format!("date {d:?} is not a date like 2026-11-28");
                return Err(bad_page_date(language, headers, "bad_query", why));
            }
        },
    };
    match s.ledger.call(move |l| l.manager_view(date)).await {
        Ok(Ok(view)) => Ok((language, cookie, view)),
        Ok(Err(e)) => Err(bad_page_date(language, headers, "bad_date", e)),
        Err(_) => Err(super::api::error(503, "stopping", "the daemon is stopping")),
    }
}

async fn manager(
    State(s): State<Arc<AppState>>,
    Query(query): Query<HashMap<String, String>>,
    headers: HeaderMap,
) -> Response {
    let (language, cookie, view) = match manager_day(&s, &headers, &query).await {
        Ok(day) => day,
        Err(answer) => return answer,
    };
    if s.hub.is_some() && query.get("scope").is_some_and(|v| v == "store") {
        let report = read_store_day(&s, view.date).await;
        let zone = jiff::tz::TimeZone::get(&view.report.timezone).unwrap_or(jiff::tz::TimeZone::UTC);
        let now = crate::clock::rfc3339(s.clock.now(), &zone);
        // 200 either way: the page itself is fine and says what it can show (scripts get
        // the API's 503 `hub_unreachable`).
        let page = manager_store_page(language, s.language, &view, report, &now);
        return html(page.render(), StatusCode::OK, cookie);
    }
    let status = status_json(&s).await.unwrap_or_default();
    let mut page = manager_page(language, s.language, view, &status);
    page.hub = s.hub.is_some();
    html(page.render(), StatusCode::OK, cookie)
}

/// How long the page waits for the hub before it says the hub does not answer.
const STORE_READ_LIMIT: std::time::Duration = std::time::Duration::from_secs(5);

/// The store's day as the hub's stream tells it now; None when the hub does not answer
/// (the page then shows no numbers: nothing stale passes for current).
async fn read_store_day(s: &AppState, date: jiff::civil::Date) -> Option<crate::storeday::StoreReport> {
    let hub = s.hub.as_ref()?;
    if !hub.state().connected {
        return None;
    }
    match tokio::time::timeout(STORE_READ_LIMIT, s.store_day.report(hub, &s.ledger, Some(date))).await {
        Ok(Ok(report)) => Some(report),
        Ok(Err(e)) => {
            tracing::warn!(error = %e, "the store's day could not be read for the manager's page");
            None
        }
        Err(_) => {
            tracing::warn!("the store hub did not answer the manager's page in time");
            None
        }
    }
}

/// A lane is marked behind when its last event is more than this many minutes older
/// than the newest lane's.
const BEHIND_MINUTES: i64 = 10;

/// One line of the store view's per-lane table.
struct StoreLaneRow {
    lane: String,
    terminal_id: String,
    redemptions: u64,
    discount: String,
    basket_total: String,
    last_event_at: String,
    /// `HH:MM:SS` of the last event.
    last_event: String,
    behind: bool,
}

/// One redemption of a store conflict: which lane, when.
struct StoreConflictMember {
    lane: String,
    terminal_id: String,
    redemption_id: String,
    time: String,
}

/// A store conflict in words.
struct StoreConflictRow {
    kind: &'static str,
    kind_words: &'static str,
    what: String,
    members: Vec<StoreConflictMember>,
}

/// A redemption of the store's list, with its lane.
struct StoreLine {
    redemption_id: String,
    time: String,
    lane: String,
    terminal_id: String,
    coupon_id: String,
    campaign: String,
    discount: String,
    basket_total: String,
    dynamic: bool,
    voided: bool,
}

/// What the store view shows when the hub answered.
struct StoreView {
    report: crate::report::DailyReport,
    as_of: String,
    discount: String,
    basket_total: String,
    leverage_words: String,
    lanes: Vec<StoreLaneRow>,
    any_behind: bool,
    behind_explained: String,
    conflicts: Vec<StoreConflictRow>,
    lines: Vec<StoreLine>,
}

/// The manager's page, whole store (`?scope=store`): the store's totals, one line per
/// lane, the store conflicts and every lane's redemptions; or, with the hub silent, only
/// that it is.
#[derive(Template)]
#[template(path = "manager_store.html")]
struct ManagerStorePage {
    lang: &'static str,
    messages: String,
    other_lang: &'static str,
    other_lang_name: &'static str,
    terminal_lang: &'static str,
    common: Common,
    date: String,
    hub: bool,
    store_scope: bool,
    /// None: the hub does not answer.
    store: Option<StoreView>,
}

impl ManagerStorePage {
    fn t(&self, key: &str) -> &'static str {
        self.common.t(key)
    }
}

/// `2026-11-28T12:03:04+08:00` → `12:03:04`.
fn clock_time(at: &str) -> String {
    at.get(11..19).unwrap_or(at).to_owned()
}

/// The lanes, each marked behind when its last event is more than [`BEHIND_MINUTES`]
/// older than the newest lane's.
fn lane_rows(lanes: &[crate::storeday::LaneLine], digits: u32) -> Vec<StoreLaneRow> {
    let at = |l: &crate::storeday::LaneLine| l.last_event_at.parse::<jiff::Timestamp>().ok();
    let newest = lanes.iter().filter_map(at).max();
    lanes
        .iter()
        .map(|l| StoreLaneRow {
            lane: l.lane.clone(),
            terminal_id: l.terminal_id.clone(),
            redemptions: l.redemptions,
            discount: Money(l.discount).display(digits),
            basket_total: Money(l.basket_total).display(digits),
            last_event_at: l.last_event_at.clone(),
            last_event: clock_time(&l.last_event_at),
            behind: match (newest, at(l)) {
                (Some(newest), Some(last)) => newest.as_second() - last.as_second() > BEHIND_MINUTES * 60,
                _ => false,
            },
        })
        .collect()
}

fn manager_store_page(
    language: Language,
    terminal: Language,
    view: &ManagerView,
    report: Option<crate::storeday::StoreReport>,
    now: &str,
) -> ManagerStorePage {
    let common = Common::new(language, terminal);
    let digits = view.digits;
    let money = |minor: i64| Money(minor).display(digits);
    let store = report.map(|report| {
        let leverage_words = match report.day.totals.leverage {
            Some(l) => messages::fill(language, "manager.leverage_words", &[("ratio", &format!("{l:.2}"))]),
            None => common.t("manager.leverage_none").to_owned(),
        };
        let lanes = lane_rows(&report.lanes, digits);
        let conflicts = report
            .store_conflicts
            .iter()
            .map(|c| StoreConflictRow {
                kind: c.kind,
                kind_words: match c.kind {
                    "coupon" => common.t("manager.store_conflict_coupon"),
                    "holder_daily_limit" => common.t("manager.store_conflict_holder"),
                    _ => c.kind,
                },
                what: match &c.coupon_id {
                    Some(coupon) => coupon.clone(),
                    None => messages::fill(
                        language,
                        "manager.store_conflict_holder_what",
                        &[
                            ("campaign", c.campaign_id.as_deref().unwrap_or("?")),
                            ("holder", c.holder.as_deref().unwrap_or("?")),
                        ],
                    ),
                },
                members: c
                    .redemptions
                    .iter()
                    .map(|m| StoreConflictMember {
                        lane: m.lane.clone(),
                        terminal_id: m.terminal_id.clone(),
                        redemption_id: m.redemption_id.clone(),
                        time: clock_time(&m.at),
                    })
                    .collect(),
            })
            .collect();
        let names: HashMap<&str, &str> =
            report.day.campaigns.iter().map(|c| (c.campaign_id.as_str(), c.name.as_str())).collect();
        let lines = report
            .day
            .redemptions
            .iter()
            .map(|r| StoreLine {
                redemption_id: r.redemption_id.clone(),
                time: clock_time(&r.at),
                lane: r.lane.clone().unwrap_or_else(|| "?".into()),
                terminal_id: r.terminal_id.clone().unwrap_or_default(),
                coupon_id: r.coupon_id.clone(),
                campaign: names.get(r.campaign_id.as_str()).copied().unwrap_or(&r.campaign_id).to_owned(),
                discount: money(r.discount),
                basket_total: money(r.basket_total),
                dynamic: r.presentation == "dynamic",
                voided: r.voided,
            })
            .collect();
        StoreView {
            as_of: messages::fill(language, "manager.store_as_of", &[("time", &clock_time(now))]),
            discount: money(report.day.totals.discount),
            basket_total: money(report.day.totals.basket_total),
            leverage_words,
            any_behind: lanes.iter().any(|l| l.behind),
            behind_explained: messages::fill(
                language,
                "manager.store_behind_explained",
                &[("minutes", &BEHIND_MINUTES.to_string())],
            ),
            lanes,
            conflicts,
            lines,
            report: report.day,
        }
    });
    ManagerStorePage {
        lang: common.lang,
        messages: common.messages.clone(),
        other_lang: common.other_lang,
        other_lang_name: common.other_lang_name,
        terminal_lang: common.terminal_lang,
        date: view.date.to_string(),
        hub: true,
        store_scope: true,
        store,
        common,
    }
}

fn manager_page(language: Language, terminal: Language, view: ManagerView, status: &serde_json::Value) -> ManagerPage {
    let common = Common::new(language, terminal);
    let text = |v: &serde_json::Value| match v {
        serde_json::Value::Null => common.t("manager.none").to_owned(),
        serde_json::Value::String(s) => s.clone(),
        other => other.to_string(),
    };
    let leverage_words = match view.report.totals.leverage {
        Some(l) => messages::fill(language, "manager.leverage_words", &[("ratio", &format!("{l:.2}"))]),
        None => common.t("manager.leverage_none").to_owned(),
    };
    let flags: Vec<Flag> = view
        .report
        .redemptions
        .iter()
        .filter(|r| !r.voided && needs_check(r.state))
        .map(|r| Flag {
            id: r.redemption_id.clone(),
            time: r.at.get(11..19).unwrap_or(&r.at).to_owned(),
            coupon: r.coupon_id.clone(),
            discount: Money(r.discount).display(view.digits),
            message: upstream_words(language, r.state, r.upstream_answer.as_deref()),
        })
        .collect();
    let at_stake = view
        .report
        .redemptions
        .iter()
        .filter(|r| !r.voided && needs_check(r.state))
        .fold(0i64, |sum, r| sum.saturating_add(r.discount));
    let flag_summary = messages::fill(
        language,
        "manager.check_summary",
        &[("count", &flags.len().to_string()), ("amount", &Money(at_stake).display(view.digits))],
    );
    let sync_state = status["sync"]["state"].as_str().unwrap_or("");
    let ruleset = &view.status.ruleset;
    let field = |name: &str| ruleset.as_ref().map_or_else(|| common.t("manager.none").to_owned(), |r| text(&r[name]));
    ManagerPage {
        lang: common.lang,
        messages: common.messages.clone(),
        other_lang: common.other_lang,
        other_lang_name: common.other_lang_name,
        terminal_lang: common.terminal_lang,
        date: view.date.to_string(),
        bars: bars(&view.report, view.digits),
        digits: view.digits,
        leverage_words,
        reprovision: sync_state == "paused",
        terminal_id: text(&status["terminal_id"]),
        merchant_id: text(&status["merchant_id"]),
        ruleset_version: field("version"),
        ruleset_issued: field("issued_at"),
        ruleset_expires: field("expires_at"),
        campaigns: view.campaigns.map_or_else(|| common.t("manager.none").to_owned(), |n| n.to_string()),
        backlog: format!("{} · {}", view.status.unsynced, view.status.unsynced_value.display(view.digits)),
        last_sync: view.status.last_sync.clone().unwrap_or_else(|| common.t("manager.never").to_owned()),
        scanner: format!("{} {}", text(&status["scanner"]["state"]), text(&status["scanner"]["port"])),
        profile: text(&status["scanner"]["profile"]),
        open_old: view.open_old,
        flags,
        flag_summary,
        month_from: view.date.first_of_month().to_string(),
        month_to: view.date.last_of_month().to_string(),
        live: view.date == view.today,
        empty_past: view.date < view.today && view.report.redemptions.is_empty(),
        hub: false,
        store_scope: false,
        report: view.report,
        common,
    }
}

/// One line of the printed sheet's compact list of redemptions.
struct SheetLine {
    time: String,
    campaign: String,
    coupon: String,
    basket: String,
    discount: String,
    voided: bool,
}

/// A void on the printed sheet: what was voided, by whom and why.
struct SheetVoid {
    time: String,
    coupon: String,
    discount: String,
    by: &'static str,
    reason: String,
}

/// The A4 daily sheet an accountant files: who, when, the totals, per campaign, voids,
/// what to check and a signature line; none of the terminal's technical details.
#[derive(Template)]
#[template(path = "sheet.html")]
struct SheetPage {
    lang: &'static str,
    common: Common,
    date: String,
    shop: String,
    merchant_id: String,
    terminal_id: String,
    printed: String,
    report: crate::report::DailyReport,
    digits: u32,
    leverage_words: String,
    voids: Vec<SheetVoid>,
    flags: Vec<Flag>,
    flag_summary: String,
    /// The list in two halves, printed side by side so a normal day fits one page.
    halves: Vec<Vec<SheetLine>>,
}

impl SheetPage {
    fn t(&self, key: &str) -> &'static str {
        self.common.t(key)
    }

    fn money(&self, minor: &i64) -> String {
        Money(*minor).display(self.digits)
    }

    fn ratio(&self, leverage: &Option<f64>) -> String {
        leverage.map_or_else(|| "–".into(), |l| format!("{l:.2}"))
    }
}

/// `GET /manager/sheet?date=YYYY-MM-DD`: the day's sheet for print (manager session or
/// the till's token; the page's language as the other pages).
async fn sheet(
    State(s): State<Arc<AppState>>,
    Query(query): Query<HashMap<String, String>>,
    headers: HeaderMap,
) -> Response {
    let (language, cookie, view) = match manager_day(&s, &headers, &query).await {
        Ok(day) => day,
        Err(answer) => return answer,
    };
    // The daemon's clock in the rule set's zone (the report's), so the printed time and
    // the business day are read on the same clock; UTC only if the zone is unknown.
    let zone = jiff::tz::TimeZone::get(&view.report.timezone).unwrap_or(jiff::tz::TimeZone::UTC);
    let stamp = crate::clock::rfc3339(s.clock.now(), &zone);
    let printed = match (stamp.get(..10), stamp.get(11..16)) {
        (Some(day), Some(time)) => format!("{day} {time}"),
        _ => stamp.clone(),
    };
    let page = sheet_page(language, s.language, view, &s, printed);
    html(page.render(), StatusCode::OK, cookie)
}

fn sheet_page(language: Language, terminal: Language, view: ManagerView, s: &AppState, printed: String) -> SheetPage {
    let common = Common::new(language, terminal);
    let digits = view.digits;
    let report = view.report;
    let money = |minor: i64| Money(minor).display(digits);
    let time_of = |at: &str| at.get(11..16).unwrap_or(at).to_owned();
    let leverage_words = match report.totals.leverage {
        Some(l) => messages::fill(language, "manager.leverage_words", &[("ratio", &format!("{l:.2}"))]),
        None => common.t("manager.leverage_none").to_owned(),
    };
    let names: HashMap<&str, &str> =
        report.campaigns.iter().map(|c| (c.campaign_id.as_str(), c.name.as_str())).collect();
    let mut lines: Vec<SheetLine> = report
        .redemptions
        .iter()
        .map(|r| SheetLine {
            time: time_of(&r.at),
            campaign: names.get(r.campaign_id.as_str()).copied().unwrap_or(&r.campaign_id).to_owned(),
            coupon: r.coupon_id.clone(),
            basket: money(r.basket_total),
            discount: money(r.discount),
            voided: r.voided,
        })
        .collect();
    let right = lines.split_off(lines.len().div_ceil(2));
    let voids = report
        .redemptions
        .iter()
        .filter(|r| r.voided)
        .map(|r| {
            let by = r.voided_by.as_deref().map_or("", |b| common.t(&format!("manager.by_{b}")));
            SheetVoid {
                time: time_of(&r.at),
                coupon: r.coupon_id.clone(),
                discount: money(r.discount),
                by: if by.is_empty() { common.t("manager.by_unknown") } else { by },
                reason: r
                    .void_reason
                    .clone()
                    .filter(|v| !v.trim().is_empty())
                    .unwrap_or_else(|| common.t("manager.no_reason").to_owned()),
            }
        })
        .collect();
    let flagged: Vec<&crate::report::RedemptionLine> =
        report.redemptions.iter().filter(|r| !r.voided && needs_check(r.state)).collect();
    let at_stake = flagged.iter().fold(0i64, |sum, r| sum.saturating_add(r.discount));
    let flag_summary = messages::fill(
        language,
        "manager.check_summary",
        &[("count", &flagged.len().to_string()), ("amount", &money(at_stake))],
    );
    let flags = flagged
        .iter()
        .map(|r| Flag {
            id: r.redemption_id.clone(),
            time: time_of(&r.at),
            coupon: r.coupon_id.clone(),
            discount: money(r.discount),
            message: upstream_words(language, r.state, r.upstream_answer.as_deref()),
        })
        .collect();
    SheetPage {
        lang: common.lang,
        date: view.date.to_string(),
        shop: s.merchant_name.clone().unwrap_or_else(|| s.merchant_id.clone()),
        merchant_id: s.merchant_id.clone(),
        terminal_id: s.terminal_id.clone().unwrap_or_else(|| common.t("manager.sheet_no_terminal").to_owned()),
        printed,
        digits,
        leverage_words,
        voids,
        flags,
        flag_summary,
        halves: vec![lines, right],
        report,
        common,
    }
}

/// `GET /manager/export.csv?from=YYYY-MM-DD&to=YYYY-MM-DD&lang=zh-CN|en`: the days'
/// redemptions as one CSV for a spreadsheet (UTF-8 with BOM, headers and words in the
/// language, a totals row). The API's `?format=csv` stays the machine CSV.
async fn export_csv(
    State(s): State<Arc<AppState>>,
    Query(query): Query<HashMap<String, String>>,
    headers: HeaderMap,
) -> Response {
    // The file's language: `lang`, else the page's; no cookie is set by a download.
    let (language, _) = page_language(&s, &headers, &query);
    match page_role(&s, &headers).await {
        Some(Role::Manager | Role::Pos) => {}
        _ => return super::api::error(401, "manager_required", "the manager's session is needed"),
    }
    let day = |name: &str| query.get(name).and_then(|d| d.parse::<jiff::civil::Date>().ok());
    let (Some(from), Some(to)) = (day("from"), day("to")) else {
        return super::api::error(400, "bad_query", "`from` and `to` must be dates like 2026-11-28");
    };
    let reports = match s.ledger.call(move |l| l.reports_between(from, to)).await {
        Ok(Ok(reports)) => reports,
        Ok(Err(e)) => return super::api::error(400, "bad_date", e),
        Err(_) => return super::api::error(503, "stopping", "the daemon is stopping"),
    };
    let body = crate::report::spreadsheet_csv(&reports, language);
    let name = if from == to { format!("redeemd-{from}.csv") } else { format!("redeemd-{from}_{to}.csv") };
    let disposition = format!("attachment; filename=\"{name}\"");
    let mut response = ([(header::CONTENT_TYPE, "text/csv; charset=utf-8"), (header::CACHE_CONTROL, "no-store")], body)
        .into_response();
    if let Ok(value) = HeaderValue::from_str(&disposition) {
        response.headers_mut().insert(header::CONTENT_DISPOSITION, value);
    }
    response
}

/// Ends the session on the terminal, not only in this browser: a copied cookie stops
/// working too.
/// `POST /manager/login` (the PIN form): a manager session, or the form again with the
/// refusal (a script gets the spec's error shape).
async fn manager_login(
    State(s): State<Arc<AppState>>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Response {
    let answer = check_manager_pin(&s, body).await;
    // A browser's form post gets the login page again with the error, same status.
    let wants_html = headers.get(header::ACCEPT).and_then(|v| v.to_str().ok()).is_some_and(|v| v.contains("text/html"));
    match answer {
        Ok(()) => super::api::start_session(&s, "manager", "/manager").await,
        Err((status, code, _)) if wants_html && status != 413 => {
            let (language, _) = page_language(&s, &headers, &HashMap::new());
            login_page(
                language,
                s.language,
                StatusCode::from_u16(status).unwrap_or(StatusCode::UNAUTHORIZED),
                Some(code),
            )
        }
        Err((status, code, message)) => super::api::error(status, code, message),
    }
}

/// Checks the posted PIN: Ok, or (status, code, message) of the refusal.
async fn check_manager_pin(
    s: &Arc<AppState>,
    body: Result<Bytes, BytesRejection>,
) -> Result<(), (u16, &'static str, &'static str)> {
    let body = match body {
        Ok(b) => b,
        Err(rejection) if rejection.status() == StatusCode::PAYLOAD_TOO_LARGE => {
            return Err((413, "body_too_large", "the body is over 64 KiB"))
        }
        Err(_) => return Err((400, "bad_form", "the form could not be read")),
    };
    let Some(pin) = url::form_urlencoded::parse(&body).find(|(k, _)| k == "pin").map(|(_, v)| v.into_owned()) else {
        return Err((400, "bad_form", "the form has no `pin` field"));
    };
    let Some(hash) = s.manager_pin.current().filter(|h| !h.is_empty()) else {
        return Err((401, "no_pin", "no manager PIN is set: run `redeemd manager-pin set` on the terminal"));
    };
    // Counted as wrong when admitted; nothing is held while the hash is checked, so a
    // client that goes away mid-check leaves the login as it would a wrong PIN.
    let admitted = s.login.lock().unwrap_or_else(|e| e.into_inner()).admit(s.clock.now());
    if admitted.is_err() {
        return Err((429, "login_locked", "five wrong PINs in a row: the login is locked for five minutes"));
    }
    let state = s.clone();
    let ok = tokio::task::spawn_blocking(move || {
        let ok = crate::secret::verify_pin(&hash, &pin);
        // Inside the task, so a right PIN counts even if its client is gone by now.
        if ok {
            state.login.lock().unwrap_or_else(|e| e.into_inner()).succeeded();
        }
        ok
    })
    .await
    .unwrap_or(false);
    if !ok {
        return Err((401, "wrong_pin", "wrong PIN"));
    }
    Ok(())
}

async fn logout(State(s): State<Arc<AppState>>, headers: HeaderMap) -> Response {
    if let Some(token) = super::api::cookie(&headers, super::api::SESSION_COOKIE) {
        let hash = crate::secret::sha256(token.as_bytes());
        let now = s.clock.now();
        let ended =
            s.ledger.call(move |l| l.agent.store_mut().write(|c| crate::store::end_session_in(c, &hash, now))).await;
        if !matches!(ended, Ok(Ok(()))) {
            return super::api::error(503, "unavailable", "the session could not be ended; try again");
        }
        // Event streams opened with a session look again at once.
        s.sessions_ended.fetch_add(1, std::sync::atomic::Ordering::Release);
    }
    let mut response = (StatusCode::SEE_OTHER, [(header::LOCATION, "/manager")]).into_response();
    let cookie = format!("{}=; Path=/; HttpOnly; SameSite=Strict; Max-Age=0", super::api::SESSION_COOKIE);
    if let Ok(value) = HeaderValue::from_str(&cookie) {
        response.headers_mut().insert(header::SET_COOKIE, value);
    }
    response
}

/// `redeemd doctor` for the manager's page (JSON; the checks that need the network
/// take a few seconds, so the page asks for them with a button). The English fields of
/// `doctor --json` stay for scripts; each finding's `text` is in the page's language.
async fn doctor(
    State(s): State<Arc<AppState>>,
    headers: HeaderMap,
    Query(query): Query<HashMap<String, String>>,
) -> Response {
    // The page passes its own language; this answer sets no cookie (the page did).
    let (language, _) = page_language(&s, &headers, &query);
    match page_role(&s, &headers).await {
        Some(Role::Manager | Role::Pos) => {}
        _ => return super::api::error(401, "manager_required", "the manager's session is needed"),
    }
    let Some(config_path) = s.config_path.clone() else {
        return super::api::error(404, "no_config", "this daemon was started without a config file");
    };
    let clock = s.clock.clone();
    match tokio::task::spawn_blocking(move || crate::doctor::examine(&config_path, &*clock)).await {
        Ok(report) => (
            [(header::CONTENT_TYPE, "application/json"), (header::CACHE_CONTROL, "no-store")],
            report.to_page_json(language).to_string(),
        )
            .into_response(),
        Err(_) => super::api::error(500, "internal", "doctor failed"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::storeday::LaneLine;

    fn lane(n: &str, at: &str) -> LaneLine {
        LaneLine {
            terminal_id: format!("lane-{n}"),
            lane: n.into(),
            redemptions: 2,
            discount: 1500,
            basket_total: 9800,
            last_event_at: at.into(),
        }
    }

    #[test]
    fn a_lane_ten_minutes_older_than_the_newest_is_behind() {
        let rows = lane_rows(
            &[
                lane("1", "2026-11-28T12:20:00+08:00"),
                lane("2", "2026-11-28T12:10:00+08:00"),
                lane("3", "2026-11-28T12:09:59+08:00"),
                lane("4", "2026-11-28T04:20:00Z"),
            ],
            2,
        );
        let behind: Vec<(&str, bool)> = rows.iter().map(|r| (r.lane.as_str(), r.behind)).collect();
        assert_eq!(behind, [("1", false), ("2", false), ("3", true), ("4", false)]);
        assert_eq!((rows[0].last_event.as_str(), rows[0].discount.as_str()), ("12:20:00", "15.00"));
        assert_eq!(rows[0].basket_total, "98.00");
    }

    #[test]
    fn an_unreadable_time_is_never_behind() {
        let rows = lane_rows(&[lane("1", "2026-11-28T12:20:00+08:00"), lane("2", "?")], 2);
        assert!(rows.iter().all(|r| !r.behind));
    }
}
