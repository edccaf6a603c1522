//! The terminal agent: one value that ties the store, the rule set in force, the
//! terminal's identity, its trust anchors and the clock together, so the command line
//! (and later the daemon and the local API) run the same code for every operation.
//!
//! It owns the order of work around a decision (load rules, read the clock once, decide,
//! commit) but no SQL, no parsing and no output formatting.

use crate::clock::Clock;
use crate::decision::{Decision, Terminal};
use crate::messages::Language;
use crate::money::currency_digits;
use crate::record::DecisionRecord;
use crate::report::{self, DailyReport};
use crate::ruleset::{self, Refusal, RuleSet, TrustAnchor};
use crate::store::{CheckoutRef, DerivedProof, Install, Installed, Recorded, Store, StoreError, VoidOutcome};
use jiff::tz::TimeZone;
use jiff::Timestamp;
use rusqlite::Connection;
use thiserror::Error;

#[derive(Debug, Error)]
pub enum ImportError {
    #[error("rule set refused: {0}")]
    Refused(#[from] Refusal),
    #[error(transparent)]
    Store(#[from] StoreError),
}

pub struct Agent {
    store: Store,
    terminal: Terminal,
    anchors: Vec<TrustAnchor>,
    language: Language,
    /// The zone from the config; the rule set's zone governs once one is installed.
    fallback_timezone: TimeZone,
    clock: Box<dyn Clock>,
    installed: Option<Installed>,
    /// The ledger's `data_version` when this agent last looked.
    seen_data_version: Option<i64>,
    /// Why the stored rule set is not used (its tables do not match its signed text).
    ruleset_problem: Option<String>,
    /// Campaigns are loaded one at a time, as codes name them ([`Campaigns::AsCodesNameThem`]).
    lazy_campaigns: bool,
}

/// Which campaigns of the rule set an agent loads.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Campaigns {
    /// All of them at the start (the daemon).
    All,
    /// The rule set's header now and each campaign only when a code names it (the command
    /// line's `check` and `redeem`), so a rule set of 10^4 campaigns costs one row per
    /// decision instead of 10^4 parsed at every start. Decisions are the same as with
    /// `All`; [`Agent::installed`] holds only the campaigns loaded so far.
    AsCodesNameThem,
}

impl Agent {
    pub fn new(
        store: Store,
        terminal: Terminal,
        anchors: Vec<TrustAnchor>,
        language: Language,
        fallback_timezone: TimeZone,
        clock: Box<dyn Clock>,
    ) -> Result<Agent, StoreError> {
        Agent::open(store, terminal, anchors, language, fallback_timezone, clock, Campaigns::All)
    }

    /// An agent that loads the rule set's campaigns as `campaigns` says; [`Agent::new`]
    /// loads them all.
    pub fn open(
        store: Store,
        terminal: Terminal,
        anchors: Vec<TrustAnchor>,
        language: Language,
        fallback_timezone: TimeZone,
        clock: Box<dyn Clock>,
        campaigns: Campaigns,
    ) -> Result<Agent, StoreError> {
        let lazy_campaigns = campaigns == Campaigns::AsCodesNameThem;
        let installed = load(&store, lazy_campaigns)?;
        // From the start: a change made between opening and the first job is seen.
        let seen_data_version = store.data_version().ok();
        Ok(Agent {
            store,
            terminal,
            anchors,
            language,
            fallback_timezone,
            clock,
            installed,
            seen_data_version,
            ruleset_problem: None,
            lazy_campaigns,
        })
    }

    pub fn now(&self) -> Timestamp {
        self.clock.now()
    }

    /// Whether another process committed to the ledger since the last look (SQLite's
    /// `data_version`, one cheap pragma).
    pub fn changed_elsewhere(&mut self) -> Result<bool, StoreError> {
        let version = self.store.data_version()?;
        let changed = self.seen_data_version != Some(version);
        self.seen_data_version = Some(version);
        Ok(changed)
    }

    /// Reloads the rule set in force when its version in the ledger differs from the one
    /// in memory (an installer's `ruleset import` beside a running daemon); true when it did.
    pub fn reload_if_changed_elsewhere(&mut self) -> Result<bool, StoreError> {
        let in_force = self.installed.as_ref().map(|i| i.rules.version);
        if self.store.ruleset_version()? == in_force {
            return Ok(false);
        }
        // The import verified it; what decisions will read is proven (and loaded) here again.
        let _ = self.check_derived_tables();
        Ok(true)
    }

    pub fn installed(&self) -> Option<&Installed> {
        self.installed.as_ref()
    }

    pub fn store(&self) -> &Store {
        &self.store
    }

    pub fn store_mut(&mut self) -> &mut Store {
        &mut self.store
    }

    pub fn language(&self) -> Language {
        self.language
    }

    pub fn terminal(&self) -> &Terminal {
        &self.terminal
    }

    /// The zone of business days and hours: the rule set's, else the configured one.
    pub fn timezone(&self) -> TimeZone {
        self.installed.as_ref().map_or_else(|| self.fallback_timezone.clone(), |i| i.rules.timezone.clone())
    }

