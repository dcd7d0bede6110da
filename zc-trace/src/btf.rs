//! Field offsets of the running kernel, read from its BTF.
//!
//! The probes walk a few kernel structs (task -> files -> fdtable -> file ->
//! inode) whose layout changes between kernels and configs. aya's Rust
//! probes cannot carry CO-RE field relocations, so the offsets are looked up
//! here, in /sys/kernel/btf/vmlinux, and handed to the probes as a global.
//! Format: https://docs.kernel.org/bpf/btf.html

use anyhow::{Context as _, Result, anyhow, bail};

pub const VMLINUX: &str = "/sys/kernel/btf/vmlinux";

/// Where the kernel's BTF is read from. `ZC_TRACE_VMLINUX` overrides it so
/// the tests can show what a kernel without BTF looks like.
pub fn vmlinux_path() -> std::path::PathBuf {
    std::env::var_os("ZC_TRACE_VMLINUX").map_or_else(|| VMLINUX.into(), Into::into)
}

const KIND_STRUCT: u32 = 4;
const KIND_UNION: u32 = 5;
const KIND_ENUM: u32 = 6;
const KIND_TYPEDEF: u32 = 8;
const KIND_VOLATILE: u32 = 9;
const KIND_CONST: u32 = 10;
const KIND_RESTRICT: u32 = 11;
const KIND_TYPE_TAG: u32 = 18;
const KIND_FUNC: u32 = 12;

/// A BTF blob and where each type record starts in it. Names and members
/// are read from the bytes when asked for, not copied out: vmlinux has
/// ~100k types and the tool needs seven fields of them.
pub struct Btf {
    data: Vec<u8>,
    types: std::ops::Range<usize>,
    strings: std::ops::Range<usize>,
    /// Start of type `id`'s record within `types` (index 0: void).
    starts: Vec<u32>,
}

fn u32_at(data: &[u8], at: usize) -> Result<u32> {
    let bytes = data
        .get(at..at + 4)
        .ok_or_else(|| anyhow!("BTF is truncated at byte {at}"))?;
    Ok(u32::from_le_bytes(bytes.try_into().expect("4 bytes")))
}

/// A struct or union member: (name offset, type id, bit offset).
type Member = (u32, u32, u32);

impl Btf {
    pub fn parse(data: Vec<u8>) -> Result<Self> {
        if data.get(0..2) != Some(&[0x9f, 0xeb]) {
            bail!("not little-endian BTF (bad magic)");
        }
        let hdr_len = u32_at(&data, 4)? as usize;
        let (type_off, type_len) = (u32_at(&data, 8)? as usize, u32_at(&data, 12)? as usize);
        let (str_off, str_len) = (u32_at(&data, 16)? as usize, u32_at(&data, 20)? as usize);
        let types = hdr_len + type_off..hdr_len + type_off + type_len;
        let strings = hdr_len + str_off..hdr_len + str_off + str_len;
        if types.end > data.len() || strings.end > data.len() {
            bail!("BTF sections run past the end of the data");
        }
        let t = &data[types.clone()];
        let mut starts = vec![0];
        let mut at = 0;
        while at < t.len() {
            starts.push(at as u32);
            let info = u32_at(t, at + 4)?;
            let vlen = (info & 0xffff) as usize;
            // The common 12-byte header, then kind-specific data.
            at += 12
                + match (info >> 24) & 0x1f {
                    1 | 14 | 17 => 4, // int, var, decl_tag
                    3 => 12,          // array
                    KIND_STRUCT | KIND_UNION => vlen * 12,
                    6 | 13 => vlen * 8,   // enum, func_proto
                    15 | 19 => vlen * 12, // datasec, enum64
                    _ => 0,               // ptr, fwd, typedef, modifiers, func, float, type_tag
                };
        }
        Ok(Self {
            data,
            types,
            strings,
            starts,
        })
    }

