//! The documentation's tables against the definitions they copy: the 21 keys of a customer
//! (`schema::FEATURES`) in docs/api.md, and every key of `config/default.yaml` in
//! docs/settings.md.

use std::path::PathBuf;

use categorizer::schema::{FEATURES, Feature, FeatureKind};

/// A file of the repository, as text.
fn read(path: &str) -> String {
    let full = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join(path);
    std::fs::read_to_string(&full).unwrap_or_else(|e| panic!("{}: {e}", full.display()))
}

/// The text between the line `<!-- {name}:begin -->` and `<!-- {name}:end -->`.
fn marked<'a>(text: &'a str, path: &str, name: &str) -> &'a str {
    let (begin, end) = (
        format!("<!-- {name}:begin -->\n"),
        format!("<!-- {name}:end -->"),
    );
    let from = text
        .find(&begin)
        .unwrap_or_else(|| panic!("{path} has no {begin}"))
        + begin.len();
    let to = text[from..]
        .find(&end)
        .unwrap_or_else(|| panic!("{path} has no {end}"));
    &text[from..from + to]
}

/// One feature as a row of docs/api.md's table: key, type, bounds, unit, meaning.
fn feature_row(f: &Feature) -> String {
    let kind = match f.kind {
        FeatureKind::Integer => "integer",
        FeatureKind::Real => "number",
        FeatureKind::Coded => "code",
    };
    let mut meaning = f.label.to_string();
    if !f.choices.is_empty() {
        let codes: Vec<String> = f
            .choices
            .iter()
            .enumerate()
            .map(|(code, label)| format!("{code} = {label}"))
            .collect();
        meaning.push_str(&format!(": {}", codes.join(", ")));
    }
    if f.nullable() {
        meaning.push_str("; may be null or left out (imputed)");
    }
    format!(
        "| `{}` | {kind} | {} | {} | {} | {meaning} |\n",
        f.key, f.min, f.max, f.unit
    )
}

#[test]
fn api_page_lists_every_feature_key_with_its_type_and_bounds() {
    let mut want = String::from(
        "| key | type | min | max | unit | meaning |\n| --- | --- | --- | --- | --- | --- |\n",
    );
    for f in &FEATURES {
        want.push_str(&feature_row(f));
    }
    let page = read("docs/api.md");
    assert_eq!(
        marked(&page, "docs/api.md", "features"),
        want,
        "docs/api.md's table of the 21 keys is not the feature table's; put this there:\n{want}"
    );
}

/// The keys of a settings tree, dotted (`server.batcher.enabled`); a list or a scalar is a key.
fn dotted_keys(value: &serde_yaml::Value, prefix: &str, out: &mut Vec<String>) {
    match value {
        serde_yaml::Value::Mapping(map) => {
            for (name, inner) in map {
                let name = name.as_str().expect("a setting's name is text");
                let key = if prefix.is_empty() {
                    name.to_string()
                } else {
                    format!("{prefix}.{name}")
                };
                dotted_keys(inner, &key, out);
            }
        }
        _ => out.push(prefix.to_string()),
    }
}

/// The value a settings key has in a tree of them (`server.batcher.enabled`).
fn value_at<'a>(tree: &'a serde_yaml::Value, key: &str) -> &'a serde_yaml::Value {
    key.split('.').fold(tree, |v, name| &v[name])
}

#[test]
fn settings_page_names_every_key_of_the_default_settings_with_its_default() {
    let defaults: serde_yaml::Value =
        serde_yaml::from_str(&read("config/default.yaml")).expect("config/default.yaml parses");
    let mut keys = Vec::new();
    dotted_keys(&defaults, "", &mut keys);
    assert!(keys.len() > 50, "only {} keys: {keys:?}", keys.len());

    let page = read("docs/settings.md");
    // "| `server.port` | `5000` | meaning |": the key and its default, each in backticks.
    let rows: Vec<(&str, &str)> = marked(&page, "docs/settings.md", "settings")
        .lines()
        .filter_map(|line| line.strip_prefix("| `"))
        .filter_map(|rest| {
            let (key, rest) = rest.split_once('`')?;
            let default = rest
                .trim_start_matches(" | ")
                .strip_prefix('`')?
                .split('`')
                .next()?;
            Some((key, default))
        })
        .collect();
    let listed: Vec<&str> = rows.iter().map(|(k, _)| *k).collect();
    let missing: Vec<&String> = keys
        .iter()
        .filter(|k| !listed.contains(&k.as_str()))
        .collect();
    let stale: Vec<&&str> = listed
        .iter()
        .filter(|k| !keys.iter().any(|key| key == **k))
        .collect();
    assert!(
        missing.is_empty() && stale.is_empty(),
        "docs/settings.md's table of settings is stale: missing {missing:?}; not in config/default.yaml {stale:?}"
    );
    // Each default, read as YAML, is the built-in value.
    for (key, default) in rows {
        let documented: serde_yaml::Value = serde_yaml::from_str(default)
            .unwrap_or_else(|e| panic!("docs/settings.md: {key}'s default `{default}`: {e}"));
        assert_eq!(
            &documented,
            value_at(&defaults, key),
            "docs/settings.md gives {key} the default `{default}`; config/default.yaml has another"
        );
    }
}

/// The README's first prediction, its body sent as written to a running service: every key is
/// a feature, the customer is scored, and the answer has the fields the README shows.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_readme_first_prediction_works_as_pasted() {
    let readme = read("README.md");
    let curl = readme
        .lines()
        .skip_while(|l| !l.starts_with("curl -s localhost:5000/api/v1/predict"))
        .nth(1)
        .expect("the README has its first prediction's curl");
    let body = curl
        .trim()
        .strip_prefix("-d '")
        .and_then(|b| b.strip_suffix('\''))
        .expect("the curl's body is one -d '...' line");
    let parsed: serde_json::Value = serde_json::from_str(body).expect("the body is JSON");
    let customer = parsed["customers"][0].as_object().expect("one customer");
    let keys: Vec<&str> = customer.keys().map(String::as_str).collect();
    let features: Vec<&str> = FEATURES.iter().map(|f| f.key).collect();
    assert_eq!(
        keys, features,
        "the README's customer has the 21 keys in order"
    );

    let dir = tempfile::tempdir().unwrap();
    let (url, _) = crate::support::start(
        &crate::support::stored_model(dir.path(), 1),
        crate::support::settings(),
    )
    .await;
    let answer = reqwest::Client::new()
        .post(format!("{url}/api/v1/predict"))
        .header("content-type", "application/json")
        .body(body.to_string())
        .send()
        .await
        .unwrap();
    assert_eq!(answer.status(), 200);
    let answer = crate::support::json_body(answer).await;
    let p = &answer["predictions"][0];
    assert!(answer["model_version"].is_string(), "{answer}");
    assert!(
        p["segment"].is_u64() && p["segment_name"].is_string(),
        "{answer}"
    );
    assert!(
        p["probabilities"].as_array().is_some_and(|a| a.len() >= 2),
        "{answer}"
    );
    assert!(p["atypical"].is_boolean(), "{answer}");
}
