//! The terminal's configuration file (TOML, kebab-case keys, unknown keys refused) and the
//! paths derived from it. `packaging/redeemd.toml` is the annotated example; a test keeps
//! it parseable.
//!
//! It owns reading, checking and writing the file; it must not open the database or
//! interpret rule sets.

use crate::messages::{Language, Text};
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};
use thiserror::Error;

/// The local API's address when neither `run --listen` nor `[api] listen` gives one.
pub const DEFAULT_LISTEN: &str = "127.0.0.1:7878";
/// The scanner's firmware profile when neither `run --profile` nor `[scanner] profile` gives one.
pub const DEFAULT_PROFILE: &str = "generic-serial";
pub const DEFAULT_PATH: &str = "/etc/redeemd/redeemd.toml";
pub const DEFAULT_TIMEZONE: &str = "Asia/Shanghai";
pub const TRUST_KEYS_FILE: &str = "trust-keys.json";
pub const DATABASE_FILE: &str = "ledger.sqlite";

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case", deny_unknown_fields)]
pub struct Config {
    /// Where the ledger and the trust anchors live.
    pub data_dir: PathBuf,
    pub merchant_id: String,
    /// The shop's name as upstream gave it at enrollment, for the printed daily sheet; the
    /// merchant id stands in when it is absent (a terminal set up by hand).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub merchant_name: Option<String>,
    pub merchant_category: String,
    /// IANA zone for business days until a rule set (whose zone then governs) is installed.
    #[serde(default = "default_timezone")]
    pub timezone: String,
    /// Language of cashier messages: "zh-CN" or "en".
    #[serde(default)]
    pub language: Language,
    /// Rule-set trust anchors; default `<data-dir>/trust-keys.json`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub trust_keys: Option<PathBuf>,
    /// The issuer platform; absent on a terminal provisioned by hand.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub upstream: Option<UpstreamConfig>,
    /// The daemon's local API.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub api: Option<ApiConfig>,
    /// The daemon's barcode scanner.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub scanner: Option<ScannerConfig>,
    /// The store hub (`spec/store-hub.md`); absent: the lane decides alone, as before.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub store: Option<StoreConfig>,
}

/// One URL or a list of them.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum Urls {
    One(String),
    Many(Vec<String>),
}

impl Urls {
    pub fn list(&self) -> Vec<String> {
        match self {
            Urls::One(url) => vec![url.clone()],
            Urls::Many(urls) => urls.clone(),
        }
    }
}

/// `[store]`: the store hub this lane claims coupons at.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case", deny_unknown_fields)]
pub struct StoreConfig {
    /// `nats://` or `tls://` URL(s) of the store's NATS server.
    pub hub: Urls,
    /// The store's id on the hub; default: the merchant id.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub id: Option<String>,
    /// The lane's name; default: the terminal id (required without one).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub lane: Option<String>,
    /// A NATS `.creds` file (mode 0600).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub credentials: Option<PathBuf>,
    /// Or a user and a password file (mode 0600).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub password_file: Option<PathBuf>,
    /// The hub's CA (PEM), for `tls://`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ca: Option<PathBuf>,
    /// The budget for all claim steps of one decision, 20..=1000 ms (default 150).
    #[serde(default = "default_claim_timeout")]
    pub claim_timeout_ms: u64,
    /// What a lane does when the hub does not answer: accept (guard local) or refuse.
    #[serde(default)]
    pub when_hub_down: crate::claim::WhenHubDown,
}

fn default_claim_timeout() -> u64 {
    150
}

