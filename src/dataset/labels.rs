//! Classes from label files: CSV, TSV or JSON Lines that list `path, label` and optionally a
//! split and a group per image, as public data sets ship them.
//!
//! A line that cannot be used (a missing file, an empty label, an unknown class id, a path
//! listed twice with different labels or splits) is a [`BadLine`]: named, counted and left out,
//! while the run goes on. Whatever makes the whole file unusable (it cannot be read, a column
//! named on the command line does not exist) is a [`DatasetError`].

use std::collections::{BTreeSet, HashMap, HashSet};
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use super::walk::walk;
use super::{hashed_split, Dataset, DatasetError, Sample, Split, SplitPercentages};

/// A column of a label file: its position (0 is the first) or its name in the header row. A
/// value of digits only is a position.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum Column {
    /// Position, 0 for the first column.
    Index(usize),
    /// Name in the header row, or key of a JSON Lines object.
    Name(String),
}

impl std::str::FromStr for Column {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let s = s.trim();
        if s.is_empty() {
            return Err("a column is its name or its position (0 for the first)".into());
        }
        Ok(match s.parse::<usize>() {
            Ok(i) => Column::Index(i),
            Err(_) => Column::Name(s.to_string()),
        })
    }
}

impl std::fmt::Display for Column {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Column::Index(i) => write!(f, "{i}"),
            Column::Name(n) => f.write_str(n),
        }
    }
}

/// Whether a CSV or TSV file starts with a header row.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum Header {
    /// A header when a column is chosen by name; otherwise when the first row's path (or class
    /// id) is not a file under the data folder (or an id the labels use) and the second row's is.
    #[default]
    Auto,
    /// The first row names the columns.
    Yes,
    /// Every row is data.
    No,
}

/// The columns of a label file that hold what headstart needs.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Columns {
    /// The image's path, relative to the data folder.
    pub path: Column,
    /// Its class: a name, or an id that [`ClassNames`] maps to a name.
    pub label: Column,
    /// Its split (`train`, `val`, `test` or an alias); without it the split comes from the label
    /// file's name (`train.txt`) or else from a hash.
    pub split: Option<Column>,
    /// Its group: images of one group share a split and a fold (photos of one object, frames of
    /// one video). Without it the group is the file name up to `_nohash_`.
    pub group: Option<Column>,
    /// Multi-label data as one 0/1 column per label, named by the header (or by position):
    /// when given, the label column is not read.
    pub indicators: Vec<Column>,
}

impl Default for Columns {
    fn default() -> Self {
        Columns {
            path: Column::Index(0),
            label: Column::Index(1),
            split: None,
            group: None,
            indicators: Vec::new(),
        }
    }
}

/// A CSV (or TSV) that maps class ids to names.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ClassNames {
    /// The file.
    pub file: PathBuf,
    /// The column of the ids, as the label files write them.
    pub id: Column,
    /// The column of the names.
    pub name: Column,
}

/// Label files and how to read them.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LabelFiles {
    /// The files, read in order. A file named after a split (`train.txt`, `val.csv`,
    /// `test.jsonl`) gives its images that split unless a split column says otherwise.
    pub files: Vec<PathBuf>,
    /// The columns to read.
    pub columns: Columns,
    /// Whether CSV and TSV files start with a header row.
    pub header: Header,
    /// Maps the label column's ids to class names.
    pub class_names: Option<ClassNames>,
}

/// A line of a label file that was left out, and why.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct BadLine {
    /// The label file.
    pub file: PathBuf,
    /// Its line number, from 1.
    pub line: u64,
    /// Why it was left out.
    pub reason: String,
}

impl std::fmt::Display for BadLine {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}:{}: {}", self.file.display(), self.line, self.reason)
    }
}

/// One data row of a table: CSV fields, or a JSON object.
enum Row {
    Fields(Vec<String>),
    Object(serde_json::Map<String, serde_json::Value>),
}

/// A label or class-names file read into rows, each with its line number.
struct Table {
    file: PathBuf,
    json: bool,
    header: Option<Vec<String>>,
    rows: Vec<(u64, Row)>,
}

/// Where a column's value is in a [`Row`].
#[derive(Clone)]
enum Place {
    At(usize),
    Key(String),
}

