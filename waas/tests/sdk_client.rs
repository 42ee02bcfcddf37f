//! The Rust SDK against real gateways on loopback: connect, subscribe, publish, typed errors,
//! REST, and reconnects (gateway drain, token expiry) observed through connection events.

use futures_util::StreamExt;
use serde_json::json;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::Arc;
use std::time::Duration;
use waas_sdk::protocol::rest::TokenRequest;
use waas_sdk::token::TokenBuilder;
use waas_sdk::{Client, ConnectionEvent, Error, ErrorCode, Events, Message, ServerClient};
use waas_test_support::{tokens, TestServer};

const WAIT: Duration = Duration::from_secs(10);

async fn connect(server: &TestServer, token: &str) -> Client {
    Client::builder()
        .url(server.ws_url())
        .app("demo")
        .token(token)
        .connect()
        .await
        .expect("connect")
}

async fn next(sub: &mut waas_sdk::Subscription) -> Message {
    tokio::time::timeout(WAIT, sub.next())
        .await
        .expect("message in time")
        .expect("stream open")
}

/// Waits for the first event `pick` accepts, skipping others.
async fn wait_for<T>(
    events: &mut Events,
    mut pick: impl FnMut(&ConnectionEvent) -> Option<T>,
) -> T {
    tokio::time::timeout(WAIT, async {
        loop {
            let event = events.next().await.expect("events stream open");
            if let Some(t) = pick(&event) {
                return t;
            }
        }
    })
    .await
    .expect("event in time")
}

#[tokio::test]
async fn subscribe_publish_and_receive() {
    let server = TestServer::start().await;
    let client = connect(&server, "demo-key").await;
    assert!(client.connection_id().is_some());
    let mut sub = client.subscribe("chat.room-1").await.unwrap();
    let offset = client
        .publish("chat.room-1", "say", &json!({"text": "hi"}))
        .await
        .unwrap();
    assert_eq!(offset, 1);
    let m = next(&mut sub).await;
    assert_eq!(
        (m.channel.as_str(), m.event.as_str(), m.offset),
        ("chat.room-1", "say", 1)
    );
    assert_eq!(m.json(), json!({"text": "hi"}));
    assert!(m.ts > 1_600_000_000_000);
    assert!(client.ping().await.unwrap() < WAIT);

    // Two local subscriptions to one channel both get every message.
    let mut second = client.subscribe("chat.room-1").await.unwrap();
    client.publish("chat.room-1", "say", &2).await.unwrap();
    assert_eq!(next(&mut sub).await.offset, 2);
    assert_eq!(next(&mut second).await.offset, 2);
    // Unsubscribing one leaves the other subscribed on the server.
    second.unsubscribe().await.unwrap();
    client.publish("chat.room-1", "say", &3).await.unwrap();
    assert_eq!(next(&mut sub).await.data::<u32>().unwrap(), 3);
    client.close().await.unwrap();
}

#[tokio::test]
async fn refusals_are_typed() {
    let server = TestServer::start().await;
    let connect_err = |token: String, app: &'static str| {
        let url = server.ws_url();
        async move {
            Client::builder()
                .url(url)
                .app(app)
                .token(token)
                .connect()
                .await
                .expect_err("refused")
        }
    };
    let e = connect_err("garbage".into(), "demo").await;
    assert!(
        matches!(
            e,
            Error::Rejected {
                code: ErrorCode::InvalidToken,
                ..
            }
        ),
        "{e}"
    );
    let expired = tokens::hs256("demo-secret", "u", None, tokens::caps(&[">"], &[]), -60);
    let e = connect_err(expired, "demo").await;
    assert_eq!(e.code(), Some(ErrorCode::TokenExpired), "{e}");
    let e = connect_err("demo-key".into(), "nope").await;
    assert_eq!(e.code(), Some(ErrorCode::AppNotFound), "{e}");

    let token = tokens::demo("alice", &["weather.paris"], &[]);
    let client = connect(&server, &token).await;
    let e = client.subscribe("weather.london").await.unwrap_err();
    assert!(
        matches!(
            e,
            Error::Rejected {
                code: ErrorCode::Forbidden,
                ..
            }
        ),
        "{e}"
    );
    let e = client.publish("weather.paris", "r", &1).await.unwrap_err();
    assert_eq!(e.code(), Some(ErrorCode::Forbidden));
    let e = client.subscribe("bad..name").await.unwrap_err();
    assert!(matches!(e, Error::InvalidChannel { .. }), "{e}");
    // The connection survives refusals.
    client.subscribe("weather.paris").await.unwrap();
}

