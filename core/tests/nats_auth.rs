//! The NATS bus against private `nats-server`s that require credentials or TLS: each kind of
//! credentials is accepted when right and refused, with a clear error, when wrong.

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use bytes::Bytes;
use futures_util::StreamExt;
use nkeys::KeyPair;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;
use waas_core::bus::nats::{NatsBus, NatsOptions};
use waas_core::bus::nats_auth::{NatsAuth, NatsTls};
use waas_core::bus::Bus;
use waas_core::redact::Secret;
use waas_test_support::nats::NatsServer;

fn options(auth: NatsAuth) -> NatsOptions {
    NatsOptions {
        auth,
        connect_timeout: Duration::from_secs(3),
        ..NatsOptions::default()
    }
}

/// Connects, then proves the connection carries messages: a round trip through the server.
async fn works(url: &str, options: NatsOptions, server: &NatsServer) {
    let bus = match NatsBus::connect(url, options).await {
        Ok(bus) => bus,
        Err(e) => panic!("refused: {e}\nserver log:\n{}", server.log()),
    };
    let mut sub = bus.subscribe("auth.check").await.expect("subscribe");
    bus.publish("auth.check", Bytes::from_static(b"hi"))
        .await
        .expect("publish");
    let got = tokio::time::timeout(Duration::from_secs(5), sub.next())
        .await
        .expect("message in time");
    assert_eq!(got.as_deref(), Some(&b"hi"[..]));
}

/// The error of a connection NATS must refuse.
async fn refused(url: &str, options: NatsOptions) -> String {
    match NatsBus::connect(url, options).await {
        Ok(_) => panic!("connected with wrong credentials"),
        Err(e) => e.to_string(),
    }
}

#[tokio::test]
async fn user_and_password_from_the_url_or_the_settings() {
    let server =
        NatsServer::start_with_config("authorization { user: waas, password: \"pw-right-1\" }\n");
    let host = server.url().trim_start_matches("nats://").to_owned();
    works(
        &format!("nats://waas:pw-right-1@{host}"),
        options(NatsAuth::None),
        &server,
    )
    .await;
    let right = NatsAuth::UserPassword {
        user: "waas".into(),
        password: Secret::new("pw-right-1"),
    };
    works(&server.url(), options(right.clone()), &server).await;

    let e = refused(
        &format!("nats://waas:pw-wrong-2@{host}"),
        options(NatsAuth::None),
    )
    .await;
    assert!(e.contains("refused the credentials"), "{e}");
    assert!(e.contains(&host), "names the server: {e}");
    assert!(!e.contains("pw-wrong-2"), "shows the password: {e}");
    let wrong = NatsAuth::UserPassword {
        user: "waas".into(),
        password: Secret::new("pw-wrong-2"),
    };
    let e = refused(&server.url(), options(wrong)).await;
    assert!(e.contains("refused the credentials"), "{e}");
    // No credentials at all: refused too, not left hanging.
    let e = refused(&server.url(), options(NatsAuth::None)).await;
    assert!(e.contains("refused the credentials"), "{e}");
    // Both in the URL and in the settings: refused before connecting.
    let e = refused(&format!("nats://waas:pw-right-1@{host}"), options(right)).await;
    assert!(e.contains("in one place"), "{e}");
}

#[tokio::test]
async fn token_from_the_url_or_the_settings() {
    let server = NatsServer::start_with_config("authorization { token: \"tok-right-1\" }\n");
    let host = server.url().trim_start_matches("nats://").to_owned();
    works(
        &server.url(),
        options(NatsAuth::Token(Secret::new("tok-right-1"))),
        &server,
    )
    .await;
    works(
        &format!("nats://tok-right-1@{host}"),
        options(NatsAuth::None),
        &server,
    )
    .await;
    let e = refused(
        &server.url(),
        options(NatsAuth::Token(Secret::new("tok-wrong-2"))),
    )
    .await;
    assert!(e.contains("refused the credentials"), "{e}");
    assert!(!e.contains("tok-wrong-2"), "{e}");
}

