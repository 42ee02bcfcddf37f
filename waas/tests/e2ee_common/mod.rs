//! Shared by the E2EE tests: device keys made once per test binary (RSA-3072 generation is the
//! slow part), members, and the search for plaintext in what the service handled.

#![allow(dead_code)]

use std::path::Path;
use std::sync::{Arc, OnceLock};
use std::time::Duration;
use waas_sdk::e2ee::{Decrypted, DeviceKeyPair, E2ee, E2eeError, EncryptedSubscription, Keyring};
use waas_sdk::token::TokenBuilder;
use waas_sdk::Client;

pub const WAIT: Duration = Duration::from_secs(20);

/// Device keys (PKCS#8 DER) shared by every test of the binary; each test uses its own
/// server, so sharing keys between tests mixes nothing.
static DEVICES: OnceLock<Vec<Vec<u8>>> = OnceLock::new();

const DEVICE_COUNT: usize = 5;

/// Device key `n` (0..5), generated on first use, all at once on parallel threads.
pub fn device(n: usize) -> DeviceKeyPair {
    let all = DEVICES.get_or_init(|| {
        let threads: Vec<_> = (0..DEVICE_COUNT)
            .map(|_| {
                std::thread::spawn(|| DeviceKeyPair::generate().unwrap().to_pkcs8_der().unwrap())
            })
            .collect();
        threads.into_iter().map(|t| t.join().unwrap()).collect()
    });
    DeviceKeyPair::from_pkcs8_der(&all[n]).unwrap()
}

pub fn keyring(dir: &Path, n: usize) -> Arc<Keyring> {
    Arc::new(Keyring::open_with(dir, device(n)).unwrap())
}

/// A member's token: subscribe and publish on `presence.>`, sharing when `share`.
pub fn token(secret: &str, app: &str, sub: &str, share: bool) -> String {
    let mut b = TokenBuilder::new(sub)
        .subscribe("presence.>")
        .publish("presence.>")
        .audience(app);
    if share {
        b = b.share("presence.>");
    }
    b.sign_hs256(secret).unwrap()
}

pub async fn client(ws_url: &str, app: &str, token: &str) -> Client {
    Client::builder()
        .url(ws_url)
        .app(app)
        .token(token)
        .connect()
        .await
        .expect("connect")
}

pub async fn member(ws_url: &str, app: &str, token: &str, keys: Arc<Keyring>) -> E2ee {
    E2ee::start(client(ws_url, app, token).await, keys)
        .await
        .expect("start e2ee")
}

/// The member `sub` of `app` (a token signed with `secret`, no sharing), its keys in `dir/sub`
/// (test device key `n`).
pub async fn user(ws_url: &str, app: &str, secret: &str, dir: &Path, sub: &str, n: usize) -> E2ee {
    member(
        ws_url,
        app,
        &token(secret, app, sub, false),
        keyring(&dir.join(sub), n),
    )
    .await
}

/// The next item of an encrypted subscription, within [`WAIT`].
pub async fn next(sub: &mut EncryptedSubscription) -> Result<Decrypted, E2eeError> {
    tokio::time::timeout(WAIT, sub.next())
        .await
        .expect("a message in time")
        .expect("subscription open")
}

/// Waits for the owner event `pick` accepts.
pub async fn owner_event<T>(
    events: &mut tokio::sync::broadcast::Receiver<waas_sdk::e2ee::OwnerEvent>,
    mut pick: impl FnMut(&waas_sdk::e2ee::OwnerEvent) -> Option<T>,
) -> T {
    tokio::time::timeout(WAIT, async {
        loop {
            let event = events.recv().await.expect("owner running");
            if let waas_sdk::e2ee::OwnerEvent::Failed { error } = &event {
                panic!("owner failed: {error}");
            }
            if let Some(t) = pick(&event) {
                return t;
            }
        }
    })
    .await
    .expect("owner event in time")
}

/// Waits until the owner has shared with `sub`.
/// `member` subscribes to `channel` and waits for the owner to share the current key with
/// `sub`; the subscription and the version shared.
pub async fn joined(
    member: &E2ee,
    events: &mut tokio::sync::broadcast::Receiver<waas_sdk::e2ee::OwnerEvent>,
    channel: &str,
    sub: &str,
) -> (EncryptedSubscription, u32) {
    let room = member.subscribe(channel).await.unwrap();
    let v = shared_with(events, sub).await;
    (room, v)
}

pub async fn shared_with(
    events: &mut tokio::sync::broadcast::Receiver<waas_sdk::e2ee::OwnerEvent>,
    sub: &str,
) -> u32 {
    owner_event(events, |e| match e {
        waas_sdk::e2ee::OwnerEvent::Shared { v, members } if members.iter().any(|m| m == sub) => {
            Some(*v)
        }
        _ => None,
    })
    .await
}

/// A secret no ciphertext, key or header could contain by chance.
pub fn secret() -> String {
    format!("plaintext-canary-{:032x}", rand_u128())
}

fn rand_u128() -> u128 {
    let a = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos();
    a ^ (std::process::id() as u128) << 64
}

/// Fails when `needle` occurs in `haystack`.
pub fn assert_absent(haystack: &[u8], needle: &[u8], what: &str) {
    assert!(
        !haystack.windows(needle.len()).any(|w| w == needle),
        "{what} holds {:?}",
        String::from_utf8_lossy(needle)
    );
}

pub fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    haystack.windows(needle.len()).any(|w| w == needle)
}
