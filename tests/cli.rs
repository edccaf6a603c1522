//! The real binary end to end: init → import → redeem → void → report, and every kind
//! of bad input with its message, exit status and an unchanged ledger.

mod common;

use common::{Run, TestTerminal};

fn assert_exit(run: &Run, code: i32, what: &str) {
    assert_eq!(
        run.code, code,
        "{what}: exit {} (want {code})\nstdout: {}\nstderr: {}",
        run.code, run.stdout, run.stderr
    );
}

#[test]
fn init_import_redeem_void_report() {
    let t = TestTerminal::with_ruleset();
    let code = t.code("CP-0001", "DINING");

    let check = t.run(&["check", &code, "--amount", "58", "--json"]);
    assert_exit(&check, 0, "check");
    assert_eq!(check.json()["decision"], "accepted");
    assert_eq!(check.json()["redemption_id"], serde_json::Value::Null, "check writes nothing");

    let first = t.run(&["redeem", &code, "--amount", "58.00", "--json"]);
    assert_exit(&first, 0, "redeem");
    let record = first.json();
    assert_eq!(record["decision"], "accepted");
    assert_eq!(record["discount"], 1000);
    assert_eq!(record["coupon_id"], "CP-0001");
    assert_eq!(record["campaign_id"], "DINING");
    let redemption_id = record["redemption_id"].as_str().unwrap().to_owned();

    let again = t.run(&["redeem", &code, "--amount", "58", "--json"]);
    assert_exit(&again, 1, "second redeem");
    assert_eq!(again.json()["reason"], "already_redeemed");
    assert_eq!(again.json()["discount"], 0);

    let void = t.run(&["void", &redemption_id, "--reason", "customer changed mind"]);
    assert_exit(&void, 0, "void");
    assert!(void.stdout.contains("redeemed again"), "{}", void.stdout);
    let twice = t.run(&["void", &redemption_id]);
    assert_exit(&twice, 0, "second void");
    assert!(twice.stdout.contains("already voided"), "{}", twice.stdout);
    let missing = t.run(&["void", "no-such-id"]);
    assert_exit(&missing, 3, "void of an unknown id");
    assert!(missing.stderr.contains("no-such-id"), "{}", missing.stderr);

    let third = t.run(&["redeem", &code, "--amount", "30", "--eligible", "20.5", "--json"]);
    assert_exit(&third, 1, "below min spend");
    assert_eq!(third.json()["reason"], "below_min_spend");
    let fourth = t.run(&["redeem", &code, "--amount", "45.5", "--json"]);
    assert_exit(&fourth, 0, "redeem after void");

    let report = t.run(&["report", "daily", "--format", "json"]);
    assert_exit(&report, 0, "report json");
    let r = report.json();
    assert_eq!(r["timezone"], "Asia/Shanghai");
    assert_eq!(r["currency"], "CNY");
    assert_eq!(r["totals"]["redemptions"], 1);
    assert_eq!(r["totals"]["voids"], 1);
    assert_eq!(r["totals"]["discount"], 1000);
    assert_eq!(r["totals"]["basket_total"], 4550);
    assert_eq!(r["totals"]["leverage"], 4.55);
    let list = r["redemptions"].as_array().unwrap();
    assert_eq!(list.len(), 2);
    assert_eq!(list[0]["voided"], true);
    assert_eq!(list[0]["redemption_id"], redemption_id.as_str());
    assert!(list.iter().all(|x| x["state"] == "pending"));
    assert_eq!(r["campaigns"][0]["campaign_id"], "DINING");
    assert!(!r["hours"].as_array().unwrap().is_empty());

    let csv = t.run(&["report", "daily", "--format", "csv"]);
    assert_exit(&csv, 0, "report csv");
    assert_eq!(csv.stdout.lines().count(), 3);
    assert!(csv.stdout.contains(",45.50,"), "{}", csv.stdout);
    let table = t.run(&["report", "daily"]);
    assert_exit(&table, 0, "report table");
    assert!(table.stdout.contains("leverage") && table.stdout.contains("DINING"), "{}", table.stdout);
    let other_day = t.run(&["report", "daily", "--date", "2001-01-01", "--format", "json"]);
    assert_eq!(other_day.json()["totals"]["redemptions"], 0);

    // The outbox holds redeem, void, redeem with seq 1, 2, 3.
    let store = redeemd::store::Store::open(&t.db()).unwrap();
    let outbox = store.outbox().unwrap();
    let kinds: Vec<_> = outbox.iter().map(|(seq, _, kind, _)| (*seq, kind.as_str())).collect();
    assert_eq!(kinds, [(1, "redeem"), (2, "void"), (3, "redeem")]);
}

