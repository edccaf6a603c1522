//! A test upstream: the spec's API served by axum over rustls on `127.0.0.1:0`, with a
//! CA made in the test (rcgen). It records every event it receives, answers by
//! `event_id` idempotency, and injects faults on request: 5xx, 429 with `Retry-After`,
//! a delay past the client's timeout, a reset mid-response, a garbage or short body,
//! 401, 400, and per-coupon `conflict` / `rejected`. It can also present a certificate
//! from another CA. Enrollment keeps each code's `request_id` and answers it again (the
//! same 200) when the same code comes with the same id; `Reset`, `Delay` and `Garbage`
//! on `enroll` commit the enrollment first and then lose its answer; an expired code is
//! a 410. Used by tests/sync.rs, tests/enroll.rs, tests/backup.rs and benches/sync.rs.
#![allow(dead_code)]

use axum::body::Body;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde_json::{json, Value};
use std::collections::{HashMap, HashSet, VecDeque};
use std::sync::{Arc, Mutex};
use std::time::Duration;

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Fault {
    Status(u16),
    RetryAfter(u64),
    /// Process the batch (or commit the enrollment), then answer only after this (past
    /// the client's timeout).
    Delay(Duration),
    /// Process the batch (or commit the enrollment), then break the connection in the
    /// middle of the answer.
    Reset,
    /// Process the batch (or commit the enrollment), then answer 200 with a body that is
    /// not JSON.
    Garbage,
    /// Process the batch, then answer with one result too few.
    Short,
    Unauthorized,
    BadRequest,
    /// Send the rule set in this many pieces with this pause between them (a slow line).
    Trickle {
        pieces: usize,
        pause: Duration,
    },
}

#[derive(Default)]
pub struct UpstreamState {
    pub token: String,
    /// enrollment code → used?
    pub codes: HashMap<String, bool>,
    pub ruleset_keys: Value,
    pub ruleset: Option<String>,
    /// Every event as received, duplicates included, in arrival order.
    pub received: Vec<Value>,
    /// event_id → the answer given first (idempotency).
    pub answers: HashMap<String, Value>,
    /// Accepted event ids in the order they were first accepted.
    pub order: Vec<String>,
    /// coupon_id → forced per-event answer.
    pub verdicts: HashMap<String, Value>,
    /// path → faults for its next requests.
    pub faults: HashMap<&'static str, VecDeque<Fault>>,
    /// path → requests seen.
    pub requests: HashMap<&'static str, u64>,
    pub heartbeats: Vec<Value>,
    pub server_time_offset_s: i64,
    /// Coupon ids whose redeem event makes any batch holding it a 400.
    pub poison: HashSet<String>,
    pub ruleset_gets_with_etag: u64,
    /// enrollment code → the terminal id it enrolls (default T-0042).
    pub enroll_ids: HashMap<String, String>,
    /// enrollment code → the `request_id` it was taken with and the answer given.
    pub enrolled: HashMap<String, (Option<String>, Value)>,
    /// Every enrollment request's body, in arrival order (faulted ones included).
    pub enroll_requests: Vec<Value>,
    /// Enrollment codes past their expiry (410 `code_expired`).
    pub expired: HashSet<String>,
    /// The `terminal_id` of every accepted batch, in arrival order, with its event ids.
    pub batches: Vec<(String, Vec<String>)>,
}

pub struct TestUpstream {
    pub url: String,
    /// The CA the client must trust.
    pub ca_pem: String,
    pub state: Arc<Mutex<UpstreamState>>,
    handle: axum_server::Handle<std::net::SocketAddr>,
    runtime: Option<tokio::runtime::Runtime>,
}

