//! The HTTPS client for the issuer platform (`spec/upstream-api.md`): reqwest over rustls
//! (ring provider), the provisioned CA trusted in addition to (or instead of) the system
//! roots, a bearer token that is never logged, timeouts, `User-Agent`, gzip, and response
//! bodies read with a size cap. Each call maps its answer to a typed result, so the sync
//! core can decide what to do without looking at HTTP.
//!
//! The only module that speaks HTTP to upstream. It does not touch the database.

use jiff::Timestamp;
use serde::{Deserialize, Serialize};
use std::io::Write as _;
use std::path::Path;
use std::time::Duration;
use thiserror::Error;

pub const AGENT_VERSION: &str = env!("CARGO_PKG_VERSION");
/// Largest JSON answer read into memory.
const MAX_JSON: usize = 4 << 20;
/// Largest rule set accepted (a million revoked ids is about 25 MB).
pub const MAX_RULESET: u64 = 512 << 20;
/// A large rule-set download says how far it got this often (bytes), in the log.
const PROGRESS_LOG_EVERY: u64 = 4 << 20;

#[derive(Debug, Error, Clone, PartialEq, Eq)]
pub enum UpstreamError {
    #[error("upstream refused the token (401): re-provision needed (`redeemd provision …`)")]
    Unauthorized,
    #[error("upstream refused the enrollment code (401 {code}): check the code with the issuer")]
    InvalidCode { code: String },
    #[error("the enrollment code was already used (409 {code}): ask the issuer for a new one")]
    CodeUsed { code: String },
    #[error("upstream says the request is bad (400): {0}")]
    BadRequest(String),
    #[error("TLS: {0}")]
    Tls(String),
    #[error("cannot reach upstream {url}: {message}")]
    Unreachable { url: String, message: String },
    /// 408, 429, 5xx, timeouts, resets, short or garbled answers: try again later.
    #[error("{reason}")]
    Retryable { reason: String, retry_after: Option<RetryAfter> },
    #[error("upstream URL {0:?} is refused: use https:// (http:// only for a loopback host)")]
    InsecureUrl(String),
    #[error("{0}")]
    Local(String),
    /// What a `sync --once` left behind: events still waiting, and events parked after
    /// upstream called them bad (`redeemd outbox list`).
    #[error("{} event(s) left undelivered ({pending} pending, {parked} parked after upstream called them bad)", pending + parked)]
    Undelivered { pending: u64, parked: u64 },
}

/// `Retry-After` as upstream sent it: seconds, or an HTTP date.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RetryAfter {
    Delay(Duration),
    At(jiff::Timestamp),
}

/// No `Retry-After` makes a terminal wait longer than this.
pub const RETRY_AFTER_CAP: Duration = Duration::from_secs(3600);

impl RetryAfter {
    /// The wait from `now`, capped at [`RETRY_AFTER_CAP`]; a date in the past is no wait.
    pub fn delay_from(self, now: jiff::Timestamp) -> Duration {
        let delay = match self {
            RetryAfter::Delay(d) => d,
            RetryAfter::At(at) => Duration::try_from(at.duration_since(now)).unwrap_or(Duration::ZERO),
        };
        delay.min(RETRY_AFTER_CAP)
    }

    /// `Retry-After: 120` or `Retry-After: Wed, 21 Oct 2026 07:28:00 GMT` (RFC 9110).
    pub fn parse(value: &str) -> Option<RetryAfter> {
        let value = value.trim();
        if !value.is_empty() && value.bytes().all(|b| b.is_ascii_digit()) {
            // Digits beyond u64 are "a very long time": capped like any other.
            return Some(RetryAfter::Delay(value.parse().map(Duration::from_secs).unwrap_or(RETRY_AFTER_CAP)));
        }
        jiff::fmt::rfc2822::DateTimeParser::new().parse_timestamp(value).ok().map(RetryAfter::At)
    }
}

