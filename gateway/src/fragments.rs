//! Reassembly of fragmented messages (RFC 6455 §5.4), bounded by the frame limit so that a
//! client cannot grow a message without end one continuation at a time.

use bytes::BytesMut;
use fastwebsockets::OpCode;

/// What a data frame amounts to once fragments are taken into account.
#[derive(Debug, PartialEq, Eq)]
pub enum Assembled {
    /// A whole message: its opcode (text or binary) and payload.
    Message(OpCode, BytesMut),
    /// A fragment was kept; the message is not complete yet.
    Pending,
    /// The message grew past the limit.
    TooLarge,
    /// A continuation without a start, or a new message before the last one ended.
    ProtocolError,
}

#[derive(Default)]
pub struct Fragments {
    partial: Option<(OpCode, BytesMut)>,
}

impl Fragments {
    /// Takes a text, binary or continuation frame.
    pub fn push(&mut self, opcode: OpCode, fin: bool, payload: BytesMut, max: usize) -> Assembled {
        match (opcode, self.partial.take()) {
            (OpCode::Continuation, None) => Assembled::ProtocolError,
            (OpCode::Continuation, Some((first, mut buf))) => {
                if buf.len() + payload.len() > max {
                    return Assembled::TooLarge;
                }
                buf.extend_from_slice(&payload);
                if fin {
                    Assembled::Message(first, buf)
                } else {
                    self.partial = Some((first, buf));
                    Assembled::Pending
                }
            }
            (_, Some(_)) => Assembled::ProtocolError,
            (op, None) if fin => Assembled::Message(op, payload),
            (op, None) => {
                self.partial = Some((op, payload));
                Assembled::Pending
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn b(s: &str) -> BytesMut {
        BytesMut::from(s)
    }

    #[test]
    fn whole_and_fragmented() {
        let mut f = Fragments::default();
        assert_eq!(
            f.push(OpCode::Text, true, b("hi"), 10),
            Assembled::Message(OpCode::Text, b("hi"))
        );
        assert_eq!(
            f.push(OpCode::Binary, false, b("ab"), 10),
            Assembled::Pending
        );
        assert_eq!(
            f.push(OpCode::Continuation, false, b("cd"), 10),
            Assembled::Pending
        );
        assert_eq!(
            f.push(OpCode::Continuation, true, b("e"), 10),
            Assembled::Message(OpCode::Binary, b("abcde"))
        );
    }

    #[test]
    fn limits_and_violations() {
        let mut f = Fragments::default();
        assert_eq!(
            f.push(OpCode::Continuation, true, b("x"), 10),
            Assembled::ProtocolError
        );
        assert_eq!(
            f.push(OpCode::Text, false, b("12345"), 10),
            Assembled::Pending
        );
        assert_eq!(
            f.push(OpCode::Continuation, false, b("123456"), 10),
            Assembled::TooLarge
        );
        assert_eq!(f.push(OpCode::Text, false, b("a"), 10), Assembled::Pending);
        assert_eq!(
            f.push(OpCode::Text, true, b("b"), 10),
            Assembled::ProtocolError
        );
    }
}
