//! Store-and-forward to upstream: heartbeat, rule-set refresh and the outbox forwarder.
//!
//! The decisions are a sans-IO core — [`next_action`] turns (state, now) into an
//! [`Action`], [`after`] folds a request's outcome into the state (backoff with full
//! jitter from 1 s to 5 min, `Retry-After`, the 401 pause) — and [`Syncer`] is the thin
//! IO shell that carries actions out with [`Upstream`] and the [`Agent`]. All state that
//! matters lives in the ledger (outbox marks, `meta`), so a restart resumes where it was.
//! Nothing is deleted: events are only marked.

use crate::agent::{Agent, ImportError};
use crate::ruleset::Refusal;
use crate::store::{Install, OutboxEvent, Store, StoreError};
use crate::upstream::{EventStatus, RulesetFetch, Upstream, UpstreamError, AGENT_VERSION};
use jiff::{SignedDuration, Timestamp};
use std::path::PathBuf;
use std::time::Duration;

/// At most this many events per request (spec).
pub const BATCH: usize = 500;
pub const BACKOFF_BASE: Duration = Duration::from_secs(1);
pub const BACKOFF_CAP: Duration = Duration::from_secs(300);
use crate::clock::CLOCK_SKEW_LIMIT;
/// The command line's `sync` (another process writes the outbox) looks for new events this often.
pub const POLL: Duration = Duration::from_secs(2);

pub const PAUSED_401: &str = "re-provision needed: upstream refused the terminal's token (401)";

const META_FAILURES: &str = "sync.failures";
const META_NEXT_ATTEMPT: &str = "sync.next_attempt_ms";
const META_PAUSED: &str = "sync.paused";
const META_LAST_ERROR: &str = "sync.last_error";
const META_ETAG: &str = "sync.etag";
use crate::store::META_CLOCK_SKEW;

/// What the forwarder remembers between requests (and, but for the cadence, restarts).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SyncState {
    pub failures: u32,
    pub next_attempt: Option<Timestamp>,
    pub paused: Option<String>,
    pub last_error: Option<String>,
    pub last_heartbeat: Option<Timestamp>,
    pub last_refresh: Option<Timestamp>,
    /// This terminal's heartbeat and refresh periods in ‰ of the cadence (900–1100; 0
    /// means 1000): terminals that boot in the same second (a mall's power comes back)
    /// drift apart instead of heartbeating in the same second for ever.
    pub period_permille: u16,
}

impl SyncState {
    /// A period of the cadence, stretched or shrunk by this terminal's own factor.
    fn period(&self, every: Duration) -> Duration {
        let permille = if self.period_permille == 0 { 1000 } else { u32::from(self.period_permille) };
        every * permille / 1000
    }
}

