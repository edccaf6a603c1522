//! Any text as a JWS rule set (against a real anchor), and any bytes as a signed payload's
//! JSON: refusals only, never a panic.
#![no_main]

use libfuzzer_sys::fuzz_target;
use redeemd::issuer::Issuer;
use redeemd::ruleset::{self, RuleSet, RuleSetWire};
use std::sync::OnceLock;

fn anchors() -> &'static Vec<ruleset::TrustAnchor> {
    static ANCHORS: OnceLock<Vec<ruleset::TrustAnchor>> = OnceLock::new();
    ANCHORS.get_or_init(|| ruleset::parse_anchors(&Issuer::from_seed(1).trust_anchors_json()).unwrap())
}

fuzz_target!(|data: &[u8]| {
    if let Ok(text) = std::str::from_utf8(data) {
        let _ = ruleset::verify(text, anchors());
        let _ = ruleset::parse_anchors(text);
    }
    if let Ok(wire) = serde_json::from_slice::<RuleSetWire>(data) {
        let _ = RuleSet::from_wire(&wire);
    }
});
