use super::*;

fn key(i: u8) -> ContentKey {
    [i; 32]
}

fn flip_byte_near_end(path: &Path) {
    let mut bytes = std::fs::read(path).unwrap();
    let at = bytes.len() - 3;
    bytes[at] ^= 0x10;
    std::fs::write(path, bytes).unwrap();
}

#[test]
fn batches_survive_reopening_and_compaction_keeps_order() {
    let dir = tempfile::tempdir().unwrap();
    let (mut store, _) = Store::open(dir.path()).unwrap();
    store.append(&[key(1), key(2)], 3, &[1., 2., 3., 4., 5., 6.]).unwrap();
    store.append(&[key(3)], 3, &[7., 8., 9.]).unwrap();
    // As if killed here: a fresh open sees both pending batches.
    let (mut store, damaged) = Store::open(dir.path()).unwrap();
    assert!(damaged.is_empty());
    assert_eq!(store.len(), 3);
    assert_eq!(store.get(&key(2)).unwrap(), &[4., 5., 6.]);
    let dropped = store.compact(&[key(3), key(1)]).unwrap();
    assert_eq!(dropped, 1);
    let name = store.file_name().unwrap().to_string();
    let (store, _) = Store::open(dir.path()).unwrap();
    assert_eq!(store.len(), 2);
    assert!(!store.contains(&key(2)));
    assert_eq!(store.stored, Some((name.clone(), vec![key(3), key(1)])));
    assert!(std::fs::read_dir(dir.path().join("pending")).unwrap().next().is_none());
    let snapshot = Store::read_snapshot(dir.path(), &name).unwrap();
    assert_eq!(snapshot.get(&key(1)).unwrap(), &[1., 2., 3.]);
}

#[test]
fn equal_content_gets_an_equal_store_name_and_prune_keeps_the_previous_file() {
    let dir = tempfile::tempdir().unwrap();
    let (mut store, _) = Store::open(dir.path()).unwrap();
    store.append(&[key(1), key(2)], 2, &[1., 2., 3., 4.]).unwrap();
    store.compact(&[key(1), key(2)]).unwrap();
    let first = store.file_name().unwrap().to_string();
    store.compact(&[key(2)]).unwrap();
    let second = store.file_name().unwrap().to_string();
    store.append(&[key(3)], 2, &[5., 6.]).unwrap();
    store.compact(&[key(3)]).unwrap();
    let third = store.file_name().unwrap().to_string();
    assert_eq!(first.len(), "store-01234567.safetensors".len());
    assert!(first != second && second != third);
    store.prune(Some(&second)).unwrap();
    let mut left: Vec<String> = std::fs::read_dir(dir.path())
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| is_store_file(n))
        .collect();
    left.sort();
    let mut want = vec![second, third];
    want.sort();
    assert_eq!(left, want);

    let other = tempfile::tempdir().unwrap();
    let (mut again, _) = Store::open(other.path()).unwrap();
    again.append(&[key(1), key(2)], 2, &[1., 2., 3., 4.]).unwrap();
    again.compact(&[key(1), key(2)]).unwrap();
    assert_eq!(again.file_name().unwrap(), first);
}

#[test]
fn leftover_temporary_files_are_ignored_and_removed() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(dir.path().join("pending")).unwrap();
    let tmp = dir.path().join("pending/.x.safetensors.1.tmp");
    std::fs::write(&tmp, b"half a file").unwrap();
    let (store, damaged) = Store::open(dir.path()).unwrap();
    assert!(store.is_empty() && damaged.is_empty());
    assert!(!tmp.exists());
}

#[test]
fn a_flipped_byte_in_a_batch_sets_it_aside_and_its_images_are_missing() {
    let dir = tempfile::tempdir().unwrap();
    let (mut store, _) = Store::open(dir.path()).unwrap();
    store.append(&[key(1)], 2, &[1., 2.]).unwrap();
    store.append(&[key(2)], 2, &[3., 4.]).unwrap();
    let second = store.pending[1].clone();
    flip_byte_near_end(&second);
    let (store, damaged) = Store::open(dir.path()).unwrap();
    assert_eq!(damaged.len(), 1);
    assert_eq!(damaged[0].path, second);
    assert!(damaged[0].reason.contains("checksum"), "{}", damaged[0].reason);
    assert!(store.contains(&key(1)) && !store.contains(&key(2)));
    assert!(!second.exists());
    assert!(dir.path().join("damaged").join(second.file_name().unwrap()).is_file());
}

#[test]
fn a_truncated_store_falls_back_to_the_previous_one_and_readers_get_an_error() {
    let dir = tempfile::tempdir().unwrap();
    let (mut store, _) = Store::open(dir.path()).unwrap();
    store.append(&[key(1)], 2, &[1., 2.]).unwrap();
    store.compact(&[key(1)]).unwrap();
    let old = store.file_name().unwrap().to_string();
    std::thread::sleep(std::time::Duration::from_millis(20));
    store.append(&[key(2)], 2, &[3., 4.]).unwrap();
    store.compact(&[key(1), key(2)]).unwrap();
    let new = dir.path().join(store.file_name().unwrap());
    let bytes = std::fs::read(&new).unwrap();
    std::fs::write(&new, &bytes[..bytes.len() - 5]).unwrap();

    let err = Store::read_snapshot(dir.path(), store.file_name().unwrap())
        .err()
        .unwrap();
    assert!(matches!(err, CacheError::Corrupt { .. }));
    assert!(err.to_string().contains(&*new.to_string_lossy()), "{err}");

    let (reopened, damaged) = Store::open(dir.path()).unwrap();
    assert_eq!(damaged.len(), 1);
    assert_eq!(reopened.file_name(), Some(old.as_str()));
    assert!(reopened.contains(&key(1)) && !reopened.contains(&key(2)));
}