impl StoreConfig {
    /// What is wrong with the section, in English (the key names are the file's).
    pub fn problem(&self, terminal_id: Option<&str>) -> Option<String> {
        let urls = self.hub.list();
        if urls.is_empty() {
            return Some("hub: give at least one URL (nats://HOST:4222 or tls://HOST:4222)".into());
        }
        for url in &urls {
            let scheme = url.split_once("://").map(|(s, _)| s);
            if !matches!(scheme, Some("nats" | "tls")) || url::Url::parse(url).is_err() {
                return Some(format!("hub: {url:?} is not a nats:// or tls:// URL"));
            }
        }
        if let Some(id) = &self.id {
            if !crate::claim::is_name(id, 64) {
                return Some(format!("id: {id:?} must be 1..64 characters of A-Z a-z 0-9 _ -"));
            }
        }
        match &self.lane {
            Some(lane) if !crate::claim::is_name(lane, 32) => {
                return Some(format!("lane: {lane:?} must be 1..32 characters of A-Z a-z 0-9 _ -"));
            }
            None if terminal_id.is_none() => {
                return Some("lane: required on a terminal provisioned by hand (no terminal id)".into());
            }
            _ => {}
        }
        if !(20..=1000).contains(&self.claim_timeout_ms) {
            return Some(format!("claim-timeout-ms: {} is outside 20..1000", self.claim_timeout_ms));
        }
        if self.credentials.is_some() && (self.user.is_some() || self.password_file.is_some()) {
            return Some("give credentials, or user and password-file, not both".into());
        }
        if self.user.is_some() != self.password_file.is_some() {
            return Some("user and password-file go together".into());
        }
        None
    }
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case", deny_unknown_fields)]
pub struct ApiConfig {
    /// ADDR:PORT of the local API (default 127.0.0.1:7878).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub listen: Option<String>,
    /// Allow a listen address that is not loopback (default false).
    #[serde(default)]
    pub allow_remote: bool,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case", deny_unknown_fields)]
pub struct ScannerConfig {
    /// Serial device path, a /dev/serial/by-id/ link, `auto` (default) or `none`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub port: Option<String>,
    /// Firmware profile id (default generic-serial).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub profile: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case", deny_unknown_fields)]
pub struct UpstreamConfig {
    /// Base URL, https:// (http:// only to a loopback host).
    pub url: String,
    pub terminal_id: String,
    /// PEM CA certificate(s) of upstream, from provisioning.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ca_file: Option<PathBuf>,
    /// Also trust the system's root certificates (default true).
    #[serde(default = "yes")]
    pub system_roots: bool,
    /// Bearer token file (mode 0600); default `<data-dir>/token`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub token_file: Option<PathBuf>,
    /// Request timeout in seconds (default 10).
    #[serde(default = "default_timeout")]
    pub timeout_secs: u64,
    /// Rule-set refresh period in minutes (default 5).
    #[serde(default = "default_refresh")]
    pub refresh_minutes: u64,
    /// Heartbeat period in seconds (default 60).
    #[serde(default = "default_heartbeat")]
    pub heartbeat_secs: u64,
}

impl UpstreamConfig {
    /// A freshly provisioned terminal's settings: every period at its default.
    pub fn new(url: &str, terminal_id: &str, ca_file: Option<PathBuf>) -> UpstreamConfig {
        UpstreamConfig {
            url: url.to_owned(),
            terminal_id: terminal_id.to_owned(),
            ca_file,
            system_roots: yes(),
            token_file: None,
            timeout_secs: default_timeout(),
            refresh_minutes: default_refresh(),
            heartbeat_secs: default_heartbeat(),
        }
    }
}

fn yes() -> bool {
    true
}

fn default_timeout() -> u64 {
    10
}

fn default_refresh() -> u64 {
    5
}

fn default_heartbeat() -> u64 {
    60
}

pub const TOKEN_FILE: &str = "token";
pub const UPSTREAM_CA_FILE: &str = "upstream-ca.pem";

fn default_timezone() -> String {
    DEFAULT_TIMEZONE.to_owned()
}

/// The annotated example the package installs beside the config (`packaging/redeemd.toml`).
pub const EXAMPLE_FILE: &str = "redeemd.toml.example";

#[derive(Debug, Error)]
pub enum ConfigError {
    #[error("config file {0} does not exist; create it with `redeemd init` or pass --config")]
    Missing(PathBuf),
    #[error("cannot read config file {path}: {source}")]
    Read { path: PathBuf, source: std::io::Error },
    /// Not TOML of the config's shape: where (`line`, from 1, when the parser says) and
    /// what, in words of the message tables; `language` is the one the file asks for, when
    /// that much can be read; `example` the annotated example beside it, when installed.
    #[error("config file {path}{}: {problem}", .line.map(|l| format!(", line {l}")).unwrap_or_default())]
    Parse {
        path: PathBuf,
        line: Option<usize>,
        problem: Box<ParseProblem>,
        language: Option<Language>,
        example: Option<PathBuf>,
    },
    /// A semantic problem ([`Config::check`]), kept as a text of the message tables so the
    /// command line says it in the configured language (`Display` stays English for logs).
    /// `language` is the one the file asks for (it parsed), so the problem is said in it.
    #[error("config file {path}: {message}")]
    Invalid { path: PathBuf, message: Text, language: Language },
}

/// What is wrong in a config file that does not parse.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ParseProblem {
    /// A key the section does not have; `suggestion` is the one probably meant.
    UnknownKey {
        key: String,
        section: Option<String>,
        suggestion: Option<String>,
    },
    MissingKey {
        key: String,
        section: Option<String>,
    },
    /// A value of the wrong kind (`found`, `expected`: serde's words, like "a string").
    WrongType {
        key: Option<String>,
        found: String,
        expected: String,
    },
    /// A value the key does not take; `expected` lists the ones it does.
    UnknownValue {
        key: Option<String>,
        value: String,
        expected: Vec<String>,
    },
    /// Not TOML at all: the parser's own words.
    Syntax {
        detail: String,
    },
}

impl std::fmt::Display for ParseProblem {
    /// English, as the tables say it (logs).
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.text().render(Language::En))
    }
}

