//! A DNS resolver for reqwest that resolves with the system resolver, as reqwest's default
//! does, then drops every address the [`Policy`] refuses. The connector only ever sees what is
//! left, so the check holds for the address actually connected to, whatever the name resolved
//! to when the URL was configured.

use super::{Policy, Refused};
use reqwest::dns::{Addrs, Name, Resolve, Resolving};
use std::net::SocketAddr;

/// Every address `host` resolved to was refused.
#[derive(Debug, thiserror::Error)]
#[error("{host} resolves only to refused addresses: {first}")]
pub struct AllRefused {
    pub host: String,
    /// Why the first address was refused.
    pub first: Refused,
}

/// The refusal behind a client error, when the resolver refused the addresses: its text is
/// what the error should say, without reqwest's and hyper's wrapping around it.
pub fn refusal<'a>(e: &'a (dyn std::error::Error + 'static)) -> Option<&'a AllRefused> {
    let mut cause = Some(e);
    while let Some(c) = cause {
        if let Some(r) = c.downcast_ref::<AllRefused>() {
            return Some(r);
        }
        cause = c.source();
    }
    None
}

pub struct PolicyResolver {
    policy: Policy,
}

impl PolicyResolver {
    pub fn new(policy: Policy) -> Self {
        PolicyResolver { policy }
    }
}

/// The addresses of `resolved` the policy allows; an error when there were some and none is.
pub fn filter(
    policy: Policy,
    host: &str,
    resolved: impl IntoIterator<Item = SocketAddr>,
) -> Result<Vec<SocketAddr>, AllRefused> {
    let mut first = None;
    let allowed: Vec<SocketAddr> = resolved
        .into_iter()
        .filter(|a| match policy.check(a.ip()) {
            Ok(()) => true,
            Err(e) => {
                first.get_or_insert(e);
                false
            }
        })
        .collect();
    match first {
        Some(first) if allowed.is_empty() => Err(AllRefused {
            host: host.to_owned(),
            first,
        }),
        _ => Ok(allowed),
    }
}

impl Resolve for PolicyResolver {
    fn resolve(&self, name: Name) -> Resolving {
        let policy = self.policy;
        Box::pin(async move {
            let host = name.as_str().to_owned();
            // Port 0: reqwest puts the URL's port (or the scheme's) in.
            let resolved = tokio::net::lookup_host((host.as_str(), 0)).await?;
            let allowed = filter(policy, &host, resolved)?;
            let addrs: Addrs = Box::new(allowed.into_iter());
            Ok(addrs)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn addrs(list: &[&str]) -> Vec<SocketAddr> {
        list.iter()
            .map(|a| SocketAddr::new(a.parse().unwrap(), 0))
            .collect()
    }

    #[test]
    fn refused_addresses_are_dropped_and_none_left_is_an_error() {
        let p = Policy::default();
        let kept = filter(p, "mixed.example", addrs(&["10.0.0.1", "93.184.216.34"])).unwrap();
        assert_eq!(kept, addrs(&["93.184.216.34"]));
        let e = filter(p, "localhost", addrs(&["127.0.0.1", "::1"])).unwrap_err();
        assert_eq!(e.first.ip.to_string(), "127.0.0.1");
        assert!(
            e.to_string().starts_with(
                "localhost resolves only to refused addresses: 127.0.0.1 is a loopback address"
            ),
            "{e}"
        );
        let lo = Policy {
            allow_loopback: true,
            allow_private: false,
        };
        assert_eq!(
            filter(lo, "localhost", addrs(&["127.0.0.1", "::1"])).unwrap(),
            addrs(&["127.0.0.1", "::1"])
        );
    }

    /// The resolver as reqwest calls it, on a name that resolves to loopback (no connection is
    /// made: only `/etc/hosts` or the system resolver is asked).
    #[tokio::test]
    async fn localhost_is_refused_unless_loopback_is_allowed() {
        let name: Name = "localhost".parse().unwrap();
        let e = match PolicyResolver::new(Policy::default()).resolve(name).await {
            Ok(a) => panic!("resolved to {:?}", a.collect::<Vec<_>>()),
            Err(e) => e,
        };
        assert!(e.to_string().contains("loopback"), "{e}");
        let lo = Policy {
            allow_loopback: true,
            allow_private: false,
        };
        let name: Name = "localhost".parse().unwrap();
        let got: Vec<_> = PolicyResolver::new(lo)
            .resolve(name)
            .await
            .unwrap()
            .collect();
        assert!(
            !got.is_empty() && got.iter().all(|a| a.ip().is_loopback()),
            "{got:?}"
        );
    }

    /// Through a real client, the refusal is found behind reqwest's wrapping, and no
    /// connection is made (the listener accepts none).
    #[tokio::test]
    async fn a_client_refuses_a_loopback_name_before_connecting() {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let client = Policy::default().client_builder().build().unwrap();
        let e = client
            .get(format!("http://localhost:{port}/"))
            .send()
            .await
            .unwrap_err();
        let r = refusal(&e).expect("the resolver's refusal");
        assert_eq!(r.host, "localhost");
        assert_eq!(r.first.class, crate::egress::AddressClass::Loopback);
        // The sentinel: a connection made now is the first the listener sees.
        let _probe = tokio::net::TcpStream::connect(("127.0.0.1", port))
            .await
            .unwrap();
        let (_, from) = listener.accept().await.unwrap();
        assert_eq!(from.port(), _probe.local_addr().unwrap().port());
    }
}
