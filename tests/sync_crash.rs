//! Crash safety of the forwarder: `redeemd sync` is SIGKILLed again and again, mid-batch,
//! while it forwards a backlog of 5,000 events to the test upstream. Afterwards upstream
//! holds every `event_id`, the outbox `seq` is complete, and every local state agrees
//! with upstream's answer. `REDEEMD_SYNC_CRASH_EVENTS` changes the backlog size.

mod common;

use common::upstream::{Fault, TestUpstream};
use common::TestTerminal;
use redeemd::agent::Agent;
use redeemd::clock::SystemClock;
use redeemd::decision::Terminal;
use redeemd::messages::Language;
use redeemd::money::Money;
use redeemd::store::{CheckoutRef, Store};
use std::collections::HashSet;
use std::process::Stdio;
use std::time::{Duration, Instant};

#[test]
fn sigkill_mid_batch_loses_and_duplicates_nothing_in_effect() {
    let events: usize = std::env::var("REDEEMD_SYNC_CRASH_EVENTS").ok().and_then(|v| v.parse().ok()).unwrap_or(5000);
    let up = TestUpstream::start();
    let t = TestTerminal::bare(31);
    up.set_ruleset_keys(&t.issuer.trust_anchors_json());
    let mut payload = t.issuer.ruleset_payload(1, jiff::Timestamp::now(), &["DINING"], &[]);
    payload["offline"] = serde_json::json!({"max_unsynced_count": 1_000_000});
    up.set_ruleset(&t.issuer.sign_ruleset(&payload));
    up.add_code("GOOD-CODE");
    let r = t.provision(&up.url, &up.ca_pem, "GOOD-CODE");
    assert_eq!(r.code, 0, "{}", r.stderr);

    // The backlog, written through the library (the binary would take minutes in debug).
    {
        let anchors = redeemd::ruleset::parse_anchors(&t.issuer.trust_anchors_json()).unwrap();
        let store = Store::open(&t.db()).unwrap();
        let terminal = Terminal { merchant_id: "M-000123".into(), merchant_category: "dining".into() };
        let tz = jiff::tz::TimeZone::get("Asia/Shanghai").unwrap();
        let mut agent = Agent::new(store, terminal, anchors, Language::En, tz, Box::new(SystemClock)).unwrap();
        for i in 0..events {
            let code = t.code(&format!("CRASH-{i:05}"), "DINING");
            let single = CheckoutRef::Single { basket_total: Money(5800), eligible_total: None, pos_ref: None };
            let recorded = agent.redeem(single, &code).unwrap();
            assert!(recorded.decision.accepted(), "{:?}", recorded.decision.outcome);
            if i % 10 == 9 {
                agent.void(recorded.redemption_id.as_deref().unwrap(), Some("test")).unwrap();
            }
        }
    }
    let total = redeemd::store::Store::open(&t.db()).unwrap().outbox().unwrap().len();

    // Slow answers widen the window between upstream's processing and the local mark.
    up.fail_next("redemptions", &vec![Fault::Delay(Duration::from_millis(150)); 40]);
    let mut rng = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_nanos() as u64 | 1;
    eprintln!("sync crash seed {rng}");
    let mut next = move || {
        rng ^= rng << 13;
        rng ^= rng >> 7;
        rng ^= rng << 17;
        rng
    };
    let deadline = Instant::now() + Duration::from_secs(120);
    let mut kills = 0;
    while up.event_ids().len() < total && Instant::now() < deadline && kills < 60 {
        let mut child = t.command(&["sync"]).stdout(Stdio::null()).stderr(Stdio::null()).spawn().unwrap();
        std::thread::sleep(Duration::from_millis(50 + next() % 400));
        if child.try_wait().unwrap().is_none() {
            child.kill().unwrap(); // SIGKILL
            kills += 1;
        }
        child.wait().unwrap();
    }
    let received_before_finish = up.state.lock().unwrap().received.len();
    let r = t.run(&["sync", "--once"]);
    assert_eq!(r.code, 0, "final sync: {}\n{}", r.stdout, r.stderr);
    eprintln!("{kills} kills; upstream received {received_before_finish} event sends for {total} events before the final round");
    assert!(kills > 3, "the forwarder was hardly killed ({kills})");

    let store = Store::open(&t.db()).unwrap();
    let local = store.outbox().unwrap();
    assert_eq!(local.len(), total);
    let seqs: Vec<i64> = local.iter().map(|(seq, ..)| *seq).collect();
    assert_eq!(seqs, (1..=total as i64).collect::<Vec<_>>(), "seq has gaps or duplicates");
    let ids: HashSet<String> = local.iter().map(|(_, id, ..)| id.clone()).collect();
    assert_eq!(up.event_ids(), ids, "upstream holds every event_id, and no other");
    for (seq, id, _, state) in &local {
        let answer = up.answer_for(id).unwrap();
        assert_eq!(answer["status"], "accepted", "event {seq}");
        assert!(state == "accepted" || state == "duplicate", "event {seq} is {state} locally");
    }
    let arrivals: Vec<i64> = up.first_arrivals().iter().map(|(seq, _)| *seq).collect();
    assert_eq!(arrivals, seqs, "first arrivals are in seq order");
    let unsynced = store.unsynced().unwrap();
    assert_eq!(unsynced.count, 0, "every redemption's state agrees with upstream");
}
