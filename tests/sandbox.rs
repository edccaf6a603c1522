//! `redeemd sandbox` (issue 19, item 1): the real binary serving the upstream API over
//! HTTPS with its own CA, and terminals provisioned against it with `--ca`. Two
//! terminals redeem one coupon (`conflict` for the second), a revocation reaches a
//! terminal at its next refresh (ETag/304 otherwise, gzip when asked), a retired
//! terminal's token is refused, `terminals` lists the heartbeats; enrollment answers
//! replay for the same `request_id`, refuse a used (409), expired (410) or unknown (401)
//! code, and survive the test switch that drops an answer after committing it.

mod common;

use common::sandbox::{sandbox_command, Served};
use common::{binary, Run, TestTerminal};
use serde_json::{json, Value};
use std::path::Path;
use std::process::Command;
use std::time::Duration;

fn ok(run: &Run, what: &str) {
    assert_eq!(run.code, 0, "{what}: exit {}\nstdout: {}\nstderr: {}", run.code, run.stdout, run.stderr);
}

fn codes(served: &Served, args: &[&str]) -> Vec<String> {
    let mut all = vec!["codes"];
    all.extend_from_slice(args);
    let r = served.run(&all);
    ok(&r, "sandbox codes");
    r.stdout.lines().map(str::to_owned).collect()
}

/// An HTTPS client trusting the sandbox's CA only.
fn client(served: &Served, gzip: bool) -> reqwest::Client {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let ca = reqwest::Certificate::from_pem(served.ca_pem().as_bytes()).unwrap();
    let builder = reqwest::Client::builder().tls_certs_only([ca]).https_only(true).timeout(Duration::from_secs(10));
    let builder = if gzip { builder } else { builder.no_gzip() };
    builder.build().unwrap()
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap()
}

async fn enroll(c: &reqwest::Client, url: &str, code: &str, request_id: &str) -> Result<(u16, Value), reqwest::Error> {
    let body = json!({"enrollment_code": code, "terminal_label": "lane-9", "agent_version": "0.1.0",
                      "request_id": request_id});
    let r = c.post(format!("{url}v1/enroll")).json(&body).send().await?;
    let status = r.status().as_u16();
    Ok((status, r.json().await.unwrap_or(Value::Null)))
}

fn token(t: &TestTerminal) -> String {
    std::fs::read_to_string(t.dir.path().join("data/token")).unwrap().trim().to_owned()
}

/// (state) of each local outbox event.
fn outbox_states(t: &TestTerminal) -> Vec<String> {
    let store = redeemd::store::Store::open(&t.db()).unwrap();
    store.outbox().unwrap().into_iter().map(|(_, _, _, state)| state).collect()
}

