//! What the user reads and looks at after training: plain-text tables for the
//! terminal, SVG plots for the run directory, and one self-contained HTML page
//! that gathers everything the workspace holds ([`html`]).
//!
//! Plots are SVG because plotters' SVG backend needs no system fonts or native
//! libraries, so reports render the same on any machine, and any browser can
//! show them.

use std::fs;
use std::path::{Path, PathBuf};

use plotters::coord::Shift;
use plotters::prelude::*;
use plotters::style::text_anchor::{HPos, Pos, VPos};

use crate::head::EpochStats;
use crate::metrics::Evaluation;

pub mod html;
mod precision_recall;

pub use precision_recall::{label_curves, precision_recall_svg, LabelCurve};

/// Why a plot could not be produced.
#[derive(Debug, thiserror::Error)]
pub enum ReportError {
    /// Training curves were asked for with no epochs recorded.
    #[error("the training history is empty: record at least one epoch before plotting curves")]
    EmptyHistory,
    /// A confusion matrix was asked for with no classes.
    #[error("the evaluation has no classes, so there is no confusion matrix to draw")]
    NoClasses,
    /// Precision-recall curves were asked for with no label that occurs in the set.
    #[error("no label occurs in the evaluated images, so there is no precision-recall curve to draw")]
    NoCurves,
    /// The plotting library failed to draw.
    #[error("drawing {path} failed: {message}")]
    Draw {
        /// The picture being drawn.
        path: PathBuf,
        /// The plotting library's message.
        message: String,
    },
    /// The SVG file could not be written.
    #[error("cannot write {path}: {source}")]
    Write {
        /// The SVG file.
        path: PathBuf,
        /// The underlying error.
        #[source]
        source: std::io::Error,
    },
}

/// One epoch of a head's training, as plotted by [`training_curves_svg`].
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct EpochRecord {
    /// 1-based epoch number.
    pub epoch: usize,
    /// Mean training loss of the epoch.
    pub train_loss: f32,
    /// Fraction in `[0, 1]`.
    pub train_accuracy: f32,
    /// Validation loss after the epoch; `None` without a validation set.
    pub val_loss: Option<f32>,
    /// Fraction in `[0, 1]`.
    pub val_accuracy: Option<f32>,
}

impl From<&EpochStats> for EpochRecord {
    fn from(e: &EpochStats) -> Self {
        EpochRecord {
            epoch: e.epoch,
            train_loss: e.train_loss,
            train_accuracy: e.train_accuracy,
            val_loss: e.val_loss,
            val_accuracy: e.val_accuracy,
        }
    }
}

