//! The interactive demo's moving parts: a loopback demo upstream (plain HTTP on
//! 127.0.0.1, allowed for loopback only) that enrolls the terminal, serves the demo
//! issuer's signed rule set, answers heartbeats and redemptions — and can be switched
//! "offline" —, the sample coupons, and the `/demo` page whose clicks feed a coupon's
//! text into a pseudo-terminal as a scanner would, so it travels the real frame-decoder
//! path. Nothing here is used outside `redeemd demo`.
//!
//! It must stay a demo: it never runs unless asked for, and it serves only loopback.

use crate::daemon::api::{page_role, AppState};
use crate::issuer::{CodeSpec, Holder, Issuer};
use crate::messages::{self, Language};
use askama::Template;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{Html, IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Extension, Json, Router};
use jiff::{SignedDuration, Timestamp};
use serde_json::{json, Value};
use std::collections::HashMap;
use std::io::Write;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

/// The enrollment code the demo upstream accepts (once).
pub const ENROLLMENT_CODE: &str = "DEMO-ENROLL";
/// A coupon the demo upstream already saw redeemed at another terminal: redeemed here
/// offline, it is accepted, then upstream answers `conflict`.
pub const USED_ELSEWHERE: &str = "DEMO-USED-ELSEWHERE";
pub const REVOKED: &str = "DEMO-REVOKED";
pub const CAMPAIGN: &str = "DEMO-DINING";
pub const BIG_CAMPAIGN: &str = "DEMO-BIG";

/// The demo rule set: "spend 40, get 10 off" and "spend 100, get 20 off", a revoked id.
pub fn ruleset(issuer: &Issuer, now: Timestamp) -> String {
    let mut payload = issuer.ruleset_payload(1, now, &[CAMPAIGN, BIG_CAMPAIGN], &[REVOKED]);
    if let Some(campaigns) = payload["campaigns"].as_array_mut() {
        for c in campaigns.iter_mut() {
            if c["id"] == CAMPAIGN {
                c["name"] = json!({"zh-CN": "演示餐饮券", "en": "Demo dining coupon"});
            } else {
                c["name"] = json!({"zh-CN": "演示大额券", "en": "Demo big-basket coupon"});
                c["face_value"] = json!(2000);
                c["min_spend"] = json!(10000);
            }
        }
    }
    issuer.sign_ruleset(&payload)
}

#[derive(Default)]
struct UpstreamState {
    enrolled: bool,
    /// coupon id → first redemption (terminal, at).
    redeemed: HashMap<String, (String, String)>,
    /// event id → the first answer (re-sent events get it again).
    answers: HashMap<String, Value>,
}

/// The demo upstream, serving until the process ends.
pub struct DemoUpstream {
    pub addr: SocketAddr,
    pub online: Arc<AtomicBool>,
}

const TOKEN: &str = "demo-upstream-token";

