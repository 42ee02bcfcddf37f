//! Keeping secrets out of logs and error messages.
//!
//! - [`Secret`]: a string whose `Debug` prints `***`, for passwords, tokens and seeds held in
//!   configuration structs: a `#[derive(Debug)]` on a struct holding a plain `String` secret
//!   prints it the first time someone logs the struct.
//! - [`url`]: a URL (or a comma-separated list of them) with its userinfo replaced by `***`,
//!   for URLs that may carry credentials (`nats://user:pass@host`,
//!   `postgres://user:pass@host/db`, `https://user:pass@hooks.example`).

use serde::Deserialize;
use std::borrow::Cow;

/// What redacted text is replaced with.
pub const REDACTED: &str = "***";

/// A secret string: `Debug` and `Display` never show it; [`Secret::expose`] does, for the one
/// place that must hand it on.
#[derive(Clone, PartialEq, Eq, Default, Deserialize)]
#[serde(transparent)]
pub struct Secret(String);

impl Secret {
    pub fn new(value: impl Into<String>) -> Self {
        Secret(value.into())
    }

    /// The secret itself. Call it only to pass the value to what needs it, never to log it.
    pub fn expose(&self) -> &str {
        &self.0
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

impl From<String> for Secret {
    fn from(value: String) -> Self {
        Secret(value)
    }
}

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(REDACTED)
    }
}

impl std::fmt::Display for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(REDACTED)
    }
}

/// `urls` (one URL, or several separated by commas) with the userinfo of each (`user:pass@`,
/// `token@`) replaced by `***@`. Text without userinfo comes back borrowed and unchanged. Works
/// on the text alone, so an unparsable URL is redacted too.
pub fn url(urls: &str) -> Cow<'_, str> {
    if !urls.contains('@') {
        return Cow::Borrowed(urls);
    }
    Cow::Owned(
        urls.split(',')
            .map(one_url)
            .collect::<Vec<Cow<'_, str>>>()
            .join(","),
    )
}

fn one_url(url: &str) -> Cow<'_, str> {
    let authority_start = url.find("://").map_or(0, |i| i + 3);
    let rest = &url[authority_start..];
    let authority_len = rest.find(['/', '?', '#']).unwrap_or(rest.len());
    match rest[..authority_len].rfind('@') {
        Some(at) => Cow::Owned(format!(
            "{}{REDACTED}{}",
            &url[..authority_start],
            &rest[at..]
        )),
        None => Cow::Borrowed(url),
    }
}

/// How a `Debug` impl shows an optional secret: whether there is one, never what it is.
pub fn option<T>(secret: &Option<T>) -> Option<&'static str> {
    secret.as_ref().map(|_| REDACTED)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn userinfo_is_replaced_and_the_rest_kept() {
        assert_eq!(
            url("nats://user:pa%40ss@127.0.0.1:4222"),
            "nats://***@127.0.0.1:4222"
        );
        assert_eq!(
            url("nats://tok@h:1,nats://h2:2"),
            "nats://***@h:1,nats://h2:2"
        );
        assert_eq!(
            url("postgres://u:p@db:5432/waas?options=-c%20x"),
            "postgres://***@db:5432/waas?options=-c%20x"
        );
        assert_eq!(url("u:p@host:4222"), "***@host:4222");
        // An `@` after the authority is not userinfo.
        assert_eq!(
            url("https://hooks.example/a@b?x=@"),
            "https://hooks.example/a@b?x=@"
        );
        assert!(matches!(url("nats://127.0.0.1:4222"), Cow::Borrowed(_)));
    }

    #[test]
    fn secrets_do_not_print() {
        let s = Secret::new("hunter2");
        assert_eq!(format!("{s:?} {s}"), "*** ***");
        assert_eq!(s.expose(), "hunter2");
    }
}
