#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    raft_core::fuzzing::single_node_messages(data);
});