/// A terminal's own period factor (‰), from a jitter in `[0, 1)`.
pub fn period_permille(jitter: f64) -> u16 {
    900 + (jitter.clamp(0.0, 1.0) * 200.0) as u16
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Cadence {
    pub heartbeat: Duration,
    pub refresh: Duration,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Action {
    Heartbeat,
    Refresh,
    Forward,
    Wait(Duration),
    Paused(String),
}

fn since(now: Timestamp, then: Timestamp) -> Duration {
    Duration::try_from(now - then).unwrap_or(Duration::ZERO)
}

/// The next thing to do. After start (nothing done yet): heartbeat, refresh, forward.
pub fn next_action(state: &SyncState, cadence: Cadence, pending: bool, now: Timestamp) -> Action {
    if let Some(reason) = &state.paused {
        return Action::Paused(reason.clone());
    }
    if let Some(at) = state.next_attempt.filter(|at| *at > now) {
        return Action::Wait(since(at, now));
    }
    let heartbeat = state.period(cadence.heartbeat);
    let refresh = state.period(cadence.refresh);
    let due = |last: Option<Timestamp>, every: Duration| last.is_none_or(|l| since(now, l) >= every);
    // Offline, the heartbeat is the probe: after a reconnect comes heartbeat, refresh,
    // then forwarding (spec "Cadence"), never forwarding first.
    if state.failures > 0 || due(state.last_heartbeat, heartbeat) {
        return Action::Heartbeat;
    }
    if due(state.last_refresh, refresh) {
        return Action::Refresh;
    }
    if pending {
        return Action::Forward;
    }
    let until =
        |last: Option<Timestamp>, every: Duration| last.map_or(Duration::ZERO, |l| every.saturating_sub(since(now, l)));
    Action::Wait(until(state.last_heartbeat, heartbeat).min(until(state.last_refresh, refresh)))
}

/// Full jitter: uniformly in `[0, min(cap, base·2^(failures-1))]`, but never sooner than
/// upstream's `Retry-After`.
pub fn backoff_delay(failures: u32, jitter: f64, retry_after: Option<Duration>) -> Duration {
    let exp = BACKOFF_BASE.saturating_mul(1u32 << failures.saturating_sub(1).min(16));
    let ceiling = exp.min(BACKOFF_CAP);
    ceiling.mul_f64(jitter.clamp(0.0, 1.0)).max(retry_after.unwrap_or(Duration::ZERO))
}

/// Folds one request's outcome into the state.
pub fn after(state: &mut SyncState, outcome: &Result<(), UpstreamError>, now: Timestamp, jitter: f64) {
    match outcome {
        // A 400 is about that batch, which is parked: the link itself is fine.
        Ok(()) | Err(UpstreamError::BadRequest(_)) => {
            state.failures = 0;
            state.next_attempt = None;
            state.last_error = outcome.as_ref().err().map(ToString::to_string);
        }
        Err(UpstreamError::Unauthorized) => {
            state.paused = Some(PAUSED_401.into());
            state.last_error = Some(PAUSED_401.into());
        }
        Err(e) => {
            state.failures = state.failures.saturating_add(1);
            let delay = backoff_delay(state.failures, jitter, e.retry_after(now));
            // Every delay is capped (backoff 5 min, Retry-After 1 h), and the addition is
            // checked all the same: a deadline never overflows.
            let delay = SignedDuration::try_from(delay).unwrap_or(SignedDuration::ZERO);
            state.next_attempt = Some(now.checked_add(delay).unwrap_or(Timestamp::MAX));
            state.last_error = Some(e.to_string());
        }
    }
}

pub fn jitter() -> f64 {
    let mut bytes = [0u8; 8];
    if getrandom::fill(&mut bytes).is_err() {
        return 0.5;
    }
    (u64::from_le_bytes(bytes) >> 11) as f64 / (1u64 << 53) as f64
}

/// What a rule-set refresh did. The command line says it in the configured language from
/// the message tables, so it is kept as what happened, never as (English) text.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RulesetOutcome {
    /// Upstream answered 304: the installed rule set is current.
    NotModified,
    Installed {
        version: u64,
        bytes: u64,
    },
    /// Fetched, and the same version as the one in force.
    Unchanged {
        version: u64,
    },
    /// Refused whole; `kept` is the version still in force (`None`: none installed).
    Refused {
        refusal: Refusal,
        kept: Option<u64>,
    },
}

/// What one round or step achieved, for the command line.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Summary {
    pub heartbeat_skew_s: Option<i64>,
    pub ruleset: Option<RulesetOutcome>,
    pub forwarded: u64,
    pub by_status: [u64; 4],
    pub parked: u64,
    /// Steps that failed without stopping the round (heartbeat, refresh), with why.
    pub warnings: Vec<(Step, UpstreamError)>,
}

impl Summary {
    fn count(&mut self, status: EventStatus) {
        self.forwarded += 1;
        self.by_status[status as usize] += 1;
    }
}

/// Where the syncer reaches the ledger: the command line's own [`Agent`], or the
/// daemon's ledger owner (whose thread is the only one that writes).
pub enum AgentAccess<'a> {
    Direct(&'a mut Agent),
    Owner(crate::daemon::ledger::LedgerHandle),
}

impl AgentAccess<'_> {
    /// Runs `f` with the agent: inline, or on the ledger owner's thread.
    pub async fn with<R: Send + 'static>(
        &mut self,
        f: impl FnOnce(&mut Agent) -> R + Send + 'static,
    ) -> Result<R, UpstreamError> {
        match self {
            AgentAccess::Direct(agent) => Ok(f(agent)),
            AgentAccess::Owner(handle) => {
                handle.call(move |ledger| f(&mut ledger.agent)).await.map_err(|e| UpstreamError::Local(e.to_string()))
            }
        }
    }
}

