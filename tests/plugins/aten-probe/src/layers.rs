//! The SDK's layers against torch.nn (`layer_check`, tests/reference/layers_reference.py):
//! each layer and its input made from the run's seed in a fixed order (so the weights are
//! torch's draws), then, in the first training step (train mode), every layer's forward and
//! the backward of ½·Σout² (whose gradient with respect to each output is the output
//! itself), reported as `probe layer <what> <name>: [..]` lines: outputs, every parameter's
//! gradient, every input's gradient, BatchNorm's running statistics after the step.

use lthost_sdk::nn::{self, MultiheadAttention};
use lthost_sdk::nn::{BatchNorm, Conv2d, Conv2dOptions, Embedding, LayerNorm, Linear, Lstm, LstmOptions};
use lthost_sdk::prelude::*;

use super::report;

pub struct LayerCheck {
    lin: Linear,
    conv: Conv2d,
    bn: BatchNorm,
    ln: LayerNorm,
    ln_no_bias: LayerNorm,
    emb: Embedding,
    lstm: Lstm,
    mha: MultiheadAttention,
    /// (name, input), each a leaf that requires grad.
    inputs: Vec<(&'static str, Tensor)>,
    idx: Tensor,
}

fn leaf(shape: &[i64]) -> Tensor {
    let x = aten::randn(shape, None, None, None, None);
    x.set_requires_grad(true).expect("a fresh leaf");
    x
}

fn values(t: &Tensor) -> String {
    format!("{:?}", aten::reshape(&aten::detach(t), &[-1]).to_f32_list())
}

impl LayerCheck {
    /// Layers and inputs, drawn in the reference's order.
    pub fn new() -> LayerCheck {
        let lin = Linear::new("lc.lin", 6, 4, true);
        let x_lin = leaf(&[3, 6]);
        let conv = Conv2d::new("lc.conv", 2, 3, (3, 3), Conv2dOptions { padding: (1, 1), ..Default::default() });
        let x_conv = leaf(&[2, 2, 5, 5]);
        let bn = BatchNorm::new("lc.bn", 3, 1e-5, 0.1, true);
        let x_bn = leaf(&[4, 3, 2, 2]);
        let ln = LayerNorm::new("lc.ln", &[5], 1e-5, true);
        let ln_no_bias = LayerNorm::with_bias("lc.ln_nb", &[5], 1e-5, true, false);
        let x_ln = leaf(&[2, 5]);
        let emb = Embedding::new("lc.emb", 10, 3);
        let idx = Tensor::from_slice_i64(&[1, 2, 3, 9, 0, 9], &[2, 3]);
        let opts = LstmOptions { num_layers: 1, bias: true, batch_first: true, dropout: 0.0, bidirectional: false };
        let lstm = Lstm::new("lc.lstm", 3, 4, opts);
        let x_lstm = leaf(&[2, 5, 3]);
        let mha = MultiheadAttention::new("lc.mha", 8, 2, 0.0, true, true);
        let x_mha = leaf(&[2, 4, 8]);
        // Dropout draws its mask: here, where the generator is where torch's is.
        let x_do = leaf(&[4, 5]);
        let y_do = aten::dropout(&x_do, 0.3, true);
        report("layer out dropout", values(&y_do));
        let inputs =
            vec![("lin", x_lin), ("conv", x_conv), ("bn", x_bn), ("ln", x_ln), ("lstm", x_lstm), ("mha", x_mha)];
        LayerCheck { lin, conv, bn, ln, ln_no_bias, emb, lstm, mha, inputs, idx }
    }

    fn input(&self, name: &str) -> &Tensor {
        &self.inputs.iter().find(|(n, _)| *n == name).expect("an input").1
    }

    /// Every forward in train mode, the backward of ½·Σout², and the report.
    pub fn run(&self) {
        report("layer mode", format!("training={}", nn::training()));
        let x_conv = self.input("conv");
        let (lstm_out, h, c) = self.lstm.forward(self.input("lstm"), None);
        let x_mha = self.input("mha");
        let (mha_out, mha_weights) = self.mha.forward(x_mha, x_mha, x_mha, None, true);
        let outputs: Vec<(&str, Tensor)> = vec![
            ("lin", self.lin.forward(self.input("lin"))),
            ("conv", self.conv.forward(x_conv)),
            ("bn", self.bn.forward(self.input("bn"))),
            ("ln", self.ln.forward(self.input("ln"))),
            ("ln_nb", self.ln_no_bias.forward(self.input("ln"))),
            ("emb", self.emb.forward(&self.idx)),
            ("lstm", lstm_out),
            ("lstm_h", h),
            ("lstm_c", c),
            ("mha", mha_out),
            ("mha_weights", mha_weights.expect("weights asked for")),
            ("max_pool2d", nn::max_pool2d(x_conv, (2, 2), (2, 2), (0, 0))),
            ("avg_pool2d", nn::avg_pool2d(x_conv, (3, 3), (2, 2), (1, 1))),
            ("adaptive_avg_pool2d", nn::adaptive_avg_pool2d(x_conv, (2, 3))),
        ];
        let mut loss = aten::zeros(&[], None, None, None, None);
        for (name, out) in &outputs {
            report(&format!("layer out {name}"), values(out));
            loss = aten::add(&loss, &aten::mul_scalar(&aten::sum(&aten::square(out), None), 0.5), 1);
        }
        loss.backward(None, false, false).expect("backward");
        for name in nn::parameter_names().into_iter().filter(|n| n.starts_with("lc.")) {
            let p = nn::get(&name).expect("registered");
            report(&format!("layer grad {name}"), p.grad().map_or("none".to_string(), |g| values(&g)));
        }
        for (name, x) in &self.inputs {
            report(&format!("layer input-grad {name}"), x.grad().map_or("none".to_string(), |g| values(&g)));
        }
        report("layer buffer lc.bn.running_mean", values(&self.bn.running_mean));
        report("layer buffer lc.bn.running_var", values(&self.bn.running_var));
    }
}
