//! P7: peak RSS (`VmHWM` from `/proc/<pid>/status`) of the gateway and of the queue-worker,
//! read after each of P1–P4 (the release binaries run as their own processes), and of a fresh
//! queue-worker running 64 calls at once that each answer 8 MiB.

use std::convert::Infallible;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use http_body_util::BodyExt as _;
use hyper::body::Incoming;
use hyper_util::rt::TokioIo;

use super::Ctx;
use crate::report::{Figure, Goal};

/// Calls in flight at once, and the size of each answer.
const LARGE: (usize, usize) = (64, 8 * 1024 * 1024);

/// Runs P7 (reads what P1 and P4 recorded).
pub(super) async fn run(ctx: &mut Ctx) -> anyhow::Result<()> {
    let mut lines = Vec::new();
    for process in ["gateway", "queue-worker"] {
        let readings: Vec<&(&str, &str, f64)> = ctx.rss.iter().filter(|r| r.0 == process).collect();
        let peak = readings.iter().map(|r| r.2).fold(f64::NAN, f64::max);
        let raw: Vec<String> = readings
            .iter()
            .map(|r| format!("{:.1} MiB {}", r.2, r.1))
            .collect();
        lines.push(format!("- {process}: {}", raw.join(", ")));
        ctx.figure(Figure {
            id: "P7",
            name: format!("peak RSS of the {process} during P1–P4"),
            value: peak,
            unit: "MiB",
            goal: Goal::AtMost(30.0),
            baseline: "limit 30 MiB".into(),
            raw: raw.join(", "),
        });
    }
    let (peak, took, delivered) = large_results(ctx).await?;
    lines.push(format!(
        "- queue-worker with {} calls in flight answering {} MiB each: {peak:.1} MiB \
         ({delivered} callbacks of {} MiB in {took:.1} s)",
        LARGE.0,
        LARGE.1 >> 20,
        LARGE.1 >> 20
    ));
    ctx.figure(Figure {
        id: "P7",
        name: format!(
            "peak RSS of the queue-worker, {} calls in flight each returning {} MiB",
            LARGE.0,
            LARGE.1 >> 20
        ),
        value: peak,
        unit: "MiB",
        goal: Goal::AtMost(30.0),
        baseline: "limit 30 MiB".into(),
        raw: format!("{delivered} of {} delivered in {took:.1} s", LARGE.0),
    });
    ctx.section(
        "P7 memory",
        format!(
            "`VmHWM` of the release `gateway` and `queue-worker` processes (peak resident set \
             since start), read after each of P1–P4, so the scenario that raised it shows. The \
             gateway runs from the start; the worker is restarted by P3 (it is stopped during \
             P3), so its readings after P4 cover P4 only. Then a fresh worker runs {} async \
             calls of `echo` at once (`X-Echo-Sleep-Ms: 1000`, `X-Echo-Bytes: {}`), each result \
             streamed to a callback receiver that reads and drops it.\n\n{}\n",
            LARGE.0,
            LARGE.1,
            lines.join("\n")
        ),
    );
    Ok(())
}

/// Runs [`LARGE`] calls at once through a fresh worker; its peak RSS (MiB), how long the
/// callbacks took (s), and how many arrived whole.
async fn large_results(ctx: &mut Ctx) -> anyhow::Result<(f64, f64, usize)> {
    ctx.stack.start_worker(LARGE.0).await;
    let received = Arc::new(AtomicUsize::new(0));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let callback = format!("http://{}/large", listener.local_addr()?);
    let server = tokio::spawn(discard(listener, received.clone()));
    let client = ferry_tests::http_client();
    let started = Instant::now();
    for _ in 0..LARGE.0 {
        let resp = client
            .post(ctx.stack.gateway_url("/async-function/echo"))
            .header("x-callback-url", &callback)
            .header("x-echo-sleep-ms", "1000")
            .header("x-echo-bytes", LARGE.1.to_string())
            .send()
            .await?;
        anyhow::ensure!(resp.status() == 202, "submitting: {}", resp.status());
    }
    while received.load(Ordering::SeqCst) < LARGE.0 && started.elapsed() < Duration::from_secs(120)
    {
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let took = started.elapsed().as_secs_f64();
    let peak = ctx
        .stack
        .worker_pid()
        .and_then(crate::sysinfo::peak_rss_mib)
        .unwrap_or(f64::NAN);
    server.abort();
    Ok((peak, took, received.load(Ordering::SeqCst)))
}

/// A callback receiver that reads each body, counts those of [`LARGE`]`.1` bytes, and keeps
/// nothing.
async fn discard(listener: tokio::net::TcpListener, received: Arc<AtomicUsize>) {
    while let Ok((stream, _)) = listener.accept().await {
        let received = received.clone();
        tokio::spawn(async move {
            let service = hyper::service::service_fn(move |req: hyper::Request<Incoming>| {
                let received = received.clone();
                async move {
                    let mut body = req.into_body();
                    let mut n = 0;
                    while let Some(Ok(frame)) = body.frame().await {
                        n += frame.data_ref().map_or(0, |d| d.len());
                    }
                    if n == LARGE.1 {
                        received.fetch_add(1, Ordering::SeqCst);
                    }
                    Ok::<_, Infallible>(hyper::Response::new(
                        http_body_util::Empty::<bytes::Bytes>::new(),
                    ))
                }
            });
            let _ = hyper::server::conn::http1::Builder::new()
                .serve_connection(TokioIo::new(stream), service)
                .await;
        });
    }
}
