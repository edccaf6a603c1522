//! `redeemd sandbox`: the command line of a real upstream for installers, integrators
//! and tests (`crate::sandbox`). `serve` runs it over HTTPS; `codes`, `coupons`,
//! `present`, `revoke`, `pause`, `resume`, `terminals` and `retire` work on the same
//! `--dir` beside a running server. It only parses, calls the sandbox and prints: texts
//! from the `[sandbox]` tables in the sandbox's language (`--language`, else `LANG`: zh*
//! or en*, else zh-CN, like the terminal's default); `--json` and the first line of
//! `serve` (`redeemd: listening on URL`, as `run` prints it) stay English.
//!
//! A hidden switch for tests: `REDEEMD_SANDBOX_DROP_ENROLL_ANSWERS=N` makes `serve`
//! commit the next N enrollments and close the connection without answering them.

use super::*;
use crate::sandbox::server::{ServeOptions, ServerEvent, Transport};
use crate::sandbox::{pki, Sandbox, SandboxError, Setup};
use std::sync::Arc;

pub(super) const SANDBOX_HELP: &str = "\
Examples:
  redeemd sandbox serve --dir ./sb                      # https://127.0.0.1:8443/, the CA in ./sb/ca.pem
  redeemd sandbox codes --dir ./sb --count 2            # one-time enrollment codes, one a line
  redeemd --config ./t/redeemd.toml provision --upstream https://127.0.0.1:8443/ \\
      --enrollment-code CODE --ca ./sb/ca.pem --data-dir ./t/data
  redeemd sandbox coupons --dir ./sb --campaign DEMO-DINING --count 5 --out ./coupons
  redeemd sandbox terminals --dir ./sb
  redeemd sandbox retire --dir ./sb T-0001              # after a terminal swap

Every verb works beside a running `serve` (same directory). The sandbox speaks --language,
else the language of LANG (zh* or en*), else zh-CN.";

const SERVE_HELP: &str = "\
Examples:
  redeemd sandbox serve --dir ./sb
  redeemd sandbox serve --dir ./sb --listen 0.0.0.0:8443 --name 192.168.1.10 --name shop-pc.lan
  redeemd sandbox serve --dir ./sb --campaigns my-campaigns.toml

The first start makes DIR (0700): a CA (DIR/ca.pem, the file `redeemd provision --ca`
takes), a server certificate for 127.0.0.1, ::1, localhost, the listen address and each
--name, the issuer's keys and the state, and publishes the campaigns as rule-set version 1.
The first line printed is `redeemd: listening on URL`. Stops on Ctrl-C or SIGTERM.
The campaigns file format is documented in packaging/sandbox-campaigns.toml.";

#[derive(Debug, Args)]
pub(super) struct SandboxArgs {
    /// The sandbox's directory (made, 0700, by the first `serve`)
    #[arg(long, global = true, value_name = "DIR", env = "REDEEMD_SANDBOX_DIR", default_value = "redeemd-sandbox")]
    dir: PathBuf,
    /// Language of what the sandbox says (default: LANG's, zh* or en*; else zh-CN)
    #[arg(long, global = true, value_enum)]
    language: Option<LanguageArg>,
    #[command(subcommand)]
    command: SandboxCommand,
}

