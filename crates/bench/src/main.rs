//! `custodian-bench`: benchmarks of a release build of Custodian.
//!
//! `custodian-bench scim` starts `custodian serve` on a fresh database and the Python
//! scim2-server next to it, drives both with what Okta and Entra ID send, and prints each
//! figure next to its target (the throughputs also as ratios to the peer), then one JSON
//! line with every figure for scripts. `custodian-bench hosts`
//! does the same for hosts and their end users: IdP users and groups over SCIM, a host
//! import, host details, host lists filtered by IdP group, and renames reaching hosts.
//! `custodian-bench overload` offers one token twice the sustainable rate of a SCIM mix
//! against a server limited to that rate. `custodian-bench connections` compares SCIM
//! lookups and writes in one IdP connection of 100,000 users and in ten of 10,000, and
//! times the relinking of hosts after a connection's priority changes. `custodian-bench
//! google` times a full Google Workspace directory sync from the fake Google (50,000
//! users, 2,000 groups), then a run of the unchanged directory, which must write nothing.

mod child;
mod connections;
mod google;
mod hosts;
mod overload;
mod peer;
mod report;
mod scim;
mod server;
mod stats;
mod web;

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Args, Parser, Subcommand};

#[derive(Debug, Parser)]
#[command(name = "custodian-bench", version, about = "Benchmarks of a release build of Custodian")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Measures the SCIM service provider on what Okta and Entra send, next to the Python
    /// scim2-server on the same load: user creation, lookups, deactivations and PUTs from
    /// 8 clients, group membership PATCHes in the IdPs' forms at 5,000 and 100,000
    /// members, group reads, deep paging and the server's peak memory.
    Scim(ScimArgs),
    /// Measures hosts and their end users: 100,000 IdP users in 2,000 groups over SCIM,
    /// the import of 100,000 hosts, host details, host lists filtered by IdP group and
    /// department, renames reaching hosts, and the server's peak memory.
    Hosts(HostsArgs),
    /// One IdP token at twice the sustainable rate of a SCIM mix, against a server
    /// limited to that rate: 429 for the excess, the rest served within the SCIM targets,
    /// nothing else (no 5xx, no connection error), /healthz answering throughout.
    Overload(OverloadArgs),
    /// IdP connections: userName lookups and Okta's deactivations in one connection of
    /// 100,000 users against ten connections of 10,000 (each request with its connection's
    /// token), then 100,000 hosts relinked when a connection's priority passes another's,
    /// for two sizes of overlap.
    Connections(ConnectionsArgs),
    /// A Google Workspace directory sync from the fake Google: the first run of 50,000
    /// users in 2,000 groups (about 100,000 memberships, nested groups) into an empty
    /// connection, then a run of the unchanged directory, which must write nothing; the
    /// requests Google received against the pages needed, and the server's peak memory.
    Google(GoogleArgs),
}

#[derive(Debug, Args, Clone)]
pub struct GoogleArgs {
    #[command(flatten)]
    pub common: CommonArgs,
    /// Users in the directory [default: 50000; 2000 with --quick].
    #[arg(long)]
    pub users: Option<usize>,
    /// Groups in the directory [default: 2000; 100 with --quick].
    #[arg(long)]
    pub groups: Option<usize>,
    /// User members of a group on average (from 5 below to 5 above; every hundredth group
    /// has 450, three pages of members).
    #[arg(long, default_value_t = 50)]
    pub members: usize,
    /// Runs of the unchanged directory: the first is measured and checked; the others
    /// show whether the server's memory keeps growing from run to run.
    #[arg(long, default_value_t = 1)]
    pub unchanged_runs: usize,
    /// A fast smoke run (2,000 users, 100 groups), as in CI.
    #[arg(long)]
    pub quick: bool,
}

#[derive(Debug, Args, Clone)]
pub struct ConnectionsArgs {
    #[command(flatten)]
    pub common: CommonArgs,
    /// Users in the one large connection, and as many (the same userNames) split over
    /// --connections; as many hosts [default: 100000; 1000 with --quick].
    #[arg(long)]
    pub users: Option<usize>,
    /// Connections the second copy of the users is split over (--users must be a
    /// multiple) [default: 10; 2 with --quick].
    #[arg(long)]
    pub connections: Option<usize>,
    /// Concurrent clients of the lookups and writes, and of the setup.
    #[arg(long, default_value_t = 8)]
    pub clients: usize,
    /// userName eq lookups on each layout [default: 10000; 1000 with --quick].
    #[arg(long)]
    pub lookups: Option<usize>,
    /// Deactivations (PATCH) on each layout, each of a different user [default: 2000; 200
    /// with --quick].
    #[arg(long)]
    pub writes: Option<usize>,
    /// Rounds the lookups and the writes are split into, the two layouts alternating
    /// (ABBA...) so that both see the same machine [default: 4; 2 with --quick].
    #[arg(long)]
    pub rounds: Option<usize>,
    /// Sizes K of the overlapping connections, comma-separated: each has the userNames of
    /// K other users and is moved before the large one and back [default: 1000,10000;
    /// 50,500 with --quick].
    #[arg(long, value_delimiter = ',')]
    pub overlap: Option<Vec<usize>>,
    /// Moves before the large connection and back, per overlap size [default: 3; 1 with --quick].
    #[arg(long)]
    pub swaps: Option<usize>,
    /// Hosts read back after each move, inside the overlap and as many outside it
    /// [default: 50; 20 with --quick].
    #[arg(long)]
    pub samples: Option<usize>,
    /// Hosts per batch request of the import (at most 10000) [default: 5000; 500 with --quick].
    #[arg(long)]
    pub batch_size: Option<usize>,
    /// A fast smoke run (1,000 users in 1 and in 2 connections, overlaps of 50 and 500), as in CI.
    #[arg(long)]
    pub quick: bool,
}

