//! `custodian-bench google`: a full Google Workspace directory sync, from the fake Google
//! of `custodian-google` (its token endpoint, which verifies the RS256 assertion, and the
//! Directory API with Google's paging), run on 127.0.0.1 inside this process.
//!
//! 1. The fake is filled with N users over two domains (example.com and
//!    subsidiary.example) and seven org units, each with a name, a primary organization
//!    (department, title, cost center), and now and then aliases, an employee id or a
//!    suspension; and G groups of about 50 user members each (every hundredth of 450,
//!    three pages of members), a few nested groups each (no cycles) and now and then a
//!    member from outside the directory. The same read from this process (custodian-
//!    google's `read_snapshot`, no server) is timed first: the fake's part of each run.
//! 2. `custodian serve` on a fresh database; an admin creates the `google_workspace`
//!    connection (`POST /idp/connections`), whose first run the server starts by itself.
//!    Its runs are polled every 200 ms until it finishes: the time from the POST, the
//!    run's own started_at..finished_at, the requests Google received (pages read and
//!    token exchanges) against the pages the directory needs, and its counts against what
//!    was put in. A run the server then starts by itself (its interval is a day) is
//!    counted as a failure, and waited for before the second run.
//! 3. A second run of the unchanged directory (`POST .../sync`): its time and requests,
//!    and that it wrote nothing: counts of 0, no new activity, and the users' and groups'
//!    "Updated" times (sampled pages of the web interface; an operator's token reads only
//!    the `default` connection over SCIM) unchanged. `--unchanged-runs N` adds runs, to
//!    tell memory kept from memory needed.
//! 4. The server's peak memory.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use anyhow::{Context, bail, ensure};
use chrono::{DateTime, FixedOffset};
use custodian_google::directory::{GROUPS_PAGE, MEMBERS_PAGE, USERS_PAGE};
use custodian_google::fake::{self, FakeGoogle};
use custodian_google::retry::RetryPolicy;
use custodian_google::{DirectoryClient, DirectoryConfig, ServiceAccountKey, read_snapshot};
use rand::SeedableRng;
use rand::rngs::StdRng;
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

use crate::GoogleArgs;
use crate::hosts::{FLEET_PATH, JSON};
use crate::report::{Report, Target, thousands};
use crate::scim::{self, Api, CORRECTNESS, excerpt};
use crate::server::{self, Server};
use crate::web::{self, WebSession};

/// The targets: a first run of 50,000 users, an unchanged run, and the memory.
const FIRST_RUN_SECONDS: f64 = 120.0;
const UNCHANGED_RUN_SECONDS: f64 = 30.0;
const MAX_RSS_MIB: f64 = 512.0;
/// How often the runs are polled.
const POLL: Duration = Duration::from_millis(200);
/// How long the bench waits for a run (the server stops a run after 30 minutes).
const RUN_DEADLINE: Duration = Duration::from_secs(35 * 60);
/// How long after the first run the bench looks for a run the server started by itself:
/// longer than the scheduler's tick (5 s).
const SETTLE: Duration = Duration::from_millis(5_500);
/// The web interface shows whole seconds: a rewrite by the second run must fall in a
/// later second than the writes before it.
const SECOND_APART: Duration = Duration::from_millis(1_100);
/// Every this many groups, one of this many user members (several pages of members).
const LARGE_EVERY: usize = 100;
const LARGE_GROUP: usize = 450;
/// The admin the service account acts as (one of the fake's admins).
const ADMIN_EMAIL: &str = "admin@example.com";
const CONNECTION: &str = "google";
/// The web interface's lists: rows per page.
const WEB_PER_PAGE: u64 = 50;

/// Where users are: domain, org unit, department, company and titles.
struct Unit {
    domain: &'static str,
    path: &'static str,
    department: &'static str,
    company: &'static str,
    titles: &'static [&'static str],
}

const UNITS: &[Unit] = &[
    Unit {
        domain: "example.com",
        path: "/Engineering",
        department: "Engineering",
        company: "Example Corp",
        titles: &["Software Engineer", "Senior Software Engineer", "Engineering Manager"],
    },
    Unit {
        domain: "example.com",
        path: "/Engineering/Platform",
        department: "Platform",
        company: "Example Corp",
        titles: &["Site Reliability Engineer", "Platform Engineer"],
    },
    Unit {
        domain: "example.com",
        path: "/Sales",
        department: "Sales",
        company: "Example Corp",
        titles: &["Account Executive", "Sales Engineer", "Sales Director"],
    },
    Unit {
        domain: "subsidiary.example",
        path: "/Subsidiary/Sales",
        department: "Sales",
        company: "Example Subsidiary Ltd",
        titles: &["Account Executive", "Sales Manager"],
    },
    Unit {
        domain: "example.com",
        path: "/Support",
        department: "Customer Support",
        company: "Example Corp",
        titles: &["Support Engineer", "Support Lead"],
    },
    Unit {
        domain: "subsidiary.example",
        path: "/Subsidiary/Operations",
        department: "Operations",
        company: "Example Subsidiary Ltd",
        titles: &["Operations Analyst", "Logistics Coordinator", "Operations Manager"],
    },
    Unit {
        domain: "example.com",
        path: "/Finance",
        department: "Finance",
        company: "Example Corp",
        titles: &["Accountant", "Financial Analyst"],
    },
];

