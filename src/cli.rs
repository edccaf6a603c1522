//! The `redeemd` command line (`spec/terminal-interfaces.md`): argument parsing with clap,
//! one function per command, and the mapping of outcomes to exit codes — 0 accepted,
//! 1 rejected, 2 usage or configuration error, 3 any other failure — decided here only.
//!
//! Commands are thin: they parse values, call the [`Agent`] and print. No SQL, no
//! decision logic and no clock reads live here.

use crate::agent::{Agent, ImportError};
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
use crate::store::{CheckoutRef, Install, Store, StoreError, VoidOutcome};
use crate::sync::Syncer;
use crate::upstream::{Endpoint, Upstream, UpstreamError};
use anyhow::{anyhow, Context as _};
use clap::{Args, Parser, Subcommand, ValueEnum};
use jiff::Timestamp;
use std::io::{Read as _, Write as _};
use std::path::{Path, PathBuf};
use std::process::ExitCode;

/// Prints a line to stdout; a closed stdout (`redeemd ruleset show | head -1`) ends the
/// command quietly with exit 0 instead of panicking like `println!`.
macro_rules! say {
    () => { $crate::cli::emit(format_args!("\n")) };
    ($($arg:tt)*) => { $crate::cli::emit(format_args!("{}\n", format_args!($($arg)*))) };
}

/// `say!` without the line ending.
macro_rules! say_raw {
    ($($arg:tt)*) => { $crate::cli::emit(format_args!($($arg)*)) };
}

/// Writes to stdout; on a broken pipe the reader is gone and nothing else is worth
/// saying, so the process ends with exit 0 (only output-only commands print this way
/// after their work is done; a decision's own line uses `print_record`). Other write
/// errors (a full disk behind a redirection) are ignored like `println!` would not.
#[doc(hidden)]
pub fn emit(args: std::fmt::Arguments<'_>) {
    let mut out = std::io::stdout().lock();
    if let Err(e) = out.write_fmt(args).and_then(|()| out.flush()) {
        if e.kind() == std::io::ErrorKind::BrokenPipe {
            std::process::exit(0);
        }
    }
}

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
        after_help = "Examples:\n  redeemd check 'CP1:NCF...' --amount 58.00\n  redeemd check 'CP1:NCF...' --amount 58 --eligible 40 --at 2026-11-28T12:00:00+08:00 --json\n  scanner-read | redeemd check - --amount 58\n\nExit status: 0 it would be accepted, 1 it would be refused, 2 usage error."
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
    ///
    /// Examples:
    ///   redeemd demo
    ///   redeemd demo --listen 127.0.0.1:8080 --language en
    ///   redeemd demo --scanner /dev/ttyACM0 --profile generic-cdc
    ///   redeemd demo --once
    Demo(DemoArgs),
    /// Enroll with upstream, write the config and token, fetch the first rule set
    #[command(
        after_help = "Example:\n  redeemd --config /etc/redeemd/redeemd.toml provision --upstream https://coupons.example.cn/ \\\n      --enrollment-code K7PX-93QD --ca upstream-ca.pem --data-dir /var/lib/redeemd"
    )]
    Provision(ProvisionArgs),
    /// Heartbeat, rule-set refresh and forwarding of the outbox to upstream
    #[command(
        after_help = "Examples:\n  redeemd sync --once   # exit 0 when nothing is left undelivered, else 3\n  redeemd sync          # until stopped (the daemon does this itself)"
    )]
    Sync {
        /// One full round, then exit: 0 when nothing is left undelivered, else 3
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
    /// Firmware profile id (default: [scanner] profile, else generic-serial)
    #[arg(long, value_name = "ID")]
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
    fn as_str(self) -> &'static str {
        match self {
            OutboxState::Pending => "pending",
            OutboxState::Parked => "parked",
            OutboxState::Accepted => "accepted",
            OutboxState::Duplicate => "duplicate",
            OutboxState::Conflict => "conflict",
            OutboxState::Rejected => "rejected",
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
    /// Directory for the ledger, token and trust anchors
    #[arg(long, value_name = "DIR", default_value = "/var/lib/redeemd")]
    data_dir: PathBuf,
    /// Terminal label sent to upstream (default: the host name)
    #[arg(long, value_name = "TEXT")]
    label: Option<String>,
    /// Language of cashier messages
    #[arg(long, value_enum, default_value = "zh-CN")]
    language: LanguageArg,
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
    #[command(after_help = "Example:\n  redeemd scanner test --port auto --profile zebra-ds2208 --count 3 --json")]
    Test {
        /// Serial device path, a /dev/serial/by-id/... link, or `auto` (by the profile's USB ids)
        #[arg(long, value_name = "PATH|auto")]
        port: String,
        /// Firmware profile id (see `redeemd scanner list`)
        #[arg(long, value_name = "ID")]
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
        /// Firmware profile id (see `redeemd scanner list`)
        #[arg(long, value_name = "ID")]
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
    #[arg(value_name = "CODE", allow_hyphen_values = true)]
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
        after_help = "Examples:\n  redeemd report daily\n  redeemd report daily --date 2026-11-28 --format csv > 2026-11-28.csv\n  redeemd report daily --format json | jq .totals\n\nLeverage = basket totals / discount written off. Tables shorten long ids; csv and json keep them whole."
    )]
    Daily {
        /// Business day (default: today in the rule set's zone)
        #[arg(long, value_name = "YYYY-MM-DD")]
        date: Option<String>,
        /// table for people (in the configured language); csv and json for machines (English keys)
        #[arg(long, value_enum, default_value = "table")]
        format: ReportFormat,
    },
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
}

/// The exit statuses of `spec/terminal-interfaces.md`: 0 accepted (or done), 1 rejected,
/// 2 usage or configuration error, 3 any other failure.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Exit {
    Done = 0,
    Rejected = 1,
    Usage = 2,
    Failure = 3,
}

impl From<Exit> for ExitCode {
    fn from(exit: Exit) -> ExitCode {
        ExitCode::from(exit as u8)
    }
}

/// Marks an error the person fixes in what they typed or configured (exit 2); made by
/// [`usage`] where the command line knows it, read by [`exit_code`].
#[derive(Debug)]
struct Usage(anyhow::Error);

impl std::fmt::Display for Usage {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.0.fmt(f)
    }
}

impl std::error::Error for Usage {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        self.0.source()
    }
}

/// The one place a failure becomes an exit status: usage errors marked by [`usage`], a
/// ledger this user cannot write (its owner is the configuration to fix) and the
/// library's configuration errors are 2; everything else, a locked ledger included, 3.
fn exit_code(error: &anyhow::Error) -> Exit {
    use crate::config::ConfigError;
    if error.chain().any(|cause| cause.is::<Usage>()) {
        return Exit::Usage;
    }
    for cause in causes(error) {
        if cause.is::<ConfigError>() {
            return Exit::Usage;
        }
        if let Some(e) = cause.downcast_ref::<crate::backup::BackupError>() {
            return if e.is_refusal() { Exit::Usage } else { Exit::Failure };
        }
        match cause.downcast_ref::<rusqlite::Error>() {
            Some(rusqlite::Error::SqliteFailure(f, _))
                if matches!(f.code, rusqlite::ErrorCode::ReadOnly | rusqlite::ErrorCode::CannotOpen) =>
            {
                return Exit::Usage;
            }
            _ => {}
        }
    }
    Exit::Failure
}

#[cfg(test)]
mod exit_tests {
    use super::*;

    #[test]
    fn exit_statuses_are_decided_by_the_kind_of_failure() {
        assert_eq!(exit_code(&usage(anyhow!("--amount 5x"))), Exit::Usage);
        let missing = crate::config::ConfigError::Missing(PathBuf::from("/etc/redeemd/redeemd.toml"));
        assert_eq!(exit_code(&anyhow!(missing).context("loading")), Exit::Usage);
        let refused = crate::backup::BackupError::Refused(crate::messages::Text::new("backup.exists", vec![]));
        assert_eq!(exit_code(&anyhow!(refused)), Exit::Usage);
        let read_only = rusqlite::Error::SqliteFailure(
            rusqlite::ffi::Error { code: rusqlite::ErrorCode::ReadOnly, extended_code: 8 },
            None,
        );
        assert_eq!(exit_code(&anyhow!(read_only)), Exit::Usage);
        let busy = rusqlite::Error::SqliteFailure(
            rusqlite::ffi::Error { code: rusqlite::ErrorCode::DatabaseBusy, extended_code: 5 },
            None,
        );
        assert_eq!(exit_code(&anyhow!(busy)), Exit::Failure);
        assert_eq!(exit_code(&anyhow!("upstream did not answer")), Exit::Failure);
        // The mark survives context added on the way up, and names the marked error's kind.
        let marked = usage(crate::config::ConfigError::Missing(PathBuf::from("x.toml"))).context("init");
        assert_eq!(exit_code(&marked), Exit::Usage);
        assert!(causes(&marked).iter().any(|c| c.is::<crate::config::ConfigError>()));
    }
}

/// The configured language of this run (zh-CN until a config or `--language` says).
static LANG: std::sync::OnceLock<Language> = std::sync::OnceLock::new();

fn lang() -> Language {
    LANG.get().copied().unwrap_or_default()
}

/// The text `section.key` in this run's language with `{name}`s filled in.
fn tr(key: &str, values: &[(&str, &str)]) -> String {
    crate::messages::fill(lang(), key, values)
}

/// The ledger this run opened, so an SQLite error deep in a chain can name its file.
static LEDGER: std::sync::OnceLock<PathBuf> = std::sync::OnceLock::new();

