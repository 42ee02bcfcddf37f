//! A command-line peer for end-to-end encryption (`docs/e2ee.md`), for interoperability tests
//! with other SDKs (the TypeScript SDK's Node tests spawn it) and for trying E2EE by hand.
//!
//! ```sh
//! cargo run -p waas-sdk --example e2ee_peer -- \
//!     --url ws://127.0.0.1:8080 --app demo --token TOKEN --keys DIR --channel presence.room-1 \
//!     COMMAND [ARGS]
//! ```
//!
//! Options (all but `--app` and `--wait-ms` required):
//! - `--url URL`: the gateway, `ws://host:port`.
//! - `--app ID`: the app, default `demo`.
//! - `--token T`: a JWT, or an API key (then the peer's `sub` is `server`).
//! - `--keys DIR`: the keyring directory (`device.pk8`, `room_keys.json`); created, with a new
//!   RSA-3072 device key, when missing. The same directory later is the same device.
//! - `--channel C`: the encrypted channel. The owner follows the members of the same channel,
//!   so make it a presence channel (`presence.…`).
//! - `--wait-ms MS`: how long `send` waits for a room key, default 15000.
//!
//! Commands:
//! - `own`: the channel's owner (API key, or a token with `caps.share`): takes the keys it has
//!   from the directory (version 1 when none), shares on `member_added`, rotates on
//!   `member_removed`. Prints `{"ready":true,"device":"<id>","sub":"<sub>"}` once running, then
//!   one JSON line per owner event: `{"shared":{"v":1,"members":["bob"]}}`,
//!   `{"rotated":{"v":2,"removed":"carol","members":["bob"]}}`, `{"failed":"<message>"}`.
//!   Runs until stdin closes or it is killed.
//! - `send N [--event E] [--text T]`: joins the channel, waits until it holds a room key, then
//!   publishes N encrypted messages with event `E` (default `msg`) and data
//!   `{"n":i,"text":"T i"}` for i = 1..N (`T` defaults to `message`). Prints
//!   `{"sent":i,"offset":o}` per message, then exits 0.
//! - `recv N`: subscribes (fetching its room keys), prints `ready device=<id>` on **stderr** once
//!   subscribed, then one line on stdout per message: the decrypted `data` as JSON, or
//!   `{"error":"<code>"}` (`unknown_key`, `decrypt_failed`, `malformed_envelope`). Exits 0 after
//!   N lines. `waas:room_key` notices are handled, not printed.
//! - `history N`: prints, oldest first, the last N messages of the channel's history (notices
//!   skipped) as `recv` prints them, and exits: what a restarted peer can still read.
//! - `rotate`: one rotation by an owner, for the members of the channel now; prints
//!   `{"rotated":{"v":2}}`.
//! - `device`: prints `{"device":"<id>","public_key":"<base64 SPKI>"}` and exits.
//!
//! Exit status 1 with a message on stderr when anything fails (bad flags, connection refused,
//! `not_shared`, no room key within `--wait-ms`).

use serde_json::{json, Value};
use std::sync::Arc;
use std::time::{Duration, Instant};
use waas_sdk::e2ee::{E2ee, E2eeError, Keyring, OwnerEvent};
use waas_sdk::protocol::e2ee::ROOM_KEY_EVENT;
use waas_sdk::Client;

struct Args {
    url: String,
    app: String,
    token: String,
    keys: String,
    channel: String,
    wait: Duration,
    event: String,
    text: String,
    command: Vec<String>,
}

fn parse() -> anyhow::Result<Args> {
    let mut it = std::env::args().skip(1);
    let (mut url, mut app, mut token, mut keys, mut channel) =
        (None, "demo".to_owned(), None, None, None);
    let (mut wait, mut event, mut text) = (15_000u64, "msg".to_owned(), "message".to_owned());
    let mut command = Vec::new();
    while let Some(arg) = it.next() {
        let mut value = || {
            it.next()
                .ok_or_else(|| anyhow::anyhow!("{arg} needs a value"))
        };
        match arg.as_str() {
            "--url" => url = Some(value()?),
            "--app" => app = value()?,
            "--token" => token = Some(value()?),
            "--keys" => keys = Some(value()?),
            "--channel" => channel = Some(value()?),
            "--wait-ms" => wait = value()?.parse()?,
            "--event" => event = value()?,
            "--text" => text = value()?,
            other if other.starts_with("--") => anyhow::bail!("unknown option {other}"),
            other => command.push(other.to_owned()),
        }
    }
    let need =
        |v: Option<String>, name: &str| v.ok_or_else(|| anyhow::anyhow!("{name} is required"));
    Ok(Args {
        url: need(url, "--url")?,
        app,
        token: need(token, "--token")?,
        keys: need(keys, "--keys")?,
        channel: need(channel, "--channel")?,
        wait: Duration::from_millis(wait),
        event,
        text,
        command,
    })
}

