//! `custodian hosts import`: CSV and JSON files through the real binary, then the store
//! read directly to see what was written and who each host was linked to.

use std::fmt::Write as _;
use std::path::Path;
use std::process::Command;

use custodian_domain::StoreError;
use custodian_domain::hosts::{Actor, DeviceMapping, HostQuery, LinkState, MappingSource};
use custodian_scim::resource::parse_resource;
use custodian_scim::schema::ResourceKind;
use serde_json::json;

const BIN: &str = env!("CARGO_BIN_EXE_custodian");

struct Run {
    code: Option<i32>,
    stdout: String,
    stderr: String,
}

fn import(db: &str, file: &Path, extra: &[&str]) -> Run {
    let out = Command::new(BIN)
        .args(["hosts", "import"])
        .arg(file)
        .args(extra)
        .arg("--database")
        .arg(db)
        .env_remove("CUSTODIAN_DATABASE_URL")
        .output()
        .unwrap();
    Run {
        code: out.status.code(),
        stdout: String::from_utf8(out.stdout).unwrap(),
        stderr: String::from_utf8(out.stderr).unwrap(),
    }
}

fn m(email: &str, source: MappingSource) -> DeviceMapping {
    DeviceMapping { email: email.into(), source }
}

const SOURCES: &str = "mdm_idp_accounts, idp, custom or google_chrome_profiles";

#[tokio::test]
async fn csv_then_json_import_create_update_link_and_name_each_rejected_line() {
    let dir = tempfile::tempdir().unwrap();
    let db = format!("sqlite://{}/c.db", dir.path().display());
    let store = crate::support::open_store(&db).await;
    let scim = Actor { id: None, name: "test".into() };
    let jane = parse_resource(
        ResourceKind::User,
        &json!({"userName": "Jane.Doe@example.com", "name": {"givenName": "Jane", "familyName": "Doe"},
                "emails": [{"value": "jane@example.com", "primary": true}]}),
    )
    .unwrap();
    let jane =
        store.scim_create(custodian_domain::ConnectionId(1), ResourceKind::User, jane, &scim).await.unwrap().record;

    // 500 rows; line L holds host L - 2. Three are bad: no uuid (line 101), an unknown
    // source (line 201), a uuid already on line 2 (line 301).
    let mut csv = String::from(
        "uuid,hardware_serial,hostname,computer_name,platform,os_version,hardware_model,seen_time,\
         mdm_idp_accounts,idp,custom,google_chrome_profiles,email,source\n",
    );
    for i in 0..500 {
        let uuid = match i {
            99 => String::new(),
            299 => "UUID-0000".to_string(),
            _ => format!("UUID-{i:04}"),
        };
        let owner = if i == 0 { "JANE.DOE@example.com".to_string() } else { format!("user{i}@example.com") };
        let (email, source) = if i == 199 { ("x@example.com", "okta") } else { ("", "") };
        let platform = if i % 2 == 0 { "darwin" } else { "windows" };
        writeln!(
            csv,
            "{uuid},SER{i},host-{i},\"Computer {i}, Inc\",{platform},15.{i},Model {i},2026-01-02T03:04:05Z,\
             {owner},,c{i}@x.com; d{i}@x.com,,{email},{source}"
        )
        .unwrap();
    }
    let csv_file = dir.path().join("hosts.csv");
    std::fs::write(&csv_file, csv).unwrap();

    // The store stays open meanwhile, as a running server's would.
    let run = import(&db, &csv_file, &["--batch-size", "64"]);
    assert_eq!(run.code, Some(1), "some lines were rejected: {}{}", run.stdout, run.stderr);
    assert_eq!(
        run.stdout,
        format!(
            "created 497, updated 0, rejected 3\n\
             line 101: uuid: is required\n\
             line 201 (uuid UUID-0199): source: must be {SOURCES}\n\
             line 301 (uuid UUID-0000): uuid: already appears on line 2\n"
        )
    );
    assert!(run.stderr.contains("3 hosts were rejected"), "{}", run.stderr);
    assert!(!run.stderr.contains("hosts ["), "no progress bar when stderr is not a terminal: {}", run.stderr);

    // A JSON file: ten hosts updated (renamed, emails replaced), one created whose
    // enrollment account is one of Jane's emails.
    let mut hosts: Vec<_> = (1..=10)
        .map(|i| {
            json!({"uuid": format!("UUID-{i:04}"), "hostname": format!("renamed-{i}"), "platform": "darwin",
                   "device_mapping": [{"email": format!("new{i}@example.com"), "source": "mdm_idp_accounts"}]})
        })
        .collect();
    hosts.push(json!({"uuid": "UUID-9999", "hostname": "janes-second",
                      "device_mapping": [{"email": "jane@example.com", "source": "mdm_idp_accounts"}]}));
    let json_file = dir.path().join("update.json");
    std::fs::write(&json_file, serde_json::to_string_pretty(&json!({"hosts": hosts})).unwrap()).unwrap();
    let run = import(&db, &json_file, &[]);
    assert_eq!(run.code, Some(0), "{}{}", run.stdout, run.stderr);
    assert_eq!(run.stdout, "created 1, updated 10, rejected 0\n");

    // File-level errors import nothing and exit 2.
    let bad_header = dir.path().join("bad.csv");
    std::fs::write(&bad_header, "uuid,hostname,owner\nUUID-7777,h,someone\n").unwrap();
    let run = import(&db, &bad_header, &[]);
    assert_eq!(run.code, Some(2), "{}{}", run.stdout, run.stderr);
    assert!(run.stderr.contains("unknown columns: 'owner'"), "{}", run.stderr);
    assert_eq!(run.stdout, "");
    let not_json = dir.path().join("hosts.txt");
    std::fs::write(&not_json, "uuid\nUUID-7777\n").unwrap();
    let run = import(&db, &not_json, &["--format", "json"]);
    assert_eq!(run.code, Some(2), "{}{}", run.stdout, run.stderr);
    assert!(run.stderr.contains("not valid JSON"), "{}", run.stderr);
    let run = import(&db, &not_json, &[]);
    assert_eq!(run.code, Some(2));
    assert!(run.stderr.contains("--format"), "{}", run.stderr);
    let run = import(&db, &dir.path().join("missing.csv"), &[]);
    assert_eq!(run.code, Some(2));
    assert!(run.stderr.contains("missing.csv"), "{}", run.stderr);
    assert!(matches!(store.find_host("UUID-7777").await, Err(StoreError::NotFound)));

    // What the store holds.
    let all = HostQuery { per_page: 1000, ..HostQuery::default() };
    assert_eq!(store.count_hosts(&all).await.unwrap(), 498);
    assert_eq!(store.list_hosts(&all).await.unwrap().len(), 498);
    for rejected in ["host-99", "UUID-0199", "SER299"] {
        assert!(matches!(store.find_host(rejected).await, Err(StoreError::NotFound)), "{rejected} was imported");
    }

    let first = store.find_host("UUID-0000").await.unwrap();
    assert_eq!(
        (first.hardware_serial.as_str(), first.hostname.as_str(), first.computer_name.as_str()),
        ("SER0", "host-0", "Computer 0, Inc")
    );
    assert_eq!((first.platform.as_str(), first.os_version.as_str()), ("darwin", "15.0"));
    assert_eq!(first.seen_time.map(|t| t.to_rfc3339()), Some("2026-01-02T03:04:05+00:00".into()));
    assert_eq!(first.mappings.len(), 3, "{:?}", first.mappings);
    for expected in [
        m("JANE.DOE@example.com", MappingSource::MdmIdpAccounts),
        m("c0@x.com", MappingSource::Custom),
        m("d0@x.com", MappingSource::Custom),
    ] {
        assert!(first.mappings.contains(&expected), "{expected:?} in {:?}", first.mappings);
    }
    assert_eq!(first.link_state, LinkState::Linked);
    let end_user = first.end_user.as_ref().expect("UUID-0000 is linked to Jane by userName");
    assert_eq!(end_user.idp_id, jane.id);
    assert_eq!(end_user.idp_username, "Jane.Doe@example.com");

    let other = store.find_host("UUID-0042").await.unwrap();
    assert_eq!(other.link_state, LinkState::Unlinked, "no SCIM user has user42@example.com");
    assert!(other.end_user.is_none());
    assert_eq!(other.platform, "darwin");

    let updated = store.find_host("UUID-0005").await.unwrap();
    assert_eq!(updated.hostname, "renamed-5");
    assert_eq!(updated.mappings, vec![m("new5@example.com", MappingSource::MdmIdpAccounts)]);
    assert!(updated.updated_at >= updated.created_at);

    let second = store.find_host("janes-second").await.unwrap();
    assert_eq!(second.uuid, "UUID-9999");
    assert_eq!(second.end_user.map(|u| u.idp_id), Some(jane.id.clone()), "linked by Jane's email");
}

