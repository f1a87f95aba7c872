//! Integration tests: real processes, real sockets. Each test starts the watchdog through
//! its library `run()` on 127.0.0.1:0 (or the real binary, for signals and flags) and talks
//! HTTP to it.

// A test reads as one scenario; the 80-line limit is for the code under test.
#![allow(clippy::too_many_lines)]

mod classic;
mod common;
mod fork;
mod http_mode;
mod limits;
mod metrics;
mod process;
