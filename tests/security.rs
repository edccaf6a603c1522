//! The locks of the local API against what a terminal meets in a shop (issue 18): PIN
//! guessing over time and in parallel, aborted logins, other sites driving a page session
//! (in Chromium too), other host names (DNS rebinding), event streams outliving their
//! credential, and the smaller refusals. Each runs against the real `redeemd run`.

mod common;

use common::browser::Browser;
use common::daemon::{Daemon, EventStream, Sse};
use common::TestTerminal;
use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

const PIN: &str = "246810";

fn set_pin(t: &TestTerminal, pin: &str) {
    let set = t.run_with_stdin(&["manager-pin", "set"], Some(format!("{pin}\n").as_bytes()));
    assert_eq!(set.code, 0, "{}", set.stderr);
}

/// `POST /manager/login` as a script would (no Origin): the status.
fn login(d: &Daemon, pin: &str) -> u16 {
    d.request_as_is(
        "POST",
        "/manager/login",
        Some(&format!("pin={pin}")),
        &[("content-type", "application/x-www-form-urlencoded")],
        false,
    )
    .status
}

/// A manager session's cookie (`name=value`).
fn manager_session(d: &Daemon) -> String {
    let r = d.request_as_is(
        "POST",
        "/manager/login",
        Some(&format!("pin={PIN}")),
        &[("content-type", "application/x-www-form-urlencoded")],
        false,
    );
    assert_eq!(r.status, 303, "{}", r.text);
    r.headers["set-cookie"].to_str().unwrap().split(';').next().unwrap().to_owned()
}

/// A cashier session's cookie, from a fresh one-time link.
fn cashier_session(t: &TestTerminal, d: &Daemon) -> String {
    let url = t.run(&["cashier-url"]).stdout.trim().to_owned();
    let path = url.split_once("/cashier/").map(|(_, rest)| format!("/cashier/{rest}")).unwrap();
    let opened = d.request_as_is("GET", &path, None, &[], false);
    assert_eq!(opened.status, 303, "{}", opened.text);
    opened.headers["set-cookie"].to_str().unwrap().split(';').next().unwrap().to_owned()
}

fn libfaketime() -> Option<std::path::PathBuf> {
    ["/usr/lib/x86_64-linux-gnu", "/usr/lib/aarch64-linux-gnu", "/usr/lib"]
        .iter()
        .map(|d| std::path::Path::new(d).join("faketime/libfaketimeMT.so.1"))
        .find(|p| p.is_file())
}

/// Item 1: the lock comes back after it ends. The daemon runs under libfaketime with a
/// time file the test moves forward, so "five minutes later" takes no time.
#[test]
fn the_pin_lock_out_holds_cycle_after_cycle_and_against_parallel_guesses() {
    let Some(lib) = libfaketime() else {
        assert_ne!(
            std::env::var("REDEEMD_REQUIRE_BROWSER").as_deref(),
            Ok("1"),
            "CI must run this test: install faketime"
        );
        eprintln!("NOTICE: faketime not installed: the lock-out cycle test is skipped (apt-get install faketime)");
        return;
    };
    let t = TestTerminal::with_ruleset();
    set_pin(&t, PIN);
    let offset = t.dir.path().join("faketime");
    std::fs::write(&offset, "+0\n").unwrap();
    let offset_text = offset.display().to_string();
    let lib = lib.display().to_string();
    let d = Daemon::start_with_env(
        &t,
        &[],
        &[
            ("LD_PRELOAD", &lib),
            ("FAKETIME_TIMESTAMP_FILE", &offset_text),
            ("FAKETIME_NO_CACHE", "1"),
            ("FAKETIME_DONT_FAKE_MONOTONIC", "1"),
        ],
    );
    for (cycle, minutes) in [(1, 0), (2, 6), (3, 12)] {
        std::fs::write(&offset, format!("+{}\n", minutes * 60)).unwrap();
        // Five wrong PINs from five connections at once each count: then the lock.
        let statuses = d.parallel_logins(5, "99");
        assert_eq!(statuses, [401; 5], "cycle {cycle}: each of five wrong PINs is checked");
        for _ in 0..20 {
            assert_eq!(login(&d, "000000"), 429, "cycle {cycle}: locked");
        }
        assert_eq!(login(&d, PIN), 429, "cycle {cycle}: locked even for the right PIN");
        // Four minutes on: still locked, however many guesses came in between.
        std::fs::write(&offset, format!("+{}\n", minutes * 60 + 240)).unwrap();
        assert_eq!(login(&d, PIN), 429, "cycle {cycle}: still locked after four minutes");
    }
    // After the third lock: more parallel guesses than the lock allows, then the right PIN.
    std::fs::write(&offset, format!("+{}\n", 18 * 60)).unwrap();
    let statuses = d.parallel_logins(12, "99");
    assert_eq!(statuses.iter().filter(|s| **s == 401).count(), 5, "{statuses:?}");
    assert!(statuses.iter().all(|s| *s == 401 || *s == 429), "{statuses:?}");
    std::fs::write(&offset, format!("+{}\n", 24 * 60)).unwrap();
    assert_eq!(login(&d, PIN), 303, "the lock ended: the right PIN logs in");
    // A right PIN resets the count: four wrong ones after it do not lock.
    for _ in 0..4 {
        assert_eq!(login(&d, "000000"), 401);
    }
    assert_eq!(login(&d, PIN), 303);
}

