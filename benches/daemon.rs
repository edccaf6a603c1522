//! `cargo bench --bench daemon`: the real `redeemd run` binary, in a temporary directory
//! under target/, on a ledger of 10^6 redemptions with a rule set of 10^4 campaigns and
//! 10^6 revoked ids, each figure next to its raw baseline measured in the same run.
//!
//! 1. scan to decision: a frame written on a pseudo-terminal (the scanner) to (a) the
//!    good-read byte read back on it and (b) the `decision` event on `/v1/events`, against
//!    a bare one-row `INSERT`+`COMMIT` (WAL, synchronous=FULL) on the same disk, one after
//!    each scan;
//! 2. `POST /v1/checkouts/{id}/codes` over one keep-alive connection, against decide+commit
//!    by an in-process `Agent` over a copy of the same ledger, one after each request;
//! 3. memory (VmRSS) after 10^4 redemptions made through the daemon, then CPU and
//!    wake-ups while idle; and VmRSS of a daemon over a small rule set.
//!
//! Quick look (small sizes, a 5 s idle window): `REDEEMD_BENCH_QUICK=1 cargo bench --bench daemon`.
//! Single sizes can be set with `REDEEMD_BENCH_ROWS`, `_REVOKED`, `_CAMPAIGNS`, `_SAMPLES`,
//! `_REDEMPTIONS` and `_IDLE_SECS`; `REDEEMD_BENCH_KEEP=1` keeps the terminals' directory.

mod common;

