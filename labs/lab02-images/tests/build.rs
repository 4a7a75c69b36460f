//! Builds and runs (§2.5, §2.6): a Dockerfile with COPY, RUN and config
//! steps over a base image made from this machine's programs, then the
//! image as a container. Needs root (containers, overlayfs).

use lab01::probe::{require, Privilege};
use lab01::run_captured;
use lab02::build::{base::build_base, build, parse};
use lab02::home::Home;
use lab02::layout::ImageStore;
use lab02::run::{container_spec, prepare_rootfs, Assembly};

fn image_output(
    home: &Home,
    store: &ImageStore,
    name: &str,
    assembly: Assembly,
    cmd: &[&str],
) -> String {
    let desc = store.resolve(name).expect("resolve");
    let manifest = store.manifest(&desc).expect("manifest");
    let config = store.config(&manifest).expect("config");
    let rootfs = prepare_rootfs(
        home,
        store,
        &manifest,
        &format!("test-{assembly:?}"),
        assembly,
    )
    .expect("rootfs");
    let cmd: Vec<String> = cmd.iter().map(|s| s.to_string()).collect();
    let spec = container_spec(&config, rootfs.path(), &cmd).expect("spec");
    let out = run_captured(&spec).expect("run");
    assert!(out.status.success(), "{out:?}");
    out.stdout
}

/// A home under `work` whose store holds the base image.
fn home_with_base(work: &std::path::Path) -> (Home, ImageStore) {
    let home = Home::at(work.join("home"));
    let store = ImageStore::open(&home.images()).expect("store");
    build_base(&store, "kubelings/base:latest").expect("base image");
    (home, store)
}

#[test]
fn dockerfile_build_then_run() {
    if !require(Privilege::Root) {
        return;
    }
    let work = tempfile::tempdir().expect("tempdir");
    let (home, store) = home_with_base(work.path());

    let context = work.path().join("context");
    std::fs::create_dir_all(context.join("site")).expect("context");
    std::fs::write(context.join("site/index.html"), "hello from COPY\n")
        .expect("file");
    let dockerfile = r#"
FROM kubelings/base:latest
ENV GREETING="built by RUN"
WORKDIR /app
COPY site/ /app/site/
RUN echo "$GREETING" > /app/built && rm /etc/group
CMD ["sh", "-c", "cat /app/built /app/site/index.html; ls /etc; pwd"]
"#;
    let steps = parse(dockerfile).expect("parse");
    let mut log = Vec::new();
    let built = build(&home, &store, &steps, &context, "demo:v1", &mut |l| {
        log.push(l)
    })
    .expect("build");
    assert_eq!(built.layers.len(), 2, "COPY and RUN add a layer each");

    let overlay =
        image_output(&home, &store, "demo:v1", Assembly::Overlay, &[]);
    let flat = image_output(&home, &store, "demo:v1", Assembly::Flat, &[]);
    assert_eq!(
        overlay, flat,
        "overlay and flat extraction show the same tree"
    );
    // RUN's deletion of /etc/group became a whiteout: gone in both.
    insta::assert_snapshot!(overlay);
    insta::assert_snapshot!(
        "build_log",
        log.join("\n")
            .replace(&built.manifest.digest().to_string(), "[digest]")
    );
    let _ =
        image_output(&home, &store, "demo:v1", Assembly::Overlay, &["true"]);
}

#[test]
fn a_failing_run_step_names_its_line() {
    if !require(Privilege::Root) {
        return;
    }
    let work = tempfile::tempdir().expect("tempdir");
    let (home, store) = home_with_base(work.path());
    let steps =
        parse("FROM kubelings/base:latest\n\nRUN exit 3\n").expect("parse");
    let err =
        build(&home, &store, &steps, work.path(), "broken:v1", &mut |_| {})
            .expect_err("build");
    assert_eq!(
        err.to_string(),
        "Dockerfile line 3: RUN exit 3 exited with code 3"
    );
    assert!(
        store.resolve("broken:v1").is_err(),
        "a failed build tags nothing"
    );
}
