//! New API keys, HS256 and Pusher secrets: random, from the OS generator, shown once.

use rand::distributions::Alphanumeric;
use rand::Rng;

/// Characters of the key kept in the clear for display.
const PREFIX_LEN: usize = 8;

pub struct NewKey {
    pub key: String,
    pub prefix: String,
}

fn random(len: usize) -> String {
    rand::rngs::OsRng
        .sample_iter(&Alphanumeric)
        .take(len)
        .map(char::from)
        .collect()
}

/// An API key: `wk_` and 40 alphanumerics (≈ 238 bits).
pub fn api_key() -> NewKey {
    let key = format!("wk_{}", random(40));
    NewKey {
        prefix: key[..PREFIX_LEN].to_owned(),
        key,
    }
}

/// An HS256 secret of 48 alphanumerics (≈ 285 bits, above SHA-256's block security).
pub fn jwt_secret() -> String {
    random(48)
}

/// A Pusher-protocol secret: 40 alphanumerics (≈ 238 bits). Pusher's own are 20 hex digits;
/// its libraries take any string, so this is as strong as the other generated secrets.
pub fn pusher_secret() -> String {
    random(40)
}

/// A webhook signing secret: `whsec_` and 40 alphanumerics.
pub fn webhook_secret() -> String {
    format!("whsec_{}", random(40))
}

/// A tenant's token for the admin API: `wat_` and 40 alphanumerics (≈ 238 bits).
pub fn admin_token() -> NewKey {
    let key = format!("wat_{}", random(40));
    NewKey {
        prefix: key[..PREFIX_LEN].to_owned(),
        key,
    }
}

/// A short id for records.
pub fn id() -> String {
    random(12).to_lowercase()
}
