//! The cashier screen without anyone typing its link: `redeemd kiosk` gets a one-time
//! cashier link, starts the browser full screen on it, and starts it again — with a fresh
//! link, since a link opens one session once — whenever the browser exits.
//!
//! A link is a cashier session for whoever opens it, so one is made only for this data
//! dir's daemon once it has proven itself (`local_daemon::find`), never for whatever holds
//! its port. Making one means writing `<data-dir>/cashier-link`, which only the daemon's
//! account (and root) may do. The desktop account that shows the screen gets no more than
//! that: the package's socket `/run/redeemd-cashier-link.sock` (mode 0660, group
//! `redeemd-kiosk`) starts `redeemd kiosk --serve-link` as the daemon's account for each
//! connection, which writes one line back: the link, or why there is none. So a member of
//! `redeemd-kiosk` can open cashier sessions and nothing else: no token, no ledger, no key.
//!
//! [`supervise`] is the only code here that waits: for a link (backing off while the
//! daemon is not up), for the browser to exit (told by `SIGCHLD`, nothing polls), and for
//! `SIGTERM`/`SIGINT`/`SIGHUP`, on which it closes the browser (`SIGTERM`, then `SIGKILL`
//! after five seconds) and returns. What happens is reported as [`Event`]s, which the
//! command line says in the terminal's language. The rest is pure: the browser's
//! arguments, the relaunch backoff, and the check of a link read from the socket.

use crate::clock::{Clock as _, SystemClock};
use crate::local_daemon::{self, Found};
use crate::messages::Text;
use crate::secret;
use std::ffi::OsString;
use std::io::Read as _;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::ExitStatus;
use std::time::{Duration, Instant};

/// The socket the package gives the group `redeemd-kiosk` (`redeemd-cashier-link.socket`).
pub const LINK_SOCKET: &str = "/run/redeemd-cashier-link.sock";
/// The group whose members' desktop sessions show the cashier screen.
pub const KIOSK_GROUP: &str = "redeemd-kiosk";
/// How long a kiosk's link may wait to be opened: the browser opens it within seconds,
/// and it stands on the browser's command line meanwhile. (`cashier-url`'s, for a
/// person, lasts ten minutes.)
pub const LINK_VALIDITY: jiff::SignedDuration = jiff::SignedDuration::from_secs(120);
/// Each step of finding the daemon (connect, prove) and of asking the socket.
pub const ASK_TIMEOUT: Duration = Duration::from_secs(5);
/// The most of a socket's answer read: one line with a link or a reason.
const ANSWER_LIMIT: u64 = 4096;
/// The browser is asked to close, and killed when it has not within this.
const CLOSE_GRACE: Duration = Duration::from_secs(5);

/// Why there is no link (yet).
#[derive(Debug, thiserror::Error)]
pub enum LinkError {
    /// No daemon has run on the data dir, or none listens at its address now.
    #[error("{}", self.text())]
    NotRunning,
    /// Something accepted the connection but did not answer in time.
    #[error("{}", self.text())]
    Silent { addr: SocketAddr },
    /// Another process holds the daemon's port: it would receive the link.
    #[error("{}", self.text())]
    Other { addr: SocketAddr },
    /// This account may not read the daemon's key, so nothing can be proven.
    #[error("{}", self.text())]
    KeyUnreadable { path: PathBuf, source: std::io::Error },
    #[error("{}", self.text())]
    Write { path: PathBuf, source: std::io::Error },
    /// The socket refuses this account: it is not in the group `redeemd-kiosk`.
    #[error("{}", self.text())]
    NotInGroup { path: PathBuf },
    /// The socket is missing or did not answer.
    #[error("{}", self.text())]
    Socket { path: PathBuf, source: std::io::Error },
    /// The socket answered with a reason instead of a link.
    #[error("{}", self.text())]
    Answer { path: PathBuf, answer: String },
}

