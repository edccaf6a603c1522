//! A small coupon issuer and holder app: signs CP1 codes and JWS rule sets with Ed25519
//! keys from fixed seeds (or, for `redeemd sandbox`, from random secrets kept in a 0600
//! file: [`IssuerKeys`]), binds coupons to a holder key ([`Holder`], Ed25519 or P-256) and
//! makes that holder's CP2 presentations at a given instant. It exists for the `demo`
//! command and pages, the sandbox, the tests, the benchmarks and the fuzz seeds — so they
//! never depend on the clock-bound shared vectors — and is never used to verify.
//!
//! Keys made from a seed are public knowledge: nothing here is for production issuing.

use crate::base45;
use crate::cbor;
use crate::coupon::{sig_structure, PREFIX, PREFIX_CP2};
use crate::keys::{b64url_encode, Alg};
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
    /// Payload key 8: a COSE_Key, CBOR-encoded, written as it is (so tests can also bind
    /// a coupon to a broken key). [`CodeSpec::bound_to`] sets a holder's.
    pub holder_key: Option<Vec<u8>>,
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
            holder_key: None,
        }
    }

    /// The same coupon bound to `holder`'s key: redeemable only as its presentations.
    pub fn bound_to(mut self, holder: &Holder) -> CodeSpec {
        self.holder_key = Some(holder.cose_key());
        self
    }
}

/// An issuer's secret Ed25519 keys and their key ids: what [`Issuer::from_keys`] takes,
/// and what the sandbox keeps in its 0600 key file. `Debug` never shows the secrets.
#[derive(Clone, PartialEq, Eq)]
pub struct IssuerKeys {
    pub coupon_secret: [u8; 32],
    pub coupon_kid: Vec<u8>,
    pub ruleset_secret: [u8; 32],
    pub ruleset_kid: String,
}

impl std::fmt::Debug for IssuerKeys {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("IssuerKeys")
            .field("coupon_kid", &self.coupon_kid)
            .field("ruleset_kid", &self.ruleset_kid)
            .finish_non_exhaustive()
    }
}

impl IssuerKeys {
    /// The keys [`Issuer::from_seed`] uses: public knowledge.
    pub fn from_seed(seed: u8) -> IssuerKeys {
        IssuerKeys {
            coupon_secret: [seed; 32],
            coupon_kid: vec![b'c', seed],
            ruleset_secret: [seed ^ 0x5a; 32],
            ruleset_kid: format!("rs-{seed}"),
        }
    }

    /// Keys from the operating system's random source, their kids taken from the public
    /// keys (8 bytes of their SHA-256), so two sandboxes never share a kid.
    pub fn random() -> IssuerKeys {
        let coupon_secret = crate::secret::random_bytes::<32>();
        let ruleset_secret = crate::secret::random_bytes::<32>();
        let kid = |secret: &[u8; 32]| {
            crate::secret::sha256(SigningKey::from_bytes(secret).verifying_key().as_bytes())[..8].to_vec()
        };
        IssuerKeys {
            coupon_kid: kid(&coupon_secret),
            ruleset_kid: b64url_encode(&kid(&ruleset_secret)),
            coupon_secret,
            ruleset_secret,
        }
    }
}

impl Issuer {
    /// Two keys derived from `seed`: one signs coupons, the other rule sets.
    pub fn from_seed(seed: u8) -> Issuer {
        Issuer::from_keys(&IssuerKeys::from_seed(seed))
    }

    /// An issuer signing with `keys`.
    pub fn from_keys(keys: &IssuerKeys) -> Issuer {
        Issuer {
            coupon_key: SigningKey::from_bytes(&keys.coupon_secret),
            coupon_kid: keys.coupon_kid.clone(),
            ruleset_key: SigningKey::from_bytes(&keys.ruleset_secret),
            ruleset_kid: keys.ruleset_kid.clone(),
        }
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
        cp1_text(&self.coupon_cose(spec))
    }

