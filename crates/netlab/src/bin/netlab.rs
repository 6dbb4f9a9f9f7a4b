//! Runs the lab's scenarios against a roomcast binary and writes the table and the plots.
//!
//!   netlab --server target/release/roomcast [--out target/netlab] [--short]
//!          [--scenario ID]… [--label before] [-- server flags…]
use std::path::PathBuf;

use anyhow::{bail, Context, Result};
use roomcast_netlab::outcome::Outcome;
use roomcast_netlab::report;
use roomcast_netlab::scenarios::{self, ALL};
use roomcast_netlab::stage::Config;

const USAGE: &str = "usage: netlab --server PATH [--out DIR] [--short] [--label NAME] [--scenario ID]... [-- SERVER FLAGS...]";

fn main() -> Result<()> {
    let mut server = None;
    let mut out = PathBuf::from("target/netlab");
    let mut full = true;
    let mut label = "run".to_owned();
    let mut only = Vec::new();
    let mut server_args = Vec::new();
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "--server" => server = args.next().map(PathBuf::from),
            "--out" => out = args.next().map(PathBuf::from).context(USAGE)?,
            "--short" => full = false,
            "--label" => label = args.next().context(USAGE)?,
            "--scenario" => only.push(args.next().context(USAGE)?),
            "--" => server_args.extend(args.by_ref()),
            "--help" | "-h" => {
                println!("{USAGE}\nscenarios: {}", ALL.map(|(id, _)| id).join(", "));
                return Ok(());
            }
            other => bail!("unexpected {other}\n{USAGE}"),
        }
    }
    let server = server.context(USAGE)?;
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..");
    let out = out.join(&label);
    let config = Config {
        server,
        server_args,
        browser_script: root.join("tests/browser/netlab.mjs"),
        out_dir: out.join("logs"),
        full,
    };
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?;
    let mut outcomes: Vec<Outcome> = Vec::new();
    for (id, _) in ALL
        .iter()
        .filter(|(id, _)| only.is_empty() || only.iter().any(|o| o == id))
    {
        eprintln!("== {id}");
        match runtime.block_on(scenarios::run(id, &config)) {
            Ok(outcome) => {
                eprint!("{}", outcome.describe());
                report::plot(&outcome, &out.join(format!("{id}.png")))?;
                outcomes.push(outcome);
            }
            Err(e) => eprintln!("{id} failed to run: {e:#}"),
        }
    }
    std::fs::write(
        out.join("results.json"),
        serde_json::to_string_pretty(&outcomes)?,
    )?;
    let table = report::table(&outcomes);
    std::fs::write(out.join("table.md"), &table)?;
    println!("{table}");
    eprintln!("wrote {}", out.display());
    Ok(())
}