impl DemoUpstream {
    pub fn start(issuer: &Issuer, now: Timestamp) -> std::io::Result<DemoUpstream> {
        let listener = std::net::TcpListener::bind("127.0.0.1:0")?;
        listener.set_nonblocking(true)?;
        let addr = listener.local_addr()?;
        let online = Arc::new(AtomicBool::new(true));
        let jws = ruleset(issuer, now);
        let anchors: Value = serde_json::from_str(&issuer.trust_anchors_json()).unwrap_or(Value::Null);
        let mut state = UpstreamState::default();
        state
            .redeemed
            .insert(USED_ELSEWHERE.into(), ("T-0007".into(), (now - SignedDuration::from_hours(2)).to_string()));
        let state = Arc::new(Mutex::new(state));
        let gate = online.clone();
        let app = Router::new()
            .route(
                "/v1/enroll",
                post(move |Extension(s): Extension<Arc<Mutex<UpstreamState>>>, Json(body): Json<Value>| async move {
                    let mut s = s.lock().unwrap_or_else(|e| e.into_inner());
                    if body["enrollment_code"] != ENROLLMENT_CODE {
                        return fail(StatusCode::UNAUTHORIZED, "invalid_code");
                    }
                    if s.enrolled {
                        return fail(StatusCode::CONFLICT, "code_used");
                    }
                    s.enrolled = true;
                    Json(json!({"terminal_id": "T-DEMO", "merchant_id": "M-DEMO", "merchant_name": "演示小店",
                        "merchant_category": "dining", "token": TOKEN, "timezone": "Asia/Shanghai",
                        "ruleset_keys": anchors}))
                    .into_response()
                }),
            )
            .route("/v1/ruleset", get(move || async move { ([("content-type", "application/jose")], jws) }))
            .route("/v1/heartbeat", post(|| async { Json(json!({"server_time": Timestamp::now().to_string()})) }))
            .route("/v1/redemptions", post(redemptions))
            .layer(axum::middleware::from_fn(move |headers: HeaderMap, request, next: axum::middleware::Next| {
                let gate = gate.clone();
                async move {
                    if !gate.load(Ordering::Relaxed) {
                        return fail(StatusCode::SERVICE_UNAVAILABLE, "demo_offline");
                    }
                    let enrolling = headers.get("authorization").is_none();
                    let token_ok = headers
                        .get("authorization")
                        .and_then(|v| v.to_str().ok())
                        .is_some_and(|v| v == format!("Bearer {TOKEN}"));
                    if !enrolling && !token_ok {
                        return fail(StatusCode::UNAUTHORIZED, "invalid_token");
                    }
                    next.run(request).await
                }
            }))
            .layer(Extension(state));
        std::thread::Builder::new().name("demo-upstream".into()).spawn(move || {
            let Ok(runtime) = tokio::runtime::Builder::new_current_thread().enable_all().build() else { return };
            runtime.block_on(async move {
                if let Ok(listener) = tokio::net::TcpListener::from_std(listener) {
                    let _ = axum::serve(listener, app).await;
                }
            });
        })?;
        Ok(DemoUpstream { addr, online })
    }

    pub fn url(&self) -> String {
        format!("http://{}/", self.addr)
    }
}

fn fail(status: StatusCode, code: &str) -> Response {
    (status, Json(json!({"error": {"code": code, "message": code}}))).into_response()
}

async fn redemptions(Extension(s): Extension<Arc<Mutex<UpstreamState>>>, Json(body): Json<Value>) -> Response {
    let mut s = s.lock().unwrap_or_else(|e| e.into_inner());
    let events = body["events"].as_array().cloned().unwrap_or_default();
    let results: Vec<Value> = events
        .iter()
        .map(|e| {
            let id = e["event_id"].as_str().unwrap_or_default().to_owned();
            if let Some(first) = s.answers.get(&id) {
                let mut again = first.clone();
                if again["status"] == "accepted" {
                    again["status"] = json!("duplicate");
                }
                return again;
            }
            let coupon = e["coupon_id"].as_str().unwrap_or_default().to_owned();
            let at = e["at"].as_str().unwrap_or_default().to_owned();
            let mut answer = json!({"event_id": id, "status": "accepted"});
            if e["type"] == "redeem" {
                match s.redeemed.get(&coupon) {
                    Some((terminal, first_at)) if terminal != "T-DEMO" => {
                        answer = json!({"event_id": id, "status": "conflict", "redeemed_by": terminal,
                                        "redeemed_at": first_at});
                    }
                    _ => {
                        s.redeemed.insert(coupon, ("T-DEMO".into(), at));
                    }
                }
            } else if e["type"] == "void" {
                s.redeemed.retain(|c, (terminal, _)| !(c == &coupon && terminal == "T-DEMO"));
            }
            s.answers.insert(id, answer.clone());
            answer
        })
        .collect();
    Json(json!({"results": results})).into_response()
}

/// One sample coupon on the `/demo` page.
#[derive(Debug, Clone)]
pub struct Sample {
    pub key: &'static str,
    pub code: String,
}

