//! `custodian-bench hosts`: hosts and their end users at scale.
//!
//! 1. IdP users over SCIM with Okta's bodies from concurrent clients (three in four with
//!    an enterprise department, among 20), then groups, each user in 1 to 3 of them
//!    (members added by PATCHes of up to 1,000).
//! 2. The hosts, imported through `POST /api/v1/fleet/hosts/batch` in requests of 5,000,
//!    each enrolled with one user's userName (`mdm_idp_accounts`), so that every host
//!    links; then the count of hosts whose end user is active.
//! 3. Host details by random id; each answer's end user checked field by field.
//! 4. Host lists of 100 filtered by a random IdP group (first and second page), by a
//!    random department, and by an `idp_filter` on a title and a custom extension's
//!    attribute (Okta's form); each page checked host by host.
//! 5. The web interface: an operator signs in; the hosts page (first page, filtered by a
//!    random IdP group, filtered to deactivated users), host details and the overview at
//!    `/` are read with the session cookie.
//! 6. userName renames over SCIM, each followed at once by a read of the user's host,
//!    which must show the new name.
//! 7. Labels on random IdP groups and `end_user_idp_filter` labels on a title and a
//!    custom attribute: the p95 of a label's host list (first page of 100, each
//!    checked); then renders of a profile with `$FLEET_VAR_HOST_END_USER_IDP_*`
//!    variables, and of one with a custom attribute, for random hosts (each checked).
//! 8. The server's peak resident memory.

use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context, bail, ensure};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

use crate::HostsArgs;
use crate::report::{Report, Target, p50_p95, short, thousands};
use crate::scim::{self, Api, FILL_BATCH, GROUP_SCHEMA, SCIM_JSON, SCIM_PATH, USER_SCHEMA, User, excerpt, figures};
use crate::server::{self, Server};
use crate::stats::Samples;

pub(crate) const FLEET_PATH: &str = "/api/v1/fleet";
pub(crate) const JSON: &str = "application/json";
const ENTERPRISE_SCHEMA: &str = "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User";
/// A company's own extension, as Okta sends custom attributes.
const ACME_SCHEMA: &str = "urn:ietf:params:scim:schemas:extension:acme:2.0:User";
const TITLES: [&str; 7] = ["Engineer", "Manager", "Designer", "Analyst", "Consultant", "Director", "Technician"];
const SITES: [&str; 10] = ["BER", "LON", "NYC", "SFO", "PAR", "MAD", "TYO", "SYD", "SAO", "TOR"];
/// The most hosts the batch endpoint takes in one request.
pub(crate) const MAX_BATCH: usize = 10_000;
/// The size of a page of hosts.
const PAGE: usize = 100;

const IMPORT_SECONDS: f64 = 20.0;
const DETAIL_P95_MS: f64 = 5.0;
const LIST_P95_MS: f64 = 50.0;
/// A page of the web interface, rendered and sent.
const WEB_P95_MS: f64 = 100.0;
const LABEL_HOSTS_P95_MS: f64 = 50.0;
const RENDER_P95_MS: f64 = 2.0;
/// A profile with a custom attribute, rendered in phase 7.
const CUSTOM_PROFILE: &str = "<?xml version=\"1.0\"?><plist><dict><key>user</key>\
<string>$FLEET_VAR_HOST_END_USER_IDP_USERNAME</string><key>title</key>\
<string>$FLEET_VAR_HOST_END_USER_IDP_TITLE</string><key>site</key>\
<string>${CUSTODIAN_IDP_ATTRIBUTE:urn:ietf:params:scim:schemas:extension:acme:2.0:User:site}</string></dict></plist>";
/// Labels created for phase 6, each on a random group.
const LABELS: usize = 20;
/// The profile rendered in phase 6.
const PROFILE: &str = "<?xml version=\"1.0\"?><plist><dict><key>user</key>\
<string>$FLEET_VAR_HOST_END_USER_IDP_USERNAME</string><key>local</key>\
<string>${FLEET_VAR_HOST_END_USER_IDP_USERNAME_LOCAL_PART}</string><key>name</key>\
<string>$FLEET_VAR_HOST_END_USER_IDP_FULL_NAME</string><key>groups</key>\
<string>$FLEET_VAR_HOST_END_USER_IDP_GROUPS</string></dict></plist>";

const DEPARTMENTS: [&str; 20] = [
    "Engineering",
    "Sales",
    "Marketing",
    "Finance",
    "Legal",
    "Human Resources",
    "Support",
    "Operations",
    "Product",
    "Design",
    "Security",
    "IT",
    "Research",
    "Data",
    "Facilities",
    "Procurement",
    "Partnerships",
    "Customer Success",
    "Quality",
    "Executive",
];

/// The sizes of one run.
#[derive(Debug, Clone)]
struct Config {
    users: usize,
    groups: usize,
    hosts: usize,
    batch_size: usize,
    import_concurrency: usize,
    concurrency: usize,
    detail_reads: usize,
    list_reads: usize,
    renames: usize,
    seed: u64,
}

impl Config {
    fn from_args(args: &HostsArgs) -> anyhow::Result<Self> {
        let q = args.quick;
        let users = args.users.unwrap_or(if q { 2_000 } else { 100_000 });
        let config = Config {
            users,
            groups: args.groups.unwrap_or(if q { 40 } else { 2_000 }),
            hosts: args.hosts.unwrap_or(users),
            batch_size: args.batch_size.unwrap_or(if q { 500 } else { 5_000 }),
            import_concurrency: args.import_concurrency,
            concurrency: args.concurrency,
            detail_reads: args.detail_reads.unwrap_or(if q { 500 } else { 2_000 }),
            list_reads: args.list_reads.unwrap_or(if q { 100 } else { 500 }),
            renames: args.renames.unwrap_or(if q { 20 } else { 100 }),
            seed: args.common.seed,
        };
        ensure!(config.users >= 1 && config.hosts >= 1, "--users and --hosts must be at least 1");
        ensure!(config.groups >= 3, "--groups must be at least 3 (each user joins 1 to 3 groups)");
        ensure!((1..=MAX_BATCH).contains(&config.batch_size), "--batch-size must be between 1 and {MAX_BATCH}");
        ensure!(config.concurrency >= 1 && config.import_concurrency >= 1, "concurrencies must be at least 1");
        ensure!(config.detail_reads >= 1 && config.list_reads >= 1, "sample counts must be at least 1");
        ensure!(
            (1..=config.users.min(config.hosts)).contains(&config.renames),
            "--renames must be between 1 and the number of users that have a host"
        );
        Ok(config)
    }
}

