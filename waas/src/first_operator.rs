//! The dashboard's first operator account, made at start from the environment
//! (`WAAS_DASHBOARD_ADMIN_EMAIL`, `WAAS_DASHBOARD_ADMIN_PASSWORD`) or, for `waas dev` without
//! them, the printed dev login. The password is never logged.

use waas_control_plane::dashboard::accounts::{ensure_operator, AccountError};
use waas_control_plane::store::DashboardStore;

pub const EMAIL_VAR: &str = "WAAS_DASHBOARD_ADMIN_EMAIL";
pub const PASSWORD_VAR: &str = "WAAS_DASHBOARD_ADMIN_PASSWORD";

/// `waas dev`'s sign-in when the environment names no operator.
pub const DEV_EMAIL: &str = "dev@waas.local";
pub const DEV_PASSWORD: &str = "dev-password";

/// The operator the environment names, if any: both variables or neither.
pub fn from_env() -> Result<Option<(String, String)>, AccountError> {
    let var = |name| std::env::var(name).ok().filter(|v: &String| !v.is_empty());
    match (var(EMAIL_VAR), var(PASSWORD_VAR)) {
        (Some(email), Some(password)) => Ok(Some((email, password))),
        (None, None) => Ok(None),
        _ => Err(AccountError::Invalid(format!(
            "set both {EMAIL_VAR} and {PASSWORD_VAR}, or neither"
        ))),
    }
}

/// Makes the operator exist; `dev` falls back to the dev login. Returns the email and password
/// to print for `waas dev`'s dev login (only that one: a configured password is not printed).
pub async fn ensure(
    store: &dyn DashboardStore,
    dev: bool,
) -> Result<Option<(&'static str, &'static str)>, AccountError> {
    match from_env()? {
        Some((email, password)) => {
            if ensure_operator(store, &email, &password).await? {
                tracing::info!(%email, "dashboard operator created from the environment");
            }
            Ok(None)
        }
        None if dev => {
            ensure_operator(store, DEV_EMAIL, DEV_PASSWORD).await?;
            Ok(Some((DEV_EMAIL, DEV_PASSWORD)))
        }
        None => Ok(None),
    }
}
