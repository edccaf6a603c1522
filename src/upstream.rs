//! The HTTPS client for the issuer platform (`spec/upstream-api.md`): reqwest over rustls
//! (ring provider), the provisioned CA trusted in addition to (or instead of) the system
//! roots, a bearer token that is never logged, timeouts, `User-Agent`, gzip, and response
//! bodies read with a size cap. Each call maps its answer to a typed result, so the sync
//! core can decide what to do without looking at HTTP.
//!
//! The only module that speaks HTTP to upstream. It does not touch the database.

use crate::messages::Text;
use jiff::Timestamp;
use serde::{Deserialize, Serialize};
use std::io::Write as _;
use std::path::{Path, PathBuf};
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
    #[error("the enrollment code has expired (410 {code}): ask the issuer for a new one")]
    CodeExpired { code: String },
    #[error("upstream says the request is bad (400): {0}")]
    BadRequest(String),
    /// A 404 that is not upstream's own error answer: the URL or its path is wrong.
    #[error("{url} answered 404 Not Found: the upstream URL or its path is wrong")]
    NotFound { url: String },
    /// Nothing listens at the address (connection refused).
    #[error("nothing accepts connections at {addr} (connection refused)")]
    Refused { url: String, addr: String },
    /// The connection was reset or closed before the answer was whole.
    #[error("the connection to {addr} was reset before upstream answered")]
    Reset { url: String, addr: String },
    /// No connection, or no data, within the configured timeout.
    #[error("upstream {url} did not answer within {secs} s")]
    TimedOut { url: String, secs: u64 },
    #[error("cannot resolve {host}")]
    Dns { host: String },
    /// The peer answered, but not in TLS: HTTPS sent to a plain HTTP (or other) port.
    #[error("{addr} does not speak HTTPS (a plain HTTP port?)")]
    NotTls { url: String, addr: String },
    /// The certificate is outside its validity at this terminal's time: the clock, or an
    /// expired certificate, never the CA.
    #[error("the certificate of {host} is not valid at this terminal's time ({}): {}", show_time(.now), .cert)]
    TlsClock { host: String, now: Option<Timestamp>, cert: CertTime },
    /// The certificate's issuer is not trusted: no CA was given (`ca_given` false), or the
    /// one given is not upstream's.
    #[error("the certificate of {host} is not signed by {}", if *.ca_given { "the CA given (--ca / ca-file)" } else { "a trusted CA, and no CA was given (--ca)" })]
    TlsUnknownIssuer { host: String, ca_given: bool },
    #[error("the certificate of {host} is not valid for that name")]
    TlsName { host: String },
    /// Any other TLS failure, with rustls's words.
    #[error("TLS with {host} failed: {detail}")]
    Tls { host: String, detail: String },
    /// A connection failure none of the above explains, with the library's words.
    #[error("cannot reach upstream {url}: {message}")]
    Unreachable { url: String, message: String },
    /// 408, 429, 5xx, short or garbled answers: try again later.
    #[error("{reason}")]
    Retryable { reason: String, retry_after: Option<RetryAfter> },
    #[error("upstream URL {0:?} is refused: use https:// (http:// only for a loopback host)")]
    InsecureUrl(String),
    #[error("upstream URL {url:?} is not a URL: {error}")]
    UrlInvalid { url: String, error: String },
    #[error("cannot read the token {path}: {error}")]
    TokenUnreadable { path: PathBuf, error: IoProblem },
    #[error("cannot read the upstream CA file {path}: {error}")]
    CaUnreadable { path: PathBuf, error: IoProblem },
    /// The rule set being downloaded cannot be written in `dir`.
    #[error("cannot store the rule set download in {dir}: {error}")]
    DownloadFailed { dir: PathBuf, error: IoProblem },
    /// The CA file is not PEM certificates, or holds none (`detail` empty).
    #[error("the upstream CA file is not PEM certificates: {detail}")]
    CaUnusable { detail: String },
    #[error("{0}")]
    Local(String),
    /// What a `sync --once` left behind: events still waiting, and events parked after
    /// upstream called them bad (`redeemd outbox list`).
    #[error("{} event(s) left undelivered ({pending} pending, {parked} parked after upstream called them bad)", pending + parked)]
    Undelivered { pending: u64, parked: u64 },
}

