//! The ledger: the only module that speaks SQL. It owns the SQLite file (WAL,
//! `synchronous=FULL`, numbered migrations), the rule set in force, checkouts,
//! redemptions, voids and the append-only outbox.
//!
//! Every write is one transaction: a redemption and its outbox event commit together,
//! before the caller can report the decision. Rows are never deleted (triggers refuse
//! it); states are marked. It does not decide anything — [`crate::decision::decide`] does,
//! through the [`LedgerView`] this module implements over an open transaction.

use crate::claim::{self, ClaimRequest, Claimer, HolderSlots};
use crate::clock::rfc3339;
use crate::coupon::{Coupon, Shown};
use crate::decision::{self, Checkout, Decision, LedgerView, Terminal, Unsynced};
use crate::jws::JwsSource;
use crate::keys::b64url_encode;
use crate::money::Money;
use crate::ruleset::{Campaign, CampaignWire, Refusal, RevokedIds, RuleSet, RuleSetWire, TrustAnchor, VerifiedRuleSet};
use crate::upstream::{EventResult, EventStatus};
use jiff::tz::TimeZone;
use jiff::Timestamp;
use rusqlite::{params, Connection, OptionalExtension, TransactionBehavior};
use std::cell::RefCell;
use std::path::{Path, PathBuf};
use thiserror::Error;

const MIGRATIONS: &[(&str, &str)] = &[
    ("0001_ledger", include_str!("../migrations/0001_ledger.sql")),
    ("0002_daemon", include_str!("../migrations/0002_daemon.sql")),
    ("0003_presentation", include_str!("../migrations/0003_presentation.sql")),
    ("0004_ledger_v4", include_str!("../migrations/0004_ledger_v4.sql")),
    ("0005_unsynced_in_events", include_str!("../migrations/0005_unsynced_in_events.sql")),
    ("0006_outbox_cursor", include_str!("../migrations/0006_outbox_cursor.sql")),
    ("0007_void_by", include_str!("../migrations/0007_void_by.sql")),
    ("0008_store_hub", include_str!("../migrations/0008_store_hub.sql")),
];

#[derive(Debug, Error)]
pub enum StoreError {
    #[error("database {path}: {source}")]
    Open { path: PathBuf, source: rusqlite::Error },
    #[error("database {0} does not exist; run `redeemd init` first")]
    Missing(PathBuf),
    #[error("database schema version {found} is newer than this redeemd understands ({known}); upgrade redeemd")]
    TooNew { found: i64, known: i64 },
    #[error("database: {0}")]
    Sql(#[from] rusqlite::Error),
    #[error("stored rule set {version} no longer validates: {source}")]
    StoredRuleSet { version: u64, source: Refusal },
    #[error("stored data is corrupt: {0}")]
    Corrupt(String),
    #[error(
        "{path} is not a redeemd ledger ({why}); restore the ledger from a backup, \
         or move this file away if it really is not one — never `init --force` over a lost ledger"
    )]
    Foreign { path: PathBuf, why: String },
}

/// SQLite `application_id` of a redeemd ledger: "RDMD".
pub const LEDGER_APPLICATION_ID: i64 = 0x5244_4D44;

/// About 64 MiB of WAL at 4 KiB pages.
pub const AUTOCHECKPOINT_PAGES: i64 = 16_384;
/// The `meta` key of the clock skew the last heartbeat measured, when over the limit
/// (written by the forwarder, read by the status).
pub const META_CLOCK_SKEW: &str = "sync.clock_skew_s";
/// The `meta` key of the terminals this ledger was taken over from (a restore onto
/// another terminal): a JSON list of `{"terminal", "through_seq", "at_ms"}`, oldest
/// first; the events up to `through_seq`, and their redemptions, were that terminal's
/// (`""`: one provisioned by hand). It travels with the ledger in a backup.
pub const META_SWAPS: &str = "ledger.swaps";

/// A live redemption of a coupon, as a refusal's advice tells it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Redeemed {
    pub at: Timestamp,
    /// `Some(terminal)` when the terminal this ledger was taken over from made it (`""`:
    /// one provisioned by hand); `None` when this terminal did.
    pub before_swap: Option<String>,
}

#[derive(serde::Serialize, serde::Deserialize)]
struct Swap {
    terminal: String,
    through_seq: i64,
    at_ms: i64,
}

pub type Result<T, E = StoreError> = std::result::Result<T, E>;

fn ms(ts: Timestamp) -> i64 {
    ts.as_millisecond()
}

fn from_ms(ms: i64) -> Timestamp {
    Timestamp::from_millisecond(ms).unwrap_or(Timestamp::UNIX_EPOCH)
}

/// The lowest id [`new_uuid`] can make at `at` (as text, the first 48 bits are the
/// millisecond in hex, then '-', below every hex digit), for ranges of ids by time.
fn id_floor(at: Timestamp) -> String {
    let ms = u64::try_from(at.as_millisecond()).unwrap_or(0).min((1 << 48) - 1);
    format!("{:08x}-{:04x}-", ms >> 16, ms & 0xffff)
}

/// UUIDv7 from our clock (not the system's) and fresh random bits.
pub fn new_uuid(now: Timestamp) -> String {
    let secs = u64::try_from(now.as_second()).unwrap_or(0);
    let nanos = u32::try_from(now.subsec_nanosecond()).unwrap_or(0);
    uuid::Uuid::new_v7(uuid::Timestamp::from_unix(uuid::NoContext, secs, nanos)).to_string()
}

pub struct Store {
    conn: Connection,
}

/// What an import did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Install {
    Installed { previous: Option<u64> },
    Unchanged,
}

/// The rule set in force, as loaded from the database.
#[derive(Debug, Clone)]
pub struct Installed {
    pub rules: RuleSet,
    pub installed_at: Timestamp,
}

/// Which campaigns a rule set is loaded with.
#[derive(Debug, Clone, Copy)]
enum Campaigns<'a> {
    All,
    One(&'a str),
    None,
}

/// What proving the derived tables against the stored JWS found.
#[derive(Debug, PartialEq, Eq)]
pub enum DerivedProof {
    /// No rule set is installed: nothing to prove.
    Nothing,
    /// The tables are exactly what the verified JWS of `version` says.
    Proven { version: u64 },
    /// The stored JWS of `version` no longer verifies against the trust anchors.
    Unverified { version: u64, refusal: Refusal },
    /// The JWS verifies, but the tables differ from it (edited behind its back).
    Differs { version: u64 },
}

/// The stored JWS as a [`JwsSource`]: read in pieces through SQLite's incremental BLOB
/// I/O (which reads TEXT too). A read error is kept here and reported as a store error,
/// never as a refusal of the rule set.
struct BlobSource<'c> {
    blob: rusqlite::blob::Blob<'c>,
    error: RefCell<Option<rusqlite::Error>>,
}

impl JwsSource for BlobSource<'_> {
    fn len(&self) -> usize {
        self.blob.len()
    }

    fn read_at(&self, offset: usize, buf: &mut [u8]) -> std::io::Result<()> {
        self.blob.read_at_exact(buf, offset).map_err(|e| {
            let io = std::io::Error::other(e.to_string());
            self.error.borrow_mut().get_or_insert(e);
            io
        })
    }
}

/// Where a code is presented.
#[derive(Debug, Clone)]
pub enum CheckoutRef<'a> {
    /// An open checkout of the ledger.
    Existing(&'a str),
    /// A checkout of one code (the command line): written only if the code is accepted.
    Single { basket_total: Money, eligible_total: Option<Money>, pos_ref: Option<&'a str> },
}

/// A decision and, when accepted, the redemption it wrote.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Recorded {
    pub decision: Decision,
    pub redemption_id: Option<String>,
    pub checkout_id: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum VoidOutcome {
    Voided { coupon_id: String, discount: Money },
    AlreadyVoided { at: Timestamp },
    NotFound,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RedemptionRow {
    pub redemption_id: String,
    pub checkout_id: String,
    pub coupon_id: String,
    pub campaign_id: String,
    pub discount: Money,
    pub basket_total: Money,
    pub eligible_total: Money,
    pub at: Timestamp,
    pub voided_at: Option<Timestamp>,
    pub state: ForwardState,
    /// `static` (a CP1 code) or `dynamic` (a CP2 presentation).
    pub presentation: String,
    /// The reason given at the void, if any.
    pub void_reason: Option<String>,
    /// Who voided (`VoidBy`'s word); None when not voided, or voided before version 7.
    pub voided_by: Option<String>,
    /// Upstream's answer to the redeem event when it flagged it (`conflict`, `rejected`,
    /// or parked with its reason), as stored (JSON); None otherwise.
    pub upstream_answer: Option<String>,
    /// With a store hub: `confirmed`, `unconfirmed` or `conflict`; None without one.
    pub store_state: Option<String>,
}

/// Who voided a redemption (the `void.by` column and the report's `voided_by`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum VoidBy {
    /// Its checkout was cancelled.
    Checkout,
    /// The till, with the POS token.
    Till,
    /// The cashier screen's session.
    Cashier,
    /// The manager's session.
    Manager,
    /// `redeemd void` on the command line.
    CommandLine,
}

impl VoidBy {
    pub fn as_str(self) -> &'static str {
        match self {
            VoidBy::Checkout => "checkout",
            VoidBy::Till => "till",
            VoidBy::Cashier => "cashier",
            VoidBy::Manager => "manager",
            VoidBy::CommandLine => "command_line",
        }
    }
}

/// A state stored as a word in a `CHECK (… IN (…))` column: read back as the enum (a word
/// the schema does not allow reads as a corrupt ledger), shown as the word.
macro_rules! stored_state {
    ($(#[$doc:meta])* $name:ident { $($variant:ident => $word:literal),+ $(,)? }) => {
        $(#[$doc])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize)]
        #[serde(rename_all = "lowercase")]
        pub enum $name {
            $($variant),+
        }

        impl $name {
            pub const ALL: &'static [$name] = &[$($name::$variant),+];

            pub fn as_str(self) -> &'static str {
                match self {
                    $($name::$variant => $word),+
                }
            }

            pub fn parse(word: &str) -> Option<$name> {
                $name::ALL.iter().copied().find(|s| s.as_str() == word)
            }
        }

        impl std::fmt::Display for $name {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str(self.as_str())
            }
        }

        impl rusqlite::types::FromSql for $name {
            fn column_result(value: rusqlite::types::ValueRef<'_>) -> rusqlite::types::FromSqlResult<Self> {
                let word = value.as_str()?;
                $name::parse(word).ok_or_else(|| {
                    rusqlite::types::FromSqlError::Other(format!("{} {word:?} is not one the ledger knows", stringify!($name)).into())
                })
            }
        }
    };
}

stored_state! {
    /// Where an outbox event stands with upstream (`outbox.state`).
    EventState {
        Pending => "pending",
        Parked => "parked",
        Accepted => "accepted",
        Duplicate => "duplicate",
        Conflict => "conflict",
        Rejected => "rejected",
    }
}

// Every event state is stored as itself (a query may name one); `ForwardState` has no
// `ToSql`: its `parked` is derived from the events for reports, never written.
impl rusqlite::types::ToSql for EventState {
    fn to_sql(&self) -> rusqlite::Result<rusqlite::types::ToSqlOutput<'_>> {
        Ok(self.as_str().into())
    }
}

stored_state! {
    /// Where a redemption stands with upstream, as reports show it: `pending` until every
    /// event of it is answered (`parked` while one is parked), then the answer to its
    /// redeem event.
    ForwardState {
        Pending => "pending",
        Parked => "parked",
        Forwarded => "forwarded",
        Conflict => "conflict",
        Rejected => "rejected",
    }
}

impl Store {
    /// Opens (creating if needed) the database at `path` and brings its schema up to date.
    /// An existing file must be a redeemd ledger (its `application_id`): an empty or
    /// foreign file is refused rather than taken for a new ledger, which would forget
    /// every redemption and let used coupons redeem again.
    pub fn open(path: &Path) -> Result<Store> {
        let existed = match std::fs::metadata(path) {
            Ok(meta) if meta.len() == 0 => {
                return Err(StoreError::Foreign { path: path.into(), why: "the file is empty (0 bytes)".into() })
            }
            Ok(_) => true,
            Err(_) => false,
        };
        if !existed {
            // 0600 before SQLite makes it (and its WAL files, which take its mode): the
            // ledger holds coupon codes. If this fails, SQLite's own open says why.
            let _ = crate::secret::create_private_file(path);
        }
        let conn = Connection::open(path).map_err(|source| StoreError::Open { path: path.into(), source })?;
        let mut store = Store { conn };
        store.configure(existed).map_err(|e| match e {
            StoreError::Sql(rusqlite::Error::SqliteFailure(f, _)) if f.code == rusqlite::ErrorCode::NotADatabase => {
                StoreError::Foreign { path: path.into(), why: "the file is not an SQLite database".into() }
            }
            StoreError::Sql(source) => StoreError::Open { path: path.into(), source },
            StoreError::Foreign { why, .. } => StoreError::Foreign { path: path.into(), why },
            other => other,
        })?;
        Ok(store)
    }

    /// Opens an existing database; a missing file is an error that says to run `init`.
    pub fn open_existing(path: &Path) -> Result<Store> {
        if !path.exists() {
            return Err(StoreError::Missing(path.into()));
        }
        Store::open(path)
    }

    fn configure(&mut self, existed: bool) -> Result<()> {
        let c = &self.conn;
        c.busy_timeout(std::time::Duration::from_secs(10))?;
        if existed {
            self.check_stamp()?;
        }
        let c = &self.conn;
        let mode: String = c.pragma_update_and_check(None, "journal_mode", "WAL", |r| r.get(0))?;
        if !mode.eq_ignore_ascii_case("wal") {
            return Err(StoreError::Corrupt(format!("journal_mode is {mode}, not wal")));
        }
        c.pragma_update(None, "synchronous", "FULL")?;
        c.pragma_update(None, "foreign_keys", "ON")?;
        // Checkpoints belong between scans, not inside one: the owner calls `checkpoint()`
        // when idle, SQLite checkpoints at close, and this large threshold is only the
        // safety net for an owner that never idles.
        c.pragma_update(None, "wal_autocheckpoint", AUTOCHECKPOINT_PAGES)?;
        self.migrate()
    }

    /// Refuses a file that is not a redeemd ledger; stamps a ledger made before stamps.
    fn check_stamp(&self) -> Result<()> {
        let c = &self.conn;
        let app: i64 = c.pragma_query_value(None, "application_id", |r| r.get(0))?;
        if app == LEDGER_APPLICATION_ID {
            return Ok(());
        }
        let foreign = |why: String| StoreError::Foreign { path: PathBuf::new(), why };
        if app != 0 {
            return Err(foreign(format!("its SQLite application_id is {app:#x}, not redeemd's")));
        }
        let version: i64 = c.pragma_query_value(None, "user_version", |r| r.get(0))?;
        let has_outbox: bool =
            c.query_row("SELECT COUNT(*) FROM sqlite_master WHERE type = 'table' AND name = 'outbox'", [], |r| {
                r.get(0)
            })?;
        if version >= 1 && has_outbox {
            // Made by a redeemd from before the stamp: ours, stamped now.
            c.pragma_update(None, "application_id", LEDGER_APPLICATION_ID)?;
            return Ok(());
        }
        let tables: i64 = c.query_row("SELECT COUNT(*) FROM sqlite_master", [], |r| r.get(0))?;
        Err(foreign(if tables == 0 {
            "an SQLite file with no tables".into()
        } else {
            format!("an SQLite database of something else ({tables} schema objects, no redeemd schema)")
        }))
    }