/// Side-by-side comparison of models evaluated on the same set, e.g.
/// `[("linear baseline", &base), ("head", &head)]`: overall accuracy, top-5
/// (when any model has it), mean class recall, then precision, recall and F1
/// of every class for each model.
///
/// Classes are matched by name, so evaluations with different class lists
/// still line up ("-" marks a class a model does not have). A note is added
/// when the models were evaluated on different numbers of samples, because
/// their numbers are then not directly comparable. Returns an empty string
/// for no rows.
pub fn comparison_table(rows: &[(&str, &Evaluation)]) -> String {
    if rows.is_empty() {
        return String::new();
    }
    let percent = |v: f64| format!("{:.1}%", 100.0 * v);
    let mut summary = vec![labelled_row("", rows.iter().map(|(name, _)| name.to_string()))];
    summary.push(labelled_row("samples", rows.iter().map(|(_, e)| e.n.to_string())));
    summary.push(labelled_row("accuracy", rows.iter().map(|(_, e)| percent(e.accuracy))));
    if rows.iter().any(|(_, e)| e.top5_accuracy.is_some()) {
        summary.push(labelled_row(
            "top-5 accuracy",
            rows.iter()
                .map(|(_, e)| e.top5_accuracy.map_or_else(|| "-".to_owned(), percent)),
        ));
    }
    summary.push(labelled_row(
        "mean class recall",
        rows.iter().map(|(_, e)| percent(e.mean_class_recall)),
    ));

    let mut classes: Vec<&str> = Vec::new();
    for (_, e) in rows {
        for class in &e.per_class {
            if !classes.contains(&class.name.as_str()) {
                classes.push(&class.name);
            }
        }
    }
    let mut per_class = vec![{
        let mut header = vec!["class".to_owned(), "support".to_owned()];
        for _ in rows {
            header.extend(["precision", "recall", "f1"].map(String::from));
        }
        header
    }];
    for class in &classes {
        let metrics: Vec<_> = rows
            .iter()
            .map(|(_, e)| e.per_class.iter().find(|m| m.name == *class))
            .collect();
        let support = metrics
            .iter()
            .flatten()
            .next()
            .map_or_else(|| "-".to_owned(), |m| m.support.to_string());
        let mut line = vec![class.to_string(), support];
        for m in metrics {
            match m {
                Some(m) => line.extend([m.precision, m.recall, m.f1].map(|v| format!("{v:.3}"))),
                None => line.extend(["-", "-", "-"].map(String::from)),
            }
        }
        per_class.push(line);
    }

    let mut out = render_table(&summary, 1);
    out.push('\n');
    let mut widths = column_widths(&per_class);
    // Model names span their three metric columns, right-aligned over them;
    // a name wider than its columns widens the group's last one.
    for (i, (name, _)) in rows.iter().enumerate() {
        let group = 2 + 3 * i..5 + 3 * i;
        let span = widths[group].iter().sum::<usize>() + 2 * GAP.len();
        widths[4 + 3 * i] += name.chars().count().saturating_sub(span);
    }
    let mut spans = format!("{:w$}", "", w = widths[0] + GAP.len() + widths[1]);
    for (i, (name, _)) in rows.iter().enumerate() {
        let span: usize = widths[2 + 3 * i..5 + 3 * i].iter().sum::<usize>() + 2 * GAP.len();
        spans.push_str(GAP);
        spans.push_str(&format!("{name:>span$}"));
    }
    out.push_str(spans.trim_end());
    out.push('\n');
    out.push_str(&render_rows(&per_class, &widths, 1));
    if rows.iter().any(|(_, e)| e.n != rows[0].1.n) {
        out.push_str("\nnote: the models were evaluated on different numbers of samples\n");
    }
    out
}

/// The confusion matrix as text: rows are true classes, columns predicted
/// ones, plus each row's total. Columns are headed by class name when every
/// name is short, otherwise by class index (rows then show index and name),
/// so the table stays readable with long names. `class_names` may override
/// the names stored in `e` (e.g. shorter ones); missing entries fall back to
/// them.
pub fn confusion_table(e: &Evaluation, class_names: &[String]) -> String {
    let names = names_for(e, class_names);
    let short = names.iter().all(|n| n.chars().count() <= 10);
    let mut header = vec!["true \\ predicted".to_owned()];
    header.extend((0..names.len()).map(|i| if short { names[i].clone() } else { i.to_string() }));
    header.push("total".to_owned());
    let mut table = vec![header];
    let digits = names.len().saturating_sub(1).to_string().len();
    for (i, row) in e.confusion.iter().enumerate() {
        let label = if short {
            names[i].clone()
        } else {
            format!("{i:>digits$} {}", names[i])
        };
        let mut line = vec![label];
        line.extend(row.iter().map(usize::to_string));
        line.push(row.iter().sum::<usize>().to_string());
        table.push(line);
    }
    render_table(&table, 1)
}

/// Loss and accuracy per epoch in two panels, training and (when recorded)
/// validation, so over-fitting shows as the two lines parting. Points are
/// marked so that a run of one or two epochs is still visible; non-finite
/// values (a diverged epoch) are left out rather than wrecking the axes.
pub fn training_curves_svg(history: &[EpochRecord], path: &Path) -> Result<(), ReportError> {
    write_file(path, &training_curves_text(history, path)?)
}

