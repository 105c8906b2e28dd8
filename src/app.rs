//! Runs the subcommands: calls the library stages with checked options and prints what the user
//! reads. Results go to stdout (`--json` makes them machine-readable); warnings and progress go
//! to stderr.

use std::process::ExitCode;

use anyhow::Result;
use headstart::baseline::FitStatus;
use headstart::evaluate::{eval, EvalSummary};
use headstart::export::{export, ExportSummary};
use headstart::extract::{extract, ExtractSummary};
use headstart::head::EpochStats;
use headstart::predict::{predict, PredictSummary};
use headstart::report::{comparison_table, confusion_table};
use headstart::train::{train, TrainSummary};

use crate::cli::{Cli, Command, DemoArgs};
use crate::options;
use crate::progress::Reporter;

/// Some images could not be used: the run finished, but the exit code says so (as ripgrep does
/// for files it could not search). 1 is a fatal error, 2 a command-line usage error (clap).
const EXIT_SKIPPED: u8 = 3;

pub fn run(cli: Cli) -> Result<ExitCode> {
    let global = &cli.global;
    match &cli.command {
        Command::Extract(args) => {
            let summary = extract(&options::extract(global, args)?, &Reporter::new(global.quiet))?;
            print_extract(&summary, global.json)?;
            Ok(exit_for(summary.skipped.is_empty()))
        }
        Command::TrainHead(args) => {
            let summary = train(
                &options::train(global, args)?,
                &mut epoch_printer(global.quiet || global.json),
            )?;
            print_train(&summary, global.json)?;
            Ok(ExitCode::SUCCESS)
        }
        Command::Eval(args) => {
            let summary = eval(&options::eval(global, args))?;
            print_eval(&summary, args.show_mistakes, global.json)?;
            Ok(ExitCode::SUCCESS)
        }
        Command::Predict(args) => {
            let summary = predict(&options::predict(global, args)?, &Reporter::new(global.quiet))?;
            print_predict(&summary, global.json, args.csv)?;
            Ok(exit_for(summary.skipped.is_empty()))
        }
        Command::Export(args) => {
            let summary = export(&options::export(global, args))?;
            print_export(&summary, global.json)?;
            Ok(ExitCode::SUCCESS)
        }
        Command::Demo(args) => demo(&cli, args),
    }
}

/// extract -> train-head --baseline -> eval on the bundled CIFAR-10 subset (or `--data`).
fn demo(cli: &Cli, args: &DemoArgs) -> Result<ExitCode> {
    let global = &cli.global;
    let data = match &args.data {
        Some(data) => data.clone(),
        None => headstart::bundled::demo(&headstart::home::home())?,
    };
    let extracted = extract(&options::default_extract(global, &data)?, &Reporter::new(global.quiet))?;
    let trained = train(
        &options::demo_train(global, args),
        &mut epoch_printer(global.quiet || global.json),
    )?;
    let evaluated = eval(&options::demo_eval(global))?;
    if global.json {
        let all = serde_json::json!({ "extract": extracted, "train": trained, "eval": evaluated });
        println!("{}", serde_json::to_string_pretty(&all)?);
    } else {
        print_extract(&extracted, false)?;
        println!();
        print_train(&trained, false)?;
        println!();
        print_eval(&evaluated, 5, false)?;
    }
    Ok(exit_for(extracted.skipped.is_empty()))
}

fn exit_for(clean: bool) -> ExitCode {
    if clean {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(EXIT_SKIPPED)
    }
}

fn epoch_printer(quiet: bool) -> impl FnMut(&EpochStats) {
    move |e: &EpochStats| {
        if !quiet {
            let val = match (e.val_loss, e.val_accuracy) {
                (Some(l), Some(a)) => format!("  val loss {l:.4} acc {a:.4}"),
                _ => String::new(),
            };
            eprintln!(
                "epoch {:>3}  train loss {:.4} acc {:.4}{val}  ({:.2} s)",
                e.epoch, e.train_loss, e.train_accuracy, e.seconds
            );
        }
    }
}

