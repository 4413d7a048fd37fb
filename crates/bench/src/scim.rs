//! `custodian-bench scim`: the SCIM service provider under what Okta and Entra ID send,
//! next to the Python scim2-server (the peer), on the same load in the same run.
//!
//! 1. Throughput from 8 clients, the same requests to both servers: POST /Users with
//!    Okta's bodies, `userName eq` lookups (random letter case), deactivations (Okta's
//!    pathless `replace {"active": false}`) and PUTs (Okta's profile update: the whole
//!    user), each as a ratio to the peer. Custodian's writes are durable when answered
//!    (SQLite with synchronous=FULL); the peer keeps everything in memory.
//! 2. Membership PATCHes of a group of 5,000 on both servers, in Okta's form (-100 by
//!    `members[value eq "id"]` and +100 by a value list, in one PATCH) and Entra's
//!    (`Add`, then `Remove`, with value lists): a plain `PATCH /Groups/{id}`, no query,
//!    answered 200 or 204; then the membership read back.
//! 3. The same at 100,000 members, on Custodian only (the peer takes seconds a PATCH at
//!    5,000), and 100 members added to that group against 100 added to an empty one.
//! 4. Custodian with every user created: sequential lookups on userName, externalId and
//!    emails.value, Entra's group read without members, the last page of users.
//! 5. Every user read back (deactivations and replacements too), and peak memory.

use std::collections::HashSet;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context, bail, ensure};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use reqwest::{Method, StatusCode, Url};
use serde_json::{Value, json};

use crate::ScimArgs;
use crate::hosts::in_parallel;
use crate::peer::{self, Peer};
use crate::report::{Report, Target, p50_p95, short, thousands};
use crate::server::{self, Server};
use crate::stats::{Samples, Summary};

pub const SCIM_PATH: &str = "/api/v1/fleet/scim";
pub const USER_SCHEMA: &str = "urn:ietf:params:scim:schemas:core:2.0:User";
pub const GROUP_SCHEMA: &str = "urn:ietf:params:scim:schemas:core:2.0:Group";
const PATCH_SCHEMA: &str = "urn:ietf:params:scim:api:messages:2.0:PatchOp";
pub const SCIM_JSON: &str = "application/scim+json";

/// Members per PATCH while filling a group (large pushes are split into several PATCHes).
pub const FILL_BATCH: usize = 1000;
/// Members leaving and joining in each measured membership PATCH.
const MEMBER_BATCH: usize = 100;
/// The size of a page of users.
const PAGE: usize = 100;
/// What a PATCH may succeed with: the resource, or nothing (RFC 7644 §3.5.2).
pub const PATCH_OK: &[StatusCode] = &[StatusCode::OK, StatusCode::NO_CONTENT];

/// The targets, on SQLite: Custodian's throughput as a multiple of the peer's.
const CREATE_TIMES_PEER: f64 = 6.0;
const DEACTIVATE_TIMES_PEER: f64 = 5.0;
const LOOKUP_TIMES_PEER: f64 = 20.0;
/// p95 of a membership PATCH in the IdPs' forms, at either group size.
const MEMBERSHIP_P95_MS: f64 = 20.0;
/// Adding 100 members to the large group, as a multiple of adding them to an empty one.
const ADD_LARGE_TIMES_EMPTY: f64 = 2.0;

/// p95 of a lookup, here one client at a time, and in `overload` under its mix.
pub const LOOKUP_P95_MS: f64 = 5.0;
/// p95 of the user writes (PATCHes and POSTs) of `overload`'s mix.
pub const MEMBER_PATCH_P95_MS: f64 = 50.0;
const GROUP_GET_P95_MS: f64 = 5.0;

/// Why a SQLite target is shown but not judged.
const NOT_ON_POSTGRES: &str = "not judged on PostgreSQL";
/// What the peer is called in the table.
const PEER: &str = "scim2-server";

/// At most `max` samples, and no more once `seconds` have passed (at least one).
#[derive(Debug, Clone, Copy)]
struct Budget {
    max: usize,
    seconds: f64,
}

impl Budget {
    fn allows(&self, taken: usize, started: Instant) -> bool {
        taken < self.max && (taken == 0 || started.elapsed().as_secs_f64() < self.seconds)
    }

    fn describe(&self) -> String {
        format!("at most {} within {:.0} s", self.max, self.seconds)
    }
}

/// The sizes of one run.
#[derive(Debug, Clone)]
struct Config {
    quick: bool,
    users: usize,
    clients: usize,
    lookups: usize,
    writes: usize,
    small_group: usize,
    large_group: usize,
    ours: Budget,
    theirs: Budget,
    add_samples: usize,
    sequential_lookups: usize,
    group_reads: usize,
    page_reads: usize,
    seed: u64,
    exclude_groups: bool,
}

impl Config {
    fn from_args(args: &ScimArgs) -> anyhow::Result<Self> {
        let q = args.quick;
        let member_patches = args.member_patches.unwrap_or(if q { 20 } else { 100 });
        let config = Config {
            quick: q,
            users: args.users.unwrap_or(if q { 1_000 } else { 10_000 }),
            clients: args.clients,
            lookups: args.lookups.unwrap_or(if q { 1_000 } else { 10_000 }),
            writes: args.writes.unwrap_or(if q { 200 } else { 2_000 }),
            small_group: args.small_group.unwrap_or(if q { 500 } else { 5_000 }),
            large_group: args.large_group.unwrap_or(if q { 2_000 } else { 100_000 }),
            ours: Budget { max: member_patches, seconds: args.patch_seconds.unwrap_or(if q { 10.0 } else { 60.0 }) },
            theirs: Budget {
                max: args.peer_patches.unwrap_or(if q { 1 } else { 3 }),
                seconds: args.peer_seconds.unwrap_or(if q { 20.0 } else { 90.0 }),
            },
            add_samples: (member_patches / 2).max(1),
            sequential_lookups: args.sequential_lookups.unwrap_or(if q { 500 } else { 2_000 }),
            group_reads: args.group_reads.unwrap_or(if q { 100 } else { 500 }),
            page_reads: args.page_reads.unwrap_or(if q { 50 } else { 200 }),
            seed: args.common.seed,
            exclude_groups: args.exclude_groups,
        };
        ensure!(config.clients >= 1, "--clients must be at least 1");
        ensure!(config.small_group >= MEMBER_BATCH, "--small-group must be at least {MEMBER_BATCH}");
        ensure!(config.large_group >= config.small_group, "--large-group must be at least --small-group");
        ensure!(
            2 * config.writes + config.small_group + MEMBER_BATCH <= config.users,
            "--users must be at least 2 x --writes + --small-group + {MEMBER_BATCH} (the deactivated, the \
             replaced, and the group's members and those joining it are different users)"
        );
        ensure!(
            config.lookups >= 1
                && config.writes >= 1
                && config.ours.max >= 1
                && config.theirs.max >= 1
                && config.sequential_lookups >= 1
                && config.group_reads >= 1
                && config.page_reads >= 1,
            "sample counts must be at least 1"
        );
        Ok(config)
    }

    /// Users beyond those of the throughput measures, created on Custodian so that the
    /// large group has its members and 100 more users to add.
    fn extra_users(&self) -> usize {
        (self.large_group + MEMBER_BATCH).saturating_sub(self.users - 2 * self.writes)
    }
}

/// A figure of the peer, or why there is none.
enum Theirs<T> {
    Measured(T),
    Not(String),
}

impl<T> Theirs<T> {
    fn borrowed(&self) -> Theirs<&T> {
        match self {
            Theirs::Measured(t) => Theirs::Measured(t),
            Theirs::Not(why) => Theirs::Not(why.clone()),
        }
    }
}

/// The peer while it runs: its client, and why it stopped being measured, if it did.
struct PeerSide {
    peer: Peer,
    api: Api,
    gone: Option<String>,
}

/// The peer, or why it is not run.
enum PeerState {
    Running(Box<PeerSide>),
    Off(String),
}

impl PeerState {
    /// Runs `measure` on the peer, unless it is off or has exited; a failure of the peer's
    /// is its own figure's reason, not an error of the run.
    async fn measure<T, F, Fut>(&mut self, measure: F) -> Theirs<T>
    where
        F: FnOnce(Api) -> Fut,
        Fut: Future<Output = anyhow::Result<T>>,
    {
        let side = match self {
            PeerState::Off(why) => return Theirs::Not(why.clone()),
            PeerState::Running(side) => side,
        };
        if let Some(why) = &side.gone {
            return Theirs::Not(why.clone());
        }
        if let Err(e) = side.peer.ensure_running() {
            eprintln!("  {e:#}");
            side.gone = Some(format!("{PEER} exited"));
            return Theirs::Not(format!("{PEER} exited"));
        }
        match measure(side.api.clone()).await {
            Ok(t) => Theirs::Measured(t),
            Err(e) => {
                eprintln!("  {PEER}: {e:#}");
                Theirs::Not(format!("{PEER} {}", reason(&e)))
            }
        }
    }
}

fn first_line(s: &str, max: usize) -> String {
    let line = s.lines().next().unwrap_or_default();
    if line.chars().count() > max { format!("{}...", line.chars().take(max).collect::<String>()) } else { line.into() }
}

