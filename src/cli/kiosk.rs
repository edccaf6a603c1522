//! `redeemd kiosk`: the cashier screen opened by itself in the terminal's browser and
//! reopened whenever it closes (`crate::kiosk` does the work), and its hidden other half,
//! `kiosk --serve-link`, which the package's link socket runs as the daemon's account to
//! hand one link to a desktop account in the group `redeemd-kiosk`. This file only
//! chooses where links come from, says the kiosk's events in the terminal's language on
//! stderr, and turns the outcome into an exit status.

use super::*;
use crate::kiosk::{self, Event, LinkSource, Outcome};
use std::ffi::OsString;

#[derive(Debug, Args)]
pub(super) struct KioskArgs {
    /// The browser to start: Chromium, or a wrapper that passes its arguments on (it gets --kiosk --app=LINK)
    #[arg(long, value_name = "PATH", default_value = "chromium")]
    browser: PathBuf,
    /// One more argument for the browser, after redeemd's own (repeat for more)
    #[arg(long = "browser-arg", value_name = "ARG", allow_hyphen_values = true)]
    browser_args: Vec<OsString>,
    /// The browser's profile (default: $XDG_STATE_HOME/redeemd-kiosk/chromium, else ~/.local/state/redeemd-kiosk/chromium)
    #[arg(long, value_name = "DIR")]
    profile_dir: Option<PathBuf>,
    /// Ask this socket for links (default: make them in the data dir when this account may write it, else ask /run/redeemd-cashier-link.sock)
    #[arg(long, value_name = "PATH")]
    link_socket: Option<PathBuf>,
    /// Exit when the browser exits instead of opening the screen again
    #[arg(long)]
    once: bool,
    /// Print one link of this data dir's running daemon and exit (what the link socket runs, as the daemon's account)
    #[arg(long, hide = true, conflicts_with_all = ["browser", "browser_args", "profile_dir", "link_socket", "once"])]
    serve_link: bool,
}

pub(super) const KIOSK_HELP: &str = "\
Examples:
  sudo adduser cashier redeemd-kiosk   # then log in as cashier: the screen opens by itself
  redeemd kiosk                        # by hand, in the desktop session
  redeemd kiosk --browser /usr/bin/chromium --browser-arg=--force-device-scale-factor=1.25
  redeemd kiosk --once                 # no reopening: exits when the browser does

Links are one-time and valid for two minutes; each start of the browser gets a new one.
Waits for the daemon. Stops on SIGTERM, SIGINT or SIGHUP, closing the browser.
Exit status: 0 stopped (or, with --once, the browser exited 0), 2 this account may not
open the cashier screen, 3 other failure.";

pub(super) fn kiosk(config_path: &Path, args: KioskArgs) -> CliResult {
    if args.serve_link {
        return serve_link(config_path);
    }
    language_from(config_path);
    let source = match args.link_socket {
        Some(path) => LinkSource::Socket(path),
        None => default_source(config_path)?,
    };
    let profile_dir = match args.profile_dir {
        Some(dir) => dir,
        None => kiosk::default_profile_dir(std::env::var_os("XDG_STATE_HOME"), std::env::var_os("HOME"))
            .ok_or_else(|| usage(anyhow!(tr("kiosk.no_home", &[]))))?,
    };
    let options = kiosk::Options {
        browser: args.browser.clone(),
        browser_args: args.browser_args,
        profile_dir,
        source,
        once: args.once,
    };
    let browser = args.browser.display().to_string();
    let rt = runtime()?;
    let outcome = rt.block_on(kiosk::supervise(&options, |event| note(&event, &browser)));
    // A link request still in flight (a few seconds at most) is not waited for.
    rt.shutdown_timeout(std::time::Duration::from_millis(200));
    match outcome.map_err(|e| anyhow!(e.text().render(lang())))? {
        Outcome::Stopped => {
            note_line(tr("kiosk.stopped", &[]));
            Ok(ExitCode::SUCCESS)
        }
        Outcome::BrowserExited(status) if status.success() => Ok(ExitCode::SUCCESS),
        Outcome::BrowserExited(status) => {
            Err(anyhow!(tr("kiosk.browser_failed", &[("browser", &browser), ("status", &status_text(&status))])))
        }
        Outcome::NotAllowed(refused) => Err(usage(anyhow!(refused.text().render(lang())))),
        Outcome::AlreadyRunning(dir) => {
            note_line(tr("kiosk.already_running", &[("path", &dir.display().to_string())]));
            Ok(ExitCode::SUCCESS)
        }
    }
}

/// Links made here when this account may write the config's data dir (the daemon's
/// account, root), else asked of the package's socket when there is one.
fn default_source(config_path: &Path) -> CliResult<LinkSource> {
    let socket = Path::new(kiosk::LINK_SOCKET);
    match Config::load(config_path) {
        Ok(config) if nix::unistd::access(&config.data_dir, nix::unistd::AccessFlags::W_OK).is_ok() => {
            Ok(LinkSource::DataDir(config.data_dir))
        }
        _ if socket.exists() => Ok(LinkSource::Socket(socket.to_owned())),
        Ok(config) => Ok(LinkSource::DataDir(config.data_dir)),
        Err(e) => Err(usage(e)),
    }
}

/// One link of the running daemon on stdout, or why there is none — on stdout too, since
/// stdout is the socket's connection (and on stderr, the journal).
fn serve_link(config_path: &Path) -> CliResult {
    let made = load_config(config_path).and_then(|config| {
        let expires = SystemClock.now() + kiosk::LINK_VALIDITY;
        kiosk::cashier_link(&config.data_dir, expires, kiosk::ASK_TIMEOUT).map_err(|e| anyhow!(e.text().render(lang())))
    });
    match made {
        Ok(url) => {
            say!("{url}");
            Ok(ExitCode::SUCCESS)
        }
        Err(error) => {
            let (code, text) = explain(error);
            say!("redeemd: {text}");
            note_line(text);
            Ok(code.into())
        }
    }
}

fn note(event: &Event<'_>, browser: &str) {
    let secs = |d: std::time::Duration| format!("{:.1}", d.as_secs_f64());
    let line = match event {
        Event::Waiting(why) => tr("kiosk.waiting", &[("reason", &why.text().render(lang()))]),
        Event::Started { pid } => tr("kiosk.started", &[("browser", browser), ("pid", &pid.to_string())]),
        Event::Exited { status, ran } => {
            tr("kiosk.exited", &[("status", &status_text(status)), ("seconds", &secs(*ran))])
        }
        Event::Relaunch { after } => tr("kiosk.relaunch", &[("seconds", &secs(*after))]),
        Event::Stopping => tr("kiosk.stopping", &[]),
    };
    note_line(line);
}

/// How the browser ended, in the reader's language.
fn status_text(status: &std::process::ExitStatus) -> String {
    use std::os::unix::process::ExitStatusExt as _;
    match (status.code(), status.signal()) {
        (Some(code), _) => tr("kiosk.status_code", &[("code", &code.to_string())]),
        (None, Some(signal)) => tr("kiosk.status_signal", &[("signal", &signal.to_string())]),
        (None, None) => status.to_string(),
    }
}

/// A line of the kiosk's log (stderr: the journal under systemd).
fn note_line(line: String) {
    // Not `eprintln!`: a closed stderr must not end the kiosk with a panic.
    let _ = writeln!(std::io::stderr(), "redeemd: {line}");
}
