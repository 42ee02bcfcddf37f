//! Connection lifecycle against a scripted fake gateway: heartbeat timeouts, close codes that do
//! and do not reconnect, requests across a reconnect, refused connects, giving up.

mod fake;

use fake::FakeGateway;
use fastwebsockets::OpCode;
use futures_util::StreamExt;
use serde_json::json;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::Arc;
use std::time::Duration;
use waas_sdk::{Backoff, Client, ClientBuilder, ConnectionEvent, Error, ErrorCode, Events};

const WAIT: Duration = Duration::from_secs(10);

fn fast_backoff() -> Backoff {
    Backoff {
        initial: Duration::from_millis(10),
        max: Duration::from_millis(50),
        multiplier: 2.0,
    }
}

fn builder(gw: &FakeGateway) -> ClientBuilder {
    Client::builder()
        .url(gw.url())
        .app("demo")
        .token("tok")
        .backoff(fast_backoff())
}

/// Connects with the default test options adjusted by `tweak`.
async fn connect(
    gw: &mut FakeGateway,
    tweak: impl FnOnce(ClientBuilder) -> ClientBuilder,
) -> (Client, fake::FakeConn) {
    let b = tweak(builder(gw));
    connect_with(gw, b).await
}

/// Connects while the fake accepts and sends `ready`.
async fn connect_with(gw: &mut FakeGateway, builder: ClientBuilder) -> (Client, fake::FakeConn) {
    let connecting = tokio::spawn(builder.connect());
    let conn = gw.accept_ready("c1").await;
    let client = connecting.await.unwrap().expect("connected");
    (client, conn)
}

async fn event<T>(events: &mut Events, mut pick: impl FnMut(&ConnectionEvent) -> Option<T>) -> T {
    tokio::time::timeout(WAIT, async {
        loop {
            let e = events.next().await.expect("events open");
            if let Some(t) = pick(&e) {
                return t;
            }
        }
    })
    .await
    .expect("event in time")
}

fn disconnected(e: &ConnectionEvent) -> Option<(Option<u16>, String)> {
    match e {
        ConnectionEvent::Disconnected { code, reason } => Some((*code, reason.clone())),
        _ => None,
    }
}

fn connected(e: &ConnectionEvent) -> Option<String> {
    match e {
        ConnectionEvent::Connected { connection_id, .. } => Some(connection_id.clone()),
        _ => None,
    }
}

fn closed(e: &ConnectionEvent) -> Option<Option<Arc<Error>>> {
    match e {
        ConnectionEvent::Closed { error } => Some(error.clone()),
        _ => None,
    }
}

#[tokio::test]
async fn sends_credentials_as_bearer_to_the_app_path() {
    let mut gw = FakeGateway::start().await;
    let (_client, conn) = connect(&mut gw, |b| b).await;
    assert_eq!(conn.authorization, "Bearer tok");
    assert_eq!(conn.path, "/v1/apps/demo/ws");
}

#[tokio::test]
async fn silent_server_is_replaced_and_subscriptions_restored() {
    let mut gw = FakeGateway::start().await;
    let b = builder(&gw)
        .ping_interval(Duration::from_millis(100))
        .ping_timeout(Duration::from_millis(200));
    let (client, mut c1) = connect_with(&mut gw, b).await;
    let mut events = client.events();
    let subscribing = tokio::spawn({
        let client = client.clone();
        async move { client.subscribe("room").await }
    });
    c1.ack("subscribe", None).await;
    let mut sub = subscribing.await.unwrap().unwrap();

    // c1 now answers nothing: the SDK's pings go unanswered.
    let (code, reason) = event(&mut events, disconnected).await;
    assert_eq!(code, None);
    assert!(reason.contains("pong"), "{reason}");

    let mut c2 = gw.accept_ready("c2").await;
    let resubscribe = c2.recv().await;
    assert_eq!(resubscribe["op"], "subscribe");
    assert_eq!(resubscribe["channel"], "room");
    c2.send(json!({"op": "ack", "id": resubscribe["id"]})).await;
    assert_eq!(event(&mut events, connected).await, "c2");
    assert_eq!(client.connection_id().as_deref(), Some("c2"));

    c2.send(json!({"op": "message", "channel": "room", "event": "e", "data": {"n": 1}, "offset": 9, "ts": 1}))
        .await;
    let m = tokio::time::timeout(WAIT, sub.next())
        .await
        .unwrap()
        .unwrap();
    assert_eq!((m.offset, m.json()), (9, json!({"n": 1})));
    drop(c1);
}