/// Runs the benchmark; true unless `--strict` and a target was missed.
pub async fn run(args: ScimArgs) -> anyhow::Result<bool> {
    let started = Instant::now();
    let config = Config::from_args(&args)?;
    // A missing peer is a set-up error, found before anything starts.
    let peer_binary = if args.no_peer { None } else { Some(peer::find(args.peer.as_deref())?) };
    let mut launched = server::launch(&args.common, "scim", config.clients + 4).await?;
    let api = Api::new(
        launched.client.clone(),
        format!("http://{}{SCIM_PATH}", launched.server.addr),
        &launched.token,
        SCIM_JSON,
    );
    let mut report = Report::new(args.quick);
    report.figure("backend", launched.backend.as_str());
    let sqlite = launched.backend == "sqlite";
    let mut peer = match &peer_binary {
        None => PeerState::Off("--no-peer".into()),
        Some(binary) => {
            let peer = Peer::start(binary, launched.tmp.path().join("peer.log"), &launched.client).await?;
            eprintln!("  peer: {} pid {} on {}", peer.version, peer.pid(), peer.base());
            let api = Api::new(launched.client.clone(), peer.base(), &peer.token, SCIM_JSON);
            PeerState::Running(Box::new(PeerSide { peer, api, gone: None }))
        }
    };
    report.figure("peer", if let PeerState::Running(side) = &peer { side.peer.version.as_str() } else { "none" });
    let suffix = launched.suffix.clone();
    let mut run = Run { api: &api, server: &mut launched.server, config: &config, suffix: &suffix, sqlite, report };
    // An interrupt ends the phases here, so that what was measured is still reported.
    let outcome = tokio::select! {
        r = run.phases(&mut peer) => r,
        s = crate::interrupted() => Err(anyhow::anyhow!("interrupted by {s}")),
    };
    let mut report = run.report;
    if outcome.is_err() {
        report.section(CORRECTNESS);
    }
    answers_row(&mut report, &[&api]);
    stop_peer(&mut report, peer);
    launched.finish(report, outcome, "5. Server memory", &args.common, started)
}

/// The peer's answers and memory (information: the peer is not under test), then stops it.
fn stop_peer(report: &mut Report, peer: PeerState) {
    if let PeerState::Running(side) = peer {
        let (expected, sent, first) = side.api.answers.counts();
        report.info(
            format!("{PEER}: answered as expected (its own, not judged)"),
            format!("{} of {}", thousands(expected as u64), thousands(sent as u64)),
        );
        if let Some(first) = first {
            report.info(format!("  {PEER}: first unexpected answer"), "below");
            report.note(first_line(&first, 200));
        }
        if let Some(peak) = side.peer.peak_rss_kib() {
            report.info(format!("{PEER}: peak RSS (VmHWM)"), format!("{:.1} MiB", peak as f64 / 1024.0));
            report.figure("peer_peak_rss_kib", peak);
        }
    }
}

/// A group under test: its id, and its members and the users about to join it, as
/// indices into the group candidates.
struct Group {
    id: String,
    members: Vec<usize>,
    pool: Vec<usize>,
}

/// What the membership measures of one group on one server gave.
struct GroupRun {
    group: Group,
    fill: Samples,
    fill_seconds: f64,
    okta: Samples,
    entra_add: Samples,
    entra_remove: Samples,
    /// Why a series stopped before its budget (the peer only: Custodian's failures fail the run).
    okta_stopped: Option<String>,
    entra_stopped: Option<String>,
    /// The status and size of the last answer to a PATCH.
    answer: Option<(StatusCode, usize)>,
    /// Members listed by a GET after the PATCHes, and how many of them were expected.
    listed: usize,
    matched: usize,
}

/// One run against Custodian: the client, the server, the sizes and the report.
struct Run<'a> {
    api: &'a Api,
    server: &'a mut Server,
    config: &'a Config,
    suffix: &'a str,
    sqlite: bool,
    report: Report,
}

