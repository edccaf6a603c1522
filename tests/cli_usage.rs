//! Usage and pipes for people (issue 11, items 5 and 6): a mistyped option is a usage
//! error, languages and zones are taken in any usual spelling and stored in one, a
//! closed stdout ends an output-only command quietly, colour never reaches a pipe.

mod common;

use common::TestTerminal;

#[test]
fn a_code_that_looks_like_an_option_is_a_usage_error() {
    let t = TestTerminal::with_ruleset();
    let before = t.fingerprint();
    for cmd in ["redeem", "check"] {
        let r = t.run(&[cmd, "--amount", "58", "--jsno"]);
        assert_eq!(r.code, 2, "{cmd}: {}{}", r.stdout, r.stderr);
        assert!(r.stderr.contains("unknown option") && r.stderr.contains("--jsno"), "{}", r.stderr);
        assert!(!r.stdout.contains("malformed"), "{}", r.stdout);
    }
    assert_eq!(t.fingerprint(), before, "nothing recorded");
    // `-` still reads the code from stdin.
    let code = t.code("CP-0001", "DINING");
    let r = t.run_with_stdin(&["check", "-", "--amount", "58", "--json"], Some(code.as_bytes()));
    assert_eq!(r.code, 0, "{}", r.stderr);
}

#[test]
fn language_and_timezone_are_stored_in_one_spelling() {
    for (given, stored) in [("zh-cn", "zh-CN"), ("zh-CN", "zh-CN"), ("en", "en")] {
        let t = TestTerminal::bare(9);
        let (anchors, data) = (t.path("anchors.json"), t.path("data"));
        let r = t.run(&[
            "init",
            "--data-dir",
            &data,
            "--merchant-id",
            "M-1",
            "--merchant-category",
            "dining",
            "--trust-key",
            &anchors,
            "--timezone",
            "asia/shanghai",
            "--language",
            given,
        ]);
        assert_eq!(r.code, 0, "{given}: {}", r.stderr);
        let config = std::fs::read_to_string(t.config()).unwrap();
        assert!(config.contains(&format!("language = \"{stored}\"")), "{config}");
        assert!(config.contains("timezone = \"Asia/Shanghai\""), "{config}");
    }
    // A hand-edited config in lower case loads too.
    let t = TestTerminal::with_ruleset();
    let config = std::fs::read_to_string(t.config()).unwrap();
    let edited = config
        .replace("language = \"en\"", "language = \"zh-cn\"")
        .replace("timezone = \"Asia/Shanghai\"", "timezone = \"asia/shanghai\"");
    std::fs::write(t.config(), edited).unwrap();
    let r = t.run(&["ruleset", "show", "--json"]);
    assert_eq!(r.code, 0, "{}", r.stderr);

    let t = TestTerminal::bare(9);
    let (anchors, data) = (t.path("anchors.json"), t.path("data"));
    let r = t.run(&[
        "init",
        "--data-dir",
        &data,
        "--merchant-id",
        "M-1",
        "--merchant-category",
        "dining",
        "--trust-key",
        &anchors,
        "--timezone",
        "Asia/Shangai",
    ]);
    assert_eq!(r.code, 2, "{}", r.stderr);
    assert!(r.stderr.contains("Asia/Shangai"), "{}", r.stderr);
}

#[test]
fn a_closed_stdout_ends_output_only_commands_quietly() {
    let t = TestTerminal::with_ruleset();
    for args in [
        &["ruleset", "show"][..],
        &["ruleset", "show", "--json"],
        &["report", "daily"],
        &["report", "daily", "--format", "csv"],
        &["outbox", "list"],
        &["--help"],
    ] {
        let mut cmd = t.command(args);
        cmd.stdout(std::process::Stdio::piped()).stderr(std::process::Stdio::piped());
        let mut child = cmd.spawn().unwrap();
        drop(child.stdout.take()); // the reader is gone before the command writes
        let out = child.wait_with_output().unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(0), "{args:?}: {stderr}");
        assert!(!stderr.contains("panicked") && !stderr.contains("Broken pipe"), "{args:?}: {stderr}");
    }
}

#[test]
fn no_colour_in_pipes_or_with_no_color() {
    let t = TestTerminal::with_ruleset();
    for no_color in [false, true] {
        let mut cmd = t.command(&["redeem", "--amount", "x"]);
        cmd.env("REDEEMD_LOG", "info");
        if no_color {
            cmd.env("NO_COLOR", "1");
        }
        let out = cmd.output().unwrap();
        let all = [out.stdout, out.stderr].concat();
        assert!(!all.contains(&0x1b), "escape sequence in {:?}", String::from_utf8_lossy(&all));
    }
}

#[test]
fn a_closed_stdout_keeps_the_status_a_command_earns() {
    // `doctor` on a terminal that was never provisioned finds problems: 3, also when its
    // reader is gone (`set -o pipefail; redeemd doctor | head -3` must still fail).
    let t = TestTerminal::with_ruleset();
    let open = t.run(&["doctor"]);
    assert_eq!(open.code, 3, "{}", open.stdout);
    for args in [&["doctor"][..], &["doctor", "--json"]] {
        let mut cmd = t.command(args);
        cmd.stdout(std::process::Stdio::piped()).stderr(std::process::Stdio::piped());
        let mut child = cmd.spawn().unwrap();
        drop(child.stdout.take());
        let out = child.wait_with_output().unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(3), "{args:?}: {stderr}");
        assert!(!stderr.contains("panicked") && !stderr.contains("Broken pipe"), "{args:?}: {stderr}");
    }
}
