//! Every layer's gradients against central differences, the layers built from a real
//! backbone, determinism, and the file round trip. The PyTorch golden values of a real Lite0
//! last block are in `golden` below.

use ndarray::Array2;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

use super::*;
use crate::classifier::Classifier;
use crate::head::HeadParams;

fn random(rng: &mut ChaCha8Rng, n: usize, scale: f32) -> Vec<f32> {
    (0..n).map(|_| rng.gen_range(-scale..scale)).collect()
}

fn param(rng: &mut ChaCha8Rng, name: &str, dims: &[usize], scale: f32) -> Param {
    Param {
        name: name.into(),
        dims: dims.to_vec(),
        values: random(rng, dims.iter().product(), scale),
    }
}

fn g(channels: usize, height: usize, width: usize) -> Geometry {
    Geometry {
        channels,
        height,
        width,
    }
}

/// A top with every kind of layer on the path: 3x3 dense conv, batch norm, ReLU, 1x1 expand,
/// depthwise 3x3, ReLU6, 1x1 project, residual add, pool. Maps are 4 channels of 3x3.
fn every_layer(rng: &mut ChaCha8Rng) -> Top {
    let params = vec![
        param(rng, "conv.w", &[4, 4, 3, 3], 0.4),
        param(rng, "conv.b", &[4], 0.2),
        Param {
            name: "bn.scale".into(),
            dims: vec![4],
            values: random(rng, 4, 0.5).iter().map(|v| v + 1.0).collect(),
        },
        param(rng, "bn.shift", &[4], 0.3),
        param(rng, "expand.w", &[6, 4, 1, 1], 0.5),
        param(rng, "expand.b", &[6], 0.3),
        param(rng, "dw.w", &[6, 1, 3, 3], 0.5),
        param(rng, "dw.b", &[6], 0.3),
        param(rng, "project.w", &[4, 6, 1, 1], 0.5),
    ];
    let ops = vec![
        Op::Conv {
            x: 0,
            y: 1,
            weight: 0,
            bias: Some(1),
            kernel: 3,
            pad: 1,
        },
        Op::BatchNorm {
            x: 1,
            y: 2,
            scale: 2,
            shift: 3,
            mean: vec![0.1, -0.2, 0.0, 0.3],
            var: vec![0.5, 1.5, 1.0, 0.8],
            epsilon: 1e-3,
            momentum: 0.9,
            stats: Some(["bn.mean".into(), "bn.var".into()]),
        },
        Op::Clip {
            x: 2,
            y: 3,
            min: 0.0,
            max: None,
        },
        Op::Pointwise {
            x: 3,
            y: 4,
            weight: 4,
            bias: Some(5),
        },
        Op::Depthwise {
            x: 4,
            y: 5,
            weight: 6,
            bias: Some(7),
            kernel: 3,
            pad: 1,
        },
        Op::Clip {
            x: 5,
            y: 6,
            min: 0.0,
            max: Some(0.8),
        },
        Op::Pointwise {
            x: 6,
            y: 7,
            weight: 8,
            bias: None,
        },
        Op::Add { a: 7, b: 3, y: 8 },
        Op::Pool { x: 8, y: 9 },
    ];
    let slots = vec![
        g(4, 3, 3),
        g(4, 3, 3),
        g(4, 3, 3),
        g(4, 3, 3),
        g(6, 3, 3),
        g(6, 3, 3),
        g(6, 3, 3),
        g(4, 3, 3),
        g(4, 3, 3),
        g(4, 1, 1),
    ];
    Top {
        cut: "cut".into(),
        slots,
        ops,
        params,
        output: 9,
    }
}

/// The loss Σ features·weights, whose gradient with respect to the features is `weights`, with
/// batch norm in `mode`.
fn loss(top: &Top, input: &[f32], images: usize, weights: &[f32], mode: BatchNormMode) -> f64 {
    let mut pass = Pass::default();
    top.forward_in(input.to_vec(), images, &mut pass, mode);
    pass.features()
        .iter()
        .zip(weights)
        .map(|(&f, &w)| f64::from(f) * f64::from(w))
        .sum()
}

