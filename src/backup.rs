//! `redeemd backup FILE` and `redeemd restore FILE`: moving a terminal's ledger, with its
//! unsynced redemptions, onto a replacement.
//!
//! A backup is one SQLite file (application_id "RDMB"): a consistent copy of the ledger
//! made with SQLite's online backup API from a read-only connection (safe while the
//! daemon writes), plus the config and the trust anchors (rule-set keys, upstream CA) in
//! a table of its own. It never holds a token: not upstream's, not the till's, not the
//! manager PIN's hash, not page sessions. A restore refuses to replace a ledger that
//! holds any event the backup lacks, and refuses while a daemon runs on the data dir.
//! The restored outbox keeps every event with its original `event_id` and `seq`, so
//! after a fresh `provision` (which keeps the data dir of a terminal that has a config)
//! the new terminal forwards the old terminal's unanswered events exactly once in effect
//! (upstream deduplicates by `event_id`). A restore onto a config of another merchant is
//! refused unless forced; one onto another terminal notes the swap in the ledger
//! ([`Store::record_swap`]), so a coupon the old terminal used is told as its.
//!
//! This module owns the procedure and its checks; the SQL lives in [`crate::store`].

use crate::clock::Clock;
use crate::config::{self, Config};
use crate::messages::Text;
use crate::store::{BackupFile, Store, StoreError};
use std::os::unix::fs::MetadataExt as _;
use std::path::{Path, PathBuf};
use thiserror::Error;

/// Version of the backup layout (`backup_info.format`).
pub const FORMAT: &str = "1";
const CONFIG_FILE: &str = "redeemd.toml";

#[derive(Debug, Error)]
pub enum BackupError {
    /// Refused before anything changed (exit 2): a file in the way, a running daemon,
    /// events that would be lost. The text is rendered in the reader's language.
    #[error("{0}")]
    Refused(Text),
    #[error("{0}")]
    Store(#[from] StoreError),
    #[error("{what} {path}: {source}")]
    Io { what: &'static str, path: PathBuf, source: std::io::Error },
    #[error("{0}")]
    Other(String),
}

impl BackupError {
    /// Whether the command line should exit 2 (usage or configuration) rather than 3.
    pub fn is_refusal(&self) -> bool {
        matches!(
            self,
            BackupError::Refused(_)
                | BackupError::Store(StoreError::Missing(_) | StoreError::Foreign { .. } | StoreError::TooNew { .. })
        )
    }
}

fn refused<const N: usize>(key: &'static str, values: [(&'static str, String); N]) -> BackupError {
    BackupError::Refused(Text::new(key, values.into()))
}

