//! torch.nn.init, on the generic ATen ops: every function fills `t` in place under no_grad,
//! drawing from the run's generator in torch's order with torch's arithmetic, so the same
//! seed gives torch's weights.

use crate::aten::{self, no_grad};
use crate::Tensor;

/// torch's `_calculate_fan_in_and_fan_out`.
pub fn fans(shape: &[i64]) -> (i64, i64) {
    let receptive: i64 = shape.iter().skip(2).product();
    let fan_in = shape.get(1).copied().unwrap_or(1) * receptive;
    let fan_out = shape.first().copied().unwrap_or(1) * receptive;
    (fan_in, fan_out)
}

/// The non-linearities torch's `calculate_gain` knows.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Nonlinearity {
    Linear,
    Sigmoid,
    Tanh,
    Relu,
    LeakyRelu(f64),
    Selu,
}

/// torch.nn.init.calculate_gain.
pub fn calculate_gain(n: Nonlinearity) -> f64 {
    match n {
        Nonlinearity::Linear | Nonlinearity::Sigmoid => 1.0,
        Nonlinearity::Tanh => 5.0 / 3.0,
        Nonlinearity::Relu => 2f64.sqrt(),
        Nonlinearity::LeakyRelu(slope) => (2.0 / (1.0 + slope * slope)).sqrt(),
        Nonlinearity::Selu => 3.0 / 4.0,
    }
}

/// Which fan kaiming_* scales by.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    FanIn,
    FanOut,
}

pub fn uniform_(t: &Tensor, a: f64, b: f64) {
    no_grad(|| drop(aten::uniform_(t, a, b)));
}

pub fn normal_(t: &Tensor, mean: f64, std: f64) {
    no_grad(|| drop(aten::normal_(t, mean, std)));
}

pub fn constant_(t: &Tensor, value: f64) {
    no_grad(|| drop(aten::fill_scalar_(t, value)));
}

pub fn zeros_(t: &Tensor) {
    no_grad(|| drop(aten::zero_(t)));
}

pub fn ones_(t: &Tensor) {
    constant_(t, 1.0);
}

/// torch.nn.init.trunc_normal_, as torch 2.13 draws it: when the interval holds more than 30%
/// of the mass, normal draws with the out-of-bounds ones redrawn until none is left; else
/// uniform candidates over [a, b] accepted against the normal density (both loops as
/// torch's, op for op).
pub fn trunc_normal_(t: &Tensor, mean: f64, std: f64, a: f64, b: f64) {
    let norm_cdf = |x: f64| (1.0 + erf(x / 2f64.sqrt())) / 2.0;
    let any = |m: &Tensor| aten::is_nonzero(&aten::any(m));
    no_grad(|| {
        let p = norm_cdf((b - mean) / std) - norm_cdf((a - mean) / std);
        if p > 0.3 {
            // The bounds as the tensor's dtype holds them (`tensor.new_tensor(a).item()`).
            let bound = |v: f64| aten::item(&aten::scalar_tensor(v, Some(t.dtype()), None, None, None));
            let (lo, hi) = (bound(a), bound(b));
            let mut result = aten::normal_(t, mean, std);
            let mut replaced = false;
            loop {
                let mask = aten::bitwise_or(&aten::lt_scalar(&result, lo), &aten::gt_scalar(&result, hi));
                if !any(&mask) {
                    break;
                }
                let fresh = aten::normal_(&aten::empty_like(&result, None, None, None, None, None), mean, std);
                result = aten::where_self(&mask, &fresh, &result);
                replaced = true;
            }
            if replaced {
                aten::copy_(t, &result, false);
            }
        } else {
            let mode = a.max(mean.min(b));
            let log_peak = -0.5 * ((mode - mean) / std).powi(2);
            let candidates = aten::empty_like(t, None, None, None, None, None);
            let accept = aten::empty_like(t, None, None, None, None, None);
            // log_pdf = -0.5 * ((candidates - mean) / std) ** 2 - log_peak, in place.
            let log_pdf = |c: &Tensor| {
                aten::sub_scalar_(c, mean, 1);
                aten::div_scalar_(c, std);
                aten::pow_scalar_(c, 2);
                aten::mul_scalar_(c, -0.5);
                aten::sub_scalar_(c, log_peak, 1);
            };
            let rejects = |c: &Tensor| aten::gt(&aten::log_(&aten::uniform_(&accept, 0.0, 1.0)), c);
            aten::uniform_(t, a, b);
            aten::copy_(&candidates, t, false);
            log_pdf(&candidates);
            let mut pending = rejects(&candidates);
            if any(&pending) {
                let mut result = aten::alias(t);
                loop {
                    aten::uniform_(&candidates, a, b);
                    result = aten::where_self(&pending, &candidates, &result);
                    log_pdf(&candidates);
                    pending = aten::where_self(&pending, &rejects(&candidates), &pending);
                    if !any(&pending) {
                        break;
                    }
                }
                aten::copy_(t, &result, false);
            }
        }
    });
}

