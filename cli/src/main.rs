//! `ferry`: see the library ([`ferry_cli`]) for the commands.

fn main() -> std::process::ExitCode {
    ferry_cli::main()
}
