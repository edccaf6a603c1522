//! The local API (`spec/terminal-interfaces.md`, "Local API") and the page sessions:
//! axum handlers that turn HTTP into ledger-owner jobs and their answers into JSON.
//!
//! The edge owns authentication (POS bearer token, cashier and manager session cookies),
//! body limits, request timeouts, the spec's error shapes and the Idempotency-Key
//! fingerprint; everything that reads or changes the ledger runs on the owner
//! ([`super::ledger`]). It must not open the database or decide codes itself.

// Handlers' helpers return the HTTP answer as their error, sent at once; boxing it
// would only add noise on a path that ends the request anyway.
#![allow(clippy::result_large_err)]

use super::ledger::{Answer, Idempotency, LedgerHandle, Source};
use super::metrics::Metrics;
use super::{body, pages};
use crate::clock::Clock;
use crate::events::{EventBus, EventKind};
use crate::secret::{self, WatchedFile};
use crate::store;
use axum::body::Bytes;
use axum::extract::rejection::{BytesRejection, PathRejection};
use axum::extract::{DefaultBodyLimit, Path, Query, State};
use axum::http::{header, HeaderMap, HeaderValue, Method, StatusCode, Uri};
use axum::response::sse::{Event as SseEvent, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::Router;
use serde_json::{json, Value};
use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio_util::sync::CancellationToken;

/// Bodies above this are refused with 413.
pub const BODY_LIMIT: usize = 64 * 1024;
/// Every call but the event stream ends within this (a `wait` is at most 30 s).
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(40);
pub const MAX_WAIT_SECONDS: f64 = 30.0;
pub const SESSION_COOKIE: &str = "redeemd_session";
/// Keep-alive comments on idle event streams (the spec: at least every 15 s; margin for
/// a busy machine). A stream also ends this soon after its token is rotated away.
pub const SSE_KEEP_ALIVE: Duration = Duration::from_secs(10);
const CASHIER_SESSION_DAYS: i64 = 365;
const MANAGER_SESSION_HOURS: i64 = 12;
const LOGIN_ATTEMPTS: u32 = 5;
const LOGIN_LOCK: Duration = Duration::from_secs(300);

/// The scanner as `/v1/status` shows it.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct ScannerStatus {
    pub state: &'static str,
    pub port: Option<String>,
    pub profile: Option<String>,
}

/// The forwarder as `/v1/status` and `sync` events show it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SyncStatus {
    pub state: &'static str,
    pub last_error: Option<String>,
}

/// Who is asking.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    /// The till, with the POS token: everything.
    Pos,
    /// The cashier screen: checkouts, codes, voids inside the current checkout.
    Cashier,
    /// The manager's pages: everything a cashier may, plus reports and any void.
    Manager,
}

/// What the handlers share.
pub struct AppState {
    pub ledger: LedgerHandle,
    pub bus: Arc<EventBus>,
    pub metrics: Arc<Metrics>,
    pub clock: Arc<dyn Clock>,
    pub pos_token: WatchedFile,
    pub manager_pin: WatchedFile,
    pub data_dir: PathBuf,
    pub terminal_id: Option<String>,
    pub merchant_id: String,
    pub language: crate::messages::Language,
    pub scanner: Mutex<ScannerStatus>,
    pub sync: Mutex<Option<SyncStatus>>,
    pub shutdown: CancellationToken,
    pub login: Mutex<LoginThrottle>,
    /// The config file the daemon started with (`doctor` on the manager's page).
    pub config_path: Option<PathBuf>,
}

impl std::fmt::Debug for AppState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AppState").finish_non_exhaustive()
    }
}

/// Five wrong PINs in a row lock the login for five minutes.
#[derive(Debug, Default)]
pub struct LoginThrottle {
    wrong: u32,
    locked_until: Option<std::time::Instant>,
    checking: bool,
}

