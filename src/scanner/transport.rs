//! The serial transport: finds and opens the scanner's port (a path, a
//! `/dev/serial/by-id/…` link, or `auto` by USB id), applies the profile's settings,
//! sends its init sequence, feeds bytes to the [`Decoder`] and delivers
//! [`ScannerEvent`]s over a channel. It survives unplugging: it reports `Disconnected`,
//! retries with backoff (100 ms doubling to 1 s) and resumes on replug, never panicking.
//!
//! One thread per scanner, the only module that touches serial ports. It sleeps in
//! poll(2) on the port and on a wake-up socket that [`Scanner::feedback`] and
//! [`Scanner::stop`] write to, with no timeout unless a partial frame's gap timeout is
//! pending: an idle scanner costs no wake-ups, and feedback is written the moment it is
//! asked for. It decides nothing about the codes it reads.

use super::decoder::{Decoder, DiscardReason, Event};
use super::profile::{FlowControl, Parity, Profile, Protocol};
use super::{ssi, Feedback};
use crate::messages::Text;
use nix::errno::Errno;
use nix::poll::{poll, PollFd, PollFlags};
use serde::Serialize;
use std::io::{Read, Write};
use std::os::unix::io::AsRawFd;
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::sync::mpsc::{self, Receiver, RecvTimeoutError, Sender, TryRecvError};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// The port's own read and write timeout. The scanner thread reads only once poll(2) says
/// the port is readable, so its reads return at once; this bounds a write held up by flow
/// control, and any read by another user of [`open`].
const IO_TIMEOUT: Duration = Duration::from_millis(20);
const BACKOFF_START: Duration = Duration::from_millis(100);
const BACKOFF_MAX: Duration = Duration::from_secs(1);

/// What stops the scanner port. Its texts are in the message tables (`[error]
/// scanner_*`): `Display` is the English one (logs), [`TransportError::text`] the one
/// for a person in their language.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TransportError {
    NotFound(String),
    Permission(String),
    Busy(String),
    Open { port: String, message: String },
    NoMatch { profile: String, wanted: String },
    Ambiguous { profile: String, ports: String },
    List(String),
}

impl TransportError {
    pub fn text(&self) -> Text {
        let text = |key, values: &[(&'static str, &String)]| {
            Text::new(key, values.iter().map(|(k, v)| (*k, (*v).clone())).collect())
        };
        match self {
            TransportError::NotFound(port) => text("error.scanner_not_found", &[("port", port)]),
            TransportError::Permission(port) => text("error.scanner_permission", &[("port", port)]),
            TransportError::Busy(port) => text("error.scanner_busy", &[("port", port)]),
            TransportError::Open { port, message } => {
                text("error.scanner_open", &[("port", port), ("message", message)])
            }
            TransportError::NoMatch { profile, wanted } if wanted.is_empty() => {
                text("error.scanner_no_usb_port", &[("profile", profile)])
            }
            TransportError::NoMatch { profile, wanted } => {
                text("error.scanner_no_match", &[("profile", profile), ("wanted", wanted)])
            }
            TransportError::Ambiguous { profile, ports } => {
                text("error.scanner_ambiguous", &[("profile", profile), ("ports", ports)])
            }
            TransportError::List(message) => text("error.scanner_list", &[("message", message)]),
        }
    }
}

impl std::fmt::Display for TransportError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.text().fmt(f)
    }
}

impl std::error::Error for TransportError {}

/// Where to find the scanner.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PortSpec {
    Path(PathBuf),
    /// The USB serial port whose VID:PID the profile names (or the only one).
    Auto,
}

