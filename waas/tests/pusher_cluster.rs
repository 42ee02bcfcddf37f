//! The Pusher front on two gateways over the real NATS: presence members, client events and
//! `terminate_connections` cross from one gateway to the other. The gateways run in this
//! process, each with its own bus connection, registry and presence, and know the app from
//! their registries (its Pusher settings are not in the store yet, so no control-plane is
//! needed).

use serde_json::{json, Value};
use std::sync::Arc;
use std::time::Duration;
use tokio::net::TcpListener;
use waas_core::app::AppConfig;
use waas_core::bus::nats::{NatsBus, NatsOptions};
use waas_core::bus::Bus;
use waas_core::history::memory::MemoryHistory;
use waas_gateway::pusher::auth;
use waas_gateway::registry::AppRegistry;
use waas_gateway::{Gateway, GatewayConfig};
use waas_test_support::raw::Received;
use waas_test_support::{nats, poll, RawClient};

const SECRET: &str = "cluster-secret";

struct Node {
    addr: std::net::SocketAddr,
    gw: Arc<Gateway>,
    _task: tokio::task::JoinHandle<()>,
}

async fn node(prefix: &str) -> Node {
    let bus: Arc<dyn Bus> = Arc::new(
        NatsBus::connect(&nats::shared_url(), NatsOptions::default())
            .await
            .expect("the shared NATS"),
    );
    let config = GatewayConfig {
        subject_prefix: prefix.to_owned(),
        ..GatewayConfig::default()
    };
    let app: AppConfig = serde_json::from_value(json!({
        "id": "shop",
        "pusher": {"secret": SECRET, "client_events": true},
    }))
    .unwrap();
    let apps = AppRegistry::fixed();
    apps.upsert(app).unwrap();
    let gw = Gateway::with_history(config, Arc::new(MemoryHistory::new(bus)), apps);
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let serving = Arc::clone(&gw);
    let task = tokio::spawn(async move {
        let _ = waas_gateway::server::serve(serving, listener, None, std::future::pending()).await;
    });
    Node {
        addr,
        gw,
        _task: task,
    }
}

struct Client {
    raw: RawClient,
    socket_id: String,
}

impl Client {
    async fn connect(node: &Node) -> Client {
        let mut raw = RawClient::connect(node.addr, "/app/shop?protocol=7", None).await;
        let f = raw.json().await;
        assert_eq!(f["event"], "pusher:connection_established", "{f}");
        let data: Value = serde_json::from_str(f["data"].as_str().unwrap()).unwrap();
        Client {
            raw,
            socket_id: data["socket_id"].as_str().unwrap().to_owned(),
        }
    }

    async fn next_event(&mut self, event: &str) -> Value {
        loop {
            let f = self.raw.json().await;
            if f["event"] == event {
                return f;
            }
        }
    }

    async fn join_presence(&mut self, channel: &str, user: &str) -> Value {
        let cd = json!({"user_id": user, "user_info": {"name": user}}).to_string();
        let sig = auth::sign(
            "shop",
            SECRET,
            &auth::channel_message(&self.socket_id, channel, Some(&cd)),
        );
        self.raw
            .send(&json!({"event": "pusher:subscribe", "data": {"channel": channel, "auth": sig, "channel_data": cd}}))
            .await;
        let f = self
            .next_event("pusher_internal:subscription_succeeded")
            .await;
        serde_json::from_str(f["data"].as_str().unwrap()).unwrap()
    }
}

fn data(f: &Value) -> Value {
    serde_json::from_str(f["data"].as_str().unwrap()).unwrap()
}

#[tokio::test]
async fn presence_client_events_and_terminate_cross_gateways() {
    let prefix = nats::unique_prefix();
    let a = node(&prefix).await;
    let b = node(&prefix).await;
    let ch = "presence-lobby";
    let key = waas_gateway::presence::state::Key {
        app: "shop".into(),
        channel: ch.into(),
    };

    let mut alice = Client::connect(&a).await;
    let roster = alice.join_presence(ch, "alice").await;
    assert_eq!(roster["presence"]["count"], 1);
    // Gateway b hears of alice from a's announcement.
    poll::eventually(
        Duration::from_secs(10),
        Duration::from_millis(20),
        || "gateway b never heard of alice",
        || async {
            b.gw.presence
                .members(&key)
                .iter()
                .any(|m| m.id == "alice")
                .then_some(())
        },
    )
    .await;

    let mut bob = Client::connect(&b).await;
    let roster = bob.join_presence(ch, "bob").await;
    assert_eq!(roster["presence"]["count"], 2, "{roster}");
    assert_eq!(roster["presence"]["hash"]["alice"]["name"], "alice");
    let added = alice.next_event("pusher_internal:member_added").await;
    assert_eq!(data(&added)["user_id"], "bob");

    // A client event from b reaches a, naming its sender.
    bob.raw
        .send(&json!({"event": "client-wave", "channel": ch, "data": "{\"hi\":1}"}))
        .await;
    let f = alice.next_event("client-wave").await;
    assert_eq!(f["user_id"], "bob");
    assert_eq!(f["data"], "{\"hi\":1}");

    // bob signs in on b; terminating him from a's bus connection closes him there.
    let user = json!({"id": "bob"}).to_string();
    let sig = auth::sign("shop", SECRET, &auth::signin_message(&bob.socket_id, &user));
    bob.raw
        .send(&json!({"event": "pusher:signin", "data": {"auth": sig, "user_data": user}}))
        .await;
    bob.next_event("pusher:signin_success").await;
    waas_gateway::pusher::users::terminate(&**a.gw.publisher.bus(), &prefix, "shop", "bob")
        .await
        .unwrap();
    let f = bob.next_event("pusher:error").await;
    assert_eq!(f["data"]["code"], 4009);
    let code = loop {
        match bob.raw.recv().await {
            Received::Close(code, _) => break code,
            Received::Json(_) => continue,
            Received::Ended => panic!("no close frame"),
        }
    };
    assert_eq!(code, 4009);
    // His leaving reaches a as member_removed.
    let removed = alice.next_event("pusher_internal:member_removed").await;
    assert_eq!(data(&removed)["user_id"], "bob");
}
