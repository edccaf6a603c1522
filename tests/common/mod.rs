//! Helpers shared by the integration tests: vector paths, hex, time, and the check that
//! the committed copy of the vectors equals `../shared/vectors` where that exists.
#![allow(dead_code)]

pub mod browser;
pub mod daemon;
pub mod impostor;
pub mod init;
pub mod lanes;
pub mod nats;
pub mod sandbox;
pub mod scanner;
pub mod upstream;
pub mod vectors;
pub mod words;

use std::path::{Path, PathBuf};

/// The committed copy, so a clone outside the workplace runs the same cases.
pub fn vectors_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/vectors")
}

/// `../shared/vectors`, when this checkout sits in the workplace.
pub fn shared_vectors_dir() -> Option<PathBuf> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../shared/vectors");
    dir.is_dir().then_some(dir)
}

/// Fails when a file of the copy under `sub` differs from (or is missing in) the shared one.
pub fn assert_copy_matches_shared(sub: &str) {
    let Some(shared) = shared_vectors_dir() else {
        eprintln!("../shared/vectors not present: testing the committed copy only");
        return;
    };
    let mut compared = 0;
    let mut stack = vec![shared.join(sub)];
    while let Some(dir) = stack.pop() {
        for entry in std::fs::read_dir(&dir).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                stack.push(path);
                continue;
            }
            if path.extension().is_some_and(|e| e == "md") {
                continue; // prose, not data
            }
            let rel = path.strip_prefix(&shared).unwrap();
            let copy = vectors_dir().join(rel);
            let want = std::fs::read(&path).unwrap();
            let got = std::fs::read(&copy).unwrap_or_else(|_| {
                panic!("{} is missing from tests/vectors; copy it from {}", rel.display(), path.display())
            });
            assert!(
                got == want,
                "tests/vectors/{} differs from {}; copy the shared file again",
                rel.display(),
                path.display()
            );
            compared += 1;
        }
    }
    assert!(compared > 0, "no vector files compared");
}

pub fn hex(text: &str) -> Vec<u8> {
    (0..text.len()).step_by(2).map(|i| u8::from_str_radix(&text[i..i + 2], 16).unwrap()).collect()
}

pub fn ts(text: &str) -> jiff::Timestamp {
    text.parse().unwrap_or_else(|e| panic!("{text}: {e}"))
}

/// A terminal made with the real binary in a temporary directory, with a demo issuer
/// whose rule sets are valid around the real now.
pub struct TestTerminal {
    pub dir: tempfile::TempDir,
    pub issuer: redeemd::issuer::Issuer,
}

pub struct Run {
    pub code: i32,
    pub stdout: String,
    pub stderr: String,
}

impl Run {
    pub fn json(&self) -> serde_json::Value {
        let line = self.stdout.lines().next().unwrap_or_else(|| panic!("no output; stderr: {}", self.stderr));
        serde_json::from_str(line).unwrap_or_else(|e| panic!("{e}: {line}"))
    }
}

pub fn binary() -> &'static str {
    env!("CARGO_BIN_EXE_redeemd")
}

impl TestTerminal {
    /// A directory and an issuer, nothing set up (for `provision`).
    pub fn bare(seed: u8) -> TestTerminal {
        let dir = tempfile::tempdir().unwrap();
        let issuer = redeemd::issuer::Issuer::from_seed(seed);
        std::fs::write(dir.path().join("anchors.json"), issuer.trust_anchors_json()).unwrap();
        TestTerminal { dir, issuer }
    }

    /// `init` done, no rule set yet.
    pub fn new() -> TestTerminal {
        TestTerminal::new_in("en")
    }

    /// `init` done in `language` (`zh-CN` or `en`), no rule set yet.
    pub fn new_in(language: &str) -> TestTerminal {
        let t = TestTerminal::bare(9);
        let r = t.init_in(language);
        assert_eq!(r.code, 0, "init: {}", r.stderr);
        t
    }

    /// `init` of this terminal (merchant M-000123, dining) in `language`.
    pub fn init_in(&self, language: &str) -> Run {
        let args = init::init_args(&self.path("data"), &self.path("anchors.json"), language);
        self.run(&args.iter().map(String::as_str).collect::<Vec<_>>())
    }

    /// `init` plus an installed rule set (version 5) with campaigns DINING and GROCERY.
    pub fn with_ruleset() -> TestTerminal {
        let t = TestTerminal::new();
        let file = t.write_ruleset("rs5.jws", 5, &["DINING", "GROCERY"], &["REVOKED-1"]);
        let r = t.run(&["ruleset", "import", &file]);
        assert_eq!(r.code, 0, "import: {}", r.stderr);
        t
    }

