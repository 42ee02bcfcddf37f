//! A device's keys on disk: the RSA private key (`device.pk8`, PKCS#8 DER) and every room key
//! version it ever received (`room_keys.json`), so a restarted process is the same device and
//! still opens history and recordings made under old versions. Both files are written with mode
//! 0600, the room keys by write-then-rename so a crash never leaves half a file.

use super::crypto::{DeviceKeyPair, RoomKeyBytes};
use super::E2eeError;
use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

const DEVICE_FILE: &str = "device.pk8";
const ROOM_KEYS_FILE: &str = "room_keys.json";

/// One stored room key version.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct StoredKey {
    kid: String,
    v: u32,
    /// base64 of the raw 32 bytes.
    key: String,
}

#[derive(Debug, Default, Serialize, Deserialize)]
struct RoomKeysFile {
    /// Channel name -> its versions.
    channels: BTreeMap<String, Vec<StoredKey>>,
}

/// A room key the keyring holds.
#[derive(Clone)]
pub struct RoomKeyEntry {
    pub kid: String,
    pub v: u32,
    pub key: RoomKeyBytes,
}

impl std::fmt::Debug for RoomKeyEntry {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RoomKeyEntry")
            .field("kid", &self.kid)
            .field("v", &self.v)
            .finish_non_exhaustive()
    }
}

/// One channel's room keys by (key id, version).
type Versions = BTreeMap<(String, u32), RoomKeyBytes>;

/// The device key and room keys of one device, persisted in a directory.
#[derive(Debug)]
pub struct Keyring {
    dir: PathBuf,
    device: DeviceKeyPair,
    /// Channel -> (kid, v) -> key. Locked briefly, never across I/O but the file write that
    /// must see the same state.
    rooms: Mutex<BTreeMap<String, Versions>>,
}

fn io(path: &Path, e: std::io::Error) -> E2eeError {
    E2eeError::Storage(format!("{}: {e}", path.display()))
}