fn io(what: &'static str, path: &Path) -> impl FnOnce(std::io::Error) -> BackupError {
    let path = path.to_owned();
    move |source| BackupError::Io { what, path, source }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Summary {
    pub redemptions: i64,
    pub events: i64,
    /// Events upstream has not answered yet (pending or parked).
    pub unanswered: i64,
    pub files: Vec<String>,
}

/// Refuses while this data dir's daemon runs (it proved itself: see
/// [`crate::local_daemon`]), or while something on its port cannot be told from it (no
/// answer in time, a key this account cannot read): replacing the ledger under a live
/// daemon would lose what it writes next. Another process on the port is no reason to
/// refuse: its address is returned, to be told to the reader.
fn check_no_daemon(data_dir: &Path) -> Result<Option<std::net::SocketAddr>, BackupError> {
    use crate::local_daemon::Found;
    let dir = || data_dir.display().to_string();
    match crate::local_daemon::find(data_dir, std::time::Duration::from_secs(2)) {
        Found::NeverRan | Found::NotListening(_) => Ok(None),
        Found::Other(addr) => Ok(Some(addr)),
        Found::Ours(daemon) => {
            Err(refused("backup.daemon_runs", [("dir", dir()), ("addr", daemon.addr().to_string())]))
        }
        Found::Silent { addr, .. } => {
            Err(refused("backup.daemon_silent", [("dir", dir()), ("addr", addr.to_string())]))
        }
        Found::KeyUnreadable { addr, path, error } => Err(refused(
            "backup.daemon_unprovable",
            [("addr", addr.to_string()), ("path", path.display().to_string()), ("error", error.to_string())],
        )),
    }
}

/// Writes a backup of the terminal configured at `config_path` to `dest`.
pub fn backup(config_path: &Path, config: &Config, dest: &Path, clock: &dyn Clock) -> Result<Summary, BackupError> {
    if dest.exists() {
        return Err(refused("backup.exists", [("path", dest.display().to_string())]));
    }
    let mut files: Vec<(&str, Vec<u8>)> = vec![
        (CONFIG_FILE, std::fs::read(config_path).map_err(io("cannot read the config", config_path))?),
        (
            config::TRUST_KEYS_FILE,
            std::fs::read(config.trust_keys_path())
                .map_err(io("cannot read the trust keys", &config.trust_keys_path()))?,
        ),
    ];
    if let Some(ca) = config.upstream.as_ref().and_then(|u| u.ca_file.as_deref()) {
        files.push((config::UPSTREAM_CA_FILE, std::fs::read(ca).map_err(io("cannot read the upstream CA", ca))?));
    }
    let info = [
        ("format", FORMAT.to_owned()),
        ("created_at", clock.now().to_string()),
        ("agent_version", crate::upstream::AGENT_VERSION.to_owned()),
        ("merchant_id", config.merchant_id.clone()),
        ("terminal_id", config.upstream.as_ref().map(|u| u.terminal_id.clone()).unwrap_or_default()),
        ("data_dir", config.data_dir.display().to_string()),
    ];
    let store = Store::open_read_only(&config.database_path())?;
    let dir = dest.parent().filter(|p| !p.as_os_str().is_empty()).unwrap_or(Path::new("."));
    let name = dest.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
    let tmp = dir.join(format!(".{name}.{}.partial", crate::secret::hex(&crate::secret::random_bytes::<6>())));
    let result = (|| {
        // Created empty with 0600 first: SQLite takes an empty file for a new database,
        // and its journal copies the mode. The backup holds coupon codes.
        {
            use std::os::unix::fs::OpenOptionsExt as _;
            std::fs::OpenOptions::new()
                .write(true)
                .create_new(true)
                .mode(0o600)
                .open(&tmp)
                .map_err(io("cannot create", &tmp))?;
        }
        store.backup_to(&tmp, &files, &info)?;
        let written = BackupFile::open(&tmp)?;
        let check = written.quick_check()?;
        if check != ["ok"] {
            return Err(BackupError::Other(format!("the written backup fails quick_check: {}", check.join("; "))));
        }
        let (redemptions, events, unanswered) = written.counts()?;
        drop(written);
        std::fs::File::open(&tmp).and_then(|f| f.sync_all()).map_err(io("cannot sync", &tmp))?;
        std::fs::rename(&tmp, dest).map_err(io("cannot write", dest))?;
        let _ = std::fs::File::open(dir).and_then(|d| d.sync_all());
        Ok(Summary { redemptions, events, unanswered, files: files.iter().map(|(n, _)| (*n).to_owned()).collect() })
    })();
    if result.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    result
}

/// What a restore did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Restored {
    pub summary: Summary,
    pub data_dir: PathBuf,
    /// The config was written from the backup (none existed).
    pub wrote_config: bool,
    pub from_terminal: Option<String>,
    pub created_at: Option<String>,
    /// The rule set of the replaced ledger, newer than the backup's, installed again over
    /// it: (that version, the backup's). A restore never rolls the rule set back.
    pub kept_ruleset: Option<(u64, Option<u64>)>,
    /// Another process (not this data dir's daemon) listens at the address the last
    /// daemon here bound: the daemon cannot listen there until it is gone.
    pub port_taken: Option<std::net::SocketAddr>,
    /// The terminal's upstream as its config now says (the backup's when it was written
    /// from it), and its CA file when that is on disk: what `provision` is to be given.
    pub upstream_url: Option<String>,
    pub ca_file: Option<PathBuf>,
    /// The ledger now belongs to another terminal than the one that made it: its
    /// redemptions so far are told as that terminal's ([`Store::record_swap`]).
    pub swapped: bool,
}

