//! Pusher credentials through the admin API of `waas dev`: a new app's secret is shown once,
//! rotations and the client-events switch reach the gateway through the app directory (the path
//! a cluster uses), no read shows the secret, and another tenant's credentials reach nothing.

use serde_json::{json, Value};
use std::time::Duration;
use waas::settings::{AppSettings, PusherAppSettings};
use waas_core::app::PusherSettings;
use waas_gateway::pusher::auth as pusher_auth;
use waas_test_support::cluster::reqwest_like::Client;
use waas_test_support::poll::eventually;
use waas_test_support::server::ChildServer;
use waas_test_support::{tokens, RawClient, TestServer};

/// The app as the gateway holds it (asked of the control-plane on first use, then kept up to
/// date by change announcements).
async fn gateway_pusher(server: &TestServer, app: &str) -> Option<PusherSettings> {
    let app = server
        .gateway
        .apps
        .resolve(app)
        .await
        .expect("directory answers")
        .expect("app exists");
    app.config.pusher.clone()
}

/// Waits until the gateway's copy of `app` has the Pusher settings `want`.
async fn gateway_has(server: &TestServer, app: &str, want: Option<PusherSettings>) {
    eventually(
        Duration::from_secs(5),
        Duration::from_millis(10),
        || format!("gateway never got {want:?} for {app}"),
        || {
            let want = want.clone();
            async move { (gateway_pusher(server, app).await == want).then_some(()) }
        },
    )
    .await;
}

fn pusher(secret: &str, client_events: bool) -> Option<PusherSettings> {
    Some(PusherSettings {
        secret: secret.into(),
        client_events,
    })
}

async fn create(server: &TestServer, tenant: &str, id: &str, extra: Value) -> Value {
    let (s, t) = server
        .admin(
            "POST",
            "/v1/admin/tenants",
            Some(json!({"id": tenant, "name": tenant})),
        )
        .await;
    assert!(s == 201 || s == 409, "{t}");
    let mut body = json!({"id": id, "tenant_id": tenant});
    body.as_object_mut()
        .unwrap()
        .extend(extra.as_object().unwrap().clone());
    let (s, created) = server.admin("POST", "/v1/admin/apps", Some(body)).await;
    assert_eq!(s, 201, "{created}");
    created
}

#[tokio::test]
async fn a_new_app_has_the_pusher_front_off_until_it_asks() {
    let server = TestServer::start().await;
    let plain = create(&server, "acme", "native", json!({})).await;
    assert!(plain.get("pusher_secret").is_none(), "{plain}");
    assert_eq!(plain["app"]["pusher_enabled"], false);
    assert_eq!(gateway_pusher(&server, "native").await, None);
    // Without the opt-in no Pusher client reaches the app's public channels anonymously.
    let mut ws = RawClient::connect_with(server.addr, "/app/native?protocol=7", &[]).await;
    let first = ws.json().await;
    assert_eq!(first["event"], "pusher:error", "{first}");
    assert_eq!(first["data"]["code"], 4003, "{first}");
    assert_eq!(ws.close_code().await, 4003);
    // Nor the Pusher HTTP API.
    let url = format!("{}/apps/native/channels", server.http_url());
    let status = reqwest::get(url).await.unwrap().status();
    assert_eq!(status, 404);
}

#[tokio::test]
async fn a_new_app_gets_a_pusher_secret_shown_only_at_creation() {
    let server = TestServer::start().await;
    let created = create(&server, "acme", "shop", json!({"pusher": true})).await;
    let secret = created["pusher_secret"].as_str().unwrap().to_owned();
    assert_eq!(secret.len(), 40, "{secret}");
    assert!(secret.chars().all(|c| c.is_ascii_alphanumeric()));
    assert_eq!(created["app"]["pusher_enabled"], true);
    assert_eq!(created["app"]["pusher_client_events"], false);
    // Two apps never share one.
    let other = create(&server, "acme", "shop2", json!({"pusher": true})).await;
    assert_ne!(other["pusher_secret"], created["pusher_secret"]);

    for path in [
        "/v1/admin/apps/shop",
        "/v1/admin/apps",
        "/v1/admin/apps?tenant=acme",
    ] {
        let (s, shown) = server.admin("GET", path, None).await;
        assert_eq!(s, 200);
        assert!(
            !shown.to_string().contains(&secret),
            "{path} shows it: {shown}"
        );
    }
    let (_, shown) = server.admin("GET", "/v1/admin/apps/shop", None).await;
    assert_eq!(
        (&shown["pusher_enabled"], &shown["pusher_client_events"]),
        (&json!(true), &json!(false))
    );
    assert_eq!(
        gateway_pusher(&server, "shop").await,
        pusher(&secret, false)
    );

    // A secret and the switch given at creation are taken as they are.
    let given = create(
        &server,
        "acme",
        "given",
        json!({"pusher_secret": "my-own-secret", "pusher_client_events": true}),
    )
    .await;
    assert_eq!(given["pusher_secret"], "my-own-secret");
    assert_eq!(given["app"]["pusher_client_events"], true);
    assert_eq!(
        gateway_pusher(&server, "given").await,
        pusher("my-own-secret", true)
    );
    let (s, e) = server
        .admin(
            "POST",
            "/v1/admin/apps",
            Some(json!({"id": "empty", "tenant_id": "acme", "pusher_secret": ""})),
        )
        .await;
    assert_eq!((s, e["error"]["code"].as_str()), (400, Some("bad_request")));
    assert!(
        e["error"]["message"]
            .as_str()
            .unwrap()
            .contains("pusher_secret"),
        "{e}"
    );
}

