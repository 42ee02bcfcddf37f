//! The bus subject layout, in one place, so that what keeps tenants apart can be read and tested
//! at once.
//!
//! Every subject starts with the deployment's prefix. What follows it tells traffic apart:
//!
//! | after `{prefix}.` | what |
//! |---|---|
//! | `{app}.{channel}` | an app's channel ([`waas_protocol::names::channel_subject`]) |
//! | `$ctl.apps.get`, `$ctl.apps.changed` | the app directory ([`crate::directory`]) |
//! | `$ctl.webhooks.report` | gateways' reports for webhooks ([`crate::webhooks::report`]) |
//! | `$ctl.nodes.report` | gateways' reports of themselves and their server connections ([`crate::nodes`]) |
//! | `$ctl.keys` | the key directory of end-to-end encryption ([`crate::keys`]) |
//! | `$ctl.recordings` | recording calls from apps' servers ([`crate::recordings`]) |
//! | `$ctl.usage.report` | gateways' usage counters ([`crate::usage`]) |
//! | `$ctl.pusher.terminate` | closing a user's Pusher connections on every gateway ([`PUSHER_TERMINATE`]) |
//! | `$rpc.{app}.{service}` | requests to a service (`waas_gateway::rpc::envelope`) |
//! | `$presence` | presence announcements between gateways (`waas_gateway::presence`) |
//! | `~h.{app}.{channel}`, `~hn.{app}.{channel}` | JetStream history ingest ([`crate::history`]) |
//!
//! An app id is 1–64 of `[A-Za-z0-9_-]`, so the token after the prefix of an app's subject never
//! starts with `$` or `~`, and the token of every internal subject does: no app id, whatever it
//! is called (`control`, `rpc`...), and no channel name reaches internal traffic, and no
//! subscription of one kind (`{prefix}.{app}.>` of a recorder included) matches the other.
//! This keeps the channel subjects, the hot path, exactly as they were, and with them the
//! JetStream streams that republish to them. Other apps' channels stay apart because the app
//! id is a whole token of its own (ids have no `.`).

/// The token of internal control traffic (control-plane queries, reports and commands).
const CONTROL: &str = "$ctl";

/// The token of request/reply traffic to services.
const RPC: &str = "$rpc";

/// `{prefix}.$ctl.{name}`: a control subject.
pub fn control(prefix: &str, name: &str) -> String {
    format!("{prefix}.{CONTROL}.{name}")
}

/// The [`control`] name on which every gateway hears `{"app": …, "user_id": …}` and closes that
/// user's signed-in Pusher connections (`waas_gateway::pusher::users`).
pub const PUSHER_TERMINATE: &str = "pusher.terminate";

/// `{prefix}.$ctl.pusher.terminate`.
pub fn pusher_terminate(prefix: &str) -> String {
    control(prefix, PUSHER_TERMINATE)
}

/// `{prefix}.$rpc.{app}.{service}`.
pub fn rpc(prefix: &str, app: &str, service: &str) -> String {
    format!("{prefix}.{RPC}.{app}.{service}")
}

/// `{prefix}.$presence`.
pub fn presence(prefix: &str) -> String {
    format!("{prefix}.$presence")
}

/// Whether `token`, the first after the prefix, belongs to internal traffic: it starts with a
/// character no app id has.
pub fn is_internal_token(token: &str) -> bool {
    token.starts_with('$') || token.starts_with('~')
}

#[cfg(test)]
mod tests {
    use super::*;
    use waas_protocol::names::channel_subject;
    use waas_protocol::{AppId, ChannelName, ServiceName};

    /// Apps named after internal tokens and channels named after internal subjects: exactly what
    /// an attacker would try.
    const APPS: &[&str] = &[
        "control", "rpc", "ctl", "presence", "h", "hn", "sys", "a", "shop", "_", "-",
    ];
    const CHANNELS: &[&str] = &[
        "apps.changed",
        "apps.get",
        "control.apps.changed",
        "webhooks.report",
        "keys",
        "recordings",
        "shop.weather",
        "$ctl.apps.changed",
        "~h.shop.x",
    ];

    fn internal_subjects(prefix: &str) -> Vec<String> {
        let mut all = vec![
            crate::directory::query_subject(prefix),
            crate::directory::changes_subject(prefix),
            crate::webhooks::report::report_subject(prefix),
            crate::keys::subject(prefix),
            crate::nodes::report_subject(prefix),
            crate::recordings::subject(prefix),
            presence(prefix),
            pusher_terminate(prefix),
            crate::usage::report_subject(prefix),
        ];
        for app in APPS {
            let app = AppId::parse(app).unwrap();
            // What `waas_gateway::rpc::envelope::subject` gives a service's requests.
            all.push(rpc(
                prefix,
                app.as_str(),
                ServiceName::parse("weather").unwrap().as_str(),
            ));
            all.push(format!("{prefix}.~h.{app}.x"));
            all.push(format!("{prefix}.~hn.{app}.x"));
        }
        all
    }

    #[test]
    fn no_channel_subject_is_an_internal_subject() {
        for prefix in ["waas", "t.x"] {
            let internal = internal_subjects(prefix);
            for subject in &internal {
                let first = subject[prefix.len() + 1..].split('.').next().unwrap();
                assert!(is_internal_token(first), "{subject}");
                assert!(
                    AppId::parse(first).is_err(),
                    "{subject} starts with an app id"
                );
            }
            for app in APPS {
                let app = AppId::parse(app).unwrap();
                assert!(!is_internal_token(app.as_str()));
                for channel in CHANNELS {
                    let Ok(channel) = ChannelName::parse(channel) else {
                        continue;
                    };
                    let s = channel_subject(prefix, &app, &channel);
                    assert!(!internal.contains(&s), "{s} is internal");
                    // Nor does a recorder's `{prefix}.{app}.>` see internal traffic.
                    let tap = format!("{prefix}.{app}.");
                    assert!(internal.iter().all(|i| !i.starts_with(&tap)), "{tap}");
                }
            }
        }
    }

    #[test]
    fn no_valid_app_id_is_an_internal_token() {
        // Every character an app id may start with, against the two internal markers.
        for c in ('\0'..='\u{7f}').filter(|c| AppId::parse(&c.to_string()).is_ok()) {
            assert!(!is_internal_token(&c.to_string()), "{c:?}");
        }
        assert!(AppId::parse("$ctl").is_err());
        assert!(AppId::parse("$rpc").is_err());
        assert!(AppId::parse("~h").is_err());
    }
}
