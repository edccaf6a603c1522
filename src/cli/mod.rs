//! The `redeemd` command line (`spec/terminal-interfaces.md`). This file owns the clap
//! types (with `--help`'s examples), the dispatch to one function per command, and what
//! the commands share (loading the config, opening the agent, writing files). Exit
//! statuses — 0 accepted, 1 rejected, 2 usage or configuration error, 3 any other
//! failure — are decided in `exit` only; texts for people come through `output`.
//!
//! One module per command group: `ruleset`, `decide` (check, redeem, void), `report`,
//! `sync` (provision, sync, outbox), `install` (init, doctor, backup, restore,
//! scanner), `daemon` (run, demo, pos-token, manager-pin, cashier-url). They share this
//! file's imports and each other's functions through globs (`use super::*`), so moving
//! a command between groups changes no call site.
//!
//! Commands are thin: they parse values, call the [`Agent`] and print. No SQL, no
//! decision logic and no clock reads live here or below.

use crate::agent::{Agent, Campaigns, ImportError};
use crate::clock::{rfc3339, Clock as _, SystemClock};
use crate::config::{self, Config};
use crate::decision::Terminal;
use crate::issuer::{CodeSpec, Issuer};
use crate::messages::Language;
use crate::money::{parse_amount, Money};
use crate::record::DecisionRecord;
use crate::ruleset::parse_anchors;
use crate::scanner::transport::{self, PortSpec, Scanner, ScannerEvent, TransportError};
use crate::scanner::{profile, sheet};
use crate::store::{CheckoutRef, EventState, Install, Store, StoreError, VoidOutcome};
use crate::sync::Syncer;
use crate::upstream::{Endpoint, Upstream, UpstreamError};
use anyhow::{anyhow, Context as _};
use clap::{Args, Parser, Subcommand, ValueEnum};
use indicatif::{ProgressBar, ProgressStyle};
use jiff::Timestamp;
use std::io::{Read as _, Write as _};
use std::path::{Path, PathBuf};
use std::process::ExitCode;

#[macro_use]
mod output;
mod daemon;
mod decide;
mod exit;
mod install;
mod kiosk;
mod report;
mod ruleset;
mod sandbox;
mod sync;

use self::{
    daemon::*, decide::*, exit::*, install::*, kiosk::*, output::*, report::*, ruleset::*, sandbox::*, sync::*,
};

const EXAMPLES: &str = "\
Examples:
  redeemd --config ./t/redeemd.toml init --data-dir ./t/data --merchant-id M-000123 \\
          --merchant-category dining --trust-key trust-keys.json
  redeemd --config ./t/redeemd.toml ruleset import ruleset.jws
  redeemd --config ./t/redeemd.toml check 'CP1:NCF...' --amount 58.00 --at 2026-11-28T12:00:00+08:00
  redeemd --config ./t/redeemd.toml redeem 'CP1:NCF...' --amount 58 --json
  redeemd --config ./t/redeemd.toml report daily --format table
  redeemd demo

Exit status: 0 accepted (or done), 1 rejected, 2 usage or configuration error, 3 other failure.";