impl LinkError {
    /// The text for people (`[kiosk]`); `Display` is its English.
    pub fn text(&self) -> Text {
        let path = |p: &Path| ("path", p.display().to_string());
        match self {
            LinkError::NotRunning => Text::new("kiosk.not_running", vec![]),
            LinkError::Silent { addr } => Text::new("kiosk.silent", vec![("addr", addr.to_string())]),
            LinkError::Other { addr } => Text::new("error.cashier_url_other", vec![("addr", addr.to_string())]),
            LinkError::KeyUnreadable { path: p, source } => Text::new(
                "kiosk.key_unreadable",
                vec![
                    path(p),
                    ("error", source.to_string()),
                    ("group", KIOSK_GROUP.to_owned()),
                    ("socket", LINK_SOCKET.to_owned()),
                ],
            ),
            LinkError::Write { path: p, source } => {
                Text::new("kiosk.cannot_write", vec![path(p), ("error", source.to_string())])
            }
            LinkError::NotInGroup { path: p } => {
                Text::new("kiosk.not_in_group", vec![path(p), ("group", KIOSK_GROUP.to_owned())])
            }
            LinkError::Socket { path: p, source } => {
                Text::new("kiosk.socket", vec![path(p), ("error", source.to_string())])
            }
            LinkError::Answer { path: p, answer } => {
                Text::new("kiosk.answer", vec![path(p), ("answer", answer.clone())])
            }
        }
    }

    /// Whether waiting can help: false when this account will never be given a link.
    pub fn is_final(&self) -> bool {
        matches!(self, LinkError::NotInGroup { .. })
    }
}

/// The cashier link's URL for a daemon reached at `addr` (an address it bound to every
/// interface is reached on loopback).
pub fn link_url(addr: SocketAddr, token: &str) -> String {
    let host = if addr.ip().is_unspecified() { SocketAddr::from(([127, 0, 0, 1], addr.port())) } else { addr };
    format!("http://{host}/cashier/open?token={token}")
}

/// A new one-time cashier link, valid until `expires`, for this data dir's daemon — only
/// once it has proven itself: a link made while no daemon runs would open nothing, and
/// one pointed at another listener would hand it a cashier session. Needs the daemon's
/// account (or root): it reads the daemon's key and writes `<data-dir>/cashier-link`.
pub fn cashier_link(data_dir: &Path, expires: jiff::Timestamp, timeout: Duration) -> Result<String, LinkError> {
    let addr = match local_daemon::find(data_dir, timeout) {
        Found::Ours(proven) => proven.addr(),
        Found::NeverRan | Found::NotListening(_) => return Err(LinkError::NotRunning),
        Found::Silent { addr, .. } => return Err(LinkError::Silent { addr }),
        Found::Other(addr) => return Err(LinkError::Other { addr }),
        Found::KeyUnreadable { path, error, .. } => return Err(LinkError::KeyUnreadable { path, source: error }),
    };
    let token = secret::new_cashier_link(data_dir, expires)
        .map_err(|source| LinkError::Write { path: data_dir.join(secret::CASHIER_LINK_FILE), source })?;
    Ok(link_url(addr, &token))
}