#[tokio::test]
async fn connection_refused_is_io() {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    drop(listener);
    let e = Client::builder()
        .url(format!("ws://{addr}"))
        .app("demo")
        .token("demo-key")
        .connect()
        .await
        .unwrap_err();
    assert!(matches!(e, Error::Io(_)), "{e}");
}

#[tokio::test]
async fn rest_publish_batch_and_tokens() {
    let server = TestServer::start().await;
    let rest = ServerClient::new(server.http_url(), "demo", "demo-key").unwrap();
    let minted = rest
        .mint_token(&TokenRequest {
            sub: "phone".into(),
            caps: tokens::caps(&["weather.*"], &[]),
            ttl: Some(60),
            info: None,
        })
        .await
        .unwrap();
    let phone = connect(&server, &minted.token).await;
    let mut paris = phone.subscribe("weather.paris").await.unwrap();
    let mut oslo = phone.subscribe("weather.oslo").await.unwrap();

    let r = rest
        .publish("weather.paris", "reading", &json!({"t": 20}))
        .await
        .unwrap();
    assert_eq!(r.offsets["weather.paris"], 1);
    let r = rest
        .publish_many(
            ["weather.paris", "weather.oslo"],
            "reading",
            &json!({"t": 5}),
        )
        .await
        .unwrap();
    assert_eq!(
        (r.offsets["weather.paris"], r.offsets["weather.oslo"]),
        (2, 1)
    );
    let batch = vec![
        waas_sdk::rest::publish_request("weather.oslo", "reading", &6).unwrap(),
        waas_sdk::rest::publish_request("weather.oslo", "reading", &7).unwrap(),
    ];
    let answers = rest.batch(batch).await.unwrap();
    assert_eq!(answers[1].offsets["weather.oslo"], 3);

    assert_eq!(next(&mut paris).await.json(), json!({"t": 20}));
    assert_eq!(next(&mut paris).await.offset, 2);
    let offsets: Vec<u64> = [
        next(&mut oslo).await,
        next(&mut oslo).await,
        next(&mut oslo).await,
    ]
    .iter()
    .map(|m| m.offset)
    .collect();
    assert_eq!(offsets, [1, 2, 3]);

    let e = rest.publish("bad..channel", "e", &1).await.unwrap_err();
    assert!(
        matches!(
            e,
            Error::Http {
                status: 400,
                code: ErrorCode::InvalidChannel,
                ..
            }
        ),
        "{e}"
    );
    let wrong_key = ServerClient::new(server.http_url(), "demo", "nope").unwrap();
    let e = wrong_key.publish("a", "e", &1).await.unwrap_err();
    assert!(
        matches!(
            e,
            Error::Http {
                status: 401,
                code: ErrorCode::Unauthorized,
                ..
            }
        ),
        "{e}"
    );
}

#[tokio::test]
async fn locally_signed_token_is_accepted() {
    let server = TestServer::start().await;
    let token = TokenBuilder::new("alice")
        .subscribe("chat.*")
        .publish("chat.room-1")
        .audience("demo")
        .sign_hs256("demo-secret")
        .unwrap();
    let client = connect(&server, &token).await;
    let mut sub = client.subscribe("chat.room-1").await.unwrap();
    client
        .publish("chat.room-1", "say", &"hello")
        .await
        .unwrap();
    assert_eq!(next(&mut sub).await.data::<String>().unwrap(), "hello");
    let e = client
        .publish("chat.room-2", "say", &"x")
        .await
        .unwrap_err();
    assert_eq!(e.code(), Some(ErrorCode::Forbidden));
}

#[tokio::test]
async fn dropping_a_subscription_unsubscribes() {
    // With room for one channel only, the second subscribe succeeds only if the first was undone.
    let server = TestServer::with(|s| s.limits.max_channels_per_connection = 1).await;
    let client = connect(&server, "demo-key").await;
    let a = client.subscribe("a").await.unwrap();
    drop(a);
    let b = client.subscribe("b").await.unwrap();
    b.unsubscribe().await.unwrap();
    client.subscribe("c").await.unwrap();
}