/// The error and its causes, with a [`Usage`] mark replaced by the error it marks (whose
/// own type the explanation looks for).
fn causes(error: &anyhow::Error) -> Vec<&(dyn std::error::Error + 'static)> {
    let mut out = Vec::new();
    for cause in error.chain() {
        if let Some(Usage(inner)) = cause.downcast_ref::<Usage>() {
            // The mark's sources are the inner error's: the rest of the chain is in here.
            out.extend(inner.chain());
            break;
        }
        out.push(cause);
    }
    out
}

/// The one line a failure prints, and its exit status: a locked or read-only ledger is
/// said once with its file and what to do, instead of SQLite's text three times.
fn explain(error: anyhow::Error) -> (Exit, String) {
    let code = exit_code(&error);
    let sqlite = causes(&error).into_iter().find_map(|e| match e.downcast_ref::<rusqlite::Error>() {
        Some(rusqlite::Error::SqliteFailure(f, _)) => Some(f.code),
        _ => None,
    });
    let ledger = LEDGER.get().map_or_else(|| "the ledger".to_owned(), |p| p.display().to_string());
    match sqlite {
        Some(rusqlite::ErrorCode::DatabaseBusy | rusqlite::ErrorCode::DatabaseLocked) => {
            let holders = LEDGER.get().map(|p| holders(p)).unwrap_or_default();
            let who = if holders.is_empty() { tr("error.another_process", &[]) } else { holders.join(", ") };
            let daemon = holders.iter().any(|h| h.contains("redeemd run") || h.contains("redeemd demo"));
            let key = if daemon { "error.ledger_locked_daemon" } else { "error.ledger_locked" };
            (code, tr(key, &[("path", &ledger), ("who", &who)]))
        }
        Some(rusqlite::ErrorCode::ReadOnly | rusqlite::ErrorCode::CannotOpen) => {
            (code, tr("error.ledger_read_only", &[("path", &ledger)]))
        }
        _ => (code, localized(&error).unwrap_or_else(|| one_line(&error))),
    }
}

/// A library error that reaches a person, in their language from the message tables
/// (the errors' `Display` stays English for logs); `None` for the rest, said as they are.
fn localized(error: &anyhow::Error) -> Option<String> {
    use crate::config::ConfigError;
    use crate::scanner::profile::ProfileError;
    causes(error).into_iter().find_map(|cause| {
        if let Some(e) = cause.downcast_ref::<TransportError>() {
            return Some(e.text().render(lang()));
        }
        if let Some(crate::backup::BackupError::Refused(text)) = cause.downcast_ref::<crate::backup::BackupError>() {
            return Some(text.render(lang()));
        }
        if let Some(ProfileError::Unknown(id)) = cause.downcast_ref::<ProfileError>() {
            return Some(tr("error.profile_unknown", &[("profile", id)]));
        }
        match cause.downcast_ref::<ConfigError>() {
            Some(ConfigError::Missing(path)) => {
                Some(tr("error.config_missing", &[("path", &path.display().to_string())]))
            }
            Some(ConfigError::Invalid { path, message }) | Some(ConfigError::Parse { path, message }) => {
                Some(tr("error.config_invalid", &[("path", &path.display().to_string()), ("message", message)]))
            }
            _ => match cause.downcast_ref::<StoreError>() {
                Some(StoreError::Missing(path)) => {
                    Some(tr("error.ledger_missing", &[("path", &path.display().to_string())]))
                }
                _ => None,
            },
        }
    })
}

/// The error and its causes joined with ": ", skipping a cause already said (thiserror
/// variants that print their source would otherwise repeat it).
fn one_line(error: &anyhow::Error) -> String {
    let mut out = String::new();
    let mut last = String::new();
    for cause in error.chain() {
        let text = cause.to_string();
        let lower = text.to_lowercase();
        if out.to_lowercase().contains(&lower) || (!last.is_empty() && lower.contains(&last)) {
            continue;
        }
        if !out.is_empty() {
            out.push_str(": ");
        }
        out.push_str(&text);
        last = lower;
    }
    out
}

/// The processes other than this one that hold `file` open, as `pid (command line)`.
fn holders(file: &Path) -> Vec<String> {
    let me = std::process::id().to_string();
    let Ok(file) = std::fs::canonicalize(file) else {
        return Vec::new();
    };
    let mut found = Vec::new();
    for entry in std::fs::read_dir("/proc").into_iter().flatten().flatten() {
        let pid = entry.file_name().to_string_lossy().into_owned();
        if pid == me || !pid.bytes().all(|b| b.is_ascii_digit()) {
            continue;
        }
        let holds = std::fs::read_dir(entry.path().join("fd"))
            .into_iter()
            .flatten()
            .flatten()
            .any(|fd| std::fs::read_link(fd.path()).is_ok_and(|target| target == file));
        if holds {
            let cmdline = std::fs::read(entry.path().join("cmdline")).unwrap_or_default();
            let args: Vec<String> = cmdline
                .split(|b| *b == 0)
                .filter(|a| !a.is_empty())
                .map(|a| String::from_utf8_lossy(a).into_owned())
                .collect();
            let name = args.first().map(|a| a.rsplit('/').next().unwrap_or(a).to_owned()).unwrap_or_default();
            let sub = args.iter().skip(1).find(|a| !a.starts_with('-') && !a.contains('/')).cloned();
            found.push(format!("process {pid} ({name}{})", sub.map(|s| format!(" {s}")).unwrap_or_default()));
        }
    }
    found
}

/// Proves the ledger, its WAL files and its directory are writable by this user before
/// SQLite opens them: a run that cannot write would otherwise create `-wal`/`-shm` files
/// owned by the wrong user that keep failing after the permissions are fixed.
fn check_ledger_access(db: &Path) -> CliResult<()> {
    use nix::unistd::{access, AccessFlags};
    use std::os::unix::fs::MetadataExt as _;
    let dir = db.parent().filter(|p| !p.as_os_str().is_empty()).unwrap_or(Path::new("."));
    let mut wal = db.as_os_str().to_owned();
    wal.push("-wal");
    let mut shm = db.as_os_str().to_owned();
    shm.push("-shm");
    let rw = AccessFlags::R_OK | AccessFlags::W_OK;
    let candidates = [
        (db.to_owned(), rw),
        (PathBuf::from(wal), rw),
        (PathBuf::from(shm), rw),
        (dir.to_owned(), rw | AccessFlags::X_OK),
    ];
    for (path, flags) in candidates {
        let Ok(meta) = std::fs::metadata(&path) else {
            continue;
        };
        if access(&path, flags).is_err() {
            let owner = user_name(meta.uid());
            let me = user_name(nix::unistd::geteuid().as_raw());
            return Err(usage(anyhow!(tr(
                "error.ledger_owner",
                &[
                    ("path", &path.display().to_string()),
                    ("owner", &owner),
                    ("mode", &format!("{:o}", meta.mode() & 0o7777)),
                    ("me", &me),
                    ("dir", &dir.display().to_string()),
                ]
            ))));
        }
    }
    Ok(())
}

/// The login name of `uid` (from /etc/passwd), else the number.
fn user_name(uid: u32) -> String {
    std::fs::read_to_string("/etc/passwd")
        .ok()
        .and_then(|text| {
            text.lines().find_map(|line| {
                let mut fields = line.split(':');
                let name = fields.next()?;
                (fields.nth(1)? == uid.to_string()).then(|| name.to_owned())
            })
        })
        .unwrap_or_else(|| format!("uid {uid}"))
}

/// Usage or configuration error: exit status 2.
fn usage(error: impl Into<anyhow::Error>) -> anyhow::Error {
    anyhow::Error::new(Usage(error.into()))
}

type CliResult<T = ExitCode> = anyhow::Result<T>;

pub fn main() -> ExitCode {
    let level = std::env::var("REDEEMD_LOG").ok().and_then(|l| l.parse().ok()).unwrap_or(tracing::Level::WARN);
    use std::io::IsTerminal as _;
    tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_max_level(level)
        .with_target(false)
        .with_ansi(colour(std::io::stderr().is_terminal()))
        // A closed stderr must not panic the thread that logs (the daemon's writer).
        .log_internal_errors(false)
        .init();
    let mut command = <Cli as clap::CommandFactory>::command();
    if !colour(true) {
        command = command.color(clap::ColorChoice::Never);
    }
    let cli = match command.try_get_matches().and_then(|m| <Cli as clap::FromArgMatches>::from_arg_matches(&m)) {
        Ok(cli) => cli,
        Err(e) => {
            let _ = e.print();
            return if e.use_stderr() { ExitCode::from(2) } else { ExitCode::SUCCESS };
        }
    };
    match run(cli) {
        Ok(code) => code,
        Err(error) => {
            let (code, text) = explain(error);
            eprintln!("redeemd: {text}");
            code.into()
        }
    }
}

/// Colour (ANSI escapes) only on a terminal and never when `NO_COLOR` is set (non-empty).
fn colour(terminal: bool) -> bool {
    terminal && std::env::var_os("NO_COLOR").is_none_or(|v| v.is_empty())
}