fn print_extract(s: &ExtractSummary, json: bool) -> Result<()> {
    for (class, n) in &s.small_classes {
        eprintln!("warning: class `{class}` has only {n} images; results for it will be unreliable");
    }
    for class in &s.empty_classes {
        eprintln!("warning: class folder `{class}` has no images; it is left out of the classes");
    }
    if s.classes.len() < 2 {
        eprintln!("warning: only one class; train-head needs at least two");
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

fn print_train(s: &TrainSummary, json: bool) -> Result<()> {
    if json {
        println!("{}", serde_json::to_string_pretty(s)?);
        return Ok(());
    }
    println!(
        "head trained on {} images ({} validation), {} classes, {} epochs in {:.2} s; kept epoch {}",
        s.n_train,
        s.n_val,
        s.classes.len(),
        s.history.len(),
        s.seconds,
        s.best_epoch
    );
    if let Some(last) = s.history.iter().find(|e| e.epoch == s.best_epoch) {
        if let Some(acc) = last.val_accuracy {
            println!("validation accuracy {acc:.4}");
        }
    }
    println!("saved {}", s.head_path.display());
    if let Some(b) = &s.baseline {
        let chosen = b.sweep.iter().find(|p| p.alpha == b.chosen_alpha);
        let val = chosen
            .and_then(|p| p.val_accuracy)
            .map_or(String::new(), |a| format!(", validation accuracy {a:.4}"));
        println!(
            "baseline (logistic regression) C = {:.3} ({:?}){val}, {} strengths tried in {:.2} s",
            1.0 / b.chosen_alpha,
            b.selection,
            b.sweep.len(),
            b.seconds
        );
        let unconverged = b.sweep.iter().filter(|p| p.status != FitStatus::Converged).count();
        if unconverged > 0 {
            println!("  {unconverged} strengths stopped before reaching the tolerance (see the sweep in --json)");
        }
        println!("saved {}", b.path.display());
    }
    Ok(())
}

fn print_eval(s: &EvalSummary, show_mistakes: usize, json: bool) -> Result<()> {
    if json {
        println!("{}", serde_json::to_string_pretty(s)?);
        return Ok(());
    }
    println!(
        "{} split, {} images\n",
        s.split,
        s.models.first().map_or(0, |m| m.evaluation.n)
    );
    let rows: Vec<(&str, &headstart::metrics::Evaluation)> =
        s.models.iter().map(|m| (m.model.as_str(), &m.evaluation)).collect();
    println!("{}", comparison_table(&rows));
    for m in &s.models {
        println!("confusion matrix, {} (rows: true, columns: predicted)", m.model);
        println!("{}", confusion_table(&m.evaluation, &s.classes));
        if !m.misclassified.is_empty() && show_mistakes > 0 {
            println!(
                "{} misclassified by the {}, most confident first:",
                m.misclassified.len(),
                m.model
            );
            for x in m.misclassified.iter().take(show_mistakes) {
                println!(
                    "  {}  {} -> {} ({:.2})",
                    x.path, x.true_label, x.predicted_label, x.confidence
                );
            }
            println!();
        }
    }
    for f in &s.files {
        println!("wrote {}", f.display());
    }
    Ok(())
}

fn print_predict(s: &PredictSummary, json: bool, csv: bool) -> Result<()> {
    if json {
        println!("{}", serde_json::to_string_pretty(s)?);
    } else if csv {
        println!("path,rank,label,probability");
        for p in &s.predictions {
            for (rank, (label, prob)) in p.top.iter().enumerate() {
                println!(
                    "{},{},{},{prob:.6}",
                    csv_field(&p.path.display().to_string()),
                    rank + 1,
                    csv_field(label)
                );
            }
        }
    } else {
        for p in &s.predictions {
            let top: Vec<String> = p.top.iter().map(|(l, prob)| format!("{l} {prob:.3}")).collect();
            println!("{}  {}", p.path.display(), top.join("  "));
        }
    }
    for f in &s.skipped {
        eprintln!("skipped {}: {}", f.path, f.reason);
    }
    Ok(())
}

fn csv_field(s: &str) -> String {
    if s.contains([',', '"', '\n']) {
        format!("\"{}\"", s.replace('"', "\"\""))
    } else {
        s.to_string()
    }
}

fn print_export(s: &ExportSummary, json: bool) -> Result<()> {
    if json {
        println!("{}", serde_json::to_string_pretty(s)?);
    } else {
        println!(
            "wrote {} (output `{}`, probabilities of {} classes)",
            s.model.display(),
            s.output,
            s.classes
        );
        let p = &s.preprocessing;
        println!(
            "input: {}x{} {:?}, preset {}, shorter side to {} then centre crop",
            p.size,
            p.size,
            p.layout,
            p.preset.name(),
            p.resize
        );
        println!("wrote {}", s.labels.display());
    }
    Ok(())
}
