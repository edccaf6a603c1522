//! `redeemd backup` / `redeemd restore` with the real binary: a terminal swap against the
//! test upstream (the old terminal's unsynced redemptions reach upstream exactly once,
//! under their original event ids, sent by the replacement), a backup taken while the
//! daemon writes, no secret in a backup, and every refusal leaving the ledger unchanged.

mod common;

use common::daemon::Daemon;
use common::impostor::Impostor;
use common::upstream::{Fault, TestUpstream};
use common::{Run, TestTerminal};
use std::collections::HashSet;
use std::os::unix::fs::PermissionsExt as _;

fn assert_exit(run: &Run, code: i32, what: &str) {
    assert_eq!(run.code, code, "{what}: exit {}\nstdout: {}\nstderr: {}", run.code, run.stdout, run.stderr);
}

/// (seq, event_id, state) of a ledger's outbox.
fn outbox(t: &TestTerminal) -> Vec<(i64, String, String)> {
    let store = redeemd::store::Store::open_read_only(&t.db()).unwrap();
    store.outbox().unwrap().into_iter().map(|(seq, id, _, state)| (seq, id, state)).collect()
}

fn redeem(t: &TestTerminal, coupon: &str) -> Run {
    t.run(&["redeem", &t.code(coupon, "DINING"), "--amount", "58", "--json"])
}

