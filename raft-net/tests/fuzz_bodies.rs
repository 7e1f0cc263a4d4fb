//! The raft-net fuzz bodies on stable: over the checked-in corpus and over generated inputs.

use proptest::prelude::*;

fn corpus(target: &str) -> Vec<(String, Vec<u8>)> {
    let dir = format!("{}/../fuzz/corpus/{target}", env!("CARGO_MANIFEST_DIR"));
    let mut files: Vec<_> = std::fs::read_dir(&dir)
        .map(|entries| entries.filter_map(Result::ok).map(|e| e.path()).collect())
        .unwrap_or_default();
    files.sort();
    files
        .iter()
        .map(|path| {
            let name = path.display().to_string();
            (name, std::fs::read(path).expect("corpus file readable"))
        })
        .collect()
}

#[test]
fn decode_datagram_corpus() {
    let inputs = corpus("decode_datagram");
    assert!(!inputs.is_empty(), "the corpus is checked in");
    for (name, input) in inputs {
        eprintln!("{name}");
        raft_net::fuzzing::decode_datagram(&input);
    }
}

#[test]
fn wal_recover_corpus() {
    let inputs = corpus("wal_recover");
    assert!(!inputs.is_empty(), "the corpus is checked in");
    for (name, input) in inputs {
        eprintln!("{name}");
        raft_net::fuzzing::wal_recover(&input);
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2000))]
    #[test]
    fn decode_datagram_generated(data in proptest::collection::vec(any::<u8>(), 0..400)) {
        raft_net::fuzzing::decode_datagram(&data);
    }
}

proptest! {
    // Every case creates, fsyncs and removes a data dir: fewer cases keep the test quick.
    #![proptest_config(ProptestConfig::with_cases(400))]
    #[test]
    fn wal_recover_generated(data in proptest::collection::vec(any::<u8>(), 0..300)) {
        raft_net::fuzzing::wal_recover(&data);
    }
}
