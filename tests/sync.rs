//! Upstream sync end to end: the real binary against the test upstream over HTTPS with a
//! CA made in the test. Provision, refresh, redeem while upstream fails, forward when it
//! is back — exactly once in effect, in order — under each injected fault; a wrong
//! certificate; 401; 400; per-event conflict and rejected; forged and rolled-back rule sets.

mod common;

use common::upstream::{Fault, TestUpstream};
use common::{Run, TestTerminal};
use serde_json::json;
use std::collections::HashSet;
use std::time::Duration;

struct Rig {
    t: TestTerminal,
    up: TestUpstream,
}

fn assert_exit(run: &Run, code: i32, what: &str) {
    assert_eq!(run.code, code, "{what}: exit {}\nstdout: {}\nstderr: {}", run.code, run.stdout, run.stderr);
}

fn signed_ruleset(t: &TestTerminal, version: u64) -> String {
    let payload = t.issuer.ruleset_payload(version, jiff::Timestamp::now(), &["DINING", "GROCERY"], &["REVOKED-1"]);
    t.issuer.sign_ruleset(&payload)
}

/// A provisioned terminal (timeout 1 s so delays past it stay quick).
fn rig() -> Rig {
    let up = TestUpstream::start();
    let t = TestTerminal::bare(21);
    // A world-readable leftover where the old code put its temporary token file: it must
    // not lend its mode to the token.
    std::fs::create_dir_all(t.dir.path().join("data")).unwrap();
    std::fs::write(t.dir.path().join("data/token.tmp"), "stale").unwrap();
    std::fs::set_permissions(t.dir.path().join("data/token.tmp"), std::os::unix::fs::PermissionsExt::from_mode(0o644))
        .unwrap();
    up.set_ruleset_keys(&t.issuer.trust_anchors_json());
    up.set_ruleset(&signed_ruleset(&t, 3));
    up.add_code("GOOD-CODE");
    let r = t.provision(&up.url, &up.ca_pem, "GOOD-CODE");
    assert_exit(&r, 0, "provision");
    assert!(r.stdout.contains("T-0042") && r.stdout.contains("installed version 3"), "{}", r.stdout);
    let config = std::fs::read_to_string(t.config()).unwrap().replace("timeout-secs = 10", "timeout-secs = 1");
    std::fs::write(t.config(), config).unwrap();
    Rig { t, up }
}

fn redeem(t: &TestTerminal, coupon: &str) -> String {
    let r = t.run(&["redeem", &t.code(coupon, "DINING"), "--amount", "58", "--json"]);
    assert_exit(&r, 0, &format!("redeem {coupon}"));
    r.json()["redemption_id"].as_str().unwrap().to_owned()
}

/// (seq, event_id, state) of the local outbox.
fn outbox(t: &TestTerminal) -> Vec<(i64, String, String)> {
    let store = redeemd::store::Store::open(&t.db()).unwrap();
    store.outbox().unwrap().into_iter().map(|(seq, id, _, state)| (seq, id, state)).collect()
}

/// Every local event reached upstream once in effect, first arrivals in seq order.
fn assert_delivered_exactly_once_in_order(rig: &Rig) {
    let local = outbox(&rig.t);
    let ids: HashSet<String> = local.iter().map(|(_, id, _)| id.clone()).collect();
    assert_eq!(rig.up.event_ids(), ids, "upstream holds exactly the local events");
    let arrivals: Vec<i64> = rig.up.first_arrivals().iter().map(|(seq, _)| *seq).collect();
    let mut sorted = arrivals.clone();
    sorted.sort();
    assert_eq!(arrivals, sorted, "events first arrived in seq order");
    assert_eq!(arrivals, (1..=local.len() as i64).collect::<Vec<_>>());
    assert!(local.iter().all(|(_, _, state)| state != "pending"), "{local:?}");
}