#[tokio::test]
async fn close_ends_streams_and_later_calls_fail() {
    let server = TestServer::start().await;
    let client = connect(&server, "demo-key").await;
    let mut events = client.events();
    let mut sub = client.subscribe("a").await.unwrap();
    client.close().await.unwrap();
    assert!(tokio::time::timeout(WAIT, sub.next())
        .await
        .unwrap()
        .is_none());
    let closed = wait_for(&mut events, |e| match e {
        ConnectionEvent::Closed { error } => Some(error.is_none()),
        _ => None,
    })
    .await;
    assert!(closed, "a clean close carries no error");
    assert!(matches!(
        client.publish("a", "e", &1).await,
        Err(Error::ClientClosed)
    ));
    assert!(matches!(client.state(), waas_sdk::State::Closed));
}

#[tokio::test]
async fn gateway_drain_fails_over_to_the_next_url_and_resubscribes() {
    let a = TestServer::start().await;
    let b = TestServer::start().await;
    let client = Client::builder()
        .urls([a.ws_url(), b.ws_url()])
        .app("demo")
        .token("demo-key")
        .connect()
        .await
        .unwrap();
    let mut events = client.events();
    let mut sub = client.subscribe("news").await.unwrap();

    // A drains: its connections get 1001 "going away".
    let drained = tokio::spawn(a.shutdown());
    let code = wait_for(&mut events, |e| match e {
        ConnectionEvent::Disconnected { code, .. } => Some(*code),
        _ => None,
    })
    .await;
    assert_eq!(code, Some(1001));
    let url = wait_for(&mut events, |e| match e {
        ConnectionEvent::Connected { url, .. } => Some(url.clone()),
        _ => None,
    })
    .await;
    assert!(url.contains(&b.addr.to_string()), "went to {url}");
    drained.await.unwrap();

    // Connected is announced once resubscribed: a publish on B now reaches the old stream.
    let rest = ServerClient::new(b.http_url(), "demo", "demo-key").unwrap();
    rest.publish("news", "flash", &"after failover")
        .await
        .unwrap();
    let m = next(&mut sub).await;
    assert_eq!(m.data::<String>().unwrap(), "after failover");
    client
        .publish("news", "flash", &"from the client")
        .await
        .unwrap();
    assert_eq!(next(&mut sub).await.offset, 2);
}

#[tokio::test]
async fn expired_token_with_provider_reconnects_with_a_fresh_one() {
    let server = TestServer::with(|s| s.limits.heartbeat_interval_ms = 100).await;
    let minted = Arc::new(AtomicU32::new(0));
    let counter = minted.clone();
    let client = Client::builder()
        .url(server.ws_url())
        .app("demo")
        .token_provider(move || {
            // The first token dies at once; the ones after it last.
            let ttl = match counter.fetch_add(1, Ordering::SeqCst) {
                0 => 1,
                _ => 60,
            };
            async move {
                TokenBuilder::new("short-lived")
                    .subscribe(">")
                    .ttl(Duration::from_secs(ttl))
                    .sign_hs256("demo-secret")
            }
        })
        .connect()
        .await
        .unwrap();
    let mut events = client.events();
    let mut sub = client.subscribe("ticks").await.unwrap();
    let code = wait_for(&mut events, |e| match e {
        ConnectionEvent::Disconnected { code, .. } => Some(*code),
        _ => None,
    })
    .await;
    assert_eq!(code, Some(4501));
    wait_for(&mut events, |e| {
        matches!(e, ConnectionEvent::Connected { .. }).then_some(())
    })
    .await;
    assert!(minted.load(Ordering::SeqCst) >= 2);
    let rest = ServerClient::new(server.http_url(), "demo", "demo-key").unwrap();
    rest.publish("ticks", "t", &1).await.unwrap();
    assert_eq!(next(&mut sub).await.offset, 1);
}

#[tokio::test]
async fn expired_static_token_stops_the_client() {
    let server = TestServer::with(|s| s.limits.heartbeat_interval_ms = 100).await;
    let token = TokenBuilder::new("short-lived")
        .subscribe(">")
        .ttl(Duration::from_secs(1))
        .sign_hs256("demo-secret")
        .unwrap();
    let client = connect(&server, &token).await;
    let mut events = client.events();
    let mut sub = client.subscribe("ticks").await.unwrap();
    let error = wait_for(&mut events, |e| match e {
        ConnectionEvent::Closed { error } => Some(error.clone()),
        _ => None,
    })
    .await
    .expect("closed with an error");
    assert_eq!(error.close_code(), Some(4501), "{error}");
    assert!(tokio::time::timeout(WAIT, sub.next())
        .await
        .unwrap()
        .is_none());
    let e = client.publish("ticks", "t", &1).await.unwrap_err();
    assert_eq!(e.close_code(), Some(4501), "{e}");
}
