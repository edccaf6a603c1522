//! `redeemd sandbox`: a real upstream (`spec/upstream-api.md`) that an installer, an
//! integrator or a test runs on a machine of their own, and the live demo's upstream
//! (one implementation). A sandbox is a directory (0700): its state file (`state`), its
//! issuer and token keys (`keys.json`, 0600), its CA and server certificate (`pki`), the
//! campaigns it publishes (`campaigns`), the sample coupons it makes (`coupons`), and the
//! HTTP(S) server (`server`). [`Sandbox`] is what they share: the state behind a mutex,
//! the issuer that signs rule sets and coupons, and the clock (the only time source).
//!
//! Several processes use one sandbox at once — `serve`, and `codes`, `revoke`, `retire`…
//! run beside it — through the state file alone; the server reads the newest rule set on
//! every request, so a revocation reaches terminals at their next refresh.
//!
//! It must not touch a terminal's files or ledger, never logs or prints a token or a
//! private key, and is never a production issuer: its keys live on the machine it runs on.

pub mod campaigns;
pub mod coupons;
pub mod pki;
pub mod server;
mod state;

pub use campaigns::{Catalog, Merchant};
pub use state::{
    normalize_code, Auth, Code, CodeRow, EnrollOutcome, EnrollRequest, Event, EventKind, Heartbeat, Identity,
    Published, StoredRuleset, TerminalRow,
};

use crate::clock::Clock;
use crate::issuer::{Issuer, IssuerKeys};
use crate::keys::{b64url_decode, b64url_encode};
use crate::messages::Text;
use crate::ruleset::CampaignStatus;
use jiff::{SignedDuration, Timestamp};
use serde::{Deserialize, Serialize};
use state::State;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard};

pub const STATE_FILE: &str = "sandbox.sqlite";
pub const KEYS_FILE: &str = "keys.json";

/// What went wrong, for the command line to say in the reader's language ([`Self::text`];
/// `Display` is English, for logs).
#[derive(Debug, thiserror::Error)]
pub enum SandboxError {
    #[error("cannot read {path}: {source}")]
    Read { path: PathBuf, source: std::io::Error },
    #[error("cannot write {path}: {source}")]
    Write { path: PathBuf, source: std::io::Error },
    #[error("the sandbox state {path} failed: {source}")]
    State { path: PathBuf, source: rusqlite::Error },
    #[error("{dir} holds no sandbox")]
    NotASandbox { dir: PathBuf },
    #[error("{dir} is not empty and holds no sandbox")]
    NotEmpty { dir: PathBuf },
    #[error("{path} is not a sandbox's ({why})")]
    Foreign { path: PathBuf, why: String },
    #[error("{file}: {detail}")]
    Campaigns { file: String, detail: String },
    #[error("no campaign {id} (known: {known:?})")]
    UnknownCampaign { id: String, known: Vec<String> },
    #[error("no terminal {id} (known: {known:?})")]
    UnknownTerminal { id: String, known: Vec<String> },
    #[error("{id:?} is not a coupon id")]
    BadCouponId { id: String },
    #[error("cannot make the sandbox's certificates: {detail}")]
    Pki { detail: String },
    #[error("{path} is not a sandbox key file: {detail}")]
    Keys { path: PathBuf, detail: String },
    #[error("{path} is not a holder file: {detail}")]
    Holder { path: PathBuf, detail: String },
    #[error("cannot make a QR code of {what}: {detail}")]
    Qr { what: String, detail: String },
}

