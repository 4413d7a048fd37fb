//! Crash safety: a real `custodian serve` process is killed with SIGKILL in the middle
//! of a write storm, ten times in a row, on the backend of this test run. After each
//! restart, every write that was acknowledged (2xx) must be there with its content, a
//! write that was in flight must be there whole or not at all, and memberships and host
//! links must agree with each other.
//!
//! Each worker owns the users, group and hosts it writes, so the writes to any one
//! resource are serialized and the expected state is exact; a write left without an
//! answer by the kill leaves two candidate states (before and after), and the restarted
//! server must show one of them. The SCIM request *history* is batched in memory and may
//! lose its last entries on a kill; it is not checked here.

use std::collections::{BTreeSet, HashMap};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use custodian_domain::Role;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

use crate::support::{API, SCIM, TestApp, TestDb, open_store};

const BIN: &str = env!("CARGO_BIN_EXE_custodian");
const CYCLES: usize = 10;
const WORKERS: usize = 6;
/// Hosts per page when the state is read back.
const HOST_PAGE: usize = 5000;

/// A `custodian serve` process on a database; its stderr goes to a file that a failed
/// start prints.
pub struct Server {
    pub base: String,
    pub child: Child,
    log: PathBuf,
    /// On PostgreSQL: the database's URL and the `application_name` this instance's
    /// sessions carry, so that a kill can wait until they are gone.
    sessions: Option<(String, String)>,
}

impl Server {
    /// Starts `custodian serve` on `url` and waits until `/readyz` answers 200.
    pub async fn start(url: &str, log_dir: &Path, name: &str) -> Server {
        let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
        let log = log_dir.join(format!("{name}.log"));
        let sessions = url.starts_with("postgres").then(|| (url.to_string(), format!("custodian-test-{name}-{port}")));
        let serve_url = match &sessions {
            Some((_, application)) => with_query_parameter(url, "application_name", application),
            None => url.to_string(),
        };
        let child = Command::new(BIN)
            .args(["serve", "--listen", &format!("127.0.0.1:{port}"), "--database", &serve_url])
            // The storm sends faster than any IdP: no per-token rate limit.
            .args(["--rate-limit-per-token", "0"])
            .env_remove("CUSTODIAN_DATABASE_URL")
            .env("CUSTODIAN_LOG", "warn")
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&log).unwrap())
            .spawn()
            .unwrap();
        let mut server = Server { base: format!("http://127.0.0.1:{port}"), child, log, sessions };
        let client = reqwest::Client::new();
        let started = Instant::now();
        loop {
            if let Some(status) = server.child.try_wait().unwrap() {
                panic!("the server exited at start ({status}): {}", server.log_text());
            }
            if let Ok(r) = client.get(format!("{}/readyz", server.base)).send().await {
                let status = r.status();
                let body = r.text().await.unwrap_or_default();
                if status == StatusCode::OK {
                    assert_eq!(serde_json::from_str::<Value>(&body).unwrap(), json!({"status": "ready"}));
                    break;
                }
            }
            assert!(started.elapsed() < Duration::from_secs(60), "the server did not start: {}", server.log_text());
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
        server
    }

    pub fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// SIGKILL (what `Child::kill` sends on unix), then reaps the process. On PostgreSQL
    /// it then waits until the database has ended every session of the killed instance:
    /// a session whose `COMMIT` was sent before the kill goes on committing, and a read
    /// made before it is done would see the database change under it. Returns the
    /// sessions that were still there right after the kill (`state: query`).
    pub async fn kill(&mut self) -> Vec<String> {
        self.child.kill().unwrap();
        self.child.wait().unwrap();
        let Some((url, application)) = &self.sessions else { return Vec::new() };
        use sqlx::Connection;
        let mut conn = sqlx::PgConnection::connect(url).await.unwrap();
        let deadline = Instant::now() + Duration::from_secs(60);
        let mut right_after_the_kill = None;
        loop {
            let open: Vec<(String, String)> = sqlx::query_as(
                "SELECT coalesce(state, ''), left(query, 80) FROM pg_stat_activity \
                 WHERE datname = current_database() AND application_name = $1",
            )
            .bind(application)
            .fetch_all(&mut conn)
            .await
            .unwrap();
            let open: Vec<String> = open.into_iter().map(|(state, query)| format!("{state}: {query}")).collect();
            let done = open.is_empty();
            right_after_the_kill.get_or_insert(open);
            if done {
                break;
            }
            assert!(Instant::now() < deadline, "the killed instance's sessions never ended: {right_after_the_kill:?}");
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        conn.close().await.unwrap();
        right_after_the_kill.unwrap_or_default()
    }
}

