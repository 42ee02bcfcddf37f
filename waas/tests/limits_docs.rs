//! The limits tables of docs/configuration.md and docs/security.md against the one definition
//! of the limits (`Limits::SPECS`, written by `limits!` in gateway/src/config.rs): the
//! configuration table is exactly the rows that definition makes (key, flag, variable, default,
//! meaning, in its order), and the security page, which repeats the ones that bound what a
//! caller can make a server do, never disagrees with the code.

use std::collections::BTreeMap;
use waas_gateway::Limits;

fn doc(name: &str) -> String {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../docs/").to_owned() + name;
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("read {path}: {e}"))
}

/// Every limit and its default, as the code has them.
fn code_defaults() -> BTreeMap<String, String> {
    let value = serde_json::to_value(Limits::default()).expect("limits serialize");
    value
        .as_object()
        .expect("limits are a table")
        .iter()
        .filter_map(|(k, v)| v.as_u64().map(|n| (k.clone(), n.to_string())))
        .collect()
}

/// The cells of a Markdown table row, trimmed.
fn cells(line: &str) -> Vec<&str> {
    line.trim()
        .trim_matches('|')
        .split('|')
        .map(str::trim)
        .collect()
}

/// `` `a` / `b` `` → `["a", "b"]`.
fn ticked(cell: &str) -> Vec<&str> {
    cell.split('/')
        .map(|s| s.trim().trim_matches('`'))
        .filter(|s| !s.is_empty())
        .collect()
}

/// The rows of the table under `heading` whose first cell names limits: (keys, defaults).
fn table_rows<'a>(text: &'a str, heading: &str) -> Vec<(Vec<&'a str>, Vec<&'a str>)> {
    let start = text
        .find(heading)
        .unwrap_or_else(|| panic!("no {heading:?}"));
    text[start..]
        .lines()
        .skip_while(|l| !l.starts_with('|'))
        .take_while(|l| l.starts_with('|'))
        .skip(2)
        .map(cells)
        .map(|c| (c[0], c))
        .filter(|(first, _)| first.starts_with('`'))
        .map(|(first, c)| (ticked(first), c))
        .map(|(keys, c)| {
            let default_cell = if c.len() >= 4 { c[2] } else { c[1] };
            let defaults = default_cell
                .split('/')
                .map(|d| d.split_whitespace().next().unwrap_or("").trim_matches('`'))
                .collect();
            (keys, defaults)
        })
        .collect()
}

#[test]
fn the_configuration_table_lists_every_limit_with_its_default() {
    let code = code_defaults();
    let text = doc("configuration.md");
    let rows = table_rows(&text, "## Limits");
    let mut documented = BTreeMap::new();
    for (keys, defaults) in rows {
        assert_eq!(keys.len(), 1, "one limit per row: {keys:?}");
        documented.insert(keys[0].to_owned(), defaults[0].to_owned());
    }
    let numeric: BTreeMap<_, _> = documented
        .iter()
        .filter(|(k, _)| code.contains_key(*k))
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect();
    assert_eq!(
        numeric, code,
        "docs/configuration.md's limits table and Limits::default() differ"
    );
}

#[test]
fn the_security_page_agrees_with_the_code() {
    let code = code_defaults();
    let text = doc("security.md");
    let rows = table_rows(&text, "## The edge: sockets and HTTP");
    assert!(rows.len() > 10, "the security page lists the limits");
    for (keys, defaults) in rows {
        assert_eq!(keys.len(), defaults.len(), "a default per key: {keys:?}");
        for (key, default) in keys.iter().zip(defaults) {
            let Some(want) = code.get(*key) else {
                panic!("docs/security.md names {key}, which is not a limit");
            };
            assert_eq!(default, want, "docs/security.md: default of {key}");
        }
    }
}

/// The row `docs/configuration.md` must have for each limit.
fn expected_rows() -> Vec<String> {
    Limits::SPECS
        .iter()
        .map(|s| {
            let default = match s.shown() {
                Some(shown) => format!("`{}` {shown}", s.default_value()),
                None => format!("`{}`", s.default_value()),
            };
            format!(
                "| `{}` | `--{}` / `{}` | {default} | {} |",
                s.key,
                s.flag(),
                s.env(),
                s.doc()
            )
        })
        .collect()
}

#[test]
fn the_configuration_table_is_the_one_made_from_the_definition() {
    let text = doc("configuration.md");
    let start = text.find("## Limits").expect("a Limits section");
    let documented: Vec<&str> = text[start..]
        .lines()
        .skip_while(|l| !l.starts_with('|'))
        .take_while(|l| l.starts_with('|'))
        .skip(2)
        .collect();
    let expected = expected_rows();
    assert!(
        documented == expected,
        "docs/configuration.md's limits table differs from Limits::SPECS \
         (gateway/src/config.rs); its rows should read:\n{}",
        expected.join("\n")
    );
}

/// Every default the definition shows is the one `Limits::default()` has, and every field of
/// `Limits` has its entry: the table cannot leave a limit out.
#[test]
fn the_definition_covers_every_field() {
    let keys: Vec<&str> = Limits::SPECS.iter().map(|s| s.key).collect();
    let code = code_defaults();
    assert_eq!(
        keys.iter()
            .copied()
            .collect::<std::collections::BTreeSet<_>>(),
        code.keys().map(String::as_str).collect(),
    );
    for s in Limits::SPECS {
        assert_eq!(s.default_value(), code[s.key], "default of {}", s.key);
    }
}
