//! All HTTP: typed calls to the Gatekeeper REST API, and the API's types as the client reads them.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use wasm_bindgen::{JsCast, JsValue};
use wasm_bindgen_futures::JsFuture;

/// An error as the API reports it (`{code, message}`), or a network failure.
#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct ApiError {
    pub code: String,
    pub message: String,
    #[serde(skip)]
    pub status: u16,
}

impl std::fmt::Display for ApiError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} ({})", self.message, self.code)
    }
}

pub type ApiResult<T> = Result<T, ApiError>;

fn network(message: impl Into<String>) -> ApiError {
    ApiError {
        code: "network".into(),
        message: message.into(),
        status: 0,
    }
}

/// The API base URL: `<meta name="gatekeeper-api" content="https://…">` for a separate deployment,
/// same origin otherwise.
fn base() -> String {
    web_sys::window()
        .and_then(|w| w.document())
        .and_then(|d| d.query_selector("meta[name=gatekeeper-api]").ok().flatten())
        .and_then(|m| m.get_attribute("content"))
        .map(|c| c.trim_end_matches('/').to_owned())
        .unwrap_or_default()
}

async fn call<T: DeserializeOwned>(
    method: &str,
    path: &str,
    token: Option<&str>,
    body: Option<String>,
) -> ApiResult<T> {
    let init = web_sys::RequestInit::new();
    init.set_method(method);
    let headers = web_sys::Headers::new().map_err(|_| network("cannot build headers"))?;
    if let Some(t) = token {
        headers
            .set("Authorization", &format!("Bearer {t}"))
            .map_err(|_| network("cannot set the token"))?;
    }
    if let Some(b) = &body {
        headers
            .set("Content-Type", "application/json")
            .map_err(|_| network("cannot set the content type"))?;
        init.set_body(&JsValue::from_str(b));
    }
    init.set_headers(&headers);
    let url = format!("{}{path}", base());
    let request = web_sys::Request::new_with_str_and_init(&url, &init)
        .map_err(|_| network("bad request URL"))?;
    let window = web_sys::window().ok_or_else(|| network("no window"))?;
    let response = JsFuture::from(window.fetch_with_request(&request))
        .await
        .map_err(|_| network("the Gatekeeper API cannot be reached"))?;
    let response: web_sys::Response = response.dyn_into().map_err(|_| network("not a response"))?;
    let status = response.status();
    let text = match response.text() {
        Ok(p) => JsFuture::from(p)
            .await
            .ok()
            .and_then(|v| v.as_string())
            .unwrap_or_default(),
        Err(_) => String::new(),
    };
    if (200..300).contains(&status) {
        serde_json::from_str(&text)
            .map_err(|e| network(format!("unexpected answer from the API: {e}")))
    } else {
        let mut err: ApiError = serde_json::from_str(&text).unwrap_or_else(|_| ApiError {
            code: "http_error".into(),
            message: format!("the API answered {status}"),
            status,
        });
        err.status = status;
        Err(err)
    }
}

/// A call without a token (sign-in helpers).
pub async fn get_anonymous<T: DeserializeOwned>(path: &str) -> ApiResult<T> {
    call("GET", path, None, None).await
}

pub async fn get<T: DeserializeOwned>(path: &str, token: &str) -> ApiResult<T> {
    call("GET", path, Some(token), None).await
}

pub async fn post<T: DeserializeOwned>(
    path: &str,
    token: &str,
    body: &impl Serialize,
) -> ApiResult<T> {
    let body = serde_json::to_string(body).map_err(|e| network(e.to_string()))?;
    call("POST", path, Some(token), Some(body)).await
}

/// Percent-encodes a query value.
pub fn q(value: &str) -> String {
    String::from(js_sys::encode_uri_component(value))
}

// ---------------------------------------------------------------- types

#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct Environment {
    pub name: String,
    pub max_minutes: u32,
    pub auto_approve_max_minutes: u32,
    #[serde(default)]
    pub auto_approve_others: bool,
    pub approver_group: String,
    pub sudo: bool,
    pub may_request: bool,
    pub may_approve: bool,
}

#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct Me {
    pub id: String,
    pub name: Option<String>,
    pub email: Option<String>,
    pub groups: Vec<String>,
    pub os_user: String,
    pub environments: Vec<Environment>,
}

#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct DemoIdentity {
    pub sub: String,
    pub name: String,
    pub groups: Vec<String>,
    pub token: String,
}

