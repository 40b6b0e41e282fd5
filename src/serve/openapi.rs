//! The OpenAPI 3.1 document of the JSON API (`GET /api/openapi.json`). The customer schema is
//! generated from the one feature definition, like the form and the model's input.

use serde_json::{Value, json};

use super::error::Code;
use crate::schema::{FEATURES, FeatureKind};

fn customer_schema() -> Value {
    let mut props = serde_json::Map::new();
    for f in &FEATURES {
        let mut desc = f.label.to_string();
        if !f.unit.is_empty() {
            desc.push_str(&format!(" ({})", f.unit));
        }
        if !f.choices.is_empty() {
            let codes: Vec<String> = f
                .choices
                .iter()
                .enumerate()
                .map(|(i, c)| format!("{i} = {c}"))
                .collect();
            desc.push_str(&format!("; {}", codes.join(", ")));
        }
        let ty = match f.kind {
            FeatureKind::Real => json!("number"),
            _ => json!("integer"),
        };
        let ty = if f.nullable() {
            desc.push_str("; null when unknown (imputed with the training median)");
            json!([ty, "null"])
        } else {
            ty
        };
        props.insert(
            f.key.into(),
            json!({"type": ty, "minimum": f.min, "maximum": f.max, "description": desc}),
        );
    }
    let required: Vec<&str> = FEATURES.iter().map(|f| f.key).collect();
    json!({
        "type": "object",
        "properties": props,
        "required": required,
        "additionalProperties": false
    })
}

/// The error responses of a route, by status, described from the code table.
fn errors(codes: &[Code]) -> serde_json::Map<String, Value> {
    let mut by_status: std::collections::BTreeMap<u16, Vec<String>> = Default::default();
    for c in codes {
        by_status
            .entry(c.status().as_u16())
            .or_default()
            .push(format!("`{}`: {}", c.name(), c.description()));
    }
    by_status
        .into_iter()
        .map(|(status, lines)| {
            let response = json!({
                "description": lines.join("; "),
                "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}}
            });
            (status.to_string(), response)
        })
        .collect()
}

/// A route's responses: `ok` and the errors of `codes`.
fn responses(ok: &[(&str, Value)], codes: &[Code]) -> Value {
    let mut r = errors(codes);
    for (status, v) in ok {
        r.insert(status.to_string(), v.clone());
    }
    Value::Object(r)
}

fn ok_json(description: &str, schema: Value) -> Value {
    json!({"description": description, "content": {"application/json": {"schema": schema}}})
}