    pub fn currency(&self) -> Option<&str> {
        self.installed.as_ref().map(|i| i.rules.currency.as_str())
    }

    /// Decimal places of amounts: the rule set's currency, else 2 (CNY).
    pub fn currency_digits(&self) -> u32 {
        self.currency().map_or(2, currency_digits)
    }

    /// Verifies and installs a rule set. A refusal changes nothing and is logged.
    pub fn import_ruleset(&mut self, jws: impl Into<String>) -> Result<Install, ImportError> {
        let now = self.clock.now();
        let verified = ruleset::verify_owned(jws.into(), &self.anchors).map_err(refused)?;
        let install = self.store.install_ruleset(&verified, now)?.map_err(refused)?;
        let version = verified.rules.version;
        // The verified text and its 10^6 revoked ids go before the model is loaded back.
        drop(verified);
        if let Install::Installed { previous } = install {
            self.installed = load(&self.store, self.lazy_campaigns)?;
            self.ruleset_problem = None;
            tracing::info!(?previous, version, "rule set installed");
        }
        Ok(install)
    }

    /// Proves that the tables decisions read (campaigns, revoked ids, the header row) are
    /// exactly what the verified JWS says: re-verifies the JWS and compares digests. On
    /// any mismatch (or a ledger that cannot be read) the rule set is dropped from this
    /// agent, so decisions fail closed (`no_ruleset`); the error says why.
    pub fn check_derived_tables(&mut self) -> Result<(), String> {
        // The rule set is reloaded with the proof, in its read transaction; the copy in
        // memory goes first, so the proof's parse of the JWS never sits beside it.
        self.installed = None;
        let problem = match self.store.proven_ruleset(&self.anchors, Some(self.lazy_campaigns)) {
            Err(e) => Some(format!("the stored rule set could not be proven: {e}")),
            Ok((DerivedProof::Nothing | DerivedProof::Proven { .. }, installed)) => {
                self.installed = installed;
                None
            }
            Ok((DerivedProof::Unverified { refusal, .. }, _)) => {
                Some(format!("the stored rule set no longer verifies: {refusal}"))
            }
            Ok((DerivedProof::Differs { version }, _)) => Some(format!(
                "the ledger's campaign/revoked tables differ from the signed rule set {version} (edited?); \
                 decisions refuse with no_ruleset until a rule set is installed again"
            )),
        };
        self.ruleset_problem = problem.clone();
        match problem {
            Some(problem) => {
                tracing::error!("{problem}");
                Err(problem)
            }
            None => Ok(()),
        }
    }

    /// Why the stored rule set is not in force, when [`Agent::check_derived_tables`] found it unfit.
    pub fn ruleset_problem(&self) -> Option<&str> {
        self.ruleset_problem.as_deref()
    }

    /// Decides a code and records it when accepted; always at the clock's now.
    pub fn redeem(&mut self, checkout: CheckoutRef<'_>, code: &str) -> Result<Recorded, StoreError> {
        let now = self.clock.now();
        self.load_campaign_named_by(&checkout, code, now)?;
        let rules = self.installed.as_ref().map(|i| &i.rules);
        self.store.present(checkout, code, &self.terminal, rules, now)
    }

    /// What would happen at `at` (default now); writes nothing.
    pub fn check(
        &mut self,
        checkout: CheckoutRef<'_>,
        code: &str,
        at: Option<Timestamp>,
    ) -> Result<Decision, StoreError> {
        let now = at.unwrap_or_else(|| self.clock.now());
        self.load_campaign_named_by(&checkout, code, now)?;
        let rules = self.installed.as_ref().map(|i| &i.rules);
        self.store.evaluate(checkout, code, &self.terminal, rules, now)
    }

    /// For an agent of [`Campaigns::AsCodesNameThem`]: loads the campaign `code` names, if the
    /// rule set has it. Which campaign that is, the decision itself says (a read-only
    /// evaluation with the campaigns loaded so far): only a code that verifies names one,
    /// and nothing of an unverified code is used. Decisions consult the code's own
    /// campaign only, so they come out as with every campaign loaded (`tests/vectors.rs`
    /// runs every case both ways).
    fn load_campaign_named_by(
        &mut self,
        checkout: &CheckoutRef<'_>,
        code: &str,
        now: Timestamp,
    ) -> Result<(), StoreError> {
        let Some(installed) = self.installed.as_ref().filter(|_| self.lazy_campaigns) else {
            return Ok(());
        };
        let probe = self.store.evaluate(checkout.clone(), code, &self.terminal, Some(&installed.rules), now)?;
        let Some(id) = probe.coupon.map(|c| c.campaign_id) else {
            return Ok(());
        };
        if installed.rules.campaigns.contains_key(&id) {
            return Ok(());
        }
        if let Some(campaign) = self.store.campaign(&id)? {
            if let Some(installed) = self.installed.as_mut() {
                installed.rules.campaigns.insert(id, campaign);
            }
        }
        Ok(())
    }