impl ParseProblem {
    pub fn text(&self) -> Text {
        let section = |s: &Option<String>| match s {
            Some(s) => Text::new("config.in_section", vec![("section", s.clone())]),
            None => Text::new("config.top_level", vec![]),
        };
        match self {
            ParseProblem::UnknownKey { key, section: s, suggestion } => {
                let hint = match suggestion {
                    Some(k) => Text::new("config.did_you_mean", vec![("key", k.clone())]),
                    None => Text::new("config.no_suggestion", vec![]),
                };
                Text::new("config.unknown_key", vec![("key", key.clone())])
                    .with("section", section(s))
                    .with("hint", hint)
            }
            ParseProblem::MissingKey { key, section: s } => {
                Text::new("config.missing_key", vec![("key", key.clone())]).with("section", section(s))
            }
            ParseProblem::WrongType { key, found, expected } => {
                let kind = |serde: &str| {
                    let word = serde.split_whitespace().map(|w| w.trim_matches('`')).find_map(kind_key);
                    match word {
                        Some(key) => Text::new(key, vec![]),
                        None => Text::new("config.kind_other", vec![("kind", serde.replace('`', "'"))]),
                    }
                };
                Text::new("config.wrong_type", vec![("key", key.clone().unwrap_or_else(|| "?".into()))])
                    .with("found", kind(found))
                    .with("expected", kind(expected))
            }
            ParseProblem::UnknownValue { key, value, expected } => Text::new(
                "config.unknown_value",
                vec![
                    ("key", key.clone().unwrap_or_else(|| "?".into())),
                    ("value", value.clone()),
                    ("expected", expected.iter().map(|v| format!("`{v}`")).collect::<Vec<_>>().join(", ")),
                ],
            ),
            ParseProblem::Syntax { detail } => Text::new("config.syntax", vec![("detail", detail.clone())]),
        }
    }
}

