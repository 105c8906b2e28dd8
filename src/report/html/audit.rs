//! `audit.json`, as `headstart audit` writes it into the report folder, and its section: the
//! findings with their thumbnails side by side.
//!
//! The file is read into the audit's own types, which default every section the audit did not
//! write, so an older or partial file still shows what it has.

use super::page::{decimal, esc, not_yet, table};
use super::thumbnails::Thumbnails;
use crate::audit::{AuditSummary as Audit, Balance, ImageRef};

/// The audit's file name inside the report folder.
pub const FILE: &str = crate::audit::AUDIT_FILE;
/// Findings of one kind shown on the page; the rest are counted and left to the JSON.
const SHOWN: usize = 50;

/// Every image the findings name, in the order the page shows them, for thumbnails.
pub fn images(audit: &Audit) -> Vec<&str> {
    let mut paths = Vec::new();
    for d in audit.exact_duplicates.iter().take(SHOWN) {
        paths.extend(d.images.iter().map(|i| i.path.as_str()));
    }
    for d in audit.near_duplicates.iter().take(SHOWN) {
        paths.extend([d.a.path.as_str(), d.b.path.as_str()]);
    }
    paths.extend(audit.label_issues.iter().take(SHOWN).map(|i| i.path.as_str()));
    paths.extend(audit.outliers.iter().take(SHOWN).map(|i| i.path.as_str()));
    paths
}

/// The audit section: notes, then each kind of finding, then the balance.
pub fn section(audit: Option<&Audit>, thumbs: &Thumbnails) -> String {
    let Some(audit) = audit else {
        return not_yet(
            "No audit yet: duplicates, leaks across splits, likely wrong labels and outliers.",
            "headstart audit",
        );
    };
    let mut out = format!(
        "<p>{} images audited with the embeddings of backbone <code>{}</code>.</p>",
        audit.images,
        esc(&audit.backbone)
    );
    for note in &audit.notes {
        out.push_str(&format!("<p class=\"note\">{}</p>", esc(note)));
    }
    out.push_str(&findings(
        "Exact duplicates",
        "files with the same bytes",
        &audit.exact_duplicates,
        |d| {
            let figures: String = d.images.iter().map(|i| figure(i, thumbs)).collect();
            format!("{}<div class=\"side\">{figures}</div>", leak(d.crosses_splits))
        },
    ));
    let threshold = format!(
        "aligned pixel similarity at least {}",
        decimal(f64::from(audit.near_duplicate_threshold))
    );
    out.push_str(&findings("Near-duplicates", &threshold, &audit.near_duplicates, |d| {
        format!(
            "{}<span class=\"tag\">pixels {}, cosine {}</span><div class=\"side\">{}{}</div>",
            leak(d.crosses_splits),
            decimal(f64::from(d.pixels)),
            decimal(f64::from(d.similarity)),
            figure(&d.a, thumbs),
            figure(&d.b, thumbs)
        )
    }));
    out.push_str(&findings(
        "Likely wrong labels",
        "most suspect first",
        &audit.label_issues,
        |i| {
            let image = ImageRef {
                path: i.path.clone(),
                split: i.split,
                class: i.given.clone(),
            };
            format!(
                "<div class=\"side\">{}<p>labelled <b>{}</b>, likely <b>{}</b> ({})<br>\
                 probability of its label {}, neighbours agreeing {}, score {}</p></div>",
                figure(&image, thumbs),
                esc(&i.given),
                esc(&i.suggested),
                decimal(f64::from(i.suggested_probability)),
                decimal(f64::from(i.self_confidence)),
                decimal(f64::from(i.neighbour_agreement)),
                decimal(f64::from(i.score))
            )
        },
    ));
    out.push_str(&findings(
        "Outliers",
        "furthest from every class first",
        &audit.outliers,
        |o| {
            let image = ImageRef {
                path: o.path.clone(),
                split: o.split,
                class: o.class.clone(),
            };
            format!(
                "<div class=\"side\">{}<p>score {}</p></div>",
                figure(&image, thumbs),
                decimal(f64::from(o.score))
            )
        },
    ));
    if !audit.balance.classes.is_empty() {
        out.push_str(&balance(&audit.balance));
    }
    out
}

/// One kind of finding: a heading with its count, then up to [`SHOWN`] items.
fn findings<T>(title: &str, about: &str, items: &[T], item: impl Fn(&T) -> String) -> String {
    let mut out = format!(
        "<h3>{} <small>({}; {})</small></h3>",
        esc(title),
        items.len(),
        esc(about)
    );
    if items.is_empty() {
        out.push_str("<p>None found.</p>");
        return out;
    }
    out.push_str("<ol class=\"findings\">");
    for i in items.iter().take(SHOWN) {
        out.push_str(&format!("<li>{}</li>", item(i)));
    }
    out.push_str("</ol>");
    if items.len() > SHOWN {
        out.push_str(&format!(
            "<p class=\"note\">{} more in {FILE}.</p>",
            items.len() - SHOWN
        ));
    }
    out
}

fn leak(crosses: bool) -> &'static str {
    if crosses {
        "<span class=\"tag leak\">⚠ crosses splits</span>"
    } else {
        ""
    }
}

fn figure(image: &ImageRef, thumbs: &Thumbnails) -> String {
    format!(
        "<figure class=\"thumb\">{}<figcaption><span class=\"path\">{}</span><br>{} · {}</figcaption></figure>",
        thumbs.img(&image.path),
        esc(&image.path),
        esc(image.split.name()),
        esc(&image.class)
    )
}

fn balance(b: &Balance) -> String {
    let mut header = vec!["class"];
    header.extend(b.splits.iter().map(|s| s.name()));
    let rows: Vec<Vec<String>> = b
        .classes
        .iter()
        .enumerate()
        .map(|(c, class)| {
            let mut row = vec![esc(class)];
            row.extend(b.splits.iter().enumerate().map(|(s, _)| {
                b.counts
                    .get(s)
                    .and_then(|counts| counts.get(c))
                    .map_or_else(|| "-".to_owned(), usize::to_string)
            }));
            row
        })
        .collect();
    let mut out = format!("<h3>Class balance</h3>{}", table(&header, &rows));
    if !b.distance.is_empty() {
        out.push_str("<p>Total variation distance between the splits' class shares (0: the same, 1: disjoint): ");
        let parts: Vec<String> = b
            .distance
            .iter()
            .map(|d| format!("{} – {} {}", d.a.name(), d.b.name(), decimal(d.total_variation)))
            .collect();
        out.push_str(&parts.join(", "));
        out.push_str(".</p>");
    }
    out
}