/// The sample coupons, made afresh at `now`: a valid one each time the page opens (so it
/// can be redeemed again and again), and the refusals a cashier meets.
pub fn samples(issuer: &Issuer, now: Timestamp) -> Vec<Sample> {
    let stamp = now.as_millisecond();
    let code = |id: String, campaign: &str, edit: &dyn Fn(&mut CodeSpec)| {
        let mut spec = CodeSpec::new(id, campaign, now - SignedDuration::from_mins(5));
        edit(&mut spec);
        issuer.code(&spec)
    };
    let past = u64::try_from((now - SignedDuration::from_hours(1)).as_second()).unwrap_or(0);
    vec![
        Sample { key: "demo.valid", code: code(format!("DEMO-{stamp}"), CAMPAIGN, &|_| {}) },
        Sample { key: "demo.below_min", code: code(format!("DEMO-BIG-{stamp}"), BIG_CAMPAIGN, &|_| {}) },
        Sample {
            key: "demo.expired",
            code: code(format!("DEMO-OLD-{stamp}"), CAMPAIGN, &|s| s.not_after = Some(past)),
        },
        Sample { key: "demo.revoked", code: code(REVOKED.into(), CAMPAIGN, &|_| {}) },
        Sample { key: "demo.used", code: code(USED_ELSEWHERE.into(), CAMPAIGN, &|_| {}) },
    ]
}

/// The QR code of `text` as inline SVG.
pub fn qr_svg(text: &str) -> String {
    match qrcode::QrCode::new(text.as_bytes()) {
        Ok(code) => code.render::<qrcode::render::svg::Color>().min_dimensions(180, 180).quiet_zone(true).build(),
        Err(_) => String::new(),
    }
}

/// What the `/demo` routes share.
pub struct DemoState {
    pub issuer: Issuer,
    /// The demo holder app's device key, and the holder-bound coupon it shows (CP2).
    pub holder: Holder,
    pub live_coupon: Mutex<Vec<u8>>,
    /// The master side of the virtual scanner's pseudo-terminal.
    pub scanner: Mutex<Box<dyn Write + Send>>,
    pub online: Arc<AtomicBool>,
    pub clock: Arc<dyn crate::clock::Clock>,
}

pub fn routes(state: Arc<DemoState>) -> Router<Arc<AppState>> {
    Router::new()
        .route("/demo", get(page))
        .route("/demo/scan", post(scan))
        .route("/demo/live", get(live))
        .route("/demo/upstream", post(upstream_switch))
        .layer(Extension(state))
}

struct Card {
    title: &'static str,
    code: String,
    svg: String,
}

#[derive(Template)]
#[template(path = "demo.html")]
struct DemoPage {
    lang: &'static str,
    messages: String,
    other_lang: &'static str,
    other_lang_name: &'static str,
    terminal_lang: &'static str,
    language: Language,
    cards: Vec<Card>,
    online: bool,
}

impl DemoPage {
    fn t(&self, key: &str) -> &'static str {
        messages::text(self.language, key)
    }
}

