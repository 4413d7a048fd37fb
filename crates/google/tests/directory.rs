//! The client against the fake Google: the assertion Google verifies, every page, the
//! scope of org units and domains, nested groups, retries and configuration errors.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::time::Duration;

use custodian_google::fake::{CLIENT_EMAIL, CLIENT_ID, FakeGoogle, Fault, FaultAnswer, group, member, user};
use custodian_google::retry::RetryPolicy;
use custodian_google::{DirectoryClient, DirectoryConfig, GoogleError, ServiceAccountKey, read_snapshot};

fn config(fake: &FakeGoogle, org_unit_paths: &[&str]) -> DirectoryConfig {
    DirectoryConfig {
        key: ServiceAccountKey::parse(&fake.key_json()).unwrap(),
        admin_email: "admin@example.com".into(),
        customer_id: "my_customer".into(),
        org_unit_paths: org_unit_paths.iter().map(|p| p.to_string()).collect(),
        api_base_url: fake.base_url.clone(),
    }
}

fn quick() -> RetryPolicy {
    RetryPolicy {
        attempts: 4,
        base_delay: Duration::from_millis(5),
        max_delay: Duration::from_millis(50),
        max_wait_per_run: Duration::from_secs(2),
    }
}

fn client(config: &DirectoryConfig) -> DirectoryClient {
    DirectoryClient::new(config, quick(), Duration::from_millis(500)).unwrap()
}

/// 1,200 users over two domains and three org units; a nested group and "everyone".
async fn company() -> FakeGoogle {
    let fake = FakeGoogle::start().await;
    fake.with(|st| {
        for i in 0..1200 {
            let (domain, unit) = match i % 3 {
                0 => ("example.com", "/Engineering"),
                1 => ("example.com", "/Engineering/Contractors"),
                _ => ("subsidiary.example", "/Sales"),
            };
            let mut u = user(&format!("1{i:05}"), &format!("user{i}@{domain}"), "User", &format!("N{i}"), unit);
            if i == 7 {
                u["suspended"] = true.into();
                u["aliases"] = serde_json::json!(["u7-alias@example.com"]);
            }
            st.users.push(u);
        }
        st.groups.push(group("g1", "eng@example.com", "Engineering"));
        st.groups.push(group("g2", "platform@example.com", "Platform"));
        st.groups.push(group("g3", "all@example.com", "Everyone"));
        st.members.insert(
            "g1".into(),
            vec![member("g2", "platform@example.com", "GROUP"), member("100000", "user0@example.com", "USER")],
        );
        st.members.insert(
            "g2".into(),
            vec![member("100003", "user3@example.com", "USER"), member("999", "outsider@gmail.com", "USER")],
        );
        st.members.insert("g3".into(), vec![member("C03az79cb", "", "CUSTOMER")]);
    });
    fake
}

#[tokio::test]
async fn a_run_reads_every_page_of_both_domains_with_nested_groups_and_google_verified_the_assertion() {
    let fake = company().await;
    let config = config(&fake, &["/"]);
    let snapshot = read_snapshot(&client(&config), &config).await.unwrap();
    assert_eq!(snapshot.users.len(), 1200);
    assert!(snapshot.users.values().any(|u| u.primary_email == "user2@subsidiary.example"), "the second domain");
    let u7 = &snapshot.users["100007"];
    assert!(!u7.active() && snapshot.users["100008"].active(), "suspended is inactive; a left-out false is active");
    assert_eq!(u7.addresses(), vec!["user7@example.com".to_string(), "u7-alias@example.com".to_string()]);
    let by_name = |n: &str| snapshot.groups.iter().find(|g| g.group.name == n).unwrap();
    assert_eq!(by_name("Engineering").groups, vec!["g2".to_string()]);
    assert_eq!(by_name("Engineering").users, vec!["100000".to_string()]);
    assert_eq!(by_name("Platform").users, vec!["100003".to_string()], "a member outside the directory is left out");
    assert_eq!(by_name("Everyone").users.len(), 1200, "CUSTOMER is everyone synced");
    fake.with(|st| {
        // 3 pages of 500 users, one page of groups, one of members for each of 3 groups.
        let users: Vec<_> = st.log.iter().filter(|l| l.path == "/users").collect();
        assert_eq!(users.len(), 3);
        assert!(users.iter().all(|l| l.query["customer"] == "my_customer"
            && l.query["maxResults"] == "500"
            && l.query["projection"] == "full"
            && !l.query.contains_key("domain")));
        assert_eq!(users[1].query["pageToken"], "page-1");
        assert_eq!(st.log.len(), 3 + 1 + 3);
        assert_eq!(st.exchanges.len(), 1, "the access token is cached for the run");
        let claims = &st.exchanges[0];
        assert_eq!(claims.iss, CLIENT_EMAIL);
        assert_eq!(claims.sub, "admin@example.com");
        assert_eq!(claims.aud, format!("{}/token", fake.base_url));
        assert_eq!(claims.scope.split(' ').collect::<Vec<_>>(), custodian_google::SCOPES.to_vec());
        assert!(claims.exp - claims.iat <= 3600);
    });
    assert_eq!(snapshot.requests, 8, "7 reads and 1 token exchange");
}

