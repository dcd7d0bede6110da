//! The zc-trace command: everything is in the library; this maps its
//! result to one error line and an exit code.

use std::process::ExitCode;

use zc_trace::{app, error};

fn main() -> ExitCode {
    large_allocations_apart();
    reopen_closed_stdio();
    match app::run() {
        Ok(code) => ExitCode::from(code),
        Err(e) => {
            eprintln!("zc-trace: error: {e:#}");
            ExitCode::from(error::exit_code(&e))
        }
    }
}

/// A closed stdin, stdout or stderr (`2>&-`) gets /dev/null, so the next
/// file opened cannot take its number and receive what was meant for the
/// terminal (a report file filled with progress lines).
fn reopen_closed_stdio() {
    for fd in 0..=2 {
        // SAFETY: F_GETFD only asks whether the descriptor is open.
        if unsafe { libc::fcntl(fd, libc::F_GETFD) } == -1 {
            // SAFETY: open takes the lowest free number, which is `fd`.
            unsafe { libc::open(c"/dev/null".as_ptr(), libc::O_RDWR) };
        }
    }
}

/// Large allocations (over 128 KiB) get their own mappings, given back to
/// the kernel when freed. glibc would otherwise raise that threshold as
/// soon as one such block is freed, and the second vmlinux BTF parse at
/// load (aya's, after ours) would then take its ~5 MiB on the heap beside
/// the first's freed ones: the peak RSS was ~30 MiB, ~25 MiB with this.
fn large_allocations_apart() {
    #[cfg(target_env = "gnu")]
    // SAFETY: mallopt only changes an allocator setting, before any thread.
    unsafe {
        libc::mallopt(libc::M_MMAP_THRESHOLD, 128 * 1024);
    }
}
