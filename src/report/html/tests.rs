use std::path::Path;

use image::{Rgb, RgbImage};
use ndarray::Array2;

use super::*;
use crate::backbone::BackboneRecord;
use crate::cache::{Entry, Manifest};
use crate::dataset::{Sample, Split};
use crate::evaluate::{EvalSummary, ModelEvaluation, Prediction};
use crate::metrics::{evaluate, most_probable};

/// A photo-like image: smooth gradients with a little texture, as thumbnails of real photos
/// compress; `noisy` makes every pixel random, the worst case for JPEG.
fn picture(i: usize, noisy: bool) -> RgbImage {
    let mut state = i as u32 * 2_654_435_761 + 1;
    RgbImage::from_fn(128, 128, |x, y| {
        state ^= state << 13;
        state ^= state >> 17;
        state ^= state << 5;
        if noisy {
            let [r, g, b, _] = state.to_le_bytes();
            Rgb([r, g, b])
        } else {
            let grain = (state % 24) as u8;
            Rgb([
                (x * 2) as u8 ^ (i as u8),
                (y * 2) as u8,
                ((x + y) as u8).wrapping_add(i as u8 * 7).saturating_add(grain),
            ])
        }
    })
}

/// A workspace whose data folder holds `files` (path, class, split) as PNG pictures, with a
/// manifest naming them.
fn workspace(dir: &Path, classes: &[&str], files: &[(String, usize, Split)], noisy: bool) -> Manifest {
    let data = dir.join("data");
    for (i, (path, _, _)) in files.iter().enumerate() {
        let file = data.join(path);
        std::fs::create_dir_all(file.parent().unwrap()).unwrap();
        picture(i, noisy)
            .save_with_format(&file, image::ImageFormat::Png)
            .unwrap();
    }
    let manifest = Manifest {
        multi_label: false,
        data_root: data,
        classes: classes.iter().map(|c| c.to_string()).collect(),
        backbone: BackboneRecord {
            name: "tiny <b>net</b>".into(),
            ..BackboneRecord::fake(4)
        },
        store: "store-00000000.safetensors".into(),
        entries: files
            .iter()
            .map(|(path, class, split)| Entry {
                sample: Sample {
                    path: path.clone(),
                    class: *class,
                    split: *split,
                    labels: None,
                    group: None,
                },
                sha256: "00".into(),
            })
            .collect(),
        skipped: Vec::new(),
        views: None,
        mirrored: None,
        cut: None,
        checksum: String::new(),
    };
    manifest.save(dir).unwrap();
    manifest
}

/// eval.json for `manifest`'s test images: the model calls every third image the next class.
fn eval_of(manifest: &Manifest) -> EvalSummary {
    let test: Vec<&Entry> = manifest
        .entries
        .iter()
        .filter(|e| e.sample.split == Split::Test)
        .collect();
    let k = manifest.classes.len();
    let y: Vec<usize> = test.iter().map(|e| e.sample.class).collect();
    let probs = Array2::from_shape_fn((test.len(), k), |(i, c)| {
        let chosen = if i % 3 == 0 { (y[i] + 1) % k } else { y[i] };
        if c == chosen {
            0.6 + (i % 7) as f32 * 0.05
        } else {
            0.1
        }
    });
    let evaluation = evaluate(probs.view(), &y, &manifest.classes);
    let prediction = |i: usize, predicted: usize, confidence: f32| Prediction {
        path: test[i].sample.path.clone(),
        true_label: manifest.classes[y[i]].clone(),
        predicted_label: manifest.classes[predicted].clone(),
        confidence,
    };
    let predictions = (0..test.len())
        .map(|i| {
            let (p, c) = most_probable(probs.row(i));
            prediction(i, p, c)
        })
        .collect();
    let misclassified = evaluation
        .mistakes
        .iter()
        .map(|m| prediction(m.index, m.predicted_class, m.confidence))
        .collect();
    EvalSummary {
        split: Split::Test,
        classes: manifest.classes.clone(),
        models: vec![ModelEvaluation {
            model: "head".into(),
            file: "head.safetensors".into(),
            evaluation,
            misclassified,
            predictions,
        }],
        multi_label: Vec::new(),
        files: Vec::new(),
    }
}

