//! How a [`NatsBus`](super::nats::NatsBus) proves who it is to NATS and secures the link:
//! credentials ([`NatsAuth`]: user and password, token, NKey seed, `.creds` file) and TLS
//! ([`NatsTls`]). Also reads credentials given in the URLs themselves
//! (`nats://user:pass@host`, `nats://token@host`), and strips them from the addresses handed to
//! the client, so no log line, of ours or of async-nats, ever shows them.

use super::BusError;
use crate::redact::{self, Secret};
use async_nats::{ConnectOptions, ServerAddr};
use std::path::PathBuf;

/// Credentials for NATS; at most one kind, as the server checks one.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub enum NatsAuth {
    /// No credentials, unless the URLs carry some.
    #[default]
    None,
    /// `authorization { user, password }` / `users = [...]` of the server.
    UserPassword { user: String, password: Secret },
    /// `authorization { token }` of the server.
    Token(Secret),
    /// An NKey user seed (`SU...`): the client signs the server's nonce with it; only the public
    /// key is configured on the server.
    NKeySeed(Secret),
    /// A `.creds` file (user JWT and NKey seed, as `nsc` writes it) for servers in operator
    /// (decentralised JWT) mode. Read by the client at each connect.
    CredsFile(PathBuf),
}

/// TLS to NATS. Without a CA file the system's roots are trusted.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct NatsTls {
    /// PEM file of the CA(s) to trust instead of the system roots.
    pub ca_file: Option<PathBuf>,
    /// PEM client certificate, for servers that verify clients (`verify: true`); needs
    /// `key_file`.
    pub cert_file: Option<PathBuf>,
    /// PEM private key of `cert_file`.
    pub key_file: Option<PathBuf>,
    /// Refuse to talk to a server that does not offer TLS. `tls://` URLs require it too.
    pub required: bool,
}

/// The URLs of `urls` (comma-separated) as addresses without userinfo, and the credentials the
/// URLs carried: `user:pass@` is a user and password, a lone `token@` a token. URLs that carry
/// different credentials are refused: the client presents one set to every server.
pub(crate) fn parse_urls(urls: &str) -> Result<(Vec<ServerAddr>, NatsAuth), BusError> {
    let mut addrs = Vec::new();
    let mut found = NatsAuth::None;
    for raw in urls.split(',').map(str::trim).filter(|u| !u.is_empty()) {
        let mut addr = raw.parse::<ServerAddr>().map_err(|e| {
            BusError::Unavailable(format!("invalid NATS URL {:?}: {e}", redact::url(raw)))
        })?;
        let auth = match (addr.username(), addr.password()) {
            (None, _) => NatsAuth::None,
            (Some(user), Some(password)) => NatsAuth::UserPassword {
                user: decode(user),
                password: Secret::new(decode(password)),
            },
            (Some(token), None) => NatsAuth::Token(Secret::new(decode(token))),
        };
        if auth != NatsAuth::None {
            if found != NatsAuth::None && found != auth {
                return Err(BusError::Unavailable(
                    "the NATS URLs carry different credentials; give one set".into(),
                ));
            }
            found = auth;
            let mut url = addr.into_inner();
            let _ = url.set_username("");
            let _ = url.set_password(None);
            addr = ServerAddr::from_url(url)
                .map_err(|e| BusError::Unavailable(format!("invalid NATS URL: {e}")))?;
        }
        addrs.push(addr);
    }
    if addrs.is_empty() {
        return Err(BusError::Unavailable("no NATS URL given".into()));
    }
    Ok((addrs, found))
}

/// Userinfo as the URL holds it is percent-encoded (`p%40ss` for `p@ss`).
fn decode(s: &str) -> String {
    percent_encoding::percent_decode_str(s)
        .decode_utf8_lossy()
        .into_owned()
}

