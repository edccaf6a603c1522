//! The sandbox's own certificate authority and server certificate (rcgen, ring): made
//! at the first `sandbox serve`, kept in the sandbox directory — `ca.pem` (the file
//! `redeemd provision --ca` takes, 0644), `ca-key.pem` and `server-key.pem` (0600),
//! `server.pem` and `server.json` (the names it covers and until when). A later start
//! that names a host the certificate lacks (`--name`, a new `--listen` address), or
//! finds it within 30 days of its end, issues a new server certificate from the same
//! CA, so terminals keep trusting the sandbox.
//!
//! It must not log or print a private key, and knows nothing of HTTP or the state file.

use super::SandboxError;
use jiff::{SignedDuration, Timestamp};
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};

pub const CA_FILE: &str = "ca.pem";
const CA_KEY_FILE: &str = "ca-key.pem";
const SERVER_FILE: &str = "server.pem";
const SERVER_KEY_FILE: &str = "server-key.pem";
const SERVER_INFO_FILE: &str = "server.json";

/// The names every server certificate covers, besides the listen address and `--name`s.
const ALWAYS: [&str; 3] = ["127.0.0.1", "::1", "localhost"];

/// What `serve` needs to speak TLS, and what happened to get it.
#[derive(Debug, Clone)]
pub struct Pki {
    pub ca_path: PathBuf,
    pub ca_pem: String,
    pub cert_pem: String,
    pub key_pem: String,
    /// The names (host names and IP addresses) the server certificate covers.
    pub names: Vec<String>,
    /// SHA-256 of the CA certificate (DER), hex with colons: what an installer compares.
    pub ca_fingerprint: String,
    /// The CA was made by this call (first start).
    pub made_ca: bool,
    /// A server certificate was issued by this call.
    pub issued_server: bool,
}

#[derive(Debug, Serialize, Deserialize)]
struct ServerInfo {
    names: Vec<String>,
    not_after: String,
}

fn pki_error(detail: impl std::fmt::Display) -> SandboxError {
    SandboxError::Pki { detail: detail.to_string() }
}

fn read(path: &Path) -> Result<String, SandboxError> {
    std::fs::read_to_string(path).map_err(|source| SandboxError::Read { path: path.to_owned(), source })
}

fn write(path: &Path, text: &str, mode: u32) -> Result<(), SandboxError> {
    crate::secret::write_atomic(path, text.as_bytes(), mode)
        .map_err(|source| SandboxError::Write { path: path.to_owned(), source })
}

/// Sets a certificate's validity to the calendar days (UTC) of `from` and `until`.
fn set_validity(params: &mut rcgen::CertificateParams, from: Timestamp, until: Timestamp) {
    let day = |at: Timestamp| {
        let d = at.to_zoned_datetime(jiff::tz::TimeZone::UTC).date();
        rcgen::date_time_ymd(i32::from(d.year()), d.month().unsigned_abs(), d.day().unsigned_abs())
    };
    params.not_before = day(from);
    params.not_after = day(until);
}

fn serial() -> rcgen::SerialNumber {
    let mut bytes = crate::secret::random_bytes::<16>();
    bytes[0] &= 0x7f; // a positive INTEGER
    rcgen::SerialNumber::from_slice(&bytes)
}

/// The CA's subject, derived from its key so it can be rebuilt to sign again.
fn ca_params(key: &rcgen::KeyPair, now: Timestamp) -> rcgen::CertificateParams {
    let mut params = rcgen::CertificateParams::default();
    let id = crate::secret::hex(&crate::secret::sha256(key.public_key_raw())[..4]);
    params.distinguished_name = rcgen::DistinguishedName::new();
    params.distinguished_name.push(rcgen::DnType::CommonName, format!("redeemd sandbox CA {id}"));
    params.distinguished_name.push(rcgen::DnType::OrganizationName, "redeemd sandbox");
    params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Constrained(0));
    params.key_usages = vec![rcgen::KeyUsagePurpose::KeyCertSign, rcgen::KeyUsagePurpose::CrlSign];
    set_validity(&mut params, now - SignedDuration::from_hours(24), now + SignedDuration::from_hours(24 * 3650));
    params.serial_number = Some(serial());
    params
}

