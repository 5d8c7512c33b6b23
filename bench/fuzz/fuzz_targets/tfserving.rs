#![no_main]
// cargo fuzz run --fuzz-dir bench/fuzz --features libfuzzer -s none tfserving   (bench/fuzz/run.sh)
libfuzzer_sys::fuzz_target!(|data: &[u8]| mdeploy_fuzz::tfserving(data));