#[derive(Debug, Subcommand)]
enum SandboxCommand {
    /// Serve the upstream API over HTTPS until stopped (the first start makes the sandbox)
    #[command(after_help = SERVE_HELP)]
    Serve(ServeArgs),
    /// Make one-time enrollment codes (printed one a line), or list them with their use
    #[command(
        after_help = "Examples:\n  redeemd sandbox codes --dir ./sb                 # one code, valid 24 hours\n  redeemd sandbox codes --dir ./sb --count 10 --expires 7d\n  CODE=$(redeemd sandbox codes --dir ./sb)\n  redeemd sandbox codes --dir ./sb --list\n\nA code enrolls one terminal (`redeemd provision --enrollment-code CODE`); the same\nterminal asking again with the same request id gets the same answer."
    )]
    Codes {
        /// How many codes
        #[arg(long, value_name = "N", default_value_t = 1, value_parser = clap::value_parser!(u32).range(1..=1000))]
        count: u32,
        /// How long they stay valid: a number and s, m, h or d
        #[arg(long, value_name = "DURATION", default_value = "24h")]
        expires: String,
        /// List the codes made so far and what became of them instead
        #[arg(long, conflicts_with_all = ["count", "expires"])]
        list: bool,
        /// JSON instead of text (English keys)
        #[arg(long)]
        json: bool,
    },
    /// Write sample coupons to scan: a QR PNG and its text each (or holder files for live codes)
    #[command(
        after_help = "Examples:\n  redeemd sandbox coupons --dir ./sb --campaign DEMO-DINING --count 5 --out ./coupons\n  redeemd sandbox coupons --dir ./sb --campaign DEMO-DINING --holder-bound --out ./coupons\n\nOpen ID.png on a phone or print it and scan it at the terminal. A holder-bound coupon\n(--holder-bound, or a campaign with presentation = \"dynamic\") is written as\nID.holder.json: show its live code with `redeemd sandbox present ./coupons/ID.holder.json`."
    )]
    Coupons {
        /// The campaign (an id of the campaigns file)
        #[arg(long, value_name = "ID")]
        campaign: String,
        /// How many coupons
        #[arg(long, value_name = "N", default_value_t = 1, value_parser = clap::value_parser!(u32).range(1..=10000))]
        count: u32,
        /// The directory to write them into (made if missing)
        #[arg(long, value_name = "DIR")]
        out: PathBuf,
        /// Bind each coupon to a holder key: redeemable only as a live code (CP2)
        #[arg(long)]
        holder_bound: bool,
    },
    /// Print a fresh live code (CP2) of a holder-bound coupon, as the holder's app shows it
    #[command(
        after_help = "Examples:\n  redeemd sandbox present ./coupons/DEMO-DINING-000003.holder.json\n  redeemd sandbox present ./coupons/DEMO-DINING-000003.holder.json --png live.png\n  watch -n 15 redeemd sandbox present ./coupons/DEMO-DINING-000003.holder.json   # refreshes like the app\n\nThe first line is the code's text (paste it into `redeemd redeem`); on a terminal the QR\ncode follows, to scan from the screen. A live code is valid for about a minute\n(presentation_max_age_seconds): make it right before scanning. Needs no --dir."
    )]
    Present {
        /// A holder file written by `sandbox coupons` (ID.holder.json)
        #[arg(value_name = "FILE")]
        file: PathBuf,
        /// Also write the QR code as a PNG here
        #[arg(long, value_name = "FILE.png")]
        png: Option<PathBuf>,
    },
    /// Revoke coupons: publishes a new rule-set version that refuses them
    #[command(
        after_help = "Example:\n  redeemd sandbox revoke --dir ./sb DEMO-DINING-000002 DEMO-DINING-000003\n\nTerminals refuse them from their next rule-set refresh (every 5 minutes, or\n`redeemd sync --once`); a redemption forwarded later is answered `rejected`."
    )]
    Revoke {
        /// Coupon ids (as `sandbox coupons` named them)
        #[arg(value_name = "COUPON_ID", required = true)]
        coupon_ids: Vec<String>,
    },
    /// Pause a campaign: publishes a new rule-set version in which it is paused
    #[command(
        after_help = "Example:\n  redeemd sandbox pause --dir ./sb DEMO-BIG\n  redeemd sandbox resume --dir ./sb DEMO-BIG"
    )]
    Pause {
        /// The campaign id
        #[arg(value_name = "CAMPAIGN")]
        campaign: String,
    },
    /// Resume a paused campaign: publishes a new rule-set version
    #[command(after_help = "Example:\n  redeemd sandbox resume --dir ./sb DEMO-BIG")]
    Resume {
        /// The campaign id
        #[arg(value_name = "CAMPAIGN")]
        campaign: String,
    },
    /// Terminals: id, label, last heartbeat, agent and rule-set version, unsynced, clock offset
    #[command(
        after_help = "Examples:\n  redeemd sandbox terminals --dir ./sb\n  redeemd sandbox terminals --dir ./sb --json | jq '.[] | select(.retired_at == null)'"
    )]
    Terminals {
        /// One JSON array (English keys)
        #[arg(long)]
        json: bool,
    },
    /// Retire a terminal: its token stops working (what an installer does after a swap)
    #[command(
        after_help = "Example, a terminal swap:\n  redeemd sandbox retire --dir ./sb T-0001\n  redeemd sandbox codes --dir ./sb        # for the replacement's `redeemd provision`"
    )]
    Retire {
        /// The terminal id (see `sandbox terminals`)
        #[arg(value_name = "TERMINAL_ID")]
        terminal_id: String,
    },
}