/// Asks the link socket at `path` for a link: one line, the link or why there is none.
pub fn link_from_socket(path: &Path, timeout: Duration) -> Result<String, LinkError> {
    let socket_error = |source| LinkError::Socket { path: path.to_owned(), source };
    // What the socket's mode grants this account, root included: root connects to any
    // socket, but an administrator's desktop is not a kiosk unless it is in the group.
    if let Ok(meta) = std::fs::metadata(path) {
        if !granted(&meta) {
            return Err(LinkError::NotInGroup { path: path.to_owned() });
        }
    }
    let stream = match std::os::unix::net::UnixStream::connect(path) {
        Ok(stream) => stream,
        Err(e) if e.kind() == std::io::ErrorKind::PermissionDenied => {
            return Err(LinkError::NotInGroup { path: path.to_owned() })
        }
        Err(e) => return Err(socket_error(e)),
    };
    stream.set_read_timeout(Some(timeout)).map_err(socket_error)?;
    let mut answer = Vec::new();
    stream.take(ANSWER_LIMIT).read_to_end(&mut answer).map_err(socket_error)?;
    let answer = String::from_utf8_lossy(&answer);
    let line = answer.lines().map(str::trim).find(|l| !l.is_empty()).unwrap_or_default();
    match checked_link(line) {
        Some(url) => Ok(url),
        None if line.is_empty() => {
            Err(socket_error(std::io::Error::new(std::io::ErrorKind::UnexpectedEof, "no answer")))
        }
        None => Err(LinkError::Answer { path: path.to_owned(), answer: line.chars().take(300).collect() }),
    }
}

/// Whether the socket's mode lets this process connect (write permission), by owner,
/// group (effective or supplementary) or others, without root's exemption.
fn granted(meta: &std::fs::Metadata) -> bool {
    use std::os::unix::fs::MetadataExt as _;
    let mode = meta.mode();
    let in_group = nix::unistd::getegid().as_raw() == meta.gid()
        || nix::unistd::getgroups().is_ok_and(|groups| groups.iter().any(|g| g.as_raw() == meta.gid()));
    (nix::unistd::geteuid().as_raw() == meta.uid() && mode & 0o200 != 0)
        || (in_group && mode & 0o020 != 0)
        || mode & 0o002 != 0
}

/// `line` when it is a cashier link to a loopback address (what `--serve-link` writes):
/// the browser opens nothing else, whatever the socket says.
pub fn checked_link(line: &str) -> Option<String> {
    let url = url::Url::parse(line).ok()?;
    let loopback = match url.host()? {
        url::Host::Ipv4(ip) => ip.is_loopback(),
        url::Host::Ipv6(ip) => ip.is_loopback(),
        url::Host::Domain(name) => name == "localhost",
    };
    let token = url.query_pairs().find(|(k, _)| k == "token").map(|(_, v)| v.into_owned()).unwrap_or_default();
    let shaped = url.scheme() == "http"
        && loopback
        && url.port().is_some()
        && url.username().is_empty()
        && url.password().is_none()
        && url.path() == "/cashier/open"
        && url.fragment().is_none()
        && !token.is_empty()
        && token.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
    shaped.then(|| url.to_string())
}

/// Where the links come from.
#[derive(Debug, Clone)]
pub enum LinkSource {
    /// Made here, for the daemon of this data dir (the daemon's account or root).
    DataDir(PathBuf),
    /// Asked of the package's socket (a desktop account in `redeemd-kiosk`).
    Socket(PathBuf),
}

impl LinkSource {
    /// One attempt (blocking: at most a few `ASK_TIMEOUT`s).
    pub fn link(&self) -> Result<String, LinkError> {
        match self {
            LinkSource::DataDir(dir) => cashier_link(dir, SystemClock.now() + LINK_VALIDITY, ASK_TIMEOUT),
            LinkSource::Socket(path) => link_from_socket(path, ASK_TIMEOUT),
        }
    }
}

/// The browser's arguments: full screen on the link as an app window, its own profile,
/// and nothing that waits for a person (first-run pages, the restore-session bubble,
/// the translate bar, error dialogs, a keyring prompt); the page's beeps may sound
/// before anyone touches the screen. `extra` comes last.
pub fn browser_args(url: &str, profile_dir: &Path, extra: &[OsString]) -> Vec<OsString> {
    let mut args: Vec<OsString> = [
        "--kiosk".to_owned(),
        format!("--app={url}"),
        "--no-first-run".to_owned(),
        "--no-default-browser-check".to_owned(),
        "--noerrdialogs".to_owned(),
        "--disable-session-crashed-bubble".to_owned(),
        "--disable-infobars".to_owned(),
        "--disable-translate".to_owned(),
        "--disable-features=Translate,TranslateUI".to_owned(),
        "--disable-pinch".to_owned(),
        "--overscroll-history-navigation=0".to_owned(),
        "--password-store=basic".to_owned(),
        "--autoplay-policy=no-user-gesture-required".to_owned(),
        "--check-for-update-interval=31536000".to_owned(),
    ]
    .into_iter()
    .map(OsString::from)
    .collect();
    let mut profile = OsString::from("--user-data-dir=");
    profile.push(profile_dir.as_os_str());
    args.push(profile);
    args.extend(extra.iter().cloned());
    args
}