/// The IO shell: carries actions out against upstream and the ledger.
pub struct Syncer<'a> {
    pub ledger: AgentAccess<'a>,
    pub upstream: Upstream,
    pub terminal_id: String,
    pub download_dir: PathBuf,
    /// Called with (bytes, total) while a rule set downloads.
    pub progress: Box<dyn FnMut(u64, Option<u64>) + Send + 'a>,
    /// The scanner state the heartbeat reports.
    pub scanner_state: Box<dyn Fn() -> String + Send + Sync + 'a>,
    pub state: SyncState,
    pub summary: Summary,
    /// Events per request: [`BATCH`], halved after each 400 until the refused event is
    /// alone in its batch and parked.
    batch_limit: usize,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Step {
    Heartbeat,
    Refresh,
    Forward,
}

impl Step {
    /// A stable word for the step (message keys, metrics).
    pub fn key(self) -> &'static str {
        match self {
            Step::Heartbeat => "heartbeat",
            Step::Refresh => "refresh",
            Step::Forward => "forward",
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            Step::Heartbeat => "heartbeat",
            Step::Refresh => "rule-set refresh",
            Step::Forward => "forwarding",
        }
    }
}

impl<'a> Syncer<'a> {
    /// A syncer over the command line's own agent.
    pub fn new(
        agent: &'a mut Agent,
        upstream: Upstream,
        terminal_id: String,
        download_dir: PathBuf,
    ) -> Result<Self, StoreError> {
        let state = load_state(agent.store())?;
        Ok(Syncer::with_state(AgentAccess::Direct(agent), upstream, terminal_id, download_dir, state))
    }

    pub fn with_state(
        ledger: AgentAccess<'a>,
        upstream: Upstream,
        terminal_id: String,
        download_dir: PathBuf,
        mut state: SyncState,
    ) -> Self {
        state.period_permille = period_permille(jitter());
        Syncer {
            ledger,
            upstream,
            terminal_id,
            download_dir,
            progress: Box::new(|_, _| {}),
            scanner_state: Box::new(|| "not_running".to_owned()),
            state,
            summary: Summary::default(),
            batch_limit: BATCH,
        }
    }

    pub async fn save_state(&mut self) -> Result<(), UpstreamError> {
        let state = self.state.clone();
        self.ledger.with(move |agent| save_state(agent.store(), &state)).await?.map_err(local)
    }

    async fn contact(&mut self) -> Result<(), UpstreamError> {
        self.ledger
            .with(|agent| {
                let now = agent.now();
                agent.store_mut().mark_contact(now)
            })
            .await?
            .map_err(local)
    }

    async fn now(&mut self) -> Result<Timestamp, UpstreamError> {
        self.ledger.with(|agent| agent.now()).await
    }

    async fn heartbeat(&mut self) -> Result<(), UpstreamError> {
        let (unsynced, version, time) = self
            .ledger
            .with(|agent| {
                let unsynced = agent.store().unsynced().map(|u| u.count);
                let time = crate::clock::rfc3339(agent.now(), &agent.timezone());
                (unsynced, agent.installed().map(|i| i.rules.version), time)
            })
            .await?;
        let body = serde_json::json!({
            "terminal_id": self.terminal_id, "agent_version": AGENT_VERSION,
            "ruleset_version": version, "unsynced": unsynced.map_err(local)?,
            "scanner": (self.scanner_state)(), "time": time,
        });
        let server_time = self.upstream.heartbeat(&body).await?;
        let skew = (self.now().await? - server_time).as_secs();
        let warning = (skew.abs() > CLOCK_SKEW_LIMIT).then(|| skew.to_string());
        if warning.is_some() {
            tracing::warn!(skew_s = skew, "terminal clock is off the server's by more than {CLOCK_SKEW_LIMIT} s");
        }
        self.ledger
            .with(move |agent| agent.store().set_meta(META_CLOCK_SKEW, warning.as_deref()))
            .await?
            .map_err(local)?;
        self.summary.heartbeat_skew_s = Some(skew);
        self.contact().await
    }

