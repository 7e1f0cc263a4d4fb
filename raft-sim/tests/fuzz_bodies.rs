//! The `step_sequence` fuzz body on stable: over the checked-in corpus and generated inputs.

use proptest::prelude::*;

#[test]
fn step_sequence_corpus() {
    let dir = format!(
        "{}/../fuzz/corpus/step_sequence",
        env!("CARGO_MANIFEST_DIR")
    );
    let mut files: Vec<_> = std::fs::read_dir(&dir)
        .map(|entries| entries.filter_map(Result::ok).map(|e| e.path()).collect())
        .unwrap_or_default();
    files.sort();
    assert!(!files.is_empty(), "the corpus is checked in");
    for path in files {
        let data = std::fs::read(&path).expect("corpus file readable");
        raft_sim::fuzzing::step_sequence(&data);
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(300))]
    #[test]
    fn step_sequence_generated(data in proptest::collection::vec(any::<u8>(), 0..300)) {
        raft_sim::fuzzing::step_sequence(&data);
    }
}
