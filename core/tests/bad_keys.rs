//! The `keys` rows of the bad-input table (tests/bad-inputs/table.json) against the native
//! reader: each file, made with the library calls `mdeploy sign` / `mdeploy encrypt` run, is
//! refused under its row's trust policy and decryption key with the row's code and a message
//! naming its `says`, and the good file under the same configuration loads right after. The
//! hosts (npm, `mdeploy serve`, the CLI) run the same rows through their own front doors.

#[path = "../../tests/bad-inputs/table.rs"]
mod table;
use table::{key_case, key_case_error, s, table};

#[test]
fn every_key_row_is_refused_with_its_code_and_the_good_file_loads_after_it() {
    let t = table();
    let rows = t["keys"].as_array().expect("keys");
    assert!(rows.len() >= 10, "the table has {} key rows", rows.len());
    let models = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../models");
    for row in rows {
        let name = s(row, "name");
        let case = key_case(row, &models);
        let e = key_case_error(&case).err().unwrap_or_else(|| panic!("{name}: loaded"));
        assert_eq!(e.code(), s(row, "code"), "{name}: {e}");
        let says = s(row, "says").to_lowercase();
        assert!(e.message.to_lowercase().contains(&says), "{name}: {:?} should mention {says:?}", e.message);
        assert!(e.message.len() > 30, "{name}: a message that says what to do: {:?}", e.message);
        let good = table::KeyCase { bytes: case.good.clone(), key_file: None, ..case };
        key_case_error(&good).unwrap_or_else(|e| panic!("the good file after {name}: {e}"));
    }
}