/// [`training_curves_svg`]'s picture as SVG text, for pages that inline it; `name` is what
/// an error calls the picture.
pub fn training_curves_text(history: &[EpochRecord], name: &Path) -> Result<String, ReportError> {
    if history.is_empty() {
        return Err(ReportError::EmptyHistory);
    }
    let draw_error = draw_error(name);
    let mut svg = String::new();
    {
        let root = SVGBackend::with_string(&mut svg, (1100, 440)).into_drawing_area();
        root.fill(&WHITE).map_err(&draw_error)?;
        let (left, right) = root.split_horizontally(550);
        let finite = |v: Option<f32>| v.filter(|v| v.is_finite()).map(f64::from);
        let series = |f: &dyn Fn(&EpochRecord) -> Option<f32>| -> Vec<(usize, f64)> {
            history
                .iter()
                .filter_map(|r| finite(f(r)).map(|v| (r.epoch, v)))
                .collect()
        };
        let losses = [
            ("train", series(&|r| Some(r.train_loss))),
            ("validation", series(&|r| r.val_loss)),
        ];
        let accuracies = [
            ("train", series(&|r| Some(r.train_accuracy))),
            ("validation", series(&|r| r.val_accuracy)),
        ];
        let loss_top = losses
            .iter()
            .flat_map(|(_, s)| s.iter().map(|p| p.1))
            .fold(0.0, f64::max);
        let accuracy_bottom = accuracies
            .iter()
            .flat_map(|(_, s)| s.iter().map(|p| p.1))
            .fold(1.0, f64::min);
        let panels = [
            Panel {
                title: "loss",
                y_desc: "loss",
                y_range: 0.0..(loss_top * 1.05).max(1e-3),
                percent: false,
                legend: SeriesLabelPosition::UpperRight,
            },
            Panel {
                title: "accuracy",
                y_desc: "accuracy",
                // Start at the tenth below the lowest value rather than at 0:
                // the differences that matter are often a few percent near
                // the top.
                y_range: ((accuracy_bottom * 10.0).floor() / 10.0).clamp(0.0, 0.9)..1.0,
                percent: true,
                legend: SeriesLabelPosition::LowerRight,
            },
        ];
        let first = history.iter().map(|r| r.epoch).min().unwrap_or(0);
        let last = history.iter().map(|r| r.epoch).max().unwrap_or(0);
        let epochs = first..last.max(first + 1);
        for ((area, panel), lines) in [left, right].iter().zip(panels).zip([losses, accuracies]) {
            draw_panel(area, panel, epochs.clone(), &lines).map_err(&draw_error)?;
        }
        root.present().map_err(&draw_error)?;
    }
    Ok(svg)
}

struct Panel {
    title: &'static str,
    y_desc: &'static str,
    y_range: std::ops::Range<f64>,
    percent: bool,
    legend: SeriesLabelPosition,
}

type DrawResult = Result<(), DrawingAreaErrorKind<std::io::Error>>;

fn draw_panel(
    area: &DrawingArea<SVGBackend, Shift>,
    panel: Panel,
    epochs: std::ops::Range<usize>,
    lines: &[(&str, Vec<(usize, f64)>); 2],
) -> DrawResult {
    let mut chart = ChartBuilder::on(area)
        .caption(panel.title, ("sans-serif", 22))
        .margin(15)
        .x_label_area_size(45)
        .y_label_area_size(65)
        .build_cartesian_2d(epochs, panel.y_range.clone())?;
    let percent = |v: &f64| format!("{:.0}%", v * 100.0);
    let plain = |v: &f64| format!("{v:.2}");
    let y_format: &dyn Fn(&f64) -> String = if panel.percent { &percent } else { &plain };
    chart
        .configure_mesh()
        .x_desc("epoch")
        .y_desc(panel.y_desc)
        .y_label_formatter(y_format)
        .label_style(("sans-serif", 14))
        .axis_desc_style(("sans-serif", 16))
        .light_line_style(RGBColor(235, 235, 235))
        .draw()?;
    for ((name, points), colour) in lines.iter().zip([TRAIN_COLOUR, VALIDATION_COLOUR]) {
        if points.is_empty() {
            continue;
        }
        let style = colour.stroke_width(2);
        chart
            .draw_series(LineSeries::new(points.iter().copied(), style))?
            .label(*name)
            .legend(move |(x, y)| PathElement::new([(x, y), (x + 20, y)], style));
        chart.draw_series(points.iter().map(|&p| Circle::new(p, 3, colour.filled())))?;
    }
    chart
        .configure_series_labels()
        .position(panel.legend)
        .background_style(WHITE.mix(0.85))
        .border_style(RGBColor(180, 180, 180))
        .label_font(("sans-serif", 14))
        .draw()
}

const TRAIN_COLOUR: RGBColor = RGBColor(31, 119, 180);
const VALIDATION_COLOUR: RGBColor = RGBColor(230, 85, 13);

/// Longest class name drawn in full on the heat-map's axes.
const MAX_LABEL_CHARS: usize = 24;