    fn migrate(&mut self) -> Result<()> {
        let known = MIGRATIONS.len() as i64;
        let found: i64 = self.conn.pragma_query_value(None, "user_version", |r| r.get(0))?;
        if found > known {
            return Err(StoreError::TooNew { found, known });
        }
        for (index, (_, sql)) in MIGRATIONS.iter().enumerate().skip(found as usize) {
            let tx = self.conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
            if index == 0 {
                tx.pragma_update(None, "application_id", LEDGER_APPLICATION_ID)?;
            }
            tx.execute_batch(sql)?;
            if MIGRATIONS[index].0 == "0003_presentation" {
                rederive_ruleset_tables(&tx)?;
            }
            tx.pragma_update(None, "user_version", index as i64 + 1)?;
            tx.commit()?;
        }
        Ok(())
    }

    pub fn schema_version(&self) -> Result<i64> {
        Ok(self.conn.pragma_query_value(None, "user_version", |r| r.get(0))?)
    }

    // ------------------------------------------------------------ rule sets

    /// Installs a verified rule set atomically: refuses a rollback, does nothing for the
    /// version in force, else swaps campaigns and revoked ids in one transaction.
    pub fn install_ruleset(&mut self, verified: &VerifiedRuleSet, now: Timestamp) -> Result<Result<Install, Refusal>> {
        let tx = self.conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
        let current: Option<u64> = tx.query_row("SELECT MAX(version) FROM ruleset", [], |r| r.get(0))?;
        let offered = verified.rules.version;
        match current {
            Some(installed) if offered < installed => return Ok(Err(Refusal::Rollback { installed, offered })),
            Some(installed) if offered == installed => return Ok(Ok(Install::Unchanged)),
            _ => {}
        }
        let header_json = header_json(&verified.wire)?;
        // The text goes in through incremental BLOB I/O, piece by piece: bound as a
        // parameter, SQLite would copy it once to bind and once more to build the row
        // (50 MB beside the caller's own copy for a 25 MB rule set).
        let rowid = i64::try_from(offered).map_err(|_| StoreError::Corrupt(format!("rule set version {offered}")))?;
        tx.execute(
            "INSERT INTO ruleset (version, jws, header_json, issued_at_ms, expires_at_ms, installed_ms, revoked_count)
             VALUES (?1, zeroblob(?2), ?3, ?4, ?5, ?6, ?7)",
            params![
                rowid,
                verified.jws.len() as i64,
                header_json,
                ms(verified.rules.issued_at),
                ms(verified.rules.expires_at),
                ms(now),
                verified.rules.revoked_count as i64
            ],
        )?;
        {
            let mut blob = tx.blob_open(rusqlite::MAIN_DB, "ruleset", "jws", rowid, false)?;
            for (i, piece) in verified.jws.as_bytes().chunks(crate::jws::CHUNK).enumerate() {
                blob.write_all_at(piece, i * crate::jws::CHUNK)?;
            }
        }
        tx.execute("DELETE FROM campaign", [])?;
        tx.execute("DELETE FROM revoked", [])?;
        {
            let mut insert = tx.prepare("INSERT INTO campaign (id, wire_json) VALUES (?1, ?2)")?;
            for c in &verified.wire.campaigns {
                let json = serde_json::to_string(c).map_err(|e| StoreError::Corrupt(e.to_string()))?;
                insert.execute(params![c.id, json])?;
            }
            // Sorted and unique already: each insert appends to the B-tree's last page; and
            // 256 rows a statement, so a million ids are 4,000 statements, not a million.
            const ROWS: usize = 256;
            let many = format!("INSERT OR IGNORE INTO revoked (coupon_id) VALUES {}", vec!["(?)"; ROWS].join(", "));
            let mut insert_many = tx.prepare(&many)?;
            let mut insert = tx.prepare("INSERT OR IGNORE INTO revoked (coupon_id) VALUES (?1)")?;
            let mut ids = verified.wire.revoked.iter().flat_map(RevokedIds::iter);
            let mut batch = Vec::with_capacity(ROWS);
            loop {
                batch.clear();
                batch.extend(ids.by_ref().take(ROWS));
                if batch.len() < ROWS {
                    break;
                }
                insert_many.execute(rusqlite::params_from_iter(&batch))?;
            }
            for id in &batch {
                insert.execute([id])?;
            }
        }
        tx.execute("INSERT OR IGNORE INTO meta (key, value) VALUES ('first_ruleset_ms', ?1)", [ms(now).to_string()])?;
        tx.commit()?;
        Ok(Ok(Install::Installed { previous: current }))
    }

    /// The rule set in force, rebuilt through the same validation as an import.
    pub fn ruleset(&self) -> Result<Option<Installed>> {
        self.load_ruleset(Campaigns::All)
    }

    /// The rule set in force without its campaigns (its header row only): what a single
    /// decision needs before it knows which campaign the code names.
    pub fn ruleset_without_campaigns(&self) -> Result<Option<Installed>> {
        self.load_ruleset(Campaigns::None)
    }

    /// Campaign `id` of the rule set in force, validated as at import (with the header it
    /// belongs to); `None` when the rule set has no such campaign.
    pub fn campaign(&self, id: &str) -> Result<Option<Campaign>> {
        Ok(self.load_ruleset(Campaigns::One(id))?.and_then(|mut i| i.rules.campaigns.remove(id)))
    }

    fn load_ruleset(&self, campaigns: Campaigns<'_>) -> Result<Option<Installed>> {
        let row = self
            .conn
            .prepare_cached(
                "SELECT version, header_json, installed_ms, revoked_count FROM ruleset ORDER BY version DESC LIMIT 1",
            )?
            .query_row([], |r| {
                Ok((r.get::<_, u64>(0)?, r.get::<_, String>(1)?, r.get::<_, i64>(2)?, r.get::<_, i64>(3)?))
            })
            .optional()?;
        let Some((version, header_json, installed_ms, revoked_count)) = row else {
            return Ok(None);
        };
        let corrupt = |e: serde_json::Error| StoreError::Corrupt(format!("rule set {version}: {e}"));
        let mut wire: RuleSetWire = serde_json::from_str(&header_json).map_err(corrupt)?;
        let mut add = |json: String| -> Result<()> {
            wire.campaigns.push(serde_json::from_str::<CampaignWire>(&json).map_err(corrupt)?);
            Ok(())
        };
        match campaigns {
            Campaigns::All => {
                let mut stmt = self.conn.prepare("SELECT wire_json FROM campaign ORDER BY id")?;
                for json in stmt.query_map([], |r| r.get::<_, String>(0))? {
                    add(json?)?;
                }
            }
            Campaigns::One(id) => {
                let json = self
                    .conn
                    .prepare_cached("SELECT wire_json FROM campaign WHERE id = ?1")?
                    .query_row([id], |r| r.get::<_, String>(0))
                    .optional()?;
                if let Some(json) = json {
                    add(json)?;
                }
            }
            Campaigns::None => {}
        }
        let mut rules = RuleSet::from_wire(&wire).map_err(|source| StoreError::StoredRuleSet { version, source })?;
        rules.revoked_count = revoked_count as usize;
        Ok(Some(Installed { rules, installed_at: from_ms(installed_ms) }))
    }

    /// SHA-256 of the derived tables as they are now (header row, campaigns, revoked ids),
    /// in the canonical form of [`derived_digest_of`]: compared with the digest of the
    /// verified JWS, it proves the tables decisions read came from that signed text.
    pub fn derived_digest(&self) -> Result<Option<[u8; 32]>> {
        derived_digest_in(&self.conn)
    }

    /// Proves that the tables decisions read (the header row, `campaign`, `revoked`) are
    /// exactly what the stored JWS of the rule set in force says: re-verifies that JWS
    /// against `anchors` and compares digests, in one read transaction (an import by
    /// another process cannot slip in between). The JWS is read from the ledger in pieces
    /// and its payload parsed as it is decoded, so a 25 MB rule set costs its revoked ids
    /// held compactly (~18 MB for 10^6), not the text and its decoded copy besides.
    pub fn prove_derived_tables(&self, anchors: &[TrustAnchor]) -> Result<DerivedProof> {
        Ok(self.proven_ruleset(anchors, None)?.0)
    }

    /// [`Store::prove_derived_tables`], and when proven, the rule set loaded in the same
    /// read transaction — so what decisions use is exactly what was proven — after the
    /// proof's own copy is gone (the peak is one of them, not both). `lazy`: load it
    /// without campaigns ([`Store::ruleset_without_campaigns`]); `None`: do not load it.
    pub fn proven_ruleset(
        &self,
        anchors: &[TrustAnchor],
        load: Option<bool>,
    ) -> Result<(DerivedProof, Option<Installed>)> {
        let tx = self.conn.unchecked_transaction()?;
        let Some(version) = tx.query_row("SELECT MAX(version) FROM ruleset", [], |r| r.get::<_, Option<i64>>(0))?
        else {
            return Ok((DerivedProof::Nothing, None));
        };
        let unsigned =
            u64::try_from(version).map_err(|_| StoreError::Corrupt(format!("rule set version {version}")))?;
        let source = BlobSource {
            blob: tx.blob_open(rusqlite::MAIN_DB, "ruleset", "jws", version, true)?,
            error: RefCell::new(None),
        };
        let verified = crate::ruleset::verify_source(&source, anchors);
        if let Some(e) = source.error.into_inner() {
            return Err(e.into());
        }
        let wire = match verified {
            Ok(wire) => wire,
            Err(refusal) => return Ok((DerivedProof::Unverified { version: unsigned, refusal }, None)),
        };
        let expected = derived_digest_of(wire)?;
        if derived_digest_in(&tx)? != Some(expected) {
            return Ok((DerivedProof::Differs { version: unsigned }, None));
        }
        let installed = match load {
            None => None,
            Some(lazy) => self.load_ruleset(if lazy { Campaigns::None } else { Campaigns::All })?,
        };
        Ok((DerivedProof::Proven { version: unsigned }, installed))
    }

    /// The version of the rule set in force (cheap: no JWS, no campaigns).
    pub fn ruleset_version(&self) -> Result<Option<u64>> {
        Ok(self.conn.query_row("SELECT MAX(version) FROM ruleset", [], |r| r.get(0))?)
    }

    /// The rule set in force as it was installed: its version and its signed text (whole:
    /// for `restore`, which installs it again over an older backup's).
    pub fn ruleset_text(&self) -> Result<Option<(u64, String)>> {
        let row = self
            .conn
            .query_row("SELECT version, jws FROM ruleset ORDER BY version DESC LIMIT 1", [], |r| {
                // Written as a BLOB (incremental I/O), or as TEXT by an older redeemd.
                Ok((r.get::<_, u64>(0)?, r.get_ref(1)?.as_bytes().map(<[u8]>::to_vec)))
            })
            .optional()?;
        let Some((version, bytes)) = row else {
            return Ok(None);
        };
        let bytes = bytes.map_err(|e| StoreError::Corrupt(format!("rule set {version}: {e}")))?;
        let text = String::from_utf8(bytes)
            .map_err(|_| StoreError::Corrupt(format!("rule set {version}: the stored JWS is not UTF-8")))?;
        Ok(Some((version, text)))
    }

    // ------------------------------------------------------------ decisions

    /// Opens a checkout and returns its id.
    pub fn open_checkout(
        &mut self,
        basket_total: Money,
        eligible_total: Option<Money>,
        pos_ref: Option<&str>,
        now: Timestamp,
    ) -> Result<String> {
        let id = new_uuid(now);
        self.conn.execute(
            "INSERT INTO checkout (id, basket_total, eligible_total, pos_ref, opened_ms) VALUES (?1, ?2, ?3, ?4, ?5)",
            params![id, basket_total.0, eligible_total.unwrap_or(basket_total).0, pos_ref, ms(now)],
        )?;
        Ok(id)
    }

    /// Decides `code` for a checkout and, when accepted, commits the redemption and its
    /// outbox event in the same transaction before returning.
    pub fn present(
        &mut self,
        checkout: CheckoutRef<'_>,
        code: &str,
        terminal: &Terminal,
        rules: Option<&RuleSet>,
        now: Timestamp,
    ) -> Result<Recorded> {
        self.write(|tx| present_in(tx, checkout, code, terminal, rules, now, None))
    }

    /// Runs `f` in one `BEGIN IMMEDIATE` transaction, committed when it returns `Ok`
    /// (rolled back on `Err`). Several changes that must stand or fall together — a
    /// decision, its log line and the idempotent answer that reports it — share one.
    pub fn write<R>(&mut self, f: impl FnOnce(&Connection) -> Result<R>) -> Result<R> {
        let tx = self.conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
        let out = f(&tx)?;
        tx.commit()?;
        Ok(out)
    }

    /// What would happen, writing nothing (`check`).
    pub fn evaluate(
        &mut self,
        checkout: CheckoutRef<'_>,
        code: &str,
        terminal: &Terminal,
        rules: Option<&RuleSet>,
        now: Timestamp,
    ) -> Result<Decision> {
        let tx = self.conn.transaction_with_behavior(TransactionBehavior::Deferred)?;
        let (view, _) = checkout_view(&tx, &checkout)?;
        decide_in(&tx, code, &view, terminal, rules, now)
    }

    /// Voids a redemption: its coupon is free again, and a void event joins the outbox.
    /// `timezone` only shapes how the event's `at` is written. Recorded as the command
    /// line's void (the daemon voids through `void_in`, saying who).
    pub fn void(
        &mut self,
        redemption_id: &str,
        reason: Option<&str>,
        timezone: &TimeZone,
        now: Timestamp,
    ) -> Result<VoidOutcome> {
        self.write(|tx| void_in(tx, redemption_id, reason, VoidBy::CommandLine, timezone, now))
    }

    /// Copies the WAL back into the database file (PASSIVE: never waits for readers).
    /// Call it when no decision is in flight, e.g. on the daemon's idle tick.
    pub fn checkpoint(&self) -> Result<()> {
        self.conn.query_row("PRAGMA wal_checkpoint(PASSIVE)", [], |_| Ok(()))?;
        Ok(())
    }

    /// SQLite's `data_version`: it changes when *another* connection commits, so a long-
    /// lived owner can see that the command line changed the ledger (a rule set import).
    pub fn data_version(&self) -> Result<i64> {
        Ok(self.conn.pragma_query_value(None, "data_version", |r| r.get(0))?)
    }

    /// Records a successful contact with upstream: `sync::Syncer` after each answered request.
    pub fn mark_contact(&mut self, now: Timestamp) -> Result<()> {
        self.conn.execute(
            "INSERT INTO meta (key, value) VALUES ('last_contact_ms', ?1)
             ON CONFLICT (key) DO UPDATE SET value = excluded.value",
            [ms(now).to_string()],
        )?;
        Ok(())
    }

    // ------------------------------------------------------------ sync state

