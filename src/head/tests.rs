use super::adam::*;
use super::layers::*;
use super::workspace::*;
use super::*;
use crate::artifact::{self, ArtifactError};
use approx::assert_abs_diff_eq;
use ndarray::s;
use std::collections::BTreeMap;
use std::fs;
use std::path::Path;

fn uniform(rng: &mut ChaCha8Rng, rows: usize, cols: usize, scale: f32) -> Array2<f32> {
    Array2::from_shape_simple_fn((rows, cols), || rng.gen_range(-scale..scale))
}

/// Class c sits at +3 on feature c, with uniform noise on every feature.
fn blobs(n: usize, n_features: usize, n_classes: usize, seed: u64) -> (Array2<f32>, Vec<usize>) {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let y: Vec<usize> = (0..n).map(|i| i % n_classes).collect();
    let mut x = uniform(&mut rng, n, n_features, 1.0);
    for (mut row, &c) in x.rows_mut().into_iter().zip(&y) {
        row[c] += 3.0;
    }
    (x, y)
}

fn zero_grads(head: &Head) -> Vec<BlockParams> {
    head.blocks.iter().map(BlockParams::zeros).collect()
}

const PARAM_NAMES: [&str; 4] = ["bn.gamma", "bn.beta", "dense.kernel", "dense.bias"];

/// Every trainable parameter of a two-hidden-layer head (so BatchNorm input gradients, ReLU,
/// dropout, Dense and the smoothed, class-weighted softmax cross-entropy are all on the path)
/// against central differences of the f32 loss.
#[test]
fn gradients_match_finite_differences() {
    let mut rng = ChaCha8Rng::seed_from_u64(7);
    let n = 6;
    let x = uniform(&mut rng, n, 5, 2.0);
    let y = [0, 1, 2, 1, 0, 2];
    let mut head = Head::init(5, &[4, 3], 3, false, &mut rng);
    // Away from γ = 1, β = 0, so that a wrong γ or β gradient cannot hide behind symmetry.
    for Block { bn, .. } in &mut head.blocks {
        bn.gamma.mapv_inplace(|_| rng.gen_range(0.5..1.5));
        bn.beta.mapv_inplace(|_| rng.gen_range(-0.5..0.5));
    }
    let mut ws = Workspace::new(&head, n, 0.3, 0.1, true);
    ws.load_batch(x.view(), Targets::Classes(&y), &[0, 1, 2, 3, 4, 5], &[1.0, 2.0, 0.5]);
    // Reseeding gives every pass the same dropout masks.
    let loss =
        |head: &Head, ws: &mut Workspace| head.forward_train(ws, n, &mut ChaCha8Rng::seed_from_u64(1)).0 / n as f64;
    loss(&head, &mut ws);
    let mut grads = zero_grads(&head);
    head.backward(&mut ws, n, &mut grads);

    let h = 2e-3;
    for (k, g) in grads.iter().enumerate() {
        for (p, analytic) in g.slices().into_iter().enumerate() {
            for (i, &analytic) in analytic.iter().enumerate() {
                let original = head.blocks[k].params_mut()[p][i];
                head.blocks[k].params_mut()[p][i] = original + h;
                let up = loss(&head, &mut ws);
                head.blocks[k].params_mut()[p][i] = original - h;
                let down = loss(&head, &mut ws);
                head.blocks[k].params_mut()[p][i] = original;
                let numeric = ((up - down) / (2.0 * f64::from(h))) as f32;
                assert!(
                    (numeric - analytic).abs() <= 1e-3 + 1e-2 * analytic.abs(),
                    "block {k} {}[{i}]: analytic {analytic}, numeric {numeric}",
                    PARAM_NAMES[p]
                );
            }
        }
    }
    // The input gradient, which a head trained together with what computes its input needs.
    let analytic = ws.input_grad.clone();
    for ((r, c), &analytic) in analytic.indexed_iter() {
        let original = ws.batch[[r, c]];
        ws.batch[[r, c]] = original + h;
        let up = loss(&head, &mut ws);
        ws.batch[[r, c]] = original - h;
        let down = loss(&head, &mut ws);
        ws.batch[[r, c]] = original;
        let numeric = ((up - down) / (2.0 * f64::from(h))) as f32;
        assert!(
            (numeric - analytic).abs() <= 1e-3 + 1e-2 * analytic.abs(),
            "input [{r}, {c}]: analytic {analytic}, numeric {numeric}"
        );
    }
}

