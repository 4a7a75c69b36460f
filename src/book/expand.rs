//! What the reader sees: every `{{#include}}` of a page expanded the way
//! the book shows it, and the generated Solutions appendix.
//!
//! A listing from a lab source shows the file as `kubelings start` writes
//! it, each exercise body replaced by its `todo!`, so no page prints an
//! answer above its question; the reference bodies appear only in the
//! Solutions appendix at the end of the book.

use std::collections::{HashMap, HashSet};
use std::path::{Component, Path, PathBuf};

use super::listing::{self, Line, Selector};
use super::BookError;
use crate::export::is_lab_source;
use crate::manifest::{Exercise, Manifest};
use crate::markers::{self, Region};

/// The generated appendix's file name (it has no file in `book/src`).
pub const SOLUTIONS_PAGE: &str = "solutions.md";
pub const SOLUTIONS_TITLE: &str = "Solutions";

/// One line of an expanded page and where it came from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PageLine {
    pub text: String,
    /// The page itself, or the file an include took the line from.
    pub file: PathBuf,
    /// 1-based line in `file`.
    pub line: usize,
}

/// A lab source file: its reference text and its regions.
struct LabFile {
    rel: PathBuf,
    text: String,
    regions: Vec<Region>,
}

/// The exercises of the workbook at `root`, read once.
pub struct Exercises {
    root: PathBuf,
    /// The book's source directory (`book/src`), where the appendix goes.
    src: PathBuf,
    manifest: Vec<Exercise>,
    replacements: HashMap<String, String>,
    files: Vec<LabFile>,
}

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> BookError + '_ {
    move |source| BookError::Io {
        path: path.to_path_buf(),
        source,
    }
}

/// `path` with `.` and `..` resolved by name (the file need not exist).
pub fn normalize(path: &Path) -> PathBuf {
    let mut out = PathBuf::new();
    for c in path.components() {
        match c {
            Component::ParentDir => {
                if !out.pop() {
                    out.push("..");
                }
            }
            Component::CurDir => {}
            c => out.push(c),
        }
    }
    out
}

impl Exercises {
    /// Reads `labs/exercises.yaml` (none is no exercises) and every lab
    /// source under `root/labs/*/src`, for the book whose pages are in `src`.
    pub fn load(root: &Path, src: &Path) -> Result<Exercises, BookError> {
        let root = normalize(root);
        let src = normalize(src);
        let manifest = if root.join(crate::manifest::MANIFEST_PATH).is_file() {
            Manifest::load(&root)
                .map_err(|e| BookError::Build(e.to_string()))?
                .exercises
        } else {
            Vec::new()
        };
        let mut replacements: HashMap<String, String> = manifest
            .iter()
            .map(|e| {
                (
                    e.id.clone(),
                    markers::todo_line(&e.id, &e.title, &e.section),
                )
            })
            .collect();
        let mut rels = Vec::new();
        let labs = root.join("labs");
        if let Ok(entries) = std::fs::read_dir(&labs) {
            for entry in entries.flatten() {
                collect_rs(&root, &entry.path().join("src"), &mut rels);
            }
        }
        rels.retain(|r| is_lab_source(r));
        rels.sort();
        let mut files = Vec::new();
        for rel in rels {
            let path = root.join(&rel);
            let text = std::fs::read_to_string(&path).map_err(io(&path))?;
            let regions = markers::scan(&text)
                .map_err(|e| BookError::Build(format!("{}:{}: {e}", rel.display(), e.line())))?;
            for r in &regions {
                // An exercise missing from the manifest still hides its body.
                replacements
                    .entry(r.id.clone())
                    .or_insert_with(|| format!("todo!(\"{}\")", r.id));
            }
            files.push(LabFile { rel, text, regions });
        }
        Ok(Exercises {
            root,
            src,
            manifest,
            replacements,
            files,
        })
    }

    fn lab_file(&self, path: &Path) -> Option<&LabFile> {
        let rel = normalize(path);
        let rel = rel.strip_prefix(&self.root).ok()?;
        self.files.iter().find(|f| f.rel == rel)
    }

    /// The lines of `path` as the book shows them: a lab source as its
    /// starter (numbered as in the real file), anything else as it is.
    pub fn source_lines(&self, path: &Path) -> Result<Vec<Line>, BookError> {
        let Some(file) = self.lab_file(path) else {
            let text = std::fs::read_to_string(path).map_err(io(path))?;
            return Ok(listing::numbered(&text));
        };
        let starter = markers::replace(&file.text, &self.replacements)
            .map_err(|e| BookError::Build(format!("{}: {e}", file.rel.display())))?;
        Ok(starter_lines(&file.text, &starter, &file.regions))
    }

