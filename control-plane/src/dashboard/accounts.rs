//! Creating dashboard accounts: `waas admin create-user`, the first operator from the
//! environment, and the dev login of `waas dev`. Passwords are checked and hashed here and
//! never logged.

use super::password;
use crate::store::dashboard::{DashboardUser, NewDashboardUser, Role};
use crate::store::{DashboardStore, StoreError};

#[derive(Debug, thiserror::Error)]
pub enum AccountError {
    #[error("{0}")]
    Invalid(String),
    #[error(transparent)]
    Store(#[from] StoreError),
}

pub(crate) fn check_email(email: &str) -> Result<String, AccountError> {
    let email = email.trim().to_lowercase();
    let valid = email.len() <= 254
        && email
            .split_once('@')
            .is_some_and(|(local, domain)| !local.is_empty() && !domain.is_empty())
        && !email.chars().any(|c| c.is_whitespace() || c.is_control());
    if !valid {
        return Err(AccountError::Invalid(format!(
            "invalid email {email:?}: expected name@domain"
        )));
    }
    Ok(email)
}

/// Creates an account. `Conflict` when the email is taken; `NotFound` when a tenant user's
/// tenant does not exist; `Invalid` for a malformed email or a short password.
pub async fn create_user(
    store: &dyn DashboardStore,
    email: &str,
    password: &str,
    role: Role,
) -> Result<DashboardUser, AccountError> {
    let email = check_email(email)?;
    password::check_strength(password).map_err(AccountError::Invalid)?;
    let password_hash = password::hash(password).map_err(AccountError::Invalid)?;
    Ok(store
        .create_dashboard_user(NewDashboardUser {
            email,
            password_hash,
            role,
            now: super::now(),
        })
        .await?)
}

/// Makes an operator account with this email exist (the first operator, from the environment
/// or `waas dev`'s dev login). An existing account is left as it is, its password included, so
/// a password changed since is not reset at each start. Returns whether it was created.
pub async fn ensure_operator(
    store: &dyn DashboardStore,
    email: &str,
    password: &str,
) -> Result<bool, AccountError> {
    if store.dashboard_user_by_email(email.trim()).await?.is_some() {
        return Ok(false);
    }
    match create_user(store, email, password, Role::Operator).await {
        Ok(_) => Ok(true),
        // Another control-plane made it meanwhile.
        Err(AccountError::Store(StoreError::Conflict(_))) => Ok(false),
        Err(e) => Err(e),
    }
}
