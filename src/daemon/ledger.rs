//! The ledger owner: the one thread of the daemon that touches SQLite. Everything that
//! reads or writes the ledger — API calls, scans, the forwarder's marks, rule-set
//! installs — arrives here as a job on a channel and runs in turn on this thread's
//! [`Agent`], so no rusqlite call ever blocks a tokio worker and writes never contend.
//!
//! Each operation is one transaction; its events are published and the forwarder is
//! woken only after the commit, so whoever hears of an acceptance can rely on it being on
//! disk. Idempotent answers are stored in the transaction of the change they report.
//! When no job has come for a moment the owner checkpoints the WAL, then sleeps until the
//! next job (no timer ticks while idle). It owns no HTTP and no scanner IO.

use crate::agent::{Agent, Context};
use crate::daemon::metrics::Metrics;
use crate::events::{EventBus, EventKind};
use crate::money::Money;
use crate::store::{self, CheckoutRef, CheckoutRow, CheckoutStatus, StoreError, StoredAnswer, VoidBy, VoidOutcome};
use rusqlite::Connection;
use serde_json::{json, Value};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::{self, RecvTimeoutError};
use std::sync::Arc;
use std::time::{Duration, Instant};
use thiserror::Error;

/// After this long without a job, the owner checkpoints the WAL.
const IDLE_CHECKPOINT: Duration = Duration::from_millis(500);

type Job = Box<dyn FnOnce(&mut Ledger) + Send>;

#[derive(Debug, Error, Clone, Copy, PartialEq, Eq)]
#[error("the ledger is shutting down")]
pub struct Gone;

/// The owner's state: the agent and what it tells the rest of the daemon.
pub struct Ledger {
    pub agent: Agent,
    pub bus: Arc<EventBus>,
    pub metrics: Arc<Metrics>,
    /// Woken after every commit that adds an outbox event.
    pub forwarder: Arc<tokio::sync::Notify>,
    /// The store hub, when `[store]` is configured: asked before every acceptance commits.
    pub hub: Option<super::hubwork::HubLink>,
    stop: bool,
}

/// A cheap, cloneable way to run jobs on the owner.
#[derive(Clone)]
pub struct LedgerHandle {
    jobs: mpsc::Sender<Job>,
    /// Jobs finished so far: the watchdog's proof of life.
    done: Arc<AtomicU64>,
}

impl std::fmt::Debug for LedgerHandle {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LedgerHandle").finish_non_exhaustive()
    }
}

impl LedgerHandle {
    /// Runs `f` on the owner and waits for its result without blocking the runtime.
    pub async fn call<R: Send + 'static>(&self, f: impl FnOnce(&mut Ledger) -> R + Send + 'static) -> Result<R, Gone> {
        let (tx, rx) = tokio::sync::oneshot::channel();
        self.jobs.send(Box::new(move |ledger| drop(tx.send(f(ledger))))).map_err(|_| Gone)?;
        rx.await.map_err(|_| Gone)
    }

    /// The same from a plain thread (the scanner bridge).
    pub fn call_blocking<R: Send + 'static>(
        &self,
        f: impl FnOnce(&mut Ledger) -> R + Send + 'static,
    ) -> Result<R, Gone> {
        let (tx, rx) = mpsc::sync_channel(1);
        self.jobs.send(Box::new(move |ledger| drop(tx.send(f(ledger))))).map_err(|_| Gone)?;
        rx.recv().map_err(|_| Gone)
    }

    /// Jobs completed since start.
    pub fn jobs_done(&self) -> u64 {
        self.done.load(Ordering::Relaxed)
    }

    /// Asks the owner to finish the job in hand and those already queued, then stop.
    pub fn stop(&self) {
        let _ = self.jobs.send(Box::new(|ledger| ledger.stop = true));
    }
}