    /// Expands the `{{#include}}` lines of a page (`page` its path, `text`
    /// its Markdown). An include that cannot be resolved stays as it is,
    /// for mdBook to complain about and the book check to report.
    pub fn expand(&self, page: &Path, text: &str) -> Vec<PageLine> {
        let dir = page.parent().unwrap_or(Path::new("."));
        let page = normalize(page);
        let mut out = Vec::new();
        // The source file of the Rust listing just expanded: named under
        // its code block, so the reader knows where the rest of it is.
        let mut caption: Option<PathBuf> = None;
        // The exercise whose box (a `> **Exercise `id`**` quote) is open:
        // the box ends with a link to its solution in the appendix.
        let mut exercise: Option<String> = None;
        for (i, line) in text.lines().enumerate() {
            let here = |text: String| PageLine {
                text,
                file: page.clone(),
                line: i + 1,
            };
            if !line.trim_start().starts_with('>') {
                if let Some(id) = exercise.take() {
                    out.push(here(">".into()));
                    out.push(here(self.solution_link(&page, &id)));
                }
            }
            if let Some(id) = exercise_box(line) {
                if self.in_order().iter().any(|(e, _, _)| e.id == id) {
                    exercise = Some(id.to_string());
                }
            }
            if let Some(rel) = caption.take() {
                if let Some(prefix) = closing_fence(line) {
                    out.push(here(line.to_string()));
                    out.push(here(prefix.trim_end().to_string()));
                    out.push(here(format!(
                        "{prefix}<p class=\"listing-source\">{}</p>",
                        rel.display()
                    )));
                    continue;
                }
            }
            let include = own_line_include(line).and_then(|arg| self.include(dir, arg));
            match include {
                Some((file, lines)) => {
                    caption = file
                        .strip_prefix(&self.root)
                        .ok()
                        .filter(|_| file.extension().is_some_and(|e| e == "rs"))
                        .map(Path::to_path_buf);
                    out.extend(lines);
                }
                None => out.push(here(line.to_string())),
            }
        }
        if let Some(id) = exercise {
            let last = text.lines().count();
            for text in [">".to_string(), self.solution_link(&page, &id)] {
                out.push(PageLine {
                    text,
                    file: page.clone(),
                    line: last,
                });
            }
        }
        out
    }

    /// The last line of an exercise box: where its solution is.
    fn solution_link(&self, page: &Path, id: &str) -> String {
        format!(
            "> Done, or stuck for good? The reference solution is in the \
             [appendix]({}#{id}).",
            self.link_to_solutions(page)
        )
    }

    /// The relative link from `page` to the appendix, which sits at the top
    /// of the book's sources, next to SUMMARY.md.
    fn link_to_solutions(&self, page: &Path) -> String {
        let depth = page
            .parent()
            .and_then(|d| d.strip_prefix(&self.src).ok())
            .map_or(0, |d| d.components().count());
        format!("{}{SOLUTIONS_PAGE}", "../".repeat(depth))
    }

    fn include(&self, dir: &Path, arg: &str) -> Option<(PathBuf, Vec<PageLine>)> {
        let (path, selector) = match arg.split_once(':') {
            Some((p, s)) => (p, Some(s)),
            None => (arg, None),
        };
        let file = normalize(&dir.join(path));
        let lines = self.source_lines(&file).ok()?;
        let selector = Selector::parse(selector);
        if let Selector::Anchor(name) = &selector {
            // A missing anchor is the book check's to report.
            if !lines
                .iter()
                .any(|l| l.text.contains("ANCHOR:") && l.text.contains(name.as_str()))
            {
                return None;
            }
        }
        let mut selected = listing::select(&lines, &selector);
        if file.extension().is_some_and(|e| e == "rs") {
            selected = listing::clean(selected);
        }
        let lines = selected
            .into_iter()
            .map(|l| PageLine {
                text: l.text,
                file: file.clone(),
                line: l.source_line,
            })
            .collect();
        Some((file, lines))
    }

    /// The exercises in reading order, with their region and file.
    fn in_order(&self) -> Vec<(&Exercise, &LabFile, &Region)> {
        self.manifest
            .iter()
            .filter_map(|e| {
                self.files
                    .iter()
                    .find_map(|f| f.regions.iter().find(|r| r.id == e.id).map(|r| (e, f, r)))
            })
            .collect()
    }

    /// The heading ids of the Solutions appendix: the exercise ids.
    pub fn solution_ids(&self) -> Vec<String> {
        self.in_order()
            .iter()
            .map(|(e, _, _)| e.id.clone())
            .collect()
    }