impl SandboxError {
    /// The message for people: a `[sandbox]` key of the message tables and its values.
    pub fn text(&self) -> Text {
        let path = |p: &Path| p.display().to_string();
        let list = |ids: &[String]| if ids.is_empty() { "-".to_owned() } else { ids.join(", ") };
        match self {
            SandboxError::Read { path: p, source } => {
                Text::new("sandbox.cannot_read", vec![("path", path(p)), ("error", source.to_string())])
            }
            SandboxError::Write { path: p, source } => {
                Text::new("sandbox.cannot_write", vec![("path", path(p)), ("error", source.to_string())])
            }
            SandboxError::State { path: p, source } => {
                Text::new("sandbox.state_failed", vec![("path", path(p)), ("error", source.to_string())])
            }
            SandboxError::NotASandbox { dir } => Text::new("sandbox.not_a_sandbox", vec![("dir", path(dir))]),
            SandboxError::NotEmpty { dir } => Text::new("sandbox.not_empty", vec![("dir", path(dir))]),
            SandboxError::Foreign { path: p, why } => {
                Text::new("sandbox.foreign", vec![("path", path(p)), ("why", why.clone())])
            }
            SandboxError::Campaigns { file, detail } => {
                Text::new("sandbox.campaigns_invalid", vec![("file", file.clone()), ("detail", detail.clone())])
            }
            SandboxError::UnknownCampaign { id, known } => {
                Text::new("sandbox.unknown_campaign", vec![("id", id.clone()), ("known", list(known))])
            }
            SandboxError::UnknownTerminal { id, known } => {
                Text::new("sandbox.unknown_terminal", vec![("id", id.clone()), ("known", list(known))])
            }
            SandboxError::BadCouponId { id } => Text::new("sandbox.bad_coupon_id", vec![("id", format!("{id:?}"))]),
            SandboxError::Pki { detail } => Text::new("sandbox.pki_failed", vec![("detail", detail.clone())]),
            SandboxError::Keys { path: p, detail } => {
                Text::new("sandbox.keys_invalid", vec![("path", path(p)), ("detail", detail.clone())])
            }
            SandboxError::Holder { path: p, detail } => {
                Text::new("sandbox.holder_invalid", vec![("path", path(p)), ("detail", detail.clone())])
            }
            SandboxError::Qr { what, detail } => {
                Text::new("sandbox.qr_failed", vec![("what", what.clone()), ("detail", detail.clone())])
            }
        }
    }

    /// A mistake in what the person typed or gave (exit 2), not a failure of the machine.
    pub fn is_usage(&self) -> bool {
        matches!(
            self,
            SandboxError::NotASandbox { .. }
                | SandboxError::NotEmpty { .. }
                | SandboxError::Foreign { .. }
                | SandboxError::Campaigns { .. }
                | SandboxError::UnknownCampaign { .. }
                | SandboxError::UnknownTerminal { .. }
                | SandboxError::BadCouponId { .. }
                | SandboxError::Holder { .. }
        )
    }
}

/// A coupon id of `spec/coupon-code.md`: 1 to 64 of `A-Z a-z 0-9 . _ -`.
pub fn valid_coupon_id(id: &str) -> bool {
    (1..=64).contains(&id.len()) && id.bytes().all(|b| b.is_ascii_alphanumeric() || b"._-".contains(&b))
}

/// `keys.json`: the issuer's secrets and the key that derives terminal tokens.
#[derive(Serialize, Deserialize)]
struct KeysFile {
    format: u32,
    coupon_secret: String,
    coupon_kid: String,
    ruleset_secret: String,
    ruleset_kid: String,
    token_key: String,
}

struct Secrets {
    issuer: IssuerKeys,
    token_key: [u8; 32],
}

fn secret32(text: &str, what: &str) -> Result<[u8; 32], String> {
    b64url_decode(text)
        .ok()
        .and_then(|bytes| <[u8; 32]>::try_from(bytes.as_slice()).ok())
        .ok_or_else(|| format!("{what} is not 32 bytes of base64url"))
}

impl Secrets {
    fn load(path: &Path) -> Result<Secrets, SandboxError> {
        let text =
            std::fs::read_to_string(path).map_err(|source| SandboxError::Read { path: path.to_owned(), source })?;
        let bad = |detail: String| SandboxError::Keys { path: path.to_owned(), detail };
        let file: KeysFile = serde_json::from_str(&text).map_err(|e| bad(e.to_string()))?;
        if file.format != 1 {
            return Err(bad(format!("format {} (this redeemd knows 1)", file.format)));
        }
        Ok(Secrets {
            issuer: IssuerKeys {
                coupon_secret: secret32(&file.coupon_secret, "coupon_secret").map_err(bad)?,
                coupon_kid: b64url_decode(&file.coupon_kid).map_err(|_| bad("coupon_kid is not base64url".into()))?,
                ruleset_secret: secret32(&file.ruleset_secret, "ruleset_secret").map_err(bad)?,
                ruleset_kid: file.ruleset_kid,
            },
            token_key: secret32(&file.token_key, "token_key").map_err(bad)?,
        })
    }

