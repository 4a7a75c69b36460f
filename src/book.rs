//! The book in `book/`: a link and include check, and the build itself.
//!
//! mdBook resolves `{{#include}}` and links only when it renders, and then
//! mostly just warns; the check here turns each broken reference into a
//! problem with its file and line, so a renamed anchor or heading fails the
//! tests instead of silently emptying a code listing.
//!
//! The build runs [`Listings`] before mdBook's own include preprocessor: it
//! shows lab code as the student's starter shows it (no answer above its
//! exercise), without markers, anchors and `cfg` lines, dedented, and adds
//! the Solutions appendix ([`expand`]). The check also looks at the pages
//! as expanded ([`lint`]): no reference body outside the appendix, code and
//! output within 80 columns, every picture present and shown.

pub mod expand;
pub mod lint;
pub mod listing;

use std::collections::HashSet;
use std::fmt;
use std::path::{Path, PathBuf};

use mdbook_driver::book::{Book, BookItem, Chapter};
use mdbook_driver::builtin_preprocessors::{IndexPreprocessor, LinkPreprocessor};
use mdbook_driver::builtin_renderers::MarkdownRenderer;
use mdbook_driver::config::Config;
use mdbook_driver::MDBook;
use mdbook_preprocessor::{Preprocessor, PreprocessorContext};

use expand::{Exercises, PageLine, SOLUTIONS_PAGE, SOLUTIONS_TITLE};
use mdbook_markdown::pulldown_cmark::{Event, Tag, TagEnd};
use mdbook_markdown::{new_cmark_parser, MarkdownOptions};

#[derive(Debug, thiserror::Error)]
pub enum BookError {
    #[error("cannot read {}: {source}", path.display())]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{}: {message}", path.display())]
    Config { path: PathBuf, message: String },
    #[error("the book does not build: {0}")]
    Build(String),
}

/// One problem of the book, at a file and line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    /// Relative to the directory holding `book/` (the workspace root).
    pub file: PathBuf,
    pub line: usize,
    pub message: String,
    pub kind: ProblemKind,
}

/// What kind of problem, so tests can tell them apart.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ProblemKind {
    /// An include, anchor, link or SUMMARY entry that does not resolve.
    Reference,
    /// A reference solution shown outside the Solutions appendix.
    Answer,
    /// A code or output line wider than 80 columns.
    Width,
    /// A Rust listing longer than `lint::MAX_LISTING_LINES` lines.
    Length,
    /// A picture missing, or shown on no page.
    Picture,
}

impl ProblemKind {
    /// Whether `kubelings book` refuses to build with such a problem: a
    /// broken reference or a shown answer; not a wide line, a long listing
    /// or a picture.
    pub fn blocks_build(kind: ProblemKind) -> bool {
        matches!(kind, ProblemKind::Reference | ProblemKind::Answer)
    }
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}: {}", self.file.display(), self.line, self.message)
    }
}

/// mdBook's heading id rule: lowercase; keep alphanumerics, `-` and `_`;
/// whitespace becomes `-`; everything else goes.
pub fn slug(text: &str) -> String {
    text.trim()
        .to_lowercase()
        .chars()
        .filter_map(|c| {
            if c.is_alphanumeric() || c == '_' || c == '-' {
                Some(c)
            } else if c.is_whitespace() {
                Some('-')
            } else {
                None
            }
        })
        .collect()
}

fn parser(text: &str) -> mdbook_markdown::pulldown_cmark::Parser<'_> {
    // The same options mdBook renders with, so headings and links are seen
    // exactly as it sees them (code blocks are not headings, `{#id}` works).
    new_cmark_parser(text, &MarkdownOptions::default())
}

/// The ids of a page's headings, as mdBook assigns them: an explicit
/// `{#id}`, else the slug of the heading's text, with `-1`, `-2`... added to
/// repeats.
pub fn heading_ids(markdown: &str) -> Vec<String> {
    let mut used = HashSet::new();
    let mut ids = Vec::new();
    let mut current: Option<(Option<String>, String)> = None;
    for event in parser(markdown) {
        match event {
            Event::Start(Tag::Heading { id, .. }) => {
                current = Some((id.map(|s| s.to_string()), String::new()));
            }
            Event::Text(t) | Event::Code(t) => {
                if let Some((_, text)) = &mut current {
                    text.push_str(&t);
                }
            }
            Event::End(TagEnd::Heading(_)) => {
                if let Some((explicit, text)) = current.take() {
                    ids.push(match explicit {
                        Some(id) => id,
                        None => unique_id(slug(&text), &mut used),
                    });
                }
            }
            _ => {}
        }
    }
    ids
}

