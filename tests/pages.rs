//! The cashier screen and the manager's pages in a real browser (headless chromium via
//! chromedriver) against the real daemon: the one-time cashier link, scans on the pty
//! and typed codes shown as they are decided, stand-alone sales, refusals with advice,
//! both languages, small screens, same-origin only, no console errors; the manager's
//! login and lockout, chart against report, CSV against the API, a void from the page;
//! and the interactive demo. Screenshots land in `target/screenshots/`.

mod common;

use common::browser::Browser;
use common::daemon::Daemon;
use common::scanner::Emulator;
use common::TestTerminal;
use serde_json::Value;
use std::time::{Duration, Instant};

fn cashier_link(t: &TestTerminal) -> String {
    let r = t.run(&["cashier-url"]);
    assert_eq!(r.code, 0, "cashier-url: {}", r.stderr);
    r.stdout.trim().to_owned()
}

fn scanner_profile(t: &TestTerminal) -> (String, redeemd::scanner::Profile) {
    let text = include_str!("../firmware-profiles/generic-serial.toml");
    let path = t.path("generic-serial.toml");
    std::fs::write(&path, text).unwrap();
    (path, redeemd::scanner::Profile::parse("generic-serial", text).unwrap())
}

#[test]
fn cashier_screen_from_link_to_paid_with_scans_refusals_and_both_languages() {
    let t = TestTerminal::with_ruleset();
    let (profile_path, profile) = scanner_profile(&t);
    let link_path = t.dir.path().join("scanner");
    let mut scanner = Emulator::plug(&link_path);
    let d = Daemon::start(&t, &["--scanner", link_path.to_str().unwrap(), "--profile", &profile_path]);
    let Some(b) = Browser::start(800, 480) else { return };
    let link = cashier_link(&t);

    // The link opens the screen once; a second use is refused.
    b.goto(&link);
    b.wait_text("h1", "Checkout");
    b.wait_text("#st-scanner", "connected");
    assert!(b.visible("#sale-new"));
    b.screenshot("cashier-idle-800x480");
    assert!(b.console_errors().is_empty());
    b.goto(&link);
    b.wait_text("body", "link_used_or_expired");
    let _ = b.console_errors(); // the refused link's 401 is logged; expected
    b.goto(&format!("{}/", d.base));
    b.wait_text("h1", "Checkout");

    // Stand-alone: amount, a typed code, accepted with the amount to pay.
    b.type_into("#basket", "58");
    b.click("#open-button");
    b.wait_text("#basket-total", "58.00");
    let code = t.code("PAGE-1", "DINING");
    b.type_into("#code", &format!("{code}\n"));
    b.wait_text("#verdict-title", "Accepted");
    b.wait_text("#verdict-detail", "Discount 10.00");
    b.wait_text("#to-pay", "48.00");
    b.assert_no_horizontal_scroll();
    b.screenshot("cashier-accepted-800x480");

    // The same code again: refused, with when it was used.
    b.type_into("#code", &format!("{code}\n"));
    b.wait_text("#verdict-title", "Not accepted");
    b.wait_text("#verdict-detail", "used on this terminal at");
    b.screenshot("cashier-refused-800x480");
    b.click("#paid");
    b.wait_text("#no-checkout", "Sale paid");

    // A scan on the pty shows its decision on the screen.
    b.type_into("#basket", "20");
    b.click("#open-button");
    b.wait_text("#basket-total", "20.00");
    b.wait_live();
    let started = Instant::now();
    scanner.scan(&profile, &t.code("PAGE-2", "DINING"), None);
    let shown = b.wait_text("#verdict-detail", "minimum spend 40.00, 20.00 more to go");
    println!("scan to screen: {:?} ({shown})", started.elapsed());
    assert!(b.text("#verdict-title").contains("Not accepted"));

    // Chinese, same screen.
    b.goto(&format!("{}/?lang=zh-CN", d.base));
    b.wait_text("h1", "收银核销");
    b.wait_text("#basket-total", "20.00");
    b.wait_live();
    scanner.scan(&profile, &t.code("PAGE-3", "DINING"), None);
    b.wait_text("#verdict-detail", "未达到最低消费金额");
    b.assert_no_horizontal_scroll();
    b.screenshot("cashier-refused-zh-800x480");
    b.click("#cancel");
    b.accept_alert();
    b.wait_text("#no-checkout", "本单已取消");

    b.assert_same_origin(&d.base);
    assert_eq!(b.console_errors(), Vec::<String>::new());
    b.close();
}