/// Restores `file` onto the terminal at `config_path` (its data dir), or, when no config
/// exists there, onto `data_dir` (default `/var/lib/redeemd`) with the backup's config.
/// A config of another merchant than the backup's is refused unless `force`.
pub fn restore(
    config_path: &Path,
    file: &Path,
    data_dir: Option<&Path>,
    force: bool,
    clock: &dyn Clock,
) -> Result<Restored, BackupError> {
    // What is given may not be a backup at all: say so, not what a missing or foreign
    // *ledger* would call for.
    let path = || file.display().to_string();
    let backup = BackupFile::open(file).map_err(|e| match e {
        StoreError::Missing(_) => refused("backup.missing", [("path", path())]),
        StoreError::Foreign { why, .. } => refused("backup.not_backup", [("path", path()), ("why", why)]),
        other => other.into(),
    })?;
    let check = backup.quick_check()?;
    if check != ["ok"] {
        return Err(refused("backup.damaged", [("path", file.display().to_string()), ("lines", check.join("; "))]));
    }
    if backup.info("format")?.as_deref() != Some(FORMAT) {
        return Err(refused("backup.format", [("path", file.display().to_string())]));
    }
    // The config: this terminal's own if it has one (a fresh provision), else the backup's.
    let existing = config_path.exists();
    let config = if existing {
        let config = Config::load(config_path)
            .map_err(|e| BackupError::Refused(Text::new("backup.config", vec![]).with("error", e.text())))?;
        if let Some(dir) = data_dir.filter(|d| absolute(d) != config.data_dir) {
            return Err(refused(
                "backup.data_dir",
                [
                    ("config", config_path.display().to_string()),
                    ("configured", config.data_dir.display().to_string()),
                    ("given", dir.display().to_string()),
                ],
            ));
        }
        // Another merchant's ledger would hand its redemptions (and its unanswered
        // events) to this terminal's merchant.
        let merchant = backup.info("merchant_id")?.filter(|m| !m.is_empty());
        if let Some(merchant) = merchant.filter(|m| *m != config.merchant_id && !force) {
            let terminal = backup.info("terminal_id")?.filter(|t| !t.is_empty()).unwrap_or_else(|| "-".into());
            return Err(refused(
                "backup.other_merchant",
                [
                    ("path", path()),
                    ("backup", merchant),
                    ("terminal", terminal),
                    ("config", config_path.display().to_string()),
                    ("configured", config.merchant_id.clone()),
                ],
            ));
        }
        config
    } else {
        let text = backup.file(CONFIG_FILE)?.ok_or_else(|| refused("backup.no_config", [("path", path())]))?;
        let text = String::from_utf8(text)
            .map_err(|_| refused("backup.bad_config", [("path", path()), ("error", "not UTF-8".into())]))?;
        let mut config = Config::parse(&text)
            .map_err(|e| refused("backup.bad_config", [("path", path()), ("error", e.to_string())]))?;
        config.data_dir = absolute(data_dir.unwrap_or(Path::new("/var/lib/redeemd")));
        config.trust_keys = None;
        if let Some(up) = config.upstream.as_mut() {
            up.token_file = None;
            up.ca_file = up.ca_file.as_ref().map(|_| config.data_dir.join(config::UPSTREAM_CA_FILE));
        }
        config
    };
    let port_taken = check_no_daemon(&config.data_dir)?;
    let ledger = config.database_path();
    let backup_version = backup.ruleset_version()?;
    let mut newer = None;
    if ledger.exists() {
        let target = Store::open_read_only(&ledger)?;
        let ours = backup.event_ids()?;
        let lost = target.event_ids()?.into_iter().filter(|id| !ours.contains(id)).count();
        if lost > 0 {
            return Err(refused(
                "backup.would_lose",
                [("path", ledger.display().to_string()), ("count", lost.to_string())],
            ));
        }
        newer = newer_ruleset(&config, &backup, &target, backup_version)?;
    }
    crate::secret::create_private_dir(&config.data_dir).map_err(io("cannot create", &config.data_dir))?;
    let mut store = backup.restore_into(&ledger)?;
    // The same install an import goes through (it refuses a rollback, and keeps the
    // verified text): the rule set in force is the newer of the two, with its revocations.
    let kept_ruleset = match newer {
        Some(verified) => {
            let version = verified.rules.version;
            store
                .install_ruleset(&verified, clock.now())?
                .map_err(|refusal| BackupError::Other(refusal.to_string()))?;
            Some((version, backup_version))
        }
        None => None,
    };
    // Another terminal takes the ledger over (a fresh one, one of another identity, or
    // one whose config names the backup's terminal without its token: restored before,
    // not provisioned yet): what it holds so far is told as the backup's terminal's.
    let from_terminal = backup.info("terminal_id")?.unwrap_or_default();
    let here = config.upstream.as_ref().map(|u| u.terminal_id.clone()).unwrap_or_default();
    let tokenless = config.token_path().is_some_and(|token| !token.exists());
    let swapped = !existing || from_terminal != here || tokenless;
    if swapped {
        store.record_swap(&from_terminal, clock.now())?;
    }
    // The ledger holds coupon codes: 0600 even over an older, looser file it replaced.
    keep_private(&ledger);
    give_to_directory_owner(&config.data_dir, &ledger);
    // Trust anchors the terminal lacks come from the backup; a fresh provision's stay.
    let mut files = Vec::new();
    let mut write_missing = |path: PathBuf, name: &str| -> Result<(), BackupError> {
        if let (false, Some(bytes)) = (path.exists(), backup.file(name)?) {
            crate::secret::write_atomic(&path, &bytes, 0o644).map_err(io("cannot write", &path))?;
            files.push(name.to_owned());
        }
        Ok(())
    };
    write_missing(config.trust_keys_path(), config::TRUST_KEYS_FILE)?;
    if let Some(ca) = config.upstream.as_ref().and_then(|u| u.ca_file.clone()) {
        write_missing(ca, config::UPSTREAM_CA_FILE)?;
    }
    if !existing {
        if let Some(parent) = config_path.parent().filter(|p| !p.as_os_str().is_empty()) {
            std::fs::create_dir_all(parent).map_err(io("cannot create", parent))?;
        }
        crate::secret::write_atomic(config_path, config.to_toml().as_bytes(), 0o644)
            .map_err(io("cannot write", config_path))?;
        files.push(CONFIG_FILE.to_owned());
    }
    // The old terminal's sync state (backoff, a 401 pause, the ETag) is not this one's.
    let anchors = std::fs::read_to_string(config.trust_keys_path())
        .ok()
        .and_then(|t| crate::ruleset::parse_anchors(&t).ok())
        .unwrap_or_default();
    let terminal = crate::decision::Terminal {
        merchant_id: config.merchant_id.clone(),
        merchant_category: config.merchant_category.clone(),
    };
    let agent = crate::agent::Agent::new(
        store,
        terminal,
        anchors,
        config.language,
        config.timezone(),
        Box::new(crate::clock::SystemClock),
    )?;
    crate::sync::reset_after_provision(&agent)?;
    drop(agent);
    crate::secret::ensure_pos_token(&config.data_dir).map_err(io("cannot write the pos-token in", &config.data_dir))?;
    let (redemptions, events, unanswered) = backup.counts()?;
    Ok(Restored {
        summary: Summary { redemptions, events, unanswered, files },
        data_dir: config.data_dir.clone(),
        wrote_config: !existing,
        from_terminal: backup.info("terminal_id")?.filter(|t| !t.is_empty()),
        created_at: backup.info("created_at")?,
        kept_ruleset,
        port_taken,
        upstream_url: config.upstream.as_ref().map(|u| u.url.clone()),
        ca_file: config.upstream.as_ref().and_then(|u| u.ca_file.clone()).filter(|p| p.exists()),
        swapped,
    })
}

