//! The confusion matrices and the gallery of evaluated images behind them.
//!
//! The gallery holds every evaluated image once, whatever the number of models: each card
//! carries, per model, the class predicted and its probability as data attributes, so that a
//! click on any model's cell filters the same cards. With scripts off the cards all show, the
//! head's mistakes first, most confident first.

use std::collections::HashMap;

use super::page::{esc, not_yet, percent};
use super::thumbnails::Thumbnails;
use crate::evaluate::{EvalSummary, Prediction};

/// An evaluated image, with each model's verdict (`None` where a model has no prediction for it).
struct Card<'a> {
    path: &'a str,
    truth: Option<usize>,
    verdicts: Vec<Option<(usize, f32)>>,
}

/// The images the section shows, in the order it shows them: the first model's mistakes,
/// most confident first, then the other models' mistakes, then the rest.
pub fn images(eval: Option<&EvalSummary>) -> Vec<&str> {
    let Some(e) = eval else { return Vec::new() };
    let mistakes = e.models.iter().flat_map(|m| m.misclassified.iter());
    let rest = e.models.iter().flat_map(|m| m.predictions.iter());
    mistakes.chain(rest).map(|p| p.path.as_str()).collect()
}

/// The matrices, one per model, and the gallery.
pub fn section(eval: Option<&EvalSummary>, thumbs: &Thumbnails) -> String {
    let Some(e) = eval else {
        return not_yet(
            "No evaluation yet: the confusion matrix and the images behind each cell.",
            "headstart eval",
        );
    };
    if !e.multi_label.is_empty() {
        return "<p>Multi-label data has no confusion matrix: see the per-label metrics above.</p>".to_owned();
    }
    let class_of: HashMap<&str, usize> = e.classes.iter().enumerate().map(|(i, c)| (c.as_str(), i)).collect();
    let mut out = String::from(
        "<p>Rows are true classes, columns predicted ones; the colour is the share of the row. \
         Choose a cell (click, or Enter or Space; arrow keys move between cells) to see its images below.</p>",
    );
    out.push_str("<div class=\"matrices\">");
    for (m, model) in e.models.iter().enumerate() {
        out.push_str(&matrix(m, &model.model, &model.evaluation.confusion, &e.classes));
    }
    out.push_str("</div>");
    out.push_str(&legend());
    let cards = cards(e, &class_of);
    if cards.is_empty() {
        out.push_str(&not_yet(
            "This eval.json has no per-image predictions (it was written by an older headstart).",
            "headstart eval",
        ));
        return out;
    }
    out.push_str(&gallery(e, &cards, thumbs));
    out
}

/// Every evaluated image once, the first model's mistakes first (most confident first).
fn cards<'a>(e: &'a EvalSummary, class_of: &HashMap<&str, usize>) -> Vec<Card<'a>> {
    let by_path: Vec<HashMap<&str, &Prediction>> = e
        .models
        .iter()
        .map(|m| m.predictions.iter().map(|p| (p.path.as_str(), p)).collect())
        .collect();
    let Some(first) = e.models.first() else {
        return Vec::new();
    };
    let mut cards: Vec<Card> = first
        .predictions
        .iter()
        .map(|p| Card {
            path: &p.path,
            truth: class_of.get(p.true_label.as_str()).copied(),
            verdicts: by_path
                .iter()
                .map(|model| {
                    let q = model.get(p.path.as_str())?;
                    Some((*class_of.get(q.predicted_label.as_str())?, q.confidence))
                })
                .collect(),
        })
        .collect();
    let wrong_confidence = |c: &Card| match c.verdicts.first() {
        Some(Some((predicted, confidence))) if Some(*predicted) != c.truth => Some(*confidence),
        _ => None,
    };
    // Stable: the right ones keep the split's order.
    cards.sort_by(|a, b| match (wrong_confidence(a), wrong_confidence(b)) {
        (Some(x), Some(y)) => y.total_cmp(&x),
        (x, y) => y.is_some().cmp(&x.is_some()),
    });
    cards
}

/// A model's matrix: a table of buttons, each holding its cell's coordinates for the script.
fn matrix(model: usize, name: &str, confusion: &[Vec<usize>], classes: &[String]) -> String {
    let mut out = format!(
        "<div class=\"scroll\"><table class=\"cm\" data-m=\"{model}\"><caption>{}</caption><thead><tr><th scope=\"col\">true \\ predicted</th>",
        esc(name)
    );
    for class in classes {
        out.push_str(&format!(
            "<th scope=\"col\"><span class=\"colname\">{}</span></th>",
            esc(class)
        ));
    }
    out.push_str("</tr></thead><tbody>");
    for (t, row) in confusion.iter().enumerate() {
        let class = classes.get(t).map_or_else(|| t.to_string(), |c| esc(c));
        out.push_str(&format!("<tr><th scope=\"row\">{class}</th>"));
        let total: usize = row.iter().sum();
        for (p, &n) in row.iter().enumerate() {
            let share = if total == 0 { 0.0 } else { n as f64 / total as f64 };
            let predicted = classes.get(p).map_or_else(|| p.to_string(), |c| esc(c));
            let style = if n == 0 {
                String::new()
            } else {
                let (background, text) = viridis(share);
                format!(" style=\"background:{background};color:{text}\"")
            };
            out.push_str(&format!(
                "<td><button type=\"button\" class=\"cell{}\" data-m=\"{model}\" data-t=\"{t}\" data-p=\"{p}\" data-n=\"{n}\"{style} \
                 aria-label=\"true {class}, predicted {predicted}: {n} images ({})\">{n}</button></td>",
                if t == p { " diag" } else { "" },
                percent(share)
            ));
        }
        out.push_str("</tr>");
    }
    out.push_str("</tbody></table></div>");
    out
}

