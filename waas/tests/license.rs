//! One license for everything published from this repository: the `LICENSE` file at the root
//! is the Apache License 2.0, and every crate, npm package and the Helm chart say so.

use std::path::{Path, PathBuf};

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("workspace root")
        .to_path_buf()
}

fn read(path: &str) -> String {
    std::fs::read_to_string(root().join(path)).unwrap_or_else(|e| panic!("read {path}: {e}"))
}

#[test]
fn license_file_is_the_apache_2_text() {
    let text = read("LICENSE");
    let head: Vec<&str> = text.lines().take(2).map(str::trim).collect();
    assert_eq!(head, ["Apache License", "Version 2.0, January 2004"]);
    assert!(
        text.contains("END OF TERMS AND CONDITIONS"),
        "the whole text"
    );
    assert!(text.contains("APPENDIX: How to apply the Apache License to your work."));
}

#[test]
fn every_package_says_apache_2() {
    let workspace: toml::Table = read("Cargo.toml").parse().expect("Cargo.toml");
    assert_eq!(
        workspace["workspace"]["package"]["license"].as_str(),
        Some("Apache-2.0"),
        "[workspace.package] license"
    );
    for member in workspace["workspace"]["members"]
        .as_array()
        .expect("members")
        .iter()
        .filter_map(|m| m.as_str())
        .chain(["fuzz"])
    {
        let manifest: toml::Table = read(&format!("{member}/Cargo.toml"))
            .parse()
            .expect("member manifest");
        let license = &manifest["package"]["license"];
        let ok = license.as_str() == Some("Apache-2.0")
            || license
                .as_table()
                .and_then(|t| t.get("workspace"))
                .and_then(|w| w.as_bool())
                == Some(true);
        assert!(ok, "{member}/Cargo.toml: license is {license:?}");
    }
    for package in [
        "sdk/js/package.json",
        "compat/pusher/package.json",
        "dashboard-tests/package.json",
        "loadtest/peers/socketio/package.json",
    ] {
        let text = read(package);
        assert!(
            text.contains(r#""license": "Apache-2.0""#),
            "{package} must say \"license\": \"Apache-2.0\""
        );
    }
    let lock = read("sdk/js/package-lock.json");
    let root_entry = lock.split("\"dependencies\"").next().unwrap_or_default();
    let root_entry = root_entry
        .split("\"devDependencies\"")
        .next()
        .unwrap_or_default();
    assert!(
        root_entry.contains(r#""license": "Apache-2.0""#),
        "sdk/js/package-lock.json's own entry"
    );
    let chart = read("helm/waas/Chart.yaml");
    assert!(
        chart.contains("licenses: Apache-2.0"),
        "helm/waas/Chart.yaml's artifacthub.io/licenses annotation"
    );
}
