//! Every case of the shared CP1 vectors, through the library: rule-set steps through the
//! import path, decisions through the agent (checkout-level cases included), and the
//! third-party data through the layer functions.

mod common;

use common::{hex, ts, vectors_dir};
use redeemd::agent::{Agent, ImportError};
use redeemd::clock::ManualClock;
use redeemd::coupon::{self, AlgId};
use redeemd::decision::Terminal;
use redeemd::keys::{Alg, PublicKey};
use redeemd::messages::Language;
use redeemd::money::Money;
use redeemd::ruleset::parse_anchors;
use redeemd::store::{CheckoutRef, Install, Store};
use serde_json::Value;
use std::path::Path;

fn lines(name: &str) -> Vec<Value> {
    let text = std::fs::read_to_string(vectors_dir().join(name)).unwrap();
    text.lines().filter(|l| !l.trim().is_empty()).map(|l| serde_json::from_str(l).unwrap()).collect()
}

/// `lazy`: an agent that loads campaigns as codes name them (the command line's).
fn agent(dir: &Path, terminal: &Value, clock: &ManualClock, lazy: bool) -> Agent {
    let anchors = parse_anchors(&std::fs::read_to_string(vectors_dir().join("trust-keys.json")).unwrap()).unwrap();
    let store = Store::open(&dir.join("ledger.sqlite")).unwrap();
    let terminal_id = Terminal {
        merchant_id: terminal["merchant_id"].as_str().unwrap().into(),
        merchant_category: terminal["merchant_category"].as_str().unwrap().into(),
    };
    let tz = jiff::tz::TimeZone::get(terminal["timezone"].as_str().unwrap_or("Asia/Shanghai")).unwrap();
    let open = if lazy { Agent::new_for_codes } else { Agent::new };
    open(store, terminal_id, anchors, Language::En, tz, Box::new(clock.clone())).unwrap()
}

#[test]
fn copies_match_the_shared_vectors() {
    common::assert_copy_matches_shared("");
}

#[test]
fn ruleset_cases() {
    let cases = lines("ruleset-cases.jsonl");
    assert_eq!(cases.len(), 14);
    for case in cases {
        let name = case["name"].as_str().unwrap();
        let dir = tempfile::tempdir().unwrap();
        let clock = ManualClock::new(jiff::Timestamp::UNIX_EPOCH);
        let terminal = serde_json::json!({"merchant_id": "M-000123", "merchant_category": "dining"});
        let mut agent = agent(dir.path(), &terminal, &clock, false);
        for (i, step) in case["steps"].as_array().unwrap().iter().enumerate() {
            clock.set(ts(step["at"].as_str().unwrap()));
            let jws = std::fs::read_to_string(vectors_dir().join(step["import"].as_str().unwrap())).unwrap();
            let before = agent.store().counts().unwrap();
            let got = match agent.import_ruleset(jws.as_str()) {
                Ok(Install::Installed { .. }) => "installed",
                Ok(Install::Unchanged) => "unchanged",
                Err(ImportError::Refused(_)) => "refused",
                Err(e) => panic!("{name} step {i}: {e}"),
            };
            assert_eq!(got, step["expect"].as_str().unwrap(), "{name} step {i}");
            if got != "installed" {
                assert_eq!(agent.store().counts().unwrap(), before, "{name} step {i} changed the database");
            }
            let version = agent.installed().map(|i| i.rules.version);
            assert_eq!(version, step["version"].as_u64(), "{name} step {i}: version in force");
            // What is in force survives a reopen (the tables, not just memory).
            let reopened = Store::open(&dir.path().join("ledger.sqlite")).unwrap().ruleset().unwrap();
            assert_eq!(reopened.map(|i| i.rules.version), version, "{name} step {i}: after reopen");
        }
    }
}

#[test]
fn decision_cases() {
    let cases = lines("decisions.jsonl");
    assert_eq!(cases.len(), 116);
    let mut failures = Vec::new();
    // Both ways: every campaign loaded (the daemon), and loaded as codes name them (the
    // command line); the decisions must not differ.
    for lazy in [false, true] {
        for case in &cases {
            if let Err(problem) = run_decision_case(case, lazy) {
                failures.push(format!("{} (lazy {lazy}): {problem}", case["name"].as_str().unwrap()));
            }
        }
    }
    assert!(failures.is_empty(), "{} of {} runs failed:\n{}", failures.len(), 2 * cases.len(), failures.join("\n"));
}

