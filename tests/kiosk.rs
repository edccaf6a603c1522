//! `redeemd kiosk` against a real `redeemd run`: in Chromium (headless, through a wrapper
//! that adds the test flags and a DevTools port), the screen opens on a one-time link,
//! signs in (the page's event stream connects with its session) and opens again with a
//! new link after the browser is killed; SIGTERM closes it. The link socket's protocol as
//! the package runs it (one `kiosk --serve-link` per connection, as systemd's Accept=yes
//! does), its refusals (no daemon, another process on the port, an account outside the
//! group), and a kiosk that waits for the daemon without starting any browser. Every wait
//! is bounded; processes are killed and temporary files removed at the end.

mod common;

use common::browser::{self, Browser};
use common::daemon::Daemon;
use common::impostor::Impostor;
use common::TestTerminal;
use nix::sys::signal::{kill, killpg, Signal};
use nix::unistd::Pid;
use std::io::{BufRead as _, BufReader};
use std::os::unix::process::CommandExt as _;
use std::path::{Path, PathBuf};
use std::process::{Child, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// A running `redeemd kiosk` (in its own process group, killed whole when dropped) and
/// its stderr.
struct Kiosk {
    child: Child,
    log: Arc<Mutex<String>>,
}

impl Kiosk {
    fn start(t: &TestTerminal, args: &[&str]) -> Kiosk {
        let mut cmd = t.command(&["kiosk"]);
        cmd.args(args).stdin(Stdio::null()).stdout(Stdio::null()).stderr(Stdio::piped()).process_group(0);
        let mut child = cmd.spawn().expect("starting redeemd kiosk");
        let log = Arc::new(Mutex::new(String::new()));
        let sink = log.clone();
        let stderr = child.stderr.take().unwrap();
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                let mut s = sink.lock().unwrap();
                s.push_str(&line);
                s.push('\n');
            }
        });
        Kiosk { child, log }
    }

    fn log(&self) -> String {
        self.log.lock().unwrap().clone()
    }

    fn signal(&self, signal: Signal) {
        kill(Pid::from_raw(self.child.id() as i32), signal).unwrap();
    }

    /// The exit code within `limit`, or None (then it is killed).
    fn wait_exit(&mut self, limit: Duration) -> Option<i32> {
        let started = Instant::now();
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                return status.code();
            }
            if started.elapsed() > limit {
                return None;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for Kiosk {
    fn drop(&mut self) {
        // The whole group: the kiosk and any browser it left. (Not `kill -KILL -PGID`:
        // procps 4.0's kill reads that as -1, every process.)
        let _ = killpg(Pid::from_raw(self.child.id() as i32), Signal::SIGKILL);
        let _ = self.child.wait();
    }
}

/// Waits (bounded) until `check` gives something; says what it waited for otherwise.
fn wait_for<T>(what: &str, limit: Duration, context: impl Fn() -> String, mut check: impl FnMut() -> Option<T>) -> T {
    let deadline = Instant::now() + limit;
    loop {
        if let Some(value) = check() {
            return value;
        }
        assert!(Instant::now() < deadline, "{what} did not happen within {limit:?}:\n{}", context());
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn write_script(path: &Path, text: &str) {
    use std::os::unix::fs::PermissionsExt as _;
    std::fs::write(path, text).unwrap();
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o755)).unwrap();
}

fn lines(path: &Path) -> Vec<String> {
    std::fs::read_to_string(path).unwrap_or_default().lines().map(str::to_owned).collect()
}

/// The token of the cashier link in a browser's arguments (`--app=…?token=T`).
fn token_in(args: &str) -> String {
    let app = args.split(' ').find_map(|a| a.strip_prefix("--app=")).unwrap_or_else(|| panic!("no --app in {args}"));
    app.split("token=").nth(1).unwrap_or_else(|| panic!("no token in {app}")).to_owned()
}

fn cashier_sessions(t: &TestTerminal) -> i64 {
    let flags = rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY;
    let conn = rusqlite::Connection::open_with_flags(t.db(), flags).unwrap();
    conn.query_row("SELECT count(*) FROM session WHERE kind = 'cashier'", [], |r| r.get(0)).unwrap()
}

fn alive(pid: i32) -> bool {
    // A zombie is gone for this purpose: it runs nothing.
    std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .is_ok_and(|stat| stat.rsplit_once(')').is_some_and(|(_, rest)| !rest.trim_start().starts_with('Z')))
}

/// The DevTools pages of a browser whose profile is `profile`: (url, title) each.
fn pages(profile: &Path) -> Vec<(String, String)> {
    let Ok(port) = std::fs::read_to_string(profile.join("DevToolsActivePort")) else {
        return Vec::new();
    };
    let Some(port) = port.lines().next().map(str::to_owned) else {
        return Vec::new();
    };
    let Ok(mut stream) = std::net::TcpStream::connect(format!("127.0.0.1:{port}")) else {
        return Vec::new();
    };
    use std::io::{Read as _, Write as _};
    let _ = stream.set_read_timeout(Some(Duration::from_secs(2)));
    let request = format!("GET /json/list HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nConnection: close\r\n\r\n");
    if stream.write_all(request.as_bytes()).is_err() {
        return Vec::new();
    }
    let mut answer = String::new();
    let _ = stream.read_to_string(&mut answer);
    let body = answer.split_once("\r\n\r\n").map(|(_, b)| b).unwrap_or_default();
    let list: serde_json::Value = serde_json::from_str(body).unwrap_or_default();
    list.as_array()
        .map(|targets| {
            targets
                .iter()
                .filter(|t| t["type"] == "page")
                .map(|t| {
                    (
                        t["url"].as_str().unwrap_or_default().to_owned(),
                        t["title"].as_str().unwrap_or_default().to_owned(),
                    )
                })
                .collect()
        })
        .unwrap_or_default()
}

#[test]
fn the_kiosk_opens_the_cashier_screen_in_chromium_and_again_with_a_new_link_when_it_dies() {
    let Some((chromium, _)) = browser::binaries() else { return };
    let t = TestTerminal::with_ruleset();
    let daemon = Daemon::start(&t, &[]);
    let profile = t.dir.path().join("profile");
    let (pids, args) = (t.dir.path().join("browser-pids"), t.dir.path().join("browser-args"));
    // The wrapper a terminal would not need: headless, as root, with a DevTools port; it
    // execs, so the kiosk's child is chromium itself.
    let wrapper = t.dir.path().join("chromium-for-tests");
    write_script(
        &wrapper,
        &format!(
            "#!/bin/sh\necho $$ >> '{}'\necho \"$*\" >> '{}'\nexec '{}' {} --window-size=1024,768 --remote-debugging-port=0 \"$@\"\n",
            pids.display(),
            args.display(),
            chromium.display(),
            browser::HEADLESS_FLAGS.join(" ")
        ),
    );
    let started = Instant::now();
    let mut kiosk =
        Kiosk::start(&t, &["--browser", wrapper.to_str().unwrap(), "--profile-dir", profile.to_str().unwrap()]);
    let context = || format!("kiosk: {}\ndaemon: {}", kiosk.log(), daemon.log());
    let screen = format!("{}/", daemon.base);

    // 1. The screen opens on its own: the one-time link was used, a cashier session
    // started, and the page shown is the cashier screen.
    let first = wait_for("the first cashier screen", Duration::from_secs(30), context, || {
        pages(&profile).into_iter().find(|(url, _)| *url == screen)
    });
    assert!(first.1.contains("redeemd"), "title {first:?}");
    assert!(!t.dir.path().join("data/cashier-link").exists(), "the link is used up");
    assert_eq!(cashier_sessions(&t), 1);
    let first_args = lines(&args);
    assert_eq!(first_args.len(), 1, "{first_args:?}");
    for flag in ["--kiosk", "--no-first-run", "--noerrdialogs", "--disable-session-crashed-bubble"] {
        assert!(first_args[0].split(' ').any(|a| a == flag), "{flag} in {}", first_args[0]);
    }
    assert!(first_args[0].contains(&format!("--app={}/cashier/open?token=", daemon.base)), "{}", first_args[0]);
    assert!(first_args[0].contains(&format!("--user-data-dir={}", profile.display())), "{}", first_args[0]);

    // Signed in: the page's event stream connected with the session's cookie.
    let port = std::fs::read_to_string(profile.join("DevToolsActivePort")).unwrap();
    let seen = Browser::attach(&format!("127.0.0.1:{}", port.lines().next().unwrap())).unwrap();
    seen.wait_live();
    assert_eq!(seen.js("return location.pathname"), serde_json::json!("/"));
    seen.screenshot("kiosk-cashier-screen");
    drop(seen);

    // 2. Killed, it opens again within seconds with a new link, and signs in again.
    let first_pid: i32 = lines(&pids)[0].parse().unwrap();
    kill(Pid::from_raw(first_pid), Signal::SIGKILL).unwrap();
    wait_for("a second browser", Duration::from_secs(20), context, || (lines(&pids).len() == 2).then_some(()));
    wait_for("a second cashier session", Duration::from_secs(20), context, || {
        (cashier_sessions(&t) == 2).then_some(())
    });
    wait_for("the second cashier screen", Duration::from_secs(20), context, || {
        pages(&profile).into_iter().find(|(url, _)| *url == screen)
    });
    let all_args = lines(&args);
    assert_ne!(token_in(&all_args[0]), token_in(&all_args[1]), "each start gets a new link");
    let log = kiosk.log();
    assert!(log.contains("the cashier screen is open") && log.contains("opening the cashier screen again"), "{log}");

    // 3. SIGTERM closes the browser and ends the kiosk with 0.
    let second_pid: i32 = lines(&pids)[1].parse().unwrap();
    kiosk.signal(Signal::SIGTERM);
    assert_eq!(kiosk.wait_exit(Duration::from_secs(10)), Some(0), "{}", kiosk.log());
    assert!(!alive(second_pid), "the browser outlived the kiosk");
    assert!(kiosk.log().contains("stopping: closing the browser"), "{}", kiosk.log());
    assert!(started.elapsed() < Duration::from_secs(60), "took {:?}", started.elapsed());
}

/// systemd's `Accept=yes` for the test: each connection to `path` runs
/// `redeemd kiosk --serve-link` with the connection as its standard output.
fn link_socket(t: &TestTerminal, path: &Path) -> std::thread::JoinHandle<()> {
    let listener = std::os::unix::net::UnixListener::bind(path).unwrap();
    let command = {
        let cmd = t.command(&["kiosk", "--serve-link"]);
        (cmd.get_program().to_owned(), cmd.get_args().map(|a| a.to_owned()).collect::<Vec<_>>())
    };
    std::thread::spawn(move || {
        for conn in listener.incoming() {
            let Ok(conn) = conn else { return };
            let out = std::os::fd::OwnedFd::from(conn);
            let status = std::process::Command::new(&command.0)
                .args(&command.1)
                .env_remove("REDEEMD_CONFIG")
                .stdin(Stdio::null())
                .stdout(Stdio::from(out))
                .stderr(Stdio::null())
                .status();
            if status.is_err() {
                return;
            }
        }
    })
}

/// A browser that only writes down how it was started, then exits.
fn recording_browser(dir: &Path) -> (PathBuf, PathBuf) {
    let (script, record) = (dir.join("record-browser"), dir.join("recorded"));
    write_script(&script, &format!("#!/bin/sh\necho \"$*\" >> '{}'\n", record.display()));
    (script, record)
}

#[test]
fn the_link_socket_gives_links_of_the_proven_daemon_only() {
    let t = TestTerminal::with_ruleset();
    let socket = t.dir.path().join("cashier-link.sock");
    let _server = link_socket(&t, &socket);
    let (browser, recorded) = recording_browser(t.dir.path());
    let profile = t.dir.path().join("profile");
    let once = |t: &TestTerminal| {
        t.run(&[
            "kiosk",
            "--once",
            "--link-socket",
            socket.to_str().unwrap(),
            "--browser",
            browser.to_str().unwrap(),
            "--profile-dir",
            profile.to_str().unwrap(),
        ])
    };

    // No daemon yet: --serve-link says so on its output (the connection) and exits 3,
    // and a kiosk waits, starting no browser, until it is stopped.
    let r = t.run(&["kiosk", "--serve-link"]);
    assert_eq!(r.code, 3, "{r:?}", r = (&r.stdout, &r.stderr));
    assert!(r.stdout.starts_with("redeemd: no redeemd daemon runs on this terminal yet"), "{}", r.stdout);
    let mut waiting = Kiosk::start(
        &t,
        &[
            "--link-socket",
            socket.to_str().unwrap(),
            "--browser",
            browser.to_str().unwrap(),
            "--profile-dir",
            profile.to_str().unwrap(),
        ],
    );
    wait_for(
        "the kiosk's waiting notice",
        Duration::from_secs(15),
        || waiting.log(),
        || waiting.log().contains("no cashier link yet").then_some(()),
    );
    assert!(waiting.log().contains("no redeemd daemon runs on this terminal yet"), "{}", waiting.log());
    waiting.signal(Signal::SIGTERM);
    assert_eq!(waiting.wait_exit(Duration::from_secs(10)), Some(0), "{}", waiting.log());
    assert!(!recorded.exists(), "no browser without a link");

    // With the daemon: a link through the socket, opened by the browser, good once.
    let daemon = Daemon::start(&t, &[]);
    let r = once(&t);
    assert_eq!(r.code, 0, "{}", r.stderr);
    let opened = lines(&recorded);
    assert_eq!(opened.len(), 1, "{opened:?}");
    assert!(opened[0].starts_with(&format!("--kiosk --app={}/cashier/open?token=", daemon.base)), "{}", opened[0]);
    let token = token_in(&opened[0]);
    let open = daemon.request_as_is("GET", &format!("/cashier/open?token={token}"), None, &[], false);
    assert_eq!(open.status, 303, "{}", open.text);
    assert!(open.headers.get("set-cookie").is_some());
    let again = daemon.request_as_is("GET", &format!("/cashier/open?token={token}"), None, &[], false);
    assert_eq!(again.status, 401, "one-time: {}", again.text);

    // Another process on the daemon's port gets a challenge, never a link.
    let listen = t.dir.path().join("data/listen");
    let real = std::fs::read_to_string(&listen).unwrap();
    let impostor = Impostor::relaying(real.trim().parse().unwrap());
    impostor.claim(&t.dir.path().join("data"));
    let r = t.run(&["kiosk", "--serve-link"]);
    assert_eq!(r.code, 3, "{}", r.stdout);
    assert!(r.stdout.contains("another process holds"), "{}", r.stdout);
    assert!(!t.dir.path().join("data/cashier-link").exists(), "no link made for it");
    assert!(!impostor.received().contains("/cashier/open"), "{}", impostor.received());
    std::fs::write(&listen, real).unwrap();
    drop(daemon);
}

#[test]
fn an_account_outside_the_group_is_told_so_and_not_retried() {
    use std::os::unix::fs::PermissionsExt as _;
    let t = TestTerminal::new();
    let socket = t.dir.path().join("cashier-link.sock");
    let _listener = std::os::unix::net::UnixListener::bind(&socket).unwrap();
    std::fs::set_permissions(&socket, std::fs::Permissions::from_mode(0o660)).unwrap();
    // Given to nobody:nogroup, as the package gives it to redeemd:redeemd-kiosk; needs root.
    if std::os::unix::fs::chown(&socket, Some(65534), Some(65534)).is_err() {
        eprintln!("NOTICE: not root: cannot give the socket to another account; part skipped");
        return;
    }
    let (browser, recorded) = recording_browser(t.dir.path());
    let r = t.run(&[
        "kiosk",
        "--link-socket",
        socket.to_str().unwrap(),
        "--browser",
        browser.to_str().unwrap(),
        "--profile-dir",
        t.dir.path().join("profile").to_str().unwrap(),
    ]);
    assert_eq!(r.code, 2, "{}", r.stderr);
    assert!(r.stderr.contains("only members of the group `redeemd-kiosk` may open the cashier screen"), "{}", r.stderr);
    assert!(!recorded.exists());
}

#[test]
fn a_second_kiosk_on_the_same_profile_leaves_the_first_alone() {
    let t = TestTerminal::new();
    let socket = t.dir.path().join("none.sock");
    let (browser, _) = recording_browser(t.dir.path());
    let profile = t.dir.path().join("profile");
    let args = [
        "--link-socket",
        socket.to_str().unwrap(),
        "--browser",
        browser.to_str().unwrap(),
        "--profile-dir",
        profile.to_str().unwrap(),
    ];
    let mut first = Kiosk::start(&t, &args);
    wait_for(
        "the first kiosk to wait",
        Duration::from_secs(15),
        || first.log(),
        || first.log().contains("no cashier link yet").then_some(()),
    );
    let mut cmd = t.command(&["kiosk"]);
    let second = cmd.args(args).output().unwrap();
    assert_eq!(second.status.code(), Some(0));
    assert!(String::from_utf8_lossy(&second.stderr).contains("another kiosk already shows the cashier screen"));
    assert_eq!(first.child.try_wait().unwrap(), None, "the first one still runs");
    first.signal(Signal::SIGINT);
    assert_eq!(first.wait_exit(Duration::from_secs(10)), Some(0), "{}", first.log());
}

#[test]
fn a_zh_cn_terminal_hears_the_kiosk_in_chinese() {
    let t = TestTerminal::new_in("zh-CN");
    let r = t.run(&["kiosk", "--serve-link"]);
    assert_eq!(r.code, 3, "{}", r.stderr);
    assert!(r.stdout.starts_with("redeemd: 本终端还没有运行 redeemd 守护进程"), "{}", r.stdout);
    common::words::assert_words(&r, "zh-CN");
    // Through the socket, as a desktop account hears it: waiting, then stopped.
    let socket = t.dir.path().join("cashier-link.sock");
    let _server = link_socket(&t, &socket);
    let (browser, _) = recording_browser(t.dir.path());
    let profile = t.dir.path().join("profile");
    let mut kiosk = Kiosk::start(
        &t,
        &[
            "--link-socket",
            socket.to_str().unwrap(),
            "--browser",
            browser.to_str().unwrap(),
            "--profile-dir",
            profile.to_str().unwrap(),
        ],
    );
    wait_for(
        "the kiosk's waiting notice",
        Duration::from_secs(15),
        || kiosk.log(),
        || kiosk.log().contains("还没有收银链接").then_some(()),
    );
    kiosk.signal(Signal::SIGTERM);
    assert_eq!(kiosk.wait_exit(Duration::from_secs(10)), Some(0), "{}", kiosk.log());
    let log = kiosk.log();
    assert!(log.contains("本终端还没有运行 redeemd 守护进程") && log.contains("已停止"), "{log}");
    common::words::assert_words(&common::Run { code: 0, stdout: String::new(), stderr: log }, "zh-CN");
}
