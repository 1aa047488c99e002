//! The `museformer` binary: the command line lives in [`museformer::cli`].

fn main() -> std::process::ExitCode {
    museformer::cli::main()
}
