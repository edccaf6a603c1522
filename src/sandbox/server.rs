//! The sandbox's HTTP side: `spec/upstream-api.md` served over HTTPS (its own CA) by
//! `sandbox serve`, or over plain HTTP on loopback by the live demo. [`router`] maps the
//! four calls onto [`Sandbox`] (every state access on a blocking thread, never a tokio
//! worker), with the spec's error shapes, `ETag`/`If-None-Match` and gzip for the rule
//! set, and [`serve`] runs it on a listener until its handle says stop.
//!
//! Two switches exist for tests and the demo: `online` (false: every call is a 503, the
//! demo's "offline" button) and `drop_enroll_answers` (commit that many enrollments, then
//! close the connection without a word: a lost answer, which `provision` must survive
//! by asking again with the same `request_id`).
//!
//! It must not log a token, a code or a key; what happened goes to `on_event` for the
//! command line to say in its reader's language.

use super::{Auth, EnrollOutcome, EnrollRequest, Event, EventKind, Heartbeat, Sandbox, SandboxError};
use axum::body::{Body, Bytes};
use axum::extract::{DefaultBodyLimit, State};
use axum::http::{header, HeaderMap, HeaderValue, Request, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use jiff::Timestamp;
use serde_json::{json, Value};
use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};

/// At most this many events a request (`spec/upstream-api.md`).
pub const MAX_EVENTS: usize = 500;
/// Request bodies up to this size (500 CP2 events are about half a MiB).
const MAX_BODY: usize = 8 << 20;

/// What happened, for whoever watches the server (the command line prints it).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ServerEvent {
    Enrolled { terminal_id: String, label: String, replay: bool, dropped: bool },
    EnrollRefused { status: u16, code: &'static str },
    Ruleset { terminal_id: String, version: u64, sent: bool, gzip: bool },
    Heartbeat { terminal_id: String, clock_offset_ms: Option<i64> },
    Redemptions { terminal_id: String, accepted: usize, duplicate: usize, conflict: usize, rejected: usize },
    Unauthorized { retired: Option<String> },
    BadRequest { path: &'static str, message: String },
    Failed { message: String },
}

pub type EventSink = Arc<dyn Fn(&ServerEvent) + Send + Sync>;

#[derive(Default)]
pub struct ServeOptions {
    /// Enrollments to commit and then answer by closing the connection (a test knob).
    pub drop_enroll_answers: u32,
    /// While false, every call is answered 503 (the demo's offline switch).
    pub online: Option<Arc<AtomicBool>>,
    pub on_event: Option<EventSink>,
}

/// The rule set as last compressed (by version).
struct Cached {
    version: u64,
    etag: String,
    body: Bytes,
    gzip: Bytes,
}

struct App {
    sandbox: Arc<Sandbox>,
    drops: AtomicU32,
    online: Option<Arc<AtomicBool>>,
    on_event: Option<EventSink>,
    cache: Mutex<Option<Arc<Cached>>>,
}

impl App {
    fn tell(&self, event: ServerEvent) {
        if let Some(sink) = &self.on_event {
            sink(&event);
        }
    }
}

/// Marks a response that must not be sent: the connection is closed instead.
#[derive(Debug, Clone, Copy)]
struct DropAnswer;

fn error(status: StatusCode, code: &str, message: &str) -> Response {
    (status, Json(json!({"error": {"code": code, "message": message}}))).into_response()
}

/// Runs `work` (state access) on a blocking thread.
async fn blocking<T: Send + 'static>(
    app: &Arc<App>,
    work: impl FnOnce(&Sandbox) -> Result<T, SandboxError> + Send + 'static,
) -> Result<T, Response> {
    let sandbox = app.sandbox.clone();
    match tokio::task::spawn_blocking(move || work(&sandbox)).await {
        Ok(Ok(value)) => Ok(value),
        Ok(Err(e)) => {
            app.tell(ServerEvent::Failed { message: e.to_string() });
            Err(error(StatusCode::INTERNAL_SERVER_ERROR, "sandbox_failed", &e.to_string()))
        }
        Err(e) => {
            app.tell(ServerEvent::Failed { message: e.to_string() });
            Err(error(StatusCode::INTERNAL_SERVER_ERROR, "sandbox_failed", "the request's worker failed"))
        }
    }
}