#[derive(Debug, Parser)]
#[command(name = "redeemd", version, about = "Offline coupon redemption for checkout terminals", after_help = EXAMPLES)]
pub struct Cli {
    /// Configuration file
    #[arg(long, global = true, env = "REDEEMD_CONFIG", default_value = config::DEFAULT_PATH, value_name = "PATH")]
    config: PathBuf,
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Write a config for a terminal provisioned by hand (no upstream) and create its ledger
    #[command(
        after_help = "Example:\n  redeemd --config ./t/redeemd.toml init --data-dir ./t/data --merchant-id M-000123 \\\n      --merchant-category dining --trust-key trust-keys.json --timezone Asia/Shanghai --language zh-CN"
    )]
    Init(InitArgs),
    /// Import or show the signed rule set
    #[command(subcommand)]
    Ruleset(RulesetCommand),
    /// Say what would happen to a code, writing nothing
    #[command(
        after_help = "Examples:\n  redeemd check 'CP1:NCF...' --amount 58.00\n  redeemd check 'CP1:NCF...' --amount 58 --eligible 40 --at 2026-11-28T12:00:00+08:00 --json\n  scanner-read | redeemd check - --amount 58\n\nExit status: 0 it would be accepted, 1 it would be refused, 2 usage error, 3 other failure."
    )]
    Check(CheckArgs),
    /// Decide a code and, when accepted, record the redemption
    #[command(
        after_help = "Examples:\n  redeemd redeem 'CP1:NCF...' --amount 58\n  redeemd redeem 'CP1:NCF...' --amount 120.50 --eligible 80 --json\n\nExit status: 0 accepted (recorded), 1 refused (nothing recorded), 2 usage error, 3 other failure."
    )]
    Redeem(RedeemArgs),
    /// Void a redemption; its coupon can be redeemed again
    #[command(
        after_help = "Example:\n  redeemd void 0198f3c2-7a1b-7c3d-9e4f-0123456789ab --reason \"customer changed mind\"\n\nThe redemption ids are in `redeemd report daily --format csv`."
    )]
    Void(VoidArgs),
    /// Reports for the store manager
    #[command(subcommand)]
    Report(ReportCommand),
    /// A live demo terminal: cashier screen, manager's page, a virtual scanner, a demo upstream
    ///
    /// Starts a throwaway terminal in a temporary directory, enrolled with a loopback demo
    /// upstream, and prints the cashier link, the manager link and PIN, and the virtual
    /// scanner's page; runs until Ctrl-C. `--once` runs the scripted round trip instead.
    // The examples in `after_help`: clap rewraps a doc comment's lines into one.
    #[command(
        after_help = "Examples:\n  redeemd demo\n  redeemd demo --listen 127.0.0.1:8080 --language en\n  redeemd demo --scanner /dev/ttyACM0 --profile generic-cdc\n  redeemd demo --once"
    )]
    Demo(DemoArgs),
    /// A real upstream to try terminals against: HTTPS with its own CA, codes, campaigns, coupons
    ///
    /// `serve` runs the upstream API (enrollment, signed rule sets, redemptions with
    /// conflicts between terminals, heartbeats) with its state in --dir; the other verbs
    /// work on the same directory while it runs. The live demo's upstream is this code.
    #[command(after_help = SANDBOX_HELP)]
    Sandbox(SandboxArgs),
    /// Enroll with upstream, write the config and token, fetch the first rule set
    #[command(
        after_help = "Example:\n  redeemd --config /etc/redeemd/redeemd.toml provision --upstream https://coupons.example.cn/ \\\n      --enrollment-code K7PX-93QD --ca upstream-ca.pem --data-dir /var/lib/redeemd"
    )]
    Provision(ProvisionArgs),
    /// Heartbeat, rule-set refresh and forwarding of the outbox to upstream
    #[command(
        after_help = "Examples:\n  redeemd sync --once   # exit 0 when nothing is left undelivered and a rule set is installed, else 3\n  redeemd sync          # until stopped (the daemon does this itself)"
    )]
    Sync {
        /// One full round, then exit: 0 when nothing is left undelivered and a rule set is installed, else 3
        #[arg(long)]
        once: bool,
    },
    /// Barcode scanners: list ports, watch scans, print a setup sheet
    #[command(subcommand)]
    Scanner(ScannerCommand),
    /// Events waiting for upstream's answer, and parked ones sent again
    #[command(subcommand)]
    Outbox(OutboxCommand),
    /// The daemon: scanner, decisions, local API, pages and forwarding in one process
    #[command(after_help = RUN_EXAMPLES)]
    Run(RunArgs),
    /// Print the till's bearer token for the local API (made if missing)
    #[command(
        name = "pos-token",
        after_help = "Examples:\n  curl -H \"Authorization: Bearer $(redeemd pos-token)\" http://127.0.0.1:7878/v1/status\n  redeemd pos-token --rotate   # the old token stops working at once"
    )]
    PosToken {
        /// Replace the token; a running daemon refuses the old one at once
        #[arg(long)]
        rotate: bool,
    },
    /// The manager's PIN for the manager pages
    #[command(name = "manager-pin", subcommand)]
    ManagerPin(ManagerPinCommand),
    /// Print a one-time link (valid 10 minutes) that opens the cashier screen in this terminal's browser
    #[command(name = "cashier-url", after_help = "Example:\n  chromium --kiosk \"$(redeemd cashier-url)\"")]
    CashierUrl,
    /// Open the cashier screen full screen in this terminal's browser by itself, and again whenever it closes
    ///
    /// Gets a one-time cashier link from the running daemon (waiting for it to start), starts
    /// the browser in kiosk mode on it, and starts it again with a new link whenever it exits.
    /// The package runs it in the desktop session of every account in the group
    /// redeemd-kiosk, which may ask /run/redeemd-cashier-link.sock for links and nothing else.
    #[command(after_help = KIOSK_HELP)]
    Kiosk(KioskArgs),
    /// Check config, files, ledger, clock, rule set, upstream, scanner, disk and service; say what to fix
    #[command(
        after_help = "Examples:\n  redeemd doctor\n  redeemd doctor --json | jq '.findings[] | select(.status != \"ok\")'\n\nEach finding is ok, a warning or a problem. Exit status: 0 when nothing is a problem, 3 otherwise."
    )]
    Doctor {
        /// One JSON object: {ok, problems, warnings, findings: [{check, status, message, fix}]}
        #[arg(long)]
        json: bool,
    },
    /// Copy the ledger (consistent while the daemon runs), the config and the trust anchors into FILE; never a token
    #[command(after_help = "Example:\n  redeemd backup /media/usb/lane-2-$(date +%F).redeemd-backup")]
    Backup {
        /// The backup file to write (mode 0600)
        #[arg(value_name = "FILE")]
        file: PathBuf,
    },
    /// Put a backup onto this (replacement) terminal; refuses to replace a ledger holding events the backup lacks
    #[command(after_help = RESTORE_HELP)]
    Restore {
        /// A file written by `redeemd backup`
        #[arg(value_name = "FILE")]
        file: PathBuf,
        /// Data directory when no config exists yet (the backup's config is written, pointing here)
        #[arg(long, value_name = "DIR")]
        data_dir: Option<PathBuf>,
        /// Restore even though this terminal's config names another merchant than the backup
        #[arg(long)]
        force: bool,
    },
    /// Write the man pages, shell completions and udev rules for packaging into DIR
    #[command(hide = true)]
    Assets {
        #[arg(value_name = "DIR")]
        out: PathBuf,
    },
}