/// The colour scale's key, so the colours are read without guessing.
fn legend() -> String {
    let stops: Vec<String> = (0..=4)
        .map(|i| {
            let (background, text) = viridis(f64::from(i) / 4.0);
            format!(
                "<span style=\"background:{background};color:{text}\">{}%</span>",
                i * 25
            )
        })
        .collect();
    format!("<p class=\"legend\">share of the row: {}</p>", stops.join(""))
}

/// Viridis, which reads in grey and to every common colour vision deficiency, at `share`
/// (matplotlib's colours at 0, 0.25, 0.5, 0.75 and 1, mixed linearly), with the text colour
/// that stays legible on it.
fn viridis(share: f64) -> (String, &'static str) {
    const STOPS: [[f64; 3]; 5] = [
        [68.0, 1.0, 84.0],
        [59.0, 82.0, 139.0],
        [33.0, 145.0, 140.0],
        [94.0, 201.0, 98.0],
        [253.0, 231.0, 37.0],
    ];
    let t = share.clamp(0.0, 1.0) * 4.0;
    let i = (t.floor() as usize).min(3);
    let f = t - i as f64;
    let c: Vec<u8> = (0..3)
        .map(|k| (STOPS[i][k] + f * (STOPS[i + 1][k] - STOPS[i][k])).round() as u8)
        .collect();
    let text = if share < 0.55 { "#fff" } else { "#000" };
    (format!("#{:02x}{:02x}{:02x}", c[0], c[1], c[2]), text)
}

/// The cards, with the status line and buttons the script drives.
fn gallery(e: &EvalSummary, cards: &[Card], thumbs: &Thumbnails) -> String {
    let first = e.models.first().map_or("", |m| m.model.as_str());
    let wrong = cards
        .iter()
        .filter(|c| matches!(c.verdicts.first(), Some(Some((p, _))) if Some(*p) != c.truth))
        .count();
    let mut out = format!(
        "<h3 id=\"gallery-h\">Images</h3><div class=\"controls\">\
         <button type=\"button\" id=\"show-mistakes\" data-m=\"0\">mistakes of the {}</button> \
         <button type=\"button\" id=\"show-all\">all images</button></div>\
         <p id=\"gallery-status\" aria-live=\"polite\">All {} evaluated images; the {} mistakes of the {} come first, most confident first.</p>",
        esc(first),
        cards.len(),
        wrong,
        esc(first)
    );
    out.push_str(&thumbs.note());
    out.push_str("<div id=\"gallery\" class=\"gallery\">");
    let name = |c: Option<usize>| c.and_then(|c| e.classes.get(c)).map_or("?", String::as_str);
    for card in cards {
        let mut data = format!(" data-t=\"{}\"", card.truth.map_or(-1, |t| t as i64));
        let mut verdicts = String::new();
        for (m, verdict) in card.verdicts.iter().enumerate() {
            let Some((p, confidence)) = verdict else { continue };
            data.push_str(&format!(" data-p{m}=\"{p}\" data-c{m}=\"{confidence:.4}\""));
            let right = Some(*p) == card.truth;
            verdicts.push_str(&format!(
                "<br><span class=\"{}\">{} {}: {} {}</span>",
                if right { "right" } else { "wrong" },
                if right { "✓" } else { "✗" },
                esc(&e.models[m].model),
                esc(name(Some(*p))),
                percent(f64::from(*confidence))
            ));
        }
        out.push_str(&format!(
            "<figure class=\"card\"{data}>{}<figcaption><span class=\"path\">{}</span><br>true: <b>{}</b>{verdicts}</figcaption></figure>",
            thumbs.img(card.path),
            esc(card.path),
            esc(name(card.truth))
        ));
    }
    out.push_str("</div>");
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn viridis_runs_dark_to_light() {
        assert_eq!(viridis(0.0), ("#440154".to_owned(), "#fff"));
        assert_eq!(viridis(1.0), ("#fde725".to_owned(), "#000"));
        assert_eq!(viridis(0.5).0, "#21918c");
    }
}