#[derive(Debug, Args)]
struct ServeArgs {
    /// ADDR:PORT to serve on (port 0 picks a free one; the first line printed says which)
    #[arg(long, value_name = "ADDR:PORT", default_value = "127.0.0.1:8443")]
    listen: String,
    /// Campaigns file (TOML; see packaging/sandbox-campaigns.toml). Default: the demo's,
    /// at the first start; later, what the sandbox has. A changed file is published anew
    #[arg(long, value_name = "FILE")]
    campaigns: Option<PathBuf>,
    /// Another host name or IP address terminals use to reach this machine (repeatable)
    #[arg(long = "name", value_name = "HOST")]
    names: Vec<String>,
}

impl SandboxArgs {
    /// `serve` runs until stopped (it logs warnings, as `run` does).
    pub(super) fn serves(&self) -> bool {
        matches!(self.command, SandboxCommand::Serve(_))
    }
}

/// `LANG`'s language when it names one the tables have, else zh-CN.
fn language_of_environment() -> Language {
    let lang = ["LC_ALL", "LC_MESSAGES", "LANG"]
        .iter()
        .find_map(|v| std::env::var(v).ok().filter(|v| !v.is_empty()))
        .unwrap_or_default()
        .to_lowercase();
    if lang.starts_with("en") {
        Language::En
    } else {
        Language::ZhCn
    }
}

/// A sandbox error said in the reader's language; a mistake in what they gave is exit 2.
fn failed(e: SandboxError) -> anyhow::Error {
    let text = anyhow!(e.text().render(lang()));
    if e.is_usage() {
        usage(text)
    } else {
        text
    }
}

pub(super) fn sandbox(args: SandboxArgs) -> CliResult {
    let _ = LANG.set(args.language.map_or_else(language_of_environment, LanguageArg::language));
    let clock: Arc<dyn crate::clock::Clock> = Arc::new(SystemClock);
    let dir = absolute(&args.dir);
    let open = || Sandbox::open(&dir, clock.clone()).map_err(failed);
    match args.command {
        SandboxCommand::Serve(serve_args) => serve(&dir, serve_args, clock.clone()),
        SandboxCommand::Codes { list: true, json, .. } => codes_list(&open()?, json),
        SandboxCommand::Codes { count, expires, json, .. } => codes_make(&open()?, count, &expires, json),
        SandboxCommand::Coupons { campaign, count, out, holder_bound } => {
            coupons(&open()?, &campaign, count, &out, holder_bound)
        }
        SandboxCommand::Present { file, png } => present(&file, png.as_deref(), clock.now()),
        SandboxCommand::Revoke { coupon_ids } => revoke(&open()?, &coupon_ids),
        SandboxCommand::Pause { campaign } => set_status(&open()?, &campaign, crate::ruleset::CampaignStatus::Paused),
        SandboxCommand::Resume { campaign } => set_status(&open()?, &campaign, crate::ruleset::CampaignStatus::Active),
        SandboxCommand::Terminals { json } => terminals(&open()?, json),
        SandboxCommand::Retire { terminal_id } => retire(&open()?, &terminal_id),
    }
}

/// Says to stderr (explanations around what stdout carries for scripts).
fn note(text: &str) {
    // Not `eprintln!`: a closed stderr must not become a panic.
    let _ = writeln!(std::io::stderr(), "{text}");
}

fn local_time(at: Timestamp, tz: &jiff::tz::TimeZone) -> String {
    at.to_zoned_datetime(tz.clone()).strftime("%Y-%m-%d %H:%M").to_string()
}

fn status_word(status: crate::ruleset::CampaignStatus) -> String {
    use crate::ruleset::CampaignStatus;
    tr(
        match status {
            CampaignStatus::Active => "sandbox.status_active",
            CampaignStatus::Paused => "sandbox.status_paused",
            CampaignStatus::Ended => "sandbox.status_ended",
        },
        &[],
    )
}

