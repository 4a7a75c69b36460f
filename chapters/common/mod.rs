//! What the chapter programs share. Each program includes this directory as
//! its module `common`.

pub mod cli;
pub mod container;