/// Runs the benchmark; true unless `--strict` and a target was missed.
pub async fn run(args: HostsArgs) -> anyhow::Result<bool> {
    let started = Instant::now();
    let config = Config::from_args(&args)?;
    let pool = config.concurrency.max(config.import_concurrency) + 4;
    let mut launched = server::launch(&args.common, "hosts", pool).await?;
    let addr = launched.server.addr;
    let scim_api = Api::new(launched.client.clone(), format!("http://{addr}{SCIM_PATH}"), &launched.token, SCIM_JSON);
    let fleet = Api::new(launched.client.clone(), format!("http://{addr}{FLEET_PATH}"), &launched.token, JSON);
    let web = WebTarget {
        binary: launched.binary.clone(),
        database: launched.database.clone(),
        base: format!("http://{addr}"),
        suffix: launched.suffix.clone(),
    };
    let mut report = Report::new(args.quick);
    report.figure("backend", launched.backend.as_str());
    // An interrupt ends the phases here, so that what was measured is still reported.
    let outcome = tokio::select! {
        r = phases(&scim_api, &fleet, &mut launched.server, &config, &mut report, &web) => r,
        s = crate::interrupted() => Err(anyhow::anyhow!("interrupted by {s}")),
    };
    if outcome.is_err() {
        report.section(scim::CORRECTNESS);
    }
    scim::answers_row(&mut report, &[&scim_api, &fleet]);
    launched.finish(report, outcome, "7. Server memory", &args.common, started)
}

/// The department of user `n` (from 1): three users in four have one.
fn department_of(n: usize) -> Option<&'static str> {
    if n.is_multiple_of(4) { None } else { DEPARTMENTS.get((n / 4) % DEPARTMENTS.len()).copied() }
}

/// The title of user `n` (from 1), an index into `TITLES`.
fn title_of(n: usize) -> usize {
    n % TITLES.len()
}

/// The site (a custom attribute) of user `n` (from 1), an index into `SITES`.
fn site_of(n: usize) -> usize {
    (n / TITLES.len()) % SITES.len()
}

/// The number of the user a host belongs to (from 1), read from its hostname
/// (`host-000042.corp.example.com` is host 41, of user 41 % users + 1): renames (phase 6)
/// change userNames, never hostnames.
fn owner_number(host: &Value, users: usize) -> Option<usize> {
    let hostname = host.get("hostname")?.as_str()?;
    let n: usize = hostname.strip_prefix("host-")?.split('.').next()?.parse().ok()?;
    Some((n.checked_sub(1)? % users.max(1)) + 1)
}

/// The `idp_filter` (and `end_user_idp_filter`) selecting a title and a site.
fn title_site_filter(title: usize, site: usize) -> String {
    format!(
        "title eq \"{}\" and {ACME_SCHEMA}:site eq \"{}\"",
        TITLES.get(title).copied().unwrap_or(""),
        SITES.get(site).copied().unwrap_or("")
    )
}

/// User `n` (from 1) as Okta creates it: a title, its enterprise department when it has
/// one, and a custom extension's `site`.
fn bench_user(n: usize) -> (Value, String, String) {
    let (mut body, user_name, external_id) = scim::okta_user(n);
    if let Some(fields) = body.as_object_mut() {
        fields.insert("title".into(), json!(TITLES.get(title_of(n)).copied().unwrap_or("")));
        fields.insert(ACME_SCHEMA.into(), json!({"site": SITES.get(site_of(n)).copied().unwrap_or("")}));
        match department_of(n) {
            Some(department) => {
                fields.insert("schemas".into(), json!([USER_SCHEMA, ENTERPRISE_SCHEMA, ACME_SCHEMA]));
                fields.insert(ENTERPRISE_SCHEMA.into(), json!({"department": department}));
            }
            None => {
                fields.insert("schemas".into(), json!([USER_SCHEMA, ACME_SCHEMA]));
            }
        }
    }
    (body, user_name, external_id)
}

fn group_name(g: usize) -> String {
    format!("Team {:04}", g + 1)
}

/// Host number `i` (from 0), enrolled by `user_name`.
pub(crate) fn host_body(i: usize, user_name: &str) -> Value {
    let (platform, os_version, model) = match i % 10 {
        0..=5 => ("darwin", "macOS 15.5", "MacBookPro18,3"),
        6..=8 => ("windows", "Windows 11 Enterprise 24H2", "Latitude 7440"),
        _ => ("ubuntu", "Ubuntu 24.04.2 LTS", "ThinkPad X1 Carbon Gen 12"),
    };
    json!({
        "uuid": format!("{:08X}-BE7C-4C0D-8E5A-{:012X}", 0xC057_0D1A_u32, i + 1),
        "hardware_serial": format!("C02{:09}", i + 1),
        "hostname": format!("host-{:06}.corp.example.com", i + 1),
        "computer_name": format!("Laptop {:06}", i + 1),
        "platform": platform,
        "os_version": os_version,
        "hardware_model": model,
        "device_mapping": [{"email": user_name, "source": "mdm_idp_accounts"}],
    })
}

/// What was loaded, and which host belongs to whom: host `i` belongs to user
/// `i % users`.
struct World {
    users: Vec<User>,
    /// The groups of each user (indexes, ascending).
    user_groups: Vec<Vec<usize>>,
    /// The members of each group (user indexes).
    members: Vec<Vec<usize>>,
    /// Host ids by host index.
    host_ids: Vec<i64>,
    hosts: usize,
}

impl World {
    fn user_of(&self, host: usize) -> usize {
        host % self.users.len()
    }

    /// How many hosts user `u` has.
    fn hosts_of(&self, u: usize) -> usize {
        let n = self.users.len();
        self.hosts / n + usize::from(u < self.hosts % n)
    }