impl Run<'_> {
    async fn phases(&mut self, peer: &mut PeerState) -> anyhow::Result<()> {
        let (api, config) = (self.api, self.config);
        let before = count_users(api).await?;
        self.report.figure("users", config.users as u64);
        self.report.figure("clients", config.clients as u64);
        self.report.figure("exclude_groups", config.exclude_groups);
        if config.quick {
            self.report.info(
                "smoke run (--quick): smaller sizes",
                format!(
                    "{} users, groups of {} and {}",
                    thousands(config.users as u64),
                    thousands(config.small_group as u64),
                    thousands(config.large_group as u64)
                ),
            );
        }
        match peer {
            PeerState::Running(side) => self.report.info("peer (in memory, not durable)", side.peer.version.clone()),
            PeerState::Off(why) => self.report.info("peer", format!("not run ({why})")),
        }

        // 1a. Creations.
        eprintln!("[1/5] throughput, {} clients: {} POST /Users", config.clients, thousands(config.users as u64));
        self.report.section(format!(
            "1. Throughput, {} clients, the same requests to both servers{}",
            config.clients,
            if config.exclude_groups { " [--exclude-groups]" } else { "" }
        ));
        let cpu_before = (self.server.cpu_seconds(), server::own_cpu_seconds());
        let (users, created) =
            create_users(api, users_url(api, config, &[])?, config.users, config.clients, okta_user).await?;
        let cpu_after = (self.server.cpu_seconds(), server::own_cpu_seconds());
        self.server.ensure_running()?;
        let ours = Load { n: config.users, seconds: created.seconds, latency: created.latency };
        let (theirs, their_users) = match peer
            .measure(|peer_api| async move {
                let url = users_url(&peer_api, config, &[])?;
                create_users(&peer_api, url, config.users, config.clients, okta_user).await
            })
            .await
        {
            Theirs::Measured((users, created)) => (
                Theirs::Measured(Load { n: config.users, seconds: created.seconds, latency: created.latency }),
                Theirs::Measured(Arc::new(users)),
            ),
            Theirs::Not(why) => (Theirs::Not(why.clone()), Theirs::Not(why)),
        };
        let label = format!("POST /Users ({} users, Okta's bodies)", thousands(config.users as u64));
        self.throughput_rows("create", &label, &ours, &theirs, Some(CREATE_TIMES_PEER));
        if let ((Some(s0), Some(b0)), (Some(s1), Some(b1))) = (cpu_before, cpu_after) {
            // Busy cores on average: tells a CPU-bound server from one waiting on the disk.
            let (server_cores, bench_cores) = ((s1 - s0) / created.seconds, (b1 - b0) / created.seconds);
            self.report.info(
                "  Custodian CPU busy: server / this client",
                format!("{server_cores:.2} / {bench_cores:.2} cores"),
            );
            self.report.figure("create_server_cpu_cores", server_cores);
            self.report.figure("create_client_cpu_cores", bench_cores);
        }
        let users = Arc::new(users);

        // 1b. Lookups: the same users, in the same letter case, on both servers.
        eprintln!("[1/5] {} userName eq lookups", thousands(config.lookups as u64));
        let mut rng = StdRng::seed_from_u64(config.seed);
        let plan: Arc<Vec<(usize, String)>> = Arc::new(
            (0..config.lookups)
                .map(|_| {
                    let i = rng.random_range(0..config.users);
                    let name = users.get(i).map(|u| random_case(&u.user_name, &mut rng)).unwrap_or_default();
                    (i, name)
                })
                .collect(),
        );
        let ours = lookups(api, config, users.clone(), plan.clone()).await?;
        self.server.ensure_running()?;
        let theirs = match &their_users {
            Theirs::Measured(their) => {
                let (their, plan) = (their.clone(), plan.clone());
                peer.measure(|peer_api| async move { lookups(&peer_api, config, their, plan).await }).await
            }
            Theirs::Not(why) => Theirs::Not(why.clone()),
        };
        let label = format!("GET /Users?filter=userName eq (random case, {})", thousands(config.lookups as u64));
        self.throughput_rows("lookup", &label, &ours, &theirs, Some(LOOKUP_TIMES_PEER));

        // 1c. Deactivations of users 1..=writes, 1d. replacements of the next `writes`.
        for write in [Write::Deactivate, Write::Replace] {
            eprintln!("[1/5] {} {}", thousands(config.writes as u64), write.describe());
            let ours = writes(api, config, users.clone(), write).await?;
            self.server.ensure_running()?;
            let theirs = match &their_users {
                Theirs::Measured(their) => {
                    let their = their.clone();
                    peer.measure(|peer_api| async move { writes(&peer_api, config, their, write).await }).await
                }
                Theirs::Not(why) => Theirs::Not(why.clone()),
            };
            let label = format!("{}: {} users", write.describe(), thousands(config.writes as u64));
            let target = match write {
                Write::Deactivate => Some(DEACTIVATE_TIMES_PEER),
                Write::Replace => None,
            };
            self.throughput_rows(write.key(), &label, &ours, &theirs, target);
        }

        // 2. The small group, on both servers. Its members and those joining it are users
        // that no write above touched.
        let candidates = users.get(2 * config.writes..).context("fewer users than writes")?;
        let small = config.small_group;
        eprintln!("[2/5] membership PATCHes at {} members", thousands(small as u64));
        let name = format!("Bench group {} {}", self.suffix, small);
        let ours = group_phase(api, candidates, small, &name, config.ours, config.seed, false).await?;
        self.server.ensure_running()?;
        let theirs = match &their_users {
            Theirs::Measured(their) => {
                let (their, name, budget) = (their.clone(), name.clone(), config.theirs);
                eprintln!("  {PEER}: {}", budget.describe());
                peer.measure(|peer_api| async move {
                    let candidates = their.get(2 * config.writes..).context("fewer users than writes")?;
                    group_phase(&peer_api, candidates, small, &name, budget, config.seed, true).await
                })
                .await
            }
            Theirs::Not(why) => Theirs::Not(why.clone()),
        };
        self.group_rows("small", small, &ours, &theirs.borrowed());
        // The peer has nothing more to measure at a larger size.
        let why_not_large = match (&mut *peer, &theirs) {
            (PeerState::Off(why), _) => why.clone(),
            (PeerState::Running(side), measured) => {
                let why = match measured {
                    Theirs::Measured(run) if run.okta.len() > 0 => format!(
                        "skipped at this size: one Okta PATCH took {} ms at {} members",
                        thousands(run.okta.summary().p50.round() as u64),
                        thousands(small as u64)
                    ),
                    Theirs::Measured(run) => format!("skipped: {}", run.okta_stopped.clone().unwrap_or_default()),
                    Theirs::Not(why) => why.clone(),
                };
                side.gone = Some(why.clone());
                why
            }
        };

        // 3. The large group, on Custodian only.
        let extra = config.extra_users();
        let mut all_users: Vec<User> = users.as_ref().clone();
        if extra > 0 {
            eprintln!("[3/5] setup: {} more users with {} clients", thousands(extra as u64), config.clients);
            let url = users_url(api, config, &[])?;
            let (more, made) = create_users_from(api, url, config.users + 1, extra, config.clients, okta_user).await?;
            self.server.ensure_running()?;
            self.report
                .section(format!("3. A group of {} members (Custodian only)", thousands(config.large_group as u64)));
            self.report.info(
                format!("setup: {} more users (POST /Users, {} clients)", thousands(extra as u64), config.clients),
                format!("{:.1} s ({} /s)", made.seconds, thousands((extra as f64 / made.seconds).round() as u64)),
            );
            self.report.figure("setup_users", extra as u64);
            self.report.figure("setup_users_seconds", made.seconds);
            all_users.extend(more);
        } else {
            self.report
                .section(format!("3. A group of {} members (Custodian only)", thousands(config.large_group as u64)));
        }
        let candidates = all_users.get(2 * config.writes..).context("fewer users than writes")?;
        let large = config.large_group;
        eprintln!("[3/5] membership PATCHes at {} members", thousands(large as u64));
        let name = format!("Bench group {} {}", self.suffix, large);
        let ours = group_phase(api, candidates, large, &name, config.ours, config.seed ^ 1, false).await?;
        self.server.ensure_running()?;
        self.group_rows("large", large, &ours, &Theirs::Not(why_not_large));
        let mut group = ours.group;

        // 3b. 100 members added to an empty group against 100 added to the large one.
        eprintln!("[3/5] adding {MEMBER_BATCH} members: an empty group vs {}", thousands(large as u64));
        let budget = Budget { max: config.add_samples, seconds: config.ours.seconds };
        let (empty, full) = add_comparison(api, candidates, &mut group, budget, config.seed ^ 2, self.suffix).await?;
        self.server.ensure_running()?;
        let (e, f) = (empty.summary(), full.summary());
        self.report
            .info(format!("add {MEMBER_BATCH} members to an empty group p50 / p95 (n={})", e.n), p50_p95(e.p50, e.p95));
        self.report.info(
            format!("add {MEMBER_BATCH} members to the {}-member group p50 / p95 (n={})", thousands(large as u64), f.n),
            p50_p95(f.p50, f.p95),
        );
        let ratio = f.p50 / e.p50;
        target_row(
            &mut self.report,
            self.sqlite,
            "add100_large_vs_empty",
            "  the large group / the empty one (p50s)",
            format!("{ratio:.2}x"),
            ratio,
            Target::MaxTimes(ADD_LARGE_TIMES_EMPTY),
        );
        figures(&mut self.report, "add100_empty", &e, false);
        figures(&mut self.report, "add100_large", &f, false);
        self.report.figure("add100_large_vs_empty", ratio);

        // 4. Custodian with every user: sequential lookups, Entra's group read, the last page.
        self.sequential(&all_users, &group).await?;

        // 5. Every acknowledged write, read back.
        eprintln!("reading back every user");
        self.report.section(CORRECTNESS);
        let expected: Vec<Expected> = all_users
            .iter()
            .map(|u| Expected { id: u.id.clone(), user_name: u.user_name.clone(), external_id: u.external_id.clone() })
            .collect();
        let read = read_back_users(api, &mut self.report, before, &expected, 0).await?;
        let deactivated = users
            .iter()
            .take(config.writes)
            .filter(|u| read.get(&u.id).and_then(|r| r.get("active")) == Some(&Value::Bool(false)))
            .count();
        self.report.all_of(
            "deactivations_read_back",
            "deactivated users read back with active: false",
            deactivated as u64,
            config.writes as u64,
        );
        let replaced = users
            .iter()
            .enumerate()
            .skip(config.writes)
            .take(config.writes)
            .filter(|(i, u)| {
                let display = read.get(&u.id).and_then(|r| r.get("displayName")).and_then(Value::as_str);
                display == Some(updated_display_name(i + 1).as_str())
            })
            .count();
        self.report.all_of(
            "replacements_read_back",
            "replaced users read back with their new displayName",
            replaced as u64,
            config.writes as u64,
        );
        self.server.ensure_running()?;
        Ok(())
    }

    /// Rate and latency on both servers, and Custodian's rate as a multiple of the peer's,
    /// next to `times` (the target on SQLite) if there is one.
    fn throughput_rows(&mut self, key: &str, label: &str, ours: &Load, theirs: &Theirs<Load>, times: Option<f64>) {
        let sqlite = self.sqlite;
        let r = &mut self.report;
        r.section(format!("  {label}"));
        let (rate, s) = (ours.rate(), ours.latency.summary());
        r.info("Custodian: per second", format!("{} /s", thousands(rate.round() as u64)));
        r.info(
            "Custodian: latency p50 / p95 / p99",
            format!("{} / {} / {} ms", short(s.p50), short(s.p95), short(s.p99)),
        );
        r.figure(&format!("{key}_per_s"), rate);
        r.figure(&format!("{key}_seconds"), ours.seconds);
        figures(r, key, &s, true);
        let ratio_label = format!("Custodian / {PEER}");
        match theirs {
            Theirs::Measured(theirs) => {
                let (their_rate, t) = (theirs.rate(), theirs.latency.summary());
                r.info(format!("{PEER}: per second"), format!("{} /s", thousands(their_rate.round() as u64)));
                r.info(format!("{PEER}: latency p50 / p95"), p50_p95(t.p50, t.p95));
                r.figure(&format!("peer_{key}_per_s"), their_rate);
                figures(r, &format!("peer_{key}"), &t, false);
                let ratio = rate / their_rate;
                r.figure(&format!("{key}_times_peer"), ratio);
                let figure = format!("{ratio:.2}x");
                match times {
                    Some(times) => target_row(
                        r,
                        sqlite,
                        &format!("{key}_times_peer"),
                        &ratio_label,
                        figure,
                        ratio,
                        Target::MinTimes(times),
                    ),
                    None => r.info(ratio_label, figure),
                }
            }
            Theirs::Not(why) => {
                not_measured(r, &format!("{PEER}: per second"), why);
                match times {
                    Some(times) if sqlite => {
                        r.unmeasured(&format!("{key}_times_peer"), ratio_label, Target::MinTimes(times), why.clone())
                    }
                    _ => r.info(ratio_label, "-"),
                }
            }
        }
    }

    /// The membership figures of a group on both servers.
    fn group_rows(&mut self, key: &str, size: usize, ours: &GroupRun, theirs: &Theirs<&GroupRun>) {
        let size_s = thousands(size as u64);
        if key == "small" {
            self.report.section(format!("2. A group of {size_s} members, plain PATCH /Groups/{{id}} (no query)"));
        }
        self.report.figure(&format!("{key}_group_size"), size as u64);
        let fs = ours.fill.summary();
        self.report.info(
            format!(
                "setup: filled in {} of up to {} members (p50 / p95 {})",
                patches(ours.fill.len()),
                thousands(FILL_BATCH as u64),
                p50_p95(fs.p50, fs.p95)
            ),
            format!("{:.1} s", ours.fill_seconds),
        );
        self.report.figure(&format!("{key}_group_fill_seconds"), ours.fill_seconds);
        let (o, a, d) = (ours.okta.summary(), ours.entra_add.summary(), ours.entra_remove.summary());
        let mut entra = ours.entra_add.clone();
        entra.extend(ours.entra_remove.clone());
        let en = entra.summary();
        target_row(
            &mut self.report,
            self.sqlite,
            &format!("{key}_okta_p95"),
            &format!("Okta: -{MEMBER_BATCH} by members[value eq], +{MEMBER_BATCH} listed; p50 / p95 (n={})", o.n),
            p50_p95(o.p50, o.p95),
            o.p95,
            Target::MaxMs(MEMBERSHIP_P95_MS),
        );
        target_row(
            &mut self.report,
            self.sqlite,
            &format!("{key}_entra_p95"),
            &format!("Entra: Add [{MEMBER_BATCH}], Remove [{MEMBER_BATCH}]; p50 / p95 (n={})", en.n),
            p50_p95(en.p50, en.p95),
            en.p95,
            Target::MaxMs(MEMBERSHIP_P95_MS),
        );
        self.report.info(format!("  Entra Add [{MEMBER_BATCH}] p50 / p95"), p50_p95(a.p50, a.p95));
        self.report.info(format!("  Entra Remove [{MEMBER_BATCH}] p50 / p95"), p50_p95(d.p50, d.p95));
        if let Some((status, bytes)) = ours.answer {
            let what = if status == StatusCode::NO_CONTENT {
                "204, no body".to_string()
            } else {
                format!("{}, {:.2} MB", status.as_u16(), bytes as f64 / 1e6)
            };
            self.report.info("  Custodian's answer to a plain group PATCH", what);
            self.report.figure(&format!("{key}_patch_status"), status.as_u16());
            self.report.figure(&format!("{key}_patch_response_bytes"), bytes as u64);
        }
        figures(&mut self.report, &format!("{key}_okta"), &o, false);
        figures(&mut self.report, &format!("{key}_entra"), &en, false);
        figures(&mut self.report, &format!("{key}_entra_add"), &a, false);
        figures(&mut self.report, &format!("{key}_entra_remove"), &d, false);
        let expected = ours.group.members.len();
        self.report.checked(
            &format!("{key}_members_read_back"),
            "members read back as sent (GET ?attributes=members)",
            format!(
                "{} of {}, {} listed",
                thousands(ours.matched as u64),
                thousands(expected as u64),
                thousands(ours.listed as u64)
            ),
            if ours.listed == expected { ours.matched as f64 } else { 0.0 },
            Target::All(expected as u64),
        );

        match theirs {
            Theirs::Measured(theirs) => {
                let r = &mut self.report;
                let fs = theirs.fill.summary();
                r.info(
                    format!("{PEER}: setup, filled in {} (p95 {} ms)", patches(theirs.fill.len()), short(fs.p95)),
                    format!("{:.1} s", theirs.fill_seconds),
                );
                let series = [
                    ("okta", "Okta", &theirs.okta, &theirs.okta_stopped, Some(o.p50)),
                    ("entra_add", "Entra Add", &theirs.entra_add, &theirs.entra_stopped, Some(a.p50)),
                    ("entra_remove", "Entra Remove", &theirs.entra_remove, &theirs.entra_stopped, Some(d.p50)),
                ];
                for (name, label, samples, stopped, ours_p50) in series {
                    let t = samples.summary();
                    if t.n > 0 {
                        r.info(format!("{PEER}: {label} p50 / p95 (n={})", t.n), p50_p95(t.p50, t.p95));
                        if let Some(p50) = ours_p50 {
                            r.info(format!("  {PEER} / Custodian ({label} p50s)"), format!("{:.0}x", t.p50 / p50));
                        }
                        figures(r, &format!("peer_{key}_{name}"), &t, false);
                    } else if let Some(why) = stopped {
                        not_measured(r, &format!("{PEER}: {label}"), why);
                    }
                }
                let expected = theirs.group.members.len();
                let same = theirs.listed == expected && theirs.matched == expected;
                r.info(
                    format!("{PEER}: members read back as sent"),
                    format!(
                        "{} ({} of {})",
                        if same { "yes" } else { "NO" },
                        thousands(theirs.matched as u64),
                        thousands(expected as u64)
                    ),
                );
            }
            Theirs::Not(why) => not_measured(&mut self.report, PEER, why),
        }
    }

    /// Custodian with every user created: sequential lookups on the three attributes IdPs
    /// match on, Entra's read of the large group without members, and the last page.
    async fn sequential(&mut self, users: &[User], group: &Group) -> anyhow::Result<()> {
        let (api, config) = (self.api, self.config);
        let mut rng = StdRng::seed_from_u64(config.seed ^ 3);
        let n = config.sequential_lookups;
        eprintln!(
            "[4/5] {} sequential lookups per filter among {} users",
            thousands(n as u64),
            thousands(users.len() as u64)
        );
        self.report.section(format!(
            "4. Custodian with {} users: one client, {} lookups per filter",
            thousands(users.len() as u64),
            thousands(n as u64)
        ));
        // (figure key, label, attribute, whether it is case-insensitive: then sent in random case)
        let filters = [
            ("username", "userName eq (random case)", "userName", true),
            ("externalid", "externalId eq", "externalId", false),
            ("email", "emails.value eq (random case)", "emails.value", true),
        ];
        for (key, label, attr, any_case) in filters {
            let mut samples = Samples::with_capacity(n);
            for _ in 0..n {
                let user = users.get(rng.random_range(0..users.len())).context("no users")?;
                let value = match attr {
                    "userName" => &user.user_name,
                    "externalId" => &user.external_id,
                    _ => &user.email,
                };
                let value = if any_case { random_case(value, &mut rng) } else { value.clone() };
                let filter = format!("{attr} eq \"{value}\"");
                let url = users_url(api, config, &[("filter", &filter)])?;
                let (took, body) = api.call(Method::GET, url, None, StatusCode::OK).await?;
                samples.push(took);
                found_exactly(&body, &user.id).with_context(|| format!("filter {filter}"))?;
            }
            let s = samples.summary();
            self.report.checked(
                &format!("sequential_{key}_p95"),
                format!("{label} p50 / p95"),
                p50_p95(s.p50, s.p95),
                s.p95,
                Target::MaxMs(LOOKUP_P95_MS),
            );
            figures(&mut self.report, &format!("sequential_{key}"), &s, false);
        }
        self.server.ensure_running()?;

        // Entra reads a group without its members.
        let lean = api.url(&format!("/Groups/{}", group.id), &[("excludedAttributes", "members")])?;
        let reads = config.group_reads;
        eprintln!("[4/5] {reads} reads of the large group without members");
        let mut samples = Samples::with_capacity(reads);
        for i in 0..reads {
            let (took, body) = api.call(Method::GET, lean.clone(), None, StatusCode::OK).await?;
            samples.push(took);
            if i == 0 {
                let group: Value = serde_json::from_slice(&body).context("the group is not JSON")?;
                ensure!(group.get("members").is_none(), "excludedAttributes=members still returned members");
            }
        }
        let g = samples.summary();
        self.report.checked(
            "group_get_p95",
            format!("GET /Groups/{{id}}?excludedAttributes=members p50 / p95 (n={reads})"),
            p50_p95(g.p50, g.p95),
            g.p95,
            Target::MaxMs(GROUP_GET_P95_MS),
        );
        figures(&mut self.report, "group_get", &g, false);

        // Okta's import pages through every user.
        let total = count_users(api).await?;
        let start = total.saturating_sub(PAGE as u64 - 1).max(1);
        eprintln!("[4/5] {} reads of the last page (startIndex={start})", config.page_reads);
        let url = users_url(api, config, &[("startIndex", &start.to_string()), ("count", &PAGE.to_string())])?;
        let mut pages = Samples::with_capacity(config.page_reads);
        for i in 0..config.page_reads {
            let (took, body) = api.call(Method::GET, url.clone(), None, StatusCode::OK).await?;
            pages.push(took);
            if i == 0 {
                let page: Value = serde_json::from_slice(&body).context("the page is not JSON")?;
                let items = page.get("Resources").and_then(Value::as_array).map_or(0, Vec::len) as u64;
                ensure!(items == total.min(PAGE as u64), "the last page has {items} users");
            }
        }
        let p = pages.summary();
        self.report.info(
            format!("GET /Users?startIndex={start}&count={PAGE} p50 / p95 (n={}, no target)", config.page_reads),
            p50_p95(p.p50, p.p95),
        );
        self.report.figure("last_page_start_index", start);
        figures(&mut self.report, "last_page", &p, false);
        self.server.ensure_running()?;
        Ok(())
    }
}