#[test]
fn ruleset_show_and_import_outcomes() {
    let t = TestTerminal::new();
    let none = t.run(&["ruleset", "show", "--json"]);
    assert_exit(&none, 0, "show without rule set");
    assert_eq!(none.json()["version"], serde_json::Value::Null);

    let v5 = t.write_ruleset("v5.jws", 5, &["DINING"], &["R-1", "R-2"]);
    assert_exit(&t.run(&["ruleset", "import", &v5]), 0, "import v5");
    let same = t.run(&["ruleset", "import", &v5]);
    assert_exit(&same, 0, "same version");
    assert!(same.stdout.contains("already in force"), "{}", same.stdout);

    let show = t.run(&["ruleset", "show", "--json"]);
    let s = show.json();
    assert_eq!(s["version"], 5);
    assert_eq!(s["campaigns"], 1);
    assert_eq!(s["revoked"], 2);
    assert_eq!(s["timezone"], "Asia/Shanghai");
    assert_eq!(s["signature"], "verified");
    let text = t.run(&["ruleset", "show"]);
    assert!(text.stdout.contains("rule set version 5"), "{}", text.stdout);

    let before = t.fingerprint();
    // rollback
    let v4 = t.write_ruleset("v4.jws", 4, &["DINING"], &[]);
    let r = t.run(&["ruleset", "import", &v4]);
    assert_exit(&r, 3, "rollback");
    assert!(r.stderr.contains("rollback") && r.stderr.contains("version 5 stays in force"), "{}", r.stderr);
    // forged: a valid rule set whose payload was swapped
    let good = std::fs::read_to_string(t.write_ruleset("v6.jws", 6, &["DINING"], &[])).unwrap();
    let other = std::fs::read_to_string(t.write_ruleset("v7.jws", 7, &["GROCERY"], &[])).unwrap();
    let parts: Vec<&str> = good.split('.').collect();
    let other_parts: Vec<&str> = other.split('.').collect();
    std::fs::write(t.path("forged.jws"), format!("{}.{}.{}", parts[0], other_parts[1], parts[2])).unwrap();
    let r = t.run(&["ruleset", "import", &t.path("forged.jws")]);
    assert_exit(&r, 3, "forged");
    assert!(r.stderr.contains("signature does not verify"), "{}", r.stderr);
    // signed by a stranger
    let stranger = redeemd::issuer::Issuer::from_seed(77);
    let payload = stranger.ruleset_payload(9, jiff::Timestamp::now(), &["DINING"], &[]);
    std::fs::write(t.path("stranger.jws"), stranger.sign_ruleset(&payload)).unwrap();
    let r = t.run(&["ruleset", "import", &t.path("stranger.jws")]);
    assert_exit(&r, 3, "untrusted");
    assert!(r.stderr.contains("not one of this terminal's rule-set trust anchors"), "{}", r.stderr);
    // not a JWS at all, binary, missing
    std::fs::write(t.path("garbage.jws"), "hello world").unwrap();
    assert_exit(&t.run(&["ruleset", "import", &t.path("garbage.jws")]), 3, "garbage");
    std::fs::write(t.path("binary.jws"), [0xff, 0xfe, 0x00, 0x80]).unwrap();
    let r = t.run(&["ruleset", "import", &t.path("binary.jws")]);
    assert_exit(&r, 2, "binary file");
    assert!(r.stderr.contains("binary.jws"), "{}", r.stderr);
    let r = t.run(&["ruleset", "import", &t.path("missing.jws")]);
    assert_exit(&r, 2, "missing file");
    assert!(r.stderr.contains("missing.jws"), "{}", r.stderr);
    assert_eq!(t.fingerprint(), before, "refused imports changed the ledger");
}

