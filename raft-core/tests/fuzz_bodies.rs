//! The fuzz bodies on stable: over the checked-in corpus and over generated inputs.

use proptest::prelude::*;

fn corpus(target: &str) -> Vec<Vec<u8>> {
    let dir = format!("{}/../fuzz/corpus/{target}", env!("CARGO_MANIFEST_DIR"));
    let mut files: Vec<_> = std::fs::read_dir(&dir)
        .map(|entries| entries.filter_map(Result::ok).map(|e| e.path()).collect())
        .unwrap_or_default();
    files.sort();
    files
        .iter()
        .map(|path| std::fs::read(path).expect("corpus file readable"))
        .collect()
}

#[test]
fn single_node_messages_corpus() {
    let inputs = corpus("single_node_messages");
    assert!(!inputs.is_empty(), "the corpus is checked in");
    for input in inputs {
        raft_core::fuzzing::single_node_messages(&input);
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(3000))]
    #[test]
    fn single_node_messages_generated(data in proptest::collection::vec(any::<u8>(), 0..600)) {
        raft_core::fuzzing::single_node_messages(&data);
    }
}