/// The central difference of the loss in value `i` of param `p`, or `None` at a kink: a ReLU
/// or ReLU6 bend within the step makes the one-sided slopes disagree, and the central
/// difference means nothing there.
fn numeric_grad(
    top: &mut Top,
    (p, i): (usize, usize),
    (input, images): (&[f32], usize),
    weights: &[f32],
    mode: BatchNormMode,
) -> Option<f32> {
    let h = 1e-3;
    let at = loss(top, input, images, weights, mode);
    let original = top.params[p].values[i];
    top.params[p].values[i] = original + h;
    let up = loss(top, input, images, weights, mode);
    top.params[p].values[i] = original - h;
    let down = loss(top, input, images, weights, mode);
    top.params[p].values[i] = original;
    let (right, left) = ((up - at) / f64::from(h), (at - down) / f64::from(h));
    if (right - left).abs() > 1e-2 * (1.0 + right.abs()) {
        return None;
    }
    Some(((up - down) / (2.0 * f64::from(h))) as f32)
}

/// Random maps and loss weights for `images` images, and every param's gradient by backward,
/// with batch norm in `mode`.
fn analytic(
    top: &Top,
    images: usize,
    rng: &mut ChaCha8Rng,
    mode: BatchNormMode,
) -> (Vec<f32>, Vec<f32>, Vec<Vec<f32>>) {
    let input = random(rng, images * top.input().len(), 1.0);
    let weights = random(rng, images * top.n_features(), 1.0);
    let mut pass = Pass::default();
    top.forward_in(input.clone(), images, &mut pass, mode);
    let mut grads: Vec<Vec<f32>> = top.params.iter().map(|p| vec![0.0; p.values.len()]).collect();
    top.backward(&mut pass, &weights, &mut grads);
    (input, weights, grads)
}

#[track_caller]
fn assert_close(numeric: f32, analytic: f32, what: &str) {
    assert!(
        (numeric - analytic).abs() <= 2e-3 + 2e-2 * analytic.abs(),
        "{what}: analytic {analytic}, numeric {numeric}"
    );
}

/// Batch norm in both modes: in training mode its statistics are the batch's, so every
/// gradient before it also flows through the mean and variance.
#[test]
fn every_layer_matches_finite_differences() {
    for mode in [BatchNormMode::Frozen, BatchNormMode::Train] {
        let mut rng = ChaCha8Rng::seed_from_u64(3);
        let mut top = every_layer(&mut rng);
        let images = 2;
        let (input, weights, grads) = analytic(&top, images, &mut rng, mode);

        let (mut checked, mut kinks) = (0, 0);
        for (p, grad) in grads.iter().enumerate() {
            for (i, &analytic) in grad.iter().enumerate() {
                let Some(numeric) = numeric_grad(&mut top, (p, i), (&input, images), &weights, mode) else {
                    kinks += 1;
                    continue;
                };
                assert_close(numeric, analytic, &format!("{mode:?}: {}[{i}]", top.params[p].name));
                checked += 1;
            }
        }
        assert!(kinks * 10 < checked, "{mode:?}: {kinks} kinks among {checked} values");
    }
}

