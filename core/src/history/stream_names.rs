//! Names of the JetStream streams of history and recordings. Stream names are one namespace for
//! every app of a deployment, so no two places (an app, a namespace of an app, an app's
//! recordings) may ever be given the same name: a stream found by name would otherwise hold,
//! and republish to subscribers, another app's messages.
//!
//! For a prefix `P` (with characters other than `A-Z a-z 0-9 _ -` made `_`):
//!
//! | stream | name |
//! |---|---|
//! | an app's history | `P_history_{app}` |
//! | a namespace's history | `P_nshistory_{app}_{hash}`, `hash` = 16 hex digits of SHA-256 of `{app}\0{namespace}` |
//! | an app's recordings | `P_record_{app}` |
//!
//! Why that is injective: after `P_` the kinds start with different letters (`h`, `n`, `r`); an
//! app history or recording name ends with the app id, whole; a namespace name ends with `_`
//! and a hash of fixed length, so what lies between is the app id, whole. Two apps therefore
//! never share a name, whatever they are called (`a_ns_b_…` included), and two namespaces of
//! one app share one only if 64 bits of SHA-256 collide — an app could only collide with
//! itself. The namespace is not in the name, since its characters would need escaping
//! (`a:b`, `a_b`) and it may be 200 bytes long; the stream's description names it.
//!
//! Streams of namespaces used to be `P_history_{app}_ns_{namespace}_{hash8}`, a name the
//! history stream of an app called `{app}_ns_…` could take. [`legacy_namespace`] still finds
//! them, so history kept before the change is not lost; the gateway uses such a stream only
//! when its subjects are the namespace's own.

/// `P_history_{app}`.
pub(super) fn history(prefix: &str, app: &str) -> String {
    format!("{}_history_{app}", safe(prefix))
}

/// `P_nshistory_{app}_{hash}`.
pub(super) fn namespace(prefix: &str, app: &str, namespace: &str) -> String {
    format!(
        "{}_nshistory_{app}_{}",
        safe(prefix),
        hash_hex(app, namespace, 8)
    )
}

/// The name a namespace's stream had before [`namespace`]:
/// `P_history_{app}_ns_{namespace}_{hash8}`.
pub(super) fn legacy_namespace(prefix: &str, app: &str, namespace: &str) -> String {
    safe(&format!(
        "{prefix}_history_{app}_ns_{namespace}_{}",
        hash_hex(app, namespace, 4)
    ))
}

/// `P_record_{app}`.
pub(super) fn record(prefix: &str, app: &str) -> String {
    format!("{}_record_{app}", safe(prefix))
}

/// The first `bytes` bytes of SHA-256 of `{app}\0{namespace}`, in hex.
fn hash_hex(app: &str, namespace: &str, bytes: usize) -> String {
    let digest = ring::digest::digest(
        &ring::digest::SHA256,
        format!("{app}\0{namespace}").as_bytes(),
    );
    digest.as_ref()[..bytes]
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// `s` with every character a stream name should not hold made `_`. App ids need no such care:
/// their alphabet is `A-Z a-z 0-9 _ -`.
fn safe(s: &str) -> String {
    s.chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '_' || c == '-' {
                c
            } else {
                '_'
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    #[test]
    fn names_are_safe() {
        assert_eq!(history("waas", "demo"), "waas_history_demo");
        assert_eq!(history("t.x", "a-b"), "t_x_history_a-b");
        assert_eq!(record("waas", "demo"), "waas_record_demo");
        let a = namespace("waas", "demo", "a:b");
        let b = namespace("waas", "demo", "a_b");
        assert!(a.starts_with("waas_nshistory_demo_"), "{a}");
        assert_ne!(a, b);
    }

    /// Apps named to collide with other apps' streams: after another app's namespace stream
    /// (as named now and as named before), after the other kinds.
    #[test]
    fn no_two_places_share_a_stream_name() {
        // What follows `history_` in a namespace's name, as an app id of its own.
        let tail = |name: String| name.split_once("history_").unwrap().1.to_owned();
        let legacy_tail = tail(legacy_namespace("waas", "a", "b"));
        let new_tail = tail(namespace("waas", "a", "b"));
        let apps = [
            "a".to_owned(),
            "a_b".to_owned(),
            "ns".to_owned(),
            legacy_tail,
            new_tail,
            "history_a".into(),
            "record_a".into(),
            "nshistory_a".into(),
        ];
        let namespaces = ["b", "b_c", "c", "x:y", "x_y", "ns"];
        let mut seen: HashMap<String, String> = HashMap::new();
        let mut claim = |name: String, place: String| {
            if let Some(other) = seen.insert(name.clone(), place.clone()) {
                panic!("{place} and {other} are both {name}");
            }
        };
        for app in &apps {
            assert!(
                waas_protocol::AppId::parse(app).is_ok(),
                "{app} is a valid id"
            );
            claim(history("waas", app), format!("history of {app}"));
            claim(record("waas", app), format!("recordings of {app}"));
            for ns in namespaces {
                claim(
                    namespace("waas", app, ns),
                    format!("namespace {ns} of {app}"),
                );
            }
        }
    }
}