fn save_eval(dir: &Path, eval: &EvalSummary) {
    std::fs::create_dir_all(dir.join("report")).unwrap();
    std::fs::write(dir.join("report").join(EVAL_FILE), serde_json::to_vec(eval).unwrap()).unwrap();
}

/// `n` test images per class of `classes`, named `<class>/<i>.png`.
fn test_files(classes: &[&str], n: usize) -> Vec<(String, usize, Split)> {
    (0..n * classes.len())
        .map(|i| {
            (
                format!("{}/{i:04}.png", classes[i % classes.len()]),
                i % classes.len(),
                Split::Test,
            )
        })
        .collect()
}

fn page_of(dir: &Path) -> String {
    let summary = write_report(&HtmlOptions::new(dir)).unwrap();
    assert_eq!(summary.path, dir.join("report").join(FILE));
    std::fs::read_to_string(summary.path).unwrap()
}

#[test]
fn html_in_class_and_file_names_is_escaped() {
    let dir = tempfile::tempdir().unwrap();
    let classes = ["<script>alert(1)</script>", "daisy"];
    let files = vec![
        ("daisy/<script>alert(2)</script>.png".to_string(), 1, Split::Test),
        ("daisy/b&q \"quoted\".png".to_string(), 1, Split::Test),
        ("x/one.png".to_string(), 0, Split::Test),
        ("x/two.png".to_string(), 0, Split::Train),
    ];
    let manifest = workspace(dir.path(), &classes, &files, false);
    save_eval(dir.path(), &eval_of(&manifest));
    let audit = r#"{"version": 1, "backbone": "k<i>", "images": 4,
        "outliers": [{"path": "daisy/<script>alert(2)</script>.png", "split": "test", "class": "<script>alert(1)</script>", "score": 0.1}],
        "notes": ["<img src=x onerror=alert(3)>"]}"#;
    std::fs::write(dir.path().join("report").join(AUDIT_FILE), audit).unwrap();
    let html = page_of(dir.path());
    assert_eq!(html.matches("<script").count(), 1, "only the page's own script");
    assert!(!html.contains("<img src=x"));
    assert!(!html.contains("<b>net</b>"));
    assert!(html.contains("&lt;script&gt;alert(1)&lt;/script&gt;"));
    assert!(html.contains("daisy/&lt;script&gt;alert(2)&lt;/script&gt;.png"));
    assert!(html.contains("b&amp;q &quot;quoted&quot;.png"));
    // The file with markup in its name was found and shrunk all the same.
    assert!(html.contains("alt=\"daisy/&lt;script&gt;alert(2)&lt;/script&gt;.png\""));
}

#[test]
fn before_eval_the_page_shows_what_exists_and_names_the_commands() {
    let dir = tempfile::tempdir().unwrap();
    let classes = ["cat", "dog"];
    workspace(dir.path(), &classes, &test_files(&classes, 3), false);
    let summary = write_report(&HtmlOptions::new(dir.path())).unwrap();
    let html = std::fs::read_to_string(&summary.path).unwrap();
    assert!(html.contains("6 images in 2 classes"), "the data section is filled");
    for command in [
        "headstart train-head",
        "headstart eval",
        "headstart sweep",
        "headstart audit",
    ] {
        assert!(html.contains(&format!("<code>{command}</code>")), "{command}");
        assert!(summary.missing.iter().any(|m| m == command), "{command}");
    }
    assert!(!summary.missing.iter().any(|m| m.contains("extract")));
    assert_eq!(summary.thumbnails, 0);

    let empty = tempfile::tempdir().unwrap();
    let html = page_of(empty.path());
    assert!(html.contains("headstart extract --data DIR"));
}