impl Table {
    /// Reads `file`: JSON Lines for `.jsonl`/`.ndjson`, tab-separated for `.tsv`/`.tab` or when
    /// the first line has a tab, else comma-separated. Fields are trimmed, so `a.jpg, 3` (one
    /// grocery set's style) reads like `a.jpg,3`. Lines that cannot be parsed go to `bad`.
    fn read(file: &Path, bad: &mut Vec<BadLine>) -> Result<Table, DatasetError> {
        let text = std::fs::read(file).map_err(|source| DatasetError::LabelFile {
            path: file.to_path_buf(),
            source,
        })?;
        let ext = file
            .extension()
            .and_then(|e| e.to_str())
            .unwrap_or("")
            .to_ascii_lowercase();
        let mut table = Table {
            file: file.to_path_buf(),
            json: matches!(ext.as_str(), "jsonl" | "ndjson"),
            header: None,
            rows: Vec::new(),
        };
        if table.json {
            for (i, line) in text.split(|&b| b == b'\n').enumerate() {
                let line_no = i as u64 + 1;
                if line.iter().all(u8::is_ascii_whitespace) {
                    continue;
                }
                match serde_json::from_slice::<serde_json::Value>(line) {
                    Ok(serde_json::Value::Object(map)) => table.rows.push((line_no, Row::Object(map))),
                    Ok(_) => table.bad(bad, line_no, "not a JSON object".into()),
                    Err(e) => table.bad(bad, line_no, format!("not JSON: {e}")),
                }
            }
            return Ok(table);
        }
        let first_line = text.split(|&b| b == b'\n').next().unwrap_or_default();
        let delimiter = if matches!(ext.as_str(), "tsv" | "tab") || first_line.contains(&b'\t') {
            b'\t'
        } else {
            b','
        };
        let mut reader = csv::ReaderBuilder::new()
            .delimiter(delimiter)
            .has_headers(false)
            .flexible(true)
            .trim(csv::Trim::All)
            .from_reader(text.as_slice());
        let mut record = csv::StringRecord::new();
        loop {
            match reader.read_record(&mut record) {
                Ok(false) => break,
                Ok(true) => {
                    let line_no = record.position().map_or(0, |p| p.line());
                    if record.iter().all(str::is_empty) {
                        continue;
                    }
                    table
                        .rows
                        .push((line_no, Row::Fields(record.iter().map(str::to_string).collect())));
                }
                Err(e) => {
                    let line_no = e.position().map_or(0, |p| p.line());
                    match e.kind() {
                        csv::ErrorKind::Io(_) => {
                            return Err(DatasetError::LabelFile {
                                path: file.to_path_buf(),
                                source: std::io::Error::other(e.to_string()),
                            })
                        }
                        _ => table.bad(bad, line_no, format!("cannot be read: {e}")),
                    }
                }
            }
        }
        Ok(table)
    }

    fn bad(&self, bad: &mut Vec<BadLine>, line: u64, reason: String) {
        bad.push(BadLine {
            file: self.file.clone(),
            line,
            reason,
        });
    }

    /// Takes the first row as the header when `header` says so; with [`Header::Auto`], when a
    /// column is named or when `is_data` holds for the second row but not the first.
    fn take_header(&mut self, header: Header, named: bool, is_data: impl Fn(&Table, &Row) -> bool) {
        if self.json || self.rows.is_empty() {
            return;
        }
        let has_header = match header {
            Header::Yes => true,
            Header::No => false,
            Header::Auto => {
                named || (!is_data(self, &self.rows[0].1) && self.rows.get(1).is_some_and(|(_, r)| is_data(self, r)))
            }
        };
        if has_header {
            if let (_, Row::Fields(names)) = self.rows.remove(0) {
                self.header = Some(names);
            }
        }
    }

    /// Where `column`, given by `flag`, is in this table's rows.
    fn place(&self, column: &Column, flag: &'static str) -> Result<Place, DatasetError> {
        match (column, self.json, &self.header) {
            (Column::Index(_), true, _) => Err(DatasetError::IndexInJsonLines {
                flag,
                file: self.file.clone(),
            }),
            (Column::Name(name), true, _) => Ok(Place::Key(name.clone())),
            (Column::Index(i), false, _) => Ok(Place::At(*i)),
            (Column::Name(name), false, None) => Err(DatasetError::NoHeader {
                flag,
                column: name.clone(),
                file: self.file.clone(),
            }),
            (Column::Name(name), false, Some(header)) => header
                .iter()
                .position(|h| h == name)
                .or_else(|| header.iter().position(|h| h.eq_ignore_ascii_case(name)))
                .map(Place::At)
                .ok_or_else(|| DatasetError::NoColumn {
                    flag,
                    column: name.clone(),
                    file: self.file.clone(),
                    header: header.clone(),
                }),
        }
    }
}

