//! gateway end to end: the gateway in-process in front of a real provider-docker with real
//! function containers, and a real NATS JetStream server.
//!
//! One file per topic: `sync` (proxying to replicas, errors, timeouts, graceful stop),
//! `async_submit` (calls stored before the 202, refusals, NATS down and back),
//! `callback_guard` (callback destinations refused at submission), `startup`
//! (starting without NATS, provider gone), `status` (call status, cancel, idempotency),
//! `dead_letters` (list, inspect, redrive, delete) and `limits` (body sizes, read timeouts,
//! slow clients, the concurrency cap; against a stand-in provider); shared helpers in
//! `common`.

// A test reads as one scenario; the 80-line limit is for the code under test.
#![allow(clippy::too_many_lines)]

mod async_submit;
mod callback_guard;
mod common;
mod dead_letters;
mod limits;
mod startup;
mod status;
mod sync;