/// Item 2: a login whose client goes away mid-check (a reset 5 ms in, or a double-click)
/// never blocks the next one.
#[test]
fn an_aborted_login_never_blocks_the_next_one() {
    let t = TestTerminal::with_ruleset();
    set_pin(&t, PIN);
    let d = Daemon::start(&t, &[]);
    let addr = d.base.trim_start_matches("http://").to_owned();
    for pin in [PIN, "000000", PIN] {
        let mut stream = TcpStream::connect(&addr).unwrap();
        let body = format!("pin={pin}");
        let request = format!(
            "POST /manager/login HTTP/1.1\r\nHost: {addr}\r\nContent-Type: application/x-www-form-urlencoded\r\n\
             Content-Length: {}\r\n\r\n{body}",
            body.len()
        );
        stream.write_all(request.as_bytes()).unwrap();
        std::thread::sleep(Duration::from_millis(5));
        socket_reset(stream);
    }
    // A double-click: two logins at once, the first abandoned by the browser.
    let first = TcpStream::connect(&addr).unwrap();
    let (mut first, body) = (first, format!("pin={PIN}"));
    let request = format!(
        "POST /manager/login HTTP/1.1\r\nHost: {addr}\r\nContent-Type: application/x-www-form-urlencoded\r\n\
         Content-Length: {}\r\n\r\n{body}",
        body.len()
    );
    first.write_all(request.as_bytes()).unwrap();
    let second = login(&d, PIN);
    drop(first);
    assert_eq!(second, 303, "the second click logs in");
    std::thread::sleep(Duration::from_millis(300));
    assert_eq!(login(&d, PIN), 303, "the right PIN still logs in after aborted ones");
}

/// Closes with a reset (SO_LINGER 0), as when a client is killed mid-request.
fn socket_reset(stream: TcpStream) {
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    rt.block_on(async {
        stream.set_nonblocking(true).unwrap();
        let stream = tokio::net::TcpStream::from_std(stream).unwrap();
        stream.set_zero_linger().unwrap();
        drop(stream);
    });
}

