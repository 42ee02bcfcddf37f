//! Apps declared in configuration (the `waas dev` default app, `[[apps]]` entries) are made to
//! exist in the store at start-up, so configuration and admin API meet in one place.

use crate::secrets;
use crate::store::{AppPatch, AppRecord, NewApiKey, NewApp, NewTenant, Store, StoreError};
use waas_core::app::{hash_api_key, AppLimits, PusherSettings};
use waas_core::route::Route;
use waas_protocol::AppId;

/// Tenant that owns apps declared in configuration.
pub const CONFIG_TENANT: &str = "default";

#[derive(Clone)]
pub struct AppSeed {
    pub id: AppId,
    /// API keys in clear, as the operator wrote them; stored hashed.
    pub api_keys: Vec<String>,
    pub jwt_secret: Option<String>,
    pub jwt_rsa_public_key: Option<String>,
    pub jwt_ec_public_key: Option<String>,
    pub limits: AppLimits,
    /// Request routes; `None` leaves the stored ones alone (so routes set through the admin
    /// API survive a restart), `Some` replaces them.
    pub routes: Option<Vec<Route>>,
    /// Pusher credentials (`[apps.pusher]`); `None` leaves the stored ones alone (so a secret
    /// rotated through the admin API survives a restart), `Some` sets them.
    pub pusher: Option<PusherSettings>,
}

/// Creates the app (and the config tenant) or brings its keys and limits in line with the seed.
/// Keys added through the admin API are kept; declared keys are added when missing.
pub async fn ensure_app(store: &dyn Store, seed: AppSeed) -> Result<AppRecord, StoreError> {
    match store.get_tenant(CONFIG_TENANT).await {
        Ok(_) => {}
        Err(StoreError::NotFound(_)) => {
            match store
                .create_tenant(NewTenant {
                    id: Some(CONFIG_TENANT.into()),
                    name: "Apps from configuration".into(),
                })
                .await
            {
                Ok(_) | Err(StoreError::Conflict(_)) => {}
                Err(e) => return Err(e),
            }
        }
        Err(e) => return Err(e),
    }
    let mut app = match store.get_app(&seed.id).await {
        Ok(existing) => {
            let patch = AppPatch {
                name: None,
                jwt_secret: (existing.jwt_secret != seed.jwt_secret)
                    .then(|| seed.jwt_secret.clone()),
                jwt_rsa_public_key: (existing.jwt_rsa_public_key != seed.jwt_rsa_public_key)
                    .then(|| seed.jwt_rsa_public_key.clone()),
                jwt_ec_public_key: (existing.jwt_ec_public_key != seed.jwt_ec_public_key)
                    .then(|| seed.jwt_ec_public_key.clone()),
                limits: (existing.limits != seed.limits).then(|| seed.limits.clone()),
                routes: seed.routes.clone().filter(|r| *r != existing.routes),
                // Set through the admin API only; configuration leaves it alone.
                allowed_origins: None,
                pusher_secret: seed
                    .pusher
                    .as_ref()
                    .filter(|p| existing.pusher_secret.as_ref() != Some(&p.secret))
                    .map(|p| Some(p.secret.clone())),
                pusher_client_events: seed
                    .pusher
                    .as_ref()
                    .filter(|p| existing.pusher_client_events != p.client_events)
                    .map(|p| p.client_events),
            };
            if patch == AppPatch::default() {
                existing
            } else {
                store.update_app(&seed.id, patch).await?
            }
        }
        Err(StoreError::NotFound(_)) => {
            let created = store
                .create_app(NewApp {
                    id: seed.id.clone(),
                    tenant_id: CONFIG_TENANT.into(),
                    name: seed.id.to_string(),
                    jwt_secret: seed.jwt_secret.clone(),
                    jwt_rsa_public_key: seed.jwt_rsa_public_key.clone(),
                    jwt_ec_public_key: seed.jwt_ec_public_key.clone(),
                    limits: seed.limits.clone(),
                    pusher_secret: seed.pusher.as_ref().map(|p| p.secret.clone()),
                    pusher_client_events: seed.pusher.as_ref().is_some_and(|p| p.client_events),
                })
                .await?;
            match &seed.routes {
                Some(routes) if !routes.is_empty() => {
                    let patch = AppPatch {
                        routes: Some(routes.clone()),
                        ..AppPatch::default()
                    };
                    store.update_app(&seed.id, patch).await?
                }
                _ => created,
            }
        }
        Err(e) => return Err(e),
    };
    for key in &seed.api_keys {
        let hash = hash_api_key(key);
        if app.api_keys.iter().any(|k| k.hash == hash) {
            continue;
        }
        app = store
            .add_api_key(
                &seed.id,
                NewApiKey {
                    id: secrets::id(),
                    prefix: key.chars().take(8).collect(),
                    hash,
                    label: Some("from configuration".into()),
                },
            )
            .await?;
    }
    Ok(app)
}

/// Leaves out the API keys and the HS256 secret.
impl std::fmt::Debug for AppSeed {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AppSeed")
            .field("id", &self.id)
            .field("api_keys", &self.api_keys.len())
            .field("jwt_secret", &waas_core::redact::option(&self.jwt_secret))
            .field("limits", &self.limits)
            .field("routes", &self.routes)
            .field("pusher", &self.pusher)
            .finish_non_exhaustive()
    }
}
