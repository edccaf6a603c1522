//! Crash safety: SIGKILL the real binary at random moments while it redeems in a loop.
//! Afterwards every redemption reported `accepted` is in the ledger, each redemption has
//! exactly one redeem event, and the outbox `seq` runs 1..=n without gaps or duplicates.
//!
//! `REDEEMD_CRASH_ROUNDS` sets the number of kills (default 120).

mod common;

use common::TestTerminal;
use std::collections::{BTreeSet, HashSet};
use std::io::Read;
use std::process::Stdio;
use std::time::{Duration, Instant};

#[test]
fn sigkill_never_loses_an_accepted_redemption() {
    let t = TestTerminal::with_ruleset();
    let rounds: usize = std::env::var("REDEEMD_CRASH_ROUNDS").ok().and_then(|v| v.parse().ok()).unwrap_or(120);
    let seed = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_nanos() as u64 | 1;
    eprintln!("crash test seed {seed}");
    let mut rng = seed;
    let mut next = move || {
        rng ^= rng << 13;
        rng ^= rng >> 7;
        rng ^= rng << 17;
        rng
    };
    // Calibrate: how long one redeem takes here, so kills land across its whole life.
    let started = Instant::now();
    let warm = t.run(&["redeem", &t.code("WARM-UP", "DINING"), "--amount", "58", "--json"]);
    assert_eq!(warm.code, 0, "{}", warm.stderr);
    let life_us = started.elapsed().as_micros().max(1000) as u64;

    let mut accepted: HashSet<String> = HashSet::new();
    accepted.insert(warm.json()["redemption_id"].as_str().unwrap().to_owned());
    let (mut killed, mut finished) = (0, 0);
    let deadline = Instant::now() + Duration::from_secs(120);
    for round in 0..rounds {
        if Instant::now() > deadline {
            eprintln!("stopping after {round} rounds: time budget spent");
            break;
        }
        // Some codes repeat so that rejections and already_redeemed are in the mix too.
        let coupon = format!("CRASH-{}", next() % (rounds as u64 * 3 / 4 + 1));
        let code = t.code(&coupon, "DINING");
        let mut child = t
            .command(&["redeem", &code, "--amount", "58", "--json"])
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        std::thread::sleep(Duration::from_micros(next() % (life_us * 3 / 2)));
        match child.try_wait().unwrap() {
            Some(_) => finished += 1,
            None => {
                child.kill().unwrap(); // SIGKILL
                killed += 1;
            }
        }
        child.wait().unwrap();
        let mut out = String::new();
        child.stdout.take().unwrap().read_to_string(&mut out).unwrap();
        if let Some(line) = out.lines().next() {
            let record: serde_json::Value = serde_json::from_str(line).unwrap();
            if record["decision"] == "accepted" {
                accepted.insert(record["redemption_id"].as_str().unwrap().to_owned());
            }
        }
    }
    eprintln!("{killed} killed, {finished} finished, {} reported accepted", accepted.len());
    assert!(killed > 0, "no process was killed; the test proves nothing");

    let conn = rusqlite::Connection::open(t.db()).unwrap();
    let in_ledger: HashSet<String> = conn
        .prepare("SELECT id FROM redemption")
        .unwrap()
        .query_map([], |r| r.get(0))
        .unwrap()
        .map(Result::unwrap)
        .collect();
    for id in &accepted {
        assert!(in_ledger.contains(id), "redemption {id} was reported accepted but is not in the ledger");
    }
    let seqs: Vec<i64> = conn
        .prepare("SELECT seq FROM outbox ORDER BY seq")
        .unwrap()
        .query_map([], |r| r.get(0))
        .unwrap()
        .map(Result::unwrap)
        .collect();
    assert_eq!(seqs, (1..=seqs.len() as i64).collect::<Vec<_>>(), "outbox seq has gaps or duplicates");
    let events: BTreeSet<String> = conn
        .prepare("SELECT redemption_id FROM outbox WHERE type = 'redeem'")
        .unwrap()
        .query_map([], |r| r.get(0))
        .unwrap()
        .map(Result::unwrap)
        .collect();
    assert_eq!(events.len(), seqs.len(), "a redemption has more than one redeem event");
    assert_eq!(events, in_ledger.iter().cloned().collect(), "every redemption has exactly one redeem event");
    let live_dupes: i64 = conn
        .query_row(
            "SELECT COUNT(*) FROM (SELECT coupon_id FROM redemption WHERE voided_ms IS NULL GROUP BY coupon_id HAVING COUNT(*) > 1)",
            [],
            |r| r.get(0),
        )
        .unwrap();
    assert_eq!(live_dupes, 0, "a coupon is redeemed twice");
    let check: String = conn.query_row("PRAGMA integrity_check", [], |r| r.get(0)).unwrap();
    assert_eq!(check, "ok");
}