#[tokio::test]
async fn a_rotated_pusher_secret_replaces_the_old_one_on_the_gateway() {
    let server = TestServer::start().await;
    // The demo app's, from `waas dev`'s settings, already held by the gateway.
    assert_eq!(
        gateway_pusher(&server, "demo").await,
        pusher("demo-pusher-secret", false)
    );
    let (s, rotated) = server
        .admin("POST", "/v1/admin/apps/demo/pusher-secret", None)
        .await;
    assert_eq!(s, 200, "{rotated}");
    let new = rotated["pusher_secret"].as_str().unwrap().to_owned();
    assert_eq!(new.len(), 40);
    assert_ne!(new, "demo-pusher-secret");
    assert_eq!(rotated["app"]["pusher_enabled"], true);
    // The old secret is gone from the gateway, the new one is what it checks with.
    gateway_has(&server, "demo", pusher(&new, false)).await;

    // A chosen secret; an empty one is refused and changes nothing.
    let (s, rotated) = server
        .admin(
            "POST",
            "/v1/admin/apps/demo/pusher-secret",
            Some(json!({"pusher_secret": "chosen"})),
        )
        .await;
    assert_eq!(
        (s, rotated["pusher_secret"].as_str()),
        (200, Some("chosen"))
    );
    gateway_has(&server, "demo", pusher("chosen", false)).await;
    let (s, e) = server
        .admin(
            "POST",
            "/v1/admin/apps/demo/pusher-secret",
            Some(json!({"pusher_secret": ""})),
        )
        .await;
    assert_eq!((s, e["error"]["code"].as_str()), (400, Some("bad_request")));
    let (s, e) = server
        .admin(
            "POST",
            "/v1/admin/apps/demo/pusher-secret",
            Some(json!({"secret": "wrong field"})),
        )
        .await;
    assert_eq!((s, e["error"]["code"].as_str()), (400, Some("bad_request")));
    assert_eq!(
        gateway_pusher(&server, "demo").await,
        pusher("chosen", false)
    );
    let (s, e) = server
        .admin("POST", "/v1/admin/apps/nope/pusher-secret", None)
        .await;
    assert_eq!((s, e["error"]["code"].as_str()), (404, Some("not_found")));

    // Removed: the gateway's copy has no Pusher settings, so the Pusher front refuses the app.
    let (s, app) = server
        .admin("DELETE", "/v1/admin/apps/demo/pusher-secret", None)
        .await;
    assert_eq!((s, &app["pusher_enabled"]), (200, &json!(false)), "{app}");
    gateway_has(&server, "demo", None).await;
    // And given a new one again.
    let (s, rotated) = server
        .admin("POST", "/v1/admin/apps/demo/pusher-secret", None)
        .await;
    assert_eq!(s, 200);
    let again = rotated["pusher_secret"].as_str().unwrap();
    gateway_has(&server, "demo", pusher(again, false)).await;
}

