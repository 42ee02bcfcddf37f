//! Client frames along the gateway's read path: bytes of a WebSocket message, UTF-8 check,
//! [`ClientFrame::parse`], then the checks each op's handler makes on its fields before it acts
//! (channel names, RPC method, path and headers, service names, E2EE keys).

use crate::names;
use waas_gateway::keys::{check_public_key, check_put};
use waas_gateway::rpc::call::normalize_headers;
use waas_core::route::is_header_name;
use waas_protocol::e2ee;
use waas_protocol::rpc::check_method;
use waas_protocol::{ClientFrame, ErrorCode};

#[derive(serde::Deserialize)]
struct Op {
    op: String,
}

/// Every op the gateway accepts from a client (`docs/protocol.md`).
pub const OPS: &[&str] = &[
    "connect",
    "subscribe",
    "history",
    "unsubscribe",
    "presence",
    "publish",
    "ping",
    "request",
    "response",
    "serve",
    "unserve",
    "keys_publish",
    "keys_get",
    "room_key_put",
    "room_key_get",
];

/// A WebSocket text message as the gateway receives it.
pub fn message(data: &[u8]) {
    if let Ok(text) = std::str::from_utf8(data) {
        text_frame(text);
    }
}

/// Parses one text frame; returns the frame when it parsed, after checking that it re-encodes
/// to a frame that parses equal, and running the gateway's per-op checks on it.
pub fn text_frame(text: &str) -> Option<ClientFrame> {
    let frame = match ClientFrame::parse(text) {
        Ok(frame) => frame,
        Err(e) => {
            // Unreadable frames have no id to answer; the other errors keep the one given.
            match e.code {
                ErrorCode::MalformedFrame => assert_eq!(e.id, None, "{text:?}"),
                ErrorCode::UnknownOp | ErrorCode::BadRequest => {}
                other => panic!("unexpected code {other:?} for {text:?}"),
            }
            return None;
        }
    };
    let encoded = serde_json::to_string(&frame).expect("a parsed frame encodes");
    let again = ClientFrame::parse(&encoded)
        .unwrap_or_else(|e| panic!("re-encoded {encoded:?} of {text:?} does not parse: {e:?}"));
    assert_eq!(
        serde_json::to_string(&again).expect("encodes"),
        encoded,
        "{text:?}"
    );
    assert_eq!(again.id(), frame.id());
    // The op encoded is the op received. Read as the parser reads frames: other fields are
    // skipped, not parsed (a `serde_json::Value` would refuse numbers such as 1e400 in fields
    // the protocol ignores, or carries as raw JSON).
    let op = |t: &str| {
        serde_json::from_str::<Op>(t)
            .expect("a parsed frame has an op")
            .op
    };
    assert_eq!(op(text), op(&encoded), "{text:?}");
    assert!(OPS.contains(&op(&encoded).as_str()));
    gateway_checks(&frame);
    Some(frame)
}

/// What the gateway's op handlers check before acting, with the properties those checks promise.
fn gateway_checks(frame: &ClientFrame) {
    match frame {
        ClientFrame::Subscribe { channel, .. }
        | ClientFrame::History { channel, .. }
        | ClientFrame::Unsubscribe { channel, .. }
        | ClientFrame::Presence { channel, .. }
        | ClientFrame::Publish { channel, .. }
        | ClientFrame::RoomKeyGet { channel, .. } => {
            names::channel(channel);
        }
        ClientFrame::RoomKeyPut {
            channel,
            key_id,
            version,
            wrapped,
            ..
        } => {
            names::channel(channel);
            if check_put(key_id, *version, wrapped, 8).is_ok() {
                assert!(e2ee::is_id(key_id) && *version > 0);
                assert!(!wrapped.is_empty() && wrapped.len() <= 8);
                assert!(wrapped.iter().all(|w| e2ee::is_id(&w.device)));
            }
        }
        ClientFrame::Request {
            method,
            path,
            headers,
            ..
        } => {
            if check_method(method).is_ok() {
                assert!(method.bytes().all(|b| b.is_ascii_uppercase()));
            }
            names::path(path);
            headers_checked(headers);
        }
        ClientFrame::Response { headers, .. } => headers_checked(headers),
        ClientFrame::Serve { service, .. } | ClientFrame::Unserve { service, .. } => {
            names::service(service);
        }
        ClientFrame::KeysPublish { public_key, .. } => {
            if let Ok(device) = check_public_key(public_key) {
                assert!(e2ee::is_id(&device), "{device:?}");
            }
        }
        ClientFrame::Connect { .. } | ClientFrame::KeysGet { .. } | ClientFrame::Ping { .. } => {}
    }
}

/// Headers that pass have lower-case valid names and values without line breaks: nothing an
/// upstream could read as a second header or request.
fn headers_checked(headers: &waas_protocol::rpc::Headers) {
    if let Ok(out) = normalize_headers(headers.clone()) {
        assert!(out.len() <= headers.len());
        for (name, value) in &out {
            assert!(is_header_name(name) && name.to_ascii_lowercase() == *name);
            assert!(!value.contains(['\r', '\n', '\0']), "{value:?}");
        }
    }
}

/// `data[0]` chooses an op, the rest is the frame's other fields as a JSON object: the fuzzer
/// spends its time on each op's fields rather than on finding op names.
pub fn op_json(data: &[u8]) {
    let Some((&which, rest)) = data.split_first() else {
        return;
    };
    let op = OPS[usize::from(which) % OPS.len()];
    let Ok(serde_json::Value::Object(mut fields)) = serde_json::from_slice(rest) else {
        return;
    };
    fields.insert("op".into(), op.into());
    let text = serde_json::Value::Object(fields).to_string();
    match ClientFrame::parse(&text) {
        Ok(_) => {
            let frame = text_frame(&text).expect("parsed once, parses again");
            let encoded = serde_json::to_value(&frame).expect("encodes");
            assert_eq!(encoded["op"], op);
        }
        Err(e) => assert_ne!(e.code, ErrorCode::UnknownOp, "{op} is known: {text:?}"),
    }
}