fn count(args: &Args) -> anyhow::Result<usize> {
    args.command
        .get(1)
        .ok_or_else(|| anyhow::anyhow!("{} needs a count", args.command[0]))?
        .parse()
        .map_err(Into::into)
}

fn line(value: &Value) {
    println!("{value}");
}

fn shown(result: Result<Value, E2eeError>) -> Value {
    result.unwrap_or_else(|e| json!({"error": e.code()}))
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = parse()?;
    let keyring = Arc::new(Keyring::open(&args.keys)?);
    let Some(command) = args.command.first().cloned() else {
        anyhow::bail!("a command is required: own, send N, recv N, history N, rotate, device");
    };
    if command == "device" {
        line(&json!({
            "device": keyring.device().id(),
            "public_key": keyring.device().public_key_b64(),
        }));
        return Ok(());
    }
    let client = Client::builder()
        .url(&args.url)
        .app(&args.app)
        .token(&args.token)
        .connect()
        .await?;
    let e2ee = E2ee::start(client.clone(), keyring).await?;
    let channel = args.channel.as_str();
    match command.as_str() {
        "own" => {
            let owner = e2ee.own(channel, channel).await?;
            let mut events = owner.events();
            line(&json!({"ready": true, "device": e2ee.device_id(), "sub": e2ee.sub()}));
            // stdin closing (the parent test ending) stops the owner.
            let (closed_tx, mut closed) = tokio::sync::oneshot::channel::<()>();
            std::thread::spawn(move || {
                let _ = std::io::copy(&mut std::io::stdin(), &mut std::io::sink());
                let _ = closed_tx.send(());
            });
            loop {
                tokio::select! {
                    event = events.recv() => match event {
                        Ok(OwnerEvent::Shared { v, members }) => line(&json!({"shared": {"v": v, "members": members}})),
                        Ok(OwnerEvent::Rotated { v, removed, members }) => line(&json!({"rotated": {"v": v, "removed": removed, "members": members}})),
                        Ok(OwnerEvent::Failed { error }) => line(&json!({"failed": error})),
                        Ok(_) => {}
                        Err(_) => break,
                    },
                    _ = &mut closed => break,
                }
            }
        }
        "send" => {
            let n = count(&args)?;
            let _room = e2ee.subscribe(channel).await?;
            let deadline = Instant::now() + args.wait;
            while e2ee.keyring().current(channel).is_none() {
                if Instant::now() >= deadline {
                    anyhow::bail!("no room key for {channel} within {:?}", args.wait);
                }
                tokio::time::sleep(Duration::from_millis(100)).await;
                e2ee.fetch(channel).await?;
            }
            for i in 1..=n {
                let data = json!({"n": i, "text": format!("{} {i}", args.text)});
                let offset = e2ee.publish(channel, &args.event, &data).await?;
                line(&json!({"sent": i, "offset": offset}));
            }
        }
        "recv" => {
            let n = count(&args)?;
            let mut room = e2ee.subscribe(channel).await?;
            eprintln!("ready device={}", e2ee.device_id());
            for _ in 0..n {
                let Some(item) = room.next().await else {
                    anyhow::bail!("the subscription ended");
                };
                line(&shown(item.map(|d| d.data)));
            }
        }
        "history" => {
            let n = count(&args)?;
            let page = client.history(channel, None, Some(n), true).await?;
            let mut out = Vec::new();
            for m in page.messages.iter() {
                let frame: Value = serde_json::from_str(m.get())?;
                let event = frame["event"].as_str().unwrap_or_default();
                if event == ROOM_KEY_EVENT {
                    continue;
                }
                out.push(shown(
                    e2ee.decrypt(channel, event, &frame["data"].to_string())
                        .await,
                ));
            }
            for value in out.iter().rev() {
                line(value);
            }
        }
        "rotate" => {
            let members: Vec<String> = if waas_sdk::presence::is_presence_name(channel) {
                client
                    .members(channel)
                    .await?
                    .into_iter()
                    .map(|m| m.id)
                    .collect()
            } else {
                Vec::new()
            };
            e2ee.fetch(channel).await?;
            let key = e2ee.rotate(channel, &members).await?;
            line(&json!({"rotated": {"v": key.v}}));
        }
        other => anyhow::bail!("unknown command {other:?}"),
    }
    client.close().await?;
    Ok(())
}
