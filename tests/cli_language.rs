//! One language for people (issue 11, items 1 and 2): on a zh-CN terminal the main
//! commands say nothing in English outside machine output (ids, codes, paths, numbers,
//! option names and commands in backticks are allowed); `--json` and CSV stay English;
//! report tables stay aligned with Chinese campaign names.

mod common;

use common::upstream::TestUpstream;
use common::words::{assert_words, is_cjk};
use common::{Run, TestTerminal};
use redeemd::report::width;

/// A terminal like `TestTerminal::with_ruleset` but configured in `language`, whose
/// campaign GROCERY has a long Chinese name.
fn terminal(language: &str) -> TestTerminal {
    let t = TestTerminal::bare(9);
    let r = t.init_in(language);
    assert_eq!(r.code, 0, "init: {}", r.stderr);
    assert_words(&r, language);
    let file = named_ruleset(&t, 5);
    let r = t.run(&["ruleset", "import", &file]);
    assert_eq!(r.code, 0, "import: {}", r.stderr);
    assert_words(&r, language);
    t
}

/// Rule set `version` (campaigns DINING and GROCERY, the latter with a long Chinese
/// name) written to `rsVERSION.jws`; returns its path.
fn named_ruleset(t: &TestTerminal, version: u64) -> String {
    let mut payload = t.issuer.ruleset_payload(version, jiff::Timestamp::now(), &["DINING", "GROCERY"], &["REVOKED-1"]);
    payload["campaigns"][1]["name"]["zh-CN"] = serde_json::json!("社区生鲜超市周末满减活动（限本市门店使用）");
    let file = t.path(&format!("rs{version}.jws"));
    std::fs::write(&file, t.issuer.sign_ruleset(&payload)).unwrap();
    file
}

