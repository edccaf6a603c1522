//! The store hub's NATS side (`spec/store-hub.md`): the only module that speaks NATS.
//! It owns the connection and what the lane knows of it (connected or not, the last
//! error), makes sure the store's claims bucket and event stream exist with the
//! contract's settings, and offers the hub's operations: claim (within the budget),
//! settle an unconfirmed redemption, release a voided one's claims (compare-and-delete),
//! find this lane's dangling claims, and publish outbox events (`Nats-Msg-Id`).
//!
//! It must not touch the ledger, decide, or wait longer than it is told: the names and
//! values come from [`crate::claim`], the callers (`daemon::hubwork`, the ledger owner)
//! keep the ledger, and every operation here is bounded by a timeout.

use crate::claim::{self, ClaimAnswer, ClaimRequest, ClaimValue, Settled, WhenHubDown};
use async_nats::jetstream::{self, kv, stream};
use async_nats::HeaderMap;
use futures_util::StreamExt;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use thiserror::Error;

/// How long the bucket's delete markers of expired keys live (limit markers on).
const MARKER_TTL: Duration = Duration::from_secs(3600);
/// The stream keeps a store's events this long.
const STREAM_MAX_AGE: Duration = Duration::from_secs(62 * 24 * 3600);
/// Work beside a decision (settling, releases, publishing) waits at most this long per step.
const STEP_TIMEOUT: Duration = Duration::from_secs(2);

/// How the lane authenticates at the hub.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HubAuth {
    None,
    Credentials(PathBuf),
    UserPassword { user: String, password_file: PathBuf },
}

/// `[store]`, resolved against the terminal's identity.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HubSettings {
    pub urls: Vec<String>,
    pub store_id: String,
    pub lane: String,
    /// The lane's name on the hub: its terminal id, or `lane-<lane>` without one.
    pub terminal_id: String,
    pub auth: HubAuth,
    pub ca: Option<PathBuf>,
    pub claim_timeout: Duration,
    pub when_down: WhenHubDown,
}

impl HubSettings {
    /// `[store]` resolved against the terminal's identity (None without the section; Err:
    /// what is wrong with it, in English with the file's key names). Secrets' modes are
    /// the caller's to check: the daemon refuses, `doctor` reports.
    pub fn from_config(config: &crate::config::Config) -> Result<Option<HubSettings>, String> {
        let Some(store) = &config.store else {
            return Ok(None);
        };
        let terminal_id = config.upstream.as_ref().map(|u| u.terminal_id.clone());
        if let Some(problem) = store.problem(terminal_id.as_deref()) {
            return Err(problem);
        }
        let lane = store.lane.clone().or_else(|| terminal_id.clone()).unwrap_or_default();
        let auth = match (&store.credentials, &store.user, &store.password_file) {
            (Some(path), _, _) => HubAuth::Credentials(path.clone()),
            (None, Some(user), Some(path)) => HubAuth::UserPassword { user: user.clone(), password_file: path.clone() },
            _ => HubAuth::None,
        };
        Ok(Some(HubSettings {
            urls: store.hub.list(),
            store_id: store.id.clone().unwrap_or_else(|| config.merchant_id.clone()),
            terminal_id: terminal_id.unwrap_or_else(|| format!("lane-{lane}")),
            lane,
            auth,
            ca: store.ca.clone(),
            claim_timeout: Duration::from_millis(store.claim_timeout_ms),
            when_down: store.when_hub_down,
        }))
    }
}

#[derive(Debug, Error)]
pub enum HubError {
    #[error("cannot read {path}: {source}")]
    Secret { path: PathBuf, source: std::io::Error },
    #[error("the hub's {what} exists with other settings: {detail}; fix or remove it on the hub (the lane changes nothing there)")]
    Contract { what: String, detail: String },
    #[error("the hub did not answer within {0:?}")]
    Timeout(Duration),
    #[error("not connected to the hub")]
    NotConnected,
    #[error("{0}")]
    Nats(String),
}

fn nats<E: std::fmt::Display>(e: E) -> HubError {
    HubError::Nats(e.to_string())
}

/// What the lane knows of its hub, for status and events.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HubState {
    pub connected: bool,
    pub last_error: Option<String>,
}

