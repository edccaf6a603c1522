//! The daemon's side of the store hub (`spec/store-hub.md`): `[store]` resolved into
//! [`HubSettings`] (secrets checked: mode 0600), the [`Claimer`] the ledger owner asks
//! before an acceptance commits, and the work loop that, whenever the hub answers,
//! cleans up this lane's dangling claims (once per start), settles `"guard": "local"`
//! redemptions, releases the claims of voided ones and publishes outbox events in order
//! (the second cursor), and announces every change of the `hub` object.
//!
//! It keeps no state of its own that matters: what the lane knows of its claims and of
//! what it has published are rows in the ledger, written through the owner.

use super::ledger::LedgerHandle;
use super::metrics::Metrics;
use crate::claim::{self, ClaimAnswer, ClaimRequest, Claimer, HolderSlots, Settled, StoreState, WhenHubDown};
use crate::config::Config;
use crate::events::{EventBus, EventKind};
use crate::hub::{Hub, HubAuth, HubSettings};
use crate::store::{self, HubWorkRow};
use serde_json::{json, Value};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio_util::sync::CancellationToken;

/// The store's events as this lane has read them from the stream, and the store
/// conflicts it has marked on its own redemptions.
#[derive(Debug, Default)]
pub struct StoreDay {
    pub fold: tokio::sync::Mutex<crate::storeday::StoreFold>,
    marked: Mutex<std::collections::HashSet<String>>,
}

impl StoreDay {
    /// Reads what the stream holds beyond what was read; true when something was new.
    pub async fn catch_up(&self, hub: &Hub) -> Result<bool, String> {
        let mut fold = self.fold.lock().await;
        let (events, last) = hub.read_events(fold.next_sequence).await.map_err(|e| e.to_string())?;
        let mut new = false;
        for (_, payload) in &events {
            if let Ok(event) = serde_json::from_slice::<Value>(payload) {
                new |= fold.ingest(&event);
            }
        }
        fold.next_sequence = fold.next_sequence.max(last + 1);
        Ok(new)
    }

    /// The store's report of `date` (None: today), from the stream as it is now.
    pub async fn report(
        &self,
        hub: &Hub,
        ledger: &LedgerHandle,
        date: Option<jiff::civil::Date>,
    ) -> Result<crate::storeday::StoreReport, String> {
        self.catch_up(hub).await?;
        let (parts, today) =
            ledger.call(|l| (l.agent.report_parts(), l.agent.now())).await.map_err(|e| e.to_string())?;
        let date = date.unwrap_or_else(|| today.to_zoned_datetime(parts.timezone.clone()).date());
        let fold = self.fold.lock().await;
        Ok(fold.report(date, &parts.ctx(), &|c| parts.holder_limits.get(c).copied()))
    }

    /// Marks this lane's redemptions that a store conflict lists as `conflict` (the lane
    /// whose claim stood learns it here, from the other lane's events).
    async fn mark_own(&self, hub: &Hub, ledger: &LedgerHandle) -> Result<(), String> {
        let parts = ledger.call(|l| l.agent.report_parts()).await.map_err(|e| e.to_string())?;
        let conflicts = {
            let fold = self.fold.lock().await;
            fold.conflicts(&parts.ctx(), &|c| parts.holder_limits.get(c).copied())
        };
        let me = &hub.settings.terminal_id;
        let mut marks = Vec::new();
        {
            let mut marked = self.marked.lock().unwrap_or_else(|p| p.into_inner());
            for conflict in &conflicts {
                for own in conflict.redemptions.iter().filter(|m| &m.terminal_id == me) {
                    if marked.insert(own.redemption_id.clone()) {
                        let other = conflict
                            .redemptions
                            .iter()
                            .find(|m| &m.terminal_id != me || m.redemption_id != own.redemption_id);
                        let other = other.map(|m| json!({"terminal_id": m.terminal_id, "lane": m.lane, "redemption_id": m.redemption_id, "at": m.at}).to_string());
                        marks.push((own.redemption_id.clone(), other));
                    }
                }
            }
        }
        if marks.is_empty() {
            return Ok(());
        }
        ledger
            .call(move |l| {
                l.agent.write(|c, _| {
                    for (id, other) in &marks {
                        if store::has_redemption_in(c, id)? {
                            store::set_store_state_in(c, id, StoreState::Conflict, None, other.as_deref())?;
                        }
                    }
                    Ok(())
                })
            })
            .await
            .map_err(|e| e.to_string())?
            .map_err(|e| e.to_string())
    }
}

