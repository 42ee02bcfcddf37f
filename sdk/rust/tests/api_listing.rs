//! Lists the public API of this crate, parsed from its source with `syn`, for the SDK parity
//! test of the TypeScript SDK (`sdk/js/test/api-parity.test.mjs`), which compares it with the
//! names `@waas/sdk` exports: the style guide asks both SDKs to use the same names.
//!
//! The listing goes to `<target dir>/debug/waas-sdk-api.txt` (where the TypeScript tests find
//! the `waas` binary too), one entry a line: `type Name` for a public struct, enum, trait,
//! type alias, function or constant, `member Type.name` for a public field, method, associated
//! constant, enum variant or a variant's named field. Public means reachable from outside the crate: `pub` items of
//! `pub mod`s, and the types the crate root re-exports from `waas-protocol` (error and close
//! codes, claims, REST bodies) with their members. The rest of `waas-protocol`, reachable as
//! `waas_sdk::protocol`, follows as `protocol type` / `protocol member` lines: wire types such as
//! `HistoryPage` the TypeScript SDK exports itself.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use syn::{Fields, ImplItem, Item, TraitItem, UseTree, Visibility};

/// What one crate declares publicly: types (with their members) and inherent methods.
#[derive(Default)]
struct Api {
    types: BTreeSet<String>,
    /// (type, member): fields, variants, trait methods; kept even when the type is not public,
    /// and filtered at the end.
    members: BTreeSet<(String, String)>,
}

fn is_pub(vis: &Visibility) -> bool {
    matches!(vis, Visibility::Public(_))
}

fn is_cfg_test(attrs: &[syn::Attribute]) -> bool {
    attrs.iter().any(|a| {
        a.path().is_ident("cfg") && a.parse_args::<syn::Ident>().is_ok_and(|i| i == "test")
    })
}

/// The last segment of an impl's self type (`Client` for `impl crate::Client`).
fn type_name(ty: &syn::Type) -> Option<String> {
    match ty {
        syn::Type::Path(p) => p.path.segments.last().map(|s| s.ident.to_string()),
        _ => None,
    }
}

/// Reads module `name` declared in the file `file` (`mod name;`): `name.rs` or `name/mod.rs`
/// beside a `lib.rs`/`mod.rs`, under `<stem>/` beside any other file.
fn module_file(file: &Path, name: &str) -> PathBuf {
    let dir = file.parent().expect("a source file has a directory");
    let stem = file
        .file_stem()
        .and_then(|s| s.to_str())
        .unwrap_or_default();
    let base = if stem == "lib" || stem == "mod" {
        dir.to_path_buf()
    } else {
        dir.join(stem)
    };
    let flat = base.join(format!("{name}.rs"));
    if flat.exists() {
        flat
    } else {
        base.join(name).join("mod.rs")
    }
}

/// Collects `items` of the file `file`; `public` says whether the module itself is reachable.
fn collect(api: &mut Api, file: &Path, items: &[Item], public: bool) {
    for item in items {
        match item {
            Item::Mod(m) if is_cfg_test(&m.attrs) => {}
            Item::Mod(m) => {
                let inner_public = public && is_pub(&m.vis);
                match &m.content {
                    Some((_, inline)) => collect(api, file, inline, inner_public),
                    None => {
                        let path = module_file(file, &m.ident.to_string());
                        let text = std::fs::read_to_string(&path)
                            .unwrap_or_else(|e| panic!("{}: {e}", path.display()));
                        let parsed = syn::parse_file(&text)
                            .unwrap_or_else(|e| panic!("{}: {e}", path.display()));
                        collect(api, &path, &parsed.items, inner_public);
                    }
                }
            }
            Item::Struct(s) if public && is_pub(&s.vis) => {
                let name = s.ident.to_string();
                if let Fields::Named(fields) = &s.fields {
                    for f in &fields.named {
                        if is_pub(&f.vis) {
                            let field = f.ident.as_ref().expect("named").to_string();
                            api.members.insert((name.clone(), field));
                        }
                    }
                }
                api.types.insert(name);
            }
            Item::Enum(e) if public && is_pub(&e.vis) => {
                let name = e.ident.to_string();
                for v in &e.variants {
                    api.members.insert((name.clone(), v.ident.to_string()));
                    // A variant's named fields are public as the enum is.
                    if let Fields::Named(fields) = &v.fields {
                        for f in &fields.named {
                            let field = f.ident.as_ref().expect("named").to_string();
                            api.members.insert((name.clone(), field));
                        }
                    }
                }
                api.types.insert(name);
            }
            Item::Trait(t) if public && is_pub(&t.vis) => {
                let name = t.ident.to_string();
                for i in &t.items {
                    if let TraitItem::Fn(f) = i {
                        api.members.insert((name.clone(), f.sig.ident.to_string()));
                    }
                }
                api.types.insert(name);
            }
            Item::Type(t) if public && is_pub(&t.vis) => {
                api.types.insert(t.ident.to_string());
            }
            Item::Fn(f) if public && is_pub(&f.vis) => {
                api.types.insert(f.sig.ident.to_string());
            }
            Item::Const(c) if public && is_pub(&c.vis) => {
                api.types.insert(c.ident.to_string());
            }
            // Inherent impls count wherever they are: `Client`'s methods live in several files.
            Item::Impl(i) if i.trait_.is_none() => {
                let Some(name) = type_name(&i.self_ty) else {
                    continue;
                };
                for ii in &i.items {
                    match ii {
                        ImplItem::Fn(f) if is_pub(&f.vis) => {
                            api.members.insert((name.clone(), f.sig.ident.to_string()));
                        }
                        ImplItem::Const(c) if is_pub(&c.vis) => {
                            api.members.insert((name.clone(), c.ident.to_string()));
                        }
                        _ => {}
                    }
                }
            }
            _ => {}
        }
    }
}

