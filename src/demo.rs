//! The interactive demo's moving parts: its upstream — a sandbox (`crate::sandbox`, the
//! same code as `redeemd sandbox serve`) in the demo's directory, with the demo issuer's
//! well-known keys, served over plain HTTP on 127.0.0.1 (allowed for loopback only) and
//! switchable "offline" —, the sample coupons, and the `/demo` page whose clicks feed a
//! coupon's text into a pseudo-terminal as a scanner would, so it travels the real
//! frame-decoder path. Nothing here is used outside `redeemd demo`.
//!
//! It must stay a demo: it never runs unless asked for, and it serves only loopback.

use crate::clock::Clock;
use crate::daemon::api::{page_role, AppState};
use crate::issuer::{CodeSpec, Holder, Issuer, IssuerKeys};
use crate::messages::{self, Language};
use crate::sandbox::{Sandbox, SandboxError, Setup};
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
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

/// The enrollment code the demo upstream accepts (once).
pub const ENROLLMENT_CODE: &str = "DEMO-ENROLL";
/// A coupon the demo upstream already saw redeemed at another terminal: redeemed here
/// offline, it is accepted, then upstream answers `conflict`.
pub const USED_ELSEWHERE: &str = "DEMO-USED-ELSEWHERE";
/// Revoked in the demo's campaigns (`packaging/sandbox-campaigns.toml`).
pub const REVOKED: &str = "DEMO-REVOKED";
pub const CAMPAIGN: &str = "DEMO-DINING";
pub const BIG_CAMPAIGN: &str = "DEMO-BIG";
/// Who redeemed [`USED_ELSEWHERE`], as upstream's `conflict` answer names it.
const OTHER_TERMINAL: &str = "T-0007";

/// The demo upstream, serving until the process ends.
pub struct DemoUpstream {
    pub addr: SocketAddr,
    pub online: Arc<AtomicBool>,
    /// Its state: `redeemd sandbox terminals --dir DIR/upstream` works on it too.
    pub sandbox: Arc<Sandbox>,
}

impl DemoUpstream {
    /// A sandbox in `dir` with the demo issuer's `keys` and the demo's campaigns (the
    /// built-in default), its enrollment code ready and [`USED_ELSEWHERE`] redeemed by
    /// another terminal two hours ago, served on 127.0.0.1 in a thread of its own.
    pub fn start(dir: &Path, keys: IssuerKeys, clock: Arc<dyn Clock>) -> Result<DemoUpstream, SandboxError> {
        let setup = Setup { campaigns: None, keys: Some(keys) };
        let sandbox = Arc::new(Sandbox::create_or_open(dir, setup, clock.clone())?.sandbox);
        // Unused again, should a demo that stopped before provisioning have spent it.
        sandbox.put_code(ENROLLMENT_CODE, SignedDuration::from_hours(24))?;
        sandbox.seed_redemption(
            USED_ELSEWHERE,
            CAMPAIGN,
            OTHER_TERMINAL,
            clock.now() - SignedDuration::from_hours(2),
        )?;
        let io = |source: std::io::Error| SandboxError::Write { path: dir.to_owned(), source };
        let listener = std::net::TcpListener::bind("127.0.0.1:0").map_err(io)?;
        let addr = listener.local_addr().map_err(io)?;
        let online = Arc::new(AtomicBool::new(true));
        let options = crate::sandbox::server::ServeOptions { online: Some(online.clone()), ..Default::default() };
        let app = crate::sandbox::server::router(sandbox.clone(), options);
        std::thread::Builder::new()
            .name("demo-upstream".into())
            .spawn(move || {
                let Ok(runtime) = tokio::runtime::Builder::new_current_thread().enable_all().build() else { return };
                let handle = axum_server::Handle::new();
                runtime.block_on(async move {
                    let transport = crate::sandbox::server::Transport::Plain;
                    if let Err(e) = crate::sandbox::server::serve(listener, transport, app, handle).await {
                        tracing::error!("the demo upstream stopped: {e}");
                    }
                });
            })
            .map_err(io)?;
        Ok(DemoUpstream { addr, online, sandbox })
    }

    pub fn url(&self) -> String {
        format!("http://{}/", self.addr)
    }
}

fn fail(status: StatusCode, code: &str) -> Response {
    (status, Json(json!({"error": {"code": code, "message": code}}))).into_response()
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
        let (title, text) = ("cashier.link_needed_title", "cashier.link_needed");
        return crate::daemon::api::notice_page(language, StatusCode::UNAUTHORIZED, title, text, "unauthorized");
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