#[test]
fn decode_refuses_foreign_and_non_finite_files() {
    let good = Vectors {
        dim: 2,
        keys: vec![key(7)],
        rows: vec![0.5, -1.0],
    };
    assert_eq!(Vectors::decode(&good.encode().0).unwrap(), good);
    let plain = safetensors::serialize(
        [(
            "embeddings",
            TensorView::new(Dtype::F32, vec![1, 1], &[0u8; 4]).unwrap(),
        )],
        &None,
    )
    .unwrap();
    assert!(Vectors::decode(&plain).unwrap_err().contains("format"));
    let nan = Vectors {
        rows: vec![f32::NAN, 1.0],
        ..good
    };
    assert!(Vectors::decode(&nan.encode().0).unwrap_err().contains("NaN"));
}

#[test]
fn gathering_in_place_matches_a_plain_gather() {
    let dim = 3;
    let n = 9;
    let rows: Vec<f32> = (0..n * dim).map(|v| v as f32).collect();
    for sources in [
        vec![],
        vec![4],
        vec![8, 0, 3, 1],
        vec![1, 2, 0, 4, 5, 3, 8, 7, 6],
        (0..n).collect(),
    ] {
        let expected: Vec<f32> = sources
            .iter()
            .flat_map(|&s| rows[s * dim..(s + 1) * dim].iter().copied())
            .collect();
        let mut got = rows.clone();
        gather_rows_in_place(&mut got, dim, &sources);
        assert_eq!(got, expected, "sources {sources:?}");
    }
}

#[test]
fn every_truncation_and_a_lying_header_are_refused() {
    let good = Vectors {
        dim: 3,
        keys: vec![key(1), key(2)],
        rows: vec![0.5, -1.0, 2.0, 3.0, 4.0, -5.5],
    };
    let bytes = good.encode().0;
    for cut in 0..bytes.len() {
        assert!(Vectors::decode(&bytes[..cut]).is_err(), "cut at {cut} was accepted");
    }
    let mut long_header = bytes.clone();
    long_header[..8].copy_from_slice(&(bytes.len() as u64).to_le_bytes());
    assert!(Vectors::decode(&long_header).unwrap_err().contains("header length"));
    let mut trailing = bytes.clone();
    trailing.extend_from_slice(&[0; 4]);
    assert!(Vectors::decode(&trailing).unwrap_err().contains("data bytes"));

    // A header claiming more rows than any file could hold must fail before allocating.
    let header_len = u64::from_le_bytes(bytes[..8].try_into().unwrap()) as usize;
    let mut header: serde_json::Value = serde_json::from_slice(&bytes[8..8 + header_len]).unwrap();
    let huge = 1u64 << 61;
    header["embeddings"]["shape"] = serde_json::json!([huge, 3]);
    header["sha256"]["shape"] = serde_json::json!([huge, 32]);
    let header = serde_json::to_vec(&header).unwrap();
    let mut lying = (header.len() as u64).to_le_bytes().to_vec();
    lying.extend_from_slice(&header);
    lying.extend_from_slice(&bytes[8 + header_len..]);
    assert!(Vectors::decode(&lying).unwrap_err().contains("data bytes"));
}

#[test]
fn the_manifest_checksum_catches_a_changed_value() {
    let dir = tempfile::tempdir().unwrap();
    let manifest = Manifest {
        multi_label: false,
        data_root: "data".into(),
        classes: vec!["a".into(), "b".into()],
        backbone: BackboneRecord::fake(4),
        store: "store-00000000.safetensors".into(),
        entries: vec![Entry {
            sample: Sample {
                path: "a/x.jpg".into(),
                class: 0,
                split: Split::Train,
                labels: None,
                group: None,
            },
            sha256: key_hex(&key(1)),
        }],
        skipped: Vec::new(),
        views: None,
        mirrored: None,
        cut: None,
        checksum: String::new(),
    };
    manifest.save(dir.path()).unwrap();
    let loaded = Manifest::load(dir.path()).unwrap();
    assert_eq!(loaded.entries, manifest.entries);
    let path = dir.path().join(Manifest::FILE);
    let text = std::fs::read_to_string(&path).unwrap();
    std::fs::write(&path, text.replace("\"class\": 0", "\"class\": 1")).unwrap();
    let err = Manifest::load(dir.path()).unwrap_err();
    assert!(err.to_string().contains("checksum"), "{err}");
    assert!(err.to_string().contains("dataset.json"), "{err}");
}

#[test]
fn keys_round_trip_through_hex() {
    let k: ContentKey = std::array::from_fn(|i| i as u8 * 7);
    assert_eq!(parse_key(&key_hex(&k)), Some(k));
    assert_eq!(parse_key("zz"), None);
    assert_eq!(parse_key(&"é".repeat(32)), None);
}

#[test]
fn a_second_lock_waits_for_the_first() {
    let dir = tempfile::tempdir().unwrap();
    let first = WorkspaceLock::acquire(dir.path(), |_| panic!("free at first")).unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    let ws = dir.path().to_path_buf();
    let second = std::thread::spawn(move || {
        let _lock = WorkspaceLock::acquire(&ws, |p| tx.send(p.to_path_buf()).unwrap()).unwrap();
    });
    let told = rx.recv_timeout(std::time::Duration::from_secs(10)).unwrap();
    assert_eq!(told, dir.path().join(WorkspaceLock::FILE));
    assert!(!second.is_finished());
    drop(first);
    second.join().unwrap();
}