const GIVEN: &[&str] = &[
    "Ada",
    "Grace",
    "Alan",
    "Edsger",
    "Barbara",
    "Donald",
    "Frances",
    "Ken",
    "Margaret",
    "Dennis",
    "Radia",
    "Leslie",
    "Hedy",
    "John",
    "Katherine",
    "Linus",
    "Sophie",
    "Tim",
    "Annie",
    "Niklaus",
    "Joan",
    "Whitfield",
    "Shafi",
    "Vint",
];
const FAMILY: &[&str] = &[
    "Lovelace",
    "Hopper",
    "Turing",
    "Dijkstra",
    "Liskov",
    "Knuth",
    "Allen",
    "Thompson",
    "Hamilton",
    "Ritchie",
    "Perlman",
    "Lamport",
    "Lamarr",
    "Backus",
    "Johnson",
    "Torvalds",
    "Wilson",
    "Berners-Lee",
    "Easley",
    "Wirth",
    "Clarke",
    "Diffie",
    "Goldwasser",
    "Cerf",
    "Kahn",
    "Estrin",
    "Sammet",
    "Bartik",
    "Hoare",
    "Milner",
];

/// The sizes of one run.
#[derive(Debug, Clone)]
struct Config {
    quick: bool,
    users: usize,
    groups: usize,
    members: usize,
    unchanged_runs: usize,
    seed: u64,
}

impl Config {
    fn from_args(args: &GoogleArgs) -> anyhow::Result<Self> {
        let q = args.quick;
        let config = Config {
            quick: q,
            users: args.users.unwrap_or(if q { 2_000 } else { 50_000 }),
            groups: args.groups.unwrap_or(if q { 100 } else { 2_000 }),
            members: args.members,
            unchanged_runs: args.unchanged_runs,
            seed: args.common.seed,
        };
        ensure!(config.users >= 1 && config.groups >= 1, "--users and --groups must be at least 1");
        ensure!(
            (5..=config.users).contains(&config.members),
            "--members must be at least 5 and at most --users ({})",
            config.users
        );
        ensure!(config.unchanged_runs >= 1, "--unchanged-runs must be at least 1");
        Ok(config)
    }
}

/// What was put in the fake, and the pages Google needs to answer it all.
#[derive(Debug, Default, Clone)]
struct Directory {
    users: u64,
    /// Users of subsidiary.example (the others are of example.com).
    subsidiary: u64,
    suspended: u64,
    with_aliases: u64,
    groups: u64,
    /// Members of type USER that are users of the directory.
    user_memberships: u64,
    /// Members of type GROUP.
    nested: u64,
    /// Members of type USER from outside the directory (left out by a run).
    outside: u64,
    largest_group: u64,
    user_pages: u64,
    group_pages: u64,
    member_pages: u64,
}

impl Directory {
    /// Every page a run reads (token exchanges aside).
    fn pages(&self) -> u64 {
        self.user_pages + self.group_pages + self.member_pages
    }
}

/// The requests of a list of `items` answered `per` a page: at least one.
fn pages(items: usize, per: u32) -> u64 {
    (items as u64).div_ceil(u64::from(per)).max(1)
}

fn google_user_id(i: usize) -> String {
    format!("1{i:020}")
}

fn group_id(g: usize) -> String {
    format!("01ci93xb{g:07}")
}

/// User `i` as the Directory API answers it (`projection=full`), and its address.
fn google_user(i: usize) -> (Value, String, bool) {
    let unit = &UNITS[i % UNITS.len()];
    let given = GIVEN[i % GIVEN.len()];
    let family = FAMILY[(i / GIVEN.len()) % FAMILY.len()];
    let local = format!("{}.{}.{i}", given.to_lowercase(), family.to_lowercase());
    let email = format!("{local}@{}", unit.domain);
    let mut u = fake::user(&google_user_id(i), &email, given, family, unit.path);
    let title = unit.titles[(i / UNITS.len()) % unit.titles.len()];
    u["organizations"] = json!([{
        "name": unit.company,
        "title": title,
        "primary": true,
        "type": "work",
        "department": unit.department,
        "costCenter": format!("CC-{:03}", 100 + i % 40),
        "description": unit.path.trim_start_matches('/').replace('/', " / "),
    }]);
    if i.is_multiple_of(5) {
        u["externalIds"] = json!([{"value": format!("E{i:06}"), "type": "organization"}]);
    }
    if i % 10 == 3 {
        let alias = format!("{local}.alias@{}", unit.domain);
        u["aliases"] = json!([alias]);
        u["emails"] = json!([{"address": email, "primary": true}, {"address": alias}]);
    }
    if i % 7 == 1 {
        let prefix = unit.domain.split('.').next().unwrap_or(unit.domain);
        u["nonEditableAliases"] = json!([format!("{local}@{prefix}.test-google-a.com")]);
    }
    let suspended = i % 50 == 49;
    if suspended {
        u["suspended"] = true.into();
    }
    (u, email, suspended)
}

