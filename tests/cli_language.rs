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
    said(&t.run(&["void", &id, "--reason", "VOID-1"]), &[0], "void");
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

/// No Chinese character glued to a Latin letter or digit (`信任CA`, `已用CA 证书`): a
/// zh-CN sentence spaces the Latin words it holds.
fn assert_spaced(run: &Run) {
    let text = format!("{}\n{}", run.stdout, run.stderr);
    let chars: Vec<char> = text.chars().collect();
    for pair in chars.windows(2) {
        let glued = (is_cjk(pair[0]) && !is_fullwidth_punct(pair[0]) && pair[1].is_ascii_alphanumeric())
            || (pair[0].is_ascii_alphanumeric() && is_cjk(pair[1]) && !is_fullwidth_punct(pair[1]));
        assert!(!glued, "{:?} glued in:\n{text}", pair.iter().collect::<String>());
    }
}

fn is_fullwidth_punct(c: char) -> bool {
    matches!(c, '\u{3000}'..='\u{303F}' | '\u{FF00}'..='\u{FF0F}' | '\u{FF1A}'..='\u{FF20}' | '\u{FF3B}'..='\u{FF40}' | '\u{FF5B}'..='\u{FF65}')
}

/// `scanner test` on a pty scanner that sends `frames` once the port is open.
fn scanner_test(t: &TestTerminal, count: &str, frames: &[u8]) -> Run {
    use std::io::BufRead as _;
    let link = t.dir.path().join("scanner");
    let mut emulator = common::scanner::Emulator::plug(&link);
    let mut child = t
        .command(&["scanner", "test", "--port", link.to_str().unwrap(), "--profile", "generic-serial"])
        .args(["--count", count, "--timeout", "2"])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut stderr = std::io::BufReader::new(child.stderr.take().unwrap());
    let mut first = String::new();
    stderr.read_line(&mut first).unwrap();
    emulator.write(frames);
    let mut rest = String::new();
    let _ = std::io::Read::read_to_string(&mut stderr, &mut rest);
    let out = child.wait_with_output().unwrap();
    Run {
        code: out.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: format!("{first}{rest}"),
    }
}

