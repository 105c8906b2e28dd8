//! `audit.json`, as `headstart audit` writes it into the report folder, and its section: the
//! findings with their thumbnails side by side.
//!
//! Read tolerantly: a section the audit did not run (or a field a later version dropped) is
//! simply absent, so an older or newer audit still shows what it has.

use serde::Deserialize;

use super::page::{decimal, esc, not_yet, table};
use super::thumbnails::Thumbnails;

/// The audit's file name inside the report folder.
pub const FILE: &str = crate::audit::AUDIT_FILE;
/// Findings of one kind shown on the page; the rest are counted and left to the JSON.
const SHOWN: usize = 50;

/// What `headstart audit` found; every section is optional.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default)]
pub struct Audit {
    /// Format version.
    pub version: u32,
    /// The backbone key whose embeddings were audited.
    pub backbone: String,
    /// Images audited.
    pub images: usize,
    /// Groups of files with the same bytes.
    pub exact_duplicates: Vec<ExactDuplicate>,
    /// Pairs of files whose embeddings are nearly the same.
    pub near_duplicates: Vec<NearDuplicate>,
    /// The cosine similarity at or above which a pair is a near-duplicate.
    pub near_duplicate_threshold: Option<f64>,
    /// Images whose label is likely wrong, most likely first.
    pub label_issues: Vec<LabelIssue>,
    /// Images far from every class.
    pub outliers: Vec<Outlier>,
    /// Counts per class and split, and how far the splits' class distributions are apart.
    pub balance: Option<Balance>,
    /// What the audit could not do, in words.
    pub notes: Vec<String>,
}

/// An image named in a finding.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default)]
pub struct AuditImage {
    /// Relative to the data folder.
    pub path: String,
    /// `train`, `val` or `test`.
    pub split: String,
    /// Its class's name.
    pub class: String,
}

/// Files with the same bytes.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default)]
pub struct ExactDuplicate {
    /// SHA-256 of the bytes, hex.
    pub sha256: String,
    /// The files.
    pub images: Vec<AuditImage>,
    /// Whether they lie in more than one split (a leak).
    pub crosses_splits: bool,
}

/// Two files whose embeddings are nearly the same.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default)]
pub struct NearDuplicate {
    /// One file.
    pub a: AuditImage,
    /// The other.
    pub b: AuditImage,
    /// Cosine similarity of their embeddings.
    pub similarity: f64,
    /// Whether they lie in different splits (a leak).
    pub crosses_splits: bool,
}

/// An image whose label is likely wrong.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default)]
pub struct LabelIssue {
    /// Relative to the data folder.
    pub path: String,
    /// Its split.
    pub split: String,
    /// The class it is labelled with.
    pub given: String,
    /// The class it more likely belongs to.
    pub suggested: String,
    /// Out-of-fold probability of the given class.
    pub self_confidence: f64,
    /// Out-of-fold probability of the suggested class.
    pub suggested_probability: f64,
    /// Share of its nearest neighbours that have its given class.
    pub neighbour_agreement: f64,
    /// The ranking score: lower is more suspect.
    pub score: f64,
}

/// An image far from every class.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default)]
pub struct Outlier {
    /// Relative to the data folder.
    pub path: String,
    /// Its split.
    pub split: String,
    /// Its class.
    pub class: String,
    /// How typical it is: lower is further from every class.
    pub score: f64,
}

/// Counts per class and split.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default)]
pub struct Balance {
    /// The splits, in the order of `counts`.
    pub splits: Vec<String>,
    /// The classes, in the order of each row of `counts`.
    pub classes: Vec<String>,
    /// Per split, per class.
    pub counts: Vec<Vec<usize>>,
    /// How far two splits' class distributions are apart.
    pub distance: Vec<SplitDistance>,
}

/// The distance between two splits' class distributions.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default)]
pub struct SplitDistance {
    /// One split.
    pub a: String,
    /// The other.
    pub b: String,
    /// Half the sum of the absolute differences of the class shares, in `[0, 1]`.
    pub total_variation: f64,
}

impl Audit {
    /// Every image the findings name, in the order the page shows them, for thumbnails.
    pub fn images(&self) -> Vec<&str> {
        let mut paths = Vec::new();
        for d in self.exact_duplicates.iter().take(SHOWN) {
            paths.extend(d.images.iter().map(|i| i.path.as_str()));
        }
        for d in self.near_duplicates.iter().take(SHOWN) {
            paths.extend([d.a.path.as_str(), d.b.path.as_str()]);
        }
        paths.extend(self.label_issues.iter().take(SHOWN).map(|i| i.path.as_str()));
        paths.extend(self.outliers.iter().take(SHOWN).map(|i| i.path.as_str()));
        paths
    }
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
    let threshold = audit
        .near_duplicate_threshold
        .map(|t| format!("cosine similarity at least {}", decimal(t)))
        .unwrap_or_else(|| "nearly the same embeddings".to_owned());
    out.push_str(&findings("Near-duplicates", &threshold, &audit.near_duplicates, |d| {
        format!(
            "{}<span class=\"tag\">similarity {}</span><div class=\"side\">{}{}</div>",
            leak(d.crosses_splits),
            decimal(d.similarity),
            figure(&d.a, thumbs),
            figure(&d.b, thumbs)
        )
    }));
    out.push_str(&findings(
        "Likely wrong labels",
        "most suspect first",
        &audit.label_issues,
        |i| {
            let image = AuditImage {
                path: i.path.clone(),
                split: i.split.clone(),
                class: i.given.clone(),
            };
            format!(
                "<div class=\"side\">{}<p>labelled <b>{}</b>, likely <b>{}</b> ({})<br>\
                 probability of its label {}, neighbours agreeing {}, score {}</p></div>",
                figure(&image, thumbs),
                esc(&i.given),
                esc(&i.suggested),
                decimal(i.suggested_probability),
                decimal(i.self_confidence),
                decimal(i.neighbour_agreement),
                decimal(i.score)
            )
        },
    ));
    out.push_str(&findings(
        "Outliers",
        "furthest from every class first",
        &audit.outliers,
        |o| {
            let image = AuditImage {
                path: o.path.clone(),
                split: o.split.clone(),
                class: o.class.clone(),
            };
            format!(
                "<div class=\"side\">{}<p>score {}</p></div>",
                figure(&image, thumbs),
                decimal(o.score)
            )
        },
    ));
    if let Some(b) = &audit.balance {
        out.push_str(&balance(b));
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

fn figure(image: &AuditImage, thumbs: &Thumbnails) -> String {
    format!(
        "<figure class=\"thumb\">{}<figcaption><span class=\"path\">{}</span><br>{} · {}</figcaption></figure>",
        thumbs.img(&image.path),
        esc(&image.path),
        esc(&image.split),
        esc(&image.class)
    )
}

fn balance(b: &Balance) -> String {
    let mut header = vec!["class"];
    header.extend(b.splits.iter().map(String::as_str));
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
            .map(|d| format!("{} – {} {}", esc(&d.a), esc(&d.b), decimal(d.total_variation)))
            .collect();
        out.push_str(&parts.join(", "));
        out.push_str(".</p>");
    }
    out
}