/// `url` with `name=value` added to its query string.
fn with_query_parameter(url: &str, name: &str, value: &str) -> String {
    let separator = if url.contains('?') { '&' } else { '?' };
    format!("{url}{separator}{name}={value}")
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
struct UserState {
    given: String,
    title: String,
    active: bool,
}

#[derive(Debug, Clone, PartialEq, Eq)]
struct HostState {
    hostname: String,
    identity: String,
}

/// What the server must show for one resource: one candidate after an acknowledged
/// write, two (before and after) after a write the kill left unanswered; `None` is
/// "absent".
type Candidates<T> = Vec<Option<T>>;

#[derive(Default)]
pub struct Ledger {
    /// By userName: the states the user may be in, its id once known, its owner.
    users: HashMap<String, (Candidates<UserState>, Option<String>, usize)>,
    /// By group id: the member ids it may have; the owner is the worker of the same index.
    groups: Vec<(String, Vec<BTreeSet<String>>)>,
    /// By uuid: the states the host may be in, and its owner.
    hosts: HashMap<String, (Candidates<HostState>, usize)>,
    /// The uuids of each host batch whose answer never came: all there or none.
    open_batches: Vec<Vec<String>>,
    /// Ids of users surely present, for group additions.
    present: Vec<String>,
}

#[derive(Default, Debug, Clone, Copy)]
struct Counts {
    user_creates: usize,
    user_patches: usize,
    group_patches: usize,
    host_posts: usize,
    host_updates: usize,
    batches: usize,
    batch_hosts: usize,
    unanswered: usize,
}

impl Counts {
    fn acknowledged(&self) -> usize {
        self.user_creates + self.user_patches + self.group_patches + self.host_posts + self.host_updates + self.batches
    }
}

pub struct Storm {
    base: String,
    token: String,
    client: reqwest::Client,
    ledger: Mutex<Ledger>,
    counts: Mutex<Counts>,
    stop: AtomicBool,
    in_flight: AtomicUsize,
    cycle: usize,
}

enum Answer {
    Ok(StatusCode, Value),
    /// No answer: the server died with the request in flight.
    Lost,
}

impl Storm {
    pub fn new(base: &str, token: &str, client: &reqwest::Client, ledger: Ledger, cycle: usize) -> Arc<Storm> {
        Arc::new(Storm {
            base: base.to_string(),
            token: token.to_string(),
            client: client.clone(),
            ledger: Mutex::new(ledger),
            counts: Mutex::new(Counts::default()),
            stop: AtomicBool::new(false),
            in_flight: AtomicUsize::new(0),
            cycle,
        })
    }

    /// Starts one task per worker, each with a seed drawn from `rng`.
    pub fn spawn_workers(self: &Arc<Self>, rng: &mut StdRng) -> Vec<tokio::task::JoinHandle<()>> {
        (0..WORKERS)
            .map(|w| {
                let storm = self.clone();
                let seed = rng.random();
                tokio::spawn(async move { storm.worker(w, seed).await })
            })
            .collect()
    }

    /// Asks the workers to stop after their current write.
    pub fn stop(&self) {
        self.stop.store(true, Ordering::SeqCst);
    }

    /// The userNames and host uuids whose creation has been acknowledged so far.
    pub fn acknowledged(&self) -> (BTreeSet<String>, BTreeSet<String>) {
        let ledger = self.ledger.lock().unwrap();
        let users = ledger.users.iter().filter(|(_, (c, _, _))| c.iter().all(Option::is_some)).map(|(k, _)| k.clone());
        let hosts = ledger.hosts.iter().filter(|(_, (c, _))| c.iter().all(Option::is_some)).map(|(k, _)| k.clone());
        (users.collect(), hosts.collect())
    }

    /// How many writes were acknowledged.
    pub fn acknowledged_writes(&self) -> usize {
        self.counts.lock().unwrap().acknowledged()
    }

    /// The ledger, once every worker has ended.
    pub fn into_ledger(self: Arc<Self>) -> Ledger {
        Arc::try_unwrap(self).ok().unwrap().ledger.into_inner().unwrap()
    }

    async fn send(&self, method: Method, path: &str, body: Value, scim: bool) -> Answer {
        let content_type = if scim { "application/scim+json" } else { "application/json" };
        self.in_flight.fetch_add(1, Ordering::SeqCst);
        let sent = self
            .client
            .request(method, format!("{}{path}", self.base))
            .bearer_auth(&self.token)
            .header("content-type", content_type)
            .body(body.to_string())
            .send()
            .await;
        let answer = match sent {
            Ok(resp) => {
                let status = resp.status();
                match resp.text().await {
                    Ok(text) => Answer::Ok(status, serde_json::from_str(&text).unwrap_or(Value::Null)),
                    Err(_) => Answer::Lost,
                }
            }
            Err(_) => Answer::Lost,
        };
        self.in_flight.fetch_sub(1, Ordering::SeqCst);
        if let Answer::Ok(status, body) = &answer {
            // An answered write either succeeded or wrote nothing; only a 503 (busy,
            // retry) is an acceptable failure here, anything else is a bug.
            assert!(
                status.is_success() || *status == StatusCode::SERVICE_UNAVAILABLE,
                "{path} answered {status}: {body}"
            );
        }
        answer
    }

    fn count(&self, f: impl FnOnce(&mut Counts)) {
        f(&mut self.counts.lock().unwrap());
    }

    /// One worker: random writes on its own resources until the stop flag or a lost answer.
    async fn worker(&self, w: usize, seed: u64) {
        let mut rng = StdRng::seed_from_u64(seed);
        let mut n = 0usize;
        while !self.stop.load(Ordering::SeqCst) {
            n += 1;
            let lost = match rng.random_range(0..100) {
                0..30 => self.create_user(w, n).await,
                30..45 => self.patch_user(w, n, &mut rng).await,
                45..65 => self.patch_group(w, &mut rng).await,
                65..80 => self.post_host(w, n, &mut rng).await,
                80..90 => self.update_host(w, n, &mut rng).await,
                _ => self.post_batch(w, n, &mut rng).await,
            };
            if lost {
                self.count(|c| c.unanswered += 1);
                return;
            }
        }
    }

    fn user_name(&self, w: usize, n: usize) -> String {
        format!("c{}w{w}n{n}@example.com", self.cycle)
    }

    async fn create_user(&self, w: usize, n: usize) -> bool {
        let user_name = self.user_name(w, n);
        let state = UserState { given: "First".into(), title: format!("t{n}"), active: true };
        self.ledger.lock().unwrap().users.insert(user_name.clone(), (vec![None, Some(state.clone())], None, w));
        let answer = self.send(Method::POST, &format!("{SCIM}/Users"), user_body(&user_name, &state), true).await;
        let mut ledger = self.ledger.lock().unwrap();
        match answer {
            Answer::Lost => return true,
            Answer::Ok(StatusCode::CREATED, body) => {
                let id = body["id"].as_str().unwrap().to_string();
                ledger.users.insert(user_name, (vec![Some(state)], Some(id.clone()), w));
                ledger.present.push(id);
                drop(ledger);
                self.count(|c| c.user_creates += 1);
            }
            Answer::Ok(..) => {
                ledger.users.insert(user_name, (vec![None], None, w));
            }
        }
        false
    }

    async fn patch_user(&self, w: usize, n: usize, rng: &mut StdRng) -> bool {
        let picked = {
            let ledger = self.ledger.lock().unwrap();
            let mine: Vec<(String, UserState)> = ledger
                .users
                .values()
                .filter(|(c, id, owner)| *owner == w && id.is_some() && c.len() == 1 && c[0].is_some())
                .map(|(c, id, _)| (id.clone().unwrap(), c[0].clone().unwrap()))
                .collect();
            if mine.is_empty() { None } else { Some(mine[rng.random_range(0..mine.len())].clone()) }
        };
        let Some((id, old)) = picked else { return false };
        // A rename or a (de)activation, each with a new title: one PATCH, applied whole.
        let new = if rng.random_bool(0.5) {
            UserState { given: format!("Renamed{n}"), title: format!("r{n}"), active: old.active }
        } else {
            UserState { given: old.given.clone(), title: format!("a{n}"), active: !old.active }
        };
        let key = self.set_user_candidates(&id, vec![Some(old), Some(new.clone())]);
        let body = json!({"schemas": ["urn:ietf:params:scim:api:messages:2.0:PatchOp"], "Operations": [
            {"op": "replace", "path": "name.givenName", "value": new.given},
            {"op": "replace", "path": "title", "value": new.title},
            {"op": "replace", "path": "active", "value": new.active},
        ]});
        match self.send(Method::PATCH, &format!("{SCIM}/Users/{id}"), body, true).await {
            Answer::Lost => return true,
            Answer::Ok(status, _) if status.is_success() => {
                self.ledger.lock().unwrap().users.get_mut(&key).unwrap().0 = vec![Some(new)];
                self.count(|c| c.user_patches += 1);
            }
            Answer::Ok(..) => {
                let mut ledger = self.ledger.lock().unwrap();
                let entry = ledger.users.get_mut(&key).unwrap();
                entry.0.truncate(1);
            }
        }
        false
    }

    /// Sets the candidates of the user with this id; returns its userName.
    fn set_user_candidates(&self, id: &str, candidates: Candidates<UserState>) -> String {
        let mut ledger = self.ledger.lock().unwrap();
        let (key, entry) = ledger.users.iter_mut().find(|(_, (_, i, _))| i.as_deref() == Some(id)).unwrap();
        entry.0 = candidates;
        key.clone()
    }

    async fn patch_group(&self, w: usize, rng: &mut StdRng) -> bool {
        let (group_id, old, present) = {
            let ledger = self.ledger.lock().unwrap();
            let (id, sets) = &ledger.groups[w];
            (id.clone(), sets[0].clone(), ledger.present.clone())
        };
        let outside: Vec<&String> = present.iter().filter(|id| !old.contains(*id)).collect();
        let mut new = old.clone();
        let ops: Vec<Value> = if old.len() >= 2 && (outside.is_empty() || rng.random_bool(0.35)) {
            // Removes one or two members in one PATCH.
            let members: Vec<&String> = old.iter().collect();
            let first = rng.random_range(0..members.len());
            let mut gone = vec![members[first].clone()];
            if rng.random_bool(0.5) {
                gone.push(members[(first + 1) % members.len()].clone());
            }
            gone.iter()
                .map(|id| {
                    new.remove(id);
                    json!({"op": "remove", "path": format!("members[value eq \"{id}\"]")})
                })
                .collect()
        } else if !outside.is_empty() {
            // Adds one to three users in one operation.
            let k = rng.random_range(1..=3usize.min(outside.len()));
            let start = rng.random_range(0..outside.len());
            let added: Vec<Value> = (0..k)
                .map(|i| {
                    let id = outside[(start + i) % outside.len()].clone();
                    new.insert(id.clone());
                    json!({"value": id})
                })
                .collect();
            vec![json!({"op": "add", "path": "members", "value": added})]
        } else {
            return false;
        };
        self.ledger.lock().unwrap().groups[w].1 = vec![old.clone(), new.clone()];
        let body = json!({"schemas": ["urn:ietf:params:scim:api:messages:2.0:PatchOp"], "Operations": ops});
        match self.send(Method::PATCH, &format!("{SCIM}/Groups/{group_id}"), body, true).await {
            Answer::Lost => return true,
            Answer::Ok(status, _) if status.is_success() => {
                self.ledger.lock().unwrap().groups[w].1 = vec![new];
                self.count(|c| c.group_patches += 1);
            }
            Answer::Ok(..) => self.ledger.lock().unwrap().groups[w].1 = vec![old],
        }
        false
    }

    /// An identity for a new host: a user that exists, one this worker may create soon,
    /// or nobody.
    fn pick_identity(&self, w: usize, n: usize, rng: &mut StdRng) -> String {
        match rng.random_range(0..10) {
            0..6 => {
                let ledger = self.ledger.lock().unwrap();
                let names: Vec<&String> = ledger.users.keys().collect();
                if names.is_empty() {
                    self.user_name(w, n + 1)
                } else {
                    names[rng.random_range(0..names.len())].clone()
                }
            }
            6..9 => self.user_name(w, n + rng.random_range(1..4)),
            _ => format!("nobody{n}w{w}c{}@example.com", self.cycle),
        }
    }

    async fn post_host(&self, w: usize, n: usize, rng: &mut StdRng) -> bool {
        let uuid = format!("c{}w{w}h{n}", self.cycle);
        let state = HostState { hostname: format!("{uuid}.local"), identity: self.pick_identity(w, n, rng) };
        self.ledger.lock().unwrap().hosts.insert(uuid.clone(), (vec![None, Some(state.clone())], w));
        match self.send(Method::POST, &format!("{API}/hosts"), host_json(&uuid, &state), false).await {
            Answer::Lost => return true,
            Answer::Ok(status, body) if status.is_success() => {
                assert_eq!(status, StatusCode::CREATED, "{body}");
                assert_eq!(body["host"]["uuid"], json!(uuid), "{body}");
                self.ledger.lock().unwrap().hosts.insert(uuid, (vec![Some(state)], w));
                self.count(|c| c.host_posts += 1);
            }
            Answer::Ok(..) => {
                self.ledger.lock().unwrap().hosts.insert(uuid, (vec![None], w));
            }
        }
        false
    }

    async fn update_host(&self, w: usize, n: usize, rng: &mut StdRng) -> bool {
        let picked = {
            let ledger = self.ledger.lock().unwrap();
            let mine: Vec<(String, HostState)> = ledger
                .hosts
                .iter()
                .filter(|(_, (c, owner))| *owner == w && c.len() == 1 && c[0].is_some())
                .map(|(uuid, (c, _))| (uuid.clone(), c[0].clone().unwrap()))
                .collect();
            if mine.is_empty() { None } else { Some(mine[rng.random_range(0..mine.len())].clone()) }
        };
        let Some((uuid, old)) = picked else { return false };
        // A new hostname and a new enrollment account, in one upsert.
        let new = HostState { hostname: format!("{uuid}-u{n}.local"), identity: self.pick_identity(w, n, rng) };
        self.ledger.lock().unwrap().hosts.insert(uuid.clone(), (vec![Some(old.clone()), Some(new.clone())], w));
        match self.send(Method::POST, &format!("{API}/hosts"), host_json(&uuid, &new), false).await {
            Answer::Lost => return true,
            Answer::Ok(status, body) if status.is_success() => {
                assert_eq!(status, StatusCode::OK, "an update: {body}");
                self.ledger.lock().unwrap().hosts.insert(uuid, (vec![Some(new)], w));
                self.count(|c| c.host_updates += 1);
            }
            Answer::Ok(..) => {
                self.ledger.lock().unwrap().hosts.insert(uuid, (vec![Some(old)], w));
            }
        }
        false
    }

    /// A batch of new hosts: one transaction, so all of it or none of it.
    async fn post_batch(&self, w: usize, n: usize, rng: &mut StdRng) -> bool {
        let size = rng.random_range(3..=12);
        let hosts: Vec<(String, HostState)> = (0..size)
            .map(|i| {
                let uuid = format!("c{}w{w}b{n}-{i}", self.cycle);
                let state = HostState { hostname: format!("{uuid}.local"), identity: self.pick_identity(w, n, rng) };
                (uuid, state)
            })
            .collect();
        {
            let mut ledger = self.ledger.lock().unwrap();
            for (uuid, state) in &hosts {
                ledger.hosts.insert(uuid.clone(), (vec![None, Some(state.clone())], w));
            }
            ledger.open_batches.push(hosts.iter().map(|(u, _)| u.clone()).collect());
        }
        let body = json!({"hosts": hosts.iter().map(|(u, s)| host_json(u, s)).collect::<Vec<_>>()});
        let answer = self.send(Method::POST, &format!("{API}/hosts/batch"), body, false).await;
        let mut ledger = self.ledger.lock().unwrap();
        match answer {
            Answer::Lost => return true,
            Answer::Ok(status, body) => {
                ledger.open_batches.retain(|b| b[0] != hosts[0].0);
                let applied = status.is_success();
                if applied {
                    assert_eq!(body["created"], json!(size), "{body}");
                    assert_eq!(body["rejected"], json!([]), "{body}");
                }
                for (uuid, state) in hosts {
                    ledger.hosts.insert(uuid, (vec![applied.then_some(state)], w));
                }
                drop(ledger);
                if applied {
                    self.count(|c| {
                        c.batches += 1;
                        c.batch_hosts += size;
                    });
                }
            }
        }
        false
    }
}

fn user_body(user_name: &str, s: &UserState) -> Value {
    json!({
        "schemas": ["urn:ietf:params:scim:schemas:core:2.0:User"],
        "userName": user_name,
        "name": {"givenName": s.given, "familyName": "Crash"},
        "emails": [{"primary": true, "value": user_name, "type": "work"}],
        "displayName": format!("{} Crash", s.given),
        "externalId": format!("ext-{user_name}"),
        "title": s.title,
        "locale": "en-US",
        "groups": [],
        "password": "1mz050nq",
        "active": s.active
    })
}

fn host_json(uuid: &str, s: &HostState) -> Value {
    json!({
        "uuid": uuid,
        "hardware_serial": format!("SER-{uuid}"),
        "hostname": s.hostname,
        "computer_name": format!("Mac of {uuid}"),
        "platform": "darwin",
        "os_version": "macOS 15.4",
        "hardware_model": "MacBookPro18,3",
        "device_mapping": [{"email": s.identity, "source": "mdm_idp_accounts"}]
    })
}

/// The groups each worker owns, created (and acknowledged) before any storm.
pub async fn create_groups(client: &reqwest::Client, base: &str, token: &str) -> Ledger {
    let mut ledger = Ledger::default();
    for w in 0..WORKERS {
        let r = client
            .post(format!("{base}{SCIM}/Groups"))
            .bearer_auth(token)
            .header("content-type", "application/scim+json")
            .body(json!({"displayName": format!("Team {w}"), "members": []}).to_string())
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), StatusCode::CREATED);
        let body: Value = r.json().await.unwrap();
        ledger.groups.push((body["id"].as_str().unwrap().to_string(), vec![BTreeSet::new()]));
    }
    ledger
}