    async fn refresh(&mut self) -> Result<(), UpstreamError> {
        let etag = self
            .ledger
            .with(|agent| {
                // Only send the tag while a rule set is installed (a fresh terminal wants one).
                agent.store().meta(META_ETAG).map(|etag| etag.filter(|_| agent.installed().is_some()))
            })
            .await?
            .map_err(local)?;
        std::fs::create_dir_all(&self.download_dir).map_err(|e| local_io(&self.download_dir, e))?;
        let tmp = self.download_dir.join("ruleset.download");
        let fetched = self.upstream.fetch_ruleset(etag.as_deref(), &tmp, &mut self.progress).await;
        let outcome = match fetched {
            Ok(RulesetFetch::NotModified) => {
                self.summary.ruleset = Some(RulesetOutcome::NotModified);
                Ok(())
            }
            Ok(RulesetFetch::Fetched { etag, bytes }) => {
                let path = tmp.clone();
                let summary = self
                    .ledger
                    .with(move |agent| -> Result<RulesetOutcome, UpstreamError> {
                        let text = std::fs::read(&path).map_err(|e| local_io(&path, e))?;
                        // Not UTF-8 is refused by the verification all the same; valid text is not copied.
                        let text = String::from_utf8(text)
                            .unwrap_or_else(|e| String::from_utf8_lossy(e.as_bytes()).into_owned());
                        match agent.import_ruleset(text) {
                            Ok(install) => {
                                agent.store().set_meta(META_ETAG, etag.as_deref()).map_err(local)?;
                                let version = agent.installed().map_or(0, |i| i.rules.version);
                                Ok(match install {
                                    Install::Installed { .. } => RulesetOutcome::Installed { version, bytes },
                                    Install::Unchanged => RulesetOutcome::Unchanged { version },
                                })
                            }
                            // Logged by the agent; the old rule set stays in force, and the
                            // next refresh fetches again (the ETag is not stored).
                            Err(ImportError::Refused(refusal)) => {
                                let kept = agent.installed().map(|i| i.rules.version);
                                Ok(RulesetOutcome::Refused { refusal, kept })
                            }
                            Err(ImportError::Store(e)) => Err(local(e)),
                        }
                    })
                    .await
                    .and_then(|r| r);
                summary.map(|s| self.summary.ruleset = Some(s))
            }
            Err(e) => Err(e),
        };
        let _ = std::fs::remove_file(&tmp);
        outcome?;
        self.contact().await
    }

    /// Sends one batch of the oldest pending events; `Ok(0)` when there were none.
    async fn forward(&mut self) -> Result<usize, UpstreamError> {
        let limit = self.batch_limit;
        let events: Vec<OutboxEvent> =
            self.ledger.with(move |agent| agent.store().pending_events(limit)).await?.map_err(local)?;
        if events.is_empty() {
            return Ok(0);
        }
        let bodies: Vec<(String, String)> = events.iter().map(|e| (e.event_id.clone(), e.body.clone())).collect();
        match self.upstream.post_events(&self.terminal_id, &bodies).await {
            Ok(results) => {
                for r in &results {
                    self.summary.count(r.status);
                    if matches!(r.status, EventStatus::Conflict | EventStatus::Rejected) {
                        tracing::warn!(event_id = %r.event_id, answer = %r.raw, "upstream flagged an event");
                    }
                }
                let count = events.len();
                self.ledger
                    .with(move |agent| {
                        let now = agent.now();
                        agent.store_mut().apply_results(&events, &results, now)
                    })
                    .await?
                    .map_err(local)?;
                self.contact().await?;
                Ok(count)
            }
            // Something in the batch is bad: halve it until the refused event is alone,
            // then park only that one (spec, upstream-api.md "400"). Each retry re-reads
            // the outbox, so nothing behind a parked event of its redemption goes out.
            Err(UpstreamError::BadRequest(reason)) if events.len() > 1 => {
                self.batch_limit = events.len() / 2;
                tracing::warn!(count = events.len(), next = self.batch_limit, %reason, "upstream refused a batch (400); narrowing it down");
                Err(UpstreamError::BadRequest(reason))
            }
            Err(UpstreamError::BadRequest(reason)) => {
                let seq = events[0].seq;
                let why = reason.clone();
                self.ledger
                    .with(move |agent| {
                        let now = agent.now();
                        agent.store_mut().park(&events, &why, now)
                    })
                    .await?
                    .map_err(local)?;
                self.summary.parked += 1;
                self.batch_limit = BATCH;
                tracing::error!(seq, %reason, "upstream refused an event (400); parked until `redeemd outbox retry`");
                Err(UpstreamError::BadRequest(reason))
            }
            Err(e) => Err(e),
        }
    }

