//! Many replicas, one store: promotions from several processes at once are all kept (the
//! compare-and-swap of `HISTORY`), on a local store and on a real S3 API server (moto, which
//! honours `If-Match` / `If-None-Match` on PutObject: checked when this was written).

use categorizer::registry::store::s3::S3Store;
use categorizer::registry::store::{LocalStore, MODEL_FILE, ModelStore};

/// Two processes at a time, each promoting its own versions one `categorizer models
/// promote` after another: every promotion ends in `HISTORY`, and the current version is
/// its last line.
fn promote_from_two_processes(store: &dyn ModelStore, spec: &str, env: &[(&str, String)]) {
    let names: Vec<String> = (0..2)
        .flat_map(|p| (0..12).map(move |i| format!("20261203T0000{i:02}Z-p{p}000000")))
        .collect();
    for v in &names {
        store.put(v, &[(MODEL_FILE, b"m")]).unwrap();
    }
    std::thread::scope(|s| {
        for p in 0..2 {
            let names = &names;
            s.spawn(move || {
                for v in names.iter().filter(|v| v.ends_with(&format!("p{p}000000"))) {
                    let mut c = crate::support::categorizer();
                    c.args(["models", "--models", spec, "promote", v]);
                    for (k, val) in env {
                        c.env(k, val);
                    }
                    crate::support::succeed(&mut c);
                }
            });
        }
    });
    let history = store.history().unwrap();
    let mut sorted = history.clone();
    sorted.sort();
    let mut want = names.clone();
    want.sort();
    assert_eq!(sorted, want, "a promotion was lost: {history:?}");
    assert_eq!(store.current().unwrap().as_ref(), history.last());
}

#[test]
fn promotions_from_two_processes_at_once_are_never_lost_on_a_local_store() {
    let dir = tempfile::tempdir().unwrap();
    let spec = dir.path().join("models");
    let store = LocalStore::new(&spec);
    promote_from_two_processes(&store, &spec.display().to_string(), &[]);
}

#[test]
fn promotions_from_two_processes_at_once_are_never_lost_on_s3() {
    let Some(endpoint) = crate::support::service("CATEGORIZER_TEST_S3") else {
        return;
    };
    let uri = format!("s3://categorizer-test/{}", crate::support::unique("cas"));
    let mut settings = crate::support::settings().models.s3;
    settings.endpoint = Some(endpoint.clone());
    settings.force_path_style = true;
    let store = S3Store::connect(&uri, &settings).unwrap();
    store.ensure_bucket().unwrap();
    promote_from_two_processes(
        &store,
        &uri,
        &[
            ("CATEGORIZER__MODELS__S3__ENDPOINT", endpoint),
            ("CATEGORIZER__MODELS__S3__FORCE_PATH_STYLE", "true".into()),
        ],
    );
}
