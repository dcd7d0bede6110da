//! Field offsets of the running kernel, read from its BTF.
//!
//! The probes walk a few kernel structs (task -> files -> fdtable -> file ->
//! inode) whose layout changes between kernels and configs. aya's Rust
//! probes cannot carry CO-RE field relocations, so the offsets are looked up
//! here, in /sys/kernel/btf/vmlinux, and handed to the probes as a global.
//! Format: https://docs.kernel.org/bpf/btf.html

use std::collections::HashMap;

use anyhow::{Context as _, Result, anyhow, bail};
use zc_trace_common::KernelOffsets;

pub const VMLINUX: &str = "/sys/kernel/btf/vmlinux";

/// Where the kernel's BTF is read from. `ZC_TRACE_VMLINUX` overrides it so
/// the tests can show what a kernel without BTF looks like.
pub fn vmlinux_path() -> std::path::PathBuf {
    std::env::var_os("ZC_TRACE_VMLINUX").map_or_else(|| VMLINUX.into(), Into::into)
}

const KIND_STRUCT: u32 = 4;
const KIND_UNION: u32 = 5;
const KIND_TYPEDEF: u32 = 8;
const KIND_VOLATILE: u32 = 9;
const KIND_CONST: u32 = 10;
const KIND_RESTRICT: u32 = 11;
const KIND_TYPE_TAG: u32 = 18;

struct Member {
    name: String,
    type_id: u32,
    bit_offset: u32,
}

struct Type {
    kind: u32,
    /// Referenced type for modifiers and typedefs.
    type_id: u32,
    members: Vec<Member>,
}

/// The struct and union types of a BTF blob.
pub struct Btf {
    types: Vec<Type>,
    structs: HashMap<String, u32>,
}

fn u32_at(data: &[u8], at: usize) -> Result<u32> {
    let bytes = data
        .get(at..at + 4)
        .ok_or_else(|| anyhow!("BTF is truncated at byte {at}"))?;
    Ok(u32::from_le_bytes(bytes.try_into().expect("4 bytes")))
}

fn str_at(strings: &[u8], off: u32) -> String {
    let s = strings.get(off as usize..).unwrap_or_default();
    let end = s.iter().position(|&b| b == 0).unwrap_or(s.len());
    String::from_utf8_lossy(&s[..end]).into_owned()
}

impl Btf {
    pub fn parse(data: &[u8]) -> Result<Self> {
        if data.get(0..2) != Some(&[0x9f, 0xeb]) {
            bail!("not little-endian BTF (bad magic)");
        }
        let hdr_len = u32_at(data, 4)? as usize;
        let (type_off, type_len) = (u32_at(data, 8)? as usize, u32_at(data, 12)? as usize);
        let (str_off, str_len) = (u32_at(data, 16)? as usize, u32_at(data, 20)? as usize);
        let types_data = data
            .get(hdr_len + type_off..hdr_len + type_off + type_len)
            .ok_or_else(|| anyhow!("BTF type section out of bounds"))?;
        let strings = data
            .get(hdr_len + str_off..hdr_len + str_off + str_len)
            .ok_or_else(|| anyhow!("BTF string section out of bounds"))?;

        // Type ids start at 1; id 0 is void.
        let mut types = vec![Type {
            kind: 0,
            type_id: 0,
            members: vec![],
        }];
        let mut structs = HashMap::new();
        let mut at = 0;
        while at < types_data.len() {
            let name_off = u32_at(types_data, at)?;
            let info = u32_at(types_data, at + 4)?;
            let size_or_type = u32_at(types_data, at + 8)?;
            at += 12;
            let vlen = (info & 0xffff) as usize;
            let kind = (info >> 24) & 0x1f;
            let kind_flag = info >> 31 == 1;
            let mut members = vec![];
            // Bytes of kind-specific data after the common header.
            let extra = match kind {
                1 | 14 | 17 => 4, // int, var, decl_tag
                3 => 12,          // array
                KIND_STRUCT | KIND_UNION => {
                    for i in 0..vlen {
                        let m = at + i * 12;
                        let off = u32_at(types_data, m + 8)?;
                        members.push(Member {
                            name: str_at(strings, u32_at(types_data, m)?),
                            type_id: u32_at(types_data, m + 4)?,
                            bit_offset: if kind_flag { off & 0xff_ffff } else { off },
                        });
                    }
                    vlen * 12
                }
                6 => vlen * 8,   // enum
                13 => vlen * 8,  // func_proto
                15 => vlen * 12, // datasec
                19 => vlen * 12, // enum64
                _ => 0,          // ptr, fwd, typedef, modifiers, func, float, type_tag
            };
            at += extra;
            let name = str_at(strings, name_off);
            if kind == KIND_STRUCT && !name.is_empty() {
                // The first definition wins; duplicates do not occur in vmlinux.
                structs.entry(name).or_insert(types.len() as u32);
            }
            types.push(Type {
                kind,
                type_id: size_or_type,
                members,
            });
        }
        Ok(Self { types, structs })
    }