/// Fills the fake with the directory of `config` (replacing what it held).
fn fill(fake: &FakeGoogle, config: &Config) -> Directory {
    let mut rng = StdRng::seed_from_u64(config.seed);
    let (n, g_count) = (config.users, config.groups);
    let mut d = Directory { users: n as u64, groups: g_count as u64, ..Directory::default() };
    let mut users = Vec::with_capacity(n);
    let mut emails = Vec::with_capacity(n);
    for i in 0..n {
        let (u, email, suspended) = google_user(i);
        d.subsidiary += u64::from(email.ends_with("@subsidiary.example"));
        d.suspended += u64::from(suspended);
        d.with_aliases += u64::from(u.get("aliases").is_some());
        users.push(u);
        emails.push(email);
    }
    let group_email = |g: usize| {
        let domain = if g % 5 == 4 { "subsidiary.example" } else { "example.com" };
        format!("team-{g:04}@{domain}")
    };
    let mut groups = Vec::with_capacity(g_count);
    let mut members = HashMap::with_capacity(g_count);
    for g in 0..g_count {
        let size = if g % LARGE_EVERY == 0 { LARGE_GROUP } else { config.members - 5 + g % 11 }.min(n);
        let mut list = Vec::with_capacity(size + 4);
        let mut picked = rand::seq::index::sample(&mut rng, n, size).into_vec();
        picked.sort_unstable();
        for i in picked {
            list.push(fake::member(&google_user_id(i), emails.get(i).map_or("", String::as_str), "USER"));
        }
        // Nested groups only among the later ones: no cycles.
        let later = g_count - g - 1;
        let nested = (g % 4).min(later);
        for offset in rand::seq::index::sample(&mut rng, later, nested) {
            let sub = g + 1 + offset;
            list.push(fake::member(&group_id(sub), &group_email(sub), "GROUP"));
        }
        if g % 25 == 7 {
            list.push(fake::member(&format!("9{g:020}"), &format!("guest{g}@partner.example"), "USER"));
            d.outside += 1;
        }
        d.user_memberships += size as u64;
        d.nested += nested as u64;
        d.largest_group = d.largest_group.max(size as u64);
        d.member_pages += pages(list.len(), MEMBERS_PAGE);
        let unit = &UNITS[g % UNITS.len()];
        let mut group = fake::group(&group_id(g), &group_email(g), &format!("{} team {g}", unit.department));
        group["directMembersCount"] = json!(list.len().to_string());
        group["description"] = json!(format!("{} ({}), team {g}", unit.department, unit.company));
        groups.push(group);
        members.insert(group_id(g), list);
    }
    d.user_pages = pages(n, USERS_PAGE);
    d.group_pages = pages(g_count, GROUPS_PAGE);
    fake.with(|st| {
        st.users = users;
        st.groups = groups;
        st.members = members;
        st.admins.insert(ADMIN_EMAIL.to_string());
        st.log.clear();
        st.exchanges.clear();
    });
    d
}

/// A run as `GET /idp/connections/{id}/runs` answers it, and when the bench saw it finished.
#[derive(Debug, Clone)]
struct Run {
    id: i64,
    status: String,
    started_at: Option<DateTime<FixedOffset>>,
    finished_at: Option<DateTime<FixedOffset>>,
    users_seen: u64,
    groups_seen: u64,
    created: u64,
    updated: u64,
    deleted: u64,
    error: Option<String>,
    /// From the request that started it to the poll that saw it finished.
    wall: Duration,
    /// The polls of GET .../runs it took, and the slowest answer.
    polls: u64,
    slowest_poll: Duration,
}

impl Run {
    fn of(v: &Value, wall: Duration) -> anyhow::Result<Self> {
        let time = |k: &str| v.get(k).and_then(Value::as_str).and_then(|t| DateTime::parse_from_rfc3339(t).ok());
        let count = |k: &str| v.get(k).and_then(Value::as_u64).unwrap_or(0);
        Ok(Run {
            id: v.get("id").and_then(Value::as_i64).context("a run has no id")?,
            status: v.get("status").and_then(Value::as_str).unwrap_or("").to_string(),
            started_at: time("started_at"),
            finished_at: time("finished_at"),
            users_seen: count("users_seen"),
            groups_seen: count("groups_seen"),
            created: count("created"),
            updated: count("updated"),
            deleted: count("deleted"),
            error: v.get("error").and_then(Value::as_str).map(str::to_string),
            wall,
            polls: 0,
            slowest_poll: Duration::ZERO,
        })
    }

    fn succeeded(&self) -> bool {
        self.status == "success"
    }

    /// finished_at - started_at as the API answers them (whole seconds).
    fn api_seconds(&self) -> Option<f64> {
        Some((self.finished_at? - self.started_at?).num_milliseconds() as f64 / 1000.0)
    }
}

/// What Google received during a run.
#[derive(Debug, Clone, Copy, Default)]
struct Requests {
    reads: u64,
    exchanges: u64,
    /// Reads of the whole directory begun meanwhile (first pages of users): 1 unless
    /// another run read Google at the same time.
    directory_reads: u64,
}

impl Requests {
    fn total(self) -> u64 {
        self.reads + self.exchanges
    }
}

/// CPU seconds of the server and of this process (the fake Google and the polling).
#[derive(Debug, Clone, Copy)]
struct Cpu {
    server: Option<f64>,
    bench: Option<f64>,
}

impl Cpu {
    fn now(server: &Server) -> Self {
        Cpu { server: server.cpu_seconds(), bench: server::own_cpu_seconds() }
    }

    fn since(self, before: Cpu) -> Cpu {
        let diff = |a: Option<f64>, b: Option<f64>| Some(a? - b?);
        Cpu { server: diff(self.server, before.server), bench: diff(self.bench, before.bench) }
    }
}