    /// How many hosts belong to users with this title and site.
    fn title_site_hosts(&self, title: usize, site: usize) -> usize {
        (0..self.users.len())
            .filter(|&u| title_of(u + 1) == title && site_of(u + 1) == site)
            .map(|u| self.hosts_of(u))
            .sum()
    }
}

/// Where the web pages are read: the server's URL, and the binary and database with which
/// to create the operator who signs in.
struct WebTarget {
    binary: std::path::PathBuf,
    database: String,
    base: String,
    suffix: String,
}

async fn phases(
    scim_api: &Api,
    fleet: &Api,
    server: &mut Server,
    config: &Config,
    report: &mut Report,
    web: &WebTarget,
) -> anyhow::Result<()> {
    let mut rng = StdRng::seed_from_u64(config.seed);
    let (users_before, (_, hosts_before)) = (scim::count_users(scim_api).await?, count_hosts(fleet, &[]).await?);

    // 1. The IdP's users and groups.
    eprintln!("[1/8] creating {} users with {} clients", thousands(config.users as u64), config.concurrency);
    let users_url = scim_api.url("/Users", &[])?;
    let (users, created) =
        scim::create_users(scim_api, users_url, config.users, config.concurrency, bench_user).await?;
    server.ensure_running()?;
    let with_department = (1..=config.users).filter(|&n| department_of(n).is_some()).count();
    let mut user_groups = Vec::with_capacity(users.len());
    let mut members = vec![Vec::new(); config.groups];
    for u in 0..users.len() {
        let k = rng.random_range(1..=3);
        let mut picked = rand::seq::index::sample(&mut rng, config.groups, k).into_vec();
        picked.sort_unstable();
        for &g in &picked {
            if let Some(m) = members.get_mut(g) {
                m.push(u);
            }
        }
        user_groups.push(picked);
    }
    let memberships: usize = members.iter().map(Vec::len).sum();
    eprintln!(
        "  {} groups, {} memberships, with {} clients",
        thousands(config.groups as u64),
        thousands(memberships as u64),
        config.concurrency
    );
    let users = Arc::new(users);
    let members = Arc::new(members);
    let groups_started = Instant::now();
    let group_ids = {
        let (api, users, members) = (scim_api.clone(), users.clone(), members.clone());
        in_parallel(config.groups, config.concurrency, move |g| {
            let (api, users, members) = (api.clone(), users.clone(), members.clone());
            async move {
                let body = json!({"schemas": [GROUP_SCHEMA], "displayName": group_name(g)});
                let (_, created) =
                    api.call(Method::POST, api.url("/Groups", &[])?, Some(&body), StatusCode::CREATED).await?;
                let id = scim::id_of(&created)?;
                // A plain PATCH, as the IdPs send it: answered with the group (200) or without (204).
                let url = api.url(&format!("/Groups/{id}"), &[])?;
                for chunk in members.get(g).map(Vec::as_slice).unwrap_or_default().chunks(FILL_BATCH) {
                    let add = scim::add_members(chunk.iter().filter_map(|&u| users.get(u)));
                    api.call_any(Method::PATCH, url.clone(), Some(&add), scim::PATCH_OK).await?;
                }
                Ok(id)
            }
        })
        .await
        .context("creating the groups")?
    };
    let groups_seconds = groups_started.elapsed().as_secs_f64();
    let distinct: std::collections::HashSet<&String> = group_ids.iter().collect();
    ensure!(distinct.len() == config.groups, "{} distinct group ids for {} groups", distinct.len(), config.groups);
    server.ensure_running()?;
    let users = Arc::try_unwrap(users).unwrap_or_else(|shared| shared.as_ref().clone());
    let members = Arc::try_unwrap(members).unwrap_or_else(|shared| shared.as_ref().clone());

    let rate = config.users as f64 / created.seconds;
    let s = created.latency.summary();
    report.section(format!(
        "1. The IdP over SCIM ({} users, {} groups, {} clients)",
        thousands(config.users as u64),
        thousands(config.groups as u64),
        config.concurrency
    ));
    report.info("POST /Users: whole load", format!("{:.1} s ({} /s)", created.seconds, thousands(rate.round() as u64)));
    report.info("POST /Users: latency p50 / p95", p50_p95(s.p50, s.p95));
    report.info(
        format!("groups with {} memberships (1-3 per user)", thousands(memberships as u64)),
        format!("{groups_seconds:.1} s"),
    );
    report.info(
        format!("users with a department (of {})", DEPARTMENTS.len()),
        thousands(with_department as u64).to_string(),
    );
    report.figure("users", config.users as u64);
    report.figure("groups", config.groups as u64);
    report.figure("memberships", memberships as u64);
    report.figure("users_with_department", with_department as u64);
    report.figure("users_create_seconds", created.seconds);
    report.figure("users_create_per_s", rate);
    report.figure("groups_seconds", groups_seconds);

    // 2. The host import.
    let mut world = World { users, user_groups, members, host_ids: Vec::new(), hosts: config.hosts };
    let batches: Vec<Value> = (0..config.hosts)
        .collect::<Vec<_>>()
        .chunks(config.batch_size)
        .map(|chunk| {
            let hosts: Vec<Value> = chunk
                .iter()
                .map(|&i| host_body(i, world.users.get(world.user_of(i)).map_or("", |u| u.user_name.as_str())))
                .collect();
            json!({ "hosts": hosts })
        })
        .collect();
    let requests = batches.len();
    eprintln!(
        "[2/8] importing {} hosts: {requests} requests of up to {}, {} in flight",
        thousands(config.hosts as u64),
        thousands(config.batch_size as u64),
        config.import_concurrency
    );
    let batches = Arc::new(batches);
    let cpu_before = server.cpu_seconds();
    let import_started = Instant::now();
    let imported = {
        let (api, batches) = (fleet.clone(), batches.clone());
        in_parallel(requests, config.import_concurrency, move |b| {
            let (api, batches) = (api.clone(), batches.clone());
            async move { post_batch(&api, b, batches.get(b).context("no such batch")?).await }
        })
        .await
        .context("importing the hosts")?
    };
    let import_seconds = import_started.elapsed().as_secs_f64();
    let import_cpu = server.cpu_seconds().zip(cpu_before).map(|(after, before)| (after - before) / import_seconds);
    server.ensure_running()?;
    drop(batches);
    let mut batch_latency = Samples::with_capacity(requests);
    for (took, ids) in imported {
        batch_latency.push(took);
        world.host_ids.extend(ids);
    }
    ensure!(world.host_ids.len() == config.hosts, "{} host ids for {} hosts", world.host_ids.len(), config.hosts);

    // Every host should be linked, to an active user.
    let (count_took, total) = count_hosts(fleet, &[]).await?;
    let (linked_took, linked) = count_hosts(fleet, &[("idp_active", "true")]).await?;

    let per_sec = config.hosts as f64 / import_seconds;
    let b = batch_latency.summary();
    report.section(format!(
        "2. POST /hosts/batch ({} hosts, {requests} requests of {}, {} in flight)",
        thousands(config.hosts as u64),
        thousands(config.batch_size as u64),
        config.import_concurrency
    ));
    report.checked(
        "import_seconds",
        "import time",
        format!("{import_seconds:.1} s"),
        import_seconds,
        Target::MaxSeconds(IMPORT_SECONDS),
    );
    report.info("hosts per second", format!("{} /s", thousands(per_sec.round() as u64)));
    report.info("request latency p50 / p95", p50_p95(b.p50, b.p95));
    if let Some(cores) = import_cpu {
        report.info("server CPU busy", format!("{cores:.2} cores"));
        report.figure("import_server_cpu_cores", cores);
    }
    report.checked(
        "linked_hosts",
        "hosts linked to an active IdP user",
        format!("{} / {}", thousands(linked), thousands(total)),
        linked as f64,
        Target::All(config.hosts as u64),
    );
    report.info(
        "GET /hosts/count, ?idp_active=true",
        format!("{} / {} ms", short(count_took.as_secs_f64() * 1000.0), short(linked_took.as_secs_f64() * 1000.0)),
    );
    report.figure("hosts", config.hosts as u64);
    report.figure("batch_size", config.batch_size as u64);
    report.figure("import_concurrency", config.import_concurrency as u64);
    report.figure("import_seconds", import_seconds);
    report.figure("import_hosts_per_s", per_sec);
    report.figure("linked_hosts", linked);
    report.figure("count_ms", count_took.as_secs_f64() * 1000.0);
    report.figure("count_idp_active_ms", linked_took.as_secs_f64() * 1000.0);
    figures(report, "import_request", &b, false);

    // 3. Host details.
    eprintln!("[3/8] {} sequential reads of host details", thousands(config.detail_reads as u64));
    let mut details = Samples::with_capacity(config.detail_reads);
    for _ in 0..config.detail_reads {
        let i = rng.random_range(0..config.hosts);
        let id = *world.host_ids.get(i).context("no such host")?;
        let url = fleet.url(&format!("/hosts/{id}"), &[])?;
        let (took, body) = fleet.call(Method::GET, url, None, StatusCode::OK).await?;
        details.push(took);
        check_detail(&world, i, id, &body)?;
    }
    let d = details.summary();
    report.section(format!("3. GET /hosts/{{id}} ({} sequential reads)", thousands(config.detail_reads as u64)));
    report.checked("detail_p95", "p50 / p95", p50_p95(d.p50, d.p95), d.p95, Target::MaxMs(DETAIL_P95_MS));
    report.info("p99 / max", format!("{} / {} ms", short(d.p99), short(d.max)));
    figures(report, "detail", &d, true);
    server.ensure_running()?;

    // 4. Filtered host lists.
    eprintln!("[4/8] {} sequential reads of each filtered host list", thousands(config.list_reads as u64));
    report.section(format!("4. GET /hosts?...&per_page={PAGE} ({} sequential reads each)", config.list_reads));
    let group_hosts: Vec<usize> =
        world.members.iter().map(|m| m.iter().map(|&u| world.hosts_of(u)).sum::<usize>()).collect();
    let mut department_hosts = vec![0_usize; DEPARTMENTS.len()];
    for u in 0..world.users.len() {
        if let Some(d) = department_of(u + 1).and_then(|name| DEPARTMENTS.iter().position(|&x| x == name))
            && let Some(n) = department_hosts.get_mut(d)
        {
            *n += world.hosts_of(u);
        }
    }
    let variants = [
        ("list_group", "idp_group=<random group>", Filter::Group, 0_usize),
        ("list_group_page1", "idp_group=<random group>&page=1", Filter::Group, 1),
        ("list_department", "idp_department=<random department>", Filter::Department, 0),
        (
            "list_idp_filter",
            "idp_filter=title eq <random> and <custom extension>:site eq <random>",
            Filter::Idp { title: 0, site: 0, users: world.users.len() },
            0,
        ),
    ];
    for (key, label, mut filter, page) in variants {
        let mut samples = Samples::with_capacity(config.list_reads);
        let mut returned = 0_usize;
        for _ in 0..config.list_reads {
            let (param, value, matching) = match filter {
                Filter::Group => {
                    let g = rng.random_range(0..config.groups);
                    ("idp_group", group_name(g), group_hosts.get(g).copied().unwrap_or(0))
                }
                Filter::Department => {
                    let d = rng.random_range(0..DEPARTMENTS.len());
                    let name = DEPARTMENTS.get(d).copied().unwrap_or("");
                    ("idp_department", name.to_string(), department_hosts.get(d).copied().unwrap_or(0))
                }
                Filter::Idp { .. } => {
                    let (title, site) = (rng.random_range(0..TITLES.len()), rng.random_range(0..SITES.len()));
                    filter = Filter::Idp { title, site, users: world.users.len() };
                    ("idp_filter", title_site_filter(title, site), world.title_site_hosts(title, site))
                }
            };
            let page_text = page.to_string();
            let per_page = PAGE.to_string();
            let url = fleet.url("/hosts", &[(param, value.as_str()), ("per_page", &per_page), ("page", &page_text)])?;
            let (took, body) = fleet.call(Method::GET, url, None, StatusCode::OK).await?;
            samples.push(took);
            let expected = matching.saturating_sub(page * PAGE).min(PAGE);
            returned += check_list(&body, filter, &value, expected)?;
        }
        let s = samples.summary();
        report.checked(
            &format!("{key}_p95"),
            format!("{label} p50 / p95"),
            p50_p95(s.p50, s.p95),
            s.p95,
            Target::MaxMs(LIST_P95_MS),
        );
        let mean_hosts = returned as f64 / config.list_reads as f64;
        report.info(
            "  hosts per page (mean); p99 / max",
            format!("{mean_hosts:.0}; {} / {} ms", short(s.p99), short(s.max)),
        );
        report.figure(&format!("{key}_mean_hosts"), mean_hosts);
        figures(report, key, &s, true);
    }
    server.ensure_running()?;

    // 5. The web interface's pages.
    web_pages(&world, config, &mut rng, report, web).await?;
    server.ensure_running()?;

    // 6. Renames reaching hosts.
    eprintln!("[6/8] {} userName renames, each followed by a read of the user's host", config.renames);
    let renamed = rand::seq::index::sample(&mut rng, config.users.min(config.hosts), config.renames).into_vec();
    let mut patches = Samples::with_capacity(config.renames);
    let mut reads = Samples::with_capacity(config.renames);
    let mut round_trips = Samples::with_capacity(config.renames);
    let mut visible = 0_usize;
    let mut first_stale = None;
    let mut new_names = std::collections::HashMap::new();
    for (k, &u) in renamed.iter().enumerate() {
        let user = world.users.get(u).context("no such user")?;
        let new_name = format!("renamed{}.{}", k + 1, user.user_name);
        let body = scim::patch(vec![json!({"op": "replace", "value": {"userName": new_name}})]);
        let url = scim_api.url(&format!("/Users/{}", user.id), &[])?;
        let (patched, _) = scim_api.call(Method::PATCH, url, Some(&body), StatusCode::OK).await?;
        new_names.insert(u, new_name.clone());
        // Host u is the user's first host.
        let id = *world.host_ids.get(u).context("no such host")?;
        let (read, host) =
            fleet.call(Method::GET, fleet.url(&format!("/hosts/{id}"), &[])?, None, StatusCode::OK).await?;
        patches.push(patched);
        reads.push(read);
        round_trips.push(patched + read);
        let host: Value = serde_json::from_slice(&host).context("host details are not JSON")?;
        let shown = host.pointer("/host/end_users/0/idp_username").and_then(Value::as_str).unwrap_or("");
        if shown == new_name {
            visible += 1;
        } else if first_stale.is_none() {
            first_stale = Some(format!("host {id} showed {shown:?} instead of {new_name:?}"));
        }
    }
    let (p, r, t) = (patches.summary(), reads.summary(), round_trips.summary());
    report.section(format!("6. PATCH /Users/{{id}} userName, then GET /hosts/{{id}} ({} renames)", config.renames));
    report.checked(
        "rename_visible",
        "new name in the very next read",
        format!("{visible} / {}", config.renames),
        visible as f64,
        Target::All(config.renames as u64),
    );
    report.info("PATCH p50 / p95", p50_p95(p.p50, p.p95));
    report.info("next read p50 / p95", p50_p95(r.p50, r.p95));
    report.info("PATCH + read p50 / p95", p50_p95(t.p50, t.p95));
    if let Some(stale) = &first_stale {
        report.info("first stale read", stale.clone());
    }
    report.figure("renames", config.renames as u64);
    report.figure("rename_visible", visible as u64);
    figures(report, "rename_patch", &p, false);
    figures(report, "rename_read", &r, false);
    figures(report, "rename_round_trip", &t, false);
    server.ensure_running()?;

    labels_and_variables(fleet, &world, config, &mut rng, report).await?;
    server.ensure_running()?;

    // Every acknowledged write, read back: the users (renamed ones by their new name) and
    // the number of hosts (each sampled host was checked field by field above).
    eprintln!("reading back every user and counting the hosts");
    report.section(scim::CORRECTNESS);
    let expected: Vec<scim::Expected> = world
        .users
        .iter()
        .enumerate()
        .map(|(u, user)| scim::Expected {
            id: user.id.clone(),
            user_name: new_names.get(&u).cloned().unwrap_or_else(|| user.user_name.clone()),
            external_id: user.external_id.clone(),
        })
        .collect();
    scim::read_back_users(scim_api, report, users_before, &expected, 0).await?;
    let (_, hosts_now) = count_hosts(fleet, &[]).await?;
    let want = hosts_before + world.host_ids.len() as u64;
    report.checked(
        "hosts_counted",
        "hosts counted: those before the run + acknowledged imports",
        format!("{} counted, {} expected", thousands(hosts_now), thousands(want)),
        if hosts_now == want { want as f64 } else { 0.0 },
        Target::All(want),
    );
    server.ensure_running()?;
    Ok(())
}

