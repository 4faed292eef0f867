//! One hop through Keel's bounded queue (`keel_engine::Queue`, `try_push`/`try_pop`) against a
//! crossbeam bounded channel: a ping-pong between two threads, reported per round trip (two hops).
//!
//! `cargo bench -p keel-bench --bench queue`
// Test and bench targets see every dependency of their crate; only the library is checked.
#![allow(unused_crate_dependencies)]
// `criterion_group!` generates an undocumented `pub fn`.
#![allow(missing_docs)]

use std::hint::black_box;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use criterion::{Criterion, criterion_group, criterion_main};
use keel_engine::queue::Queue;

fn keel_ping_pong(iters: u64) -> Duration {
    let ping = Arc::new(Queue::<u64>::new(1));
    let pong = Arc::new(Queue::<u64>::new(1));
    let stop = Arc::new(AtomicBool::new(false));
    let echo = {
        let (ping, pong, stop) = (Arc::clone(&ping), Arc::clone(&pong), Arc::clone(&stop));
        std::thread::spawn(move || {
            while !stop.load(Ordering::Relaxed) {
                if let Some(v) = ping.try_pop() {
                    while pong.try_push(v).is_err() {
                        std::hint::spin_loop();
                    }
                } else {
                    std::hint::spin_loop();
                }
            }
        })
    };
    let t0 = Instant::now();
    for i in 0..iters {
        while ping.try_push(i).is_err() {
            std::hint::spin_loop();
        }
        loop {
            if let Some(v) = pong.try_pop() {
                black_box(v);
                break;
            }
            std::hint::spin_loop();
        }
    }
    let elapsed = t0.elapsed();
    stop.store(true, Ordering::Relaxed);
    let _ = echo.join();
    elapsed
}

fn crossbeam_ping_pong(iters: u64) -> Duration {
    let (ping_tx, ping_rx) = crossbeam::channel::bounded::<u64>(1);
    let (pong_tx, pong_rx) = crossbeam::channel::bounded::<u64>(1);
    let echo = std::thread::spawn(move || {
        while let Ok(v) = ping_rx.recv() {
            if pong_tx.send(v).is_err() {
                break;
            }
        }
    });
    let t0 = Instant::now();
    for i in 0..iters {
        ping_tx.send(i).expect("echo alive");
        black_box(pong_rx.recv().expect("echo alive"));
    }
    let elapsed = t0.elapsed();
    drop(ping_tx);
    let _ = echo.join();
    elapsed
}

fn bench(c: &mut Criterion) {
    let mut g = c.benchmark_group("queue_round_trip");
    g.measurement_time(Duration::from_secs(3));
    g.bench_function("keel_queue_try_push_try_pop", |b| b.iter_custom(keel_ping_pong));
    g.bench_function("baseline_crossbeam_bounded_1", |b| b.iter_custom(crossbeam_ping_pong));
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
