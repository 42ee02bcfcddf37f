//! The fixture of the dashboard's tenant-isolation tests: tenants `acme` and `globex`, each with
//! an app `<tenant>-app`, and ann@acme.test, a user of acme.

#![allow(dead_code)]

use serde_json::json;
use std::collections::HashMap;
use waas_control_plane::dashboard::accounts::create_user;
use waas_control_plane::store::dashboard::Role;
use waas_test_support::TestServer;

pub const ANN: &str = "ann@acme.test";
pub const ANN_PASSWORD: &str = "ann-password-1";

/// Creates both tenants and their apps; answers each app's API key by tenant.
pub async fn acme_and_globex(server: &TestServer) -> HashMap<&'static str, String> {
    let mut keys = HashMap::new();
    for t in ["acme", "globex"] {
        let (s, _) = server
            .admin(
                "POST",
                "/v1/admin/tenants",
                Some(json!({"id": t, "name": t})),
            )
            .await;
        assert_eq!(s, 201);
        let (s, app) = server
            .admin(
                "POST",
                "/v1/admin/apps",
                Some(json!({"id": format!("{t}-app"), "tenant_id": t})),
            )
            .await;
        assert_eq!(s, 201);
        keys.insert(t, app["api_key"].as_str().unwrap().to_owned());
    }
    keys
}

/// ann@acme.test, a tenant user of acme.
pub async fn ann_of_acme(server: &TestServer) {
    create_user(
        server.accounts.as_ref(),
        ANN,
        ANN_PASSWORD,
        Role::Tenant("acme".into()),
    )
    .await
    .unwrap();
}