    fn record(&self, id: u32) -> Option<&[u8]> {
        let start = *self.starts.get(id as usize)? as usize;
        (id != 0).then(|| &self.data[self.types.start + start..self.types.end])
    }

    fn kind(&self, id: u32) -> Option<u32> {
        Some((u32_at(self.record(id)?, 4).ok()? >> 24) & 0x1f)
    }

    fn name(&self, name_off: u32) -> &[u8] {
        let s = self.data[self.strings.clone()]
            .get(name_off as usize..)
            .unwrap_or_default();
        &s[..s.iter().position(|&b| b == 0).unwrap_or(s.len())]
    }

    fn members(&self, id: u32) -> Vec<Member> {
        let Some(r) = self.record(id) else {
            return vec![];
        };
        let info = u32_at(r, 4).unwrap_or(0);
        if !matches!((info >> 24) & 0x1f, KIND_STRUCT | KIND_UNION) {
            return vec![];
        }
        let bitfields = info >> 31 == 1;
        (0..(info & 0xffff) as usize)
            .filter_map(|i| {
                let m = 12 + i * 12;
                let off = u32_at(r, m + 8).ok()?;
                let bits = if bitfields { off & 0xff_ffff } else { off };
                Some((u32_at(r, m).ok()?, u32_at(r, m + 4).ok()?, bits))
            })
            .collect()
    }

    /// Strips typedefs and qualifiers.
    fn resolve(&self, mut id: u32) -> u32 {
        for _ in 0..32 {
            match self.kind(id) {
                Some(KIND_TYPEDEF | KIND_VOLATILE | KIND_CONST | KIND_RESTRICT | KIND_TYPE_TAG) => {
                    id = self.record(id).and_then(|r| u32_at(r, 8).ok()).unwrap_or(0)
                }
                _ => break,
            }
        }
        id
    }

    /// The value of `member` of enum `name` (32-bit enums: kind 6).
    pub fn enum_value(&self, name: &str, member: &str) -> Result<u32> {
        let id = self
            .find_named(KIND_ENUM, name)
            .ok_or_else(|| anyhow!("enum {name} not in BTF"))?;
        let r = self
            .record(id)
            .ok_or_else(|| anyhow!("enum {name}: bad BTF"))?;
        let vlen = (u32_at(r, 4)? & 0xffff) as usize;
        for i in 0..vlen {
            let at = 12 + i * 8;
            if self.name(u32_at(r, at)?) == member.as_bytes() {
                return u32_at(r, at + 4);
            }
        }
        bail!("enum {name} has no {member} in BTF")
    }

    /// The value of the enumerator `member` of any 32-bit enum, named or
    /// not (the kernel's `___GFP_*_BIT` live in an anonymous one).
    pub fn enumerator(&self, member: &str) -> Option<u32> {
        (1..self.starts.len() as u32)
            .filter(|&id| self.kind(id) == Some(KIND_ENUM))
            .find_map(|id| {
                let r = self.record(id)?;
                let vlen = (u32_at(r, 4).ok()? & 0xffff) as usize;
                (0..vlen).find_map(|i| {
                    let at = 12 + i * 8;
                    (self.name(u32_at(r, at).ok()?) == member.as_bytes())
                        .then(|| u32_at(r, at + 4).ok())
                        .flatten()
                })
            })
    }

    fn find_struct(&self, name: &str) -> Option<u32> {
        self.find_named(KIND_STRUCT, name)
    }

    /// The id of the kernel function `name` (a BTF FUNC), e.g. as the
    /// target of an fentry program.
    pub fn find_func(&self, name: &str) -> Option<u32> {
        self.find_named(KIND_FUNC, name)
    }

    /// Whether the kernel has the BTF tracepoint `name` (aya attaches a
    /// tp_btf program through the typedef `btf_trace_<name>`).
    pub fn has_btf_tracepoint(&self, name: &str) -> bool {
        self.find_named(KIND_TYPEDEF, &format!("btf_trace_{name}"))
            .is_some()
    }

