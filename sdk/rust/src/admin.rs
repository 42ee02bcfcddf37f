//! The admin API (`docs/admin.md`), for an operator's tooling (the `waas app` commands among
//! them): tenants and apps, authenticated with the operator token rather than an app's API key.
//!
//! Answers are returned as the server wrote them ([`RawValue`]): they carry an app's API key and
//! secret, shown only this once, and a tool usually stores or prints them unchanged. Non-2xx
//! answers become [`Error::Http`] with the status and code, as with [`crate::rest`].

use crate::error::{Error, Result};
use crate::rest::{http_error, DEFAULT_TIMEOUT};
use serde::Serialize;
use serde_json::value::RawValue;
use waas_protocol::AppId;

/// An admin API client for one control-plane (or `waas dev`). Cheap to clone.
#[derive(Clone)]
pub struct AdminClient {
    http: reqwest::Client,
    /// `{base}/v1/admin`, without a trailing slash.
    admin_url: String,
    operator_token: String,
}

/// The token is a secret: it never shows in logs.
impl std::fmt::Debug for AdminClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AdminClient")
            .field("admin_url", &self.admin_url)
            .finish_non_exhaustive()
    }
}

/// `POST /v1/admin/apps`: an app in an existing tenant; the server generates its first API key
/// and HS256 secret.
#[derive(Debug, Clone, Serialize)]
pub struct CreateApp {
    pub id: String,
    pub tenant_id: String,
    pub name: Option<String>,
    /// Open the Pusher front for the app (a Pusher secret is generated and shown once); off
    /// unless asked, since Pusher clients read public channels without a token.
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub pusher: bool,
}

impl AdminClient {
    /// `base_url` is the control-plane's HTTP address (`http://127.0.0.1:9000`).
    pub fn new(base_url: impl AsRef<str>, operator_token: impl Into<String>) -> Result<Self> {
        let base = base_url.as_ref().trim_end_matches('/');
        if !base.starts_with("http://") {
            return Err(Error::Config(format!(
                "admin base URL {base:?}: expected http:// (TLS is not supported yet)"
            )));
        }
        Ok(AdminClient {
            http: reqwest::Client::builder()
                .timeout(DEFAULT_TIMEOUT)
                .build()?,
            admin_url: format!("{base}/v1/admin"),
            operator_token: operator_token.into(),
        })
    }

    async fn post<B: Serialize + ?Sized>(&self, path: &str, body: &B) -> Result<Box<RawValue>> {
        self.send(reqwest::Method::POST, path, body).await
    }

    async fn send<B: Serialize + ?Sized>(
        &self,
        method: reqwest::Method,
        path: &str,
        body: &B,
    ) -> Result<Box<RawValue>> {
        let response = self
            .http
            .request(method, format!("{}/{path}", self.admin_url))
            .bearer_auth(&self.operator_token)
            .json(body)
            .send()
            .await?;
        let status = response.status();
        let bytes = response.bytes().await?;
        if status.is_success() {
            return Ok(serde_json::from_slice(&bytes)?);
        }
        Err(http_error(status.as_u16(), &bytes))
    }

    /// Creates a tenant; one that exists already is `Error::Http` with status 409.
    pub async fn create_tenant(&self, id: &str, name: &str) -> Result<Box<RawValue>> {
        self.post("tenants", &serde_json::json!({"id": id, "name": name}))
            .await
    }

    /// Creates an app; the answer holds its API key and HS256 secret.
    pub async fn create_app(&self, app: &CreateApp) -> Result<Box<RawValue>> {
        self.post("apps", app).await
    }

    /// Replaces the app's Pusher secret with `secret`, or with a generated one when `None`; the
    /// answer (`{"pusher_secret", "app"}`) is the only place the new secret shows.
    pub async fn rotate_pusher_secret(
        &self,
        app: &str,
        secret: Option<&str>,
    ) -> Result<Box<RawValue>> {
        let path = format!("apps/{}/pusher-secret", app_id(app)?);
        self.post(&path, &serde_json::json!({"pusher_secret": secret}))
            .await
    }

    /// Lets the app's Pusher clients send `client-` events, or stops them; answers the app.
    pub async fn set_pusher_client_events(&self, app: &str, on: bool) -> Result<Box<RawValue>> {
        let path = format!("apps/{}", app_id(app)?);
        self.send(
            reqwest::Method::PATCH,
            &path,
            &serde_json::json!({"pusher_client_events": on}),
        )
        .await
    }
}

/// Checked before it goes into a URL path, so a bad id is a clear error rather than another
/// request.
fn app_id(app: &str) -> Result<AppId> {
    AppId::parse(app).map_err(|e| Error::Config(format!("app id {app:?}: {e}")))
}
