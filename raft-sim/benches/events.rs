//! Simulated events per second and simulated seconds per wall second: a 5-node cluster with
//! faults on (loss, duplication, crashes, partitions, a client workload), the way `explore`
//! runs it. Criterion reports the time per seed and, as its element throughput, events per
//! second; the line printed after it gives both rates from the median sample.

use std::cell::RefCell;
use std::hint::black_box;
use std::time::{Duration, Instant};

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use raft_sim::explore::{run_seed, ExploreConfig};

fn explore_seed(c: &mut Criterion) {
    let config = ExploreConfig {
        fault_ms: 10_000,
        ..ExploreConfig::new(5)
    };
    // Seeds differ in how many events they produce, so measure a fixed one.
    let seed = 7;
    let report = run_seed(seed, &config, None);
    let (events, sim_ms) = (report.events, report.sim_ms);
    let per_seed = RefCell::new(Vec::new());
    let mut group = c.benchmark_group("sim");
    group.throughput(Throughput::Elements(events));
    group.sample_size(20);
    group.bench_function("five_nodes_with_faults", |b| {
        b.iter_custom(|iters| {
            let start = Instant::now();
            for _ in 0..iters {
                black_box(run_seed(seed, &config, None));
            }
            let elapsed = start.elapsed();
            per_seed
                .borrow_mut()
                .push(elapsed.as_secs_f64() / iters.max(1) as f64);
            elapsed
        });
    });
    group.finish();
    let mut samples = per_seed.into_inner();
    if samples.is_empty() {
        return;
    }
    samples.sort_by(f64::total_cmp);
    let median = samples[samples.len() / 2].max(Duration::from_nanos(1).as_secs_f64());
    println!(
        "sim/five_nodes_with_faults: seed {seed}, {events} events, {:.1} simulated s; median {:.2} ms per seed: {:.0} events/s, {:.0} simulated s per wall s",
        sim_ms as f64 / 1000.0,
        median * 1000.0,
        events as f64 / median,
        sim_ms as f64 / 1000.0 / median
    );
}

criterion_group!(benches, explore_seed);
criterion_main!(benches);