    fn find_named(&self, kind: u32, name: &str) -> Option<u32> {
        (1..self.starts.len() as u32).find(|&id| {
            self.kind(id) == Some(kind)
                && self
                    .record(id)
                    .and_then(|r| u32_at(r, 0).ok())
                    .map(|n| self.name(n))
                    == Some(name.as_bytes())
        })
    }

    /// Byte offset of `field` in struct `name`, searching anonymous
    /// struct/union members too (the kernel nests many fields that way).
    pub fn offset(&self, name: &str, field: &str) -> Result<u32> {
        let id = self
            .find_struct(name)
            .ok_or_else(|| anyhow!("struct {name} not in BTF"))?;
        self.find(id, field.as_bytes(), 0, 0)
            .map(|bits| bits / 8)
            .ok_or_else(|| anyhow!("struct {name} has no field {field} in BTF"))
    }

    fn find(&self, id: u32, field: &[u8], base_bits: u32, depth: u32) -> Option<u32> {
        if depth > 8 {
            return None;
        }
        for (name_off, type_id, bits) in self.members(self.resolve(id)) {
            let name = self.name(name_off);
            if name == field {
                return Some(base_bits + bits);
            }
            if name.is_empty() {
                if let Some(found) = self.find(type_id, field, base_bits + bits, depth + 1) {
                    return Some(found);
                }
            }
        }
        None
    }
}

/// Byte offsets of the kernel struct fields the probes walk, read from the
/// running kernel's BTF and handed to the probes as one read-only global
/// each before load (CO-RE by hand: aya's Rust probes cannot emit field
/// relocations). Never itself a map value, so a plain userspace struct.
/// A zero `file_inode` means "unknown": fd kinds are then reported as such.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct KernelOffsets {
    /// task_struct.files
    pub task_files: u32,
    /// task_struct.tgid
    pub task_tgid: u32,
    /// task_struct.pid (the thread id); 0 = unknown: off-CPU time is then
    /// not measured.
    pub task_pid: u32,
    /// task_struct.utime, .stime and .se.sum_exec_runtime; runtime 0 =
    /// unknown: exited threads' CPU time is then not measured.
    pub task_utime: u32,
    pub task_stime: u32,
    pub task_runtime: u32,
    /// files_struct.fdt
    pub files_fdt: u32,
    /// fdtable.max_fds
    pub fdt_max_fds: u32,
    /// fdtable.fd
    pub fdt_fd: u32,
    /// file.f_inode
    pub file_inode: u32,
    /// inode.i_mode
    pub inode_mode: u32,
    /// file.f_flags (O_DIRECT is read from it)
    pub file_flags: u32,
    /// task_struct.min_flt
    pub task_min_flt: u32,
    /// task_struct.maj_flt
    pub task_maj_flt: u32,
    /// task_struct.flags (PF_EXITING)
    pub task_flags: u32,
    /// folio.flags
    pub folio_flags: u32,
    /// folio._nr_pages; 0 = unknown: disk reads are then not measured.
    pub folio_nr_pages: u32,
    /// Bit number of PG_head in folio.flags (enum pageflags).
    pub pg_head: u32,
    /// file.f_mapping
    pub file_mapping: u32,
    /// folio.mapping
    pub folio_mapping: u32,
    /// file.private_data (a socket file's `struct socket *`)
    pub file_private: u32,
    /// socket.sk
    pub socket_sk: u32,
    /// sock.__sk_common.skc_flags (`sk_flags`)
    pub sock_flags: u32,
    /// sock.sk_zckey; 0 = unknown: MSG_ZEROCOPY sends are then not told
    /// apart (booked as copies).
    pub sock_zckey: u32,
    /// Bit number of SOCK_ZEROCOPY in sk_flags (enum sock_flags).
    pub sock_zerocopy: u32,
    /// The gfp of a copy-on-write page, GFP_HIGHUSER_MOVABLE | __GFP_COMP;
    /// 0 = unknown: cow_copied is then not measured.
    pub gfp_cow: u32,
    /// The gfp bits compared with `gfp_cow` (all but the KASAN tag and
    /// accounting-extension bits some configs add).
    pub gfp_cow_mask: u32,
    /// Where io_uring requests are read; None on a kernel without io_uring
    /// in its BTF (its requests are then not counted).
    pub uring: Option<UringOffsets>,
    /// How the probes read kernel memory without a helper call per load.
    pub kfuncs: KfuncIds,
}