    /// A terminal-wide setting kept across restarts (sync cursor state, ETag, pauses).
    pub fn meta(&self, key: &str) -> Result<Option<String>> {
        Ok(self
            .conn
            .prepare_cached("SELECT value FROM meta WHERE key = ?1")?
            .query_row([key], |r| r.get(0))
            .optional()?)
    }

    /// Sets (`Some`) or clears (`None`) a terminal-wide setting.
    pub fn set_meta(&self, key: &str, value: Option<&str>) -> Result<()> {
        match value {
            Some(v) => self.conn.prepare_cached(
                "INSERT INTO meta (key, value) VALUES (?1, ?2) ON CONFLICT (key) DO UPDATE SET value = excluded.value",
            )?
            .execute(params![key, v])?,
            None => self.conn.prepare_cached("DELETE FROM meta WHERE key = ?1")?.execute([key])?,
        };
        Ok(())
    }

    /// The oldest `limit` events still waiting for an answer, in `seq` order.
    pub fn pending_events(&self, limit: usize) -> Result<Vec<OutboxEvent>> {
        // An event never overtakes an earlier event of its redemption: a void waits while
        // its redeem is parked.
        let mut stmt = self.conn.prepare_cached(PENDING_EVENTS_SQL)?;
        let rows = stmt.query_map([limit as i64], |r| {
            Ok(OutboxEvent {
                seq: r.get(0)?,
                event_id: r.get(1)?,
                kind: r.get(2)?,
                redemption_id: r.get(3)?,
                body: r.get(4)?,
            })
        })?;
        Ok(rows.collect::<rusqlite::Result<_>>()?)
    }

    /// Events not yet answered: `(pending, parked)`.
    pub fn undelivered(&self) -> Result<(u64, u64)> {
        Ok(self.conn.query_row(UNDELIVERED_SQL, [], |r| Ok((r.get(0)?, r.get(1)?)))?)
    }

    /// Marks each event with upstream's answer, and each redeem event's redemption with
    /// its forwarding state, in one transaction. Answers for events no longer pending
    /// (a crash between send and mark, then a resend) are applied only once.
    pub fn apply_results(&mut self, events: &[OutboxEvent], results: &[EventResult], now: Timestamp) -> Result<()> {
        let tx = self.conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
        {
            let mut mark = tx.prepare_cached(
                "UPDATE outbox SET state = ?2, answer = ?3, answered_ms = ?4 WHERE seq = ?1 AND state IN ('pending', 'parked')",
            )?;
            let mut forwarded = tx.prepare_cached("UPDATE redemption SET forward_state = ?2 WHERE id = ?1")?;
            for (event, result) in events.iter().zip(results) {
                let changed = mark.execute(params![event.seq, result.status.as_str(), result.raw, ms(now)])?;
                if changed == 1 && event.kind == "redeem" {
                    let state = match result.status {
                        EventStatus::Accepted | EventStatus::Duplicate => ForwardState::Forwarded,
                        EventStatus::Conflict => ForwardState::Conflict,
                        EventStatus::Rejected => ForwardState::Rejected,
                    };
                    forwarded.execute(params![event.redemption_id, state.as_str()])?;
                }
            }
        }
        tx.commit()?;
        Ok(())
    }

    /// Parks the event(s) upstream called bad (400): kept, shown with upstream's message,
    /// counted as answered for the offline limits, sent again only by `outbox retry`.
    pub fn park(&mut self, events: &[OutboxEvent], reason: &str, now: Timestamp) -> Result<()> {
        let tx = self.conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
        {
            let mut park = tx.prepare_cached(
                "UPDATE outbox SET state = 'parked', answer = ?2, answered_ms = ?3 WHERE seq = ?1 AND state = 'pending'",
            )?;
            let answer = serde_json::json!({"status": "parked", "reason": reason}).to_string();
            for event in events {
                park.execute(params![event.seq, answer, ms(now)])?;
            }
        }
        tx.commit()?;
        Ok(())
    }

    /// Puts parked events back in the queue (after the cause was fixed upstream): one by
    /// its `event_id`, or all of them. Returns how many.
    pub fn unpark(&mut self, event_id: Option<&str>) -> Result<usize> {
        Ok(self.conn.execute(
            "UPDATE outbox SET state = 'pending', answer = NULL, answered_ms = NULL
             WHERE state = 'parked' AND (?1 IS NULL OR event_id = ?1)",
            [event_id],
        )?)
    }

    /// Outbox rows for `outbox list`: every event not yet answered (pending or parked), or
    /// those in `state`; oldest first.
    pub fn outbox_rows(&self, state: Option<EventState>) -> Result<Vec<OutboxRow>> {
        let mut stmt = self.conn.prepare(
            "SELECT seq, event_id, type, redemption_id, state, answer, created_ms FROM outbox
             WHERE (?1 IS NULL AND state IN ('pending', 'parked')) OR state = ?1 ORDER BY seq",
        )?;
        let rows = stmt.query_map([state], |r| {
            Ok(OutboxRow {
                seq: r.get(0)?,
                event_id: r.get(1)?,
                kind: r.get(2)?,
                redemption_id: r.get(3)?,
                state: r.get(4)?,
                answer: r.get(5)?,
                created: from_ms(r.get(6)?),
            })
        })?;
        Ok(rows.collect::<rusqlite::Result<_>>()?)
    }

    // ------------------------------------------------------------ reading

    /// Redemptions with `from <= at < until`, oldest first.
    pub fn redemptions_between(&self, from: Timestamp, until: Timestamp) -> Result<Vec<RedemptionRow>> {
        let mut stmt = self.conn.prepare(REDEMPTIONS_BETWEEN_SQL)?;
        let rows = stmt.query_map(params![ms(from), ms(until), id_floor(from), id_floor(until)], |r| {
            Ok(RedemptionRow {
                redemption_id: r.get(0)?,
                checkout_id: r.get(1)?,
                coupon_id: r.get(2)?,
                campaign_id: r.get(3)?,
                discount: Money(r.get(4)?),
                basket_total: Money(r.get(5)?),
                eligible_total: Money(r.get(6)?),
                at: from_ms(r.get(7)?),
                voided_at: r.get::<_, Option<i64>>(8)?.map(from_ms),
                state: r.get(9)?,
                presentation: r.get(10)?,
                void_reason: r.get(11)?,
                voided_by: r.get(12)?,
                upstream_answer: r.get(13)?,
                store_state: r.get(14)?,
            })
        })?;
        Ok(rows.collect::<rusqlite::Result<_>>()?)
    }

    /// `(seq, event_id, type, state)` of every outbox row, in seq order.
    pub fn outbox(&self) -> Result<Vec<(i64, String, String, String)>> {
        let mut stmt = self.conn.prepare("SELECT seq, event_id, type, state FROM outbox ORDER BY seq")?;
        let rows = stmt.query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?)))?;
        Ok(rows.collect::<rusqlite::Result<_>>()?)
    }

    /// Counts for `doctor`-style summaries and tests.
    pub fn counts(&self) -> Result<Counts> {
        let one = |sql: &str| -> Result<i64> { Ok(self.conn.query_row(sql, [], |r| r.get(0))?) };
        Ok(Counts {
            redemptions: one("SELECT COUNT(*) FROM redemption")?,
            voids: one("SELECT COUNT(*) FROM void")?,
            checkouts: one("SELECT COUNT(*) FROM checkout")?,
            outbox: one("SELECT COUNT(*) FROM outbox")?,
            rulesets: one("SELECT COUNT(*) FROM ruleset")?,
        })
    }

    pub fn unsynced(&self) -> Result<Unsynced> {
        Ok(unsynced(&self.conn)?)
    }

    /// The checkout the terminal is on: the newest open one.
    pub fn current_checkout(&self) -> Result<Option<String>> {
        current_checkout_in(&self.conn)
    }

    /// Open checkouts opened before `cutoff`: id, opened, basket total.
    pub fn open_checkouts_before(&self, cutoff: Timestamp) -> Result<Vec<(String, Timestamp, Money)>> {
        open_checkouts_before_in(&self.conn, cutoff)
    }

    /// The stored answer to an idempotency key, if any.
    pub fn idempotent_answer(&self, key: &str) -> Result<Option<StoredAnswer>> {
        idempotent_answer_in(&self.conn, key)
    }

    /// The kind and start of the unexpired session of a token's hash at `now`.
    pub fn session(&self, token_sha256: &[u8], now: Timestamp) -> Result<Option<(String, Timestamp)>> {
        session_in(&self.conn, token_sha256, now)
    }

    /// The last successful contact with upstream.
    pub fn last_contact(&self) -> Result<Option<Timestamp>> {
        last_contact_in(&self.conn)
    }

    /// What a refusal's advice needs: when the coupon was redeemed on this ledger (if
    /// live), by which terminal, and the unsynced totals.
    pub fn refusal_facts(&self, coupon_id: Option<&str>) -> Result<(Option<Redeemed>, Unsynced)> {
        refusal_facts_in(&self.conn, coupon_id)
    }

    /// Notes that another terminal takes this ledger over (a restore): the events so far,
    /// and their redemptions, were `terminal`'s ([`META_SWAPS`]).
    pub fn record_swap(&mut self, terminal: &str, now: Timestamp) -> Result<()> {
        self.write(|tx| {
            let mut swaps = swaps_in(tx)?;
            let through_seq: i64 = tx.query_row("SELECT IFNULL(MAX(seq), 0) FROM outbox", [], |r| r.get(0))?;
            swaps.push(Swap { terminal: terminal.to_owned(), through_seq, at_ms: ms(now) });
            let text = serde_json::to_string(&swaps).map_err(|e| StoreError::Corrupt(e.to_string()))?;
            tx.execute(
                "INSERT INTO meta (key, value) VALUES (?1, ?2) ON CONFLICT (key) DO UPDATE SET value = excluded.value",
                params![META_SWAPS, text],
            )?;
            Ok(())
        })
    }
}

/// The oldest pending events: redeem events from the outbox cursor on (migration 6),
/// voids through their own index. An event never overtakes an earlier event of its
/// redemption: a void waits while its redeem is parked (a redeem event is its
/// redemption's first, so nothing holds one back).
const PENDING_EVENTS_SQL: &str = "SELECT o.seq, o.event_id, o.type, o.redemption_id, o.body FROM outbox o
     WHERE o.seq >= (SELECT low FROM outbox_cursor WHERE id = 1) AND o.state = 'pending' AND o.type = 'redeem'
     UNION ALL
     SELECT v.seq, v.event_id, v.type, v.redemption_id, v.body FROM outbox v
     WHERE v.state = 'pending' AND v.type = 'void'
       AND NOT EXISTS (SELECT 1 FROM outbox p
                       WHERE p.redemption_id = v.redemption_id AND p.state = 'parked' AND p.seq < v.seq)
     ORDER BY 1 LIMIT ?1";

/// Pending redeem events above the cursor, pending voids and parked events, each through
/// the key or a partial index (a `FILTER` over the whole outbox reads every event).
const UNDELIVERED_SQL: &str = "SELECT
       (SELECT COUNT(*) FROM outbox
        WHERE seq >= (SELECT low FROM outbox_cursor WHERE id = 1) AND state = 'pending' AND type = 'redeem')
       + (SELECT COUNT(*) FROM outbox WHERE state = 'pending' AND type = 'void'),
       (SELECT COUNT(*) FROM outbox WHERE state = 'parked')";

/// A range of the primary key: a redemption's id is the UUIDv7 of its `at_ms` (the
/// ledger refuses one that is not), so `[id_floor(from), id_floor(until))` holds exactly
/// the redemptions of `[from, until)`.
const REDEMPTIONS_BETWEEN_SQL: &str =
    "SELECT r.id, r.checkout_id, r.coupon_id, r.campaign_id, r.discount, r.basket_total, r.eligible_total,
            r.at_ms, r.voided_ms,
            CASE WHEN EXISTS (SELECT 1 FROM outbox o WHERE o.redemption_id = r.id AND o.state = 'parked')
                 THEN 'parked'
                 WHEN r.id IN (SELECT redemption_id FROM outbox
                               WHERE seq >= (SELECT low FROM outbox_cursor WHERE id = 1)
                                 AND state = 'pending' AND type = 'redeem'
                               UNION ALL
                               SELECT redemption_id FROM outbox WHERE state = 'pending' AND type = 'void')
                 THEN 'pending' ELSE r.forward_state END,
            r.presentation,
            (SELECT v.reason FROM void v WHERE v.redemption_id = r.id),
            (SELECT v.by FROM void v WHERE v.redemption_id = r.id),
            (SELECT o.answer FROM outbox o
             WHERE o.redemption_id = r.id AND o.state IN ('conflict', 'rejected', 'parked') AND o.type = 'redeem'
             LIMIT 1),
            r.store_state
     FROM redemption r
     WHERE r.id >= ?3 AND r.id < ?4 AND r.at_ms >= ?1 AND r.at_ms < ?2 ORDER BY r.at_ms, r.id";

/// Decides `code` for a checkout and, when accepted, commits the redemption and its
/// outbox event inside the caller's transaction.
pub fn present_in(
    tx: &Connection,
    checkout: CheckoutRef<'_>,
    code: &str,
    terminal: &Terminal,
    rules: Option<&RuleSet>,
    now: Timestamp,
    claimer: Option<&mut dyn Claimer>,
) -> Result<Recorded> {
    let (view, checkout_id) = checkout_view(tx, &checkout)?;
    let mut decision = decide_in(tx, code, &view, terminal, rules, now)?;
    let (Ok(discount), Some(coupon), Some(rules)) = (decision.outcome, &decision.coupon, rules) else {
        // Nothing is written for a refusal.
        return Ok(Recorded { decision, redemption_id: None, checkout_id });
    };
    let coupon = &coupon.clone();
    let redemption_id = new_uuid(now);
    let at = rfc3339(now, &rules.timezone);
    // With a store hub, the rules' acceptance is claimed at the hub before the commit
    // (`spec/store-hub.md`); the lane's own ledger has already refused a second use here.
    let mut hub = None;
    if let Some(claimer) = claimer {
        let request = claim_request(coupon, rules, &redemption_id, &at, now);
        match claim::verdict(claimer.claim(&request), claimer.when_down()) {
            claim::Verdict::Commit { guard, state, holder_slot } => hub = Some((guard, state, holder_slot)),
            claim::Verdict::Refuse { reason, elsewhere } => {
                decision.outcome = Err(reason.into());
                decision.elsewhere = elsewhere;
                return Ok(Recorded { decision, redemption_id: None, checkout_id });
            }
        }
    }
    decision.guard = hub.as_ref().map(|(guard, _, _)| *guard);
    // `decide` sets both together; an acceptance without it must not be reported.
    let shown = decision
        .presentation
        .ok_or_else(|| StoreError::Corrupt("an accepted decision without its presentation".into()))?;
    let checkout_id = match checkout_id {
        Some(id) => id,
        None => {
            let id = new_uuid(now);
            tx.prepare_cached(
                "INSERT INTO checkout (id, basket_total, eligible_total, pos_ref, opened_ms, status, closed_ms)
                 VALUES (?1, ?2, ?3, ?4, ?5, 'paid', ?5)",
            )?
            .execute(params![
                id,
                view.basket_total.0,
                view.eligible_total.0,
                pos_ref(&checkout),
                ms(now)
            ])?;
            id
        }
    };
    let presented_at = match shown {
        Shown::Static => None,
        Shown::Dynamic { presented_at } => Some(i64::try_from(presented_at).unwrap_or(i64::MAX)),
    };
    let (guard, store_state, holder_slot) = match &hub {
        Some((guard, state, slot)) => (Some(guard.as_str()), Some(state.as_str()), slot.as_deref()),
        None => (None, None, None),
    };
    tx.prepare_cached(
        "INSERT INTO redemption (id, checkout_id, coupon_id, campaign_id, holder, code, discount,
             basket_total, eligible_total, currency, ruleset_version, at_ms, presentation, presented_at,
             guard, store_state, holder_slot)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16, ?17)",
    )?
    .execute(params![
        redemption_id,
        checkout_id,
        coupon.coupon_id.as_str(),
        coupon.campaign_id,
        coupon.holder,
        code,
        discount.0,
        view.basket_total.0,
        view.eligible_total.0,
        rules.currency,
        rules.version,
        ms(now),
        shown.as_str(),
        presented_at,
        guard,
        store_state,
        holder_slot
    ])?;
    let event = RedeemEvent { redemption_id: &redemption_id, coupon, shown, code, view: &view, discount, rules, at };
    append_event(tx, "redeem", &redemption_id, Some(discount), |event_id, seq| event.to_json(event_id, seq), now)?;
    Ok(Recorded { decision, redemption_id: Some(redemption_id), checkout_id: Some(checkout_id) })
}

