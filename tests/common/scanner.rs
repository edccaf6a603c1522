//! A scanner emulator over a pseudo-terminal pair: the code under test opens a stable
//! link (like `/dev/serial/by-id/…`) that points at the pty's slave side; the emulator
//! writes on the master side as a scanner would, reads what the host sends back, and
//! can unplug (close the master, remove the link) and replug (a new pty, same link).

use redeemd::scanner::profile::{Profile, Protocol, Terminator};
use redeemd::scanner::ssi;
use serialport::{SerialPort, TTYPort};
use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

pub struct Emulator {
    master: Option<TTYPort>,
    link: PathBuf,
}

impl Emulator {
    /// A new pty whose slave is reachable at `link`.
    pub fn plug(link: &Path) -> Emulator {
        let (inheritable, slave) = TTYPort::pair().expect("a pseudo-terminal pair");
        let slave_path = slave.name().expect("the slave has a path");
        drop(slave);
        // posix_openpt gives no O_CLOEXEC: a child process started meanwhile (a daemon of
        // another test) would keep the master open, and unplugging would not hang up.
        let mut master = inheritable.try_clone_native().expect("a close-on-exec copy of the master");
        drop(inheritable);
        master.set_timeout(Duration::from_millis(20)).unwrap();
        let _ = std::fs::remove_file(link);
        std::os::unix::fs::symlink(&slave_path, link).unwrap();
        Emulator { master: Some(master), link: link.to_owned() }
    }

    pub fn link(&self) -> &Path {
        &self.link
    }

    fn master(&mut self) -> &mut TTYPort {
        self.master.as_mut().expect("unplugged")
    }

    pub fn write(&mut self, bytes: &[u8]) {
        let m = self.master();
        m.write_all(bytes).unwrap();
        m.flush().unwrap();
    }

    /// Writes `bytes` in pieces of `piece` bytes with `pause` between them.
    pub fn write_split(&mut self, bytes: &[u8], piece: usize, pause: Duration) {
        for chunk in bytes.chunks(piece.max(1)) {
            self.write(chunk);
            std::thread::sleep(pause);
        }
    }

    /// The bytes a scanner of `profile` sends for `text` (plain protocols).
    pub fn framed(profile: &Profile, text: &str, aim: Option<&str>) -> Vec<u8> {
        let f = &profile.framing;
        assert_eq!(f.protocol, Protocol::Plain, "use scan_ssi for SSI profiles");
        let mut out = f.prefix.clone();
        out.extend_from_slice(aim.unwrap_or("").as_bytes());
        out.extend_from_slice(text.as_bytes());
        out.extend_from_slice(match f.terminator {
            Terminator::Cr => b"\r",
            Terminator::Lf => b"\n",
            Terminator::CrLf | Terminator::AnyEol => b"\r\n",
            Terminator::Etx => b"\x03",
            Terminator::None => b"",
        });
        out
    }

    pub fn scan(&mut self, profile: &Profile, text: &str, aim: Option<&str>) {
        let bytes = Emulator::framed(profile, text, aim);
        self.write(&bytes);
    }

    /// Sends `text` as SSI DECODE_DATA packets of at most `chunk` bytes, waiting for the
    /// host's answer to each; returns the answers (ACK or NAK packets).
    pub fn scan_ssi(&mut self, text: &str, chunk: usize, corrupt_first: bool) -> Vec<Vec<u8>> {
        let mut answers = Vec::new();
        for (i, mut packet) in ssi::decode_data_packets(0x1C, text.as_bytes(), chunk).into_iter().enumerate() {
            if corrupt_first && i == 0 {
                let mut bad = packet.clone();
                bad[5] ^= 0x40;
                self.write(&bad);
                answers.push(self.read_packet(Duration::from_secs(2)));
                packet[3] |= ssi::STATUS_RETRANSMIT;
                let len = packet.len();
                let sum = ssi::checksum(&packet[..len - 2]).to_be_bytes();
                packet[len - 2..].copy_from_slice(&sum);
            }
            self.write(&packet);
            answers.push(self.read_packet(Duration::from_secs(2)));
        }
        answers
    }

    /// One SSI packet from the host.
    pub fn read_packet(&mut self, timeout: Duration) -> Vec<u8> {
        let mut got = Vec::new();
        let deadline = Instant::now() + timeout;
        while Instant::now() < deadline {
            let want = got.first().map(|&l| usize::from(l) + 2);
            if want.is_some_and(|w| got.len() >= w) {
                break;
            }
            let mut byte = [0u8; 1];
            if let Ok(1) = self.master().read(&mut byte) {
                got.push(byte[0]);
            }
        }
        got
    }

    /// Whatever the host wrote within `timeout`.
    pub fn read_for(&mut self, timeout: Duration) -> Vec<u8> {
        let mut got = Vec::new();
        let deadline = Instant::now() + timeout;
        let mut buf = [0u8; 256];
        while Instant::now() < deadline {
            if let Ok(n) = self.master().read(&mut buf) {
                got.extend_from_slice(&buf[..n]);
            }
        }
        got
    }

    /// Pulls the plug: the master closes, the link goes away.
    pub fn unplug(mut self) -> PathBuf {
        self.master = None;
        let _ = std::fs::remove_file(&self.link);
        self.link.clone()
    }
}

impl Drop for Emulator {
    fn drop(&mut self) {
        if self.master.is_some() {
            let _ = std::fs::remove_file(&self.link);
        }
    }
}
