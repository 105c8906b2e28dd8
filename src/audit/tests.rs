use ndarray::Array2;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

use super::*;
use crate::cache::Entry;
use crate::dataset::Sample;

fn entry(path: &str, class: usize, split: Split, sha: &str) -> Entry {
    Entry {
        sample: Sample {
            path: path.to_owned(),
            class,
            split,
            labels: None,
            group: None,
        },
        sha256: sha.to_owned(),
    }
}

fn refs(entries: &[Entry]) -> impl Fn(usize) -> ImageRef + '_ {
    |i| ImageRef {
        path: entries[i].sample.path.clone(),
        split: entries[i].sample.split,
        class: format!("c{}", entries[i].sample.class),
    }
}

/// `n` points per class around `classes` random centres in `dim` dimensions; each class's
/// centre is far from the others, each point close to its centre.
fn clusters(classes: usize, n: usize, dim: usize, noise: f32, seed: u64) -> (Array2<f32>, Vec<usize>) {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let centres: Vec<Vec<f32>> = (0..classes)
        .map(|_| (0..dim).map(|_| rng.gen_range(-1.0..1.0)).collect())
        .collect();
    let mut x = Array2::zeros((classes * n, dim));
    let mut y = Vec::new();
    for (c, centre) in centres.iter().enumerate() {
        for i in 0..n {
            for (d, &value) in centre.iter().enumerate() {
                x[[c * n + i, d]] = value + noise * rng.gen_range(-1.0f32..1.0);
            }
            y.push(c);
        }
    }
    (x, y)
}

#[test]
fn exact_duplicates_are_grouped_and_leaks_come_first() {
    let entries = vec![
        entry("a/1.jpg", 0, Split::Train, "aa"),
        entry("a/2.jpg", 0, Split::Train, "bb"),
        entry("a/3.jpg", 0, Split::Train, "bb"),
        entry("b/1.jpg", 1, Split::Train, "cc"),
        entry("b/9.jpg", 1, Split::Test, "aa"),
    ];
    let groups = duplicates::exact(&entries, &refs(&entries));
    assert_eq!(groups.len(), 2);
    assert!(groups[0].crosses_splits);
    assert_eq!(groups[0].sha256, "aa");
    let paths: Vec<&str> = groups[0].images.iter().map(|r| r.path.as_str()).collect();
    assert_eq!(paths, ["a/1.jpg", "b/9.jpg"]);
    assert!(!groups[1].crosses_splits);
    assert_eq!(groups[1].images.len(), 2);
}

/// A `SIDE` x `SIDE` grey picture of pseudo-random smooth blobs, one per seed, `lift` brighter.
fn picture(seed: u64, lift: u8) -> aligned::Prepared {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let side = aligned::SIDE;
    let blobs: Vec<(f32, f32, f32)> = (0..6)
        .map(|_| {
            (
                rng.gen_range(0.0..side as f32),
                rng.gen_range(0.0..side as f32),
                rng.gen_range(3.0..8.0),
            )
        })
        .collect();
    let pixels: Vec<u8> = (0..side * side)
        .map(|i| {
            let (x, y) = ((i % side) as f32, (i / side) as f32);
            let v: f32 = blobs
                .iter()
                .map(|&(bx, by, r)| 40.0 * (-((x - bx).powi(2) + (y - by).powi(2)) / (r * r)).exp())
                .sum();
            (v.min(200.0) as u8).saturating_add(lift)
        })
        .collect();
    aligned::Prepared::new(pixels)
}

#[test]
fn near_duplicates_are_close_neighbours_whose_pixels_match() {
    // Rows 0 and 1 point almost the same way and show one picture (1 a little brighter); row 3
    // is row 0's exact copy (same bytes), which is left to the exact check. Rows 2 and 4 point
    // almost the same way too but show different pictures: look-alikes, not copies. Row 5 is
    // close to row 0 but has no fingerprint (its file could not be read).
    let x = ndarray::array![
        [1.0f32, 0.0, 0.0],
        [0.99, 0.05, 0.0],
        [0.0, 1.0, 0.0],
        [1.0, 0.0, 0.0],
        [0.0, 0.99, 0.05],
        [0.98, 0.0, 0.05]
    ];
    let entries = vec![
        entry("0.jpg", 0, Split::Train, "h0"),
        entry("1.jpg", 0, Split::Test, "h1"),
        entry("2.jpg", 1, Split::Train, "h2"),
        entry("3.jpg", 0, Split::Train, "h0"),
        entry("4.jpg", 1, Split::Test, "h4"),
        entry("5.jpg", 0, Split::Val, "h5"),
    ];
    let prints = vec![
        Some(picture(1, 0)),
        Some(picture(1, 12)),
        Some(picture(2, 0)),
        Some(picture(1, 0)),
        Some(picture(3, 0)),
        None,
    ];
    let neighbours = neighbourhood::nearest_others(x.view(), 5);
    for (i, list) in neighbours.iter().enumerate() {
        assert_eq!(list.len(), 5);
        assert!(list.iter().all(|&(_, j)| j != i), "row {i} lists itself: {list:?}");
    }
    let pairs = duplicates::near(&entries, &neighbours, &prints, NEAR_THRESHOLD, &refs(&entries));
    let found: Vec<(&str, &str, bool)> = pairs
        .iter()
        .map(|p| (p.a.path.as_str(), p.b.path.as_str(), p.crosses_splits))
        .collect();
    assert_eq!(found, [("0.jpg", "1.jpg", true), ("1.jpg", "3.jpg", true)]);
    assert!(pairs.iter().all(|p| p.similarity > 0.99 && p.similarity <= 1.0));
    assert!(pairs.iter().all(|p| p.pixels > 0.999), "{pairs:?}");
    // The look-alikes were compared, and their pixels told them apart.
    let look_alikes = aligned::similarity(prints[2].as_ref().unwrap(), prints[4].as_ref().unwrap(), NEAR_THRESHOLD);
    assert!(look_alikes < NEAR_THRESHOLD, "{look_alikes}");
}