// Golden values: PyTorch in float64, replicating Keras semantics explicitly, for one batch of
// 4 with label smoothing 0.1, class weights [1, 2, 0.5], no dropout, then one AdamW step at
// lr 0.1 with weight decay 0.01. To regenerate, run this snippet (torch 2.x) and paste its
// output into GOLDEN:
//
// import math, torch
// import torch.nn.functional as F
// torch.set_default_dtype(torch.float64)
// t = torch.tensor
// x = t([[0.5, -1.0, 2.0], [1.5, 0.3, -0.7], [-0.2, 0.8, 0.1], [0.9, -0.4, -1.2]])
// y = t([0, 2, 1, 2])
// cw = t([1.0, 2.0, 0.5])  # class weights, applied as per-sample weights as Keras does
// p = {  # kernels are [in, out] as in Keras
//     "bn0.gamma": t([1.1, 0.9, 1.2]), "bn0.beta": t([0.1, -0.2, 0.05]),
//     "dense0.kernel": t([[0.3, -0.5, 0.2, 0.7], [-0.4, 0.6, 0.1, -0.3],
//                         [0.5, 0.2, -0.6, 0.4]]),
//     "dense0.bias": t([0.05, -0.05, 0.1, 0.0]),
//     "bn1.gamma": t([0.8, 1.2, 1.0, 0.9]), "bn1.beta": t([0.0, 0.1, -0.1, 0.2]),
//     "dense1.kernel": t([[0.4, -0.2, 0.1], [-0.3, 0.5, 0.2], [0.6, 0.1, -0.4],
//                         [-0.1, -0.3, 0.5]]),
//     "dense1.bias": t([0.02, -0.01, 0.0]),
// }
// for v in p.values():
//     v.requires_grad_(True)
// mm = {0: t([0.2, -0.1, 0.3]), 1: t([0.3, 0.2, 0.4, 0.1])}
// mv = {0: t([1.5, 0.8, 1.2]), 1: t([0.5, 0.9, 1.1, 0.7])}
//
// def forward(train):
//     h, stats = x, []
//     for k in range(2):
//         if train:  # Keras normalises with the biased batch variance
//             mean, var = h.mean(0), h.var(0, unbiased=False)
//             stats.append((mean.detach(), var.detach()))
//         else:
//             mean, var = mm[k], mv[k]
//         h = (h - mean) / torch.sqrt(var + 1e-3) * p[f"bn{k}.gamma"] + p[f"bn{k}.beta"]
//         h = h @ p[f"dense{k}.kernel"] + p[f"dense{k}.bias"]
//         if k == 0:
//             h = torch.relu(h)
//     return h, stats
//
// def show(name, v):
//     print(f'("{name}", &{[round(float(a), 9) for a in v.detach().flatten()]}),')
//
// show("infer_probs", F.softmax(forward(False)[0], 1))
// logits, stats = forward(True)
// # Keras CE: smoothed targets, weighted per sample, divided by the batch size
// ce = F.cross_entropy(logits, y, label_smoothing=0.1, reduction="none")
// loss = (cw[y] * ce).sum() / len(y)
// loss.backward()
// show("loss", loss.reshape(1))
// show("train_logits", logits)
// show("train_probs", F.softmax(logits, 1))
// for n, v in p.items():
//     show("grad " + n, v.grad)
// # Keras Adam adds eps to the uncorrected sqrt(v): at step 1 that is torch's rule with
// # eps / sqrt(1 - beta2). Decay: kernels only, decoupled (p *= 1 - lr * wd), before the step.
// kernels = [v for n, v in p.items() if n.endswith("kernel")]
// others = [v for n, v in p.items() if not n.endswith("kernel")]
// groups = [{"params": kernels, "weight_decay": 0.01}, {"params": others, "weight_decay": 0.0}]
// eps = 1e-7 / math.sqrt(1 - 0.999)
// torch.optim.AdamW(groups, lr=0.1, betas=(0.9, 0.999), eps=eps).step()
// for n, v in p.items():
//     show("after " + n, v)
// for k, (mean, var) in enumerate(stats):  # Keras: 0.99 moving + 0.01 batch (biased var)
//     show(f"after bn{k}.moving_mean", 0.99 * mm[k] + 0.01 * mean)
//     show(f"after bn{k}.moving_variance", 0.99 * mv[k] + 0.01 * var)
#[rustfmt::skip]
const GOLDEN: &[(&str, &[f64])] = &[
    ("infer_probs", &[0.265267416, 0.090545069, 0.644187514, 0.383220066, 0.286363155, 0.330416779, 0.20936802, 0.398068104, 0.392563875, 0.427632711, 0.323118239, 0.249249049]),
    ("loss", &[1.054593702]),
    ("train_logits", &[-0.047321766, -1.111444763, 1.157627354, 0.503868724, -0.352056027, -0.156751573, -1.411586121, 1.283949477, 0.460027468, 0.595039163, 0.059551314, -0.820903249]),
    ("train_probs", &[0.213601292, 0.073698921, 0.712699787, 0.51508665, 0.218855214, 0.266058136, 0.04481848, 0.663916337, 0.291265183, 0.547021885, 0.320217663, 0.132760453]),
    ("grad bn0.gamma", &[-0.224194834, 0.056087824, 0.190325633]),
    ("grad bn0.beta", &[-0.137972768, 0.061938952, -0.083859491]),
    ("grad dense0.kernel", &[-0.014373715, 0.000467725, -0.012945299, -0.361823654, -0.002945965, -0.000305696, -0.014019718, -0.128327515, 0.006667088, -3.1897e-05, -0.009767264, 0.537525656]),
    ("grad dense0.bias", &[-0.008965804, -0.000321348, 0.002682287, -0.194257369]),
    ("grad bn1.gamma", &[-0.134984338, -0.102797598, 0.389248653, 0.052354137]),
    ("grad bn1.beta", &[0.004741836, 0.005210204, -0.082543366, 0.082309182]),
    ("grad dense1.kernel", &[-0.307701785, 0.052256451, 0.255445334, 0.04532983, -0.333903942, 0.288574113, 0.302719507, 0.189566965, -0.492286472, -0.250024283, 0.108042513, 0.14198177]),
    ("grad dense1.bias", &[-0.049760204, -0.065566325, 0.115326529]),
    ("after bn0.gamma", &[1.19999859, 0.800005638, 1.100001661]),
    ("after bn0.beta", &[0.199997708, -0.299994895, 0.149996229]),
    ("after dense0.kernel", &[0.399678004, -0.598828442, 0.299775578, 0.799299126, -0.299707228, 0.698376139, 0.199877449, -0.199702464, 0.399547409, 0.290780322, -0.499432366, 0.299600588]),
    ("after dense0.bias", &[0.149964742, 0.049025523, 0.000117756, 0.099998372]),
    ("after bn1.gamma", &[0.899997657, 1.299996924, 0.900000812, 0.80000604]),
    ("after bn1.beta", &[-0.099933356, 6.0657e-05, -3.831e-06, 0.100003842]),
    ("after dense1.kernel", &[0.499598972, -0.299793949, -9.8762e-05, -0.399693024, 0.599499053, 0.099801096, 0.499401045, -9.8332e-05, -0.299600642, 9.8735e-05, -0.399697073, 0.399502227]),
    ("after dense1.bias", &[0.119993645, 0.089995177, -0.099997258]),
    ("after bn0.moving_mean", &[0.20475, -0.09975, 0.2975]),
    ("after bn0.moving_variance", &[1.48881875, 0.79666875, 1.202825]),
    ("after bn1.moving_mean", &[0.300993154, 0.201170954, 0.400255441, 0.103661347]),
    ("after bn1.moving_variance", &[0.499336006, 0.894016485, 1.090810999, 0.69502134]),
];