/// Rows settled or released per ledger job.
const BATCH: usize = 200;
/// Without a wake-up the loop looks this often.
const IDLE: Duration = Duration::from_millis(500);

/// `[store]` resolved: the lane's names on the hub, and its secrets' modes checked.
pub fn settings(config: &Config) -> Result<Option<HubSettings>, String> {
    let Some(settings) = HubSettings::from_config(config)? else {
        return Ok(None);
    };
    let secret = match &settings.auth {
        HubAuth::None => None,
        HubAuth::Credentials(path) => Some(path),
        HubAuth::UserPassword { password_file, .. } => Some(password_file),
    };
    if let Some(path) = secret {
        check_secret(path)?;
    }
    Ok(Some(settings))
}

/// A secret readable by anyone but the agent's user is refused (never read, never logged).
fn check_secret(path: &std::path::Path) -> Result<(), String> {
    use std::os::unix::fs::PermissionsExt;
    let meta = std::fs::metadata(path).map_err(|e| format!("cannot read {}: {e}", path.display()))?;
    let mode = meta.permissions().mode() & 0o777;
    if mode & 0o077 != 0 {
        return Err(format!(
            "{} is readable by others (mode {mode:04o}); make it the agent's only: chmod 600 {}",
            path.display(),
            path.display()
        ));
    }
    Ok(())
}

/// The ledger owner's way to the hub.
#[derive(Clone)]
pub struct HubLink {
    pub hub: Arc<Hub>,
    pub runtime: tokio::runtime::Handle,
    /// Wakes the work loop (a new event, a void).
    pub wake: Arc<tokio::sync::Notify>,
}

impl HubLink {
    pub fn claimer(&self, metrics: Arc<Metrics>) -> HubClaimer {
        HubClaimer { link: self.clone(), metrics }
    }
}

/// Claims on the owner's thread: the hub's async claim, waited for within its budget.
pub struct HubClaimer {
    link: HubLink,
    metrics: Arc<Metrics>,
}

impl Claimer for HubClaimer {
    fn claim(&mut self, request: &ClaimRequest) -> ClaimAnswer {
        let started = Instant::now();
        let answer = self.link.runtime.block_on(self.link.hub.claim(request));
        let outcome = match &answer {
            ClaimAnswer::Won { .. } => "won",
            ClaimAnswer::CouponTaken(_) | ClaimAnswer::SlotsTaken(_) => "lost",
            ClaimAnswer::TimedOut => "timeout",
            ClaimAnswer::Down => "skipped_down",
        };
        self.metrics.hub_claim(outcome, (answer != ClaimAnswer::Down).then(|| started.elapsed()));
        if matches!(answer, ClaimAnswer::TimedOut) {
            // The claim may still land: settling looks at it as soon as the hub answers.
            self.link.wake.notify_one();
        }
        answer
    }

    fn when_down(&self) -> WhenHubDown {
        self.link.hub.settings.when_down
    }
}

/// The `hub` object of `/v1/status` and of the `hub` event.
pub fn status_object(hub: Option<&Hub>, counts: (u64, u64)) -> Value {
    match hub {
        None => json!({"state": "none", "url": null, "unconfirmed": 0, "unpublished": 0, "last_error": null}),
        Some(hub) => {
            let state = hub.state();
            json!({
                "state": if state.connected { "connected" } else { "disconnected" },
                "url": hub.settings.urls.join(","),
                "unconfirmed": counts.0,
                "unpublished": counts.1,
                "last_error": state.last_error,
            })
        }
    }
}

/// The claims a `"guard": "local"` redemption settles: its coupon, and a holder slot of
/// its business day when its campaign limits holders (by the rule set in force).
fn settle_request(row: &HubWorkRow, ctx: &crate::agent::Context<'_>) -> ClaimRequest {
    let campaign = ctx.rules.and_then(|r| r.campaigns.get(&row.campaign_id));
    let valid_until = campaign.map_or(ctx.now, |c| c.valid_until);
    let day = row.at.to_zoned_datetime(ctx.timezone.clone()).date();
    ClaimRequest {
        coupon_key: claim::coupon_key(&row.coupon_id),
        coupon_ttl: claim::coupon_claim_ttl(ctx.now, None, valid_until),
        holder_slots: campaign
            .and_then(|c| c.max_per_holder_per_day)
            .map(|limit| HolderSlots::new(&row.holder, &row.campaign_id, day, limit)),
        redemption_id: row.redemption_id.clone(),
        at: ctx.rfc3339(row.at),
    }
}

