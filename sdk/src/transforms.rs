//! Data transforms as tensor ops, batched (torchvision's, applied to a whole `[N, C, H, W]`
//! batch at once, each sample drawing its own parameters): run them in a training step or
//! in a stream's `next_batch`, where a DataLoader worker's draws come from its own seeded
//! generator. Draw order, for a reference written in torch: `random_horizontal_flip` draws
//! `rand(N)`; `random_crop` draws `randint(0, H' - h + 1, (N,))` for the rows, then the same
//! for the columns (H', W' after padding), nothing when the crop is the whole image.

use crate::{CompareOp, Dtype, Tensor};

/// torchvision's Normalize: `(x - mean[c]) / std[c]` over dim 1.
pub fn normalize(x: &Tensor, mean: &[f32], std: &[f32]) -> Tensor {
    let c = mean.len() as i64;
    let m = Tensor::from_slice_f32(mean, &[1, c, 1, 1]);
    let s = Tensor::from_slice_f32(std, &[1, c, 1, 1]);
    &(x - &m) / &s
}

/// RandomHorizontalFlip(p): each sample is mirrored left-right with probability `p`.
pub fn random_horizontal_flip(x: &Tensor, p: f64) -> Tensor {
    let shape = x.shape();
    let (n, w) = (shape[0], shape[shape.len() - 1]);
    let reversed = Tensor::arange((w - 1) as f64, -1.0, -1.0, Dtype::Int64);
    let flipped = x.index_select(shape.len() as i64 - 1, &reversed);
    let mut mask_shape = vec![1i64; shape.len()];
    mask_shape[0] = n;
    let flip = Tensor::rand(&[n]).compare_scalar(CompareOp::Lt, p).view(&mask_shape);
    flipped.where_self(&flip, x)
}

/// `x` with `padding` zeros on every side of its last two dims.
pub fn pad2d(x: &Tensor, padding: i64) -> Tensor {
    if padding == 0 {
        return x.copy();
    }
    let mut s = x.shape();
    let d = s.len();
    s[d - 1] = padding;
    let side = Tensor::zeros(&s, x.dtype());
    let x = Tensor::cat(&[&side, x, &side], d as i64 - 1);
    let mut s = x.shape();
    s[d - 2] = padding;
    let top = Tensor::zeros(&s, x.dtype());
    Tensor::cat(&[&top, &x, &top], d as i64 - 2)
}

/// RandomCrop(size, padding): zero-pad, then cut an `h × w` window at a random place,
/// drawn per sample.
pub fn random_crop(x: &Tensor, (h, w): (i64, i64), padding: i64) -> Tensor {
    let x = pad2d(x, padding);
    let shape = x.shape();
    let d = shape.len();
    let (n, ph, pw) = (shape[0], shape[d - 2], shape[d - 1]);
    if (ph, pw) == (h, w) {
        // torchvision draws nothing when the crop is the whole (padded) image.
        return x;
    }
    let rows = Tensor::randint(0, ph - h + 1, &[n]).to_i64_list();
    let cols = Tensor::randint(0, pw - w + 1, &[n]).to_i64_list();
    let crops: Vec<Tensor> = (0..n as usize)
        .map(|i| x.narrow(0, i as i64, 1).narrow(d as i64 - 2, rows[i], h).narrow(d as i64 - 1, cols[i], w))
        .collect();
    Tensor::cat(&crops.iter().collect::<Vec<_>>(), 0)
}
