//! The ranking of a sweep's trials and its CSV form.

use std::cmp::Ordering;

use super::trial::{correct, Outcome, TrialResult};

/// The leaderboard's JSON file (the sweep's summary) in the journal folder.
pub const JSON_FILE: &str = "leaderboard.json";
/// The leaderboard's CSV file ([`csv`]) in the journal folder.
pub const CSV_FILE: &str = "leaderboard.csv";

/// Sorts `results` best first: finished trials by the images classified right over all folds
/// (pooled accuracy; see [`correct`]), ties by lower mean log loss,
/// then by id, backbone and view setting, so equal results always come in the same order; failed trials last, by id.
pub fn rank(results: &mut [TrialResult]) {
    results.sort_by(compare);
}

fn compare(a: &TrialResult, b: &TrialResult) -> Ordering {
    match (&a.outcome, &b.outcome) {
        (
            Outcome::Done {
                folds: af,
                log_loss: al,
                ..
            },
            Outcome::Done {
                folds: bf,
                log_loss: bl,
                ..
            },
        ) => correct(bf)
            .cmp(&correct(af))
            .then(al.mean.total_cmp(&bl.mean))
            .then_with(|| tie(a).cmp(&tie(b))),
        (Outcome::Done { .. }, Outcome::Failed { .. }) => Ordering::Less,
        (Outcome::Failed { .. }, Outcome::Done { .. }) => Ordering::Greater,
        (Outcome::Failed { .. }, Outcome::Failed { .. }) => tie(a).cmp(&tie(b)),
    }
}

/// What orders equal results: the configuration, its backbone and its view setting.
fn tie(r: &TrialResult) -> (&str, &str, Option<&str>) {
    (&r.id, &r.backbone, r.views.map(|v| v.name()))
}

/// The columns of [`csv`].
pub const CSV_HEADER: &str =
    "rank,id,backbone,kind,config,status,accuracy_mean,accuracy_std,accuracy_low,accuracy_high,\
mean_class_recall_mean,mean_class_recall_std,log_loss_mean,log_loss_std,seconds,reason";

/// The ranked results as CSV, one row per trial; empty cells for what a failed trial lacks.
pub fn csv(ranked: &[TrialResult]) -> String {
    let mut out = String::from(CSV_HEADER);
    out.push('\n');
    for (i, r) in ranked.iter().enumerate() {
        let fields: Vec<String> = match &r.outcome {
            Outcome::Done {
                accuracy,
                mean_class_recall,
                log_loss,
                ..
            } => vec![
                "done".into(),
                accuracy.mean.to_string(),
                accuracy.std.to_string(),
                accuracy.low.to_string(),
                accuracy.high.to_string(),
                mean_class_recall.mean.to_string(),
                mean_class_recall.std.to_string(),
                log_loss.mean.to_string(),
                log_loss.std.to_string(),
                r.seconds.to_string(),
                String::new(),
            ],
            Outcome::Failed { fold, reason } => {
                let mut f = vec!["failed".to_string()];
                f.extend(std::iter::repeat_n(String::new(), 8));
                f.push(r.seconds.to_string());
                f.push(quote(&format!("fold {fold}: {reason}")));
                f
            }
        };
        out += &format!(
            "{},{},{},{},{},{}\n",
            i + 1,
            r.id,
            quote(&r.backbone),
            r.spec.kind(),
            quote(&r.label()),
            fields.join(",")
        );
    }
    out
}

/// A CSV field, quoted when it holds a comma, quote or line break (RFC 4180).
fn quote(field: &str) -> String {
    if field.contains([',', '"', '\n', '\r']) {
        format!("\"{}\"", field.replace('"', "\"\""))
    } else {
        field.to_string()
    }
}