fn unique_id(id: String, used: &mut HashSet<String>) -> String {
    if used.insert(id.clone()) {
        return id;
    }
    (1..)
        .map(|n| format!("{id}-{n}"))
        .find(|candidate| used.insert(candidate.clone()))
        .unwrap_or(id)
}

/// Line number (1-based) of a byte offset.
fn line_of(text: &str, offset: usize) -> usize {
    text[..offset.min(text.len())].matches('\n').count() + 1
}

/// The book's `src` directory, from book.toml.
fn load_config(book_dir: &Path) -> Result<Config, BookError> {
    let path = book_dir.join("book.toml");
    if !path.is_file() {
        return Err(BookError::Io {
            path,
            source: std::io::ErrorKind::NotFound.into(),
        });
    }
    let mut config = Config::from_disk(&path).map_err(|e| BookError::Config {
        path: path.clone(),
        message: format!("{e:#}"),
    })?;
    config.update_from_env().map_err(|e| BookError::Config {
        path,
        message: format!("{e:#}"),
    })?;
    Ok(config)
}

/// Checks every page under the book's source directory. Returns the
/// problems found; an empty list means every reference resolves.
pub fn check(book_dir: &Path) -> Result<Vec<Problem>, BookError> {
    let config = load_config(book_dir)?;
    let src = book_dir.join(&config.book.src);
    let shown_root = expand::normalize(book_dir.parent().unwrap_or(book_dir));
    let mut pages = Vec::new();
    markdown_files(&src, &mut pages)?;
    pages.sort();

    let solution_ids = Exercises::load(&shown_root, &src)
        .map(|e| e.solution_ids())
        .unwrap_or_default();
    let mut checker = Checker {
        shown_root,
        solutions: (expand::normalize(&src.join(SOLUTIONS_PAGE)), solution_ids),
        problems: Vec::new(),
    };
    let summary = src.join("SUMMARY.md");
    let mut texts = Vec::new();
    if !summary.is_file() {
        checker.problem(&summary, 1, "SUMMARY.md is missing".into());
    }
    for page in &pages {
        let text = std::fs::read_to_string(page).map_err(|source| BookError::Io {
            path: page.clone(),
            source,
        })?;
        checker.includes(page, &text);
        checker.links(page, &text, page == &summary);
        if page == &summary {
            checker.titles(page, &text);
        }
        texts.push((page.clone(), text));
    }
    checker.reader_view(&src, &texts)?;
    Ok(checker.problems)
}

fn markdown_files(dir: &Path, out: &mut Vec<PathBuf>) -> Result<(), BookError> {
    let entries = std::fs::read_dir(dir).map_err(|source| BookError::Io {
        path: dir.to_path_buf(),
        source,
    })?;
    for entry in entries.flatten() {
        let path = entry.path();
        if entry.file_name().to_string_lossy().starts_with('.') {
            continue;
        }
        if path.is_dir() {
            markdown_files(&path, out)?;
        } else if path.extension().is_some_and(|e| e == "md") {
            out.push(path);
        }
    }
    Ok(())
}

struct Checker {
    shown_root: PathBuf,
    /// The generated Solutions page (it has no file) and its heading ids.
    solutions: (PathBuf, Vec<String>),
    problems: Vec<Problem>,
}

impl Checker {
    /// The checks of what the reader sees: answers, widths and pictures.
    fn reader_view(&mut self, src: &Path, pages: &[(PathBuf, String)]) -> Result<(), BookError> {
        let exercises = Exercises::load(&self.shown_root, src)?;
        let reference = exercises.reference_lines();
        let mut found = Vec::new();
        for (page, text) in pages {
            if page.file_name().is_some_and(|n| n == "SUMMARY.md") {
                continue;
            }
            let lines = exercises.expand(page, text);
            for f in lint::leaks(&lines, &reference) {
                found.push((ProblemKind::Answer, f));
            }
            for f in lint::widths(&lines, page, &self.shown(page)) {
                found.push((ProblemKind::Width, f));
            }
            for f in lint::lengths(&lines, page) {
                found.push((ProblemKind::Length, f));
            }
        }
        let solutions = exercises.solutions_page(src);
        let page = src.join(SOLUTIONS_PAGE);
        for f in lint::widths(&solutions, &page, &self.shown(&page)) {
            found.push((ProblemKind::Width, f));
        }
        for f in lint::pictures(src, pages) {
            found.push((ProblemKind::Picture, f));
        }
        found.dedup();
        for (kind, (file, line, message)) in found {
            self.problem_of(kind, &file, line, message);
        }
        Ok(())
    }

