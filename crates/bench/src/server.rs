//! The `custodian` child process: an API token from its CLI, then `custodian serve` on a
//! free local port, killed when the guard is dropped (on success, error or interrupt).

use std::net::{Ipv4Addr, SocketAddr, TcpListener};
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};

use crate::CommonArgs;
use crate::child::Supervised;
use crate::report::{Report, Target};

/// The default binary: `custodian` next to this executable (target/release/custodian).
pub fn default_binary() -> anyhow::Result<PathBuf> {
    let me = std::env::current_exe().context("finding this executable")?;
    Ok(me.with_file_name(format!("custodian{}", std::env::consts::EXE_SUFFIX)))
}

/// Runs `custodian ARGS` (never on the environment's database) and returns its output,
/// or its stderr as the error when it fails.
async fn cli(binary: &Path, args: &[&str]) -> anyhow::Result<std::process::Output> {
    let output = tokio::process::Command::new(binary)
        .args(args)
        .env_remove("CUSTODIAN_DATABASE_URL")
        .stdin(Stdio::null())
        .output()
        .await
        .with_context(|| format!("running {} {}", binary.display(), command_words(args)))?;
    if !output.status.success() {
        bail!(
            "`custodian {}` failed ({}): {}",
            command_words(args),
            output.status,
            String::from_utf8_lossy(&output.stderr).trim()
        );
    }
    Ok(output)
}

/// The subcommand of a command line, without its options (a database URL may hold a
/// password).
fn command_words(args: &[&str]) -> String {
    args.iter().take_while(|a| !a.starts_with('-')).copied().collect::<Vec<_>>().join(" ")
}

/// Creates an API-only maintainer with the CLI and returns its token; the database is
/// migrated first (`user create` never creates one).
pub async fn create_token(binary: &Path, database: &str, name: &str) -> anyhow::Result<String> {
    cli(binary, &["migrate", "--database", database]).await?;
    create_operator_token(binary, database, name, "maintainer").await
}

/// Creates an API-only operator with `role` (`admin`, `maintainer` or `observer`) in a
/// migrated database and returns its token.
pub async fn create_operator_token(binary: &Path, database: &str, name: &str, role: &str) -> anyhow::Result<String> {
    let output =
        cli(binary, &["user", "create", "--api-only", "--name", name, "--role", role, "--database", database]).await?;
    single_token(output, "user create")
}

/// Adds an IdP connection with the CLI (`custodian idp add NAME --priority N`) to a
/// migrated database and returns its SCIM token.
pub async fn add_connection(binary: &Path, database: &str, name: &str, priority: i64) -> anyhow::Result<String> {
    let priority = priority.to_string();
    let output = cli(binary, &["idp", "add", name, "--priority", &priority, "--database", database]).await?;
    single_token(output, "idp add")
}

/// The token a CLI command printed alone on stdout.
fn single_token(output: std::process::Output, command: &str) -> anyhow::Result<String> {
    let token = String::from_utf8(output.stdout).context("the token is not UTF-8")?.trim().to_string();
    if token.is_empty() || token.contains(char::is_whitespace) {
        bail!("`custodian {command}` printed no single token on stdout");
    }
    Ok(token)
}

/// A benchmark's server, up and healthy, with what its phases need.
pub struct Launched {
    /// The temporary folder (database and server log), removed on drop unless kept.
    pub tmp: tempfile::TempDir,
    pub backend: String,
    /// Keeps names unique in a reused database.
    pub suffix: String,
    pub server: Server,
    pub client: reqwest::Client,
    pub token: String,
    /// The `custodian` binary and the database it serves (for more CLI commands).
    pub binary: PathBuf,
    pub database: String,
    /// A target for the server's peak RSS, in MiB, judged in the memory section (full
    /// runs only, like timing) [default: none, the peak is shown].
    pub peak_rss_target_mib: Option<f64>,
}

/// Creates the temporary folder and the token, starts `custodian serve` and waits until
/// it is healthy. `command` names the benchmark in the log; `pool` is the number of
/// idle connections to keep (the most requests in flight at once, plus a few).
pub async fn launch(common: &CommonArgs, command: &str, pool: usize) -> anyhow::Result<Launched> {
    // The other benchmarks measure what the server can do, not its rate limiter.
    launch_with(common, command, pool, &["--rate-limit-per-token".into(), "0".into()]).await
}

/// Like [`launch`], with more arguments for `custodian serve` (limits).
pub async fn launch_with(
    common: &CommonArgs,
    command: &str,
    pool: usize,
    serve_args: &[String],
) -> anyhow::Result<Launched> {
    let binary = match &common.custodian {
        Some(path) => path.clone(),
        None => default_binary()?,
    };
    if !binary.is_file() {
        bail!(
            "{} does not exist: build it first (`cargo build --release -p custodian`) or pass --custodian PATH",
            binary.display()
        );
    }
    let parent = common.dir.clone().unwrap_or_else(std::env::temp_dir);
    let tmp = tempfile::Builder::new()
        .prefix("custodian-bench-")
        .tempdir_in(&parent)
        .with_context(|| format!("creating a temporary folder in {}", parent.display()))?;
    let database = match &common.database {
        Some(url) => url.clone(),
        None => format!("sqlite://{}", tmp.path().join("custodian.db").display()),
    };
    let backend = database.split(':').next().unwrap_or("unknown").to_string();
    let suffix = format!(
        "{}-{}",
        std::process::id(),
        std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_millis()).unwrap_or(0)
    );
    eprintln!("custodian-bench {command}: {} ({backend})", binary.display());
    eprintln!("  working folder {}", tmp.path().display());

    let token = create_token(&binary, &database, &format!("bench-{suffix}")).await?;
    let addr = free_local_addr()?;
    let mut server = Server::start(&binary, &database, addr, tmp.path().join("server.log"), serve_args)?;
    let client = reqwest::Client::builder()
        .http1_only()
        .tcp_nodelay(true)
        .pool_max_idle_per_host(pool)
        .pool_idle_timeout(Duration::from_secs(300))
        .timeout(Duration::from_secs(300))
        .user_agent("custodian-bench")
        .build()
        .context("building the HTTP client")?;
    server.wait_healthy(&client, Duration::from_secs(60)).await?;
    eprintln!("  server pid {} on http://{addr}", server.pid());
    Ok(Launched { tmp, backend, suffix, server, client, token, binary, database, peak_rss_target_mib: None })
}

