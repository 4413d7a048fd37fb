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

/// A user with every attribute the new variables read, hostile where text can be.
fn full_user(user_name: &str, manager: Option<&str>) -> Value {
    let mut enterprise = json!({
        "employeeNumber": "E-<7>", "costCenter": "CC & 1", "division": "Cloud's", "organization": "Acme \"EU\"",
        "department": "R&D"
    });
    match manager {
        Some(id) => enterprise["manager"] = json!({"value": id, "displayName": "Bea (as sent)"}),
        None => enterprise["manager"] = json!({"value": "not-a-known-id", "displayName": "Bea <Boss>"}),
    }
    json!({
        "schemas": ["urn:ietf:params:scim:schemas:core:2.0:User", ENT, ACME],
        "userName": user_name,
        "name": {"givenName": "Ann & Co", "familyName": "O'Neil"},
        "title": "Lead <Eng>",
        "emails": [{"value": "home@example.com", "type": "home"}, {"value": "ann'work@example.com", "type": "work", "primary": true}],
        "addresses": [{"type": "work", "locality": "Köln & Bonn", "country": "DE"}, {"type": "home", "locality": "Lyon"}],
        ENT: enterprise,
        ACME: {"badge": "B<42>", "teams": ["red", "blue"]}
    })
}

const ACME: &str = "urn:ietf:params:scim:schemas:extension:acme:2.0:User";

const EVERY_NEW_VARIABLE: &str = "$FLEET_VAR_HOST_HARDWARE_SERIAL|$FLEET_VAR_HOST_UUID|${FLEET_VAR_HOST_PLATFORM}|\
    $FLEET_VAR_HOST_END_USER_EMAIL_IDP|$FLEET_VAR_HOST_END_USER_IDP_EMAIL|$FLEET_VAR_HOST_END_USER_IDP_GIVEN_NAME|\
    $FLEET_VAR_HOST_END_USER_IDP_FAMILY_NAME|$FLEET_VAR_HOST_END_USER_IDP_TITLE|\
    $FLEET_VAR_HOST_END_USER_IDP_EMPLOYEE_NUMBER|$FLEET_VAR_HOST_END_USER_IDP_COST_CENTER|\
    $FLEET_VAR_HOST_END_USER_IDP_DIVISION|$FLEET_VAR_HOST_END_USER_IDP_ORGANIZATION|\
    $FLEET_VAR_HOST_END_USER_IDP_MANAGER|\
    ${CUSTODIAN_IDP_ATTRIBUTE:addresses[type eq \"work\"].locality}|\
    ${CUSTODIAN_IDP_ATTRIBUTE:urn:ietf:params:scim:schemas:extension:acme:2.0:User:badge}|\
    ${CUSTODIAN_IDP_ATTRIBUTE:urn:ietf:params:scim:schemas:extension:acme:2.0:User:teams}";