/// The terminal a request's bearer token names, or the 401 to answer.
async fn authorize(app: &Arc<App>, headers: &HeaderMap) -> Result<String, Response> {
    let token = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .map(|t| t.trim().to_owned())
        .unwrap_or_default();
    if token.is_empty() {
        app.tell(ServerEvent::Unauthorized { retired: None });
        return Err(error(
            StatusCode::UNAUTHORIZED,
            "invalid_token",
            "no bearer token: enroll with `redeemd provision`",
        ));
    }
    match blocking(app, move |s| s.authenticate(&token)).await? {
        Auth::Terminal(id) => Ok(id),
        Auth::Retired(id) => {
            app.tell(ServerEvent::Unauthorized { retired: Some(id.clone()) });
            Err(error(
                StatusCode::UNAUTHORIZED,
                "terminal_retired",
                &format!("terminal {id} was retired: provision it again with a new enrollment code"),
            ))
        }
        Auth::Unknown => {
            app.tell(ServerEvent::Unauthorized { retired: None });
            Err(error(StatusCode::UNAUTHORIZED, "invalid_token", "this token is not known here: provision again"))
        }
    }
}

/// The four calls of `spec/upstream-api.md` (and a JSON 404 for anything else).
pub fn router(sandbox: Arc<Sandbox>, options: ServeOptions) -> Router {
    let app = Arc::new(App {
        sandbox,
        drops: AtomicU32::new(options.drop_enroll_answers),
        online: options.online,
        on_event: options.on_event,
        cache: Mutex::new(None),
    });
    let gate = app.online.clone();
    Router::new()
        .route("/v1/enroll", post(enroll))
        .route("/v1/ruleset", get(ruleset))
        .route("/v1/heartbeat", post(heartbeat))
        .route("/v1/redemptions", post(redemptions))
        .fallback(|| async { error(StatusCode::NOT_FOUND, "not_found", "no such call: see spec/upstream-api.md") })
        .layer(DefaultBodyLimit::max(MAX_BODY))
        .layer(axum::middleware::from_fn(move |request: Request<Body>, next: axum::middleware::Next| {
            let gate = gate.clone();
            async move {
                if gate.is_some_and(|g| !g.load(Ordering::Relaxed)) {
                    return error(StatusCode::SERVICE_UNAVAILABLE, "offline", "the sandbox is switched offline");
                }
                next.run(request).await
            }
        }))
        .with_state(app)
}

fn object(body: &[u8]) -> Result<serde_json::Map<String, Value>, String> {
    match serde_json::from_slice::<Value>(body) {
        Ok(Value::Object(map)) => Ok(map),
        Ok(_) => Err("the body is not a JSON object".into()),
        Err(e) => Err(format!("the body is not JSON: {e}")),
    }
}

/// `POST /v1/enroll`'s body.
pub fn parse_enroll(body: &[u8]) -> Result<EnrollRequest, String> {
    let map = object(body)?;
    let text = |key: &str| map.get(key).and_then(Value::as_str).map(str::to_owned);
    let code = text("enrollment_code").filter(|c| !c.trim().is_empty()).ok_or("enrollment_code is missing")?;
    let request_id = match map.get("request_id") {
        None | Some(Value::Null) => None,
        Some(Value::String(id)) if !id.is_empty() && id.len() <= 128 => Some(id.clone()),
        Some(_) => return Err("request_id is not a string of 1 to 128 characters".into()),
    };
    Ok(EnrollRequest {
        code,
        label: text("terminal_label").unwrap_or_default(),
        agent_version: text("agent_version").unwrap_or_default(),
        request_id,
    })
}