/// A CA and a server certificate for 127.0.0.1 / localhost signed by it, as PEM.
pub fn make_pki(name: &str) -> (String, String, String) {
    let mut ca_params = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
    ca_params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
    ca_params.distinguished_name.push(rcgen::DnType::CommonName, format!("{name} test CA"));
    ca_params.key_usages = vec![rcgen::KeyUsagePurpose::KeyCertSign, rcgen::KeyUsagePurpose::CrlSign];
    let ca_key = rcgen::KeyPair::generate().unwrap();
    let ca = rcgen::CertifiedIssuer::self_signed(ca_params, ca_key).unwrap();
    let mut server_params =
        rcgen::CertificateParams::new(vec!["127.0.0.1".to_owned(), "localhost".to_owned()]).unwrap();
    server_params.distinguished_name.push(rcgen::DnType::CommonName, "test upstream");
    let server_key = rcgen::KeyPair::generate().unwrap();
    let server = server_params.signed_by(&server_key, &ca).unwrap();
    (ca.pem(), server.pem(), server_key.serialize_pem())
}

type Shared = Arc<Mutex<UpstreamState>>;

fn take_fault(state: &Shared, path: &'static str) -> Option<Fault> {
    let mut s = state.lock().unwrap();
    *s.requests.entry(path).or_default() += 1;
    s.faults.get_mut(path).and_then(VecDeque::pop_front)
}

fn authorized(state: &Shared, headers: &HeaderMap) -> bool {
    let want = format!("Bearer {}", state.lock().unwrap().token);
    headers.get("authorization").and_then(|v| v.to_str().ok()) == Some(want.as_str())
}

fn error(status: StatusCode, code: &str) -> Response {
    (status, Json(json!({"error": {"code": code, "message": code.replace('_', " ")}}))).into_response()
}

fn fault_response(fault: &Fault) -> Option<Response> {
    match fault {
        Fault::Status(code) => Some(error(StatusCode::from_u16(*code).unwrap(), "injected_fault")),
        Fault::RetryAfter(secs) => {
            let mut r = error(StatusCode::TOO_MANY_REQUESTS, "slow_down");
            r.headers_mut().insert("retry-after", secs.to_string().parse().unwrap());
            Some(r)
        }
        Fault::Unauthorized => Some(error(StatusCode::UNAUTHORIZED, "invalid_token")),
        Fault::BadRequest => Some(error(StatusCode::BAD_REQUEST, "malformed_batch")),
        _ => None,
    }
}

async fn enroll(State(state): State<Shared>, Json(body): Json<Value>) -> Response {
    state.lock().unwrap().enroll_requests.push(body.clone());
    let fault = take_fault(&state, "enroll");
    if let Some(r) = fault.as_ref().and_then(fault_response) {
        return r;
    }
    let code = body["enrollment_code"].as_str().unwrap_or_default().to_owned();
    let request_id = body["request_id"].as_str().map(str::to_owned);
    let answer = {
        let mut s = state.lock().unwrap();
        if s.expired.contains(&code) {
            return error(StatusCode::GONE, "code_expired");
        }
        match s.codes.get(&code).copied() {
            None => return error(StatusCode::UNAUTHORIZED, "invalid_code"),
            // The same code with the same request id: its answer was lost; the same again.
            Some(true) => match s.enrolled.get(&code) {
                Some((Some(id), answer)) if request_id.as_ref() == Some(id) => answer.clone(),
                _ => return error(StatusCode::CONFLICT, "code_used"),
            },
            Some(false) => {
                s.codes.insert(code.clone(), true);
                let terminal_id = s.enroll_ids.get(&code).cloned().unwrap_or_else(|| "T-0042".into());
                let answer = json!({
                    "terminal_id": terminal_id, "merchant_id": "M-000123", "merchant_name": "Lianhua Qingchun",
                    "merchant_category": "dining", "token": s.token, "timezone": "Asia/Shanghai",
                    "ruleset_keys": s.ruleset_keys,
                });
                s.enrolled.insert(code.clone(), (request_id, answer.clone()));
                answer
            }
        }
    };
    // Committed: a fault now loses the answer on the way.
    match fault {
        Some(Fault::Delay(d)) => {
            tokio::time::sleep(d).await;
            Json(answer).into_response()
        }
        Some(Fault::Reset) => {
            let text = answer.to_string();
            let head = text[..text.len() / 2].to_owned();
            let chunks: Vec<Result<bytes::Bytes, std::io::Error>> =
                vec![Ok(bytes::Bytes::from(head)), Err(std::io::Error::other("reset mid-response"))];
            Response::builder()
                .header("content-type", "application/json")
                .body(Body::from_stream(futures_util::stream::iter(chunks)))
                .unwrap()
        }
        Some(Fault::Garbage) => (StatusCode::OK, "<html>upstream proxy error</html>").into_response(),
        _ => Json(answer).into_response(),
    }
}

