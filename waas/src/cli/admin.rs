//! `waas admin ...`: dashboard accounts, written straight to the store (`docs/dashboard.md`).
//! The password is read from `WAAS_DASHBOARD_PASSWORD` or the first line of standard input,
//! never from a flag (flags show in `ps`), and never printed.

use anyhow::Context;
use clap::Subcommand;
use std::io::BufRead;
use std::path::PathBuf;
use waas_control_plane::dashboard::accounts::create_user;
use waas_control_plane::store::dashboard::Role;
use waas_control_plane::store::sqlite::SqliteStore;
use waas_control_plane::store::DashboardStore;

#[derive(Subcommand)]
pub enum AdminCommand {
    /// Create a dashboard account: an operator (every tenant), or with --tenant a tenant user.
    /// Password from WAAS_DASHBOARD_PASSWORD, else the first line of standard input.
    CreateUser {
        #[arg(long)]
        email: String,
        /// Make a tenant user of this (existing) tenant instead of an operator.
        #[arg(long)]
        tenant: Option<String>,
        /// PostgreSQL URL of a cluster's control-plane (migrations are applied first).
        #[arg(
            long,
            env = "WAAS_DATABASE_URL",
            hide_env_values = true,
            conflicts_with = "store"
        )]
        database_url: Option<String>,
        /// SQLite file of `waas dev` [default: .waas/dev.db].
        #[arg(long, env = "WAAS_STORE")]
        store: Option<PathBuf>,
    },
}

fn password() -> anyhow::Result<String> {
    if let Ok(p) = std::env::var("WAAS_DASHBOARD_PASSWORD") {
        return Ok(p);
    }
    let mut line = String::new();
    std::io::stdin()
        .lock()
        .read_line(&mut line)
        .context("reading the password from standard input")?;
    Ok(line.trim_end_matches(['\r', '\n']).to_owned())
}

pub async fn run(cmd: AdminCommand) -> anyhow::Result<()> {
    match cmd {
        AdminCommand::CreateUser {
            email,
            tenant,
            database_url,
            store,
        } => {
            let password = password()?;
            let accounts: Box<dyn DashboardStore> = match database_url {
                Some(url) => {
                    let settings = crate::settings::Settings {
                        database_url: Some(url),
                        ..Default::default()
                    };
                    Box::new(crate::cluster::migrate(&settings).await?)
                }
                None => {
                    let path = store.unwrap_or_else(|| PathBuf::from(".waas/dev.db"));
                    Box::new(
                        SqliteStore::open(&path)
                            .with_context(|| format!("opening {}", path.display()))?,
                    )
                }
            };
            let role = match tenant {
                Some(t) => Role::Tenant(t),
                None => Role::Operator,
            };
            let user = create_user(accounts.as_ref(), &email, &password, role).await?;
            println!("created dashboard user {} ({:?})", user.email, user.role);
            Ok(())
        }
    }
}
