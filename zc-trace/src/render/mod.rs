//! Renderers: each turns a `Report` into something for people or programs.
//! None of them touches the kernel or the maps.

pub mod format;
pub mod json;
pub mod summary;
