//! The head trained one batch at a time on features that something before it computes and
//! learns too, the fine-tuned top of the backbone ([`crate::finetune`]): each step also hands
//! back the loss gradient with respect to the head's input.

use ndarray::{s, ArrayView2};
use rand_chacha::ChaCha8Rng;

use super::adam::{Adam, BlockParams};
use super::workspace::Workspace;
use super::{Head, HeadParams};
use crate::classifier::Targets;

/// A head in training, with its optimiser state and buffers.
pub(crate) struct Stepper {
    head: Head,
    ws: Workspace,
    grads: Vec<BlockParams>,
    adam: Adam,
    class_weight: Vec<f32>,
    label_smoothing: f32,
}

impl Stepper {
    /// A new head for `n_features` inputs and `n_classes` classes, initialised from `rng` as
    /// [`HeadParams::fit`] initialises it, for batches of at most `batch_size` rows.
    pub(crate) fn new(
        params: &HeadParams,
        n_features: usize,
        n_classes: usize,
        batch_size: usize,
        class_weight: Vec<f32>,
        rng: &mut ChaCha8Rng,
    ) -> Self {
        let head = Head::init(n_features, &params.hidden, n_classes, false, rng);
        let ws = Workspace::new(&head, batch_size, params.dropout, params.label_smoothing, true);
        let grads = head.blocks.iter().map(BlockParams::zeros).collect();
        let adam = Adam::new(&head, params.learning_rate, params.weight_decay);
        Stepper {
            head,
            ws,
            grads,
            adam,
            class_weight,
            label_smoothing: params.label_smoothing,
        }
    }

    /// One training step on the rows of `x` with classes `labels`; returns Σ w(y)·loss over the
    /// rows, the number predicted right in training mode, and ∂L/∂x.
    pub(crate) fn step(
        &mut self,
        x: ArrayView2<f32>,
        labels: &[usize],
        rng: &mut ChaCha8Rng,
    ) -> (f64, usize, ArrayView2<'_, f32>) {
        let b = x.nrows();
        let rows: Vec<usize> = (0..b).collect();
        self.ws
            .load_batch(x, Targets::Classes(labels), &rows, &self.class_weight);
        let (loss, correct) = self
            .head
            .train_step(&mut self.ws, b, rng, &mut self.grads, &mut self.adam);
        (loss, correct, self.ws.input_grad.slice(s![..b, ..]))
    }

    /// Mean loss (smoothing applied, no class weights) and accuracy of `x` in inference mode.
    pub(crate) fn evaluate(&self, x: ArrayView2<f32>, labels: &[usize]) -> (f32, f32) {
        self.head.evaluate(x, Targets::Classes(labels), self.label_smoothing)
    }

    /// The head as it stands.
    pub(crate) fn head(&self) -> &Head {
        &self.head
    }
}
