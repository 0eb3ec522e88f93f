//! Conformance of observed responses to `docs/openapi.json`.
//!
//! [`Spec::check`] finds the operation and response a concrete request hit and validates the JSON
//! body against the response's schema with a JSON Schema subset (`$ref`, `type`, `properties`,
//! `required`, `additionalProperties`, `items`, `enum`, `const`, `oneOf`, `anyOf`, `allOf`,
//! `minimum`, `maximum`, `minLength`, `maxLength`, a few more; `pattern` and `format` are
//! ignored). [`record`] and [`assert_all_conform`] collect responses from all tests and check
//! them at the end; [`check_now`] checks one at once.
#![allow(dead_code)] // Not every test uses every helper.

use serde_json::{Map, Value};
use std::sync::{Mutex, OnceLock, PoisonError};

const SPEC_PATH: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../docs/openapi.json");
/// Deepest schema nesting followed (guards against `$ref` cycles).
const MAX_DEPTH: usize = 64;
/// Most failures [`assert_all_conform`] lists.
const MAX_SHOWN: usize = 20;

/// The OpenAPI document.
pub struct Spec {
    doc: Value,
}

/// Where and why a value does not match its schema.
#[derive(Debug)]
struct Mismatch {
    pointer: String,
    problem: String,
}

type Checked = Result<(), Mismatch>;

fn fail(pointer: &str, problem: impl Into<String>) -> Checked {
    Err(Mismatch {
        pointer: pointer.to_owned(),
        problem: problem.into(),
    })
}

impl std::fmt::Display for Mismatch {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "at \"{}\": {}", self.pointer, self.problem)
    }
}

impl Spec {
    /// Reads `docs/openapi.json`; panics when it is missing or not JSON.
    pub fn load() -> Spec {
        let text = std::fs::read_to_string(SPEC_PATH)
            .unwrap_or_else(|e| panic!("cannot read {SPEC_PATH}: {e}"));
        let doc =
            serde_json::from_str(&text).unwrap_or_else(|e| panic!("{SPEC_PATH} is not JSON: {e}"));
        Spec { doc }
    }

    /// A spec from a document already parsed.
    pub fn from_value(doc: Value) -> Spec {
        Spec { doc }
    }

    /// The document.
    pub fn doc(&self) -> &Value {
        &self.doc
    }

    /// Checks one response: `path` is concrete (`/v1/products/prod_1`; a query is ignored),
    /// `content_type` the response's header, `body` the body when it is JSON.
    ///
    /// A path or method the spec does not have must answer a 4xx error envelope
    /// (`#/components/schemas/ErrorResponse`).
    pub fn check(
        &self,
        method: &str,
        path: &str,
        status: u16,
        content_type: Option<&str>,
        body: Option<&Value>,
    ) -> Result<(), String> {
        let path = path.split(['?', '#']).next().unwrap_or(path);
        let method = method.to_ascii_lowercase();
        let what = format!("{} {path} -> {status}", method.to_ascii_uppercase());
        self.check_operation(&method, path, status, content_type, body)
            .map_err(|e| format!("{what}: {e}"))
    }

    fn check_operation(
        &self,
        method: &str,
        path: &str,
        status: u16,
        content_type: Option<&str>,
        body: Option<&Value>,
    ) -> Result<(), String> {
        let Some((template, item)) = self.find_path(path) else {
            return self.check_unrouted("no path of the spec matches", status, content_type, body);
        };
        let item = self.deref(item)?;
        let Some(operation) = item.get(method) else {
            let why = format!("the spec has no {} {template}", method.to_ascii_uppercase());
            return self.check_unrouted(&why, status, content_type, body);
        };
        let responses = operation
            .get("responses")
            .and_then(Value::as_object)
            .ok_or_else(|| format!("{template} {method} has no `responses`"))?;
        let keys = [
            status.to_string(),
            format!("{}XX", status / 100),
            format!("{}xx", status / 100),
            "default".to_owned(),
        ];
        let Some((key, response)) = keys.iter().find_map(|k| responses.get(k).map(|r| (k, r)))
        else {
            let documented: Vec<&str> = responses.keys().map(String::as_str).collect();
            return Err(format!(
                "status {status} is not documented for {} {template} (documented: {})",
                method.to_ascii_uppercase(),
                documented.join(", ")
            ));
        };
        let response = self.deref(response)?;
        self.check_content(response, content_type, body)
            .map_err(|e| {
                format!(
                    "[{} {template}, response {key}] {e}",
                    method.to_ascii_uppercase()
                )
            })
    }