async fn enroll(State(app): State<Arc<App>>, body: Bytes) -> Response {
    let request = match parse_enroll(&body) {
        Ok(r) => r,
        Err(message) => {
            app.tell(ServerEvent::BadRequest { path: "/v1/enroll", message: message.clone() });
            return error(StatusCode::BAD_REQUEST, "bad_request", &message);
        }
    };
    let outcome = match blocking(&app, move |s| s.enroll(&request)).await {
        Ok(outcome) => outcome,
        Err(response) => return response,
    };
    let refused = |status: StatusCode, code: &'static str, message: &str| {
        app.tell(ServerEvent::EnrollRefused { status: status.as_u16(), code });
        error(status, code, message)
    };
    let (identity, replay) = match outcome {
        EnrollOutcome::Enrolled(identity) => (identity, false),
        EnrollOutcome::Replayed(identity) => (identity, true),
        EnrollOutcome::InvalidCode => {
            return refused(StatusCode::UNAUTHORIZED, "invalid_code", "no such enrollment code: check it, or make one")
        }
        EnrollOutcome::CodeUsed => {
            return refused(StatusCode::CONFLICT, "code_used", "this enrollment code was used: make a new one")
        }
        EnrollOutcome::CodeExpired => {
            return refused(StatusCode::GONE, "code_expired", "this enrollment code has expired: make a new one")
        }
    };
    let timezone = match blocking(&app, |s| s.catalog()).await {
        Ok(catalog) => catalog.timezone,
        Err(response) => return response,
    };
    let mut response = Json(json!({
        "terminal_id": identity.terminal_id,
        "merchant_id": identity.merchant.id,
        "merchant_name": identity.merchant.name,
        "merchant_category": identity.merchant.category,
        "token": identity.token,
        "timezone": timezone,
        "ruleset_keys": app.sandbox.ruleset_keys(),
    }))
    .into_response();
    let dropped = app.drops.fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1)).is_ok();
    if dropped {
        response.extensions_mut().insert(DropAnswer);
    }
    app.tell(ServerEvent::Enrolled { terminal_id: identity.terminal_id, label: identity.label, replay, dropped });
    response
}

/// Whether an `Accept-Encoding` value takes gzip (a `q=0` refuses it).
pub fn accepts_gzip(value: &str) -> bool {
    value.split(',').any(|part| {
        let mut pieces = part.split(';').map(str::trim);
        let coding = pieces.next().unwrap_or_default();
        let refused =
            pieces.any(|p| p.strip_prefix("q=").is_some_and(|q| q.trim().parse::<f32>().is_ok_and(|q| q <= 0.0)));
        (coding.eq_ignore_ascii_case("gzip") || coding == "*") && !refused
    })
}

/// Whether `If-None-Match` names `etag` (weak comparison; `*` matches).
pub fn etag_matches(if_none_match: &str, etag: &str) -> bool {
    let bare = |t: &str| t.trim().trim_start_matches("W/").to_owned();
    if_none_match.split(',').any(|t| t.trim() == "*" || bare(t) == bare(etag))
}

async fn ruleset(State(app): State<Arc<App>>, headers: HeaderMap) -> Response {
    let terminal_id = match authorize(&app, &headers).await {
        Ok(id) => id,
        Err(response) => return response,
    };
    let stored = match blocking(&app, |s| s.ruleset()).await {
        Ok(stored) => stored,
        Err(response) => return response,
    };
    let cached = {
        let mut cache = app.cache.lock().unwrap_or_else(|e| e.into_inner());
        match cache.as_ref().filter(|c| c.version == stored.version) {
            Some(c) => c.clone(),
            None => {
                let digest = crate::secret::hex(&crate::secret::sha256(stored.jws.as_bytes())[..6]);
                let mut z = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
                let gzip = std::io::Write::write_all(&mut z, stored.jws.as_bytes()).and_then(|()| z.finish());
                let c = Arc::new(Cached {
                    version: stored.version,
                    etag: format!("\"rs-{}-{digest}\"", stored.version),
                    gzip: Bytes::from(gzip.unwrap_or_default()),
                    body: Bytes::from(stored.jws.clone()),
                });
                *cache = Some(c.clone());
                c
            }
        }
    };
    let gzip = !cached.gzip.is_empty()
        && headers.get(header::ACCEPT_ENCODING).and_then(|v| v.to_str().ok()).is_some_and(accepts_gzip);
    // The gzip body is another representation of the same rule set: a weak validator.
    let etag = if gzip { format!("W/{}", cached.etag) } else { cached.etag.clone() };
    let unchanged =
        headers.get(header::IF_NONE_MATCH).and_then(|v| v.to_str().ok()).is_some_and(|v| etag_matches(v, &etag));
    app.tell(ServerEvent::Ruleset { terminal_id, version: cached.version, sent: !unchanged, gzip });
    let mut response = if unchanged {
        StatusCode::NOT_MODIFIED.into_response()
    } else if gzip {
        let mut r = Response::new(Body::from(cached.gzip.clone()));
        r.headers_mut().insert(header::CONTENT_ENCODING, HeaderValue::from_static("gzip"));
        r
    } else {
        Response::new(Body::from(cached.body.clone()))
    };
    let h = response.headers_mut();
    if !unchanged {
        h.insert(header::CONTENT_TYPE, HeaderValue::from_static("application/jose"));
    }
    h.insert(header::VARY, HeaderValue::from_static("Accept-Encoding"));
    if let Ok(value) = HeaderValue::from_str(&etag) {
        h.insert(header::ETAG, value);
    }
    response
}