    fn save(&self, path: &Path) -> Result<(), SandboxError> {
        let file = KeysFile {
            format: 1,
            coupon_secret: b64url_encode(&self.issuer.coupon_secret),
            coupon_kid: b64url_encode(&self.issuer.coupon_kid),
            ruleset_secret: b64url_encode(&self.issuer.ruleset_secret),
            ruleset_kid: self.issuer.ruleset_kid.clone(),
            token_key: b64url_encode(&self.token_key),
        };
        let text = serde_json::to_string_pretty(&serde_json::json!(file)).unwrap_or_default();
        crate::secret::write_secret(path, text.as_bytes())
            .map_err(|source| SandboxError::Write { path: path.to_owned(), source })
    }
}

/// How a sandbox is made or opened by `serve` (and the demo).
#[derive(Debug, Default)]
pub struct Setup {
    /// A campaigns file: imported at creation, and at a later start when it changed.
    /// Without one a new sandbox takes the built-in default and an old one keeps its own.
    pub campaigns: Option<PathBuf>,
    /// The issuer's keys for a new sandbox (the demo's are its well-known seed's);
    /// random when absent. An existing sandbox keeps its own.
    pub keys: Option<IssuerKeys>,
}

/// A sandbox opened by [`Sandbox::create_or_open`], and what that did.
pub struct Opened {
    pub sandbox: Sandbox,
    pub created: bool,
    /// A rule-set version published by this start (the first, or a changed file's).
    pub published: Option<Published>,
}

pub struct Sandbox {
    dir: PathBuf,
    state: Mutex<State>,
    issuer: Issuer,
    coupon_key: crate::keys::PublicKey,
    token_key: [u8; 32],
    clock: Arc<dyn Clock>,
}

impl std::fmt::Debug for Sandbox {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Sandbox").field("dir", &self.dir).finish_non_exhaustive()
    }
}

fn digest(text: &str) -> String {
    crate::secret::hex(&crate::secret::sha256(text.as_bytes()))
}

