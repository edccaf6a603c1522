//! Refusals that help: the cashier's message for a decision, with what to do about it
//! (how much more to spend, when the coupon was used, the validity date, the hours,
//! which offline limit is full). It gathers the facts a message needs from the rule set,
//! the checkout and the ledger, and words them through [`crate::messages`].
//!
//! It reads; it must not decide (the reason comes from [`crate::decision::decide`]).

use crate::decision::{Decision, Reason, Unsynced};
use crate::messages::{self, Language};
use crate::money::Money;
use crate::ruleset::RuleSet;
use jiff::Timestamp;

/// What the ledger and the checkout say beside the decision.
#[derive(Debug, Clone, Default)]
pub struct Situation {
    /// The checkout's eligible amount and the discounts it already holds.
    pub eligible_total: Money,
    pub accepted_discount: Money,
    /// When the coupon was redeemed on this ledger, and whether by the terminal it was
    /// taken over from (for `already_redeemed`).
    pub redeemed_at: Option<crate::store::Redeemed>,
    pub unsynced: Unsynced,
    /// The decision's time: a use at another lane today reads as its time of day only.
    pub now: Option<Timestamp>,
}

/// The decision's message: the accepted text, or the refusal's words followed by what
/// to do, when the facts allow saying more.
pub fn message(language: Language, decision: &Decision, rules: Option<&RuleSet>, situation: &Situation) -> String {
    let digits = rules.map_or(2, |r| crate::money::currency_digits(&r.currency));
    let reason = match decision.outcome {
        Ok(discount) => return messages::accepted(language, discount, digits),
        Err(reason) => reason,
    };
    let head = reason.text(language);
    match advice(language, reason, decision, rules, situation, digits) {
        Some(advice) => match language {
            Language::ZhCn => format!("{head}（{advice}）"),
            Language::En => format!("{head} ({advice})"),
        },
        None => head.to_owned(),
    }
}

/// `14:02` for a use earlier today, `2026-12-07 14:02` for an older one, in the rule
/// set's zone; the claim's text as it is when it is not a time.
fn elsewhere_time(at: &str, rules: &RuleSet, now: Option<Timestamp>) -> String {
    let Ok(at) = at.parse::<Timestamp>() else {
        return at.to_owned();
    };
    let local = at.to_zoned_datetime(rules.timezone.clone());
    let today = now.map(|n| n.to_zoned_datetime(rules.timezone.clone()).date());
    if today == Some(local.date()) {
        local.strftime("%H:%M").to_string()
    } else {
        local.strftime("%Y-%m-%d %H:%M").to_string()
    }
}