pub fn router(state: Arc<AppState>, extra: Option<Router<Arc<AppState>>>) -> Router {
    let timed = Router::new()
        .route("/v1/checkouts", post(open_checkout))
        .route("/v1/checkouts/{id}", get(get_checkout))
        .route("/v1/checkouts/{id}/codes", post(add_code))
        .route("/v1/checkouts/{id}/close", post(close_checkout))
        .route("/v1/redemptions/{id}/void", post(void))
        .route("/v1/status", get(status))
        .route("/v1/reports/daily", get(report_daily))
        .route("/metrics", get(metrics))
        .route("/manager/login", post(manager_login))
        .route("/cashier/open", get(cashier_open))
        .merge(pages::router())
        .merge(extra.unwrap_or_default())
        .layer(axum::middleware::from_fn(request_timeout));
    Router::new()
        .route("/v1/events", get(events))
        .merge(timed)
        .fallback(|| async { error(404, "not_found", "no such path") })
        .method_not_allowed_fallback(|| async {
            error(405, "method_not_allowed", "this path does not take that method")
        })
        .layer(DefaultBodyLimit::max(BODY_LIMIT))
        .with_state(state)
}

/// Every call but the event stream ends within [`REQUEST_TIMEOUT`], body reading included,
/// answered in the spec's error shape.
async fn request_timeout(request: axum::extract::Request, next: axum::middleware::Next) -> Response {
    match tokio::time::timeout(REQUEST_TIMEOUT, next.run(request)).await {
        Ok(response) => response,
        Err(_) => error(408, "request_timeout", format!("the request took over {} s", REQUEST_TIMEOUT.as_secs())),
    }
}

/// A path segment that is not valid UTF-8 (`%ff`) is a 400 in the spec's shape.
fn path_id(path: Result<Path<String>, PathRejection>) -> Result<String, Response> {
    path.map(|Path(id)| id).map_err(|e| error(400, "bad_path", e.body_text()))
}

pub fn error(status: u16, code: &str, message: impl Into<String>) -> Response {
    respond(Answer::error(status, code, message))
}

