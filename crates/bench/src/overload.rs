//! `custodian-bench overload`: one IdP token sending twice what the server sustains.
//!
//! 1. With no rate limit, seeds users, then measures the capacity C of a realistic SCIM
//!    mix (60% `userName eq` lookups, 25% PATCHes of a user, 15% creations) from closed-
//!    loop clients. The sustainable rate R is the highest open-loop rate, in steps of C/10,
//!    at which the mix stays within half the `scim` benchmark's latency targets (unless
//!    `--rate` gives it).
//! 2. Restarts the server with `--rate-limit-per-token R --rate-limit-burst B` (R/5, at
//!    most 64) and, unless `--rate` gives R, lowers R until 2R answers within the targets
//!    with no answer but 2xx and 429 (10 s steps; 3 s with --quick). Then drives
//!    an open-loop constant arrival rate of 2R (each request sent on schedule, whatever
//!    the answers before it) for 30 s (5 s with --quick), while `/healthz` is probed every
//!    100 ms.
//! 3. Prints the offered rate, the 2xx rate, the counts of 2xx, 429 and anything else
//!    (which must be none: no 5xx, no connection error), the latencies of the 2xx and of
//!    the 429 answers, and whether `/healthz` answered throughout; the latencies are
//!    judged by the `scim` benchmark's targets.

use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{Context, bail, ensure};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use reqwest::{Method, StatusCode, Url};
use serde_json::{Value, json};

use crate::OverloadArgs;
use crate::report::{Report, Target, short, thousands};
use crate::scim::{
    Api, CORRECTNESS, Expected, LOOKUP_P95_MS, MEMBER_PATCH_P95_MS, SCIM_JSON, SCIM_PATH, User, create_users, okta_user,
};
use crate::server::{self, Server};
use crate::stats::Samples;

/// A step is sustainable when its p95s are within this share of the targets: headroom for
/// the work of answering the excess with 429, and for the noise of a short step.
const HEADROOM: f64 = 0.5;
/// The 2xx rate during the overload must reach this share of R.
const SERVED_SHARE: f64 = 0.9;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Op {
    Lookup,
    Patch,
    Create,
}

impl Op {
    fn pick(rng: &mut StdRng) -> Op {
        match rng.random_range(0..100) {
            0..60 => Op::Lookup,
            60..85 => Op::Patch,
            _ => Op::Create,
        }
    }
}

/// One request of the mix, ready to send.
struct Call {
    op: Op,
    method: Method,
    url: Url,
    body: Option<String>,
    write: Option<Write>,
}

/// What a write should leave, to read it back after the run.
enum Write {
    Create { user_name: String, external_id: String, display_name: String },
    Rename { id: String, display_name: String },
}

/// The writes the server acknowledged (2xx), and those whose fate is unknown (no answer,
/// or one other than 2xx and 429: these already fail the run, but must not fail the read
/// back as well).
#[derive(Default)]
struct Acked {
    /// Users created, and the displayName each should have.
    created: Vec<(Expected, String)>,
    uncertain_creations: u64,
    /// The displayNames acknowledged per user id: with PATCHes of one user in flight
    /// together, the one applied last is one of them.
    renamed: HashMap<String, Vec<String>>,
    /// The displayNames of PATCHes without a clear answer: applied or not.
    maybe_renamed: HashMap<String, Vec<String>>,
}

/// What came back.
enum Outcome {
    Served(Duration),
    Limited(Duration),
    Other(String),
}

#[derive(Clone)]
struct Mix {
    client: reqwest::Client,
    base: String,
    auth: String,
    users: Arc<Vec<User>>,
    /// The next user number to create.
    next_user: Arc<AtomicUsize>,
    acked: Arc<Mutex<Acked>>,
    /// Requests sent and not yet answered, on this side.
    in_flight: Arc<AtomicUsize>,
}