struct Ready {
    js: jetstream::Context,
    kv: kv::Store,
}

/// The lane's connection to its store hub.
pub struct Hub {
    pub settings: HubSettings,
    client: async_nats::Client,
    ready: Mutex<Option<Arc<Ready>>>,
    /// The client's own view: a connection to the server is up.
    link_up: Arc<AtomicBool>,
    last_error: Mutex<Option<String>>,
    /// Woken on every change of the connection (and when the bucket becomes ready).
    pub changed: Arc<tokio::sync::Notify>,
}

impl std::fmt::Debug for Hub {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Hub").field("urls", &self.settings.urls).finish_non_exhaustive()
    }
}

impl Hub {
    /// Starts connecting (in the background, retrying for ever): the lane works as if
    /// the hub were down until [`Hub::ensure`] has found the bucket and the stream.
    pub async fn connect(settings: HubSettings) -> Result<Arc<Hub>, HubError> {
        let mut options = match &settings.auth {
            HubAuth::None => async_nats::ConnectOptions::new(),
            HubAuth::Credentials(path) => async_nats::ConnectOptions::with_credentials_file(path)
                .await
                .map_err(|source| HubError::Secret { path: path.clone(), source })?,
            HubAuth::UserPassword { user, password_file } => {
                let password = std::fs::read_to_string(password_file)
                    .map_err(|source| HubError::Secret { path: password_file.clone(), source })?;
                async_nats::ConnectOptions::with_user_and_password(user.clone(), password.trim_end().to_owned())
            }
        };
        if let Some(ca) = &settings.ca {
            options = options.add_root_certificates(ca.clone()).require_tls(true);
        }
        let link_up = Arc::new(AtomicBool::new(false));
        let changed = Arc::new(tokio::sync::Notify::new());
        let last_error = Arc::new(Mutex::new(None::<String>));
        let (up, wake, errors) = (link_up.clone(), changed.clone(), last_error.clone());
        options = options
            .name(format!("redeemd {} lane {}", settings.terminal_id, settings.lane))
            .retry_on_initial_connect()
            .max_reconnects(None)
            .connection_timeout(Duration::from_secs(2))
            .request_timeout(Some(Duration::from_secs(2)))
            // Back within a second of the hub's return (the spec settles within 5 s).
            .reconnect_delay_callback(|attempts| Duration::from_millis((attempts as u64 * 100).min(500)))
            .event_callback(move |event| {
                let (up, wake, errors) = (up.clone(), wake.clone(), errors.clone());
                async move {
                    match event {
                        async_nats::Event::Connected => up.store(true, Ordering::SeqCst),
                        async_nats::Event::Disconnected | async_nats::Event::Closed => {
                            up.store(false, Ordering::SeqCst)
                        }
                        async_nats::Event::ServerError(e) => {
                            *errors.lock().unwrap_or_else(|p| p.into_inner()) = Some(e.to_string())
                        }
                        async_nats::Event::ClientError(e) => {
                            *errors.lock().unwrap_or_else(|p| p.into_inner()) = Some(e.to_string())
                        }
                        _ => {}
                    }
                    wake.notify_waiters();
                }
            });
        let client = options.connect(settings.urls.clone()).await.map_err(nats)?;
        let error = last_error.lock().unwrap_or_else(|p| p.into_inner()).take();
        let hub = Arc::new(Hub {
            settings,
            client,
            ready: Mutex::new(None),
            link_up,
            last_error: Mutex::new(error),
            changed,
        });
        // The callback's errors reach the hub through the shared slot.
        let (slot, weak) = (last_error, Arc::downgrade(&hub));
        tokio::spawn(async move {
            loop {
                tokio::time::sleep(Duration::from_millis(200)).await;
                let Some(hub) = weak.upgrade() else { break };
                if let Some(e) = slot.lock().unwrap_or_else(|p| p.into_inner()).take() {
                    hub.set_error(Some(e));
                }
            }
        });
        Ok(hub)
    }

    fn set_error(&self, error: Option<String>) {
        *self.last_error.lock().unwrap_or_else(|p| p.into_inner()) = error;
    }

    fn ready(&self) -> Option<Arc<Ready>> {
        if !self.link_up.load(Ordering::SeqCst) {
            return None;
        }
        self.ready.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }

