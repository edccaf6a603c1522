//! `redeemd doctor` end to end with the real binary: one test per finding an installer
//! meets (a broken CA, a 0644 token, a wrong clock, a missing scanner, a corrupt ledger,
//! edited rule-set tables), a healthy terminal, a half-set-up one, and a running daemon
//! (asked through /v1/status, its ledger left as it was).

mod common;

use common::daemon::Daemon;
use common::upstream::TestUpstream;
use common::{Run, TestTerminal};
use serde_json::Value;
use std::os::unix::fs::PermissionsExt as _;

fn doctor(t: &TestTerminal) -> (Run, Value) {
    let r = t.run(&["doctor", "--json"]);
    let json = serde_json::from_str(r.stdout.trim()).unwrap_or_else(|e| panic!("{e}: {}\n{}", r.stdout, r.stderr));
    (r, json)
}

/// The findings of `check` at `status`, as "message -> fix" lines.
fn findings(json: &Value, check: &str, status: &str) -> Vec<String> {
    json["findings"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|f| f["check"] == check && f["status"] == status)
        .map(|f| format!("{} -> {}", f["message"].as_str().unwrap(), f["fix"].as_str().unwrap_or("")))
        .collect()
}

fn problems(json: &Value) -> Vec<String> {
    json["findings"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|f| f["status"] == "problem")
        .map(|f| format!("{}: {}", f["check"].as_str().unwrap(), f["message"].as_str().unwrap()))
        .collect()
}

fn append_config(t: &TestTerminal, text: &str) {
    let config = std::fs::read_to_string(t.config()).unwrap();
    std::fs::write(t.config(), format!("{config}\n{text}\n")).unwrap();
}

/// A terminal run by hand with a rule set and no scanner: nothing to complain about.
fn healthy() -> TestTerminal {
    let t = TestTerminal::with_ruleset();
    append_config(&t, "[scanner]\nport = \"none\"");
    t
}

fn provisioned() -> (TestTerminal, TestUpstream) {
    let up = TestUpstream::start();
    let t = TestTerminal::bare(31);
    up.set_ruleset_keys(&t.issuer.trust_anchors_json());
    let payload = t.issuer.ruleset_payload(3, jiff::Timestamp::now(), &["DINING"], &[]);
    up.set_ruleset(&t.issuer.sign_ruleset(&payload));
    up.add_code("DOC-CODE");
    let r = t.provision(&up.url, &up.ca_pem, "DOC-CODE");
    assert_eq!(r.code, 0, "provision: {}", r.stderr);
    // provision ends with the installer's next steps
    for step in ["next steps", "doctor", "scanner sheet", " run`", "cashier-url"] {
        assert!(r.stdout.contains(step), "{step}: {}", r.stdout);
    }
    append_config(&t, "[scanner]\nport = \"none\"");
    (t, up)
}

#[test]
fn a_healthy_terminal_exits_0_and_the_text_form_says_so() {
    let t = healthy();
    let (r, json) = doctor(&t);
    assert_eq!(r.code, 0, "{:?}", problems(&json));
    assert_eq!(json["ok"], true);
    assert!(findings(&json, "ledger", "ok").iter().any(|m| m.contains("quick_check")), "{json}");
    assert!(findings(&json, "ledger", "ok").iter().any(|m| m.contains("match the signed rule set")), "{json}");
    assert!(findings(&json, "ruleset", "ok").iter().any(|m| m.contains("version 5")), "{json}");
    assert!(!findings(&json, "upstream", "ok").is_empty(), "a hand-run terminal has no upstream: {json}");
    let text = t.run(&["doctor"]);
    assert_eq!(text.code, 0);
    assert!(text.stdout.contains("ok       ledger") && text.stdout.contains("no problem"), "{}", text.stdout);
}

#[test]
fn a_half_set_up_terminal_is_a_problem_not_a_crash() {
    let t = TestTerminal::bare(32);
    let (r, json) = doctor(&t);
    assert_eq!(r.code, 3);
    assert!(findings(&json, "config", "problem")[0].contains("provision"), "{json}");
    // init, but no rule set yet
    let t = TestTerminal::new();
    append_config(&t, "[scanner]\nport = \"none\"");
    let (r, json) = doctor(&t);
    assert_eq!(r.code, 3);
    assert!(findings(&json, "ruleset", "problem")[0].contains("no rule set"), "{json}");
    assert!(findings(&json, "ruleset", "problem")[0].contains("ruleset import"), "{json}");
}

