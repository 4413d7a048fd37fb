//! The label pages: a label made in the criteria builder (previewed with the JSON it
//! will save) has the hosts the API's label host list has; editing and deleting it; an
//! observer sees labels and builds none.

use custodian_domain::Role;
use reqwest::StatusCode;

use crate::overview::every_state;
use crate::support::TestApp;
use crate::web::signed_in;

#[tokio::test]
async fn a_label_built_on_its_page_has_the_hosts_the_api_lists_for_it() {
    let app = TestApp::spawn().await;
    every_state(&app).await;
    let mia = signed_in(&app, "mia@example.com", Role::Maintainer).await;
    let csrf = mia.csrf().await;
    let fields = |action: &'static str| -> Vec<(&'static str, String)> {
        vec![
            ("csrf_token", csrf.clone()),
            ("name", "Engineering or Sales".into()),
            ("description", "two departments".into()),
            ("op", "or".into()),
            ("vital_0", "end_user_idp_department".into()),
            ("value_0", "Engineering".into()),
            ("vital_1", "end_user_idp_department".into()),
            ("value_1", "Sales".into()),
            ("action", action.into()),
        ]
    };
    let as_refs = |f: &[(&'static str, String)]| f.iter().map(|(k, v)| (*k, v.clone())).collect::<Vec<_>>();
    let post = |f: Vec<(&'static str, String)>| {
        let mia = &mia;
        async move {
            let refs: Vec<(&str, &str)> = f.iter().map(|(k, v)| (*k, v.as_str())).collect();
            mia.post("/labels/new", &refs, &[]).await
        }
    };
    // Preview: the JSON it will save and how many hosts match; nothing saved yet.
    let preview = post(as_refs(&fields("preview"))).await;
    assert_eq!(preview.status, StatusCode::OK, "{}", preview.text);
    assert!(
        preview.text.contains("&quot;or&quot;") && preview.text.contains("end_user_idp_department"),
        "{}",
        preview.text
    );
    let count = preview.text.split("id=\"preview-count\">").nth(1).unwrap().split('<').next().unwrap().to_string();
    assert_eq!(count, "4", "alice's 2, amy's and bob's hosts");
    assert!(app.api_get("/labels").await.body["labels"].as_array().unwrap().is_empty(), "a preview saves nothing");
    // Save.
    let saved = post(as_refs(&fields("save"))).await;
    assert_eq!(saved.status, StatusCode::SEE_OTHER, "{}", saved.text);
    let location = saved.headers["location"].to_str().unwrap().to_string();
    let id: i64 = location.trim_start_matches("/labels/").parse().unwrap();
    let api = app.api_get(&format!("/labels/{id}")).await;
    assert_eq!(api.body["label"]["criteria"]["or"].as_array().unwrap().len(), 2, "{}", api.text);
    let api_hosts = app.api_get(&format!("/labels/{id}/hosts?per_page=500")).await;
    let mut want: Vec<i64> =
        api_hosts.body["hosts"].as_array().unwrap().iter().map(|h| h["id"].as_i64().unwrap()).collect();
    want.sort();
    let page = mia.get(&location).await;
    assert_eq!(page.status, StatusCode::OK);
    let mut shown: Vec<i64> =
        page.text.split("data-host=\"").skip(1).map(|r| r.split('"').next().unwrap().parse().unwrap()).collect();
    shown.sort();
    assert_eq!(shown, want, "the page lists the API's hosts");
    assert_eq!(want.len(), 4);
    let list = mia.get("/labels").await;
    assert!(
        list.text.contains(&format!("data-label=\"{id}\""))
            && list.text.contains("<td class=\"num host-count\">4</td>")
    );

    // A bad condition is shown in the builder, with the parser's words; nothing saved.
    let mut bad = fields("save");
    bad[6] = ("vital_1", "end_user_idp_filter".into());
    bad[7] = ("value_1", "title eq".into());
    let r = post(bad).await;
    assert_eq!(r.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(r.text.contains("criteria.or[1].value"), "{}", r.text);

    // Edit to Sales only, then delete.
    let edit = [
        ("csrf_token", csrf.as_str()),
        ("name", "Sales"),
        ("op", "and"),
        ("vital_0", "end_user_idp_department"),
        ("value_0", "Sales"),
        ("action", "save"),
    ];
    assert_eq!(mia.post(&format!("/labels/{id}/edit"), &edit, &[]).await.status, StatusCode::SEE_OTHER);
    let hosts = app.api_get(&format!("/labels/{id}/hosts")).await;
    assert_eq!(hosts.body["hosts"].as_array().unwrap().len(), 1, "bob's host");
    let r = mia.post(&format!("/labels/{id}/delete"), &[("csrf_token", csrf.as_str())], &[]).await;
    assert_eq!(r.status, StatusCode::SEE_OTHER);
    assert_eq!(app.api_get(&format!("/labels/{id}")).await.status, StatusCode::NOT_FOUND);

    // Observers read labels and build none.
    let olga = signed_in(&app, "olga@example.com", Role::Observer).await;
    assert_eq!(olga.get("/labels").await.status, StatusCode::OK);
    assert!(!olga.get("/labels").await.text.contains("id=\"new-label\""));
    assert_eq!(olga.get("/labels/new").await.status, StatusCode::FORBIDDEN);
}