/// Item 3: a session's POST from anywhere but the daemon's own pages changes nothing.
#[test]
fn other_sites_cannot_drive_a_page_session() {
    let t = TestTerminal::with_ruleset();
    set_pin(&t, PIN);
    let d = Daemon::start(&t, &[]);
    let cashier = cashier_session(&t, &d);
    let own = d.base.clone();
    let other = own.rsplit_once(':').map(|(h, p)| format!("{h}:{}", p.parse::<u16>().unwrap() ^ 1)).unwrap();
    let open = r#"{"basket_total": 5800}"#;
    let refused = |headers: &[(&str, &str)]| {
        let r = d.request_as_is("POST", "/v1/checkouts", Some(open), headers, false);
        assert_eq!((r.status, r.error_code().as_str()), (403, "cross_origin"), "{headers:?}: {}", r.text);
    };
    let json = ("content-type", "application/json");
    let text = ("content-type", "text/plain");
    let c = ("cookie", cashier.as_str());
    refused(&[c, json, ("origin", &other)]);
    refused(&[c, text, ("origin", &other)]);
    refused(&[c, text, ("origin", &own)]);
    refused(&[c, json]);
    refused(&[c, json, ("origin", "null")]);
    refused(&[c, json, ("sec-fetch-site", "same-site")]);
    assert!(d.get("/v1/status").json()["current_checkout"].is_null(), "nothing changed");
    // The daemon's own pages: Origin or Sec-Fetch-Site says so.
    let r = d.request_as_is("POST", "/v1/checkouts", Some(open), &[c, json, ("origin", &own)], false);
    assert_eq!(r.status, 201, "{}", r.text);
    let r = d.request_as_is("POST", "/v1/checkouts", Some(open), &[c, json, ("sec-fetch-site", "same-origin")], false);
    assert_eq!(r.status, 201, "{}", r.text);
    let checkout = r.json()["checkout_id"].as_str().unwrap().to_owned();
    // The till's token needs neither.
    assert_eq!(d.request_as_is("POST", "/v1/checkouts", Some(open), &[text], true).status, 201);

    // The manager's session: a void from elsewhere is refused, and so is a logout.
    let manager = manager_session(&d);
    let m = ("cookie", manager.as_str());
    let code = t.code("C-SEC-1", "DINING");
    let current = d.open_checkout(5800);
    let decided = d.present(&current, &code);
    assert_eq!(decided["decision"], "accepted", "{decided}");
    let void = format!("/v1/redemptions/{}/void", decided["redemption_id"].as_str().unwrap());
    let r = d.request_as_is("POST", &void, Some("{}"), &[m, json, ("origin", &other)], false);
    assert_eq!((r.status, r.error_code().as_str()), (403, "cross_origin"), "{}", r.text);
    let r = d.request_as_is("POST", "/manager/logout", Some(""), &[m, ("origin", &other)], false);
    assert_eq!(r.status, 403, "{}", r.text);
    assert_eq!(d.request("GET", "/v1/reports/daily", None, &[m]).status, 200, "still logged in");
    let r = d.request_as_is("POST", &void, Some("{}"), &[m, json, ("origin", &own)], false);
    assert_eq!(r.status, 200, "{}", r.text);
    let _ = checkout;

    // The login form from another site is refused even with the right PIN; from the
    // address bar (Sec-Fetch-Site: none) or a script it is the PIN that decides.
    let form = ("content-type", "application/x-www-form-urlencoded");
    let body = format!("pin={PIN}");
    let r = d.request_as_is("POST", "/manager/login", Some(&body), &[form, ("origin", &other)], false);
    assert_eq!((r.status, r.error_code().as_str()), (403, "cross_origin"), "{}", r.text);
    let r = d.request_as_is("POST", "/manager/login", Some(&body), &[form, ("sec-fetch-site", "cross-site")], false);
    assert_eq!(r.status, 403);
    let r = d.request_as_is("POST", "/manager/login", Some(&body), &[form, ("sec-fetch-site", "none")], false);
    assert_eq!(r.status, 303);
    let r = d.request_as_is("POST", "/manager/login", Some(&body), &[form, ("origin", &own)], false);
    assert_eq!(r.status, 303);
}

