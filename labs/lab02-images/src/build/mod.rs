//! Image builds from a Dockerfile: each instruction either changes the
//! image's config or adds a layer.

pub mod dockerfile;

pub use dockerfile::{parse, Command, Instruction, ParseError, Step};
