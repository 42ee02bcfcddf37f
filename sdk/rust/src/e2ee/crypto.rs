//! The primitives of `docs/e2ee.md`, from audited crates: RSA-OAEP-SHA256 (`rsa`, `sha2`) for
//! device keys and wrapping, AES-256-GCM and randomness from `ring`. Nothing here does I/O.

use super::E2eeError;
use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine;
use ring::aead::{Aad, LessSafeKey, Nonce, UnboundKey, AES_256_GCM};
use ring::rand::{SecureRandom, SystemRandom};
use rsa::pkcs8::{DecodePrivateKey, DecodePublicKey, EncodePrivateKey, EncodePublicKey};
use rsa::{Oaep, RsaPrivateKey, RsaPublicKey};
use sha2::Sha256;
use waas_protocol::e2ee::{self, Envelope, ENVELOPE_VERSION, IV_LEN, TAG_LEN};

/// Modulus size of the device keys this SDK makes.
pub const RSA_BITS: usize = 3072;

/// A raw AES-256 room key.
pub type RoomKeyBytes = [u8; 32];

fn crypto(e: impl std::fmt::Display) -> E2eeError {
    E2eeError::Crypto(e.to_string())
}

/// `n` random bytes from the system's CSPRNG.
pub fn random<const N: usize>() -> [u8; N] {
    let mut bytes = [0u8; N];
    SystemRandom::new()
        .fill(&mut bytes)
        .expect("the system random number generator works");
    bytes
}

/// A new key id: 16 random bytes as 32 lowercase hex digits.
pub fn new_key_id() -> String {
    e2ee::hex(&random::<16>())
}

/// A device's RSA-OAEP key pair, with its public key encoded as published.
pub struct DeviceKeyPair {
    private: RsaPrivateKey,
    public_der: Vec<u8>,
    id: String,
}

impl std::fmt::Debug for DeviceKeyPair {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DeviceKeyPair")
            .field("id", &self.id)
            .finish_non_exhaustive()
    }
}

impl DeviceKeyPair {
    /// A new 3072-bit key pair (e = 65537).
    pub fn generate() -> Result<Self, E2eeError> {
        let private = RsaPrivateKey::new(&mut rand::rngs::OsRng, RSA_BITS).map_err(crypto)?;
        Self::from_private(private)
    }

    fn from_private(private: RsaPrivateKey) -> Result<Self, E2eeError> {
        let public_der = RsaPublicKey::from(&private)
            .to_public_key_der()
            .map_err(crypto)?
            .as_bytes()
            .to_vec();
        let id = e2ee::device_id(&public_der);
        Ok(DeviceKeyPair {
            private,
            public_der,
            id,
        })
    }

    /// Reads a private key in PKCS#8 DER.
    pub fn from_pkcs8_der(der: &[u8]) -> Result<Self, E2eeError> {
        Self::from_private(RsaPrivateKey::from_pkcs8_der(der).map_err(crypto)?)
    }

    /// The private key in PKCS#8 DER, for storage.
    pub fn to_pkcs8_der(&self) -> Result<Vec<u8>, E2eeError> {
        Ok(self
            .private
            .to_pkcs8_der()
            .map_err(crypto)?
            .as_bytes()
            .to_vec())
    }

    /// The device id (`docs/e2ee.md#device-key`).
    pub fn id(&self) -> &str {
        &self.id
    }

    /// The public key as published: base64 of the SPKI DER.
    pub fn public_key_b64(&self) -> String {
        B64.encode(&self.public_der)
    }

    /// Opens a room key wrapped for this device.
    pub fn unwrap_key(&self, wrapped_b64: &str) -> Result<RoomKeyBytes, E2eeError> {
        let wrapped = B64.decode(wrapped_b64).map_err(crypto)?;
        let raw = self
            .private
            .decrypt(Oaep::new::<Sha256>(), &wrapped)
            .map_err(crypto)?;
        raw.try_into()
            .map_err(|_| E2eeError::Crypto("a wrapped room key is not 32 bytes".into()))
    }
}

/// Wraps `key` for the device whose public key (base64 SPKI DER) is `public_key_b64`.
pub fn wrap_key(public_key_b64: &str, key: &RoomKeyBytes) -> Result<String, E2eeError> {
    let der = B64.decode(public_key_b64).map_err(crypto)?;
    let public = RsaPublicKey::from_public_key_der(&der).map_err(crypto)?;
    let wrapped = public
        .encrypt(&mut rand::rngs::OsRng, Oaep::new::<Sha256>(), key)
        .map_err(crypto)?;
    Ok(B64.encode(wrapped))
}

fn aead_key(key: &RoomKeyBytes) -> LessSafeKey {
    LessSafeKey::new(UnboundKey::new(&AES_256_GCM, key).expect("32-byte AES-256 keys"))
}