#[tokio::test]
async fn every_new_variable_renders_escaped_per_format() {
    let app = TestApp::spawn().await;
    app.create_user_with(full_user("ann@example.com", None)).await;
    let host = app.enroll_host("mac-ann", Some("ann@example.com")).await;

    let values = [
        "SER-mac-ann",
        "mac-ann",
        "darwin",
        "ann@example.com",
        "ann'work@example.com",
        "Ann & Co",
        "O'Neil",
        "Lead <Eng>",
        "E-<7>",
        "CC & 1",
        "Cloud's",
        "Acme \"EU\"",
        // Not a known user: the name the IdP sent.
        "Bea <Boss>",
        "Köln & Bonn",
        "B<42>",
        // Several values: sorted, joined with commas.
        "blue,red",
    ];
    for format in ["text", "xml", "shell"] {
        let r = render(&app, host, EVERY_NEW_VARIABLE, format).await;
        assert_eq!(r.status, StatusCode::OK, "{format}: {}", r.text);
        let escape = |v: &str| match format {
            "text" => v.to_string(),
            "xml" => v
                .replace('&', "&amp;")
                .replace('<', "&lt;")
                .replace('>', "&gt;")
                .replace('"', "&quot;")
                .replace('\'', "&apos;"),
            _ => format!("'{}'", v.replace('\'', "'\\''")),
        };
        let expected: Vec<String> = values.iter().map(|v| escape(v)).collect();
        assert_eq!(r.body["rendered"], expected.join("|"), "{format}");
    }

    // The manager is not a known user, so it has no email: an error naming it.
    let r = render(&app, host, "$FLEET_VAR_HOST_END_USER_IDP_MANAGER_EMAIL", "text").await;
    assert_api_error(&r, 422, "FLEET_VAR_HOST_END_USER_IDP_MANAGER_EMAIL");
    // A missing attribute, a complex one and a bad path each name their reference.
    let r = render(
        &app,
        host,
        "${CUSTODIAN_IDP_ATTRIBUTE:nickName} ${CUSTODIAN_IDP_ATTRIBUTE:addresses} ${CUSTODIAN_IDP_ATTRIBUTE:emails[}",
        "text",
    )
    .await;
    assert_api_error(&r, 422, "CUSTODIAN_IDP_ATTRIBUTE:nickName");
    assert_api_error(&r, 422, "CUSTODIAN_IDP_ATTRIBUTE:addresses");
    assert_api_error(&r, 422, "CUSTODIAN_IDP_ATTRIBUTE:emails[");
    assert_eq!(
        r.body["errors"][0]["reason"],
        format!("There is no IdP attribute 'nickName' for this host (id {host}, hostname mac-ann.local)")
    );

    // A host without an end user still renders its own variables, and names the others.
    let lonely = app.enroll_host("mac-lonely", None).await;
    let r = render(&app, lonely, "$FLEET_VAR_HOST_UUID $FLEET_VAR_HOST_PLATFORM", "text").await;
    assert_eq!(r.body["rendered"], "mac-lonely darwin", "{}", r.text);
    let r = render(&app, lonely, "$FLEET_VAR_HOST_END_USER_IDP_TITLE ${CUSTODIAN_IDP_ATTRIBUTE:title}", "text").await;
    assert_api_error(&r, 422, "FLEET_VAR_HOST_END_USER_IDP_TITLE");
    assert_api_error(&r, 422, "CUSTODIAN_IDP_ATTRIBUTE:title");
}

#[tokio::test]
async fn manager_resolves_the_managers_user_and_follows_it() {
    let app = TestApp::spawn().await;
    let mut bea = crate::support::okta_user("bea@example.com", "Bea", "Boss");
    bea["emails"] = json!([{"value": "bea.private@example.com"}, {"value": "bea@corp.example.com", "primary": true}]);
    let bea = app.create_user_with(bea).await["id"].as_str().unwrap().to_string();
    app.create_user_with(full_user("ann@example.com", Some(&bea))).await;
    let host = app.enroll_host("mac-ann", Some("ann@example.com")).await;

    let template = "$FLEET_VAR_HOST_END_USER_IDP_MANAGER <$FLEET_VAR_HOST_END_USER_IDP_MANAGER_EMAIL>";
    let r = render(&app, host, template, "text").await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    // The known user's userName and primary email, not the displayName the IdP sent.
    assert_eq!(r.body["rendered"], "bea@example.com <bea@corp.example.com>");

    // The manager renamed in the IdP: the next render follows.
    let r = app
        .patch(
            &format!("/Users/{bea}"),
            json!({"schemas": ["urn:ietf:params:scim:api:messages:2.0:PatchOp"],
                   "Operations": [{"op": "replace", "path": "userName", "value": "bea.boss@example.com"}]}),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    let r = render(&app, host, template, "text").await;
    assert_eq!(r.body["rendered"], "bea.boss@example.com <bea@corp.example.com>", "{}", r.text);

    // The manager deleted: the name the IdP sent, and no email.
    assert_eq!(app.delete(&format!("/Users/{bea}")).await.status, StatusCode::NO_CONTENT);
    let r = render(&app, host, "$FLEET_VAR_HOST_END_USER_IDP_MANAGER", "text").await;
    assert_eq!(r.body["rendered"], "Bea (as sent)", "{}", r.text);
    let r = render(&app, host, template, "text").await;
    assert_api_error(&r, 422, "FLEET_VAR_HOST_END_USER_IDP_MANAGER_EMAIL");

    // Label render reads the same attributes for every host of the label.
    let r = app
        .api_post("/labels", json!({"name": "R&D", "criteria": {"vital": "end_user_idp_department", "value": "R&D"}}))
        .await;
    let label = r.body["label"]["id"].as_i64().unwrap();
    let r = app
        .api_post(
            &format!("/labels/{label}/render"),
            json!({"template": "${CUSTODIAN_IDP_ATTRIBUTE:urn:ietf:params:scim:schemas:extension:acme:2.0:User:badge}", "format": "xml"}),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    assert_eq!(r.body["results"], json!([{"host_id": host, "rendered": "B&lt;42&gt;"}]));
}