#[test]
fn balance_counts_per_split_and_total_variation() {
    let mut entries = Vec::new();
    for i in 0..6 {
        entries.push(entry(
            &format!("t{i}"),
            usize::from(i >= 3),
            Split::Train,
            &format!("t{i}"),
        ));
    }
    for i in 0..4 {
        entries.push(entry(&format!("s{i}"), 0, Split::Test, &format!("s{i}")));
    }
    let b = balance::balance(&entries, &["a".to_owned(), "b".to_owned()]);
    assert_eq!(b.splits, [Split::Train, Split::Test]);
    assert_eq!(b.counts, [vec![3, 3], vec![4, 0]]);
    // Train is half and half, test all of class a: they differ by 0.5 in each class.
    assert_eq!(b.distance.len(), 1);
    assert!((b.distance[0].total_variation - 0.5).abs() < 1e-12);
}

#[test]
fn ignore_list_matches_paths_and_hashes_and_skips_comments() {
    let list = IgnoreList::parse("# checked by hand\n\na/1.jpg\n  ffee  \n# b/2.jpg\n");
    assert_eq!(list.len(), 2);
    assert!(list.covers(&entry("a/1.jpg", 0, Split::Train, "00")));
    assert!(list.covers(&entry("moved/elsewhere.jpg", 0, Split::Train, "ffee")));
    assert!(!list.covers(&entry("b/2.jpg", 0, Split::Train, "11")));
}

#[test]
fn the_point_far_from_every_cluster_is_the_outlier() {
    let (mut x, _) = clusters(3, 30, 16, 0.2, 1);
    // Row 7 points where nothing else does.
    for d in 0..16 {
        x[[7, d]] = if d % 2 == 0 { 5.0 } else { -5.0 };
    }
    let entries: Vec<Entry> = (0..x.nrows())
        .map(|i| entry(&format!("{i}.jpg"), 0, Split::Train, &format!("{i}")))
        .collect();
    let neighbours = neighbourhood::nearest_others(x.view(), 5);
    let found = outliers::outliers(&neighbours, &refs(&entries));
    assert_eq!(found.len(), 1, "{found:?}");
    assert_eq!(found[0].path, "7.jpg");
    assert!(found[0].deviations > SPREAD);
}

#[test]
fn flipped_labels_rank_first_with_their_true_class_suggested() {
    let (x, truth) = clusters(4, 40, 32, 0.6, 2);
    let flipped = [3usize, 50, 97, 130];
    let mut entries: Vec<Entry> = truth
        .iter()
        .enumerate()
        .map(|(i, &c)| entry(&format!("{i}.jpg"), c, Split::Train, &format!("{i}")))
        .collect();
    for &i in &flipped {
        entries[i].sample.class = (truth[i] + 1) % 4;
    }
    let classes: Vec<String> = (0..4).map(|c| format!("c{c}")).collect();
    let neighbours = neighbourhood::nearest_others(x.view(), 10);
    let found = labels::issues(&classes, &entries, x.view(), &neighbours, 5);
    assert!(found.notes.is_empty(), "{:?}", found.notes);
    let top: Vec<usize> = found.issues[..4]
        .iter()
        .map(|l| l.path.trim_end_matches(".jpg").parse().unwrap())
        .collect();
    let mut sorted = top.clone();
    sorted.sort();
    assert_eq!(sorted, flipped, "ranked first: {:?}", found.issues);
    for l in &found.issues[..4] {
        let i: usize = l.path.trim_end_matches(".jpg").parse().unwrap();
        assert_eq!(l.suggested, classes[truth[i]]);
        assert!(l.score < 0.5 && l.self_confidence < l.suggested_probability);
    }
}

#[test]
fn a_class_of_one_image_is_named_and_not_judged() {
    let (x, mut y) = clusters(2, 10, 8, 0.3, 3);
    y[19] = 2;
    let entries: Vec<Entry> = y
        .iter()
        .enumerate()
        .map(|(i, &c)| entry(&format!("{i}.jpg"), c, Split::Train, &format!("{i}")))
        .collect();
    let classes: Vec<String> = ["a", "b", "lonely"].map(String::from).to_vec();
    let neighbours = neighbourhood::nearest_others(x.view(), 5);
    let found = labels::issues(&classes, &entries, x.view(), &neighbours, 5);
    assert!(
        found.notes.iter().any(|n| n.contains("`lonely` has one image")),
        "{:?}",
        found.notes
    );
    assert!(found.issues.iter().all(|l| l.path != "19.jpg"));

    let one_each: Vec<Entry> = (0..2)
        .map(|i| entry(&format!("{i}.jpg"), i, Split::Train, &format!("{i}")))
        .collect();
    let found = labels::issues(
        &classes[..2],
        &one_each,
        x.slice(ndarray::s![..2, ..]),
        &neighbourhood::nearest_others(x.slice(ndarray::s![..2, ..]), 1),
        5,
    );
    assert!(found.issues.is_empty());
    assert!(
        found.notes.iter().any(|n| n.contains("at least two classes")),
        "{:?}",
        found.notes
    );
}