#[test]
fn usage_and_configuration_errors() {
    let t = TestTerminal::with_ruleset();
    let r = t.run(&["redeem", "CP1:X", "--amount", "5", "--frobnicate"]);
    assert_exit(&r, 2, "unknown flag");
    assert!(r.stderr.contains("--frobnicate"), "{}", r.stderr);
    assert_exit(&t.run(&["no-such-command"]), 2, "unknown command");
    assert_exit(&t.run(&["redeem", "CP1:X"]), 2, "missing --amount");
    let help = t.run(&["--help"]);
    assert_exit(&help, 0, "help");
    assert!(help.stdout.contains("Examples:"), "{}", help.stdout);

    // Missing, broken and unknown-key configs: exit 2 naming the file.
    let missing = std::process::Command::new(common::binary())
        .args(["--config", &t.path("nope.toml"), "ruleset", "show"])
        .output()
        .unwrap();
    assert_eq!(missing.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&missing.stderr);
    assert!(stderr.contains("nope.toml") && stderr.contains("redeemd init"), "{stderr}");

    let good = std::fs::read_to_string(t.config()).unwrap();
    for (broken, expect) in [
        ("data-dir = [".to_owned(), "redeemd.toml"),
        (format!("{good}\nfavourite-colour = \"blue\"\n"), "favourite-colour"),
        (good.replace("Asia/Shanghai", "Mars/Olympus"), "Mars/Olympus"),
    ] {
        std::fs::write(t.config(), &broken).unwrap();
        let r = t.run(&["ruleset", "show"]);
        assert_exit(&r, 2, &format!("config {broken:?}"));
        assert!(r.stderr.contains(expect), "{expect} not in {}", r.stderr);
    }
    std::fs::write(t.config(), &good).unwrap();

    let again =
        t.run(&["init", "--data-dir", "x", "--merchant-id", "M", "--merchant-category", "c", "--trust-key", "k"]);
    assert_exit(&again, 2, "init over an existing config");
    assert!(again.stderr.contains("--force"), "{}", again.stderr);
}

#[test]
fn bad_amounts_are_refused_and_change_nothing() {
    let t = TestTerminal::with_ruleset();
    let code = t.code("CP-AMOUNT", "DINING");
    let before = t.fingerprint();
    for bad in ["1e3", "-5", "58.001", "", "五十", "58,00", " 58", "0x3A", "92233720368547758.07", "1000000000.01"] {
        let r = t.run(&["redeem", &code, "--amount", bad]);
        assert_exit(&r, 2, &format!("amount {bad:?}"));
        assert!(r.stderr.contains(&format!("{bad:?}")), "{bad:?} not named in {}", r.stderr);
    }
    let r = t.run(&["redeem", &code, "--amount", "10", "--eligible", "20"]);
    assert_exit(&r, 2, "eligible above amount");
    let r = t.run(&["check", &code, "--amount", "50", "--at", "yesterday"]);
    assert_exit(&r, 2, "bad --at");
    assert!(r.stderr.contains("yesterday"), "{}", r.stderr);
    assert_eq!(t.fingerprint(), before);
}