#[test]
fn provision_refresh_offline_redeem_then_forward() {
    let rig = rig();
    let t = &rig.t;
    // the token is 0600 and not in the config
    use std::os::unix::fs::PermissionsExt;
    let token = t.dir.path().join("data/token");
    assert_eq!(std::fs::metadata(&token).unwrap().permissions().mode() & 0o777, 0o600);
    let config = std::fs::read_to_string(t.config()).unwrap();
    assert!(!config.contains("tok-0042-secret") && config.contains("terminal-id = \"T-0042\""), "{config}");
    // upstream is down while the shop sells (every call fails, retries included)
    for path in ["heartbeat", "ruleset", "redemptions"] {
        rig.up.fail_next(path, &[Fault::Status(503), Fault::Status(503), Fault::Status(503)]);
    }
    let first = redeem(t, "OFF-1");
    redeem(t, "OFF-2");
    let void = t.run(&["void", &first]);
    assert_exit(&void, 0, "void");
    redeem(t, "OFF-3");
    let down = t.run(&["sync", "--once"]);
    assert_exit(&down, 3, "sync while upstream is down");
    assert!(down.stderr.contains("503"), "{}", down.stderr);
    assert!(!down.stderr.contains("tok-0042-secret") && !down.stdout.contains("tok-0042-secret"));
    // back: everything goes, in order, once
    let back = t.run(&["sync", "--once"]);
    assert_exit(&back, 0, "sync when upstream is back");
    assert!(back.stdout.contains("forwarded 4 event(s)"), "{}", back.stdout);
    assert!(back.stdout.contains("rule set: not modified"), "the ETag is used: {}", back.stdout);
    assert_delivered_exactly_once_in_order(&rig);
    let report = t.run(&["report", "daily", "--format", "json"]).json();
    let states: Vec<&str> =
        report["redemptions"].as_array().unwrap().iter().map(|r| r["state"].as_str().unwrap()).collect();
    assert_eq!(states, ["forwarded", "forwarded", "forwarded"]);
    let hb = rig.up.state.lock().unwrap().heartbeats.last().cloned().unwrap();
    assert_eq!(hb["terminal_id"], "T-0042");
    assert_eq!(hb["ruleset_version"], 3);
}

#[test]
fn every_fault_still_delivers_exactly_once() {
    let rig = rig();
    let faults = [
        Fault::Status(500),
        Fault::Status(503),
        Fault::RetryAfter(1),
        Fault::Delay(Duration::from_millis(1500)),
        Fault::Reset,
        Fault::Garbage,
        Fault::Short,
    ];
    for (i, fault) in faults.iter().enumerate() {
        redeem(&rig.t, &format!("FAULT-{i}-A"));
        redeem(&rig.t, &format!("FAULT-{i}-B"));
        rig.up.fail_next("redemptions", std::slice::from_ref(fault));
        let r = rig.t.run(&["sync", "--once"]);
        assert_exit(&r, 0, &format!("sync under {fault:?}"));
        assert_delivered_exactly_once_in_order(&rig);
    }
    // the processed-then-broken answers made upstream see some events twice
    let received = rig.up.state.lock().unwrap().received.len();
    assert!(received > outbox(&rig.t).len(), "retries after processed faults resend: {received}");
}

#[test]
fn wrong_certificate_is_refused_and_nothing_is_sent() {
    let up = TestUpstream::start_with_wrong_certificate();
    up.add_code("GOOD-CODE");
    let t = TestTerminal::bare(22);
    let r = t.provision(&up.url, &up.ca_pem, "GOOD-CODE");
    assert_exit(&r, 3, "wrong certificate");
    assert!(r.stderr.contains("is not signed by") && r.stderr.contains("--ca"), "{}", r.stderr);
    assert_eq!(up.requests("enroll"), 0, "nothing reached the handler");
    assert!(!std::path::Path::new(&t.config()).exists());
}

#[test]
fn provisioning_errors_say_what_to_do() {
    let up = TestUpstream::start();
    up.add_code("USED-CODE");
    let t = TestTerminal::bare(23);
    let provision = |url: &str, code: &str| t.provision(url, &up.ca_pem, code);
    let r = provision(&up.url, "WRONG");
    assert_exit(&r, 3, "wrong code");
    assert!(r.stderr.contains("refused the enrollment code"), "{}", r.stderr);
    up.state.lock().unwrap().codes.insert("USED-CODE".into(), true);
    let r = provision(&up.url, "USED-CODE");
    assert_exit(&r, 3, "used code");
    assert!(r.stderr.contains("already used"), "{}", r.stderr);
    let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let r = provision(&format!("https://127.0.0.1:{closed}/"), "X");
    assert_exit(&r, 3, "unreachable");
    assert!(r.stderr.contains("connection refused"), "{}", r.stderr);
    let r = provision("http://upstream.example/", "X");
    assert_exit(&r, 2, "plain http");
    assert!(r.stderr.contains("https://"), "{}", r.stderr);
}

