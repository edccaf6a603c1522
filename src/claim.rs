//! Claims at the store hub, without the hub (`spec/store-hub.md`, "What lives on the
//! hub" and "Claim before commit"): the key names made from ids, the claim's value and
//! time to live, what a lane may ask, what the hub may answer, and the outcome table
//! that turns an answer into a commit or a refusal.
//!
//! Everything here is pure: no IO, no clock. `hub` speaks NATS with these names and
//! values; `store` asks a [`Claimer`] between "the rules accept" and "commit". Names
//! are a contract between lanes (other versions, other vendors' tills share one hub),
//! so they are built here only, and pinned by tests.

use jiff::{SignedDuration, Timestamp};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use std::time::Duration;

/// Holder slots live two days: long enough for a business day in any zone.
pub const HOLDER_SLOT_TTL: Duration = Duration::from_secs(48 * 3600);
/// A coupon claim outlives the coupon's validity by a week.
pub const COUPON_CLAIM_GRACE: SignedDuration = SignedDuration::from_hours(7 * 24);
/// How far back settling looks for unconfirmed redemptions (the stream's age, too).
pub const SETTLE_WINDOW: SignedDuration = SignedDuration::from_hours(62 * 24);

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn hashed(bytes: &[u8], len: usize) -> String {
    let digest = Sha256::digest(bytes);
    hex(&digest[..len])
}

/// `c.<h>`: the first 16 bytes of SHA-256 of the coupon id's UTF-8, lowercase hex.
pub fn coupon_key(coupon_id: &str) -> String {
    format!("c.{}", hashed(coupon_id.as_bytes(), 16))
}

/// `h.<hh>.<ch>.<YYYYMMDD>.<n>`: the holder (16 bytes of its hash), the campaign (8),
/// the business day and the slot number, 1 to the campaign's limit.
pub fn holder_slot_key(holder: &[u8], campaign_id: &str, day: jiff::civil::Date, n: u64) -> String {
    format!("h.{}.{}.{}.{n}", hashed(holder, 16), hashed(campaign_id.as_bytes(), 8), day.strftime("%Y%m%d"))
}

/// The KV bucket of a store's claims.
pub fn bucket_name(store_id: &str) -> String {
    format!("redeemd-claims-{store_id}")
}

/// The stream of a store's events.
pub fn stream_name(store_id: &str) -> String {
    format!("redeemd-store-{store_id}")
}

/// The subjects of a store's stream.
pub fn stream_subjects(store_id: &str) -> String {
    format!("redeemd.{store_id}.events.>")
}

/// The subject a lane publishes its events on.
pub fn event_subject(store_id: &str, terminal_id: &str) -> String {
    format!("redeemd.{store_id}.events.{terminal_id}")
}

/// `1..max` characters of `A-Z a-z 0-9 _ -`: store ids and lanes.
pub fn is_name(text: &str, max: usize) -> bool {
    !text.is_empty() && text.len() <= max && text.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
}

/// A coupon claim lives until the later of the coupon's `not_after` and the campaign's
/// `valid_until`, plus a week; never less than a week from now.
pub fn coupon_claim_ttl(now: Timestamp, not_after: Option<Timestamp>, valid_until: Timestamp) -> Duration {
    let until = not_after.map_or(valid_until, |n| n.max(valid_until)) + COUPON_CLAIM_GRACE;
    let left = until.duration_since(now).max(COUPON_CLAIM_GRACE);
    Duration::from_secs(left.as_secs().max(1).unsigned_abs())
}

/// Who holds a claim: the value of every key in the bucket.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ClaimValue {
    pub terminal_id: String,
    pub lane: String,
    pub redemption_id: String,
    pub at: String,
}

impl ClaimValue {
    pub fn to_bytes(&self) -> Vec<u8> {
        serde_json::to_vec(self).unwrap_or_default()
    }

    /// A value another vendor's till wrote may carry more fields; one that is not a
    /// claim at all is not ours, and is never deleted by us.
    pub fn parse(bytes: &[u8]) -> Option<ClaimValue> {
        serde_json::from_slice(bytes).ok()
    }

    pub fn elsewhere(&self) -> Elsewhere {
        Elsewhere { terminal_id: self.terminal_id.clone(), lane: self.lane.clone(), at: self.at.clone() }
    }
}

/// Where a coupon (or a holder's slot) was used, as the decision record reports it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Elsewhere {
    pub terminal_id: String,
    pub lane: String,
    pub at: String,
}

/// What the lane asks before committing an acceptance.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClaimRequest {
    pub coupon_key: String,
    pub coupon_ttl: Duration,
    /// The holder's slots for this campaign and business day (None: no holder limit).
    pub holder_slots: Option<HolderSlots>,
    pub redemption_id: String,
    /// The decision's time, RFC 3339 in the rule set's zone.
    pub at: String,
}