/// The value at `place` in `row`: `Ok(None)` when the row is too short or the key is missing
/// or null, `Err` with the reason when it holds several labels.
fn value(row: &Row, place: &Place) -> Result<Option<String>, String> {
    match (row, place) {
        (Row::Fields(fields), Place::At(i)) => Ok(fields.get(*i).cloned()),
        (Row::Object(map), Place::Key(key)) => match map.get(key) {
            None | Some(serde_json::Value::Null) => Ok(None),
            Some(serde_json::Value::String(s)) => Ok(Some(s.trim().to_string())),
            Some(serde_json::Value::Array(_)) => Err(format!("`{key}` holds a list")),
            Some(other) => Ok(Some(other.to_string())),
        },
        _ => Ok(None),
    }
}

/// How a column is named in messages.
fn describe(place: &Place, flag: &str) -> String {
    match place {
        Place::At(i) => format!("{flag} {i}"),
        Place::Key(k) => format!("{flag} `{k}`"),
    }
}

/// A label-file path as a data-folder path: `/` separators, no leading `./`.
fn normalise(path: &str) -> String {
    let path = path.replace('\\', "/");
    let mut rest = path.as_str();
    while let Some(stripped) = rest.strip_prefix("./") {
        rest = stripped;
    }
    rest.to_string()
}

/// A row that passed its own checks.
struct Listed {
    path: String,
    /// Its labels, sorted; one for single-label data.
    labels: Vec<String>,
    split: Option<Split>,
    group: Option<String>,
    file: usize,
    line: u64,
}

