//! The sandbox's state file, `sandbox.sqlite` in its directory (0600; WAL,
//! `synchronous=FULL`, a 10 s busy timeout, so the server and the other `sandbox`
//! verbs — separate processes — share it): the campaigns' statuses, revoked ids, every
//! published rule set, enrollment codes, terminals (a token's SHA-256 only, never the
//! token), redemptions, each event's first answer, and the sample coupons made.
//!
//! Every write is one `BEGIN IMMEDIATE` transaction, so an enrollment, a batch of
//! events or a publication is whole or absent; SQL is parametrised only. This is the only
//! SQL outside `store`: it never opens a terminal's ledger, and decides nothing that
//! `spec/upstream-api.md` does not say upstream decides.

use super::campaigns::{Catalog, Merchant};
use super::SandboxError;
use crate::issuer::Issuer;
use crate::ruleset::CampaignStatus;
use jiff::{SignedDuration, Timestamp};
use rusqlite::{params, Connection, OptionalExtension as _, TransactionBehavior};
use serde_json::{json, Value};
use std::path::{Path, PathBuf};

/// SQLite `application_id` of a sandbox state file: "RDMS".
const APPLICATION_ID: i64 = 0x5244_4d53;

const SCHEMA: &str = "
CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL) STRICT;
CREATE TABLE campaign (campaign_id TEXT PRIMARY KEY, status TEXT NOT NULL) STRICT;
CREATE TABLE revoked (coupon_id TEXT PRIMARY KEY, revoked_ms INTEGER NOT NULL) STRICT;
CREATE TABLE ruleset (
    version INTEGER PRIMARY KEY, published_ms INTEGER NOT NULL, expires_ms INTEGER NOT NULL,
    why TEXT NOT NULL, jws TEXT NOT NULL) STRICT;
CREATE TABLE code (
    code TEXT PRIMARY KEY, made_ms INTEGER NOT NULL, expires_ms INTEGER NOT NULL, merchant TEXT NOT NULL,
    used_ms INTEGER, terminal_id TEXT, request_id TEXT) STRICT;
CREATE TABLE terminal (
    terminal_id TEXT PRIMARY KEY, label TEXT NOT NULL, merchant TEXT NOT NULL, code TEXT NOT NULL,
    enrolled_ms INTEGER NOT NULL, token_seed BLOB NOT NULL, token_hash BLOB NOT NULL UNIQUE,
    retired_ms INTEGER, agent_version TEXT, heartbeat_ms INTEGER, ruleset_version INTEGER,
    unsynced INTEGER, scanner TEXT, clock_offset_ms INTEGER) STRICT;
CREATE TABLE redemption (
    redemption_id TEXT PRIMARY KEY, coupon_id TEXT NOT NULL, campaign_id TEXT NOT NULL,
    terminal_id TEXT NOT NULL, at TEXT NOT NULL, discount INTEGER NOT NULL, presentation TEXT NOT NULL,
    outcome TEXT NOT NULL, received_ms INTEGER NOT NULL, voided_at TEXT, void_reason TEXT) STRICT;
-- At most one live redemption per coupon: the one that decides `conflict`.
CREATE UNIQUE INDEX redemption_live ON redemption(coupon_id) WHERE outcome = 'accepted' AND voided_at IS NULL;
CREATE TABLE event (
    event_id TEXT PRIMARY KEY, terminal_id TEXT NOT NULL, seq INTEGER NOT NULL, type TEXT NOT NULL,
    redemption_id TEXT NOT NULL, received_ms INTEGER NOT NULL, answer TEXT NOT NULL) STRICT;
CREATE TABLE coupon (
    coupon_id TEXT PRIMARY KEY, campaign_id TEXT NOT NULL, number INTEGER NOT NULL,
    issued_ms INTEGER NOT NULL, holder_bound INTEGER NOT NULL) STRICT;
";

/// A published rule set is replaced by a fresh version when it has less than this left.
const REFRESH_BEFORE_END: SignedDuration = SignedDuration::from_hours(24 * 7);

pub(super) struct State {
    conn: Connection,
    path: PathBuf,
}

/// An enrollment code as made.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Code {
    pub code: String,
    pub expires_at: Timestamp,
}

/// An enrollment code and what became of it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CodeRow {
    pub code: String,
    pub made_at: Timestamp,
    pub expires_at: Timestamp,
    pub used_at: Option<Timestamp>,
    pub terminal_id: Option<String>,
}

/// A terminal as `sandbox terminals` lists it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TerminalRow {
    pub terminal_id: String,
    pub label: String,
    pub merchant_id: String,
    pub enrolled_at: Timestamp,
    pub retired_at: Option<Timestamp>,
    pub heartbeat_at: Option<Timestamp>,
    pub agent_version: Option<String>,
    pub ruleset_version: Option<u64>,
    pub unsynced: Option<u64>,
    pub scanner: Option<String>,
    /// The terminal's clock minus the sandbox's, at its last heartbeat.
    pub clock_offset_ms: Option<i64>,
    /// Events received from it.
    pub events: u64,
}

