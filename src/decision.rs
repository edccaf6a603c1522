//! The offline decision (`spec/ruleset.md`, "The decision"): one pure function that reads
//! the checks top to bottom in the spec's order and returns the first failing [`Reason`],
//! or an acceptance with its discount — for a `CP1` code and for a `CP2` presentation
//! (`spec/presentation.md`) alike: the decision is about the coupon, the presentation adds
//! its signature, `presentation_required` and its time window.
//!
//! It does no IO and reads no clock: `now`, the rule set and a [`LedgerView`] of what the
//! ledger holds are passed in. It never records anything; the store does that with the
//! [`Decision`] it returns.

use crate::coupon::{self, AlgId, Coupon, Shown};
use crate::keys::b64url_encode;
use crate::money::Money;
use crate::ruleset::{CampaignStatus, PresentationPolicy, RuleSet};
use jiff::{SignedDuration, Timestamp};

/// Why a coupon is refused; `as_str()` is the spec's reason code.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Reason {
    Malformed,
    NoRuleset,
    UnknownKey,
    BadSignature,
    ClockInvalid,
    RulesetStale,
    UnknownCampaign,
    PresentationRequired,
    PresentationExpired,
    Revoked,
    AlreadyRedeemed,
    CampaignPaused,
    CampaignEnded,
    NotYetValid,
    Expired,
    OutsideHours,
    MerchantNotEligible,
    CategoryNotEligible,
    BelowMinSpend,
    BasketLimit,
    HolderDailyLimit,
    OfflineLimit,
    /// Only with a store hub set to refuse when it does not answer (`spec/store-hub.md`).
    StoreUnreachable,
}

impl Reason {
    /// What the cashier reads for this refusal (`reason.<code>` of the message tables).
    pub fn text(self, language: crate::messages::Language) -> &'static str {
        crate::messages::text(language, &format!("reason.{}", self.as_str()))
    }

    pub const ALL: [Reason; 23] = [
        Reason::Malformed,
        Reason::NoRuleset,
        Reason::UnknownKey,
        Reason::BadSignature,
        Reason::ClockInvalid,
        Reason::RulesetStale,
        Reason::UnknownCampaign,
        Reason::PresentationRequired,
        Reason::PresentationExpired,
        Reason::Revoked,
        Reason::AlreadyRedeemed,
        Reason::CampaignPaused,
        Reason::CampaignEnded,
        Reason::NotYetValid,
        Reason::Expired,
        Reason::OutsideHours,
        Reason::MerchantNotEligible,
        Reason::CategoryNotEligible,
        Reason::BelowMinSpend,
        Reason::BasketLimit,
        Reason::HolderDailyLimit,
        Reason::OfflineLimit,
        Reason::StoreUnreachable,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Reason::Malformed => "malformed",
            Reason::NoRuleset => "no_ruleset",
            Reason::UnknownKey => "unknown_key",
            Reason::BadSignature => "bad_signature",
            Reason::ClockInvalid => "clock_invalid",
            Reason::RulesetStale => "ruleset_stale",
            Reason::UnknownCampaign => "unknown_campaign",
            Reason::PresentationRequired => "presentation_required",
            Reason::PresentationExpired => "presentation_expired",
            Reason::Revoked => "revoked",
            Reason::AlreadyRedeemed => "already_redeemed",
            Reason::CampaignPaused => "campaign_paused",
            Reason::CampaignEnded => "campaign_ended",
            Reason::NotYetValid => "not_yet_valid",
            Reason::Expired => "expired",
            Reason::OutsideHours => "outside_hours",
            Reason::MerchantNotEligible => "merchant_not_eligible",
            Reason::CategoryNotEligible => "category_not_eligible",
            Reason::BelowMinSpend => "below_min_spend",
            Reason::BasketLimit => "basket_limit",
            Reason::HolderDailyLimit => "holder_daily_limit",
            Reason::OfflineLimit => "offline_limit",
            Reason::StoreUnreachable => "store_unreachable",
        }
    }
}