/// The input gradient is never formed for the cached map, so each layer's input gradient is
/// checked by putting the layer second: the first layer is then an identity-like 1x1 conv
/// whose weight gradient carries the second layer's input gradient.
#[test]
fn input_gradients_flow_through_every_layer() {
    let mut rng = ChaCha8Rng::seed_from_u64(5);
    let mut top = every_layer(&mut rng);
    // A 1x1 conv in front, so slot 1 (the old input) has a gradient.
    for op in &mut top.ops {
        shift_slots(op);
    }
    let first = Param {
        name: "first.w".into(),
        dims: vec![4, 4, 1, 1],
        values: random(&mut rng, 16, 0.6),
    };
    top.params.push(first);
    let w = top.params.len() - 1;
    top.ops.insert(
        0,
        Op::Pointwise {
            x: 0,
            y: 1,
            weight: w,
            bias: None,
        },
    );
    top.slots.insert(0, g(4, 3, 3));
    top.output += 1;

    let images = 2;
    for mode in [BatchNormMode::Frozen, BatchNormMode::Train] {
        let (input, weights, grads) = analytic(&top, images, &mut rng, mode);
        for (i, &analytic) in grads[w].iter().enumerate() {
            let numeric = numeric_grad(&mut top, (w, i), (&input, images), &weights, mode).expect("no kink here");
            assert_close(numeric, analytic, &format!("{mode:?}: first.w[{i}]"));
        }
    }
}

fn shift_slots(op: &mut Op) {
    match op {
        Op::Pointwise { x, y, .. }
        | Op::Depthwise { x, y, .. }
        | Op::Conv { x, y, .. }
        | Op::Clip { x, y, .. }
        | Op::BatchNorm { x, y, .. }
        | Op::Pool { x, y } => {
            *x += 1;
            *y += 1;
        }
        Op::Add { a, b, y } => {
            *a += 1;
            *b += 1;
            *y += 1;
        }
    }
}

fn lite0() -> Vec<u8> {
    std::fs::read("models/efficientnet_lite0.onnx").expect("the bundled backbone is in models/")
}

#[test]
fn builds_the_lite0_last_block_and_head_conv() {
    let model = lite0();
    let top = build(&model, "add_174", g(192, 7, 7), "features").unwrap();
    let kinds: Vec<&str> = top
        .ops
        .iter()
        .map(|op| match op {
            Op::Pointwise { .. } => "pointwise",
            Op::Depthwise { .. } => "depthwise",
            Op::Conv { .. } => "conv",
            Op::Clip { .. } => "clip",
            Op::Add { .. } => "add",
            Op::BatchNorm { .. } => "batch_norm",
            Op::Pool { .. } => "pool",
        })
        .collect();
    assert_eq!(
        kinds,
        [
            "pointwise",
            "clip",
            "depthwise",
            "clip",
            "pointwise",
            "pointwise",
            "clip",
            "pool"
        ]
    );
    assert_eq!(top.n_features(), 1280);
    let names: Vec<&str> = top.params.iter().map(|p| p.name.as_str()).collect();
    assert_eq!(names[0], "_blocks.15._expand_conv.w_175");
    assert_eq!(names.len(), 8);
    assert!(matches!(
        top.ops[1],
        Op::Clip {
            min: 0.0,
            max: Some(6.0),
            ..
        }
    ));

    let head_conv = build(&model, "_blocks.15._project_conv_185", g(320, 7, 7), "features").unwrap();
    assert_eq!(head_conv.params.len(), 2);
}

#[test]
fn bad_cuts_are_named() {
    let model = lite0();
    let err = build(&model, "no_such_tensor", g(192, 7, 7), "features")
        .unwrap_err()
        .to_string();
    assert!(err.contains("no tensor `no_such_tensor`"), "{err}");
    // A cut before a strided depthwise conv: the trainer refuses it, naming the op.
    let err = build(&model, "input", g(3, 224, 224), "features")
        .unwrap_err()
        .to_string();
    assert!(err.contains("is Conv with a stride"), "{err}");
    // A tensor inside a block whose residual add also reads the block's input.
    let err = build(&model, "_blocks.14._project_conv_173", g(192, 7, 7), "features")
        .unwrap_err()
        .to_string();
    assert!(err.contains("does not separate"), "{err}");
}