    /// Connected, and the bucket and stream are as the contract says.
    pub fn state(&self) -> HubState {
        HubState {
            connected: self.ready().is_some(),
            last_error: self.last_error.lock().unwrap_or_else(|p| p.into_inner()).clone(),
        }
    }

    /// The link is up (the server answers), whether or not the bucket is ready.
    pub fn link_up(&self) -> bool {
        self.link_up.load(Ordering::SeqCst)
    }

    /// Finds (or creates) the claims bucket and the event stream; refuses ones that
    /// exist with other contract settings. Called whenever the link is up and not ready.
    pub async fn ensure(&self) -> Result<(), HubError> {
        if !self.link_up() {
            return Err(HubError::NotConnected);
        }
        let result = tokio::time::timeout(STEP_TIMEOUT * 2, self.ensure_inner()).await;
        let result = result.unwrap_or(Err(HubError::Timeout(STEP_TIMEOUT * 2)));
        match &result {
            Ok(ready) => {
                *self.ready.lock().unwrap_or_else(|p| p.into_inner()) = Some(ready.clone());
                self.set_error(None);
                self.changed.notify_waiters();
            }
            Err(e) => {
                *self.ready.lock().unwrap_or_else(|p| p.into_inner()) = None;
                self.set_error(Some(e.to_string()));
            }
        }
        result.map(|_| ())
    }

    async fn ensure_inner(&self) -> Result<Arc<Ready>, HubError> {
        let js = jetstream::new(self.client.clone());
        let store_id = &self.settings.store_id;
        let bucket = claim::bucket_name(store_id);
        let kv_stream = format!("KV_{bucket}");
        let kv = match js.get_stream(&kv_stream).await {
            Ok(mut existing) => {
                let info = existing.info().await.map_err(nats)?;
                check_bucket(&info.config)?;
                js.get_key_value(&bucket).await.map_err(nats)?
            }
            Err(e) if stream_not_found(&e) => js
                .create_key_value(kv::Config {
                    bucket: bucket.clone(),
                    history: 1,
                    storage: stream::StorageType::File,
                    limit_markers: Some(MARKER_TTL),
                    ..Default::default()
                })
                .await
                .map_err(nats)?,
            Err(e) => return Err(nats(e)),
        };
        let name = claim::stream_name(store_id);
        match js.get_stream(&name).await {
            Ok(mut existing) => {
                let info = existing.info().await.map_err(nats)?;
                check_stream(&info.config, store_id)?;
            }
            Err(e) if stream_not_found(&e) => {
                js.create_stream(stream::Config {
                    name,
                    subjects: vec![claim::stream_subjects(store_id)],
                    storage: stream::StorageType::File,
                    max_age: STREAM_MAX_AGE,
                    ..Default::default()
                })
                .await
                .map_err(nats)?;
            }
            Err(e) => return Err(nats(e)),
        }
        Ok(Arc::new(Ready { js, kv }))
    }

    /// Claim before commit, the whole of it within the budget (`claim-timeout-ms`).
    /// Never waits when the lane knows the hub is down.
    pub async fn claim(&self, request: &ClaimRequest) -> ClaimAnswer {
        let Some(ready) = self.ready() else {
            return ClaimAnswer::Down;
        };
        let value = request.value(&self.settings.terminal_id, &self.settings.lane);
        let steps = claim_steps(&ready, request, &value, true);
        match tokio::time::timeout(self.settings.claim_timeout, steps).await {
            Ok(Ok(answer)) => answer,
            Ok(Err(e)) => {
                self.set_error(Some(e.to_string()));
                ClaimAnswer::TimedOut
            }
            Err(_) => ClaimAnswer::TimedOut,
        }
    }

    /// Settles a redemption accepted with `"guard": "local"`: creates its claims, or
    /// finds them held by itself (confirmed) or by another redemption (a store conflict).
    pub async fn settle(&self, request: &ClaimRequest) -> Result<Settled, HubError> {
        let ready = self.ready().ok_or(HubError::NotConnected)?;
        let value = request.value(&self.settings.terminal_id, &self.settings.lane);
        let answer = tokio::time::timeout(STEP_TIMEOUT, claim_steps(&ready, request, &value, false))
            .await
            .map_err(|_| HubError::Timeout(STEP_TIMEOUT))??;
        Ok(match answer {
            ClaimAnswer::Won { holder_slot } => Settled::Confirmed { holder_slot },
            ClaimAnswer::CouponTaken(held) | ClaimAnswer::SlotsTaken(held) => Settled::Conflict(held),
            ClaimAnswer::TimedOut | ClaimAnswer::Down => return Err(HubError::Timeout(STEP_TIMEOUT)),
        })
    }

