//! Integration tests: real processes, real sockets. Each test starts the watchdog through
//! its library `run()` on 127.0.0.1:0 (or the real binary, for signals and flags) and talks
//! HTTP to it.

mod classic;
mod common;
mod fork;
mod http_mode;
mod limits;
mod metrics;
mod process;
