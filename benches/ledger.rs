//! `cargo bench --bench ledger`: the figures README.md quotes, each next to its raw
//! baseline measured in the same run.
//!
//! 1. decide+commit latency (p50/p99) and durable redemptions/s on a ledger holding 10^6
//!    redemptions, 10^4 campaigns and 10^6 revoked ids, against a bare one-row
//!    `INSERT`+`COMMIT` with the same pragmas (WAL, synchronous=FULL, auto-checkpoint) on
//!    the same disk, sample by sample (each redemption next to a bare commit, so both see
//!    the same moment of a shared machine), as one burst; then the idle checkpoint after it;
//!    and, in the same rotation, the floor: the least any ledger keeping the offline
//!    checks can do (verify, two look-ups, one row with two indexes) in a bare database,
//!    so a ratio the floor misses is known to be out of any schema's reach;
//! 2. pages written per commit (WAL frames) and which B-trees they belong to;
//! 3. the unsynced totals' read with the run's whole backlog waiting;
//! 4. CP1 decode+verify per second against a bare Ed25519 verify;
//! 5. CP2 decode + both verifications (coupon key, holder key) per second against the same
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
use std::time::{Duration, Instant};

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
    let prefill_end = (now - SignedDuration::from_secs(3600)).as_millisecond();
    common::prefill(&rusqlite::Connection::open(dir.path().join("ledger.sqlite")).unwrap(), rows, 10_000, prefill_end);
    eprintln!("  done in {:.1?}", t.elapsed());
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
    // The bare baseline: one row, one transaction, same pragmas (WAL, synchronous=FULL,
    // the same auto-checkpoint threshold), same directory.
    let bare = rusqlite::Connection::open(dir.path().join("bare.sqlite")).unwrap();
    let _: String = bare.pragma_update_and_check(None, "journal_mode", "WAL", |r| r.get(0)).unwrap();
    bare.pragma_update(None, "synchronous", "FULL").unwrap();
    bare.pragma_update(None, "wal_autocheckpoint", redeemd::store::AUTOCHECKPOINT_PAGES).unwrap();
    bare.execute_batch("CREATE TABLE t (id INTEGER PRIMARY KEY, payload TEXT NOT NULL)").unwrap();
    let bare_commit = |conn: &rusqlite::Connection, i: usize| {
        conn.execute_batch("BEGIN IMMEDIATE").unwrap();
        conn.prepare_cached("INSERT INTO t (payload) VALUES (?1)").unwrap().execute([format!("row {i}")]).unwrap();
        conn.execute_batch("COMMIT").unwrap();
    };
    // The floor: what any shape of ledger must do for one durable redemption, in a bare
    // database with the same pragmas and as many rows. Verify the code; look up the
    // coupon's live redemption (double spend) and the holder's redemptions (per-holder
    // limit); commit one row, the redemption standing in as its own outbox event (no
    // checkout row, no event table, no index of pending events, no event-id uniqueness)
    // with the two indexes those look-ups need. No schema keeps the offline checks and
    // writes less, so a ratio this floor misses, no schema change can meet.
    let floor = rusqlite::Connection::open(dir.path().join("floor.sqlite")).unwrap();
    let _: String = floor.pragma_update_and_check(None, "journal_mode", "WAL", |r| r.get(0)).unwrap();
    floor.pragma_update(None, "synchronous", "FULL").unwrap();
    floor.pragma_update(None, "wal_autocheckpoint", redeemd::store::AUTOCHECKPOINT_PAGES).unwrap();
    floor
        .execute_batch(
            "CREATE TABLE redemption (seq INTEGER PRIMARY KEY, coupon_id TEXT NOT NULL, campaign_id TEXT NOT NULL,
                 holder BLOB NOT NULL, at_ms INTEGER NOT NULL, event TEXT NOT NULL);
             CREATE UNIQUE INDEX live_coupon ON redemption (coupon_id);
             CREATE INDEX holder ON redemption (holder, campaign_id, at_ms);",
        )
        .unwrap();
    {
        // The same keys as the ledger's prefill: coupon ids, 10^4 campaigns, 50,000 holders.
        floor.execute_batch("BEGIN").unwrap();
        let mut insert = floor
            .prepare(
                "INSERT INTO redemption (coupon_id, campaign_id, holder, at_ms, event) VALUES (?1, ?2, ?3, ?4, '{}')",
            )
            .unwrap();
        for i in 0..rows {
            let at_ms = prefill_end - (rows - i) as i64 * 2000;
            let holder = format!("holder-{:06}", i % 50_000).into_bytes();
            insert
                .execute(rusqlite::params![format!("OLD-{i:09}"), format!("CAMP-{:05}", i % 10_000), holder, at_ms])
                .unwrap();
        }
        drop(insert);
        floor.execute_batch("COMMIT").unwrap();
    }
    let floor_commit = |conn: &rusqlite::Connection, code: &str, at: Timestamp| {
        let unverified = coupon::decode(code).unwrap();
        let key = rules.coupon_key(&b64url_encode(unverified.kid())).unwrap();
        let coupon = unverified.verify(&key.key).unwrap().coupon;
        let at_ms = at.as_millisecond();
        // An event of the ledger's size: the code and the redemption's fields as JSON.
        let event = serde_json::json!({
            "event_id": redeemd::store::new_uuid(at), "type": "redeem", "redemption_id": redeemd::store::new_uuid(at),
            "coupon_id": coupon.coupon_id.as_str(), "campaign_id": coupon.campaign_id, "code": code,
            "discount": 1000, "basket_total": 5800, "eligible_total": 5800, "currency": "CNY",
            "ruleset_version": 1, "presentation": "static", "at": at.to_string(),
        })
        .to_string();
        conn.execute_batch("BEGIN IMMEDIATE").unwrap();
        let used: bool = conn
            .prepare_cached("SELECT EXISTS (SELECT 1 FROM redemption WHERE coupon_id = ?1)")
            .unwrap()
            .query_row([coupon.coupon_id.as_str()], |r| r.get(0))
            .unwrap();
        let today: i64 = conn
            .prepare_cached("SELECT COUNT(*) FROM redemption WHERE holder = ?1 AND campaign_id = ?2 AND at_ms >= ?3")
            .unwrap()
            .query_row(rusqlite::params![coupon.holder, coupon.campaign_id, at_ms - 86_400_000], |r| r.get(0))
            .unwrap();
        assert!(!used && today < 3);
        conn.prepare_cached(
            "INSERT INTO redemption (coupon_id, campaign_id, holder, at_ms, event) VALUES (?1, ?2, ?3, ?4, ?5)",
        )
        .unwrap()
        .execute(rusqlite::params![coupon.coupon_id.as_str(), coupon.campaign_id, coupon.holder, at_ms, event])
        .unwrap();
        conn.execute_batch("COMMIT").unwrap();
    };
    // A burst, as the daemon sees one at a rush: scan after scan with no pause, so its
    // idle checkpoint (after 500 ms without a job) never runs and SQLite's own
    // auto-checkpoint does, inside whichever commit crosses the threshold — both sides
    // under the same rule. Sample by sample, each redemption next to a bare commit, so
    // both see the same disk and the same neighbours (the machine may be shared); the
    // order turns every sample (an fsync right after another one waits differently).
    // Both write-ahead logs start empty, so neither side overwrites a log file already
    // grown (cheaper to sync than one that grows) while the other appends.
    for db in ["ledger.sqlite", "bare.sqlite", "floor.sqlite"] {
        let conn = rusqlite::Connection::open(dir.path().join(db)).unwrap();
        conn.query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |_| Ok(())).unwrap();
    }
    let mut latencies = Vec::with_capacity(samples);
    let mut bare_latencies = Vec::with_capacity(samples);
    let mut floor_latencies = Vec::with_capacity(samples);
    let (mut redeem_total, mut bare_total, mut floor_total) = (Duration::ZERO, Duration::ZERO, Duration::ZERO);
    for (i, code) in codes.iter().enumerate() {
        // Each redemption at its own instant, as at a till (ids made from the same
        // millisecond would not arrive in key order).
        let at_i = at + SignedDuration::from_millis(i as i64 * 200);
        for step in 0..3 {
            let t = Instant::now();
            match (i + step) % 3 {
                0 => {
                    let single = CheckoutRef::Single { basket_total: Money(5800), eligible_total: None, pos_ref: None };
                    let recorded = store.present(single, code, &terminal, Some(&rules), at_i).unwrap();
                    assert!(recorded.decision.accepted(), "{:?}", recorded.decision.outcome);
                    latencies.push(t.elapsed());
                    redeem_total += t.elapsed();
                }
                1 => {
                    bare_commit(&bare, i);
                    bare_latencies.push(t.elapsed());
                    bare_total += t.elapsed();
                }
                _ => {
                    floor_commit(&floor, code, at_i);
                    floor_latencies.push(t.elapsed());
                    floor_total += t.elapsed();
                }
            }
        }
    }
    // The pause after the burst: the daemon's idle checkpoint copies the burst's pages
    // into the database file (off the decision path; what it costs, for the record), and
    // the same for the bare database.
    let t = Instant::now();
    store.checkpoint().unwrap();
    let idle_checkpoint = t.elapsed();
    let t = Instant::now();
    bare.query_row("PRAGMA wal_checkpoint(PASSIVE)", [], |_| Ok(())).unwrap();
    let bare_idle_checkpoint = t.elapsed();
    // What every decision under an offline limit reads, with the whole run's backlog.
    let unsynced_read = {
        let t = Instant::now();
        for _ in 0..1000 {
            std::hint::black_box(store.unsynced().unwrap());
        }
        t.elapsed() / 1000
    };
    let pending = store.unsynced().unwrap().count;
    latencies.sort();
    bare_latencies.sort();
    floor_latencies.sort();

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

    // Pages per commit: WAL frames the next commits append after a truncating checkpoint,
    // for redeemd (one redemption: checkout row, redemption, outbox event, their indexes)
    // and for the bare one-row INSERT.
    let wal_frames = |db: &std::path::Path, conn: &rusqlite::Connection, commit: &mut dyn FnMut(usize)| -> f64 {
        let page: i64 = conn.pragma_query_value(None, "page_size", |r| r.get(0)).unwrap();
        conn.query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |_| Ok(())).unwrap();
        let n = 100;
        for i in 0..n {
            commit(i);
        }
        let wal = std::fs::metadata(db.with_extension("sqlite-wal")).map_or(0, |m| m.len());
        wal.saturating_sub(32) as f64 / (page as f64 + 24.0) / n as f64
    };
    // Which B-trees those frames belong to, per commit (dbstat names each page's tree).
    let by_tree = |db: &std::path::Path| -> String {
        let conn = rusqlite::Connection::open(db).unwrap();
        let page: usize = conn.pragma_query_value(None, "page_size", |r| r.get(0)).unwrap();
        let names: std::collections::HashMap<u32, String> = conn
            .prepare("SELECT pageno, name FROM dbstat")
            .unwrap()
            .query_map([], |r| Ok((r.get(0)?, r.get(1)?)))
            .unwrap()
            .map(Result::unwrap)
            .collect();
        let wal = std::fs::read(db.with_extension("sqlite-wal")).unwrap();
        let (mut counts, mut commits) = (std::collections::BTreeMap::<String, usize>::new(), 0);
        for frame in wal.get(32..).unwrap_or_default().chunks_exact(page + 24) {
            let pageno = u32::from_be_bytes(frame[0..4].try_into().unwrap());
            *counts.entry(names.get(&pageno).cloned().unwrap_or_else(|| "(other)".into())).or_default() += 1;
            commits += usize::from(frame[4..8] != [0; 4]);
        }
        let mut counts: Vec<_> = counts.into_iter().collect();
        counts.sort_by(|a, b| b.1.cmp(&a.1).then_with(|| a.0.cmp(&b.0)));
        counts
            .iter()
            .map(|(name, n)| format!("{name} {:.2}", *n as f64 / commits.max(1) as f64))
            .collect::<Vec<_>>()
            .join(", ")
    };
    let page_codes: Vec<String> = (0..100)
        .map(|i| {
            let mut spec = CodeSpec::new(format!("PAGES-{i}"), ids[i * 104_729 % ids.len()].clone(), now);
            spec.holder = format!("holder-{:06}", (i * 7) % 5000).into_bytes();
            issuer.code(&spec)
        })
        .collect();
    let ledger_db = dir.path().join("ledger.sqlite");
    let pages_redeemd = wal_frames(&ledger_db, &rusqlite::Connection::open(&ledger_db).unwrap(), &mut |i| {
        let single = CheckoutRef::Single { basket_total: Money(5800), eligible_total: None, pos_ref: None };
        assert!(store
            .present(
                single,
                &page_codes[i],
                &terminal,
                Some(&rules),
                at + SignedDuration::from_millis((samples + i) as i64 * 200)
            )
            .unwrap()
            .decision
            .accepted());
    });
    let trees_redeemd = by_tree(&ledger_db);
    let pages_bare = wal_frames(&dir.path().join("bare.sqlite"), &bare, &mut |i| bare_commit(&bare, samples + i));
    let pages_floor = wal_frames(&dir.path().join("floor.sqlite"), &floor, &mut |i| {
        floor_commit(&floor, &page_codes[i], at + SignedDuration::from_millis((samples + i) as i64 * 200))
    });

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
    let rate = samples as f64 / redeem_total.as_secs_f64();
    let bare_rate = samples as f64 / bare_total.as_secs_f64();
    println!(
        "durable redemptions/s {rate:.0}  bare inserts/s {bare_rate:.0}  ratio {:.2}  (target >= 0.8)",
        rate / bare_rate
    );
    println!(
        "  idle checkpoint after the burst: redeemd {} ({:.0} us a redemption), bare {}; counted in, the ratio is {:.2}",
        ms(idle_checkpoint),
        idle_checkpoint.as_secs_f64() * 1e6 / samples as f64,
        ms(bare_idle_checkpoint),
        (bare_total + bare_idle_checkpoint).as_secs_f64() / (redeem_total + idle_checkpoint).as_secs_f64()
    );
    let floor_p99 = percentile(&floor_latencies, 0.99);
    let floor_rate = samples as f64 / floor_total.as_secs_f64();
    println!(
        "floor (verify, 2 look-ups, one row + 2 indexes) p50 {}  p99 {}  p99 ratio {:.2}x  redemptions/s {floor_rate:.0}  ratio {:.2}",
        ms(percentile(&floor_latencies, 0.5)),
        ms(floor_p99),
        floor_p99.as_secs_f64() / bare_p99.as_secs_f64(),
        floor_rate / bare_rate
    );
    println!("pages written per commit (WAL frames): redeemd {pages_redeemd:.2}  bare {pages_bare:.2}  floor {pages_floor:.2}");
    println!("  redeemd's by B-tree: {trees_redeemd}");
    println!("unsynced totals read with {pending} redemptions waiting: {}", ms(unsynced_read));
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
