//! The CRI log format: writing from a container's streams, parsing, and
//! reading as `kubectl logs` does.

use std::sync::Arc;
use std::time::{Duration, SystemTime};

use chrono::{DateTime, Utc};
use lab03::backoff::FakeClock;
use lab03::logs::{
    format_record, format_time, log_path, parse_line, parse_log, previous_log_path, prune, read,
    render, select, LineError, LogOptions, LogWriter, Stream, Streams,
};

fn at(secs: u64, nanos: u32) -> SystemTime {
    SystemTime::UNIX_EPOCH + Duration::new(1_800_000_000 + secs, nanos)
}

fn utc(t: SystemTime) -> DateTime<Utc> {
    DateTime::<Utc>::from(t)
}

fn writer(max_line: usize) -> LogWriter<Vec<u8>, Arc<FakeClock>> {
    LogWriter::new(Vec::new(), Arc::new(FakeClock::at(at(0, 5_000))), max_line)
}

#[test]
fn timestamps_as_go_prints_them() {
    assert_eq!(format_time(utc(at(2, 0))), "2027-01-15T08:00:02Z");
    assert_eq!(
        format_time(utc(at(2, 500_000_000))),
        "2027-01-15T08:00:02.5Z"
    );
    assert_eq!(
        format_time(utc(at(2, 123_456_789))),
        "2027-01-15T08:00:02.123456789Z"
    );
    assert_eq!(
        format_time(utc(at(2, 1_000))),
        "2027-01-15T08:00:02.000001Z"
    );
}

#[test]
fn parse_a_full_and_a_partial_line() {
    let r = parse_line("2027-01-15T08:00:02.5Z stdout F hello, world").expect("parses");
    assert_eq!(r.time, utc(at(2, 500_000_000)));
    assert_eq!(
        (r.stream, r.partial, r.text.as_str()),
        (Stream::Stdout, false, "hello, world")
    );

    let r = parse_line("2027-01-15T08:00:02Z stderr P  two  spaces ").expect("parses");
    assert_eq!(
        (r.stream, r.partial, r.text.as_str()),
        (Stream::Stderr, true, " two  spaces ")
    );

    // An empty line still has the space after its tag.
    let r = parse_line("2027-01-15T08:00:02Z stdout F ").expect("parses");
    assert_eq!(r.text, "");
    // Other offsets are times too; the record holds UTC.
    let r = parse_line("2027-01-15T09:00:02+01:00 stdout F x").expect("parses");
    assert_eq!(r.time, utc(at(2, 0)));
    // A tag may carry more after a colon.
    assert!(
        !parse_line("2027-01-15T08:00:02Z stdout F:x y")
            .expect("parses")
            .partial
    );
}

#[test]
fn bad_lines_say_what_is_wrong() {
    let cases: &[(&str, LineError)] = &[
        ("", LineError::Missing("timestamp")),
        ("2027-01-15T08:00:02Z", LineError::Missing("stream")),
        ("2027-01-15T08:00:02Z stdout", LineError::Missing("tag")),
        ("2027-01-15T08:00:02Z stdout F", LineError::Missing("text")),
        (
            "yesterday stdout F x",
            LineError::Timestamp("yesterday".into()),
        ),
        (
            "2027-01-15 08:00:02 stdout F x",
            LineError::Timestamp("2027-01-15".into()),
        ),
        (
            "2027-01-15T08:00:02Z stdin F x",
            LineError::Stream("stdin".into()),
        ),
        (
            "2027-01-15T08:00:02Z stdout X x",
            LineError::Tag("X".into()),
        ),
        (
            "2027-01-15T08:00:02Z stdout f x",
            LineError::Tag("f".into()),
        ),
    ];
    for (line, want) in cases {
        assert_eq!(parse_line(line).as_ref(), Err(want), "{line:?}");
    }
}

#[test]
fn a_bad_line_is_named_by_its_number() {
    let text = "2027-01-15T08:00:02Z stdout F one\n2027-01-15T08:00:02Z stdout F two\nthree\n";
    let err = parse_log(text).expect_err("line 3 is bad");
    assert_eq!(err.line, 3);
    assert_eq!(
        err.to_string(),
        "line 3: bad timestamp \"three\": not RFC 3339"
    );
}

#[test]
fn written_records_parse_back() {
    let time = utc(at(7, 42));
    for (stream, partial, text) in [
        (Stream::Stdout, false, "plain"),
        (Stream::Stderr, true, "cut here"),
        (Stream::Stdout, false, ""),
        (Stream::Stdout, false, "tabs\tand  spaces "),
    ] {
        let line = String::from_utf8(format_record(time, stream, partial, text.as_bytes()))
            .expect("utf-8");
        assert!(line.ends_with('\n'));
        let r = parse_line(line.trim_end_matches('\n')).expect("parses");
        assert_eq!(
            (r.time, r.stream, r.partial, r.text.as_str()),
            (time, stream, partial, text)
        );
    }
}

#[test]
fn the_writer_cuts_lines() {
    let w = writer(8);
    let input: &[u8] = b"short\nexactly8\nlonger than eight\r\n\nno newline";
    w.copy_stream(input, Stream::Stdout).expect("copies");
    let out = String::from_utf8(w.into_inner()).expect("utf-8");
    insta::assert_snapshot!(out);
}

