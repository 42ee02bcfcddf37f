//! The Helm chart (helm/waas), checked with the real tools: `helm lint --strict`, `helm
//! template` with the default and the multi-region values, every rendered object validated
//! against the Kubernetes schemas, yamllint, the README's values table, and what the objects
//! say about draining, probes, security and secrets. The smoke test (chart_smoke.rs) then runs
//! what the chart renders.

mod deploy_common;

use deploy_common::*;
use serde_json::{json, Value};

/// Values every install must give (the chart refuses to render without them).
fn required() -> Value {
    json!({
        "operatorToken": "0123456789abcdef0123456789abcdef",
        "database": {"url": "postgres://waas:pw@postgres:5432/waas"},
    })
}

/// `helm template` with `values` (a JSON file: JSON is YAML) after `files` (-f, relative to
/// the root); returns the rendered stream.
fn template(files: &[&str], values: &Value) -> String {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("values.json");
    std::fs::write(&path, values.to_string()).expect("write values");
    let mut cmd = helm();
    cmd.args(["template", "r1", "helm/waas", "--namespace", "ns1"]);
    for f in files {
        cmd.args(["-f", f]);
    }
    cmd.args(["-f", path.to_str().expect("path")]);
    run(&mut cmd)
}

fn template_failing(values: &Value) -> String {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("values.json");
    std::fs::write(&path, values.to_string()).expect("write values");
    run_failing(helm().args([
        "template",
        "r1",
        "helm/waas",
        "-f",
        path.to_str().expect("path"),
    ]))
}

fn merged(mut base: Value, extra: Value) -> Value {
    fn merge(a: &mut Value, b: Value) {
        match (a, b) {
            (Value::Object(a), Value::Object(b)) => {
                for (k, v) in b {
                    merge(a.entry(k).or_insert(Value::Null), v);
                }
            }
            (a, b) => *a = b,
        }
    }
    merge(&mut base, extra);
    base
}

fn env_of(container: &Value) -> Vec<(String, Value)> {
    container["env"]
        .as_array()
        .map(|e| {
            e.iter()
                .map(|v| {
                    (
                        v["name"].as_str().unwrap_or_default().to_string(),
                        v.clone(),
                    )
                })
                .collect()
        })
        .unwrap_or_default()
}

fn env_value(container: &Value, name: &str) -> Option<String> {
    env_of(container)
        .into_iter()
        .find(|(n, _)| n == name)
        .and_then(|(_, v)| v["value"].as_str().map(String::from))
}

#[test]
fn lint_is_clean_in_strict_mode() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("values.json");
    std::fs::write(&path, required().to_string()).expect("write values");
    for extra in [
        vec![],
        vec!["-f", "helm/waas/values-multiregion-example.yaml"],
        vec!["--set", "bundledNats.enabled=true"],
    ] {
        let mut cmd = helm();
        cmd.args(["lint", "--strict", "helm/waas"])
            .args(&extra)
            .args(["-f", path.to_str().expect("path")]);
        let out = run(&mut cmd);
        assert!(out.contains("0 chart(s) failed"), "{out}");
    }
}