#[test]
fn a_world_readable_token_or_pos_token_is_a_problem() {
    let (t, _up) = provisioned();
    let (r, json) = doctor(&t);
    assert_eq!(r.code, 0, "{:?}", problems(&json));
    let token = t.dir.path().join("data/token");
    std::fs::set_permissions(&token, std::fs::Permissions::from_mode(0o644)).unwrap();
    let (r, json) = doctor(&t);
    assert_eq!(r.code, 3);
    let found = findings(&json, "files", "problem");
    assert!(found.iter().any(|m| m.contains("token") && m.contains("0644") && m.contains("chmod 600")), "{found:?}");
    assert!(!r.stdout.contains("tok-0042-secret"), "the token is never printed");
    std::fs::set_permissions(&token, std::fs::Permissions::from_mode(0o600)).unwrap();
    let pos = t.dir.path().join("data/pos-token");
    std::fs::set_permissions(&pos, std::fs::Permissions::from_mode(0o640)).unwrap();
    let (r, json) = doctor(&t);
    assert_eq!(r.code, 3);
    assert!(
        findings(&json, "files", "problem").iter().any(|m| m.contains("pos-token") && m.contains("0640")),
        "{json}"
    );
}

#[test]
fn upstream_is_checked_step_by_step_and_a_broken_ca_is_a_tls_problem() {
    let (t, up) = provisioned();
    let (r, json) = doctor(&t);
    assert_eq!(r.code, 0, "{:?}", problems(&json));
    for check in ["upstream.dns", "upstream.tcp", "upstream.tls", "upstream.token", "clock"] {
        assert_eq!(findings(&json, check, "ok").len(), 1, "{check}: {json}");
    }
    let heartbeats = up.state.lock().unwrap().heartbeats.len();
    assert!(heartbeats >= 1, "the token is proven by a heartbeat");
    // Another CA in the CA file: the handshake fails, and doctor says so.
    let (other_ca, _, _) = common::upstream::make_pki("other");
    std::fs::write(t.dir.path().join("data/upstream-ca.pem"), other_ca).unwrap();
    let (r, json) = doctor(&t);
    assert_eq!(r.code, 3);
    let tls = findings(&json, "upstream.tls", "problem");
    assert!(tls.len() == 1 && tls[0].contains("not signed by a trusted CA") && tls[0].contains("--ca"), "{tls:?}");
    assert_eq!(findings(&json, "upstream.tcp", "ok").len(), 1, "TCP still works: {json}");
    // Not PEM at all.
    std::fs::write(t.dir.path().join("data/upstream-ca.pem"), "not a certificate\n").unwrap();
    let (r, json) = doctor(&t);
    assert_eq!(r.code, 3);
    assert_eq!(findings(&json, "upstream.tls", "problem").len(), 1, "{json}");
    // Nothing listens: TCP fails, TLS is not tried.
    std::fs::write(t.dir.path().join("data/upstream-ca.pem"), &up.ca_pem).unwrap();
    let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let config = std::fs::read_to_string(t.config()).unwrap().replace(&up.url, &format!("https://127.0.0.1:{closed}/"));
    std::fs::write(t.config(), config).unwrap();
    let (r, json) = doctor(&t);
    assert_eq!(r.code, 3);
    assert_eq!(findings(&json, "upstream.tcp", "problem").len(), 1, "{json}");
    assert!(findings(&json, "upstream.tls", "ok").is_empty() && findings(&json, "upstream.tls", "problem").is_empty());
}

#[test]
fn a_refused_token_is_a_problem() {
    let (t, up) = provisioned();
    up.state.lock().unwrap().token = "rotated-by-the-issuer".into();
    let (r, json) = doctor(&t);
    assert_eq!(r.code, 3);
    assert_eq!(findings(&json, "upstream.tls", "ok").len(), 1, "{json}");
    assert!(findings(&json, "upstream.token", "problem")[0].contains("re-provision"), "{json}");
}

