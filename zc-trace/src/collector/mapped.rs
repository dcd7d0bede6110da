//! A BPF array created with BPF_F_MMAPABLE, mapped into our memory: the
//! collector reads it every sample without a syscall, so the timeline costs
//! the same whatever the size of the array.

use std::{
    io,
    marker::PhantomData,
    os::fd::{AsFd, AsRawFd},
    ptr::NonNull,
};

use aya::{Pod, maps::MapData};

pub struct Mapped<V> {
    at: NonNull<V>,
    len: usize,
    bytes: usize,
    _values: PhantomData<V>,
}

impl<V: Pod> Mapped<V> {
    /// Maps the `len` values of `map` (an mmapable array of `V`), read-only.
    pub fn new(map: &MapData, len: usize) -> io::Result<Self> {
        // SAFETY: sysconf has no preconditions.
        let page = unsafe { libc::sysconf(libc::_SC_PAGESIZE) }.max(1) as usize;
        let bytes = (len * size_of::<V>()).div_ceil(page) * page;
        // SAFETY: a fresh shared read-only mapping of the map's values,
        // which the kernel keeps for as long as the mapping exists.
        let at = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                bytes,
                libc::PROT_READ,
                libc::MAP_SHARED,
                map.fd().as_fd().as_raw_fd(),
                0,
            )
        };
        if at == libc::MAP_FAILED {
            return Err(io::Error::last_os_error());
        }
        Ok(Self {
            at: NonNull::new(at.cast()).ok_or_else(|| io::Error::other("mmap returned NULL"))?,
            len,
            bytes,
            _values: PhantomData,
        })
    }

    /// Value `i` as it is now (0..len; the probes keep writing it).
    pub fn get(&self, i: usize) -> Option<V> {
        // SAFETY: within the mapping; a volatile read because the kernel
        // writes these values concurrently (aligned u64 fields: no tearing
        // on the 64-bit targets BPF runs on).
        (i < self.len).then(|| unsafe { std::ptr::read_volatile(self.at.as_ptr().add(i)) })
    }
}

impl<V> Drop for Mapped<V> {
    fn drop(&mut self) {
        // SAFETY: our own mapping, unmapped once.
        unsafe { libc::munmap(self.at.as_ptr().cast(), self.bytes) };
    }
}
