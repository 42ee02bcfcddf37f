//! The Servers page and its admin API (docs/dashboard.md#servers, docs/admin.md#servers-and-nodes):
//! a tenant's server connected with the Rust SDK under a name shows online with its gateway and
//! ping latency, then offline once it disconnects; tenant users see only their apps' servers and
//! no gateway nodes; and the same holds across two gateways and a control-plane over NATS,
//! where a gateway that dies takes its servers offline.

#[path = "support/tenants.rs"]
mod tenants;

use serde_json::Value;
use std::collections::HashMap;
use std::time::Duration;
use waas::first_operator::{DEV_EMAIL, DEV_PASSWORD};
use waas_control_plane::dashboard::accounts::create_user;
use waas_control_plane::store::dashboard::Role;
use waas_sdk::Client;
use waas_test_support::cluster::{Cluster, OPERATOR};
use waas_test_support::nats::shared_url;
use waas_test_support::poll::eventually;
use waas_test_support::raw::RawClient;
use waas_test_support::TestServer;

const WAAS: &str = env!("CARGO_BIN_EXE_waas");
const WITHIN: Duration = Duration::from_secs(15);
const EVERY: Duration = Duration::from_millis(50);

/// A signed-in dashboard session: its cookie, sent with every request.
struct Session {
    base: String,
    http: reqwest::Client,
    cookie: String,
}

impl Session {
    async fn sign_in(base: &str, email: &str, password: &str) -> Session {
        let http = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .unwrap();
        let form = http
            .get(format!("{base}/dashboard/login"))
            .send()
            .await
            .unwrap();
        let login_cookie = cookie_of(&form, "waas_login");
        let body = form.text().await.unwrap();
        let at = body.find("name=\"csrf\" value=\"").expect("csrf field") + 19;
        let csrf = &body[at..at + body[at..].find('"').unwrap()];
        let form: HashMap<&str, &str> =
            HashMap::from([("csrf", csrf), ("email", email), ("password", password)]);
        let res = http
            .post(format!("{base}/dashboard/login"))
            .header("cookie", format!("waas_login={login_cookie}"))
            .form(&form)
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), 303, "signed in");
        Session {
            base: base.into(),
            cookie: format!("waas_session={}", cookie_of(&res, "waas_session")),
            http,
        }
    }

    async fn get(&self, path: &str) -> (u16, String) {
        let res = self
            .http
            .get(format!("{}{path}", self.base))
            .header("cookie", &self.cookie)
            .send()
            .await
            .unwrap();
        (res.status().as_u16(), res.text().await.unwrap())
    }

    async fn json(&self, path: &str) -> Value {
        let (status, body) = self.get(path).await;
        assert_eq!(status, 200, "{path}: {body}");
        serde_json::from_str(&body).unwrap()
    }
}

fn cookie_of(res: &reqwest::Response, name: &str) -> String {
    res.headers()
        .get_all("set-cookie")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .find_map(|c| c.strip_prefix(&format!("{name}=")))
        .and_then(|rest| rest.split(';').next())
        .unwrap_or_else(|| panic!("no {name} cookie"))
        .to_owned()
}

/// The entry of `connection_id` in a list of servers.
fn entry<'a>(list: &'a Value, connection_id: &str) -> Option<&'a Value> {
    list.as_array()?
        .iter()
        .find(|s| s["connection_id"] == connection_id)
}

async fn named_server(url: &str, app: &str, key: &str, name: &str) -> (Client, String) {
    let client = Client::builder()
        .url(url)
        .app(app)
        .token(key)
        .server_name(name)
        .connect()
        .await
        .unwrap();
    let id = client.connection_id().expect("connected");
    (client, id)
}

/// Waits until `list()` shows `connection_id` online with a latency; returns its entry.
async fn until_measured<F, Fut>(connection_id: &str, list: F) -> Value
where
    F: Fn() -> Fut,
    Fut: std::future::Future<Output = Value>,
{
    eventually(
        WITHIN,
        EVERY,
        || format!("{connection_id} never listed online with a latency"),
        || async {
            let all = list().await;
            entry(&all, connection_id)
                .filter(|s| s["online"] == true && s["latency_ms"].as_f64().is_some())
                .cloned()
        },
    )
    .await
}

/// Waits until `list()` shows `connection_id` offline; returns its entry.
async fn until_offline<F, Fut>(connection_id: &str, list: F) -> Value
where
    F: Fn() -> Fut,
    Fut: std::future::Future<Output = Value>,
{
    eventually(
        WITHIN,
        EVERY,
        || format!("{connection_id} never listed offline"),
        || async {
            let all = list().await;
            entry(&all, connection_id)
                .filter(|s| s["online"] == false)
                .cloned()
        },
    )
    .await
}

