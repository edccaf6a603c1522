//! The cashier screen's issue-20 behaviour in a real browser (headless chromium via
//! chromedriver) against the real daemon: the end of every sale (a summary, no verdict
//! left), a scan on the pty with no sale open, and the correction of a sale's amounts.
//! Screenshots land in `target/screenshots/`.

mod common;

use common::browser::Browser;
use common::daemon::Daemon;
use common::scanner::Emulator;
use common::TestTerminal;

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
fn every_sale_and_every_scan_ends_clearly_in_both_languages() {
    let t = TestTerminal::with_ruleset();
    let (profile_path, profile) = scanner_profile(&t);
    let link_path = t.dir.path().join("scanner");
    let mut scanner = Emulator::plug(&link_path);
    let d = Daemon::start(&t, &["--scanner", link_path.to_str().unwrap(), "--profile", &profile_path]);
    let Some(b) = Browser::start(800, 480) else { return };
    b.goto(&cashier_link(&t));
    b.goto(&format!("{}/?lang=zh-CN", d.base));
    b.wait_text("h1", "收银核销");
    b.wait_live();

    // A scan with no sale open: the screen says to start one.
    assert!(!b.visible("#scan-notice"));
    scanner.scan(&profile, &t.code("END-0", "DINING"), None);
    b.wait_text("#scan-notice", "请先开始一单");
    b.screenshot("cashier-scan-without-sale-zh-800x480");

    // Paid: the verdict goes, the summary says what was taken.
    b.type_into("#basket", "58");
    b.click("#open-button");
    b.wait_text("#basket-total", "58.00");
    assert!(!b.visible("#scan-notice"), "a sale clears the notice");
    b.type_into("#code", &format!("{}\n", t.code("END-1", "DINING")));
    b.wait_text("#verdict-title", "核销成功");
    b.click("#paid");
    b.wait_text("#no-checkout", "已收款 48.00");
    assert!(!b.visible("#verdict"), "the paid sale's verdict is cleared");
    b.screenshot("cashier-paid-summary-zh-800x480");

    // Cancelled with a coupon: it is returned.
    b.type_into("#basket", "58");
    b.click("#open-button");
    b.wait_text("#basket-total", "58.00");
    b.type_into("#code", &format!("{}\n", t.code("END-2", "DINING")));
    b.wait_text("#verdict-title", "核销成功");
    b.click("#cancel");
    b.accept_alert();
    b.wait_text("#no-checkout", "本单已取消，券已退回");
    assert!(!b.visible("#verdict"));

    // The same in English.
    b.goto(&format!("{}/?lang=en", d.base));
    b.wait_text("h1", "Checkout");
    b.wait_live();
    scanner.scan(&profile, &t.code("END-3", "DINING"), None);
    b.wait_text("#scan-notice", "start a sale first");
    b.type_into("#basket", "30");
    b.click("#open-button");
    b.wait_text("#basket-total", "30.00");
    b.click("#paid");
    b.wait_text("#no-checkout", "Sale paid: 30.00 received");
    b.screenshot("cashier-paid-summary-en-800x480");

    b.assert_same_origin(&d.base);
    assert_eq!(b.console_errors(), Vec::<String>::new());
    b.close();
}

/// `redeemd demo` on a free port: the process (killed on drop), its base URL and its
/// one-time cashier link.
pub struct Demo {
    child: std::process::Child,
    pub base: String,
    pub link: String,
    _dir: tempfile::TempDir,
}

