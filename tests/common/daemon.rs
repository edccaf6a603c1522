//! The real daemon under test: `redeemd run` started on a free loopback port (read from
//! its first line of stdout), a small HTTP client for the local API, and a reader of its
//! server-sent events. Every wait is bounded; the process is killed when dropped.
#![allow(dead_code)]

use super::TestTerminal;
use serde_json::Value;
use std::io::{BufRead, BufReader};
use std::process::{Child, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

/// An HTTP client for the tests (reqwest needs the ring provider installed first).
pub fn client() -> reqwest::ClientBuilder {
    let _ = rustls::crypto::ring::default_provider().install_default();
    reqwest::Client::builder()
}

pub struct Daemon {
    pub child: Child,
    pub base: String,
    pub token: String,
    runtime: tokio::runtime::Runtime,
    client: reqwest::Client,
    pub stderr: std::sync::Arc<std::sync::Mutex<String>>,
}

pub struct Reply {
    pub status: u16,
    pub headers: reqwest::header::HeaderMap,
    pub text: String,
}

impl Reply {
    pub fn json(&self) -> Value {
        serde_json::from_str(&self.text).unwrap_or_else(|e| panic!("{e}: {:?} (status {})", self.text, self.status))
    }

    pub fn error_code(&self) -> String {
        self.json()["error"]["code"].as_str().unwrap_or_default().to_owned()
    }
}

impl Daemon {
    /// `redeemd run --listen 127.0.0.1:0 <extra>`, waiting until `/v1/status` answers.
    pub fn start(t: &TestTerminal, extra: &[&str]) -> Daemon {
        Daemon::start_with_env(t, extra, &[])
    }

    pub fn start_with_env(t: &TestTerminal, extra: &[&str], env: &[(&str, &str)]) -> Daemon {
        let mut args = vec!["run", "--listen", "127.0.0.1:0"];
        args.extend_from_slice(extra);
        if !extra.contains(&"--scanner") {
            args.extend_from_slice(&["--scanner", "none"]);
        }
        let mut cmd = t.command(&args);
        for (k, v) in env {
            cmd.env(k, v);
        }
        Daemon::from_command(t, &mut cmd)
    }

    /// Starts a prepared `run` command (under faketime, say) and waits until it serves.
    pub fn from_command(t: &TestTerminal, cmd: &mut std::process::Command) -> Daemon {
        cmd.env("REDEEMD_LOG", "info").stdout(Stdio::piped()).stderr(Stdio::piped()).stdin(Stdio::null());
        let mut child = cmd.spawn().expect("starting redeemd run");
        let stdout = child.stdout.take().unwrap();
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            let mut lines = BufReader::new(stdout).lines();
            if let Some(Ok(line)) = lines.next() {
                let _ = tx.send(line);
            }
            for _ in lines {}
        });
        let stderr_text = std::sync::Arc::new(std::sync::Mutex::new(String::new()));
        let sink = stderr_text.clone();
        let stderr = child.stderr.take().unwrap();
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                let mut s = sink.lock().unwrap();
                s.push_str(&line);
                s.push('\n');
            }
        });
        let line = match rx.recv_timeout(Duration::from_secs(20)) {
            Ok(line) => line,
            Err(_) => {
                let _ = child.kill();
                let status = child.wait().unwrap();
                std::thread::sleep(Duration::from_millis(100));
                panic!("redeemd run did not start ({status}): {}", stderr_text.lock().unwrap());
            }
        };
        let base =
            line.strip_prefix("redeemd: listening on ").unwrap_or_else(|| panic!("first line: {line}")).to_owned();
        let token = std::fs::read_to_string(t.dir.path().join("data/pos-token")).unwrap().trim().to_owned();
        let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
        let client =
            client().timeout(Duration::from_secs(45)).redirect(reqwest::redirect::Policy::none()).build().unwrap();
        let daemon = Daemon { child, base, token, runtime, client, stderr: stderr_text };
        let deadline = Instant::now() + Duration::from_secs(10);
        while daemon.get("/v1/status").status != 200 {
            assert!(Instant::now() < deadline, "status never answered 200");
            std::thread::sleep(Duration::from_millis(20));
        }
        daemon
    }

    /// A request with the POS token, unless `headers` carry credentials of their own; a
    /// session's (cookie) `POST` comes from the daemon's own origin, as from its pages,
    /// unless `headers` say where it comes from.
    pub fn request(&self, method: &str, path: &str, body: Option<&str>, headers: &[(&str, &str)]) -> Reply {
        let has = |name: &str| headers.iter().any(|(k, _)| k.eq_ignore_ascii_case(name));
        let mut all: Vec<(&str, &str)> = headers.to_vec();
        if has("cookie") && method != "GET" && !has("origin") && !has("sec-fetch-site") {
            all.push(("origin", &self.base));
        }
        let pos_token = !has("authorization") && !has("cookie");
        self.request_as_is(method, path, body, &all, pos_token)
    }

    /// A request with exactly these headers (and the POS token if asked), with JSON's
    /// content type when there is a body and `headers` give none.
    pub fn request_as_is(
        &self,
        method: &str,
        path: &str,
        body: Option<&str>,
        headers: &[(&str, &str)],
        pos_token: bool,
    ) -> Reply {
        let url = format!("{}{path}", self.base);
        let mut req = self.client.request(method.parse().unwrap(), url);
        let mut typed = false;
        for (k, v) in headers {
            typed |= k.eq_ignore_ascii_case("content-type");
            req = req.header(*k, *v);
        }
        if pos_token {
            req = req.bearer_auth(&self.token);
        }
        if let Some(b) = body {
            if !typed {
                req = req.header("content-type", "application/json");
            }
            req = req.body(b.to_owned());
        }
        self.runtime.block_on(async {
            let resp = req.send().await.expect("request");
            let status = resp.status().as_u16();
            let headers = resp.headers().clone();
            Reply { status, headers, text: resp.text().await.unwrap_or_default() }
        })
    }

    pub fn get(&self, path: &str) -> Reply {
        self.request("GET", path, None, &[])
    }

    pub fn post(&self, path: &str, body: &str) -> Reply {
        self.request("POST", path, Some(body), &[])
    }

    /// Opens a checkout and returns its id.
    pub fn open_checkout(&self, basket: i64) -> String {
        let r = self.post("/v1/checkouts", &format!("{{\"basket_total\": {basket}}}"));
        assert_eq!(r.status, 201, "{}", r.text);
        r.json()["checkout_id"].as_str().unwrap().to_owned()
    }

    pub fn present(&self, checkout: &str, code: &str) -> Value {
        let r = self.post(&format!("/v1/checkouts/{checkout}/codes"), &serde_json::json!({"code": code}).to_string());
        assert_eq!(r.status, 200, "{}", r.text);
        r.json()
    }

    /// `count` logins with wrong PINs (`prefix` and four digits) sent at once, each on a
    /// connection of its own: their statuses.
    pub fn parallel_logins(&self, count: usize, prefix: &str) -> Vec<u16> {
        let threads: Vec<_> = (0..count)
            .map(|i| {
                let (base, pin) = (self.base.clone(), format!("{prefix}{i:04}"));
                std::thread::spawn(move || {
                    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
                    rt.block_on(async {
                        client()
                            .redirect(reqwest::redirect::Policy::none())
                            .build()
                            .unwrap()
                            .post(format!("{base}/manager/login"))
                            .header("content-type", "application/x-www-form-urlencoded")
                            .body(format!("pin={pin}"))
                            .send()
                            .await
                            .unwrap()
                            .status()
                            .as_u16()
                    })
                })
            })
            .collect();
        threads.into_iter().map(|t| t.join().unwrap()).collect()
    }

    /// A live event stream.
    pub fn events(&self) -> EventStream {
        EventStream::open(&self.base, &self.token)
    }

    pub fn pid(&self) -> i32 {
        self.child.id() as i32
    }

    pub fn signal(&self, signal: &str) {
        let status = std::process::Command::new("kill").arg(format!("-{signal}")).arg(self.pid().to_string()).status();
        assert!(status.unwrap().success());
    }

    /// Waits for the process to exit (bounded), returning its exit code and how long it took.
    pub fn wait_exit(&mut self, limit: Duration) -> (Option<i32>, Duration) {
        let started = Instant::now();
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                return (status.code(), started.elapsed());
            }
            if started.elapsed() > limit {
                let _ = self.child.kill();
                let _ = self.child.wait();
                return (None, started.elapsed());
            }
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    pub fn kill9(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    pub fn log(&self) -> String {
        self.stderr.lock().unwrap().clone()
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Reads `text/event-stream` on a thread: (event name, data JSON) and comment lines.
pub struct EventStream {
    rx: mpsc::Receiver<Sse>,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
}

#[derive(Debug, Clone)]
pub enum Sse {
    Event { name: String, id: String, data: Value },
    Comment,
    Ended,
}

impl EventStream {
    pub fn open(base: &str, token: &str) -> EventStream {
        EventStream::open_with(base, "authorization", &format!("Bearer {token}"))
    }

    /// A stream opened with one header as its credential (a session's `cookie`, say).
    pub fn open_with(base: &str, header: &str, value: &str) -> EventStream {
        let (tx, rx) = mpsc::channel();
        let (ready_tx, ready_rx) = mpsc::channel();
        let (stop, stop_rx) = tokio::sync::oneshot::channel::<()>();
        let url = format!("{base}/v1/events");
        let (header, value) = (header.to_owned(), value.to_owned());
        std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
            rt.block_on(async move {
                let client = client().build().unwrap();
                let mut resp = client.get(url).header(header, value).send().await.expect("event stream");
                let _ = ready_tx.send(resp.status().as_u16());
                let mut buf = String::new();
                let mut stop_rx = stop_rx;
                loop {
                    let chunk = tokio::select! {
                        c = resp.chunk() => c,
                        _ = &mut stop_rx => return,
                    };
                    match chunk {
                        Ok(Some(bytes)) => {
                            buf.push_str(&String::from_utf8_lossy(&bytes));
                            while let Some(end) = buf.find("\n\n") {
                                let block: String = buf.drain(..end + 2).collect();
                                let (mut name, mut id, mut data, mut comment) = (None, String::new(), None, false);
                                for line in block.lines() {
                                    if let Some(v) = line.strip_prefix("event:") {
                                        name = Some(v.trim().to_owned());
                                    } else if let Some(v) = line.strip_prefix("id:") {
                                        id = v.trim().to_owned();
                                    } else if let Some(v) = line.strip_prefix("data:") {
                                        data = serde_json::from_str(v.trim()).ok();
                                    } else if line.starts_with(':') {
                                        comment = true;
                                    }
                                }
                                let item = match (name, data) {
                                    (Some(name), Some(data)) => Sse::Event { name, id, data },
                                    _ if comment => Sse::Comment,
                                    _ => continue,
                                };
                                if tx.send(item).is_err() {
                                    return;
                                }
                            }
                        }
                        _ => {
                            let _ = tx.send(Sse::Ended);
                            return;
                        }
                    }
                }
            });
        });
        let status = ready_rx.recv_timeout(Duration::from_secs(10)).expect("event stream answered");
        assert_eq!(status, 200);
        EventStream { rx, stop: Some(stop) }
    }

    /// The next event named `name` within `timeout` (others are skipped).
    pub fn next_named(&self, name: &str, timeout: Duration) -> Option<Value> {
        let deadline = Instant::now() + timeout;
        loop {
            let left = deadline.checked_duration_since(Instant::now())?;
            match self.rx.recv_timeout(left) {
                Ok(Sse::Event { name: n, data, .. }) if n == name => return Some(data),
                Ok(Sse::Ended) | Err(_) => return None,
                Ok(_) => {}
            }
        }
    }

    pub fn next(&self, timeout: Duration) -> Option<Sse> {
        self.rx.recv_timeout(timeout).ok()
    }
}

impl Drop for EventStream {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
    }
}
