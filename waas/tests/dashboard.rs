//! The browser dashboard over HTTP (docs/dashboard.md): sign-in, CSRF, session expiry, sign-in
//! limits and tenant isolation, against an in-process `waas dev`. A small cookie jar of our
//! own follows `Set-Cookie` as a browser would; redirects are not followed, so each answer's
//! status and `Location` can be checked.

#[path = "support/browser.rs"]
mod browser;

use browser::Browser;
use waas::first_operator::{DEV_EMAIL, DEV_PASSWORD};
use waas_control_plane::dashboard::accounts::create_user;
use waas_control_plane::dashboard::DashboardConfig;
use waas_control_plane::store::dashboard::{DashboardSession, Role};
use waas_test_support::TestServer;

async fn server_with(config: DashboardConfig) -> TestServer {
    TestServer::with(|s| s.dashboard = config).await
}

#[tokio::test]
async fn sign_in_lists_and_creates_apps_then_signs_out() {
    let server = TestServer::start().await;
    let mut b = Browser::new(&server);

    // Not signed in: sent to the sign-in page.
    let page = b.get("/dashboard/apps").await;
    assert_eq!(page.status, 303);
    assert_eq!(page.location.as_deref(), Some("/dashboard/login"));

    let page = b.sign_in(DEV_EMAIL, DEV_PASSWORD).await;
    assert_eq!(page.status, 303, "{}", page.body);
    assert_eq!(page.location.as_deref(), Some("/dashboard/apps"));
    let session = page
        .set_cookies
        .iter()
        .find(|c| c.starts_with("waas_session="))
        .expect("session cookie");
    for attr in [
        "HttpOnly",
        "SameSite=Strict",
        "Path=/dashboard",
        "Max-Age=43200",
    ] {
        assert!(session.contains(attr), "{attr} missing: {session}");
    }
    assert!(!session.contains("Secure"), "not configured: {session}");

    let apps = b.get("/dashboard/apps").await;
    assert_eq!(apps.status, 200);
    assert!(apps.body.contains(">demo</a>"), "{}", apps.body);
    assert!(apps.body.contains(DEV_EMAIL));

    let csrf = apps.csrf();
    let created = b
        .post(
            "/dashboard/apps",
            &[
                ("csrf", &csrf),
                ("id", "chat"),
                ("name", "Chat <b>"),
                ("tenant", "default"),
            ],
        )
        .await;
    assert_eq!(created.status, 201, "{}", created.body);
    assert!(
        created.body.contains("created-api-key"),
        "secrets shown once"
    );
    assert!(
        created.body.contains("Chat &lt;b&gt;"),
        "escaped: {}",
        created.body
    );
    let (status, app) = server.admin("GET", "/v1/admin/apps/chat", None).await;
    assert_eq!(status, 200);
    assert_eq!(app["tenant_id"], "default");
    assert_eq!(app["api_keys"].as_array().unwrap().len(), 1);

    // The admin API's checks apply: a taken id is a conflict.
    let again = b
        .post(
            "/dashboard/apps",
            &[("csrf", &csrf), ("id", "chat"), ("tenant", "default")],
        )
        .await;
    assert_eq!(again.status, 409, "{}", again.body);

    let out = b.post("/dashboard/logout", &[("csrf", &csrf)]).await;
    assert_eq!(out.status, 303);
    assert_eq!(out.location.as_deref(), Some("/dashboard/login"));
    assert_eq!(b.get("/dashboard/apps").await.status, 303, "signed out");
}

#[tokio::test]
async fn wrong_password_is_refused() {
    let server = TestServer::start().await;
    let mut b = Browser::new(&server);
    let page = b.sign_in(DEV_EMAIL, "not-the-password").await;
    assert_eq!(page.status, 401);
    assert!(page.body.contains("Wrong email or password."));
    assert!(!b.cookies.contains_key("waas_session"));
    let page = b.sign_in("nobody@example.com", DEV_PASSWORD).await;
    assert_eq!(page.status, 401, "an unknown email reads the same");
    assert!(page.body.contains("Wrong email or password."));
    assert_eq!(b.get("/dashboard/apps").await.status, 303);
}

