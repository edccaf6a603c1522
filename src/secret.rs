//! Secrets on disk and how they are compared: the till's POS token, the manager PIN's
//! hash, the one-time cashier link, and page session tokens.
//!
//! Every secret file is written through a fresh `O_EXCL` temporary file of mode 0600 in
//! the same directory, fsynced, renamed over the target, and the directory fsynced, so a
//! reader never sees a half-written or world-readable secret. Comparisons run in
//! constant time. This module never logs a secret and keeps no ledger state.

use std::io::Write as _;
use std::os::unix::fs::{MetadataExt as _, OpenOptionsExt as _};
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use subtle::ConstantTimeEq as _;

pub const POS_TOKEN_FILE: &str = "pos-token";
pub const MANAGER_PIN_FILE: &str = "manager-pin";
pub const CASHIER_LINK_FILE: &str = "cashier-link";

/// Writes `bytes` to `path` atomically with mode 0600.
pub fn write_secret(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    write_atomic(path, bytes, 0o600)
}

/// Writes `bytes` to `path` atomically: an exclusive temporary file with `mode` beside it,
/// fsync, rename, fsync of the directory.
pub fn write_atomic(path: &Path, bytes: &[u8], mode: u32) -> std::io::Result<()> {
    let dir = path.parent().filter(|p| !p.as_os_str().is_empty()).unwrap_or(Path::new("."));
    let name = path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
    let tmp = dir.join(format!(".{name}.{}.tmp", hex(&random_bytes::<8>())));
    let result = (|| {
        let mut f = std::fs::OpenOptions::new().write(true).create_new(true).mode(mode).open(&tmp)?;
        f.write_all(bytes)?;
        f.sync_all()?;
        give_to_directory_owner(dir, &tmp)?;
        std::fs::rename(&tmp, path)?;
        std::fs::File::open(dir)?.sync_all()
    })();
    if result.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    result
}

/// Creates `dir` (and any missing parent) with mode 0700, so the ledger, the tokens and
/// the daemon's key are not readable by others through it. A directory that exists keeps
/// its mode: the package makes the service's one 0750 with the service's group.
pub fn create_private_dir(dir: &Path) -> std::io::Result<()> {
    use std::os::unix::fs::DirBuilderExt as _;
    std::fs::DirBuilder::new().recursive(true).mode(0o700).create(dir)
}

/// Creates `path` empty with mode 0600 unless it exists. SQLite takes an empty file for a
/// new database and gives its `-wal` and `-shm` files the database file's mode, so a
/// ledger or backup made this way is 0600 whole, whatever the umask.
pub fn create_private_file(path: &Path) -> std::io::Result<()> {
    match std::fs::OpenOptions::new().write(true).create_new(true).mode(0o600).open(path) {
        Ok(_) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => Ok(()),
        Err(e) => Err(e),
    }
}

/// Run as root (`sudo redeemd pos-token --rotate`) in a directory the service user owns,
/// the file goes to that user: a root-owned 0600 token would lock the daemon out.
fn give_to_directory_owner(dir: &Path, file: &Path) -> std::io::Result<()> {
    let (Ok(me), Ok(owner)) = (std::fs::metadata("/proc/self"), std::fs::metadata(dir)) else {
        return Ok(());
    };
    if me.uid() == 0 && owner.uid() != 0 {
        std::os::unix::fs::chown(file, Some(owner.uid()), Some(owner.gid()))?;
    }
    Ok(())
}

pub fn random_bytes<const N: usize>() -> [u8; N] {
    let mut bytes = [0u8; N];
    getrandom::fill(&mut bytes).expect("the operating system's random source");
    bytes
}

/// 256 random bits, base64url: a bearer token or a session cookie value.
pub fn random_token() -> String {
    crate::keys::b64url_encode(&random_bytes::<32>())
}

pub fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

pub fn sha256(bytes: &[u8]) -> [u8; 32] {
    use sha2::Digest as _;
    sha2::Sha256::digest(bytes).into()
}