/// Scans the images that `labels` lists under `root`; see [`Dataset::scan`].
pub(super) fn scan(root: &Path, percentages: SplitPercentages, labels: &LabelFiles) -> Result<Dataset, DatasetError> {
    let mut bad = Vec::new();
    let mut listed: Vec<Listed> = Vec::new();
    let cols = &labels.columns;
    let named = [
        Some(&cols.path),
        Some(&cols.label),
        cols.split.as_ref(),
        cols.group.as_ref(),
    ]
    .into_iter()
    .flatten()
    .chain(&cols.indicators)
    .any(|c| matches!(c, Column::Name(_)));
    let mut tables = Vec::new();
    for (index, file) in labels.files.iter().enumerate() {
        let mut table = Table::read(file, &mut bad)?;
        let path_place = table.place(&cols.path, "--path-column").ok();
        table.take_header(labels.header, named, |_, row| {
            path_place
                .as_ref()
                .and_then(|p| value(row, p).ok().flatten())
                .is_some_and(|p| !p.is_empty() && root.join(normalise(&p)).is_file())
        });
        let places = Places {
            path: table.place(&cols.path, "--path-column")?,
            label: table.place(&cols.label, "--label-column")?,
            split: cols
                .split
                .as_ref()
                .map(|c| table.place(c, "--split-column"))
                .transpose()?,
            group: cols
                .group
                .as_ref()
                .map(|c| table.place(c, "--group-column"))
                .transpose()?,
            indicators: cols
                .indicators
                .iter()
                .map(|c| {
                    let place = table.place(c, "--label-columns")?;
                    let name = match (&place, &table.header) {
                        (Place::At(i), Some(header)) => header.get(*i).cloned().unwrap_or_else(|| i.to_string()),
                        (Place::At(i), None) => i.to_string(),
                        (Place::Key(k), _) => k.clone(),
                    };
                    Ok((place, name))
                })
                .collect::<Result<_, DatasetError>>()?,
        };
        let file_split = file.file_stem().and_then(|s| s.to_str()).and_then(Split::from_folder);
        for (line, row) in &table.rows {
            match read_row(root, row, &places, file_split) {
                Ok(row) => listed.push(Listed {
                    file: index,
                    line: *line,
                    ..row
                }),
                Err(reason) => table.bad(&mut bad, *line, reason),
            }
        }
        tables.push(table);
    }

    let names = match &labels.class_names {
        Some(spec) => {
            let used: HashSet<&str> = listed
                .iter()
                .flat_map(|l| l.labels.iter().map(String::as_str))
                .collect();
            Some(class_names(spec, labels.header, &used)?)
        }
        None => None,
    };
    // The first line that lists a path decides it; a later line that disagrees on label or
    // split leaves the path out altogether, since either could be the wrong one.
    let mut first: HashMap<String, usize> = HashMap::new();
    let mut conflicted = HashSet::new();
    let mut kept: Vec<Listed> = Vec::new();
    for mut row in listed {
        if let Some(names) = &names {
            match row.labels.iter().find(|id| !names.contains_key(*id)) {
                Some(id) => {
                    let file = &labels.class_names.as_ref().expect("names came from it").file;
                    tables[row.file].bad(
                        &mut bad,
                        row.line,
                        format!("unknown class id `{id}`: {} does not name it", file.display()),
                    );
                    continue;
                }
                None => {
                    row.labels = row.labels.iter().map(|id| names[id].clone()).collect();
                    row.labels.sort();
                    row.labels.dedup();
                }
            }
        }
        match first.get(&row.path) {
            None => {
                first.insert(row.path.clone(), kept.len());
                kept.push(row);
            }
            Some(&at) => {
                let earlier = &kept[at];
                let whence = format!("{}:{}", tables[earlier.file].file.display(), earlier.line);
                let reason = if earlier.labels != row.labels {
                    format!(
                        "`{}` has label `{}` here but `{}` at {whence}: both left out",
                        row.path,
                        row.labels.join("|"),
                        earlier.labels.join("|")
                    )
                } else if earlier.split != row.split {
                    format!(
                        "`{}` is listed for {} here but for {} at {whence}: both left out",
                        row.path,
                        split_name(row.split),
                        split_name(earlier.split)
                    )
                } else {
                    continue;
                };
                conflicted.insert(row.path.clone());
                tables[row.file].bad(&mut bad, row.line, reason);
            }
        }
    }
    kept.retain(|row| !conflicted.contains(&row.path));
    bad.sort_by_key(|b| (labels.files.iter().position(|f| *f == b.file), b.line));

    let listed_paths: HashSet<&str> = kept.iter().map(|r| r.path.as_str()).collect();
    let mut unlabelled: Vec<String> = walk(root, "", &mut Vec::new())?
        .images
        .iter()
        .map(|f| f.relative())
        .filter(|p| !listed_paths.contains(p.as_str()))
        .collect();
    unlabelled.sort();

    let classes: Vec<String> = kept
        .iter()
        .flat_map(|r| r.labels.iter().cloned())
        .collect::<BTreeSet<_>>()
        .into_iter()
        .collect();
    let multi_label = !cols.indicators.is_empty() || kept.iter().any(|r| r.labels.len() != 1);
    if classes.is_empty() {
        return Err(DatasetError::NothingListed {
            bad: bad.len(),
            first: bad.first().map(ToString::to_string),
        });
    }
    let split_folders = cols.split.is_some() || kept.iter().all(|r| r.split.is_some());
    let samples = kept
        .into_iter()
        .map(|row| {
            let group_of = row.group.as_deref().unwrap_or(&row.path);
            let indices: Vec<usize> = row
                .labels
                .iter()
                .map(|l| classes.binary_search(l).expect("collected above"))
                .collect();
            Sample {
                split: row.split.unwrap_or_else(|| hashed_split(group_of, percentages)),
                // For multi-label data the first label, which stratifies the folds.
                class: indices.first().copied().unwrap_or(0),
                labels: multi_label.then_some(indices),
                path: row.path,
                group: row.group,
            }
        })
        .collect();
    let files: Vec<String> = labels.files.iter().map(|f| f.display().to_string()).collect();
    Ok(Dataset {
        root: root.to_path_buf(),
        classes,
        samples,
        ignored: Vec::new(),
        skipped: Vec::new(),
        empty_classes: Vec::new(),
        split_folders,
        labelling: format!(
            "classes from {} (--label-column {}{})",
            files.join(", "),
            cols.label,
            if labels.class_names.is_some() {
                ", ids mapped by --class-names"
            } else {
                ""
            }
        ),
        unlabelled,
        bad_lines: bad,
        multi_label,
    })
}

fn split_name(split: Option<Split>) -> &'static str {
    split.map_or("a hashed split", Split::name)
}

/// Where a label file's columns are.
struct Places {
    path: Place,
    label: Place,
    split: Option<Place>,
    group: Option<Place>,
    /// Multi-label 0/1 columns, each with its label's name.
    indicators: Vec<(Place, String)>,
}