impl ClaimRequest {
    /// The value this lane writes for the request.
    pub fn value(&self, terminal_id: &str, lane: &str) -> ClaimValue {
        ClaimValue {
            terminal_id: terminal_id.to_owned(),
            lane: lane.to_owned(),
            redemption_id: self.redemption_id.clone(),
            at: self.at.clone(),
        }
    }
}

/// Slots `1..=limit` of one holder, campaign and business day; the first free one is taken.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HolderSlots {
    prefix: String,
    pub limit: u64,
}

impl HolderSlots {
    pub fn new(holder: &[u8], campaign_id: &str, day: jiff::civil::Date, limit: u64) -> HolderSlots {
        let key = holder_slot_key(holder, campaign_id, day, 0);
        HolderSlots { prefix: key[..key.len() - 1].to_owned(), limit }
    }

    /// Slot `n` (1-based).
    pub fn key(&self, n: u64) -> String {
        format!("{}{n}", self.prefix)
    }
}

/// What the hub answered, within the budget or not.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ClaimAnswer {
    /// The coupon claim, and a holder slot when asked for, are this redemption's.
    Won { holder_slot: Option<String> },
    /// The coupon is claimed by another redemption.
    CouponTaken(ClaimValue),
    /// Every holder slot is taken (the coupon claim has been given back); the last one's value.
    SlotsTaken(ClaimValue),
    /// No answer within the budget.
    TimedOut,
    /// The lane knows the hub is unreachable: it did not ask.
    Down,
}

/// `[store] when-hub-down`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum WhenHubDown {
    #[default]
    Accept,
    Refuse,
}

/// How an acceptance was guarded (`"guard"` in the decision record).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Guard {
    /// The hub's claim was won before the commit.
    Store,
    /// The hub did not answer: the lane decided alone; settled when the hub answers.
    Local,
}

impl Guard {
    pub fn as_str(self) -> &'static str {
        match self {
            Guard::Store => "store",
            Guard::Local => "local",
        }
    }
}

/// What the lane knows of a redemption's claim (`"store"` in the daily report).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StoreState {
    Confirmed,
    Unconfirmed,
    Conflict,
}

impl StoreState {
    pub fn as_str(self) -> &'static str {
        match self {
            StoreState::Confirmed => "confirmed",
            StoreState::Unconfirmed => "unconfirmed",
            StoreState::Conflict => "conflict",
        }
    }

    pub fn parse(word: &str) -> Option<StoreState> {
        match word {
            "confirmed" => Some(StoreState::Confirmed),
            "unconfirmed" => Some(StoreState::Unconfirmed),
            "conflict" => Some(StoreState::Conflict),
            _ => None,
        }
    }
}

/// Why the hub's answer refuses a coupon the rules accept (`decision::Reason` has the
/// same three; this module stays below the decision).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal {
    AlreadyRedeemed,
    HolderDailyLimit,
    StoreUnreachable,
}

/// The outcome table: what the lane does with the hub's answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    Commit { guard: Guard, state: StoreState, holder_slot: Option<String> },
    Refuse { reason: Refusal, elsewhere: Option<Elsewhere> },
}

pub fn verdict(answer: ClaimAnswer, when_down: WhenHubDown) -> Verdict {
    match answer {
        ClaimAnswer::Won { holder_slot } => {
            Verdict::Commit { guard: Guard::Store, state: StoreState::Confirmed, holder_slot }
        }
        ClaimAnswer::CouponTaken(held) => {
            Verdict::Refuse { reason: Refusal::AlreadyRedeemed, elsewhere: Some(held.elsewhere()) }
        }
        ClaimAnswer::SlotsTaken(held) => {
            Verdict::Refuse { reason: Refusal::HolderDailyLimit, elsewhere: Some(held.elsewhere()) }
        }
        ClaimAnswer::TimedOut | ClaimAnswer::Down => match when_down {
            WhenHubDown::Accept => {
                Verdict::Commit { guard: Guard::Local, state: StoreState::Unconfirmed, holder_slot: None }
            }
            WhenHubDown::Refuse => Verdict::Refuse { reason: Refusal::StoreUnreachable, elsewhere: None },
        },
    }
}

/// Asked by the store between "the rules accept" and "commit", with a deadline.
pub trait Claimer {
    fn claim(&mut self, request: &ClaimRequest) -> ClaimAnswer;
    fn when_down(&self) -> WhenHubDown;
}

