//! Signed rule sets (`spec/ruleset.md`): JWS compact verification against the terminal's
//! trust anchors, and the validated [`RuleSet`] model decisions run against.
//!
//! It owns the wire shape ([`RuleSetWire`]) and every semantic check of it, so the store
//! can persist the wire form and rebuild the model through the same [`RuleSet::from_wire`].
//! It never installs anything and never reads the clock: rollback and same-version
//! handling belong to the store, time rules to the decision.

use crate::coupon::is_id;
use crate::jws::{self, JwsSource};
use crate::keys::{b64url_decode, Alg, KeyError, PublicKey};
use crate::money::{currency_digits, Money};
pub use crate::revoked::RevokedIds;
use jiff::tz::TimeZone;
use jiff::Timestamp;
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, HashSet};
use thiserror::Error;

/// A key the terminal trusts to sign rule sets; from provisioning, never from a rule set.
#[derive(Debug, Clone)]
pub struct TrustAnchor {
    pub kid: String,
    pub key: PublicKey,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TrustAnchorWire {
    pub kid: String,
    pub alg: Alg,
    pub key: String,
}

#[derive(Debug, Error)]
pub enum AnchorError {
    #[error("not a JSON array of {{\"kid\", \"alg\", \"key\"}} objects: {0}")]
    Json(#[from] serde_json::Error),
    #[error("the list holds no key")]
    Empty,
    #[error("trust key {kid:?}: {source}")]
    Key { kid: String, source: KeyError },
    #[error("trust key id {0:?} appears twice")]
    Duplicate(String),
}

/// Parses a trust-anchor list `[{"kid","alg","key"}]`.
pub fn parse_anchors(json: &str) -> Result<Vec<TrustAnchor>, AnchorError> {
    let wires: Vec<TrustAnchorWire> = serde_json::from_str(json)?;
    anchors_from_wire(&wires)
}

pub fn anchors_from_wire(wires: &[TrustAnchorWire]) -> Result<Vec<TrustAnchor>, AnchorError> {
    if wires.is_empty() {
        return Err(AnchorError::Empty);
    }
    let mut seen = HashSet::new();
    wires
        .iter()
        .map(|w| {
            if !seen.insert(w.kid.as_str()) {
                return Err(AnchorError::Duplicate(w.kid.clone()));
            }
            let key = PublicKey::from_base64url(w.alg, &w.key)
                .map_err(|source| AnchorError::Key { kid: w.kid.clone(), source })?;
            Ok(TrustAnchor { kid: w.kid.clone(), key })
        })
        .collect()
}

/// Why a rule set is refused whole. The installed one stays in force.
#[derive(Debug, Clone, Error, PartialEq, Eq)]
pub enum Refusal {
    #[error("not a JWS compact text (three base64url parts joined by dots): {0}")]
    Envelope(&'static str),
    #[error("JWS header: {0}")]
    Header(String),
    #[error("signed by key {0:?}, which is not one of this terminal's rule-set trust anchors")]
    UntrustedKid(String),
    #[error("header alg {header} does not match trust anchor {kid:?} ({anchor})")]
    AlgMismatch { kid: String, header: String, anchor: &'static str },
    #[error("signature does not verify with trust anchor {0:?}")]
    BadSignature(String),
    #[error("payload is not a rule set: {0}")]
    Payload(String),
    #[error("format {0} is not supported (only format 1)")]
    Format(u64),
    #[error("version {offered} is older than the installed version {installed} (rollback)")]
    Rollback { installed: u64, offered: u64 },
}

impl Refusal {
    /// A short machine code for logs and reports.
    pub fn code(&self) -> &'static str {
        match self {
            Refusal::Envelope(_) => "envelope",
            Refusal::Header(_) => "header",
            Refusal::UntrustedKid(_) => "untrusted_kid",
            Refusal::AlgMismatch { .. } => "alg_mismatch",
            Refusal::BadSignature(_) => "bad_signature",
            Refusal::Payload(_) => "payload",
            Refusal::Format(_) => "format",
            Refusal::Rollback { .. } => "rollback",
        }
    }

    /// The refusal for a person, from the message tables (its `Display` is the English
    /// of logs); a parser's own words stay as they are, quoted.
    pub fn text(&self) -> crate::messages::Text {
        use crate::messages::Text;
        match self {
            Refusal::Envelope(detail) => Text::new("refusal.envelope", vec![("detail", (*detail).to_owned())]),
            Refusal::Header(detail) => Text::new("refusal.header", vec![("detail", detail.clone())]),
            Refusal::UntrustedKid(kid) => Text::new("refusal.untrusted_kid", vec![("kid", kid.clone())]),
            Refusal::AlgMismatch { kid, header, anchor } => Text::new(
                "refusal.alg_mismatch",
                vec![("kid", kid.clone()), ("header", header.clone()), ("anchor", (*anchor).to_owned())],
            ),
            Refusal::BadSignature(kid) => Text::new("refusal.bad_signature", vec![("kid", kid.clone())]),
            Refusal::Payload(detail) => Text::new("refusal.payload", vec![("detail", detail.clone())]),
            Refusal::Format(format) => Text::new("refusal.format", vec![("format", format.to_string())]),
            Refusal::Rollback { installed, offered } => Text::new(
                "refusal.rollback",
                vec![("installed", installed.to_string()), ("offered", offered.to_string())],
            ),
        }
    }
}

#[derive(Debug, Deserialize)]
struct JwsHeader {
    alg: String,
    kid: String,
    typ: Option<String>,
}

/// A rule set whose signature verified and whose payload is valid.
#[derive(Debug, Clone)]
pub struct VerifiedRuleSet {
    /// The JWS text exactly as received (outer white space trimmed), kept to re-verify.
    pub jws: String,
    pub wire: RuleSetWire,
    pub rules: RuleSet,
}

/// Verifies a JWS compact rule set against `anchors` and validates its payload.
pub fn verify(jws: &str, anchors: &[TrustAnchor]) -> Result<VerifiedRuleSet, Refusal> {
    verify_owned(jws.to_owned(), anchors)
}

/// [`verify`] of a text the caller gives away, so a 25 MB rule set is not copied to be kept.
pub fn verify_owned(mut jws: String, anchors: &[TrustAnchor]) -> Result<VerifiedRuleSet, Refusal> {
    let wire = verify_wire(&jws, anchors)?;
    let rules = RuleSet::from_wire(&wire)?;
    if jws.trim().len() != jws.len() {
        jws = jws.trim().to_owned();
    }
    Ok(VerifiedRuleSet { jws, wire, rules })
}

/// The signature check and the payload's wire shape, without building the model or
/// copying the text: what proving the stored tables needs (a 25 MB rule set is held once).
pub fn verify_wire(jws: &str, anchors: &[TrustAnchor]) -> Result<RuleSetWire, Refusal> {
    verify_source(&jws.trim().as_bytes(), anchors)
}

/// [`verify_wire`] of a JWS read in pieces (the ledger's stored text): the signing input
/// is hashed and the payload decoded and parsed as they are read, so neither the text nor
/// the decoded payload is ever held whole. Refuses exactly what [`verify`] refuses, in
/// the same order; a source that cannot be read refuses as an unreadable envelope.
pub fn verify_source(src: &dyn JwsSource, anchors: &[TrustAnchor]) -> Result<RuleSetWire, Refusal> {
    const UNREADABLE: Refusal = Refusal::Envelope("the text could not be read");
    let parts = jws::split(src).map_err(|_| UNREADABLE)?.ok_or(Refusal::Envelope("not three parts"))?;
    let header = jws::read(src, parts.header.clone()).map_err(|_| UNREADABLE)?;
    let header = b64url_decode_bytes(&header).ok_or(Refusal::Envelope("header is not base64url"))?;
    let header: JwsHeader =
        serde_json::from_slice(&header).map_err(|e| Refusal::Header(format!("not the expected JSON object: {e}")))?;
    if let Some(typ) = &header.typ {
        if typ != "ruleset+json" {
            return Err(Refusal::Header(format!("typ {typ:?} is not \"ruleset+json\"")));
        }
    }
    let anchor =
        anchors.iter().find(|a| a.kid == header.kid).ok_or_else(|| Refusal::UntrustedKid(header.kid.clone()))?;
    if header.alg != anchor.key.alg().as_str() {
        return Err(Refusal::AlgMismatch { kid: header.kid, header: header.alg, anchor: anchor.key.alg().as_str() });
    }
    let signature = jws::read(src, parts.signature.clone()).map_err(|_| UNREADABLE)?;
    let signature = b64url_decode_bytes(&signature).ok_or(Refusal::Envelope("signature is not base64url"))?;
    let mut verifier = anchor.key.verifier(&signature);
    jws::for_each_chunk(src, parts.signing_input(), |_, piece| {
        verifier.update(piece);
        true
    })
    .map_err(|_| UNREADABLE)?;
    if !verifier.finish() {
        return Err(Refusal::BadSignature(anchor.kid.clone()));
    }
    jws::parse_payload(src, parts.payload).map_err(|e| match e {
        jws::PayloadError::Base64 => Refusal::Envelope("payload is not base64url"),
        jws::PayloadError::Json(e) => Refusal::Payload(e.to_string()),
        jws::PayloadError::Read(_) => UNREADABLE,
    })
}

fn b64url_decode_bytes(text: &[u8]) -> Option<Vec<u8>> {
    std::str::from_utf8(text).ok().and_then(|t| b64url_decode(t).ok())
}

// ---------------------------------------------------------------- wire shape

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct RuleSetWire {
    pub format: u64,
    pub version: u64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub issuer: Option<String>,
    pub issued_at: String,
    pub expires_at: String,
    pub timezone: String,
    pub currency: String,
    pub coupon_keys: Vec<CouponKeyWire>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_coupons_per_basket: Option<u64>,
    /// How old a CP2 presentation may be. Absent means 60; `null` is not absent.
    #[serde(default, deserialize_with = "present", skip_serializing_if = "Option::is_none")]
    pub presentation_max_age_seconds: Option<u64>,
    pub campaigns: Vec<CampaignWire>,
    #[serde(default)]
    pub revoked: Option<RevokedIds>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub offline: Option<OfflineWire>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct CouponKeyWire {
    pub kid: String,
    pub alg: Alg,
    pub key: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub not_before: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub not_after: Option<String>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct CampaignWire {
    pub id: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<BTreeMap<String, String>>,
    pub face_value: i64,
    pub min_spend: i64,
    pub valid_from: String,
    pub valid_until: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hours: Option<Vec<HoursWire>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub merchant_categories: Option<Vec<String>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub merchants: Option<Vec<String>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_per_holder_per_day: Option<u64>,
    pub status: CampaignStatus,
    /// `any` (absent) or `dynamic`; `null` is not absent.
    #[serde(default, deserialize_with = "present", skip_serializing_if = "Option::is_none")]
    pub presentation: Option<PresentationPolicy>,
}

/// For fields where `null` must refuse the rule set rather than read as absent: serde's
/// `Option` takes `null` for `None`, so the value itself is deserialized (a `null` then
/// fails as the wrong type) and an absent field is left to `#[serde(default)]`.
fn present<'de, D: serde::Deserializer<'de>, T: Deserialize<'de>>(d: D) -> Result<Option<T>, D::Error> {
    T::deserialize(d).map(Some)
}

/// Which codes a campaign takes (`campaigns[].presentation`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum PresentationPolicy {
    /// CP1 codes and CP2 presentations.
    #[default]
    Any,
    /// CP2 presentations only: a CP1 code is `presentation_required`.
    Dynamic,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct HoursWire {
    pub from: String,
    pub to: String,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct OfflineWire {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_unsynced_count: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_unsynced_value: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_hours_since_sync: Option<u64>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum CampaignStatus {
    Active,
    Paused,
    Ended,
}

// ---------------------------------------------------------------- model

#[derive(Debug, Clone)]
pub struct RuleSet {
    pub version: u64,
    pub issuer: Option<String>,
    pub issued_at: Timestamp,
    pub expires_at: Timestamp,
    pub timezone_name: String,
    pub timezone: TimeZone,
    pub currency: String,
    pub coupon_keys: Vec<CouponKey>,
    pub max_coupons_per_basket: u64,
    /// `presentation_max_age_seconds`, 10..=600, default 60.
    pub presentation_max_age: u64,
    pub campaigns: BTreeMap<String, Campaign>,
    pub offline: OfflineLimits,
    pub revoked_count: usize,
}

#[derive(Debug, Clone)]
pub struct CouponKey {
    pub kid: String,
    pub key: PublicKey,
    pub not_before: Option<Timestamp>,
    pub not_after: Option<Timestamp>,
}

#[derive(Debug, Clone)]
pub struct Campaign {
    pub id: String,
    pub name: BTreeMap<String, String>,
    pub face_value: Money,
    pub min_spend: Money,
    pub valid_from: Timestamp,
    pub valid_until: Timestamp,
    /// Local `[from, to)` windows in minutes after midnight; empty means all day.
    pub hours: Vec<(u16, u16)>,
    pub merchant_categories: Vec<String>,
    pub merchants: Vec<String>,
    pub max_per_holder_per_day: Option<u64>,
    pub status: CampaignStatus,
    pub presentation: PresentationPolicy,
}

impl Campaign {
    /// The name in `language`, falling back to English, then the id.
    pub fn display_name(&self, language: &str) -> &str {
        self.name.get(language).or_else(|| self.name.get("en")).map_or(&self.id, |s| s.as_str())
    }
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct OfflineLimits {
    pub max_unsynced_count: Option<u64>,
    pub max_unsynced_value: Option<Money>,
    pub max_hours_since_sync: Option<u64>,
}

/// `presentation_max_age_seconds` when a rule set does not say.
pub const DEFAULT_PRESENTATION_MAX_AGE: u64 = 60;
/// The bounds of `presentation_max_age_seconds`.
pub const PRESENTATION_MAX_AGE: std::ops::RangeInclusive<u64> = 10..=600;

fn invalid(msg: String) -> Refusal {
    Refusal::Payload(msg)
}

fn instant(field: &str, text: &str) -> Result<Timestamp, Refusal> {
    // RFC 3339 demands an offset; jiff's Timestamp parser demands one too.
    text.parse::<Timestamp>().map_err(|e| invalid(format!("{field} {text:?} is not an RFC 3339 instant: {e}")))
}

/// `"HH:MM"` → minutes after midnight; `24:00` only where `allow_24` is set.
fn clock_minutes(text: &str, allow_24: bool) -> Option<u16> {
    let (h, m) = text.split_once(':')?;
    if h.len() != 2 || m.len() != 2 || !h.bytes().chain(m.bytes()).all(|b| b.is_ascii_digit()) {
        return None;
    }
    let (h, m): (u16, u16) = (h.parse().ok()?, m.parse().ok()?);
    match (h, m) {
        (24, 0) if allow_24 => Some(24 * 60),
        (0..=23, 0..=59) => Some(h * 60 + m),
        _ => None,
    }
}

impl RuleSet {
    /// Validates the wire form: every rule of `spec/ruleset.md` that the JSON types alone
    /// do not enforce.
    pub fn from_wire(w: &RuleSetWire) -> Result<RuleSet, Refusal> {
        if w.format != 1 {
            return Err(Refusal::Format(w.format));
        }
        if w.version < 1 {
            return Err(invalid("version must be at least 1".into()));
        }
        let issued_at = instant("issued_at", &w.issued_at)?;
        let expires_at = instant("expires_at", &w.expires_at)?;
        let timezone = TimeZone::get(&w.timezone)
            .map_err(|_| invalid(format!("timezone {:?} is not an IANA time zone name", w.timezone)))?;
        if w.currency.len() != 3 || !w.currency.bytes().all(|b| b.is_ascii_uppercase()) {
            return Err(invalid(format!("currency {:?} is not an ISO 4217 code", w.currency)));
        }
        let mut coupon_keys = Vec::with_capacity(w.coupon_keys.len());
        for k in &w.coupon_keys {
            if coupon_keys.iter().any(|c: &CouponKey| c.kid == k.kid) {
                return Err(invalid(format!("coupon key {:?} appears twice", k.kid)));
            }
            let key = PublicKey::from_base64url(k.alg, &k.key)
                .map_err(|e| invalid(format!("coupon key {:?}: {e}", k.kid)))?;
            let not_before = k.not_before.as_deref().map(|t| instant("coupon_keys[].not_before", t)).transpose()?;
            let not_after = k.not_after.as_deref().map(|t| instant("coupon_keys[].not_after", t)).transpose()?;
            coupon_keys.push(CouponKey { kid: k.kid.clone(), key, not_before, not_after });
        }
        let max_coupons_per_basket = w.max_coupons_per_basket.unwrap_or(1);
        if max_coupons_per_basket < 1 {
            return Err(invalid("max_coupons_per_basket must be at least 1".into()));
        }
        let presentation_max_age = w.presentation_max_age_seconds.unwrap_or(DEFAULT_PRESENTATION_MAX_AGE);
        if !PRESENTATION_MAX_AGE.contains(&presentation_max_age) {
            return Err(invalid(format!(
                "presentation_max_age_seconds {presentation_max_age} is outside {}..={}",
                PRESENTATION_MAX_AGE.start(),
                PRESENTATION_MAX_AGE.end()
            )));
        }
        let mut campaigns = BTreeMap::new();
        for c in &w.campaigns {
            let campaign = Campaign::from_wire(c)?;
            if campaigns.insert(c.id.clone(), campaign).is_some() {
                return Err(invalid(format!("campaign {:?} appears twice", c.id)));
            }
        }
        let offline = match &w.offline {
            None => OfflineLimits::default(),
            Some(o) => {
                if o.max_unsynced_value.is_some_and(|v| v < 0) {
                    return Err(invalid("offline.max_unsynced_value must not be negative".into()));
                }
                if o.max_unsynced_value.is_some_and(|v| v > Money::MAX.0) {
                    return Err(invalid("offline.max_unsynced_value is over 10^11 minor units".into()));
                }
                OfflineLimits {
                    max_unsynced_count: o.max_unsynced_count,
                    max_unsynced_value: o.max_unsynced_value.map(Money),
                    max_hours_since_sync: o.max_hours_since_sync,
                }
            }
        };
        Ok(RuleSet {
            version: w.version,
            issuer: w.issuer.clone(),
            issued_at,
            expires_at,
            timezone_name: w.timezone.clone(),
            timezone,
            currency: w.currency.clone(),
            coupon_keys,
            max_coupons_per_basket,
            presentation_max_age,
            campaigns,
            offline,
            revoked_count: w.revoked.as_ref().map_or(0, RevokedIds::listed),
        })
    }

    pub fn currency_digits(&self) -> u32 {
        currency_digits(&self.currency)
    }

    pub fn coupon_key(&self, kid: &str) -> Option<&CouponKey> {
        self.coupon_keys.iter().find(|k| k.kid == kid)
    }
}

impl Campaign {
    fn from_wire(c: &CampaignWire) -> Result<Campaign, Refusal> {
        let at = |what: &str| format!("campaign {:?}: {what}", c.id);
        if !is_id(&c.id) {
            return Err(invalid(format!("campaign id {:?} must be 1..64 characters of A-Z a-z 0-9 . _ -", c.id)));
        }
        if c.face_value < 1 {
            return Err(invalid(at("face_value must be at least 1")));
        }
        if c.min_spend < 0 {
            return Err(invalid(at("min_spend must not be negative")));
        }
        if c.face_value > Money::MAX.0 || c.min_spend > Money::MAX.0 {
            return Err(invalid(at("face_value and min_spend must be at most 10^11 minor units")));
        }
        let mut hours = Vec::new();
        for h in c.hours.iter().flatten() {
            let from = clock_minutes(&h.from, false);
            let to = clock_minutes(&h.to, true);
            match (from, to) {
                (Some(f), Some(t)) if f < t => hours.push((f, t)),
                _ => {
                    return Err(invalid(at(&format!(
                        "hours {:?}-{:?} is not a HH:MM window with from < to",
                        h.from, h.to
                    ))))
                }
            }
        }
        if c.max_per_holder_per_day == Some(0) {
            return Err(invalid(at("max_per_holder_per_day must be at least 1")));
        }
        Ok(Campaign {
            id: c.id.clone(),
            name: c.name.clone().unwrap_or_default(),
            face_value: Money(c.face_value),
            min_spend: Money(c.min_spend),
            valid_from: instant("valid_from", &c.valid_from)?,
            valid_until: instant("valid_until", &c.valid_until)?,
            hours,
            merchant_categories: c.merchant_categories.clone().unwrap_or_default(),
            merchants: c.merchants.clone().unwrap_or_default(),
            max_per_holder_per_day: c.max_per_holder_per_day,
            status: c.status,
            presentation: c.presentation.unwrap_or_default(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::issuer::Issuer;

    fn with(edit: impl FnOnce(&mut serde_json::Value)) -> Result<RuleSet, Refusal> {
        let issuer = Issuer::from_seed(5);
        let mut payload = issuer.ruleset_payload(1, "2026-11-28T04:00:00Z".parse().unwrap(), &["A", "B"], &[]);
        edit(&mut payload);
        let anchors = parse_anchors(&issuer.trust_anchors_json()).unwrap();
        verify(&issuer.sign_ruleset(&payload), &anchors).map(|v| v.rules)
    }

    #[test]
    fn presentation_fields_default_and_bounds() {
        let rules = with(|_| {}).unwrap();
        assert_eq!(rules.presentation_max_age, 60);
        assert_eq!(rules.campaigns["A"].presentation, PresentationPolicy::Any);
        let rules = with(|p| {
            p["presentation_max_age_seconds"] = 10.into();
            p["campaigns"][0]["presentation"] = "dynamic".into();
            p["campaigns"][1]["presentation"] = "any".into();
        })
        .unwrap();
        assert_eq!(rules.presentation_max_age, 10);
        assert_eq!(rules.campaigns["A"].presentation, PresentationPolicy::Dynamic);
        assert_eq!(rules.campaigns["B"].presentation, PresentationPolicy::Any);
        assert_eq!(with(|p| p["presentation_max_age_seconds"] = 600.into()).unwrap().presentation_max_age, 600);
    }

    #[test]
    fn presentation_fields_refuse_anything_else_null_included() {
        for bad in [
            serde_json::json!(null),
            serde_json::json!(9),
            serde_json::json!(601),
            serde_json::json!(-60),
            serde_json::json!(60.0),
            serde_json::json!(60.5),
            serde_json::json!("60"),
            serde_json::json!(1e30),
            serde_json::json!(true),
        ] {
            assert!(with(|p| p["presentation_max_age_seconds"] = bad.clone()).is_err(), "age {bad}");
        }
        for bad in [
            serde_json::json!(null),
            serde_json::json!("static"),
            serde_json::json!("Dynamic"),
            serde_json::json!(true),
            serde_json::json!(["dynamic"]),
        ] {
            assert!(with(|p| p["campaigns"][0]["presentation"] = bad.clone()).is_err(), "presentation {bad}");
        }
    }
}
