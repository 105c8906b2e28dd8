//! k-fold cross-validation folds over the training files (the train and val splits; the test
//! split is never assigned), for comparing heads on more than one lucky split.
//!
//! # The scheme
//!
//! Files are first put in *groups*: the files of one class that share a
//! [`group`](crate::dataset::Sample::group) (a label file's group column, or else the base name
//! up to `_nohash_`, TensorFlow `retrain.py`'s rule for variants of one photo). A group is never
//! split between folds.
//!
//! Each group gets a point from the SHA-256 of its key: it depends on the group's name alone,
//! never on which other files exist. Within each class the groups are laid out in the order of
//! their points, each taking as much room as it has files, and that line of `N` files is cut
//! into `k` equal lengths: a group goes to the length its midpoint falls in. The cut is done in
//! integers (`fold = k * (2 * files_before + size) / (2 * N)`), so there is no rounding. Last,
//! each class's folds are rotated by an offset from the hash of the class name, so the classes'
//! larger folds are not all the same fold.
//!
//! # What is guaranteed
//!
//! - **Group-aware.** The files of a class that share a group key are in one fold. Files of
//!   different classes are never grouped: stratification is per class.
//! - **Stratified.** Within each class with `N` training files whose largest group has `s`
//!   files, every fold holds more than `N/k - s` and fewer than `N/k + s` of them. With no
//!   `_nohash_` groups (`s = 1`) that is exactly `floor(N/k)` or `ceil(N/k)`: any two folds
//!   differ by at most one file of each class.
//! - **Stable.** A file's fold depends only on its own class's files, so adding or removing
//!   files of other classes never moves it. Adding to a class new groups of `m` files in all
//!   moves at most `(k - 1) * m` of the class's existing groups (each cut point shifts past at
//!   most as many groups as the files added); removing files is the same bound in reverse.
//!   Typically far fewer move, because the new points spread over the line: in the unit test,
//!   adding 1, 3 and 40 files to a class of 400 (k = 5) moved 2, 1 and 2 old files. Exact stratification and perfect stability cannot both hold: a fold that
//!   depends on the file alone (a hash modulo `k`) is only approximately balanced. This scheme
//!   keeps the balance exact and bounds the movement.
//! - **Deterministic.** The same files and `k` give the same folds on every machine.
//!
//! A class with fewer groups than folds keeps the same rule, which puts each of its groups in a
//! fold of its own: it is missing from the held-out part of the other folds, and the result
//! carries a [`FoldWarning::FewGroups`] naming it. `k` is never lowered for it: one tiny class
//! should not cost every other class its folds.

use std::collections::BTreeMap;

use serde::Serialize;
use sha2::{Digest, Sha256};

use crate::dataset::{Sample, Split};

/// Why no folds could be assigned.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FoldError {
    /// Fewer than two folds were asked for.
    #[error("{0} folds: cross-validation needs at least 2")]
    TooFewFolds(usize),
    #[error("{k} folds but only {images} training images (train and val splits): use at most {images} folds")]
    /// More folds than training images.
    MoreFoldsThanImages {
        /// Folds asked for.
        k: usize,
        /// Training images (train and val splits).
        images: usize,
    },
    #[error("with {k} folds, fold {fold} gets no image: the training images form only {groups} groups (files of a class sharing a name up to `_nohash_` stay together); use fewer folds")]
    /// A fold would hold no image.
    EmptyFold {
        /// Folds asked for.
        k: usize,
        /// The empty fold.
        fold: usize,
        /// Groups of training files there are.
        groups: usize,
    },
    #[error("{path} has class index {class}, but there are only {classes} classes: the manifest is inconsistent, run `headstart extract` again")]
    /// A sample's class index is out of range.
    UnknownClass {
        /// The sample's path.
        path: String,
        /// Its class index.
        class: usize,
        /// Number of classes.
        classes: usize,
    },
}

/// Something the user should know about the folds that does not stop cross-validation.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub enum FoldWarning {
    /// The class has fewer groups of training files than there are folds, so the held-out part
    /// of `k - groups` folds has none of it.
    FewGroups {
        /// The class name.
        class: String,
        /// Its groups of training files.
        groups: usize,
        /// Folds asked for.
        k: usize,
    },
}

impl std::fmt::Display for FoldWarning {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            FoldWarning::FewGroups { class, groups, k } => write!(
                f,
                "class `{class}` has {groups} groups of training images, fewer than the {k} folds: \
                 {} folds hold none of it out, so their scores do not cover it",
                k - groups
            ),
        }
    }
}

/// The fold of every file given to [`assign`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Folds {
    /// Number of folds.
    pub k: usize,
    /// One entry per file, in the order given: its fold in `0..k`, or `None` for test files.
    pub fold: Vec<Option<usize>>,
    /// What the user should know about the assignment.
    pub warnings: Vec<FoldWarning>,
}

