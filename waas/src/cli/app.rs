//! `waas app ...`: apps managed through a control-plane's admin API (`docs/admin.md`).

use anyhow::Context;
use clap::{Args, Subcommand};
use waas_sdk::admin::{AdminClient, CreateApp};

/// Where the admin API is and how to reach it, shared by every `waas app` command.
#[derive(Args)]
pub struct AdminArgs {
    /// Base URL of the control-plane (or of `waas dev`).
    #[arg(
        long,
        env = "WAAS_CONTROL_PLANE",
        default_value = "http://127.0.0.1:8080"
    )]
    control_plane: String,
    #[arg(long, env = "WAAS_OPERATOR_TOKEN", hide_env_values = true)]
    operator_token: String,
}

impl AdminArgs {
    fn client(self) -> anyhow::Result<AdminClient> {
        Ok(AdminClient::new(&self.control_plane, self.operator_token)?)
    }
}

#[derive(Subcommand)]
pub enum AppCommand {
    /// Create an app (and its tenant when missing); prints the app with its first API key and
    /// its HS256 and Pusher secrets.
    Create {
        #[command(flatten)]
        admin: AdminArgs,
        #[arg(long)]
        id: String,
        #[arg(long, default_value = "default")]
        tenant: String,
        #[arg(long)]
        name: Option<String>,
        /// Open the Pusher front (docs/pusher.md): prints a generated Pusher secret once.
        #[arg(long)]
        pusher: bool,
    },
    /// Replace an app's Pusher secret (its Pusher key is its id); prints the new secret, shown
    /// only this once, and the app.
    RotatePusherSecret {
        #[command(flatten)]
        admin: AdminArgs,
        #[arg(long)]
        id: String,
        /// Use this secret instead of a generated one. Visible in `ps`: prefer generating.
        #[arg(long)]
        secret: Option<String>,
    },
    /// Let an app's Pusher clients send `client-` events (`true`) or stop them (`false`);
    /// prints the app.
    PusherClientEvents {
        #[command(flatten)]
        admin: AdminArgs,
        #[arg(long)]
        id: String,
        #[arg(action = clap::ArgAction::Set)]
        enabled: bool,
    },
}

pub async fn run(cmd: AppCommand) -> anyhow::Result<()> {
    match cmd {
        AppCommand::Create {
            admin,
            id,
            tenant,
            name,
            pusher,
        } => {
            let admin = admin.client()?;
            match admin.create_tenant(&tenant, &tenant).await {
                Ok(_) | Err(waas_sdk::Error::Http { status: 409, .. }) => {}
                Err(e) => anyhow::bail!("creating tenant {tenant}: {e}"),
            }
            let app = CreateApp {
                id,
                tenant_id: tenant,
                name,
                pusher,
            };
            let created = admin
                .create_app(&app)
                .await
                .with_context(|| format!("creating app {}", app.id))?;
            println!("{}", created.get());
        }
        AppCommand::RotatePusherSecret { admin, id, secret } => {
            let rotated = admin
                .client()?
                .rotate_pusher_secret(&id, secret.as_deref())
                .await
                .with_context(|| format!("rotating the Pusher secret of app {id}"))?;
            println!("{}", rotated.get());
        }
        AppCommand::PusherClientEvents { admin, id, enabled } => {
            let app = admin
                .client()?
                .set_pusher_client_events(&id, enabled)
                .await
                .with_context(|| format!("setting pusher_client_events of app {id}"))?;
            println!("{}", app.get());
        }
    }
    Ok(())
}