async fn page(
    State(s): State<Arc<AppState>>,
    Extension(demo): Extension<Arc<DemoState>>,
    axum::extract::Query(query): axum::extract::Query<HashMap<String, String>>,
    headers: HeaderMap,
) -> Response {
    let (language, _) = crate::daemon::pages::page_language(&s, &headers, &query);
    if page_role(&s, &headers).await.is_none() {
        return (StatusCode::UNAUTHORIZED, messages::text(language, "cashier.link_needed")).into_response();
    }
    let now = demo.clock.now();
    let mut cards: Vec<Card> = samples(&demo.issuer, now)
        .into_iter()
        .map(|sample| Card {
            title: messages::text(language, sample.key),
            svg: qr_svg(&sample.code),
            code: sample.code,
        })
        .collect();
    // A fresh holder-bound coupon each time the page opens: its live presentation (the
    // page refreshes it every 15 s) and a "screenshot" of one two minutes old.
    let cose = demo.issuer.coupon_cose(
        &CodeSpec::new(format!("DEMO-LIVE-{}", now.as_millisecond()), CAMPAIGN, now - SignedDuration::from_mins(5))
            .bound_to(&demo.holder),
    );
    for (key, at) in [("demo.dynamic", now), ("demo.screenshot", now - SignedDuration::from_mins(2))] {
        let code = demo.holder.present(&cose, at);
        cards.push(Card { title: messages::text(language, key), svg: qr_svg(&code), code });
    }
    *demo.live_coupon.lock().unwrap_or_else(|e| e.into_inner()) = cose;
    let (other, name) = match language {
        Language::ZhCn => (Language::En, "English"),
        Language::En => (Language::ZhCn, "中文"),
    };
    let page = DemoPage {
        lang: language.tag(),
        messages: messages::table_json(language).replace("</", "<\\/"),
        other_lang: other.tag(),
        other_lang_name: name,
        terminal_lang: s.language.tag(),
        language,
        cards,
        online: demo.online.load(Ordering::Relaxed),
    };
    match page.render() {
        Ok(body) => Html(body).into_response(),
        Err(e) => (StatusCode::INTERNAL_SERVER_ERROR, e.to_string()).into_response(),
    }
}

async fn scan(
    State(s): State<Arc<AppState>>,
    Extension(demo): Extension<Arc<DemoState>>,
    headers: HeaderMap,
    Json(body): Json<Value>,
) -> Response {
    if page_role(&s, &headers).await.is_none() {
        return fail(StatusCode::UNAUTHORIZED, "unauthorized");
    }
    let Some(code) = body["code"].as_str().filter(|c| c.len() < 4096 && !c.contains(['\r', '\n'])) else {
        return fail(StatusCode::BAD_REQUEST, "bad_code");
    };
    // As a scanner sends it: the text, then a carriage return (the profile takes any EOL).
    let frame = format!("{code}\r");
    // A pty write may wait for the reader: off the async workers.
    let written = tokio::task::spawn_blocking(move || {
        let mut port = demo.scanner.lock().unwrap_or_else(|e| e.into_inner());
        port.write_all(frame.as_bytes()).and_then(|_| port.flush())
    })
    .await;
    match written {
        Ok(Ok(())) => Json(json!({"scanned": true})).into_response(),
        Ok(Err(e)) => fail(StatusCode::SERVICE_UNAVAILABLE, &format!("virtual scanner: {e}")),
        Err(_) => fail(StatusCode::INTERNAL_SERVER_ERROR, "virtual scanner"),
    }
}

async fn upstream_switch(
    State(s): State<Arc<AppState>>,
    Extension(demo): Extension<Arc<DemoState>>,
    headers: HeaderMap,
) -> Response {
    if page_role(&s, &headers).await.is_none() {
        return fail(StatusCode::UNAUTHORIZED, "unauthorized");
    }
    let online = !demo.online.load(Ordering::Relaxed);
    demo.online.store(online, Ordering::Relaxed);
    Json(json!({"online": online})).into_response()
}

/// The live presentation of the page's holder-bound coupon, signed now (the page asks
/// every 15 s, as the holder app refreshes its code).
async fn live(
    State(s): State<Arc<AppState>>,
    Extension(demo): Extension<Arc<DemoState>>,
    headers: HeaderMap,
) -> Response {
    if page_role(&s, &headers).await.is_none() {
        return fail(StatusCode::UNAUTHORIZED, "unauthorized");
    }
    let cose = demo.live_coupon.lock().unwrap_or_else(|e| e.into_inner()).clone();
    if cose.is_empty() {
        return fail(StatusCode::NOT_FOUND, "no_live_coupon");
    }
    let code = demo.holder.present(&cose, demo.clock.now());
    Json(json!({"svg": qr_svg(&code), "code": code})).into_response()
}
