//! `cargo bench --bench ledger`: the figures README.md quotes, each next to its raw
//! baseline measured in the same run.
//!
//! 1. decide+commit latency (p50/p99) and durable redemptions/s on a ledger holding 10^6
//!    redemptions, 10^4 campaigns and 10^6 revoked ids, against a bare one-row
//!    `INSERT`+`COMMIT` with the same pragmas (WAL, synchronous=FULL) on the same disk;
//! 2. CP1 decode+verify per second against a bare Ed25519 verify;
//! 3. CP2 decode + both verifications (coupon key, holder key) per second against the same
//!    two bare verifications, for an Ed25519 and a P-256 holder, with the texts' lengths
//!    and their wire time on a 115200 baud serial scanner.
//!
//! Sizes can be lowered for a quick look: `REDEEMD_BENCH_ROWS=100000 cargo bench --bench ledger`.

mod common;

use jiff::{SignedDuration, Timestamp};
use redeemd::coupon;
use redeemd::coupon::HolderKey;
use redeemd::decision::Terminal;
use redeemd::issuer::{CodeSpec, Holder, Issuer};
use redeemd::keys::b64url_encode;
use redeemd::money::Money;
use redeemd::ruleset;
use redeemd::store::{CheckoutRef, Store};
use std::time::Instant;

use common::{env, ms, percentile};

