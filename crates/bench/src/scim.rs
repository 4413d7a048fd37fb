//! `custodian-bench scim`: the SCIM service provider under an IdP's load.
//!
//! 1. POST /Users with Okta's bodies from concurrent clients: creations per second and
//!    latency (every acknowledged write is durable: SQLite runs with synchronous=FULL).
//! 2. Sequential `filter=... eq ...` lookups on userName (random letter case), externalId
//!    and emails.value.
//! 3. A group with every user as a member, filled by PATCHes of 1,000 members; then PATCHes
//!    that remove 100 members (Okta's and Entra's forms, alternately) and add them back,
//!    all with `excludedAttributes=members`; and one add without it (the full response).
//! 4. GET of that group without its members.
//! 5. The last page of 100 users.
//! 6. The server's peak resident memory.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context, bail, ensure};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use reqwest::{Method, StatusCode, Url};
use serde_json::{Value, json};

use crate::ScimArgs;
use crate::report::{Report, Target, p50_p95, short, thousands};
use crate::server::{self, Server};
use crate::stats::{Samples, Summary};

pub const SCIM_PATH: &str = "/api/v1/fleet/scim";
pub const USER_SCHEMA: &str = "urn:ietf:params:scim:schemas:core:2.0:User";
pub const GROUP_SCHEMA: &str = "urn:ietf:params:scim:schemas:core:2.0:Group";
const PATCH_SCHEMA: &str = "urn:ietf:params:scim:api:messages:2.0:PatchOp";
pub const SCIM_JSON: &str = "application/scim+json";

/// Members per PATCH while filling the group.
pub const FILL_BATCH: usize = 1000;
/// Members per measured add or remove PATCH.
const MEMBER_BATCH: usize = 100;
/// The size of a page of users.
const PAGE: usize = 100;

const CREATE_PER_SEC: f64 = 2000.0;
pub const LOOKUP_P95_MS: f64 = 5.0;
pub const MEMBER_PATCH_P95_MS: f64 = 50.0;
const GROUP_GET_P95_MS: f64 = 5.0;

/// The sizes of one run.
#[derive(Debug, Clone)]
struct Config {
    users: usize,
    concurrency: usize,
    group_size: usize,
    lookups: usize,
    member_patches: usize,
    group_reads: usize,
    page_reads: usize,
    seed: u64,
    exclude_groups: bool,
}

impl Config {
    fn from_args(args: &ScimArgs) -> anyhow::Result<Self> {
        let q = args.quick;
        let users = args.users.unwrap_or(if q { 5_000 } else { 100_000 });
        let config = Config {
            users,
            concurrency: args.concurrency,
            group_size: args.group_size.unwrap_or(users),
            lookups: args.lookups.unwrap_or(if q { 500 } else { 2_000 }),
            member_patches: args.member_patches.unwrap_or(if q { 50 } else { 200 }),
            group_reads: args.group_reads.unwrap_or(if q { 100 } else { 500 }),
            page_reads: args.page_reads.unwrap_or(if q { 50 } else { 200 }),
            seed: args.common.seed,
            exclude_groups: args.exclude_groups,
        };
        ensure!(config.users >= MEMBER_BATCH, "--users must be at least {MEMBER_BATCH}");
        ensure!(
            (MEMBER_BATCH..=config.users).contains(&config.group_size),
            "--group-size must be between {MEMBER_BATCH} and --users"
        );
        ensure!(config.concurrency >= 1, "--concurrency must be at least 1");
        ensure!(
            config.lookups >= 1 && config.member_patches >= 1 && config.group_reads >= 1 && config.page_reads >= 1,
            "sample counts must be at least 1"
        );
        Ok(config)
    }
}