/// Starts the owner thread.
pub fn spawn(
    agent: Agent,
    bus: Arc<EventBus>,
    metrics: Arc<Metrics>,
    forwarder: Arc<tokio::sync::Notify>,
    hub: Option<super::hubwork::HubLink>,
) -> std::io::Result<(LedgerHandle, std::thread::JoinHandle<()>)> {
    let (jobs, rx) = mpsc::channel::<Job>();
    let done = Arc::new(AtomicU64::new(0));
    let counter = done.clone();
    let mut ledger = Ledger { agent, bus, metrics, forwarder, hub, stop: false };
    let thread = std::thread::Builder::new().name("ledger".into()).spawn(move || {
        let mut dirty = false;
        loop {
            let job = if dirty {
                match rx.recv_timeout(IDLE_CHECKPOINT) {
                    Ok(job) => job,
                    Err(RecvTimeoutError::Timeout) => {
                        if let Err(e) = ledger.agent.store().checkpoint() {
                            tracing::warn!(error = %e, "WAL checkpoint failed");
                        }
                        dirty = false;
                        continue;
                    }
                    Err(RecvTimeoutError::Disconnected) => break,
                }
            } else {
                match rx.recv() {
                    Ok(job) => job,
                    Err(_) => break,
                }
            };
            let before = ledger.agent.installed().map(|i| i.rules.version);
            ledger.notice_changes_elsewhere();
            job(&mut ledger);
            // Whoever installed it (the forwarder's refresh, or the command line), a new
            // rule set is announced once, here.
            let after = ledger.agent.installed().map(|i| i.rules.version);
            if after != before {
                tracing::info!(?before, ?after, "rule set in force changed");
                ledger.bus.publish(EventKind::Ruleset, json!({"version": after}));
            }
            counter.fetch_add(1, Ordering::Relaxed);
            dirty = true;
            if ledger.stop {
                break;
            }
        }
        let _ = ledger.agent.store().checkpoint();
        tracing::info!("ledger owner stopped");
    })?;
    Ok((LedgerHandle { jobs, done }, thread))
}

/// Where a code came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Source {
    Scanner,
    Api,
}

impl Source {
    pub fn as_str(self) -> &'static str {
        match self {
            Source::Scanner => "scanner",
            Source::Api => "api",
        }
    }
}

/// An HTTP-shaped answer, so that it can be stored and replayed verbatim.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Answer {
    pub status: u16,
    pub content_type: &'static str,
    pub body: String,
}

pub const JSON: &str = "application/json";
pub const CSV: &str = "text/csv; charset=utf-8";

impl Answer {
    pub fn json(status: u16, body: &Value) -> Answer {
        Answer { status, content_type: JSON, body: body.to_string() }
    }

    pub fn error(status: u16, code: &str, message: impl Into<String>) -> Answer {
        Answer::json(status, &json!({"error": {"code": code, "message": message.into()}}))
    }

    fn internal(e: &StoreError) -> Answer {
        tracing::error!(error = %e, "ledger operation failed");
        Answer::error(500, "internal", format!("the ledger could not complete this: {e}"))
    }
}

/// The `Idempotency-Key` of a POST and the fingerprint of what it asked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Idempotency {
    pub key: String,
    pub fingerprint: [u8; 32],
}

impl Idempotency {
    pub fn new(key: &str, method: &str, path: &str, body: &[u8]) -> Idempotency {
        let mut material = Vec::with_capacity(method.len() + path.len() + body.len() + 2);
        for part in [method.as_bytes(), b"\n", path.as_bytes(), b"\n", body] {
            material.extend_from_slice(part);
        }
        Idempotency { key: key.to_owned(), fingerprint: crate::secret::sha256(&material) }
    }
}

type Events = Vec<(EventKind, Value)>;

/// An answer, and whether the transaction behind it committed: only then may anyone be
/// told what it decided (a beep, a metric, a wake-up).
struct Committed {
    answer: Answer,
    committed: bool,
}

/// What a scan from the scanner did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ScanOutcome {
    NoCheckout,
    Accepted,
    Refused,
}

/// The manager's page's data, read in one job.
#[derive(Debug)]
pub struct ManagerView {
    pub date: jiff::civil::Date,
    /// Today in the rule set's zone (the page follows the events only for today).
    pub today: jiff::civil::Date,
    pub report: crate::report::DailyReport,
    pub status: LedgerStatus,
    pub campaigns: Option<usize>,
    pub digits: u32,
    /// Open checkouts older than an hour: (id, opened at, basket total).
    pub open_old: Vec<(String, String, Money)>,
}