#[tokio::test]
async fn forms_without_the_csrf_token_are_refused() {
    let server = TestServer::start().await;
    let mut b = Browser::new(&server);

    // Sign-in form: the token must match the sign-in cookie.
    b.get("/dashboard/login").await;
    let page = b
        .post(
            "/dashboard/login",
            &[("email", DEV_EMAIL), ("password", DEV_PASSWORD)],
        )
        .await;
    assert_eq!(page.status, 403);
    let page = b
        .post(
            "/dashboard/login",
            &[
                ("csrf", "forged"),
                ("email", DEV_EMAIL),
                ("password", DEV_PASSWORD),
            ],
        )
        .await;
    assert_eq!(page.status, 403);

    assert_eq!(b.sign_in(DEV_EMAIL, DEV_PASSWORD).await.status, 303);
    let csrf = b.csrf().await;
    let missing = b
        .post(
            "/dashboard/apps",
            &[("id", "nocsrf"), ("tenant", "default")],
        )
        .await;
    assert_eq!(missing.status, 403);
    let wrong = b
        .post(
            "/dashboard/apps",
            &[("csrf", "x"), ("id", "nocsrf"), ("tenant", "default")],
        )
        .await;
    assert_eq!(wrong.status, 403);
    assert_eq!(
        server.admin("GET", "/v1/admin/apps/nocsrf", None).await.0,
        404,
        "no app made"
    );
    // Another session's token is not this one's.
    let mut other = Browser::new(&server);
    assert_eq!(other.sign_in(DEV_EMAIL, DEV_PASSWORD).await.status, 303);
    let theirs = other.csrf().await;
    assert_ne!(theirs, csrf);
    assert_eq!(
        b.post("/dashboard/logout", &[("csrf", &theirs)])
            .await
            .status,
        403
    );
    assert_eq!(b.post("/dashboard/logout", &[]).await.status, 403);
    assert_eq!(
        b.get("/dashboard/apps").await.status,
        200,
        "still signed in"
    );
}

#[tokio::test]
async fn expired_session_goes_to_sign_in() {
    let server = server_with(DashboardConfig {
        session_ttl_secs: 60,
        ..Default::default()
    })
    .await;
    let mut b = Browser::new(&server);
    let page = b.sign_in(DEV_EMAIL, DEV_PASSWORD).await;
    assert!(
        page.set_cookies.iter().any(|c| c.contains("Max-Age=60")),
        "configured lifetime: {:?}",
        page.set_cookies
    );
    assert_eq!(b.get("/dashboard/apps").await.status, 200);

    // A session whose time is up, as the store holds it after its lifetime.
    let user = server
        .accounts
        .dashboard_user_by_email(DEV_EMAIL)
        .await
        .unwrap()
        .unwrap();
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64;
    let token = "expired-session-token";
    server
        .accounts
        .create_dashboard_session(DashboardSession {
            token_hash: waas_core::app::hash_api_key(token),
            user_id: user.id,
            csrf_token: "c".into(),
            created_at: now - 120,
            expires_at: now - 60,
        })
        .await
        .unwrap();
    b.cookies.insert("waas_session".into(), token.into());
    let page = b.get("/dashboard/apps").await;
    assert_eq!(page.status, 303);
    assert_eq!(page.location.as_deref(), Some("/dashboard/login"));
    assert_eq!(
        b.post("/dashboard/apps", &[("csrf", "c"), ("id", "late")])
            .await
            .status,
        303,
        "an expired session cannot post either"
    );
}

#[tokio::test]
async fn failed_sign_ins_are_limited_per_account_and_per_address() {
    let server = server_with(DashboardConfig {
        login_max_failures_per_account: 3,
        login_max_failures_per_address: 5,
        ..Default::default()
    })
    .await;
    let mut b = Browser::new(&server);
    for _ in 0..3 {
        assert_eq!(b.sign_in(DEV_EMAIL, "wrong-password").await.status, 401);
    }
    let blocked = b.sign_in(DEV_EMAIL, DEV_PASSWORD).await;
    assert_eq!(
        blocked.status, 429,
        "even the right password, while blocked"
    );
    assert!(blocked.body.contains("Too many failed sign-ins"));
    assert!(!b.cookies.contains_key("waas_session"));

    // Two more failures on other accounts use up the address's five.
    for email in ["a@example.com", "b@example.com"] {
        assert_eq!(b.sign_in(email, "wrong-password").await.status, 401);
    }
    assert_eq!(
        b.sign_in("c@example.com", "whatever-pass").await.status,
        429
    );
}