#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct Instance {
    pub id: String,
    pub name: String,
    pub environment: Option<String>,
    pub platform: String,
    pub state: String,
    pub private_ip: Option<String>,
    pub public_ip: Option<String>,
    pub region: String,
    pub tags: BTreeMap<String, String>,
    pub agent_status: Option<String>,
    pub grantable: bool,
    pub not_grantable_reason: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct InstancePage {
    pub items: Vec<Instance>,
    pub next_cursor: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct RequestSummary {
    pub id: String,
    pub requester: String,
    pub requester_name: Option<String>,
    pub environment: String,
    pub status: String,
    pub duration_minutes: u32,
    pub reason: String,
    pub ticket: Option<String>,
    pub created_at: DateTime<Utc>,
    pub decided_by: Option<String>,
    pub decision_comment: Option<String>,
    pub expires_at: Option<DateTime<Utc>>,
    pub ended_at: Option<DateTime<Utc>>,
    /// Who ended the access early (also while it was still being granted).
    #[serde(default)]
    pub ended_by: Option<String>,
    #[serde(default)]
    pub subject_ids: Vec<String>,
    #[serde(default)]
    pub instance_ids: Vec<String>,
    #[serde(default)]
    pub grant_statuses: Vec<GrantBrief>,
}

/// One subject's access to one instance, as the list shows it.
#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct GrantBrief {
    pub subject: String,
    pub instance_id: String,
    pub status: String,
}

#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct RequestPage {
    pub items: Vec<RequestSummary>,
    pub next_cursor: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct Grant {
    pub subject: String,
    pub instance_id: String,
    pub instance_name: Option<String>,
    pub os_user: String,
    pub status: String,
    pub last_error: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct Event {
    pub id: i64,
    pub at: DateTime<Utc>,
    pub actor: String,
    pub action: String,
    pub instance_id: Option<String>,
    pub command_id: Option<String>,
    pub detail: serde_json::Value,
}

#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct Permissions {
    pub approve: bool,
    pub cancel: bool,
    pub revoke: bool,
    pub collect_credentials: bool,
}

#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct Subject {
    pub subject: String,
    pub os_user: String,
    pub key_collected_at: Option<DateTime<Utc>>,
}

#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct RequestDetail {
    #[serde(flatten)]
    pub request: RequestSummary,
    pub subjects: Vec<Subject>,
    pub grants: Vec<Grant>,
    pub events: Vec<Event>,
    pub permissions: Permissions,
}

#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct SshTarget {
    pub instance_id: String,
    pub name: Option<String>,
    pub ssh_command: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct WindowsLogin {
    pub instance_id: String,
    pub name: Option<String>,
    pub private_ip: Option<String>,
    pub username: String,
    pub password: String,
}

#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct Credentials {
    pub request_id: String,
    pub os_user: String,
    pub private_key: Option<String>,
    pub key_file: String,
    pub expires_at: Option<DateTime<Utc>>,
    pub instances: Vec<SshTarget>,
    pub windows: Vec<WindowsLogin>,
}

#[derive(Debug, Clone, Serialize)]
pub struct NewRequest {
    pub environment: String,
    pub instance_ids: Vec<String>,
    pub subjects: Option<Vec<String>>,
    pub duration_minutes: u32,
    pub reason: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ticket: Option<String>,
}

#[derive(Debug, Clone, Default, Serialize)]
pub struct CommentBody {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub comment: Option<String>,
}

/// The client reads every answer the committed contract (`openapi/openapi.json`, generated from the
/// server's code) describes: for each type, a sample built from the schema — once with every
/// nullable field null, once with every field filled — must deserialize. A field the server renames,
/// drops or makes nullable breaks this test, not the browser.
#[cfg(test)]
mod contract_tests {
    use serde::de::DeserializeOwned;
    use serde_json::{Map, Value, json};

    use super::*;

    const CONTRACT: &str = include_str!("../../openapi/openapi.json");

    fn schemas() -> Map<String, Value> {
        let doc: Value = serde_json::from_str(CONTRACT).expect("the contract is JSON");
        doc["components"]["schemas"]
            .as_object()
            .expect("schemas")
            .clone()
    }