#[tokio::test]
async fn heartbeat_pings_are_answered_pongs_keep_the_connection() {
    let mut gw = FakeGateway::start().await;
    let b = builder(&gw)
        .ping_interval(Duration::from_millis(50))
        .ping_timeout(Duration::from_millis(500));
    let (client, mut c1) = connect_with(&mut gw, b).await;
    let mut events = client.events();
    for _ in 0..5 {
        let ping = c1.recv().await;
        assert_eq!(ping["op"], "ping");
        c1.send(json!({"op": "pong", "id": ping["id"]})).await;
    }
    // Still the first connection: nothing was lost.
    let quiet = tokio::time::timeout(Duration::from_millis(100), events.next()).await;
    assert!(quiet.is_err(), "no event expected, got {quiet:?}");
    assert_eq!(client.connection_id().as_deref(), Some("c1"));
}

#[tokio::test]
async fn answers_the_servers_websocket_pings() {
    let mut gw = FakeGateway::start().await;
    let (_client, mut c1) = connect(&mut gw, |b| b).await;
    c1.write_raw(OpCode::Ping, b"hb").await;
    let (opcode, payload) = c1.recv_raw().await;
    assert_eq!(opcode, OpCode::Pong);
    assert_eq!(payload, b"hb");
}

#[tokio::test]
async fn reconnectable_close_codes_reconnect_and_4500_stops() {
    let mut gw = FakeGateway::start().await;
    let (client, c1) = connect(&mut gw, |b| b).await;
    let mut events = client.events();
    let mut sub = {
        let (sub, _) = tokio::join!(client.subscribe("room"), async {
            let mut c1 = c1;
            c1.ack("subscribe", None).await;
            c1.close(4000, "slow consumer").await;
        });
        sub.unwrap()
    };
    assert_eq!(event(&mut events, disconnected).await.0, Some(4000));
    let attempt = event(&mut events, |e| match e {
        ConnectionEvent::Reconnecting { attempt, .. } => Some(*attempt),
        _ => None,
    })
    .await;
    assert_eq!(attempt, 1);
    let mut c2 = gw.accept_ready("c2").await;
    c2.ack("subscribe", None).await;
    event(&mut events, connected).await;

    c2.close(4500, "invalid token").await;
    let error = event(&mut events, closed).await.expect("an error");
    assert_eq!(error.close_code(), Some(4500));
    assert!(tokio::time::timeout(WAIT, sub.next())
        .await
        .unwrap()
        .is_none());
    let e = client.ping().await.unwrap_err();
    assert!(matches!(e, Error::Closed { code: 4500, .. }), "{e}");
    assert!(
        client.close().await.is_ok(),
        "closing a stopped client is fine"
    );
}

#[tokio::test]
async fn publish_in_flight_fails_publish_while_offline_waits() {
    let mut gw = FakeGateway::start().await;
    let (client, mut c1) = connect(&mut gw, |b| b).await;
    let mut events = client.events();

    let in_flight = tokio::spawn({
        let client = client.clone();
        async move { client.publish("room", "e", &1).await }
    });
    assert_eq!(c1.recv().await["op"], "publish");
    c1.close(1001, "going away").await;
    let e = in_flight.await.unwrap().unwrap_err();
    assert!(matches!(e, Error::Disconnected), "{e}");

    event(&mut events, disconnected).await;
    let mut c2 = gw.accept().await;
    // Not ready yet: this publish waits for the connection.
    let offline = tokio::spawn({
        let client = client.clone();
        async move { client.publish("room", "e", &2).await }
    });
    tokio::time::sleep(Duration::from_millis(50)).await;
    c2.ready("c2").await;
    let request = c2.ack("publish", Some(5)).await;
    assert_eq!(request["data"], 2);
    assert_eq!(offline.await.unwrap().unwrap(), 5);
}

