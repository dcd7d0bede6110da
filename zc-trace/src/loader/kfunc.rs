//! Kernel function (kfunc) calls in the eBPF object. aya 0.14 cannot load
//! a program that calls a kfunc, so the probes call a placeholder helper
//! number (`zc_trace_common::kfunc`) and this rewrites each such call into
//! the kfunc call the kernel knows, by its BTF id, before aya parses the
//! object. An instruction keeps its size, so no offset or line table moves.

use std::sync::{Mutex, MutexGuard};

use object::{Object as _, ObjectSection, SectionFlags, elf::SHF_EXECINSTR};
use zc_trace_common::kfunc;

/// `BPF_JMP | BPF_CALL`, the opcode of a call instruction.
const CALL: u8 = 0x85;
/// A call's `src_reg` for a kfunc (include/uapi/linux/bpf.h).
const PSEUDO_KFUNC_CALL: u8 = 2;

/// The object built from zc-trace-ebpf by build.rs, in writable memory so
/// that its calls are linked in place: a copy would add its size (1 MiB,
/// most of it debug info) to the peak RSS, beside aya's parse of it.
static OBJECT: Mutex<Object> = Mutex::new(Object(*include_bytes!(concat!(
    env!("OUT_DIR"),
    "/zc-trace"
))));

/// Aligned as the ELF parser needs.
#[repr(C, align(32))]
pub struct Object([u8; include_bytes!(concat!(env!("OUT_DIR"), "/zc-trace")).len()]);

impl Object {
    pub fn bytes(&self) -> &[u8] {
        &self.0
    }
}

/// The object with its placeholder calls of `bpf_rdonly_cast` linked to
/// kfunc `rdonly_cast_id`, held until the probes are loaded. With id 0
/// (not in the kernel's BTF) the calls stay: the probes then never reach
/// them (their BTF ids are 0 too), and the verifier skips dead code.
pub fn linked(rdonly_cast_id: u32) -> Result<MutexGuard<'static, Object>, String> {
    let mut object = OBJECT.lock().unwrap_or_else(|e| e.into_inner());
    if rdonly_cast_id != 0 {
        link(&mut object.0, rdonly_cast_id)?;
    }
    Ok(object)
}

/// Rewrites every placeholder call in `object` into the call of kfunc
/// `rdonly_cast_id`; how many it rewrote.
fn link(object: &mut [u8], rdonly_cast_id: u32) -> Result<usize, String> {
    let mut rewritten = 0;
    for range in code_ranges(object)? {
        for insn in object[range].chunks_exact_mut(8) {
            if is_placeholder_call(insn, kfunc::RDONLY_CAST) {
                insn[1] = PSEUDO_KFUNC_CALL << 4;
                insn[4..8].copy_from_slice(&rdonly_cast_id.to_le_bytes());
                rewritten += 1;
            }
        }
    }
    Ok(rewritten)
}

/// Whether `insn` is `call placeholder` (src_reg 0: a helper call).
fn is_placeholder_call(insn: &[u8], placeholder: u32) -> bool {
    insn[0] == CALL && insn[1] == 0 && insn[4..8] == placeholder.to_le_bytes()
}

/// Where the object's program code is: its executable sections.
fn code_ranges(object: &[u8]) -> Result<Vec<std::ops::Range<usize>>, String> {
    let elf = object::File::parse(object).map_err(|e| format!("not an ELF object: {e}"))?;
    Ok(elf
        .sections()
        .filter(|s| matches!(s.flags(), SectionFlags::Elf { sh_flags } if sh_flags & u64::from(SHF_EXECINSTR) != 0))
        .filter_map(|s| {
            let (start, len) = s.file_range()?;
            Some(start as usize..(start + len) as usize)
        })
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rewrites_only_placeholder_calls() {
        let placeholder = kfunc::RDONLY_CAST.to_le_bytes();
        let mut call = [CALL, 0, 0, 0, 0, 0, 0, 0];
        call[4..].copy_from_slice(&placeholder);
        assert!(is_placeholder_call(&call, kfunc::RDONLY_CAST));
        // A real helper call, and the placeholder's bytes as a load's
        // immediate, are left alone.
        assert!(!is_placeholder_call(
            &[CALL, 0, 0, 0, 14, 0, 0, 0],
            kfunc::RDONLY_CAST
        ));
        let mut mov = call;
        mov[0] = 0xb7;
        assert!(!is_placeholder_call(&mov, kfunc::RDONLY_CAST));
    }

    #[test]
    fn the_embedded_object_calls_rdonly_cast() {
        let object = linked(0).expect("the object parses");
        // A copy: another test's load may have linked the original.
        let mut copy = object.bytes().to_vec();
        drop(object);
        let before = link(&mut copy, 4242).expect("the object parses");
        let after = link(&mut copy, 4242).expect("still parses");
        assert_eq!(after, 0, "a placeholder call survived");
        let kfunc_calls = copy
            .chunks_exact(8)
            .filter(|i| i[0] == CALL && i[1] == PSEUDO_KFUNC_CALL << 4)
            .count();
        assert!(
            before > 0 || kfunc_calls > 0,
            "no placeholder call in the probes"
        );
    }
}
