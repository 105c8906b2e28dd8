//! Runs the subcommands: calls the library stages with checked options and prints what the user
//! reads. Output goes to stdout (`--json` makes it machine-readable); warnings and progress go
//! to stderr.

use std::path::Path;
use std::process::ExitCode;

use anyhow::Result;
use headstart::extract::{extract, ExtractSummary};

use crate::cli::{Cli, Command};
use crate::options;
use crate::progress::Reporter;

/// Some images could not be used: the run finished, but the exit code says so (as ripgrep does
/// for files it could not search).
const EXIT_SKIPPED: u8 = 2;

pub fn run(cli: Cli) -> Result<ExitCode> {
    let global = &cli.global;
    match &cli.command {
        Command::Extract(args) => {
            let opts = options::extract(global, args)?;
            let summary = extract(&opts, &Reporter::new(global.quiet))?;
            print_extract(&summary, global.json)?;
            Ok(exit_for(&summary))
        }
        Command::Demo(args) => {
            let data = args
                .data
                .clone()
                .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("demo/cifar10"));
            let opts = options::extract_from(global, &data, 32, 10.0, 10.0, Default::default())?;
            let summary = extract(&opts, &Reporter::new(global.quiet))?;
            print_extract(&summary, global.json)?;
            Ok(exit_for(&summary))
        }
    }
}

fn exit_for(summary: &ExtractSummary) -> ExitCode {
    if summary.skipped.is_empty() {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(EXIT_SKIPPED)
    }
}

fn print_extract(s: &ExtractSummary, json: bool) -> Result<()> {
    for (class, n) in &s.small_classes {
        eprintln!("warning: class `{class}` has only {n} images; results for it will be unreliable");
    }
    if json {
        println!("{}", serde_json::to_string_pretty(s)?);
        return Ok(());
    }
    let b = &s.backbone;
    println!(
        "backbone   {} ({}-d, output `{}`, preset {}, {}px from {}px), cache key {}",
        b.name,
        b.dim,
        b.output,
        b.preprocessing.preset.name(),
        b.preprocessing.size,
        b.preprocessing.resize,
        b.key
    );
    println!("data       {}", s.data.display());
    println!("workspace  {}", s.workspace.display());
    let width = s.classes.iter().map(String::len).max().unwrap_or(5).max(5);
    println!("\n{:<width$} {:>7} {:>7} {:>7}", "class", "train", "val", "test");
    let mut totals = [0; 3];
    for (class, counts) in &s.counts {
        println!("{class:<width$} {:>7} {:>7} {:>7}", counts[0], counts[1], counts[2]);
        for (t, c) in totals.iter_mut().zip(counts) {
            *t += c;
        }
    }
    println!(
        "{:<width$} {:>7} {:>7} {:>7}\n",
        "total", totals[0], totals[1], totals[2]
    );
    println!(
        "{} images: {} computed, {} from the cache, {} stale vectors dropped",
        s.images, s.computed, s.reused, s.dropped_from_cache
    );
    if !s.ignored.is_empty() {
        println!(
            "{} files ignored (not images by extension), e.g. {}",
            s.ignored.len(),
            s.ignored[0]
        );
    }
    if !s.skipped.is_empty() {
        println!("{} files skipped:", s.skipped.len());
        for f in &s.skipped {
            println!("  {}: {}", f.path, f.reason);
        }
    }
    println!(
        "{:.1} s in all, {:.1} images/s through the network",
        s.seconds, s.images_per_second
    );
    Ok(())
}