fn serve(dir: &Path, args: ServeArgs, clock: Arc<dyn crate::clock::Clock>) -> CliResult {
    let listen: std::net::SocketAddr = args
        .listen
        .parse()
        .map_err(|_| usage(anyhow!(tr("error.listen", &[("value", &format!("{:?}", args.listen))]))))?;
    // Bound before anything is made or said: a taken port changes nothing.
    let listener = std::net::TcpListener::bind(listen).map_err(|e| crate::daemon::listen_failed(listen, e))?;
    let bound = listener.local_addr().map_err(|e| crate::daemon::listen_failed(listen, e))?;
    let setup = Setup { campaigns: args.campaigns.clone(), keys: None };
    let opened = Sandbox::create_or_open(dir, setup, clock.clone()).map_err(failed)?;
    let names = pki::wanted_names(bound.ip(), &args.names);
    let pki = pki::ensure(dir, &names, clock.now()).map_err(failed)?;
    let sandbox = Arc::new(opened.sandbox);
    let host = if bound.ip().is_unspecified() {
        args.names.first().cloned().unwrap_or_else(|| "127.0.0.1".into())
    } else {
        bound.ip().to_string()
    };
    let host = if host.contains(':') { format!("[{host}]") } else { host };
    let url = format!("https://{host}:{}/", bound.port());
    // The first line, English like `run`'s: tests and scripts read the address from it.
    say!("redeemd: listening on {url}");
    let dir_text = dir.display().to_string();
    let ca = pki.ca_path.display().to_string();
    say!("{}", tr(if opened.created { "sandbox.created" } else { "sandbox.opened" }, &[("dir", &dir_text)]));
    if pki.made_ca {
        say!("  {}", tr("sandbox.ca_made", &[("path", &ca)]));
        say_raw!("{}", pki.ca_pem);
    } else {
        say!("  {}", tr("sandbox.ca", &[("path", &ca)]));
    }
    say!("  {}", tr("sandbox.ca_fingerprint", &[("fingerprint", &pki.ca_fingerprint)]));
    let key = if pki.issued_server { "sandbox.cert_issued" } else { "sandbox.cert_names" };
    say!("  {}", tr(key, &[("names", &pki.names.join(", "))]));
    if bound.ip().is_unspecified() && args.names.is_empty() {
        say!("  {}", tr("sandbox.remote_hint", &[("names", &pki.names.join(", "))]));
    }
    let tz = sandbox.timezone();
    let ruleset = sandbox.ruleset().map_err(failed)?;
    let catalog = sandbox.catalog().map_err(failed)?;
    let revoked = sandbox.revoked().map_err(failed)?.len();
    let key = if opened.published.is_some() { "sandbox.ruleset_published" } else { "sandbox.ruleset" };
    say!(
        "  {}",
        tr(
            key,
            &[
                ("version", &ruleset.version.to_string()),
                ("campaigns", &catalog.campaigns.len().to_string()),
                ("revoked", &revoked.to_string()),
                ("until", &local_time(ruleset.expires_at, &tz)),
            ]
        )
    );
    for (id, status) in sandbox.statuses().map_err(failed)? {
        let name = catalog
            .campaign(&id)
            .and_then(|c| c.name.as_ref())
            .and_then(|n| n.get(lang().tag()).or_else(|| n.values().next()))
            .cloned()
            .unwrap_or_default();
        say!(
            "    {}  {}  {}",
            crate::report::pad(&id, 14, false),
            crate::report::pad(&name, 24, false),
            status_word(status)
        );
    }
    // `codes` run beside the server says this URL in its next step.
    let _ = sandbox_meta_url(&sandbox, &url);
    let redeemd = "redeemd";
    let d = shell_word(&dir_text);
    say!("\n{}", tr("sandbox.next_steps", &[]));
    let step = |command: String, key: &str| {
        say!("  {}\n      # {}", command, tr(key, &[]));
    };
    step(format!("{redeemd} sandbox codes --dir {d} --count 1"), "sandbox.step_codes");
    step(
        format!("{redeemd} provision --upstream {url} --enrollment-code CODE --ca {}", shell_word(&ca)),
        "sandbox.step_provision",
    );
    step(format!("{redeemd} sandbox coupons --dir {d} --campaign ID --count 5 --out coupons"), "sandbox.step_coupons");
    step(format!("{redeemd} sandbox terminals --dir {d}"), "sandbox.step_terminals");
    say!("\n{}", tr("sandbox.stop", &[("dir", &dir_text)]));
    let drops = std::env::var("REDEEMD_SANDBOX_DROP_ENROLL_ANSWERS").ok().and_then(|v| v.trim().parse::<u32>().ok());
    if let Some(n) = drops.filter(|n| *n > 0) {
        note(&tr("sandbox.drop_switch", &[("count", &n.to_string())]));
    }
    let sink_tz = tz.clone();
    let sink_clock = clock.clone();
    let options = ServeOptions {
        drop_enroll_answers: drops.unwrap_or(0),
        online: None,
        on_event: Some(Arc::new(move |event: &ServerEvent| {
            if let Some(line) = event_line(event) {
                let time = sink_clock.now().to_zoned_datetime(sink_tz.clone()).strftime("%H:%M:%S").to_string();
                say!("{time}  {line}");
            }
        })),
    };
    let router = crate::sandbox::server::router(sandbox, options);
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .map_err(|e| anyhow!(tr("sandbox.runtime", &[("error", &e.to_string())])))?;
    let handle = axum_server::Handle::new();
    let stopper = handle.clone();
    let served = rt.block_on(async move {
        tokio::spawn(async move {
            use tokio::signal::unix::{signal, SignalKind};
            let mut term = signal(SignalKind::terminate()).ok();
            let mut int = signal(SignalKind::interrupt()).ok();
            tokio::select! {
                _ = async { if let Some(s) = term.as_mut() { s.recv().await; } else { std::future::pending::<()>().await } } => {}
                _ = async { if let Some(s) = int.as_mut() { s.recv().await; } else { std::future::pending::<()>().await } } => {}
            }
            stopper.graceful_shutdown(Some(std::time::Duration::from_secs(2)));
        });
        let transport = Transport::Tls { cert_pem: pki.cert_pem, key_pem: pki.key_pem };
        crate::sandbox::server::serve(listener, transport, router, handle).await
    });
    served.map_err(|e| anyhow!(tr("sandbox.server_failed", &[("error", &e.to_string())])))?;
    Ok(ExitCode::SUCCESS)
}

