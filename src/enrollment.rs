//! An enrollment that survives a lost answer (`spec/upstream-api.md`, `request_id`).
//!
//! `provision` makes a request id for an enrollment code and keeps it on disk, written
//! and synced, before the first send ([`begin`]). An answer lost on the way (a timeout, a
//! reset, a garbled body) is asked for again with the same id, at most twice within the
//! command ([`enroll`]), and again by running `provision` once more with the same code:
//! upstream answers the same code with the same id with the same 200, never `code_used`.
//! Upstream's answer is kept beside the id ([`save`]) until the terminal is written
//! ([`finish`]), so a local failure after enrolling needs no new code.
//!
//! An entry is bound to its code (by SHA-256 of the code as upstream compares it; the
//! code itself is not kept) and to its upstream: an answer saved for one code is never
//! used for another. A run with another code sets the entry in hand aside under its
//! request id (nothing is deleted), and a later run with that code takes it up again; a
//! saved answer that no code can be proven for (an older redeemd's) is set aside too.
//!
//! Files, all mode 0600 in the data dir: `enrollment.json` (the entry in hand; `doctor`
//! warns while it exists), `enrollment-<request id>.json` (set aside),
//! `enrollment-unbound-<ms>.json` (an older redeemd's answer, or an unreadable file).
//! It touches no ledger and speaks HTTP only through [`crate::upstream`].

use crate::clock::Clock;
use crate::upstream::{Enrollment, Upstream, UpstreamError};
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};
use std::time::Duration;

/// The entry in hand.
pub const FILE: &str = "enrollment.json";
/// Attempts within one command: the first send and at most two retries.
pub const ATTEMPTS: u32 = 3;
/// The longest pause between attempts, whatever `Retry-After` asks.
const MAX_PAUSE: Duration = Duration::from_secs(10);

/// One enrollment: its code (as a digest), upstream, request id, and upstream's answer
/// once one arrived.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Pending {
    pub upstream: String,
    /// Hex SHA-256 of the code trimmed and in upper case ([`code_digest`]).
    pub code_sha256: String,
    pub request_id: String,
    /// When the request id was made (RFC 3339).
    pub made_at: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub answer: Option<Enrollment>,
}

impl Pending {
    /// Whether this is the enrollment of `code` at `upstream`.
    pub fn is_for(&self, upstream: &str, code: &str) -> bool {
        self.upstream == upstream
            && crate::secret::constant_time_eq(self.code_sha256.as_bytes(), code_digest(code).as_bytes())
    }
}

/// The digest an entry is bound by: upstream compares codes trimmed and case-blind.
pub fn code_digest(code: &str) -> String {
    crate::secret::hex(&crate::secret::sha256(code.trim().to_uppercase().as_bytes()))
}

/// What stood in the way of this code's enrollment, and where it went.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SetAside {
    /// The entry of another code (or another upstream), kept under its request id; a run
    /// with that code takes it up again. `terminal` when upstream's answer had arrived.
    OtherCode { path: PathBuf, made_at: String, request_id: String, terminal: Option<String> },
    /// An answer an older redeemd saved without its code: it is never used.
    Unbound { path: PathBuf, terminal: String },
    /// A file that is not an entry at all.
    Unreadable { path: PathBuf, error: String },
}

/// The entry this run goes on with.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Begun {
    pub pending: Pending,
    /// Taken up from an earlier run (its request id is sent again), else just made.
    pub resumed: bool,
    pub set_aside: Option<SetAside>,
}

pub fn path(data_dir: &Path) -> PathBuf {
    data_dir.join(FILE)
}

/// The entry for `code` at `upstream`: the one in hand, else one set aside earlier
/// (moved back in hand), else a new request id, written and synced before this returns
/// (and so before anything is sent). Whatever else was in hand is set aside first.
pub fn begin(data_dir: &Path, upstream: &str, code: &str, clock: &dyn Clock) -> std::io::Result<Begun> {
    let file = path(data_dir);
    let mut set_aside = None;
    match std::fs::read(&file) {
        Ok(bytes) => match read_entry(&bytes) {
            Entry::Pending(pending) if pending.is_for(upstream, code) => {
                return Ok(Begun { pending, resumed: true, set_aside: None });
            }
            Entry::Pending(pending) => {
                let dest = unique(data_dir, &format!("enrollment-{}", file_safe(&pending.request_id)));
                std::fs::rename(&file, &dest)?;
                set_aside = Some(SetAside::OtherCode {
                    path: dest,
                    made_at: pending.made_at,
                    request_id: pending.request_id,
                    terminal: pending.answer.map(|a| a.terminal_id),
                });
            }
            Entry::Unbound(terminal) => {
                let dest = unbound(data_dir, clock);
                std::fs::rename(&file, &dest)?;
                set_aside = Some(SetAside::Unbound { path: dest, terminal });
            }
            Entry::Unreadable(error) => {
                let dest = unbound(data_dir, clock);
                std::fs::rename(&file, &dest)?;
                set_aside = Some(SetAside::Unreadable { path: dest, error });
            }
        },
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => return Err(e),
    }
    sync_dir(data_dir);
    // A run with this code that another code's run set aside.
    for (aside, pending) in set_aside_entries(data_dir) {
        if pending.is_for(upstream, code) {
            std::fs::rename(&aside, &file)?;
            sync_dir(data_dir);
            return Ok(Begun { pending, resumed: true, set_aside });
        }
    }
    let now = clock.now();
    let pending = Pending {
        upstream: upstream.to_owned(),
        code_sha256: code_digest(code),
        request_id: crate::store::new_uuid(now),
        made_at: now.to_string(),
        answer: None,
    };
    save(data_dir, &pending)?;
    Ok(Begun { pending, resumed: false, set_aside })
}