pub fn run(cli: Cli) -> CliResult {
    match cli.command {
        Command::Init(args) => init(&cli.config, args),
        Command::Ruleset(RulesetCommand::Import { file }) => ruleset_import(&cli.config, &file),
        Command::Ruleset(RulesetCommand::Show { json }) => ruleset_show(&cli.config, json),
        Command::Check(args) => present(&cli.config, args.code, Some(args.at)),
        Command::Redeem(args) => present(&cli.config, args.code, None),
        Command::Void(args) => void(&cli.config, &args),
        Command::Report(ReportCommand::Daily { date, format }) => report_daily(&cli.config, date.as_deref(), format),
        Command::Demo(args) => demo(args),
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
        Command::Doctor { json } => {
            // Doctor itself says why a config cannot be read.
            language_from(&cli.config);
            let report = crate::doctor::examine(&cli.config, &SystemClock);
            if json {
                say!("{}", report.to_json());
            } else {
                say_raw!("{}", report.to_text(lang()));
            }
            Ok(ExitCode::from(report.exit_code()))
        }
        Command::Backup { file } => backup(&cli.config, &file),
        Command::Restore { file, data_dir } => restore(&cli.config, &file, data_dir.as_deref()),
        Command::Assets { out } => {
            let cmd = <Cli as clap::CommandFactory>::command();
            for path in crate::assets::write_all(cmd, &profile::builtin()?, &out)
                .with_context(|| format!("cannot write into {}", out.display()))?
            {
                say!("{}", path.display());
            }
            Ok(ExitCode::SUCCESS)
        }
    }
}

fn backup(config_path: &Path, file: &Path) -> CliResult {
    let config = load_config(config_path)?;
    let s = crate::backup::backup(config_path, &config, file, &SystemClock)?;
    say!(
        "{}",
        tr(
            "cli.backup_wrote",
            &[
                ("path", &file.display().to_string()),
                ("redemptions", &s.redemptions.to_string()),
                ("events", &s.events.to_string()),
                ("unanswered", &s.unanswered.to_string()),
            ]
        )
    );
    say!("  {}", tr("cli.backup_files", &[("files", &s.files.join(", "))]));
    Ok(ExitCode::SUCCESS)
}

fn restore(config_path: &Path, file: &Path, data_dir: Option<&Path>) -> CliResult {
    // This terminal's language when it has a config (restore keeps it), else the
    // restored config's (the backup's terminal's) once it is written.
    language_from(config_path);
    let r = crate::backup::restore(config_path, file, data_dir)?;
    language_from(config_path);
    let s = &r.summary;
    let by_hand = tr("cli.restore_by_hand", &[]);
    say!(
        "{}",
        tr(
            "cli.restored",
            &[
                ("path", &file.display().to_string()),
                ("terminal", r.from_terminal.as_deref().unwrap_or(&by_hand)),
                ("made", r.created_at.as_deref().unwrap_or("?")),
                ("dir", &r.data_dir.display().to_string()),
                ("redemptions", &s.redemptions.to_string()),
                ("events", &s.events.to_string()),
                ("unanswered", &s.unanswered.to_string()),
            ]
        )
    );
    if !s.files.is_empty() {
        say!("  {}", tr("cli.restore_files", &[("files", &s.files.join(", "))]));
    }
    say!("{}", tr("cli.restore_next", &[]));
    let step = |command: &str, key: &str, values: &[(&str, &str)]| {
        say!("  {}  # {}", crate::report::pad(&format!("`{command}`"), 60, false), tr(key, values));
    };
    if r.wrote_config && r.from_terminal.is_some() {
        step("redeemd provision --upstream URL --enrollment-code CODE --ca FILE", "cli.restore_step_provision", &[]);
    }
    if s.unanswered > 0 {
        step("redeemd sync --once", "cli.restore_step_sync", &[("count", &s.unanswered.to_string())]);
    }
    step("redeemd manager-pin set", "cli.restore_step_pin", &[]);
    step("redeemd doctor", "provision.step_doctor", &[]);
    Ok(ExitCode::SUCCESS)
}

/// For commands that work without a config (scanner, doctor): its language when there is one.
fn language_from(config_path: &Path) {
    if let Ok(config) = Config::load(config_path) {
        let _ = LANG.set(config.language);
    }
}

fn load_config(path: &Path) -> CliResult<Config> {
    let config = Config::load(path).map_err(usage)?;
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
        .with_context(|| {
            format!("cannot read trust keys {}; run `redeemd init` again or fix trust-keys", keys_path.display())
        })
        .map_err(usage)?;
    let anchors = parse_anchors(&keys).with_context(|| format!("trust keys {}", keys_path.display())).map_err(usage)?;
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
    let new = if lazy { Agent::new_for_codes } else { Agent::new };
    Ok(new(store, terminal, anchors, config.language, config.timezone(), clock)?)
}

fn init(config_path: &Path, args: InitArgs) -> CliResult {
    let _ = LANG.set(args.language.language());
    if config_path.exists() && !args.force {
        return Err(usage(anyhow!(
            "config file {} already exists; pass --force to overwrite it (the ledger is kept)",
            config_path.display()
        )));
    }
    let keys = std::fs::read_to_string(&args.trust_key)
        .with_context(|| format!("cannot read trust key file {}", args.trust_key.display()))
        .map_err(usage)?;
    let anchors = parse_anchors(&keys)
        .with_context(|| format!("trust key file {} is not a list of rule-set keys", args.trust_key.display()))
        .map_err(usage)?;
    let config = Config {
        data_dir: absolute(&args.data_dir),
        merchant_id: args.merchant_id,
        merchant_category: args.merchant_category,
        timezone: Config::canonical_timezone(&args.timezone).map_err(|m| usage(anyhow!("--timezone: {m}")))?,
        language: args.language.language(),
        trust_keys: None,
        upstream: None,
        api: None,
        scanner: None,
    };
    config.check().map_err(|m| usage(anyhow!(m)))?;
    std::fs::create_dir_all(&config.data_dir)
        .with_context(|| format!("cannot create data directory {}", config.data_dir.display()))?;
    write_file(&config.trust_keys_path(), keys.as_bytes(), 0o644)?;
    let store = Store::open(&config.database_path())?;
    drop(store);
    crate::backup::give_to_directory_owner(&config.data_dir, &config.database_path());
    crate::secret::ensure_pos_token(&config.data_dir)
        .with_context(|| format!("cannot write {}", crate::secret::pos_token_path(&config.data_dir).display()))?;
    if let Some(parent) = config_path.parent().filter(|p| !p.as_os_str().is_empty()) {
        std::fs::create_dir_all(parent).with_context(|| format!("cannot create {}", parent.display()))?;
    }
    write_file(config_path, config.to_toml().as_bytes(), 0o644)?;
    say!("{}", tr("cli.init_wrote", &[("path", &config_path.display().to_string())]));
    say!(
        "  {}",
        tr(
            "cli.init_merchant",
            &[("id", &config.merchant_id), ("category", &config.merchant_category), ("timezone", &config.timezone)]
        )
    );
    say!(
        "  {}",
        tr(
            "cli.init_keys",
            &[("count", &anchors.len().to_string()), ("path", &config.trust_keys_path().display().to_string())]
        )
    );
    say!("  {}", tr("cli.init_ledger", &[("path", &config.database_path().display().to_string())]));
    let next = format!("redeemd --config {} ruleset import FILE", config_path.display());
    say!("{}", tr("cli.next", &[("command", &next)]));
    Ok(ExitCode::SUCCESS)
}

fn absolute(path: &Path) -> PathBuf {
    std::path::absolute(path).unwrap_or_else(|_| path.to_owned())
}

/// Writes a file atomically (exclusive temporary file, fsync, rename) with `mode`.
fn write_file(path: &Path, bytes: &[u8], mode: u32) -> CliResult<()> {
    crate::secret::write_atomic(path, bytes, mode).with_context(|| format!("cannot write {}", path.display()))?;
    Ok(())
}

fn ruleset_import(config_path: &Path, file: &Path) -> CliResult {
    let config = load_config(config_path)?;
    let bytes =
        std::fs::read(file).with_context(|| format!("cannot read rule set file {}", file.display())).map_err(usage)?;
    let text = String::from_utf8(bytes).map_err(|_| {
        usage(anyhow!("rule set file {} is not text (a JWS compact rule set is ASCII)", file.display()))
    })?;
    let mut agent = open_agent(&config)?;
    let before = agent.installed().map(|i| i.rules.version);
    match agent.import_ruleset(text) {
        Ok(Install::Installed { previous }) => {
            let rules = &agent.installed().ok_or_else(|| anyhow!("installed rule set vanished"))?.rules;
            let was = previous.map_or_else(|| tr("cli.none", &[]), |v| v.to_string());
            say!(
                "{}",
                tr(
                    "cli.import_installed",
                    &[
                        ("version", &rules.version.to_string()),
                        ("was", &was),
                        ("campaigns", &rules.campaigns.len().to_string()),
                        ("revoked", &rules.revoked_count.to_string()),
                        ("until", &rfc3339(rules.expires_at, &rules.timezone)),
                    ]
                )
            );
            if let Some(warning) = refuses_this_terminal(rules, &config, config_path) {
                eprintln!("{warning}");
            }
            drop(agent);
            nudge_daemon(&config);
            Ok(ExitCode::SUCCESS)
        }
        Ok(Install::Unchanged) => {
            say!("{}", tr("cli.import_unchanged", &[("version", &before.unwrap_or_default().to_string())]));
            Ok(ExitCode::SUCCESS)
        }
        Err(ImportError::Refused(refusal)) => {
            let kept = before
                .map_or_else(|| tr("cli.kept_none", &[]), |v| tr("cli.kept_version", &[("version", &v.to_string())]));
            let path = file.display().to_string();
            Err(anyhow!(tr(
                "error.ruleset_refused",
                &[("file", &path), ("refusal", &refusal.to_string()), ("kept", &kept)]
            )))
        }
        Err(ImportError::Store(e)) => Err(e.into()),
    }
}