fn separable(rng: &mut ChaCha8Rng, images: usize, top: &Top) -> (Array2<f32>, Vec<usize>) {
    let len = top.input().len();
    let y: Vec<usize> = (0..images).map(|i| i % 3).collect();
    let mut x = Array2::from_shape_vec((images, len), random(rng, images * len, 1.0)).unwrap();
    for (mut row, &c) in x.rows_mut().into_iter().zip(&y) {
        row.iter_mut().skip(c * 9).take(9).for_each(|v| *v += 1.5);
    }
    (x, y)
}

#[test]
fn fine_tunes_deterministically_and_round_trips_through_its_file() {
    let mut rng = ChaCha8Rng::seed_from_u64(11);
    let top = every_layer(&mut rng);
    let (x, y) = separable(&mut rng, 48, &top);
    let (vx, vy) = separable(&mut rng, 24, &top);
    let params = FinetuneParams {
        head: HeadParams::default()
            .epochs(8)
            .batch_size(8)
            .hidden(vec![16])
            .dropout(0.1),
        backbone_lr: 1e-2,
        ..FinetuneParams::default()
    };
    let run = || {
        let (train, valid) = (x.view(), vx.view());
        fit(
            top.clone(),
            &train,
            &y,
            3,
            Some((&valid, &vy[..])),
            &params,
            &mut |_| {},
        )
        .unwrap()
    };
    let (a, b) = (run(), run());
    assert_eq!(a.model, b.model, "the same seed gives the same weights");
    assert_ne!(a.model.top, top, "the top learned");
    let last = a.history.last().unwrap();
    assert!(last.val_accuracy.unwrap() > 0.8, "{:?}", a.history);

    let loaded = crate::artifact::saved_and_loaded(&a.model);
    assert_eq!(loaded.predict_proba(vx.view()), a.model.predict_proba(vx.view()));
    assert_eq!(
        loaded.cut().map(|(c, g)| (c.to_string(), g)),
        Some(("cut".to_string(), top.input()))
    );
}

#[test]
fn divergence_names_the_layer_and_bad_settings_are_refused() {
    let mut rng = ChaCha8Rng::seed_from_u64(13);
    let top = every_layer(&mut rng);
    let (x, y) = separable(&mut rng, 16, &top);
    let mut params = FinetuneParams {
        head: HeadParams::default().epochs(3).batch_size(8),
        backbone_lr: 1e30,
        ..FinetuneParams::default()
    };
    let err = fit(top.clone(), &x.view(), &y, 3, None, &params, &mut |_| {}).unwrap_err();
    let FinetuneError::Diverged { epoch: 1, layer, .. } = &err else {
        panic!("{err}")
    };
    assert!(top.params.iter().any(|p| &p.name == layer), "{err}");
    params.backbone_lr = -1.0;
    let err = fit(top.clone(), &x.view(), &y, 3, None, &params, &mut |_| {}).unwrap_err();
    assert!(err.to_string().contains("--backbone-lr"), "{err}");
    params.backbone_lr = 1e-3;
    let wrong = Array2::<f32>::zeros((16, 5));
    let err = fit(top, &wrong.view(), &y, 3, None, &params, &mut |_| {}).unwrap_err();
    assert!(matches!(err, FinetuneError::MapSize { found: 5, .. }), "{err}");
}

/// Golden values from PyTorch in float64 for Lite0's last block and head conv (the layers after
/// `add_174`), made by `golden.py` beside this file:
/// `python3 src/finetune/golden.py models/efficientnet_lite0.onnx --rust` prints the constants
/// below. Input `x[n,c,h,w] = ((7n + 3c + 5h + 11w) mod 17) / 8 - 1` for 2 images, then a
/// linear layer `W[j,k] = (((13j + 7k) mod 23) - 11) / 200` to 3 classes, labels [0, 2], mean
/// cross-entropy; then one Adam step at 1e-4.
mod golden {
    use super::*;
    use crate::head::adam::{adam_step, step_size};

