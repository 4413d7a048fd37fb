//! `custodian-bench connections`: SCIM with several IdP connections, and hosts relinked
//! when a connection's priority changes.
//!
//! 1. The same N users (Okta's bodies, from the clients) twice in one database: once in
//!    one connection, `big`, and once split over C connections (`c01`, ...) of N / C
//!    each, every userName in both. Each connection is made with `custodian idp add` and
//!    written to with its own token.
//! 2. The same `userName eq` lookups (random letter case) and Okta's deactivations (of
//!    random users) on both layouts from the same clients, each request with the token of
//!    the user's connection, in rounds that alternate the layouts (A B, B A, ...) so that
//!    both see the same machine. The split layout's throughput and p95 as ratios of the
//!    single connection's: the issue asks for no more than 10 % difference.
//! 3. N hosts through `POST /hosts/batch`, each enrolled (`mdm_idp_accounts`) with the
//!    userName of one user, in random order; all link to `big`, which comes first.
//! 4. For each overlap size K: a connection `overlap-K` with the userNames of K users
//!    (none shared between overlaps), after `big`; then, with an admin token, `PATCH
//!    /idp/connections/{id}` moves it before `big` (its K hosts relink to it) and back
//!    (they relink to `big`), timed, with the hosts each move rechecked (the activity
//!    feed's `edited_idp_connection`), the host counts per connection and a sample of
//!    hosts inside and outside the overlap read back after every move. The time should
//!    grow with K, the hosts affected, and not with N.
//! 5. Every deactivation and every connection's user count read back, and the server's
//!    peak memory.

use std::future::Future;
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context, ensure};
use rand::rngs::StdRng;
use rand::seq::SliceRandom;
use rand::{Rng, SeedableRng};
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

use crate::ConnectionsArgs;
use crate::hosts::{FLEET_PATH, JSON, MAX_BATCH, count_hosts, host_body, in_parallel, post_batch};
use crate::report::{Report, Target, p50_p95, short, thousands};
use crate::scim::{
    self, Api, CORRECTNESS, Load, Route, SCIM_JSON, SCIM_PATH, User, Write, excerpt, figures, okta_user,
};
use crate::server::{self, Server};
use crate::stats::Samples;

/// The large connection, first for every host.
const BIG: &str = "big";
const BIG_PRIORITY: i64 = 20;
/// Where an overlap connection moves to: before `big`.
const FRONT_PRIORITY: i64 = 10;
/// Overlap connection `j` (from 0) waits at this priority + `j`: after `big`, before
/// `default` (100).
const OVERLAP_PRIORITY: i64 = 30;
const MAX_OVERLAPS: usize = 16;
/// Split connection `c` (from 0) has this priority + `c`: after every other connection.
const SPLIT_PRIORITY: i64 = 1001;
// The order every phase relies on: an overlap moves from after `big` to before it, and
// neither passes `default` (100) nor a split connection.
const _: () = assert!(
    FRONT_PRIORITY < BIG_PRIORITY
        && BIG_PRIORITY < OVERLAP_PRIORITY
        && OVERLAP_PRIORITY + (MAX_OVERLAPS as i64) < 100
        && SPLIT_PRIORITY > 100
);
/// Batch requests in flight during the host import.
const IMPORT_CONCURRENCY: usize = 2;

/// The targets: C connections of N / C users against one of N, no more than 10 %
/// apart.
const MIN_RATE_RATIO: f64 = 0.90;
const MAX_P95_RATIO: f64 = 1.10;
/// The bench's own targets for a move (the issue asks for the time and its scaling):
/// at most this much time per host affected (the median move over K), on SQLite...
const MS_PER_AFFECTED_HOST: f64 = 1.0;
/// ...and the median move at the largest K at least this share of the ratio of the
/// largest K to the smallest, times the median move at the smallest K (1 if the time
/// does not depend on K at all, the ratio of the Ks if it is all per affected host).
const SCALING_SHARE: f64 = 0.5;

/// The sizes of one run.
#[derive(Debug, Clone)]
struct Config {
    quick: bool,
    users: usize,
    connections: usize,
    clients: usize,
    lookups: usize,
    writes: usize,
    rounds: usize,
    /// Overlap sizes, ascending.
    overlaps: Vec<usize>,
    swaps: usize,
    samples: usize,
    batch_size: usize,
    seed: u64,
}

