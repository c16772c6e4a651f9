//! The house rule "imports run one way", held by a test: in each of the two published crates,
//! no top-level module imports, directly or through others, a module that imports it.
//!
//! A top-level module is a file `src/x.rs` (with its folder `src/x/`, if any) or a folder
//! `src/x/`. Module `x` imports `y` when any of its files names `crate::y` outside comments,
//! in a `use` (grouped ones included) or a path, or names an item `lib.rs` re-exports from `y`
//! (`crate::OAuthLayer` is `layer`'s; `crate::discovery::…`, a module of `lib.rs` made of
//! re-exports, is each module it re-exports from). Unit tests (`#[cfg(test)] mod … { … }`
//! blocks, and files named `tests.rs` or under `tests/`) may reach anywhere and are left out.
//! The README's architecture section lists the modules.

use std::collections::{BTreeMap, BTreeSet};
use std::fs;
use std::path::{Path, PathBuf};

/// Each top-level module of the crate at `src` with its files.
fn modules(src: &Path) -> BTreeMap<String, Vec<PathBuf>> {
    let mut modules: BTreeMap<String, Vec<PathBuf>> = BTreeMap::new();
    for entry in fs::read_dir(src).unwrap() {
        let path = entry.unwrap().path();
        let name = path.file_stem().unwrap().to_string_lossy().into_owned();
        if path.is_dir() {
            let files = modules.entry(name).or_default();
            let mut folders = vec![path];
            while let Some(folder) = folders.pop() {
                for entry in fs::read_dir(folder).unwrap() {
                    let path = entry.unwrap().path();
                    if path.is_dir() {
                        folders.push(path);
                    } else if path.extension().is_some_and(|e| e == "rs") {
                        files.push(path);
                    }
                }
            }
        } else if path.extension().is_some_and(|e| e == "rs") && name != "lib" && name != "main" {
            modules.entry(name).or_default().push(path);
        }
    }
    modules
}

/// The text of a file without its comments and its unit tests.
fn code(path: &Path) -> String {
    let text = fs::read_to_string(path).unwrap();
    let mut code = String::new();
    let mut in_block = 0usize;
    for line in text.lines() {
        let mut rest = line;
        let mut kept = String::new();
        loop {
            if in_block > 0 {
                match rest.find("*/") {
                    Some(end) => {
                        in_block -= 1;
                        rest = &rest[end + 2..];
                    }
                    None => break,
                }
            } else {
                let line_comment = rest.find("//");
                let block = rest.find("/*");
                match (line_comment, block) {
                    (Some(l), b) if b.is_none_or(|b| l < b) => {
                        kept.push_str(&rest[..l]);
                        break;
                    }
                    (_, Some(b)) => {
                        kept.push_str(&rest[..b]);
                        in_block += 1;
                        rest = &rest[b + 2..];
                    }
                    _ => {
                        kept.push_str(rest);
                        break;
                    }
                }
            }
        }
        code.push_str(&kept);
        code.push('\n');
    }
    without_test_blocks(&code)
}

/// `code` without its `#[cfg(test)] mod name { … }` blocks (a `mod tests;` declaration, whose
/// file is left out by name, stays: the code after it is no test).
fn without_test_blocks(code: &str) -> String {
    let mut out = String::new();
    let mut rest = code;
    while let Some(at) = rest.find("#[cfg(test)]") {
        out.push_str(&rest[..at]);
        let after = &rest[at..];
        let block = after
            .find('{')
            .filter(|&open| after[..open].contains("mod ") && !after[..open].contains(';'));
        let Some(open) = block else {
            out.push_str("#[cfg(test)]");
            rest = &after["#[cfg(test)]".len()..];
            continue;
        };
        let mut depth = 0usize;
        let mut end = after.len();
        for (i, c) in after[open..].char_indices() {
            match c {
                '{' => depth += 1,
                '}' => {
                    depth -= 1;
                    if depth == 0 {
                        end = open + i + 1;
                        break;
                    }
                }
                _ => {}
            }
        }
        rest = &after[end..];
    }
    out.push_str(rest);
    out
}