#[test]
fn a_terminal_swap_forwards_the_old_unsynced_redemptions_exactly_once_under_their_event_ids() {
    let up = TestUpstream::start();
    let old = TestTerminal::bare(41);
    up.set_ruleset_keys(&old.issuer.trust_anchors_json());
    let payload = old.issuer.ruleset_payload(3, jiff::Timestamp::now(), &["DINING"], &[]);
    up.set_ruleset(&old.issuer.sign_ruleset(&payload));
    up.add_code("OLD-CODE");
    up.add_code("NEW-CODE");
    up.state.lock().unwrap().enroll_ids.insert("NEW-CODE".into(), "T-0043".into());
    assert_exit(&old.provision(&up.url, &up.ca_pem, "OLD-CODE"), 0, "provision the old terminal");
    // One redemption reaches upstream while all is well.
    assert_exit(&redeem(&old, "SWAP-SYNCED"), 0, "redeem");
    assert_exit(&old.run(&["sync", "--once"]), 0, "sync");

    // Then the line goes down, the shop keeps selling through the daemon (and one code
    // typed on the command line beside it), and the backup is taken while it runs.
    for path in ["heartbeat", "ruleset", "redemptions"] {
        up.fail_next(path, &vec![Fault::Status(503); 200]);
    }
    let d = Daemon::start(&old, &[]);
    let checkout = d.open_checkout(5800);
    let b = d.present(&checkout, &old.code("SWAP-B", "DINING"));
    assert_eq!(b["decision"], "accepted", "{b}");
    let c = d.present(&d.open_checkout(5800), &old.code("SWAP-C", "DINING"));
    assert_eq!(c["decision"], "accepted", "{c}");
    let b_id = b["redemption_id"].as_str().unwrap();
    assert_eq!(d.post(&format!("/v1/redemptions/{b_id}/void"), "{}").status, 200);
    assert_exit(&redeem(&old, "SWAP-D"), 0, "redeem beside the daemon");
    let file = old.path("lane-2.redeemd-backup");
    let r = old.run(&["backup", &file]);
    assert_exit(&r, 0, "backup while the daemon runs");
    assert!(r.stdout.contains("4 not yet answered"), "{}", r.stdout);
    let mode = std::fs::metadata(&file).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o600);
    // No secret travels: not upstream's token, not the till's.
    let bytes = std::fs::read(&file).unwrap();
    let pos_token = std::fs::read_to_string(old.dir.path().join("data/pos-token")).unwrap();
    for secret in ["tok-0042-secret", pos_token.trim()] {
        assert!(!bytes.windows(secret.len()).any(|w| w == secret.as_bytes()), "a secret is in the backup");
    }
    let old_events = outbox(&old);
    assert_eq!(old_events.len(), 5);
    drop(d); // the old terminal breaks
    up.state.lock().unwrap().faults.clear();

    // The replacement: restore, then the steps restore prints, as printed (only the
    // enrollment code filled in).
    let new = TestTerminal::bare(41);
    let data = new.path("data");
    let r = new.run(&["restore", &file, "--data-dir", &data]);
    assert_exit(&r, 0, "restore");
    assert!(r.stdout.contains("4 not yet answered"), "{}", r.stdout);
    assert!(std::fs::read_to_string(new.config()).unwrap().contains(&data), "the config points at the new data dir");
    assert!(!new.dir.path().join("data/token").exists(), "no token was restored");
    let steps = printed_steps(&r.stdout);
    let config = new.config();
    assert!(steps.iter().all(|s| s[..3] == ["redeemd", "--config", config.as_str()]), "{steps:?}");
    let names: Vec<&str> = steps.iter().map(|s| s[3].as_str()).collect();
    assert_eq!(names, ["provision", "sync", "manager-pin", "doctor"], "{}", r.stdout);
    let provision: Vec<String> =
        steps[0].iter().map(|w| if w == "CODE" { "NEW-CODE".to_owned() } else { w.clone() }).collect();
    assert!(!provision.contains(&"--data-dir".to_owned()), "{provision:?}");
    let r = run_printed(&provision);
    assert_exit(&r, 0, "provision the replacement as printed");
    assert!(r.stdout.contains("T-0043"), "{}", r.stdout);
    assert!(r.stdout.contains(&format!("ledger {}", new.db().display())), "{}", r.stdout);
    assert!(std::fs::read_to_string(new.config()).unwrap().contains(&data), "the data dir is kept");
    // The restored events are still this terminal's to send.
    let listed = new.run(&["outbox", "list", "--json"]);
    assert_exit(&listed, 0, "outbox list after provision");
    let listed: Vec<serde_json::Value> = serde_json::from_str(&listed.stdout).unwrap();
    assert_eq!(listed.len(), 4, "{listed:?}");
    assert!(listed.iter().all(|e| e["state"] == "pending"), "{listed:?}");
    let r = run_printed(&steps[1]);
    assert_exit(&r, 0, "sync from the replacement as printed");
    assert!(r.stdout.contains("forwarded 4 event(s): 4 accepted"), "{}", r.stdout);

    // Upstream holds every event once, under the ids the old terminal made.
    let ids: HashSet<String> = old_events.iter().map(|(_, id, _)| id.clone()).collect();
    assert_eq!(up.event_ids(), ids);
    assert_eq!(up.state.lock().unwrap().received.len(), 5, "each event arrived exactly once");
    let arrivals = up.first_arrivals();
    assert_eq!(arrivals.iter().map(|(seq, _)| *seq).collect::<Vec<_>>(), [1, 2, 3, 4, 5], "original seqs, in order");
    let batches = up.state.lock().unwrap().batches.clone();
    assert_eq!(batches[0].0, "T-0042");
    assert!(batches[1..].iter().all(|(terminal, _)| terminal == "T-0043"), "{batches:?}");
    assert!(outbox(&new).iter().all(|(_, _, state)| state == "accepted"), "{:?}", outbox(&new));

    // The ledger came along: a coupon used on the old terminal stays used, said as the old
    // terminal's; the voided one is free.
    let again = new.run(&["redeem", &new.code("SWAP-C", "DINING"), "--amount", "58", "--json"]);
    assert_exit(&again, 1, "SWAP-C again");
    assert_eq!(again.json()["reason"], "already_redeemed");
    let message = again.json()["message"].as_str().unwrap().to_owned();
    assert!(
        message.contains("used on terminal T-0042 at") && message.contains("before this terminal took over"),
        "{message}"
    );
    assert_exit(&redeem(&new, "SWAP-B"), 0, "the voided coupon again");
    let mine = new.run(&["redeem", &new.code("SWAP-B", "DINING"), "--amount", "58", "--json"]);
    let message = mine.json()["message"].as_str().unwrap().to_owned();
    assert!(message.contains("used on this terminal at"), "{message}");
    assert_exit(&new.run(&["sync", "--once"]), 0, "sync");
    let last = up.first_arrivals().last().cloned().unwrap();
    assert_eq!(last.0, 6, "the replacement continues the sequence");
    let report = new.run(&["report", "daily", "--format", "json"]).json();
    let states: Vec<&str> =
        report["redemptions"].as_array().unwrap().iter().map(|r| r["state"].as_str().unwrap()).collect();
    assert_eq!(states, ["forwarded"; 5]);
}

/// The commands `restore` printed after "next:", split into words (none has quotes here).
fn printed_steps(stdout: &str) -> Vec<Vec<String>> {
    stdout
        .lines()
        .skip_while(|l| !l.starts_with("next:"))
        .filter_map(|l| l.split('`').nth(1))
        .map(|command| command.split_whitespace().map(str::to_owned).collect())
        .collect()
}