/// torch.nn.init.xavier_uniform_.
pub fn xavier_uniform_(t: &Tensor, gain: f64) {
    let (fan_in, fan_out) = fans(&t.shape());
    let std = gain * (2.0 / (fan_in + fan_out) as f64).sqrt();
    let a = 3f64.sqrt() * std;
    uniform_(t, -a, a);
}

/// torch.nn.init.xavier_normal_.
pub fn xavier_normal_(t: &Tensor, gain: f64) {
    let (fan_in, fan_out) = fans(&t.shape());
    let std = gain * (2.0 / (fan_in + fan_out) as f64).sqrt();
    normal_(t, 0.0, std);
}

fn kaiming_std(t: &Tensor, a: f64, mode: Mode, nonlinearity: Nonlinearity) -> f64 {
    let (fan_in, fan_out) = fans(&t.shape());
    let fan = if mode == Mode::FanIn { fan_in } else { fan_out };
    let gain = match nonlinearity {
        Nonlinearity::LeakyRelu(_) => calculate_gain(Nonlinearity::LeakyRelu(a)),
        n => calculate_gain(n),
    };
    gain / (fan as f64).sqrt()
}

/// torch.nn.init.kaiming_uniform_ (`a` is the leaky-ReLU slope, used with `LeakyRelu`).
pub fn kaiming_uniform_(t: &Tensor, a: f64, mode: Mode, nonlinearity: Nonlinearity) {
    let bound = 3f64.sqrt() * kaiming_std(t, a, mode, nonlinearity);
    uniform_(t, -bound, bound);
}

/// torch.nn.init.kaiming_normal_.
pub fn kaiming_normal_(t: &Tensor, a: f64, mode: Mode, nonlinearity: Nonlinearity) {
    let std = kaiming_std(t, a, mode, nonlinearity);
    normal_(t, 0.0, std);
}

/// torch.nn.init.orthogonal_: a QR of a normal draw, signs fixed by R's diagonal.
pub fn orthogonal_(t: &Tensor, gain: f64) {
    let shape = t.shape();
    let rows = shape[0];
    let cols: i64 = t.numel() / rows.max(1);
    no_grad(|| {
        let flat = aten::new_empty(t, &[rows, cols], None, None, None, None);
        aten::normal_(&flat, 0.0, 1.0);
        let flat = if rows < cols { aten::t(&flat) } else { flat };
        let (q, r) = aten::linalg_qr(&flat, "reduced");
        let d = aten::diag(&r, 0);
        let q = aten::mul(&q, &aten::sign(&d));
        let q = if rows < cols { aten::t(&q) } else { q };
        let q = aten::view(&q, &shape);
        aten::copy_(t, &q, false);
        aten::mul_scalar_(t, gain);
    });
}

/// erf, for trunc_normal_'s mass test (torch uses Python's math.erf).
fn erf(x: f64) -> f64 {
    // Abramowitz–Stegun would be 1e-7 off; use the series/continued fraction to full precision.
    let t = x.abs();
    let r = if t < 2.5 {
        // Maclaurin series.
        let mut sum = t;
        let mut term = t;
        let mut n = 0.0;
        loop {
            n += 1.0;
            term *= -t * t / n;
            let add = term / (2.0 * n + 1.0);
            sum += add;
            if add.abs() < 1e-17 * sum.abs() {
                break;
            }
        }
        sum * 2.0 / std::f64::consts::PI.sqrt()
    } else {
        // Continued fraction for erfc.
        let mut f = 0.0;
        for k in (1..60).rev() {
            f = (k as f64 / 2.0) / (t + f);
        }
        1.0 - (-t * t).exp() / std::f64::consts::PI.sqrt() / (t + f)
    };
    if x < 0.0 {
        -r
    } else {
        r
    }
}