const RESTORE_HELP: &str = "\
Example, a terminal swap, on the replacement:
  redeemd restore lane-2.redeemd-backup --data-dir /var/lib/redeemd
  redeemd provision --upstream URL --enrollment-code NEW-CODE --ca upstream-ca.pem
  redeemd sync --once      # the old terminal's unanswered events, under their original event ids
  redeemd manager-pin set  # PINs and tokens are never in a backup";

const RUN_EXAMPLES: &str = "\
Examples:
  redeemd run                                   # 127.0.0.1:7878, scanner auto, profile generic-serial
  redeemd run --scanner /dev/serial/by-id/usb-Zebra-if00 --profile zebra-ds2208
  redeemd run --listen 127.0.0.1:8080 --scanner none

Then, with the till's token:
  TOKEN=$(redeemd pos-token)
  curl -s -H \"Authorization: Bearer $TOKEN\" -d '{\"basket_total\": 5800}' http://127.0.0.1:7878/v1/checkouts
  curl -s -H \"Authorization: Bearer $TOKEN\" -d '{\"code\": \"CP1:...\"}' http://127.0.0.1:7878/v1/checkouts/ID/codes
  curl -s -N -H \"Authorization: Bearer $TOKEN\" http://127.0.0.1:7878/v1/events

Stops on SIGTERM or SIGINT within 5 s, finishing the decision in hand.";

#[derive(Debug, Args)]
struct RunArgs {
    /// ADDR:PORT of the local API (default: [api] listen, else 127.0.0.1:7878; loopback only unless [api] allow-remote)
    #[arg(long, value_name = "ADDR:PORT")]
    listen: Option<String>,
    /// Scanner port: a path, `auto` (by the profile's USB ids) or `none` (default: [scanner] port, else auto)
    #[arg(long, value_name = "PATH|auto|none")]
    scanner: Option<String>,
    /// Firmware profile: an id or an edited copy `ID.toml` (default: [scanner] profile, else generic-serial)
    #[arg(long, value_name = "ID|FILE")]
    profile: Option<String>,
}

#[derive(Debug, Subcommand)]
enum OutboxCommand {
    /// Events not yet answered (pending and parked), with upstream's message for parked ones
    #[command(after_help = "Examples:\n  redeemd outbox list\n  redeemd outbox list --state parked --json")]
    List {
        /// Only events in this state
        #[arg(long, value_enum)]
        state: Option<OutboxState>,
        /// A JSON array of objects
        #[arg(long)]
        json: bool,
    },
    /// Send parked events again (after the cause was fixed, e.g. an upgrade)
    #[command(after_help = "Examples:\n  redeemd outbox retry 0198f3c2-…\n  redeemd outbox retry --all")]
    Retry {
        /// The event to send again
        #[arg(value_name = "EVENT_ID", required_unless_present = "all", conflicts_with = "all")]
        event_id: Option<String>,
        /// Every parked event
        #[arg(long)]
        all: bool,
    },
}

#[derive(Debug, Clone, Copy, ValueEnum)]
enum OutboxState {
    Pending,
    Parked,
    Accepted,
    Duplicate,
    Conflict,
    Rejected,
}

impl OutboxState {
    /// The ledger's state this option names.
    fn stored(self) -> EventState {
        match self {
            OutboxState::Pending => EventState::Pending,
            OutboxState::Parked => EventState::Parked,
            OutboxState::Accepted => EventState::Accepted,
            OutboxState::Duplicate => EventState::Duplicate,
            OutboxState::Conflict => EventState::Conflict,
            OutboxState::Rejected => EventState::Rejected,
        }
    }
}