#[test]
fn default_render_is_valid_and_drains_safely() {
    let yaml = template(&[], &required());
    let report = validate("default.yaml", &yaml);
    assert!(!report.contains("ERROR"), "{report}");
    yamllint_text("default.yaml", &yaml);
    let docs = yaml_docs(&yaml);
    let kinds: std::collections::BTreeSet<_> =
        docs.iter().filter_map(|d| d["kind"].as_str()).collect();
    for kind in [
        "Deployment",
        "Service",
        "HorizontalPodAutoscaler",
        "PodDisruptionBudget",
        "Secret",
        "Job",
        "ConfigMap",
    ] {
        assert!(kinds.contains(kind), "no {kind} in {kinds:?}");
    }
    assert!(
        !kinds.contains("ServiceMonitor"),
        "ServiceMonitor is opt-in"
    );

    // The gateway's drain: preStop sleep, then SIGTERM and WAAS_SHUTDOWN_GRACE_MS, within the
    // grace period Kubernetes waits before SIGKILL.
    let gw = object(&docs, "Deployment", "-gateway");
    let pod = &gw["spec"]["template"]["spec"];
    let c = &pod["containers"][0];
    let pre_stop = c["lifecycle"]["preStop"]["sleep"]["seconds"]
        .as_u64()
        .expect("preStop sleep");
    let grace_ms: u64 = env_value(c, "WAAS_SHUTDOWN_GRACE_MS")
        .expect("WAAS_SHUTDOWN_GRACE_MS")
        .parse()
        .expect("number");
    let termination = pod["terminationGracePeriodSeconds"]
        .as_u64()
        .expect("grace");
    assert!(
        termination * 1000 > pre_stop * 1000 + grace_ms,
        "terminationGracePeriodSeconds {termination} must exceed preStop {pre_stop} s + {grace_ms} ms"
    );
    assert_eq!(c["readinessProbe"]["httpGet"]["path"], "/readyz");
    assert_eq!(c["livenessProbe"]["httpGet"]["path"], "/healthz");
    assert!(
        gw["spec"].get("replicas").is_none(),
        "the HPA owns replicas"
    );
    assert_eq!(gw["spec"]["strategy"]["rollingUpdate"]["maxUnavailable"], 0);

    // Every pod: non-root, read-only, no privilege escalation, no API token.
    let jobs = of_kind(&docs, "Job");
    let deployments = of_kind(&docs, "Deployment");
    assert_eq!(deployments.len(), 2);
    for owner in deployments.iter().chain(&jobs) {
        let pod = &owner["spec"]["template"]["spec"];
        let name = &owner["metadata"]["name"];
        assert_eq!(pod["securityContext"]["runAsNonRoot"], true, "{name}");
        assert_eq!(pod["automountServiceAccountToken"], false, "{name}");
        for c in pod["containers"].as_array().expect("containers") {
            let sc = &c["securityContext"];
            assert_eq!(sc["readOnlyRootFilesystem"], true, "{name}");
            assert_eq!(sc["allowPrivilegeEscalation"], false, "{name}");
            assert_eq!(sc["capabilities"]["drop"], json!(["ALL"]), "{name}");
            assert!(c["resources"]["requests"].is_object(), "{name}: requests");
            // Secrets only through the Secret, never as literal values.
            for (var, v) in env_of(c) {
                if [
                    "WAAS_DATABASE_URL",
                    "WAAS_OPERATOR_TOKEN",
                    "WAAS_NATS_PASSWORD",
                ]
                .contains(&var.as_str())
                {
                    assert!(v.get("value").is_none(), "{name}: {var} as a literal");
                    assert!(v["valueFrom"]["secretKeyRef"].is_object(), "{name}: {var}");
                }
            }
        }
        if let Some(spread) = pod["topologySpreadConstraints"].as_array() {
            let labels = &owner["spec"]["template"]["metadata"]["labels"];
            for s in spread {
                for (k, v) in s["labelSelector"]["matchLabels"]
                    .as_object()
                    .expect("labels")
                {
                    assert_eq!(&labels[k], v, "{name}: spread selector matches its pods");
                }
            }
        }
    }

    // The migration Job runs before anything else of an install or upgrade, after the Secret.
    let job = object(&docs, "Job", "-migrate");
    let hooks = &job["metadata"]["annotations"];
    assert_eq!(hooks["helm.sh/hook"], "pre-install,pre-upgrade");
    assert_eq!(
        job["spec"]["template"]["spec"]["containers"][0]["args"],
        json!(["migrate"])
    );
    let secret = object(&docs, "Secret", "-secrets");
    let weight = |o: &Value| -> i64 {
        o["metadata"]["annotations"]["helm.sh/hook-weight"]
            .as_str()
            .and_then(|w| w.parse().ok())
            .expect("hook weight")
    };
    assert!(
        weight(secret) < weight(job),
        "the Secret exists before the Job runs"
    );

    // The Services, HPA and PDB all select the gateway pods.
    let gw_labels = &gw["spec"]["template"]["metadata"]["labels"];
    let selects_gateways = |selector: &Value| {
        selector
            .as_object()
            .expect("selector")
            .iter()
            .all(|(k, v)| &gw_labels[k] == v)
    };
    let svc = object(&docs, "Service", "-gateway");
    assert!(selects_gateways(&svc["spec"]["selector"]));
    assert_eq!(
        svc["metadata"]["annotations"]
            ["service.beta.kubernetes.io/aws-load-balancer-connection-idle-timeout"],
        "60"
    );
    assert!(selects_gateways(
        &object(&docs, "PodDisruptionBudget", "-gateway")["spec"]["selector"]["matchLabels"]
    ));
    let hpa = object(&docs, "HorizontalPodAutoscaler", "-gateway");
    assert_eq!(
        hpa["spec"]["scaleTargetRef"]["name"],
        gw["metadata"]["name"]
    );

    // Every dashboard of the chart, labelled for Grafana's sidecar.
    let cm = object(&docs, "ConfigMap", "-dashboards");
    assert_eq!(cm["metadata"]["labels"]["grafana_dashboard"], "1");
    let files: Vec<String> = std::fs::read_dir(root().join("helm/waas/dashboards"))
        .expect("dashboards/")
        .filter_map(|e| e.ok()?.file_name().into_string().ok())
        .filter(|n| n.ends_with(".json"))
        .collect();
    assert!(!files.is_empty());
    for f in &files {
        let text = cm["data"][f]
            .as_str()
            .unwrap_or_else(|| panic!("{f} missing"));
        serde_json::from_str::<Value>(text).unwrap_or_else(|e| panic!("{f}: {e}"));
    }
}