/// The rule set in force in the ledger being replaced when it is newer than the backup's,
/// verified against the trust keys the terminal will have after the restore (its own,
/// else the backup's): restoring must not bring back an older rule set (an import refuses
/// that rollback) and with it lose revocations. One that does not verify is refused
/// before anything changed.
fn newer_ruleset(
    config: &Config,
    backup: &BackupFile,
    target: &Store,
    backup_version: Option<u64>,
) -> Result<Option<crate::ruleset::VerifiedRuleSet>, BackupError> {
    let Some((version, jws)) = target.ruleset_text()? else {
        return Ok(None);
    };
    if backup_version.is_some_and(|b| b >= version) {
        return Ok(None);
    }
    let keys = config.trust_keys_path();
    let text = match std::fs::read(&keys) {
        Ok(bytes) => Some(bytes),
        Err(_) => backup.file(config::TRUST_KEYS_FILE)?,
    };
    let anchors = text
        .and_then(|t| String::from_utf8(t).ok())
        .and_then(|t| crate::ruleset::parse_anchors(&t).ok())
        .unwrap_or_default();
    crate::ruleset::verify_owned(jws, &anchors).map(Some).map_err(|refusal| {
        let mut values = vec![
            ("path", config.database_path().display().to_string()),
            ("version", version.to_string()),
            ("keys", keys.display().to_string()),
        ];
        let mut text = match backup_version {
            Some(v) => {
                values.push(("backup", v.to_string()));
                Text::new("backup.newer_ruleset_unverified", values)
            }
            // "none", in the reader's language.
            None => Text::new("backup.newer_ruleset_unverified", values).with("backup", Text::new("cli.none", vec![])),
        };
        text = text.with("refusal", refusal.text());
        BackupError::Refused(text)
    })
}

/// Mode 0600 for the ledger and its WAL files (best effort: a file this account cannot
/// change is left as it is, and `doctor` says so).
fn keep_private(ledger: &Path) {
    use std::os::unix::fs::PermissionsExt as _;
    for suffix in ["", "-wal", "-shm"] {
        let path = PathBuf::from(format!("{}{suffix}", ledger.display()));
        let _ = std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600));
    }
}

fn absolute(path: &Path) -> PathBuf {
    std::path::absolute(path).unwrap_or_else(|_| path.to_owned())
}

/// Run as root (`sudo redeemd provision`, `restore`) in the service user's data dir, a
/// ledger SQLite just created (and its WAL files) goes to that user, or the daemon could
/// not write it. (SQLite itself gives later WAL files the ledger's owner.)
pub fn give_to_directory_owner(dir: &Path, ledger: &Path) {
    let (Ok(me), Ok(owner)) = (std::fs::metadata("/proc/self"), std::fs::metadata(dir)) else {
        return;
    };
    if me.uid() != 0 || owner.uid() == 0 {
        return;
    }
    for suffix in ["", "-wal", "-shm"] {
        let path = PathBuf::from(format!("{}{suffix}", ledger.display()));
        let _ = std::os::unix::fs::chown(&path, Some(owner.uid()), Some(owner.gid()));
    }
}