/// The terminal's identity as the campaign rules see it.
impl From<crate::claim::Refusal> for Reason {
    fn from(refusal: crate::claim::Refusal) -> Reason {
        match refusal {
            crate::claim::Refusal::AlreadyRedeemed => Reason::AlreadyRedeemed,
            crate::claim::Refusal::HolderDailyLimit => Reason::HolderDailyLimit,
            crate::claim::Refusal::StoreUnreachable => Reason::StoreUnreachable,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Terminal {
    pub merchant_id: String,
    pub merchant_category: String,
}

/// What the checkout holds when a code is presented.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Checkout {
    pub basket_total: Money,
    /// Defaults to `basket_total` when the till does not say.
    pub eligible_total: Money,
    /// Coupons already accepted in this checkout (unvoided).
    pub accepted_count: u64,
    pub accepted_discount: Money,
}

impl Checkout {
    pub fn new(basket_total: Money, eligible_total: Option<Money>) -> Checkout {
        Checkout {
            basket_total,
            eligible_total: eligible_total.unwrap_or(basket_total),
            accepted_count: 0,
            accepted_discount: Money::ZERO,
        }
    }
}

/// Unsynced redemptions: accepted, unvoided, their redeem event not yet answered upstream.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Unsynced {
    pub count: u64,
    pub value: Money,
}

/// What the decision needs to know of the ledger. The store implements it with indexed
/// queries; tests implement it in memory.
pub trait LedgerView {
    fn is_revoked(&self, coupon_id: &str) -> bool;
    /// An unvoided redemption of this coupon exists (any checkout, this one included).
    fn is_redeemed(&self, coupon_id: &str) -> bool;
    /// Unvoided redemptions of `campaign_id` by `holder` with `from <= at < until`.
    fn holder_redemptions(&self, holder: &[u8], campaign_id: &str, from: Timestamp, until: Timestamp) -> u64;
    fn unsynced(&self) -> Unsynced;
    /// Last successful contact with upstream, or else when the first rule set was installed.
    fn last_contact(&self) -> Option<Timestamp>;
}

/// The outcome, before it is recorded. `coupon` and `presentation` are set together, once
/// the signature(s) have verified.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Decision {
    pub outcome: Result<Money, Reason>,
    pub coupon: Option<Coupon>,
    /// How the coupon was shown: a CP1 code or a CP2 presentation (with its signed time).
    pub presentation: Option<Shown>,
    /// With a store hub: how an acceptance was guarded (`spec/store-hub.md`); set by the
    /// store after the claim, never by [`decide`].
    pub guard: Option<crate::claim::Guard>,
    /// With a store hub: the lane that holds the coupon (or the holder's last slot).
    pub elsewhere: Option<crate::claim::Elsewhere>,
}

impl Decision {
    pub fn accepted(&self) -> bool {
        self.outcome.is_ok()
    }

    pub fn reason(&self) -> Option<Reason> {
        self.outcome.err()
    }

    pub fn discount(&self) -> Money {
        self.outcome.unwrap_or(Money::ZERO)
    }
}

fn reject(reason: Reason, verified: Option<(&Coupon, Shown)>) -> Decision {
    Decision {
        outcome: Err(reason),
        coupon: verified.map(|(c, _)| c.clone()),
        presentation: verified.map(|(_, shown)| shown),
        guard: None,
        elsewhere: None,
    }
}

/// `u64` seconds from a code as an instant, saturating at the ends of time (a code's
/// far-future bound is simply "never").
fn code_instant(s: u64) -> Timestamp {
    i64::try_from(s).ok().and_then(|s| Timestamp::from_second(s).ok()).unwrap_or(Timestamp::MAX)
}

const CLOCK_TOLERANCE: SignedDuration = SignedDuration::from_secs(300);
/// How far ahead of the terminal's clock a presentation may be signed (a phone clock
/// slightly fast).
pub const PRESENTATION_AHEAD: SignedDuration = SignedDuration::from_secs(30);

/// `presentation_expired`: `presented_at` more than `max_age` seconds before `now`, or
/// more than [`PRESENTATION_AHEAD`] after it; `now` at full precision, the bounds inclusive.
pub fn presentation_expired(presented_at: u64, max_age: u64, now: Timestamp) -> bool {
    let signed = code_instant(presented_at);
    let max_age = SignedDuration::from_secs(i64::try_from(max_age).unwrap_or(i64::MAX));
    // duration_since is `now - signed`: positive when the presentation is in the past.
    let age = now.duration_since(signed);
    age > max_age || -age > PRESENTATION_AHEAD
}