/// When no campaign of `rules` admits this terminal (its merchant id or category), the
/// warning that says so: every code would be refused `wrong_merchant`. The most common
/// installer mistake is a category that differs only in case (`Dining` vs `dining`).
fn refuses_this_terminal(rules: &crate::ruleset::RuleSet, config: &Config, config_path: &Path) -> Option<String> {
    let admits = |c: &crate::ruleset::Campaign| {
        (c.merchants.is_empty() || c.merchants.contains(&config.merchant_id))
            && (c.merchant_categories.is_empty() || c.merchant_categories.contains(&config.merchant_category))
    };
    if rules.campaigns.is_empty() || rules.campaigns.values().any(admits) {
        return None;
    }
    let mut wanted: Vec<&str> =
        rules.campaigns.values().flat_map(|c| c.merchant_categories.iter().map(String::as_str)).collect();
    wanted.sort_unstable();
    wanted.dedup();
    let case = wanted
        .iter()
        .find(|w| w.eq_ignore_ascii_case(&config.merchant_category))
        .map(|w| tr("error.case_hint", &[("spelled", &format!("{w:?}"))]))
        .unwrap_or_default();
    let wanted = if wanted.is_empty() { tr("error.only_listed_merchants", &[]) } else { wanted.join(", ") };
    Some(tr(
        "error.refuses_this_terminal",
        &[
            ("merchant_id", &format!("{:?}", config.merchant_id)),
            ("category", &format!("{:?}", config.merchant_category)),
            ("case", &case),
            ("wanted", &wanted),
            ("config", &config_path.display().to_string()),
        ],
    ))
}

fn ruleset_show(config_path: &Path, json: bool) -> CliResult {
    let config = load_config(config_path)?;
    let mut agent = open_agent(&config)?;
    let loaded = agent.installed().is_some();
    let derived = agent.check_derived_tables();
    let now = agent.now();
    if let (Err(problem), true) = (&derived, loaded) {
        return Err(anyhow!(tr("error.derived_tables", &[("problem", &problem.to_string())])));
    }
    let Some(installed) = agent.installed() else {
        if json {
            say!("{}", serde_json::json!({"version": null, "installed": false}));
        } else {
            say!("{}", tr("cli.ruleset_none", &[]));
        }
        return Ok(ExitCode::SUCCESS);
    };
    let rules = &installed.rules;
    // check_derived_tables re-verified the signature and matched the tables against it.
    let signature = "verified".to_owned();
    let age_s = (now - installed.installed_at).as_secs();
    if json {
        let campaigns: Vec<_> = rules
            .campaigns
            .values()
            .map(|c| {
                serde_json::json!({"id": c.id, "name": c.name, "face_value": c.face_value.0, "min_spend": c.min_spend.0,
                "status": c.status, "valid_from": c.valid_from.to_string(), "valid_until": c.valid_until.to_string()})
            })
            .collect();
        say!(
            "{}",
            serde_json::json!({
                "installed": true, "version": rules.version, "issuer": rules.issuer,
                "issued_at": rules.issued_at.to_string(), "expires_at": rules.expires_at.to_string(),
                "timezone": rules.timezone_name, "currency": rules.currency,
                "campaigns": rules.campaigns.len(), "revoked": rules.revoked_count,
                "installed_at": installed.installed_at.to_string(), "age_seconds": age_s,
                "signature": signature, "derived_tables": "match", "campaign_list": campaigns,
            })
        );
        return Ok(ExitCode::SUCCESS);
    }
    let digits = rules.currency_digits();
    let unnamed = tr("cli.ruleset_issuer_unnamed", &[]);
    let issuer = rules.issuer.as_deref().unwrap_or(&unnamed);
    say!("{}", tr("cli.ruleset_header", &[("version", &rules.version.to_string()), ("issuer", issuer)]));
    let local = |ts| rfc3339(ts, &rules.timezone);
    say!("  {}", tr("cli.ruleset_issued", &[("at", &local(rules.issued_at))]));
    let expired = if now >= rules.expires_at { tr("cli.ruleset_expired", &[]) } else { String::new() };
    say!("  {}{expired}", tr("cli.ruleset_expires", &[("at", &local(rules.expires_at))]));
    say!(
        "  {}",
        tr("cli.ruleset_installed", &[("at", &local(installed.installed_at)), ("hours", &(age_s / 3600).to_string())])
    );
    say!(
        "  {}",
        tr(
            "cli.ruleset_zone",
            &[
                ("timezone", &rules.timezone_name),
                ("currency", &rules.currency),
                ("max", &rules.max_coupons_per_basket.to_string())
            ]
        )
    );
    say!("  {}", tr("cli.ruleset_revoked", &[("count", &rules.revoked_count.to_string())]));
    say!("  {}", tr("cli.ruleset_campaigns", &[("count", &rules.campaigns.len().to_string())]));
    for c in rules.campaigns.values() {
        let status = tr(&format!("cli.status_{}", format!("{:?}", c.status).to_lowercase()), &[]);
        let terms = tr(
            "cli.ruleset_campaign",
            &[("face", &c.face_value.display(digits)), ("min", &c.min_spend.display(digits))],
        );
        say!(
            "    {} {} {}  {}",
            crate::report::pad(&crate::report::shorten(&c.id, 20), 20, false),
            crate::report::pad(&status, 8, false),
            crate::report::pad(&terms, 22, false),
            c.display_name(config.language.tag())
        );
    }
    Ok(ExitCode::SUCCESS)
}

/// Reads the code argument; `-` reads one code from stdin (its final line ending dropped,
/// spaces kept: space is a base45 character).
fn read_code(arg: &str) -> CliResult<String> {
    if arg != "-" {
        return Ok(arg.to_owned());
    }
    const MAX_STDIN: u64 = 4 << 20;
    let mut buf = Vec::new();
    std::io::stdin().take(MAX_STDIN + 1).read_to_end(&mut buf).context("cannot read the code from stdin")?;
    if buf.len() as u64 > MAX_STDIN {
        return Err(usage(anyhow!("the code on stdin is longer than 4 MiB; a CP1 code is at most 1,504 characters")));
    }
    let mut text = String::from_utf8_lossy(&buf).into_owned();
    if text.ends_with('\n') {
        text.pop();
        if text.ends_with('\r') {
            text.pop();
        }
    }
    Ok(text)
}

fn amount(flag: &str, text: &str, digits: u32) -> CliResult<Money> {
    parse_amount(text, digits).map_err(|_| {
        usage(anyhow!(tr(
            "error.amount",
            &[("flag", flag), ("value", &format!("{text:?}")), ("digits", &digits.to_string())]
        )))
    })
}

fn present(config_path: &Path, args: CodeArgs, check_at: Option<Option<String>>) -> CliResult {
    // CODE takes hyphen values (so `-` reads stdin); a mistyped option must not become a
    // code answered `malformed`.
    let config = load_config(config_path)?;
    if args.code.starts_with('-') && args.code != "-" {
        return Err(usage(anyhow!(tr("error.unknown_option", &[("option", &format!("{:?}", args.code))]))));
    }
    let mut agent = open_agent_for_codes(&config)?;
    let digits = agent.currency_digits();
    let basket_total = amount("amount", &args.amount, digits)?;
    let eligible_total = args.eligible.as_deref().map(|e| amount("eligible", e, digits)).transpose()?;
    if let Some(eligible) = eligible_total.filter(|e| *e > basket_total) {
        return Err(usage(anyhow!(tr(
            "error.eligible_over_amount",
            &[("eligible", &eligible.display(digits)), ("amount", &basket_total.display(digits))]
        ))));
    }
    let code = read_code(&args.code)?;
    let single = CheckoutRef::Single { basket_total, eligible_total, pos_ref: None };
    let (decision, redemption_id) = match check_at.clone() {
        Some(at) => {
            let at = at
                .map(|t| {
                    t.parse::<Timestamp>()
                        .map_err(|e| usage(anyhow!("--at {t:?} is not an RFC 3339 instant with offset: {e}")))
                })
                .transpose()?;
            (agent.check(single, &code, at)?, None)
        }
        None => {
            let recorded = agent.redeem(single, &code)?;
            (recorded.decision, recorded.redemption_id)
        }
    };
    let record = agent.record_with_advice(&decision, redemption_id, eligible_total.unwrap_or(basket_total))?;
    let check_only = check_at.is_some();
    print_record(&record, args.json, digits, agent.currency().unwrap_or("CNY"), check_only);
    Ok(if decision.accepted() { Exit::Done } else { Exit::Rejected }.into())
}

/// The decision for people (in the configured language) or, with `--json`, the
/// decision record on one line. Write errors are ignored: the decision is made and
/// recorded, and the exit status still says which.
fn print_record(record: &DecisionRecord, json: bool, digits: u32, currency: &str, check_only: bool) {
    let mut out = std::io::stdout().lock();
    let dash = || "-".to_owned();
    let coupon = record.coupon_id.clone().unwrap_or_else(dash);
    let campaign = record.campaign_id.clone().unwrap_or_else(dash);
    if json {
        let _ = writeln!(out, "{}", serde_json::to_string(record).unwrap_or_default());
    } else if record.decision == "accepted" {
        let amount = Money(record.discount).display(digits);
        let _ = writeln!(
            out,
            "{}",
            tr(
                "cli.accepted_line",
                &[("amount", &amount), ("currency", currency), ("coupon", &coupon), ("campaign", &campaign)]
            )
        );
        if let Some(id) = &record.redemption_id {
            let _ = writeln!(out, "  {}", tr("cli.redemption_line", &[("id", id)]));
        }
        let _ = writeln!(out, "  {}", record.message);
    } else {
        let reason = record.reason.clone().unwrap_or_else(dash);
        let _ = writeln!(out, "{}", tr("cli.rejected_line", &[("reason", &reason)]));
        if record.coupon_id.is_some() {
            let _ = writeln!(out, "  {}", tr("cli.coupon_line", &[("coupon", &coupon), ("campaign", &campaign)]));
        }
        let _ = writeln!(out, "  {}", record.message);
    }
    if check_only && !json {
        let _ = writeln!(out, "  {}", tr("cli.check_only", &[]));
    }
    let _ = out.flush();
}

