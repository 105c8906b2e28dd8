use super::*;

#[test]
fn hashed_split_matches_retrain_py() {
    // Golden values from TensorFlow's retrain.py arithmetic, run in Python:
    //   h = int(hashlib.sha1(name.encode()).hexdigest(), 16)
    //   p = (h % (2**27)) * (100.0 / (2**27 - 1))
    // "a.jpg" -> 81.586, "b.jpg" -> 10.762, "e.jpg" -> 4.894, "img_0001.jpg" -> 96.069
    let p = SplitPercentages { val: 10.0, test: 10.0 };
    let cases = [
        ("a.jpg", Split::Train),
        ("b.jpg", Split::Test),
        ("e.jpg", Split::Val),
        ("img_0001.jpg", Split::Train),
    ];
    for (name, want) in cases {
        assert_eq!(hashed_split(name, p), want, "{name}");
    }
}

#[test]
fn nohash_suffix_is_ignored() {
    let p = SplitPercentages { val: 30.0, test: 30.0 };
    for name in ["x1.jpg", "photo.png", "abc.gif", "q.jpg"] {
        let stem = name.rsplit_once('.').unwrap().0;
        let variant = format!("{stem}_nohash_3.jpg");
        assert_eq!(hashed_split(stem, p), hashed_split(&variant, p));
    }
}

#[test]
fn split_is_stable_and_close_to_the_percentages() {
    let p = SplitPercentages { val: 20.0, test: 10.0 };
    let names: Vec<String> = (0..5000).map(|i| format!("file_{i}.jpg")).collect();
    let mut counts = [0usize; 3];
    for n in &names {
        counts[hashed_split(n, p) as usize] += 1;
    }
    assert!((counts[1] as f64 / 5000.0 - 0.20).abs() < 0.02, "{counts:?}");
    assert!((counts[2] as f64 / 5000.0 - 0.10).abs() < 0.02, "{counts:?}");
    // A file's split depends on its name only, never on which other files exist.
    assert_eq!(hashed_split("file_7.jpg", p), hashed_split("dir/file_7.jpg", p));
}

#[test]
fn bad_percentages_are_rejected() {
    let err = Dataset::scan(
        Path::new("."),
        SplitPercentages { val: 60.0, test: 50.0 },
        &Labels::default(),
    )
    .unwrap_err();
    assert!(err.to_string().contains("--val-percent"));
}

/// Creates `files` (paths relative to a new folder) as empty files: the scan reads names only.
fn tree(files: &[&str]) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    for f in files {
        let path = dir.path().join(f);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(path, b"").unwrap();
    }
    dir
}

fn scan(root: &Path, labels: &Labels) -> Dataset {
    Dataset::scan(root, SplitPercentages::default(), labels).unwrap()
}

/// `(path, class name, split)` of every sample.
fn listed(d: &Dataset) -> Vec<(String, String, Split)> {
    d.samples
        .iter()
        .map(|s| (s.path.clone(), d.classes[s.class].clone(), s.split))
        .collect()
}

fn row(path: &str, class: &str, split: Split) -> (String, String, Split) {
    (path.into(), class.into(), split)
}

/// One grocery set's layout: `<split>/<coarse>/<fine>/[<variety>/]<image>`.
const GROCERY: &[&str] = &[
    "train/Fruit/Apple/Golden/g1.jpg",
    "train/Fruit/Apple/Golden/g2.jpg",
    "train/Fruit/Apple/Pink/p1.jpg",
    "train/Fruit/Pear/r1.jpg",
    "train/Vegetables/Leek/l1.jpg",
    "train/Fruit/loose.jpg",
    "train/orphan.jpg",
    "test/Fruit/Apple/Golden/g3.jpg",
    "test/Vegetables/Leek/l2.jpg",
];

