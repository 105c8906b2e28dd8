//! What the benches share: reading the arrays files that `benches/run.py` writes
//! (`x_train`, `x_val`, `x_test` f32 [n, D]; `y_train`, `y_val`, `y_test` i64 [n]).

use ndarray::Array2;
use safetensors::tensor::Dtype;
use safetensors::SafeTensors;

/// The f32 matrix `name`.
pub fn matrix(file: &SafeTensors, name: &str) -> Array2<f32> {
    let view = file.tensor(name).unwrap_or_else(|_| panic!("{name} is missing"));
    assert_eq!(view.dtype(), Dtype::F32, "{name} must be f32");
    let &[rows, cols] = view.shape() else {
        panic!("{name} must be 2-D")
    };
    let values = view
        .data()
        .chunks_exact(4)
        .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]));
    Array2::from_shape_vec((rows, cols), values.collect()).expect("shape read from the tensor")
}

/// The i64 labels `name` as class indices.
pub fn labels(file: &SafeTensors, name: &str) -> Vec<usize> {
    let view = file.tensor(name).unwrap_or_else(|_| panic!("{name} is missing"));
    assert_eq!(view.dtype(), Dtype::I64, "{name} must be i64");
    view.data()
        .chunks_exact(8)
        .map(|b| usize::try_from(i64::from_le_bytes(b.try_into().expect("8 bytes"))).expect("labels >= 0"))
        .collect()
}
