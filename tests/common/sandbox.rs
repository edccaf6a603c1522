//! `redeemd sandbox serve` as a real process for tests: on `127.0.0.1:0` in a directory
//! of the test's, its address read from the first line it prints, its later lines
//! watched ([`Served::said`]), stopped with SIGTERM on drop. `env` passes switches such
//! as `REDEEMD_SANDBOX_DROP_ENROLL_ANSWERS=1` (commit an enrollment, drop its answer).

use super::{binary, Run};
use std::io::BufRead as _;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

/// `redeemd sandbox ARGS --dir DIR`, without the caller's config or log settings.
pub fn sandbox_command(dir: &Path, args: &[&str]) -> Command {
    let mut cmd = Command::new(binary());
    cmd.arg("sandbox").args(args).arg("--dir").arg(dir).env_remove("REDEEMD_CONFIG").env("REDEEMD_LOG", "error");
    cmd
}

/// A `redeemd sandbox serve` process on 127.0.0.1:0, stopped (SIGTERM) on drop.
pub struct Served {
    child: Option<Child>,
    /// `https://127.0.0.1:PORT/`
    pub url: String,
    pub dir: PathBuf,
    lines: mpsc::Receiver<String>,
}

impl Served {
    /// Starts it (English) and waits for its address.
    pub fn start(dir: &Path, env: &[(&str, &str)]) -> Served {
        let mut cmd = sandbox_command(dir, &["serve", "--listen", "127.0.0.1:0", "--language", "en"]);
        cmd.envs(env.iter().copied()).stdout(Stdio::piped()).stderr(Stdio::null());
        let mut child = cmd.spawn().unwrap();
        let stdout = child.stdout.take().unwrap();
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            for line in std::io::BufReader::new(stdout).lines().map_while(Result::ok) {
                let _ = tx.send(line);
            }
        });
        let first = rx.recv_timeout(Duration::from_secs(20)).expect("serve prints its address first");
        let url = first.strip_prefix("redeemd: listening on ").unwrap_or_else(|| panic!("first line: {first}"));
        Served { child: Some(child), url: url.to_owned(), dir: dir.to_owned(), lines: rx }
    }

    /// The CA file `provision --ca` takes.
    pub fn ca_pem(&self) -> String {
        std::fs::read_to_string(self.dir.join("ca.pem")).unwrap()
    }

    /// `redeemd sandbox ARGS` on this sandbox's directory (English).
    pub fn run(&self, args: &[&str]) -> Run {
        let mut cmd = sandbox_command(&self.dir, args);
        cmd.arg("--language").arg("en");
        let out = cmd.output().unwrap();
        Run {
            code: out.status.code().unwrap_or(-1),
            stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
        }
    }

    /// Waits (bounded) for a line of the server's output containing `needle`.
    pub fn said(&self, needle: &str) -> String {
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            let line = self.lines.recv_timeout(left).unwrap_or_else(|_| panic!("the sandbox never said {needle:?}"));
            if line.contains(needle) {
                return line;
            }
        }
    }

    /// SIGTERM, and the exit status within 5 s.
    pub fn stop(&mut self) -> Option<std::process::ExitStatus> {
        let mut child = self.child.take()?;
        let pid = nix::unistd::Pid::from_raw(i32::try_from(child.id()).unwrap());
        let _ = nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGTERM);
        let deadline = Instant::now() + Duration::from_secs(5);
        while Instant::now() < deadline {
            if let Ok(Some(status)) = child.try_wait() {
                return Some(status);
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        let _ = child.kill();
        let _ = child.wait();
        None
    }
}

impl Drop for Served {
    fn drop(&mut self) {
        self.stop();
    }
}