impl PortSpec {
    pub fn parse(text: &str) -> PortSpec {
        if text == "auto" {
            PortSpec::Auto
        } else {
            PortSpec::Path(PathBuf::from(text))
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct UsbInfo {
    pub vid: String,
    pub pid: String,
    pub serial_number: Option<String>,
    pub manufacturer: Option<String>,
    pub product: Option<String>,
    pub interface: Option<u8>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct PortInfo {
    pub port: String,
    /// Stable `/dev/serial/by-id/…` names pointing at this port.
    pub by_id: Vec<String>,
    pub usb: Option<UsbInfo>,
    /// Ids of the profiles whose USB ids match.
    pub profiles: Vec<String>,
}

/// The system's serial ports with their USB ids and matching profiles.
pub fn list_ports(profiles: &[Profile]) -> Result<Vec<PortInfo>, TransportError> {
    if !Path::new("/sys/class/tty").is_dir() {
        // serialport panics without it (minimal containers): say so instead.
        return Err(TransportError::List("/sys/class/tty is missing".into()));
    }
    let ports = serialport::available_ports().map_err(|e| TransportError::List(e.to_string()))?;
    let by_id = by_id_links();
    let mut out: Vec<PortInfo> = ports
        .into_iter()
        .map(|p| {
            let usb = match &p.port_type {
                serialport::SerialPortType::UsbPort(u) => Some((u.vid, u.pid, u.clone())),
                _ => None,
            };
            let matched = usb
                .as_ref()
                .map(|(vid, pid, _)| {
                    profiles.iter().filter(|pr| pr.matches_usb(*vid, *pid)).map(|pr| pr.id.clone()).collect()
                })
                .unwrap_or_default();
            let canonical = std::fs::canonicalize(&p.port_name).unwrap_or_else(|_| PathBuf::from(&p.port_name));
            PortInfo {
                by_id: by_id.iter().filter(|(_, target)| *target == canonical).map(|(link, _)| link.clone()).collect(),
                usb: usb.map(|(vid, pid, u)| UsbInfo {
                    vid: format!("{vid:04x}"),
                    pid: format!("{pid:04x}"),
                    serial_number: u.serial_number,
                    manufacturer: u.manufacturer,
                    product: u.product,
                    interface: u.interface,
                }),
                port: p.port_name,
                profiles: matched,
            }
        })
        .collect();
    out.sort_by(|a, b| a.port.cmp(&b.port));
    Ok(out)
}

fn by_id_links() -> Vec<(String, PathBuf)> {
    let Ok(entries) = std::fs::read_dir("/dev/serial/by-id") else {
        return Vec::new();
    };
    entries
        .filter_map(Result::ok)
        .filter_map(|e| std::fs::canonicalize(e.path()).ok().map(|t| (e.path().to_string_lossy().into_owned(), t)))
        .collect()
}

/// Picks the port for `auto`: the one whose USB id the profile names; for a profile
/// without USB ids, the only USB serial port there is.
pub fn resolve_auto(profile: &Profile, ports: &[PortInfo]) -> Result<PathBuf, TransportError> {
    let candidates: Vec<&PortInfo> = if profile.usb.is_empty() {
        ports.iter().filter(|p| p.usb.is_some()).collect()
    } else {
        ports.iter().filter(|p| p.profiles.contains(&profile.id)).collect()
    };
    match candidates.as_slice() {
        [one] => Ok(PathBuf::from(one.by_id.first().unwrap_or(&one.port))),
        [] => Err(TransportError::NoMatch {
            profile: profile.id.clone(),
            // Empty: the profile takes any USB serial port.
            wanted: profile.usb.iter().map(|u| format!("{:04x}:{:04x}", u.vid, u.pid)).collect::<Vec<_>>().join(", "),
        }),
        many => Err(TransportError::Ambiguous {
            profile: profile.id.clone(),
            ports: many.iter().map(|p| p.port.as_str()).collect::<Vec<_>>().join(", "),
        }),
    }
}

/// Opens `path` with the profile's serial settings.
pub fn open(path: &Path, profile: &Profile) -> Result<serialport::TTYPort, TransportError> {
    let name = path.to_string_lossy().into_owned();
    if !path.exists() {
        return Err(TransportError::NotFound(name));
    }
    let s = &profile.serial;
    let builder = serialport::new(name.clone(), s.baud)
        .data_bits(match s.data_bits {
            5 => serialport::DataBits::Five,
            6 => serialport::DataBits::Six,
            7 => serialport::DataBits::Seven,
            _ => serialport::DataBits::Eight,
        })
        .parity(match s.parity {
            Parity::None => serialport::Parity::None,
            Parity::Odd => serialport::Parity::Odd,
            Parity::Even => serialport::Parity::Even,
        })
        .stop_bits(if s.stop_bits == 2 { serialport::StopBits::Two } else { serialport::StopBits::One })
        .flow_control(match s.flow_control {
            FlowControl::None => serialport::FlowControl::None,
            FlowControl::Software => serialport::FlowControl::Software,
            FlowControl::Hardware => serialport::FlowControl::Hardware,
        })
        .timeout(IO_TIMEOUT);
    builder.open_native().map_err(|e| classify(&name, &e))
}

fn classify(port: &str, e: &serialport::Error) -> TransportError {
    let message = e.description.clone();
    let lower = message.to_lowercase();
    match e.kind {
        serialport::ErrorKind::Io(std::io::ErrorKind::PermissionDenied) => TransportError::Permission(port.into()),
        serialport::ErrorKind::Io(std::io::ErrorKind::NotFound) => TransportError::NotFound(port.into()),
        _ if lower.contains("busy") || lower.contains("lock") || lower.contains("would block") => {
            TransportError::Busy(port.into())
        }
        _ if lower.contains("permission") => TransportError::Permission(port.into()),
        _ => TransportError::Open { port: port.into(), message },
    }
}

/// What the scanner thread reports.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ScannerEvent {
    Connected {
        port: String,
    },
    /// The port could not be opened (reported once per distinct error, then retried).
    Unavailable {
        error: TransportError,
    },
    Disconnected {
        reason: String,
    },
    Frame {
        text: String,
        aim: Option<String>,
        bytes: usize,
    },
    Discarded {
        reason: DiscardReason,
        bytes: usize,
    },
}

enum Command {
    Feedback(Feedback),
    /// See [`Scanner::forget`].
    Forget(String),
    Stop,
}

/// A running scanner: events come out of `events`; feedback goes in.
pub struct Scanner {
    events: Receiver<ScannerEvent>,
    commands: Sender<Command>,
    /// One byte is written here after each command: the thread sleeps in poll(2) on the
    /// other end, and an mpsc channel alone cannot wake it.
    wake: UnixStream,
    thread: Option<JoinHandle<()>>,
}

impl TransportError {
    /// Errors that waiting will not fix: the installer must act.
    pub fn needs_action(&self) -> bool {
        matches!(self, TransportError::Permission(_) | TransportError::Busy(_) | TransportError::Ambiguous { .. })
    }
}

impl Scanner {
    /// Starts the scanner thread. It keeps trying until stopped: a missing port is
    /// reported once as `Disconnected` and retried.
    pub fn spawn(spec: PortSpec, profile: Profile) -> Scanner {
        let (event_tx, events) = mpsc::channel();
        let (commands, command_rx) = mpsc::channel();
        let (wake, wake_rx) = wake_pair().expect("creating the scanner thread's wake-up socket");
        let thread = std::thread::Builder::new()
            .name("scanner".into())
            .spawn(move || run(spec, profile, event_tx, command_rx, wake_rx))
            .expect("spawning the scanner thread");
        Scanner { events, commands, wake, thread: Some(thread) }
    }

    pub fn recv_timeout(&self, timeout: Duration) -> Option<ScannerEvent> {
        self.events.recv_timeout(timeout).ok()
    }

    /// The next event; `None` once the scanner thread has stopped.
    pub fn recv(&self) -> Option<ScannerEvent> {
        self.events.recv().ok()
    }

    /// A handle that stops the scanner thread from elsewhere (the daemon's shutdown),
    /// which ends [`Scanner::recv`] for whoever owns the scanner.
    pub fn stopper(&self) -> ScannerStopper {
        ScannerStopper { commands: self.commands.clone(), wake: self.wake.try_clone().ok() }
    }

    /// Beeps good or bad, as the profile says (nothing when it does not know how).
    pub fn feedback(&self, feedback: Feedback) {
        self.send(Command::Feedback(feedback));
    }

    /// Tells the decoder that the frame `text` was not taken (no checkout was open), so a
    /// rescan of it inside the duplicate window is delivered again instead of dropped in
    /// silence. Send it before the feedback: commands are handled in order, so by the time
    /// the cashier hears the bad-read and scans again, the decoder has forgotten the frame.
    pub fn forget(&self, text: String) {
        self.send(Command::Forget(text));
    }

    pub fn stop(mut self) {
        self.shutdown();
    }

    /// Queues `command`, then wakes the thread; in that order, so the thread finds the
    /// command once it has read the byte.
    fn send(&self, command: Command) {
        if self.commands.send(command).is_ok() {
            // Fails only with WouldBlock when the socket is full of unread wake-ups: the
            // thread is woken anyway, and the caller must never block.
            let _ = (&self.wake).write_all(&[1]);
        }
    }

    fn shutdown(&mut self) {
        self.send(Command::Stop);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// Stops a [`Scanner`]'s thread; see [`Scanner::stopper`].
pub struct ScannerStopper {
    commands: Sender<Command>,
    wake: Option<UnixStream>,
}

impl ScannerStopper {
    pub fn stop(&self) {
        if self.commands.send(Command::Stop).is_ok() {
            if let Some(wake) = &self.wake {
                let _ = (&*wake).write_all(&[1]);
            }
        }
    }
}

impl Drop for Scanner {
    fn drop(&mut self) {
        self.shutdown();
    }
}

/// The two ends of the wake-up socket, (the `Scanner`'s, the thread's); neither blocks.
fn wake_pair() -> std::io::Result<(UnixStream, UnixStream)> {
    let (tx, rx) = UnixStream::pair()?;
    tx.set_nonblocking(true)?;
    rx.set_nonblocking(true)?;
    Ok((tx, rx))
}

/// Empties the thread's end of the wake-up socket. False when the `Scanner` end is gone
/// (it would stay readable forever, so poll(2) would spin).
fn drain_wake(wake: &UnixStream) -> bool {
    let mut reader = wake;
    let mut sink = [0u8; 64];
    loop {
        match reader.read(&mut sink) {
            Ok(0) => return false,
            Ok(_) => {}
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => return e.kind() == std::io::ErrorKind::WouldBlock,
        }
    }
}

/// A poll(2) timeout: whole milliseconds rounded up, so poll does not return just before
/// the deadline and go round once more for nothing.
fn poll_timeout_ms(left: Duration) -> i32 {
    i32::try_from(left.as_nanos().div_ceil(1_000_000)).unwrap_or(i32::MAX)
}

fn feedback_bytes(profile: &Profile, feedback: Feedback) -> Vec<u8> {
    let c = &profile.commands;
    let (plain, ssi_command) = match feedback {
        Feedback::Good => (&c.good_read, &c.ssi_good_read),
        Feedback::Bad => (&c.bad_read, &c.ssi_bad_read),
    };
    match (profile.framing.protocol, ssi_command) {
        (Protocol::ZebraSsi, Some(cmd)) => ssi::packet(cmd.opcode, ssi::SOURCE_HOST, 0, &cmd.data),
        _ => plain.clone(),
    }
}

/// Outcome of one connection.
enum Ended {
    Stop,
    Lost(String),
}

fn run(spec: PortSpec, profile: Profile, events: Sender<ScannerEvent>, commands: Receiver<Command>, wake: UnixStream) {
    let started = Instant::now();
    let mut backoff = BACKOFF_START;
    let mut last_report: Option<String> = None;
    loop {
        let attempt = match &spec {
            PortSpec::Path(p) => Ok(p.clone()),
            PortSpec::Auto => {
                list_ports(std::slice::from_ref(&profile)).and_then(|ports| resolve_auto(&profile, &ports))
            }
        }
        .and_then(|path| open(&path, &profile).map(|port| (path, port)));
        match attempt {
            Ok((path, port)) => {
                backoff = BACKOFF_START;
                let name = path.to_string_lossy().into_owned();
                match connected(port, &name, &profile, &events, &commands, &wake, started) {
                    Ended::Stop => return,
                    Ended::Lost(reason) => {
                        tracing::info!(%reason, "scanner disconnected");
                        if events.send(ScannerEvent::Disconnected { reason: reason.clone() }).is_err() {
                            return;
                        }
                        last_report = Some(reason);
                    }
                }
            }
            Err(error) => {
                let reason = error.to_string();
                if last_report.as_deref() != Some(&reason) {
                    tracing::info!(%reason, "scanner not available");
                    if events.send(ScannerEvent::Unavailable { error }).is_err() {
                        return;
                    }
                    last_report = Some(reason);
                }
            }
        }
        // Wait out the backoff on the channel itself (the wake-up bytes pile up unread until
        // the next connection drains them), still answering Stop promptly. Feedback has no
        // scanner to go to: it is dropped, and does not cut the wait short. So is a frame to
        // forget: the next connection's decoder starts with no memory of frames.
        let retry_at = Instant::now() + backoff;
        loop {
            match commands.recv_timeout(retry_at.saturating_duration_since(Instant::now())) {
                Ok(Command::Stop) | Err(RecvTimeoutError::Disconnected) => return,
                Ok(Command::Feedback(_) | Command::Forget(_)) => {}
                Err(RecvTimeoutError::Timeout) => break,
            }
        }
        backoff = (backoff * 2).min(BACKOFF_MAX);
    }
}

fn connected(
    mut port: serialport::TTYPort,
    name: &str,
    profile: &Profile,
    events: &Sender<ScannerEvent>,
    commands: &Receiver<Command>,
    wake: &UnixStream,
    started: Instant,
) -> Ended {
    let _ = serialport::SerialPort::clear(&port, serialport::ClearBuffer::Input);
    for command in &profile.commands.init {
        if let Err(e) = port.write_all(command) {
            return Ended::Lost(format!("writing the init sequence: {e}"));
        }
    }
    // Told only now, so nothing the scanner sends after this is flushed away above.
    tracing::info!(port = %name, profile = %profile.id, "scanner connected");
    if events.send(ScannerEvent::Connected { port: name.to_owned() }).is_err() {
        return Ended::Stop;
    }
    let mut decoder = Decoder::new(&profile.framing);
    let mut buf = vec![0u8; 4096];
    let mut out = Vec::new();
    let mut warned_too_long = false;
    // The decoder's clock reading for the last bytes it got. A partial frame is due for
    // `tick` (abandoned, or delivered without a terminator) at this plus the gap timeout;
    // that is the only deadline the decoder has: duplicate windows are checked against
    // the time of the next frame, which arrives with bytes, so they need no wake-up.
    let mut last_byte_ms = 0u64;
    loop {
        let timeout = if decoder.is_partial() {
            let due = started + Duration::from_millis(last_byte_ms + profile.framing.gap_timeout_ms);
            poll_timeout_ms(due.saturating_duration_since(Instant::now()))
        } else {
            -1 // nothing can happen until a byte or a command arrives
        };
        let mut fds =
            [PollFd::new(port.as_raw_fd(), PollFlags::POLLIN), PollFd::new(wake.as_raw_fd(), PollFlags::POLLIN)];
        match poll(&mut fds, timeout) {
            Ok(_) => {}
            Err(Errno::EINTR) => continue,
            Err(e) => return Ended::Lost(format!("waiting for the port: {e}")),
        }
        // Linux reports no flags nix does not know; should one appear, let the read decide.
        let [port_ready, wake_ready] = fds.map(|fd| fd.revents().unwrap_or(PollFlags::POLLIN));
        if !wake_ready.is_empty() {
            // Drained before the channel is read: a command sent after this finds its byte
            // still in the socket, and poll wakes again for it.
            if !drain_wake(wake) {
                return Ended::Stop;
            }
            loop {
                match commands.try_recv() {
                    Ok(Command::Stop) | Err(TryRecvError::Disconnected) => return Ended::Stop,
                    Ok(Command::Feedback(f)) => {
                        let bytes = feedback_bytes(profile, f);
                        if !bytes.is_empty() {
                            if let Err(e) = port.write_all(&bytes) {
                                return Ended::Lost(format!("writing feedback: {e}"));
                            }
                        }
                    }
                    Ok(Command::Forget(text)) => decoder.forget(&text),
                    Err(TryRecvError::Empty) => break,
                }
            }
        }
        // A hang-up stays reported on every poll: the device is gone (unplugged, or the
        // pty master closed), so reconnect.
        if port_ready.intersects(PollFlags::POLLHUP | PollFlags::POLLERR | PollFlags::POLLNVAL) {
            return Ended::Lost("the port hung up".into());
        }
        let now_ms = started.elapsed().as_millis() as u64;
        if port_ready.contains(PollFlags::POLLIN) {
            match port.read(&mut buf) {
                Ok(0) => return Ended::Lost("the port closed".into()),
                Ok(n) => {
                    decoder.push(&buf[..n], now_ms, &mut out);
                    last_byte_ms = now_ms;
                }
                Err(e)
                    if matches!(
                        e.kind(),
                        std::io::ErrorKind::TimedOut | std::io::ErrorKind::WouldBlock | std::io::ErrorKind::Interrupted
                    ) => {}
                Err(e) => return Ended::Lost(format!("reading: {e}")),
            }
        }
        // Fires a gap timeout that is due (poll returned on its deadline, or anything
        // else woke it late); a no-op otherwise, and right after bytes were pushed.
        decoder.tick(now_ms, &mut out);
        for event in out.drain(..) {
            let event = match event {
                Event::Send(bytes) => {
                    if let Err(e) = port.write_all(&bytes) {
                        return Ended::Lost(format!("writing a handshake: {e}"));
                    }
                    continue;
                }
                Event::Frame { text, aim, bytes } => ScannerEvent::Frame { text, aim, bytes },
                Event::Discarded { reason, bytes } => {
                    if reason == DiscardReason::TooLong && !warned_too_long {
                        warned_too_long = true;
                        tracing::warn!(
                            bytes,
                            max = profile.framing.max_frame,
                            "over-long frame discarded (logged once)"
                        );
                    }
                    ScannerEvent::Discarded { reason, bytes }
                }
            };
            if events.send(event).is_err() {
                return Ended::Stop;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::scanner::profile::{self, Terminator};

    #[test]
    fn open_errors_say_what_to_do() {
        let denied = serialport::Error::new(serialport::ErrorKind::Io(std::io::ErrorKind::PermissionDenied), "EACCES");
        let e = classify("/dev/ttyACM0", &denied);
        assert_eq!(e, TransportError::Permission("/dev/ttyACM0".into()));
        assert!(e.to_string().contains("dialout"), "{e}");
        let busy = serialport::Error::new(serialport::ErrorKind::NoDevice, "Device or resource busy");
        assert!(matches!(classify("/dev/ttyACM0", &busy), TransportError::Busy(_)));
        assert!(TransportError::Busy("x".into()).needs_action());
        assert!(!TransportError::NotFound("x".into()).needs_action());
    }

    fn port(name: &str, vid: &str, pid: &str, profiles: &[&str]) -> PortInfo {
        PortInfo {
            port: name.into(),
            by_id: vec![],
            usb: Some(UsbInfo {
                vid: vid.into(),
                pid: pid.into(),
                serial_number: None,
                manufacturer: None,
                product: None,
                interface: None,
            }),
            profiles: profiles.iter().map(|s| s.to_string()).collect(),
        }
    }

    #[test]
    fn auto_picks_the_matching_port_or_says_why_not() {
        let zebra = profile::find("zebra-ds2208").unwrap();
        let generic = profile::find("generic-cdc").unwrap();
        let ports = vec![
            port("/dev/ttyACM0", "05e0", "1701", &["zebra-ds2208", "zebra-ds4608-ssi", "zebra-ds9308"]),
            port("/dev/ttyACM1", "1eab", "1a06", &["newland-hr22"]),
        ];
        assert_eq!(resolve_auto(&zebra, &ports).unwrap(), PathBuf::from("/dev/ttyACM0"));
        assert!(matches!(resolve_auto(&generic, &ports), Err(TransportError::Ambiguous { .. })));
        assert_eq!(resolve_auto(&generic, &ports[1..]).unwrap(), PathBuf::from("/dev/ttyACM1"));
        let none = resolve_auto(&zebra, &ports[1..]).unwrap_err();
        assert!(none.to_string().contains("05e0:1701"), "{none}");
    }

    /// A pseudo-terminal: the scanner thread opens the slave by its path, the test plays
    /// the scanner on the master.
    fn pty() -> (serialport::TTYPort, PathBuf) {
        use serialport::SerialPort;
        let (mut master, slave) = serialport::TTYPort::pair().expect("a pseudo-terminal pair");
        let path = PathBuf::from(slave.name().expect("the slave has a path"));
        drop(slave); // the transport opens it exclusively
        master.set_timeout(Duration::from_millis(20)).unwrap();
        (master, path)
    }

    /// The next event matching `want`; fails (rather than hangs) after a few seconds.
    fn wait_for(scanner: &Scanner, want: impl Fn(&ScannerEvent) -> bool) -> ScannerEvent {
        let deadline = Instant::now() + Duration::from_secs(5);
        let mut seen = Vec::new();
        while let Some(left) = deadline.checked_duration_since(Instant::now()) {
            match scanner.recv_timeout(left) {
                Some(e) if want(&e) => return e,
                Some(e) => seen.push(e),
                None => {}
            }
        }
        panic!("timed out; events seen: {seen:?}");
    }

    /// Whatever the host wrote to `master` until `n` bytes came or `limit` passed.
    fn read_bytes(master: &mut serialport::TTYPort, n: usize, limit: Duration) -> Vec<u8> {
        let deadline = Instant::now() + limit;
        let mut got = Vec::new();
        let mut buf = [0u8; 64];
        while got.len() < n && Instant::now() < deadline {
            if let Ok(k) = master.read(&mut buf) {
                got.extend_from_slice(&buf[..k]);
            }
        }
        got
    }

    /// Stops `scanner` on another thread: a stop that fails to wake the scanner thread
    /// fails the test instead of hanging it.
    fn stops_promptly(scanner: Scanner) {
        let (done_tx, done) = mpsc::channel();
        std::thread::spawn(move || {
            scanner.stop();
            let _ = done_tx.send(());
        });
        assert!(done.recv_timeout(Duration::from_secs(5)).is_ok(), "stop did not end the scanner thread");
    }

    #[test]
    fn feedback_and_stop_wake_an_idle_scanner() {
        let mut p = profile::find("generic-serial").unwrap();
        p.commands.good_read = b"G".to_vec();
        p.commands.bad_read = b"BAD".to_vec();
        let (mut master, path) = pty();
        let scanner = Scanner::spawn(PortSpec::Path(path), p);
        wait_for(&scanner, |e| matches!(e, ScannerEvent::Connected { .. }));
        for (feedback, want) in [(Feedback::Good, &b"G"[..]), (Feedback::Bad, b"BAD")] {
            // Idle: no bytes, no partial frame, so the thread sleeps in poll with no
            // timeout, and only the wake-up socket can get the feedback written. The limit
            // is generous, for a loaded machine: missing the wake-up means never.
            std::thread::sleep(Duration::from_millis(50));
            scanner.feedback(feedback);
            assert_eq!(read_bytes(&mut master, want.len(), Duration::from_millis(500)), want, "{feedback:?}");
        }
        stops_promptly(scanner);
    }

    #[test]
    fn a_partial_frame_ends_on_its_gap_timeout_with_no_more_input() {
        for terminator in [Terminator::AnyEol, Terminator::None] {
            let mut p = profile::find("generic-serial").unwrap();
            p.framing.terminator = terminator;
            let gap = p.framing.gap_timeout();
            let (mut master, path) = pty();
            let scanner = Scanner::spawn(PortSpec::Path(path), p);
            wait_for(&scanner, |e| matches!(e, ScannerEvent::Connected { .. }));
            let sent = Instant::now();
            master.write_all(b"CP1:HALF").unwrap();
            let got = wait_for(&scanner, |e| matches!(e, ScannerEvent::Frame { .. } | ScannerEvent::Discarded { .. }));
            // Never early (the decoder's clock counts whole milliseconds, hence the slack).
            let waited = sent.elapsed();
            assert!(waited + Duration::from_millis(2) >= gap, "{terminator:?} ended after {waited:?}");
            let want = match terminator {
                Terminator::None => ScannerEvent::Frame { text: "CP1:HALF".into(), aim: None, bytes: 8 },
                _ => ScannerEvent::Discarded { reason: DiscardReason::Incomplete, bytes: 8 },
            };
            assert_eq!(got, want, "{terminator:?}");
            // And the thread is back to sleeping without a timeout, yet still answers.
            master.write_all(b"CP1:NEXT\r").unwrap();
            let next = wait_for(&scanner, |e| matches!(e, ScannerEvent::Frame { .. } | ScannerEvent::Discarded { .. }));
            if terminator == Terminator::AnyEol {
                assert_eq!(next, ScannerEvent::Frame { text: "CP1:NEXT".into(), aim: None, bytes: 8 });
            }
            stops_promptly(scanner);
        }
    }

    #[test]
    fn a_missing_port_still_takes_feedback_and_stops() {
        let p = profile::find("generic-serial").unwrap();
        let scanner = Scanner::spawn(PortSpec::Path("/dev/redeemd-no-such-port".into()), p);
        wait_for(&scanner, |e| matches!(e, ScannerEvent::Unavailable { .. }));
        // Waiting out the backoff: feedback has nowhere to go and is dropped.
        scanner.feedback(Feedback::Good);
        stops_promptly(scanner);
    }
}