    /// Deletes `key` if, and only if, it still names `redemption_id` (compare-and-delete).
    /// True when it is gone or was never this redemption's.
    pub async fn release(&self, key: &str, redemption_id: &str) -> Result<bool, HubError> {
        let ready = self.ready().ok_or(HubError::NotConnected)?;
        tokio::time::timeout(STEP_TIMEOUT, release(&ready.kv, key, redemption_id))
            .await
            .map_err(|_| HubError::Timeout(STEP_TIMEOUT))?
    }

    /// This lane's claims: (key, the redemption each names). For the cleanup at start.
    pub async fn own_claims(&self) -> Result<Vec<(String, String)>, HubError> {
        let ready = self.ready().ok_or(HubError::NotConnected)?;
        let work = async {
            let mut keys = ready.kv.keys().await.map_err(nats)?;
            let mut own = Vec::new();
            while let Some(key) = keys.next().await {
                let key = key.map_err(nats)?;
                if let Some(entry) = ready.kv.entry(key.clone()).await.map_err(nats)? {
                    if entry.operation != kv::Operation::Put {
                        continue;
                    }
                    if let Some(value) = ClaimValue::parse(&entry.value) {
                        if value.terminal_id == self.settings.terminal_id {
                            own.push((key, value.redemption_id));
                        }
                    }
                }
            }
            Ok::<_, HubError>(own)
        };
        tokio::time::timeout(STEP_TIMEOUT * 15, work).await.map_err(|_| HubError::Timeout(STEP_TIMEOUT * 15))?
    }

    /// Publishes one outbox event on the lane's subject, deduplicated by its event id.
    pub async fn publish(&self, event_id: &str, body: Vec<u8>) -> Result<(), HubError> {
        let ready = self.ready().ok_or(HubError::NotConnected)?;
        let subject = claim::event_subject(&self.settings.store_id, &self.settings.terminal_id);
        let mut headers = HeaderMap::new();
        headers.insert("Nats-Msg-Id", event_id);
        let work = async {
            ready.js.publish_with_headers(subject, headers, body.into()).await.map_err(nats)?.await.map_err(nats)
        };
        tokio::time::timeout(STEP_TIMEOUT, work).await.map_err(|_| HubError::Timeout(STEP_TIMEOUT))??;
        Ok(())
    }

    /// Every event on the store's stream, oldest first (for the store's day and for
    /// finding conflicts). Bounded: it reads what is there when it starts.
    pub async fn read_events(&self, start_sequence: u64) -> Result<(Vec<(u64, Vec<u8>)>, u64), HubError> {
        let ready = self.ready().ok_or(HubError::NotConnected)?;
        let name = claim::stream_name(&self.settings.store_id);
        let work = async {
            let mut stream = ready.js.get_stream(&name).await.map_err(nats)?;
            let last = stream.info().await.map_err(nats)?.state.last_sequence;
            let mut out = Vec::new();
            if last < start_sequence.max(1) {
                return Ok((out, last));
            }
            let consumer = stream
                .create_consumer(jetstream::consumer::pull::OrderedConfig {
                    deliver_policy: jetstream::consumer::DeliverPolicy::ByStartSequence {
                        start_sequence: start_sequence.max(1),
                    },
                    ..Default::default()
                })
                .await
                .map_err(nats)?;
            let mut messages = consumer.messages().await.map_err(nats)?;
            while let Some(message) = messages.next().await {
                let message = message.map_err(nats)?;
                let sequence = message.info().map_err(nats)?.stream_sequence;
                out.push((sequence, message.payload.to_vec()));
                if sequence >= last {
                    break;
                }
            }
            Ok((out, last))
        };
        tokio::time::timeout(STEP_TIMEOUT * 15, work).await.map_err(|_| HubError::Timeout(STEP_TIMEOUT * 15))?
    }
}

