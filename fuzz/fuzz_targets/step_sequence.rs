#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    raft_sim::fuzzing::step_sequence(data);
});