#[derive(Debug, Subcommand)]
enum ManagerPinCommand {
    /// Read a new PIN (4 to 12 digits) from standard input; only a slow salted hash is kept
    #[command(after_help = "Example:\n  echo 246810 | redeemd manager-pin set")]
    Set,
}

#[derive(Debug, Args)]
struct ProvisionArgs {
    /// Base URL of the issuer platform (https://; http:// only to a loopback host)
    #[arg(long, value_name = "URL")]
    upstream: String,
    /// The one-time code the issuer gave for this terminal
    #[arg(long, value_name = "CODE")]
    enrollment_code: String,
    /// Upstream's CA certificate (PEM), trusted in addition to the system roots
    #[arg(long, value_name = "FILE")]
    ca: Option<PathBuf>,
    /// Directory for the ledger, token and trust anchors (default: the existing config's, else /var/lib/redeemd)
    #[arg(long, value_name = "DIR")]
    data_dir: Option<PathBuf>,
    /// Terminal label sent to upstream (default: the host name)
    #[arg(long, value_name = "TEXT")]
    label: Option<String>,
    /// Language of cashier messages (default: the existing config's, else zh-CN)
    #[arg(long, value_enum)]
    language: Option<LanguageArg>,
}

#[derive(Debug, Subcommand)]
enum ScannerCommand {
    /// Serial ports with their USB ids and the matching firmware profile, and the profiles
    #[command(after_help = "Examples:\n  redeemd scanner list\n  redeemd scanner list --json")]
    List {
        /// One JSON object: {ports, profiles}
        #[arg(long)]
        json: bool,
    },
    /// Read scans live and print each frame or discard
    #[command(
        after_help = "Examples:\n  redeemd scanner test --port auto --profile zebra-ds2208 --count 3 --json\n  redeemd scanner test --port /dev/ttyACM0 --profile ./zebra-ds2208.toml --count 1   # an edited copy\n\nExit status: 0 when --count frames arrived, 3 when fewer did before --timeout, 2 usage error."
    )]
    Test {
        /// Serial device path, a /dev/serial/by-id/... link, or `auto` (by the profile's USB ids)
        #[arg(long, value_name = "PATH|auto")]
        port: String,
        /// Firmware profile: an id (see `redeemd scanner list`) or an edited copy `ID.toml`
        #[arg(long, value_name = "ID|FILE")]
        profile: String,
        /// Stop after this many delivered frames
        #[arg(long, value_name = "N")]
        count: Option<u64>,
        /// Stop after this many seconds
        #[arg(long, value_name = "SECONDS", default_value_t = 60.0)]
        timeout: f64,
        /// One JSON object per line
        #[arg(long)]
        json: bool,
    },
    /// Render the profile's setup codes and a sample coupon as a printable PNG
    #[command(after_help = "Example:\n  redeemd scanner sheet --profile honeywell-xenon-1950g --out xenon-setup.png")]
    Sheet {
        /// Firmware profile: an id (see `redeemd scanner list`) or an edited copy `ID.toml`
        #[arg(long, value_name = "ID|FILE")]
        profile: String,
        /// The PNG file to write
        #[arg(long, value_name = "FILE.png")]
        out: PathBuf,
    },
}

#[derive(Debug, Args)]
struct InitArgs {
    /// Directory for the ledger and the trust anchors (created if missing)
    #[arg(long, value_name = "DIR")]
    data_dir: PathBuf,
    /// This shop's merchant id, exactly as the issuer's campaigns list it
    #[arg(long, value_name = "ID")]
    merchant_id: String,
    /// This shop's category, exactly as the campaigns spell it (`dining` is not `Dining`)
    #[arg(long, value_name = "CAT")]
    merchant_category: String,
    /// Rule-set trust anchors: JSON [{"kid","alg","key"}]
    #[arg(long, value_name = "FILE")]
    trust_key: PathBuf,
    /// IANA zone for business days until a rule set is installed
    #[arg(long, value_name = "TZ", default_value = config::DEFAULT_TIMEZONE)]
    timezone: String,
    /// Language of cashier messages
    #[arg(long, value_enum, default_value = "zh-CN")]
    language: LanguageArg,
    /// Overwrite an existing config file (the ledger is kept)
    #[arg(long)]
    force: bool,
}

#[derive(Debug, Clone, Copy, ValueEnum)]
enum LanguageArg {
    #[value(name = "zh-CN", alias = "zh-cn")]
    ZhCn,
    En,
}

impl LanguageArg {
    fn language(self) -> Language {
        match self {
            LanguageArg::ZhCn => Language::ZhCn,
            LanguageArg::En => Language::En,
        }
    }
}

