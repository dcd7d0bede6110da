//! zc-trace's kernel side: tp_btf probes that count the syscalls, bytes,
//! faults and scheduler switches of the traced processes, per CPU.
//!
//! Data flows one way: probes -> maps (maps.rs) -> the userspace collector.
#![no_std]
#![no_main]
// atomic_xadd: the BPF target declares no atomic read-modify-write, but
// every kernel has an atomic add (BPF_XADD, its result unused).
#![feature(core_intrinsics)]
#![allow(internal_features)]

mod config;
mod fds;
mod maps;
mod probes;
mod target;

#[cfg(not(test))]
#[panic_handler]
fn panic(_info: &core::panic::PanicInfo) -> ! {
    loop {}
}

#[unsafe(link_section = "license")]
#[unsafe(no_mangle)]
static LICENSE: [u8; 4] = *b"GPL\0";
