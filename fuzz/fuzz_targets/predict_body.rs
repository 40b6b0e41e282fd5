//! Any bytes as the body of `POST /api/v1/predict`: read or refused, never a panic; at most
//! the limit of customers; a row that is read holds only values the schema accepts.
#![no_main]

use categorizer::schema::{FEATURES, N_FEATURES, check_feature};
use categorizer::serve::rows::{BodyError, parse_predict_body};
use libfuzzer_sys::fuzz_target;

const MAX: usize = 8;

fuzz_target!(|data: &[u8]| {
    match parse_predict_body(data, MAX) {
        Ok(body) => {
            assert!(body.customers.len() <= MAX);
            for row in body.customers {
                match row.0 {
                    Ok(values) => {
                        for j in 0..N_FEATURES {
                            let v = values[j];
                            assert!(
                                (v.is_nan() && FEATURES[j].key == "Income") || v.is_finite(),
                                "{}: {v}",
                                FEATURES[j].key
                            );
                            // f32 rounding never takes an accepted value out of its range.
                            assert!(v.is_nan() || check_feature(j, f64::from(v)).is_ok());
                        }
                    }
                    Err(e) => assert!(e.message.len() < 400, "{}", e.message.len()),
                }
            }
        }
        Err(BodyError::TooManyCustomers { limit }) => assert_eq!(limit, MAX),
        Err(BodyError::Malformed(m)) => assert!(m.len() < 400, "{}", m.len()),
    }
});
