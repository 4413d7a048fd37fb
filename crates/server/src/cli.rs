//! The command line: `serve`, `migrate`, `backup`, `restore`, `user create|list|delete` and
//! `hosts import`.

use std::io::Write;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use anyhow::Context;
use clap::{Args, Parser, Subcommand};
use custodian_domain::hosts::{Actor, HostInput, UpsertOutcome};
use custodian_domain::{NewApiUser, Role};
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};

use custodian_store::{MigrateMode, OpenOptions};

use crate::app::{App, AppConfig, shutdown_signal};
use crate::import::{self, Format, Rejection};
use crate::limits;

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
    /// PostgreSQL only: the most database connections this process opens (default 16).
    #[arg(long = "database-max-connections", env = "CUSTODIAN_DATABASE_MAX_CONNECTIONS", global = true)]
    pub max_connections: Option<u32>,
}

impl DatabaseArg {
    /// `serve` and `migrate`: opens the database, creating it when missing, and applies
    /// pending migrations or, in `Verify` mode, refuses a schema that is not this binary's.
    pub async fn open(&self, migrate: MigrateMode) -> anyhow::Result<std::sync::Arc<dyn custodian_domain::Store>> {
        let options = OpenOptions { migrate, max_connections: self.max_connections, existing_only: false };
        custodian_store::open(&self.url, options)
            .await
            .with_context(|| format!("opening the database {}", self.described()))
    }

    /// Every other command: opens a database that exists, naming it on stderr, and
    /// never creates one (a token made in a stray database would leave the IdP with 401s).
    pub async fn open_existing(&self) -> anyhow::Result<std::sync::Arc<dyn custodian_domain::Store>> {
        self.announce();
        let options =
            OpenOptions { migrate: MigrateMode::Apply, max_connections: self.max_connections, existing_only: true };
        custodian_store::open(&self.url, options).await.with_context(|| {
            format!(
                "opening the database {}. Pass --database (or set CUSTODIAN_DATABASE_URL) with the URL \
                 `custodian serve` uses; `custodian migrate` creates a new database",
                self.described()
            )
        })
    }

    /// The database as the operator should read it: absolute path, no password.
    pub fn described(&self) -> String {
        custodian_store::describe_url(&self.url)
    }