fn parse_crate(lib: &Path) -> Api {
    let text = std::fs::read_to_string(lib).unwrap_or_else(|e| panic!("{}: {e}", lib.display()));
    let file = syn::parse_file(&text).unwrap_or_else(|e| panic!("{}: {e}", lib.display()));
    let mut api = Api::default();
    collect(&mut api, lib, &file.items, true);
    api
}

/// Names the crate root re-exports from `waas_protocol` (`pub use waas_protocol::{A, b::C}`).
fn protocol_reexports(lib: &Path) -> Vec<String> {
    fn walk(tree: &UseTree, under_protocol: bool, out: &mut Vec<String>) {
        match tree {
            UseTree::Path(p) => walk(&p.tree, under_protocol || p.ident == "waas_protocol", out),
            UseTree::Name(n) if under_protocol => out.push(n.ident.to_string()),
            UseTree::Rename(r) if under_protocol => out.push(r.rename.to_string()),
            UseTree::Group(g) => g.items.iter().for_each(|t| walk(t, under_protocol, out)),
            _ => {}
        }
    }
    let file = syn::parse_file(&std::fs::read_to_string(lib).expect("lib.rs")).expect("lib.rs");
    let mut out = Vec::new();
    for item in &file.items {
        if let Item::Use(u) = item {
            if is_pub(&u.vis) {
                walk(&u.tree, false, &mut out);
            }
        }
    }
    out
}

/// Every public name of the SDK, as `type X` and `member X.y` lines, sorted.
fn listing() -> Vec<String> {
    let sdk_dir = Path::new(env!("CARGO_MANIFEST_DIR"));
    let lib = sdk_dir.join("src/lib.rs");
    let sdk = parse_crate(&lib);
    let protocol = parse_crate(&sdk_dir.join("../protocol/src/lib.rs"));
    let mut types = sdk.types.clone();
    let mut members = sdk.members.clone();
    for name in protocol_reexports(&lib) {
        if protocol.types.contains(&name) {
            types.insert(name.clone());
            members.extend(protocol.members.iter().filter(|(t, _)| *t == name).cloned());
        }
    }
    let mut lines: Vec<String> = types.iter().map(|t| format!("type {t}")).collect();
    lines.extend(
        members
            .iter()
            .filter(|(t, _)| types.contains(t))
            .map(|(t, m)| format!("member {t}.{m}")),
    );
    // The rest of the wire types, reachable as `waas_sdk::protocol::...`.
    lines.extend(protocol.types.iter().map(|t| format!("protocol type {t}")));
    lines.extend(
        protocol
            .members
            .iter()
            .filter(|(t, _)| protocol.types.contains(t))
            .map(|(t, m)| format!("protocol member {t}.{m}")),
    );
    lines
}

/// `<target dir>/debug`: this test binary runs from `<target dir>/debug/deps`.
fn profile_dir() -> PathBuf {
    let exe = std::env::current_exe().expect("test binary path");
    exe.parent()
        .and_then(Path::parent)
        .expect("the test binary is in <target>/<profile>/deps")
        .to_path_buf()
}

#[test]
fn writes_the_public_api_listing() {
    let lines = listing();
    // The extraction must see the crate: a few names every version of the SDK has.
    for must in [
        "type Client",
        "member Client.publish",
        "member ClientBuilder.url",
        "member ConnectionEvent.Disconnected",
        "member Error.Rejected",
        "member ErrorCode.BadRequest",
        "member CloseCode.GOING_AWAY",
    ] {
        assert!(
            lines.iter().any(|l| l == must),
            "{must:?} missing from the listing: {lines:#?}"
        );
    }
    // Private modules stay out.
    assert!(!lines.iter().any(|l| l == "type Session"), "{lines:#?}");
    let path = profile_dir().join("waas-sdk-api.txt");
    std::fs::write(&path, lines.join("\n") + "\n")
        .unwrap_or_else(|e| panic!("{}: {e}", path.display()));
}
