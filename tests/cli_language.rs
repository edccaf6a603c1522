//! One language for people (issue 11, items 1 and 2): on a zh-CN terminal the main
//! commands say nothing in English outside machine output (ids, codes, paths, numbers,
//! option names and commands in backticks are allowed); `--json` and CSV stay English;
//! report tables stay aligned with Chinese campaign names.

mod common;

use common::{Run, TestTerminal};
use redeemd::report::width;

/// A terminal like `TestTerminal::with_ruleset` but configured in `language`, whose
/// campaign GROCERY has a long Chinese name.
fn terminal(language: &str) -> TestTerminal {
    let t = TestTerminal::bare(9);
    let (anchors, data) = (t.path("anchors.json"), t.path("data"));
    let r = t.run(&[
        "init",
        "--data-dir",
        &data,
        "--merchant-id",
        "M-000123",
        "--merchant-category",
        "dining",
        "--trust-key",
        &anchors,
        "--language",
        language,
    ]);
    assert_eq!(r.code, 0, "init: {}", r.stderr);
    assert_words(&r, language);
    let mut payload = t.issuer.ruleset_payload(5, jiff::Timestamp::now(), &["DINING", "GROCERY"], &["REVOKED-1"]);
    payload["campaigns"][1]["name"]["zh-CN"] = serde_json::json!("社区生鲜超市周末满减活动（限本市门店使用）");
    let file = t.path("rs5.jws");
    std::fs::write(&file, t.issuer.sign_ruleset(&payload)).unwrap();
    let r = t.run(&["ruleset", "import", &file]);
    assert_eq!(r.code, 0, "import: {}", r.stderr);
    assert_words(&r, language);
    t
}

/// Words a zh-CN user may see in Latin letters: reason codes, config values, the issuer id, the program.
const ALLOWED: &[&str] = &["redeemd", "redeemd-demo", "dining", "malformed", "already_redeemed", "below_min_spend"];

/// The English words of `text` a zh-CN user would read: Latin-letter words that are not
/// ids (digits, capitals, `-_./:`), options (`--x`), commands in backticks or allowed.
fn english_words(text: &str) -> Vec<String> {
    let mut words = Vec::new();
    for (i, part) in text.split('`').enumerate() {
        if i % 2 == 1 {
            continue; // a command to type
        }
        for token in part.split(|c: char| !(c.is_ascii_alphanumeric() || "-_./:[]".contains(c))) {
            let token = token.trim_matches(|c| c == '[' || c == ']');
            if token.is_empty()
                || !token.chars().any(|c| c.is_ascii_lowercase())
                || token.starts_with('-')
                || token.chars().any(|c| c.is_ascii_digit() || "_./:".contains(c))
                || token.contains('-') && token.chars().any(|c| c.is_ascii_uppercase())
                || ALLOWED.contains(&token)
            {
                continue;
            }
            words.push(token.to_owned());
        }
    }
    words
}

fn assert_words(run: &Run, language: &str) {
    if language != "zh-CN" {
        return;
    }
    let english = english_words(&format!("{}\n{}", run.stdout, run.stderr));
    assert!(english.is_empty(), "English {english:?} reached a zh-CN user:\n{}{}", run.stdout, run.stderr);
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
