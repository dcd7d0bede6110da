//! Empty host-side library: lets zc-trace list this crate as a
//! build-dependency so cargo rebuilds the embedded object when it changes.
#![no_std]