/// `POST /v1/heartbeat`'s body (its `terminal_id` must be the token's).
pub fn parse_heartbeat(body: &[u8], terminal_id: &str) -> Result<Heartbeat, String> {
    let map = object(body)?;
    if let Some(sent) = map.get("terminal_id") {
        if sent.as_str() != Some(terminal_id) {
            return Err(format!("terminal_id {sent} is not this token's terminal {terminal_id}"));
        }
    }
    let count = |key: &str| map.get(key).and_then(Value::as_u64);
    let text = |key: &str| map.get(key).and_then(Value::as_str).map(|s| s.chars().take(64).collect::<String>());
    let time = match map.get("time") {
        None | Some(Value::Null) => None,
        Some(value) => Some(
            value
                .as_str()
                .and_then(|t| t.parse::<Timestamp>().ok())
                .ok_or_else(|| format!("time {value} is not an RFC 3339 instant"))?,
        ),
    };
    Ok(Heartbeat {
        agent_version: text("agent_version"),
        ruleset_version: count("ruleset_version"),
        unsynced: count("unsynced"),
        scanner: text("scanner"),
        time,
    })
}

async fn heartbeat(State(app): State<Arc<App>>, headers: HeaderMap, body: Bytes) -> Response {
    let terminal_id = match authorize(&app, &headers).await {
        Ok(id) => id,
        Err(response) => return response,
    };
    let beat = match parse_heartbeat(&body, &terminal_id) {
        Ok(beat) => beat,
        Err(message) => {
            app.tell(ServerEvent::BadRequest { path: "/v1/heartbeat", message: message.clone() });
            return error(StatusCode::BAD_REQUEST, "bad_request", &message);
        }
    };
    let now = app.sandbox.now();
    let offset = beat.time.map(|t| (t - now).as_millis()).and_then(|v| i64::try_from(v).ok());
    let id = terminal_id.clone();
    if let Err(response) = blocking(&app, move |s| s.heartbeat(&id, &beat)).await {
        return response;
    }
    app.tell(ServerEvent::Heartbeat { terminal_id, clock_offset_ms: offset });
    let tz = app.sandbox.timezone();
    Json(json!({"server_time": crate::clock::rfc3339(now, &tz)})).into_response()
}

/// `POST /v1/redemptions`'s body: every event checked for shape, or what is wrong (a
/// 400: the terminal halves the batch until it holds the event at fault).
pub fn parse_batch(body: &[u8], terminal_id: &str) -> Result<Vec<Event>, (&'static str, String)> {
    let map = object(body).map_err(|m| ("bad_request", m))?;
    match map.get("terminal_id").and_then(Value::as_str) {
        Some(sent) if sent == terminal_id => {}
        Some(sent) => {
            return Err(("wrong_terminal", format!("terminal_id {sent:?} is not this token's terminal {terminal_id}")))
        }
        None => return Err(("bad_request", "terminal_id is missing".into())),
    }
    let Some(events) = map.get("events").and_then(Value::as_array) else {
        return Err(("bad_request", "events is not an array".into()));
    };
    if events.len() > MAX_EVENTS {
        return Err(("too_many_events", format!("{} events; at most {MAX_EVENTS} a request", events.len())));
    }
    events
        .iter()
        .enumerate()
        .map(|(i, e)| parse_event(e).map_err(|m| ("bad_event", format!("events[{i}]{m}"))))
        .collect()
}