    /// A request the spec has no operation for: only a 4xx error envelope will do.
    fn check_unrouted(
        &self,
        why: &str,
        status: u16,
        content_type: Option<&str>,
        body: Option<&Value>,
    ) -> Result<(), String> {
        let error_schema = self.doc.pointer("/components/schemas/ErrorResponse");
        match error_schema {
            Some(schema) if (400..500).contains(&status) => {
                let response = serde_json::json!({
                    "content": {"application/json": {"schema": schema}}
                });
                self.check_content(&response, content_type, body)
                    .map_err(|e| format!("[{why}; expected an error envelope] {e}"))
            }
            _ => Err(why.to_owned()),
        }
    }

    /// The template matching `path` best: per segment from the left, literal beats `{param}`.
    fn find_path(&self, path: &str) -> Option<(&str, &Value)> {
        let paths = self.doc.get("paths")?.as_object()?;
        let segments: Vec<&str> = path.split('/').collect();
        let mut best: Option<(Vec<bool>, &str, &Value)> = None;
        for (template, item) in paths {
            let parts: Vec<&str> = template.split('/').collect();
            if parts.len() != segments.len() {
                continue;
            }
            let mut score = Vec::with_capacity(parts.len());
            let matches = parts.iter().zip(&segments).all(|(part, segment)| {
                if part.starts_with('{') && part.ends_with('}') {
                    score.push(false);
                    !segment.is_empty()
                } else {
                    score.push(true);
                    part == segment
                }
            });
            if matches && best.as_ref().is_none_or(|(b, _, _)| score > *b) {
                best = Some((score, template, item));
            }
        }
        best.map(|(_, template, item)| (template, item))
    }

    fn check_content(
        &self,
        response: &Value,
        content_type: Option<&str>,
        body: Option<&Value>,
    ) -> Result<(), String> {
        let media = content_type.map(media_type);
        let content = response
            .get("content")
            .and_then(Value::as_object)
            .filter(|c| !c.is_empty());
        let Some(content) = content else {
            return match (&media, body) {
                (Some(media), _) => Err(format!(
                    "the spec documents no body, but the response has Content-Type `{media}`"
                )),
                (None, Some(_)) => Err("the spec documents no body, but there is one".to_owned()),
                (None, None) => Ok(()),
            };
        };
        let documented = || content.keys().cloned().collect::<Vec<_>>().join(", ");
        let media = match media {
            Some(media) => media,
            None if body.is_some() => "application/json".to_owned(),
            None => {
                return Err(format!(
                    "the spec documents a body ({}), but the response has none",
                    documented()
                ));
            }
        };
        let Some(entry) = content
            .iter()
            .find(|(k, _)| media_matches(k, &media))
            .map(|(_, v)| v)
        else {
            return Err(format!(
                "Content-Type `{media}` is not documented (documented: {})",
                documented()
            ));
        };
        if !is_json(&media) {
            return Ok(());
        }
        let Some(body) = body else {
            return Err(format!("Content-Type is `{media}` but the body is empty"));
        };
        match entry.get("schema") {
            Some(schema) => self
                .validate(schema, body, "", 0)
                .map_err(|m| m.to_string()),
            None => Ok(()),
        }
    }

    /// Follows `$ref`s of a response or path item.
    fn deref<'a>(&'a self, mut value: &'a Value) -> Result<&'a Value, String> {
        for _ in 0..MAX_DEPTH {
            match value.get("$ref").and_then(Value::as_str) {
                Some(r) => value = self.resolve(r)?,
                None => return Ok(value),
            }
        }
        Err("$ref chain too long".to_owned())
    }

    fn resolve(&self, reference: &str) -> Result<&Value, String> {
        let pointer = reference
            .strip_prefix('#')
            .ok_or_else(|| format!("only local $refs are supported, not `{reference}`"))?;
        self.doc
            .pointer(pointer)
            .ok_or_else(|| format!("$ref `{reference}` does not resolve"))
    }