    const FEATURES_0: [f64; 8] = [
        0.44298092310103454,
        0.023695011019853388,
        0.0,
        0.0,
        0.0,
        0.0,
        0.23593397595279575,
        0.1205322662708875,
    ];
    const FEATURES_SUM: f64 = 381.8030464055074;
    const LOSS: f64 = 1.2936079066964883;
    // Gradients: (sum, sum of squares, [(flat index, value)]).
    const GRAD_EXPAND_WEIGHT: (f64, f64, [(usize, f64); 4]) = (
        0.06620841253850629,
        0.7645568249857552,
        [
            (0, -0.0018488586068921267),
            (1000, 0.0),
            (221183, 0.0),
            (81415, 0.028931757662110577),
        ],
    );
    const GRAD_EXPAND_BIAS: (f64, f64, [(usize, f64); 4]) = (
        0.1155428274445688,
        0.25148773319830997,
        [
            (0, -0.02691255436442435),
            (1000, 0.0),
            (1151, 0.0),
            (672, 0.13961626157901766),
        ],
    );
    const GRAD_DEPTHWISE_WEIGHT: (f64, f64, [(usize, f64); 4]) = (
        -3.3536432914316636,
        0.5239362238211166,
        [
            (0, -0.027167235048638855),
            (1000, 0.0),
            (10367, 0.0),
            (454, -0.11625273231922789),
        ],
    );
    const GRAD_DEPTHWISE_BIAS: (f64, f64, [(usize, f64); 4]) = (
        -0.562741176010485,
        0.7494194013538735,
        [
            (0, -0.037097853024069274),
            (1000, 0.0),
            (1151, 0.0),
            (910, -0.13891743088709968),
        ],
    );
    const GRAD_PROJECT_WEIGHT: (f64, f64, [(usize, f64); 4]) = (
        -424.97621620938304,
        80.88224011917407,
        [
            (0, 0.0003209491390494281),
            (1000, 0.0),
            (368639, 0.0),
            (299649, -0.2069128247169531),
        ],
    );
    const GRAD_PROJECT_BIAS: (f64, f64, [(usize, f64); 4]) = (
        -0.7805449201685148,
        0.06783899806384465,
        [
            (0, 0.0029932111981531926),
            (40, -0.004869056412006238),
            (319, 0.004168196786577057),
            (260, -0.05148802593208067),
        ],
    );
    const GRAD_HEAD_WEIGHT: (f64, f64, [(usize, f64); 4]) = (
        3.1615861126486786,
        51.69494796610837,
        [
            (0, 0.005993885872004656),
            (1000, 0.0),
            (409599, 0.0),
            (156165, -0.17394496978151316),
        ],
    );
    const GRAD_HEAD_BIAS: (f64, f64, [(usize, f64); 4]) = (
        0.2675544581352185,
        0.055179045952055805,
        [
            (0, 0.007557820848670466),
            (1000, 0.0),
            (1279, 0.0),
            (1102, -0.025588026921616606),
        ],
    );
    // After one Adam step: ([(flat index, new value)], sum of the new weight, sum of new - old).
    const ADAM_EXPAND_WEIGHT: ([(usize, f64); 4], f64, f64) = (
        [
            (0, 0.0006875548570104397),
            (1000, 0.007093233056366444),
            (221183, 0.006975212600082159),
            (81415, 0.029606148183765953),
        ],
        -62.60107870893632,
        -0.021445251260668794,
    );
    const ADAM_DEPTHWISE_WEIGHT: ([(usize, f64); 4], f64, f64) = (
        [
            (0, -0.35234179935841414),
            (1000, -0.275594025850296),
            (10367, 0.744767963886261),
            (454, 0.454865793941276),
        ],
        3287.527678627419,
        0.01533953241702562,
    );
    const ADAM_PROJECT_WEIGHT: ([(usize, f64); 4], f64, f64) = (
        [
            (0, 0.08275757864289468),
            (1000, -0.18899136781692505),
            (368639, -0.06664127111434937),
            (299649, -0.01611452871802224),
        ],
        51.57118114896335,
        1.0836892035701104,
    );
    const ADAM_HEAD_WEIGHT: ([(usize, f64); 4], f64, f64) = (
        [
            (0, 0.056327807192335086),
            (1000, -0.0988069623708725),
            (409599, 0.0595245286822319),
            (156165, 0.08605400866865992),
        ],
        -11.270479286956359,
        -0.7170696430232829,
    );