/// Keeps the URL `serve` listens on, for the other verbs' next steps.
fn sandbox_meta_url(sandbox: &Sandbox, url: &str) -> Result<(), SandboxError> {
    let path = sandbox.dir().join("url");
    crate::secret::write_atomic(&path, format!("{url}\n").as_bytes(), 0o644)
        .map_err(|source| SandboxError::Write { path, source })
}

/// The URL the sandbox last served on, if known.
fn served_url(sandbox: &Sandbox) -> Option<String> {
    std::fs::read_to_string(sandbox.dir().join("url")).ok().map(|u| u.trim().to_owned()).filter(|u| !u.is_empty())
}

/// `text` quoted for a POSIX shell when it needs it.
/// What a person watching `serve` is told of an event (heartbeats and unchanged rule
/// sets only when something is off).
fn event_line(event: &ServerEvent) -> Option<String> {
    Some(match event {
        ServerEvent::Enrolled { terminal_id, label, replay, dropped } => {
            let key = match (replay, dropped) {
                (_, true) => "sandbox.ev_dropped",
                (true, false) => "sandbox.ev_replayed",
                (false, false) => "sandbox.ev_enrolled",
            };
            tr(key, &[("terminal", terminal_id), ("label", label)])
        }
        ServerEvent::EnrollRefused { status, code } => {
            tr("sandbox.ev_refused", &[("status", &status.to_string()), ("code", *code)])
        }
        ServerEvent::Ruleset { terminal_id, version, sent: true, .. } => {
            tr("sandbox.ev_ruleset", &[("terminal", terminal_id), ("version", &version.to_string())])
        }
        ServerEvent::Ruleset { sent: false, .. } => return None,
        ServerEvent::Heartbeat { terminal_id, clock_offset_ms: Some(offset) } if offset.abs() > 300_000 => {
            tr("sandbox.ev_clock", &[("terminal", terminal_id), ("seconds", &(offset / 1000).to_string())])
        }
        ServerEvent::Heartbeat { .. } => return None,
        ServerEvent::Redemptions { terminal_id, accepted, duplicate, conflict, rejected } => tr(
            "sandbox.ev_redemptions",
            &[
                ("terminal", terminal_id),
                ("accepted", &accepted.to_string()),
                ("duplicate", &duplicate.to_string()),
                ("conflict", &conflict.to_string()),
                ("rejected", &rejected.to_string()),
            ],
        ),
        ServerEvent::Unauthorized { retired: Some(id) } => tr("sandbox.ev_retired", &[("terminal", id)]),
        ServerEvent::Unauthorized { retired: None } => tr("sandbox.ev_unknown_token", &[]),
        ServerEvent::BadRequest { path, message } => {
            tr("sandbox.ev_bad_request", &[("path", *path), ("message", message)])
        }
        ServerEvent::Failed { message } => tr("sandbox.ev_failed", &[("message", message)]),
    })
}

