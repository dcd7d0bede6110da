//! Renderers: each turns a `Report` into something for people or programs.
//! None of them touches the kernel or the maps.

pub mod charts;
pub mod compare;
pub mod format;
pub mod groups;
pub mod html;
pub mod json;
pub mod output;
pub mod summary;