    /// The Solutions appendix: one folded reference solution per exercise,
    /// its code lines numbered by their lab source (`src_dir` is the book's
    /// source directory, where the page would be).
    pub fn solutions_page(&self, src_dir: &Path) -> Vec<PageLine> {
        let page = normalize(&src_dir.join(SOLUTIONS_PAGE));
        let mut out = Vec::new();
        push_md(
            &mut out,
            &page,
            &format!(
                "# {SOLUTIONS_TITLE}\n\n\
                 The reference solution of every exercise, in the order the book\n\
                 sets them. Each is folded: try the exercise first, and ask for a\n\
                 hint (`cargo run -- hint <id>`) when stuck."
            ),
        );
        for (e, file, region) in self.in_order() {
            let head = format!(
                "\n## {} {} {{#{}}}\n\n\
                 <details>\n<summary>The solution of <code>{}</code>, in \
                 <code>{}</code></summary>\n\n```rust,ignore",
                e.section,
                e.title,
                e.id,
                e.id,
                file.rel.display(),
            );
            push_md(&mut out, &page, &head);
            out.extend(
                solution_lines(&file.text, region)
                    .into_iter()
                    .map(|l| PageLine {
                        text: l.text,
                        file: self.root.join(&file.rel),
                        line: l.source_line,
                    }),
            );
            let tail = format!(
                "```\n\n</details>\n\nThe exercise: [§{}]({}).",
                e.section, e.page
            );
            push_md(&mut out, &page, &tail);
        }
        out
    }

    /// The distinctive lines of every reference body (trimmed), each with
    /// its exercise: lines that appear nowhere in any starter, so seeing
    /// one in a listing means an answer is shown.
    pub fn reference_lines(&self) -> HashMap<String, String> {
        let mut starter_text = HashSet::new();
        for file in &self.files {
            if let Ok(lines) = self.source_lines(&self.root.join(&file.rel)) {
                starter_text.extend(lines.into_iter().map(|l| l.text.trim().to_string()));
            }
        }
        let mut out = HashMap::new();
        for file in &self.files {
            let lines: Vec<&str> = file.text.lines().collect();
            for r in &file.regions {
                for line in &lines[r.start..r.end - 1] {
                    let t = line.trim();
                    if t.len() >= 10 && !listing::is_noise(t) && !starter_text.contains(t) {
                        out.insert(t.to_string(), r.id.clone());
                    }
                }
            }
        }
        out
    }
}

fn collect_rs(root: &Path, dir: &Path, out: &mut Vec<PathBuf>) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for entry in entries.flatten() {
        let path = entry.path();
        if path.is_dir() {
            collect_rs(root, &path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            if let Ok(rel) = path.strip_prefix(root) {
                out.push(rel.to_path_buf());
            }
        }
    }
}

fn push_md(out: &mut Vec<PageLine>, page: &Path, text: &str) {
    out.extend(text.lines().map(|line| PageLine {
        text: line.to_string(),
        file: page.to_path_buf(),
        line: 1,
    }));
}

/// The argument of an `{{#include ...}}` that is the whole line.
pub fn own_line_include(line: &str) -> Option<&str> {
    let inner = line
        .trim()
        .strip_prefix("{{")?
        .strip_suffix("}}")?
        .trim_start()
        .strip_prefix("#include")?;
    if !inner.starts_with(char::is_whitespace) {
        return None;
    }
    inner.split_whitespace().next()
}

/// The id of an exercise box's first line: `> **Exercise `id`**...`.
fn exercise_box(line: &str) -> Option<&str> {
    let rest = line
        .trim_start()
        .strip_prefix('>')?
        .trim_start()
        .strip_prefix("**Exercise `")?;
    let (id, rest) = rest.split_once('`')?;
    rest.starts_with("**").then_some(id)
}

/// If `line` closes a code block, what stands before its fence (`> ` in a
/// quote, indentation in a list).
fn closing_fence(line: &str) -> Option<&str> {
    let body = line.trim_start_matches(|c: char| c == '>' || c.is_whitespace());
    let fence = body.starts_with("```") || body.starts_with("~~~");
    let rest = body.trim_start_matches(['`', '~']);
    (fence && rest.trim().is_empty()).then(|| &line[..line.len() - body.len()])
}

/// Numbers the starter's lines by the reference file's: outside regions
/// they are the same lines; a replaced body's lines all count as the line
/// after its start marker.
fn starter_lines(reference: &str, starter: &str, regions: &[Region]) -> Vec<Line> {
    let reference: Vec<&str> = reference.lines().collect();
    let mut out = Vec::new();
    let mut n = 0; // 0-based index into `reference`
    let mut starter = starter.lines();
    'lines: while n < reference.len() {
        if let Some(r) = regions.iter().find(|r| r.start == n) {
            // `n` is the first body line (r.start is the 1-based marker).
            let end_marker = reference[r.end - 1];
            for line in starter.by_ref() {
                if line == end_marker {
                    out.push(Line {
                        text: line.to_string(),
                        source_line: r.end,
                    });
                    n = r.end;
                    continue 'lines;
                }
                out.push(Line {
                    text: line.to_string(),
                    source_line: r.start + 1,
                });
            }
            break;
        }
        match starter.next() {
            Some(line) => out.push(Line {
                text: line.to_string(),
                source_line: n + 1,
            }),
            None => break,
        }
        n += 1;
    }
    out
}