    /// Strips typedefs and qualifiers.
    fn resolve(&self, mut id: u32) -> u32 {
        for _ in 0..32 {
            match self.types.get(id as usize) {
                Some(t)
                    if matches!(
                        t.kind,
                        KIND_TYPEDEF | KIND_VOLATILE | KIND_CONST | KIND_RESTRICT | KIND_TYPE_TAG
                    ) =>
                {
                    id = t.type_id
                }
                _ => break,
            }
        }
        id
    }

    /// Byte offset of `field` in struct `name`, searching anonymous
    /// struct/union members too (the kernel nests many fields that way).
    pub fn offset(&self, name: &str, field: &str) -> Result<u32> {
        let id = *self
            .structs
            .get(name)
            .ok_or_else(|| anyhow!("struct {name} not in BTF"))?;
        self.find(id, field, 0)
            .map(|bits| bits / 8)
            .ok_or_else(|| anyhow!("struct {name} has no field {field} in BTF"))
    }

    fn find(&self, id: u32, field: &str, base_bits: u32) -> Option<u32> {
        let t = self.types.get(self.resolve(id) as usize)?;
        for m in &t.members {
            if m.name == field {
                return Some(base_bits + m.bit_offset);
            }
            if m.name.is_empty() {
                let inner = self.types.get(self.resolve(m.type_id) as usize)?;
                if matches!(inner.kind, KIND_STRUCT | KIND_UNION) {
                    if let Some(bits) = self.find(m.type_id, field, base_bits + m.bit_offset) {
                        return Some(bits);
                    }
                }
            }
        }
        None
    }
}

/// The offsets the probes need, from the running kernel's BTF.
pub fn kernel_offsets() -> Result<KernelOffsets> {
    let path = vmlinux_path();
    let data = std::fs::read(&path).with_context(|| format!("reading {}", path.display()))?;
    offsets_from(&Btf::parse(&data)?)
}

pub fn offsets_from(btf: &Btf) -> Result<KernelOffsets> {
    Ok(KernelOffsets {
        task_files: btf.offset("task_struct", "files")?,
        task_tgid: btf.offset("task_struct", "tgid")?,
        files_fdt: btf.offset("files_struct", "fdt")?,
        fdt_max_fds: btf.offset("fdtable", "max_fds")?,
        fdt_fd: btf.offset("fdtable", "fd")?,
        file_inode: btf.offset("file", "f_inode")?,
        inode_mode: btf.offset("inode", "i_mode")?,
        _pad: 0,
    })
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
        let off = offsets_from(&Btf::parse(&data).unwrap()).unwrap();
        // fdtable starts with `unsigned int max_fds;` then `struct file **fd`.
        assert_eq!(off.fdt_max_fds, 0);
        assert_eq!(off.fdt_fd, 8);
        assert!(off.task_files > 0 && off.file_inode > 0);
    }

    #[test]
    fn rejects_garbage() {
        assert!(Btf::parse(b"not btf at all, not at all").is_err());
        assert!(Btf::parse(&[0x9f, 0xeb, 1, 0]).is_err());
    }
}