/// `options` with the credentials and TLS settings applied. Credentials from the URLs are used
/// when `auth` is `None`; both at once is refused, as one would silently win.
pub(crate) async fn apply(
    mut options: ConnectOptions,
    from_urls: NatsAuth,
    auth: &NatsAuth,
    tls: &NatsTls,
) -> Result<ConnectOptions, BusError> {
    let auth = match (from_urls, auth) {
        (from_urls, NatsAuth::None) => from_urls,
        (NatsAuth::None, auth) => auth.clone(),
        _ => {
            return Err(BusError::Unavailable(
                "NATS credentials are given both in the URL and in the nats_auth settings; \
                 give them in one place"
                    .into(),
            ))
        }
    };
    options = match auth {
        NatsAuth::None => options,
        NatsAuth::UserPassword { user, password } => {
            options.user_and_password(user, password.expose().to_owned())
        }
        NatsAuth::Token(token) => options.token(token.expose().to_owned()),
        NatsAuth::NKeySeed(seed) => {
            // Checked here: async-nats only logs "failed to create key pair" and reports an
            // authentication error, which reads like a refused key.
            nkeys::KeyPair::from_seed(seed.expose()).map_err(|e| {
                BusError::Unavailable(format!("the NATS NKey seed is not a valid seed: {e}"))
            })?;
            options.nkey(seed.expose().to_owned())
        }
        NatsAuth::CredsFile(path) => options.credentials_file(&path).await.map_err(|e| {
            BusError::Unavailable(format!(
                "cannot use the NATS credentials file {}: {e}",
                path.display()
            ))
        })?,
    };
    if let Some(ca) = &tls.ca_file {
        readable("CA", ca)?;
        options = options.add_root_certificates(ca.clone());
    }
    match (&tls.cert_file, &tls.key_file) {
        (Some(cert), Some(key)) => {
            readable("client certificate", cert)?;
            readable("client key", key)?;
            options = options.add_client_certificate(cert.clone(), key.clone());
        }
        (None, None) => {}
        _ => {
            return Err(BusError::Unavailable(
                "a NATS TLS client certificate needs both cert_file and key_file".into(),
            ))
        }
    }
    if tls.required {
        options = options.require_tls(true);
    }
    Ok(options)
}

/// Fails with the path when a file cannot be read: async-nats reports only "tls error" later.
fn readable(what: &str, path: &PathBuf) -> Result<(), BusError> {
    std::fs::metadata(path).map(|_| ()).map_err(|e| {
        BusError::Unavailable(format!(
            "cannot read the NATS TLS {what} file {}: {e}",
            path.display()
        ))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn credentials_come_out_of_the_urls() {
        let (addrs, auth) = parse_urls("nats://u:p%40ss@127.0.0.1:4222, nats://127.0.0.1:4223")
            .expect("valid URLs");
        assert_eq!(
            auth,
            NatsAuth::UserPassword {
                user: "u".into(),
                password: Secret::new("p@ss")
            }
        );
        assert_eq!(addrs.len(), 2);
        for addr in &addrs {
            assert!(!format!("{addr:?}").contains("p%40ss"), "{addr:?}");
            assert_eq!(addr.username(), None);
        }
        let (_, auth) = parse_urls("nats://s3cret@127.0.0.1:4222").expect("valid URL");
        assert_eq!(auth, NatsAuth::Token(Secret::new("s3cret")));
        let (_, auth) = parse_urls("127.0.0.1:4222").expect("a bare address");
        assert_eq!(auth, NatsAuth::None);
        assert!(parse_urls("nats://a:b@h:1,nats://c:d@h:2").is_err());
        assert!(parse_urls(" , ").is_err());
    }

    #[tokio::test]
    async fn credentials_in_two_places_are_refused() {
        let result = apply(
            ConnectOptions::new(),
            NatsAuth::Token(Secret::new("a")),
            &NatsAuth::Token(Secret::new("b")),
            &NatsTls::default(),
        )
        .await;
        let Err(e) = result else {
            panic!("accepted credentials in two places")
        };
        assert!(e.to_string().contains("in one place"), "{e}");
    }
}