#[tokio::test]
async fn the_client_events_switch_reaches_the_gateway() {
    let server = TestServer::start().await;
    let patch = |on: bool| {
        let server = &server;
        async move {
            server
                .admin(
                    "PATCH",
                    "/v1/admin/apps/demo",
                    Some(json!({"pusher_client_events": on})),
                )
                .await
        }
    };
    let (s, app) = patch(true).await;
    assert_eq!(
        (s, &app["pusher_client_events"]),
        (200, &json!(true)),
        "{app}"
    );
    gateway_has(&server, "demo", pusher("demo-pusher-secret", true)).await;
    // A rotation keeps it.
    let (_, rotated) = server
        .admin("POST", "/v1/admin/apps/demo/pusher-secret", None)
        .await;
    assert_eq!(rotated["app"]["pusher_client_events"], true);
    let new = rotated["pusher_secret"].as_str().unwrap().to_owned();
    gateway_has(&server, "demo", pusher(&new, true)).await;
    let (s, app) = patch(false).await;
    assert_eq!((s, &app["pusher_client_events"]), (200, &json!(false)));
    gateway_has(&server, "demo", pusher(&new, false)).await;
    let (s, e) = server
        .admin(
            "PATCH",
            "/v1/admin/apps/demo",
            Some(json!({"pusher_client_events": "yes"})),
        )
        .await;
    assert_eq!((s, e["error"]["code"].as_str()), (400, Some("bad_request")));
}

/// Tenants hold only their apps' credentials (API keys, JWTs, Pusher secrets); the admin API
/// takes the operator token alone. None of tenant A's credentials reads or rotates tenant B's
/// Pusher secret, and A's own rotation leaves B's alone.
#[tokio::test]
async fn another_tenants_credentials_cannot_read_or_rotate_a_pusher_secret() {
    let server = TestServer::start().await;
    let a = create(&server, "tenant-a", "app-a", json!({"pusher": true})).await;
    let b = create(&server, "tenant-b", "app-b", json!({"pusher": true})).await;
    let b_secret = b["pusher_secret"].as_str().unwrap().to_owned();
    let a_token = tokens::hs256(
        a["jwt_secret"].as_str().unwrap(),
        "mallory",
        Some("app-a"),
        tokens::caps(&[">"], &[">"]),
        60,
    );
    let a_credentials = [
        a["api_key"].as_str().unwrap().to_owned(),
        a["jwt_secret"].as_str().unwrap().to_owned(),
        a["pusher_secret"].as_str().unwrap().to_owned(),
        a_token,
        // B's own app credentials do not open the admin API either.
        b["api_key"].as_str().unwrap().to_owned(),
    ];
    let http = Client::new();
    let base = server.http_url();
    for credential in &a_credentials {
        for (method, path, body) in [
            ("GET", "/v1/admin/apps/app-b", None),
            ("GET", "/v1/admin/apps?tenant=tenant-b", None),
            ("POST", "/v1/admin/apps/app-b/pusher-secret", None),
            (
                "POST",
                "/v1/admin/apps/app-b/pusher-secret",
                Some(json!({"pusher_secret": "mallory-knows-this"})),
            ),
            ("DELETE", "/v1/admin/apps/app-b/pusher-secret", None),
            (
                "PATCH",
                "/v1/admin/apps/app-b",
                Some(json!({"pusher_client_events": true})),
            ),
        ] {
            let (s, answer) = http
                .call(method, &format!("{base}{path}"), credential, body)
                .await;
            assert_eq!(s, 401, "{method} {path}: {answer}");
            assert_eq!(answer["error"]["code"], "unauthorized");
            assert!(!answer.to_string().contains(&b_secret), "{answer}");
        }
    }
    // App A's own rotation, by the operator, touches only A.
    let (s, _) = server
        .admin("POST", "/v1/admin/apps/app-a/pusher-secret", None)
        .await;
    assert_eq!(s, 200);
    let stored = server
        .store
        .get_app(&waas_protocol::AppId::parse("app-b").unwrap())
        .await
        .unwrap();
    assert_eq!(stored.pusher_secret.as_deref(), Some(b_secret.as_str()));
    assert!(!stored.pusher_client_events);
    assert_eq!(
        gateway_pusher(&server, "app-b").await,
        pusher(&b_secret, false)
    );
}

fn app_with_pusher(id: &str, pusher: Option<PusherAppSettings>) -> AppSettings {
    AppSettings {
        id: id.into(),
        api_keys: vec![format!("{id}-key")],
        jwt_secret: None,
        jwt_rsa_public_key_file: None,
        jwt_ec_public_key_file: None,
        limits: Default::default(),
        routes: None,
        pusher,
    }
}