impl Config {
    fn from_args(args: &ConnectionsArgs) -> anyhow::Result<Self> {
        let q = args.quick;
        let mut overlaps = args.overlap.clone().unwrap_or_else(|| if q { vec![50, 500] } else { vec![1_000, 10_000] });
        overlaps.sort_unstable();
        let config = Config {
            quick: q,
            users: args.users.unwrap_or(if q { 1_000 } else { 100_000 }),
            connections: args.connections.unwrap_or(if q { 2 } else { 10 }),
            clients: args.clients,
            lookups: args.lookups.unwrap_or(if q { 1_000 } else { 10_000 }),
            writes: args.writes.unwrap_or(if q { 200 } else { 2_000 }),
            rounds: args.rounds.unwrap_or(if q { 2 } else { 4 }),
            overlaps,
            swaps: args.swaps.unwrap_or(if q { 1 } else { 3 }),
            samples: args.samples.unwrap_or(if q { 20 } else { 50 }),
            batch_size: args.batch_size.unwrap_or(if q { 500 } else { 5_000 }),
            seed: args.common.seed,
        };
        ensure!(config.users >= 2 && config.clients >= 1, "--users must be at least 2 and --clients at least 1");
        ensure!(
            config.connections >= 1 && config.users.is_multiple_of(config.connections),
            "--users must be a multiple of --connections (at least 1)"
        );
        ensure!(config.rounds >= 1, "--rounds must be at least 1");
        ensure!(
            config.lookups >= config.rounds && config.writes >= config.rounds,
            "--lookups and --writes must be at least --rounds"
        );
        ensure!(config.writes <= config.users, "--writes must be at most --users (each deactivates another user)");
        ensure!(
            !config.overlaps.is_empty() && config.overlaps.len() <= MAX_OVERLAPS,
            "--overlap takes 1 to {MAX_OVERLAPS} sizes"
        );
        ensure!(
            config.overlaps.first().is_some_and(|&k| k >= 1) && config.overlaps.windows(2).all(|w| w[0] < w[1]),
            "--overlap sizes must be distinct and at least 1"
        );
        ensure!(
            config.overlaps.iter().sum::<usize>() < config.users,
            "the --overlap sizes must add up to less than --users (the overlaps share no user, and some hosts stay \
             outside them all)"
        );
        ensure!(config.swaps >= 1 && config.samples >= 1, "--swaps and --samples must be at least 1");
        ensure!((1..=MAX_BATCH).contains(&config.batch_size), "--batch-size must be between 1 and {MAX_BATCH}");
        Ok(config)
    }

    fn per_connection(&self) -> usize {
        self.users / self.connections
    }
}

/// Runs the benchmark; true unless `--strict` and a target was missed.
pub async fn run(args: ConnectionsArgs) -> anyhow::Result<bool> {
    let started = Instant::now();
    let config = Config::from_args(&args)?;
    let mut launched = server::launch(&args.common, "connections", config.clients.max(IMPORT_CONCURRENCY) + 4).await?;
    let mut report = Report::new(args.quick);
    report.figure("backend", launched.backend.as_str());
    let addr = launched.server.addr;
    let mut ctx = Ctx {
        server: &mut launched.server,
        client: launched.client.clone(),
        binary: &launched.binary,
        database: &launched.database,
        scim_base: format!("http://{addr}{SCIM_PATH}"),
        fleet_base: format!("http://{addr}{FLEET_PATH}"),
        suffix: launched.suffix.clone(),
        sqlite: launched.backend == "sqlite",
        apis: Vec::new(),
    };
    // An interrupt ends the phases here, so that what was measured is still reported.
    let outcome = tokio::select! {
        r = phases(&mut ctx, &config, &mut report) => r,
        s = crate::interrupted() => Err(anyhow::anyhow!("interrupted by {s}")),
    };
    if outcome.is_err() {
        report.section(CORRECTNESS);
    }
    let apis = std::mem::take(&mut ctx.apis);
    scim::answers_row(&mut report, &apis.iter().collect::<Vec<_>>());
    launched.finish(report, outcome, "5. Server memory", &args.common, started)
}

/// What the phases need of the launched server, and every client made (for the answers row).
struct Ctx<'a> {
    server: &'a mut Server,
    client: reqwest::Client,
    binary: &'a Path,
    database: &'a str,
    scim_base: String,
    fleet_base: String,
    suffix: String,
    sqlite: bool,
    apis: Vec<Api>,
}

impl Ctx<'_> {
    /// Adds a connection with the CLI; its SCIM client.
    async fn connection(&mut self, name: &str, priority: i64) -> anyhow::Result<Api> {
        let token = server::add_connection(self.binary, self.database, name, priority).await?;
        let api = Api::new(self.client.clone(), self.scim_base.clone(), &token, SCIM_JSON);
        self.apis.push(api.clone());
        Ok(api)
    }
}

/// The name of split connection `c` (from 0).
fn split_name(c: usize) -> String {
    format!("c{:02}", c + 1)
}

fn overlap_name(k: usize) -> String {
    format!("overlap-{k}")
}

