//! The kubelings workbook CLI, as a library so tests can reach its parts.
//!
//! Library modules (typed errors): [`workspace`] finds the workbook,
//! [`manifest`] reads `labs/exercises.yaml`, [`markers`] finds and replaces
//! exercise regions, [`export`] writes a student workspace (or verify's
//! switch copy), [`runner`] builds the labs' tests with cargo and runs each
//! test as a process of its own, [`progress`] keeps
//! `.kubelings/progress.json`, [`book`] checks and builds the book.
//!
//! Command modules (anyhow, they print): [`cli`] parses arguments and holds
//! the small commands; [`check`], [`verify`], [`skips`] (`kubelings test`)
//! and [`doctor`] the larger ones.

pub mod book;
pub mod check;
pub mod cli;
pub mod doctor;
pub mod export;
pub mod manifest;
pub mod markers;
pub mod progress;
pub mod runner;
pub mod skips;
pub mod verify;
pub mod workspace;
