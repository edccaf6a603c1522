//! A small coupon issuer: signs CP1 codes and JWS rule sets with Ed25519 keys from fixed
//! seeds. It exists for the `demo` command, the tests, the benchmarks and the fuzz seeds —
//! so they never depend on the clock-bound shared vectors — and is never used to verify.
//!
//! Keys made from a seed are public knowledge: nothing here is for production issuing.

use crate::base45;
use crate::cbor;
use crate::coupon::{sig_structure, PREFIX};
use crate::keys::b64url_encode;
use ed25519_dalek::{Signer, SigningKey};
use jiff::{SignedDuration, Timestamp};
use serde_json::{json, Value};
use std::io::Write;

pub struct Issuer {
    coupon_key: SigningKey,
    coupon_kid: Vec<u8>,
    ruleset_key: SigningKey,
    ruleset_kid: String,
}

/// What a code says (the payload of `spec/coupon-code.md`).
#[derive(Debug, Clone)]
pub struct CodeSpec {
    pub coupon_id: String,
    pub campaign_id: String,
    pub holder: Vec<u8>,
    pub issued_at: u64,
    pub not_before: Option<u64>,
    pub not_after: Option<u64>,
}

impl CodeSpec {
    pub fn new(coupon_id: impl Into<String>, campaign_id: impl Into<String>, issued_at: Timestamp) -> CodeSpec {
        CodeSpec {
            coupon_id: coupon_id.into(),
            campaign_id: campaign_id.into(),
            holder: b"holder-0001".to_vec(),
            issued_at: u64::try_from(issued_at.as_second()).unwrap_or(0),
            not_before: None,
            not_after: None,
        }
    }
}

impl Issuer {
    /// Two keys derived from `seed`: one signs coupons, the other rule sets.
    pub fn from_seed(seed: u8) -> Issuer {
        let coupon_key = SigningKey::from_bytes(&[seed; 32]);
        let ruleset_key = SigningKey::from_bytes(&[seed ^ 0x5a; 32]);
        Issuer { coupon_kid: vec![b'c', seed], ruleset_kid: format!("rs-{seed}"), coupon_key, ruleset_key }
    }

    /// The trust-anchor file content for this issuer's rule-set key.
    pub fn trust_anchors_json(&self) -> String {
        json!([{"kid": self.ruleset_kid, "alg": "EdDSA", "key": b64url_encode(self.ruleset_key.verifying_key().as_bytes())}])
            .to_string()
    }

    /// The `coupon_keys` entry rule sets carry for this issuer's coupon key.
    pub fn coupon_key_json(&self) -> Value {
        json!({"kid": b64url_encode(&self.coupon_kid), "alg": "EdDSA",
               "key": b64url_encode(self.coupon_key.verifying_key().as_bytes())})
    }

    /// Signs a rule-set payload as JWS compact text.
    pub fn sign_ruleset(&self, payload: &Value) -> String {
        let header = json!({"alg": "EdDSA", "kid": self.ruleset_kid, "typ": "ruleset+json"});
        let input = format!(
            "{}.{}",
            b64url_encode(header.to_string().as_bytes()),
            b64url_encode(payload.to_string().as_bytes())
        );
        let signature = self.ruleset_key.sign(input.as_bytes());
        format!("{input}.{}", b64url_encode(&signature.to_bytes()))
    }

    /// A rule set valid from a day before `now` for a week, with one campaign per entry of
    /// `campaigns` (`spend 40, get 10 off`, all day, every merchant) and `revoked` ids.
    pub fn ruleset_payload(&self, version: u64, now: Timestamp, campaigns: &[&str], revoked: &[&str]) -> Value {
        let day = SignedDuration::from_hours(24);
        let campaigns: Vec<Value> = campaigns
            .iter()
            .map(|id| {
                json!({"id": id, "name": {"zh-CN": format!("{id} 消费券"), "en": format!("{id} coupon")},
                       "face_value": 1000, "min_spend": 4000,
                       "valid_from": (now - day).to_string(), "valid_until": (now + day * 30).to_string(),
                       "status": "active"})
            })
            .collect();
        json!({
            "format": 1, "version": version, "issuer": "redeemd-demo",
            "issued_at": (now - day).to_string(), "expires_at": (now + day * 7).to_string(),
            "timezone": "Asia/Shanghai", "currency": "CNY",
            "coupon_keys": [self.coupon_key_json()],
            "max_coupons_per_basket": 1,
            "campaigns": campaigns,
            "revoked": revoked,
        })
    }

    /// Signs a CP1 code.
    pub fn code(&self, spec: &CodeSpec) -> String {
        let mut payload = Vec::new();
        let entries = 4 + usize::from(spec.not_before.is_some()) + usize::from(spec.not_after.is_some());
        cbor::write_header(&mut payload, 5, entries as u64);
        cbor::write_int(&mut payload, 1);
        cbor::write_text(&mut payload, &spec.coupon_id);
        cbor::write_int(&mut payload, 2);
        cbor::write_text(&mut payload, &spec.campaign_id);
        cbor::write_int(&mut payload, 3);
        cbor::write_bytes(&mut payload, &spec.holder);
        cbor::write_int(&mut payload, 4);
        cbor::write_header(&mut payload, 0, spec.issued_at);
        for (label, value) in [(5, spec.not_before), (6, spec.not_after)] {
            if let Some(v) = value {
                cbor::write_int(&mut payload, label);
                cbor::write_header(&mut payload, 0, v);
            }
        }
        let mut protected = Vec::new();
        cbor::write_header(&mut protected, 5, 2);
        cbor::write_int(&mut protected, 1);
        cbor::write_int(&mut protected, -8);
        cbor::write_int(&mut protected, 4);
        cbor::write_bytes(&mut protected, &self.coupon_kid);
        let signature = self.coupon_key.sign(&sig_structure(&protected, &payload)).to_bytes();
        let mut cose = Vec::new();
        cbor::write_header(&mut cose, 6, 18);
        cbor::write_header(&mut cose, 4, 4);
        cbor::write_bytes(&mut cose, &protected);
        cbor::write_header(&mut cose, 5, 0);
        cbor::write_bytes(&mut cose, &payload);
        cbor::write_bytes(&mut cose, &signature);
        let mut z = flate2::write::ZlibEncoder::new(Vec::new(), flate2::Compression::best());
        z.write_all(&cose).expect("writing to a Vec cannot fail");
        let compressed = z.finish().expect("writing to a Vec cannot fail");
        format!("{PREFIX}{}", base45::encode(&compressed))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::coupon;
    use crate::ruleset;

    #[test]
    fn what_it_signs_verifies() {
        let issuer = Issuer::from_seed(7);
        let now: Timestamp = "2026-11-28T04:00:00Z".parse().unwrap();
        let anchors = ruleset::parse_anchors(&issuer.trust_anchors_json()).unwrap();
        let jws = issuer.sign_ruleset(&issuer.ruleset_payload(3, now, &["DEMO"], &["X-1"]));
        let verified = ruleset::verify(&jws, &anchors).unwrap();
        assert_eq!(verified.rules.version, 3);
        let code = issuer.code(&CodeSpec::new("C-1", "DEMO", now));
        let unverified = coupon::decode(&code).unwrap();
        let key = verified.rules.coupon_key(&b64url_encode(unverified.kid())).unwrap();
        assert_eq!(unverified.verify(&key.key).unwrap().coupon.coupon_id.as_str(), "C-1");
    }
}