/// The confusion matrix as a heat-map: true classes down the side, predicted
/// ones along the bottom, each cell's count written in it. Colour is the
/// share of the true class's samples (row-normalised) rather than the raw
/// count, so mistakes on small classes are as visible as on large ones.
pub fn confusion_svg(e: &Evaluation, class_names: &[String], title: &str, path: &Path) -> Result<(), ReportError> {
    let k = e.confusion.len();
    if k == 0 {
        return Err(ReportError::NoClasses);
    }
    let names: Vec<String> = names_for(e, class_names).iter().map(|n| shortened(n)).collect();
    let label_px = label_width(&names) as u32;
    let cell = (560 / k as u32).clamp(16, 64);
    let grid = cell * k as u32;
    let (left, top) = (label_px + 40, 80);
    let width = (left + grid + 30).max(420);
    let height = top + grid + label_px + 50;

    let draw_error = draw_error(path);
    let mut svg = String::new();
    {
        let root = SVGBackend::with_string(&mut svg, (width, height)).into_drawing_area();
        root.fill(&WHITE).map_err(&draw_error)?;
        draw_confusion(&root, e, &names, title, (left, top, cell)).map_err(&draw_error)?;
        root.present().map_err(&draw_error)?;
    }
    write_file(path, &svg)
}

fn draw_confusion(
    root: &DrawingArea<SVGBackend, Shift>,
    e: &Evaluation,
    names: &[String],
    title: &str,
    (left, top, cell): (u32, u32, u32),
) -> DrawResult {
    let k = names.len() as i32;
    let (left, top, cell) = (left as i32, top as i32, cell as i32);
    let grid = cell * k;
    let centre_x = left + grid / 2;
    let (width, _) = root.dim_in_pixel();
    let text = |size: f64, h: HPos, v: VPos| ("sans-serif", size).into_text_style(root).pos(Pos::new(h, v));

    root.draw(&Text::new(
        title.to_owned(),
        (width as i32 / 2, 12),
        text(22.0, HPos::Center, VPos::Top),
    ))?;
    root.draw(&Text::new(
        "numbers: counts; colour: share of the true class",
        (width as i32 / 2, 42),
        text(14.0, HPos::Center, VPos::Top).color(&RGBColor(90, 90, 90)),
    ))?;

    let count_size = (f64::from(cell) * 0.38).clamp(8.0, 16.0);
    for (t, row) in e.confusion.iter().enumerate() {
        let total: usize = row.iter().sum();
        for (p, &count) in row.iter().enumerate() {
            let share = if total == 0 { 0.0 } else { count as f64 / total as f64 };
            let (x, y) = (left + p as i32 * cell, top + t as i32 * cell);
            root.draw(&Rectangle::new([(x, y), (x + cell, y + cell)], blues(share).filled()))?;
            root.draw(&Rectangle::new(
                [(x, y), (x + cell, y + cell)],
                RGBColor(215, 215, 215).stroke_width(1),
            ))?;
            // Zeros in grey so the few non-zero cells of a large matrix stand out.
            let ink = match (count, share > 0.5) {
                (0, _) => RGBColor(170, 170, 170),
                (_, true) => WHITE,
                (_, false) => BLACK,
            };
            root.draw(&Text::new(
                count.to_string(),
                (x + cell / 2, y + cell / 2),
                text(count_size, HPos::Center, VPos::Center).color(&ink),
            ))?;
        }
    }

    let label_size = 14.0;
    for (i, name) in names.iter().enumerate() {
        let middle = i as i32 * cell + cell / 2;
        root.draw(&Text::new(
            name.clone(),
            (left - 8, top + middle),
            text(label_size, HPos::Right, VPos::Center),
        ))?;
        // Rotated so long names do not overlap; reads bottom to top.
        root.draw(&Text::new(
            name.clone(),
            (left + middle, top + grid + 8),
            text(label_size, HPos::Right, VPos::Center).transform(FontTransform::Rotate270),
        ))?;
    }
    let label_px = label_width(names);
    root.draw(&Text::new(
        "predicted class",
        (centre_x, top + grid + label_px + 14),
        text(16.0, HPos::Center, VPos::Top),
    ))?;
    root.draw(&Text::new(
        "true class",
        (14, top + grid / 2),
        text(16.0, HPos::Center, VPos::Top).transform(FontTransform::Rotate270),
    ))?;
    Ok(())
}

