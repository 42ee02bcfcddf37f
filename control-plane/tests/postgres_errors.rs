//! A control-plane that cannot open its database says why and where: the driver's cause
//! ("does not exist", "connection refused") and the host, never just "error connecting to
//! server".

use waas_control_plane::store::PostgresStore;

async fn connect_error(url: &str) -> String {
    match PostgresStore::connect(url).await {
        Ok(_) => panic!("connected to {url}"),
        Err(e) => e.to_string(),
    }
}

#[tokio::test]
async fn a_missing_database_is_named_with_its_host() {
    let e =
        connect_error("postgres://postgres:pw-not-shown@127.0.0.1:5432/waas_no_such_database_here")
            .await;
    assert!(e.contains("does not exist"), "{e}");
    assert!(e.contains("127.0.0.1:5432"), "{e}");
    assert!(e.contains("waas_no_such_database_here"), "{e}");
    assert!(!e.contains("pw-not-shown"), "shows the password: {e}");
}

#[tokio::test]
async fn a_closed_port_is_named_with_host_and_port() {
    // A port that was just free: nothing listens on it.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("a free port")
        .port();
    let e = connect_error(&format!(
        "postgres://postgres:pw-not-shown@127.0.0.1:{port}/waas"
    ))
    .await;
    assert!(e.to_lowercase().contains("connection refused"), "{e}");
    assert!(e.contains(&format!("127.0.0.1:{port}")), "{e}");
    assert!(!e.contains("pw-not-shown"), "shows the password: {e}");
}