fn void(config_path: &Path, args: &VoidArgs) -> CliResult {
    let config = load_config(config_path)?;
    let mut agent = open_agent(&config)?;
    let digits = agent.currency_digits();
    match agent.void(&args.redemption_id, args.reason.as_deref())? {
        VoidOutcome::Voided { coupon_id, discount } => {
            say!(
                "{}",
                tr(
                    "cli.voided",
                    &[("id", &args.redemption_id), ("coupon", &coupon_id), ("amount", &discount.display(digits))]
                )
            );
            Ok(ExitCode::SUCCESS)
        }
        VoidOutcome::AlreadyVoided { at } => {
            say!("{}", tr("cli.already_voided", &[("id", &args.redemption_id), ("at", &at.to_string())]));
            Ok(ExitCode::SUCCESS)
        }
        VoidOutcome::NotFound => Err(anyhow!(tr("error.void_not_found", &[("id", &args.redemption_id)]))),
    }
}

fn report_daily(config_path: &Path, date: Option<&str>, format: ReportFormat) -> CliResult {
    let config = load_config(config_path)?;
    let agent = open_agent(&config)?;
    let tz = agent.timezone();
    let date = match date {
        Some(d) => d
            .parse::<jiff::civil::Date>()
            .map_err(|_| usage(anyhow!(tr("error.date_format", &[("value", &format!("{d:?}"))]))))?,
        None => agent.now().to_zoned_datetime(tz.clone()).date(),
    };
    // The day must start and end inside the instants the zone can name (9999-12-31 cannot).
    if date.to_zoned_datetime(tz.clone()).is_err()
        || date.tomorrow().and_then(|d| d.to_zoned_datetime(tz.clone())).is_err()
    {
        return Err(usage(anyhow!(tr(
            "error.date_out_of_range",
            &[("date", &date.to_string()), ("timezone", tz.iana_name().unwrap_or("UTC"))]
        ))));
    }
    let report = agent.daily_report(date)?;
    let text = match format {
        ReportFormat::Json => report.to_json() + "\n",
        ReportFormat::Csv => report.to_csv(),
        ReportFormat::Table => report.to_table(config.language),
    };
    say_raw!("{text}");
    Ok(ExitCode::SUCCESS)
}

/// A whole offline round trip on an embedded demo issuer: no network, no shared files.
fn demo(args: DemoArgs) -> CliResult {
    let _ = LANG.set(args.language.language());
    if !args.once {
        return demo_live(args);
    }
    let (_tmp, dir) = match args.dir {
        Some(dir) => (None, dir),
        None => {
            let tmp = tempdir()?;
            let dir = tmp.0.clone();
            (Some(tmp), dir)
        }
    };
    let issuer = Issuer::from_seed(DEMO_SEED);
    let now = SystemClock.now();
    std::fs::create_dir_all(&dir).with_context(|| format!("cannot create {}", dir.display()))?;
    let keys = dir.join("demo-trust-keys.json");
    std::fs::write(&keys, issuer.trust_anchors_json())?;
    let jws_path = dir.join("demo-ruleset.jws");
    std::fs::write(
        &jws_path,
        issuer.sign_ruleset(&issuer.ruleset_payload(1, now, &["DEMO-DINING"], &["DEMO-REVOKED"])),
    )?;
    let config_path = dir.join("redeemd.toml");
    let data_dir = dir.join("data");
    let step = |key: &str, values: &[(&str, &str)]| say!("\n== {}", tr(key, values));
    step("demo_cli.step_init", &[]);
    init(
        &config_path,
        InitArgs {
            data_dir: data_dir.clone(),
            merchant_id: "M-DEMO".into(),
            merchant_category: "dining".into(),
            trust_key: keys,
            timezone: config::DEFAULT_TIMEZONE.into(),
            language: args.language,
            force: true,
        },
    )?;
    step("demo_cli.step_import", &[]);
    ruleset_import(&config_path, &jws_path)?;
    let code = issuer.code(&CodeSpec::new(format!("DEMO-{}", now.as_second()), "DEMO-DINING", now));
    let code_args = |amount: &str| CodeArgs { code: code.clone(), amount: amount.into(), eligible: None, json: false };
    step("demo_cli.step_redeem", &[("code", &code)]);
    present(&config_path, code_args("58.00"), None)?;
    step("demo_cli.step_again", &[]);
    present(&config_path, code_args("58.00"), None)?;
    step("demo_cli.step_report", &[]);
    report_daily(&config_path, None, ReportFormat::Table)?;
    say!(
        "{}",
        tr("demo_cli.files", &[("dir", &dir.display().to_string()), ("config", &config_path.display().to_string())])
    );
    Ok(ExitCode::SUCCESS)
}

const DEMO_SEED: u8 = 42;