/// White through mid blue to dark blue (matplotlib's "Blues" stops), for
/// `share` in `[0, 1]`; the middle stop keeps mid-range cells saturated
/// instead of greyish.
fn blues(share: f64) -> RGBColor {
    const STOPS: [(f64, f64, f64); 3] = [(247.0, 251.0, 255.0), (107.0, 174.0, 214.0), (8.0, 48.0, 107.0)];
    let t = share.clamp(0.0, 1.0) * 2.0;
    let (from, to, f) = if t <= 1.0 {
        (STOPS[0], STOPS[1], t)
    } else {
        (STOPS[1], STOPS[2], t - 1.0)
    };
    let mix = |a: f64, b: f64| (a + f * (b - a)).round() as u8;
    RGBColor(mix(from.0, to.0), mix(from.1, to.1), mix(from.2, to.2))
}

/// `name` cut to [`MAX_LABEL_CHARS`], with an ellipsis when it was longer.
fn shortened(name: &str) -> String {
    if name.chars().count() > MAX_LABEL_CHARS {
        name.chars().take(MAX_LABEL_CHARS - 1).chain(['…']).collect()
    } else {
        name.to_string()
    }
}

/// Pixels taken by the longest axis label at 14px, estimated since SVG text
/// is measured only by the viewer.
fn label_width(names: &[String]) -> i32 {
    (names.iter().map(|n| n.chars().count()).max().unwrap_or(1) as i32 * 13) / 2 + 12
}

fn names_for(e: &Evaluation, class_names: &[String]) -> Vec<String> {
    (0..e.confusion.len())
        .map(|i| {
            class_names
                .get(i)
                .or_else(|| e.per_class.get(i).map(|m| &m.name))
                .cloned()
                .unwrap_or_else(|| i.to_string())
        })
        .collect()
}

fn draw_error<E: std::fmt::Display>(path: &Path) -> impl Fn(E) -> ReportError + '_ {
    move |e| ReportError::Draw {
        path: path.to_owned(),
        message: e.to_string(),
    }
}

fn write_file(path: &Path, contents: &str) -> Result<(), ReportError> {
    fs::write(path, contents).map_err(|source| ReportError::Write {
        path: path.to_owned(),
        source,
    })
}

const GAP: &str = "  ";

fn labelled_row(label: &str, values: impl Iterator<Item = String>) -> Vec<String> {
    std::iter::once(label.to_owned()).chain(values).collect()
}

fn column_widths(rows: &[Vec<String>]) -> Vec<usize> {
    let columns = rows.iter().map(Vec::len).max().unwrap_or(0);
    (0..columns)
        .map(|c| {
            rows.iter()
                .filter_map(|r| r.get(c))
                .map(|cell| cell.chars().count())
                .max()
                .unwrap_or(0)
        })
        .collect()
}

/// First column left-aligned (labels), the rest right-aligned (numbers), with
/// a rule under the first `header_rows` rows.
pub fn render_table(rows: &[Vec<String>], header_rows: usize) -> String {
    render_rows(rows, &column_widths(rows), header_rows)
}