/// Voids a redemption: its coupon is free again, and a void event joins the outbox.
/// `timezone` only shapes how the event's `at` is written.
pub fn void_in(
    tx: &Connection,
    redemption_id: &str,
    reason: Option<&str>,
    by: VoidBy,
    timezone: &TimeZone,
    now: Timestamp,
) -> Result<VoidOutcome> {
    let row = tx
        .query_row("SELECT coupon_id, discount, voided_ms FROM redemption WHERE id = ?1", [redemption_id], |r| {
            Ok((r.get::<_, String>(0)?, r.get::<_, i64>(1)?, r.get::<_, Option<i64>>(2)?))
        })
        .optional()?;
    let Some((coupon_id, discount, voided)) = row else {
        return Ok(VoidOutcome::NotFound);
    };
    if let Some(at) = voided {
        return Ok(VoidOutcome::AlreadyVoided { at: from_ms(at) });
    }
    // A redemption claimed at the store hub (or waiting to be) gives its claims back.
    tx.execute(
        "UPDATE redemption SET voided_ms = ?2, hub_release = CASE WHEN guard IS NULL THEN NULL ELSE 'pending' END
         WHERE id = ?1",
        params![redemption_id, ms(now)],
    )?;
    tx.execute(
        "INSERT INTO void (redemption_id, reason, at_ms, by) VALUES (?1, ?2, ?3, ?4)",
        params![redemption_id, reason, ms(now), by.as_str()],
    )?;
    let at = rfc3339(now, timezone);
    append_event(
        tx,
        "void",
        redemption_id,
        None,
        |event_id, seq| {
            serde_json::json!({
                "event_id": event_id, "seq": seq, "type": "void", "redemption_id": redemption_id,
                "at": at, "reason": reason,
            })
            .to_string()
        },
        now,
    )?;
    Ok(VoidOutcome::Voided { coupon_id, discount: Money(discount) })
}

// ------------------------------------------------------------ the store hub's rows

/// A redemption the hub must still hear about: accepted with `"guard": "local"` and
/// not settled, or voided with claims to give back.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HubWorkRow {
    pub redemption_id: String,
    pub coupon_id: String,
    pub campaign_id: String,
    pub holder: Vec<u8>,
    pub at: Timestamp,
    pub holder_slot: Option<String>,
}

/// What the hub's work loop does next: settle, then release; both bounded by `limit`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct HubWork {
    pub unconfirmed: Vec<HubWorkRow>,
    pub releases: Vec<HubWorkRow>,
}

const HUB_UNCONFIRMED_SQL: &str = "SELECT id, coupon_id, campaign_id, holder, at_ms, holder_slot FROM redemption
     WHERE (store_state = 'unconfirmed' OR hub_release = 'pending')
       AND store_state = 'unconfirmed' AND voided_ms IS NULL AND at_ms >= ?2 ORDER BY id LIMIT ?1";
const HUB_RELEASES_SQL: &str = "SELECT id, coupon_id, campaign_id, holder, at_ms, holder_slot FROM redemption
     WHERE (store_state = 'unconfirmed' OR hub_release = 'pending') AND hub_release = 'pending'
       AND ?2 = ?2 ORDER BY id LIMIT ?1";

/// `WHERE` repeats the partial index's condition so that SQLite uses it.
fn hub_rows(c: &Connection, sql: &str, since_ms: i64, limit: usize) -> Result<Vec<HubWorkRow>> {
    let mut stmt = c.prepare_cached(sql)?;
    let rows = stmt.query_map(params![limit as i64, since_ms], |r| {
        Ok(HubWorkRow {
            redemption_id: r.get(0)?,
            coupon_id: r.get(1)?,
            campaign_id: r.get(2)?,
            holder: r.get(3)?,
            at: from_ms(r.get(4)?),
            holder_slot: r.get(5)?,
        })
    })?;
    Ok(rows.collect::<rusqlite::Result<_>>()?)
}

/// The unconfirmed, unvoided redemptions since `since` and the voided ones whose claims
/// are still at the hub.
pub fn hub_work_in(c: &Connection, since: Timestamp, limit: usize) -> Result<HubWork> {
    let unconfirmed = hub_rows(c, HUB_UNCONFIRMED_SQL, ms(since), limit)?;
    let releases = hub_rows(c, HUB_RELEASES_SQL, 0, limit)?;
    Ok(HubWork { unconfirmed, releases })
}

/// Settling's answer for one redemption: confirmed (with the slot it holds), or a store
/// conflict with the claim that stood against it.
pub fn set_store_state_in(
    c: &Connection,
    redemption_id: &str,
    state: claim::StoreState,
    holder_slot: Option<&str>,
    conflict: Option<&str>,
) -> Result<()> {
    c.prepare_cached(
        "UPDATE redemption SET store_state = ?2, holder_slot = COALESCE(?3, holder_slot),
             store_conflict = COALESCE(?4, store_conflict)
         WHERE id = ?1",
    )?
    .execute(params![redemption_id, state.as_str(), holder_slot, conflict])?;
    Ok(())
}

/// A voided redemption's claims are gone from the hub.
pub fn mark_released_in(c: &Connection, redemption_id: &str) -> Result<()> {
    c.prepare_cached("UPDATE redemption SET hub_release = 'done' WHERE id = ?1 AND hub_release = 'pending'")?
        .execute([redemption_id])?;
    Ok(())
}

/// Whether the ledger holds this redemption (a claim naming one it does not hold is
/// dangling: the lane died between claim and commit).
pub fn has_redemption_in(c: &Connection, redemption_id: &str) -> Result<bool> {
    Ok(c.prepare_cached("SELECT 1 FROM redemption WHERE id = ?1")?.exists([redemption_id])?)
}

/// Outbox events not yet on the store's stream, oldest first: (seq, event_id, body).
pub fn unpublished_in(c: &Connection, limit: usize) -> Result<Vec<(i64, String, String)>> {
    let mut stmt = c.prepare_cached(
        "SELECT seq, event_id, body FROM outbox WHERE seq > (SELECT published FROM hub_cursor WHERE id = 1)
         ORDER BY seq LIMIT ?1",
    )?;
    let rows = stmt.query_map([limit as i64], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))?;
    Ok(rows.collect::<rusqlite::Result<_>>()?)
}

/// Every event up to `seq` is on the stream.
pub fn set_published_in(c: &Connection, seq: i64) -> Result<()> {
    c.prepare_cached("UPDATE hub_cursor SET published = MAX(published, ?1) WHERE id = 1")?.execute([seq])?;
    Ok(())
}

/// (unconfirmed redemptions, unpublished events) for status and metrics.
pub fn hub_counts_in(c: &Connection) -> Result<(u64, u64)> {
    Ok(c.query_row(
        "SELECT (SELECT COUNT(*) FROM redemption WHERE store_state = 'unconfirmed' AND voided_ms IS NULL),
                (SELECT COUNT(*) FROM outbox WHERE seq > (SELECT published FROM hub_cursor WHERE id = 1))",
        [],
        |r| Ok((r.get::<_, i64>(0)? as u64, r.get::<_, i64>(1)? as u64)),
    )?)
}

// ------------------------------------------------------------ checkouts of the daemon

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CheckoutStatus {
    Open,
    Paid,
    Cancelled,
}

impl CheckoutStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            CheckoutStatus::Open => "open",
            CheckoutStatus::Paid => "paid",
            CheckoutStatus::Cancelled => "cancelled",
        }
    }

    pub fn parse(text: &str) -> Option<CheckoutStatus> {
        [CheckoutStatus::Open, CheckoutStatus::Paid, CheckoutStatus::Cancelled].into_iter().find(|s| s.as_str() == text)
    }
}

/// A checkout with the decisions made for it, as the local API shows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CheckoutRow {
    pub id: String,
    pub status: CheckoutStatus,
    pub basket_total: Money,
    pub eligible_total: Money,
    pub pos_ref: Option<String>,
    pub opened_at: Timestamp,
    /// Unvoided accepted discounts.
    pub discount_total: Money,
    /// The logged decision records (JSON text), oldest first.
    pub decisions: Vec<String>,
}

pub fn checkout_in(c: &Connection, id: &str) -> Result<Option<CheckoutRow>> {
    let row = c
        .prepare_cached(
            "SELECT c.status, c.basket_total, c.eligible_total, c.pos_ref, c.opened_ms,
                    (SELECT IFNULL(SUM(discount), 0) FROM redemption r WHERE r.checkout_id = c.id AND r.voided_ms IS NULL)
             FROM checkout c WHERE c.id = ?1",
        )?
        .query_row([id], |r| {
            Ok((
                r.get::<_, String>(0)?,
                r.get::<_, i64>(1)?,
                r.get::<_, i64>(2)?,
                r.get::<_, Option<String>>(3)?,
                r.get::<_, i64>(4)?,
                r.get::<_, i64>(5)?,
            ))
        })
        .optional()?;
    let Some((status, basket, eligible, pos_ref, opened, discount)) = row else {
        return Ok(None);
    };
    let status =
        CheckoutStatus::parse(&status).ok_or_else(|| StoreError::Corrupt(format!("checkout status {status}")))?;
    let mut stmt = c.prepare_cached("SELECT record FROM checkout_decision WHERE checkout_id = ?1 ORDER BY n")?;
    let decisions = stmt.query_map([id], |r| r.get(0))?.collect::<rusqlite::Result<Vec<String>>>()?;
    Ok(Some(CheckoutRow {
        id: id.to_owned(),
        status,
        basket_total: Money(basket),
        eligible_total: Money(eligible),
        pos_ref,
        opened_at: from_ms(opened),
        discount_total: Money(discount),
        decisions,
    }))
}

/// The most recently opened checkout that is still open: where scans go.
pub fn current_checkout_in(c: &Connection) -> Result<Option<String>> {
    Ok(c.prepare_cached("SELECT id FROM checkout WHERE status = 'open' ORDER BY opened_ms DESC, id DESC LIMIT 1")?
        .query_row([], |r| r.get(0))
        .optional()?)
}

/// Open checkouts opened before `cutoff`, oldest first (the manager's page lists them:
/// a till that never closed its sales).
pub fn open_checkouts_before_in(c: &Connection, cutoff: Timestamp) -> Result<Vec<(String, Timestamp, Money)>> {
    let mut stmt = c.prepare_cached(
        "SELECT id, opened_ms, basket_total FROM checkout WHERE status = 'open' AND opened_ms < ?1
         ORDER BY opened_ms LIMIT 100",
    )?;
    let rows = stmt.query_map([ms(cutoff)], |r| Ok((r.get::<_, String>(0)?, from_ms(r.get(1)?), Money(r.get(2)?))))?;
    Ok(rows.collect::<rusqlite::Result<_>>()?)
}

pub fn open_checkout_in(
    c: &Connection,
    basket_total: Money,
    eligible_total: Option<Money>,
    pos_ref: Option<&str>,
    now: Timestamp,
) -> Result<String> {
    let id = new_uuid(now);
    c.prepare_cached(
        "INSERT INTO checkout (id, basket_total, eligible_total, pos_ref, opened_ms) VALUES (?1, ?2, ?3, ?4, ?5)",
    )?
    .execute(params![id, basket_total.0, eligible_total.unwrap_or(basket_total).0, pos_ref, ms(now)])?;
    Ok(id)
}

/// Marks an open checkout paid or cancelled.
pub fn close_checkout_in(c: &Connection, id: &str, status: CheckoutStatus, now: Timestamp) -> Result<()> {
    c.prepare_cached("UPDATE checkout SET status = ?2, closed_ms = ?3 WHERE id = ?1 AND status = 'open'")?
        .execute(params![id, status.as_str(), ms(now)])?;
    Ok(())
}

/// Corrects the amounts of an open checkout (`POST /v1/checkouts/{id}/amounts`); the
/// caller has made sure it holds no unvoided redemption. `eligible_total` absent: the basket.
pub fn set_checkout_amounts_in(
    c: &Connection,
    id: &str,
    basket_total: Money,
    eligible_total: Option<Money>,
) -> Result<()> {
    c.prepare_cached("UPDATE checkout SET basket_total = ?2, eligible_total = ?3 WHERE id = ?1 AND status = 'open'")?
        .execute(params![id, basket_total.0, eligible_total.unwrap_or(basket_total).0])?;
    Ok(())
}

/// Unvoided redemptions of a checkout, oldest first.
pub fn live_redemptions_in(c: &Connection, checkout_id: &str) -> Result<Vec<String>> {
    let mut stmt =
        c.prepare_cached("SELECT id FROM redemption WHERE checkout_id = ?1 AND voided_ms IS NULL ORDER BY at_ms, id")?;
    let ids = stmt.query_map([checkout_id], |r| r.get(0))?.collect::<rusqlite::Result<Vec<String>>>()?;
    Ok(ids)
}

/// The checkout a redemption belongs to.
pub fn redemption_checkout_in(c: &Connection, redemption_id: &str) -> Result<Option<String>> {
    Ok(c.prepare_cached("SELECT checkout_id FROM redemption WHERE id = ?1")?
        .query_row([redemption_id], |r| r.get(0))
        .optional()?)
}

/// Appends a decision record to a checkout's log.
pub fn log_decision_in(c: &Connection, checkout_id: &str, source: &str, now: Timestamp, record: &str) -> Result<()> {
    c.prepare_cached(
        "INSERT INTO checkout_decision (checkout_id, n, source, at_ms, record)
         VALUES (?1, (SELECT IFNULL(MAX(n), 0) + 1 FROM checkout_decision WHERE checkout_id = ?1), ?2, ?3, ?4)",
    )?
    .execute(params![checkout_id, source, ms(now), record])?;
    Ok(())
}

/// A stored answer to an idempotent request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredAnswer {
    pub fingerprint: Vec<u8>,
    pub status: u16,
    pub body: String,
}

