//! Same seed, same trace, byte for byte; a different seed, a different trace.

use std::io::Write;
use std::sync::{Arc, Mutex};

use raft_sim::explore::{run_seed, ExploreConfig};

/// A `Write` that appends into a shared buffer, so the full text trace can be inspected.
#[derive(Clone, Default)]
struct Shared(Arc<Mutex<Vec<u8>>>);

impl Write for Shared {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().expect("not poisoned").extend_from_slice(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

fn traced_run(seed: u64) -> (Vec<u8>, u64) {
    let sink = Shared::default();
    let config = ExploreConfig {
        fault_ms: 2_000,
        ..ExploreConfig::new(5)
    };
    let report = run_seed(seed, &config, Some(Box::new(sink.clone())));
    assert_eq!(report.failure, None);
    let text = sink.0.lock().expect("not poisoned").clone();
    (text, report.trace_hash)
}

fn fnv(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xCBF2_9CE4_8422_2325, |hash, &byte| {
        (hash ^ u64::from(byte)).wrapping_mul(0x0000_0100_0000_01B3)
    })
}

#[test]
fn same_seed_gives_a_byte_identical_trace() {
    let (first, first_hash) = traced_run(42);
    let (second, second_hash) = traced_run(42);
    assert!(first.len() > 10_000, "the trace has substance");
    assert_eq!(fnv(&first), fnv(&second));
    assert!(first == second);
    assert_eq!(first_hash, second_hash);
}

#[test]
fn different_seed_gives_a_different_trace() {
    let (first, first_hash) = traced_run(42);
    let (other, other_hash) = traced_run(43);
    assert_ne!(fnv(&first), fnv(&other));
    assert_ne!(first_hash, other_hash);
}
