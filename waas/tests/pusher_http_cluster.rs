//! Pusher's HTTP API in cluster mode (control-plane and two gateways as processes, real NATS,
//! PostgreSQL): an event triggered on one gateway reaches a native subscriber on the other, and
//! either gateway answers channel queries for the whole cluster. The app's Pusher secret is set
//! through the admin API (`pusher_secret`, docs/admin.md).

use serde_json::{json, Value};
use std::time::Duration;
use waas_gateway::http::pusher::signing::{body_md5, sign};
use waas_test_support::cluster::Cluster;
use waas_test_support::nats::shared_url;
use waas_test_support::{tokens, RawClient};

const WAAS: &str = env!("CARGO_BIN_EXE_waas");
const SECRET: &str = "cluster-pusher-secret";

/// One call signed as Pusher's libraries sign it.
async fn call(
    base: &str,
    method: &str,
    path: &str,
    params: &[(&str, &str)],
    body: Option<Value>,
) -> (u16, Value) {
    let app = path.split('/').nth(2).unwrap();
    let body = body.map(|b| b.to_string());
    let mut query: Vec<(String, String)> = vec![
        ("auth_key".into(), app.into()),
        ("auth_timestamp".into(), tokens::now_s().to_string()),
        ("auth_version".into(), "1.0".into()),
    ];
    if let Some(b) = &body {
        query.push(("body_md5".into(), body_md5(b.as_bytes())));
    }
    query.extend(params.iter().map(|(k, v)| (k.to_string(), v.to_string())));
    query.sort();
    let query: Vec<String> = query.iter().map(|(k, v)| format!("{k}={v}")).collect();
    let query = query.join("&");
    let signature = sign(SECRET, format!("{method}\n{path}\n{query}").as_bytes());
    let url = format!("{base}{path}?{query}&auth_signature={signature}");
    let client = reqwest::Client::new();
    let req = match body {
        Some(b) => client
            .post(url)
            .header("content-type", "application/json")
            .body(b),
        None => client.get(url),
    };
    let resp = req.send().await.expect("request");
    let status = resp.status().as_u16();
    (status, resp.json().await.unwrap_or(Value::Null))
}

#[tokio::test]
async fn events_cross_gateways_and_queries_see_the_cluster() {
    let cluster = Cluster::start(WAAS, &shared_url(), 2).await;
    let app = cluster
        .create_app_with("pcluster", json!({"pusher_secret": SECRET}))
        .await;
    let (g0, g1) = (cluster.gateway_http(0), cluster.gateway_http(1));

    let token = app.token("alice", tokens::caps(&["news-1"], &[]));
    let mut sub = RawClient::ready(cluster.gateways[1].addr, &app.id, &token).await;
    let ack = sub
        .request(json!({"op": "subscribe", "id": 1, "channel": "news-1"}))
        .await;
    assert_eq!(ack["op"], "ack", "{ack}");

    let (status, body) = call(
        &g0,
        "POST",
        "/apps/pcluster/events",
        &[],
        Some(json!({"name": "created", "channel": "news-1", "data": "{\"id\":1}"})),
    )
    .await;
    assert_eq!((status, body), (200, json!({})));
    let m = sub.json().await;
    assert_eq!(
        (m["event"].clone(), m["data"].clone()),
        (json!("created"), json!({"id": 1}))
    );

    // Gateway 0 has no subscriber of its own; it learns of gateway 1's from presence.
    waas_test_support::poll::eventually(
        Duration::from_secs(15),
        Duration::from_millis(50),
        || "gateway 0 sees the subscription on gateway 1",
        || async {
            let (_, body) = call(
                &g0,
                "GET",
                "/apps/pcluster/channels",
                &[("info", "subscription_count")],
                None,
            )
            .await;
            (body == json!({"channels": {"news-1": {"subscription_count": 1}}})).then_some(())
        },
    )
    .await;
    let (status, body) = call(&g1, "GET", "/apps/pcluster/channels/news-1", &[], None).await;
    assert_eq!((status, body), (200, json!({"occupied": true})));

    // An app no gateway knows is 404 everywhere.
    let (status, _) = call(&g1, "GET", "/apps/other/channels", &[], None).await;
    assert_eq!(status, 404);
}