/// 6. Labels on groups (membership evaluated at read time) and rendered variables.
async fn labels_and_variables(
    fleet: &Api,
    world: &World,
    config: &Config,
    rng: &mut StdRng,
    report: &mut Report,
) -> anyhow::Result<()> {
    eprintln!(
        "[7/8] {LABELS} labels on groups and {LABELS} on filters: {} reads of each kind's host lists, {} renders of each profile",
        config.list_reads, config.detail_reads
    );
    let mut labels = Vec::with_capacity(LABELS);
    for k in 0..LABELS {
        let g = rng.random_range(0..config.groups);
        let body = json!({"name": format!("Bench label {k}"),
            "criteria": {"vital": "end_user_idp_group", "value": group_name(g)}});
        let (_, answer) = fleet.call(Method::POST, fleet.url("/labels", &[])?, Some(&body), StatusCode::OK).await?;
        let answer: Value = serde_json::from_slice(&answer).context("a label answer is not JSON")?;
        let id = answer.pointer("/label/id").and_then(Value::as_i64).context("a label answer has no id")?;
        let expected: usize = world.members.get(g).map_or(0, |m| m.iter().map(|&u| world.hosts_of(u)).sum());
        labels.push((id, g, expected));
    }
    let mut samples = Samples::with_capacity(config.list_reads);
    for _ in 0..config.list_reads {
        let &(id, g, expected) = labels.get(rng.random_range(0..labels.len())).context("no label")?;
        let per_page = PAGE.to_string();
        let url = fleet.url(&format!("/labels/{id}/hosts"), &[("per_page", per_page.as_str())])?;
        let (took, body) = fleet.call(Method::GET, url, None, StatusCode::OK).await?;
        samples.push(took);
        returned_check(&body, &group_name(g), expected.min(PAGE))?;
    }
    let s = samples.summary();
    report.section(format!(
        "6. Labels and variables ({LABELS} labels on groups, {LABELS} on filters, {} hosts; {} reads, {} renders of each)",
        thousands(config.hosts as u64),
        config.list_reads,
        config.detail_reads
    ));
    report.checked(
        "label_hosts_p95",
        format!("GET /labels/{{id}}/hosts?per_page={PAGE} p50 / p95"),
        p50_p95(s.p50, s.p95),
        s.p95,
        Target::MaxMs(LABEL_HOSTS_P95_MS),
    );
    report.info("  p99 / max", format!("{} / {} ms", short(s.p99), short(s.max)));
    figures(report, "label_hosts", &s, true);

    // Labels on any attribute: a SCIM filter over the end user, translated at read time.
    let mut filter_labels = Vec::with_capacity(LABELS);
    for k in 0..LABELS {
        let (title, site) = (rng.random_range(0..TITLES.len()), rng.random_range(0..SITES.len()));
        let body = json!({"name": format!("Bench filter label {k}"),
            "criteria": {"vital": "end_user_idp_filter", "value": title_site_filter(title, site)}});
        let (_, answer) = fleet.call(Method::POST, fleet.url("/labels", &[])?, Some(&body), StatusCode::OK).await?;
        let answer: Value = serde_json::from_slice(&answer).context("a label answer is not JSON")?;
        let id = answer.pointer("/label/id").and_then(Value::as_i64).context("a label answer has no id")?;
        filter_labels.push((id, title, site, world.title_site_hosts(title, site)));
    }
    let mut samples = Samples::with_capacity(config.list_reads);
    for _ in 0..config.list_reads {
        let &(id, title, site, expected) =
            filter_labels.get(rng.random_range(0..filter_labels.len())).context("no label")?;
        let per_page = PAGE.to_string();
        let url = fleet.url(&format!("/labels/{id}/hosts"), &[("per_page", per_page.as_str())])?;
        let (took, body) = fleet.call(Method::GET, url, None, StatusCode::OK).await?;
        samples.push(took);
        let filter = Filter::Idp { title, site, users: world.users.len() };
        check_list(&body, filter, &title_site_filter(title, site), expected.min(PAGE))?;
    }
    let s = samples.summary();
    report.checked(
        "filter_label_hosts_p95",
        format!("GET /labels/{{id}}/hosts?per_page={PAGE} (end_user_idp_filter) p50 / p95"),
        p50_p95(s.p50, s.p95),
        s.p95,
        Target::MaxMs(LABEL_HOSTS_P95_MS),
    );
    report.info("  p99 / max", format!("{} / {} ms", short(s.p99), short(s.max)));
    figures(report, "filter_label_hosts", &s, true);

    let renders = render_random_hosts(fleet, world, config, rng, PROFILE, |i, rendered| {
        let user = world.users.get(world.user_of(i)).context("no such user")?;
        // Renamed users (phase 5) show their new name: check the stable domain part only.
        let domain = user.user_name.rsplit('@').next().unwrap_or("");
        Ok(rendered.contains(&format!("@{domain}</string>")) && !rendered.contains("FLEET_VAR"))
    })
    .await?;
    let r = renders.summary();
    report.checked(
        "render_p95",
        "POST /hosts/{id}/render (XML profile, 4 variables) p50 / p95",
        p50_p95(r.p50, r.p95),
        r.p95,
        Target::MaxMs(RENDER_P95_MS),
    );
    report.info("  p99 / max", format!("{} / {} ms", short(r.p99), short(r.max)));
    figures(report, "render", &r, true);

    let renders = render_random_hosts(fleet, world, config, rng, CUSTOM_PROFILE, |i, rendered| {
        let n = world.user_of(i) + 1;
        Ok(rendered.contains(&format!(
            "<key>title</key><string>{}</string><key>site</key><string>{}</string>",
            TITLES.get(title_of(n)).copied().unwrap_or(""),
            SITES.get(site_of(n)).copied().unwrap_or("")
        )))
    })
    .await?;
    let r = renders.summary();
    report.checked(
        "render_custom_p95",
        "POST /hosts/{id}/render (XML profile, title and a custom attribute) p50 / p95",
        p50_p95(r.p50, r.p95),
        r.p95,
        Target::MaxMs(RENDER_P95_MS),
    );
    report.info("  p99 / max", format!("{} / {} ms", short(r.p99), short(r.max)));
    figures(report, "render_custom", &r, true);
    Ok(())
}