/// What `lib.rs` re-exports: each item name with the module it comes from, and each module of
/// `lib.rs`'s own (`pub mod name { pub use … }`) with the modules its items come from.
fn re_exports(
    src: &Path,
    modules: &BTreeMap<String, Vec<PathBuf>>,
) -> BTreeMap<String, BTreeSet<String>> {
    let lib = code(&src.join("lib.rs"));
    let mut map: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    let ident = |s: &str| -> String {
        s.chars()
            .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
            .collect()
    };
    // Inline modules first: each `pub mod name {` up to its closing brace.
    let mut inline_spans = Vec::new();
    for (at, _) in lib.match_indices("pub mod ") {
        let name = ident(&lib[at + "pub mod ".len()..]);
        let after = &lib[at..];
        let Some(open) = after
            .find(['{', ';'])
            .filter(|&i| after.as_bytes()[i] == b'{')
        else {
            continue;
        };
        let mut depth = 0usize;
        let mut end = after.len();
        for (i, c) in after[open..].char_indices() {
            match c {
                '{' => depth += 1,
                '}' => {
                    depth -= 1;
                    if depth == 0 {
                        end = open + i + 1;
                        break;
                    }
                }
                _ => {}
            }
        }
        let body = &after[open..end];
        let from: BTreeSet<String> = named(body)
            .into_iter()
            .filter(|n| modules.contains_key(n))
            .collect();
        map.entry(name).or_default().extend(from);
        inline_spans.push(at..at + end);
    }
    // Then `pub use module::{items};` at the top level.
    for (at, _) in lib.match_indices("pub use ") {
        if inline_spans.iter().any(|span| span.contains(&at)) {
            continue;
        }
        let statement = &lib[at + "pub use ".len()..];
        let statement = &statement[..statement.find(';').unwrap_or(statement.len())];
        let path = statement.trim_start_matches("crate::");
        let module = ident(path);
        if !modules.contains_key(&module) {
            continue;
        }
        let items = &path[module.len()..];
        let mut word = String::new();
        for c in items.chars().chain([' ']) {
            if c.is_ascii_alphanumeric() || c == '_' {
                word.push(c);
            } else if !word.is_empty() {
                if !matches!(word.as_str(), "as" | "self" | "crate") {
                    map.entry(std::mem::take(&mut word))
                        .or_default()
                        .insert(module.clone());
                }
                word.clear();
            }
        }
    }
    map
}

/// Every `x` the code names as `crate::x`, `crate::{x, y::z}` included.
fn named(code: &str) -> BTreeSet<String> {
    let ident = |s: &str| -> String {
        s.chars()
            .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
            .collect()
    };
    let mut names = BTreeSet::new();
    for (at, _) in code.match_indices("crate::") {
        let after = &code[at + "crate::".len()..];
        if let Some(group) = after.strip_prefix('{') {
            // Top-level items of the group: at brace depth 0.
            let mut depth = 0usize;
            let mut start = true;
            for (i, c) in group.char_indices() {
                match c {
                    '{' => depth += 1,
                    '}' if depth == 0 => break,
                    '}' => depth -= 1,
                    ',' if depth == 0 => start = true,
                    c if start && !c.is_whitespace() => {
                        start = false;
                        names.insert(ident(&group[i..]));
                    }
                    _ => {}
                }
            }
        } else {
            names.insert(ident(after));
        }
    }
    names
}

/// The modules of the crate at `src`, each with the modules it imports.
fn imports(src: &Path) -> BTreeMap<String, BTreeSet<String>> {
    let modules = modules(src);
    let re_exported = re_exports(src, &modules);
    modules
        .iter()
        .map(|(name, files)| {
            let used = files
                .iter()
                .filter(|f| !f.ends_with("tests.rs") && !f.to_string_lossy().contains("/tests/"))
                .flat_map(|f| named(&code(f)))
                .flat_map(|n| match re_exported.get(&n) {
                    Some(from) if !modules.contains_key(&n) => from.iter().cloned().collect(),
                    _ => vec![n],
                })
                .filter(|n| n != name && modules.contains_key(n))
                .collect();
            (name.clone(), used)
        })
        .collect()
}