/// An overlapping connection: the userNames of users `first..first + k` (indices).
struct Overlap {
    name: String,
    /// Its SCIM client.
    api: Option<Api>,
    id: i64,
    /// Where it waits, after `big`.
    priority: i64,
    first: usize,
    k: usize,
}

impl Overlap {
    fn contains(&self, user: usize) -> bool {
        (self.first..self.first + self.k).contains(&user)
    }
}

/// The correctness checks of the moves, added up.
#[derive(Default)]
struct Tally {
    moves: u64,
    rechecked_as_expected: u64,
    counts: u64,
    counts_ok: u64,
    inside: u64,
    inside_ok: u64,
    outside: u64,
    outside_ok: u64,
    first_problem: Option<String>,
}

impl Tally {
    fn problem(&mut self, what: String) {
        self.first_problem.get_or_insert(what);
    }
}

async fn phases(ctx: &mut Ctx<'_>, config: &Config, report: &mut Report) -> anyhow::Result<()> {
    let (n, c, per, clients) = (config.users, config.connections, config.per_connection(), config.clients);
    let mut rng = StdRng::seed_from_u64(config.seed);
    report.figure("users", n as u64);
    report.figure("connections", c as u64);
    report.figure("clients", clients as u64);
    if config.quick {
        report.info(
            "smoke run (--quick): smaller sizes",
            format!(
                "{} users, {c} connections, K = {}",
                thousands(n as u64),
                config.overlaps.iter().map(|&k| thousands(k as u64)).collect::<Vec<_>>().join(", ")
            ),
        );
    }

    // 1. The same users in one connection and split over `c`.
    eprintln!("[1/4] {} users in connection {BIG}, {clients} clients", thousands(n as u64));
    let big = ctx.connection(BIG, BIG_PRIORITY).await?;
    let (one_users, one_made) = scim::create_users(&big, big.url("/Users", &[])?, n, clients, okta_user).await?;
    ctx.server.ensure_running()?;
    eprintln!("[1/4] the same {} users in {c} connections of {}", thousands(n as u64), thousands(per as u64));
    let (mut split, mut split_users) = (Vec::with_capacity(c), Vec::with_capacity(n));
    let (mut split_seconds, mut split_latency) = (0.0, Samples::with_capacity(n));
    for i in 0..c {
        let api = ctx.connection(&split_name(i), SPLIT_PRIORITY + i as i64).await?;
        let (users, made) =
            scim::create_users_from(&api, api.url("/Users", &[])?, i * per + 1, per, clients, okta_user).await?;
        ctx.server.ensure_running()?;
        split_seconds += made.seconds;
        split_latency.extend(made.latency);
        split_users.extend(users);
        split.push(api);
    }
    report.section(format!(
        "1. Setup: the same {} users (POST /Users, Okta's bodies, {clients} clients) in one database",
        thousands(n as u64)
    ));
    let creation = |report: &mut Report, label: String, seconds: f64, latency: &Samples| {
        let s = latency.summary();
        let rate = thousands((n as f64 / seconds).round() as u64);
        report.info(label, format!("{seconds:.1} s ({rate} /s)"));
        report.info("  POST /Users p50 / p95", p50_p95(s.p50, s.p95));
    };
    creation(
        report,
        format!("A: one connection `{BIG}` (priority {BIG_PRIORITY})"),
        one_made.seconds,
        &one_made.latency,
    );
    let label = format!(
        "B: {c} connections {}..{} of {} (priorities {SPLIT_PRIORITY}..)",
        split_name(0),
        split_name(c - 1),
        thousands(per as u64)
    );
    creation(report, label, split_seconds, &split_latency);
    report.note("every userName is in both layouts, each a namespace of its own; B's users are created second");
    report.figure("create_one_seconds", one_made.seconds);
    report.figure("create_split_seconds", split_seconds);

    // 2. Lookups and deactivations on both layouts, alternating.
    let one_users = Arc::new(one_users);
    let split_users = Arc::new(split_users);
    let layouts = [(Route::one(&big), one_users.clone()), (Route::split(split.clone(), per), split_users.clone())];
    let mut lookup_plan = |count: usize| -> Vec<(usize, String)> {
        (0..count)
            .map(|_| {
                let i = rng.random_range(0..n);
                let name = one_users.get(i).map(|u| scim::random_case(&u.user_name, &mut rng)).unwrap_or_default();
                (i, name)
            })
            .collect()
    };
    // Unmeasured lookups of other random users first, so that neither layout is measured cold.
    let warm_up = (config.lookups / 10).max(1);
    let (warm, plan) = (in_rounds(lookup_plan(warm_up), 1), in_rounds(lookup_plan(config.lookups), config.rounds));
    eprintln!(
        "[2/4] {} userName eq lookups on each layout ({} to warm up), {} rounds alternating",
        thousands(config.lookups as u64),
        thousands(warm_up as u64),
        config.rounds
    );
    lookup_rounds(&layouts, &warm, clients).await?;
    let [one, split_load] = lookup_rounds(&layouts, &plan, clients).await?;
    ctx.server.ensure_running()?;
    comparison_rows(report, config, "lookup", "2a. GET /Users?filter=userName eq (random case)", &one, &split_load);
    report.note(format!("after {} unmeasured lookups of other random users on each layout", thousands(warm_up as u64)));
    report.figure("lookup_warm_up", warm_up as u64);

    let write = Write::Deactivate;
    eprintln!(
        "[2/4] {} deactivations (PATCH) on each layout, {} rounds alternating",
        thousands(config.writes as u64),
        config.rounds
    );
    let deactivated = rand::seq::index::sample(&mut rng, n, config.writes).into_vec();
    let which = in_rounds(deactivated.clone(), config.rounds);
    let [one, split_load] = alternating(config.rounds, |layout, round| {
        let (picked, chunk) = (layouts.get(layout).cloned(), which.get(round).cloned().unwrap_or_default());
        async move {
            let (route, users) = picked.context("no such layout")?;
            scim::writes_routed(route, clients, users, chunk, write).await
        }
    })
    .await?;
    ctx.server.ensure_running()?;
    comparison_rows(
        report,
        config,
        write.key(),
        &format!("2b. {} of random users", write.describe()),
        &one,
        &split_load,
    );

    // 3. The hosts, all linked to `big`.
    let admin =
        server::create_operator_token(ctx.binary, ctx.database, &format!("bench-admin-{}", ctx.suffix), "admin")
            .await?;
    let fleet = Api::new(ctx.client.clone(), ctx.fleet_base.clone(), &admin, JSON);
    ctx.apis.push(fleet.clone());
    // Host `h` is enrolled by user `owner[h]`: an overlap's hosts are spread over the table.
    let mut owner: Vec<usize> = (0..n).collect();
    owner.shuffle(&mut rng);
    let mut host_of_user = vec![0_usize; n];
    for (h, &u) in owner.iter().enumerate() {
        if let Some(slot) = host_of_user.get_mut(u) {
            *slot = h;
        }
    }
    let batches: Vec<Value> = owner
        .chunks(config.batch_size)
        .enumerate()
        .map(|(b, chunk)| {
            let hosts: Vec<Value> = chunk
                .iter()
                .enumerate()
                .map(|(j, &u)| {
                    host_body(b * config.batch_size + j, one_users.get(u).map_or("", |user| user.user_name.as_str()))
                })
                .collect();
            json!({ "hosts": hosts })
        })
        .collect();
    let requests = batches.len();
    eprintln!(
        "[3/4] importing {} hosts: {requests} requests of up to {}, {IMPORT_CONCURRENCY} in flight",
        thousands(n as u64),
        thousands(config.batch_size as u64)
    );
    let batches = Arc::new(batches);
    let import_started = Instant::now();
    let imported = {
        let (api, batches) = (fleet.clone(), batches.clone());
        in_parallel(requests, IMPORT_CONCURRENCY, move |b| {
            let (api, batches) = (api.clone(), batches.clone());
            async move { post_batch(&api, b, batches.get(b).context("no such batch")?).await }
        })
        .await
        .context("importing the hosts")?
    };
    let import_seconds = import_started.elapsed().as_secs_f64();
    ctx.server.ensure_running()?;
    drop(batches);
    let host_ids: Vec<i64> = imported.into_iter().flat_map(|(_, ids)| ids).collect();
    ensure!(host_ids.len() == n, "{} host ids for {n} hosts", host_ids.len());
    let (_, linked_big) = count_hosts(&fleet, &[("idp_connection", BIG)]).await?;
    report.section(format!(
        "3. {} hosts (POST /hosts/batch), host i enrolled with one user's userName, in random order",
        thousands(n as u64)
    ));
    report.info(
        "import",
        format!("{import_seconds:.1} s ({} /s)", thousands((n as f64 / import_seconds).round() as u64)),
    );
    report.figure("hosts", n as u64);
    report.figure("import_seconds", import_seconds);

    // 4. The overlaps, then the moves.
    let mut overlaps = Vec::with_capacity(config.overlaps.len());
    let mut first = 0;
    for (j, &k) in config.overlaps.iter().enumerate() {
        let name = overlap_name(k);
        let priority = OVERLAP_PRIORITY + j as i64;
        eprintln!("[4/4] connection {name} (priority {priority}): the userNames of {} users", thousands(k as u64));
        let api = ctx.connection(&name, priority).await?;
        let started = Instant::now();
        scim::create_users_from(&api, api.url("/Users", &[])?, first + 1, k, clients, okta_user).await?;
        ctx.server.ensure_running()?;
        report.info(
            format!("setup: `{name}` (priority {priority}, after `{BIG}`), POST /Users"),
            format!("{:.1} s", started.elapsed().as_secs_f64()),
        );
        overlaps.push(Overlap { name, api: Some(api), id: 0, priority, first, k });
        first += k;
    }
    let (_, body) = fleet.call(Method::GET, fleet.url("/idp/connections", &[])?, None, StatusCode::OK).await?;
    let listed: Value = serde_json::from_slice(&body).context("the connections are not JSON")?;
    let connections = listed.get("connections").and_then(Value::as_array).cloned().unwrap_or_default();
    for overlap in &mut overlaps {
        overlap.id = connections
            .iter()
            .find(|c| c.get("name").and_then(Value::as_str) == Some(overlap.name.as_str()))
            .and_then(|c| c.get("id").and_then(Value::as_i64))
            .with_context(|| format!("GET /idp/connections does not list {}", overlap.name))?;
    }
    let hosts = Hosts { ids: &host_ids, host_of_user: &host_of_user, users: &one_users };
    let mut tally = Tally::default();
    // Before any move, every host is still `big`'s.
    for overlap in &overlaps {
        counts(&fleet, overlap, BIG, n, &mut tally).await?;
    }

    report.section(format!(
        "4. Relinking {} hosts: overlap-K moved before `{BIG}` (PATCH priority {FRONT_PRIORITY}, admin) and \
         back, {} {}",
        thousands(n as u64),
        config.swaps,
        if config.swaps == 1 { "time" } else { "times" }
    ));
    let mut medians = Vec::with_capacity(overlaps.len());
    for overlap in &overlaps {
        let k = overlap.k;
        eprintln!("[4/4] {}: {} moves before {BIG} and back", overlap.name, config.swaps);
        let (mut front, mut back) = (Samples::default(), Samples::default());
        let mut rechecked = Vec::with_capacity(2 * config.swaps);
        for _ in 0..config.swaps {
            for (to, winner) in [(FRONT_PRIORITY, overlap.name.as_str()), (overlap.priority, BIG)] {
                let (took, hosts_rechecked) = move_connection(&fleet, overlap.id, to).await?;
                ctx.server.ensure_running()?;
                if winner == BIG {
                    back.push(took)
                } else {
                    front.push(took)
                }
                tally.moves += 1;
                match hosts_rechecked {
                    Some(r) if r == k as u64 => tally.rechecked_as_expected += 1,
                    other => tally.problem(format!(
                        "moving {} to priority {to}: the activity feed says {} hosts rechecked, expected {k}",
                        overlap.name,
                        other.map_or("no".to_string(), |r| r.to_string())
                    )),
                }
                rechecked.extend(hosts_rechecked);
                counts(&fleet, overlap, winner, n, &mut tally).await?;
                samples(&fleet, &hosts, overlap, winner, config.samples, &mut rng, &mut tally).await?;
            }
        }
        let mut all = front.clone();
        all.extend(back.clone());
        let (f, b, a) = (front.summary(), back.summary(), all.summary());
        let key = format!("move_k{k}");
        report.info(
            format!("K = {}: move before `{BIG}` p50 / max (n={})", thousands(k as u64), f.n),
            format!("{} / {} ms", short(f.p50), short(f.max)),
        );
        report.info(
            format!("  move back after `{BIG}` p50 / max (n={})", b.n),
            format!("{} / {} ms", short(b.p50), short(b.max)),
        );
        let (low, high) = (rechecked.iter().min().copied(), rechecked.iter().max().copied());
        report.info(
            "  hosts rechecked per move (activity feed)",
            match (low, high) {
                (Some(l), Some(h)) if l == h => thousands(l),
                (Some(l), Some(h)) => format!("{} to {}", thousands(l), thousands(h)),
                _ => "-".into(),
            },
        );
        let per_host = a.p50 / k as f64;
        scim::target_row(
            report,
            ctx.sqlite,
            &format!("{key}_ms_per_host"),
            "  time per affected host (p50 of the moves / K)",
            format!("{per_host:.3} ms"),
            per_host,
            Target::MaxMs(MS_PER_AFFECTED_HOST),
        );
        figures(report, &format!("{key}_front"), &f, false);
        figures(report, &format!("{key}_back"), &b, false);
        figures(report, &key, &a, false);
        report.figure(&format!("{key}_ms_per_host"), per_host);
        report.figure(&format!("{key}_rechecked_max"), high.unwrap_or(0));
        medians.push((k, a.p50));
    }
    if let (Some(&(k1, t1)), Some(&(k2, t2))) = (medians.first(), medians.last())
        && k2 > k1
    {
        let (ratio, hosts_ratio) = (t2 / t1, k2 as f64 / k1 as f64);
        report.checked(
            "move_scaling",
            format!("K = {} / K = {}: median move", thousands(k2 as u64), thousands(k1 as u64)),
            format!("{} / {} ms = {ratio:.1}x (K: {hosts_ratio:.0}x)", short(t2), short(t1)),
            ratio,
            Target::MinTimes(SCALING_SHARE * hosts_ratio),
        );
        report.note(format!(
            "about {hosts_ratio:.0}x if the time grows with the hosts affected, about 1x if it does not depend on K"
        ));
        // t = a + b K through both points: a is what a move costs whatever it affects.
        let fixed = (k2 as f64 * t1 - k1 as f64 * t2) / (k2 - k1) as f64;
        let slope = (t2 - t1) / (k2 - k1) as f64;
        report.info(
            "  the line through both: fixed part + per affected host",
            format!("{} ms + {slope:.3} ms x K", short(fixed)),
        );
        report.figure("move_scaling", ratio);
        report.figure("move_fixed_ms", fixed);
        report.figure("move_ms_per_host_slope", slope);
    }

    // 5. Correctness.
    eprintln!("reading back every deactivation and every connection's users");
    report.section(CORRECTNESS);
    let mut read_back = 0;
    for (route, users) in &layouts {
        read_back += deactivations_read_back(route, users, &deactivated, clients).await?;
    }
    let expected = 2 * deactivated.len() as u64;
    report.all_of(
        "deactivations_read_back",
        "deactivated users read back with active: false (both layouts)",
        read_back,
        expected,
    );
    let mut totals: Vec<(&Api, String, u64)> = vec![(&big, BIG.to_string(), n as u64)];
    totals.extend(split.iter().enumerate().map(|(i, api)| (api, split_name(i), per as u64)));
    totals.extend(overlaps.iter().filter_map(|o| o.api.as_ref().map(|api| (api, o.name.clone(), o.k as u64))));
    let mut right = 0;
    let mut wrong = None;
    for (api, name, want) in &totals {
        let listed = scim::count_users(api).await?;
        if listed == *want {
            right += 1;
        } else {
            wrong.get_or_insert(format!("{name}: {listed} users listed, {want} expected"));
        }
    }
    report.checked(
        "users_per_connection",
        "users listed per connection (its own token, totalResults)",
        format!("{right} of {} connections", totals.len()),
        right as f64,
        Target::All(totals.len() as u64),
    );
    if let Some(wrong) = wrong {
        report.note(wrong);
    }
    report.all_of("hosts_linked_big", format!("hosts linked to `{BIG}` after the import"), linked_big, n as u64);
    report.all_of(
        "hosts_rechecked",
        "moves whose activity says K hosts rechecked (those affected)",
        tally.rechecked_as_expected,
        tally.moves,
    );
    report.all_of(
        "host_counts",
        "host counts per connection (idp_connection=) after each move",
        tally.counts_ok,
        tally.counts,
    );
    report.all_of("overlap_hosts", "sampled overlap hosts show the winning connection", tally.inside_ok, tally.inside);
    report.all_of("other_hosts", format!("sampled other hosts show `{BIG}`"), tally.outside_ok, tally.outside);
    if let Some(problem) = &tally.first_problem {
        report.info("  first problem", "below");
        report.note(problem.clone());
    }
    ctx.server.ensure_running()?;
    Ok(())
}