fn stream_not_found(e: &jetstream::context::GetStreamError) -> bool {
    matches!(e.kind(), jetstream::context::GetStreamErrorKind::JetStream(j)
        if j.error_code() == jetstream::ErrorCode::STREAM_NOT_FOUND)
}

fn check_bucket(config: &stream::Config) -> Result<(), HubError> {
    let mut differs = Vec::new();
    if config.storage != stream::StorageType::File {
        differs.push("storage is not file".to_owned());
    }
    if config.max_messages_per_subject != 1 {
        differs.push(format!("history is {} (the contract: 1)", config.max_messages_per_subject));
    }
    if config.subject_delete_marker_ttl.is_none() || !config.allow_message_ttl {
        differs.push("limit markers are off (per-key TTL needs them)".to_owned());
    }
    if !config.max_age.is_zero() {
        differs.push(format!("a bucket-wide max age of {:?} is set", config.max_age));
    }
    if differs.is_empty() {
        Ok(())
    } else {
        Err(HubError::Contract { what: format!("bucket {}", config.name), detail: differs.join("; ") })
    }
}

fn check_stream(config: &stream::Config, store_id: &str) -> Result<(), HubError> {
    let mut differs = Vec::new();
    if config.storage != stream::StorageType::File {
        differs.push("storage is not file".to_owned());
    }
    let subjects = claim::stream_subjects(store_id);
    if config.subjects != [subjects.clone()] {
        differs.push(format!("subjects are {:?} (the contract: [{subjects:?}])", config.subjects));
    }
    if differs.is_empty() {
        Ok(())
    } else {
        Err(HubError::Contract { what: format!("stream {}", config.name), detail: differs.join("; ") })
    }
}

enum Created {
    Yes,
    /// The key holds a live value.
    Held(Vec<u8>),
}

/// Create-if-absent with a per-key TTL, also over a delete marker (async-nats's own
/// `create` re-creates a deleted key without its TTL: `reference/crates.md` §8).
async fn create_with_ttl(ready: &Ready, key: &str, value: &[u8], ttl: Duration) -> Result<Created, HubError> {
    let subject = format!("$KV.{}.{key}", ready.kv.name);
    let mut expected = 0u64;
    for _ in 0..4 {
        let mut headers = HeaderMap::new();
        headers.insert("Nats-Expected-Last-Subject-Sequence", expected.to_string().as_str());
        headers.insert("Nats-TTL", ttl.as_secs().max(1).to_string().as_str());
        let ack = ready.js.publish_with_headers(subject.clone(), headers, value.to_vec().into()).await.map_err(nats)?;
        match ack.await {
            Ok(_) => return Ok(Created::Yes),
            Err(e) if e.kind() == jetstream::context::PublishErrorKind::WrongLastSequence => {}
            Err(e) => return Err(nats(e)),
        }
        match ready.kv.entry(key).await.map_err(nats)? {
            Some(entry) if entry.operation == kv::Operation::Put => return Ok(Created::Held(entry.value.to_vec())),
            Some(entry) => expected = entry.revision,
            None => expected = 0,
        }
    }
    Err(HubError::Nats(format!("key {key} changed under every attempt")))
}

async fn claim_steps(
    ready: &Ready,
    request: &ClaimRequest,
    value: &ClaimValue,
    give_back_on_full_slots: bool,
) -> Result<ClaimAnswer, HubError> {
    let bytes = value.to_bytes();
    // A value that is not a claim (another vendor's, damaged) still holds the key.
    let holder = |held: Vec<u8>| {
        ClaimValue::parse(&held).unwrap_or(ClaimValue {
            terminal_id: "?".into(),
            lane: "?".into(),
            redemption_id: String::new(),
            at: String::new(),
        })
    };
    if let Created::Held(held) = create_with_ttl(ready, &request.coupon_key, &bytes, request.coupon_ttl).await? {
        let held = holder(held);
        if held.redemption_id != request.redemption_id {
            return Ok(ClaimAnswer::CouponTaken(held));
        }
    }
    let Some(slots) = &request.holder_slots else {
        return Ok(ClaimAnswer::Won { holder_slot: None });
    };
    let mut last = None;
    for n in 1..=slots.limit {
        let key = slots.key(n);
        match create_with_ttl(ready, &key, &bytes, claim::HOLDER_SLOT_TTL).await? {
            Created::Yes => return Ok(ClaimAnswer::Won { holder_slot: Some(key) }),
            Created::Held(held) => {
                let held = holder(held);
                if held.redemption_id == request.redemption_id {
                    return Ok(ClaimAnswer::Won { holder_slot: Some(key) });
                }
                last = Some(held);
            }
        }
    }
    if give_back_on_full_slots {
        release(&ready.kv, &request.coupon_key, &request.redemption_id).await?;
    }
    Ok(ClaimAnswer::SlotsTaken(last.unwrap_or_else(|| holder(Vec::new()))))
}

