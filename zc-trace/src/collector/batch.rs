//! Whole-map reads and key-list deletes in one bpf() call per chunk
//! (BPF_MAP_LOOKUP_BATCH / BPF_MAP_DELETE_BATCH, Linux 5.6+), which aya
//! 0.14 does not wrap: one lookup per row would make the collector's CPU
//! grow with the number of rows.

use std::{
    io,
    mem::size_of,
    os::fd::{AsFd, AsRawFd},
};

use aya::{Pod, maps::MapData};

/// include/uapi/linux/bpf.h: enum bpf_cmd
const BPF_MAP_LOOKUP_BATCH: libc::c_long = 24;
const BPF_MAP_DELETE_BATCH: libc::c_long = 27;

/// Elements asked for per call: large enough that a whole map takes a few
/// calls, small enough that the buffers stay small (RSS).
const CHUNK: usize = 4096;

/// union bpf_attr's `batch` member.
#[repr(C)]
#[derive(Default)]
struct BatchAttr {
    in_batch: u64,
    out_batch: u64,
    keys: u64,
    values: u64,
    count: u32,
    map_fd: u32,
    elem_flags: u64,
    flags: u64,
}

fn bpf(cmd: libc::c_long, attr: &mut BatchAttr) -> io::Result<()> {
    // SAFETY: `attr` is a valid bpf_attr prefix for the batch commands and
    // the buffers it points to are sized for `count` elements.
    let r = unsafe {
        libc::syscall(
            libc::SYS_bpf,
            cmd,
            attr as *mut BatchAttr,
            size_of::<BatchAttr>(),
        )
    };
    if r < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(())
    }
}

/// Calls `each(keys, values)` for every element of `map`, a chunk at a time.
/// `per_key` is the number of values per key: the number of possible CPUs
/// for a per-CPU map, 1 otherwise (values are then laid out CPU by CPU).
pub fn for_each<K: Pod, V: Pod>(
    map: &MapData,
    per_key: usize,
    mut each: impl FnMut(&[K], &[V]),
) -> io::Result<()> {
    if per_key > 1 && !size_of::<V>().is_multiple_of(8) {
        // The kernel pads each CPU's value to 8 bytes; ours never need it.
        return Err(io::Error::other(
            "per-CPU values must be a multiple of 8 bytes",
        ));
    }
    let mut keys: Vec<K> = Vec::with_capacity(CHUNK);
    let mut values: Vec<V> = Vec::with_capacity(CHUNK * per_key);
    // The position token: a u32 bucket for hashes, a key for arrays.
    let mut token_in = [0u64; 8];
    let mut token_out = [0u64; 8];
    let mut first = true;
    loop {
        let mut attr = BatchAttr {
            in_batch: if first { 0 } else { token_in.as_ptr() as u64 },
            out_batch: token_out.as_mut_ptr() as u64,
            keys: keys.as_mut_ptr() as u64,
            values: values.as_mut_ptr() as u64,
            count: CHUNK as u32,
            map_fd: map.fd().as_fd().as_raw_fd() as u32,
            ..Default::default()
        };
        let result = bpf(BPF_MAP_LOOKUP_BATCH, &mut attr);
        let n = (attr.count as usize).min(CHUNK);
        // SAFETY: the kernel filled the first `n` keys and values; both are
        // Pod, valid for any bytes.
        unsafe {
            keys.set_len(n);
            values.set_len(n * per_key);
        }
        each(&keys, &values);
        match result {
            Ok(()) => {}
            Err(e) if e.raw_os_error() == Some(libc::ENOENT) => return Ok(()),
            Err(e) => return Err(e),
        }
        token_in = token_out;
        first = false;
    }
}

/// Deletes `keys` from `map`; a key already gone (the probes may delete a
/// row too: an exit folding its process) is skipped.
pub fn delete<K: Pod>(map: &MapData, keys: &[K]) -> io::Result<()> {
    let mut rest = keys;
    while !rest.is_empty() {
        let chunk = &rest[..rest.len().min(CHUNK)];
        let mut attr = BatchAttr {
            keys: chunk.as_ptr() as u64,
            count: chunk.len() as u32,
            map_fd: map.fd().as_fd().as_raw_fd() as u32,
            ..Default::default()
        };
        // The kernel stops at the first key it cannot delete and says how
        // many it deleted before it.
        let deleted = match bpf(BPF_MAP_DELETE_BATCH, &mut attr) {
            Ok(()) => chunk.len(),
            Err(e) if e.raw_os_error() == Some(libc::ENOENT) => attr.count as usize + 1,
            Err(e) => return Err(e),
        };
        rest = &rest[deleted.min(rest.len())..];
    }
    Ok(())
}
