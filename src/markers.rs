//! Exercise markers in lab source:
//!
//! ```text
//!     // EXERCISE: <id>
//!     ...the reference solution: the whole body of one function...
//!     // EXERCISE_END: <id>
//! ```
//!
//! The starter keeps both marker lines (so the student sees where to work)
//! and replaces the lines between them with one `todo!(...)`.

use std::collections::HashMap;

/// One marked region of a file. Line numbers are 1-based.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Region {
    pub id: String,
    /// The `// EXERCISE: id` line.
    pub start: usize,
    /// The `// EXERCISE_END: id` line.
    pub end: usize,
    /// Leading whitespace of the start marker; the `todo!` gets the same.
    pub indent: String,
}

impl Region {
    /// Number of lines strictly between the markers.
    pub fn body_lines(&self) -> usize {
        self.end - self.start - 1
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum MarkerError {
    #[error("line {line}: EXERCISE marker with no id")]
    MissingId { line: usize },
    #[error("line {line}: EXERCISE: {id} starts inside EXERCISE: {open} (line {open_line}); regions cannot nest")]
    Nested {
        line: usize,
        id: String,
        open: String,
        open_line: usize,
    },
    #[error("line {line}: EXERCISE_END: {id} without a matching EXERCISE: {id} before it")]
    UnmatchedEnd { line: usize, id: String },
    #[error("line {line}: EXERCISE_END: {id} closes EXERCISE: {open} (line {open_line})")]
    Mismatched {
        line: usize,
        id: String,
        open: String,
        open_line: usize,
    },
    #[error("line {line}: EXERCISE: {id} is never closed by EXERCISE_END: {id}")]
    Unclosed { line: usize, id: String },
}

impl MarkerError {
    pub fn line(&self) -> usize {
        match self {
            MarkerError::MissingId { line }
            | MarkerError::Nested { line, .. }
            | MarkerError::UnmatchedEnd { line, .. }
            | MarkerError::Mismatched { line, .. }
            | MarkerError::Unclosed { line, .. } => *line,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Start,
    End,
}

/// Recognises `// EXERCISE: id` and `// EXERCISE_END: id` (any indentation).
/// Doc comments (`///`) do not count: they may mention markers in prose.
fn marker(line: &str) -> Option<(Kind, &str)> {
    let rest = line.trim_start().strip_prefix("//")?;
    if rest.starts_with('/') || rest.starts_with('!') {
        return None;
    }
    let rest = rest.trim_start();
    if let Some(id) = rest.strip_prefix("EXERCISE_END:") {
        Some((Kind::End, id.trim()))
    } else {
        rest.strip_prefix("EXERCISE:")
            .map(|id| (Kind::Start, id.trim()))
    }
}

/// Finds all regions in `text`, checking that they are well formed: every
/// start has its own end, in order, without nesting.
pub fn scan(text: &str) -> Result<Vec<Region>, MarkerError> {
    let mut regions = Vec::new();
    let mut open: Option<(String, usize, String)> = None;
    for (i, line) in text.lines().enumerate() {
        let n = i + 1;
        let Some((kind, id)) = marker(line) else {
            continue;
        };
        if id.is_empty() {
            return Err(MarkerError::MissingId { line: n });
        }
        match (kind, open.take()) {
            (Kind::Start, None) => {
                let indent: String = line.chars().take_while(|c| c.is_whitespace()).collect();
                open = Some((id.to_string(), n, indent));
            }
            (Kind::Start, Some((open_id, open_line, _))) => {
                return Err(MarkerError::Nested {
                    line: n,
                    id: id.to_string(),
                    open: open_id,
                    open_line,
                })
            }
            (Kind::End, None) => {
                return Err(MarkerError::UnmatchedEnd {
                    line: n,
                    id: id.to_string(),
                })
            }
            (Kind::End, Some((open_id, open_line, indent))) => {
                if open_id != id {
                    return Err(MarkerError::Mismatched {
                        line: n,
                        id: id.to_string(),
                        open: open_id,
                        open_line,
                    });
                }
                regions.push(Region {
                    id: open_id,
                    start: open_line,
                    end: n,
                    indent,
                });
            }
        }
    }
    match open {
        Some((id, line, _)) => Err(MarkerError::Unclosed { line, id }),
        None => Ok(regions),
    }
}

/// The line that stands in for a solution in the starter (without indent).
pub fn todo_line(id: &str, title: &str, section: &str) -> String {
    // The text becomes a format string inside a string literal: escape both.
    let text = format!("{id}: {title} (book §{section})");
    let mut escaped = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '\\' => escaped.push_str("\\\\"),
            '"' => escaped.push_str("\\\""),
            '{' => escaped.push_str("{{"),
            '}' => escaped.push_str("}}"),
            c => escaped.push(c),
        }
    }
    format!("todo!(\"{escaped}\")")
}

/// Is this line an mdBook anchor comment (`ANCHOR:` / `ANCHOR_END:`)?
fn anchor(line: &str) -> Option<Kind> {
    let rest = line.trim_start().strip_prefix("//")?.trim_start();
    if rest.starts_with("ANCHOR_END:") {
        Some(Kind::End)
    } else if rest.starts_with("ANCHOR:") {
        Some(Kind::Start)
    } else {
        None
    }
}

/// Replaces the body of every region with its replacement line from
/// `replacements` (id -> text without indent). The marker lines stay, and so
/// do mdBook anchor lines found inside a region, so `{{#include file:anchor}}`
/// still resolves in the starter: opening anchors go before the `todo!`,
/// closing ones after it. Regions whose id is not in `replacements` are an
/// error for the caller to catch first (see [`scan`]); here they are kept.
pub fn replace(text: &str, replacements: &HashMap<String, String>) -> Result<String, MarkerError> {
    let regions = scan(text)?;
    let lines: Vec<&str> = text.split_inclusive('\n').collect();
    let mut out = String::with_capacity(text.len());
    let mut next = 0; // index into `lines` of the first line not yet copied
    for region in &regions {
        let Some(replacement) = replacements.get(&region.id) else {
            continue;
        };
        // Copy up to and including the start marker (region.start is 1-based).
        for line in &lines[next..region.start] {
            out.push_str(line);
        }
        let marker_line = lines[region.start - 1];
        let eol = if marker_line.ends_with("\r\n") {
            "\r\n"
        } else {
            "\n"
        };
        let body = &lines[region.start..region.end - 1];
        for line in body.iter().filter(|l| anchor(l) == Some(Kind::Start)) {
            out.push_str(line);
        }
        out.push_str(&region.indent);
        out.push_str(replacement);
        out.push_str(eol);
        for line in body.iter().filter(|l| anchor(l) == Some(Kind::End)) {
            out.push_str(line);
        }
        next = region.end - 1;
    }
    for line in &lines[next..] {
        out.push_str(line);
    }
    Ok(out)
}

/// The switch copy `kubelings verify` builds: every region's body becomes
/// `if ::kubelings_probe::solved("<id>") { <body> } else { <todo> }`, so
/// one build holds the reference and the starter of every exercise and
/// `KUBELINGS_SOLVED` picks between them at run time. `todos` is as for
/// [`replace`]; a region without an entry is left as it is.
pub fn switch(text: &str, todos: &HashMap<String, String>) -> Result<String, MarkerError> {
    let regions = scan(text)?;
    let lines: Vec<&str> = text.split_inclusive('\n').collect();
    let mut out = String::with_capacity(text.len() + regions.len() * 80);
    let mut next = 0;
    for region in &regions {
        let Some(todo) = todos.get(&region.id) else {
            continue;
        };
        for line in &lines[next..region.start] {
            out.push_str(line);
        }
        let indent = &region.indent;
        // The id is a string literal's content: escape it like the todo.
        let id = region.id.replace('\\', "\\\\").replace('"', "\\\"");
        out.push_str(&format!(
            "{indent}if ::kubelings_probe::solved(\"{id}\") {{\n"
        ));
        let body = &lines[region.start..region.end - 1];
        for line in body {
            out.push_str(line);
        }
        if body.last().is_some_and(|l| !l.ends_with('\n')) {
            out.push('\n');
        }
        out.push_str(&format!(
            "{indent}}} else {{\n{indent}    {todo}\n{indent}}}\n"
        ));
        next = region.end - 1;
    }
    for line in &lines[next..] {
        out.push_str(line);
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    const SOURCE: &str = "\
/// Parses a size.
// ANCHOR: parse
pub fn parse_size(s: &str) -> Result<u64, ParseError> {
    // EXERCISE: lab01-parse-size
    let digits = s.find(|c: char| !c.is_ascii_digit()).unwrap_or(s.len());
    let (n, unit) = s.split_at(digits);
    todo_unit(n, unit)
    // EXERCISE_END: lab01-parse-size
}
// ANCHOR_END: parse
";

    fn todo_for(id: &str) -> HashMap<String, String> {
        HashMap::from([(
            id.to_string(),
            todo_line(id, "Parse a memory size such as 64M", "1.5"),
        )])
    }

    #[test]
    fn finds_regions() {
        let regions = scan(SOURCE).unwrap();
        assert_eq!(
            regions,
            vec![Region {
                id: "lab01-parse-size".into(),
                start: 4,
                end: 8,
                indent: "    ".into()
            }]
        );
        assert_eq!(regions[0].body_lines(), 3);
    }

    #[test]
    fn replaces_the_body_and_keeps_markers_and_anchors() {
        let out = replace(SOURCE, &todo_for("lab01-parse-size")).unwrap();
        assert_eq!(
            out,
            "\
/// Parses a size.
// ANCHOR: parse
pub fn parse_size(s: &str) -> Result<u64, ParseError> {
    // EXERCISE: lab01-parse-size
    todo!(\"lab01-parse-size: Parse a memory size such as 64M (book §1.5)\")
    // EXERCISE_END: lab01-parse-size
}
// ANCHOR_END: parse
"
        );
    }

    #[test]
    fn keeps_anchors_inside_a_region() {
        let src = "fn f() {\n  // EXERCISE: a\n  // ANCHOR: body\n  1\n  // ANCHOR_END: body\n  // EXERCISE_END: a\n}\n";
        let out = replace(src, &HashMap::from([("a".into(), "todo!()".into())])).unwrap();
        assert_eq!(
            out,
            "fn f() {\n  // EXERCISE: a\n  // ANCHOR: body\n  todo!()\n  // ANCHOR_END: body\n  // EXERCISE_END: a\n}\n"
        );
    }

    #[test]
    fn leaves_other_regions_and_crlf_alone() {
        let src = "fn f() {\r\n\t// EXERCISE: a\r\n\t1\r\n\t// EXERCISE_END: a\r\n}\r\n// EXERCISE: b\r\n2\r\n// EXERCISE_END: b\r\n";
        let out = replace(src, &HashMap::from([("a".into(), "todo!()".into())])).unwrap();
        assert_eq!(
            out,
            "fn f() {\r\n\t// EXERCISE: a\r\n\ttodo!()\r\n\t// EXERCISE_END: a\r\n}\r\n// EXERCISE: b\r\n2\r\n// EXERCISE_END: b\r\n"
        );
    }

    #[test]
    fn switch_keeps_the_body_behind_the_solved_flag() {
        let out = switch(SOURCE, &todo_for("lab01-parse-size")).unwrap();
        assert_eq!(
            out,
            "\
/// Parses a size.
// ANCHOR: parse
pub fn parse_size(s: &str) -> Result<u64, ParseError> {
    // EXERCISE: lab01-parse-size
    if ::kubelings_probe::solved(\"lab01-parse-size\") {
    let digits = s.find(|c: char| !c.is_ascii_digit()).unwrap_or(s.len());
    let (n, unit) = s.split_at(digits);
    todo_unit(n, unit)
    } else {
        todo!(\"lab01-parse-size: Parse a memory size such as 64M (book §1.5)\")
    }
    // EXERCISE_END: lab01-parse-size
}
// ANCHOR_END: parse
"
        );
        // The markers are still well formed, so the copy can be scanned.
        assert_eq!(scan(&out).unwrap().len(), 1);
    }

    #[test]
    fn escapes_the_todo_text() {
        assert_eq!(
            todo_line("x", r#"Say "hi" {now} \o/"#, "2.1"),
            r#"todo!("x: Say \"hi\" {{now}} \\o/ (book §2.1)")"#
        );
    }

    #[test]
    fn rejects_malformed_markers() {
        let bad = |s: &str| scan(s).unwrap_err();
        assert_eq!(
            bad("// EXERCISE: a\n// EXERCISE: b\n"),
            MarkerError::Nested {
                line: 2,
                id: "b".into(),
                open: "a".into(),
                open_line: 1
            }
        );
        assert_eq!(
            bad("x\n// EXERCISE_END: a\n"),
            MarkerError::UnmatchedEnd {
                line: 2,
                id: "a".into()
            }
        );
        assert_eq!(bad("// EXERCISE: a\n// EXERCISE_END: b\n").line(), 2);
        assert_eq!(
            bad("// EXERCISE: a\n"),
            MarkerError::Unclosed {
                line: 1,
                id: "a".into()
            }
        );
        assert_eq!(bad("  // EXERCISE:\n"), MarkerError::MissingId { line: 1 });
    }

    #[test]
    fn ignores_doc_comments_and_code() {
        let src = "/// // EXERCISE: a\n//! EXERCISE: b\nlet s = \"// EXERCISE: c\";\n";
        assert_eq!(scan(src).unwrap(), vec![]);
    }
}