async fn release(kv: &kv::Store, key: &str, redemption_id: &str) -> Result<bool, HubError> {
    for _ in 0..3 {
        let Some(entry) = kv.entry(key).await.map_err(nats)? else {
            return Ok(true);
        };
        if entry.operation != kv::Operation::Put {
            return Ok(true);
        }
        if ClaimValue::parse(&entry.value).map(|v| v.redemption_id) != Some(redemption_id.to_owned()) {
            return Ok(true);
        }
        match kv.delete_expect_revision(key, Some(entry.revision)).await {
            Ok(()) => return Ok(true),
            Err(e) if e.kind() == kv::DeleteErrorKind::WrongLastRevision => continue,
            Err(e) => return Err(nats(e)),
        }
    }
    Ok(false)
}

/// What `redeemd doctor` asks of the hub besides the lane's work: the server's version,
/// whether JetStream answers, and a claim made and taken back as a lane makes one.
impl Hub {
    /// A doctor's test claim lives at most this long when it cannot be deleted.
    const TEST_CLAIM_TTL: Duration = Duration::from_secs(60);

    /// The server's version as it announced itself (its `INFO`), while the link is up.
    pub fn server_version(&self) -> Option<String> {
        if !self.link_up() {
            return None;
        }
        let version = self.client.server_info().version;
        (!version.is_empty()).then_some(version)
    }

    /// Whether JetStream answers for the lane's account; the server's words when not.
    pub async fn jetstream_account(&self) -> Result<(), HubError> {
        if !self.link_up() {
            return Err(HubError::NotConnected);
        }
        let js = jetstream::new(self.client.clone());
        tokio::time::timeout(STEP_TIMEOUT, js.query_account())
            .await
            .map_err(|_| HubError::Timeout(STEP_TIMEOUT))?
            .map_err(nats)?;
        Ok(())
    }

    /// Creates a claim (with a short TTL, as a lane creates its claims) on the key of a
    /// coupon id no code carries (`doctor-test-<uuid>`), deletes it again by
    /// compare-and-delete and checks that it is gone. Needs [`Hub::ensure`] first; `at`
    /// is the claim value's time.
    pub async fn test_claim(&self, at: &str) -> Result<(), HubError> {
        let ready = self.ready().ok_or(HubError::NotConnected)?;
        let id = uuid::Uuid::now_v7().to_string();
        let key = claim::coupon_key(&format!("doctor-test-{id}"));
        let value = ClaimValue {
            terminal_id: self.settings.terminal_id.clone(),
            lane: self.settings.lane.clone(),
            redemption_id: format!("doctor-test-{id}"),
            at: at.to_owned(),
        };
        let work = async {
            if let Created::Held(_) = create_with_ttl(&ready, &key, &value.to_bytes(), Self::TEST_CLAIM_TTL).await? {
                return Err(HubError::Nats(format!("the new key {key} was already held")));
            }
            if !release(&ready.kv, &key, &value.redemption_id).await? {
                return Err(HubError::Nats(format!("the test claim {key} could not be deleted")));
            }
            match ready.kv.entry(key.as_str()).await.map_err(nats)? {
                Some(entry) if entry.operation == kv::Operation::Put => {
                    Err(HubError::Nats(format!("the test claim {key} is still there after its delete")))
                }
                _ => Ok(()),
            }
        };
        tokio::time::timeout(STEP_TIMEOUT * 2, work).await.map_err(|_| HubError::Timeout(STEP_TIMEOUT * 2))?
    }
}
