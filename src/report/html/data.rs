//! The data section: images per class and split, what was skipped, and the backbone that
//! embedded them.

use super::page::{esc, not_yet, table};
use crate::cache::Manifest;
use crate::dataset::Split;

/// Counts per class and split, the files skipped, and the backbone.
pub fn section(manifest: Option<&Manifest>) -> String {
    let Some(m) = manifest else {
        return not_yet("No extracted data yet.", "headstart extract --data DIR");
    };
    let mut counts = vec![[0usize; 3]; m.classes.len()];
    for e in &m.entries {
        let labels = e.sample.labels.clone().unwrap_or_else(|| vec![e.sample.class]);
        let split = Split::ALL.iter().position(|&s| s == e.sample.split).unwrap_or(0);
        for label in labels {
            if let Some(row) = counts.get_mut(label) {
                row[split] += 1;
            }
        }
    }
    let mut rows: Vec<Vec<String>> = m
        .classes
        .iter()
        .zip(&counts)
        .map(|(class, c)| {
            let mut row = vec![esc(class)];
            row.extend(c.iter().map(usize::to_string));
            row.push(c.iter().sum::<usize>().to_string());
            row
        })
        .collect();
    let mut totals = vec!["<b>all images</b>".to_owned()];
    for s in Split::ALL {
        totals.push(m.entries.iter().filter(|e| e.sample.split == s).count().to_string());
    }
    totals.push(m.entries.len().to_string());
    rows.push(totals);
    let (label, labels) = if m.multi_label {
        ("label", "labels")
    } else {
        ("class", "classes")
    };
    let mut out = format!(
        "<p>{} images in {} {labels} from <code>{}</code>{}.</p>",
        m.entries.len(),
        m.classes.len(),
        esc(&m.data_root.display().to_string()),
        if m.multi_label {
            " (multi-label: an image counts once per label it has)"
        } else {
            ""
        }
    );
    out.push_str(&table(&[label, "train", "val", "test", "total"], &rows));
    if !m.skipped.is_empty() {
        out.push_str(&format!(
            "<details><summary>{} files skipped</summary><ul>",
            m.skipped.len()
        ));
        for s in &m.skipped {
            out.push_str(&format!("<li><code>{}</code>: {}</li>", esc(&s.path), esc(&s.reason)));
        }
        out.push_str("</ul></details>");
    }
    let b = &m.backbone;
    let p = b.preprocessing;
    out.push_str("<h3>Backbone</h3>");
    out.push_str(&table(
        &["", ""],
        &[
            vec!["name".into(), esc(&b.name)],
            vec![
                "embedding".into(),
                format!("{} values from output <code>{}</code>", b.dim, esc(&b.output)),
            ],
            vec![
                "preprocessing".into(),
                format!(
                    "preset {}, shorter side to {} px, centre crop {} px",
                    p.preset.name(),
                    p.resize,
                    p.size
                ),
            ],
            vec![
                "model file".into(),
                format!("<code>{}</code>", esc(&b.model_path.display().to_string())),
            ],
            vec!["cache key".into(), format!("<code>{}</code>", esc(&b.key))],
        ],
    ));
    out
}
