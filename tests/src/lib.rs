//! What the `zc-workload` scenarios do, call by call, so the end-to-end tests
//! can hold the tracer's counts and bytes to the unit.
//!
//! The workload (src/bin/zc-workload.rs) and these tables describe the same
//! thing twice on purpose: the table is the specification, the workload the
//! implementation, and `strace -f` checks that they agree (see the notes at
//! the top of the workload).

pub mod fleet;
pub mod harness;
pub mod strace;

use std::io::Write;
use std::path::Path;

/// One group of deliberate calls of a scenario: every call of `syscall` on
/// fds of `kind` ("SRC->DST" for two-fd calls).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Expect {
    pub syscall: &'static str,
    pub kind: &'static str,
    /// Calls, failed ones included.
    pub count: u64,
    /// Sum of the successful calls' byte counts (mapped length for mmap).
    pub bytes: u64,
    /// Failed calls.
    pub errors: u64,
}

/// The scenarios `all` runs, in order, in one process.
pub const ALL_PARTS: &[&str] = &[
    "file-read",
    "file-pread",
    "pipe",
    "socket",
    "udp",
    "sendfile",
    "splice",
    "mmap-write",
    "copy-file-range",
    "fork",
    "threads",
];

/// Scenarios that need `--file` (an input file of at least count*size bytes,
/// filled with [`pattern_byte`] by [`write_input_file`]).
pub const NEEDS_FILE: &[&str] = &[
    "file-read",
    "file-pread",
    "sendfile",
    "splice",
    "mmap-write",
    "copy-file-range",
    "all",
];

/// Scenarios that need `--file2` (an output path the workload truncates).
pub const NEEDS_FILE2: &[&str] = &["copy-file-range", "all"];

/// Largest `count * size` the `pipe` scenario accepts: the default pipe
/// capacity (16 pages), since it writes everything before reading.
pub const PIPE_CAPACITY: u64 = 65536;

/// Largest `count` the `udp` scenario accepts (one sendmmsg carries `count`
/// messages).
pub const MAX_MMSG: u64 = 64;

/// Largest UDP payload on IPv4.
pub const MAX_UDP: u64 = 65507;

const fn ok(syscall: &'static str, kind: &'static str, count: u64, bytes: u64) -> Expect {
    Expect {
        syscall,
        kind,
        count,
        bytes,
        errors: 0,
    }
}

const fn failed(syscall: &'static str, kind: &'static str, count: u64) -> Expect {
    Expect {
        syscall,
        kind,
        count,
        bytes: 0,
        errors: count,
    }
}

/// Every deliberate call of `scenario`, in all its processes, grouped by
/// (syscall, fd kind) and sorted. Calls the program cannot avoid (the
/// dynamic loader's, thread set-up, opening and closing fds, socket set-up)
/// are not listed: tests subtract a traced `noop` run or ignore them.
///
/// Panics on an unknown scenario.
pub fn expected(scenario: &str, count: u64, size: u64, threads: u64) -> Vec<Expect> {
    let (mut parent, children) = expected_per_process(scenario, count, size, threads);
    parent.extend(children);
    merge(parent)
}