/// A correctness row, kept until the correctness section is written (also after an error).
enum Check {
    Exactly { key: &'static str, label: String, got: u64, want: u64 },
    AllOf { key: &'static str, label: String, ok: u64, total: u64 },
    Note(String),
}

#[derive(Default)]
struct Checks(Vec<Check>);

impl Checks {
    fn exactly(&mut self, key: &'static str, label: impl Into<String>, got: u64, want: u64) {
        self.0.push(Check::Exactly { key, label: label.into(), got, want });
    }

    fn all_of(&mut self, key: &'static str, label: impl Into<String>, ok: u64, total: u64) {
        self.0.push(Check::AllOf { key, label: label.into(), ok, total });
    }

    fn note(&mut self, text: impl Into<String>) {
        self.0.push(Check::Note(text.into()));
    }

    /// A run's status, and its error under it if it has one.
    fn status(&mut self, key: &'static str, which: &str, run: &Run) {
        self.all_of(key, format!("{which}: status success"), u64::from(run.succeeded()), 1);
        if !run.succeeded() {
            let error = run.error.as_deref().unwrap_or("no error given");
            self.note(format!("run {} is {}: {}", run.id, run.status, error.chars().take(300).collect::<String>()));
        }
    }

    fn write(self, report: &mut Report) {
        for check in self.0 {
            match check {
                Check::Exactly { key, label, got, want } => report.exactly(key, label, got, want),
                Check::AllOf { key, label, ok, total } => report.all_of(key, label, ok, total),
                Check::Note(text) => report.note(text),
            }
        }
    }
}

/// Runs the benchmark; true unless a correctness check failed, or `--strict` and a
/// target was missed.
pub async fn run(args: GoogleArgs) -> anyhow::Result<bool> {
    let started = Instant::now();
    let config = Config::from_args(&args)?;
    eprintln!(
        "custodian-bench google: filling the fake Google with {} users and {} groups",
        thousands(config.users as u64),
        thousands(config.groups as u64)
    );
    let fake = FakeGoogle::start().await;
    let fill_started = Instant::now();
    let directory = fill(&fake, &config);
    let fill_seconds = fill_started.elapsed().as_secs_f64();
    eprintln!("custodian-bench google: the same read of the fake from this process, without the server");
    let alone = read_alone(&fake).await?;
    fake.with(|st| {
        st.log.clear();
        st.exchanges.clear();
    });
    let setup = Setup { fill_seconds, alone };

    let mut launched = server::launch(&args.common, "google", 4).await?;
    launched.peak_rss_target_mib = Some(MAX_RSS_MIB);
    let mut report = Report::new(args.quick);
    report.figure("backend", launched.backend.as_str());
    let addr = launched.server.addr;
    let admin = server::create_operator_token(
        &launched.binary,
        &launched.database,
        &format!("bench-admin-{}", launched.suffix),
        "admin",
    )
    .await?;
    let fleet = Api::new(launched.client.clone(), format!("http://{addr}{FLEET_PATH}"), &admin, JSON);
    let mut checks = Checks::default();
    let mut ctx = Ctx {
        server: &mut launched.server,
        fake: &fake,
        fleet: fleet.clone(),
        binary: &launched.binary,
        database: &launched.database,
        base: format!("http://{addr}"),
        suffix: launched.suffix.clone(),
        sqlite: launched.backend == "sqlite",
    };
    // An interrupt ends the phases here, so that what was measured is still reported.
    let outcome = tokio::select! {
        r = phases(&mut ctx, &config, &directory, &setup, &mut report, &mut checks) => r,
        s = crate::interrupted() => Err(anyhow::anyhow!("interrupted by {s}")),
    };
    report.section(CORRECTNESS);
    checks.write(&mut report);
    scim::answers_row(&mut report, &[&fleet]);
    let success = launched.finish(report, outcome, "4. Server memory", &args.common, started);
    drop(fake);
    success
}

/// The directory read from this process, as a run reads it but without the server:
/// what the fake Google (and the client's parsing) costs of a run's time.
struct Alone {
    seconds: f64,
    requests: u64,
    users: u64,
    cpu: Option<f64>,
}

async fn read_alone(fake: &FakeGoogle) -> anyhow::Result<Alone> {
    let config = DirectoryConfig {
        key: ServiceAccountKey::parse(&fake.key_json())?,
        admin_email: ADMIN_EMAIL.into(),
        customer_id: "my_customer".into(),
        org_unit_paths: vec!["/".into()],
        api_base_url: fake.base_url.clone(),
    };
    let client = DirectoryClient::new(&config, RetryPolicy::default(), Duration::from_secs(30))?;
    let cpu = server::own_cpu_seconds();
    let started = Instant::now();
    let snapshot = read_snapshot(&client, &config).await.context("reading the fake Google from this process")?;
    let seconds = started.elapsed().as_secs_f64();
    let cpu = server::own_cpu_seconds().zip(cpu).map(|(after, before)| after - before);
    Ok(Alone { seconds, requests: snapshot.requests, users: snapshot.users.len() as u64, cpu })
}

/// What was done before the server started.
struct Setup {
    fill_seconds: f64,
    alone: Alone,
}

/// What the phases need of the launched server and the fake.
struct Ctx<'a> {
    server: &'a mut Server,
    fake: &'a FakeGoogle,
    /// The JSON API with an admin's token.
    fleet: Api,
    binary: &'a std::path::Path,
    database: &'a str,
    /// http://127.0.0.1:port, for the web interface.
    base: String,
    suffix: String,
    sqlite: bool,
}

impl Ctx<'_> {
    /// Polls the connection's runs every [`POLL`] until run `id` has finished (if `None`,
    /// the first listed: the newest when the polls first see one); its time counts from
    /// `since`.
    async fn finished_run(&mut self, connection: i64, id: Option<i64>, since: Instant) -> anyhow::Result<Run> {
        let (mut polls, mut slowest) = (0, Duration::ZERO);
        let mut id = id;
        loop {
            let (took, runs) = self.runs(connection).await?;
            let wall = since.elapsed();
            polls += 1;
            slowest = slowest.max(took);
            // A run the server starts by itself later must not be taken for this one.
            id = id.or_else(|| runs.first().and_then(|r| r.get("id")).and_then(Value::as_i64));
            let found = id.and_then(|id| runs.iter().find(|r| r.get("id").and_then(Value::as_i64) == Some(id)));
            if let Some(run) = found
                && run.get("status").and_then(Value::as_str) != Some("running")
            {
                let mut run = Run::of(run, wall)?;
                (run.polls, run.slowest_poll) = (polls, slowest);
                return Ok(run);
            }
            self.server.ensure_running()?;
            if wall > RUN_DEADLINE {
                bail!(
                    "the run of connection {connection} did not finish within {} s: {}",
                    RUN_DEADLINE.as_secs(),
                    excerpt(Value::Array(runs).to_string().as_bytes())
                );
            }
            tokio::time::sleep(POLL).await;
        }
    }