    pub fn open_checkout(
        &mut self,
        basket_total: crate::money::Money,
        eligible_total: Option<crate::money::Money>,
        pos_ref: Option<&str>,
    ) -> Result<String, StoreError> {
        let now = self.clock.now();
        self.store.open_checkout(basket_total, eligible_total, pos_ref, now)
    }

    pub fn void(&mut self, redemption_id: &str, reason: Option<&str>) -> Result<VoidOutcome, StoreError> {
        let now = self.clock.now();
        let tz = self.timezone();
        self.store.void(redemption_id, reason, &tz, now)
    }

    /// Runs `f` in one write transaction with everything an operation needs; the clock
    /// is read once, so every row it writes carries the same instant.
    pub fn write<R>(
        &mut self,
        f: impl FnOnce(&Connection, &Context<'_>) -> Result<R, StoreError>,
    ) -> Result<R, StoreError> {
        let ctx = Context {
            terminal: &self.terminal,
            rules: self.installed.as_ref().map(|i| &i.rules),
            language: self.language,
            digits: self.installed.as_ref().map_or(2, |i| currency_digits(&i.rules.currency)),
            timezone: self
                .installed
                .as_ref()
                .map_or_else(|| self.fallback_timezone.clone(), |i| i.rules.timezone.clone()),
            now: self.clock.now(),
        };
        self.store.write(|c| f(c, &ctx))
    }

    /// What reports need from the rule set in force (zone, currency, names, limits).
    pub fn report_parts(&self) -> crate::report::ReportParts {
        let rules = self.installed.as_ref().map(|i| &i.rules);
        let timezone_name = rules.map_or_else(
            || self.fallback_timezone.iana_name().unwrap_or("UTC").to_owned(),
            |r| r.timezone_name.clone(),
        );
        let campaigns = || rules.into_iter().flat_map(|r| r.campaigns.values());
        crate::report::ReportParts {
            timezone_name,
            timezone: self.timezone(),
            currency: self.currency().unwrap_or("CNY").to_owned(),
            digits: self.currency_digits(),
            names: campaigns().map(|c| (c.id.clone(), c.display_name(self.language.tag()).to_owned())).collect(),
            holder_limits: campaigns().filter_map(|c| Some((c.id.clone(), c.max_per_holder_per_day?))).collect(),
        }
    }

    /// The daily write-off report of `date` (a business day in the rule set's zone).
    pub fn daily_report(&self, date: jiff::civil::Date) -> Result<DailyReport, StoreError> {
        let parts = self.report_parts();
        report::daily(&self.store, date, &parts.ctx())
    }

    /// The decision record for output, in the configured language; a refusal's message
    /// says what to do about it (`advice`), from the checkout's eligible amount and the ledger.
    pub fn record(&self, decision: &Decision, redemption_id: Option<String>) -> DecisionRecord {
        DecisionRecord::new(decision, redemption_id, self.language, self.currency_digits())
    }

    pub fn record_with_advice(
        &self,
        decision: &Decision,
        redemption_id: Option<String>,
        eligible_total: crate::money::Money,
    ) -> Result<DecisionRecord, StoreError> {
        let mut record = self.record(decision, redemption_id);
        if !decision.accepted() {
            let coupon_id = decision.coupon.as_ref().map(|c| c.coupon_id.as_str());
            let (redeemed_at, unsynced) = self.store.refusal_facts(coupon_id)?;
            let situation = crate::advice::Situation {
                eligible_total,
                accepted_discount: crate::money::Money(0),
                redeemed_at,
                unsynced,
                now: None,
            };
            let rules = self.installed.as_ref().map(|i| &i.rules);
            record.message = crate::advice::message(self.language, decision, rules, &situation);
        }
        Ok(record)
    }
}

/// What an operation inside [`Agent::write`] knows besides the transaction.
pub struct Context<'a> {
    pub terminal: &'a Terminal,
    pub rules: Option<&'a RuleSet>,
    pub language: Language,
    pub digits: u32,
    pub timezone: TimeZone,
    /// The clock, read once for the whole operation.
    pub now: Timestamp,
}

impl Context<'_> {
    pub fn rfc3339(&self, at: Timestamp) -> String {
        crate::clock::rfc3339(at, &self.timezone)
    }

    /// The decision record for output, in the configured language.
    pub fn record(&self, decision: &Decision, redemption_id: Option<String>) -> DecisionRecord {
        DecisionRecord::new(decision, redemption_id, self.language, self.digits)
    }
}

/// The rule set in force: whole, or (`lazy_campaigns`) without campaigns.
fn load(store: &Store, lazy_campaigns: bool) -> Result<Option<Installed>, StoreError> {
    if lazy_campaigns {
        store.ruleset_without_campaigns()
    } else {
        store.ruleset()
    }
}

fn refused(refusal: Refusal) -> ImportError {
    tracing::warn!(reason = refusal.code(), "rule set refused: {refusal}");
    ImportError::Refused(refusal)
}
