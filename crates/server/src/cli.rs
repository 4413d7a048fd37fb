//! The command line: `serve`, `migrate` and `user create|list|delete`.

use std::net::SocketAddr;

use anyhow::Context;
use clap::{Args, Parser, Subcommand};
use custodian_domain::{NewApiUser, Role};

use crate::app::{App, AppConfig, shutdown_signal};

pub const DEFAULT_DATABASE: &str = "sqlite://custodian-data/custodian.db";

#[derive(Debug, Parser)]
#[command(name = "custodian", version, about = "Which employee each computer belongs to")]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Args, Clone)]
pub struct DatabaseArg {
    /// The database: sqlite://PATH (created when missing) or postgres://...
    #[arg(long = "database", env = "CUSTODIAN_DATABASE_URL", default_value = DEFAULT_DATABASE, global = true, hide_env_values = true)]
    pub url: String,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Runs the server.
    Serve(ServeArgs),
    /// Applies database migrations and exits.
    Migrate {
        #[command(flatten)]
        database: DatabaseArg,
    },
    /// Manages the operators of Custodian and their API tokens.
    User {
        #[command(subcommand)]
        command: UserCommand,
        #[command(flatten)]
        database: DatabaseArg,
    },
}

#[derive(Debug, Args)]
pub struct ServeArgs {
    /// The address to listen on.
    #[arg(long, env = "CUSTODIAN_LISTEN", default_value = "127.0.0.1:8080")]
    pub listen: SocketAddr,
    /// The URL at which clients reach Custodian (used in SCIM locations and set-up guides).
    #[arg(long, env = "CUSTODIAN_PUBLIC_URL")]
    pub public_url: Option<String>,
    /// Log format: text or json.
    #[arg(long, env = "CUSTODIAN_LOG_FORMAT", default_value = "text", value_parser = ["text", "json"])]
    pub log_format: String,
    #[command(flatten)]
    pub database: DatabaseArg,
}

#[derive(Debug, Subcommand)]
pub enum UserCommand {
    /// Creates an operator. With --api-only, prints its API token (and nothing else).
    Create {
        /// An API-only user (for an IdP or a script): it gets a token, no password.
        #[arg(long)]
        api_only: bool,
        #[arg(long)]
        name: String,
        #[arg(long)]
        email: Option<String>,
        /// admin, maintainer or observer.
        #[arg(long)]
        role: Role,
    },
    /// Lists operators.
    List,
    /// Deletes an operator and its tokens, by id or name.
    Delete { id_or_name: String },
}

pub fn init_tracing(json: bool) {
    let filter = tracing_subscriber::EnvFilter::try_from_env("CUSTODIAN_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info,sqlx=warn"));
    let builder = tracing_subscriber::fmt().with_env_filter(filter).with_writer(std::io::stderr);
    if json {
        builder.json().init();
    } else {
        builder.init();
    }
}

pub async fn run(cli: Cli) -> anyhow::Result<()> {
    match cli.command {
        Command::Serve(args) => serve(args).await,
        Command::Migrate { database } => {
            init_tracing(false);
            custodian_store::open(&database.url).await.context("migrating the database")?;
            eprintln!("The database is up to date.");
            Ok(())
        }
        Command::User { command, database } => user(command, &database.url).await,
    }
}

async fn serve(args: ServeArgs) -> anyhow::Result<()> {
    init_tracing(args.log_format == "json");
    let store = custodian_store::open(&args.database.url)
        .await
        .with_context(|| format!("opening the database {}", custodian_store::redact_url(&args.database.url)))?;
    let listener =
        tokio::net::TcpListener::bind(args.listen).await.with_context(|| format!("listening on {}", args.listen))?;
    tracing::info!(address = %listener.local_addr()?, "Custodian is serving");
    let app = App::new(store, AppConfig { public_url: args.public_url });
    app.serve(listener, shutdown_signal()).await?;
    tracing::info!("stopped");
    Ok(())
}

async fn user(command: UserCommand, database: &str) -> anyhow::Result<()> {
    let store = custodian_store::open(database)
        .await
        .with_context(|| format!("opening the database {}", custodian_store::redact_url(database)))?;
    match command {
        UserCommand::Create { api_only, name, email, role } => {
            if !api_only {
                anyhow::bail!("only API-only users can be created for now: add --api-only");
            }
            let (token, digest) = crate::auth::generate_token();
            let user = store.create_api_user(NewApiUser { name, email, role, api_only, token: Some(digest) }).await?;
            eprintln!(
                "Created API-only user '{}' (id {}, role {}). Its token, shown only now:",
                user.name, user.id, user.role
            );
            println!("{token}");
        }
        UserCommand::List => {
            println!("{:<6} {:<24} {:<11} {:<9} created", "id", "name", "role", "api_only");
            for u in store.list_api_users().await? {
                println!(
                    "{:<6} {:<24} {:<11} {:<9} {}",
                    u.id,
                    u.name,
                    u.role,
                    u.api_only,
                    u.created_at.to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
                );
            }
        }
        UserCommand::Delete { id_or_name } => {
            let user = store.delete_api_user(&id_or_name).await.map_err(|e| match e {
                custodian_domain::StoreError::NotFound => anyhow::anyhow!("no user with id or name '{id_or_name}'"),
                other => other.into(),
            })?;
            eprintln!("Deleted user '{}' (id {}) and its tokens.", user.name, user.id);
        }
    }
    Ok(())
}