impl Sandbox {
    /// Opens the sandbox in `dir`, making it first when there is none (`dir` 0700, keys,
    /// state, the campaigns published as version 1). A campaigns file is read and checked
    /// before anything is made, so a bad one leaves nothing behind.
    pub fn create_or_open(dir: &Path, setup: Setup, clock: Arc<dyn Clock>) -> Result<Opened, SandboxError> {
        let now = clock.now();
        let source = match &setup.campaigns {
            Some(path) => {
                let text = std::fs::read_to_string(path)
                    .map_err(|source| SandboxError::Read { path: path.to_owned(), source })?;
                Some((path.display().to_string(), text))
            }
            None => None,
        };
        let parse = |name: &str, text: &str, created: Timestamp| {
            Catalog::parse(text, created).map_err(|e| SandboxError::Campaigns { file: name.to_owned(), detail: e.0 })
        };
        let state_path = dir.join(STATE_FILE);
        let keys_path = dir.join(KEYS_FILE);
        if !state_path.exists() {
            let (name, text) =
                source.unwrap_or_else(|| (campaigns::DEFAULT_NAME.to_owned(), campaigns::DEFAULT_FILE.into()));
            let catalog = parse(&name, &text, now)?;
            // Never scatter a sandbox among someone's files.
            let foreign = std::fs::read_dir(dir).map(|mut d| d.next().is_some()).unwrap_or(false);
            if foreign && !keys_path.exists() {
                return Err(SandboxError::NotEmpty { dir: dir.to_owned() });
            }
            crate::secret::create_private_dir(dir)
                .map_err(|source| SandboxError::Write { path: dir.to_owned(), source })?;
            let secrets = if keys_path.exists() {
                Secrets::load(&keys_path)?
            } else {
                let secrets = Secrets {
                    issuer: setup.keys.unwrap_or_else(IssuerKeys::random),
                    token_key: crate::secret::random_bytes::<32>(),
                };
                secrets.save(&keys_path)?;
                secrets
            };
            let sandbox = Sandbox::assemble(dir, State::open(&state_path, true)?, secrets, clock)?;
            let published = {
                let mut state = sandbox.state();
                state.set_meta("created_ms", &now.as_millisecond().to_string())?;
                state.import(&catalog, &digest(&text), &sandbox.issuer, now, "first start")?
            };
            return Ok(Opened { sandbox, created: true, published: Some(published) });
        }
        let sandbox = Sandbox::assemble(dir, State::open(&state_path, false)?, Secrets::load(&keys_path)?, clock)?;
        let published = {
            let mut state = sandbox.state();
            let created = state
                .meta("created_ms")?
                .and_then(|ms| ms.parse::<i64>().ok())
                .and_then(|ms| Timestamp::from_millisecond(ms).ok())
                .unwrap_or(now);
            let stored = state.meta("catalog_digest")?;
            match source {
                Some((name, text)) if stored.as_deref() != Some(digest(&text).as_str()) => {
                    let catalog = parse(&name, &text, created)?;
                    Some(state.import(&catalog, &digest(&text), &sandbox.issuer, now, "campaigns file changed")?)
                }
                _ if stored.is_none() => {
                    // Made by a start that stopped half-way: the default, as then.
                    let catalog = parse(campaigns::DEFAULT_NAME, campaigns::DEFAULT_FILE, created)?;
                    Some(state.import(
                        &catalog,
                        &digest(campaigns::DEFAULT_FILE),
                        &sandbox.issuer,
                        now,
                        "first start",
                    )?)
                }
                _ => None,
            }
        };
        Ok(Opened { sandbox, created: false, published })
    }

    /// Opens the sandbox in `dir` for a verb (`codes`, `revoke`, …); it must exist.
    pub fn open(dir: &Path, clock: Arc<dyn Clock>) -> Result<Sandbox, SandboxError> {
        let state_path = dir.join(STATE_FILE);
        if !state_path.exists() {
            return Err(SandboxError::NotASandbox { dir: dir.to_owned() });
        }
        Sandbox::assemble(dir, State::open(&state_path, false)?, Secrets::load(&dir.join(KEYS_FILE))?, clock)
    }

    fn assemble(dir: &Path, state: State, secrets: Secrets, clock: Arc<dyn Clock>) -> Result<Sandbox, SandboxError> {
        let issuer = Issuer::from_keys(&secrets.issuer);
        let key = issuer.coupon_key_json()["key"].as_str().unwrap_or_default().to_owned();
        let coupon_key = crate::keys::PublicKey::from_base64url(crate::keys::Alg::EdDSA, &key)
            .map_err(|e| SandboxError::Keys { path: dir.join(KEYS_FILE), detail: format!("the coupon key: {e}") })?;
        Ok(Sandbox {
            dir: dir.to_owned(),
            state: Mutex::new(state),
            issuer,
            coupon_key,
            token_key: secrets.token_key,
            clock,
        })
    }

