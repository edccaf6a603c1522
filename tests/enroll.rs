//! Enrollment that survives a lost answer (`spec/upstream-api.md`, `request_id`), with the
//! real binary against the test upstream over HTTPS: the request id is on disk before
//! the first send, a lost answer (upstream committed, then the connection broke or the
//! answer came too late) is asked for again at most twice within `provision` and again
//! by a rerun with the same code, an answer is never used for another code, and an
//! expired code says so.

mod common;

use common::upstream::{Fault, TestUpstream};
use common::{Run, TestTerminal};
use std::os::unix::fs::PermissionsExt as _;
use std::time::Duration;

fn assert_exit(run: &Run, code: i32, what: &str) {
    assert_eq!(run.code, code, "{what}: exit {}\nstdout: {}\nstderr: {}", run.code, run.stdout, run.stderr);
}

fn rig(seed: u8) -> (TestTerminal, TestUpstream) {
    let up = TestUpstream::start();
    let t = TestTerminal::bare(seed);
    up.set_ruleset_keys(&t.issuer.trust_anchors_json());
    let payload = t.issuer.ruleset_payload(3, jiff::Timestamp::now(), &["DINING"], &[]);
    up.set_ruleset(&t.issuer.sign_ruleset(&payload));
    (t, up)
}

fn entry(t: &TestTerminal) -> std::path::PathBuf {
    t.dir.path().join("data/enrollment.json")
}

fn mode(path: &std::path::Path) -> u32 {
    std::fs::metadata(path).unwrap().permissions().mode() & 0o777
}

fn configured_terminal(t: &TestTerminal) -> String {
    let config: toml::Value = toml::from_str(&std::fs::read_to_string(t.config()).unwrap()).unwrap();
    config["upstream"]["terminal-id"].as_str().unwrap().to_owned()
}