/// Runs until shutdown: keeps the hub's bucket and stream found, and the lane's claims
/// and published events in step with its ledger.
pub async fn work_loop(
    link: HubLink,
    ledger: LedgerHandle,
    bus: Arc<EventBus>,
    metrics: Arc<Metrics>,
    status: Arc<Mutex<Value>>,
    day: Arc<StoreDay>,
    shutdown: CancellationToken,
) {
    let hub = link.hub.clone();
    let mut cleaned = false;
    loop {
        if hub.link_up() && !hub.state().connected {
            if let Err(e) = hub.ensure().await {
                tracing::warn!(error = %e, "the store hub is not usable");
            }
        }
        if hub.state().connected {
            if !cleaned {
                cleaned = clean_dangling(&hub, &ledger).await;
            }
            if let Err(e) = settle_and_publish(&hub, &ledger, &metrics).await {
                tracing::debug!(error = %e, "store hub work interrupted");
            }
            // The other lanes' events: a store conflict found by another lane is marked
            // here too, on this lane's own redemption.
            match day.catch_up(&hub).await {
                Ok(true) => {
                    if let Err(e) = day.mark_own(&hub, &ledger).await {
                        tracing::warn!(error = %e, "cannot mark the store's conflicts");
                    }
                }
                Ok(false) => {}
                Err(e) => tracing::debug!(error = %e, "cannot read the store's stream"),
            }
        }
        // The hub object, announced on every change.
        let counts = ledger
            .call(|l| l.agent.write(|c, _| store::hub_counts_in(c)))
            .await
            .ok()
            .and_then(Result::ok)
            .unwrap_or((0, 0));
        metrics.hub_counts(counts);
        let object = status_object(Some(&hub), counts);
        let changed = {
            let mut last = status.lock().unwrap_or_else(|p| p.into_inner());
            let changed = *last != object;
            *last = object.clone();
            changed
        };
        if changed {
            bus.publish(EventKind::Hub, object);
        }
        tokio::select! {
            _ = shutdown.cancelled() => break,
            _ = link.wake.notified() => {}
            _ = hub.changed.notified() => {}
            _ = tokio::time::sleep(IDLE) => {}
        }
    }
}

/// Deletes this lane's claims that name a redemption its ledger does not hold (the lane
/// died between claim and commit). True when done.
async fn clean_dangling(hub: &Hub, ledger: &LedgerHandle) -> bool {
    let own = match hub.own_claims().await {
        Ok(own) => own,
        Err(e) => {
            tracing::warn!(error = %e, "cannot list this lane's claims at the hub");
            return false;
        }
    };
    for (key, redemption_id) in own {
        let id = redemption_id.clone();
        let held = ledger.call(move |l| l.agent.write(|c, _| store::has_redemption_in(c, &id))).await;
        if let Ok(Ok(false)) = held {
            match hub.release(&key, &redemption_id).await {
                Ok(_) => tracing::info!(%redemption_id, "removed a dangling claim of this lane"),
                Err(e) => {
                    tracing::warn!(error = %e, "cannot remove a dangling claim");
                    return false;
                }
            }
        }
    }
    true
}