/// Item 3 in a real browser: a page on another port of 127.0.0.1 (same site for
/// `SameSite=Strict`, so the cashier's cookie rides along) posts a text/plain form and a
/// no-cors fetch at the daemon. Neither opens a checkout.
#[test]
fn a_page_on_another_port_cannot_open_a_checkout_in_chromium() {
    let Some(browser) = Browser::start(1024, 768) else {
        return;
    };
    let t = TestTerminal::with_ruleset();
    let d = Daemon::start(&t, &[]);
    let url = t.run(&["cashier-url"]).stdout.trim().to_owned();
    browser.goto(&url);
    browser.wait_live();
    let hostile = HostilePage::serve(&d.base);
    browser.goto(&hostile.url);
    // The page's fetch has answered (opaque) and its form has navigated to the daemon.
    let deadline = Instant::now() + Duration::from_secs(10);
    // The form's navigation may be under way: the body is read only when it is there.
    while !browser.try_text("body").is_some_and(|t| t.contains("cross_origin")) {
        assert!(Instant::now() < deadline, "the form post never reached the daemon: {:?}", browser.try_text("body"));
        std::thread::sleep(Duration::from_millis(100));
    }
    browser.screenshot("security-cross-site-form");
    let status = d.get("/v1/status").json();
    assert!(status["current_checkout"].is_null(), "a cross-site page opened a checkout: {status}");
    // The cashier's own page still works in the same browser.
    browser.goto(&format!("{}/", d.base));
    browser.wait_live();
    let opened = browser.js("return fetch('/v1/checkouts', {method: 'POST', credentials: 'same-origin', \
         headers: {'Content-Type': 'application/json'}, body: JSON.stringify({basket_total: 100})}) \
         .then(r => r.status)");
    assert_eq!(opened, 201);
    browser.close();
}

/// A page served from another port: a no-cors fetch, then a text/plain form at the daemon.
struct HostilePage {
    url: String,
}

impl HostilePage {
    fn serve(daemon: &str) -> HostilePage {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let url = format!("http://{}/", listener.local_addr().unwrap());
        let page = format!(
            r#"<!doctype html><html><body>
<form id="f" method="POST" action="{daemon}/v1/checkouts" enctype="text/plain">
<input type="hidden" name='{{"basket_total": 100, "pad": "' value='"}}'>
</form>
<script>
fetch("{daemon}/v1/checkouts", {{method: "POST", mode: "no-cors", credentials: "include",
  headers: {{"Content-Type": "text/plain"}}, body: JSON.stringify({{basket_total: 100}})}})
  .finally(() => document.getElementById("f").submit());
</script></body></html>"#
        );
        std::thread::spawn(move || {
            for stream in listener.incoming().take(4) {
                let Ok(mut stream) = stream else { return };
                let mut buf = [0u8; 4096];
                let _ = stream.read(&mut buf);
                let reply = format!(
                    "HTTP/1.1 200 OK\r\nContent-Type: text/html\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{page}",
                    page.len()
                );
                let _ = stream.write_all(reply.as_bytes());
            }
        });
        HostilePage { url }
    }
}

/// Item 4: only the daemon's own names are served (DNS rebinding).
#[test]
fn a_foreign_host_name_is_refused() {
    let t = TestTerminal::with_ruleset();
    let d = Daemon::start(&t, &[]);
    let port = d.base.rsplit_once(':').unwrap().1.to_owned();
    for host in [format!("evil.example:{port}"), format!("127.0.0.1:{}", port.parse::<u16>().unwrap() ^ 1)] {
        for path in ["/v1/status", "/", "/metrics", "/manager"] {
            let r = d.request_as_is("GET", path, None, &[("host", &host)], true);
            assert_eq!(r.status, 421, "{host} {path}: {}", r.text);
            assert_eq!(r.error_code(), "wrong_host");
        }
    }
    for host in [format!("localhost:{port}"), format!("127.0.0.1:{port}"), format!("[::1]:{port}")] {
        assert_eq!(d.request_as_is("GET", "/v1/status", None, &[("host", &host)], true).status, 200, "{host}");
    }
}

/// Waits (bounded by `limit`) for the stream to end; how long that took.
fn ended_within(stream: &EventStream, limit: Duration) -> Option<Duration> {
    let started = Instant::now();
    while started.elapsed() < limit {
        if let Some(Sse::Ended) = stream.next(Duration::from_millis(50)) {
            return Some(started.elapsed());
        }
    }
    None
}

