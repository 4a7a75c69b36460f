//! The `ch02` program end to end: images, registries, containers from images.

use std::path::Path;

use assert_cmd::Command;
use lab01::probe::{require, Privilege};

fn ch02(home: &Path) -> Command {
    let mut cmd = Command::cargo_bin("ch02").expect("the ch02 binary");
    cmd.arg("--home").arg(home);
    cmd
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

/// What the book shows must fit its 80 columns.
fn assert_fits(text: &str) {
    for line in text.lines() {
        assert!(line.chars().count() <= 80, "wider than 80 columns: {line}");
    }
}

#[test]
fn unsupported_dockerfile_lines_are_named() {
    let work = tempfile::tempdir().expect("tempdir");
    let context = work.path().join("context");
    std::fs::create_dir_all(&context).expect("context");
    std::fs::write(
        context.join("Dockerfile"),
        "FROM scratch\nARG VERSION=1\nCOPY . /\n",
    )
    .expect("Dockerfile");
    // A relative context, as a reader types it: the message names it so.
    let out = ch02(&work.path().join("home"))
        .current_dir(work.path())
        .args(["build", "-t", "kubia:v1", "context"])
        .output()
        .expect("run");
    assert_eq!(out.status.code(), Some(1));
    let stderr = text(&out.stderr);
    assert_fits(&stderr);
    insta::assert_snapshot!(stderr);
}

#[test]
fn bad_references_are_named() {
    let work = tempfile::tempdir().expect("tempdir");
    let mut refusals = String::new();
    // A name that cannot be one, then a good name that names nothing here.
    for reference in ["Kubia:v1", "kubia:v1"] {
        let out = ch02(work.path())
            .args(["inspect", reference])
            .output()
            .expect("run");
        assert_eq!(out.status.code(), Some(1));
        refusals +=
            &format!("$ ch02 inspect {reference}\n{}", text(&out.stderr));
    }
    assert_fits(&refusals);
    insta::assert_snapshot!(refusals);
}

#[test]
fn save_on_one_computer_load_on_another() {
    let work = tempfile::tempdir().expect("tempdir");
    let (one, two) = (work.path().join("one"), work.path().join("two"));
    ch02(&one).arg("base").assert().success();
    let archive = work.path().join("base.tar");
    ch02(&one)
        .args(["save", "-o"])
        .arg(&archive)
        .arg("kubelings/base")
        .assert()
        .success();
    ch02(&two)
        .args(["load", "-i"])
        .arg(&archive)
        .assert()
        .success()
        .stdout("loaded kubelings/base:latest\n");
    let listed = ch02(&two).arg("images").output().expect("run");
    assert!(text(&listed.stdout).contains("kubelings/base:latest"));
    // A damaged archive is refused, and nothing half-loaded appears.
    let bytes = std::fs::read(&archive).expect("archive");
    std::fs::write(&archive, &bytes[..bytes.len() / 2]).expect("truncate");
    let three = work.path().join("three");
    ch02(&three)
        .args(["load", "-i"])
        .arg(&archive)
        .assert()
        .failure();
    let listed = ch02(&three).arg("images").output().expect("run");
    assert!(!text(&listed.stdout).contains("kubelings/base"));
}

#[test]
fn run_an_image() {
    if !require(Privilege::Root) {
        return;
    }
    let work = tempfile::tempdir().expect("tempdir");
    let home = work.path().join("home");
    ch02(&home).arg("base").assert().success();
    for flat in [false, true] {
        let mut cmd = ch02(&home);
        cmd.args(["run", "--hostname", "from-an-image"]);
        if flat {
            cmd.arg("--flat");
        }
        cmd.args(["kubelings/base", "--", "sh", "-c", "hostname; exit 4"])
            .assert()
            .code(4)
            .stdout("from-an-image\n");
    }
    assert!(
        !home
            .join("containers")
            .read_dir()
            .is_ok_and(|mut d| d.next().is_some()),
        "a container directory was left"
    );
}

#[test]
fn the_chapter_demo() {
    if !require(Privilege::Root) {
        return;
    }
    let work = tempfile::tempdir().expect("tempdir");
    let out = ch02(work.path()).arg("demo").output().expect("run");
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert_fits(&text(&out.stdout));
    insta::with_settings!({filters => vec![
        (r"sha256:[0-9a-f]{64}", "sha256:[digest]"),
        (r"127\.0\.0\.1:\d+", "127.0.0.1:PORT"),
        (r"\d+(\.\d+)? (MiB|KiB|B)\b", "[size]"),
    ]}, {
        insta::assert_snapshot!(text(&out.stdout));
    });
}

/// `ch02 registry serve` on a free loopback port, stopped (Ctrl-C, as a
/// reader would) and waited for when dropped.
struct Registry {
    child: std::process::Child,
    host: String,
    /// Kept open: a registry that says more must not die of a closed pipe.
    _stderr: Option<std::io::BufReader<std::process::ChildStderr>>,
}

impl Registry {
    fn start(home: &Path, users: &Path) -> Registry {
        Registry::start_with(home, users, &["--private", "kubia"])
    }

    /// `ch02 registry serve --users USERS` with more flags.
    fn start_with(home: &Path, users: &Path, flags: &[&str]) -> Registry {
        use std::io::BufRead;
        let child =
            std::process::Command::new(assert_cmd::cargo::cargo_bin("ch02"))
                .arg("--home")
                .arg(home)
                .args(["registry", "serve", "--addr", "127.0.0.1:0", "--users"])
                .arg(users)
                .args(flags)
                .stderr(std::process::Stdio::piped())
                .spawn()
                .expect("start ch02 registry serve");
        // Owned at once, so that it is stopped even if what follows fails.
        let mut registry = Registry {
            child,
            host: String::new(),
            _stderr: None,
        };
        let mut line = String::new();
        let stderr = registry.child.stderr.take().expect("its stderr");
        let stderr = registry._stderr.insert(std::io::BufReader::new(stderr));
        stderr.read_line(&mut line).expect("read what it says");
        // "ch02: registry on http://127.0.0.1:PORT (Ctrl-C to stop)"
        registry.host = line
            .split("://")
            .nth(1)
            .and_then(|rest| rest.split(' ').next())
            .unwrap_or_else(|| panic!("no address in {line:?}"))
            .to_string();
        registry
    }
}

impl Drop for Registry {
    fn drop(&mut self) {
        let pid = nix::unistd::Pid::from_raw(self.child.id() as i32);
        let _ = nix::sys::signal::kill(pid, nix::sys::signal::SIGINT);
        let _ = self.child.wait();
    }
}

/// `curl -i http://HOST/v2/`: the answer's status line, headers and body.
fn get_v2(host: &str) -> String {
    use std::io::{Read, Write};
    let mut stream =
        std::net::TcpStream::connect(host).expect("connect to the registry");
    write!(
        stream,
        "GET /v2/ HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n"
    )
    .expect("send");
    let mut answer = String::new();
    stream.read_to_string(&mut answer).expect("read");
    answer.replace("\r\n", "\n")
}

/// Snapshots `text` under `name`. Digests, sizes, the port and the date
/// differ from machine to machine and run to run; the rest of what ch02
/// says does not. What the book shows fits 80 columns, digests and all
/// (but for JSON, where a digest is a string on its own line).
fn check(name: &str, text: &str) {
    let mut settings = insta::Settings::clone_current();
    settings.add_filter(r"sha256:[0-9a-f]{64}", "sha256:[digest]");
    settings.add_filter(r"127\.0\.0\.1:\d+", "127.0.0.1:PORT");
    settings.add_filter(r"\d+(\.\d+)? (GiB|MiB|KiB|B)\b", "[size]");
    settings.add_filter(r#""size": \d+"#, r#""size": [size]"#);
    // `ch02 images` shows the first 12 digits of the manifest's digest.
    settings.add_filter(r"(?m)^(\S+ +)[0-9a-f]{12} ", "$1[digest]     ");
    settings.add_filter(
        r#""architecture": "[^"]+""#,
        r#""architecture": "[arch]""#,
    );
    settings.add_filter(r"(?mi)^date: .*$", "date: [date]");
    settings.bind(|| insta::assert_snapshot!(name, text));
    if text.trim_start().starts_with('{') {
        assert_fits(&text.replace(|c: char| c.is_ascii_hexdigit(), ""));
    } else {
        assert_fits(text);
    }
}

const USER: &str = "student";
const PASSWORD: &str = "kubelings-test";

#[test]
fn push_and_pull_through_a_private_registry() {
    let work = tempfile::tempdir().expect("tempdir");
    let (laptop, server, stranger) = (
        work.path().join("laptop"),
        work.path().join("server"),
        work.path().join("stranger"),
    );
    let stdout = |cmd: &mut Command| -> String {
        let out = cmd.output().expect("run ch02");
        assert!(out.status.success(), "{}", text(&out.stderr));
        text(&out.stdout)
    };

    // An image, and what the store says of it.
    stdout(ch02(&laptop).arg("base"));
    let images = stdout(ch02(&laptop).arg("images"));
    let inspect =
        stdout(ch02(&laptop).args(["inspect", "kubelings/base:latest"]));
    assert!(inspect.contains(r#""Cmd": ["#), "{inspect}");

    // A registry with one user, where kubia is private.
    let users = work.path().join("htpasswd");
    let hash = bcrypt::hash(PASSWORD, 4).expect("bcrypt");
    std::fs::write(&users, format!("{USER}:{hash}\n")).expect("htpasswd");
    let registry = Registry::start(&work.path().join("registry-home"), &users);
    let host = registry.host.clone();
    let version_check = get_v2(&host);
    assert!(version_check.starts_with("HTTP/1.1 401"), "{version_check}");

    ch02(&laptop)
        .args(["login", &host, "--username", USER, "--password-stdin"])
        .write_stdin(format!("{PASSWORD}\n"))
        .assert()
        .success()
        .stdout(format!("Login Succeeded: {host}\n"));

    // Push twice: the second time the registry has every blob.
    let target = format!("{host}/kubelings/base:v1");
    stdout(ch02(&laptop).args(["tag", "kubelings/base:latest", &target]));
    let first = stdout(ch02(&laptop).args(["push", &target]));
    let second = stdout(ch02(&laptop).args(["push", &target]));
    assert!(second.contains("0 blob(s) sent"), "{second}");
    let push =
        format!("$ ch02 push {target}\n{first}$ ch02 push {target}\n{second}");

    // Pull on another computer: a public repository needs no credentials.
    let pull = stdout(ch02(&server).args(["pull", &target]));
    let digest =
        |text: &str| text.lines().last().map(str::trim).map(String::from);
    assert_eq!(digest(&first), digest(&pull), "the same manifest");

    // A private one does, whether the image is there or not.
    let private = format!("{host}/kubia:v1");
    let out = ch02(&stranger)
        .args(["pull", &private])
        .output()
        .expect("run");
    assert_eq!(out.status.code(), Some(1));
    let refusal = text(&out.stderr);
    assert!(refusal.contains("ch02 login"), "{refusal}");
    drop(registry);

    check("images", &images);
    check("inspect", &inspect);
    check("version_check", &version_check);
    check("push", &push);
    check("pull", &pull);
    check("anonymous_pull_is_refused", &refusal);
}

/// Adds to `home`'s store an arm64/v8 twin of `kubelings/base:latest` (the
/// same layers, another config) and an index naming both, arm64 first, as
/// `kubelings/base:multi`: a multi-platform image like Docker Hub's.
fn make_multi_platform(home: &Path) {
    use serde_json::{json, Value};
    let store =
        lab02::layout::ImageStore::open(&home.join("images")).expect("store");
    let desc = store.resolve("kubelings/base:latest").expect("base image");
    let digest = |d: &str| -> lab02::Digest { d.parse().expect("digest") };
    let read = |d: &str| -> Value {
        serde_json::from_slice(&store.read_blob(&digest(d)).expect("blob"))
            .expect("json")
    };
    let base = desc.digest().to_string();
    let manifest = read(&base);
    let mut config =
        read(manifest["config"]["digest"].as_str().expect("config"));
    let host_arch = config["architecture"].clone();
    config["architecture"] = "arm64".into();
    config["variant"] = "v8".into();
    let config = serde_json::to_vec(&config).unwrap();
    let mut arm = manifest.clone();
    arm["config"]["digest"] =
        store.write_blob(&config).unwrap().to_string().into();
    arm["config"]["size"] = config.len().into();
    let arm = serde_json::to_vec(&arm).unwrap();
    let arm_digest = store.write_blob(&arm).unwrap();
    let entry = |digest: String, size: u64, platform: Value| {
        json!({"mediaType": lab02::spec::MEDIA_TYPE_MANIFEST, "digest": digest,
               "size": size, "platform": platform})
    };
    let index = serde_json::to_vec(&json!({
        "schemaVersion": 2,
        "mediaType": lab02::spec::MEDIA_TYPE_INDEX,
        "manifests": [
            entry(arm_digest.to_string(), arm.len() as u64,
                  json!({"os": "linux", "architecture": "arm64", "variant": "v8"})),
            entry(base, desc.size(), json!({"os": "linux", "architecture": host_arch})),
        ],
    }))
    .unwrap();
    let index_digest = store.write_blob(&index).unwrap();
    let index_desc = lab02::spec::descriptor(
        lab02::spec::MEDIA_TYPE_INDEX,
        &index_digest,
        index.len() as u64,
    );
    store
        .tag("kubelings/base:multi", &index_desc)
        .expect("tag the index");
}

#[test]
fn pull_a_multi_platform_image() {
    if !lab01::probe::require_program("skopeo") {
        return;
    }
    let work = tempfile::tempdir().expect("tempdir");
    let laptop = work.path().join("laptop");
    let out = ch02(&laptop).arg("base").output().expect("run");
    assert!(out.status.success(), "{}", text(&out.stderr));
    make_multi_platform(&laptop);
    let mut config =
        lab02::registry::RegistryConfig::new(work.path().join("registry"));
    config.addr = "127.0.0.1:0".parse().unwrap();
    let registry =
        lab02::registry::RegistryHandle::start(config).expect("registry");
    let image = format!("{}/kubelings/base:multi", registry.host());
    // skopeo copies the index and both images (--all), as `docker buildx
    // --push` would have put them there.
    let copied = std::process::Command::new("skopeo")
        .args(["copy", "--all", "--dest-tls-verify=false"])
        .arg(format!(
            "oci:{}:kubelings/base:multi",
            laptop.join("images").display()
        ))
        .arg(format!("docker://{image}"))
        .output()
        .expect("skopeo");
    assert!(copied.status.success(), "{}", text(&copied.stderr));

    let mut shown = String::new();
    for (home, platform) in [
        ("server", None),
        ("arm", Some("linux/arm64")),
        ("pi", Some("linux/arm/v7")),
    ] {
        let mut cmd = ch02(&work.path().join(home));
        cmd.arg("pull");
        let mut typed = String::from("$ ch02 pull");
        if let Some(platform) = platform {
            cmd.args(["--platform", platform]);
            typed += &format!(" --platform {platform}");
        }
        let out = cmd.arg(&image).output().expect("run");
        assert_eq!(out.status.success(), home != "pi", "{}", text(&out.stderr));
        shown += &format!(
            "{typed} \\\n    {image}\n{}{}",
            text(&out.stdout),
            text(&out.stderr)
        );
    }
    check("pull_multi_platform", &shown);
    // Each pulled the manifest the index names for its platform.
    let pulled = |home: &str| -> String {
        let out = ch02(&work.path().join(home))
            .args(["inspect", &image])
            .output()
            .expect("run");
        let v: serde_json::Value =
            serde_json::from_slice(&out.stdout).expect("json");
        v["config"]["architecture"]
            .as_str()
            .unwrap_or("")
            .to_string()
    };
    // What was pulled for this machine runs.
    if require(Privilege::Root) {
        ch02(&work.path().join("server"))
            .args(["run", &image, "--", "sh", "-c", "echo pulled and ran"])
            .assert()
            .success()
            .stdout("pulled and ran\n");
    }
    assert_eq!(pulled("arm"), "arm64");
    assert_eq!(pulled("server"), lab02::client::pull::host_platform().1);
    registry.shutdown().expect("shutdown");
}

/// A CA and a certificate for 127.0.0.1 signed by it, as PEM files in
/// `dir`: (ca.crt, registry.crt, registry.key).
fn make_ca(
    dir: &Path,
) -> (std::path::PathBuf, std::path::PathBuf, std::path::PathBuf) {
    use rcgen::{
        BasicConstraints, CertificateParams, DnType, IsCa, Issuer, KeyPair,
    };
    let ca_key = KeyPair::generate().expect("key");
    let mut ca = CertificateParams::new(Vec::<String>::new()).expect("params");
    ca.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    ca.distinguished_name
        .push(DnType::CommonName, "kubelings test CA");
    let ca_cert = ca.self_signed(&ca_key).expect("CA");
    let issuer = Issuer::new(ca, ca_key);
    let key = KeyPair::generate().expect("key");
    let leaf =
        CertificateParams::new(vec!["127.0.0.1".to_string()]).expect("params");
    let cert = leaf.signed_by(&key, &issuer).expect("sign");
    let paths = (
        dir.join("ca.crt"),
        dir.join("registry.crt"),
        dir.join("registry.key"),
    );
    std::fs::write(&paths.0, ca_cert.pem()).expect("write");
    std::fs::write(&paths.1, cert.pem()).expect("write");
    std::fs::write(&paths.2, key.serialize_pem()).expect("write");
    paths
}

#[test]
fn a_registry_over_https_with_bearer_tokens() {
    let work = tempfile::tempdir().expect("tempdir");
    let (ca, cert, key) = make_ca(work.path());
    let users = work.path().join("htpasswd");
    let hash = bcrypt::hash(PASSWORD, 4).expect("bcrypt");
    std::fs::write(&users, format!("{USER}:{hash}\n")).expect("htpasswd");
    let (cert, key) = (cert.display().to_string(), key.display().to_string());
    let registry = Registry::start_with(
        &work.path().join("registry-home"),
        &users,
        &["--tls-cert", &cert, "--tls-key", &key, "--auth", "bearer"],
    );
    let host = registry.host.clone();
    let laptop = work.path().join("laptop");
    let ca = ca.display().to_string();
    ch02(&laptop).arg("base").assert().success();
    ch02(&laptop)
        .args([
            "login",
            &host,
            "--username",
            USER,
            "--password-stdin",
            "--ca-file",
            &ca,
        ])
        .write_stdin(format!("{PASSWORD}\n"))
        .assert()
        .success();
    let target = format!("{host}/kubelings/base:v1");
    ch02(&laptop)
        .args(["tag", "kubelings/base:latest", &target])
        .assert()
        .success();
    ch02(&laptop)
        .args(["push", &target, "--ca-file", &ca])
        .assert()
        .success();

    // Another computer: without the CA the certificate is refused, and
    // the message says where the CA goes; with it in certs.d, the pull works.
    let server = work.path().join("server");
    let out = ch02(&server).args(["pull", &target]).output().expect("run");
    assert_eq!(out.status.code(), Some(1));
    let refusal = text(&out.stderr);
    assert_fits(&refusal);
    assert!(
        refusal.contains("unknown certificate authority"),
        "{refusal}"
    );
    assert!(refusal.contains("certs.d"), "{refusal}");
    let certs = server.join("certs.d").join(&host);
    std::fs::create_dir_all(&certs).expect("certs.d");
    std::fs::copy(&ca, certs.join("ca.crt")).expect("copy the CA");
    let out = ch02(&server).args(["pull", &target]).output().expect("run");
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(text(&out.stdout).starts_with(&format!("pulled {target}")));
}
