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

use super::body;
use super::ledger::{Answer, Idempotency, LedgerHandle, Source};
use super::metrics::Metrics;
use crate::clock::Clock;
use crate::events::{EventBus, EventKind};
use crate::secret::{self, WatchedFile};
use crate::store;
use axum::body::Bytes;
use axum::extract::rejection::{BytesRejection, PathRejection};
use axum::extract::{Path, Query, State};
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
/// a busy machine).
pub const SSE_KEEP_ALIVE: Duration = Duration::from_secs(10);
/// How often an event stream looks at its credential between events (the spec: a stream
/// ends within 2 s of its token or session ceasing to be valid).
const SSE_RECHECK: Duration = Duration::from_secs(1);
/// Every this many rechecks a session stream asks the ledger even when no logout was
/// seen (a session that simply expired).
const SSE_SESSION_LOOKUP_EVERY: u32 = 60;
const CASHIER_SESSION_DAYS: i64 = 365;
const MANAGER_SESSION_HOURS: i64 = 12;

pub use super::login::LoginThrottle;

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
    /// The shop's name for the printed daily sheet (`merchant-name`), if the config has it.
    pub merchant_name: Option<String>,
    pub language: crate::messages::Language,
    pub scanner: Mutex<ScannerStatus>,
    pub sync: Mutex<Option<SyncStatus>>,
    pub shutdown: CancellationToken,
    pub login: Mutex<LoginThrottle>,
    /// Bumped whenever a page session is ended (logout): open event streams look again.
    pub sessions_ended: std::sync::atomic::AtomicU64,
    /// The config file the daemon started with (`doctor` on the manager's page).
    pub config_path: Option<PathBuf>,
    /// The key `GET /v1/whoami` proves this daemon with; set once the address is bound.
    pub identity: std::sync::OnceLock<crate::local_daemon::Identity>,
    /// The store hub (`[store]`), and the last `hub` object the work loop announced.
    pub hub: Option<Arc<crate::hub::Hub>>,
    pub hub_status: Arc<Mutex<Value>>,
    /// The store's events read from the hub's stream (`scope=store` reports).
    pub store_day: Arc<super::hubwork::StoreDay>,
}

impl std::fmt::Debug for AppState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AppState").finish_non_exhaustive()
    }
}

/// The local API's routes (the event stream apart: it is not held to the request
/// timeout); [`super::app`] puts them together with the pages and the guards.
pub fn routes() -> Router<Arc<AppState>> {
    Router::new()
        .route("/v1/checkouts", post(open_checkout))
        .route("/v1/checkouts/{id}", get(get_checkout))
        .route("/v1/checkouts/{id}/codes", post(add_code))
        .route("/v1/checkouts/{id}/close", post(close_checkout))
        .route("/v1/checkouts/{id}/amounts", post(set_amounts))
        .route("/v1/redemptions/{id}/void", post(void))
        .route("/v1/status", get(status))
        .route("/v1/reports/daily", get(report_daily))
        .route("/metrics", get(metrics))
        .route("/cashier/open", get(cashier_open))
}

/// The Host and origin checks of [`super::guard`], before routing, in the spec's error shape.
pub async fn guard(
    State(own): State<Arc<super::guard::OwnHosts>>,
    request: axum::extract::Request,
    next: axum::middleware::Next,
) -> Response {
    use super::guard::{check, Refusal};
    match check(&own, request.method(), request.uri().path(), request.headers(), SESSION_COOKIE) {
        Ok(()) => next.run(request).await,
        Err(Refusal::WrongHost) => error(
            421,
            "wrong_host",
            "this daemon answers only to its own address (localhost, 127.0.0.1 or [::1] with its port)",
        ),
        Err(Refusal::CrossOrigin(why)) => error(403, "cross_origin", why),
    }
}

/// Every call but the event stream ends within [`REQUEST_TIMEOUT`], body reading included,
/// answered in the spec's error shape.
pub async fn request_timeout(request: axum::extract::Request, next: axum::middleware::Next) -> Response {
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
    credential(s, headers).await.map(|(role, _)| role)
}

/// What a request was let in with: kept by an event stream, which looks at it again on
/// every event and every [`SSE_RECHECK`].
#[derive(Debug, Clone)]
enum Credential {
    PosToken(String),
    Session {
        token_sha256: [u8; 32],
        /// A manager session's start: a PIN written after it ends the session.
        manager_since: Option<jiff::Timestamp>,
        /// [`AppState::sessions_ended`] when the session was last found valid.
        generation: u64,
    },
}