/// The tables' word for a kind of value serde names (`a string`, `integer`, `u64`, …).
fn kind_key(serde_word: &str) -> Option<&'static str> {
    Some(match serde_word {
        "string" | "str" | "char" => "config.kind_string",
        "integer" | "float" | "u8" | "u16" | "u32" | "u64" | "i8" | "i16" | "i32" | "i64" | "f32" | "f64" => {
            "config.kind_number"
        }
        "boolean" | "bool" => "config.kind_boolean",
        "map" | "table" | "struct" => "config.kind_table",
        "sequence" | "array" => "config.kind_list",
        "datetime" => "config.kind_date",
        _ => return None,
    })
}

impl ConfigError {
    /// The language the config file asks for, when it could be read that far.
    pub fn language(&self) -> Option<Language> {
        match self {
            ConfigError::Invalid { language, .. } => Some(*language),
            ConfigError::Parse { language, .. } => *language,
            _ => None,
        }
    }

    /// The error for people (`Display` stays English for logs): the file, the line and
    /// what is wrong, and where every key is explained when the package is installed.
    pub fn text(&self) -> Text {
        let shown = |p: &Path| p.display().to_string();
        match self {
            ConfigError::Missing(path) => Text::new("error.config_missing", vec![("path", shown(path))]),
            ConfigError::Read { path, source } => {
                let why = match source.kind() {
                    std::io::ErrorKind::PermissionDenied => Text::new("config.read_denied", vec![]),
                    _ => Text::new("config.read_other", vec![("error", source.to_string())]),
                };
                Text::new("config.unreadable", vec![("path", shown(path))]).with("why", why)
            }
            ConfigError::Parse { path, line, problem, example, .. } => {
                let mut values = vec![("path", shown(path))];
                values.extend(line.map(|l| ("line", l.to_string())));
                values.extend(example.as_deref().map(|e| ("example", shown(e))));
                let key = match (line, example) {
                    (Some(_), Some(_)) => "config.parse_line_example",
                    (Some(_), None) => "config.parse_line",
                    (None, Some(_)) => "config.parse_example",
                    (None, None) => "config.parse",
                };
                Text::new(key, values).with("problem", problem.text())
            }
            ConfigError::Invalid { path, message, .. } => {
                Text::new("error.config_invalid", vec![("path", shown(path))]).with("message", message.clone())
            }
        }
    }
}

/// A TOML error as a [`ParseProblem`] and its line (from 1), read from the parser's
/// message and span; the words of the file around the span name the key and section.
fn parse_problem(text: &str, e: &toml::de::Error) -> (Option<usize>, ParseProblem) {
    let message = e.message();
    let start = e.span().map(|s| s.start.min(text.len()));
    let before = start.and_then(|s| text.get(..s)).unwrap_or_default();
    let line_no = start.map(|_| before.matches('\n').count() + 1);
    let line_text = line_no.and_then(|n| text.lines().nth(n - 1)).unwrap_or_default();
    // The `[section]` the span is in: the last header before it.
    let section = before.lines().rev().find_map(|l| {
        let l = l.trim();
        (l.starts_with('[') && l.ends_with(']') && !l.starts_with("[["))
            .then(|| l.trim_matches(['[', ']']).trim().to_owned())
    });
    let key_on_line =
        line_text.split_once('=').map(|(k, _)| k.trim().trim_matches('"').to_owned()).filter(|k| !k.is_empty());
    let quoted: Vec<String> = message.split('`').skip(1).step_by(2).map(str::to_owned).collect();
    let problem = if let Some(rest) = message.strip_prefix("unknown field ") {
        let key = quoted.first().cloned().unwrap_or_else(|| rest.to_owned());
        let suggestion = suggest(&key, quoted.get(1..).unwrap_or_default());
        ParseProblem::UnknownKey { key, section, suggestion }
    } else if message.starts_with("missing field ") {
        // A missing key is reported at its table: a line only when that is a `[section]`.
        let key = quoted.first().cloned().unwrap_or_default();
        let at_header = line_text.trim_start().starts_with('[');
        let section = at_header.then(|| line_text.trim().trim_matches(['[', ']']).trim().to_owned());
        return (line_no.filter(|_| at_header), ParseProblem::MissingKey { key, section });
    } else if let Some(rest) = message.strip_prefix("invalid type: ") {
        let (found, expected) = rest.split_once(", expected ").unwrap_or((rest, "?"));
        ParseProblem::WrongType { key: key_on_line, found: found.to_owned(), expected: expected.to_owned() }
    } else if message.starts_with("unknown variant ") {
        let value = quoted.first().cloned().unwrap_or_default();
        // One spelling of each (an alias like `zh-cn` is the same value).
        let mut expected: Vec<String> = Vec::new();
        for v in quoted.iter().skip(1) {
            if !expected.iter().any(|e| e.eq_ignore_ascii_case(v)) {
                expected.push(v.clone());
            }
        }
        ParseProblem::UnknownValue { key: key_on_line, value, expected }
    } else {
        // Quoted in the sentence: its own backticks become plain quotes.
        ParseProblem::Syntax { detail: message.trim().replace('\n', "; ").replace('`', "'") }
    };
    (line_no, problem)
}