#[tokio::test]
async fn a_named_server_shows_online_with_a_latency_then_offline() {
    let server = TestServer::start().await;
    let admin_list = || async {
        let (status, list) = server
            .admin("GET", "/v1/admin/apps/demo/servers", None)
            .await;
        assert_eq!(status, 200, "{list}");
        list
    };

    // An end user's connection with a server name is not a server: connected first, so the
    // report that lists the server below was made after it.
    let token = waas_test_support::tokens::for_app(
        "demo-secret",
        "demo",
        "alice",
        waas_protocol::Caps::default(),
    );
    let mut user = RawClient::connect(
        server.addr,
        &format!("/v1/apps/demo/ws?server_name=not-a-server&token={token}"),
        None,
    )
    .await;
    user.next_op("ready").await;

    let (client, id) = named_server(&server.ws_url(), "demo", "demo-key", "rust-api-1").await;
    let listed = until_measured(&id, admin_list).await;
    assert_eq!(listed["name"], "rust-api-1");
    assert_eq!(listed["app"], "demo");
    assert!(listed["latency_ms"].as_f64().unwrap() > 0.0, "{listed}");
    assert!(listed["disconnected_at"].is_null());
    let node = listed["node"].as_str().unwrap().to_owned();
    assert!(
        id.contains(&node),
        "the node is the one in the connection id: {listed}"
    );
    let all = admin_list().await;
    assert!(
        all.as_array()
            .unwrap()
            .iter()
            .all(|s| s["name"] != "not-a-server"),
        "an end user is not listed: {all}"
    );

    let (status, nodes) = server.admin("GET", "/v1/admin/nodes", None).await;
    assert_eq!(status, 200);
    let me = &nodes.as_array().unwrap()[0];
    assert_eq!(me["node"], node.as_str());
    assert_eq!(me["online"], true);
    assert_eq!(me["version"], env!("CARGO_PKG_VERSION"));
    assert!(me["connections"].as_u64().unwrap() >= 2, "{me}");
    assert!(me["servers"].as_u64().unwrap() >= 1, "{me}");

    // The dashboard shows the same, as HTML and as the JSON its script polls.
    let operator = Session::sign_in(&server.http_url(), DEV_EMAIL, DEV_PASSWORD).await;
    let (status, page) = operator.get("/dashboard/servers").await;
    assert_eq!(status, 200);
    assert!(page.contains("rust-api-1"), "{page}");
    assert!(
        page.contains(&format!("data-connection=\"{id}\" class=\"online\"")),
        "{page}"
    );
    assert!(page.contains("Gateway nodes"), "operators see the nodes");
    assert!(page.contains("/dashboard/assets/servers.js"));
    let figures = operator.json("/dashboard/servers.json").await;
    assert_eq!(entry(&figures["servers"], &id).unwrap()["online"], true);
    assert_eq!(figures["nodes"][0]["node"], node.as_str());

    client.close().await.unwrap();
    let gone = until_offline(&id, admin_list).await;
    assert!(gone["disconnected_at"].as_u64().is_some(), "{gone}");
    let figures = operator.json("/dashboard/servers.json").await;
    assert_eq!(entry(&figures["servers"], &id).unwrap()["online"], false);

    // Unauthenticated: the admin API refuses, the JSON leads to the sign-in page.
    let res = reqwest::get(format!("{}/v1/admin/nodes", server.http_url()))
        .await
        .unwrap();
    assert_eq!(res.status(), 401);
    let (status, _) = server
        .admin("GET", "/v1/admin/apps/nope/servers", None)
        .await;
    assert_eq!(status, 404);
    let res = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap()
        .get(format!("{}/dashboard/servers.json", server.http_url()))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 303);
}

#[tokio::test]
async fn an_invalid_server_name_is_refused_before_the_upgrade() {
    let server = TestServer::start().await;
    for query in [
        "server_name=a%20b",
        "server_name=",
        "server_name=a&server_name=b",
    ] {
        let res = reqwest::Client::new()
            .get(format!("{}/v1/apps/demo/ws?{query}", server.http_url()))
            .header("connection", "upgrade")
            .header("upgrade", "websocket")
            .header("sec-websocket-version", "13")
            .header("sec-websocket-key", "dGhlIHNhbXBsZSBub25jZQ==")
            .header("authorization", "Bearer demo-key")
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), 400, "{query}");
        let body: Value = res.json().await.unwrap();
        assert_eq!(body["error"]["code"], "bad_request", "{query}: {body}");
        assert!(
            body["error"]["message"]
                .as_str()
                .unwrap()
                .contains("server_name"),
            "{body}"
        );
    }
    let e = Client::builder()
        .url(server.ws_url())
        .app("demo")
        .token("demo-key")
        .server_name("no/slashes")
        .connect()
        .await
        .unwrap_err();
    assert!(matches!(e, waas_sdk::Error::Config(_)), "{e}");
}