/// BTF ids for the kfunc `bpf_rdonly_cast` (Linux 6.2+) and the types the
/// probes cast to with it (zc-trace-ebpf's `fds::as_kernel`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct KfuncIds {
    /// The kfunc bpf_rdonly_cast.
    pub rdonly_cast: u32,
    /// struct file
    pub file: u32,
    /// struct kiocb, whose first field is a `struct file *`: an fd table
    /// entry is read as one.
    pub kiocb: u32,
}

fn kfunc_ids(btf: &Btf) -> Result<KfuncIds> {
    let rdonly_cast = btf
        .find_func("bpf_rdonly_cast")
        .ok_or_else(|| anyhow!("the kfunc bpf_rdonly_cast is not in BTF (Linux 6.2+ has it)"))?;
    if btf.offset("kiocb", "ki_filp")? != 0 {
        bail!("kiocb.ki_filp is not kiocb's first field");
    }
    Ok(KfuncIds {
        rdonly_cast,
        file: btf
            .find_struct("file")
            .ok_or_else(|| anyhow!("struct file not in BTF"))?,
        kiocb: btf
            .find_struct("kiocb")
            .ok_or_else(|| anyhow!("struct kiocb not in BTF"))?,
    })
}

/// Offsets of the io_uring structs the completion probe reads.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct UringOffsets {
    /// io_kiocb.file
    pub req_file: u32,
    /// io_kiocb.opcode
    pub req_opcode: u32,
    /// io_kiocb.tctx (6.13+), or io_kiocb.task before
    pub req_tctx: u32,
    /// io_uring_task.task; u32::MAX when `req_tctx` is io_kiocb.task itself
    pub tctx_task: u32,
    /// io_splice.splice_fd_in, from the start of the request (its command
    /// area is a union with `file` at offset 0)
    pub splice_fd_in: u32,
    /// io_splice.flags, likewise
    pub splice_flags: u32,
    /// io_notif_data.zc_report of a SEND_ZC notification's request, likewise
    pub notif_zc_report: u32,
}

/// Where the completion probe finds a request's opcode, file, submitting
/// task and splice input, if the kernel's BTF has io_uring's structs.
fn uring_offsets(btf: &Btf) -> Option<UringOffsets> {
    let (req_tctx, tctx_task) = match btf.offset("io_kiocb", "tctx") {
        Ok(tctx) => (tctx, btf.offset("io_uring_task", "task").ok()?),
        Err(_) => (btf.offset("io_kiocb", "task").ok()?, u32::MAX),
    };
    let cmd = btf.offset("io_kiocb", "cmd").ok()?;
    Some(UringOffsets {
        req_file: btf.offset("io_kiocb", "file").ok()?,
        req_opcode: btf.offset("io_kiocb", "opcode").ok()?,
        req_tctx,
        tctx_task,
        splice_fd_in: cmd + btf.offset("io_splice", "splice_fd_in").ok()?,
        splice_flags: cmd + btf.offset("io_splice", "flags").ok()?,
        notif_zc_report: cmd + btf.offset("io_notif_data", "zc_report").ok()?,
    })
}

/// The offsets the probes need, from the running kernel's BTF.
pub fn kernel_offsets() -> Result<KernelOffsets> {
    let path = vmlinux_path();
    let data = std::fs::read(&path).with_context(|| format!("reading {}", path.display()))?;
    offsets_from(&Btf::parse(data)?)
}

