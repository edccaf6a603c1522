//! Whether the process at the address in `<data-dir>/listen` is this data dir's daemon,
//! proven before it is trusted with anything.
//!
//! The daemon writes the address it bound to `listen` so that `cashier-url`, `doctor`,
//! `restore` and the command line's nudges can find it. Once that daemon is gone, any
//! program may listen on the same port: an answer there proves nothing, and the POS token
//! sent to it would be handed to a stranger. So at each start, after binding and before
//! writing `listen`, the daemon writes a fresh random key to `<data-dir>/daemon-secret`
//! (0600: readable by its own account only) and answers `GET /v1/whoami?challenge=HEX`
//! with `{"proof": HEX}`, the HMAC-SHA256 under that key of the address it bound and the
//! challenge. A client reads the key, sends a fresh challenge and checks the proof in
//! constant time; only then does it send the POS token, on the same connection, so the
//! process that reads the token is the one that proved itself. The address is inside the
//! proof so that a listener cannot relay the challenge to this data dir's daemon on
//! another port and pass its answer off as its own.
//!
//! This module sits below `daemon`, `doctor`, `backup` and the command line and uses none
//! of them: a blocking HTTP/1.1 client over a plain `TcpStream` (one request at a time,
//! capped answers, every step under a deadline), enough for the daemon's own answers.

use crate::secret;
use hmac::{KeyInit as _, Mac as _};
use std::io::{Read as _, Write as _};
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

/// `<data-dir>/listen`: the address the running (or last) daemon bound.
pub const LISTEN_FILE: &str = "listen";
/// `<data-dir>/daemon-secret`: the running (or last) daemon's key, hex, mode 0600.
pub const KEY_FILE: &str = "daemon-secret";
/// The daemon's unauthenticated proof of identity.
pub const WHOAMI_PATH: &str = "/v1/whoami";
/// Bytes of a challenge the client makes; the daemon takes 16 to 64.
const CHALLENGE_BYTES: usize = 32;
const CHALLENGE_RANGE: std::ops::RangeInclusive<usize> = 16..=64;
/// The most of an answer's head and body read: the daemon's answers to `whoami` and
/// `/v1/status` are far smaller, and a stranger must not make the client buffer without end.
const HEAD_LIMIT: usize = 16 * 1024;
const BODY_LIMIT: usize = 256 * 1024;

/// One daemon run's key. Never printed: `Debug` shows nothing of it.
pub struct DaemonKey([u8; 32]);

impl std::fmt::Debug for DaemonKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("DaemonKey(..)")
    }
}

pub fn key_path(data_dir: &Path) -> PathBuf {
    data_dir.join(KEY_FILE)
}

impl DaemonKey {
    pub fn generate() -> DaemonKey {
        DaemonKey(secret::random_bytes())
    }

    /// Reads the key the last daemon of `data_dir` wrote.
    pub fn read(data_dir: &Path) -> std::io::Result<DaemonKey> {
        let text = std::fs::read_to_string(key_path(data_dir))?;
        let bytes = unhex(text.trim())
            .filter(|b| b.len() == 32)
            .ok_or_else(|| std::io::Error::new(std::io::ErrorKind::InvalidData, "not 64 hexadecimal digits"))?;
        let mut key = [0u8; 32];
        key.copy_from_slice(&bytes);
        Ok(DaemonKey(key))
    }

    /// HMAC-SHA256 of the bound address and the challenge. The address text cannot
    /// contain a newline, so the two parts cannot be shifted into each other.
    pub fn proof(&self, addr: &str, challenge: &[u8]) -> [u8; 32] {
        // A key shorter than SHA-256's 64-byte block is zero-padded to it (RFC 2104), so
        // this is HMAC with the 32-byte key, built without the fallible slice constructor.
        let mut block = [0u8; 64];
        block[..32].copy_from_slice(&self.0);
        let mut mac = hmac::Hmac::<sha2::Sha256>::new(&block.into());
        mac.update(b"redeemd whoami 1\n");
        mac.update(addr.as_bytes());
        mac.update(b"\n");
        mac.update(challenge);
        mac.finalize().into_bytes().into()
    }
}