/// The live demo: a provisioned throwaway terminal, the demo upstream, the virtual
/// scanner, and the daemon with the `/demo` page, until Ctrl-C.
fn demo_live(args: DemoArgs) -> CliResult {
    use crate::demo::{DemoState, DemoUpstream};
    let (_tmp, dir) = match args.dir {
        Some(dir) => {
            if dir.join("redeemd.toml").exists() {
                return Err(usage(anyhow!(tr("demo_cli.dir_taken", &[("dir", &dir.display().to_string())]))));
            }
            (None, dir)
        }
        None => {
            let tmp = tempdir()?;
            let dir = tmp.0.clone();
            (Some(tmp), dir)
        }
    };
    std::fs::create_dir_all(&dir).with_context(|| format!("cannot create {}", dir.display()))?;
    let issuer = Issuer::from_seed(DEMO_SEED);
    let now = SystemClock.now();
    let upstream = DemoUpstream::start(&issuer, now).context("starting the demo upstream on 127.0.0.1")?;
    let config_path = dir.join("redeemd.toml");
    let data_dir = dir.join("data");
    say!("== {}", tr("demo_cli.step_provision", &[("url", &upstream.url())]));
    provision(
        &config_path,
        ProvisionArgs {
            upstream: upstream.url(),
            enrollment_code: crate::demo::ENROLLMENT_CODE.into(),
            ca: None,
            data_dir: data_dir.clone(),
            label: Some("demo".into()),
            language: args.language,
        },
    )?;
    let config = load_config(&config_path)?;
    let pin = format!("{:06}", u32::from_le_bytes(crate::secret::random_bytes::<4>()) % 1_000_000);
    crate::secret::write_secret(
        &data_dir.join(crate::secret::MANAGER_PIN_FILE),
        crate::secret::hash_pin(&pin).as_bytes(),
    )
    .context("writing the demo manager PIN")?;
    // The virtual scanner: a pseudo-terminal whose slave the daemon opens as its port.
    let (scanner_text, profile, master): (String, Option<String>, Box<dyn std::io::Write + Send>) = match args.scanner {
        Some(port) => (port, args.profile, Box::new(std::io::sink())),
        None => {
            let (mut master, slave) =
                serialport::TTYPort::pair().context("opening a pseudo-terminal for the virtual scanner")?;
            // Like a real scanner, the virtual one takes whatever the host sends back
            // (feedback, echoes): left unread, it would fill the pty and stall the writes.
            let mut drain = master.try_clone_native().context("a second handle on the virtual scanner's pty")?;
            let _ = serialport::SerialPort::set_timeout(&mut master, std::time::Duration::from_secs(2));
            let _ = serialport::SerialPort::set_timeout(&mut drain, std::time::Duration::from_secs(3600));
            std::thread::Builder::new().name("virtual-scanner".into()).spawn(move || {
                let mut buffer = [0u8; 1024];
                loop {
                    match std::io::Read::read(&mut drain, &mut buffer) {
                        Ok(0) => break,
                        Ok(_) => {}
                        Err(e) if e.kind() == std::io::ErrorKind::TimedOut => {}
                        Err(_) => std::thread::sleep(std::time::Duration::from_millis(200)),
                    }
                }
            })?;
            let path =
                serialport::SerialPort::name(&slave).context("the virtual scanner's pseudo-terminal has no path")?;
            // The slave stays open here too, so the daemon's reconnects never see a hang-up.
            std::mem::forget(slave);
            (path, Some("generic-serial".into()), Box::new(master))
        }
    };
    let listen: std::net::SocketAddr = args
        .listen
        .parse()
        .map_err(|_| usage(anyhow!(tr("error.listen", &[("value", &format!("{:?}", args.listen))]))))?;
    let expires = now + jiff::SignedDuration::from_mins(10);
    let token = crate::secret::new_cashier_link(&data_dir, expires)
        .with_context(|| format!("cannot write the cashier link in {}", data_dir.display()))?;
    let clock: std::sync::Arc<dyn crate::clock::Clock> = std::sync::Arc::new(SystemClock);
    let demo_state = std::sync::Arc::new(DemoState {
        issuer,
        holder: crate::issuer::Holder::ed25519_from_seed(DEMO_SEED),
        live_coupon: std::sync::Mutex::new(Vec::new()),
        scanner: std::sync::Mutex::new(master),
        online: upstream.online.clone(),
        clock: clock.clone(),
    });
    say!();
    say!("== {}", tr("demo_cli.ready", &[("dir", &dir.display().to_string())]));
    say!("   1. {}", tr("demo_cli.cashier", &[]));
    say!("      http://{listen}/cashier/open?token={token}");
    say!("   2. {}", tr("demo_cli.scanner", &[("url", &format!("http://{listen}/demo"))]));
    say!("      {}", tr("demo_cli.scanner_hint", &[]));
    say!("   3. {}", tr("demo_cli.manager", &[("url", &format!("http://{listen}/manager")), ("pin", &pin)]));
    say!("   {}", tr(if _tmp.is_some() { "demo_cli.stop_removes" } else { "demo_cli.stop" }, &[]));
    say!();
    let options = crate::daemon::RunOptions {
        listen: Some(listen.to_string()),
        scanner: Some(scanner_text),
        profile,
        extra_routes: Some(crate::demo::routes(demo_state)),
        config_path: Some(config_path.clone()),
    };
    let mut agent = open_agent_with(&config, Box::new(clock.clone()))?;
    let _ = agent.check_derived_tables();
    match crate::daemon::run(&config, agent, clock, options) {
        Ok(()) => Ok(ExitCode::SUCCESS),
        Err(e @ crate::daemon::RunError::Config(_)) => Err(usage(e)),
        Err(e) => Err(e.into()),
    }
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

fn upstream_failure(e: UpstreamError) -> anyhow::Error {
    match e {
        UpstreamError::InsecureUrl(_) => usage(e),
        other => anyhow!(other),
    }
}

/// The upstream CA file's PEM, when one is configured.
fn read_ca(path: Option<&Path>) -> CliResult<Option<Vec<u8>>> {
    let Some(path) = path else {
        return Ok(None);
    };
    let pem =
        std::fs::read(path).with_context(|| format!("cannot read the CA file {}", path.display())).map_err(usage)?;
    if !String::from_utf8_lossy(&pem).contains("-----BEGIN CERTIFICATE-----") {
        return Err(usage(anyhow!(tr("error.ca_without_certificate", &[("path", &path.display().to_string())]))));
    }
    Ok(Some(pem))
}

fn provision(config_path: &Path, mut args: ProvisionArgs) -> CliResult {
    let _ = LANG.set(args.language.language());
    // Everything the installer typed is checked before any network.
    if !args.upstream.contains("://") {
        let example = format!("https://{}/", args.upstream.trim_end_matches('/'));
        return Err(usage(anyhow!(tr(
            "error.url_without_scheme",
            &[("url", &format!("{:?}", args.upstream)), ("example", &example)]
        ))));
    }
    if args.enrollment_code.trim().is_empty() {
        return Err(usage(anyhow!(tr("error.empty_enrollment_code", &[]))));
    }
    let (normalized, changed) = crate::upstream::normalize_base(&args.upstream).map_err(upstream_failure)?;
    if changed {
        say!("{}", tr("provision.url_normalized", &[("given", &args.upstream), ("used", &normalized)]));
        args.upstream = normalized;
    }
    let data_dir = absolute(&args.data_dir);
    let ca_pem = read_ca(args.ca.as_deref())?;
    let endpoint = Endpoint {
        base_url: args.upstream.clone(),
        ca_pem: ca_pem.clone(),
        system_roots: true,
        timeout: std::time::Duration::from_secs(10),
    };
    let client = Upstream::new(&endpoint, None).map_err(upstream_failure)?;
    let label = args.label.clone().unwrap_or_else(host_name);
    // Everything local is checked before the one-time code is spent: the data directory,
    // the config's directory and the ledger must all be writable.
    check_writable_dir(&data_dir)?;
    let config_dir = config_path.parent().filter(|p| !p.as_os_str().is_empty()).unwrap_or(Path::new("."));
    check_writable_dir(config_dir)?;
    drop(Store::open(&data_dir.join(config::DATABASE_FILE))?);
    let rt = runtime()?;
    // An earlier attempt that enrolled but failed afterwards left upstream's answer: the
    // code is spent, so that answer completes this attempt.
    let saved_path = data_dir.join(ENROLLMENT_FILE);
    let saved = std::fs::read_to_string(&saved_path)
        .ok()
        .and_then(|text| serde_json::from_str::<SavedEnrollment>(&text).ok())
        .filter(|s| s.upstream == args.upstream);
    let enrollment = match saved {
        Some(saved) => {
            say!("{}", tr("provision.saved_answer", &[("path", &saved_path.display().to_string())]));
            saved.answer
        }
        None => {
            let answer = rt.block_on(client.enroll(&args.enrollment_code, &label)).map_err(upstream_failure)?;
            let saved = SavedEnrollment { upstream: args.upstream.clone(), answer };
            crate::secret::write_secret(&saved_path, serde_json::to_string(&saved)?.as_bytes())
                .with_context(|| format!("enrolled, but cannot keep the answer in {}", saved_path.display()))?;
            saved.answer
        }
    };
    let anchors = crate::ruleset::anchors_from_wire(&enrollment.ruleset_keys)
        .context("the enrollment answer's ruleset_keys are not usable trust anchors")?;
    let ca_file = match &ca_pem {
        Some(pem) => {
            let path = data_dir.join(config::UPSTREAM_CA_FILE);
            write_file(&path, pem, 0o644)?;
            Some(path)
        }
        None => None,
    };
    let config = Config {
        data_dir: data_dir.clone(),
        merchant_id: enrollment.merchant_id.clone(),
        merchant_category: enrollment.merchant_category.clone(),
        timezone: enrollment.timezone.clone(),
        language: args.language.language(),
        trust_keys: None,
        upstream: Some(config::UpstreamConfig::new(&args.upstream, &enrollment.terminal_id, ca_file)),
        api: None,
        scanner: None,
    };
    config.check().map_err(|m| anyhow!("the enrollment answer gives an unusable configuration: {m}"))?;
    let token_path = config.token_path().unwrap_or_else(|| data_dir.join(config::TOKEN_FILE));
    crate::secret::write_secret(&token_path, enrollment.token.as_bytes())
        .with_context(|| format!("cannot write {}", token_path.display()))?;
    let keys = serde_json::to_string_pretty(&enrollment.ruleset_keys)?;
    write_file(&config.trust_keys_path(), keys.as_bytes(), 0o644)?;
    drop(Store::open(&config.database_path())?);
    crate::backup::give_to_directory_owner(&config.data_dir, &config.database_path());
    crate::secret::ensure_pos_token(&config.data_dir)
        .with_context(|| format!("cannot write {}", crate::secret::pos_token_path(&config.data_dir).display()))?;
    if let Some(parent) = config_path.parent().filter(|p| !p.as_os_str().is_empty()) {
        std::fs::create_dir_all(parent).with_context(|| format!("cannot create {}", parent.display()))?;
    }
    write_file(config_path, config.to_toml().as_bytes(), 0o644)?;
    let mut agent = open_agent(&config)?;
    crate::sync::reset_after_provision(&agent)?;
    // Written in full: the saved answer (it holds the token) is no longer needed.
    let _ = std::fs::remove_file(&saved_path);
    say!(
        "{}",
        tr(
            "provision.enrolled",
            &[
                ("terminal", &enrollment.terminal_id),
                ("label", &label),
                ("merchant", &enrollment.merchant_id),
                ("name", &enrollment.merchant_name)
            ]
        )
    );
    say!(
        "  {}",
        tr(
            "provision.details",
            &[
                ("category", &enrollment.merchant_category),
                ("timezone", &enrollment.timezone),
                ("keys", &anchors.len().to_string())
            ]
        )
    );
    say!("  {}", tr("provision.config", &[("path", &config_path.display().to_string())]));
    say!("  {}", tr("provision.token", &[("path", &config.token_path().unwrap_or_default().display().to_string())]));
    say!("  {}", tr("provision.ledger", &[("path", &config.database_path().display().to_string())]));
    let mut syncer = syncer(&config, &mut agent)?;
    let fetched = rt.block_on(async { syncer.step_refresh().await });
    match fetched {
        Ok(()) => {
            let summary = syncer.summary.ruleset.as_deref().map_or_else(|| "-".to_owned(), ruleset_summary);
            say!("  {}", tr("provision.ruleset", &[("summary", &summary)]));
            print_next_steps(config_path);
            Ok(ExitCode::SUCCESS)
        }
        Err(e) => Err(anyhow!(tr("provision.ruleset_failed", &[("error", &e.to_string())]))),
    }
}

/// The refresh's outcome in the reader's language. `sync::Summary::ruleset` is English
/// text made in `sync.rs` (being reworked on main, where it should become an enum); until
/// then its few shapes are read back here, and anything else is shown as it is.
fn ruleset_summary(summary: &str) -> String {
    let number = |s: &str| s.parse::<u64>().ok().map(|n| n.to_string());
    if summary == "not modified" {
        return tr("sync.ruleset_not_modified", &[]);
    }
    if let Some((version, bytes)) = summary
        .strip_prefix("installed version ")
        .and_then(|rest| rest.strip_suffix(" bytes)"))
        .and_then(|rest| rest.split_once(" ("))
        .and_then(|(v, b)| Some((number(v)?, number(b)?)))
    {
        return tr("sync.ruleset_installed", &[("version", &version), ("bytes", &bytes)]);
    }
    if let Some(version) =
        summary.strip_prefix("unchanged (version ").and_then(|rest| rest.strip_suffix(')')).and_then(number)
    {
        return tr("sync.ruleset_unchanged", &[("version", &version)]);
    }
    summary.to_owned()
}

/// What an installer does after `provision`, command by command.
fn print_next_steps(config_path: &Path) {
    let redeemd = if config_path == Path::new(config::DEFAULT_PATH) {
        "redeemd".to_owned()
    } else {
        format!("redeemd --config {}", config_path.display())
    };
    let step = |command: String, key: &str, values: &[(&str, &str)]| {
        // In backticks like every command to type in a text for people.
        let command = format!("`{command}`");
        say!("  {}  # {}", crate::report::pad(&command, 42, false), tr(&format!("provision.{key}"), values));
    };
    say!("\n{}", tr("provision.next_steps", &[]));
    step(format!("{redeemd} doctor"), "step_doctor", &[]);
    step(format!("{redeemd} scanner list"), "step_scanner_list", &[]);
    step(format!("{redeemd} scanner sheet --profile ID --out setup.png"), "step_scanner_sheet", &[]);
    step(format!("{redeemd} manager-pin set"), "step_manager_pin", &[]);
    if config_path == Path::new(config::DEFAULT_PATH) {
        step("systemctl enable --now redeemd".to_owned(), "step_systemctl", &[]);
    } else {
        step(format!("{redeemd} run"), "step_run", &[("path", config::DEFAULT_PATH)]);
    }
    step(format!("{redeemd} cashier-url"), "step_cashier_url", &[]);
}

/// Upstream's enrollment answer, kept (mode 0600) until provisioning has written
/// everything, so a retry after a local failure needs no new one-time code.
const ENROLLMENT_FILE: &str = "enrollment.json";

#[derive(serde::Serialize, serde::Deserialize)]
struct SavedEnrollment {
    upstream: String,
    answer: crate::upstream::Enrollment,
}

/// Creates `dir` if needed and proves a file can be written in it.
fn check_writable_dir(dir: &Path) -> CliResult<()> {
    std::fs::create_dir_all(dir).with_context(|| format!("cannot create directory {}", dir.display()))?;
    let probe = dir.join(".redeemd-write-test");
    crate::secret::write_atomic(&probe, b"", 0o600)
        .with_context(|| format!("cannot write in {} (permissions? run as the service user or root)", dir.display()))?;
    let _ = std::fs::remove_file(&probe);
    Ok(())
}

fn syncer<'a>(config: &Config, agent: &'a mut Agent) -> CliResult<Syncer<'a>> {
    let Some(up) = &config.upstream else {
        return Err(usage(anyhow!(
            "this terminal was set up by hand (no [upstream] in the config); provision it with `redeemd provision`"
        )));
    };
    let upstream = crate::upstream::client_for(config, up).map_err(|e| match e {
        UpstreamError::Local(_) => usage(e),
        other => upstream_failure(other),
    })?;
    let mut syncer = Syncer::new(agent, upstream, up.terminal_id.clone(), config.data_dir.clone())?;
    use std::io::IsTerminal as _;
    if std::io::stderr().is_terminal() {
        syncer.progress = Box::new(|done, total| {
            if let Some(total) = total.filter(|t| *t > 1 << 20) {
                eprint!("\rdownloading rule set: {:.1} / {:.1} MB", done as f64 / 1e6, total as f64 / 1e6);
                if done >= total {
                    eprintln!();
                }
            }
        });
    }
    Ok(syncer)
}