/// `items` in `rounds` consecutive parts whose sizes differ by at most one.
fn in_rounds<T>(items: Vec<T>, rounds: usize) -> Vec<Arc<Vec<T>>> {
    let (len, rounds) = (items.len(), rounds.max(1));
    let mut items = items.into_iter();
    (0..rounds)
        .map(|r| {
            let size = (r + 1) * len / rounds - r * len / rounds;
            Arc::new(items.by_ref().take(size).collect())
        })
        .collect()
}

/// Runs `measure(layout, round)` for both layouts in each round, A then B in even rounds
/// and B then A in odd ones, and adds up each layout's loads.
async fn alternating<F, Fut>(rounds: usize, measure: F) -> anyhow::Result<[Load; 2]>
where
    F: Fn(usize, usize) -> Fut,
    Fut: Future<Output = anyhow::Result<Load>>,
{
    let mut totals = [0, 1].map(|_| Load { n: 0, seconds: 0.0, latency: Samples::default() });
    for round in 0..rounds {
        let order = if round.is_multiple_of(2) { [0, 1] } else { [1, 0] };
        for layout in order {
            let load = measure(layout, round).await?;
            if let Some(total) = totals.get_mut(layout) {
                total.n += load.n;
                total.seconds += load.seconds;
                total.latency.extend(load.latency);
            }
        }
    }
    Ok(totals)
}

