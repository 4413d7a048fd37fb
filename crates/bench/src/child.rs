//! A server under measurement as a child process: its output in a log file, waited for
//! until it answers, checked between phases, and killed when the guard is dropped (on
//! success, error or interrupt). Custodian and the peer are both run through it.

use std::fs::File;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};

pub struct Supervised {
    child: Child,
    /// What the errors call it, e.g. "the server".
    name: &'static str,
    pub log: PathBuf,
}

impl Supervised {
    /// Spawns `command` with no input and its output (both streams) in `log`.
    pub fn spawn(mut command: Command, name: &'static str, log: PathBuf) -> anyhow::Result<Self> {
        let out = File::create(&log).with_context(|| format!("creating {}", log.display()))?;
        let err = out.try_clone().with_context(|| format!("opening {} twice", log.display()))?;
        let child = command
            .stdin(Stdio::null())
            .stdout(Stdio::from(out))
            .stderr(Stdio::from(err))
            .spawn()
            .with_context(|| format!("starting {name} ({})", command.get_program().to_string_lossy()))?;
        Ok(Supervised { child, name, log })
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Sends `request` every `poll` until it answers 2xx, failing early if the process
    /// exits and after `timeout`.
    pub async fn wait_answering(
        &mut self,
        request: impl Fn() -> reqwest::RequestBuilder,
        timeout: Duration,
        poll: Duration,
    ) -> anyhow::Result<()> {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(status) = self.child.try_wait().with_context(|| format!("checking {}", self.name))? {
                bail!("{} exited ({status}) before it answered; its log:\n{}", self.name, self.log_tail(30));
            }
            let ok = request()
                .timeout(Duration::from_secs(1))
                .send()
                .await
                .map(|r| r.status().is_success())
                .unwrap_or(false);
            if ok {
                return Ok(());
            }
            if Instant::now() > deadline {
                bail!("{} did not answer within {timeout:?}; its log:\n{}", self.name, self.log_tail(30));
            }
            tokio::time::sleep(poll).await;
        }
    }

    /// Fails if the process has exited (a crash during the run).
    pub fn ensure_running(&mut self) -> anyhow::Result<()> {
        if let Some(status) = self.child.try_wait().with_context(|| format!("checking {}", self.name))? {
            bail!("{} exited ({status}) during the run; its log:\n{}", self.name, self.log_tail(30));
        }
        Ok(())
    }

    /// Peak and current resident memory in KiB (VmHWM, VmRSS), where /proc has them.
    pub fn memory_kib(&self) -> Option<(u64, u64)> {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.pid())).ok()?;
        let field = |name: &str| {
            status
                .lines()
                .find_map(|l| l.strip_prefix(name))
                .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
        };
        Some((field("VmHWM:")?, field("VmRSS:")?))
    }

    /// The last `lines` lines of the log.
    pub fn log_tail(&self, lines: usize) -> String {
        let text = std::fs::read_to_string(&self.log).unwrap_or_default();
        let all: Vec<&str> = text.lines().collect();
        all[all.len().saturating_sub(lines)..].join("\n")
    }
}

impl Drop for Supervised {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
        }
        let _ = self.child.wait();
    }
}