#[test]
fn images_below_a_class_folder_belong_to_it_by_default() {
    let dir = tree(&[
        "cat/a.jpg",
        "cat/indoor/b.jpg",
        "cat/indoor/night/c.png",
        "dog/d.jpg",
        "dog/notes.txt",
        "top.jpg",
        "README.md",
    ]);
    std::fs::create_dir_all(dir.path().join("bird/nothing")).unwrap();
    let d = scan(dir.path(), &Labels::default());
    assert_eq!(d.classes, ["cat", "dog"]);
    let paths: Vec<(&str, usize)> = d.samples.iter().map(|s| (s.path.as_str(), s.class)).collect();
    assert_eq!(
        paths,
        [
            ("cat/a.jpg", 0),
            ("cat/indoor/b.jpg", 0),
            ("cat/indoor/night/c.png", 0),
            ("dog/d.jpg", 1)
        ]
    );
    assert_eq!(d.unlabelled, ["top.jpg"]);
    assert_eq!(d.ignored, ["README.md", "dog/notes.txt"]);
    assert_eq!(d.empty_classes, ["bird"]);
    assert!(d.labelling.contains("first folder"), "{}", d.labelling);
    // Hashed by file name, wherever the file lies.
    assert_eq!(d.samples[2].split, hashed_split("c.png", SplitPercentages::default()));
}

#[test]
fn a_grocery_tree_gives_its_coarse_classes_by_default() {
    let dir = tree(GROCERY);
    let d = scan(dir.path(), &Labels::default());
    assert_eq!(d.classes, ["Fruit", "Vegetables"]);
    assert!(d.split_folders);
    assert_eq!(d.samples.len(), 8);
    assert_eq!(d.unlabelled, ["train/orphan.jpg"]);
    assert!(listed(&d).contains(&row("test/Fruit/Apple/Golden/g3.jpg", "Fruit", Split::Test)));
}

#[test]
fn label_from_parent_takes_each_images_own_folder() {
    let dir = tree(GROCERY);
    let d = scan(dir.path(), &Labels::Folders(LabelFrom::Parent));
    assert_eq!(d.classes, ["Fruit", "Golden", "Leek", "Pear", "Pink"]);
    assert!(listed(&d).contains(&row("train/Fruit/loose.jpg", "Fruit", Split::Train)));
    assert!(listed(&d).contains(&row("test/Fruit/Apple/Golden/g3.jpg", "Golden", Split::Test)));
    assert_eq!(d.unlabelled, ["train/orphan.jpg"]);
    assert!(d.labelling.contains("--label-from parent"));
}

#[test]
fn label_depth_joins_the_folders_down_to_it() {
    let dir = tree(GROCERY);
    let d = scan(dir.path(), &Labels::Folders(LabelFrom::Depth(2)));
    assert_eq!(d.classes, ["Fruit/Apple", "Fruit/Pear", "Vegetables/Leek"]);
    assert!(listed(&d).contains(&row("train/Fruit/Apple/Pink/p1.jpg", "Fruit/Apple", Split::Train)));
    // Above depth 2 there is no class.
    assert_eq!(d.unlabelled, ["train/Fruit/loose.jpg", "train/orphan.jpg"]);
    assert!(d.labelling.contains("--label-depth 2"));
    let err = Dataset::scan(
        dir.path(),
        SplitPercentages::default(),
        &Labels::Folders(LabelFrom::Depth(0)),
    )
    .unwrap_err();
    assert!(err.to_string().contains("--label-depth"), "{err}");
}

fn files(dir: &Path, names: &[&str]) -> LabelFiles {
    LabelFiles {
        files: names.iter().map(|n| dir.join(n)).collect(),
        columns: Columns::default(),
        header: Header::Auto,
        class_names: None,
    }
}

fn write(dir: &Path, name: &str, text: &str) {
    std::fs::write(dir.join(name), text).unwrap();
}

/// The lines of `d.bad_lines` as `file-name:line`, each with a word its reason must hold.
fn assert_bad(d: &Dataset, expected: &[(&str, u64, &str)]) {
    let got: Vec<(String, u64, String)> = d
        .bad_lines
        .iter()
        .map(|b| {
            let name = b.file.file_name().unwrap().to_string_lossy().into_owned();
            (name, b.line, b.reason.clone())
        })
        .collect();
    assert_eq!(got.len(), expected.len(), "{got:#?}");
    for ((name, line, reason), (want_name, want_line, word)) in got.iter().zip(expected) {
        assert_eq!((name.as_str(), *line), (*want_name, *want_line), "{got:#?}");
        assert!(reason.contains(word), "{name}:{line}: `{reason}` lacks `{word}`");
    }
}

