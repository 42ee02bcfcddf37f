//! Dashboard accounts and app settings over HTTP (docs/dashboard.md, docs/admin.md):
//! invitations, self sign-up, the app settings page (through the admin API's own checks),
//! changing one's password, tenants' admin-API tokens, and tenant isolation on every page and
//! form, against an in-process `waas dev`.

#[path = "support/tenants.rs"]
mod tenants;

#[path = "support/browser.rs"]
mod browser;

use browser::Browser;
use serde_json::{json, Value};
use waas::first_operator::{DEV_EMAIL, DEV_PASSWORD};
use waas_control_plane::dashboard::DashboardConfig;
use waas_control_plane::store::dashboard::DashboardInvitation;
use waas_test_support::TestServer;

/// Tenants `acme` and `globex`, each with an app `<tenant>-app`, and ann@acme.test, a user of
/// acme, signed in.
async fn two_tenants(server: &TestServer) -> Browser {
    tenants::acme_and_globex(server).await;
    tenants::ann_of_acme(server).await;
    let mut ann = Browser::new(server);
    assert_eq!(
        ann.sign_in("ann@acme.test", "ann-password-1").await.status,
        303
    );
    ann
}

async fn operator(server: &TestServer) -> Browser {
    let mut b = Browser::new(server);
    assert_eq!(b.sign_in(DEV_EMAIL, DEV_PASSWORD).await.status, 303);
    b
}

/// An admin API call with a bearer token of our choosing.
async fn api(
    server: &TestServer,
    token: &str,
    method: &str,
    path: &str,
    body: Option<Value>,
) -> (u16, Value) {
    let client = reqwest::Client::new();
    let mut req = client
        .request(
            method.parse().unwrap(),
            format!("{}{path}", server.http_url()),
        )
        .bearer_auth(token);
    if let Some(b) = body {
        req = req.json(&b);
    }
    let res = req.send().await.unwrap();
    let status = res.status().as_u16();
    let text = res.text().await.unwrap();
    (
        status,
        serde_json::from_str(&text).unwrap_or(Value::String(text)),
    )
}