/// What a running daemon proves itself with: its key and the address it bound.
#[derive(Debug)]
pub struct Identity {
    key: DaemonKey,
    addr: String,
}

impl Identity {
    /// A fresh key for the daemon bound at `bound`, written to `<data_dir>/daemon-secret`
    /// (0600). Called after binding (a second daemon that fails to bind must not replace
    /// the running one's key) and before `listen` is written (a client that reads the new
    /// address finds the new key).
    pub fn create(data_dir: &Path, bound: SocketAddr) -> std::io::Result<Identity> {
        let key = DaemonKey::generate();
        secret::write_secret(&key_path(data_dir), secret::hex(&key.0).as_bytes())?;
        Ok(Identity { key, addr: bound.to_string() })
    }

    /// The answer to a `whoami` query string (`challenge=HEX`), or `None` when it holds
    /// no challenge of 16 to 64 bytes.
    pub fn answer(&self, query: &str) -> Option<String> {
        let challenge = query.split('&').find_map(|pair| pair.strip_prefix("challenge=")).and_then(unhex)?;
        CHALLENGE_RANGE.contains(&challenge.len()).then(|| secret::hex(&self.key.proof(&self.addr, &challenge)))
    }
}

/// Who listens at the address in `<data-dir>/listen`.
#[derive(Debug)]
pub enum Found {
    /// No `listen` file (or no address in it): no daemon has run on this data dir.
    NeverRan,
    /// Nothing accepts connections at the address: no daemon runs.
    NotListening(SocketAddr),
    /// This data dir's daemon: it proved that it holds the key.
    Ours(Proven),
    /// Another process holds the port: it answered without the proof, or there is no key
    /// it could prove itself with. It was sent nothing but a challenge.
    Other(SocketAddr),
    /// Something accepted the connection but gave no whole answer in time: a stuck
    /// daemon, or another program.
    Silent { addr: SocketAddr, error: std::io::Error },
    /// Something listens, but this account cannot read the key, so nothing can be proven.
    KeyUnreadable { addr: SocketAddr, path: PathBuf, error: std::io::Error },
}

/// The address a client connects to for the text of `listen`: a daemon bound to every
/// interface (`0.0.0.0`, `::`) is reached on loopback.
fn reachable(mut addr: SocketAddr) -> SocketAddr {
    if addr.ip().is_unspecified() {
        addr.set_ip(match addr {
            SocketAddr::V4(_) => std::net::Ipv4Addr::LOCALHOST.into(),
            SocketAddr::V6(_) => std::net::Ipv6Addr::LOCALHOST.into(),
        });
    }
    addr
}

/// Finds out who listens at `<data_dir>/listen`'s address, each network step within
/// `timeout`. Nothing but a random challenge is sent to a process that has not proven
/// itself.
pub fn find(data_dir: &Path, timeout: Duration) -> Found {
    let Ok(text) = std::fs::read_to_string(data_dir.join(LISTEN_FILE)) else {
        return Found::NeverRan;
    };
    let text = text.trim();
    let Ok(bound) = text.parse::<SocketAddr>() else {
        return Found::NeverRan;
    };
    let addr = reachable(bound);
    let stream = match TcpStream::connect_timeout(&addr, timeout) {
        Ok(stream) => stream,
        Err(e) if e.kind() == std::io::ErrorKind::TimedOut => return Found::Silent { addr, error: e },
        Err(_) => return Found::NotListening(addr),
    };
    // Read after connecting: with nothing listening, "no daemon" is the whole story.
    let key = match DaemonKey::read(data_dir) {
        Ok(key) => key,
        // The daemon writes its key before `listen`: without one, this is not it.
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Found::Other(addr),
        Err(e) if e.kind() == std::io::ErrorKind::InvalidData => return Found::Other(addr),
        Err(error) => return Found::KeyUnreadable { addr, path: key_path(data_dir), error },
    };
    let mut conn = Connection { stream, host: addr.to_string(), buffer: Vec::new() };
    let challenge: [u8; CHALLENGE_BYTES] = secret::random_bytes();
    let target = format!("{WHOAMI_PATH}?challenge={}", secret::hex(&challenge));
    let answer = match conn.get(&target, None, timeout) {
        Ok(answer) => answer,
        Err(error) if matches!(error.kind(), std::io::ErrorKind::TimedOut | std::io::ErrorKind::WouldBlock) => {
            return Found::Silent { addr, error }
        }
        Err(_) => return Found::Other(addr),
    };
    let offered = (answer.status == 200)
        .then(|| serde_json::from_slice::<serde_json::Value>(&answer.body).ok())
        .flatten()
        .and_then(|body| body["proof"].as_str().and_then(unhex));
    // The proof is over the text of `listen`, which is what the daemon bound.
    let expected = key.proof(text, &challenge);
    match offered {
        Some(offered) if secret::constant_time_eq(&offered, &expected) => Found::Ours(Proven { addr, conn }),
        _ => Found::Other(addr),
    }
}

