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

#[derive(Debug, Error)]
pub enum ConfigError {
    #[error("config file {0} does not exist; create it with `redeemd init` or pass --config")]
    Missing(PathBuf),
    #[error("cannot read config file {path}: {source}")]
    Read { path: PathBuf, source: std::io::Error },
    #[error("config file {path} is not valid: {message}")]
    Parse { path: PathBuf, message: String },
    /// A semantic problem ([`Config::check`]), kept as a text of the message tables so the
    /// command line says it in the configured language (`Display` stays English for logs).
    /// `language` is the one the file asks for (it parsed), so the problem is said in it.
    #[error("config file {path}: {message}")]
    Invalid { path: PathBuf, message: Text, language: Language },
}

impl ConfigError {
    /// The language the config file asks for, when it could be read that far.
    pub fn language(&self) -> Option<Language> {
        match self {
            ConfigError::Invalid { language, .. } => Some(*language),
            _ => None,
        }
    }
}

impl Config {
    pub fn load(path: &Path) -> Result<Config, ConfigError> {
        let text = match std::fs::read_to_string(path) {
            Ok(t) => t,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Err(ConfigError::Missing(path.into())),
            Err(source) => return Err(ConfigError::Read { path: path.into(), source }),
        };
        Config::parse(&text).map_err(|e| match e {
            ConfigError::Parse { message, .. } => ConfigError::Parse { path: path.into(), message },
            ConfigError::Invalid { message, language, .. } => {
                ConfigError::Invalid { path: path.into(), message, language }
            }
            other => other,
        })
    }

    /// Parses and checks config text (any text: a fuzz target feeds it).
    pub fn parse(text: &str) -> Result<Config, ConfigError> {
        let mut config: Config =
            toml::from_str(text).map_err(|e| ConfigError::Parse { path: PathBuf::new(), message: e.to_string() })?;
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
        if let Some(u) = &self.upstream {
            crate::upstream::check_url(&u.url).map_err(|e| {
                // The scheme refusal has its own words; a URL that does not parse is
                // quoted with the parser's reason (the `url` crate's, English only).
                let problem = match e {
                    crate::upstream::UpstreamError::InsecureUrl(url) => {
                        Text::new("error.upstream_insecure", vec![("url", format!("{url:?}"))])
                    }
                    other => Text::new("config.url_invalid", vec![("message", other.to_string())]),
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
        format!("# redeemd terminal configuration; see packaging/redeemd.toml for every key.\n{body}")
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

    #[test]
    fn unknown_keys_are_refused() {
        let err = toml::from_str::<Config>("data-dir='/x'\nmerchant-id='M'\nmerchant-category='c'\nmerchant='M'\n")
            .unwrap_err();
        assert!(err.to_string().contains("unknown field"), "{err}");
    }

    #[test]
    fn round_trips() {
        let config = Config {
            data_dir: "/var/lib/redeemd".into(),
            merchant_id: "M-1".into(),
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
        };
        assert_eq!(toml::from_str::<Config>(&config.to_toml()).unwrap(), config);
    }
}
