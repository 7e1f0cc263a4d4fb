//! `etcd-load put|get ENDPOINT CONNECTIONS CLIENTS OPS VALUE_BYTES`: CLIENTS concurrent clients,
//! each with one request in flight, spread over CONNECTIONS gRPC connections, OPS requests in
//! all, 8-byte keys and VALUE_BYTES-byte values. `get` first writes 1000 keys and then reads
//! them (etcd's default range request is linearizable). Prints requests/s and latency
//! percentiles.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Instant;

use etcd_client::Client;

const READ_KEYS: u64 = 1000;

#[derive(Clone, Copy, PartialEq)]
enum Workload {
    Put,
    Get,
}

fn usage() -> ! {
    eprintln!("usage: etcd-load put|get ENDPOINT CONNECTIONS CLIENTS OPS VALUE_BYTES");
    std::process::exit(2)
}

fn number(arg: Option<&String>) -> u64 {
    arg.and_then(|s| s.parse().ok()).unwrap_or_else(|| usage())
}

fn key(i: u64) -> Vec<u8> {
    format!("{i:08}").into_bytes()
}

#[tokio::main]
async fn main() -> Result<(), etcd_client::Error> {
    let args: Vec<String> = std::env::args().collect();
    let workload = match args.get(1).map(String::as_str) {
        Some("put") => Workload::Put,
        Some("get") => Workload::Get,
        _ => usage(),
    };
    let endpoint = args.get(2).cloned().unwrap_or_else(|| usage());
    let connections = number(args.get(3)).max(1);
    let clients = number(args.get(4)).max(1);
    let ops = number(args.get(5));
    let value = vec![b'v'; number(args.get(6)) as usize];

    let mut pool = Vec::new();
    for _ in 0..connections {
        pool.push(Client::connect([endpoint.as_str()], None).await?);
    }
    if workload == Workload::Get {
        let mut kv = pool[0].kv_client();
        for i in 0..READ_KEYS {
            kv.put(key(i), value.clone(), None).await?;
        }
    }
    let next = Arc::new(AtomicU64::new(0));
    let started = Instant::now();
    let mut tasks = Vec::new();
    for c in 0..clients {
        let mut kv = pool[(c % connections) as usize].kv_client();
        let next = Arc::clone(&next);
        let value = value.clone();
        tasks.push(tokio::spawn(async move {
            let mut latencies = Vec::new();
            loop {
                let i = next.fetch_add(1, Ordering::Relaxed);
                if i >= ops {
                    return Ok::<_, etcd_client::Error>(latencies);
                }
                let sent = Instant::now();
                match workload {
                    Workload::Put => {
                        kv.put(key(i), value.clone(), None).await?;
                    }
                    Workload::Get => {
                        let answer = kv.get(key(i % READ_KEYS), None).await?;
                        assert_eq!(answer.kvs().len(), 1, "a preloaded key is missing");
                    }
                }
                latencies.push(sent.elapsed().as_micros() as u64);
            }
        }));
    }
    let mut latencies = Vec::with_capacity(ops as usize);
    for task in tasks {
        latencies.extend(task.await.expect("a client task panicked")?);
    }
    let elapsed = started.elapsed().as_secs_f64();
    latencies.sort_unstable();
    if latencies.is_empty() {
        println!("no requests");
        return Ok(());
    }
    let ms = |q: f64| latencies[((latencies.len() - 1) as f64 * q).round() as usize] as f64 / 1e3;
    let name = if workload == Workload::Put {
        "puts"
    } else {
        "linearizable gets"
    };
    println!(
        "etcd {name}: {clients} clients over {connections} connections, {ops} of {} B: {:.0}/s  p50 {:.2} ms  p90 {:.2} ms  p99 {:.2} ms  max {:.2} ms",
        value.len(),
        ops as f64 / elapsed,
        ms(0.5),
        ms(0.9),
        ms(0.99),
        ms(1.0)
    );
    Ok(())
}
