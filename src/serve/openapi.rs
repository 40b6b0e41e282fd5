//! The OpenAPI 3.1 document of the JSON API (`GET /api/openapi.json`). The customer schema is
//! generated from the one feature definition, like the form and the model's input.

use serde_json::{Value, json};

use crate::schema::{FEATURES, FeatureKind};

/// Every JSON route the router serves, as `(method, path)`; a test checks each is documented.
pub const JSON_ROUTES: [(&str, &str); 11] = [
    ("get", "/healthz"),
    ("get", "/readyz"),
    ("get", "/api/v1/model"),
    ("get", "/api/v1/validation"),
    ("post", "/api/v1/predict"),
    ("post", "/api/v1/train"),
    ("get", "/api/v1/jobs"),
    ("get", "/api/v1/jobs/{id}"),
    ("delete", "/api/v1/jobs/{id}"),
    ("get", "/train"),
    ("get", "/api/openapi.json"),
];

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

fn error_response(description: &str) -> Value {
    json!({
        "description": description,
        "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}}
    })
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
    let auth_errors = |mut responses: serde_json::Map<String, Value>| {
        responses.insert(
            "401".into(),
            error_response("a token is configured and the request lacks it (code `unauthorized`)"),
        );
        responses.insert(
            "403".into(),
            error_response(
                "no token is configured and the client is not on the loopback interface (code `forbidden`)",
            ),
        );
        Value::Object(responses)
    };
    let train_started = {
        let mut r = serde_json::Map::new();
        r.insert("202".into(), ok_json("the job was queued", job_ref.clone()));
        r.insert(
            "429".into(),
            error_response("the job queue is full (code `training_queue_full`); see Retry-After"),
        );
        r.insert(
            "503".into(),
            error_response("training is disabled on this server (code `training_disabled`)"),
        );
        r
    };
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
            "/readyz": {"get": {"summary": "Readiness: a model is loaded", "responses": {
                "200": ok_json("ready", json!({"type": "object", "properties": {"ready": {"type": "boolean"}, "model_version": {"type": "string"}}}))}}},
            "/api/v1/model": {"get": {"summary": "The served model's manifest: version, metrics, feature schema, segments", "responses": {
                "200": ok_json("the manifest", json!({"type": "object"}))}}},
            "/api/v1/validation": {"get": {"summary": "The latest training run's data validation report: schema check and drift per column (HTML at /validation)", "responses": {
                "200": ok_json("the report", json!({"type": "object"})),
                "404": error_response("no training run of this service, nor the served model, has a report")}}},
            "/api/v1/predict": {"post": {
                "summary": "Segments of up to `server.max_customers` customers, in input order",
                "description": "Concurrent requests are merged by the dynamic batcher. A customer with a bad value \
                    (missing or unknown field, a string for a number, NaN, out of range) does not fail the \
                    request: its slot in `predictions` holds `{\"error\": {\"code\": \"invalid_value\", \"message\", \
                    \"field\", \"row\"}}` and every other customer is predicted.",
                "requestBody": {"required": true, "content": {"application/json": {"schema": {
                    "type": "object", "required": ["customers"], "additionalProperties": false,
                    "properties": {"customers": {"type": "array", "items": {"$ref": "#/components/schemas/Customer"}}}}}}},
                "responses": {
                    "200": ok_json("one prediction or row error per customer", json!({
                        "type": "object",
                        "properties": {
                            "model_version": {"type": "string"},
                            "predictions": {"type": "array", "items": {"anyOf": [
                                {"$ref": "#/components/schemas/Prediction"},
                                {"$ref": "#/components/schemas/RowError"}]}}}})),
                    "400": error_response("the body is not JSON of this shape (code `malformed_json`)"),
                    "413": error_response("the body is over `server.max_body_bytes` (`body_too_large`) or has more than `server.max_customers` customers (`too_many_customers`)"),
                    "503": error_response("the prediction queue is full (`overloaded`) or the request's deadline passed (`deadline_exceeded`); see Retry-After")
                }}},
            "/api/v1/train": {"post": {
                "summary": "Queue a training job; one job runs at a time",
                "security": admin,
                "requestBody": {"required": false, "content": {"application/json": {"schema": {"$ref": "#/components/schemas/JobOptions"}}}},
                "responses": auth_errors({
                    let mut r = train_started.clone();
                    r.insert("400".into(), error_response("the options are not valid (`malformed_json`, `invalid_option` with `field`)"));
                    r
                })}},
            "/train": {"get": {
                "summary": "Queue a training job with the default options (the original app's route)",
                "security": admin,
                "responses": auth_errors(train_started)}},
            "/api/v1/jobs": {"get": {
                "summary": "Every job the service remembers, newest first",
                "security": admin,
                "responses": auth_errors({
                    let mut r = serde_json::Map::new();
                    r.insert("200".into(), ok_json("the jobs", json!({"type": "object", "properties": {"jobs": {"type": "array", "items": job_ref.clone()}}})));
                    r
                })}},
            "/api/v1/jobs/{id}": {
                "get": {"summary": "A job's state, stage and progress, and its result when it succeeded",
                    "security": admin, "parameters": id_param.clone(),
                    "responses": auth_errors({
                        let mut r = serde_json::Map::new();
                        r.insert("200".into(), ok_json("the job", job_ref.clone()));
                        r.insert("404".into(), error_response("no such job (`job_not_found`)"));
                        r
                    })},
                "delete": {"summary": "Cancel a job: at once when queued, at its next stage or iteration when running",
                    "security": admin, "parameters": id_param,
                    "responses": auth_errors({
                        let mut r = serde_json::Map::new();
                        r.insert("202".into(), ok_json("cancelled, or cancellation requested", job_ref.clone()));
                        r.insert("404".into(), error_response("no such job (`job_not_found`)"));
                        r.insert("409".into(), error_response("the job has already ended (`job_ended`)"));
                        r
                    })}},
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
                    "code": {"type": "string", "const": "invalid_value"},
                    "message": {"type": "string"},
                    "field": {"type": "string"},
                    "row": {"type": "integer", "description": "0-based index in `customers`"}}}}},
                "Error": {"type": "object", "properties": {"error": {"type": "object", "required": ["code", "message"], "properties": {
                    "code": {"type": "string"}, "message": {"type": "string"},
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
        for (method, path) in JSON_ROUTES {
            assert!(
                doc["paths"][path][method].is_object(),
                "{method} {path} is not in the document"
            );
        }
        let props = doc["components"]["schemas"]["Customer"]["properties"]
            .as_object()
            .unwrap();
        assert_eq!(props.len(), FEATURES.len());
        for f in &FEATURES {
            assert!(props.contains_key(f.key), "{}", f.key);
        }
    }
}