/// Everything the restarted server shows, read through the API.
pub struct Seen {
    /// By userName: the user's body.
    pub users: HashMap<String, Value>,
    /// By group id: the member ids.
    pub groups: HashMap<String, BTreeSet<String>>,
    /// By uuid: the host's body.
    pub hosts: HashMap<String, Value>,
}

async fn get_json(client: &reqwest::Client, base: &str, token: &str, path: &str) -> Value {
    let r = client.get(format!("{base}{path}")).bearer_auth(token).send().await.unwrap();
    let status = r.status();
    let text = r.text().await.unwrap();
    assert_eq!(status, StatusCode::OK, "GET {path}: {text}");
    serde_json::from_str(&text).unwrap()
}

pub async fn read_all(client: &reqwest::Client, base: &str, token: &str) -> Seen {
    let mut users = HashMap::new();
    let mut start = 1;
    loop {
        let page = get_json(client, base, token, &format!("{SCIM}/Users?startIndex={start}&count=1000")).await;
        let resources = page["Resources"].as_array().cloned().unwrap_or_default();
        for u in &resources {
            users.insert(u["userName"].as_str().unwrap().to_string(), u.clone());
        }
        start += resources.len();
        if resources.is_empty() || start > page["totalResults"].as_u64().unwrap() as usize {
            break;
        }
    }
    let mut groups = HashMap::new();
    let list = get_json(client, base, token, &format!("{SCIM}/Groups?count=1000")).await;
    for g in list["Resources"].as_array().unwrap() {
        let members: BTreeSet<String> = g["members"]
            .as_array()
            .map(|a| a.iter().map(|m| m["value"].as_str().unwrap().to_string()).collect())
            .unwrap_or_default();
        groups.insert(g["id"].as_str().unwrap().to_string(), members);
    }
    // Every page: a fast machine's ten storms write more hosts than one page holds.
    let mut hosts = HashMap::new();
    for page in 0.. {
        let list = get_json(client, base, token, &format!("{API}/hosts?per_page={HOST_PAGE}&page={page}")).await;
        let batch = list["hosts"].as_array().unwrap();
        for h in batch {
            hosts.insert(h["uuid"].as_str().unwrap().to_string(), h.clone());
        }
        if batch.len() < HOST_PAGE {
            break;
        }
    }
    Seen { users, groups, hosts }
}