fn etag_of(jws: &str) -> String {
    let mut h: u64 = 0xcbf29ce484222325;
    for b in jws.bytes() {
        h = (h ^ u64::from(b)).wrapping_mul(0x100000001b3);
    }
    format!("\"{h:016x}\"")
}

async fn ruleset(State(state): State<Shared>, headers: HeaderMap) -> Response {
    let fault = take_fault(&state, "ruleset");
    if let Some(r) = fault.as_ref().and_then(fault_response) {
        return r;
    }
    if !authorized(&state, &headers) {
        return error(StatusCode::UNAUTHORIZED, "invalid_token");
    }
    let mut s = state.lock().unwrap();
    let Some(jws) = s.ruleset.clone() else {
        return error(StatusCode::NOT_FOUND, "no_ruleset");
    };
    let tag = etag_of(&jws);
    if let Some(sent) = headers.get("if-none-match").and_then(|v| v.to_str().ok()) {
        s.ruleset_gets_with_etag += 1;
        if sent == tag {
            return StatusCode::NOT_MODIFIED.into_response();
        }
    }
    if let Some(Fault::Trickle { pieces, pause }) = fault {
        let bytes = jws.into_bytes();
        let size = bytes.len().div_ceil(pieces.max(1));
        let chunks: Vec<bytes::Bytes> = bytes.chunks(size).map(bytes::Bytes::copy_from_slice).collect();
        let stream = futures_util::stream::unfold((chunks.into_iter(), true), move |(mut rest, first)| async move {
            if !first {
                tokio::time::sleep(pause).await;
            }
            rest.next().map(|c| (Ok::<_, std::io::Error>(c), (rest, false)))
        });
        return Response::builder()
            .header("content-type", "application/jose")
            .header("etag", tag)
            .body(Body::from_stream(stream))
            .unwrap();
    }
    ([("content-type", "application/jose"), ("etag", tag.as_str())], jws).into_response()
}

async fn heartbeat(State(state): State<Shared>, headers: HeaderMap, Json(body): Json<Value>) -> Response {
    if let Some(r) = take_fault(&state, "heartbeat").as_ref().and_then(fault_response) {
        return r;
    }
    if !authorized(&state, &headers) {
        return error(StatusCode::UNAUTHORIZED, "invalid_token");
    }
    let mut s = state.lock().unwrap();
    s.heartbeats.push(body);
    let now = jiff::Timestamp::now() + jiff::SignedDuration::from_secs(s.server_time_offset_s);
    Json(json!({"server_time": now.to_string()})).into_response()
}

/// Applies a batch: each event answered once by event_id, then the same answer again.
fn process(state: &Shared, events: &[Value]) -> Vec<Value> {
    let mut s = state.lock().unwrap();
    events
        .iter()
        .map(|e| {
            s.received.push(e.clone());
            let id = e["event_id"].as_str().unwrap_or_default().to_owned();
            if let Some(first) = s.answers.get(&id) {
                let status = first["status"].as_str().unwrap_or_default();
                return if status == "accepted" || status == "duplicate" {
                    json!({"event_id": id, "status": "duplicate"})
                } else {
                    first.clone()
                };
            }
            let coupon = e["coupon_id"].as_str().unwrap_or_default();
            let mut answer = match s.verdicts.get(coupon) {
                Some(v) if e["type"] == "redeem" => v.clone(),
                _ => json!({"status": "accepted"}),
            };
            answer["event_id"] = json!(id);
            s.answers.insert(id.clone(), answer.clone());
            s.order.push(id);
            answer
        })
        .collect()
}