pub fn offsets_from(btf: &Btf) -> Result<KernelOffsets> {
    let (gfp_cow, gfp_cow_mask) = cow_gfp(btf).unwrap_or((0, 0));
    Ok(KernelOffsets {
        task_files: btf.offset("task_struct", "files")?,
        task_tgid: btf.offset("task_struct", "tgid")?,
        task_pid: btf.offset("task_struct", "pid").unwrap_or(0),
        task_utime: btf.offset("task_struct", "utime").unwrap_or(0),
        task_stime: btf.offset("task_struct", "stime").unwrap_or(0),
        task_runtime: task_runtime(btf).unwrap_or(0),
        files_fdt: btf.offset("files_struct", "fdt")?,
        fdt_max_fds: btf.offset("fdtable", "max_fds")?,
        fdt_fd: btf.offset("fdtable", "fd")?,
        file_inode: btf.offset("file", "f_inode")?,
        inode_mode: btf.offset("inode", "i_mode")?,
        file_flags: btf.offset("file", "f_flags")?,
        task_min_flt: btf.offset("task_struct", "min_flt")?,
        task_maj_flt: btf.offset("task_struct", "maj_flt")?,
        task_flags: btf.offset("task_struct", "flags")?,
        folio_flags: btf.offset("folio", "flags")?,
        // Optional: without it disk_read is not measured (the probe stays
        // out), not the whole run refused. Older kernels call it
        // _folio_nr_pages.
        folio_nr_pages: btf
            .offset("folio", "_nr_pages")
            .or_else(|_| btf.offset("folio", "_folio_nr_pages"))
            .unwrap_or(0),
        pg_head: btf.enum_value("pageflags", "PG_head")?,
        file_mapping: btf.offset("file", "f_mapping")?,
        folio_mapping: btf.offset("folio", "mapping")?,
        gfp_cow,
        gfp_cow_mask,
        uring: uring_offsets(btf),
        // Optional: without it fd kinds are unknown (the loader says so).
        kfuncs: kfunc_ids(btf).unwrap_or_default(),
        ..zerocopy_offsets(btf).unwrap_or_default()
    })
}

/// (gfp, mask) of the page a copy-on-write fault copies into:
/// folio_prealloc() -> vma_alloc_folio(GFP_HIGHUSER_MOVABLE, 0, ...), which
/// adds __GFP_COMP (include/linux/gfp_types.h, mm/memory.c). The bit
/// numbers move between kernels and configs, so they come from BTF.
fn cow_gfp(btf: &Btf) -> Option<(u32, u32)> {
    let bit = |name: &str| {
        btf.enumerator(&format!("___GFP_{name}_BIT"))
            .map(|b| 1u32 << (b & 31))
    };
    let mut gfp = 0;
    for name in [
        "HIGHMEM",
        "MOVABLE",
        "IO",
        "FS",
        "DIRECT_RECLAIM",
        "KSWAPD_RECLAIM",
        "HARDWALL",
        "COMP",
    ] {
        gfp |= bit(name)?;
    }
    // Bits a config may add to the same allocation (KASAN_HW_TAGS,
    // MEM_ALLOC_PROFILING): not compared.
    let ignored = ["SKIP_KASAN", "SKIP_ZERO", "ZEROTAGS", "NO_OBJ_EXT"]
        .into_iter()
        .filter_map(bit)
        .fold(0, |m, b| m | b);
    Some((gfp, !ignored))
}

/// The socket fields MSG_ZEROCOPY accounting reads. Optional: a kernel
/// without them (before 4.14) sends no zero-copy bytes to tell apart.
fn zerocopy_offsets(btf: &Btf) -> Result<KernelOffsets> {
    Ok(KernelOffsets {
        file_private: btf.offset("file", "private_data")?,
        socket_sk: btf.offset("socket", "sk")?,
        sock_flags: btf.offset("sock", "__sk_common")? + btf.offset("sock_common", "skc_flags")?,
        sock_zckey: btf.offset("sock", "sk_zckey")?,
        sock_zerocopy: btf.enum_value("sock_flags", "SOCK_ZEROCOPY")?,
        ..Default::default()
    })
}