fn golden(name: &str) -> &'static [f64] {
    GOLDEN.iter().find(|(n, _)| *n == name).map(|(_, v)| *v).unwrap()
}

fn assert_golden(name: &str, got: &[f32], tolerance: f64) {
    let want = golden(name);
    assert_eq!(got.len(), want.len(), "{name}");
    for (i, (&g, &w)) in got.iter().zip(want).enumerate() {
        assert!((f64::from(g) - w).abs() <= tolerance, "{name}[{i}]: got {g}, want {w}");
    }
}

/// The head of the snippet: hidden [4], 3 classes, explicit weights and moving statistics.
fn golden_head() -> Head {
    let vector = |name: &str, v: &[f32]| (name.to_string(), vec![v.len()], v.to_vec());
    let matrix = |name: &str, rows: usize, v: &[f32]| (name.to_string(), vec![rows, v.len() / rows], v.to_vec());
    Head::from_tensors(vec![
        vector("bn0.gamma", &[1.1, 0.9, 1.2]),
        vector("bn0.beta", &[0.1, -0.2, 0.05]),
        vector("bn0.moving_mean", &[0.2, -0.1, 0.3]),
        vector("bn0.moving_variance", &[1.5, 0.8, 1.2]),
        matrix(
            "dense0.kernel",
            3,
            &[0.3, -0.5, 0.2, 0.7, -0.4, 0.6, 0.1, -0.3, 0.5, 0.2, -0.6, 0.4],
        ),
        vector("dense0.bias", &[0.05, -0.05, 0.1, 0.0]),
        vector("bn1.gamma", &[0.8, 1.2, 1.0, 0.9]),
        vector("bn1.beta", &[0.0, 0.1, -0.1, 0.2]),
        vector("bn1.moving_mean", &[0.3, 0.2, 0.4, 0.1]),
        vector("bn1.moving_variance", &[0.5, 0.9, 1.1, 0.7]),
        matrix(
            "dense1.kernel",
            4,
            &[0.4, -0.2, 0.1, -0.3, 0.5, 0.2, 0.6, 0.1, -0.4, -0.1, -0.3, 0.5],
        ),
        vector("dense1.bias", &[0.02, -0.01, 0.0]),
    ])
    .unwrap()
}