#[tokio::test]
async fn org_units_narrow_the_users_to_their_subtrees() {
    let fake = company().await;
    let config = config(&fake, &["/Engineering"]);
    let snapshot = read_snapshot(&client(&config), &config).await.unwrap();
    assert_eq!(snapshot.users.len(), 800, "/Engineering and /Engineering/Contractors");
    assert!(snapshot.users.values().all(|u| u.org_unit_path.starts_with("/Engineering")));
    assert_eq!(fake.with(|st| st.log[0].query["query"].clone()), "orgUnitPath='/Engineering'");
    let everyone = snapshot.groups.iter().find(|g| g.group.name == "Everyone").unwrap();
    assert_eq!(everyone.users.len(), 800);
}

#[tokio::test]
async fn rate_limits_429s_5xx_and_timeouts_are_retried() {
    let fake = company().await;
    fake.with(|st| {
        let status =
            |status, reason: &str, retry_after| FaultAnswer::Status { status, reason: reason.into(), retry_after };
        st.faults = vec![
            Fault { path: "/users".into(), page: Some(1), times: 1, answer: status(429, "rateLimitExceeded", Some(0)) },
            Fault {
                path: "/users".into(),
                page: Some(2),
                times: 1,
                answer: status(403, "userRateLimitExceeded", None),
            },
            Fault { path: "/groups".into(), page: None, times: 1, answer: status(503, "backendError", None) },
            Fault { path: "/members".into(), page: None, times: 1, answer: FaultAnswer::Delay(Duration::from_secs(2)) },
        ];
    });
    let config = config(&fake, &["/"]);
    let snapshot = read_snapshot(&client(&config), &config).await.unwrap();
    assert_eq!(snapshot.users.len(), 1200);
    assert_eq!(snapshot.groups.len(), 3);
    assert!(fake.with(|st| st.faults.iter().all(|f| f.times == 0)), "every fault was met");
}

#[tokio::test]
async fn a_failure_on_page_3_fails_the_whole_read() {
    let fake = company().await;
    fake.with(|st| {
        st.faults = vec![Fault {
            path: "/users".into(),
            page: Some(2),
            times: 100,
            answer: FaultAnswer::Status { status: 500, reason: "backendError".into(), retry_after: None },
        }]
    });
    let config = config(&fake, &["/"]);
    let e = read_snapshot(&client(&config), &config).await.unwrap_err();
    assert!(matches!(&e, GoogleError::Unavailable { attempts: 4, .. }), "{e:?}");
    assert!(e.to_string().contains("GET /users answered 500"), "{e}");
}

#[tokio::test]
async fn a_bad_delegation_a_missing_scope_and_a_non_admin_are_configuration_errors_saying_what_to_fix() {
    let fake = company().await;
    let config = config(&fake, &["/"]);
    fake.with(|st| st.delegated = false);
    let e = read_snapshot(&client(&config), &config).await.unwrap_err();
    assert!(e.is_configuration(), "{e:?}");
    let text = e.to_string();
    assert!(
        text.contains("unauthorized_client") && text.contains(CLIENT_ID) && text.contains("domain-wide delegation"),
        "{text}"
    );
    assert!(text.contains("admin.directory.group.member.readonly"), "{text}");
    assert!(!text.contains("PRIVATE KEY") && !text.contains("ya29."), "{text}");

    fake.with(|st| {
        st.delegated = true;
        st.granted_scopes.pop();
    });
    let e = read_snapshot(&client(&config), &config).await.unwrap_err();
    assert!(e.is_configuration() && e.to_string().contains("access_denied"), "{e}");

    fake.with(|st| {
        st.granted_scopes = custodian_google::SCOPES.iter().map(|s| s.to_string()).collect();
        st.admins.clear();
    });
    let mut not_admin = config.clone();
    not_admin.admin_email = "user0@example.com".into();
    let e = read_snapshot(&client(&not_admin), &not_admin).await.unwrap_err();
    assert!(e.is_configuration(), "{e:?}");
    assert!(e.to_string().contains("user0@example.com must be a Workspace admin"), "{e}");

    let mut unknown = config.clone();
    unknown.admin_email = "nobody@example.com".into();
    let e = read_snapshot(&client(&unknown), &unknown).await.unwrap_err();
    assert!(e.to_string().contains("nobody@example.com is not a user of this Google Workspace"), "{e}");
}

#[tokio::test]
async fn an_assertion_signed_with_another_key_is_refused() {
    let fake = company().await;
    let other = FakeGoogle::start().await;
    let mut config = config(&fake, &["/"]);
    // The other fake's private key, presented under this fake's key id and token_uri.
    config.key.private_key = ServiceAccountKey::parse(&other.key_json()).unwrap().private_key;
    let e = read_snapshot(&client(&config), &config).await.unwrap_err();
    assert!(e.to_string().contains("signature"), "{e}");
    assert!(fake.with(|st| st.exchanges.is_empty()));
}