#[test]
fn unauthorized_stops_forwarding_and_keeps_the_outbox() {
    let rig = rig();
    redeem(&rig.t, "AUTH-1");
    rig.up.fail_next("redemptions", &[Fault::Unauthorized]);
    let r = rig.t.run(&["sync", "--once"]);
    assert_exit(&r, 3, "401");
    assert!(r.stderr.contains("re-provision needed"), "{}", r.stderr);
    let sent = rig.up.requests("redemptions");
    let r = rig.t.run(&["sync", "--once"]);
    assert_exit(&r, 3, "still paused");
    assert!(r.stderr.contains("re-provision needed"), "{}", r.stderr);
    assert_eq!(rig.up.requests("redemptions"), sent, "no retry loop against a refused token");
    assert!(outbox(&rig.t).iter().all(|(_, _, s)| s == "pending"));
    // re-provisioning clears the pause; the kept outbox goes out
    rig.up.add_code("NEW-CODE");
    let r = rig.t.provision(&rig.up.url, &rig.up.ca_pem, "NEW-CODE");
    assert_exit(&r, 0, "re-provision");
    let r = rig.t.run(&["sync", "--once"]);
    assert_exit(&r, 0, "after re-provision");
    assert_delivered_exactly_once_in_order(&rig);
}

#[test]
fn bad_request_narrows_the_batch_down_and_parks_only_the_refused_event() {
    let rig = rig();
    let t = &rig.t;
    let mut ids = Vec::new();
    for i in 0..9 {
        ids.push(redeem(t, &format!("NARROW-{i}")));
    }
    // The poisoned coupon's void is queued behind its redeem; it must wait.
    let void = t.run(&["void", &ids[4]]);
    assert_exit(&void, 0, "void");
    redeem(t, "NARROW-9");
    rig.up.poison("NARROW-4");
    let r = t.run(&["sync", "--once"]);
    assert_exit(&r, 3, "a parked event is undelivered");
    assert!(r.stderr.contains("parked"), "{}", r.stderr);
    let arrived: Vec<String> =
        rig.up.arrivals().iter().filter_map(|e| e["coupon_id"].as_str().map(str::to_owned)).collect();
    assert_eq!(arrived.len(), 9, "every other redemption went: {arrived:?}");
    assert!(!arrived.contains(&"NARROW-4".to_owned()));
    assert!(rig.up.arrivals().iter().all(|e| e["type"] != "void"), "the void did not overtake its redeem");
    assert!(rig.up.requests("redemptions") <= 12, "narrowed by halving: {}", rig.up.requests("redemptions"));
    let states: Vec<String> = outbox(t).into_iter().map(|(_, _, s)| s).collect();
    assert_eq!(states.iter().filter(|s| *s == "parked").count(), 1, "{states:?}");
    assert_eq!(states.iter().filter(|s| *s == "pending").count(), 1, "the void waits: {states:?}");

    // Shown with upstream's message; the report says parked.
    let list = t.run(&["outbox", "list", "--json"]);
    assert_exit(&list, 0, "outbox list");
    let list: serde_json::Value = serde_json::from_str(&list.stdout).unwrap();
    let parked: Vec<&serde_json::Value> = list.as_array().unwrap().iter().filter(|e| e["state"] == "parked").collect();
    assert_eq!(parked.len(), 1);
    assert!(parked[0]["message"].as_str().unwrap().contains("NARROW-4 is malformed"), "{list}");
    let report = t.run(&["report", "daily", "--format", "json"]).json();
    let state_of = |id: &str| {
        report["redemptions"].as_array().unwrap().iter().find(|r| r["redemption_id"] == id).unwrap()["state"].clone()
    };
    assert_eq!(state_of(&ids[4]), "parked");
    assert_eq!(state_of(&ids[0]), "forwarded");

    // Retried once upstream is fixed: the redeem, then its void, in order.
    rig.up.cure("NARROW-4");
    let retry = t.run(&["outbox", "retry", "--all"]);
    assert_exit(&retry, 0, "outbox retry --all");
    assert_exit(&t.run(&["outbox", "retry", "no-such-event"]), 2, "retry of an unknown id");
    let r = t.run(&["sync", "--once"]);
    assert_exit(&r, 0, "delivered after the retry");
    let arrivals = rig.up.arrivals();
    let last_two: Vec<&str> = arrivals[arrivals.len() - 2..].iter().map(|e| e["type"].as_str().unwrap()).collect();
    assert_eq!(last_two, ["redeem", "void"]);
}

