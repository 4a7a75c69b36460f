//! Ages as kubectl prints them: apimachinery's `duration.HumanDuration`,
//! exact to the second at first and coarser as time goes by. Chapter 3
//! wrote them (lab03's `columns`); the Tables here print the same ages.

pub use lab03::columns::{between, human_duration, since};