/// Files in the data dir whose name starts with `enrollment-` (entries set aside).
fn set_aside(t: &TestTerminal) -> Vec<std::path::PathBuf> {
    let mut found: Vec<_> = std::fs::read_dir(t.dir.path().join("data"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.file_name().unwrap().to_string_lossy().starts_with("enrollment-"))
        .collect();
    found.sort();
    found
}

#[test]
fn an_answer_lost_on_the_way_is_asked_for_again_within_the_command() {
    let (t, up) = rig(51);
    up.add_code("LOST-TWICE");
    // Upstream takes the code, then the connection breaks mid-answer; then it answers garbage.
    up.fail_next("enroll", &[Fault::Reset, Fault::Garbage]);
    let r = t.provision(&up.url, &up.ca_pem, "LOST-TWICE");
    assert_exit(&r, 0, "provision through two lost answers");
    assert!(r.stdout.contains("enrolled as terminal T-0042"), "{}", r.stdout);
    assert!(r.stdout.contains("asking again under the same request id (attempt 2 of 3)"), "{}", r.stdout);
    assert!(r.stdout.contains("(attempt 3 of 3)"), "{}", r.stdout);
    let ids = up.enroll_request_ids();
    assert_eq!(ids.len(), 3, "{ids:?}");
    assert!(ids[0].as_deref().is_some_and(|id| id.len() == 36), "a UUID: {ids:?}");
    assert!(ids.iter().all(|id| *id == ids[0]), "one request id: {ids:?}");
    assert_eq!(up.state.lock().unwrap().enrolled.len(), 1, "enrolled once");
    assert!(!entry(&t).exists(), "the entry is gone once the terminal is written");
    assert_exit(&t.run(&["sync", "--once"]), 0, "the token works");
}

#[test]
fn three_lost_answers_leave_the_request_id_for_a_rerun_with_the_same_code() {
    let (t, up) = rig(52);
    up.add_code("LOST-THRICE");
    // Too late (past the 10 s timeout), then broken twice: every answer lost.
    up.fail_next("enroll", &[Fault::Delay(Duration::from_secs(11)), Fault::Reset, Fault::Reset]);
    let r = t.provision(&up.url, &up.ca_pem, "LOST-THRICE");
    assert_exit(&r, 3, "three lost answers");
    assert!(r.stderr.contains("was lost 3 times"), "{}", r.stderr);
    assert!(r.stderr.contains("with the same code") && r.stderr.contains("enrollment.json"), "{}", r.stderr);
    assert!(!std::path::Path::new(&t.config()).exists(), "no terminal written");
    // The request id waits on disk, private, without the code in clear.
    assert_eq!(mode(&entry(&t)), 0o600);
    let kept = std::fs::read_to_string(entry(&t)).unwrap();
    assert!(!kept.contains("LOST-THRICE"), "{kept}");
    let first = up.enroll_request_ids()[0].clone().unwrap();
    assert!(kept.contains(&first), "{kept}");

    let r = t.provision(&up.url, &up.ca_pem, "LOST-THRICE");
    assert_exit(&r, 0, "the rerun with the same code");
    assert!(r.stdout.contains("taking up the enrollment of this code"), "{}", r.stdout);
    assert!(r.stdout.contains("enrolled as terminal T-0042"), "{}", r.stdout);
    let ids = up.enroll_request_ids();
    assert_eq!(ids.len(), 4);
    assert!(ids.iter().all(|id| id.as_deref() == Some(first.as_str())), "the same request id: {ids:?}");
    assert_eq!(up.state.lock().unwrap().enrolled.len(), 1, "enrolled once: a replay, not code_used");
    assert_eq!(configured_terminal(&t), "T-0042");
    assert!(!entry(&t).exists());
    assert_exit(&t.run(&["sync", "--once"]), 0, "the replayed token works");
    // A third run is a new enrollment: the code is spent.
    let r = t.provision(&up.url, &up.ca_pem, "LOST-THRICE");
    assert_exit(&r, 3, "the code again, its enrollment finished");
    assert!(r.stderr.contains("already used"), "{}", r.stderr);
}

#[test]
fn an_answer_saved_for_one_code_is_never_used_for_another() {
    let (t, up) = rig(53);
    up.add_code("CODE-A");
    up.add_code("CODE-B");
    up.state.lock().unwrap().enroll_ids.insert("CODE-A".into(), "T-00A1".into());
    up.state.lock().unwrap().enroll_ids.insert("CODE-B".into(), "T-00B2".into());
    // Enrolled with A, then a local failure: A's answer is saved.
    std::fs::create_dir_all(t.dir.path().join("data/trust-keys.json/x")).unwrap();
    let r = t.provision(&up.url, &up.ca_pem, "CODE-A");
    assert_ne!(r.code, 0, "{}", r.stderr);
    assert!(std::fs::read_to_string(entry(&t)).unwrap().contains("T-00A1"));
    std::fs::remove_dir_all(t.dir.path().join("data/trust-keys.json")).unwrap();
    // Another code: a new enrollment; A's answer is set aside, not used.
    let r = t.provision(&up.url, &up.ca_pem, "CODE-B");
    assert_exit(&r, 0, "provision with another code");
    assert!(r.stdout.contains("enrolled as terminal T-00B2"), "{}", r.stdout);
    assert!(
        r.stdout.contains("had got terminal T-00A1") && r.stdout.contains("never used for this code"),
        "{}",
        r.stdout
    );
    assert!(r.stdout.contains("1 unfinished enrollment(s) with other codes are kept"), "{}", r.stdout);
    assert_eq!(configured_terminal(&t), "T-00B2");
    let aside = set_aside(&t);
    assert_eq!(aside.len(), 1, "{aside:?}");
    assert_eq!(mode(&aside[0]), 0o600, "it holds a token");
    let ids = up.enroll_request_ids();
    assert_eq!(ids.len(), 2);
    assert_ne!(ids[0], ids[1], "a new code, a new request id");
    // Back to A: its own answer finishes it, without asking upstream again.
    let r = t.provision(&up.url, &up.ca_pem, "CODE-A");
    assert_exit(&r, 0, "provision with the first code again");
    assert!(r.stdout.contains("saved for this code") && r.stdout.contains("T-00A1"), "{}", r.stdout);
    assert_eq!(up.enroll_request_ids().len(), 2, "no request");
    assert_eq!(configured_terminal(&t), "T-00A1");
    assert!(set_aside(&t).is_empty() && !entry(&t).exists());
}

#[test]
fn an_unusable_answer_names_its_file_and_traps_no_other_code() {
    let (t, up) = rig(54);
    let good_keys = t.issuer.trust_anchors_json();
    up.set_ruleset_keys(r#"[{"kid": "k1", "alg": "EdDSA", "key": "AAAA"}]"#);
    up.add_code("BAD-KEYS");
    let r = t.provision(&up.url, &up.ca_pem, "BAD-KEYS");
    assert_exit(&r, 3, "an answer with unusable trust keys");
    let file = entry(&t).display().to_string();
    assert!(r.stderr.contains("cannot be used") && r.stderr.contains("ruleset_keys"), "{}", r.stderr);
    assert!(r.stderr.contains(&format!("delete {file}")), "{}", r.stderr);
    assert!(!std::path::Path::new(&t.config()).exists());
    // The same code replays the same answer: the same words, nothing written.
    let r = t.provision(&up.url, &up.ca_pem, "BAD-KEYS");
    assert_exit(&r, 3, "the same code again");
    assert!(r.stderr.contains(&file), "{}", r.stderr);
    assert_eq!(up.state.lock().unwrap().enrolled.len(), 1);
    // A new code from the issuer, whose keys are fixed: not trapped by the old answer.
    up.set_ruleset_keys(&good_keys);
    up.add_code("GOOD-KEYS");
    up.state.lock().unwrap().enroll_ids.insert("GOOD-KEYS".into(), "T-0050".into());
    let r = t.provision(&up.url, &up.ca_pem, "GOOD-KEYS");
    assert_exit(&r, 0, "a new code");
    assert!(r.stdout.contains("set aside") && r.stdout.contains("T-0050"), "{}", r.stdout);

    // An answer an older redeemd saved without its code (with unusable keys): set aside,
    // named, never used.
    let other = TestTerminal::bare(55);
    std::fs::create_dir_all(other.dir.path().join("data")).unwrap();
    let old = serde_json::json!({"upstream": up.url, "answer": {
        "terminal_id": "T-0666", "merchant_id": "M-000123", "merchant_category": "dining", "token": "old-token",
        "timezone": "Asia/Shanghai", "ruleset_keys": [{"kid": "k1", "alg": "EdDSA", "key": "AAAA"}]}});
    std::fs::write(entry(&other), old.to_string()).unwrap();
    up.add_code("AFTER-UPGRADE");
    let r = other.provision(&up.url, &up.ca_pem, "AFTER-UPGRADE");
    assert_exit(&r, 0, "provision past an older redeemd's answer");
    assert!(r.stdout.contains("without its code") && r.stdout.contains("T-0666"), "{}", r.stdout);
    assert_eq!(configured_terminal(&other), "T-0042");
    let aside = set_aside(&other);
    assert_eq!(aside.len(), 1, "{aside:?}");
    assert!(r.stdout.contains(&aside[0].display().to_string()), "{}", r.stdout);
}

#[test]
fn an_expired_code_says_to_ask_for_a_new_one() {
    let (t, up) = rig(56);
    up.add_code("TOO-LATE");
    up.expire_code("TOO-LATE");
    let r = t.provision(&up.url, &up.ca_pem, "TOO-LATE");
    assert_exit(&r, 3, "an expired code");
    assert!(
        r.stderr.contains("has expired (410") && r.stderr.contains("ask the issuer for a new code"),
        "{}",
        r.stderr
    );
    assert!(!entry(&t).exists(), "a refused enrollment keeps no request id");
    let r = t.provision_in(&up.url, &up.ca_pem, "TOO-LATE", "zh-CN");
    assert_exit(&r, 3, "an expired code, in Chinese");
    assert!(r.stderr.contains("注册码已过期"), "{}", r.stderr);
    common::words::assert_words(&r, "zh-CN");
}