fn respond(answer: Answer) -> Response {
    let status = StatusCode::from_u16(answer.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    (status, [(header::CONTENT_TYPE, answer.content_type)], answer.body).into_response()
}

fn gone() -> Response {
    error(503, "shutting_down", "the daemon is stopping; retry in a moment")
}

pub fn cookie(headers: &HeaderMap, name: &str) -> Option<String> {
    headers.get_all(header::COOKIE).iter().filter_map(|v| v.to_str().ok()).flat_map(|v| v.split(';')).find_map(|pair| {
        let (k, v) = pair.trim().split_once('=')?;
        (k == name).then(|| v.to_owned())
    })
}

/// The credentials of `Authorization: Bearer …` (the scheme is case-insensitive).
fn bearer(headers: &HeaderMap) -> Option<&str> {
    let auth = headers.get(header::AUTHORIZATION)?.to_str().ok()?;
    let (scheme, credentials) = auth.split_once(' ').unwrap_or((auth, ""));
    Some(if scheme.eq_ignore_ascii_case("bearer") { credentials.trim() } else { "" })
}

/// The role of the request, or the 401 that answers it.
async fn authorize(s: &AppState, headers: &HeaderMap) -> Result<Role, Response> {
    if let Some(offered) = bearer(headers) {
        if !offered.is_empty() && s.pos_token.matches(offered) {
            return Ok(Role::Pos);
        }
        return Err(unauthorized());
    }
    if let Some(token) = cookie(headers, SESSION_COOKIE) {
        let hash = secret::sha256(token.as_bytes());
        let now = s.clock.now();
        let session = s.ledger.call(move |l| l.agent.store().session(&hash, now)).await;
        match session {
            // A new PIN ends the manager sessions opened with the old one.
            Ok(Ok(Some((kind, created)))) if kind == "manager" => {
                if s.manager_pin.changed_since(created) {
                    return Err(unauthorized());
                }
                return Ok(Role::Manager);
            }
            Ok(Ok(Some(_))) => return Ok(Role::Cashier),
            Ok(_) => {}
            Err(_) => return Err(gone()),
        }
    }
    Err(unauthorized())
}

fn unauthorized() -> Response {
    error(
        401,
        "unauthorized",
        "send Authorization: Bearer <token> (`redeemd pos-token` prints it) or open a page session",
    )
}

/// The body's bytes, or the 413/400 that answers it.
fn body_bytes(body: Result<Bytes, BytesRejection>) -> Result<Bytes, Response> {
    body.map_err(|rejection| {
        if rejection.status() == StatusCode::PAYLOAD_TOO_LARGE {
            error(413, "body_too_large", format!("the body is over {} KiB", BODY_LIMIT / 1024))
        } else {
            error(400, "bad_body", rejection.body_text())
        }
    })
}

fn bad_body(e: body::BadBody) -> Response {
    error(400, e.code, e.message)
}

/// The first steps of every POST: authorization, the body, and the Idempotency-Key — a
/// retry is answered from the ledger before anything else is looked at, and a key reused
/// for another request is refused, even when that request would be a 400.
async fn post_prelude(
    s: &AppState,
    method: &Method,
    uri: &Uri,
    headers: &HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Result<(Role, Bytes, Option<Idempotency>), Response> {
    let role = authorize(s, headers).await?;
    let bytes = body_bytes(body)?;
    let idem = idempotency(headers, method, uri, &bytes)?;
    if let Some(idem) = &idem {
        let key = idem.key.clone();
        let stored = s.ledger.call(move |l| l.agent.store().idempotent_answer(&key)).await;
        match stored {
            Ok(Ok(Some(stored))) if stored.fingerprint == idem.fingerprint => {
                let content_type = if stored.body.starts_with('{') { super::ledger::JSON } else { super::ledger::CSV };
                return Err(respond(Answer { status: stored.status, content_type, body: stored.body }));
            }
            Ok(Ok(Some(_))) => {
                return Err(error(
                    422,
                    "idempotency_key_reused",
                    "this Idempotency-Key was used for another request (path or body differ); use a new key",
                ))
            }
            Ok(Ok(None)) => {}
            Ok(Err(e)) => return Err(error(500, "internal", format!("cannot read the ledger: {e}"))),
            Err(_) => return Err(gone()),
        }
    }
    Ok((role, bytes, idem))
}

fn idempotency(headers: &HeaderMap, method: &Method, uri: &Uri, body: &[u8]) -> Result<Option<Idempotency>, Response> {
    let Some(value) = headers.get("idempotency-key") else {
        return Ok(None);
    };
    let key = value.to_str().map_err(|_| error(400, "bad_header", "Idempotency-Key must be visible ASCII"))?.trim();
    if key.is_empty() || key.len() > 255 {
        return Err(error(400, "bad_header", "Idempotency-Key must be 1 to 255 characters"));
    }
    Ok(Some(Idempotency::new(key, method.as_str(), uri.path(), body)))
}

/// A POST after its prelude: who asks, what they asked (typed), its idempotency key.
struct Post<T> {
    role: Role,
    request: T,
    idem: Option<Idempotency>,
}

async fn posted<T>(
    s: &AppState,
    method: &Method,
    uri: &Uri,
    headers: &HeaderMap,
    body: Result<Bytes, BytesRejection>,
    parse: fn(&[u8]) -> Result<T, body::BadBody>,
) -> Result<Post<T>, Response> {
    let (role, bytes, idem) = post_prelude(s, method, uri, headers, body).await?;
    let request = parse(&bytes).map_err(bad_body)?;
    Ok(Post { role, request, idem })
}

/// Runs a job on the ledger owner and answers with what it answered.
async fn on_ledger(s: &AppState, job: impl FnOnce(&mut super::ledger::Ledger) -> Answer + Send + 'static) -> Response {
    match s.ledger.call(job).await {
        Ok(answer) => respond(answer),
        Err(_) => gone(),
    }
}

/// Handlers written with `?` over responses: an early answer is as good as the last.
fn either(result: Result<Response, Response>) -> Response {
    result.unwrap_or_else(|early| early)
}

async fn open_checkout(
    State(s): State<Arc<AppState>>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Response {
    either(
        async {
            let Post { request, idem, .. } = posted(&s, &method, &uri, &headers, body, body::open_checkout).await?;
            let body::OpenCheckout { basket_total, eligible_total, pos_ref } = request;
            Ok(on_ledger(&s, move |l| l.open_checkout(basket_total, eligible_total, pos_ref, idem.as_ref())).await)
        }
        .await,
    )
}

async fn add_code(
    State(s): State<Arc<AppState>>,
    path: Result<Path<String>, PathRejection>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Response {
    either(
        async {
            let id = path_id(path)?;
            let Post { request: code, idem, .. } = posted(&s, &method, &uri, &headers, body, body::code).await?;
            Ok(on_ledger(&s, move |l| l.present(Some(&id), &code, Source::Api, idem.as_ref()).0).await)
        }
        .await,
    )
}

async fn get_checkout(
    State(s): State<Arc<AppState>>,
    path: Result<Path<String>, PathRejection>,
    Query(query): Query<HashMap<String, String>>,
    headers: HeaderMap,
) -> Response {
    let id = match path_id(path) {
        Ok(id) => id,
        Err(r) => return r,
    };
    if let Err(r) = authorize(&s, &headers).await {
        return r;
    }
    let wait = match query.get("wait").map(|w| w.parse::<f64>()) {
        None => 0.0,
        Some(Ok(w)) if w.is_finite() && w >= 0.0 => w.min(MAX_WAIT_SECONDS),
        Some(_) => return error(400, "bad_query", "wait must be a number of seconds from 0 to 30"),
    };
    // Subscribed before the first read, so a decision made in between is not missed.
    let mut events = s.bus.subscribe();
    let first = {
        let id = id.clone();
        match s.ledger.call(move |l| l.checkout(&id)).await {
            Ok(answer) => answer,
            Err(_) => return gone(),
        }
    };
    if first.status != 200 || wait <= 0.0 {
        return respond(first);
    }
    let deadline = tokio::time::Instant::now() + Duration::from_secs_f64(wait);
    loop {
        tokio::select! {
            _ = tokio::time::sleep_until(deadline) => break,
            _ = s.shutdown.cancelled() => break,
            event = events.recv() => match event {
                Ok(e) if e.kind == EventKind::Decision && e.data["checkout_id"] == id.as_str() => break,
                Ok(_) | Err(tokio::sync::broadcast::error::RecvError::Lagged(_)) => {}
                Err(tokio::sync::broadcast::error::RecvError::Closed) => break,
            },
        }
    }
    match s.ledger.call(move |l| l.checkout(&id)).await {
        Ok(answer) => respond(answer),
        Err(_) => gone(),
    }
}

async fn close_checkout(
    State(s): State<Arc<AppState>>,
    path: Result<Path<String>, PathRejection>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Response {
    either(
        async {
            let id = path_id(path)?;
            let Post { role, request: status, idem } = posted(&s, &method, &uri, &headers, body, body::close).await?;
            let only_current = role == Role::Cashier;
            Ok(on_ledger(&s, move |l| l.close(&id, status, only_current, idem.as_ref())).await)
        }
        .await,
    )
}

async fn void(
    State(s): State<Arc<AppState>>,
    path: Result<Path<String>, PathRejection>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Response {
    either(
        async {
            let id = path_id(path)?;
            let Post { role, request: reason, idem } = posted(&s, &method, &uri, &headers, body, body::void).await?;
            let only_in_current = role == Role::Cashier;
            Ok(on_ledger(&s, move |l| l.void(&id, reason, only_in_current, idem.as_ref())).await)
        }
        .await,
    )
}

/// The body of `/v1/status`.
pub async fn status_json(s: &AppState) -> Result<Value, Response> {
    let ledger = match s.ledger.call(|l| l.status()).await {
        Ok(Ok(status)) => status,
        Ok(Err(e)) => return Err(error(500, "internal", format!("cannot read the ledger: {e}"))),
        Err(_) => return Err(gone()),
    };
    let scanner = s.scanner.lock().unwrap_or_else(|e| e.into_inner()).clone();
    let sync = s.sync.lock().unwrap_or_else(|e| e.into_inner()).clone();
    Ok(json!({
        "version": crate::upstream::AGENT_VERSION,
        "terminal_id": s.terminal_id,
        "merchant_id": s.merchant_id,
        "scanner": scanner,
        "ruleset": ledger.ruleset,
        "ruleset_problem": ledger.ruleset_problem,
        "unsynced": ledger.unsynced,
        "unsynced_value": ledger.unsynced_value.0,
        "last_sync": ledger.last_sync,
        "clock_warning": ledger.clock_warning,
        "current_checkout": ledger.current_checkout,
        "sync": sync.map(|s| json!({"state": s.state, "last_error": s.last_error})),
    }))
}

async fn status(State(s): State<Arc<AppState>>, headers: HeaderMap) -> Response {
    if let Err(r) = authorize(&s, &headers).await {
        return r;
    }
    match status_json(&s).await {
        Ok(body) => respond(Answer::json(200, &body)),
        Err(r) => r,
    }
}

async fn report_daily(
    State(s): State<Arc<AppState>>,
    Query(query): Query<HashMap<String, String>>,
    headers: HeaderMap,
) -> Response {
    match authorize(&s, &headers).await {
        Ok(Role::Cashier) => {
            return error(403, "manager_required", "reports need the manager's session or the POS token")
        }
        Ok(_) => {}
        Err(r) => return r,
    }
    let date = match query.get("date") {
        None => None,
        Some(d) => match d.parse::<jiff::civil::Date>() {
            Ok(date) => Some(date),
            Err(_) => return error(400, "bad_query", format!("date {d:?} is not a date like 2026-11-28")),
        },
    };
    let csv = match query.get("format").map(String::as_str) {
        None | Some("json") => false,
        Some("csv") => true,
        Some(other) => return error(400, "bad_query", format!("format must be json or csv, not {other:?}")),
    };
    match s.ledger.call(move |l| l.report(date, csv)).await {
        Ok(answer) => respond(answer),
        Err(_) => gone(),
    }
}

async fn events(State(s): State<Arc<AppState>>, headers: HeaderMap) -> Response {
    let role = match authorize(&s, &headers).await {
        Ok(role) => role,
        Err(r) => return r,
    };
    use futures_util::StreamExt as _;
    let rx = s.bus.subscribe();
    // A stream opened with the POS token ends once that token is rotated away.
    let token = (role == Role::Pos).then(|| bearer(&headers).unwrap_or_default().to_owned());
    let state = s.clone();
    let stream = futures_util::stream::unfold(rx, move |mut rx| {
        let token = token.clone();
        let state = state.clone();
        async move {
            loop {
                let received = tokio::select! {
                    r = rx.recv() => r,
                    _ = tokio::time::sleep(SSE_KEEP_ALIVE) => {
                        if token.as_deref().is_some_and(|t| !state.pos_token.matches(t)) {
                            return None;
                        }
                        continue;
                    }
                };
                match received {
                    Ok(e) => {
                        let sse =
                            SseEvent::default().event(e.kind.as_str()).id(e.id.to_string()).data(e.data.to_string());
                        return Some((Ok::<_, std::convert::Infallible>(sse), rx));
                    }
                    // A slow reader loses the oldest events rather than holding up the daemon.
                    Err(tokio::sync::broadcast::error::RecvError::Lagged(n)) => {
                        tracing::warn!(lost = n, "an event stream fell behind");
                    }
                    Err(tokio::sync::broadcast::error::RecvError::Closed) => return None,
                }
            }
        }
    });
    // Ends on shutdown: axum's graceful shutdown waits for open streams otherwise.
    let stream = stream.take_until(s.shutdown.clone().cancelled_owned());
    Sse::new(stream).keep_alive(KeepAlive::new().interval(SSE_KEEP_ALIVE)).into_response()
}

async fn metrics(State(s): State<Arc<AppState>>) -> Response {
    if let Ok(Ok(status)) = s.ledger.call(|l| l.status()).await {
        s.metrics.unsynced_count.set(status.unsynced as i64);
        s.metrics.unsynced_value.set(status.unsynced_value.0);
        s.metrics.last_sync_age.set(status.last_sync_age_s.map_or(f64::NAN, |a| a as f64));
        s.metrics.ruleset_age.set(status.ruleset_age_s.map_or(f64::NAN, |a| a as f64));
    }
    ([(header::CONTENT_TYPE, "application/openmetrics-text; version=1.0.0; charset=utf-8")], s.metrics.render())
        .into_response()
}

/// Starts a page session and answers with its cookie and a redirect.
async fn start_session(s: &AppState, kind: &'static str, to: &str) -> Response {
    let token = secret::random_token();
    let hash = secret::sha256(token.as_bytes());
    let now = s.clock.now();
    let lifetime = match kind {
        "cashier" => jiff::SignedDuration::from_hours(24 * CASHIER_SESSION_DAYS),
        _ => jiff::SignedDuration::from_hours(MANAGER_SESSION_HOURS),
    };
    let expires = now + lifetime;
    let stored = s
        .ledger
        .call(move |l| l.agent.store_mut().write(|c| store::put_session_in(c, &hash, kind, now, expires)))
        .await;
    match stored {
        Ok(Ok(())) => {}
        Ok(Err(e)) => return error(500, "internal", format!("cannot store the session: {e}")),
        Err(_) => return gone(),
    }
    let cookie = format!("{SESSION_COOKIE}={token}; Path=/; HttpOnly; SameSite=Strict; Max-Age={}", lifetime.as_secs());
    let mut response = (StatusCode::SEE_OTHER, [(header::LOCATION, to.to_owned())]).into_response();
    if let Ok(value) = HeaderValue::from_str(&cookie) {
        response.headers_mut().insert(header::SET_COOKIE, value);
    }
    response
}

async fn cashier_open(State(s): State<Arc<AppState>>, Query(query): Query<HashMap<String, String>>) -> Response {
    let token = query.get("token").cloned().unwrap_or_default();
    let data_dir = s.data_dir.clone();
    let now = s.clock.now();
    let valid =
        tokio::task::spawn_blocking(move || secret::redeem_cashier_link(&data_dir, &token, now)).await.unwrap_or(false);
    if !valid {
        return error(
            401,
            "link_used_or_expired",
            "this cashier link was used already or has expired; print a new one with `redeemd cashier-url`",
        );
    }
    start_session(&s, "cashier", "/").await
}

async fn manager_login(
    State(s): State<Arc<AppState>>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Response {
    let answer = check_manager_pin(&s, body).await;
    // A browser's form post gets the login page again with the error, same status.
    let wants_html = headers.get(header::ACCEPT).and_then(|v| v.to_str().ok()).is_some_and(|v| v.contains("text/html"));
    match answer {
        Ok(()) => start_session(&s, "manager", "/manager").await,
        Err((status, code, _)) if wants_html => {
            let (language, _) = pages::page_language(&s, &headers, &HashMap::new());
            pages::login_page(
                language,
                s.language,
                StatusCode::from_u16(status).unwrap_or(StatusCode::UNAUTHORIZED),
                Some(code),
            )
        }
        Err((status, code, message)) => error(status, code, message),
    }
}

/// Checks the posted PIN: Ok, or (status, code, message) of the refusal.
async fn check_manager_pin(
    s: &AppState,
    body: Result<Bytes, BytesRejection>,
) -> Result<(), (u16, &'static str, &'static str)> {
    let body = match body_bytes(body) {
        Ok(b) => b,
        Err(_) => return Err((400, "bad_form", "the form could not be read")),
    };
    let Some(pin) = url::form_urlencoded::parse(&body).find(|(k, _)| k == "pin").map(|(_, v)| v.into_owned()) else {
        return Err((400, "bad_form", "the form has no `pin` field"));
    };
    let Some(hash) = s.manager_pin.current().filter(|h| !h.is_empty()) else {
        return Err((401, "no_pin", "no manager PIN is set: run `redeemd manager-pin set` on the terminal"));
    };
    // The attempt counts as wrong before it is checked, and one check runs at a time:
    // parallel guesses can neither slip past the lock nor pile up Argon2 work.
    {
        let mut throttle = s.login.lock().unwrap_or_else(|e| e.into_inner());
        if throttle.locked_until.is_some_and(|until| std::time::Instant::now() < until) {
            return Err((429, "login_locked", "five wrong PINs in a row: the login is locked for five minutes"));
        }
        if throttle.checking {
            return Err((429, "login_busy", "another login is being checked; try again in a moment"));
        }
        throttle.checking = true;
        throttle.wrong += 1;
        if throttle.wrong >= LOGIN_ATTEMPTS {
            throttle.locked_until = Some(std::time::Instant::now() + LOGIN_LOCK);
        }
    }
    let ok = tokio::task::spawn_blocking(move || secret::verify_pin(&hash, &pin)).await.unwrap_or(false);
    {
        let mut throttle = s.login.lock().unwrap_or_else(|e| e.into_inner());
        throttle.checking = false;
        if !ok {
            if throttle.locked_until.is_some() {
                throttle.wrong = 0;
            }
            return Err((401, "wrong_pin", "wrong PIN"));
        }
        *throttle = LoginThrottle::default();
    }
    Ok(())
}

/// The role of a page request, without answering 401 (pages show a login instead).
pub async fn page_role(s: &AppState, headers: &HeaderMap) -> Option<Role> {
    cookie(headers, SESSION_COOKIE)?;
    authorize(s, headers).await.ok()
}
