//! The HTML report in a real browser: headless Chromium (Debian's `chromium`) opens the page
//! `headstart report` wrote from a file, as a user would, and clicks through it.
//!
//! Fails, rather than skips, when `CI` is set and no Chromium is installed (`.ci/run` installs
//! it). The screenshot is kept in `target/report-screenshot.png` for people to look at.

mod common;

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use common::{extracted, headstart, repo};
use headless_chrome::protocol::cdp::Page;
use headless_chrome::{Browser, LaunchOptions, Tab};
use serde_json::{json, Value};

/// Where Debian, Ubuntu and the usual packages put the browser; `HEADSTART_CHROMIUM` first.
fn chromium() -> Option<PathBuf> {
    let candidates = std::env::var_os("HEADSTART_CHROMIUM")
        .map(PathBuf::from)
        .into_iter()
        .chain(
            [
                "/usr/bin/chromium",
                "/usr/bin/chromium-browser",
                "/usr/bin/google-chrome",
            ]
            .map(PathBuf::from),
        );
    for candidate in candidates {
        if candidate.is_file() {
            return Some(candidate);
        }
    }
    if std::env::var_os("CI").is_some() {
        panic!("no Chromium found: the report's browser test must run in CI (apt-get install chromium)");
    }
    eprintln!("skipping: no Chromium found (apt-get install chromium; set CI to make this a failure)");
    None
}

/// `expression`'s value, through JSON so that arrays and objects come back whole.
fn js(tab: &Tab, expression: &str) -> Value {
    let result = tab
        .evaluate(&format!("JSON.stringify({expression})"), false)
        .unwrap_or_else(|e| panic!("evaluating {expression}: {e}"));
    let text = result.value.and_then(|v| v.as_str().map(String::from));
    serde_json::from_str(text.as_deref().unwrap_or("null")).unwrap()
}

/// The paths of the gallery's cards on show.
fn shown(tab: &Tab) -> BTreeSet<String> {
    let paths = js(
        tab,
        "Array.from(document.querySelectorAll('#gallery figure.card:not([hidden]) .path')).map(e => e.textContent)",
    );
    paths
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p.as_str().unwrap().to_string())
        .collect()
}

/// A small audit.json as `headstart audit` writes it, naming images of the workspace.
fn write_audit(ws: &Path, manifest: &Value) {
    let entries = manifest["entries"].as_array().unwrap();
    let classes = manifest["classes"].as_array().unwrap();
    let image = |i: usize| {
        let e = &entries[i];
        json!({"path": e["path"], "split": e["split"], "class": classes[e["class"].as_u64().unwrap() as usize]})
    };
    let audit = json!({
        "version": 1,
        "backbone": manifest["backbone"]["key"],
        "images": entries.len(),
        "exact_duplicates": [{"sha256": "ab", "images": [image(0), image(1)], "crosses_splits": true}],
        "near_duplicates": [{"a": image(2), "b": image(3), "similarity": 0.97, "crosses_splits": false}],
        "near_duplicate_threshold": 0.95,
        "label_issues": [{"path": entries[4]["path"], "split": entries[4]["split"], "given": classes[0],
            "suggested": classes[1], "self_confidence": 0.03, "suggested_probability": 0.9,
            "neighbour_agreement": 0.1, "score": 0.02}],
        "outliers": [{"path": entries[5]["path"], "split": entries[5]["split"], "class": classes[0], "score": 0.31}],
        "balance": {"splits": ["train", "val", "test"], "classes": classes, "counts": [[1, 2, 3], [1, 1, 1], [0, 1, 1]],
            "distance": [{"a": "train", "b": "test", "total_variation": 0.04}]},
        "notes": ["written by hand for the browser test"]
    });
    std::fs::write(ws.join("report/audit.json"), serde_json::to_vec_pretty(&audit).unwrap()).unwrap();
}