/// A rule set as published.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredRuleset {
    pub version: u64,
    pub published_at: Timestamp,
    pub expires_at: Timestamp,
    pub jws: String,
}

/// What a publication made.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Published {
    pub version: u64,
    pub campaigns: usize,
    pub revoked: usize,
    pub expires_at: Timestamp,
}

/// Whose bearer token a request carries.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Auth {
    Terminal(String),
    Retired(String),
    Unknown,
}

/// `POST /v1/enroll`'s body, checked for shape.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EnrollRequest {
    pub code: String,
    pub label: String,
    pub agent_version: String,
    pub request_id: Option<String>,
}

/// A terminal's identity as the enrollment answer gives it (the token derived again,
/// never read from disk).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Identity {
    pub terminal_id: String,
    pub label: String,
    pub merchant: Merchant,
    pub token: String,
}

/// What `spec/upstream-api.md` answers an enrollment.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum EnrollOutcome {
    /// 200: a new terminal.
    Enrolled(Identity),
    /// 200 again: the same code with the same `request_id` (an answer that was lost).
    Replayed(Identity),
    /// 401 `invalid_code`.
    InvalidCode,
    /// 409 `code_used` (another `request_id`, or the terminal was retired since).
    CodeUsed,
    /// 410 `code_expired`.
    CodeExpired,
}

/// `POST /v1/heartbeat`'s body: what the terminal says of itself.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Heartbeat {
    pub agent_version: Option<String>,
    pub ruleset_version: Option<u64>,
    pub unsynced: Option<u64>,
    pub scanner: Option<String>,
    pub time: Option<Timestamp>,
}

/// One event of `POST /v1/redemptions`, checked for shape.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Event {
    pub event_id: String,
    pub seq: i64,
    pub redemption_id: String,
    /// As sent (RFC 3339), and as an instant.
    pub at: String,
    pub at_instant: Timestamp,
    pub kind: EventKind,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum EventKind {
    Redeem { coupon_id: String, campaign_id: String, code: String, presentation: String, discount: i64 },
    Void { reason: Option<String> },
}

/// A terminal's token: HMAC-SHA256 under the sandbox's token key of its id and a random
/// seed kept with it, so a replayed enrollment answers the same token while only the
/// token's hash is stored.
pub(super) fn derive_token(token_key: &[u8; 32], terminal_id: &str, seed: &[u8]) -> String {
    use hmac::{KeyInit as _, Mac as _};
    // HMAC pads a short key with zeros to the block: the same MAC as the 32-byte key.
    let mut block = [0u8; 64];
    block[..32].copy_from_slice(token_key);
    let mut mac = hmac::Hmac::<sha2::Sha256>::new(&block.into());
    mac.update(b"redeemd-sandbox-token\0");
    mac.update(terminal_id.as_bytes());
    mac.update(b"\0");
    mac.update(seed);
    crate::keys::b64url_encode(&mac.finalize().into_bytes())
}

fn ms(at: Timestamp) -> i64 {
    at.as_millisecond()
}

fn instant(ms: i64) -> Timestamp {
    Timestamp::from_millisecond(ms).unwrap_or(Timestamp::UNIX_EPOCH)
}

fn status_text(status: CampaignStatus) -> &'static str {
    match status {
        CampaignStatus::Active => "active",
        CampaignStatus::Paused => "paused",
        CampaignStatus::Ended => "ended",
    }
}

fn status_of(text: &str) -> CampaignStatus {
    match text {
        "paused" => CampaignStatus::Paused,
        "ended" => CampaignStatus::Ended,
        _ => CampaignStatus::Active,
    }
}

/// Enrollment codes are said in capitals with a dash; what an installer types is
/// matched without case and surrounding blanks.
pub fn normalize_code(code: &str) -> String {
    code.trim().to_uppercase()
}