#[test]
fn multiregion_render_labels_the_region_and_has_no_control_plane() {
    let yaml = template(&["helm/waas/values-multiregion-example.yaml"], &json!({}));
    let report = validate("multiregion.yaml", &yaml);
    assert!(!report.contains("ERROR"), "{report}");
    yamllint_text("multiregion.yaml", &yaml);
    let docs = yaml_docs(&yaml);
    let gw = object(&docs, "Deployment", "-gateway");
    assert_eq!(
        gw["spec"]["template"]["metadata"]["labels"]["waas.dev/region"],
        "us-east-1"
    );
    let c = &gw["spec"]["template"]["spec"]["containers"][0];
    assert_eq!(
        env_value(c, "WAAS_NATS").as_deref(),
        Some("nats://nats.us-east-1.internal:4222")
    );
    assert_eq!(
        env_value(c, "WAAS_NATS_TLS_REQUIRED").as_deref(),
        Some("true")
    );
    assert_eq!(of_kind(&docs, "Deployment").len(), 1, "gateways only");
    assert!(of_kind(&docs, "Job").is_empty(), "no migrations");
    assert!(
        of_kind(&docs, "Secret").is_empty(),
        "existingSecret is used"
    );
    // Every process labels its metrics with the region itself.
    assert_eq!(env_value(c, "WAAS_REGION").as_deref(), Some("us-east-1"));
    // Every region's URL, for GET /v1/regions, as the gateway's --regions takes them.
    assert_eq!(
        env_value(c, "WAAS_REGIONS").as_deref(),
        Some(
            "eu-west-1=wss://eu-west-1.waas.example.com,us-east-1=wss://us-east-1.waas.example.com"
        )
    );
    // The ServiceMonitor (no schema in kubernetes-validate: checked here) scrapes a port the
    // selected Services have, and adds no second `region` label.
    let sm = object(&docs, "ServiceMonitor", "r1-waas");
    let endpoint = &sm["spec"]["endpoints"][0];
    assert_eq!(endpoint["path"], "/metrics");
    assert!(
        !endpoint["relabelings"]
            .as_array()
            .expect("relabelings")
            .iter()
            .any(|r| r["targetLabel"] == "region"),
        "{endpoint}"
    );
    let wanted = sm["spec"]["selector"]["matchLabels"]
        .as_object()
        .expect("selector");
    let scraped: Vec<_> = of_kind(&docs, "Service")
        .into_iter()
        .filter(|s| wanted.iter().all(|(k, v)| &s["metadata"]["labels"][k] == v))
        .collect();
    assert!(!scraped.is_empty(), "the ServiceMonitor selects no Service");
    for s in scraped {
        assert!(
            s["spec"]["ports"]
                .as_array()
                .expect("ports")
                .iter()
                .any(|p| p["name"] == endpoint["port"]),
            "{}: no port {}",
            s["metadata"]["name"],
            endpoint["port"]
        );
    }
}

