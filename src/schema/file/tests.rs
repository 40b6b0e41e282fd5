use super::*;
use crate::schema::derive::MAX_DAYS;
use crate::schema::{FEATURES, RAW_SCHEMA_YAML};

/// A small valid schema of an online shop, with `extra` appended to its features.
fn shop(extra: &str) -> String {
    format!(
        r#"id: customer_id
reference_date: latest
columns:
  - {{ name: customer_id, type: integer, min: 0 }}
  - {{ name: signup_date, type: date, format: "%Y-%m-%d" }}
  - {{ name: birth_year, type: integer, min: 1900, max: 2026 }}
  - {{ name: orders_12m, type: integer, min: 0 }}
  - {{ name: returns_12m, type: integer, min: 0, max: 500 }}
  - {{ name: revenue_12m, type: number, nullable: true, min: 0 }}
  - {{ name: newsletter, type: integer, min: 0, max: 1 }}
  - {{ name: loyalty_tier, type: category, values: [none, silver, gold, platinum] }}
features:
  - {{ name: Age, label: Age, unit: years, years_since: birth_year, max: 120 }}
  - {{ name: Tenure_Days, days_since: signup_date }}
  - {{ name: Orders, column: orders_12m }}
  - {{ name: Tier, code: loyalty_tier, groups: [[none], [silver], [gold, platinum]] }}
  - {{ name: Engaged, flag: [newsletter, returns_12m] }}
  - {{ name: Items, sum: [orders_12m, returns_12m], skewed: true }}
{extra}"#
    )
}

fn problems(text: &str) -> Vec<Problem> {
    SchemaFile::parse(text, "test.yaml")
        .expect("parses")
        .problems(text)
}

/// The one problem of a schema, as text; fails when there is not exactly one.
fn one_problem(text: &str) -> String {
    let p = problems(text);
    assert_eq!(p.len(), 1, "{p:?}");
    p[0].to_string()
}

#[test]
fn the_built_in_file_describes_the_compiled_feature_table() {
    let file = SchemaFile::parse(RAW_SCHEMA_YAML, "config/schema.yaml").unwrap();
    let schema = file.resolve(RAW_SCHEMA_YAML, "config/schema.yaml").unwrap();
    assert_eq!(schema.reference_date, ReferenceRule::Setting);
    assert_eq!(schema.id, None);
    assert_eq!(schema.features.len(), FEATURES.len());
    for (got, want) in schema.features.iter().zip(&FEATURES) {
        let want = FeatureDefinition {
            key: want.key.into(),
            label: want.label.into(),
            unit: want.unit.into(),
            kind: want.kind,
            choices: want.choices.iter().map(|c| c.to_string()).collect(),
            min: want.min,
            max: want.max,
            skewed: Some(want.skewed),
            derived_from: (&want.derivation).into(),
        };
        assert_eq!(got, &want);
    }
}

#[test]
fn a_shop_schema_resolves_with_kinds_bounds_and_codes_decided() {
    let text = shop("");
    let s = SchemaFile::parse(&text, "shop.yaml")
        .unwrap()
        .resolve(&text, "shop.yaml")
        .unwrap();
    assert_eq!(s.id.as_deref(), Some("customer_id"));
    assert_eq!(s.reference_date, ReferenceRule::Latest);
    let f = |name: &str| s.features.iter().find(|f| f.key == name).unwrap();
    assert_eq!((f("Age").min, f("Age").max), (0.0, 120.0));
    assert_eq!(f("Age").kind, FeatureKind::Integer);
    assert_eq!(
        (f("Tenure_Days").min, f("Tenure_Days").max),
        (0.0, MAX_DAYS)
    );
    assert_eq!(f("Tenure_Days").label, "Tenure Days");
    // No upper bound on orders_12m: none on the feature either.
    assert_eq!((f("Orders").min, f("Orders").max), (0.0, f64::MAX));
    assert_eq!(f("Tier").kind, FeatureKind::Coded);
    assert_eq!(f("Tier").choices, ["none", "silver", "gold/platinum"]);
    assert_eq!(f("Tier").max, 2.0);
    assert_eq!(f("Engaged").choices, ["No", "Yes"]);
    assert_eq!(f("Items").skewed, Some(true));
    assert_eq!(f("Orders").skewed, None);
}