/// `[apps.pusher]` sets an app's credentials; an app declared without it has none (the Pusher
/// front refuses it) until the admin API gives it one.
#[tokio::test]
async fn dev_settings_declare_pusher_credentials() {
    let server = TestServer::with(|s| {
        s.pusher_secret = "demo-pusher-from-settings".into();
        s.apps.push(app_with_pusher(
            "chat",
            Some(PusherAppSettings {
                secret: "chat-pusher-secret".into(),
                client_events: true,
            }),
        ));
        s.apps.push(app_with_pusher("plain", None));
    })
    .await;
    assert_eq!(
        gateway_pusher(&server, "demo").await,
        pusher("demo-pusher-from-settings", false)
    );
    assert_eq!(
        gateway_pusher(&server, "chat").await,
        pusher("chat-pusher-secret", true)
    );
    assert_eq!(gateway_pusher(&server, "plain").await, None);
    let (_, shown) = server.admin("GET", "/v1/admin/apps/plain", None).await;
    assert_eq!(shown["pusher_enabled"], false);
}

/// The banner prints the demo app's Pusher key (its id) and secret, as the README shows; a
/// secret rotated through the admin API survives a restart when the settings declare none.
#[tokio::test]
async fn dev_prints_the_pusher_credentials_and_keeps_a_rotated_secret() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("dev.db");
    let db = db.to_str().unwrap();
    let config = dir.path().join("waas.toml");
    std::fs::write(
        &config,
        "[[apps]]\nid = \"kept\"\napi_keys = [\"kept-key\"]\n",
    )
    .unwrap();
    let args = [
        "dev",
        "--listen",
        "127.0.0.1:0",
        "--store",
        db,
        "--config",
        config.to_str().unwrap(),
    ];
    let (server, output) =
        ChildServer::spawn_logged(env!("CARGO_BIN_EXE_waas"), &args, &[("WAAS_LOG", "warn")]);
    let banner = output.lock().unwrap().clone();
    assert!(
        banner.contains("\n  Pusher      key demo  secret demo-pusher-secret\n"),
        "{banner}"
    );
    let (s, rotated) = Client::new()
        .call(
            "POST",
            &format!("http://{}/v1/admin/apps/kept/pusher-secret", server.addr),
            waas::settings::DEV_OPERATOR_TOKEN,
            None,
        )
        .await;
    assert_eq!(s, 200, "{rotated}");
    drop(server);
    let server = ChildServer::spawn(env!("CARGO_BIN_EXE_waas"), &args);
    let (s, shown) = Client::new()
        .call(
            "GET",
            &format!("http://{}/v1/admin/apps/kept", server.addr),
            waas::settings::DEV_OPERATOR_TOKEN,
            None,
        )
        .await;
    assert_eq!(
        (s, &shown["pusher_enabled"]),
        (200, &json!(true)),
        "{shown}"
    );
}

/// Subscribes a new Pusher connection of `demo` to `private-room`, authorized with `secret`;
/// returns the event answering the subscription.
async fn private_subscribe(server: &TestServer, secret: &str) -> Value {
    let mut raw = RawClient::connect(
        server.addr,
        "/app/demo?protocol=7&client=js&version=8.4.0",
        None,
    )
    .await;
    let established = raw.json().await;
    assert_eq!(
        established["event"], "pusher:connection_established",
        "{established}"
    );
    let data: Value = serde_json::from_str(established["data"].as_str().unwrap()).unwrap();
    let socket_id = data["socket_id"].as_str().unwrap();
    let auth = pusher_auth::sign(
        "demo",
        secret,
        &pusher_auth::channel_message(socket_id, "private-room", None),
    );
    raw.send(&json!({
        "event": "pusher:subscribe",
        "data": {"channel": "private-room", "auth": auth},
    }))
    .await;
    raw.json().await
}

/// On the Pusher front itself: once rotated, a channel authorization signed with the old secret
/// is refused and one signed with the new secret is accepted.
#[tokio::test]
async fn the_pusher_front_refuses_the_old_secret_after_a_rotation() {
    let server = TestServer::start().await;
    let ok = private_subscribe(&server, "demo-pusher-secret").await;
    assert_eq!(
        ok["event"], "pusher_internal:subscription_succeeded",
        "{ok}"
    );
    let (s, rotated) = server
        .admin("POST", "/v1/admin/apps/demo/pusher-secret", None)
        .await;
    assert_eq!(s, 200, "{rotated}");
    let new = rotated["pusher_secret"].as_str().unwrap().to_owned();
    gateway_has(&server, "demo", pusher(&new, false)).await;
    let refused = private_subscribe(&server, "demo-pusher-secret").await;
    assert_eq!(refused["event"], "pusher:subscription_error", "{refused}");
    let ok = private_subscribe(&server, &new).await;
    assert_eq!(
        ok["event"], "pusher_internal:subscription_succeeded",
        "{ok}"
    );
}