/// "1 PATCH", "5 PATCHes".
fn patches(n: usize) -> String {
    if n == 1 { "1 PATCH".into() } else { format!("{} PATCHes", thousands(n as u64)) }
}

/// A row of the peer's that has no figure: the reason inline if short, else below.
fn not_measured(report: &mut Report, label: &str, why: &str) {
    if why.chars().count() <= 40 {
        report.info(label, format!("not measured: {why}"));
    } else {
        report.info(label, "not measured");
        report.note(why);
    }
}

/// A row with a target of the issue's, set for SQLite: judged there, shown elsewhere.
pub(crate) fn target_row(
    report: &mut Report,
    sqlite: bool,
    key: &str,
    label: &str,
    figure: String,
    value: f64,
    target: Target,
) {
    if sqlite {
        report.checked(key, label, figure, value, target);
    } else {
        report.shown(label, figure, target, NOT_ON_POSTGRES);
    }
}

/// A `/Users` URL; with --exclude-groups, users are answered without their groups.
fn users_url(api: &Api, config: &Config, query: &[(&str, &str)]) -> anyhow::Result<Url> {
    let mut pairs = query.to_vec();
    if config.exclude_groups {
        pairs.push(("excludedAttributes", "groups"));
    }
    api.url("/Users", &pairs)
}