    /// Carries out one step; `Ok(n)` is the number of events a forward step sent.
    pub async fn step(&mut self, step: Step) -> Result<usize, UpstreamError> {
        match step {
            Step::Heartbeat => self.heartbeat().await.map(|()| 1),
            Step::Refresh => self.refresh().await.map(|()| 1),
            Step::Forward => self.forward().await,
        }
    }

    /// One step with up to two retries (honouring `Retry-After` up to 10 s).
    async fn step_with_retries(&mut self, step: Step) -> Result<usize, UpstreamError> {
        let mut attempt = 0;
        loop {
            let result = self.step(step).await;
            let now = self.now().await?;
            after(&mut self.state, &result.as_ref().map(|_| ()).map_err(Clone::clone), now, jitter());
            match result {
                Err(e) if e.is_transient() && attempt < 2 => {
                    let delay = backoff_delay(attempt + 1, jitter(), e.retry_after(now));
                    if delay > Duration::from_secs(10) {
                        return Err(e);
                    }
                    tracing::info!(error = %e, ?delay, "retrying");
                    tokio::time::sleep(delay).await;
                    attempt += 1;
                }
                other => return other,
            }
        }
    }

    /// One rule-set refresh with retries (provisioning's first fetch).
    pub async fn step_refresh(&mut self) -> Result<(), UpstreamError> {
        let result = self.step_with_retries(Step::Refresh).await.map(|_| ());
        let _ = self.save_state().await;
        result
    }

    /// `sync --once`: heartbeat, refresh, then forward until the outbox is empty.
    /// Whatever backoff was pending is ignored. Errs when anything is left undelivered.
    pub async fn run_once(&mut self) -> Result<(), UpstreamError> {
        let result = self.round().await;
        let saved = self.save_state().await;
        result?;
        saved?;
        let (pending, parked) = self.ledger.with(|agent| agent.store().undelivered()).await?.map_err(local)?;
        if pending + parked > 0 {
            return Err(UpstreamError::Undelivered { pending, parked });
        }
        Ok(())
    }

    /// Heartbeat, refresh, then forwarding until the outbox is empty. A failed heartbeat
    /// or refresh is reported but does not keep the events from going out; only a 401
    /// (the pause) stops the round.
    async fn round(&mut self) -> Result<(), UpstreamError> {
        if let Some(reason) = self.state.paused.clone() {
            return Err(UpstreamError::Local(reason));
        }
        for step in [Step::Heartbeat, Step::Refresh] {
            let result = self.step_with_retries(step).await;
            let now = self.now().await?;
            match step {
                Step::Heartbeat => self.state.last_heartbeat = Some(now),
                _ => self.state.last_refresh = Some(now),
            }
            match result {
                Err(UpstreamError::Unauthorized) => return Err(UpstreamError::Unauthorized),
                Err(e) => {
                    tracing::warn!(error = %e, "{} failed; forwarding goes on", step.name());
                    self.summary.warnings.push((step, e));
                }
                Ok(_) => {}
            }
        }
        loop {
            match self.step_with_retries(Step::Forward).await {
                Ok(0) => return Ok(()),
                Ok(_) | Err(UpstreamError::BadRequest(_)) => continue,
                Err(e) => return Err(e),
            }
        }
    }

    /// Whether events wait in the outbox, and the pause a re-provision in another
    /// process may have cleared.
    pub async fn poll_ledger(&mut self) -> Result<bool, UpstreamError> {
        let (paused, pending) = self
            .ledger
            .with(|agent| -> Result<_, StoreError> {
                Ok((agent.store().meta(META_PAUSED)?, !agent.store().pending_events(1)?.is_empty()))
            })
            .await?
            .map_err(local)?;
        self.state.paused = paused;
        Ok(pending)
    }