#[tokio::test]
async fn an_invited_user_sets_a_password_once_and_is_signed_in() {
    let server = TestServer::start().await;
    let mut op = operator(&server).await;
    server
        .admin(
            "POST",
            "/v1/admin/tenants",
            Some(json!({"id": "acme", "name": "Acme"})),
        )
        .await;

    let users = op.get("/dashboard/users").await;
    assert_eq!(users.status, 200);
    assert!(users.body.contains(DEV_EMAIL));
    let csrf = users.csrf();
    assert_eq!(
        op.post(
            "/dashboard/users/invite",
            &[("email", "ann@acme.test"), ("tenant", "acme")]
        )
        .await
        .status,
        403,
        "no CSRF token"
    );
    let unknown = op
        .post(
            "/dashboard/users/invite",
            &[
                ("csrf", &csrf),
                ("email", "ann@acme.test"),
                ("tenant", "nope"),
            ],
        )
        .await;
    assert_eq!(unknown.status, 404, "{}", unknown.body);
    let taken = op
        .post(
            "/dashboard/users/invite",
            &[("csrf", &csrf), ("email", DEV_EMAIL), ("tenant", "acme")],
        )
        .await;
    assert_eq!(taken.status, 409, "{}", taken.body);
    let invited = op
        .post(
            "/dashboard/users/invite",
            &[
                ("csrf", &csrf),
                ("email", "Ann@Acme.test"),
                ("tenant", "acme"),
            ],
        )
        .await;
    assert_eq!(invited.status, 201, "{}", invited.body);
    let link = invited.text_of("invite-link");
    let path = link
        .strip_prefix(&server.http_url())
        .unwrap_or_else(|| panic!("link {link} on this server"))
        .to_owned();
    assert!(path.starts_with("/dashboard/invitations/"), "{path}");

    // The invitee, in a browser of their own.
    let mut ann = Browser::new(&server);
    let form = ann.get(&path).await;
    assert_eq!(form.status, 200);
    assert!(form.body.contains("ann@acme.test") && form.body.contains("acme"));
    let csrf = form.csrf();
    let short = ann
        .post(
            &path,
            &[
                ("csrf", &csrf),
                ("password", "short"),
                ("confirm_password", "short"),
            ],
        )
        .await;
    assert_eq!(short.status, 400, "{}", short.body);
    let csrf = short.csrf();
    let mismatch = ann
        .post(
            &path,
            &[
                ("csrf", &csrf),
                ("password", "ann-password-1"),
                ("confirm_password", "ann-password-2"),
            ],
        )
        .await;
    assert_eq!(mismatch.status, 400);
    let csrf = mismatch.csrf();
    // Another site's form (no token of the cookie's) is refused.
    assert_eq!(
        Browser::new(&server)
            .post(
                &path,
                &[
                    ("csrf", &csrf),
                    ("password", "x".repeat(12).as_str()),
                    ("confirm_password", "x".repeat(12).as_str())
                ]
            )
            .await
            .status,
        403
    );
    let accepted = ann
        .post(
            &path,
            &[
                ("csrf", &csrf),
                ("password", "ann-password-1"),
                ("confirm_password", "ann-password-1"),
            ],
        )
        .await;
    assert_eq!(accepted.status, 303, "{}", accepted.body);
    assert_eq!(accepted.location.as_deref(), Some("/dashboard/apps"));
    let apps = ann.get("/dashboard/apps").await;
    assert_eq!(apps.status, 200, "signed in");
    assert!(apps.body.contains("tenant acme"), "{}", apps.body);

    // Single use.
    let again = Browser::new(&server).get(&path).await;
    assert_eq!(again.status, 404);
    // And the password works for signing in.
    assert_eq!(
        Browser::new(&server)
            .sign_in("ann@acme.test", "ann-password-1")
            .await
            .status,
        303
    );
    // A tenant user cannot invite, nor see the users.
    assert_eq!(ann.get("/dashboard/users").await.status, 404);
    let csrf = ann.csrf().await;
    assert_eq!(
        ann.post(
            "/dashboard/users/invite",
            &[("csrf", &csrf), ("email", "eve@x.test"), ("tenant", "acme")]
        )
        .await
        .status,
        404
    );
}

#[tokio::test]
async fn an_expired_invitation_is_refused() {
    let server = TestServer::start().await;
    server
        .admin(
            "POST",
            "/v1/admin/tenants",
            Some(json!({"id": "acme", "name": "Acme"})),
        )
        .await;
    let token = "expired-invitation-token";
    server
        .accounts
        .create_dashboard_invitation(DashboardInvitation {
            token_hash: waas_core::app::hash_api_key(token),
            email: "late@acme.test".into(),
            tenant_id: "acme".into(),
            created_at: 1,
            expires_at: 2,
        })
        .await
        .unwrap();
    let mut b = Browser::new(&server);
    let page = b.get(&format!("/dashboard/invitations/{token}")).await;
    assert_eq!(page.status, 404);
    assert!(page.body.contains("expired"), "{}", page.body);
}

async fn sign_up(b: &mut Browser, csrf: &str, email: &str) -> browser::Page {
    b.post(
        "/dashboard/signup",
        &[
            ("csrf", csrf),
            ("organisation", "Initech"),
            ("email", email),
            ("password", "initech-password"),
            ("confirm_password", "initech-password"),
        ],
    )
    .await
}