/// Renders `template` for `config.detail_reads` random hosts, sequentially; `expected`
/// (the host's index and the answer) says whether each answer is right.
async fn render_random_hosts(
    fleet: &Api,
    world: &World,
    config: &Config,
    rng: &mut StdRng,
    template: &str,
    expected: impl Fn(usize, &str) -> anyhow::Result<bool>,
) -> anyhow::Result<Samples> {
    let mut renders = Samples::with_capacity(config.detail_reads);
    let body = json!({"template": template, "format": "xml"});
    for _ in 0..config.detail_reads {
        let i = rng.random_range(0..config.hosts);
        let id = *world.host_ids.get(i).context("no such host")?;
        let url = fleet.url(&format!("/hosts/{id}/render"), &[])?;
        let (took, answer) = fleet.call(Method::POST, url, Some(&body), StatusCode::OK).await?;
        renders.push(took);
        let answer: Value = serde_json::from_slice(&answer).context("a render answer is not JSON")?;
        let rendered = answer.get("rendered").and_then(Value::as_str).unwrap_or("");
        ensure!(expected(i, rendered)?, "host {id}: unexpected render: {}", excerpt(rendered.as_bytes()));
    }
    Ok(renders)
}

/// Checks a label's first page: the expected number of hosts, each in the group.
fn returned_check(body: &[u8], group: &str, expected: usize) -> anyhow::Result<()> {
    let value: Value = serde_json::from_slice(body).context("a label's host list is not JSON")?;
    let hosts = value.get("hosts").and_then(Value::as_array).context("a label's host list without `hosts`")?;
    ensure!(hosts.len() == expected, "label on {group}: {} hosts on the first page, expected {expected}", hosts.len());
    for host in hosts {
        let groups = host.pointer("/end_users/0/idp_groups").and_then(Value::as_array);
        ensure!(
            groups.is_some_and(|g| g.iter().any(|x| x.as_str() == Some(group))),
            "label on {group} listed a host outside the group: {}",
            excerpt(host.to_string().as_bytes())
        );
    }
    Ok(())
}