#[derive(Debug, Subcommand)]
enum RulesetCommand {
    /// Verify and install a signed rule set (JWS compact text)
    #[command(
        after_help = "Example:\n  redeemd ruleset import ruleset-v42.jws\n\nThe same version again changes nothing (exit 0); a refused one leaves the installed one in force."
    )]
    Import {
        /// The rule set file (JWS compact text)
        #[arg(value_name = "FILE")]
        file: PathBuf,
    },
    /// Version, validity, campaigns, revoked count and age of the rule set in force
    #[command(after_help = "Examples:\n  redeemd ruleset show\n  redeemd ruleset show --json | jq .version")]
    Show {
        /// One JSON object (version, issued_at, expires_at, timezone, campaigns, revoked, ...)
        #[arg(long)]
        json: bool,
    },
}

#[derive(Debug, Args)]
struct CodeArgs {
    /// The scanned code, exactly as read (quote it: codes contain spaces); `-` reads stdin
    // No `allow_hyphen_values`: clap takes a lone `-` as a value anyway, CP1:/CP2: codes
    // never start with '-', and with it a mistyped option (`--jsno CODE`) became the CODE
    // and the real code an "unexpected argument", instead of clap naming the option.
    #[arg(value_name = "CODE")]
    code: String,
    /// Basket total in major units, e.g. 58 or 58.50
    #[arg(long, value_name = "DEC", allow_hyphen_values = true)]
    amount: String,
    /// The part of the basket the coupon applies to (default: the whole basket)
    #[arg(long, value_name = "DEC", allow_hyphen_values = true)]
    eligible: Option<String>,
    /// Print the decision record as one JSON line
    #[arg(long)]
    json: bool,
}

#[derive(Debug, Args)]
struct CheckArgs {
    #[command(flatten)]
    code: CodeArgs,
    /// Evaluate at another instant (RFC 3339), every time rule included
    #[arg(long, value_name = "RFC3339")]
    at: Option<String>,
}

#[derive(Debug, Args)]
struct RedeemArgs {
    #[command(flatten)]
    code: CodeArgs,
}

#[derive(Debug, Args)]
struct VoidArgs {
    /// The redemption to void (printed by `redeem`, listed by `report daily`)
    #[arg(value_name = "REDEMPTION_ID")]
    redemption_id: String,
    /// Why, kept with the void and sent upstream
    #[arg(long, value_name = "TEXT")]
    reason: Option<String>,
}

#[derive(Debug, Subcommand)]
enum ReportCommand {
    /// The day's write-offs: per campaign, per hour, totals, leverage, forwarding state
    #[command(
        after_help = "Examples:\n  redeemd report daily\n  redeemd report daily --date 2026-11-28 --format csv > 2026-11-28.csv\n  redeemd report daily --format json | jq .totals\n  redeemd report daily --scope store      (every lane, from the store hub)\n\nLeverage = basket totals / discount written off. Tables shorten long ids; csv and json keep them whole."
    )]
    Daily {
        /// Business day (default: today in the rule set's zone)
        #[arg(long, value_name = "YYYY-MM-DD")]
        date: Option<String>,
        /// table for people (in the configured language); csv and json for machines (English keys)
        #[arg(long, value_enum, default_value = "table")]
        format: ReportFormat,
        /// terminal: this lane's ledger; store: every lane of the store, from the store hub ([store])
        #[arg(long, value_enum, default_value = "terminal")]
        scope: ReportScope,
    },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
enum ReportScope {
    Terminal,
    Store,
}

#[derive(Debug, Clone, Copy, ValueEnum)]
enum ReportFormat {
    Table,
    Csv,
    Json,
}

#[derive(Debug, Args)]
struct DemoArgs {
    /// Keep the demo terminal here instead of a temporary directory (must not hold one yet)
    #[arg(long, value_name = "DIR")]
    dir: Option<PathBuf>,
    /// The scripted round trip (init, import, redeem, re-redeem, report), then exit
    #[arg(long)]
    once: bool,
    /// Address for the pages and the local API
    #[arg(long, value_name = "ADDR:PORT", default_value = "127.0.0.1:7878")]
    listen: String,
    /// A real scanner instead of the virtual one (a port path, or `auto`)
    #[arg(long, value_name = "PATH")]
    scanner: Option<String>,
    /// The real scanner's firmware profile
    #[arg(long, value_name = "ID")]
    profile: Option<String>,
    /// Language of the pages and messages
    #[arg(long, value_enum, default_value = "zh-CN")]
    language: LanguageArg,
    /// Lanes of one store (2..=6), guarded by a store hub: needs `nats-server` (≥ 2.11) on PATH
    #[arg(long, value_name = "N", default_value_t = 1, value_parser = clap::value_parser!(u16).range(1..=6))]
    lanes: u16,
}