impl Mix {
    fn call(&self, rng: &mut StdRng) -> anyhow::Result<Call> {
        let op = Op::pick(rng);
        let user = self.users.get(rng.random_range(0..self.users.len())).context("no users")?;
        let call = match op {
            Op::Lookup => {
                let mut url = Url::parse(&format!("{}/Users", self.base))?;
                url.query_pairs_mut().append_pair("filter", &format!("userName eq \"{}\"", user.user_name));
                Call { op, method: Method::GET, url, body: None, write: None }
            }
            Op::Patch => {
                // Random enough that two PATCHes never set the same name.
                let display_name = format!("Renamed {:016x}", rng.random::<u64>());
                let body = crate::scim::patch(vec![
                    json!({"op": "replace", "path": "displayName", "value": display_name.clone()}),
                ]);
                let url = Url::parse(&format!("{}/Users/{}", self.base, user.id))?;
                let write = Some(Write::Rename { id: user.id.clone(), display_name });
                Call { op, method: Method::PATCH, url, body: Some(body.to_string()), write }
            }
            Op::Create => {
                let (body, user_name, external_id) = okta_user(self.next_user.fetch_add(1, Ordering::Relaxed));
                let display_name = display_name_of(&body);
                let url = Url::parse(&format!("{}/Users", self.base))?;
                let write = Some(Write::Create { user_name, external_id, display_name });
                Call { op, method: Method::POST, url, body: Some(body.to_string()), write }
            }
        };
        Ok(call)
    }

    /// Sends `call`; also answers how many requests were in flight on this side with it.
    async fn send(&self, call: Call) -> (Op, Outcome, usize) {
        let in_flight = self.in_flight.fetch_add(1, Ordering::Relaxed) + 1;
        let (op, outcome, body) = self.exchange(&call).await;
        self.in_flight.fetch_sub(1, Ordering::Relaxed);
        self.acknowledge(call.write, &outcome, &body);
        (op, outcome, in_flight)
    }

    /// Records the write of an answered call (its id, for a creation).
    fn acknowledge(&self, write: Option<Write>, outcome: &Outcome, body: &[u8]) {
        let Some(write) = write else { return };
        let Ok(mut acked) = self.acked.lock() else { return };
        let certain = matches!(outcome, Outcome::Served(_));
        match write {
            Write::Create { user_name, external_id, display_name } if certain => match crate::scim::id_of(body) {
                Ok(id) => acked.created.push((Expected { id, user_name, external_id }, display_name)),
                Err(_) => acked.uncertain_creations += 1,
            },
            Write::Create { .. } if matches!(outcome, Outcome::Other(_)) => acked.uncertain_creations += 1,
            Write::Rename { id, display_name } if certain => acked.renamed.entry(id).or_default().push(display_name),
            Write::Rename { id, display_name } if matches!(outcome, Outcome::Other(_)) => {
                acked.maybe_renamed.entry(id).or_default().push(display_name)
            }
            _ => {}
        }
    }

    async fn exchange(&self, call: &Call) -> (Op, Outcome, Vec<u8>) {
        let mut request = self
            .client
            .request(call.method.clone(), call.url.clone())
            .header("Authorization", &self.auth)
            .header("Accept", SCIM_JSON);
        if let Some(body) = &call.body {
            request = request.header("Content-Type", SCIM_JSON).body(body.clone());
        }
        let started = Instant::now();
        let (outcome, body) = match request.send().await {
            Ok(response) => {
                let status = response.status();
                let read = response.bytes().await;
                let took = started.elapsed();
                match read {
                    Err(e) => (Outcome::Other(format!("reading the answer to {}: {e}", call.method)), Vec::new()),
                    Ok(body) if status.is_success() => (Outcome::Served(took), body.to_vec()),
                    Ok(_) if status == StatusCode::TOO_MANY_REQUESTS => (Outcome::Limited(took), Vec::new()),
                    Ok(body) => (
                        Outcome::Other(format!(
                            "{} {} answered {status}: {}",
                            call.method,
                            call.url.path(),
                            crate::scim::excerpt(&body)
                        )),
                        Vec::new(),
                    ),
                }
            }
            Err(e) => (Outcome::Other(format!("{} {}: {e}", call.method, call.url.path())), Vec::new()),
        };
        (call.op, outcome, body)
    }
}

/// The displayName of an `okta_user` body.
fn display_name_of(body: &Value) -> String {
    body.get("displayName").and_then(Value::as_str).unwrap_or_default().to_string()
}

