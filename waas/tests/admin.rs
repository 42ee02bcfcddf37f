//! The admin API of `waas dev`: tenants, apps, keys and secrets, and their effect on what the
//! gateway accepts — through the same directory path a cluster uses.

use serde_json::json;
use waas_test_support::cluster::reqwest_like::Client;
use waas_test_support::server::ChildServer;
use waas_test_support::{tokens, RawClient, TestServer};

const OPERATOR: &str = "dev-operator-token";

async fn publish(server: &TestServer, app: &str, key: &str) -> u16 {
    reqwest::Client::new()
        .post(format!("{}/v1/apps/{app}/publish", server.http_url()))
        .bearer_auth(key)
        .json(&json!({"channel": "c", "event": "e", "data": 1}))
        .send()
        .await
        .unwrap()
        .status()
        .as_u16()
}

#[tokio::test]
async fn operator_token_is_required() {
    let server = TestServer::start().await;
    let (s, body) = Client::new()
        .call(
            "GET",
            &format!("{}/v1/admin/apps", server.http_url()),
            "wrong",
            None,
        )
        .await;
    assert_eq!(s, 401);
    assert_eq!(body["error"]["code"], "unauthorized");
}

#[tokio::test]
async fn tenants_and_apps_lifecycle() {
    let server = TestServer::start().await;
    let (s, t) = server
        .admin(
            "POST",
            "/v1/admin/tenants",
            Some(json!({"id": "acme", "name": "Acme"})),
        )
        .await;
    assert_eq!(s, 201, "{t}");
    let (s, _) = server
        .admin(
            "POST",
            "/v1/admin/tenants",
            Some(json!({"id": "acme", "name": "Again"})),
        )
        .await;
    assert_eq!(s, 409);
    let (s, t) = server
        .admin(
            "PATCH",
            "/v1/admin/tenants/acme",
            Some(json!({"name": "Acme Inc"})),
        )
        .await;
    assert_eq!((s, t["name"].as_str()), (200, Some("Acme Inc")));

    let (s, created) = server
        .admin(
            "POST",
            "/v1/admin/apps",
            Some(json!({"id": "shop", "tenant_id": "acme", "limits": {"max_connections": 5}})),
        )
        .await;
    assert_eq!(s, 201, "{created}");
    let key = created["api_key"].as_str().unwrap().to_owned();
    let secret = created["jwt_secret"].as_str().unwrap().to_owned();
    assert!(key.starts_with("wk_"));
    assert_eq!(created["app"]["limits"]["max_connections"], 5);
    assert_eq!(created["app"]["has_jwt_secret"], true);
    // Secrets are not shown again.
    let (s, shown) = server.admin("GET", "/v1/admin/apps/shop", None).await;
    assert_eq!(s, 200);
    assert!(!shown.to_string().contains(&key) && !shown.to_string().contains(&secret));

    // The new app works right away on the gateway, with its key and its secret.
    assert_eq!(publish(&server, "shop", &key).await, 200);
    let t = tokens::hs256(&secret, "u", Some("shop"), tokens::caps(&["c"], &[]), 60);
    RawClient::ready(server.addr, "shop", &t).await;

    let (s, list) = server
        .admin("GET", "/v1/admin/apps?tenant=acme", None)
        .await;
    assert_eq!(s, 200);
    assert_eq!(list.as_array().unwrap().len(), 1);
    let (s, _) = server
        .admin(
            "POST",
            "/v1/admin/apps",
            Some(json!({"id": "shop", "tenant_id": "acme"})),
        )
        .await;
    assert_eq!(s, 409);
    let (s, e) = server
        .admin(
            "POST",
            "/v1/admin/apps",
            Some(json!({"id": "x", "tenant_id": "nobody"})),
        )
        .await;
    assert_eq!((s, e["error"]["code"].as_str()), (404, Some("not_found")));
    let (s, e) = server
        .admin(
            "PATCH",
            "/v1/admin/apps/shop",
            Some(json!({"jwt_rsa_public_key": "not a pem"})),
        )
        .await;
    assert_eq!((s, e["error"]["code"].as_str()), (400, Some("bad_request")));

    // Deleting the tenant deletes its apps; the gateway stops accepting them.
    let (s, _) = server.admin("DELETE", "/v1/admin/tenants/acme", None).await;
    assert_eq!(s, 204);
    assert_eq!(publish(&server, "shop", &key).await, 404);
    let (s, _) = server.admin("GET", "/v1/admin/apps/shop", None).await;
    assert_eq!(s, 404);
}

#[tokio::test]
async fn api_key_rotation() {
    let server = TestServer::start().await;
    let (s, added) = server
        .admin(
            "POST",
            "/v1/admin/apps/demo/keys",
            Some(json!({"label": "ci"})),
        )
        .await;
    assert_eq!(s, 201, "{added}");
    let new_key = added["api_key"].as_str().unwrap().to_owned();
    assert_eq!(publish(&server, "demo", &new_key).await, 200);
    assert_eq!(publish(&server, "demo", "demo-key").await, 200);
    let old_id = added["app"]["api_keys"]
        .as_array()
        .unwrap()
        .iter()
        .find(|k| k["label"] != "ci")
        .unwrap()["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let (s, _) = server
        .admin(
            "DELETE",
            &format!("/v1/admin/apps/demo/keys/{old_id}"),
            None,
        )
        .await;
    assert_eq!(s, 200);
    assert_eq!(publish(&server, "demo", "demo-key").await, 401);
    assert_eq!(publish(&server, "demo", &new_key).await, 200);
}

#[tokio::test]
async fn dev_keeps_its_apps_across_restarts() {
    let dir = std::env::temp_dir().join(format!("waas-dev-restart-{}", std::process::id()));
    let db = dir.join("dev.db");
    let db = db.to_str().unwrap();
    let created = {
        let server = ChildServer::spawn(
            env!("CARGO_BIN_EXE_waas"),
            &["dev", "--listen", "127.0.0.1:0", "--store", db],
        );
        let (s, body) = Client::new()
            .call(
                "POST",
                &format!("http://{}/v1/admin/apps", server.addr),
                OPERATOR,
                Some(json!({"id": "kept", "tenant_id": "default"})),
            )
            .await;
        assert_eq!(s, 201, "{body}");
        body
    };
    let server = ChildServer::spawn(
        env!("CARGO_BIN_EXE_waas"),
        &["dev", "--listen", "127.0.0.1:0", "--store", db],
    );
    let r = reqwest::Client::new()
        .post(format!("http://{}/v1/apps/kept/publish", server.addr))
        .bearer_auth(created["api_key"].as_str().unwrap())
        .json(&json!({"channel": "c", "event": "e", "data": 1}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    drop(server);
    let _ = std::fs::remove_dir_all(&dir);
}