impl Drop for Demo {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn start_demo(language: &str) -> Demo {
    let dir = tempfile::tempdir().unwrap();
    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let listen = format!("127.0.0.1:{port}");
    let (child, rx) = common::spawn_demo(&["--listen", &listen, "--language", language], &dir.path().join("demo"));
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    let link = loop {
        let line = rx
            .recv_timeout(deadline.saturating_duration_since(std::time::Instant::now()))
            .expect("the demo prints its links");
        if let (Some(i), true) = (line.find("http://"), line.contains("/cashier/open")) {
            break line[i..].trim().to_owned();
        }
    };
    Demo { child, base: format!("http://127.0.0.1:{port}"), link, _dir: dir }
}

#[test]
fn every_error_in_the_cashiers_language_with_what_to_do() {
    let t = TestTerminal::with_ruleset();
    let (profile_path, profile) = scanner_profile(&t);
    let link_path = t.dir.path().join("scanner");
    let mut scanner = Emulator::plug(&link_path);
    let mut d = Daemon::start(&t, &["--scanner", link_path.to_str().unwrap(), "--profile", &profile_path]);
    let Some(b) = Browser::start(800, 480) else { return };
    let link = cashier_link(&t);
    b.goto(&link);
    for (lang, eligible, reused, short, unreachable) in [
        ("en", "cannot be more than the basket total", "This cashier link no longer works", "", ""),
        (
            "zh-CN",
            "可用券金额不能大于订单金额",
            "这个收银链接已失效",
            "最低消费 40.00 元，还差 20.00 元",
            "连接不上核销服务",
        ),
    ] {
        b.goto(&format!("{}/?lang={lang}", d.base));
        b.wait_live();
        // Eligible above the basket: refused on the page, and the daemon's 400 in words too.
        b.type_into("#basket", "10");
        b.type_into("#eligible", "11");
        b.click("#open-button");
        b.wait_text("#open-error", eligible);
        let answer = b.js(
            "return api('POST', '/v1/checkouts', {basket_total: 10, eligible_total: 11}).then(() => 'ok', (e) => e.message)",
        );
        assert!(answer.as_str().unwrap().contains(eligible), "{answer}");
        b.screenshot(&format!("cashier-error-eligible-{lang}-800x480"));
        // A reused one-time link: a page in the language, not JSON.
        b.goto(&link);
        b.wait_text("#notice h1", reused);
        assert!(b.text("#notice").contains("redeemd cashier-url"));
        let _ = b.console_errors(); // the refused link's 401 is logged; expected
        b.screenshot(&format!("cashier-link-used-{lang}"));
        if lang == "zh-CN" {
            // The terminal speaks English; the Chinese page keeps the advice's details.
            b.goto(&format!("{}/?lang={lang}", d.base));
            b.wait_live();
            b.type_into("#basket", "20");
            b.click("#open-button");
            b.wait_text("#basket-total", "20.00");
            scanner.scan(&profile, &t.code("ERR-1", "DINING"), None);
            b.wait_text("#verdict-detail", short);
            // The daemon gone: the page says so in words and does not claim what it cannot know.
            d.kill9();
            b.type_into("#code", "SOMETHING\n");
            b.wait_text("#code-error", unreachable);
            b.screenshot("cashier-error-unreachable-zh-800x480");
        }
    }
    let _ = b.console_errors();
    b.close();
}

#[test]
fn the_demo_before_the_cashier_link_is_a_page_in_the_language() {
    let demo = start_demo("zh-CN");
    let Some(b) = Browser::start(800, 480) else { return };
    b.goto(&format!("{}/demo", demo.base));
    b.wait_text("#notice h1", "请先打开收银链接");
    assert!(b.text("#notice").contains("redeemd cashier-url"));
    let styled = b.js("return getComputedStyle(document.querySelector('#notice')).borderRadius");
    assert_ne!(styled.as_str(), Some("0px"), "styled as the pages are");
    b.screenshot("demo-before-link-zh");
    let _ = b.console_errors();
    b.goto(&demo.link);
    b.goto(&format!("{}/demo", demo.base));
    b.wait_text("h1", "演示");
    b.close();
}

#[test]
fn the_basket_limit_names_the_coupon_that_holds_it() {
    let demo = start_demo("zh-CN");
    let Some(b) = Browser::start(1280, 800) else { return };
    b.goto(&demo.link);
    b.wait_text("h1", "收银核销");
    b.wait_text("#st-scanner", "已连接");
    b.type_into("#basket", "58");
    b.click("#open-button");
    b.wait_text("#basket-total", "58.00");
    b.goto(&format!("{}/demo", demo.base));
    b.wait_text("main p", "每单限用 1 张券");
    b.wait_live();
    b.click("button.sample[data-sample='1']");
    b.wait_text("#verdict-title", "核销成功");
    b.click("button.sample[data-sample='6']"); // the live code: the basket is full
    let words = b.wait_text("#verdict-detail", "每单限用 1 张，本单已用：");
    println!("basket limit: {words}");
    assert!(words.contains("−10.00"), "{words}");
    assert!(!words.contains("本单可用券数量已达上限"), "{words}");
    b.goto(&format!("{}/", demo.base));
    b.wait_text("#decisions", "每单限用 1 张，本单已用：");
    b.screenshot("cashier-basket-limit-zh-1280x800");
    // The English page words it in English, with the campaign's English name.
    b.goto(&format!("{}/?lang=en", demo.base));
    let english = b.wait_text("#decisions", "1 coupon(s) per sale; this sale already holds: ");
    println!("basket limit (en): {english}");
    b.screenshot("cashier-basket-limit-en-1280x800");
    assert_eq!(b.console_errors(), Vec::<String>::new());
    b.close();
}

/// The bounding box of an element: [left, top, right, bottom, width, height].
fn rect(b: &Browser, css: &str) -> Vec<f64> {
    let v = b.js(&format!(
        "const r = document.querySelector({css:?}).getBoundingClientRect(); return [r.left, r.top, r.right, r.bottom, r.width, r.height]"
    ));
    v.as_array().unwrap().iter().map(|x| x.as_f64().unwrap()).collect()
}

fn assert_touch_target(b: &Browser, css: &str) {
    let r = rect(b, css);
    assert!(r[4] >= 44.0 && r[5] >= 44.0, "{css} is {}x{} px, under 44", r[4], r[5]);
}

#[test]
fn mistakes_are_hard_and_fixes_easy() {
    let t = TestTerminal::with_ruleset();
    let mut d = Daemon::start(&t, &[]);
    let Some(b) = Browser::start(800, 480) else { return };
    b.goto(&cashier_link(&t));
    b.goto(&format!("{}/?lang=zh-CN", d.base));
    b.wait_text("h1", "收银核销");
    b.wait_live();

    // The header stays on one line at 800x480.
    let (h1, lang) = (rect(&b, "h1"), rect(&b, "#lang-switch"));
    assert!((h1[1] - lang[1]).abs() < 30.0 && rect(&b, "header")[5] < 70.0, "the header wraps: {h1:?} {lang:?}");
    // The placeholder does not look like a typed amount.
    let looks = b.js(
        "const e = document.querySelector('#basket'); return [getComputedStyle(e).color, getComputedStyle(e, '::placeholder').color, getComputedStyle(e, '::placeholder').fontStyle]",
    );
    assert_ne!(looks[0], looks[1], "{looks}");
    assert_eq!(looks[2], "italic", "{looks}");
    assert!(b.js("return document.querySelector('#basket').placeholder").as_str().unwrap().contains("例如"));
    for css in ["#basket", "#eligible", "#open-button", "#lang-switch", "#sound-label"] {
        assert_touch_target(&b, css);
    }

    // A refused attempt clears the eligible amount.
    b.type_into("#basket", "10");
    b.type_into("#eligible", "11");
    b.click("#open-button");
    b.wait_text("#open-error", "可用券金额不能大于订单金额");
    assert_eq!(b.js("return document.querySelector('#eligible').value"), "");

    // An unusually large amount asks first.
    b.type_into("#basket", "58000");
    b.click("#open-button");
    b.accept_alert();
    b.wait_text("#basket-total", "58000.00");
    for css in ["#code", "#code-button", "#edit-amounts", "#paid", "#cancel"] {
        assert_touch_target(&b, css);
    }
    let (paid, cancel) = (rect(&b, "#paid"), rect(&b, "#cancel"));
    let apart_x = (cancel[0] - paid[2]).max(paid[0] - cancel[2]);
    let apart_y = (cancel[1] - paid[3]).max(paid[1] - cancel[3]);
    assert!(apart_x >= 8.0 || apart_y >= 8.0, "paid {paid:?} and cancel {cancel:?} are within 8 px");
    b.screenshot("cashier-touch-targets-zh-800x480");

    // The slip corrected while the sale holds no coupon.
    b.click("#edit-amounts");
    b.type_into("#new-basket", "58");
    b.click("#amounts-save");
    b.wait_text("#basket-total", "58.00");
    assert!(b.text("#basket-total").starts_with("58.00"));
    b.type_into("#code", &format!("{}\n", t.code("FIX-1", "DINING")));
    b.wait_text("#verdict-title", "核销成功");
    b.wait_text("#to-pay", "48.00");
    // With a coupon: cancel and start again.
    b.click("#edit-amounts");
    b.wait_text("#amounts-locked", "请取消本单");
    assert!(!b.visible("#new-basket"));
    b.screenshot("cashier-amounts-locked-zh-800x480");
    let answer = b.js(
        "return api('POST', '/v1/checkouts/' + current.checkout_id + '/amounts', {basket_total: 100}).then(() => 'ok', (e) => e.message)",
    );
    assert!(answer.as_str().unwrap().contains("请取消本单"), "{answer}");

    // The daemon gone: the strip claims neither the scanner nor the network.
    d.kill9();
    b.wait_text("#st-scanner", "状态未知");
    b.wait_text("#st-sync", "状态未知");
    assert!(!b.text("#st-sync").contains("在线"));
    b.screenshot("cashier-daemon-gone-zh-800x480");
    let _ = b.console_errors();
    b.close();
}

#[test]
fn sound_is_on_by_default_with_two_tones_and_remembered() {
    let t = TestTerminal::with_ruleset();
    let d = Daemon::start(&t, &[]);
    let Some(b) = Browser::start(800, 480) else { return };
    b.goto(&cashier_link(&t));
    b.wait_text("h1", "Checkout");
    b.wait_live();
    assert_eq!(b.js("return document.querySelector('#sound').checked"), true, "on by default");
    b.type_into("#basket", "58");
    b.click("#open-button");
    b.wait_text("#basket-total", "58.00");
    let code = t.code("SOUND-1", "DINING");
    b.type_into("#code", &format!("{code}\n"));
    b.wait_text("#verdict-title", "Accepted");
    assert_eq!(b.js("return document.body.dataset.tone"), "accept");
    b.type_into("#code", &format!("{code}\n"));
    b.wait_text("#verdict-title", "Not accepted");
    assert_eq!(b.js("return document.body.dataset.tone"), "refuse");
    // Turned off: remembered on this terminal across a reload, and silent.
    b.click("#sound");
    b.goto(&format!("{}/", d.base));
    b.wait_live();
    assert_eq!(b.js("return document.querySelector('#sound').checked"), false, "the setting is remembered");
    b.type_into("#code", &format!("{code}\n"));
    b.wait_text("#verdict-title", "Not accepted");
    assert_eq!(b.js("return document.body.dataset.tone || null"), serde_json::Value::Null, "silent when off");
    assert_eq!(b.console_errors(), Vec::<String>::new());
    b.close();
}