#[test]
fn split_files_without_header_with_ids_mapped_to_names_as_a_grocery_set_ships_them() {
    let dir = tree(&[
        "img/a1.jpg",
        "img/a2.jpg",
        "img/b1.jpg",
        "img/b2.jpg",
        "img/c1.jpg",
        "img/extra.jpg",
    ]);
    let d = dir.path();
    // `path, fine class id, coarse class id`, no header, a space after each comma.
    write(
        d,
        "train.txt",
        "img/a1.jpg, 0, 0\nimg/b1.jpg, 1, 0\nimg/c1.jpg, 2, 1\n\n",
    );
    write(d, "val.txt", "img/a2.jpg, 0, 0\n");
    write(d, "test.txt", "img/b2.jpg, 1, 0\n");
    write(
        d,
        "classes.csv",
        "Class Name (str),Class ID (int),Coarse Class Name (str),Coarse Class ID (int)\n\
         Apple,0,Fruit,0\nPear,1,Fruit,0\nLeek,2,Vegetables,1\n",
    );
    let mut fine = files(d, &["train.txt", "val.txt", "test.txt"]);
    fine.class_names = Some(ClassNames {
        file: d.join("classes.csv"),
        id: Column::Name("Class ID (int)".into()),
        name: Column::Name("Class Name (str)".into()),
    });
    let got = scan(d, &Labels::Files(fine.clone()));
    assert_eq!(got.classes, ["Apple", "Leek", "Pear"]);
    assert_eq!(
        listed(&got),
        [
            row("img/a1.jpg", "Apple", Split::Train),
            row("img/a2.jpg", "Apple", Split::Val),
            row("img/b1.jpg", "Pear", Split::Train),
            row("img/b2.jpg", "Pear", Split::Test),
            row("img/c1.jpg", "Leek", Split::Train),
        ]
    );
    assert!(got.bad_lines.is_empty(), "{:?}", got.bad_lines);
    assert_eq!(got.unlabelled, ["img/extra.jpg"]);
    assert!(got.split_folders);

    // The coarse column, by position, with the coarse names.
    let mut coarse = fine;
    coarse.columns.label = Column::Index(2);
    coarse.class_names = Some(ClassNames {
        file: d.join("classes.csv"),
        id: Column::Index(3),
        name: Column::Index(2),
    });
    let got = scan(d, &Labels::Files(coarse));
    assert_eq!(got.classes, ["Fruit", "Vegetables"]);
    assert_eq!(got.samples.iter().filter(|s| s.class == 0).count(), 4);
    assert!(got.bad_lines.is_empty(), "{:?}", got.bad_lines);
}

#[test]
fn every_kind_of_bad_line_is_named_and_left_out_while_the_rest_is_used() {
    let dir = tree(&["a.jpg", "b.jpg", "c.jpg", "d.jpg", "e.jpg", "f.jpg", "g.jpg", "h.jpg"]);
    let d = dir.path();
    write(
        d,
        "labels.csv",
        "path,label,split\n\
         a.jpg,cat,train\n\
         missing.jpg,cat,train\n\
         b.jpg,cat,train\n\
         b.jpg,dog,train\n\
         c.jpg,,train\n\
         d.jpg,cat,holiday\n\
         e.jpg\n\
         f.jpg, | ,train\n\
         g.jpg,dog,val\n\
         g.jpg,dog,test\n\
         h.jpg,dog,test\n\
         h.jpg,dog,test\n",
    );
    let mut spec = files(d, &["labels.csv"]);
    spec.columns.split = Some(Column::Name("split".into()));
    let got = scan(d, &Labels::Files(spec));
    assert_bad(
        &got,
        &[
            ("labels.csv", 3, "does not exist"),
            ("labels.csv", 5, "has label `dog` here but `cat` at"),
            ("labels.csv", 6, "empty label"),
            ("labels.csv", 7, "split `holiday`"),
            ("labels.csv", 8, "has no --label-column"),
            ("labels.csv", 9, "empty label"),
            ("labels.csv", 11, "is listed for test here but for val at"),
        ],
    );
    // b and g are left out altogether: which of their lines is right cannot be known. A line
    // repeated word for word (h) is harmless.
    assert_eq!(
        listed(&got),
        [row("a.jpg", "cat", Split::Train), row("h.jpg", "dog", Split::Test)]
    );
    assert_eq!(got.unlabelled, ["b.jpg", "c.jpg", "d.jpg", "e.jpg", "f.jpg", "g.jpg"]);
}