/// Item 5: a stream ends within 2 s of its credential ending, busy or idle.
#[test]
fn an_event_stream_ends_with_its_token_or_session() {
    let t = TestTerminal::with_ruleset();
    set_pin(&t, PIN);
    let mut d = Daemon::start(&t, &[]);
    // A busy stream: an event every 100 ms while the token is rotated.
    let old = EventStream::open(&d.base, &d.token);
    let busy = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(true));
    let rotated = t.run(&["pos-token", "--rotate"]);
    assert_eq!(rotated.code, 0, "{}", rotated.stderr);
    d.token = rotated.stdout.trim().to_owned();
    let fresh = EventStream::open(&d.base, &d.token);
    let feeder = {
        let (base, token, busy) = (d.base.clone(), d.token.clone(), busy.clone());
        std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
            let client = common::daemon::client().build().unwrap();
            while busy.load(std::sync::atomic::Ordering::Relaxed) {
                let _ = rt.block_on(
                    client
                        .post(format!("{base}/v1/checkouts"))
                        .bearer_auth(&token)
                        .header("content-type", "application/json")
                        .body(r#"{"basket_total": 1}"#)
                        .send(),
                );
                std::thread::sleep(Duration::from_millis(100));
            }
        })
    };
    let took = ended_within(&old, Duration::from_secs(4));
    assert!(took.is_some_and(|t| t <= Duration::from_millis(2500)), "the old token's stream went on: {took:?}");
    assert!(fresh.next_named("checkout", Duration::from_secs(2)).is_some(), "the new token's stream goes on");
    busy.store(false, std::sync::atomic::Ordering::Relaxed);
    feeder.join().unwrap();

    // A manager session's stream ends with its logout, and with a new PIN.
    let manager = manager_session(&d);
    let stream = EventStream::open_with(&d.base, "cookie", &manager);
    let out = d.request("POST", "/manager/logout", Some(""), &[("cookie", &manager)]);
    assert_eq!(out.status, 303, "{}", out.text);
    let took = ended_within(&stream, Duration::from_secs(4));
    assert!(took.is_some_and(|t| t <= Duration::from_millis(2500)), "outlived the logout: {took:?}");
    let manager = manager_session(&d);
    let stream = EventStream::open_with(&d.base, "cookie", &manager);
    std::thread::sleep(Duration::from_millis(20));
    set_pin(&t, "135791");
    let took = ended_within(&stream, Duration::from_secs(4));
    assert!(took.is_some_and(|t| t <= Duration::from_millis(2500)), "outlived the new PIN: {took:?}");
    // A cashier's stream stays while its session does.
    let cashier = cashier_session(&t, &d);
    let stream = EventStream::open_with(&d.base, "cookie", &cashier);
    assert!(ended_within(&stream, Duration::from_millis(2500)).is_none(), "a valid session's stream ended");
}

/// Items 8 and 9: the login form's size limit is the API's, and a whole amount written
/// with a point is refused for its form.
#[test]
fn the_login_form_is_held_to_64_kib_and_amounts_to_integers() {
    let t = TestTerminal::with_ruleset();
    set_pin(&t, PIN);
    let d = Daemon::start(&t, &[]);
    let big = format!("pin={PIN}&pad={}", "x".repeat(65 * 1024));
    let r = d.request_as_is(
        "POST",
        "/manager/login",
        Some(&big),
        &[("content-type", "application/x-www-form-urlencoded")],
        false,
    );
    assert_eq!((r.status, r.error_code().as_str()), (413, "body_too_large"), "{}", r.text);
    let r = d.post("/v1/checkouts", r#"{"basket_total": 58.0}"#);
    assert_eq!(r.status, 400);
    let message = r.json()["error"]["message"].as_str().unwrap().to_owned();
    assert!(message.contains("integer") && !message.contains("at most"), "{message}");
}