/// The expected key closest to `key`: the same but for `_`/`-` or case, one containing
/// the other, or at most two edits away.
fn suggest(key: &str, expected: &[String]) -> Option<String> {
    let plain = |s: &str| s.to_lowercase().replace('_', "-");
    let distance = |a: &str, b: &str| {
        let b: Vec<char> = b.chars().collect();
        let mut row: Vec<usize> = (0..=b.len()).collect();
        for (i, ca) in a.chars().enumerate() {
            let mut prev = row[0];
            row[0] = i + 1;
            for (j, cb) in b.iter().enumerate() {
                let here = row[j + 1];
                row[j + 1] = (prev + usize::from(ca != *cb)).min(row[j] + 1).min(here + 1);
                prev = here;
            }
        }
        row[b.len()]
    };
    let key = plain(key);
    expected
        .iter()
        .map(|e| (e, plain(e)))
        .filter(|(_, e)| *e == key || e.contains(&key) || key.contains(e.as_str()) || distance(&key, e) <= 2)
        .min_by_key(|(_, e)| distance(&key, e))
        .map(|(e, _)| e.clone())
}

/// The language a config that does not parse asks for, read leniently: `language = "…"`
/// on a line of its own, before any section.
fn language_of(text: &str) -> Option<Language> {
    for line in text.lines() {
        let line = line.trim();
        if line.starts_with('[') {
            return None;
        }
        if let Some((key, value)) = line.split_once('=') {
            if key.trim() == "language" {
                let one = format!("l = {}", value.trim());
                return toml::from_str::<std::collections::BTreeMap<String, Language>>(&one)
                    .ok()
                    .and_then(|m| m.into_values().next());
            }
        }
    }
    None
}

impl Config {
    pub fn load(path: &Path) -> Result<Config, ConfigError> {
        let text = match std::fs::read_to_string(path) {
            Ok(t) => t,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Err(ConfigError::Missing(path.into())),
            Err(source) => return Err(ConfigError::Read { path: path.into(), source }),
        };
        Config::parse(&text).map_err(|e| match e {
            ConfigError::Parse { line, problem, language, .. } => {
                let example = path.parent().map(|dir| dir.join(EXAMPLE_FILE)).filter(|p| p.is_file());
                ConfigError::Parse { path: path.into(), line, problem, language, example }
            }
            ConfigError::Invalid { message, language, .. } => {
                ConfigError::Invalid { path: path.into(), message, language }
            }
            other => other,
        })
    }

    /// Parses and checks config text (any text: a fuzz target feeds it).
    pub fn parse(text: &str) -> Result<Config, ConfigError> {
        let mut config: Config = toml::from_str(text).map_err(|e| {
            let (line, problem) = parse_problem(text, &e);
            let problem = Box::new(problem);
            ConfigError::Parse { path: PathBuf::new(), line, problem, language: language_of(text), example: None }
        })?;
        config.check().map_err(|message| ConfigError::Invalid {
            path: PathBuf::new(),
            message,
            language: config.language,
        })?;
        // A hand-edited `asia/shanghai` is used (and written back) as `Asia/Shanghai`.
        config.timezone = Config::canonical_timezone(&config.timezone).unwrap_or(config.timezone);
        Ok(config)
    }