async fn redemptions(State(state): State<Shared>, headers: HeaderMap, body: axum::body::Bytes) -> Response {
    let fault = take_fault(&state, "redemptions");
    if let Some(r) = fault.as_ref().and_then(fault_response) {
        return r;
    }
    if !authorized(&state, &headers) {
        return error(StatusCode::UNAUTHORIZED, "invalid_token");
    }
    let Ok(body) = serde_json::from_slice::<Value>(&body) else {
        return error(StatusCode::BAD_REQUEST, "not_json");
    };
    let events = body["events"].as_array().cloned().unwrap_or_default();
    if events.len() > 500 {
        return error(StatusCode::BAD_REQUEST, "too_many_events");
    }
    let poisoned = {
        let s = state.lock().unwrap();
        events.iter().find_map(|e| e["coupon_id"].as_str().filter(|c| s.poison.contains(*c)).map(str::to_owned))
    };
    if let Some(coupon) = poisoned {
        let body =
            json!({"error": {"code": "bad_event", "message": format!("event for coupon {coupon} is malformed")}});
        return (StatusCode::BAD_REQUEST, Json(body)).into_response();
    }
    let ids = events.iter().map(|e| e["event_id"].as_str().unwrap_or_default().to_owned()).collect();
    state.lock().unwrap().batches.push((body["terminal_id"].as_str().unwrap_or_default().to_owned(), ids));
    let mut results = process(&state, &events);
    match fault {
        Some(Fault::Delay(d)) => {
            tokio::time::sleep(d).await;
            Json(json!({"results": results})).into_response()
        }
        Some(Fault::Reset) => {
            let head = format!("{{\"results\": [{}", results.first().map(|r| r.to_string()).unwrap_or_default());
            let chunks: Vec<Result<bytes::Bytes, std::io::Error>> =
                vec![Ok(bytes::Bytes::from(head)), Err(std::io::Error::other("reset mid-response"))];
            Response::builder()
                .header("content-type", "application/json")
                .body(Body::from_stream(futures_util::stream::iter(chunks)))
                .unwrap()
        }
        Some(Fault::Garbage) => (StatusCode::OK, "<html>upstream proxy error</html>").into_response(),
        Some(Fault::Short) => {
            results.pop();
            Json(json!({"results": results})).into_response()
        }
        _ => Json(json!({"results": results})).into_response(),
    }
}

impl TestUpstream {
    /// Serves with a certificate of its own CA; `ca_pem` is what clients must trust.
    pub fn start() -> TestUpstream {
        let (ca_pem, cert, key) = make_pki("upstream");
        TestUpstream::serve(ca_pem, cert, key)
    }

    /// Serves a certificate from a CA nobody was told about; `ca_pem` is the
    /// *expected* CA, so a client configured with it must refuse the connection.
    pub fn start_with_wrong_certificate() -> TestUpstream {
        let (expected_ca, _, _) = make_pki("expected");
        let (_, cert, key) = make_pki("impostor");
        TestUpstream::serve(expected_ca, cert, key)
    }