#[test]
fn a_yaml_mistake_or_an_unknown_key_names_the_line() {
    let e = SchemaFile::parse(&shop("  - { name: X, colum: orders_12m }\n"), "s.yaml")
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("unknown field `colum`") && e.contains("line 19"),
        "{e}"
    );
    let e = SchemaFile::parse("columns: [\n", "s.yaml")
        .unwrap_err()
        .to_string();
    assert!(e.starts_with("schema s.yaml:") && e.contains("line"), "{e}");
    let e = SchemaFile::parse("colums: []\n", "s.yaml")
        .unwrap_err()
        .to_string();
    assert!(e.contains("unknown field `colums`"), "{e}");
    let e = SchemaFile::parse(
        "columns:\n  - { name: a, type: text }\nfeatures: []\n",
        "s.yaml",
    )
    .unwrap_err()
    .to_string();
    assert!(
        e.contains("unknown variant `text`") && e.contains("line 2"),
        "{e}"
    );
}

#[test]
fn each_bad_feature_is_named_with_its_line() {
    let cases: [(&str, &str); 13] = [
        (
            "  - { name: X, column: orders_12m, sum: [orders_12m] }",
            "2 derivations (column, sum)",
        ),
        ("  - { name: X, label: nothing }", "no derivation"),
        (
            "  - { name: X, column: orders }",
            "reads column 'orders', which is not one of",
        ),
        (
            "  - { name: X, code: loyalty_tier, groups: [[none], [diamond]] }",
            "group 1 names 'diamond', which is not one of loyalty_tier's values",
        ),
        (
            "  - { name: X, code: loyalty_tier, groups: [[none, gold], [gold]] }",
            "'gold' is in group 0 and in group 1",
        ),
        (
            "  - { name: Orders, column: returns_12m }",
            "a second feature of this name",
        ),
        (
            "  - { name: 2nd, column: orders_12m }",
            "'2nd' cannot be a feature name",
        ),
        (
            "  - { name: \"a b\", column: orders_12m }",
            "'a b' cannot be a feature name",
        ),
        (
            "  - { name: X, column: loyalty_tier }",
            "category column (use `code`",
        ),
        (
            "  - { name: X, days_since: orders_12m }",
            "days_since reads a date",
        ),
        (
            "  - { name: X, column: orders_12m, groups: [[a]] }",
            "`groups` goes with `code`",
        ),
        (
            "  - { name: X, code: loyalty_tier, groups: [[none], [gold]], labels: [a] }",
            "1 labels for 2 codes",
        ),
        (
            "  - { name: X, column: returns_12m, min: 9, max: 3 }",
            "are not a range",
        ),
    ];
    for (line, want) in cases {
        let got = one_problem(&shop(&format!("{line}\n")));
        assert!(got.contains(want), "{line}: {got}");
        assert!(
            got.contains("features[6]") && got.ends_with("(line 19)"),
            "{line}: {got}"
        );
    }
}

#[test]
fn bad_columns_and_top_level_keys_are_named() {
    let text = shop("").replace(r#"format: "%Y-%m-%d""#, r#"format: "%Y-%b-%d""#);
    assert!(
        one_problem(&text).contains("is not a date format"),
        "{text}"
    );
    let text = shop("").replace(r#", format: "%Y-%m-%d""#, "");
    assert!(one_problem(&text).contains("needs a `format`"));
    let text = shop("").replace("{ name: newsletter,", "{ name: orders_12m,");
    let p = problems(&text);
    assert!(
        p.iter()
            .any(|p| p.to_string().contains("a second column of this name")),
        "{p:?}"
    );
    let text = shop("").replace("id: customer_id", "id: client");
    assert!(one_problem(&text).contains("'client' is not one of the columns"));
    let text = shop("").replace("reference_date: latest", "reference_date: yesterday");
    let got = one_problem(&text);
    assert!(
        got.starts_with("reference_date:") && got.ends_with("(line 2)"),
        "{got}"
    );
    let text = "columns:\n  - { name: a, type: integer }\n";
    assert!(one_problem(text).contains("no features"));
}

#[test]
fn more_features_than_the_bound_is_refused() {
    let many: String = (0..MAX_FEATURES)
        .map(|i| format!("  - {{ name: F{i}, column: orders_12m }}\n"))
        .collect();
    let got = problems(&shop(&many));
    assert!(
        got.iter()
            .any(|p| p.to_string().contains(&format!("at most {MAX_FEATURES}"))),
        "{got:?}"
    );
}

#[test]
fn resolve_lists_every_mistake_in_one_error() {
    let text = shop("  - { name: X, column: nope }\n  - { name: Y }\n");
    let e = SchemaFile::parse(&text, "s.yaml")
        .unwrap()
        .resolve(&text, "s.yaml")
        .unwrap_err()
        .to_string();
    assert!(e.starts_with("schema s.yaml: 2 mistakes:"), "{e}");
    assert!(
        e.contains("features[6] (X)") && e.contains("features[7] (Y)"),
        "{e}"
    );
}