#[test]
fn two_terminals_redeem_one_coupon_revocations_arrive_and_a_retired_terminal_is_refused() {
    let home = tempfile::tempdir().unwrap();
    let dir = home.path().join("sb");
    let served = Served::start(&dir, &[]);
    assert!(served.url.starts_with("https://127.0.0.1:"), "{}", served.url);
    use std::os::unix::fs::PermissionsExt as _;
    let mode = |p: &Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode(&dir), 0o700);
    assert_eq!(mode(&dir.join("keys.json")), 0o600);
    assert_eq!(mode(&dir.join("ca-key.pem")), 0o600);
    let [code1, code2] = <[String; 2]>::try_from(codes(&served, &["--count", "2"])).unwrap();
    assert_eq!(code1.len(), 9, "{code1}");

    // Lane 1 enrolls against the sandbox with its CA, and fetches rule set 1.
    let t1 = TestTerminal::bare(1);
    let r = t1.provision(&served.url, &served.ca_pem(), &code1);
    ok(&r, "provision lane 1");
    assert!(r.stdout.contains("T-0001") && r.stdout.contains("M-DEMO"), "{}", r.stdout);
    served.said("T-0001 enrolled");
    // Doctor reaches the sandbox step by step: name, port, TLS with the CA, token and clock.
    let r = t1.run(&["doctor", "--json"]);
    let report: Value = serde_json::from_str(r.stdout.trim()).unwrap_or_else(|e| panic!("{e}: {}", r.stdout));
    let upstream: Vec<&Value> = report["findings"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|f| f["check"].as_str().is_some_and(|c| c.starts_with("upstream")))
        .collect();
    assert!(upstream.len() >= 3 && upstream.iter().all(|f| f["status"] == "ok"), "{upstream:#?}");

    // Sample coupons: a QR PNG and the text each; a holder-bound one with its live code.
    let coupons = home.path().join("coupons");
    let coupons_arg = coupons.to_str().unwrap();
    ok(&served.run(&["coupons", "--campaign", "DEMO-DINING", "--count", "2", "--out", coupons_arg]), "coupons");
    let text = |id: &str| std::fs::read_to_string(coupons.join(format!("{id}.txt"))).unwrap().trim().to_owned();
    assert!(std::fs::read(coupons.join("DEMO-DINING-000001.png")).unwrap().starts_with(b"\x89PNG"));
    let first = text("DEMO-DINING-000001");
    let r = t1.run(&["redeem", &first, "--amount", "58", "--json"]);
    ok(&r, "lane 1 redeems coupon 1");
    assert_eq!(r.json()["coupon_id"], "DEMO-DINING-000001");
    let r = served.run(&["coupons", "--campaign", "DEMO-DINING", "--holder-bound", "--out", coupons_arg]);
    ok(&r, "holder-bound coupon");
    let holder_file = coupons.join("DEMO-DINING-000003.holder.json");
    assert_eq!(mode(&holder_file), 0o600);
    let live = served.run(&["present", holder_file.to_str().unwrap()]);
    ok(&live, "present");
    let live_code = live.stdout.lines().next().unwrap().to_owned();
    assert!(live_code.starts_with("CP2:"), "{live_code}");
    let r = t1.run(&["redeem", &live_code, "--amount", "45", "--json"]);
    ok(&r, "lane 1 redeems the live code");
    assert_eq!(r.json()["presentation"], "dynamic");
    ok(&t1.run(&["sync", "--once"]), "lane 1 sync");
    served.said("T-0001 forwarded events: 2 accepted");
    assert_eq!(outbox_states(&t1), ["accepted", "accepted"]);

    // Lane 2 redeems coupon 1 offline as well: upstream says it was lane 1's.
    let t2 = TestTerminal::bare(2);
    ok(&t2.provision(&served.url, &served.ca_pem(), &code2), "provision lane 2");
    ok(&t2.run(&["redeem", &first, "--amount", "60", "--json"]), "lane 2 redeems coupon 1 offline");
    ok(&t2.run(&["sync", "--once"]), "lane 2 sync");
    served.said("T-0002 forwarded events: 0 accepted, 0 duplicate, 1 conflict");
    assert_eq!(outbox_states(&t2), ["conflict"]);
    let r = t2.run(&["outbox", "list", "--state", "conflict", "--json"]);
    assert!(r.stdout.contains("T-0001"), "the conflict names who redeemed it first: {}", r.stdout);

    // The used code again: 409 through provision; the terminals with their heartbeats.
    let t3 = TestTerminal::bare(3);
    assert_ne!(t3.provision(&served.url, &served.ca_pem(), &code1).code, 0);
    let r = served.run(&["terminals", "--json"]);
    ok(&r, "terminals --json");
    let list: Value = serde_json::from_str(&r.stdout).unwrap();
    let list = list.as_array().unwrap();
    assert_eq!(list.len(), 2, "{list:?}");
    for t in list {
        assert!(t["last_heartbeat"].is_string(), "{t}");
        assert_eq!(t["ruleset_version"], 1, "{t}");
        assert_eq!(t["agent_version"], env!("CARGO_PKG_VERSION"), "{t}");
        assert!(t["clock_offset_seconds"].as_f64().unwrap().abs() < 5.0, "{t}");
        assert!(t["unsynced"].is_u64(), "{t}");
    }
    let table = served.run(&["terminals"]);
    ok(&table, "terminals");
    assert!(table.stdout.contains("T-0001") && table.stdout.contains("last heartbeat"), "{}", table.stdout);

    // Unchanged: 304 for the ETag; gzip when asked.
    let rt = runtime();
    let plain = client(&served, false);
    let (etag, gzipped, jws) = rt.block_on(async {
        let get = || plain.get(format!("{}v1/ruleset", served.url)).bearer_auth(token(&t1));
        let r = get().send().await.unwrap();
        assert_eq!(r.status(), 200);
        assert_eq!(r.headers()["content-type"], "application/jose");
        let etag = r.headers()["etag"].to_str().unwrap().to_owned();
        let jws = r.text().await.unwrap();
        let again = get().header("if-none-match", &etag).send().await.unwrap();
        assert_eq!(again.status(), 304);
        let z = get().header("accept-encoding", "gzip").send().await.unwrap();
        assert_eq!(z.headers()["content-encoding"], "gzip");
        (etag, z.bytes().await.unwrap().to_vec(), jws)
    });
    let mut unzipped = String::new();
    std::io::Read::read_to_string(&mut flate2::read::GzDecoder::new(&gzipped[..]), &mut unzipped).unwrap();
    assert_eq!(unzipped, jws);

    // A revocation: a new version that lane 1 takes at its next refresh.
    let r = served.run(&["revoke", "DEMO-DINING-000002"]);
    ok(&r, "revoke");
    assert!(r.stdout.contains("version 2"), "{}", r.stdout);
    let second = text("DEMO-DINING-000002");
    ok(&t1.run(&["check", &second, "--amount", "58"]), "coupon 2 before the refresh");
    ok(&t1.run(&["sync", "--once"]), "lane 1 refresh");
    served.said("T-0001 fetched rule set version 2");
    let r = t1.run(&["check", &second, "--amount", "58", "--json"]);
    assert_eq!((r.code, r.json()["reason"].as_str()), (1, Some("revoked")), "{}", r.stdout);
    let changed = rt.block_on(async {
        let r = plain.get(format!("{}v1/ruleset", served.url)).bearer_auth(token(&t1)).header("if-none-match", &etag);
        r.send().await.unwrap().status()
    });
    assert_eq!(changed, 200, "the old ETag no longer matches");

    // Pause publishes too; an unknown campaign is a usage error naming the known ones.
    let r = served.run(&["pause", "DEMO-BIG"]);
    ok(&r, "pause");
    assert!(r.stdout.contains("version 3"), "{}", r.stdout);
    let r = served.run(&["pause", "NOPE"]);
    assert_eq!(r.code, 2, "{}", r.stderr);
    assert!(r.stderr.contains("DEMO-DINING, DEMO-BIG"), "{}", r.stderr);

    // Retired: lane 1's token stops working, everything else keeps going.
    ok(&served.run(&["retire", "T-0001"]), "retire");
    let status = rt.block_on(async {
        let r = plain.get(format!("{}v1/ruleset", served.url)).bearer_auth(token(&t1)).send().await.unwrap();
        (r.status().as_u16(), r.json::<Value>().await.unwrap())
    });
    assert_eq!(status.0, 401);
    assert_eq!(status.1["error"]["code"], "terminal_retired");
    let r = t1.run(&["sync", "--once"]);
    assert_eq!(r.code, 3, "{}", r.stderr);
    served.said("T-0001 is retired");
    ok(&t2.run(&["sync", "--once"]), "lane 2 still syncs");
    let r = served.run(&["terminals"]);
    assert!(r.stdout.contains("retired"), "{}", r.stdout);
    let mut served = served;
    assert!(served.stop().is_some_and(|s| s.success()), "serve stops cleanly on SIGTERM");
}

