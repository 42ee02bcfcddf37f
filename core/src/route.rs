//! An app's routes: which responder answers a request, chosen by the longest path prefix that
//! matches. A route points either to a **service** (servers connected with the SDK that `serve`
//! it, reached over the bus) or to an **HTTP upstream** (the tenant's existing REST backend).
//!
//! Routes are part of an app's configuration ([`crate::app::AppConfig::routes`]): set through the
//! admin API or `[[apps.routes]]` in `waas dev`'s file, checked by [`validate_routes`] before
//! they are stored, and shipped to gateways with the rest of the app.

use serde::{Deserialize, Serialize};
use waas_protocol::rpc::{PathPrefix, ServiceName};

/// Header names the gateway sets itself on requests to upstreams; never taken from a client.
pub const IDENTITY_HEADERS: [&str; 3] = ["x-waas-sub", "x-waas-app", "x-waas-connection-id"];

/// One route, as configured. Exactly one of `service` and `upstream` is set.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Route {
    /// Requests whose path is this prefix or below it take this route.
    #[schema(value_type = String)]
    pub prefix: PathPrefix,
    /// Answered by servers that `serve` this service.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<String>)]
    pub service: Option<ServiceName>,
    /// Base URL of an HTTP upstream (`http://host:port[/base]`); the request path is appended.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub upstream: Option<String>,
    /// Longest wait for an answer, ms; the gateway's `rpc_timeout_ms` when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timeout_ms: Option<u64>,
    /// Upstream only: request headers passed to the upstream and response headers passed back
    /// (case-insensitive). Every other header is dropped.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub allow_headers: Vec<String>,
    /// Upstream only: largest response body accepted, bytes; the gateway's
    /// `rpc_max_response_bytes` when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_response_bytes: Option<usize>,
}

/// Where a matched request goes.
#[derive(Debug, Clone, Copy)]
pub enum Target<'a> {
    Service(&'a ServiceName),
    Upstream(&'a str),
}

impl Route {
    pub fn target(&self) -> Option<Target<'_>> {
        match (&self.service, &self.upstream) {
            (Some(s), None) => Some(Target::Service(s)),
            (None, Some(u)) => Some(Target::Upstream(u)),
            _ => None,
        }
    }

    /// Whether the upstream may see (and send back) the header `name` (lower case).
    pub fn allows_header(&self, name: &str) -> bool {
        self.allow_headers
            .iter()
            .any(|h| h.eq_ignore_ascii_case(name))
    }
}

/// The route for `path`: the one with the longest matching prefix.
pub fn find<'a>(routes: &'a [Route], path: &str) -> Option<&'a Route> {
    routes
        .iter()
        .filter(|r| r.prefix.matches(path))
        .max_by_key(|r| r.prefix.as_str().len())
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("route {prefix}: {reason}")]
pub struct RouteError {
    pub prefix: String,
    pub reason: String,
}

/// An HTTP header name: a non-empty RFC 9110 token.
pub fn is_header_name(name: &str) -> bool {
    !name.is_empty()
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b))
}

/// Checks an upstream base URL: `http://host[:port][/path]`, nothing else, and a literal IP
/// host that `outbound` allows (a host name is checked on its addresses at connect time).
pub fn check_upstream(url: &str, outbound: &crate::egress::Policy) -> Result<(), String> {
    let parsed = reqwest::Url::parse(url).map_err(|e| format!("upstream {url:?}: {e}"))?;
    if parsed.scheme() != "http" {
        return Err(format!(
            "upstream {url:?}: only http:// is supported (no TLS to upstreams; keep them on a private network)"
        ));
    }
    if parsed.host_str().is_none_or(str::is_empty) {
        return Err(format!("upstream {url:?} has no host"));
    }
    if parsed.query().is_some() || parsed.fragment().is_some() {
        return Err(format!(
            "upstream {url:?} must not have a query or fragment"
        ));
    }
    if !parsed.username().is_empty() || parsed.password().is_some() {
        return Err(format!("upstream {url:?} must not hold credentials"));
    }
    outbound
        .check_url(&parsed)
        .map_err(|e| format!("upstream {url:?}: {e}"))
}