#[test]
fn a_damaged_json_file_is_an_error_that_names_it() {
    let dir = tempfile::tempdir().unwrap();
    let classes = ["cat", "dog"];
    workspace(dir.path(), &classes, &test_files(&classes, 2), false);
    let report = dir.path().join("report");
    std::fs::create_dir_all(&report).unwrap();
    for (file, command) in [(EVAL_FILE, "headstart eval"), (AUDIT_FILE, "headstart audit")] {
        std::fs::write(report.join(file), b"{\"models\": [").unwrap();
        let err = write_report(&HtmlOptions::new(dir.path())).unwrap_err();
        let message = err.to_string();
        assert!(matches!(err, HtmlError::Damaged { .. }), "{message}");
        assert!(message.contains(file) && message.contains(command), "{message}");
        std::fs::remove_file(report.join(file)).unwrap();
    }
    // Tolerant of what a section lacks: an audit with notes alone is an audit.
    std::fs::write(
        report.join(AUDIT_FILE),
        br#"{"version": 1, "notes": ["one image per class"]}"#,
    )
    .unwrap();
    let html = page_of(dir.path());
    assert!(html.contains("one image per class"));
}

#[test]
fn the_confusion_cells_and_the_gallery_hold_every_evaluated_image() {
    let dir = tempfile::tempdir().unwrap();
    let classes = ["ant", "bee", "cow"];
    let manifest = workspace(dir.path(), &classes, &test_files(&classes, 4), false);
    let eval = eval_of(&manifest);
    save_eval(dir.path(), &eval);
    let html = page_of(dir.path());
    assert_eq!(html.matches("<button type=\"button\" class=\"cell").count(), 9);
    assert_eq!(html.matches("<figure class=\"card\"").count(), 12);
    assert_eq!(html.matches("<img src=\"data:image/jpeg;base64,").count(), 12);
    // Cell (0, 1) holds the images of class 0 the model called class 1.
    let n = eval.models[0].evaluation.confusion[0][1];
    assert!(n > 0);
    assert!(html.contains(&format!("data-t=\"0\" data-p=\"1\" data-n=\"{n}\"")));
    assert_eq!(html.matches("data-t=\"0\" data-p0=\"1\"").count(), n);
    // Without scripts the mistakes come first, most confident first.
    let first_card = &html[html.find("<figure class=\"card\"").unwrap()..];
    let first_card = &first_card[..first_card.find("</figure>").unwrap()];
    assert!(first_card.contains(&esc(&eval.models[0].misclassified[0].path)));
}

#[test]
fn thumbnails_are_capped_and_the_page_says_so() {
    let classes = ["a", "b", "c", "d"];
    let files = test_files(&classes, (MAX_THUMBNAILS + 100) / 4);
    for noisy in [false, true] {
        let dir = tempfile::tempdir().unwrap();
        let manifest = workspace(dir.path(), &classes, &files, noisy);
        save_eval(dir.path(), &eval_of(&manifest));
        let summary = write_report(&HtmlOptions::new(dir.path())).unwrap();
        let html = std::fs::read_to_string(&summary.path).unwrap();
        let images = html.matches("<img ").count();
        assert_eq!(images, summary.thumbnails);
        assert!(images <= MAX_THUMBNAILS, "{images}");
        assert_eq!(summary.thumbnails + summary.without_thumbnail, files.len());
        assert!(
            html.contains("have no thumbnail: a page shows at most 1000"),
            "noisy {noisy}"
        );
        assert!(summary.bytes < 5_000_000, "{} bytes, noisy {noisy}", summary.bytes);
        if noisy {
            assert!(images < MAX_THUMBNAILS, "random pixels reach the byte cap first");
        } else {
            assert_eq!(images, MAX_THUMBNAILS);
        }
    }
}