/// The lookups of `plan`, a round a part, on both layouts alternating.
async fn lookup_rounds(
    layouts: &[(Route, Arc<Vec<User>>); 2],
    plan: &[Arc<Vec<(usize, String)>>],
    clients: usize,
) -> anyhow::Result<[Load; 2]> {
    alternating(plan.len(), |layout, round| {
        let (picked, chunk) = (layouts.get(layout).cloned(), plan.get(round).cloned().unwrap_or_default());
        async move {
            let (route, users) = picked.context("no such layout")?;
            scim::lookups_routed(route, clients, false, users, chunk).await
        }
    })
    .await
}

/// Both layouts' figures of one request kind, and the split layout's as ratios of the
/// single connection's.
fn comparison_rows(report: &mut Report, config: &Config, key: &str, label: &str, one: &Load, split: &Load) {
    let (c, per) = (config.connections, config.per_connection());
    report.section(format!(
        "{label}: {} on each layout, {} clients, {} rounds alternating",
        thousands(one.n as u64),
        config.clients,
        config.rounds
    ));
    let (a, b) = (one.latency.summary(), split.latency.summary());
    let latency = |s: &crate::stats::Summary| format!("{} / {} / {} ms", short(s.p50), short(s.p95), short(s.p99));
    report.info(
        format!("A, one connection of {}: per second", thousands(config.users as u64)),
        format!("{} /s", thousands(one.rate().round() as u64)),
    );
    report.info("  latency p50 / p95 / p99", latency(&a));
    report.info(
        format!("B, {c} connections of {}: per second", thousands(per as u64)),
        format!("{} /s", thousands(split.rate().round() as u64)),
    );
    report.info("  latency p50 / p95 / p99", latency(&b));
    let (rate_ratio, p95_ratio) = (split.rate() / one.rate(), b.p95 / a.p95);
    report.checked(
        &format!("{key}_rate_ratio"),
        "B / A throughput",
        format!("{rate_ratio:.3}x"),
        rate_ratio,
        Target::MinTimes(MIN_RATE_RATIO),
    );
    report.checked(
        &format!("{key}_p95_ratio"),
        "B / A p95",
        format!("{p95_ratio:.3}x"),
        p95_ratio,
        Target::MaxTimes(MAX_P95_RATIO),
    );
    report.figure(&format!("{key}_one_per_s"), one.rate());
    report.figure(&format!("{key}_split_per_s"), split.rate());
    report.figure(&format!("{key}_rate_ratio"), rate_ratio);
    report.figure(&format!("{key}_p95_ratio"), p95_ratio);
    figures(report, &format!("{key}_one"), &a, true);
    figures(report, &format!("{key}_split"), &b, true);
}