fn render_rows(rows: &[Vec<String>], widths: &[usize], header_rows: usize) -> String {
    let mut out = String::new();
    for (r, row) in rows.iter().enumerate() {
        let cells: Vec<String> = row
            .iter()
            .zip(widths)
            .enumerate()
            .map(|(c, (cell, &w))| {
                if c == 0 {
                    format!("{cell:<w$}")
                } else {
                    format!("{cell:>w$}")
                }
            })
            .collect();
        out.push_str(cells.join(GAP).trim_end());
        out.push('\n');
        if r + 1 == header_rows {
            let total = widths.iter().sum::<usize>() + GAP.len() * widths.len().saturating_sub(1);
            out.push_str(&"-".repeat(total));
            out.push('\n');
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::metrics::evaluate;
    use ndarray::array;

    fn names(list: &[&str]) -> Vec<String> {
        list.iter().map(|s| s.to_string()).collect()
    }

    fn example(classes: &[&str]) -> Evaluation {
        let probs = array![
            [0.7, 0.2, 0.1],
            [0.5, 0.3, 0.2],
            [0.3, 0.6, 0.1],
            [0.1, 0.8, 0.1],
            [0.2, 0.3, 0.5],
            [0.1, 0.1, 0.8],
            [0.2, 0.2, 0.6],
            [0.05, 0.9, 0.05f32],
        ];
        evaluate(probs.view(), &[0, 0, 0, 1, 1, 2, 2, 2], &names(classes))
    }

    /// plotters writes each SVG text on its own line inside `<text>`.
    fn has_text(svg: &str, text: &str) -> bool {
        svg.contains(&format!(">\n{text}\n</text>"))
    }

    fn history(with_validation: bool) -> Vec<EpochRecord> {
        (1..=12)
            .map(|epoch| {
                let t = epoch as f32;
                EpochRecord {
                    epoch,
                    train_loss: 1.5 / t,
                    train_accuracy: 1.0 - 0.5 / t,
                    val_loss: with_validation.then_some(1.2 / t + 0.02 * t),
                    val_accuracy: with_validation.then_some(0.9 - 0.4 / t),
                }
            })
            .collect()
    }

    #[test]
    fn comparison_table_lines_models_up_by_column() {
        let base = example(&["cat", "dog", "hamster"]);
        let mut head = base.clone();
        head.accuracy = 0.75;
        let table = comparison_table(&[("linear baseline", &base), ("head", &head)]);
        let lines: Vec<&str> = table.lines().collect();
        // Right-aligned: each model's name ends where its numbers end.
        let accuracy = lines.iter().find(|l| l.starts_with("accuracy")).unwrap();
        assert_eq!(
            lines[0].find("baseline").unwrap() + 8,
            accuracy.find("62.5%").unwrap() + 5
        );
        assert_eq!(lines[0].len(), accuracy.len());
        assert!(table.contains("62.5%") && table.contains("75.0%"), "{table}");
        assert!(!table.contains("top-5"), "{table}");
        assert!(table.contains("mean class recall"), "{table}");
        let hamster = lines.iter().find(|l| l.starts_with("hamster")).unwrap();
        assert_eq!(
            hamster.split_whitespace().collect::<Vec<_>>(),
            ["hamster", "3", "0.667", "0.667", "0.667", "0.667", "0.667", "0.667"]
        );
        // Every per-class row ends at the same column as its header.
        let class_header = lines.iter().position(|l| l.starts_with("class")).unwrap();
        let width = lines[class_header].len();
        for line in &lines[class_header + 2..] {
            assert_eq!(line.len(), width, "{table}");
        }
        let model_names = lines[class_header - 1];
        assert!(model_names.ends_with("head"), "{table}");
        assert_eq!(model_names.len(), width, "{table}");
    }

    #[test]
    fn long_model_names_widen_their_columns() {
        let e = example(&["a", "b", "c"]);
        let name = "a rather long name for a model";
        let table = comparison_table(&[(name, &e), ("head", &e)]);
        let lines: Vec<&str> = table.lines().collect();
        let class_header = lines.iter().position(|l| l.starts_with("class")).unwrap();
        let first_f1_end = lines[class_header].find("f1").unwrap() + 2;
        assert_eq!(
            lines[class_header - 1].find(name).unwrap() + name.len(),
            first_f1_end,
            "{table}"
        );
        assert!(lines[class_header + 2..]
            .iter()
            .all(|l| l.len() == lines[class_header].len()));
    }

    #[test]
    fn comparison_table_marks_missing_values_and_different_sets() {
        let small = example(&["a", "b", "c"]);
        let probs = array![[0.1, 0.1, 0.1, 0.1, 0.1, 0.1, 0.4f32]];
        let names7 = names(&["a", "b", "c", "d", "e", "f", "g"]);
        let big = evaluate(probs.view(), &[6], &names7);
        let table = comparison_table(&[("three", &small), ("seven", &big)]);
        let top5 = table.lines().find(|l| l.starts_with("top-5")).unwrap();
        assert_eq!(
            top5.split_whitespace().collect::<Vec<_>>(),
            ["top-5", "accuracy", "-", "100.0%"]
        );
        let g = table.lines().find(|l| l.starts_with("g ")).unwrap();
        assert_eq!(
            g.split_whitespace().take(5).collect::<Vec<_>>(),
            ["g", "1", "-", "-", "-"]
        );
        assert!(table.contains("different numbers of samples"), "{table}");
        assert_eq!(comparison_table(&[]), "");
    }

    #[test]
    fn confusion_table_shows_counts_and_totals() {
        let e = example(&["cat", "dog", "hamster"]);
        let table = confusion_table(&e, &[]);
        let rows: Vec<Vec<&str>> = table
            .lines()
            .filter(|l| !l.starts_with('-'))
            .map(|l| l.split_whitespace().collect())
            .collect();
        assert_eq!(rows[0], ["true", "\\", "predicted", "cat", "dog", "hamster", "total"]);
        assert_eq!(rows[1], ["cat", "2", "1", "0", "3"]);
        assert_eq!(rows[3], ["hamster", "0", "1", "2", "3"]);

        let long = names(&["a very long class name", "b", "c"]);
        let table = confusion_table(&e, &long);
        assert!(table.lines().next().unwrap().ends_with("0  1  2  total"), "{table}");
        assert!(table.contains("0 a very long class name"), "{table}");
    }

    #[test]
    fn training_curves_have_both_panels_and_series() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("curves.svg");
        training_curves_svg(&history(true), &path).unwrap();
        let svg = fs::read_to_string(&path).unwrap();
        for label in ["loss", "accuracy", "epoch", "train", "validation"] {
            assert!(has_text(&svg, label), "missing {label}");
        }
        // Per colour: a line and a legend mark in each of the two panels.
        for colour in [TRAIN_COLOUR, VALIDATION_COLOUR] {
            let stroke = format!("stroke=\"#{:02X}{:02X}{:02X}\"", colour.0, colour.1, colour.2);
            assert_eq!(svg.matches(&stroke).count(), 4, "{stroke}");
        }

        training_curves_svg(&history(false), &path).unwrap();
        let svg = fs::read_to_string(&path).unwrap();
        assert!(!has_text(&svg, "validation"));
        assert!(has_text(&svg, "train"));
    }

    #[test]
    fn training_curves_survive_one_epoch_and_diverged_values() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("curves.svg");
        let mut records = history(true);
        records.truncate(1);
        training_curves_svg(&records, &path).unwrap();
        records = history(true);
        records[3].train_loss = f32::NAN;
        records[4].val_loss = Some(f32::INFINITY);
        training_curves_svg(&records, &path).unwrap();
        assert!(!fs::read_to_string(&path).unwrap().contains("NaN"));
        assert!(matches!(
            training_curves_svg(&[], &path),
            Err(ReportError::EmptyHistory)
        ));
    }

    #[test]
    fn confusion_svg_labels_axes_and_cells() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("confusion.svg");
        let e = example(&["cat", "dog", "hamster & co"]);
        confusion_svg(&e, &[], "head on test", &path).unwrap();
        let svg = fs::read_to_string(&path).unwrap();
        for label in [
            "head on test",
            "predicted class",
            "true class",
            "cat",
            "hamster &amp; co",
        ] {
            assert!(has_text(&svg, label), "missing {label}");
        }
        assert_eq!(svg.matches(">\n2\n</text>").count(), 2, "two cells hold 2");
        assert_eq!(svg.matches(">\n1\n</text>").count(), 4, "four cells hold 1");
    }

    #[test]
    fn write_errors_name_the_path() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("missing/confusion.svg");
        let err = confusion_svg(&example(&["a", "b", "c"]), &[], "t", &path).unwrap_err();
        assert!(matches!(err, ReportError::Write { .. }));
        assert!(err.to_string().contains("missing/confusion.svg"), "{err}");
    }

    /// Renders examples for a person to look at:
    /// `cargo test --release -- --ignored render_examples`, then open
    /// `target/report-examples/*.svg`.
    #[test]
    #[ignore = "writes example plots for manual inspection"]
    fn render_examples() {
        let out = Path::new(env!("CARGO_MANIFEST_DIR")).join("target/report-examples");
        fs::create_dir_all(&out).unwrap();
        training_curves_svg(&history(true), &out.join("curves.svg")).unwrap();
        let e = example(&["daisy", "dandelion", "sunflowers"]);
        confusion_svg(&e, &[], "head: flowers test set", &out.join("confusion.svg")).unwrap();
        let k = 14;
        let probs = ndarray::Array2::from_shape_fn((20 * k, k), |(i, j)| {
            if j == (i % k + i / k % 3) % k {
                0.9
            } else {
                0.1 / (k - 1) as f32
            }
        });
        let y: Vec<usize> = (0..20 * k).map(|i| i % k).collect();
        let many: Vec<String> = (0..k).map(|i| format!("class number {i} with a long name")).collect();
        let big = evaluate(probs.view(), &y, &many);
        confusion_svg(&big, &[], "14 classes", &out.join("confusion14.svg")).unwrap();
        println!("{}", confusion_table(&big, &[]));
        println!("{}", comparison_table(&[("linear baseline", &e), ("head", &e)]));
        println!("{}", confusion_table(&e, &[]));
    }
}