use redeemd::agent::Agent;
use redeemd::clock::SystemClock;
use redeemd::decision::Terminal;
use redeemd::issuer::{CodeSpec, Issuer};
use redeemd::messages::Language;
use redeemd::money::Money;
use redeemd::store::{CheckoutRef, Store};
use serde_json::Value;
use serialport::{SerialPort, TTYPort};
use std::collections::HashMap;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{Shutdown, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{mpsc, Arc, Mutex};
use std::time::{Duration, Instant};

const MERCHANT: &str = "M-000123";
const CATEGORY: &str = "dining";
/// Longer than the daemon's idle checkpoint delay (500 ms): a till between customers.
const IDLE_PAUSE: Duration = Duration::from_millis(600);
/// Scans and API codes between two such pauses.
const PAUSE_EVERY: usize = 100;
/// Before the idle window: the idle checkpoint done, the last connections gone.
const SETTLE: Duration = Duration::from_secs(2);

use common::{env, ms, percentile};

struct Sizes {
    quick: bool,
    campaigns: usize,
    revoked: usize,
    rows: usize,
    samples: usize,
    redemptions: usize,
    idle: Duration,
}

impl Sizes {
    fn from_env() -> Sizes {
        let quick = std::env::var("REDEEMD_BENCH_QUICK").is_ok_and(|v| !v.is_empty() && v != "0");
        let pick = |full: usize, small: usize| if quick { small } else { full };
        Sizes {
            quick,
            campaigns: env("REDEEMD_BENCH_CAMPAIGNS", pick(10_000, 100)),
            revoked: env("REDEEMD_BENCH_REVOKED", pick(1_000_000, 10_000)),
            rows: env("REDEEMD_BENCH_ROWS", pick(1_000_000, 10_000)),
            samples: env("REDEEMD_BENCH_SAMPLES", pick(2_000, 200)),
            redemptions: env("REDEEMD_BENCH_REDEMPTIONS", pick(10_000, 1_000)),
            idle: Duration::from_secs(env("REDEEMD_BENCH_IDLE_SECS", pick(60, 5)) as u64),
        }
    }
}

// ------------------------------------------------------------------ terminal and daemon

/// A terminal made with the real binary's `init`, in its own directory.
struct Term {
    dir: PathBuf,
}

impl Term {
    fn init(dir: PathBuf, issuer: &Issuer) -> Term {
        std::fs::create_dir_all(&dir).unwrap();
        let t = Term { dir };
        std::fs::write(t.path("anchors.json"), issuer.trust_anchors_json()).unwrap();
        let (anchors, data) = (t.path("anchors.json"), t.path("data"));
        t.run_ok(&[
            "init",
            "--data-dir",
            &data,
            "--merchant-id",
            MERCHANT,
            "--merchant-category",
            CATEGORY,
            "--trust-key",
            &anchors,
            "--language",
            "en",
        ]);
        t
    }

    fn path(&self, name: &str) -> String {
        self.dir.join(name).to_str().unwrap().to_owned()
    }

    fn db(&self) -> PathBuf {
        self.dir.join("data/ledger.sqlite")
    }

    fn command(&self, args: &[&str]) -> Command {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_redeemd"));
        // The default log level (warn), as installed.
        cmd.arg("--config")
            .arg(self.path("redeemd.toml"))
            .args(args)
            .env_remove("REDEEMD_CONFIG")
            .env_remove("REDEEMD_LOG");
        cmd
    }

    fn run_ok(&self, args: &[&str]) {
        let out = self.command(args).stdin(Stdio::null()).output().unwrap();
        assert!(out.status.success(), "redeemd {args:?}: {}", String::from_utf8_lossy(&out.stderr));
    }

    /// Signs a rule set from the demo issuer, without offline limits, and imports it with
    /// `redeemd ruleset import`; returns the JWS size.
    fn import_ruleset(&self, issuer: &Issuer, campaigns: &[String], revoked: &[String]) -> usize {
        let ids: Vec<&str> = campaigns.iter().map(String::as_str).collect();
        let rev: Vec<&str> = revoked.iter().map(String::as_str).collect();
        let mut payload = issuer.ruleset_payload(1, jiff::Timestamp::now(), &ids, &rev);
        // Benchmark checkouts must never hit an offline limit (the demo payload has none;
        // removed anyway should it gain some). One code per checkout: one per basket is enough.
        payload.as_object_mut().unwrap().remove("offline");
        let jws = issuer.sign_ruleset(&payload);
        let file = self.path("ruleset.jws");
        std::fs::write(&file, &jws).unwrap();
        self.run_ok(&["ruleset", "import", &file]);
        jws.len()
    }

    /// A copy of generic-serial with good-read 06 and bad-read 15, as tests/daemon.rs makes it.
    fn beeper_profile(&self) -> String {
        let text = include_str!("../firmware-profiles/generic-serial.toml")
            .replace("id = \"generic-serial\"", "id = \"test-beeper\"");
        let text = if text.contains("[commands]") {
            text.replace("[commands]", "[commands]\ngood-read = \"06\"\nbad-read = \"15\"")
        } else {
            format!("{text}\n[commands]\ngood-read = \"06\"\nbad-read = \"15\"\n")
        };
        let path = self.path("test-beeper.toml");
        std::fs::write(&path, text).unwrap();
        path
    }
}

/// `redeemd run --listen 127.0.0.1:0`, its address read from its first line of stdout.
struct Daemon {
    child: Child,
    addr: String,
    token: String,
    stderr: Arc<Mutex<String>>,
    started_in: Duration,
}

impl Daemon {
    fn start(t: &Term, extra: &[&str]) -> Daemon {
        let started = Instant::now();
        let mut args = vec!["run", "--listen", "127.0.0.1:0"];
        args.extend_from_slice(extra);
        let mut child = t
            .command(&args)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("starting redeemd run");
        let stdout = child.stdout.take().unwrap();
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            let mut lines = BufReader::new(stdout).lines();
            if let Some(Ok(line)) = lines.next() {
                let _ = tx.send(line);
            }
            for _ in lines {}
        });
        let stderr = Arc::new(Mutex::new(String::new()));
        let sink = stderr.clone();
        let err = child.stderr.take().unwrap();
        std::thread::spawn(move || {
            for line in BufReader::new(err).lines().map_while(Result::ok) {
                let mut s = sink.lock().unwrap();
                s.push_str(&line);
                s.push('\n');
            }
        });
        let line = match rx.recv_timeout(Duration::from_secs(180)) {
            Ok(line) => line,
            Err(_) => {
                let _ = child.kill();
                let status = child.wait().unwrap();
                std::thread::sleep(Duration::from_millis(100));
                panic!("redeemd run did not start ({status}): {}", stderr.lock().unwrap());
            }
        };
        let addr = line
            .strip_prefix("redeemd: listening on http://")
            .unwrap_or_else(|| panic!("first line: {line}"))
            .trim_end_matches('/')
            .to_owned();
        let token = std::fs::read_to_string(t.dir.join("data/pos-token")).unwrap().trim().to_owned();
        let mut d = Daemon { child, addr, token, stderr, started_in: Duration::ZERO };
        let mut http = d.http();
        let deadline = Instant::now() + Duration::from_secs(30);
        while http.request("GET", "/v1/status", None).0 != 200 {
            assert!(Instant::now() < deadline, "status never answered 200: {}", d.log());
            std::thread::sleep(Duration::from_millis(20));
        }
        d.started_in = started.elapsed();
        d
    }

    fn pid(&self) -> u32 {
        self.child.id()
    }

    fn http(&self) -> Http {
        Http::connect(&self.addr, &self.token)
    }

    fn log(&self) -> String {
        self.stderr.lock().unwrap().clone()
    }

    /// SIGTERM, then wait (bounded): the exit status and how long it took.
    fn stop(mut self) -> (String, Duration) {
        let t = Instant::now();
        let ok = Command::new("kill").arg("-TERM").arg(self.pid().to_string()).status().is_ok_and(|s| s.success());
        assert!(ok, "kill -TERM {}", self.pid());
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                return (status.to_string(), t.elapsed());
            }
            if t.elapsed() > Duration::from_secs(15) {
                let _ = self.child.kill();
                let status = self.child.wait().unwrap();
                return (format!("did not stop within 15 s, killed ({status})"), t.elapsed());
            }
            std::thread::sleep(Duration::from_millis(5));
        }
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