#[tokio::test]
async fn tenant_users_see_their_apps_servers_only_and_no_nodes() {
    let server = TestServer::start().await;
    let keys = tenants::acme_and_globex(&server).await;
    let (_acme, acme_id) =
        named_server(&server.ws_url(), "acme-app", &keys["acme"], "acme-api").await;
    let (_globex, globex_id) = named_server(
        &server.ws_url(),
        "globex-app",
        &keys["globex"],
        "globex-api",
    )
    .await;
    create_user(
        server.accounts.as_ref(),
        "ann@acme.test",
        "ann-password-1",
        Role::Tenant("acme".into()),
    )
    .await
    .unwrap();
    let ann = Session::sign_in(&server.http_url(), "ann@acme.test", "ann-password-1").await;
    let operator = Session::sign_in(&server.http_url(), DEV_EMAIL, DEV_PASSWORD).await;

    // Both listed for the operator first: from then on the view holds both.
    let all = until_measured(&globex_id, || async {
        operator.json("/dashboard/servers.json").await["servers"].clone()
    })
    .await;
    assert_eq!(all["name"], "globex-api");
    until_measured(&acme_id, || async {
        operator.json("/dashboard/servers.json").await["servers"].clone()
    })
    .await;

    let mine = ann.json("/dashboard/servers.json").await;
    assert!(entry(&mine["servers"], &acme_id).is_some(), "{mine}");
    assert!(entry(&mine["servers"], &globex_id).is_none(), "{mine}");
    assert!(mine["nodes"].is_null(), "no nodes for tenant users: {mine}");
    let narrowed = ann.json("/dashboard/servers.json?app=acme-app").await;
    assert_eq!(narrowed["servers"].as_array().unwrap().len(), 1);

    let (status, page) = ann.get("/dashboard/servers").await;
    assert_eq!(status, 200);
    assert!(page.contains("acme-api"));
    assert!(!page.contains("globex"), "{page}");
    assert!(!page.contains("Gateway nodes"), "{page}");

    // Guessing another tenant's app id reads as an app that does not exist.
    for path in [
        "/dashboard/servers.json?app=globex-app",
        "/dashboard/servers?app=globex-app",
        "/dashboard/servers.json?app=no-such-app",
        "/dashboard/servers.json?app=bad%20id",
    ] {
        let (status, body) = ann.get(path).await;
        assert_eq!(status, 404, "{path}");
        assert!(!body.contains("globex-api"), "{path}: {body}");
    }
    let theirs = operator
        .json("/dashboard/servers.json?app=globex-app")
        .await;
    assert!(entry(&theirs["servers"], &globex_id).is_some());
}

/// Two gateways and a control-plane over NATS: each gateway reports its own servers to the
/// control-plane, with its region; a gateway that dies without a word takes its servers
/// offline after three missed reports.
#[tokio::test]
async fn servers_of_two_gateways_over_nats_and_a_gateway_that_dies() {
    let mut cluster = Cluster::start(WAAS, &shared_url(), 0).await;
    cluster.add_gateway_with(&["--node-report-ms", "200", "--region", "eu-test"]);
    cluster.add_gateway_with(&["--node-report-ms", "200"]);
    let app = cluster.create_app("servers").await;
    let url = format!(
        "{}/v1/admin/apps/servers/servers",
        cluster.control_plane_url()
    );
    let list = || async {
        let (status, list) = waas_test_support::cluster::reqwest_like::Client::new()
            .call("GET", &url, OPERATOR, None)
            .await;
        assert_eq!(status, 200, "{list}");
        list
    };
    let ws = |i: usize| cluster.gateway_http(i).replace("http://", "ws://");
    let (first, first_id) = named_server(&ws(0), &app.id, &app.api_key, "api-eu").await;
    let (_second, second_id) = named_server(&ws(1), &app.id, &app.api_key, "api-other").await;

    let one = until_measured(&first_id, list).await;
    let two = until_measured(&second_id, list).await;
    assert_eq!(one["region"], "eu-test");
    assert_eq!(two["region"], "");
    assert_ne!(one["node"], two["node"], "each on its own gateway");

    let (status, nodes) = cluster.admin("GET", "/v1/admin/nodes", None).await;
    assert_eq!(status, 200);
    let nodes = nodes.as_array().unwrap();
    assert_eq!(nodes.len(), 2, "{nodes:?}");
    assert!(nodes.iter().all(|n| n["online"] == true));
    assert!(nodes.iter().any(|n| n["region"] == "eu-test"));

    first.close().await.unwrap();
    until_offline(&first_id, list).await;

    // Gateway 1 is killed (SIGKILL): no farewell, its reports just stop.
    let mut dead = cluster.gateways.remove(1);
    dead.child.kill().unwrap();
    dead.child.wait().unwrap();
    until_offline(&second_id, list).await;
    let (_, nodes) = cluster.admin("GET", "/v1/admin/nodes", None).await;
    let gone = nodes
        .as_array()
        .unwrap()
        .iter()
        .find(|n| n["node"] == two["node"])
        .unwrap_or_else(|| panic!("the dead node is still listed: {nodes}"));
    assert_eq!(gone["online"], false, "{gone}");
}
