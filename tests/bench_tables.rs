//! The measured tables and charts saved in the book agree with the programs
//! that make them: each table reads back, with the code that wrote it, to
//! the same text, and each chart is the one drawn from its table.

use std::path::{Path, PathBuf};
use std::time::Duration;

// The programs' own table code, compiled into this test.
#[allow(dead_code)]
#[path = "../chapters/ch01/startup.rs"]
mod startup;

#[allow(dead_code)]
#[path = "../chapters/ch02/bench.rs"]
mod bench;

use startup::{Figures, Line, Outcome};

fn book(path: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../book/src")
        .join(path)
}

fn read(path: &Path) -> String {
    std::fs::read_to_string(path)
        .unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

fn ms(v: f64) -> Duration {
    Duration::from_micros((v * 1000.0).round() as u64)
}

fn assert_fits(text: &str) {
    for line in text.lines() {
        assert!(
            line.chars().count() <= startup::WIDTH,
            "longer than {} columns: {line:?}",
            startup::WIDTH
        );
    }
}

/// The `<text>` contents and the count of filled `<rect>`s of an SVG, which
/// must parse as XML.
fn svg_texts_and_bars(svg: &str, colours: &[&str]) -> (Vec<String>, usize) {
    let doc =
        roxmltree::Document::parse(svg).expect("the chart is well-formed XML");
    let root = doc.root_element();
    assert_eq!(root.tag_name().name(), "svg");
    assert!(
        root.attribute("viewBox").is_some()
            || root.attribute("width").is_some()
    );
    let texts = doc
        .descendants()
        .filter(|n| n.has_tag_name("text"))
        .map(|n| n.text().unwrap_or("").trim().to_string())
        .collect();
    let bars = doc
        .descendants()
        .filter(|n| n.has_tag_name("rect"))
        .filter(|n| {
            n.attribute("fill").is_some_and(|f| {
                colours.iter().any(|c| f.eq_ignore_ascii_case(c))
            })
        })
        .count();
    (texts, bars)
}

fn sample_startup() -> startup::Table {
    let measured = |name: &str, median, p90| Line {
        name: name.into(),
        outcome: Outcome::Measured(Figures {
            median: ms(median),
            p90: ms(p90),
        }),
    };
    startup::Table {
        machine: "Some CPU with a rather long model name, 2 cores, Linux 6.1.0-99-amd64, \
                  cgroups hybrid (v1 controllers, cgroup2 without controllers)"
            .into(),
        runs: 200,
        vm_runs: Some(3),
        lines: vec![
            measured("plain process", 0.36, 0.39),
            measured(startup::CONTAINER, 2.14, 3.04),
            Line {
                name: "runc".into(),
                outcome: Outcome::Failed(
                    "runc run exited with exit status: 1, and a long reason that \
                     will not fit on one line of the table"
                        .into(),
                ),
            },
            Line {
                name: "VM boot (qemu)".into(),
                outcome: Outcome::Skipped("--skip-vm".into()),
            },
        ],
        notes: vec!["tcg: a note long enough to need two lines of the table, \
                     since it explains how the VM row was measured and why."
            .into()],
    }
}

#[test]
fn startup_table_reads_back_and_fits() {
    let table = sample_startup();
    let text = table.render();
    assert_fits(&text);
    assert!(
        text.contains("runc                        failed: runc run exited")
    );
    assert!(text.contains("VM boot (qemu)              skipped: --skip-vm"));
    assert!(
        text.contains("ch01 container                  2.14 ms      3.04 ms")
    );
    assert_eq!(startup::Table::parse(&text).expect("parse"), table);
}

#[test]
fn startup_ratio_is_of_the_printed_medians() {
    let table = sample_startup();
    assert_eq!(table.ratio("plain process").as_deref(), Some("0.2x"));
    let mut faster = table.clone();
    faster.lines[0].outcome = Outcome::Measured(Figures {
        median: ms(0.1),
        p90: ms(0.2),
    });
    assert_eq!(faster.ratio("plain process").as_deref(), Some("0.05x"));
    assert_eq!(table.ratio(startup::CONTAINER).as_deref(), Some("1.0x"));
    assert_eq!(table.ratio("runc"), None, "a failed row has no ratio");
}

#[test]
fn bench_verdict_says_slower_below_one() {
    let rows = |ours: f64, peers: f64| bench::Table {
        size_mb: 100,
        files: 100,
        source: "synthetic".into(),
        rounds: 3,
        rows: vec![
            (bench::OURS.into(), Ok(ms(ours))),
            (bench::PEERS.into(), Ok(ms(peers))),
        ],
    };
    assert_eq!(
        rows(1000.0, 2500.0).verdict().as_deref(),
        Some("kubelings is 2.5x faster end to end")
    );
    assert_eq!(
        rows(1250.0, 1000.0).verdict().as_deref(),
        Some("kubelings is 1.2x slower end to end")
    );
    let failed = bench::Table {
        size_mb: 100,
        files: 3912,
        source: "from /usr".into(),
        rounds: 3,
        rows: vec![
            (bench::OURS.into(), Ok(ms(1000.0))),
            (bench::PEERS.into(), Err("umoci is not installed".into())),
        ],
    };
    assert_eq!(failed.verdict(), None);
    let text = failed.render();
    assert_fits(&text);
    assert!(
        text.contains("\n  failed: umoci is not installed\n"),
        "{text}"
    );
    assert_eq!(bench::Table::parse(&text).expect("parse"), failed);
}

/// The bar colours of the two charts.
const STARTUP_BARS: &[&str] = &["#1B6FA8", "#D95F02"];
const BENCH_BARS: &[&str] = &["#1B6FA8", "#D95F02", "#1B9E77", "#7570B3"];

/// A startup chart has one bar per measured row, every row's name, and each
/// median as the table prints it.
fn check_startup_chart(table: &startup::Table, svg: &str) {
    let (texts, bars) = svg_texts_and_bars(svg, STARTUP_BARS);
    let measured: Vec<&Figures> = table
        .lines
        .iter()
        .filter_map(|l| match &l.outcome {
            Outcome::Measured(f) => Some(f),
            _ => None,
        })
        .collect();
    assert_eq!(bars, measured.len(), "one bar per measured row");
    for line in &table.lines {
        assert!(texts.contains(&line.name), "no label {:?}", line.name);
    }
    for f in measured {
        let label = format!("{:.2} ms", f.median.as_secs_f64() * 1e3);
        assert!(texts.contains(&label), "no label {label:?} in {texts:?}");
    }
    let unmeasured = table.lines.len() - bars;
    let said = texts
        .iter()
        .filter(|t| *t == "skipped" || *t == "failed")
        .count();
    assert_eq!(said, unmeasured, "a row without a bar says why");
}

/// A bench chart stacks the four steps of both trips (8 bars) and labels
/// each trip with its end-to-end time.
fn check_bench_chart(table: &bench::Table, svg: &str) {
    let (texts, bars) = svg_texts_and_bars(svg, BENCH_BARS);
    // Four legend swatches besides.
    assert_eq!(
        bars,
        8 + 4,
        "four steps for each of two trips, and a legend"
    );
    for total in [bench::OURS, bench::PEERS] {
        if let Some(d) = table.get(total) {
            let label = format!("{:.1} ms", d.as_secs_f64() * 1e3);
            assert!(texts.contains(&label), "no label {label:?} in {texts:?}");
        }
    }
    assert!(texts.iter().any(|t| t == "kubelings"));
}

#[test]
fn startup_chart_has_a_bar_per_measured_row() {
    let table = sample_startup();
    check_startup_chart(&table, &table.chart_svg().expect("draw"));
}

#[test]
fn bench_chart_stacks_both_trips() {
    let table = bench::Table::parse(
        "105 MiB in 3912 files (from /usr) over loopback:\n\
         build, push, pull into an empty store, unpack\n\n\
         kubelings build                                        477.8 ms\n\
         kubelings push                                         146.6 ms\n\
         kubelings pull (empty store)                           198.7 ms\n\
         kubelings unpack                                       159.6 ms\n\
         tar -xzf of the same layer                             120.0 ms\n\
         kubelings end to end                                   982.6 ms\n\
         umoci repack                                           822.6 ms\n\
         skopeo copy to docker-registry                         372.9 ms\n\
         skopeo copy back                                       346.4 ms\n\
         umoci unpack                                           920.7 ms\n\
         umoci + skopeo + docker-registry end to end           2462.6 ms\n\n\
         kubelings is 2.5x faster end to end\n\
         unpack took 1.33x the time of tar -xzf\n",
    )
    .expect("parse");
    assert_eq!(
        table.verdict().as_deref(),
        Some("kubelings is 2.5x faster end to end")
    );
    assert_eq!(
        table.unpack_verdict().as_deref(),
        Some("unpack took 1.33x the time of tar -xzf")
    );
    assert_eq!(table.files, 3912);
    assert_eq!(table.source, "from /usr");
    check_bench_chart(&table, &table.chart_svg().expect("draw"));
}

#[test]
fn startup_table_in_the_book_is_the_programs() {
    let text = read(&book("ch01/startup-table.txt"));
    let table = startup::Table::parse(&text)
        .expect("ch01/startup-table.txt reads back");
    assert_eq!(table.render(), text, "re-rendered differently");
    assert_fits(&text);
    let names: Vec<&str> =
        table.lines.iter().map(|l| l.name.as_str()).collect();
    assert_eq!(
        names[..3],
        ["plain process", "namespaces only", startup::CONTAINER]
    );
    assert!(names[3].starts_with("runc"), "{names:?}");
    assert!(names[4].starts_with("VM boot"), "{names:?}");
    for line in &table.lines {
        assert!(
            matches!(line.outcome, Outcome::Measured(_)),
            "the book's table has every row measured: {line:?}"
        );
    }
    // A VM row under emulation says so below the table.
    if names[4].contains("tcg") {
        assert!(table.notes.iter().any(|n| n.starts_with("tcg: ")));
    }
}

#[test]
fn startup_chart_in_the_book_is_drawn_from_its_table() {
    let table = startup::Table::parse(&read(&book("ch01/startup-table.txt")))
        .expect("parse");
    let svg = read(&book("img/startup-chart.svg"));
    check_startup_chart(&table, &svg);
    assert_eq!(
        table.chart_svg().expect("draw"),
        svg,
        "the chart is not the one drawn from the table: save both in one run \
         (--save and --chart)"
    );
}

#[test]
fn bench_table_in_the_book_is_the_programs() {
    let text = read(&book("ch02/benchmark-table.txt"));
    let table = bench::Table::parse(&text)
        .expect("ch02/benchmark-table.txt reads back");
    assert_eq!(table.render(), text, "re-rendered differently");
    assert_fits(&text);
    for (what, took) in &table.rows {
        assert!(
            took.is_ok(),
            "the book's table has every row measured: {what}"
        );
    }
    assert!(
        table.get(bench::OURS).is_some() && table.get(bench::PEERS).is_some()
    );
    // Measured on a real tree, with tar's unpack beside ours.
    assert_eq!(
        table.source, "from /usr",
        "the book's table ships /usr's files"
    );
    let (verdict, unpack) = (table.verdict(), table.unpack_verdict());
    assert!(
        verdict
            .zip(unpack)
            .is_some_and(|(v, u)| text.ends_with(&format!("\n{v}\n{u}\n"))),
        "{text}"
    );
}

#[test]
fn bench_chart_in_the_book_is_drawn_from_its_table() {
    let table = bench::Table::parse(&read(&book("ch02/benchmark-table.txt")))
        .expect("parse");
    let svg = read(&book("img/bench-chart.svg"));
    check_bench_chart(&table, &svg);
    assert_eq!(
        table.chart_svg().expect("draw"),
        svg,
        "the chart is not the one drawn from the table: save both in one run \
         (--save and --chart)"
    );
}

/// A row whose measurement fails says `failed:` and why, instead of
/// figures, and the rest of the table is still measured: here a `runc` that
/// always fails comes first on PATH.
#[test]
fn startup_reports_a_failed_row_as_failed() {
    use std::os::unix::fs::PermissionsExt;
    if !lab01::probe::require(lab01::probe::Privilege::Root) {
        return;
    }
    let bin = tempfile::tempdir().expect("temp dir");
    let runc = bin.path().join("runc");
    std::fs::write(&runc, "#!/bin/sh\necho broken >&2\nexit 1\n")
        .expect("write runc");
    std::fs::set_permissions(&runc, std::fs::Permissions::from_mode(0o755))
        .expect("chmod");
    let path = format!(
        "{}:{}",
        bin.path().display(),
        std::env::var("PATH").unwrap_or_default()
    );
    let out = assert_cmd::Command::cargo_bin("ch01")
        .expect("the ch01 binary")
        .args(["startup", "--runs", "3", "--skip-vm"])
        .env("PATH", path)
        .timeout(Duration::from_secs(120))
        .output()
        .expect("run ch01 startup");
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{text}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let table =
        startup::Table::parse(&text).expect("the printed table reads back");
    let runc = table.line("runc").expect("a runc row");
    assert!(
        matches!(&runc.outcome, Outcome::Failed(why) if why.contains("exit status: 1")),
        "{text}"
    );
    for name in ["plain process", "namespaces only", startup::CONTAINER] {
        let line = table.line(name).expect("row");
        assert!(matches!(line.outcome, Outcome::Measured(_)), "{text}");
    }
    assert!(matches!(
        table.line("VM boot (qemu)").map(|l| &l.outcome),
        Some(Outcome::Skipped(_))
    ));
}

/// Every picture of the book is SVG a browser can read: well-formed XML, a
/// viewBox to scale by, its words as text (not outlines) in a sans-serif
/// font.
#[test]
fn every_picture_is_scalable_text_svg() {
    let dir = book("img");
    let mut seen = 0;
    for entry in std::fs::read_dir(&dir).expect("book/src/img") {
        let path = entry.expect("entry").path();
        if path.extension().is_none_or(|e| e != "svg") {
            continue;
        }
        seen += 1;
        let text = read(&path);
        // Graphviz writes a DOCTYPE; nothing in it is needed.
        let options = roxmltree::ParsingOptions {
            allow_dtd: true,
            ..Default::default()
        };
        let doc = roxmltree::Document::parse_with_options(&text, options)
            .unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        let root = doc.root_element();
        assert!(
            root.has_tag_name("svg") && root.attribute("viewBox").is_some(),
            "{}: no <svg viewBox>",
            path.display()
        );
        let texts: Vec<_> = doc
            .descendants()
            .filter(|n| n.has_tag_name("text"))
            .collect();
        assert!(!texts.is_empty(), "{}: no <text>", path.display());
        for t in texts {
            let family = t
                .ancestors()
                .find_map(|n| n.attribute("font-family"))
                .unwrap_or_default();
            assert!(
                family.contains("sans-serif"),
                "{}: text {:?} in font {family:?}",
                path.display(),
                t.text()
            );
        }
    }
    assert!(seen >= 11, "only {seen} pictures in {}", dir.display());
}
