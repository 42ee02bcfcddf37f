//! The container recipe without a container engine: every waas command, flag and `WAAS_*`
//! variable of deploy/compose.yaml is one the binary knows (its `--help`), the Dockerfile runs
//! the binary as a non-root user with a healthcheck it has, and the compose file's ports,
//! drain and start order fit the image.

mod deploy_common;

use deploy_common::*;
use serde_json::Value;
use std::process::Command;

const WAAS: &str = env!("CARGO_BIN_EXE_waas");

fn help(args: &[&str]) -> String {
    run(Command::new(WAAS).args(args).arg("--help"))
}

fn compose() -> Value {
    let text = std::fs::read_to_string(root().join("deploy/compose.yaml")).expect("compose.yaml");
    yaml_docs(&text).into_iter().next().expect("one document")
}

/// The waas arguments of a `["CMD", "/usr/local/bin/waas", ...]` healthcheck.
fn healthcheck_args(service: &Value) -> Option<Vec<String>> {
    let test = service["healthcheck"]["test"].as_array()?;
    let words: Vec<String> = test
        .iter()
        .filter_map(|w| w.as_str().map(String::from))
        .collect();
    (words.first().map(String::as_str) == Some("CMD")
        && words.get(1).map(String::as_str) == Some("/usr/local/bin/waas"))
    .then(|| words[2..].to_vec())
}

fn seconds(duration: &str) -> u64 {
    duration
        .strip_suffix('s')
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("duration {duration:?} in seconds"))
}