#[test]
fn forward_and_one_adam_step_match_pytorch() {
    let x = ndarray::array![
        [0.5f32, -1.0, 2.0],
        [1.5, 0.3, -0.7],
        [-0.2, 0.8, 0.1],
        [0.9, -0.4, -1.2]
    ];
    let y = [0, 2, 1, 2];
    let mut head = golden_head();
    assert_golden("infer_probs", head.predict_proba(x.view()).as_slice().unwrap(), 1e-6);

    let mut ws = Workspace::new(&head, 4, 0.0, 0.1, false);
    ws.load_batch(x.view(), Targets::Classes(&y), &[0, 1, 2, 3], &[1.0, 2.0, 0.5]);
    let mut grads = zero_grads(&head);
    let mut adam = Adam::new(&head, 0.1, 0.01);
    let mut rng = ChaCha8Rng::seed_from_u64(0);
    let (loss_sum, _) = head.train_step(&mut ws, 4, &mut rng, &mut grads, &mut adam);

    assert_golden("loss", &[(loss_sum / 4.0) as f32], 1e-6);
    let logits = ws.blocks[1].out.view();
    assert_golden("train_logits", logits.as_slice().unwrap(), 1e-6);
    let probs: Vec<f32> = logits
        .rows()
        .into_iter()
        .flat_map(|z| {
            let lse = log_sum_exp(z);
            z.iter().map(|&v| (v - lse).exp()).collect::<Vec<_>>()
        })
        .collect();
    assert_golden("train_probs", &probs, 1e-6);
    for (k, g) in grads.iter().enumerate() {
        let names = ["bn{k}.gamma", "bn{k}.beta", "dense{k}.kernel", "dense{k}.bias"];
        for (name, values) in names.iter().zip(g.slices()) {
            let name = name.replace("{k}", &k.to_string());
            assert_golden(&format!("grad {name}"), values, 1e-6);
        }
    }
    // Adam near ε (gradients of ~3e-5) amplifies f32 rounding of the gradient, hence 1e-5.
    for (name, _, values) in head.tensors() {
        assert_golden(&format!("after {name}"), &values, 1e-5);
    }
}

fn bits(head: &Head) -> Vec<(String, Vec<u32>)> {
    let tensors = head.tensors().into_iter();
    tensors
        .map(|(n, _, v)| (n, v.iter().map(|x| x.to_bits()).collect()))
        .collect()
}

#[test]
fn same_seed_gives_bit_identical_training() {
    let (x, y) = blobs(150, 12, 3, 1);
    let (vx, vy) = blobs(40, 12, 3, 2);
    let fit = |seed| {
        let params = HeadParams::default().hidden(vec![16, 8]).epochs(3).batch_size(7);
        let valid = Some((vx.view(), &vy[..]));
        params.seed(seed).fit(x.view(), &y, 3, valid, &mut |_| {}).unwrap()
    };
    let (a, b) = (fit(5), fit(5));
    assert_eq!(bits(&a.head), bits(&b.head));
    let strip = |h: &[EpochStats]| {
        let figures = h.iter().map(|e| (e.train_loss, e.train_accuracy, e.val_loss));
        figures
            .map(|(l, a, v)| (l.to_bits(), a.to_bits(), v.map(f32::to_bits)))
            .collect::<Vec<_>>()
    };
    assert_eq!(strip(&a.history), strip(&b.history));
    assert_ne!(bits(&a.head), bits(&fit(6).head));
}

#[test]
fn views_of_one_row_each_train_the_plain_head_and_more_views_are_drawn() {
    let (x, y) = blobs(60, 6, 3, 3);
    let params = HeadParams::default().hidden(vec![8]).epochs(3).batch_size(8).seed(2);
    let plain = params.fit(x.view(), &y, 3, None, &mut |_| {}).unwrap();
    // Rows stored in reverse, each image naming its own: the same head, bit for bit.
    let reversed = x.slice(s![..;-1, ..]).to_owned();
    let y_reversed: Vec<usize> = y.iter().rev().copied().collect();
    let single: Vec<Vec<usize>> = (0..60).map(|i| vec![59 - i]).collect();
    let one = params
        .fit_views(
            reversed.view(),
            Targets::Classes(&y_reversed),
            &single,
            3,
            None,
            &mut |_| {},
        )
        .unwrap();
    assert_eq!(bits(&plain.head), bits(&one.head));

    // A second, shifted copy of every image as its view: the draws change the head, and the
    // same seed draws the same views.
    let mut doubled = ndarray::concatenate(ndarray::Axis(0), &[x.view(), (&x + 0.5).view()]).unwrap();
    doubled.row_mut(0).fill(0.0);
    let y2: Vec<usize> = y.iter().chain(&y).copied().collect();
    let pools: Vec<Vec<usize>> = (0..60).map(|i| vec![i, 60 + i]).collect();
    let fit = |params: &HeadParams| {
        params
            .fit_views(doubled.view(), Targets::Classes(&y2), &pools, 3, None, &mut |_| {})
            .unwrap()
    };
    let (a, b) = (fit(&params), fit(&params));
    assert_eq!(bits(&a.head), bits(&b.head));
    assert_ne!(bits(&a.head), bits(&plain.head));
    assert_ne!(bits(&a.head), bits(&fit(&params.clone().seed(3)).head));

    let empty = vec![vec![0], vec![]];
    let err = params.fit_views(x.view(), Targets::Classes(&y), &empty, 3, None, &mut |_| {});
    assert!(matches!(err, Err(HeadError::NoViews { image: 1 })), "{err:?}");
}

