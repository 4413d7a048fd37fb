//! Rendering `$FLEET_VAR_HOST_END_USER_IDP_*` for a host and for every host of a label:
//! hostile values escaped per format, missing values an error naming variable and host.

use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::support::{TestApp, assert_api_error};

const ENT: &str = "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User";

/// A user whose every value is hostile: `<`, `&`, both quotes and a newline.
fn hostile_user() -> Value {
    json!({
        "schemas": ["urn:ietf:params:scim:schemas:core:2.0:User", ENT],
        "userName": "o'neil&co@example.com",
        "name": {"givenName": "Ann <b>", "familyName": "\"O'Neil\"\nJr & Co"},
        "emails": [{"value": "o'neil&co@example.com", "primary": true}],
        "active": true,
        ENT: {"department": "R&D <'lab'>"}
    })
}

async fn render(app: &TestApp, host: i64, template: &str, format: &str) -> crate::support::Reply {
    app.api_post(&format!("/hosts/{host}/render"), json!({"template": template, "format": format})).await
}

#[tokio::test]
async fn renders_escape_hostile_values_for_each_format() {
    let app = TestApp::spawn().await;
    let user = app.create_user_with(hostile_user()).await;
    let uid = user["id"].as_str().unwrap();
    app.create_group_with("Eng & Ops", &[uid]).await;
    app.create_group_with("<Admins>", &[uid]).await;
    let host = app.enroll_host("mac-1", Some("o'neil&co@example.com")).await;

    let template = "u=$FLEET_VAR_HOST_END_USER_IDP_USERNAME l=${FLEET_VAR_HOST_END_USER_IDP_USERNAME_LOCAL_PART} \
                    g=$FLEET_VAR_HOST_END_USER_IDP_GROUPS d=${FLEET_VAR_HOST_END_USER_IDP_DEPARTMENT} \
                    n=$FLEET_VAR_HOST_END_USER_IDP_FULL_NAME $HOME";
    let r = render(&app, host, template, "text").await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    assert_eq!(r.body["host_id"], host);
    assert_eq!(
        r.body["rendered"],
        "u=o'neil&co@example.com l=o'neil&co g=<Admins>,Eng & Ops d=R&D <'lab'> n=Ann <b> \"O'Neil\"\nJr & Co $HOME"
    );

    let r = render(
        &app,
        host,
        "<string>$FLEET_VAR_HOST_END_USER_IDP_FULL_NAME</string><d>${FLEET_VAR_HOST_END_USER_IDP_DEPARTMENT}</d>",
        "xml",
    )
    .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    assert_eq!(
        r.body["rendered"],
        "<string>Ann &lt;b&gt; &quot;O&apos;Neil&quot;\nJr &amp; Co</string><d>R&amp;D &lt;&apos;lab&apos;&gt;</d>"
    );

    let r = render(
        &app,
        host,
        "user=$FLEET_VAR_HOST_END_USER_IDP_USERNAME\nname=${FLEET_VAR_HOST_END_USER_IDP_FULL_NAME}",
        "shell",
    )
    .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    assert_eq!(r.body["rendered"], "user='o'\\''neil&co@example.com'\nname='Ann <b> \"O'\\''Neil\"\nJr & Co'");
    // The shell form round-trips through a real shell unchanged.
    if let Ok(out) = std::process::Command::new("sh")
        .arg("-c")
        .arg(format!("printf %s {}", r.body["rendered"].as_str().unwrap().split("name=").nth(1).unwrap()))
        .output()
    {
        assert_eq!(String::from_utf8_lossy(&out.stdout), "Ann <b> \"O'Neil\"\nJr & Co");
    }
}

#[tokio::test]
async fn a_missing_value_is_an_error_naming_the_variable_and_the_host() {
    let app = TestApp::spawn().await;
    let lonely = app.enroll_host("mac-lonely", None).await;
    let r = render(&app, lonely, "<u>$FLEET_VAR_HOST_END_USER_IDP_USERNAME</u>", "xml").await;
    assert_api_error(&r, 422, "FLEET_VAR_HOST_END_USER_IDP_USERNAME");
    let reason = r.body["errors"][0]["reason"].as_str().unwrap();
    assert!(
        reason.starts_with(&format!("There is no IdP username for this host (id {lonely}, hostname mac-lonely.local)")),
        "{reason}"
    );

    app.create_user("plain@example.com").await;
    let plain = app.enroll_host("mac-plain", Some("plain@example.com")).await;
    let r = render(&app, plain, "${FLEET_VAR_HOST_END_USER_IDP_DEPARTMENT} $FLEET_VAR_HOST_END_USER_IDP_GROUPS $FLEET_VAR_HOST_END_USER_IDP_TYPO", "text").await;
    assert_api_error(&r, 422, "FLEET_VAR_HOST_END_USER_IDP_DEPARTMENT");
    assert_api_error(&r, 422, "FLEET_VAR_HOST_END_USER_IDP_GROUPS");
    assert_api_error(&r, 422, "FLEET_VAR_HOST_END_USER_IDP_TYPO");
    assert_eq!(
        r.body["errors"][0]["reason"],
        format!("There is no IdP department for this host (id {plain}, hostname mac-plain.local)")
    );

    let r = app.api_post(&format!("/hosts/{plain}/render"), json!({"template": "x", "format": "yaml"})).await;
    assert_api_error(&r, 422, "format");
    let r = app.api_post(&format!("/hosts/{plain}/render"), json!({"format": "xml"})).await;
    assert_api_error(&r, 422, "template");
    let r = app.api_post("/hosts/999999/render", json!({"template": "x"})).await;
    assert_eq!(r.status, StatusCode::NOT_FOUND, "{}", r.text);
}

#[tokio::test]
async fn a_label_render_lists_results_and_which_hosts_failed_and_why() {
    let app = TestApp::spawn().await;
    let mut with_dept = hostile_user();
    with_dept["userName"] = json!("a@example.com");
    with_dept["emails"] = json!([{"value": "a@example.com"}]);
    let a = app.create_user_with(with_dept).await["id"].as_str().unwrap().to_string();
    let b = app.create_user("b@example.com").await;
    let group = app.create_group_with("Wifi", &[&a, &b]).await;
    let h_a = app.enroll_host("mac-a", Some("a@example.com")).await;
    let h_b = app.enroll_host("mac-b", Some("b@example.com")).await;
    let r = app
        .api_post("/labels", json!({"name": "Wifi", "criteria": {"vital": "end_user_idp_group", "value": group}}))
        .await;
    let id = r.body["label"]["id"].as_i64().unwrap();

    let r = app
        .api_post(
            &format!("/labels/{id}/render"),
            json!({"template": "<d>$FLEET_VAR_HOST_END_USER_IDP_DEPARTMENT</d>", "format": "xml"}),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    assert_eq!(r.body["host_count"], 2);
    assert_eq!(r.body["results"], json!([{"host_id": h_a, "rendered": "<d>R&amp;D &lt;&apos;lab&apos;&gt;</d>"}]));
    assert_eq!(r.body["failures"][0]["host_id"], h_b);
    assert_eq!(r.body["failures"][0]["errors"][0]["name"], "FLEET_VAR_HOST_END_USER_IDP_DEPARTMENT");
    assert_eq!(
        r.body["failures"][0]["errors"][0]["reason"],
        format!("There is no IdP department for this host (id {h_b}, hostname mac-b.local)")
    );
}