impl State {
    /// Opens the state file, making it (0600, with the schema) when `create` is set and
    /// it does not exist.
    pub(super) fn open(path: &Path, create: bool) -> Result<State, SandboxError> {
        if !path.exists() {
            if !create {
                return Err(SandboxError::NotASandbox { dir: path.parent().map(Path::to_owned).unwrap_or_default() });
            }
            crate::secret::create_private_file(path)
                .map_err(|source| SandboxError::Write { path: path.to_owned(), source })?;
        }
        let sql = |source: rusqlite::Error| SandboxError::State { path: path.to_owned(), source };
        let conn = Connection::open(path).map_err(sql)?;
        conn.busy_timeout(std::time::Duration::from_secs(10)).map_err(sql)?;
        let app: i64 = conn
            .pragma_query_value(None, "application_id", |r| r.get(0))
            .map_err(|e| SandboxError::Foreign { path: path.to_owned(), why: e.to_string() })?;
        let tables: i64 = conn.query_row("SELECT count(*) FROM sqlite_master", [], |r| r.get(0)).map_err(sql)?;
        if app != APPLICATION_ID && !(app == 0 && tables == 0) {
            return Err(SandboxError::Foreign {
                path: path.to_owned(),
                why: format!("its SQLite application_id is {app:#x}, not the sandbox's"),
            });
        }
        let mode: String = conn.pragma_update_and_check(None, "journal_mode", "WAL", |r| r.get(0)).map_err(sql)?;
        if !mode.eq_ignore_ascii_case("wal") {
            return Err(SandboxError::Foreign { path: path.to_owned(), why: format!("journal mode {mode}, not WAL") });
        }
        conn.pragma_update(None, "synchronous", "FULL").map_err(sql)?;
        let mut state = State { conn, path: path.to_owned() };
        if tables == 0 {
            let tx = state.conn.transaction_with_behavior(TransactionBehavior::Immediate).map_err(sql)?;
            // Another process may have made it since we looked.
            let made: i64 = tx.query_row("SELECT count(*) FROM sqlite_master", [], |r| r.get(0)).map_err(sql)?;
            if made == 0 {
                tx.execute_batch(SCHEMA).map_err(sql)?;
                tx.pragma_update(None, "application_id", APPLICATION_ID).map_err(sql)?;
                tx.pragma_update(None, "user_version", 1).map_err(sql)?;
            }
            tx.commit().map_err(sql)?;
        }
        Ok(state)
    }

