//! Precision-recall curves of a multi-label classifier, one line per label: how much precision
//! each label keeps as its threshold is lowered to find more of its images, which the single
//! mAP figure hides.

use std::path::Path;

use ndarray::ArrayView2;
use plotters::prelude::*;
use plotters::style::text_anchor::{HPos, Pos, VPos};

use super::{draw_error, shortened, write_file, ReportError};
use crate::metrics::multilabel::{precision_recall_curve, MultiLabelEvaluation};

/// Labels named in the legend; more would cover the curves. The best labels come first.
const MAX_LEGEND: usize = 12;

/// One label's curve, ready to draw.
#[derive(Debug, Clone, PartialEq)]
pub struct LabelCurve {
    /// The label.
    pub name: String,
    /// Its average precision, the area under the curve's steps.
    pub average_precision: f64,
    /// `(recall, precision)` at each distinct score, the highest score first.
    pub points: Vec<(f64, f64)>,
    /// `(recall, precision)` at the label's tuned threshold.
    pub operating: (f64, f64),
}

/// The curves of every label that occurs in `truth`, from the scores `probs` (`[images,
/// labels]`) and the evaluation made of them (names, average precision, the operating point at
/// the tuned thresholds). Labels no image has have no curve.
pub fn label_curves(
    probs: ArrayView2<f32>,
    truth: ArrayView2<f32>,
    evaluation: &MultiLabelEvaluation,
) -> Vec<LabelCurve> {
    evaluation
        .per_label
        .iter()
        .enumerate()
        .filter_map(|(l, label)| {
            let (positives, points) = precision_recall_curve(probs.column(l), truth.column(l))?;
            Some(LabelCurve {
                name: label.name.clone(),
                average_precision: label.average_precision?,
                points: points
                    .iter()
                    .map(|p| {
                        let tp = p.true_positives as f64;
                        (tp / positives as f64, tp / p.taken as f64)
                    })
                    .collect(),
                operating: (label.recall, label.precision),
            })
        })
        .collect()
}

/// One chart, recall across and precision up, a line per label drawn as the steps whose area is
/// its average precision (scikit-learn's `PrecisionRecallDisplay`), with a dot where the label's
/// tuned threshold puts it. The legend names the labels by average precision, best first.
pub fn precision_recall_svg(curves: &[LabelCurve], title: &str, path: &Path) -> Result<(), ReportError> {
    if curves.is_empty() {
        return Err(ReportError::NoCurves);
    }
    // Colours follow the label's place in `curves`, so a label keeps its colour in every
    // model's picture; the legend follows average precision.
    let mut order: Vec<(usize, &LabelCurve)> = curves.iter().enumerate().collect();
    order.sort_by(|a, b| b.1.average_precision.total_cmp(&a.1.average_precision));
    let draw_error = draw_error(path);
    let mut svg = String::new();
    {
        let root = SVGBackend::with_string(&mut svg, (900, 680)).into_drawing_area();
        root.fill(&WHITE).map_err(&draw_error)?;
        draw(&root, &order, title).map_err(&draw_error)?;
        root.present().map_err(&draw_error)?;
    }
    write_file(path, &svg)
}

