//! HTTPS served by `custodian serve --tls-cert-file --tls-key-file`: a real process with
//! certificates made here by rcgen for `localhost` and 127.0.0.1, each generation under
//! a CA of its own, so that a client trusting one CA tells which certificate it got.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use custodian_domain::Role;
use rcgen::{BasicConstraints, CertificateParams, CertifiedIssuer, DnType, IsCa, KeyPair, KeyUsagePurpose};
use reqwest::StatusCode;
use serde_json::{Value, json};
use tokio::io::AsyncReadExt;

use crate::support::{SCIM, TestApp, TestDb, okta_user, open_store};

const BIN: &str = env!("CARGO_BIN_EXE_custodian");
const DEADLINE: Duration = Duration::from_secs(30);

/// A CA, and a server certificate for localhost and 127.0.0.1 that it signed.
struct Generation {
    ca_pem: String,
    /// The server certificate, then the CA's: a chain as a CA delivers it.
    chain_pem: String,
    /// PKCS#8.
    key_pem: String,
    leaf_der: Vec<u8>,
}

impl Generation {
    fn new(name: &str) -> Generation {
        let mut ca_params = CertificateParams::new(Vec::<String>::new()).unwrap();
        ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        ca_params.distinguished_name.push(DnType::CommonName, format!("Custodian test CA {name}"));
        ca_params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::DigitalSignature];
        let ca = CertifiedIssuer::self_signed(ca_params, KeyPair::generate().unwrap()).unwrap();
        let key = KeyPair::generate().unwrap();
        let mut params = CertificateParams::new(vec!["localhost".to_string(), "127.0.0.1".to_string()]).unwrap();
        params.distinguished_name.push(DnType::CommonName, format!("localhost {name}"));
        let leaf = params.signed_by(&key, &ca).unwrap();
        Generation {
            ca_pem: ca.pem(),
            chain_pem: format!("{}{}", leaf.pem(), ca.pem()),
            key_pem: key.serialize_pem(),
            leaf_der: leaf.der().to_vec(),
        }
    }

    fn install(&self, files: &Files) {
        std::fs::write(&files.cert, &self.chain_pem).unwrap();
        std::fs::write(&files.key, &self.key_pem).unwrap();
    }
}

struct Files {
    cert: PathBuf,
    key: PathBuf,
}

impl Files {
    fn in_dir(dir: &Path) -> Files {
        Files { cert: dir.join("cert.pem"), key: dir.join("key.pem") }
    }
}

/// A client that trusts only `ca_pem`, reaches `localhost` at `addr`, and reports the
/// certificate it was served. One connection, kept between requests.
fn client_trusting(ca_pem: &str, addr: SocketAddr) -> reqwest::Client {
    reqwest::Client::builder()
        .use_rustls_tls()
        .tls_built_in_root_certs(false)
        .add_root_certificate(reqwest::Certificate::from_pem(ca_pem.as_bytes()).unwrap())
        .tls_info(true)
        .resolve("localhost", addr)
        .pool_max_idle_per_host(1)
        .timeout(Duration::from_secs(20))
        .build()
        .unwrap()
}

/// The certificate the server presented on the connection of this response.
fn served_certificate(response: &reqwest::Response) -> Vec<u8> {
    let info = response.extensions().get::<reqwest::tls::TlsInfo>().expect("TLS info of the connection");
    info.peer_certificate().expect("a peer certificate").to_vec()
}

/// `GET /readyz`: asserts the ready body, returns the certificate the connection got.
async fn ready_over(client: &reqwest::Client, base: &str) -> Result<Vec<u8>, reqwest::Error> {
    let response = client.get(format!("{base}/readyz")).send().await?;
    let served = served_certificate(&response);
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(response.headers().get("strict-transport-security").unwrap(), "max-age=31536000");
    let body: Value = response.json().await?;
    assert_eq!(body, json!({"status": "ready"}));
    Ok(served)
}

/// A free port of 127.0.0.1 (bound, then released for the server to take).
fn free_addr() -> SocketAddr {
    std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap()
}