// ------------------------------------------------------------------ raw HTTP/1.1

/// A minimal HTTP/1.1 client over one keep-alive TCP connection (no TLS, no pooling):
/// every request goes over the same socket, in turn.
struct Http {
    reader: BufReader<TcpStream>,
    host: String,
    token: String,
}

impl Http {
    fn connect(addr: &str, token: &str) -> Http {
        let stream = TcpStream::connect(addr).unwrap();
        stream.set_nodelay(true).unwrap();
        stream.set_read_timeout(Some(Duration::from_secs(60))).unwrap();
        Http { reader: BufReader::new(stream), host: addr.to_owned(), token: token.to_owned() }
    }

    fn request(&mut self, method: &str, path: &str, body: Option<&str>) -> (u16, String) {
        let body = body.unwrap_or("");
        let head = format!(
            "{method} {path} HTTP/1.1\r\nHost: {}\r\nAuthorization: Bearer {}\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
            self.host,
            self.token,
            body.len()
        );
        self.reader.get_mut().write_all(head.as_bytes()).expect("writing a request (connection closed?)");
        let (status, headers) = read_head(&mut self.reader);
        let body = read_body(&mut self.reader, &headers);
        assert!(
            !headers.get("connection").is_some_and(|v| v.eq_ignore_ascii_case("close")),
            "the daemon closed the keep-alive connection"
        );
        (status, String::from_utf8(body).unwrap())
    }

    fn post_json(&mut self, path: &str, body: &str) -> Value {
        let (status, text) = self.request("POST", path, Some(body));
        assert!(status == 200 || status == 201, "POST {path}: {status} {text}");
        serde_json::from_str(&text).unwrap()
    }

    fn open_checkout(&mut self) -> String {
        let v = self.post_json("/v1/checkouts", "{\"basket_total\": 5800}");
        v["checkout_id"].as_str().unwrap().to_owned()
    }

    fn present(&mut self, checkout: &str, code: &str) -> Value {
        self.post_json(&format!("/v1/checkouts/{checkout}/codes"), &serde_json::json!({"code": code}).to_string())
    }
}

/// Status line and headers (names lower-cased).
fn read_head(r: &mut impl BufRead) -> (u16, HashMap<String, String>) {
    let mut line = String::new();
    r.read_line(&mut line).unwrap();
    let status: u16 =
        line.split(' ').nth(1).and_then(|s| s.parse().ok()).unwrap_or_else(|| panic!("status line {line:?}"));
    let mut headers = HashMap::new();
    loop {
        line.clear();
        r.read_line(&mut line).unwrap();
        let l = line.trim_end();
        if l.is_empty() {
            break;
        }
        if let Some((k, v)) = l.split_once(':') {
            headers.insert(k.trim().to_ascii_lowercase(), v.trim().to_owned());
        }
    }
    (status, headers)
}

fn read_body(r: &mut impl BufRead, headers: &HashMap<String, String>) -> Vec<u8> {
    if let Some(len) = headers.get("content-length") {
        let mut body = vec![0; len.parse().unwrap()];
        r.read_exact(&mut body).unwrap();
        return body;
    }
    assert!(headers.get("transfer-encoding").is_some_and(|v| v.contains("chunked")), "no length: {headers:?}");
    let mut body = Vec::new();
    while let Some(chunk) = read_chunk(r) {
        body.extend_from_slice(&chunk);
    }
    body
}

/// One chunk of a chunked body (`None` at its end or on a closed connection).
fn read_chunk(r: &mut impl BufRead) -> Option<Vec<u8>> {
    let mut line = String::new();
    if r.read_line(&mut line).ok()? == 0 {
        return None;
    }
    let size = usize::from_str_radix(line.trim().split(';').next()?, 16).ok()?;
    let mut chunk = vec![0; size];
    r.read_exact(&mut chunk).ok()?;
    line.clear();
    r.read_line(&mut line).ok()?;
    (size > 0).then_some(chunk)
}

/// A `decision` event as the reader thread saw it: when its last byte arrived.
struct SeenDecision {
    at: Instant,
    checkout_id: String,
    decision: String,
}

/// `GET /v1/events` read on its own thread; only `decision` events are passed on.
struct Events {
    rx: mpsc::Receiver<SeenDecision>,
    socket: TcpStream,
    thread: std::thread::JoinHandle<()>,
}