    /// A path as problems show it: relative to the workspace root.
    fn shown(&self, path: &Path) -> PathBuf {
        let path = expand::normalize(path);
        path.strip_prefix(&self.shown_root)
            .map(Path::to_path_buf)
            .unwrap_or(path)
    }

    fn problem(&mut self, file: &Path, line: usize, message: String) {
        self.problem_of(ProblemKind::Reference, file, line, message);
    }

    fn problem_of(&mut self, kind: ProblemKind, file: &Path, line: usize, message: String) {
        let file = self.shown(file);
        self.problems.push(Problem {
            file,
            line,
            message,
            kind,
        });
    }

    /// Each SUMMARY entry names its page as the page's title does (less
    /// the `1.2` or `Chapter 1:` in front).
    fn titles(&mut self, summary: &Path, text: &str) {
        let dir = summary.parent().unwrap_or(Path::new("."));
        let mut entry: Option<(String, String, usize)> = None;
        let mut found = Vec::new();
        for (event, range) in parser(text).into_offset_iter() {
            match event {
                Event::Start(Tag::Link { dest_url, .. }) => {
                    entry = Some((dest_url.to_string(), String::new(), range.start));
                }
                Event::Text(t) | Event::Code(t) => {
                    if let Some((_, name, _)) = &mut entry {
                        name.push_str(&t);
                    }
                }
                Event::End(TagEnd::Link) => found.extend(entry.take()),
                _ => {}
            }
        }
        for (dest, name, offset) in found {
            let Ok(page) = std::fs::read_to_string(dir.join(&dest)) else {
                continue;
            };
            let Some(title) = first_heading(&page) else {
                continue;
            };
            if title_without_number(&title) != name.trim() {
                self.problem(
                    summary,
                    line_of(text, offset),
                    format!("SUMMARY says \"{name}\" but {dest} is titled \"{title}\""),
                );
            }
        }
    }

    /// `{{#include PATH[:ANCHOR|:N:M]}}`, `{{#rustdoc_include ...}}`,
    /// `{{#playground PATH ...}}`; `\{{#...}}` is an escaped, literal one.
    fn includes(&mut self, page: &Path, text: &str) {
        let dir = page.parent().unwrap_or(Path::new("."));
        for directive in directives(text) {
            if !matches!(directive.name, "include" | "rustdoc_include" | "playground") {
                continue;
            }
            let line = line_of(text, directive.offset);
            let file_arg = directive.args.split_whitespace().next().unwrap_or("");
            let (path, selector) = match file_arg.split_once(':') {
                Some((p, s)) => (p, Some(s)),
                None => (file_arg, None),
            };
            let target = dir.join(path);
            let Ok(included) = std::fs::read_to_string(&target) else {
                self.problem(
                    page,
                    line,
                    format!("{{{{#{} {file_arg}}}}}: no file {path}", directive.name),
                );
                continue;
            };
            // `:10`, `:10:20`, `::20` and `:` are line ranges: the file is enough.
            let Some(anchor) = selector.filter(|s| {
                !s.is_empty()
                    && !s
                        .split(':')
                        .all(|n| n.is_empty() || n.parse::<usize>().is_ok())
            }) else {
                continue;
            };
            let (has_start, has_end) = anchors(&included, anchor);
            if !(has_start && has_end) {
                let missing = match (has_start, has_end) {
                    (false, false) => format!("ANCHOR: {anchor} / ANCHOR_END: {anchor}"),
                    (false, true) => format!("ANCHOR: {anchor}"),
                    _ => format!("ANCHOR_END: {anchor}"),
                };
                self.problem(
                    page,
                    line,
                    format!(
                        "{{{{#{} {file_arg}}}}}: {path} has no {missing}",
                        directive.name
                    ),
                );
            }
        }
    }

