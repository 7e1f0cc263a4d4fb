//! Simulated events per second: a 5-node cluster with faults on (loss, duplication, crashes,
//! partitions, a client workload), the way `explore` runs it. Criterion reports the time per
//! seed; the events per second follow from the element throughput.

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use raft_sim::explore::{run_seed, ExploreConfig};

fn explore_seed(c: &mut Criterion) {
    let config = ExploreConfig {
        fault_ms: 10_000,
        ..ExploreConfig::new(5)
    };
    // Seeds differ in how many events they produce, so measure a fixed one.
    let seed = 7;
    let events = run_seed(seed, &config, None).events;
    let mut group = c.benchmark_group("sim");
    group.throughput(Throughput::Elements(events));
    group.sample_size(20);
    group.bench_function("five_nodes_with_faults", |b| {
        b.iter(|| run_seed(seed, &config, None));
    });
    group.finish();
}

criterion_group!(benches, explore_seed);
criterion_main!(benches);