/// Writes `bytes` to `path` through a temporary file, readable by the owner only.
fn write_private(path: &Path, bytes: &[u8]) -> Result<(), E2eeError> {
    let tmp = path.with_extension("tmp");
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create(true).truncate(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    let mut file = options.open(&tmp).map_err(|e| io(&tmp, e))?;
    file.write_all(bytes).map_err(|e| io(&tmp, e))?;
    file.sync_all().map_err(|e| io(&tmp, e))?;
    std::fs::rename(&tmp, path).map_err(|e| io(path, e))
}

impl Keyring {
    /// Opens the keyring in `dir`, creating the directory and a new device key (RSA-3072, which
    /// takes a moment) when there is none.
    pub fn open(dir: impl AsRef<Path>) -> Result<Keyring, E2eeError> {
        let dir = dir.as_ref().to_path_buf();
        std::fs::create_dir_all(&dir).map_err(|e| io(&dir, e))?;
        let device_path = dir.join(DEVICE_FILE);
        let device = match std::fs::read(&device_path) {
            Ok(der) => DeviceKeyPair::from_pkcs8_der(&der)?,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                let device = DeviceKeyPair::generate()?;
                write_private(&device_path, &device.to_pkcs8_der()?)?;
                device
            }
            Err(e) => return Err(io(&device_path, e)),
        };
        Self::with_device(dir, device)
    }

    /// Opens the keyring in `dir` with a given device key (written there when the directory
    /// has none; an existing one wins). Tests use it to skip key generation.
    pub fn open_with(dir: impl AsRef<Path>, device: DeviceKeyPair) -> Result<Keyring, E2eeError> {
        let dir = dir.as_ref().to_path_buf();
        std::fs::create_dir_all(&dir).map_err(|e| io(&dir, e))?;
        let device_path = dir.join(DEVICE_FILE);
        if device_path.exists() {
            return Self::open(dir);
        }
        write_private(&device_path, &device.to_pkcs8_der()?)?;
        Self::with_device(dir, device)
    }

    fn with_device(dir: PathBuf, device: DeviceKeyPair) -> Result<Keyring, E2eeError> {
        let path = dir.join(ROOM_KEYS_FILE);
        let file: RoomKeysFile = match std::fs::read(&path) {
            Ok(bytes) => serde_json::from_slice(&bytes)
                .map_err(|e| E2eeError::Storage(format!("{}: {e}", path.display())))?,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => RoomKeysFile::default(),
            Err(e) => return Err(io(&path, e)),
        };
        let mut rooms = BTreeMap::new();
        for (channel, keys) in file.channels {
            let mut versions = BTreeMap::new();
            for k in keys {
                let key: RoomKeyBytes = B64
                    .decode(&k.key)
                    .ok()
                    .and_then(|b| b.try_into().ok())
                    .ok_or_else(|| {
                        E2eeError::Storage(format!("{}: a key is not 32 bytes", path.display()))
                    })?;
                versions.insert((k.kid, k.v), key);
            }
            rooms.insert(channel, versions);
        }
        Ok(Keyring {
            dir,
            device,
            rooms: Mutex::new(rooms),
        })
    }

    pub fn device(&self) -> &DeviceKeyPair {
        &self.device
    }

    /// The directory the keyring lives in.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The key `(kid, v)`, if held, whatever channel it came for: key ids are random, so an
    /// envelope moved to another channel finds its key and then fails on the associated data
    /// (`decrypt_failed`) rather than looking unknown.
    pub fn get(&self, kid: &str, v: u32) -> Option<RoomKeyBytes> {
        let rooms = self.rooms.lock().expect("keyring poisoned");
        let id = (kid.to_owned(), v);
        rooms
            .values()
            .find_map(|versions| versions.get(&id))
            .copied()
    }

    /// Whether `(kid, v)` is held for `channel`.
    pub fn has(&self, channel: &str, kid: &str, v: u32) -> bool {
        let rooms = self.rooms.lock().expect("keyring poisoned");
        rooms
            .get(channel)
            .is_some_and(|versions| versions.contains_key(&(kid.to_owned(), v)))
    }

    /// The newest version held for `channel` (highest `v`).
    pub fn current(&self, channel: &str) -> Option<RoomKeyEntry> {
        let rooms = self.rooms.lock().expect("keyring poisoned");
        rooms.get(channel).and_then(|versions| {
            versions
                .iter()
                .max_by_key(|((_, v), _)| *v)
                .map(|((kid, v), key)| RoomKeyEntry {
                    kid: kid.clone(),
                    v: *v,
                    key: *key,
                })
        })
    }

    /// Every version held for `channel`, oldest first.
    pub fn versions(&self, channel: &str) -> Vec<(String, u32)> {
        let rooms = self.rooms.lock().expect("keyring poisoned");
        let mut all: Vec<_> = rooms
            .get(channel)
            .map(|versions| versions.keys().cloned().collect())
            .unwrap_or_default();
        all.sort_by_key(|(_, v)| *v);
        all
    }

    /// Adds keys to `channel` and saves the file when any is new. Returns how many were new.
    pub fn insert(
        &self,
        channel: &str,
        keys: impl IntoIterator<Item = RoomKeyEntry>,
    ) -> Result<usize, E2eeError> {
        let mut rooms = self.rooms.lock().expect("keyring poisoned");
        let versions = rooms.entry(channel.to_owned()).or_default();
        let mut added = 0;
        for k in keys {
            if versions.insert((k.kid, k.v), k.key).is_none() {
                added += 1;
            }
        }
        if added > 0 {
            let file = RoomKeysFile {
                channels: rooms
                    .iter()
                    .map(|(channel, versions)| {
                        let keys = versions
                            .iter()
                            .map(|((kid, v), key)| StoredKey {
                                kid: kid.clone(),
                                v: *v,
                                key: B64.encode(key),
                            })
                            .collect();
                        (channel.clone(), keys)
                    })
                    .collect(),
            };
            let bytes = serde_json::to_vec_pretty(&file).expect("room keys serialise");
            // Written under the lock so two inserts cannot save in the wrong order.
            write_private(&self.dir.join(ROOM_KEYS_FILE), &bytes)?;
        }
        Ok(added)
    }
}
