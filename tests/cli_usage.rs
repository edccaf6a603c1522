//! Usage and pipes for people (issue 11, items 5 and 6): a mistyped option is a usage
//! error, languages and zones are taken in any usual spelling and stored in one, a
//! closed stdout ends an output-only command quietly, colour never reaches a pipe; and
//! (issue 18, items 12 and 13) clap names a mistyped option even before the code, the
//! live demo binds its port before it announces anything and outlives a closed stdout.

mod common;

use common::TestTerminal;

#[test]
fn a_code_that_looks_like_an_option_is_a_usage_error() {
    let t = TestTerminal::with_ruleset();
    let before = t.fingerprint();
    let code = t.code("CP-0001", "DINING");
    for cmd in ["redeem", "check"] {
        // Issue 18, item 12: the mistyped option is named as such, with clap's tip, also
        // when the code follows it (it used to be taken for the CODE, and the real code
        // reported as an unexpected argument).
        for args in [&[cmd, "--amount", "58", "--jsno"][..], &[cmd, "--amount", "58", "--jsno", &code]] {
            let r = t.run(args);
            assert_eq!(r.code, 2, "{args:?}: {}{}", r.stdout, r.stderr);
            assert!(r.stderr.contains("'--jsno'") && r.stderr.contains("'--json'"), "{args:?}: {}", r.stderr);
            assert!(!r.stderr.contains("CP1:"), "{args:?}: the code is not the problem: {}", r.stderr);
            assert!(!r.stdout.contains("malformed"), "{}", r.stdout);
        }
    }
    assert_eq!(t.fingerprint(), before, "nothing recorded");
    // The code still works before or after the options.
    let r = t.run(&["check", "--amount", "58", &code, "--json"]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    // `-` still reads the code from stdin.
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

/// The live demo, run as a test runs it: its own directory, English, a logged warning
/// at most; stdout and stderr piped.
fn live_demo(listen: &str, dir: &std::path::Path) -> std::process::Command {
    let mut cmd = std::process::Command::new(common::binary());
    cmd.args(["demo", "--language", "en", "--listen", listen, "--dir"])
        .arg(dir)
        .env("REDEEMD_LOG", "warn")
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped());
    cmd
}

/// Issue 18, item 13 (b): the live demo binds its port before it says or makes anything:
/// on a taken port it prints no link and no PIN, and leaves no terminal in `--dir`.
#[test]
fn a_live_demo_on_a_taken_port_prints_no_link_or_pin() {
    let held = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = held.local_addr().unwrap().to_string();
    let dir = tempfile::tempdir().unwrap();
    let demo = dir.path().join("demo");
    let out = live_demo(&addr, &demo).output().unwrap();
    let (stdout, stderr) = (String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    assert_eq!(out.status.code(), Some(3), "{stdout}{stderr}");
    assert!(stderr.contains(&addr) && stderr.contains("in use"), "{stderr}");
    assert!(!stdout.contains("http://") && !stdout.contains("PIN"), "announced before failing: {stdout}");
    assert!(!demo.join("redeemd.toml").exists(), "a terminal was provisioned in --dir");
    // An address the demo would never serve is refused before anything too.
    let out = live_demo("0.0.0.0:0", &demo).output().unwrap();
    let (stdout, stderr) = (String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    assert_eq!(out.status.code(), Some(2), "{stdout}{stderr}");
    assert!(stderr.contains("loopback") && stdout.is_empty(), "{stdout}{stderr}");
}

/// Issue 18, item 13 (a): `redeemd demo | head -1` — a reader that leaves — must not end
/// the demo with a panic (exit 101) at its next line: it serves, and stops with 0.
#[test]
fn a_live_demo_with_its_stdout_closed_serves_and_stops_cleanly() {
    use std::io::{Read as _, Write as _};
    use std::time::{Duration, Instant};
    let dir = tempfile::tempdir().unwrap();
    let demo = dir.path().join("demo");
    let mut child = live_demo("127.0.0.1:0", &demo).spawn().unwrap();
    drop(child.stdout.take()); // the reader is gone before the demo writes
    struct Kill(std::process::Child);
    impl Drop for Kill {
        fn drop(&mut self) {
            let _ = self.0.kill();
            let _ = self.0.wait();
        }
    }
    let mut child = Kill(child);
    // The port it picked is in its address file; an HTTP answer there means it serves
    // (its socket takes connections from before it prints a word).
    let listen_file = demo.join("data").join("listen");
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        if let Some(status) = child.0.try_wait().unwrap() {
            let mut stderr = String::new();
            let _ = child.0.stderr.take().unwrap().read_to_string(&mut stderr);
            panic!("the demo ended with {status}: {stderr}");
        }
        assert!(Instant::now() < deadline, "the demo never served");
        let answered = std::fs::read_to_string(&listen_file).ok().and_then(|addr| {
            let mut s = std::net::TcpStream::connect(addr.trim()).ok()?;
            s.set_read_timeout(Some(Duration::from_secs(2))).ok()?;
            s.write_all(b"GET /v1/status HTTP/1.0\r\n\r\n").ok()?;
            let mut head = [0u8; 5];
            s.read_exact(&mut head).ok()?;
            Some(head == *b"HTTP/")
        });
        if answered == Some(true) {
            break;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    let killed = std::process::Command::new("kill").arg("-INT").arg(child.0.id().to_string()).status().unwrap();
    assert!(killed.success());
    let deadline = Instant::now() + Duration::from_secs(10);
    let status = loop {
        if let Some(status) = child.0.try_wait().unwrap() {
            break status;
        }
        assert!(Instant::now() < deadline, "the demo did not stop on SIGINT");
        std::thread::sleep(Duration::from_millis(50));
    };
    let mut stderr = String::new();
    let _ = child.0.stderr.take().unwrap().read_to_string(&mut stderr);
    assert_eq!(status.code(), Some(0), "{stderr}");
    assert!(!stderr.contains("panicked") && !stderr.contains("Broken pipe"), "{stderr}");
}

/// `scanner test --port PORT --profile PROFILE --count N` with a pty scanner that sends
/// `frames` once the port is open: (exit status, stdout, stderr).
fn scanner_test(t: &TestTerminal, profile: &str, count: &str, frames: &[u8]) -> common::Run {
    use std::io::BufRead as _;
    let link = t.dir.path().join("scanner");
    let mut emulator = common::scanner::Emulator::plug(&link);
    let mut child = t
        .command(&["scanner", "test", "--port", link.to_str().unwrap(), "--profile", profile, "--count", count])
        .args(["--timeout", "2", "--json"])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut stderr = std::io::BufReader::new(child.stderr.take().unwrap());
    let mut first = String::new();
    stderr.read_line(&mut first).unwrap();
    if first.contains("connected") || first.starts_with("已连接") {
        emulator.write(frames);
    }
    let mut rest = String::new();
    let _ = std::io::Read::read_to_string(&mut stderr, &mut rest);
    let out = child.wait_with_output().unwrap();
    common::Run {
        code: out.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: format!("{first}{rest}"),
    }
}

/// Issue 19 item 5: `--profile` takes an id or an edited copy `ID.toml` alike in `run`,
/// `scanner test` and `scanner sheet` (one loader); a copy whose `id` is not its file name
/// is refused by all three (exit 2); `scanner test` exits 3 when it saw fewer frames than
/// `--count`.
#[test]
fn profiles_are_taken_alike_and_a_short_scanner_test_fails() {
    use common::words::assert_words;
    let t = TestTerminal::new_in("zh-CN");
    let shipped =
        std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/firmware-profiles/generic-serial.toml")).unwrap();
    assert!(shipped.contains("gap-timeout-ms = 300"), "{shipped}");
    let edited = shipped.replace("gap-timeout-ms = 300", "gap-timeout-ms = 450");
    let copy = t.path("generic-serial.toml");
    std::fs::write(&copy, &edited).unwrap();
    let misnamed = t.path("my-scanner.toml");
    std::fs::write(&misnamed, &edited).unwrap();
    let sheet = t.path("sheet.png");
    for profile in ["generic-serial", copy.as_str()] {
        let r = t.run(&["scanner", "sheet", "--profile", profile, "--out", &sheet]);
        assert_eq!(r.code, 0, "{profile}: {}", r.stderr);
        assert_words(&r, "zh-CN");
        let r = scanner_test(&t, profile, "1", b"CP1:FIRST\r\n");
        assert_eq!(r.code, 0, "{profile}: {}{}", r.stdout, r.stderr);
        assert!(r.stdout.contains(r#""text":"CP1:FIRST""#), "{}", r.stdout);
        // Fewer frames than --count: the test failed, and says so (exit 3).
        let r = scanner_test(&t, profile, "2", b"CP1:ONLY\r\n");
        assert_eq!(r.code, 3, "{profile}: {}{}", r.stdout, r.stderr);
        assert!(r.stdout.contains(r#""text":"CP1:ONLY""#), "{}", r.stdout);
        assert!(r.stderr.contains("1 / 2"), "{}", r.stderr);
        assert_words(&common::Run { code: 3, stdout: String::new(), stderr: r.stderr.clone() }, "zh-CN");
    }
    // The daemon takes the edited copy as it is given.
    let link = t.dir.path().join("scanner");
    let _emulator = common::scanner::Emulator::plug(&link);
    let daemon = common::daemon::Daemon::start(&t, &["--scanner", link.to_str().unwrap(), "--profile", &copy]);
    assert_eq!(daemon.get("/v1/status").json()["scanner"]["profile"], "generic-serial");
    drop(daemon);
    // A copy whose id is not its file name, and an id that does not exist: refused alike.
    for (profile, named) in [(misnamed.as_str(), "my-scanner"), ("no-such-profile", "no-such-profile")] {
        for args in [
            vec!["scanner", "sheet", "--profile", profile, "--out", &sheet],
            vec!["scanner", "test", "--port", "/dev/null", "--profile", profile, "--count", "1", "--timeout", "1"],
            vec!["run", "--listen", "127.0.0.1:0", "--scanner", "/dev/null", "--profile", profile],
        ] {
            let r = t.run(&args);
            assert_eq!(r.code, 2, "{args:?}: {}{}", r.stdout, r.stderr);
            assert!(r.stderr.contains(named), "{args:?}: {}", r.stderr);
            // `run` says the profile's problem in the daemon's words (src/daemon: not here).
            if args[0] == "scanner" {
                assert_words(&r, "zh-CN");
            }
        }
    }
}

/// Issue 19 item 8: `demo --help` shows its examples one a line; `demo --once` in a
/// temporary directory does not name the directory it removes; `manager-pin set` says a
/// daemon uses the PIN at once only when this data dir's daemon runs.
#[test]
fn demo_help_demo_once_and_manager_pin_say_what_is_so() {
    let t = TestTerminal::new();
    let r = t.run(&["demo", "--help"]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert!(
        r.stdout.contains("Examples:\n  redeemd demo\n  redeemd demo --listen 127.0.0.1:8080 --language en\n"),
        "{}",
        r.stdout
    );
    let r = t.run(&["demo", "--once", "--language", "en"]);
    assert_eq!(r.code, 0, "{}{}", r.stdout, r.stderr);
    let tmp = std::env::temp_dir().display().to_string();
    let last = r.stdout.trim_end().lines().last().unwrap_or_default();
    assert!(!last.contains(&format!("{tmp}/redeemd-demo-")), "names a removed directory: {}", r.stdout);
    assert!(last.contains("--dir"), "{}", r.stdout);
    let kept = t.path("kept-demo");
    let r = t.run(&["demo", "--once", "--language", "en", "--dir", &kept]);
    assert_eq!(r.code, 0, "{}{}", r.stdout, r.stderr);
    assert!(r.stdout.contains(&kept) && std::path::Path::new(&kept).join("redeemd.toml").exists(), "{}", r.stdout);

    let r = t.run_with_stdin(&["manager-pin", "set"], Some(b"246810\n"));
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert!(r.stderr.contains("no daemon runs on this data dir"), "{}", r.stderr);
    let daemon = common::daemon::Daemon::start(&t, &[]);
    let r = t.run_with_stdin(&["manager-pin", "set"], Some(b"135790\n"));
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert!(r.stderr.contains("the running daemon uses it at once"), "{}", r.stderr);
    drop(daemon);
}