#[test]
fn garbage_codes_are_malformed_and_change_nothing() {
    let t = TestTerminal::with_ruleset();
    let before = t.fingerprint();
    let valid = t.code("CP-GARBAGE", "DINING");
    let mut cases: Vec<String> = vec![
        "".into(),
        "CP1:".into(),
        "cp1:ABC".into(),
        "hello".into(),
        "CP1:%%%".into(),
        format!("{valid} "),
        valid[..valid.len() - 3].to_owned(),
        valid.replace("CP1:", "CP1: "),
        format!("CP1:{}", "A".repeat(1501)),
        "CP1:\u{1}\u{7f}\u{1b}[2J".into(),
    ];
    let mut rng = 0x9e3779b97f4a7c15u64;
    for len in [1usize, 7, 100, 1504] {
        let noise: String = (0..len)
            .map(|_| {
                rng ^= rng << 13;
                rng ^= rng >> 7;
                rng ^= rng << 17;
                char::from(b' ' + (rng % 95) as u8)
            })
            .collect();
        cases.push(format!("CP1:{noise}"));
    }
    for case in &cases {
        let r = t.run(&["redeem", case, "--amount", "58", "--json"]);
        assert_exit(&r, 1, &format!("code {:?}", case.chars().take(40).collect::<String>()));
        let record = r.json();
        assert_eq!(record["reason"], "malformed", "{case:?}");
        assert_eq!(record["coupon_id"], serde_json::Value::Null);
    }
    // A megabyte of noise on stdin, and a megabyte of non-UTF-8 bytes.
    let big = vec![b'7'; 1 << 20];
    let r = t.run_with_stdin(&["redeem", "-", "--amount", "58", "--json"], Some(&big));
    assert_exit(&r, 1, "1 MB code");
    assert_eq!(r.json()["reason"], "malformed");
    let binary: Vec<u8> = (0..(1 << 20)).map(|i| (i * 31 % 256) as u8).collect();
    let r = t.run_with_stdin(&["redeem", "-", "--amount", "58", "--json"], Some(&binary));
    assert_exit(&r, 1, "1 MB of bytes");
    let r = t.run_with_stdin(&["redeem", "-", "--amount", "58", "--json"], Some(b"CP1:\0\0ABC\n"));
    assert_exit(&r, 1, "NUL bytes");
    assert_eq!(t.fingerprint(), before);
    // The valid code read from stdin with a line ending still works.
    let r = t.run_with_stdin(&["check", "-", "--amount", "58", "--json"], Some(format!("{valid}\r\n").as_bytes()));
    assert_exit(&r, 0, "code on stdin");
}

#[test]
fn cashier_messages_follow_the_configured_language() {
    let t = TestTerminal::with_ruleset();
    let config = std::fs::read_to_string(t.config()).unwrap().replace("language = \"en\"", "language = \"zh-CN\"");
    std::fs::write(t.config(), config).unwrap();
    let r = t.run(&["redeem", &t.code("CP-ZH", "DINING"), "--amount", "58", "--json"]);
    assert_exit(&r, 0, "redeem");
    assert_eq!(r.json()["message"], "核销成功，优惠 10.00 元");
    let r = t.run(&["redeem", "CP1:A", "--amount", "58", "--json"]);
    assert!(r.json()["message"].as_str().unwrap().contains("无法识别"), "{}", r.stdout);
}

#[test]
fn revoked_and_unknown_campaign_through_the_binary() {
    let t = TestTerminal::with_ruleset();
    let r = t.run(&["redeem", &t.code("REVOKED-1", "DINING"), "--amount", "58", "--json"]);
    assert_eq!(r.json()["reason"], "revoked");
    let r = t.run(&["redeem", &t.code("CP-X", "NOPE"), "--amount", "58", "--json"]);
    assert_eq!(r.json()["reason"], "unknown_campaign");
    let stranger = redeemd::issuer::Issuer::from_seed(31);
    let code = stranger.code(&redeemd::issuer::CodeSpec::new("CP-Y", "DINING", jiff::Timestamp::now()));
    let r = t.run(&["redeem", &code, "--amount", "58", "--json"]);
    assert_eq!(r.json()["reason"], "unknown_key");
}