/// Decides a scanned code for a checkout, in the order of the spec's table.
pub fn decide(
    code: &str,
    checkout: &Checkout,
    terminal: &Terminal,
    rules: Option<&RuleSet>,
    ledger: &impl LedgerView,
    now: Timestamp,
) -> Decision {
    // 1. malformed (CP1 or CP2, by prefix)
    let Ok(unverified) = coupon::decode_any(code) else {
        return reject(Reason::Malformed, None);
    };
    // 2. no_ruleset
    let Some(rules) = rules else {
        return reject(Reason::NoRuleset, None);
    };
    // 3. unknown_key
    let Some(key) = rules.coupon_key(&b64url_encode(unverified.kid())) else {
        return reject(Reason::UnknownKey, None);
    };
    // 4. bad_signature: alg, signature, issued_at within the key's validity; for a
    // presentation also the outer alg and the holder's signature
    if *unverified.alg() == AlgId::Other {
        return reject(Reason::BadSignature, None);
    }
    let Some(verified) = unverified.verify(&key.key) else {
        return reject(Reason::BadSignature, None);
    };
    let c = &verified.coupon;
    let shown = verified.shown;
    // Full instants throughout: a bound of 12:00:00.5 is not yet reached at 12:00:00.2.
    let issued = code_instant(c.issued_at);
    if key.not_before.is_some_and(|nb| issued < nb) || key.not_after.is_some_and(|na| issued >= na) {
        return reject(Reason::BadSignature, None);
    }
    let verdict = |reason| reject(reason, Some((c, shown)));
    // 5. clock_invalid: more than 300 s before the rule set was issued
    if now < rules.issued_at - CLOCK_TOLERANCE {
        return verdict(Reason::ClockInvalid);
    }
    // 6. ruleset_stale
    if now >= rules.expires_at {
        return verdict(Reason::RulesetStale);
    }
    // 7. unknown_campaign
    let Some(campaign) = rules.campaigns.get(&c.campaign_id) else {
        return verdict(Reason::UnknownCampaign);
    };
    match shown {
        // 8. presentation_required: a holder-bound coupon, or a dynamic campaign, as CP1
        Shown::Static => {
            if c.holder_key.is_some() || campaign.presentation == PresentationPolicy::Dynamic {
                return verdict(Reason::PresentationRequired);
            }
        }
        // 9. presentation_expired, at the clock's full precision
        Shown::Dynamic { presented_at } => {
            if presentation_expired(presented_at, rules.presentation_max_age, now) {
                return verdict(Reason::PresentationExpired);
            }
        }
    }
    // 10. revoked
    if ledger.is_revoked(c.coupon_id.as_str()) {
        return verdict(Reason::Revoked);
    }
    // 11. already_redeemed: of the coupon, whichever text showed it
    if ledger.is_redeemed(c.coupon_id.as_str()) {
        return verdict(Reason::AlreadyRedeemed);
    }
    // 12. campaign status
    match campaign.status {
        CampaignStatus::Active => {}
        CampaignStatus::Paused => return verdict(Reason::CampaignPaused),
        CampaignStatus::Ended => return verdict(Reason::CampaignEnded),
    }
    // 13. not_yet_valid / 14. expired
    let starts = c.not_before.map_or(campaign.valid_from, |nb| campaign.valid_from.max(code_instant(nb)));
    if now < starts {
        return verdict(Reason::NotYetValid);
    }
    let ends = c.not_after.map_or(campaign.valid_until, |na| campaign.valid_until.min(code_instant(na)));
    if now >= ends {
        return verdict(Reason::Expired);
    }
    // 15. outside_hours, in the rule set's zone
    let local = now.to_zoned_datetime(rules.timezone.clone());
    if !campaign.hours.is_empty() {
        let minute = (local.hour() as u16) * 60 + local.minute() as u16;
        if !campaign.hours.iter().any(|&(from, to)| from <= minute && minute < to) {
            return verdict(Reason::OutsideHours);
        }
    }
    // 16. merchant / 17. category
    if !campaign.merchants.is_empty() && !campaign.merchants.contains(&terminal.merchant_id) {
        return verdict(Reason::MerchantNotEligible);
    }
    if !campaign.merchant_categories.is_empty() && !campaign.merchant_categories.contains(&terminal.merchant_category) {
        return verdict(Reason::CategoryNotEligible);
    }
    // 18. below_min_spend, or nothing left to discount
    let left = checkout.eligible_total.0.saturating_sub(checkout.accepted_discount.0);
    if checkout.eligible_total < campaign.min_spend || left <= 0 {
        return verdict(Reason::BelowMinSpend);
    }
    // 19. basket_limit
    if checkout.accepted_count >= rules.max_coupons_per_basket {
        return verdict(Reason::BasketLimit);
    }
    // 20. holder_daily_limit, over the local business day
    if let Some(max) = campaign.max_per_holder_per_day {
        let (day_start, day_end) = business_day(&local);
        if ledger.holder_redemptions(&c.holder, &c.campaign_id, day_start, day_end) >= max {
            return verdict(Reason::HolderDailyLimit);
        }
    }
    // 21. offline_limit, counting this redemption
    let discount = Money(campaign.face_value.0.min(left));
    let limits = &rules.offline;
    if limits.max_unsynced_count.is_some() || limits.max_unsynced_value.is_some() {
        let unsynced = ledger.unsynced();
        // i128: the ledger's sum and the new discount never wrap, whatever the rows hold.
        if limits.max_unsynced_count.is_some_and(|max| u128::from(unsynced.count) + 1 > u128::from(max))
            || limits
                .max_unsynced_value
                .is_some_and(|max| i128::from(unsynced.value.0) + i128::from(discount.0) > i128::from(max.0))
        {
            return verdict(Reason::OfflineLimit);
        }
    }
    if let (Some(hours), Some(since)) = (limits.max_hours_since_sync, ledger.last_contact()) {
        let allowed = i128::from(hours) * 3_600_000_000_000;
        if (now - since).as_nanos() > allowed {
            return verdict(Reason::OfflineLimit);
        }
    }
    Decision { outcome: Ok(discount), coupon: Some(c.clone()), presentation: Some(shown), guard: None, elsewhere: None }
}