    /// Validates `value` (at JSON pointer `at`) against `schema`; the first mismatch wins.
    fn validate(&self, schema: &Value, value: &Value, at: &str, depth: usize) -> Checked {
        if depth > MAX_DEPTH {
            return fail(at, "schema nested too deep (a $ref cycle?)");
        }
        let schema = match schema {
            Value::Bool(true) => return Ok(()),
            Value::Bool(false) => return fail(at, "no value is allowed here"),
            Value::Object(schema) => schema,
            other => return fail(at, format!("invalid schema {other}")),
        };
        if let Some(reference) = schema.get("$ref").and_then(Value::as_str) {
            let target = match self.resolve(reference) {
                Ok(target) => target,
                Err(e) => return fail(at, e),
            };
            self.validate(target, value, at, depth + 1)?;
        }
        if let Some(types) = schema.get("type") {
            check_type(types, value, at)?;
        }
        if let Some(expected) = schema.get("const")
            && value != expected
        {
            return fail(at, format!("expected {expected}, found {}", show(value)));
        }
        if let Some(options) = schema.get("enum").and_then(Value::as_array)
            && !options.contains(value)
        {
            let options: Vec<String> = options.iter().map(Value::to_string).collect();
            return fail(
                at,
                format!("{} is not one of {}", show(value), options.join(", ")),
            );
        }
        match value {
            Value::Number(n) => check_number(schema, n.as_f64().unwrap_or(f64::NAN), at)?,
            Value::String(s) => check_length(schema, s.chars().count(), "characters", at)?,
            Value::Array(items) => self.check_array(schema, items, at, depth)?,
            Value::Object(members) => self.check_object(schema, members, at, depth)?,
            Value::Null | Value::Bool(_) => {}
        }
        self.check_combinators(schema, value, at, depth)
    }

    fn check_array(
        &self,
        schema: &Map<String, Value>,
        items: &[Value],
        at: &str,
        depth: usize,
    ) -> Checked {
        if let Some(min) = schema.get("minItems").and_then(Value::as_u64)
            && (items.len() as u64) < min
        {
            return fail(at, format!("{} items, fewer than {min}", items.len()));
        }
        if let Some(max) = schema.get("maxItems").and_then(Value::as_u64)
            && (items.len() as u64) > max
        {
            return fail(at, format!("{} items, more than {max}", items.len()));
        }
        if let Some(item_schema) = schema.get("items") {
            for (i, item) in items.iter().enumerate() {
                self.validate(item_schema, item, &format!("{at}/{i}"), depth + 1)?;
            }
        }
        Ok(())
    }

    fn check_object(
        &self,
        schema: &Map<String, Value>,
        members: &Map<String, Value>,
        at: &str,
        depth: usize,
    ) -> Checked {
        if let Some(required) = schema.get("required").and_then(Value::as_array) {
            for name in required.iter().filter_map(Value::as_str) {
                if !members.contains_key(name) {
                    return fail(at, format!("missing required property `{name}`"));
                }
            }
        }
        if let Some(min) = schema.get("minProperties").and_then(Value::as_u64)
            && (members.len() as u64) < min
        {
            return fail(
                at,
                format!("{} properties, fewer than {min}", members.len()),
            );
        }
        if let Some(max) = schema.get("maxProperties").and_then(Value::as_u64)
            && (members.len() as u64) > max
        {
            return fail(at, format!("{} properties, more than {max}", members.len()));
        }
        let properties = schema.get("properties").and_then(Value::as_object);
        let additional = schema.get("additionalProperties");
        for (name, member) in members {
            let here = format!("{at}/{}", escape(name));
            match properties.and_then(|p| p.get(name)) {
                Some(property) => self.validate(property, member, &here, depth + 1)?,
                None => match additional {
                    Some(Value::Bool(false)) => {
                        return fail(&here, format!("unexpected property `{name}`"));
                    }
                    Some(extra) => self.validate(extra, member, &here, depth + 1)?,
                    None => {}
                },
            }
        }
        Ok(())
    }