/// Requests sent from closed-loop clients: how many, in how long, and their latencies.
pub(crate) struct Load {
    pub(crate) n: usize,
    pub(crate) seconds: f64,
    pub(crate) latency: Samples,
}

impl Load {
    pub(crate) fn rate(&self) -> f64 {
        self.n as f64 / self.seconds
    }
}

/// Which client sends the requests about each user: the same for all, or (in
/// `connections`) the client of the user's IdP connection, each with its own token.
#[derive(Clone)]
pub(crate) struct Route {
    apis: Arc<Vec<Api>>,
    /// Users per client: the requests about user `i` go through `apis[i / per]`.
    per: usize,
}

impl Route {
    /// Every request through `api`.
    pub(crate) fn one(api: &Api) -> Self {
        Route { apis: Arc::new(vec![api.clone()]), per: usize::MAX }
    }

    /// Users `0..per` through `apis[0]`, the next `per` through `apis[1]`, and so on.
    pub(crate) fn split(apis: Vec<Api>, per: usize) -> Self {
        Route { apis: Arc::new(apis), per: per.max(1) }
    }

    /// The client of user `i`'s requests.
    pub(crate) fn api(&self, user: usize) -> anyhow::Result<&Api> {
        self.apis.get(user / self.per).with_context(|| format!("no client for user {user}"))
    }
}

/// Runs `job(0..n)` from `clients` clients, each job timing its own request.
async fn closed_loop<F, Fut>(n: usize, clients: usize, job: F) -> anyhow::Result<Load>
where
    F: Fn(usize) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = anyhow::Result<Duration>> + Send + 'static,
{
    let started = Instant::now();
    let took = in_parallel(n, clients, job).await?;
    let seconds = started.elapsed().as_secs_f64();
    let mut latency = Samples::with_capacity(n);
    for t in took {
        latency.push(t);
    }
    Ok(Load { n, seconds, latency })
}

/// The list answered a filter with exactly the user `id`.
pub(crate) fn found_exactly(body: &[u8], id: &str) -> anyhow::Result<()> {
    let page: Value = serde_json::from_slice(body).context("a list response is not JSON")?;
    let found = page.pointer("/Resources/0/id").and_then(Value::as_str);
    if page.get("totalResults").and_then(Value::as_u64) != Some(1) || found != Some(id) {
        bail!("did not find exactly user {id}: {}", excerpt(body));
    }
    Ok(())
}

/// The planned `userName eq` lookups (user index, name in its letter case), from the clients.
async fn lookups(
    api: &Api,
    config: &Config,
    users: Arc<Vec<User>>,
    plan: Arc<Vec<(usize, String)>>,
) -> anyhow::Result<Load> {
    lookups_routed(Route::one(api), config.clients, config.exclude_groups, users, plan).await
}

/// Like [`lookups`], from `clients` clients, each request sent through the client `route`
/// gives its user; `exclude` adds `excludedAttributes=groups`.
pub(crate) async fn lookups_routed(
    route: Route,
    clients: usize,
    exclude: bool,
    users: Arc<Vec<User>>,
    plan: Arc<Vec<(usize, String)>>,
) -> anyhow::Result<Load> {
    closed_loop(plan.len(), clients, move |i| {
        let (route, users, plan) = (route.clone(), users.clone(), plan.clone());
        async move {
            let (u, name) = plan.get(i).context("no such lookup")?;
            let user = users.get(*u).context("no such user")?;
            let api = route.api(*u)?;
            let filter = format!("userName eq \"{name}\"");
            let mut query = vec![("filter", filter.as_str())];
            if exclude {
                query.push(("excludedAttributes", "groups"));
            }
            let (took, body) = api.call(Method::GET, api.url("/Users", &query)?, None, StatusCode::OK).await?;
            found_exactly(&body, &user.id).with_context(|| format!("filter {filter}"))?;
            Ok(took)
        }
    })
    .await
}

/// The user writes measured for throughput.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Write {
    /// Okta's deactivation of users 1..=writes.
    Deactivate,
    /// Okta's profile update (PUT) of the next `writes` users.
    Replace,
}

impl Write {
    pub(crate) fn describe(self) -> &'static str {
        match self {
            Write::Deactivate => "PATCH /Users/{id} replace {active: false}, Okta's deactivation",
            Write::Replace => "PUT /Users/{id}, Okta's profile update (the whole user)",
        }
    }

    pub(crate) fn key(self) -> &'static str {
        match self {
            Write::Deactivate => "deactivate",
            Write::Replace => "replace",
        }
    }
}

/// `config.writes` writes of one kind, each of a different user, from the clients.
async fn writes(api: &Api, config: &Config, users: Arc<Vec<User>>, write: Write) -> anyhow::Result<Load> {
    let offset = if let Write::Replace = write { config.writes } else { 0 };
    let which = Arc::new((offset..offset + config.writes).collect());
    writes_routed(Route::one(api), config.clients, users, which, write).await
}

/// Writes of one kind, of the users at the indices `which` (each once), from `clients`
/// clients, each request sent through the client `route` gives its user.
pub(crate) async fn writes_routed(
    route: Route,
    clients: usize,
    users: Arc<Vec<User>>,
    which: Arc<Vec<usize>>,
    write: Write,
) -> anyhow::Result<Load> {
    closed_loop(which.len(), clients, move |i| {
        let (route, users, which) = (route.clone(), users.clone(), which.clone());
        async move {
            let index = *which.get(i).context("no such write")?;
            let user = users.get(index).context("no such user")?;
            let api = route.api(index)?;
            let url = api.url(&format!("/Users/{}", user.id), &[])?;
            let took = match write {
                Write::Deactivate => api.call_any(Method::PATCH, url, Some(&deactivation()), PATCH_OK).await?.0,
                Write::Replace => {
                    let body = okta_replacement(index + 1, &user.id);
                    api.call(Method::PUT, url, Some(&body), StatusCode::OK).await?.0
                }
            };
            Ok(took)
        }
    })
    .await
}

/// A group of `size` of the `candidates` (filled by PATCHes of 1,000), then Okta's and
/// Entra's membership PATCHes within `budget` each, then its members read back. Any
/// failure fails it, except (`tolerant`, for the peer) a refusal in the measured PATCHes,
/// which ends that series and is kept as its reason.
async fn group_phase(
    api: &Api,
    candidates: &[User],
    size: usize,
    name: &str,
    budget: Budget,
    seed: u64,
    tolerant: bool,
) -> anyhow::Result<GroupRun> {
    ensure!(candidates.len() >= size + MEMBER_BATCH, "{} users for a group of {size}", candidates.len());
    let body = json!({"schemas": [GROUP_SCHEMA], "displayName": name, "members": []});
    let (_, created) = api.call(Method::POST, api.url("/Groups", &[])?, Some(&body), StatusCode::CREATED).await?;
    let id = id_of(&created)?;
    let url = api.url(&format!("/Groups/{id}"), &[])?;
    let ids = |list: &[usize]| -> Vec<&User> { list.iter().filter_map(|&u| candidates.get(u)).collect() };
    let mut group =
        Group { id, members: Vec::with_capacity(size + MEMBER_BATCH), pool: (size..size + MEMBER_BATCH).collect() };

    let fill_started = Instant::now();
    let mut fill = Samples::default();
    let mut answer = None;
    let everyone: Vec<usize> = (0..size).collect();
    for (i, chunk) in everyone.chunks(FILL_BATCH).enumerate() {
        let (took, status, bytes) =
            api.call_any(Method::PATCH, url.clone(), Some(&okta_add(ids(chunk))), PATCH_OK).await?;
        fill.push(took);
        answer = Some((status, bytes.len()));
        group.members.extend_from_slice(chunk);
        if (i + 1) % 20 == 0 {
            eprintln!("  {} members added", thousands(((i + 1) * FILL_BATCH) as u64));
        }
    }
    let fill_seconds = fill_started.elapsed().as_secs_f64();

    let mut rng = StdRng::seed_from_u64(seed);
    // Okta: 100 members leave by filter and the 100 of the pool join, in one PATCH.
    let (mut okta, mut okta_stopped) = (Samples::default(), None);
    let started = Instant::now();
    while budget.allows(okta.len(), started) {
        let leaving = positions(&mut rng, group.members.len(), MEMBER_BATCH);
        let leaving_ids: Vec<usize> = leaving.iter().filter_map(|&p| group.members.get(p).copied()).collect();
        let body = okta_membership(&ids(&leaving_ids), &ids(&group.pool));
        match api.call_any(Method::PATCH, url.clone(), Some(&body), PATCH_OK).await {
            Ok((took, status, bytes)) => {
                okta.push(took);
                answer = Some((status, bytes.len()));
                let left = take(&mut group.members, leaving);
                group.members.append(&mut group.pool);
                group.pool = left;
            }
            Err(e) if tolerant => {
                okta_stopped = Some(reason(&e));
                break;
            }
            Err(e) => return Err(e),
        }
    }
    // Entra: the pool joins with Add, then 100 members leave with Remove.
    let (mut entra_add_samples, mut entra_remove_samples, mut entra_stopped) =
        (Samples::default(), Samples::default(), None);
    let started = Instant::now();
    while budget.allows(entra_add_samples.len(), started) {
        let step = async {
            let (took, status, bytes) =
                api.call_any(Method::PATCH, url.clone(), Some(&entra_add(&ids(&group.pool))), PATCH_OK).await?;
            entra_add_samples.push(took);
            answer = Some((status, bytes.len()));
            group.members.append(&mut group.pool);
            let leaving = positions(&mut rng, group.members.len(), MEMBER_BATCH);
            let leaving_ids: Vec<usize> = leaving.iter().filter_map(|&p| group.members.get(p).copied()).collect();
            let (took, status, bytes) =
                api.call_any(Method::PATCH, url.clone(), Some(&entra_remove(&ids(&leaving_ids))), PATCH_OK).await?;
            entra_remove_samples.push(took);
            answer = Some((status, bytes.len()));
            group.pool = take(&mut group.members, leaving);
            Ok::<_, anyhow::Error>(())
        };
        match step.await {
            Ok(()) => {}
            Err(e) if tolerant => {
                entra_stopped = Some(reason(&e));
                break;
            }
            Err(e) => return Err(e),
        }
    }

    // What the server now lists, against what was sent.
    let (listed, matched) = {
        let url = api.url(&format!("/Groups/{}", group.id), &[("attributes", "members")])?;
        let (_, body) = api.call(Method::GET, url, None, StatusCode::OK).await?;
        let read: Value = serde_json::from_slice(&body).context("the group is not JSON")?;
        let listed: HashSet<&str> = read
            .get("members")
            .and_then(Value::as_array)
            .map(|m| m.iter().filter_map(|v| v.get("value").and_then(Value::as_str)).collect())
            .unwrap_or_default();
        let matched = ids(&group.members).iter().filter(|u| listed.contains(u.id.as_str())).count();
        (listed.len(), matched)
    };
    Ok(GroupRun {
        group,
        fill,
        fill_seconds,
        okta,
        entra_add: entra_add_samples,
        entra_remove: entra_remove_samples,
        okta_stopped,
        entra_stopped,
        answer,
        listed,
        matched,
    })
}