/// `[start, end)` of the local calendar day holding `local` (23 or 25 hours on DST days).
pub fn business_day(local: &jiff::ZonedDateTime) -> (Timestamp, Timestamp) {
    let start = local.start_of_day().map(|z| z.timestamp()).unwrap_or(local.timestamp());
    let end = local
        .tomorrow()
        .and_then(|t| t.start_of_day())
        .map(|z| z.timestamp())
        .unwrap_or(start + SignedDuration::from_hours(24));
    (start, end)
}

#[cfg(test)]
mod tests {
    #[test]
    fn every_reason_has_a_text_in_each_language() {
        use crate::messages::{table, Language};
        for reason in super::Reason::ALL {
            for language in Language::ALL {
                let key = format!("reason.{}", reason.as_str());
                assert!(table(language).contains_key(&key), "{key} missing in {}", language.tag());
            }
        }
    }

    use super::*;
    use crate::issuer::{CodeSpec, Issuer};
    use proptest::prelude::*;

    /// A ledger that says whatever the test wants, extremes included.
    struct Extreme {
        unsynced: Unsynced,
        holder: u64,
        last_contact: Option<Timestamp>,
    }

    impl LedgerView for Extreme {
        fn is_revoked(&self, _: &str) -> bool {
            false
        }
        fn is_redeemed(&self, _: &str) -> bool {
            false
        }
        fn holder_redemptions(&self, _: &[u8], _: &str, _: Timestamp, _: Timestamp) -> u64 {
            self.holder
        }
        fn unsynced(&self) -> Unsynced {
            self.unsynced
        }
        fn last_contact(&self) -> Option<Timestamp> {
            self.last_contact
        }
    }