    /// Signs a coupon and returns its COSE_Sign1 bytes (tagged): what a holder's app keeps
    /// and wraps into presentations, and what a CP1 code carries after zlib.
    pub fn coupon_cose(&self, spec: &CodeSpec) -> Vec<u8> {
        let mut payload = Vec::new();
        let entries = 4
            + usize::from(spec.not_before.is_some())
            + usize::from(spec.not_after.is_some())
            + usize::from(spec.holder_key.is_some());
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
        if let Some(key) = &spec.holder_key {
            cbor::write_int(&mut payload, 8);
            payload.extend_from_slice(key);
        }
        let mut protected = Vec::new();
        cbor::write_header(&mut protected, 5, 2);
        cbor::write_int(&mut protected, 1);
        cbor::write_int(&mut protected, -8);
        cbor::write_int(&mut protected, 4);
        cbor::write_bytes(&mut protected, &self.coupon_kid);
        let signature = self.coupon_key.sign(&sig_structure(&protected, &payload)).to_bytes();
        sign1(&protected, &payload, &signature)
    }
}

/// A tagged COSE_Sign1 with an empty unprotected header.
fn sign1(protected: &[u8], payload: &[u8], signature: &[u8]) -> Vec<u8> {
    let mut cose = Vec::new();
    cbor::write_header(&mut cose, 6, 18);
    cbor::write_header(&mut cose, 4, 4);
    cbor::write_bytes(&mut cose, protected);
    cbor::write_header(&mut cose, 5, 0);
    cbor::write_bytes(&mut cose, payload);
    cbor::write_bytes(&mut cose, signature);
    cose
}

/// `prefix` + base45(zlib(`bytes`)).
fn text(prefix: &str, bytes: &[u8]) -> String {
    let mut z = flate2::write::ZlibEncoder::new(Vec::new(), flate2::Compression::best());
    z.write_all(bytes).expect("writing to a Vec cannot fail");
    let compressed = z.finish().expect("writing to a Vec cannot fail");
    format!("{prefix}{}", base45::encode(&compressed))
}

/// The CP1 code of a coupon's COSE_Sign1 bytes. For a holder-bound coupon this is the
/// static copy that terminals refuse with `presentation_required`.
pub fn cp1_text(coupon_cose: &[u8]) -> String {
    text(PREFIX, coupon_cose)
}

/// A holder app's device key, and the presentations it signs (`spec/presentation.md`,
/// "The holder app").
///
/// How the demo page uses it (the QR that refreshes every 15 s, and a refused screenshot):
///
/// 1. Once, at start: `let holder = Holder::ed25519_from_seed(s)` (or `p256_from_seed`,
///    the keystore kind); put the issuer's coupon key in the demo rule set as usual and
///    sign the coupon bound to the holder: `let cose =
///    issuer.coupon_cose(&CodeSpec::new(id, campaign, now).bound_to(&holder))`.
///    Keep `cose` (the app keeps these bytes; never show `cp1_text(&cose)`, terminals
///    refuse it as `presentation_required`).
/// 2. Every 15 s, and when the page opens: `holder.present(&cose, clock.now())` is the
///    text for the QR code (alphanumeric mode, ~450 characters: version 13 at level M).
/// 3. The "screenshot": `holder.present(&cose, clock.now() - 2 minutes)`, made once and
///    shown as a still image; scanning it answers `presentation_expired` (older than
///    the rule set's `presentation_max_age_seconds`, 60 by default).
///
/// Once any presentation of the coupon is accepted, every other one is `already_redeemed`
/// until that redemption is voided: the demo should offer a fresh coupon (or a void).
pub struct Holder {
    key: HolderSigner,
}

enum HolderSigner {
    Ed25519(SigningKey),
    P256(p256::ecdsa::SigningKey),
}

impl Holder {
    /// An Ed25519 holder key (the software-key kind) from a seed.
    pub fn ed25519_from_seed(seed: u8) -> Holder {
        Holder { key: HolderSigner::Ed25519(SigningKey::from_bytes(&[seed ^ 0xa5; 32])) }
    }

    /// An Ed25519 holder key from its 32 secret bytes (a sandbox holder file keeps them).
    pub fn ed25519_from_secret(secret: [u8; 32]) -> Holder {
        Holder { key: HolderSigner::Ed25519(SigningKey::from_bytes(&secret)) }
    }

    /// A P-256 holder key (the platform-keystore kind) from a seed.
    pub fn p256_from_seed(seed: u8) -> Holder {
        use sha2::Digest as _;
        let mut counter = 0u8;
        loop {
            // A SHA-256 output is a valid scalar but for a chance of about 2^-32.
            let scalar = sha2::Sha256::digest([b'h', seed, counter]);
            if let Ok(key) = p256::ecdsa::SigningKey::from_slice(&scalar) {
                return Holder { key: HolderSigner::P256(key) };
            }
            counter = counter.wrapping_add(1);
        }
    }

