//! headstart patch: `with_max_threads` limits the products started on the calling thread only.

use matrixmultiply::{max_threads, with_max_threads};

#[test]
fn a_limit_holds_inside_its_scope_nests_downward_and_is_restored() {
    let global = max_threads();
    assert!(global >= 1);
    with_max_threads(1, || {
        assert_eq!(max_threads(), 1);
        // An inner scope cannot raise an outer limit.
        with_max_threads(4, || assert_eq!(max_threads(), 1));
        // Another thread keeps the global maximum.
        assert_eq!(std::thread::spawn(max_threads).join().unwrap(), global);
    });
    assert_eq!(max_threads(), global);
    with_max_threads(0, || assert_eq!(max_threads(), 1));
    let caught = std::panic::catch_unwind(|| with_max_threads(1, || panic!("inside")));
    assert!(caught.is_err());
    assert_eq!(max_threads(), global);
}

#[test]
fn a_product_inside_a_limit_is_still_right() {
    let (m, k, n) = (67, 129, 33);
    let a: Vec<f32> = (0..m * k).map(|i| (i % 7) as f32 - 3.0).collect();
    let b: Vec<f32> = (0..k * n).map(|i| (i % 5) as f32 - 2.0).collect();
    let product = || {
        let mut c = vec![0.0f32; m * n];
        unsafe {
            matrixmultiply::sgemm(
                m, k, n, 1.0, a.as_ptr(), k as isize, 1, b.as_ptr(), n as isize, 1, 0.0, c.as_mut_ptr(), n as isize, 1,
            );
        }
        c
    };
    let mut naive = vec![0.0f32; m * n];
    for i in 0..m {
        for j in 0..n {
            naive[i * n + j] = (0..k).map(|l| a[i * k + l] * b[l * n + j]).sum();
        }
    }
    assert_eq!(with_max_threads(1, product), naive);
    assert_eq!(product(), naive);
}