#[test]
fn cashier_screen_fits_from_800x480_to_1920x1080() {
    let t = TestTerminal::with_ruleset();
    let d = Daemon::start(&t, &[]);
    for (w, h) in [(800, 480), (1024, 600), (1280, 800), (1920, 1080)] {
        let Some(b) = Browser::start(w, h) else { return };
        b.goto(&cashier_link(&t));
        b.wait_text("h1", "Checkout");
        b.type_into("#basket", "58.50");
        b.click("#open-button");
        b.wait_text("#basket-total", "58.50");
        b.type_into("#code", &format!("{}\n", t.code(&format!("FIT-{w}"), "DINING")));
        b.wait_text("#verdict-title", "Accepted");
        b.assert_no_horizontal_scroll();
        b.screenshot(&format!("cashier-{w}x{h}"));
        b.click("#paid");
        b.wait_text("#no-checkout", "Sale paid");
        b.close();
    }
    drop(d);
}

fn set_pin(t: &TestTerminal, pin: &str) {
    let r = t.run_with_stdin(&["manager-pin", "set"], Some(format!("{pin}\n").as_bytes()));
    assert_eq!(r.code, 0, "manager-pin set: {}", r.stderr);
}

#[test]
fn manager_page_login_chart_csv_void_and_lockout() {
    let t = TestTerminal::with_ruleset();
    set_pin(&t, "246810");
    let d = Daemon::start(&t, &[]);
    // A few sales through the till's API.
    for (i, basket) in [5800, 12000, 4000].into_iter().enumerate() {
        let id = d.open_checkout(basket);
        let record = d.present(&id, &t.code(&format!("MGR-{i}"), "DINING"));
        assert_eq!(record["decision"], "accepted");
    }
    let Some(b) = Browser::start(1280, 900) else { return };
    b.goto(&format!("{}/manager", d.base));
    b.wait_text("h1", "Manager");

    // A wrong PIN is refused on the page.
    b.type_into("#pin", "111111");
    b.click("#login-form button");
    b.wait_text("#login-error", "Wrong PIN");
    let _ = b.console_errors(); // the refused PIN's 401 is logged; expected
    b.type_into("#pin", "246810");
    b.click("#login-form button");
    b.wait_text("#total-coupons", "3");
    b.wait_text("#leverage", "each 1.00 of subsidy brought 7.27 of sales");

    // The chart's bars are the report's hours.
    let report = d.get("/v1/reports/daily").json();
    let bars = b
        .js("return [...document.querySelectorAll('#chart rect.bar')].map(r => [Number(r.dataset.hour), Number(r.dataset.count)])")
        ;
    let bars = bars.as_array().unwrap();
    assert_eq!(bars.len(), 24);
    for bar in bars {
        let (hour, count) = (bar[0].as_i64().unwrap(), bar[1].as_u64().unwrap());
        let expected = report["hours"]
            .as_array()
            .unwrap()
            .iter()
            .find(|h| h["hour"] == hour)
            .map_or(0, |h| h["redemptions"].as_u64().unwrap());
        assert_eq!(count, expected, "bar of hour {hour}");
    }
    // The CSV the page links to is the API's.
    let href = b.js("return document.getElementById('csv').getAttribute('href')");
    let from_page = b
        .js(&format!("return await (await fetch({href})).text()", href = Value::String(href.as_str().unwrap().into())));
    let date = report["date"].as_str().unwrap();
    let from_api = d.get(&format!("/v1/reports/daily?date={date}&format=csv")).text;
    assert_eq!(from_page.as_str().unwrap(), from_api);
    b.screenshot("manager-en");

    // doctor's findings on demand.
    b.click("#doctor-run");
    b.wait_text("#doctor", "config:");

    // A void from the page shows up in the report.
    let first = report["redemptions"][0]["redemption_id"].as_str().unwrap().to_owned();
    b.type_into(&format!("tr[data-redemption='{first}'] input[name=reason]"), "customer returned the goods");
    b.click(&format!("tr[data-redemption='{first}'] button"));
    b.accept_alert();
    b.wait_text("#total-voids", "1");
    let after = d.get("/v1/reports/daily").json();
    assert_eq!(after["totals"]["voids"], 1);
    assert_eq!(after["redemptions"][0]["voided"], true);

    b.goto(&format!("{}/manager?lang=zh-CN", d.base));
    b.wait_text("h1", "店长");
    b.wait_text("#leverage", "每 1.00 元补贴带动");
    b.assert_same_origin(&d.base);
    assert_eq!(b.console_errors(), Vec::<String>::new());
    b.screenshot("manager-zh");

    // Five wrong PINs lock the login, even for the right PIN.
    b.click("form[action='/manager/logout'] button");
    for _ in 0..5 {
        b.type_into("#pin", "000000");
        b.click("#login-form button");
        b.wait_text("#login-error", "");
    }
    b.type_into("#pin", "246810");
    b.click("#login-form button");
    b.wait_text("#login-error", "五分钟");
    b.close();
}

