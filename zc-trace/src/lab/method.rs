//! The methods the lab measures, and what the textbook table
//! (`zero-copy-model.md`) says each one costs.

use anyhow::Result;

use crate::error::{EXIT_USAGE, failure};

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Method {
    /// The sender's baseline: the same process, start-up, files, pipe,
    /// connection and result file, without the transfer.
    Noop,
    ReadWrite,
    MmapWrite,
    Sendfile,
    Splice,
    ReadvWritev,
    CopyFileRange,
    /// mmap, then send(MSG_ZEROCOPY) on an SO_ZEROCOPY socket, reading the
    /// completion notifications from the error queue.
    MmapZerocopy,
    /// io_uring READ into the buffer, then SEND from it: read+write as
    /// requests, one io_uring_enter each.
    UringReadSend,
    /// io_uring SEND_ZC from a mapping of the file, usage reported.
    UringSendZc,
    /// io_uring SPLICE file -> pipe -> socket.
    UringSplice,
}

/// Every measured method, in table order.
pub const ALL: [Method; 10] = [
    Method::ReadWrite,
    Method::MmapWrite,
    Method::Sendfile,
    Method::Splice,
    Method::ReadvWritev,
    Method::CopyFileRange,
    Method::MmapZerocopy,
    Method::UringReadSend,
    Method::UringSendZc,
    Method::UringSplice,
];