impl Launched {
    /// Stops the server, adds its memory under `memory_section`, prints the table and
    /// the JSON line, and answers whether the command succeeds (the run's own error
    /// first, after the partial figures are printed): every correctness row passed, and
    /// with `--strict`, every timing target was met.
    pub fn finish(
        self,
        mut report: Report,
        outcome: anyhow::Result<()>,
        memory_section: &str,
        common: &CommonArgs,
        started: Instant,
    ) -> anyhow::Result<bool> {
        let keep = common.keep;
        let Launched { tmp, server, peak_rss_target_mib, .. } = self;
        let memory = server.memory_kib();
        if outcome.is_err() {
            eprintln!("  server log (last lines):\n{}", server.log_tail(20));
        }
        drop(server);
        if keep {
            let kept = tmp.keep();
            eprintln!("  kept {} (database and server.log)", kept.display());
        }

        report.section(memory_section);
        match memory {
            Some((peak, current)) => {
                let mib = peak as f64 / 1024.0;
                match peak_rss_target_mib {
                    Some(max) => report.checked(
                        "server_peak_rss",
                        "peak RSS (VmHWM)",
                        format!("{mib:.1} MiB"),
                        mib,
                        Target::MaxMiB(max),
                    ),
                    None => report.info("peak RSS (VmHWM)", format!("{mib:.1} MiB")),
                }
                report.info("RSS at the end", format!("{:.1} MiB", current as f64 / 1024.0));
                report.figure("server_peak_rss_kib", peak);
                report.figure("server_rss_kib", current);
            }
            None => report.info("peak RSS (VmHWM)", "n/a (no /proc)"),
        }
        let total = started.elapsed().as_secs_f64();
        report.figure("total_seconds", total);
        if let Err(e) = &outcome {
            report.fail(format!("{e:#}"));
        }
        println!();
        print!("{}", report.table());
        println!("(total run time {total:.0} s)");
        println!("{}", report.json_line());
        outcome?;
        Ok(report.correct() && (report.all_met() || !common.strict))
    }
}

/// A free port on 127.0.0.1 (bound and released; the server binds it right after).
pub fn free_local_addr() -> anyhow::Result<SocketAddr> {
    let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).context("finding a free local port")?;
    listener.local_addr().context("reading the free port")
}

/// A running `custodian serve`; dropping it kills the process.
pub struct Server {
    process: Supervised,
    pub addr: SocketAddr,
}

impl Server {
    pub fn start(
        binary: &Path,
        database: &str,
        addr: SocketAddr,
        log: PathBuf,
        serve_args: &[String],
    ) -> anyhow::Result<Self> {
        let mut command = std::process::Command::new(binary);
        command
            .args(["serve", "--listen", &addr.to_string(), "--database", database])
            .args(serve_args)
            .env_remove("CUSTODIAN_DATABASE_URL")
            .env_remove("CUSTODIAN_LISTEN")
            .env_remove("CUSTODIAN_PUBLIC_URL")
            // A plain log file, without terminal colours.
            .env("NO_COLOR", "1");
        Ok(Server { process: Supervised::spawn(command, "the server", log)?, addr })
    }

    pub fn pid(&self) -> u32 {
        self.process.pid()
    }

    /// Waits until `/healthz` answers 200, failing early if the server exits.
    pub async fn wait_healthy(&mut self, client: &reqwest::Client, timeout: Duration) -> anyhow::Result<()> {
        let url = format!("http://{}/healthz", self.addr);
        self.process.wait_answering(|| client.get(&url), timeout, Duration::from_millis(50)).await
    }

    /// Fails if the server has exited (a crash during the run).
    pub fn ensure_running(&mut self) -> anyhow::Result<()> {
        self.process.ensure_running()
    }

    /// Peak and current resident memory in KiB (VmHWM, VmRSS), where /proc has them.
    pub fn memory_kib(&self) -> Option<(u64, u64)> {
        self.process.memory_kib()
    }

    /// CPU time (user + system, all threads) the server has used so far, in seconds.
    pub fn cpu_seconds(&self) -> Option<f64> {
        cpu_seconds_of(&format!("/proc/{}/stat", self.pid()))
    }

    pub fn log_tail(&self, lines: usize) -> String {
        self.process.log_tail(lines)
    }
}

/// CPU time this process has used so far, in seconds.
pub fn own_cpu_seconds() -> Option<f64> {
    cpu_seconds_of("/proc/self/stat")
}

/// utime + stime from a /proc stat file. They count in USER_HZ ticks, which Linux fixes
/// at 100 per second for user space.
fn cpu_seconds_of(path: &str) -> Option<f64> {
    let stat = std::fs::read_to_string(path).ok()?;
    // The command name may hold spaces and parentheses: fields start after the last ')'.
    let rest = stat.get(stat.rfind(')')? + 1..)?;
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let utime: u64 = fields.get(11)?.parse().ok()?;
    let stime: u64 = fields.get(12)?.parse().ok()?;
    Some((utime + stime) as f64 / 100.0)
}