/// Phase 5: signs in, then reads the hosts page and host details with the session.
async fn web_pages(
    world: &World,
    config: &Config,
    rng: &mut StdRng,
    report: &mut Report,
    target: &WebTarget,
) -> anyhow::Result<()> {
    let reads = config.list_reads;
    eprintln!("[5/8] web interface: sign-in, then {reads} sequential reads of each page");
    let session = crate::web::sign_in(&target.binary, &target.database, &target.base, &target.suffix).await?;
    report.section(format!("5. Web pages with a session cookie ({reads} sequential reads each)"));
    let total = thousands(config.hosts as u64);
    let variants = [
        ("web_hosts", "GET /hosts (first page of 50)"),
        ("web_hosts_group", "GET /hosts?idp_group=<random group>"),
        ("web_hosts_deactivated", "GET /hosts?idp_active=false"),
    ];
    for (key, label) in variants {
        let mut samples = Samples::with_capacity(reads);
        for _ in 0..reads {
            let (path, expect) = if key == "web_hosts" {
                ("/hosts".to_string(), format!("of {total}"))
            } else if key == "web_hosts_deactivated" {
                ("/hosts?idp_active=false".to_string(), "id=\"hosts\"".to_string())
            } else {
                let g = rng.random_range(0..config.groups);
                let query = crate::web::form_urlencoded_pairs(&[("idp_group", &group_name(g))]);
                (format!("/hosts?{query}"), "id=\"hosts\"".to_string())
            };
            let (took, _) = session.page(&path, &expect).await?;
            samples.push(took);
        }
        let s = samples.summary();
        report.checked(
            &format!("{key}_p95"),
            format!("{label} p50 / p95"),
            p50_p95(s.p50, s.p95),
            s.p95,
            Target::MaxMs(WEB_P95_MS),
        );
        figures(report, key, &s, true);
    }
    let mut samples = Samples::with_capacity(reads);
    for _ in 0..reads {
        let i = rng.random_range(0..config.hosts);
        let id = *world.host_ids.get(i).context("no such host")?;
        let user = world.users.get(world.user_of(i)).context("no such user")?;
        let (took, _) = session.page(&format!("/hosts/{id}"), &user.user_name).await?;
        samples.push(took);
    }
    let s = samples.summary();
    report.checked(
        "web_host_p95",
        "GET /hosts/{id} p50 / p95",
        p50_p95(s.p50, s.p95),
        s.p95,
        Target::MaxMs(WEB_P95_MS),
    );
    figures(report, "web_host", &s, true);
    // The overview: every figure of it at this size (issue 19's target, 100 ms).
    let mut samples = Samples::with_capacity(reads);
    for _ in 0..reads {
        let (took, _) = session.page("/", &format!("{total} hosts by owner state")).await?;
        samples.push(took);
    }
    let s = samples.summary();
    report.checked(
        "web_overview_p95",
        "GET / (the overview) p50 / p95",
        p50_p95(s.p50, s.p95),
        s.p95,
        Target::MaxMs(OVERVIEW_P95_MS),
    );
    figures(report, "web_overview", &s, true);
    Ok(())
}

