//! `pusher:signin`: a connection proves who its user is with `user_data` signed by the app's
//! server, and then receives that user's server-to-user messages. A bad signature closes the
//! connection with 4009, as Pusher does.

use super::auth;
use super::channel::{Kind, SERVER_TO_USER};
use super::codes::PusherCode;
use super::connection::Conn;
use super::wire;
use serde::Serialize;
use serde_json::Value;
use std::sync::Arc;
use waas_protocol::ChannelName;

#[derive(Serialize)]
struct Success<'a> {
    user_data: &'a str,
}

impl Conn {
    pub(super) async fn signin(&mut self, s: wire::Signin) {
        let Some(app) = self.app.clone() else { return };
        let Some(settings) = app.config.pusher.as_ref() else {
            return self.fail(PusherCode::APP_DISABLED, "the app has no Pusher settings");
        };
        let message = auth::signin_message(&self.socket_id, &s.user_data);
        if let Err(e) = auth::verify(Some(&s.auth), app.id().as_str(), &settings.secret, &message) {
            return self.fail(PusherCode::UNAUTHORIZED, &format!("sign-in refused: {e}"));
        }
        let id = match serde_json::from_str::<Value>(&s.user_data) {
            Ok(user) => match &user["id"] {
                Value::String(id) if !id.is_empty() => id.clone(),
                Value::Number(n) => n.to_string(),
                _ => {
                    return self.fail(
                        PusherCode::UNAUTHORIZED,
                        "user_data must have an \"id\" (a non-empty string or a number)",
                    )
                }
            },
            Err(e) => {
                return self.fail(
                    PusherCode::UNAUTHORIZED,
                    &format!("user_data is not JSON: {e}"),
                )
            }
        };
        if let Some(user) = &self.user {
            if user.user_id != id {
                return self.error(None, "this connection is already signed in as another user");
            }
        }
        let name = format!("{SERVER_TO_USER}{id}");
        let channel = match ChannelName::parse(&name) {
            Ok(c) => c,
            Err(e) => {
                return self.fail(
                    PusherCode::UNAUTHORIZED,
                    &format!("user id {id:?} cannot name a channel: {e}"),
                )
            }
        };
        if self.user.is_none() {
            self.user = Some(self.gw.pusher_users.sign_in(
                app.id().as_str(),
                &id,
                Arc::clone(self.out()),
            ));
            // Joined before the answer: once the client reads `signin_success`, what is sent
            // to the user reaches it.
            self.join(&app, channel, Kind::of(&name), None).await;
        }
        self.send(wire::event(
            "pusher:signin_success",
            None,
            Some(&wire::string_data(&Success {
                user_data: &s.user_data,
            })),
        ));
    }
}