/// Runs the benchmark; true unless `--strict` and a target was missed.
pub async fn run(args: ScimArgs) -> anyhow::Result<bool> {
    let started = Instant::now();
    let config = Config::from_args(&args)?;
    let mut launched = server::launch(&args.common, "scim", config.concurrency + 4).await?;
    let api = Api::new(
        launched.client.clone(),
        format!("http://{}{SCIM_PATH}", launched.server.addr),
        &launched.token,
        SCIM_JSON,
    );
    let mut report = Report::new(args.quick);
    report.figure("backend", launched.backend.as_str());
    let suffix = launched.suffix.clone();
    // An interrupt ends the phases here, so that what was measured is still reported.
    let outcome = tokio::select! {
        r = phases(&api, &mut launched.server, &config, &suffix, &mut report) => r,
        s = crate::interrupted() => Err(anyhow::anyhow!("interrupted by {s}")),
    };
    if outcome.is_err() {
        report.section(CORRECTNESS);
    }
    answers_row(&mut report, &[&api]);
    launched.finish(report, outcome, "6. Server memory", &args.common, started)
}

async fn phases(
    api: &Api,
    server: &mut Server,
    config: &Config,
    suffix: &str,
    report: &mut Report,
) -> anyhow::Result<()> {
    let mut rng = StdRng::seed_from_u64(config.seed);

    let before = count_users(api).await?;

    // 1. Users.
    eprintln!("[1/5] creating {} users with {} clients", thousands(config.users as u64), config.concurrency);
    let cpu_before = (server.cpu_seconds(), server::own_cpu_seconds());
    let (users, created) =
        create_users(api, api.users_url(config, &[])?, config.users, config.concurrency, okta_user).await?;
    let cpu_after = (server.cpu_seconds(), server::own_cpu_seconds());
    server.ensure_running()?;
    let rate = config.users as f64 / created.seconds;
    let s = created.latency.summary();
    report.section(format!(
        "1. POST /Users ({} users, {} concurrent clients){}",
        thousands(config.users as u64),
        config.concurrency,
        if config.exclude_groups { " [--exclude-groups]" } else { "" }
    ));
    report.checked(
        "create_per_s",
        "creations per second",
        format!("{} /s", thousands(rate.round() as u64)),
        rate,
        Target::MinPerSec(CREATE_PER_SEC),
    );
    report.info("whole load", format!("{:.1} s", created.seconds));
    report.info("latency p50 / p95 / p99", format!("{} / {} / {} ms", short(s.p50), short(s.p95), short(s.p99)));
    if let ((Some(s0), Some(b0)), (Some(s1), Some(b1))) = (cpu_before, cpu_after) {
        // Busy cores on average: tells a CPU-bound server from one waiting on the disk.
        let (server_cores, bench_cores) = ((s1 - s0) / created.seconds, (b1 - b0) / created.seconds);
        report.info("CPU busy: server / this client", format!("{server_cores:.2} / {bench_cores:.2} cores"));
        report.figure("create_server_cpu_cores", server_cores);
        report.figure("create_client_cpu_cores", bench_cores);
    }
    report.figure("users", config.users as u64);
    report.figure("exclude_groups", config.exclude_groups);
    report.figure("concurrency", config.concurrency as u64);
    report.figure("create_seconds", created.seconds);
    report.figure("create_per_s", rate);
    figures(report, "create", &s, true);

    // 2. Lookups.
    eprintln!("[2/5] {} sequential lookups per filter", thousands(config.lookups as u64));
    report.section(format!("2. GET /Users?filter=... ({} sequential lookups each)", thousands(config.lookups as u64)));
    // (figure key, label, attribute, whether it is case-insensitive: then sent in random case)
    let filters = [
        ("username", "userName eq (random case)", "userName", true),
        ("externalid", "externalId eq", "externalId", false),
        ("email", "emails.value eq (random case)", "emails.value", true),
    ];
    for (key, label, attr, any_case) in filters {
        let mut samples = Samples::with_capacity(config.lookups);
        for _ in 0..config.lookups {
            let user = users.get(rng.random_range(0..users.len())).context("no users")?;
            let value = match attr {
                "userName" => &user.user_name,
                "externalId" => &user.external_id,
                _ => &user.email,
            };
            let value = if any_case { random_case(value, &mut rng) } else { value.clone() };
            let filter = format!("{attr} eq \"{value}\"");
            let url = api.users_url(config, &[("filter", &filter)])?;
            let (took, body) = api.call(Method::GET, url, None, StatusCode::OK).await?;
            samples.push(took);
            let page: Value = serde_json::from_slice(&body).context("a list response is not JSON")?;
            let found = page.pointer("/Resources/0/id").and_then(Value::as_str);
            if page.get("totalResults").and_then(Value::as_u64) != Some(1) || found != Some(user.id.as_str()) {
                bail!("filter {filter} did not find exactly user {}: {}", user.id, excerpt(&body));
            }
        }
        let s = samples.summary();
        report.checked(
            &format!("lookup_{key}_p95"),
            format!("{label} p50 / p95"),
            p50_p95(s.p50, s.p95),
            s.p95,
            Target::MaxMs(LOOKUP_P95_MS),
        );
        figures(report, &format!("lookup_{key}"), &s, false);
    }
    server.ensure_running()?;

    // 3. The large group.
    let members = users.get(..config.group_size).context("fewer users than the group size")?;
    eprintln!("[3/5] a group of {} members", thousands(members.len() as u64));
    report.section(format!("3. A group of {} members (PATCH /Groups/{{id}})", thousands(members.len() as u64)));
    let group_body = json!({"schemas": [GROUP_SCHEMA], "displayName": format!("Bench group {suffix}")});
    let (_, body) = api.call(Method::POST, api.url("/Groups", &[])?, Some(&group_body), StatusCode::CREATED).await?;
    let group_id = id_of(&body)?;
    let group_path = format!("/Groups/{group_id}");
    let lean = api.url(&group_path, &[("excludedAttributes", "members")])?;

    let fill_started = Instant::now();
    let mut fill = Samples::default();
    for (i, chunk) in members.chunks(FILL_BATCH).enumerate() {
        let (took, _) = api.call(Method::PATCH, lean.clone(), Some(&add_members(chunk)), StatusCode::OK).await?;
        fill.push(took);
        if (i + 1) % 20 == 0 {
            eprintln!("  {} members added", thousands(((i + 1) * FILL_BATCH) as u64));
        }
    }
    let fill_seconds = fill_started.elapsed().as_secs_f64();
    let fs = fill.summary();
    report.info(format!("fill: {} PATCHes of {FILL_BATCH} members", fill.len()), format!("{fill_seconds:.2} s"));
    report.info("fill: PATCH p50 / p95", p50_p95(fs.p50, fs.p95));
    report.figure("group_size", members.len() as u64);
    report.figure("group_fill_seconds", fill_seconds);
    figures(report, "group_fill_patch", &fs, false);

    // Each round removes 100 random members (Okta's form, then Entra's, alternately) and
    // adds them back, so that the group stays at its full size.
    let mut adds = Samples::with_capacity(config.member_patches);
    let mut removes_okta = Samples::default();
    let mut removes_entra = Samples::default();
    for i in 0..config.member_patches {
        let batch = sample(&mut rng, members, MEMBER_BATCH);
        let okta = i % 2 == 0;
        let body = if okta { remove_members_okta(&batch) } else { remove_members_entra(&batch) };
        let (took, _) = api.call(Method::PATCH, lean.clone(), Some(&body), StatusCode::OK).await?;
        if okta {
            removes_okta.push(took)
        } else {
            removes_entra.push(took)
        }
        let (took, _) =
            api.call(Method::PATCH, lean.clone(), Some(&add_members(batch.iter().copied())), StatusCode::OK).await?;
        adds.push(took);
    }
    let mut removes = removes_okta.clone();
    removes.extend(removes_entra.clone());
    let (a, r) = (adds.summary(), removes.summary());
    report.checked(
        "patch_add100_p95",
        format!("add {MEMBER_BATCH} members p50 / p95 (n={})", a.n),
        p50_p95(a.p50, a.p95),
        a.p95,
        Target::MaxMs(MEMBER_PATCH_P95_MS),
    );
    report.checked(
        "patch_remove100_p95",
        format!("remove {MEMBER_BATCH} members p50 / p95 (n={})", r.n),
        p50_p95(r.p50, r.p95),
        r.p95,
        Target::MaxMs(MEMBER_PATCH_P95_MS),
    );
    let (ro, re) = (removes_okta.summary(), removes_entra.summary());
    report.info("  Okta form: 100 x members[value eq \"id\"]", p50_p95(ro.p50, ro.p95));
    report.info("  Entra form: Remove members value [100]", p50_p95(re.p50, re.p95));
    figures(report, "patch_add100", &a, false);
    figures(report, "patch_remove100", &r, false);
    figures(report, "patch_remove100_okta", &ro, false);
    figures(report, "patch_remove100_entra", &re, false);

    // One add as Okta and Entra send it: no query, answered 204 (RFC 7644 §3.5.2), so
    // its cost does not grow with the group; the members are then read back.
    let batch = sample(&mut rng, members, MEMBER_BATCH);
    api.call(Method::PATCH, lean.clone(), Some(&remove_members_entra(&batch)), StatusCode::OK).await?;
    let plain = api.url(&group_path, &[])?;
    let (took, body) =
        api.call(Method::PATCH, plain, Some(&add_members(batch.iter().copied())), StatusCode::NO_CONTENT).await?;
    let with_members = api.url(&group_path, &[("attributes", "members")])?;
    let (_, read) = api.call(Method::GET, with_members, None, StatusCode::OK).await?;
    let rendered: Value = serde_json::from_slice(&read).context("the group read back is not JSON")?;
    let count = rendered.get("members").and_then(Value::as_array).map_or(0, Vec::len);
    if count != members.len() {
        bail!("the group has {count} members after the PATCHes, not {}", members.len());
    }
    report.info(
        format!("add {MEMBER_BATCH} members, plain PATCH as IdPs send it (info)"),
        format!("{} ms, {} bytes answered", short(took.as_secs_f64() * 1000.0), body.len()),
    );
    report.figure("patch_add100_plain_ms", took.as_secs_f64() * 1000.0);
    report.figure("patch_plain_response_bytes", body.len() as u64);
    server.ensure_running()?;

    // 4. Reading the group without its members.
    eprintln!("[4/5] {} reads of the group without members", config.group_reads);
    report.section(format!("4. GET /Groups/{{id}}?excludedAttributes=members ({} reads)", config.group_reads));
    let mut reads = Samples::with_capacity(config.group_reads);
    for i in 0..config.group_reads {
        let (took, body) = api.call(Method::GET, lean.clone(), None, StatusCode::OK).await?;
        reads.push(took);
        if i == 0 {
            let group: Value = serde_json::from_slice(&body).context("the group is not JSON")?;
            ensure!(group.get("members").is_none(), "excludedAttributes=members still returned members");
        }
    }
    let g = reads.summary();
    report.checked("group_get_p95", "p50 / p95", p50_p95(g.p50, g.p95), g.p95, Target::MaxMs(GROUP_GET_P95_MS));
    figures(report, "group_get", &g, false);

    // 5. The last page of users.
    let (_, body) = api.call(Method::GET, api.url("/Users", &[("count", "0")])?, None, StatusCode::OK).await?;
    let total = serde_json::from_slice::<Value>(&body)
        .ok()
        .and_then(|v| v.get("totalResults").and_then(Value::as_u64))
        .context("GET /Users?count=0 gave no totalResults")?;
    let start = total.saturating_sub(PAGE as u64 - 1).max(1);
    eprintln!("[5/5] {} reads of the last page (startIndex={start})", config.page_reads);
    report.section(format!(
        "5. GET /Users?startIndex={start}&count={PAGE} (last page of {}, {} reads)",
        thousands(total),
        config.page_reads
    ));
    let url = api.users_url(config, &[("startIndex", &start.to_string()), ("count", &PAGE.to_string())])?;
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
    report.info("p50 / p95 (no target)", p50_p95(p.p50, p.p95));
    report.figure("last_page_start_index", start);
    figures(report, "last_page", &p, false);
    server.ensure_running()?;

    // Every acknowledged creation, read back.
    eprintln!("reading back every user");
    report.section(CORRECTNESS);
    let expected: Vec<Expected> = users
        .iter()
        .map(|u| Expected { id: u.id.clone(), user_name: u.user_name.clone(), external_id: u.external_id.clone() })
        .collect();
    read_back_users(api, report, before, &expected, 0).await?;
    server.ensure_running()?;
    Ok(())
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
    report.checked(
        "answered_as_expected",
        "answered as expected (no other status, no connection error)",
        format!("{} of {}", thousands(expected as u64), thousands(sent as u64)),
        expected as f64,
        Target::All(sent as u64),
    );
    if let Some(first) = first {
        report.info("  first unexpected answer", first);
    }
    report.figure("requests_sent", sent as u64);
    report.figure("requests_answered_as_expected", expected as u64);
}

