//! The gateways' URLs from a discovery document ([`ClientBuilder::discovery_url`]): one URL
//! (any gateway's `GET /v1/regions`, or a static file with the same JSON) instead of a list
//! built into the client, so regions can be added or moved without shipping a new client.
//!
//! The document comes over the network, so it is read as hostile: at most
//! [`MAX_DOCUMENT_BYTES`] are read (a larger answer is refused, not truncated), at most
//! [`MAX_REGIONS`] URLs, each `ws://` or `wss://` ([`RegionsDocument::validate`]); anything else
//! is an [`Error::Discovery`] naming what is wrong.
//!
//! [`ClientBuilder::discovery_url`]: crate::ClientBuilder::discovery_url

use crate::error::{Error, Result};
use crate::options::Options;
use crate::transport::Endpoint;
use waas_protocol::regions::{RegionsDocument, MAX_DOCUMENT_BYTES, MAX_REGIONS};

/// The gateways to probe: the discovery document's when a discovery URL is set, else the URLs
/// given. When fetching or reading the document fails, the URLs given (or `known`, those of a
/// previous fetch) are used if there are any, so a discovery endpoint being down does not stop
/// clients that have another way in; with none, the error is returned.
pub(crate) async fn endpoints(
    options: &Options,
    known: Option<&[Endpoint]>,
) -> Result<Vec<Endpoint>> {
    let Some(url) = &options.discovery_url else {
        return Ok(options.endpoints.clone());
    };
    match discover(options, url).await {
        Ok(endpoints) => Ok(endpoints),
        Err(e) => {
            let fallback = known.unwrap_or(&options.endpoints);
            if fallback.is_empty() {
                return Err(e);
            }
            tracing::warn!(%url, error = %e, "discovery failed; using the gateways known");
            Ok(fallback.to_vec())
        }
    }
}

async fn discover(options: &Options, url: &str) -> Result<Vec<Endpoint>> {
    let bad = |reason: String| Error::Discovery {
        url: url.to_owned(),
        reason,
    };
    let body = tokio::time::timeout(options.connect_timeout, fetch(url))
        .await
        .map_err(|_| Error::Timeout {
            operation: "discovery",
        })?
        .map_err(bad)?;
    let endpoints = parse(&body).map_err(bad)?;
    endpoints
        .iter()
        .map(|u| Endpoint::parse(u).map(|e| e.with_server_name(options.server_name.as_ref())))
        .collect::<Result<Vec<_>>>()
        .map_err(|e| match e {
            Error::Config(m) => bad(m),
            other => other,
        })
}

/// The document's bytes, refusing an answer that is not a 200 or is larger than
/// [`MAX_DOCUMENT_BYTES`] (read chunk by chunk, so a huge answer costs no more than that).
async fn fetch(url: &str) -> std::result::Result<Vec<u8>, String> {
    let mut response = reqwest::get(url).await.map_err(|e| e.to_string())?;
    if response.status() != reqwest::StatusCode::OK {
        return Err(format!("HTTP {}", response.status().as_u16()));
    }
    if response
        .content_length()
        .is_some_and(|n| n > MAX_DOCUMENT_BYTES as u64)
    {
        return Err(format!("larger than {MAX_DOCUMENT_BYTES} bytes"));
    }
    let mut body = Vec::new();
    while let Some(chunk) = response.chunk().await.map_err(|e| e.to_string())? {
        if body.len() + chunk.len() > MAX_DOCUMENT_BYTES {
            return Err(format!("larger than {MAX_DOCUMENT_BYTES} bytes"));
        }
        body.extend_from_slice(&chunk);
    }
    Ok(body)
}

/// The URLs of a document, in its order; refused when it is not a valid regions document or
/// lists none.
pub(crate) fn parse(body: &[u8]) -> std::result::Result<Vec<String>, String> {
    let doc: RegionsDocument = serde_json::from_slice(body).map_err(|e| {
        format!("not a regions document ({{\"regions\": [{{\"name\", \"url\"}}]}}): {e}")
    })?;
    doc.validate().map_err(|e| e.to_string())?;
    if doc.regions.is_empty() {
        return Err("lists no region".into());
    }
    debug_assert!(doc.regions.len() <= MAX_REGIONS);
    Ok(doc.regions.into_iter().map(|r| r.url).collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_the_urls_in_order() {
        let urls = parse(
            br#"{"regions":[{"name":"a","url":"ws://a:1"},{"name":"b","url":"wss://b.example"}]}"#,
        )
        .unwrap();
        assert_eq!(urls, ["ws://a:1", "wss://b.example"]);
    }

    #[test]
    fn refuses_bad_documents_with_the_reason() {
        let cases: [(&[u8], &str); 5] = [
            (b"<html>", "not a regions document"),
            (br#"{"regions":[]}"#, "no region"),
            (br#"{"regions":[{"name":"a","url":"http://a"}]}"#, "ws://"),
            (
                br#"{"regions":[{"name":"a b","url":"ws://a"}]}"#,
                "region name",
            ),
            (br#"{"nope":1}"#, "not a regions document"),
        ];
        for (body, want) in cases {
            let e = parse(body).unwrap_err();
            assert!(e.contains(want), "{}: {e}", String::from_utf8_lossy(body));
        }
        let many: Vec<String> = (0..=MAX_REGIONS)
            .map(|i| format!(r#"{{"name":"r{i}","url":"ws://h:{i}"}}"#))
            .collect();
        let body = format!(r#"{{"regions":[{}]}}"#, many.join(","));
        assert!(parse(body.as_bytes()).unwrap_err().contains("at most"));
    }
}