/// `bundledNats.enabled` renders the official NATS chart (vendored in helm/waas/charts/nats)
/// into the release, valid for every Kubernetes version checked, and points every component
/// at it; off (the default), nothing of it is rendered.
#[test]
fn bundled_nats_is_the_official_chart_and_every_component_uses_it() {
    let yaml = template(
        &[],
        &merged(required(), json!({"bundledNats": {"enabled": true}})),
    );
    let report = validate("bundled-nats.yaml", &yaml);
    assert!(!report.contains("ERROR"), "{report}");
    let docs = yaml_docs(&yaml);
    let nats = object(&docs, "StatefulSet", "r1-nats");
    assert_eq!(nats["spec"]["replicas"], 3);
    assert_eq!(
        nats["spec"]["volumeClaimTemplates"][0]["spec"]["resources"]["requests"]["storage"], "10Gi",
        "JetStream on a persistent volume"
    );
    let config = object(&docs, "ConfigMap", "r1-nats-config");
    let conf = config["data"]["nats.conf"].as_str().expect("nats.conf");
    assert!(
        conf.contains("jetstream") && conf.contains("\"max_payload\": 1048576"),
        "{conf}"
    );
    let service = object(&docs, "Service", "r1-nats");
    assert!(
        service["spec"]["ports"]
            .as_array()
            .expect("ports")
            .iter()
            .any(|p| p["port"] == 4222),
        "{service}"
    );
    let deployments = of_kind(&docs, "Deployment");
    assert_eq!(deployments.len(), 2, "gateway and control-plane only");
    for d in deployments {
        let c = &d["spec"]["template"]["spec"]["containers"][0];
        assert_eq!(
            env_value(c, "WAAS_NATS").as_deref(),
            Some("nats://r1-nats:4222"),
            "{}",
            d["metadata"]["name"]
        );
    }

    let docs = yaml_docs(&template(&[], &required()));
    assert!(of_kind(&docs, "StatefulSet").is_empty(), "NATS is external");
    // The example for a NATS release of its own holds the same settings.
    let values = yaml_docs(&std::fs::read_to_string(root().join("helm/waas/values.yaml")).unwrap());
    let example = yaml_docs(
        &std::fs::read_to_string(root().join("helm/waas/examples/nats-values.yaml")).unwrap(),
    );
    for key in ["config", "podTemplate"] {
        assert_eq!(values[0]["bundledNats"][key], example[0][key], "{key}");
    }
}