    /// Asks for a run (`POST .../sync`) and waits until it finishes.
    async fn sync(&mut self, connection: i64) -> anyhow::Result<Run> {
        let posted = Instant::now();
        let url = self.fleet.url(&format!("/idp/connections/{connection}/sync"), &[])?;
        let (_, answer) = self.fleet.call(Method::POST, url, Some(&json!({})), StatusCode::ACCEPTED).await?;
        let answer: Value = serde_json::from_slice(&answer).context("the sync's answer is not JSON")?;
        let run_id = answer
            .pointer("/run/id")
            .and_then(Value::as_i64)
            .with_context(|| format!("POST .../sync answered no run id: {}", excerpt(answer.to_string().as_bytes())))?;
        self.finished_run(connection, Some(run_id), posted).await
    }

    /// The connection's latest runs, newest first, and how long the answer took.
    async fn runs(&self, connection: i64) -> anyhow::Result<(Duration, Vec<Value>)> {
        let url = self.fleet.url(&format!("/idp/connections/{connection}/runs"), &[("per_page", "10")])?;
        let (took, body) = self.fleet.call(Method::GET, url, None, StatusCode::OK).await?;
        let listed: Value = serde_json::from_slice(&body).context("the runs are not JSON")?;
        Ok((took, listed.get("runs").and_then(Value::as_array).cloned().unwrap_or_default()))
    }

    /// What Google received since the log was last cleared for the first read of the
    /// directory in it (up to the next first page of users: a run the server started by
    /// itself), the reads of the directory the log holds, and the exchanges after the first
    /// `exchanges_before`.
    fn requests(&self, exchanges_before: usize) -> Requests {
        self.fake.with(|st| {
            let starts: Vec<usize> = st
                .log
                .iter()
                .enumerate()
                .filter(|(_, l)| l.path == "/users" && !l.query.contains_key("pageToken"))
                .map(|(i, _)| i)
                .collect();
            Requests {
                reads: starts.get(1).copied().unwrap_or(st.log.len()) as u64,
                exchanges: st.exchanges.len().saturating_sub(exchanges_before) as u64,
                directory_reads: starts.len() as u64,
            }
        })
    }

    /// The id of the newest activity, and the first run's `synced_directory` activity.
    async fn activities(&self, run: i64) -> anyhow::Result<(Option<i64>, Option<Value>)> {
        let url = self.fleet.url("/activities", &[("per_page", "50")])?;
        let (_, body) = self.fleet.call(Method::GET, url, None, StatusCode::OK).await?;
        let feed: Value = serde_json::from_slice(&body).context("the activity feed is not JSON")?;
        let all = feed.get("activities").and_then(Value::as_array).cloned().unwrap_or_default();
        let newest = all.first().and_then(|a| a.get("id")).and_then(Value::as_i64);
        let synced = all
            .iter()
            .find(|a| {
                a.get("type").and_then(Value::as_str) == Some("synced_directory")
                    && a.pointer("/details/run_id").and_then(Value::as_i64) == Some(run)
            })
            .cloned();
        Ok((newest, synced))
    }
}

/// The rows of a web list (`/end-users` or `/groups`): each resource's link and its
/// "Updated" time, and the total the page states.
struct Listed {
    total: Option<u64>,
    rows: Vec<(String, String)>,
}

fn listed(html: &str, link: &str) -> Listed {
    let total = html.split("class=\"summary\">").nth(1).and_then(|rest| {
        let digits: String =
            rest.chars().take_while(|c| c.is_ascii_digit() || *c == ',').filter(|c| *c != ',').collect();
        digits.parse().ok()
    });
    let body = html.split("<tbody>").nth(1).and_then(|b| b.split("</tbody>").next()).unwrap_or("");
    let rows = body
        .split("<tr>")
        .filter_map(|row| {
            let href = row.split(&format!("href=\"{link}")).nth(1)?.split('"').next()?;
            let updated = row.split("datetime=\"").nth(1)?.split('"').next()?;
            Some((format!("{link}{href}"), updated.to_string()))
        })
        .collect();
    Listed { total, rows }
}

/// The "Updated" time of every user and group on a few pages of the web lists (first,
/// middle and last), and the totals the lists state.
async fn updated_times(web: &WebSession) -> anyhow::Result<(Vec<(String, String)>, [Option<u64>; 2])> {
    let mut out = Vec::new();
    let mut totals = [None, None];
    for (slot, (list, link, expect)) in
        [("/end-users", "/end-users/", "id=\"end-users\""), ("/groups", "/groups/", "id=\"groups\"")]
            .into_iter()
            .enumerate()
    {
        let (_, first) = web.page(list, expect).await?;
        let first = listed(&first, link);
        let last_page = first.total.unwrap_or(0).saturating_sub(1) / WEB_PER_PAGE;
        if let Some(total) = totals.get_mut(slot) {
            *total = first.total;
        }
        out.extend(first.rows);
        let mut more = vec![last_page / 2, last_page];
        more.retain(|&p| p > 0);
        more.dedup();
        for page in more {
            let (_, html) = web.page(&format!("{list}?page={page}"), expect).await?;
            out.extend(listed(&html, link).rows);
        }
    }
    Ok((out, totals))
}

fn seconds(s: f64) -> String {
    if s >= 10.0 { format!("{s:.1} s") } else { format!("{s:.2} s") }
}

fn cpu_row(report: &mut Report, key: &str, cpu: Cpu) {
    let show = |s: Option<f64>| s.map_or("n/a".to_string(), |s| format!("{s:.1} s"));
    report.info(
        "  CPU: server / this process (fake Google, polling)",
        format!("{} / {}", show(cpu.server), show(cpu.bench)),
    );
    if let Some(s) = cpu.server {
        report.figure(&format!("{key}_server_cpu_seconds"), s);
    }
    if let Some(s) = cpu.bench {
        report.figure(&format!("{key}_bench_cpu_seconds"), s);
    }
}

