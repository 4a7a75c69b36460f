//! Image builds from a Dockerfile: each instruction either changes the
//! image's config or adds a layer.

#[cfg(target_os = "linux")]
pub mod base;
#[cfg(target_os = "linux")]
pub mod builder;
pub mod dockerfile;

#[cfg(target_os = "linux")]
pub use builder::{build, BuildError, Built};
pub use dockerfile::{parse, Command, Instruction, ParseError, Step};
