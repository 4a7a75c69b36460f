//! How the chapter programs read their command line and report errors: in
//! their own words, and in 80 columns, as the book shows them.

use clap::error::{ContextKind, ContextValue, ErrorKind};

/// The widest line a message gets: the book's.
pub const WIDTH: usize = 80;

/// Parses the command line. A flag whose value our parsers refuse is named
/// with the parser's reason (`ch01: --memory 64X: unknown unit "X" …`) and
/// exits with 2, as any usage error; the rest is clap's to report.
pub fn parse<T: clap::Parser>(program: &str) -> T {
    let error = match T::try_parse() {
        Ok(cli) => return cli,
        Err(e) => e,
    };
    if error.kind() != ErrorKind::ValueValidation {
        error.exit();
    }
    let context = |kind| match error.get(kind) {
        Some(ContextValue::String(s)) => Some(s.clone()),
        _ => None,
    };
    let (Some(arg), Some(value)) = (
        context(ContextKind::InvalidArg),
        context(ContextKind::InvalidValue),
    ) else {
        error.exit();
    };
    // "--memory <SIZE>" names the flag and its placeholder; the flag is enough.
    let flag = arg.split(' ').next().unwrap_or(&arg);
    let reason = std::error::Error::source(&error)
        .map(|e| e.to_string())
        .unwrap_or_else(|| "not a valid value".into());
    eprintln!(
        "{}",
        wrap(&format!("{program}: {flag} {value}: {reason}"), WIDTH)
    );
    std::process::exit(2);
}

/// `text` folded at spaces into lines of at most `width` characters; the
/// lines after the first are indented past its first `: ` (as in `ch02: `),
/// so a long error still reads as one message.
pub fn wrap(text: &str, width: usize) -> String {
    let indent = text
        .find(": ")
        .map(|i| i + 2)
        .filter(|&i| i <= width / 4)
        .unwrap_or(0);
    let rest = " ".repeat(indent);
    text.lines()
        .map(|paragraph| {
            // A line's own indentation stays.
            let own = &paragraph
                [..paragraph.len() - paragraph.trim_start_matches(' ').len()];
            let options = textwrap::Options::new(width)
                .initial_indent(own)
                .subsequent_indent(&rest)
                .word_separator(textwrap::WordSeparator::AsciiSpace)
                .break_words(false);
            textwrap::fill(paragraph.trim_start_matches(' '), options)
        })
        .collect::<Vec<_>>()
        .join("\n")
}