impl UpstreamError {
    /// How long upstream asked us to wait, from `now`, capped at an hour.
    pub fn retry_after(&self, now: jiff::Timestamp) -> Option<Duration> {
        match self {
            UpstreamError::Retryable { retry_after, .. } => retry_after.map(|r| r.delay_from(now)),
            _ => None,
        }
    }

    /// Worth retrying later without anyone's help.
    pub fn is_transient(&self) -> bool {
        matches!(self, UpstreamError::Retryable { .. } | UpstreamError::Unreachable { .. } | UpstreamError::Tls(_))
    }
}

/// Where upstream is and how to trust it.
#[derive(Clone)]
pub struct Endpoint {
    pub base_url: String,
    pub ca_pem: Option<Vec<u8>>,
    pub system_roots: bool,
    pub timeout: Duration,
}

/// The base URL as requests are joined onto it: with a trailing slash, so that
/// `https://host/api/v2` keeps its last segment (`Url::join` would drop it). Returns the
/// normalised text and whether it changed.
pub fn normalize_base(url: &str) -> Result<(String, bool), UpstreamError> {
    let mut parsed = check_url(url)?;
    if parsed.path().ends_with('/') {
        return Ok((parsed.to_string(), parsed.as_str() != url));
    }
    let path = format!("{}/", parsed.path());
    parsed.set_path(&path);
    Ok((parsed.to_string(), true))
}

/// Checks the URL: https, or http only to a loopback host.
pub fn check_url(url: &str) -> Result<reqwest::Url, UpstreamError> {
    let parsed = reqwest::Url::parse(url).map_err(|e| UpstreamError::Local(format!("upstream URL {url:?}: {e}")))?;
    match parsed.scheme() {
        "https" => Ok(parsed),
        "http" => {
            let loopback = match parsed.host() {
                Some(url::Host::Domain(d)) => d == "localhost",
                Some(url::Host::Ipv4(ip)) => ip.is_loopback(),
                Some(url::Host::Ipv6(ip)) => ip.is_loopback(),
                None => false,
            };
            if loopback {
                Ok(parsed)
            } else {
                Err(UpstreamError::InsecureUrl(url.into()))
            }
        }
        _ => Err(UpstreamError::InsecureUrl(url.into())),
    }
}

/// The client plus the terminal's credentials. `Debug` never shows the token.
pub struct Upstream {
    client: reqwest::Client,
    base: reqwest::Url,
    token: Option<String>,
}

impl std::fmt::Debug for Upstream {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Upstream").field("base", &self.base.as_str()).field("token", &"<redacted>").finish()
    }
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct Enrollment {
    pub terminal_id: String,
    pub merchant_id: String,
    #[serde(default)]
    pub merchant_name: String,
    pub merchant_category: String,
    pub token: String,
    pub timezone: String,
    pub ruleset_keys: Vec<crate::ruleset::TrustAnchorWire>,
}

/// One per-event answer of `POST /v1/redemptions`, kept whole for the ledger.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EventResult {
    pub event_id: String,
    pub status: EventStatus,
    pub raw: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum EventStatus {
    Accepted,
    Duplicate,
    Conflict,
    Rejected,
}

impl EventStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            EventStatus::Accepted => "accepted",
            EventStatus::Duplicate => "duplicate",
            EventStatus::Conflict => "conflict",
            EventStatus::Rejected => "rejected",
        }
    }
}

pub enum RulesetFetch {
    NotModified,
    Fetched { etag: Option<String>, bytes: u64 },
}

fn retryable(reason: impl Into<String>) -> UpstreamError {
    UpstreamError::Retryable { reason: reason.into(), retry_after: None }
}

