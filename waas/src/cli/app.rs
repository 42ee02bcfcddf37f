//! `waas app ...`: apps managed through a control-plane's admin API (`docs/admin.md`).

use anyhow::Context;
use clap::Subcommand;
use waas_sdk::admin::{AdminClient, CreateApp};

#[derive(Subcommand)]
pub enum AppCommand {
    /// Create an app (and its tenant when missing); prints the app with its first API key.
    Create {
        /// Base URL of the control-plane (or of `waas dev`).
        #[arg(
            long,
            env = "WAAS_CONTROL_PLANE",
            default_value = "http://127.0.0.1:8080"
        )]
        control_plane: String,
        #[arg(long, env = "WAAS_OPERATOR_TOKEN", hide_env_values = true)]
        operator_token: String,
        #[arg(long)]
        id: String,
        #[arg(long, default_value = "default")]
        tenant: String,
        #[arg(long)]
        name: Option<String>,
    },
}

pub async fn run(cmd: AppCommand) -> anyhow::Result<()> {
    match cmd {
        AppCommand::Create {
            control_plane,
            operator_token,
            id,
            tenant,
            name,
        } => {
            let admin = AdminClient::new(&control_plane, operator_token)?;
            match admin.create_tenant(&tenant, &tenant).await {
                Ok(_) | Err(waas_sdk::Error::Http { status: 409, .. }) => {}
                Err(e) => anyhow::bail!("creating tenant {tenant}: {e}"),
            }
            let app = CreateApp {
                id,
                tenant_id: tenant,
                name,
            };
            let created = admin
                .create_app(&app)
                .await
                .with_context(|| format!("creating app {}", app.id))?;
            println!("{}", created.get());
            Ok(())
        }
    }
}