    /// Semantic checks the types do not make. The problem is a text of the message tables
    /// (key and values), so whoever shows it picks the reader's language.
    pub fn check(&self) -> Result<(), Text> {
        let empty = |key: &str| Text::new("config.empty", vec![("key", key.to_owned())]);
        if self.merchant_id.trim().is_empty() {
            return Err(empty("merchant-id"));
        }
        if self.merchant_category.trim().is_empty() {
            return Err(empty("merchant-category"));
        }
        Config::canonical_timezone(&self.timezone)?;
        if self.data_dir.as_os_str().is_empty() {
            return Err(empty("data-dir"));
        }
        if let Some(listen) = self.api.as_ref().and_then(|a| a.listen.as_deref()) {
            listen
                .parse::<std::net::SocketAddr>()
                .map_err(|_| Text::new("config.listen", vec![("value", format!("{listen:?}"))]))?;
        }
        if let Some(store) = &self.store {
            let terminal_id = self.upstream.as_ref().map(|u| u.terminal_id.as_str());
            if let Some(problem) = store.problem(terminal_id) {
                return Err(Text::new("config.store", vec![("problem", problem)]));
            }
        }
        if let Some(u) = &self.upstream {
            check_upstream_url(&u.url).map_err(|e| {
                // The scheme refusal has its own words; a URL that does not parse is
                // quoted with the parser's reason (the `url` crate's, English only).
                let problem = match e {
                    UrlProblem::Insecure(url) => {
                        Text::new("error.upstream_insecure", vec![("url", format!("{url:?}"))])
                    }
                    UrlProblem::Unparsable { url, error } => {
                        Text::new("config.url_invalid", vec![("message", format!("upstream URL {url:?}: {error}"))])
                    }
                };
                Text::new("config.upstream_url", vec![]).with("problem", problem)
            })?;
            if u.timeout_secs == 0 || u.refresh_minutes == 0 || u.heartbeat_secs == 0 {
                return Err(Text::new("config.upstream_intervals", vec![]));
            }
        }
        Ok(())
    }

    pub fn to_toml(&self) -> String {
        let body = toml::to_string(self).unwrap_or_default();
        format!("# redeemd terminal configuration; every key is explained in {DEFAULT_PATH}.example.\n{body}")
    }

    pub fn database_path(&self) -> PathBuf {
        self.data_dir.join(DATABASE_FILE)
    }

    pub fn trust_keys_path(&self) -> PathBuf {
        self.trust_keys.clone().unwrap_or_else(|| self.data_dir.join(TRUST_KEYS_FILE))
    }

    pub fn token_path(&self) -> Option<PathBuf> {
        let u = self.upstream.as_ref()?;
        Some(u.token_file.clone().unwrap_or_else(|| self.data_dir.join(TOKEN_FILE)))
    }

    /// The zone's canonical IANA name (`asia/shanghai` → `Asia/Shanghai`), so the config
    /// stores one spelling; an unknown name is an error that says what a name looks like.
    pub fn canonical_timezone(name: &str) -> Result<String, Text> {
        let zone = jiff::tz::TimeZone::get(name)
            .map_err(|_| Text::new("config.timezone", vec![("name", format!("{name:?}"))]))?;
        Ok(zone.iana_name().unwrap_or(name).to_owned())
    }

    pub fn timezone(&self) -> jiff::tz::TimeZone {
        jiff::tz::TimeZone::get(&self.timezone).unwrap_or(jiff::tz::TimeZone::UTC)
    }
}

/// Why an upstream URL is refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum UrlProblem {
    Unparsable {
        url: String,
        error: String,
    },
    /// Not https, and not http to a loopback host.
    Insecure(String),
}

