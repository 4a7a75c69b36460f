//! Code listings as the book shows them: the lines an `{{#include}}`
//! selects, without the bookkeeping comments and attributes, dedented.
//!
//! Every line keeps the number it has in its source file, so the book
//! check can name the source line of a listing that is too wide.

/// One line of a listing and the line (1-based) of its source it came from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Line {
    pub text: String,
    pub source_line: usize,
}

/// What an include selects, as mdBook reads `path:selector`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Selector {
    /// `:name`: the lines between `ANCHOR: name` and `ANCHOR_END: name`.
    Anchor(String),
    /// `:a:b`, `:a:`, `::b`, `:a`, or nothing: 0-based, end exclusive.
    Lines(usize, Option<usize>),
}

impl Selector {
    /// Parses the part after the path's first `:` exactly as mdBook does.
    pub fn parse(selector: Option<&str>) -> Selector {
        let mut parts = selector.unwrap_or("").splitn(3, ':');
        let first = parts.next();
        let start = match first {
            Some("") | None => None,
            Some(s) => match s.parse::<usize>() {
                Ok(n) => Some(n.saturating_sub(1)),
                Err(_) => return Selector::Anchor(s.to_string()),
            },
        };
        let end = parts.next().map(|s| s.parse::<usize>());
        match (start, end) {
            (Some(a), Some(Ok(b))) => Selector::Lines(a, Some(b)),
            (Some(a), Some(Err(_))) => Selector::Lines(a, None),
            (Some(a), None) => Selector::Lines(a, Some(a + 1)),
            (None, Some(Ok(b))) => Selector::Lines(0, Some(b)),
            (None, _) => Selector::Lines(0, None),
        }
    }
}

/// The name after `marker` on this line, as mdBook's anchor regex reads it
/// (`ANCHOR:\s*[\w_-]+`, anywhere on the line).
fn anchor_name<'a>(line: &'a str, marker: &str) -> Option<&'a str> {
    line.match_indices(marker).find_map(|(i, _)| {
        let rest = line[i + marker.len()..].trim_start();
        let len = rest
            .find(|c: char| !(c.is_alphanumeric() || c == '_' || c == '-'))
            .unwrap_or(rest.len());
        (len > 0).then(|| &rest[..len])
    })
}

/// Is this an mdBook anchor line (opening or closing)?
pub fn is_anchor(line: &str) -> bool {
    anchor_name(line, "ANCHOR:").is_some() || anchor_name(line, "ANCHOR_END:").is_some()
}

/// The lines `selector` takes from `lines` (text, source line), with the
/// same result as mdBook's include on the source: for an anchor, the lines between its
/// markers without any anchor line; nothing if the anchor is missing.
pub fn select(lines: &[Line], selector: &Selector) -> Vec<Line> {
    match selector {
        // By the source's line numbers: a starter has fewer lines than its
        // file, and `:10:20` means the file's lines.
        Selector::Lines(start, end) => lines
            .iter()
            .filter(|l| {
                let i = l.source_line - 1;
                i >= *start && end.is_none_or(|end| i < end)
            })
            .cloned()
            .collect(),
        Selector::Anchor(name) => {
            let mut out = Vec::new();
            let mut inside = false;
            for line in lines {
                if inside {
                    if let Some(end) = anchor_name(&line.text, "ANCHOR_END:") {
                        if end == name {
                            break;
                        }
                    } else if anchor_name(&line.text, "ANCHOR:").is_none() {
                        out.push(line.clone());
                    }
                } else if anchor_name(&line.text, "ANCHOR:") == Some(name.as_str()) {
                    inside = true;
                }
            }
            out
        }
    }
}

/// Lines a reader should not see in a listing: anchors, exercise markers
/// and `#[cfg(...)]`-style attributes that only say where code builds.
pub fn is_noise(line: &str) -> bool {
    let t = line.trim();
    if is_anchor(t) {
        return true;
    }
    if let Some(rest) = t.strip_prefix("//") {
        let rest = rest.trim_start();
        if !t.starts_with("///")
            && !t.starts_with("//!")
            && (rest.starts_with("EXERCISE:") || rest.starts_with("EXERCISE_END:"))
        {
            return true;
        }
    }
    (t.starts_with("#[cfg(") || t.starts_with("#[cfg_attr(")) && t.ends_with(']')
}

/// Drops the noise lines, then the blank lines at either end, and removes
/// the indentation all remaining lines share (blank lines aside).
pub fn clean(lines: Vec<Line>) -> Vec<Line> {
    let mut lines: Vec<Line> = lines.into_iter().filter(|l| !is_noise(&l.text)).collect();
    while lines.last().is_some_and(|l| l.text.trim().is_empty()) {
        lines.pop();
    }
    let first = lines
        .iter()
        .position(|l| !l.text.trim().is_empty())
        .unwrap_or(lines.len());
    lines.drain(..first);
    let indent = lines
        .iter()
        .filter(|l| !l.text.trim().is_empty())
        .map(|l| l.text.len() - l.text.trim_start().len())
        .min()
        .unwrap_or(0);
    for line in &mut lines {
        if line.text.trim().is_empty() {
            line.text.clear();
        } else {
            // The shared indentation is whitespace, so this is a char boundary.
            line.text = line.text[indent..].trim_end().to_string();
        }
    }
    lines
}

/// `text` as numbered lines.
pub fn numbered(text: &str) -> Vec<Line> {
    text.lines()
        .enumerate()
        .map(|(i, l)| Line {
            text: l.to_string(),
            source_line: i + 1,
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn texts(lines: &[Line]) -> Vec<&str> {
        lines.iter().map(|l| l.text.as_str()).collect()
    }

    #[test]
    fn parses_selectors_like_mdbook() {
        assert_eq!(Selector::parse(None), Selector::Lines(0, None));
        assert_eq!(Selector::parse(Some("5:")), Selector::Lines(4, None));
        assert_eq!(Selector::parse(Some("2:4")), Selector::Lines(1, Some(4)));
        assert_eq!(Selector::parse(Some("3")), Selector::Lines(2, Some(3)));
        assert_eq!(Selector::parse(Some(":4")), Selector::Lines(0, Some(4)));
        assert_eq!(
            Selector::parse(Some("spawn")),
            Selector::Anchor("spawn".into())
        );
    }

    #[test]
    fn selects_anchors_and_ranges() {
        let src =
            numbered("a\n// ANCHOR: x\nb\n// ANCHOR: y\nc\n// ANCHOR_END: y\n// ANCHOR_END: x\nd");
        let x = select(&src, &Selector::Anchor("x".into()));
        assert_eq!(texts(&x), ["b", "c"]);
        assert_eq!(x[1].source_line, 5);
        assert!(select(&src, &Selector::Anchor("z".into())).is_empty());
        assert_eq!(texts(&select(&src, &Selector::Lines(7, None))), ["d"]);
        assert_eq!(texts(&select(&src, &Selector::Lines(9, Some(3)))), [""; 0]);
    }

    #[test]
    fn cleans_and_dedents() {
        let src = numbered(
            "    /// Docs.\n    #[cfg(target_os = \"linux\")]\n    pub fn f() {\n        // EXERCISE: a\n        todo!()\n        // EXERCISE_END: a\n    }\n\n",
        );
        let out = clean(src);
        assert_eq!(
            texts(&out),
            ["/// Docs.", "pub fn f() {", "    todo!()", "}"]
        );
        assert_eq!(out[2].source_line, 5);
        assert!(!is_noise("/// EXERCISE: in prose"));
        assert!(!is_noise("#[cfg(test)] mod tests {"));
    }
}
