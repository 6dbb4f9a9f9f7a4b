//! The web client without a browser: `tests/browser/check.mjs` (every module parses, every
//! import, referenced file and looked-up element id exists) and the Node unit tests of its
//! pure decisions in `tests/browser/unit.mjs` (layer per tile size, capture error messages,
//! msid mapping, grid geometry).
use std::process::Command;

fn node(args: &[&str]) -> (bool, String) {
    let output = Command::new("node")
        .args(args)
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .output()
        .expect("node runs");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    (output.status.success(), text)
}

#[test]
fn every_module_import_and_element_id_resolves() {
    let (ok, output) = node(&["tests/browser/check.mjs"]);
    assert!(ok, "{output}");
    assert!(output.contains(r#""ok":true"#), "{output}");
}

#[test]
fn the_clients_decisions_pass_their_unit_tests() {
    let (ok, output) = node(&["--test", "tests/browser/unit.mjs"]);
    assert!(ok, "{output}");
    assert!(output.contains("# fail 0"), "{output}");
    assert!(!output.contains("# pass 0"), "{output}");
}