    fn close(found: f64, expected: f64, tolerance: f64, what: &str) {
        assert!(
            (found - expected).abs() <= tolerance * (1e-3 + expected.abs()),
            "{what}: {found} against PyTorch's {expected}"
        );
    }

    fn check_grad(values: &[f32], (sum, squares, at): (f64, f64, [(usize, f64); 4]), what: &str) {
        close(values.iter().map(|&v| f64::from(v)).sum(), sum, 1e-4, what);
        close(
            values.iter().map(|&v| f64::from(v) * f64::from(v)).sum(),
            squares,
            1e-4,
            what,
        );
        for (i, expected) in at {
            close(f64::from(values[i]), expected, 1e-4, &format!("{what}[{i}]"));
        }
    }

    #[test]
    fn lite0_last_block_matches_pytorch() {
        let (images, classes, width) = (2usize, 3usize, 1280usize);
        let mut top = build(&lite0(), "add_174", g(192, 7, 7), "features").unwrap();
        let mut nchw = vec![0.0f32; images * top.input().len()];
        for (i, v) in nchw.iter_mut().enumerate() {
            let (n, c, h, w) = (i / (192 * 49), i / 49 % 192, i / 7 % 7, i % 7);
            *v = ((7 * n + 3 * c + 5 * h + 11 * w) % 17) as f32 / 8.0 - 1.0;
        }
        let mut input = vec![0.0; nchw.len()];
        to_channels_last(&nchw, top.input(), &mut input);
        let mut pass = Pass::default();
        top.forward(input, images, &mut pass);
        let features = pass.features().to_vec();
        for (k, &expected) in FEATURES_0.iter().enumerate() {
            close(f64::from(features[k]), expected, 1e-4, &format!("features[0, {k}]"));
        }
        close(
            features.iter().map(|&v| f64::from(v)).sum(),
            FEATURES_SUM,
            1e-5,
            "feature sum",
        );

        let weight = |j: usize, k: usize| (((13 * j + 7 * k) % 23) as f64 - 11.0) / 200.0;
        let labels = [0usize, 2];
        let mut loss = 0.0;
        let mut grad = vec![0.0f32; images * width];
        for n in 0..images {
            let f = &features[n * width..][..width];
            let z: Vec<f64> = (0..classes)
                .map(|k| f.iter().enumerate().map(|(j, &v)| f64::from(v) * weight(j, k)).sum())
                .collect();
            let lse = z.iter().map(|v| v.exp()).sum::<f64>().ln();
            loss += (lse - z[labels[n]]) / images as f64;
            for (j, g) in grad[n * width..][..width].iter_mut().enumerate() {
                let dz = |k: usize| ((z[k] - lse).exp() - f64::from(u8::from(k == labels[n]))) / images as f64;
                *g = (0..classes).map(|k| dz(k) * weight(j, k)).sum::<f64>() as f32;
            }
        }
        close(loss, LOSS, 1e-5, "loss");

        let mut grads: Vec<Vec<f32>> = top.params.iter().map(|p| vec![0.0; p.values.len()]).collect();
        top.backward(&mut pass, &grad, &mut grads);
        let expected = [
            GRAD_EXPAND_WEIGHT,
            GRAD_EXPAND_BIAS,
            GRAD_DEPTHWISE_WEIGHT,
            GRAD_DEPTHWISE_BIAS,
            GRAD_PROJECT_WEIGHT,
            GRAD_PROJECT_BIAS,
            GRAD_HEAD_WEIGHT,
            GRAD_HEAD_BIAS,
        ];
        for ((p, g), expected) in top.params.iter().zip(&grads).zip(expected) {
            check_grad(g, expected, &p.name);
        }

        let adam = [
            (0, ADAM_EXPAND_WEIGHT),
            (2, ADAM_DEPTHWISE_WEIGHT),
            (4, ADAM_PROJECT_WEIGHT),
            (6, ADAM_HEAD_WEIGHT),
        ];
        for (p, (at, sum, delta)) in adam {
            let before = top.params[p].values.clone();
            let (mut m, mut v) = (vec![0.0; before.len()], vec![0.0; before.len()]);
            adam_step(&mut top.params[p].values, &grads[p], &mut m, &mut v, step_size(1e-4, 1));
            let after = &top.params[p].values;
            let name = &top.params[p].name;
            for (i, expected) in at {
                close(f64::from(after[i]), expected, 1e-5, &format!("{name}[{i}] after Adam"));
            }
            close(after.iter().map(|&v| f64::from(v)).sum(), sum, 1e-5, name);
            let moved: f64 = after
                .iter()
                .zip(&before)
                .map(|(&a, &b)| f64::from(a) - f64::from(b))
                .sum();
            // New minus old loses about 3e-4 of each entry's step to f32 rounding.
            close(moved, delta, 1e-3, &format!("{name} step"));
        }
    }
}