#[test]
fn a_parked_redemption_counts_as_answered_for_the_offline_limits() {
    let up = TestUpstream::start();
    let t = TestTerminal::bare(22);
    up.set_ruleset_keys(&t.issuer.trust_anchors_json());
    let mut payload = t.issuer.ruleset_payload(3, jiff::Timestamp::now(), &["DINING"], &[]);
    payload["offline"] = json!({"max_unsynced_count": 1});
    up.set_ruleset(&t.issuer.sign_ruleset(&payload));
    up.add_code("GOOD-CODE");
    assert_exit(&t.provision(&up.url, &up.ca_pem, "GOOD-CODE"), 0, "provision");
    redeem(&t, "LIMIT-1");
    let r = t.run(&["redeem", &t.code("LIMIT-2", "DINING"), "--amount", "58", "--json"]);
    assert_eq!(r.json()["reason"], "offline_limit", "one unsynced is the limit");
    up.poison("LIMIT-1");
    assert_exit(&t.run(&["sync", "--once"]), 3, "parked");
    let r = t.run(&["redeem", &t.code("LIMIT-2", "DINING"), "--amount", "58", "--json"]);
    assert_eq!(r.json()["decision"], "accepted", "a parked event no longer blocks the till: {}", r.stdout);
}

#[test]
fn conflicts_and_rejections_are_flagged() {
    let rig = rig();
    rig.up.verdict(
        "DOUBLE-1",
        json!({"status": "conflict", "redeemed_by": "T-0007", "redeemed_at": "2026-11-28T11:00:00+08:00"}),
    );
    rig.up.verdict("BAD-1", json!({"status": "rejected", "reason": "revoked"}));
    redeem(&rig.t, "DOUBLE-1");
    redeem(&rig.t, "BAD-1");
    redeem(&rig.t, "FINE-1");
    let r = rig.t.run(&["sync", "--once"]);
    assert_exit(&r, 0, "sync");
    assert!(r.stdout.contains("1 accepted, 0 duplicate, 1 conflict, 1 rejected"), "{}", r.stdout);
    let report = rig.t.run(&["report", "daily", "--format", "json"]).json();
    let states: Vec<(&str, &str)> = report["redemptions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| (r["coupon_id"].as_str().unwrap(), r["state"].as_str().unwrap()))
        .collect();
    assert_eq!(states, [("DOUBLE-1", "conflict"), ("BAD-1", "rejected"), ("FINE-1", "forwarded")]);
    let table = rig.t.run(&["report", "daily"]);
    assert!(table.stdout.matches("<- check").count() == 2, "{}", table.stdout);
    // a conflicted coupon stands locally: it is not redeemable again here
    let again = rig.t.run(&["redeem", &rig.t.code("DOUBLE-1", "DINING"), "--amount", "58", "--json"]);
    assert_eq!(again.json()["reason"], "already_redeemed");
}

#[test]
fn forged_and_rolled_back_rule_sets_keep_the_old_one() {
    let rig = rig();
    let show = || rig.t.run(&["ruleset", "show", "--json"]).json()["version"].clone();
    assert_eq!(show(), 3);
    // rollback
    rig.up.set_ruleset(&signed_ruleset(&rig.t, 2));
    let r = rig.t.run(&["sync", "--once"]);
    assert_exit(&r, 0, "sync with a rolled-back rule set");
    assert!(r.stdout.contains("refused (") && r.stdout.contains("rollback"), "{}", r.stdout);
    assert!(r.stdout.contains("version 3 stays in force"), "{}", r.stdout);
    assert_eq!(show(), 3);
    // forged: a stranger's signature
    let stranger = redeemd::issuer::Issuer::from_seed(99);
    rig.up.set_ruleset(&stranger.sign_ruleset(&stranger.ruleset_payload(9, jiff::Timestamp::now(), &["DINING"], &[])));
    let r = rig.t.run(&["sync", "--once"]);
    assert!(r.stdout.contains("refused ("), "{}", r.stdout);
    assert_eq!(show(), 3);
    // a good newer one installs
    rig.up.set_ruleset(&signed_ruleset(&rig.t, 4));
    let r = rig.t.run(&["sync", "--once"]);
    assert!(r.stdout.contains("installed version 4"), "{}", r.stdout);
    assert_eq!(show(), 4);
}

/// The refresh's outcome (installed, not modified, refused and what stays in force) on a
/// zh-CN terminal comes from the message tables, not English text made in `sync.rs`.
#[test]
fn the_rule_set_outcome_speaks_the_terminals_language() {
    let up = TestUpstream::start();
    let t = TestTerminal::bare(21);
    up.set_ruleset_keys(&t.issuer.trust_anchors_json());
    up.set_ruleset(&signed_ruleset(&t, 3));
    up.add_code("GOOD-CODE");
    let r = t.provision_in(&up.url, &up.ca_pem, "GOOD-CODE", "zh-CN");
    assert_exit(&r, 0, "provision");
    assert!(r.stdout.contains("已安装版本 3（"), "{}", r.stdout);
    let r = t.run(&["sync", "--once"]);
    assert_exit(&r, 0, "sync, nothing new");
    assert!(r.stdout.contains("无变化"), "{}", r.stdout);
    up.set_ruleset(&signed_ruleset(&t, 2));
    let r = t.run(&["sync", "--once"]);
    assert_exit(&r, 0, "sync with a rolled-back rule set");
    // The refusal's own reason is quoted as the library words it (as `ruleset import` does).
    assert!(r.stdout.contains("被拒绝（") && r.stdout.contains("版本 3"), "{}", r.stdout);
    assert!(!r.stdout.contains("REFUSED") && !r.stdout.contains("kept"), "{}", r.stdout);
    up.set_ruleset(&signed_ruleset(&t, 4));
    let r = t.run(&["sync", "--once"]);
    assert!(r.stdout.contains("已安装版本 4（"), "{}", r.stdout);
    // A step that fails without stopping the round is a warning in the same language.
    up.fail_next("heartbeat", &[Fault::BadRequest]);
    let r = t.run(&["sync", "--once"]);
    assert_exit(&r, 0, "sync with a refused heartbeat");
    assert!(r.stdout.contains("警告：心跳："), "{}", r.stdout);
    common::words::assert_words(&r, "zh-CN");
}

#[test]
fn a_skewed_clock_is_a_warning() {
    let rig = rig();
    rig.up.state.lock().unwrap().server_time_offset_s = 900;
    let r = rig.t.run(&["sync", "--once"]);
    assert_exit(&r, 0, "sync");
    assert!(r.stdout.contains("WARNING") && r.stdout.contains("clock -89"), "{}", r.stdout);
}

#[test]
fn sync_without_upstream_config_is_a_usage_error() {
    let t = TestTerminal::new();
    let r = t.run(&["sync", "--once"]);
    assert_exit(&r, 2, "sync on a hand-provisioned terminal");
    assert!(r.stderr.contains("redeemd provision"), "{}", r.stderr);
}

#[test]
fn a_huge_retry_after_ends_the_run_cleanly_instead_of_panicking() {
    let rig = rig();
    redeem(&rig.t, "C-RA-1");
    rig.up.fail_next("redemptions", &[Fault::RetryAfter(999_999_999_999)]);
    let r = rig.t.run(&["sync", "--once"]);
    assert_exit(&r, 3, "sync --once with Retry-After 999999999999");
    assert!(r.stderr.contains("1 event(s) left undelivered") || r.stderr.contains("429"), "{}", r.stderr);
    let r = rig.t.run(&["sync", "--once"]);
    assert_exit(&r, 0, "the next run delivers");
}

#[test]
fn a_failing_heartbeat_or_refresh_does_not_hold_back_forwarding() {
    let rig = rig();
    redeem(&rig.t, "C-HB-1");
    let down = [Fault::Status(503), Fault::Status(503), Fault::Status(503)];
    rig.up.fail_next("heartbeat", &down);
    rig.up.fail_next("ruleset", &down);
    let r = rig.t.run(&["sync", "--once"]);
    assert_exit(&r, 0, "forwarding went on");
    assert!(r.stdout.contains("warning: heartbeat") && r.stdout.contains("warning: rule-set refresh"), "{}", r.stdout);
    assert_eq!(rig.up.event_ids().len(), 1);
}

#[test]
fn a_rule_set_on_a_slow_line_installs_though_it_takes_longer_than_the_timeout() {
    let rig = rig(); // timeout-secs = 1
    let mut payload = rig.t.issuer.ruleset_payload(4, jiff::Timestamp::now(), &["DINING", "GROCERY"], &[]);
    let revoked: Vec<String> = (0..8000).map(|i| format!("SLOW-REVOKED-{i:06}")).collect();
    payload["revoked"] = json!(revoked);
    rig.up.set_ruleset(&rig.t.issuer.sign_ruleset(&payload));
    // 3 s in all, never 1 s without a byte.
    rig.up.fail_next("ruleset", &[Fault::Trickle { pieces: 7, pause: Duration::from_millis(500) }]);
    let started = std::time::Instant::now();
    let r = rig.t.run(&["sync", "--once"]);
    assert_exit(&r, 0, "slow download");
    assert!(started.elapsed() >= Duration::from_millis(2500));
    assert!(r.stdout.contains("installed version 4"), "{}", r.stdout);
}

#[test]
fn provision_checks_local_files_before_spending_the_code_and_a_retry_completes() {
    let up = TestUpstream::start();
    let t = TestTerminal::bare(23);
    up.set_ruleset_keys(&t.issuer.trust_anchors_json());
    up.set_ruleset(&signed_ruleset(&t, 3));
    up.add_code("ONCE-ONLY");
    std::fs::write(t.path("ca.pem"), &up.ca_pem).unwrap();
    let provision = |config: &str| {
        let mut cmd = std::process::Command::new(common::binary());
        cmd.args(["--config", config, "provision", "--upstream", &up.url, "--enrollment-code", "ONCE-ONLY"])
            .args(["--ca", &t.path("ca.pem"), "--data-dir", &t.path("data")])
            .env("REDEEMD_LOG", "error");
        let out = cmd.output().unwrap();
        (out.status.code().unwrap_or(-1), String::from_utf8_lossy(&out.stderr).into_owned())
    };
    // The config's directory cannot exist (a file is in the way): refused before enrolling.
    std::fs::write(t.path("not-a-dir"), "").unwrap();
    let (code, stderr) = provision(&t.path("not-a-dir/redeemd.toml"));
    assert_ne!(code, 0);
    assert!(stderr.contains("not-a-dir"), "{stderr}");
    assert_eq!(up.requests("enroll"), 0, "the code was not spent");
    // Enrolled, then a local failure (the trust-key file's place is taken by a directory).
    std::fs::create_dir_all(t.dir.path().join("data/trust-keys.json/x")).unwrap();
    let (code, stderr) = provision(&t.config());
    assert_ne!(code, 0, "{stderr}");
    assert_eq!(up.requests("enroll"), 1);
    // Fixed; the same (now used) code completes from the saved answer.
    std::fs::remove_dir_all(t.dir.path().join("data/trust-keys.json")).unwrap();
    let (code, stderr) = provision(&t.config());
    assert_eq!(code, 0, "{stderr}");
    assert_eq!(up.requests("enroll"), 1, "no second enrollment");
    assert!(!t.dir.path().join("data/enrollment.json").exists(), "the saved answer is gone once written");
    assert_exit(&t.run(&["sync", "--once"]), 0, "a working terminal");
}