fn main() {
    let rows = env("REDEEMD_BENCH_ROWS", 1_000_000);
    let revoked_n = env("REDEEMD_BENCH_REVOKED", 1_000_000);
    let campaigns_n = env("REDEEMD_BENCH_CAMPAIGNS", 10_000);
    let samples = env("REDEEMD_BENCH_SAMPLES", 2_000);
    // Under target/ so the numbers are for the disk the project lives on, not a tmpfs.
    let dir = tempfile::tempdir_in(env!("CARGO_TARGET_TMPDIR")).unwrap();
    let now: Timestamp = "2026-11-28T04:00:00Z".parse().unwrap();
    let issuer = Issuer::from_seed(3);
    let anchors = ruleset::parse_anchors(&issuer.trust_anchors_json()).unwrap();

    eprintln!("building a rule set: {campaigns_n} campaigns, {revoked_n} revoked ids");
    let t = Instant::now();
    let ids: Vec<String> = (0..campaigns_n).map(|i| format!("CAMP-{i:05}")).collect();
    let id_refs: Vec<&str> = ids.iter().map(String::as_str).collect();
    let revoked: Vec<String> = (0..revoked_n).map(|i| format!("REV-{i:09}")).collect();
    let revoked_refs: Vec<&str> = revoked.iter().map(String::as_str).collect();
    let mut payload = issuer.ruleset_payload(1, now, &id_refs, &revoked_refs);
    for c in payload["campaigns"].as_array_mut().unwrap() {
        c["max_per_holder_per_day"] = 3.into();
    }
    payload["offline"] = serde_json::json!({"max_unsynced_count": 1_000_000, "max_unsynced_value": 1_000_000_000, "max_hours_since_sync": 72});
    let jws = issuer.sign_ruleset(&payload);
    let verified = ruleset::verify(&jws, &anchors).unwrap();
    let mut store = Store::open(&dir.path().join("ledger.sqlite")).unwrap();
    store.install_ruleset(&verified, now).unwrap().unwrap();
    eprintln!("  {:.1} MB JWS verified and installed in {:.1?}", jws.len() as f64 / 1e6, t.elapsed());

    eprintln!("filling the ledger with {rows} forwarded redemptions");
    let t = Instant::now();
    common::prefill(store.connection(), rows, 10_000);
    eprintln!("  done in {:.1?}", t.elapsed());
    if std::env::var("NOCKPT").is_ok() {
        store.connection().pragma_update(None, "wal_autocheckpoint", 0).unwrap();
        store.connection().execute_batch("PRAGMA wal_checkpoint(TRUNCATE)").unwrap();
    }
    let rules = store.ruleset().unwrap().unwrap().rules;
    let terminal = Terminal { merchant_id: "M-1".into(), merchant_category: "dining".into() };

    // decide + commit, each a fresh coupon of a random campaign
    let codes: Vec<String> = (0..samples)
        .map(|i| {
            let mut spec = CodeSpec::new(format!("BENCH-{i}"), ids[i * 7919 % ids.len()].clone(), now);
            spec.holder = format!("holder-{:06}", i % 5000).into_bytes();
            issuer.code(&spec)
        })
        .collect();
    let at = now + SignedDuration::from_secs(3600);
    {
        let mut lat = Vec::new();
        for code in codes.iter().take(500) {
            let t = Instant::now();
            let single = CheckoutRef::Single { basket_total: Money(5800), eligible_total: None, pos_ref: None };
            let d = store.evaluate(single, code, &terminal, Some(&rules), at).unwrap();
            lat.push(t.elapsed());
            assert!(d.accepted());
        }
        lat.sort();
        eprintln!(
            "decide only (read transaction, no write) p50 {} p99 {}",
            ms(percentile(&lat, 0.5)),
            ms(percentile(&lat, 0.99))
        );
    }
    let mut latencies = Vec::with_capacity(samples);
    let mut checkpoints = Vec::new();
    let started = Instant::now();
    for (i, code) in codes.iter().enumerate() {
        // The daemon checkpoints on its idle tick, between scans; here every 100 scans,
        // outside the timed decision but inside the throughput figure.
        if i % 100 == 99 {
            let t = Instant::now();
            store.checkpoint().unwrap();
            checkpoints.push(t.elapsed());
        }
        let t = Instant::now();
        let single = CheckoutRef::Single { basket_total: Money(5800), eligible_total: None, pos_ref: None };
        let recorded = store.present(single, code, &terminal, Some(&rules), at).unwrap();
        latencies.push(t.elapsed());
        assert!(recorded.decision.accepted(), "{:?}", recorded.decision.outcome);
    }
    let redeem_total = started.elapsed();
    latencies.sort();

    checkpoints.sort();
    // the bare baseline: one row, one transaction, same pragmas, same directory
    let bare = rusqlite::Connection::open(dir.path().join("bare.sqlite")).unwrap();
    let _: String = bare.pragma_update_and_check(None, "journal_mode", "WAL", |r| r.get(0)).unwrap();
    bare.pragma_update(None, "synchronous", "FULL").unwrap();
    bare.pragma_update(None, "wal_autocheckpoint", 16_384).unwrap();
    bare.execute_batch("CREATE TABLE t (id INTEGER PRIMARY KEY, payload TEXT NOT NULL)").unwrap();
    let mut bare_latencies = Vec::with_capacity(samples);
    let started = Instant::now();
    for i in 0..samples {
        let t = Instant::now();
        bare.execute_batch("BEGIN IMMEDIATE").unwrap();
        bare.prepare_cached("INSERT INTO t (payload) VALUES (?1)").unwrap().execute([format!("row {i}")]).unwrap();
        bare.execute_batch("COMMIT").unwrap();
        bare_latencies.push(t.elapsed());
    }
    let bare_total = started.elapsed();
    bare_latencies.sort();

    // decode + verify against a bare Ed25519 verify of a same-sized message
    let key = rules.coupon_keys[0].key.clone();
    let verify_n = env("REDEEMD_BENCH_VERIFY", 20_000);
    let code = &codes[0];
    let t = Instant::now();
    for _ in 0..verify_n {
        let unverified = coupon::decode(std::hint::black_box(code)).unwrap();
        let k = rules.coupon_key(&b64url_encode(unverified.kid())).unwrap();
        assert!(unverified.verify(&k.key).is_some());
    }
    let decode_rate = verify_n as f64 / t.elapsed().as_secs_f64();
    let sign1 = coupon::parse_sign1(&coupon::inflate(&redeemd::base45::decode(&code[4..]).unwrap()).unwrap()).unwrap();
    let message = sign1.to_be_signed();
    let t = Instant::now();
    for _ in 0..verify_n {
        assert!(key.verify(std::hint::black_box(&message), &sign1.signature));
    }
    let bare_verify_rate = verify_n as f64 / t.elapsed().as_secs_f64();

    // CP2: decode + two verifications against the two bare verifications, in alternating
    // rounds so both sides see the same machine load.
    let mut cp2_lines = Vec::new();
    for (kind, holder) in [("Ed25519", Holder::ed25519_from_seed(1)), ("P-256", Holder::p256_from_seed(1))] {
        let cose = issuer.coupon_cose(&CodeSpec::new("BENCH-CP2", ids[0].clone(), now).bound_to(&holder));
        let text = holder.present(&cose, at);
        let outer =
            coupon::parse_sign1(&coupon::inflate(&redeemd::base45::decode(&text[4..]).unwrap()).unwrap()).unwrap();
        let inner = coupon::parse_sign1(&cose).unwrap();
        let holder_key = match coupon::parse_payload(&inner.payload).unwrap().holder_key.unwrap() {
            HolderKey::Ed25519 { key, .. } => key.unwrap(),
            HolderKey::P256(key) => key,
        };
        let (outer_msg, inner_msg) = (outer.to_be_signed(), inner.to_be_signed());
        // P-256 verification is ~5x slower: fewer iterations, same rounds.
        let n = if kind == "P-256" { verify_n / 4 } else { verify_n } / 10;
        let (mut ours, mut bare) = (std::time::Duration::ZERO, std::time::Duration::ZERO);
        for _ in 0..10 {
            let t = Instant::now();
            for _ in 0..n {
                let p = coupon::decode_presentation(std::hint::black_box(&text)).unwrap();
                let k = rules.coupon_key(&b64url_encode(p.kid())).unwrap();
                assert!(p.verify(&k.key).is_some());
            }
            ours += t.elapsed();
            let t = Instant::now();
            for _ in 0..n {
                assert!(key.verify(std::hint::black_box(&inner_msg), &inner.signature));
                assert!(holder_key.verify(std::hint::black_box(&outer_msg), &outer.signature));
            }
            bare += t.elapsed();
        }
        let (rate, bare_rate) = ((n * 10) as f64 / ours.as_secs_f64(), (n * 10) as f64 / bare.as_secs_f64());
        cp2_lines.push(format!(
            "CP2 decode+2 verifies/s ({kind} holder, {} chars) {rate:.0}  bare 2 verifies/s {bare_rate:.0}  ratio {:.2}  (target >= 0.8)",
            text.len(),
            rate / bare_rate
        ));
        cp2_lines.push(format!(
            "  wire time at 115200 baud, 8N1, + CR LF: CP2 {:.1} ms, CP1 ({} chars) {:.1} ms",
            wire_ms(text.len()),
            code.len(),
            wire_ms(code.len())
        ));
    }

    let p99 = percentile(&latencies, 0.99);
    let bare_p99 = percentile(&bare_latencies, 0.99);
    println!("ledger: {rows} redemptions, {campaigns_n} campaigns, {revoked_n} revoked ids; {samples} samples");
    println!(
        "decide+commit     p50 {}  p99 {}  max {}",
        ms(percentile(&latencies, 0.5)),
        ms(p99),
        ms(*latencies.last().unwrap())
    );
    println!(
        "bare INSERT+COMMIT p50 {}  p99 {}  max {}",
        ms(percentile(&bare_latencies, 0.5)),
        ms(bare_p99),
        ms(*bare_latencies.last().unwrap())
    );
    println!("p99 ratio          {:.2}x  (target <= 1.5x)", p99.as_secs_f64() / bare_p99.as_secs_f64());
    if !checkpoints.is_empty() {
        println!(
            "idle checkpoint (every 100 decisions, untimed above) p50 {}  max {}",
            ms(percentile(&checkpoints, 0.5)),
            ms(*checkpoints.last().unwrap())
        );
    }
    let rate = samples as f64 / redeem_total.as_secs_f64();
    let bare_rate = samples as f64 / bare_total.as_secs_f64();
    println!("durable redemptions/s {rate:.0}  bare inserts/s {bare_rate:.0}  ratio {:.2}", rate / bare_rate);
    println!(
        "decode+verify/s {decode_rate:.0}  bare Ed25519 verify/s {bare_verify_rate:.0}  ratio {:.2}  (target >= 0.8)",
        decode_rate / bare_verify_rate
    );
    for line in cp2_lines {
        println!("{line}");
    }
}

/// Milliseconds a text and its CR LF take on a 115200 baud line, 10 bits a character.
fn wire_ms(chars: usize) -> f64 {
    (chars + 2) as f64 * 10.0 / 115_200.0 * 1000.0
}
