//! The REST API, for a tenant's servers: publish without holding a WebSocket, mint end-user
//! tokens with the app's secret kept on the WaaS side, read channel history, and start and stop
//! recordings.
//!
//! Every call authenticates with the app's API key. Non-2xx answers carry
//! `{"error": {"code", "message"}}` and become [`Error::Http`] with the status and code, so a
//! caller can retry on `rate_limited`/`unavailable` and give up on `forbidden`.

use crate::error::{Error, Result};
use serde::de::DeserializeOwned;
use serde::Serialize;
use std::time::Duration;
use waas_protocol::history::HistoryPage;
use waas_protocol::recording::{RecordingInfo, StartRecording};
use waas_protocol::rest::{
    BatchRequest, BatchResponse, ErrorBody, PublishRequest, PublishResponse, TokenRequest,
    TokenResponse,
};
use waas_protocol::AppId;

/// Default limit for one REST call, connect to last byte.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(10);

/// A REST client for one app. Cheap to clone; clones share connections.
#[derive(Debug, Clone)]
pub struct ServerClient {
    http: reqwest::Client,
    /// `{base}/v1/apps/{app}`, without a trailing slash.
    app_url: String,
    api_key: String,
}

/// Builds one item of [`ServerClient::batch`] (or a publish request to send yourself).
pub fn publish_request<T: Serialize + ?Sized>(
    channel: impl Into<String>,
    event: impl Into<String>,
    data: &T,
) -> Result<PublishRequest> {
    Ok(PublishRequest {
        channel: Some(channel.into()),
        channels: None,
        event: event.into(),
        data: serde_json::value::to_raw_value(data)?,
    })
}

/// A non-2xx answer as [`Error::Http`]: the code and message of its error body, or the start
/// of the body when it has none.
pub(crate) fn http_error(status: u16, bytes: &[u8]) -> Error {
    match serde_json::from_slice::<ErrorBody>(bytes) {
        Ok(body) => Error::Http {
            status,
            code: body.error.code,
            message: body.error.message,
        },
        Err(_) => Error::Http {
            status,
            code: waas_protocol::ErrorCode::Unknown,
            message: String::from_utf8_lossy(&bytes[..bytes.len().min(500)]).into_owned(),
        },
    }
}

impl ServerClient {
    /// `base_url` is the gateway's HTTP address (`http://127.0.0.1:8080`, optionally with a path
    /// prefix); `api_key` is the app's key.
    pub fn new(
        base_url: impl AsRef<str>,
        app: impl AsRef<str>,
        api_key: impl Into<String>,
    ) -> Result<Self> {
        let http = reqwest::Client::builder()
            .timeout(DEFAULT_TIMEOUT)
            .build()?;
        Self::with_http_client(http, base_url, app, api_key)
    }

    /// Like [`ServerClient::new`] with a `reqwest::Client` configured by the caller (timeouts,
    /// pool sizes, proxies).
    pub fn with_http_client(
        http: reqwest::Client,
        base_url: impl AsRef<str>,
        app: impl AsRef<str>,
        api_key: impl Into<String>,
    ) -> Result<Self> {
        let base = base_url.as_ref().trim_end_matches('/');
        let base = if let Some(rest) = base.strip_prefix("ws://") {
            format!("http://{rest}")
        } else if base.starts_with("http://") {
            base.to_owned()
        } else {
            return Err(Error::Config(format!(
                "REST base URL {base:?}: expected http:// (TLS is not supported yet)"
            )));
        };
        let app = AppId::parse(app.as_ref())
            .map_err(|e| Error::Config(format!("app id {:?}: {e}", app.as_ref())))?;
        Ok(ServerClient {
            http,
            app_url: format!("{base}/v1/apps/{app}"),
            api_key: api_key.into(),
        })
    }

    async fn post<B: Serialize, R: DeserializeOwned>(&self, path: &str, body: &B) -> Result<R> {
        let request = self
            .http
            .post(format!("{}/{path}", self.app_url))
            .json(body);
        self.call(request).await
    }

    async fn get<R: DeserializeOwned>(&self, path: &str) -> Result<R> {
        let request = self.http.get(format!("{}/{path}", self.app_url));
        self.call(request).await
    }