#[test]
fn dockerfile_runs_waas_as_non_root_with_a_healthcheck_it_has() {
    let text = std::fs::read_to_string(root().join("Dockerfile")).expect("Dockerfile");
    assert!(text.contains("cargo build --release --locked -p waas"));
    let last_stage = text.rsplit("\nFROM ").next().expect("stages");
    assert!(
        last_stage.starts_with("gcr.io/distroless/cc-debian12:nonroot"),
        "{last_stage}"
    );
    let line = |prefix: &str| {
        last_stage
            .lines()
            .find(|l| l.starts_with(prefix))
            .unwrap_or_else(|| panic!("no {prefix} line"))
            .to_string()
    };
    assert_eq!(line("USER "), "USER 65532:65532");
    assert_eq!(line("ENTRYPOINT "), r#"ENTRYPOINT ["/usr/local/bin/waas"]"#);
    assert_eq!(line("ENV WAAS_LISTEN="), "ENV WAAS_LISTEN=0.0.0.0:8080");
    let cmd = last_stage
        .split("CMD [\"/usr/local/bin/waas\", ")
        .nth(1)
        .expect("HEALTHCHECK CMD runs waas");
    assert!(cmd.starts_with("\"healthcheck\"]"), "{cmd}");
    assert!(help(&["healthcheck"]).contains("--path"));
}

#[test]
fn compose_uses_only_commands_flags_and_variables_the_binary_has() {
    let compose = compose();
    let services = compose["services"].as_object().expect("services");
    let mut roles = Vec::new();
    for (name, s) in services {
        if !s["image"].as_str().unwrap_or_default().contains("waas") {
            continue;
        }
        let command: Vec<&str> = s["command"]
            .as_array()
            .unwrap_or_else(|| panic!("{name}: command as a list"))
            .iter()
            .map(|w| w.as_str().expect("word"))
            .collect();
        let text = help(&command[..1]);
        for flag in command[1..].iter().filter(|w| w.starts_with("--")) {
            assert!(
                text.contains(flag),
                "{name}: `waas {}` has no {flag}",
                command[0]
            );
        }
        for var in s["environment"]
            .as_object()
            .into_iter()
            .flatten()
            .map(|(k, _)| k)
        {
            // `[env: NAME=value]`, or `[env: NAME]` for the secret ones.
            assert!(
                text.contains(&format!("[env: {var}=")) || text.contains(&format!("[env: {var}]")),
                "{name}: `waas {}` reads no {var}",
                command[0]
            );
        }
        if let Some(args) = healthcheck_args(s) {
            let text = help(&[args[0].as_str()]);
            for flag in args.iter().filter(|w| w.starts_with("--")) {
                assert!(
                    text.contains(flag.as_str()),
                    "{name}: healthcheck flag {flag}"
                );
            }
            let path = args
                .iter()
                .skip_while(|a| *a != "--path")
                .nth(1)
                .expect("--path");
            let want = if command[0] == "gateway" {
                "/readyz"
            } else {
                "/healthz"
            };
            assert_eq!(path, want, "{name}");
        }
        // Published ports reach what the image listens on (WAAS_LISTEN=0.0.0.0:8080).
        for port in s["ports"].as_array().into_iter().flatten() {
            let port = port.as_str().expect("port");
            assert!(port.ends_with(":8080"), "{name}: {port}");
        }
        roles.push((name.clone(), command[0].to_string(), s.clone()));
    }
    let count = |role: &str| roles.iter().filter(|(_, r, _)| r == role).count();
    assert_eq!(count("gateway"), 2);
    assert_eq!(count("control-plane"), 1);
    assert_eq!(count("migrate"), 1);
    for (name, role, s) in &roles {
        match role.as_str() {
            "control-plane" => assert_eq!(
                s["depends_on"]["migrate"]["condition"], "service_completed_successfully",
                "{name} starts after the migrations"
            ),
            "gateway" => {
                let grace_ms: u64 = s["environment"]["WAAS_SHUTDOWN_GRACE_MS"]
                    .as_str()
                    .expect("WAAS_SHUTDOWN_GRACE_MS")
                    .parse()
                    .expect("number");
                let stop = seconds(s["stop_grace_period"].as_str().expect("stop_grace_period"));
                assert!(
                    stop * 1000 > grace_ms,
                    "{name}: Docker kills before the drain ends"
                );
                assert!(
                    s["ulimits"]["nofile"]["soft"].as_u64().unwrap_or(0) >= 65536,
                    "{name}"
                );
            }
            _ => {}
        }
        assert_eq!(s["read_only"], true, "{name}");
    }
    // NATS with JetStream, its store on a volume.
    let nats = &services["nats"];
    let args: Vec<&str> = nats["command"]
        .as_array()
        .expect("command")
        .iter()
        .filter_map(|w| w.as_str())
        .collect();
    assert!(args.contains(&"-js"));
    let store = args
        .iter()
        .skip_while(|a| **a != "-sd")
        .nth(1)
        .expect("-sd");
    assert!(
        nats["volumes"]
            .as_array()
            .expect("volumes")
            .iter()
            .any(|v| v
                .as_str()
                .is_some_and(|v| v.ends_with(&format!(":{store}")))),
        "JetStream's store is on a volume"
    );
}

/// Errors of the Compose JSON schema (from deploy/tools/install.sh) for `compose`, one a line.
fn schema_errors(compose: &Value) -> String {
    let dir = tempfile::tempdir().expect("tempdir");
    let file = dir.path().join("compose.json");
    std::fs::write(&file, compose.to_string()).expect("write");
    run(python().args([
        "-c",
        "import json, sys, jsonschema\n\
         schema = json.load(open(sys.argv[1]))\n\
         doc = json.load(open(sys.argv[2]))\n\
         for e in jsonschema.Draft7Validator(schema).iter_errors(doc):\n\
         \x20   print(list(e.path), e.message)",
        tools().join("compose-spec.json").to_str().expect("path"),
        file.to_str().expect("path"),
    ]))
}

#[test]
fn compose_file_fits_the_compose_schema() {
    let compose = compose();
    let errors = schema_errors(&compose);
    assert!(errors.is_empty(), "deploy/compose.yaml:\n{errors}");
    // The schema bites: a misspelt service key fails it.
    let mut broken = compose.clone();
    broken["services"]["gateway-1"]["stop_grace_perod"] = "15s".into();
    assert!(schema_errors(&broken).contains("stop_grace_perod"));
}
