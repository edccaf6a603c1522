//! The store hub end to end (`spec/store-hub.md`): a real `nats-server` with JetStream on
//! loopback, and lanes that are separate `redeemd run` processes of one store (merchant
//! M-000123, one issuer). Skips with a notice where `nats-server` is not on PATH; fails
//! instead under `REDEEMD_REQUIRE_NATS=1` (`.ci/run`).

mod common;

use common::daemon::Daemon;
use common::nats::NatsServer;
use common::TestTerminal;
use serde_json::Value;
use std::os::unix::fs::PermissionsExt;
use std::time::{Duration, Instant};

/// A lane of the store: a terminal with the shared issuer's rule set, `[store]` pointing
/// at `hub`, and its daemon.
struct Lane {
    t: TestTerminal,
    d: Daemon,
}

fn store_section(hub: &str, lane: &str, extra: &str) -> String {
    format!("\n[store]\nhub = \"{hub}\"\nlane = \"{lane}\"\nclaim-timeout-ms = 500\n{extra}\n")
}

fn terminal_with_store(hub: &str, lane: &str, extra: &str) -> TestTerminal {
    let t = TestTerminal::with_ruleset();
    let mut config = std::fs::read_to_string(t.config()).unwrap();
    config.push_str(&store_section(hub, lane, extra));
    std::fs::write(t.config(), config).unwrap();
    t
}

fn lane(hub: &str, lane: &str, extra: &str) -> Lane {
    let t = terminal_with_store(hub, lane, extra);
    let d = Daemon::start(&t, &[]);
    Lane { t, d }
}

fn hub_state(l: &Lane) -> Value {
    l.d.get("/v1/status").json()["hub"].clone()
}

fn wait_for(what: &str, limit: Duration, mut ok: impl FnMut() -> bool) -> Duration {
    let started = Instant::now();
    while !ok() {
        assert!(started.elapsed() < limit, "{what}: not within {limit:?}");
        std::thread::sleep(Duration::from_millis(50));
    }
    started.elapsed()
}

fn connected(l: &Lane) {
    wait_for("the lane connects to the hub", Duration::from_secs(15), || hub_state(l)["state"] == "connected");
}

/// A fresh checkout of 50.00 and `code` in it: the decision record.
fn redeem(l: &Lane, code: &str) -> Value {
    let checkout = l.d.open_checkout(5000);
    l.d.present(&checkout, code)
}

fn report(l: &Lane) -> Value {
    l.d.get("/v1/reports/daily").json()
}