/// Where a file that is no entry of a code goes.
fn unbound(data_dir: &Path, clock: &dyn Clock) -> PathBuf {
    unique(data_dir, &format!("enrollment-unbound-{}", clock.now().as_millisecond()))
}

/// Writes the entry in hand (0600, synced, renamed into place, directory synced).
pub fn save(data_dir: &Path, pending: &Pending) -> std::io::Result<()> {
    let text = serde_json::to_vec(pending).map_err(std::io::Error::other)?;
    crate::secret::write_secret(&path(data_dir), &text)
}

/// The terminal is written: the entry in hand (it holds the token) is no longer needed.
/// Returns the entries of other codes still set aside, to be told about.
pub fn finish(data_dir: &Path) -> Vec<PathBuf> {
    let _ = std::fs::remove_file(path(data_dir));
    sync_dir(data_dir);
    set_aside_entries(data_dir).into_iter().map(|(path, _)| path).collect()
}

/// Upstream refused the code for good (401, 409, 410): the enrollment is over, and its
/// request id with it.
pub fn refused(data_dir: &Path) {
    let _ = std::fs::remove_file(path(data_dir));
    sync_dir(data_dir);
}

/// `POST /v1/enroll` with the entry's request id, sent again when the answer may have
/// been lost ([`may_be_lost`]: a timeout, a reset, a garbled or 5xx answer), at most [`ATTEMPTS`] times in all, pausing
/// 1 s, then 2 s (or what `Retry-After` asks, up to 10 s). `lost` hears of each retry:
/// (the attempt about to be made, counting from 1, and why the last one failed).
pub async fn enroll(
    upstream: &Upstream,
    code: &str,
    label: &str,
    request_id: &str,
    clock: &dyn Clock,
    mut lost: impl FnMut(u32, &UpstreamError),
) -> Result<Enrollment, UpstreamError> {
    let mut attempt = 1;
    loop {
        match upstream.enroll(code, label, request_id).await {
            Err(e) if may_be_lost(&e) && attempt < ATTEMPTS => {
                let pause = Duration::from_secs(1 << (attempt - 1));
                let pause = e.retry_after(clock.now()).map_or(pause, |asked| asked.max(pause)).min(MAX_PAUSE);
                attempt += 1;
                lost(attempt, &e);
                tokio::time::sleep(pause).await;
            }
            other => return other,
        }
    }
}

/// Whether upstream may have taken the enrollment while its answer did not arrive: the
/// exchange timed out, was reset or cut short, or answered what is no answer (5xx,
/// garbage). Asking again under the same request id is then what the spec says; a
/// refused connection, a name or a certificate that fails is not a lost answer.
pub fn may_be_lost(e: &UpstreamError) -> bool {
    matches!(e, UpstreamError::Retryable { .. } | UpstreamError::Reset { .. } | UpstreamError::TimedOut { .. })
}

enum Entry {
    Pending(Pending),
    /// An older redeemd's `{upstream, answer}`: the terminal id its answer gave.
    Unbound(String),
    Unreadable(String),
}

fn read_entry(bytes: &[u8]) -> Entry {
    #[derive(Deserialize)]
    struct Unbound {
        answer: Enrollment,
    }
    match serde_json::from_slice::<Pending>(bytes) {
        Ok(pending) => Entry::Pending(pending),
        Err(e) => match serde_json::from_slice::<Unbound>(bytes) {
            Ok(old) => Entry::Unbound(old.answer.terminal_id),
            Err(_) => Entry::Unreadable(e.to_string()),
        },
    }
}

/// The entries set aside in `data_dir` (`enrollment-*.json` that read as entries).
fn set_aside_entries(data_dir: &Path) -> Vec<(PathBuf, Pending)> {
    let mut found: Vec<(PathBuf, Pending)> = std::fs::read_dir(data_dir)
        .into_iter()
        .flatten()
        .flatten()
        .filter(|e| {
            let name = e.file_name().to_string_lossy().into_owned();
            name.starts_with("enrollment-") && name.ends_with(".json")
        })
        .filter_map(|e| match read_entry(&std::fs::read(e.path()).ok()?) {
            Entry::Pending(p) => Some((e.path(), p)),
            _ => None,
        })
        .collect();
    found.sort_by(|a, b| a.0.cmp(&b.0));
    found
}