/// A `custodian serve` process over HTTPS; its stderr goes to a file.
struct TlsServer {
    child: Child,
    addr: SocketAddr,
    base: String,
    log: PathBuf,
}

impl TlsServer {
    /// Starts the server on `addr` and waits until `/readyz` answers over HTTPS to `client`.
    async fn start(
        addr: SocketAddr,
        db_url: &str,
        files: &Files,
        dir: &Path,
        extra: &[&str],
        client: &reqwest::Client,
    ) -> TlsServer {
        let log = dir.join("serve.log");
        let child = Command::new(BIN)
            .args(["serve", "--listen", &addr.to_string(), "--database", db_url])
            .arg("--tls-cert-file")
            .arg(&files.cert)
            .arg("--tls-key-file")
            .arg(&files.key)
            .args(extra)
            .env_remove("CUSTODIAN_DATABASE_URL")
            .env_remove("CUSTODIAN_PUBLIC_URL")
            .env("CUSTODIAN_LOG", "info,sqlx=warn")
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&log).unwrap())
            .spawn()
            .unwrap();
        let mut server = TlsServer { child, addr, base: format!("https://localhost:{}", addr.port()), log };
        let started = Instant::now();
        while ready_over(client, &server.base).await.is_err() {
            if let Some(status) = server.child.try_wait().unwrap() {
                panic!("the server exited at start ({status}): {}", server.log_text());
            }
            assert!(started.elapsed() < DEADLINE, "the server did not start: {}", server.log_text());
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
        server
    }

    fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    fn signal(&self, name: &str) {
        let status = Command::new("kill").args([&format!("-{name}"), &self.child.id().to_string()]).status().unwrap();
        assert!(status.success(), "kill -{name} failed");
    }

    /// Waits until the log holds `needle`, and returns the log.
    async fn wait_for_log(&self, needle: &str) -> String {
        let started = Instant::now();
        loop {
            let log = self.log_text();
            if log.contains(needle) {
                return log;
            }
            assert!(started.elapsed() < DEADLINE, "no {needle:?} in the log: {log}");
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
    }
}

