//! Custom schema extensions no schema declares (issue 17): Okta's extension objects and
//! Entra's pathless keys are stored, returned, filtered, sorted and PATCHed.

use serde_json::{Value, json};

use crate::support::{TestApp, filter_q, okta_user, resource_ids};

const ACME: &str = "urn:ietf:params:scim:schemas:extension:acme:2.0:User";
const ENTRA: &str = "urn:ietf:params:scim:schemas:extension:CustomExtensionName:2.0:User";

async fn ids_where(app: &TestApp, filter: &str) -> Vec<String> {
    let r = app.get(&format!("/Users?{}", filter_q(filter))).await;
    assert_eq!(r.status, 200, "filter {filter}: {}", r.text);
    let mut ids = resource_ids(&r.body);
    ids.sort();
    ids
}

fn with(mut body: Value, extra: Value) -> Value {
    let (Value::Object(b), Value::Object(e)) = (&mut body, extra) else { unreachable!() };
    b.extend(e);
    body
}

#[tokio::test]
async fn oktas_custom_extension_is_stored_returned_filtered_sorted_and_patched() {
    let app = TestApp::spawn().await;
    let mut jane = okta_user("jane@example.com", "Jane", "Doe");
    jane["schemas"] = json!(["urn:ietf:params:scim:schemas:core:2.0:User", ACME]);
    let jane = with(jane, json!({ACME: {"badge": "42", "floor": 3, "remote": false, "site": {"city": "Berlin"}}}));
    let created = app.post("/Users", jane).await;
    assert_eq!(created.status, 201, "{}", created.text);
    let id = created.body["id"].as_str().unwrap().to_string();
    assert_eq!(created.body[ACME], json!({"badge": "42", "floor": 3, "remote": false, "site": {"city": "Berlin"}}));
    assert!(created.body["schemas"].as_array().unwrap().contains(&json!(ACME)), "{}", created.text);

    let mut bob = okta_user("bob@example.com", "Bob", "Smith");
    bob["schemas"] = json!(["urn:ietf:params:scim:schemas:core:2.0:User", ACME]);
    let bob = with(bob, json!({ACME: {"badge": "7", "site": {"city": "Paris"}}}));
    let bob = app.post("/Users", bob).await;
    assert_eq!(bob.status, 201, "{}", bob.text);
    let bob = bob.body["id"].as_str().unwrap().to_string();

    // Every later read has it.
    let read = app.get(&format!("/Users/{id}")).await;
    assert_eq!(read.body[ACME]["badge"], "42", "{}", read.text);
    assert_eq!(read.body[ACME]["floor"], 3);

    // Filters: text without regard to case, numbers as their text, sub-attributes, presence.
    assert_eq!(ids_where(&app, &format!("{ACME}:badge eq \"42\"")).await, vec![id.clone()]);
    assert_eq!(ids_where(&app, &format!("{ACME}:floor eq 3")).await, vec![id.clone()]);
    assert_eq!(ids_where(&app, &format!("{ACME}:site.city eq \"paris\"")).await, vec![bob.clone()]);
    assert_eq!(ids_where(&app, &format!("{ACME}:REMOTE pr")).await, vec![id.clone()]);
    let mut both = vec![id.clone(), bob.clone()];
    both.sort();
    assert_eq!(ids_where(&app, &format!("{ACME}:site pr")).await, both);
    assert!(ids_where(&app, &format!("{ACME}:badge eq \"43\"")).await.is_empty());

    // Sorted by a custom attribute (text order: "42" before "7").
    let sorted = app.get(&format!("/Users?sortBy={ACME}:badge&sortOrder=descending")).await;
    assert_eq!(resource_ids(&sorted.body), vec![bob.clone(), id.clone()], "{}", sorted.text);

    // attributes= names the extension, or one of its attributes.
    let only = app.get(&format!("/Users/{id}?attributes={ACME}:badge")).await;
    assert_eq!(only.body[ACME], json!({"badge": "42"}), "{}", only.text);

    // PATCH by path, by schema value, and a removal.
    let r = app
        .patch(
            &format!("/Users/{id}"),
            json!({"schemas": ["urn:ietf:params:scim:api:messages:2.0:PatchOp"], "Operations": [
                {"op": "replace", "path": format!("{ACME}:badge"), "value": "43"},
                {"op": "add", "value": {ACME: {"team": "Platform"}}},
                {"op": "remove", "path": format!("{ACME}:remote")},
                {"op": "replace", "path": format!("{ACME}:site.city"), "value": "Munich"}
            ]}),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(r.body[ACME], json!({"badge": "43", "floor": 3, "site": {"city": "Munich"}, "team": "Platform"}));
    assert_eq!(ids_where(&app, &format!("{ACME}:badge eq \"43\"")).await, vec![id.clone()]);
    assert!(ids_where(&app, &format!("{ACME}:badge eq \"42\"")).await.is_empty());
    assert_eq!(ids_where(&app, &format!("{ACME}:team eq \"platform\"")).await, vec![id.clone()]);
    assert!(ids_where(&app, &format!("{ACME}:remote pr")).await.is_empty());

    // A PUT without the extension drops it, as for every attribute.
    let put = app.put(&format!("/Users/{bob}"), okta_user("bob@example.com", "Bob", "Smith")).await;
    assert_eq!(put.status, 200, "{}", put.text);
    assert!(put.body.get(ACME).is_none(), "{}", put.text);
    assert!(ids_where(&app, &format!("{ACME}:site.city eq \"paris\"")).await.is_empty());
}

#[tokio::test]
async fn entras_pathless_custom_attribute_is_stored_returned_filtered_and_patched() {
    let app = TestApp::spawn().await;
    let body = with(
        okta_user("ada@example.com", "Ada", "Lovelace"),
        json!({format!("{ENTRA}:badge"): "42", format!("{ENTRA}:costCode"): "CC-1"}),
    );
    let created = app.post("/Users", body).await;
    assert_eq!(created.status, 201, "{}", created.text);
    let id = created.body["id"].as_str().unwrap().to_string();
    assert_eq!(created.body[ENTRA], json!({"badge": "42", "costCode": "CC-1"}), "{}", created.text);
    assert_eq!(ids_where(&app, &format!("{ENTRA}:costcode eq \"cc-1\"")).await, vec![id.clone()]);

    // Entra's PATCH: the pathless key as the path, and inside a pathless value.
    let r = app
        .patch(
            &format!("/Users/{id}"),
            json!({"schemas": ["urn:ietf:params:scim:api:messages:2.0:PatchOp"], "Operations": [
                {"op": "Replace", "path": format!("{ENTRA}:badge"), "value": "43"},
                {"op": "Add", "value": {format!("{ENTRA}:room"): "B12"}}
            ]}),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(r.body[ENTRA], json!({"badge": "43", "costCode": "CC-1", "room": "B12"}));
    let read = app.get(&format!("/Users/{id}")).await;
    assert_eq!(read.body[ENTRA]["room"], "B12");
    assert_eq!(ids_where(&app, &format!("{ENTRA}:badge eq \"43\" and {ENTRA}:room eq \"b12\"")).await, vec![id]);
}

#[tokio::test]
async fn custom_values_that_cannot_be_kept_are_refused_naming_the_attribute() {
    let app = TestApp::spawn().await;
    let bad_key = with(okta_user("x@example.com", "X", "Y"), json!({ACME: {"has space": "1"}}));
    let r = app.post("/Users", bad_key).await;
    assert_eq!(r.status, 400, "{}", r.text);
    assert_eq!(r.body["scimType"], "invalidValue");
    assert!(r.body["detail"].as_str().unwrap().contains("has space"), "{}", r.text);

    let huge = with(okta_user("x@example.com", "X", "Y"), json!({ACME: {"note": "n".repeat(3000)}}));
    let r = app.post("/Users", huge).await;
    assert_eq!(r.status, 400, "{}", r.text);
    assert!(r.body["detail"].as_str().unwrap().contains(&format!("{ACME}:note")), "{}", r.text);
    // Nothing was stored.
    let list = app.get("/Users").await;
    assert_eq!(list.body["totalResults"], 0, "{}", list.text);
}