/// A cycle of imports, if any: depth first, each module's path from the root kept.
fn cycle(edges: &BTreeMap<String, BTreeSet<String>>) -> Option<Vec<String>> {
    #[derive(Clone, Copy, PartialEq)]
    enum Mark {
        Open,
        Done,
    }
    fn visit(
        module: &str,
        edges: &BTreeMap<String, BTreeSet<String>>,
        marks: &mut BTreeMap<String, Mark>,
        path: &mut Vec<String>,
    ) -> Option<Vec<String>> {
        match marks.get(module) {
            Some(Mark::Done) => return None,
            Some(Mark::Open) => {
                let from = path.iter().position(|m| m == module).unwrap();
                let mut cycle = path[from..].to_vec();
                cycle.push(module.to_owned());
                return Some(cycle);
            }
            None => {}
        }
        marks.insert(module.to_owned(), Mark::Open);
        path.push(module.to_owned());
        for next in &edges[module] {
            if let Some(cycle) = visit(next, edges, marks, path) {
                return Some(cycle);
            }
        }
        path.pop();
        marks.insert(module.to_owned(), Mark::Done);
        None
    }
    let mut marks = BTreeMap::new();
    edges
        .keys()
        .find_map(|m| visit(m, edges, &mut marks, &mut Vec::new()))
}

fn crate_src(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .unwrap()
        .join(name)
        .join("src")
}

#[test]
fn imports_run_one_way_in_both_crates() {
    for name in ["tower-mcp-oauth", "mcp-oauth-flow"] {
        let edges = imports(&crate_src(name));
        assert!(edges.len() > 20, "{name}: {} modules found", edges.len());
        if let Some(cycle) = cycle(&edges) {
            panic!("{name}: modules import each other: {}", cycle.join(" → "));
        }
    }
}

/// The checker finds what it looks for: a cycle made of real import lines, grouped and plain,
/// is found, and one in comments or unit tests is not.
#[test]
fn the_checker_sees_a_cycle_and_only_a_real_one() {
    let dir = std::env::temp_dir().join(format!("module-imports-{}", std::process::id()));
    let _ = fs::remove_dir_all(&dir);
    fs::create_dir_all(dir.join("b")).unwrap();
    fs::write(
        dir.join("lib.rs"),
        "mod a; mod b; mod c; mod d;\npub use c::{G, H as I};\npub mod api {\n    pub use crate::d::J;\n}\n",
    )
    .unwrap();
    fs::write(dir.join("d.rs"), "pub struct J;\n").unwrap();
    fs::write(
        dir.join("a.rs"),
        "use crate::{c::X, b::{Y, Z}};\n// crate::c only a comment\n",
    )
    .unwrap();
    fs::write(
        dir.join("b/mod.rs"),
        "#[cfg(test)]\nmod tests;\nmod inner;\nuse crate::api::J;\n",
    )
    .unwrap();
    fs::write(dir.join("b/inner.rs"), "fn f() { crate::c::g() }\n").unwrap();
    fs::write(
        dir.join("c.rs"),
        "/* crate::a */ fn g() {}\n#[cfg(test)]\nmod tests { use crate::a; }\n",
    )
    .unwrap();
    let edges = imports(&dir);
    assert_eq!(edges["a"], BTreeSet::from(["b".into(), "c".into()]));
    // b's import after its `mod tests;` counts; `crate::api::J` is d's.
    assert_eq!(edges["b"], BTreeSet::from(["c".into(), "d".into()]));
    assert!(edges["c"].is_empty(), "{:?}", edges["c"]);
    assert_eq!(cycle(&edges), None);
    // c imports a for real: a → c → a (or through b).
    fs::write(dir.join("c.rs"), "use crate::a::A;\nfn g() {}\n").unwrap();
    let found = cycle(&imports(&dir)).unwrap();
    assert_eq!(found.first(), found.last());
    assert!(found.contains(&"c".to_owned()), "{found:?}");
    // d names c's item only through lib.rs's re-export (`crate::I`), and c imports d: c → d
    // → c, seen only when the re-export is followed.
    fs::write(dir.join("c.rs"), "use crate::d::J;\nfn g() {}\n").unwrap();
    fs::write(dir.join("d.rs"), "pub struct J;\nuse crate::I;\n").unwrap();
    let found = cycle(&imports(&dir)).unwrap();
    assert!(
        found.contains(&"c".to_owned()) && found.contains(&"d".to_owned()),
        "{found:?}"
    );
    fs::remove_dir_all(&dir).unwrap();
}
