//! The OpenAPI 3.1 document of the JSON API (`GET /api/openapi.json`), derived by utoipa: each
//! handler's `#[utoipa::path]` and the types it takes and answers with, collected by the router
//! that serves it (utoipa-axum), so a route and its documentation are written once. The
//! customer schema is generated from the one feature definition, the error responses and the
//! error schema from the code table.

use std::borrow::Cow;

use serde_json::{Value, json};
use utoipa::openapi::RefOr;
use utoipa::openapi::schema::Schema;
use utoipa::{Modify, OpenApi, PartialSchema, ToSchema};

use crate::schema::{FEATURES, FeatureKind};

/// A customer's 21 features (the schema is generated from [`FEATURES`]).
pub struct Customer;

impl PartialSchema for Customer {
    fn schema() -> RefOr<Schema> {
        RefOr::T(serde_json::from_value(customer_schema()).expect("a well-formed schema"))
    }
}

impl ToSchema for Customer {
    fn name() -> Cow<'static, str> {
        "Customer".into()
    }
}

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

/// The bearer scheme of the training routes.
struct Security;

impl Modify for Security {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let bearer = serde_json::from_value(json!({"type": "http", "scheme": "bearer"}))
            .expect("a well-formed security scheme");
        openapi
            .components
            .get_or_insert_with(Default::default)
            .security_schemes
            .insert("bearer".into(), bearer);
    }
}

/// What the document says besides its routes.
#[derive(OpenApi)]
#[openapi(
    info(
        title = "Customer Categorizer",
        description = "Sorts retail customers into segments. Every JSON error is \
            `{\"error\": {\"code\", \"message\", \"field\"?, \"row\"?}}` with a stable snake_case code. \
            Training endpoints need `Authorization: Bearer <CATEGORIZER_ADMIN_TOKEN>` when that \
            variable is set, and accept only loopback clients when it is not."
    ),
    components(schemas(Customer, super::error::ErrorSchema)),
    modifiers(&Security)
)]
pub struct ApiDoc;

/// The document as JSON, encoded once when the router is built (the router's routes are
/// what it documents) and handed to its route as an extension.
#[derive(Clone)]
pub struct Document(pub std::sync::Arc<[u8]>);

impl Document {
    pub fn new(doc: &utoipa::openapi::OpenApi) -> Self {
        Self(
            serde_json::to_vec(doc)
                .expect("the document serialises")
                .into(),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_json_route_is_documented_and_every_feature_is_in_the_customer_schema() {
        let doc = super::super::routes::all().split_for_parts().1;
        let doc: Value = serde_json::from_slice(&Document::new(&doc).0).unwrap();
        assert_eq!(doc["paths"].as_object().unwrap().len(), 12);
        assert!(doc["paths"]["/api/v1/model/segments/{id}"]["put"].is_object());
        let props = doc["components"]["schemas"]["Customer"]["properties"]
            .as_object()
            .unwrap();
        assert_eq!(props.len(), FEATURES.len());
        for f in &FEATURES {
            assert!(props.contains_key(f.key), "{}", f.key);
        }
    }
}
