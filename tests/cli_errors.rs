//! Errors for people (issue 11, item 4): each names the file or value, says what is
//! wrong once, says what to do, and exits with the status the spec gives (2 usage or
//! configuration, 3 any other failure); nothing is left behind that keeps failing.

mod common;

use common::upstream::TestUpstream;
use common::words::assert_words;
use common::{Run, TestTerminal};

fn assert_error(run: &Run, code: i32, needles: &[&str]) {
    assert_eq!(run.code, code, "exit {} (want {code})\nstdout: {}\nstderr: {}", run.code, run.stdout, run.stderr);
    for needle in needles {
        assert!(run.stderr.contains(needle), "{needle:?} missing from: {}", run.stderr);
    }
    assert_eq!(run.stderr.trim_end().lines().count(), 1, "one line: {}", run.stderr);
}

/// No sentence of an error is said twice (the `a: a: Error code 8` chains).
fn assert_said_once(run: &Run) {
    let parts: Vec<&str> = run.stderr.trim().split(": ").map(str::trim).filter(|p| p.len() > 12).collect();
    for (i, p) in parts.iter().enumerate() {
        assert!(!parts[i + 1..].contains(p), "{p:?} repeated in: {}", run.stderr);
    }
}

#[test]
fn a_date_the_zone_cannot_hold_is_out_of_range() {
    let t = TestTerminal::with_ruleset();
    for date in ["--date=9999-12-31", "--date=-009999-01-01"] {
        let r = t.run(&["report", "daily", date]);
        assert_error(&r, 2, &["date out of range"]);
        assert!(!r.stderr.contains("corrupt"), "{}", r.stderr);
    }
    let r = t.run(&["report", "daily", "--date", "2026-02-30"]);
    assert_error(&r, 2, &["2026-02-30"]);
}

#[test]
fn not_a_database_says_restore_never_init_force() {
    let t = TestTerminal::with_ruleset();
    std::fs::remove_file(t.db()).unwrap();
    for suffix in ["-wal", "-shm"] {
        let _ = std::fs::remove_file(format!("{}{suffix}", t.db().display()));
    }
    std::fs::write(t.db(), vec![b'x'; 8192]).unwrap();
    let r = t.run(&["report", "daily"]);
    assert_error(&r, 3, &[&t.db().display().to_string(), "backup", "never `init --force`"]);
    assert_said_once(&r);
}