    fn serve(ca_pem: String, cert: String, key: String) -> TestUpstream {
        let runtime = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();
        let state: Shared =
            Arc::new(Mutex::new(UpstreamState { token: "tok-0042-secret".into(), ..Default::default() }));
        let app = Router::new()
            .route("/v1/enroll", post(enroll))
            .route("/v1/ruleset", get(ruleset))
            .route("/v1/heartbeat", post(heartbeat))
            .route("/v1/redemptions", post(redemptions))
            .with_state(state.clone());
        let handle = axum_server::Handle::new();
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        listener.set_nonblocking(true).unwrap();
        let addr = listener.local_addr().unwrap();
        let server_handle = handle.clone();
        runtime.block_on(async {
            let tls =
                axum_server::tls_rustls::RustlsConfig::from_pem(cert.into_bytes(), key.into_bytes()).await.unwrap();
            let server = axum_server::from_tcp_rustls(listener, tls).unwrap().handle(server_handle);
            tokio::spawn(async move {
                let _ = server.serve(app.into_make_service()).await;
            });
        });
        TestUpstream {
            url: format!("https://127.0.0.1:{}/", addr.port()),
            ca_pem,
            state,
            handle,
            runtime: Some(runtime),
        }
    }

    pub fn set_ruleset(&self, jws: &str) {
        self.state.lock().unwrap().ruleset = Some(jws.to_owned());
    }

    pub fn set_ruleset_keys(&self, keys_json: &str) {
        self.state.lock().unwrap().ruleset_keys = serde_json::from_str(keys_json).unwrap();
    }

    pub fn add_code(&self, code: &str) {
        self.state.lock().unwrap().codes.insert(code.into(), false);
    }

    /// `code` is past its expiry: enrolling with it is a 410 `code_expired`.
    pub fn expire_code(&self, code: &str) {
        self.state.lock().unwrap().expired.insert(code.into());
    }

    /// The `request_id` of every enrollment request, in arrival order.
    pub fn enroll_request_ids(&self) -> Vec<Option<String>> {
        let s = self.state.lock().unwrap();
        s.enroll_requests.iter().map(|b| b["request_id"].as_str().map(str::to_owned)).collect()
    }

    pub fn fail_next(&self, path: &'static str, faults: &[Fault]) {
        self.state.lock().unwrap().faults.entry(path).or_default().extend(faults.iter().cloned());
    }

    /// Any batch holding the redeem event of `coupon_id` is answered 400.
    pub fn poison(&self, coupon_id: &str) {
        self.state.lock().unwrap().poison.insert(coupon_id.into());
    }

    pub fn cure(&self, coupon_id: &str) {
        self.state.lock().unwrap().poison.remove(coupon_id);
    }

    /// Event types in the order they first arrived.
    pub fn arrivals(&self) -> Vec<Value> {
        let s = self.state.lock().unwrap();
        let mut seen = HashSet::new();
        s.received
            .iter()
            .filter(|e| seen.insert(e["event_id"].as_str().unwrap_or_default().to_owned()))
            .cloned()
            .collect()
    }

    pub fn verdict(&self, coupon_id: &str, answer: Value) {
        self.state.lock().unwrap().verdicts.insert(coupon_id.into(), answer);
    }

    pub fn requests(&self, path: &'static str) -> u64 {
        self.state.lock().unwrap().requests.get(path).copied().unwrap_or(0)
    }

    /// Distinct event ids received.
    pub fn event_ids(&self) -> HashSet<String> {
        self.state.lock().unwrap().answers.keys().cloned().collect()
    }

    /// Events in the order first accepted, as (seq, event_id).
    pub fn first_arrivals(&self) -> Vec<(i64, String)> {
        let s = self.state.lock().unwrap();
        let mut seen = HashSet::new();
        s.received
            .iter()
            .filter(|e| seen.insert(e["event_id"].as_str().unwrap_or_default().to_owned()))
            .map(|e| (e["seq"].as_i64().unwrap_or(-1), e["event_id"].as_str().unwrap_or_default().to_owned()))
            .collect()
    }

    pub fn answer_for(&self, event_id: &str) -> Option<Value> {
        self.state.lock().unwrap().answers.get(event_id).cloned()
    }
}

impl Drop for TestUpstream {
    fn drop(&mut self) {
        self.handle.shutdown();
        if let Some(rt) = self.runtime.take() {
            rt.shutdown_timeout(Duration::from_secs(1));
        }
    }
}
