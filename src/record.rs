//! The decision record of `spec/ruleset.md`: the JSON shape that `check --json`,
//! `redeem --json` and the local API print. It only shapes output; it decides nothing.

use crate::decision::Decision;
use crate::messages::{self, Language};
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DecisionRecord {
    pub decision: String,
    pub reason: Option<String>,
    pub discount: i64,
    pub coupon_id: Option<String>,
    pub campaign_id: Option<String>,
    /// `static` (a CP1 code) or `dynamic` (a CP2 presentation), set exactly when
    /// `coupon_id` is; absent in records stored before CP2, which read as `null`.
    #[serde(default)]
    pub presentation: Option<String>,
    pub redemption_id: Option<String>,
    pub message: String,
    /// With a store hub only (`spec/store-hub.md`): `store` or `local` on an acceptance.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub guard: Option<String>,
    /// With a store hub only: the lane that holds the coupon, on a refusal because of it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub elsewhere: Option<crate::claim::Elsewhere>,
}

impl DecisionRecord {
    /// `coupon_id`, `campaign_id` and `presentation` come only from a verified code (the
    /// decision holds a coupon only then).
    pub fn new(decision: &Decision, redemption_id: Option<String>, language: Language, digits: u32) -> DecisionRecord {
        let coupon = decision.coupon.as_ref();
        let (verdict, reason, message) = match decision.outcome {
            Ok(discount) => ("accepted", None, messages::accepted(language, discount, digits)),
            Err(reason) => ("rejected", Some(reason.as_str().to_owned()), reason.text(language).to_owned()),
        };
        DecisionRecord {
            decision: verdict.to_owned(),
            reason,
            discount: decision.discount().0,
            coupon_id: coupon.map(|c| c.coupon_id.as_str().to_owned()),
            campaign_id: coupon.map(|c| c.campaign_id.clone()),
            presentation: coupon.and(decision.presentation).map(|p| p.as_str().to_owned()),
            redemption_id,
            message,
            guard: decision.guard.map(|g| g.as_str().to_owned()),
            elsewhere: decision.elsewhere.clone(),
        }
    }
}