fn sync(config_path: &Path, once: bool) -> CliResult {
    let config = load_config(config_path)?;
    let mut agent = open_agent(&config)?;
    let cadence = {
        let up = config.upstream.as_ref();
        crate::sync::Cadence {
            heartbeat: std::time::Duration::from_secs(up.map_or(60, |u| u.heartbeat_secs)),
            refresh: std::time::Duration::from_secs(up.map_or(5, |u| u.refresh_minutes).saturating_mul(60)),
        }
    };
    let mut syncer = syncer(&config, &mut agent)?;
    let rt = runtime()?;
    if !once {
        let shutdown = async {
            let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()).ok();
            tokio::select! {
                _ = tokio::signal::ctrl_c() => {}
                _ = async { match term.as_mut() { Some(t) => { t.recv().await; } None => std::future::pending().await } } => {}
            }
        };
        rt.block_on(syncer.run_forever(cadence, shutdown)).map_err(|e| anyhow!(e))?;
        return Ok(ExitCode::SUCCESS);
    }
    let result = rt.block_on(syncer.run_once());
    let s = &syncer.summary;
    if let Some(skew) = s.heartbeat_skew_s {
        let warn =
            if skew.abs() > crate::sync::CLOCK_SKEW_LIMIT { tr("sync.clock_warning", &[]) } else { String::new() };
        say!("{}{warn}", tr("sync.heartbeat", &[("skew", &format!("{skew:+}"))]));
    }
    if let Some(r) = &s.ruleset {
        say!("{}", tr("provision.ruleset", &[("summary", &ruleset_summary(r))]));
    }
    for warning in &s.warnings {
        say!("{}", tr("sync.warning", &[("warning", warning)]));
    }
    let [accepted, duplicate, conflict, rejected] = s.by_status;
    let parked = if s.parked > 0 { tr("sync.parked", &[("count", &s.parked.to_string())]) } else { String::new() };
    say!(
        "{}{parked}",
        tr(
            "sync.forwarded",
            &[
                ("count", &s.forwarded.to_string()),
                ("accepted", &accepted.to_string()),
                ("duplicate", &duplicate.to_string()),
                ("conflict", &conflict.to_string()),
                ("rejected", &rejected.to_string()),
            ]
        )
    );
    match result {
        Ok(()) => {
            say!("{}", tr("sync.done", &[]));
            Ok(ExitCode::SUCCESS)
        }
        Err(e) => Err(anyhow!(e)),
    }
}

fn scanner_list(json: bool) -> CliResult {
    let profiles = profile::builtin()?;
    let ports = transport::list_ports(&profiles)?;
    if json {
        let profiles: Vec<_> =
            profiles.iter().map(|p| serde_json::json!({"id": p.id, "vendor": p.vendor, "model": p.model})).collect();
        say!("{}", serde_json::json!({"ports": ports, "profiles": profiles}));
        return Ok(ExitCode::SUCCESS);
    }
    if ports.is_empty() {
        say!("{}", tr("scanner.no_ports", &[]));
    }
    for p in &ports {
        // Manufacturer and product are the device's own strings, shown as it reports them.
        let usb = p.usb.as_ref().map_or_else(
            || tr("scanner.not_usb", &[]),
            |u| {
                let serial =
                    u.serial_number.as_deref().map(|s| tr("scanner.serial", &[("serial", s)])).unwrap_or_default();
                format!(
                    "USB {}:{} `{} {}`{serial}",
                    u.vid,
                    u.pid,
                    u.manufacturer.as_deref().unwrap_or("?"),
                    u.product.as_deref().unwrap_or("?"),
                )
            },
        );
        // Profile ids are what `--profile` takes: quoted like commands.
        let matched = if p.profiles.is_empty() {
            tr("scanner.no_profile", &[])
        } else {
            format!("`{}`", p.profiles.join("`, `"))
        };
        say!("{}  {usb}  -> {matched}", p.port);
        for link in &p.by_id {
            say!("    {link}");
        }
    }
    say!("\n{}", tr("scanner.profiles", &[]));
    for p in &profiles {
        say!("  {} `{} {}`", crate::report::pad(&format!("`{}`", p.id), 30, false), p.vendor, p.model);
    }
    Ok(ExitCode::SUCCESS)
}

fn scanner_test(port: &str, profile_id: &str, count: Option<u64>, timeout: f64, json: bool) -> CliResult {
    let profile = profile::find(profile_id).map_err(usage)?;
    if !(timeout.is_finite() && timeout > 0.0) {
        return Err(usage(anyhow!(tr("scanner.bad_timeout", &[("timeout", &timeout.to_string())]))));
    }
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs_f64(timeout.min(1e9));
    let scanner = Scanner::spawn(PortSpec::parse(port), profile);
    let mut delivered = 0u64;
    let mut out = std::io::stdout().lock();
    while count.is_none_or(|n| delivered < n) {
        let left = deadline.saturating_duration_since(std::time::Instant::now());
        if left.is_zero() {
            break;
        }
        let Some(event) = scanner.recv_timeout(left) else {
            continue;
        };
        let line = match event {
            ScannerEvent::Connected { port } => {
                eprintln!("{}", tr("scanner.connected", &[("port", &port)]));
                continue;
            }
            ScannerEvent::Unavailable { error } if error.needs_action() => {
                return Err(anyhow!(error.text().render(lang())))
            }
            ScannerEvent::Unavailable { error } => {
                eprintln!("{}", tr("scanner.waiting", &[("error", &error.text().render(lang()))]));
                continue;
            }
            ScannerEvent::Disconnected { reason } => {
                eprintln!("{}", tr("scanner.disconnected", &[("reason", &reason.to_string())]));
                continue;
            }
            ScannerEvent::Frame { text, aim, bytes } => {
                delivered += 1;
                if json {
                    serde_json::json!({"event": "frame", "text": text, "aim": aim, "bytes": bytes}).to_string()
                } else {
                    let aim = aim.unwrap_or_else(|| tr("scanner.no_aim", &[]));
                    tr("scanner.frame", &[("aim", &aim), ("bytes", &bytes.to_string()), ("text", &text)])
                }
            }
            ScannerEvent::Discarded { reason, bytes } => {
                if json {
                    serde_json::json!({"event": "discarded", "reason": reason.as_str(), "bytes": bytes}).to_string()
                } else {
                    tr("scanner.discarded", &[("reason", reason.as_str()), ("bytes", &bytes.to_string())])
                }
            }
        };
        let _ = writeln!(out, "{line}");
        let _ = out.flush();
    }
    if let Some(n) = count.filter(|n| delivered < *n) {
        eprintln!(
            "{}",
            tr(
                "scanner.timeout",
                &[("timeout", &timeout.to_string()), ("delivered", &delivered.to_string()), ("count", &n.to_string())]
            )
        );
    }
    Ok(ExitCode::SUCCESS)
}

