//! What a request must show before any handler sees it (`spec/terminal-interfaces.md`,
//! "Origins"): a `Host` that names this daemon (against DNS rebinding), and for a `POST`
//! that a page session's cookie authenticates, an origin that is the daemon's own (against
//! cross-site requests: `SameSite=Strict` ignores the port, so any page served from
//! another port on 127.0.0.1 would otherwise drive the cashier's or the manager's session).
//!
//! Pure checks over the request's head; the middleware that applies them is
//! [`super::api`]'s. It knows nothing of sessions or tokens (a request carrying
//! `Authorization` is the till's, judged by its token), and it must not read bodies or
//! the ledger.

use axum::http::{header, HeaderMap, Method};
use std::net::{IpAddr, SocketAddr};

/// The hosts this daemon answers to: its listen address, `localhost`, `127.0.0.1` and
/// `[::1]`, each with the bound port; with `allow-remote`, the configured address too
/// (and, when that is `0.0.0.0`/`[::]`, any IP literal: no DNS name can rebind to one).
#[derive(Debug, Clone)]
pub struct OwnHosts {
    bound: SocketAddr,
    remote: bool,
}

impl OwnHosts {
    pub fn new(bound: SocketAddr, remote: bool) -> OwnHosts {
        OwnHosts { bound, remote }
    }

    /// Whether `host` (a `Host` header's value) names this daemon.
    pub fn accepts(&self, host: &str) -> bool {
        let Some((name, port)) = split_host(host) else {
            return false;
        };
        match port {
            Some(port) if port == self.bound.port() => {}
            // Browsers leave out the default port.
            None if self.bound.port() == 80 => {}
            _ => return false,
        }
        if name.eq_ignore_ascii_case("localhost") {
            return true;
        }
        let Ok(ip) = name.parse::<IpAddr>() else {
            return false;
        };
        let loopback_name = ip == IpAddr::from([127, 0, 0, 1]) || ip == IpAddr::from(std::net::Ipv6Addr::LOCALHOST);
        loopback_name || ip == self.bound.ip() || (self.remote && self.bound.ip().is_unspecified())
    }
}

/// `name[:port]` or `[v6][:port]` → (name without brackets, port). `None` when malformed.
fn split_host(host: &str) -> Option<(&str, Option<u16>)> {
    let (name, rest) = match host.strip_prefix('[') {
        Some(inner) => {
            let (name, rest) = inner.split_once(']')?;
            name.parse::<std::net::Ipv6Addr>().ok()?;
            (name, rest)
        }
        None => host.find(':').map_or((host, ""), |colon| host.split_at(colon)),
    };
    if name.is_empty() {
        return None;
    }
    let port = match rest {
        "" => None,
        _ => Some(rest.strip_prefix(':')?.parse::<u16>().ok().filter(|p| *p != 0)?),
    };
    Some((name, port))
}

/// How a `POST` proves it comes from the daemon's own pages.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal {
    /// `Host` names someone else: 421 `wrong_host`.
    WrongHost,
    /// A session-authenticated request from elsewhere: 403 `cross_origin`.
    CrossOrigin(&'static str),
}

/// Paths whose `POST` is an HTML form, not a JSON call.
const FORM_PATHS: [&str; 2] = ["/manager/login", "/manager/logout"];
const LOGIN_PATH: &str = "/manager/login";

/// The checks, on the request's head alone. `session_cookie` is the cookie's name.
pub fn check(
    own: &OwnHosts,
    method: &Method,
    path: &str,
    headers: &HeaderMap,
    session_cookie: &str,
) -> Result<(), Refusal> {
    let host = headers.get(header::HOST).and_then(|v| v.to_str().ok()).unwrap_or_default();
    if !own.accepts(host) {
        return Err(Refusal::WrongHost);
    }
    if matches!(*method, Method::GET | Method::HEAD | Method::OPTIONS) {
        return Ok(());
    }
    let own_origin = format!("http://{}", host.to_ascii_lowercase());
    let origin = headers.get(header::ORIGIN).map(|v| v.to_str().unwrap_or("null").to_ascii_lowercase());
    let fetch_site = headers.get("sec-fetch-site").map(|v| v.to_str().unwrap_or("").to_ascii_lowercase());
    if path == LOGIN_PATH {
        // A script (no Origin, no Sec-Fetch-Site) is judged by the PIN alone; a browser
        // must show it comes from here, or from the address bar.
        if origin.as_deref().is_some_and(|o| o != own_origin) {
            return Err(Refusal::CrossOrigin("the login form was posted from another site"));
        }
        if fetch_site.as_deref().is_some_and(|f| f != "same-origin" && f != "none") {
            return Err(Refusal::CrossOrigin("the login form was posted from another site"));
        }
        return Ok(());
    }
    // The till's token is its own proof; only a page session's cookie rides along on a
    // request another site makes.
    let by_cookie = headers.get(header::AUTHORIZATION).is_none() && has_cookie(headers, session_cookie);
    if !by_cookie {
        return Ok(());
    }
    let same_origin = match (&origin, &fetch_site) {
        (Some(origin), _) => *origin == own_origin,
        (None, Some(site)) => site == "same-origin",
        (None, None) => false,
    };
    if !same_origin {
        return Err(Refusal::CrossOrigin(
            "a page session's request must come from this terminal's own pages (Origin or Sec-Fetch-Site)",
        ));
    }
    if !FORM_PATHS.contains(&path) && !is_json(headers) {
        return Err(Refusal::CrossOrigin("a page session's call must carry Content-Type: application/json"));
    }
    Ok(())
}