#[test]
fn bad_values_are_refused_with_a_clear_error() {
    let out = template_failing(&json!({"database": {"url": "postgres://x@y/z"}}));
    assert!(out.contains("operatorToken is required"), "{out}");
    let out = template_failing(&merged(
        required(),
        json!({"operatorToken": "dev-operator-token"}),
    ));
    assert!(out.contains("operatorToken"), "{out}");
    let out = template_failing(&merged(
        required(),
        json!({"env": {"WAAS_OPERATOR_TOKEN": "leaked"}}),
    ));
    assert!(out.contains("WAAS_OPERATOR_TOKEN"), "{out}");
    let out = template_failing(&merged(required(), json!({"gateway": {"replica": 3}})));
    assert!(out.contains("replica"), "{out}");
    let out = template_failing(&merged(required(), json!({"env": {"PATH": "/tmp"}})));
    assert!(out.contains("PATH"), "{out}");
    let out = template_failing(&merged(
        required(),
        json!({"nats": {"tls": {"enabled": true}}}),
    ));
    assert!(out.contains("nats.tls.secretName is required"), "{out}");
    // A region URL the gateway's list could not carry (a comma), or not a WebSocket one.
    for url in ["wss://a.example.com/x,y", "https://a.example.com"] {
        let out = template_failing(&merged(
            required(),
            json!({"regions": [{"name": "a", "url": url}]}),
        ));
        assert!(out.contains("regions"), "{url}: {out}");
    }
    // The balancer's idle timeout must sit between the server's pings and its keep-alive.
    let out = template_failing(&merged(
        required(),
        json!({"gateway": {"service": {"idleTimeoutSeconds": 120}}}),
    ));
    assert!(
        out.contains("idleTimeoutSeconds (120 s) must be above"),
        "{out}"
    );
    let raised = merged(
        required(),
        json!({"gateway": {"service": {"idleTimeoutSeconds": 120},
                           "env": {"WAAS_HTTP_KEEPALIVE_TIMEOUT_MS": "150000"}}}),
    );
    template(&[], &raised);
}

#[test]
fn nats_credentials_and_tls_reach_the_pods_from_the_secret() {
    let yaml = template(
        &[],
        &merged(
            required(),
            json!({"nats": {
                "auth": {"user": "waas", "password": "pw", "credsFile": true, "creds": "-----BEGIN NATS USER JWT-----"},
                "tls": {"enabled": true, "secretName": "nats-tls", "clientCert": true}
            }}),
        ),
    );
    let report = validate("nats.yaml", &yaml);
    assert!(!report.contains("ERROR"), "{report}");
    let docs = yaml_docs(&yaml);
    let secret = object(&docs, "Secret", "-secrets");
    assert_eq!(secret["stringData"]["nats-password"], "pw");
    for suffix in ["-gateway", "-control-plane"] {
        let d = object(&docs, "Deployment", suffix);
        let pod = &d["spec"]["template"]["spec"];
        let c = &pod["containers"][0];
        assert_eq!(env_value(c, "WAAS_NATS_USER").as_deref(), Some("waas"));
        let pw = env_of(c)
            .into_iter()
            .find(|(n, _)| n == "WAAS_NATS_PASSWORD")
            .expect("WAAS_NATS_PASSWORD")
            .1;
        assert_eq!(pw["valueFrom"]["secretKeyRef"]["key"], "nats-password");
        let creds = env_value(c, "WAAS_NATS_CREDS_FILE").expect("creds file");
        let ca = env_value(c, "WAAS_NATS_TLS_CA_FILE").expect("CA file");
        let mounts = c["volumeMounts"].as_array().expect("mounts");
        for file in [&creds, &ca] {
            assert!(
                mounts
                    .iter()
                    .any(|m| file.starts_with(m["mountPath"].as_str().unwrap_or("-"))),
                "{suffix}: {file} is not on a mounted volume"
            );
        }
    }
}