/// Latencies by kind of answer.
#[derive(Default)]
struct Tally {
    lookups: Samples,
    writes: Samples,
    limited: Samples,
    others: Vec<String>,
    /// When each other answer's request was sent (seconds into the run), and how many
    /// requests were in flight on this side with it.
    others_at: Vec<(f64, usize)>,
    /// The most requests in flight on this side at once.
    max_in_flight: usize,
}

impl Tally {
    fn add(&mut self, op: Op, outcome: Outcome) {
        match outcome {
            Outcome::Served(d) if op == Op::Lookup => self.lookups.push(d),
            Outcome::Served(d) => self.writes.push(d),
            Outcome::Limited(d) => self.limited.push(d),
            Outcome::Other(e) => self.others.push(e),
        }
    }
    /// Adds an answer of the open loop: its request was sent `at` seconds into the run,
    /// with `in_flight` requests in flight.
    fn add_sent(&mut self, op: Op, outcome: Outcome, at: f64, in_flight: usize) {
        self.max_in_flight = self.max_in_flight.max(in_flight);
        if matches!(outcome, Outcome::Other(_)) {
            self.others_at.push((at, in_flight));
        }
        self.add(op, outcome);
    }

    fn served(&self) -> Samples {
        let mut all = self.lookups.clone();
        all.extend(self.writes.clone());
        all
    }
    fn total(&self) -> usize {
        self.lookups.len() + self.writes.len() + self.limited.len() + self.others.len()
    }
}

pub async fn run(args: OverloadArgs) -> anyhow::Result<bool> {
    let started = Instant::now();
    let users = args.users.unwrap_or(if args.quick { 500 } else { 2_000 });
    let seconds = args.seconds.unwrap_or(if args.quick { 5 } else { 30 });
    let measure_seconds = if args.quick { 3 } else { 10 };
    ensure!(users >= 1 && seconds >= 1 && args.clients >= 1, "--users, --seconds and --clients must be at least 1");
    let no_limit = ["--rate-limit-per-token".to_string(), "0".to_string()];
    let mut launched = server::launch_with(&args.common, "overload", 512, &no_limit).await?;
    let mut report = Report::new(args.quick);
    report.figure("backend", launched.backend.as_str());
    let outcome = tokio::select! {
        r = phases(&mut launched, &args, users, seconds, measure_seconds, &mut report) => r,
        s = crate::interrupted() => Err(anyhow::anyhow!("interrupted by {s}")),
    };
    launched.finish(report, outcome, "4. Server memory", &args.common, started)
}