/// Moves connection `id` to `priority` (an admin's `PATCH /idp/connections/{id}`): the
/// time of the PATCH, and the hosts it rechecked by the activity feed.
async fn move_connection(fleet: &Api, id: i64, priority: i64) -> anyhow::Result<(Duration, Option<u64>)> {
    let url = fleet.url(&format!("/idp/connections/{id}"), &[])?;
    let body = json!({ "priority": priority });
    let (took, answer) = fleet.call(Method::PATCH, url, Some(&body), StatusCode::OK).await?;
    let answer: Value = serde_json::from_slice(&answer).context("the PATCH's answer is not JSON")?;
    ensure!(
        answer.pointer("/connection/priority").and_then(Value::as_i64) == Some(priority),
        "PATCH /idp/connections/{id} answered another priority: {}",
        excerpt(answer.to_string().as_bytes())
    );
    let url = fleet.url("/activities", &[("per_page", "20")])?;
    let (_, feed) = fleet.call(Method::GET, url, None, StatusCode::OK).await?;
    let feed: Value = serde_json::from_slice(&feed).context("the activity feed is not JSON")?;
    let rechecked = feed
        .get("activities")
        .and_then(Value::as_array)
        .and_then(|all| {
            all.iter().find(|a| {
                a.get("type").and_then(Value::as_str) == Some("edited_idp_connection")
                    && a.pointer("/details/connection_id").and_then(Value::as_i64) == Some(id)
                    && a.pointer("/details/priority").and_then(Value::as_i64) == Some(priority)
            })
        })
        .and_then(|a| a.pointer("/details/hosts_rechecked").and_then(Value::as_u64));
    Ok((took, rechecked))
}

