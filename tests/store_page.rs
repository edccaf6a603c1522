//! The manager's page, whole store (`spec/store-hub.md`, "The store's day"): on a lane of
//! a store with a hub, the manager switches between this lane and the whole store; the
//! store view shows the store's totals (the sum of its lanes), one line per lane, the
//! store conflicts and every lane's redemptions, and with the hub gone says so and shows
//! no numbers. A real `nats-server` and real `redeemd run` lanes, in headless chromium.
//! Skips with a notice without `nats-server` or chromium (fails instead under
//! `REDEEMD_REQUIRE_NATS=1` / `REDEEMD_REQUIRE_BROWSER=1`).

mod common;

use common::browser::Browser;
use common::daemon::Daemon;
use common::lanes::{connected_at, hub_of, join_store, redeem_at, wait_for, Lane};
use common::nats::NatsServer;
use common::TestTerminal;
use serde_json::Value;
use std::path::Path;
use std::time::Duration;

const PIN: &str = "246810";

fn set_pin(t: &TestTerminal) {
    let r = t.run_with_stdin(&["manager-pin", "set"], Some(format!("{PIN}\n").as_bytes()));
    assert_eq!(r.code, 0, "manager-pin set: {}", r.stderr);
}

/// A lane of the store (as in `tests/store_hub.rs`), with the manager's PIN set.
fn lane(hub: &str, lane: &str) -> Lane {
    let t = TestTerminal::with_ruleset();
    join_store(&t, hub, lane, "");
    set_pin(&t);
    Lane::start(t)
}

fn hub_state(l: &Lane) -> Value {
    hub_of(&l.d)
}

fn connected(l: &Lane) {
    connected_at(&l.d)
}

fn published(lanes: &[&Lane]) {
    wait_for("every event is published", Duration::from_secs(10), || {
        lanes.iter().all(|l| hub_state(l)["unpublished"] == 0)
    });
}

/// A fresh checkout of `basket` and `code` in it: the decision record.
fn redeem(l: &Lane, basket: i64, code: &str) -> Value {
    redeem_at(&l.d, basket, code)
}

/// Minor units as the page shows them (two digits).
fn money(minor: i64) -> String {
    format!("{}.{:02}", minor / 100, minor % 100)
}

/// The manager's session cookie (`name=value`), for requests outside the browser.
fn session(d: &Daemon) -> String {
    let form = ("content-type", "application/x-www-form-urlencoded");
    let login = d.request_as_is("POST", "/manager/login", Some(&format!("pin={PIN}")), &[form], false);
    assert_eq!(login.status, 303, "{}", login.text);
    login.headers["set-cookie"].to_str().unwrap().split(';').next().unwrap().to_owned()
}

fn login(b: &Browser, base: &str, lang: &str) {
    common::browser::manager_login(b, base, lang, PIN)
}

fn keep(shot: &Path) {
    common::browser::keep(shot)
}