    /// Carries out the next action of the cadence: `Some(wait)` when there is nothing to do
    /// for that long (or the sync is paused), `None` after a step.
    pub async fn tick(
        &mut self,
        cadence: Cadence,
        announced_pause: &mut bool,
    ) -> Result<Option<Duration>, UpstreamError> {
        let pending = self.poll_ledger().await?;
        let now = self.now().await?;
        Ok(match next_action(&self.state, cadence, pending, now) {
            Action::Paused(reason) => {
                if !*announced_pause {
                    tracing::error!("{reason}; forwarding stopped, the outbox is kept");
                    *announced_pause = true;
                }
                Some(PAUSE_RECHECK)
            }
            Action::Wait(d) => Some(d),
            step => {
                *announced_pause = false;
                let step = match step {
                    Action::Heartbeat => Step::Heartbeat,
                    Action::Refresh => Step::Refresh,
                    _ => Step::Forward,
                };
                let was_offline = self.state.failures > 0;
                let result = self.step(step).await;
                let now = self.now().await?;
                match step {
                    Step::Heartbeat => self.state.last_heartbeat = Some(now),
                    Step::Refresh => self.state.last_refresh = Some(now),
                    Step::Forward => {}
                }
                if let Err(e) = &result {
                    tracing::warn!(error = %e, "sync step failed");
                }
                after(&mut self.state, &result.map(|_| ()), now, jitter());
                if was_offline && self.state.failures == 0 {
                    // Reconnected: heartbeat, refresh, then forwarding, at once (spec
                    // "Cadence"), whatever step happened to get through first.
                    tracing::info!("upstream reachable again");
                    if step != Step::Heartbeat {
                        self.state.last_heartbeat = None;
                    }
                    self.state.last_refresh = None;
                }
                self.save_state().await?;
                None
            }
        })
    }

    /// `sync` without `--once`: runs the cadence until `shutdown` resolves.
    pub async fn run_forever(
        &mut self,
        cadence: Cadence,
        shutdown: impl std::future::Future<Output = ()>,
    ) -> Result<(), UpstreamError> {
        tokio::pin!(shutdown);
        let mut announced_pause = false;
        loop {
            // Another process writes the outbox, so new events are only seen by looking.
            if let Some(d) = self.tick(cadence, &mut announced_pause).await? {
                tokio::select! {
                    _ = &mut shutdown => return Ok(()),
                    _ = tokio::time::sleep(d.min(POLL)) => {}
                }
            }
        }
    }
}

/// How often a paused sync looks whether a re-provision cleared the pause.
pub const PAUSE_RECHECK: Duration = Duration::from_secs(5);

fn local(e: StoreError) -> UpstreamError {
    UpstreamError::Local(e.to_string())
}

/// A rule-set download that cannot be written or read back: named by its directory (the
/// temporary file's name would tell the reader nothing), in the reader's language.
fn local_io(path: &std::path::Path, e: std::io::Error) -> UpstreamError {
    let dir = if path.is_dir() { path } else { path.parent().unwrap_or(path) };
    UpstreamError::DownloadFailed { dir: dir.to_owned(), error: crate::upstream::IoProblem::of(&e) }
}

fn save_state(store: &Store, state: &SyncState) -> Result<(), StoreError> {
    let failures = state.failures.to_string();
    store.set_meta(META_FAILURES, (state.failures > 0).then_some(failures.as_str()))?;
    let next = state.next_attempt.map(|t| t.as_millisecond().to_string());
    store.set_meta(META_NEXT_ATTEMPT, next.as_deref())?;
    store.set_meta(META_PAUSED, state.paused.as_deref())?;
    store.set_meta(META_LAST_ERROR, state.last_error.as_deref())?;
    Ok(())
}

/// The persisted part of the state.
pub fn load_state(store: &Store) -> Result<SyncState, StoreError> {
    Ok(SyncState {
        failures: store.meta(META_FAILURES)?.and_then(|v| v.parse().ok()).unwrap_or(0),
        next_attempt: store
            .meta(META_NEXT_ATTEMPT)?
            .and_then(|v| v.parse().ok())
            .and_then(|ms| Timestamp::from_millisecond(ms).ok()),
        paused: store.meta(META_PAUSED)?,
        last_error: store.meta(META_LAST_ERROR)?,
        last_heartbeat: None,
        last_refresh: None,
        period_permille: 0,
    })
}