#[test]
fn learns_a_separable_problem() {
    let (x, y) = blobs(300, 10, 3, 3);
    let (tx, ty) = blobs(300, 10, 3, 4);
    let mut epochs_seen = 0;
    let fitted = HeadParams::default()
        .seed(0)
        .epochs(10)
        .fit(x.view(), &y, 3, None, &mut |_| epochs_seen += 1)
        .unwrap();
    assert_eq!((epochs_seen, fitted.best_epoch), (10, 10));
    let history = &fitted.history;
    assert!(history[9].train_loss < history[0].train_loss);
    let (_, accuracy) = fitted.head.evaluate(tx.view(), Targets::Classes(&ty), 0.0);
    assert!(accuracy > 0.95, "held-out accuracy {accuracy}");
    let p = fitted.head.predict_proba(tx.view());
    for row in p.rows() {
        assert_abs_diff_eq!(row.sum(), 1.0, epsilon = 1e-5);
    }
}

#[test]
fn linear_head_trains_too() {
    let (x, y) = blobs(200, 6, 4, 5);
    let fitted = HeadParams::default()
        .seed(0)
        .hidden(vec![])
        .learning_rate(0.01)
        .epochs(20)
        .fit(x.view(), &y, 4, None, &mut |_| {})
        .unwrap();
    assert!(fitted.head.hidden().is_empty());
    let (_, accuracy) = fitted.head.evaluate(x.view(), Targets::Classes(&y), 0.0);
    assert!(accuracy > 0.9, "accuracy {accuracy}");
}

/// Random labels: the validation loss soon rises, so training stops `patience` epochs after
/// its minimum and returns the weights of that epoch.
#[test]
fn early_stopping_restores_the_best_epoch() {
    let mut rng = ChaCha8Rng::seed_from_u64(8);
    let x = uniform(&mut rng, 200, 20, 1.0);
    let y: Vec<usize> = (0..200).map(|_| rng.gen_range(0..3)).collect();
    let vx = uniform(&mut rng, 100, 20, 1.0);
    let vy: Vec<usize> = (0..100).map(|_| rng.gen_range(0..3)).collect();
    let fitted = HeadParams::default()
        .seed(0)
        .hidden(vec![64])
        .dropout(0.0)
        .learning_rate(0.01)
        .epochs(60)
        .early_stopping(Some(3))
        .fit(x.view(), &y, 3, Some((vx.view(), &vy)), &mut |_| {})
        .unwrap();
    let losses: Vec<f32> = fitted.history.iter().map(|e| e.val_loss.unwrap()).collect();
    let best = (0..losses.len()).fold(0, |b, i| if losses[i] < losses[b] { i } else { b });
    assert_eq!(fitted.best_epoch, best + 1);
    assert_eq!(fitted.history.len(), fitted.best_epoch + 3, "losses {losses:?}");
    let (restored_loss, _) = fitted.head.evaluate(vx.view(), Targets::Classes(&vy), 0.0);
    assert_eq!(restored_loss, losses[best]);
}

#[test]
fn folded_layers_reproduce_predict_proba() {
    let (x, y) = blobs(100, 8, 3, 6);
    let head = HeadParams::default()
        .seed(0)
        .hidden(vec![16, 8])
        .fit(x.view(), &y, 3, None, &mut |_| {})
        .unwrap()
        .head;
    let mut h = x.clone();
    for layer in head.folded_layers() {
        h = h.dot(&layer.weight) + &layer.bias;
        if layer.relu {
            h.mapv_inplace(|v| v.max(0.0));
        }
    }
    let mut folded = h;
    for mut row in folded.rows_mut() {
        let lse = log_sum_exp(row.view());
        row.mapv_inplace(|v| (v - lse).exp());
    }
    let expected = head.predict_proba(x.view());
    for (&f, &e) in folded.iter().zip(&expected) {
        assert_abs_diff_eq!(f, e, epsilon = 1e-5);
    }
}

