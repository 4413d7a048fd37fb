//! What Microsoft Entra ID sends (idp-requests.md, "Microsoft Entra ID"), with and
//! without the `aadOptscim062020` flag.

use serde_json::{Value, json};

use crate::support::{TestApp, filter_q, resource_ids, sorted};

const CORE: &str = "urn:ietf:params:scim:schemas:core:2.0:User";
const ENT: &str = "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User";
const GROUP: &str = "urn:ietf:params:scim:schemas:core:2.0:Group";
const MS_GROUP: &str = "http://schemas.microsoft.com/2006/11/ResourceManagement/ADSCIM/2.0/Group";
const PATCH_OP: &str = "urn:ietf:params:scim:api:messages:2.0:PatchOp";

fn patch(ops: Value) -> Value {
    json!({"schemas": [PATCH_OP], "Operations": ops})
}

/// The body Entra sends to create a user.
fn entra_user(user_name: &str, external_id: &str, email: &str, manager: Option<&str>) -> Value {
    let mut ent = json!({"department": "Sales", "employeeNumber": "4711"});
    if let Some(m) = manager {
        ent["manager"] = json!({"value": m});
    }
    json!({
        "schemas": [CORE, ENT],
        "externalId": external_id,
        "userName": user_name,
        "active": true,
        "emails": [{"primary": true, "type": "work", "value": email}],
        "meta": {"resourceType": "User"},
        "name": {"formatted": "Jane Doe", "familyName": "Doe", "givenName": "Jane"},
        "roles": [],
        ENT: ent
    })
}

async fn create_entra(app: &TestApp, user_name: &str, external_id: &str, email: &str) -> String {
    let r = app.post("/Users", entra_user(user_name, external_id, email, None)).await;
    assert_eq!(r.status, 201, "{}", r.text);
    r.body["id"].as_str().unwrap().to_string()
}

async fn count(app: &TestApp, endpoint: &str, filter: &str) -> Vec<String> {
    resource_ids(&app.list(&format!("{endpoint}?{}", filter_q(filter))).await.body)
}

