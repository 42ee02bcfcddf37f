//! Settings: the file over the defaults, what is refused (by key name) and what is never shown.

use super::*;

#[test]
fn apps_pusher_table_declares_pusher_credentials() {
    let s: Settings = toml::from_str(
        "pusher_secret = \"demo-p\"\n[[apps]]\nid = \"two\"\n[apps.pusher]\nsecret = \"p2\"\nclient_events = true\n[[apps]]\nid = \"three\"\n",
    )
    .unwrap();
    let seeds = s.app_seeds().unwrap();
    let pushers: Vec<_> = seeds.iter().map(|a| a.pusher.clone()).collect();
    assert_eq!(
        pushers,
        vec![
            Some(PusherSettings {
                secret: "demo-p".into(),
                client_events: false
            }),
            Some(PusherSettings {
                secret: "p2".into(),
                client_events: true
            }),
            None,
        ]
    );
    // Never in Debug output.
    let debug = format!("{s:?} {seeds:?}");
    assert!(
        !debug.contains("demo-p") && !debug.contains("p2\""),
        "{debug}"
    );
}

#[test]
fn empty_or_misspelt_pusher_settings_are_refused() {
    let invalid = |toml: &str| match toml::from_str::<Settings>(toml) {
        Err(e) => e.to_string(),
        Ok(s) => s.validate().expect_err(toml).to_string(),
    };
    let e = invalid("[[apps]]\nid = \"two\"\n[apps.pusher]\nsecret = \"\"\n");
    assert!(
        e.contains("apps.two.pusher.secret") && e.contains("empty"),
        "{e}"
    );
    let e = invalid("[[apps]]\nid = \"two\"\n[apps.pusher]\nclient_events = true\n");
    assert!(e.contains("secret"), "{e}");
    let e = invalid("[[apps]]\nid = \"two\"\n[apps.pusher]\nsecret = \"s\"\nclient_event = true\n");
    assert!(e.contains("client_event"), "{e}");
    let e = invalid("pusher_secret = \"\"\n");
    assert!(e.contains("pusher_secret") && e.contains("empty"), "{e}");
}

#[test]
fn toml_overrides_defaults_and_rejects_unknown_keys() {
    let s: Settings = toml::from_str(
        "listen = \"127.0.0.1:9000\"\n[limits]\nmax_frame_bytes = 1024\n[[apps]]\nid = \"two\"\napi_keys = [\"k2\"]\n",
    )
    .unwrap();
    assert_eq!(s.listen.port(), 9000);
    assert_eq!(s.limits.max_frame_bytes, 1024);
    assert_eq!(s.limits.max_channels_per_connection, 100);
    let apps = s.app_seeds().unwrap();
    assert_eq!(apps.len(), 2);
    assert_eq!(apps[1].api_keys, vec!["k2".to_string()]);
    assert!(toml::from_str::<Settings>("lissen = \"x\"").is_err());
}

/// The documented example is a contract: it must load as it stands.
#[test]
fn the_documented_example_loads() {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../docs/waas.example.toml");
    let s = Settings::from_file(&path).expect("docs/waas.example.toml loads");
    s.validate().expect("and is valid");
    let shop = s
        .apps
        .iter()
        .find(|a| a.id == "shop")
        .expect("the shop app");
    let chat = shop
        .limits
        .history_namespaces
        .get("chat")
        .expect("the chat namespace rule");
    assert_eq!(chat.history_size, Some(1000));
}

#[test]
fn bad_regions_are_refused_by_name() {
    let region = |name: &str, url: &str| waas_protocol::regions::Region {
        name: name.into(),
        url: url.into(),
    };
    let mut s = Settings {
        regions: vec![
            region("eu", "wss://eu.example.com"),
            region("us", "http://us"),
        ],
        ..Settings::default()
    };
    let e = s.validate().unwrap_err().to_string();
    assert!(e.contains("regions") && e.contains("ws://"), "{e}");
    s.regions[1].url = "ws://us.example.com:8080".into();
    s.validate().unwrap();
}

