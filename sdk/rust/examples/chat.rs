//! Two users chatting in a room.
//!
//! Start a server with `waas dev`, then:
//!
//! ```sh
//! cargo run -p waas-sdk --example chat [SERVER_URL]
//! ```
//!
//! The server URL comes from the first argument or `WAAS_URL` (default `http://127.0.0.1:8080`);
//! `WAAS_APP_ID` and `WAAS_JWT_SECRET` default to `waas dev`'s `demo` / `demo-secret`.
//!
//! Each user gets a token from "the tenant's backend" — here the example itself, signing with the
//! app secret — that lets them read every `chat.*` room but write only to `chat.room-1`.

use futures_util::StreamExt;
use serde::{Deserialize, Serialize};
use std::time::Duration;
use waas_sdk::token::TokenBuilder;
use waas_sdk::{Client, Subscription};

const ROOM: &str = "chat.room-1";

#[derive(Serialize, Deserialize)]
struct Line {
    from: String,
    text: String,
}

fn setting(name: &str, default: &str) -> String {
    std::env::var(name).unwrap_or_else(|_| default.to_owned())
}

async fn join(url: &str, app: &str, secret: &str, user: &str) -> anyhow::Result<Client> {
    let token = TokenBuilder::new(user)
        .subscribe("chat.*")
        .publish(ROOM)
        .audience(app)
        .sign_hs256(secret)?;
    Ok(Client::builder()
        .url(url)
        .app(app)
        .token(token)
        .connect()
        .await?)
}

async fn show(screen: &str, room: &mut Subscription) -> anyhow::Result<()> {
    let message = tokio::time::timeout(Duration::from_secs(5), room.next())
        .await?
        .ok_or_else(|| anyhow::anyhow!("{screen}: subscription ended"))?;
    let line: Line = message.data()?;
    println!(
        "[{screen:>5}'s screen] #{} {}: {}",
        message.offset, line.from, line.text
    );
    Ok(())
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let url = std::env::args()
        .nth(1)
        .unwrap_or_else(|| setting("WAAS_URL", "http://127.0.0.1:8080"));
    let app = setting("WAAS_APP_ID", "demo");
    let secret = setting("WAAS_JWT_SECRET", "demo-secret");

    let alice = join(&url, &app, &secret, "alice").await?;
    let bob = join(&url, &app, &secret, "bob").await?;
    println!("alice and bob connected to {url}, app {app}");

    // Subscribed before anyone speaks: `subscribe` returns once the server acknowledged, so
    // nothing said after this point is missed.
    let mut alice_room = alice.subscribe(ROOM).await?;
    let mut bob_room = bob.subscribe(ROOM).await?;

    let script = [
        ("alice", "hi bob!"),
        ("bob", "hey alice, how is the weather in Paris?"),
        ("alice", "sunny, ask the weather example"),
    ];
    for (speaker, text) in script {
        let client = if speaker == "alice" { &alice } else { &bob };
        let line = Line {
            from: speaker.into(),
            text: text.into(),
        };
        client.publish(ROOM, "say", &line).await?;
        // Everyone in the room sees every line, their own included.
        show("alice", &mut alice_room).await?;
        show("bob", &mut bob_room).await?;
    }

    // The token grants writing to room-1 only.
    match bob.publish("chat.room-2", "say", &"psst").await {
        Err(e) => println!("bob cannot write to chat.room-2: {e}"),
        Ok(_) => anyhow::bail!("chat.room-2 should have been refused"),
    }

    alice.close().await?;
    bob.close().await?;
    Ok(())
}
