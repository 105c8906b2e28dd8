//! The experiments section: the last sweep's leaderboard and the workspace's run history.

use super::inputs::Leaderboard;
use super::page::{decimal, esc, not_yet, percent, table};
use crate::runs::Runs;
use crate::sweep::leaderboard::CSV_FILE;
use crate::sweep::trial::Outcome;

/// Rows of the leaderboard shown; the CSV beside it has them all.
const TOP_TRIALS: usize = 20;
/// Most recent runs shown.
const LAST_RUNS: usize = 30;
/// The metrics a run's row shows, where it has them: what each command measures first.
const RUN_METRICS: [&str; 5] = [
    "head.accuracy",
    "baseline.accuracy",
    "head.final.val_accuracy",
    "cv.accuracy",
    "test.accuracy",
];

/// The leaderboard (best first) and the runs (newest first).
pub fn section(leaderboard: Option<&Leaderboard>, runs: &Runs) -> String {
    let mut out = String::from("<h3>Sweep leaderboard</h3>");
    match leaderboard {
        None => out.push_str(&not_yet(
            "No sweep yet: many classifiers compared by cross-validation.",
            "headstart sweep",
        )),
        Some(l) => out.push_str(&trials(l)),
    }
    out.push_str("<h3>Run history</h3>");
    if runs.records.is_empty() {
        out.push_str("<p>No runs recorded yet: <code>train-head</code>, <code>eval</code> and <code>sweep</code> each record one.</p>");
    } else {
        out.push_str(&history(runs));
    }
    out
}

fn trials(l: &Leaderboard) -> String {
    let mut out = format!(
        "<p>{} configurations, {}-fold cross-validation on train + val, best first.</p>",
        l.results.len(),
        l.folds
    );
    let rows: Vec<Vec<String>> = l
        .results
        .iter()
        .take(TOP_TRIALS)
        .enumerate()
        .map(|(i, r)| {
            let name = format!("{}. {} <small>{}</small>", i + 1, esc(&r.label()), esc(&r.backbone));
            match &r.outcome {
                Outcome::Done {
                    accuracy,
                    mean_class_recall,
                    log_loss,
                    ..
                } => vec![
                    name,
                    format!("{} ± {}", percent(accuracy.mean), percent(accuracy.std)),
                    percent(mean_class_recall.mean),
                    decimal(log_loss.mean),
                    format!("{:.1}", r.seconds),
                ],
                Outcome::Failed { fold, reason } => vec![
                    name,
                    format!("failed on fold {fold}: {}", esc(reason)),
                    String::new(),
                    String::new(),
                    format!("{:.1}", r.seconds),
                ],
            }
        })
        .collect();
    out.push_str(&table(
        &[
            "configuration",
            "accuracy ± std",
            "mean class recall",
            "log loss",
            "seconds",
        ],
        &rows,
    ));
    if l.results.len() > TOP_TRIALS {
        out.push_str(&format!(
            "<p class=\"note\">{} more in <code>sweeps/{CSV_FILE}</code>.</p>",
            l.results.len() - TOP_TRIALS
        ));
    }
    if let Some(w) = &l.refit {
        let test = w.test.map_or_else(String::new, |t| {
            format!(
                ": on the test split accuracy {}, log loss {}",
                percent(t.accuracy),
                decimal(t.log_loss)
            )
        });
        out.push_str(&format!(
            "<p>The winner, {} on {}, was refitted on train + val as the workspace's head{test}.</p>",
            esc(&w.label),
            esc(&w.backbone)
        ));
    }
    out
}

fn history(runs: &Runs) -> String {
    let mut header = vec!["run", "command", "backbone"];
    header.extend(RUN_METRICS);
    let rows: Vec<Vec<String>> = runs
        .records
        .iter()
        .rev()
        .take(LAST_RUNS)
        .map(|r| {
            let mut row = vec![
                format!("<code>{}</code>", esc(&r.id)),
                esc(&r.command),
                esc(&r.backbone.name),
            ];
            row.extend(
                RUN_METRICS
                    .iter()
                    .map(|m| r.metrics.get(*m).map_or_else(|| "-".into(), |v| percent(*v))),
            );
            row
        })
        .collect();
    let mut out = table(&header, &rows);
    if runs.records.len() > LAST_RUNS {
        out.push_str(&format!(
            "<p class=\"note\">The last {LAST_RUNS} of {} runs; <code>headstart runs</code> lists them all.</p>",
            runs.records.len()
        ));
    }
    if !runs.damaged.is_empty() {
        out.push_str(&format!(
            "<p class=\"note\">{} files in runs/ are not readable records.</p>",
            runs.damaged.len()
        ));
    }
    out
}