/// Encrypts `plaintext` (the JSON text of the data) for `channel` and `event`.
pub fn seal(
    key: &RoomKeyBytes,
    kid: &str,
    v: u32,
    channel: &str,
    event: &str,
    plaintext: &[u8],
) -> Envelope {
    let iv = random::<IV_LEN>();
    let mut buf = plaintext.to_vec();
    aead_key(key)
        .seal_in_place_append_tag(
            Nonce::assume_unique_for_key(iv),
            Aad::from(e2ee::aad(channel, event)),
            &mut buf,
        )
        .expect("AES-GCM seals any message under 64 GiB");
    Envelope {
        e2ee: ENVELOPE_VERSION,
        kid: kid.to_owned(),
        v,
        iv: B64.encode(iv),
        ct: B64.encode(buf),
    }
}

/// The envelope in `data` (JSON text), checked for shape but not opened.
pub fn parse_envelope(data: &str) -> Result<(Envelope, [u8; IV_LEN], Vec<u8>), E2eeError> {
    let envelope: Envelope = serde_json::from_str(data)
        .map_err(|e| E2eeError::MalformedEnvelope(format!("not an envelope: {e}")))?;
    if envelope.e2ee != ENVELOPE_VERSION {
        return Err(E2eeError::MalformedEnvelope(format!(
            "envelope format {} (this SDK reads {ENVELOPE_VERSION})",
            envelope.e2ee
        )));
    }
    let iv: [u8; IV_LEN] = B64
        .decode(&envelope.iv)
        .ok()
        .and_then(|iv| iv.try_into().ok())
        .ok_or_else(|| E2eeError::MalformedEnvelope("\"iv\" is not base64 of 12 bytes".into()))?;
    let ct = B64
        .decode(&envelope.ct)
        .map_err(|e| E2eeError::MalformedEnvelope(format!("\"ct\" is not base64: {e}")))?;
    if ct.len() < TAG_LEN {
        return Err(E2eeError::MalformedEnvelope(
            "\"ct\" is shorter than the tag".into(),
        ));
    }
    Ok((envelope, iv, ct))
}

/// Decrypts a ciphertext (with its tag) published on `channel` under `event`.
pub fn open(
    key: &RoomKeyBytes,
    iv: [u8; IV_LEN],
    mut ct: Vec<u8>,
    channel: &str,
    event: &str,
) -> Result<Vec<u8>, E2eeError> {
    let len = aead_key(key)
        .open_in_place(
            Nonce::assume_unique_for_key(iv),
            Aad::from(e2ee::aad(channel, event)),
            &mut ct,
        )
        .map_err(|_| E2eeError::DecryptFailed)?
        .len();
    ct.truncate(len);
    Ok(ct)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn seal_open_and_aad() {
        let key = random::<32>();
        let kid = new_key_id();
        let env = seal(&key, &kid, 1, "c.1", "say", br#"{"a":1}"#);
        let text = serde_json::to_string(&env).unwrap();
        let (e, iv, ct) = parse_envelope(&text).unwrap();
        assert_eq!((e.kid.as_str(), e.v), (kid.as_str(), 1));
        assert_eq!(
            open(&key, iv, ct.clone(), "c.1", "say").unwrap(),
            br#"{"a":1}"#
        );
        assert!(matches!(
            open(&key, iv, ct.clone(), "c.2", "say"),
            Err(E2eeError::DecryptFailed)
        ));
        assert!(matches!(
            open(&key, iv, ct.clone(), "c.1", "other"),
            Err(E2eeError::DecryptFailed)
        ));
        let mut tampered = ct;
        tampered[0] ^= 1;
        assert!(matches!(
            open(&key, iv, tampered, "c.1", "say"),
            Err(E2eeError::DecryptFailed)
        ));
        for bad in [
            "1",
            r#"{"e2ee":2,"kid":"k","v":1,"iv":"AAAAAAAAAAAAAAAA","ct":"AAAAAAAAAAAAAAAAAAAAAA=="}"#,
            r#"{"e2ee":1,"kid":"k","v":1,"iv":"AAAA","ct":"AAAAAAAAAAAAAAAAAAAAAA=="}"#,
            r#"{"e2ee":1,"kid":"k","v":1,"iv":"AAAAAAAAAAAAAAAA","ct":"AAAA"}"#,
            r#"{"e2ee":1,"kid":"k","v":1,"iv":"AAAAAAAAAAAAAAAA","ct":"%%"}"#,
        ] {
            assert!(
                matches!(parse_envelope(bad), Err(E2eeError::MalformedEnvelope(_))),
                "{bad}"
            );
        }
    }
}