async fn settle_and_publish(hub: &Hub, ledger: &LedgerHandle, metrics: &Metrics) -> Result<(), String> {
    // 1. Settle and release, in batches.
    loop {
        let work = ledger
            .call(|l| {
                l.agent.write(|c, ctx| {
                    let since = ctx.now - claim::SETTLE_WINDOW;
                    let work = store::hub_work_in(c, since, BATCH)?;
                    let requests: Vec<ClaimRequest> = work.unconfirmed.iter().map(|r| settle_request(r, ctx)).collect();
                    Ok((work, requests))
                })
            })
            .await
            .map_err(|e| e.to_string())?
            .map_err(|e| e.to_string())?;
        let (work, requests) = work;
        if work.unconfirmed.is_empty() && work.releases.is_empty() {
            break;
        }
        let mut settled = Vec::new();
        for request in &requests {
            match hub.settle(request).await {
                Ok(result) => {
                    let outcome = if matches!(result, Settled::Confirmed { .. }) { "won" } else { "lost" };
                    metrics.hub_claim(outcome, None);
                    settled.push((request.redemption_id.clone(), result))
                }
                Err(e) => {
                    save_settled(ledger, settled).await?;
                    return Err(e.to_string());
                }
            }
        }
        let mut released = Vec::new();
        for row in &work.releases {
            let mut done = hub.release(&claim::coupon_key(&row.coupon_id), &row.redemption_id).await;
            if let (Ok(true), Some(slot)) = (&done, &row.holder_slot) {
                done = hub.release(slot, &row.redemption_id).await;
            }
            match done {
                Ok(true) => released.push(row.redemption_id.clone()),
                Ok(false) => {}
                Err(e) => {
                    save_settled(ledger, settled).await?;
                    save_released(ledger, released).await?;
                    return Err(e.to_string());
                }
            }
        }
        let full = work.unconfirmed.len() == BATCH || work.releases.len() == BATCH;
        save_settled(ledger, settled).await?;
        save_released(ledger, released).await?;
        if !full {
            break;
        }
    }
    // 2. Publish, oldest first; the cursor moves after each acknowledged batch.
    let identity = (hub.settings.terminal_id.clone(), hub.settings.lane.clone());
    loop {
        let batch = ledger
            .call(|l| l.agent.write(|c, _| store::unpublished_in(c, BATCH)))
            .await
            .map_err(|e| e.to_string())?
            .map_err(|e| e.to_string())?;
        if batch.is_empty() {
            return Ok(());
        }
        let mut last = None;
        let mut failure = None;
        for (seq, event_id, body) in &batch {
            let body = stream_body(body, &identity.0, &identity.1);
            match hub.publish(event_id, body).await {
                Ok(()) => last = Some(*seq),
                Err(e) => {
                    failure = Some(e.to_string());
                    break;
                }
            }
        }
        if let Some(seq) = last {
            ledger
                .call(move |l| l.agent.write(|c, _| store::set_published_in(c, seq)))
                .await
                .map_err(|e| e.to_string())?
                .map_err(|e| e.to_string())?;
        }
        if let Some(e) = failure {
            return Err(e);
        }
    }
}

/// An outbox event as the stream carries it: upstream's JSON plus who published it.
fn stream_body(body: &str, terminal_id: &str, lane: &str) -> Vec<u8> {
    match serde_json::from_str::<Value>(body) {
        Ok(mut event) => {
            event["terminal_id"] = json!(terminal_id);
            event["lane"] = json!(lane);
            event.to_string().into_bytes()
        }
        Err(_) => body.as_bytes().to_vec(),
    }
}

async fn save_settled(ledger: &LedgerHandle, settled: Vec<(String, Settled)>) -> Result<(), String> {
    if settled.is_empty() {
        return Ok(());
    }
    ledger
        .call(move |l| {
            l.agent.write(|c, _| {
                for (id, result) in &settled {
                    match result {
                        Settled::Confirmed { holder_slot } => {
                            store::set_store_state_in(c, id, StoreState::Confirmed, holder_slot.as_deref(), None)?
                        }
                        Settled::Conflict(held) => {
                            tracing::warn!(redemption_id = %id, lane = %held.lane, "store conflict: the coupon was also accepted at another lane");
                            let other = serde_json::to_string(held).unwrap_or_default();
                            store::set_store_state_in(c, id, StoreState::Conflict, None, Some(&other))?
                        }
                    }
                }
                Ok(())
            })
        })
        .await
        .map_err(|e| e.to_string())?
        .map_err(|e| e.to_string())
}

async fn save_released(ledger: &LedgerHandle, released: Vec<String>) -> Result<(), String> {
    if released.is_empty() {
        return Ok(());
    }
    ledger
        .call(move |l| {
            l.agent.write(|c, _| {
                for id in &released {
                    store::mark_released_in(c, id)?;
                }
                Ok(())
            })
        })
        .await
        .map_err(|e| e.to_string())?
        .map_err(|e| e.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn events_on_the_stream_say_who_published_them() {
        let body = stream_body(r#"{"event_id":"e1","type":"redeem"}"#, "T-1", "3");
        let event: Value = serde_json::from_slice(&body).unwrap();
        assert_eq!(event["terminal_id"], "T-1");
        assert_eq!(event["lane"], "3");
        assert_eq!(event["event_id"], "e1");
    }

    #[test]
    fn a_terminal_without_a_hub_says_none() {
        let object = status_object(None, (0, 0));
        assert_eq!(object["state"], "none");
        assert!(object["url"].is_null());
    }
}
