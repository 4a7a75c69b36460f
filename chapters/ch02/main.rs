//! `ch02`: chapter 2's program (being written).

fn main() {
    eprintln!("ch02: not ready yet");
    std::process::exit(2);
}
