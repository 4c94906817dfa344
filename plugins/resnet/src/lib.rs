//! A torchvision-style ResNet of BasicBlocks, written as torchvision writes it, on the
//! generic ATen ops: a 3×3 stem (16 channels), `layer1` (two blocks of 16) and `layer2` (two
//! blocks of 32, the first strided with a 1×1 conv + BatchNorm downsample), global
//! `AdaptiveAvgPool2d((1, 1))`, `fc` to 10 classes. Init as torchvision's: every layer's own
//! at construction, then a pass re-drawing the convs with kaiming_normal_(fan_out, relu). SGD with momentum
//! 0.9 and weight decay 5e-4, batch 32, on 320 patterned 3×16×16 images (values exact in
//! float32). tests/reference/resnet_reference.py is the same model in torch.

use lthost_sdk::nn::{self, BatchNorm, Conv2d, Conv2dOptions, Linear};
use lthost_sdk::prelude::*;

fn conv(path: &str, cin: u32, cout: u32, k: u32, stride: u32) -> Conv2d {
    Conv2d::new(
        path,
        cin,
        cout,
        (k, k),
        Conv2dOptions { stride: (stride, stride), padding: (k / 2, k / 2), dilation: (1, 1), groups: 1, bias: false },
    )
}

fn bn(path: &str, n: u32) -> BatchNorm {
    BatchNorm::new(path, n, 1e-5, 0.1, true)
}

struct BasicBlock {
    conv1: Conv2d,
    bn1: BatchNorm,
    conv2: Conv2d,
    bn2: BatchNorm,
    downsample: Option<(Conv2d, BatchNorm)>,
}

impl BasicBlock {
    fn new(path: &str, cin: u32, cout: u32, stride: u32) -> Self {
        let p = |n: &str| nn::join(path, n);
        let block = BasicBlock {
            conv1: conv(&p("conv1"), cin, cout, 3, stride),
            bn1: bn(&p("bn1"), cout),
            conv2: conv(&p("conv2"), cout, cout, 3, 1),
            bn2: bn(&p("bn2"), cout),
            downsample: (stride != 1 || cin != cout)
                .then(|| (conv(&p("downsample.0"), cin, cout, 1, stride), bn(&p("downsample.1"), cout))),
        };
        nn::register_module(path, "BasicBlock");
        block
    }

    fn forward(&self, x: &Tensor) -> Tensor {
        let out = aten::relu(&self.bn1.forward(&self.conv1.forward(x)));
        let out = self.bn2.forward(&self.conv2.forward(&out));
        let sum = match &self.downsample {
            Some((c, b)) => &out + &b.forward(&c.forward(x)),
            None => &out + x,
        };
        aten::relu(&sum)
    }
}

struct ResNet {
    conv1: Conv2d,
    bn1: BatchNorm,
    layers: Vec<BasicBlock>,
    fc: Linear,
}

impl ResNet {
    /// The convolutions in module order.
    fn convs(&self) -> Vec<&Conv2d> {
        let mut out = vec![&self.conv1];
        for b in &self.layers {
            out.extend([&b.conv1, &b.conv2]);
            out.extend(b.downsample.as_ref().map(|(c, _)| c));
        }
        out
    }
}

impl LightningModule for ResNet {
    fn default_hparams() -> lthost_sdk::serde_json::Value {
        json!({"lr": 0.05, "momentum": 0.9, "weight_decay": 5e-4})
    }

    fn configure(_hp: &Hparams) -> Result<Self, String> {
        let conv1 = conv("conv1", 3, 16, 3, 1);
        let bn1 = bn("bn1", 16);
        let layers = vec![
            BasicBlock::new("layer1.0", 16, 16, 1),
            BasicBlock::new("layer1.1", 16, 16, 1),
            BasicBlock::new("layer2.0", 16, 32, 2),
            BasicBlock::new("layer2.1", 32, 32, 1),
        ];
        let fc = Linear::new("fc", 32, 10, true);
        let net = ResNet { conv1, bn1, layers, fc };
        // torchvision's second pass over `self.modules()`: every conv re-drawn, in order.
        for c in net.convs() {
            init::kaiming_normal_(&c.weight, 0.0, init::Mode::FanOut, init::Nonlinearity::Relu);
        }
        Ok(net)
    }

    fn configure_optimizers(&self, hp: &Hparams) -> Optimization {
        Optimizer::sgd(hp.f64_or("lr", 0.05))
            .momentum(hp.f64_or("momentum", 0.9), false)
            .weight_decay(hp.f64_or("weight_decay", 5e-4))
            .into()
    }

    fn training_step(&mut self, batch: Batch, _batch_idx: u64) -> Option<Tensor> {
        let mut x = aten::relu(&self.bn1.forward(&self.conv1.forward(&batch[0])));
        for block in &self.layers {
            x = block.forward(&x);
        }
        let x = aten::flatten(&nn::adaptive_avg_pool2d(&x, (1, 1)), 1, -1);
        let loss = F::cross_entropy(&self.fc.forward(&x), &batch[1]);
        log::log_prog_bar("train_loss", &loss);
        Some(loss)
    }
}

/// 320 images: image n of class n mod 10 has pixel (c, h, w) = ((13c + 5h + 3w + 11·class)
/// mod 17) / 8 − 1 + ((n / 10) mod 3) / 8.
struct Images {
    data: Option<(Tensor, Tensor)>,
}

impl DataModule for Images {
    fn setup(_stage: Stage, _hp: &Hparams) -> Result<Self, String> {
        let n = 320i64;
        let mut x = Vec::with_capacity((n * 3 * 16 * 16) as usize);
        for i in 0..n {
            let class = i % 10;
            for c in 0..3 {
                for h in 0..16 {
                    for w in 0..16 {
                        let v = ((13 * c + 5 * h + 3 * w + 11 * class) % 17) as f32 / 8.0 - 1.0;
                        x.push(v + ((i / 10) % 3) as f32 / 8.0);
                    }
                }
            }
        }
        let y: Vec<i64> = (0..n).map(|i| i % 10).collect();
        Ok(Images { data: Some((Tensor::from_slice_f32(&x, &[n, 3, 16, 16]), Tensor::from_slice_i64(&y, &[n]))) })
    }

    fn train_dataset(&mut self) -> Option<Dataset> {
        let (x, y) = self.data.take()?;
        Some(dataset(vec![x, y], 32, false))
    }
}

export_plugin!(ResNet, Images);