impl Api {
    /// A client of the API under `base` (e.g. `http://127.0.0.1:8080/api/v1/fleet/scim`).
    pub fn new(client: reqwest::Client, base: String, token: &str, media: &'static str) -> Self {
        Api { client, base, auth: format!("Bearer {token}"), media, answers: Arc::default() }
    }

    /// A `/Users` URL; with --exclude-groups, users are answered without their groups.
    fn users_url(&self, config: &Config, query: &[(&str, &str)]) -> anyhow::Result<Url> {
        let mut pairs = query.to_vec();
        if config.exclude_groups {
            pairs.push(("excludedAttributes", "groups"));
        }
        self.url("/Users", &pairs)
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
            if status != expected {
                bail!("{method} {} answered {status} (expected {expected}): {}", url.path(), excerpt(&bytes));
            }
            Ok((took, bytes))
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
                let (body, user_name, external_id) = make(i + 1);
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
    report.checked(
        "writes_read_back",
        "acknowledged users read back (id, userName, externalId)",
        format!("{} of {}", thousands(matched as u64), thousands(expected.len() as u64)),
        matched as f64,
        Target::All(expected.len() as u64),
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

/// `n` distinct users picked at random.
fn sample<'a>(rng: &mut StdRng, from: &'a [User], n: usize) -> Vec<&'a User> {
    rand::seq::index::sample(rng, from.len(), n.min(from.len())).into_iter().filter_map(|i| from.get(i)).collect()
}

pub fn patch(operations: Vec<Value>) -> Value {
    json!({"schemas": [PATCH_SCHEMA], "Operations": operations})
}

fn member_values<'a>(users: impl IntoIterator<Item = &'a User>) -> Value {
    Value::Array(users.into_iter().map(|u| json!({"value": u.id})).collect())
}

