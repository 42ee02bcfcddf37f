//! The weather broker over request/response (`docs/rpc.md`): a server answers
//! `GET /weather/{city}` on the socket it already holds, and phones ask it over theirs.
//!
//! Start a server with `waas dev`, then:
//!
//! ```sh
//! cargo run -p waas-sdk --example weather_rpc [SERVER_URL]
//! ```
//!
//! The server URL comes from the first argument or `WAAS_URL` (default `http://127.0.0.1:8080`);
//! `WAAS_APP_ID`, `WAAS_API_KEY`, `WAAS_JWT_SECRET` and `WAAS_OPERATOR_TOKEN` default to
//! `waas dev`'s `demo`, `demo-key`, `demo-secret` and `dev-operator-token`.
//!
//! 1. The app gets the route `/weather` → service `weather` through the admin API (this
//!    replaces the app's routes; with your own config, declare it under `[[apps.routes]]`).
//! 2. The broker connects with the API key and serves `weather` with a router.
//! 3. A phone, whose token may call `/weather` and nothing else, asks for three cities; the
//!    broker sees who asked. It then asks for a city the broker does not know (the broker's
//!    404) and for a path its token does not allow (refused by the gateway).

use serde::Serialize;
use std::time::Instant;
use waas_sdk::server::{Json, Reply, Request, Router};
use waas_sdk::token::TokenBuilder;
use waas_sdk::{Client, Error};

fn setting(name: &str, default: &str) -> String {
    std::env::var(name).unwrap_or_else(|_| default.to_owned())
}

#[derive(Serialize)]
struct Weather {
    city: String,
    celsius: f64,
    sky: &'static str,
    asked_by: String,
}

/// `GET /weather/{city}`: the broker's handler.
async fn weather(req: Request) -> Result<Json<Weather>, Reply> {
    let city = req.param("city").unwrap_or_default().to_owned();
    let (celsius, sky) = match city.as_str() {
        "paris" => (18.5, "cloudy"),
        "london" => (14.0, "rain"),
        "tokyo" => (24.5, "clear"),
        _ => return Err(Reply::error(404, &format!("no station in {city}"))),
    };
    Ok(Json(Weather {
        city,
        celsius,
        sky,
        asked_by: req.caller.sub,
    }))
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let url = std::env::args()
        .nth(1)
        .unwrap_or_else(|| setting("WAAS_URL", "http://127.0.0.1:8080"));
    let app = setting("WAAS_APP_ID", "demo");
    let key = setting("WAAS_API_KEY", "demo-key");
    let secret = setting("WAAS_JWT_SECRET", "demo-secret");
    let operator = setting("WAAS_OPERATOR_TOKEN", "dev-operator-token");

    // 1. The route, through the admin API.
    let http_url = url.replacen("ws://", "http://", 1);
    let response = reqwest::Client::new()
        .patch(format!("{http_url}/v1/admin/apps/{app}"))
        .bearer_auth(&operator)
        .json(&serde_json::json!({"routes": [{"prefix": "/weather", "service": "weather"}]}))
        .send()
        .await?;
    anyhow::ensure!(
        response.status().is_success(),
        "setting the route: HTTP {}: {}",
        response.status(),
        response.text().await.unwrap_or_default()
    );

    // 2. The broker.
    let broker = Client::builder()
        .url(&url)
        .app(&app)
        .token(&key)
        .connect()
        .await?;
    let _serving = broker
        .serve(
            "weather",
            Router::new().route("GET", "/weather/{city}", weather),
        )
        .await?;
    println!("broker serving \"weather\"");

    // 3. A phone.
    let token = TokenBuilder::new("phone-7")
        .call("/weather")
        .audience(&app)
        .sign_hs256(&secret)?;
    let phone = Client::builder()
        .url(&url)
        .app(&app)
        .token(token)
        .connect()
        .await?;
    for city in ["paris", "london", "tokyo"] {
        let started = Instant::now();
        let r = phone
            .request("GET", &format!("/weather/{city}"), &())
            .await?;
        println!(
            "{city:>6}: {} {} in {:?}",
            r.status,
            r.body(),
            started.elapsed()
        );
    }
    let r = phone.request("GET", "/weather/atlantis", &()).await?;
    println!("atlantis: {} {}", r.status, r.body());
    match phone.request("GET", "/admin/stations", &()).await {
        Err(Error::Rejected { code, message }) => println!("/admin: refused: {code}: {message}"),
        other => println!("/admin: unexpected {other:?}"),
    }
    phone.close().await?;
    broker.close().await?;
    Ok(())
}
