//! Outbound HTTP requests the service makes on its tenants' behalf (webhook deliveries, RPC
//! HTTP upstreams): which addresses they may reach, and how much of an answer they read.
//!
//! An endpoint URL is chosen by whoever configures an app, but the request leaves from inside
//! the operator's network. Left alone, `http://169.254.169.254/` or `http://10.0.0.7:6379/`
//! would be called, and the delivery log would report what answered: a port scanner. So:
//!
//! - a URL whose host is a literal IP is checked when it is configured ([`Policy::check_url`])
//!   and again before each request (reqwest does not resolve literal IPs);
//! - a host name is checked on what it resolves to, at connect time, by the [`resolve`]
//!   resolver the clients use: DNS rebinding (a name that resolved to a public address when it
//!   was configured and to 127.0.0.1 later) gains nothing;
//! - clients built here never use a proxy from the environment (the proxy would resolve the
//!   name, out of reach of the check), and follow no redirects (set by each client).
//!
//! Loopback and private networks are refused unless the operator allows them
//! (`outbound_allow_loopback`, `outbound_allow_private`, docs/configuration.md); link-local
//! (cloud metadata), multicast, broadcast, unspecified, documentation and reserved addresses
//! are always refused.
//!
//! # Layout
//! - [`address`]: the address classifier.
//! - [`resolve`]: a DNS resolver for reqwest that drops refused addresses.
//! - [`body`]: reading at most a bounded prefix of a response body.

pub mod address;
pub mod body;
pub mod resolve;

pub use address::{classify, AddressClass};

use std::net::IpAddr;
use std::sync::Arc;

/// Which addresses outbound requests may reach besides the global Internet.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Policy {
    /// 127.0.0.0/8 and ::1 (and their IPv4-mapped forms).
    pub allow_loopback: bool,
    /// RFC 1918, carrier-grade NAT 100.64.0.0/10, IPv6 unique-local fc00::/7 (and site-local
    /// fec0::/10, local-use NAT64).
    pub allow_private: bool,
}

/// An address an outbound request may not reach.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{ip} is a {class} address: outbound requests to it are refused{hint}", hint = self.hint())]
pub struct Refused {
    pub ip: IpAddr,
    pub class: AddressClass,
}

impl Refused {
    /// Names the setting that would allow the address, when there is one.
    fn hint(&self) -> &'static str {
        match self.class {
            AddressClass::Loopback => " (the operator setting outbound_allow_loopback allows it)",
            AddressClass::Private | AddressClass::Shared => {
                " (the operator setting outbound_allow_private allows it)"
            }
            _ => "",
        }
    }
}

impl Policy {
    /// Refuses `ip` unless it is global or of a class this policy allows.
    pub fn check(&self, ip: IpAddr) -> Result<(), Refused> {
        let class = classify(ip);
        let allowed = match class {
            AddressClass::Global => true,
            AddressClass::Loopback => self.allow_loopback,
            AddressClass::Private | AddressClass::Shared => self.allow_private,
            _ => false,
        };
        if allowed {
            Ok(())
        } else {
            Err(Refused { ip, class })
        }
    }

    /// Refuses a URL whose host is a literal IP this policy refuses. A host name passes: it is
    /// checked on what it resolves to, when connecting.
    pub fn check_url(&self, url: &reqwest::Url) -> Result<(), Refused> {
        // The URL parser has already normalised IPv4 spellings (`2130706433`, `0x7f.1`) to
        // dotted quads, and writes IPv6 hosts in brackets.
        let host = url.host_str().unwrap_or_default();
        let bare = host
            .strip_prefix('[')
            .and_then(|h| h.strip_suffix(']'))
            .unwrap_or(host);
        match bare.parse::<IpAddr>() {
            Ok(ip) => self.check(ip),
            Err(_) => Ok(()),
        }
    }

    /// A client builder that resolves names through this policy and ignores proxy settings
    /// from the environment. Callers add their own timeouts and redirect policy.
    pub fn client_builder(&self) -> reqwest::ClientBuilder {
        reqwest::Client::builder()
            .no_proxy()
            .dns_resolver(Arc::new(resolve::PolicyResolver::new(*self)))
    }
}