    /// A value of `schema`; `nulls`: nullable fields are null (else filled).
    fn sample(schemas: &Map<String, Value>, schema: &Value, nulls: bool, depth: usize) -> Value {
        assert!(depth < 20, "the schema nests too deep: {schema}");
        if let Some(r) = schema["$ref"].as_str() {
            let name = r.trim_start_matches("#/components/schemas/");
            return sample(schemas, &schemas[name], nulls, depth + 1);
        }
        if let Some(parts) = schema["allOf"].as_array() {
            let mut merged = Map::new();
            for part in parts {
                if let Value::Object(o) = sample(schemas, part, nulls, depth + 1) {
                    merged.extend(o);
                }
            }
            return Value::Object(merged);
        }
        for key in ["oneOf", "anyOf"] {
            if let Some(options) = schema[key].as_array() {
                let null = options.iter().any(|o| o["type"] == "null");
                if null && nulls {
                    return Value::Null;
                }
                let option = options
                    .iter()
                    .find(|o| o["type"] != "null")
                    .expect("an option");
                return sample(schemas, option, nulls, depth + 1);
            }
        }
        if let Some(values) = schema["enum"].as_array() {
            return values[0].clone();
        }
        let types: Vec<&str> = match &schema["type"] {
            Value::String(t) => vec![t.as_str()],
            Value::Array(ts) => ts.iter().filter_map(Value::as_str).collect(),
            _ => vec!["object"],
        };
        if nulls && types.contains(&"null") {
            return Value::Null;
        }
        match types
            .iter()
            .find(|t| **t != "null")
            .copied()
            .unwrap_or("null")
        {
            "string" if schema["format"] == "date-time" => json!("2026-12-03T10:00:00Z"),
            "string" => json!("text"),
            "integer" => json!(7),
            "number" => json!(1.5),
            "boolean" => json!(true),
            "array" => json!([sample(schemas, &schema["items"], nulls, depth + 1)]),
            "null" => Value::Null,
            _ => {
                let mut object = Map::new();
                if let Some(props) = schema["properties"].as_object() {
                    for (name, prop) in props {
                        object.insert(name.clone(), sample(schemas, prop, nulls, depth + 1));
                    }
                }
                if schema
                    .get("additionalProperties")
                    .is_some_and(Value::is_object)
                {
                    object.insert(
                        "extra".into(),
                        sample(schemas, &schema["additionalProperties"], nulls, depth + 1),
                    );
                }
                Value::Object(object)
            }
        }
    }

    fn reads<T: DeserializeOwned>(schema: &str) {
        let all = schemas();
        let definition = all
            .get(schema)
            .unwrap_or_else(|| panic!("the contract has no schema {schema}"));
        for nulls in [true, false] {
            let value = sample(&all, definition, nulls, 0);
            if let Err(e) = serde_json::from_value::<T>(value.clone()) {
                panic!(
                    "the client cannot read {schema} (nullable fields {}): {e}\n{value:#}",
                    if nulls { "null" } else { "filled" }
                );
            }
        }
    }

    #[test]
    fn the_client_reads_every_answer_it_uses() {
        reads::<Me>("MeResponse");
        reads::<DemoIdentity>("DemoIdentityResponse");
        reads::<InstancePage>("InstancePage");
        reads::<RequestPage>("RequestPage");
        reads::<RequestDetail>("RequestDetailResponse");
        reads::<Credentials>("CredentialsResponse");
        reads::<ApiError>("ErrorBody");
    }

    #[test]
    fn what_the_client_sends_is_what_the_contract_takes() {
        let all = schemas();
        let allowed = |schema: &str| -> Vec<String> {
            all[schema]["properties"]
                .as_object()
                .expect("properties")
                .keys()
                .cloned()
                .collect()
        };
        let body = serde_json::to_value(NewRequest {
            environment: "dev".into(),
            instance_ids: vec!["i-0123456789abcdef0".into()],
            subjects: Some(vec!["alice".into()]),
            duration_minutes: 30,
            reason: "check".into(),
            ticket: Some("OPS-1".into()),
        })
        .unwrap();
        let sent: Vec<String> = body.as_object().unwrap().keys().cloned().collect();
        let create = allowed("CreateRequestBody");
        assert!(
            sent.iter().all(|k| create.contains(k)),
            "{sent:?} vs {create:?}"
        );
        let comment = serde_json::to_value(CommentBody {
            comment: Some("ok".into()),
        })
        .unwrap();
        assert!(
            comment
                .as_object()
                .unwrap()
                .keys()
                .all(|k| allowed("CommentBody").contains(k))
        );
    }
}
