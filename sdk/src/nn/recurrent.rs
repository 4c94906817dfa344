//! torch.nn.LSTM.

use super::{empty, join, register_module, register_parameter, training};
use crate::{aten, init, Tensor};

/// LSTM's settings past the sizes.
#[derive(Debug, Clone, Copy)]
pub struct LstmOptions {
    pub num_layers: u32,
    pub bias: bool,
    pub batch_first: bool,
    pub dropout: f64,
    pub bidirectional: bool,
}

impl Default for LstmOptions {
    fn default() -> Self {
        LstmOptions { num_layers: 1, bias: true, batch_first: false, dropout: 0.0, bidirectional: false }
    }
}

/// torch.nn.LSTM: `weight_ih_l{k}[_reverse]`, `weight_hh_l{k}`, `bias_ih_l{k}`,
/// `bias_hh_l{k}`, all drawn from U(±1/√hidden) in that order, as torch's
/// `reset_parameters`; the forward is torch's fused `aten::lstm`.
pub struct Lstm {
    pub flat_weights: Vec<Tensor>,
    pub hidden: i64,
    pub options: LstmOptions,
}

impl Lstm {
    pub fn new(path: &str, input_size: u32, hidden_size: u32, options: LstmOptions) -> Lstm {
        let (input, hidden) = (i64::from(input_size), i64::from(hidden_size));
        let layers = i64::from(options.num_layers.max(1));
        let dirs = if options.bidirectional { 2 } else { 1 };
        let stdv = 1.0 / (hidden as f64).sqrt();
        let mut flat = Vec::new();
        for layer in 0..layers {
            for dir in 0..dirs {
                let suffix = if dir == 1 { "_reverse" } else { "" };
                let inp = if layer == 0 { input } else { hidden * dirs };
                let mut shapes = vec![("weight_ih", vec![4 * hidden, inp]), ("weight_hh", vec![4 * hidden, hidden])];
                if options.bias {
                    shapes.push(("bias_ih", vec![4 * hidden]));
                    shapes.push(("bias_hh", vec![4 * hidden]));
                }
                for (name, shape) in shapes {
                    // torch draws these in reset_parameters over parameters(): creation order.
                    let t = empty(&shape);
                    init::uniform_(&t, -stdv, stdv);
                    flat.push(register_parameter(&join(path, &format!("{name}_l{layer}{suffix}")), &t));
                }
            }
        }
        register_module(path, "LSTM");
        Lstm { flat_weights: flat, hidden, options }
    }

    /// (output, h_n, c_n); no state: zeros.
    pub fn forward(&self, x: &Tensor, state: Option<(&Tensor, &Tensor)>) -> (Tensor, Tensor, Tensor) {
        let o = &self.options;
        let shape = x.shape();
        if shape.len() != 3 {
            aten::raise("lstm", &format!("expected a 3D input, got {shape:?}"));
        }
        let dirs = if o.bidirectional { 2 } else { 1 };
        let batch = if o.batch_first { shape[0] } else { shape[1] };
        let zeros;
        let (h, c) = match state {
            Some(s) => s,
            None => {
                let device = x.device();
                let size = [i64::from(o.num_layers.max(1)) * dirs, batch, self.hidden];
                zeros = aten::zeros(&size, Some(x.dtype()), None, Some(&device), None);
                (&zeros, &zeros)
            }
        };
        let weights: Vec<&Tensor> = self.flat_weights.iter().collect();
        aten::lstm_input(
            x,
            &[h, c],
            &weights,
            o.bias,
            i64::from(o.num_layers.max(1)),
            o.dropout,
            training(),
            o.bidirectional,
            o.batch_first,
        )
    }
}