#[derive(Debug, Args, Clone)]
pub struct OverloadArgs {
    #[command(flatten)]
    pub common: CommonArgs,
    /// Users created first, to look up and patch [default: 2000; 500 with --quick].
    #[arg(long)]
    pub users: Option<usize>,
    /// Closed-loop clients measuring the capacity of the mix.
    #[arg(long, default_value_t = 8)]
    pub clients: usize,
    /// The sustainable rate R per second [default: the highest rate, in steps of a tenth
    /// of the measured capacity, within half the latency targets]; the server is limited
    /// to R per token and offered 2 x R.
    #[arg(long)]
    pub rate: Option<u64>,
    /// Seconds of the open loop at 2 x R [default: 30; 5 with --quick].
    #[arg(long)]
    pub seconds: Option<u64>,
    /// A fast smoke run (500 users, 3 s of capacity, steps of 2 s, 5 s of overload), as in CI.
    #[arg(long)]
    pub quick: bool,
}

/// What every benchmark takes: the server to run, its database, and how to report.
#[derive(Debug, Args, Clone)]
pub struct CommonArgs {
    /// The custodian binary to run [default: `custodian` next to this executable, i.e.
    /// target/release/custodian; build it first with `cargo build --release -p custodian`].
    #[arg(long)]
    pub custodian: Option<PathBuf>,
    /// The database to run against instead of a fresh SQLite file in a temporary folder
    /// (e.g. postgres://...). It should hold no SCIM users, groups or hosts yet.
    #[arg(long)]
    pub database: Option<String>,
    /// Where to create the temporary folder (database and server log) [default: the
    /// system's temporary folder]. Put it on the disk you want to measure, not a tmpfs.
    #[arg(long)]
    pub dir: Option<PathBuf>,
    /// Keeps the temporary folder (database and server log) for inspection.
    #[arg(long)]
    pub keep: bool,
    /// Also exits with status 1 when a timing figure misses its target (full runs only:
    /// a `--quick` run does not judge timing). A failed correctness check (an answer
    /// other than the expected ones, a write not read back) exits 1 with or without it.
    #[arg(long)]
    pub strict: bool,
    /// Seed of the random choices (samples, memberships, letter case).
    #[arg(long, default_value_t = 42)]
    pub seed: u64,
}

#[derive(Debug, Args, Clone)]
pub struct ScimArgs {
    #[command(flatten)]
    pub common: CommonArgs,
    /// Users created with POST /Users on both servers; the throughput measures use them
    /// [default: 10000; 1000 with --quick].
    #[arg(long)]
    pub users: Option<usize>,
    /// Concurrent clients of the throughput measures, the same on both servers.
    #[arg(long, default_value_t = 8)]
    pub clients: usize,
    /// userName eq lookups from the clients [default: 10000; 1000 with --quick].
    #[arg(long)]
    pub lookups: Option<usize>,
    /// Deactivations (PATCH), and as many replacements (PUT), each of a different user
    /// [default: 2000; 200 with --quick].
    #[arg(long)]
    pub writes: Option<usize>,
    /// Members of the group measured on both servers [default: 5000; 500 with --quick].
    #[arg(long)]
    pub small_group: Option<usize>,
    /// Members of the group measured on Custodian only; it creates the users this needs
    /// [default: 100000; 2000 with --quick].
    #[arg(long)]
    pub large_group: Option<usize>,
    /// Membership PATCHes of each form and group size on Custodian, fewer if
    /// --patch-seconds run out (half as many adds to an empty group) [default: 100; 20
    /// with --quick].
    #[arg(long)]
    pub member_patches: Option<usize>,
    /// Seconds each series of membership PATCHes may take on Custodian (at least one
    /// sample) [default: 60; 10 with --quick].
    #[arg(long)]
    pub patch_seconds: Option<f64>,
    /// Membership PATCHes of each form on the peer [default: 3; 1 with --quick].
    #[arg(long)]
    pub peer_patches: Option<usize>,
    /// Seconds each series of membership PATCHes may take on the peer (at least one
    /// sample) [default: 90; 20 with --quick].
    #[arg(long)]
    pub peer_seconds: Option<f64>,
    /// Sequential lookups per filter on Custodian once every user exists [default: 2000;
    /// 500 with --quick].
    #[arg(long)]
    pub sequential_lookups: Option<usize>,
    /// Reads of the large group without its members [default: 500; 100 with --quick].
    #[arg(long)]
    pub group_reads: Option<usize>,
    /// Reads of the last page of users [default: 200; 50 with --quick].
    #[arg(long)]
    pub page_reads: Option<usize>,
    /// A fast smoke run (1,000 users, groups of 500 and 2,000, fewer samples), as in CI.
    #[arg(long)]
    pub quick: bool,
    /// Measures Custodian alone, without the peer: the ratio targets are then not measured.
    #[arg(long)]
    pub no_peer: bool,
    /// The peer's executable [default: scim2-server of the conformance venv,
    /// $CONFORMANCE_VENV or .venv-conformance; `scripts/conformance.sh --install` makes it].
    #[arg(long, value_name = "PATH")]
    pub peer: Option<PathBuf>,
    /// Diagnostic: adds `excludedAttributes=groups` to user creations, lookups and pages
    /// (on both servers), to show what rendering each user's groups costs. IdPs do not
    /// send it.
    #[arg(long)]
    pub exclude_groups: bool,
}