    fn err(&self) -> impl Fn(rusqlite::Error) -> SandboxError + '_ {
        move |source| SandboxError::State { path: self.path.clone(), source }
    }

    pub(super) fn meta(&self, key: &str) -> Result<Option<String>, SandboxError> {
        self.conn.query_row("SELECT value FROM meta WHERE key = ?1", [key], |r| r.get(0)).optional().map_err(self.err())
    }

    pub(super) fn set_meta(&mut self, key: &str, value: &str) -> Result<(), SandboxError> {
        self.conn
            .execute(
                "INSERT INTO meta (key, value) VALUES (?1, ?2) ON CONFLICT(key) DO UPDATE SET value = ?2",
                [key, value],
            )
            .map(drop)
            .map_err(self.err())
    }

    /// The catalog in force (stored as JSON when imported).
    pub(super) fn catalog(&self) -> Result<Option<Catalog>, SandboxError> {
        match self.meta("catalog")? {
            None => Ok(None),
            Some(text) => serde_json::from_str(&text).map(Some).map_err(|e| SandboxError::Foreign {
                path: self.path.clone(),
                why: format!("its campaigns cannot be read: {e}"),
            }),
        }
    }

    /// Makes `catalog` the one in force (statuses from the file, its revoked ids added to
    /// those revoked since) and publishes it, in one transaction.
    pub(super) fn import(
        &mut self,
        catalog: &Catalog,
        digest: &str,
        issuer: &Issuer,
        now: Timestamp,
        why: &str,
    ) -> Result<Published, SandboxError> {
        let path = self.path.clone();
        let sql = |source: rusqlite::Error| SandboxError::State { path: path.clone(), source };
        let tx = self.conn.transaction_with_behavior(TransactionBehavior::Immediate).map_err(sql)?;
        let text = serde_json::to_string(catalog).unwrap_or_default();
        for (key, value) in [("catalog", text.as_str()), ("catalog_digest", digest)] {
            tx.execute(
                "INSERT INTO meta (key, value) VALUES (?1, ?2) ON CONFLICT(key) DO UPDATE SET value = ?2",
                [key, value],
            )
            .map_err(sql)?;
        }
        tx.execute("DELETE FROM campaign", []).map_err(sql)?;
        for c in &catalog.campaigns {
            tx.execute(
                "INSERT INTO campaign (campaign_id, status) VALUES (?1, ?2)",
                params![c.id, status_text(c.status)],
            )
            .map_err(sql)?;
        }
        for id in &catalog.revoked {
            tx.execute("INSERT OR IGNORE INTO revoked (coupon_id, revoked_ms) VALUES (?1, ?2)", params![id, ms(now)])
                .map_err(sql)?;
        }
        let published = publish_in(&tx, catalog, issuer, now, why).map_err(sql)?;
        tx.commit().map_err(sql)?;
        Ok(published)
    }

    /// Publishes the next version as things stand (`why` is kept with it).
    pub(super) fn publish(&mut self, issuer: &Issuer, now: Timestamp, why: &str) -> Result<Published, SandboxError> {
        let catalog = self.catalog()?.ok_or_else(|| SandboxError::NotASandbox { dir: self.dir() })?;
        let path = self.path.clone();
        let sql = |source: rusqlite::Error| SandboxError::State { path: path.clone(), source };
        let tx = self.conn.transaction_with_behavior(TransactionBehavior::Immediate).map_err(sql)?;
        let published = publish_in(&tx, &catalog, issuer, now, why).map_err(sql)?;
        tx.commit().map_err(sql)?;
        Ok(published)
    }

    fn dir(&self) -> PathBuf {
        self.path.parent().map(Path::to_owned).unwrap_or_default()
    }

    /// Revokes `ids` (those not revoked yet) and publishes; `None` when all were.
    pub(super) fn revoke(
        &mut self,
        ids: &[String],
        issuer: &Issuer,
        now: Timestamp,
    ) -> Result<(usize, Option<Published>), SandboxError> {
        let catalog = self.catalog()?.ok_or_else(|| SandboxError::NotASandbox { dir: self.dir() })?;
        let path = self.path.clone();
        let sql = |source: rusqlite::Error| SandboxError::State { path: path.clone(), source };
        let tx = self.conn.transaction_with_behavior(TransactionBehavior::Immediate).map_err(sql)?;
        let mut added = 0;
        for id in ids {
            added += tx
                .execute("INSERT OR IGNORE INTO revoked (coupon_id, revoked_ms) VALUES (?1, ?2)", params![id, ms(now)])
                .map_err(sql)?;
        }
        let published = if added > 0 {
            Some(publish_in(&tx, &catalog, issuer, now, &format!("revoke {}", ids.join(" "))).map_err(sql)?)
        } else {
            None
        };
        tx.commit().map_err(sql)?;
        Ok((added, published))
    }

    /// Sets a campaign's status and publishes; `Ok(None)` when it already had it, an
    /// error naming the known campaigns when there is no such campaign.
    pub(super) fn set_status(
        &mut self,
        campaign: &str,
        status: CampaignStatus,
        issuer: &Issuer,
        now: Timestamp,
    ) -> Result<Option<Published>, SandboxError> {
        let catalog = self.catalog()?.ok_or_else(|| SandboxError::NotASandbox { dir: self.dir() })?;
        if catalog.campaign(campaign).is_none() {
            return Err(SandboxError::UnknownCampaign { id: campaign.to_owned(), known: catalog.campaign_ids() });
        }
        let path = self.path.clone();
        let sql = |source: rusqlite::Error| SandboxError::State { path: path.clone(), source };
        let tx = self.conn.transaction_with_behavior(TransactionBehavior::Immediate).map_err(sql)?;
        let changed = tx
            .execute(
                "UPDATE campaign SET status = ?2 WHERE campaign_id = ?1 AND status <> ?2",
                params![campaign, status_text(status)],
            )
            .map_err(sql)?;
        let published = if changed > 0 {
            Some(publish_in(&tx, &catalog, issuer, now, &format!("{} {campaign}", status_text(status))).map_err(sql)?)
        } else {
            None
        };
        tx.commit().map_err(sql)?;
        Ok(published)
    }

    /// The campaigns' statuses now, in the catalog's order.
    pub(super) fn statuses(&self) -> Result<Vec<(String, CampaignStatus)>, SandboxError> {
        let Some(catalog) = self.catalog()? else {
            return Ok(Vec::new());
        };
        let mut out = Vec::new();
        for c in &catalog.campaigns {
            let status: Option<String> = self
                .conn
                .query_row("SELECT status FROM campaign WHERE campaign_id = ?1", [&c.id], |r| r.get(0))
                .optional()
                .map_err(self.err())?;
            out.push((c.id.clone(), status.as_deref().map_or(c.status, status_of)));
        }
        Ok(out)
    }

    /// The newest rule set; a fresh version first when it has less than a week left.
    pub(super) fn current_ruleset(&mut self, issuer: &Issuer, now: Timestamp) -> Result<StoredRuleset, SandboxError> {
        let newest = self.newest_ruleset()?;
        match newest {
            Some(rs) if rs.expires_at - REFRESH_BEFORE_END > now => Ok(rs),
            _ => {
                self.publish(issuer, now, "refresh before the rule set ends")?;
                self.newest_ruleset()?.ok_or_else(|| SandboxError::NotASandbox { dir: self.dir() })
            }
        }
    }

    /// The newest version number only (cheap: what the server asks on every request).
    pub(super) fn newest_version(&self) -> Result<Option<u64>, SandboxError> {
        self.conn
            .query_row("SELECT max(version) FROM ruleset", [], |r| r.get::<_, Option<i64>>(0))
            .map(|v| v.and_then(|v| u64::try_from(v).ok()))
            .map_err(self.err())
    }

    pub(super) fn newest_ruleset(&self) -> Result<Option<StoredRuleset>, SandboxError> {
        self.conn
            .query_row(
                "SELECT version, published_ms, expires_ms, jws FROM ruleset ORDER BY version DESC LIMIT 1",
                [],
                |r| {
                    Ok(StoredRuleset {
                        version: u64::try_from(r.get::<_, i64>(0)?).unwrap_or(0),
                        published_at: instant(r.get(1)?),
                        expires_at: instant(r.get(2)?),
                        jws: r.get(3)?,
                    })
                },
            )
            .optional()
            .map_err(self.err())
    }

    pub(super) fn revoked(&self) -> Result<Vec<String>, SandboxError> {
        let mut stmt = self.conn.prepare("SELECT coupon_id FROM revoked ORDER BY coupon_id").map_err(self.err())?;
        let rows = stmt.query_map([], |r| r.get(0)).map_err(self.err())?;
        rows.collect::<Result<Vec<String>, _>>().map_err(self.err())
    }

    /// Stores `codes` (made by the caller) for `merchant`, valid until `expires`.
    pub(super) fn add_codes(
        &mut self,
        codes: &[String],
        merchant: &Merchant,
        now: Timestamp,
        expires: Timestamp,
        replace: bool,
    ) -> Result<usize, SandboxError> {
        let path = self.path.clone();
        let sql = |source: rusqlite::Error| SandboxError::State { path: path.clone(), source };
        let merchant = serde_json::to_string(merchant).unwrap_or_default();
        let tx = self.conn.transaction_with_behavior(TransactionBehavior::Immediate).map_err(sql)?;
        let mut added = 0;
        for code in codes {
            let statement = if replace {
                "INSERT OR REPLACE INTO code (code, made_ms, expires_ms, merchant) VALUES (?1, ?2, ?3, ?4)"
            } else {
                "INSERT OR IGNORE INTO code (code, made_ms, expires_ms, merchant) VALUES (?1, ?2, ?3, ?4)"
            };
            added += tx.execute(statement, params![code, ms(now), ms(expires), merchant]).map_err(sql)?;
        }
        tx.commit().map_err(sql)?;
        Ok(added)
    }

    pub(super) fn codes(&self) -> Result<Vec<CodeRow>, SandboxError> {
        let mut stmt = self
            .conn
            .prepare("SELECT code, made_ms, expires_ms, used_ms, terminal_id FROM code ORDER BY made_ms, code")
            .map_err(self.err())?;
        let rows = stmt
            .query_map([], |r| {
                Ok(CodeRow {
                    code: r.get(0)?,
                    made_at: instant(r.get(1)?),
                    expires_at: instant(r.get(2)?),
                    used_at: r.get::<_, Option<i64>>(3)?.map(instant),
                    terminal_id: r.get(4)?,
                })
            })
            .map_err(self.err())?;
        rows.collect::<Result<Vec<_>, _>>().map_err(self.err())
    }

    /// `POST /v1/enroll`, decided and (for a new terminal) committed in one transaction.
    pub(super) fn enroll(
        &mut self,
        request: &EnrollRequest,
        token_key: &[u8; 32],
        now: Timestamp,
    ) -> Result<EnrollOutcome, SandboxError> {
        let path = self.path.clone();
        let sql = |source: rusqlite::Error| SandboxError::State { path: path.clone(), source };
        let code = normalize_code(&request.code);
        let tx = self.conn.transaction_with_behavior(TransactionBehavior::Immediate).map_err(sql)?;
        let row: Option<(i64, String, Option<String>, Option<String>)> = tx
            .query_row("SELECT expires_ms, merchant, terminal_id, request_id FROM code WHERE code = ?1", [&code], |r| {
                Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?))
            })
            .optional()
            .map_err(sql)?;
        let Some((expires_ms, merchant, used_by, used_request)) = row else {
            return Ok(EnrollOutcome::InvalidCode);
        };
        if let Some(terminal_id) = used_by {
            // The same request again: the answer it was given, whatever the code's age.
            let same = request.request_id.is_some() && request.request_id == used_request;
            if !same {
                return Ok(EnrollOutcome::CodeUsed);
            }
            let row: Option<(String, String, Vec<u8>, Option<i64>)> = tx
                .query_row(
                    "SELECT label, merchant, token_seed, retired_ms FROM terminal WHERE terminal_id = ?1",
                    [&terminal_id],
                    |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?)),
                )
                .optional()
                .map_err(sql)?;
            return Ok(match row {
                Some((label, merchant, seed, None)) => EnrollOutcome::Replayed(Identity {
                    token: derive_token(token_key, &terminal_id, &seed),
                    merchant: serde_json::from_str(&merchant).unwrap_or_default(),
                    terminal_id,
                    label,
                }),
                // Retired since (or gone): that enrollment is over.
                _ => EnrollOutcome::CodeUsed,
            });
        }
        if ms(now) >= expires_ms {
            return Ok(EnrollOutcome::CodeExpired);
        }
        let number: i64 = tx
            .query_row(
                "SELECT coalesce(max(CAST(substr(terminal_id, 3) AS INTEGER)), 0) + 1 FROM terminal
                 WHERE terminal_id GLOB 'T-[0-9]*'",
                [],
                |r| r.get(0),
            )
            .map_err(sql)?;
        let terminal_id = format!("T-{number:04}");
        let seed = crate::secret::random_bytes::<16>();
        let token = derive_token(token_key, &terminal_id, &seed);
        let label: String = request.label.chars().filter(|c| !c.is_control()).take(64).collect();
        tx.execute(
            "INSERT INTO terminal (terminal_id, label, merchant, code, enrolled_ms, token_seed, token_hash, agent_version)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
            params![
                terminal_id,
                label,
                merchant,
                code,
                ms(now),
                seed.to_vec(),
                crate::secret::sha256(token.as_bytes()).to_vec(),
                request.agent_version
            ],
        )
        .map_err(sql)?;
        tx.execute(
            "UPDATE code SET used_ms = ?2, terminal_id = ?3, request_id = ?4 WHERE code = ?1",
            params![code, ms(now), terminal_id, request.request_id],
        )
        .map_err(sql)?;
        tx.commit().map_err(sql)?;
        Ok(EnrollOutcome::Enrolled(Identity {
            merchant: serde_json::from_str(&merchant).unwrap_or_default(),
            terminal_id,
            label,
            token,
        }))
    }

    /// Whose token `token` is.
    pub(super) fn authenticate(&self, token: &str) -> Result<Auth, SandboxError> {
        let hash = crate::secret::sha256(token.as_bytes()).to_vec();
        let row: Option<(String, Option<i64>)> = self
            .conn
            .query_row("SELECT terminal_id, retired_ms FROM terminal WHERE token_hash = ?1", [hash], |r| {
                Ok((r.get(0)?, r.get(1)?))
            })
            .optional()
            .map_err(self.err())?;
        Ok(match row {
            None => Auth::Unknown,
            Some((id, None)) => Auth::Terminal(id),
            Some((id, Some(_))) => Auth::Retired(id),
        })
    }

    pub(super) fn heartbeat(
        &mut self,
        terminal_id: &str,
        beat: &Heartbeat,
        now: Timestamp,
    ) -> Result<(), SandboxError> {
        let offset = beat.time.map(|t| (t - now).as_millis()).and_then(|v| i64::try_from(v).ok());
        self.conn
            .execute(
                "UPDATE terminal SET heartbeat_ms = ?2, agent_version = coalesce(?3, agent_version),
                 ruleset_version = ?4, unsynced = ?5, scanner = ?6, clock_offset_ms = ?7 WHERE terminal_id = ?1",
                params![
                    terminal_id,
                    ms(now),
                    beat.agent_version,
                    beat.ruleset_version.and_then(|v| i64::try_from(v).ok()),
                    beat.unsynced.and_then(|v| i64::try_from(v).ok()),
                    beat.scanner,
                    offset
                ],
            )
            .map(drop)
            .map_err(self.err())
    }

    pub(super) fn terminals(&self) -> Result<Vec<TerminalRow>, SandboxError> {
        let mut stmt = self
            .conn
            .prepare(
                "SELECT t.terminal_id, t.label, t.merchant, t.enrolled_ms, t.retired_ms, t.heartbeat_ms,
                        t.agent_version, t.ruleset_version, t.unsynced, t.scanner, t.clock_offset_ms,
                        (SELECT count(*) FROM event e WHERE e.terminal_id = t.terminal_id)
                 FROM terminal t ORDER BY t.enrolled_ms, t.terminal_id",
            )
            .map_err(self.err())?;
        let rows = stmt
            .query_map([], |r| {
                let merchant: String = r.get(2)?;
                Ok(TerminalRow {
                    terminal_id: r.get(0)?,
                    label: r.get(1)?,
                    merchant_id: serde_json::from_str::<Merchant>(&merchant).map(|m| m.id).unwrap_or_default(),
                    enrolled_at: instant(r.get(3)?),
                    retired_at: r.get::<_, Option<i64>>(4)?.map(instant),
                    heartbeat_at: r.get::<_, Option<i64>>(5)?.map(instant),
                    agent_version: r.get(6)?,
                    ruleset_version: r.get::<_, Option<i64>>(7)?.and_then(|v| u64::try_from(v).ok()),
                    unsynced: r.get::<_, Option<i64>>(8)?.and_then(|v| u64::try_from(v).ok()),
                    scanner: r.get(9)?,
                    clock_offset_ms: r.get(10)?,
                    events: u64::try_from(r.get::<_, i64>(11)?).unwrap_or(0),
                })
            })
            .map_err(self.err())?;
        rows.collect::<Result<Vec<_>, _>>().map_err(self.err())
    }

    /// Retires a terminal: its token stops working. `Ok(false)` when it was already.
    pub(super) fn retire(&mut self, terminal_id: &str, now: Timestamp) -> Result<bool, SandboxError> {
        let known: Vec<String> = self.terminals()?.into_iter().map(|t| t.terminal_id).collect();
        if !known.iter().any(|t| t == terminal_id) {
            return Err(SandboxError::UnknownTerminal { id: terminal_id.to_owned(), known });
        }
        let changed = self
            .conn
            .execute(
                "UPDATE terminal SET retired_ms = ?2 WHERE terminal_id = ?1 AND retired_ms IS NULL",
                params![terminal_id, ms(now)],
            )
            .map_err(self.err())?;
        Ok(changed > 0)
    }

    /// Records a live redemption of `coupon_id` by `terminal_id` at `at` (the demo's
    /// coupon "already used at another terminal"); nothing when the coupon has one.
    pub(super) fn seed_redemption(
        &mut self,
        coupon_id: &str,
        campaign_id: &str,
        terminal_id: &str,
        at: &str,
        now: Timestamp,
    ) -> Result<(), SandboxError> {
        self.conn
            .execute(
                "INSERT OR IGNORE INTO redemption
                   (redemption_id, coupon_id, campaign_id, terminal_id, at, discount, presentation, outcome, received_ms)
                 VALUES (?1, ?2, ?3, ?4, ?5, 0, 'static', 'accepted', ?6)",
                params![format!("seeded-{coupon_id}"), coupon_id, campaign_id, terminal_id, at, ms(now)],
            )
            .map(drop)
            .map_err(self.err())
    }

    /// A batch of events from `terminal_id`, answered in order and committed together:
    /// an event seen before gets its first answer again (`accepted` then `duplicate`).
    pub(super) fn redemptions(
        &mut self,
        terminal_id: &str,
        events: &[Event],
        coupon_key: &crate::keys::PublicKey,
        now: Timestamp,
    ) -> Result<Vec<Value>, SandboxError> {
        let path = self.path.clone();
        let sql = |source: rusqlite::Error| SandboxError::State { path: path.clone(), source };
        let tx = self.conn.transaction_with_behavior(TransactionBehavior::Immediate).map_err(sql)?;
        let mut results = Vec::with_capacity(events.len());
        for e in events {
            let first: Option<String> = tx
                .query_row("SELECT answer FROM event WHERE event_id = ?1", [&e.event_id], |r| r.get(0))
                .optional()
                .map_err(sql)?;
            if let Some(first) = first {
                let mut again: Value = serde_json::from_str(&first).unwrap_or_else(|_| json!({"status": "accepted"}));
                if again["status"] == "accepted" {
                    again["status"] = json!("duplicate");
                }
                again["event_id"] = json!(e.event_id);
                results.push(again);
                continue;
            }
            let (kind, answer) = match &e.kind {
                EventKind::Redeem { coupon_id, campaign_id, code, presentation, discount } => {
                    let mut answer = match code_refusal(code, coupon_id, campaign_id, coupon_key) {
                        Some(reason) => json!({"status": "rejected", "reason": reason}),
                        None => json!({"status": "accepted"}),
                    };
                    let revoked_ms: Option<i64> = tx
                        .query_row("SELECT revoked_ms FROM revoked WHERE coupon_id = ?1", [coupon_id], |r| r.get(0))
                        .optional()
                        .map_err(sql)?;
                    // A coupon redeemed before it was revoked stands; after, it is refused.
                    if answer["status"] == "accepted" && revoked_ms.is_some_and(|r| r <= ms(e.at_instant)) {
                        answer = json!({"status": "rejected", "reason": "revoked"});
                    }
                    if answer["status"] == "accepted" {
                        let live: Option<(String, String)> = tx
                            .query_row(
                                "SELECT terminal_id, at FROM redemption
                                 WHERE coupon_id = ?1 AND outcome = 'accepted' AND voided_at IS NULL",
                                [coupon_id],
                                |r| Ok((r.get(0)?, r.get(1)?)),
                            )
                            .optional()
                            .map_err(sql)?;
                        if let Some((by, at)) = live {
                            answer = json!({"status": "conflict", "redeemed_by": by, "redeemed_at": at});
                        }
                    }
                    let outcome = answer["status"].as_str().unwrap_or("accepted").to_owned();
                    tx.execute(
                        "INSERT OR IGNORE INTO redemption
                           (redemption_id, coupon_id, campaign_id, terminal_id, at, discount, presentation, outcome,
                            received_ms)
                         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)",
                        params![
                            e.redemption_id,
                            coupon_id,
                            campaign_id,
                            terminal_id,
                            e.at,
                            discount,
                            presentation,
                            outcome,
                            ms(now)
                        ],
                    )
                    .map_err(sql)?;
                    ("redeem", answer)
                }
                EventKind::Void { reason } => {
                    // Releases the coupon when this was its live redemption; a void of a
                    // conflicting or unknown redemption changes nothing but is received.
                    tx.execute(
                        "UPDATE redemption SET voided_at = ?2, void_reason = ?3
                         WHERE redemption_id = ?1 AND voided_at IS NULL",
                        params![e.redemption_id, e.at, reason],
                    )
                    .map_err(sql)?;
                    ("void", json!({"status": "accepted"}))
                }
            };
            let mut answer = answer;
            answer["event_id"] = json!(e.event_id);
            tx.execute(
                "INSERT INTO event (event_id, terminal_id, seq, type, redemption_id, received_ms, answer)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
                params![e.event_id, terminal_id, e.seq, kind, e.redemption_id, ms(now), answer.to_string()],
            )
            .map_err(sql)?;
            results.push(answer);
        }
        tx.commit().map_err(sql)?;
        Ok(results)
    }

    /// Reserves `count` coupon ids of `campaign` (`CAMPAIGN-000001`, …, never reused).
    pub(super) fn reserve_coupons(
        &mut self,
        campaign: &str,
        count: u32,
        holder_bound: bool,
        now: Timestamp,
    ) -> Result<Vec<String>, SandboxError> {
        let path = self.path.clone();
        let sql = |source: rusqlite::Error| SandboxError::State { path: path.clone(), source };
        let tx = self.conn.transaction_with_behavior(TransactionBehavior::Immediate).map_err(sql)?;
        let next: i64 = tx
            .query_row("SELECT coalesce(max(number), 0) + 1 FROM coupon WHERE campaign_id = ?1", [campaign], |r| {
                r.get(0)
            })
            .map_err(sql)?;
        // Coupon ids are at most 64 characters.
        let stem: String = campaign.chars().take(50).collect();
        let mut ids = Vec::with_capacity(count as usize);
        for number in next..next + i64::from(count) {
            let id = format!("{stem}-{number:06}");
            tx.execute(
                "INSERT INTO coupon (coupon_id, campaign_id, number, issued_ms, holder_bound) VALUES (?1, ?2, ?3, ?4, ?5)",
                params![id, campaign, number, ms(now), holder_bound],
            )
            .map_err(sql)?;
            ids.push(id);
        }
        tx.commit().map_err(sql)?;
        Ok(ids)
    }
}