/// Issue 11's "done when": every command a person runs, in `language`, says everything
/// in that language outside machine output, with its exit status.
fn every_command_in(language: &str) {
    let up = TestUpstream::start();
    let t = TestTerminal::bare(21);
    up.set_ruleset_keys(&t.issuer.trust_anchors_json());
    up.set_ruleset(&std::fs::read_to_string(named_ruleset(&t, 3)).unwrap());
    up.add_code("GOOD-CODE");
    // The terminal label defaults to the host name: data, not a text.
    let host = std::fs::read_to_string("/etc/hostname").unwrap_or_default().trim().to_owned();
    let said = |r: &Run, exit: &[i32], what: &str| {
        assert!(exit.contains(&r.code), "{what}: exit {}\n{}{}", r.code, r.stdout, r.stderr);
        assert!(!r.stdout.is_empty() || !r.stderr.is_empty(), "{what} says something");
        // Progress bars and colour only on a terminal: none in a pipe.
        let drawn = |text: &str| text.contains('\r') || text.contains('\u{1b}');
        assert!(!drawn(&r.stdout) && !drawn(&r.stderr), "{what} drew on a pipe: {:?}", r.stderr);
        let unlabelled = |text: &str| if host.is_empty() { text.to_owned() } else { text.replace(&host, "LABEL") };
        let run = Run { code: r.code, stdout: unlabelled(&r.stdout), stderr: unlabelled(&r.stderr) };
        assert_words(&run, language);
    };
    said(&t.provision_in(&up.url, &up.ca_pem, "GOOD-CODE", language), &[0], "provision");
    let rs5 = named_ruleset(&t, 5);
    let code = t.code("CP-EVERY-1", "DINING");
    let backup = t.path("lane.redeemd-backup");
    let sheet = t.path("sheet.png");
    for (args, exit) in [
        (vec!["ruleset", "import", &rs5], &[0][..]),
        (vec!["ruleset", "import", &rs5], &[0]),
        (vec!["ruleset", "show"], &[0]),
        (vec!["check", &code, "--amount", "58"], &[0]),
        (vec!["redeem", &code, "--amount", "58"], &[0]),
        (vec!["redeem", &code, "--amount", "58"], &[1]),
        (vec!["check", &code, "--amount", "58", "--at", "2020-01-01T00:00:00Z"], &[1]),
        (vec!["report", "daily"], &[0]),
        (vec!["outbox", "list"], &[0]),
        (vec!["sync", "--once"], &[0]),
        (vec!["outbox", "list"], &[0]),
        (vec!["outbox", "retry", "--all"], &[0]),
        (vec!["doctor"], &[0, 3]),
        (vec!["scanner", "list"], &[0]),
        (vec!["scanner", "sheet", "--profile", "generic-serial", "--out", &sheet], &[0]),
        (vec!["scanner", "sheet", "--profile", "no-such-profile", "--out", &sheet], &[2]),
        (vec!["backup", &backup], &[0]),
        (vec!["backup", &backup], &[2]),
    ] {
        said(&t.run(&args), exit, &format!("{args:?}"));
    }
    let id = t.run(&["report", "daily", "--format", "json"]).json()["redemptions"][0]["redemption_id"]
        .as_str()
        .unwrap()
        .to_owned();
    said(&t.run(&["void", &id, "--reason", "test"]), &[0], "void");
    said(&t.run(&["void", &id]), &[0], "void again");
    said(&t.run(&["report", "daily"]), &[0], "report after void");
    // The replacement terminal: restore, then its doctor.
    let spare = TestTerminal::bare(21);
    let data = spare.path("data");
    said(&spare.run(&["restore", &backup, "--data-dir", &data]), &[0], "restore");
    said(&spare.run(&["doctor"]), &[0, 3], "doctor after restore");
    let dir = tempfile::tempdir().unwrap();
    let demo = dir.path().join("demo");
    let r = spare.run(&["demo", "--once", "--language", language, "--dir", demo.to_str().unwrap()]);
    said(&r, &[0], "demo --once");
    // Machine output stays English and whole.
    assert!(t.run(&["report", "daily", "--format", "csv"]).stdout.starts_with("redemption_id,"));
    assert_eq!(t.run(&["ruleset", "show", "--json"]).json()["version"], 5);
    let doctor = t.run(&["doctor", "--json"]);
    let json: serde_json::Value = serde_json::from_str(&doctor.stdout).unwrap();
    assert!(json["findings"].as_array().unwrap().iter().all(|f| !f["message"].as_str().unwrap().chars().any(is_cjk)));
    assert_eq!(json["findings"][0]["check"], "config");
}

#[test]
fn every_command_speaks_chinese_on_a_zh_cn_terminal() {
    every_command_in("zh-CN");
}

#[test]
fn every_command_speaks_english_on_an_en_terminal() {
    every_command_in("en");
}

#[test]
fn a_zh_cn_terminal_speaks_chinese_outside_machine_output() {
    let t = terminal("zh-CN");
    let code = t.code("CP-0001", "DINING");
    let mut redemption = String::new();
    let rs5 = t.path("rs5.jws");
    for (args, exit) in [
        (vec!["ruleset", "show"], 0),
        (vec!["check", &code, "--amount", "58"], 0),
        (vec!["redeem", &code, "--amount", "58"], 0),
        (vec!["redeem", &code, "--amount", "58"], 1),
        (vec!["check", "CP1:NOT-A-CODE", "--amount", "58"], 1),
        (vec!["redeem", "--amount", "58", "--jsno"], 2),
        (vec!["redeem", &code, "--amount", "5x"], 2),
        (vec!["redeem", &code, "--amount", "5", "--eligible", "9"], 2),
        (vec!["report", "daily"], 0),
        (vec!["report", "daily", "--date=9999-12-31"], 2),
        (vec!["report", "daily", "--date", "2026-13-01"], 2),
        (vec!["void", "NO-SUCH-ID"], 3),
        (vec!["outbox", "list"], 0),
        (vec!["outbox", "retry", "--all"], 0),
        (vec!["outbox", "retry", "NO-SUCH-EVENT"], 2),
        (vec!["ruleset", "import", &rs5], 0),
    ] {
        let r = t.run(&args);
        assert_eq!(r.code, exit, "{args:?}: {}{}", r.stdout, r.stderr);
        assert!(!r.stdout.is_empty() || !r.stderr.is_empty(), "{args:?} says something");
        assert_words(&r, "zh-CN");
        if let Some(line) = r.stdout.lines().find(|l| l.starts_with("  核销号 ")) {
            redemption = line.split_whitespace().last().unwrap().to_owned();
        }
    }
    assert!(!redemption.is_empty());
    for _ in 0..2 {
        let r = t.run(&["void", &redemption]);
        assert_eq!(r.code, 0, "{}", r.stderr);
        assert_words(&r, "zh-CN");
    }
    // Machine output stays English.
    let r = t.run(&["redeem", &code, "--amount", "58", "--json"]);
    assert_eq!(r.json()["decision"], "accepted");
    let r = t.run(&["report", "daily", "--format", "csv"]);
    assert!(r.stdout.starts_with("redemption_id,at,coupon_id,campaign_id,discount"), "{}", r.stdout);
    let r = t.run(&["ruleset", "show", "--json"]);
    assert_eq!(r.json()["campaigns"], 2);
}

