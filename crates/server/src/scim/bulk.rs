//! `POST /Bulk` (RFC 7644 §3.7): operations applied in order, each in its own
//! transaction, with `bulkId` references resolved as the resources they name are created.

use std::collections::HashMap;

use axum::body::Body;
use axum::http::StatusCode;
use axum::response::Response;
use custodian_domain::ScimRecord;
use custodian_scim::ScimError;
use custodian_scim::patch::parse_patch;
use custodian_scim::resource::parse_resource;
use custodian_scim::schema::{BULK_RESPONSE_SCHEMA, ResourceKind};
use serde_json::{Map, Value, json};

use super::resources::Ctx;
use super::{MAX_BULK_OPERATIONS, ScimApiError, ScimResult, parse_body, read_body, scim_json};

struct Operation {
    method: String,
    path: String,
    bulk_id: Option<String>,
    version: Option<String>,
    data: Option<Value>,
}

fn field<'a>(obj: &'a Map<String, Value>, name: &str) -> Option<&'a Value> {
    obj.iter().find(|(k, _)| k.eq_ignore_ascii_case(name)).map(|(_, v)| v)
}

fn parse_operations(body: &Value) -> ScimResult<(Vec<Operation>, Option<u64>)> {
    let obj = body.as_object().ok_or_else(|| ScimError::invalid_syntax("A BulkRequest must be an object"))?;
    let fail_on_errors = match field(obj, "failOnErrors") {
        None | Some(Value::Null) => None,
        Some(v) => {
            Some(v.as_u64().ok_or_else(|| ScimError::invalid_value("'failOnErrors' must be a non-negative integer"))?)
        }
    };
    let ops = field(obj, "Operations")
        .and_then(Value::as_array)
        .ok_or_else(|| ScimError::invalid_syntax("A BulkRequest needs an 'Operations' array"))?;
    if ops.len() > MAX_BULK_OPERATIONS {
        return Err(ScimError::new(
            413,
            None,
            format!("A BulkRequest may hold at most {MAX_BULK_OPERATIONS} operations"),
        )
        .into());
    }
    let mut parsed = Vec::with_capacity(ops.len());
    for (i, op) in ops.iter().enumerate() {
        let o = op.as_object().ok_or_else(|| ScimError::invalid_syntax(format!("Operation {i} is not an object")))?;
        let text = |name: &str| field(o, name).and_then(Value::as_str).map(str::to_string);
        let method = text("method")
            .ok_or_else(|| ScimError::invalid_syntax(format!("Operation {i} has no 'method'")))?
            .to_ascii_uppercase();
        let path = text("path").ok_or_else(|| ScimError::invalid_syntax(format!("Operation {i} has no 'path'")))?;
        let bulk_id = text("bulkId");
        if method == "POST" && bulk_id.is_none() {
            return Err(ScimError::invalid_syntax(format!("Operation {i} is a POST without a 'bulkId'")).into());
        }
        parsed.push(Operation { method, path, bulk_id, version: text("version"), data: field(o, "data").cloned() });
    }
    Ok((parsed, fail_on_errors))
}

/// Replaces every `bulkId:<id>` string with the created resource's id; `Err` names the
/// first reference not yet resolvable.
fn resolve_refs(value: &Value, ids: &HashMap<String, String>) -> Result<Value, String> {
    Ok(match value {
        Value::String(s) => match s.strip_prefix("bulkId:") {
            Some(bulk_id) => Value::String(ids.get(bulk_id).cloned().ok_or_else(|| bulk_id.to_string())?),
            None => value.clone(),
        },
        Value::Array(items) => Value::Array(items.iter().map(|v| resolve_refs(v, ids)).collect::<Result<_, _>>()?),
        Value::Object(obj) => Value::Object(
            obj.iter().map(|(k, v)| Ok((k.clone(), resolve_refs(v, ids)?))).collect::<Result<_, String>>()?,
        ),
        other => other.clone(),
    })
}

fn resolve_path(path: &str, ids: &HashMap<String, String>) -> Result<String, String> {
    match path.split_once("bulkId:") {
        Some((prefix, bulk_id)) => Ok(format!("{prefix}{}", ids.get(bulk_id).ok_or_else(|| bulk_id.to_string())?)),
        None => Ok(path.to_string()),
    }
}