/// Which bound of its validity a certificate is outside of.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CertTime {
    /// Valid until then (when rustls says).
    Expired(Option<Timestamp>),
    /// Valid from then (when rustls says).
    NotYetValid(Option<Timestamp>),
}

impl std::fmt::Display for CertTime {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            CertTime::Expired(t) => write!(f, "valid until {}", show_time(t)),
            CertTime::NotYetValid(t) => write!(f, "valid from {}", show_time(t)),
        }
    }
}

fn show_time(t: &Option<Timestamp>) -> String {
    t.map_or_else(|| "?".to_owned(), |t| t.strftime("%Y-%m-%d %H:%M:%S UTC").to_string())
}

/// A file that could not be read, said for people: missing, not permitted, or the OS's words.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum IoProblem {
    Missing,
    Denied,
    Full,
    Other(String),
}

impl IoProblem {
    pub fn of(e: &std::io::Error) -> IoProblem {
        match e.kind() {
            std::io::ErrorKind::NotFound => IoProblem::Missing,
            std::io::ErrorKind::PermissionDenied | std::io::ErrorKind::ReadOnlyFilesystem => IoProblem::Denied,
            std::io::ErrorKind::StorageFull => IoProblem::Full,
            _ => IoProblem::Other(e.to_string()),
        }
    }

    pub fn text(&self) -> Text {
        match self {
            IoProblem::Missing => Text::new("upstream.io_missing", vec![]),
            IoProblem::Denied => Text::new("upstream.io_denied", vec![]),
            IoProblem::Full => Text::new("upstream.io_full", vec![]),
            IoProblem::Other(e) => Text::new("upstream.io_other", vec![("error", e.clone())]),
        }
    }
}