fn advice(
    language: Language,
    reason: Reason,
    decision: &Decision,
    rules: Option<&RuleSet>,
    situation: &Situation,
    digits: u32,
) -> Option<String> {
    let fill = |key: &str, values: &[(&str, &str)]| messages::fill(language, key, values);
    let rules = rules?;
    let local_date = |t: Timestamp| t.to_zoned_datetime(rules.timezone.clone()).strftime("%Y-%m-%d %H:%M").to_string();
    let campaign = decision.coupon.as_ref().and_then(|c| rules.campaigns.get(&c.campaign_id));
    // Another lane holds the coupon or the holder's slots (store hub): say where and when.
    if let Some(elsewhere) = &decision.elsewhere {
        let key = match reason {
            Reason::HolderDailyLimit => "advice.holder_elsewhere",
            _ => "advice.elsewhere",
        };
        let time = elsewhere_time(&elsewhere.at, rules, situation.now);
        return Some(fill(key, &[("lane", &elsewhere.lane), ("time", &time)]));
    }
    match reason {
        Reason::BelowMinSpend => {
            let campaign = campaign?;
            if situation.eligible_total < campaign.min_spend {
                let short = Money(campaign.min_spend.0.saturating_sub(situation.eligible_total.0));
                Some(fill(
                    "advice.below_min_spend",
                    &[("min", &campaign.min_spend.display(digits)), ("short", &short.display(digits))],
                ))
            } else {
                Some(fill("advice.below_min_spend_used", &[]))
            }
        }
        // A ledger taken over in a swap holds the old terminal's redemptions: "this
        // terminal" only for what this one redeemed.
        Reason::AlreadyRedeemed => situation.redeemed_at.as_ref().map(|r| {
            let when = local_date(r.at);
            match r.before_swap.as_deref() {
                None => fill("advice.already_redeemed_here", &[("when", &when)]),
                Some("") => fill("advice.already_redeemed_before_swap_unnamed", &[("when", &when)]),
                Some(terminal) => {
                    fill("advice.already_redeemed_before_swap", &[("when", &when), ("terminal", terminal)])
                }
            }
        }),
        Reason::Expired | Reason::NotYetValid => {
            let coupon = decision.coupon.as_ref()?;
            let campaign = campaign?;
            let instant = |seconds: u64| i64::try_from(seconds).ok().and_then(|s| Timestamp::from_second(s).ok());
            if reason == Reason::Expired {
                let ends =
                    coupon.not_after.and_then(instant).map_or(campaign.valid_until, |na| na.min(campaign.valid_until));
                Some(fill("advice.expired", &[("date", &local_date(ends))]))
            } else {
                let starts =
                    coupon.not_before.and_then(instant).map_or(campaign.valid_from, |nb| nb.max(campaign.valid_from));
                Some(fill("advice.not_yet_valid", &[("date", &local_date(starts))]))
            }
        }
        Reason::OutsideHours => {
            let windows: Vec<String> = campaign?
                .hours
                .iter()
                .map(|&(from, to)| format!("{:02}:{:02}–{:02}:{:02}", from / 60, from % 60, to / 60, to % 60))
                .collect();
            Some(fill("advice.outside_hours", &[("hours", &windows.join(", "))]))
        }
        Reason::OfflineLimit => {
            let limits = &rules.offline;
            if let Some(max) = limits.max_unsynced_count.filter(|&max| situation.unsynced.count + 1 > max) {
                Some(fill("advice.offline_count", &[("limit", &max.to_string())]))
            } else if let Some(max) = limits
                .max_unsynced_value
                .filter(|max| situation.unsynced.value.0.saturating_add(campaign.map_or(0, |c| c.face_value.0)) > max.0)
            {
                Some(fill("advice.offline_value", &[("limit", &max.display(digits))]))
            } else {
                limits.max_hours_since_sync.map(|h| fill("advice.offline_hours", &[("limit", &h.to_string())]))
            }
        }
        Reason::RulesetStale => Some(fill("advice.ruleset_stale", &[])),
        Reason::ClockInvalid => Some(fill("advice.clock_invalid", &[])),
        _ => None,
    }
}

/// The basket limit's words: the limit and the coupons that hold it, each by its
/// campaign's name in `language` and its discount ("每单限用 1 张，本单已用：演示餐饮券 −10.00").
/// `held`: the checkout's accepted, unvoided coupons as (campaign id, discount).
pub fn basket_limit(language: Language, rules: Option<&RuleSet>, held: &[(String, Money)]) -> Option<String> {
    let rules = rules?;
    if held.is_empty() {
        return None;
    }
    let digits = crate::money::currency_digits(&rules.currency);
    let names: Vec<String> = held
        .iter()
        .map(|(campaign_id, discount)| {
            let name =
                rules.campaigns.get(campaign_id).map_or(campaign_id.as_str(), |c| c.display_name(language.tag()));
            format!("{name} −{}", discount.display(digits))
        })
        .collect();
    let separator = match language {
        Language::ZhCn => "、",
        Language::En => ", ",
    };
    Some(messages::fill(
        language,
        "advice.basket_limit",
        &[("limit", &rules.max_coupons_per_basket.to_string()), ("held", &names.join(separator))],
    ))
}
