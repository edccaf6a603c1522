//! The store hub between lanes (`spec/store-hub.md`), beyond `store_hub.rs`: a cancelled
//! checkout gives its coupons back, a holder's daily limit holds across lanes, a claim
//! left by a lane that died before its commit is removed when that lane starts again,
//! and the `hub` event follows the hub going and coming back. Each test runs a real
//! `nats-server` with JetStream on loopback and skips with a notice where there is none
//! (fails instead under `REDEEMD_REQUIRE_NATS=1`).

mod common;

use common::daemon::Daemon;
use common::lanes::{connected_at, hub_of, join_store, redeem_at, wait_for, Lane};
use common::nats::NatsServer;
use common::TestTerminal;
use serde_json::Value;
use std::time::{Duration, Instant};

/// The store every lane belongs to: the terminals' merchant id.
const STORE_ID: &str = "M-000123";

/// A lane with the usual rule set (DINING, GROCERY; no holder limit).
fn lane(hub: &str, lane: &str) -> Lane {
    let t = TestTerminal::with_ruleset();
    join_store(&t, hub, lane, "");
    let d = Daemon::start(&t, &[]);
    Lane { t, d }
}

/// A terminal (not started) whose rule set limits DINING to one redemption per holder and
/// business day, in the store at `hub` as lane `lane`.
fn terminal_with_holder_limit(hub: &str, lane: &str) -> TestTerminal {
    let t = TestTerminal::new();
    let mut payload = t.issuer.ruleset_payload(5, jiff::Timestamp::now(), &["DINING", "GROCERY"], &[]);
    assert_eq!(payload["campaigns"][0]["id"], "DINING");
    payload["campaigns"][0]["max_per_holder_per_day"] = 1.into();
    let path = t.path("rs5-holder-limit.jws");
    std::fs::write(&path, t.issuer.sign_ruleset(&payload)).unwrap();
    let r = t.run(&["ruleset", "import", &path]);
    assert_eq!(r.code, 0, "import: {}", r.stderr);
    join_store(&t, hub, lane, "");
    t
}

/// A code of `coupon_id` in `campaign` held by `holder`.
fn code_of_holder(t: &TestTerminal, coupon_id: &str, campaign: &str, holder: &[u8]) -> String {
    let mut spec = redeemd::issuer::CodeSpec::new(coupon_id, campaign, jiff::Timestamp::now());
    spec.holder = holder.to_vec();
    t.issuer.code(&spec)
}

/// A fresh checkout of 50.00 and `code` in it: the decision record.
fn redeem(d: &Daemon, code: &str) -> Value {
    redeem_at(d, 5000, code)
}

fn hub_state(d: &Daemon) -> Value {
    hub_of(d)
}

fn connected(d: &Daemon) {
    connected_at(d)
}

fn refused_elsewhere(decision: &Value, reason: &str, lane: &str) {
    assert_eq!(
        (decision["decision"].as_str(), decision["reason"].as_str()),
        (Some("rejected"), Some(reason)),
        "{decision}"
    );
    assert_eq!(decision["elsewhere"]["lane"], lane, "{decision}");
    assert!(decision.get("guard").is_none(), "a refusal carries no guard: {decision}");
}

/// Polls `code` at `d` with fresh checkouts until it is accepted within `limit`: the record.
fn accepted_within(d: &Daemon, code: &str, what: &str, limit: Duration) -> Value {
    let mut last = Value::Null;
    wait_for(what, limit, || {
        last = redeem(d, code);
        last["decision"] == "accepted"
    });
    last
}

/// The hub's claims bucket, through a client of our own.
struct Bucket {
    runtime: tokio::runtime::Runtime,
    kv: async_nats::jetstream::kv::Store,
}

