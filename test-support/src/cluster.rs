//! A cluster of real processes for tests: one control-plane and N gateways of the `waas`
//! binary, over a NATS (the machine's, or a private one) with a subject prefix of their own,
//! and a PostgreSQL schema of their own.

use crate::nats::unique_prefix;
use crate::pg::PgSchema;
use crate::server::ChildServer;
use serde_json::{json, Value};

/// Operator token of test control-planes.
pub const OPERATOR: &str = "test-operator-token";

pub struct Cluster {
    pub binary: String,
    pub nats_url: String,
    pub prefix: String,
    pub schema: PgSchema,
    pub control_plane: Option<ChildServer>,
    pub gateways: Vec<ChildServer>,
    control_plane_url: String,
    /// Extra flags of every (re)start of the control-plane.
    control_plane_args: Vec<String>,
}

/// An app created through the admin API, with its secrets.
pub struct TestApp {
    pub id: String,
    pub api_key: String,
    pub jwt_secret: String,
}

impl TestApp {
    /// An HS256 token of this app for `sub`, valid an hour.
    pub fn token(&self, sub: &str, caps: waas_protocol::Caps) -> String {
        crate::tokens::for_app(&self.jwt_secret, &self.id, sub, caps)
    }

    /// `POST {base}/v1/apps/{id}/publish` with this app's API key, on a connection of its own:
    /// the status and the JSON answer.
    pub async fn publish(
        &self,
        base: &str,
        channel: &str,
        event: &str,
        data: serde_json::Value,
    ) -> (u16, serde_json::Value) {
        let body = serde_json::json!({"channel": channel, "event": event, "data": data});
        reqwest_like::Client::new()
            .call(
                "POST",
                &format!("{base}/v1/apps/{}/publish", self.id),
                &self.api_key,
                Some(body),
            )
            .await
    }
}

/// Tests' webhook receivers and upstreams listen on 127.0.0.1, which cluster processes refuse
/// by default: allow it, unless the test's own flags decide.
fn allow_loopback_unless_set(args: &mut Vec<&str>, extra: &[impl AsRef<str>]) {
    if !extra
        .iter()
        .any(|a| a.as_ref().starts_with("--outbound-allow-loopback"))
    {
        args.extend(["--outbound-allow-loopback", "true"]);
    }
}

impl Cluster {
    pub async fn start(binary: &str, nats_url: &str, gateways: usize) -> Cluster {
        Self::start_with(binary, nats_url, gateways, &[]).await
    }

    /// Like [`Cluster::start`], with `control_plane_args` added to the control-plane's flags
    /// (at every restart too).
    pub async fn start_with(
        binary: &str,
        nats_url: &str,
        gateways: usize,
        control_plane_args: &[&str],
    ) -> Cluster {
        let schema = PgSchema::create().await;
        let prefix = unique_prefix();
        let mut cluster = Cluster {
            binary: binary.into(),
            nats_url: nats_url.into(),
            prefix,
            schema,
            control_plane: None,
            gateways: Vec::new(),
            control_plane_url: String::new(),
            control_plane_args: control_plane_args.iter().map(|a| a.to_string()).collect(),
        };
        cluster.start_control_plane();
        for _ in 0..gateways {
            cluster.add_gateway();
        }
        cluster
    }

    /// (Re)starts the control-plane; its URL changes with each start.
    pub fn start_control_plane(&mut self) {
        let url = self.schema.url();
        let mut args = vec![
            "control-plane",
            "--listen",
            "127.0.0.1:0",
            "--nats",
            &self.nats_url,
            "--database-url",
            &url,
            "--operator-token",
            OPERATOR,
            "--subject-prefix",
            &self.prefix,
        ];
        allow_loopback_unless_set(&mut args, &self.control_plane_args);
        args.extend(self.control_plane_args.iter().map(String::as_str));
        let cp = ChildServer::spawn(&self.binary, &args);
        self.control_plane_url = format!("http://{}", cp.addr);
        self.control_plane = Some(cp);
    }

    pub fn add_gateway(&mut self) -> usize {
        self.add_gateway_with(&[])
    }

    /// Starts a gateway with `extra` flags (limits, say); returns its index.
    pub fn add_gateway_with(&mut self, extra: &[&str]) -> usize {
        let nats = self.nats_url.clone();
        self.add_gateway_via(&nats, extra)
    }

