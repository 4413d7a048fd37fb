//! The peer: the Python `scim2-server` (an in-memory SCIM server from the scim2 project),
//! run next to Custodian so that each throughput is also a ratio. It is pinned in the
//! conformance venv (`scripts/conformance.sh --install`), started on a free local port
//! with a bearer token, and killed when the guard is dropped.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use anyhow::bail;

use crate::child::Supervised;
use crate::server::free_local_addr;

/// Where scim2-server serves SCIM: under `/v2` of its root.
pub const PEER_PATH: &str = "/v2";

/// What installs the peer.
const INSTALL: &str = "scripts/conformance.sh --install";

/// A running scim2-server; dropping it kills the process.
pub struct Peer {
    process: Supervised,
    pub addr: SocketAddr,
    pub token: String,
    /// e.g. `scim2-server 0.8.3 (Python 3.11.7)`.
    pub version: String,
}

/// The scim2-server executable: `explicit`, or the conformance venv's
/// (`$CONFORMANCE_VENV`, else `.venv-conformance` at the root of the repository this
/// binary was built in, else in the current folder).
pub fn find(explicit: Option<&Path>) -> anyhow::Result<PathBuf> {
    if let Some(path) = explicit {
        if path.is_file() {
            return Ok(path.to_path_buf());
        }
        bail!("--peer {}: no such file (install the peer with `{INSTALL}`)", path.display());
    }
    let mut venvs = Vec::new();
    if let Some(venv) = std::env::var_os("CONFORMANCE_VENV") {
        venvs.push(PathBuf::from(venv));
    }
    // target/release/custodian-bench: the repository is two folders up from target/release.
    if let Ok(me) = std::env::current_exe()
        && let Some(repo) = me.parent().and_then(Path::parent).and_then(Path::parent)
    {
        venvs.push(repo.join(".venv-conformance"));
    }
    venvs.push(PathBuf::from(".venv-conformance"));
    let candidates: Vec<PathBuf> = venvs.iter().map(|v| v.join("bin").join("scim2-server")).collect();
    if let Some(found) = candidates.iter().find(|c| c.is_file()) {
        return Ok(found.clone());
    }
    let looked: Vec<String> = candidates.iter().map(|c| c.display().to_string()).collect();
    bail!(
        "the peer scim2-server is not installed (looked for {}). Install it with `{INSTALL}` \
         (the pinned conformance venv), point --peer at a scim2-server executable, or pass \
         --no-peer to measure Custodian alone",
        looked.join(", ")
    )
}

impl Peer {
    /// Starts `binary` on a free port of 127.0.0.1 with a random bearer token, logging to
    /// `log`, and waits until it answers.
    pub async fn start(binary: &Path, log: PathBuf, client: &reqwest::Client) -> anyhow::Result<Peer> {
        let version = version_of(binary).await;
        let addr = free_local_addr()?;
        let token = format!("peer-{:032x}", rand::random::<u128>());
        let mut command = std::process::Command::new(binary);
        command
            .args(["--hostname", "127.0.0.1", "--port", &addr.port().to_string(), "--bearer-token", &token])
            .env("PYTHONUNBUFFERED", "1");
        let process = Supervised::spawn(command, "scim2-server", log)?;
        let mut peer = Peer { process, addr, token, version };
        let url = format!("{}/ServiceProviderConfig", peer.base());
        let token = peer.token.clone();
        peer.process
            .wait_answering(
                || client.get(&url).bearer_auth(&token),
                Duration::from_secs(60),
                Duration::from_millis(100),
            )
            .await?;
        Ok(peer)
    }

    pub fn base(&self) -> String {
        format!("http://{}{PEER_PATH}", self.addr)
    }

    pub fn pid(&self) -> u32 {
        self.process.pid()
    }

    /// Fails if the peer has exited.
    pub fn ensure_running(&mut self) -> anyhow::Result<()> {
        self.process.ensure_running()
    }

    /// Peak resident memory in KiB (VmHWM), where /proc has it.
    pub fn peak_rss_kib(&self) -> Option<u64> {
        self.process.memory_kib().map(|(peak, _)| peak)
    }
}

/// `scim2-server X (Python Y)` from the venv's own Python, next to the executable.
async fn version_of(binary: &Path) -> String {
    let python = binary.with_file_name("python");
    let script = "import importlib.metadata as m, platform; \
                  print(m.version('scim2-server'), platform.python_version())";
    let output = tokio::process::Command::new(&python).args(["-c", script]).stdin(Stdio::null()).output().await;
    match output {
        Ok(o) if o.status.success() => {
            let text = String::from_utf8_lossy(&o.stdout);
            let mut words = text.split_whitespace();
            match (words.next(), words.next()) {
                (Some(v), Some(py)) => format!("scim2-server {v} (Python {py})"),
                _ => "scim2-server (version unknown)".to_string(),
            }
        }
        _ => "scim2-server (version unknown)".to_string(),
    }
}