/// Walks an error's sources for the rustls cause and says which check failed.
fn classify(base: &reqwest::Url, e: &reqwest::Error) -> UpstreamError {
    let mut source: Option<&(dyn std::error::Error + 'static)> = Some(e);
    while let Some(s) = source {
        if let Some(tls) = s.downcast_ref::<rustls::Error>() {
            return UpstreamError::Tls(describe_tls(base, tls));
        }
        // An io::Error hides its payload from `source()`: look inside.
        let inner = s.downcast_ref::<std::io::Error>().and_then(|io| io.get_ref());
        if let Some(tls) = inner.and_then(|i| i.downcast_ref::<rustls::Error>()) {
            return UpstreamError::Tls(describe_tls(base, tls));
        }
        source = s.source();
    }
    let chain = error_chain(e);
    if e.is_timeout() {
        return retryable(format!("upstream did not answer in time: {chain}"));
    }
    if e.is_connect() {
        // The rustls error may arrive only as text (boxed through hyper's connector).
        for (marker, error) in [
            ("UnknownIssuer", rustls::CertificateError::UnknownIssuer),
            ("NotValidForName", rustls::CertificateError::NotValidForName),
            ("NotValidYet", rustls::CertificateError::NotValidYet),
            ("Expired", rustls::CertificateError::Expired),
            ("Revoked", rustls::CertificateError::Revoked),
            ("BadSignature", rustls::CertificateError::BadSignature),
        ] {
            if chain.contains(marker) {
                return UpstreamError::Tls(describe_tls(base, &rustls::Error::InvalidCertificate(error)));
            }
        }
        if chain.contains("certificate") || chain.contains("tls") || chain.contains("TLS") {
            return UpstreamError::Tls(chain);
        }
        return UpstreamError::Unreachable { url: base.to_string(), message: chain };
    }
    retryable(format!("the exchange with upstream broke off: {chain}"))
}

fn error_chain(e: &(dyn std::error::Error + 'static)) -> String {
    let mut parts = vec![e.to_string()];
    let mut source = e.source();
    while let Some(s) = source {
        let text = s.to_string();
        if !parts.iter().any(|p| p.contains(&text)) {
            parts.push(text);
        }
        source = s.source();
    }
    parts.join(": ")
}

fn describe_tls(base: &reqwest::Url, e: &rustls::Error) -> String {
    use rustls::CertificateError as C;
    let host = base.host_str().unwrap_or("?");
    match e {
        rustls::Error::InvalidCertificate(c) => match c {
            C::UnknownIssuer => format!(
                "the certificate of {host} is not signed by a trusted CA (UnknownIssuer): give the upstream's CA with --ca"
            ),
            C::NotValidForName | C::NotValidForNameContext { .. } => {
                format!("the certificate of {host} is not valid for that name (NotValidForName)")
            }
            C::Expired | C::ExpiredContext { .. } => format!("the certificate of {host} has expired (or this clock is wrong)"),
            C::NotValidYet | C::NotValidYetContext { .. } => {
                format!("the certificate of {host} is not valid yet (or this clock is wrong)")
            }
            C::Revoked => format!("the certificate of {host} is revoked"),
            C::BadSignature => format!("the certificate of {host} has a bad signature"),
            other => format!("the certificate of {host} was refused: {other:?}"),
        },
        other => format!("handshake with {host} failed: {other}"),
    }
}

fn retry_after(headers: &reqwest::header::HeaderMap) -> Option<RetryAfter> {
    RetryAfter::parse(headers.get(reqwest::header::RETRY_AFTER)?.to_str().ok()?)
}

/// Reads a body up to `cap` bytes; longer is a failure.
async fn read_capped(resp: &mut reqwest::Response, base: &reqwest::Url, cap: usize) -> Result<Vec<u8>, UpstreamError> {
    let mut body = Vec::new();
    while let Some(chunk) = resp.chunk().await.map_err(|e| classify(base, &e))? {
        if body.len() + chunk.len() > cap {
            return Err(retryable(format!("upstream answered with more than {cap} bytes")));
        }
        body.extend_from_slice(&chunk);
    }
    Ok(body)
}

#[derive(Deserialize)]
struct ErrorBody {
    error: ErrorDetail,
}

#[derive(Deserialize)]
struct ErrorDetail {
    code: String,
    #[serde(default)]
    message: String,
}

fn error_text(body: &[u8]) -> String {
    match serde_json::from_slice::<ErrorBody>(body) {
        Ok(b) if b.error.message.is_empty() => b.error.code,
        Ok(b) => format!("{} ({})", b.error.message, b.error.code),
        Err(_) => String::from_utf8_lossy(&body[..body.len().min(200)]).into_owned(),
    }
}

/// The client of a provisioned terminal: its URL, CA file and token from the config.
/// Errors name the file at fault and say what to do.
pub fn client_for(
    config: &crate::config::Config,
    up: &crate::config::UpstreamConfig,
) -> Result<Upstream, UpstreamError> {
    let token_path = config.token_path().unwrap_or_default();
    let token = std::fs::read_to_string(&token_path).map_err(|e| {
        UpstreamError::Local(format!(
            "cannot read the token {}: {e}; re-provision with `redeemd provision`",
            token_path.display()
        ))
    })?;
    {
        use std::os::unix::fs::PermissionsExt as _;
        if let Ok(meta) = std::fs::metadata(&token_path) {
            if meta.permissions().mode() & 0o077 != 0 {
                tracing::warn!("token file {} is readable by others: chmod 600 it", token_path.display());
            }
        }
    }
    let ca_pem = up
        .ca_file
        .as_deref()
        .map(|p| {
            std::fs::read(p).map_err(|e| UpstreamError::Local(format!("cannot read the CA file {}: {e}", p.display())))
        })
        .transpose()?;
    let endpoint = Endpoint {
        base_url: up.url.clone(),
        ca_pem,
        system_roots: up.system_roots,
        timeout: Duration::from_secs(up.timeout_secs),
    };
    Upstream::new(&endpoint, Some(token.trim().to_owned()))
}

impl Upstream {
    pub fn new(endpoint: &Endpoint, token: Option<String>) -> Result<Upstream, UpstreamError> {
        let base = check_url(&normalize_base(&endpoint.base_url)?.0)?;
        // Once per process; a second install is refused harmlessly.
        let _ = rustls::crypto::ring::default_provider().install_default();
        let mut builder = reqwest::Client::builder()
            .user_agent(format!("redeemd/{AGENT_VERSION}"))
            .connect_timeout(endpoint.timeout.min(Duration::from_secs(10)))
            // Timeouts bound waits, not bodies: a 25 MB rule set on a slow shop line takes
            // minutes but never stalls for `timeout`; JSON answers are size-capped.
            .read_timeout(endpoint.timeout)
            .gzip(true)
            .https_only(base.scheme() == "https");
        if let Some(pem) = &endpoint.ca_pem {
            let certs = reqwest::Certificate::from_pem_bundle(pem)
                .map_err(|e| UpstreamError::Local(format!("the upstream CA file is not PEM certificates: {e}")))?;
            if certs.is_empty() {
                return Err(UpstreamError::Local("the upstream CA file holds no certificate".into()));
            }
            builder =
                if endpoint.system_roots { builder.tls_certs_merge(certs) } else { builder.tls_certs_only(certs) };
        }
        let client = builder.build().map_err(|e| UpstreamError::Local(format!("building the HTTPS client: {e}")))?;
        Ok(Upstream { client, base, token })
    }

    fn url(&self, path: &str) -> reqwest::Url {
        self.base.join(path).unwrap_or_else(|_| self.base.clone())
    }

    fn authorized(&self, req: reqwest::RequestBuilder) -> reqwest::RequestBuilder {
        match &self.token {
            Some(t) => req.bearer_auth(t),
            None => req,
        }
    }

    /// Common answers of authorized calls: 401, 400, retryable statuses.
    fn status_error(status: reqwest::StatusCode, headers: &reqwest::header::HeaderMap, body: &[u8]) -> UpstreamError {
        match status.as_u16() {
            401 => UpstreamError::Unauthorized,
            400 => UpstreamError::BadRequest(error_text(body)),
            408 | 429 | 500..=599 => UpstreamError::Retryable {
                reason: format!("upstream answered {status}: {}", error_text(body)),
                retry_after: retry_after(headers),
            },
            _ => retryable(format!("upstream answered {status}: {}", error_text(body))),
        }
    }

    pub async fn enroll(&self, code: &str, label: &str) -> Result<Enrollment, UpstreamError> {
        let body =
            serde_json::json!({"enrollment_code": code, "terminal_label": label, "agent_version": AGENT_VERSION});
        let mut resp =
            self.client.post(self.url("v1/enroll")).json(&body).send().await.map_err(|e| classify(&self.base, &e))?;
        let status = resp.status();
        let headers = resp.headers().clone();
        let bytes = read_capped(&mut resp, &self.base, MAX_JSON).await?;
        match status.as_u16() {
            200 => parse_enrollment(&bytes).map_err(retryable),
            401 => Err(UpstreamError::InvalidCode { code: error_text(&bytes) }),
            409 => Err(UpstreamError::CodeUsed { code: error_text(&bytes) }),
            _ => Err(Upstream::status_error(status, &headers, &bytes)),
        }
    }

    /// `GET /v1/ruleset`, streamed to `dest` (a temporary file the caller then verifies).
    /// `progress` is called with (bytes so far, total if known).
    pub async fn fetch_ruleset(
        &self,
        etag: Option<&str>,
        dest: &Path,
        mut progress: impl FnMut(u64, Option<u64>),
    ) -> Result<RulesetFetch, UpstreamError> {
        let mut req = self.authorized(self.client.get(self.url("v1/ruleset")));
        if let Some(tag) = etag {
            req = req.header(reqwest::header::IF_NONE_MATCH, tag);
        }
        let mut resp = req.send().await.map_err(|e| classify(&self.base, &e))?;
        let status = resp.status();
        if status == reqwest::StatusCode::NOT_MODIFIED {
            return Ok(RulesetFetch::NotModified);
        }
        if status != reqwest::StatusCode::OK {
            let headers = resp.headers().clone();
            let body = read_capped(&mut resp, &self.base, MAX_JSON).await.unwrap_or_default();
            return Err(Upstream::status_error(status, &headers, &body));
        }
        let etag = resp.headers().get(reqwest::header::ETAG).and_then(|v| v.to_str().ok()).map(str::to_owned);
        let total = resp.content_length();
        let local = |e: std::io::Error| UpstreamError::Local(format!("writing {}: {e}", dest.display()));
        let mut file = std::fs::File::create(dest).map_err(local)?;
        let mut written = 0u64;
        let mut logged = 0u64;
        while let Some(chunk) = resp.chunk().await.map_err(|e| classify(&self.base, &e))? {
            written += chunk.len() as u64;
            if written > MAX_RULESET {
                return Err(retryable(format!("the rule set is larger than {MAX_RULESET} bytes")));
            }
            file.write_all(&chunk).map_err(local)?;
            progress(written, total);
            if written - logged >= PROGRESS_LOG_EVERY {
                logged = written;
                match total {
                    Some(total) => tracing::info!("downloading the rule set: {written} of {total} bytes"),
                    None => tracing::info!("downloading the rule set: {written} bytes"),
                }
            }
        }
        file.sync_all().map_err(local)?;
        Ok(RulesetFetch::Fetched { etag, bytes: written })
    }

    /// `POST /v1/redemptions` with already-serialised event bodies. The answer must name
    /// the same events in the same order, or the whole batch counts as failed.
    pub async fn post_events(
        &self,
        terminal_id: &str,
        events: &[(String, String)],
    ) -> Result<Vec<EventResult>, UpstreamError> {
        let mut body = String::with_capacity(events.iter().map(|(_, b)| b.len() + 1).sum::<usize>() + 64);
        body.push_str("{\"terminal_id\":");
        body.push_str(&serde_json::to_string(terminal_id).unwrap_or_default());
        body.push_str(",\"events\":[");
        for (i, (_, event)) in events.iter().enumerate() {
            if i > 0 {
                body.push(',');
            }
            body.push_str(event);
        }
        body.push_str("]}");
        let req = self
            .authorized(self.client.post(self.url("v1/redemptions")))
            .header(reqwest::header::CONTENT_TYPE, "application/json")
            .body(body);
        let mut resp = req.send().await.map_err(|e| classify(&self.base, &e))?;
        let status = resp.status();
        let headers = resp.headers().clone();
        let bytes = read_capped(&mut resp, &self.base, MAX_JSON).await?;
        if status != reqwest::StatusCode::OK {
            return Err(Upstream::status_error(status, &headers, &bytes));
        }
        parse_results(events, &bytes).map_err(retryable)
    }

    /// `POST /v1/heartbeat`; returns the server's time.
    pub async fn heartbeat(&self, body: &serde_json::Value) -> Result<Timestamp, UpstreamError> {
        let mut resp = self
            .authorized(self.client.post(self.url("v1/heartbeat")))
            .json(body)
            .send()
            .await
            .map_err(|e| classify(&self.base, &e))?;
        let status = resp.status();
        let headers = resp.headers().clone();
        let bytes = read_capped(&mut resp, &self.base, MAX_JSON).await?;
        if status != reqwest::StatusCode::OK {
            return Err(Upstream::status_error(status, &headers, &bytes));
        }
        parse_heartbeat(&bytes).map_err(retryable)
    }
}

/// A `POST /v1/enroll` 200 answer (any bytes: a fuzz target feeds it).
pub fn parse_enrollment(body: &[u8]) -> Result<Enrollment, String> {
    serde_json::from_slice(body).map_err(|e| format!("the enrollment answer is not valid: {e}"))
}

/// A `POST /v1/heartbeat` 200 answer: the server's time (any bytes: a fuzz target feeds it).
pub fn parse_heartbeat(body: &[u8]) -> Result<Timestamp, String> {
    #[derive(Deserialize)]
    struct Answer {
        server_time: String,
    }
    let answer: Answer = serde_json::from_slice(body).map_err(|e| format!("heartbeat answer is not valid: {e}"))?;
    answer.server_time.parse().map_err(|e| format!("heartbeat server_time is not RFC 3339: {e}"))
}

/// Checks a `POST /v1/redemptions` answer against what was sent.
pub fn parse_results(sent: &[(String, String)], body: &[u8]) -> Result<Vec<EventResult>, String> {
    #[derive(Deserialize)]
    struct Answer {
        results: Vec<Box<serde_json::value::RawValue>>,
    }
    #[derive(Deserialize)]
    struct One {
        event_id: String,
        status: EventStatus,
    }
    let answer: Answer =
        serde_json::from_slice(body).map_err(|e| format!("upstream's answer is not the results JSON: {e}"))?;
    if answer.results.len() != sent.len() {
        return Err(format!("upstream answered {} results for {} events", answer.results.len(), sent.len()));
    }
    answer
        .results
        .iter()
        .zip(sent)
        .map(|(raw, (event_id, _))| {
            let one: One = serde_json::from_str(raw.get()).map_err(|e| format!("a result is not valid: {e}"))?;
            if &one.event_id != event_id {
                return Err(format!("upstream answered for event {} where {event_id} was sent", one.event_id));
            }
            Ok(EventResult { event_id: one.event_id, status: one.status, raw: raw.get().to_owned() })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_base_url_keeps_its_last_path_segment() {
        assert_eq!(normalize_base("https://h.example/api/v2").unwrap(), ("https://h.example/api/v2/".into(), true));
        assert_eq!(normalize_base("https://h.example/api/v2/").unwrap(), ("https://h.example/api/v2/".into(), false));
        assert_eq!(normalize_base("https://h.example").unwrap(), ("https://h.example/".into(), true));
        let (base, _) = normalize_base("https://h.example/api/v2").unwrap();
        assert_eq!(
            reqwest::Url::parse(&base).unwrap().join("v1/enroll").unwrap().as_str(),
            "https://h.example/api/v2/v1/enroll"
        );
    }

    #[test]
    fn retry_after_takes_seconds_or_a_date_and_is_capped() {
        let now: jiff::Timestamp = "2026-10-21T07:27:00Z".parse().unwrap();
        let delay = |v: &str| RetryAfter::parse(v).map(|r| r.delay_from(now));
        assert_eq!(delay("120"), Some(Duration::from_secs(120)));
        assert_eq!(delay("999999999999"), Some(RETRY_AFTER_CAP));
        assert_eq!(delay("99999999999999999999999999"), Some(RETRY_AFTER_CAP));
        assert_eq!(delay("Wed, 21 Oct 2026 07:28:00 GMT"), Some(Duration::from_secs(60)));
        assert_eq!(delay("Wed, 21 Oct 2026 07:00:00 GMT"), Some(Duration::ZERO), "a date in the past");
        assert_eq!(delay("Thu, 31 Dec 2099 23:59:59 GMT"), Some(RETRY_AFTER_CAP));
        assert_eq!(delay("soon"), None);
        assert_eq!(delay("-5"), None);
    }

    #[test]
    fn plain_http_only_to_loopback() {
        assert!(check_url("https://upstream.example/").is_ok());
        assert!(check_url("http://127.0.0.1:8080/").is_ok());
        assert!(check_url("http://[::1]:8080/").is_ok());
        assert!(check_url("http://localhost:8080/").is_ok());
        assert_eq!(
            check_url("http://upstream.example/"),
            Err(UpstreamError::InsecureUrl("http://upstream.example/".into()))
        );
        assert!(check_url("ftp://x/").is_err());
        assert!(check_url("not a url").is_err());
    }

    #[test]
    fn results_must_match_what_was_sent() {
        let sent = vec![("a".to_owned(), "{}".to_owned()), ("b".to_owned(), "{}".to_owned())];
        let ok = br#"{"results":[{"event_id":"a","status":"accepted"},{"event_id":"b","status":"conflict","redeemed_by":"T-7"}]}"#;
        let got = parse_results(&sent, ok).unwrap();
        assert_eq!(got[1].status, EventStatus::Conflict);
        assert!(got[1].raw.contains("T-7"));
        assert!(parse_results(&sent, br#"{"results":[{"event_id":"a","status":"accepted"}]}"#).is_err());
        assert!(parse_results(
            &sent,
            br#"{"results":[{"event_id":"b","status":"accepted"},{"event_id":"a","status":"accepted"}]}"#
        )
        .is_err());
        assert!(parse_results(
            &sent,
            br#"{"results":[{"event_id":"a","status":"maybe"},{"event_id":"b","status":"accepted"}]}"#
        )
        .is_err());
        assert!(parse_results(&sent, b"<html>").is_err());
        assert!(parse_results(&sent, b"").is_err());
    }

    #[test]
    fn the_token_is_never_in_debug_output() {
        let endpoint = Endpoint {
            base_url: "https://u.example/".into(),
            ca_pem: None,
            system_roots: true,
            timeout: Duration::from_secs(1),
        };
        let up = Upstream::new(&endpoint, Some("s3cr3t-token".into())).unwrap();
        assert!(!format!("{up:?}").contains("s3cr3t"));
    }
}