fn has_cookie(headers: &HeaderMap, name: &str) -> bool {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .any(|pair| pair.trim().split_once('=').is_some_and(|(k, _)| k == name))
}

/// `application/json`, with or without parameters (`; charset=utf-8`).
fn is_json(headers: &HeaderMap) -> bool {
    headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(';').next())
        .is_some_and(|media| media.trim().eq_ignore_ascii_case("application/json"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::HeaderValue;

    fn own() -> OwnHosts {
        OwnHosts::new("127.0.0.1:7878".parse().unwrap(), false)
    }

    fn head(pairs: &[(&'static str, &str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.append(*k, HeaderValue::from_str(v).unwrap());
        }
        h
    }

    #[test]
    fn only_the_daemons_own_names_with_its_port_are_hosts() {
        let o = own();
        for ok in ["127.0.0.1:7878", "localhost:7878", "LocalHost:7878", "[::1]:7878"] {
            assert!(o.accepts(ok), "{ok}");
        }
        for bad in [
            "evil.example:7878",
            "127.0.0.1:7879",
            "127.0.0.1",
            "localhost",
            "192.168.1.5:7878",
            "",
            "127.0.0.1:",
            "[::1]",
            "[evil]:7878",
            "localhost.:7878",
            "127.0.0.1:7878:1",
            "[::1]x:7878",
        ] {
            assert!(!o.accepts(bad), "{bad:?}");
        }
        let lan = OwnHosts::new("192.168.1.5:7878".parse().unwrap(), true);
        assert!(lan.accepts("192.168.1.5:7878") && lan.accepts("localhost:7878"));
        assert!(!lan.accepts("192.168.1.6:7878"));
        let any = OwnHosts::new("0.0.0.0:7878".parse().unwrap(), true);
        assert!(any.accepts("10.0.0.2:7878"));
        assert!(!any.accepts("rebound.example:7878"), "a DNS name can rebind; an IP literal cannot");
        let web = OwnHosts::new("127.0.0.1:80".parse().unwrap(), false);
        assert!(web.accepts("localhost") && web.accepts("127.0.0.1:80"));
    }

    #[test]
    fn a_session_post_must_come_from_the_daemons_own_pages() {
        let o = own();
        let post = Method::POST;
        let cookie = ("cookie", "redeemd_session=abc");
        let json = ("content-type", "application/json");
        let check = |path: &str, h: &[(&'static str, &str)]| check(&o, &post, path, &head(h), "redeemd_session");
        let host = ("host", "127.0.0.1:7878");
        assert_eq!(check("/v1/checkouts", &[host, cookie, json, ("origin", "http://127.0.0.1:7878")]), Ok(()));
        assert_eq!(check("/v1/checkouts", &[host, cookie, json, ("sec-fetch-site", "same-origin")]), Ok(()));
        for h in [
            vec![host, cookie, json],
            vec![host, cookie, json, ("origin", "http://127.0.0.1:8000")],
            vec![host, cookie, json, ("origin", "null")],
            vec![host, cookie, json, ("sec-fetch-site", "same-site")],
            vec![host, cookie, json, ("origin", "http://localhost:7878")],
            vec![host, cookie, ("content-type", "text/plain"), ("origin", "http://127.0.0.1:7878")],
            vec![host, cookie, ("origin", "http://127.0.0.1:7878")],
        ] {
            assert!(matches!(check("/v1/checkouts", &h), Err(Refusal::CrossOrigin(_))), "{h:?}");
        }
        // The till's token and requests with no session are not this check's to judge.
        assert_eq!(check("/v1/checkouts", &[host, cookie, ("authorization", "Bearer x")]), Ok(()));
        assert_eq!(check("/v1/checkouts", &[host]), Ok(()));
        // Forms need no JSON; GETs change nothing.
        assert_eq!(check("/manager/logout", &[host, cookie, ("origin", "http://127.0.0.1:7878")]), Ok(()));
        assert!(check("/manager/logout", &[host, cookie]).is_err());
        assert_eq!(super::check(&o, &Method::GET, "/v1/status", &head(&[host, cookie]), "redeemd_session"), Ok(()));
        // A foreign host is refused whatever else the request carries.
        let evil = ("host", "evil.example:7878");
        assert_eq!(super::check(&o, &Method::GET, "/", &head(&[evil]), "redeemd_session"), Err(Refusal::WrongHost));
    }

    #[test]
    fn the_login_form_is_judged_by_its_origin_only_when_a_browser_sends_one() {
        let o = own();
        let host = ("host", "localhost:7878");
        let check =
            |h: &[(&'static str, &str)]| check(&o, &Method::POST, "/manager/login", &head(h), "redeemd_session");
        assert_eq!(check(&[host]), Ok(()), "a script: the PIN decides");
        assert_eq!(check(&[host, ("origin", "http://localhost:7878")]), Ok(()));
        assert_eq!(check(&[host, ("sec-fetch-site", "none")]), Ok(()));
        assert_eq!(check(&[host, ("sec-fetch-site", "same-origin")]), Ok(()));
        assert!(check(&[host, ("origin", "http://localhost:9999")]).is_err());
        assert!(check(&[host, ("sec-fetch-site", "cross-site")]).is_err());
        assert!(check(&[host, ("origin", "http://localhost:7878"), ("sec-fetch-site", "same-site")]).is_err());
    }
}
