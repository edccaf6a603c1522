//! The daemon end to end: the real `redeemd run` on a free loopback port, driven through
//! its local API, its event stream, a scanner emulator on a pseudo-terminal, systemd's
//! notify socket, signals and `kill -9`, and a test upstream over HTTPS.

mod common;

use common::daemon::{Daemon, EventStream, Reply, Sse};
use common::scanner::Emulator;
use common::upstream::{Fault, TestUpstream};
use common::TestTerminal;
use serde_json::{json, Value};
use std::time::{Duration, Instant};

const SECOND: Duration = Duration::from_secs(1);

#[test]
fn every_endpoint_and_error_code() {
    let t = TestTerminal::with_ruleset();
    let d = Daemon::start(&t, &[]);

    // 401 without a token, with a wrong one; /metrics needs none.
    assert_eq!(d.request("GET", "/v1/status", None, &[("authorization", "Bearer wrong")]).status, 401);
    let no_auth = d.request("GET", "/v1/status", None, &[("cookie", "redeemd_session=nope")]);
    assert_eq!((no_auth.status, no_auth.error_code().as_str()), (401, "unauthorized"));
    let metrics = d.request("GET", "/metrics", None, &[("authorization", "")]);
    assert_eq!(metrics.status, 200);
    assert!(metrics.text.contains("redeemd_unsynced_redemptions"), "{}", metrics.text);

    // 400s: unreadable JSON, missing, mistyped and negative fields, eligible > basket.
    for body in [
        "{",
        "[]",
        "{}",
        r#"{"basket_total": "58"}"#,
        r#"{"basket_total": 58.5}"#,
        r#"{"basket_total": -1}"#,
        r#"{"basket_total": 100, "eligible_total": 101}"#,
        r#"{"basket_total": 100, "pos_ref": 7}"#,
    ] {
        let r = d.post("/v1/checkouts", body);
        assert_eq!(r.status, 400, "{body}: {}", r.text);
        assert!(r.json()["error"]["message"].as_str().is_some_and(|m| !m.is_empty()), "{}", r.text);
    }
    // 413 over 64 KiB.
    let big = format!(r#"{{"basket_total": 100, "pos_ref": "{}"}}"#, "x".repeat(70 * 1024));
    let r = d.post("/v1/checkouts", &big);
    assert_eq!(r.status, 413, "{}", r.text);
    assert_eq!(r.error_code(), "body_too_large");

    // A checkout, a code, the same code again.
    let r = d.post("/v1/checkouts", r#"{"basket_total": 5800, "eligible_total": 5000, "pos_ref": "till-1/0042"}"#);
    assert_eq!(r.status, 201, "{}", r.text);
    let checkout = r.json();
    let id = checkout["checkout_id"].as_str().unwrap().to_owned();
    assert_eq!(checkout["status"], "open");
    assert_eq!((checkout["basket_total"].clone(), checkout["eligible_total"].clone()), (json!(5800), json!(5000)));
    assert_eq!(checkout["pos_ref"], "till-1/0042");
    assert_eq!(checkout["decisions"], json!([]));
    assert!(checkout["opened_at"].as_str().unwrap().contains('T'));
    assert_eq!(d.get("/v1/status").json()["current_checkout"], id.as_str());

    let code = t.code("C-API-1", "DINING");
    let first = d.present(&id, &code);
    assert_eq!(first["decision"], "accepted", "{first}");
    assert_eq!((first["source"].clone(), first["discount"].clone()), (json!("api"), json!(1000)));
    assert!(first["redemption_id"].is_string() && first["at"].is_string(), "{first}");
    let again = d.present(&id, &code);
    assert_eq!((again["decision"].clone(), again["reason"].clone()), (json!("rejected"), json!("already_redeemed")));
    let got = d.get(&format!("/v1/checkouts/{id}")).json();
    assert_eq!(got["decisions"].as_array().unwrap().len(), 2);
    assert_eq!(got["decisions"][0]["redemption_id"], first["redemption_id"]);
    assert_eq!(got["discount_total"], 1000);

    // 404s.
    assert_eq!(d.get("/v1/checkouts/nope").status, 404);
    assert_eq!(d.post("/v1/checkouts/nope/codes", r#"{"code": "x"}"#).status, 404);
    assert_eq!(d.post("/v1/checkouts/nope/close", r#"{"status": "paid"}"#).status, 404);
    assert_eq!(d.post("/v1/redemptions/nope/void", "{}").status, 404);
    assert_eq!(d.get("/v1/no-such-thing").status, 404);
    let wrong_method = d.request("GET", "/v1/checkouts", None, &[]);
    assert_eq!((wrong_method.status, wrong_method.error_code().as_str()), (405, "method_not_allowed"));
    let bad_path = d.get("/v1/checkouts/%ff");
    assert_eq!((bad_path.status, bad_path.error_code().as_str()), (400, "bad_path"));
    assert_eq!(d.request("GET", "/v1/status", None, &[("authorization", &format!("bearer {}", d.token))]).status, 200);
    assert_eq!(d.post(&format!("/v1/checkouts/{id}/codes"), r#"{"code": 5}"#).status, 400);

    // Close: unknown status 400; paid; paid again 200; cancelled now 409; a code now 409.
    assert_eq!(d.post(&format!("/v1/checkouts/{id}/close"), r#"{"status": "done"}"#).status, 400);
    let paid = d.post(&format!("/v1/checkouts/{id}/close"), r#"{"status": "paid"}"#);
    assert_eq!((paid.status, paid.json()["status"].clone()), (200, json!("paid")));
    assert_eq!(d.post(&format!("/v1/checkouts/{id}/close"), r#"{"status": "paid"}"#).text, paid.text);
    let conflict = d.post(&format!("/v1/checkouts/{id}/close"), r#"{"status": "cancelled"}"#);
    assert_eq!((conflict.status, conflict.error_code().as_str()), (409, "checkout_closed"));
    let late = d.post(&format!("/v1/checkouts/{id}/codes"), &json!({"code": t.code("C-API-2", "DINING")}).to_string());
    assert_eq!((late.status, late.error_code().as_str()), (409, "checkout_closed"));
    assert_eq!(d.get("/v1/status").json()["current_checkout"], Value::Null);

    // Void, twice: the same 200.
    let rid = first["redemption_id"].as_str().unwrap();
    let void = d.post(&format!("/v1/redemptions/{rid}/void"), r#"{"reason": "wrong basket"}"#);
    assert_eq!(void.status, 200, "{}", void.text);
    assert_eq!(void.json(), json!({"redemption_id": rid, "voided": true}));
    assert_eq!(d.post(&format!("/v1/redemptions/{rid}/void"), "").json(), void.json());

    // Status.
    let status = d.get("/v1/status").json();
    for key in ["version", "terminal_id", "merchant_id", "scanner", "ruleset", "unsynced", "last_sync", "clock_warning"]
    {
        assert!(status.get(key).is_some(), "status lacks {key}: {status}");
    }
    assert_eq!(status["merchant_id"], "M-000123");
    assert_eq!(status["scanner"]["state"], "none");
    assert_eq!(status["ruleset"]["version"], 5);
    assert!(status["ruleset"]["age_seconds"].as_i64().unwrap() >= 0);
    assert_eq!(status["terminal_id"], Value::Null, "a terminal provisioned by hand has no terminal id");

    // The daily report, JSON and CSV, and its 400.
    let today = jiff::Timestamp::now().to_zoned_datetime(jiff::tz::TimeZone::get("Asia/Shanghai").unwrap()).date();
    let report = d.get(&format!("/v1/reports/daily?date={today}"));
    assert_eq!(report.status, 200, "{}", report.text);
    let report = report.json();
    assert_eq!(report["redemptions"][0]["redemption_id"], rid);
    assert_eq!(report["redemptions"][0]["voided"], true);
    let csv = d.get(&format!("/v1/reports/daily?date={today}&format=csv"));
    assert!(csv.headers["content-type"].to_str().unwrap().starts_with("text/csv"));
    assert!(csv.text.starts_with("redemption_id,"), "{}", csv.text);
    assert_eq!(d.get("/v1/reports/daily?date=yesterday").status, 400);
    assert_eq!(d.get("/v1/checkouts/x?wait=forever").status, 400);
}

#[test]
fn wait_answers_when_the_checkout_gains_a_decision() {
    let t = TestTerminal::with_ruleset();
    let d = Daemon::start(&t, &[]);
    let id = d.open_checkout(5800);
    let started = Instant::now();
    let quiet = d.get(&format!("/v1/checkouts/{id}?wait=0.3")).json();
    assert!(started.elapsed() >= Duration::from_millis(250));
    assert_eq!(quiet["decisions"], json!([]));

    let base = d.base.clone();
    let token = d.token.clone();
    let code = t.code("C-WAIT", "DINING");
    let poster = std::thread::spawn(move || {
        std::thread::sleep(Duration::from_millis(300));
        let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
        rt.block_on(async {
            common::daemon::client()
                .build()
                .unwrap()
                .post(format!("{base}/v1/checkouts/{id}/codes"))
                .bearer_auth(token)
                .body(json!({"code": code}).to_string())
                .send()
                .await
                .unwrap()
                .status()
                .as_u16()
        })
    });
    let id = d.get("/v1/status").json()["current_checkout"].as_str().unwrap().to_owned();
    let started = Instant::now();
    let woke = d.get(&format!("/v1/checkouts/{id}?wait=20")).json();
    assert!(started.elapsed() < Duration::from_secs(10), "wait did not end on the decision");
    assert_eq!(woke["decisions"][0]["decision"], "accepted", "{woke}");
    assert_eq!(poster.join().unwrap(), 200);
}

#[test]
fn cancelled_close_voids_and_frees_the_coupon() {
    let t = TestTerminal::with_ruleset();
    let d = Daemon::start(&t, &[]);
    let events = d.events();
    let first = d.open_checkout(5800);
    assert_eq!(events.next_named("checkout", 5 * SECOND).unwrap()["status"], "open");
    let code = t.code("C-CANCEL", "DINING");
    assert_eq!(d.present(&first, &code)["decision"], "accepted");
    let r = d.post(&format!("/v1/checkouts/{first}/close"), r#"{"status": "cancelled"}"#);
    assert_eq!(
        (r.status, r.json()["status"].clone(), r.json()["discount_total"].clone()),
        (200, json!("cancelled"), json!(0))
    );
    let closed = events.next_named("checkout", 5 * SECOND).unwrap();
    assert_eq!(closed["status"], "cancelled");
    let second = d.open_checkout(6000);
    assert_eq!(d.present(&second, &code)["decision"], "accepted", "the cancelled checkout freed the coupon");
    let conn = rusqlite::Connection::open(t.db()).unwrap();
    let reason: String = conn.query_row("SELECT reason FROM void", [], |r| r.get(0)).unwrap();
    assert_eq!(reason, "checkout cancelled");
}

#[test]
fn idempotency_key_replays_across_kill_9() {
    let t = TestTerminal::with_ruleset();
    let mut d = Daemon::start(&t, &[]);
    let key = [("idempotency-key", "till-1-open-0001")];
    let open = d.request("POST", "/v1/checkouts", Some(r#"{"basket_total": 5800}"#), &key);
    assert_eq!(open.status, 201);
    let again = d.request("POST", "/v1/checkouts", Some(r#"{"basket_total": 5800}"#), &key);
    assert_eq!((again.status, again.text.clone()), (201, open.text.clone()), "replayed, not a second checkout");
    let other = d.request("POST", "/v1/checkouts", Some(r#"{"basket_total": 5900}"#), &key);
    assert_eq!((other.status, other.error_code().as_str()), (422, "idempotency_key_reused"));
    let id = open.json()["checkout_id"].as_str().unwrap().to_owned();
    let code_body = json!({"code": t.code("C-IDEM", "DINING")}).to_string();
    let path = format!("/v1/checkouts/{id}/codes");
    let code_key = [("idempotency-key", "till-1-code-0001")];
    let accepted = d.request("POST", &path, Some(&code_body), &code_key);
    assert_eq!(accepted.json()["decision"], "accepted");
    let other_path = d.request("POST", "/v1/checkouts", Some(&code_body), &code_key);
    assert_eq!(other_path.status, 422, "same key, another path");

    d.kill9();
    let d = Daemon::start(&t, &[]);
    let replay = d.request("POST", &path, Some(&code_body), &code_key);
    assert_eq!((replay.status, replay.text.clone()), (200, accepted.text.clone()), "no false already_redeemed");
    let replay = d.request("POST", "/v1/checkouts", Some(r#"{"basket_total": 5800}"#), &key);
    assert_eq!(replay.text, open.text);
    let conn = rusqlite::Connection::open(t.db()).unwrap();
    let (checkouts, redemptions): (i64, i64) = conn
        .query_row("SELECT (SELECT COUNT(*) FROM checkout), (SELECT COUNT(*) FROM redemption)", [], |r| {
            Ok((r.get(0)?, r.get(1)?))
        })
        .unwrap();
    assert_eq!((checkouts, redemptions), (1, 1));
}

#[test]
fn kill_9_under_concurrent_load_loses_nothing_answered() {
    let t = TestTerminal::with_ruleset();
    let mut d = Daemon::start(&t, &[]);
    let base = d.base.clone();
    let token = d.token.clone();
    let codes: Vec<String> = (0..400).map(|i| t.code(&format!("C-LOAD-{i:04}"), "DINING")).collect();
    let answered = std::sync::Arc::new(std::sync::Mutex::new(Vec::<String>::new()));
    let mut workers = Vec::new();
    for w in 0..4 {
        let (base, token, answered) = (base.clone(), token.clone(), answered.clone());
        let mine: Vec<String> = codes.iter().skip(w).step_by(4).cloned().collect();
        workers.push(std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
            rt.block_on(async {
                let client = common::daemon::client().timeout(Duration::from_secs(5)).build().unwrap();
                for code in mine {
                    let open = client
                        .post(format!("{base}/v1/checkouts"))
                        .bearer_auth(&token)
                        .body(r#"{"basket_total": 5800}"#)
                        .send()
                        .await;
                    let Ok(open) = open else { return };
                    let Ok(open) = open.json::<Value>().await else { return };
                    let id = open["checkout_id"].as_str().unwrap_or_default().to_owned();
                    let r = client
                        .post(format!("{base}/v1/checkouts/{id}/codes"))
                        .bearer_auth(&token)
                        .body(json!({"code": code}).to_string())
                        .send()
                        .await;
                    let Ok(r) = r else { return };
                    let Ok(record) = r.json::<Value>().await else { return };
                    if record["decision"] == "accepted" {
                        answered.lock().unwrap().push(record["redemption_id"].as_str().unwrap().to_owned());
                    }
                }
            });
        }));
    }
    let deadline = Instant::now() + Duration::from_secs(30);
    while answered.lock().unwrap().len() < 40 && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(5));
    }
    d.kill9();
    for w in workers {
        w.join().unwrap();
    }
    let answered = answered.lock().unwrap().clone();
    assert!(answered.len() >= 40, "load did not get going: {}", answered.len());
    let conn = rusqlite::Connection::open(t.db()).unwrap();
    for id in &answered {
        let n: i64 = conn.query_row("SELECT COUNT(*) FROM redemption WHERE id = ?1", [id], |r| r.get(0)).unwrap();
        assert_eq!(n, 1, "redemption {id} was answered accepted but is not in the ledger");
    }
    let twice: i64 = conn
        .query_row(
            "SELECT COUNT(*) FROM (SELECT coupon_id FROM redemption GROUP BY coupon_id HAVING COUNT(*) > 1)",
            [],
            |r| r.get(0),
        )
        .unwrap();
    assert_eq!(twice, 0);
    let d = Daemon::start(&t, &[]);
    assert_eq!(d.get("/v1/status").status, 200, "restarts after kill -9");
}

#[test]
fn sigterm_with_an_sse_client_exits_0_within_5_s() {
    let t = TestTerminal::with_ruleset();
    let mut d = Daemon::start(&t, &[]);
    let events = d.events();
    d.open_checkout(100);
    assert!(events.next_named("checkout", 5 * SECOND).is_some());
    d.signal("TERM");
    let (code, took) = d.wait_exit(Duration::from_secs(8));
    assert_eq!(code, Some(0), "exit status; log:\n{}", d.log());
    assert!(took <= Duration::from_secs(5), "took {took:?}");
    // A client holding a half-sent request open does not hold the process.
    let mut d = Daemon::start(&t, &[]);
    let addr = d.base.trim_start_matches("http://").to_owned();
    let mut half = std::net::TcpStream::connect(&addr).unwrap();
    std::io::Write::write_all(
        &mut half,
        b"POST /v1/checkouts HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\n{\"bas",
    )
    .unwrap();
    std::thread::sleep(Duration::from_millis(200));
    d.signal("TERM");
    let (code, took) = d.wait_exit(Duration::from_secs(8));
    assert_eq!(code, Some(0), "log:\n{}", d.log());
    assert!(took <= Duration::from_secs(5), "took {took:?} with a half-sent request");
    drop(half);
    // SIGINT too.
    let mut d = Daemon::start(&t, &[]);
    let _events = d.events();
    d.signal("INT");
    let (code, took) = d.wait_exit(Duration::from_secs(8));
    assert_eq!(code, Some(0));
    assert!(took <= Duration::from_secs(5), "took {took:?}");
}

#[test]
fn sd_notify_ready_watchdog_stopping_and_a_stuck_writer() {
    use std::os::unix::net::UnixDatagram;
    let t = TestTerminal::with_ruleset();
    let sock_path = t.dir.path().join("notify.sock");
    let sock = UnixDatagram::bind(&sock_path).unwrap();
    sock.set_read_timeout(Some(Duration::from_millis(100))).unwrap();
    let mut d =
        Daemon::start_with_env(&t, &[], &[("NOTIFY_SOCKET", sock_path.to_str().unwrap()), ("WATCHDOG_USEC", "400000")]);
    let read_for = |dur: Duration| -> Vec<String> {
        let deadline = Instant::now() + dur;
        let mut got = Vec::new();
        let mut buf = [0u8; 512];
        while Instant::now() < deadline {
            if let Ok(n) = sock.recv(&mut buf) {
                got.extend(String::from_utf8_lossy(&buf[..n]).lines().map(str::to_owned));
            }
        }
        got
    };
    let first = read_for(Duration::from_millis(1500));
    assert!(first.contains(&"READY=1".to_owned()), "{first:?}");
    assert!(first.iter().filter(|l| *l == "WATCHDOG=1").count() >= 3, "{first:?}");

    // Another process holds the ledger's write lock: the owner is stuck in a write, so
    // the pings stop; they resume once the lock is released.
    let conn = rusqlite::Connection::open(t.db()).unwrap();
    conn.execute_batch("BEGIN EXCLUSIVE").unwrap();
    let base = d.base.clone();
    let token = d.token.clone();
    let stuck = std::thread::spawn(move || {
        let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
        rt.block_on(async {
            let _ = common::daemon::client()
                .build()
                .unwrap()
                .post(format!("{base}/v1/checkouts"))
                .bearer_auth(token)
                .body(r#"{"basket_total": 1}"#)
                .send()
                .await;
        })
    });
    std::thread::sleep(Duration::from_millis(300));
    let _ = read_for(Duration::from_millis(500));
    let during = read_for(Duration::from_millis(1500));
    assert!(!during.contains(&"WATCHDOG=1".to_owned()), "pinged while the writer was stuck: {during:?}");
    conn.execute_batch("COMMIT").unwrap();
    stuck.join().unwrap();
    let after = read_for(Duration::from_millis(1500));
    assert!(after.contains(&"WATCHDOG=1".to_owned()), "{after:?}");

    d.signal("TERM");
    let stopping = read_for(Duration::from_millis(1500));
    assert!(stopping.contains(&"STOPPING=1".to_owned()), "{stopping:?}");
    assert_eq!(d.wait_exit(Duration::from_secs(5)).0, Some(0));
}

#[test]
fn a_rotated_pos_token_works_at_once_and_the_old_one_stops() {
    let t = TestTerminal::with_ruleset();
    let d = Daemon::start(&t, &[]);
    let printed = t.run(&["pos-token"]);
    assert_eq!(printed.stdout.trim(), d.token);
    let mode = std::os::unix::fs::PermissionsExt::mode(
        &std::fs::metadata(t.dir.path().join("data/pos-token")).unwrap().permissions(),
    );
    assert_eq!(mode & 0o777, 0o600);
    assert!(d.token.len() >= 22, "at least 128 bits");
    let rotated = t.run(&["pos-token", "--rotate"]);
    assert_eq!(rotated.code, 0, "{}", rotated.stderr);
    let new = rotated.stdout.trim().to_owned();
    assert_ne!(new, d.token);
    let bearer =
        |tok: &str| d.request("GET", "/v1/status", None, &[("authorization", &format!("Bearer {tok}"))]).status;
    assert_eq!(bearer(&d.token), 401);
    assert_eq!(bearer(&new), 200);
}

#[test]
fn manager_pin_login_lockout_and_the_cashier_link() {
    let t = TestTerminal::with_ruleset();
    let d = Daemon::start(&t, &[]);
    let set = t.run_with_stdin(&["manager-pin", "set"], Some(b"12\n"));
    assert_eq!(set.code, 2, "too short: {}", set.stderr);
    let set = t.run_with_stdin(&["manager-pin", "set"], Some(b"246810\n"));
    assert_eq!(set.code, 0, "{}", set.stderr);
    let stored = std::fs::read_to_string(t.dir.path().join("data/manager-pin")).unwrap();
    assert!(stored.starts_with("$argon2") && !stored.contains("246810"));
    let form = |pin: &str| {
        d.request(
            "POST",
            "/manager/login",
            Some(&format!("pin={pin}")),
            &[("content-type", "application/x-www-form-urlencoded"), ("cookie", "x=y")],
        )
    };
    let ok = form("246810");
    assert_eq!(ok.status, 303);
    assert_eq!(ok.headers["location"], "/manager");
    let cookie = ok.headers["set-cookie"].to_str().unwrap().to_owned();
    assert!(cookie.contains("HttpOnly") && cookie.contains("SameSite=Strict"), "{cookie}");
    let session = cookie.split(';').next().unwrap().to_owned();
    let report = d.request("GET", "/v1/reports/daily", None, &[("cookie", &session)]);
    assert_eq!(report.status, 200, "a manager session reads reports");
    std::thread::sleep(Duration::from_millis(20));
    let again = t.run_with_stdin(&["manager-pin", "set"], Some(b"135791\n"));
    assert_eq!(again.code, 0, "{}", again.stderr);
    let report = d.request("GET", "/v1/reports/daily", None, &[("cookie", &session)]);
    assert_eq!(report.status, 401, "a new PIN ends the sessions of the old one");
    let again = t.run_with_stdin(&["manager-pin", "set"], Some(b"246810\n"));
    assert_eq!(again.code, 0, "{}", again.stderr);
    // A logout ends the session on the terminal: the same cookie, kept elsewhere, no
    // longer opens anything.
    let session = form("246810").headers["set-cookie"].to_str().unwrap().split(';').next().unwrap().to_owned();
    assert_eq!(d.request("GET", "/v1/reports/daily", None, &[("cookie", &session)]).status, 200);
    let out = d.request("POST", "/manager/logout", Some(""), &[("cookie", &session)]);
    assert_eq!(out.status, 303);
    assert!(out.headers["set-cookie"].to_str().unwrap().contains("Max-Age=0"));
    assert_eq!(d.request("GET", "/v1/reports/daily", None, &[("cookie", &session)]).status, 401, "logged out");
    // Parallel guesses cannot slip past the lock: at most five are ever checked.
    let statuses = d.parallel_logins(12, "11");
    assert!(statuses.iter().all(|s| *s == 401 || *s == 429), "{statuses:?}");
    assert!(statuses.iter().filter(|s| **s == 401).count() <= 5, "{statuses:?}");
    while form("000000").status == 401 {}
    assert_eq!(form("246810").status, 429, "locked even for the right PIN");
    assert_eq!(form("246810").status, 429);

    // The cashier link: once, then a session that may open checkouts but not read reports.
    let url = t.run(&["cashier-url"]).stdout.trim().to_owned();
    let path = url.split_once("/cashier/").map(|(_, rest)| format!("/cashier/{rest}")).unwrap();
    let opened = d.request("GET", &path, None, &[("cookie", "x=y")]);
    assert_eq!(opened.status, 303, "{}", opened.text);
    let session = opened.headers["set-cookie"].to_str().unwrap().split(';').next().unwrap().to_owned();
    assert_eq!(d.request("GET", &path, None, &[("cookie", "x=y")]).status, 401, "one time only");
    let open = d.request("POST", "/v1/checkouts", Some(r#"{"basket_total": 100}"#), &[("cookie", &session)]);
    assert_eq!(open.status, 201);
    let older = open.json()["checkout_id"].as_str().unwrap().to_owned();
    let current = d.request("POST", "/v1/checkouts", Some(r#"{"basket_total": 100}"#), &[("cookie", &session)]);
    let current = current.json()["checkout_id"].as_str().unwrap().to_owned();
    let cancel = |id: &str| {
        d.request(
            "POST",
            &format!("/v1/checkouts/{id}/close"),
            Some(r#"{"status": "cancelled"}"#),
            &[("cookie", &session)],
        )
    };
    assert_eq!(cancel(&older).status, 403, "a cashier cancels only the current checkout");
    assert_eq!(cancel(&current).status, 200);
    assert_eq!(d.request("GET", "/v1/reports/daily", None, &[("cookie", &session)]).status, 403);
    let page = d.request("GET", "/", None, &[("cookie", &session)]);
    assert_eq!(page.status, 200);
}

#[test]
fn a_listen_address_off_loopback_is_refused_unless_the_config_allows_it() {
    let t = TestTerminal::with_ruleset();
    let r = t.run(&["run", "--listen", "0.0.0.0:0", "--scanner", "none"]);
    assert_eq!(r.code, 2, "{}", r.stderr);
    assert!(r.stderr.contains("allow-remote"), "{}", r.stderr);
    let config = std::fs::read_to_string(t.config()).unwrap();
    std::fs::write(t.config(), format!("{config}\n[api]\nlisten = \"0.0.0.0:0\"\nallow-remote = true\n")).unwrap();
    let mut d = Daemon::start(&t, &[]);
    assert_eq!(d.get("/v1/status").status, 200);
    d.signal("TERM");
    assert_eq!(d.wait_exit(Duration::from_secs(5)).0, Some(0));
}

/// A profile whose good-read and bad-read bytes the emulator can see.
fn beeping_profile(t: &TestTerminal) -> (String, redeemd::scanner::Profile) {
    let text = include_str!("../firmware-profiles/generic-serial.toml")
        .replace("id = \"generic-serial\"", "id = \"test-beeper\"")
        .replace("[commands]", "[commands]\ngood-read = \"06\"\nbad-read = \"15\"");
    let text = if text.contains("[commands]") {
        text
    } else {
        format!("{text}\n[commands]\ngood-read = \"06\"\nbad-read = \"15\"\n")
    };
    let path = t.path("test-beeper.toml");
    std::fs::write(&path, &text).unwrap();
    let profile = redeemd::scanner::Profile::parse("test-beeper", &text).unwrap();
    (path, profile)
}

/// A daemon whose scanner is an emulator on a pty with the beeping profile, connected,
/// and its event stream.
fn daemon_with_a_beeping_scanner(t: &TestTerminal) -> (redeemd::scanner::Profile, Emulator, Daemon, EventStream) {
    let (profile_path, profile) = beeping_profile(t);
    let link = t.dir.path().join("scanner");
    let scanner = Emulator::plug(&link);
    let d = Daemon::start(t, &["--scanner", link.to_str().unwrap(), "--profile", &profile_path]);
    let events = d.events();
    let deadline = Instant::now() + 5 * SECOND;
    while d.get("/v1/status").json()["scanner"]["state"] != "connected" {
        assert!(Instant::now() < deadline, "scanner never connected: {}", d.log());
        std::thread::sleep(Duration::from_millis(20));
    }
    (profile, scanner, d, events)
}

#[test]
fn scans_decide_beep_and_publish_through_unplug_and_replug() {
    let t = TestTerminal::with_ruleset();
    let (profile, mut scanner, d, events) = daemon_with_a_beeping_scanner(&t);

    // No checkout: no decision, a bad-read beep and a `scan` event.
    scanner.scan(&profile, &t.code("C-SCAN-0", "DINING"), None);
    assert_eq!(scanner.read_for(2 * SECOND), vec![0x15]);
    assert_eq!(events.next_named("scan", 5 * SECOND).unwrap()["ignored"], "no_checkout");

    // A checkout: the scan is decided, good-read, a `decision` event from the scanner.
    let id = d.open_checkout(5800);
    let code = t.code("C-SCAN-1", "DINING");
    scanner.scan(&profile, &code, None);
    assert_eq!(scanner.read_for(2 * SECOND), vec![0x06]);
    let decision = events.next_named("decision", 5 * SECOND).unwrap();
    assert_eq!((decision["decision"].clone(), decision["source"].clone()), (json!("accepted"), json!("scanner")));
    assert_eq!(decision["checkout_id"], id.as_str());
    // Refused: bad-read.
    std::thread::sleep(Duration::from_millis(1600)); // past the duplicate window
    scanner.scan(&profile, &code, None);
    assert_eq!(scanner.read_for(2 * SECOND), vec![0x15]);
    assert_eq!(events.next_named("decision", 5 * SECOND).unwrap()["reason"], "already_redeemed");

    // Unplug and replug while running.
    let link = scanner.unplug();
    let unplugged = events.next_named("scanner", 5 * SECOND).unwrap_or_else(|| panic!("no scanner event: {}", d.log()));
    assert_eq!(unplugged["state"], "disconnected");
    assert_eq!(d.get("/v1/status").json()["scanner"]["state"], "disconnected");
    let mut scanner = Emulator::plug(&link);
    let replugged = events.next_named("scanner", 15 * SECOND).unwrap_or_else(|| panic!("no reconnect: {}", d.log()));
    assert_eq!(replugged["state"], "connected");
    let second = d.open_checkout(6000);
    scanner.scan(&profile, &t.code("C-SCAN-2", "DINING"), None);
    let beep = scanner.read_for(2 * SECOND);
    assert_eq!(beep, vec![0x06], "{}", d.get(&format!("/v1/checkouts/{second}")).text);
    let first = d.get(&format!("/v1/checkouts/{id}")).json();
    assert_eq!(first["decisions"].as_array().unwrap().len(), 2, "{first}");
    let second = d.get(&format!("/v1/checkouts/{second}")).json();
    assert_eq!(second["decisions"][0]["source"], "scanner", "{second}");
    let metrics = d.request("GET", "/metrics", None, &[]).text;
    assert!(metrics.contains("redeemd_decisions_total{outcome=\"already_redeemed\"} 1"), "{metrics}");
    assert!(!metrics.contains("C-SCAN"), "no coupon ids in metrics");
}

/// The first bytes the host writes to the emulated scanner within `limit` (a beep), read
/// as soon as they come: a rescan must follow inside the 1.5 s duplicate window.
fn next_beep(scanner: &mut Emulator, limit: Duration) -> Vec<u8> {
    let deadline = Instant::now() + limit;
    loop {
        let got = scanner.read_for(Duration::from_millis(30));
        if !got.is_empty() || Instant::now() >= deadline {
            return got;
        }
    }
}

/// Issue 18, item 11: a scan with no open checkout is not taken, so it does not count as
/// a scan for duplicate suppression: its rescan inside the window beeps bad again, and
/// once the cashier has opened a checkout, the rescan is decided.
#[test]
fn a_rescan_after_a_no_checkout_scan_is_presented_again() {
    let t = TestTerminal::with_ruleset();
    let (profile, mut scanner, d, events) = daemon_with_a_beeping_scanner(&t);
    let code = t.code("C-RESCAN-1", "DINING");

    // No checkout, twice inside the window: a bad-read each time, and no `duplicate`.
    let first = Instant::now();
    scanner.scan(&profile, &code, None);
    assert_eq!(next_beep(&mut scanner, 2 * SECOND), vec![0x15]);
    assert_eq!(events.next_named("scan", 5 * SECOND).unwrap()["ignored"], "no_checkout");
    scanner.scan(&profile, &code, None);
    assert_eq!(next_beep(&mut scanner, 2 * SECOND), vec![0x15], "{}", d.log());
    let again = events.next_named("scan", 5 * SECOND).unwrap();
    assert_eq!(again["ignored"], "no_checkout", "{again}");
    assert!(first.elapsed() < Duration::from_millis(1500), "too slow to test the window: {:?}", first.elapsed());

    // The cashier opens a checkout and rescans at once: decided, good-read.
    let started = Instant::now();
    scanner.scan(&profile, &code, None);
    assert_eq!(next_beep(&mut scanner, 2 * SECOND), vec![0x15]);
    let id = d.open_checkout(5800);
    scanner.scan(&profile, &code, None);
    assert_eq!(next_beep(&mut scanner, 2 * SECOND), vec![0x06], "{}", d.log());
    assert!(started.elapsed() < Duration::from_millis(1500), "too slow to test the window: {:?}", started.elapsed());
    let decision = events.next_named("decision", 5 * SECOND).unwrap();
    assert_eq!((decision["decision"].clone(), decision["checkout_id"].clone()), (json!("accepted"), json!(id)));

    // A decided scan still suppresses its duplicate: no second decision, no beep.
    scanner.scan(&profile, &code, None);
    assert_eq!(next_beep(&mut scanner, Duration::from_millis(500)), Vec::<u8>::new());
    assert_eq!(events.next_named("scan", 5 * SECOND).unwrap()["discarded"], "duplicate");
    let checkout = d.get(&format!("/v1/checkouts/{id}")).json();
    assert_eq!(checkout["decisions"].as_array().unwrap().len(), 1, "{checkout}");
}

#[test]
fn the_vector_cases_with_prior_codes_run_through_the_api() {
    let (Some(faketime), Some(libfaketime)) = (which("faketime"), libfaketime()) else {
        eprintln!("NOTICE: faketime not installed: the multi-code vector cases through the daemon are skipped");
        return;
    };
    let vectors = common::vectors_dir();
    let text = std::fs::read_to_string(vectors.join("decisions.jsonl")).unwrap();
    let cases: Vec<Value> = text.lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    let cases: Vec<&Value> =
        cases.iter().filter(|c| !c["checkout"]["prior_codes"].as_array().unwrap().is_empty()).collect();
    assert!(cases.len() >= 3);
    for case in cases {
        let t = TestTerminal::bare(1);
        let term = &case["terminal"];
        let fake = |at: &str| {
            let ts: jiff::Timestamp = at.parse().unwrap();
            format!("@{}", ts.strftime("%Y-%m-%d %H:%M:%S"))
        };
        let cmd = |at: &str, args: &[&str]| {
            let mut c = std::process::Command::new(&faketime);
            c.arg("-f").arg(fake(at)).arg(common::binary()).arg("--config").arg(t.config()).args(args);
            c.env("FAKETIME_DONT_FAKE_MONOTONIC", "1").env_remove("REDEEMD_CONFIG");
            c
        };
        let keys = vectors.join("trust-keys.json");
        let ok = cmd(
            case["installed_at"].as_str().unwrap(),
            &[
                "init",
                "--data-dir",
                &t.path("data"),
                "--merchant-id",
                term["merchant_id"].as_str().unwrap(),
                "--merchant-category",
                term["merchant_category"].as_str().unwrap(),
                "--trust-key",
                keys.to_str().unwrap(),
                "--timezone",
                term["timezone"].as_str().unwrap(),
            ],
        )
        .output()
        .unwrap();
        assert!(ok.status.success(), "{}", String::from_utf8_lossy(&ok.stderr));
        let ruleset = vectors.join(case["ruleset"].as_str().unwrap());
        let ok = cmd(case["installed_at"].as_str().unwrap(), &["ruleset", "import", ruleset.to_str().unwrap()])
            .output()
            .unwrap();
        assert!(ok.status.success(), "{}", String::from_utf8_lossy(&ok.stderr));
        // The daemon itself gets libfaketime preloaded (not the `faketime` wrapper, which
        // forks: killing the wrapper would orphan the daemon).
        let mut run = std::process::Command::new(common::binary());
        run.args(["--config", &t.config(), "run", "--listen", "127.0.0.1:0", "--scanner", "none"])
            .env_remove("REDEEMD_CONFIG")
            .env("LD_PRELOAD", &libfaketime)
            .env("FAKETIME", fake(case["now"].as_str().unwrap()))
            .env("FAKETIME_DONT_FAKE_MONOTONIC", "1");
        let d = common::daemon::Daemon::from_command(&t, &mut run);
        let co = &case["checkout"];
        let r = d.post(
            "/v1/checkouts",
            &json!({"basket_total": co["basket_total"], "eligible_total": co["eligible_total"]}).to_string(),
        );
        assert_eq!(r.status, 201, "{}", r.text);
        let id = r.json()["checkout_id"].as_str().unwrap().to_owned();
        for prior in co["prior_codes"].as_array().unwrap() {
            assert_eq!(d.present(&id, prior.as_str().unwrap())["decision"], "accepted", "{}", case["name"]);
        }
        let record = d.present(&id, case["code"].as_str().unwrap());
        let expect = &case["expect"];
        assert_eq!(record["decision"], expect["decision"], "{}: {record}", case["name"]);
        assert_eq!(record["reason"], expect["reason"], "{}", case["name"]);
        if expect["decision"] == "accepted" {
            assert_eq!(record["discount"], expect["discount"], "{}", case["name"]);
        }
        assert_eq!(record["coupon_id"], expect["coupon_id"], "{}", case["name"]);
    }
}

fn libfaketime() -> Option<std::path::PathBuf> {
    ["/usr/lib/x86_64-linux-gnu", "/usr/lib/aarch64-linux-gnu", "/usr/lib"]
        .iter()
        .map(|d| std::path::Path::new(d).join("faketime/libfaketimeMT.so.1"))
        .find(|p| p.is_file())
}

fn which(name: &str) -> Option<std::path::PathBuf> {
    std::env::var_os("PATH")?.to_str()?.split(':').map(|d| std::path::Path::new(d).join(name)).find(|p| p.is_file())
}

#[test]
fn forwarding_runs_inside_the_daemon_through_an_outage() {
    let up = TestUpstream::start();
    let t = TestTerminal::bare(11);
    up.set_ruleset_keys(&t.issuer.trust_anchors_json());
    up.set_ruleset(&t.issuer.sign_ruleset(&t.issuer.ruleset_payload(7, jiff::Timestamp::now(), &["DINING"], &[])));
    up.add_code("ENROLL-D1");
    let r = t.provision(&up.url, &up.ca_pem, "ENROLL-D1");
    assert_eq!(r.code, 0, "{}", r.stderr);
    let d = Daemon::start(&t, &[]);
    let events = d.events();
    let id = d.open_checkout(5800);
    assert_eq!(d.present(&id, &t.code("C-FWD-1", "DINING"))["decision"], "accepted");
    // Woken by the new event: it leaves well before the next poll.
    let deadline = Instant::now() + 5 * SECOND;
    while up.event_ids().is_empty() {
        assert!(Instant::now() < deadline, "not forwarded: {}", d.log());
        std::thread::sleep(Duration::from_millis(20));
    }
    let status = d.get("/v1/status").json();
    assert_eq!(status["terminal_id"], "T-0042");
    assert!(status["last_sync"].is_string(), "{status}");

    // Outage: every call fails for a while; the state goes offline, then back online.
    let outage: Vec<Fault> = (0..4).map(|_| Fault::Status(503)).collect();
    for path in ["redemptions", "heartbeat", "ruleset"] {
        up.fail_next(path, &outage);
    }
    let id = d.open_checkout(5800);
    assert_eq!(d.present(&id, &t.code("C-FWD-2", "DINING"))["decision"], "accepted");
    let mut saw_offline = false;
    let mut saw_online_after = false;
    let deadline = Instant::now() + Duration::from_secs(40);
    while Instant::now() < deadline && !saw_online_after {
        match events.next(Duration::from_millis(500)) {
            Some(Sse::Event { name, data, .. }) if name == "sync" => {
                if data["state"] == "offline" {
                    saw_offline = true;
                    assert_eq!(d.get("/v1/status").json()["sync"]["state"], "offline");
                } else if data["state"] == "online" && saw_offline && data["unsynced"] == 0 {
                    saw_online_after = true;
                }
            }
            _ => {}
        }
    }
    assert!(saw_offline && saw_online_after, "offline {saw_offline}, back online {saw_online_after}: {}", d.log());
    assert_eq!(up.event_ids().len(), 2);
    assert_eq!(d.get("/v1/status").json()["unsynced"], 0);
}

#[test]
fn a_rule_set_imported_beside_the_running_daemon_takes_effect_at_once() {
    let t = TestTerminal::with_ruleset();
    let d = Daemon::start(&t, &[]);
    let events = d.events();
    let id = d.open_checkout(5800);
    let code = t.code("C-NEW-CAMPAIGN", "SNACKS");
    assert_eq!(d.present(&id, &code)["reason"], "unknown_campaign");
    let file = t.write_ruleset("rs6.jws", 6, &["DINING", "SNACKS"], &[]);
    let r = t.run(&["ruleset", "import", &file]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    // Announced at once (the import nudges the daemon), before anyone asks anything.
    assert_eq!(events.next_named("ruleset", 5 * SECOND).unwrap()["version"], 6);
    assert_eq!(d.present(&id, &code)["decision"], "accepted");
    assert_eq!(d.get("/v1/status").json()["ruleset"]["version"], 6);
}

/// The manager page's doctor panel: `/manager/doctor` answers `doctor --json`'s stable
/// English fields plus each finding in the page's language (`?lang=`, the cookie, else
/// the configured one) under `text`, which the page shows.
#[test]
fn the_doctor_panel_speaks_the_pages_language() {
    let t = TestTerminal::new_in("zh-CN");
    let file = t.write_ruleset("rs5.jws", 5, &["DINING"], &[]);
    assert_eq!(t.run(&["ruleset", "import", &file]).code, 0);
    let d = Daemon::start(&t, &[]);
    assert_eq!(t.run_with_stdin(&["manager-pin", "set"], Some(b"246810\n")).code, 0);
    let login = d.request(
        "POST",
        "/manager/login",
        Some("pin=246810"),
        &[("content-type", "application/x-www-form-urlencoded"), ("cookie", "x=y")],
    );
    assert_eq!(login.status, 303, "{}", login.text);
    let session = login.headers["set-cookie"].to_str().unwrap().split(';').next().unwrap().to_owned();
    let get = |path: &str, cookie: &str| {
        let cookie = format!("{session}{cookie}");
        d.request("GET", path, None, &[("cookie", &cookie)])
    };
    let cjk = |s: &str| s.chars().any(common::words::is_cjk);
    let check = |reply: Reply, chinese: bool| {
        assert_eq!(reply.status, 200, "{}", reply.text);
        let report = reply.json();
        let findings = report["findings"].as_array().expect("findings").clone();
        assert!(!findings.is_empty(), "{report}");
        for f in &findings {
            // The machine fields stay English whatever the page's language.
            assert!(!cjk(f["message"].as_str().unwrap_or_default()), "{f}");
            let text = &f["text"];
            for key in ["level", "check", "message"] {
                assert!(text[key].as_str().is_some_and(|s| !s.is_empty()), "{key} missing: {f}");
            }
            if !chinese {
                assert_eq!(text["message"], f["message"], "{f}");
            }
        }
        let summary = report["summary"].as_str().unwrap_or_default();
        assert_eq!(cjk(summary), chinese, "{summary}");
        let said = findings.iter().any(|f| cjk(f["text"]["message"].as_str().unwrap_or_default()));
        assert_eq!(said, chinese, "{report}");
    };
    check(get("/manager/doctor", ""), true);
    check(get("/manager/doctor?lang=en", ""), false);
    check(get("/manager/doctor", "; redeemd_lang=en"), false);
    check(get("/manager/doctor?lang=zh-CN", "; redeemd_lang=en"), true);
    // The page asks in its own language and shows `text` (the browser tests in
    // tests/pages.rs click the button where a browser is available).
    let script = d.get("/assets/manager.js").text;
    assert!(script.contains("/manager/doctor?lang=") && script.contains("f.text"), "{script}");
}

/// `POST /v1/checkouts/{id}/amounts` (issue 20): an open sale's amounts are corrected
/// while it holds no accepted coupon; with one, 409 `checkout_has_coupons`; closed, 409
/// `checkout_closed`; the body checked as `open_checkout`'s; replayed under its
/// Idempotency-Key; a cashier session may correct its sale.
#[test]
fn the_amounts_of_an_open_checkout_are_corrected_until_it_holds_a_coupon() {
    let t = TestTerminal::with_ruleset();
    let d = Daemon::start(&t, &[]);
    let id = d.open_checkout(58000);
    let path = format!("/v1/checkouts/{id}/amounts");
    for (body, code) in [
        ("{", "bad_json"),
        (r#"{"eligible_total": 100}"#, "bad_field"),
        (r#"{"basket_total": -1}"#, "bad_field"),
        (r#"{"basket_total": 58.5}"#, "bad_field"),
        (r#"{"basket_total": 100, "eligible_total": 101}"#, "bad_field"),
    ] {
        let r = d.post(&path, body);
        assert_eq!((r.status, r.error_code().as_str()), (400, code), "{body}: {}", r.text);
    }
    assert_eq!(d.post("/v1/checkouts/no-such/amounts", r#"{"basket_total": 1}"#).status, 404);
    let key = [("idempotency-key", "till-1-amounts-0001")];
    let fixed = d.request("POST", &path, Some(r#"{"basket_total": 5800, "eligible_total": 5000}"#), &key);
    assert_eq!(fixed.status, 200, "{}", fixed.text);
    let body = fixed.json();
    assert_eq!(
        (body["checkout_id"].clone(), body["basket_total"].clone(), body["eligible_total"].clone()),
        (json!(id), json!(5800), json!(5000))
    );
    assert_eq!(body["status"], "open");
    let again = d.request("POST", &path, Some(r#"{"basket_total": 5800, "eligible_total": 5000}"#), &key);
    assert_eq!((again.status, again.text.clone()), (200, fixed.text.clone()), "replayed");
    let other = d.request("POST", &path, Some(r#"{"basket_total": 5900}"#), &key);
    assert_eq!((other.status, other.error_code().as_str()), (422, "idempotency_key_reused"));
    // No eligible amount: the whole basket, as when opening.
    let whole = d.post(&path, r#"{"basket_total": 6000}"#).json();
    assert_eq!((whole["basket_total"].clone(), whole["eligible_total"].clone()), (json!(6000), json!(6000)));

    // A cashier session corrects its sale too.
    let url = t.run(&["cashier-url"]).stdout.trim().to_owned();
    let link = url.split_once("/cashier/").map(|(_, rest)| format!("/cashier/{rest}")).unwrap();
    let opened = d.request("GET", &link, None, &[("cookie", "x=y")]);
    let session = opened.headers["set-cookie"].to_str().unwrap().split(';').next().unwrap().to_owned();
    let by_cashier = d.request("POST", &path, Some(r#"{"basket_total": 5800}"#), &[("cookie", &session)]);
    assert_eq!(
        (by_cashier.status, by_cashier.json()["basket_total"].clone()),
        (200, json!(5800)),
        "{}",
        by_cashier.text
    );

    // With an accepted coupon: 409 checkout_has_coupons; voided, correctable again.
    let decision = d.present(&id, &t.code("C-AMOUNTS", "DINING"));
    assert_eq!(decision["decision"], "accepted", "{decision}");
    let held = d.post(&path, r#"{"basket_total": 7000}"#);
    assert_eq!((held.status, held.error_code().as_str()), (409, "checkout_has_coupons"), "{}", held.text);
    let redemption = decision["redemption_id"].as_str().unwrap();
    assert_eq!(d.post(&format!("/v1/redemptions/{redemption}/void"), "").status, 200);
    assert_eq!(d.post(&path, r#"{"basket_total": 7000}"#).status, 200, "a voided coupon holds nothing");

    // Closed: 409 checkout_closed.
    assert_eq!(d.post(&format!("/v1/checkouts/{id}/close"), r#"{"status": "paid"}"#).status, 200);
    let closed = d.post(&path, r#"{"basket_total": 100}"#);
    assert_eq!((closed.status, closed.error_code().as_str()), (409, "checkout_closed"));
}