#[test]
fn deployment_yaml_is_lint_clean() {
    let mut files = vec![
        ".yamllint.yaml".to_string(),
        "deploy/compose.yaml".into(),
        "helm/waas/Chart.yaml".into(),
        "helm/waas/values.yaml".into(),
        "helm/waas/values-multiregion-example.yaml".into(),
        "helm/waas/examples/nats-values.yaml".into(),
    ];
    for dir in ["k8s/base", "k8s/overlays/example"] {
        for e in std::fs::read_dir(root().join(dir)).expect("k8s dir") {
            let name = e.expect("entry").file_name().into_string().expect("name");
            if name.ends_with(".yaml") {
                files.push(format!("{dir}/{name}"));
            }
        }
    }
    let refs: Vec<&str> = files.iter().map(String::as_str).collect();
    yamllint(&refs);
    // The lint bites: a duplicate key and trailing spaces fail with this configuration.
    let dir = tempfile::tempdir().expect("tempdir");
    let bad = dir.path().join("bad.yaml");
    std::fs::write(&bad, "a: 1\na: 2 \n").expect("write");
    let out = run_failing(python().args([
        "-m",
        "yamllint",
        "-c",
        ".yamllint.yaml",
        bad.to_str().expect("path"),
    ]));
    assert!(
        out.contains("duplication of key") && out.contains("trailing spaces"),
        "{out}"
    );
}

/// The validation bites: the chart's own output with one misspelt field fails it.
#[test]
fn the_validator_rejects_a_broken_object() {
    let yaml =
        template(&[], &required()).replacen("revisionHistoryLimit:", "revisionHistoryLimits:", 1);
    let dir = tempfile::tempdir().expect("tempdir");
    let file = dir.path().join("broken.yaml");
    std::fs::write(&file, yaml).expect("write");
    let out = run_failing(python().args([
        "-m",
        "kubernetes_validate",
        "--strict",
        "-k",
        KUBERNETES_VERSION,
        file.to_str().expect("path"),
    ]));
    assert!(
        out.contains("'revisionHistoryLimits' was unexpected"),
        "{out}"
    );
}

#[test]
fn readme_lists_every_value() {
    run(python().args(["deploy/chart-readme.py", "--check"]));
}

/// NOTES.txt, as `helm install` prints it: how to reach the service and mint a first token,
/// with commands and flags the `waas` binary has.
#[test]
fn notes_say_how_to_reach_the_service_and_mint_a_token() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("values.json");
    std::fs::write(&path, required().to_string()).expect("write values");
    let out = run(helm().args([
        "install",
        "r1",
        "helm/waas",
        "--dry-run=client",
        "--namespace",
        "ns1",
        "-f",
        path.to_str().expect("path"),
    ]));
    let notes = out.split("NOTES:").nth(1).expect("NOTES");
    assert!(
        notes.contains("port-forward service/r1-waas-gateway 8080:80"),
        "{notes}"
    );
    assert!(
        notes.contains("port-forward service/r1-waas-control-plane 9000:8080"),
        "{notes}"
    );
    assert!(notes.contains("get secret r1-waas-secrets"), "{notes}");
    let waas = env!("CARGO_BIN_EXE_waas");
    for line in notes
        .lines()
        .map(str::trim)
        .filter(|l| l.starts_with("waas "))
    {
        let words: Vec<&str> = line.split_whitespace().collect();
        let help = run(std::process::Command::new(waas)
            .args(&words[1..3])
            .arg("--help"));
        let mut flags: Vec<&str> = words
            .iter()
            .copied()
            .filter(|w| w.starts_with("--"))
            .collect();
        if line.ends_with('\\') {
            // The command goes on on the next line.
            let rest = notes
                .split(line)
                .nth(1)
                .and_then(|r| r.lines().nth(1))
                .unwrap_or_default();
            flags.extend(rest.split_whitespace().filter(|w| w.starts_with("--")));
        }
        assert!(!flags.is_empty(), "{line}");
        for flag in flags {
            assert!(
                help.contains(flag),
                "`{line}`: waas {} has no {flag}",
                words[1..3].join(" ")
            );
        }
    }
    assert!(
        notes.contains("waas app create") && notes.contains("waas token issue"),
        "{notes}"
    );
}
