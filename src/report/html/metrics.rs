//! The training and evaluation sections: the head's curves, the models side by side, and for
//! multi-label data the metrics of every label.

use std::path::Path;

use super::page::{decimal, esc, not_yet, percent, table};
use crate::evaluate::EvalSummary;
use crate::head::EpochStats;
use crate::report::{training_curves_text, EpochRecord};

/// The head's loss and accuracy per epoch, as the SVG `eval` writes, inlined.
pub fn training(history: &[EpochStats]) -> String {
    if history.is_empty() {
        return not_yet("No trained head yet.", "headstart train-head");
    }
    let records: Vec<EpochRecord> = history.iter().map(EpochRecord::from).collect();
    match training_curves_text(&records, Path::new("the training curves")) {
        Ok(svg) => format!(
            "<figure class=\"plot\">{}<figcaption>{} epochs of the head: loss and accuracy on the train and validation splits.</figcaption></figure>",
            responsive(&svg),
            history.len()
        ),
        Err(e) => format!("<p class=\"note\">{}</p>", esc(&e.to_string())),
    }
}

/// plotters gives its SVG a fixed size; a viewBox lets the stylesheet scale it to the page.
fn responsive(svg: &str) -> String {
    let Some(start) = svg.find("<svg") else {
        return svg.to_owned();
    };
    let dimension = |name: &str| {
        let key = format!("{name}=\"");
        let from = svg[start..].find(&key)? + start + key.len();
        let to = svg[from..].find('"')? + from;
        svg[from..to].parse::<u32>().ok()
    };
    match (svg.contains("viewBox"), dimension("width"), dimension("height")) {
        (false, Some(w), Some(h)) => svg.replacen("<svg", &format!("<svg viewBox=\"0 0 {w} {h}\""), 1),
        _ => svg.to_owned(),
    }
}

/// The models side by side: overall figures, then precision, recall and F1 per class; for
/// multi-label data the per-label table instead.
pub fn evaluation(eval: Option<&EvalSummary>) -> String {
    let Some(e) = eval else {
        return not_yet("No evaluation yet.", "headstart eval");
    };
    if !e.multi_label.is_empty() {
        return multi_label(e);
    }
    let n = e.models.first().map_or(0, |m| m.evaluation.n);
    let mut out = format!("<p>The {} split, {n} images.</p>", e.split);
    let mut header = vec![""];
    header.extend(e.models.iter().map(|m| m.model.as_str()));
    type Figure = fn(&crate::metrics::Evaluation) -> Option<String>;
    let figures: [(&str, Figure); 4] = [
        ("accuracy", |v| Some(percent(v.accuracy))),
        ("top-5 accuracy", |v| v.top5_accuracy.map(percent)),
        ("mean class recall", |v| Some(percent(v.mean_class_recall))),
        ("log loss", |v| Some(decimal(v.log_loss))),
    ];
    let rows: Vec<Vec<String>> = figures
        .iter()
        .filter(|(_, f)| e.models.iter().any(|m| f(&m.evaluation).is_some()))
        .map(|(name, f)| {
            let mut row = vec![name.to_string()];
            row.extend(e.models.iter().map(|m| f(&m.evaluation).unwrap_or_else(|| "-".into())));
            row
        })
        .collect();
    out.push_str(&table(&header, &rows));

    let mut header = vec!["class".to_owned(), "support".to_owned()];
    for m in &e.models {
        header.extend(["precision", "recall", "F1"].map(|f| format!("{} {f}", m.model)));
    }
    let rows: Vec<Vec<String>> = e
        .classes
        .iter()
        .enumerate()
        .map(|(c, class)| {
            let support = e
                .models
                .first()
                .and_then(|m| m.evaluation.per_class.get(c))
                .map_or_else(|| "-".into(), |m| m.support.to_string());
            let mut row = vec![esc(class), support];
            for m in &e.models {
                match m.evaluation.per_class.get(c) {
                    Some(p) => row.extend([p.precision, p.recall, p.f1].map(decimal)),
                    None => row.extend(["-", "-", "-"].map(String::from)),
                }
            }
            row
        })
        .collect();
    let header: Vec<&str> = header.iter().map(String::as_str).collect();
    out.push_str("<h3>Per class</h3>");
    out.push_str(&table(&header, &rows));
    out
}

fn multi_label(e: &EvalSummary) -> String {
    let n = e.multi_label.first().map_or(0, |m| m.evaluation.n);
    let mut out = format!("<p>The {} split, {n} images, multi-label.</p>", e.split);
    let mut header = vec![""];
    header.extend(e.multi_label.iter().map(|m| m.model.as_str()));
    type Figure = fn(&crate::metrics::multilabel::MultiLabelEvaluation) -> String;
    let figures: [(&str, Figure); 5] = [
        ("mean average precision", |v| decimal(v.mean_average_precision)),
        ("subset accuracy", |v| percent(v.subset_accuracy)),
        ("Hamming loss", |v| decimal(v.hamming_loss)),
        ("micro F1", |v| decimal(v.micro_f1)),
        ("macro F1", |v| decimal(v.macro_f1)),
    ];
    let rows: Vec<Vec<String>> = figures
        .iter()
        .map(|(name, f)| {
            let mut row = vec![name.to_string()];
            row.extend(e.multi_label.iter().map(|m| f(&m.evaluation)));
            row
        })
        .collect();
    out.push_str(&table(&header, &rows));
    for m in &e.multi_label {
        let rows: Vec<Vec<String>> = m
            .evaluation
            .per_label
            .iter()
            .map(|l| {
                vec![
                    esc(&l.name),
                    l.support.to_string(),
                    l.average_precision.map_or_else(|| "-".into(), decimal),
                    decimal(f64::from(l.threshold)),
                    decimal(l.precision),
                    decimal(l.recall),
                    decimal(l.f1),
                ]
            })
            .collect();
        out.push_str(&format!("<h3>Per label, {}</h3>", esc(&m.model)));
        out.push_str(&table(
            &[
                "label",
                "support",
                "average precision",
                "threshold",
                "precision",
                "recall",
                "F1",
            ],
            &rows,
        ));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_fixed_size_svg_gets_a_view_box() {
        let svg = "<svg width=\"1100\" height=\"440\" xmlns=\"x\"></svg>";
        assert!(responsive(svg).starts_with("<svg viewBox=\"0 0 1100 440\" width="));
        let boxed = "<svg viewBox=\"0 0 1 1\" width=\"1\" height=\"1\"></svg>";
        assert_eq!(responsive(boxed), boxed);
    }
}