#[test]
fn an_empty_or_foreign_ledger_is_refused_not_taken_for_a_new_one() {
    let t = TestTerminal::with_ruleset();
    let code = t.code("C-STAMP", "DINING");
    assert_exit(&t.run(&["redeem", &code, "--amount", "58"]), 0, "redeem on the real ledger");
    let db = t.db();
    let _ = std::fs::remove_file(db.with_extension("sqlite-wal"));
    let _ = std::fs::remove_file(db.with_extension("sqlite-shm"));
    // A ledger truncated to 0 bytes (a full disk, a bad copy).
    std::fs::write(&db, b"").unwrap();
    for args in [vec!["redeem", code.as_str(), "--amount", "58"], vec!["report", "daily"]] {
        let r = t.run(&args);
        assert_exit(&r, 3, "an empty ledger");
        assert!(r.stderr.contains("not a redeemd ledger") && r.stderr.contains("empty"), "{}", r.stderr);
        assert!(r.stderr.contains("backup"), "says what to do: {}", r.stderr);
    }
    assert_eq!(std::fs::metadata(&db).unwrap().len(), 0, "left as it was");
    // Another program's SQLite database.
    std::fs::remove_file(&db).unwrap();
    let other = rusqlite::Connection::open(&db).unwrap();
    other.execute_batch("CREATE TABLE photos (id INTEGER PRIMARY KEY, name TEXT)").unwrap();
    drop(other);
    let r = t.run(&["redeem", &code, "--amount", "58"]);
    assert_exit(&r, 3, "a foreign database");
    assert!(r.stderr.contains("not a redeemd ledger"), "{}", r.stderr);
    // Not SQLite at all.
    std::fs::write(&db, b"hello, this is a text file and not a ledger at all........").unwrap();
    let r = t.run(&["redeem", &code, "--amount", "58"]);
    assert_exit(&r, 3, "not a database");
    assert!(r.stderr.contains("not an SQLite database"), "{}", r.stderr);
}

#[test]
fn edited_rule_set_tables_are_caught_and_fail_closed() {
    let t = TestTerminal::with_ruleset();
    let show = t.run(&["ruleset", "show"]);
    assert_exit(&show, 0, "show");
    assert!(show.stdout.contains("tables match"), "{}", show.stdout);
    // Someone un-revokes a coupon and doubles a face value behind the signature's back.
    let conn = rusqlite::Connection::open(t.db()).unwrap();
    conn.execute("DELETE FROM revoked WHERE coupon_id = 'REVOKED-1'", []).unwrap();
    conn.execute(
        "UPDATE campaign SET wire_json = replace(wire_json, '\"face_value\":1000', '\"face_value\":2000')",
        [],
    )
    .unwrap();
    drop(conn);
    let show = t.run(&["ruleset", "show"]);
    assert_exit(&show, 3, "show over edited tables");
    assert!(show.stderr.contains("differ from the signed rule set"), "{}", show.stderr);
    let d = common::daemon::Daemon::start(&t, &[]);
    let status = d.get("/v1/status").json();
    assert!(status["ruleset_problem"].as_str().unwrap().contains("differ"), "{status}");
    assert_eq!(status["ruleset"], serde_json::Value::Null);
    let id = d.open_checkout(5800);
    assert_eq!(d.present(&id, &t.code("C-EDIT", "DINING"))["reason"], "no_ruleset", "fails closed");
}

#[test]
fn refusals_say_what_to_do_and_demo_once_runs_its_round_trip() {
    let t = TestTerminal::with_ruleset();
    let r = t.run(&["redeem", &t.code("ADV-1", "DINING"), "--amount", "25", "--json"]);
    assert_eq!(r.json()["message"], "Below the minimum spend (minimum spend 40.00, 15.00 more to go)");
    let code = t.code("ADV-2", "DINING");
    assert_exit(&t.run(&["redeem", &code, "--amount", "58"]), 0, "redeem");
    let r = t.run(&["redeem", &code, "--amount", "58", "--json"]);
    let message = r.json()["message"].as_str().unwrap().to_owned();
    assert!(message.starts_with("Coupon already used (used on this terminal at 20"), "{message}");

    let dir = tempfile::tempdir().unwrap();
    let out = std::process::Command::new(common::binary())
        .args(["demo", "--once", "--language", "en", "--dir"])
        .arg(dir.path().join("demo"))
        .env("REDEEMD_LOG", "error")
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "demo --once: {stdout}{}", String::from_utf8_lossy(&out.stderr));
    assert!(stdout.contains("ACCEPTED") && stdout.contains("REJECTED  already_redeemed"), "{stdout}");
}