/// The document.
pub fn document() -> Value {
    let admin = json!([{"bearer": []}, {}]);
    let job_ref = json!({"$ref": "#/components/schemas/Job"});
    let id_param =
        json!([{"name": "id", "in": "path", "required": true, "schema": {"type": "string"}}]);
    use Code::*;
    let train_codes = [Unauthorized, Forbidden, TrainingQueueFull, TrainingDisabled];
    let job_codes = [Unauthorized, Forbidden, TrainingDisabled, JobNotFound];
    json!({
        "openapi": "3.1.0",
        "info": {
            "title": "Customer Categorizer",
            "version": env!("CARGO_PKG_VERSION"),
            "description": "Sorts retail customers into segments. Every JSON error is \
                `{\"error\": {\"code\", \"message\", \"field\"?, \"row\"?}}` with a stable snake_case code. \
                Training endpoints need `Authorization: Bearer <CATEGORIZER_ADMIN_TOKEN>` when that \
                variable is set, and accept only loopback clients when it is not."
        },
        "paths": {
            "/healthz": {"get": {"summary": "Liveness", "responses": {"200": {"description": "the process is up", "content": {"text/plain": {}}}}}},
            "/readyz": {"get": {"summary": "Readiness: a model is loaded", "responses": responses(&[
                ("200", ok_json("ready", json!({"type": "object", "properties": {"ready": {"type": "boolean"}, "model_version": {"type": "string"}}})))], &[NotReady])}},
            "/api/v1/model": {"get": {"summary": "The served model's manifest: version, metrics, feature schema, segments", "responses": {
                "200": ok_json("the manifest", json!({"type": "object"}))}}},
            "/api/v1/validation": {"get": {"summary": "The latest training run's data validation report: schema check and drift per column (HTML at /validation)", "responses": responses(
                &[("200", ok_json("the report", json!({"type": "object"})))], &[NoValidation])}},
            "/api/v1/predict": {"post": {
                "summary": "Segments of up to `server.max_customers` customers, in input order",
                "description": "Concurrent requests are merged by the dynamic batcher. A customer with a bad value \
                    (missing or unknown field, a string for a number, NaN, out of range) does not fail the \
                    request: its slot in `predictions` holds `{\"error\": {\"code\": \"invalid_value\", \"message\", \
                    \"field\", \"row\"}}` and every other customer is predicted.",
                "requestBody": {"required": true, "content": {"application/json": {"schema": {
                    "type": "object", "required": ["customers"], "additionalProperties": false,
                    "properties": {"customers": {"type": "array", "items": {"$ref": "#/components/schemas/Customer"}}}}}}},
                "responses": responses(&[
                    ("200", ok_json("one prediction or row error per customer", json!({
                        "type": "object",
                        "properties": {
                            "model_version": {"type": "string"},
                            "predictions": {"type": "array", "items": {"anyOf": [
                                {"$ref": "#/components/schemas/Prediction"},
                                {"$ref": "#/components/schemas/RowError"}]}}}})))],
                    &[MalformedJson, BadBody, BodyTooLarge, TooManyCustomers, Overloaded, DeadlineExceeded])}},
            "/api/v1/train": {"post": {
                "summary": "Queue a training job; one job runs at a time",
                "security": admin,
                "requestBody": {"required": false, "content": {"application/json": {"schema": {"$ref": "#/components/schemas/JobOptions"}}}},
                "responses": responses(&[("202", ok_json("the job was queued", job_ref.clone()))],
                    &[&train_codes[..], &[MalformedJson, InvalidOption, BodyTooLarge]].concat())}},
            "/train": {"get": {
                "summary": "Queue a training job with the default options (the original app's route)",
                "security": admin,
                "responses": responses(&[("202", ok_json("the job was queued", job_ref.clone()))], &train_codes)}},
            "/api/v1/jobs": {"get": {
                "summary": "Every job the service remembers, newest first",
                "security": admin,
                "responses": responses(&[("200", ok_json("the jobs", json!({"type": "object", "properties": {"jobs": {"type": "array", "items": job_ref.clone()}}})))],
                    &[Unauthorized, Forbidden, TrainingDisabled])}},
            "/api/v1/jobs/{id}": {
                "get": {"summary": "A job's state, stage and progress, and its result when it succeeded",
                    "security": admin, "parameters": id_param.clone(),
                    "responses": responses(&[("200", ok_json("the job", job_ref.clone()))], &job_codes)},
                "delete": {"summary": "Cancel a job: at once when queued, at its next stage or iteration when running",
                    "security": admin, "parameters": id_param,
                    "responses": responses(&[("202", ok_json("cancelled, or cancellation requested", job_ref.clone()))],
                        &[&job_codes[..], &[JobEnded]].concat())}},
            "/api/openapi.json": {"get": {"summary": "This document", "responses": {"200": ok_json("OpenAPI 3.1", json!({"type": "object"}))}}}
        },
        "components": {
            "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer"}},
            "schemas": {
                "Customer": customer_schema(),
                "Prediction": {"type": "object", "properties": {
                    "segment": {"type": "integer"},
                    "segment_name": {"type": "string"},
                    "probabilities": {"type": "array", "items": {"type": "number"}}}},
                "RowError": {"type": "object", "properties": {"error": {"type": "object", "properties": {
                    "code": {"type": "string", "const": InvalidValue.name()},
                    "message": {"type": "string"},
                    "field": {"type": "string"},
                    "row": {"type": "integer", "description": "0-based index in `customers`"}}}}},
                "Error": {"type": "object", "properties": {"error": {"type": "object", "required": ["code", "message"], "properties": {
                    "code": {"type": "string", "enum": Code::ALL.iter().map(|c| c.name()).collect::<Vec<_>>()},
                    "message": {"type": "string"},
                    "field": {"type": "string"}, "row": {"type": "integer"}}}}},
                "JobOptions": {"type": "object", "additionalProperties": false, "properties": {
                    "source": {"type": ["string", "null"], "description": "a CSV/Parquet path on the server, or synthetic:rows=N,seed=S; default (null): the service's data.source"},
                    "device": {"enum": ["auto", "gpu", "cpu", null]},
                    "classifier": {"enum": ["gbdt", "mlp", "best", null]}}},
                "Job": {"type": "object", "properties": {
                    "id": {"type": "string"},
                    "state": {"enum": ["queued", "running", "succeeded", "failed", "cancelled"]},
                    "stage": {"type": "string"},
                    "stage_done": {"type": "integer"}, "stage_total": {"type": "integer"},
                    "progress": {"type": "number", "minimum": 0, "maximum": 1},
                    "cancel_requested": {"type": "boolean"},
                    "options": {"$ref": "#/components/schemas/JobOptions"},
                    "created_at": {"type": "string"}, "started_at": {"type": ["string", "null"]}, "finished_at": {"type": ["string", "null"]},
                    "result": {"type": ["object", "null"], "properties": {
                        "model_version": {"type": "string"}, "promoted": {"type": "boolean"}, "promotion_note": {"type": "string"},
                        "classifier": {"type": "string"}, "weighted_f1": {"type": "number"}, "silhouette": {"type": "number"},
                        "davies_bouldin": {"type": "number"}, "rows": {"type": "integer"}, "device": {"type": "string"},
                        "seconds": {"type": "number"}, "serving": {"type": "boolean"}}},
                    "error": {"type": ["string", "null"]}}}
            }
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_json_route_is_documented_and_every_feature_is_in_the_customer_schema() {
        let doc = document();
        assert_eq!(doc["paths"].as_object().unwrap().len(), 10);
        let props = doc["components"]["schemas"]["Customer"]["properties"]
            .as_object()
            .unwrap();
        assert_eq!(props.len(), FEATURES.len());
        for f in &FEATURES {
            assert!(props.contains_key(f.key), "{}", f.key);
        }
    }
}