/// `curves` in legend order, each with its colour index.
fn draw(
    root: &DrawingArea<SVGBackend, plotters::coord::Shift>,
    curves: &[(usize, &LabelCurve)],
    title: &str,
) -> super::DrawResult {
    let hidden = curves.len().saturating_sub(MAX_LEGEND);
    let subtitle = match hidden {
        0 => "dots: each label's tuned threshold".to_string(),
        n => format!("dots: each label's tuned threshold; {n} labels with the lowest AP left out of the legend"),
    };
    // The title, then what the dots mean under it, then the chart.
    let (top, body) = root.split_vertically(70);
    let centred = |size: f64| {
        ("sans-serif", size)
            .into_text_style(&top)
            .pos(Pos::new(HPos::Center, VPos::Top))
    };
    let middle = top.dim_in_pixel().0 as i32 / 2;
    top.draw(&Text::new(title.to_owned(), (middle, 12), centred(22.0)))?;
    top.draw(&Text::new(
        subtitle,
        (middle, 44),
        centred(14.0).color(&RGBColor(90, 90, 90)),
    ))?;
    let mut chart = ChartBuilder::on(&body)
        .margin(15)
        .x_label_area_size(45)
        .y_label_area_size(60)
        .build_cartesian_2d(0.0..1.0f64, 0.0..1.02f64)?;
    chart
        .configure_mesh()
        .x_desc("recall")
        .y_desc("precision")
        .label_style(("sans-serif", 14))
        .axis_desc_style(("sans-serif", 16))
        .light_line_style(RGBColor(235, 235, 235))
        .draw()?;
    for (rank, &(colour, curve)) in curves.iter().enumerate() {
        let style = ShapeStyle::from(&Palette99::pick(colour)).stroke_width(2);
        // Precision P_n holds from the previous recall up to R_n.
        let mut steps = Vec::with_capacity(2 * curve.points.len());
        let mut last_recall = 0.0;
        for &(recall, precision) in &curve.points {
            steps.extend([(last_recall, precision), (recall, precision)]);
            last_recall = recall;
        }
        let series = chart.draw_series(LineSeries::new(steps, style))?;
        if rank < MAX_LEGEND {
            series
                .label(format!(
                    "{} (AP {:.3})",
                    shortened(&curve.name),
                    curve.average_precision
                ))
                .legend(move |(x, y)| PathElement::new([(x, y), (x + 20, y)], style));
        }
        chart.draw_series(std::iter::once(Circle::new(curve.operating, 4, style.filled())))?;
    }
    chart
        .configure_series_labels()
        .position(SeriesLabelPosition::LowerLeft)
        .background_style(WHITE.mix(0.85))
        .border_style(RGBColor(180, 180, 180))
        .label_font(("sans-serif", 14))
        .draw()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::metrics::multilabel::evaluate;
    use ndarray::array;

    #[test]
    fn every_label_that_occurs_gets_its_curve_and_legend_entry() {
        // Label 0 as in the scikit-learn example of `precision_recall_curve`; label 1 perfectly
        // ranked; label 2 on no image.
        let probs = array![
            [0.9f32, 0.8, 0.1],
            [0.3, 0.2, 0.2],
            [0.6, 0.7, 0.3],
            [0.6, 0.1, 0.1],
            [0.4, 0.3, 0.4],
            [0.2, 0.1, 0.2]
        ];
        let truth = array![
            [1.0f32, 1.0, 0.0],
            [0.0, 0.0, 0.0],
            [1.0, 1.0, 0.0],
            [0.0, 0.0, 0.0],
            [1.0, 0.0, 0.0],
            [0.0, 0.0, 0.0]
        ];
        let names: Vec<String> = ["cat", "dog", "bird"].map(String::from).to_vec();
        let e = evaluate(probs.view(), truth.view(), &[0.5, 0.5, 0.5], &names);
        let curves = label_curves(probs.view(), truth.view(), &e);
        assert_eq!(curves.len(), 2, "bird is on no image");
        assert_eq!(curves[0].points.first(), Some(&(1.0 / 3.0, 1.0)));
        assert_eq!(curves[0].points.last(), Some(&(1.0, 0.5)));
        assert_eq!(curves[0].operating, (2.0 / 3.0, 2.0 / 3.0));
        assert_eq!(curves[1].average_precision, 1.0);

        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("pr.svg");
        precision_recall_svg(&curves, "head, test split", &path).unwrap();
        let svg = std::fs::read_to_string(&path).unwrap();
        for text in [
            "cat (AP 0.806)",
            "dog (AP 1.000)",
            "recall",
            "precision",
            "head, test split",
        ] {
            assert!(svg.contains(&format!(">\n{text}\n</text>")), "missing {text}");
        }
        assert!(!svg.contains("bird"));
        // Two curves and their legend samples (the grid's lines are 1 wide), and the two
        // operating points.
        let wide_lines = svg
            .lines()
            .filter(|l| l.starts_with("<polyline") && l.contains(r#"stroke-width="2""#))
            .count();
        assert_eq!(wide_lines, 4);
        assert_eq!(svg.matches("<circle").count(), 2);
        assert!(matches!(
            precision_recall_svg(&[], "t", &path),
            Err(ReportError::NoCurves)
        ));
    }
}
