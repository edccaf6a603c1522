//! `redeemd doctor`: what an installer needs to know about a terminal, each finding ok, a
//! warning or a problem with one line of what to do. Exit 0 when nothing is a problem.
//!
//! The model ([`Finding`], [`Report`]) and the judgements (`judge_*`) are pure: values
//! in, findings out, unit-tested here. [`examine`] gathers the values: the config, file
//! modes and owners, the ledger opened read-only (`quick_check`, stamp, derived tables
//! against the signed text), a running daemon's `/v1/status`, upstream step by step
//! (DNS, TCP, TLS with the configured CA, the token, by one heartbeat), the store hub
//! (`[store]`: its secrets, login, server, bucket and stream, a test claim), the scanner port,
//! disk space and the systemd service. It never opens the ledger for writing, never
//! opens the scanner port, never prints a secret, and works on a half-set-up terminal:
//! each check that cannot run says why and the others go on.

use crate::clock::{rfc3339, Clock};
use crate::config::{self, Config, ConfigError};
use crate::messages::{Language, Text};
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

/// `t!("key", name = value, …)`: the text `doctor.key` with its values.
macro_rules! t {
    ($key:literal $(, $name:ident = $value:expr)* $(,)?) => {
        Text::new(concat!("doctor.", $key), vec![$((stringify!($name), $value.to_string())),*])
    };
}

/// `th!("key", name = value, …)`: the text `doctor_hub.key` (the store hub's checks).
macro_rules! th {
    ($key:literal $(, $name:ident = $value:expr)* $(,)?) => {
        Text::new(concat!("doctor_hub.", $key), vec![$((stringify!($name), $value.to_string())),*])
    };
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Finding {
    /// Which check: `config`, `files`, `ledger`, `ruleset`, `clock`, `upstream.dns`, … .
    pub check: &'static str,
    #[serde(rename = "status")]
    pub level: Level,
    pub message: Text,
    /// One line of what to do; `None` when nothing needs doing.
    pub fix: Option<Text>,
}

impl Finding {
    pub fn ok(check: &'static str, message: Text) -> Finding {
        Finding { check, level: Level::Ok, message, fix: None }
    }

    pub fn warning(check: &'static str, message: Text, fix: Text) -> Finding {
        Finding { check, level: Level::Warning, message, fix: Some(fix) }
    }

    pub fn problem(check: &'static str, message: Text, fix: Text) -> Finding {
        Finding { check, level: Level::Problem, message, fix: Some(fix) }
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

    /// The JSON of [`Report::to_json`] (stable English, for scripts) with each finding
    /// also in `language` under `text` (level, check, message, fix) and the summary line:
    /// what the manager's page shows, in the page's language.
    pub fn to_page_json(&self, language: Language) -> Value {
        let mut value = self.to_json();
        if let Some(findings) = value["findings"].as_array_mut() {
            for (json, f) in findings.iter_mut().zip(&self.findings) {
                json["text"] = json!({
                    "level": level_word(language, f.level),
                    "check": check_name(language, f.check),
                    "message": f.message.render(language),
                    "fix": f.fix.as_ref().map(|fix| fix.render(language)),
                });
            }
        }
        value["language"] = json!(language.tag());
        value["summary"] = json!(self.summary(language));
        value
    }

    /// The last line: all passed, only warnings, or how many problems.
    fn summary(&self, language: Language) -> String {
        let say = |key: &str, values: &[(&str, &str)]| crate::messages::fill(language, key, values);
        let (problems, warnings) = (self.count(Level::Problem), self.count(Level::Warning));
        let (p, w) = (problems.to_string(), warnings.to_string());
        match (problems, warnings) {
            (0, 0) => say("doctor.all_passed", &[]),
            (0, _) => say("doctor.only_warnings", &[("warnings", &w)]),
            _ => say("doctor.problems", &[("problems", &p), ("warnings", &w)]),
        }
    }

    /// The findings for people, in `language`, columns padded by display width.
    pub fn to_text(&self, language: Language) -> String {
        use crate::report::pad;
        let mut out = String::new();
        for f in &self.findings {
            out.push_str(&format!(
                "{}  {} {}\n",
                pad(level_word(language, f.level), 7, false),
                pad(&check_name(language, f.check), 14, false),
                f.message.render(language)
            ));
            if let Some(fix) = &f.fix {
                out.push_str(&format!("{:<24}-> {}\n", "", fix.render(language)));
            }
        }
        out.push('\n');
        out.push_str(&self.summary(language));
        out.push('\n');
        out
    }
}

/// The level as a word of `language` (`OK`, `警告`, …).
fn level_word(language: Language, level: Level) -> &'static str {
    crate::messages::text(
        language,
        match level {
            Level::Ok => "doctor.level_ok",
            Level::Warning => "doctor.level_warning",
            Level::Problem => "doctor.level_problem",
        },
    )
}

/// The check's name in `language`; its id when the tables have no name for it.
fn check_name(language: Language, check: &str) -> String {
    let id = check.replace('.', "_");
    let mut name = crate::messages::text(language, &format!("doctor.check_{id}"));
    if name.is_empty() {
        name = crate::messages::text(language, &format!("doctor_hub.check_{id}"));
    }
    if name.is_empty() {
        check.to_owned()
    } else {
        name.to_owned()
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
            t!("secret_loose", name = name, path = shown, mode = format!("{:04o}", mode & 0o7777)),
            t!("fix_chmod_600", path = shown),
        );
    }
    if owner != runner.uid && runner.uid != 0 {
        return Finding::problem(
            "files",
            t!("secret_foreign", name = name, path = shown, owner = owner, runner = runner.name),
            t!("fix_chown", user = runner.name, path = shown),
        );
    }
    Finding::ok("files", t!("secret_ok", name = name, path = shown))
}

