//! Checks on what the reader sees, after the includes are expanded: no
//! answer above its exercise, listings and outputs that fit 80 columns,
//! and pictures that exist and are shown.

use std::collections::{BTreeSet, HashMap};
use std::path::{Path, PathBuf};

use mdbook_markdown::pulldown_cmark::{Event, Tag, TagEnd};

use super::expand::{normalize, PageLine};

/// The widest line a listing or an output may have.
pub const MAX_COLUMNS: usize = 80;

/// A problem found, at a file and line (the checker makes it a `Problem`).
pub type Found = (PathBuf, usize, String);

/// The code blocks of `lines`: the indices of each block's lines.
pub fn code_blocks(lines: &[PageLine]) -> Vec<std::ops::RangeInclusive<usize>> {
    let mut text = String::new();
    let mut starts = Vec::with_capacity(lines.len());
    for l in lines {
        starts.push(text.len());
        text.push_str(&l.text);
        text.push('\n');
    }
    let line_at = |offset: usize| starts.partition_point(|&s| s <= offset).saturating_sub(1);
    let mut inside = false;
    let mut out: Vec<std::ops::RangeInclusive<usize>> = Vec::new();
    for (event, range) in super::parser(&text).into_offset_iter() {
        match event {
            Event::Start(Tag::CodeBlock(_)) => inside = true,
            Event::End(TagEnd::CodeBlock) => inside = false,
            Event::Text(_) if inside && range.end > range.start => {
                let (first, last) = (line_at(range.start), line_at(range.end - 1));
                match out.last_mut() {
                    // One block's text may come in several events.
                    Some(block) if *block.end() + 1 >= first && *block.start() <= first => {
                        *block = *block.start()..=last.max(*block.end());
                    }
                    _ => out.push(first..=last),
                }
            }
            _ => {}
        }
    }
    out
}

/// The indices of the lines of `lines` that are inside code blocks.
pub fn code_lines(lines: &[PageLine]) -> BTreeSet<usize> {
    code_blocks(lines).into_iter().flatten().collect()
}

/// The most lines a listing of code may have; more is a listing nobody
/// reads, and its anchor should take only the part the prose discusses.
pub const MAX_LISTING_LINES: usize = 45;

/// Every Rust listing longer than [`MAX_LISTING_LINES`], at its include.
pub fn lengths(lines: &[PageLine], page: &Path) -> Vec<Found> {
    let page = normalize(page);
    code_blocks(lines)
        .into_iter()
        .filter_map(|block| {
            let n = block.clone().count();
            let first = &lines[*block.start()];
            let included = first.file != page && first.file.extension().is_some_and(|e| e == "rs");
            // The fence line before the block is the page's.
            let at = block.start().checked_sub(1).map(|i| &lines[i])?;
            (included && n > MAX_LISTING_LINES).then(|| {
                (
                    at.file.clone(),
                    at.line + 1,
                    format!(
                        "a listing of {n} lines from {} (at most {MAX_LISTING_LINES}): \
                         narrow its anchor to the part the prose discusses",
                        first.file.file_name().unwrap_or_default().to_string_lossy()
                    ),
                )
            })
        })
        .collect()
}

/// Every code or output line wider than [`MAX_COLUMNS`], at its source
/// (`page` is where the lines are shown, `shown` how to name it).
pub fn widths(lines: &[PageLine], page: &Path, shown: &Path) -> Vec<Found> {
    code_lines(lines)
        .into_iter()
        .filter_map(|i| {
            let l = &lines[i];
            let n = l.text.chars().count();
            (n > MAX_COLUMNS).then(|| {
                let shown = if l.file == normalize(page) {
                    String::new()
                } else {
                    format!(" (shown in {})", shown.display())
                };
                (l.file.clone(), l.line, format!("{n} columns{shown}"))
            })
        })
        .collect()
}

/// Every line of a page that is a line of some exercise's reference body.
pub fn leaks(lines: &[PageLine], reference: &HashMap<String, String>) -> Vec<Found> {
    lines
        .iter()
        .filter_map(|l| {
            let id = reference.get(l.text.trim())?;
            Some((
                l.file.clone(),
                l.line,
                format!(
                    "shows the reference solution of {id} above its exercise: `{}`",
                    l.text.trim()
                ),
            ))
        })
        .collect()
}

const PICTURES: &[&str] = &["svg", "png", "jpg", "jpeg", "gif", "webp"];

fn is_picture(path: &Path) -> bool {
    path.extension()
        .and_then(|e| e.to_str())
        .is_some_and(|e| PICTURES.contains(&e.to_ascii_lowercase().as_str()))
}