fn user_state(body: &Value, user_name: &str) -> UserState {
    // The parts a create writes, whole: any other value here is a half-written user.
    assert_eq!(body["name"]["familyName"], "Crash", "{body}");
    assert_eq!(body["externalId"], json!(format!("ext-{user_name}")), "{body}");
    assert_eq!(body["emails"][0]["value"], json!(user_name), "{body}");
    UserState {
        given: body["name"]["givenName"].as_str().unwrap().to_string(),
        title: body["title"].as_str().unwrap().to_string(),
        active: body["active"].as_bool().unwrap(),
    }
}

/// Checks the restarted server against the ledger and resolves each two-candidate
/// state to the one seen. Returns how many unanswered writes turned out applied.
fn verify(ledger: &mut Ledger, seen: &Seen, cycle: usize) -> usize {
    let mut applied_unanswered = 0;
    // Users: each as acknowledged, or one of its two candidates; none unknown.
    let mut id_of: HashMap<String, String> = HashMap::new();
    for (user_name, (candidates, id, _)) in ledger.users.iter_mut() {
        let got = seen.users.get(user_name).map(|u| user_state(u, user_name));
        assert!(
            candidates.contains(&got),
            "cycle {cycle}: user {user_name} is {got:?}, expected one of {candidates:?}"
        );
        if candidates.len() > 1 && got == candidates[1] {
            applied_unanswered += 1;
        }
        if let Some(body) = seen.users.get(user_name) {
            let seen_id = body["id"].as_str().unwrap().to_string();
            if let Some(known) = id {
                assert_eq!(known, &seen_id, "cycle {cycle}: user {user_name} changed id");
            }
            if id.is_none() {
                ledger.present.push(seen_id.clone());
            }
            *id = Some(seen_id.clone());
            id_of.insert(seen_id, user_name.clone());
        }
        *candidates = vec![got];
    }
    ledger.users.retain(|_, (c, _, _)| c[0].is_some());
    for user_name in seen.users.keys() {
        assert!(ledger.users.contains_key(user_name), "cycle {cycle}: user {user_name} was never written");
    }
    // Groups: each with its acknowledged members, or the other candidate of an
    // unanswered PATCH; every member exists, and users and groups agree both ways.
    assert_eq!(seen.groups.len(), ledger.groups.len(), "cycle {cycle}: groups {:?}", seen.groups.keys());
    for (group_id, candidates) in ledger.groups.iter_mut() {
        let got = seen.groups.get(group_id).unwrap_or_else(|| panic!("cycle {cycle}: group {group_id} is gone"));
        assert!(
            candidates.contains(got),
            "cycle {cycle}: group {group_id} has {got:?}, expected one of {candidates:?}"
        );
        if candidates.len() > 1 && got == &candidates[1] {
            applied_unanswered += 1;
        }
        *candidates = vec![got.clone()];
    }
    // Hosts: each as acknowledged or one of its candidates; unanswered batches whole or
    // absent; each linked exactly as its identity says.
    let in_open_batch: BTreeSet<String> = ledger.open_batches.iter().flatten().cloned().collect();
    for (uuid, (candidates, _)) in ledger.hosts.iter_mut() {
        let got = seen.hosts.get(uuid).map(|h| {
            assert_eq!(h["hardware_serial"], json!(format!("SER-{uuid}")), "{h}");
            HostState {
                hostname: h["hostname"].as_str().unwrap().to_string(),
                identity: h["idp_link"]["identity"].as_str().unwrap().to_string(),
            }
        });
        assert!(candidates.contains(&got), "cycle {cycle}: host {uuid} is {got:?}, expected one of {candidates:?}");
        // A batch's hosts count once, below.
        if candidates.len() > 1 && got == candidates[1] && !in_open_batch.contains(uuid.as_str()) {
            applied_unanswered += 1;
        }
        *candidates = vec![got];
    }
    for batch in ledger.open_batches.drain(..) {
        let there = batch.iter().filter(|u| seen.hosts.contains_key(*u)).count();
        assert!(
            there == 0 || there == batch.len(),
            "cycle {cycle}: an unanswered batch is half written: {there} of {batch:?}"
        );
        if there > 0 {
            applied_unanswered += 1;
        }
    }
    ledger.hosts.retain(|_, (c, _)| c[0].is_some());
    for uuid in seen.hosts.keys() {
        assert!(ledger.hosts.contains_key(uuid), "cycle {cycle}: host {uuid} was never written");
    }
    check_consistency(seen, &format!("cycle {cycle}"));
    applied_unanswered
}