async fn phases(
    launched: &mut server::Launched,
    args: &OverloadArgs,
    users: usize,
    seconds: u64,
    measure_seconds: u64,
    report: &mut Report,
) -> anyhow::Result<()> {
    let mut rng = StdRng::seed_from_u64(args.common.seed);
    let base = |server: &Server| format!("http://{}{SCIM_PATH}", server.addr);

    // 1. Users to look up and patch, then the capacity of the mix without a limit.
    eprintln!("[1/3] seeding {} users, then measuring the mix with {} clients", thousands(users as u64), args.clients);
    let api = Api::new(launched.client.clone(), base(&launched.server), &launched.token, SCIM_JSON);
    let before = crate::scim::count_users(&api).await?;
    let (seeded, _) =
        create_users(&api, Url::parse(&format!("{}/Users", base(&launched.server)))?, users, 16, okta_user).await?;
    let mut mix = Mix {
        client: launched.client.clone(),
        base: base(&launched.server),
        auth: format!("Bearer {}", launched.token),
        users: Arc::new(seeded),
        next_user: Arc::new(AtomicUsize::new(users + 1)),
        acked: Arc::default(),
        in_flight: Arc::default(),
    };
    let (capacity, closed) = closed_loop(&mix, args.clients, Duration::from_secs(measure_seconds), &mut rng).await?;
    launched.server.ensure_running()?;
    let s = closed.served().summary();
    report.section("1. The mix without a limit: 60% userName eq, 25% PATCH, 15% POST /Users");
    report.info(
        format!("capacity ({} closed-loop clients, {measure_seconds} s)", args.clients),
        format!("{} /s", thousands(capacity.round() as u64)),
    );
    report.info("  latency p50 / p95 / p99", format!("{} / {} / {} ms", short(s.p50), short(s.p95), short(s.p99)));
    report.figure("capacity_per_s", capacity);
    report.figure("capacity_p95_ms", s.p95);
    let rate = match args.rate {
        Some(r) => {
            report.info("sustainable rate R (--rate)", format!("{} /s", thousands(r)));
            r
        }
        None => {
            let step_seconds = if args.quick { 2 } else { 10 };
            eprintln!("  finding the sustainable rate: open loop in steps of {step_seconds} s");
            let step = Duration::from_secs(step_seconds);
            let found = sustainable_rate(&mix, capacity, step, &launched.server, &mut rng).await?;
            report.info(
                format!("sustainable rate R (highest {step_seconds} s open-loop step within half the targets)"),
                format!("{} /s", thousands(found)),
            );
            found
        }
    };
    report.figure("sustainable_per_s", rate);

    // 2. The same database, served with a per-token limit of R. Refusing the excess costs
    // the server (and the client, which shares the machine) something too: unless R was
    // given, R is lowered step by step until a short run at 2R, limited to R, keeps the
    // answers it serves within the targets; the long run below then measures that R. A
    // quick run does it too (with shorter steps): an R the server cannot serve while
    // refusing as much again fills its places in flight, and the excess is shed with 503.
    let increment = step_increment(capacity);
    let hold_seconds = if args.quick { 3 } else { 10 };
    let mut rate = rate;
    loop {
        restart_limited(launched, rate).await?;
        mix.base = base(&launched.server);
        if args.rate.is_some() || rate <= increment {
            break;
        }
        let step = Duration::from_secs(hold_seconds);
        let (tally, _, _) = open_loop(&mix, 2 * rate, step, &launched.server, &mut rng).await?;
        let (lookups, writes) = (tally.lookups.summary(), tally.writes.summary());
        let met = tally.others.is_empty()
            && lookups.p95 < LOOKUP_P95_MS
            && (writes.n == 0 || writes.p95 < MEMBER_PATCH_P95_MS);
        eprintln!(
            "    limit {} /s, offered {} /s: served lookups p95 {} ms, writes p95 {} ms, {} other answers: {}",
            thousands(rate),
            thousands(2 * rate),
            short(lookups.p95),
            short(writes.p95),
            tally.others.len(),
            if met { "within the targets" } else { "beyond: one step lower" }
        );
        if met {
            break;
        }
        rate -= increment;
    }
    if args.rate.is_none() {
        report.info(
            format!("R held while refusing an equal excess ({hold_seconds} s steps at 2R, limited to R)"),
            format!("{} /s", thousands(rate)),
        );
    }
    report.figure("limit_per_s", rate);
    let burst = burst_of(rate);
    let offered_rate = 2 * rate;
    eprintln!(
        "[2/3] open loop at {} /s (2 x R) for {seconds} s, limit {} /s per token",
        thousands(offered_rate),
        thousands(rate)
    );
    let (tally, sent_seconds, health) =
        open_loop(&mix, offered_rate, Duration::from_secs(seconds), &launched.server, &mut rng).await?;
    launched.server.ensure_running()?;

    // 3. The figures.
    eprintln!("[3/3] done");
    let total = tally.total();
    let served = tally.served();
    let (all, lookups, writes, limited) =
        (served.summary(), tally.lookups.summary(), tally.writes.summary(), tally.limited.summary());
    let offered = total as f64 / sent_seconds;
    let served_rate = served.len() as f64 / sent_seconds;
    report.section(format!(
        "2. Open loop at 2 x R = {} /s for {seconds} s, limit R = {} /s per token (burst {})",
        thousands(offered_rate),
        thousands(rate),
        thousands(burst)
    ));
    report.info("offered rate", format!("{offered:.0} /s"));
    report.checked(
        "served_per_s",
        format!("2xx rate (>= {:.0}% of R)", SERVED_SHARE * 100.0),
        format!("{served_rate:.0} /s"),
        served_rate,
        Target::MinPerSec(rate as f64 * SERVED_SHARE),
    );
    report.info("2xx / 429 / other", format!("{} / {} / {}", served.len(), tally.limited.len(), tally.others.len()));
    report.checked(
        "answered_2xx_or_429",
        "answered 2xx or 429 (no 5xx, no connection error)",
        thousands((total - tally.others.len()) as u64),
        (total - tally.others.len()) as f64,
        Target::All(total as u64),
    );
    report.info("2xx p50 / p95 / p99", format!("{} / {} / {} ms", short(all.p50), short(all.p95), short(all.p99)));
    report.checked(
        "served_lookup_p95",
        format!("2xx lookups p50 / p95 (n={})", lookups.n),
        format!("{} / {} ms", short(lookups.p50), short(lookups.p95)),
        lookups.p95,
        Target::MaxMs(LOOKUP_P95_MS),
    );
    report.checked(
        "served_write_p95",
        format!("2xx PATCH and POST p50 / p95 (n={})", writes.n),
        format!("{} / {} ms", short(writes.p50), short(writes.p95)),
        writes.p95,
        Target::MaxMs(MEMBER_PATCH_P95_MS),
    );
    report.checked(
        "limited_p95",
        "429 p50 / p95 / p99",
        format!("{} / {} / {} ms", short(limited.p50), short(limited.p95), short(limited.p99)),
        limited.p95,
        Target::MaxMs(LOOKUP_P95_MS),
    );
    report.all_of("healthz_ok", "/healthz answered 200 (every 100 ms)", health.0 as u64, health.1 as u64);
    for e in tally.others.iter().take(5) {
        eprintln!("  other: {e}");
    }
    report.figure("offered_per_s", offered);
    report.figure("served_count", served.len() as u64);
    report.figure("limited_count", tally.limited.len() as u64);
    report.figure("other_count", tally.others.len() as u64);
    for (key, s) in [("served", &all), ("served_lookup", &lookups), ("served_write", &writes), ("limited", &limited)] {
        report.figure(&format!("{key}_p50_ms"), s.p50);
        report.figure(&format!("{key}_p95_ms"), s.p95);
        report.figure(&format!("{key}_p99_ms"), s.p99);
    }
    report.figure("healthz_ok", health.0 as u64);
    report.figure("healthz_probes", health.1 as u64);
    // Where answers other than 2xx and 429 come from: how many requests were in flight.
    report.info("most requests in flight at once (this side)", thousands(tally.max_in_flight as u64));
    report.figure("max_in_flight", tally.max_in_flight as u64);
    if !tally.others.is_empty() {
        let (times, counts): (Vec<f64>, Vec<usize>) = tally.others_at.iter().copied().unzip();
        let (first, last) = times.iter().fold((f64::MAX, 0.0f64), |(a, b), &t| (a.min(t), b.max(t)));
        let (fewest, most) = counts.iter().fold((usize::MAX, 0), |(a, b), &n| (a.min(n), b.max(n)));
        report.info(
            "other answers: sent from / to, with requests in flight",
            format!("{first:.2} s / {last:.2} s, {fewest} to {most}"),
        );
    }

    // 4. Every acknowledged write read back, from a server without a limit.
    eprintln!("reading back every user");
    restart(launched, &["--rate-limit-per-token".to_string(), "0".to_string()], "server-read-back.log").await?;
    let api = Api::new(launched.client.clone(), base(&launched.server), &launched.token, SCIM_JSON);
    report.section(CORRECTNESS);
    read_back(&api, &mix, before, report).await?;
    crate::scim::answers_row(report, &[&api]);
    launched.server.ensure_running()?;
    Ok(())
}