    /// Starts a gateway that reaches the cluster's NATS at `nats_url` (through a
    /// [`TcpProxy`](crate::proxy::TcpProxy), say); returns its index.
    pub fn add_gateway_via(&mut self, nats_url: &str, extra: &[&str]) -> usize {
        let mut args = vec![
            "gateway",
            "--listen",
            "127.0.0.1:0",
            "--nats",
            nats_url,
            "--subject-prefix",
            &self.prefix,
        ];
        allow_loopback_unless_set(&mut args, extra);
        args.extend_from_slice(extra);
        let gw = ChildServer::spawn(&self.binary, &args);
        self.gateways.push(gw);
        self.gateways.len() - 1
    }

    pub fn control_plane_url(&self) -> &str {
        &self.control_plane_url
    }

    pub fn gateway_http(&self, i: usize) -> String {
        format!("http://{}", self.gateways[i].addr)
    }

    /// POST/PATCH/DELETE on the admin API; returns status and JSON body (null when empty).
    pub async fn admin(&self, method: &str, path: &str, body: Option<Value>) -> (u16, Value) {
        let http = reqwest_like::Client::new();
        http.call(
            method,
            &format!("{}{path}", self.control_plane_url),
            OPERATOR,
            body,
        )
        .await
    }

    /// Creates tenant `t` (if needed) and app `id` with a generated secret and key.
    pub async fn create_app(&self, id: &str) -> TestApp {
        self.create_app_with(id, json!({})).await
    }

    /// Creates an app with more fields of the admin API's `POST /v1/admin/apps` (`limits`,
    /// `routes`): gateways learn it with them from the start, where a later `PATCH` would reach
    /// each gateway a moment after the admin API answers.
    pub async fn create_app_with(&self, id: &str, fields: serde_json::Value) -> TestApp {
        let (s, _) = self
            .admin(
                "POST",
                "/v1/admin/tenants",
                Some(json!({"id": "t", "name": "Tenant"})),
            )
            .await;
        assert!(s == 201 || s == 409, "create tenant: {s}");
        let mut app = json!({"id": id, "tenant_id": "t"});
        if let (Some(app), Some(fields)) = (app.as_object_mut(), fields.as_object()) {
            app.extend(fields.clone());
        }
        let (s, body) = self.admin("POST", "/v1/admin/apps", Some(app)).await;
        assert_eq!(s, 201, "create app: {body}");
        TestApp {
            id: id.into(),
            api_key: body["api_key"].as_str().expect("api_key").into(),
            jwt_secret: body["jwt_secret"].as_str().expect("jwt_secret").into(),
        }
    }
}

/// Stops the processes, then deletes the JetStream streams they made under this cluster's prefix.
impl Drop for Cluster {
    fn drop(&mut self) {
        self.gateways.clear();
        self.control_plane = None;
        crate::jetstream::delete_streams(&self.nats_url, &self.prefix);
    }
}

/// A minimal JSON HTTP client on hyper, so the harness needs no extra HTTP stack.
pub mod reqwest_like {
    use bytes::Bytes;
    use http_body_util::{BodyExt, Full};
    use hyper::Request;
    use hyper_util::rt::TokioIo;
    use serde_json::Value;
    use tokio::net::TcpStream;

    pub struct Client;

    impl Client {
        pub fn new() -> Self {
            Client
        }

        pub async fn call(
            &self,
            method: &str,
            url: &str,
            bearer: &str,
            body: Option<Value>,
        ) -> (u16, Value) {
            let uri: hyper::Uri = url.parse().expect("url");
            let authority = uri.authority().expect("authority").to_string();
            let stream = TcpStream::connect(&authority).await.expect("connect");
            let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
                .await
                .expect("http handshake");
            tokio::spawn(conn);
            let mut req = Request::builder()
                .method(method)
                .uri(uri.path_and_query().map(|p| p.as_str()).unwrap_or("/"))
                .header("host", authority)
                .header("authorization", format!("Bearer {bearer}"));
            if body.is_some() {
                req = req.header("content-type", "application/json");
            }
            let payload = body.map(|b| b.to_string()).unwrap_or_default();
            let req = req.body(Full::new(Bytes::from(payload))).expect("request");
            let resp = sender.send_request(req).await.expect("send");
            let status = resp.status().as_u16();
            let bytes = resp.into_body().collect().await.expect("body").to_bytes();
            let value = if bytes.is_empty() {
                Value::Null
            } else {
                serde_json::from_slice(&bytes)
                    .unwrap_or(Value::String(String::from_utf8_lossy(&bytes).into()))
            };
            (status, value)
        }
    }

    impl Default for Client {
        fn default() -> Self {
            Self::new()
        }
    }
}
