//! The dashboard's settings, `[dashboard]` in the settings file (`docs/dashboard.md`).

use serde::Deserialize;
use std::time::Duration;

#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct DashboardConfig {
    /// How long a sign-in lasts, in seconds. Default 43200 (12 h).
    pub session_ttl_secs: u64,
    /// Marks the session cookie `Secure`: set it when browsers reach the dashboard over TLS
    /// (a TLS-terminating proxy in front). Default `false`.
    pub secure_cookies: bool,
    /// Failed sign-ins allowed per account within `login_window_secs`. Default 5.
    pub login_max_failures_per_account: u32,
    /// Failed sign-ins allowed per source address within `login_window_secs`. Default 20.
    pub login_max_failures_per_address: u32,
    /// The window failed sign-ins are counted over, in seconds. Default 900 (15 min).
    pub login_window_secs: u64,
    /// Lets anyone open an account, with a new tenant of its own, at `/dashboard/signup`.
    /// Default `false`: tenant users come by an operator's invitation only.
    pub self_signup: bool,
    /// How long an invitation link can be used, in seconds. Default 604800 (7 days).
    pub invitation_ttl_secs: u64,
    /// Longest lifetime of a token minted on an app's page, in seconds. Default 2592000 (30
    /// days).
    pub max_minted_token_ttl_secs: u64,
    /// How long the Servers page and the admin API keep showing a server connection (and a
    /// gateway) that went offline, in seconds. Default 3600 (1 h).
    pub servers_offline_keep_secs: u64,
    /// Offline server connections kept per app; the oldest go first. Default 100.
    pub servers_offline_max_per_app: usize,
    /// How often the Servers page asks for fresh figures, in milliseconds. Default 2000.
    pub servers_refresh_ms: u64,
}

impl Default for DashboardConfig {
    fn default() -> Self {
        DashboardConfig {
            session_ttl_secs: 43_200,
            secure_cookies: false,
            login_max_failures_per_account: 5,
            login_max_failures_per_address: 20,
            login_window_secs: 900,
            self_signup: false,
            invitation_ttl_secs: 604_800,
            max_minted_token_ttl_secs: 2_592_000,
            servers_offline_keep_secs: 3600,
            servers_offline_max_per_app: 100,
            servers_refresh_ms: 2000,
        }
    }
}

impl DashboardConfig {
    pub fn login_window(&self) -> Duration {
        Duration::from_secs(self.login_window_secs)
    }

    /// Refuses settings that would lock everyone out or never let a session live.
    pub fn validate(&self) -> Result<(), String> {
        if self.session_ttl_secs == 0 {
            return Err("dashboard.session_ttl_secs must be at least 1".into());
        }
        if self.login_max_failures_per_account == 0 || self.login_max_failures_per_address == 0 {
            return Err("dashboard.login_max_failures_per_* must be at least 1".into());
        }
        if self.login_window_secs == 0 {
            return Err("dashboard.login_window_secs must be at least 1".into());
        }
        if self.invitation_ttl_secs == 0 || self.max_minted_token_ttl_secs == 0 {
            return Err(
                "dashboard.invitation_ttl_secs and max_minted_token_ttl_secs must be at least 1"
                    .into(),
            );
        }
        if self.servers_refresh_ms == 0
            || self.servers_offline_keep_secs == 0
            || self.servers_offline_max_per_app == 0
        {
            return Err("dashboard.servers_* must be at least 1".into());
        }
        Ok(())
    }

    /// What the servers' view keeps of the offline ones.
    pub fn servers_monitor(&self) -> crate::servers::MonitorConfig {
        crate::servers::MonitorConfig {
            offline_keep: Duration::from_secs(self.servers_offline_keep_secs),
            offline_max_per_app: self.servers_offline_max_per_app,
        }
    }
}