/// `30m`, `24h`, `7d`, `90s`.
fn parse_duration(text: &str) -> Option<jiff::SignedDuration> {
    let text = text.trim();
    let (number, unit) = text.split_at(text.find(|c: char| !c.is_ascii_digit())?);
    let n: i64 = number.parse().ok().filter(|n| *n > 0)?;
    let seconds = match unit.trim() {
        "s" => 1,
        "m" | "min" => 60,
        "h" => 3600,
        "d" => 86_400,
        _ => return None,
    };
    n.checked_mul(seconds).filter(|s| *s <= 366 * 86_400).map(jiff::SignedDuration::from_secs)
}

fn codes_make(sandbox: &Sandbox, count: u32, expires: &str, json: bool) -> CliResult {
    let ttl = parse_duration(expires)
        .ok_or_else(|| usage(anyhow!(tr("sandbox.bad_duration", &[("value", &format!("{expires:?}"))]))))?;
    let codes = sandbox.make_codes(count, ttl).map_err(failed)?;
    let tz = sandbox.timezone();
    if json {
        let list: Vec<serde_json::Value> = codes
            .iter()
            .map(|c| serde_json::json!({"code": c.code, "expires_at": crate::clock::rfc3339(c.expires_at, &tz)}))
            .collect();
        say!("{}", serde_json::Value::Array(list));
        return Ok(ExitCode::SUCCESS);
    }
    for c in &codes {
        say!("{}", c.code);
    }
    let until = codes.first().map(|c| local_time(c.expires_at, &tz)).unwrap_or_default();
    note(&tr("sandbox.codes_made", &[("count", &codes.len().to_string()), ("until", &until)]));
    let url = served_url(sandbox).unwrap_or_else(|| "https://HOST:8443/".into());
    let ca = sandbox.dir().join(pki::CA_FILE).display().to_string();
    note(&tr("sandbox.codes_next", &[]));
    note(&format!("  redeemd provision --upstream {url} --enrollment-code CODE --ca {}", shell_word(&ca)));
    Ok(ExitCode::SUCCESS)
}

fn codes_list(sandbox: &Sandbox, json: bool) -> CliResult {
    let codes = sandbox.codes().map_err(failed)?;
    let tz = sandbox.timezone();
    let now = sandbox.now();
    if json {
        let list: Vec<serde_json::Value> = codes
            .iter()
            .map(|c| {
                serde_json::json!({
                    "code": c.code,
                    "made_at": crate::clock::rfc3339(c.made_at, &tz),
                    "expires_at": crate::clock::rfc3339(c.expires_at, &tz),
                    "used_at": c.used_at.map(|t| crate::clock::rfc3339(t, &tz)),
                    "terminal_id": c.terminal_id,
                })
            })
            .collect();
        say!("{}", serde_json::Value::Array(list));
        return Ok(ExitCode::SUCCESS);
    }
    if codes.is_empty() {
        say!("{}", tr("sandbox.codes_none", &[]));
        return Ok(ExitCode::SUCCESS);
    }
    for c in &codes {
        let state = match (&c.terminal_id, c.used_at) {
            (Some(terminal), Some(at)) => {
                tr("sandbox.code_used", &[("terminal", terminal), ("at", &local_time(at, &tz))])
            }
            _ if c.expires_at <= now => tr("sandbox.code_expired", &[("at", &local_time(c.expires_at, &tz))]),
            _ => tr("sandbox.code_unused", &[("until", &local_time(c.expires_at, &tz))]),
        };
        say!("{}  {state}", c.code);
    }
    Ok(ExitCode::SUCCESS)
}