    /// Signed and verified once (signing is slow in debug builds); each case then sets
    /// its own amounts and limits on a copy.
    fn base() -> &'static (RuleSet, String) {
        static BASE: std::sync::OnceLock<(RuleSet, String)> = std::sync::OnceLock::new();
        BASE.get_or_init(|| {
            let issuer = Issuer::from_seed(7);
            let now = Timestamp::from_second(1_800_000_000).unwrap();
            let jws = issuer.sign_ruleset(&issuer.ruleset_payload(1, now, &["C"], &[]));
            let anchors = crate::ruleset::parse_anchors(&issuer.trust_anchors_json()).unwrap();
            let rules = crate::ruleset::verify(&jws, &anchors).unwrap().rules;
            (rules, issuer.code(&CodeSpec::new("P-1", "C", now)))
        })
    }

    fn rules_with_limits(face: i64, max_value: i64, max_count: u64) -> RuleSet {
        let mut rules = base().0.clone();
        let campaign = rules.campaigns.get_mut("C").unwrap();
        campaign.face_value = Money(face);
        campaign.min_spend = Money::ZERO;
        campaign.max_per_holder_per_day = Some(u64::MAX);
        rules.max_coupons_per_basket = u64::MAX;
        rules.offline = crate::ruleset::OfflineLimits {
            max_unsynced_count: Some(max_count),
            max_unsynced_value: Some(Money(max_value)),
            max_hours_since_sync: Some(u64::MAX),
        };
        rules
    }

    proptest! {
        // Each case verifies a signature, slow in debug builds: fewer, wider cases.
        #![proptest_config(ProptestConfig::with_cases(64))]
        // Debug builds panic on overflow, so a sum that could wrap fails this test.
        #[test]
        fn no_amount_or_count_makes_a_sum_wrap(
            basket in 0..=Money::MAX.0,
            eligible in 0..=Money::MAX.0,
            accepted_discount in 0..=i64::MAX,
            accepted_count in 0..=u64::MAX,
            face in 1..=Money::MAX.0,
            max_value in 0..=Money::MAX.0,
            max_count in 0..=u64::MAX,
            unsynced_count in 0..=u64::MAX,
            unsynced_value in 0..=i64::MAX,
            holder in 0..=u64::MAX,
            contact_s in -10_000_000_000i64..10_000_000_000,
        ) {
            let now = Timestamp::from_second(1_800_000_000).unwrap();
            let rules = rules_with_limits(face, max_value, max_count);
            let code = &base().1;
            let checkout = Checkout {
                basket_total: Money(basket),
                eligible_total: Money(eligible),
                accepted_count,
                accepted_discount: Money(accepted_discount),
            };
            let ledger = Extreme {
                unsynced: Unsynced { count: unsynced_count, value: Money(unsynced_value) },
                holder,
                last_contact: Timestamp::from_second(contact_s).ok(),
            };
            let terminal = Terminal { merchant_id: "M".into(), merchant_category: "dining".into() };
            let decision = decide(code, &checkout, &terminal, Some(&rules), &ledger, now);
            if let Ok(discount) = decision.outcome {
                prop_assert!(discount.0 >= 1 && discount.0 <= face);
            }
        }
    }

    #[test]
    fn validity_bounds_compare_full_instants() {
        let issuer = Issuer::from_seed(7);
        let noon: Timestamp = "2026-11-28T04:00:00Z".parse().unwrap();
        let mut payload = issuer.ruleset_payload(1, noon, &["C"], &[]);
        payload["campaigns"][0]["valid_from"] = "2026-11-28T04:00:00.5Z".into();
        let anchors = crate::ruleset::parse_anchors(&issuer.trust_anchors_json()).unwrap();
        let rules = crate::ruleset::verify(&issuer.sign_ruleset(&payload), &anchors).unwrap().rules;
        let code = issuer.code(&CodeSpec::new("P-2", "C", noon - SignedDuration::from_hours(1)));
        let ledger = Extreme { unsynced: Unsynced::default(), holder: 0, last_contact: None };
        let terminal = Terminal { merchant_id: "M".into(), merchant_category: "dining".into() };
        let checkout = Checkout::new(Money(5000), None);
        let at = |t: &str| decide(&code, &checkout, &terminal, Some(&rules), &ledger, t.parse().unwrap()).outcome;
        assert_eq!(at("2026-11-28T04:00:00.2Z"), Err(Reason::NotYetValid));
        assert_eq!(at("2026-11-28T04:00:00.5Z"), Ok(Money(1000)));
    }
}
