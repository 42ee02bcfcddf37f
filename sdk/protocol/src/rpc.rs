//! Request/response over the socket ("HTTP over WebSocket", `docs/rpc.md`): the names and checks
//! shared by the gateway and SDKs. The frames themselves are in [`crate::frame`].
//!
//! Paths are checked strictly at the edge because the gateway matches them against route and
//! capability prefixes and then hands them to HTTP upstreams: a path the gateway reads one way and
//! an upstream another (`/a/../admin`, `/a/%2e%2e/admin`, `\`) could slip past a prefix check.

use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::fmt;

/// Header names (lower case) to values, as carried by `request` and `response` frames.
pub type Headers = BTreeMap<String, String>;

/// Longest path (with its query string) accepted, in bytes.
pub const MAX_PATH_LEN: usize = 2048;
/// Longest method accepted, in bytes.
pub const MAX_METHOD_LEN: usize = 16;
/// Longest service name accepted, in bytes.
pub const MAX_SERVICE_LEN: usize = 64;

/// Who sent a request, as the gateway that received it vouches: never taken from the client.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Caller {
    /// The token's `sub`, or `"server"` for an API key.
    pub sub: String,
    /// The app the caller is connected to.
    pub app: String,
    /// The caller's `ready.connection_id`.
    pub connection_id: String,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RpcNameError {
    #[error("the service name must be 1-{MAX_SERVICE_LEN} characters of A-Z a-z 0-9 _ -")]
    Service,
    #[error("the method must be 1-{MAX_METHOD_LEN} upper-case letters (GET, POST, ...)")]
    Method,
    #[error("the path {0}")]
    Path(&'static str),
}

/// The name responders register under (`serve`) and routes point to: 1–64 of
/// `A-Z a-z 0-9 _ -`, so that it is one bus subject token.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
#[serde(transparent)]
pub struct ServiceName(String);

impl ServiceName {
    pub fn parse(s: &str) -> Result<Self, RpcNameError> {
        let ok = !s.is_empty()
            && s.len() <= MAX_SERVICE_LEN
            && s.chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-');
        if ok {
            Ok(ServiceName(s.to_owned()))
        } else {
            Err(RpcNameError::Service)
        }
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl<'de> Deserialize<'de> for ServiceName {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        ServiceName::parse(&s).map_err(serde::de::Error::custom)
    }
}

impl fmt::Display for ServiceName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// A request method: 1–16 upper-case ASCII letters. Any such token is passed on; what it means is
/// up to the responder.
pub fn check_method(method: &str) -> Result<(), RpcNameError> {
    if !method.is_empty()
        && method.len() <= MAX_METHOD_LEN
        && method.bytes().all(|b| b.is_ascii_uppercase())
    {
        Ok(())
    } else {
        Err(RpcNameError::Method)
    }
}

fn path_char_ok(c: u8) -> bool {
    c.is_ascii_alphanumeric() || b"-._~!$&'()*+,;=:@%/".contains(&c)
}

/// Checks the path part (no query) of a request path or a prefix.
fn check_segments(path: &str) -> Result<(), RpcNameError> {
    if !path.starts_with('/') {
        return Err(RpcNameError::Path("must start with '/'"));
    }
    if !path.bytes().all(path_char_ok) {
        return Err(RpcNameError::Path(
            "may only hold A-Z a-z 0-9 and - . _ ~ ! $ & ' ( ) * + , ; = : @ % / (percent-encode the rest)",
        ));
    }
    if path.len() > 1 && path[1..].split('/').any(|s| s.is_empty()) {
        return Err(RpcNameError::Path(
            "must not have empty segments ('//' or a trailing '/')",
        ));
    }
    let dots = |s: &str| {
        let s = s.to_ascii_lowercase().replace("%2e", ".");
        s == "." || s == ".."
    };
    if path.split('/').any(dots) {
        return Err(RpcNameError::Path("must not have '.' or '..' segments"));
    }
    Ok(())
}

/// Checks a request path: `/`-rooted, at most [`MAX_PATH_LEN`] bytes, URL characters only, no
/// empty, `.` or `..` segments, optionally followed by `?` and a query string.
pub fn check_path(path: &str) -> Result<(), RpcNameError> {
    if path.len() > MAX_PATH_LEN {
        return Err(RpcNameError::Path("is longer than 2048 bytes"));
    }
    let (path, query) = split_query(path);
    check_segments(path)?;
    if let Some(q) = query {
        if !q.bytes().all(|c| path_char_ok(c) || c == b'?') {
            return Err(RpcNameError::Path(
                "query may only hold URL characters (percent-encode the rest)",
            ));
        }
    }
    Ok(())
}

/// `("/a/b", Some("x=1"))` for `/a/b?x=1`.
pub fn split_query(path: &str) -> (&str, Option<&str>) {
    match path.split_once('?') {
        Some((p, q)) => (p, Some(q)),
        None => (path, None),
    }
}

/// A path prefix, as routes and `caps.call` give them: it matches the path itself and every path
/// below it, on segment boundaries (`/weather` matches `/weather` and `/weather/paris`, not
/// `/weatherman`); `/` matches every path.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
#[serde(transparent)]
pub struct PathPrefix(String);

impl PathPrefix {
    pub fn parse(s: &str) -> Result<Self, RpcNameError> {
        if s.len() > MAX_PATH_LEN {
            return Err(RpcNameError::Path("is longer than 2048 bytes"));
        }
        if s.contains('?') {
            return Err(RpcNameError::Path("prefix must not have a query string"));
        }
        check_segments(s)?;
        Ok(PathPrefix(s.to_owned()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// Whether `path` (query string ignored) is this prefix or below it.
    pub fn matches(&self, path: &str) -> bool {
        let (path, _) = split_query(path);
        if self.0 == "/" {
            return true;
        }
        match path.strip_prefix(self.0.as_str()) {
            Some(rest) => rest.is_empty() || rest.starts_with('/'),
            None => false,
        }
    }
}

impl<'de> Deserialize<'de> for PathPrefix {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        PathPrefix::parse(&s).map_err(serde::de::Error::custom)
    }
}

impl fmt::Display for PathPrefix {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// `caps.call`: the path prefixes a token's holder may send requests to.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(transparent)]
pub struct CallSet(Vec<PathPrefix>);

impl CallSet {
    pub fn new(prefixes: Vec<PathPrefix>) -> Self {
        CallSet(prefixes)
    }

    /// Every path (`["/"]`), what API keys get.
    pub fn all() -> Self {
        CallSet(vec![PathPrefix("/".into())])
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    pub fn allows(&self, path: &str) -> bool {
        self.0.iter().any(|p| p.matches(path))
    }

    pub fn prefixes(&self) -> &[PathPrefix] {
        &self.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prefixes_match_on_segment_boundaries() {
        let p = PathPrefix::parse("/weather").unwrap();
        assert!(p.matches("/weather"));
        assert!(p.matches("/weather/paris"));
        assert!(p.matches("/weather?city=paris"));
        assert!(!p.matches("/weatherman"));
        assert!(!p.matches("/"));
        assert!(PathPrefix::parse("/").unwrap().matches("/anything/at/all"));
    }

    #[test]
    fn paths_that_could_escape_a_prefix_are_refused() {
        for bad in [
            "",
            "weather",
            "/a/../b",
            "/a/%2e%2E/b",
            "/a/./b",
            "/a//b",
            "/a/",
            "/a b",
            "/a\\b",
            "/a#frag",
            "/é",
        ] {
            assert!(check_path(bad).is_err(), "{bad:?}");
        }
        for good in ["/", "/weather/paris", "/a/b.json?x=1&y=%20", "/a/..b/c"] {
            assert!(check_path(good).is_ok(), "{good:?}");
        }
        assert!(check_path(&format!("/{}", "a".repeat(MAX_PATH_LEN))).is_err());
        assert!(PathPrefix::parse("/a?x").is_err());
        assert!(PathPrefix::parse("/a/").is_err());
    }

    #[test]
    fn methods_and_services() {
        assert!(check_method("GET").is_ok());
        assert!(check_method("get").is_err());
        assert!(check_method("").is_err());
        assert!(ServiceName::parse("weather-2_b").is_ok());
        assert!(ServiceName::parse("a.b").is_err());
        assert!(ServiceName::parse("").is_err());
    }

    #[test]
    fn call_sets_parse_and_refuse_bad_prefixes() {
        let c: CallSet = serde_json::from_str(r#"["/weather","/orders/open"]"#).unwrap();
        assert!(c.allows("/orders/open/7"));
        assert!(!c.allows("/orders/closed"));
        assert!(serde_json::from_str::<CallSet>(r#"["weather"]"#).is_err());
        assert!(CallSet::all().allows("/x"));
        assert!(!CallSet::default().allows("/x"));
    }

    #[test]
    fn request_frames_parse_with_defaults_and_typed_refusals() {
        use crate::frame::ClientFrame;
        use crate::ErrorCode;
        match ClientFrame::parse(r#"{"op":"request","id":3,"path":"/w/paris"}"#).unwrap() {
            ClientFrame::Request {
                id,
                method,
                path,
                headers,
                body,
                timeout_ms,
            } => {
                assert_eq!((id, method.as_str(), path.as_str()), (3, "GET", "/w/paris"));
                assert!(headers.is_empty() && body.is_none() && timeout_ms.is_none());
            }
            other => panic!("{other:?}"),
        }
        let e = ClientFrame::parse(r#"{"op":"request","id":4}"#).unwrap_err();
        assert_eq!((e.code, e.id), (ErrorCode::BadRequest, Some(4)));
        let e = ClientFrame::parse(r#"{"op":"request","id":5,"path":"/a","headers":{"a":1}}"#)
            .unwrap_err();
        assert_eq!((e.code, e.id), (ErrorCode::BadRequest, Some(5)));
        let f = ClientFrame::parse(r#"{"op":"response","id":6,"status":200,"body":null}"#);
        assert!(
            matches!(f, Ok(ClientFrame::Response { id: 6, status: 200, body: Some(ref b), .. }) if b.get() == "null"),
            "{f:?}"
        );
        let e = ClientFrame::parse(r#"{"op":"serve","id":7}"#).unwrap_err();
        assert_eq!((e.code, e.id), (ErrorCode::BadRequest, Some(7)));
    }

    #[test]
    fn borrowed_frames_encode_as_server_frames() {
        use crate::frame::{RequestRef, ResponseRef, ServerFrame};
        use serde_json::value::RawValue;
        let body = RawValue::from_string(r#"{"celsius": 21.5}"#.into()).unwrap();
        let mut headers = Headers::new();
        headers.insert("etag".into(), "x1".into());
        let text = serde_json::to_string(&ResponseRef::new(9, 201, &headers, &body)).unwrap();
        match ServerFrame::parse(&text).unwrap() {
            ServerFrame::Response {
                id,
                status,
                headers,
                body,
            } => {
                assert_eq!((id, status), (9, 201));
                assert_eq!(headers["etag"], "x1");
                assert_eq!(body.get(), r#"{"celsius": 21.5}"#);
            }
            other => panic!("{other:?}"),
        }
        let caller = Caller {
            sub: "alice".into(),
            app: "demo".into(),
            connection_id: "demo-1".into(),
        };
        let frame = RequestRef {
            op: "request",
            id: 2,
            service: "weather",
            method: "GET",
            path: "/weather/paris",
            headers: &Headers::new(),
            body: &body,
            caller: &caller,
            timeout_ms: 500,
        };
        let text = serde_json::to_string(&frame).unwrap();
        match ServerFrame::parse(&text).unwrap() {
            ServerFrame::Request {
                id,
                service,
                path,
                caller: c,
                timeout_ms,
                ..
            } => {
                assert_eq!(
                    (id, service.as_str(), path.as_str()),
                    (2, "weather", "/weather/paris")
                );
                assert_eq!((c, timeout_ms), (caller, 500));
            }
            other => panic!("{other:?}"),
        }
    }
}