/// A connection to this data dir's daemon that has proven itself: requests on it reach
/// the process that holds the key.
#[derive(Debug)]
pub struct Proven {
    addr: SocketAddr,
    conn: Connection,
}

impl Proven {
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// `GET path` with the POS token, on the proven connection: (status, body).
    pub fn get(&mut self, path: &str, token: &str, timeout: Duration) -> std::io::Result<(u16, Vec<u8>)> {
        let answer = self.conn.get(path, Some(token), timeout)?;
        Ok((answer.status, answer.body))
    }
}

#[derive(Debug)]
struct Connection {
    stream: TcpStream,
    host: String,
    /// Bytes read past the last answer (none from the daemon, which answers one request
    /// at a time).
    buffer: Vec<u8>,
}

struct Answer {
    status: u16,
    body: Vec<u8>,
}

fn invalid(what: &str) -> std::io::Error {
    std::io::Error::new(std::io::ErrorKind::InvalidData, what.to_owned())
}

impl Connection {
    /// One keep-alive `GET` and its answer, both within `timeout`. Only answers with a
    /// `Content-Length` are read (the daemon's always have one).
    fn get(&mut self, target: &str, bearer: Option<&str>, timeout: Duration) -> std::io::Result<Answer> {
        let deadline = Instant::now() + timeout;
        let auth = bearer.map(|t| format!("Authorization: Bearer {t}\r\n")).unwrap_or_default();
        let request = format!("GET {target} HTTP/1.1\r\nHost: {}\r\n{auth}Accept: application/json\r\n\r\n", self.host);
        self.stream.set_write_timeout(Some(left(deadline)?))?;
        self.stream.write_all(request.as_bytes())?;
        let head_end = loop {
            if let Some(i) = self.buffer.windows(4).position(|w| w == b"\r\n\r\n") {
                break i;
            }
            if self.buffer.len() > HEAD_LIMIT {
                return Err(invalid("the answer's head is too long"));
            }
            self.fill(deadline)?;
        };
        let head = std::str::from_utf8(&self.buffer[..head_end]).map_err(|_| invalid("the head is not text"))?;
        let mut lines = head.split("\r\n");
        let status = lines
            .next()
            .and_then(|line| line.strip_prefix("HTTP/1.1 ").or_else(|| line.strip_prefix("HTTP/1.0 ")))
            .and_then(|rest| rest.get(..3))
            .and_then(|code| code.parse::<u16>().ok())
            .ok_or_else(|| invalid("not an HTTP/1.1 status line"))?;
        let mut length = None;
        for line in lines {
            let (name, value) = line.split_once(':').ok_or_else(|| invalid("a header line without a colon"))?;
            if name.eq_ignore_ascii_case("transfer-encoding") {
                return Err(invalid("a chunked answer"));
            }
            if name.eq_ignore_ascii_case("content-length") {
                length = Some(value.trim().parse::<usize>().map_err(|_| invalid("a bad Content-Length"))?);
            }
        }
        let length = length.ok_or_else(|| invalid("no Content-Length"))?;
        if length > BODY_LIMIT {
            return Err(invalid("the answer is too long"));
        }
        let start = head_end + 4;
        while self.buffer.len() < start + length {
            self.fill(deadline)?;
        }
        let body = self.buffer[start..start + length].to_vec();
        self.buffer.drain(..start + length);
        Ok(Answer { status, body })
    }