/// The default profile directory: `$XDG_STATE_HOME/redeemd-kiosk/chromium`, else
/// `~/.local/state/redeemd-kiosk/chromium`; `None` without either variable.
pub fn default_profile_dir(xdg_state_home: Option<OsString>, home: Option<OsString>) -> Option<PathBuf> {
    let state = match xdg_state_home.filter(|v| Path::new(v).is_absolute()) {
        Some(dir) => PathBuf::from(dir),
        None => PathBuf::from(home.filter(|v| Path::new(v).is_absolute())?).join(".local/state"),
    };
    Some(state.join("redeemd-kiosk/chromium"))
}

/// The wait before starting the browser again: one second after a browser that ran a
/// minute or more, doubling up to thirty seconds while it keeps exiting sooner.
#[derive(Debug, Clone)]
pub struct Backoff {
    next: Duration,
}

impl Backoff {
    pub const FIRST: Duration = Duration::from_secs(1);
    pub const MAX: Duration = Duration::from_secs(30);
    /// A browser that ran this long was working: the next failure starts over.
    pub const STEADY: Duration = Duration::from_secs(60);

    pub fn new() -> Backoff {
        Backoff { next: Backoff::FIRST }
    }

    /// The wait after a browser that ran for `ran`.
    pub fn after_run(&mut self, ran: Duration) -> Duration {
        if ran >= Backoff::STEADY {
            self.next = Backoff::FIRST;
        }
        let wait = self.next;
        self.next = (self.next * 2).min(Backoff::MAX);
        wait
    }
}

impl Default for Backoff {
    fn default() -> Backoff {
        Backoff::new()
    }
}

/// The waits between attempts at a link while the daemon is not up: half a second,
/// doubling up to five.
fn link_retry(attempt: u32) -> Duration {
    Duration::from_millis(500u64.saturating_mul(1 << attempt.min(4))).min(Duration::from_secs(5))
}

/// What the kiosk is doing, for its log.
#[derive(Debug)]
pub enum Event<'a> {
    /// No link yet: said once per distinct reason while waiting.
    Waiting(&'a LinkError),
    Started {
        pid: u32,
    },
    Exited {
        status: ExitStatus,
        ran: Duration,
    },
    Relaunch {
        after: Duration,
    },
    /// A stop signal came: the browser is being closed.
    Stopping,
}

/// How the kiosk ended.
#[derive(Debug)]
pub enum Outcome {
    /// Stopped by a signal (the browser closed).
    Stopped,
    /// `once`: the browser exited so.
    BrowserExited(ExitStatus),
    /// This account is refused links (not in `redeemd-kiosk`): nothing to show.
    NotAllowed(LinkError),
    /// Another kiosk runs on the same profile.
    AlreadyRunning(PathBuf),
}

#[derive(Debug, thiserror::Error)]
pub enum KioskError {
    #[error("{}", self.text())]
    Profile { path: PathBuf, source: std::io::Error },
    #[error("{}", self.text())]
    Spawn { browser: PathBuf, source: std::io::Error },
    #[error("{}", self.text())]
    Signals(std::io::Error),
}

