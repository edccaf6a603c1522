//! `cargo bench --bench sync`: a 100,000-event backlog forwarded by redeemd's forwarder
//! to the loopback test upstream (HTTPS, test CA), next to the same batches POSTed by a
//! plain reqwest loop to a fresh copy of that upstream, in the same run.
//! `REDEEMD_BENCH_EVENTS` changes the backlog size.

mod common;
#[path = "../tests/common/upstream.rs"]
mod upstream;

use redeemd::agent::Agent;
use redeemd::clock::SystemClock;
use redeemd::decision::Terminal;
use redeemd::issuer::Issuer;
use redeemd::messages::Language;
use redeemd::store::Store;
use redeemd::sync::Syncer;
use redeemd::upstream::{Endpoint, Upstream};
use std::time::{Duration, Instant};
use upstream::TestUpstream;

fn endpoint(up: &TestUpstream) -> Endpoint {
    Endpoint {
        base_url: up.url.clone(),
        ca_pem: Some(up.ca_pem.clone().into_bytes()),
        system_roots: false,
        timeout: Duration::from_secs(30),
    }
}

fn main() {
    let events: usize = std::env::var("REDEEMD_BENCH_EVENTS").ok().and_then(|v| v.parse().ok()).unwrap_or(100_000);
    let dir = tempfile::tempdir_in(env!("CARGO_TARGET_TMPDIR")).unwrap();
    let issuer = Issuer::from_seed(5);
    let now = jiff::Timestamp::now();
    let jws = issuer.sign_ruleset(&issuer.ruleset_payload(1, now, &["DINING"], &[]));
    let anchors = redeemd::ruleset::parse_anchors(&issuer.trust_anchors_json()).unwrap();

    // The backlog, bulk-written: redemptions and their redeem events, all pending.
    let mut store = Store::open(&dir.path().join("ledger.sqlite")).unwrap();
    store.install_ruleset(&redeemd::ruleset::verify(&jws, &anchors).unwrap(), now).unwrap().unwrap();
    let code = issuer.code(&redeemd::issuer::CodeSpec::new("TEMPLATE", "DINING", now));
    let mut bodies: Vec<(String, String)> = Vec::with_capacity(events);
    {
        let c = rusqlite::Connection::open(dir.path().join("ledger.sqlite")).unwrap();
        c.execute_batch("BEGIN").unwrap();
        let mut checkout = c
            .prepare("INSERT INTO checkout (id, basket_total, eligible_total, opened_ms, status) VALUES (?1, 5800, 5800, ?2, 'paid')")
            .unwrap();
        let mut redemption = c
            .prepare(
                "INSERT INTO redemption (id, checkout_id, coupon_id, campaign_id, holder, code, discount, basket_total,
                     eligible_total, currency, ruleset_version, at_ms) VALUES (?1, ?1, ?2, 'DINING', x'686f6c6465722d31', ?3, 1000, 5800, 5800, 'CNY', 1, ?4)",
            )
            .unwrap();
        let mut outbox = c
            .prepare(
                "INSERT INTO outbox (seq, event_id, type, redemption_id, body, created_ms, in_count, in_value)
                 VALUES (?1, ?2, 'redeem', ?3, ?4, ?5, ?1, ?1 * 1000)",
            )
            .unwrap();
        for i in 0..events {
            let at = now.as_millisecond() + i as i64;
            let id = common::uuid_at(at, 0, i);
            let event_id = format!("00000000-0000-7000-9000-{i:012}");
            let body = serde_json::json!({
                "event_id": event_id, "seq": i + 1, "type": "redeem", "redemption_id": id,
                "coupon_id": format!("BENCH-{i:07}"), "campaign_id": "DINING", "holder": "aG9sZGVyLTE",
                "code": code, "basket_total": 5800, "eligible_total": 5800, "discount": 1000, "currency": "CNY",
                "at": "2026-11-28T12:01:02+08:00", "ruleset_version": 1,
            })
            .to_string();
            checkout.execute(rusqlite::params![id, at]).unwrap();
            redemption.execute(rusqlite::params![id, format!("BENCH-{i:07}"), code, at]).unwrap();
            outbox.execute(rusqlite::params![i as i64 + 1, event_id, id, body, at]).unwrap();
            bodies.push((event_id, body));
        }
        drop((checkout, redemption, outbox));
        c.execute_batch("COMMIT").unwrap();
    }
    eprintln!(
        "backlog of {events} events written ({:.0} MB of event JSON)",
        bodies.iter().map(|b| b.1.len()).sum::<usize>() as f64 / 1e6
    );

    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();

    // Baseline: the same batches, a plain reqwest loop, its own fresh upstream.
    let baseline_up = TestUpstream::start();
    let _ = rustls::crypto::ring::default_provider().install_default();
    let client = reqwest::Client::builder()
        .tls_certs_only([reqwest::Certificate::from_pem(baseline_up.ca_pem.as_bytes()).unwrap()])
        .gzip(true)
        .build()
        .unwrap();
    let url = format!("{}v1/redemptions", baseline_up.url);
    let requests: Vec<String> = bodies
        .chunks(redeemd::sync::BATCH)
        .map(|batch| {
            let events: Vec<&str> = batch.iter().map(|(_, b)| b.as_str()).collect();
            format!("{{\"terminal_id\":\"T-0042\",\"events\":[{}]}}", events.join(","))
        })
        .collect();
    let t = Instant::now();
    rt.block_on(async {
        for body in &requests {
            let resp = client
                .post(&url)
                .bearer_auth("tok-0042-secret")
                .header("content-type", "application/json")
                .body(body.clone())
                .send()
                .await
                .unwrap();
            let answer: serde_json::Value = serde_json::from_slice(&resp.bytes().await.unwrap()).unwrap();
            assert!(answer["results"].is_array());
        }
    });
    let baseline = t.elapsed();
    drop(baseline_up);

    // redeemd: read the outbox, POST, check the answer, mark every event, commit.
    let up = TestUpstream::start();
    up.set_ruleset(&jws);
    let terminal = Terminal { merchant_id: "M-1".into(), merchant_category: "dining".into() };
    let tz = jiff::tz::TimeZone::get("Asia/Shanghai").unwrap();
    let mut agent = Agent::new(store, terminal, anchors, Language::En, tz, Box::new(SystemClock)).unwrap();
    let upstream = Upstream::new(&endpoint(&up), Some("tok-0042-secret".into())).unwrap();
    let mut syncer = Syncer::new(&mut agent, upstream, "T-0042".into(), dir.path().to_owned()).unwrap();
    let t = Instant::now();
    rt.block_on(syncer.run_once()).unwrap();
    let ours = t.elapsed();
    assert_eq!(syncer.summary.forwarded as usize, events);
    assert_eq!(up.event_ids().len(), events);

    let rate = |d: Duration| events as f64 / d.as_secs_f64();
    println!("backlog {events} events in batches of {}", redeemd::sync::BATCH);
    println!("redeemd forwarder      {:>8.0} events/s  ({:.2} s)", rate(ours), ours.as_secs_f64());
    println!("plain reqwest loop     {:>8.0} events/s  ({:.2} s)", rate(baseline), baseline.as_secs_f64());
    println!("ratio                  {:.2}  (target >= 0.5)", baseline.as_secs_f64() / ours.as_secs_f64());
}