#[tokio::test]
async fn nkey_seed() {
    let user = KeyPair::new_user();
    let server = NatsServer::start_with_config(&format!(
        "authorization {{ users = [ {{ nkey: \"{}\" }} ] }}\n",
        user.public_key()
    ));
    let seed = user.seed().expect("a seed");
    works(
        &server.url(),
        options(NatsAuth::NKeySeed(Secret::new(seed))),
        &server,
    )
    .await;
    let stranger = KeyPair::new_user().seed().expect("a seed");
    let e = refused(
        &server.url(),
        options(NatsAuth::NKeySeed(Secret::new(stranger))),
    )
    .await;
    assert!(e.contains("refused the credentials"), "{e}");
    let e = refused(
        &server.url(),
        options(NatsAuth::NKeySeed(Secret::new("SUnot-a-seed"))),
    )
    .await;
    assert!(e.contains("not a valid seed"), "{e}");
    assert!(!e.contains("SUnot-a-seed"), "{e}");
}

/// Runs `openssl` with `args` in `dir`, failing the test with its output if it fails.
fn openssl(dir: &Path, args: &[&str]) {
    let out = Command::new("openssl")
        .args(args)
        .current_dir(dir)
        .output()
        .expect("the openssl command (Debian: apt install openssl)");
    assert!(
        out.status.success(),
        "openssl {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// A CA, a server certificate for 127.0.0.1 and a client certificate, made for this test.
fn certificates(dir: &Path) -> impl Fn(&str) -> PathBuf + '_ {
    let ec = [
        "-newkey",
        "ec",
        "-pkeyopt",
        "ec_paramgen_curve:prime256v1",
        "-nodes",
    ];
    let mut ca = vec!["req", "-x509"];
    ca.extend(ec);
    ca.extend([
        "-keyout",
        "ca.key",
        "-out",
        "ca.pem",
        "-days",
        "1",
        "-subj",
        "/CN=waas test CA",
    ]);
    openssl(dir, &ca);
    for (name, ext) in [
        (
            "server",
            "subjectAltName=IP:127.0.0.1\nextendedKeyUsage=serverAuth\n",
        ),
        ("client", "extendedKeyUsage=clientAuth\n"),
    ] {
        std::fs::write(dir.join(format!("{name}.ext")), ext).expect("write extensions");
        let mut req = vec!["req"];
        req.extend(ec);
        let (key, csr, pem, extfile, cn) = (
            format!("{name}.key"),
            format!("{name}.csr"),
            format!("{name}.pem"),
            format!("{name}.ext"),
            format!("/CN=waas test {name}"),
        );
        req.extend(["-keyout", &key, "-out", &csr, "-subj", &cn]);
        openssl(dir, &req);
        openssl(
            dir,
            &[
                "x509",
                "-req",
                "-in",
                &csr,
                "-CA",
                "ca.pem",
                "-CAkey",
                "ca.key",
                "-CAcreateserial",
                "-out",
                &pem,
                "-days",
                "1",
                "-extfile",
                &extfile,
            ],
        );
    }
    move |file: &str| dir.join(file)
}

#[tokio::test]
async fn tls_with_a_private_ca_and_client_certificates() {
    let dir = tempfile::tempdir().expect("temp dir");
    let file = certificates(dir.path());
    let server = NatsServer::start_with_config(&format!(
        "tls {{ cert_file: {:?}, key_file: {:?}, ca_file: {:?}, verify: true }}\n",
        file("server.pem"),
        file("server.key"),
        file("ca.pem"),
    ));
    let tls = NatsTls {
        ca_file: Some(file("ca.pem")),
        cert_file: Some(file("client.pem")),
        key_file: Some(file("client.key")),
        required: true,
    };
    works(
        &server.url(),
        NatsOptions {
            tls: tls.clone(),
            ..options(NatsAuth::None)
        },
        &server,
    )
    .await;
    // The server's certificate is not trusted without the CA.
    let e = refused(
        &server.url(),
        NatsOptions {
            tls: NatsTls {
                ca_file: None,
                ..tls.clone()
            },
            ..options(NatsAuth::None)
        },
    )
    .await;
    assert!(e.contains(&server.url()[7..]), "{e}");
    // A missing file is named at once.
    let e = refused(
        &server.url(),
        NatsOptions {
            tls: NatsTls {
                ca_file: Some(file("nope.pem")),
                ..tls
            },
            ..options(NatsAuth::None)
        },
    )
    .await;
    assert!(e.contains("nope.pem") && e.contains("CA"), "{e}");
}

/// A JWT of the NATS decentralised auth scheme, signed by `issuer`.
fn jwt(issuer: &KeyPair, subject: &str, nats: serde_json::Value) -> String {
    let header = URL_SAFE_NO_PAD.encode(br#"{"typ":"JWT","alg":"ed25519-nkey"}"#);
    let claims = serde_json::json!({
        "jti": format!("{:016X}", rand::random::<u64>()),
        "iat": 1_700_000_000u64,
        "iss": issuer.public_key(),
        "name": subject,
        "sub": subject,
        "nats": nats,
    });
    let body = URL_SAFE_NO_PAD.encode(claims.to_string());
    let signature = issuer
        .sign(format!("{header}.{body}").as_bytes())
        .expect("sign");
    format!("{header}.{body}.{}", URL_SAFE_NO_PAD.encode(signature))
}

fn account_jwt(operator: &KeyPair, account: &KeyPair) -> String {
    jwt(
        operator,
        &account.public_key(),
        serde_json::json!({
            "limits": {"subs": -1, "data": -1, "payload": -1, "imports": -1, "exports": -1,
                       "wildcards": true, "conn": -1, "leaf": -1},
            "type": "account", "version": 2
        }),
    )
}

fn creds(jwt: &str, seed: &str) -> String {
    format!(
        "-----BEGIN NATS USER JWT-----\n{jwt}\n------END NATS USER JWT------\n\n\
         ************************* IMPORTANT *************************\n\n\
         -----BEGIN USER NKEY SEED-----\n{seed}\n------END USER NKEY SEED------\n"
    )
}

#[tokio::test]
async fn creds_file_in_operator_mode() {
    let operator = KeyPair::new_operator();
    let (account, system, user) = (
        KeyPair::new_account(),
        KeyPair::new_account(),
        KeyPair::new_user(),
    );
    let operator_jwt = jwt(
        &operator,
        &operator.public_key(),
        serde_json::json!({"type": "operator", "version": 2}),
    );
    let server = NatsServer::start_with_config(&format!(
        "operator: {operator_jwt:?}\nsystem_account: {sys:?}\nresolver: MEMORY\n\
         resolver_preload: {{ {acc}: {acc_jwt:?}, {sys}: {sys_jwt:?} }}\n",
        sys = system.public_key(),
        acc = account.public_key(),
        acc_jwt = account_jwt(&operator, &account),
        sys_jwt = account_jwt(&operator, &system),
    ));
    let user_jwt = jwt(
        &account,
        &user.public_key(),
        serde_json::json!({"pub": {}, "sub": {}, "subs": -1, "data": -1, "payload": -1,
                           "type": "user", "version": 2}),
    );
    let dir = tempfile::tempdir().expect("temp dir");
    let good = dir.path().join("user.creds");
    std::fs::write(&good, creds(&user_jwt, &user.seed().expect("seed"))).expect("write");
    works(
        &server.url(),
        options(NatsAuth::CredsFile(good.clone())),
        &server,
    )
    .await;
    // The JWT with another user's seed: the signature does not match.
    let other = dir.path().join("other.creds");
    let stranger = KeyPair::new_user().seed().expect("seed");
    std::fs::write(&other, creds(&user_jwt, &stranger)).expect("write");
    let e = refused(&server.url(), options(NatsAuth::CredsFile(other))).await;
    assert!(e.contains("refused the credentials"), "{e}");
    // A malformed or missing file is reported with its path.
    let bad = dir.path().join("bad.creds");
    std::fs::write(&bad, "not a creds file").expect("write");
    let e = refused(&server.url(), options(NatsAuth::CredsFile(bad))).await;
    assert!(e.contains("bad.creds"), "{e}");
    let e = refused(
        &server.url(),
        options(NatsAuth::CredsFile(dir.path().join("missing.creds"))),
    )
    .await;
    assert!(e.contains("missing.creds"), "{e}");
}