/// Runs a printed `redeemd …` command line with this build's binary.
fn run_printed(words: &[String]) -> Run {
    assert_eq!(words[0], "redeemd");
    let out = std::process::Command::new(common::binary())
        .args(&words[1..])
        .env_remove("REDEEMD_CONFIG")
        .env("REDEEMD_LOG", "error")
        .output()
        .unwrap();
    Run {
        code: out.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

#[test]
fn restore_refuses_another_merchants_ledger_unless_forced_and_provision_keeps_the_data_dir() {
    // A terminal of merchant M-000999 with one redemption, backed up.
    let other = TestTerminal::bare(9);
    let mut args = common::init::init_args(&other.path("data"), &other.path("anchors.json"), "en");
    args[4] = "M-000999".into();
    assert_exit(&other.run(&args.iter().map(String::as_str).collect::<Vec<_>>()), 0, "init M-000999");
    let rules = other.write_ruleset("rs5.jws", 5, &["DINING"], &[]);
    assert_exit(&other.run(&["ruleset", "import", &rules]), 0, "import");
    let file = other.path("m999.backup");
    assert_exit(&other.run(&["backup", &file]), 0, "backup");
    // Onto a terminal of merchant M-000123: refused, both named, nothing changed.
    let t = TestTerminal::with_ruleset();
    let before = t.fingerprint();
    let r = t.run(&["restore", &file]);
    assert_exit(&r, 2, "another merchant's backup");
    assert!(r.stderr.contains("merchant M-000999") && r.stderr.contains("merchant M-000123"), "{}", r.stderr);
    assert!(r.stderr.contains("--force"), "{}", r.stderr);
    assert_eq!(t.fingerprint(), before);
    // Forced: restored.
    assert_exit(&t.run(&["restore", &file, "--force"]), 0, "forced");

    // provision on a terminal that has a config keeps its data dir: another one is
    // refused before the code is spent.
    let up = TestUpstream::start();
    up.add_code("ANY-CODE");
    std::fs::write(t.path("ca.pem"), &up.ca_pem).unwrap();
    let elsewhere = t.path("elsewhere");
    let r = t.run(&[
        "provision",
        "--upstream",
        &up.url,
        "--enrollment-code",
        "ANY-CODE",
        "--ca",
        &t.path("ca.pem"),
        "--data-dir",
        &elsewhere,
    ]);
    assert_exit(&r, 2, "provision into another data dir");
    assert!(r.stderr.contains(&t.path("data")) && r.stderr.contains(&elsewhere), "{}", r.stderr);
    assert_eq!(up.requests("enroll"), 0, "the code was not spent");
}

#[test]
fn restore_refuses_to_lose_events_and_never_runs_beside_a_daemon() {
    let t = TestTerminal::with_ruleset();
    assert_exit(&redeem(&t, "KEEP-1"), 0, "redeem");
    let early = t.path("early.backup");
    assert_exit(&t.run(&["backup", &early]), 0, "backup");
    let again = t.run(&["backup", &early]);
    assert_exit(&again, 2, "a backup never overwrites a file");
    assert_exit(&redeem(&t, "KEEP-2"), 0, "redeem after the backup");
    let before = t.fingerprint();
    // The ledger holds an event the backup lacks: refused, nothing changed.
    let r = t.run(&["restore", &early]);
    assert_exit(&r, 2, "restore over a newer ledger");
    assert!(r.stderr.contains("1 event(s) the backup lacks"), "{}", r.stderr);
    assert_eq!(t.fingerprint(), before);
    // A later backup of the same ledger restores onto it (nothing would be lost).
    let late = t.path("late.backup");
    assert_exit(&t.run(&["backup", &late]), 0, "backup");
    assert_exit(&t.run(&["restore", &late]), 0, "restore of the same events");
    // Not while a daemon runs on the data dir.
    let d = Daemon::start(&t, &[]);
    let r = t.run(&["restore", &late]);
    assert_exit(&r, 2, "restore beside a daemon");
    assert!(r.stderr.contains("stop it first"), "{}", r.stderr);
    drop(d);
    // Something that is not a backup.
    let r = t.run(&["restore", t.db().to_str().unwrap()]);
    assert_exit(&r, 2, "a ledger is not a backup");
    assert!(r.stderr.contains("not a redeemd backup"), "{}", r.stderr);
    // Onto a new terminal run by hand: the redemptions and the config come along.
    let fresh = TestTerminal::bare(9);
    let r = fresh.run(&["restore", &late, "--data-dir", &fresh.path("data")]);
    assert_exit(&r, 0, "restore onto a new terminal");
    let report = fresh.run(&["report", "daily", "--format", "json"]).json();
    assert_eq!(report["totals"]["redemptions"], 2, "{report}");
    let keep = fresh.run(&["redeem", &fresh.code("KEEP-1", "DINING"), "--amount", "58", "--json"]);
    assert_eq!(keep.json()["reason"], "already_redeemed");
    assert!(fresh.dir.path().join("data/pos-token").exists(), "a new till token");
    let (mut old_ids, mut new_ids) = (outbox(&t), outbox(&fresh));
    old_ids.sort();
    new_ids.sort();
    assert_eq!(old_ids, new_ids, "the same events under the same ids");
}

#[test]
fn backups_taken_while_the_ledger_is_written_are_consistent_snapshots() {
    let t = TestTerminal::with_ruleset();
    let d = Daemon::start(&t, &[]);
    // Another process redeems as fast as it can while backups are taken.
    let codes: Vec<String> = (0..40).map(|i| t.code(&format!("LOAD-{i}"), "DINING")).collect();
    let config = t.config();
    let writer = std::thread::spawn(move || {
        for code in codes {
            let out = std::process::Command::new(common::binary())
                .args(["--config", &config, "redeem", &code, "--amount", "58"])
                .env("REDEEMD_LOG", "error")
                .output()
                .unwrap();
            assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
        }
    });
    let mut sizes = Vec::new();
    for i in 0..4 {
        let file = t.path(&format!("load-{i}.backup"));
        assert_exit(&t.run(&["backup", &file]), 0, "backup under load");
        let fresh = TestTerminal::bare(9);
        assert_exit(&fresh.run(&["restore", &file, "--data-dir", &fresh.path("data")]), 0, "restore");
        // Whole transactions only: seq 1..n without a gap, one redeem event per redemption.
        let events = outbox(&fresh);
        assert_eq!(events.iter().map(|e| e.0).collect::<Vec<_>>(), (1..=events.len() as i64).collect::<Vec<_>>());
        let report = fresh.run(&["report", "daily", "--format", "json"]).json();
        assert_eq!(report["totals"]["redemptions"].as_u64().unwrap() as usize, events.len(), "{report}");
        sizes.push(events.len());
    }
    writer.join().unwrap();
    drop(d);
    assert!(sizes.windows(2).all(|w| w[0] <= w[1]), "{sizes:?}");
    eprintln!("events in the successive backups: {sizes:?}");
}

#[test]
fn restore_goes_ahead_beside_another_process_on_the_port_and_says_so() {
    let t = TestTerminal::with_ruleset();
    assert_exit(&redeem(&t, "PORT-1"), 0, "redeem");
    let file = t.path("port.backup");
    assert_exit(&t.run(&["backup", &file]), 0, "backup");
    // A daemon ran here and stopped; another program now listens where it did.
    drop(Daemon::start(&t, &[]));
    let impostor = Impostor::answering();
    impostor.claim(&t.dir.path().join("data"));
    let r = t.run(&["restore", &file]);
    assert_exit(&r, 0, "restore beside a process that is not the daemon");
    assert!(!r.stderr.contains("stop it first"), "{}", r.stderr);
    let note = format!("another process (not this data dir's redeemd) listens at {}", impostor.addr);
    assert!(r.stdout.contains(&note), "{}", r.stdout);
    let token = std::fs::read_to_string(t.dir.path().join("data/pos-token")).unwrap();
    impostor.assert_never_got(token.trim());
    // The real daemon still stops a restore.
    let d = Daemon::start(&t, &[]);
    let r = t.run(&["restore", &file]);
    assert_exit(&r, 2, "restore beside the daemon");
    assert!(
        r.stderr.contains("stop it first") && r.stderr.contains(d.base.trim_start_matches("http://")),
        "{}",
        r.stderr
    );
}

/// The rule-set version in force in `t`'s ledger.
fn ruleset_version(t: &TestTerminal) -> Option<u64> {
    redeemd::store::Store::open_read_only(&t.db()).unwrap().ruleset_version().unwrap()
}

#[test]
fn restore_keeps_the_newer_rule_set_and_its_revocations() {
    let t = TestTerminal::with_ruleset(); // version 5, REVOKED-1
    assert_exit(&redeem(&t, "RULES-1"), 0, "redeem");
    let file = t.path("v5.backup");
    assert_exit(&t.run(&["backup", &file]), 0, "backup");
    // A newer rule set revokes one more coupon; the backup has the older one.
    let v6 = t.write_ruleset("rs6.jws", 6, &["DINING", "GROCERY"], &["REVOKED-1", "REVOKED-6"]);
    assert_exit(&t.run(&["ruleset", "import", &v6]), 0, "import version 6");
    let r = t.run(&["restore", &file]);
    assert_exit(&r, 0, "restore");
    assert!(
        r.stdout.contains("kept rule set version 6 of the replaced ledger, newer than the backup's (5)"),
        "{}",
        r.stdout
    );
    assert_eq!(ruleset_version(&t), Some(6), "no rollback to the backup's version 5");
    let revoked = t.run(&["redeem", &t.code("REVOKED-6", "DINING"), "--amount", "58", "--json"]);
    assert_exit(&revoked, 1, "a coupon the newer rule set revokes");
    assert_eq!(revoked.json()["reason"], "revoked");
    // What is in force is the signed text, proven as the daemon proves it.
    let show = t.run(&["ruleset", "show"]);
    assert_exit(&show, 0, "ruleset show re-verifies");
    let doctor: serde_json::Value = serde_json::from_str(&t.run(&["doctor", "--json"]).stdout).unwrap();
    let findings = doctor["findings"].as_array().unwrap();
    assert!(
        findings
            .iter()
            .any(|f| f["check"] == "ledger"
                && f["message"] == "the campaign and revoked tables match the signed rule set"),
        "{doctor}"
    );
    // The redemptions came back with it.
    let again = t.run(&["redeem", &t.code("RULES-1", "DINING"), "--amount", "58", "--json"]);
    assert_eq!(again.json()["reason"], "already_redeemed");

    // A backup with the newer rule set restores it over an older one: nothing to keep.
    let late = t.path("v6.backup");
    assert_exit(&t.run(&["backup", &late]), 0, "backup");
    let r = t.run(&["restore", &late]);
    assert_exit(&r, 0, "restore of the same version");
    assert!(!r.stdout.contains("kept rule set"), "{}", r.stdout);
    assert_eq!(ruleset_version(&t), Some(6));

    // A newer rule set that does not verify under the trust keys the terminal will have:
    // refused before anything changed, not rolled back.
    let v7 = t.write_ruleset("rs7.jws", 7, &["DINING"], &["REVOKED-1", "REVOKED-6", "REVOKED-7"]);
    assert_exit(&t.run(&["ruleset", "import", &v7]), 0, "import version 7");
    let other = redeemd::issuer::Issuer::from_seed(77);
    std::fs::write(t.dir.path().join("data/trust-keys.json"), other.trust_anchors_json()).unwrap();
    let before = t.fingerprint();
    let r = t.run(&["restore", &late]);
    assert_exit(&r, 2, "restore that would roll back to version 6");
    assert!(r.stderr.contains("rule set version 7") && r.stderr.contains("roll the rule set back"), "{}", r.stderr);
    assert_eq!(t.fingerprint(), before, "nothing changed");
}

#[test]
fn a_restored_ledger_and_its_data_dir_are_private_under_umask_022() {
    let t = TestTerminal::with_ruleset();
    assert_exit(&redeem(&t, "MODE-1"), 0, "redeem");
    let file = t.path("mode.backup");
    assert_exit(&t.run(&["backup", &file]), 0, "backup");
    let mode = |p: &std::path::Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
    let umask_022 = |config: &str, args: &[&str]| {
        let out = std::process::Command::new("sh")
            .args(["-c", "umask 022 && exec \"$0\" \"$@\"", common::binary(), "--config", config])
            .args(args)
            .env_remove("REDEEMD_CONFIG")
            .env("REDEEMD_LOG", "error")
            .output()
            .unwrap();
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    };
    // Onto a new terminal: the data dir and the ledger are made private.
    let fresh = TestTerminal::bare(9);
    umask_022(&fresh.config(), &["restore", &file, "--data-dir", &fresh.path("data")]);
    assert_eq!(mode(&fresh.dir.path().join("data")), 0o700);
    assert_eq!(mode(&fresh.db()), 0o600);
    // Over a ledger an older redeemd left world-readable: 0600 afterwards, WAL files too.
    std::fs::set_permissions(t.db(), std::fs::Permissions::from_mode(0o644)).unwrap();
    umask_022(&t.config(), &["restore", &file]);
    for suffix in ["", "-wal", "-shm"] {
        let path = std::path::PathBuf::from(format!("{}{suffix}", t.db().display()));
        if path.exists() {
            assert_eq!(mode(&path), 0o600, "{}", path.display());
        }
    }
    assert_eq!(mode(&t.db()), 0o600);
}