#[test]
fn interactive_demo_scans_a_sample_and_forwards_it() {
    let dir = tempfile::tempdir().unwrap();
    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let mut child = std::process::Command::new(common::binary())
        .args(["demo", "--listen", &format!("127.0.0.1:{port}"), "--language", "en", "--dir"])
        .arg(dir.path().join("demo"))
        .env("REDEEMD_LOG", "warn")
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    struct Kill(std::process::Child);
    impl Drop for Kill {
        fn drop(&mut self) {
            let _ = self.0.kill();
            let _ = self.0.wait();
        }
    }
    let stdout = child.stdout.take().unwrap();
    let child = Kill(child);
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        use std::io::BufRead;
        for line in std::io::BufReader::new(stdout).lines().map_while(Result::ok) {
            let _ = tx.send(line);
        }
    });
    let deadline = Instant::now() + Duration::from_secs(30);
    let (mut link, mut pin) = (None, None);
    while link.is_none() || pin.is_none() {
        let line =
            rx.recv_timeout(deadline.saturating_duration_since(Instant::now())).expect("the demo prints its links");
        if let Some(i) = line.find("http://") {
            if line.contains("/cashier/open") {
                link = Some(line[i..].trim().to_owned());
            }
        }
        // "3. manager's page: http://…/manager   PIN 123456"
        if line.contains("/manager") {
            if let Some(p) = line.split("PIN ").nth(1) {
                pin = Some(p.trim().to_owned());
            }
        }
    }
    let base = format!("http://127.0.0.1:{port}");
    let deadline = Instant::now() + Duration::from_secs(30);
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(Instant::now() < deadline, "the demo never listened");
        std::thread::sleep(Duration::from_millis(50));
    }
    let Some(b) = Browser::start(1280, 800) else { return };
    b.goto(&link.unwrap());
    b.wait_text("h1", "Checkout");
    b.wait_text("#st-scanner", "connected");
    b.type_into("#basket", "58");
    b.click("#open-button");
    b.wait_text("#basket-total", "58.00");

    b.goto(&format!("{base}/demo"));
    b.wait_text("h1", "Demo");
    b.wait_live();
    b.click("button.sample[data-sample='3']"); // expired
    b.wait_text("#verdict-detail", "valid until");
    b.screenshot("demo");
    b.click("button.sample[data-sample='1']");
    b.wait_text("#verdict-detail", "10.00 off");
    b.goto(&format!("{base}/"));
    b.wait_text("#decisions", "10.00 off");
    b.click("#paid");
    b.wait_text("#no-checkout", "Sale paid");
    b.type_into("#basket", "45");
    b.click("#open-button");
    b.wait_text("#basket-total", "45.00");
    b.goto(&format!("{base}/demo"));
    b.wait_live();
    b.click("button.sample[data-sample='5']"); // used elsewhere: accepted here, conflict upstream
    b.goto(&format!("{base}/"));
    b.wait_text("#decisions", "10.00 off");
    b.click("#paid");
    b.wait_text("#no-checkout", "Sale paid");
    b.type_into("#basket", "50");
    b.click("#open-button");
    b.wait_text("#basket-total", "50.00");
    // CP2: the screenshot of an old live code is refused, the live one accepted.
    b.goto(&format!("{base}/demo"));
    b.wait_live();
    b.click("button.sample[data-sample='7']");
    b.wait_text("#verdict-detail", "Live code expired");
    b.click("button.sample[data-sample='6']");
    b.wait_text("#verdict-detail", "10.00 off");
    b.goto(&format!("{base}/manager"));
    b.type_into("#pin", &pin.unwrap());
    b.click("#login-form button");
    b.wait_text("#total-coupons", "");
    // The demo upstream answers: forwarded, and the copy of a used coupon is a conflict.
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        b.goto(&format!("{base}/manager"));
        let text = b.text("#redemptions");
        if text.contains("forwarded") && text.contains("conflict") && text.contains("dynamic") {
            break;
        }
        assert!(Instant::now() < deadline, "states never moved on: {text}");
        std::thread::sleep(Duration::from_millis(500));
    }
    b.screenshot("demo-manager");
    assert_eq!(b.console_errors(), Vec::<String>::new());
    b.close();
    drop(child);
}