    fn check_combinators(
        &self,
        schema: &Map<String, Value>,
        value: &Value,
        at: &str,
        depth: usize,
    ) -> Checked {
        if let Some(all) = schema.get("allOf").and_then(Value::as_array) {
            for branch in all {
                self.validate(branch, value, at, depth + 1)?;
            }
        }
        if let Some(any) = schema.get("anyOf").and_then(Value::as_array) {
            let misses = self.misses(any, value, at, depth);
            if misses.iter().all(Option::is_some) {
                return fail(at, format!("matches no anyOf branch: {}", list(&misses)));
            }
        }
        if let Some(one) = schema.get("oneOf").and_then(Value::as_array) {
            let misses = self.misses(one, value, at, depth);
            let matched: Vec<String> = misses
                .iter()
                .enumerate()
                .filter(|(_, m)| m.is_none())
                .map(|(i, _)| i.to_string())
                .collect();
            match matched.len() {
                1 => {}
                0 => return fail(at, format!("matches no oneOf branch: {}", list(&misses))),
                _ => {
                    return fail(
                        at,
                        format!(
                            "matches oneOf branches {} (must be exactly one)",
                            matched.join(", ")
                        ),
                    );
                }
            }
        }
        Ok(())
    }

    /// Each branch's mismatch, `None` where the value matches.
    fn misses(
        &self,
        branches: &[Value],
        value: &Value,
        at: &str,
        depth: usize,
    ) -> Vec<Option<Mismatch>> {
        branches
            .iter()
            .map(|b| self.validate(b, value, at, depth + 1).err())
            .collect()
    }
}

fn list(misses: &[Option<Mismatch>]) -> String {
    let parts: Vec<String> = misses
        .iter()
        .enumerate()
        .filter_map(|(i, m)| m.as_ref().map(|m| format!("[{i}] {m}")))
        .collect();
    parts.join("; ")
}

fn check_type(types: &Value, value: &Value, at: &str) -> Checked {
    let names: Vec<&str> = match types {
        Value::String(t) => vec![t.as_str()],
        Value::Array(ts) => ts.iter().filter_map(Value::as_str).collect(),
        _ => return Ok(()),
    };
    let ok = names.iter().any(|t| match *t {
        "null" => value.is_null(),
        "boolean" => value.is_boolean(),
        "string" => value.is_string(),
        "number" => value.is_number(),
        "integer" => value.is_i64() || value.is_u64(),
        "array" => value.is_array(),
        "object" => value.is_object(),
        _ => false,
    });
    if ok {
        Ok(())
    } else {
        fail(
            at,
            format!("expected {}, found {}", names.join(" or "), show(value)),
        )
    }
}

fn check_number(schema: &Map<String, Value>, n: f64, at: &str) -> Checked {
    let bound = |key: &str| schema.get(key).and_then(Value::as_f64);
    if let Some(min) = bound("minimum")
        && n < min
    {
        return fail(at, format!("{n} is less than the minimum {min}"));
    }
    if let Some(max) = bound("maximum")
        && n > max
    {
        return fail(at, format!("{n} is more than the maximum {max}"));
    }
    if let Some(min) = bound("exclusiveMinimum")
        && n <= min
    {
        return fail(at, format!("{n} is not more than {min}"));
    }
    if let Some(max) = bound("exclusiveMaximum")
        && n >= max
    {
        return fail(at, format!("{n} is not less than {max}"));
    }
    Ok(())
}

fn check_length(schema: &Map<String, Value>, len: usize, unit: &str, at: &str) -> Checked {
    if let Some(min) = schema.get("minLength").and_then(Value::as_u64)
        && (len as u64) < min
    {
        return fail(at, format!("{len} {unit}, fewer than {min}"));
    }
    if let Some(max) = schema.get("maxLength").and_then(Value::as_u64)
        && (len as u64) > max
    {
        return fail(at, format!("{len} {unit}, more than {max}"));
    }
    Ok(())
}

/// A value for a message: its type and a short rendering.
fn show(value: &Value) -> String {
    let kind = match value {
        Value::Null => return "null".to_owned(),
        Value::Bool(_) => "boolean",
        Value::Number(_) => "number",
        Value::String(_) => "string",
        Value::Array(_) => "array",
        Value::Object(_) => "object",
    };
    let mut text = value.to_string();
    if text.chars().count() > 60 {
        text = text.chars().take(57).collect::<String>() + "...";
    }
    format!("{kind} {text}")
}

/// A JSON pointer token (RFC 6901).
fn escape(name: &str) -> String {
    name.replace('~', "~0").replace('/', "~1")
}

