//! An app's `Origin` allow-list for WebSocket handshakes (`allowed_origins`, `docs/admin.md`).
//!
//! Browsers send `Origin` with every WebSocket handshake and let any page open a socket to any
//! server; without a check, a page on another site could open a socket with a credential it got
//! hold of (a token embedded in a cookie-authenticated page) and act as the user: cross-site
//! WebSocket hijacking. Non-browser clients send no `Origin` and are not affected, nor are REST
//! calls with API keys.
//!
//! An entry is `scheme://host` or `scheme://host:port` (scheme `http` or `https`, no path),
//! compared without regard to case; the host may start with `*.`, which matches any subdomain
//! (one label or more) but not the domain itself. An empty list allows every origin.

/// Why an `allowed_origins` entry was refused.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("invalid origin {origin:?}: {reason}")]
pub struct OriginError {
    pub origin: String,
    pub reason: &'static str,
}

/// Most entries an app may list; the list is checked linearly at every handshake.
pub const MAX_ALLOWED_ORIGINS: usize = 100;

/// Checks `origins` and returns them lower-cased, the form in which they are stored.
pub fn normalize(origins: &[String]) -> Result<Vec<String>, OriginError> {
    if origins.len() > MAX_ALLOWED_ORIGINS {
        return Err(OriginError {
            origin: format!("{} entries", origins.len()),
            reason: "at most 100 origins",
        });
    }
    origins
        .iter()
        .map(|o| {
            let lower = o.to_ascii_lowercase();
            check(&lower).map_err(|reason| OriginError {
                origin: o.clone(),
                reason,
            })?;
            Ok(lower)
        })
        .collect()
}

fn check(origin: &str) -> Result<(), &'static str> {
    let (scheme, rest) = origin
        .split_once("://")
        .ok_or("expected scheme://host[:port]")?;
    if scheme != "http" && scheme != "https" {
        return Err("the scheme must be http or https");
    }
    let (host, port) = match rest.rsplit_once(':') {
        Some((host, port)) => (host, Some(port)),
        None => (rest, None),
    };
    if let Some(port) = port {
        if port.is_empty() || port.len() > 5 || !port.bytes().all(|b| b.is_ascii_digit()) {
            return Err("the port must be a number");
        }
    }
    let host = host.strip_prefix("*.").unwrap_or(host);
    let valid = !host.is_empty()
        && host
            .split('.')
            .all(|l| !l.is_empty() && l.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-'));
    if !valid {
        return Err("the host must be a DNS name or IPv4 address, optionally starting with *. (no path, user or IPv6 literal)");
    }
    Ok(())
}

/// Whether a handshake's `Origin` header value is allowed by `allowed` (stored, lower-case).
/// An empty list allows everything.
pub fn allowed(allowed: &[String], origin: &str) -> bool {
    if allowed.is_empty() {
        return true;
    }
    let origin = origin.to_ascii_lowercase();
    allowed.iter().any(|entry| matches(entry, &origin))
}

fn matches(entry: &str, origin: &str) -> bool {
    let Some((scheme, host)) = entry.split_once("://*.") else {
        return entry == origin;
    };
    // `https://*.example.com` matches `https://x.example.com`, `https://a.b.example.com`; the
    // suffix keeps the port, so `*.example.com:8443` matches only that port.
    let Some(rest) = origin
        .strip_prefix(scheme)
        .and_then(|r| r.strip_prefix("://"))
    else {
        return false;
    };
    rest.strip_suffix(host)
        .and_then(|sub| sub.strip_suffix('.'))
        .is_some_and(|sub| {
            !sub.is_empty()
                && sub
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'.')
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn list(items: &[&str]) -> Vec<String> {
        normalize(&items.iter().map(|s| s.to_string()).collect::<Vec<_>>()).unwrap()
    }

    #[test]
    fn exact_and_wildcard_origins() {
        let l = list(&[
            "https://App.example.com",
            "https://*.example.org",
            "http://localhost:3000",
        ]);
        assert!(allowed(&l, "https://app.example.com"));
        assert!(allowed(&l, "HTTPS://APP.EXAMPLE.COM"));
        assert!(!allowed(&l, "http://app.example.com"), "scheme counts");
        assert!(!allowed(&l, "https://app.example.com:8443"), "port counts");
        assert!(allowed(&l, "https://a.example.org"));
        assert!(allowed(&l, "https://a.b.example.org"));
        assert!(!allowed(&l, "https://example.org"), "not the domain itself");
        assert!(!allowed(&l, "https://evilexample.org"));
        assert!(!allowed(&l, "https://a.example.org.evil.com"));
        assert!(!allowed(&l, "https://a.example.org:444"));
        assert!(allowed(&l, "http://localhost:3000"));
        assert!(!allowed(&l, "null"));
        assert!(allowed(&[], "https://anything.test"), "empty allows all");
    }

    #[test]
    fn bad_entries_are_refused() {
        for bad in [
            "example.com",
            "ftp://example.com",
            "https://example.com/path",
            "https://",
            "https://user@example.com",
            "https://example.com:",
            "https://example.com:80x",
            "https://*",
            "https://a.*.example.com",
            "*",
        ] {
            assert!(normalize(&[bad.to_string()]).is_err(), "{bad}");
        }
        assert_eq!(
            list(&["https://*.Example.com:8443"]),
            vec!["https://*.example.com:8443".to_string()]
        );
    }
}
