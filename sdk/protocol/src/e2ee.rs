//! End-to-end encryption on the wire (`docs/e2ee.md`): the envelope the SDKs publish as `data`,
//! the entries of the key directory ops, and the derivations every SDK must compute alike (the
//! device id and the associated data). The crypto itself lives in the SDKs; the service only
//! stores public and wrapped keys.

use serde::{Deserialize, Serialize};

/// `e2ee` field of the envelope format this crate describes.
pub const ENVELOPE_VERSION: u8 = 1;

/// Event of the message the service publishes on a channel after a `room_key_put`.
pub const ROOM_KEY_EVENT: &str = "waas:room_key";

/// Bytes of a GCM nonce (`iv`).
pub const IV_LEN: usize = 12;

/// Bytes of a GCM tag, at the end of `ct`.
pub const TAG_LEN: usize = 16;

/// Hex digits of a key id and of a device id.
pub const ID_HEX_LEN: usize = 32;

/// Longest wrapped key (`key`) the directory stores, in bytes before base64: room for a
/// 4096-bit device key (512 bytes) and more.
pub const MAX_WRAPPED_BYTES: usize = 1024;

/// Longest `sub` the key directory accepts, bytes.
pub const MAX_SUB_LEN: usize = 200;

/// The `data` of an encrypted publish.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Envelope {
    /// [`ENVELOPE_VERSION`].
    pub e2ee: u8,
    /// Key id of the room key.
    pub kid: String,
    /// Version of the room key.
    pub v: u32,
    /// base64 of the 12-byte nonce.
    pub iv: String,
    /// base64 of ciphertext || 16-byte tag.
    pub ct: String,
}

/// A device's published key, in the `keys` answer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DeviceKey {
    pub device: String,
    /// base64 of the RSA SubjectPublicKeyInfo DER.
    pub public_key: String,
    /// When it was last published, ms since the Unix epoch.
    pub ts: u64,
}

/// One recipient of a `room_key_put`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct WrappedKey {
    pub sub: String,
    pub device: String,
    /// base64 of RSA-OAEP(device key, raw room key).
    pub key: String,
}

/// One room key wrapped for the caller, in the `room_keys` answer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RoomKey {
    pub kid: String,
    pub v: u32,
    pub device: String,
    pub key: String,
}

/// The `data` of a [`ROOM_KEY_EVENT`] message: a version exists, for these users.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RoomKeyNotice {
    pub kid: String,
    pub v: u32,
    pub recipients: Vec<String>,
}

/// The `ack` answering `keys_publish`: an `ack` with the device id. Encodes as
/// `{"op":"ack","id":N,"device":"..."}`; [`crate::ServerFrame::parse`] reads it as a plain `ack`
/// (clients compute their device id themselves).
#[derive(Debug, Clone, Serialize)]
pub struct DeviceAck<'a> {
    pub op: &'static str,
    pub id: u64,
    pub device: &'a str,
}

impl<'a> DeviceAck<'a> {
    pub fn new(id: u64, device: &'a str) -> Self {
        DeviceAck {
            op: "ack",
            id,
            device,
        }
    }
}

/// The device id of a public key: lowercase hex of the first 16 bytes of SHA-256 over its SPKI
/// DER encoding.
pub fn device_id(spki_der: &[u8]) -> String {
    let digest = ring::digest::digest(&ring::digest::SHA256, spki_der);
    hex(&digest.as_ref()[..16])
}

/// The associated data binding an envelope to where it was published:
/// `"waas-e2ee/1\n" + channel + "\n" + event`.
pub fn aad(channel: &str, event: &str) -> Vec<u8> {
    let mut aad = Vec::with_capacity(12 + channel.len() + 1 + event.len());
    aad.extend_from_slice(b"waas-e2ee/1\n");
    aad.extend_from_slice(channel.as_bytes());
    aad.push(b'\n');
    aad.extend_from_slice(event.as_bytes());
    aad
}

/// Whether `s` is a key id or device id: exactly 32 lowercase hex digits.
pub fn is_id(s: &str) -> bool {
    s.len() == ID_HEX_LEN && s.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
}

/// Lowercase hex of `bytes`.
pub fn hex(bytes: &[u8]) -> String {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut s = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        s.push(DIGITS[(b >> 4) as usize] as char);
        s.push(DIGITS[(b & 15) as usize] as char);
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn aad_and_ids() {
        assert_eq!(aad("c.1", "say"), b"waas-e2ee/1\nc.1\nsay".to_vec());
        // SHA-256("") = e3b0c442 98fc1c14 9afbf4c8 996fb924 ...
        assert_eq!(device_id(b""), "e3b0c44298fc1c149afbf4c8996fb924");
        assert!(is_id(&device_id(b"x")));
        assert!(!is_id("E3B0C44298FC1C149AFBF4C8996FB924"));
        assert!(!is_id("e3b0"));
    }

    #[test]
    fn device_ack_reads_as_ack() {
        let text = serde_json::to_string(&DeviceAck::new(7, "ab")).unwrap();
        assert_eq!(text, r#"{"op":"ack","id":7,"device":"ab"}"#);
        assert!(matches!(
            crate::ServerFrame::parse(&text),
            Ok(crate::ServerFrame::Ack { id: 7, .. })
        ));
    }
}