#[tokio::test]
async fn tenant_users_see_only_their_tenant() {
    let server = TestServer::start().await;
    for t in ["acme", "globex"] {
        let (s, _) = server
            .admin(
                "POST",
                "/v1/admin/tenants",
                Some(serde_json::json!({"id": t, "name": t})),
            )
            .await;
        assert_eq!(s, 201);
        let (s, _) = server
            .admin(
                "POST",
                "/v1/admin/apps",
                Some(serde_json::json!({"id": format!("{t}-app"), "tenant_id": t})),
            )
            .await;
        assert_eq!(s, 201);
    }
    create_user(
        server.accounts.as_ref(),
        "ann@acme.test",
        "ann-password-1",
        Role::Tenant("acme".into()),
    )
    .await
    .unwrap();

    let mut b = Browser::new(&server);
    assert_eq!(
        b.sign_in("ann@acme.test", "ann-password-1").await.status,
        303
    );
    let apps = b.get("/dashboard/apps").await;
    assert!(apps.body.contains("acme-app"));
    assert!(!apps.body.contains("globex-app"), "{}", apps.body);
    assert!(!apps.body.contains(">demo<"), "{}", apps.body);
    assert!(!apps.body.contains("name=\"tenant\""), "no tenant choice");

    assert_eq!(b.get("/dashboard/apps/acme-app").await.status, 200);
    let theirs = b.get("/dashboard/apps/globex-app").await;
    let missing = b.get("/dashboard/apps/no-such-app").await;
    assert_eq!(theirs.status, 404);
    assert_eq!(missing.status, 404);
    assert_eq!(
        theirs.body, missing.body,
        "another tenant's app reads as missing"
    );

    // A tenant sent in the form is ignored: the app goes to the user's tenant.
    let csrf = apps.csrf();
    let created = b
        .post(
            "/dashboard/apps",
            &[("csrf", &csrf), ("id", "sneaky"), ("tenant", "globex")],
        )
        .await;
    assert_eq!(created.status, 201, "{}", created.body);
    let (_, app) = server.admin("GET", "/v1/admin/apps/sneaky", None).await;
    assert_eq!(app["tenant_id"], "acme");
}

/// `waas admin create-user` with the password on standard input, as docs/dashboard.md shows.
fn create_user_cli(store: &std::path::Path, args: &[&str], password: &str) -> std::process::Output {
    use std::io::Write;
    let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_waas"))
        .args(["admin", "create-user", "--store"])
        .arg(store)
        .args(args)
        .env_remove("WAAS_DASHBOARD_PASSWORD")
        .env_remove("WAAS_DATABASE_URL")
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    writeln!(child.stdin.take().unwrap(), "{password}").unwrap();
    child.wait_with_output().unwrap()
}

#[tokio::test]
async fn admin_create_user_makes_an_operator_who_can_sign_in() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("dev.db");
    let out = create_user_cli(
        &db,
        &["--email", "Ops@Example.com"],
        "a long enough password",
    );
    assert!(out.status.success(), "{out:?}");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(stdout.contains("ops@example.com"), "{stdout}");
    assert!(
        !stdout.contains("a long enough password")
            && !String::from_utf8_lossy(&out.stderr).contains("a long enough password"),
        "the password is never printed"
    );

    let short = create_user_cli(&db, &["--email", "b@example.com"], "short");
    assert!(!short.status.success());
    assert!(String::from_utf8_lossy(&short.stderr).contains("at least 12 characters"));
    let taken = create_user_cli(
        &db,
        &["--email", "ops@example.com"],
        "another long password",
    );
    assert!(!taken.status.success());
    assert!(String::from_utf8_lossy(&taken.stderr).contains("already exists"));
    let no_tenant = create_user_cli(
        &db,
        &["--email", "t@example.com", "--tenant", "nope"],
        "a long enough password",
    );
    assert!(!no_tenant.status.success());
    assert!(String::from_utf8_lossy(&no_tenant.stderr).contains("tenant nope not found"));

    // `waas dev` on that file: the operator signs in.
    let server = TestServer::with(|s| s.store = db.clone()).await;
    let mut b = Browser::new(&server);
    assert_eq!(
        b.sign_in("ops@example.com", "a long enough password")
            .await
            .status,
        303
    );
    assert_eq!(b.get("/dashboard/apps").await.status, 200);
}

#[tokio::test]
async fn first_operator_comes_from_the_environment() {
    let password = "boss-password-from-env";
    let (mut server, output) = waas_test_support::server::ChildServer::spawn_logged(
        env!("CARGO_BIN_EXE_waas"),
        &["dev", "--listen", "127.0.0.1:0", "--store", ":memory:"],
        &[
            ("WAAS_DASHBOARD_ADMIN_EMAIL", "boss@example.com"),
            ("WAAS_DASHBOARD_ADMIN_PASSWORD", password),
            ("WAAS_LOG", "debug"),
        ],
    );
    let mut b = Browser::at(format!("http://{}", server.addr));
    assert_eq!(b.sign_in("boss@example.com", password).await.status, 303);
    assert_eq!(b.get("/dashboard/apps").await.status, 200);
    assert_eq!(
        b.sign_in(DEV_EMAIL, DEV_PASSWORD).await.status,
        401,
        "no dev login when an operator is configured"
    );
    server.terminate();
    let said = output.lock().unwrap().clone();
    assert!(
        said.contains("/dashboard"),
        "the banner shows the dashboard: {said}"
    );
    assert!(
        !said.contains(password),
        "the password is never printed or logged: {said}"
    );
    assert!(!said.contains(DEV_PASSWORD), "{said}");
}