/// The rows every run has: its times, rate and requests.
fn run_rows(report: &mut Report, key: &str, run: &Run, requests: Requests, cpu: Cpu, users: u64, alone: &Alone) {
    let api = run.api_seconds();
    let beyond = run.wall.as_secs_f64() - alone.seconds;
    report.info(
        "  less the same read from this process (the server's own share)",
        format!("{} (read: {})", seconds(beyond.max(0.0)), seconds(alone.seconds)),
    );
    report.info(
        "  the run's own finished_at - started_at (whole seconds)",
        api.map_or("-".to_string(), |s| format!("{s:.0} s")),
    );
    let wall = run.wall.as_secs_f64();
    report.info(
        "  users per second (over the run time)",
        format!("{} /s", thousands((users as f64 / wall).round() as u64)),
    );
    report.info(
        "  requests to Google: pages read + token exchanges",
        format!("{} ({} + {})", thousands(requests.total()), thousands(requests.reads), requests.exchanges),
    );
    if requests.directory_reads > 1 {
        report.note(format!(
            "{} reads of the directory began meanwhile: the pages of the first are counted",
            requests.directory_reads
        ));
    }
    cpu_row(report, key, cpu);
    report.info(
        "  GET .../runs while it ran: polls, slowest answer",
        format!("{}, {}", run.polls, seconds(run.slowest_poll.as_secs_f64())),
    );
    report.figure(&format!("{key}_seconds"), wall);
    report.figure(&format!("{key}_beyond_read_seconds"), beyond);
    report.figure(&format!("{key}_slowest_poll_seconds"), run.slowest_poll.as_secs_f64());
    if let Some(s) = api {
        report.figure(&format!("{key}_api_seconds"), s);
    }
    report.figure(&format!("{key}_requests"), requests.total());
    report.figure(&format!("{key}_pages_read"), requests.reads);
    report.figure(&format!("{key}_token_exchanges"), requests.exchanges);
    report.figure(&format!("{key}_directory_reads"), requests.directory_reads);
    report.figure(&format!("{key}_status"), run.status.as_str());
}

