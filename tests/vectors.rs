//! Every case of the shared CP1 vectors, through the library: rule-set steps through the
//! import path, decisions through the agent (checkout-level cases included), and the
//! third-party data through the layer functions.

mod common;

use common::vectors::{assert_decision_cases, assert_ruleset_cases, lines};
use common::{hex, vectors_dir};
use redeemd::coupon::{self, AlgId};
use redeemd::keys::{Alg, PublicKey};
use serde_json::Value;

#[test]
fn copies_match_the_shared_vectors() {
    common::assert_copy_matches_shared("");
}

#[test]
fn ruleset_cases() {
    assert_ruleset_cases("ruleset-cases.jsonl", 14);
}

#[test]
fn decision_cases() {
    assert_decision_cases("decisions.jsonl", 116, |_, _, _| {});
}

#[test]
fn base45_rfc_examples() {
    let data: Value =
        serde_json::from_str(&std::fs::read_to_string(vectors_dir().join("external/base45.json")).unwrap()).unwrap();
    for pair in data["encode"].as_array().unwrap() {
        let (plain, encoded) = (pair[0].as_str().unwrap(), pair[1].as_str().unwrap());
        assert_eq!(redeemd::base45::encode(plain.as_bytes()), encoded);
        assert_eq!(redeemd::base45::decode(encoded).unwrap(), plain.as_bytes());
    }
    for bad in data["decode_invalid"].as_array().unwrap() {
        assert!(redeemd::base45::decode(bad.as_str().unwrap()).is_err(), "{bad} must not decode");
    }
}

/// What a CP1 decoder says of a COSE object at the signature layer, given the key.
fn sign1_verdict(cose: &[u8], alg: &str, key: &str) -> &'static str {
    let Ok(sign1) = coupon::parse_sign1(cose) else {
        return "malformed";
    };
    let alg = match alg {
        "EdDSA" => Alg::EdDSA,
        "ES256" => Alg::ES256,
        other => panic!("vector key alg {other}"),
    };
    let key = PublicKey::from_base64url(alg, key).unwrap();
    if sign1.alg == AlgId::Other || !sign1.verify_with(&key) {
        return "bad_signature";
    }
    "verified"
}

#[test]
fn cose_working_group_examples() {
    let cases = lines("external/cose-sign1.jsonl");
    assert_eq!(cases.len(), 12);
    for case in cases {
        let got = sign1_verdict(
            &hex(case["cose_hex"].as_str().unwrap()),
            case["key_alg"].as_str().unwrap(),
            case["key"].as_str().unwrap(),
        );
        assert_eq!(got, case["expect"].as_str().unwrap(), "{}", case["title"]);
    }
}

#[test]
fn eu_dcc_test_data() {
    let cases = lines("external/dcc.jsonl");
    assert_eq!(cases.len(), 504);
    let mut checked = 0;
    for case in cases {
        let source = case["source"].as_str().unwrap();
        let expect = &case["expect"];
        let text = case["text"].as_str().unwrap_or("");
        let compressed = case["compressed_hex"].as_str().map(hex);
        let cose = case["cose_hex"].as_str().map(hex);
        if expect["b45decode"] == true {
            let body = text.strip_prefix("HC1:").unwrap_or(text);
            let decoded = redeemd::base45::decode(body).unwrap_or_else(|e| panic!("{source}: base45 {e}"));
            if let Some(c) = &compressed {
                assert_eq!(&decoded, c, "{source}: base45");
            }
        }
        if expect["b45decode"] == false {
            let body = text.strip_prefix("HC1:");
            assert!(body.is_none_or(|b| redeemd::base45::decode(b).is_err()), "{source}: base45 must fail");
        }
        if expect["compression"] == true {
            if let (Some(c), Some(cose)) = (&compressed, &cose) {
                assert_eq!(&coupon::inflate(c).unwrap_or_else(|e| panic!("{source}: {e}")), cose, "{source}: inflate");
            }
        }
        if let (Some(want), Some(cose)) = (case["cp1"].as_str(), &cose) {
            let got = sign1_verdict(cose, case["key_alg"].as_str().unwrap(), case["key"].as_str().unwrap());
            assert_eq!(got, want, "{source}: {}", case["description"]);
            checked += 1;
        }
    }
    assert!(checked > 480, "only {checked} signature checks ran");
}