impl Events {
    fn open(addr: &str, token: &str) -> Events {
        let mut stream = TcpStream::connect(addr).unwrap();
        stream.set_nodelay(true).unwrap();
        let socket = stream.try_clone().unwrap();
        write!(
            stream,
            "GET /v1/events HTTP/1.1\r\nHost: {addr}\r\nAuthorization: Bearer {token}\r\nAccept: text/event-stream\r\n\r\n"
        )
        .unwrap();
        let mut reader = BufReader::new(stream);
        let (status, headers) = read_head(&mut reader);
        assert_eq!(status, 200, "event stream: {headers:?}");
        let chunked = headers.get("transfer-encoding").is_some_and(|v| v.contains("chunked"));
        let (tx, rx) = mpsc::channel();
        let thread = std::thread::spawn(move || {
            let mut pending = String::new();
            loop {
                let bytes = if chunked {
                    match read_chunk(&mut reader) {
                        Some(c) => c,
                        None => return,
                    }
                } else {
                    let mut buf = vec![0; 8192];
                    match reader.read(&mut buf) {
                        Ok(0) | Err(_) => return,
                        Ok(n) => buf[..n].to_vec(),
                    }
                };
                let at = Instant::now();
                pending.push_str(&String::from_utf8_lossy(&bytes));
                while let Some(end) = pending.find("\n\n") {
                    let block: String = pending.drain(..end + 2).collect();
                    if !block.lines().any(|l| l.strip_prefix("event:").is_some_and(|v| v.trim() == "decision")) {
                        continue;
                    }
                    let Some(data) = block.lines().find_map(|l| l.strip_prefix("data:")) else { continue };
                    let data: Value = serde_json::from_str(data.trim()).unwrap();
                    let seen = SeenDecision {
                        at,
                        checkout_id: data["checkout_id"].as_str().unwrap_or_default().to_owned(),
                        decision: data["decision"].as_str().unwrap_or_default().to_owned(),
                    };
                    if tx.send(seen).is_err() {
                        return;
                    }
                }
            }
        });
        Events { rx, socket, thread }
    }

    fn close(self) {
        let _ = self.socket.shutdown(Shutdown::Both);
        let _ = self.thread.join();
    }
}

// ------------------------------------------------------------------ /proc

fn proc_status_kb(pid: u32, field: &str) -> u64 {
    let text = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    text.lines()
        .find_map(|l| l.strip_prefix(field).and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok()))
        .unwrap_or(0)
}

/// utime + stime of the whole process, in clock ticks.
fn cpu_ticks(pid: u32) -> u64 {
    let text = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap();
    let fields: Vec<&str> = text[text.rfind(')').unwrap() + 1..].split_whitespace().collect();
    // fields[0] is field 3 (state): utime is field 14, stime field 15
    fields[11].parse::<u64>().unwrap() + fields[12].parse::<u64>().unwrap()
}

/// Per thread: (name, voluntary + nonvoluntary context switches).
fn switches(pid: u32) -> HashMap<u32, (String, u64)> {
    let mut out = HashMap::new();
    let Ok(dir) = std::fs::read_dir(format!("/proc/{pid}/task")) else { return out };
    for entry in dir.flatten() {
        let Ok(tid) = entry.file_name().to_string_lossy().parse::<u32>() else { continue };
        let Ok(text) = std::fs::read_to_string(entry.path().join("status")) else { continue };
        let mut name = String::new();
        let mut total = 0;
        for l in text.lines() {
            if let Some(v) = l.strip_prefix("Name:") {
                name = v.trim().to_owned();
            } else if let Some(v) =
                l.strip_prefix("voluntary_ctxt_switches:").or_else(|| l.strip_prefix("nonvoluntary_ctxt_switches:"))
            {
                total += v.trim().parse::<u64>().unwrap_or(0);
            }
        }
        out.insert(tid, (name, total));
    }
    out
}

/// The 1, 5 and 15 minute load averages: others' work on a shared machine shows here.
fn loadavg() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .unwrap_or_default()
        .split_whitespace()
        .take(3)
        .collect::<Vec<_>>()
        .join(" ")
}

fn cpus() -> usize {
    std::thread::available_parallelism().map_or(1, |n| n.get())
}

fn clock_ticks() -> u64 {
    Command::new("getconf")
        .arg("CLK_TCK")
        .output()
        .ok()
        .and_then(|o| String::from_utf8(o.stdout).ok())
        .and_then(|s| s.trim().parse().ok())
        .unwrap_or(100)
}

struct Idle {
    cpu_percent: f64,
    wakeups_per_s: f64,
    threads: usize,
    per_thread: Vec<(String, u64)>,
    gone: usize,
}