/// The values of `src="…"` and `data="…"` attributes in a piece of HTML.
fn html_sources(html: &str) -> Vec<String> {
    let mut out = Vec::new();
    for attr in ["src=", "data="] {
        for (i, _) in html.match_indices(attr) {
            // Only whole attribute names (`data-x=` or `srcset=` are others).
            if i > 0 && !html[..i].ends_with(char::is_whitespace) {
                continue;
            }
            let rest = &html[i + attr.len()..];
            let Some(quote) = rest.chars().next().filter(|c| *c == '"' || *c == '\'') else {
                continue;
            };
            if let Some(end) = rest[1..].find(quote) {
                out.push(rest[1..1 + end].to_string());
            }
        }
    }
    out
}

fn is_local(dest: &str) -> bool {
    !(dest.is_empty() || dest.starts_with('/') || dest.starts_with('#') || super::has_scheme(dest))
}

/// The pictures `text` (the page at `page`) shows, resolved, with the line
/// of each reference, and whether it came from HTML (Markdown images are
/// checked with the links).
fn pictures_of(page: &Path, text: &str) -> Vec<(PathBuf, String, usize, bool)> {
    let dir = page.parent().unwrap_or(Path::new("."));
    let mut out = Vec::new();
    for (event, range) in super::parser(text).into_offset_iter() {
        let line = super::line_of(text, range.start);
        let (dests, html): (Vec<String>, bool) = match &event {
            Event::Start(Tag::Image { dest_url, .. }) => (vec![dest_url.to_string()], false),
            Event::Html(h) | Event::InlineHtml(h) => (html_sources(h), true),
            _ => continue,
        };
        for dest in dests {
            if !is_local(&dest) {
                continue;
            }
            let path = dest
                .split(['#', '?'])
                .next()
                .unwrap_or("")
                .replace("%20", " ");
            out.push((normalize(&dir.join(path)), dest, line, html));
        }
    }
    out
}

/// Every picture a page shows exists, and every picture under `src` is
/// shown by some page. `pages` are (path, text).
pub fn pictures(src: &Path, pages: &[(PathBuf, String)]) -> Vec<Found> {
    let mut found = Vec::new();
    let mut shown = BTreeSet::new();
    for (page, text) in pages {
        for (path, dest, line, html) in pictures_of(page, text) {
            if html && !path.exists() {
                found.push((page.clone(), line, format!("no picture {dest}")));
            }
            shown.insert(path);
        }
    }
    let mut all = Vec::new();
    files(src, &mut all);
    all.sort();
    for picture in all.into_iter().filter(|p| is_picture(p)) {
        if !shown.contains(&normalize(&picture)) {
            found.push((picture, 1, "this picture is shown on no page".into()));
        }
    }
    found
}

fn files(dir: &Path, out: &mut Vec<PathBuf>) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for entry in entries.flatten() {
        let path = entry.path();
        if path.is_dir() {
            files(&path, out);
        } else {
            out.push(path);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn page(text: &str) -> Vec<PageLine> {
        text.lines()
            .enumerate()
            .map(|(i, t)| PageLine {
                text: t.into(),
                file: PathBuf::from("/b/p.md"),
                line: i + 1,
            })
            .collect()
    }

    #[test]
    fn finds_code_lines() {
        let lines = page("# T\n\ntext\n\n```rust\na\n\nb\n```\n\n    indented\n\n```\n```\n");
        assert_eq!(
            code_lines(&lines).into_iter().collect::<Vec<_>>(),
            [5, 6, 7, 10]
        );
    }

    #[test]
    fn finds_long_included_listings() {
        let mut lines = page("# T\n\n```rust\n");
        let long = MAX_LISTING_LINES + 1;
        lines.extend((0..long).map(|i| PageLine {
            text: format!("let x{i} = {i};"),
            file: PathBuf::from("/l/src/a.rs"),
            line: i + 1,
        }));
        lines.extend(page("```\n\n```rust\nfn short() {}\n```\n"));
        assert_eq!(
            code_blocks(&lines),
            [3..=3 + long - 1, 3 + long + 3..=3 + long + 3]
        );
        let found = lengths(&lines, Path::new("/b/p.md"));
        assert_eq!(found.len(), 1);
        assert_eq!(
            (found[0].0.as_path(), found[0].1),
            (Path::new("/b/p.md"), 4)
        );
    }

    #[test]
    fn reports_wide_lines_only_in_code() {
        let wide = "x".repeat(81);
        let lines = page(&format!("{wide}\n\n```\n{wide}\n{}\n```\n", "y".repeat(80)));
        let found = widths(&lines, Path::new("/b/p.md"), Path::new("p.md"));
        assert_eq!(found, [(PathBuf::from("/b/p.md"), 4, "81 columns".into())]);
    }

    #[test]
    fn finds_html_sources() {
        assert_eq!(
            html_sources(r#"<img src="a.svg" data-x="no"> <object data='b.svg'></object>"#),
            ["a.svg", "b.svg"]
        );
    }
}
