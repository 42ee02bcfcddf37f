//! What is refused at or right after the WebSocket handshake, each with its documented error
//! and close code: a repeated `token` query parameter, an unmasked client frame, an `Origin`
//! outside the app's allow-list (set through the admin API).

use serde_json::json;
use waas_test_support::raw::error_code;
use waas_test_support::{tokens, RawClient, TestServer};

#[tokio::test]
async fn a_repeated_token_query_parameter_is_an_invalid_token() {
    let server = TestServer::start().await;
    let token = tokens::demo("dup", &[">"], &[]);
    let mut c = RawClient::connect(
        server.addr,
        &format!("/v1/apps/demo/ws?token={token}&token={token}"),
        None,
    )
    .await;
    let f = c.json().await;
    assert_eq!(error_code(&f), "invalid_token", "{f}");
    assert!(f.get("id").is_none());
    assert!(f["message"].as_str().unwrap().contains("more than once"));
    assert_eq!(c.close_code().await, 4500);
    // Once, beside other parameters, is fine.
    let mut ok = RawClient::connect(
        server.addr,
        &format!("/v1/apps/demo/ws?v=1&token={token}&x=y"),
        None,
    )
    .await;
    assert_eq!(ok.json().await["op"], "ready");
}

#[tokio::test]
async fn an_unmasked_client_frame_closes_with_1002() {
    let server = TestServer::start().await;
    let token = tokens::demo("unmasked", &[">"], &[]);
    let mut c = RawClient::ready(server.addr, "demo", &token).await;
    c.send_unmasked_text(r#"{"op":"ping","id":1}"#).await;
    assert_eq!(c.close_code().await, 1002);
    // The same frame masked is answered.
    let mut masked = RawClient::ready(server.addr, "demo", &token).await;
    let pong = masked.request(json!({"op": "ping", "id": 1})).await;
    assert_eq!(pong["op"], "pong");
}

#[tokio::test]
async fn allowed_origins_are_set_and_read_through_the_admin_api() {
    let server = TestServer::start().await;
    let (s, body) = server.admin("PATCH",
        "/v1/admin/apps/demo",
        Some(json!({"allowed_origins": ["https://App.Example.com", "https://*.example.org:8443"]})),
    )
    .await;
    assert_eq!(s, 200, "{body}");
    let stored = json!(["https://app.example.com", "https://*.example.org:8443"]);
    assert_eq!(body["allowed_origins"], stored, "stored lower-case");
    let (s, body) = server.admin("GET", "/v1/admin/apps/demo", None).await;
    assert_eq!((s, &body["allowed_origins"]), (200, &stored));
    // A patch without the key leaves it alone.
    let (_, body) = server
        .admin(
            "PATCH",
            "/v1/admin/apps/demo",
            Some(json!({"name": "Demo"})),
        )
        .await;
    assert_eq!(body["allowed_origins"], stored);
    // Entries that could never match an Origin header are refused.
    for bad in ["example.com", "https://example.com/", "ftp://x.test", "*"] {
        let (s, body) = server
            .admin(
                "PATCH",
                "/v1/admin/apps/demo",
                Some(json!({"allowed_origins": [bad]})),
            )
            .await;
        assert_eq!(
            (s, body["error"]["code"].as_str()),
            (400, Some("bad_request")),
            "{bad}: {body}"
        );
    }
    // `[]` allows any origin again.
    let (_, body) = server
        .admin(
            "PATCH",
            "/v1/admin/apps/demo",
            Some(json!({"allowed_origins": []})),
        )
        .await;
    assert_eq!(body["allowed_origins"], json!([]));
}

#[tokio::test]
async fn a_handshake_from_a_foreign_origin_is_refused() {
    let server = TestServer::start().await;
    // Created with its list, so the gateway's first look-up already has it.
    let (s, body) = server
        .admin(
            "POST",
            "/v1/admin/apps",
            Some(json!({
                "id": "guarded",
                "tenant_id": "default",
                "jwt_secret": "guarded-secret",
                "allowed_origins": ["https://app.example.com", "https://*.example.org"],
            })),
        )
        .await;
    assert_eq!(s, 201, "{body}");
    assert_eq!(body["app"]["allowed_origins"][0], "https://app.example.com");
    let key = body["api_key"].as_str().unwrap().to_owned();
    let token = tokens::hs256(
        "guarded-secret",
        "u1",
        Some("guarded"),
        tokens::caps(&[">"], &[">"]),
        3600,
    );
    let path = format!("/v1/apps/guarded/ws?token={token}");

    let mut foreign =
        RawClient::connect_with(server.addr, &path, &[("Origin", "https://evil.test")]).await;
    let f = foreign.json().await;
    assert_eq!(error_code(&f), "forbidden", "{f}");
    assert!(f["message"].as_str().unwrap().contains("evil.test"));
    assert_eq!(foreign.close_code().await, 4503);
    // The credential is not even looked at: a connect frame cannot get past it either.
    let mut later = RawClient::connect_with(
        server.addr,
        "/v1/apps/guarded/ws",
        &[("Origin", "https://example.org")],
    )
    .await;
    assert_eq!(error_code(&later.json().await), "forbidden");
    assert_eq!(later.close_code().await, 4503);

    for origin in [
        "https://app.example.com",
        "https://APP.example.com",
        "https://a.example.org",
    ] {
        let mut ok = RawClient::connect_with(server.addr, &path, &[("Origin", origin)]).await;
        assert_eq!(ok.json().await["op"], "ready", "{origin}");
    }
    // No Origin (not a browser): allowed.
    let mut native = RawClient::connect(server.addr, &path, None).await;
    assert_eq!(native.json().await["op"], "ready");
    // REST with an API key ignores Origin.
    let status = reqwest::Client::new()
        .post(format!("{}/v1/apps/guarded/publish", server.http_url()))
        .bearer_auth(&key)
        .header("Origin", "https://evil.test")
        .json(&json!({"channel": "c", "event": "e", "data": 1}))
        .send()
        .await
        .unwrap()
        .status();
    assert_eq!(status, 200);
    // Apps without a list accept any origin, as before.
    let demo = tokens::demo("any", &[">"], &[]);
    let mut any = RawClient::connect_with(
        server.addr,
        &format!("/v1/apps/demo/ws?token={demo}"),
        &[("Origin", "https://evil.test")],
    )
    .await;
    assert_eq!(any.json().await["op"], "ready");
}