pub fn idempotent_answer_in(c: &Connection, key: &str) -> Result<Option<StoredAnswer>> {
    Ok(c.prepare_cached("SELECT fingerprint, status, body FROM idempotency WHERE key = ?1")?
        .query_row([key], |r| Ok(StoredAnswer { fingerprint: r.get(0)?, status: r.get(1)?, body: r.get(2)? }))
        .optional()?)
}

pub fn put_idempotent_answer_in(c: &Connection, key: &str, answer: &StoredAnswer, now: Timestamp) -> Result<()> {
    c.prepare_cached(
        "INSERT INTO idempotency (key, fingerprint, status, body, created_ms) VALUES (?1, ?2, ?3, ?4, ?5)",
    )?
    .execute(params![key, answer.fingerprint, answer.status, answer.body, ms(now)])?;
    Ok(())
}

pub fn put_session_in(
    c: &Connection,
    token_sha256: &[u8],
    kind: &str,
    now: Timestamp,
    expires: Timestamp,
) -> Result<()> {
    c.prepare_cached("INSERT INTO session (token_sha256, kind, created_ms, expires_ms) VALUES (?1, ?2, ?3, ?4)")?
        .execute(params![token_sha256, kind, ms(now), ms(expires)])?;
    Ok(())
}

/// Ends the session of a token's hash at `now` (a logout): its row stays, expired.
pub fn end_session_in(c: &Connection, token_sha256: &[u8], now: Timestamp) -> Result<()> {
    c.prepare_cached("UPDATE session SET expires_ms = ?2 WHERE token_sha256 = ?1 AND expires_ms > ?2")?
        .execute(params![token_sha256, ms(now)])?;
    Ok(())
}

/// The kind and start of an unexpired session.
pub fn session_in(c: &Connection, token_sha256: &[u8], now: Timestamp) -> Result<Option<(String, Timestamp)>> {
    Ok(c.prepare_cached("SELECT kind, created_ms FROM session WHERE token_sha256 = ?1 AND expires_ms > ?2")?
        .query_row(params![token_sha256, ms(now)], |r| Ok((r.get(0)?, from_ms(r.get(1)?))))
        .optional()?)
}

/// When the redemption's terminal last heard from upstream, and the parked/pending counts.
pub fn last_contact_in(c: &Connection) -> Result<Option<Timestamp>> {
    let value: Option<String> = c
        .prepare_cached("SELECT value FROM meta WHERE key = 'last_contact_ms'")?
        .query_row([], |r| r.get(0))
        .optional()?;
    Ok(value.and_then(|v| v.parse::<i64>().ok()).map(from_ms))
}

/// [`Store::derived_digest`] over `c` (inside the caller's transaction).
fn derived_digest_in(c: &Connection) -> Result<Option<[u8; 32]>> {
    let Some(header) = c
        .query_row("SELECT header_json FROM ruleset ORDER BY version DESC LIMIT 1", [], |r| r.get::<_, String>(0))
        .optional()?
    else {
        return Ok(None);
    };
    let mut digest = DerivedDigest::new(&header);
    let mut stmt = c.prepare("SELECT id, wire_json FROM campaign ORDER BY id")?;
    let mut rows = stmt.query([])?;
    while let Some(row) = rows.next()? {
        let text = |i| row.get_ref(i).and_then(|v| v.as_str().map_err(rusqlite::Error::from));
        digest.campaign(text(0)?, text(1)?);
    }
    let mut stmt = c.prepare("SELECT coupon_id FROM revoked ORDER BY coupon_id")?;
    let mut rows = stmt.query([])?;
    while let Some(row) = rows.next()? {
        digest.revoked(row.get_ref(0).and_then(|v| v.as_str().map_err(rusqlite::Error::from))?);
    }
    Ok(Some(digest.finish()))
}

/// Part of migration 3. It taught the rule set two fields an older redeemd ignored
/// (`presentation_max_age_seconds`, `campaigns[].presentation`): a rule set installed by
/// that version holds them in its JWS only, not in the header row and campaign table that
/// decisions read, and the start-up proof would then (rightly) find the tables different
/// from the signed text and refuse every code until a newer rule set came. They are
/// rebuilt here from the stored JWS when the current rules accept its payload; otherwise
/// they stay as they are and the proof fails closed. The proof re-verifies the signature
/// at start either way, so nothing unsigned becomes a rule.
fn rederive_ruleset_tables(tx: &Connection) -> Result<()> {
    let Some(version) = tx.query_row("SELECT MAX(version) FROM ruleset", [], |r| r.get::<_, Option<i64>>(0))? else {
        return Ok(());
    };
    // Read in pieces, as the proof reads it: a 25 MB rule set is never held whole.
    let source = BlobSource {
        blob: tx.blob_open(rusqlite::MAIN_DB, "ruleset", "jws", version, true)?,
        error: RefCell::new(None),
    };
    let wire = crate::jws::split(&source)
        .ok()
        .flatten()
        .and_then(|parts| crate::jws::parse_payload::<RuleSetWire>(&source, parts.payload).ok());
    if let Some(e) = source.error.into_inner() {
        return Err(e.into());
    }
    let Some(wire) = wire.filter(|w| RuleSet::from_wire(w).is_ok()) else {
        return Ok(());
    };
    tx.execute("UPDATE ruleset SET header_json = ?2 WHERE version = ?1", params![version, header_json(&wire)?])?;
    let mut update = tx.prepare("UPDATE campaign SET wire_json = ?2 WHERE id = ?1")?;
    for c in &wire.campaigns {
        let json = serde_json::to_string(c).map_err(|e| StoreError::Corrupt(e.to_string()))?;
        update.execute(params![c.id, json])?;
    }
    Ok(())
}

/// The rule set without campaigns and revoked ids, as the `ruleset` row keeps it.
fn header_json(wire: &RuleSetWire) -> Result<String> {
    // Field by field: cloning the whole wire would copy every campaign and revoked id.
    let header = RuleSetWire {
        format: wire.format,
        version: wire.version,
        issuer: wire.issuer.clone(),
        issued_at: wire.issued_at.clone(),
        expires_at: wire.expires_at.clone(),
        timezone: wire.timezone.clone(),
        currency: wire.currency.clone(),
        coupon_keys: wire.coupon_keys.clone(),
        max_coupons_per_basket: wire.max_coupons_per_basket,
        presentation_max_age_seconds: wire.presentation_max_age_seconds,
        campaigns: Vec::new(),
        revoked: None,
        offline: wire.offline.clone(),
    };
    serde_json::to_string(&header).map_err(|e| StoreError::Corrupt(e.to_string()))
}

/// The digest the derived tables must have for a verified rule set (consumed: its
/// campaigns are serialized one by one as they go).
pub fn derived_digest_of(mut wire: RuleSetWire) -> Result<[u8; 32]> {
    let revoked = wire.revoked.take().unwrap_or_default();
    let mut campaigns = std::mem::take(&mut wire.campaigns);
    let mut digest = DerivedDigest::new(&header_json(&wire)?);
    campaigns.sort_unstable_by(|a, b| a.id.cmp(&b.id));
    for c in campaigns {
        digest.campaign(&c.id, &serde_json::to_string(&c).map_err(|e| StoreError::Corrupt(e.to_string()))?);
    }
    // Sorted by bytes and deduplicated, as the table's primary key keeps them.
    for id in revoked.iter() {
        digest.revoked(id);
    }
    Ok(digest.finish())
}

/// Canonical form: the header JSON, then `c <id> <json>` per campaign by id, then
/// `r <id>` per revoked id, sorted (SQLite's BINARY order is byte order, as Rust's).
struct DerivedDigest(sha2::Sha256);

impl DerivedDigest {
    fn new(header: &str) -> DerivedDigest {
        use sha2::Digest as _;
        let mut h = sha2::Sha256::new();
        h.update(header.as_bytes());
        h.update(b"\n");
        DerivedDigest(h)
    }

    fn campaign(&mut self, id: &str, json: &str) {
        use sha2::Digest as _;
        for part in [b"c\t".as_slice(), id.as_bytes(), b"\t", json.as_bytes(), b"\n"] {
            self.0.update(part);
        }
    }

    fn revoked(&mut self, id: &str) {
        use sha2::Digest as _;
        for part in [b"r\t".as_slice(), id.as_bytes(), b"\n"] {
            self.0.update(part);
        }
    }

    fn finish(self) -> [u8; 32] {
        use sha2::Digest as _;
        self.0.finalize().into()
    }
}

/// One outbox row as `outbox list` shows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OutboxRow {
    pub seq: i64,
    pub event_id: String,
    pub kind: String,
    pub redemption_id: String,
    pub state: EventState,
    /// Upstream's answer (for a parked event: its 400 message).
    pub answer: Option<String>,
    pub created: Timestamp,
}

/// One outbox row as the forwarder sends it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OutboxEvent {
    pub seq: i64,
    pub event_id: String,
    pub kind: String,
    pub redemption_id: String,
    pub body: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Counts {
    pub redemptions: i64,
    pub voids: i64,
    pub checkouts: i64,
    pub outbox: i64,
    pub rulesets: i64,
}

fn pos_ref<'a>(checkout: &CheckoutRef<'a>) -> Option<&'a str> {
    match checkout {
        CheckoutRef::Single { pos_ref, .. } => *pos_ref,
        CheckoutRef::Existing(_) => None,
    }
}

/// The checkout as the decision sees it: totals plus what it already accepted.
fn checkout_view(conn: &Connection, checkout: &CheckoutRef<'_>) -> Result<(Checkout, Option<String>)> {
    match *checkout {
        CheckoutRef::Single { basket_total, eligible_total, .. } => {
            Ok((Checkout::new(basket_total, eligible_total), None))
        }
        CheckoutRef::Existing(id) => {
            let (basket, eligible, count, discount): (i64, i64, u64, i64) = conn
                .prepare_cached(
                    "SELECT c.basket_total, c.eligible_total,
                            (SELECT COUNT(*) FROM redemption r WHERE r.checkout_id = c.id AND r.voided_ms IS NULL),
                            (SELECT IFNULL(SUM(discount), 0) FROM redemption r WHERE r.checkout_id = c.id AND r.voided_ms IS NULL)
                     FROM checkout c WHERE c.id = ?1",
                )?
                .query_row([id], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?)))
                .optional()?
                .ok_or_else(|| StoreError::Corrupt(format!("checkout {id} does not exist")))?;
            let view = Checkout {
                basket_total: Money(basket),
                eligible_total: Money(eligible),
                accepted_count: count,
                accepted_discount: Money(discount),
            };
            Ok((view, Some(id.to_owned())))
        }
    }
}

/// The claims an acceptance asks the hub for: the coupon, and a holder slot of the
/// business day when the campaign limits holders.
fn claim_request(coupon: &Coupon, rules: &RuleSet, redemption_id: &str, at: &str, now: Timestamp) -> ClaimRequest {
    let campaign = rules.campaigns.get(&coupon.campaign_id);
    let not_after = coupon.not_after.and_then(|s| i64::try_from(s).ok()).and_then(|s| Timestamp::from_second(s).ok());
    let valid_until = campaign.map_or(now, |c| c.valid_until);
    let day = now.to_zoned_datetime(rules.timezone.clone()).date();
    ClaimRequest {
        coupon_key: claim::coupon_key(coupon.coupon_id.as_str()),
        coupon_ttl: claim::coupon_claim_ttl(now, not_after, valid_until),
        holder_slots: campaign
            .and_then(|c| c.max_per_holder_per_day)
            .map(|limit| HolderSlots::new(&coupon.holder, &coupon.campaign_id, day, limit)),
        redemption_id: redemption_id.to_owned(),
        at: at.to_owned(),
    }
}

fn decide_in(
    conn: &Connection,
    code: &str,
    checkout: &Checkout,
    terminal: &Terminal,
    rules: Option<&RuleSet>,
    now: Timestamp,
) -> Result<Decision> {
    let view = SqlLedger { conn, error: RefCell::new(None) };
    let decision = decision::decide(code, checkout, terminal, rules, &view, now);
    match view.error.into_inner() {
        Some(e) => Err(e.into()),
        None => Ok(decision),
    }
}

struct RedeemEvent<'a> {
    redemption_id: &'a str,
    coupon: &'a Coupon,
    shown: Shown,
    /// The text presented: for a dynamic one the whole `CP2:` text, so that upstream can
    /// verify both signatures again.
    code: &'a str,
    view: &'a Checkout,
    discount: Money,
    rules: &'a RuleSet,
    at: String,
}

impl RedeemEvent<'_> {
    fn to_json(&self, event_id: &str, seq: i64) -> String {
        let mut event = serde_json::json!({
            "event_id": event_id, "seq": seq, "type": "redeem", "redemption_id": self.redemption_id,
            "coupon_id": self.coupon.coupon_id.as_str(), "campaign_id": self.coupon.campaign_id,
            "holder": b64url_encode(&self.coupon.holder), "code": self.code,
            "presentation": self.shown.as_str(),
            "basket_total": self.view.basket_total.0, "eligible_total": self.view.eligible_total.0,
            "discount": self.discount.0, "currency": self.rules.currency, "at": self.at,
            "ruleset_version": self.rules.version,
        });
        // A static one omits presented_at (upstream-api.md).
        if let Shown::Dynamic { presented_at } = self.shown {
            let signed = i64::try_from(presented_at).ok().and_then(|s| Timestamp::from_second(s).ok());
            // The window keeps an accepted presentation within 10 minutes of now: always an instant.
            if let Some(signed) = signed {
                event["presented_at"] = rfc3339(signed, &self.rules.timezone).into();
            }
        }
        event.to_string()
    }
}

/// Appends one event with the next `seq` inside the caller's transaction.
/// `enters`: the discount of a redemption whose (pending) redeem event this is; it joins
/// the unsynced set, so the event's running totals count it (the ledger checks them).
fn append_event(
    conn: &Connection,
    kind: &str,
    redemption_id: &str,
    enters: Option<Money>,
    body: impl FnOnce(&str, i64) -> String,
    now: Timestamp,
) -> Result<()> {
    let (seq, in_count, in_value): (i64, i64, i64) = conn
        .prepare_cached(
            "SELECT IFNULL(MAX(seq), 0) + 1, IFNULL(o.in_count, 0), IFNULL(o.in_value, 0)
             FROM (SELECT 1) LEFT JOIN outbox o ON o.seq = (SELECT MAX(seq) FROM outbox)",
        )?
        .query_row([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))?;
    let (in_count, in_value) = match enters {
        Some(discount) => (in_count + 1, in_value + discount.0),
        None => (in_count, in_value),
    };
    let event_id = new_uuid(now);
    let body = body(&event_id, seq);
    conn.prepare_cached(
        "INSERT INTO outbox (seq, event_id, type, redemption_id, body, created_ms, in_count, in_value)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
    )?
    .execute(params![seq, event_id, kind, redemption_id, body, ms(now), in_count, in_value])?;
    Ok(())
}

