//! The chart's wiring, proven by running it: render helm/waas, take the migration Job, the
//! control-plane and the gateway exactly as rendered (the image's entrypoint, the container's
//! `args`, its `env` with the values of the rendered Secret, nothing of this process's
//! environment), run them as processes against the machine's NATS and PostgreSQL, and publish
//! on one gateway to a client of the other; then SIGTERM drains a gateway as Kubernetes would.
//!
//! The one change: `WAAS_LISTEN` becomes `127.0.0.1:0`, as each pod has its own address and
//! these processes share one (the rendered value is checked to be the container's port on all
//! interfaces).

mod deploy_common;

use deploy_common::*;
use serde_json::{json, Value};
use std::collections::BTreeMap;
use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::process::{Child, Command, Stdio};
use waas_test_support::nats::{shared_url, unique_prefix};
use waas_test_support::pg::PgSchema;
use waas_test_support::{tokens, RawClient};

const WAAS: &str = env!("CARGO_BIN_EXE_waas");

/// The image's ENTRYPOINT: the containers' `args` follow it.
const ENTRYPOINT: &str = "/usr/local/bin/waas";

/// A rendered container's process: its arguments and environment.
struct Process {
    args: Vec<String>,
    env: BTreeMap<String, String>,
}

/// The rendered Secret's values by key.
fn secret_values(docs: &[Value]) -> BTreeMap<String, String> {
    let secret = object(docs, "Secret", "-secrets");
    let mut values = BTreeMap::new();
    for (k, v) in secret["stringData"].as_object().into_iter().flatten() {
        values.insert(k.clone(), v.as_str().expect("string").to_string());
    }
    assert!(secret.get("data").is_none(), "stringData only");
    values
}

fn process(docs: &[Value], kind: &str, name: &str) -> Process {
    let secrets = secret_values(docs);
    let secret_name = object(docs, "Secret", "-secrets")["metadata"]["name"].clone();
    let o = object(docs, kind, name);
    let c = &o["spec"]["template"]["spec"]["containers"][0];
    assert!(
        c.get("command").is_none(),
        "{name}: runs the image's entrypoint"
    );
    let args = c["args"]
        .as_array()
        .expect("args")
        .iter()
        .map(|a| a.as_str().expect("arg").to_string())
        .collect();
    let mut env = BTreeMap::new();
    for e in c["env"].as_array().expect("env") {
        let var = e["name"].as_str().expect("name").to_string();
        let value = if let Some(v) = e["value"].as_str() {
            v.to_string()
        } else {
            let r = &e["valueFrom"]["secretKeyRef"];
            assert_eq!(
                r["name"], secret_name,
                "{name}: {var} from the chart's Secret"
            );
            match secrets.get(r["key"].as_str().expect("key")) {
                Some(v) => v.clone(),
                None if r["optional"] == true => continue,
                None => panic!("{name}: {var} names a key the Secret lacks: {r}"),
            }
        };
        assert!(
            env.insert(var.clone(), value).is_none(),
            "{name}: {var} twice"
        );
    }
    if let Some(listen) = env.get_mut("WAAS_LISTEN") {
        let port = c["ports"][0]["containerPort"]
            .as_u64()
            .expect("containerPort");
        assert_eq!(*listen, format!("0.0.0.0:{port}"), "{name}");
        *listen = "127.0.0.1:0".into();
    }
    Process { args, env }
}

impl Process {
    fn command(&self) -> Command {
        let mut cmd = Command::new(WAAS);
        cmd.env_clear().envs(&self.env).args(&self.args);
        cmd
    }

    /// Starts it and waits for `listening on`; killed on drop.
    fn serve(&self) -> Server {
        let mut child = self
            .command()
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("spawn waas");
        let mut lines = BufReader::new(child.stdout.take().expect("stdout")).lines();
        let addr = loop {
            let Some(Ok(line)) = lines.next() else {
                let status = child.wait();
                panic!("waas {:?} exited before listening: {status:?}", self.args);
            };
            if let Some(addr) = line.strip_prefix("listening on ") {
                break addr.trim().parse().expect("address");
            }
        };
        std::thread::spawn(move || lines.map_while(Result::ok).for_each(drop));
        Server { addr, child }
    }
}