pub fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.ct_eq(b).into()
}

pub fn pos_token_path(data_dir: &Path) -> PathBuf {
    data_dir.join(POS_TOKEN_FILE)
}

/// Makes the POS token if there is none; true when it made one.
pub fn ensure_pos_token(data_dir: &Path) -> std::io::Result<bool> {
    let path = pos_token_path(data_dir);
    if path.exists() {
        return Ok(false);
    }
    write_secret(&path, random_token().as_bytes())?;
    Ok(true)
}

/// Replaces the POS token; the old one stops working at once (the daemon re-reads the
/// file when it changes).
pub fn rotate_pos_token(data_dir: &Path) -> std::io::Result<String> {
    let token = random_token();
    write_secret(&pos_token_path(data_dir), token.as_bytes())?;
    Ok(token)
}

/// A PIN for the manager's pages: 4 to 12 ASCII digits.
pub fn check_pin(pin: &str) -> Result<(), crate::messages::Text> {
    if !(4..=12).contains(&pin.len()) || !pin.bytes().all(|b| b.is_ascii_digit()) {
        // The rule as a text of the tables: the command line says it in the configured language.
        return Err(crate::messages::Text::new("config.pin_rule", vec![]));
    }
    Ok(())
}

/// A slow salted hash (Argon2id, PHC string) of the PIN.
pub fn hash_pin(pin: &str) -> String {
    use argon2::password_hash::PasswordHasher as _;
    argon2::Argon2::default().hash_password(pin.as_bytes()).map(|h| h.to_string()).unwrap_or_default()
}

pub fn verify_pin(phc: &str, pin: &str) -> bool {
    use argon2::password_hash::{phc::PasswordHash, PasswordVerifier as _};
    let Ok(hash) = PasswordHash::new(phc.trim()) else {
        return false;
    };
    argon2::Argon2::default().verify_password(pin.as_bytes(), &hash).is_ok()
}