/// Checks one row: its path, labels, split and group.
fn read_row(root: &Path, row: &Row, places: &Places, file_split: Option<Split>) -> Result<Listed, String> {
    let get = |place: &Place, flag: &str| -> Result<String, String> {
        match value(row, place) {
            Ok(Some(v)) => Ok(v),
            Ok(None) => Err(format!("has no {}", describe(place, flag))),
            Err(e) => Err(format!("{e}: give labels as `a|b` or one 0/1 column per label")),
        }
    };
    let path = normalise(&get(&places.path, "--path-column")?);
    if path.is_empty() {
        return Err("the path is empty".into());
    }
    let mut labels: Vec<String> = if places.indicators.is_empty() {
        let label = get(&places.label, "--label-column")?;
        let labels: Vec<String> = label
            .split('|')
            .map(str::trim)
            .filter(|l| !l.is_empty())
            .map(String::from)
            .collect();
        if labels.is_empty() {
            return Err(format!("`{path}` has an empty label"));
        }
        labels
    } else {
        let mut labels = Vec::new();
        for (place, name) in &places.indicators {
            match get(place, "--label-columns")?.as_str() {
                "1" | "1.0" | "true" | "True" => labels.push(name.clone()),
                "0" | "0.0" | "false" | "False" | "" => {}
                other => return Err(format!("`{path}` has `{other}` in label column `{name}`: use 0 or 1")),
            }
        }
        labels
    };
    labels.sort();
    labels.dedup();
    match std::fs::metadata(root.join(&path)) {
        Ok(m) if m.is_file() => {}
        Ok(_) => return Err(format!("`{path}` is not a file")),
        Err(_) => return Err(format!("`{path}` does not exist under {}", root.display())),
    }
    let split = match &places.split {
        Some(place) => {
            let s = get(place, "--split-column")?;
            Some(Split::from_folder(&s).ok_or_else(|| format!("`{path}` has split `{s}`: use train, val or test"))?)
        }
        None => file_split,
    };
    let group = match &places.group {
        Some(place) => Some(get(place, "--group-column")?).filter(|g| !g.is_empty()),
        None => None,
    };
    Ok(Listed {
        path,
        labels,
        split,
        group,
        file: 0,
        line: 0,
    })
}

/// Reads the id -> name map of `spec`. An id given two different names is an error: which one
/// is meant cannot be guessed.
fn class_names(
    spec: &ClassNames,
    header: Header,
    used: &HashSet<&str>,
) -> Result<HashMap<String, String>, DatasetError> {
    let mut bad = Vec::new();
    let mut table = Table::read(&spec.file, &mut bad)?;
    if let Some(first) = bad.first() {
        return Err(DatasetError::ClassNames(first.to_string()));
    }
    let named = matches!(spec.id, Column::Name(_)) || matches!(spec.name, Column::Name(_));
    let id_place = table.place(&spec.id, "--class-id-column").ok();
    table.take_header(header, named, |_, row| {
        id_place
            .as_ref()
            .and_then(|p| value(row, p).ok().flatten())
            .is_some_and(|id| used.contains(id.as_str()))
    });
    let id_place = table.place(&spec.id, "--class-id-column")?;
    let name_place = table.place(&spec.name, "--class-name-column")?;
    let mut names: HashMap<String, (String, u64)> = HashMap::new();
    for (line, row) in &table.rows {
        let whence = format!("{}:{line}", spec.file.display());
        let (Ok(Some(id)), Ok(Some(name))) = (value(row, &id_place), value(row, &name_place)) else {
            return Err(DatasetError::ClassNames(format!(
                "{whence}: has no {} or no {}",
                describe(&id_place, "--class-id-column"),
                describe(&name_place, "--class-name-column")
            )));
        };
        if name.is_empty() {
            return Err(DatasetError::ClassNames(format!(
                "{whence}: class id `{id}` has an empty name"
            )));
        }
        if let Some((other, at)) = names.get(&id) {
            if *other != name {
                return Err(DatasetError::ClassNames(format!(
                    "{whence}: class id `{id}` is named `{name}` here but `{other}` on line {at}"
                )));
            }
        }
        names.insert(id, (name, *line));
    }
    Ok(names.into_iter().map(|(id, (name, _))| (id, name)).collect())
}