    /// Names the database on stderr (stdout stays for what a script reads).
    pub fn announce(&self) {
        eprintln!("Database: {}", self.described());
    }
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Runs the server.
    Serve(Box<ServeArgs>),
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
    /// Copies a live SQLite database to FILE without stopping the server: one consistent
    /// snapshot, checked (SQLite integrity check, Custodian's schema), synced, then moved
    /// into place. PostgreSQL: use `pg_dump -Fc` (README, Backups).
    Backup {
        /// Where to write the copy; refused when it exists, unless --force.
        file: PathBuf,
        /// Replace FILE when it exists.
        #[arg(long)]
        force: bool,
        #[command(flatten)]
        database: DatabaseArg,
    },
    /// Puts a backup made by `custodian backup` in place of the SQLite database. Refused
    /// while a server (or any other command) has the database open. The replaced database
    /// is kept beside it as `<db>.before-restore-<UTC time>`; the next `custodian serve`
    /// applies any migrations the backup lacks.
    Restore {
        /// The backup file.
        file: PathBuf,
        #[command(flatten)]
        database: DatabaseArg,
    },
    /// Manages the IdP connections: each a namespace of users and groups with its own
    /// SCIM-only tokens (the SCIM base URL is the same for all: the token says which).
    Idp {
        #[command(subcommand)]
        command: IdpCommand,
        #[command(flatten)]
        database: DatabaseArg,
    },
    /// Manages hosts.
    Hosts {
        #[command(subcommand)]
        command: HostsCommand,
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
    /// Custom User extensions declared as RFC 7643 §7 Schema JSON (one schema, a list, or
    /// a ListResponse): their attributes get types, caseExact and uniqueness, and are
    /// listed by /Schemas. Every instance of a shared database must be given the same file.
    #[arg(long, env = "CUSTODIAN_SCIM_SCHEMA_FILE")]
    pub scim_schema_file: Option<PathBuf>,
    /// Serve HTTPS with this PEM certificate chain (the server's certificate first);
    /// needs --tls-key-file. Both files are read again on SIGHUP. Without: plain HTTP.
    #[arg(long, env = "CUSTODIAN_TLS_CERT_FILE", requires = "tls_key_file")]
    pub tls_cert_file: Option<PathBuf>,
    /// The PEM private key of --tls-cert-file: PKCS#8, RSA (PKCS#1) or EC (SEC1).
    #[arg(long, env = "CUSTODIAN_TLS_KEY_FILE", requires = "tls_cert_file")]
    pub tls_key_file: Option<PathBuf>,
    /// Do not apply pending migrations at start (run `custodian migrate` as a separate
    /// deployment step); the server then refuses to start on an older schema.
    #[arg(long, env = "CUSTODIAN_NO_AUTO_MIGRATE")]
    pub no_auto_migrate: bool,
    /// Log format: text or json.
    #[arg(long, env = "CUSTODIAN_LOG_FORMAT", default_value = "text", value_parser = ["text", "json"])]
    pub log_format: String,
    /// Where offboarding events (a host owner deactivated, deleted or reactivated in the
    /// IdP) are POSTed. Without it, events are recorded and listed, not sent.
    #[arg(long, env = "CUSTODIAN_OFFBOARDING_WEBHOOK_URL")]
    pub offboarding_webhook_url: Option<String>,
    /// The key of the `X-Custodian-Signature` HMAC-SHA256 of offboarding webhooks.
    #[arg(long, env = "CUSTODIAN_OFFBOARDING_WEBHOOK_SECRET", hide_env_values = true)]
    pub offboarding_webhook_secret: Option<String>,
    /// The first retry delay of a failed webhook delivery, in milliseconds (doubling up to
    /// 5 minutes). For tests.
    #[arg(long, env = "CUSTODIAN_OFFBOARDING_WEBHOOK_BACKOFF_MS", default_value_t = 1000, hide = true)]
    pub offboarding_webhook_backoff_ms: u64,
    #[command(flatten)]
    pub limits: LimitArgs,
    #[command(flatten)]
    pub sso: SsoArgs,
    #[command(flatten)]
    pub database: DatabaseArg,
}

/// Operators' single sign-on with an OpenID provider (README: Single sign-on).
#[derive(Debug, Args, Clone, Default)]
pub struct SsoArgs {
    /// The OpenID provider's issuer URL (its discovery document is at
    /// {issuer}/.well-known/openid-configuration). Register {public URL}/login/oidc/callback
    /// as the redirect URI.
    #[arg(long, env = "CUSTODIAN_OIDC_ISSUER")]
    pub oidc_issuer: Option<String>,
    /// The client id Custodian has at the provider.
    #[arg(long, env = "CUSTODIAN_OIDC_CLIENT_ID", requires = "oidc_issuer")]
    pub oidc_client_id: Option<String>,
    /// A file holding the client secret (or set CUSTODIAN_OIDC_CLIENT_SECRET).
    #[arg(long, env = "CUSTODIAN_OIDC_CLIENT_SECRET_FILE", requires = "oidc_issuer")]
    pub oidc_client_secret_file: Option<PathBuf>,
    /// The provider's name on the sign-in button ("Sign in with NAME").
    #[arg(long, default_value = "your identity provider")]
    pub oidc_display_name: String,
    /// The ID token (or userinfo) claim that lists the person's groups.
    #[arg(long, default_value = "groups")]
    pub oidc_groups_claim: String,
    /// Groups whose members are admins (comma-separated, exact names or ids).
    #[arg(long, value_delimiter = ',')]
    pub oidc_admin_groups: Vec<String>,
    /// Groups whose members are maintainers.
    #[arg(long, value_delimiter = ',')]
    pub oidc_maintainer_groups: Vec<String>,
    /// Groups whose members are observers.
    #[arg(long, value_delimiter = ',')]
    pub oidc_observer_groups: Vec<String>,
    /// Only people whose verified email (and Google's `hd`, when sent) is in one of these
    /// domains may sign in (comma-separated). Without it: any domain.
    #[arg(long, value_delimiter = ',')]
    pub oidc_allowed_domains: Vec<String>,
    /// With false, only admins with a password may still sign in with it (the
    /// break-glass account); everyone else signs in with the provider.
    #[arg(long, default_value_t = true, action = clap::ArgAction::Set)]
    pub password_sign_in: bool,
}

impl SsoArgs {
    /// The settings of single sign-on, when --oidc-issuer is given; the client secret is
    /// read from its file or from the environment.
    pub fn settings(&self) -> anyhow::Result<Option<crate::oidc::OidcSettings>> {
        let Some(issuer) = &self.oidc_issuer else { return Ok(None) };
        let client_secret = match &self.oidc_client_secret_file {
            Some(file) => std::fs::read_to_string(file)
                .with_context(|| format!("--oidc-client-secret-file: reading {}", file.display()))?
                .trim()
                .to_string(),
            None => std::env::var("CUSTODIAN_OIDC_CLIENT_SECRET").unwrap_or_default().trim().to_string(),
        };
        let list = |groups: &[String]| -> Vec<String> {
            groups.iter().map(|g| g.trim().to_string()).filter(|g| !g.is_empty()).collect()
        };
        Ok(Some(crate::oidc::OidcSettings {
            issuer: issuer.trim().to_string(),
            client_id: self.oidc_client_id.clone().unwrap_or_default().trim().to_string(),
            client_secret,
            display_name: self.oidc_display_name.trim().to_string(),
            groups_claim: self.oidc_groups_claim.trim().to_string(),
            role_groups: custodian_domain::web::RoleGroups {
                admin: list(&self.oidc_admin_groups),
                maintainer: list(&self.oidc_maintainer_groups),
                observer: list(&self.oidc_observer_groups),
            },
            allowed_domains: list(&self.oidc_allowed_domains).into_iter().map(|d| d.to_lowercase()).collect(),
        }))
    }
}

/// Overload protection (README: Deployment). Every limit is per process.
#[derive(Debug, Args, Clone)]
pub struct LimitArgs {
    /// Requests per second each API token may send to the SCIM and JSON API routes,
    /// sustained; beyond it, 429 with Retry-After. 0: no limit.
    #[arg(long, env = "CUSTODIAN_RATE_LIMIT_PER_TOKEN", default_value_t = limits::DEFAULT_RATE_PER_TOKEN)]
    pub rate_limit_per_token: u32,
    /// Requests a token may send at once on top of the sustained rate (0: as many as the rate).
    #[arg(long, env = "CUSTODIAN_RATE_LIMIT_BURST", default_value_t = limits::DEFAULT_RATE_BURST)]
    pub rate_limit_burst: u32,
    /// Web sign-in attempts per client address per minute; beyond it, 429. 0: no limit.
    #[arg(long, env = "CUSTODIAN_RATE_LIMIT_SIGN_IN_PER_MINUTE", default_value_t = limits::DEFAULT_SIGN_IN_PER_MINUTE)]
    pub rate_limit_sign_in_per_minute: u32,
    /// Requests in flight beyond which new ones are shed at once with 503 and Retry-After.
    /// 0: no cap.
    #[arg(long, env = "CUSTODIAN_MAX_CONCURRENT_REQUESTS", default_value_t = limits::DEFAULT_MAX_CONCURRENT_REQUESTS)]
    pub max_concurrent_requests: usize,
    /// Seconds a client may take to send a request's headers; also how long an idle
    /// keep-alive connection stays open.
    #[arg(long, env = "CUSTODIAN_HEADER_READ_TIMEOUT", default_value_t = limits::DEFAULT_HEADER_READ_TIMEOUT.as_secs(), value_parser = clap::value_parser!(u64).range(1..=3600))]
    pub header_read_timeout: u64,
    /// Seconds a client may pause while sending a request body; beyond it, 408.
    #[arg(long, env = "CUSTODIAN_BODY_TIMEOUT", default_value_t = limits::DEFAULT_BODY_TIMEOUT.as_secs(), value_parser = clap::value_parser!(u64).range(1..=3600))]
    pub body_timeout: u64,
}

impl LimitArgs {
    pub fn limits(&self) -> limits::Limits {
        limits::Limits {
            rate_per_token: self.rate_limit_per_token,
            rate_burst: self.rate_limit_burst,
            sign_in_per_minute: self.rate_limit_sign_in_per_minute,
            max_concurrent_requests: self.max_concurrent_requests,
            header_read_timeout: std::time::Duration::from_secs(self.header_read_timeout),
            body_timeout: std::time::Duration::from_secs(self.body_timeout),
            ..limits::Limits::default()
        }
    }
}

#[derive(Debug, Subcommand)]
pub enum UserCommand {
    /// Creates an operator. With --api-only, prints its API token (and nothing else);
    /// otherwise a person who signs in to the web interface with --email and a password
    /// (read from stdin with --password-stdin, else prompted for on a terminal).
    Create {
        /// An API-only user (for an IdP or a script): it gets a token, no password.
        #[arg(long)]
        api_only: bool,
        #[arg(long)]
        name: String,
        /// The email a person signs in with (required without --api-only).
        #[arg(long)]
        email: Option<String>,
        /// admin, maintainer or observer.
        #[arg(long)]
        role: Role,
        /// Reads the password from the first line of stdin (at least 12 characters).
        #[arg(long, conflicts_with = "api_only")]
        password_stdin: bool,
    },
    /// Lists operators.
    List,
    /// Deletes an operator and its tokens, by id or name.
    Delete { id_or_name: String },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum IdpKindArg {
    Scim,
    GoogleWorkspace,
}

#[derive(Debug, Subcommand)]
pub enum IdpCommand {
    /// Adds a connection. A SCIM connection's first token is printed alone on stdout
    /// (shown only now); a Google Workspace connection is read by the running server,
    /// first at once, then every --sync-interval-seconds.
    Add {
        name: String,
        /// Lower wins when several connections have a user for a host; by default after
        /// every existing connection.
        #[arg(long)]
        priority: Option<i64>,
        /// `scim` (the IdP sends SCIM) or `google-workspace` (Custodian reads the directory).
        #[arg(long, value_enum, default_value = "scim")]
        kind: IdpKindArg,
        /// Google Workspace: the service account's JSON key file, as Google issues it.
        #[arg(long, value_name = "FILE", required_if_eq("kind", "google-workspace"))]
        key_file: Option<std::path::PathBuf>,
        /// Google Workspace: the admin the service account acts as (domain-wide delegation).
        #[arg(long, value_name = "EMAIL", required_if_eq("kind", "google-workspace"))]
        admin_email: Option<String>,
        /// Google Workspace: `my_customer` (the default) or the account's customer ID.
        #[arg(long, value_name = "ID")]
        customer_id: Option<String>,
        /// Google Workspace: an org unit to read, with its sub-units (repeat for several;
        /// default `/`, everyone).
        #[arg(long = "org-unit-path", value_name = "PATH")]
        org_unit_paths: Vec<String>,
        /// Google Workspace: seconds between runs (default 300).
        #[arg(long, value_name = "SECONDS")]
        sync_interval_seconds: Option<u64>,
        /// Google Workspace: where the Directory API is (default https://admin.googleapis.com).
        #[arg(long, value_name = "URL")]
        api_base_url: Option<String>,
    },
    /// Lists the connections with their priority, users, groups, tokens and last request.
    List,
    /// Adds a token to a connection (to rotate without downtime) and prints it alone on stdout.
    Token {
        name: String,
        /// The token stops working after this many days (default: never).
        #[arg(long, value_parser = clap::value_parser!(u32).range(1..=3650))]
        expires_in: Option<u32>,
    },
    /// Removes a connection with its users and groups; their hosts are unlinked and
    /// matched again in the other connections. No offboarding webhook fires.
    Remove { name: String },
}

#[derive(Debug, Subcommand)]
pub enum HostsCommand {
    /// Creates or updates hosts by uuid from a CSV, JSON or JSON Lines file, then prints
    /// `created N, updated N, rejected N` and each rejected line with its reasons.
    /// Exit status: 0 when every host was imported, 1 when some were rejected (the others
    /// are imported), 2 when the file or the database could not be read.
    Import {
        /// A .csv file (header row: uuid, hardware_serial, hostname, computer_name, platform,
        /// os_version, hardware_model, seen_time, mdm_idp_accounts, idp, custom,
        /// google_chrome_profiles, email, source), a .json file (an array of hosts or
        /// {"hosts": [...]}) or a .jsonl/.ndjson file (one host per line).
        file: PathBuf,
        /// The file's format, when its extension does not tell it.
        #[arg(long, value_enum)]
        format: Option<Format>,
        /// Hosts written per transaction.
        #[arg(long, default_value_t = 1000, value_parser = clap::value_parser!(u64).range(1..=100_000))]
        batch_size: u64,
    },
}

pub fn init_tracing(json: bool) {
    let filter = tracing_subscriber::EnvFilter::try_from_env("CUSTODIAN_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info,sqlx=warn"));
    let builder = tracing_subscriber::fmt().with_env_filter(filter).with_writer(std::io::stderr);
    if json {
        // Each line carries the fields of the span it was logged in (`span`: a request's
        // method, route template and request id) and of the spans around it (`spans`),
        // so a span opened inside a request keeps the request id on the line.
        builder.json().with_current_span(true).with_span_list(true).init();
    } else {
        builder.init();
    }
}

pub async fn run(cli: Cli) -> anyhow::Result<()> {
    match cli.command {
        Command::Serve(args) => serve(*args).await,
        Command::Migrate { database } => {
            init_tracing(false);
            database.announce();
            database.open(MigrateMode::Apply).await.context("migrating the database")?;
            eprintln!("The database schema is up to date.");
            Ok(())
        }
        Command::User { command, database } => user(command, &database).await,
        Command::Idp { command, database } => idp(command, &database).await,
        Command::Backup { file, force, database } => backup(&file, force, &database).await,
        Command::Restore { file, database } => restore(&file, &database).await,
        Command::Hosts { command: HostsCommand::Import { file, format, batch_size }, database } => {
            match import_hosts(&file, format, batch_size, &database).await {
                Ok(0) => Ok(()),
                Ok(1) => Err(anyhow::anyhow!("1 host was rejected (listed on stdout)")),
                Ok(n) => Err(anyhow::anyhow!("{n} hosts were rejected (listed on stdout)")),
                Err(e) => {
                    // Exit status 2: the file or the database, not a host, is at fault.
                    eprintln!("error: {e:#}");
                    let _ = std::io::stdout().flush();
                    std::process::exit(2)
                }
            }
        }
    }
}

async fn serve(args: ServeArgs) -> anyhow::Result<()> {
    init_tracing(args.log_format == "json");
    // Before the database: a bad certificate file stops the start at once.
    let tls = match (args.tls_cert_file, args.tls_key_file) {
        (Some(cert), Some(key)) => {
            Some(std::sync::Arc::new(crate::tls::Tls::load(crate::tls::TlsFiles { cert, key })?))
        }
        (None, None) => None,
        // clap already refuses one without the other; kept for callers that build ServeArgs.
        (Some(_), None) => anyhow::bail!("--tls-cert-file needs --tls-key-file"),
        (None, Some(_)) => anyhow::bail!("--tls-key-file needs --tls-cert-file"),
    };
    // Before the database too: the model the users are indexed with.
    if let Some(file) = &args.scim_schema_file {
        let text =
            std::fs::read_to_string(file).with_context(|| format!("--scim-schema-file: reading {}", file.display()))?;
        custodian_scim::declared::install(&text)
            .map_err(|e| anyhow::anyhow!("--scim-schema-file {}: {e}", file.display()))?;
        tracing::info!(file = %file.display(), "declared the schema file's extensions");
    }
    let mode = if args.no_auto_migrate { MigrateMode::Verify } else { MigrateMode::Apply };
    let store = args.database.open(mode).await?;
    tracing::info!(database = %args.database.described(), "opened the database");
    if let Some(users) = store.reindex_for_declared_schemas().await.context("re-indexing for the declared schemas")? {
        tracing::info!(users, "the declared schemas changed: users canonicalised and re-indexed");
    }
    let listener =
        tokio::net::TcpListener::bind(args.listen).await.with_context(|| format!("listening on {}", args.listen))?;
    let https_public = args.public_url.as_deref().is_some_and(|u| u.starts_with("https://"));
    if tls.is_none() && https_public && !args.listen.ip().is_loopback() {
        tracing::warn!(
            address = %args.listen,
            "--public-url is https:// but Custodian serves plain HTTP on a non-loopback address: a proxy in \
             front must terminate TLS (or give --tls-cert-file and --tls-key-file)"
        );
    }
    if tls.is_some() && args.public_url.as_deref().is_some_and(|u| u.starts_with("http://")) {
        tracing::warn!("--public-url is http:// but Custodian serves HTTPS: links and SCIM locations will say http://");
    }
    if let Some(tls) = &tls {
        // Installed before serving: from now on a SIGHUP reloads rather than ends the process.
        #[cfg(unix)]
        crate::tls::reload_on_sighup(tls.clone()).context("listening for SIGHUP")?;
        tracing::info!(cert = %tls.files().cert.display(), "serving HTTPS; SIGHUP reloads the certificate and key");
    }
    tracing::info!(address = %listener.local_addr()?, "Custodian is serving");
    let offboarding_webhook = match args.offboarding_webhook_url {
        Some(url) => {
            let parsed = reqwest::Url::parse(&url).context("--offboarding-webhook-url is not a URL")?;
            if !matches!(parsed.scheme(), "http" | "https") {
                anyhow::bail!("--offboarding-webhook-url must be an http:// or https:// URL");
            }
            Some(crate::webhooks::WebhookConfig {
                url,
                secret: args.offboarding_webhook_secret.filter(|s| !s.is_empty()),
                backoff_base: std::time::Duration::from_millis(args.offboarding_webhook_backoff_ms.max(1)),
                backoff_cap: std::time::Duration::from_secs(300),
            })
        }
        None => None,
    };
    let oidc = match args.sso.settings()? {
        Some(settings) => {
            let provider = crate::oidc::OidcProvider::discover(settings).await?;
            tracing::info!(issuer = %provider.issuer, "single sign-on with the OpenID provider");
            Some(std::sync::Arc::new(provider))
        }
        None => None,
    };
    if !args.sso.password_sign_in && oidc.is_none() {
        tracing::warn!("--password-sign-in false without --oidc-issuer: only admins with a password can sign in");
    }
    let config = AppConfig {
        public_url: args.public_url,
        oidc,
        password_sign_in: args.sso.password_sign_in,
        offboarding_webhook,
        limits: args.limits.limits(),
        serves_https: tls.is_some(),
        ..AppConfig::default()
    };
    let app = App::new(store, config);
    app.serve_with_tls(listener, tls.map(|t| t.acceptor()), shutdown_signal()).await?;
    tracing::info!("stopped");
    Ok(())
}

/// The SQLite URL of a backup or restore, or the reason there is none.
fn sqlite_url<'a>(database: &'a DatabaseArg, what: &str) -> anyhow::Result<&'a str> {
    let url = database.url.as_str();
    if url.starts_with("postgres://") || url.starts_with("postgresql://") {
        anyhow::bail!(
            "custodian {what} works on SQLite databases only, and {} is PostgreSQL: back it up with \
             `pg_dump -Fc` and restore with `pg_restore` (see \"Backups\" in the README)",
            custodian_store::redact_url(url)
        );
    }
    if !url.starts_with("sqlite:") {
        anyhow::bail!("unsupported database URL '{}': expected sqlite://PATH", custodian_store::redact_url(url));
    }
    Ok(url)
}

