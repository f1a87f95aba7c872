//! queue-worker against a real nats-server: a fake gateway stands in for the functions (each
//! call answered as scripted) and a callback receiver for the callers' `X-Callback-Url`s. The
//! worker runs in-process through `run()`, or as the real binary when a test kills it.
//!
//! One file per topic: `invoke` (a call replayed and called back, leases, bad messages),
//! `concurrency` (limits, the per-function cap, throughput), `shutdown` (draining, the grace,
//! handing back), `resilience` (NATS late or crashing, a killed worker), `retries` (backoff,
//! `Retry-After`, non-retryable failures, metrics), `callbacks` (callback retries and
//! failure) and `dead_letters` (exhausted attempts, expiry, cancellation), reading what the
//! worker records (status bucket, dead-letter stream) straight from JetStream. Shared helpers
//! in `common`.

// A test reads as one scenario; the 80-line limit is for the code under test.
#![allow(clippy::too_many_lines)]

mod callbacks;
mod common;
mod concurrency;
mod dead_letters;
mod invoke;
mod resilience;
mod retries;
mod shutdown;
