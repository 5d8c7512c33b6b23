#![no_main]
// cargo fuzz run --fuzz-dir bench/fuzz --features libfuzzer -s none kserve_json   (bench/fuzz/run.sh)
libfuzzer_sys::fuzz_target!(|data: &[u8]| mdeploy_fuzz::kserve_json(data));
