//! Image builds from a Dockerfile: each instruction either changes the
//! image's config or adds a layer.

pub mod base;
pub mod builder;
pub mod dockerfile;

pub use builder::{build, BuildError, Built};
pub use dockerfile::{parse, Command, Instruction, ParseError, Step};