/// The reference solution as the appendix shows it: the function's
/// signature, its reference body and its closing brace, dedented.
fn solution_lines(reference: &str, region: &Region) -> Vec<Line> {
    let lines = listing::numbered(reference);
    let indent = region.indent.len();
    let body_start = region.start; // 0-based index of the first body line
    let body_end = region.end - 1; // 0-based index of the end marker
    let start = (0..body_start)
        .rev()
        .find(|&i| {
            let t = &lines[i].text;
            let own = t.len() - t.trim_start().len();
            own < indent && (t.contains("fn ") || t.trim_start().starts_with("fn"))
        })
        .unwrap_or(body_start);
    let end = match lines.get(body_end + 1) {
        Some(l) if start < body_start && l.text.trim_start().starts_with('}') => body_end + 2,
        _ => body_end,
    };
    listing::clean(lines[start..end.min(lines.len())].to_vec())
}

#[cfg(test)]
mod tests {
    use super::*;

    const SOURCE: &str = "\
use x;
// ANCHOR: f
/// Docs.
#[cfg(target_os = \"linux\")]
pub fn f(
    a: u8,
) -> u8 {
    // EXERCISE: ex-f
    // ANCHOR: inner
    let b = a + 1;
    // ANCHOR_END: inner
    b * 2
    // EXERCISE_END: ex-f
}
// ANCHOR_END: f
fn g() {}
";

    #[test]
    fn numbers_starter_lines_by_the_reference() {
        let regions = markers::scan(SOURCE).unwrap();
        let reps = HashMap::from([("ex-f".to_string(), "todo!(\"ex-f\")".to_string())]);
        let starter = markers::replace(SOURCE, &reps).unwrap();
        let lines = starter_lines(SOURCE, &starter, &regions);
        let got: Vec<(usize, &str)> = lines
            .iter()
            .map(|l| (l.source_line, l.text.trim()))
            .collect();
        assert_eq!(got.len(), starter.lines().count());
        assert_eq!(got[7], (8, "// EXERCISE: ex-f"));
        assert_eq!(got[8], (9, "// ANCHOR: inner"));
        assert_eq!(got[9], (9, "todo!(\"ex-f\")"));
        assert_eq!(got[11], (13, "// EXERCISE_END: ex-f"));
        assert_eq!(got.last(), Some(&(16, "fn g() {}")));
    }

    #[test]
    fn a_solution_is_the_whole_function() {
        let regions = markers::scan(SOURCE).unwrap();
        let lines = solution_lines(SOURCE, &regions[0]);
        let text: Vec<&str> = lines.iter().map(|l| l.text.as_str()).collect();
        assert_eq!(
            text,
            [
                "pub fn f(",
                "    a: u8,",
                ") -> u8 {",
                "    let b = a + 1;",
                "    b * 2",
                "}"
            ]
        );
    }

    #[test]
    fn finds_own_line_includes() {
        assert_eq!(
            own_line_include("  {{#include ../a.rs:x}} "),
            Some("../a.rs:x")
        );
        assert_eq!(own_line_include("see {{#include a.rs}}"), None);
        assert_eq!(own_line_include("{{#includes a.rs}}"), None);
        assert_eq!(own_line_include("{{#title T}}"), None);
    }

    #[test]
    fn finds_closing_fences() {
        assert_eq!(closing_fence("```"), Some(""));
        assert_eq!(closing_fence("> ```"), Some("> "));
        assert_eq!(closing_fence("   ~~~~ "), Some("   "));
        assert_eq!(closing_fence("```rust"), None);
        assert_eq!(closing_fence("text"), None);
    }

    #[test]
    fn finds_exercise_boxes() {
        assert_eq!(exercise_box("> **Exercise `a-b`**: Do it."), Some("a-b"));
        assert_eq!(exercise_box("**Exercise `a-b`**"), None);
        assert_eq!(exercise_box("> **Exercise `a-b` now**"), None);
    }

    #[test]
    fn normalizes_by_name() {
        assert_eq!(
            normalize(Path::new("/w/book/src/ch01/../../../labs/x.rs")),
            PathBuf::from("/w/labs/x.rs")
        );
    }
}