impl Method {
    /// The name on the command line and in the JSON.
    pub fn name(self) -> &'static str {
        match self {
            Method::Noop => "noop",
            Method::ReadWrite => "read-write",
            Method::MmapWrite => "mmap-write",
            Method::Sendfile => "sendfile",
            Method::Splice => "splice",
            Method::ReadvWritev => "readv-writev",
            Method::CopyFileRange => "copy-file-range",
            Method::MmapZerocopy => "mmap-zerocopy",
            Method::UringReadSend => "io-uring-read-send",
            Method::UringSendZc => "io-uring-send-zc",
            Method::UringSplice => "io-uring-splice",
        }
    }

    /// The name in the table.
    pub fn label(self) -> &'static str {
        match self {
            Method::Noop => "baseline (noop)",
            Method::ReadWrite => "read+write",
            Method::MmapWrite => "mmap+write",
            Method::Sendfile => "sendfile",
            Method::Splice => "splice",
            Method::ReadvWritev => "readv/writev",
            Method::CopyFileRange => "copy_file_range",
            Method::MmapZerocopy => "mmap+MSG_ZEROCOPY",
            Method::UringReadSend => "io_uring read+send",
            Method::UringSendZc => "io_uring SEND_ZC",
            Method::UringSplice => "io_uring splice",
        }
    }

    /// Whether the bytes pass through a pipe (at most its capacity per call).
    pub fn uses_pipe(self) -> bool {
        matches!(self, Method::Splice | Method::UringSplice)
    }

    /// Whether the sender submits io_uring requests.
    pub fn uses_io_uring(self) -> bool {
        matches!(
            self,
            Method::UringReadSend | Method::UringSendZc | Method::UringSplice
        )
    }

    /// Where the bytes go.
    pub fn path(self) -> &'static str {
        match self {
            Method::Noop => "nothing moved",
            Method::Splice | Method::UringSplice => "file -> pipe -> socket",
            Method::CopyFileRange => "file -> file (not to the socket)",
            Method::MmapZerocopy => "file -> pinned pages -> socket",
            _ => "file -> socket",
        }
    }

    pub fn parse(s: &str) -> Option<Method> {
        let norm: String = s
            .trim()
            .to_ascii_lowercase()
            .chars()
            .map(|c| if matches!(c, '+' | '_' | '/') { '-' } else { c })
            .collect();
        match norm.as_str() {
            "noop" => Some(Method::Noop),
            "read-write" | "read" | "rw" => Some(Method::ReadWrite),
            "mmap-write" | "mmap" => Some(Method::MmapWrite),
            "sendfile" => Some(Method::Sendfile),
            "splice" => Some(Method::Splice),
            "readv-writev" | "readv" | "writev" => Some(Method::ReadvWritev),
            "copy-file-range" | "cfr" => Some(Method::CopyFileRange),
            "mmap-zerocopy" | "mmap-msg-zerocopy" | "msg-zerocopy" | "zerocopy" => {
                Some(Method::MmapZerocopy)
            }
            "io-uring-read-send" | "io-uring read-send" => Some(Method::UringReadSend),
            "io-uring-send-zc" | "io-uring send-zc" => Some(Method::UringSendZc),
            "io-uring-splice" | "io-uring splice" => Some(Method::UringSplice),
            _ => None,
        }
    }

    /// The textbook's costs of sending `size` bytes in `chunk`-byte calls.
    /// `pipe`: the pipe's capacity, the most one splice can move.
    pub fn model(self, size: u64, chunk: u64, page: u64, pipe: u64) -> Model {
        let per_call = if self.uses_pipe() {
            chunk.min(pipe.max(1))
        } else {
            chunk
        };
        let n = size.div_ceil(per_call) as f64;
        let s = size as f64;
        let pages = size.div_ceil(page) as f64;
        let (syscalls, to_user, from_user, zero_copy, mapped, faults, in_kernel, note) = match self
        {
            Method::Noop => (0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, "nothing moved"),
            Method::ReadWrite => (
                2.0 * n,
                s,
                s,
                0.0,
                0.0,
                0.0,
                0.0,
                "the baseline: 2 syscalls and 2 CPU copies per chunk (kernel -> user, user -> kernel)",
            ),
            Method::ReadvWritev => (
                2.0 * n,
                s,
                s,
                0.0,
                0.0,
                0.0,
                0.0,
                "same as read+write (one iovec per call): 2 syscalls and 2 CPU copies per chunk",
            ),
            Method::MmapWrite => (
                n + 2.0,
                0.0,
                s,
                0.0,
                s,
                pages,
                0.0,
                "1 write per chunk + mmap + munmap; page faults replace the read copy (1 per page \
                 touched); the one CPU copy (page cache -> socket) is the write's, from the mapping",
            ),
            Method::Sendfile => (
                n,
                0.0,
                0.0,
                s,
                0.0,
                0.0,
                s,
                "1 syscall per chunk, data never enters user space; 1 in-kernel copy page cache -> \
                 socket buffer (0 with scatter-gather DMA)",
            ),
            Method::Splice => (
                2.0 * n,
                0.0,
                0.0,
                2.0 * s,
                0.0,
                0.0,
                0.0,
                "2 syscalls per chunk (file -> pipe, pipe -> socket), pages move by reference, 0 copies; \
                 each byte passes through 2 zero-copy calls",
            ),
            Method::CopyFileRange => (
                n,
                0.0,
                0.0,
                s,
                0.0,
                0.0,
                s,
                "file -> file, 1 syscall per chunk, 0 at the user boundary; copies in kernel (0 if the \
                 filesystem reflinks)",
            ),
            Method::MmapZerocopy => (
                n + 3.0,
                0.0,
                0.0,
                0.0,
                s,
                0.0,
                s,
                "1 send per chunk + mmap + munmap + setsockopt(SO_ZEROCOPY), plus the recvmsg(MSG_ERRQUEUE) \
                 calls that read the completions; pages pinned, not copied at the call (no CPU copy at the \
                 boundary); over loopback the kernel copies them later (the notification says COPIED), \
                 with a scatter-gather NIC it does not; page faults are taken inside the kernel pinning \
                 the pages (get_user_pages), not as exceptions: no mode switch",
            ),
            Method::UringReadSend => (
                2.0 * n,
                s,
                s,
                0.0,
                0.0,
                0.0,
                0.0,
                "read+write as io_uring requests (READ, SEND), one io_uring_enter each: the same 2 CPU \
                 copies per chunk, made by the kernel for the request",
            ),
            Method::UringSendZc => (
                2.0 * n + 2.0,
                0.0,
                0.0,
                0.0,
                s,
                0.0,
                s,
                "1 SEND_ZC per chunk from a mapping of the file (+ mmap + munmap), 2 io_uring_enter \
                 (its result, then its notification): the pages are pinned (get_user_pages, no \
                 exception faults), not copied by the call; over loopback the kernel copies them \
                 later (1 in-kernel copy, reported in the notification)",
            ),
            Method::UringSplice => (
                2.0 * n,
                0.0,
                0.0,
                2.0 * s,
                0.0,
                0.0,
                0.0,
                "splice as io_uring requests (file -> pipe, pipe -> socket), one io_uring_enter each: \
                 pages move by reference, 0 copies",
            ),
        };
        Model {
            syscalls,
            // The textbook's chunks are all returning calls, and it counts
            // every fault as a user-mode one.
            mode_switches: crate::model::ledger::mode_switches(syscalls, 0.0, faults),
            copied_to_user: to_user,
            copied_from_user: from_user,
            zero_copy,
            mapped,
            page_faults: faults,
            in_kernel_copies: in_kernel,
            note,
        }
    }
}

/// Parses `--methods` (empty: all), in table order, without repeats.
pub fn parse_list(list: &[String]) -> Result<Vec<Method>> {
    if list.is_empty() {
        return Ok(ALL.to_vec());
    }
    let mut chosen = Vec::new();
    for s in list.iter().filter(|s| !s.trim().is_empty()) {
        match Method::parse(s) {
            Some(m) if m != Method::Noop => chosen.push(m),
            _ => {
                let names: Vec<&str> = ALL.iter().map(|m| m.name()).collect();
                return Err(failure(
                    EXIT_USAGE,
                    format!("unknown lab method `{s}`: choose from {}", names.join(", ")),
                ));
            }
        }
    }
    if chosen.is_empty() {
        return Err(failure(
            EXIT_USAGE,
            "--methods is empty: name at least one method",
        ));
    }
    chosen.sort();
    chosen.dedup();
    Ok(chosen)
}