#[test]
fn a_bad_region_is_refused_by_name() {
    let mut s = Settings {
        region: "eu west".into(),
        ..Settings::default()
    };
    let e = s.validate().unwrap_err().to_string();
    assert!(e.contains("region"), "{e}");
    s.region = "eu-west-1".into();
    s.validate().unwrap();
}

#[test]
fn debug_shows_no_secret() {
    let mut s: Settings = toml::from_str(
        "nats = \"nats://u:natspw@127.0.0.1:4222\"\n\
         database_url = \"postgres://u:pgpw@127.0.0.1/db\"\n\
         operator_token = \"optoken\"\napi_key = \"apikey\"\njwt_secret = \"jwtsecret\"\n\
         [nats_auth]\ntoken = \"natstoken\"\n\
         [[apps]]\nid = \"two\"\napi_keys = [\"key2\"]\njwt_secret = \"secret2\"\n",
    )
    .unwrap();
    s.nats_tls.required = true;
    let shown = format!("{s:?}");
    for secret in [
        "natspw",
        "pgpw",
        "optoken",
        "apikey",
        "jwtsecret",
        "natstoken",
        "key2",
        "secret2",
    ] {
        assert!(!shown.contains(secret), "{secret} in {shown}");
    }
    assert!(
        shown.contains("127.0.0.1:4222") && shown.contains("two"),
        "{shown}"
    );
}

#[test]
fn invalid_limits_name_the_key() {
    let mut s = Settings::default();
    s.limits.max_queued_messages = 0;
    let e = s.validate().unwrap_err().to_string();
    assert!(e.contains("limits.max_queued_messages"), "{e}");
    // A member list that could not fit one bus message is refused at start-up.
    let mut s = Settings::default();
    s.limits.max_presence_members = 10_000;
    let e = s.validate().unwrap_err().to_string();
    assert!(e.contains("limits.max_presence_members"), "{e}");
    s.limits.max_presence_members = 2_000;
    s.limits.max_member_info_bytes = 16;
    s.validate().expect("2,000 members with small info fit");
}

/// Loopback is allowed by `waas dev` only, unless the settings say otherwise; private
/// networks only when allowed.
#[test]
fn outbound_rules_default_by_command() {
    let s = Settings::default();
    assert_eq!(
        s.outbound(true),
        Policy {
            allow_loopback: true,
            allow_private: false
        }
    );
    assert_eq!(s.outbound(false), Policy::default());
    let s: Settings =
        toml::from_str("outbound_allow_loopback = false\noutbound_allow_private = true\n").unwrap();
    assert_eq!(
        s.outbound(true),
        Policy {
            allow_loopback: false,
            allow_private: true
        }
    );
    let s: Settings = toml::from_str("outbound_allow_loopback = true\n").unwrap();
    assert!(s.outbound(false).allow_loopback);
}

/// `waas dev`'s declared routes are checked with its rules: loopback upstreams pass, a
/// link-local one never does.
#[test]
fn declared_routes_follow_the_outbound_rules() {
    let file = |upstream: &str, extra: &str| {
        format!(
            "{extra}[[apps]]\nid = \"two\"\n[[apps.routes]]\nprefix = \"/api\"\nupstream = \"{upstream}\"\n"
        )
    };
    let ok: Settings = toml::from_str(&file("http://127.0.0.1:9000", "")).unwrap();
    ok.validate().unwrap();
    let strict: Settings = toml::from_str(&file(
        "http://127.0.0.1:9000",
        "outbound_allow_loopback = false\n",
    ))
    .unwrap();
    let e = strict.validate().unwrap_err().to_string();
    assert!(
        e.contains("apps.two.routes") && e.contains("loopback"),
        "{e}"
    );
    let metadata: Settings = toml::from_str(&file("http://169.254.169.254", "")).unwrap();
    assert!(metadata.validate().is_err());
    let mut s = Settings::default();
    s.webhooks.response_log_bytes = 65537;
    let e = s.validate().unwrap_err().to_string();
    assert!(e.contains("webhooks.response_log_bytes"), "{e}");
}