/// The overview's target: its p95 at 100,000 hosts.
const OVERVIEW_P95_MS: f64 = 100.0;

#[derive(Debug, Clone, Copy)]
enum Filter {
    Group,
    Department,
    /// `idp_filter` on a title and a site (indexes), among `users` users.
    Idp {
        title: usize,
        site: usize,
        users: usize,
    },
}

/// `POST /hosts/batch` of `body` (`{"hosts": [...]}`, batch number `b`), every host new:
/// its time and the ids of its hosts, in the order sent.
pub(crate) async fn post_batch(api: &Api, b: usize, body: &Value) -> anyhow::Result<(Duration, Vec<i64>)> {
    let sent = body.get("hosts").and_then(Value::as_array).map_or(0, Vec::len);
    let url = api.url("/hosts/batch", &[])?;
    let (took, answer) = api.call(Method::POST, url, Some(body), StatusCode::OK).await?;
    let answer: Value = serde_json::from_slice(&answer).context("a batch answer is not JSON")?;
    let rejected = answer.get("rejected").and_then(Value::as_array).map_or(0, Vec::len);
    let created = answer.get("created").and_then(Value::as_u64).unwrap_or(0) as usize;
    if rejected > 0 || created != sent {
        bail!(
            "batch {b}: {created} of {sent} hosts created, {rejected} rejected (is the database fresh?): {}",
            excerpt(answer.to_string().as_bytes())
        );
    }
    let mut ids = vec![0_i64; sent];
    for host in answer.get("hosts").and_then(Value::as_array).map_or(&[][..], Vec::as_slice) {
        let index = host.get("index").and_then(Value::as_u64).context("a batch result has no index")?;
        let id = host.get("id").and_then(Value::as_i64).context("a batch result has no id")?;
        *ids.get_mut(index as usize).context("a batch result's index is out of range")? = id;
    }
    ensure!(ids.iter().all(|&id| id > 0), "batch {b}: some hosts have no id in the answer");
    Ok((took, ids))
}

/// `GET /hosts/count` with the query given: its time and its count.
pub(crate) async fn count_hosts(fleet: &Api, query: &[(&str, &str)]) -> anyhow::Result<(Duration, u64)> {
    let (took, body) = fleet.call(Method::GET, fleet.url("/hosts/count", query)?, None, StatusCode::OK).await?;
    let count = serde_json::from_slice::<Value>(&body)
        .ok()
        .and_then(|v| v.get("count").and_then(Value::as_u64))
        .with_context(|| format!("GET /hosts/count gave no count: {}", excerpt(&body)))?;
    Ok((took, count))
}

