//! Failures and exit statuses, decided here only ([`exit_code`]): 0 accepted or done,
//! 1 rejected, 2 usage or configuration error, 3 any other failure. [`explain`] turns a
//! failure into the one line a person reads (a locked or read-only ledger named with its
//! file, holder or owner; library errors from the message tables; no repeated causes).
//! It must not print anything but that line, nor run commands.

use super::*;

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
pub(super) fn exit_code(error: &anyhow::Error) -> Exit {
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

/// The ledger this run opened, so an SQLite error deep in a chain can name its file.
pub(super) static LEDGER: std::sync::OnceLock<PathBuf> = std::sync::OnceLock::new();

/// What failed with upstream and what to do, in the reader's language. A paused sync's
/// reason (a 401 seen earlier) is said as the 401 itself.
pub(super) fn upstream_text(error: &UpstreamError) -> String {
    match error {
        UpstreamError::Local(reason) if reason == crate::sync::PAUSED_401 => {
            UpstreamError::Unauthorized.text().render(lang())
        }
        other => other.text().render(lang()),
    }
}

/// The error and its causes, with a [`Usage`] mark replaced by the error it marks (whose
/// own type the explanation looks for).
pub(super) fn causes(error: &anyhow::Error) -> Vec<&(dyn std::error::Error + 'static)> {
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
pub(super) fn explain(error: anyhow::Error) -> (Exit, String) {
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
pub(super) fn localized(error: &anyhow::Error) -> Option<String> {
    use crate::config::ConfigError;
    use crate::scanner::profile::ProfileError;
    causes(error).into_iter().find_map(|cause| {
        if let Some(e) = cause.downcast_ref::<TransportError>() {
            return Some(e.text().render(lang()));
        }
        if let Some(crate::backup::BackupError::Refused(text)) = cause.downcast_ref::<crate::backup::BackupError>() {
            return Some(text.render(lang()));
        }
        if let Some(e) = cause.downcast_ref::<crate::daemon::RunError>() {
            return Some(e.text().render(lang()));
        }
        if let Some(e) = cause.downcast_ref::<ProfileError>() {
            return Some(e.text().render(lang()));
        }
        match cause.downcast_ref::<ConfigError>() {
            Some(e) => Some(e.text().render(lang())),
            _ => match cause.downcast_ref::<StoreError>() {
                Some(StoreError::Missing(path)) => {
                    Some(tr("error.ledger_missing", &[("path", &path.display().to_string())]))
                }
                Some(StoreError::Foreign { path, why }) => {
                    Some(tr("error.ledger_foreign", &[("path", &path.display().to_string()), ("why", why)]))
                }
                Some(StoreError::TooNew { found, known }) => {
                    Some(tr("error.ledger_too_new", &[("found", &found.to_string()), ("known", &known.to_string())]))
                }
                _ => cause.downcast_ref::<UpstreamError>().map(upstream_text),
            },
        }
    })
}

/// The error and its causes joined with ": ", skipping a cause already said (thiserror
/// variants that print their source would otherwise repeat it).
pub(super) fn one_line(error: &anyhow::Error) -> String {
    let mut out = String::new();
    let mut last = String::new();
    for cause in error.chain() {
        // The OS's words for a file that is missing, not permitted or on a full disk are
        // said in the reader's language; others are quoted after the lead before them.
        let text = match cause.downcast_ref::<std::io::Error>() {
            Some(io) => crate::upstream::IoProblem::of(io).text().render(lang()),
            None => cause.to_string(),
        };
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
pub(super) fn holders(file: &Path) -> Vec<String> {
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
pub(super) fn check_ledger_access(db: &Path) -> CliResult<()> {
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
            // The right owner without the write bit: the mode is what to fix, not the owner.
            if meta.uid() == nix::unistd::geteuid().as_raw() {
                let bits = if meta.is_dir() { "u+rwx" } else { "u+rw" };
                return Err(usage(anyhow!(tr(
                    "error.ledger_mode",
                    &[
                        ("path", &path.display().to_string()),
                        ("owner", &owner),
                        ("mode", &format!("{:o}", meta.mode() & 0o7777)),
                        ("command", &format!("chmod {bits} {}", path.display())),
                    ]
                ))));
            }
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
pub(super) fn user_name(uid: u32) -> String {
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
pub(super) fn usage(error: impl Into<anyhow::Error>) -> anyhow::Error {
    anyhow::Error::new(Usage(error.into()))
}

pub(super) type CliResult<T = ExitCode> = anyhow::Result<T>;

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