/// [`expected`] split by process: (the workload process itself, all its
/// forked children together). Only `fork` (and `all`, which runs it) has a
/// child: it does `count` writes to /dev/null and `count` reads from
/// /dev/zero; the parent does `count` writes to /dev/null and waits.
pub fn expected_per_process(
    scenario: &str,
    count: u64,
    size: u64,
    threads: u64,
) -> (Vec<Expect>, Vec<Expect>) {
    let n = count;
    let b = count * size;
    let s = size;
    let (parent, child) = match scenario {
        "noop" | "sleep" => (vec![], vec![]),
        "file-read" => (vec![ok("read", "file", n, b)], vec![]),
        "file-pread" => (
            vec![
                ok("pread64", "file", n, b),
                ok("readv", "file", 1, s),
                ok("preadv", "file", 1, s),
                ok("preadv2", "file", 1, s),
            ],
            vec![],
        ),
        "pipe" => (
            vec![
                ok("write", "pipe", n, b),
                ok("read", "pipe", n, b),
                ok("writev", "pipe", 1, s),
                ok("readv", "pipe", 1, s),
            ],
            vec![],
        ),
        "socket" => (
            vec![
                ok("write", "socket", n, b),
                ok("sendto", "socket", n, b),
                ok("recvfrom", "socket", 2 * n, 2 * b),
            ],
            vec![],
        ),
        "udp" => (
            vec![
                ok("sendmsg", "socket", n, b),
                ok("recvmsg", "socket", n, b),
                ok("sendmmsg", "socket", 1, b),
                ok("recvmmsg", "socket", 1, b),
            ],
            vec![],
        ),
        "sendfile" => (
            vec![
                ok("sendfile", "file->socket", n, b),
                ok("recvfrom", "socket", n, b),
            ],
            vec![],
        ),
        "splice" => (
            vec![
                ok("splice", "file->pipe", n, b),
                ok("splice", "pipe->socket", n, b),
                ok("recvfrom", "socket", n, b),
                // tee: one write into pipe A, tee A -> B, read B, read A.
                ok("write", "pipe", 1, s),
                ok("tee", "pipe->pipe", 1, s),
                // two after tee, one after vmsplice.
                ok("read", "pipe", 3, 3 * s),
                ok("vmsplice", "pipe", 1, s),
            ],
            vec![],
        ),
        "mmap-write" => (
            vec![
                ok("mmap", "file", 1, b),
                ok("write", "socket", n, b),
                ok("recvfrom", "socket", n, b),
            ],
            vec![],
        ),
        "copy-file-range" => (vec![ok("copy_file_range", "file->file", n, b)], vec![]),
        "fork" => (
            vec![ok("write", "device", n, b)],
            vec![ok("write", "device", n, b), ok("read", "device", n, b)],
        ),
        "threads" => (
            vec![ok("write", "device", threads * n, threads * b)],
            vec![],
        ),
        "errors" => (
            vec![failed("read", "unknown", n), failed("write", "pipe", n)],
            vec![],
        ),
        "all" => {
            let mut parent = Vec::new();
            let mut child = Vec::new();
            for part in ALL_PARTS {
                let (p, c) = expected_per_process(part, count, size, threads);
                parent.extend(p);
                child.extend(c);
            }
            (parent, child)
        }
        other => match other.strip_prefix("wait-signal ") {
            Some(inner) => return expected_per_process(inner, count, size, threads),
            None => panic!("unknown zc-workload scenario {other:?}"),
        },
    };
    (merge(parent), merge(child))
}

/// Adds up entries with the same (syscall, kind); sorted.
pub fn merge(list: Vec<Expect>) -> Vec<Expect> {
    let mut out: Vec<Expect> = Vec::new();
    for e in list {
        match out
            .iter_mut()
            .find(|o| o.syscall == e.syscall && o.kind == e.kind)
        {
            Some(o) => {
                o.count += e.count;
                o.bytes += e.bytes;
                o.errors += e.errors;
            }
            None => out.push(e),
        }
    }
    out.sort();
    out
}