    /// Reads what has arrived (at least one byte) before `deadline`.
    fn fill(&mut self, deadline: Instant) -> std::io::Result<()> {
        self.stream.set_read_timeout(Some(left(deadline)?))?;
        let mut chunk = [0u8; 4096];
        let n = self.stream.read(&mut chunk)?;
        if n == 0 {
            return Err(std::io::Error::new(std::io::ErrorKind::UnexpectedEof, "the connection closed"));
        }
        self.buffer.extend_from_slice(&chunk[..n]);
        Ok(())
    }
}

/// The time left before `deadline`; a timeout once it has passed (a zero socket timeout
/// would mean "wait forever").
fn left(deadline: Instant) -> std::io::Result<Duration> {
    let left = deadline.saturating_duration_since(Instant::now());
    if left.is_zero() {
        return Err(std::io::Error::new(std::io::ErrorKind::TimedOut, "no answer in time"));
    }
    Ok(left)
}

fn unhex(text: &str) -> Option<Vec<u8>> {
    if !text.len().is_multiple_of(2) || !text.bytes().all(|b| b.is_ascii_hexdigit()) {
        return None;
    }
    (0..text.len()).step_by(2).map(|i| u8::from_str_radix(&text[i..i + 2], 16).ok()).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_proof_is_hmac_sha256_of_the_address_and_the_challenge() {
        let key = DaemonKey([7; 32]);
        let mut mac = hmac::Hmac::<sha2::Sha256>::new_from_slice(&[7; 32]).unwrap();
        mac.update(b"redeemd whoami 1\n127.0.0.1:7878\n\x01\x02");
        let want: [u8; 32] = mac.finalize().into_bytes().into();
        assert_eq!(key.proof("127.0.0.1:7878", &[1, 2]), want);
        assert_ne!(key.proof("127.0.0.1:7879", &[1, 2]), want, "the address is proven too");
    }

    #[test]
    fn the_daemon_answers_only_a_well_formed_challenge() {
        let dir = tempfile::tempdir().unwrap();
        let identity = Identity::create(dir.path(), "127.0.0.1:7878".parse().unwrap()).unwrap();
        let mode =
            std::os::unix::fs::PermissionsExt::mode(&std::fs::metadata(key_path(dir.path())).unwrap().permissions());
        assert_eq!(mode & 0o777, 0o600);
        let key = DaemonKey::read(dir.path()).unwrap();
        let challenge = [9u8; 32];
        let answer = identity.answer(&format!("x=1&challenge={}", secret::hex(&challenge))).unwrap();
        assert_eq!(answer, secret::hex(&key.proof("127.0.0.1:7878", &challenge)));
        assert!(identity.answer("challenge=abc").is_none(), "odd length");
        assert!(identity.answer(&format!("challenge={}", "ab".repeat(8 - 1))).is_none(), "too short");
        assert!(identity.answer(&format!("challenge={}", "ab".repeat(65))).is_none(), "too long");
        assert!(identity.answer("").is_none());
        assert_eq!(format!("{key:?}"), "DaemonKey(..)");
    }

    #[test]
    fn no_listen_file_or_nothing_listening_is_no_daemon() {
        let dir = tempfile::tempdir().unwrap();
        assert!(matches!(find(dir.path(), Duration::from_secs(1)), Found::NeverRan));
        let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap();
        std::fs::write(dir.path().join(LISTEN_FILE), port.to_string()).unwrap();
        assert!(matches!(find(dir.path(), Duration::from_secs(1)), Found::NotListening(a) if a == port));
    }

    #[test]
    fn a_listener_that_never_answers_is_silent_and_one_without_a_key_to_prove_is_other() {
        let dir = tempfile::tempdir().unwrap();
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        std::fs::write(dir.path().join(LISTEN_FILE), addr.to_string()).unwrap();
        // No key: the daemon always writes one before `listen`, so this is not it.
        assert!(matches!(find(dir.path(), Duration::from_secs(1)), Found::Other(a) if a == addr));
        Identity::create(dir.path(), addr).unwrap();
        // Accepted (by the kernel's backlog) and never answered.
        match find(dir.path(), Duration::from_millis(300)) {
            Found::Silent { addr: a, .. } => assert_eq!(a, addr),
            other => panic!("{other:?}"),
        }
        drop(listener);
    }
}