/// The hosts: their ids, and each user's host.
struct Hosts<'a> {
    ids: &'a [i64],
    host_of_user: &'a [usize],
    users: &'a [User],
}

/// The host counts of `overlap` and of `big`, with `winner` ahead for the overlap's users.
async fn counts(fleet: &Api, overlap: &Overlap, winner: &str, n: usize, tally: &mut Tally) -> anyhow::Result<()> {
    let inside = if winner == BIG { 0 } else { overlap.k as u64 };
    for (name, want) in [(overlap.name.as_str(), inside), (BIG, n as u64 - inside)] {
        let (_, count) = count_hosts(fleet, &[("idp_connection", name)]).await?;
        tally.counts += 1;
        if count == want {
            tally.counts_ok += 1;
        } else {
            tally.problem(format!(
                "with `{winner}` ahead for {}: {count} hosts of `{name}`, expected {want}",
                overlap.name
            ));
        }
    }
    Ok(())
}

/// Reads `n` random hosts of the overlap's users (which must show `winner`) and as many
/// of other users (which must show `big`), each with its own user's userName.
async fn samples(
    fleet: &Api,
    hosts: &Hosts<'_>,
    overlap: &Overlap,
    winner: &str,
    n: usize,
    rng: &mut StdRng,
    tally: &mut Tally,
) -> anyhow::Result<()> {
    for inside in [true, false] {
        for _ in 0..n {
            let user = if inside {
                overlap.first + rng.random_range(0..overlap.k)
            } else {
                // Some users are outside every overlap (checked in the config).
                loop {
                    let u = rng.random_range(0..hosts.users.len());
                    if !overlap.contains(u) {
                        break u;
                    }
                }
            };
            let h = *hosts.host_of_user.get(user).context("no such user")?;
            let id = *hosts.ids.get(h).context("no such host")?;
            let user_name = hosts.users.get(user).map(|u| u.user_name.as_str()).unwrap_or_default();
            let (_, body) =
                fleet.call(Method::GET, fleet.url(&format!("/hosts/{id}"), &[])?, None, StatusCode::OK).await?;
            let host: Value = serde_json::from_slice(&body).context("host details are not JSON")?;
            let field = |name: &str| host.pointer(&format!("/host/end_users/0/{name}")).and_then(Value::as_str);
            let want = if inside { winner } else { BIG };
            let ok = field("idp_connection") == Some(want) && field("idp_username") == Some(user_name);
            if inside {
                tally.inside += 1;
                tally.inside_ok += u64::from(ok);
            } else {
                tally.outside += 1;
                tally.outside_ok += u64::from(ok);
            }
            if !ok {
                tally.problem(format!(
                    "with `{winner}` ahead for {}: host {id} ({user_name}) shows connection {:?} and user {:?}, \
                     expected `{want}`",
                    overlap.name,
                    field("idp_connection"),
                    field("idp_username")
                ));
            }
        }
    }
    Ok(())
}