#[tokio::test]
async fn test_connection_lookup_of_random_guid_on_external_id_is_empty() {
    let app = TestApp::spawn().await;
    create_entra(&app, "jane@contoso.com", "e-1", "jane@contoso.com").await;
    let r = app.list(&format!("/Users?{}", filter_q(r#"externalId eq "3b2e2b1f-9c5b-4b7a-a1f2-0f5a2f6c7d8e""#))).await;
    assert_eq!(r.body["totalResults"], 0);
    assert_eq!(r.body["Resources"], json!([]));
    let r =
        app.list(&format!("/Groups?{}", filter_q(r#"displayName eq "3b2e2b1f-9c5b-4b7a-a1f2-0f5a2f6c7d8e""#))).await;
    assert_eq!(r.body["totalResults"], 0);
}

#[tokio::test]
async fn create_with_core_and_enterprise_schemas_keeps_the_enterprise_attributes() {
    let app = TestApp::spawn().await;
    let boss = create_entra(&app, "boss@contoso.com", "e-0", "boss@contoso.com").await;
    let r = app.post("/Users", entra_user("Jane@contoso.com", "e-1", "jane@contoso.com", Some(&boss))).await;
    assert_eq!(r.status, 201, "{}", r.text);
    let u = &r.body;
    let id = u["id"].as_str().unwrap();
    assert_eq!(u["schemas"], json!([CORE, ENT]));
    assert_eq!(u["userName"], "Jane@contoso.com");
    assert_eq!(u["externalId"], "e-1");
    assert_eq!(u["active"], true);
    assert_eq!(u["name"], json!({"formatted": "Jane Doe", "familyName": "Doe", "givenName": "Jane"}));
    assert_eq!(u[ENT]["department"], "Sales");
    assert_eq!(u[ENT]["employeeNumber"], "4711");
    assert_eq!(u[ENT]["manager"]["value"], boss.as_str());
    assert!(u.get("roles").is_none_or(|r| r == &json!([])), "{}", r.text);
    // The client's meta is not taken: the server's is returned.
    assert_eq!(u["meta"]["resourceType"], "User");
    assert!(u["meta"]["location"].as_str().unwrap().ends_with(&format!("/Users/{id}")));
    let g = app.get(&format!("/Users/{id}")).await;
    assert_eq!(g.body, r.body);
}

#[tokio::test]
async fn lookups_by_username_externalid_and_work_email_ignore_case_except_externalid() {
    let app = TestApp::spawn().await;
    let id = create_entra(&app, "Jane@Contoso.com", "AbC-123", "Jane.Doe@Contoso.com").await;
    create_entra(&app, "john@contoso.com", "abc-999", "john@contoso.com").await;

    assert_eq!(count(&app, "/Users", r#"userName eq "jane@contoso.com""#).await, vec![id.clone()]);
    assert_eq!(count(&app, "/Users", r#"userName eq "JANE@CONTOSO.COM""#).await, vec![id.clone()]);
    assert_eq!(count(&app, "/Users", r#"externalId eq "AbC-123""#).await, vec![id.clone()]);
    assert!(
        count(&app, "/Users", r#"externalId eq "abc-123""#).await.is_empty(),
        "externalId is caseExact (RFC 7643 §3.1): another case must not match"
    );
    assert_eq!(
        count(&app, "/Users", r#"emails[type eq "work"].value eq "jane.doe@contoso.com""#).await,
        vec![id.clone()]
    );
    assert_eq!(
        count(&app, "/Users", r#"emails[type eq "Work"].value eq "JANE.DOE@CONTOSO.COM""#).await,
        vec![id.clone()]
    );
    assert!(count(&app, "/Users", r#"emails[type eq "home"].value eq "jane.doe@contoso.com""#).await.is_empty());
}

#[tokio::test]
async fn capitalised_replace_of_work_email_value_changes_only_the_work_email() {
    let app = TestApp::spawn().await;
    let mut body = entra_user("jane@contoso.com", "e-1", "jane@contoso.com", None);
    body["emails"] = json!([
        {"primary": true, "type": "work", "value": "jane@contoso.com"},
        {"type": "home", "value": "jane@home.example"}
    ]);
    let id = app.create_user_with(body).await["id"].as_str().unwrap().to_string();
    let r = app
        .patch(
            &format!("/Users/{id}"),
            patch(
                json!([{"op": "Replace", "path": "emails[type eq \"work\"].value", "value": "jane.doe@contoso.com"}]),
            ),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
    let g = app.get(&format!("/Users/{id}")).await.body;
    assert_eq!(
        g["emails"],
        json!([
            {"primary": true, "type": "work", "value": "jane.doe@contoso.com"},
            {"type": "home", "value": "jane@home.example"}
        ])
    );
    assert_eq!(
        count(&app, "/Users", r#"emails[type eq "work"].value eq "Jane.Doe@contoso.com""#).await,
        vec![id.clone()]
    );
    assert!(count(&app, "/Users", r#"emails.value eq "jane@contoso.com""#).await.is_empty());
}

#[tokio::test]
async fn replace_active_with_string_false_deactivates_and_user_is_still_returned() {
    let app = TestApp::spawn().await;
    let id = create_entra(&app, "jane@contoso.com", "e-1", "jane@contoso.com").await;
    let r =
        app.patch(&format!("/Users/{id}"), patch(json!([{"op": "Replace", "path": "active", "value": "False"}]))).await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(r.body["active"], json!(false), "stored as a boolean");
    let g = app.get(&format!("/Users/{id}")).await;
    assert_eq!(g.status, 200);
    assert_eq!(g.body["active"], json!(false));
    assert_eq!(count(&app, "/Users", r#"userName eq "jane@contoso.com""#).await, vec![id.clone()]);
    assert_eq!(count(&app, "/Users", r#"externalId eq "e-1""#).await, vec![id.clone()]);
    assert_eq!(count(&app, "/Users", r#"active eq "False""#).await, vec![id.clone()]);
    assert_eq!(app.list("/Users").await.body["totalResults"], 1);

    let r =
        app.patch(&format!("/Users/{id}"), patch(json!([{"op": "Replace", "path": "active", "value": "True"}]))).await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(app.get(&format!("/Users/{id}")).await.body["active"], json!(true));
}

#[tokio::test]
async fn add_enterprise_department_by_urn_path() {
    let app = TestApp::spawn().await;
    let id = app.create_user("jane@contoso.com").await;
    let r = app
        .patch(
            &format!("/Users/{id}"),
            patch(json!([{"op": "Add", "path": format!("{ENT}:department"), "value": "Engineering"}])),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
    let g = app.get(&format!("/Users/{id}")).await.body;
    assert_eq!(g[ENT], json!({"department": "Engineering"}));
    assert!(g["schemas"].as_array().unwrap().contains(&json!(ENT)), "{g}");
    assert_eq!(count(&app, "/Users", &format!(r#"{ENT}:department eq "engineering""#)).await, vec![id]);
}

#[tokio::test]
async fn add_manager_as_list_then_remove_it_with_empty_value() {
    let app = TestApp::spawn().await;
    let boss = create_entra(&app, "boss@contoso.com", "e-0", "boss@contoso.com").await;
    let id = create_entra(&app, "jane@contoso.com", "e-1", "jane@contoso.com").await;
    let r = app
        .patch(
            &format!("/Users/{id}"),
            patch(json!([{"op": "Add", "path": "manager", "value": [{"$ref": format!("../Users/{boss}"), "value": boss}]}])),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
    let g = app.get(&format!("/Users/{id}")).await.body;
    assert_eq!(g[ENT]["manager"]["value"], boss.as_str());
    assert_eq!(g[ENT]["department"], "Sales", "other enterprise attributes are kept");

    let r = app
        .patch(
            &format!("/Users/{id}"),
            patch(json!([{"op": "Replace", "path": format!("{ENT}:manager"), "value": {"value": ""}}])),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
    let g = app.get(&format!("/Users/{id}")).await.body;
    assert!(g[ENT].get("manager").is_none(), "the manager is removed: {g}");
    assert_eq!(g[ENT]["department"], "Sales");
}

#[tokio::test]
async fn manager_check_filter_on_id_and_manager() {
    let app = TestApp::spawn().await;
    let boss = create_entra(&app, "boss@contoso.com", "e-0", "boss@contoso.com").await;
    let other = create_entra(&app, "other@contoso.com", "e-2", "other@contoso.com").await;
    let r = app.post("/Users", entra_user("jane@contoso.com", "e-1", "jane@contoso.com", Some(&boss))).await;
    assert_eq!(r.status, 201, "{}", r.text);
    let id = r.body["id"].as_str().unwrap().to_string();
    assert_eq!(count(&app, "/Users", &format!(r#"id eq "{id}" and manager eq "{boss}""#)).await, vec![id.clone()]);
    assert!(count(&app, "/Users", &format!(r#"id eq "{id}" and manager eq "{other}""#)).await.is_empty());
    // The URN-qualified form means the same.
    assert_eq!(count(&app, "/Users", &format!(r#"id eq "{id}" and {ENT}:manager.value eq "{boss}""#)).await, vec![id]);
}

#[tokio::test]
async fn add_home_email_value_twice_in_one_request_creates_exactly_one_home_email() {
    let app = TestApp::spawn().await;
    let id = create_entra(&app, "jane@contoso.com", "e-1", "jane@contoso.com").await;
    let r = app
        .patch(
            &format!("/Users/{id}"),
            patch(json!([
                {"op": "Add", "path": "emails[type eq \"home\"].value", "value": "jane@home.example"},
                {"op": "Add", "path": "emails[type eq \"home\"].value", "value": "jane@home.example"}
            ])),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
    let g = app.get(&format!("/Users/{id}")).await.body;
    let homes: Vec<&Value> = g["emails"].as_array().unwrap().iter().filter(|e| e["type"] == "home").collect();
    assert_eq!(homes.len(), 1, "{g}");
    assert_eq!(homes[0]["value"], "jane@home.example");
    assert_eq!(g["emails"].as_array().unwrap().len(), 2, "{g}");
    // And again in a later request: still one.
    let r = app
        .patch(
            &format!("/Users/{id}"),
            patch(json!([{"op": "Add", "path": "emails[type eq \"home\"].value", "value": "jane2@home.example"}])),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
    let g = app.get(&format!("/Users/{id}")).await.body;
    let homes: Vec<&Value> = g["emails"].as_array().unwrap().iter().filter(|e| e["type"] == "home").collect();
    assert_eq!(homes.len(), 1, "{g}");
    assert_eq!(homes[0]["value"], "jane2@home.example");
}

#[tokio::test]
async fn with_flag_pathless_replace_applies_dotted_and_urn_keys() {
    let app = TestApp::spawn().await;
    let id = create_entra(&app, "jane@contoso.com", "e-1", "jane@contoso.com").await;
    let r = app
        .patch(
            &format!("/Users/{id}"),
            patch(json!([{"op": "replace", "value": {
                "displayName": "Janet Smith",
                "name.givenName": "Janet",
                "name.familyName": "Smith",
                format!("{ENT}:employeeNumber"): "9000",
                "active": false
            }}])),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
    let g = app.get(&format!("/Users/{id}")).await.body;
    assert_eq!(g["displayName"], "Janet Smith");
    assert_eq!(g["name"]["givenName"], "Janet");
    assert_eq!(g["name"]["familyName"], "Smith");
    assert_eq!(g["name"]["formatted"], "Jane Doe", "sub-attributes not named are kept");
    assert_eq!(g[ENT]["employeeNumber"], "9000");
    assert_eq!(g[ENT]["department"], "Sales");
    assert_eq!(g["active"], false);
    assert!(g.get("name.givenName").is_none() && g.get(format!("{ENT}:employeeNumber").as_str()).is_none(), "{g}");
}

#[tokio::test]
async fn group_with_microsoft_schema_uri_and_external_id_is_created() {
    let app = TestApp::spawn().await;
    let r = app
        .post("/Groups", json!({"schemas": [GROUP, MS_GROUP], "externalId": "8aa1a0c0-c4c3-4bc0-b4a5-2ef676900159", "displayName": "Sales"}))
        .await;
    assert_eq!(r.status, 201, "{}", r.text);
    let id = r.body["id"].as_str().unwrap().to_string();
    assert_eq!(r.body["schemas"], json!([GROUP]));
    assert_eq!(r.body["externalId"], "8aa1a0c0-c4c3-4bc0-b4a5-2ef676900159");
    assert_eq!(r.body["displayName"], "Sales");
    assert_eq!(count(&app, "/Groups", r#"externalId eq "8aa1a0c0-c4c3-4bc0-b4a5-2ef676900159""#).await, vec![id]);
}

#[tokio::test]
async fn group_reads_excluding_members_have_no_members_key() {
    let app = TestApp::spawn().await;
    let u = app.create_user("jane@contoso.com").await;
    let gid = app.create_group_with("Sales", &[&u]).await;
    let r = app.get(&format!("/Groups/{gid}?excludedAttributes=members")).await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert!(r.body.get("members").is_none(), "{}", r.text);
    assert_eq!(r.body["displayName"], "Sales");
    assert_eq!(r.body["id"], gid.as_str());

    let r = app.list(&format!("/Groups?excludedAttributes=members&{}", filter_q(r#"displayName eq "Sales""#))).await;
    assert_eq!(resource_ids(&r.body), vec![gid.clone()]);
    assert!(r.body["Resources"][0].get("members").is_none(), "{}", r.text);
    assert_eq!(r.body["Resources"][0]["displayName"], "Sales");
    // Without the parameter the members are there.
    assert_eq!(app.member_ids(&gid).await, vec![u]);
}

#[tokio::test]
async fn add_members_with_null_ref_adds_them() {
    let app = TestApp::spawn().await;
    let a = app.create_user("a@contoso.com").await;
    let b = app.create_user("b@contoso.com").await;
    let gid = app.create_group("Sales").await;
    let r = app
        .patch(
            &format!("/Groups/{gid}"),
            patch(json!([{"op": "Add", "path": "members", "value": [{"$ref": null, "value": a}, {"$ref": null, "value": b}]}])),
        )
        .await;
    assert_eq!(r.status, 204, "{}", r.text);
    assert_eq!(app.member_ids(&gid).await, sorted(&[&a, &b]));
    let user = app.get(&format!("/Users/{a}")).await.body;
    assert_eq!(user["groups"][0]["value"], gid.as_str());
    assert_eq!(user["groups"][0]["display"], "Sales");
}

#[tokio::test]
async fn remove_members_with_value_list_removes_only_those() {
    let app = TestApp::spawn().await;
    let a = app.create_user("a@contoso.com").await;
    let b = app.create_user("b@contoso.com").await;
    let c = app.create_user("c@contoso.com").await;
    let gid = app.create_group_with("Sales", &[&a, &b, &c]).await;
    let r = app
        .patch(
            &format!("/Groups/{gid}"),
            patch(json!([{"op": "Remove", "path": "members", "value": [{"$ref": null, "value": a}]}])),
        )
        .await;
    assert_eq!(r.status, 204, "{}", r.text);
    assert_eq!(app.member_ids(&gid).await, sorted(&[&b, &c]), "only the listed member goes");
    // The flag's form too.
    let r = app
        .patch(
            &format!("/Groups/{gid}"),
            patch(json!([{"op": "remove", "path": format!("members[value eq \"{b}\"]")}])),
        )
        .await;
    assert_eq!(r.status, 204, "{}", r.text);
    assert_eq!(app.member_ids(&gid).await, vec![c]);
}

#[tokio::test]
async fn membership_check_filter_on_group_id_and_member() {
    let app = TestApp::spawn().await;
    let a = app.create_user("a@contoso.com").await;
    let b = app.create_user("b@contoso.com").await;
    let gid = app.create_group_with("Sales", &[&a]).await;
    app.create_group_with("Other", &[&a, &b]).await;
    let r = app
        .list(&format!(
            "/Groups?excludedAttributes=members&{}",
            filter_q(&format!(r#"id eq "{gid}" and members eq "{a}""#))
        ))
        .await;
    assert_eq!(r.body["totalResults"], 1, "{}", r.text);
    assert_eq!(resource_ids(&r.body), vec![gid.clone()]);
    let r = app
        .list(&format!(
            "/Groups?excludedAttributes=members&{}",
            filter_q(&format!(r#"id eq "{gid}" and members eq "{b}""#))
        ))
        .await;
    assert_eq!(r.body["totalResults"], 0, "{}", r.text);
    assert_eq!(r.body["Resources"], json!([]));
}

#[tokio::test]
async fn empty_operations_patch_is_200_and_changes_nothing() {
    let app = TestApp::spawn().await;
    let id = app.create_user("jane@contoso.com").await;
    let before = app.get(&format!("/Users/{id}")).await.body;
    let r = app.patch(&format!("/Users/{id}"), patch(json!([]))).await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(r.body["id"], id.as_str());
    assert_eq!(app.get(&format!("/Users/{id}")).await.body, before);
    let gid = app.create_group("Sales").await;
    let before = app.get(&format!("/Groups/{gid}")).await;
    let r = app.patch(&format!("/Groups/{gid}"), patch(json!([]))).await;
    assert_eq!(r.status, 204, "{}", r.text);
    assert_eq!(app.get(&format!("/Groups/{gid}")).await.body, before.body, "an empty PATCH changes nothing");
}

#[tokio::test]
async fn duplicate_user_and_duplicate_group_are_409_uniqueness() {
    let app = TestApp::spawn().await;
    create_entra(&app, "jane@contoso.com", "e-1", "jane@contoso.com").await;
    let r = app.post("/Users", entra_user("jane@contoso.com", "e-1", "jane@contoso.com", None)).await;
    r.assert_scim_error(409, Some("uniqueness"));
    app.create_group("Sales").await;
    let r =
        app.post("/Groups", json!({"schemas": [GROUP, MS_GROUP], "externalId": "g-2", "displayName": "Sales"})).await;
    r.assert_scim_error(409, Some("uniqueness"));
    let r = app.post("/Groups", json!({"schemas": [GROUP], "displayName": "SALES"})).await;
    r.assert_scim_error(409, Some("uniqueness"));
    assert_eq!(app.list("/Groups").await.body["totalResults"], 1);
}

#[tokio::test]
async fn delete_of_absent_user_or_group_is_404() {
    let app = TestApp::spawn().await;
    app.delete("/Users/4c6a2a7e-0000-4000-8000-000000000000").await.assert_scim_error(404, None);
    app.delete("/Groups/4c6a2a7e-0000-4000-8000-000000000000").await.assert_scim_error(404, None);
    // A user id is not a group id.
    let u = app.create_user("jane@contoso.com").await;
    app.delete(&format!("/Groups/{u}")).await.assert_scim_error(404, None);
    assert_eq!(app.get(&format!("/Users/{u}")).await.status, 200);
}

#[tokio::test]
async fn deleted_user_is_gone_and_no_longer_listed_in_its_groups() {
    let app = TestApp::spawn().await;
    let a = app.create_user("a@contoso.com").await;
    let b = app.create_user("b@contoso.com").await;
    let g1 = app.create_group_with("Sales", &[&a, &b]).await;
    let g2 = app.create_group_with("Ops", &[&a]).await;
    let r = app.delete(&format!("/Users/{a}")).await;
    assert_eq!(r.status, 204, "{}", r.text);
    app.get(&format!("/Users/{a}")).await.assert_scim_error(404, None);
    assert_eq!(app.member_ids(&g1).await, vec![b.clone()]);
    assert!(app.member_ids(&g2).await.is_empty());
    assert!(count(&app, "/Groups", &format!(r#"members eq "{a}""#)).await.is_empty());
    assert!(count(&app, "/Users", r#"userName eq "a@contoso.com""#).await.is_empty());
}

#[tokio::test]
async fn several_operations_on_the_same_attribute_apply_in_order() {
    let app = TestApp::spawn().await;
    let id = create_entra(&app, "jane@contoso.com", "e-1", "jane@contoso.com").await;
    let r = app
        .patch(
            &format!("/Users/{id}"),
            patch(json!([
                {"op": "Replace", "path": "displayName", "value": "First"},
                {"op": "Replace", "path": "displayName", "value": "Second"},
                {"op": "Add", "path": format!("{ENT}:department"), "value": "R&D"},
                {"op": "Remove", "path": format!("{ENT}:department")},
                {"op": "Add", "path": format!("{ENT}:department"), "value": "Legal"},
                {"op": "Replace", "path": "name.givenName", "value": "A"},
                {"op": "Replace", "path": "name.givenName", "value": "B"},
                {"op": "Add", "path": "phoneNumbers[type eq \"mobile\"].value", "value": "+1 555 0100"},
                {"op": "Replace", "path": "phoneNumbers[type eq \"mobile\"].value", "value": "+1 555 0199"}
            ])),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
    let g = app.get(&format!("/Users/{id}")).await.body;
    assert_eq!(g["displayName"], "Second");
    assert_eq!(g[ENT]["department"], "Legal");
    assert_eq!(g["name"]["givenName"], "B");
    assert_eq!(g["phoneNumbers"], json!([{"type": "mobile", "value": "+1 555 0199"}]));
    assert_eq!(g, r.body);
}

#[tokio::test]
async fn filter_with_boolean_as_string_on_roles_primary() {
    let app = TestApp::spawn().await;
    let mut body = entra_user("a@contoso.com", "e-1", "a@contoso.com", None);
    body["roles"] = json!([{"value": "admin", "primary": true, "type": "WindowsAzureActiveDirectoryRole"}]);
    let a = app.create_user_with(body).await["id"].as_str().unwrap().to_string();
    let mut body = entra_user("b@contoso.com", "e-2", "b@contoso.com", None);
    body["roles"] = json!([{"value": "reader", "primary": false}]);
    let b = app.create_user_with(body).await["id"].as_str().unwrap().to_string();
    create_entra(&app, "c@contoso.com", "e-3", "c@contoso.com").await;
    assert_eq!(count(&app, "/Users", r#"roles[primary eq "True"]"#).await, vec![a.clone()]);
    assert_eq!(count(&app, "/Users", r#"roles[primary eq "False"]"#).await, vec![b]);
    assert_eq!(count(&app, "/Users", r#"roles[primary eq true and value eq "ADMIN"]"#).await, vec![a]);
}

#[tokio::test]
async fn replace_of_work_email_value_when_none_exists_creates_it() {
    let app = TestApp::spawn().await;
    let id = app.create_user_with(json!({"schemas": [CORE], "userName": "jane@contoso.com"})).await["id"]
        .as_str()
        .unwrap()
        .to_string();
    let r = app
        .patch(
            &format!("/Users/{id}"),
            patch(json!([{"op": "Replace", "path": "emails[type eq \"work\"].value", "value": "jane@contoso.com"}])),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
    let g = app.get(&format!("/Users/{id}")).await.body;
    assert_eq!(g["emails"], json!([{"type": "work", "value": "jane@contoso.com"}]));
}

#[tokio::test]
async fn replace_of_username_with_its_own_name_in_another_case_is_not_a_conflict() {
    let app = TestApp::spawn().await;
    let id = create_entra(&app, "jane@contoso.com", "e-1", "jane@contoso.com").await;
    create_entra(&app, "john@contoso.com", "e-2", "john@contoso.com").await;
    let r = app
        .patch(
            &format!("/Users/{id}"),
            patch(json!([{"op": "Replace", "path": "userName", "value": "Jane@Contoso.com"}])),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(app.get(&format!("/Users/{id}")).await.body["userName"], "Jane@Contoso.com");
    let r = app
        .patch(
            &format!("/Users/{id}"),
            patch(json!([{"op": "Replace", "path": "userName", "value": "JOHN@contoso.com"}])),
        )
        .await;
    r.assert_scim_error(409, Some("uniqueness"));
    assert_eq!(app.get(&format!("/Users/{id}")).await.body["userName"], "Jane@Contoso.com");
}

#[tokio::test]
async fn patch_errors_leave_the_user_unchanged() {
    let app = TestApp::spawn().await;
    let id = create_entra(&app, "jane@contoso.com", "e-1", "jane@contoso.com").await;
    let before = app.get(&format!("/Users/{id}")).await.body;
    // A valid first operation and an invalid second: all or nothing.
    let r = app
        .patch(
            &format!("/Users/{id}"),
            patch(json!([
                {"op": "Replace", "path": "displayName", "value": "Changed"},
                {"op": "Replace", "path": "active", "value": "maybe"}
            ])),
        )
        .await;
    r.assert_scim_error(400, Some("invalidValue"));
    let r = app.patch(&format!("/Users/{id}"), patch(json!([{"op": "Remove"}]))).await;
    r.assert_scim_error(400, Some("noTarget"));
    let r = app.patch(&format!("/Users/{id}"), patch(json!([{"op": "Replace", "path": "id", "value": "mine"}]))).await;
    r.assert_scim_error(400, Some("mutability"));
    let r =
        app.patch(&format!("/Users/{id}"), patch(json!([{"op": "Frobnicate", "path": "title", "value": "x"}]))).await;
    assert_eq!(r.status, 400, "{}", r.text);
    assert_eq!(app.get(&format!("/Users/{id}")).await.body, before);
}

#[tokio::test]
async fn remove_members_without_value_removes_every_member() {
    let app = TestApp::spawn().await;
    let a = app.create_user("a@contoso.com").await;
    let b = app.create_user("b@contoso.com").await;
    let gid = app.create_group_with("Sales", &[&a, &b]).await;
    let r = app.patch(&format!("/Groups/{gid}"), patch(json!([{"op": "Remove", "path": "members"}]))).await;
    assert_eq!(r.status, 204, "{}", r.text);
    assert!(app.member_ids(&gid).await.is_empty());
    assert_eq!(app.get(&format!("/Users/{a}")).await.status, 200, "the users themselves stay");
}