#[test]
fn two_streams_share_one_file() {
    let clock = Arc::new(FakeClock::at(at(0, 0)));
    let w = Arc::new(LogWriter::new(Vec::new(), clock.clone(), 1024));
    let big: Vec<u8> = (0..2000)
        .flat_map(|i| format!("out {i}\n").into_bytes())
        .collect();
    let errs: Vec<u8> = (0..2000)
        .flat_map(|i| format!("err {i}\n").into_bytes())
        .collect();
    std::thread::scope(|s| {
        let w1 = w.clone();
        let w2 = w.clone();
        s.spawn(move || w1.copy_stream(&big[..], Stream::Stdout).expect("stdout"));
        s.spawn(move || w2.copy_stream(&errs[..], Stream::Stderr).expect("stderr"));
    });
    let w = Arc::into_inner(w).expect("threads are done");
    let text = String::from_utf8(w.into_inner()).expect("utf-8");
    let records = parse_log(&text).expect("every record is whole");
    assert_eq!(records.len(), 4000);
    // Each stream's lines stay in order.
    for (stream, prefix) in [(Stream::Stdout, "out"), (Stream::Stderr, "err")] {
        let texts: Vec<&str> = records
            .iter()
            .filter(|r| r.stream == stream)
            .map(|r| r.text.as_str())
            .collect();
        let want: Vec<String> = (0..2000).map(|i| format!("{prefix} {i}")).collect();
        assert_eq!(texts, want);
    }
}

/// A log with both streams, a line cut in two, a few seconds apart.
fn sample() -> String {
    let mut log = Vec::new();
    let mut put = |secs, stream, partial, text: &str| {
        log.extend(format_record(
            utc(at(secs, 0)),
            stream,
            partial,
            text.as_bytes(),
        ))
    };
    put(1, Stream::Stdout, false, "kubia server starting...");
    put(2, Stream::Stderr, false, "warning: no config");
    put(3, Stream::Stdout, true, "received request from ");
    put(3, Stream::Stderr, false, "slow request");
    put(3, Stream::Stdout, false, "::ffff:198.18.1.3");
    put(
        4,
        Stream::Stdout,
        false,
        "received request from ::ffff:198.18.1.4",
    );
    String::from_utf8(log).expect("utf-8")
}

#[test]
fn kubectl_logs_options() {
    let records = parse_log(&sample()).expect("parses");
    let mut out = String::new();
    let cases = [
        ("(no options)", LogOptions::default()),
        (
            "--tail 2",
            LogOptions {
                tail: Some(2),
                ..Default::default()
            },
        ),
        (
            "--since-time (3 s in)",
            LogOptions {
                since: Some(at(3, 0)),
                ..Default::default()
            },
        ),
        (
            "stdout only, --timestamps",
            LogOptions {
                streams: Streams::Only(Stream::Stdout),
                timestamps: true,
                ..Default::default()
            },
        ),
        (
            "--tail 1, stderr only",
            LogOptions {
                tail: Some(1),
                streams: Streams::Only(Stream::Stderr),
                ..Default::default()
            },
        ),
    ];
    for (title, options) in cases {
        out.push_str(&format!("$ kubectl logs kubia {title}\n"));
        out.push_str(&render(&select(&records, &options), options.timestamps));
    }
    insta::assert_snapshot!(out);
}

#[test]
fn partial_fragments_join_across_streams() {
    let records = parse_log(&sample()).expect("parses");
    let lines = select(&records, &LogOptions::default());
    let texts: Vec<&str> = lines.iter().map(|l| l.text.as_str()).collect();
    assert_eq!(
        texts,
        [
            "kubia server starting...",
            "warning: no config",
            "received request from ::ffff:198.18.1.3",
            "slow request",
            "received request from ::ffff:198.18.1.4",
        ]
    );
    assert!(lines.iter().all(|l| l.complete));
    // tail counts joined lines, not records.
    let two = select(
        &records,
        &LogOptions {
            tail: Some(3),
            ..Default::default()
        },
    );
    assert_eq!(two[0].text, "received request from ::ffff:198.18.1.3");
}

#[test]
fn previous_instance_is_kept() {
    let dir = tempfile::tempdir().expect("temp dir");
    let pod = dir.path().join("default_kubia_1a2b");
    for restarts in 0..4u32 {
        let path = log_path(&pod, "kubia", restarts);
        std::fs::create_dir_all(path.parent().expect("has a parent")).expect("mkdir");
        let line = format_record(
            utc(at(u64::from(restarts), 0)),
            Stream::Stdout,
            false,
            format!("instance {restarts}").as_bytes(),
        );
        std::fs::write(&path, line).expect("write");
    }
    assert_eq!(log_path(&pod, "kubia", 3), pod.join("kubia/3.log"));
    let removed = prune(&pod, "kubia", 3).expect("prune");
    assert_eq!(removed, [pod.join("kubia/0.log"), pod.join("kubia/1.log")]);
    let previous = previous_log_path(&pod, "kubia", 3).expect("there was one");
    assert_eq!(
        read(&previous, &LogOptions::default()).expect("reads"),
        "instance 2\n"
    );
    assert_eq!(
        read(&log_path(&pod, "kubia", 3), &LogOptions::default()).expect("reads"),
        "instance 3\n"
    );
    assert_eq!(previous_log_path(&pod, "kubia", 0), None);
}

#[test]
fn a_damaged_file_names_the_line() {
    let dir = tempfile::tempdir().expect("temp dir");
    let path = dir.path().join("0.log");
    std::fs::write(&path, format!("{}garbage\n", sample())).expect("write");
    let err = read(&path, &LogOptions::default()).expect_err("line 7 is bad");
    assert!(
        err.to_string()
            .ends_with("0.log: line 7: bad timestamp \"garbage\": not RFC 3339"),
        "{err}"
    );
}