#[test]
fn enrollment_answers_replay_refuse_and_survive_a_dropped_answer() {
    let home = tempfile::tempdir().unwrap();
    let dir = home.path().join("sb");
    let served = Served::start(&dir, &[("REDEEMD_SANDBOX_DROP_ENROLL_ANSWERS", "1")]);
    let code = codes(&served, &[]).remove(0);
    let short = codes(&served, &["--expires", "1s"]).remove(0);
    let c = client(&served, true);
    let rt = runtime();
    rt.block_on(async {
        // Committed, then the connection closed without an answer (the test switch).
        assert!(enroll(&c, &served.url, &code, "req-1").await.is_err(), "the first answer is dropped");
        let (status, first) = enroll(&c, &served.url, &code, "req-1").await.unwrap();
        assert_eq!(status, 200, "{first}");
        assert_eq!(first["terminal_id"], "T-0001");
        assert_eq!(first["merchant_id"], "M-DEMO");
        assert_eq!(first["timezone"], "Asia/Shanghai");
        assert!(first["ruleset_keys"][0]["kid"].is_string(), "{first}");
        let (status, again) = enroll(&c, &served.url, &code.to_lowercase(), "req-1").await.unwrap();
        assert_eq!((status, &again), (200, &first), "the same request gets the same answer");
        // The token works.
        let r = c.get(format!("{}v1/ruleset", served.url)).bearer_auth(first["token"].as_str().unwrap());
        assert_eq!(r.send().await.unwrap().status(), 200);
        let (status, used) = enroll(&c, &served.url, &code, "req-2").await.unwrap();
        assert_eq!((status, used["error"]["code"].as_str()), (409, Some("code_used")));
        let (status, unknown) = enroll(&c, &served.url, "NOPE-NOPE", "req-3").await.unwrap();
        assert_eq!((status, unknown["error"]["code"].as_str()), (401, Some("invalid_code")));
        tokio::time::sleep(Duration::from_millis(1100)).await;
        let (status, expired) = enroll(&c, &served.url, &short, "req-4").await.unwrap();
        assert_eq!((status, expired["error"]["code"].as_str()), (410, Some("code_expired")));
        // A malformed batch is a 400 naming the event; a made-up token a 401.
        let token = first["token"].as_str().unwrap();
        let bad = json!({"terminal_id": "T-0001", "events": [{"event_id": "e1", "seq": 1, "type": "redeem"}]});
        let r = c.post(format!("{}v1/redemptions", served.url)).bearer_auth(token).json(&bad).send().await.unwrap();
        assert_eq!(r.status(), 400);
        let body: Value = r.json().await.unwrap();
        assert!(body["error"]["message"].as_str().unwrap().starts_with("events[0] (event_id e1)"), "{body}");
        let r = c.post(format!("{}v1/heartbeat", served.url)).bearer_auth("made-up").json(&json!({})).send().await;
        assert_eq!(r.unwrap().status(), 401);
    });
    served.said("T-0001 enrolled (lane-9); the answer was not sent");
    served.said("T-0001 asked again with the same request");
    let r = served.run(&["codes", "--list"]);
    ok(&r, "codes --list");
    assert!(r.stdout.contains("used by T-0001") && r.stdout.contains("expired"), "{}", r.stdout);
}