impl Drop for TlsServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[tokio::test]
async fn https_is_served_and_a_sighup_swaps_the_certificate_for_new_connections_only() {
    let db = TestDb::fresh().await;
    let token = TestApp::create_token_in(&open_store(&db.url).await, "okta", Role::Maintainer).await;
    let dir = tempfile::tempdir().unwrap();
    let files = Files::in_dir(dir.path());
    let (first, second) = (Generation::new("one"), Generation::new("two"));
    first.install(&files);

    let addr = free_addr();
    let old = client_trusting(&first.ca_pem, addr);
    let mut server = TlsServer::start(addr, &db.url, &files, dir.path(), &[], &old).await;

    // Over the connection `old` keeps: the first certificate, a real SCIM exchange.
    assert_eq!(ready_over(&old, &server.base).await.unwrap(), first.leaf_der);
    let created = old
        .post(format!("{}{SCIM}/Users", server.base))
        .bearer_auth(&token)
        .json(&okta_user("jane@example.com", "Jane", "Doe"))
        .send()
        .await
        .unwrap();
    assert_eq!(created.status(), StatusCode::CREATED);
    let user: Value = created.json().await.unwrap();
    assert_eq!(user["userName"], "jane@example.com");
    let id = user["id"].as_str().unwrap().to_string();
    // Without --public-url, locations take the scheme Custodian serves.
    assert_eq!(user["meta"]["location"], format!("{}{SCIM}/Users/{id}", server.base));

    // Plain HTTP on the HTTPS port gets no answer, and the server goes on.
    assert!(reqwest::get(format!("http://{}/healthz", server.addr)).await.is_err());

    second.install(&files);
    server.signal("HUP");
    // Each attempt is a new connection (a new client): it succeeds once the reload is done.
    let started = Instant::now();
    let served = loop {
        if let Ok(served) = ready_over(&client_trusting(&second.ca_pem, server.addr), &server.base).await {
            break served;
        }
        assert!(started.elapsed() < DEADLINE, "the second certificate was never served: {}", server.log_text());
        tokio::time::sleep(Duration::from_millis(25)).await;
    };
    assert_eq!(served, second.leaf_der);

    // (a) The connection opened before the reload still works, on its first certificate
    // (a new connection would get the second, which `old` does not trust).
    let fetched = old.get(format!("{}{SCIM}/Users/{id}", server.base)).bearer_auth(&token).send().await.unwrap();
    assert_eq!(served_certificate(&fetched), first.leaf_der);
    assert_eq!(fetched.status(), StatusCode::OK);
    assert_eq!(fetched.json::<Value>().await.unwrap()["userName"], "jane@example.com");
    // (b) A new connection that trusts only the first CA is refused the handshake.
    let refused = ready_over(&client_trusting(&first.ca_pem, server.addr), &server.base).await;
    assert!(refused.is_err(), "a new connection still got the first certificate");

    // A reload that fails keeps the certificate in use, and says why without the key.
    let damaged = second.key_pem.replacen('M', "!", 1);
    std::fs::write(&files.key, &damaged).unwrap();
    server.signal("HUP");
    let log = server.wait_for_log("the TLS certificate was not reloaded").await;
    assert!(log.contains(&format!("--tls-key-file {}", files.key.display())), "{log}");
    for line in damaged.lines().filter(|l| !l.starts_with("-----")) {
        assert!(!log.contains(line), "key material in the log: {log}");
    }
    let served = ready_over(&client_trusting(&second.ca_pem, server.addr), &server.base).await.unwrap();
    assert_eq!(served, second.leaf_der);

    // SIGTERM with a TLS connection open: a graceful stop, exit status 0.
    assert_eq!(ready_over(&old, &server.base).await.unwrap(), first.leaf_der);
    server.signal("TERM");
    let started = Instant::now();
    let status = loop {
        if let Some(status) = server.child.try_wait().unwrap() {
            break status;
        }
        assert!(started.elapsed() < DEADLINE, "the server did not stop: {}", server.log_text());
        tokio::time::sleep(Duration::from_millis(25)).await;
    };
    assert!(status.success(), "{status}: {}", server.log_text());
}

/// Runs `custodian serve` with these arguments (and environment) and returns its exit
/// status and stderr; it must stop on its own, before serving.
fn serve_refused(args: &[&std::ffi::OsStr], env: &[(&str, &std::ffi::OsStr)], dir: &Path) -> String {
    let db = format!("sqlite://{}/custodian.db", dir.display());
    let mut command = Command::new(BIN);
    command
        .args(["serve", "--listen", &free_addr().to_string(), "--database", &db])
        .args(args)
        .env_remove("CUSTODIAN_DATABASE_URL")
        .env_remove("CUSTODIAN_TLS_CERT_FILE")
        .env_remove("CUSTODIAN_TLS_KEY_FILE")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped());
    for (name, value) in env {
        command.env(name, value);
    }
    let output = command.output().unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr).into_owned();
    assert!(!output.status.success(), "serve started: {stderr}");
    stderr
}