/// The correctness rows of the writes: every user the server acknowledged creating, and
/// every displayName it acknowledged setting (the one read is one of them; a user never
/// renamed keeps its own).
async fn read_back(api: &Api, mix: &Mix, before: u64, report: &mut Report) -> anyhow::Result<()> {
    let acked = std::mem::take(&mut *mix.acked.lock().map_err(|_| anyhow::anyhow!("a sender panicked"))?);
    let mut expected: Vec<Expected> = Vec::new();
    let mut display_names: Vec<(String, Vec<String>)> = Vec::new();
    for (n, user) in mix.users.iter().enumerate() {
        let (body, _, _) = okta_user(n + 1);
        let own = display_name_of(&body);
        expected.push(Expected {
            id: user.id.clone(),
            user_name: user.user_name.clone(),
            external_id: user.external_id.clone(),
        });
        let mut allowed = acked.renamed.get(&user.id).cloned().unwrap_or_else(|| vec![own]);
        allowed.extend(acked.maybe_renamed.get(&user.id).cloned().unwrap_or_default());
        display_names.push((user.id.clone(), allowed));
    }
    for (user, own) in acked.created {
        display_names.push((user.id.clone(), vec![own]));
        expected.push(user);
    }
    let read = crate::scim::read_back_users(api, report, before, &expected, acked.uncertain_creations).await?;
    let mut first_problem = None;
    let renamed = acked.renamed.len();
    let matched = display_names
        .iter()
        .filter(|(id, allowed)| {
            let shown = read.get(id).and_then(|u| u.get("displayName")).and_then(Value::as_str);
            let ok = shown.is_some_and(|s| allowed.iter().any(|a| a == s));
            if !ok && first_problem.is_none() {
                first_problem = Some(format!("user {id} shows {shown:?}, not one of {allowed:?}"));
            }
            ok
        })
        .count();
    report.all_of(
        "display_names_read_back",
        format!("displayName as acknowledged (PATCHed users: {})", thousands(renamed as u64)),
        matched as u64,
        display_names.len() as u64,
    );
    if let Some(problem) = first_problem {
        report.info("  first displayName not as acknowledged", problem);
    }
    Ok(())
}