impl std::fmt::Display for IoProblem {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.text().render(crate::messages::Language::En))
    }
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

    /// Worth retrying later without anyone's help (the spec's list: 408, 429, 5xx, a
    /// timeout, a reset or refused connection, a TLS failure).
    pub fn is_transient(&self) -> bool {
        use UpstreamError as E;
        matches!(
            self,
            E::Retryable { .. }
                | E::Unreachable { .. }
                | E::Refused { .. }
                | E::Reset { .. }
                | E::TimedOut { .. }
                | E::Dns { .. }
                | E::NotFound { .. }
                | E::NotTls { .. }
                | E::TlsClock { .. }
                | E::TlsUnknownIssuer { .. }
                | E::TlsName { .. }
                | E::Tls { .. }
        )
    }

    /// What happened and what to do, for people (the tables' `[upstream]` and `[error]`
    /// keys); `Display` stays English for logs.
    pub fn text(&self) -> Text {
        use UpstreamError as E;
        let t = |key: &'static str, values: &[(&'static str, &str)]| {
            Text::new(key, values.iter().map(|(k, v)| (*k, (*v).to_owned())).collect())
        };
        match self {
            E::Unauthorized => t("error.upstream_unauthorized", &[]),
            E::InvalidCode { code } => t("error.upstream_invalid_code", &[("code", code)]),
            E::CodeUsed { code } => t("error.upstream_code_used", &[("code", code)]),
            E::CodeExpired { code } => t("error.upstream_code_expired", &[("code", code)]),
            E::BadRequest(message) => t("error.upstream_bad_request", &[("message", message)]),
            E::NotFound { url } => t("upstream.not_found", &[("url", url)]),
            E::Refused { url, addr } => t("upstream.refused", &[("url", url), ("addr", addr)]),
            E::Reset { url, addr } => t("upstream.reset", &[("url", url), ("addr", addr)]),
            E::TimedOut { url, secs } => t("upstream.timed_out", &[("url", url), ("secs", &secs.to_string())]),
            E::Dns { host } => t("upstream.dns", &[("host", host)]),
            E::NotTls { url, addr } => t("upstream.not_tls", &[("url", url), ("addr", addr)]),
            E::TlsClock { host, now, cert: CertTime::Expired(until) } => {
                t("upstream.tls_expired", &[("host", host), ("now", &show_time(now)), ("until", &show_time(until))])
            }
            E::TlsClock { host, now, cert: CertTime::NotYetValid(from) } => {
                t("upstream.tls_not_yet_valid", &[("host", host), ("now", &show_time(now)), ("from", &show_time(from))])
            }
            E::TlsUnknownIssuer { host, ca_given: false } => t("upstream.tls_no_ca", &[("host", host)]),
            E::TlsUnknownIssuer { host, ca_given: true } => t("upstream.tls_wrong_ca", &[("host", host)]),
            E::TlsName { host } => t("upstream.tls_name", &[("host", host)]),
            E::Tls { host, detail } => t("upstream.tls_other", &[("host", host), ("detail", detail)]),
            E::Unreachable { url, message } => t("upstream.unreachable", &[("url", url), ("detail", message)]),
            E::Retryable { reason, .. } => t("upstream.retryable", &[("reason", reason)]),
            E::InsecureUrl(url) => t("error.upstream_insecure", &[("url", &format!("{url:?}"))]),
            E::UrlInvalid { url, error } => {
                t("upstream.url_invalid", &[("url", &format!("{url:?}")), ("error", error)])
            }
            E::TokenUnreadable { path, error } => {
                t("upstream.token_unreadable", &[("path", &path.display().to_string())]).with("error", error.text())
            }
            E::CaUnreadable { path, error } => {
                t("upstream.ca_unreadable", &[("path", &path.display().to_string())]).with("error", error.text())
            }
            E::DownloadFailed { dir, error } => {
                t("upstream.download_failed", &[("dir", &dir.display().to_string())]).with("error", error.text())
            }
            E::CaUnusable { detail } if detail.is_empty() => t("upstream.ca_empty", &[]),
            E::CaUnusable { detail } => t("upstream.ca_unusable", &[("detail", detail)]),
            E::Local(message) => t("upstream.local", &[("message", message)]),
            E::Undelivered { pending, parked } => t(
                "error.undelivered",
                &[
                    ("count", &(pending + parked).to_string()),
                    ("pending", &pending.to_string()),
                    ("parked", &parked.to_string()),
                ],
            ),
        }
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
    crate::config::check_upstream_url(url).map_err(|problem| match problem {
        crate::config::UrlProblem::Insecure(url) => UpstreamError::InsecureUrl(url),
        crate::config::UrlProblem::Unparsable { url, error } => UpstreamError::UrlInvalid { url, error },
    })
}

/// The client plus the terminal's credentials. `Debug` never shows the token.
pub struct Upstream {
    client: reqwest::Client,
    base: Base,
    token: Option<String>,
}

/// The base URL with what explaining a failure needs: whether a CA was given (an
/// unknown issuer is then a wrong CA, not a missing one) and the timeout.
struct Base {
    url: reqwest::Url,
    ca_given: bool,
    timeout: Duration,
}

impl std::ops::Deref for Base {
    type Target = reqwest::Url;

