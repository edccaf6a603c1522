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
        .route("/manager/logout", post(logout))
        .route("/manager/doctor", get(doctor))
        .route("/assets/{name}", get(asset))
        .layer(axum::middleware::map_response(page_headers))
}

async fn page_headers(mut response: Response) -> Response {
    let headers = response.headers_mut();
    headers.insert(header::CONTENT_SECURITY_POLICY, HeaderValue::from_static(CSP));
    headers.insert(header::X_CONTENT_TYPE_OPTIONS, HeaderValue::from_static("nosniff"));
    headers.insert(header::REFERRER_POLICY, HeaderValue::from_static("no-referrer"));
    headers.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    response
}

/// The embedded assets: (name, content type, body).
const ASSETS: &[(&str, &str, &str)] = &[
    ("style.css", "text/css; charset=utf-8", include_str!("../../assets/style.css")),
    ("cashier.js", "text/javascript; charset=utf-8", include_str!("../../assets/cashier.js")),
    ("manager.js", "text/javascript; charset=utf-8", include_str!("../../assets/manager.js")),
    ("demo.js", "text/javascript; charset=utf-8", include_str!("../../assets/demo.js")),
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
        "login_locked" | "login_busy" => common.t("manager.locked"),
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

async fn manager(
    State(s): State<Arc<AppState>>,
    Query(query): Query<HashMap<String, String>>,
    headers: HeaderMap,
) -> Response {
    let (language, cookie) = page_language(&s, &headers, &query);
    match page_role(&s, &headers).await {
        Some(Role::Manager | Role::Pos) => {}
        _ => {
            let mut response = login_page(language, s.language, StatusCode::OK, None);
            if let Some(cookie) = cookie {
                response.headers_mut().append(header::SET_COOKIE, cookie);
            }
            return response;
        }
    }
    let date = match query.get("date").filter(|d| !d.is_empty()) {
        None => None,
        Some(d) => match d.parse::<jiff::civil::Date>() {
            Ok(date) => Some(date),
            Err(_) => return super::api::error(400, "bad_query", format!("date {d:?} is not a date like 2026-11-28")),
        },
    };
    let view = match s.ledger.call(move |l| l.manager_view(date)).await {
        Ok(Ok(view)) => view,
        Ok(Err(e)) => return super::api::error(400, "bad_date", e),
        Err(_) => return super::api::error(503, "stopping", "the daemon is stopping"),
    };
    let status = status_json(&s).await.unwrap_or_default();
    let page = manager_page(language, s.language, view, &status);
    html(page.render(), StatusCode::OK, cookie)
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
        report: view.report,
        common,
    }
}

/// Ends the session on the terminal, not only in this browser: a copied cookie stops
/// working too.
async fn logout(State(s): State<Arc<AppState>>, headers: HeaderMap) -> Response {
    if let Some(token) = super::api::cookie(&headers, super::api::SESSION_COOKIE) {
        let hash = crate::secret::sha256(token.as_bytes());
        let now = s.clock.now();
        let ended =
            s.ledger.call(move |l| l.agent.store_mut().write(|c| crate::store::end_session_in(c, &hash, now))).await;
        if !matches!(ended, Ok(Ok(()))) {
            return super::api::error(503, "unavailable", "the session could not be ended; try again");
        }
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