#[test]
fn tensors_and_files_round_trip() {
    let head = golden_head();
    assert_eq!(Head::from_tensors(head.tensors()).unwrap(), head);
    assert_eq!((head.n_features(), head.hidden(), head.n_classes()), (3, vec![4], 3));

    let dir = std::env::temp_dir().join(format!("headstart-head-{}", std::process::id()));
    fs::create_dir_all(&dir).unwrap();
    let path = dir.join("head.safetensors");
    let metadata = BTreeMap::from([("classes".to_string(), "[\"a\",\"b\",\"c\"]".to_string())]);
    let loaded = |path: &Path| {
        let (classifier, metadata) = artifact::load(path).unwrap();
        (classifier.tensors(), metadata)
    };
    artifact::save(&path, &head, metadata.clone()).unwrap();
    assert_eq!(loaded(&path), (head.tensors(), metadata));
    artifact::save(&path, &head, BTreeMap::new()).unwrap();
    assert_eq!(loaded(&path), (head.tensors(), BTreeMap::new()));
    let files: Vec<_> = fs::read_dir(&dir).unwrap().map(|e| e.unwrap().file_name()).collect();
    assert_eq!(files, ["head.safetensors"], "no temporary file is left behind");

    fs::write(&path, b"not a safetensors file").unwrap();
    assert!(matches!(artifact::load(&path), Err(ArtifactError::Format { path: p, .. }) if p == path));
    fs::remove_dir_all(&dir).unwrap();
    let missing = dir.join("head.safetensors");
    assert!(matches!(artifact::load(&missing), Err(ArtifactError::Read { path: p, .. }) if p == missing));
    // A missing folder is created; a folder that cannot exist is a write error.
    artifact::save(&missing, &golden_head(), BTreeMap::new()).unwrap();
    let under_a_file = missing.join("head.safetensors");
    assert!(matches!(
        artifact::save(&under_a_file, &golden_head(), BTreeMap::new()),
        Err(ArtifactError::Write(e)) if e.path == under_a_file
    ));
    fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn inconsistent_tensors_are_rejected() {
    let tensors = golden_head().tensors();
    let without = |name: &str| tensors.iter().filter(|t| t.0 != name).cloned().collect();
    let message = |t: Vec<_>| Head::from_tensors(t).unwrap_err().to_string();
    assert!(message(without("bn1.beta")).contains("`bn1.beta` is missing"));
    assert!(message(without("dense0.kernel")).contains("`dense0.kernel` is missing"));
    // Without dense1.kernel the head would end at block 0, leaving block 1's tensors over.
    assert!(message(without("dense1.kernel")).contains("unexpected tensor"));
    let mut wrong = tensors.clone();
    wrong[0].1 = vec![1, 3];
    assert!(message(wrong).contains("`bn0.gamma` has shape [1, 3], expected [3]"));
}

#[test]
fn balanced_class_weights() {
    let x = Array2::zeros((4, 2));
    let params = HeadParams::default().class_weights(ClassWeights::Balanced);
    let weights = params
        .check(x.view(), Targets::Classes(&[0, 0, 0, 1]), &[0, 1, 2, 3], 3, None)
        .unwrap();
    assert_eq!(weights, [4.0 / 9.0, 4.0 / 3.0, 0.0]);
    // only the rows trained on count
    let weights = params
        .check(x.view(), Targets::Classes(&[0, 0, 0, 1]), &[0, 2, 3], 3, None)
        .unwrap();
    assert_eq!(weights, [1.0 / 2.0, 1.0, 0.0]);
}

#[test]
fn fit_rows_equals_fit_on_the_gathered_rows_bit_for_bit() {
    let (x, y) = blobs(40, 6, 3, 5);
    let rows: Vec<usize> = (0..x.nrows()).filter(|i| i % 5 != 2).rev().collect();
    let params = HeadParams::default()
        .hidden(vec![8])
        .epochs(3)
        .batch_size(7)
        .class_weights(ClassWeights::Balanced)
        .seed(11);
    let from_rows = params.fit_rows(x.view(), &y, &rows, 3, None, &mut |_| {}).unwrap();
    let gathered = x.select(ndarray::Axis(0), &rows);
    let labels: Vec<usize> = rows.iter().map(|&i| y[i]).collect();
    let alone = params.fit(gathered.view(), &labels, 3, None, &mut |_| {}).unwrap();
    let untimed = |h: &[EpochStats]| h.iter().map(|e| (e.train_loss, e.train_accuracy)).collect::<Vec<_>>();
    assert_eq!(untimed(&from_rows.history), untimed(&alone.history));
    assert_eq!(
        from_rows.head.predict_proba(x.view()),
        alone.head.predict_proba(x.view())
    );

    let err = params
        .fit_rows(x.view(), &y, &[0, x.nrows()], 3, None, &mut |_| {})
        .unwrap_err();
    assert!(matches!(err, HeadError::RowOutOfRange { row, rows } if row == x.nrows() && rows == x.nrows()));
    let err = params.fit_rows(x.view(), &y, &[], 3, None, &mut |_| {}).unwrap_err();
    assert!(matches!(
        err,
        HeadError::EmptySet {
            set: "training",
            rows: 0,
            ..
        }
    ));
}

#[test]
fn invalid_parameters_and_data_are_errors() {
    let (x, y) = blobs(10, 4, 2, 9);
    let fit = |params: HeadParams| params.fit(x.view(), &y, 2, None, &mut |_| {}).unwrap_err();
    let p = HeadParams::default;
    assert!(matches!(fit(p().epochs(0)), HeadError::Epochs(0)));
    assert!(matches!(fit(p().batch_size(0)), HeadError::BatchSize(0)));
    let lr = fit(p().learning_rate(-1.0));
    assert!(matches!(lr, HeadError::LearningRate(_)));
    assert!(lr
        .to_string()
        .starts_with("learning rate must be a finite number > 0 (got -1)"));
    assert!(matches!(fit(p().learning_rate(f32::NAN)), HeadError::LearningRate(_)));
    assert!(matches!(fit(p().hidden(vec![8, 0])), HeadError::Hidden(_)));
    assert!(matches!(fit(p().dropout(1.0)), HeadError::Dropout(_)));
    assert!(matches!(fit(p().dropout(-0.1)), HeadError::Dropout(_)));
    assert!(matches!(fit(p().weight_decay(-1e-4)), HeadError::WeightDecay(_)));
    assert!(matches!(fit(p().label_smoothing(1.5)), HeadError::LabelSmoothing(_)));
    let given = |w: Vec<f32>| p().class_weights(ClassWeights::Given(w));
    assert!(matches!(fit(given(vec![1.0])), HeadError::ClassWeights { .. }));
    assert!(matches!(fit(given(vec![1.0, -1.0])), HeadError::ClassWeights { .. }));
    assert!(matches!(fit(given(vec![0.0, 0.0])), HeadError::ClassWeights { .. }));
    assert!(matches!(
        fit(p().early_stopping(Some(3))),
        HeadError::EarlyStoppingWithoutValidation
    ));
    let valid = Some((x.view(), &y[..]));
    let patience = p().early_stopping(Some(0)).fit(x.view(), &y, 2, valid, &mut |_| {});
    assert!(matches!(patience, Err(HeadError::Patience)));

    let data =
        |x: ArrayView2<f32>, y: &[usize], n_classes, valid| p().fit(x, y, n_classes, valid, &mut |_| {}).unwrap_err();
    assert!(matches!(data(x.view(), &y, 1, None), HeadError::TooFewClasses(1)));
    assert!(matches!(
        data(x.view(), &y[1..], 2, None),
        HeadError::Set(SetError::LabelCount { .. })
    ));
    let mut labels = y.clone();
    labels[3] = 2;
    let out_of_range = data(x.view(), &labels, 2, None);
    assert!(matches!(
        out_of_range,
        HeadError::Set(SetError::LabelOutOfRange { row: 3, label: 2, .. })
    ));
    let mut nan = x.clone();
    nan[[2, 1]] = f32::NAN;
    assert!(matches!(
        data(nan.view(), &y, 2, None),
        HeadError::Set(SetError::NonFinite { row: 2, col: 1, .. })
    ));
    let narrow = x.slice(s![.., ..3]);
    let mismatch = data(x.view(), &y, 2, Some((narrow, &y[..])));
    assert!(matches!(
        mismatch,
        HeadError::FeatureCount {
            set: "validation",
            expected: 4,
            got: 3
        }
    ));
    assert!(matches!(
        data(x.slice(s![..0, ..]), &[], 2, None),
        HeadError::EmptySet { .. }
    ));
}

#[test]
fn divergence_is_an_error_not_nan_weights() {
    let (x, y) = blobs(64, 4, 2, 10);
    let result = HeadParams::default()
        .seed(0)
        .learning_rate(1e30)
        .epochs(50)
        .fit(x.view(), &y, 2, None, &mut |_| {});
    assert!(matches!(result, Err(HeadError::Diverged { .. })));
}

/// Front ends find the field in the message to name their own flag for it.
#[test]
fn parameter_errors_name_their_field_in_backticks() {
    let (x, y) = blobs(10, 4, 2, 9);
    let p = HeadParams::default;
    for params in [
        p().epochs(0),
        p().batch_size(0),
        p().learning_rate(0.0),
        p().hidden(vec![0]),
        p().dropout(1.0),
        p().weight_decay(f32::NAN),
        p().label_smoothing(2.0),
        p().class_weights(ClassWeights::Given(vec![1.0])),
        p().early_stopping(Some(1)),
    ] {
        let err = params.fit(x.view(), &y, 2, None, &mut |_| {}).unwrap_err();
        let field = err.parameter().unwrap_or_else(|| panic!("{err:?} names no parameter"));
        assert!(err.to_string().contains(&format!("`{field}`")), "{err}");
    }
    let diverged = HeadError::Diverged {
        epoch: 1,
        loss: f32::NAN,
    };
    assert!(diverged.to_string().contains("`learning_rate`"));
    assert_eq!(HeadError::TooFewClasses(1).parameter(), None);
}

// Golden values for the multi-label loss: the network, batch and moving statistics of the
// snippet above, targets y below, label smoothing 0.1 toward 1/2, no dropout:
//
// y = t([[1., 0., 1.], [0., 1., 1.], [1., 1., 0.], [0., 0., 0.]])
// show("infer_probs", torch.sigmoid(forward(False)[0]))
// logits, _ = forward(True)
// loss = F.binary_cross_entropy_with_logits(logits, 0.9 * y + 0.05)  # mean over batch and labels
// loss.backward()
// show("loss", loss.reshape(1))
// for n, v in p.items():
//     show("grad " + n, v.grad)
#[rustfmt::skip]
const GOLDEN_MULTI_LABEL: &[(&str, &[f64])] = &[
    ("infer_probs", &[0.547667348, 0.292423947, 0.746210325, 0.540049545, 0.467344918, 0.503071843, 0.39658669, 0.555476112, 0.552035401, 0.571481567, 0.501913021, 0.437352551]),
    ("loss", &[0.741314701]),
    ("grad bn0.gamma", &[-0.011009842, -0.002234645, 0.013923038]),
    ("grad bn0.beta", &[-0.020889806, 0.003432005, -0.00545087]),
    ("grad dense0.kernel", &[0.03451141, -0.000218498, 0.018983726, -0.040656034, 0.007678888, 0.000142806, 0.015656766, 0.004257954, -0.016833509, 1.4901e-05, 0.007786673, 0.0738022]),
    ("grad dense0.bias", &[0.021028106, 0.000150118, 0.000694382, -0.038945794]),
    ("grad bn1.gamma", &[-0.045351166, 0.04802189, 0.138369727, -0.048691253]),
    ("grad bn1.beta", &[0.000263191, 0.001809089, -0.007423234, 0.007286795]),
    ("grad dense1.kernel", &[-0.066571671, 0.029272495, -0.037977657, -0.171480104, -0.036428573, 0.12288716, 0.198470839, -0.009174638, -0.052367528, -0.002552494, -0.022864488, -0.098958729]),
    ("grad dense1.bias", &[-0.003996303, -0.003459141, 0.011698844]),
];

fn assert_multi_label_golden(name: &str, got: &[f32]) {
    let want = GOLDEN_MULTI_LABEL.iter().find(|(n, _)| *n == name).unwrap().1;
    assert_eq!(got.len(), want.len(), "{name}");
    for (i, (&g, &w)) in got.iter().zip(want).enumerate() {
        assert!((f64::from(g) - w).abs() <= 1e-6, "{name}[{i}]: got {g}, want {w}");
    }
}

#[test]
fn multi_label_forward_and_gradients_match_pytorch() {
    let x = ndarray::array![
        [0.5f32, -1.0, 2.0],
        [1.5, 0.3, -0.7],
        [-0.2, 0.8, 0.1],
        [0.9, -0.4, -1.2]
    ];
    let y = ndarray::array![[1f32, 0., 1.], [0., 1., 1.], [1., 1., 0.], [0., 0., 0.]];
    let head = golden_head().into_multi_label();
    assert_multi_label_golden("infer_probs", head.predict_proba(x.view()).as_slice().unwrap());

    let mut ws = Workspace::new(&head, 4, 0.0, 0.1, false);
    ws.load_batch(x.view(), Targets::Sets(y.view()), &[0, 1, 2, 3], &[]);
    let (loss_sum, _) = head.forward_train(&mut ws, 4, &mut ChaCha8Rng::seed_from_u64(0));
    assert_multi_label_golden("loss", &[(loss_sum / 4.0) as f32]);
    let mut grads = zero_grads(&head);
    head.backward(&mut ws, 4, &mut grads);
    for (k, g) in grads.iter().enumerate() {
        let names = ["bn{k}.gamma", "bn{k}.beta", "dense{k}.kernel", "dense{k}.bias"];
        for (name, values) in names.iter().zip(g.slices()) {
            let name = name.replace("{k}", &k.to_string());
            assert_multi_label_golden(&format!("grad {name}"), values);
        }
    }
}

/// Label c is present when feature c is positive; four labels, any subset per row.
fn multi_label_blobs(n: usize, seed: u64) -> (Array2<f32>, Array2<f32>) {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let x = uniform(&mut rng, n, 8, 1.0);
    let y = x.slice(s![.., ..4]).mapv(|v| if v > 0.0 { 1.0 } else { 0.0 });
    (x, y)
}

#[test]
fn a_multi_label_head_learns_independent_labels_and_round_trips_as_its_own_format() {
    let (x, y) = multi_label_blobs(600, 1);
    let (vx, vy) = multi_label_blobs(200, 2);
    let params = HeadParams::default().epochs(30).hidden(vec![32]).dropout(0.0);
    let fitted = params
        .fit_multi_label(x.view(), y.view(), Some((vx.view(), vy.view())), &mut |_| {})
        .unwrap();
    let last = fitted.history.last().unwrap();
    assert!(last.val_accuracy.unwrap() > 0.95, "{last:?}");
    let probs = fitted.head.predict_proba(vx.view());
    // Independent sigmoids: rows do not sum to 1, and a row may have every label or none.
    assert!(probs.rows().into_iter().any(|r| r.sum() > 1.5));
    assert!(probs.rows().into_iter().any(|r| r.sum() < 0.5));

    let chain = fitted.head.dense_chain().unwrap();
    assert_eq!(chain.activation, Activation::Sigmoid);
    let loaded = artifact::saved_and_loaded(&fitted.head);
    assert_eq!(loaded.format(), Some(MULTI_LABEL_FORMAT));
    assert_eq!(loaded.predict_proba(vx.view()), probs);
    // A single-label head's file is unchanged: no marker.
    assert_eq!(Classifier::format(&golden_head()), None);
}

#[test]
fn multi_label_targets_and_settings_are_checked() {
    let (x, mut y) = multi_label_blobs(20, 3);
    let weighted = HeadParams::default().class_weights(ClassWeights::Balanced);
    let err = weighted
        .fit_multi_label(x.view(), y.view(), None, &mut |_| {})
        .unwrap_err();
    assert_eq!(err.parameter(), Some("class_weights"));
    y[[3, 2]] = 0.5;
    let err = HeadParams::default()
        .fit_multi_label(x.view(), y.view(), None, &mut |_| {})
        .unwrap_err();
    assert!(err.to_string().contains("row 3, column 2"), "{err}");
    let short = y.slice(s![..10, ..]);
    let err = HeadParams::default()
        .fit_multi_label(x.view(), short, None, &mut |_| {})
        .unwrap_err();
    assert!(err.to_string().contains("10 x 4"), "{err}");
}