/// A file-backed secret that is re-read whenever the file changes (rename, size, mtime),
/// so `pos-token --rotate` and `manager-pin set` take effect in a running daemon at once.
/// Checking costs one `stat` per use.
#[derive(Debug)]
pub struct WatchedFile {
    path: PathBuf,
    cached: Mutex<Option<(Stamp, String)>>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Stamp {
    ino: u64,
    size: u64,
    mtime_ns: i128,
}

impl WatchedFile {
    pub fn new(path: PathBuf) -> WatchedFile {
        WatchedFile { path, cached: Mutex::new(None) }
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The file's text (trimmed), or `None` when it does not exist or cannot be read.
    pub fn current(&self) -> Option<String> {
        let meta = std::fs::metadata(&self.path).ok()?;
        let stamp = Stamp {
            ino: meta.ino(),
            size: meta.size(),
            mtime_ns: i128::from(meta.mtime()) * 1_000_000_000 + i128::from(meta.mtime_nsec()),
        };
        let mut cached = self.cached.lock().unwrap_or_else(|e| e.into_inner());
        if let Some((s, text)) = cached.as_ref() {
            if *s == stamp {
                return Some(text.clone());
            }
        }
        let text = std::fs::read_to_string(&self.path).ok()?.trim().to_owned();
        *cached = Some((stamp, text.clone()));
        Some(text)
    }

    /// Whether the file was written after `at` (or is gone): what it grants was granted
    /// against an older secret.
    pub fn changed_since(&self, at: jiff::Timestamp) -> bool {
        let Ok(modified) = std::fs::metadata(&self.path).and_then(|m| m.modified()) else {
            return true;
        };
        jiff::Timestamp::try_from(modified).map_or(true, |m| m > at)
    }

    /// Constant-time comparison against the file's current text; false when absent.
    pub fn matches(&self, offered: &str) -> bool {
        match self.current() {
            Some(token) if !token.is_empty() => constant_time_eq(token.as_bytes(), offered.as_bytes()),
            _ => false,
        }
    }
}

/// The one-time link for the cashier screen: only a hash and the expiry are on disk.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct CashierLink {
    pub sha256: String,
    pub expires_ms: i64,
}

/// Makes a new one-time cashier link (replacing any unused one); returns its token.
pub fn new_cashier_link(data_dir: &Path, expires: jiff::Timestamp) -> std::io::Result<String> {
    let token = random_token();
    let link = CashierLink { sha256: hex(&sha256(token.as_bytes())), expires_ms: expires.as_millisecond() };
    write_secret(&data_dir.join(CASHIER_LINK_FILE), serde_json::to_string(&link).unwrap_or_default().as_bytes())?;
    Ok(token)
}

/// Uses up the cashier link if `token` is it and it has not expired: true once.
pub fn redeem_cashier_link(data_dir: &Path, token: &str, now: jiff::Timestamp) -> bool {
    let path = data_dir.join(CASHIER_LINK_FILE);
    let Ok(text) = std::fs::read_to_string(&path) else {
        return false;
    };
    let Ok(link) = serde_json::from_str::<CashierLink>(&text) else {
        return false;
    };
    let offered = hex(&sha256(token.as_bytes()));
    if !constant_time_eq(offered.as_bytes(), link.sha256.as_bytes()) || now.as_millisecond() >= link.expires_ms {
        return false;
    }
    // Removing it is what makes the link one-time; a link that cannot be removed is refused.
    std::fs::remove_file(&path).is_ok()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt as _;

    #[test]
    fn secrets_are_0600_even_over_a_leftover_world_readable_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("pos-token");
        std::fs::write(&path, "old").unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).unwrap();
        write_secret(&path, b"new").unwrap();
        assert_eq!(std::fs::metadata(&path).unwrap().permissions().mode() & 0o777, 0o600);
        assert_eq!(std::fs::read_to_string(&path).unwrap(), "new");
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 1, "no temporary file left");
    }

    #[test]
    fn a_watched_file_sees_a_rotation_at_once() {
        let dir = tempfile::tempdir().unwrap();
        assert!(ensure_pos_token(dir.path()).unwrap());
        assert!(!ensure_pos_token(dir.path()).unwrap());
        let watched = WatchedFile::new(pos_token_path(dir.path()));
        let first = watched.current().unwrap();
        assert!(first.len() >= 43, "256 bits in base64url");
        assert!(watched.matches(&first));
        let second = rotate_pos_token(dir.path()).unwrap();
        assert!(!watched.matches(&first));
        assert!(watched.matches(&second));
        assert!(!watched.matches(""));
    }

    #[test]
    fn pins_are_hashed_slowly_and_checked() {
        assert!(check_pin("1234").is_ok());
        assert!(check_pin("123").is_err() && check_pin("12345678901234").is_err() && check_pin("12a4").is_err());
        let phc = hash_pin("2468");
        assert!(phc.starts_with("$argon2id$"), "{phc}");
        assert!(verify_pin(&phc, "2468"));
        assert!(!verify_pin(&phc, "2469"));
        assert!(!verify_pin("garbage", "2468"));
    }

    #[test]
    fn a_cashier_link_works_once_and_not_after_it_expires() {
        let dir = tempfile::tempdir().unwrap();
        let now = jiff::Timestamp::from_second(1_800_000_000).unwrap();
        let token = new_cashier_link(dir.path(), now + jiff::SignedDuration::from_mins(10)).unwrap();
        assert!(!redeem_cashier_link(dir.path(), "wrong", now));
        assert!(redeem_cashier_link(dir.path(), &token, now));
        assert!(!redeem_cashier_link(dir.path(), &token, now));
        let token = new_cashier_link(dir.path(), now).unwrap();
        assert!(!redeem_cashier_link(dir.path(), &token, now), "expired");
    }
}