fn parse_event(e: &Value) -> Result<Event, String> {
    let id = e.get("event_id").and_then(Value::as_str).unwrap_or_default().to_owned();
    let at_fault = |what: &str| {
        if id.is_empty() {
            format!(": {what}")
        } else {
            format!(" (event_id {id}): {what}")
        }
    };
    if !e.is_object() {
        return Err(at_fault("not an object"));
    }
    if id.is_empty() || id.len() > 128 {
        return Err(at_fault("event_id is missing or longer than 128 characters"));
    }
    let text = |key: &str| e.get(key).and_then(Value::as_str).filter(|s| !s.is_empty() && s.len() <= 4096);
    let seq = e
        .get("seq")
        .and_then(Value::as_i64)
        .filter(|s| *s >= 1)
        .ok_or_else(|| at_fault("seq is not an integer ≥ 1"))?;
    let redemption_id = text("redemption_id").ok_or_else(|| at_fault("redemption_id is missing"))?.to_owned();
    let at = text("at").ok_or_else(|| at_fault("at is missing"))?.to_owned();
    let at_instant = at.parse::<Timestamp>().map_err(|_| at_fault(&format!("at {at:?} is not an RFC 3339 instant")))?;
    let kind = match e.get("type").and_then(Value::as_str) {
        Some("redeem") => {
            let coupon_id = text("coupon_id")
                .filter(|c| super::valid_coupon_id(c))
                .ok_or_else(|| at_fault("coupon_id is missing or not a coupon id"))?
                .to_owned();
            let campaign_id = text("campaign_id").ok_or_else(|| at_fault("campaign_id is missing"))?.to_owned();
            let code = text("code").ok_or_else(|| at_fault("code is missing"))?.to_owned();
            let presentation = match text("presentation") {
                Some(p @ ("static" | "dynamic")) => p.to_owned(),
                _ => return Err(at_fault("presentation is not static or dynamic")),
            };
            let discount = e
                .get("discount")
                .and_then(Value::as_i64)
                .filter(|d| *d >= 0)
                .ok_or_else(|| at_fault("discount is not an integer ≥ 0"))?;
            EventKind::Redeem { coupon_id, campaign_id, code, presentation, discount }
        }
        Some("void") => EventKind::Void { reason: text("reason").map(str::to_owned) },
        _ => return Err(at_fault("type is not redeem or void")),
    };
    Ok(Event { event_id: id, seq, redemption_id, at, at_instant, kind })
}

async fn redemptions(State(app): State<Arc<App>>, headers: HeaderMap, body: Bytes) -> Response {
    let terminal_id = match authorize(&app, &headers).await {
        Ok(id) => id,
        Err(response) => return response,
    };
    let events = match parse_batch(&body, &terminal_id) {
        Ok(events) => events,
        Err((code, message)) => {
            app.tell(ServerEvent::BadRequest { path: "/v1/redemptions", message: message.clone() });
            return error(StatusCode::BAD_REQUEST, code, &message);
        }
    };
    let id = terminal_id.clone();
    let results = match blocking(&app, move |s| s.redemptions(&id, &events)).await {
        Ok(results) => results,
        Err(response) => return response,
    };
    let count = |status: &str| results.iter().filter(|r| r["status"] == status).count();
    app.tell(ServerEvent::Redemptions {
        terminal_id,
        accepted: count("accepted"),
        duplicate: count("duplicate"),
        conflict: count("conflict"),
        rejected: count("rejected"),
    });
    Json(json!({"results": results})).into_response()
}

/// A response was marked [`DropAnswer`]: the connection is closed instead of answering.
#[derive(Debug)]
struct DroppedAnswer;

impl std::fmt::Display for DroppedAnswer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("answer dropped on purpose")
    }
}

impl std::error::Error for DroppedAnswer {}

/// The router, as a service that fails (so hyper closes the connection without a
/// response) where a handler marked its answer to be dropped.
#[derive(Clone)]
struct Answering {
    router: Router,
}

impl<B> tower::Service<Request<B>> for Answering
where
    B: axum::body::HttpBody<Data = Bytes> + Send + 'static,
    B::Error: Into<axum::BoxError>,
{
    type Response = Response;
    type Error = DroppedAnswer;
    type Future = Pin<Box<dyn Future<Output = Result<Response, DroppedAnswer>> + Send>>;

    fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<Result<(), DroppedAnswer>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, request: Request<B>) -> Self::Future {
        use tower::ServiceExt as _;
        let router = self.router.clone();
        Box::pin(async move {
            let response = match router.oneshot(request.map(Body::new)).await {
                Ok(response) => response,
                Err(never) => match never {},
            };
            if response.extensions().get::<DropAnswer>().is_some() {
                return Err(DroppedAnswer);
            }
            Ok(response)
        })
    }
}