    fn state(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    pub fn now(&self) -> Timestamp {
        self.clock.now()
    }

    pub fn issuer(&self) -> &Issuer {
        &self.issuer
    }

    /// The enrollment answer's `ruleset_keys`: the issuer's rule-set trust anchor.
    pub fn ruleset_keys(&self) -> serde_json::Value {
        serde_json::from_str(&self.issuer.trust_anchors_json()).unwrap_or_default()
    }

    pub fn catalog(&self) -> Result<Catalog, SandboxError> {
        self.state().catalog()?.ok_or_else(|| SandboxError::NotASandbox { dir: self.dir.clone() })
    }

    /// The catalog's zone (enrollment answers, RFC 3339 times the sandbox says).
    pub fn timezone(&self) -> jiff::tz::TimeZone {
        let name = self.catalog().map(|c| c.timezone).unwrap_or_else(|_| crate::config::DEFAULT_TIMEZONE.into());
        jiff::tz::TimeZone::get(&name).unwrap_or(jiff::tz::TimeZone::UTC)
    }

    /// `count` new enrollment codes, valid for `ttl`, enrolling into the catalog's shop.
    pub fn make_codes(&self, count: u32, ttl: SignedDuration) -> Result<Vec<Code>, SandboxError> {
        let merchant = self.catalog()?.merchant;
        let now = self.now();
        let expires_at = now + ttl;
        let mut made = Vec::with_capacity(count as usize);
        let mut state = self.state();
        while made.len() < count as usize {
            let code = new_code();
            if state.add_codes(std::slice::from_ref(&code), &merchant, now, expires_at, false)? == 1 {
                made.push(Code { code, expires_at });
            }
        }
        Ok(made)
    }

    /// Puts a code of one's choosing, unused again (the demo's well-known code).
    pub fn put_code(&self, code: &str, ttl: SignedDuration) -> Result<Code, SandboxError> {
        let merchant = self.catalog()?.merchant;
        let now = self.now();
        let code = normalize_code(code);
        self.state().add_codes(std::slice::from_ref(&code), &merchant, now, now + ttl, true)?;
        Ok(Code { code, expires_at: now + ttl })
    }

    pub fn codes(&self) -> Result<Vec<CodeRow>, SandboxError> {
        self.state().codes()
    }

    /// Revokes coupon ids and publishes a new version (none when all were revoked):
    /// (how many were new, the version published).
    pub fn revoke(&self, ids: &[String]) -> Result<(usize, Option<Published>), SandboxError> {
        if let Some(bad) = ids.iter().find(|id| !valid_coupon_id(id)) {
            return Err(SandboxError::BadCouponId { id: bad.clone() });
        }
        let now = self.now();
        self.state().revoke(ids, &self.issuer, now)
    }

    /// Sets a campaign's status (`pause`: paused, `resume`: active) and publishes a new
    /// version; `None` when it had that status already.
    pub fn set_campaign_status(&self, id: &str, status: CampaignStatus) -> Result<Option<Published>, SandboxError> {
        let now = self.now();
        self.state().set_status(id, status, &self.issuer, now)
    }

    pub fn statuses(&self) -> Result<Vec<(String, CampaignStatus)>, SandboxError> {
        self.state().statuses()
    }

    pub fn revoked(&self) -> Result<Vec<String>, SandboxError> {
        self.state().revoked()
    }

    pub fn terminals(&self) -> Result<Vec<TerminalRow>, SandboxError> {
        self.state().terminals()
    }

    /// Retires a terminal (its token stops working); `false` when it was already retired.
    pub fn retire(&self, terminal_id: &str) -> Result<bool, SandboxError> {
        let now = self.now();
        self.state().retire(terminal_id.trim(), now)
    }

    /// A live redemption of `coupon_id` by another terminal (the demo's used coupon).
    pub fn seed_redemption(
        &self,
        coupon_id: &str,
        campaign_id: &str,
        terminal_id: &str,
        at: Timestamp,
    ) -> Result<(), SandboxError> {
        let at = crate::clock::rfc3339(at, &self.timezone());
        let now = self.now();
        self.state().seed_redemption(coupon_id, campaign_id, terminal_id, &at, now)
    }

    /// The rule set to serve: the newest, or a fresh version when it nears its end.
    pub fn ruleset(&self) -> Result<StoredRuleset, SandboxError> {
        let now = self.now();
        self.state().current_ruleset(&self.issuer, now)
    }

    pub fn newest_ruleset(&self) -> Result<Option<StoredRuleset>, SandboxError> {
        self.state().newest_ruleset()
    }

    pub fn newest_version(&self) -> Result<Option<u64>, SandboxError> {
        self.state().newest_version()
    }

    pub fn enroll(&self, request: &EnrollRequest) -> Result<EnrollOutcome, SandboxError> {
        let now = self.now();
        self.state().enroll(request, &self.token_key, now)
    }

    pub fn authenticate(&self, token: &str) -> Result<Auth, SandboxError> {
        self.state().authenticate(token)
    }

    pub fn heartbeat(&self, terminal_id: &str, beat: &Heartbeat) -> Result<(), SandboxError> {
        let now = self.now();
        self.state().heartbeat(terminal_id, beat, now)
    }

    pub fn redemptions(&self, terminal_id: &str, events: &[Event]) -> Result<Vec<serde_json::Value>, SandboxError> {
        let now = self.now();
        self.state().redemptions(terminal_id, events, &self.coupon_key, now)
    }

    pub(crate) fn reserve_coupons(
        &self,
        campaign: &str,
        count: u32,
        holder_bound: bool,
    ) -> Result<Vec<String>, SandboxError> {
        let now = self.now();
        self.state().reserve_coupons(campaign, count, holder_bound, now)
    }
}

/// A fresh enrollment code, `K7PX-93QD`: 8 of 32 letters and digits that are not easily
/// confused (no 0/O, 1/I), 40 bits.
fn new_code() -> String {
    const ALPHABET: &[u8; 32] = b"ABCDEFGHJKLMNPQRSTUVWXYZ23456789";
    let bytes = crate::secret::random_bytes::<8>();
    let chars: String = bytes.iter().map(|b| char::from(ALPHABET[usize::from(b & 31)])).collect();
    format!("{}-{}", &chars[..4], &chars[4..])
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::clock::ManualClock;

    fn clock() -> (ManualClock, Arc<dyn Clock>) {
        let c = ManualClock::new("2026-11-28T04:00:00Z".parse().unwrap());
        (c.clone(), Arc::new(c))
    }

    fn request(code: &str, request_id: Option<&str>) -> EnrollRequest {
        EnrollRequest {
            code: code.into(),
            label: "lane-1".into(),
            agent_version: "0.1.0".into(),
            request_id: request_id.map(str::to_owned),
        }
    }

    #[test]
    fn a_new_sandbox_publishes_the_demo_campaigns_and_keeps_its_keys() {
        let dir = tempfile::tempdir().unwrap();
        let home = dir.path().join("sb");
        let (_, clock) = clock();
        let opened = Sandbox::create_or_open(&home, Setup::default(), clock.clone()).unwrap();
        assert!(opened.created);
        assert_eq!(opened.published.as_ref().map(|p| p.version), Some(1));
        let rs = opened.sandbox.ruleset().unwrap();
        let anchors = crate::ruleset::parse_anchors(&opened.sandbox.issuer().trust_anchors_json()).unwrap();
        let verified = crate::ruleset::verify(&rs.jws, &anchors).unwrap();
        assert_eq!(verified.rules.campaigns.len(), 2);
        drop(opened);
        use std::os::unix::fs::PermissionsExt as _;
        let mode = |p: &Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode(&home), 0o700);
        assert_eq!(mode(&home.join(KEYS_FILE)), 0o600);
        assert_eq!(mode(&home.join(STATE_FILE)), 0o600);
        let again = Sandbox::create_or_open(&home, Setup::default(), clock.clone()).unwrap();
        assert!(!again.created && again.published.is_none());
        assert_eq!(again.sandbox.ruleset().unwrap().jws, rs.jws);
        // A directory holding other things is never taken.
        std::fs::write(dir.path().join("notes.txt"), "x").unwrap();
        assert!(matches!(
            Sandbox::create_or_open(dir.path(), Setup::default(), clock),
            Err(SandboxError::NotEmpty { .. })
        ));
    }