/// Checks an upstream URL: https, or http only to a loopback host (`upstream-api.md`).
pub fn check_upstream_url(url: &str) -> Result<url::Url, UrlProblem> {
    let parsed =
        url::Url::parse(url).map_err(|e| UrlProblem::Unparsable { url: url.to_owned(), error: e.to_string() })?;
    match parsed.scheme() {
        "https" => Ok(parsed),
        "http" => {
            let loopback = match parsed.host() {
                Some(url::Host::Domain(d)) => d == "localhost",
                Some(url::Host::Ipv4(ip)) => ip.is_loopback(),
                Some(url::Host::Ipv6(ip)) => ip.is_loopback(),
                None => false,
            };
            if loopback {
                Ok(parsed)
            } else {
                Err(UrlProblem::Insecure(url.into()))
            }
        }
        _ => Err(UrlProblem::Insecure(url.into())),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_annotated_example_parses() {
        let text = include_str!("../packaging/redeemd.toml");
        let config: Config = toml::from_str(text).unwrap();
        config.check().unwrap();
        assert_eq!(config.language, Language::ZhCn);
    }

    /// Issue 19 item 4: a typo is said with its line and what is wrong, in the tables'
    /// words (so in the terminal's language), never as the parser's English snippet.
    #[test]
    fn a_config_typo_names_its_line_and_what_is_wrong() {
        let good = "data-dir = '/x'\nmerchant-id = 'M'\nmerchant-category = 'c'\nlanguage = 'en'\n";
        let problem = |text: &str| match Config::parse(text) {
            Err(ConfigError::Parse { line, problem, language, .. }) => (line, *problem, language),
            other => panic!("{other:?}"),
        };
        let (line, p, language) = problem(&good.replace("merchant-id", "merchant_id"));
        assert_eq!(line, Some(2));
        assert_eq!(language, Some(Language::En));
        assert_eq!(
            p,
            ParseProblem::UnknownKey {
                key: "merchant_id".into(),
                section: None,
                suggestion: Some("merchant-id".into())
            }
        );
        let (line, p, _) =
            problem(&format!("{good}[upstream]\nurl = 'https://u.example/'\nterminal-id = 'T'\ntimeout-secs = '10'\n"));
        assert_eq!(line, Some(8));
        assert!(matches!(&p, ParseProblem::WrongType { key: Some(k), .. } if k == "timeout-secs"), "{p:?}");
        let zh = p.text().render(Language::ZhCn);
        assert!(zh.contains("`timeout-secs` 应为数字") && zh.contains("带引号的文本"), "{zh}");
        let (_, p, _) = problem(&good.replace("'en'", "'fr'"));
        assert_eq!(
            p,
            ParseProblem::UnknownValue {
                key: Some("language".into()),
                value: "fr".into(),
                expected: vec!["zh-CN".into(), "en".into()]
            }
        );
        let (line, p, _) = problem(&format!("{good}[scanner]\nportt = 'auto'\n"));
        assert_eq!(line, Some(6));
        assert!(
            matches!(&p, ParseProblem::UnknownKey { section: Some(s), suggestion: Some(k), .. } if s == "scanner" && k == "port"),
            "{p:?}"
        );
        let (line, p, language) = problem("language = \"en\"\ndata-dir = '/x\nmerchant-id = 'M'\n");
        assert_eq!((line, language), (Some(2), Some(Language::En)));
        assert!(
            matches!(&p, ParseProblem::Syntax { detail } if !detail.contains('`') && !detail.contains('\n')),
            "{p:?}"
        );
        let (line, p, language) = problem("data-dir = '/x'\nmerchant-category = 'c'\n");
        assert_eq!((line, language), (None, None));
        assert_eq!(p, ParseProblem::MissingKey { key: "merchant-id".into(), section: None });
        // The file, the line, the problem, and the example when it is installed beside it.
        let e = ConfigError::Parse {
            path: "/etc/redeemd/redeemd.toml".into(),
            line: Some(2),
            problem: Box::new(ParseProblem::UnknownKey {
                key: "merchant_id".into(),
                section: None,
                suggestion: Some("merchant-id".into()),
            }),
            language: None,
            example: Some("/etc/redeemd/redeemd.toml.example".into()),
        };
        assert_eq!(
            e.text().render(Language::En),
            "config file /etc/redeemd/redeemd.toml, line 2: unknown key `merchant_id` at the top of the file, perhaps for \
             `merchant-id`; every key is explained in /etc/redeemd/redeemd.toml.example"
        );
        assert!(e
            .text()
            .render(Language::ZhCn)
            .starts_with("配置文件 /etc/redeemd/redeemd.toml 第 2 行有误：未知的配置项 `merchant_id`"));
    }

    #[test]
    fn unknown_keys_are_refused() {
        let err = toml::from_str::<Config>("data-dir='/x'\nmerchant-id='M'\nmerchant-category='c'\nmerchant='M'\n")
            .unwrap_err();
        assert!(err.to_string().contains("unknown field"), "{err}");
    }

    #[test]
    fn store_sections_are_checked() {
        let base = "data-dir = \"/d\"\nmerchant-id = \"M-1\"\nmerchant-category = \"dining\"\n";
        let ok = format!("{base}[store]\nhub = \"nats://10.0.0.5:4222\"\nlane = \"3\"\n");
        let config = Config::parse(&ok).unwrap();
        let store = config.store.as_ref().unwrap();
        assert_eq!(store.claim_timeout_ms, 150);
        assert_eq!(store.when_hub_down, crate::claim::WhenHubDown::Accept);
        assert_eq!(store.hub.list(), vec!["nats://10.0.0.5:4222".to_owned()]);
        for (section, what) in [
            ("hub = \"http://x:4222\"\nlane = \"3\"", "hub"),
            ("hub = \"nats://x:4222\"", "lane"),
            ("hub = \"nats://x:4222\"\nlane = \"3.1\"", "lane"),
            ("hub = \"nats://x:4222\"\nlane = \"3\"\nclaim-timeout-ms = 5", "claim-timeout-ms"),
            ("hub = \"nats://x:4222\"\nlane = \"3\"\nuser = \"u\"", "password-file"),
            ("hub = \"nats://x:4222\"\nlane = \"3\"\nid = \"a b\"", "id"),
        ] {
            let text = format!("{base}[store]\n{section}\n");
            let problem = Config::parse(&text).map(|c| c.check().err().map(|t| t.render(Language::En)));
            let shown = format!("{problem:?}");
            assert!(shown.contains(what), "{section}: {shown}");
        }
    }

    #[test]
    fn round_trips() {
        let config = Config {
            data_dir: "/var/lib/redeemd".into(),
            merchant_id: "M-1".into(),
            merchant_name: Some("演示餐厅".into()),
            merchant_category: "dining".into(),
            timezone: "Asia/Shanghai".into(),
            language: Language::En,
            trust_keys: None,
            upstream: Some(UpstreamConfig::new(
                "https://upstream.example/",
                "T-0042",
                Some("/var/lib/redeemd/upstream-ca.pem".into()),
            )),
            api: Some(ApiConfig { listen: Some("127.0.0.1:7979".into()), allow_remote: false }),
            scanner: Some(ScannerConfig { port: Some("auto".into()), profile: Some("zebra-ds2208".into()) }),
            store: Some(StoreConfig {
                hub: Urls::Many(vec!["nats://10.0.0.5:4222".into(), "nats://10.0.0.6:4222".into()]),
                id: None,
                lane: Some("3".into()),
                credentials: None,
                user: Some("lane3".into()),
                password_file: Some("/etc/redeemd/hub-password".into()),
                ca: None,
                claim_timeout_ms: 150,
                when_hub_down: crate::claim::WhenHubDown::Refuse,
            }),
        };
        assert_eq!(toml::from_str::<Config>(&config.to_toml()).unwrap(), config);
    }
}