impl Folds {
    /// Number of files in each fold.
    pub fn sizes(&self) -> Vec<usize> {
        let mut sizes = vec![0; self.k];
        for f in self.fold.iter().flatten() {
            sizes[*f] += 1;
        }
        sizes
    }

    /// Indices of the files round `fold` holds out (scores on).
    pub fn held_out(&self, fold: usize) -> Vec<usize> {
        self.indices(|f| f == fold)
    }

    /// Indices of the files round `fold` trains on: every other fold's.
    pub fn training(&self, fold: usize) -> Vec<usize> {
        self.indices(|f| f != fold)
    }

    fn indices(&self, keep: impl Fn(usize) -> bool) -> Vec<usize> {
        (0..self.fold.len())
            .filter(|&i| self.fold[i].is_some_and(&keep))
            .collect()
    }
}

/// The first 8 bytes of the SHA-256 of `text`, as a number: a point that no other input moves.
fn point(text: &str) -> u64 {
    let digest = Sha256::digest(text.as_bytes());
    u64::from_be_bytes(digest[..8].try_into().expect("8 bytes"))
}

/// Assigns each train and val file of `samples` to one of `k` folds (see the module docs for
/// the scheme and its guarantees). `classes` are the class names `Sample::class` indexes.
pub fn assign<'a>(
    classes: &[String],
    samples: impl IntoIterator<Item = &'a Sample>,
    k: usize,
) -> Result<Folds, FoldError> {
    if k < 2 {
        return Err(FoldError::TooFewFolds(k));
    }
    let samples: Vec<&Sample> = samples.into_iter().collect();
    // Per class, its groups by key, each with the indices of its files.
    let mut groups: Vec<BTreeMap<&str, Vec<usize>>> = vec![BTreeMap::new(); classes.len()];
    for (i, s) in samples.iter().enumerate() {
        if s.split == Split::Test {
            continue;
        }
        let class = groups.get_mut(s.class).ok_or_else(|| FoldError::UnknownClass {
            path: s.path.clone(),
            class: s.class,
            classes: classes.len(),
        })?;
        class.entry(s.group()).or_default().push(i);
    }
    let images: usize = groups.iter().flat_map(|g| g.values()).map(Vec::len).sum();
    if k > images {
        return Err(FoldError::MoreFoldsThanImages { k, images });
    }

    let mut fold = vec![None; samples.len()];
    let mut warnings = Vec::new();
    for (name, class_groups) in classes.iter().zip(&groups) {
        if class_groups.len() < k {
            warnings.push(FoldWarning::FewGroups {
                class: name.clone(),
                groups: class_groups.len(),
                k,
            });
        }
        // The key breaks ties between equal points, so the order never depends on input order.
        let mut ordered: Vec<(u64, &str, &Vec<usize>)> = class_groups
            .iter()
            .map(|(key, files)| (point(key), *key, files))
            .collect();
        ordered.sort_unstable();
        let total = class_groups.values().map(Vec::len).sum::<usize>() as u128;
        let offset = (point(name) % k as u64) as usize;
        let mut before = 0u128;
        for (_, _, files) in ordered {
            let size = files.len() as u128;
            // The midpoint `before + size / 2` scaled by k / total, doubled to stay integral;
            // below k because `before + size <= total`.
            let cut = (k as u128 * (2 * before + size) / (2 * total)) as usize;
            for &i in files {
                fold[i] = Some((cut + offset) % k);
            }
            before += size;
        }
    }
    let folds = Folds { k, fold, warnings };
    if let Some(empty) = folds.sizes().iter().position(|&n| n == 0) {
        return Err(FoldError::EmptyFold {
            k,
            fold: empty,
            groups: groups.iter().map(BTreeMap::len).sum(),
        });
    }
    Ok(folds)
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::{Rng, SeedableRng};
    use rand_chacha::ChaCha8Rng;

    fn sample(class: usize, path: &str, split: Split) -> Sample {
        Sample {
            path: path.to_string(),
            class,
            split,
            labels: None,
            group: None,
        }
    }

    #[test]
    fn a_label_files_group_keeps_differently_named_files_in_one_fold() {
        let mut samples = singletons(&[40]);
        for (i, s) in samples.iter_mut().enumerate() {
            s.group = Some(format!("object{}", i % 8));
        }
        let folds = assign(&names(1), &samples, 4).unwrap();
        let mut fold_of = BTreeMap::new();
        for (s, f) in samples.iter().zip(&folds.fold) {
            let first = *fold_of.entry(s.group().to_string()).or_insert(f.unwrap());
            assert_eq!(first, f.unwrap(), "{} left its group {}", s.path, s.group());
        }
        // Eight groups of five in four folds: every fold holds two groups.
        assert_eq!(fold_of.len(), 8);
        assert!(
            counts(&samples, &folds, 1)[0].iter().all(|&n| n == 10),
            "{:?}",
            counts(&samples, &folds, 1)
        );
    }

    fn names(n: usize) -> Vec<String> {
        (0..n).map(|c| format!("class{c}")).collect()
    }

    /// `per_class[c]` train/val files of class c, every tenth in val, named uniquely.
    fn singletons(per_class: &[usize]) -> Vec<Sample> {
        let mut samples = Vec::new();
        for (c, &n) in per_class.iter().enumerate() {
            for i in 0..n {
                let split = if i % 10 == 0 { Split::Val } else { Split::Train };
                samples.push(sample(c, &format!("class{c}/img{i:05}.jpg"), split));
            }
        }
        samples
    }

    /// Files of each class in each fold, as `counts[class][fold]`.
    fn counts(samples: &[Sample], folds: &Folds, classes: usize) -> Vec<Vec<usize>> {
        let mut counts = vec![vec![0; folds.k]; classes];
        for (s, f) in samples.iter().zip(&folds.fold) {
            if let Some(f) = f {
                counts[s.class][*f] += 1;
            }
        }
        counts
    }

    /// How many of `before`'s assigned files have another fold in `after`; `after` covers the
    /// same files first, in the same order, then the added ones.
    fn moved(before: &Folds, after: &Folds) -> usize {
        before.fold.iter().zip(&after.fold).filter(|(a, b)| a != b).count()
    }

    #[test]
    fn without_groups_each_class_is_split_to_within_one_file() {
        let per_class = [97, 10, 33, 5, 250, 6];
        let samples = singletons(&per_class);
        for k in [2, 3, 5, 10] {
            let folds = assign(&names(per_class.len()), &samples, k).unwrap();
            for (c, row) in counts(&samples, &folds, per_class.len()).iter().enumerate() {
                let (lo, hi) = (per_class[c] / k, per_class[c].div_ceil(k));
                assert!(row.iter().all(|&n| n == lo || n == hi), "k {k} class {c}: {row:?}");
                assert_eq!(row.iter().sum::<usize>(), per_class[c]);
            }
        }
    }

    #[test]
    fn test_files_get_no_fold() {
        let mut samples = singletons(&[20, 20]);
        samples.push(sample(0, "class0/held.jpg", Split::Test));
        let folds = assign(&names(2), &samples, 4).unwrap();
        assert_eq!(*folds.fold.last().unwrap(), None);
        assert!(folds.fold[..40].iter().all(Option::is_some));
        assert_eq!(folds.sizes().iter().sum::<usize>(), 40);
        for f in 0..4 {
            let (held, training) = (folds.held_out(f), folds.training(f));
            assert_eq!(held.len() + training.len(), 40);
            assert!(!held.contains(&40) && !training.contains(&40));
        }
    }

    /// Random classes of `_nohash_` groups of 1 to `max_group` files.
    fn grouped(rng: &mut ChaCha8Rng, classes: usize, max_group: usize) -> Vec<Sample> {
        let mut samples = Vec::new();
        for c in 0..classes {
            for g in 0..rng.gen_range(1..60) {
                for v in 0..rng.gen_range(1..=max_group) {
                    samples.push(sample(c, &format!("class{c}/photo{g}_nohash_{v}.jpg"), Split::Train));
                }
            }
        }
        samples
    }

    #[test]
    fn groups_stay_together_and_classes_stay_within_the_group_bound() {
        let mut rng = ChaCha8Rng::seed_from_u64(3);
        for round in 0..200 {
            let classes = rng.gen_range(1..6);
            let samples = grouped(&mut rng, classes, 6);
            let k = rng.gen_range(2..8);
            let folds = match assign(&names(classes), &samples, k) {
                Ok(folds) => folds,
                // Few groups can leave a fold empty; that is an error, tested on its own.
                Err(FoldError::EmptyFold { .. }) => continue,
                Err(e) => panic!("round {round}: {e}"),
            };
            let mut fold_of: BTreeMap<(usize, &str), usize> = BTreeMap::new();
            for (s, f) in samples.iter().zip(&folds.fold) {
                let f = f.unwrap();
                let first = *fold_of.entry((s.class, s.group())).or_insert(f);
                assert_eq!(first, f, "round {round}: {} left its group", s.path);
            }
            for (c, row) in counts(&samples, &folds, classes).iter().enumerate() {
                let class: Vec<&Sample> = samples.iter().filter(|s| s.class == c).collect();
                let n = class.len() as f64;
                let mut sizes: BTreeMap<&str, usize> = BTreeMap::new();
                for s in &class {
                    *sizes.entry(s.group()).or_default() += 1;
                }
                let largest = *sizes.values().max().unwrap() as f64;
                for &count in row {
                    assert!(
                        (count as f64 - n / k as f64).abs() < largest,
                        "round {round} class {c}: {row:?}, {n} files, largest group {largest}"
                    );
                }
            }
        }
    }

    #[test]
    fn adding_files_moves_at_most_k_minus_one_per_added_file() {
        let k = 5;
        let old = singletons(&[400, 120]);
        let before = assign(&names(2), &old, k).unwrap();
        for added in [1, 3, 40] {
            let mut new = old.clone();
            for i in 0..added {
                new.push(sample(0, &format!("class0/new{i}.jpg"), Split::Train));
            }
            let after = assign(&names(2), &new, k).unwrap();
            let moved = moved(&before, &after);
            eprintln!("{added} files added to 400: {moved} of the old files moved fold");
            assert!(moved <= (k - 1) * added, "{added} added, {moved} moved");
            // The other class is untouched.
            assert_eq!(before.fold[400..], after.fold[400..520]);
        }
    }

    #[test]
    fn adding_groups_moves_at_most_k_minus_one_groups_per_added_file() {
        let mut rng = ChaCha8Rng::seed_from_u64(11);
        for _ in 0..50 {
            let old = grouped(&mut rng, 1, 4);
            let k = rng.gen_range(2..6);
            let Ok(before) = assign(&names(1), &old, k) else {
                continue;
            };
            let mut new = old.clone();
            let mut added = 0;
            for g in 0..rng.gen_range(1..6) {
                for v in 0..rng.gen_range(1..4) {
                    new.push(sample(0, &format!("class0/added{g}_nohash_{v}.jpg"), Split::Train));
                    added += 1;
                }
            }
            // Uneven groups can still leave a fold empty; that case is tested on its own.
            let Ok(after) = assign(&names(1), &new, k) else {
                continue;
            };
            let mut moved_groups: Vec<&str> = old
                .iter()
                .zip(before.fold.iter().zip(&after.fold))
                .filter(|(_, (a, b))| a != b)
                .map(|(s, _)| s.group())
                .collect();
            moved_groups.dedup();
            assert!(
                moved_groups.len() <= (k - 1) * added,
                "{added} added, {moved_groups:?} moved"
            );
        }
    }

    #[test]
    fn a_file_s_fold_does_not_depend_on_the_input_order() {
        let samples = singletons(&[30, 30]);
        let forward = assign(&names(2), &samples, 3).unwrap();
        let reversed: Vec<Sample> = samples.iter().rev().cloned().collect();
        let backward = assign(&names(2), &reversed, 3).unwrap();
        let mut flipped = backward.fold.clone();
        flipped.reverse();
        assert_eq!(forward.fold, flipped);
    }

    #[test]
    fn a_class_with_fewer_groups_than_folds_is_named_and_spread() {
        let samples = singletons(&[50, 3]);
        let folds = assign(&names(2), &samples, 5).unwrap();
        assert_eq!(
            folds.warnings,
            vec![FoldWarning::FewGroups {
                class: "class1".into(),
                groups: 3,
                k: 5
            }]
        );
        assert!(folds.warnings[0].to_string().contains("2 folds hold none of it out"));
        let small = &counts(&samples, &folds, 2)[1];
        assert!(small.iter().all(|&n| n <= 1), "{small:?}");
    }

    #[test]
    fn impossible_fold_counts_are_errors() {
        let samples = singletons(&[2, 2]);
        assert_eq!(assign(&names(2), &samples, 1), Err(FoldError::TooFewFolds(1)));
        assert_eq!(
            assign(&names(2), &samples, 5),
            Err(FoldError::MoreFoldsThanImages { k: 5, images: 4 })
        );
        let test_only = vec![sample(0, "a.jpg", Split::Test), sample(1, "b.jpg", Split::Test)];
        assert_eq!(
            assign(&names(2), &test_only, 2),
            Err(FoldError::MoreFoldsThanImages { k: 2, images: 0 })
        );
        // Six files, but one photo's variants: one group cannot fill two folds.
        let one_photo: Vec<Sample> = (0..6)
            .map(|v| sample(0, &format!("p_nohash_{v}.jpg"), Split::Train))
            .collect();
        let err = assign(&names(1), &one_photo, 2).unwrap_err();
        assert!(matches!(err, FoldError::EmptyFold { k: 2, groups: 1, .. }), "{err}");
        let bad = vec![sample(7, "x.jpg", Split::Train)];
        assert!(matches!(
            assign(&names(1), &bad, 2),
            Err(FoldError::UnknownClass { class: 7, .. })
        ));
    }
}
