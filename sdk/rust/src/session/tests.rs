use super::*;
use crate::message::Message;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use tokio::sync::mpsc;
use waas_protocol::ErrorCode;

fn session() -> Session {
    let mut s = Session::new(2);
    s.on_connect();
    s.take_notices();
    s
}

fn subscriber(id: u64, capacity: usize) -> (Subscriber, mpsc::Receiver<Message>) {
    let (tx, rx) = mpsc::channel(capacity);
    (
        Subscriber {
            id,
            tx,
            dropped: Arc::new(AtomicU64::new(0)),
        },
        rx,
    )
}

fn frames(s: &mut Session) -> Vec<serde_json::Value> {
    s.take_outbox()
        .iter()
        .map(|t| serde_json::from_str(t).unwrap())
        .collect()
}

fn server(s: &mut Session, json: &str) {
    s.on_frame(ServerFrame::parse(json).unwrap());
}

fn message(channel: &str, offset: u64) -> String {
    format!(
        r#"{{"op":"message","channel":"{channel}","event":"e","data":{{"n":{offset}}},"offset":{offset},"ts":1}}"#
    )
}

#[test]
fn subscribe_waits_for_ack_then_delivers() {
    let mut s = session();
    let (sub, mut rx) = subscriber(1, 8);
    let (reply, mut answer) = oneshot::channel();
    s.subscribe("room.1".into(), sub, reply);
    let out = frames(&mut s);
    assert_eq!(out.len(), 1);
    assert_eq!(out[0]["op"], "subscribe");
    assert_eq!(out[0]["channel"], "room.1");
    assert!(answer.try_recv().is_err(), "no answer before the ack");

    let id = out[0]["id"].as_u64().unwrap();
    server(&mut s, &format!(r#"{{"op":"ack","id":{id}}}"#));
    assert!(answer.try_recv().unwrap().is_ok());

    server(&mut s, &message("room.1", 1));
    server(&mut s, &message("room.2", 1));
    let m = rx.try_recv().unwrap();
    assert_eq!((m.channel.as_str(), m.offset), ("room.1", 1));
    assert_eq!(m.json()["n"], 1);
    assert!(rx.try_recv().is_err());
}

#[test]
fn subscribe_error_is_typed() {
    let mut s = session();
    let (sub, _rx) = subscriber(1, 8);
    let (reply, mut answer) = oneshot::channel();
    s.subscribe("secret".into(), sub, reply);
    let id = frames(&mut s)[0]["id"].as_u64().unwrap();
    server(
        &mut s,
        &format!(r#"{{"op":"error","id":{id},"code":"forbidden","message":"no"}}"#),
    );
    match answer.try_recv().unwrap() {
        Err(Error::Rejected { code, .. }) => assert_eq!(code, ErrorCode::Forbidden),
        other => panic!("unexpected {other:?}"),
    }
    assert!(s.channels.is_empty());
}

#[test]
fn second_local_subscriber_shares_the_server_subscription() {
    let mut s = session();
    let (a, mut rx_a) = subscriber(1, 8);
    let (b, mut rx_b) = subscriber(2, 8);
    let (reply, _answer) = oneshot::channel();
    s.subscribe("c".into(), a, reply);
    let id = frames(&mut s)[0]["id"].as_u64().unwrap();
    server(&mut s, &format!(r#"{{"op":"ack","id":{id}}}"#));

    let (reply, mut answer) = oneshot::channel();
    s.subscribe("c".into(), b, reply);
    assert!(frames(&mut s).is_empty(), "no second subscribe frame");
    assert!(answer.try_recv().unwrap().is_ok());

    server(&mut s, &message("c", 1));
    assert_eq!(rx_a.try_recv().unwrap().offset, 1);
    assert_eq!(rx_b.try_recv().unwrap().offset, 1);

    s.unsubscribe("c", 1, None);
    assert!(frames(&mut s).is_empty(), "b still listens");
    let (reply, mut answer) = oneshot::channel();
    s.unsubscribe("c", 2, Some(reply));
    let out = frames(&mut s);
    assert_eq!(out[0]["op"], "unsubscribe");
    assert!(answer.try_recv().is_err());
    let id = out[0]["id"].as_u64().unwrap();
    server(&mut s, &format!(r#"{{"op":"ack","id":{id}}}"#));
    assert!(answer.try_recv().unwrap().is_ok());
}

#[test]
fn full_buffer_drops_newest_and_counts() {
    let mut s = session();
    let (sub, mut rx) = subscriber(1, 2);
    let dropped = sub.dropped.clone();
    let (reply, _answer) = oneshot::channel();
    s.subscribe("c".into(), sub, reply);
    let id = frames(&mut s)[0]["id"].as_u64().unwrap();
    server(&mut s, &format!(r#"{{"op":"ack","id":{id}}}"#));
    for i in 1..=5 {
        server(&mut s, &message("c", i));
    }
    assert_eq!(dropped.load(Ordering::Relaxed), 3);
    assert_eq!(rx.try_recv().unwrap().offset, 1);
    assert_eq!(rx.try_recv().unwrap().offset, 2);
    assert!(rx.try_recv().is_err());
}

#[test]
fn dropped_receiver_unsubscribes_on_next_message() {
    let mut s = session();
    let (sub, rx) = subscriber(1, 2);
    let (reply, _answer) = oneshot::channel();
    s.subscribe("c".into(), sub, reply);
    let id = frames(&mut s)[0]["id"].as_u64().unwrap();
    server(&mut s, &format!(r#"{{"op":"ack","id":{id}}}"#));
    drop(rx);
    server(&mut s, &message("c", 1));
    let out = frames(&mut s);
    assert_eq!(out[0]["op"], "unsubscribe");
}

#[test]
fn publish_gets_offset() {
    let mut s = session();
    let (reply, mut answer) = oneshot::channel();
    let data = serde_json::value::to_raw_value(&serde_json::json!({"t": 1})).unwrap();
    s.publish("c".into(), "e".into(), data, reply);
    let out = frames(&mut s);
    assert_eq!(out[0]["op"], "publish");
    assert_eq!(out[0]["data"]["t"], 1);
    let id = out[0]["id"].as_u64().unwrap();
    server(&mut s, &format!(r#"{{"op":"ack","id":{id},"offset":42}}"#));
    assert_eq!(answer.try_recv().unwrap().unwrap(), 42);
}

#[test]
fn disconnect_fails_publishes_and_resubscribes_on_connect() {
    let mut s = session();
    let (sub, mut rx) = subscriber(1, 8);
    let (reply, _answer) = oneshot::channel();
    s.subscribe("c".into(), sub, reply);
    let id = frames(&mut s)[0]["id"].as_u64().unwrap();
    server(&mut s, &format!(r#"{{"op":"ack","id":{id}}}"#));

    let (reply, mut in_flight) = oneshot::channel();
    let data = serde_json::value::to_raw_value(&1).unwrap();
    s.publish("c".into(), "e".into(), data.clone(), reply);
    s.take_outbox();
    s.on_disconnect();
    assert!(matches!(
        in_flight.try_recv().unwrap(),
        Err(Error::Disconnected)
    ));

    // Offline: queued up to the limit, then refused.
    let (r1, mut a1) = oneshot::channel();
    let (r2, _a2) = oneshot::channel();
    let (r3, mut a3) = oneshot::channel();
    s.publish("c".into(), "e".into(), data.clone(), r1);
    s.publish("c".into(), "e".into(), data.clone(), r2);
    s.publish("c".into(), "e".into(), data, r3);
    assert!(matches!(a3.try_recv().unwrap(), Err(Error::Disconnected)));
    assert!(frames(&mut s).is_empty());

    s.on_connect();
    let out = frames(&mut s);
    let ops: Vec<_> = out.iter().map(|f| f["op"].as_str().unwrap()).collect();
    assert_eq!(ops, ["subscribe", "publish", "publish"]);
    assert!(
        s.take_notices().is_empty(),
        "not live before the resubscribe ack"
    );
    let id = out[0]["id"].as_u64().unwrap();
    server(&mut s, &format!(r#"{{"op":"ack","id":{id}}}"#));
    assert!(matches!(s.take_notices()[..], [Notice::AllLive]));

    let id = out[1]["id"].as_u64().unwrap();
    server(&mut s, &format!(r#"{{"op":"ack","id":{id},"offset":7}}"#));
    assert_eq!(a1.try_recv().unwrap().unwrap(), 7);
    server(&mut s, &message("c", 8));
    assert_eq!(rx.try_recv().unwrap().offset, 8);
}

#[test]
fn refused_resubscribe_ends_the_stream() {
    let mut s = session();
    let (sub, mut rx) = subscriber(1, 8);
    let (reply, _answer) = oneshot::channel();
    s.subscribe("c".into(), sub, reply);
    let id = frames(&mut s)[0]["id"].as_u64().unwrap();
    server(&mut s, &format!(r#"{{"op":"ack","id":{id}}}"#));
    s.on_disconnect();
    s.on_connect();
    let id = frames(&mut s)[0]["id"].as_u64().unwrap();
    server(
        &mut s,
        &format!(r#"{{"op":"error","id":{id},"code":"forbidden","message":"no"}}"#),
    );
    let notices = s.take_notices();
    assert!(matches!(&notices[0], Notice::ResubscribeFailed { channel, .. } if channel == "c"));
    assert!(matches!(notices[1], Notice::AllLive));
    assert!(matches!(
        rx.try_recv(),
        Err(mpsc::error::TryRecvError::Disconnected)
    ));
}

#[test]
fn subscribe_while_offline_is_sent_on_connect() {
    let mut s = Session::new(8);
    let (sub, _rx) = subscriber(1, 8);
    let (reply, mut answer) = oneshot::channel();
    s.subscribe("c".into(), sub, reply);
    assert!(frames(&mut s).is_empty());
    s.on_connect();
    let out = frames(&mut s);
    assert_eq!(out[0]["op"], "subscribe");
    let id = out[0]["id"].as_u64().unwrap();
    server(&mut s, &format!(r#"{{"op":"ack","id":{id}}}"#));
    assert!(answer.try_recv().unwrap().is_ok());
}

#[test]
fn unsubscribe_during_subscribe_in_flight_undoes_it() {
    let mut s = session();
    let (sub, _rx) = subscriber(1, 8);
    let (reply, answer) = oneshot::channel();
    s.subscribe("c".into(), sub, reply);
    let id = frames(&mut s)[0]["id"].as_u64().unwrap();
    // The application gave up waiting (its request timed out).
    drop(answer);
    server(&mut s, &format!(r#"{{"op":"ack","id":{id}}}"#));
    let out = frames(&mut s);
    assert_eq!(out[0]["op"], "unsubscribe");
    assert!(s.channels.is_empty());
}

#[test]
fn heartbeat_tracks_pong() {
    let mut s = session();
    s.send_heartbeat();
    s.send_heartbeat();
    let out = frames(&mut s);
    assert_eq!(out.len(), 1, "one heartbeat at a time");
    assert!(s.heartbeat_outstanding());
    let id = out[0]["id"].as_u64().unwrap();
    server(&mut s, &format!(r#"{{"op":"pong","id":{id}}}"#));
    assert!(!s.heartbeat_outstanding());
}

#[test]
fn ping_measures_round_trip() {
    let mut s = session();
    let (reply, mut answer) = oneshot::channel();
    s.ping(reply);
    let id = frames(&mut s)[0]["id"].as_u64().unwrap();
    server(&mut s, &format!(r#"{{"op":"pong","id":{id}}}"#));
    assert!(answer.try_recv().unwrap().is_ok());
}

#[test]
fn shutdown_fails_everything() {
    let mut s = Session::new(8);
    let (sub, _rx) = subscriber(1, 8);
    let (reply, mut sub_answer) = oneshot::channel();
    s.subscribe("c".into(), sub, reply);
    let (reply, mut pub_answer) = oneshot::channel();
    s.publish(
        "c".into(),
        "e".into(),
        serde_json::value::to_raw_value(&1).unwrap(),
        reply,
    );
    s.shutdown(|| Error::ClientClosed);
    assert!(matches!(
        sub_answer.try_recv().unwrap(),
        Err(Error::ClientClosed)
    ));
    assert!(matches!(
        pub_answer.try_recv().unwrap(),
        Err(Error::ClientClosed)
    ));
}

/// A `gap` is reported like `recovered: false`, and moves the position: with a new epoch,
/// later messages with small offsets are new, not duplicates.
#[test]
fn gap_is_reported_as_unrecovered_and_resets_the_position() {
    let mut s = session();
    let (sub, mut rx) = subscriber(1, 8);
    let (reply, _answer) = oneshot::channel();
    s.subscribe("c".into(), sub, reply);
    let id = frames(&mut s)[0]["id"].as_u64().unwrap();
    server(
        &mut s,
        &format!(r#"{{"op":"ack","id":{id},"offset":40,"epoch":"e1"}}"#),
    );
    server(&mut s, &message("c", 41));
    assert_eq!(rx.try_recv().unwrap().offset, 41);
    s.take_notices();

    server(
        &mut s,
        r#"{"op":"gap","channel":"c","offset":0,"epoch":"e2"}"#,
    );
    assert!(matches!(
        s.take_notices().as_slice(),
        [Notice::Unrecovered { channel }] if channel == "c"
    ));
    server(&mut s, &message("c", 3));
    assert_eq!(
        rx.try_recv().unwrap().offset,
        3,
        "new epoch: not a duplicate"
    );
    // Same epoch: the position only moves forward.
    server(
        &mut s,
        r#"{"op":"gap","channel":"c","offset":2,"epoch":"e2"}"#,
    );
    server(&mut s, &message("c", 3));
    assert!(rx.try_recv().is_err(), "3 was delivered already");
    let pos = s.channels["c"].position.as_ref().unwrap();
    assert_eq!((pos.offset, pos.epoch.as_str()), (3, "e2"));
}
