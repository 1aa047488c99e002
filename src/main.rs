//! The `museformer` binary: the command line lives in [`museformer::cli`].

fn main() -> std::process::ExitCode {
    // A closed pipe (`museformer vocab | head`) ends the process quietly, as for any
    // Unix tool, instead of panicking in `println!`.
    #[cfg(unix)]
    // SAFETY: called first in main, before any thread starts; restores the default
    // action of SIGPIPE, which the Rust runtime sets to "ignore".
    unsafe {
        libc::signal(libc::SIGPIPE, libc::SIG_DFL);
    }
    // Freed tensor memory stays in the heap for the next training step.
    museformer::allocator::retain_freed_memory();
    museformer::cli::main()
}
