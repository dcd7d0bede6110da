//! The signal state zc-trace was started with, recorded before anything in
//! this process changes it, so the wrapped command gets what its parent
//! would have given it.
//!
//! Rust's runtime sets SIGPIPE to SIG_IGN before `main` (and an ignored
//! signal stays ignored across execve), and tokio installs handlers for
//! SIGINT and SIGTERM, which replace a SIG_IGN the parent set (`nohup`, a
//! background job of a non-interactive shell). Reading the dispositions in
//! `main` would be too late for SIGPIPE, and /proc/self/status `SigIgn` then
//! already shows it ignored; so they are read by a constructor in
//! `.init_array`, which the C runtime runs before Rust's `main` does its
//! set-up. The blocked mask is recorded there too (nothing changes it, but
//! the guard process blocks signals of its own before forking the command).

use std::sync::atomic::{AtomicU64, Ordering};

/// Signals ignored at start: bit `n - 1` for signal `n`.
static IGNORED: AtomicU64 = AtomicU64::new(0);
/// Signals blocked at start, in the same layout.
static BLOCKED: AtomicU64 = AtomicU64::new(0);

const MAX_SIGNAL: i32 = 64;

#[used]
#[unsafe(link_section = ".init_array")]
static RECORD_AT_START: extern "C" fn() = record;

/// Reads the dispositions and the mask as the parent left them.
extern "C" fn record() {
    let mut ignored = 0u64;
    for sig in 1..=MAX_SIGNAL {
        // SAFETY: querying only (a null new action); an all-zero sigaction
        // is a valid out-parameter.
        let mut old: libc::sigaction = unsafe { std::mem::zeroed() };
        if unsafe { libc::sigaction(sig, std::ptr::null(), &mut old) } == 0
            && old.sa_sigaction == libc::SIG_IGN
        {
            ignored |= bit(sig);
        }
    }
    // SAFETY: querying the current thread's mask (the only thread yet).
    let mut mask: libc::sigset_t = unsafe { std::mem::zeroed() };
    unsafe { libc::pthread_sigmask(libc::SIG_BLOCK, std::ptr::null(), &mut mask) };
    let blocked = (1..=MAX_SIGNAL)
        // SAFETY: mask is an initialised set.
        .filter(|&sig| unsafe { libc::sigismember(&mask, sig) } == 1)
        .fold(0, |acc, sig| acc | bit(sig));
    IGNORED.store(ignored, Ordering::Relaxed);
    BLOCKED.store(blocked, Ordering::Relaxed);
}

const fn bit(sig: i32) -> u64 {
    1 << (sig - 1)
}

/// Whether the parent had `sig` ignored when zc-trace started.
pub fn was_ignored(sig: i32) -> bool {
    IGNORED.load(Ordering::Relaxed) & bit(sig) != 0
}

/// The signal state to give the command, prepared before fork so that the
/// child only makes async-signal-safe calls to apply it.
pub struct SignalState {
    /// Every catchable signal with SIG_IGN if the parent ignored it, else
    /// SIG_DFL (handlers are reset by execve anyway; SIG_DFL also undoes an
    /// ignore the parent did not ask for, such as Rust's SIGPIPE).
    actions: Vec<(i32, libc::sigaction)>,
    mask: libc::sigset_t,
}

impl SignalState {
    pub fn at_start() -> Self {
        let ignored = IGNORED.load(Ordering::Relaxed);
        let blocked = BLOCKED.load(Ordering::Relaxed);
        let actions = (1..=MAX_SIGNAL)
            .filter(|&s| s != libc::SIGKILL && s != libc::SIGSTOP)
            .map(|sig| {
                // SAFETY: an all-zero sigaction is valid; the handler and
                // an empty mask are set below.
                let mut act: libc::sigaction = unsafe { std::mem::zeroed() };
                act.sa_sigaction = if ignored & bit(sig) != 0 {
                    libc::SIG_IGN
                } else {
                    libc::SIG_DFL
                };
                // SAFETY: act.sa_mask is a valid set to clear.
                unsafe { libc::sigemptyset(&mut act.sa_mask) };
                (sig, act)
            })
            .collect();
        // SAFETY: sigemptyset initialises the set; sigaddset adds to it
        // (glibc refuses its reserved signals, which it never blocks).
        let mut mask: libc::sigset_t = unsafe { std::mem::zeroed() };
        unsafe { libc::sigemptyset(&mut mask) };
        for sig in (1..=MAX_SIGNAL).filter(|&s| blocked & bit(s) != 0) {
            unsafe { libc::sigaddset(&mut mask, sig) };
        }
        Self { actions, mask }
    }

    /// Applies the state to the calling (forked, single-threaded) process.
    ///
    /// # Safety
    /// Async-signal-safe: only sigaction and sigprocmask syscalls. glibc
    /// rejects its two reserved signals (32, 33), which the parent cannot
    /// have changed either.
    pub unsafe fn apply(&self) {
        for (sig, act) in &self.actions {
            // SAFETY: act is a fully initialised sigaction.
            unsafe { libc::sigaction(*sig, act, std::ptr::null_mut()) };
        }
        // SAFETY: mask is an initialised set.
        unsafe { libc::sigprocmask(libc::SIG_SETMASK, &self.mask, std::ptr::null_mut()) };
    }
}