    fn deref(&self) -> &reqwest::Url {
        &self.url
    }
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

/// Every cause of `e`, its own `source()` chain and what `io::Error`s carry (an
/// `io::Error`'s `source()` skips its payload, where hyper puts the rustls or OS error).
/// Bounded, whatever the chain.
fn causes<'a>(e: &'a (dyn std::error::Error + 'static)) -> Vec<&'a (dyn std::error::Error + 'static)> {
    let mut out = Vec::new();
    let mut next = Some(e);
    while let Some(cause) = next.filter(|_| out.len() < 32) {
        out.push(cause);
        next = match cause.downcast_ref::<std::io::Error>().and_then(|io| io.get_ref()) {
            Some(inner) => Some(inner as &(dyn std::error::Error + 'static)),
            None => cause.source(),
        };
    }
    out
}

/// Says which failure a reqwest error is, by the typed causes in its chain: a rustls
/// error (certificate time, issuer, name; not TLS at all), the OS's refused, reset or
/// timed-out connection; then reqwest's own timeout, a DNS failure, and the rest.
fn classify(base: &Base, e: &reqwest::Error) -> UpstreamError {
    use std::io::ErrorKind as K;
    let url = base.url.to_string();
    let host = base.url.host_str().unwrap_or("?").trim_matches(['[', ']']).to_owned();
    let addr = format!("{}:{}", base.url.host_str().unwrap_or("?"), base.url.port_or_known_default().unwrap_or(443));
    let causes = causes(e);
    if let Some(tls) = causes.iter().find_map(|c| c.downcast_ref::<rustls::Error>()) {
        return tls_failure(base, host, url, addr, tls);
    }
    let kind =
        causes.iter().filter_map(|c| c.downcast_ref::<std::io::Error>()).map(|io| io.kind()).find(|k| *k != K::Other);
    match kind {
        Some(K::ConnectionRefused) => return UpstreamError::Refused { url, addr },
        Some(K::ConnectionReset | K::ConnectionAborted | K::BrokenPipe | K::UnexpectedEof) => {
            return UpstreamError::Reset { url, addr }
        }
        Some(K::TimedOut) => return UpstreamError::TimedOut { url, secs: base.timeout.as_secs() },
        _ => {}
    }
    if e.is_timeout() {
        return UpstreamError::TimedOut { url, secs: base.timeout.as_secs() };
    }
    let chain = error_chain(e);
    // hyper's and hyper-util's errors are not reqwest's to expose: their words tell.
    if e.is_connect() && chain.contains("dns error") {
        return UpstreamError::Dns { host };
    }
    if chain.contains("connection closed before message completed") || chain.contains("IncompleteMessage") {
        return UpstreamError::Reset { url, addr };
    }
    if e.is_connect() {
        return UpstreamError::Unreachable { url, message: chain };
    }
    retryable(format!("the exchange with upstream broke off: {chain}"))
}

/// A TLS failure by its cause: the clock (or an expired certificate), the CA (missing or
/// wrong), the name, a peer that does not speak TLS, or rustls's own words.
fn tls_failure(base: &Base, host: String, url: String, addr: String, e: &rustls::Error) -> UpstreamError {
    use rustls::CertificateError as C;
    let at =
        |t: &rustls::pki_types::UnixTime| i64::try_from(t.as_secs()).ok().and_then(|s| Timestamp::from_second(s).ok());
    match e {
        rustls::Error::InvalidCertificate(c) => match c {
            C::Expired => UpstreamError::TlsClock { host, now: None, cert: CertTime::Expired(None) },
            C::ExpiredContext { time, not_after } => {
                UpstreamError::TlsClock { host, now: at(time), cert: CertTime::Expired(at(not_after)) }
            }
            C::NotValidYet => UpstreamError::TlsClock { host, now: None, cert: CertTime::NotYetValid(None) },
            C::NotValidYetContext { time, not_before } => {
                UpstreamError::TlsClock { host, now: at(time), cert: CertTime::NotYetValid(at(not_before)) }
            }
            C::UnknownIssuer => UpstreamError::TlsUnknownIssuer { host, ca_given: base.ca_given },
            C::NotValidForName | C::NotValidForNameContext { .. } => UpstreamError::TlsName { host },
            other => UpstreamError::Tls { host, detail: format!("{other:?}") },
        },
        // What a plain HTTP server's "HTTP/1.1 …" looks like to a TLS client.
        rustls::Error::InvalidMessage(_) => UpstreamError::NotTls { url, addr },
        other => UpstreamError::Tls { host, detail: other.to_string() },
    }
}

fn error_chain(e: &(dyn std::error::Error + 'static)) -> String {
    let mut parts: Vec<String> = Vec::new();
    for cause in causes(e) {
        let text = cause.to_string();
        if !parts.iter().any(|p| p.contains(&text)) {
            parts.push(text);
        }
    }
    parts.join(": ")
}

fn retry_after(headers: &reqwest::header::HeaderMap) -> Option<RetryAfter> {
    RetryAfter::parse(headers.get(reqwest::header::RETRY_AFTER)?.to_str().ok()?)
}

/// Reads a body up to `cap` bytes; longer is a failure.
async fn read_capped(resp: &mut reqwest::Response, base: &Base, cap: usize) -> Result<Vec<u8>, UpstreamError> {
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

/// Upstream's error answer as `message (code)`; the code alone when the message only
/// says the code again (`invalid code` for `invalid_code`), or there is none.
fn error_text(body: &[u8]) -> String {
    let restates = |message: &str, code: &str| {
        let words = |s: &str| s.to_lowercase().replace(['_', '-'], " ").trim().trim_end_matches('.').to_owned();
        words(message) == words(code)
    };
    match serde_json::from_slice::<ErrorBody>(body) {
        Ok(b) if b.error.message.is_empty() || restates(&b.error.message, &b.error.code) => b.error.code,
        Ok(b) => format!("{} ({})", b.error.message, b.error.code),
        Err(_) => String::from_utf8_lossy(&body[..body.len().min(200)]).into_owned(),
    }
}

/// Upstream's machine code of an error answer (`invalid_code`), else its text: what an
/// enrollment refusal names, in any language.
fn error_code(body: &[u8]) -> String {
    match serde_json::from_slice::<ErrorBody>(body) {
        Ok(b) => b.error.code,
        Err(_) => error_text(body),
    }
}

/// The client of a provisioned terminal: its URL, CA file and token from the config.
/// Errors name the file at fault and say what to do.
pub fn client_for(
    config: &crate::config::Config,
    up: &crate::config::UpstreamConfig,
) -> Result<Upstream, UpstreamError> {
    let token_path = config.token_path().unwrap_or_default();
    let token = std::fs::read_to_string(&token_path)
        .map_err(|e| UpstreamError::TokenUnreadable { path: token_path.clone(), error: IoProblem::of(&e) })?;
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
            std::fs::read(p).map_err(|e| UpstreamError::CaUnreadable { path: p.to_owned(), error: IoProblem::of(&e) })
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
                .map_err(|e| UpstreamError::CaUnusable { detail: error_chain(&e) })?;
            if certs.is_empty() {
                return Err(UpstreamError::CaUnusable { detail: String::new() });
            }
            builder =
                if endpoint.system_roots { builder.tls_certs_merge(certs) } else { builder.tls_certs_only(certs) };
        }
        let client = builder.build().map_err(|e| UpstreamError::Local(format!("building the HTTPS client: {e}")))?;
        let base = Base { url: base, ca_given: endpoint.ca_pem.is_some(), timeout: endpoint.timeout };
        Ok(Upstream { client, base, token })
    }

    fn url(&self, path: &str) -> reqwest::Url {
        self.base.join(path).unwrap_or_else(|_| self.base.url.clone())
    }

    fn authorized(&self, req: reqwest::RequestBuilder) -> reqwest::RequestBuilder {
        match &self.token {
            Some(t) => req.bearer_auth(t),
            None => req,
        }
    }

    /// Common answers of authorized calls to `url`: 401, 400, a 404 that is not upstream's
    /// own error answer (the URL is wrong), retryable statuses.
    fn status_error(
        url: &reqwest::Url,
        status: reqwest::StatusCode,
        headers: &reqwest::header::HeaderMap,
        body: &[u8],
    ) -> UpstreamError {
        match status.as_u16() {
            401 => UpstreamError::Unauthorized,
            400 => UpstreamError::BadRequest(error_text(body)),
            404 if serde_json::from_slice::<ErrorBody>(body).is_err() => {
                UpstreamError::NotFound { url: url.to_string() }
            }
            408 | 429 | 500..=599 => UpstreamError::Retryable {
                reason: format!("upstream answered {status}: {}", error_text(body)),
                retry_after: retry_after(headers),
            },
            _ => retryable(format!("upstream answered {status}: {}", error_text(body))),
        }
    }

    /// `POST /v1/enroll`. `request_id` is the enrollment's id, made once per code and kept
    /// on disk before the first send ([`crate::enrollment`]): the same code with the same
    /// id gets the same answer again, so a lost answer is asked for again with it.
    pub async fn enroll(&self, code: &str, label: &str, request_id: &str) -> Result<Enrollment, UpstreamError> {
        let body = serde_json::json!({"enrollment_code": code, "terminal_label": label,
            "agent_version": AGENT_VERSION, "request_id": request_id});
        let mut resp =
            self.client.post(self.url("v1/enroll")).json(&body).send().await.map_err(|e| classify(&self.base, &e))?;
        let status = resp.status();
        let headers = resp.headers().clone();
        let bytes = read_capped(&mut resp, &self.base, MAX_JSON).await?;
        match status.as_u16() {
            200 => parse_enrollment(&bytes).map_err(retryable),
            401 => Err(UpstreamError::InvalidCode { code: error_code(&bytes) }),
            409 => Err(UpstreamError::CodeUsed { code: error_code(&bytes) }),
            410 => Err(UpstreamError::CodeExpired { code: error_code(&bytes) }),
            _ => Err(Upstream::status_error(&self.url("v1/enroll"), status, &headers, &bytes)),
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
            return Err(Upstream::status_error(&self.url("v1/ruleset"), status, &headers, &body));
        }
        let etag = resp.headers().get(reqwest::header::ETAG).and_then(|v| v.to_str().ok()).map(str::to_owned);
        let total = resp.content_length();
        // Named by its directory: the download's own name is a temporary one.
        let dir = dest.parent().unwrap_or(Path::new(".")).to_owned();
        let local = |e: std::io::Error| UpstreamError::DownloadFailed { dir: dir.clone(), error: IoProblem::of(&e) };
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
            return Err(Upstream::status_error(&self.url("v1/redemptions"), status, &headers, &bytes));
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
            return Err(Upstream::status_error(&self.url("v1/heartbeat"), status, &headers, &bytes));
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

    /// Issue 19 item 8: a message that only says its code again is not said twice.
    #[test]
    fn an_error_answer_says_its_code_once() {
        let body = |m: &str| format!(r#"{{"error": {{"code": "invalid_code", "message": "{m}"}}}}"#);
        assert_eq!(error_text(body("invalid code").as_bytes()), "invalid_code");
        assert_eq!(error_text(body("Invalid-Code.").as_bytes()), "invalid_code");
        assert_eq!(error_text(body("").as_bytes()), "invalid_code");
        assert_eq!(error_text(body("no such code K7PX").as_bytes()), "no such code K7PX (invalid_code)");
        assert_eq!(error_code(body("no such code K7PX").as_bytes()), "invalid_code");
        assert_eq!(error_text(b"<html>bad gateway</html>"), "<html>bad gateway</html>");
        let refused = UpstreamError::InvalidCode { code: error_code(body("invalid code").as_bytes()) };
        assert_eq!(
            refused.text().render(crate::messages::Language::En),
            "upstream refused the enrollment code (401 invalid_code): check the code with the issuer"
        );
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