/// What holds in any state, acknowledged or not: every group member exists, each user's
/// groups are the groups listing it, and each host is linked to the user its identity
/// names (when that user exists) and to nobody otherwise.
pub fn check_consistency(seen: &Seen, cycle: &str) {
    let ids: BTreeSet<&str> = seen.users.values().map(|u| u["id"].as_str().unwrap()).collect();
    for (group_id, members) in &seen.groups {
        for member in members {
            assert!(
                ids.contains(member.as_str()),
                "{cycle}: group {group_id} has a member {member} that does not exist"
            );
        }
    }
    for (user_name, body) in &seen.users {
        let id = body["id"].as_str().unwrap();
        let of_user: BTreeSet<String> = body["groups"]
            .as_array()
            .map(|a| a.iter().map(|g| g["value"].as_str().unwrap().to_string()).collect())
            .unwrap_or_default();
        let listing: BTreeSet<String> =
            seen.groups.iter().filter(|(_, m)| m.contains(id)).map(|(g, _)| g.clone()).collect();
        assert_eq!(of_user, listing, "{cycle}: {user_name}'s groups differ from the groups listing it");
    }
    for host in seen.hosts.values() {
        let identity = host["idp_link"]["identity"].as_str().unwrap();
        let end_users = host["end_users"].as_array().unwrap();
        match seen.users.get(identity) {
            Some(user) => {
                assert_eq!(host["idp_link"]["state"], "linked", "{cycle}: {host}");
                assert_eq!(end_users.len(), 1, "{cycle}: {host}");
                assert_eq!(end_users[0]["idp_id"], user["id"], "{cycle}: {host} is linked to another user");
                assert_eq!(end_users[0]["idp_active"], user["active"], "{cycle}: {host}");
                assert_eq!(
                    end_users[0]["idp_full_name"],
                    json!(format!("{} Crash", user["name"]["givenName"].as_str().unwrap()))
                );
            }
            None => {
                assert_eq!(host["idp_link"]["state"], "unlinked", "{cycle}: {host}");
                assert!(end_users.is_empty() || end_users[0]["idp_id"] == "", "{cycle}: {host}");
            }
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn sigkill_during_a_write_storm_loses_no_acknowledged_write_ten_times() {
    let db = TestDb::fresh().await;
    let store = open_store(&db.url).await;
    let token = TestApp::create_token_in(&store, "okta", Role::Maintainer).await;
    drop(store);
    let logs = tempfile::tempdir().unwrap();
    let seed: u64 =
        std::env::var("CUSTODIAN_CRASH_SEED").ok().and_then(|s| s.parse().ok()).unwrap_or_else(|| rand::rng().random());
    println!("crash test seed {seed} (CUSTODIAN_CRASH_SEED={seed} repeats it)");
    let mut rng = StdRng::seed_from_u64(seed);
    let mut ledger = Ledger::default();
    let client = reqwest::Client::builder().timeout(Duration::from_secs(60)).build().unwrap();

    for cycle in 1..=CYCLES {
        let restarted = Instant::now();
        let mut server = Server::start(&db.url, logs.path(), &format!("cycle{cycle}")).await;
        let start_ms = restarted.elapsed().as_millis();
        // A clean start: recovery after the kill logs no error.
        let log = server.log_text();
        assert!(!log.contains("ERROR"), "cycle {cycle}: the server logged an error at start: {log}");
        let seen = read_all(&client, &server.base, &token).await;
        let applied_unanswered = if cycle == 1 {
            ledger = create_groups(&client, &server.base, &token).await;
            0
        } else {
            verify(&mut ledger, &seen, cycle - 1)
        };
        if cycle > 1 {
            println!(
                "  restart {cycle}: ready in {start_ms} ms; {} users, {} hosts; {applied_unanswered} unanswered writes were applied",
                seen.users.len(),
                seen.hosts.len()
            );
        }
        sqlite_integrity(&db.url).await;

        let storm = Storm::new(&server.base, &token, &client, std::mem::take(&mut ledger), cycle);
        let workers = storm.spawn_workers(&mut rng);
        let storm_ms = rng.random_range(300..=1500);
        tokio::time::sleep(Duration::from_millis(storm_ms)).await;
        // On a loaded machine the first answer may take longer than the storm: the kill
        // comes once at least one write was acknowledged.
        let deadline = Instant::now() + Duration::from_secs(60);
        while storm.acknowledged_writes() == 0 {
            assert!(Instant::now() < deadline, "cycle {cycle}: no write acknowledged in 60 s: {}", server.log_text());
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        storm.stop.store(true, Ordering::SeqCst);
        let in_flight = storm.in_flight.load(Ordering::SeqCst);
        let still_open = server.kill().await;
        let committing = still_open.iter().filter(|s| s.starts_with("active")).count();
        if !still_open.is_empty() {
            println!(
                "cycle {cycle}: {} sessions of the killed instance were still open ({committing} active), \
                 waited until they ended: {still_open:?}",
                still_open.len()
            );
        }
        for w in workers {
            w.await.unwrap();
        }
        let counts = *storm.counts.lock().unwrap();
        println!(
            "cycle {cycle}: killed after {storm_ms} ms with {in_flight} requests in flight; {} writes acknowledged \
             ({} user creates, {} user PATCHes, {} group PATCHes, {} host creates, {} host updates, {} batches of \
             {} hosts), {} left unanswered",
            counts.acknowledged(),
            counts.user_creates,
            counts.user_patches,
            counts.group_patches,
            counts.host_posts,
            counts.host_updates,
            counts.batches,
            counts.batch_hosts,
            counts.unanswered
        );
        assert!(counts.acknowledged() > 0, "cycle {cycle}: the storm wrote nothing: {}", server.log_text());
        ledger = storm.into_ledger();
    }
    // The last kill's aftermath, checked too.
    let mut server = Server::start(&db.url, logs.path(), "final").await;
    let seen = read_all(&client, &server.base, &token).await;
    let applied = verify(&mut ledger, &seen, CYCLES);
    sqlite_integrity(&db.url).await;
    server.kill().await;
    println!(
        "survived {CYCLES} kills: {} users, {} hosts, {} groups hold exactly the acknowledged writes ({applied} unanswered writes of the last cycle were applied)",
        seen.users.len(),
        seen.hosts.len(),
        seen.groups.len()
    );
}

/// On SQLite, the file itself: `PRAGMA integrity_check` and no dangling foreign key.
pub async fn sqlite_integrity(url: &str) {
    if !url.starts_with("sqlite:") {
        return;
    }
    use sqlx::Connection;
    let mut conn = sqlx::SqliteConnection::connect(url).await.unwrap();
    let check: Vec<String> = sqlx::query_scalar("PRAGMA integrity_check").fetch_all(&mut conn).await.unwrap();
    assert_eq!(check, vec!["ok".to_string()], "integrity_check");
    let dangling = sqlx::query("PRAGMA foreign_key_check").fetch_all(&mut conn).await.unwrap();
    assert!(dangling.is_empty(), "{} rows break a foreign key", dangling.len());
    conn.close().await.unwrap();
}