    async fn call<R: DeserializeOwned>(&self, request: reqwest::RequestBuilder) -> Result<R> {
        let response = request.bearer_auth(&self.api_key).send().await?;
        let status = response.status();
        let bytes = response.bytes().await?;
        if status.is_success() {
            return Ok(serde_json::from_slice(&bytes)?);
        }
        Err(http_error(status.as_u16(), &bytes))
    }

    /// Publishes to one channel; the response holds the offset it got.
    pub async fn publish<T: Serialize + ?Sized>(
        &self,
        channel: &str,
        event: &str,
        data: &T,
    ) -> Result<PublishResponse> {
        self.send(publish_request(channel, event, data)?).await
    }

    /// Publishes one message to several channels in one call; each gets its own offset.
    pub async fn publish_many<I, S, T>(
        &self,
        channels: I,
        event: &str,
        data: &T,
    ) -> Result<PublishResponse>
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
        T: Serialize + ?Sized,
    {
        self.send(PublishRequest {
            channel: None,
            channels: Some(channels.into_iter().map(Into::into).collect()),
            event: event.into(),
            data: serde_json::value::to_raw_value(data)?,
        })
        .await
    }

    /// Sends a prepared publish request.
    pub async fn send(&self, request: PublishRequest) -> Result<PublishResponse> {
        self.post("publish", &request).await
    }

    /// Several publishes in one call (at most the server's `max_batch_size`, default 100); the
    /// answers come in the same order.
    pub async fn batch(&self, batch: Vec<PublishRequest>) -> Result<Vec<PublishResponse>> {
        let response: BatchResponse = self.post("batch", &BatchRequest { batch }).await?;
        Ok(response.batch)
    }

    /// Asks the server to mint an HS256 token for an end user (the app must have a secret;
    /// otherwise `no_signing_secret`). To mint without a round trip, see [`crate::token`].
    pub async fn mint_token(&self, request: &TokenRequest) -> Result<TokenResponse> {
        self.post("tokens", request).await
    }

    /// Starts recording the channels matching `request.channels` (`docs/recordings.md`); the
    /// recording is live when this returns.
    pub async fn start_recording(&self, request: &StartRecording) -> Result<RecordingInfo> {
        self.post("recordings", request).await
    }

    /// Stops a recording; its events stay (export and replay them with the admin API).
    pub async fn stop_recording(&self, id: &str) -> Result<RecordingInfo> {
        self.post(&format!("recordings/{id}/stop"), &serde_json::json!({}))
            .await
    }

    /// Up to `limit` stored messages of `channel` (`docs/history.md`): those after `since`
    /// (before it when `reverse`), oldest first (newest first when `reverse`). Each item of
    /// `messages` is the `message` frame subscribers received; parse it with
    /// `waas_sdk::protocol::ServerFrame::parse`.
    pub async fn history(
        &self,
        channel: &str,
        since: Option<u64>,
        limit: Option<usize>,
        reverse: bool,
    ) -> Result<HistoryPage> {
        let mut query = vec![format!("reverse={reverse}")];
        if let Some(since) = since {
            query.push(format!("since={since}"));
        }
        if let Some(limit) = limit {
            query.push(format!("limit={limit}"));
        }
        let channel = channel
            .replace('%', "%25")
            .replace('/', "%2F")
            .replace('#', "%23");
        self.get(&format!("channels/{channel}/history?{}", query.join("&")))
            .await
    }

    /// A recording as it is now (`event_count` grows while it records).
    pub async fn recording(&self, id: &str) -> Result<RecordingInfo> {
        self.get(&format!("recordings/{id}")).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn base_urls() {
        let c = ServerClient::new("http://127.0.0.1:8080/", "demo", "k").unwrap();
        assert_eq!(c.app_url, "http://127.0.0.1:8080/v1/apps/demo");
        let c = ServerClient::new("ws://h:1/prefix", "demo", "k").unwrap();
        assert_eq!(c.app_url, "http://h:1/prefix/v1/apps/demo");
        assert!(matches!(
            ServerClient::new("https://h", "demo", "k"),
            Err(Error::Config(_))
        ));
        assert!(matches!(
            ServerClient::new("http://h", "no such/app", "k"),
            Err(Error::Config(_))
        ));
    }

    #[test]
    fn publish_request_body() {
        let r = publish_request("weather.paris", "reading", &serde_json::json!({"t": 20})).unwrap();
        assert_eq!(
            serde_json::to_string(&r).unwrap(),
            r#"{"channel":"weather.paris","event":"reading","data":{"t":20}}"#
        );
    }
}
