//! How fast a store takes writes: `writers` tasks creating `total` keys
//! between them, each write timed from call to acknowledgement. Used to
//! compare the embedded store's group commit with etcd.

use std::sync::Arc;
use std::time::{Duration, Instant};

use super::{Store, StoreError};

/// What a run measured.
#[derive(Debug, Clone, PartialEq)]
pub struct WriteFigures {
    pub writers: usize,
    pub writes: usize,
    pub writes_per_sec: f64,
    pub p50: Duration,
    pub p99: Duration,
}

/// Creates `total` keys under `/bench/` with `writers` concurrent writers.
pub async fn bench_writes(
    store: Arc<dyn Store>,
    writers: usize,
    total: usize,
) -> Result<WriteFigures, StoreError> {
    let writers = writers.max(1);
    let started = Instant::now();
    let mut tasks = Vec::new();
    for w in 0..writers {
        let store = Arc::clone(&store);
        let count = total / writers + usize::from(w < total % writers);
        tasks.push(tokio::spawn(async move {
            let mut latencies = Vec::with_capacity(count);
            for i in 0..count {
                let value = format!("{{\"writer\":{w},\"i\":{i}}}");
                let t = Instant::now();
                store
                    .create(&format!("/bench/{w}/{i}"), value.into_bytes())
                    .await?;
                latencies.push(t.elapsed());
            }
            Ok::<_, StoreError>(latencies)
        }));
    }
    let mut latencies = Vec::with_capacity(total);
    for task in tasks {
        let done = task
            .await
            .map_err(|e| StoreError::Backend(format!("bench writer: {e}")))?;
        latencies.extend(done?);
    }
    let elapsed = started.elapsed();
    latencies.sort();
    let pick = |q: f64| {
        let at = ((latencies.len() as f64 - 1.0) * q).round() as usize;
        latencies.get(at).copied().unwrap_or_default()
    };
    Ok(WriteFigures {
        writers,
        writes: latencies.len(),
        writes_per_sec: latencies.len() as f64 / elapsed.as_secs_f64(),
        p50: pick(0.50),
        p99: pick(0.99),
    })
}