/// The textbook's expected totals for one transfer of the whole file.
#[derive(Clone, Debug, PartialEq)]
pub struct Model {
    pub syscalls: f64,
    /// 2 per syscall, and (as the textbook counts them) 2 per page fault.
    pub mode_switches: f64,
    pub copied_to_user: f64,
    pub copied_from_user: f64,
    /// Bytes returned by zero-copy calls.
    pub zero_copy: f64,
    pub mapped: f64,
    pub page_faults: f64,
    /// CPU copies inside the kernel (not visible to a syscall tracer).
    pub in_kernel_copies: f64,
    pub note: &'static str,
}

#[cfg(test)]
mod tests {
    use super::*;

    const MIB: u64 = 1 << 20;
    const K64: u64 = 64 << 10;

    #[test]
    fn per_chunk_costs_from_the_table() {
        let rw = Method::ReadWrite.model(MIB, K64, 4096, 1 << 20);
        assert_eq!(rw.syscalls, 32.0, "2 per 64 KiB chunk");
        assert_eq!(rw.mode_switches, 64.0);
        assert_eq!(rw.copied_to_user + rw.copied_from_user, 2.0 * MIB as f64);
        assert_eq!(
            Method::ReadvWritev.model(MIB, K64, 4096, 1 << 20).syscalls,
            rw.syscalls
        );

        let mm = Method::MmapWrite.model(MIB, K64, 4096, 1 << 20);
        assert_eq!(mm.syscalls, 18.0, "16 writes + mmap + munmap");
        assert_eq!(mm.page_faults, 256.0);
        assert_eq!(mm.mode_switches, 2.0 * 18.0 + 2.0 * 256.0);
        assert_eq!(mm.copied_to_user, 0.0);
        assert_eq!(mm.copied_from_user, MIB as f64);

        let sf = Method::Sendfile.model(MIB, K64, 4096, 1 << 20);
        assert_eq!((sf.syscalls, sf.mode_switches), (16.0, 32.0));
        assert_eq!(sf.copied_to_user + sf.copied_from_user, 0.0);
        assert_eq!(sf.zero_copy, MIB as f64);
        assert_eq!(sf.in_kernel_copies, MIB as f64);

        let sp = Method::Splice.model(MIB, K64, 4096, 1 << 20);
        assert_eq!((sp.syscalls, sp.mode_switches), (32.0, 64.0));
        assert_eq!(sp.zero_copy, 2.0 * MIB as f64);
        assert_eq!(sp.in_kernel_copies, 0.0);

        let cfr = Method::CopyFileRange.model(MIB, K64, 4096, 1 << 20);
        assert_eq!(cfr.syscalls, 16.0);
        assert_eq!(cfr.zero_copy, MIB as f64);

        let zc = Method::MmapZerocopy.model(MIB, K64, 4096, 1 << 20);
        assert_eq!(zc.syscalls, 19.0, "16 sends + mmap + munmap + setsockopt");
        assert_eq!(zc.copied_to_user + zc.copied_from_user, 0.0);
        assert_eq!(
            zc.in_kernel_copies, MIB as f64,
            "the loopback's deferred copy"
        );
        assert_eq!(zc.page_faults, 0.0, "pinning faults are not exceptions");
    }

    #[test]
    fn splice_moves_at_most_a_pipe_per_call() {
        assert_eq!(
            Method::Splice.model(4 * MIB, 4 * MIB, 4096, MIB).syscalls,
            8.0
        );
        assert_eq!(
            Method::Sendfile.model(4 * MIB, 4 * MIB, 4096, MIB).syscalls,
            1.0
        );
    }

    #[test]
    fn a_partial_last_chunk_is_one_more_call() {
        assert_eq!(
            Method::Sendfile.model(MIB + 1, K64, 4096, 1 << 20).syscalls,
            17.0
        );
        assert_eq!(
            Method::ReadWrite.model(100, K64, 4096, 1 << 20).syscalls,
            2.0
        );
        assert_eq!(
            Method::MmapWrite.model(100, K64, 4096, 1 << 20).page_faults,
            1.0
        );
    }

    #[test]
    fn names_parse_back() {
        for m in ALL {
            assert_eq!(Method::parse(m.name()), Some(m));
            assert_eq!(Method::parse(m.label()), Some(m), "{}", m.label());
        }
        assert_eq!(Method::parse("Read+Write"), Some(Method::ReadWrite));
        assert_eq!(
            Method::parse("copy_file_range"),
            Some(Method::CopyFileRange)
        );
        assert_eq!(Method::parse("nope"), None);
    }

    #[test]
    fn method_lists() {
        assert_eq!(parse_list(&[]).unwrap(), ALL.to_vec());
        let l = parse_list(&["splice".into(), "read-write".into(), "splice".into()]).unwrap();
        assert_eq!(
            l,
            [Method::ReadWrite, Method::Splice],
            "table order, no repeats"
        );
        let e = parse_list(&["sendfile".into(), "carrier-pigeon".into()]).unwrap_err();
        assert!(e.to_string().contains("carrier-pigeon"), "{e}");
        assert_eq!(crate::error::exit_code(&e), EXIT_USAGE);
        assert!(
            parse_list(&["noop".into()]).is_err(),
            "the baseline is not a method"
        );
    }
}