#[test]
fn an_unknown_class_id_is_a_bad_line() {
    let dir = tree(&["a.jpg", "b.jpg"]);
    let d = dir.path();
    write(d, "labels.csv", "a.jpg,7\nb.jpg,9\n");
    write(d, "names.csv", "7,seven\n8,eight\n");
    let mut spec = files(d, &["labels.csv"]);
    spec.class_names = Some(ClassNames {
        file: d.join("names.csv"),
        id: Column::Index(0),
        name: Column::Index(1),
    });
    let got = scan(d, &Labels::Files(spec));
    assert_bad(&got, &[("labels.csv", 2, "unknown class id `9`")]);
    assert_eq!(got.classes, ["seven"]);
}

#[test]
fn a_class_id_with_two_names_is_an_error_naming_the_lines() {
    let dir = tree(&["a.jpg"]);
    let d = dir.path();
    write(d, "labels.csv", "a.jpg,7\n");
    write(d, "names.csv", "7,seven\n7,sieben\n");
    let mut spec = files(d, &["labels.csv"]);
    spec.class_names = Some(ClassNames {
        file: d.join("names.csv"),
        id: Column::Index(0),
        name: Column::Index(1),
    });
    let err = Dataset::scan(d, SplitPercentages::default(), &Labels::Files(spec)).unwrap_err();
    let message = err.to_string();
    assert!(
        message.contains("names.csv:2") && message.contains("`seven` on line 1"),
        "{message}"
    );
}

#[test]
fn a_header_is_found_with_positional_columns_and_required_for_named_ones() {
    let dir = tree(&["x/a.jpg", "x/b.jpg"]);
    let d = dir.path();
    write(d, "with.csv", "file,class\nx/a.jpg,cat\nx/b.jpg,dog\n");
    write(d, "without.csv", "x/a.jpg,cat\nx/b.jpg,dog\n");
    for name in ["with.csv", "without.csv"] {
        let got = scan(d, &Labels::Files(files(d, &[name])));
        assert_eq!(got.classes, ["cat", "dog"], "{name}");
        assert!(got.bad_lines.is_empty(), "{name}: {:?}", got.bad_lines);
    }
    // Named columns in a file without a header, or a name the header lacks.
    let mut named = files(d, &["without.csv"]);
    named.columns.label = Column::Name("class".into());
    named.header = Header::No;
    let err = Dataset::scan(d, SplitPercentages::default(), &Labels::Files(named.clone())).unwrap_err();
    assert!(
        err.to_string().contains("--label-column `class`") && err.to_string().contains("no header"),
        "{err}"
    );
    named.files = vec![d.join("with.csv")];
    named.header = Header::Auto;
    named.columns.label = Column::Name("klass".into());
    let err = Dataset::scan(d, SplitPercentages::default(), &Labels::Files(named)).unwrap_err();
    assert!(
        err.to_string().contains("no such column") && err.to_string().contains("\"class\""),
        "{err}"
    );
}

#[test]
fn tsv_and_json_lines_read_like_csv() {
    let dir = tree(&["a.jpg", "b.jpg", "c.jpg"]);
    let d = dir.path();
    write(d, "labels.tsv", "a.jpg\tcat\nb.jpg\tdog\n");
    let got = scan(d, &Labels::Files(files(d, &["labels.tsv"])));
    assert_eq!(listed(&got).len(), 2);
    assert_eq!(got.classes, ["cat", "dog"]);

    write(
        d,
        "labels.jsonl",
        "{\"image\": \"a.jpg\", \"label\": 3}\n{\"image\": \"b.jpg\", \"label\": \"dog\"}\nnot json\n[1]\n{\"image\": \"c.jpg\"}\n",
    );
    let mut spec = files(d, &["labels.jsonl"]);
    spec.columns.path = Column::Name("image".into());
    spec.columns.label = Column::Name("label".into());
    let got = scan(d, &Labels::Files(spec.clone()));
    assert_eq!(got.classes, ["3", "dog"]);
    assert_bad(
        &got,
        &[
            ("labels.jsonl", 3, "not JSON"),
            ("labels.jsonl", 4, "not a JSON object"),
            ("labels.jsonl", 5, "has no --label-column `label`"),
        ],
    );
    spec.columns.path = Column::Index(0);
    let err = Dataset::scan(d, SplitPercentages::default(), &Labels::Files(spec)).unwrap_err();
    assert!(
        err.to_string().contains("--path-column") && err.to_string().contains("JSON Lines"),
        "{err}"
    );
}

