//! `redeemd doctor`: what an installer needs to know about a terminal, each finding ok, a
//! warning or a problem with one line of what to do. Exit 0 when nothing is a problem.
//!
//! The model ([`Finding`], [`Report`]) and the judgements (`judge_*`) are pure: values
//! in, findings out, unit-tested here. [`examine`] gathers the values: the config, file
//! modes and owners, the ledger opened read-only (`quick_check`, stamp, derived tables
//! against the signed text), a running daemon's `/v1/status`, upstream step by step
//! (DNS, TCP, TLS with the configured CA, the token, by one heartbeat), the scanner port,
//! disk space and the systemd service. It never opens the ledger for writing, never
//! opens the scanner port, never prints a secret, and works on a half-set-up terminal:
//! each check that cannot run says why and the others go on.

use crate::clock::{rfc3339, Clock};
use crate::config::{self, Config, ConfigError};
use crate::store::{Store, StoreError};
use jiff::{SignedDuration, Timestamp};
use serde::Serialize;
use serde_json::{json, Value};
use std::os::unix::fs::{MetadataExt as _, PermissionsExt as _};
use std::path::{Path, PathBuf};
use std::time::Duration;

/// The account the packaged service runs as (`packaging/redeemd.sysusers`).
pub const SERVICE_USER: &str = "redeemd";
/// Free space under which the ledger is at risk.
const DISK_PROBLEM: u64 = 100 << 20;
const DISK_WARNING: u64 = 1 << 30;
/// A rule set that expires sooner than this is a warning.
const EXPIRY_WARNING: SignedDuration = SignedDuration::from_hours(24);
/// No contact with upstream for longer than this is a warning.
const CONTACT_WARNING: SignedDuration = SignedDuration::from_hours(24);
/// Network steps give up after this long.
const NET_TIMEOUT: Duration = Duration::from_secs(5);

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Level {
    Ok,
    Warning,
    Problem,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Finding {
    /// Which check: `config`, `files`, `ledger`, `ruleset`, `clock`, `upstream.dns`, … .
    pub check: &'static str,
    #[serde(rename = "status")]
    pub level: Level,
    pub message: String,
    /// One line of what to do; `None` when nothing needs doing.
    pub fix: Option<String>,
}

impl Finding {
    pub fn ok(check: &'static str, message: impl Into<String>) -> Finding {
        Finding { check, level: Level::Ok, message: message.into(), fix: None }
    }

    pub fn warning(check: &'static str, message: impl Into<String>, fix: impl Into<String>) -> Finding {
        Finding { check, level: Level::Warning, message: message.into(), fix: Some(fix.into()) }
    }

    pub fn problem(check: &'static str, message: impl Into<String>, fix: impl Into<String>) -> Finding {
        Finding { check, level: Level::Problem, message: message.into(), fix: Some(fix.into()) }
    }
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Report {
    pub findings: Vec<Finding>,
}

impl Report {
    fn push(&mut self, finding: Finding) {
        self.findings.push(finding);
    }

    pub fn count(&self, level: Level) -> usize {
        self.findings.iter().filter(|f| f.level == level).count()
    }

    /// 0 when nothing is a problem, else 3 (warnings alone do not fail).
    pub fn exit_code(&self) -> u8 {
        if self.count(Level::Problem) > 0 {
            3
        } else {
            0
        }
    }

    pub fn to_json(&self) -> Value {
        json!({
            "ok": self.count(Level::Problem) == 0,
            "problems": self.count(Level::Problem),
            "warnings": self.count(Level::Warning),
            "findings": self.findings,
        })
    }

    pub fn to_text(&self) -> String {
        let mut out = String::new();
        for f in &self.findings {
            let tag = match f.level {
                Level::Ok => "ok     ",
                Level::Warning => "WARNING",
                Level::Problem => "PROBLEM",
            };
            out.push_str(&format!("{tag}  {:<14} {}\n", f.check, f.message));
            if let Some(fix) = &f.fix {
                out.push_str(&format!("{:<24}-> {fix}\n", ""));
            }
        }
        let (problems, warnings) = (self.count(Level::Problem), self.count(Level::Warning));
        out.push_str(&match (problems, warnings) {
            (0, 0) => "\nall checks passed\n".to_owned(),
            (0, w) => format!("\nno problem, {w} warning(s)\n"),
            (p, w) => {
                format!("\n{p} problem(s), {w} warning(s): fix the problems above, then run `redeemd doctor` again\n")
            }
        });
        out
    }
}

// ------------------------------------------------------------ pure judgements

/// A secret file (token, pos-token, PIN hash) must be readable by its owner only, and
/// owned by the account the daemon runs as.
pub fn judge_secret(name: &str, path: &Path, mode: u32, owner: u32, runner: &Runner) -> Finding {
    let shown = path.display();
    if mode & 0o077 != 0 {
        return Finding::problem(
            "files",
            format!("{name} {shown} is mode {:04o}: other accounts can read it", mode & 0o7777),
            format!("chmod 600 {shown}"),
        );
    }
    if owner != runner.uid && runner.uid != 0 {
        return Finding::problem(
            "files",
            format!("{name} {shown} belongs to uid {owner}, but the daemon runs as {}", runner.name),
            format!("chown {} {shown}", runner.name),
        );
    }
    Finding::ok("files", format!("{name} {shown} is mode 0600"))
}

/// The terminal's clock against a trusted time (upstream's answer).
pub fn judge_skew(source: &str, skew_s: i64) -> Finding {
    if skew_s.abs() > crate::sync::CLOCK_SKEW_LIMIT {
        Finding::problem(
            "clock",
            format!(
                "this terminal's clock is {skew_s:+} s off {source} (more than {} s): coupons may be refused or accepted wrongly",
                crate::sync::CLOCK_SKEW_LIMIT
            ),
            "set the time: `timedatectl set-ntp true` (or `date -s …`), then run doctor again",
        )
    } else {
        Finding::ok("clock", format!("within {} s of {source}", skew_s.abs()))
    }
}

/// The rule set in force: the clock against its `issued_at`, its expiry.
pub fn judge_ruleset(
    now: Timestamp,
    version: u64,
    issued_at: Timestamp,
    expires_at: Timestamp,
    tz: &jiff::tz::TimeZone,
) -> Vec<Finding> {
    let mut out = Vec::new();
    if now < issued_at - SignedDuration::from_secs(300) {
        out.push(Finding::problem(
            "clock",
            format!(
                "this terminal's clock ({}) is before rule set {version} was issued ({}): decisions say clock_invalid",
                rfc3339(now, tz),
                rfc3339(issued_at, tz)
            ),
            "set the time: `timedatectl set-ntp true` (or `date -s …`)",
        ));
    }
    let left = expires_at - now;
    let text = format!("version {version}, issued {}, expires {}", rfc3339(issued_at, tz), rfc3339(expires_at, tz));
    out.push(if left <= SignedDuration::ZERO {
        Finding::problem(
            "ruleset",
            format!("{text}: EXPIRED, every code is refused (ruleset_stale)"),
            "get a fresh rule set: `redeemd sync --once` (or `redeemd ruleset import FILE`)",
        )
    } else if left < EXPIRY_WARNING {
        Finding::warning(
            "ruleset",
            format!("{text}: expires in {} h", left.as_hours()),
            "check that refresh works (`redeemd sync --once`) before it expires",
        )
    } else {
        Finding::ok("ruleset", format!("{text} ({} days left)", left.as_hours() / 24))
    });
    out
}

pub fn judge_disk(path: &Path, available: u64, total: u64) -> Finding {
    let mib = available >> 20;
    let text = format!("{} MiB free of {} MiB on {}", mib, total >> 20, path.display());
    if available < DISK_PROBLEM {
        Finding::problem("disk", text, "free disk space: the ledger must be able to grow (journalctl --vacuum-size=…)")
    } else if available < DISK_WARNING || (total > 0 && available < total / 20) {
        Finding::warning("disk", text, "free some disk space soon")
    } else {
        Finding::ok("disk", text)
    }
}

pub fn judge_quick_check(path: &Path, lines: &[String]) -> Finding {
    if lines.len() == 1 && lines[0] == "ok" {
        Finding::ok("ledger", format!("{} passes quick_check", path.display()))
    } else {
        Finding::problem(
            "ledger",
            format!("{} is damaged: {}", path.display(), lines.join("; ")),
            "stop the daemon, move the file aside and `redeemd restore` the latest backup",
        )
    }
}

// ------------------------------------------------------------ who runs the daemon

/// The account the daemon runs as: `redeemd` for the system config when that user
/// exists (the package's service), else whoever runs doctor (a terminal run by hand).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Runner {
    pub name: String,
    pub uid: u32,
    pub gids: Vec<u32>,
    pub service: bool,
}

impl Runner {
    pub fn find(config_path: &Path) -> Runner {
        use nix::unistd::{getegid, geteuid, getgrouplist, getgroups, User};
        if config_path == Path::new(config::DEFAULT_PATH) {
            if let Ok(Some(user)) = User::from_name(SERVICE_USER) {
                let mut gids = vec![user.gid.as_raw()];
                if let Ok(name) = std::ffi::CString::new(SERVICE_USER) {
                    gids.extend(getgrouplist(&name, user.gid).unwrap_or_default().iter().map(|g| g.as_raw()));
                }
                return Runner { name: SERVICE_USER.into(), uid: user.uid.as_raw(), gids, service: true };
            }
        }
        let uid = geteuid();
        let name = User::from_uid(uid).ok().flatten().map_or_else(|| format!("uid {uid}"), |u| u.name);
        let mut gids = vec![getegid().as_raw()];
        gids.extend(getgroups().unwrap_or_default().iter().map(|g| g.as_raw()));
        Runner { name, uid: uid.as_raw(), gids, service: false }
    }

    /// Whether this account may read and write a file of this owner, group and mode.
    pub fn can_read_write(&self, uid: u32, gid: u32, mode: u32) -> bool {
        if self.uid == 0 {
            return true;
        }
        let bits = if uid == self.uid {
            mode >> 6
        } else if self.gids.contains(&gid) {
            mode >> 3
        } else {
            mode
        };
        bits & 0o6 == 0o6
    }
}

fn group_name(gid: u32) -> String {
    nix::unistd::Group::from_gid(nix::unistd::Gid::from_raw(gid))
        .ok()
        .flatten()
        .map_or_else(|| gid.to_string(), |g| g.name)
}

fn user_name(uid: u32) -> String {
    nix::unistd::User::from_uid(nix::unistd::Uid::from_raw(uid))
        .ok()
        .flatten()
        .map_or_else(|| uid.to_string(), |u| u.name)
}

// ------------------------------------------------------------ gathering

/// What the running daemon said, when one answers.
struct DaemonStatus {
    body: Value,
}

/// Runs every check for the terminal configured at `config_path`.
pub fn examine(config_path: &Path, clock: &dyn Clock) -> Report {
    let mut report = Report::default();
    let runner = Runner::find(config_path);
    let config = match Config::load(config_path) {
        Ok(config) => config,
        Err(e) => {
            let fix = match e {
                ConfigError::Missing(_) => {
                    "provision the terminal: `redeemd provision --upstream URL --enrollment-code CODE` \
                     (or `redeemd init …` for one run by hand)"
                }
                _ => "fix the file (`packaging/redeemd.toml` explains every key), or write it again with provision",
            };
            report.push(Finding::problem("config", e.to_string(), fix));
            service(&mut report, None);
            return report;
        }
    };
    let who = if runner.service { "the redeemd service user" } else { "this account, which runs the daemon by hand" };
    report.push(Finding::ok(
        "config",
        format!(
            "{} parses: merchant {}, {}; checked as {} ({who})",
            config_path.display(),
            config.merchant_id,
            config.upstream.as_ref().map_or("provisioned by hand".into(), |u| format!("terminal {}", u.terminal_id)),
            runner.name
        ),
    ));
    if let Ok(meta) = std::fs::metadata(config_path) {
        if meta.permissions().mode() & 0o022 != 0 {
            report.push(Finding::problem(
                "config",
                format!("{} is writable by other accounts (mode {:04o})", config_path.display(), meta.mode() & 0o7777),
                format!("chmod 644 {}", config_path.display()),
            ));
        }
    }
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build();
    let rt = match rt {
        Ok(rt) => rt,
        Err(e) => {
            report.push(Finding::problem("doctor", format!("cannot start the async runtime: {e}"), "report this"));
            return report;
        }
    };
    let daemon = rt.block_on(daemon_status(&config, &mut report));
    files(&config, &runner, &mut report);
    let ledger = ledger(&config, daemon.as_ref(), clock, &mut report);
    upstream(&config, &rt, daemon.as_ref(), ledger.as_ref(), clock, &mut report);
    scanner(&config, &runner, daemon.as_ref(), &mut report);
    disk(&config.data_dir, &mut report);
    service(&mut report, daemon.as_ref());
    report
}

/// Asks a running daemon (its bound address in `<data-dir>/listen`, the POS token) for
/// `/v1/status`. No answer means no daemon: the stale `listen` file stays harmless.
async fn daemon_status(config: &Config, report: &mut Report) -> Option<DaemonStatus> {
    let listen = config.data_dir.join(crate::daemon::LISTEN_FILE);
    let addr = std::fs::read_to_string(&listen).ok().and_then(|t| t.trim().parse::<std::net::SocketAddr>().ok());
    let Some(mut addr) = addr else {
        report.push(Finding::ok("daemon", "no daemon has run here yet (no listen file)"));
        return None;
    };
    if addr.ip().is_unspecified() {
        addr.set_ip(std::net::Ipv4Addr::LOCALHOST.into());
    }
    let token = std::fs::read_to_string(crate::secret::pos_token_path(&config.data_dir)).unwrap_or_default();
    let _ = rustls::crypto::ring::default_provider().install_default();
    let client = match reqwest::Client::builder().timeout(Duration::from_secs(3)).no_proxy().build() {
        Ok(c) => c,
        Err(_) => return None,
    };
    let reply = client.get(format!("http://{addr}/v1/status")).bearer_auth(token.trim()).send().await;
    match reply {
        Err(e) if e.is_connect() => {
            report.push(Finding::ok("daemon", format!("no daemon answers at {addr}: checked the files directly")));
            None
        }
        Err(e) => {
            report.push(Finding::warning(
                "daemon",
                format!("something at {addr} did not answer /v1/status: {e}"),
                "is the daemon stuck? `systemctl status redeemd` / `journalctl -u redeemd -e`",
            ));
            None
        }
        Ok(r) if r.status() == reqwest::StatusCode::UNAUTHORIZED => {
            report.push(Finding::warning(
                "daemon",
                format!("a daemon at {addr} refused this terminal's pos-token (another terminal's daemon?)"),
                "check which data directory the running daemon uses (`systemctl cat redeemd`)",
            ));
            None
        }
        Ok(r) => match r.json::<Value>().await {
            Ok(body) => {
                report.push(Finding::ok(
                    "daemon",
                    format!(
                        "redeemd run answers at {addr} (version {}): its /v1/status is used, the ledger is only read",
                        body["version"].as_str().unwrap_or("?")
                    ),
                ));
                Some(DaemonStatus { body })
            }
            Err(e) => {
                report.push(Finding::warning(
                    "daemon",
                    format!("{addr} answered /v1/status with something else: {e}"),
                    "is another program on the daemon's port? check [api] listen",
                ));
                None
            }
        },
    }
}

fn files(config: &Config, runner: &Runner, report: &mut Report) {
    let dir = &config.data_dir;
    let meta = match std::fs::metadata(dir) {
        Ok(meta) if meta.is_dir() => meta,
        Ok(_) => {
            report.push(Finding::problem(
                "files",
                format!("data-dir {} is not a directory", dir.display()),
                "fix data-dir in the config",
            ));
            return;
        }
        Err(e) => {
            report.push(Finding::problem(
                "files",
                format!("data-dir {} is missing ({e})", dir.display()),
                "provision the terminal (`redeemd provision …`) or fix data-dir in the config",
            ));
            return;
        }
    };
    if meta.uid() != runner.uid {
        let text = format!(
            "data-dir {} belongs to {}, but the daemon runs as {}",
            dir.display(),
            user_name(meta.uid()),
            runner.name
        );
        let fix = format!("chown -R {0}:{0} {1}", runner.name, dir.display());
        report.push(if runner.service || !runner.can_read_write(meta.uid(), meta.gid(), meta.mode()) {
            Finding::problem("files", text, fix)
        } else {
            Finding::warning("files", text, fix)
        });
    } else {
        report.push(Finding::ok("files", format!("data-dir {} belongs to {}", dir.display(), runner.name)));
    }
    // The ledger and its WAL files: the daemon must be able to write all three.
    for suffix in ["", "-wal", "-shm"] {
        let path = PathBuf::from(format!("{}{suffix}", config.database_path().display()));
        if let Ok(m) = std::fs::metadata(&path) {
            if !runner.can_read_write(m.uid(), m.gid(), m.mode()) {
                report.push(Finding::problem(
                    "files",
                    format!(
                        "{} belongs to {} (mode {:04o}): the daemon ({}) cannot write it",
                        path.display(),
                        user_name(m.uid()),
                        m.mode() & 0o7777,
                        runner.name
                    ),
                    format!("chown {0}:{0} {1}", runner.name, path.display()),
                ));
            }
        }
    }
    let mut secrets: Vec<(&str, PathBuf, bool)> = vec![
        ("pos-token", crate::secret::pos_token_path(dir), false),
        ("manager PIN hash", dir.join(crate::secret::MANAGER_PIN_FILE), false),
    ];
    if let Some(token) = config.token_path() {
        secrets.insert(0, ("token", token, true));
    }
    for (name, path, required) in secrets {
        match std::fs::metadata(&path) {
            Ok(m) => report.push(judge_secret(name, &path, m.mode(), m.uid(), runner)),
            Err(_) if required => report.push(Finding::problem(
                "files",
                format!("the upstream {name} {} is missing: the terminal cannot sync", path.display()),
                "provision again (`redeemd provision …` with a new enrollment code)",
            )),
            Err(_) if name == "pos-token" => report.push(Finding::warning(
                "files",
                format!("no pos-token yet ({})", path.display()),
                "`redeemd pos-token` makes one (the daemon's first start does too)",
            )),
            Err(_) => report.push(Finding::warning(
                "files",
                "no manager PIN set: the manager pages cannot be opened",
                "`redeemd manager-pin set` (reads the PIN from standard input)",
            )),
        }
    }
    let leftover = dir.join("enrollment.json");
    if leftover.exists() {
        report.push(Finding::warning(
            "files",
            format!("{} is left from an unfinished provision", leftover.display()),
            "run the same `redeemd provision …` again: it completes from that answer",
        ));
    }
    let keys = config.trust_keys_path();
    match std::fs::read_to_string(&keys)
        .map_err(|e| e.to_string())
        .and_then(|t| crate::ruleset::parse_anchors(&t).map_err(|e| e.to_string()))
    {
        Ok(anchors) => report
            .push(Finding::ok("files", format!("{} holds {} rule-set trust key(s)", keys.display(), anchors.len()))),
        Err(e) => report.push(Finding::problem(
            "files",
            format!("rule-set trust keys {}: {e}", keys.display()),
            "provision again, or `redeemd init --force …` with the issuer's trust-key file",
        )),
    }
}

/// What the ledger told doctor, for the upstream heartbeat and clock checks.
struct LedgerFacts {
    ruleset_version: Option<u64>,
    unsynced: u64,
    last_contact: Option<Timestamp>,
    last_skew: Option<i64>,
}

fn ledger(
    config: &Config,
    daemon: Option<&DaemonStatus>,
    clock: &dyn Clock,
    report: &mut Report,
) -> Option<LedgerFacts> {
    let path = config.database_path();
    let store = match Store::open_read_only(&path) {
        Ok(store) => store,
        Err(StoreError::Missing(_)) => {
            report.push(Finding::problem(
                "ledger",
                format!("no ledger at {}", path.display()),
                "provision the terminal (or `redeemd restore BACKUP` onto a replacement)",
            ));
            return None;
        }
        Err(e @ (StoreError::Foreign { .. } | StoreError::TooNew { .. })) => {
            report.push(Finding::problem(
                "ledger",
                e.to_string(),
                "restore the ledger from a backup (`redeemd restore FILE`)",
            ));
            return None;
        }
        Err(e) => {
            report.push(Finding::problem(
                "ledger",
                format!("cannot open {}: {e}", path.display()),
                "if the file is damaged, stop the daemon and `redeemd restore` the latest backup",
            ));
            return None;
        }
    };
    match store.quick_check() {
        Ok(lines) => report.push(judge_quick_check(&path, &lines)),
        Err(e) => report.push(Finding::problem(
            "ledger",
            format!("{} cannot be checked: {e}", path.display()),
            "stop the daemon, move the file aside and `redeemd restore` the latest backup",
        )),
    }
    let now = clock.now();
    let tz = config.timezone();
    let (installed, problem) = match daemon {
        Some(d) => (
            d.body["ruleset"].as_object().map(|r| {
                let ts = |k: &str| r.get(k).and_then(Value::as_str).and_then(|t| t.parse::<Timestamp>().ok());
                (r.get("version").and_then(Value::as_u64).unwrap_or(0), ts("issued_at"), ts("expires_at"))
            }),
            d.body["ruleset_problem"].as_str().map(str::to_owned),
        ),
        None => {
            let installed = store.ruleset();
            let problem = derived_tables_problem(config, &store);
            match installed {
                Ok(i) => (i.map(|i| (i.rules.version, Some(i.rules.issued_at), Some(i.rules.expires_at))), problem),
                Err(e) => (None, Some(format!("the stored rule set cannot be read: {e}"))),
            }
        }
    };
    match &problem {
        Some(p) => report.push(Finding::problem(
            "ledger",
            p.clone(),
            "install the rule set again (`redeemd sync --once` or `redeemd ruleset import FILE`)",
        )),
        None if installed.is_some() => {
            report.push(Finding::ok("ledger", "the campaign and revoked tables match the signed rule set"))
        }
        None => {}
    }
    match installed {
        Some((version, Some(issued), Some(expires))) => {
            for f in judge_ruleset(now, version, issued, expires, &tz) {
                report.push(f);
            }
        }
        Some((version, _, _)) => report.push(Finding::warning(
            "ruleset",
            format!("version {version}: the daemon did not say when it was issued or expires"),
            "`redeemd ruleset show`",
        )),
        None if problem.is_none() => report.push(Finding::problem(
            "ruleset",
            "no rule set installed: every code is refused (no_ruleset)",
            if config.upstream.is_some() {
                "`redeemd sync --once` fetches it from upstream"
            } else {
                "`redeemd ruleset import FILE` with the issuer's signed rule set"
            },
        )),
        None => {}
    }
    let unsynced = daemon
        .and_then(|d| d.body["unsynced"].as_u64())
        .or_else(|| store.unsynced().ok().map(|u| u.count))
        .unwrap_or(0);
    let last_contact = store.last_contact().ok().flatten();
    let last_skew = store.meta(crate::sync::META_CLOCK_SKEW).ok().flatten().and_then(|s| s.parse().ok());
    Some(LedgerFacts { ruleset_version: installed.map(|(v, _, _)| v), unsynced, last_contact, last_skew })
}

/// The derived tables against the verified JWS (what the daemon proves at start).
fn derived_tables_problem(config: &Config, store: &Store) -> Option<String> {
    let anchors =
        std::fs::read_to_string(config.trust_keys_path()).ok().and_then(|t| crate::ruleset::parse_anchors(&t).ok())?;
    match store.prove_derived_tables(&anchors).ok()? {
        crate::store::DerivedProof::Nothing | crate::store::DerivedProof::Proven { .. } => None,
        crate::store::DerivedProof::Unverified { version, refusal } => {
            Some(format!("the stored rule set {version} no longer verifies against the trust keys: {refusal}"))
        }
        crate::store::DerivedProof::Differs { version } => Some(format!(
            "the ledger's campaign/revoked tables differ from the signed rule set {version} (edited?): \
             decisions refuse with no_ruleset"
        )),
    }
}

fn upstream(
    config: &Config,
    rt: &tokio::runtime::Runtime,
    daemon: Option<&DaemonStatus>,
    facts: Option<&LedgerFacts>,
    clock: &dyn Clock,
    report: &mut Report,
) {
    let Some(up) = &config.upstream else {
        report.push(Finding::ok("upstream", "provisioned by hand: no upstream to reach, nothing is forwarded"));
        return;
    };
    if let Some(contact) = facts.and_then(|f| f.last_contact) {
        let age = clock.now() - contact;
        if age > CONTACT_WARNING {
            report.push(Finding::warning(
                "upstream",
                format!("last contact with upstream {} h ago", age.as_hours()),
                "see below why it cannot be reached; `redeemd sync --once` says what fails",
            ));
        }
    }
    let url = match crate::upstream::check_url(&up.url) {
        Ok(url) => url,
        Err(e) => {
            report.push(Finding::problem("upstream", e.to_string(), "fix upstream.url in the config"));
            return;
        }
    };
    let host = url.host_str().unwrap_or_default().trim_matches(['[', ']']).to_owned();
    let port = url.port_or_known_default().unwrap_or(443);
    use std::net::ToSocketAddrs as _;
    let addrs: Vec<std::net::SocketAddr> = match (host.as_str(), port).to_socket_addrs() {
        Ok(a) => a.collect(),
        Err(e) => {
            report.push(Finding::problem(
                "upstream.dns",
                format!("cannot resolve {host}: {e}"),
                "check the network and DNS (`resolvectl query HOST`, /etc/resolv.conf)",
            ));
            return;
        }
    };
    report.push(Finding::ok(
        "upstream.dns",
        format!("{host} resolves to {}", addrs.iter().map(|a| a.ip().to_string()).collect::<Vec<_>>().join(", ")),
    ));
    let connected = addrs.iter().find_map(|a| std::net::TcpStream::connect_timeout(a, NET_TIMEOUT).ok().map(|_| *a));
    match connected {
        Some(a) => report.push(Finding::ok("upstream.tcp", format!("TCP connection to {a} works"))),
        None => {
            report.push(Finding::problem(
                "upstream.tcp",
                format!("no TCP connection to {host} port {port} within {} s", NET_TIMEOUT.as_secs()),
                "check the network, firewall and proxy between this terminal and upstream",
            ));
            return;
        }
    }
    let tls = url.scheme() == "https";
    let trust = match (&up.ca_file, up.system_roots) {
        (Some(ca), true) => format!("the CA {} and the system roots", ca.display()),
        (Some(ca), false) => format!("the CA {} only", ca.display()),
        (None, _) => "the system roots".to_owned(),
    };
    let ca_pem = match up.ca_file.as_deref().map(std::fs::read).transpose() {
        Ok(pem) => pem,
        Err(e) => {
            report.push(Finding::problem(
                "upstream.tls",
                format!(
                    "cannot read the upstream CA {}: {e}",
                    up.ca_file.as_deref().unwrap_or(Path::new("")).display()
                ),
                "provision again with `--ca FILE` (upstream's CA certificate)",
            ));
            return;
        }
    };
    let token = config.token_path().and_then(|p| std::fs::read_to_string(p).ok()).map(|t| t.trim().to_owned());
    let endpoint = crate::upstream::Endpoint {
        base_url: up.url.clone(),
        ca_pem,
        system_roots: up.system_roots,
        timeout: Duration::from_secs(up.timeout_secs.clamp(1, 10)),
    };
    let client = match crate::upstream::Upstream::new(&endpoint, token.clone()) {
        Ok(c) => c,
        Err(e) => {
            report.push(Finding::problem(
                "upstream.tls",
                format!("{e} ({})", up.ca_file.as_deref().unwrap_or(Path::new("")).display()),
                "provision again with `--ca FILE` holding upstream's CA certificate (PEM)",
            ));
            return;
        }
    };
    if token.is_none() {
        report.push(Finding::problem(
            "upstream.token",
            "no token: upstream cannot be asked",
            "provision again (`redeemd provision …` with a new enrollment code)",
        ));
        return;
    }
    let scanner = daemon.and_then(|d| d.body["scanner"]["state"].as_str()).unwrap_or("not_running").to_owned();
    let now = clock.now();
    let body = json!({
        "terminal_id": up.terminal_id, "agent_version": crate::upstream::AGENT_VERSION,
        "ruleset_version": facts.and_then(|f| f.ruleset_version), "unsynced": facts.map_or(0, |f| f.unsynced),
        "scanner": scanner, "time": rfc3339(now, &config.timezone()),
    });
    let answer = rt.block_on(client.heartbeat(&body));
    use crate::upstream::UpstreamError as E;
    let tls_ok = || {
        if tls {
            Finding::ok("upstream.tls", format!("TLS to {host} verified against {trust}"))
        } else {
            Finding::ok("upstream.tls", "plain http:// to a loopback host: no TLS")
        }
    };
    match answer {
        Ok(server_time) => {
            report.push(tls_ok());
            report.push(Finding::ok(
                "upstream.token",
                format!("upstream accepts terminal {}'s token (heartbeat answered)", up.terminal_id),
            ));
            // Measured against the middle of the exchange would be finer; 300 s is coarse.
            let skew = (clock.now() - server_time).as_secs();
            report.push(judge_skew("upstream's time", skew));
            return;
        }
        Err(E::Tls(m)) => report.push(Finding::problem(
            "upstream.tls",
            format!("{m} (trusting {trust})"),
            "provision again with `--ca FILE` holding upstream's CA, or fix the clock if the certificate seems expired",
        )),
        Err(E::Unauthorized) => {
            report.push(tls_ok());
            report.push(Finding::problem(
                "upstream.token",
                format!("upstream refused terminal {}'s token (401)", up.terminal_id),
                "re-provision: `redeemd provision …` with a new enrollment code",
            ));
        }
        Err(e) => {
            report.push(tls_ok());
            report.push(Finding::problem(
                "upstream.token",
                format!("upstream did not answer the heartbeat: {e}"),
                "upstream may be down; `redeemd sync --once` tries again and says what fails",
            ));
        }
    }
    // No fresh server time: fall back to what the last heartbeat saw.
    let recorded = daemon.and_then(|d| d.body["clock_warning"].as_str().map(str::to_owned)).or_else(|| {
        facts.and_then(|f| f.last_skew).map(|s| format!("at the last heartbeat this clock was {s:+} s off upstream's"))
    });
    if let Some(text) = recorded {
        report.push(Finding::warning("clock", text, "set the time: `timedatectl set-ntp true`"));
    }
}

fn scanner(config: &Config, runner: &Runner, daemon: Option<&DaemonStatus>, report: &mut Report) {
    if let Some(d) = daemon {
        let s = &d.body["scanner"];
        let port = s["port"].as_str().unwrap_or("?");
        let profile = s["profile"].as_str().unwrap_or("?");
        report.push(match s["state"].as_str() {
            Some("connected") => Finding::ok("scanner", format!("the daemon reads the scanner on {port} (profile {profile})")),
            Some("none") => Finding::ok("scanner", "no scanner configured (port = none): the till sends the codes"),
            _ => Finding::problem(
                "scanner",
                format!("the daemon has no scanner on {port} (profile {profile})"),
                "plug the scanner in (USB serial / CDC mode: see `redeemd scanner sheet`); `redeemd scanner list` shows ports",
            ),
        });
        return;
    }
    let section = config.scanner.clone().unwrap_or_default();
    let port = section.port.unwrap_or_else(|| "auto".to_owned());
    let profile_id = section.profile.unwrap_or_else(|| crate::daemon::DEFAULT_PROFILE.to_owned());
    if port == "none" {
        report.push(Finding::ok("scanner", "no scanner configured (port = none): the till sends the codes"));
        return;
    }
    let profile = match crate::scanner::profile::load(&profile_id) {
        Ok(p) => p,
        Err(e) => {
            report.push(Finding::problem(
                "scanner",
                format!("firmware profile {profile_id}: {e}"),
                "set [scanner] profile to an id from `redeemd scanner list`",
            ));
            return;
        }
    };
    let profiles = crate::scanner::profile::builtin().unwrap_or_default();
    let ports = crate::scanner::transport::list_ports(&profiles);
    let path = if port == "auto" {
        let listed = match &ports {
            Ok(p) => p,
            Err(e) => {
                report.push(Finding::problem(
                    "scanner",
                    format!("port auto: {e}"),
                    "give the port's path in [scanner] port",
                ));
                return;
            }
        };
        match crate::scanner::transport::resolve_auto(&profile, listed) {
            Ok(p) => p,
            Err(e) => {
                report.push(Finding::problem(
                    "scanner",
                    format!("port auto: {e}"),
                    "plug the scanner in (in USB serial / CDC mode: `redeemd scanner sheet`), or set [scanner] port = \"none\" if the till reads codes itself",
                ));
                return;
            }
        }
    } else {
        PathBuf::from(&port)
    };
    let meta = match std::fs::metadata(&path) {
        Ok(m) => m,
        Err(_) => {
            report.push(Finding::problem(
                "scanner",
                format!("the configured scanner port {} is missing", path.display()),
                "plug the scanner in (USB serial / CDC mode), or fix [scanner] port (`redeemd scanner list` shows ports)",
            ));
            return;
        }
    };
    let canonical = std::fs::canonicalize(&path).unwrap_or_else(|_| path.clone());
    let listed = ports.as_ref().ok().and_then(|ports| {
        ports.iter().find(|p| std::fs::canonicalize(&p.port).unwrap_or_else(|_| PathBuf::from(&p.port)) == canonical)
    });
    let usb = listed.and_then(|p| p.usb.as_ref());
    match usb {
        Some(u) => {
            let ids = (u16::from_str_radix(&u.vid, 16), u16::from_str_radix(&u.pid, 16));
            let matches = matches!(ids, (Ok(v), Ok(p)) if profile.matches_usb(v, p));
            if profile.usb.is_empty() || matches {
                report.push(Finding::ok(
                    "scanner",
                    format!("{} is USB {}:{} (profile {profile_id})", path.display(), u.vid, u.pid),
                ));
            } else {
                report.push(Finding::warning(
                    "scanner",
                    format!(
                        "{} is USB {}:{}, which profile {profile_id} does not name ({})",
                        path.display(),
                        u.vid,
                        u.pid,
                        profile
                            .usb
                            .iter()
                            .map(|u| format!("{:04x}:{:04x}", u.vid, u.pid))
                            .collect::<Vec<_>>()
                            .join(", ")
                    ),
                    "choose the profile for this scanner (`redeemd scanner list` shows which match)",
                ));
            }
        }
        None => report.push(Finding::ok(
            "scanner",
            format!("{} is present (not a USB device: its id is not checked)", path.display()),
        )),
    }
    if !runner.can_read_write(meta.uid(), meta.gid(), meta.mode()) {
        report.push(Finding::problem(
            "scanner",
            format!(
                "{} cannot open {} ({}:{} mode {:04o})",
                runner.name,
                path.display(),
                user_name(meta.uid()),
                group_name(meta.gid()),
                meta.mode() & 0o777
            ),
            format!(
                "add {} to group {} (`usermod -aG {} {}`), or install the package's udev rules",
                runner.name,
                group_name(meta.gid()),
                group_name(meta.gid()),
                runner.name
            ),
        ));
    } else {
        report.push(Finding::ok("scanner", format!("{} may open {}", runner.name, path.display())));
    }
}

// `c_ulong` and `fsblkcnt_t` are u32 on some targets: the conversions are not useless there.
#[allow(clippy::useless_conversion)]
fn disk(dir: &Path, report: &mut Report) {
    match nix::sys::statvfs::statvfs(dir) {
        Ok(s) => {
            let unit = u64::from(s.fragment_size());
            report.push(judge_disk(
                dir,
                u64::from(s.blocks_available()).saturating_mul(unit),
                u64::from(s.blocks()).saturating_mul(unit),
            ));
        }
        Err(e) => report.push(Finding::warning(
            "disk",
            format!("cannot measure free space on {}: {e}", dir.display()),
            "check the data directory",
        )),
    }
}

fn service(report: &mut Report, daemon: Option<&DaemonStatus>) {
    if !Path::new("/run/systemd/system").is_dir() {
        report.push(Finding::ok("service", "systemd is not running here: the service is not checked"));
        return;
    }
    let state = std::process::Command::new("systemctl")
        .args(["is-active", "redeemd.service"])
        .stderr(std::process::Stdio::null())
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_owned());
    report.push(match state.as_deref() {
        Ok("active") | Ok("activating") | Ok("reloading") => Finding::ok("service", "redeemd.service is active"),
        Ok("failed") => Finding::problem(
            "service",
            "redeemd.service has failed",
            "`journalctl -u redeemd -e` says why; then `systemctl restart redeemd`",
        ),
        Ok(other) if daemon.is_some() => {
            Finding::ok("service", format!("redeemd.service is {other}, but a daemon runs outside it (by hand)"))
        }
        Ok(other) => Finding::warning(
            "service",
            format!("redeemd.service is {}", if other.is_empty() { "unknown" } else { other }),
            "`systemctl enable --now redeemd` once the terminal is provisioned",
        ),
        Err(e) => Finding::warning("service", format!("cannot run systemctl: {e}"), "check systemd"),
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    fn runner(uid: u32) -> Runner {
        Runner { name: "redeemd".into(), uid, gids: vec![20], service: true }
    }

    #[test]
    fn exit_code_follows_problems_only() {
        let mut r = Report::default();
        r.push(Finding::ok("a", "fine"));
        r.push(Finding::warning("b", "hm", "look"));
        assert_eq!(r.exit_code(), 0);
        r.push(Finding::problem("c", "bad", "fix"));
        assert_eq!(r.exit_code(), 3);
        let json = r.to_json();
        assert_eq!(json["problems"], 1);
        assert_eq!(json["findings"][1]["status"], "warning");
        assert!(r.to_text().contains("PROBLEM  c"));
    }

    #[test]
    fn secrets_must_be_0600_and_the_runners() {
        let p = Path::new("/var/lib/redeemd/token");
        assert_eq!(judge_secret("token", p, 0o100600, 1000, &runner(1000)).level, Level::Ok);
        let loose = judge_secret("token", p, 0o100644, 1000, &runner(1000));
        assert_eq!(loose.level, Level::Problem);
        assert!(loose.fix.unwrap().contains("chmod 600"));
        let foreign = judge_secret("token", p, 0o100600, 0, &runner(1000));
        assert!(foreign.level == Level::Problem && foreign.fix.unwrap().starts_with("chown redeemd"));
    }

    #[test]
    fn clock_and_ruleset_judgements() {
        assert_eq!(judge_skew("upstream", 300).level, Level::Ok);
        assert_eq!(judge_skew("upstream", -301).level, Level::Problem);
        let tz = jiff::tz::TimeZone::UTC;
        let issued: Timestamp = "2026-11-28T00:00:00Z".parse().unwrap();
        let expires = issued + SignedDuration::from_hours(24 * 7);
        let at = |h: i64| issued + SignedDuration::from_hours(h);
        let levels = |now| judge_ruleset(now, 5, issued, expires, &tz).iter().map(|f| f.level).collect::<Vec<_>>();
        assert_eq!(levels(at(1)), [Level::Ok]);
        assert_eq!(levels(at(24 * 7 - 2)), [Level::Warning]);
        assert_eq!(levels(at(24 * 7)), [Level::Problem]);
        assert_eq!(levels(issued - SignedDuration::from_secs(301)), [Level::Problem, Level::Ok]);
        assert_eq!(levels(issued - SignedDuration::from_secs(300)), [Level::Ok]);
    }

    #[test]
    fn disk_thresholds() {
        let p = Path::new("/");
        assert_eq!(judge_disk(p, 50 << 20, 10 << 30).level, Level::Problem);
        assert_eq!(judge_disk(p, 500 << 20, 10 << 30).level, Level::Warning);
        assert_eq!(judge_disk(p, 5 << 30, 10 << 30).level, Level::Ok);
        assert_eq!(judge_disk(p, 2 << 30, 100 << 30).level, Level::Warning);
    }

    #[test]
    fn access_by_owner_group_other() {
        let r = runner(1000);
        assert!(r.can_read_write(1000, 5, 0o600));
        assert!(r.can_read_write(0, 20, 0o660));
        assert!(!r.can_read_write(0, 20, 0o640));
        assert!(!r.can_read_write(0, 5, 0o660));
        assert!(r.can_read_write(0, 5, 0o666));
        assert!(Runner { uid: 0, ..r }.can_read_write(5, 5, 0o000));
    }

    #[test]
    fn quick_check_lines() {
        let p = Path::new("/x");
        assert_eq!(judge_quick_check(p, &["ok".into()]).level, Level::Ok);
        assert_eq!(
            judge_quick_check(
                p,
                &["*** in database main ***".into(), "Page 3: btreeInitPage() returns error code 11".into()]
            )
            .level,
            Level::Problem
        );
    }
}
