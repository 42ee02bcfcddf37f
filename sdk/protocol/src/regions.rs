//! The regions document: the public WebSocket URL of each region's gateways, served by every
//! gateway configured with them at `GET /v1/regions` (`docs/regions.md`), and read by the SDKs'
//! discovery option, which probes the URLs for the nearest. It holds nothing secret and nothing
//! about apps: the same URLs any client is given.
//!
//! The checks are shared by the server (refusing a bad configuration at start-up) and the SDKs
//! (refusing a bad or hostile document, which comes over the network), so both apply the same
//! limits.

use serde::{Deserialize, Serialize};

/// Most regions a document may list: probing opens a connection to each.
pub const MAX_REGIONS: usize = 32;
/// Largest document an SDK reads; a larger answer is refused, not truncated.
pub const MAX_DOCUMENT_BYTES: usize = 64 * 1024;
/// Longest URL accepted.
pub const MAX_URL_BYTES: usize = 2048;

/// `GET /v1/regions`.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RegionsDocument {
    /// At most [`MAX_REGIONS`], in the configured order.
    pub regions: Vec<Region>,
}

/// One region's gateways.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Region {
    /// The region's name, such as `eu-west`: 1 to 63 letters, digits, `-`, `_` or `.`.
    #[cfg_attr(
        feature = "openapi",
        schema(min_length = 1, max_length = 63, example = "eu-west")
    )]
    pub name: String,
    /// The gateways' public base URL, `ws://` or `wss://` (what a client would be given as its
    /// URL).
    #[cfg_attr(feature = "openapi", schema(example = "wss://eu.rt.example.com"))]
    pub url: String,
}

/// Why a regions document (or configuration) is refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RegionsError {
    #[error("{count} regions, at most {MAX_REGIONS} allowed")]
    TooMany { count: usize },
    #[error("region name {name:?}: must be 1 to 63 letters, digits, '-', '_' or '.'")]
    BadName { name: String },
    #[error("region name {name:?} listed twice")]
    DuplicateName { name: String },
    #[error("region {name:?}: URL {url:?}: {reason}")]
    BadUrl {
        name: String,
        url: String,
        reason: &'static str,
    },
}

impl RegionsDocument {
    /// Checks every limit: the count, the names (unique) and the URLs ([`check_url`]).
    pub fn validate(&self) -> Result<(), RegionsError> {
        if self.regions.len() > MAX_REGIONS {
            return Err(RegionsError::TooMany {
                count: self.regions.len(),
            });
        }
        for (i, r) in self.regions.iter().enumerate() {
            let name_ok = !r.name.is_empty()
                && r.name.len() <= 63
                && r.name
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'));
            if !name_ok {
                return Err(RegionsError::BadName {
                    name: r.name.clone(),
                });
            }
            if self.regions[..i].iter().any(|o| o.name == r.name) {
                return Err(RegionsError::DuplicateName {
                    name: r.name.clone(),
                });
            }
            check_url(&r.url).map_err(|reason| RegionsError::BadUrl {
                name: r.name.clone(),
                url: r.url.chars().take(200).collect(),
                reason,
            })?;
        }
        Ok(())
    }
}

/// A gateway URL a document may list: `ws://` or `wss://`, a host, no whitespace or control
/// characters, at most [`MAX_URL_BYTES`]. Anything else (`javascript:`, `http://`, a relative
/// path) is refused, so a document cannot point a client at something that is not a gateway.
pub fn check_url(url: &str) -> Result<(), &'static str> {
    if url.len() > MAX_URL_BYTES {
        return Err("too long");
    }
    if url.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return Err("contains whitespace or control characters");
    }
    let rest = url
        .strip_prefix("ws://")
        .or_else(|| url.strip_prefix("wss://"))
        .ok_or("must start with ws:// or wss://")?;
    let authority = rest.split(['/', '?', '#']).next().unwrap_or("");
    if authority.is_empty() || authority.contains('@') {
        return Err("must have a host and no user information");
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn doc(regions: &[(&str, &str)]) -> RegionsDocument {
        RegionsDocument {
            regions: regions
                .iter()
                .map(|(name, url)| Region {
                    name: (*name).into(),
                    url: (*url).into(),
                })
                .collect(),
        }
    }

    #[test]
    fn accepts_ws_and_wss_urls() {
        let d = doc(&[
            ("eu-west", "wss://eu.example.com"),
            ("b", "ws://10.0.0.1:8080/rt"),
        ]);
        assert_eq!(d.validate(), Ok(()));
        let parsed: RegionsDocument = serde_json::from_str(
            r#"{"regions":[{"name":"eu-west","url":"wss://eu.example.com"},{"name":"b","url":"ws://10.0.0.1:8080/rt"}]}"#,
        )
        .unwrap();
        assert_eq!(parsed, d);
    }

    #[test]
    fn refuses_other_schemes_and_odd_urls() {
        for url in [
            "http://h",
            "https://h",
            "javascript:alert(1)",
            "/relative",
            "ws://",
            "ws://user:pw@h",
            "ws://h /x",
            "ws://h\n",
        ] {
            assert!(
                matches!(
                    doc(&[("a", url)]).validate(),
                    Err(RegionsError::BadUrl { .. })
                ),
                "{url:?}"
            );
        }
        let long = format!("ws://h/{}", "x".repeat(MAX_URL_BYTES));
        assert!(doc(&[("a", &long)]).validate().is_err());
    }

    #[test]
    fn refuses_bad_or_duplicate_names_and_too_many_regions() {
        assert!(matches!(
            doc(&[("eu west", "ws://h")]).validate(),
            Err(RegionsError::BadName { .. })
        ));
        assert!(matches!(
            doc(&[("", "ws://h")]).validate(),
            Err(RegionsError::BadName { .. })
        ));
        assert!(matches!(
            doc(&[("a", "ws://h"), ("a", "ws://i")]).validate(),
            Err(RegionsError::DuplicateName { .. })
        ));
        let names: Vec<String> = (0..=MAX_REGIONS).map(|i| format!("r{i}")).collect();
        let many: Vec<(&str, &str)> = names.iter().map(|n| (n.as_str(), "ws://h")).collect();
        assert!(matches!(
            doc(&many).validate(),
            Err(RegionsError::TooMany { count }) if count == MAX_REGIONS + 1
        ));
    }
}