#[tokio::test]
async fn self_sign_up_is_off_unless_the_operator_turns_it_on() {
    let off = TestServer::start().await;
    let mut b = Browser::new(&off);
    assert_eq!(b.get("/dashboard/signup").await.status, 404);
    assert_eq!(b.post("/dashboard/signup", &[]).await.status, 404);
    assert!(!b
        .get("/dashboard/login")
        .await
        .body
        .contains("/dashboard/signup"));

    let on = TestServer::with(|s| {
        s.dashboard = DashboardConfig {
            self_signup: true,
            ..DashboardConfig::default()
        }
    })
    .await;
    let mut b = Browser::new(&on);
    assert!(b
        .get("/dashboard/login")
        .await
        .body
        .contains("/dashboard/signup"));
    let form = b.get("/dashboard/signup").await;
    assert_eq!(form.status, 200);
    let done = sign_up(&mut b, &form.csrf(), "peter@initech.test").await;
    assert_eq!(done.status, 303, "{}", done.body);
    let apps = b.get("/dashboard/apps").await;
    assert_eq!(apps.status, 200);
    let (_, tenants) = on.admin("GET", "/v1/admin/tenants", None).await;
    let tenant = tenants
        .as_array()
        .unwrap()
        .iter()
        .find(|t| t["name"] == "Initech")
        .expect("a tenant of its own");
    let id = tenant["id"].as_str().unwrap();
    assert!(apps.body.contains(&format!("tenant {id}")), "{}", apps.body);

    // The email is taken now.
    let mut other = Browser::new(&on);
    let form = other.get("/dashboard/signup").await;
    let taken = sign_up(&mut other, &form.csrf(), "Peter@Initech.test").await;
    assert_eq!(taken.status, 409, "{}", taken.body);
    // Without the form's token: refused.
    let forged = sign_up(&mut Browser::new(&on), "forged", "x@initech.test").await;
    assert_eq!(forged.status, 403);
}