async fn backup(file: &Path, force: bool, database: &DatabaseArg) -> anyhow::Result<()> {
    database.announce();
    let url = sqlite_url(database, "backup")?;
    let report = custodian_store::sqlite::backup::backup(url, file, force)
        .await
        .with_context(|| format!("backing up {} to {}", custodian_store::redact_url(url), file.display()))?;
    eprintln!(
        "Backed up {} to {} ({} bytes, {} migrations applied); its integrity is checked.",
        custodian_store::redact_url(url),
        report.path.display(),
        report.bytes,
        report.migrations
    );
    Ok(())
}

async fn restore(file: &Path, database: &DatabaseArg) -> anyhow::Result<()> {
    database.announce();
    let url = sqlite_url(database, "restore")?;
    let report = custodian_store::sqlite::backup::restore(url, file)
        .await
        .with_context(|| format!("restoring {} into {}", file.display(), custodian_store::redact_url(url)))?;
    eprintln!("Restored {} into {} ({} bytes).", file.display(), report.path.display(), report.bytes);
    if let Some(previous) = report.previous {
        eprintln!(
            "The database it replaced is kept as {} (restore that file the same way to undo).",
            previous.display()
        );
    }
    eprintln!("Start the server: it applies any migrations the backup lacks.");
    Ok(())
}