/// A tenth of the capacity, rounded to tens: the step of the rate searches.
fn step_increment(capacity: f64) -> u64 {
    ((capacity / 100.0).round() * 10.0).max(10.0) as u64
}

/// The most requests a full bucket lets through at once: a quarter of the server's 256
/// places in flight. A bucket of R/5 at an R of 1,540/s admits 308 at the start of the
/// run, more than there are places, whatever the server serves meanwhile.
const MAX_BURST: u64 = 64;

/// The burst of a limit of `rate`: a fifth of a second, at most [`MAX_BURST`].
fn burst_of(rate: u64) -> u64 {
    (rate / 5).clamp(1, MAX_BURST)
}

/// Replaces the running server by one on the same database limited to `rate` per token
/// (with a burst of [`burst_of`] it, which an offered 2R drains at once).
async fn restart_limited(launched: &mut server::Launched, rate: u64) -> anyhow::Result<()> {
    let burst = burst_of(rate);
    let limit =
        ["--rate-limit-per-token".to_string(), rate.to_string(), "--rate-limit-burst".to_string(), burst.to_string()];
    restart(launched, &limit, &format!("server-limited-{rate}.log")).await
}

/// Replaces the running server by one on the same database with `serve_args`.
async fn restart(launched: &mut server::Launched, serve_args: &[String], log: &str) -> anyhow::Result<()> {
    let addr = server::free_local_addr()?;
    let log = launched.tmp.path().join(log);
    let old = std::mem::replace(
        &mut launched.server,
        Server::start(&launched.binary, &launched.database, addr, log, serve_args)?,
    );
    drop(old);
    launched.server.wait_healthy(&launched.client, Duration::from_secs(60)).await
}

/// The highest rate, in steps of a tenth of the capacity, at which an open loop of the mix
/// meets the targets with headroom (lookups and writes p95 within half their targets, no
/// errors); at least the first step.
async fn sustainable_rate(
    mix: &Mix,
    capacity: f64,
    step: Duration,
    server: &Server,
    rng: &mut StdRng,
) -> anyhow::Result<u64> {
    let increment = step_increment(capacity);
    let mut sustainable = increment;
    let mut rate = increment;
    // No step above the closed-loop capacity: a short open loop there has not built its
    // queue yet, and would look sustainable.
    while rate as f64 <= capacity {
        let (tally, _, _) = open_loop(mix, rate, step, server, rng).await?;
        let (lookups, writes) = (tally.lookups.summary(), tally.writes.summary());
        let met = tally.others.is_empty()
            && tally.limited.len() == 0
            && lookups.p95 < LOOKUP_P95_MS * HEADROOM
            && (writes.n == 0 || writes.p95 < MEMBER_PATCH_P95_MS * HEADROOM);
        eprintln!(
            "    {} /s: lookups p95 {} ms, writes p95 {} ms, {} errors: {}",
            thousands(rate),
            short(lookups.p95),
            short(writes.p95),
            tally.others.len(),
            if met { "within the targets" } else { "beyond" }
        );
        if !met {
            break;
        }
        sustainable = rate;
        rate += increment;
    }
    Ok(sustainable)
}