#[test]
fn a_coupon_used_at_one_lane_is_refused_at_the_next_and_free_again_after_a_void() {
    let Some(server) = NatsServer::start() else { return };
    let (one, two) = (lane(&server.url(), "1", ""), lane(&server.url(), "2", ""));
    connected(&one);
    connected(&two);
    assert_eq!(hub_state(&one)["url"], server.url());

    let code = one.t.code("HUB-0001", "DINING");
    let first = redeem(&one, &code);
    assert_eq!(first["decision"], "accepted", "{first}");
    assert_eq!(first["guard"], "store", "{first}");
    assert!(first.get("elsewhere").is_none(), "{first}");

    let second = redeem(&two, &code);
    assert_eq!((second["decision"].as_str(), second["reason"].as_str()), (Some("rejected"), Some("already_redeemed")));
    assert_eq!(second["elsewhere"]["lane"], "1", "{second}");
    assert!(second["elsewhere"]["at"].as_str().is_some_and(|a| a.contains('T')), "{second}");
    assert!(second.get("guard").is_none(), "a refusal carries no guard: {second}");
    assert!(second["message"].as_str().unwrap().contains("lane 1"), "{second}");

    // The void gives the claim back: lane 2 may take the coupon within a second or so.
    let redemption = first["redemption_id"].as_str().unwrap();
    let r = one.d.post(&format!("/v1/redemptions/{redemption}/void"), r#"{"reason": "wrong item"}"#);
    assert_eq!(r.status, 200, "{}", r.text);
    let mut again = Value::Null;
    wait_for("the voided coupon is free at the other lane", Duration::from_secs(3), || {
        again = redeem(&two, &code);
        again["decision"] == "accepted"
    });
    assert_eq!(again["guard"], "store");

    // Reports carry what the lane knows of its claims; events reach the stream.
    let rows = report(&two)["redemptions"].as_array().unwrap().clone();
    assert!(rows.iter().any(|r| r["store"] == "confirmed"), "{rows:?}");
    wait_for("every event is published", Duration::from_secs(5), || {
        hub_state(&one)["unpublished"] == 0 && hub_state(&two)["unpublished"] == 0
    });
    let metrics = one.d.request("GET", "/metrics", None, &[("authorization", "")]).text;
    assert!(metrics.contains("redeemd_hub_claims_total{outcome=\"won\"}"), "{metrics}");
    assert!(metrics.contains("redeemd_hub_unpublished 0"), "{metrics}");
}

#[test]
fn three_lanes_racing_on_each_coupon_accept_it_exactly_once() {
    let Some(server) = NatsServer::start() else { return };
    let lanes: Vec<Lane> = (1..=3).map(|n| lane(&server.url(), &n.to_string(), "")).collect();
    lanes.iter().for_each(connected);
    for n in 0..50 {
        let code = lanes[0].t.code(&format!("RACE-{n:04}"), "DINING");
        // Each lane's checkout is open before the race starts.
        let checkouts: Vec<String> = lanes.iter().map(|l| l.d.open_checkout(5000)).collect();
        let barrier = std::sync::Barrier::new(3);
        let decisions: Vec<Value> = std::thread::scope(|s| {
            let handles: Vec<_> = lanes
                .iter()
                .zip(&checkouts)
                .map(|(l, checkout)| {
                    let (barrier, code) = (&barrier, &code);
                    s.spawn(move || {
                        barrier.wait();
                        l.d.present(checkout, code)
                    })
                })
                .collect();
            handles.into_iter().map(|h| h.join().unwrap()).collect()
        });
        let accepted = decisions.iter().filter(|d| d["decision"] == "accepted").count();
        assert_eq!(accepted, 1, "coupon {n}: {decisions:?}");
        for d in decisions.iter().filter(|d| d["decision"] != "accepted") {
            assert_eq!(d["reason"], "already_redeemed", "{d}");
            assert!(d["elsewhere"]["lane"].is_string(), "{d}");
        }
    }
}

#[test]
fn with_the_hub_down_lanes_decide_alone_and_the_outage_is_settled_when_it_returns() {
    let Some(mut server) = NatsServer::start() else { return };
    let (one, two) = (lane(&server.url(), "1", ""), lane(&server.url(), "2", ""));
    connected(&one);
    connected(&two);
    let before = one.t.code("DOWN-0000", "DINING");
    assert_eq!(redeem(&one, &before)["guard"], "store");

    server.kill9();
    wait_for("the lanes see the hub gone", Duration::from_secs(10), || {
        hub_state(&one)["state"] == "disconnected" && hub_state(&two)["state"] == "disconnected"
    });
    // Both accept the same coupon alone; neither waits for the hub it knows is down.
    let code = one.t.code("DOWN-0001", "DINING");
    let started = Instant::now();
    let a = redeem(&one, &code);
    let b = redeem(&two, &code);
    let took = started.elapsed();
    assert_eq!((a["decision"].as_str(), a["guard"].as_str()), (Some("accepted"), Some("local")), "{a}");
    assert_eq!((b["decision"].as_str(), b["guard"].as_str()), (Some("accepted"), Some("local")), "{b}");
    assert!(took < Duration::from_secs(5), "decisions waited for a hub known to be down: {took:?}");
    assert!(hub_state(&one)["unconfirmed"].as_u64() >= Some(1));

    // Back on the same storage: every claim settles within 5 s, one lane's stands, the
    // other's is a store conflict; nothing accepted is lost; every event is published.
    server.restart();
    let returned = Instant::now();
    wait_for("the outage is settled", Duration::from_secs(8), || {
        hub_state(&one)["unconfirmed"] == 0 && hub_state(&two)["unconfirmed"] == 0
    });
    let settled_in = returned.elapsed();
    assert!(settled_in < Duration::from_secs(8), "{settled_in:?}");
    let states: Vec<String> = [&one, &two]
        .iter()
        .flat_map(|l| report(l)["redemptions"].as_array().unwrap().clone())
        .filter(|r| r["coupon_id"] == "DOWN-0001")
        .map(|r| r["store"].as_str().unwrap_or_default().to_owned())
        .collect();
    assert_eq!(states.len(), 2, "both acceptances stand: {states:?}");
    assert!(states.contains(&"conflict".to_owned()), "{states:?}");
    wait_for("every event is published", Duration::from_secs(5), || {
        hub_state(&one)["unpublished"] == 0 && hub_state(&two)["unpublished"] == 0
    });
}

#[test]
fn a_lane_set_to_refuse_refuses_when_the_hub_does_not_answer() {
    // Nothing listens on this port: the hub is down from the start.
    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let l = lane(&format!("nats://127.0.0.1:{port}"), "1", "when-hub-down = \"refuse\"");
    assert_eq!(hub_state(&l)["state"], "disconnected");
    let decision = redeem(&l, &l.t.code("REFUSE-1", "DINING"));
    assert_eq!(decision["reason"], "store_unreachable", "{decision}");
    // Without [store], the same terminal decides as before: no guard in the record.
    let plain = TestTerminal::with_ruleset();
    let d = Daemon::start(&plain, &[]);
    let checkout = d.open_checkout(5000);
    let record = d.present(&checkout, &plain.code("PLAIN-1", "DINING"));
    assert_eq!(record["decision"], "accepted");
    assert!(record.get("guard").is_none(), "{record}");
    assert_eq!(d.get("/v1/status").json()["hub"]["state"], "none");
}

/// Lane 1 of `server` with user `lane1` and `password` in a file of `mode`: (terminal, file).
fn terminal_with_password(server: &NatsServer, password: &str, mode: u32) -> (TestTerminal, String) {
    let t = TestTerminal::with_ruleset();
    let pw = t.path("hub-password");
    std::fs::write(&pw, format!("{password}\n")).unwrap();
    std::fs::set_permissions(&pw, std::fs::Permissions::from_mode(mode)).unwrap();
    let mut config = std::fs::read_to_string(t.config()).unwrap();
    config.push_str(&store_section(&server.url(), "1", &format!("user = \"lane1\"\npassword-file = {pw:?}")));
    std::fs::write(t.config(), config).unwrap();
    (t, pw)
}

#[test]
fn a_password_file_others_can_read_is_refused_and_a_wrong_password_never_connects() {
    let Some(server) = NatsServer::start_with_users(&[("lane1", "right-password")]) else { return };
    let (t, pw) = terminal_with_password(&server, "right-password", 0o644);
    let r = t.run(&["run", "--listen", "127.0.0.1:0", "--scanner", "none"]);
    assert_eq!(r.code, 2, "{}", r.stderr);
    assert!(r.stderr.contains("chmod 600") && r.stderr.contains("hub-password"), "{}", r.stderr);
    assert!(!r.stderr.contains("right-password"), "the secret is never shown");

    // 0600 and the right password: connected.
    std::fs::set_permissions(&pw, std::fs::Permissions::from_mode(0o600)).unwrap();
    let l = Lane { d: Daemon::start(&t, &[]), t };
    connected(&l);
    drop(l);

    // A wrong password: never connected, and the lane still decides (alone).
    let (t, _) = terminal_with_password(&server, "wrong", 0o600);
    let l = Lane { d: Daemon::start(&t, &[]), t };
    std::thread::sleep(Duration::from_millis(1500));
    let state = hub_state(&l);
    assert_eq!(state["state"], "disconnected", "{state}");
    let decision = redeem(&l, &l.t.code("WRONG-PW-1", "DINING"));
    assert_eq!((decision["decision"].as_str(), decision["guard"].as_str()), (Some("accepted"), Some("local")));
}
