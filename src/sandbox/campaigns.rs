//! The sandbox's campaigns file (`--campaigns FILE`, TOML; the documented example and the
//! default is `packaging/sandbox-campaigns.toml`, the live demo's campaigns): the shop its
//! enrollment codes enroll terminals into, the rule-set settings and the campaigns, with
//! the field names of `spec/ruleset.md`. [`Catalog::parse`] reads and checks it — a file
//! the terminals would refuse is refused here, naming the file and the field — and
//! [`ruleset_payload`] turns a catalog, the campaigns' current statuses and the revoked
//! ids into the payload the issuer signs.
//!
//! It must not touch the state file or sign anything; it only reads and checks.

use crate::ruleset::{CampaignStatus, CampaignWire, HoursWire, OfflineWire, PresentationPolicy, RuleSet, RuleSetWire};
use jiff::{SignedDuration, Timestamp};
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};
use std::collections::BTreeMap;

/// The default campaigns: the live demo's, with every field documented.
pub const DEFAULT_FILE: &str = include_str!("../../packaging/sandbox-campaigns.toml");
/// How the default is named in messages.
pub const DEFAULT_NAME: &str = "packaging/sandbox-campaigns.toml (built in)";

/// Published rule sets are valid this many days unless the file says.
const DEFAULT_VALID_DAYS: u32 = 30;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct CatalogFile {
    merchant: MerchantFile,
    #[serde(default)]
    ruleset: RulesetFile,
    #[serde(default)]
    campaign: Vec<CampaignFile>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct MerchantFile {
    id: String,
    name: String,
    category: String,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RulesetFile {
    issuer: Option<String>,
    timezone: Option<String>,
    currency: Option<String>,
    max_coupons_per_basket: Option<u64>,
    presentation_max_age_seconds: Option<u64>,
    valid_days: Option<u32>,
    #[serde(default)]
    revoked: Vec<String>,
    offline: Option<OfflineFile>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct OfflineFile {
    max_unsynced_count: Option<u64>,
    max_unsynced_value: Option<i64>,
    max_hours_since_sync: Option<u64>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct CampaignFile {
    id: String,
    name: BTreeMap<String, String>,
    face_value: i64,
    min_spend: i64,
    valid_from: Option<String>,
    valid_until: Option<String>,
    hours: Option<Vec<HoursFile>>,
    merchant_categories: Option<Vec<String>>,
    merchants: Option<Vec<String>>,
    max_per_holder_per_day: Option<u64>,
    status: Option<CampaignStatus>,
    presentation: Option<PresentationPolicy>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct HoursFile {
    from: String,
    to: String,
}

/// The shop an enrollment code enrolls a terminal into.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Merchant {
    pub id: String,
    pub name: String,
    pub category: String,
}

/// A checked campaigns file: what the state keeps (as JSON) and publishes from.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Catalog {
    pub merchant: Merchant,
    pub issuer: String,
    pub timezone: String,
    pub currency: String,
    pub max_coupons_per_basket: Option<u64>,
    pub presentation_max_age_seconds: Option<u64>,
    pub valid_days: u32,
    pub revoked: Vec<String>,
    pub offline: Option<OfflineWire>,
    /// In the file's order, `valid_from`/`valid_until` filled in.
    pub campaigns: Vec<CampaignWire>,
}

/// What is wrong with a campaigns file (English; the command line says it in the
/// reader's language through `SandboxError::Campaigns`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CatalogError(pub String);

impl Catalog {
    /// Reads `text`. Campaigns without `valid_from`/`valid_until` are valid from a day
    /// before `created` (when the sandbox was made) for a year, so a restart publishes
    /// the same terms.
    pub fn parse(text: &str, created: Timestamp) -> Result<Catalog, CatalogError> {
        let file: CatalogFile = toml::from_str(text).map_err(|e| CatalogError(e.to_string().trim().to_owned()))?;
        let day = SignedDuration::from_hours(24);
        let default_from = (created - day).to_string();
        let default_until = (created + day * 365).to_string();
        for (what, value) in [
            ("merchant.id", &file.merchant.id),
            ("merchant.name", &file.merchant.name),
            ("merchant.category", &file.merchant.category),
        ] {
            if value.trim().is_empty() {
                return Err(CatalogError(format!("{what} is empty")));
            }
        }
        if file.campaign.is_empty() {
            return Err(CatalogError("no [[campaign]]: a rule set needs at least one campaign".into()));
        }
        let mut campaigns = Vec::with_capacity(file.campaign.len());
        for c in file.campaign {
            if c.name.values().all(|n| n.trim().is_empty()) {
                return Err(CatalogError(format!(
                    "campaign {:?} has no name: give name.zh-CN and name.en (what the cashier screen shows)",
                    c.id
                )));
            }
            campaigns.push(CampaignWire {
                id: c.id,
                name: Some(c.name),
                face_value: c.face_value,
                min_spend: c.min_spend,
                valid_from: c.valid_from.unwrap_or_else(|| default_from.clone()),
                valid_until: c.valid_until.unwrap_or_else(|| default_until.clone()),
                hours: c.hours.map(|h| h.into_iter().map(|h| HoursWire { from: h.from, to: h.to }).collect()),
                merchant_categories: c.merchant_categories,
                merchants: c.merchants,
                max_per_holder_per_day: c.max_per_holder_per_day,
                status: c.status.unwrap_or(CampaignStatus::Active),
                presentation: c.presentation,
            });
        }
        let r = file.ruleset;
        let catalog = Catalog {
            merchant: Merchant { id: file.merchant.id, name: file.merchant.name, category: file.merchant.category },
            issuer: r.issuer.unwrap_or_else(|| "redeemd-sandbox".into()),
            timezone: r.timezone.unwrap_or_else(|| crate::config::DEFAULT_TIMEZONE.into()),
            currency: r.currency.unwrap_or_else(|| "CNY".into()),
            max_coupons_per_basket: r.max_coupons_per_basket,
            presentation_max_age_seconds: r.presentation_max_age_seconds,
            valid_days: r.valid_days.unwrap_or(DEFAULT_VALID_DAYS),
            revoked: r.revoked,
            offline: r.offline.map(|o| OfflineWire {
                max_unsynced_count: o.max_unsynced_count,
                max_unsynced_value: o.max_unsynced_value,
                max_hours_since_sync: o.max_hours_since_sync,
            }),
            campaigns,
        };
        catalog.check(created)?;
        Ok(catalog)
    }

    /// The built-in default (the demo's campaigns).
    pub fn default_at(created: Timestamp) -> Result<Catalog, CatalogError> {
        Catalog::parse(DEFAULT_FILE, created)
    }

    /// Every rule a terminal applies to a rule set, on a trial payload: a file that
    /// parses here is never refused by the terminals.
    fn check(&self, now: Timestamp) -> Result<(), CatalogError> {
        if !(1..=365).contains(&self.valid_days) {
            return Err(CatalogError(format!("ruleset.valid_days {} is outside 1..=365", self.valid_days)));
        }
        for id in &self.revoked {
            if !crate::sandbox::valid_coupon_id(id) {
                return Err(CatalogError(format!(
                    "ruleset.revoked: {id:?} is not a coupon id (1 to 64 of A-Z a-z 0-9 . _ -)"
                )));
            }
        }
        let statuses: Vec<CampaignStatus> = self.campaigns.iter().map(|c| c.status).collect();
        // Any valid key: the trial payload is checked, never signed.
        let trial_key = crate::issuer::Issuer::from_seed(0).coupon_key_json();
        let payload = ruleset_payload(self, &statuses, &self.revoked, 1, now, &trial_key);
        let wire: RuleSetWire = serde_json::from_value(payload).map_err(|e| CatalogError(e.to_string()))?;
        RuleSet::from_wire(&wire).map_err(|refusal| CatalogError(refusal.to_string()))?;
        Ok(())
    }

    pub fn campaign(&self, id: &str) -> Option<&CampaignWire> {
        self.campaigns.iter().find(|c| c.id == id)
    }

    pub fn campaign_ids(&self) -> Vec<String> {
        self.campaigns.iter().map(|c| c.id.clone()).collect()
    }

    /// How long a published rule set is valid.
    pub fn validity(&self) -> SignedDuration {
        SignedDuration::from_hours(24 * i64::from(self.valid_days))
    }
}

/// The rule-set payload of version `version` published at `now`: the catalog's
/// campaigns with `statuses` (same order), `revoked`, and `coupon_key` (a `coupon_keys`
/// entry). Issued at `now`, expiring after the catalog's `valid_days`.
pub fn ruleset_payload(
    catalog: &Catalog,
    statuses: &[CampaignStatus],
    revoked: &[String],
    version: u64,
    now: Timestamp,
    coupon_key: &Value,
) -> Value {
    let campaigns: Vec<CampaignWire> = catalog
        .campaigns
        .iter()
        .zip(statuses.iter().copied().chain(std::iter::repeat(CampaignStatus::Active)))
        .map(|(c, status)| CampaignWire { status, ..c.clone() })
        .collect();
    let mut payload = json!({
        "format": 1,
        "version": version,
        "issuer": catalog.issuer,
        "issued_at": now.to_string(),
        "expires_at": (now + catalog.validity()).to_string(),
        "timezone": catalog.timezone,
        "currency": catalog.currency,
        "coupon_keys": [coupon_key],
        "campaigns": campaigns,
        "revoked": revoked,
    });
    if let Some(n) = catalog.max_coupons_per_basket {
        payload["max_coupons_per_basket"] = json!(n);
    }
    if let Some(n) = catalog.presentation_max_age_seconds {
        payload["presentation_max_age_seconds"] = json!(n);
    }
    if let Some(offline) = &catalog.offline {
        payload["offline"] = json!(offline);
    }
    payload
}

#[cfg(test)]
mod tests {
    use super::*;

    fn now() -> Timestamp {
        "2026-11-28T04:00:00Z".parse().unwrap()
    }

    #[test]
    fn the_default_is_the_demos_campaigns_and_verifies() {
        let catalog = Catalog::default_at(now()).unwrap();
        assert_eq!(catalog.campaign_ids(), ["DEMO-DINING", "DEMO-BIG"]);
        let dining = catalog.campaign("DEMO-DINING").unwrap();
        assert_eq!((dining.face_value, dining.min_spend), (1000, 4000));
        let names = dining.name.as_ref().unwrap();
        assert_eq!(names["zh-CN"], "演示餐饮券");
        assert_eq!(names["en"], "Demo dining coupon");
        assert_eq!(catalog.campaign("DEMO-BIG").map(|c| (c.face_value, c.min_spend)), Some((2000, 10000)));
        assert_eq!(catalog.revoked, ["DEMO-REVOKED"]);
        assert_eq!(catalog.merchant.id, "M-DEMO");
        assert_eq!(dining.valid_from, "2026-11-27T04:00:00Z");
    }

    #[test]
    fn a_file_the_terminals_would_refuse_is_refused_here() {
        let base = "[merchant]\nid = \"M-1\"\nname = \"店\"\ncategory = \"dining\"\n";
        let campaign = |extra: &str| {
            format!(
                "{base}[[campaign]]\nid = \"C-1\"\nname = {{ zh-CN = \"券\", en = \"Coupon\" }}\nface_value = 1000\nmin_spend = 0\n{extra}"
            )
        };
        assert!(Catalog::parse(&campaign(""), now()).is_ok());
        let refused = |text: &str, needle: &str| {
            let e = Catalog::parse(text, now()).unwrap_err();
            assert!(e.0.contains(needle), "{needle:?} not in {:?}", e.0);
        };
        refused(&campaign("face_value_fen = 3\n"), "face_value_fen");
        refused(&campaign("hours = [{ from = \"14:00\", to = \"10:00\" }]\n"), "hours");
        refused(&campaign("status = \"sleeping\"\n"), "sleeping");
        refused(base, "no [[campaign]]");
        refused(&campaign("presentation = \"qr\"\n").replace("C-1", "C 1"), "");
        refused(&format!("{}[ruleset]\ntimezone = \"Mars/Olympus\"\n", campaign("")), "Mars/Olympus");
        refused(&format!("{}[ruleset]\nrevoked = [\"a b\"]\n", campaign("")), "not a coupon id");
    }
}