#[test]
fn a_group_column_keeps_a_group_in_one_hashed_split() {
    let names: Vec<String> = (0..60).map(|i| format!("img{i}.jpg")).collect();
    let refs: Vec<&str> = names.iter().map(String::as_str).collect();
    let dir = tree(&refs);
    let d = dir.path();
    let mut text = String::from("path,label,object\n");
    for (i, n) in names.iter().enumerate() {
        text.push_str(&format!("{n},c{},obj{}\n", i % 2, i % 6));
    }
    write(d, "labels.csv", &text);
    let mut spec = files(d, &["labels.csv"]);
    spec.columns.group = Some(Column::Name("object".into()));
    let got = Dataset::scan(d, SplitPercentages { val: 30.0, test: 30.0 }, &Labels::Files(spec)).unwrap();
    let mut split_of = BTreeMap::new();
    for s in &got.samples {
        let group = s.group.clone().expect("from the column");
        assert_eq!(s.group(), group);
        let first = *split_of.entry(group).or_insert(s.split);
        assert_eq!(first, s.split, "{} left its group", s.path);
    }
    assert_eq!(split_of.len(), 6);
}

#[test]
fn no_usable_line_is_an_error_that_shows_the_first_bad_one() {
    let dir = tree(&["a.jpg"]);
    let d = dir.path();
    write(d, "labels.csv", "nothere.jpg,cat\n");
    let err = Dataset::scan(
        d,
        SplitPercentages::default(),
        &Labels::Files(files(d, &["labels.csv"])),
    )
    .unwrap_err();
    assert!(
        err.to_string().contains("labels.csv:1") && err.to_string().contains("does not exist"),
        "{err}"
    );
}

#[test]
fn piped_labels_or_zero_one_columns_make_multi_label_data() {
    let dir = tree(&["a.jpg", "b.jpg", "c.jpg", "d.jpg"]);
    let d = dir.path();
    write(d, "piped.csv", "a.jpg,cat|dog\nb.jpg,dog\nc.jpg, dog | cat | dog \n");
    let got = scan(d, &Labels::Files(files(d, &["piped.csv"])));
    assert!(got.multi_label);
    assert_eq!(got.classes, ["cat", "dog"]);
    let labels: Vec<Option<Vec<usize>>> = got.samples.iter().map(|s| s.labels.clone()).collect();
    assert_eq!(labels, [Some(vec![0, 1]), Some(vec![1]), Some(vec![0, 1])]);
    // One label per line is single-label data, as before.
    write(d, "single.csv", "a.jpg,cat\nb.jpg,dog\n");
    let got = scan(d, &Labels::Files(files(d, &["single.csv"])));
    assert!(!got.multi_label);
    assert!(got.samples.iter().all(|s| s.labels.is_none()));

    write(
        d,
        "columns.csv",
        "file,cat,dog\na.jpg,1,0\nb.jpg,0,0\nc.jpg,1,1\nd.jpg,2,0\n",
    );
    let mut spec = files(d, &["columns.csv"]);
    spec.columns.path = Column::Name("file".into());
    spec.columns.indicators = vec![Column::Name("cat".into()), Column::Index(2)];
    let got = scan(d, &Labels::Files(spec));
    assert!(got.multi_label);
    assert_eq!(got.classes, ["cat", "dog"]);
    let labels: Vec<(String, Option<Vec<usize>>)> =
        got.samples.iter().map(|s| (s.path.clone(), s.labels.clone())).collect();
    // b has no label at all: a valid image with none of them.
    assert_eq!(
        labels,
        [
            ("a.jpg".into(), Some(vec![0])),
            ("b.jpg".into(), Some(vec![])),
            ("c.jpg".into(), Some(vec![0, 1]))
        ]
    );
    assert_bad(&got, &[("columns.csv", 5, "`2` in label column `cat`")]);
}