/// The terminal's clock against a trusted time (upstream's answer).
pub fn judge_skew(skew_s: i64) -> Finding {
    if skew_s.abs() > crate::clock::CLOCK_SKEW_LIMIT {
        Finding::problem(
            "clock",
            t!("skew_problem", skew = format!("{skew_s:+}"), limit = crate::clock::CLOCK_SKEW_LIMIT),
            t!("fix_set_time_again"),
        )
    } else {
        Finding::ok("clock", t!("skew_ok", skew = skew_s.abs()))
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
            t!("clock_before_ruleset", now = rfc3339(now, tz), version = version, issued = rfc3339(issued_at, tz)),
            t!("fix_set_time"),
        ));
    }
    let left = expires_at - now;
    let (issued, expires) = (rfc3339(issued_at, tz), rfc3339(expires_at, tz));
    out.push(if left <= SignedDuration::ZERO {
        Finding::problem(
            "ruleset",
            t!("ruleset_expired", version = version, issued = issued, expires = expires),
            t!("fix_fresh_ruleset"),
        )
    } else if left < EXPIRY_WARNING {
        Finding::warning(
            "ruleset",
            t!("ruleset_expires_soon", version = version, issued = issued, expires = expires, hours = left.as_hours()),
            t!("fix_check_refresh"),
        )
    } else {
        Finding::ok(
            "ruleset",
            t!("ruleset_ok", version = version, issued = issued, expires = expires, days = left.as_hours() / 24),
        )
    });
    out
}

pub fn judge_disk(path: &Path, available: u64, total: u64) -> Finding {
    let text = t!("disk", free = available >> 20, total = total >> 20, path = path.display());
    if available < DISK_PROBLEM {
        Finding::problem("disk", text, t!("fix_disk_now"))
    } else if available < DISK_WARNING || (total > 0 && available < total / 20) {
        Finding::warning("disk", text, t!("fix_disk_soon"))
    } else {
        Finding::ok("disk", text)
    }
}

/// The oldest nats-server whose KV buckets keep a TTL per key (limit markers).
const HUB_MIN_SERVER: (u32, u32) = (2, 11);

/// `(major, minor)` of a nats-server version (`2.15.1`, `v2.11.0-RC.1`).
fn server_version(text: &str) -> Option<(u32, u32)> {
    let mut parts = text.trim().trim_start_matches('v').split(['.', '-']);
    Some((parts.next()?.parse().ok()?, parts.next()?.parse().ok()?))
}

/// The store hub's server: JetStream answers (`jetstream` is the server's words when
/// not), and it is nats-server 2.11 or later.
pub fn judge_hub_server(version: Option<&str>, jetstream: Result<(), String>) -> Finding {
    let shown = version.unwrap_or("?");
    if let Err(error) = jetstream {
        return Finding::problem(
            "hub.server",
            th!("no_jetstream", version = shown, error = error),
            th!("fix_jetstream"),
        );
    }
    match version.and_then(server_version) {
        None => Finding::warning("hub.server", th!("server_unknown"), th!("fix_server_old")),
        Some(v) if v < HUB_MIN_SERVER => {
            Finding::problem("hub.server", th!("server_old", version = shown), th!("fix_server_old"))
        }
        Some(_) => Finding::ok("hub.server", th!("server_ok", version = shown)),
    }
}

/// The lane's redemptions not yet confirmed at the hub and events not yet published to
/// it: unconfirmed ones while the hub answers are a warning (the daemon settles them).
pub fn judge_hub_lane(unconfirmed: u64, unpublished: u64, reachable: bool) -> Finding {
    let text = th!("lane_counts", unconfirmed = unconfirmed, unpublished = unpublished);
    if unconfirmed > 0 && reachable {
        Finding::warning("hub.lane", text, th!("fix_lane_unconfirmed"))
    } else {
        Finding::ok("hub.lane", text)
    }
}

pub fn judge_quick_check(path: &Path, lines: &[String]) -> Finding {
    if lines.len() == 1 && lines[0] == "ok" {
        Finding::ok("ledger", t!("quick_check_ok", path = path.display()))
    } else {
        Finding::problem(
            "ledger",
            t!("ledger_damaged", path = path.display(), lines = lines.join("; ")),
            t!("fix_restore"),
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
                ConfigError::Missing(_) => t!("fix_provision"),
                _ => t!("fix_config_file"),
            };
            report.push(Finding::problem("config", e.text(), fix));
            service(&mut report, None);
            return report;
        }
    };
    let path = config_path.display();
    let (merchant, runner_name) = (&config.merchant_id, &runner.name);
    report.push(Finding::ok(
        "config",
        match (&config.upstream, runner.service) {
            (Some(u), true) => t!(
                "config_ok_service",
                path = path,
                merchant = merchant,
                terminal = u.terminal_id,
                runner = runner_name
            ),
            (Some(u), false) => t!(
                "config_ok_by_hand",
                path = path,
                merchant = merchant,
                terminal = u.terminal_id,
                runner = runner_name
            ),
            (None, true) => {
                t!("config_ok_unprovisioned_service", path = path, merchant = merchant, runner = runner_name)
            }
            (None, false) => t!("config_ok_unprovisioned", path = path, merchant = merchant, runner = runner_name),
        },
    ));
    if let Ok(meta) = std::fs::metadata(config_path) {
        if meta.permissions().mode() & 0o022 != 0 {
            report.push(Finding::problem(
                "config",
                t!("config_writable", path = path, mode = format!("{:04o}", meta.mode() & 0o7777)),
                t!("fix_chmod_644", path = path),
            ));
        }
    }
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build();
    let rt = match rt {
        Ok(rt) => rt,
        Err(e) => {
            report.push(Finding::problem("doctor", t!("no_runtime", error = e), t!("fix_report_this")));
            return report;
        }
    };
    let daemon = daemon_status(&config, &mut report);
    files(&config, &runner, &mut report);
    let ledger = ledger(&config, daemon.as_ref(), clock, &mut report);
    upstream(&config, &rt, daemon.as_ref(), ledger.as_ref(), clock, &mut report);
    hub(&config, &runner, &rt, daemon.as_ref(), clock, &mut report);
    scanner(&config, &runner, daemon.as_ref(), &mut report);
    disk(&config.data_dir, &mut report);
    service(&mut report, daemon.as_ref());
    report
}

