//! Any text as a JWS rule set (against a real anchor), and any bytes as a signed payload's
//! JSON: refusals only, never a panic. The streaming path (payload decoded and parsed in
//! pieces, revoked ids held compactly) must agree with decoding whole and
//! `serde_json::from_slice`: the same wire or the same refusal, for any piece size; and
//! the same bytes signed by the anchor's key must verify exactly when they parse.
#![no_main]

use libfuzzer_sys::fuzz_target;
use redeemd::issuer::Issuer;
use redeemd::jws;
use redeemd::keys::b64url_encode;
use redeemd::ruleset::{self, RuleSet, RuleSetWire};
use std::sync::OnceLock;

fn anchors() -> &'static Vec<ruleset::TrustAnchor> {
    static ANCHORS: OnceLock<Vec<ruleset::TrustAnchor>> = OnceLock::new();
    ANCHORS.get_or_init(|| ruleset::parse_anchors(&Issuer::from_seed(1).trust_anchors_json()).unwrap())
}

/// The rule-set key of `Issuer::from_seed(1)` (its seed XOR 0x5a), to sign as it does.
fn signing_key() -> &'static ed25519_dalek::SigningKey {
    static KEY: OnceLock<ed25519_dalek::SigningKey> = OnceLock::new();
    KEY.get_or_init(|| ed25519_dalek::SigningKey::from_bytes(&[1 ^ 0x5a; 32]))
}

/// The wire as comparable text (the revoked ids serialize sorted and deduplicated).
fn shown(wire: &RuleSetWire) -> String {
    serde_json::to_string(wire).unwrap()
}

/// An error without its position: reading from a stream, serde_json may place an error one
/// column later than reading from a slice (it has consumed the byte it peeked at).
fn unplaced(error: &str) -> &str {
    error.rfind(" at line ").map_or(error, |i| &error[..i])
}

fuzz_target!(|data: &[u8]| {
    if let Ok(text) = std::str::from_utf8(data) {
        let _ = ruleset::verify(text, anchors());
        let _ = ruleset::parse_anchors(text);
    }
    let whole = serde_json::from_slice::<RuleSetWire>(data);
    if let Ok(wire) = &whole {
        let _ = RuleSet::from_wire(wire);
    }
    let want = whole.as_ref().map(shown).map_err(|e| unplaced(&e.to_string()).to_owned());

    // The same bytes as a base64url payload, parsed in pieces of a fuzzer-chosen size.
    let p64 = b64url_encode(data);
    let piece = 4 * (1 + usize::from(data.first().copied().unwrap_or(0) % 32));
    let streamed = jws::parse_payload_in_pieces::<RuleSetWire>(&p64.as_bytes(), 0..p64.len(), piece);
    let got = match &streamed {
        Ok(wire) => Ok(shown(wire)),
        Err(jws::PayloadError::Json(e)) => Err(unplaced(&e.to_string()).to_owned()),
        Err(other) => panic!("valid base64url refused as {other:?}"),
    };
    assert_eq!(got, want, "piece {piece}");

    // Signed by the trusted key: verifies exactly when the payload parses, to the same wire.
    if data.len() <= 4096 {
        let header = b64url_encode(br#"{"alg":"EdDSA","kid":"rs-1","typ":"ruleset+json"}"#);
        let input = format!("{header}.{p64}");
        let signature = ed25519_dalek::Signer::sign(signing_key(), input.as_bytes());
        let signed = format!("{input}.{}", b64url_encode(&signature.to_bytes()));
        match (ruleset::verify_wire(&signed, anchors()), &whole) {
            (Ok(wire), Ok(expected)) => assert_eq!(shown(&wire), shown(expected)),
            (Err(ruleset::Refusal::Payload(got)), Err(expected)) => {
                assert_eq!(unplaced(&got), unplaced(&expected.to_string()))
            }
            (got, expected) => panic!("signed payload: verify {got:?}, from_slice {expected:?}"),
        }
    }
});