/// 100 members (Okta's add) to a new, empty group, against the pool of 100 to `group`,
/// alternately so that both see the same load on the machine; after each add to
/// `group`, 100 of its members leave (Entra's Remove, not measured), so that each add
/// starts from the same size.
async fn add_comparison(
    api: &Api,
    candidates: &[User],
    group: &mut Group,
    budget: Budget,
    seed: u64,
    suffix: &str,
) -> anyhow::Result<(Samples, Samples)> {
    let mut rng = StdRng::seed_from_u64(seed);
    let ids = |list: &[usize]| -> Vec<&User> { list.iter().filter_map(|&u| candidates.get(u)).collect() };
    let url = api.url(&format!("/Groups/{}", group.id), &[])?;
    let (mut empty, mut full) = (Samples::default(), Samples::default());
    let started = Instant::now();
    let mut made = Vec::new();
    while budget.allows(empty.len(), started) {
        let body = json!({
            "schemas": [GROUP_SCHEMA],
            "displayName": format!("Bench empty group {suffix} {}", empty.len()),
            "members": [],
        });
        let (_, created) = api.call(Method::POST, api.url("/Groups", &[])?, Some(&body), StatusCode::CREATED).await?;
        let id = id_of(&created)?;
        let joining = positions(&mut rng, candidates.len(), MEMBER_BATCH);
        let new_url = api.url(&format!("/Groups/{id}"), &[])?;
        let (took, _, _) = api.call_any(Method::PATCH, new_url, Some(&okta_add(ids(&joining))), PATCH_OK).await?;
        empty.push(took);
        made.push(id);

        let (took, _, _) =
            api.call_any(Method::PATCH, url.clone(), Some(&okta_add(ids(&group.pool))), PATCH_OK).await?;
        full.push(took);
        group.members.append(&mut group.pool);
        let leaving = positions(&mut rng, group.members.len(), MEMBER_BATCH);
        let leaving_ids: Vec<usize> = leaving.iter().filter_map(|&p| group.members.get(p).copied()).collect();
        api.call_any(Method::PATCH, url.clone(), Some(&entra_remove(&ids(&leaving_ids))), PATCH_OK).await?;
        group.pool = take(&mut group.members, leaving);
    }
    // The small groups go again (Okta's DELETE), so that later figures see one group fewer each.
    for id in made {
        api.call(Method::DELETE, api.url(&format!("/Groups/{id}"), &[])?, None, StatusCode::NO_CONTENT).await?;
    }
    Ok((empty, full))
}

/// The heading of the correctness rows.
pub const CORRECTNESS: &str = "Correctness (judged in every run, --quick or not)";

/// Adds the `<prefix>_p50_ms`, `_p95_ms` (and `_p99_ms`) figures.
pub fn figures(report: &mut Report, prefix: &str, s: &Summary, p99: bool) {
    report.figure(&format!("{prefix}_p50_ms"), s.p50);
    report.figure(&format!("{prefix}_p95_ms"), s.p95);
    if p99 {
        report.figure(&format!("{prefix}_p99_ms"), s.p99);
        report.figure(&format!("{prefix}_max_ms"), s.max);
        report.figure(&format!("{prefix}_mean_ms"), s.mean);
    }
}

/// A client of the server under test: its SCIM service provider or its JSON API.
#[derive(Clone)]
pub struct Api {
    client: reqwest::Client,
    base: String,
    auth: String,
    /// The media type sent and accepted: SCIM's, or plain JSON.
    media: &'static str,
    /// Every request sent through this client (and its clones), for the correctness rows.
    pub answers: Arc<Answers>,
}

/// Requests sent, those answered with the expected status, and the first that was not.
#[derive(Default)]
pub struct Answers {
    sent: AtomicUsize,
    expected: AtomicUsize,
    first_unexpected: std::sync::Mutex<Option<String>>,
}

impl Answers {
    fn unexpected(&self, what: String) {
        if let Ok(mut first) = self.first_unexpected.lock() {
            first.get_or_insert(what);
        }
    }

    /// (answered as expected, sent, the first unexpected answer).
    pub fn counts(&self) -> (usize, usize, Option<String>) {
        let first = self.first_unexpected.lock().ok().and_then(|f| f.clone());
        (self.expected.load(Ordering::Relaxed), self.sent.load(Ordering::Relaxed), first)
    }
}

/// The correctness row of the answers of `apis`: every request answered its expected
/// status, with no connection error.
pub fn answers_row(report: &mut Report, apis: &[&Api]) {
    let (mut expected, mut sent, mut first) = (0, 0, None);
    for api in apis {
        let (e, s, f) = api.answers.counts();
        (expected, sent) = (expected + e, sent + s);
        first = first.or(f);
    }
    report.all_of(
        "answered_as_expected",
        "answered as expected (no other status, no connection error)",
        expected as u64,
        sent as u64,
    );
    if let Some(first) = first {
        report.info("  first unexpected answer", "below");
        report.note(first_line(&first, 300));
    }
    report.figure("requests_sent", sent as u64);
    report.figure("requests_answered_as_expected", expected as u64);
}

impl Api {
    /// A client of the API under `base` (e.g. `http://127.0.0.1:8080/api/v1/fleet/scim`).
    pub fn new(client: reqwest::Client, base: String, token: &str, media: &'static str) -> Self {
        Api { client, base, auth: format!("Bearer {token}"), media, answers: Arc::default() }
    }

    pub fn url(&self, path: &str, query: &[(&str, &str)]) -> anyhow::Result<Url> {
        let mut url = Url::parse(&format!("{}{path}", self.base)).context("building a URL")?;
        if !query.is_empty() {
            url.query_pairs_mut().extend_pairs(query);
        }
        Ok(url)
    }

    /// Sends a request and reads the whole response; the time covers both. Fails unless
    /// the status is `expected`.
    pub async fn call(
        &self,
        method: Method,
        url: Url,
        body: Option<&Value>,
        expected: StatusCode,
    ) -> anyhow::Result<(Duration, Vec<u8>)> {
        let (took, _, bytes) = self.call_any(method, url, body, &[expected]).await?;
        Ok((took, bytes))
    }

