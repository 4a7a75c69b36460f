//! The Dockerfile subset (§2.5): what is read, and what is refused and where.

mod common;
use common::wrap;

use lab02::build::dockerfile::parse;

#[test]
fn reads_the_kubia_dockerfile() {
    let text = r#"
# The book's kubia image, from our own base.
FROM kubelings/base:latest
LABEL org.opencontainers.image.title="kubia" maintainer='you'
ENV GREETING="You've hit" \
    PORT=8080
WORKDIR /app
COPY kubia /app/kubia
ADD config.txt static/ /app/
RUN echo built > /app/built && \
    ls /app
USER 0
EXPOSE 8080 8080/tcp
ENTRYPOINT ["/app/kubia", "--addr", "0.0.0.0:8080"]
CMD echo hello
"#;
    let steps = parse(text).expect("parse");
    insta::assert_yaml_snapshot!(steps);
}

#[test]
fn refuses_what_it_cannot_do_with_the_line() {
    let cases = [
        "FROM scratch\nARG VERSION=1",
        "COPY a b",
        "FROM scratch\nFROM scratch",
        "FROM base AS build",
        "FROM scratch\nADD https://example.invalid/x /x",
        "FROM scratch\nCOPY --chown=1:1 a b",
        "FROM scratch\nEXPOSE http",
        "FROM scratch\nCMD [\"unterminated\"",
        "FROM scratch\nFROBNICATE now",
        "# only a comment",
        "FROM scratch\nENV A=\"unterminated",
    ];
    let errors: Vec<String> = cases
        .iter()
        .map(|c| match parse(c) {
            Ok(steps) => format!("accepted?! {steps:?}"),
            Err(e) => wrap(&e.to_string(), "", "  "),
        })
        .collect();
    insta::assert_snapshot!(errors.join("\n"));
}