#[test]
fn the_sandbox_speaks_its_language_and_names_what_is_wrong() {
    let home = tempfile::tempdir().unwrap();
    let missing = home.path().join("nothing-here");
    let out = sandbox_command(&missing, &["codes", "--language", "zh-CN"]).output().unwrap();
    let run = Run {
        code: out.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    };
    assert_eq!(run.code, 2, "{}", run.stderr);
    assert!(run.stderr.contains("没有沙箱") && run.stderr.contains("nothing-here"), "{}", run.stderr);
    common::words::assert_words(&run, "zh-CN");
    // A campaigns file with a mistake: named with its field, and nothing is made.
    let file = home.path().join("campaigns.toml");
    std::fs::write(
        &file,
        "[merchant]\nid = \"M-1\"\nname = \"店\"\ncategory = \"dining\"\n\n[[campaign]]\nid = \"C-1\"\n\
         name = { zh-CN = \"券\", en = \"Coupon\" }\nface_value = 1000\nmin_spend = 0\nfacevalue = 3\n",
    )
    .unwrap();
    let dir = home.path().join("sb");
    let out = sandbox_command(&dir, &["serve", "--listen", "127.0.0.1:0", "--language", "en"])
        .arg("--campaigns")
        .arg(&file)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(stderr.contains("campaigns.toml") && stderr.contains("facevalue"), "{stderr}");
    assert!(!dir.exists(), "a refused campaigns file leaves nothing behind");
    // `present` needs a holder file.
    let out = Command::new(binary()).args(["sandbox", "present", "--language", "en"]).arg(&file).output().unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("not a holder file"));
}

/// Issue 19's lost answer, end to end: the sandbox commits the enrollment and drops the
/// connection; `provision` retries under the same request id and the same code enrolls
/// the terminal once, with a token that works.
#[test]
fn provision_survives_an_enrollment_answer_the_sandbox_dropped() {
    let home = tempfile::tempdir().unwrap();
    let dir = home.path().join("sb");
    let served = Served::start(&dir, &[("REDEEMD_SANDBOX_DROP_ENROLL_ANSWERS", "1")]);
    let code = codes(&served, &[]).remove(0);
    let t = TestTerminal::bare(3);
    let r = t.provision(&served.url, &served.ca_pem(), &code);
    ok(&r, "provision after a dropped answer");
    assert!(r.stdout.contains("T-0001"), "one terminal, the first answer's: {}", r.stdout);
    served.said("T-0001 enrolled");
    let listed = served.run(&["terminals", "--json"]);
    ok(&listed, "terminals");
    let terminals: serde_json::Value = serde_json::from_str(&listed.stdout).unwrap();
    assert_eq!(terminals.as_array().map(Vec::len), Some(1), "enrolled once: {terminals}");
    ok(&t.run(&["sync", "--once"]), "the replayed token works");
}