/// How many of the users at `which` read back deactivated through their connection.
async fn deactivations_read_back(
    route: &Route,
    users: &Arc<Vec<User>>,
    which: &[usize],
    clients: usize,
) -> anyhow::Result<u64> {
    let (route, users, which) = (route.clone(), users.clone(), Arc::new(which.to_vec()));
    let read = in_parallel(which.len(), clients, move |i| {
        let (route, users, which) = (route.clone(), users.clone(), which.clone());
        async move {
            let u = *which.get(i).context("no such write")?;
            let user = users.get(u).context("no such user")?;
            let api = route.api(u)?;
            let (_, body) =
                api.call(Method::GET, api.url(&format!("/Users/{}", user.id), &[])?, None, StatusCode::OK).await?;
            let read: Value = serde_json::from_slice(&body).context("a user is not JSON")?;
            Ok(read.get("active") == Some(&Value::Bool(false)))
        }
    })
    .await?;
    Ok(read.into_iter().filter(|&ok| ok).count() as u64)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rounds_split_evenly_and_keep_everything() {
        let parts = in_rounds((0..10).collect::<Vec<_>>(), 4);
        let sizes: Vec<usize> = parts.iter().map(|p| p.len()).collect();
        assert_eq!(sizes, vec![2, 3, 2, 3]);
        let all: Vec<i32> = parts.iter().flat_map(|p| p.iter().copied()).collect();
        assert_eq!(all, (0..10).collect::<Vec<_>>());
        assert_eq!(in_rounds((0..4).collect::<Vec<_>>(), 2).len(), 2);
        assert_eq!(in_rounds((0..3).collect::<Vec<_>>(), 1).first().map(|p| p.len()), Some(3));
    }

    #[test]
    fn names_and_overlaps() {
        assert_eq!(split_name(0), "c01");
        assert_eq!(split_name(9), "c10");
        assert_eq!(overlap_name(1000), "overlap-1000");
        let o = Overlap { name: overlap_name(3), api: None, id: 1, priority: OVERLAP_PRIORITY, first: 5, k: 3 };
        assert!(!o.contains(4) && o.contains(5) && o.contains(7) && !o.contains(8));
    }
}