async fn phases(
    ctx: &mut Ctx<'_>,
    config: &Config,
    d: &Directory,
    setup: &Setup,
    report: &mut Report,
    checks: &mut Checks,
) -> anyhow::Result<()> {
    let (n, g) = (d.users, d.groups);
    report.figure("users", n);
    report.figure("groups", g);
    report.figure("user_memberships", d.user_memberships);
    report.figure("nested_groups", d.nested);
    report.figure("expected_pages", d.pages());
    if config.quick {
        report.info("smoke run (--quick): smaller sizes", format!("{} users, {} groups", thousands(n), thousands(g)));
    }
    report.section(format!(
        "1. The directory: the fake Google (token endpoint and Directory API, in this process) with {} users and {} \
         groups",
        thousands(n),
        thousands(g)
    ));
    report.info(
        "users: example.com / subsidiary.example (7 org units)",
        format!("{} / {}", thousands(n - d.subsidiary), thousands(d.subsidiary)),
    );
    report.info("  suspended / with an alias", format!("{} / {}", thousands(d.suspended), thousands(d.with_aliases)));
    report.info(
        "memberships: users / nested groups / outside the directory",
        format!("{} / {} / {}", thousands(d.user_memberships), thousands(d.nested), thousands(d.outside)),
    );
    report.info(
        format!("  users per group: about {}, every {LARGE_EVERY}th {}", config.members, d.largest_group),
        format!("{:.1} on average", d.user_memberships as f64 / g as f64),
    );
    report.info(
        format!("pages a run reads: users ({USERS_PAGE}) + groups ({GROUPS_PAGE}) + members ({MEMBERS_PAGE})"),
        format!(
            "{} ({} + {} + {})",
            thousands(d.pages()),
            thousands(d.user_pages),
            thousands(d.group_pages),
            thousands(d.member_pages)
        ),
    );
    report.info("filling the fake", seconds(setup.fill_seconds));
    let alone = &setup.alone;
    report.info(
        "the same read from this process, no server (read_snapshot): time, requests",
        format!("{}, {}", seconds(alone.seconds), thousands(alone.requests)),
    );
    report.info(
        "  CPU of this process (the fake Google and the client)",
        alone.cpu.map_or("n/a".to_string(), |c| format!("{c:.1} s")),
    );
    report.note("a run reads the pages one after the other: this is the fake Google's part of every run below");
    report.figure("read_alone_seconds", alone.seconds);
    report.figure("read_alone_requests", alone.requests);
    checks.exactly("read_alone_users", "the same read from this process: users", alone.users, n);

    // 2. The connection, and the first run the server starts by itself.
    eprintln!("[1/2] creating the connection: the server's first run creates every user and group");
    let key = ctx.fake.key_json();
    let body = json!({
        "name": CONNECTION,
        "kind": "google_workspace",
        "google_workspace": {
            "service_account_key": key,
            "admin_email": ADMIN_EMAIL,
            "api_base_url": ctx.fake.base_url,
            "sync_interval_seconds": 86_400,
        },
    });
    let cpu = Cpu::now(ctx.server);
    let posted = Instant::now();
    let url = ctx.fleet.url("/idp/connections", &[])?;
    let (_, answer) = ctx.fleet.call(Method::POST, url, Some(&body), StatusCode::CREATED).await?;
    let answer: Value = serde_json::from_slice(&answer).context("the created connection is not JSON")?;
    let connection = answer.pointer("/connection/id").and_then(Value::as_i64).with_context(|| {
        format!("POST /idp/connections answered no connection id: {}", excerpt(answer.to_string().as_bytes()))
    })?;
    let first = ctx.finished_run(connection, None, posted).await?;
    let first_done = Instant::now();
    let first_cpu = Cpu::now(ctx.server).since(cpu);
    let first_requests = ctx.requests(0);
    let memory = ctx.server.memory_kib();
    eprintln!(
        "[1/2] run {} {} after {:.1} s ({} requests to Google)",
        first.id,
        first.status,
        first.wall.as_secs_f64(),
        first_requests.total()
    );
    report.section(format!(
        "2. First run: an empty connection, {} users and {} groups created (polled every {} ms)",
        thousands(n),
        thousands(g),
        POLL.as_millis()
    ));
    scim::target_row(
        report,
        ctx.sqlite,
        "first_run_seconds",
        "run time: POST /idp/connections to the run finished",
        seconds(first.wall.as_secs_f64()),
        first.wall.as_secs_f64(),
        Target::MaxSeconds(FIRST_RUN_SECONDS),
    );
    if n != 50_000 && !config.quick {
        report.note("the target is set for 50,000 users");
    }
    run_rows(report, "first_run", &first, first_requests, first_cpu, n, &setup.alone);
    if let Some((peak, _)) = memory {
        report.info("  server peak RSS after the first run", format!("{:.1} MiB", peak as f64 / 1024.0));
        report.figure("first_run_peak_rss_kib", peak);
    }

    checks.status("first_run_status", "first run", &first);
    checks.exactly("first_users_seen", "first run: users_seen = users put in", first.users_seen, n);
    checks.exactly("first_groups_seen", "first run: groups_seen = groups put in", first.groups_seen, g);
    checks.exactly("first_created", "first run: created = users + groups", first.created, n + g);
    checks.exactly("first_updated_deleted", "first run: updated + deleted", first.updated + first.deleted, 0);
    checks.exactly(
        "first_requests",
        format!("first run: requests to Google = {} pages + 1 token exchange", thousands(d.pages())),
        first_requests.total(),
        d.pages() + 1,
    );
    if first_requests.exchanges != 1 {
        checks.note(format!("{} pages read, {} token exchanges", first_requests.reads, first_requests.exchanges));
    }
    if !first.succeeded() {
        bail!(
            "the first run ended with status {}: {}",
            first.status,
            first.error.as_deref().unwrap_or("no error given")
        );
    }

    // A run the server starts by itself now (its interval is a day) would read Google
    // for nothing, and overlap the second run.
    tokio::time::sleep_until((first_done + SETTLE).into()).await;
    let (_, runs) = ctx.runs(connection).await?;
    let extra: Vec<Run> =
        runs.iter().filter_map(|r| Run::of(r, Duration::ZERO).ok()).filter(|r| r.id > first.id).collect();
    checks.exactly(
        "unrequested_runs",
        format!("runs the server started by itself within {} s of the first", SETTLE.as_secs_f64()),
        extra.len() as u64,
        0,
    );
    let mut last_done = first_done;
    if let Some(oldest) = extra.last() {
        let gap = match (first.finished_at, oldest.started_at) {
            (Some(f), Some(s)) => format!("{} s after the first run's finished_at", (s - f).num_seconds()),
            _ => "after the first run".to_string(),
        };
        checks.note(format!(
            "run {} started at {} ({gap}), status {}",
            oldest.id,
            oldest.started_at.map_or("-".to_string(), |t| t.to_rfc3339()),
            oldest.status
        ));
        eprintln!("[1/2] the server started run {} by itself: waiting for it to finish", oldest.id);
        for run in extra.iter().filter(|r| r.status == "running") {
            ctx.finished_run(connection, Some(run.id), Instant::now()).await?;
        }
        last_done = Instant::now();
    }

    // What the server holds after the first run, to compare after the second.
    let url = ctx.fleet.url(&format!("/idp/connections/{connection}"), &[])?;
    let (_, body) = ctx.fleet.call(Method::GET, url, None, StatusCode::OK).await?;
    let held: Value = serde_json::from_slice(&body).context("the connection is not JSON")?;
    let count = |k: &str| held.pointer(&format!("/connection/{k}")).and_then(Value::as_u64).unwrap_or(0);
    checks.exactly("connection_users", "users the connection holds (GET /idp/connections/{id})", count("users"), n);
    checks.exactly("connection_groups", "groups the connection holds", count("groups"), g);
    let (newest_before, synced) = ctx.activities(first.id).await?;
    let web = web::sign_in(ctx.binary, ctx.database, &ctx.base, &ctx.suffix).await?;
    let (updated_before, totals) = updated_times(&web).await?;
    checks.exactly("web_users", "users the web interface lists (End users)", totals[0].unwrap_or(0), n);
    checks.exactly("web_groups", "groups the web interface lists (Groups)", totals[1].unwrap_or(0), g);
    let created_logged = synced.as_ref().and_then(|a| a.pointer("/details/created")).and_then(Value::as_u64);
    report.info(
        "  activity synced_directory of the run: created",
        created_logged.map_or("none found".to_string(), thousands),
    );
    tokio::time::sleep_until((last_done + SECOND_APART).into()).await;
    let before_second = ctx.server.memory_kib();

    // 3. The same directory again: nothing to write.
    eprintln!("[2/2] a second run of the unchanged directory (POST /idp/connections/{connection}/sync)");
    let exchanges_before = ctx.fake.with(|st| {
        st.log.clear();
        st.exchanges.len()
    });
    let cpu = Cpu::now(ctx.server);
    let second = ctx.sync(connection).await?;
    let second_cpu = Cpu::now(ctx.server).since(cpu);
    let second_requests = ctx.requests(exchanges_before);
    eprintln!(
        "[2/2] run {} {} after {:.1} s ({} requests to Google)",
        second.id,
        second.status,
        second.wall.as_secs_f64(),
        second_requests.total()
    );
    let after_second = ctx.server.memory_kib();
    let (newest_after, _) = ctx.activities(first.id).await?;
    let (updated_after, _) = updated_times(&web).await?;

    report.section("3. Second run: the same directory, nothing to change");
    scim::target_row(
        report,
        ctx.sqlite,
        "unchanged_run_seconds",
        "run time: POST .../sync to the run finished",
        seconds(second.wall.as_secs_f64()),
        second.wall.as_secs_f64(),
        Target::MaxSeconds(UNCHANGED_RUN_SECONDS),
    );
    run_rows(report, "unchanged_run", &second, second_requests, second_cpu, n, &setup.alone);
    if second.id == first.id {
        report.note("POST .../sync answered the first run again");
    }
    if let (Some((before, _)), Some((after, _))) = (before_second, after_second) {
        report.info(
            "  server peak RSS before / after the run",
            format!("{:.1} / {:.1} MiB", before as f64 / 1024.0, after as f64 / 1024.0),
        );
        report.figure("unchanged_run_peak_rss_kib", after);
    }

    checks.status("unchanged_run_status", "second run", &second);
    checks.exactly("unchanged_users_seen", "second run: users_seen", second.users_seen, n);
    checks.exactly("unchanged_groups_seen", "second run: groups_seen", second.groups_seen, g);
    checks.exactly("unchanged_created", "second run: created", second.created, 0);
    checks.exactly("unchanged_updated", "second run: updated", second.updated, 0);
    checks.exactly("unchanged_deleted", "second run: deleted", second.deleted, 0);
    checks.exactly(
        "unchanged_pages",
        format!("second run: pages read = {} (token exchanges: {})", thousands(d.pages()), second_requests.exchanges),
        second_requests.reads,
        d.pages(),
    );
    let new_activities = match (newest_before, newest_after) {
        (Some(b), Some(a)) => a.saturating_sub(b).max(0) as u64,
        (None, Some(_)) => 1,
        _ => 0,
    };
    checks.exactly("unchanged_activities", "second run: new activities", new_activities, 0);
    let before: HashMap<&str, &str> = updated_before.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
    let mut same = 0;
    let mut changed = None;
    for (link, at) in &updated_after {
        if before.get(link.as_str()) == Some(&at.as_str()) {
            same += 1;
        } else {
            changed.get_or_insert(format!(
                "{link}: Updated {} before, {at} after",
                before.get(link.as_str()).unwrap_or(&"-")
            ));
        }
    }
    checks.all_of(
        "unchanged_last_modified",
        format!(
            "second run: users' and groups' Updated unchanged ({} sampled, web lists)",
            thousands(updated_before.len() as u64)
        ),
        same,
        updated_before.len().max(1) as u64,
    );
    if let Some(changed) = changed {
        checks.note(changed);
    }

    // More runs of the same directory, to tell memory kept from memory needed.
    if config.unchanged_runs > 1 {
        report.section(format!(
            "3b. {} more runs of the unchanged directory (--unchanged-runs {})",
            config.unchanged_runs - 1,
            config.unchanged_runs
        ));
        let mut ok = 0;
        for k in 2..=config.unchanged_runs {
            eprintln!("[2/2] unchanged run {k} of {}", config.unchanged_runs);
            let run = ctx.sync(connection).await?;
            ok += u64::from(run.succeeded() && run.created + run.updated + run.deleted == 0);
            let memory = ctx.server.memory_kib();
            let mib = |kib: u64| format!("{:.1}", kib as f64 / 1024.0);
            report.info(
                format!("unchanged run {k}: time; server peak RSS / RSS after"),
                format!(
                    "{}; {}",
                    seconds(run.wall.as_secs_f64()),
                    memory.map_or("n/a".to_string(), |(peak, now)| format!("{} / {} MiB", mib(peak), mib(now)))
                ),
            );
            report.figure(&format!("unchanged_run_{k}_seconds"), run.wall.as_secs_f64());
            if let Some((peak, now)) = memory {
                report.figure(&format!("unchanged_run_{k}_peak_rss_kib"), peak);
                report.figure(&format!("unchanged_run_{k}_rss_kib"), now);
            }
        }
        checks.all_of(
            "more_unchanged_runs",
            "further unchanged runs: success, nothing created, updated or deleted",
            ok,
            (config.unchanged_runs - 1) as u64,
        );
    }
    ctx.server.ensure_running()?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pages_are_at_least_one_and_round_up() {
        assert_eq!(pages(0, 500), 1);
        assert_eq!(pages(1, 500), 1);
        assert_eq!(pages(500, 500), 1);
        assert_eq!(pages(501, 500), 2);
        assert_eq!(pages(50_000, 500), 100);
        assert_eq!(pages(450, 200), 3);
    }

    #[test]
    fn users_are_unique_and_spread_over_both_domains() {
        let emails: std::collections::HashSet<String> = (0..1000).map(|i| google_user(i).1).collect();
        assert_eq!(emails.len(), 1000);
        assert!(emails.iter().any(|e| e.ends_with("@subsidiary.example")));
        assert!(emails.iter().any(|e| e.ends_with("@example.com")));
        let (u, email, suspended) = google_user(3);
        assert_eq!(u["organizations"][0]["department"], "Sales");
        assert_eq!(u["orgUnitPath"], "/Subsidiary/Sales");
        assert!(email.ends_with("@subsidiary.example") && !suspended);
        assert!(u["aliases"].is_array());
        assert_eq!(google_user(1).0["organizations"][0]["department"], "Platform");
        assert!(google_user(49).2, "one in 50 is suspended");
    }

    #[test]
    fn web_lists_are_read_row_by_row() {
        let html = "<p class=\"summary\">1,234 users</p><table><tbody><tr><td><a href=\"/end-users/abc\">a</a></td>\
                    <td><time datetime=\"2026-01-01T00:00:00Z\">x</time></td></tr><tr><td><a href=\"/end-users/def\">\
                    b</a></td><td><time datetime=\"2026-01-01T00:00:01Z\">y</time></td></tr></tbody></table>";
        let l = listed(html, "/end-users/");
        assert_eq!(l.total, Some(1234));
        assert_eq!(
            l.rows,
            vec![
                ("/end-users/abc".to_string(), "2026-01-01T00:00:00Z".to_string()),
                ("/end-users/def".to_string(), "2026-01-01T00:00:01Z".to_string())
            ]
        );
    }
}
