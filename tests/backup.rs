//! `redeemd backup` / `redeemd restore` with the real binary: a terminal swap against the
//! test upstream (the old terminal's unsynced redemptions reach upstream exactly once,
//! under their original event ids, sent by the replacement), a backup taken while the
//! daemon writes, no secret in a backup, and every refusal leaving the ledger unchanged.

mod common;

use common::daemon::Daemon;
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

    // The replacement: restore, provision with its own code, sync.
    let new = TestTerminal::bare(41);
    let data = new.path("data");
    let r = new.run(&["restore", &file, "--data-dir", &data]);
    assert_exit(&r, 0, "restore");
    assert!(r.stdout.contains("4 not yet answered") && r.stdout.contains("provision"), "{}", r.stdout);
    assert!(std::fs::read_to_string(new.config()).unwrap().contains(&data), "the config points at the new data dir");
    assert!(!new.dir.path().join("data/token").exists(), "no token was restored");
    let r = new.provision(&up.url, &up.ca_pem, "NEW-CODE");
    assert_exit(&r, 0, "provision the replacement");
    assert!(r.stdout.contains("T-0043"), "{}", r.stdout);
    let r = new.run(&["sync", "--once"]);
    assert_exit(&r, 0, "sync from the replacement");
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

    // The ledger came along: a coupon used on the old terminal stays used; the voided one is free.
    let again = new.run(&["redeem", &new.code("SWAP-C", "DINING"), "--amount", "58", "--json"]);
    assert_exit(&again, 1, "SWAP-C again");
    assert_eq!(again.json()["reason"], "already_redeemed");
    assert_exit(&redeem(&new, "SWAP-B"), 0, "the voided coupon again");
    assert_exit(&new.run(&["sync", "--once"]), 0, "sync");
    let last = up.first_arrivals().last().cloned().unwrap();
    assert_eq!(last.0, 6, "the replacement continues the sequence");
    let report = new.run(&["report", "daily", "--format", "json"]).json();
    let states: Vec<&str> =
        report["redemptions"].as_array().unwrap().iter().map(|r| r["state"].as_str().unwrap()).collect();
    assert_eq!(states, ["forwarded"; 5]);
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
