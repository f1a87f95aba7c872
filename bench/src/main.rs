//! The `bench` binary: see the `ferry_bench` crate docs.

fn main() -> std::process::ExitCode {
    ferry_bench::run()
}