#[tokio::test]
async fn error_frame_at_connect_is_rejected_with_its_code() {
    let mut gw = FakeGateway::start().await;
    let connecting = tokio::spawn(builder(&gw).connect());
    let mut conn = gw.accept().await;
    conn.send(json!({"op": "error", "code": "connection_limit", "message": "full"}))
        .await;
    conn.close(4004, "connection limit").await;
    let e = connecting.await.unwrap().unwrap_err();
    assert!(
        matches!(e, Error::Rejected { code: ErrorCode::ConnectionLimit, ref message } if message == "full"),
        "{e}"
    );
}

#[tokio::test]
async fn close_without_ready_is_closed_error() {
    let mut gw = FakeGateway::start().await;
    let connecting = tokio::spawn(builder(&gw).connect());
    gw.accept().await.close(4502, "app not found").await;
    let e = connecting.await.unwrap().unwrap_err();
    assert_eq!(e.close_code(), Some(4502), "{e}");
}

#[tokio::test]
async fn first_connect_tries_each_url_once() {
    let dead = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let dead_url = format!("ws://{}", dead.local_addr().unwrap());
    drop(dead);
    let mut gw = FakeGateway::start().await;
    let b = Client::builder()
        .urls([dead_url, gw.url()])
        .app("demo")
        .token("tok");
    let (client, _conn) = connect_with(&mut gw, b).await;
    assert_eq!(client.connection_id().as_deref(), Some("c1"));
}

#[tokio::test]
async fn token_provider_is_asked_on_every_connect() {
    let mut gw = FakeGateway::start().await;
    let n = Arc::new(AtomicU32::new(0));
    let counter = n.clone();
    let b = builder(&gw).token_provider(move || {
        let i = counter.fetch_add(1, Ordering::SeqCst);
        async move { Ok::<_, std::io::Error>(format!("jwt-{i}")) }
    });
    let (client, c1) = connect_with(&mut gw, b).await;
    assert_eq!(c1.authorization, "Bearer jwt-0");
    let mut events = client.events();
    // With a provider even an expired token is worth another try, with a fresh one.
    c1.close(4501, "token expired").await;
    let c2 = gw.accept_ready("c2").await;
    assert_eq!(c2.authorization, "Bearer jwt-1");
    event(&mut events, connected).await;
}

#[tokio::test]
async fn gives_up_after_max_attempts() {
    let mut gw = FakeGateway::start().await;
    let (client, c1) = connect(&mut gw, |b| b.max_reconnect_attempts(3)).await;
    let mut events = client.events();
    gw.stop();
    c1.close(1001, "going away").await;
    let error = event(&mut events, closed).await.expect("an error");
    match &*error {
        Error::ReconnectFailed { attempts, last } => {
            assert_eq!(*attempts, 3);
            assert!(matches!(**last, Error::Io(_)), "{last}");
        }
        other => panic!("unexpected {other}"),
    }
}

#[tokio::test]
async fn close_sends_1000_and_stops_reconnecting() {
    let mut gw = FakeGateway::start().await;
    let (client, mut c1) = connect(&mut gw, |b| b).await;
    client.close().await.unwrap();
    let (opcode, payload) = c1.recv_raw().await;
    assert_eq!(opcode, OpCode::Close);
    assert_eq!(u16::from_be_bytes([payload[0], payload[1]]), 1000);
    let e = client.publish("room", "e", &1).await.unwrap_err();
    assert!(matches!(e, Error::ClientClosed), "{e}");
}

#[tokio::test]
async fn dropping_every_handle_closes_the_connection() {
    let mut gw = FakeGateway::start().await;
    let (client, mut c1) = connect(&mut gw, |b| b).await;
    drop(client);
    let (opcode, _) = c1.recv_raw().await;
    assert_eq!(opcode, OpCode::Close);
}