/// How [`serve`] speaks: plain HTTP (the demo, on loopback) or TLS with a PEM
/// certificate chain and key.
pub enum Transport {
    Plain,
    Tls { cert_pem: String, key_pem: String },
}

/// Serves `router` on `listener` until `handle` shuts it down.
pub async fn serve(
    listener: std::net::TcpListener,
    transport: Transport,
    router: Router,
    handle: axum_server::Handle<SocketAddr>,
) -> std::io::Result<()> {
    let service = Answering { router };
    let make = tower::service_fn(move |_: SocketAddr| {
        let service = service.clone();
        async move { Ok::<_, std::convert::Infallible>(service) }
    });
    match transport {
        Transport::Plain => axum_server::from_tcp(listener)?.handle(handle).serve(make).await,
        Transport::Tls { cert_pem, key_pem } => {
            let config =
                axum_server::tls_rustls::RustlsConfig::from_pem(cert_pem.into_bytes(), key_pem.into_bytes()).await?;
            axum_server::from_tcp_rustls(listener, config)?.handle(handle).serve(make).await
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn gzip_and_etags_are_read_as_http_says() {
        assert!(accepts_gzip("gzip"));
        assert!(accepts_gzip("br, gzip;q=0.5"));
        assert!(accepts_gzip("*"));
        assert!(!accepts_gzip("gzip;q=0"));
        assert!(!accepts_gzip("identity"));
        assert!(etag_matches("\"rs-2-ab\"", "\"rs-2-ab\""));
        assert!(etag_matches("W/\"rs-2-ab\"", "\"rs-2-ab\""));
        assert!(etag_matches("\"x\", W/\"rs-2-ab\"", "W/\"rs-2-ab\""));
        assert!(etag_matches("*", "\"rs-2-ab\""));
        assert!(!etag_matches("\"rs-1-ab\"", "\"rs-2-ab\""));
    }

    #[test]
    fn a_malformed_batch_names_the_event_and_field() {
        let batch = |events: Value| serde_json::to_vec(&json!({"terminal_id": "T-0001", "events": events})).unwrap();
        let good = json!({"event_id": "e1", "seq": 1, "type": "redeem", "redemption_id": "r1",
            "coupon_id": "C-1", "campaign_id": "DEMO", "code": "CP1:X", "presentation": "static",
            "discount": 1000, "at": "2026-11-28T12:01:02+08:00"});
        assert_eq!(parse_batch(&batch(json!([good])), "T-0001").unwrap().len(), 1);
        let mut bad = good.clone();
        bad["discount"] = json!(-1);
        let (code, message) = parse_batch(&batch(json!([good, bad])), "T-0001").unwrap_err();
        assert_eq!(code, "bad_event");
        assert!(message.starts_with("events[1] (event_id e1): discount"), "{message}");
        assert_eq!(parse_batch(&batch(json!([])), "T-0002").unwrap_err().0, "wrong_terminal");
        assert_eq!(parse_batch(b"[1]", "T-0001").unwrap_err().0, "bad_request");
        let many: Vec<Value> = (0..=MAX_EVENTS).map(|_| json!({})).collect();
        assert_eq!(parse_batch(&batch(json!(many)), "T-0001").unwrap_err().0, "too_many_events");
        let void = json!({"event_id": "e2", "seq": 2, "type": "void", "redemption_id": "r1",
            "at": "2026-11-28T12:03:00+08:00", "reason": "customer changed mind"});
        assert!(matches!(parse_batch(&batch(json!([void])), "T-0001").unwrap()[0].kind, EventKind::Void { .. }));
    }

    #[test]
    fn enrollment_bodies() {
        let r = parse_enroll(br#"{"enrollment_code": "K7PX-93QD", "terminal_label": "lane-2", "request_id": "r"}"#)
            .unwrap();
        assert_eq!((r.code.as_str(), r.label.as_str(), r.request_id.as_deref()), ("K7PX-93QD", "lane-2", Some("r")));
        assert!(parse_enroll(br#"{"terminal_label": "x"}"#).is_err());
        assert!(parse_enroll(br#"{"enrollment_code": "A", "request_id": 7}"#).is_err());
        assert_eq!(parse_enroll(br#"{"enrollment_code": "A"}"#).unwrap().request_id, None);
    }
}