/// What a refusal's message may tell beside the reason: when the coupon was redeemed on
/// this ledger (unvoided) and, when that was before a restore, by which terminal; and the
/// unsynced backlog.
pub fn refusal_facts_in(c: &Connection, coupon_id: Option<&str>) -> Result<(Option<Redeemed>, Unsynced)> {
    let live = match coupon_id {
        Some(id) => c
            .prepare_cached(
                "SELECT r.at_ms, (SELECT o.seq FROM outbox o WHERE o.redemption_id = r.id AND o.type = 'redeem')
                 FROM redemption r WHERE r.coupon_id = ?1 AND r.voided_ms IS NULL",
            )?
            .query_row([id], |r| Ok((r.get::<_, i64>(0)?, r.get::<_, Option<i64>>(1)?)))
            .optional()?,
        None => None,
    };
    let redeemed = match live {
        Some((at_ms, seq)) => {
            let before_swap = match seq {
                Some(seq) => swaps_in(c)?.into_iter().find(|s| seq <= s.through_seq).map(|s| s.terminal),
                None => None,
            };
            Some(Redeemed { at: from_ms(at_ms), before_swap })
        }
        None => None,
    };
    Ok((redeemed, unsynced(c)?))
}

/// The ledger's swaps ([`META_SWAPS`]), oldest first; an unreadable value counts as none.
fn swaps_in(c: &Connection) -> Result<Vec<Swap>> {
    let text: Option<String> =
        c.prepare_cached("SELECT value FROM meta WHERE key = ?1")?.query_row([META_SWAPS], |r| r.get(0)).optional()?;
    Ok(text.and_then(|t| serde_json::from_str(&t).ok()).unwrap_or_default())
}

/// A redemption is unsynced while it is not voided and its redeem event waits for an
/// answer (a parked one counts as answered). The ledger keeps the totals as events come
/// and go (triggers of migration 5): the newest event's running totals of what entered
/// the set, minus what left it since; two rows read, whatever the backlog.
const UNSYNCED_SQL: &str = "SELECT o.seq, o.in_count - u.count, o.in_value - u.value
     FROM unsynced_out u LEFT JOIN outbox o ON o.seq = (SELECT MAX(seq) FROM outbox)
     WHERE u.id = 1";

fn unsynced(conn: &Connection) -> rusqlite::Result<Unsynced> {
    let (newest, count, value): (Option<i64>, Option<i64>, Option<i64>) =
        conn.prepare_cached(UNSYNCED_SQL)?.query_row([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))?;
    match (newest, count, value) {
        (None, _, _) => Ok(Unsynced { count: 0, value: Money(0) }),
        // A negative count or a missing running total: the rows were edited; no decision
        // under an offline limit is made on them.
        (Some(_), Some(count), Some(value)) if count >= 0 && value >= 0 => {
            Ok(Unsynced { count: count as u64, value: Money(value) })
        }
        _ => Err(rusqlite::Error::FromSqlConversionFailure(
            0,
            rusqlite::types::Type::Integer,
            format!("the ledger's unsynced totals are inconsistent ({count:?}, {value:?}): edited rows?").into(),
        )),
    }
}

/// [`LedgerView`] over an open transaction. The trait is infallible (the decision is
/// pure); the first SQL error is kept and turns the whole decision into an error.
struct SqlLedger<'c> {
    conn: &'c Connection,
    error: RefCell<Option<rusqlite::Error>>,
}

impl SqlLedger<'_> {
    fn query<T: Default>(&self, f: impl FnOnce(&Connection) -> rusqlite::Result<T>) -> T {
        match f(self.conn) {
            Ok(v) => v,
            Err(e) => {
                self.error.borrow_mut().get_or_insert(e);
                T::default()
            }
        }
    }
}

impl LedgerView for SqlLedger<'_> {
    fn is_revoked(&self, coupon_id: &str) -> bool {
        self.query(|c| c.prepare_cached("SELECT 1 FROM revoked WHERE coupon_id = ?1")?.exists([coupon_id]))
    }

    fn is_redeemed(&self, coupon_id: &str) -> bool {
        self.query(|c| {
            c.prepare_cached("SELECT 1 FROM redemption WHERE coupon_id = ?1 AND voided_ms IS NULL")?.exists([coupon_id])
        })
    }

    fn holder_redemptions(&self, holder: &[u8], campaign_id: &str, from: Timestamp, until: Timestamp) -> u64 {
        self.query(|c| {
            c.prepare_cached(
                "SELECT COUNT(*) FROM redemption
                 WHERE holder = ?1 AND campaign_id = ?2 AND at_ms >= ?3 AND at_ms < ?4 AND voided_ms IS NULL",
            )?
            .query_row(params![holder, campaign_id, ms(from), ms(until)], |r| r.get(0))
        })
    }

    fn unsynced(&self) -> Unsynced {
        self.query(unsynced)
    }

    fn last_contact(&self) -> Option<Timestamp> {
        self.query(|c| {
            let value: Option<String> = c
                .prepare_cached(
                    "SELECT value FROM meta WHERE key = 'last_contact_ms'
                     UNION ALL SELECT value FROM meta WHERE key = 'first_ruleset_ms' LIMIT 1",
                )?
                .query_row([], |r| r.get(0))
                .optional()?;
            Ok(value.and_then(|v| v.parse::<i64>().ok()).map(from_ms))
        })
    }
}

// ------------------------------------------------------------ inspection, backup, restore

/// SQLite `application_id` of a backup made by `redeemd backup`: "RDMB". A backup is a
/// ledger copy plus two tables of its own, so it is never mistaken for a live ledger.
pub const BACKUP_APPLICATION_ID: i64 = 0x5244_4D42;

/// At most this many lines of `PRAGMA quick_check` are kept.
const QUICK_CHECK_LINES: i64 = 20;

fn step_to_done(backup: &rusqlite::backup::Backup<'_, '_>) -> rusqlite::Result<()> {
    use rusqlite::backup::StepResult;
    // All pages in one step: one read transaction, so the copy is one consistent
    // snapshot even while the daemon keeps writing (WAL readers do not block it).
    for _ in 0..500 {
        match backup.step(-1)? {
            StepResult::Done => return Ok(()),
            _ => std::thread::sleep(std::time::Duration::from_millis(20)),
        }
    }
    Err(rusqlite::Error::SqliteFailure(
        rusqlite::ffi::Error::new(rusqlite::ffi::SQLITE_BUSY),
        Some("the ledger stayed locked for 10 s".into()),
    ))
}

impl Store {
    /// Opens an existing ledger for reading only (`doctor`, `backup`, `restore`'s check):
    /// no migration, no stamping, no pragma that writes. A file that is not a redeemd
    /// ledger, or one newer than this binary, is refused as [`Store::open`] would.
    pub fn open_read_only(path: &Path) -> Result<Store> {
        match std::fs::metadata(path) {
            Err(_) => return Err(StoreError::Missing(path.into())),
            Ok(meta) if meta.len() == 0 => {
                return Err(StoreError::Foreign { path: path.into(), why: "the file is empty (0 bytes)".into() })
            }
            Ok(_) => {}
        }
        let flags = rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY | rusqlite::OpenFlags::SQLITE_OPEN_NO_MUTEX;
        let open = |source| StoreError::Open { path: path.into(), source };
        let conn = Connection::open_with_flags(path, flags).map_err(open)?;
        conn.busy_timeout(std::time::Duration::from_secs(10)).map_err(open)?;
        let store = Store { conn };
        let app: i64 = match store.conn.pragma_query_value(None, "application_id", |r| r.get(0)) {
            Ok(app) => app,
            Err(rusqlite::Error::SqliteFailure(f, _)) if f.code == rusqlite::ErrorCode::NotADatabase => {
                return Err(StoreError::Foreign { path: path.into(), why: "the file is not an SQLite database".into() })
            }
            Err(e) => return Err(open(e)),
        };
        let version = store.schema_version().map_err(|e| match e {
            StoreError::Sql(source) => open(source),
            other => other,
        })?;
        if app != LEDGER_APPLICATION_ID && !(app == 0 && version >= 1) {
            return Err(StoreError::Foreign {
                path: path.into(),
                why: format!("its SQLite application_id is {app:#x}, not redeemd's"),
            });
        }
        if version > MIGRATIONS.len() as i64 {
            return Err(StoreError::TooNew { found: version, known: MIGRATIONS.len() as i64 });
        }
        Ok(store)
    }

    /// `PRAGMA quick_check`: `["ok"]` for a sound file, else what SQLite found (at most
    /// 20 lines).
    pub fn quick_check(&self) -> Result<Vec<String>> {
        quick_check_in(&self.conn)
    }

    /// Every outbox event id, the ledger's record of what happened.
    pub fn event_ids(&self) -> Result<std::collections::HashSet<String>> {
        let mut stmt = self.conn.prepare("SELECT event_id FROM outbox")?;
        let rows = stmt.query_map([], |r| r.get::<_, String>(0))?;
        Ok(rows.collect::<rusqlite::Result<_>>()?)
    }

    /// Writes a consistent copy of the ledger to `dest` with SQLite's online backup (safe
    /// while the daemon writes), adds `files` (name → bytes) and `info` (key → text),
    /// drops page sessions (they belong to this terminal's browser), and makes it a
    /// single-file database stamped as a backup. `dest` must not exist.
    pub fn backup_to(&self, dest: &Path, files: &[(&str, Vec<u8>)], info: &[(&str, String)]) -> Result<()> {
        let open = |source| StoreError::Open { path: dest.into(), source };
        let mut out = Connection::open(dest).map_err(open)?;
        {
            let backup = rusqlite::backup::Backup::new(&self.conn, &mut out)?;
            step_to_done(&backup)?;
        }
        let mode: String = out.pragma_update_and_check(None, "journal_mode", "DELETE", |r| r.get(0))?;
        if !mode.eq_ignore_ascii_case("delete") {
            return Err(StoreError::Corrupt(format!("the backup's journal_mode is {mode}, not delete")));
        }
        let tx = out.transaction_with_behavior(TransactionBehavior::Immediate)?;
        tx.execute_batch(
            "DELETE FROM session;
             CREATE TABLE backup_info (key TEXT PRIMARY KEY, value TEXT NOT NULL) WITHOUT ROWID;
             CREATE TABLE backup_file (name TEXT PRIMARY KEY, content BLOB NOT NULL) WITHOUT ROWID;",
        )?;
        for (key, value) in info {
            tx.execute("INSERT INTO backup_info (key, value) VALUES (?1, ?2)", params![key, value])?;
        }
        for (name, content) in files {
            tx.execute("INSERT INTO backup_file (name, content) VALUES (?1, ?2)", params![name, content])?;
        }
        tx.pragma_update(None, "application_id", BACKUP_APPLICATION_ID)?;
        tx.commit()?;
        out.execute_batch("VACUUM")?;
        Ok(())
    }
}

/// A backup file made by [`Store::backup_to`], opened read-only.
pub struct BackupFile {
    conn: Connection,
}

impl BackupFile {
    pub fn open(path: &Path) -> Result<BackupFile> {
        let flags = rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY | rusqlite::OpenFlags::SQLITE_OPEN_NO_MUTEX;
        let not_backup = |why: String| StoreError::Foreign { path: path.into(), why };
        if !path.is_file() {
            return Err(StoreError::Missing(path.into()));
        }
        let conn = Connection::open_with_flags(path, flags)
            .map_err(|source| StoreError::Open { path: path.into(), source })?;
        let app: i64 = conn
            .pragma_query_value(None, "application_id", |r| r.get(0))
            .map_err(|_| not_backup("the file is not an SQLite database".into()))?;
        if app != BACKUP_APPLICATION_ID {
            return Err(not_backup(format!("its application_id is {app:#x}, not a redeemd backup's")));
        }
        let file = BackupFile { conn };
        let version: i64 = file.conn.pragma_query_value(None, "user_version", |r| r.get(0))?;
        if version > MIGRATIONS.len() as i64 {
            return Err(StoreError::TooNew { found: version, known: MIGRATIONS.len() as i64 });
        }
        Ok(file)
    }

    pub fn quick_check(&self) -> Result<Vec<String>> {
        quick_check_in(&self.conn)
    }

    pub fn info(&self, key: &str) -> Result<Option<String>> {
        Ok(self.conn.query_row("SELECT value FROM backup_info WHERE key = ?1", [key], |r| r.get(0)).optional()?)
    }

    pub fn file(&self, name: &str) -> Result<Option<Vec<u8>>> {
        Ok(self.conn.query_row("SELECT content FROM backup_file WHERE name = ?1", [name], |r| r.get(0)).optional()?)
    }

    pub fn event_ids(&self) -> Result<std::collections::HashSet<String>> {
        let mut stmt = self.conn.prepare("SELECT event_id FROM outbox")?;
        let rows = stmt.query_map([], |r| r.get::<_, String>(0))?;
        Ok(rows.collect::<rusqlite::Result<_>>()?)
    }

    /// The version of the backup's rule set in force.
    pub fn ruleset_version(&self) -> Result<Option<u64>> {
        Ok(self.conn.query_row("SELECT MAX(version) FROM ruleset", [], |r| r.get(0))?)
    }

    /// (redemptions, events, events not yet answered by upstream).
    pub fn counts(&self) -> Result<(i64, i64, i64)> {
        Ok(self.conn.query_row(
            "SELECT (SELECT COUNT(*) FROM redemption), (SELECT COUNT(*) FROM outbox),
                    (SELECT COUNT(*) FROM outbox WHERE state IN ('pending', 'parked'))",
            [],
            |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
        )?)
    }

    /// Replaces the ledger at `ledger` (created if missing) with this backup's ledger,
    /// through SQLite's backup API (so the live file's WAL and locks are respected), then
    /// drops the backup's own tables, stamps it a ledger, and brings its schema up to date.
    /// The caller has checked that nothing in `ledger` would be lost.
    pub fn restore_into(&self, ledger: &Path) -> Result<Store> {
        let open = |source| StoreError::Open { path: ledger.into(), source };
        // A new ledger is 0600 before SQLite makes it, as in [`Store::open`].
        let _ = crate::secret::create_private_file(ledger);
        let mut dst = Connection::open(ledger).map_err(open)?;
        dst.busy_timeout(std::time::Duration::from_secs(10))?;
        let mode: String = dst.pragma_update_and_check(None, "journal_mode", "WAL", |r| r.get(0))?;
        if !mode.eq_ignore_ascii_case("wal") {
            return Err(StoreError::Corrupt(format!("journal_mode is {mode}, not wal")));
        }
        {
            let backup = rusqlite::backup::Backup::new(&self.conn, &mut dst)?;
            step_to_done(&backup)?;
        }
        let tx = dst.transaction_with_behavior(TransactionBehavior::Immediate)?;
        tx.execute_batch("DROP TABLE backup_info; DROP TABLE backup_file;")?;
        tx.pragma_update(None, "application_id", LEDGER_APPLICATION_ID)?;
        tx.commit()?;
        drop(dst);
        Store::open(ledger)
    }
}