/// The status fields the ledger knows.
#[derive(Debug, Clone, PartialEq)]
pub struct LedgerStatus {
    pub ruleset: Option<Value>,
    pub unsynced: u64,
    pub unsynced_value: Money,
    pub last_sync: Option<String>,
    pub last_sync_age_s: Option<i64>,
    pub ruleset_age_s: Option<i64>,
    pub clock_warning: Option<String>,
    pub current_checkout: Option<String>,
    /// Why the stored rule set is not in force (tables that do not match its signed text).
    pub ruleset_problem: Option<String>,
}

impl Ledger {
    /// The hub's work loop looks at once: a new event to publish, a claim to settle or release.
    fn wake_hub(&self) {
        if let Some(link) = &self.hub {
            link.wake.notify_one();
        }
    }

    /// A rule set imported by the command line beside the running daemon takes effect
    /// at the next job.
    fn notice_changes_elsewhere(&mut self) {
        match self.agent.changed_elsewhere() {
            // Another process wrote (an import, `outbox retry`, a command-line redeem):
            // the forwarder looks at once instead of at its next heartbeat.
            Ok(true) => {
                self.forwarder.notify_one();
                self.wake_hub();
                if let Err(e) = self.agent.reload_if_changed_elsewhere() {
                    tracing::warn!(error = %e, "cannot reload the rule set changed by another process");
                }
            }
            Ok(false) => {}
            Err(e) => tracing::warn!(error = %e, "cannot check the ledger for outside changes"),
        }
    }

