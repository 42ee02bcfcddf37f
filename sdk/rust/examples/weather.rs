//! The weather broker: one publisher per sensor, phones subscribed to different sets of cities.
//!
//! Start a server with `waas dev`, then:
//!
//! ```sh
//! cargo run -p waas-sdk --example weather [SERVER_URL] [READINGS_PER_SENSOR]
//! ```
//!
//! The server URL comes from the first argument or `WAAS_URL` (default `http://127.0.0.1:8080`);
//! `WAAS_APP_ID`, `WAAS_API_KEY` and `WAAS_JWT_SECRET` default to `waas dev`'s `demo`,
//! `demo-key` and `demo-secret`.
//!
//! - Sensors in Paris and London are plain server processes: they publish over REST with the
//!   app's API key.
//! - The Tokyo sensor is a device holding a WebSocket: its token (signed locally with the app
//!   secret) lets it publish to `weather.tokyo` and nothing else.
//! - Phones get their tokens from the REST token endpoint. The Paris phone may only read
//!   `weather.paris`; the world phone reads `weather.*`.

use futures_util::StreamExt;
use rand::Rng;
use serde::{Deserialize, Serialize};
use std::time::Duration;
use waas_sdk::protocol::{Caps, ChannelPattern, PatternSet};
use waas_sdk::token::TokenBuilder;
use waas_sdk::{Client, ServerClient, Subscription, TokenRequest};

const CITIES: [&str; 3] = ["paris", "london", "tokyo"];

#[derive(Debug, Serialize, Deserialize)]
struct Reading {
    city: String,
    celsius: f64,
    seq: u32,
}

fn setting(name: &str, default: &str) -> String {
    std::env::var(name).unwrap_or_else(|_| default.to_owned())
}

fn caps(subscribe: &[&str]) -> anyhow::Result<Caps> {
    let patterns = subscribe
        .iter()
        .map(|p| ChannelPattern::parse(p))
        .collect::<Result<Vec<_>, _>>()?;
    Ok(Caps {
        subscribe: PatternSet::new(patterns),
        publish: PatternSet::default(),
        ..Caps::default()
    })
}

fn reading(city: &str, seq: u32) -> Reading {
    let base = match city {
        "paris" => 18.0,
        "london" => 14.0,
        _ => 24.0,
    };
    Reading {
        city: city.into(),
        celsius: base + rand::thread_rng().gen_range(-2.0..2.0),
        seq,
    }
}

/// A phone: reads `expected` readings from its subscriptions, then reports.
async fn phone(name: &str, mut subs: Vec<Subscription>, expected: usize) -> anyhow::Result<()> {
    let mut merged = futures_util::stream::select_all(subs.drain(..));
    for _ in 0..expected {
        let message = tokio::time::timeout(Duration::from_secs(10), merged.next())
            .await?
            .ok_or_else(|| anyhow::anyhow!("{name}: subscriptions ended"))?;
        let r: Reading = message.data()?;
        println!(
            "{name:<12} {:<14} #{:<3} {:>5.1} °C",
            message.channel, message.offset, r.celsius
        );
    }
    println!("{name:<12} got its {expected} readings");
    Ok(())
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let url = std::env::args()
        .nth(1)
        .unwrap_or_else(|| setting("WAAS_URL", "http://127.0.0.1:8080"));
    let readings: u32 = std::env::args()
        .nth(2)
        .map(|n| n.parse())
        .transpose()?
        .unwrap_or(3);
    let app = setting("WAAS_APP_ID", "demo");
    let api_key = setting("WAAS_API_KEY", "demo-key");
    let secret = setting("WAAS_JWT_SECRET", "demo-secret");

    let rest = ServerClient::new(&url, &app, &api_key)?;

    // Phones: tokens minted by WaaS through the REST API.
    let paris_token = rest
        .mint_token(&TokenRequest {
            sub: "phone-paris".into(),
            caps: caps(&["weather.paris"])?,
            ttl: Some(600),
            info: None,
        })
        .await?;
    let world_token = rest
        .mint_token(&TokenRequest {
            sub: "phone-world".into(),
            caps: caps(&["weather.*"])?,
            ttl: Some(600),
            info: None,
        })
        .await?;
    let connect = |token: String| Client::builder().url(&url).app(&app).token(token).connect();
    let paris_phone = connect(paris_token.token).await?;
    let world_phone = connect(world_token.token).await?;

    let paris_subs = vec![paris_phone.subscribe("weather.paris").await?];
    match paris_phone.subscribe("weather.london").await {
        Err(e) => println!("phone-paris may not read weather.london: {e}"),
        Ok(_) => anyhow::bail!("weather.london should have been refused to phone-paris"),
    }
    let mut world_subs = Vec::new();
    for city in CITIES {
        world_subs.push(world_phone.subscribe(&format!("weather.{city}")).await?);
    }

    let phones = tokio::spawn(async move {
        tokio::try_join!(
            phone("phone-paris", paris_subs, readings as usize),
            phone("phone-world", world_subs, 3 * readings as usize),
        )
    });

    // Sensors.
    let mut sensors = Vec::new();
    for city in ["paris", "london"] {
        let rest = rest.clone();
        sensors.push(tokio::spawn(async move {
            for seq in 1..=readings {
                let channel = format!("weather.{city}");
                rest.publish(&channel, "reading", &reading(city, seq))
                    .await?;
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            anyhow::Ok(())
        }));
    }
    let tokyo_token = TokenBuilder::new("sensor-tokyo")
        .publish("weather.tokyo")
        .audience(&app)
        .sign_hs256(&secret)?;
    let tokyo = connect(tokyo_token).await?;
    sensors.push(tokio::spawn(async move {
        for seq in 1..=readings {
            tokyo
                .publish("weather.tokyo", "reading", &reading("tokyo", seq))
                .await?;
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        tokyo.close().await?;
        anyhow::Ok(())
    }));

    for sensor in sensors {
        sensor.await??;
    }
    phones.await??;
    paris_phone.close().await?;
    world_phone.close().await?;
    Ok(())
}