#[test]
fn the_same_commands_in_english_say_it_in_english() {
    let t = terminal("en");
    let code = t.code("CP-0001", "DINING");
    let r = t.run(&["redeem", &code, "--amount", "58"]);
    assert!(r.stdout.starts_with("ACCEPTED"), "{}", r.stdout);
    let r = t.run(&["check", &code, "--amount", "58"]);
    assert!(r.stdout.starts_with("REJECTED  already_redeemed"), "{}", r.stdout);
    assert!(r.stdout.contains("nothing recorded"), "{}", r.stdout);
    let r = t.run(&["report", "daily"]);
    assert!(r.stdout.contains("leverage = basket totals"), "{}", r.stdout);
}

#[test]
fn report_tables_align_with_chinese_names_and_shorten_long_ids() {
    let t = terminal("zh-CN");
    for (n, campaign) in [(1, "DINING"), (2, "GROCERY"), (3, "GROCERY")] {
        let code = t.code(&format!("CP-LONG-COUPON-IDENTIFIER-{n:04}"), campaign);
        let r = t.run(&["redeem", &code, "--amount", "58.5"]);
        assert_eq!(r.code, 0, "{}{}", r.stdout, r.stderr);
    }
    let table = t.run(&["report", "daily"]).stdout;
    let blocks: Vec<&str> = table.split("\n\n").collect();
    assert!(blocks.len() >= 4, "{table}");
    for block in &blocks[1..] {
        let lines: Vec<&str> = block.lines().filter(|l| !l.trim().is_empty()).collect();
        // The list's header names its last column in a few characters; its rows align.
        let rows = if lines.iter().any(|l| l.contains("核销号")) { &lines[1..] } else { &lines[..] };
        let widths: Vec<usize> = rows.iter().map(|l| width(l)).collect();
        assert!(widths.windows(2).all(|w| w[0] == w[1]), "misaligned {widths:?}:\n{block}");
    }
    // The campaign column: the localized name once, never `ID ID coupon`.
    assert!(table.contains("DINING 消费券"), "{table}");
    assert!(!table.contains("DINING DINING"), "{table}");
    assert!(table.contains("社区生鲜超市"), "{table}");
    // Long ids are shortened in the table, whole in csv and json.
    assert!(!table.contains("CP-LONG-COUPON-IDENTIFIER-0001"), "{table}");
    assert!(table.contains('…'), "{table}");
    let csv = t.run(&["report", "daily", "--format", "csv"]).stdout;
    assert!(csv.contains("CP-LONG-COUPON-IDENTIFIER-0001"), "{csv}");
    let json = t.run(&["report", "daily", "--format", "json"]).json();
    let id = json["redemptions"][0]["redemption_id"].as_str().unwrap().to_owned();
    assert_eq!(id.len(), 36, "{json}");
    assert!(!table.contains(&id), "{table}");
}