#[tokio::test]
async fn the_settings_page_changes_the_app_through_the_admin_api() {
    let server = TestServer::start().await;
    let mut b = operator(&server).await;
    let page = b.get("/dashboard/apps/demo/settings").await;
    assert_eq!(page.status, 200, "{}", page.body);
    let csrf = page.csrf();
    let post = |action: &str| format!("/dashboard/apps/demo/settings/{action}");
    let app = || async { server.admin("GET", "/v1/admin/apps/demo", None).await.1 };

    let saved = b
        .post(
            &post("limits"),
            &[
                ("csrf", &csrf),
                ("max_connections", "7"),
                ("publish_rate", ""),
            ],
        )
        .await;
    assert_eq!(saved.status, 200, "{}", saved.body);
    assert_eq!(app().await["limits"]["max_connections"], 7);
    let bad = b
        .post(
            &post("limits"),
            &[("csrf", &csrf), ("max_connections", "many")],
        )
        .await;
    assert_eq!(bad.status, 400);

    let saved = b
        .post(
            &post("origins"),
            &[
                ("csrf", &csrf),
                ("origins", "https://A.example.com\nhttps://b.example.com"),
            ],
        )
        .await;
    assert_eq!(saved.status, 200, "{}", saved.body);
    assert_eq!(
        app().await["allowed_origins"],
        json!(["https://a.example.com", "https://b.example.com"])
    );
    let bad = b
        .post(
            &post("origins"),
            &[("csrf", &csrf), ("origins", "not an origin")],
        )
        .await;
    assert_eq!(bad.status, 400, "the admin API's check: {}", bad.body);

    let routes = r#"[{"prefix": "/orders", "service": "orders"}]"#;
    let saved = b
        .post(&post("routes"), &[("csrf", &csrf), ("routes", routes)])
        .await;
    assert_eq!(saved.status, 200, "{}", saved.body);
    assert_eq!(app().await["routes"][0]["prefix"], "/orders");
    let bad = b
        .post(&post("routes"), &[("csrf", &csrf), ("routes", "[{")])
        .await;
    assert_eq!(bad.status, 400);

    let bad = b
        .post(
            &post("jwt-keys"),
            &[("csrf", &csrf), ("jwt_rsa_public_key", "not a pem")],
        )
        .await;
    assert_eq!(bad.status, 400, "{}", bad.body);

    // The HS256 secret: replaced, shown once, and tokens minted here use it.
    let rotated = b.post(&post("jwt-secret"), &[("csrf", &csrf)]).await;
    assert_eq!(rotated.status, 200);
    let secret = rotated.text_of("shown-secret");
    assert!(secret.len() >= 32 && secret != "demo-secret", "{secret}");
    assert!(
        !b.get("/dashboard/apps/demo/settings")
            .await
            .body
            .contains(&secret),
        "shown once"
    );
    let minted = b
        .post(
            &post("token"),
            &[
                ("csrf", &csrf),
                ("sub", "alice"),
                ("subscribe", "chat.* news"),
                ("publish", "chat.*"),
                ("ttl", "600"),
            ],
        )
        .await;
    assert_eq!(minted.status, 200, "{}", minted.body);
    let token = minted.text_of("shown-secret");
    let mut validation = jsonwebtoken::Validation::new(jsonwebtoken::Algorithm::HS256);
    validation.set_audience(&["demo"]);
    let claims: Value = jsonwebtoken::decode(
        &token,
        &jsonwebtoken::DecodingKey::from_secret(secret.as_bytes()),
        &validation,
    )
    .expect("signed with the new secret")
    .claims;
    assert_eq!(claims["sub"], "alice");
    assert_eq!(claims["caps"]["subscribe"], json!(["chat.*", "news"]));
    assert_eq!(claims["caps"]["publish"], json!(["chat.*"]));
    assert_eq!(
        claims["exp"].as_u64().unwrap() - claims["iat"].as_u64().unwrap(),
        600
    );
    for (field, value) in [
        ("ttl", "0"),
        ("ttl", "99999999"),
        ("sub", "server"),
        ("subscribe", "a..b"),
    ] {
        let mut form = vec![("csrf", csrf.as_str()), ("sub", "alice"), ("ttl", "60")];
        form.retain(|(k, _)| *k != field);
        form.push((field, value));
        let refused = b.post(&post("token"), &form).await;
        assert_eq!(refused.status, 400, "{field}={value}: {}", refused.body);
    }

    // API keys: add one (shown once), revoke the old.
    let old_keys = app().await["api_keys"].as_array().unwrap().clone();
    let added = b
        .post(&post("api-key"), &[("csrf", &csrf), ("label", "rotated")])
        .await;
    assert_eq!(added.status, 200);
    assert!(added.text_of("shown-secret").starts_with("wk_"));
    assert_eq!(
        app().await["api_keys"].as_array().unwrap().len(),
        old_keys.len() + 1
    );
    let old = old_keys[0]["id"].as_str().unwrap();
    let revoked = b
        .post(&post("revoke-key"), &[("csrf", &csrf), ("key", old)])
        .await;
    assert_eq!(revoked.status, 200, "{}", revoked.body);
    let keys = app().await["api_keys"].clone();
    assert!(keys.as_array().unwrap().iter().all(|k| k["id"] != old));

    // The Pusher front, off and on.
    assert_eq!(
        b.post(&post("pusher-off"), &[("csrf", &csrf)]).await.status,
        200
    );
    assert_eq!(app().await["pusher_enabled"], false);
    let on = b.post(&post("pusher-on"), &[("csrf", &csrf)]).await;
    assert_eq!(on.status, 200);
    assert!(!on.text_of("shown-secret").is_empty());
    assert_eq!(app().await["pusher_enabled"], true);

    // Webhook endpoints: the admin API's checks apply (a URL it refuses is refused here).
    let bad = b
        .post(
            &post("webhook"),
            &[("csrf", &csrf), ("url", "ftp://x"), ("events", "message")],
        )
        .await;
    assert_eq!(bad.status, 400, "{}", bad.body);
    let added = b
        .post(
            &post("webhook"),
            &[
                ("csrf", &csrf),
                ("url", "https://hooks.example.com/waas"),
                ("events", "channel_occupied"),
                ("events", "channel_vacated"),
            ],
        )
        .await;
    assert_eq!(added.status, 200, "{}", added.body);
    assert!(added.text_of("shown-secret").starts_with("whsec_"));
    let (_, hooks) = server
        .admin("GET", "/v1/admin/apps/demo/webhooks", None)
        .await;
    assert_eq!(
        hooks[0]["events"],
        json!(["channel_occupied", "channel_vacated"])
    );
    let id = hooks[0]["id"].as_str().unwrap();
    let removed = b
        .post(&post("remove-webhook"), &[("csrf", &csrf), ("webhook", id)])
        .await;
    assert_eq!(removed.status, 200);
    let (_, hooks) = server
        .admin("GET", "/v1/admin/apps/demo/webhooks", None)
        .await;
    assert_eq!(hooks, json!([]));

    // No CSRF token: refused, nothing changed.
    let version = app().await["version"].clone();
    assert_eq!(
        b.post(&post("limits"), &[("max_connections", "1")])
            .await
            .status,
        403
    );
    assert_eq!(app().await["version"], version);
}