#[test]
fn a_ledger_this_user_cannot_write_is_named_with_its_owner_and_leaves_nothing() {
    use std::os::unix::fs::PermissionsExt as _;
    use std::os::unix::process::CommandExt as _;
    let t = TestTerminal::with_ruleset();
    let data = t.dir.path().join("data");
    let root = nix::unistd::geteuid().is_root();
    // As root (CI containers) the command runs as `nobody`; otherwise the files lose their write bits.
    std::fs::set_permissions(t.dir.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
    std::fs::set_permissions(t.config(), std::fs::Permissions::from_mode(0o644)).unwrap();
    // A data dir and a ledger the account may read but not write (redeemd makes them
    // 0700 and 0600; an installer's copy or chmod may leave them so).
    if root {
        std::fs::set_permissions(&data, std::fs::Permissions::from_mode(0o755)).unwrap();
        std::fs::set_permissions(data.join("trust-keys.json"), std::fs::Permissions::from_mode(0o644)).unwrap();
        std::fs::set_permissions(t.db(), std::fs::Permissions::from_mode(0o644)).unwrap();
    }
    if !root {
        std::fs::set_permissions(t.db(), std::fs::Permissions::from_mode(0o444)).unwrap();
        std::fs::set_permissions(&data, std::fs::Permissions::from_mode(0o555)).unwrap();
    }
    let listing = |dir: &std::path::Path| {
        let mut names: Vec<String> =
            std::fs::read_dir(dir).unwrap().map(|e| e.unwrap().file_name().to_string_lossy().into_owned()).collect();
        names.sort();
        names
    };
    let before = listing(&data);
    for args in [&["report", "daily"][..], &["redeem", "x", "--amount", "5"]] {
        let mut cmd = t.command(args);
        if root {
            cmd.uid(65534).gid(65534);
        }
        let out = cmd.output().unwrap();
        let run = Run {
            code: out.status.code().unwrap_or(-1),
            stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
        };
        if root {
            assert_error(&run, 2, &["cannot be written", "belongs to", "chown", &data.display().to_string()]);
        } else {
            // Its own owner without the write bit: a `chmod`, not a `chown` (issue 19 item 4).
            assert_error(&run, 2, &["cannot be written", "chmod u+rw", &t.db().display().to_string()]);
            assert!(!run.stderr.contains("chown"), "{}", run.stderr);
        }
        assert_said_once(&run);
    }
    assert_eq!(listing(&data), before, "no -wal/-shm left behind");
    if !root {
        std::fs::set_permissions(&data, std::fs::Permissions::from_mode(0o755)).unwrap();
        std::fs::set_permissions(t.db(), std::fs::Permissions::from_mode(0o644)).unwrap();
    }
    let r = t.run(&["report", "daily"]);
    assert_eq!(r.code, 0, "fixed permissions work again: {}", r.stderr);
}

#[test]
fn a_locked_ledger_names_the_holder() {
    let t = TestTerminal::with_ruleset();
    let conn = rusqlite::Connection::open(t.db()).unwrap();
    conn.execute_batch("BEGIN EXCLUSIVE").unwrap();
    let code = t.code("CP-0001", "DINING");
    let started = std::time::Instant::now();
    let r = t.run(&["redeem", &code, "--amount", "58"]);
    assert!(started.elapsed() < std::time::Duration::from_secs(30));
    assert_error(&r, 3, &["is locked", &t.db().display().to_string(), &format!("process {}", std::process::id())]);
    assert_said_once(&r);
    conn.execute_batch("ROLLBACK").unwrap();
}

#[test]
fn provision_refuses_bad_input_before_any_network() {
    let t = TestTerminal::bare(9);
    // Port 9 on loopback: nothing listens, so reaching the network would say "cannot reach".
    let r = t.provision("coupons.example.cn", "", "K7PX-93QD");
    assert_error(&r, 2, &["coupons.example.cn", "no scheme", "https://coupons.example.cn/"]);
    let r = t.provision("https://127.0.0.1:9/", "-----BEGIN CERTIFICATE-----\n", "  ");
    assert_error(&r, 2, &["--enrollment-code is empty"]);
    let r = t.provision("https://127.0.0.1:9/", "not a certificate\n", "K7PX-93QD");
    assert_error(&r, 2, &[&t.path("ca.pem"), "holds no certificate"]);
    assert!(!r.stderr.contains("cannot reach"), "{}", r.stderr);
}

#[test]
fn a_rule_set_that_refuses_this_terminal_installs_with_a_warning() {
    let t = TestTerminal::new();
    let mut payload = t.issuer.ruleset_payload(3, jiff::Timestamp::now(), &["DINING"], &[]);
    payload["campaigns"][0]["merchant_categories"] = serde_json::json!(["Dining"]);
    let file = t.path("rs3.jws");
    std::fs::write(&file, t.issuer.sign_ruleset(&payload)).unwrap();
    let r = t.run(&["ruleset", "import", &file]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert!(r.stderr.contains("warning: no campaign of this rule set admits this terminal"), "{}", r.stderr);
    assert!(r.stderr.contains("\"Dining\""), "{}", r.stderr);
    // A rule set that admits it says nothing.
    let fine = t.write_ruleset("rs4.jws", 4, &["DINING"], &[]);
    let r = t.run(&["ruleset", "import", &fine]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert!(!r.stderr.contains("warning"), "{}", r.stderr);
}

/// The errors above on a zh-CN terminal: the same exit statuses, said in Chinese (the
/// file or value named, commands in backticks), and in English on an en terminal.
#[test]
fn errors_speak_the_terminals_language() {
    for language in ["zh-CN", "en"] {
        let up = TestUpstream::start();
        up.add_code("USED-CODE");
        up.state.lock().unwrap().codes.insert("USED-CODE".into(), true);
        let t = TestTerminal::bare(9);
        let provision = |url: &str, ca: &str, code: &str| {
            let ca = if ca.is_empty() { up.ca_pem.as_str() } else { ca };
            t.provision_in(url, ca, code, language)
        };
        let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
        let unreachable = format!("https://127.0.0.1:{closed}/");
        for (r, code, needle) in [
            (provision("coupons.example.cn", "", "K7PX-93QD"), 2, "https://coupons.example.cn/"),
            (provision(&up.url, "", "  "), 2, "--enrollment-code"),
            (provision(&up.url, "not a certificate\n", "K7PX-93QD"), 2, "ca.pem"),
            (provision("http://upstream.example/", "", "K7PX-93QD"), 2, "https://"),
            (provision(&up.url, "", "WRONG"), 3, "401"),
            (provision(&up.url, "", "USED-CODE"), 3, "409"),
        ] {
            assert_error(&r, code, &[needle]);
            assert_words(&r, language);
        }
        // The network's own words (the OS, the HTTP client) are quoted as they are.
        let r = provision(&unreachable, "", "K7PX-93QD");
        assert_error(&r, 3, &[&unreachable]);
        assert_words(&r, language);
        // A ledger that is not one, a date out of range, a missing config.
        let t = TestTerminal::bare(9);
        assert_eq!(t.init_in(language).code, 0);
        std::fs::remove_file(t.db()).unwrap();
        for suffix in ["-wal", "-shm"] {
            let _ = std::fs::remove_file(format!("{}{suffix}", t.db().display()));
        }
        std::fs::write(t.db(), vec![b'x'; 8192]).unwrap();
        let r = t.run(&["report", "daily"]);
        assert_error(&r, 3, &[&t.db().display().to_string(), "`init --force`"]);
        assert_words(&r, language);
        std::fs::remove_file(t.db()).unwrap();
        let r = t.run(&["report", "daily"]);
        assert_error(&r, 2, &[&t.db().display().to_string(), "`redeemd init`"]);
        assert_words(&r, language);
        std::fs::remove_file(t.config()).unwrap();
        let r = t.run(&["ruleset", "show"]);
        assert_error(&r, 2, &[&t.config()]);
    }
}

/// The library's own checks (a config's semantic problems, a time zone name, the PIN
/// rule) are said in the terminal's language too, with the usage exit status.
#[test]
fn config_timezone_and_pin_problems_speak_the_terminals_language() {
    for language in ["zh-CN", "en"] {
        // `init --timezone` with a name the database does not know.
        let t = TestTerminal::bare(9);
        let mut args = common::init::init_args(&t.path("data"), &t.path("anchors.json"), language);
        args.extend(["--timezone".to_owned(), "Mars/Olympus".to_owned()]);
        let r = t.run(&args.iter().map(String::as_str).collect::<Vec<_>>());
        assert_error(&r, 2, &["--timezone", "\"Mars/Olympus\""]);
        assert_words(&r, language);
        let zh = language == "zh-CN";
        assert!(r.stderr.contains(if zh { "时区" } else { "is not an IANA time zone" }), "{}", r.stderr);

        // A hand-edited config whose time zone, merchant id or listen address is wrong.
        let t = TestTerminal::new_in(language);
        let good = std::fs::read_to_string(t.config()).unwrap();
        let edits = [
            ("timezone = \"Asia/Shanghai\"", "timezone = \"Mars/Olympus\"", "\"Mars/Olympus\""),
            ("merchant-id = \"M-000123\"", "merchant-id = \" \"", "merchant-id"),
        ];
        for (from, to, needle) in edits {
            assert!(good.contains(from), "{good}");
            std::fs::write(t.config(), good.replace(from, to)).unwrap();
            let r = t.run(&["report", "daily"]);
            assert_error(&r, 2, &[&t.config(), needle]);
            assert_words(&r, language);
            assert!(r.stderr.contains(if zh { "为空" } else { "is empty" }) || needle != "merchant-id", "{}", r.stderr);
            // `doctor` says the same problem in the same language.
            let r = t.run(&["doctor"]);
            assert_eq!(r.code, 3, "{}", r.stderr);
            assert!(
                r.stdout.contains(needle) && r.stdout.contains(if zh { "无效" } else { "is not valid" }),
                "{}",
                r.stdout
            );
        }
        std::fs::write(t.config(), format!("{good}\n[api]\nlisten = \"host:7878\"\n")).unwrap();
        let r = t.run(&["report", "daily"]);
        assert_error(&r, 2, &["\"host:7878\""]);
        assert_words(&r, language);
        std::fs::write(t.config(), &good).unwrap();

        // `manager-pin set` with a PIN that breaks the rule.
        let r = t.run_with_stdin(&["manager-pin", "set"], Some(b"12\n"));
        assert_error(&r, 2, &[if zh { "4 到 12 位数字" } else { "4 to 12 digits" }]);
        assert_words(&r, language);
    }
}

/// The daemon's start-up failures (`run`, the live `demo`) are said in the terminal's
/// language: an address another process holds (exit 3) and a non-loopback address
/// without `allow-remote` (exit 2). The daemon's log keeps English.
#[test]
fn daemon_start_up_failures_speak_the_terminals_language() {
    let held = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = held.local_addr().unwrap().to_string();
    for language in ["zh-CN", "en"] {
        let zh = language == "zh-CN";
        let t = TestTerminal::new_in(language);
        let r = t.run(&["run", "--listen", &addr, "--scanner", "none"]);
        assert_eq!(r.code, 3, "{}", r.stderr);
        let last = r.stderr.trim_end().lines().last().unwrap_or_default();
        assert!(last.contains(&addr) && last.contains("ss -ltnp"), "{}", r.stderr);
        assert!(last.contains(if zh { "已被占用" } else { "the address is in use" }), "{}", r.stderr);
        assert_words(&Run { code: r.code, stdout: String::new(), stderr: last.to_owned() }, language);
        let r = t.run(&["run", "--listen", "0.0.0.0:7999", "--scanner", "none"]);
        assert_error(&r, 2, &["0.0.0.0:7999", "`allow-remote = true`"]);
        assert_words(&r, language);

        let dir = tempfile::tempdir().unwrap();
        let demo = dir.path().join("demo");
        let r = t.run(&["demo", "--language", language, "--listen", &addr, "--dir", demo.to_str().unwrap()]);
        assert_eq!(r.code, 3, "{}", r.stderr);
        let last = r.stderr.trim_end().lines().last().unwrap_or_default();
        assert!(last.contains(&addr) && last.contains(if zh { "已被占用" } else { "in use" }), "{}", r.stderr);
        assert_words(&Run { code: r.code, stdout: String::new(), stderr: last.to_owned() }, language);
    }
}

#[test]
fn rule_set_refusals_speak_the_terminals_language() {
    for language in ["zh-CN", "en"] {
        let t = TestTerminal::new_in(language);
        let v5 = t.write_ruleset("rs5.jws", 5, &["DINING"], &[]);
        assert_eq!(t.run(&["ruleset", "import", &v5]).code, 0);
        let before = t.fingerprint();
        // A rollback, and a rule set signed by a key this terminal does not trust.
        let v3 = t.write_ruleset("rs3.jws", 3, &["DINING"], &[]);
        let stranger = redeemd::issuer::Issuer::from_seed(77);
        let forged = t.path("forged.jws");
        let payload = stranger.ruleset_payload(6, jiff::Timestamp::now(), &["DINING"], &[]);
        std::fs::write(&forged, stranger.sign_ruleset(&payload)).unwrap();
        let zh = language == "zh-CN";
        for (file, words) in [
            (&v3, if zh { "回滚" } else { "a rollback" }),
            (&forged, if zh { "不是本终端信任" } else { "trust anchors" }),
        ] {
            let r = t.run(&["ruleset", "import", file]);
            assert_ne!(r.code, 0, "{file}: {}", r.stdout);
            assert!(r.stderr.contains(words), "{file}: {}", r.stderr);
            // Said once, in the reader's language: no English log line of the same refusal.
            assert_eq!(r.stderr.trim_end().lines().count(), 1, "{}", r.stderr);
            assert_said_once(&r);
            assert_words(&r, language);
        }
        assert_eq!(t.fingerprint(), before, "a refusal changes nothing");
    }
}

#[test]
fn restore_of_what_is_not_a_backup_says_so() {
    for language in ["zh-CN", "en"] {
        let t = TestTerminal::new_in(language);
        let zh = language == "zh-CN";
        let missing = t.path("no-such-backup.sqlite");
        let r = t.run(&["restore", &missing]);
        assert_error(&r, 2, &[&missing, "redeemd backup"]);
        assert!(!r.stderr.contains("init"), "not the advice for a missing ledger: {}", r.stderr);
        assert_words(&r, language);
        // A ledger is an SQLite file, but not a backup.
        let r = t.run(&["restore", &t.db().display().to_string()]);
        assert_error(&r, 2, &[if zh { "不是 redeemd 备份" } else { "is not a redeemd backup" }]);
        assert_words(&r, language);
    }
}

#[path = "common/peers.rs"]
mod peers;

/// `provision` with `--ca` (or without, when `ca` is None) in `language`.
fn provision_with(t: &TestTerminal, url: &str, ca: Option<&str>, language: &str) -> Run {
    let data = t.path("data");
    let mut args = vec!["provision", "--upstream", url, "--enrollment-code", "K7PX-93QD", "--data-dir", &data];
    let ca_path = t.path("given-ca.pem");
    if let Some(ca) = ca {
        std::fs::write(&ca_path, ca).unwrap();
        args.extend(["--ca", &ca_path]);
    }
    args.extend(["--language", language]);
    t.run(&args)
}

/// Issue 19 item 4: each way upstream fails says what it is and what to do, in the
/// terminal's language, through `provision` and `sync --once`, exit 3; the clock is
/// never taken for the CA, a wrong CA never for a missing one.
#[test]
fn upstream_failures_say_what_to_do_in_the_terminals_language() {
    use peers::{Behaviour, Pki, RawPeer, TlsPeer};
    let pki = Pki::new("installer");
    let stranger = Pki::new("stranger");
    let valid = TlsPeer::start(pki.server(None));
    let expired = TlsPeer::start(pki.server(Some(((2020, 1, 1), (2021, 1, 1)))));
    let not_yet = TlsPeer::start(pki.server(Some(((2090, 1, 1), (2091, 1, 1)))));
    let foreign = TlsPeer::start(stranger.server(None));
    let plain = RawPeer::start(Behaviour::PlainHttp);
    let reset = RawPeer::start(Behaviour::Reset);
    let closed = format!("https://127.0.0.1:{}/", peers::closed_port());
    let up = TestUpstream::start();
    for language in ["zh-CN", "en"] {
        let zh = language == "zh-CN";
        let pick = |zh_words: &'static str, en_words: &'static str| if zh { zh_words } else { en_words };
        let ca = Some(pki.ca_pem.as_str());
        let wrong_path = format!("{}api/", up.url);
        let cases: Vec<(&str, String, Option<&str>, Vec<&str>)> = vec![
            ("refused", closed.clone(), ca, vec![pick("拒绝连接", "connection refused"), &closed[8..closed.len() - 1]]),
            ("plain http", plain.url(), ca, vec![pick("不使用 HTTPS", "does not speak HTTPS")]),
            ("reset", reset.url(), ca, vec![pick("被重置", "was reset")]),
            (
                "expired",
                expired.url.clone(),
                ca,
                vec![
                    pick("有效期到 2021-01-01", "valid until 2021-01-01"),
                    pick("时钟", "clock"),
                    pick("无需用新的 --ca", "no new --ca"),
                ],
            ),
            (
                "not yet valid",
                not_yet.url.clone(),
                ca,
                vec![pick("从 2090-01-01", "valid only from 2090-01-01"), pick("时钟慢了", "this clock is behind")],
            ),
            (
                "wrong CA",
                foreign.url.clone(),
                ca,
                vec![pick("不是由本终端获得的 CA 证书", "not signed by the CA certificate this terminal was given")],
            ),
            (
                "no CA",
                valid.url.clone(),
                None,
                vec![pick("没有提供 CA 证书", "no CA certificate was given"), "`--ca FILE`"],
            ),
            (
                "wrong path",
                wrong_path.clone(),
                Some(up.ca_pem.as_str()),
                vec![pick("404（找不到）", "404 Not Found"), pick("路径不对", "path is wrong")],
            ),
        ];
        for (what, url, ca, needles) in cases {
            let t = TestTerminal::bare(9);
            let r = provision_with(&t, &url, ca, language);
            assert_eq!(r.code, 3, "{what}: {}{}", r.stdout, r.stderr);
            let last = r.stderr.trim_end().lines().last().unwrap_or_default().to_owned();
            for needle in &needles {
                assert!(last.contains(needle), "{what} ({language}): {needle:?} missing from: {}", r.stderr);
            }
            if what == "expired" || what == "not yet valid" {
                assert!(!last.contains("`--ca FILE`"), "{what}: the clock, not the CA: {last}");
            }
            assert_said_once(&Run { code: r.code, stdout: String::new(), stderr: last.clone() });
            assert_words(&r, language);
        }
    }
}

/// A provisioned terminal (against `up`, in `language`) with one redemption waiting to
/// be sent.
fn provisioned_with_an_event(up: &TestUpstream, language: &str) -> TestTerminal {
    let t = TestTerminal::bare(21);
    up.set_ruleset_keys(&t.issuer.trust_anchors_json());
    let payload = t.issuer.ruleset_payload(3, jiff::Timestamp::now(), &["DINING"], &[]);
    up.set_ruleset(&t.issuer.sign_ruleset(&payload));
    up.add_code("GOOD-CODE");
    let r = t.provision_in(&up.url, &up.ca_pem, "GOOD-CODE", language);
    assert_eq!(r.code, 0, "provision: {}{}", r.stdout, r.stderr);
    let r = t.run(&["redeem", &t.code("CP-SYNC-1", "DINING"), "--amount", "58"]);
    assert_eq!(r.code, 0, "redeem: {}{}", r.stdout, r.stderr);
    t
}

/// The config's upstream URL (and timeout) changed, the CA file replaced by `ca_pem`.
fn point_upstream(t: &TestTerminal, url: &str, ca_pem: &str, timeout_secs: u64) {
    let config = std::fs::read_to_string(t.config()).unwrap();
    let mut out = String::new();
    for line in config.lines() {
        if line.starts_with("url = ") {
            out.push_str(&format!("url = {url:?}\ntimeout-secs = {timeout_secs}\n"));
        } else if !line.starts_with("timeout-secs = ") {
            out.push_str(line);
            out.push('\n');
        }
    }
    std::fs::write(t.config(), out).unwrap();
    std::fs::write(t.dir.path().join("data/upstream-ca.pem"), ca_pem).unwrap();
}

/// The same failures met by `sync --once` on a provisioned terminal (a timeout too, with
/// `timeout-secs = 1`): the error names the cause and what to do, exit 3, the event kept.
#[test]
fn sync_failures_say_what_to_do_in_the_terminals_language() {
    use peers::{Behaviour, Pki, RawPeer, TlsPeer};
    let pki = Pki::new("installer");
    let stranger = Pki::new("stranger");
    let expired = TlsPeer::start(pki.server(Some(((2020, 1, 1), (2021, 1, 1)))));
    let foreign = TlsPeer::start(stranger.server(None));
    let plain = RawPeer::start(Behaviour::PlainHttp);
    let reset = RawPeer::start(Behaviour::Reset);
    let silent = RawPeer::start(Behaviour::Silent);
    let closed = format!("https://127.0.0.1:{}/", peers::closed_port());
    for language in ["zh-CN", "en"] {
        let up = TestUpstream::start();
        let t = provisioned_with_an_event(&up, language);
        let zh = language == "zh-CN";
        let pick = |zh_words: &'static str, en_words: &'static str| if zh { zh_words } else { en_words };
        let wrong_path = format!("{}api/", up.url);
        let cases: Vec<(&str, String, &str, Vec<&str>)> = vec![
            ("refused", closed.clone(), &pki.ca_pem, vec![pick("拒绝连接", "connection refused")]),
            ("plain http", plain.url(), &pki.ca_pem, vec![pick("不使用 HTTPS", "does not speak HTTPS")]),
            ("reset", reset.url(), &pki.ca_pem, vec![pick("被重置", "was reset")]),
            ("timeout", silent.url(), &pki.ca_pem, vec![pick("1 秒内没有回答", "did not answer within 1 s")]),
            (
                "expired",
                expired.url.clone(),
                &pki.ca_pem,
                vec![pick("时钟", "clock"), pick("无需用新的 --ca", "no new --ca")],
            ),
            (
                "wrong CA",
                foreign.url.clone(),
                &pki.ca_pem,
                vec![pick("不是由本终端获得的 CA 证书", "not signed by the CA certificate")],
            ),
            ("wrong path", wrong_path, &up.ca_pem, vec![pick("404（找不到）", "404 Not Found")]),
        ];
        for (what, url, ca, needles) in cases {
            point_upstream(&t, &url, ca, 1);
            let r = t.run(&["sync", "--once"]);
            assert_eq!(r.code, 3, "{what}: {}{}", r.stdout, r.stderr);
            let last = r.stderr.trim_end().lines().last().unwrap_or_default().to_owned();
            for needle in &needles {
                assert!(last.contains(needle), "{what} ({language}): {needle:?} missing from: {}", r.stderr);
            }
            assert_said_once(&Run { code: r.code, stdout: String::new(), stderr: last });
            assert_words(&r, language);
            let r = t.run(&["outbox", "list", "--json"]);
            assert_eq!(r.json().as_array().map(Vec::len), Some(1), "{what}: the event is kept");
        }
        point_upstream(&t, &up.url, &up.ca_pem, 10);
        let r = t.run(&["sync", "--once"]);
        assert_eq!(r.code, 0, "{}{}", r.stdout, r.stderr);
        assert_words(&r, language);
    }
}

/// Issue 19 item 5: `sync --once` exits 3 while no rule set is installed, even with
/// nothing left to deliver, and 0 once upstream has one.
#[test]
fn sync_once_fails_while_no_rule_set_is_installed() {
    for language in ["zh-CN", "en"] {
        let up = TestUpstream::start();
        let t = TestTerminal::bare(21);
        up.set_ruleset_keys(&t.issuer.trust_anchors_json());
        up.add_code("GOOD-CODE");
        let r = t.provision_in(&up.url, &up.ca_pem, "GOOD-CODE", language);
        assert_eq!(r.code, 3, "no rule set to fetch: {}{}", r.stdout, r.stderr);
        assert_words(&r, language);
        let r = t.run(&["sync", "--once"]);
        assert_error(&r, 3, &["no_ruleset", "`redeemd sync --once`"]);
        assert_words(&r, language);
        let payload = t.issuer.ruleset_payload(3, jiff::Timestamp::now(), &["DINING"], &[]);
        up.set_ruleset(&t.issuer.sign_ruleset(&payload));
        let r = t.run(&["sync", "--once"]);
        assert_eq!(r.code, 0, "{}{}", r.stdout, r.stderr);
        assert_words(&r, language);
    }
}