    /// Like [`Api::call`], for requests that may succeed with any of `expected` (a PATCH
    /// answers 200 with the resource or 204 without it: RFC 7644 §3.5.2 allows both).
    pub async fn call_any(
        &self,
        method: Method,
        url: Url,
        body: Option<&Value>,
        expected: &[StatusCode],
    ) -> anyhow::Result<(Duration, StatusCode, Vec<u8>)> {
        let mut request = self
            .client
            .request(method.clone(), url.clone())
            .header("Authorization", &self.auth)
            .header("Accept", self.media);
        if let Some(body) = body {
            request = request.header("Content-Type", self.media).body(body.to_string());
        }
        let started = Instant::now();
        self.answers.sent.fetch_add(1, Ordering::Relaxed);
        let answer = async {
            let response = request.send().await.with_context(|| format!("{method} {}", url.path()))?;
            let status = response.status();
            let bytes =
                response.bytes().await.with_context(|| format!("reading the response to {method} {}", url.path()))?;
            let took = started.elapsed();
            let bytes = bytes.to_vec();
            if !expected.contains(&status) {
                let wanted: Vec<String> = expected.iter().map(StatusCode::to_string).collect();
                return Err(Refused {
                    request: format!("{method} {}", url.path()),
                    status,
                    expected: wanted.join(" or "),
                    body: bytes,
                }
                .into());
            }
            Ok((took, status, bytes))
        };
        match answer.await {
            Ok(answer) => {
                self.answers.expected.fetch_add(1, Ordering::Relaxed);
                Ok(answer)
            }
            Err(e) => {
                self.answers.unexpected(format!("{e:#}"));
                Err(e)
            }
        }
    }
}

/// An answer with another status than those expected.
#[derive(Debug)]
pub struct Refused {
    request: String,
    status: StatusCode,
    expected: String,
    body: Vec<u8>,
}

impl std::fmt::Display for Refused {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} answered {} (expected {}): {}", self.request, self.status, self.expected, excerpt(&self.body))
    }
}

impl std::error::Error for Refused {}

/// Why a request failed, in a few words: the status and the SCIM error's detail of a
/// refusal, else the error's first line.
pub fn reason(e: &anyhow::Error) -> String {
    match e.downcast_ref::<Refused>() {
        Some(refused) => {
            let detail = serde_json::from_slice::<Value>(&refused.body)
                .ok()
                .and_then(|v| v.get("detail").and_then(Value::as_str).map(str::to_string))
                .unwrap_or_else(|| excerpt(&refused.body));
            first_line(&format!("answered {}: {detail}", refused.status.as_u16()), 120)
        }
        None => first_line(&format!("{e:#}"), 120),
    }
}

pub fn excerpt(body: &[u8]) -> String {
    String::from_utf8_lossy(body).chars().take(300).collect()
}

pub fn id_of(body: &[u8]) -> anyhow::Result<String> {
    let value: Value = serde_json::from_slice(body).context("the response is not JSON")?;
    value.get("id").and_then(Value::as_str).map(str::to_string).context("the response has no id")
}

/// A user as created, with what the lookups filter on.
#[derive(Debug, Clone)]
pub struct User {
    pub id: String,
    pub user_name: String,
    pub external_id: String,
    pub email: String,
}

pub struct Created {
    pub seconds: f64,
    pub latency: Samples,
}

const GIVEN: [&str; 16] = [
    "Ada",
    "Alan",
    "Barbara",
    "Claude",
    "Dorothy",
    "Edsger",
    "Frances",
    "Grace",
    "Hedy",
    "John",
    "Katherine",
    "Linus",
    "Margaret",
    "Niklaus",
    "Radia",
    "Tim",
];
const FAMILY: [&str; 16] = [
    "Lovelace",
    "Turing",
    "Liskov",
    "Shannon",
    "Vaughan",
    "Dijkstra",
    "Allen",
    "Hopper",
    "Lamarr",
    "Backus",
    "Johnson",
    "Torvalds",
    "Hamilton",
    "Wirth",
    "Perlman",
    "Berners-Lee",
];

/// The user number `n` (from 1) as Okta creates it: its body, userName and externalId.
pub fn okta_user(n: usize) -> (Value, String, String) {
    let user_name = format!("user{n:05}@example.com");
    let given = GIVEN[n % GIVEN.len()];
    let family = FAMILY[(n / GIVEN.len()) % FAMILY.len()];
    let external_id = okta_id(n as u64);
    let body = json!({
        "schemas": [USER_SCHEMA],
        "userName": user_name,
        "name": {"givenName": given, "familyName": family},
        "emails": [{"primary": true, "value": user_name, "type": "work"}],
        "displayName": format!("{given} {family}"),
        "locale": "en-US",
        "externalId": external_id,
        "groups": [],
        "active": true,
    });
    (body, user_name, external_id)
}

/// An Okta-looking id (`00u` and 17 letters or digits), distinct for every `n`.
fn okta_id(n: u64) -> String {
    const ALPHABET: &[u8] = b"0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";
    // splitmix64's finaliser: a bijection, so distinct inputs give distinct ids.
    let mut z = n.wrapping_add(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^= z >> 31;
    let mut digits = Vec::with_capacity(17);
    while z > 0 {
        digits.push(ALPHABET.get((z % 62) as usize).copied().unwrap_or(b'0'));
        z /= 62;
    }
    digits.resize(17, b'0');
    digits.reverse();
    format!("00u{}", String::from_utf8_lossy(&digits))
}

/// POSTs users 1 to `n`, made by `make` (e.g. `okta_user`), to `url` from `concurrency`
/// clients; the users come back in order.
pub async fn create_users(
    api: &Api,
    url: Url,
    n: usize,
    concurrency: usize,
    make: fn(usize) -> (Value, String, String),
) -> anyhow::Result<(Vec<User>, Created)> {
    create_users_from(api, url, 1, n, concurrency, make).await
}

/// Like [`create_users`], for users `first` to `first + n - 1`.
pub async fn create_users_from(
    api: &Api,
    url: Url,
    first: usize,
    n: usize,
    concurrency: usize,
    make: fn(usize) -> (Value, String, String),
) -> anyhow::Result<(Vec<User>, Created)> {
    let next = Arc::new(AtomicUsize::new(0));
    let done = Arc::new(AtomicUsize::new(0));
    let started = Instant::now();
    let progress = {
        let done = done.clone();
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(Duration::from_secs(10));
            tick.tick().await;
            let (mut last, mut last_at) = (0, Instant::now());
            loop {
                tick.tick().await;
                let d = done.load(Ordering::Relaxed);
                let recent = (d - last) as f64 / last_at.elapsed().as_secs_f64();
                let overall = d as f64 / started.elapsed().as_secs_f64();
                (last, last_at) = (d, Instant::now());
                eprintln!(
                    "  {} / {} users ({} /s lately, {} /s overall)",
                    thousands(d as u64),
                    thousands(n as u64),
                    thousands(recent as u64),
                    thousands(overall as u64)
                );
            }
        })
    };
    let mut workers = tokio::task::JoinSet::new();
    for _ in 0..concurrency {
        let (api, next, done, url) = (api.clone(), next.clone(), done.clone(), url.clone());
        workers.spawn(async move {
            let mut made = Vec::new();
            let mut latency = Samples::default();
            loop {
                let i = next.fetch_add(1, Ordering::Relaxed);
                if i >= n {
                    break;
                }
                let (body, user_name, external_id) = make(first + i);
                let (took, response) = api.call(Method::POST, url.clone(), Some(&body), StatusCode::CREATED).await?;
                latency.push(took);
                made.push((i, User { id: id_of(&response)?, email: user_name.clone(), user_name, external_id }));
                done.fetch_add(1, Ordering::Relaxed);
            }
            Ok::<_, anyhow::Error>((made, latency))
        });
    }
    let mut slots: Vec<Option<User>> = vec![None; n];
    let mut latency = Samples::with_capacity(n);
    let mut failure = None;
    while let Some(joined) = workers.join_next().await {
        match joined.context("a client task failed").and_then(|r| r) {
            Ok((made, samples)) => {
                latency.extend(samples);
                for (i, user) in made {
                    if let Some(slot) = slots.get_mut(i) {
                        *slot = Some(user);
                    }
                }
            }
            Err(e) => {
                // Stop the other clients at once; the first failure is the one to report.
                workers.abort_all();
                failure.get_or_insert(e);
            }
        }
    }
    let seconds = started.elapsed().as_secs_f64();
    progress.abort();
    if let Some(e) = failure {
        return Err(e.context("creating users"));
    }
    let users = slots.into_iter().collect::<Option<Vec<User>>>().context("a user was not created")?;
    Ok((users, Created { seconds, latency }))
}

/// What a user should read back as: id, userName, externalId.
pub struct Expected {
    pub id: String,
    pub user_name: String,
    pub external_id: String,
}

/// The number of users the server lists (`totalResults`).
pub async fn count_users(api: &Api) -> anyhow::Result<u64> {
    let (_, body) = api.call(Method::GET, api.url("/Users", &[("count", "0")])?, None, StatusCode::OK).await?;
    serde_json::from_slice::<Value>(&body)
        .ok()
        .and_then(|v| v.get("totalResults").and_then(Value::as_u64))
        .context("GET /Users?count=0 gave no totalResults")
}

