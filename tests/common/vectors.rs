//! The shared vectors' case runners, one for CP1 (`tests/vectors.rs`) and CP2
//! (`tests/presentations.rs`): rule-set steps through the import path, decision cases
//! through an agent on a fresh ledger, each checked against its `expect`.

use super::{ts, vectors_dir};
use redeemd::agent::{Agent, Campaigns, ImportError};
use redeemd::clock::ManualClock;
use redeemd::decision::Terminal;
use redeemd::messages::Language;
use redeemd::money::Money;
use redeemd::ruleset::parse_anchors;
use redeemd::store::{CheckoutRef, Install, Store};
use serde_json::Value;
use std::path::Path;

/// The cases of a `.jsonl` file of the vectors.
pub fn lines(name: &str) -> Vec<Value> {
    let text = std::fs::read_to_string(vectors_dir().join(name)).unwrap();
    text.lines().filter(|l| !l.trim().is_empty()).map(|l| serde_json::from_str(l).unwrap()).collect()
}

/// An agent on a fresh ledger in `dir` for a case's `terminal`, trusting the vectors' keys.
/// `lazy`: one that loads campaigns as codes name them (the command line's).
pub fn vector_agent(dir: &Path, terminal: &Value, clock: &ManualClock, lazy: bool) -> Agent {
    let anchors = parse_anchors(&std::fs::read_to_string(vectors_dir().join("trust-keys.json")).unwrap()).unwrap();
    let store = Store::open(&dir.join("ledger.sqlite")).unwrap();
    let terminal_id = Terminal {
        merchant_id: terminal["merchant_id"].as_str().unwrap().into(),
        merchant_category: terminal["merchant_category"].as_str().unwrap().into(),
    };
    let tz = jiff::tz::TimeZone::get(terminal["timezone"].as_str().unwrap_or("Asia/Shanghai")).unwrap();
    let campaigns = if lazy { Campaigns::AsCodesNameThem } else { Campaigns::All };
    Agent::open(store, terminal_id, anchors, Language::En, tz, Box::new(clock.clone()), campaigns).unwrap()
}

/// Every rule-set case of `file` (there must be `count`): each import step's outcome,
/// nothing changed by a refusal, and the version in force, also after a reopen.
pub fn assert_ruleset_cases(file: &str, count: usize) {
    let cases = lines(file);
    assert_eq!(cases.len(), count, "{file}");
    for case in cases {
        let name = case["name"].as_str().unwrap();
        let dir = tempfile::tempdir().unwrap();
        let clock = ManualClock::new(jiff::Timestamp::UNIX_EPOCH);
        let terminal = serde_json::json!({"merchant_id": "M-000123", "merchant_category": "dining"});
        let mut agent = vector_agent(dir.path(), &terminal, &clock, false);
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

/// Every decision case of `file` (there must be `count`), both ways: every campaign
/// loaded (the daemon) and loaded as codes name them (the command line); the decisions
/// must not differ. `more` adds a case's own checks to the common ones.
pub fn assert_decision_cases(file: &str, count: usize, more: impl Fn(&Value, &DecisionRun, &mut Vec<String>)) {
    let cases = lines(file);
    assert_eq!(cases.len(), count, "{file}");
    let mut failures = Vec::new();
    for lazy in [false, true] {
        for case in &cases {
            let outcome = run_decision_case(case, lazy).and_then(|run| {
                let mut problems = run.problems(case);
                more(case, &run, &mut problems);
                if problems.is_empty() {
                    Ok(())
                } else {
                    Err(problems.join("; "))
                }
            });
            if let Err(problem) = outcome {
                failures.push(format!("{} (lazy {lazy}): {problem}", case["name"].as_str().unwrap()));
            }
        }
    }
    assert!(failures.is_empty(), "{} of {} runs failed:\n{}", failures.len(), 2 * cases.len(), failures.join("\n"));
}

/// A decision case run: the agent after it, the decision record, and the ledger's counts
/// around the decided code.
pub struct DecisionRun {
    pub agent: Agent,
    pub record: redeemd::record::DecisionRecord,
    pub code: String,
    pub before: redeemd::store::Counts,
    pub after: redeemd::store::Counts,
    _dir: tempfile::TempDir,
}

impl DecisionRun {
    /// What differs from the case's `expect`, and a ledger that did not change as the
    /// decision says (one redemption and one event for an acceptance, nothing otherwise).
    fn problems(&self, case: &Value) -> Vec<String> {
        let (record, expect) = (&self.record, &case["expect"]);
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
        let (before, after) = (&self.before, &self.after);
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
        problems
    }
}

fn money(v: &Value) -> Option<Money> {
    v.as_i64().map(Money)
}

/// Installs the case's rule set, replays its history, opens its checkout with the prior
/// codes, then checks and redeems its code (the two must agree).
fn run_decision_case(case: &Value, lazy: bool) -> Result<DecisionRun, String> {
    let dir = tempfile::tempdir().unwrap();
    let clock = ManualClock::new(jiff::Timestamp::UNIX_EPOCH);
    let mut agent = vector_agent(dir.path(), &case["terminal"], &clock, lazy);
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
    let after = agent.store().counts().unwrap();
    Ok(DecisionRun { agent, record, code: code.to_owned(), before, after, _dir: dir })
}