/// Asks a running daemon for `/v1/status`, with the POS token, once it has proven that it
/// is this data dir's daemon ([`crate::local_daemon`]); the token is never sent to any
/// other listener, which is reported as another process holding the port. Nothing
/// listening means no daemon: the stale `listen` file stays harmless.
fn daemon_status(config: &Config, report: &mut Report) -> Option<DaemonStatus> {
    use crate::local_daemon::Found;
    let timeout = Duration::from_secs(3);
    let mut daemon = match crate::local_daemon::find(&config.data_dir, timeout) {
        Found::NeverRan => {
            report.push(Finding::ok("daemon", t!("daemon_never_ran")));
            return None;
        }
        Found::NotListening(addr) => {
            report.push(Finding::ok("daemon", t!("daemon_not_running", addr = addr)));
            return None;
        }
        Found::Other(addr) => {
            // The daemon cannot listen there, and a till that still talks to this address
            // hands its token to that process: a problem, whoever it is.
            report.push(Finding::problem(
                "daemon",
                t!("daemon_stranger", addr = addr, port = addr.port()),
                t!("fix_port_holder", port = addr.port()),
            ));
            return None;
        }
        Found::Silent { addr, error } => {
            report.push(Finding::warning(
                "daemon",
                t!("daemon_no_answer", addr = addr, error = error),
                t!("fix_daemon_stuck"),
            ));
            return None;
        }
        Found::KeyUnreadable { addr, path, error } => {
            report.push(Finding::warning(
                "daemon",
                t!("daemon_key_unreadable", addr = addr, path = path.display(), error = error),
                t!("fix_daemon_key"),
            ));
            return None;
        }
        Found::Ours(daemon) => daemon,
    };
    let addr = daemon.addr();
    let token = std::fs::read_to_string(crate::secret::pos_token_path(&config.data_dir)).unwrap_or_default();
    match daemon.get("/v1/status", token.trim(), timeout) {
        Err(e) => {
            report.push(Finding::warning(
                "daemon",
                t!("daemon_no_answer", addr = addr, error = e),
                t!("fix_daemon_stuck"),
            ));
            None
        }
        Ok((401, _)) => {
            report.push(Finding::warning("daemon", t!("daemon_refused_token", addr = addr), t!("fix_daemon_data_dir")));
            None
        }
        Ok((status, _)) if status != 200 => {
            report.push(Finding::warning(
                "daemon",
                t!("daemon_other", addr = addr, error = format!("HTTP {status}")),
                t!("fix_daemon_stuck"),
            ));
            None
        }
        Ok((_, body)) => match serde_json::from_slice::<Value>(&body) {
            Ok(body) => {
                let version = body["version"].as_str().unwrap_or("?");
                report.push(Finding::ok("daemon", t!("daemon_answers", addr = addr, version = version)));
                Some(DaemonStatus { body })
            }
            Err(e) => {
                report.push(Finding::warning(
                    "daemon",
                    t!("daemon_other", addr = addr, error = e),
                    t!("fix_daemon_port"),
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
            report.push(Finding::problem("files", t!("data_dir_not_dir", path = dir.display()), t!("fix_data_dir")));
            return;
        }
        Err(e) => {
            report.push(Finding::problem(
                "files",
                t!("data_dir_missing", path = dir.display(), error = e),
                t!("fix_provision_or_data_dir"),
            ));
            return;
        }
    };
    if meta.uid() != runner.uid {
        let text = t!("data_dir_owner", path = dir.display(), owner = user_name(meta.uid()), runner = runner.name);
        let fix = t!("fix_chown_dir", user = runner.name, path = dir.display());
        report.push(if runner.service || !runner.can_read_write(meta.uid(), meta.gid(), meta.mode()) {
            Finding::problem("files", text, fix)
        } else {
            Finding::warning("files", text, fix)
        });
    } else if runner.uid != 0 && meta.mode() & 0o700 != 0o700 {
        // Its owner, but without the rights to make files in it (the ledger's WAL files).
        report.push(Finding::problem(
            "files",
            t!("data_dir_mode", path = dir.display(), mode = format!("{:04o}", meta.mode() & 0o7777)),
            t!("fix_chmod_700", path = dir.display()),
        ));
    } else {
        report.push(Finding::ok("files", t!("data_dir_ok", path = dir.display(), runner = runner.name)));
    }
    // Not readable by others: the ledger's coupon codes, the tokens and the daemon's key
    // live here. 0750 is fine when the group is the daemon's (the package's own setup).
    let mode = meta.mode() & 0o7777;
    if mode & 0o007 != 0 || (mode & 0o070 != 0 && !runner.gids.contains(&meta.gid())) {
        report.push(Finding::warning(
            "files",
            t!("data_dir_open", path = dir.display(), mode = format!("{mode:04o}")),
            t!("fix_chmod_700", path = dir.display()),
        ));
    }
    // The ledger and its WAL files: the daemon must be able to write all three, and no
    // other account read them (they hold coupon codes; SQLite gives the WAL files the
    // ledger's mode, so one `chmod` of all three settles it).
    let mut loose = Vec::new();
    for suffix in ["", "-wal", "-shm"] {
        let path = PathBuf::from(format!("{}{suffix}", config.database_path().display()));
        if let Ok(m) = std::fs::metadata(&path) {
            if m.mode() & 0o077 != 0 {
                loose.push((path.display().to_string(), m.mode() & 0o7777));
            }
            if m.uid() == runner.uid && !runner.can_read_write(m.uid(), m.gid(), m.mode()) {
                // The right owner without its rights: a `chmod`, not a `chown`.
                let mode = format!("{:04o}", m.mode() & 0o7777);
                report.push(Finding::problem(
                    "files",
                    t!("ledger_file_mode", path = path.display(), mode = mode, runner = runner.name),
                    t!("fix_chmod_600", path = path.display()),
                ));
            } else if !runner.can_read_write(m.uid(), m.gid(), m.mode()) {
                report.push(Finding::problem(
                    "files",
                    t!(
                        "ledger_file_owner",
                        path = path.display(),
                        owner = user_name(m.uid()),
                        mode = format!("{:04o}", m.mode() & 0o7777),
                        runner = runner.name
                    ),
                    t!("fix_chown_file", user = runner.name, path = path.display()),
                ));
            }
        }
    }
    if let Some((_, mode)) = loose.first() {
        let paths = loose.iter().map(|(p, _)| p.as_str()).collect::<Vec<_>>().join(" ");
        report.push(Finding::warning(
            "files",
            t!("ledger_loose", paths = paths, mode = format!("{mode:04o}")),
            t!("fix_chmod_600", path = paths),
        ));
    }
    // The names are file names (`token`, `pos-token`) a reader finds in the data directory.
    let mut secrets: Vec<(&str, PathBuf, bool)> = vec![
        ("pos-token", crate::secret::pos_token_path(dir), false),
        (crate::secret::MANAGER_PIN_FILE, dir.join(crate::secret::MANAGER_PIN_FILE), false),
    ];
    if let Some(token) = config.token_path() {
        secrets.insert(0, ("token", token, true));
    }
    for (name, path, required) in secrets {
        match std::fs::metadata(&path) {
            Ok(m) => report.push(judge_secret(name, &path, m.mode(), m.uid(), runner)),
            Err(_) if required => report.push(Finding::problem(
                "files",
                t!("token_missing", path = path.display()),
                t!("fix_provision_again"),
            )),
            Err(_) if name == "pos-token" => {
                report.push(Finding::warning("files", t!("no_pos_token", path = path.display()), t!("fix_pos_token")))
            }
            Err(_) => report.push(Finding::warning("files", t!("no_manager_pin"), t!("fix_manager_pin"))),
        }
    }
    let leftover = dir.join("enrollment.json");
    if leftover.exists() {
        report.push(Finding::warning(
            "files",
            t!("enrollment_leftover", path = leftover.display()),
            t!("fix_provision_complete"),
        ));
    }
    let keys = config.trust_keys_path();
    match std::fs::read_to_string(&keys)
        .map_err(|e| e.to_string())
        .and_then(|t| crate::ruleset::parse_anchors(&t).map_err(|e| e.to_string()))
    {
        Ok(anchors) => {
            report.push(Finding::ok("files", t!("trust_keys_ok", path = keys.display(), count = anchors.len())))
        }
        Err(e) => report.push(Finding::problem(
            "files",
            t!("trust_keys_bad", path = keys.display(), error = e),
            t!("fix_trust_keys"),
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
            report.push(Finding::problem("ledger", t!("no_ledger", path = path.display()), t!("fix_no_ledger")));
            return None;
        }
        Err(e @ (StoreError::Foreign { .. } | StoreError::TooNew { .. })) => {
            report.push(Finding::problem("ledger", t!("ledger_foreign", error = e), t!("fix_restore_backup")));
            return None;
        }
        Err(e) => {
            report.push(Finding::problem(
                "ledger",
                t!("ledger_cannot_open", path = path.display(), error = e),
                t!("fix_restore_if_damaged"),
            ));
            return None;
        }
    };
    match store.quick_check() {
        Ok(lines) => report.push(judge_quick_check(&path, &lines)),
        Err(e) => report.push(Finding::problem(
            "ledger",
            t!("ledger_cannot_check", path = path.display(), error = e),
            t!("fix_restore"),
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
            d.body["ruleset_problem"].as_str().map(|p| t!("daemon_ruleset_problem", problem = p)),
        ),
        None => {
            let installed = store.ruleset();
            let problem = derived_tables_problem(config, &store);
            match installed {
                Ok(i) => (i.map(|i| (i.rules.version, Some(i.rules.issued_at), Some(i.rules.expires_at))), problem),
                Err(e) => (None, Some(t!("ruleset_unreadable", error = e))),
            }
        }
    };
    match &problem {
        Some(p) => report.push(Finding::problem("ledger", p.clone(), t!("fix_install_again"))),
        None if installed.is_some() => report.push(Finding::ok("ledger", t!("derived_match"))),
        None => {}
    }
    match installed {
        Some((version, Some(issued), Some(expires))) => {
            for f in judge_ruleset(now, version, issued, expires, &tz) {
                report.push(f);
            }
        }
        Some((version, _, _)) => {
            report.push(Finding::warning("ruleset", t!("ruleset_undated", version = version), t!("fix_ruleset_show")))
        }
        None if problem.is_none() => report.push(Finding::problem(
            "ruleset",
            t!("no_ruleset"),
            if config.upstream.is_some() { t!("fix_sync_ruleset") } else { t!("fix_import_ruleset") },
        )),
        None => {}
    }
    let unsynced = daemon
        .and_then(|d| d.body["unsynced"].as_u64())
        .or_else(|| store.unsynced().ok().map(|u| u.count))
        .unwrap_or(0);
    let last_contact = store.last_contact().ok().flatten();
    let last_skew = store.meta(crate::store::META_CLOCK_SKEW).ok().flatten().and_then(|s| s.parse().ok());
    Some(LedgerFacts { ruleset_version: installed.map(|(v, _, _)| v), unsynced, last_contact, last_skew })
}

/// The derived tables against the verified JWS (what the daemon proves at start).
fn derived_tables_problem(config: &Config, store: &Store) -> Option<Text> {
    let anchors =
        std::fs::read_to_string(config.trust_keys_path()).ok().and_then(|t| crate::ruleset::parse_anchors(&t).ok())?;
    match store.prove_derived_tables(&anchors).ok()? {
        crate::store::DerivedProof::Nothing | crate::store::DerivedProof::Proven { .. } => None,
        crate::store::DerivedProof::Unverified { version, refusal } => {
            Some(t!("ruleset_unverified", version = version, refusal = refusal))
        }
        crate::store::DerivedProof::Differs { version } => Some(t!("derived_differ", version = version)),
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
        report.push(Finding::ok("upstream", t!("by_hand")));
        return;
    };
    if let Some(contact) = facts.and_then(|f| f.last_contact) {
        let age = clock.now() - contact;
        if age > CONTACT_WARNING {
            report.push(Finding::warning("upstream", t!("last_contact", hours = age.as_hours()), t!("fix_see_below")));
        }
    }
    let url = match crate::upstream::check_url(&up.url) {
        Ok(url) => url,
        Err(e) => {
            report.push(Finding::problem("upstream", t!("bad_url").with("error", e.text()), t!("fix_upstream_url")));
            return;
        }
    };
    let host = url.host_str().unwrap_or_default().trim_matches(['[', ']']).to_owned();
    let port = url.port_or_known_default().unwrap_or(443);
    use std::net::ToSocketAddrs as _;
    let addrs: Vec<std::net::SocketAddr> = match (host.as_str(), port).to_socket_addrs() {
        Ok(a) => a.collect(),
        Err(e) => {
            report.push(Finding::problem("upstream.dns", t!("dns_failed", host = host, error = e), t!("fix_dns")));
            return;
        }
    };
    let ips = addrs.iter().map(|a| a.ip().to_string()).collect::<Vec<_>>().join(", ");
    report.push(Finding::ok("upstream.dns", t!("dns_ok", host = host, addresses = ips)));
    let mut failures = Vec::new();
    let connected = addrs.iter().find_map(|a| match std::net::TcpStream::connect_timeout(a, NET_TIMEOUT) {
        Ok(_) => Some(*a),
        Err(e) => {
            failures.push(e);
            None
        }
    });
    match connected {
        Some(a) => report.push(Finding::ok("upstream.tcp", t!("tcp_ok", addr = a))),
        None => {
            // Said as it failed: a refusal is at once, only a silent address takes the timeout.
            use std::io::ErrorKind as K;
            let message = if failures.iter().any(|e| e.kind() == K::ConnectionRefused) {
                t!("tcp_refused", host = host, port = port)
            } else if failures.iter().all(|e| e.kind() == K::TimedOut) {
                t!("tcp_failed", host = host, port = port, seconds = NET_TIMEOUT.as_secs())
            } else {
                let error = failures.first().map(ToString::to_string).unwrap_or_default();
                t!("tcp_error", host = host, port = port, error = error)
            };
            report.push(Finding::problem("upstream.tcp", message, t!("fix_tcp")));
            return;
        }
    }
    let tls = url.scheme() == "https";
    let trust = match (&up.ca_file, up.system_roots) {
        (Some(ca), true) => t!("trust_ca_and_roots", ca = ca.display()),
        (Some(ca), false) => t!("trust_ca_only", ca = ca.display()),
        (None, _) => t!("trust_roots"),
    };

    let ca_pem = match up.ca_file.as_deref().map(std::fs::read).transpose() {
        Ok(pem) => pem,
        Err(e) => {
            let ca = up.ca_file.as_deref().unwrap_or(Path::new("")).display();
            let error = crate::upstream::IoProblem::of(&e).text();
            report.push(Finding::problem(
                "upstream.tls",
                t!("ca_unreadable", path = ca).with("error", error),
                t!("fix_ca"),
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
            let ca = up.ca_file.as_deref().unwrap_or(Path::new("")).display();
            report.push(Finding::problem(
                "upstream.tls",
                t!("ca_unusable", path = ca).with("error", e.text()),
                t!("fix_ca_pem"),
            ));
            return;
        }
    };
    if token.is_none() {
        report.push(Finding::problem("upstream.token", t!("no_token"), t!("fix_provision_again")));
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
            Finding::ok("upstream.tls", t!("tls_ok", host = host).with("trust", trust.clone()))
        } else {
            Finding::ok("upstream.tls", t!("tls_none"))
        }
    };
    match answer {
        Ok(server_time) => {
            report.push(tls_ok());
            report.push(Finding::ok("upstream.token", t!("token_ok", terminal = up.terminal_id)));
            // Measured against the middle of the exchange would be finer; 300 s is coarse.
            let skew = (clock.now() - server_time).as_secs();
            report.push(judge_skew(skew));
            return;
        }
        Err(
            e
            @ (E::TlsClock { .. } | E::TlsUnknownIssuer { .. } | E::TlsName { .. } | E::Tls { .. } | E::NotTls { .. }),
        ) => {
            // The cause decides the fix: the clock is set, never re-provisioned with a CA.
            let fix = match &e {
                E::TlsClock { .. } => t!("fix_set_time_again"),
                E::TlsUnknownIssuer { .. } => t!("fix_ca"),
                E::TlsName { .. } | E::NotTls { .. } => t!("fix_upstream_url"),
                _ => t!("fix_tls"),
            };
            report.push(Finding::problem(
                "upstream.tls",
                t!("tls_failed").with("error", e.text()).with("trust", trust.clone()),
                fix,
            ))
        }
        Err(E::Unauthorized) => {
            report.push(tls_ok());
            report.push(Finding::problem(
                "upstream.token",
                t!("token_refused", terminal = up.terminal_id),
                t!("fix_reprovision"),
            ));
        }
        Err(e) => {
            report.push(tls_ok());
            let fix = if matches!(e, E::NotFound { .. }) { t!("fix_upstream_url") } else { t!("fix_upstream_down") };
            report.push(Finding::problem("upstream.token", t!("heartbeat_failed").with("error", e.text()), fix));
        }
    }
    // No fresh server time: fall back to what the last heartbeat saw.
    let recorded = daemon
        .and_then(|d| d.body["clock_warning"].as_str().map(|w| t!("daemon_clock_warning", warning = w)))
        .or_else(|| facts.and_then(|f| f.last_skew).map(|s| t!("last_skew", skew = format!("{s:+}"))));
    if let Some(text) = recorded {
        report.push(Finding::warning("clock", text, t!("fix_ntp")));
    }
}

/// How long doctor waits for the store hub's link to come up.
const HUB_WAIT: Duration = Duration::from_secs(3);

/// The store hub, when `[store]` names one (a lane without one gets no hub findings):
/// `[store]` and its secrets' modes, reach and login, the server (JetStream, ≥ 2.11), the
/// bucket's and stream's settings (created when missing, as the daemon does), a test
/// claim created and deleted, and the lane's unconfirmed and unpublished counts.
fn hub(
    config: &Config,
    runner: &Runner,
    rt: &tokio::runtime::Runtime,
    daemon: Option<&DaemonStatus>,
    clock: &dyn Clock,
    report: &mut Report,
) {
    use crate::hub::HubSettings;
    let Some(store) = &config.store else {
        return;
    };
    let settings = match HubSettings::from_config(config) {
        Ok(Some(settings)) => settings,
        Ok(None) => return,
        Err(problem) => {
            report.push(Finding::problem("hub", th!("config", problem = problem), th!("fix_config")));
            return;
        }
    };
    report.push(Finding::ok(
        "hub",
        th!(
            "settings_ok",
            urls = settings.urls.join(", "),
            store = settings.store_id,
            lane = settings.lane,
            terminal = settings.terminal_id
        ),
    ));
    // The daemon refuses secrets other accounts can read; doctor says so and goes on.
    let mut readable = true;
    for (name, path) in [("credentials", store.credentials.as_ref()), ("password-file", store.password_file.as_ref())] {
        let Some(path) = path else { continue };
        match std::fs::metadata(path) {
            Ok(m) => report.push(Finding { check: "hub", ..judge_secret(name, path, m.mode(), m.uid(), runner) }),
            Err(e) => {
                readable = false;
                report.push(Finding::problem(
                    "hub",
                    th!("secret_missing", name = name, path = path.display(), error = e),
                    th!("fix_secret_missing", name = name, path = path.display()),
                ));
            }
        }
    }
    let reachable = readable && rt.block_on(hub_steps(settings, &config.timezone(), clock, report));
    match hub_counts(config, daemon) {
        Some(Ok((unconfirmed, unpublished))) => report.push(judge_hub_lane(unconfirmed, unpublished, reachable)),
        Some(Err(e)) => {
            report.push(Finding::warning("hub.lane", th!("lane_unknown", error = e), th!("fix_lane_unknown")))
        }
        None => {}
    }
}

/// The hub step by step, each step only when the one before passed; true when the hub
/// answered and accepted the lane's login.
async fn hub_steps(
    settings: crate::hub::HubSettings,
    tz: &jiff::tz::TimeZone,
    clock: &dyn Clock,
    report: &mut Report,
) -> bool {
    use crate::hub::{Hub, HubAuth, HubError};
    let urls = settings.urls.join(", ");
    let bucket = crate::claim::bucket_name(&settings.store_id);
    let stream = crate::claim::stream_name(&settings.store_id);
    let auth = match &settings.auth {
        HubAuth::None => th!("auth_none"),
        HubAuth::UserPassword { user, .. } => th!("auth_user", user = user),
        HubAuth::Credentials(path) => th!("auth_credentials", path = path.display()),
    };
    let hub = match Hub::connect(settings).await {
        Ok(hub) => hub,
        Err(e) => {
            report.push(Finding::problem(
                "hub.link",
                th!("connect_failed", urls = urls, error = e),
                th!("fix_connect"),
            ));
            return false;
        }
    };
    // A refused login is final (the client stops retrying it); anything else may still
    // come up within the wait.
    let refused = |error: &Option<String>| {
        error.as_deref().is_some_and(|e| {
            let e = e.to_lowercase();
            e.contains("authorization") || e.contains("authentication")
        })
    };
    let deadline = tokio::time::Instant::now() + HUB_WAIT;
    while !hub.link_up() && !refused(&hub.state().last_error) && tokio::time::Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    if !hub.link_up() {
        let error = hub.state().last_error;
        if let Some(e) = error.as_deref().filter(|_| refused(&error)) {
            report.push(Finding::problem(
                "hub.link",
                th!("refused", urls = urls, error = e).with("auth", auth),
                th!("fix_refused"),
            ));
            return false;
        }
        // The client says only "IO error": the network's own words are more use.
        let seconds = HUB_WAIT.as_secs();
        let message = match (tcp_error(&hub.settings.urls).await, error) {
            (Some(e), _) => th!("unreachable", urls = urls, error = e),
            (None, Some(e)) => th!("no_session", urls = urls, seconds = seconds, error = e),
            (None, None) => th!("no_session", urls = urls, seconds = seconds).with("error", th!("no_error")),
        };
        report.push(Finding::problem("hub.link", message, th!("fix_unreachable")));
        return false;
    }
    report.push(Finding::ok("hub.link", th!("link_ok", urls = urls).with("auth", auth)));
    let version = hub.server_version();
    let jetstream = hub.jetstream_account().await.map_err(|e| e.to_string());
    let server = judge_hub_server(version.as_deref(), jetstream);
    let usable = server.level != Level::Problem;
    report.push(server);
    if !usable {
        return true;
    }
    match hub.ensure().await {
        Ok(()) => report.push(Finding::ok("hub.bucket", th!("bucket_ok", bucket = bucket, stream = stream))),
        Err(e @ HubError::Contract { .. }) => {
            report.push(Finding::problem(
                "hub.bucket",
                th!("bucket_other", error = e),
                th!("fix_bucket_other", bucket = bucket, stream = stream),
            ));
            return true;
        }
        Err(e) => {
            report.push(Finding::problem(
                "hub.bucket",
                th!("bucket_failed", bucket = bucket, stream = stream, error = e),
                th!("fix_bucket_failed"),
            ));
            return true;
        }
    }
    report.push(match hub.test_claim(&rfc3339(clock.now(), tz)).await {
        Ok(()) => Finding::ok("hub.claim", th!("claim_ok", bucket = bucket)),
        Err(e) => Finding::problem(
            "hub.claim",
            th!("claim_failed", bucket = bucket, error = e),
            th!("fix_claim", bucket = bucket),
        ),
    });
    true
}

/// Why the hub's addresses do not answer, as TCP says it (`127.0.0.1:4222: Connection
/// refused`): the first address's error, or None when one of them accepts.
async fn tcp_error(urls: &[String]) -> Option<String> {
    let mut first = None;
    for url in urls.iter().filter_map(|u| url::Url::parse(u).ok()) {
        let host = url.host_str().unwrap_or_default().trim_matches(['[', ']']).to_owned();
        let port = url.port().unwrap_or(4222);
        let connect = tokio::net::TcpStream::connect((host.as_str(), port));
        let error = match tokio::time::timeout(Duration::from_secs(2), connect).await {
            Ok(Ok(_)) => return None,
            Ok(Err(e)) => format!("{host}:{port}: {e}"),
            Err(_) => format!("{host}:{port}: no answer within 2 s"),
        };
        first.get_or_insert(error);
    }
    first
}

/// The lane's unconfirmed and unpublished counts: the running daemon's, else the
/// ledger's (read only); None without a ledger (its own finding says so).
fn hub_counts(config: &Config, daemon: Option<&DaemonStatus>) -> Option<Result<(u64, u64), String>> {
    if let Some(d) = daemon {
        let hub = &d.body["hub"];
        if let (Some(unconfirmed), Some(unpublished)) = (hub["unconfirmed"].as_u64(), hub["unpublished"].as_u64()) {
            return Some(Ok((unconfirmed, unpublished)));
        }
    }
    let path = config.database_path();
    Store::open_read_only(&path).ok()?;
    let flags = rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY | rusqlite::OpenFlags::SQLITE_OPEN_NO_MUTEX;
    let counts = rusqlite::Connection::open_with_flags(&path, flags).map_err(|e| e.to_string()).and_then(|c| {
        c.busy_timeout(Duration::from_secs(10)).map_err(|e| e.to_string())?;
        crate::store::hub_counts_in(&c).map_err(|e| e.to_string())
    });
    Some(counts)
}

fn scanner(config: &Config, runner: &Runner, daemon: Option<&DaemonStatus>, report: &mut Report) {
    if let Some(d) = daemon {
        let s = &d.body["scanner"];
        let port = s["port"].as_str().unwrap_or("?");
        let profile = s["profile"].as_str().unwrap_or("?");
        report.push(match s["state"].as_str() {
            Some("connected") => Finding::ok("scanner", t!("scanner_daemon_reads", port = port, profile = profile)),
            Some("none") => Finding::ok("scanner", t!("scanner_none")),
            _ => Finding::problem(
                "scanner",
                t!("scanner_daemon_lacks", port = port, profile = profile),
                t!("fix_plug_scanner"),
            ),
        });
        return;
    }
    let section = config.scanner.clone().unwrap_or_default();
    let port = section.port.unwrap_or_else(|| "auto".to_owned());
    let profile_id = section.profile.unwrap_or_else(|| crate::config::DEFAULT_PROFILE.to_owned());
    if port == "none" {
        report.push(Finding::ok("scanner", t!("scanner_none")));
        return;
    }
    let profile = match crate::scanner::profile::load(&profile_id) {
        Ok(p) => p,
        Err(e) => {
            report.push(Finding::problem(
                "scanner",
                t!("scanner_profile", profile = profile_id, error = e),
                t!("fix_scanner_profile"),
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
                    t!("scanner_auto").with("error", e.text()),
                    t!("fix_scanner_port"),
                ));
                return;
            }
        };
        match crate::scanner::transport::resolve_auto(&profile, listed) {
            Ok(p) => p,
            Err(e) => {
                report.push(Finding::problem(
                    "scanner",
                    t!("scanner_auto").with("error", e.text()),
                    t!("fix_scanner_auto"),
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
                t!("scanner_port_missing", path = path.display()),
                t!("fix_scanner_missing"),
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
                    t!("scanner_usb_ok", path = path.display(), vid = u.vid, pid = u.pid, profile = profile_id),
                ));
            } else {
                let named =
                    profile.usb.iter().map(|u| format!("{:04x}:{:04x}", u.vid, u.pid)).collect::<Vec<_>>().join(", ");
                report.push(Finding::warning(
                    "scanner",
                    t!(
                        "scanner_usb_other",
                        path = path.display(),
                        vid = u.vid,
                        pid = u.pid,
                        profile = profile_id,
                        named = named
                    ),
                    t!("fix_choose_profile"),
                ));
            }
        }
        None => report.push(Finding::ok("scanner", t!("scanner_not_usb", path = path.display()))),
    }
    if !runner.can_read_write(meta.uid(), meta.gid(), meta.mode()) {
        report.push(Finding::problem(
            "scanner",
            t!(
                "scanner_no_access",
                runner = runner.name,
                path = path.display(),
                owner = user_name(meta.uid()),
                group = group_name(meta.gid()),
                mode = format!("{:04o}", meta.mode() & 0o777)
            ),
            t!("fix_scanner_group", runner = runner.name, group = group_name(meta.gid())),
        ));
    } else {
        report.push(Finding::ok("scanner", t!("scanner_access_ok", runner = runner.name, path = path.display())));
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
            t!("disk_unknown", path = dir.display(), error = e),
            t!("fix_check_data_dir"),
        )),
    }
}

fn service(report: &mut Report, daemon: Option<&DaemonStatus>) {
    if !Path::new("/run/systemd/system").is_dir() {
        report.push(Finding::ok("service", t!("no_systemd")));
        return;
    }
    let state = std::process::Command::new("systemctl")
        .args(["is-active", "redeemd.service"])
        .stderr(std::process::Stdio::null())
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_owned());
    report.push(match state.as_deref() {
        Ok("active") | Ok("activating") | Ok("reloading") => Finding::ok("service", t!("service_active")),
        Ok("failed") => Finding::problem("service", t!("service_failed"), t!("fix_service_failed")),
        Ok(other) if daemon.is_some() => Finding::ok("service", t!("service_by_hand", state = other)),
        Ok(other) => Finding::warning(
            "service",
            t!("service_state", state = if other.is_empty() { "unknown" } else { other }),
            t!("fix_enable_service"),
        ),
        Err(e) => Finding::warning("service", t!("no_systemctl", error = e), t!("fix_systemd")),
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
        r.push(Finding::ok("disk", t!("service_active")));
        r.push(Finding::warning("clock", t!("no_manager_pin"), t!("fix_manager_pin")));
        assert_eq!(r.exit_code(), 0);
        r.push(Finding::problem("service", t!("service_failed"), t!("fix_service_failed")));
        assert_eq!(r.exit_code(), 3);
        let json = r.to_json();
        assert_eq!(json["problems"], 1);
        assert_eq!(json["findings"][1]["status"], "warning");
        assert!(r.to_text(Language::En).contains("PROBLEM  service"), "{}", r.to_text(Language::En));
        assert_eq!(json["findings"][2]["message"], "redeemd.service has failed");
        let zh = r.to_text(Language::ZhCn);
        assert!(!zh.contains("failed") && zh.contains("redeemd.service"), "{zh}");
    }

    #[test]
    fn secrets_must_be_0600_and_the_runners() {
        let p = Path::new("/var/lib/redeemd/token");
        assert_eq!(judge_secret("token", p, 0o100600, 1000, &runner(1000)).level, Level::Ok);
        let loose = judge_secret("token", p, 0o100644, 1000, &runner(1000));
        assert_eq!(loose.level, Level::Problem);
        assert!(loose.fix.unwrap().to_string().contains("chmod 600"));
        let foreign = judge_secret("token", p, 0o100600, 0, &runner(1000));
        assert!(foreign.level == Level::Problem && foreign.fix.unwrap().to_string().contains("chown redeemd"));
    }

    #[test]
    fn clock_and_ruleset_judgements() {
        assert_eq!(judge_skew(300).level, Level::Ok);
        assert_eq!(judge_skew(-301).level, Level::Problem);
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
    fn hub_server_needs_jetstream_and_2_11() {
        assert_eq!(judge_hub_server(Some("2.15.1"), Ok(())).level, Level::Ok);
        assert_eq!(judge_hub_server(Some("2.11.0"), Ok(())).level, Level::Ok);
        assert_eq!(judge_hub_server(Some("v2.11.0-RC.1"), Ok(())).level, Level::Ok);
        assert_eq!(judge_hub_server(Some("3.0.0"), Ok(())).level, Level::Ok);
        let old = judge_hub_server(Some("2.10.22"), Ok(()));
        assert!(old.level == Level::Problem && old.message.to_string().contains("2.10.22"), "{old:?}");
        assert_eq!(judge_hub_server(Some("garbage"), Ok(())).level, Level::Warning);
        let off = judge_hub_server(Some("2.15.1"), Err("jetstream not enabled".into()));
        assert!(
            off.level == Level::Problem && off.fix.as_ref().unwrap().to_string().contains("jetstream {"),
            "{off:?}"
        );
        assert_eq!(check_name(Language::ZhCn, "hub.server"), "门店中心·服务器");
        assert_eq!(check_name(Language::En, "hub.lane"), "hub.lane");
    }

    #[test]
    fn hub_lane_unconfirmed_while_reachable_is_a_warning() {
        assert_eq!(judge_hub_lane(0, 3, true).level, Level::Ok);
        assert_eq!(judge_hub_lane(2, 3, false).level, Level::Ok);
        let w = judge_hub_lane(2, 3, true);
        assert!(w.level == Level::Warning && w.message.to_string().contains("2 redemption(s)"), "{w:?}");
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
