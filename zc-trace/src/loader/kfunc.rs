//! Kernel function (kfunc) calls in the eBPF object. aya 0.14 cannot load
//! a program that calls a kfunc, so the probes call a placeholder helper
//! number (`zc_trace_common::kfunc`) and this rewrites each such call into
//! the kfunc call the kernel knows, by its BTF id, before aya parses the
//! object. An instruction keeps its size, so no offset or line table moves.

use object::{Object, ObjectSection, SectionFlags, elf::SHF_EXECINSTR};
use zc_trace_common::kfunc;

/// `BPF_JMP | BPF_CALL`, the opcode of a call instruction.
const CALL: u8 = 0x85;
/// A call's `src_reg` for a kfunc (include/uapi/linux/bpf.h).
const PSEUDO_KFUNC_CALL: u8 = 2;

/// `object` with every placeholder call of `bpf_rdonly_cast` turned into
/// the call of kfunc `rdonly_cast_id`; how many were rewritten. With id 0
/// (not in the kernel's BTF) the calls stay: the probes then never reach
/// them (their BTF ids are 0 too), and the verifier skips dead code.
pub fn link(object: &[u8], rdonly_cast_id: u32) -> Result<(Linked, usize), String> {
    let code = code_ranges(object)?;
    let mut out = Linked::copy_of(object);
    let mut rewritten = 0;
    if rdonly_cast_id == 0 {
        return Ok((out, 0));
    }
    for range in code {
        for insn in out.bytes_mut()[range].chunks_exact_mut(8) {
            if is_placeholder_call(insn, kfunc::RDONLY_CAST) {
                insn[1] = PSEUDO_KFUNC_CALL << 4;
                insn[4..8].copy_from_slice(&rdonly_cast_id.to_le_bytes());
                rewritten += 1;
            }
        }
    }
    Ok((out, rewritten))
}

/// A copy of the object, 8-byte aligned as the ELF parser needs.
pub struct Linked {
    words: Vec<u64>,
    len: usize,
}

impl Linked {
    fn copy_of(object: &[u8]) -> Self {
        let mut linked = Self {
            words: vec![0; object.len().div_ceil(8)],
            len: object.len(),
        };
        linked.bytes_mut().copy_from_slice(object);
        linked
    }

    pub fn bytes(&self) -> &[u8] {
        // SAFETY: `words` holds at least `len` initialised bytes.
        unsafe { std::slice::from_raw_parts(self.words.as_ptr().cast(), self.len) }
    }

    fn bytes_mut(&mut self) -> &mut [u8] {
        // SAFETY: as in `bytes`, borrowed mutably once.
        unsafe { std::slice::from_raw_parts_mut(self.words.as_mut_ptr().cast(), self.len) }
    }
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
        let (linked, n) = link(super::super::OBJECT, 4242).expect("the object parses");
        assert!(n > 0, "no placeholder call in the probes");
        let (_, left) = link(linked.bytes(), 4242).expect("still parses");
        assert_eq!(left, 0, "a placeholder call survived");
    }
}