/// Per syscall name (all fd kinds together): (calls, errors). What strace's
/// `-c` table can be compared with.
pub fn per_syscall(list: &[Expect]) -> Vec<(&'static str, u64, u64)> {
    let mut out: Vec<(&'static str, u64, u64)> = Vec::new();
    for e in list {
        match out.iter_mut().find(|o| o.0 == e.syscall) {
            Some(o) => {
                o.1 += e.count;
                o.2 += e.errors;
            }
            None => out.push((e.syscall, e.count, e.errors)),
        }
    }
    out.sort();
    out
}

/// Byte `offset` of every input file and every stream the workload sends:
/// receivers check what they got against it without reading the file again
/// (which would add reads the scenario does not declare).
pub const fn pattern_byte(offset: u64) -> u8 {
    // 251 is prime, so the pattern does not repeat with any power-of-two
    // chunk size; the high part tells chunks apart.
    ((offset % 251) as u8) ^ ((offset >> 12) as u8)
}

/// Fills `buf` with the pattern starting at stream offset `start`.
pub fn fill_pattern(buf: &mut [u8], start: u64) {
    for (i, b) in buf.iter_mut().enumerate() {
        *b = pattern_byte(start + i as u64);
    }
}

/// Offset of the first byte of `buf` that differs from the pattern.
pub fn pattern_mismatch(buf: &[u8], start: u64) -> Option<u64> {
    buf.iter()
        .enumerate()
        .find(|&(i, &b)| b != pattern_byte(start + i as u64))
        .map(|(i, _)| start + i as u64)
}

/// Creates (or replaces) an input file of `len` pattern bytes.
pub fn write_input_file(path: &Path, len: u64) -> std::io::Result<()> {
    let mut f = std::io::BufWriter::new(std::fs::File::create(path)?);
    let mut chunk = vec![0u8; 1 << 16];
    let mut off = 0;
    while off < len {
        let n = chunk.len().min((len - off) as usize);
        fill_pattern(&mut chunk[..n], off);
        f.write_all(&chunk[..n])?;
        off += n as u64;
    }
    f.into_inner().map_err(|e| e.into_error())?.sync_all()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn find(list: &[Expect], syscall: &str, kind: &str) -> Expect {
        *list
            .iter()
            .find(|e| e.syscall == syscall && e.kind == kind)
            .unwrap_or_else(|| panic!("no {syscall}/{kind} in {list:?}"))
    }

    #[test]
    fn all_is_the_sum_of_its_parts() {
        let (n, s, t) = (16, 4096, 2);
        let mut sum = Vec::new();
        for part in ALL_PARTS {
            sum.extend(expected(part, n, s, t));
        }
        assert_eq!(expected("all", n, s, t), merge(sum));
    }

    #[test]
    fn parts_of_all_are_the_measured_scenarios_except_errors() {
        for part in ALL_PARTS {
            assert!(
                !expected(part, 3, 10, 2).is_empty(),
                "{part} expects nothing"
            );
        }
        assert!(!ALL_PARTS.contains(&"errors"));
    }

    #[test]
    fn every_call_moves_size_bytes_unless_it_fails_or_is_batched() {
        let (n, s, t) = (5, 1000, 3);
        for scenario in ALL_PARTS.iter().chain(&["errors"]) {
            for e in expected(scenario, n, s, t) {
                match (e.errors, e.syscall) {
                    (0, "sendmmsg" | "recvmmsg") => assert_eq!(e.bytes, n * s, "{e:?}"),
                    (0, "mmap") => assert_eq!(e.bytes, n * s, "{e:?}"),
                    (0, _) => assert_eq!(e.bytes, e.count * s, "{e:?}"),
                    (errors, _) => {
                        assert_eq!(errors, e.count, "{e:?}");
                        assert_eq!(e.bytes, 0, "{e:?}");
                    }
                }
            }
        }
    }

    #[test]
    fn fork_splits_parent_and_child() {
        let (parent, child) = expected_per_process("fork", 7, 100, 2);
        assert_eq!(parent, vec![ok("write", "device", 7, 700)]);
        assert_eq!(
            child,
            vec![ok("read", "device", 7, 700), ok("write", "device", 7, 700)]
        );
        assert_eq!(
            find(&expected("fork", 7, 100, 2), "write", "device").count,
            14
        );
    }

    #[test]
    fn threads_multiply_and_wait_signal_is_transparent() {
        assert_eq!(
            expected("threads", 4, 10, 3),
            vec![ok("write", "device", 12, 120)]
        );
        assert_eq!(
            expected("wait-signal fork", 4, 10, 3),
            expected("fork", 4, 10, 3)
        );
        assert!(expected("noop", 4, 10, 3).is_empty());
    }

    #[test]
    fn errors_count_failures_without_bytes() {
        let e = expected("errors", 9, 64, 2);
        assert_eq!(find(&e, "read", "unknown"), failed("read", "unknown", 9));
        assert_eq!(find(&e, "write", "pipe"), failed("write", "pipe", 9));
    }

    #[test]
    fn per_syscall_sums_kinds() {
        let e = expected("splice", 4, 10, 2);
        let per = per_syscall(&e);
        assert!(per.contains(&("splice", 8, 0)));
        assert!(per.contains(&("read", 3, 0)));
    }

    #[test]
    fn pattern_tells_chunks_apart() {
        let mut a = vec![0u8; 4096];
        let mut b = vec![0u8; 4096];
        fill_pattern(&mut a, 0);
        fill_pattern(&mut b, 4096);
        assert_ne!(a, b);
        assert_eq!(pattern_mismatch(&a, 0), None);
        assert_eq!(pattern_mismatch(&a, 4096), Some(4096));
    }

    #[test]
    #[should_panic(expected = "unknown zc-workload scenario")]
    fn unknown_scenario_panics() {
        expected("nope", 1, 1, 1);
    }
}