/// `<stem>.json` in `dir`, or `<stem>-2.json`, … when that is taken: nothing set aside
/// is ever overwritten.
fn unique(dir: &Path, stem: &str) -> PathBuf {
    let first = dir.join(format!("{stem}.json"));
    if !first.exists() {
        return first;
    }
    (2u32..).map(|n| dir.join(format!("{stem}-{n}.json"))).find(|p| !p.exists()).unwrap_or(first)
}

/// A request id as a file-name part: only what a UUID holds.
fn file_safe(id: &str) -> String {
    id.chars().filter(|c| c.is_ascii_alphanumeric() || *c == '-').take(64).collect()
}

fn sync_dir(dir: &Path) {
    let _ = std::fs::File::open(dir).and_then(|d| d.sync_all());
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::clock::ManualClock;

    fn answer(terminal: &str) -> Enrollment {
        Enrollment {
            terminal_id: terminal.into(),
            merchant_id: "M-1".into(),
            merchant_name: String::new(),
            merchant_category: "dining".into(),
            token: "tok".into(),
            timezone: "Asia/Shanghai".into(),
            ruleset_keys: Vec::new(),
        }
    }

    const UP: &str = "https://u.example/";

    #[test]
    fn an_entry_is_bound_to_its_code_and_taken_up_again_after_another_code() {
        let dir = tempfile::tempdir().unwrap();
        let clock = ManualClock::new("2026-11-28T04:00:00Z".parse().unwrap());
        let a = begin(dir.path(), UP, "k7px-93qd ", &clock).unwrap();
        assert!(!a.resumed && a.set_aside.is_none());
        use std::os::unix::fs::PermissionsExt as _;
        let mode = std::fs::metadata(path(dir.path())).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
        // The same code (as upstream compares it) takes the same request id.
        let again = begin(dir.path(), UP, "K7PX-93QD", &clock).unwrap();
        assert!(again.resumed);
        assert_eq!(again.pending.request_id, a.pending.request_id);
        let mut with_answer = again.pending.clone();
        with_answer.answer = Some(answer("T-1"));
        save(dir.path(), &with_answer).unwrap();
        // Another code: a new id, and the first entry (with its answer) set aside, unused.
        clock.set("2026-11-28T04:01:00Z".parse().unwrap());
        let b = begin(dir.path(), UP, "OTHER-CODE", &clock).unwrap();
        assert!(!b.resumed);
        assert_ne!(b.pending.request_id, a.pending.request_id);
        assert!(b.pending.answer.is_none(), "never another code's answer");
        let Some(SetAside::OtherCode { path: aside, request_id, terminal, .. }) = b.set_aside else {
            panic!("{:?}", b.set_aside)
        };
        assert_eq!(request_id, a.pending.request_id);
        assert_eq!(terminal.as_deref(), Some("T-1"));
        assert!(aside.exists());
        // The same code at another upstream is another enrollment too.
        let c = begin(dir.path(), "https://other.example/", "OTHER-CODE", &clock).unwrap();
        assert!(!c.resumed && c.pending.request_id != b.pending.request_id);
        // Back to the first code: its entry, answer and id come back in hand.
        let back = begin(dir.path(), UP, "K7PX-93QD", &clock).unwrap();
        assert!(back.resumed);
        assert_eq!(back.pending, with_answer);
        assert!(!aside.exists());
        assert_eq!(finish(dir.path()).len(), 2, "the other two stay set aside");
        assert!(!path(dir.path()).exists());
    }

    #[test]
    fn an_answer_without_its_code_is_set_aside_never_used() {
        let dir = tempfile::tempdir().unwrap();
        let clock = ManualClock::new("2026-11-28T04:00:00Z".parse().unwrap());
        let old = serde_json::json!({"upstream": UP, "answer": answer("T-9")});
        std::fs::write(path(dir.path()), old.to_string()).unwrap();
        let b = begin(dir.path(), UP, "CODE", &clock).unwrap();
        assert!(!b.resumed && b.pending.answer.is_none());
        assert!(
            matches!(&b.set_aside, Some(SetAside::Unbound { terminal, path }) if terminal == "T-9" && path.exists())
        );
        std::fs::write(path(dir.path()), "{not json").unwrap();
        let c = begin(dir.path(), UP, "CODE", &clock).unwrap();
        assert!(matches!(c.set_aside, Some(SetAside::Unreadable { .. })));
        assert_ne!(c.pending.request_id, b.pending.request_id, "the unreadable file was the entry in hand");
    }
}