/// What settling found for one unconfirmed redemption.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Settled {
    Confirmed {
        holder_slot: Option<String>,
    },
    /// Another redemption holds the coupon, or every holder slot: a store conflict.
    Conflict(ClaimValue),
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn key_names_follow_the_contract() {
        // sha256("HZ-R5-000000001") starts 3b0c…; pinned so a change cannot slip by.
        let key = coupon_key("HZ-R5-000000001");
        assert_eq!(key.len(), 2 + 32);
        assert!(key.starts_with("c."));
        assert_eq!(key, format!("c.{}", hex(&Sha256::digest(b"HZ-R5-000000001")[..16])));
        let day = jiff::civil::date(2026, 12, 8);
        let slot = holder_slot_key(b"holder", "HZ-R5-DINING", day, 2);
        let parts: Vec<&str> = slot.split('.').collect();
        assert_eq!(parts[0], "h");
        assert_eq!(parts[1], hex(&Sha256::digest(b"holder")[..16]));
        assert_eq!(parts[2], hex(&Sha256::digest(b"HZ-R5-DINING")[..8]));
        assert_eq!(parts[3], "20261208");
        assert_eq!(parts[4], "2");
        assert_eq!(HolderSlots::new(b"holder", "HZ-R5-DINING", day, 3).key(2), slot);
        assert_eq!(bucket_name("M-1"), "redeemd-claims-M-1");
        assert_eq!(stream_name("M-1"), "redeemd-store-M-1");
        assert_eq!(stream_subjects("M-1"), "redeemd.M-1.events.>");
        assert_eq!(event_subject("M-1", "T-9"), "redeemd.M-1.events.T-9");
        // Ids never appear in clear in keys.
        assert!(!key.contains("HZ"));
    }

    #[test]
    fn a_known_digest() {
        // echo -n abc | sha256sum
        assert_eq!(coupon_key("abc"), "c.ba7816bf8f01cfea414140de5dae2223");
    }

    #[test]
    fn names_are_checked() {
        assert!(is_name("M-000123", 64));
        assert!(is_name("lane_3", 32));
        assert!(!is_name("", 32));
        assert!(!is_name("a.b", 32));
        assert!(!is_name("三", 32));
        assert!(!is_name(&"a".repeat(33), 32));
    }

    #[test]
    fn claim_ttl_is_the_later_validity_plus_a_week() {
        let now: Timestamp = "2026-12-08T00:00:00Z".parse().unwrap();
        let valid_until: Timestamp = "2026-12-31T00:00:00Z".parse().unwrap();
        let not_after: Timestamp = "2027-01-10T00:00:00Z".parse().unwrap();
        let ttl = coupon_claim_ttl(now, Some(not_after), valid_until);
        assert_eq!(ttl.as_secs(), (33 + 7) * 86400);
        assert_eq!(coupon_claim_ttl(now, None, valid_until).as_secs(), (23 + 7) * 86400);
        // Long past: still a week (a settled claim of an old redemption stays a while).
        let past: Timestamp = "2026-01-01T00:00:00Z".parse().unwrap();
        assert_eq!(coupon_claim_ttl(now, None, past).as_secs(), 7 * 86400);
    }

    #[test]
    fn the_outcome_table() {
        let held =
            ClaimValue { terminal_id: "T-1".into(), lane: "1".into(), redemption_id: "r".into(), at: "t".into() };
        let slot = Some("h.x".to_owned());
        for when in [WhenHubDown::Accept, WhenHubDown::Refuse] {
            assert_eq!(
                verdict(ClaimAnswer::Won { holder_slot: slot.clone() }, when),
                Verdict::Commit { guard: Guard::Store, state: StoreState::Confirmed, holder_slot: slot.clone() }
            );
            assert_eq!(
                verdict(ClaimAnswer::CouponTaken(held.clone()), when),
                Verdict::Refuse { reason: Refusal::AlreadyRedeemed, elsewhere: Some(held.elsewhere()) }
            );
            assert_eq!(
                verdict(ClaimAnswer::SlotsTaken(held.clone()), when),
                Verdict::Refuse { reason: Refusal::HolderDailyLimit, elsewhere: Some(held.elsewhere()) }
            );
        }
        for answer in [ClaimAnswer::TimedOut, ClaimAnswer::Down] {
            assert_eq!(
                verdict(answer.clone(), WhenHubDown::Accept),
                Verdict::Commit { guard: Guard::Local, state: StoreState::Unconfirmed, holder_slot: None }
            );
            assert_eq!(
                verdict(answer, WhenHubDown::Refuse),
                Verdict::Refuse { reason: Refusal::StoreUnreachable, elsewhere: None }
            );
        }
    }

    #[test]
    fn claim_values_round_trip_and_foreign_values_are_not_claims() {
        let v = ClaimValue { terminal_id: "T-1".into(), lane: "1".into(), redemption_id: "r".into(), at: "t".into() };
        assert_eq!(ClaimValue::parse(&v.to_bytes()), Some(v));
        assert_eq!(ClaimValue::parse(b"garbage"), None);
        let extra = br#"{"terminal_id":"X","lane":"2","redemption_id":"q","at":"t","vendor":"other"}"#;
        assert_eq!(ClaimValue::parse(extra).map(|v| v.lane), Some("2".to_owned()));
    }
}