    /// Relative links and images: the file exists, and a `#fragment` into a
    /// page names one of its headings.
    fn links(&mut self, page: &Path, text: &str, is_summary: bool) {
        let dir = page.parent().unwrap_or(Path::new("."));
        let mut own_ids: Option<Vec<String>> = None;
        for (event, range) in parser(text).into_offset_iter() {
            let dest = match &event {
                Event::Start(Tag::Link { dest_url, .. })
                | Event::Start(Tag::Image { dest_url, .. }) => dest_url.to_string(),
                _ => continue,
            };
            if dest.is_empty() || dest.starts_with('/') || has_scheme(&dest) {
                continue;
            }
            let line = line_of(text, range.start);
            let (path, fragment) = match dest.split_once('#') {
                Some((p, f)) => (p, Some(f)),
                None => (dest.as_str(), None),
            };
            let path = path.replace("%20", " ");
            if path.is_empty() {
                if let Some(frag) = fragment {
                    let ids = own_ids.get_or_insert_with(|| heading_ids(text));
                    if !ids.iter().any(|id| id == frag) {
                        self.problem(
                            page,
                            line,
                            format!("link to #{frag}: no such heading on this page"),
                        );
                    }
                }
                continue;
            }
            let mut target = dir.join(&path);
            // mdBook turns `x.md` into `x.html`; a link may use either.
            if !target.exists() && path.ends_with(".html") {
                target.set_extension("md");
            }
            if expand::normalize(&target) == self.solutions.0 {
                // The generated appendix: one heading per exercise.
                if let Some(frag) = fragment.filter(|f| !self.solutions.1.iter().any(|id| id == f))
                {
                    self.problem(
                        page,
                        line,
                        format!("link to {dest}: the Solutions appendix has no #{frag}"),
                    );
                }
                continue;
            }
            if !target.exists() {
                let message = if is_summary {
                    format!("chapter {path} is listed in SUMMARY.md but does not exist")
                } else {
                    format!("link to {dest}: no file {path}")
                };
                self.problem(page, line, message);
                continue;
            }
            let (Some(frag), true) = (fragment, target.extension().is_some_and(|e| e == "md"))
            else {
                continue;
            };
            let ids = std::fs::read_to_string(&target)
                .map(|t| heading_ids(&t))
                .unwrap_or_default();
            if !ids.iter().any(|id| id == frag) {
                self.problem(
                    page,
                    line,
                    format!("link to {dest}: {path} has no heading #{frag}"),
                );
            }
        }
    }
}

/// The text of a page's first heading.
fn first_heading(markdown: &str) -> Option<String> {
    let mut text: Option<String> = None;
    for event in parser(markdown) {
        match event {
            Event::Start(Tag::Heading { .. }) => text = Some(String::new()),
            Event::Text(t) | Event::Code(t) => {
                if let Some(text) = &mut text {
                    text.push_str(&t);
                }
            }
            Event::End(TagEnd::Heading(_)) => return text,
            _ => {}
        }
    }
    None
}

/// `1.2 Namespaces` -> `Namespaces`; `Chapter 1: Containers` -> `Containers`.
fn title_without_number(title: &str) -> &str {
    let t = title.trim();
    if let Some(rest) = t.strip_prefix("Chapter ") {
        if let Some((n, name)) = rest.split_once(':') {
            if n.chars().all(|c| c.is_ascii_digit()) {
                return name.trim();
            }
        }
    }
    match t.split_once(' ') {
        Some((n, name)) if n.chars().all(|c| c.is_ascii_digit() || c == '.') => name.trim(),
        _ => t,
    }
}

fn has_scheme(dest: &str) -> bool {
    match dest.split_once(':') {
        Some((scheme, _)) => {
            !scheme.is_empty()
                && scheme.starts_with(|c: char| c.is_ascii_alphabetic())
                && scheme
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || matches!(c, '+' | '.' | '-'))
        }
        None => false,
    }
}

/// Whether `text` has `ANCHOR: name` and `ANCHOR_END: name` lines.
fn anchors(text: &str, name: &str) -> (bool, bool) {
    let names = |marker: &str| {
        text.lines().any(|line| {
            line.match_indices(marker).any(|(i, _)| {
                let rest = line[i + marker.len()..].trim_start();
                let word: String = rest
                    .chars()
                    .take_while(|c| c.is_alphanumeric() || *c == '_' || *c == '-')
                    .collect();
                word == name
            })
        })
    };
    (names("ANCHOR:"), names("ANCHOR_END:"))
}