impl KioskError {
    pub fn text(&self) -> Text {
        match self {
            KioskError::Profile { path, source } => {
                Text::new("kiosk.profile", vec![("path", path.display().to_string()), ("error", source.to_string())])
            }
            KioskError::Spawn { browser, source } => Text::new(
                "kiosk.spawn",
                vec![("browser", browser.display().to_string()), ("error", source.to_string())],
            ),
            KioskError::Signals(source) => Text::new("kiosk.signals", vec![("error", source.to_string())]),
        }
    }
}

#[derive(Debug, Clone)]
pub struct Options {
    pub browser: PathBuf,
    pub browser_args: Vec<OsString>,
    pub profile_dir: PathBuf,
    pub source: LinkSource,
    /// Exit when the browser exits instead of starting it again.
    pub once: bool,
}

/// The kiosk until a stop signal (or, with `once`, until the browser exits). Holds a lock
/// in the profile directory, so a second kiosk of the same account (a desktop that runs
/// both the user unit and the autostart entry) leaves the first alone.
pub async fn supervise(options: &Options, mut report: impl FnMut(Event<'_>)) -> Result<Outcome, KioskError> {
    use tokio::signal::unix::{signal, SignalKind};
    let profile_error = |source| KioskError::Profile { path: options.profile_dir.clone(), source };
    std::fs::create_dir_all(&options.profile_dir).map_err(profile_error)?;
    let lock_path = options.profile_dir.join("redeemd-kiosk.lock");
    let lock = std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&lock_path)
        .map_err(|source| KioskError::Profile { path: lock_path.clone(), source })?;
    if nix::fcntl::flock(std::os::fd::AsRawFd::as_raw_fd(&lock), nix::fcntl::FlockArg::LockExclusiveNonblock).is_err() {
        return Ok(Outcome::AlreadyRunning(options.profile_dir.clone()));
    }
    // Registered before any child exists, so no exit goes unnoticed.
    let mut children = signal(SignalKind::child()).map_err(KioskError::Signals)?;
    let mut stops = Stops {
        term: signal(SignalKind::terminate()).map_err(KioskError::Signals)?,
        int: signal(SignalKind::interrupt()).map_err(KioskError::Signals)?,
        hup: signal(SignalKind::hangup()).map_err(KioskError::Signals)?,
    };
    let mut backoff = Backoff::new();
    loop {
        let url = tokio::select! {
            link = wait_for_link(&options.source, &mut report) => match link {
                Ok(url) => url,
                Err(refused) => return Ok(Outcome::NotAllowed(refused)),
            },
            _ = stops.any() => return Ok(Outcome::Stopped),
        };
        let started = Instant::now();
        let mut child = std::process::Command::new(&options.browser)
            .args(browser_args(&url, &options.profile_dir, &options.browser_args))
            .stdin(std::process::Stdio::null())
            .spawn()
            .map_err(|source| KioskError::Spawn { browser: options.browser.clone(), source })?;
        report(Event::Started { pid: child.id() });
        let status = loop {
            if let Ok(Some(status)) = child.try_wait() {
                break status;
            }
            tokio::select! {
                _ = children.recv() => {}
                _ = stops.any() => {
                    report(Event::Stopping);
                    close(&mut child, &mut children).await;
                    return Ok(Outcome::Stopped);
                }
            }
        };
        let ran = started.elapsed();
        report(Event::Exited { status, ran });
        if options.once {
            return Ok(Outcome::BrowserExited(status));
        }
        let after = backoff.after_run(ran);
        report(Event::Relaunch { after });
        tokio::select! {
            _ = tokio::time::sleep(after) => {}
            _ = stops.any() => return Ok(Outcome::Stopped),
        }
    }
}

struct Stops {
    term: tokio::signal::unix::Signal,
    int: tokio::signal::unix::Signal,
    hup: tokio::signal::unix::Signal,
}

impl Stops {
    async fn any(&mut self) {
        tokio::select! {
            _ = self.term.recv() => {}
            _ = self.int.recv() => {}
            _ = self.hup.recv() => {}
        }
    }
}