/// Publishes the next version inside `tx`.
fn publish_in(
    tx: &rusqlite::Transaction<'_>,
    catalog: &Catalog,
    issuer: &Issuer,
    now: Timestamp,
    why: &str,
) -> Result<Published, rusqlite::Error> {
    let version: i64 = tx.query_row("SELECT coalesce(max(version), 0) + 1 FROM ruleset", [], |r| r.get(0))?;
    let mut statuses = Vec::with_capacity(catalog.campaigns.len());
    for c in &catalog.campaigns {
        let status: Option<String> =
            tx.query_row("SELECT status FROM campaign WHERE campaign_id = ?1", [&c.id], |r| r.get(0)).optional()?;
        statuses.push(status.as_deref().map_or(c.status, status_of));
    }
    let revoked: Vec<String> = {
        let mut stmt = tx.prepare("SELECT coupon_id FROM revoked ORDER BY coupon_id")?;
        let rows = stmt.query_map([], |r| r.get(0))?;
        rows.collect::<Result<_, _>>()?
    };
    let payload = super::campaigns::ruleset_payload(
        catalog,
        &statuses,
        &revoked,
        u64::try_from(version).unwrap_or(1),
        now,
        &issuer.coupon_key_json(),
    );
    let jws = issuer.sign_ruleset(&payload);
    let expires = now + catalog.validity();
    tx.execute(
        "INSERT INTO ruleset (version, published_ms, expires_ms, why, jws) VALUES (?1, ?2, ?3, ?4, ?5)",
        params![version, ms(now), ms(expires), why, jws],
    )?;
    Ok(Published {
        version: u64::try_from(version).unwrap_or(1),
        campaigns: catalog.campaigns.len(),
        revoked: revoked.len(),
        expires_at: expires,
    })
}

/// Why upstream refuses a redeem event's code for good, if it does: the text does not
/// decode (`malformed`), or its signatures do not verify with the sandbox's coupon key,
/// or it names another coupon or campaign than the event (`bad_signature`).
fn code_refusal(code: &str, coupon_id: &str, campaign_id: &str, key: &crate::keys::PublicKey) -> Option<&'static str> {
    let Ok(scanned) = crate::coupon::decode_any(code) else {
        return Some("malformed");
    };
    match scanned.verify(key) {
        Some(v) if v.coupon.coupon_id.as_str() == coupon_id && v.coupon.campaign_id == campaign_id => None,
        _ => Some("bad_signature"),
    }
}