pub fn main() -> ExitCode {
    let mut command = <Cli as clap::CommandFactory>::command();
    if !colour(true) {
        command = command.color(clap::ColorChoice::Never);
    }
    let cli = match command.try_get_matches().and_then(|m| <Cli as clap::FromArgMatches>::from_arg_matches(&m)) {
        Ok(cli) => cli,
        Err(e) => {
            if !unknown_option_in_language(&e) {
                let _ = e.print();
            }
            return if e.use_stderr() { ExitCode::from(2) } else { ExitCode::SUCCESS };
        }
    };
    init_logging(&cli.command);
    match run(cli) {
        Ok(code) => code,
        Err(error) => {
            let (code, text) = explain(error);
            // Not `eprintln!`: a closed stderr must not turn the status into a panic's 101.
            let _ = writeln!(std::io::stderr(), "redeemd: {text}");
            code.into()
        }
    }
}

/// clap's own errors are English. An unknown option (the common typo, `--jsno`) is said
/// in the terminal's language instead when that is not English, with clap's suggestion;
/// true when it was said.
fn unknown_option_in_language(e: &clap::Error) -> bool {
    use clap::error::{ContextKind, ContextValue, ErrorKind};
    if e.kind() != ErrorKind::UnknownArgument {
        return false;
    }
    // The config is not parsed yet: find `--config` (or its environment variable) by hand.
    let args: Vec<String> = std::env::args().collect();
    let from_args = args.iter().enumerate().find_map(|(i, a)| match a.strip_prefix("--config") {
        Some("") => args.get(i + 1).cloned(),
        Some(rest) => rest.strip_prefix('=').map(str::to_owned),
        None => None,
    });
    let config = from_args.or_else(|| std::env::var("REDEEMD_CONFIG").ok()).unwrap_or(config::DEFAULT_PATH.into());
    language_from(Path::new(&config));
    if lang() == Language::En {
        return false;
    }
    let text = |kind| match e.get(kind) {
        Some(ContextValue::String(s)) => Some(s.clone()),
        Some(ContextValue::Strings(v)) => v.first().cloned(),
        _ => None,
    };
    let Some(option) = text(ContextKind::InvalidArg) else {
        return false;
    };
    let similar =
        text(ContextKind::SuggestedArg).map(|s| tr("error.similar_option", &[("option", &s)])).unwrap_or_default();
    let line = tr("error.unknown_argument", &[("option", &option), ("similar", &similar)]);
    let _ = writeln!(std::io::stderr(), "redeemd: {line}");
    true
}

/// The log on stderr. The long-running commands (`run`, the live demo, `sync` without
/// `--once`) log warnings by default; a one-shot command says its own warnings to the
/// user in their language, so its log shows only errors unless `REDEEMD_LOG` asks for
/// more (the same warning twice, once in English, helped nobody).
fn init_logging(command: &Command) {
    let long_running = match command {
        Command::Run(_) | Command::Sync { once: false } => true,
        Command::Demo(args) => !args.once,
        Command::Sandbox(args) => args.serves(),
        _ => false,
    };
    let default = if long_running { tracing::Level::WARN } else { tracing::Level::ERROR };
    let level = std::env::var("REDEEMD_LOG").ok().and_then(|l| l.parse().ok()).unwrap_or(default);
    use std::io::IsTerminal as _;
    tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_max_level(level)
        .with_target(false)
        .with_ansi(colour(std::io::stderr().is_terminal()))
        // A closed stderr must not panic the thread that logs (the daemon's writer).
        .log_internal_errors(false)
        .init();
}