struct Server {
    addr: SocketAddr,
    child: Child,
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Deletes the JetStream streams made under the test's prefix, after the processes stopped.
struct Streams(String);

impl Drop for Streams {
    fn drop(&mut self) {
        waas_test_support::jetstream::delete_streams(&shared_url(), &self.0);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_rendered_chart_runs_and_delivers() {
    let schema = PgSchema::create().await;
    let prefix = unique_prefix();
    let _streams = Streams(prefix.clone());
    let operator_token = format!("{:032x}", rand_u128());
    let values = json!({
        "subjectPrefix": prefix,
        "logLevel": "warn",
        "operatorToken": operator_token,
        "database": {"url": schema.url()},
        // The machine's NATS has no accounts: it accepts the credentials and ignores them,
        // while the processes prove they read them from the variables the chart sets.
        "nats": {"url": shared_url(), "auth": {"user": "waas", "password": "smoke-pw"}},
    });
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("values.json");
    std::fs::write(&path, values.to_string()).expect("write values");
    let rendered = tokio::task::block_in_place(|| {
        run(helm().args([
            "template",
            "smoke",
            "helm/waas",
            "-f",
            path.to_str().expect("path"),
        ]))
    });
    let docs = tokio::task::block_in_place(|| yaml_docs(&rendered));
    let dockerfile = std::fs::read_to_string(root().join("Dockerfile")).expect("Dockerfile");
    assert!(
        dockerfile.contains(&format!("ENTRYPOINT [\"{ENTRYPOINT}\"]")),
        "the image runs {ENTRYPOINT}, which this test runs as WAAS"
    );

    // The migration Job, as the pre-install hook would run it.
    let migrate = process(&docs, "Job", "-migrate");
    assert_eq!(migrate.args, ["migrate"]);
    assert_eq!(
        migrate.env.get("WAAS_DATABASE_URL").map(String::as_str),
        Some(schema.url().as_str())
    );
    let out = tokio::task::block_in_place(|| migrate.command().output().expect("run migrate"));
    assert!(out.status.success(), "migrate: {}", show(&out));
    assert!(String::from_utf8_lossy(&out.stdout).contains("migrations applied"));

    let control_plane = process(&docs, "Deployment", "-control-plane");
    assert_eq!(control_plane.env["WAAS_NATS_USER"], "waas");
    assert_eq!(control_plane.env["WAAS_NATS_PASSWORD"], "smoke-pw");
    let gateway = process(&docs, "Deployment", "-gateway");
    assert!(
        !gateway.env.contains_key("WAAS_DATABASE_URL"),
        "gateways have no database"
    );
    assert!(!gateway.env.contains_key("WAAS_OPERATOR_TOKEN"));
    let cp = tokio::task::block_in_place(|| control_plane.serve());
    let gateways: Vec<Server> =
        tokio::task::block_in_place(|| (0..2).map(|_| gateway.serve()).collect());

    let http = reqwest::Client::new();
    for gw in &gateways {
        let ready = http
            .get(format!("http://{}/readyz", gw.addr))
            .send()
            .await
            .expect("readyz");
        assert_eq!(ready.status(), 200);
    }

    // An app, through the admin API with the operator token of the rendered Secret.
    let admin = |path: &str, body: Value| {
        http.post(format!("http://{}/v1/admin/{path}", cp.addr))
            .bearer_auth(&secret_values(&docs)["operator-token"])
            .json(&body)
            .send()
    };
    let r = admin("tenants", json!({"id": "acme", "name": "Acme"}))
        .await
        .expect("tenant");
    assert_eq!(r.status(), 201);
    let r = admin("apps", json!({"id": "shop", "tenant_id": "acme"}))
        .await
        .expect("app");
    assert_eq!(r.status(), 201);
    let app: Value = r.json().await.expect("app JSON");
    let (api_key, secret) = (
        app["api_key"].as_str().expect("api_key"),
        app["jwt_secret"].as_str().expect("jwt_secret"),
    );

    // A client of the first gateway receives what the second one is given over REST.
    let token = tokens::for_app(secret, "shop", "u1", tokens::caps(&["orders"], &[]));
    let mut client = RawClient::ready(gateways[0].addr, "shop", &token).await;
    let ack = client
        .request(json!({"op": "subscribe", "id": 1, "channel": "orders"}))
        .await;
    assert_eq!(ack["op"], "ack", "{ack}");
    let r = http
        .post(format!("http://{}/v1/apps/shop/publish", gateways[1].addr))
        .bearer_auth(api_key)
        .json(&json!({"channel": "orders", "event": "created", "data": {"id": 7}}))
        .send()
        .await
        .expect("publish");
    assert_eq!(r.status(), 200);
    let m = client.next_op("message").await;
    assert_eq!(
        (&m["event"], &m["data"]),
        (&json!("created"), &json!({"id": 7})),
        "{m}"
    );

    // The drain as Kubernetes runs it (after preStop): SIGTERM, the client told to go away
    // with 1001, the process gone well within terminationGracePeriodSeconds.
    let grace_period = object(&docs, "Deployment", "-gateway")["spec"]["template"]["spec"]
        ["terminationGracePeriodSeconds"]
        .as_u64()
        .expect("terminationGracePeriodSeconds");
    let mut gateways = gateways;
    let mut first = gateways.remove(0);
    let started = std::time::Instant::now();
    let pid = first.child.id().to_string();
    let killed = Command::new("kill")
        .args(["-TERM", &pid])
        .status()
        .expect("kill");
    assert!(killed.success());
    assert_eq!(client.close_code().await, 1001);
    let status = tokio::task::block_in_place(|| first.child.wait()).expect("wait");
    assert!(status.success(), "{status:?}");
    assert!(
        started.elapsed() < std::time::Duration::from_secs(grace_period),
        "drained in {:?}, beyond the {grace_period} s Kubernetes gives",
        started.elapsed()
    );
}

fn rand_u128() -> u128 {
    use std::hash::{BuildHasher, RandomState};
    let s = RandomState::new();
    (u128::from(s.hash_one(1u8)) << 64) | u128::from(s.hash_one(2u8))
}