/// A link, trying again (with growing waits) while there is none; `Err` only when this
/// account will never get one.
async fn wait_for_link(source: &LinkSource, report: &mut impl FnMut(Event<'_>)) -> Result<String, LinkError> {
    let mut said: Option<String> = None;
    let mut attempt = 0;
    loop {
        let asked = source.clone();
        let answer = tokio::task::spawn_blocking(move || asked.link()).await.unwrap_or_else(|e| {
            Err(LinkError::Socket {
                path: PathBuf::new(),
                source: std::io::Error::other(format!("the link request was lost: {e}")),
            })
        });
        match answer {
            Ok(url) => return Ok(url),
            Err(e) if e.is_final() => return Err(e),
            Err(e) => {
                let text = e.to_string();
                if said.as_deref() != Some(text.as_str()) {
                    report(Event::Waiting(&e));
                    said = Some(text);
                }
            }
        }
        tokio::time::sleep(link_retry(attempt)).await;
        attempt = attempt.saturating_add(1);
    }
}

/// Asks the browser to close (`SIGTERM`), kills it after `CLOSE_GRACE`, and reaps it.
async fn close(child: &mut std::process::Child, children: &mut tokio::signal::unix::Signal) {
    use nix::sys::signal::{kill, Signal};
    use nix::unistd::Pid;
    if let Ok(Some(_)) = child.try_wait() {
        return;
    }
    let _ = kill(Pid::from_raw(child.id() as i32), Signal::SIGTERM);
    let deadline = tokio::time::Instant::now() + CLOSE_GRACE;
    loop {
        if let Ok(Some(_)) = child.try_wait() {
            return;
        }
        tokio::select! {
            _ = children.recv() => {}
            _ = tokio::time::sleep_until(deadline) => break,
        }
    }
    let _ = child.kill();
    let _ = child.wait();
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_browser_opens_the_link_full_screen_with_its_own_profile_and_the_extras_last() {
        let args = browser_args(
            "http://127.0.0.1:7878/cashier/open?token=abc",
            Path::new("/home/c/.local/state/redeemd-kiosk/chromium"),
            &[OsString::from("--headless=new")],
        );
        let args: Vec<String> = args.into_iter().map(|a| a.into_string().unwrap()).collect();
        assert_eq!(args[0], "--kiosk");
        assert_eq!(args[1], "--app=http://127.0.0.1:7878/cashier/open?token=abc");
        for flag in ["--no-first-run", "--noerrdialogs", "--disable-session-crashed-bubble", "--password-store=basic"] {
            assert!(args.iter().any(|a| a == flag), "{flag}");
        }
        assert!(args.contains(&"--user-data-dir=/home/c/.local/state/redeemd-kiosk/chromium".to_owned()));
        assert_eq!(args.last().unwrap(), "--headless=new");
    }

    #[test]
    fn the_profile_lives_in_the_state_directory() {
        let dir = default_profile_dir(Some("/s".into()), Some("/home/c".into()));
        assert_eq!(dir.unwrap(), Path::new("/s/redeemd-kiosk/chromium"));
        let dir = default_profile_dir(None, Some("/home/c".into()));
        assert_eq!(dir.unwrap(), Path::new("/home/c/.local/state/redeemd-kiosk/chromium"));
        let dir = default_profile_dir(Some("relative".into()), Some("/home/c".into()));
        assert_eq!(dir.unwrap(), Path::new("/home/c/.local/state/redeemd-kiosk/chromium"), "XDG wants absolute");
        assert!(default_profile_dir(None, None).is_none());
    }

    #[test]
    fn relaunches_back_off_while_the_browser_keeps_failing_and_start_over_after_it_worked() {
        let mut b = Backoff::new();
        let quick = Duration::from_secs(2);
        let waits: Vec<u64> = (0..7).map(|_| b.after_run(quick).as_secs()).collect();
        assert_eq!(waits, [1, 2, 4, 8, 16, 30, 30]);
        assert_eq!(b.after_run(Backoff::STEADY).as_secs(), 1, "it ran a minute: start over");
        assert_eq!(b.after_run(quick).as_secs(), 2);
        let retries: Vec<u64> = (0..7).map(|a| link_retry(a).as_millis() as u64).collect();
        assert_eq!(retries, [500, 1000, 2000, 4000, 5000, 5000, 5000]);
    }

    #[test]
    fn only_a_cashier_link_to_loopback_is_opened() {
        let good = "http://127.0.0.1:7878/cashier/open?token=AbC-_09";
        assert_eq!(checked_link(good).as_deref(), Some(good));
        assert!(checked_link("http://[::1]:7878/cashier/open?token=x").is_some());
        assert!(checked_link("http://localhost:7878/cashier/open?token=x").is_some());
        for bad in [
            "",
            "redeemd: no daemon runs",
            "https://127.0.0.1:7878/cashier/open?token=x",
            "http://192.0.2.1:7878/cashier/open?token=x",
            "http://example.com:7878/cashier/open?token=x",
            "http://127.0.0.1/cashier/open?token=x",
            "http://127.0.0.1:7878/manager?token=x",
            "http://127.0.0.1:7878/cashier/open",
            "http://127.0.0.1:7878/cashier/open?token=",
            "http://127.0.0.1:7878/cashier/open?token=a%22b",
            "http://u:p@127.0.0.1:7878/cashier/open?token=x",
            "file:///etc/passwd",
            "javascript:alert(1)",
        ] {
            assert!(checked_link(bad).is_none(), "{bad}");
        }
        assert_eq!(
            link_url("0.0.0.0:7878".parse().unwrap(), "t"),
            "http://127.0.0.1:7878/cashier/open?token=t",
            "a daemon on every interface is reached on loopback"
        );
        assert_eq!(link_url("[::1]:7878".parse().unwrap(), "t"), "http://[::1]:7878/cashier/open?token=t");
    }

    #[test]
    fn a_socket_that_is_missing_or_answers_no_link_says_so() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("link.sock");
        assert!(matches!(link_from_socket(&path, ASK_TIMEOUT), Err(LinkError::Socket { .. })));
        let listener = std::os::unix::net::UnixListener::bind(&path).unwrap();
        let serve = std::thread::spawn(move || {
            for answer in
                ["redeemd: no daemon runs on this terminal yet\n", "http://127.0.0.1:1/cashier/open?token=t\n"]
            {
                let (mut conn, _) = listener.accept().unwrap();
                std::io::Write::write_all(&mut conn, answer.as_bytes()).unwrap();
            }
        });
        match link_from_socket(&path, ASK_TIMEOUT) {
            Err(LinkError::Answer { answer, .. }) => assert_eq!(answer, "redeemd: no daemon runs on this terminal yet"),
            other => panic!("{other:?}"),
        }
        assert_eq!(link_from_socket(&path, ASK_TIMEOUT).unwrap(), "http://127.0.0.1:1/cashier/open?token=t");
        serve.join().unwrap();
    }

    #[test]
    fn no_daemon_no_link_and_nothing_written() {
        let dir = tempfile::tempdir().unwrap();
        let far = SystemClock.now() + LINK_VALIDITY;
        assert!(matches!(cashier_link(dir.path(), far, ASK_TIMEOUT), Err(LinkError::NotRunning)));
        let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap();
        std::fs::write(dir.path().join(local_daemon::LISTEN_FILE), port.to_string()).unwrap();
        assert!(matches!(cashier_link(dir.path(), far, ASK_TIMEOUT), Err(LinkError::NotRunning)));
        assert!(!dir.path().join(secret::CASHIER_LINK_FILE).exists());
        assert!(LinkError::NotInGroup { path: PathBuf::from(LINK_SOCKET) }.is_final());
        assert!(!LinkError::NotRunning.is_final());
    }
}