pub fn run(cli: Cli) -> CliResult {
    match cli.command {
        Command::Init(args) => init(&cli.config, args),
        Command::Ruleset(RulesetCommand::Import { file }) => ruleset_import(&cli.config, &file),
        Command::Ruleset(RulesetCommand::Show { json }) => ruleset_show(&cli.config, json),
        Command::Check(args) => present(&cli.config, args.code, Some(args.at)),
        Command::Redeem(args) => present(&cli.config, args.code, None),
        Command::Void(args) => void(&cli.config, &args),
        Command::Report(ReportCommand::Daily { date, format, scope }) => {
            report_daily(&cli.config, date.as_deref(), format, scope)
        }
        Command::Demo(args) => demo(args),
        Command::Sandbox(args) => sandbox(args),
        Command::Provision(args) => provision(&cli.config, args),
        Command::Sync { once } => sync(&cli.config, once),
        Command::Scanner(ScannerCommand::List { json }) => {
            language_from(&cli.config);
            scanner_list(json)
        }
        Command::Scanner(ScannerCommand::Test { port, profile, count, timeout, json }) => {
            language_from(&cli.config);
            scanner_test(&port, &profile, count, timeout, json)
        }
        Command::Scanner(ScannerCommand::Sheet { profile, out }) => {
            language_from(&cli.config);
            scanner_sheet(&profile, &out)
        }
        Command::Run(args) => run_daemon(&cli.config, args),
        Command::Outbox(OutboxCommand::List { state, json }) => outbox_list(&cli.config, state, json),
        Command::Outbox(OutboxCommand::Retry { event_id, all }) => {
            outbox_retry(&cli.config, if all { None } else { event_id.as_deref() })
        }
        Command::PosToken { rotate } => pos_token(&cli.config, rotate),
        Command::ManagerPin(ManagerPinCommand::Set) => manager_pin_set(&cli.config),
        Command::CashierUrl => cashier_url(&cli.config),
        Command::Kiosk(args) => kiosk(&cli.config, args),
        Command::Doctor { json } => doctor(&cli.config, json),
        Command::Backup { file } => backup(&cli.config, &file),
        Command::Restore { file, data_dir, force } => restore(&cli.config, &file, data_dir.as_deref(), force),
        Command::Assets { out } => {
            let cmd = <Cli as clap::CommandFactory>::command();
            for path in crate::assets::write_all(cmd, &profile::builtin()?, &out)
                .with_context(|| tr("error.cannot_write", &[("path", &out.display().to_string())]))?
            {
                say!("{}", path.display());
            }
            Ok(ExitCode::SUCCESS)
        }
    }
}

fn load_config(path: &Path) -> CliResult<Config> {
    let config = Config::load(path).map_err(|e| {
        // A config that parsed but fails a check still says its language: use it.
        if let Some(language) = e.language() {
            let _ = LANG.set(language);
        }
        usage(e)
    })?;
    let _ = LANG.set(config.language);
    Ok(config)
}

fn open_agent(config: &Config) -> CliResult<Agent> {
    open_agent_with(config, Box::new(SystemClock))
}

fn open_agent_with(config: &Config, clock: Box<dyn crate::clock::Clock>) -> CliResult<Agent> {
    open_agent_as(config, clock, false)
}

/// For `check` and `redeem`: the rule set's campaigns load as codes name them.
fn open_agent_for_codes(config: &Config) -> CliResult<Agent> {
    open_agent_as(config, Box::new(SystemClock), true)
}

fn open_agent_as(config: &Config, clock: Box<dyn crate::clock::Clock>, lazy: bool) -> CliResult<Agent> {
    let keys_path = config.trust_keys_path();
    let keys = std::fs::read_to_string(&keys_path)
        .with_context(|| tr("error.trust_keys_unreadable", &[("path", &keys_path.display().to_string())]))
        .map_err(usage)?;
    let anchors = parse_anchors(&keys)
        .with_context(|| tr("error.trust_keys_invalid", &[("path", &keys_path.display().to_string())]))
        .map_err(usage)?;
    let _ = LEDGER.set(config.database_path());
    if config.database_path().exists() {
        check_ledger_access(&config.database_path())?;
    }
    let store = Store::open_existing(&config.database_path()).map_err(|e| match e {
        StoreError::Missing(_) => usage(e),
        other => other.into(),
    })?;
    let terminal =
        Terminal { merchant_id: config.merchant_id.clone(), merchant_category: config.merchant_category.clone() };
    let campaigns = if lazy { Campaigns::AsCodesNameThem } else { Campaigns::All };
    Ok(Agent::open(store, terminal, anchors, config.language, config.timezone(), clock, campaigns)?)
}

fn absolute(path: &Path) -> PathBuf {
    std::path::absolute(path).unwrap_or_else(|_| path.to_owned())
}

/// Writes a file atomically (exclusive temporary file, fsync, rename) with `mode`.
fn write_file(path: &Path, bytes: &[u8], mode: u32) -> CliResult<()> {
    crate::secret::write_atomic(path, bytes, mode)
        .with_context(|| tr("error.cannot_write", &[("path", &path.display().to_string())]))?;
    Ok(())
}

/// The last steps of `init` and `provision`: the ledger created (and given to the data
/// directory's owner, for a root installer), the POS token, then the config file — last,
/// so that a config on disk means a terminal ready to run.
fn lay_down_terminal(config_path: &Path, config: &Config) -> CliResult<()> {
    drop(Store::open(&config.database_path())?);
    crate::backup::give_to_directory_owner(&config.data_dir, &config.database_path());
    crate::secret::ensure_pos_token(&config.data_dir).with_context(|| {
        tr("error.cannot_write", &[("path", &crate::secret::pos_token_path(&config.data_dir).display().to_string())])
    })?;
    if let Some(parent) = config_path.parent().filter(|p| !p.as_os_str().is_empty()) {
        std::fs::create_dir_all(parent)
            .with_context(|| tr("error.cannot_create", &[("path", &parent.display().to_string())]))?;
    }
    write_file(config_path, config.to_toml().as_bytes(), 0o644)
}