fn coupons(sandbox: &Sandbox, campaign: &str, count: u32, out: &Path, holder_bound: bool) -> CliResult {
    use std::io::IsTerminal as _;
    let bar = if std::io::stderr().is_terminal() && count > 1 {
        let bar = ProgressBar::new(u64::from(count)).with_finish(indicatif::ProgressFinish::AndClear);
        let style = ProgressStyle::with_template("{msg} [{bar:30}] {pos}/{len} {eta}")
            .map(|s| s.progress_chars("=> "))
            .unwrap_or_else(|_| ProgressStyle::default_bar());
        bar.set_style(style);
        bar.set_message(tr("sandbox.progress_coupons", &[]));
        bar
    } else {
        ProgressBar::hidden()
    };
    let made = crate::sandbox::coupons::make(sandbox, campaign, count, holder_bound, out, &mut |n| {
        bar.set_position(u64::from(n))
    })
    .map_err(failed)?;
    bar.finish_and_clear();
    say!(
        "{}",
        tr(
            "sandbox.coupons_made",
            &[("count", &made.len().to_string()), ("campaign", campaign), ("dir", &out.display().to_string())]
        )
    );
    for m in &made {
        let files: Vec<String> = m.files.iter().map(|f| f.display().to_string()).collect();
        if m.holder_bound {
            let file = files.first().cloned().unwrap_or_default();
            say!("  {}", tr("sandbox.coupon_bound", &[("id", &m.coupon_id), ("file", &shell_word(&file))]));
        } else {
            say!("  {}", tr("sandbox.coupon_static", &[("id", &m.coupon_id), ("files", &files.join(", "))]));
        }
    }
    let key = if made.iter().any(|m| m.holder_bound) { "sandbox.coupons_bound_hint" } else { "sandbox.coupons_hint" };
    say!("{}", tr(key, &[]));
    Ok(ExitCode::SUCCESS)
}

fn present(file: &Path, png: Option<&Path>, now: Timestamp) -> CliResult {
    use std::io::IsTerminal as _;
    let p = crate::sandbox::coupons::present(file, now).map_err(failed)?;
    say!("{}", p.text);
    if let Some(path) = png {
        let bytes = crate::sandbox::coupons::qr_png(&p.text).map_err(failed)?;
        write_file(path, &bytes, 0o644)?;
        note(&tr("sandbox.present_png", &[("path", &path.display().to_string())]));
    }
    if std::io::stdout().is_terminal() {
        say!("{}", crate::sandbox::coupons::qr_text(&p.text).map_err(failed)?);
    }
    let tz = jiff::tz::TimeZone::get(config::DEFAULT_TIMEZONE).unwrap_or(jiff::tz::TimeZone::UTC);
    let at = p.presented_at.to_zoned_datetime(tz).strftime("%H:%M:%S").to_string();
    note(&tr("sandbox.present_note", &[("coupon", &p.coupon_id), ("campaign", &p.campaign_id), ("at", &at)]));
    Ok(ExitCode::SUCCESS)
}

/// Says what a publication did and when terminals see it.
fn say_published(published: &crate::sandbox::Published) {
    say!("{}", tr("sandbox.published", &[("version", &published.version.to_string())]));
}

fn revoke(sandbox: &Sandbox, ids: &[String]) -> CliResult {
    let (added, published) = sandbox.revoke(ids).map_err(failed)?;
    match published {
        Some(published) => {
            say!("{}", tr("sandbox.revoked", &[("count", &added.to_string()), ("ids", &ids.join(", "))]));
            say_published(&published);
        }
        None => say!("{}", tr("sandbox.already_revoked", &[])),
    }
    Ok(ExitCode::SUCCESS)
}

fn set_status(sandbox: &Sandbox, campaign: &str, status: crate::ruleset::CampaignStatus) -> CliResult {
    match sandbox.set_campaign_status(campaign, status).map_err(failed)? {
        Some(published) => {
            say!("{}", tr("sandbox.status_set", &[("id", campaign), ("status", &status_word(status))]));
            say_published(&published);
        }
        None => say!("{}", tr("sandbox.status_unchanged", &[("id", campaign), ("status", &status_word(status))])),
    }
    Ok(ExitCode::SUCCESS)
}

/// `12 s`, `5 min`, `3 h`, `2 d`.
fn age(seconds: i64) -> String {
    let s = seconds.max(0);
    let (key, n) = match s {
        0..60 => ("sandbox.age_s", s),
        60..3600 => ("sandbox.age_min", s / 60),
        3600..86_400 => ("sandbox.age_h", s / 3600),
        _ => ("sandbox.age_d", s / 86_400),
    };
    tr(key, &[("n", &n.to_string())])
}