/// `add members [...]`, as both Okta and Entra send it.
pub fn add_members<'a>(users: impl IntoIterator<Item = &'a User>) -> Value {
    patch(vec![json!({"op": "add", "path": "members", "value": member_values(users)})])
}

/// Okta's removal: one `remove members[value eq "id"]` operation per member.
fn remove_members_okta(users: &[&User]) -> Value {
    patch(users.iter().map(|u| json!({"op": "remove", "path": format!("members[value eq \"{}\"]", u.id)})).collect())
}

/// Entra's removal: one `Remove members` operation with the members as its value.
fn remove_members_entra(users: &[&User]) -> Value {
    patch(vec![json!({"op": "Remove", "path": "members", "value": member_values(users.iter().copied())})])
}

/// The string with each letter upper- or lower-cased at random.
fn random_case(s: &str, rng: &mut StdRng) -> String {
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
    fn bodies_and_patches_have_the_expected_shape() {
        let (body, user_name, _) = okta_user(7);
        assert_eq!(user_name, "user00007@example.com");
        assert_eq!(body["emails"][0]["value"], json!(user_name));
        let user = User { id: "u1".into(), user_name, external_id: "x".into(), email: "e".into() };
        let okta = remove_members_okta(&[&user]);
        assert_eq!(okta["Operations"][0]["path"], json!("members[value eq \"u1\"]"));
        let entra = remove_members_entra(&[&user]);
        assert_eq!(entra["Operations"][0]["value"][0]["value"], json!("u1"));
        let add = add_members([&user]);
        assert_eq!(add["Operations"][0]["op"], json!("add"));
        let mut rng = StdRng::seed_from_u64(1);
        assert_eq!(random_case("aBc@x.COM", &mut rng).to_lowercase(), "abc@x.com");
    }
}