#[derive(Debug, Args, Clone)]
pub struct HostsArgs {
    #[command(flatten)]
    pub common: CommonArgs,
    /// IdP users to create over SCIM [default: 100000; 2000 with --quick].
    #[arg(long)]
    pub users: Option<usize>,
    /// IdP groups; each user joins 1 to 3 of them [default: 2000; 40 with --quick].
    #[arg(long)]
    pub groups: Option<usize>,
    /// Hosts to import; host N belongs to user N (modulo --users) [default: as many as users].
    #[arg(long)]
    pub hosts: Option<usize>,
    /// Hosts per batch request (at most 10000) [default: 5000; 500 with --quick].
    #[arg(long)]
    pub batch_size: Option<usize>,
    /// Batch requests in flight at once during the import.
    #[arg(long, default_value_t = 2)]
    pub import_concurrency: usize,
    /// Concurrent clients while creating users and groups.
    #[arg(long, default_value_t = 16)]
    pub concurrency: usize,
    /// Sequential reads of host details [default: 2000; 500 with --quick].
    #[arg(long)]
    pub detail_reads: Option<usize>,
    /// Sequential reads of each filtered host list [default: 500; 100 with --quick].
    #[arg(long)]
    pub list_reads: Option<usize>,
    /// userName renames, each followed at once by a read of one of the user's hosts
    /// [default: 100; 20 with --quick].
    #[arg(long)]
    pub renames: Option<usize>,
    /// A fast smoke run (2,000 users and hosts, 40 groups, fewer samples), as in CI.
    #[arg(long)]
    pub quick: bool,
}

#[tokio::main]
async fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Scim(args) => {
            // Ctrl-C or SIGTERM ends the run through the normal error path, so that the
            // server child is killed and the temporary folder removed. The run watches for
            // them too once the server is up, to report what it measured: it goes first.
            tokio::select! {
                biased;
                r = scim::run(args) => r,
                s = interrupted() => Err(anyhow::anyhow!("interrupted by {s}")),
            }
        }
        Command::Overload(args) => {
            tokio::select! {
                biased;
                r = overload::run(args) => r,
                s = interrupted() => Err(anyhow::anyhow!("interrupted by {s}")),
            }
        }
        Command::Hosts(args) => {
            tokio::select! {
                biased;
                r = hosts::run(args) => r,
                s = interrupted() => Err(anyhow::anyhow!("interrupted by {s}")),
            }
        }
        Command::Connections(args) => {
            tokio::select! {
                biased;
                r = connections::run(args) => r,
                s = interrupted() => Err(anyhow::anyhow!("interrupted by {s}")),
            }
        }
        Command::Google(args) => {
            tokio::select! {
                biased;
                r = google::run(args) => r,
                s = interrupted() => Err(anyhow::anyhow!("interrupted by {s}")),
            }
        }
    };
    match result {
        Ok(success) => {
            if success {
                ExitCode::SUCCESS
            } else {
                ExitCode::from(1)
            }
        }
        Err(e) => {
            eprintln!("custodian-bench: error: {e:#}");
            ExitCode::from(2)
        }
    }
}

pub async fn interrupted() -> &'static str {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        match signal(SignalKind::terminate()) {
            Ok(mut term) => tokio::select! {
                _ = tokio::signal::ctrl_c() => "Ctrl-C",
                _ = term.recv() => "SIGTERM",
            },
            Err(_) => {
                let _ = tokio::signal::ctrl_c().await;
                "Ctrl-C"
            }
        }
    }
    #[cfg(not(unix))]
    {
        let _ = tokio::signal::ctrl_c().await;
        "Ctrl-C"
    }
}
