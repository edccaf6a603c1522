//! A process that is not redeemd, on the port in `<data-dir>/listen`: it keeps every byte a
//! client sends it, so a test can show what the client gave away. `answering` answers each
//! request with 200 and a made-up JSON body (a wrong `proof`, a plausible status);
//! `relaying` passes each connection on to a real daemon elsewhere (rewriting `Host`, so
//! the daemon's host check lets it through) and its answers back: a listener that tries to
//! pass off the real daemon's proof as its own.
#![allow(dead_code)]

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

pub struct Impostor {
    pub addr: SocketAddr,
    received: Arc<Mutex<Vec<u8>>>,
    stop: Arc<AtomicBool>,
}

impl Impostor {
    /// Answers every request itself, on a free loopback port.
    pub fn answering() -> Impostor {
        Impostor::start(None)
    }

    /// Passes every connection on to `daemon` (a real one, elsewhere).
    pub fn relaying(daemon: SocketAddr) -> Impostor {
        Impostor::start(Some(daemon))
    }

    fn start(relay_to: Option<SocketAddr>) -> Impostor {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        let received = Arc::new(Mutex::new(Vec::new()));
        let stop = Arc::new(AtomicBool::new(false));
        let (sink, stopped) = (received.clone(), stop.clone());
        std::thread::spawn(move || {
            for stream in listener.incoming() {
                if stopped.load(Ordering::Relaxed) {
                    return;
                }
                let Ok(stream) = stream else { continue };
                let sink = sink.clone();
                std::thread::spawn(move || match relay_to {
                    None => answer(stream, addr, &sink),
                    Some(daemon) => relay(stream, addr, daemon, &sink),
                });
            }
        });
        Impostor { addr, received, stop }
    }

    /// Writes its address into `data_dir/listen`, as a daemon that had bound it would.
    pub fn claim(&self, data_dir: &Path) {
        std::fs::write(data_dir.join("listen"), self.addr.to_string()).unwrap();
    }

    /// Every byte any client sent it so far.
    pub fn received(&self) -> String {
        String::from_utf8_lossy(&self.received.lock().unwrap()).into_owned()
    }

    /// Fails when `secret` is among the bytes it received.
    pub fn assert_never_got(&self, secret: &str) {
        let got = self.received();
        assert!(!secret.is_empty());
        assert!(!got.contains(secret), "the impostor received the secret:\n{got}");
        assert!(!got.to_ascii_lowercase().contains("authorization"), "the impostor received credentials:\n{got}");
    }
}

impl Drop for Impostor {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        let _ = TcpStream::connect(self.addr); // wakes the accept loop
    }
}

/// 200 with a well-formed JSON body for every request head, until the client closes.
fn answer(mut stream: TcpStream, addr: SocketAddr, sink: &Mutex<Vec<u8>>) {
    let _ = stream.set_read_timeout(Some(Duration::from_secs(5)));
    let mut pending = Vec::new();
    let mut chunk = [0u8; 4096];
    loop {
        let n = match stream.read(&mut chunk) {
            Ok(0) | Err(_) => return,
            Ok(n) => n,
        };
        sink.lock().unwrap().extend_from_slice(&chunk[..n]);
        pending.extend_from_slice(&chunk[..n]);
        while let Some(end) = pending.windows(4).position(|w| w == b"\r\n\r\n") {
            pending.drain(..end + 4);
            let body = format!(
                r#"{{"proof":"{}","version":"9.9.9","listen":"{addr}","scanner":{{"state":"none"}},"unsynced":0}}"#,
                "0".repeat(64)
            );
            let head =
                format!("HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: {}\r\n\r\n", body.len());
            if stream.write_all(format!("{head}{body}").as_bytes()).is_err() {
                return;
            }
        }
    }
}

/// Both ways between the client and `daemon`; the client's bytes are kept, with its
/// `Host` (this listener's address) replaced by the daemon's.
fn relay(client: TcpStream, own: SocketAddr, daemon: SocketAddr, sink: &Arc<Mutex<Vec<u8>>>) {
    let Ok(upstream) = TcpStream::connect(daemon) else { return };
    let (mut from_client, mut to_daemon) = (client.try_clone().unwrap(), upstream.try_clone().unwrap());
    let (mut from_daemon, mut to_client) = (upstream, client);
    let sink = sink.clone();
    let forward = std::thread::spawn(move || {
        let mut chunk = [0u8; 4096];
        loop {
            let n = match from_client.read(&mut chunk) {
                Ok(0) | Err(_) => break,
                Ok(n) => n,
            };
            sink.lock().unwrap().extend_from_slice(&chunk[..n]);
            // A client writes a request head whole; loopback delivers it in one read.
            let text = String::from_utf8_lossy(&chunk[..n]).replace(&own.to_string(), &daemon.to_string());
            if to_daemon.write_all(text.as_bytes()).is_err() {
                break;
            }
        }
        let _ = to_daemon.shutdown(std::net::Shutdown::Write);
    });
    let _ = std::io::copy(&mut from_daemon, &mut to_client);
    let _ = to_client.shutdown(std::net::Shutdown::Write);
    let _ = forward.join();
}