/// Checks that host `i` shows its user: name, groups and department.
fn check_detail(world: &World, i: usize, id: i64, body: &[u8]) -> anyhow::Result<()> {
    let value: Value = serde_json::from_slice(body).context("host details are not JSON")?;
    let host = value.get("host").context("host details without `host`")?;
    ensure!(host.get("id").and_then(Value::as_i64) == Some(id), "GET /hosts/{id} answered another host");
    let u = world.user_of(i);
    let user = world.users.get(u).context("no such user")?;
    let end_user =
        host.pointer("/end_users/0").with_context(|| format!("host {id} has no end user: {}", excerpt(body)))?;
    let field = |name: &str| end_user.get(name).and_then(Value::as_str).unwrap_or("");
    ensure!(
        field("idp_username") == user.user_name && field("idp_id") == user.id,
        "host {id} shows end user {:?} ({:?}), not {} ({})",
        field("idp_username"),
        field("idp_id"),
        user.user_name,
        user.id
    );
    let mut expected: Vec<String> =
        world.user_groups.get(u).map(|gs| gs.iter().map(|&g| group_name(g)).collect()).unwrap_or_default();
    expected.sort();
    let shown: Vec<&str> = end_user
        .get("idp_groups")
        .and_then(Value::as_array)
        .map(|gs| gs.iter().filter_map(Value::as_str).collect())
        .unwrap_or_default();
    ensure!(shown == expected, "host {id} shows groups {shown:?}, not {expected:?}");
    let department = department_of(u + 1).unwrap_or("");
    ensure!(
        field("idp_department") == department,
        "host {id} shows department {:?}, not {department:?}",
        field("idp_department")
    );
    Ok(())
}

/// Checks a filtered page: `expected` hosts, each matching the filter. Answers how many
/// hosts it had.
fn check_list(body: &[u8], filter: Filter, value: &str, expected: usize) -> anyhow::Result<usize> {
    let page: Value = serde_json::from_slice(body).context("a host list is not JSON")?;
    let hosts = page.get("hosts").and_then(Value::as_array).context("a host list without `hosts`")?;
    if hosts.len() != expected {
        bail!("the list filtered by {value:?} has {} hosts, not {expected}", hosts.len());
    }
    for host in hosts {
        let end_user = host.pointer("/end_users/0");
        let matches = match filter {
            Filter::Group => end_user
                .and_then(|e| e.get("idp_groups"))
                .and_then(Value::as_array)
                .is_some_and(|gs| gs.iter().any(|g| g.as_str() == Some(value))),
            Filter::Department => end_user.and_then(|e| e.get("idp_department")).and_then(Value::as_str) == Some(value),
            Filter::Idp { title, site, users } => {
                end_user.is_some()
                    && owner_number(host, users).is_some_and(|n| title_of(n) == title && site_of(n) == site)
            }
        };
        if !matches {
            bail!(
                "the list filtered by {value:?} has a host that does not match: {}",
                excerpt(host.to_string().as_bytes())
            );
        }
    }
    Ok(hosts.len())
}

/// Runs `job(0..jobs)` from `concurrency` tasks; the results come back in order. The
/// first failure stops the others.
pub async fn in_parallel<T, F, Fut>(jobs: usize, concurrency: usize, job: F) -> anyhow::Result<Vec<T>>
where
    T: Send + 'static,
    F: Fn(usize) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = anyhow::Result<T>> + Send + 'static,
{
    let next = Arc::new(AtomicUsize::new(0));
    let job = Arc::new(job);
    let mut workers = tokio::task::JoinSet::new();
    for _ in 0..concurrency.clamp(1, jobs.max(1)) {
        let (next, job) = (next.clone(), job.clone());
        workers.spawn(async move {
            let mut done = Vec::new();
            loop {
                let i = next.fetch_add(1, Ordering::Relaxed);
                if i >= jobs {
                    break;
                }
                done.push((i, job(i).await?));
            }
            Ok::<_, anyhow::Error>(done)
        });
    }
    let mut slots: Vec<Option<T>> = (0..jobs).map(|_| None).collect();
    let mut failure = None;
    while let Some(joined) = workers.join_next().await {
        match joined.context("a client task failed").and_then(|r| r) {
            Ok(done) => {
                for (i, t) in done {
                    if let Some(slot) = slots.get_mut(i) {
                        *slot = Some(t);
                    }
                }
            }
            Err(e) => {
                workers.abort_all();
                failure.get_or_insert(e);
            }
        }
    }
    if let Some(e) = failure {
        return Err(e);
    }
    slots.into_iter().collect::<Option<Vec<T>>>().context("a job did not finish")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn users_departments_and_hosts() {
        let (body, user_name, _) = bench_user(1);
        assert_eq!(body[ENTERPRISE_SCHEMA]["department"], json!(department_of(1).unwrap_or("?")));
        assert_eq!(body["schemas"][1], json!(ENTERPRISE_SCHEMA));
        let (body, _, _) = bench_user(4);
        assert!(body.get(ENTERPRISE_SCHEMA).is_none());
        let with: usize = (1..=100).filter(|&n| department_of(n).is_some()).count();
        assert_eq!(with, 75);
        let host = host_body(0, &user_name);
        assert_eq!(host["device_mapping"][0]["email"], json!("user00001@example.com"));
        assert_ne!(host_body(1, "x")["uuid"], host["uuid"]);
    }

    #[test]
    fn hosts_per_user() {
        let user = User { id: "u".into(), user_name: "n".into(), external_id: "x".into(), email: "e".into() };
        let world = World {
            users: vec![user.clone(), user.clone(), user],
            user_groups: Vec::new(),
            members: Vec::new(),
            host_ids: Vec::new(),
            hosts: 7,
        };
        assert_eq!((0..3).map(|u| world.hosts_of(u)).collect::<Vec<_>>(), vec![3, 2, 2]);
        assert_eq!(world.user_of(4), 1);
    }
}