/// Runs one operation: the resource it wrote, or `None` for a delete.
async fn execute(
    ctx: &Ctx,
    method: &str,
    path: &str,
    data: Option<&Value>,
    version: Option<String>,
) -> ScimResult<Option<ScimRecord>> {
    let trimmed = path.trim_matches('/');
    let (collection, id) = match trimmed.split_once('/') {
        Some((c, id)) => (c, Some(id)),
        None => (trimmed, None),
    };
    let kind = match collection {
        c if c.eq_ignore_ascii_case("Users") => ResourceKind::User,
        c if c.eq_ignore_ascii_case("Groups") => ResourceKind::Group,
        _ => {
            return Err(ScimError::invalid_path(format!(
                "Unknown bulk operation path '{}'",
                super::resources::truncate(path, 64)
            ))
            .into());
        }
    };
    let data = || data.ok_or_else(|| ScimApiError(ScimError::invalid_syntax("The operation has no 'data'")));
    let directory = ctx.state.directory();
    match (method, id) {
        ("POST", None) => {
            let input = parse_resource(kind, data()?)?;
            Ok(Some(directory.scim_create(ctx.conn, kind, input, &ctx.actor).await?.record))
        }
        ("PUT", Some(id)) => {
            let input = parse_resource(kind, data()?)?;
            Ok(Some(directory.scim_replace(ctx.conn, kind, id, input, version, &ctx.actor).await?.record))
        }
        ("PATCH", Some(id)) => {
            let patch = parse_patch(data()?)?;
            Ok(Some(directory.scim_patch(ctx.conn, kind, id, patch, version, &ctx.actor).await?.record))
        }
        ("DELETE", Some(id)) => {
            directory.scim_delete(ctx.conn, kind, id, version, &ctx.actor).await?;
            Ok(None)
        }
        _ => Err(ScimError::invalid_syntax(format!("'{method}' is not valid on this bulk operation path")).into()),
    }
}

pub async fn bulk(ctx: Ctx, body: Body) -> ScimResult<Response> {
    let body = parse_body(&ctx.headers, &read_body(body).await?)?;
    let (operations, fail_on_errors) = parse_operations(&body)?;
    let mut ids: HashMap<String, String> = HashMap::new();
    let mut results: Vec<Option<Value>> = vec![None; operations.len()];
    let mut errors = 0u64;
    let mut pending: Vec<usize> = (0..operations.len()).collect();
    // Operations whose bulkId references are not yet resolvable wait for a later pass;
    // when a pass makes no progress, what remains cannot be resolved.
    'passes: loop {
        let mut deferred = Vec::new();
        let mut progressed = false;
        for &i in &pending {
            if fail_on_errors.is_some_and(|max| max > 0 && errors >= max) {
                break 'passes;
            }
            let op = &operations[i];
            let resolved = resolve_path(&op.path, &ids)
                .and_then(|p| op.data.as_ref().map(|d| resolve_refs(d, &ids)).transpose().map(|d| (p, d)));
            let (path, data) = match resolved {
                Ok(ok) => ok,
                Err(_) => {
                    deferred.push(i);
                    continue;
                }
            };
            progressed = true;
            let outcome = execute(&ctx, &op.method, &path, data.as_ref(), op.version.clone()).await;
            let mut entry = json!({"method": op.method});
            if let Some(b) = &op.bulk_id {
                entry["bulkId"] = json!(b);
            }
            match outcome {
                Ok(record) => {
                    let status = match op.method.as_str() {
                        "POST" => "201",
                        "DELETE" => "204",
                        _ => "200",
                    };
                    entry["status"] = json!(status);
                    if let Some(record) = record {
                        entry["location"] = json!(ctx.location(record.kind, &record.id));
                        entry["version"] = json!(record.etag());
                        if let Some(b) = &op.bulk_id {
                            ids.insert(b.clone(), record.id.clone());
                        }
                    } else {
                        entry["location"] = json!(format!("{}{}", ctx.base, path));
                    }
                }
                Err(ScimApiError(e)) => {
                    errors += 1;
                    entry["status"] = json!(e.status.to_string());
                    entry["response"] = e.to_json();
                }
            }
            results[i] = Some(entry);
        }
        if deferred.is_empty() {
            break;
        }
        if !progressed {
            for i in deferred {
                let op = &operations[i];
                let e = ScimError::new(
                    409,
                    Some(custodian_scim::ScimType::InvalidValue),
                    "A bulkId reference could not be resolved",
                );
                let mut entry = json!({"method": op.method, "status": "409", "response": e.to_json()});
                if let Some(b) = &op.bulk_id {
                    entry["bulkId"] = json!(b);
                }
                results[i] = Some(entry);
            }
            break;
        }
        pending = deferred;
    }
    let body = json!({
        "schemas": [BULK_RESPONSE_SCHEMA],
        "Operations": results.into_iter().flatten().collect::<Vec<_>>(),
    });
    Ok(scim_json(StatusCode::OK, &body))
}
