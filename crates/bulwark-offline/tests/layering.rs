//! The layering rule of DESIGN.md §3: nothing that runs beside the server links it. This
//! test reads the workspace's manifests, walks the workspace-local dependencies (normal
//! and build, not dev) of the crates that run beside the server, and fails naming the
//! chain if any of them reaches `bulwark-server`.

#![allow(
    clippy::expect_used,
    clippy::panic,
    reason = "a test: a manifest that cannot be read must fail it loudly"
)]

use std::collections::{BTreeMap, VecDeque};
use std::path::{Path, PathBuf};

/// The crates that must never link the server.
const BESIDE_THE_SERVER: &[&str] = &["bulwark-agent", "bulwark-client", "bulwark-offline"];
const SERVER: &str = "bulwark-server";

/// Package name → the workspace packages it depends on (normal and build dependencies,
/// including target-specific ones).
type Graph = BTreeMap<String, Vec<String>>;

fn read_toml(path: &Path) -> toml::Table {
    let text = std::fs::read_to_string(path)
        .unwrap_or_else(|e| panic!("cannot read `{}`: {e}", path.display()));
    toml::from_str(&text).unwrap_or_else(|e| panic!("`{}` is not TOML: {e}", path.display()))
}

fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .ancestors()
        .find(|d| {
            d.join("Cargo.toml").is_file()
                && read_toml(&d.join("Cargo.toml")).contains_key("workspace")
        })
        .expect("no workspace root above this crate")
        .to_owned()
}

/// The manifests of the workspace's members (`members` entries, with a trailing `/*`
/// glob, minus `exclude`).
fn member_manifests(root: &Path, workspace: &toml::Table) -> Vec<PathBuf> {
    let list = |key: &str| -> Vec<String> {
        workspace
            .get(key)
            .and_then(toml::Value::as_array)
            .map(|a| {
                a.iter()
                    .filter_map(|v| v.as_str().map(str::to_owned))
                    .collect()
            })
            .unwrap_or_default()
    };
    let excluded: Vec<PathBuf> = list("exclude").iter().map(|e| root.join(e)).collect();
    let mut out = Vec::new();
    for member in list("members") {
        let dirs: Vec<PathBuf> = match member.strip_suffix("/*") {
            Some(parent) => std::fs::read_dir(root.join(parent))
                .expect("members directory")
                .map(|e| e.expect("directory entry").path())
                .collect(),
            None => vec![root.join(member)],
        };
        for d in dirs {
            if d.join("Cargo.toml").is_file() && !excluded.contains(&d) {
                out.push(d.join("Cargo.toml"));
            }
        }
    }
    out.sort();
    out
}

/// The workspace-local packages among the entries of one dependency table.
fn local_deps(
    table: Option<&toml::Value>,
    workspace_deps: &toml::Table,
    names_by_dir: &BTreeMap<PathBuf, String>,
    manifest_dir: &Path,
    root: &Path,
) -> Vec<String> {
    let Some(table) = table.and_then(toml::Value::as_table) else {
        return Vec::new();
    };
    let mut out = Vec::new();
    for (key, spec) in table {
        let spec = spec.as_table();
        let inherited = spec
            .and_then(|s| s.get("workspace"))
            .and_then(toml::Value::as_bool)
            == Some(true);
        // Where the dependency lives: its own `path`, or the workspace's entry for it.
        let (path, base) = if inherited {
            let ws = workspace_deps.get(key).and_then(toml::Value::as_table);
            (ws.and_then(|w| w.get("path")), root)
        } else {
            (spec.and_then(|s| s.get("path")), manifest_dir)
        };
        let Some(path) = path.and_then(toml::Value::as_str) else {
            continue; // from a registry: not ours
        };
        let dir = base.join(path);
        let dir = dir.canonicalize().unwrap_or(dir);
        let name = names_by_dir.get(&dir).cloned().unwrap_or_else(|| {
            panic!(
                "`{}` depends on `{key}` at `{}`, which is not a workspace member",
                manifest_dir.display(),
                dir.display()
            )
        });
        out.push(name);
    }
    out
}