    /// One transaction: replays or refuses a reused idempotency key, else runs `op`,
    /// stores its answer under the key, commits, and only then publishes its events.
    fn transact(
        &mut self,
        idempotency: Option<&Idempotency>,
        op: impl FnOnce(&Connection, &Context<'_>) -> Result<(Answer, Events), StoreError>,
    ) -> Committed {
        let result = self.agent.write(|c, ctx| {
            if let Some(idem) = idempotency {
                if let Some(stored) = store::idempotent_answer_in(c, &idem.key)? {
                    if stored.fingerprint == idem.fingerprint {
                        let content_type = if stored.body.starts_with('{') { JSON } else { CSV };
                        return Ok((Answer { status: stored.status, content_type, body: stored.body }, Vec::new()));
                    }
                    let reused = Answer::error(
                        422,
                        "idempotency_key_reused",
                        "this Idempotency-Key was used for another request (path or body differ); use a new key",
                    );
                    return Ok((reused, Vec::new()));
                }
            }
            let (answer, events) = op(c, ctx)?;
            if let Some(idem) = idempotency {
                let stored = StoredAnswer {
                    fingerprint: idem.fingerprint.to_vec(),
                    status: answer.status,
                    body: answer.body.clone(),
                };
                store::put_idempotent_answer_in(c, &idem.key, &stored, ctx.now)?;
            }
            Ok((answer, events))
        });
        match result {
            Ok((answer, events)) => {
                for (kind, data) in events {
                    self.bus.publish(kind, data);
                }
                Committed { answer, committed: true }
            }
            Err(e) => Committed { answer: Answer::internal(&e), committed: false },
        }
    }

    pub fn open_checkout(
        &mut self,
        basket_total: Money,
        eligible_total: Option<Money>,
        pos_ref: Option<String>,
        idempotency: Option<&Idempotency>,
    ) -> Answer {
        self.transact(idempotency, |c, ctx| {
            let id = store::open_checkout_in(c, basket_total, eligible_total, pos_ref.as_deref(), ctx.now)?;
            let row =
                store::checkout_in(c, &id)?.ok_or_else(|| StoreError::Corrupt(format!("checkout {id} vanished")))?;
            let body = checkout_json(&row, ctx);
            Ok((Answer::json(201, &body), vec![(EventKind::Checkout, body)]))
        })
        .answer
    }

    pub fn checkout(&mut self, id: &str) -> Answer {
        let result = self.agent.write(|c, ctx| Ok(store::checkout_in(c, id)?.map(|row| checkout_json(&row, ctx))));
        match result {
            Ok(Some(body)) => Answer::json(200, &body),
            Ok(None) => not_found("checkout", id),
            Err(e) => Answer::internal(&e),
        }
    }

    /// A code for a checkout (`None`: the current one, for the scanner).
    pub fn present(
        &mut self,
        checkout_id: Option<&str>,
        code: &str,
        source: Source,
        idempotency: Option<&Idempotency>,
    ) -> (Answer, ScanOutcome) {
        let started = Instant::now();
        let mut outcome = ScanOutcome::NoCheckout;
        let mut wrote_event = false;
        let mut reason: Option<&'static str> = None;
        let mut claimer = self.hub.as_ref().map(|link| link.claimer(self.metrics.clone()));
        let answer = self.transact(idempotency, |c, ctx| {
            let id = match checkout_id {
                Some(id) => id.to_owned(),
                None => match store::current_checkout_in(c)? {
                    Some(id) => id,
                    None => {
                        let data =
                            json!({"ignored": "no_checkout", "source": source.as_str(), "at": ctx.rfc3339(ctx.now)});
                        return Ok((
                            Answer::error(409, "no_checkout", "no open checkout"),
                            vec![(EventKind::Scan, data)],
                        ));
                    }
                },
            };
            let Some(row) = store::checkout_in(c, &id)? else {
                return Ok((not_found("checkout", &id), Vec::new()));
            };
            if row.status != CheckoutStatus::Open {
                return Ok((closed(&row), Vec::new()));
            }
            let claimer = claimer.as_mut().map(|c| c as &mut dyn crate::claim::Claimer);
            let recorded =
                store::present_in(c, CheckoutRef::Existing(&id), code, ctx.terminal, ctx.rules, ctx.now, claimer)?;
            let mut record = ctx.record(&recorded.decision, recorded.redemption_id.clone());
            let mut messages = serde_json::Map::new();
            if !recorded.decision.accepted() {
                let coupon_id = recorded.decision.coupon.as_ref().map(|c| c.coupon_id.as_str());
                let (redeemed_at, unsynced) = store::refusal_facts_in(c, coupon_id)?;
                let situation = crate::advice::Situation {
                    eligible_total: row.eligible_total,
                    accepted_discount: row.discount_total,
                    redeemed_at,
                    unsynced,
                    now: Some(ctx.now),
                };
                // The basket limit names the coupons that hold it.
                let held = if recorded.decision.reason() == Some(crate::decision::Reason::BasketLimit) {
                    held_coupons(c, &row)?
                } else {
                    Vec::new()
                };
                let words = |language| {
                    let basket = crate::advice::basket_limit(language, ctx.rules, &held);
                    basket
                        .unwrap_or_else(|| crate::advice::message(language, &recorded.decision, ctx.rules, &situation))
                };
                record.message = words(ctx.language);
                // The same advice in every language, so a page in another language than
                // the terminal's keeps the details (amount short, expiry, time used).
                for language in crate::messages::Language::ALL {
                    messages.insert(language.tag().to_owned(), json!(words(language)));
                }
            }
            let mut record = serde_json::to_value(record).map_err(|e| StoreError::Corrupt(e.to_string()))?;
            if !messages.is_empty() {
                record["messages"] = Value::Object(std::mem::take(&mut messages));
            }
            // The campaign's name in every language the pages speak, as the rule set has it.
            let campaign = recorded.decision.coupon.as_ref().and_then(|c| ctx.rules?.campaigns.get(&c.campaign_id));
            if let Some(campaign) = campaign {
                let names = crate::messages::Language::ALL
                    .iter()
                    .map(|l| (l.tag().to_owned(), json!(campaign.display_name(l.tag()))))
                    .collect::<serde_json::Map<_, _>>();
                record["campaign_names"] = Value::Object(names);
            }
            record["source"] = json!(source.as_str());
            record["at"] = json!(ctx.rfc3339(ctx.now));
            store::log_decision_in(c, &id, source.as_str(), ctx.now, &record.to_string())?;
            outcome = if recorded.decision.accepted() { ScanOutcome::Accepted } else { ScanOutcome::Refused };
            wrote_event = recorded.redemption_id.is_some();
            reason = Some(recorded.decision.reason().map_or("accepted", |r| r.as_str()));
            let mut event = record.clone();
            event["checkout_id"] = json!(id);
            Ok((Answer::json(200, &record), vec![(EventKind::Decision, event)]))
        });
        let Committed { answer, committed } = answer;
        if !committed {
            // Nothing is on disk: the scanner beeps bad-read, whatever was decided.
            return (answer, ScanOutcome::Refused);
        }
        if let Some(reason) = reason {
            self.metrics.decision(reason, started.elapsed());
        }
        if wrote_event {
            self.forwarder.notify_one();
            self.wake_hub();
        }
        (answer, outcome)
    }

    /// Corrects the amounts of an open checkout that holds no accepted, unvoided coupon
    /// (`POST /v1/checkouts/{id}/amounts`).
    pub fn set_amounts(
        &mut self,
        id: &str,
        basket_total: Money,
        eligible_total: Option<Money>,
        idempotency: Option<&Idempotency>,
    ) -> Answer {
        self.transact(idempotency, |c, ctx| {
            let Some(row) = store::checkout_in(c, id)? else {
                return Ok((not_found("checkout", id), Vec::new()));
            };
            if row.status != CheckoutStatus::Open {
                return Ok((closed(&row), Vec::new()));
            }
            if !store::live_redemptions_in(c, id)?.is_empty() {
                return Ok((
                    Answer::error(
                        409,
                        "checkout_has_coupons",
                        format!("checkout {id} holds an accepted coupon: cancel it and open a new one"),
                    ),
                    Vec::new(),
                ));
            }
            store::set_checkout_amounts_in(c, id, basket_total, eligible_total)?;
            let row =
                store::checkout_in(c, id)?.ok_or_else(|| StoreError::Corrupt(format!("checkout {id} vanished")))?;
            let body = checkout_json(&row, ctx);
            Ok((Answer::json(200, &body), vec![(EventKind::Checkout, body)]))
        })
        .answer
    }

    /// Closes a checkout; `only_current` (a cashier) may cancel only the current one,
    /// since cancelling voids its redemptions.
    pub fn close(
        &mut self,
        id: &str,
        status: CheckoutStatus,
        only_current: bool,
        idempotency: Option<&Idempotency>,
    ) -> Answer {
        let mut voided_any = false;
        let answer = self.transact(idempotency, |c, ctx| {
            let Some(row) = store::checkout_in(c, id)? else {
                return Ok((not_found("checkout", id), Vec::new()));
            };
            if only_current
                && status == CheckoutStatus::Cancelled
                && row.status == CheckoutStatus::Open
                && store::current_checkout_in(c)?.as_deref() != Some(id)
            {
                return Ok((
                    Answer::error(
                        403,
                        "manager_required",
                        "only the manager cancels a checkout other than the current one",
                    ),
                    Vec::new(),
                ));
            }
            if row.status == status {
                return Ok((Answer::json(200, &checkout_json(&row, ctx)), Vec::new()));
            }
            if row.status != CheckoutStatus::Open {
                return Ok((closed(&row), Vec::new()));
            }
            if status == CheckoutStatus::Cancelled {
                for redemption in store::live_redemptions_in(c, id)? {
                    store::void_in(
                        c,
                        &redemption,
                        Some("checkout cancelled"),
                        VoidBy::Checkout,
                        &ctx.timezone,
                        ctx.now,
                    )?;
                    voided_any = true;
                }
            }
            store::close_checkout_in(c, id, status, ctx.now)?;
            let row =
                store::checkout_in(c, id)?.ok_or_else(|| StoreError::Corrupt(format!("checkout {id} vanished")))?;
            let body = checkout_json(&row, ctx);
            Ok((Answer::json(200, &body), vec![(EventKind::Checkout, body)]))
        });
        if voided_any && answer.committed {
            self.forwarder.notify_one();
            self.wake_hub();
        }
        answer.answer
    }

    /// Voids a redemption, recorded as `by`'s; a cashier's only inside the current checkout.
    pub fn void(
        &mut self,
        redemption_id: &str,
        reason: Option<String>,
        by: VoidBy,
        idempotency: Option<&Idempotency>,
    ) -> Answer {
        let mut voided = false;
        let answer = self.transact(idempotency, |c, ctx| {
            if by == VoidBy::Cashier {
                let checkout = store::redemption_checkout_in(c, redemption_id)?;
                if checkout.is_some() && checkout != store::current_checkout_in(c)? {
                    return Ok((
                        Answer::error(403, "manager_required", "only the manager voids outside the current checkout"),
                        Vec::new(),
                    ));
                }
            }
            let body = json!({"redemption_id": redemption_id, "voided": true});
            match store::void_in(c, redemption_id, reason.as_deref(), by, &ctx.timezone, ctx.now)? {
                VoidOutcome::NotFound => Ok((not_found("redemption", redemption_id), Vec::new())),
                VoidOutcome::AlreadyVoided { .. } => Ok((Answer::json(200, &body), Vec::new())),
                VoidOutcome::Voided { .. } => {
                    voided = true;
                    Ok((Answer::json(200, &body), Vec::new()))
                }
            }
        });
        if voided && answer.committed {
            self.forwarder.notify_one();
            self.wake_hub();
        }
        answer.answer
    }

    pub fn report(&mut self, date: Option<jiff::civil::Date>, csv: bool) -> Answer {
        let date = date.unwrap_or_else(|| self.agent.now().to_zoned_datetime(self.agent.timezone()).date());
        let tz = self.agent.timezone();
        if date.to_zoned_datetime(tz.clone()).is_err() || date.tomorrow().and_then(|d| d.to_zoned_datetime(tz)).is_err()
        {
            return Answer::error(400, "bad_date", format!("date {date} is out of range"));
        }
        match self.agent.daily_report(date) {
            Ok(report) if csv => Answer { status: 200, content_type: CSV, body: report.to_csv() },
            Ok(report) => Answer { status: 200, content_type: JSON, body: report.to_json() },
            Err(e) => Answer::internal(&e),
        }
    }

    /// What the manager's page shows: the day's report and the terminal's state.
    /// The reports of `from..=to` (at most 62 days), for the spreadsheet export.
    pub fn reports_between(
        &mut self,
        from: jiff::civil::Date,
        to: jiff::civil::Date,
    ) -> Result<Vec<crate::report::DailyReport>, String> {
        if from > to {
            return Err(format!("from {from} is after to {to}"));
        }
        let days = from.until(to).map(|span| span.get_days()).unwrap_or(i32::MAX);
        if days >= 62 {
            return Err(format!("{from} to {to} is over 62 days"));
        }
        let tz = self.agent.timezone();
        let mut reports = Vec::new();
        let mut date = from;
        loop {
            if date.to_zoned_datetime(tz.clone()).is_err()
                || date.tomorrow().and_then(|d| d.to_zoned_datetime(tz.clone())).is_err()
            {
                return Err(format!("date {date} is out of range"));
            }
            reports.push(self.agent.daily_report(date).map_err(|e| e.to_string())?);
            if date >= to {
                return Ok(reports);
            }
            date = date.tomorrow().map_err(|e| e.to_string())?;
        }
    }

    pub fn manager_view(&mut self, date: Option<jiff::civil::Date>) -> Result<ManagerView, String> {
        let tz = self.agent.timezone();
        let now = self.agent.now();
        let today = now.to_zoned_datetime(tz.clone()).date();
        let date = date.unwrap_or(today);
        if date.to_zoned_datetime(tz.clone()).is_err()
            || date.tomorrow().and_then(|d| d.to_zoned_datetime(tz.clone())).is_err()
        {
            return Err(format!("date {date} is out of range"));
        }
        let report = self.agent.daily_report(date).map_err(|e| e.to_string())?;
        let status = self.status().map_err(|e| e.to_string())?;
        let cutoff = now - jiff::SignedDuration::from_hours(1);
        let open_old = self
            .agent
            .store()
            .open_checkouts_before(cutoff)
            .map_err(|e| e.to_string())?
            .into_iter()
            .map(|(id, at, basket)| (id, crate::clock::rfc3339(at, &tz), basket))
            .collect();
        let installed = self.agent.installed().map(|i| &i.rules);
        Ok(ManagerView {
            date,
            today,
            report,
            status,
            campaigns: installed.map(|r| r.campaigns.len()),
            digits: self.agent.currency_digits(),
            open_old,
        })
    }

    pub fn status(&mut self) -> Result<LedgerStatus, StoreError> {
        let now = self.agent.now();
        let tz = self.agent.timezone();
        let store = self.agent.store();
        let unsynced = store.unsynced()?;
        let last_contact = store.last_contact()?;
        let skew = store.meta(crate::store::META_CLOCK_SKEW)?.and_then(|s| s.parse::<i64>().ok());
        let current_checkout = store.current_checkout()?;
        let rules = self.agent.installed().map(|i| &i.rules);
        let mut clock_warning = skew.map(|s| {
            format!(
                "this terminal's clock is {s:+} s off upstream's (more than {} s): fix the time",
                crate::clock::CLOCK_SKEW_LIMIT
            )
        });
        if let Some(r) = rules.filter(|r| now < r.issued_at - jiff::SignedDuration::from_secs(300)) {
            clock_warning = Some(format!(
                "this terminal's clock is before the rule set was issued ({}): fix the time",
                crate::clock::rfc3339(r.issued_at, &tz)
            ));
        }
        Ok(LedgerStatus {
            ruleset: rules.map(|r| {
                json!({
                    "version": r.version,
                    "issued_at": crate::clock::rfc3339(r.issued_at, &tz),
                    "expires_at": crate::clock::rfc3339(r.expires_at, &tz),
                    "age_seconds": (now - r.issued_at).as_secs(),
                })
            }),
            ruleset_age_s: rules.map(|r| (now - r.issued_at).as_secs()),
            unsynced: unsynced.count,
            unsynced_value: unsynced.value,
            last_sync: last_contact.map(|t| crate::clock::rfc3339(t, &tz)),
            last_sync_age_s: last_contact.map(|t| (now - t).as_secs()),
            clock_warning,
            current_checkout,
            ruleset_problem: self.agent.ruleset_problem().map(str::to_owned),
        })
    }
}

/// The accepted, unvoided coupons of a checkout as (campaign id, discount), from its
/// logged decisions.
fn held_coupons(c: &Connection, row: &CheckoutRow) -> Result<Vec<(String, Money)>, StoreError> {
    let live = store::live_redemptions_in(c, &row.id)?;
    Ok(row
        .decisions
        .iter()
        .filter_map(|d| serde_json::from_str::<Value>(d).ok())
        .filter(|d| d["redemption_id"].as_str().is_some_and(|r| live.iter().any(|l| l == r)))
        .filter_map(|d| Some((d["campaign_id"].as_str()?.to_owned(), Money(d["discount"].as_i64()?))))
        .collect())
}

fn not_found(what: &str, id: &str) -> Answer {
    Answer::error(404, "not_found", format!("no {what} {id:?}"))
}

fn closed(row: &CheckoutRow) -> Answer {
    Answer::error(409, "checkout_closed", format!("checkout {} is already {}", row.id, row.status.as_str()))
}

/// The checkout as the local API shows it.
pub fn checkout_json(row: &CheckoutRow, ctx: &Context<'_>) -> Value {
    let decisions: Vec<Value> = row.decisions.iter().filter_map(|d| serde_json::from_str(d).ok()).collect();
    json!({
        "checkout_id": row.id,
        "status": row.status.as_str(),
        "basket_total": row.basket_total.0,
        "eligible_total": row.eligible_total.0,
        "pos_ref": row.pos_ref,
        "opened_at": ctx.rfc3339(row.opened_at),
        "discount_total": row.discount_total.0,
        "decisions": decisions,
    })
}
