//! The manager's pages (issue 20) in a real browser (headless chromium via chromedriver)
//! against the real daemon: voids that explain themselves (reason and who, struck
//! through and out of the totals, in the JSON report and the command line's table too)
//! the leverage explained in one line, and conflicts flagged where the totals are. Screenshots land in `target/screenshots/`,
//! the key ones are copied to `docs/screenshots/`.

mod common;

use common::browser::Browser;
use common::daemon::Daemon;
use common::upstream::TestUpstream;
use common::TestTerminal;
use serde_json::Value;
use std::path::Path;

fn set_pin(t: &TestTerminal, pin: &str) {
    let r = t.run_with_stdin(&["manager-pin", "set"], Some(format!("{pin}\n").as_bytes()));
    assert_eq!(r.code, 0, "manager-pin set: {}", r.stderr);
}

fn login(b: &Browser, base: &str, lang: &str) {
    common::browser::manager_login(b, base, lang, "246810")
}

fn keep(shot: &Path) {
    common::browser::keep(shot)
}

fn line<'a>(report: &'a Value, id: &str) -> &'a Value {
    report["redemptions"].as_array().unwrap().iter().find(|r| r["redemption_id"] == id).unwrap()
}

#[test]
fn voids_carry_their_reason_and_who_struck_through_and_out_of_the_totals() {
    let t = TestTerminal::with_ruleset();
    set_pin(&t, "246810");
    let d = Daemon::start(&t, &[]);
    let mut ids = Vec::new();
    for (i, basket) in [5800, 12000, 4000].into_iter().enumerate() {
        let id = d.open_checkout(basket);
        let record = d.present(&id, &t.code(&format!("VOID-{i}"), "DINING"));
        assert_eq!(record["decision"], "accepted");
        ids.push(record["redemption_id"].as_str().unwrap().to_owned());
    }
    // The till voids one with a reason.
    let r = d.post(&format!("/v1/redemptions/{}/void", ids[0]), r#"{"reason": "wrong coupon scanned"}"#);
    assert_eq!(r.status, 200, "{}", r.text);
    // A sale cancelled with its coupon on it.
    let cancelled = d.open_checkout(6000);
    let record = d.present(&cancelled, &t.code("VOID-C", "DINING"));
    let cancelled_redemption = record["redemption_id"].as_str().unwrap().to_owned();
    let r = d.post(&format!("/v1/checkouts/{cancelled}/close"), r#"{"status": "cancelled"}"#);
    assert_eq!(r.status, 200, "{}", r.text);

    let report = d.get("/v1/reports/daily").json();
    assert_eq!(line(&report, &ids[0])["void_reason"], "wrong coupon scanned");
    assert_eq!(line(&report, &ids[0])["voided_by"], "till");
    assert_eq!(line(&report, &cancelled_redemption)["void_reason"], "checkout cancelled");
    assert_eq!(line(&report, &cancelled_redemption)["voided_by"], "checkout");
    assert_eq!(line(&report, &ids[1])["void_reason"], Value::Null);
    assert_eq!(line(&report, &ids[1])["voided_by"], Value::Null);
    // Every field the spec lists is still there.
    for field in ["redemption_id", "coupon_id", "campaign_id", "discount", "basket_total", "eligible_total", "at"] {
        assert!(line(&report, &ids[1]).get(field).is_some(), "{field}");
    }
    assert_eq!(report["totals"]["redemptions"], 2);
    assert_eq!(report["totals"]["voids"], 2);

    let Some(b) = Browser::start(1280, 900) else { return };
    login(&b, &d.base, "en");
    b.wait_text("#total-coupons", "2");
    b.wait_text("#total-discount", "20.00");
    b.wait_text(
        "#leverage-explained",
        "basket totals ÷ discount: the sales per 1.00 of subsidy, the coupon itself included",
    );
    let till_row = format!("tr[data-redemption='{}']", ids[0]);
    b.wait_text(&format!("{till_row} .void-by"), "till (POS)");
    b.wait_text(&format!("{till_row} .void-reason"), "wrong coupon scanned");
    b.wait_text(&till_row, "not in the totals");
    b.wait_text(&format!("tr[data-redemption='{cancelled_redemption}'] .void-by"), "cancelled sale");
    // Struck through, except the cell that says who and why.
    let styles = b.js(&format!(
        "const r = document.querySelector(\"{till_row}\");
         return [getComputedStyle(r.cells[1]).textDecorationLine, getComputedStyle(r.querySelector('.void-info')).textDecorationLine]"
    ));
    assert_eq!(styles[0], "line-through", "{styles}");
    assert_eq!(styles[1], "none", "{styles}");
    let live_row = format!("tr[data-redemption='{}']", ids[1]);
    let live =
        b.js(&format!("return getComputedStyle(document.querySelector(\"{live_row}\").cells[1]).textDecorationLine"));
    assert_eq!(live, "none");

    // The manager voids another from the page.
    b.type_into(&format!("{live_row} input[name=reason]"), "customer returned the goods");
    b.click(&format!("{live_row} button"));
    b.accept_alert();
    b.wait_text("#total-voids", "3");
    b.wait_text(&format!("{live_row} .void-by"), "manager");
    b.wait_text(&format!("{live_row} .void-reason"), "customer returned the goods");
    let report = d.get("/v1/reports/daily").json();
    assert_eq!(line(&report, &ids[1])["voided_by"], "manager");
    assert_eq!(line(&report, &ids[1])["void_reason"], "customer returned the goods");
    b.js("document.getElementById('redemptions').scrollIntoView(); return 0");
    keep(&b.screenshot("manager-voids-en"));

    // In Chinese: who and why in words, the leverage explained.
    b.goto(&format!("{}/manager?lang=zh-CN", d.base));
    b.wait_text(&format!("{till_row} .void-by"), "收银系统");
    b.wait_text(&format!("tr[data-redemption='{cancelled_redemption}'] .void-by"), "收银取消订单");
    b.wait_text(&format!("{live_row} .void-by"), "店长");
    b.wait_text("#leverage-explained", "订单金额合计 ÷ 优惠金额：每 1 元补贴对应的消费额，含券本身");
    b.assert_same_origin(&d.base);
    assert_eq!(b.console_errors(), Vec::<String>::new());
    b.js("document.getElementById('redemptions').scrollIntoView(); return 0");
    keep(&b.screenshot("manager-voids-zh"));
    b.close();
}

#[test]
fn the_command_line_void_is_recorded_as_the_command_line() {
    let t = TestTerminal::with_ruleset();
    let first = t.run(&["redeem", &t.code("CLI-V", "DINING"), "--amount", "58", "--json"]);
    assert_eq!(first.code, 0, "{}", first.stderr);
    let id = first.json()["redemption_id"].as_str().unwrap().to_owned();
    let void = t.run(&["void", &id, "--reason", "test sale"]);
    assert_eq!(void.code, 0, "{}", void.stderr);
    let report = t.run(&["report", "daily", "--format", "json"]).json();
    assert_eq!(line(&report, &id)["voided_by"], "command_line");
    assert_eq!(line(&report, &id)["void_reason"], "test sale");
    // The table for people says who and why, in the terminal's language.
    let table = t.run(&["report", "daily"]);
    assert!(
        table.stdout.contains("command line: test sale") || table.stdout.contains("命令行: test sale"),
        "{}",
        table.stdout
    );
}

/// A terminal provisioned against the test upstream, whose redemptions went upstream
/// with `conflict` for one coupon and `rejected` for another.
#[test]
fn conflicts_are_flagged_next_to_the_totals_with_upstreams_words() {
    let up = TestUpstream::start();
    let t = TestTerminal::bare(21);
    up.set_ruleset_keys(&t.issuer.trust_anchors_json());
    let payload = t.issuer.ruleset_payload(3, jiff::Timestamp::now(), &["DINING", "GROCERY"], &[]);
    up.set_ruleset(&t.issuer.sign_ruleset(&payload));
    up.add_code("GOOD-CODE");
    let r = t.provision(&up.url, &up.ca_pem, "GOOD-CODE");
    assert_eq!(r.code, 0, "provision: {}", r.stderr);
    set_pin(&t, "246810");
    up.verdict(
        "DOUBLE-1",
        serde_json::json!({"status": "conflict", "redeemed_by": "T-0007", "redeemed_at": "2026-11-28T11:00:00+08:00"}),
    );
    up.verdict("BAD-1", serde_json::json!({"status": "rejected", "reason": "revoked"}));
    let mut ids = Vec::new();
    for coupon in ["DOUBLE-1", "BAD-1", "FINE-1"] {
        let r = t.run(&["redeem", &t.code(coupon, "DINING"), "--amount", "58", "--json"]);
        assert_eq!(r.code, 0, "redeem {coupon}: {}", r.stderr);
        ids.push(r.json()["redemption_id"].as_str().unwrap().to_owned());
    }
    let r = t.run(&["sync", "--once"]);
    assert_eq!(r.code, 0, "sync: {}{}", r.stdout, r.stderr);

    let d = Daemon::start(&t, &[]);
    let Some(b) = Browser::start(1280, 900) else { return };
    login(&b, &d.base, "zh-CN");
    b.wait_text("#check-summary", "需核查 2 笔 / 20.00");
    b.wait_text(&format!("#flagged li[data-redemption='{}']", ids[0]), "终端 T-0007");
    b.wait_text(&format!("#flagged li[data-redemption='{}']", ids[1]), "服务器拒收：revoked");
    assert!(b
        .js(&format!("return !document.querySelector(\"#flagged li[data-redemption='{}']\")", ids[2]))
        .as_bool()
        .unwrap());
    // Each links to its row, which says the same.
    let href = b.js(&format!(
        "return document.querySelector(\"#flagged li[data-redemption='{}'] a\").getAttribute('href')",
        ids[0]
    ));
    assert_eq!(href, format!("#r-{}", ids[0]));
    b.wait_text(&format!("#r-{} .upstream-message", ids[0]), "2026-11-28T11:00:00+08:00");
    keep(&b.screenshot("manager-check-zh"));
    b.click(&format!("#flagged li[data-redemption='{}'] a", ids[1]));
    let target = b.js("return location.hash");
    assert_eq!(target, format!("#r-{}", ids[1]));
    b.goto(&format!("{}/manager?lang=en", d.base));
    b.wait_text("#check-summary", "To check: 2 · 20.00");
    b.wait_text(&format!("#flagged li[data-redemption='{}']", ids[1]), "upstream refused it: revoked");
    assert_eq!(b.console_errors(), Vec::<String>::new());
    b.close();
}

#[test]
fn todays_page_follows_new_redemptions_live_and_an_empty_past_day_says_so() {
    let t = TestTerminal::with_ruleset();
    set_pin(&t, "246810");
    let d = Daemon::start(&t, &[]);
    let Some(b) = Browser::start(1280, 900) else { return };
    login(&b, &d.base, "zh-CN");
    b.wait_text("#total-coupons", "0");
    // No redemption yet today: the tables show an empty row.
    b.wait_text("#redemptions tr.empty", "无");
    b.wait_live();
    b.js("window.notReloaded = true; return 0");

    // A sale at the till: the page shows it without a reload.
    let checkout = d.open_checkout(5800);
    let record = d.present(&checkout, &t.code("LIVE-1", "DINING"));
    let id = record["redemption_id"].as_str().unwrap().to_owned();
    b.wait_text("#total-coupons", "1");
    b.wait_text(&format!("tr[data-redemption='{id}']"), "LIVE-1");
    b.wait_text("#total-discount", "10.00");
    assert_eq!(b.js("return window.notReloaded === true"), Value::Bool(true), "the page reloaded");
    assert!(b.js("return !document.querySelector('#redemptions tr.empty')").as_bool().unwrap());
    // The void form of a row the refresh brought works too (one listener for all).
    b.type_into(&format!("tr[data-redemption='{id}'] input[name=reason]"), "测试");
    b.click(&format!("tr[data-redemption='{id}'] button"));
    b.accept_alert();
    b.wait_text(&format!("tr[data-redemption='{id}'] .void-reason"), "测试");
    b.wait_text("#total-voids", "1");

    // A past day without data says so.
    b.goto(&format!("{}/manager?date=2026-01-01", d.base));
    b.wait_text("#empty-day", "该日无核销");
    b.wait_text("#redemptions tr.empty", "无");
    b.wait_text("#campaigns tr.empty", "无");
    assert!(b.js("return document.getElementById('manager').dataset.livePage === '0'").as_bool().unwrap());
    assert_eq!(b.console_errors(), Vec::<String>::new());
    keep(&b.screenshot("manager-empty-day-zh"));
    b.close();
}

/// A minimal RFC 4180 reader for the test: rows of cells.
fn parse_csv(text: &str) -> Vec<Vec<String>> {
    let (mut rows, mut row, mut cell) = (Vec::new(), Vec::new(), String::new());
    let mut chars = text.chars().peekable();
    let mut quoted = false;
    while let Some(c) = chars.next() {
        match (quoted, c) {
            (true, '"') if chars.peek() == Some(&'"') => {
                chars.next();
                cell.push('"');
            }
            (true, '"') => quoted = false,
            (true, c) => cell.push(c),
            (false, '"') => quoted = true,
            (false, ',') => row.push(std::mem::take(&mut cell)),
            (false, '\r') => {}
            (false, '\n') => {
                row.push(std::mem::take(&mut cell));
                rows.push(std::mem::take(&mut row));
            }
            (false, c) => cell.push(c),
        }
    }
    rows
}

#[test]
fn the_spreadsheet_csv_has_a_bom_words_in_the_language_and_a_totals_row() {
    let t = TestTerminal::with_ruleset();
    set_pin(&t, "246810");
    let d = Daemon::start(&t, &[]);
    let mut ids = Vec::new();
    for (i, basket) in [5800, 12000].into_iter().enumerate() {
        let id = d.open_checkout(basket);
        let record = d.present(&id, &t.code(&format!("CSV-{i}"), "DINING"));
        ids.push(record["redemption_id"].as_str().unwrap().to_owned());
    }
    let r = d.post(&format!("/v1/redemptions/{}/void", ids[0]), r#"{"reason": "退货, \"整单\""}"#);
    assert_eq!(r.status, 200, "{}", r.text);
    let report = d.get("/v1/reports/daily").json();
    let date = report["date"].as_str().unwrap().to_owned();
    // The API's CSV is still the machine CSV, without a BOM.
    let machine = d.get(&format!("/v1/reports/daily?date={date}&format=csv")).text;
    assert!(machine.starts_with("redemption_id,at,coupon_id"), "{machine}");

    let Some(b) = Browser::start(1280, 900) else { return };
    login(&b, &d.base, "zh-CN");
    let fetch = |href: &str| {
        b.js(&format!(
            "const r = await fetch({href}); const bytes = new Uint8Array(await r.arrayBuffer());
             return [r.status, r.headers.get('content-type'), r.headers.get('content-disposition'),
                     Array.from(bytes.slice(0, 3)), new TextDecoder('utf-8', {{ignoreBOM: true}}).decode(bytes)]",
            href = Value::String(href.into())
        ))
    };
    let href = b.js("return document.getElementById('csv-sheet').getAttribute('href')");
    let got = fetch(href.as_str().unwrap());
    assert_eq!(got[0], 200, "{got}");
    assert!(got[1].as_str().unwrap().starts_with("text/csv"), "{got}");
    assert!(got[2].as_str().unwrap().contains(&format!("redeemd-{date}.csv")), "{got}");
    assert_eq!(got[3], serde_json::json!([0xef, 0xbb, 0xbf]), "UTF-8 BOM");
    let text = got[4].as_str().unwrap();
    let rows = parse_csv(text.trim_start_matches('\u{feff}'));
    assert_eq!(rows[0][..4], ["日期", "时间", "券号", "活动"], "{text}");
    assert_eq!(rows.len(), 4, "header, two rows, totals: {text}");
    let voided = rows.iter().find(|r| r.last() == Some(&ids[0])).unwrap();
    assert_eq!(voided[0], date);
    assert_eq!(voided[1].len(), 8, "HH:MM:SS {voided:?}");
    assert_eq!(voided[3], "DINING coupon");
    assert_eq!(voided[10], "是");
    assert_eq!(voided[11], "退货, \"整单\"", "{voided:?}");
    assert_eq!(voided[12], "收银系统（POS）");
    let live = rows.iter().find(|r| r.last() == Some(&ids[1])).unwrap();
    assert_eq!(live[9], "待上报");
    assert_eq!(live[10], "否");
    let totals = rows.last().unwrap();
    assert!(totals[0].starts_with("合计（1 笔"), "{totals:?}");
    assert_eq!(totals[5], "10.00", "the voided row is not in the totals");
    assert_eq!(totals[6], "120.00");

    // The month as one file; English stays available.
    let href = b.js("return document.getElementById('csv-month').getAttribute('href')");
    assert!(href.as_str().unwrap().contains("-01&to="), "{href}");
    let month = fetch(&href.as_str().unwrap().replace("lang=zh-CN", "lang=en"));
    let rows = parse_csv(month[4].as_str().unwrap().trim_start_matches('\u{feff}'));
    assert_eq!(rows[0][..3], ["Date", "Time", "Coupon"]);
    assert_eq!(rows.len(), 4);
    // A range over 62 days is refused.
    let refused = fetch("/manager/export.csv?from=2026-01-01&to=2026-12-31");
    assert_eq!(refused[0], 400);
    let _ = b.console_errors(); // the refused range's 400 is logged; expected
    b.close();
}

/// The sheet's pages in a PDF: its page objects (`/Type /Page`, not `/Pages`).
fn pdf_pages(pdf: &[u8]) -> usize {
    let text = String::from_utf8_lossy(pdf);
    text.match_indices("/Type /Page").filter(|(at, m)| !text[at + m.len()..].starts_with('s')).count()
}

/// Issue 20 item 10: the A4 daily sheet an accountant files. A provisioned terminal (the
/// shop's name from its enrollment), 50 redemptions with two voids and a conflict
/// upstream reported, printed to PDF in Chromium: one page, with the shop, the merchant
/// id, the leverage explained and a signature line, in both languages.
#[test]
fn the_daily_sheet_prints_a_normal_day_on_one_a4_page() {
    let up = TestUpstream::start();
    let t = TestTerminal::bare(22);
    up.set_ruleset_keys(&t.issuer.trust_anchors_json());
    let payload = t.issuer.ruleset_payload(3, jiff::Timestamp::now(), &["DINING", "GROCERY"], &[]);
    up.set_ruleset(&t.issuer.sign_ruleset(&payload));
    up.add_code("SHEET-CODE");
    let r = t.provision(&up.url, &up.ca_pem, "SHEET-CODE");
    assert_eq!(r.code, 0, "provision: {}", r.stderr);
    let config = std::fs::read_to_string(t.config()).unwrap();
    assert!(config.contains("merchant-name = \"Lianhua Qingchun\""), "{config}");
    set_pin(&t, "246810");
    up.verdict(
        "SHEET-DOUBLE",
        serde_json::json!({"status": "conflict", "redeemed_by": "T-0007", "redeemed_at": "2026-11-28T11:00:00+08:00"}),
    );
    let r = t.run(&["redeem", &t.code("SHEET-DOUBLE", "DINING"), "--amount", "58", "--json"]);
    assert_eq!(r.code, 0, "redeem: {}", r.stderr);
    let r = t.run(&["sync", "--once"]);
    assert_eq!(r.code, 0, "sync: {}{}", r.stdout, r.stderr);

    let d = Daemon::start(&t, &[]);
    let mut ids = Vec::new();
    for i in 0..49 {
        let id = d.open_checkout(5000 + i * 100);
        let campaign = if i % 3 == 0 { "GROCERY" } else { "DINING" };
        let record = d.present(&id, &t.code(&format!("SHEET-{i:02}"), campaign));
        assert_eq!(record["decision"], "accepted", "{record}");
        ids.push(record["redemption_id"].as_str().unwrap().to_owned());
    }
    for (id, reason) in [(&ids[3], "wrong coupon scanned"), (&ids[10], "customer returned the goods")] {
        let r = d.post(&format!("/v1/redemptions/{id}/void"), &serde_json::json!({"reason": reason}).to_string());
        assert_eq!(r.status, 200, "{}", r.text);
    }
    let report = d.get("/v1/reports/daily").json();
    assert_eq!(report["redemptions"].as_array().unwrap().len(), 50);

    let Some(b) = Browser::start(1280, 900) else { return };
    login(&b, &d.base, "zh-CN");
    b.wait_text("#sheet-link", "打印日报");
    let href = b.js("return document.getElementById('sheet-link').getAttribute('href')");
    assert!(href.as_str().unwrap().starts_with("/manager/sheet?date="), "{href}");
    b.goto(&format!("{}{}", d.base, href.as_str().unwrap()));
    b.wait_text("#sheet-shop", "Lianhua Qingchun");
    b.wait_text("#sheet-merchant", "M-000123");
    b.wait_text("#sheet-signature", "店长签字");
    b.wait_text("#sheet-leverage-explained", "订单金额合计 ÷ 优惠金额：每 1 元补贴对应的消费额，含券本身");
    b.wait_text("#sheet-voids", "customer returned the goods");
    b.wait_text("#sheet-voids", "收银系统");
    b.wait_text("#sheet-check", "终端 T-0007");
    // No technical blocks: no rule-set version, forwarding backlog, doctor, buttons in print.
    let body = b.text("body");
    assert!(!body.contains("规则集版本"), "{body}");
    assert_eq!(b.js("return document.querySelectorAll('tr.voided').length"), 2);
    b.assert_same_origin(&d.base);
    assert_eq!(b.console_errors(), Vec::<String>::new());
    let pdf = b.print_pdf();
    let dir = common::browser::screenshot_dir();
    std::fs::write(dir.join("daily-sheet-zh.pdf"), &pdf).unwrap();
    assert!(pdf.starts_with(b"%PDF"), "not a PDF");
    assert_eq!(pdf_pages(&pdf), 1, "50 redemptions must print on one A4 page");
    keep(&b.screenshot("daily-sheet-zh"));

    b.goto(&format!("{}{}", d.base, href.as_str().unwrap().replace("lang=zh-CN", "lang=en")));
    b.wait_text("#sheet-shop", "Lianhua Qingchun");
    b.wait_text("#sheet-merchant", "M-000123");
    b.wait_text("#sheet-signature", "Manager's signature");
    b.wait_text(
        "#sheet-leverage-explained",
        "basket totals ÷ discount: the sales per 1.00 of subsidy, the coupon itself included",
    );
    b.wait_text("#sheet-check", "T-0007");
    let pdf = b.print_pdf();
    std::fs::write(dir.join("daily-sheet-en.pdf"), &pdf).unwrap();
    assert_eq!(pdf_pages(&pdf), 1, "50 redemptions must print on one A4 page (English)");
    b.screenshot("daily-sheet-en");
    b.close();
}

/// Issue 20, item 2: a date the page cannot show is a page in the reader's language with
/// what to do, for the day view and the daily sheet alike; a script still gets the
/// spec's error shape.
#[test]
fn a_date_out_of_range_is_said_in_the_pages_language() {
    let t = TestTerminal::with_ruleset();
    set_pin(&t, "246810");
    let d = Daemon::start(&t, &[]);
    let form = ("content-type", "application/x-www-form-urlencoded");
    let login = d.request_as_is("POST", "/manager/login", Some("pin=246810"), &[form], false);
    assert_eq!(login.status, 303, "{}", login.text);
    let session = login.headers["set-cookie"].to_str().unwrap().split(';').next().unwrap().to_owned();
    for path in ["/manager?date=9999-12-31", "/manager/sheet?date=9999-12-31", "/manager?date=2026-13-01"] {
        for (lang, words) in [("zh-CN", "无法显示该日期"), ("en", "No such day")] {
            let headers = [("accept", "text/html"), ("cookie", session.as_str())];
            let page = d.request("GET", &format!("{path}&lang={lang}"), None, &headers);
            assert_eq!(page.status, 400, "{path}: {}", page.text);
            assert!(page.text.contains(words) && !page.text.contains("{\"error\""), "{path} {lang}: {}", page.text);
        }
        let script = d.request("GET", path, None, &[("cookie", session.as_str())]);
        assert_eq!(script.status, 400, "{}", script.text);
        assert!(["bad_date", "bad_query"].contains(&script.error_code().as_str()), "{}", script.text);
    }
}