fn terminals(sandbox: &Sandbox, json: bool) -> CliResult {
    let rows = sandbox.terminals().map_err(failed)?;
    let tz = sandbox.timezone();
    let now = sandbox.now();
    let current = sandbox.newest_version().map_err(failed)?;
    if json {
        let list: Vec<serde_json::Value> = rows
            .iter()
            .map(|t| {
                serde_json::json!({
                    "terminal_id": t.terminal_id,
                    "label": t.label,
                    "merchant_id": t.merchant_id,
                    "enrolled_at": crate::clock::rfc3339(t.enrolled_at, &tz),
                    "retired_at": t.retired_at.map(|at| crate::clock::rfc3339(at, &tz)),
                    "last_heartbeat": t.heartbeat_at.map(|at| crate::clock::rfc3339(at, &tz)),
                    "agent_version": t.agent_version,
                    "ruleset_version": t.ruleset_version,
                    "current_ruleset_version": current,
                    "unsynced": t.unsynced,
                    "scanner": t.scanner,
                    "clock_offset_seconds": t.clock_offset_ms.map(|ms| ms as f64 / 1000.0),
                    "events": t.events,
                })
            })
            .collect();
        say!("{}", serde_json::Value::Array(list));
        return Ok(ExitCode::SUCCESS);
    }
    if rows.is_empty() {
        say!("{}", tr("sandbox.terminals_none", &[]));
        return Ok(ExitCode::SUCCESS);
    }
    let header = [
        "sandbox.col_terminal",
        "sandbox.col_label",
        "sandbox.col_heartbeat",
        "sandbox.col_agent",
        "sandbox.col_ruleset",
        "sandbox.col_unsynced",
        "sandbox.col_clock",
        "sandbox.col_state",
    ]
    .map(|k| tr(k, &[]));
    let mut table: Vec<Vec<String>> = vec![header.to_vec()];
    for t in &rows {
        let heartbeat = t
            .heartbeat_at
            .map_or_else(|| tr("sandbox.never", &[]), |at| tr("sandbox.ago", &[("age", &age((now - at).as_secs()))]));
        let ruleset = t.ruleset_version.map_or_else(|| "-".to_owned(), |v| v.to_string());
        let ruleset = match (t.ruleset_version, current) {
            (Some(have), Some(newest)) if have < newest => {
                tr("sandbox.behind", &[("have", &ruleset), ("newest", &newest.to_string())])
            }
            _ => ruleset,
        };
        let clock = t.clock_offset_ms.map_or_else(|| "-".to_owned(), |ms| format!("{:+.1} s", ms as f64 / 1000.0));
        let state = match t.retired_at {
            Some(at) => tr("sandbox.state_retired", &[("at", &local_time(at, &tz))]),
            None => tr("sandbox.state_active", &[]),
        };
        table.push(vec![
            t.terminal_id.clone(),
            crate::report::shorten(&t.label, 20),
            heartbeat,
            t.agent_version.clone().unwrap_or_else(|| "-".into()),
            ruleset,
            t.unsynced.map_or_else(|| "-".to_owned(), |n| n.to_string()),
            clock,
            state,
        ]);
    }
    let widths: Vec<usize> =
        (0..header.len()).map(|i| table.iter().map(|row| crate::report::width(&row[i])).max().unwrap_or(0)).collect();
    for row in &table {
        let cells: Vec<String> = row.iter().zip(&widths).map(|(cell, w)| crate::report::pad(cell, *w, false)).collect();
        say!("{}", cells.join("  ").trim_end());
    }
    Ok(ExitCode::SUCCESS)
}

fn retire(sandbox: &Sandbox, terminal_id: &str) -> CliResult {
    if sandbox.retire(terminal_id).map_err(failed)? {
        say!("{}", tr("sandbox.retired", &[("id", terminal_id.trim())]));
    } else {
        say!("{}", tr("sandbox.already_retired", &[("id", terminal_id.trim())]));
    }
    Ok(ExitCode::SUCCESS)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_are_a_number_and_a_unit() {
        assert_eq!(parse_duration("24h"), Some(jiff::SignedDuration::from_hours(24)));
        assert_eq!(parse_duration("30m"), Some(jiff::SignedDuration::from_mins(30)));
        assert_eq!(parse_duration("7d"), Some(jiff::SignedDuration::from_hours(168)));
        assert_eq!(parse_duration("90s"), Some(jiff::SignedDuration::from_secs(90)));
        for bad in ["", "h", "0h", "24", "24x", "-1h", "1000d"] {
            assert_eq!(parse_duration(bad), None, "{bad}");
        }
    }

    #[test]
    fn shell_words_are_quoted_when_needed() {
        assert_eq!(shell_word("/tmp/sb/ca.pem"), "/tmp/sb/ca.pem");
        assert_eq!(shell_word("/tmp/my sb/ca.pem"), "'/tmp/my sb/ca.pem'");
        assert_eq!(shell_word("it's"), "'it'\\''s'");
    }
}