/// Offset of task_struct.se.sum_exec_runtime (se is an embedded struct).
fn task_runtime(btf: &Btf) -> Result<u32> {
    Ok(btf.offset("task_struct", "se")? + btf.offset("sched_entity", "sum_exec_runtime")?)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_offsets_of_the_running_kernel_when_it_has_btf() {
        let Ok(data) = std::fs::read(VMLINUX) else {
            eprintln!(
                "SKIPPED: {VMLINUX} is not readable here; the parser is covered by e2e tests"
            );
            assert!(
                std::env::var("CI").as_deref() != Ok("true"),
                "CI machines have BTF"
            );
            return;
        };
        let off = offsets_from(&Btf::parse(data).unwrap()).unwrap();
        // fdtable starts with `unsigned int max_fds;` then `struct file **fd`.
        assert_eq!(off.fdt_max_fds, 0);
        assert_eq!(off.fdt_fd, 8);
        assert!(off.task_files > 0 && off.file_inode > 0 && off.file_flags > 0);
        // include/linux/page-flags.h: PG_locked, PG_writeback, PG_referenced,
        // PG_uptodate, PG_dirty, PG_lru, PG_head ... (6 since 6.x).
        assert!(
            off.pg_head > 0 && off.pg_head < 32,
            "PG_head = {}",
            off.pg_head
        );
        assert!(off.folio_nr_pages > off.folio_flags);
        assert!(off.sock_zckey > 0 && off.socket_sk > 0 && off.file_private > 0);
        assert!(off.sock_zerocopy > 0 && off.sock_zerocopy < 64);
        // GFP_HIGHUSER_MOVABLE | __GFP_COMP, as mm_page_alloc shows it on
        // x86_64 since 6.0 (research doc: 0x140cca on 6.18).
        assert_eq!(off.gfp_cow & 0xffff, 0x0cca, "gfp {:#x}", off.gfp_cow);
        assert_eq!(off.gfp_cow & off.gfp_cow_mask, off.gfp_cow);
    }

    #[test]
    fn io_uring_opcode_names_are_the_running_kernels() {
        use zc_trace_common::uring::{MAX_OPS, NAMES};
        let Ok(data) = std::fs::read(VMLINUX) else {
            eprintln!("SKIPPED: {VMLINUX} is not readable here");
            assert!(
                std::env::var("CI").as_deref() != Ok("true"),
                "CI machines have BTF"
            );
            return;
        };
        let btf = Btf::parse(data).unwrap();
        for (op, name) in NAMES.iter().enumerate() {
            let value = btf.enum_value("io_uring_op", &format!("IORING_OP_{name}"));
            assert_eq!(value.ok(), Some(op as u32), "IORING_OP_{name}");
        }
        // The kernel has no opcode this table lacks, and all fit the totals.
        let last = btf.enum_value("io_uring_op", "IORING_OP_LAST").unwrap();
        assert_eq!(last as usize, NAMES.len(), "opcodes added to the kernel");
        assert!(last <= MAX_OPS);
        assert!(offsets_from(&btf).unwrap().uring.is_some());
    }

    #[test]
    fn rejects_garbage() {
        assert!(Btf::parse(b"not btf at all, not at all".to_vec()).is_err());
        assert!(Btf::parse(vec![0x9f, 0xeb, 1, 0]).is_err());
        let mut header_only = vec![0x9f, 0xeb, 1, 0, 24, 0, 0, 0];
        header_only.extend([0, 0, 0, 0, 0xff, 0xff, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0]);
        assert!(Btf::parse(header_only).is_err(), "sections past the end");
    }
}