async fn user(command: UserCommand, database: &DatabaseArg) -> anyhow::Result<()> {
    let store = database.open_existing().await?;
    match command {
        UserCommand::Create { api_only: false, name, email, role, password_stdin } => {
            let Some(email) = email.map(|e| e.trim().to_string()).filter(|e| e.contains('@')) else {
                anyhow::bail!("a user who signs in needs --email (or add --api-only for a token user)");
            };
            let password = read_new_password(password_stdin)?;
            let password_hash = crate::passwords::hash(password).await?;
            let user = store
                .create_password_user(custodian_domain::web::NewPasswordUser { name, email, role, password_hash })
                .await?;
            eprintln!(
                "Created user '{}' (id {}, role {}): sign in at /login with {}.",
                user.name,
                user.id,
                user.role,
                user.email.as_deref().unwrap_or("")
            );
        }
        UserCommand::Create { api_only: true, name, email, role, .. } => {
            let (token, digest) = crate::auth::generate_token();
            let user =
                store.create_api_user(NewApiUser { name, email, role, api_only: true, token: Some(digest) }).await?;
            eprintln!(
                "Created API-only user '{}' (id {}, role {}). Its token, shown only now:",
                user.name, user.id, user.role
            );
            println!("{token}");
        }
        UserCommand::List => print!("{}", operators_table(&store.list_api_users().await?)),
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

async fn idp(command: IdpCommand, database: &DatabaseArg) -> anyhow::Result<()> {
    use custodian_domain::connections::{NewConnection, NewSource};
    let store = database.open_existing().await?;
    let actor = Actor { id: None, name: "custodian idp".into() };
    let named = |name: String| {
        let store = store.clone();
        async move {
            store.connection_named(&name).await.map_err(|e| match e {
                custodian_domain::StoreError::NotFound => anyhow::anyhow!("no IdP connection named '{name}'"),
                other => other.into(),
            })
        }
    };
    match command {
        IdpCommand::Add {
            name,
            priority,
            kind: IdpKindArg::GoogleWorkspace,
            key_file,
            admin_email,
            customer_id,
            org_unit_paths,
            sync_interval_seconds,
            api_base_url,
        } => {
            let name = crate::idp_connections::checked_name(&name)
                .map_err(|reason| anyhow::anyhow!("the connection name {reason}"))?;
            if let Some(reason) = priority.and_then(crate::idp_connections::priority_problem) {
                anyhow::bail!("--priority {reason}");
            }
            let path =
                key_file.ok_or_else(|| anyhow::anyhow!("--key-file is required with --kind google-workspace"))?;
            let text =
                std::fs::read_to_string(&path).map_err(|e| anyhow::anyhow!("--key-file {}: {e}", path.display()))?;
            // Never echo the file: serde's message would quote it.
            let key: serde_json::Value = serde_json::from_str(&text)
                .map_err(|_| anyhow::anyhow!("--key-file {}: not a JSON key file", path.display()))?;
            let form = crate::idp_connections::GoogleWorkspaceForm {
                service_account_key: Some(key),
                admin_email,
                customer_id,
                org_unit_paths: (!org_unit_paths.is_empty()).then_some(org_unit_paths),
                sync_interval_seconds,
                api_base_url,
            };
            let google = form.check().map_err(|problems| {
                let lines: Vec<String> = problems
                    .iter()
                    .map(|(field, reason)| {
                        let flag = match *field {
                            "service_account_key" => "key-file".to_string(),
                            "org_unit_paths" => "org-unit-path".to_string(),
                            other => other.replace('_', "-"),
                        };
                        format!("--{flag} {reason}")
                    })
                    .collect();
                anyhow::anyhow!("{}", lines.join("; "))
            })?;
            let new = NewConnection { name, priority, source: NewSource::GoogleWorkspace(google) };
            let c = store.create_connection(new, &actor).await?;
            let g = c.google_workspace.as_ref();
            eprintln!(
                "Created Google Workspace connection '{}' (id {}, priority {}) for {} acting as {}. \
                 A running server reads the directory within seconds, then every {} seconds: \
                 GET /api/v1/fleet/idp/connections/{}/runs shows each run.",
                c.name,
                c.id.0,
                c.priority,
                g.map_or("", |g| g.client_email.as_str()),
                g.map_or("", |g| g.admin_email.as_str()),
                g.map_or(0, |g| g.sync_interval_seconds),
                c.id.0
            );
        }
        IdpCommand::Add { name, priority, kind: IdpKindArg::Scim, key_file, admin_email, .. } => {
            if key_file.is_some() || admin_email.is_some() {
                anyhow::bail!("--key-file and --admin-email are for --kind google-workspace");
            }
            let name = crate::idp_connections::checked_name(&name)
                .map_err(|reason| anyhow::anyhow!("the connection name {reason}"))?;
            if let Some(reason) = priority.and_then(crate::idp_connections::priority_problem) {
                anyhow::bail!("--priority {reason}");
            }
            let (token, digest) = crate::auth::generate_token();
            let new =
                NewConnection { name, priority, source: NewSource::Scim { token: digest, token_expires_at: None } };
            let c = store.create_connection(new, &actor).await?;
            eprintln!(
                "Created IdP connection '{}' (id {}, priority {}). Its SCIM token, shown only now:",
                c.name, c.id.0, c.priority
            );
            println!("{token}");
        }
        IdpCommand::List => print!("{}", connections_table(&store.list_connections().await?)),
        IdpCommand::Token { name, expires_in } => {
            let c = named(name).await?;
            let expires_at = expires_in.map(|days| chrono::Utc::now() + chrono::Duration::days(i64::from(days)));
            let (token, digest) = crate::auth::generate_token();
            let id = store.add_connection_token(c.id, digest, expires_at).await?;
            let until = expires_at.map_or_else(
                || "does not expire".to_string(),
                |t| format!("expires {}", t.to_rfc3339_opts(chrono::SecondsFormat::Secs, true)),
            );
            eprintln!("Added token {id} to '{}' ({until}). The token, shown only now:", c.name);
            println!("{token}");
        }
        IdpCommand::Remove { name } => {
            let c = named(name).await?;
            store.delete_connection(c.id, &actor).await?;
            eprintln!("Removed IdP connection '{}' with its {} users and {} groups.", c.name, c.users, c.groups);
        }
    }
    Ok(())
}

/// `custodian idp list`: aligned columns, as `user list`.
fn connections_table(connections: &[custodian_domain::connections::Connection]) -> String {
    let when = |t: chrono::DateTime<chrono::Utc>| t.to_rfc3339_opts(chrono::SecondsFormat::Secs, true);
    let rows = connections.iter().map(|c| {
        vec![
            c.id.0.to_string(),
            c.name.clone(),
            c.kind.to_string(),
            c.priority.to_string(),
            c.users.to_string(),
            c.groups.to_string(),
            c.tokens.len().to_string(),
            c.last_request.as_ref().map_or_else(
                || "never".into(),
                |r| format!("{} {}", when(r.requested_at), if r.succeeded() { "success" } else { "error" }),
            ),
        ]
    });
    aligned(&["ID", "NAME", "KIND", "PRIORITY", "USERS", "GROUPS", "TOKENS", "LAST REQUEST"], rows)
}

/// Rows under a header, columns separated by two spaces and never wrapped.
fn aligned(header: &[&str], rows: impl Iterator<Item = Vec<String>>) -> String {
    let mut table = comfy_table::Table::new();
    table
        .load_preset(comfy_table::presets::NOTHING)
        .set_content_arrangement(comfy_table::ContentArrangement::Disabled)
        .set_header(header.iter().copied());
    for row in rows {
        table.add_row(row);
    }
    for column in table.column_iter_mut() {
        column.set_padding((0, 2));
    }
    table.lines().map(|line| line.trim_end().to_string() + "\n").collect()
}

/// `custodian user list`: one aligned row per operator, and a header. Columns are
/// separated by two spaces and never wrapped, so that `awk` and `cut` can read them.
fn operators_table(users: &[custodian_domain::ApiUser]) -> String {
    let when = |t: chrono::DateTime<chrono::Utc>| t.to_rfc3339_opts(chrono::SecondsFormat::Secs, true);
    let rows = users.iter().map(|u| {
        vec![
            u.id.to_string(),
            u.name.clone(),
            u.email.clone().unwrap_or_else(|| "-".into()),
            u.role.to_string(),
            if u.api_only { "yes" } else { "no" }.to_string(),
            u.last_used_at.map_or_else(|| "never".into(), when),
            when(u.created_at),
        ]
    });
    let mut text = aligned(&["ID", "NAME", "EMAIL", "ROLE", "API-ONLY", "LAST USED", "CREATED"], rows);
    if users.is_empty() {
        text.push_str("(no operators yet: `custodian user create --help`)\n");
    }
    text
}

/// The new password of `user create`: the first line of stdin with --password-stdin,
/// else typed twice at a terminal prompt (never echoed).
fn read_new_password(from_stdin: bool) -> anyhow::Result<String> {
    use std::io::IsTerminal;
    let password = if from_stdin {
        let mut line = String::new();
        std::io::stdin().read_line(&mut line).context("reading the password from stdin")?;
        line.trim_end_matches(['\r', '\n']).to_string()
    } else if std::io::stdin().is_terminal() {
        let first = rpassword::prompt_password("Password: ").context("reading the password")?;
        let again = rpassword::prompt_password("Password again: ").context("reading the password")?;
        if first != again {
            anyhow::bail!("the two passwords differ");
        }
        first
    } else {
        anyhow::bail!("stdin is not a terminal: pass the password with --password-stdin");
    };
    crate::passwords::check_new_password(&password).map_err(|e| anyhow::anyhow!(e))?;
    Ok(password)
}

/// `custodian hosts import`: reads and validates the whole file first (a file-level error
/// imports nothing), then writes the valid hosts in batches of `batch_size`, one
/// transaction each. Returns how many hosts were rejected; an error means the file or
/// the database could not be read.
async fn import_hosts(
    file: &Path,
    format: Option<Format>,
    batch_size: u64,
    database: &DatabaseArg,
) -> anyhow::Result<usize> {
    let Some(format) = format.or_else(|| Format::from_path(file)) else {
        anyhow::bail!(
            "cannot tell the format of {} from its extension: add --format csv, json or jsonl",
            file.display()
        );
    };
    let bytes = std::fs::read(file).with_context(|| format!("reading {}", file.display()))?;
    let records = import::read_records(&bytes, format).with_context(|| format!("reading {}", file.display()))?;
    drop(bytes);
    let checked = import::check(records);
    let store = database.open_existing().await?;
    let actor = Actor { id: None, name: "custodian hosts import".into() };
    let total = checked.accepted.len();
    let bar = ProgressBar::with_draw_target(Some(total as u64), ProgressDrawTarget::stderr());
    if let Ok(style) =
        ProgressStyle::with_template("{bar:30} {human_pos}/{human_len} hosts [{elapsed_precise}, eta {eta}]")
    {
        bar.set_style(style);
    }
    let batch_size = usize::try_from(batch_size).unwrap_or(usize::MAX);
    let (mut created, mut updated) = (0u64, 0u64);
    let mut hosts = checked.accepted.into_iter().map(|(_, host)| host);
    loop {
        let batch: Vec<HostInput> = hosts.by_ref().take(batch_size).collect();
        if batch.is_empty() {
            break;
        }
        let size = batch.len() as u64;
        match store.upsert_hosts(batch, &actor).await {
            Ok(outcomes) => {
                for outcome in outcomes {
                    match outcome {
                        UpsertOutcome::Created(_) => created += 1,
                        UpsertOutcome::Updated(_) => updated += 1,
                    }
                }
            }
            Err(e) => {
                bar.abandon();
                report(created, updated, &checked.rejected)?;
                let done = created + updated;
                return Err(anyhow::Error::new(e).context(format!(
                    "writing hosts to the database: {done} of {total} were imported before the failure, the rest were not"
                )));
            }
        }
        bar.inc(size);
    }
    bar.finish_and_clear();
    report(created, updated, &checked.rejected)?;
    Ok(checked.rejected.len())
}

/// The summary on stdout: `created N, updated N, rejected N`, then each rejected line.
fn report(created: u64, updated: u64, rejected: &[Rejection]) -> std::io::Result<()> {
    let mut out = std::io::BufWriter::new(std::io::stdout().lock());
    writeln!(out, "{}", import::summary_line(created, updated, rejected.len()))?;
    for rejection in rejected {
        writeln!(out, "{rejection}")?;
    }
    out.flush()
}