    #[test]
    fn enrollment_codes_answer_as_the_spec_says() {
        let dir = tempfile::tempdir().unwrap();
        let (manual, clock) = clock();
        let sb = Sandbox::create_or_open(dir.path(), Setup::default(), clock).unwrap().sandbox;
        let codes = sb.make_codes(2, SignedDuration::from_hours(1)).unwrap();
        assert_eq!(sb.enroll(&request("NOPE-NOPE", Some("r1"))).unwrap(), EnrollOutcome::InvalidCode);
        let first = match sb.enroll(&request(&codes[0].code.to_lowercase(), Some("r1"))).unwrap() {
            EnrollOutcome::Enrolled(identity) => identity,
            other => panic!("{other:?}"),
        };
        assert_eq!(first.terminal_id, "T-0001");
        assert_eq!(sb.authenticate(&first.token).unwrap(), Auth::Terminal("T-0001".into()));
        // The same request again: the same identity and token; another request: 409.
        assert_eq!(sb.enroll(&request(&codes[0].code, Some("r1"))).unwrap(), EnrollOutcome::Replayed(first.clone()));
        assert_eq!(sb.enroll(&request(&codes[0].code, Some("r2"))).unwrap(), EnrollOutcome::CodeUsed);
        assert_eq!(sb.enroll(&request(&codes[0].code, None)).unwrap(), EnrollOutcome::CodeUsed);
        manual.set("2026-11-28T05:00:00Z".parse().unwrap());
        assert_eq!(sb.enroll(&request(&codes[1].code, Some("r3"))).unwrap(), EnrollOutcome::CodeExpired);
        // A retired terminal's token stops working and its code is not replayed.
        assert!(sb.retire("T-0001").unwrap());
        assert!(!sb.retire("T-0001").unwrap());
        assert_eq!(sb.authenticate(&first.token).unwrap(), Auth::Retired("T-0001".into()));
        assert_eq!(sb.enroll(&request(&codes[0].code, Some("r1"))).unwrap(), EnrollOutcome::CodeUsed);
        assert!(matches!(sb.retire("T-0099"), Err(SandboxError::UnknownTerminal { .. })));
        assert_eq!(sb.authenticate("made-up").unwrap(), Auth::Unknown);
    }