fn scanner_sheet(profile_id: &str, out: &Path) -> CliResult {
    let profile = profile::find(profile_id).map_err(usage)?;
    let sample = Issuer::from_seed(DEMO_SEED).code(&CodeSpec::new("SAMPLE-0001", "DEMO-DINING", SystemClock.now()));
    let img = sheet::render(&profile, &sample)?;
    img.save_with_format(out, image::ImageFormat::Png).with_context(|| format!("cannot write {}", out.display()))?;
    say!(
        "{}",
        tr(
            "scanner.sheet_wrote",
            &[("path", &out.display().to_string()), ("count", &profile.setup_codes.len().to_string())]
        )
    );
    Ok(ExitCode::SUCCESS)
}

/// A temporary directory removed on drop (std only; the demo needs no more).
fn outbox_list(config_path: &Path, state: Option<OutboxState>, json: bool) -> CliResult {
    let config = load_config(config_path)?;
    let agent = open_agent(&config)?;
    let tz = agent.timezone();
    let rows = agent.store().outbox_rows(state.map(OutboxState::as_str))?;
    let message = |answer: &Option<String>| -> Option<String> {
        let answer = answer.as_deref()?;
        let value: serde_json::Value = serde_json::from_str(answer).ok()?;
        Some(value["reason"].as_str().or(value["message"].as_str()).unwrap_or(answer).to_owned())
    };
    if json {
        let list: Vec<serde_json::Value> = rows
            .iter()
            .map(|r| {
                serde_json::json!({
                    "seq": r.seq, "event_id": r.event_id, "type": r.kind, "redemption_id": r.redemption_id,
                    "state": r.state, "created_at": rfc3339(r.created, &tz), "message": message(&r.answer),
                })
            })
            .collect();
        say!("{}", serde_json::Value::Array(list));
        return Ok(ExitCode::SUCCESS);
    }
    if rows.is_empty() {
        say!("{}", tr("outbox.empty", &[]));
        return Ok(ExitCode::SUCCESS);
    }
    // The event id stays whole: `outbox retry EVENT_ID` needs it.
    let pad = crate::report::pad;
    let word = |key: String, fallback: &str| {
        let text = tr(&key, &[]);
        if text.is_empty() {
            fallback.to_owned()
        } else {
            text
        }
    };
    say!(
        "{}  {}  {}  {}  {}  {}",
        pad(&tr("outbox.seq", &[]), 6, true),
        pad(&tr("outbox.event_id", &[]), 36, false),
        pad(&tr("outbox.type", &[]), 6, false),
        pad(&tr("outbox.state", &[]), 10, false),
        pad(&tr("outbox.created", &[]), 25, false),
        tr("outbox.message", &[])
    );
    for r in &rows {
        say!(
            "{}  {}  {}  {}  {}  {}",
            pad(&r.seq.to_string(), 6, true),
            pad(&r.event_id, 36, false),
            pad(&word(format!("outbox.type_{}", r.kind), &r.kind), 6, false),
            pad(&word(format!("outbox.state_{}", r.state), &r.state), 10, false),
            pad(&rfc3339(r.created, &tz), 25, false),
            message(&r.answer).unwrap_or_default()
        );
    }
    let parked = rows.iter().filter(|r| r.state == "parked").count();
    if parked > 0 {
        say!("{}", tr("outbox.parked", &[("count", &parked.to_string())]));
    }
    Ok(ExitCode::SUCCESS)
}

fn outbox_retry(config_path: &Path, event_id: Option<&str>) -> CliResult {
    let config = load_config(config_path)?;
    let mut agent = open_agent(&config)?;
    let count = agent.store_mut().unpark(event_id)?;
    match (count, event_id) {
        (0, Some(id)) => Err(usage(anyhow!(tr("outbox.not_parked", &[("id", id)])))),
        (0, None) => {
            say!("{}", tr("outbox.none_parked", &[]));
            Ok(ExitCode::SUCCESS)
        }
        (n, _) => {
            drop(agent);
            nudge_daemon(&config);
            say!("{}", tr("outbox.queued", &[("count", &n.to_string())]));
            Ok(ExitCode::SUCCESS)
        }
    }
}

/// Tells a running daemon (if any) to look at the ledger now: one authorized status
/// request to the address it bound. Its ledger owner then sees the change (a new rule
/// set, queued events), announces it and wakes the forwarder. Best effort, one second.
fn nudge_daemon(config: &Config) {
    use std::io::Read as _;
    let addr = std::fs::read_to_string(config.data_dir.join(crate::daemon::LISTEN_FILE))
        .ok()
        .and_then(|text| text.trim().parse::<std::net::SocketAddr>().ok());
    let token = std::fs::read_to_string(crate::secret::pos_token_path(&config.data_dir)).ok();
    let (Some(addr), Some(token)) = (addr, token) else {
        return;
    };
    let timeout = std::time::Duration::from_secs(1);
    let Ok(mut stream) = std::net::TcpStream::connect_timeout(&addr, timeout) else {
        return;
    };
    let _ = stream.set_read_timeout(Some(timeout));
    let _ = stream.set_write_timeout(Some(timeout));
    let request = format!(
        "GET /v1/status HTTP/1.1\r\nHost: {addr}\r\nAuthorization: Bearer {}\r\nConnection: close\r\n\r\n",
        token.trim()
    );
    if stream.write_all(request.as_bytes()).is_ok() {
        let _ = stream.read_to_end(&mut Vec::new());
    }
}

fn run_daemon(config_path: &Path, args: RunArgs) -> CliResult {
    let config = load_config(config_path)?;
    let clock: std::sync::Arc<dyn crate::clock::Clock> = std::sync::Arc::new(SystemClock);
    let options = crate::daemon::RunOptions {
        listen: args.listen,
        scanner: args.scanner,
        profile: args.profile,
        extra_routes: None,
        config_path: Some(config_path.to_owned()),
    };
    // Checked before the ledger opens, so a refused address changes nothing.
    crate::daemon::listen_address(&config, options.listen.as_deref()).map_err(usage)?;
    let mut agent = open_agent_with(&config, Box::new(clock.clone()))?;
    // Decisions read indexed tables; they are used only once proven to be the signed text
    // (a mismatch is logged, and decisions refuse with no_ruleset).
    let _ = agent.check_derived_tables();
    match crate::daemon::run(&config, agent, clock, options) {
        Ok(()) => Ok(ExitCode::SUCCESS),
        Err(e @ crate::daemon::RunError::Config(_)) => Err(usage(e)),
        Err(e) => Err(e.into()),
    }
}

fn pos_token(config_path: &Path, rotate: bool) -> CliResult {
    let config = load_config(config_path)?;
    let path = crate::secret::pos_token_path(&config.data_dir);
    let token = if rotate {
        crate::secret::rotate_pos_token(&config.data_dir).with_context(|| format!("cannot write {}", path.display()))?
    } else {
        crate::secret::ensure_pos_token(&config.data_dir)
            .with_context(|| format!("cannot write {}", path.display()))?;
        std::fs::read_to_string(&path).with_context(|| format!("cannot read {}", path.display()))?.trim().to_owned()
    };
    say!("{token}");
    Ok(ExitCode::SUCCESS)
}

fn manager_pin_set(config_path: &Path) -> CliResult {
    let config = load_config(config_path)?;
    let mut line = String::new();
    std::io::stdin().read_line(&mut line).context("reading the PIN from standard input")?;
    let pin = line.trim_end_matches(['\r', '\n']);
    crate::secret::check_pin(pin).map_err(|m| usage(anyhow!("{m}; nothing was changed")))?;
    let path = config.data_dir.join(crate::secret::MANAGER_PIN_FILE);
    crate::secret::write_secret(&path, crate::secret::hash_pin(pin).as_bytes())
        .with_context(|| format!("cannot write {}", path.display()))?;
    eprintln!("manager PIN set (only its hash is kept, in {}); a running daemon uses it at once", path.display());
    Ok(ExitCode::SUCCESS)
}

fn cashier_url(config_path: &Path) -> CliResult {
    let config = load_config(config_path)?;
    // The address the daemon really bound (`run --listen` may differ from the config).
    let bound = std::fs::read_to_string(config.data_dir.join(crate::daemon::LISTEN_FILE))
        .ok()
        .and_then(|text| text.trim().parse::<std::net::SocketAddr>().ok());
    let addr = match bound {
        Some(addr) => addr,
        None => crate::daemon::listen_address(&config, None).map_err(usage)?,
    };
    let expires = SystemClock.now() + jiff::SignedDuration::from_mins(10);
    let token = crate::secret::new_cashier_link(&config.data_dir, expires).with_context(|| {
        format!("cannot write {}", config.data_dir.join(crate::secret::CASHIER_LINK_FILE).display())
    })?;
    let host =
        if addr.ip().is_unspecified() { std::net::SocketAddr::from(([127, 0, 0, 1], addr.port())) } else { addr };
    say!("http://{host}/cashier/open?token={token}");
    Ok(ExitCode::SUCCESS)
}

struct TempDir(PathBuf);

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn tempdir() -> CliResult<TempDir> {
    let mut nonce = [0u8; 8];
    getrandom::fill(&mut nonce).map_err(|e| anyhow!("no randomness for a temporary directory: {e}"))?;
    let dir = std::env::temp_dir().join(format!("redeemd-demo-{}", u64::from_le_bytes(nonce)));
    std::fs::create_dir_all(&dir).with_context(|| format!("cannot create {}", dir.display()))?;
    Ok(TempDir(dir))
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
}
