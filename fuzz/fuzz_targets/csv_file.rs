//! Any bytes as a CSV file given to `categorizer predict`: read in chunks of 1, 2 or 7 records
//! or all at once, the records (and the kept malformed ones) are the same, and an error is the
//! same error; never a panic.
#![no_main]

use categorizer::predict::read_records;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let dir = std::env::temp_dir().join(format!("categorizer-fuzz-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("input.csv");
    std::fs::write(&path, data).unwrap();
    for keep in [false, true] {
        let whole = read_records(&path, 1_000_000, keep).map_err(|e| e.to_string());
        if let Ok(r) = &whole {
            assert!(r.rows.iter().all(|row| row.len() == r.columns.len()));
            assert!(r.malformed.iter().all(|(i, _)| *i < r.rows.len()));
            assert!(keep || r.malformed.is_empty());
        }
        for chunk in [1, 2, 7] {
            let chunked = read_records(&path, chunk, keep).map_err(|e| e.to_string());
            assert_eq!(whole, chunked, "chunks of {chunk}, keep {keep}");
        }
    }
});