    #[test]
    fn revoke_and_pause_publish_new_versions() {
        let dir = tempfile::tempdir().unwrap();
        let (_, clock) = clock();
        let sb = Sandbox::create_or_open(dir.path(), Setup::default(), clock).unwrap().sandbox;
        let (added, published) = sb.revoke(&["DEMO-DINING-000001".into()]).unwrap();
        assert_eq!((added, published.map(|p| p.version)), (1, Some(2)));
        assert_eq!(sb.revoke(&["DEMO-DINING-000001".into()]).unwrap(), (0, None));
        assert!(matches!(sb.revoke(&["a b".into()]), Err(SandboxError::BadCouponId { .. })));
        assert_eq!(sb.set_campaign_status("DEMO-BIG", CampaignStatus::Paused).unwrap().map(|p| p.version), Some(3));
        assert_eq!(sb.set_campaign_status("DEMO-BIG", CampaignStatus::Paused).unwrap(), None);
        assert!(matches!(
            sb.set_campaign_status("NOPE", CampaignStatus::Paused),
            Err(SandboxError::UnknownCampaign { .. })
        ));
        let anchors = crate::ruleset::parse_anchors(&sb.issuer().trust_anchors_json()).unwrap();
        let rules = crate::ruleset::verify(&sb.ruleset().unwrap().jws, &anchors).unwrap().rules;
        assert_eq!(rules.version, 3);
        assert_eq!(rules.revoked_count, 2);
    }

    #[test]
    fn a_rule_set_near_its_end_is_published_again() {
        let dir = tempfile::tempdir().unwrap();
        let (manual, clock) = clock();
        let sb = Sandbox::create_or_open(dir.path(), Setup::default(), clock).unwrap().sandbox;
        assert_eq!(sb.ruleset().unwrap().version, 1);
        manual.set("2026-12-22T04:00:00Z".parse().unwrap());
        let fresh = sb.ruleset().unwrap();
        assert_eq!(fresh.version, 2);
        assert_eq!(fresh.expires_at, "2027-01-21T04:00:00Z".parse().unwrap());
    }
}