/// `application/json; charset=utf-8` → `application/json`.
fn media_type(content_type: &str) -> String {
    content_type
        .split(';')
        .next()
        .unwrap_or_default()
        .trim()
        .to_ascii_lowercase()
}

fn media_matches(documented: &str, media: &str) -> bool {
    let documented = media_type(documented);
    documented == media
        || documented == "*/*"
        || documented
            .strip_suffix("/*")
            .is_some_and(|top| media.split('/').next() == Some(top))
}

fn is_json(media: &str) -> bool {
    media == "application/json" || media.ends_with("+json")
}

/// The body as JSON when it should be: non-empty and JSON (or untyped).
fn parse_body(content_type: Option<&str>, body: &[u8]) -> Result<Option<Value>, String> {
    if body.is_empty() || content_type.is_some_and(|ct| !is_json(&media_type(ct))) {
        return Ok(None);
    }
    serde_json::from_slice(body)
        .map(Some)
        .map_err(|e| format!("the body is not JSON ({e})"))
}

/// One response seen by a test.
struct Observation {
    method: String,
    path: String,
    status: u16,
    content_type: Option<String>,
    body: Vec<u8>,
}

static OBSERVATIONS: Mutex<Vec<Observation>> = Mutex::new(Vec::new());

/// The spec, loaded once per test binary.
pub fn spec() -> &'static Spec {
    static SPEC: OnceLock<Spec> = OnceLock::new();
    SPEC.get_or_init(Spec::load)
}

/// Checks one raw response against the spec now.
pub fn check_now(
    method: &str,
    path: &str,
    status: u16,
    content_type: Option<&str>,
    body: &[u8],
) -> Result<(), String> {
    let what = || format!("{} {path} -> {status}", method.to_ascii_uppercase());
    let json = parse_body(content_type, body).map_err(|e| format!("{}: {e}", what()))?;
    spec().check(method, path, status, content_type, json.as_ref())
}

/// Remembers one raw response for [`assert_all_conform`].
pub fn record(method: &str, path: &str, status: u16, content_type: Option<&str>, body: &[u8]) {
    OBSERVATIONS
        .lock()
        .unwrap_or_else(PoisonError::into_inner)
        .push(Observation {
            method: method.to_owned(),
            path: path.to_owned(),
            status,
            content_type: content_type.map(str::to_owned),
            body: body.to_vec(),
        });
}