/// CPU and context switches of `pid` over `window` with nothing asked of it.
fn measure_idle(pid: u32, window: Duration) -> Idle {
    let hz = clock_ticks() as f64;
    let (cpu0, sw0, t0) = (cpu_ticks(pid), switches(pid), Instant::now());
    std::thread::sleep(window);
    let (cpu1, sw1, secs) = (cpu_ticks(pid), switches(pid), t0.elapsed().as_secs_f64());
    let mut total = 0;
    let mut per_thread: HashMap<String, u64> = HashMap::new();
    for (tid, (name, after)) in &sw1 {
        // a thread born in the window counts whole
        let delta = after - sw0.get(tid).map_or(0, |b| b.1);
        total += delta;
        *per_thread.entry(name.clone()).or_default() += delta;
    }
    let gone = sw0.keys().filter(|t| !sw1.contains_key(t)).count();
    let mut per_thread: Vec<_> = per_thread.into_iter().filter(|(_, n)| *n > 0).collect();
    per_thread.sort_by_key(|p| std::cmp::Reverse(p.1));
    Idle {
        cpu_percent: (cpu1 - cpu0) as f64 / hz / secs * 100.0,
        wakeups_per_s: total as f64 / secs,
        threads: sw1.len(),
        per_thread,
        gone,
    }
}

// ------------------------------------------------------------------ ledger and codes

/// The shared bulk fill, with a big page cache while filling and the WAL folded back.
fn prefill(db: &Path, rows: usize, campaigns: usize) {
    let conn = rusqlite::Connection::open(db).unwrap();
    conn.pragma_update(None, "cache_size", -524_288).unwrap(); // 512 MiB while filling
                                                               // Starting 30 days ago, 2 s apart (the report benches read days with none of them).
    let start = jiff::Timestamp::now().as_millisecond() - 30 * 24 * 3_600_000;
    common::prefill(&conn, rows, campaigns, start + (rows as i64) * 2000);
    conn.execute_batch("PRAGMA wal_checkpoint(TRUNCATE)").unwrap();
}

/// Fresh codes of the demo issuer, spread over the campaigns and 5,000 holders.
fn codes(issuer: &Issuer, prefix: &str, n: usize, campaigns: &[String]) -> Vec<String> {
    let now = jiff::Timestamp::now();
    (0..n)
        .map(|i| {
            let mut spec =
                CodeSpec::new(format!("{prefix}-{i:07}"), campaigns[i * 7919 % campaigns.len()].clone(), now);
            spec.holder = format!("holder-{:06}", i % 5000).into_bytes();
            issuer.code(&spec)
        })
        .collect()
}

/// The bare baseline: one small row per transaction, same pragmas, same directory.
struct Bare(rusqlite::Connection);

impl Bare {
    fn open(path: &Path) -> Bare {
        let c = rusqlite::Connection::open(path).unwrap();
        let _: String = c.pragma_update_and_check(None, "journal_mode", "WAL", |r| r.get(0)).unwrap();
        c.pragma_update(None, "synchronous", "FULL").unwrap();
        c.pragma_update(None, "wal_autocheckpoint", 16_384).unwrap();
        c.execute_batch("CREATE TABLE t (id INTEGER PRIMARY KEY, payload TEXT NOT NULL)").unwrap();
        Bare(c)
    }

    fn commit(&mut self, i: usize) -> Duration {
        let t = Instant::now();
        self.0.execute_batch("BEGIN IMMEDIATE").unwrap();
        self.0.prepare_cached("INSERT INTO t (payload) VALUES (?1)").unwrap().execute([format!("row {i}")]).unwrap();
        self.0.execute_batch("COMMIT").unwrap();
        t.elapsed()
    }

    fn checkpoint(&self) {
        self.0.query_row("PRAGMA wal_checkpoint(PASSIVE)", [], |_| Ok(())).unwrap();
    }
}

/// A pseudo-terminal whose slave is reachable at `link`, as a scanner's port.
fn plug(link: &Path) -> TTYPort {
    let (mut master, slave) = TTYPort::pair().expect("a pseudo-terminal pair");
    let slave_path = slave.name().expect("the slave has a path");
    drop(slave);
    master.set_timeout(Duration::from_secs(2)).unwrap();
    let _ = std::fs::remove_file(link);
    std::os::unix::fs::symlink(slave_path, link).unwrap();
    master
}