/// Reads every user back, a page of 1,000 at a time, and adds the correctness rows: every
/// acknowledged creation listed as acknowledged, and as many users as were there `before`
/// plus those acknowledged (a refused creation must not have been written either), and
/// up to `uncertain` more (creations that got no clear answer). Returns the users read,
/// by id.
pub async fn read_back_users(
    api: &Api,
    report: &mut Report,
    before: u64,
    expected: &[Expected],
    uncertain: u64,
) -> anyhow::Result<std::collections::HashMap<String, Value>> {
    let total = count_users(api).await?;
    let mut read = std::collections::HashMap::new();
    let mut start = 1u64;
    while start <= total {
        let url = api.url("/Users", &[("startIndex", &start.to_string()), ("count", "1000")])?;
        let (_, body) = api.call(Method::GET, url, None, StatusCode::OK).await?;
        let page: Value = serde_json::from_slice(&body).context("a page of users is not JSON")?;
        let resources = page.get("Resources").and_then(Value::as_array).cloned().unwrap_or_default();
        if resources.is_empty() {
            break;
        }
        start += resources.len() as u64;
        for user in resources {
            if let Some(id) = user.get("id").and_then(Value::as_str) {
                read.insert(id.to_string(), user.clone());
            }
        }
    }
    let mut first_problem = None;
    let matched = expected
        .iter()
        .filter(|e| {
            let field = |u: &Value, name: &str| u.get(name).and_then(Value::as_str).map(str::to_string);
            let ok = read.get(&e.id).is_some_and(|u| {
                field(u, "userName").as_deref() == Some(e.user_name.as_str())
                    && field(u, "externalId").as_deref() == Some(e.external_id.as_str())
            });
            if !ok && first_problem.is_none() {
                first_problem = Some(format!(
                    "user {} ({}): {}",
                    e.id,
                    e.user_name,
                    read.get(&e.id).map_or("not listed".to_string(), |u| u.to_string())
                ));
            }
            ok
        })
        .count();
    report.all_of(
        "writes_read_back",
        "acknowledged users read back (id, userName, externalId)",
        matched as u64,
        expected.len() as u64,
    );
    if let Some(problem) = first_problem {
        report.info("  first user not read back", problem);
    }
    let want = before + expected.len() as u64;
    let listed = read.len() as u64;
    report.checked(
        "users_listed",
        "users listed: those before the run + acknowledged creations",
        format!("{} listed, {} expected", thousands(listed), thousands(want)),
        if (want..=want + uncertain).contains(&listed) && total == listed { want as f64 } else { 0.0 },
        Target::All(want),
    );
    report.figure("users_read_back", matched as u64);
    report.figure("users_listed", listed);
    Ok(read)
}

/// The positions of `n` distinct entries of a list of `len`, picked at random.
fn positions(rng: &mut StdRng, len: usize, n: usize) -> Vec<usize> {
    rand::seq::index::sample(rng, len, n.min(len)).into_vec()
}

/// Removes the entries at `positions` (distinct, in range) from `list` and returns them.
fn take(list: &mut Vec<usize>, mut positions: Vec<usize>) -> Vec<usize> {
    // From the highest down, so that each swap_remove moves an entry that stays.
    positions.sort_unstable_by(|a, b| b.cmp(a));
    let mut taken = Vec::with_capacity(positions.len());
    for p in positions {
        if p < list.len() {
            taken.push(list.swap_remove(p));
        }
    }
    taken
}

pub fn patch(operations: Vec<Value>) -> Value {
    json!({"schemas": [PATCH_SCHEMA], "Operations": operations})
}

fn member_values<'a>(users: impl IntoIterator<Item = &'a User>) -> Value {
    Value::Array(users.into_iter().map(|u| json!({"value": u.id})).collect())
}

/// `add members [...]`, with the bare values.
pub fn add_members<'a>(users: impl IntoIterator<Item = &'a User>) -> Value {
    patch(vec![json!({"op": "add", "path": "members", "value": member_values(users)})])
}

/// Okta's add: `add members` with each member's id and `display` (its userName).
fn okta_add_op<'a>(users: impl IntoIterator<Item = &'a User>) -> Value {
    let values: Vec<Value> = users.into_iter().map(|u| json!({"value": u.id, "display": u.user_name})).collect();
    json!({"op": "add", "path": "members", "value": values})
}

fn okta_add<'a>(users: impl IntoIterator<Item = &'a User>) -> Value {
    patch(vec![okta_add_op(users)])
}

/// Okta's membership update: one `remove members[value eq "id"]` per member leaving, then
/// one `add` of those joining, in one PATCH.
fn okta_membership(leaving: &[&User], joining: &[&User]) -> Value {
    let mut operations: Vec<Value> =
        leaving.iter().map(|u| json!({"op": "remove", "path": format!("members[value eq \"{}\"]", u.id)})).collect();
    if !joining.is_empty() {
        operations.push(okta_add_op(joining.iter().copied()));
    }
    patch(operations)
}

/// Entra's member values: `$ref` null and the id.
fn entra_values(users: &[&User]) -> Value {
    Value::Array(users.iter().map(|u| json!({"$ref": null, "value": u.id})).collect())
}

/// Entra's addition: one capitalised `Add members` with the members as its value.
fn entra_add(users: &[&User]) -> Value {
    patch(vec![json!({"op": "Add", "path": "members", "value": entra_values(users)})])
}

/// Entra's removal: one `Remove members` with the members as its value (only those go).
fn entra_remove(users: &[&User]) -> Value {
    patch(vec![json!({"op": "Remove", "path": "members", "value": entra_values(users)})])
}

/// Okta's deactivation: a pathless replace of `active`.
pub(crate) fn deactivation() -> Value {
    patch(vec![json!({"op": "replace", "value": {"active": false}})])
}

/// The displayName a profile update gives user `n`.
fn updated_display_name(n: usize) -> String {
    let given = GIVEN[n % GIVEN.len()];
    let family = FAMILY[(n / GIVEN.len()) % FAMILY.len()];
    format!("{given} {family}-Updated")
}

/// Okta's profile update of user `n` (id `id`): the whole user again, with its id and a
/// new family name and displayName.
fn okta_replacement(n: usize, id: &str) -> Value {
    let (mut body, _, _) = okta_user(n);
    let display = updated_display_name(n);
    let family = display.rsplit(' ').next().unwrap_or_default().to_string();
    if let Some(user) = body.as_object_mut() {
        user.insert("id".into(), json!(id));
        user.insert("displayName".into(), json!(display));
        if let Some(name) = user.get_mut("name").and_then(Value::as_object_mut) {
            name.insert("familyName".into(), json!(family));
        }
    }
    body
}

/// The string with each letter upper- or lower-cased at random.
pub(crate) fn random_case(s: &str, rng: &mut StdRng) -> String {
    s.chars().map(|c| if rng.random_bool(0.5) { c.to_ascii_uppercase() } else { c.to_ascii_lowercase() }).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn okta_ids_are_distinct_and_shaped() {
        let ids: std::collections::HashSet<String> = (1..=10_000).map(okta_id).collect();
        assert_eq!(ids.len(), 10_000);
        assert!(ids.iter().all(|id| id.len() == 20 && id.starts_with("00u")));
    }

    #[test]
    fn bodies_and_patches_have_the_idps_shapes() {
        let (body, user_name, _) = okta_user(7);
        assert_eq!(user_name, "user00007@example.com");
        assert_eq!(body["emails"][0]["value"], json!(user_name));
        let user =
            |id: &str| User { id: id.into(), user_name: format!("{id}@x"), external_id: "x".into(), email: "e".into() };
        let (u1, u2) = (user("u1"), user("u2"));
        let okta = okta_membership(&[&u1], &[&u2]);
        assert_eq!(okta["schemas"], json!([PATCH_SCHEMA]));
        assert_eq!(okta["Operations"][0], json!({"op": "remove", "path": "members[value eq \"u1\"]"}));
        assert_eq!(
            okta["Operations"][1],
            json!({"op": "add", "path": "members", "value": [{"value": "u2", "display": "u2@x"}]})
        );
        assert_eq!(okta_membership(&[&u1], &[])["Operations"].as_array().map(Vec::len), Some(1));
        let add = entra_add(&[&u1]);
        assert_eq!(
            add["Operations"][0],
            json!({"op": "Add", "path": "members", "value": [{"$ref": null, "value": "u1"}]})
        );
        let remove = entra_remove(&[&u1]);
        assert_eq!(remove["Operations"][0]["op"], json!("Remove"));
        assert_eq!(remove["Operations"][0]["value"][0]["value"], json!("u1"));
        assert_eq!(deactivation()["Operations"][0], json!({"op": "replace", "value": {"active": false}}));
        let put = okta_replacement(7, "id7");
        assert_eq!(put["id"], json!("id7"));
        assert_eq!(put["userName"], json!("user00007@example.com"));
        assert_eq!(put["displayName"], json!(updated_display_name(7)));
        assert!(
            put["displayName"].as_str().is_some_and(|d| d.ends_with(put["name"]["familyName"].as_str().unwrap_or("?")))
        );
        let mut rng = StdRng::seed_from_u64(1);
        assert_eq!(random_case("aBc@x.COM", &mut rng).to_lowercase(), "abc@x.com");
    }

    #[test]
    fn take_removes_exactly_the_positions() {
        let mut list: Vec<usize> = (0..10).collect();
        let mut taken = take(&mut list, vec![9, 0, 4]);
        taken.sort_unstable();
        assert_eq!(taken, vec![0, 4, 9]);
        list.sort_unstable();
        assert_eq!(list, vec![1, 2, 3, 5, 6, 7, 8]);
        let mut rng = StdRng::seed_from_u64(3);
        let p = positions(&mut rng, 5, 100);
        assert_eq!(p.len(), 5);
    }
}