    /// `provision` against an upstream at `url` whose CA is `ca_pem` (written to ca.pem).
    pub fn provision(&self, url: &str, ca_pem: &str, code: &str) -> Run {
        self.provision_in(url, ca_pem, code, "en")
    }

    /// `provision` as above, the terminal's language `language`.
    pub fn provision_in(&self, url: &str, ca_pem: &str, code: &str, language: &str) -> Run {
        std::fs::write(self.path("ca.pem"), ca_pem).unwrap();
        let (ca, data) = (self.path("ca.pem"), self.path("data"));
        self.run(&[
            "provision",
            "--upstream",
            url,
            "--enrollment-code",
            code,
            "--ca",
            &ca,
            "--data-dir",
            &data,
            "--language",
            language,
        ])
    }

    pub fn path(&self, name: &str) -> String {
        self.dir.path().join(name).to_str().unwrap().to_owned()
    }

    pub fn config(&self) -> String {
        self.path("redeemd.toml")
    }

    pub fn db(&self) -> PathBuf {
        self.dir.path().join("data/ledger.sqlite")
    }

    pub fn write_ruleset(&self, name: &str, version: u64, campaigns: &[&str], revoked: &[&str]) -> String {
        let payload = self.issuer.ruleset_payload(version, jiff::Timestamp::now(), campaigns, revoked);
        let path = self.path(name);
        std::fs::write(&path, self.issuer.sign_ruleset(&payload)).unwrap();
        path
    }

    pub fn code(&self, coupon_id: &str, campaign: &str) -> String {
        let spec = redeemd::issuer::CodeSpec::new(coupon_id, campaign, jiff::Timestamp::now());
        self.issuer.code(&spec)
    }

    pub fn command(&self, args: &[&str]) -> std::process::Command {
        let mut cmd = std::process::Command::new(binary());
        cmd.arg("--config").arg(self.config()).args(args).env_remove("REDEEMD_CONFIG").env("REDEEMD_LOG", "error");
        cmd
    }

    pub fn run(&self, args: &[&str]) -> Run {
        self.run_with_stdin(args, None)
    }

    pub fn run_with_stdin(&self, args: &[&str], stdin: Option<&[u8]>) -> Run {
        use std::io::Write;
        let mut cmd = self.command(args);
        cmd.stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped());
        let mut child = cmd.spawn().unwrap();
        let mut input = child.stdin.take().unwrap();
        let data = stdin.unwrap_or_default().to_vec();
        let writer = std::thread::spawn(move || {
            let _ = input.write_all(&data);
        });
        let out = child.wait_with_output().unwrap();
        writer.join().unwrap();
        Run {
            code: out.status.code().unwrap_or(-1),
            stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
        }
    }

    /// Every row of every table, in a stable order: equal fingerprints = unchanged ledger.
    pub fn fingerprint(&self) -> String {
        db_fingerprint(&self.db())
    }
}

pub fn db_fingerprint(path: &Path) -> String {
    let conn = rusqlite::Connection::open(path).unwrap();
    let mut tables: Vec<String> = conn
        .prepare("SELECT name FROM sqlite_master WHERE type = 'table' ORDER BY name")
        .unwrap()
        .query_map([], |r| r.get(0))
        .unwrap()
        .map(Result::unwrap)
        .collect();
    tables.retain(|t| !t.starts_with("sqlite_"));
    let mut out = String::new();
    for table in tables {
        let mut stmt = conn.prepare(&format!("SELECT * FROM \"{table}\" ORDER BY 1")).unwrap();
        let columns = stmt.column_count();
        let rows = stmt
            .query_map([], |r| {
                Ok((0..columns).map(|i| format!("{:?}", r.get_ref(i).unwrap())).collect::<Vec<_>>().join("|"))
            })
            .unwrap();
        out.push_str(&format!("[{table}]\n"));
        for row in rows {
            out.push_str(&row.unwrap());
            out.push('\n');
        }
    }
    let version: i64 = conn.pragma_query_value(None, "user_version", |r| r.get(0)).unwrap();
    out.push_str(&format!("user_version={version}\n"));
    out
}

/// Starts `redeemd demo <args> --dir DIR` (stderr dropped): the child and its stdout's lines.
pub fn spawn_demo(args: &[&str], dir: &Path) -> (std::process::Child, std::sync::mpsc::Receiver<String>) {
    let mut child = std::process::Command::new(binary())
        .arg("demo")
        .args(args)
        .arg("--dir")
        .arg(dir)
        .env("REDEEMD_LOG", "warn")
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let stdout = child.stdout.take().unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        use std::io::BufRead;
        for line in std::io::BufReader::new(stdout).lines().map_while(Result::ok) {
            let _ = tx.send(line);
        }
    });
    (child, rx)
}