impl Credential {
    /// Whether the credential still holds. Cheap unless a logout happened since the last
    /// look (or `lookup` asks): then the ledger says whether this session is still open.
    async fn still_valid(&mut self, s: &AppState, lookup: bool) -> bool {
        match self {
            Credential::PosToken(token) => s.pos_token.matches(token),
            Credential::Session { token_sha256, manager_since, generation } => {
                if manager_since.is_some_and(|since| s.manager_pin.changed_since(since)) {
                    return false;
                }
                let now_generation = s.sessions_ended.load(std::sync::atomic::Ordering::Acquire);
                if now_generation == *generation && !lookup {
                    return true;
                }
                let hash = *token_sha256;
                let now = s.clock.now();
                match s.ledger.call(move |l| l.agent.store().session(&hash, now)).await {
                    Ok(Ok(Some(_))) => {
                        *generation = now_generation;
                        true
                    }
                    _ => false,
                }
            }
        }
    }
}

/// The role of the request and what let it in, or the 401 that answers it.
async fn credential(s: &AppState, headers: &HeaderMap) -> Result<(Role, Credential), Response> {
    if let Some(offered) = bearer(headers) {
        if !offered.is_empty() && s.pos_token.matches(offered) {
            return Ok((Role::Pos, Credential::PosToken(offered.to_owned())));
        }
        return Err(unauthorized());
    }
    if let Some(token) = cookie(headers, SESSION_COOKIE) {
        let token_sha256 = secret::sha256(token.as_bytes());
        let hash = token_sha256;
        let now = s.clock.now();
        // Read before the lookup: a logout that lands during it is seen by the next look.
        let generation = s.sessions_ended.load(std::sync::atomic::Ordering::Acquire);
        let session = s.ledger.call(move |l| l.agent.store().session(&hash, now)).await;
        match session {
            // A new PIN ends the manager sessions opened with the old one.
            Ok(Ok(Some((kind, created)))) if kind == "manager" => {
                if s.manager_pin.changed_since(created) {
                    return Err(unauthorized());
                }
                let session = Credential::Session { token_sha256, manager_since: Some(created), generation };
                return Ok((Role::Manager, session));
            }
            Ok(Ok(Some(_))) => {
                let session = Credential::Session { token_sha256, manager_since: None, generation };
                return Ok((Role::Cashier, session));
            }
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

async fn set_amounts(
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
            let Post { request, idem, .. } = posted(&s, &method, &uri, &headers, body, body::amounts).await?;
            let body::Amounts { basket_total, eligible_total } = request;
            Ok(on_ledger(&s, move |l| l.set_amounts(&id, basket_total, eligible_total, idem.as_ref())).await)
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
            // Who voided, kept with the void; a cashier only inside the current checkout.
            let by = match role {
                Role::Pos => crate::store::VoidBy::Till,
                Role::Cashier => crate::store::VoidBy::Cashier,
                Role::Manager => crate::store::VoidBy::Manager,
            };
            Ok(on_ledger(&s, move |l| l.void(&id, reason, by, idem.as_ref())).await)
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
        "hub": hub_object(s),
    }))
}

/// The `hub` object: the work loop's last one; `none` without `[store]`.
fn hub_object(s: &AppState) -> Value {
    match &s.hub {
        None => super::hubwork::status_object(None, (0, 0)),
        Some(hub) => {
            let last = s.hub_status.lock().unwrap_or_else(|e| e.into_inner()).clone();
            if last.is_null() {
                super::hubwork::status_object(Some(hub), (0, 0))
            } else {
                last
            }
        }
    }
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
    match query.get("scope").map(String::as_str) {
        None | Some("terminal") => {}
        Some("store") => return store_report(&s, date, csv).await,
        Some(other) => return error(400, "bad_query", format!("scope must be terminal or store, not {other:?}")),
    }
    match s.ledger.call(move |l| l.report(date, csv)).await {
        Ok(answer) => respond(answer),
        Err(_) => gone(),
    }
}

/// `scope=store`: the whole store's day from the hub's stream; 503 while the hub is
/// unreachable (nothing stale is shown as current).
async fn store_report(s: &AppState, date: Option<jiff::civil::Date>, csv: bool) -> Response {
    let Some(hub) = &s.hub else {
        return error(
            400,
            "bad_query",
            "this terminal has no store hub ([store] in its config): scope=store needs one",
        );
    };
    if !hub.state().connected {
        return error(503, "hub_unreachable", "the store hub does not answer: the store's day cannot be read now");
    }
    match s.store_day.report(hub, &s.ledger, date).await {
        Ok(report) if csv => respond(Answer { status: 200, content_type: super::ledger::CSV, body: report.to_csv() }),
        Ok(report) => respond(Answer { status: 200, content_type: super::ledger::JSON, body: report.to_json() }),
        Err(e) => error(503, "hub_unreachable", format!("the store hub did not answer: {e}")),
    }
}