/// `PRAGMA quick_check` of `conn`: `["ok"]` for a sound file, else what SQLite found (at
/// most 20 lines).
fn quick_check_in(conn: &Connection) -> Result<Vec<String>> {
    let mut stmt = conn.prepare(&format!("PRAGMA quick_check({QUICK_CHECK_LINES})"))?;
    let rows = stmt.query_map([], |r| r.get::<_, String>(0))?;
    Ok(rows.collect::<rusqlite::Result<_>>()?)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::issuer::Issuer;
    use crate::ruleset::parse_anchors;

    /// A ledger with rule set 1 (campaigns Z and A; revoked ids shuffled, one twice).
    fn ledger() -> (tempfile::TempDir, Store, Vec<TrustAnchor>) {
        let dir = tempfile::tempdir().unwrap();
        let mut store = Store::open(&dir.path().join("ledger.sqlite")).unwrap();
        let issuer = Issuer::from_seed(5);
        let anchors = parse_anchors(&issuer.trust_anchors_json()).unwrap();
        let now: Timestamp = "2026-11-28T04:00:00Z".parse().unwrap();
        let payload = issuer.ruleset_payload(1, now, &["Z", "A"], &["r-b", "r-a", "r-c", "r-a"]);
        let verified = crate::ruleset::verify(&issuer.sign_ruleset(&payload), &anchors).unwrap();
        assert_eq!(verified.rules.revoked_count, 4, "as listed, duplicates included");
        store.install_ruleset(&verified, now).unwrap().unwrap();
        (dir, store, anchors)
    }

    /// A ledger with [`ledger`]'s rule set and what a test needs to redeem on it.
    struct Till {
        _dir: tempfile::TempDir,
        store: Store,
        issuer: Issuer,
        rules: RuleSet,
        terminal: Terminal,
        now: Timestamp,
    }

    impl Till {
        fn new() -> Till {
            let (_dir, store, _) = ledger();
            let rules = store.ruleset().unwrap().unwrap().rules;
            Till {
                _dir,
                store,
                issuer: Issuer::from_seed(5),
                rules,
                terminal: Terminal { merchant_id: "M-1".into(), merchant_category: "dining".into() },
                now: "2026-11-28T05:00:00Z".parse().unwrap(),
            }
        }

        /// A single-code sale of `basket` at `at` with a fresh code of campaign A (coupon
        /// `id`, holder `holder-{id}`), which the rule set accepts: its redemption id.
        fn redeem(&mut self, id: &str, basket: i64, at: Timestamp) -> String {
            let mut spec = crate::issuer::CodeSpec::new(id, "A", self.now);
            spec.holder = format!("holder-{id}").into_bytes();
            let single = CheckoutRef::Single { basket_total: Money(basket), eligible_total: None, pos_ref: None };
            let code = self.issuer.code(&spec);
            let recorded = self.store.present(single, &code, &self.terminal, Some(&self.rules), at).unwrap();
            recorded.redemption_id.unwrap_or_else(|| panic!("{id} refused: {:?}", recorded.decision.outcome))
        }
    }

    #[test]
    fn stored_states_serialize_as_the_schema_words() {
        for state in EventState::ALL {
            assert_eq!(serde_json::to_value(state).unwrap(), state.as_str());
            assert_eq!(EventState::parse(state.as_str()), Some(*state));
        }
        for state in ForwardState::ALL {
            assert_eq!(serde_json::to_value(state).unwrap(), state.as_str());
            assert_eq!(ForwardState::parse(state.as_str()), Some(*state));
        }
    }

    #[test]
    fn installed_tables_are_proven_and_every_edit_is_caught() {
        let (_dir, store, anchors) = ledger();
        assert_eq!(store.prove_derived_tables(&anchors).unwrap(), DerivedProof::Proven { version: 1 });
        let revoked: Vec<String> = store
            .conn
            .prepare("SELECT coupon_id FROM revoked ORDER BY coupon_id")
            .unwrap()
            .query_map([], |r| r.get(0))
            .unwrap()
            .collect::<rusqlite::Result<_>>()
            .unwrap();
        assert_eq!(revoked, ["r-a", "r-b", "r-c"]);
        for edit in [
            "DELETE FROM revoked WHERE coupon_id = 'r-a'",
            "INSERT INTO revoked (coupon_id) VALUES ('r-d')",
            "UPDATE campaign SET wire_json = replace(wire_json, '\"face_value\":1000', '\"face_value\":2000') WHERE id = 'A'",
            "DELETE FROM campaign WHERE id = 'A'",
            "UPDATE ruleset SET header_json = replace(header_json, 'CNY', 'USD')",
        ] {
            let (_dir, store, anchors) = ledger();
            assert_eq!(store.conn.execute(edit, []).unwrap(), 1, "{edit}");
            assert_eq!(store.prove_derived_tables(&anchors).unwrap(), DerivedProof::Differs { version: 1 }, "{edit}");
        }
    }

    #[test]
    fn a_stored_text_that_no_longer_verifies_is_reported() {
        let (_dir, store, anchors) = ledger();
        let others = parse_anchors(&Issuer::from_seed(6).trust_anchors_json()).unwrap();
        assert!(matches!(
            store.prove_derived_tables(&others).unwrap(),
            DerivedProof::Unverified { version: 1, refusal: Refusal::UntrustedKid(_) }
        ));
        // One payload character changed: the signature no longer matches.
        store
            .conn
            .execute(
                "UPDATE ruleset SET jws = substr(jws, 1, instr(jws, '.') + 10)
                     || CASE substr(jws, instr(jws, '.') + 11, 1) WHEN 'A' THEN 'B' ELSE 'A' END
                     || substr(jws, instr(jws, '.') + 12)",
                [],
            )
            .unwrap();
        let proof = store.prove_derived_tables(&anchors).unwrap();
        assert!(
            matches!(proof, DerivedProof::Unverified { version: 1, refusal: Refusal::BadSignature(_) }),
            "{proof:?}"
        );
    }

    #[test]
    fn a_version_2_ledger_migrates_and_its_text_jws_still_proves() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("ledger.sqlite");
        let issuer = Issuer::from_seed(5);
        let anchors = parse_anchors(&issuer.trust_anchors_json()).unwrap();
        let now: Timestamp = "2026-11-28T04:00:00Z".parse().unwrap();
        let payload = issuer.ruleset_payload(4, now, &["Z", "A"], &["r-b", "r-a"]);
        let jws = issuer.sign_ruleset(&payload);
        let verified = crate::ruleset::verify(&jws, &anchors).unwrap();
        {
            // A ledger as version 2 wrote it: the JWS bound as TEXT, second in its row.
            let conn = Connection::open(&path).unwrap();
            conn.pragma_update(None, "application_id", LEDGER_APPLICATION_ID).unwrap();
            conn.execute_batch(MIGRATIONS[0].1).unwrap();
            conn.execute_batch(MIGRATIONS[1].1).unwrap();
            conn.pragma_update(None, "user_version", 2).unwrap();
            conn.execute(
                "INSERT INTO ruleset (version, jws, header_json, issued_at_ms, expires_at_ms, installed_ms, revoked_count)
                 VALUES (4, ?1, ?2, 0, 0, 0, 2)",
                params![jws, header_json(&verified.wire).unwrap()],
            )
            .unwrap();
            for c in &verified.wire.campaigns {
                conn.execute(
                    "INSERT INTO campaign (id, wire_json) VALUES (?1, ?2)",
                    params![c.id, serde_json::to_string(c).unwrap()],
                )
                .unwrap();
            }
            conn.execute_batch("INSERT INTO revoked VALUES ('r-a'), ('r-b')").unwrap();
            // Three redemptions waiting: one counts, one is voided, one is parked.
            conn.execute_batch(
                "INSERT INTO checkout (id, basket_total, eligible_total, opened_ms) VALUES ('c', 9000, 9000, 0);
                 INSERT INTO redemption (id, checkout_id, coupon_id, campaign_id, holder, code, discount,
                     basket_total, eligible_total, currency, ruleset_version, at_ms, voided_ms) VALUES
                     ('r1', 'c', 'k1', 'A', x'00', 'CP1:', 700, 9000, 9000, 'CNY', 4, 0, NULL),
                     ('r2', 'c', 'k2', 'A', x'00', 'CP1:', 800, 9000, 9000, 'CNY', 4, 0, 1),
                     ('r3', 'c', 'k3', 'A', x'00', 'CP1:', 900, 9000, 9000, 'CNY', 4, 0, NULL);
                 INSERT INTO outbox (seq, event_id, type, redemption_id, body, created_ms, state) VALUES
                     (1, 'e1', 'redeem', 'r1', '{}', 0, 'pending'),
                     (2, 'e2', 'redeem', 'r2', '{}', 0, 'pending'),
                     (3, 'e3', 'redeem', 'r3', '{}', 0, 'parked'),
                     (4, 'e4', 'void', 'r2', '{}', 0, 'pending');",
            )
            .unwrap();
        }
        let store = Store::open(&path).unwrap();
        assert_eq!(store.schema_version().unwrap(), MIGRATIONS.len() as i64);
        let totals = store.unsynced().unwrap();
        assert_eq!((totals.count, totals.value.0), (1, 700), "the totals start from the rows");
        // The first event after the migration carries them on.
        let mut store = store;
        let rules = store.ruleset().unwrap().unwrap().rules;
        let terminal = Terminal { merchant_id: "M-1".into(), merchant_category: "dining".into() };
        let code = issuer.code(&crate::issuer::CodeSpec::new("NEW-1", "A", now));
        let single = CheckoutRef::Single { basket_total: Money(5000), eligible_total: None, pos_ref: None };
        let later = now + jiff::SignedDuration::from_hours(1);
        assert!(store.present(single, &code, &terminal, Some(&rules), later).unwrap().redemption_id.is_some());
        let totals = store.unsynced().unwrap();
        assert_eq!((totals.count, totals.value.0), (2, 1700));
        // The outbox cursor (version 6) starts at the oldest waiting event; the parked one
        // stays out of the queue, the new one joins it.
        let low: i64 = store.conn.query_row("SELECT low FROM outbox_cursor", [], |r| r.get(0)).unwrap();
        assert_eq!(low, 1);
        let waiting: Vec<i64> = store.pending_events(10).unwrap().iter().map(|e| e.seq).collect();
        assert_eq!(waiting, [1, 2, 4, 5]);
        let kind: String = store.conn.query_row("SELECT typeof(jws) FROM ruleset", [], |r| r.get(0)).unwrap();
        assert_eq!(kind, "text", "kept as it was");
        assert_eq!(store.prove_derived_tables(&anchors).unwrap(), DerivedProof::Proven { version: 4 });
        assert_eq!(store.ruleset().unwrap().unwrap().rules.campaigns.len(), 2);
        // Installed from now on: a BLOB of the same bytes, proven alike.
        let next = crate::ruleset::verify(&issuer.sign_ruleset(&issuer.ruleset_payload(5, now, &["B"], &[])), &anchors);
        store.install_ruleset(&next.unwrap(), now).unwrap().unwrap();
        let (kind, len): (String, i64) = store
            .conn
            .query_row("SELECT typeof(jws), length(jws) FROM ruleset WHERE version = 5", [], |r| {
                Ok((r.get(0)?, r.get(1)?))
            })
            .unwrap();
        assert_eq!(kind, "blob");
        assert!(len > 100);
        assert_eq!(store.prove_derived_tables(&anchors).unwrap(), DerivedProof::Proven { version: 5 });
    }

    /// The query plan's lines, e.g. `SEARCH r USING PRIMARY KEY (id=?)`.
    fn plan(store: &Store, sql: &str) -> Vec<String> {
        let mut stmt = store.conn.prepare(&format!("EXPLAIN QUERY PLAN {sql}")).unwrap();
        let nulls = std::iter::repeat_n(rusqlite::types::Null, stmt.parameter_count());
        stmt.query_map(rusqlite::params_from_iter(nulls), |r| r.get::<_, String>(3))
            .unwrap()
            .map(Result::unwrap)
            .collect()
    }

    #[test]
    fn queries_on_every_decision_and_sync_read_indexes_not_tables() {
        let (_dir, store, _) = ledger();
        let cases = [
            (
                UNSYNCED_SQL,
                vec!["SEARCH u USING INTEGER PRIMARY KEY (rowid=?)", "SEARCH o USING INTEGER PRIMARY KEY (rowid=?)"],
            ),
            (
                UNDELIVERED_SQL,
                vec![
                    "SEARCH outbox USING INTEGER PRIMARY KEY (rowid>?)",
                    "SCAN outbox USING COVERING INDEX outbox_pending_void",
                    "SCAN outbox USING COVERING INDEX outbox_parked",
                ],
            ),
            (
                PENDING_EVENTS_SQL,
                vec![
                    "SEARCH o USING INTEGER PRIMARY KEY (rowid>?)",
                    "SCAN v USING INDEX outbox_pending_void",
                    "SEARCH p USING COVERING INDEX outbox_parked (redemption_id=",
                ],
            ),
        ];
        for (sql, want) in cases {
            let got = plan(&store, sql);
            for line in &want {
                assert!(got.iter().any(|l| l.starts_with(line)), "{sql}:\n{got:#?}\nlacks {line}");
            }
            let table_scan = |l: &&String| l.starts_with("SCAN") && !l.contains("INDEX") && *l != "SCAN CONSTANT ROW";
            assert!(!got.iter().any(|l| table_scan(&l)), "{sql}:\n{got:#?}");
        }
        let report = plan(&store, REDEMPTIONS_BETWEEN_SQL);
        assert!(report.iter().any(|l| l.starts_with("SEARCH r USING PRIMARY KEY (id>? AND id<?)")), "{report:#?}");
        assert!(!report.iter().any(|l| l.starts_with("SCAN") && !l.contains("INDEX")), "{report:#?}");
    }

    #[test]
    fn unsynced_totals_match_their_definition_in_every_state() {
        // The definition as version 2 computed it, over the redemptions' own states.
        const BY_REDEMPTION: &str = "SELECT COUNT(*), IFNULL(SUM(discount), 0) FROM redemption r
             WHERE voided_ms IS NULL AND forward_state = 'pending'
               AND NOT EXISTS (SELECT 1 FROM outbox o
                               WHERE o.redemption_id = r.id AND o.type = 'redeem' AND o.state = 'parked')";
        let mut till = Till::new();
        let now = till.now;
        let ids: Vec<String> = (0..8).map(|i| till.redeem(&format!("U-{i}"), 5000 + i, now)).collect();
        let mut store = till.store;
        let events = store.pending_events(100).unwrap();
        let same = |store: &Store, step: &str| {
            let want: (u64, i64) = store.conn.query_row(BY_REDEMPTION, [], |r| Ok((r.get(0)?, r.get(1)?))).unwrap();
            let got = store.unsynced().unwrap();
            assert_eq!((got.count, got.value.0), want, "{step}");
            // The waiting events read from the cursor (migration 6) are every pending one.
            let pending: Vec<i64> = {
                let mut stmt =
                    store.conn.prepare("SELECT seq FROM outbox WHERE state = 'pending' ORDER BY seq").unwrap();
                stmt.query_map([], |r| r.get(0)).unwrap().map(Result::unwrap).collect()
            };
            let from_cursor: Vec<i64> = store.pending_events(100).unwrap().iter().map(|e| e.seq).collect();
            // The cursor sits at the oldest pending redeem event (past the newest event when
            // none waits), whatever voids wait behind parked redeem events below it.
            let low: i64 = store.conn.query_row("SELECT low FROM outbox_cursor", [], |r| r.get(0)).unwrap();
            let tight: i64 = store
                .conn
                .query_row(
                    "SELECT IFNULL((SELECT MIN(seq) FROM outbox WHERE state = 'pending' AND type = 'redeem'),
                                   (SELECT MAX(seq) + 1 FROM outbox))",
                    [],
                    |r| r.get(0),
                )
                .unwrap();
            assert_eq!(low, tight, "{step}");
            assert_eq!(store.undelivered().unwrap().0, pending.len() as u64, "{step}");
            // Those the forwarder may send: not behind a parked event of their redemption.
            let sendable: Vec<i64> = {
                let mut stmt = store
                    .conn
                    .prepare(
                        "SELECT seq FROM outbox o WHERE state = 'pending' AND NOT EXISTS (SELECT 1 FROM outbox p
                           WHERE p.redemption_id = o.redemption_id AND p.state = 'parked' AND p.seq < o.seq)
                         ORDER BY seq",
                    )
                    .unwrap();
                stmt.query_map([], |r| r.get(0)).unwrap().map(Result::unwrap).collect()
            };
            assert_eq!(from_cursor, sendable, "{step}");
        };
        same(&store, "all pending");
        let answer = |status| EventResult { event_id: String::new(), status, raw: "{}".into() };
        store.apply_results(&events[0..1], &[answer(EventStatus::Accepted)], now).unwrap();
        store.apply_results(&events[1..2], &[answer(EventStatus::Conflict)], now).unwrap();
        store.apply_results(&events[2..3], &[answer(EventStatus::Rejected)], now).unwrap();
        same(&store, "answered");
        store.park(&events[3..5], "bad", now).unwrap();
        same(&store, "parked");
        store.void(&ids[5], None, &TimeZone::UTC, now).unwrap();
        store.void(&ids[0], None, &TimeZone::UTC, now).unwrap();
        store.void(&ids[3], None, &TimeZone::UTC, now).unwrap();
        same(&store, "voided");
        assert_eq!(store.unpark(Some(&events[4].event_id)).unwrap(), 1);
        same(&store, "one unparked");
        store.apply_results(&events[6..7], &[answer(EventStatus::Duplicate)], now).unwrap();
        store
            .apply_results(&events[3..5], &[answer(EventStatus::Accepted), answer(EventStatus::Accepted)], now)
            .unwrap();
        same(&store, "parked and unparked ones answered");
        let last = store.unsynced().unwrap();
        assert_eq!((last.count, last.value.0), (1, 1000), "only U-7 waits");
        // Parked, then voided, then put back in the queue: voided, so it does not count.
        store.park(&events[7..8], "bad", now).unwrap();
        store.void(&ids[7], None, &TimeZone::UTC, now).unwrap();
        same(&store, "parked and voided");
        assert_eq!(store.unpark(None).unwrap(), 1);
        same(&store, "voided and unparked");
        // An answer for a voided redemption's redeem event changes nothing either.
        store.apply_results(&events[7..8], &[answer(EventStatus::Accepted)], now).unwrap();
        same(&store, "voided and answered");
        assert_eq!(store.unsynced().unwrap().count, 0);
        // Rows the ledger refuses: a void undone, an amount changed, the totals deleted.
        for edit in [
            "UPDATE redemption SET voided_ms = NULL",
            "UPDATE redemption SET discount = discount + 1",
            "DELETE FROM unsynced_out",
            "UPDATE outbox SET in_count = in_count + 1",
            "INSERT INTO outbox (seq, event_id, type, redemption_id, body, created_ms, in_count, in_value)
             SELECT MAX(seq) + 1, 'x', 'void', MAX(redemption_id), '{}', 0, 5, 5000 FROM outbox",
            "DELETE FROM outbox_cursor",
            // The void events still wait: the cursor may not pass them.
            "UPDATE outbox_cursor SET low = (SELECT MAX(seq) + 1 FROM outbox)",
        ] {
            assert!(store.conn.execute(edit, []).is_err(), "{edit}");
        }
    }

    /// One step of the outbox's life, as the agent takes them.
    #[derive(Debug, Clone)]
    enum OutboxStep {
        Redeem,
        Void(usize),
        /// Answer up to `n` of the waiting events: the first `answered` of them, in an
        /// order turned by `turn`, each with `statuses[i % len]`; `again` re-sends an
        /// already answered one among them (a crash between send and mark).
        Answer {
            n: usize,
            answered: usize,
            turn: usize,
            statuses: Vec<EventStatus>,
            again: bool,
        },
        Park(usize),
        RetryOne(usize),
        RetryAll,
    }

    fn outbox_step() -> impl proptest::strategy::Strategy<Value = OutboxStep> {
        use proptest::prelude::*;
        let status = prop_oneof![
            Just(EventStatus::Accepted),
            Just(EventStatus::Duplicate),
            Just(EventStatus::Conflict),
            Just(EventStatus::Rejected)
        ];
        prop_oneof![
            4 => Just(OutboxStep::Redeem),
            1 => any::<usize>().prop_map(OutboxStep::Void),
            3 => (1..8usize, 0..8usize, any::<usize>(), proptest::collection::vec(status, 1..4), any::<bool>())
                .prop_map(|(n, answered, turn, statuses, again)| OutboxStep::Answer { n, answered, turn, statuses, again }),
            1 => any::<usize>().prop_map(OutboxStep::Park),
            1 => any::<usize>().prop_map(OutboxStep::RetryOne),
            1 => Just(OutboxStep::RetryAll),
        ]
    }

    /// What the ledger's keepers (the cursor, the running totals, the queries that use
    /// them) must agree with, computed from the rows the slow way.
    fn check_outbox_against_definitions(store: &Store, step: &str) {
        let rows = |sql: &str| -> Vec<i64> {
            let mut stmt = store.conn.prepare(sql).unwrap();
            stmt.query_map([], |r| r.get(0)).unwrap().map(Result::unwrap).collect()
        };
        let one = |sql: &str| -> i64 { store.conn.query_row(sql, [], |r| r.get(0)).unwrap() };
        let low = one("SELECT low FROM outbox_cursor");
        let tight = one("SELECT IFNULL((SELECT MIN(seq) FROM outbox WHERE state = 'pending' AND type = 'redeem'),
                           (SELECT IFNULL(MAX(seq), 0) + 1 FROM outbox))");
        assert_eq!(low, tight, "{step}: the cursor");
        let sendable = rows(
            "SELECT seq FROM outbox o WHERE state = 'pending' AND NOT EXISTS (SELECT 1 FROM outbox p
               WHERE p.redemption_id = o.redemption_id AND p.state = 'parked' AND p.seq < o.seq) ORDER BY seq",
        );
        let queued: Vec<i64> = store.pending_events(10_000).unwrap().iter().map(|e| e.seq).collect();
        assert_eq!(queued, sendable, "{step}: the queue");
        let pending = one("SELECT COUNT(*) FROM outbox WHERE state = 'pending'") as u64;
        let parked = one("SELECT COUNT(*) FROM outbox WHERE state = 'parked'") as u64;
        assert_eq!(store.undelivered().unwrap(), (pending, parked), "{step}: undelivered");
        let (count, value): (u64, i64) = store
            .conn
            .query_row(
                "SELECT COUNT(*), IFNULL(SUM(discount), 0) FROM redemption r
                 WHERE voided_ms IS NULL AND EXISTS (SELECT 1 FROM outbox o
                     WHERE o.redemption_id = r.id AND o.type = 'redeem' AND o.state = 'pending')",
                [],
                |r| Ok((r.get(0)?, r.get(1)?)),
            )
            .unwrap();
        let unsynced = store.unsynced().unwrap();
        assert_eq!((unsynced.count, unsynced.value.0), (count, value), "{step}: the unsynced totals");
        let from: Timestamp = "2026-11-27T00:00:00Z".parse().unwrap();
        let until: Timestamp = "2026-11-30T00:00:00Z".parse().unwrap();
        for r in store.redemptions_between(from, until).unwrap() {
            let id = &r.redemption_id;
            let any = |state: &str| -> bool {
                store
                    .conn
                    .query_row(
                        "SELECT EXISTS (SELECT 1 FROM outbox WHERE redemption_id = ?1 AND state = ?2)",
                        params![id, state],
                        |r| r.get(0),
                    )
                    .unwrap()
            };
            let stored: ForwardState =
                store.conn.query_row("SELECT forward_state FROM redemption WHERE id = ?1", [id], |r| r.get(0)).unwrap();
            let want = if any("parked") {
                ForwardState::Parked
            } else if any("pending") {
                ForwardState::Pending
            } else {
                stored
            };
            assert_eq!(r.state, want, "{step}: the report's state of {id}");
        }
    }

    proptest::proptest! {
        // Each case makes a ledger and signs codes, slow in debug builds: fewer cases.
        #![proptest_config(proptest::prelude::ProptestConfig::with_cases(40))]
        #[test]
        fn the_outbox_keepers_match_their_definitions_whatever_the_order_of_steps(
            steps in proptest::collection::vec(outbox_step(), 1..40)
        ) {
            let mut till = Till::new();
            let mut redemptions = Vec::new();
            for (i, step) in steps.iter().enumerate() {
                let at = till.now + jiff::SignedDuration::from_secs(i as i64);
                if let OutboxStep::Redeem = step {
                    redemptions.push(till.redeem(&format!("P-{i}"), 5000, at));
                }
                let store = &mut till.store;
                match step {
                    OutboxStep::Redeem => {}
                    OutboxStep::Void(k) if !redemptions.is_empty() => {
                        let id = redemptions[k % redemptions.len()].clone();
                        store.void(&id, None, &TimeZone::UTC, at).unwrap();
                    }
                    OutboxStep::Answer { n, answered, turn, statuses, again } => {
                        let mut events = store.pending_events(*n).unwrap();
                        events.truncate(*answered);
                        if !events.is_empty() {
                            let t = turn % events.len();
                            events.rotate_left(t);
                        }
                        if *again {
                            let answered_seq: Option<i64> = store
                                .conn
                                .query_row("SELECT MIN(seq) FROM outbox WHERE state NOT IN ('pending', 'parked')", [], |r| r.get(0))
                                .unwrap();
                            if let Some(seq) = answered_seq {
                                let (event_id, kind, redemption_id, body): (String, String, String, String) = store
                                    .conn
                                    .query_row("SELECT event_id, type, redemption_id, body FROM outbox WHERE seq = ?1", [seq], |r| {
                                        Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?))
                                    })
                                    .unwrap();
                                events.push(OutboxEvent { seq, event_id, kind, redemption_id, body });
                            }
                        }
                        let results: Vec<EventResult> = (0..events.len())
                            .map(|i| EventResult { event_id: String::new(), status: statuses[i % statuses.len()], raw: "{}".into() })
                            .collect();
                        store.apply_results(&events, &results, at).unwrap();
                    }
                    OutboxStep::Park(k) => {
                        let events = store.pending_events(8).unwrap();
                        if !events.is_empty() {
                            store.park(&events[k % events.len()..][..1], "bad", at).unwrap();
                        }
                    }
                    OutboxStep::RetryOne(k) => {
                        let parked = store.outbox_rows(Some(EventState::Parked)).unwrap();
                        if !parked.is_empty() {
                            store.unpark(Some(&parked[k % parked.len()].event_id)).unwrap();
                        }
                    }
                    OutboxStep::RetryAll => {
                        store.unpark(None).unwrap();
                    }
                    OutboxStep::Void(_) => {}
                }
                check_outbox_against_definitions(store, &format!("step {i} {step:?}"));
            }
        }
    }

    #[test]
    fn a_void_held_behind_a_parked_redeem_does_not_hold_the_outbox_cursor() {
        let mut till = Till::new();
        let now = till.now;
        let ids: Vec<String> = (0..2).map(|i| till.redeem(&format!("H-{i}"), 5000, now)).collect();
        let mut store = till.store;
        let low =
            |store: &Store| -> i64 { store.conn.query_row("SELECT low FROM outbox_cursor", [], |r| r.get(0)).unwrap() };
        let sendable = |store: &Store| -> Vec<(i64, String)> {
            store.pending_events(100).unwrap().into_iter().map(|e| (e.seq, e.kind)).collect()
        };
        let events = store.pending_events(100).unwrap();
        assert_eq!(low(&store), 1);
        // The first redeem event parked, its redemption voided: the void (seq 3) waits behind it.
        store.park(&events[0..1], "bad", now).unwrap();
        store.void(&ids[0], None, &TimeZone::UTC, now).unwrap();
        assert_eq!(sendable(&store), [(2, "redeem".to_string())]);
        // The other redeem event answered: no redeem event waits, and the cursor is past the
        // newest event, not held at the void, which still counts as undelivered.
        let accepted = EventResult { event_id: String::new(), status: EventStatus::Accepted, raw: "{}".into() };
        store.apply_results(&events[1..2], std::slice::from_ref(&accepted), now).unwrap();
        assert_eq!(low(&store), 4);
        assert!(sendable(&store).is_empty());
        assert_eq!(store.undelivered().unwrap(), (1, 1));
        // Retried, the redeem event brings the cursor back; answered, the void goes next.
        assert_eq!(store.unpark(None).unwrap(), 1);
        assert_eq!(low(&store), 1);
        assert_eq!(sendable(&store), [(1, "redeem".to_string()), (3, "void".to_string())]);
        let waiting = store.pending_events(100).unwrap();
        store.apply_results(&waiting, &[accepted.clone(), accepted], now).unwrap();
        assert_eq!(low(&store), 4);
        assert_eq!(store.undelivered().unwrap(), (0, 0));
    }

    #[test]
    fn redemption_ids_carry_their_time_and_reports_read_them_by_range() {
        let mut till = Till::new();
        let base = till.now;
        // At a day's edges to the millisecond, and in between.
        let offsets_ms = [0, 1, 999, 3_600_000, 86_399_999, 86_400_000];
        for (i, offset) in offsets_ms.iter().enumerate() {
            till.redeem(&format!("T-{i}"), 5000, base + jiff::SignedDuration::from_millis(*offset));
        }
        let store = till.store;
        let day = |from_ms: i64, until_ms: i64| -> Vec<i64> {
            let (from, until) =
                (base + jiff::SignedDuration::from_millis(from_ms), base + jiff::SignedDuration::from_millis(until_ms));
            store.redemptions_between(from, until).unwrap().iter().map(|r| (r.at - base).as_millis() as i64).collect()
        };
        assert_eq!(day(0, 86_400_000), [0, 1, 999, 3_600_000, 86_399_999]);
        assert_eq!(day(1, 999), [1]);
        assert_eq!(day(1000, 86_400_001), [3_600_000, 86_399_999, 86_400_000]);
        assert_eq!(day(-5, 0), Vec::<i64>::new());
        // A row whose id is not the UUIDv7 of its time is refused.
        let bad = store.conn.execute(
            "INSERT INTO redemption (id, checkout_id, coupon_id, campaign_id, holder, code, discount, basket_total,
                 eligible_total, currency, ruleset_version, at_ms)
             SELECT '00000000-0000-7000-8000-000000000000', checkout_id, 'X', campaign_id, holder, code, 1,
                 basket_total, eligible_total, currency, ruleset_version, at_ms FROM redemption LIMIT 1",
            [],
        );
        assert!(bad.unwrap_err().to_string().contains("UUIDv7 of its at_ms"));
    }

    #[test]
    fn nothing_to_prove_without_a_rule_set() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(&dir.path().join("ledger.sqlite")).unwrap();
        assert_eq!(store.prove_derived_tables(&[]).unwrap(), DerivedProof::Nothing);
    }
}