/// Maps that turn to NaN after `good` batches have been read: a fine-tune that blows up in a
/// later epoch.
struct Poisoned<'a> {
    maps: ndarray::ArrayView2<'a, f32>,
    good: usize,
    reads: std::sync::atomic::AtomicUsize,
}

impl MapRows for Poisoned<'_> {
    fn images(&self) -> usize {
        self.maps.nrows()
    }

    fn map_len(&self) -> usize {
        self.maps.ncols()
    }

    fn read(&self, rows: &[usize], out: &mut [f32]) {
        self.maps.read(rows, out);
        if self.reads.fetch_add(1, std::sync::atomic::Ordering::SeqCst) >= self.good {
            out.fill(f32::NAN);
        }
    }
}

#[test]
fn a_late_divergence_keeps_the_last_good_weights_under_early_stopping() {
    let mut rng = ChaCha8Rng::seed_from_u64(17);
    let top = every_layer(&mut rng);
    let (x, y) = separable(&mut rng, 32, &top);
    let (vx, vy) = separable(&mut rng, 16, &top);
    // 4 batches an epoch: epochs 1 and 2 are good, epoch 3 reads NaN maps.
    let train = Poisoned {
        maps: x.view(),
        good: 8,
        reads: 0.into(),
    };
    let valid = vx.view();
    let mut params = FinetuneParams {
        head: HeadParams::default().epochs(5).batch_size(8).early_stopping(Some(3)),
        backbone_lr: 1e-3,
        ..FinetuneParams::default()
    };
    let fitted = fit(
        top.clone(),
        &train,
        &y,
        3,
        Some((&valid, &vy[..])),
        &params,
        &mut |_| {},
    )
    .unwrap();
    assert_eq!(fitted.history.len(), 2, "stopped in epoch 3");
    assert!(fitted.best_epoch <= 2);
    assert!(
        fitted.diverged.as_deref().unwrap().contains("epoch 3"),
        "{:?}",
        fitted.diverged
    );
    assert!(fitted.model.top.first_non_finite().is_none());

    params.head.early_stopping = None;
    let train = Poisoned {
        maps: x.view(),
        good: 8,
        reads: 0.into(),
    };
    let err = fit(top, &train, &y, 3, Some((&valid, &vy[..])), &params, &mut |_| {}).unwrap_err();
    assert!(matches!(err, FinetuneError::Diverged { epoch: 3, .. }), "{err}");
}