#[test]
fn a_missing_or_unusable_key_file_stops_serve_naming_the_flag() {
    let dir = tempfile::tempdir().unwrap();
    let files = Files::in_dir(dir.path());
    let generation = Generation::new("refused");
    generation.install(&files);
    let flag = std::ffi::OsStr::new;

    let missing = dir.path().join("missing-key.pem");
    let stderr = serve_refused(
        &[flag("--tls-cert-file"), files.cert.as_os_str(), flag("--tls-key-file"), missing.as_os_str()],
        &[],
        dir.path(),
    );
    assert!(stderr.contains(&format!("--tls-key-file {}: cannot be read", missing.display())), "{stderr}");

    // The certificate where the key should be: no key in it.
    let stderr = serve_refused(
        &[flag("--tls-cert-file"), files.cert.as_os_str(), flag("--tls-key-file"), files.cert.as_os_str()],
        &[],
        dir.path(),
    );
    assert!(stderr.contains(&format!("--tls-key-file {}: no PEM private key", files.cert.display())), "{stderr}");

    // Another certificate's key (given by the environment): refused, never printed.
    let other = Generation::new("other");
    let other_key = dir.path().join("other-key.pem");
    std::fs::write(&other_key, &other.key_pem).unwrap();
    let stderr = serve_refused(
        &[],
        &[("CUSTODIAN_TLS_CERT_FILE", files.cert.as_os_str()), ("CUSTODIAN_TLS_KEY_FILE", other_key.as_os_str())],
        dir.path(),
    );
    assert!(stderr.contains(&format!("--tls-key-file {}: the private key does not belong", other_key.display())));
    for line in other.key_pem.lines().chain(generation.key_pem.lines()).filter(|l| !l.starts_with("-----")) {
        assert!(!stderr.contains(line), "key material on stderr: {stderr}");
    }

    // One file without the other, by flag or by environment.
    let stderr = serve_refused(&[flag("--tls-cert-file"), files.cert.as_os_str()], &[], dir.path());
    assert!(stderr.contains("--tls-key-file"), "{stderr}");
    let stderr = serve_refused(&[], &[("CUSTODIAN_TLS_KEY_FILE", files.key.as_os_str())], dir.path());
    assert!(stderr.contains("--tls-cert-file"), "{stderr}");
    // Refused before the database was touched.
    assert!(!dir.path().join("custodian.db").exists());
}

#[tokio::test]
async fn a_stalled_handshake_is_closed_without_holding_up_other_clients() {
    let db = TestDb::fresh().await;
    let dir = tempfile::tempdir().unwrap();
    let files = Files::in_dir(dir.path());
    let generation = Generation::new("handshake");
    generation.install(&files);
    let addr = free_addr();
    let client = client_trusting(&generation.ca_pem, addr);
    let server = TlsServer::start(addr, &db.url, &files, dir.path(), &["--header-read-timeout", "1"], &client).await;

    // Connects and never says hello.
    let mut silent = tokio::net::TcpStream::connect(addr).await.unwrap();
    // Meanwhile a new client is served: the handshake waits in its own task.
    let other = client_trusting(&generation.ca_pem, addr);
    assert_eq!(ready_over(&other, &server.base).await.unwrap(), generation.leaf_der);
    // The server closes the silent connection: end of stream (or a reset), not a hang.
    let mut buf = [0u8; 64];
    match tokio::time::timeout(DEADLINE, silent.read(&mut buf)).await {
        Ok(Ok(n)) => assert_eq!(n, 0, "the server sent {n} bytes to a client that never said hello"),
        Ok(Err(e)) => assert_eq!(e.kind(), std::io::ErrorKind::ConnectionReset, "{e}"),
        Err(_) => panic!("the stalled handshake was never closed: {}", server.log_text()),
    }
}

#[tokio::test]
async fn an_https_public_url_over_plain_http_off_loopback_warns_that_a_proxy_must_terminate_tls() {
    const WARNING: &str = "a proxy in front must terminate TLS";
    let db = TestDb::fresh().await;
    let dir = tempfile::tempdir().unwrap();
    let client = reqwest::Client::new();
    for (listen, warns) in [("0.0.0.0", true), ("127.0.0.1", false)] {
        let port = free_addr().port();
        let log = dir.path().join(format!("{listen}.log"));
        let child = Command::new(BIN)
            .args(["serve", "--listen", &format!("{listen}:{port}"), "--database", &db.url])
            .args(["--public-url", "https://custodian.example.com"])
            .env_remove("CUSTODIAN_DATABASE_URL")
            .env_remove("CUSTODIAN_TLS_CERT_FILE")
            .env_remove("CUSTODIAN_TLS_KEY_FILE")
            .env("CUSTODIAN_LOG", "warn")
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&log).unwrap())
            .spawn()
            .unwrap();
        let server = TlsServer { child, addr: format!("127.0.0.1:{port}").parse().unwrap(), base: String::new(), log };
        // The warning comes before serving: once /healthz answers, it is in the log or never.
        crate::support::wait_healthy(&client, &format!("http://127.0.0.1:{port}")).await;
        let text = server.log_text();
        assert_eq!(text.contains(WARNING), warns, "{listen}: {text}");
    }
}
