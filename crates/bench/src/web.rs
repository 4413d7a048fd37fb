//! The web interface's pages under load: an operator signs in (a password user created
//! with the CLI, the sign-in form and its CSRF token), then the hosts page (first page,
//! a page filtered by IdP group) and host details are read with the session cookie.

use std::path::Path;
use std::process::Stdio;
use std::time::{Duration, Instant};

use anyhow::{Context, bail, ensure};
use reqwest::header::SET_COOKIE;
use tokio::io::AsyncWriteExt;

const PASSWORD: &str = "bench password 1234";

/// A signed-in browser-like client: the session cookie to send with every page.
pub struct WebSession {
    client: reqwest::Client,
    base: String,
    cookie: String,
}

fn cookie_value(headers: &reqwest::header::HeaderMap, name: &str) -> Option<String> {
    headers
        .get_all(SET_COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .filter_map(|v| v.split(';').next())
        .filter_map(|p| p.split_once('='))
        .find(|(k, _)| *k == name)
        .map(|(_, v)| v.to_string())
}

fn csrf_field(html: &str) -> anyhow::Result<String> {
    let marker = "name=\"csrf_token\" value=\"";
    let at = html.find(marker).context("the sign-in page has no csrf_token field")? + marker.len();
    Ok(html[at..].split('"').next().unwrap_or("").to_string())
}

/// Creates an observer with `custodian user create --password-stdin` and signs it in.
pub async fn sign_in(binary: &Path, database: &str, base: &str, suffix: &str) -> anyhow::Result<WebSession> {
    let email = format!("bench-{suffix}@example.com");
    let mut child = tokio::process::Command::new(binary)
        .args(["user", "create", "--email", &email, "--name", &format!("Bench {suffix}"), "--role", "observer"])
        .args(["--password-stdin", "--database", database])
        .env_remove("CUSTODIAN_DATABASE_URL")
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .with_context(|| format!("running {} user create", binary.display()))?;
    if let Some(mut stdin) = child.stdin.take() {
        stdin.write_all(format!("{PASSWORD}\n").as_bytes()).await?;
    }
    let output = child.wait_with_output().await?;
    if !output.status.success() {
        bail!("`custodian user create --password-stdin` failed: {}", String::from_utf8_lossy(&output.stderr).trim());
    }
    let client = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .http1_only()
        .tcp_nodelay(true)
        .timeout(Duration::from_secs(60))
        .build()?;
    let login = client.get(format!("{base}/login")).send().await?;
    let presession = cookie_value(login.headers(), "custodian_presession").context("no pre-session cookie")?;
    let csrf = csrf_field(&login.text().await?)?;
    let form: String = form_urlencoded_pairs(&[("csrf_token", &csrf), ("email", &email), ("password", PASSWORD)]);
    let answer = client
        .post(format!("{base}/login"))
        .header("cookie", format!("custodian_presession={presession}"))
        .header("content-type", "application/x-www-form-urlencoded")
        .body(form)
        .send()
        .await?;
    ensure!(answer.status().as_u16() == 303, "sign-in answered {} instead of 303", answer.status());
    let session = cookie_value(answer.headers(), "custodian_session").context("sign-in set no session cookie")?;
    Ok(WebSession { client, base: base.to_string(), cookie: format!("custodian_session={session}") })
}

/// `k=v&...` with form encoding.
pub fn form_urlencoded_pairs(pairs: &[(&str, &str)]) -> String {
    let enc = |s: &str| -> String {
        s.bytes()
            .map(|b| match b {
                b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => (b as char).to_string(),
                b' ' => "+".to_string(),
                _ => format!("%{b:02X}"),
            })
            .collect()
    };
    pairs.iter().map(|(k, v)| format!("{}={}", enc(k), enc(v))).collect::<Vec<_>>().join("&")
}

impl WebSession {
    /// GETs a page (path and query, already encoded); its time and HTML. Fails unless 200
    /// and the page contains `expect`.
    pub async fn page(&self, path: &str, expect: &str) -> anyhow::Result<(Duration, String)> {
        let started = Instant::now();
        let r = self.client.get(format!("{}{path}", self.base)).header("cookie", &self.cookie).send().await?;
        let status = r.status();
        let html = r.text().await?;
        let took = started.elapsed();
        ensure!(status.as_u16() == 200, "GET {path} answered {status}");
        ensure!(html.contains(expect), "GET {path} does not show {expect:?}");
        Ok((took, html))
    }
}