fn wait_scanner_connected(d: &Daemon, http: &mut Http) {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let (_, text) = http.request("GET", "/v1/status", None);
        let v: Value = serde_json::from_str(&text).unwrap();
        if v["scanner"]["state"] == "connected" {
            return;
        }
        assert!(Instant::now() < deadline, "scanner never connected: {v} {}", d.log());
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// `n` redemptions through the API, each in a checkout of its own (open + code).
fn redeem_through_api(http: &mut Http, codes: &[String]) -> Duration {
    let t = Instant::now();
    for code in codes {
        let id = http.open_checkout();
        let r = http.present(&id, code);
        assert_eq!(r["decision"], "accepted", "{r}");
    }
    t.elapsed()
}

fn main() {
    let sizes = Sizes::from_env();
    let hz = clock_ticks();
    let total_start = Instant::now();
    let load_start = loadavg();
    // Under target/ so the numbers are for the disk the project lives on, not a tmpfs.
    let root = tempfile::tempdir_in(env!("CARGO_TARGET_TMPDIR")).unwrap();
    let issuer = Issuer::from_seed(9);
    let n = sizes.samples;

    // ---------------------------------------------------------------- setup
    let campaigns: Vec<String> = (0..sizes.campaigns).map(|i| format!("CAMP-{i:05}")).collect();
    let revoked: Vec<String> = (0..sizes.revoked).map(|i| format!("REV-{i:09}")).collect();
    let t = Instant::now();
    let big = Term::init(root.path().join("big"), &issuer);
    let init_time = t.elapsed();
    eprintln!(
        "rule set: {} campaigns, {} revoked ids, imported with `redeemd ruleset import`",
        campaigns.len(),
        revoked.len()
    );
    let t = Instant::now();
    let jws_len = big.import_ruleset(&issuer, &campaigns, &revoked);
    let import_time = t.elapsed();
    eprintln!("  {:.1} MB JWS in {import_time:.1?}", jws_len as f64 / 1e6);
    eprintln!("ledger: {} forwarded redemptions (+ checkouts, + answered outbox rows), one transaction", sizes.rows);
    let t = Instant::now();
    prefill(&big.db(), sizes.rows, campaigns.len());
    let prefill_time = t.elapsed();
    let db_mb = std::fs::metadata(big.db()).unwrap().len() as f64 / 1e6;
    eprintln!("  {db_mb:.0} MB in {prefill_time:.1?}");
    let copy = root.path().join("inprocess.sqlite");
    std::fs::copy(big.db(), &copy).unwrap();
    eprintln!("signing {} codes", 3 * n + sizes.redemptions);
    let scan_codes = codes(&issuer, "SCAN", n, &campaigns);
    let api_codes = codes(&issuer, "API", n, &campaigns);
    let inproc_codes = codes(&issuer, "INPROC", n, &campaigns);
    let bulk_codes = codes(&issuer, "BULK", sizes.redemptions.saturating_sub(2 * n), &campaigns);
    let small_codes = codes(&issuer, "SMALL", sizes.redemptions, &["DINING".to_owned(), "GROCERY".to_owned()]);

    // ---------------------------------------------------------------- 1. scan to decision
    // Every measurement alternates with its baseline, sample by sample, so that both see
    // the same disk and the same neighbours (the machine may be shared).
    let mut bare = Bare::open(&root.path().join("bare.sqlite"));
    let link = big.dir.join("scanner");
    let mut master = plug(&link);
    let profile = big.beeper_profile();
    let daemon = Daemon::start(&big, &["--scanner", link.to_str().unwrap(), "--profile", &profile]);
    let pid = daemon.pid();
    let big_started = daemon.started_in;
    let rss_start = proc_status_kb(pid, "VmRSS:");
    eprintln!("daemon {pid} serving in {:.1?} (RSS {} MB)", daemon.started_in, rss_start / 1024);
    let mut http = daemon.http();
    wait_scanner_connected(&daemon, &mut http);
    let events = Events::open(&daemon.addr, &daemon.token);
    eprintln!("scan to decision: {n} scans, each followed by a bare INSERT+COMMIT");
    let mut feedback_lat = Vec::with_capacity(n);
    let mut event_lat = Vec::with_capacity(n);
    let mut bare_lat = Vec::with_capacity(n);
    for (i, code) in scan_codes.iter().enumerate() {
        if i > 0 && i % PAUSE_EVERY == 0 {
            std::thread::sleep(IDLE_PAUSE);
            bare.checkpoint(); // as the daemon does on its idle tick
        }
        let id = http.open_checkout();
        // the frame's body first, as a scanner streams it; then the terminator, timed
        master.write_all(code.as_bytes()).unwrap();
        master.flush().unwrap();
        std::thread::sleep(Duration::from_micros(200));
        let t0 = Instant::now();
        master.write_all(b"\r\n").unwrap();
        master.flush().unwrap();
        let mut byte = [0u8; 1];
        let got = master.read(&mut byte);
        let t_feedback = Instant::now();
        assert!(matches!(got, Ok(1)), "no feedback byte for scan {i}: {got:?}; log: {}", daemon.log());
        assert_eq!(byte[0], 0x06, "scan {i}: bad-read feedback; log: {}", daemon.log());
        let seen = events.rx.recv_timeout(Duration::from_secs(5)).expect("a decision event");
        assert_eq!((seen.checkout_id.as_str(), seen.decision.as_str()), (id.as_str(), "accepted"), "scan {i}");
        feedback_lat.push(t_feedback - t0);
        event_lat.push(seen.at.saturating_duration_since(t0));
        http.post_json(&format!("/v1/checkouts/{id}/close"), "{\"status\": \"paid\"}");
        bare_lat.push(bare.commit(i));
    }
    feedback_lat.sort();
    event_lat.sort();
    bare_lat.sort();
    events.close();
    drop(bare);

    // ---------------------------------------------------------------- 2. API codes
    eprintln!("API: {n} codes over one keep-alive connection, each followed by one in-process Agent::redeem");
    let anchors = redeemd::ruleset::parse_anchors(&issuer.trust_anchors_json()).unwrap();
    let store = Store::open(&copy).unwrap();
    let terminal = Terminal { merchant_id: MERCHANT.into(), merchant_category: CATEGORY.into() };
    let tz = jiff::tz::TimeZone::get("Asia/Shanghai").unwrap();
    let mut agent = Agent::new(store, terminal, anchors, Language::En, tz, Box::new(SystemClock)).unwrap();
    let api_ids: Vec<String> = (0..n).map(|_| http.open_checkout()).collect();
    let agent_ids: Vec<String> = (0..n).map(|_| agent.open_checkout(Money(5800), None, None).unwrap()).collect();
    std::thread::sleep(IDLE_PAUSE);
    agent.store().checkpoint().unwrap();
    let mut api_lat = Vec::with_capacity(n);
    let mut inproc_lat = Vec::with_capacity(n);
    for i in 0..n {
        if i > 0 && i % PAUSE_EVERY == 0 {
            std::thread::sleep(IDLE_PAUSE);
            agent.store().checkpoint().unwrap(); // what the daemon does in that pause
        }
        let path = format!("/v1/checkouts/{}/codes", api_ids[i]);
        let body = serde_json::json!({"code": api_codes[i]}).to_string();
        let t = Instant::now();
        let (status, text) = http.request("POST", &path, Some(&body));
        api_lat.push(t.elapsed());
        assert_eq!(status, 200, "{text}");
        assert!(text.contains("\"decision\":\"accepted\""), "{text}");

        let t = Instant::now();
        let recorded = agent.redeem(CheckoutRef::Existing(&agent_ids[i]), &inproc_codes[i]).unwrap();
        inproc_lat.push(t.elapsed());
        assert!(recorded.decision.accepted(), "{:?}", recorded.decision.outcome);
    }
    drop(agent);
    let api_busy: Duration = api_lat.iter().sum();
    let inproc_busy: Duration = inproc_lat.iter().sum();
    api_lat.sort();
    inproc_lat.sort();

    // ---------------------------------------------------------------- 3. memory and idle
    eprintln!("{} more redemptions through the API (open + code each)", bulk_codes.len());
    let bulk_time = redeem_through_api(&mut http, &bulk_codes);
    let through_daemon = 2 * n + bulk_codes.len();
    drop(http);
    std::thread::sleep(SETTLE);
    let rss_big = proc_status_kb(pid, "VmRSS:");
    let anon_big = proc_status_kb(pid, "RssAnon:");
    let hwm_big = proc_status_kb(pid, "VmHWM:");
    eprintln!("idle for {:?} (no client connected, scanner plugged and silent)", sizes.idle);
    let idle = measure_idle(pid, sizes.idle);
    let big_log = daemon.log();
    let (big_exit, big_stop) = daemon.stop();
    drop(master);

    // ---------------------------------------------------------------- small rule set
    eprintln!("small rule set (2 campaigns, no revoked ids, empty ledger): {} redemptions", small_codes.len());
    let small = Term::init(root.path().join("small"), &issuer);
    small.import_ruleset(&issuer, &["DINING".to_owned(), "GROCERY".to_owned()], &[]);
    let small_link = small.dir.join("scanner");
    let small_master = plug(&small_link);
    let small_profile = small.beeper_profile();
    let d = Daemon::start(&small, &["--scanner", small_link.to_str().unwrap(), "--profile", &small_profile]);
    let mut http = d.http();
    wait_scanner_connected(&d, &mut http);
    let small_rss_start = proc_status_kb(d.pid(), "VmRSS:");
    let small_time = redeem_through_api(&mut http, &small_codes);
    drop(http);
    std::thread::sleep(SETTLE);
    let rss_small = proc_status_kb(d.pid(), "VmRSS:");
    let anon_small = proc_status_kb(d.pid(), "RssAnon:");
    let hwm_small = proc_status_kb(d.pid(), "VmHWM:");
    let small_log = d.log();
    let (small_exit, small_stop) = d.stop();
    drop(small_master);

    // ---------------------------------------------------------------- report
    let bare_p99 = percentile(&bare_lat, 0.99);
    let fb_p99 = percentile(&feedback_lat, 0.99);
    let ev_p99 = percentile(&event_lat, 0.99);
    let api_rate = n as f64 / api_busy.as_secs_f64();
    let inproc_rate = n as f64 / inproc_busy.as_secs_f64();
    let row = |name: &str, lat: &[Duration]| {
        println!(
            "  {name:<36} p50 {:>10}  p99 {:>10}  max {:>10}",
            ms(percentile(lat, 0.5)),
            ms(percentile(lat, 0.99)),
            ms(*lat.last().unwrap())
        )
    };
    println!();
    println!(
        "redeemd daemon bench{}: ledger {} redemptions ({db_mb:.0} MB), {} campaigns, {} revoked ids ({:.1} MB JWS); {n} samples",
        if sizes.quick { " (QUICK)" } else { "" },
        sizes.rows,
        sizes.campaigns,
        sizes.revoked,
        jws_len as f64 / 1e6
    );
    println!(
        "setup: init {init_time:.1?}, ruleset import {import_time:.1?}, ledger prefill {prefill_time:.1?}, daemon serving in {:.1?}",
        big_started
    );
    println!("1. scan to decision (pty scanner, {n} scans, one checkout each)");
    row("frame -> feedback byte (good-read)", &feedback_lat);
    row("frame -> SSE `decision` event", &event_lat);
    row("bare INSERT+COMMIT (WAL, sync=FULL)", &bare_lat);
    println!(
        "  p99 ratio: feedback {:.2}x, SSE {:.2}x of bare commit p99  (target: p99 <= 1 ms and <= 3x)",
        fb_p99.as_secs_f64() / bare_p99.as_secs_f64(),
        ev_p99.as_secs_f64() / bare_p99.as_secs_f64()
    );
    println!("2. POST /v1/checkouts/{{id}}/codes, one keep-alive connection, sequential");
    row("API code (HTTP round trip)", &api_lat);
    row("in-process Agent::redeem", &inproc_lat);
    println!(
        "  codes/s: API {api_rate:.0}, in-process {inproc_rate:.0}, ratio {:.2}  (target >= 0.7)",
        api_rate / inproc_rate
    );
    println!("3. memory and idle");
    println!(
        "  big rule set: VmRSS {:.1} MB (RssAnon {:.1} MB) after {through_daemon} redemptions through the daemon; peak VmHWM {:.1} MB; {:.1} MB after start",
        rss_big as f64 / 1024.0,
        anon_big as f64 / 1024.0,
        hwm_big as f64 / 1024.0,
        rss_start as f64 / 1024.0
    );
    println!(
        "  idle {:.0} s: CPU {:.3}% ({hz} ticks/s), wake-ups {:.2}/s (context switches, {} threads{})",
        sizes.idle.as_secs_f64(),
        idle.cpu_percent,
        idle.wakeups_per_s,
        idle.threads,
        if idle.gone > 0 { format!(", {} ended in the window", idle.gone) } else { String::new() }
    );
    if !idle.per_thread.is_empty() {
        let parts: Vec<String> = idle.per_thread.iter().map(|(name, n)| format!("{name} {n}")).collect();
        println!("    switches by thread: {}", parts.join(", "));
    }
    println!(
        "  small rule set: VmRSS {:.1} MB (RssAnon {:.1} MB) after {} redemptions; peak {:.1} MB; {:.1} MB after start  (target < 20 MB)",
        rss_small as f64 / 1024.0,
        anon_small as f64 / 1024.0,
        small_codes.len(),
        hwm_small as f64 / 1024.0,
        small_rss_start as f64 / 1024.0
    );
    println!(
        "  bulk API redemptions (open + code): big {:.0}/s, small {:.0}/s",
        bulk_codes.len() as f64 / bulk_time.as_secs_f64(),
        small_codes.len() as f64 / small_time.as_secs_f64()
    );
    println!("  SIGTERM: big {big_exit} in {big_stop:.1?}, small {small_exit} in {small_stop:.1?}");
    for (name, log) in [("big", &big_log), ("small", &small_log)] {
        if !log.trim().is_empty() {
            println!("  daemon stderr ({name}): {}", log.trim().lines().take(5).collect::<Vec<_>>().join(" | "));
        }
    }
    println!("load average (1/5/15 min): {load_start} at start, {} at end on {} CPUs", loadavg(), cpus());
    println!("total {:.0?}; reproduce: cargo bench --bench daemon   (quick: REDEEMD_BENCH_QUICK=1 cargo bench --bench daemon)", total_start.elapsed());
    if std::env::var_os("REDEEMD_BENCH_KEEP").is_some() {
        println!("kept (REDEEMD_BENCH_KEEP): {}", root.keep().display());
    }
}