/// Refuses routes a gateway could not follow, so they never reach one; `outbound` says which
/// literal upstream addresses are allowed.
pub fn validate_routes(
    routes: &[Route],
    outbound: &crate::egress::Policy,
) -> Result<(), RouteError> {
    for (i, r) in routes.iter().enumerate() {
        let err = |reason: String| RouteError {
            prefix: r.prefix.to_string(),
            reason,
        };
        if routes[..i].iter().any(|o| o.prefix == r.prefix) {
            return Err(err("the prefix appears twice".into()));
        }
        match (&r.service, &r.upstream) {
            (Some(_), None) => {
                if !r.allow_headers.is_empty() || r.max_response_bytes.is_some() {
                    return Err(err(
                        "allow_headers and max_response_bytes apply to upstream routes only".into(),
                    ));
                }
            }
            (None, Some(url)) => check_upstream(url, outbound).map_err(err)?,
            _ => {
                return Err(err(
                    "give exactly one of \"service\" and \"upstream\"".into()
                ))
            }
        }
        if r.timeout_ms == Some(0) {
            return Err(err("timeout_ms must be greater than 0".into()));
        }
        if r.max_response_bytes == Some(0) {
            return Err(err("max_response_bytes must be greater than 0".into()));
        }
        for h in &r.allow_headers {
            if !is_header_name(h) {
                return Err(err(format!("{h:?} is not a header name")));
            }
            if IDENTITY_HEADERS.iter().any(|i| i.eq_ignore_ascii_case(h)) {
                return Err(err(format!(
                    "{h:?} is set by the gateway and cannot be allowed from clients"
                )));
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::egress::Policy;

    const ALLOW_ALL: Policy = Policy {
        allow_loopback: true,
        allow_private: true,
    };

    fn routes(json: &str) -> Vec<Route> {
        serde_json::from_str(json).unwrap()
    }

    #[test]
    fn longest_prefix_wins() {
        let r = routes(
            r#"[{"prefix":"/","upstream":"http://127.0.0.1:9000"},
                {"prefix":"/weather","service":"weather"},
                {"prefix":"/weather/admin","upstream":"http://10.0.0.1"}]"#,
        );
        validate_routes(&r, &ALLOW_ALL).unwrap();
        let svc = |p: &str| match find(&r, p).and_then(Route::target) {
            Some(Target::Service(s)) => format!("service {s}"),
            Some(Target::Upstream(u)) => format!("upstream {u}"),
            None => "none".into(),
        };
        assert_eq!(svc("/weather/paris"), "service weather");
        assert_eq!(svc("/weather/admin/x"), "upstream http://10.0.0.1");
        assert_eq!(svc("/weatherman"), "upstream http://127.0.0.1:9000");
        assert!(find(&r[1..], "/other").is_none());
    }

    #[test]
    fn bad_routes_are_refused_with_their_prefix() {
        for (json, needle) in [
            (r#"[{"prefix":"/a"}]"#, "exactly one"),
            (
                r#"[{"prefix":"/a","service":"s","upstream":"http://h"}]"#,
                "exactly one",
            ),
            (r#"[{"prefix":"/a","upstream":"https://h"}]"#, "http://"),
            (r#"[{"prefix":"/a","upstream":"http://h/?q=1"}]"#, "query"),
            (r#"[{"prefix":"/a","upstream":"not a url"}]"#, "upstream"),
            (
                r#"[{"prefix":"/a","service":"s"},{"prefix":"/a","service":"t"}]"#,
                "twice",
            ),
            (
                r#"[{"prefix":"/a","service":"s","allow_headers":["etag"]}]"#,
                "upstream routes only",
            ),
            (
                r#"[{"prefix":"/a","upstream":"http://h","allow_headers":["bad header"]}]"#,
                "header name",
            ),
            (
                r#"[{"prefix":"/a","upstream":"http://h","allow_headers":["X-Waas-Sub"]}]"#,
                "set by the gateway",
            ),
            (
                r#"[{"prefix":"/a","service":"s","timeout_ms":0}]"#,
                "timeout_ms",
            ),
        ] {
            let e = validate_routes(&routes(json), &ALLOW_ALL).unwrap_err();
            assert!(e.to_string().contains(needle), "{json}: {e}");
            assert!(e.to_string().starts_with("route /a"), "{e}");
        }
        assert!(serde_json::from_str::<Vec<Route>>(r#"[{"prefix":"a","service":"s"}]"#).is_err());
        assert!(
            serde_json::from_str::<Vec<Route>>(r#"[{"prefix":"/a","service":"s","x":1}]"#).is_err()
        );
    }

    #[test]
    fn upstreams_at_refused_literal_addresses_are_refused() {
        let strict = Policy::default();
        for url in [
            "http://127.0.0.1:9000",
            "http://[::1]:9000",
            "http://10.0.0.5:8000/v2",
            "http://169.254.169.254",
            "http://[fd00::1]",
            "http://[::ffff:127.0.0.1]",
            "http://0.0.0.0:80",
        ] {
            let json = format!(r#"[{{"prefix":"/a","upstream":"{url}"}}]"#);
            let e = validate_routes(&routes(&json), &strict).unwrap_err();
            assert!(e.to_string().contains("refused"), "{url}: {e}");
        }
        // Names are checked when connecting, on what they resolve to.
        validate_routes(
            &routes(r#"[{"prefix":"/a","upstream":"http://api.internal:8000"}]"#),
            &strict,
        )
        .unwrap();
        let private = Policy {
            allow_loopback: false,
            allow_private: true,
        };
        validate_routes(
            &routes(r#"[{"prefix":"/a","upstream":"http://10.0.0.5:8000"}]"#),
            &private,
        )
        .unwrap();
        let e = validate_routes(
            &routes(r#"[{"prefix":"/a","upstream":"http://169.254.169.254"}]"#),
            &ALLOW_ALL,
        )
        .unwrap_err();
        assert!(e.to_string().contains("link-local"), "{e}");
    }
}
