//! Any bytes as the web form's urlencoded body: every field gets its value or its error, never
//! a panic, and a value without an error is one the schema accepts.
#![no_main]

use categorizer::schema::{FEATURES, N_FEATURES, check_feature};
use categorizer::serve::routes::web::parse_form;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let (_, values, errors) = parse_form(data);
    for j in 0..N_FEATURES {
        if errors[j].is_none() {
            let v = values[j];
            assert!(
                (v.is_nan() && FEATURES[j].key == "Income") || check_feature(j, f64::from(v)).is_ok(),
                "{}: {v}",
                FEATURES[j].key
            );
        }
    }
});