/// An HTTP client error with its causes: reqwest's message alone says "error sending request";
/// the causes say why.
pub fn error_chain(e: &dyn std::error::Error) -> String {
    let mut text = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        text.push_str(": ");
        text.push_str(&s.to_string());
        source = s.source();
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    fn url(s: &str) -> reqwest::Url {
        reqwest::Url::parse(s).unwrap()
    }

    #[test]
    fn the_default_policy_allows_only_global_addresses() {
        let p = Policy::default();
        for ip in [
            "10.0.0.1",
            "127.0.0.1",
            "169.254.169.254",
            "::1",
            "fd00::1",
            "::ffff:127.0.0.1",
            "100.64.0.1",
            "0.0.0.0",
        ] {
            let e = p.check(ip.parse().unwrap()).unwrap_err();
            assert_eq!(e.ip.to_string(), ip.parse::<IpAddr>().unwrap().to_string());
        }
        p.check("93.184.216.34".parse().unwrap()).unwrap();
        p.check("2606:4700:4700::1111".parse().unwrap()).unwrap();
    }

    #[test]
    fn settings_allow_their_classes_only() {
        let lo = Policy {
            allow_loopback: true,
            allow_private: false,
        };
        lo.check("127.0.0.1".parse().unwrap()).unwrap();
        lo.check("::1".parse().unwrap()).unwrap();
        lo.check("::ffff:127.0.0.2".parse().unwrap()).unwrap();
        assert!(lo.check("10.0.0.1".parse().unwrap()).is_err());
        let private = Policy {
            allow_loopback: false,
            allow_private: true,
        };
        for ip in [
            "10.0.0.1",
            "172.16.5.4",
            "192.168.1.1",
            "100.64.0.1",
            "fd00::1",
        ] {
            private.check(ip.parse().unwrap()).unwrap();
        }
        assert!(private.check("127.0.0.1".parse().unwrap()).is_err());
        let all = Policy {
            allow_loopback: true,
            allow_private: true,
        };
        // Never allowed, whatever the settings.
        for ip in [
            "169.254.169.254",
            "fe80::1",
            "0.0.0.0",
            "::",
            "224.0.0.1",
            "255.255.255.255",
            "192.0.2.1",
            "240.0.0.1",
        ] {
            assert!(all.check(ip.parse().unwrap()).is_err(), "{ip}");
        }
    }

    #[test]
    fn literal_hosts_are_checked_in_every_spelling() {
        let p = Policy::default();
        for u in [
            "http://127.0.0.1:8080/x",
            "http://[::1]/",
            "http://[fd00::1]/",
            "http://[::ffff:127.0.0.1]/",
            "http://[::ffff:a9fe:a9fe]/",
            "http://169.254.169.254/latest/meta-data/",
            "http://10.0.0.1/",
            // WHATWG URL parsing turns these into 127.0.0.1.
            "http://2130706433/",
            "http://0x7f.1/",
            "http://127.1/",
            "http://0177.0.0.1/",
            "https://127.0.0.1./",
        ] {
            let e = p.check_url(&url(u)).unwrap_err();
            assert!(e.to_string().contains("refused"), "{u}: {e}");
        }
        p.check_url(&url("http://example.com/hook")).unwrap();
        p.check_url(&url("http://localhost:1/")).unwrap();
        p.check_url(&url("https://93.184.216.34/")).unwrap();
    }

    #[test]
    fn refusals_name_the_setting_that_allows_them() {
        let p = Policy::default();
        let e = p.check("127.0.0.1".parse().unwrap()).unwrap_err();
        assert_eq!(
            e.to_string(),
            "127.0.0.1 is a loopback address: outbound requests to it are refused (the operator setting outbound_allow_loopback allows it)"
        );
        let e = p.check("10.1.2.3".parse().unwrap()).unwrap_err();
        assert!(e.to_string().contains("outbound_allow_private"), "{e}");
        let e = p.check("169.254.169.254".parse().unwrap()).unwrap_err();
        assert_eq!(
            e.to_string(),
            "169.254.169.254 is a link-local address: outbound requests to it are refused"
        );
    }
}
