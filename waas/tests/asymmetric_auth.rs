//! Apps configured with an RSA or EC public key accept RS256/ES256 tokens signed by the tenant's
//! private key, and refuse tokens signed with anything else. The app comes from a TOML config
//! file, as an operator would declare it.

use jsonwebtoken::Algorithm;
use serde_json::json;
use waas::settings::Settings;
use waas_test_support::tokens::{self, fixture};
use waas_test_support::{RawClient, TestServer};

fn settings_with_key_app() -> Settings {
    let toml = format!(
        "[[apps]]\nid = \"keyed\"\napi_keys = [\"keyed-key\"]\njwt_rsa_public_key_file = \"{}\"\njwt_ec_public_key_file = \"{}\"\n",
        fixture("rsa_public.pem"),
        fixture("ec_public.pem"),
    );
    // Unique per call: tests of this file run in parallel in one process.
    static NEXT: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
    let n = NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let path = std::env::temp_dir().join(format!("waas-keyed-{}-{n}.toml", std::process::id()));
    std::fs::write(&path, toml).unwrap();
    let mut s = Settings::from_file(&path).unwrap();
    let _ = std::fs::remove_file(&path);
    s.store = ":memory:".into();
    s
}

#[tokio::test]
async fn rs256_and_es256_tokens_are_verified_with_the_public_keys() {
    let server = TestServer::with(|s| *s = settings_with_key_app()).await;
    for alg in [Algorithm::RS256, Algorithm::ES256] {
        let token = tokens::asymmetric(
            alg,
            "tenant-user",
            Some("keyed"),
            tokens::caps(&["x.*"], &[]),
            60,
        );
        let mut c = RawClient::ready(server.addr, "keyed", &token).await;
        let ack = c
            .request(json!({"op": "subscribe", "id": 1, "channel": "x.y"}))
            .await;
        assert_eq!(ack["op"], "ack", "{alg:?}: {ack}");
        let no = c
            .request(json!({"op": "subscribe", "id": 2, "channel": "z"}))
            .await;
        assert_eq!(no["code"], "forbidden");
    }
    // The keyed app has no HS256 secret: an HS256 token is refused.
    let hs = tokens::hs256("demo-secret", "u", None, tokens::caps(&[">"], &[]), 60);
    let mut c =
        RawClient::connect(server.addr, &format!("/v1/apps/keyed/ws?token={hs}"), None).await;
    let f = c.json().await;
    assert_eq!(f["code"], "invalid_token", "{f}");
    assert_eq!(c.close_code().await, 4500);
    // ...and it cannot mint tokens over REST.
    let r = reqwest::Client::new()
        .post(format!("{}/v1/apps/keyed/tokens", server.http_url()))
        .bearer_auth("keyed-key")
        .json(&json!({"sub": "u"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 409);
    assert_eq!(
        r.json::<serde_json::Value>().await.unwrap()["error"]["code"],
        "no_signing_secret"
    );
}

#[tokio::test]
async fn expired_rs256_token_is_expired() {
    let server = TestServer::with(|s| *s = settings_with_key_app()).await;
    let token = tokens::asymmetric(Algorithm::RS256, "u", None, tokens::caps(&[">"], &[]), -30);
    let mut c = RawClient::connect(
        server.addr,
        &format!("/v1/apps/keyed/ws?token={token}"),
        None,
    )
    .await;
    assert_eq!(c.json().await["code"], "token_expired");
    assert_eq!(c.close_code().await, 4501);
}