#[tokio::test]
async fn a_tenant_user_cannot_see_or_touch_another_tenants_app() {
    let server = TestServer::start().await;
    let mut ann = two_tenants(&server).await;
    assert_eq!(
        ann.get("/dashboard/apps/acme-app/settings").await.status,
        200
    );
    let missing = ann.get("/dashboard/apps/no-such-app/settings").await;
    for path in [
        "/dashboard/apps/globex-app",
        "/dashboard/apps/globex-app/settings",
        "/dashboard/apps/demo/settings",
    ] {
        let page = ann.get(path).await;
        assert_eq!(page.status, 404, "{path}");
        assert!(!page.body.contains("globex-app"), "{path}: {}", page.body);
    }
    assert_eq!(missing.status, 404);
    let (_, before) = server.admin("GET", "/v1/admin/apps/globex-app", None).await;
    let key = before["api_keys"][0]["id"].as_str().unwrap().to_owned();
    let csrf = ann.csrf().await;
    let forms: Vec<(&str, Vec<(&str, &str)>)> = vec![
        ("limits", vec![("max_connections", "1")]),
        ("routes", vec![("routes", "[]")]),
        ("origins", vec![("origins", "https://evil.example")]),
        ("jwt-keys", vec![("jwt_rsa_public_key", "")]),
        ("api-key", vec![]),
        ("revoke-key", vec![("key", key.as_str())]),
        ("jwt-secret", vec![]),
        ("pusher-on", vec![]),
        ("pusher-off", vec![]),
        (
            "webhook",
            vec![("url", "https://evil.example/h"), ("events", "message")],
        ),
        ("remove-webhook", vec![("webhook", "we_x")]),
        (
            "token",
            vec![("sub", "eve"), ("subscribe", ">"), ("ttl", "60")],
        ),
    ];
    for (action, fields) in forms {
        let mut form = vec![("csrf", csrf.as_str())];
        form.extend(fields);
        let page = ann
            .post(
                &format!("/dashboard/apps/globex-app/settings/{action}"),
                &form,
            )
            .await;
        assert_eq!(page.status, 404, "{action}: {}", page.body);
        assert!(!page.body.contains("eyJ"), "{action}: no token minted");
        assert_eq!(page.body, missing.body, "{action} reads as a missing app");
    }
    let (_, after) = server.admin("GET", "/v1/admin/apps/globex-app", None).await;
    assert_eq!(before, after, "globex-app untouched");
    let (_, hooks) = server
        .admin("GET", "/v1/admin/apps/globex-app/webhooks", None)
        .await;
    assert_eq!(hooks, json!([]));
    // The tenant's own app works.
    let own = ann
        .post(
            "/dashboard/apps/acme-app/settings/limits",
            &[("csrf", &csrf), ("max_connections", "3")],
        )
        .await;
    assert_eq!(own.status, 200, "{}", own.body);
}

async fn change_password(
    b: &mut Browser,
    csrf: &str,
    old: &str,
    new: &str,
    again: &str,
) -> browser::Page {
    b.post(
        "/dashboard/profile/password",
        &[
            ("csrf", csrf),
            ("old_password", old),
            ("new_password", new),
            ("confirm_password", again),
        ],
    )
    .await
}