/// The workspace's dependency graph, read from its manifests.
fn workspace_graph() -> Graph {
    let root = workspace_root();
    let root_manifest = read_toml(&root.join("Cargo.toml"));
    let workspace = root_manifest
        .get("workspace")
        .and_then(toml::Value::as_table)
        .expect("[workspace]");
    let empty = toml::Table::new();
    let workspace_deps = workspace
        .get("dependencies")
        .and_then(toml::Value::as_table)
        .unwrap_or(&empty);
    let manifests: Vec<(PathBuf, toml::Table)> = member_manifests(&root, workspace)
        .into_iter()
        .map(|m| {
            let t = read_toml(&m);
            (m, t)
        })
        .collect();
    let names_by_dir: BTreeMap<PathBuf, String> = manifests
        .iter()
        .map(|(m, t)| {
            let dir = m.parent().expect("manifest directory");
            let name = t
                .get("package")
                .and_then(|p| p.get("name"))
                .and_then(toml::Value::as_str)
                .unwrap_or_else(|| panic!("`{}` has no package name", m.display()));
            (
                dir.canonicalize().unwrap_or_else(|_| dir.to_owned()),
                name.to_owned(),
            )
        })
        .collect();
    let mut graph = Graph::new();
    for (manifest, t) in &manifests {
        let dir = manifest.parent().expect("manifest directory");
        let canonical = dir.canonicalize().unwrap_or_else(|_| dir.to_owned());
        let name = names_by_dir[&canonical].clone();
        // Normal and build dependencies, also under `[target.'…'.…]`; never dev.
        let mut tables: Vec<Option<&toml::Value>> =
            vec![t.get("dependencies"), t.get("build-dependencies")];
        if let Some(targets) = t.get("target").and_then(toml::Value::as_table) {
            for target in targets.values() {
                tables.push(target.get("dependencies"));
                tables.push(target.get("build-dependencies"));
            }
        }
        let mut deps: Vec<String> = tables
            .into_iter()
            .flat_map(|table| local_deps(table, workspace_deps, &names_by_dir, dir, &root))
            .collect();
        deps.sort();
        deps.dedup();
        graph.insert(name, deps);
    }
    graph
}

/// The shortest dependency chain from `from` to `to`, if there is one.
fn chain(graph: &Graph, from: &str, to: &str) -> Option<Vec<String>> {
    let mut parent: BTreeMap<&str, &str> = BTreeMap::new();
    let mut queue = VecDeque::from([from]);
    while let Some(at) = queue.pop_front() {
        if at == to {
            let mut path = vec![to.to_owned()];
            let mut cur = to;
            while let Some(p) = parent.get(cur) {
                path.push((*p).to_owned());
                cur = p;
            }
            path.reverse();
            return Some(path);
        }
        for next in graph.get(at).into_iter().flatten() {
            if next != from && !parent.contains_key(next.as_str()) {
                parent.insert(next, at);
                queue.push_back(next);
            }
        }
    }
    None
}

/// Every violation of the rule in `graph`, as readable chains.
fn violations(graph: &Graph) -> Vec<String> {
    BESIDE_THE_SERVER
        .iter()
        .filter_map(|krate| chain(graph, krate, SERVER))
        .map(|c| c.join(" -> "))
        .collect()
}

#[test]
fn nothing_that_runs_beside_the_server_links_it() {
    let graph = workspace_graph();
    assert!(
        graph.contains_key(SERVER),
        "`{SERVER}` is not a workspace member: {:?}",
        graph.keys()
    );
    for krate in BESIDE_THE_SERVER {
        assert!(
            graph.contains_key(*krate),
            "`{krate}` is not a workspace member: the rule would pass vacuously"
        );
    }
    let found = violations(&graph);
    assert!(
        found.is_empty(),
        "crates that run beside the server link `{SERVER}` (DESIGN.md §3):\n  {}",
        found.join("\n  ")
    );
}

#[test]
fn the_walk_names_an_indirect_chain() {
    // The real graph must pass, so the walk itself is checked on a graph that breaks the
    // rule two steps away.
    let mut graph = Graph::new();
    graph.insert("bulwark-agent".into(), vec!["bulwark-client".into()]);
    graph.insert("bulwark-client".into(), vec!["bulwark-helper".into()]);
    graph.insert("bulwark-helper".into(), vec![SERVER.into()]);
    graph.insert("bulwark-offline".into(), vec!["bulwark-store".into()]);
    graph.insert(SERVER.into(), vec!["bulwark-store".into()]);
    assert_eq!(
        violations(&graph),
        vec![
            "bulwark-agent -> bulwark-client -> bulwark-helper -> bulwark-server",
            "bulwark-client -> bulwark-helper -> bulwark-server",
        ]
    );
}

#[test]
fn the_real_graph_is_read_with_its_edges() {
    // A walker that read no edges would pass the rule vacuously.
    let graph = workspace_graph();
    assert!(
        graph["bulwark-agent"].contains(&"bulwark-client".to_owned()),
        "{graph:?}"
    );
    assert!(
        graph["bulwark"].contains(&SERVER.to_owned()),
        "the binary links the server: {graph:?}"
    );
    assert!(
        chain(&graph, "bulwark-offline", "bulwark-ledger").is_some(),
        "{graph:?}"
    );
}