#[tokio::test]
async fn json_lines_import_names_a_malformed_line_and_imports_the_rest() {
    let dir = tempfile::tempdir().unwrap();
    let db = format!("sqlite://{}/c.db", dir.path().display());
    let file = dir.path().join("hosts.jsonl");
    std::fs::write(
        &file,
        "{\"uuid\": \"a\", \"hostname\": \"ha\"}\n{\"uuid\": \"b\",\n{\"uuid\": \"c\", \"seen_time\": 3}\n\
         {\"uuid\": \"d\", \"device_mapping\": [{\"email\": \"d@x.com\", \"source\": \"custom\"}]}\n",
    )
    .unwrap();
    // `hosts import` never creates a database: it is made (and migrated) first.
    let store = crate::support::open_store(&db).await;
    let run = import(&db, &file, &[]);
    assert_eq!(run.code, Some(1), "{}{}", run.stdout, run.stderr);
    let lines: Vec<&str> = run.stdout.lines().collect();
    assert_eq!(lines.len(), 3, "{}", run.stdout);
    assert_eq!(lines[0], "created 2, updated 0, rejected 2");
    assert!(lines[1].starts_with("line 2: json: not valid JSON"), "{}", lines[1]);
    assert_eq!(lines[2], "line 3 (uuid c): seen_time: must be an RFC 3339 date-time string");

    assert_eq!(store.find_host("a").await.unwrap().hostname, "ha");
    assert_eq!(store.find_host("d").await.unwrap().mappings, vec![m("d@x.com", MappingSource::Custom)]);
    assert!(matches!(store.find_host("c").await, Err(StoreError::NotFound)));
}