#[tokio::test]
async fn changing_the_password_ends_the_other_sessions() {
    let server = TestServer::start().await;
    let mut ann = two_tenants(&server).await;
    let mut elsewhere = Browser::new(&server);
    assert_eq!(
        elsewhere
            .sign_in("ann@acme.test", "ann-password-1")
            .await
            .status,
        303
    );

    let profile = ann.get("/dashboard/profile").await;
    assert_eq!(profile.status, 200);
    let csrf = profile.csrf();
    let wrong = change_password(
        &mut ann,
        &csrf,
        "not-my-password",
        "ann-password-2",
        "ann-password-2",
    )
    .await;
    assert_eq!(wrong.status, 401, "{}", wrong.body);
    let differ = change_password(
        &mut ann,
        &csrf,
        "ann-password-1",
        "ann-password-2",
        "ann-password-3",
    )
    .await;
    assert_eq!(differ.status, 400);
    let short = change_password(&mut ann, &csrf, "ann-password-1", "short", "short").await;
    assert_eq!(short.status, 400);
    assert_eq!(
        elsewhere.get("/dashboard/apps").await.status,
        200,
        "nothing changed yet"
    );

    let changed = change_password(
        &mut ann,
        &csrf,
        "ann-password-1",
        "ann-password-2",
        "ann-password-2",
    )
    .await;
    assert_eq!(changed.status, 303, "{}", changed.body);
    assert!(changed
        .location
        .as_deref()
        .unwrap()
        .starts_with("/dashboard/profile"));
    let page = ann.get("/dashboard/profile?changed=password").await;
    assert_eq!(page.status, 200, "this browser stays signed in");
    assert!(page.body.contains("Password changed"));
    assert_ne!(page.csrf(), csrf, "with a new session");
    assert_eq!(
        elsewhere.get("/dashboard/apps").await.status,
        303,
        "other sessions ended"
    );
    assert_eq!(
        Browser::new(&server)
            .sign_in("ann@acme.test", "ann-password-1")
            .await
            .status,
        401
    );
    assert_eq!(
        Browser::new(&server)
            .sign_in("ann@acme.test", "ann-password-2")
            .await
            .status,
        303
    );
}