struct Directive<'a> {
    offset: usize,
    name: &'a str,
    args: &'a str,
}

/// `{{ #name args }}` directives, as mdBook's link preprocessor finds them.
fn directives(text: &str) -> Vec<Directive<'_>> {
    let mut out = Vec::new();
    let mut from = 0;
    while let Some(i) = text[from..].find("{{") {
        let start = from + i;
        from = start + 2;
        if text[..start].ends_with('\\') {
            continue;
        }
        let rest = text[start + 2..].trim_start();
        let Some(rest) = rest.strip_prefix('#') else {
            continue;
        };
        let name_len = rest
            .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
            .unwrap_or(rest.len());
        let (name, rest) = rest.split_at(name_len);
        if name.is_empty() || !rest.starts_with(char::is_whitespace) {
            continue;
        }
        let Some(close) = rest.find('}') else {
            continue;
        };
        if !rest[close..].starts_with("}}") {
            continue;
        }
        out.push(Directive {
            offset: start,
            name,
            args: rest[..close].trim(),
        });
    }
    out
}

/// Shows lab code as the starter has it and adds the Solutions appendix;
/// runs before mdBook's `links`, which expands the includes left over.
pub struct Listings {
    exercises: Exercises,
}

impl Listings {
    pub const NAME: &'static str = "kubelings-listings";

    /// The exercises of the workbook at `root` (the directory of `book/`),
    /// for the book whose pages are in `src`.
    pub fn load(root: &Path, src: &Path) -> Result<Listings, BookError> {
        Ok(Listings {
            exercises: Exercises::load(root, src)?,
        })
    }
}

fn joined(lines: Vec<PageLine>) -> String {
    let mut text = String::new();
    for line in lines {
        text.push_str(&line.text);
        text.push('\n');
    }
    text
}

impl Preprocessor for Listings {
    fn name(&self) -> &str {
        Self::NAME
    }

    fn run(
        &self,
        ctx: &PreprocessorContext,
        mut book: Book,
    ) -> mdbook_driver::errors::Result<Book> {
        let src = ctx.root.join(&ctx.config.book.src);
        book.for_each_chapter_mut(|chapter| {
            if let Some(path) = &chapter.source_path {
                let lines = self.exercises.expand(&src.join(path), &chapter.content);
                chapter.content = joined(lines);
            }
        });
        let solutions = joined(self.exercises.solutions_page(&src));
        book.push_item(BookItem::Chapter(Chapter::new(
            SOLUTIONS_TITLE,
            solutions,
            SOLUTIONS_PAGE,
            Vec::new(),
        )));
        Ok(book)
    }
}

/// The book loaded with its preprocessors in order: [`Listings`], then
/// mdBook's `links` and `index`.
fn load(book_dir: &Path, mut config: Config) -> Result<MDBook, BookError> {
    // Never write placeholder chapters into the sources.
    config.build.create_missing = false;
    // The defaults come back below, after ours.
    config.build.use_default_preprocessors = false;
    let root = expand::normalize(book_dir.parent().unwrap_or(book_dir));
    let listings = Listings::load(&root, &book_dir.join(&config.book.src))?;
    let mut book = MDBook::load_with_config(book_dir, config)
        .map_err(|e| BookError::Build(format!("{e:#}")))?;
    book.with_preprocessor(listings)
        .with_preprocessor(LinkPreprocessor::new())
        .with_preprocessor(IndexPreprocessor::new());
    Ok(book)
}

/// The chapters as the renderer gets them: (path in `src`, Markdown).
pub fn preprocessed(book_dir: &Path) -> Result<Vec<(PathBuf, String)>, BookError> {
    let book = load(book_dir, load_config(book_dir)?)?;
    let (book, _) = book
        .preprocess_book(&MarkdownRenderer::new())
        .map_err(|e| BookError::Build(format!("{e:#}")))?;
    Ok(book
        .chapters()
        .filter_map(|c| Some((c.path.clone()?, c.content.clone())))
        .collect())
}