fn money(v: &Value) -> Option<Money> {
    v.as_i64().map(Money)
}

fn run_decision_case(case: &Value, lazy: bool) -> Result<(), String> {
    let dir = tempfile::tempdir().unwrap();
    let clock = ManualClock::new(jiff::Timestamp::UNIX_EPOCH);
    let mut agent = agent(dir.path(), &case["terminal"], &clock, lazy);
    if let Some(file) = case["ruleset"].as_str() {
        clock.set(ts(case["installed_at"].as_str().unwrap()));
        let jws = std::fs::read_to_string(vectors_dir().join(file)).unwrap();
        agent.import_ruleset(jws.as_str()).map_err(|e| format!("import: {e}"))?;
    }
    for (i, h) in case["history"].as_array().unwrap().iter().enumerate() {
        clock.set(ts(h["at"].as_str().unwrap()));
        let single = CheckoutRef::Single {
            basket_total: money(&h["basket_total"]).unwrap(),
            eligible_total: money(&h["eligible_total"]),
            pos_ref: None,
        };
        let recorded = agent.redeem(single, h["code"].as_str().unwrap()).map_err(|e| e.to_string())?;
        let id = recorded.redemption_id.ok_or_else(|| format!("history[{i}] not accepted: {:?}", recorded.decision))?;
        if h["void"].as_bool() == Some(true) {
            agent.void(&id, None).map_err(|e| e.to_string())?;
        }
    }
    clock.set(ts(case["now"].as_str().unwrap()));
    let co = &case["checkout"];
    let checkout_id = agent
        .open_checkout(money(&co["basket_total"]).unwrap(), money(&co["eligible_total"]), None)
        .map_err(|e| e.to_string())?;
    for prior in co["prior_codes"].as_array().unwrap() {
        let recorded = agent.redeem(CheckoutRef::Existing(&checkout_id), prior.as_str().unwrap()).unwrap();
        if !recorded.decision.accepted() {
            return Err(format!("prior code not accepted: {:?}", recorded.decision.outcome));
        }
    }
    let before = agent.store().counts().unwrap();
    let code = case["code"].as_str().unwrap();
    let checked = agent.check(CheckoutRef::Existing(&checkout_id), code, None).map_err(|e| e.to_string())?;
    let recorded = agent.redeem(CheckoutRef::Existing(&checkout_id), code).map_err(|e| e.to_string())?;
    if checked != recorded.decision {
        return Err(format!("check said {:?}, redeem said {:?}", checked.outcome, recorded.decision.outcome));
    }
    let record = agent.record(&recorded.decision, recorded.redemption_id.clone());
    let expect = &case["expect"];
    let mut problems = Vec::new();
    let mut same = |what: &str, got: Value, want: &Value| {
        if &got != want {
            problems.push(format!("{what} {got}, want {want}"));
        }
    };
    same("decision", Value::from(record.decision.clone()), &expect["decision"]);
    same("reason", serde_json::to_value(&record.reason).unwrap(), &expect["reason"]);
    let discount = if record.decision == "accepted" { Value::from(record.discount) } else { Value::Null };
    same("discount", discount, &expect["discount"]);
    same("coupon_id", serde_json::to_value(&record.coupon_id).unwrap(), &expect["coupon_id"]);
    same("campaign_id", serde_json::to_value(&record.campaign_id).unwrap(), &expect["campaign_id"]);
    let after = agent.store().counts().unwrap();
    if record.decision == "accepted" {
        if after.redemptions != before.redemptions + 1 || after.outbox != before.outbox + 1 {
            problems.push(format!("accepted but ledger went {before:?} -> {after:?}"));
        }
        if record.redemption_id.is_none() {
            problems.push("accepted without redemption_id".into());
        }
    } else if after != before {
        problems.push(format!("rejected but ledger went {before:?} -> {after:?}"));
    }
    if problems.is_empty() {
        Ok(())
    } else {
        Err(problems.join("; "))
    }
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