/// The names a server certificate must cover: the usual loopback names, the listen
/// address (unless it is the unspecified one), and `extra`, without repeats.
pub fn wanted_names(listen: std::net::IpAddr, extra: &[String]) -> Vec<String> {
    let mut names: Vec<String> = ALWAYS.iter().map(|s| (*s).to_owned()).collect();
    if !listen.is_unspecified() {
        names.push(listen.to_string());
    }
    names.extend(extra.iter().map(|n| n.trim().to_owned()).filter(|n| !n.is_empty()));
    let mut seen = std::collections::HashSet::new();
    names.retain(|n| seen.insert(n.to_lowercase()));
    names
}

fn fingerprint(pem: &str) -> String {
    use base64::Engine as _;
    let body: String = pem.lines().filter(|l| !l.starts_with("-----")).map(str::trim).collect();
    let der = base64::engine::general_purpose::STANDARD.decode(body).unwrap_or_default();
    crate::secret::sha256(&der).iter().map(|b| format!("{b:02X}")).collect::<Vec<_>>().join(":")
}

/// Loads the CA and server certificate of `dir`, making what is missing: the CA at the
/// first start, a server certificate when none covers `names` or it ends within 30 days.
pub fn ensure(dir: &Path, names: &[String], now: Timestamp) -> Result<Pki, SandboxError> {
    let ca_path = dir.join(CA_FILE);
    let ca_key_path = dir.join(CA_KEY_FILE);
    let (ca_key, ca_pem, made_ca) = if ca_path.exists() && ca_key_path.exists() {
        let key = rcgen::KeyPair::from_pem(&read(&ca_key_path)?)
            .map_err(|e| pki_error(format!("{}: {e}", ca_key_path.display())))?;
        (key, read(&ca_path)?, false)
    } else {
        let key = rcgen::KeyPair::generate().map_err(pki_error)?;
        let cert = ca_params(&key, now).self_signed(&key).map_err(pki_error)?;
        // The key first: a CA file on disk always has its key beside it.
        write(&ca_key_path, &key.serialize_pem(), 0o600)?;
        write(&ca_path, &cert.pem(), 0o644)?;
        (key, cert.pem(), true)
    };
    let server_path = dir.join(SERVER_FILE);
    let server_key_path = dir.join(SERVER_KEY_FILE);
    let info_path = dir.join(SERVER_INFO_FILE);
    let info: Option<ServerInfo> = std::fs::read_to_string(&info_path).ok().and_then(|t| serde_json::from_str(&t).ok());
    let still_good = |info: &ServerInfo| {
        let covers = names.iter().all(|n| info.names.iter().any(|have| have.eq_ignore_ascii_case(n)));
        let ends: Option<Timestamp> = info.not_after.parse().ok();
        covers && ends.is_some_and(|end| end - SignedDuration::from_hours(24 * 30) > now)
    };
    if !made_ca && server_path.exists() && server_key_path.exists() && info.as_ref().is_some_and(still_good) {
        let names = info.map(|i| i.names).unwrap_or_default();
        return Ok(Pki {
            ca_fingerprint: fingerprint(&ca_pem),
            ca_path,
            ca_pem,
            cert_pem: read(&server_path)?,
            key_pem: read(&server_key_path)?,
            names,
            made_ca,
            issued_server: false,
        });
    }
    // Keep the names an earlier certificate covered: terminals may use any of them.
    let mut all = names.to_vec();
    for old in info.map(|i| i.names).unwrap_or_default() {
        if !all.iter().any(|n| n.eq_ignore_ascii_case(&old)) {
            all.push(old);
        }
    }
    let mut params = rcgen::CertificateParams::new(all.clone())
        .map_err(|e| pki_error(format!("a --name is not a host name or IP address ({e}): {all:?}")))?;
    params.distinguished_name = rcgen::DistinguishedName::new();
    params.distinguished_name.push(rcgen::DnType::CommonName, "redeemd sandbox");
    params.key_usages = vec![rcgen::KeyUsagePurpose::DigitalSignature, rcgen::KeyUsagePurpose::KeyEncipherment];
    params.extended_key_usages = vec![rcgen::ExtendedKeyUsagePurpose::ServerAuth];
    params.use_authority_key_identifier_extension = true;
    let not_after = now + SignedDuration::from_hours(24 * 825);
    set_validity(&mut params, now - SignedDuration::from_hours(24), not_after);
    params.serial_number = Some(serial());
    let key = rcgen::KeyPair::generate().map_err(pki_error)?;
    let issuer = rcgen::Issuer::new(ca_params(&ca_key, now), &ca_key);
    let cert = params.signed_by(&key, &issuer).map_err(pki_error)?;
    write(&server_key_path, &key.serialize_pem(), 0o600)?;
    write(&server_path, &cert.pem(), 0o644)?;
    let info = ServerInfo { names: all.clone(), not_after: not_after.to_string() };
    write(&info_path, &serde_json::to_string_pretty(&info).unwrap_or_default(), 0o644)?;
    Ok(Pki {
        ca_fingerprint: fingerprint(&ca_pem),
        ca_path,
        ca_pem,
        cert_pem: cert.pem(),
        key_pem: key.serialize_pem(),
        names: all,
        made_ca,
        issued_server: true,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_fingerprint_is_the_sha256_of_the_der() {
        // base64 of the bytes 0..=9 as a PEM body.
        let pem = "-----BEGIN CERTIFICATE-----\nAAECAwQFBgcICQ==\n-----END CERTIFICATE-----\n";
        let want: Vec<u8> = (0u8..10).collect();
        let digest = crate::secret::sha256(&want);
        assert_eq!(fingerprint(pem), digest.iter().map(|b| format!("{b:02X}")).collect::<Vec<_>>().join(":"));
    }

    #[test]
    fn names_are_the_loopback_ones_the_listen_address_and_the_extras_once() {
        let names = wanted_names("192.168.1.10".parse().unwrap(), &["shop.lan".into(), "LOCALHOST".into()]);
        assert_eq!(names, ["127.0.0.1", "::1", "localhost", "192.168.1.10", "shop.lan"]);
        assert_eq!(wanted_names("0.0.0.0".parse().unwrap(), &[]), ["127.0.0.1", "::1", "localhost"]);
    }

    #[test]
    fn a_second_start_keeps_the_ca_and_a_new_name_gets_a_new_certificate() {
        let dir = tempfile::tempdir().unwrap();
        let now: Timestamp = "2026-11-28T04:00:00Z".parse().unwrap();
        let first = ensure(dir.path(), &wanted_names("127.0.0.1".parse().unwrap(), &[]), now).unwrap();
        assert!(first.made_ca && first.issued_server);
        let again = ensure(dir.path(), &wanted_names("127.0.0.1".parse().unwrap(), &[]), now).unwrap();
        assert!(!again.made_ca && !again.issued_server);
        assert_eq!(again.cert_pem, first.cert_pem);
        let named = ensure(dir.path(), &wanted_names("127.0.0.1".parse().unwrap(), &["shop.lan".into()]), now).unwrap();
        assert!(!named.made_ca && named.issued_server);
        assert_eq!(named.ca_pem, first.ca_pem);
        assert!(named.names.contains(&"shop.lan".to_owned()));
        use std::os::unix::fs::PermissionsExt as _;
        let mode = |f: &str| std::fs::metadata(dir.path().join(f)).unwrap().permissions().mode() & 0o777;
        assert_eq!((mode(CA_KEY_FILE), mode(SERVER_KEY_FILE), mode(CA_FILE)), (0o600, 0o600, 0o644));
    }
}