    /// The public key as the COSE_Key map (CBOR) a coupon's payload key 8 carries.
    pub fn cose_key(&self) -> Vec<u8> {
        let mut out = Vec::new();
        match &self.key {
            HolderSigner::Ed25519(key) => {
                cbor::write_header(&mut out, 5, 3);
                cbor::write_int(&mut out, 1); // kty: OKP
                cbor::write_int(&mut out, 1);
                cbor::write_int(&mut out, -1); // crv: Ed25519
                cbor::write_int(&mut out, 6);
                cbor::write_int(&mut out, -2); // x
                cbor::write_bytes(&mut out, key.verifying_key().as_bytes());
            }
            HolderSigner::P256(key) => {
                let point = key.verifying_key().to_sec1_point(false);
                let xy = point.as_bytes();
                cbor::write_header(&mut out, 5, 4);
                cbor::write_int(&mut out, 1); // kty: EC2
                cbor::write_int(&mut out, 2);
                cbor::write_int(&mut out, -1); // crv: P-256
                cbor::write_int(&mut out, 1);
                cbor::write_int(&mut out, -2); // x
                cbor::write_bytes(&mut out, &xy[1..33]);
                cbor::write_int(&mut out, -3); // y
                cbor::write_bytes(&mut out, &xy[33..65]);
            }
        }
        out
    }

    /// The presentation the app shows at instant `at` (`presented_at` = its whole seconds).
    pub fn present(&self, coupon_cose: &[u8], at: Timestamp) -> String {
        self.present_at(coupon_cose, u64::try_from(at.as_second()).unwrap_or(0))
    }

    /// The presentation with `presented_at` given in Unix seconds.
    pub fn present_at(&self, coupon_cose: &[u8], presented_at: u64) -> String {
        let mut payload = Vec::new();
        cbor::write_header(&mut payload, 5, 2);
        cbor::write_int(&mut payload, 1);
        cbor::write_bytes(&mut payload, coupon_cose);
        cbor::write_int(&mut payload, 2);
        cbor::write_header(&mut payload, 0, presented_at);
        let mut protected = Vec::new();
        cbor::write_header(&mut protected, 5, 1);
        cbor::write_int(&mut protected, 1);
        cbor::write_int(&mut protected, self.alg().cose_id());
        let signature = self.sign(&sig_structure(&protected, &payload));
        text(PREFIX_CP2, &sign1(&protected, &payload, &signature))
    }

    pub fn alg(&self) -> Alg {
        match self.key {
            HolderSigner::Ed25519(_) => Alg::EdDSA,
            HolderSigner::P256(_) => Alg::ES256,
        }
    }

    /// Signs with the holder key: Ed25519, or ES256 as 64 bytes `r‖s` (RFC 6979, low S).
    pub fn sign(&self, message: &[u8]) -> Vec<u8> {
        match &self.key {
            HolderSigner::Ed25519(key) => key.sign(message).to_bytes().to_vec(),
            HolderSigner::P256(key) => {
                let signature: p256::ecdsa::Signature = p256::ecdsa::signature::Signer::sign(key, message);
                signature.to_bytes().to_vec()
            }
        }
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

    #[test]
    fn holder_presentations_verify_with_both_keys() {
        let issuer = Issuer::from_seed(7);
        let now: Timestamp = "2026-11-28T04:00:00.750Z".parse().unwrap();
        let key = crate::keys::PublicKey::from_base64url(
            crate::keys::Alg::EdDSA,
            issuer.coupon_key_json()["key"].as_str().unwrap(),
        )
        .unwrap();
        for holder in [Holder::ed25519_from_seed(1), Holder::p256_from_seed(1)] {
            let cose = issuer.coupon_cose(&CodeSpec::new("H-1", "DEMO", now).bound_to(&holder));
            let text = holder.present(&cose, now);
            let verified = coupon::decode_presentation(&text).unwrap().verify(&key).unwrap();
            // Whole seconds, rounded down.
            assert_eq!(verified.presented_at, 1_795_838_400);
            assert_eq!(verified.coupon.holder_key.map(|k| k.alg()), Some(holder.alg()));
            // The CP1 copy still decodes (and is refused by the decision, not the decoder).
            assert!(coupon::decode(&cp1_text(&cose)).unwrap().verify(&key).is_some());
            let other = Holder::ed25519_from_seed(2).present(&cose, now);
            assert!(coupon::decode_presentation(&other).unwrap().verify(&key).is_none());
        }
    }
}
