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

/// The text of a file without its comments, the contents of its string and character
/// literals (a `"//"` or a `"{"` in a string is neither a comment nor a brace), and its unit
/// tests.
fn code(path: &Path) -> String {
    let text = fs::read_to_string(path).unwrap();
    without_test_blocks(&strip_comments_and_literals(&text), path)
}

/// `text` with comments gone and literals emptied (`"…"` becomes `""`, `'…'` becomes `''`),
/// lines kept.
fn strip_comments_and_literals(text: &str) -> String {
    let chars: Vec<char> = text.chars().collect();
    let mut out = String::with_capacity(text.len());
    let mut i = 0;
    while i < chars.len() {
        let (c, next) = (chars[i], chars.get(i + 1).copied());
        match (c, next) {
            ('/', Some('/')) => {
                while i < chars.len() && chars[i] != '\n' {
                    i += 1;
                }
            }
            ('/', Some('*')) => {
                let mut depth = 0usize;
                while i < chars.len() {
                    match (chars[i], chars.get(i + 1).copied()) {
                        ('/', Some('*')) => (depth, i) = (depth + 1, i + 2),
                        ('*', Some('/')) => {
                            (depth, i) = (depth - 1, i + 2);
                            if depth == 0 {
                                break;
                            }
                        }
                        ('\n', _) => {
                            out.push('\n');
                            i += 1;
                        }
                        _ => i += 1,
                    }
                }
            }
            // A raw string: `r"…"`, `r#"…"#` (and `br…`), up to the quote and as many `#`.
            ('r', Some('"' | '#'))
                if !chars[..i]
                    .last()
                    .is_some_and(|p| p.is_alphanumeric() || *p == '_') =>
            {
                let mut j = i + 1;
                let mut hashes = 0;
                while chars.get(j) == Some(&'#') {
                    hashes += 1;
                    j += 1;
                }
                if chars.get(j) != Some(&'"') {
                    out.push(c);
                    i += 1;
                    continue;
                }
                j += 1;
                while j < chars.len() {
                    if chars[j] == '"' && (1..=hashes).all(|k| chars.get(j + k) == Some(&'#')) {
                        j += 1 + hashes;
                        break;
                    }
                    if chars[j] == '\n' {
                        out.push('\n');
                    }
                    j += 1;
                }
                out.push_str("\"\"");
                i = j;
            }
            ('"', _) => {
                i += 1;
                while i < chars.len() && chars[i] != '"' {
                    match chars[i] {
                        '\\' => i += 2,
                        '\n' => {
                            out.push('\n');
                            i += 1;
                        }
                        _ => i += 1,
                    }
                }
                out.push_str("\"\"");
                i += 1;
            }
            // A character literal (`'"'`, `'\''`, `'{'`), not a lifetime (`'a`).
            ('\'', Some('\\')) => {
                i += 2;
                while i < chars.len() && chars[i] != '\'' {
                    i += 1;
                }
                out.push_str("''");
                i += 1;
            }
            ('\'', Some(_)) if chars.get(i + 2) == Some(&'\'') => {
                out.push_str("''");
                i += 3;
            }
            _ => {
                out.push(c);
                i += 1;
            }
        }
    }
    out
}

/// The identifier `s` starts with.
fn ident(s: &str) -> String {
    s.chars()
        .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
        .collect()
}

/// Where the block that opens at byte `open` of `text` (a `{`) ends: just past its closing
/// brace, or `None` when it never closes.
fn block_end(text: &str, open: usize) -> Option<usize> {
    let mut depth = 0usize;
    for (i, c) in text[open..].char_indices() {
        match c {
            '{' => depth += 1,
            '}' => {
                depth -= 1;
                if depth == 0 {
                    return Some(open + i + 1);
                }
            }
            _ => {}
        }
    }
    None
}

/// `code` without its `#[cfg(test)] mod name { … }` blocks (a `mod tests;` declaration, whose
/// file is left out by name, stays: the code after it is no test).
fn without_test_blocks(code: &str, path: &Path) -> String {
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
        // Braces that never balance would drop the rest of the file unseen.
        let end = block_end(after, open).unwrap_or_else(|| {
            panic!(
                "{}: a #[cfg(test)] module whose braces never close",
                path.display()
            )
        });
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
        let end = block_end(after, open).unwrap_or(after.len());
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
    // Imports known to be there are seen: the checker reads what it should.
    let layer = imports(&crate_src("tower-mcp-oauth"));
    assert!(
        layer["recovery"].contains("acquire"),
        "{:?}",
        layer["recovery"]
    );
    assert!(layer["rmcp"].contains("layer"), "{:?}", layer["rmcp"]);
    let core = imports(&crate_src("mcp-oauth-flow"));
    assert!(core["flow"].contains("error"), "{:?}", core["flow"]);
    for name in ["tower-mcp-oauth", "mcp-oauth-flow"] {
        let edges = imports(&crate_src(name));
        assert!(edges.len() > 20, "{name}: {} modules found", edges.len());
        let arrows: usize = edges.values().map(BTreeSet::len).sum();
        assert!(arrows > 50, "{name}: {arrows} imports found");
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
        "/* crate::a */ fn g() { let _ = \"}//\"; }\nconst C: char = '{';\n#[cfg(test)]\nmod tests { use crate::a; const S: &str = r#\"{\"#; }\nuse crate::d::J;\n",
    )
    .unwrap();
    let edges = imports(&dir);
    assert_eq!(edges["a"], BTreeSet::from(["b".into(), "c".into()]));
    // b's import after its `mod tests;` counts; `crate::api::J` is d's.
    assert_eq!(edges["b"], BTreeSet::from(["c".into(), "d".into()]));
    // Past a string holding `}//`, a `'{'` and a test module with a brace in a raw string,
    // c's import of d is read.
    assert_eq!(edges["c"], BTreeSet::from(["d".into()]));
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