/// After a (re-)provision: no pause, no backoff, no stale ETag.
pub fn reset_after_provision(agent: &Agent) -> Result<(), StoreError> {
    for key in [META_FAILURES, META_NEXT_ATTEMPT, META_PAUSED, META_LAST_ERROR, META_ETAG] {
        agent.store().set_meta(key, None)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(s: i64) -> Timestamp {
        Timestamp::from_second(1_800_000_000 + s).unwrap()
    }

    const CADENCE: Cadence = Cadence { heartbeat: Duration::from_secs(60), refresh: Duration::from_secs(300) };

    #[test]
    fn start_order_is_heartbeat_refresh_forward() {
        let mut s = SyncState::default();
        assert_eq!(next_action(&s, CADENCE, true, t(0)), Action::Heartbeat);
        s.last_heartbeat = Some(t(0));
        assert_eq!(next_action(&s, CADENCE, true, t(0)), Action::Refresh);
        s.last_refresh = Some(t(0));
        assert_eq!(next_action(&s, CADENCE, true, t(0)), Action::Forward);
        assert_eq!(next_action(&s, CADENCE, false, t(0)), Action::Wait(Duration::from_secs(60)));
        assert_eq!(next_action(&s, CADENCE, false, t(60)), Action::Heartbeat);
        s.last_heartbeat = Some(t(300));
        assert_eq!(next_action(&s, CADENCE, false, t(300)), Action::Refresh);
    }

    #[test]
    fn failures_back_off_with_full_jitter_and_retry_after() {
        assert_eq!(backoff_delay(1, 1.0, None), Duration::from_secs(1));
        assert_eq!(backoff_delay(3, 1.0, None), Duration::from_secs(4));
        assert_eq!(backoff_delay(20, 1.0, None), BACKOFF_CAP);
        assert_eq!(backoff_delay(5, 0.0, None), Duration::ZERO);
        assert_eq!(backoff_delay(1, 0.5, Some(Duration::from_secs(30))), Duration::from_secs(30));
        let mut s = SyncState::default();
        let err = UpstreamError::Retryable {
            reason: "503".into(),
            retry_after: Some(crate::upstream::RetryAfter::Delay(Duration::from_secs(7))),
        };
        after(&mut s, &Err(err), t(0), 0.0);
        assert_eq!((s.failures, s.next_attempt), (1, Some(t(7))));
        assert_eq!(next_action(&s, CADENCE, true, t(3)), Action::Wait(Duration::from_secs(4)));
        after(&mut s, &Ok(()), t(8), 0.3);
        assert_eq!((s.failures, s.next_attempt, s.last_error.clone()), (0, None, None));
    }

    #[test]
    fn a_huge_retry_after_is_capped_not_an_overflow() {
        let mut s = SyncState::default();
        let err = UpstreamError::Retryable {
            reason: "503".into(),
            retry_after: crate::upstream::RetryAfter::parse("999999999999"),
        };
        after(&mut s, &Err(err), t(0), 1.0);
        assert_eq!(s.next_attempt, Some(t(3600)));
        assert_eq!(next_action(&s, CADENCE, true, t(10)), Action::Wait(Duration::from_secs(3590)));
    }

    #[test]
    fn each_terminal_keeps_its_own_period_so_simultaneous_boots_drift_apart() {
        let mut fast = SyncState { period_permille: period_permille(0.0), ..SyncState::default() };
        let mut slow = SyncState { period_permille: period_permille(0.999), ..SyncState::default() };
        for s in [&mut fast, &mut slow] {
            s.last_heartbeat = Some(t(0));
            s.last_refresh = Some(t(0));
        }
        assert_eq!(next_action(&fast, CADENCE, false, t(54)), Action::Heartbeat);
        assert_eq!(next_action(&slow, CADENCE, false, t(54)), Action::Wait(Duration::from_millis(11_940)));
        assert_eq!(SyncState::default().period(CADENCE.heartbeat), CADENCE.heartbeat);
    }

    #[test]
    fn a_401_pauses_until_cleared() {
        let mut s = SyncState::default();
        after(&mut s, &Err(UpstreamError::Unauthorized), t(0), 0.5);
        assert_eq!(next_action(&s, CADENCE, true, t(1000)), Action::Paused(PAUSED_401.into()));
        assert!(PAUSED_401.contains("re-provision needed"));
    }

    #[test]
    fn a_400_does_not_back_off() {
        let mut s = SyncState { failures: 3, ..SyncState::default() };
        after(&mut s, &Err(UpstreamError::BadRequest("bad".into())), t(0), 0.5);
        assert_eq!(s.failures, 0);
        assert_eq!(s.next_attempt, None);
    }
}
