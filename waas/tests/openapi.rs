//! `GET /openapi.json`: an OpenAPI 3.1 document naming exactly the routes the routers register.
//! The route list is read from the source (every `.route("path", method(...))` in core, the
//! gateway, the control-plane and the binary), so a route added without documentation fails
//! here, and so does a documented operation no router serves.

use serde_json::Value;
use std::collections::{BTreeSet, HashSet};
use std::path::{Path, PathBuf};
use syn::visit::Visit;
use waas_test_support::TestServer;

const METHODS: [&str; 8] = [
    "get", "put", "post", "delete", "options", "head", "patch", "trace",
];

/// `(METHOD, path)` of every route registered in the crates that serve HTTP.
fn routes_in_code() -> BTreeSet<(String, String)> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let mut files = Vec::new();
    for dir in ["core/src", "gateway/src", "control-plane/src", "waas/src"] {
        rust_files(&root.join(dir), &mut files);
    }
    let mut routes = Routes::default();
    for file in files {
        let src = std::fs::read_to_string(&file).unwrap();
        let ast = syn::parse_file(&src).unwrap_or_else(|e| panic!("{}: {e}", file.display()));
        routes.visit_file(&ast);
    }
    assert!(routes.0.len() > 40, "too few routes found: {:?}", routes.0);
    // The dashboard's HTML pages (docs/dashboard.md) are for browsers, not part of the API.
    routes
        .0
        .into_iter()
        .filter(|(_, path)| !path.starts_with("/dashboard"))
        .collect()
}

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            rust_files(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

#[derive(Default)]
struct Routes(BTreeSet<(String, String)>);

impl<'ast> Visit<'ast> for Routes {
    /// Unit tests serve routes of their own, which the product does not.
    fn visit_item_mod(&mut self, m: &'ast syn::ItemMod) {
        let cfg_test = m.attrs.iter().any(|a| {
            a.path().is_ident("cfg") && a.parse_args::<syn::Ident>().is_ok_and(|i| i == "test")
        });
        if !cfg_test {
            syn::visit::visit_item_mod(self, m);
        }
    }

    fn visit_expr_method_call(&mut self, call: &'ast syn::ExprMethodCall) {
        if call.method == "route" && call.args.len() == 2 {
            if let syn::Expr::Lit(syn::ExprLit {
                lit: syn::Lit::Str(path),
                ..
            }) = &call.args[0]
            {
                let methods = methods_of(&call.args[1]);
                assert!(
                    !methods.is_empty(),
                    "route {:?}: no method router recognised",
                    path.value()
                );
                for m in methods {
                    self.0.insert((m.to_uppercase(), path.value()));
                }
            }
        }
        syn::visit::visit_expr_method_call(self, call);
    }
}

/// The HTTP methods of a method router: `get(h)`, `axum::routing::delete(h)`, `post(a).get(b)`.
fn methods_of(expr: &syn::Expr) -> Vec<String> {
    match expr {
        syn::Expr::Call(call) => match &*call.func {
            syn::Expr::Path(p) => p
                .path
                .segments
                .last()
                .map(|s| s.ident.to_string())
                .filter(|m| METHODS.contains(&m.as_str()))
                .into_iter()
                .collect(),
            _ => vec![],
        },
        syn::Expr::MethodCall(call) => {
            let mut methods = methods_of(&call.receiver);
            let m = call.method.to_string();
            if METHODS.contains(&m.as_str()) {
                methods.push(m);
            }
            methods
        }
        _ => vec![],
    }
}

fn operations(doc: &Value) -> BTreeSet<(String, String)> {
    let mut ops = BTreeSet::new();
    for (path, item) in doc["paths"].as_object().expect("paths") {
        for (method, _) in item.as_object().expect("path item") {
            if METHODS.contains(&method.as_str()) {
                ops.insert((method.to_uppercase(), path.clone()));
            }
        }
    }
    ops
}

async fn fetch(server: &TestServer) -> Value {
    let r = reqwest::get(format!("{}/openapi.json", server.http_url()))
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(r.headers()["content-type"], "application/json");
    r.json().await.unwrap()
}

/// Every `$ref` in `v` points at something in `doc`.
fn check_refs(doc: &Value, v: &Value, at: &str) {
    match v {
        Value::Object(map) => {
            for (k, child) in map {
                if k == "$ref" {
                    let target = child.as_str().expect("$ref is a string");
                    let pointer = target.strip_prefix('#').expect("local $ref");
                    assert!(
                        doc.pointer(pointer).is_some(),
                        "{at}: $ref {target} resolves to nothing"
                    );
                } else {
                    check_refs(doc, child, &format!("{at}/{k}"));
                }
            }
        }
        Value::Array(items) => {
            for (i, child) in items.iter().enumerate() {
                check_refs(doc, child, &format!("{at}/{i}"));
            }
        }
        _ => {}
    }
}

/// The rules of OpenAPI 3.1 a generator could break: version, info, unique operation ids, a
/// declared required parameter for every `{name}` of a path, responses with status codes,
/// security requirements naming declared schemes, references that resolve.
fn check_document(doc: &Value) {
    let version = doc["openapi"].as_str().expect("openapi version");
    assert!(version.starts_with("3.1."), "{version}");
    assert!(doc["info"]["title"].is_string() && doc["info"]["version"].is_string());
    let schemes = doc["components"]["securitySchemes"]
        .as_object()
        .expect("security schemes");
    for name in ["api_key", "operator_token", "jwt"] {
        assert_eq!(schemes[name]["scheme"], "bearer", "{name}");
    }
    check_refs(doc, doc, "#");
    let mut ids = HashSet::new();
    for (path, item) in doc["paths"].as_object().unwrap() {
        assert!(path.starts_with('/'), "{path}");
        let templated: Vec<&str> = path
            .split('/')
            .filter_map(|s| s.strip_prefix('{')?.strip_suffix('}'))
            .collect();
        for (method, op) in item.as_object().unwrap() {
            let at = format!("{method} {path}");
            let id = op["operationId"].as_str().expect("operationId");
            assert!(ids.insert(id.to_owned()), "{at}: operationId {id} twice");
            let params = op["parameters"].as_array().cloned().unwrap_or_default();
            for name in &templated {
                assert!(
                    params
                        .iter()
                        .any(|p| p["in"] == "path" && p["name"] == *name && p["required"] == true),
                    "{at}: path parameter {name} not declared"
                );
            }
            let responses = op["responses"].as_object().expect("responses");
            assert!(!responses.is_empty(), "{at}: no responses");
            for (status, response) in responses {
                assert!(
                    status.len() == 3 && status.parse::<u16>().is_ok(),
                    "{at}: status {status}"
                );
                assert!(response["description"].is_string(), "{at} {status}");
                let first = status.as_bytes()[0];
                if first == b'4' || first == b'5' {
                    assert_eq!(
                        response["content"]["application/json"]["schema"]["$ref"],
                        "#/components/schemas/ErrorBody",
                        "{at} {status}: error answers have the error body"
                    );
                }
            }
            for requirement in op["security"].as_array().expect("security") {
                for name in requirement.as_object().unwrap().keys() {
                    assert!(schemes.contains_key(name), "{at}: scheme {name}");
                }
            }
        }
    }
}

#[tokio::test]
async fn openapi_json_documents_exactly_the_routes_of_the_code() {
    let server = TestServer::start().await;
    let doc = fetch(&server).await;
    check_document(&doc);
    let documented = operations(&doc);
    let registered = routes_in_code();
    let undocumented: Vec<_> = registered.difference(&documented).collect();
    let unserved: Vec<_> = documented.difference(&registered).collect();
    assert!(
        undocumented.is_empty(),
        "routes without documentation: {undocumented:?}"
    );
    assert!(
        unserved.is_empty(),
        "documented but not routed: {unserved:?}"
    );
}

/// `waas dev` serves both documents in one; a gateway and a control-plane serve theirs, which
/// split the paths between them (health, metrics and the document itself in both).
#[tokio::test]
async fn dev_document_is_the_gateway_and_control_plane_documents_merged() {
    let server = TestServer::start().await;
    let dev = operations(&fetch(&server).await);
    let json = |d: waas_core::http::openapi::Document| -> Value {
        serde_json::from_str(&d.to_json().unwrap()).unwrap()
    };
    let gateway = json(waas_gateway::openapi::document());
    let admin = json(waas_control_plane::admin::openapi::document());
    check_document(&gateway);
    check_document(&admin);
    let (gateway, admin) = (operations(&gateway), operations(&admin));
    assert_eq!(gateway.union(&admin).cloned().collect::<BTreeSet<_>>(), dev);
    assert!(gateway.iter().all(|(_, p)| !p.starts_with("/v1/admin/")));
    assert!(admin.iter().all(|(_, p)| !p.starts_with("/v1/apps/")));
    let shared: Vec<_> = gateway
        .intersection(&admin)
        .map(|(_, p)| p.as_str())
        .collect();
    assert_eq!(shared, ["/healthz", "/metrics", "/openapi.json"]);
}

/// axum's own rejections (a query string that does not parse, an optional body that is not
/// JSON) used to answer in plain text, which neither the docs nor the document allow.
#[tokio::test]
async fn extractor_rejections_answer_with_the_json_error_body() {
    let server = TestServer::start().await;
    let http = reqwest::Client::new();
    let url = server.http_url();
    let cases = [
        (
            http.get(format!("{url}/v1/admin/apps?tenant=a&tenant=b"))
                .bearer_auth("dev-operator-token"),
            400,
        ),
        (
            http.get(format!("{url}/v1/apps/demo/channels?prefix=a&prefix=b"))
                .bearer_auth("demo-key"),
            400,
        ),
        (
            http.post(format!("{url}/v1/admin/apps/demo/keys"))
                .bearer_auth("dev-operator-token")
                .header("content-type", "application/json")
                .body("{not json"),
            400,
        ),
        (
            // A body of the wrong shape: axum says 422, the docs say 400 bad_request.
            http.post(format!("{url}/v1/admin/apps/demo/jwt-secret"))
                .bearer_auth("dev-operator-token")
                .header("content-type", "application/json")
                .body(r#"{"jwt_secret": 5}"#),
            400,
        ),
        (
            http.get(format!("{url}/v1/admin/apps/demo/deliveries?limit=many"))
                .bearer_auth("dev-operator-token"),
            400,
        ),
    ];
    for (request, status) in cases {
        let r = request.send().await.unwrap();
        let what = format!("{} {}", r.status(), r.url());
        assert_eq!(r.status(), status, "{what}");
        assert_eq!(r.headers()["content-type"], "application/json", "{what}");
        let body: Value = r.json().await.unwrap();
        assert_eq!(body["error"]["code"], "bad_request", "{what}: {body}");
        assert!(body["error"]["message"].is_string(), "{what}: {body}");
    }
}