#[test]
fn the_manager_sees_the_whole_store_and_nothing_stale_when_the_hub_is_gone() {
    let Some(mut server) = NatsServer::start() else { return };
    let (one, two) = (lane(&server.url(), "1"), lane(&server.url(), "2"));
    connected(&one);
    connected(&two);
    for (l, basket, coupon) in [(&one, 5800, "PAGE-1"), (&one, 12000, "PAGE-2"), (&two, 4000, "PAGE-3")] {
        assert_eq!(redeem(l, basket, &l.t.code(coupon, "DINING"))["decision"], "accepted");
    }
    published(&[&one, &two]);
    // An outage: both lanes accept one coupon alone; the store flags it once the hub is back.
    server.kill9();
    wait_for("the lanes see the hub gone", Duration::from_secs(10), || {
        hub_state(&one)["state"] == "disconnected" && hub_state(&two)["state"] == "disconnected"
    });
    let twice = one.t.code("PAGE-TWICE", "DINING");
    assert_eq!(redeem(&one, 6000, &twice)["decision"], "accepted");
    assert_eq!(redeem(&two, 6000, &twice)["decision"], "accepted");
    server.restart();
    connected(&one);
    connected(&two);
    published(&[&one, &two]);
    let mut store = Value::Null;
    wait_for("the store conflict is flagged", Duration::from_secs(15), || {
        store = two.d.get("/v1/reports/daily?scope=store").json();
        store["store_conflicts"].as_array().is_some_and(|c| !c.is_empty())
    });
    let own: Vec<Value> = [&one, &two].iter().map(|l| l.d.get("/v1/reports/daily").json()["totals"].clone()).collect();
    let sum = |field: &str| own.iter().map(|t| t[field].as_i64().unwrap()).sum::<i64>();
    assert_eq!(store["totals"]["redemptions"].as_i64(), Some(sum("redemptions")), "{store}");
    assert_eq!(sum("redemptions"), 5);

    let Some(b) = Browser::start(1280, 1000) else { return };
    login(&b, &two.d.base, "zh-CN");
    // This lane's view offers the whole store; the switch leads there.
    b.wait_text("#scope-lane", "本收银台");
    b.wait_text("#total-coupons", "2");
    b.click("#scope-store");
    b.wait_text("h1", "全店");
    b.wait_text("#scope-store", "全店");
    assert_eq!(b.js("return document.querySelector('#scope-store').getAttribute('aria-current')"), "page");
    // The store's totals are the sum of its lanes.
    b.wait_text("#store-total-coupons", &sum("redemptions").to_string());
    assert_eq!(b.text("#store-total-coupons"), sum("redemptions").to_string());
    assert_eq!(b.text("#store-total-discount"), money(sum("discount")));
    assert_eq!(b.text("#store-total-basket"), money(sum("basket_total")));
    b.wait_text("#store-leverage", "带动比: 每 1.00 元补贴带动");
    for (lane, own) in [("1", &own[0]), ("2", &own[1])] {
        let row = b.text(&format!("#store-lanes tr[data-lane='{lane}']"));
        assert!(row.contains(&format!("lane-{lane}")), "{row}");
        assert!(row.contains(&money(own["discount"].as_i64().unwrap())), "{row}");
        assert!(row.contains(&money(own["basket_total"].as_i64().unwrap())), "{row}");
        assert!(!row.contains("落后"), "both lanes are current: {row}");
    }
    let lanes = b.js("return document.querySelectorAll('#store-lanes tbody tr[data-lane]').length");
    assert_eq!(lanes, 2);
    // The conflict in words, with both lanes and their times; the list has a lane column.
    let conflict = b.wait_text("#store-conflict-table tr.store-conflict", "同一张券被核销多次");
    assert!(
        conflict.contains("PAGE-TWICE") && conflict.contains("收银台 1") && conflict.contains("收银台 2"),
        "{conflict}"
    );
    b.wait_text("#store-conflict-flag", "全店冲突: 1");
    let rows = b
        .js("return [...document.querySelectorAll('#store-redemptions tbody tr[data-lane]')].map(r => r.dataset.lane)");
    let mut rows: Vec<&str> = rows.as_array().unwrap().iter().map(|v| v.as_str().unwrap()).collect();
    rows.sort();
    assert_eq!(rows, ["1", "1", "1", "2", "2"]);
    // The store's CSV is the API's, which the manager's session may fetch.
    let href = b.js("return document.getElementById('csv-store').getAttribute('href')");
    let href = href.as_str().unwrap();
    assert!(href.contains("scope=store") && href.contains("format=csv"), "{href}");
    let cookie = session(&two.d);
    let csv = two.d.request("GET", href, None, &[("cookie", cookie.as_str())]);
    assert_eq!(csv.status, 200, "{}", csv.text);
    assert!(csv.text.starts_with("terminal_id,lane,"), "{}", csv.text);
    b.assert_same_origin(&two.d.base);
    assert_eq!(b.console_errors(), Vec::<String>::new());
    b.assert_no_horizontal_scroll();
    keep(&b.screenshot("manager-store-zh"));

    // In English.
    let date = b.js("return document.getElementById('manager-store').dataset.date");
    let date = date.as_str().unwrap().to_owned();
    b.goto(&format!("{}/manager?date={date}&scope=store&lang=en", two.d.base));
    b.wait_text("h1", "Whole store");
    b.wait_text("#scope-lane", "This lane");
    b.wait_text("#store-lanes-card h2", "Lanes");
    assert_eq!(b.text("#store-total-coupons"), sum("redemptions").to_string());
    b.wait_text("#store-leverage", "Leverage: each 1.00 of subsidy brought");
    b.wait_text("#store-conflict-table", "one coupon redeemed more than once");
    b.wait_text("#store-conflict-table", "Lane 1");
    b.screenshot("manager-store-en");

    // The hub gone: the store view says so and shows no numbers, in both languages.
    server.kill9();
    wait_for("the lane sees the hub gone", Duration::from_secs(10), || hub_state(&two)["state"] == "disconnected");
    for (lang, words) in [
        ("zh-CN", "门店中心无应答，暂时无法显示全店数据"),
        ("en", "The store hub does not answer: the store's day cannot be shown now"),
    ] {
        b.goto(&format!("{}/manager?date={date}&scope=store&lang={lang}", two.d.base));
        b.wait_text("#store-unreachable", words);
        let shown = b.js(
            "return ['store-total-coupons', 'store-lanes', 'store-redemptions', 'store-conflict-table', 'csv-store']
               .filter(id => document.getElementById(id))",
        );
        assert_eq!(shown, serde_json::json!([]), "{lang}: numbers shown with the hub gone");
        let main = b.text("main");
        assert!(!main.contains(&money(sum("discount"))), "{lang}: {main}");
        // The way back to this lane's own day stays.
        assert!(b.visible("#scope-lane"));
    }
    b.screenshot("manager-store-down-en");
    let page = two.d.request("GET", "/manager?scope=store&lang=en", None, &[("cookie", cookie.as_str())]);
    assert_eq!(page.status, 200, "{}", page.text);
    assert!(page.text.contains("The store hub does not answer") && !page.text.contains("store-total-coupons"));
    // This lane's own day still shows.
    b.click("#scope-lane");
    b.wait_text("#total-coupons", "2");
    assert_eq!(b.console_errors(), Vec::<String>::new());
    b.close();
}

#[test]
fn a_terminal_without_a_store_hub_offers_no_store_view() {
    let t = TestTerminal::with_ruleset();
    set_pin(&t);
    let d = Daemon::start(&t, &[]);
    let cookie = session(&d);
    for path in ["/manager?lang=en", "/manager?scope=store&lang=zh-CN"] {
        let page = d.request("GET", path, None, &[("accept", "text/html"), ("cookie", cookie.as_str())]);
        assert_eq!(page.status, 200, "{path}: {}", page.text);
        assert!(page.text.contains("id=\"total-coupons\""), "{path}: the lane's own view");
        for absent in ["scope-switch", "scope=store", "store-unreachable", "store-lanes"] {
            assert!(!page.text.contains(absent), "{path}: {absent} on a terminal without [store]");
        }
    }

    let Some(b) = Browser::start(1280, 900) else { return };
    login(&b, &d.base, "zh-CN");
    assert!(!b.visible("#scope-switch"));
    assert_eq!(b.js("return document.getElementById('scope-switch') === null"), true);
    b.close();
}