/// Issue 19's "done when": every command an installer runs, and its usual failures, on
/// a zh-CN terminal says everything in Chinese outside machine output (ids, paths,
/// options, commands in backticks), with Latin words spaced off, and the exit status
/// the spec gives.
#[test]
fn every_installer_command_speaks_chinese_on_a_zh_cn_terminal() {
    let zh = "zh-CN";
    let said = |r: &Run, exit: &[i32], what: &str| {
        assert!(exit.contains(&r.code), "{what}: exit {}\n{}{}", r.code, r.stdout, r.stderr);
        assert!(!r.stdout.is_empty() || !r.stderr.is_empty(), "{what} says something");
        assert_words(r, zh);
        assert_spaced(r);
    };
    let up = TestUpstream::start();
    let t = TestTerminal::bare(21);
    up.set_ruleset_keys(&t.issuer.trust_anchors_json());
    up.set_ruleset(&std::fs::read_to_string(named_ruleset(&t, 3)).unwrap());
    up.add_code("GOOD-CODE");
    up.add_code("USED-CODE");
    up.state.lock().unwrap().codes.insert("USED-CODE".into(), true);
    let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();

    // provision's failures, then provision itself.
    for (url, ca, code, exit) in [
        ("coupons.example.cn".to_owned(), up.ca_pem.as_str(), "GOOD-CODE", 2),
        ("http://upstream.example/".to_owned(), up.ca_pem.as_str(), "GOOD-CODE", 2),
        (up.url.clone(), "not a certificate\n", "GOOD-CODE", 2),
        (format!("https://127.0.0.1:{closed}/"), up.ca_pem.as_str(), "GOOD-CODE", 3),
        (format!("{}api/", up.url), up.ca_pem.as_str(), "GOOD-CODE", 3),
        (up.url.clone(), up.ca_pem.as_str(), "WRONG-CODE", 3),
        (up.url.clone(), up.ca_pem.as_str(), "USED-CODE", 3),
    ] {
        said(&t.provision_in(&url, ca, code, zh), &[exit], &format!("provision {url} {code}"));
    }
    // The repeated code (`invalid_code (invalid_code)`) is said once.
    let r = t.provision_in(&up.url, &up.ca_pem, "WRONG-CODE", zh);
    assert_eq!(r.stderr.matches("invalid_code").count(), 1, "{}", r.stderr);
    said(&t.provision_in(&up.url, &up.ca_pem, "GOOD-CODE", zh), &[0], "provision");

    let backup = t.path("lane.redeemd-backup");
    let sheet = t.path("sheet.png");
    let redeem = t.run(&["redeem", &t.code("CP-INSTALL-1", "DINING"), "--amount", "58"]);
    assert_eq!(redeem.code, 0, "{}", redeem.stderr);
    for (args, exit) in [
        (vec!["doctor"], &[0, 3][..]),
        (vec!["outbox", "list"], &[0]),
        (vec!["sync", "--once"], &[0]),
        (vec!["outbox", "list"], &[0]),
        (vec!["scanner", "list"], &[0]),
        (vec!["scanner", "sheet", "--profile", "generic-serial", "--out", &sheet], &[0]),
        (vec!["scanner", "sheet", "--profile", "no-such-profile", "--out", &sheet], &[2]),
        (vec!["backup", &backup], &[0]),
        (vec!["backup", &backup], &[2]),
        (vec!["cashier-url"], &[0]),
    ] {
        said(&t.run(&args), exit, &format!("{args:?}"));
    }
    // No scanner plugged in (as on a build machine): `scanner list` says so, and why a
    // keyboard-mode scanner is not there.
    let list = t.run(&["scanner", "list", "--json"]).json();
    if list["ports"].as_array().is_some_and(|ports| ports.iter().all(|p| p["usb"].is_null())) {
        let r = t.run(&["scanner", "list"]);
        assert!(r.stdout.contains("没有找到扫码枪") && r.stdout.contains("键盘模式"), "{}", r.stdout);
    }
    said(&scanner_test(&t, "1", b"CP1:FIRST\r\n"), &[0], "scanner test");
    said(&scanner_test(&t, "2", b"CP1:ONLY\r\n"), &[3], "scanner test, short");
    // The till's token and the cashier link are machine output; only stderr is for people.
    let r = t.run(&["pos-token"]);
    assert!(r.code == 0 && r.stderr.is_empty() && !r.stdout.trim().is_empty(), "{}", r.stderr);
    let r = t.run_with_stdin(&["manager-pin", "set"], Some(b"246810\n"));
    said(&r, &[0], "manager-pin set");
    assert!(r.stderr.contains("没有运行守护进程"), "no daemon runs here: {}", r.stderr);
    said(&t.run_with_stdin(&["manager-pin", "set"], Some(b"12\n")), &[2], "manager-pin set, short PIN");
    // sync --once with upstream gone: the cause and what to do, exit 3, the event kept.
    let redeem = t.run(&["redeem", &t.code("CP-INSTALL-2", "DINING"), "--amount", "58"]);
    assert_eq!(redeem.code, 0, "{}", redeem.stderr);
    let config = std::fs::read_to_string(t.config()).unwrap();
    std::fs::write(t.config(), config.replace(&up.url, &format!("https://127.0.0.1:{closed}/"))).unwrap();
    said(&t.run(&["sync", "--once"]), &[3], "sync --once, upstream gone");
    said(&t.run(&["doctor"]), &[3], "doctor, upstream gone");
    // A config typo: the file, the line, what is wrong.
    std::fs::write(t.config(), config.replace("merchant-id", "merchant_id")).unwrap();
    let r = t.run(&["outbox", "list"]);
    said(&r, &[2], "a config typo");
    assert!(
        r.stderr.contains("merchant_id") && r.stderr.contains("`merchant-id`") && r.stderr.contains(" 行"),
        "{}",
        r.stderr
    );
    said(&t.run(&["doctor"]), &[3], "doctor, a config typo");
    std::fs::write(t.config(), &config).unwrap();

    // init, and init over an existing config.
    let hand = TestTerminal::bare(9);
    said(&hand.init_in(zh), &[0], "init");
    said(&hand.init_in(zh), &[2], "init again");
    // restore onto a replacement, and its doctor.
    let spare = TestTerminal::bare(21);
    said(&spare.run(&["restore", &backup, "--data-dir", &spare.path("data")]), &[0], "restore");
    said(&spare.run(&["doctor"]), &[0, 3], "doctor after restore");
}