/// Builds the book with mdBook into `out_dir` (default: book.toml's
/// `build-dir`) and returns the path of its `index.html`.
pub fn build(book_dir: &Path, out_dir: Option<&Path>) -> Result<PathBuf, BookError> {
    let mut config = load_config(book_dir)?;
    if let Some(out) = out_dir {
        config.build.build_dir = out.to_path_buf();
    }
    let book = load(book_dir, config)?;
    book.build()
        .map_err(|e| BookError::Build(format!("{e:#}")))?;
    Ok(book.build_dir_for("html").join("index.html"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slugs_like_mdbook() {
        assert_eq!(slug("Limits as data"), "limits-as-data");
        assert_eq!(
            slug("`--passes`: add more rustdoc passes"),
            "--passes-add-more-rustdoc-passes"
        );
        assert_eq!(slug("1.5 Limits: 64M, or more?"), "15-limits-64m-or-more");
        assert_eq!(slug("  Über_alles  "), "über_alles");
    }

    #[test]
    fn finds_heading_ids() {
        let md = "# Cgroups\n\n## Limits as data\n\n```sh\n# not a heading\n```\n\n## `parse_size` in *Rust*\n\n## Limits as data\n\n### Custom {#my-id}\n\nSetext\n------\n";
        assert_eq!(
            heading_ids(md),
            vec![
                "cgroups",
                "limits-as-data",
                "parse_size-in-rust",
                "limits-as-data-1",
                "my-id",
                "setext"
            ]
        );
    }

    #[test]
    fn finds_directives() {
        let md = "a {{#include ../x.rs:anchor}} b \\{{#include y.rs}} {{ #title T }} {{#rustdoc_include z.rs:1:5}}";
        let found: Vec<(&str, &str)> = directives(md).iter().map(|d| (d.name, d.args)).collect();
        assert_eq!(
            found,
            vec![
                ("include", "../x.rs:anchor"),
                ("title", "T"),
                ("rustdoc_include", "z.rs:1:5")
            ]
        );
    }

    #[test]
    fn finds_anchors() {
        let src = "// ANCHOR: parse\nfn f() {}\n    // ANCHOR_END: parse\n// ANCHOR: parse_more\n";
        assert_eq!(anchors(src, "parse"), (true, true));
        assert_eq!(anchors(src, "parse_more"), (true, false));
        assert_eq!(anchors(src, "pars"), (false, false));
    }

    #[test]
    fn reports_broken_references() {
        let tmp = tempfile::tempdir().unwrap();
        let book = tmp.path().join("book");
        std::fs::create_dir_all(book.join("src/ch01")).unwrap();
        std::fs::write(book.join("book.toml"), "[book]\ntitle = \"t\"\n").unwrap();
        std::fs::write(
            book.join("src/SUMMARY.md"),
            "# Summary\n\n- [One](ch01/README.md)\n- [Two](ch01/missing.md)\n- [Draft]()\n",
        )
        .unwrap();
        std::fs::write(
            tmp.path().join("code.rs"),
            "// ANCHOR: a\nfn a() {}\n// ANCHOR_END: a\n",
        )
        .unwrap();
        std::fs::write(
            book.join("src/ch01/README.md"),
            "# One\n\n## Limits as data\n\n[ok](#limits-as-data) [bad](#nope)\n\
             [ok](../SUMMARY.md#summary) [bad](README.md#gone) [web](https://example.com/x#y)\n\n\
             ```rust\n{{#include ../../../code.rs:a}}\n{{#include ../../../code.rs:b}}\n\
             {{#include ../../../code.rs:2:3}}\n{{#include ../../../nope.rs}}\n```\n",
        )
        .unwrap();
        let problems: Vec<String> = check(&book)
            .unwrap()
            .iter()
            .map(|p| p.to_string())
            .collect();
        assert_eq!(
            problems,
            vec![
                "book/src/SUMMARY.md:4: chapter ch01/missing.md is listed in SUMMARY.md but does not exist",
                "book/src/ch01/README.md:10: {{#include ../../../code.rs:b}}: ../../../code.rs has no ANCHOR: b / ANCHOR_END: b",
                "book/src/ch01/README.md:12: {{#include ../../../nope.rs}}: no file ../../../nope.rs",
                "book/src/ch01/README.md:5: link to #nope: no such heading on this page",
                "book/src/ch01/README.md:6: link to README.md#gone: README.md has no heading #gone",
            ]
        );
    }

    #[test]
    fn checks_what_the_reader_sees() {
        let tmp = tempfile::tempdir().unwrap();
        let root = tmp.path();
        let book = root.join("book");
        let lab = root.join("labs/lab01/src");
        std::fs::create_dir_all(book.join("src/img")).unwrap();
        std::fs::create_dir_all(&lab).unwrap();
        std::fs::write(book.join("book.toml"), "[book]\ntitle = \"t\"\n").unwrap();
        std::fs::write(
            book.join("src/SUMMARY.md"),
            "# Summary\n\n- [One](one.md)\n- [Two](two.md)\n",
        )
        .unwrap();
        let lib = "// ANCHOR: f\n    #[cfg(unix)]\n    pub fn f() -> u32 {\n        // EXERCISE: ex-f\n        \
                   let secret_answer = 41;\n        secret_answer + 1\n        // EXERCISE_END: ex-f\n    }\n// ANCHOR_END: f\n";
        std::fs::write(lab.join("lib.rs"), lib).unwrap();
        std::fs::write(
            root.join("labs/exercises.yaml"),
            "exercises:\n  - id: ex-f\n    lab: lab01\n    title: Answer\n    section: \"1.1\"\n    \
             page: one.md#11-one\n    privilege: none\n    hints: [a, b, c]\n    tests: [lab01::t::f]\n",
        )
        .unwrap();
        // A copy of the body outside the lab sources: a leak if shown.
        std::fs::write(root.join("copy.rs"), "let secret_answer = 41;\n").unwrap();
        std::fs::write(book.join("src/img/shown.svg"), "<svg/>").unwrap();
        std::fs::write(book.join("src/img/orphan.svg"), "<svg/>").unwrap();
        let wide = "w".repeat(81);
        std::fs::write(
            book.join("src/one.md"),
            format!(
                "# 1.1 One\n\n```rust\n{{{{#include ../../labs/lab01/src/lib.rs:f}}}}\n```\n\n\
                 ![a](img/shown.svg)\n<img src=\"img/gone.svg\">\n\n```text\n{wide}\n```\n"
            ),
        )
        .unwrap();
        std::fs::write(
            book.join("src/two.md"),
            "# 1.2 Not two\n\n```rust\n{{#include ../../copy.rs}}\n```\n\n\
             [ok](solutions.md#ex-f) [bad](solutions.md#nope)\n",
        )
        .unwrap();

        let exercises = Exercises::load(root, &book.join("src")).unwrap();
        let page = book.join("src/one.md");
        let text = std::fs::read_to_string(&page).unwrap();
        let shown: Vec<String> = exercises
            .expand(&page, &text)
            .into_iter()
            .map(|l| l.text)
            .collect();
        assert_eq!(
            shown[3..7],
            [
                "pub fn f() -> u32 {",
                "    todo!(\"ex-f: Answer (book §1.1)\")",
                "}",
                "```"
            ]
        );
        let boxed: Vec<String> = exercises
            .expand(
                &book.join("src/ch01/x.md"),
                "> **Exercise `ex-f`**: Answer.\n> Run it.\n\nMore.\n",
            )
            .into_iter()
            .map(|l| l.text)
            .collect();
        assert_eq!(
            boxed,
            [
                "> **Exercise `ex-f`**: Answer.",
                "> Run it.",
                ">",
                "> Done, or stuck for good? The reference solution is in the \
                 [appendix](../solutions.md#ex-f).",
                "",
                "More."
            ]
        );
        let solutions: Vec<String> = exercises
            .solutions_page(&book.join("src"))
            .into_iter()
            .map(|l| l.text)
            .collect();
        assert!(solutions.contains(&"    let secret_answer = 41;".to_string()));

        let problems: Vec<String> = check(&book)
            .unwrap()
            .iter()
            .map(|p| p.to_string())
            .collect();
        assert_eq!(
            problems,
            vec![
                "book/src/SUMMARY.md:4: SUMMARY says \"Two\" but two.md is titled \"1.2 Not two\"",
                "book/src/two.md:7: link to solutions.md#nope: the Solutions appendix has no #nope",
                "book/src/one.md:11: 81 columns",
                "copy.rs:1: shows the reference solution of ex-f above its exercise: `let secret_answer = 41;`",
                "book/src/one.md:8: no picture img/gone.svg",
                "book/src/img/orphan.svg:1: this picture is shown on no page",
            ]
        );
    }
}