#[test]
fn a_clock_an_hour_off_upstreams_is_a_problem() {
    let (t, up) = provisioned();
    up.state.lock().unwrap().server_time_offset_s = 3600;
    let (r, json) = doctor(&t);
    assert_eq!(r.code, 3);
    let clock = findings(&json, "clock", "problem");
    assert!(clock.len() == 1 && (clock[0].contains("-3600 s") || clock[0].contains("-3599 s")), "{clock:?}");
    assert!(clock[0].contains("timedatectl"), "{clock:?}");
}

#[test]
fn a_missing_scanner_is_a_problem_and_a_present_one_is_not() {
    let t = TestTerminal::with_ruleset();
    append_config(&t, "[scanner]\nport = \"/dev/ttyACM-redeemd-test-missing\"\nprofile = \"generic-cdc\"");
    let (r, json) = doctor(&t);
    assert_eq!(r.code, 3);
    let found = findings(&json, "scanner", "problem");
    assert!(found.len() == 1 && found[0].contains("is missing") && found[0].contains("scanner list"), "{found:?}");
    // A pty stands in for the scanner: present, not USB, openable by this account.
    let link = t.dir.path().join("scanner");
    let _emulator = common::scanner::Emulator::plug(&link);
    let config = std::fs::read_to_string(t.config())
        .unwrap()
        .replace("/dev/ttyACM-redeemd-test-missing", link.to_str().unwrap());
    std::fs::write(t.config(), config).unwrap();
    let (r, json) = doctor(&t);
    assert_eq!(r.code, 0, "{:?}", problems(&json));
    assert!(findings(&json, "scanner", "ok").iter().any(|m| m.contains("not a USB device")), "{json}");
    // An unknown profile is a problem of its own.
    let config = std::fs::read_to_string(t.config()).unwrap().replace("generic-cdc", "no-such-profile");
    std::fs::write(t.config(), config).unwrap();
    let (r, json) = doctor(&t);
    assert_eq!(r.code, 3);
    assert!(findings(&json, "scanner", "problem")[0].contains("no-such-profile"), "{json}");
}

#[test]
fn a_corrupt_ledger_is_a_problem() {
    let t = healthy();
    // Garbage over the pages after the header: the file still opens, quick_check fails.
    let db = t.db();
    let mut bytes = std::fs::read(&db).unwrap();
    assert!(bytes.len() > 3 * 4096, "{}", bytes.len());
    for b in &mut bytes[4096..3 * 4096] {
        *b = 0xA5;
    }
    std::fs::write(&db, &bytes).unwrap();
    let (r, json) = doctor(&t);
    assert_eq!(r.code, 3);
    let found = findings(&json, "ledger", "problem");
    assert!(!found.is_empty() && found.iter().any(|m| m.contains("restore")), "{json}");
    // Not a ledger at all.
    std::fs::write(&db, b"").unwrap();
    let (r, json) = doctor(&t);
    assert_eq!(r.code, 3);
    assert!(findings(&json, "ledger", "problem")[0].contains("not a redeemd ledger"), "{json}");
}

#[test]
fn edited_rule_set_tables_are_a_problem() {
    let t = healthy();
    {
        let conn = rusqlite::Connection::open(t.db()).unwrap();
        conn.execute("DELETE FROM revoked", []).unwrap();
    }
    let (r, json) = doctor(&t);
    assert_eq!(r.code, 3);
    assert!(findings(&json, "ledger", "problem")[0].contains("differ from the signed rule set"), "{json}");
}

#[test]
fn with_a_daemon_running_doctor_asks_its_status_and_only_reads_the_ledger() {
    let t = healthy();
    let d = Daemon::start(&t, &[]);
    let before = t.fingerprint();
    let (r, json) = doctor(&t);
    assert_eq!(r.code, 0, "{:?}", problems(&json));
    let daemon = findings(&json, "daemon", "ok");
    assert!(daemon[0].contains("answers at") && daemon[0].contains(d.base.trim_start_matches("http://")), "{daemon:?}");
    assert!(findings(&json, "scanner", "ok")[0].contains("port = none"), "{json}");
    assert!(findings(&json, "ruleset", "ok")[0].contains("version 5"), "{json}");
    assert_eq!(t.fingerprint(), before, "doctor changed nothing");
    drop(d);
    let (_, json) = doctor(&t);
    assert!(findings(&json, "daemon", "ok")[0].contains("no daemon answers"), "{json}");
}