#[test]
fn the_report_reads_filters_and_renders_in_chromium() {
    let Some(browser_path) = chromium() else { return };
    let (_tmp, _data, ws) = extracted(3, 15);
    headstart(&ws)
        .args(["train-head", "--epochs", "5", "--seed", "1", "--baseline"])
        .assert()
        .success();
    headstart(&ws).arg("eval").assert().success();
    let manifest: Value = serde_json::from_slice(&std::fs::read(ws.join("dataset.json")).unwrap()).unwrap();
    write_audit(&ws, &manifest);
    headstart(&ws).arg("report").assert().success();
    let page = ws.join("report/index.html");
    let eval: Value = serde_json::from_slice(&std::fs::read(ws.join("report/eval.json")).unwrap()).unwrap();

    let browser = Browser::new(
        LaunchOptions::default_builder()
            .path(Some(browser_path))
            .sandbox(false)
            .window_size(Some((1280, 1600)))
            .build()
            .unwrap(),
    )
    .unwrap();
    let tab = browser.new_tab().unwrap();
    // Before any of the page's own script: collect what a console would show as errors.
    tab.call_method(Page::AddScriptToEvaluateOnNewDocument {
        source: "window.__errors = [];\
            window.addEventListener('error', e => window.__errors.push(String(e.message || (e.target && e.target.outerHTML) || e.type)), true);\
            window.addEventListener('unhandledrejection', e => window.__errors.push(String(e.reason)));\
            const original = console.error;\
            console.error = (...args) => { window.__errors.push(args.join(' ')); original(...args); };"
            .to_string(),
        world_name: None,
        include_command_line_api: None,
        run_immediately: None,
    })
    .unwrap();
    let url = format!("file://{}", page.canonicalize().unwrap().display());
    tab.navigate_to(&url).unwrap().wait_until_navigated().unwrap();
    assert_eq!(js(&tab, "document.readyState"), "complete");

    // The sections and what they hold.
    for id in ["data", "training", "metrics", "confusion", "experiments", "audit"] {
        assert_eq!(js(&tab, &format!("!!document.getElementById('{id}')")), true, "{id}");
    }
    let models = eval["models"].as_array().unwrap();
    assert_eq!(models.len(), 2, "head and baseline");
    let k = eval["classes"].as_array().unwrap().len();
    assert_eq!(
        js(&tab, "document.querySelectorAll('button.cell').length"),
        json!(k * k * models.len())
    );
    let n = models[0]["predictions"].as_array().unwrap().len();
    assert!(n > 0);
    assert_eq!(
        js(&tab, "document.querySelectorAll('#gallery figure.card').length"),
        json!(n)
    );
    assert_eq!(
        js(&tab, "document.querySelectorAll('#audit .side figure').length"),
        json!(6)
    );

    // Every thumbnail decoded.
    let images = js(
        &tab,
        "Array.from(document.images).map(i => [i.complete, i.naturalWidth, i.alt])",
    );
    let images = images.as_array().unwrap();
    assert!(images.len() >= n, "{} images", images.len());
    for image in images {
        assert!(
            image[0] == true && image[1].as_u64().unwrap() > 0,
            "not decoded: {image}"
        );
    }

    // On load the script shows the head's mistakes.
    let wrong: BTreeSet<String> = models[0]["misclassified"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["path"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(shown(&tab), wrong);

    // Each model's cells, by mouse for the first model and by keyboard for the second, filter
    // the gallery to exactly that cell's images.
    let classes: Vec<&str> = eval["classes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c.as_str().unwrap())
        .collect();
    for (m, model) in models.iter().enumerate() {
        let confusion = &model["evaluation"]["confusion"];
        let (t, p) = (0..k * k)
            .map(|i| (i / k, i % k))
            .find(|&(t, p)| t != p && confusion[t][p].as_u64().unwrap() > 0)
            .unwrap_or((0, 0));
        let selector = format!("button.cell[data-m=\"{m}\"][data-t=\"{t}\"][data-p=\"{p}\"]");
        if m == 0 {
            tab.find_element(&selector).unwrap().click().unwrap();
        } else {
            js(
                &tab,
                &format!("document.querySelector('{}').focus()", selector.replace('"', "\\\"")),
            );
            tab.press_key("Enter").unwrap();
        }
        let expected: BTreeSet<String> = model["predictions"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|q| q["true_label"] == classes[t] && q["predicted_label"] == classes[p])
            .map(|q| q["path"].as_str().unwrap().to_string())
            .collect();
        assert_eq!(expected.len() as u64, confusion[t][p].as_u64().unwrap());
        assert_eq!(shown(&tab), expected, "model {m}, cell ({t}, {p})");
        assert_eq!(
            js(
                &tab,
                &format!(
                    "document.querySelector('{}').getAttribute('aria-pressed')",
                    selector.replace('"', "\\\"")
                )
            ),
            "true"
        );
    }
    tab.find_element("#show-all").unwrap().click().unwrap();
    assert_eq!(shown(&tab).len(), n);

    // A picture a person can look at, and not a blank one: the matrices and the gallery.
    js(&tab, "document.getElementById('confusion').scrollIntoView()");
    let png = tab
        .capture_screenshot(Page::CaptureScreenshotFormatOption::Png, None, None, true)
        .unwrap();
    let screenshot = repo().join("target/report-screenshot.png");
    std::fs::write(&screenshot, &png).unwrap();
    let decoded = image::load_from_memory(&png).unwrap().to_rgb8();
    let colours: BTreeSet<[u8; 3]> = decoded.pixels().map(|p| p.0).collect();
    assert!(colours.len() > 50, "{} colours: a blank page?", colours.len());

    let errors = js(&tab, "window.__errors");
    assert_eq!(errors, json!([]), "console errors");
}