impl Bucket {
    fn open(url: &str) -> Bucket {
        let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
        let kv = runtime.block_on(async {
            let client = async_nats::connect(url).await.expect("connecting to the hub");
            async_nats::jetstream::new(client)
                .get_key_value(redeemd::claim::bucket_name(STORE_ID))
                .await
                .expect("the claims bucket exists")
        });
        Bucket { runtime, kv }
    }

    fn get(&self, key: &str) -> Option<Value> {
        let value = self.runtime.block_on(self.kv.get(key)).expect("reading a claim")?;
        Some(serde_json::from_slice(&value).expect("a claim is JSON"))
    }

    fn put(&self, key: &str, value: &Value) {
        self.runtime.block_on(self.kv.put(key, value.to_string().into_bytes().into())).expect("writing a claim");
    }
}

#[test]
fn a_cancelled_checkout_gives_its_coupon_back_to_every_lane() {
    let Some(server) = NatsServer::start() else { return };
    let (one, two) = (lane(&server.url(), "1"), lane(&server.url(), "2"));
    connected(&one.d);
    connected(&two.d);

    let code = one.t.code("CANCEL-0001", "DINING");
    let checkout = one.d.open_checkout(5000);
    let first = one.d.present(&checkout, &code);
    assert_eq!(first["decision"], "accepted", "{first}");
    assert_eq!(first["guard"], "store", "{first}");
    refused_elsewhere(&redeem(&two.d, &code), "already_redeemed", "1");

    let r = one.d.post(&format!("/v1/checkouts/{checkout}/close"), r#"{"status": "cancelled"}"#);
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(r.json()["status"], "cancelled", "{}", r.text);

    let again =
        accepted_within(&two.d, &code, "the cancelled coupon is free at the other lane", Duration::from_secs(3));
    assert_eq!(again["guard"], "store", "{again}");
    // And now it is lane 2's: lane 1 is refused, naming lane 2.
    refused_elsewhere(&redeem(&one.d, &code), "already_redeemed", "2");
}

#[test]
fn a_holders_daily_limit_holds_across_lanes_and_a_void_frees_it() {
    let Some(server) = NatsServer::start() else { return };
    let (t1, t2) = (terminal_with_holder_limit(&server.url(), "1"), terminal_with_holder_limit(&server.url(), "2"));
    let one = Lane { d: Daemon::start(&t1, &[]), t: t1 };
    let two = Lane { d: Daemon::start(&t2, &[]), t: t2 };
    connected(&one.d);
    connected(&two.d);

    let holder = b"holder-H-0042";
    let a = code_of_holder(&one.t, "HOLD-A", "DINING", holder);
    let b = code_of_holder(&two.t, "HOLD-B", "DINING", holder);
    let first = redeem(&one.d, &a);
    assert_eq!(first["decision"], "accepted", "{first}");
    assert_eq!(first["guard"], "store", "{first}");

    let second = redeem(&two.d, &b);
    refused_elsewhere(&second, "holder_daily_limit", "1");
    assert!(second["elsewhere"]["at"].as_str().is_some_and(|a| a.contains('T')), "{second}");
    // Another holder, same campaign, same lane: not limited.
    let other = redeem(&two.d, &code_of_holder(&two.t, "HOLD-C", "DINING", b"holder-other"));
    assert_eq!(other["decision"], "accepted", "{other}");

    let redemption = first["redemption_id"].as_str().unwrap();
    let r = one.d.post(&format!("/v1/redemptions/{redemption}/void"), r#"{"reason": "x"}"#);
    assert_eq!(r.status, 200, "{}", r.text);
    let again = accepted_within(&two.d, &b, "the holder's slot is free after the void", Duration::from_secs(3));
    assert_eq!(again["guard"], "store", "{again}");
    // The slot is lane 2's now: a new coupon of the holder at lane 1 is refused.
    let third = redeem(&one.d, &code_of_holder(&one.t, "HOLD-D", "DINING", holder));
    refused_elsewhere(&third, "holder_daily_limit", "2");
}

#[test]
fn a_claim_left_by_a_lane_that_died_before_its_commit_is_removed_when_it_starts_again() {
    let Some(server) = NatsServer::start() else { return };
    let t1 = TestTerminal::with_ruleset();
    join_store(&t1, &server.url(), "1", "");
    let two = lane(&server.url(), "2");
    connected(&two.d);

    // Lane 1 once: the bucket exists, and one of its claims shows its name on the hub.
    let first_run = Daemon::start(&t1, &[]);
    connected(&first_run);
    let probe = redeem(&first_run, &t1.code("PROBE-0001", "DINING"));
    assert_eq!(probe["guard"], "store", "{probe}");
    let bucket = Bucket::open(&server.url());
    let own = bucket.get(&redeemd::claim::coupon_key("PROBE-0001")).expect("lane 1's claim");
    assert_eq!(own["lane"], "1", "{own}");
    assert_eq!(own["redemption_id"], probe["redemption_id"], "{own}");
    let terminal_id = own["terminal_id"].as_str().unwrap().to_owned();
    assert_eq!(terminal_id, "lane-1", "a terminal provisioned by hand is lane-<lane> on the hub");
    drop(first_run);

    // It "died" between a claim and its commit: a claim of lane 1 its ledger does not hold.
    let key = redeemd::claim::coupon_key("DANGLING-1");
    let dangling = serde_json::json!({"terminal_id": terminal_id, "lane": "1",
        "redemption_id": "0190ffff-0000-7000-8000-000000000000", "at": "2026-12-08T10:00:00+08:00"});
    bucket.put(&key, &dangling);
    let code = two.t.code("DANGLING-1", "DINING");
    let refused = redeem(&two.d, &code);
    refused_elsewhere(&refused, "already_redeemed", "1");
    assert_eq!(refused["elsewhere"]["terminal_id"], "lane-1", "{refused}");

    // Lane 1 starts again: the dangling claim goes, its real one stays.
    let one = Lane { d: Daemon::start(&t1, &[]), t: t1 };
    let again = accepted_within(&two.d, &code, "the dangling claim is removed", Duration::from_secs(5));
    assert_eq!(again["guard"], "store", "{again}");
    let kept = bucket.get(&redeemd::claim::coupon_key("PROBE-0001"));
    assert_eq!(kept, Some(own), "a claim of a redemption the lane holds is kept");
    refused_elsewhere(&redeem(&two.d, &one.t.code("PROBE-0001", "DINING")), "already_redeemed", "1");
}

/// The next `hub` event whose state is `state`, within `limit` (others are skipped).
fn next_hub_state(events: &common::daemon::EventStream, state: &str, limit: Duration) -> Value {
    let deadline = Instant::now() + limit;
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        let event = events.next_named("hub", left).unwrap_or_else(|| panic!("no hub event {state:?} within {limit:?}"));
        if event["state"] == state {
            return event;
        }
    }
}

#[test]
fn the_hub_event_follows_the_hub_going_and_coming_back() {
    let Some(mut server) = NatsServer::start() else { return };
    let one = lane(&server.url(), "1");
    connected(&one.d);
    let events = one.d.events();

    server.kill9();
    let gone = next_hub_state(&events, "disconnected", Duration::from_secs(10));
    assert_eq!(gone["url"], server.url(), "{gone}");
    for key in ["unconfirmed", "unpublished", "last_error"] {
        assert!(gone.get(key).is_some(), "{key} missing: {gone}");
    }
    assert_eq!(hub_state(&one.d)["state"], "disconnected");

    server.restart();
    let back = next_hub_state(&events, "connected", Duration::from_secs(15));
    assert_eq!(back["url"], server.url(), "{back}");
    let status = hub_state(&one.d);
    assert_eq!(status["state"], "connected", "{status}");
    // Connected again, the lane claims at the hub again.
    let decision = redeem(&one.d, &one.t.code("EVENT-0001", "DINING"));
    assert_eq!(decision["guard"], "store", "{decision}");
}