/// `clients` clients sending the mix back to back for `duration`: completions per second.
/// Everything must succeed (there is no limit yet).
async fn closed_loop(mix: &Mix, clients: usize, duration: Duration, rng: &mut StdRng) -> anyhow::Result<(f64, Tally)> {
    let started = Instant::now();
    let mut workers = tokio::task::JoinSet::new();
    for _ in 0..clients {
        let mix = mix.clone();
        let mut rng = StdRng::seed_from_u64(rng.random());
        workers.spawn(async move {
            let mut tally = Tally::default();
            while started.elapsed() < duration {
                let call = mix.call(&mut rng)?;
                match mix.send(call).await {
                    (_, Outcome::Other(e), _) => bail!("while measuring the capacity: {e}"),
                    (_, Outcome::Limited(_), _) => bail!("while measuring the capacity: 429 with no limit set"),
                    (op, served, _) => tally.add(op, served),
                }
            }
            Ok::<_, anyhow::Error>(tally)
        });
    }
    let mut all = Tally::default();
    while let Some(joined) = workers.join_next().await {
        let tally = joined.context("a client task failed")??;
        all.lookups.extend(tally.lookups);
        all.writes.extend(tally.writes);
    }
    let seconds = started.elapsed().as_secs_f64();
    Ok((all.total() as f64 / seconds, all))
}

/// Sends the mix at `rate` per second for `duration`, each request at its scheduled time
/// whatever became of the earlier ones; probes `/healthz` meanwhile. Returns the tally,
/// the seconds over which requests were sent, and (health probes answered 200, probes).
async fn open_loop(
    mix: &Mix,
    rate: u64,
    duration: Duration,
    server: &Server,
    rng: &mut StdRng,
) -> anyhow::Result<(Tally, f64, (usize, usize))> {
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
    let probe = {
        let (client, url) = (mix.client.clone(), format!("http://{}/healthz", server.addr));
        tokio::spawn(async move {
            let (mut ok, mut probes) = (0usize, 0usize);
            let started = Instant::now();
            let mut tick = tokio::time::interval(Duration::from_millis(100));
            while started.elapsed() < duration {
                tick.tick().await;
                probes += 1;
                let answered = client.get(&url).timeout(Duration::from_secs(2)).send().await;
                if answered.is_ok_and(|r| r.status() == StatusCode::OK) {
                    ok += 1;
                }
            }
            (ok, probes)
        })
    };
    let started = Instant::now();
    let interval = Duration::from_secs_f64(1.0 / rate as f64);
    let count = (rate as f64 * duration.as_secs_f64()).round() as u64;
    for i in 0..count {
        let at = started + interval.mul_f64(i as f64);
        tokio::time::sleep_until(at.into()).await;
        let call = mix.call(rng)?;
        let (mix, tx) = (mix.clone(), tx.clone());
        tokio::spawn(async move {
            let at = started.elapsed().as_secs_f64();
            let _ = tx.send((mix.send(call).await, at));
        });
    }
    let sent_seconds = started.elapsed().as_secs_f64().max(duration.as_secs_f64());
    drop(tx);
    let mut tally = Tally::default();
    let collect = async {
        while let Some(((op, outcome, in_flight), at)) = rx.recv().await {
            tally.add_sent(op, outcome, at, in_flight);
        }
    };
    if tokio::time::timeout(Duration::from_secs(120), collect).await.is_err() {
        bail!("answers were still missing 120 s after the last request");
    }
    let health = probe.await.context("the health probe failed")?;
    Ok((tally, sent_seconds, health))
}