/// Checks every recorded response; panics listing the failures, or when nothing was recorded.
pub fn assert_all_conform() {
    let (total, failures) = {
        let seen = OBSERVATIONS.lock().unwrap_or_else(PoisonError::into_inner);
        let failures: Vec<String> = seen
            .iter()
            .filter_map(|o| {
                check_now(
                    &o.method,
                    &o.path,
                    o.status,
                    o.content_type.as_deref(),
                    &o.body,
                )
                .err()
            })
            .collect();
        (seen.len(), failures)
    };
    assert!(
        total > 0,
        "no responses were recorded for the OpenAPI check"
    );
    if !failures.is_empty() {
        let mut report = format!(
            "{} of {total} recorded responses do not conform to docs/openapi.json:\n",
            failures.len()
        );
        for failure in failures.iter().take(MAX_SHOWN) {
            report.push_str(&format!("  - {failure}\n"));
        }
        if failures.len() > MAX_SHOWN {
            report.push_str(&format!("  … and {} more\n", failures.len() - MAX_SHOWN));
        }
        panic!("{report}");
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    /// A tiny spec exercising each keyword.
    fn tiny() -> Spec {
        Spec::from_value(json!({
            "openapi": "3.1.0",
            "paths": {
                "/v1/things/{id}": {
                    "get": {"responses": {
                        "200": {"content": {"application/json": {"schema": {"$ref": "#/components/schemas/Thing"}}}},
                        "4XX": {"$ref": "#/components/responses/Error"}
                    }}
                },
                "/v1/things/special": {
                    "get": {"responses": {"200": {"content": {"application/json": {"schema": {"const": "special"}}}}}}
                },
                "/v1/shapes": {
                    "post": {"responses": {
                        "201": {"content": {"application/json": {"schema": {"oneOf": [
                            {"type": "object", "required": ["radius"], "properties": {"radius": {"type": "integer", "minimum": 1}}},
                            {"type": "object", "required": ["side"], "properties": {"side": {"type": "number"}}}
                        ]}}}},
                        "default": {"description": "anything else", "content": {"text/plain": {"schema": {"type": "string"}}}}
                    }}
                },
                "/ws": {"get": {"responses": {"101": {"description": "upgrade"}}}}
            },
            "components": {
                "responses": {"Error": {"content": {"application/json": {"schema": {"$ref": "#/components/schemas/ErrorResponse"}}}}},
                "schemas": {
                    "Thing": {
                        "type": "object",
                        "required": ["id", "count"],
                        "additionalProperties": false,
                        "properties": {
                            "id": {"type": "string", "minLength": 2, "pattern": "^never$"},
                            "count": {"type": "integer", "maximum": 10},
                            "note": {"type": ["string", "null"]},
                            "tags": {"type": "array", "items": {"enum": ["a", "b"]}},
                            "size": {"anyOf": [{"type": "string"}, {"$ref": "#/components/schemas/Size"}]}
                        }
                    },
                    "Size": {"allOf": [{"type": "object", "required": ["w"]}, {"properties": {"w": {"type": "integer"}}}]},
                    "ErrorResponse": {
                        "type": "object",
                        "required": ["error"],
                        "properties": {"error": {"type": "string"}}
                    }
                }
            }
        }))
    }

    fn get(spec: &Spec, path: &str, status: u16, body: Value) -> Result<(), String> {
        spec.check("GET", path, status, Some("application/json"), Some(&body))
    }

    #[test]
    fn a_conforming_body_passes() {
        let body = json!({"id": "t1", "count": 3, "note": null, "tags": ["a"], "size": {"w": 2}});
        get(&tiny(), "/v1/things/t1", 200, body).unwrap();
    }

    #[test]
    fn a_type_mismatch_names_the_pointer() {
        let err = get(
            &tiny(),
            "/v1/things/t1",
            200,
            json!({"id": "t1", "count": "3"}),
        )
        .unwrap_err();
        assert!(err.starts_with("GET /v1/things/t1 -> 200"), "{err}");
        assert!(err.contains("at \"/count\": expected integer"), "{err}");
        let err = get(
            &tiny(),
            "/v1/things/t1",
            200,
            json!({"id": "t1", "count": 1.5}),
        )
        .unwrap_err();
        assert!(err.contains("expected integer, found number 1.5"), "{err}");
        let err = get(
            &tiny(),
            "/v1/things/t1",
            200,
            json!({"id": "t1", "count": 1, "tags": ["c"]}),
        )
        .unwrap_err();
        assert!(err.contains("at \"/tags/0\""), "{err}");
    }

    #[test]
    fn a_missing_required_property_fails() {
        let err = get(&tiny(), "/v1/things/t1", 200, json!({"id": "t1"})).unwrap_err();
        assert!(err.contains("missing required property `count`"), "{err}");
    }

    #[test]
    fn additional_properties_false_refuses_unknown_members() {
        let err = get(
            &tiny(),
            "/v1/things/t1",
            200,
            json!({"id": "t1", "count": 1, "x/y": 0}),
        )
        .unwrap_err();
        assert!(
            err.contains("at \"/x~1y\": unexpected property `x/y`"),
            "{err}"
        );
    }

    #[test]
    fn bounds_and_lengths_apply_but_pattern_is_ignored() {
        let err = get(
            &tiny(),
            "/v1/things/t1",
            200,
            json!({"id": "t1", "count": 11}),
        )
        .unwrap_err();
        assert!(err.contains("maximum"), "{err}");
        let err = get(&tiny(), "/v1/things/t", 200, json!({"id": "t", "count": 1})).unwrap_err();
        assert!(err.contains("fewer than 2"), "{err}");
    }

    #[test]
    fn refs_and_all_of_and_any_of_are_followed() {
        let err = get(
            &tiny(),
            "/v1/things/t1",
            200,
            json!({"id": "t1", "count": 1, "size": {"w": "2"}}),
        )
        .unwrap_err();
        assert!(err.contains("matches no anyOf branch"), "{err}");
        assert!(err.contains("at \"/size/w\""), "{err}");
        let err = get(
            &tiny(),
            "/v1/things/t1",
            200,
            json!({"id": "t1", "count": 1, "size": {}}),
        )
        .unwrap_err();
        assert!(err.contains("missing required property `w`"), "{err}");
    }

    #[test]
    fn one_of_needs_exactly_one_branch() {
        let spec = tiny();
        let post = |body: Value| spec.check("POST", "/v1/shapes", 201, None, Some(&body));
        post(json!({"radius": 2})).unwrap();
        post(json!({"side": 2.5})).unwrap();
        let err = post(json!({"radius": 0})).unwrap_err();
        assert!(err.contains("matches no oneOf branch"), "{err}");
        let err = post(json!({"radius": 1, "side": 1})).unwrap_err();
        assert!(err.contains("must be exactly one"), "{err}");
    }

    #[test]
    fn literal_paths_beat_templated_ones() {
        let spec = tiny();
        get(&spec, "/v1/things/special", 200, json!("special")).unwrap();
        let err = get(
            &spec,
            "/v1/things/special",
            200,
            json!({"id": "special", "count": 1}),
        )
        .unwrap_err();
        assert!(err.contains("/v1/things/special"), "{err}");
        get(
            &spec,
            "/v1/things/t1?x=1",
            200,
            json!({"id": "t1", "count": 1}),
        )
        .unwrap();
    }

    #[test]
    fn status_keys_fall_back_to_ranges_then_default() {
        let spec = tiny();
        get(&spec, "/v1/things/t1", 404, json!({"error": "nope"})).unwrap();
        let err = get(&spec, "/v1/things/t1", 409, json!({"oops": 1})).unwrap_err();
        assert!(err.contains("response 4XX"), "{err}");
        let err = get(&spec, "/v1/things/t1", 500, json!({"error": "x"})).unwrap_err();
        assert!(err.contains("status 500 is not documented"), "{err}");
        spec.check("POST", "/v1/shapes", 400, Some("text/plain"), None)
            .unwrap();
        let err = spec
            .check(
                "POST",
                "/v1/shapes",
                400,
                Some("application/json"),
                Some(&json!({})),
            )
            .unwrap_err();
        assert!(
            err.contains("Content-Type `application/json` is not documented"),
            "{err}"
        );
    }

    #[test]
    fn bodies_must_match_what_is_documented() {
        let spec = tiny();
        spec.check("GET", "/ws", 101, None, None).unwrap();
        assert!(
            spec.check(
                "GET",
                "/ws",
                101,
                Some("application/json"),
                Some(&json!({}))
            )
            .is_err()
        );
        let err = spec
            .check("GET", "/v1/things/t1", 200, None, None)
            .unwrap_err();
        assert!(err.contains("the response has none"), "{err}");
    }

    #[test]
    fn unknown_routes_must_answer_an_error_envelope() {
        let spec = tiny();
        get(&spec, "/v1/nothing", 404, json!({"error": "no route"})).unwrap();
        spec.check(
            "DELETE",
            "/v1/shapes",
            405,
            None,
            Some(&json!({"error": "no"})),
        )
        .unwrap();
        let err = get(&spec, "/v1/nothing", 404, json!({"nope": 1})).unwrap_err();
        assert!(err.contains("expected an error envelope"), "{err}");
        let err = get(&spec, "/v1/nothing", 200, json!({})).unwrap_err();
        assert!(err.contains("no path of the spec matches"), "{err}");
    }

    #[test]
    fn raw_bodies_are_parsed_by_content_type() {
        assert_eq!(parse_body(Some("text/plain"), b"# HELP x"), Ok(None));
        assert_eq!(parse_body(Some("application/json"), b""), Ok(None));
        assert!(parse_body(Some("application/json; charset=utf-8"), b"{").is_err());
        assert_eq!(parse_body(None, b"[1]"), Ok(Some(json!([1]))));
    }

    /// Every `$ref` of the real document resolves.
    #[test]
    fn the_documents_refs_resolve() {
        fn walk(spec: &Spec, value: &Value, broken: &mut Vec<String>) {
            match value {
                Value::Object(members) => {
                    if let Some(r) = members.get("$ref").and_then(Value::as_str)
                        && spec.resolve(r).is_err()
                    {
                        broken.push(r.to_owned());
                    }
                    members.values().for_each(|v| walk(spec, v, broken));
                }
                Value::Array(items) => items.iter().for_each(|v| walk(spec, v, broken)),
                _ => {}
            }
        }
        let spec = Spec::load();
        let mut broken = Vec::new();
        walk(&spec, spec.doc(), &mut broken);
        assert!(broken.is_empty(), "unresolved $refs: {broken:?}");
    }

    /// Every authenticated operation documents the errors any call can get.
    #[test]
    fn authenticated_operations_document_the_common_errors() {
        let spec = Spec::load();
        let paths = spec.doc()["paths"].as_object().unwrap();
        let mut missing = Vec::new();
        for (path, item) in paths {
            for (method, op) in item.as_object().unwrap() {
                let authenticated = op
                    .get("security")
                    .and_then(Value::as_array)
                    .is_none_or(|s| !s.is_empty());
                let responses = op["responses"].as_object().unwrap();
                if authenticated {
                    for code in ["400", "401", "403", "429", "5XX"] {
                        if !responses.contains_key(code) {
                            missing.push(format!("{method} {path} {code}"));
                        }
                    }
                }
            }
        }
        assert!(missing.is_empty(), "undocumented: {missing:?}");
    }

    /// Hand-written envelopes of the contract pass against the real document.
    #[test]
    fn sample_envelopes_match_the_document() {
        let spec = Spec::load();
        let meta = json!({"request_id": "req_1"});
        let product = json!({
            "id": "prod_1", "sku": "SKU-1", "barcode": null, "name": "Widget", "description": null,
            "category": "tools", "status": "active", "uom": "EACH",
            "price": {"amount": "19.99", "currency": "EUR"}, "version": 1,
            "created_at": "2026-01-28T10:30:00Z", "updated_at": "2026-01-28T10:30:00Z"
        });
        let ok = |data: Value, meta: &Value| json!({"data": data, "meta": meta, "message": "OK", "toast": false, "responseType": "success"});
        let check = |method: &str, path: &str, status: u16, body: Value| {
            spec.check(method, path, status, Some("application/json"), Some(&body))
        };
        check(
            "GET",
            "/v1/health",
            200,
            ok(json!({"status": "ok", "version": "0.1.0"}), &meta),
        )
        .unwrap();
        check("POST", "/v1/products", 201, ok(product.clone(), &meta)).unwrap();
        check(
            "GET",
            "/v1/products/prod_1",
            200,
            ok(json!({"id": "prod_1", "sku": "S"}), &meta),
        )
        .unwrap();
        let list_meta = json!({"request_id": "req_2", "pagination": {
            "page": 1, "pageSize": 50, "total": 1, "hasMore": false, "nextCursor": null, "sort": "-created_at"
        }});
        check("GET", "/v1/products", 200, ok(json!([product]), &list_meta)).unwrap();
        let err = check("GET", "/v1/products", 200, ok(json!([product]), &meta)).unwrap_err();
        assert!(
            err.contains("missing required property `pagination`"),
            "{err}"
        );
        let mut bad = product.clone();
        bad["price"]["amount"] = json!(19.99);
        let err = check("PUT", "/v1/products/prod_1", 200, ok(bad, &meta)).unwrap_err();
        assert!(err.contains("/data/price"), "{err}");

        let error = |code: &str, details: Value| {
            json!({"data": null, "error": {"code": code, "message": "No", "details": details,
                   "request_id": "req_3", "timestamp": "2026-01-28T10:30:00Z"},
                   "message": "No", "toast": false, "responseType": "error"})
        };
        check(
            "GET",
            "/v1/products/prod_9",
            404,
            error("NOT_FOUND", json!({})),
        )
        .unwrap();
        check(
            "POST",
            "/v1/inventory/transactions",
            422,
            error(
                "BUSINESS_RULE_VIOLATION",
                json!({"rule": "no_negative_inventory"}),
            ),
        )
        .unwrap();
        let err = check(
            "GET",
            "/v1/products/prod_9",
            404,
            error("CONFLICT", json!({})),
        )
        .unwrap_err();
        assert!(err.contains("/error/code"), "{err}");
        check(
            "GET",
            "/v1/conflicts",
            503,
            error("SERVICE_UNAVAILABLE", json!({})),
        )
        .unwrap();
        check("GET", "/v1/nowhere", 404, error("NOT_FOUND", json!({}))).unwrap();
        spec.check(
            "GET",
            "/metrics",
            200,
            Some("text/plain; version=0.0.4"),
            None,
        )
        .unwrap();
    }
}