#[tokio::test]
async fn a_tenant_token_reaches_only_its_tenants_apps() {
    let server = TestServer::start().await;
    let mut ann = two_tenants(&server).await;
    let csrf = ann.csrf().await;
    let made = ann
        .post(
            "/dashboard/profile/tokens",
            &[("csrf", &csrf), ("label", "ci")],
        )
        .await;
    assert_eq!(made.status, 201, "{}", made.body);
    let token = made.text_of("shown-token");
    assert!(token.starts_with("wat_"), "{token}");
    let profile = ann.get("/dashboard/profile").await;
    assert!(!profile.body.contains(&token), "shown once");
    assert!(profile.body.contains("ci"));

    let (s, apps) = api(&server, &token, "GET", "/v1/admin/apps", None).await;
    assert_eq!(s, 200);
    let ids: Vec<&str> = apps
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a["id"].as_str().unwrap())
        .collect();
    assert_eq!(ids, ["acme-app"]);
    let (_, apps) = api(&server, &token, "GET", "/v1/admin/apps?tenant=globex", None).await;
    assert_eq!(
        apps.as_array().unwrap().len(),
        1,
        "its tenant whatever it asks"
    );
    assert_eq!(
        api(&server, &token, "GET", "/v1/admin/apps/acme-app", None)
            .await
            .0,
        200
    );
    let (s, _) = api(
        &server,
        &token,
        "PATCH",
        "/v1/admin/apps/acme-app",
        Some(json!({"name": "Acme app"})),
    )
    .await;
    assert_eq!(s, 200);

    // Another tenant's app reads exactly as a missing one, whatever the route.
    let (s, missing) = api(&server, &token, "GET", "/v1/admin/apps/nope", None).await;
    assert_eq!(s, 404);
    let (s, theirs) = api(&server, &token, "GET", "/v1/admin/apps/globex-app", None).await;
    assert_eq!(s, 404);
    assert_eq!(
        theirs["error"]["message"]
            .as_str()
            .unwrap()
            .replace("globex-app", "nope"),
        missing["error"]["message"].as_str().unwrap()
    );
    let (_, before) = server.admin("GET", "/v1/admin/apps/globex-app", None).await;
    let calls: Vec<(&str, String, Option<Value>)> = vec![
        (
            "PATCH",
            "/v1/admin/apps/globex-app".into(),
            Some(json!({"name": "pwned"})),
        ),
        ("DELETE", "/v1/admin/apps/globex-app".into(), None),
        (
            "POST",
            "/v1/admin/apps/globex-app/keys".into(),
            Some(json!({})),
        ),
        ("POST", "/v1/admin/apps/globex-app/jwt-secret".into(), None),
        (
            "POST",
            "/v1/admin/apps/globex-app/pusher-secret".into(),
            None,
        ),
        (
            "DELETE",
            "/v1/admin/apps/globex-app/pusher-secret".into(),
            None,
        ),
        ("GET", "/v1/admin/apps/globex-app/webhooks".into(), None),
        (
            "POST",
            "/v1/admin/apps/globex-app/webhooks".into(),
            Some(json!({"url": "https://evil.example", "events": ["message"]})),
        ),
        ("GET", "/v1/admin/apps/globex-app/deliveries".into(), None),
        (
            "DELETE",
            format!(
                "/v1/admin/apps/globex-app/keys/{}",
                before["api_keys"][0]["id"].as_str().unwrap()
            ),
            None,
        ),
    ];
    for (method, path, body) in calls {
        let (s, body) = api(&server, &token, method, &path, body).await;
        assert_eq!(s, 404, "{method} {path}: {body}");
    }
    let (_, after) = server.admin("GET", "/v1/admin/apps/globex-app", None).await;
    assert_eq!(before, after, "globex-app untouched");

    // New apps go to its own tenant only.
    let (s, _) = api(
        &server,
        &token,
        "POST",
        "/v1/admin/apps",
        Some(json!({"id": "sneaky", "tenant_id": "globex"})),
    )
    .await;
    assert_eq!(s, 404);
    let (s, created) = api(
        &server,
        &token,
        "POST",
        "/v1/admin/apps",
        Some(json!({"id": "acme-two", "tenant_id": "acme"})),
    )
    .await;
    assert_eq!(s, 201, "{created}");
    // Nothing outside the apps.
    for (method, path) in [
        ("GET", "/v1/admin/tenants"),
        ("GET", "/v1/admin/tenants/acme"),
        ("DELETE", "/v1/admin/tenants/globex"),
    ] {
        let (s, body) = api(&server, &token, method, path, None).await;
        assert_eq!(s, 403, "{method} {path}: {body}");
        assert_eq!(body["error"]["code"], "forbidden");
    }
    assert_eq!(
        server
            .admin("GET", "/v1/admin/tenants/globex", None)
            .await
            .0,
        200
    );

    // Revoked: refused.
    let profile = ann.get("/dashboard/profile").await;
    let id = profile.field("token");
    let revoked = ann
        .post(
            "/dashboard/profile/tokens/revoke",
            &[("csrf", &csrf), ("token", &id)],
        )
        .await;
    assert_eq!(revoked.status, 200);
    assert_eq!(
        api(&server, &token, "GET", "/v1/admin/apps", None).await.0,
        401
    );

    // Operators have the operator token; they make no tenant token.
    let mut op = operator(&server).await;
    let csrf = op.csrf().await;
    let refused = op
        .post(
            "/dashboard/profile/tokens",
            &[("csrf", &csrf), ("label", "x")],
        )
        .await;
    assert_eq!(refused.status, 400);
    // A user cannot revoke another's token.
    let ann_csrf = ann.csrf().await;
    let made = ann
        .post(
            "/dashboard/profile/tokens",
            &[("csrf", &ann_csrf), ("label", "keep")],
        )
        .await;
    let kept = made.text_of("shown-token");
    let id = ann.get("/dashboard/profile").await.field("token");
    assert_eq!(
        op.post(
            "/dashboard/profile/tokens/revoke",
            &[("csrf", &csrf), ("token", &id)]
        )
        .await
        .status,
        404
    );
    assert_eq!(
        api(&server, &kept, "GET", "/v1/admin/apps", None).await.0,
        200
    );
}
