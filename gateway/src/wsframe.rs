//! Complete server-to-client WebSocket frames as shared bytes. A delivery is encoded once per
//! gateway — header and payload in one buffer — and the same `Bytes` is queued on every
//! subscribed connection, so fan-out costs a reference count per subscriber, not an encode.

use bytes::{BufMut, Bytes, BytesMut};
use fastwebsockets::{Frame, OpCode, Payload};
use serde::Serialize;

/// Largest header fastwebsockets writes for an unmasked frame.
const MAX_HEAD: usize = 10;

fn encode(opcode: OpCode, payload: &[u8]) -> Bytes {
    let mut frame = Frame::new(true, opcode, None, Payload::Borrowed(payload));
    let mut head = [0u8; MAX_HEAD + 4];
    let n = frame.fmt_head(&mut head);
    let mut buf = BytesMut::with_capacity(n + payload.len());
    buf.put_slice(&head[..n]);
    buf.put_slice(payload);
    buf.freeze()
}

/// A text frame carrying `payload` (which must be UTF-8 JSON).
pub fn text(payload: &[u8]) -> Bytes {
    encode(OpCode::Text, payload)
}

/// A text frame carrying `value` serialised as JSON.
pub fn json<T: Serialize>(value: &T) -> Bytes {
    let payload = serde_json::to_vec(value).expect("server frames always serialise");
    text(&payload)
}

pub fn ping() -> Bytes {
    encode(OpCode::Ping, &[])
}

pub fn pong(payload: &[u8]) -> Bytes {
    encode(OpCode::Pong, payload)
}

pub fn close(code: u16, reason: &str) -> Bytes {
    let mut payload = Vec::with_capacity(2 + reason.len());
    payload.extend_from_slice(&code.to_be_bytes());
    payload.extend_from_slice(reason.as_bytes());
    encode(OpCode::Close, &payload)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn headers_by_length() {
        assert_eq!(&text(b"hi")[..], &[0x81, 2, b'h', b'i']);
        let mid = text(&[b'a'; 300]);
        assert_eq!(&mid[..4], &[0x81, 126, 1, 44]);
        assert_eq!(mid.len(), 304);
        let big = text(&vec![b'a'; 70000]);
        assert_eq!(big[1], 127);
        assert_eq!(big.len(), 70010);
        assert_eq!(&ping()[..], &[0x89, 0]);
        assert_eq!(
            &close(1001, "bye")[..],
            &[0x88, 5, 0x03, 0xe9, b'b', b'y', b'e']
        );
    }

    /// The hub reads offsets from frames already encoded for sockets; core's history, which
    /// knows no WebSocket frames, tests the bare JSON.
    #[test]
    fn offset_of_reads_an_encoded_frame() {
        use serde_json::value::RawValue;
        use waas_core::history::{offset_of, Head};
        let data = RawValue::from_string("{\"n\": 1}".into()).unwrap();
        let frame = Head::new("a.b", "e", &data, 99, false).with_offset(1234);
        assert_eq!(offset_of(&text(&frame)), Some(1234));
    }
}