fn runtime() -> CliResult<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_current_thread().enable_all().build().context("starting the async runtime")
}

fn host_name() -> String {
    std::fs::read_to_string("/etc/hostname")
        .ok()
        .map(|s| s.trim().to_owned())
        .filter(|s| !s.is_empty())
        .unwrap_or_else(|| "redeemd-terminal".into())
}

#[cfg(test)]
mod help_tests {
    use super::*;
    use clap::CommandFactory as _;

    /// `--help` describes every option and shows an example for every command (README).
    #[test]
    fn every_command_has_examples_and_every_option_a_description() {
        fn walk(cmd: &clap::Command, path: &str, missing: &mut Vec<String>) {
            let path = format!("{path} {}", cmd.get_name());
            if cmd.is_hide_set() {
                return;
            }
            if cmd.has_subcommands() {
                for sub in cmd.get_subcommands() {
                    walk(sub, &path, missing);
                }
                return;
            }
            let after = cmd.get_after_help().or(cmd.get_after_long_help()).map(|h| h.to_string()).unwrap_or_default();
            let long = cmd.get_long_about().map(|h| h.to_string()).unwrap_or_default();
            if !after.contains("Example") && !long.contains("Example") {
                missing.push(format!("{path}: no example"));
            }
            for arg in cmd.get_arguments() {
                let id = arg.get_id().as_str();
                if arg.get_help().is_none() && !matches!(id, "help" | "version") {
                    missing.push(format!("{path}: --{id} undescribed"));
                }
            }
        }
        let mut missing = Vec::new();
        let root = Cli::command();
        for sub in root.get_subcommands() {
            walk(sub, "redeemd", &mut missing);
        }
        assert!(missing.is_empty(), "{missing:#?}");
    }

    /// Issue 19 item 4: advice names only options that exist: in a command to type
    /// (`` `redeemd scanner test --port …` ``) an option of that very command, elsewhere
    /// (`--ca`) an option of some command.
    #[test]
    fn the_messages_name_only_options_that_exist() {
        fn longs(cmd: &clap::Command, all: &mut std::collections::BTreeSet<String>) {
            all.extend(cmd.get_arguments().filter_map(|a| a.get_long()).map(str::to_owned));
            for sub in cmd.get_subcommands() {
                longs(sub, all);
            }
        }
        let mut root = Cli::command();
        // Global options (`sandbox --dir`) are then the subcommands' own too.
        root.build();
        let mut all = std::collections::BTreeSet::from(["help".to_owned(), "version".to_owned()]);
        longs(&root, &mut all);
        let name = |word: &str| -> Option<String> {
            let option = word.strip_prefix("--")?;
            let name: String = option.chars().take_while(|c| c.is_ascii_alphanumeric() || *c == '-').collect();
            (!name.is_empty()).then_some(name)
        };
        let mut wrong = Vec::new();
        for language in Language::ALL {
            for (key, text) in crate::messages::table(language) {
                for (i, part) in text.split('`').enumerate() {
                    let words: Vec<&str> = part.split_whitespace().collect();
                    if i % 2 == 1 && words.first() == Some(&"redeemd") {
                        // The command's own options (and the global ones).
                        let mut cmd = &root;
                        let mut rest = &words[1..];
                        while let Some(word) = rest.first() {
                            match cmd.find_subcommand(word) {
                                Some(sub) => cmd = sub,
                                None if *word == "--config" => rest = rest.get(1..).unwrap_or_default(),
                                None => break,
                            }
                            rest = rest.get(1..).unwrap_or_default();
                        }
                        for option in rest.iter().filter_map(|w| name(w)) {
                            let known = cmd.get_arguments().any(|a| a.get_long() == Some(option.as_str()));
                            if !known && !["config", "help"].contains(&option.as_str()) {
                                wrong.push(format!("{key} ({}): `{part}` has no --{option}", language.tag()));
                            }
                        }
                    } else if i % 2 == 0 || words.first().is_some_and(|w| w.starts_with("--")) {
                        let separators = |c: char| c.is_whitespace() || "（）()，,;；：:、".contains(c);
                        for option in part.split(separators).filter_map(name) {
                            if !all.contains(&option) {
                                wrong.push(format!("{key} ({}): no command has --{option}", language.tag()));
                            }
                        }
                    }
                }
            }
        }
        assert!(wrong.is_empty(), "{wrong:#?}");
    }
}
