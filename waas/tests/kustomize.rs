//! The plain manifests (k8s/): `kubectl kustomize` renders the base and the example overlay,
//! every object validates against the Kubernetes schemas, the overlay's patches land where they
//! mean to, and the base runs the same containers as the Helm chart's defaults.

mod deploy_common;

use deploy_common::*;
use serde_json::{json, Value};

fn kustomize(dir: &str) -> Vec<Value> {
    let yaml = run(kubectl().args(["kustomize", dir]));
    let report = validate("kustomize.yaml", &yaml);
    assert!(!report.contains("ERROR"), "{report}");
    yamllint_text("kustomize.yaml", &yaml);
    yaml_docs(&yaml)
}

fn env_names(c: &Value) -> Vec<String> {
    c["env"]
        .as_array()
        .expect("env")
        .iter()
        .map(|e| e["name"].as_str().expect("name").to_string())
        .collect()
}

#[test]
fn overlay_renders_valid_objects_with_its_patches() {
    let docs = kustomize("k8s/overlays/example");
    let secret = object(&docs, "Secret", "");
    let secret_name = secret["metadata"]["name"].as_str().expect("name");
    assert!(
        secret_name.starts_with("waas-secrets-"),
        "hashed: {secret_name}"
    );
    for d in &docs {
        if d["kind"] != "Namespace" {
            assert_eq!(
                d["metadata"]["namespace"], "waas",
                "{}",
                d["metadata"]["name"]
            );
        }
    }
    for name in ["waas-gateway", "waas-control-plane"] {
        let d = object(&docs, "Deployment", name);
        let c = &d["spec"]["template"]["spec"]["containers"][0];
        let nats = c["env"]
            .as_array()
            .expect("env")
            .iter()
            .find(|e| e["name"] == "WAAS_NATS")
            .expect("WAAS_NATS");
        assert_eq!(
            nats["value"], "nats://nats.nats.svc:4222",
            "{name}: the patch hit WAAS_NATS"
        );
        for e in c["env"].as_array().expect("env") {
            if let Some(r) = e["valueFrom"]["secretKeyRef"].as_object() {
                assert_eq!(r["name"], secret_name, "{name}: reference follows the hash");
            }
        }
    }
    let job = object(&docs, "Job", "waas-migrate");
    let c = &job["spec"]["template"]["spec"]["containers"][0];
    assert_eq!(c["args"], json!(["migrate"]));
    assert_eq!(c["image"], "ghcr.io/waas-dev/waas:0.1.0");
    assert_eq!(
        object(&docs, "HorizontalPodAutoscaler", "waas-gateway")["spec"]["maxReplicas"],
        20
    );
    let ingress = object(&docs, "Ingress", "waas-gateway");
    assert_eq!(
        ingress["spec"]["rules"][0]["http"]["paths"][0]["path"], "/v1",
        "only /v1 is public, not /metrics"
    );
}

/// What would drift between two hand-kept copies: each container's arguments, variables,
/// probes, ports, drain and security, compared with the chart rendered with its defaults.
#[test]
fn base_runs_the_same_containers_as_the_chart() {
    let base = kustomize("k8s/base");
    let dir = tempfile::tempdir().expect("tempdir");
    let values = dir.path().join("values.json");
    std::fs::write(
        &values,
        json!({"fullnameOverride": "waas", "operatorToken": "x", "database": {"url": "postgres://x@y/z"}})
            .to_string(),
    )
    .expect("write values");
    let chart = yaml_docs(&run(helm().args([
        "template",
        "waas",
        "helm/waas",
        "-f",
        values.to_str().expect("path"),
    ])));
    for (kind, name) in [
        ("Deployment", "waas-gateway"),
        ("Deployment", "waas-control-plane"),
        ("Job", "waas-migrate"),
    ] {
        let k = object(&base, kind, name);
        let h = object(&chart, kind, name);
        let (kp, hp) = (
            &k["spec"]["template"]["spec"],
            &h["spec"]["template"]["spec"],
        );
        for key in [
            "terminationGracePeriodSeconds",
            "securityContext",
            "automountServiceAccountToken",
        ] {
            assert_eq!(kp[key], hp[key], "{name}: {key}");
        }
        let (kc, hc) = (&kp["containers"][0], &hp["containers"][0]);
        assert_eq!(env_names(kc), env_names(hc), "{name}: variables");
        for key in [
            "args",
            "ports",
            "readinessProbe",
            "livenessProbe",
            "lifecycle",
            "securityContext",
            "resources",
            "image",
        ] {
            assert_eq!(kc[key], hc[key], "{name}: {key}");
        }
        for e in kc["env"].as_array().expect("env") {
            if e.get("value").is_some() {
                let same = hc["env"].as_array().expect("env").iter().any(|h| h == e);
                assert!(same, "{name}: {e} differs from the chart");
            }
        }
    }
    for name in ["waas-gateway", "waas-gateway-metrics", "waas-control-plane"] {
        let (k, h) = (
            object(&base, "Service", name),
            object(&chart, "Service", name),
        );
        assert_eq!(k["spec"]["ports"], h["spec"]["ports"], "{name}: ports");
    }
}