pub async fn events(State(s): State<Arc<AppState>>, headers: HeaderMap) -> Response {
    let credential = match credential(&s, &headers).await {
        Ok((_, credential)) => credential,
        Err(r) => return r,
    };
    use futures_util::StreamExt as _;
    let rx = s.bus.subscribe();
    let mut recheck = tokio::time::interval(SSE_RECHECK);
    recheck.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    // The stream ends once what opened it no longer holds (a rotated token, a logout, a
    // new PIN): looked at before every event and every second between them, so neither a
    // busy stream nor an idle one outlives it.
    let state = s.clone();
    let stream = futures_util::stream::unfold(
        (rx, credential, recheck, 0u32),
        move |(mut rx, mut credential, mut recheck, mut looks)| {
            let state = state.clone();
            async move {
                loop {
                    let received = tokio::select! {
                        r = rx.recv() => r,
                        _ = recheck.tick() => {
                            looks = looks.wrapping_add(1);
                            if !credential.still_valid(&state, looks % SSE_SESSION_LOOKUP_EVERY == 0).await {
                                return None;
                            }
                            continue;
                        }
                    };
                    match received {
                        Ok(e) => {
                            if !credential.still_valid(&state, false).await {
                                return None;
                            }
                            let sse = SseEvent::default()
                                .event(e.kind.as_str())
                                .id(e.id.to_string())
                                .data(e.data.to_string());
                            return Some((Ok::<_, std::convert::Infallible>(sse), (rx, credential, recheck, looks)));
                        }
                        // A slow reader loses the oldest events rather than holding up the daemon.
                        Err(tokio::sync::broadcast::error::RecvError::Lagged(n)) => {
                            tracing::warn!(lost = n, "an event stream fell behind");
                        }
                        Err(tokio::sync::broadcast::error::RecvError::Closed) => return None,
                    }
                }
            }
        },
    );
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
pub async fn start_session(s: &AppState, kind: &'static str, to: &str) -> Response {
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

/// A page of a few words for a browser that asked for HTML (a used cashier link, a page
/// opened before the cashier link): a title, what to do, and the machine code for support;
/// styled as the pages are.
pub fn notice_page(
    language: crate::messages::Language,
    status: StatusCode,
    title_key: &str,
    text_key: &str,
    code: &str,
) -> Response {
    use crate::messages;
    let escape = |text: &str| text.replace('&', "&amp;").replace('<', "&lt;").replace('>', "&gt;");
    let title = escape(messages::text(language, title_key));
    let body = format!(
        "<!doctype html>\n<html lang=\"{lang}\">\n<head>\n<meta charset=\"utf-8\">\n\
         <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n<title>{title} · redeemd</title>\n\
         <link rel=\"stylesheet\" href=\"/assets/style.css\">\n<link rel=\"icon\" href=\"data:,\">\n</head>\n<body>\n\
         <main><div class=\"card notice-page\" id=\"notice\"><h1>{title}</h1><p>{text}</p>\
         <p class=\"muted\"><code>{code}</code></p></div></main>\n</body>\n</html>\n",
        lang = language.tag(),
        text = escape(messages::text(language, text_key)),
        code = escape(code),
    );
    (status, [(header::CONTENT_TYPE, "text/html; charset=utf-8")], body).into_response()
}

/// Whether the request is a browser's navigation (it asks for HTML).
pub fn wants_html(headers: &HeaderMap) -> bool {
    headers.get(header::ACCEPT).and_then(|v| v.to_str().ok()).is_some_and(|v| v.contains("text/html"))
}

async fn cashier_open(
    State(s): State<Arc<AppState>>,
    Query(query): Query<HashMap<String, String>>,
    headers: HeaderMap,
) -> Response {
    let token = query.get("token").cloned().unwrap_or_default();
    let data_dir = s.data_dir.clone();
    let now = s.clock.now();
    let valid =
        tokio::task::spawn_blocking(move || secret::redeem_cashier_link(&data_dir, &token, now)).await.unwrap_or(false);
    if !valid {
        if wants_html(&headers) {
            // The page's language: the `redeemd_lang` cookie the pages set, else the terminal's.
            let language = match cookie(&headers, "redeemd_lang").map(|v| v.to_ascii_lowercase()).as_deref() {
                Some("zh-cn" | "zh") => crate::messages::Language::ZhCn,
                Some("en") => crate::messages::Language::En,
                _ => s.language,
            };
            return notice_page(
                language,
                StatusCode::UNAUTHORIZED,
                "cashier.link_used_title",
                "cashier.link_used",
                "link_used_or_expired",
            );
        }
        return error(
            401,
            "link_used_or_expired",
            "this cashier link was used already or has expired; print a new one with `redeemd cashier-url`",
        );
    }
    start_session(&s, "cashier", "/").await
}

/// The role of a page request, without answering 401 (pages show a login instead).
pub async fn page_role(s: &AppState, headers: &HeaderMap) -> Option<Role> {
    cookie(headers, SESSION_COOKIE)?;
    authorize(s, headers).await.ok()
}
